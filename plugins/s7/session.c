/* S7 plugin, session: blocking I/O under poll() deadlines on one socket; frames are read as a
 * TPKT header, then exactly the length it announces (checked first). */
#include "session.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <ironbridge/error.h>

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

__attribute__((format(printf, 3, 4))) static int fail(struct s7_session *s, int err,
                                                      const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->error, sizeof s->error, fmt, ap);
    va_end(ap);
    s7_session_close(s);
    return err;
}

void s7_session_init(struct s7_session *s, const struct s7_session_cfg *cfg)
{
    memset(s, 0, sizeof *s);
    s->cfg = *cfg;
    s->fd = -1;
}

void s7_session_close(struct s7_session *s)
{
    if (s->fd >= 0)
        close(s->fd);
    s->fd = -1;
    s->rx_len = s->rx_frame = 0;
}

uint16_t s7_session_next_ref(struct s7_session *s)
{
    if (++s->ref == 0)
        s->ref = 1;
    return s->ref;
}

/* Wait for `events` until the deadline: 1 ready, 0 timed out, -1 error (errno). */
static int wait_fd(int fd, short events, int64_t deadline)
{
    for (;;) {
        int64_t left = deadline - now_ms();
        if (left <= 0)
            return 0;
        struct pollfd p = {fd, events, 0};
        int n = poll(&p, 1, (int)left);
        if (n > 0)
            return 1;
        if (n < 0 && errno != EINTR)
            return -1;
    }
}

static int connect_one(struct s7_session *s, const struct addrinfo *ai, int64_t deadline)
{
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return -errno;
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0 && errno != EINPROGRESS) {
        int e = errno;
        close(fd);
        return -e;
    }
    int r = wait_fd(fd, POLLOUT, deadline), e = 0;
    socklen_t l = sizeof e;
    if (r <= 0) {
        e = r == 0 ? ETIMEDOUT : errno;
    } else if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &l) != 0) {
        e = errno;
    }
    if (e != 0) {
        close(fd);
        return -e;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    s->fd = fd;
    return 0;
}

static int tcp_connect(struct s7_session *s)
{
    char port[8];
    snprintf(port, sizeof port, "%d", s->cfg.port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res = NULL;
    int rc = getaddrinfo(s->cfg.host, port, &hints, &res);
    if (rc != 0)
        return fail(s, IB_ERR_CONNECTION, "cannot resolve %s: %s", s->cfg.host, gai_strerror(rc));
    int64_t deadline = now_ms() + s->cfg.connect_timeout_ms;
    int e = ENOENT;
    for (const struct addrinfo *ai = res; ai != NULL && s->fd < 0; ai = ai->ai_next)
        e = -connect_one(s, ai, deadline);
    freeaddrinfo(res);
    if (s->fd < 0) {
        s->last_errno = e;
        return fail(s, e == ETIMEDOUT ? IB_ERR_TIMEOUT : IB_ERR_CONNECTION,
                    "cannot connect to %s:%d: %s", s->cfg.host, s->cfg.port, strerror(e));
    }
    return 0;
}

static int send_all(struct s7_session *s, const uint8_t *p, size_t len)
{
    int64_t deadline = now_ms() + s->cfg.timeout_ms;
    while (len > 0) {
        ssize_t n = send(s->fd, p, len, MSG_NOSIGNAL);
        if (n > 0) {
            p += n;
            len -= (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (wait_fd(s->fd, POLLOUT, deadline) > 0)
                continue;
            return fail(s, IB_ERR_TIMEOUT, "sending to %s:%d timed out", s->cfg.host, s->cfg.port);
        }
        s->last_errno = errno;
        return fail(s, IB_ERR_CONNECTION, "sending to %s:%d failed: %s", s->cfg.host, s->cfg.port,
                    strerror(errno));
    }
    return 0;
}

/* One whole frame at the start of s->rx (the previous one dropped first): its length in *len.
 * What arrives after it stays in s->rx for the next call (pipelined answers). */
static int recv_frame(struct s7_session *s, size_t *len)
{
    if (s->rx_frame > 0) {
        memmove(s->rx, s->rx + s->rx_frame, s->rx_len - s->rx_frame);
        s->rx_len -= s->rx_frame;
        s->rx_frame = 0;
    }
    int64_t deadline = now_ms() + s->cfg.timeout_ms;
    long n = -1;
    for (;;) {
        if (n < 0 && s->rx_len >= S7_TPKT_HDR) {
            n = s7_wire_tpkt_length(s->rx, S7_TPKT_HDR);
            if (n < 0)
                return fail(s, IB_ERR_PROTOCOL,
                            "%s:%d sent a frame that is not TPKT (bytes %02x %02x %02x %02x): is "
                            "this an S7 PLC on port %d?",
                            s->cfg.host, s->cfg.port, s->rx[0], s->rx[1], s->rx[2], s->rx[3],
                            s->cfg.port);
        }
        if (n >= 0 && s->rx_len >= (size_t)n)
            break;
        int r = wait_fd(s->fd, POLLIN, deadline);
        if (r == 0)
            return fail(s, IB_ERR_TIMEOUT, "no answer from %s:%d within %u ms", s->cfg.host,
                        s->cfg.port, s->cfg.timeout_ms);
        ssize_t got = r < 0 ? -1 : recv(s->fd, s->rx + s->rx_len, sizeof s->rx - s->rx_len, 0);
        if (got == 0)
            return fail(s, IB_ERR_CONNECTION, "%s:%d closed the connection", s->cfg.host,
                        s->cfg.port);
        if (got < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK))
            continue;
        if (got < 0) {
            s->last_errno = errno;
            return fail(s, IB_ERR_CONNECTION, "receiving from %s:%d failed: %s", s->cfg.host,
                        s->cfg.port, strerror(errno));
        }
        s->rx_len += (size_t)got;
    }
    s->rx_frame = (size_t)n;
    *len = (size_t)n;
    return 0;
}

unsigned s7_session_jobs(const struct s7_session *s)
{
    unsigned j = s->cfg.jobs_request ? s->cfg.jobs_request : 1;
    if (s->amq_calling > 0 && s->amq_calling < j)
        j = s->amq_calling;
    if (s->amq_called > 0 && s->amq_called < j)
        j = s->amq_called;
    return j;
}

int s7_session_send(struct s7_session *s, size_t len)
{
    if (s->fd < 0)
        return fail(s, IB_ERR_CONNECTION, "not connected");
    return send_all(s, s->tx, len);
}

int s7_session_receive(struct s7_session *s, struct s7_pdu *pdu)
{
    size_t n = 0;
    int rc = recv_frame(s, &n);
    if (rc != 0)
        return rc;
    if (s7_wire_pdu(s->rx, n, pdu) != 0)
        return fail(s, IB_ERR_PROTOCOL, "%s:%d sent a malformed S7 frame (%zu bytes)", s->cfg.host,
                    s->cfg.port, n);
    if (pdu->rosctr != 2 && pdu->rosctr != 3)
        return fail(s, IB_ERR_PROTOCOL, "%s:%d answered with ROSCTR %u", s->cfg.host, s->cfg.port,
                    pdu->rosctr);
    return 0;
}

int s7_session_check_idle(struct s7_session *s)
{
    if (s->fd >= 0 && s->rx_len > s->rx_frame)
        return fail(s, IB_ERR_PROTOCOL, "%s:%d sent %zu bytes past the end of its answer",
                    s->cfg.host, s->cfg.port, s->rx_len - s->rx_frame);
    return 0;
}

int s7_session_transact(struct s7_session *s, size_t len, uint16_t ref, struct s7_pdu *pdu)
{
    int rc = s7_session_send(s, len);
    if (rc == 0)
        rc = s7_session_receive(s, pdu);
    if (rc == 0 && pdu->ref != ref)
        rc = fail(s, IB_ERR_PROTOCOL, "%s:%d answered with PDU reference %u to request %u",
                  s->cfg.host, s->cfg.port, pdu->ref, ref);
    if (rc == 0)
        rc = s7_session_check_idle(s);
    return rc;
}

static int cotp_connect(struct s7_session *s)
{
    size_t len = s7_wire_cotp_cr(s->tx, sizeof s->tx, s->cfg.local_tsap, s->cfg.remote_tsap);
    size_t n = 0;
    int rc = send_all(s, s->tx, len);
    if (rc == 0)
        rc = recv_frame(s, &n);
    if (rc == IB_ERR_CONNECTION && s->last_errno == 0)
        return fail(s, IB_ERR_CONNECTION,
                    "%s:%d closed the connection at the COTP connection request: check the "
                    "TSAPs (local %04X, remote %04X: rack and slot, or local_tsap/remote_tsap)",
                    s->cfg.host, s->cfg.port, s->cfg.local_tsap, s->cfg.remote_tsap);
    if (rc != 0)
        return rc;
    if (s7_wire_cotp_cc(s->rx, n) != 0)
        return fail(s, IB_ERR_PROTOCOL,
                    "%s:%d refused the COTP connection (local TSAP %04X, remote TSAP %04X): "
                    "check rack and slot, or local_tsap/remote_tsap",
                    s->cfg.host, s->cfg.port, s->cfg.local_tsap, s->cfg.remote_tsap);
    return s7_session_check_idle(s);
}

static int setup_communication(struct s7_session *s)
{
    uint16_t ref = s7_session_next_ref(s);
    size_t len = s7_wire_setup(s->tx, sizeof s->tx, ref,
                               s->cfg.jobs_request ? s->cfg.jobs_request : 1, s->cfg.pdu_request);
    struct s7_pdu pdu;
    int rc = s7_session_transact(s, len, ref, &pdu);
    if (rc != 0)
        return rc;
    uint16_t calling, called, size;
    if (s7_wire_setup_ack(&pdu, &calling, &called, &size) != 0)
        return fail(s, IB_ERR_PROTOCOL,
                    "%s:%d refused Setup Communication (error class %02X code %02X)", s->cfg.host,
                    s->cfg.port, pdu.err_class, pdu.err_code);
    if (size > S7_FRAME_MAX - S7_TPKT_HDR - S7_COTP_DT_HDR)
        size = S7_FRAME_MAX - S7_TPKT_HDR - S7_COTP_DT_HDR;
    if (size > s->cfg.pdu_request)
        size = s->cfg.pdu_request; /* a PLC may answer more than asked; use what both can */
    s->pdu = size;
    s->amq_calling = calling;
    s->amq_called = called;
    return 0;
}

int s7_session_open(struct s7_session *s)
{
    s7_session_close(s);
    s->error[0] = '\0';
    s->last_errno = 0;
    int rc = tcp_connect(s);
    if (rc == 0)
        rc = cotp_connect(s);
    if (rc == 0)
        rc = setup_communication(s);
    return rc;
}
