/* One request as a device needs it: its pause after the previous request, its retries, the check
 * for bytes after the response, and the link brought back into step after a failure. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <modbus.h>

#include "instance.h"
#include "link_impl.h" /* mb_link_now_us */

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
