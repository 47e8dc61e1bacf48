/* Link backend for Modbus RTU frames on a TCP socket: serial-to-Ethernet converters and 4G DTUs
 * in transparent mode forward the bytes as they are, so the frames keep their unit id and CRC
 * and have no MBAP header. libmodbus has no such backend; the framing is rtu.c's. */
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
#include "rtu.h"

struct rtcp_link {
    struct mb_link base; /* first: the link functions cast between the two */
    int fd;
};

static struct rtcp_link *rtcp(struct mb_link *link)
{
    return (struct rtcp_link *)link;
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

static int rtcp_open(struct mb_link *link)
{
    struct rtcp_link *l = rtcp(link);
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

static void rtcp_close(struct mb_link *link)
{
    struct rtcp_link *l = rtcp(link);
    if (l->fd >= 0)
        close(l->fd);
    l->fd = -1;
}

static int rtcp_fd(const struct mb_link *link)
{
    return ((const struct rtcp_link *)link)->fd;
}

static void rtcp_set_timeout(struct mb_link *link, uint32_t ms)
{
    (void)link;
    (void)ms; /* read from base.timeout_ms at each request */
}

static int fail(int e)
{
    errno = e;
    return -1;
}

static int send_all(struct rtcp_link *l, const uint8_t *p, size_t n)
{
    size_t off = 0;
    while (off < n) {
        ssize_t w = send(l->fd, p + off, n - off, MSG_NOSIGNAL);
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

/* Send a request frame and receive the response frame: the response timeout for its first byte,
 * the byte timeout for each later one. Reads never go past the frame's end, so whatever follows
 * stays for mb_link_settle() to find. Returns the response length or -1 with errno. */
static int transact(struct rtcp_link *l, const uint8_t *req, size_t req_len, uint8_t *rsp)
{
    if (l->fd < 0)
        return fail(ENOTCONN);
    if (send_all(l, req, req_len) < 0)
        return -1;
    size_t have = 0, need = 2;
    while (have < need) {
        int64_t timeout = have == 0 ? l->base.timeout_ms : l->base.cfg.byte_timeout_ms;
        int rc = wait_fd(l->fd, POLLIN, timeout);
        if (rc == 0)
            return fail(ETIMEDOUT); /* nothing, or a truncated frame */
        if (rc < 0)
            return -1;
        ssize_t n = recv(l->fd, rsp + have, need - have, 0);
        if (n == 0)
            return fail(ECONNRESET);
        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR)
                continue;
            return -1;
        }
        have += (size_t)n;
        int len = mb_rtu_response_length(req, rsp, have);
        if (len < 0 || len > MB_RTU_MAX_ADU)
            return fail(EMBBADDATA); /* not a response to this request */
        need = len > 0 ? (size_t)len : have + 1;
    }
    return (int)have;
}

static int rtcp_read(struct mb_link *link, int unit, unsigned table, uint16_t addr, uint16_t count,
                     void *dest)
{
    uint8_t req[MB_RTU_MAX_ADU], rsp[MB_RTU_MAX_ADU];
    if (table >= MB_TABLE_COUNT)
        return fail(EINVAL);
    size_t req_len = mb_rtu_read_request(req, (uint8_t)unit, mb_table_read_fc(table), addr, count);
    int len = transact(rtcp(link), req, req_len, rsp);
    if (len < 0)
        return -1;
    return mb_rtu_check_response(req, req_len, rsp, (size_t)len, dest);
}

static int rtcp_write(struct mb_link *link, int unit, uint8_t fc, uint16_t addr, uint16_t count,
                      const void *data)
{
    uint8_t req[MB_RTU_MAX_ADU], rsp[MB_RTU_MAX_ADU];
    bool bits = fc == MB_FC_WRITE_SINGLE_COIL || fc == MB_FC_WRITE_MULTIPLE_COILS;
    size_t req_len = mb_rtu_write_request(req, (uint8_t)unit, fc, addr, count, bits ? data : NULL,
                                          bits ? NULL : data);
    int len = transact(rtcp(link), req, req_len, rsp);
    if (len < 0)
        return -1;
    return mb_rtu_check_response(req, req_len, rsp, (size_t)len, NULL);
}

static void rtcp_free(struct mb_link *link)
{
    free(rtcp(link));
}

static const struct mb_link_ops rtcp_ops = {
    .open = rtcp_open,
    .close = rtcp_close,
    .fd = rtcp_fd,
    .set_timeout = rtcp_set_timeout,
    .read = rtcp_read,
    .write = rtcp_write,
    .free = rtcp_free,
};

struct mb_link *mb_link_rtu_tcp_new(const struct mb_link_config *cfg)
{
    struct rtcp_link *l = calloc(1, sizeof(*l));
    if (l == NULL)
        return NULL;
    l->fd = -1;
    l->base.ops = &rtcp_ops;
    l->base.cfg = *cfg;
    l->base.timeout_ms = 1000;
    return &l->base;
}
