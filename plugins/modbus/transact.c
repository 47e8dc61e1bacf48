/* One request as a device needs it: its pause after the previous request, its retries, the check
 * for bytes after the response, and the link brought back into step after a failure. */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <modbus.h>

#include <ironbridge/ironbridge.h>

#include "errors.h"
#include "link_impl.h" /* mb_link_now_us */
#include "proto.h"
#include "transact.h"

static void pause_for(const struct mb_request_ctx *c)
{
    if (c->pause_ms == 0 || *c->last_request_us == 0)
        return;
    int64_t wait = *c->last_request_us + (int64_t)c->pause_ms * 1000 - mb_link_now_us();
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

static int transact(const struct mb_request_ctx *c, const struct op *op, int *e)
{
    mb_link_set_timeout(c->link, c->timeout_ms);
    for (uint32_t attempt = 0;; attempt++) {
        if (!mb_link_is_open(c->link)) {
            *e = ENOTCONN;
            return -1;
        }
        pause_for(c);
        int n = op->write ? mb_link_write(c->link, c->unit, op->fc, (uint16_t)op->addr,
                                          (uint16_t)op->count, op->data)
                          : mb_link_read(c->link, c->unit, op->table, (uint16_t)op->addr,
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
            else if (mb_link_settle(c->link) < 0)
                *e = errno;
            else
                ok = true;
        }
        *c->last_request_us = mb_link_now_us();
        if (ok) {
            c->why[0] = '\0';
            return n;
        }
        snprintf(c->why, c->whylen, "%s", mb_link_why(c->link));
        int lost = mb_link_recover(c->link, *e);
        if (lost != 0) {
            if (mb_classify(*e).reason != IB_R_CONN_LOST)
                *e = lost; /* a reconnect after a protocol error failed */
            return -1;
        }
        if (!retryable(*e) || attempt >= c->retries)
            return -1;
    }
}

int mb_request_read(const struct mb_request_ctx *c, unsigned table, uint32_t addr, uint32_t count,
                    void *dest, int *e)
{
    struct op op = {.table = table, .addr = addr, .count = count, .dest = dest};
    return transact(c, &op, e);
}

int mb_request_write(const struct mb_request_ctx *c, uint8_t fc, uint32_t addr, uint32_t count,
                     const void *data, int *e)
{
    struct op op = {.write = true, .fc = fc, .addr = addr, .count = count, .data = data};
    return transact(c, &op, e);
}
