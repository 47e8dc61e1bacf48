/* The link backend: frames sent and received on a byte stream, which is a TCP socket of our own
 * (Modbus TCP with the MBAP framing of mbap.c; RTU frames over TCP, which serial-to-Ethernet
 * converters and 4G DTUs in transparent mode forward as they are) or a serial port that
 * link_serial.c opens (RTU frames, rtu.c). Our own framing rather than libmodbus's, which ignores
 * the MBAP length field and reports every bad frame as a bare EMBBADDATA: here each frame is
 * checked whole, and what was wrong is kept for the log (mb_link_why). */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "link_impl.h"
#include "proto.h"
#include "mbap.h"
#include "rtu.h"

struct stream_link {
    struct mb_link base; /* first: the link functions cast between the two */
    int fd;
    modbus_t *serial; /* MB_LINK_RTU: the port's settings and, when open, its fd */
    bool mbap;        /* Modbus TCP; else RTU frames */
};

/* The longest frame of either kind. */
#define ADU_MAX (MB_MBAP_MAX_ADU > MB_RTU_MAX_ADU ? MB_MBAP_MAX_ADU : MB_RTU_MAX_ADU)

static struct stream_link *stream(struct mb_link *link)
{
    return (struct stream_link *)link;
}

/* poll() for one fd with a timeout in ms; 1 ready, 0 timed out, -1 error (errno). */
static int wait_fd(int fd, short events, int64_t timeout_ms)
{
    int64_t deadline = mb_link_now_us() + timeout_ms * 1000;
    for (;;) {
        int64_t left = deadline - mb_link_now_us();
        if (left < 0)
            left = 0;
        struct pollfd p = {fd, events, 0};
        int rc = poll(&p, 1, (int)((left + 999) / 1000));
        if (rc < 0 && errno == EINTR)
            continue;
        if (rc <= 0)
            return rc;
        return 1;
    }
}

static int connect_one(const struct addrinfo *ai, uint32_t timeout_ms, int *out_fd)
{
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0)
        return errno;
    int rc = connect(fd, ai->ai_addr, ai->ai_addrlen);
    if (rc < 0 && errno != EINPROGRESS) {
        int e = errno;
        close(fd);
        return e;
    }
    if (rc < 0) {
        rc = wait_fd(fd, POLLOUT, timeout_ms);
        if (rc <= 0) {
            int e = rc == 0 ? ETIMEDOUT : errno;
            close(fd);
            return e;
        }
        int soerr = 0;
        socklen_t len = sizeof(soerr);
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) < 0 || soerr != 0) {
            int e = soerr != 0 ? soerr : errno;
            close(fd);
            return e;
        }
    }
    int one = 1;
    /* A request is one small write: send it now, not after the previous segment's ACK. */
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    *out_fd = fd;
    return 0;
}

static int stream_open(struct mb_link *link)
{
    struct stream_link *l = stream(link);
    if (l->serial)
        return mb_serial_open(l->serial, &link->cfg, &l->fd);
    char service[8];
    snprintf(service, sizeof(service), "%d", link->cfg.port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *res = NULL;
    int rc = getaddrinfo(link->cfg.host, service, &hints, &res);
    if (rc != 0)
        return rc == EAI_SYSTEM ? errno : MB_ENORESOLVE;
    int err = EHOSTUNREACH;
    for (struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next) {
        err = connect_one(ai, link->cfg.connect_timeout_ms, &l->fd);
        if (err == 0)
            break;
    }
    freeaddrinfo(res);
    return err;
}

static void stream_close(struct mb_link *link)
{
    struct stream_link *l = stream(link);
    if (l->serial)
        modbus_close(l->serial); /* closes only an open port; safe twice */
    else if (l->fd >= 0)
        close(l->fd);
    l->fd = -1;
}

static int stream_fd(const struct mb_link *link)
{
    return ((const struct stream_link *)link)->fd;
}

static void stream_set_timeout(struct mb_link *link, uint32_t ms)
{
    (void)link;
    (void)ms; /* read from base.timeout_ms at each request */
}

static int fail(int e)
{
    errno = e;
    return -1;
}

static int send_all(struct stream_link *l, const uint8_t *p, size_t n)
{
    size_t off = 0;
    while (off < n) {
        ssize_t w = l->serial != NULL ? write(l->fd, p + off, n - off)
                                      : send(l->fd, p + off, n - off, MSG_NOSIGNAL);
        if (w > 0) {
            off += (size_t)w;
            continue;
        }
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && errno == EAGAIN) {
            int rc = wait_fd(l->fd, POLLOUT, l->base.timeout_ms);
            if (rc == 0)
                return fail(ETIMEDOUT);
            if (rc < 0)
                return -1;
            continue;
        }
        return -1;
    }
    return 0;
}

/* The response cannot be framed: an unknown function code, or a length past the longest frame. */
static int unframed(struct stream_link *l, const uint8_t *rsp, size_t have, int len)
{
    size_t fc_at = l->mbap ? MB_MBAP_HEADER : 1;
    if (len < 0)
        snprintf(l->base.why, sizeof(l->base.why),
                 "function code 0x%02X is none the request could get back", rsp[fc_at]);
    else
        snprintf(l->base.why, sizeof(l->base.why),
                 "its byte count %u makes a frame of %d bytes, longer than any (%zu)",
                 have > fc_at + 1 ? rsp[fc_at + 1] : 0u, len, (size_t)ADU_MAX);
    return fail(EMBBADDATA); /* not a response to this request */
}

/* Send a request frame and receive the response frame: the response timeout for its first byte,
 * the byte timeout for each later one. Modbus TCP: each read takes all that has come (up to the
 * longest frame), so a whole response is one poll and one read; bytes past the frame are counted
 * in base.surplus for mb_link_settle(). RTU: reads never go past the frame's end (the next
 * frame has no id to tell it apart), so whatever follows stays for mb_link_settle() to find.
 * Returns the response length or -1 with errno. */
static int transact(struct stream_link *l, const uint8_t *req, size_t req_len, uint8_t *rsp)
{
    if (l->fd < 0)
        return fail(ENOTCONN);
    if (send_all(l, req, req_len) < 0)
        return -1;
    /* At least the shortest response (an exception); then its length is known. */
    size_t have = 0, need = l->mbap ? MB_MBAP_HEADER + 2 : 5;
    bool known = false; /* need is the frame's length, not only the least it can be */
    l->base.surplus = 0;
    while (have < need) {
        int64_t timeout = have == 0 ? l->base.timeout_ms : l->base.cfg.byte_timeout_ms;
        int rc = wait_fd(l->fd, POLLIN, timeout);
        if (rc == 0 && have > 0 && known)
            snprintf(l->base.why, sizeof(l->base.why),
                     "the response stopped after %zu of its %zu bytes", have, need);
        else if (rc == 0 && have > 0)
            snprintf(l->base.why, sizeof(l->base.why),
                     "the response stopped after %zu bytes, before its length was known", have);
        if (rc == 0)
            return fail(ETIMEDOUT); /* nothing, or a truncated frame */
        if (rc < 0)
            return -1;
        ssize_t n = read(l->fd, rsp + have, (l->mbap ? (size_t)ADU_MAX : need) - have);
        if (n == 0)
            return fail(l->serial != NULL ? EIO : ECONNRESET); /* hung up, or the peer closed */
        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR)
                continue;
            return -1;
        }
        have += (size_t)n;
        int len =
            l->mbap ? mb_mbap_response_length(rsp, have) : mb_rtu_response_length(req, rsp, have);
        if (len < 0 || len > ADU_MAX)
            return unframed(l, rsp, have, len);
        known = len > 0;
        need = known ? (size_t)len : have + 1;
    }
    l->base.surplus = have - need;
    return (int)need;
}

/* Check the response to a request frame: rtu.c or mbap.c by the link's kind. */
static int check(struct stream_link *l, const uint8_t *req, size_t req_len, const uint8_t *rsp,
                 int len, void *dest)
{
    if (len < 0)
        return -1;
    char *why = l->base.why;
    size_t n = sizeof(l->base.why);
    return l->mbap ? mb_mbap_check_response(req, req_len, rsp, (size_t)len, dest, why, n)
                   : mb_rtu_check_response(req, req_len, rsp, (size_t)len, dest, why, n);
}

static int stream_read(struct mb_link *link, int unit, unsigned table, uint16_t addr,
                       uint16_t count, void *dest)
{
    struct stream_link *l = stream(link);
    uint8_t req[ADU_MAX], rsp[ADU_MAX];
    uint8_t fc = mb_table_read_fc(table);
    if (fc == 0)
        return fail(EINVAL);
    size_t req_len = l->mbap
                         ? mb_mbap_read_request(req, ++l->base.tid, (uint8_t)unit, fc, addr, count)
                         : mb_rtu_read_request(req, (uint8_t)unit, fc, addr, count);
    return check(l, req, req_len, rsp, transact(l, req, req_len, rsp), dest);
}

static int stream_write(struct mb_link *link, int unit, uint8_t fc, uint16_t addr, uint16_t count,
                        const void *data)
{
    struct stream_link *l = stream(link);
    uint8_t req[ADU_MAX], rsp[ADU_MAX];
    bool bits = fc == MB_FC_WRITE_SINGLE_COIL || fc == MB_FC_WRITE_MULTIPLE_COILS;
    const uint8_t *b = bits ? data : NULL;
    const uint16_t *r = bits ? NULL : data;
    size_t req_len =
        l->mbap ? mb_mbap_write_request(req, ++l->base.tid, (uint8_t)unit, fc, addr, count, b, r)
                : mb_rtu_write_request(req, (uint8_t)unit, fc, addr, count, b, r);
    return check(l, req, req_len, rsp, transact(l, req, req_len, rsp), NULL);
}

static void stream_free(struct mb_link *link)
{
    struct stream_link *l = stream(link);
    if (l->serial)
        modbus_free(l->serial);
    free(l);
}

static const struct mb_link_ops stream_ops = {
    .open = stream_open,
    .close = stream_close,
    .fd = stream_fd,
    .set_timeout = stream_set_timeout,
    .read = stream_read,
    .write = stream_write,
    .free = stream_free,
    .pipelines = true,
};

struct mb_link *mb_link_stream_new(const struct mb_link_config *cfg)
{
    struct stream_link *l = calloc(1, sizeof *l);
    if (!l)
        return NULL;
    l->fd = -1;
    l->mbap = cfg->kind == MB_LINK_TCP;
    l->base.counts_surplus = l->mbap;
    if (cfg->kind == MB_LINK_RTU && (l->serial = mb_serial_new(cfg)) == NULL) {
        free(l);
        return NULL;
    }
    l->base.ops = &stream_ops;
    l->base.cfg = *cfg;
    l->base.timeout_ms = 1000;
    return &l->base;
}
