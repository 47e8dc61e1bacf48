/* The link's common part: picks the backend, keeps RTU's silence between frames, checks for
 * bytes after a response and brings a link back into step after a failure. */
#include "link.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include <ironbridge/error.h>

#include "link_impl.h"

/* How long the line must stay quiet after a failure before the next request, at least. */
#define RECOVER_QUIET_US 20000u
/* The longest a babbling line is drained before giving up on it. */
#define DRAIN_MAX_US 1000000u

int64_t mb_link_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void sleep_us(int64_t us)
{
    struct timespec ts = {.tv_sec = us / 1000000, .tv_nsec = (us % 1000000) * 1000};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

long mb_link_drain(int fd, uint32_t quiet_us, uint32_t max_us)
{
    int64_t start = mb_link_now_us();
    long dropped = 0;
    uint8_t buf[256];
    for (;;) {
        int64_t left = (int64_t)max_us - (mb_link_now_us() - start);
        if (left <= 0)
            return dropped;
        int64_t wait = quiet_us < left ? quiet_us : left;
        struct pollfd p = {fd, POLLIN, 0};
        int rc = poll(&p, 1, (int)((wait + 999) / 1000));
        if (rc < 0 && errno == EINTR)
            continue;
        if (rc < 0)
            return -1;
        if (rc == 0)
            return dropped; /* quiet */
        ssize_t n = read(fd, buf, sizeof(buf));
        if (n == 0) {
            errno = ECONNRESET;
            return -1;
        }
        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR)
                continue;
            return -1;
        }
        dropped += n;
    }
}

int mb_link_new(const struct mb_link_config *cfg, struct mb_link **out)
{
    struct mb_link *link = cfg->kind == MB_LINK_TCP && cfg->impl == MB_IMPL_LIBMODBUS
                               ? mb_link_libmodbus_new(cfg)
                               : mb_link_stream_new(cfg);
    *out = link;
    if (!link)
        return IB_ERR_NOMEM;
    if (cfg->kind == MB_LINK_RTU)
        snprintf(link->name, sizeof(link->name), "%s", cfg->serial_port);
    else if (cfg->host && cfg->host[0] != '[' && cfg->host[strcspn(cfg->host, ":")])
        snprintf(link->name, sizeof(link->name), "[%s]:%d", cfg->host, cfg->port);
    else
        snprintf(link->name, sizeof(link->name), "%s:%d", cfg->host, cfg->port);
    return 0;
}

void mb_link_free(struct mb_link *link)
{
    if (!link)
        return;
    link->ops->close(link);
    link->ops->free(link);
}

int mb_link_open(struct mb_link *link)
{
    link->ops->close(link);
    int e = link->ops->open(link);
    link->quiet_since_us = mb_link_now_us();
    link->late_answer = false;
    return e;
}

void mb_link_close(struct mb_link *link)
{
    link->ops->close(link);
}

bool mb_link_is_open(const struct mb_link *link)
{
    return link->ops->fd(link) >= 0;
}

const char *mb_link_name(const struct mb_link *link)
{
    return link->name;
}

enum mb_link_kind mb_link_kind(const struct mb_link *link)
{
    return (enum mb_link_kind)link->cfg.kind;
}

void mb_link_set_timeout(struct mb_link *link, uint32_t response_ms)
{
    if (response_ms == link->timeout_ms)
        return;
    link->ops->set_timeout(link, response_ms);
    link->timeout_ms = response_ms;
}

/* Before a request. RTU frames carry no transaction id: a late answer to an earlier request
 * that is still waiting in the buffer would pass for the answer to this one (same unit,
 * function and length, valid CRC). So drop whatever has arrived since. On Modbus TCP the
 * transaction id tells a late answer apart, but it would still cost a reconnect (the stream
 * is out of step): after a timeout, drop what has arrived since, once. Then keep RTU's
 * silence: never start a request sooner than the gap after the last frame ended. */
static void keep_gap(struct mb_link *link)
{
    int fd = link->ops->fd(link);
    if ((link->cfg.kind != MB_LINK_TCP || link->late_answer) && fd >= 0 &&
        mb_link_drain(fd, 0, DRAIN_MAX_US) > 0)
        link->quiet_since_us = mb_link_now_us();
    link->late_answer = false;
    if (link->cfg.frame_gap_us == 0 || link->quiet_since_us == 0)
        return;
    int64_t wait = link->quiet_since_us + link->cfg.frame_gap_us - mb_link_now_us();
    if (wait > 0)
        sleep_us(wait);
}

/* A transaction ended (rc and errno as the backend left them): the line is quiet from now. */
static int transaction_done(struct mb_link *link, int rc)
{
    int e = errno;
    link->quiet_since_us = mb_link_now_us();
    errno = e;
    return rc;
}

bool mb_link_pipelines(const struct mb_link *link)
{
    return link->ops->pipelines && link->cfg.kind == MB_LINK_TCP;
}

const char *mb_link_why(const struct mb_link *link)
{
    return link->why;
}

int mb_link_read(struct mb_link *link, int unit, unsigned table, uint16_t addr, uint16_t count,
                 void *dest)
{
    link->why[0] = '\0';
    keep_gap(link);
    return transaction_done(link, link->ops->read(link, unit, table, addr, count, dest));
}

int mb_link_write(struct mb_link *link, int unit, uint8_t fc, uint16_t addr, uint16_t count,
                  const void *data)
{
    link->why[0] = '\0';
    keep_gap(link);
    return transaction_done(link, link->ops->write(link, unit, fc, addr, count, data));
}

int mb_link_settle(struct mb_link *link)
{
    int fd = link->ops->fd(link);
    if (fd < 0)
        return 0;
    long stray;
    if (link->cfg.frame_gap_us > 0) {
        /* A frame ends with the gap: what comes before the gap is over belongs to it. */
        stray = mb_link_drain(fd, link->cfg.frame_gap_us, DRAIN_MAX_US);
    } else if (link->counts_surplus) {
        /* Everything that had come with the response was read with it: bytes past its frame
         * are stray, and so is whatever follows them. No system call when there were none. */
        stray = link->surplus > 0 ? mb_link_drain(fd, 0, DRAIN_MAX_US) : 0;
        if (stray >= 0 && link->surplus > 0)
            stray += (long)link->surplus;
        link->surplus = 0;
    } else {
        int queued = 0;
        if (ioctl(fd, FIONREAD, &queued) < 0)
            return -1;
        stray = queued > 0 ? mb_link_drain(fd, 0, DRAIN_MAX_US) : 0;
    }
    link->quiet_since_us = mb_link_now_us();
    if (stray < 0)
        return -1;
    if (stray > 0) {
        errno = MB_ESTRAY;
        return -1;
    }
    return 0;
}

static bool is_system_error(int e)
{
    return e != ETIMEDOUT && e < MODBUS_ENOBASE;
}

static bool is_exception(int e)
{
    return e >= EMBXILFUN && e <= EMBXGTAR;
}

int mb_link_recover(struct mb_link *link, int e)
{
    int fd = link->ops->fd(link);
    if (fd < 0)
        return ENOTCONN;
    if (is_system_error(e)) {
        /* Reset, broken pipe, EIO of an unplugged adapter: only a new connection is sure. */
        link->ops->close(link);
        return e;
    }
    if (is_exception(e))
        return 0; /* a well-formed answer: the link is in step */

    if (link->cfg.kind == MB_LINK_TCP) {
        if (e == ETIMEDOUT) {
            /* The answer may still come: drop what is there now, and what has come by the next
             * request (keep_gap); one that comes later still fails the transaction id check. */
            link->late_answer = true;
            if (mb_link_drain(fd, 0, DRAIN_MAX_US) >= 0)
                return 0;
            int err = errno ? errno : ECONNRESET;
            link->ops->close(link);
            return err;
        }
        /* Out of step: TCP has no frame boundary to resynchronise on. Reconnect. */
        return mb_link_open(link);
    }

    /* RTU kinds: frames end with silence. Wait for the line to be quiet. */
    uint32_t quiet =
        link->cfg.frame_gap_us > RECOVER_QUIET_US ? link->cfg.frame_gap_us : RECOVER_QUIET_US;
    if (link->cfg.byte_timeout_ms * 1000u < quiet && link->cfg.byte_timeout_ms > 0)
        quiet = link->cfg.byte_timeout_ms * 1000u > link->cfg.frame_gap_us
                    ? link->cfg.byte_timeout_ms * 1000u
                    : link->cfg.frame_gap_us;
    long n = mb_link_drain(fd, quiet, DRAIN_MAX_US);
    link->quiet_since_us = mb_link_now_us();
    if (n < 0) {
        int err = errno ? errno : EIO;
        link->ops->close(link);
        return err;
    }
    return 0;
}
