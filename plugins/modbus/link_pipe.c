/* Several Modbus TCP reads in flight on one connection: the requests sent as the window allows,
 * the answers read as they come and handed to pipe.c to match, a timeout per request, and the
 * link left in step (or reopened) when the batch stops. */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "link_impl.h"
#include "mbap.h"
#include "pipe.h"
#include "proto.h"

/* The longest a babbling connection is drained before a batch. */
#define DRAIN_MAX_US 1000000u

static int send_frame(int fd, const uint8_t *p, size_t n, uint32_t timeout_ms)
{
    size_t off = 0;
    while (off < n) {
        ssize_t w = send(fd, p + off, n - off, MSG_NOSIGNAL);
        if (w > 0) {
            off += (size_t)w;
            continue;
        }
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && errno == EAGAIN) {
            struct pollfd pf = {fd, POLLOUT, 0};
            int rc = poll(&pf, 1, (int)timeout_ms);
            if (rc == 0)
                errno = ETIMEDOUT;
            if (rc <= 0)
                return -1;
            continue;
        }
        return -1;
    }
    return 0;
}

/* Send the next request: 0, or -1 with errno. */
static int send_next(struct mb_link *link, struct mb_pipe *pipe, int unit,
                     struct mb_pipe_item *items, uint32_t k)
{
    struct mb_pipe_item *it = &items[k];
    uint8_t req[MB_MBAP_MAX_ADU];
    size_t len = mb_mbap_read_request(req, ++link->tid, (uint8_t)unit, mb_table_read_fc(it->table),
                                      it->addr, it->count);
    if (send_frame(link->ops->fd(link), req, len, link->timeout_ms) < 0)
        return -1;
    int64_t deadline = mb_link_now_us() + (int64_t)link->timeout_ms * 1000;
    if (mb_pipe_add(pipe, k, req, len, deadline) < 0) {
        errno = EINVAL; /* more in flight than MB_PIPE_MAX: the caller's window is wrong */
        return -1;
    }
    return 0;
}

/* Wait for bytes until the earliest deadline and hand them to the pipe; expire what is overdue.
 * 0, or -1 with errno (the link is lost) or with errno EMBBADDATA (the stream is out of step). */
static int receive(struct mb_link *link, struct mb_pipe *pipe, struct mb_pipe_item *items)
{
    int fd = link->ops->fd(link);
    int64_t left = mb_pipe_next_deadline(pipe) - mb_link_now_us();
    struct pollfd pf = {fd, POLLIN, 0};
    int rc = left > 0 ? poll(&pf, 1, (int)((left + 999) / 1000)) : 0;
    if (rc < 0 && errno == EINTR)
        return 0;
    if (rc < 0)
        return -1;
    if (rc == 0) {
        mb_pipe_expire(pipe, items, mb_link_now_us());
        return 0;
    }
    uint8_t buf[512];
    ssize_t n = read(fd, buf, sizeof buf);
    if (n == 0)
        errno = ECONNRESET;
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return 0;
    if (n <= 0)
        return -1;
    if (mb_pipe_feed(pipe, items, buf, (size_t)n) < 0) {
        errno = EMBBADDATA;
        return -1;
    }
    return 0;
}

/* The batch stopped with errno e and `busy` requests in flight: say so when that shows the device
 * mishandles several in flight, and reopen the link once so the rest can be asked one by one. */
static void stopped(struct mb_link *link, struct mb_pipe *pipe, int e, uint32_t busy)
{
    if (pipe->misbehaved[0] == '\0' && busy > 1 && e == EMBBADDATA)
        snprintf(pipe->misbehaved, sizeof pipe->misbehaved,
                 "its answers could not be framed with %u requests in flight", busy);
    else if (pipe->misbehaved[0] == '\0' && busy > 1)
        snprintf(pipe->misbehaved, sizeof pipe->misbehaved,
                 "the connection was closed (%s) with %u requests in flight", strerror(e), busy);
    link->ops->close(link);
    if (link->ops->open(link) != 0)
        link->ops->close(link);
}

void mb_link_read_batch(struct mb_link *link, struct mb_pipe *pipe, int unit,
                        struct mb_pipe_item *items, uint32_t n, uint32_t window)
{
    for (uint32_t k = 0; k < n; k++) {
        items[k].done = items[k].count == 0;
        items[k].rc = -1;
        items[k].err = 0;
    }
    mb_pipe_begin(pipe);
    link->why[0] = '\0';
    if (window > MB_PIPE_MAX)
        window = MB_PIPE_MAX;
    if (link->ops->fd(link) < 0)
        return;
    if (link->late_answer)
        mb_link_drain(link->ops->fd(link), 0, DRAIN_MAX_US); /* an earlier request's answer */
    link->late_answer = false;
    uint32_t next = 0;
    uint64_t timeouts = 0;
    for (;;) {
        while (next < n && items[next].done)
            next++;
        if (next < n && pipe->n_busy < window) {
            uint32_t busy = pipe->n_busy;
            if (send_next(link, pipe, unit, items, next) < 0) {
                stopped(link, pipe, errno, busy + 1);
                break;
            }
            next++;
            continue;
        }
        if (pipe->n_busy == 0)
            break;
        uint32_t busy = pipe->n_busy, answered = pipe->answered;
        if (receive(link, pipe, items) < 0) {
            stopped(link, pipe, errno, busy);
            break;
        }
        timeouts += busy - pipe->n_busy - (pipe->answered - answered);
    }
    /* A timed-out request's answer may still come, and a frame may have been cut short. */
    if (timeouts > 0 || pipe->have > 0)
        link->late_answer = true;
    link->quiet_since_us = mb_link_now_us();
}
