/* One request as a device needs it: its pause after the previous request, its retries, the check
 * for bytes after the response, and the link brought back into step after a failure. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <modbus.h>

#include "instance.h"
#include "link_impl.h" /* mb_link_now_us */

const char *mb_errtext(int e)
{
    if (e == MB_ESTRAY)
        return "more bytes arrived than the response frame holds";
    if (e == EMBBADSLAVE)
        return "wrong unit id";
    if (e == ETIMEDOUT)
        return "no response within the timeout";
    if (e == MB_ENORESOLVE)
        return "the host name does not resolve";
    if (e == EMBBADDATA)
        return "invalid response";
    return modbus_strerror(e);
}

const char *mb_describe(char *buf, size_t n, int e, const char *why)
{
    if (why == NULL || why[0] == '\0')
        snprintf(buf, n, "%s", mb_errtext(e));
    else
        snprintf(buf, n, "%s: %s", mb_errtext(e), why);
    return buf;
}

struct mb_failure mb_classify(int e)
{
    if (e == ETIMEDOUT)
        return (struct mb_failure){IB_R_TIMEOUT, 0, IB_ERR_TIMEOUT};
    if (e >= EMBXILFUN && e <= EMBXGTAR)
        return (struct mb_failure){IB_R_EXCEPTION, (uint16_t)(e - MODBUS_ENOBASE),
                                   IB_ERR_EXCEPTION};
    if (e == EMBBADCRC)
        return (struct mb_failure){IB_R_CRC, 0, IB_ERR_PROTOCOL};
    /* EMBBADDATA, EMBBADEXC, EMBUNKEXC, EMBMDATA, EMBBADSLAVE, MB_ESTRAY. */
    if (e >= MODBUS_ENOBASE)
        return (struct mb_failure){IB_R_PROTOCOL, 0, IB_ERR_PROTOCOL};
    /* Every system error (ECONNRESET, EPIPE, EBADF, ENOTCONN, EIO, ...) leaves the link in an
     * unknown state: only a new connection is trustworthy. */
    return (struct mb_failure){IB_R_CONN_LOST, 0, IB_ERR_CONNECTION};
}

int mb_severity(int err)
{
    switch (err) {
    case IB_OK:
        return 0;
    case IB_ERR_EXCEPTION:
        return 1;
    case IB_ERR_TIMEOUT:
        return 2;
    case IB_ERR_PROTOCOL:
        return 3;
    case IB_ERR_CONNECTION:
        return 5;
    default:
        return 4;
    }
}

static int64_t now_ms(const struct mb_instance *in)
{
    return in->host->monotonic_ms();
}

void mb_note_connection_lost(struct mb_instance *in, const struct mb_device *dev, int e)
{
    struct ib_episode *ep = &in->loss_ep;
    const char *dn = dev ? dev->name : NULL;
    switch (ib_episode_fail(ep, e, now_ms(in))) {
    case IB_EPISODE_STARTED:
        MB_LOG(in, IB_LOG_WARNING, dn, NULL,
               "connection to %s lost: %s; it is reopened, and further losses are counted and "
               "logged when the cause changes or the connection holds again",
               mb_link_name(in->link), mb_errtext(e));
        break;
    case IB_EPISODE_CHANGED:
        MB_LOG(in, IB_LOG_WARNING, dn, NULL, "connection to %s lost again, now: %s",
               mb_link_name(in->link), mb_errtext(e));
        break;
    case IB_EPISODE_REMIND:
        MB_LOG(in, IB_LOG_WARNING, dn, NULL,
               "connection to %s still lost after every few requests: %" PRIu64
               " losses in %" PRId64 " s (%s)",
               mb_link_name(in->link), ep->count, ib_episode_age_s(ep, now_ms(in)), mb_errtext(e));
        break;
    default:
        break;
    }
}

void mb_note_link_held(struct mb_instance *in)
{
    if (!in->loss_ep.active || (!in->close_after_poll && in->polls_on_link < 2))
        return;
    if (ib_episode_ok(&in->loss_ep, now_ms(in)) == IB_EPISODE_ENDED)
        MB_LOG(in, IB_LOG_NOTICE, NULL, NULL,
               "connection to %s holds again (it was lost %" PRIu64 " time(s) in %" PRId64 " s)",
               mb_link_name(in->link), in->loss_ep.count,
               ib_episode_age_s(&in->loss_ep, now_ms(in)));
}

void mb_note_opened(struct mb_instance *in, int level)
{
    in->polls_on_link = 0;
    if (ib_episode_ok(&in->open_ep, now_ms(in)) == IB_EPISODE_ENDED) {
        MB_LOG(in, IB_LOG_NOTICE, NULL, NULL,
               "connected to %s again, after %" PRIu64 " failed attempt(s) in %" PRId64 " s",
               mb_link_name(in->link), in->open_ep.count,
               ib_episode_age_s(&in->open_ep, now_ms(in)));
        return;
    }
    if (level >= 0)
        MB_LOG(in, in->loss_ep.active ? IB_LOG_DEBUG : level, NULL, NULL, "connected to %s again",
               mb_link_name(in->link));
}

int mb_ensure_open(struct mb_instance *in)
{
    if (mb_link_is_open(in->link))
        return 0;
    /* Without close_after_poll a closed link was lost: reopening it is the daemon's, with its
     * back-off. */
    if (!in->close_after_poll)
        return IB_ERR_CONNECTION;
    int err = mb_link_open(in->link);
    if (err == 0) {
        /* close_after_poll opens at every poll: that is routine, not news. */
        mb_note_opened(in, -1);
        return 0;
    }
    mb_log_open_error(in, err);
    return IB_ERR_CONNECTION;
}

static const char *open_error_text(int err)
{
    return err == ECONNREFUSED ? "connection refused"
           : err == ETIMEDOUT  ? "no answer within connect_timeout_ms"
           : err == ENOTTY     ? "the port has no RS-485 mode (rs485: true)"
                               : mb_errtext(err);
}

void mb_log_open_error(struct mb_instance *in, int err)
{
    /* The daemon retries with back-off: logged when the failure starts or its cause changes,
     * and reminded now and then with the count. */
    const char *verb = mb_link_kind(in->link) == MB_LINK_RTU ? "open" : "connect to";
    struct ib_episode *ep = &in->open_ep;
    switch (ib_episode_fail(ep, err, now_ms(in))) {
    case IB_EPISODE_STARTED:
    case IB_EPISODE_CHANGED:
        MB_LOG(in, IB_LOG_WARNING, NULL, NULL, "cannot %s %s: %s", verb, mb_link_name(in->link),
               open_error_text(err));
        break;
    case IB_EPISODE_REMIND:
        MB_LOG(in, IB_LOG_WARNING, NULL, NULL,
               "still cannot %s %s: %s (%" PRIu64 " attempts in %" PRId64 " s)", verb,
               mb_link_name(in->link), open_error_text(err), ep->count,
               ib_episode_age_s(ep, now_ms(in)));
        break;
    default:
        break;
    }
}

static void pause_for(struct mb_instance *in, const struct mb_device *dev)
{
    if (dev->pause_ms == 0 || in->last_request_us == 0)
        return;
    int64_t wait = in->last_request_us + (int64_t)dev->pause_ms * 1000 - mb_link_now_us();
    if (wait <= 0)
        return;
    struct timespec ts = {.tv_sec = wait / 1000000, .tv_nsec = (wait % 1000000) * 1000};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

/* A failure that another attempt may cure: the device or the line garbled or lost an answer.
 * An exception is the device's considered answer; a lost link is the daemon's to reopen. */
static bool retryable(int e)
{
    struct mb_failure f = mb_classify(e);
    return f.reason == IB_R_TIMEOUT || f.reason == IB_R_CRC || f.reason == IB_R_PROTOCOL;
}

struct op {
    bool write;
    unsigned table; /* reads */
    uint8_t fc;     /* writes */
    uint32_t addr, count;
    void *dest;
    const void *data;
};

static int transact(struct mb_instance *in, const struct mb_device *dev, const struct op *op,
                    int *e)
{
    /* A device in back-off gets one try: it is probed, not waited for. */
    uint32_t retries = dev->failed_polls > 0 ? 0 : dev->retries;
    mb_link_set_timeout(in->link, dev->timeout_ms);
    for (uint32_t attempt = 0;; attempt++) {
        if (!mb_link_is_open(in->link)) {
            *e = ENOTCONN;
            return -1;
        }
        pause_for(in, dev);
        int n = op->write ? mb_link_write(in->link, dev->unit_id, op->fc, (uint16_t)op->addr,
                                          (uint16_t)op->count, op->data)
                          : mb_link_read(in->link, dev->unit_id, op->table, (uint16_t)op->addr,
                                         (uint16_t)op->count, op->dest);
        *e = errno;
        bool single = op->write &&
                      (op->fc == MB_FC_WRITE_SINGLE_COIL || op->fc == MB_FC_WRITE_SINGLE_REGISTER);
        uint32_t expect = single ? 1 : op->count;
        bool ok = false;
        if (n >= 0) {
            /* A count other than asked for cannot come from libmodbus, rtu.c or mbap.c (both check
             * it), but a wrong value must never pass on that assumption alone. */
            if ((uint32_t)n != expect)
                *e = EMBBADDATA;
            else if (mb_link_settle(in->link) < 0)
                *e = errno;
            else
                ok = true;
        }
        in->last_request_us = mb_link_now_us();
        if (ok) {
            in->why[0] = '\0';
            return n;
        }
        snprintf(in->why, sizeof(in->why), "%s", mb_link_why(in->link));
        int lost = mb_link_recover(in->link, *e);
        if (lost != 0) {
            if (mb_classify(*e).reason != IB_R_CONN_LOST)
                *e = lost; /* a reconnect after a protocol error failed */
            return -1;
        }
        if (!retryable(*e) || attempt >= retries)
            return -1;
    }
}

int mb_transact_read(struct mb_instance *in, const struct mb_device *dev, unsigned table,
                     uint32_t addr, uint32_t count, void *dest, int *e)
{
    struct op op = {.table = table, .addr = addr, .count = count, .dest = dest};
    return transact(in, dev, &op, e);
}

int mb_transact_write(struct mb_instance *in, const struct mb_device *dev, uint8_t fc,
                      uint32_t addr, uint32_t count, const void *data, int *e)
{
    struct op op = {.write = true, .fc = fc, .addr = addr, .count = count, .data = data};
    return transact(in, dev, &op, e);
}
