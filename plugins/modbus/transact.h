/* One request as a device needs it (transact.c): its pause after the previous request on the
 * line, its retries, the check for bytes after the response, and the link brought back into step
 * after a failure. Knows the link and the protocol, not the plan or the instance. Called on the
 * connection's poller thread. */
#ifndef IB_MODBUS_TRANSACT_H
#define IB_MODBUS_TRANSACT_H

#include <stddef.h>
#include <stdint.h>

#include "link.h"

/* How to ask one device on one line. Pointers are borrowed for the call. */
struct mb_request_ctx {
    struct mb_link *link;
    int unit;
    uint32_t timeout_ms;      /* response timeout */
    uint32_t retries;         /* repeats of a request that timed out or came back garbled */
    uint32_t pause_ms;        /* before the request, after the line's previous one ended */
    int64_t *last_request_us; /* the line's: when its last request ended; updated */
    char *why;                /* gets what was wrong with the last attempt's response ("" when */
    size_t whylen;            /* unknown or when it succeeded); whylen > 0 */
};

/* Read count values of a table, or write with function code fc (5, 6, 15, 16), with the retries.
 * Returns the count (1 for FC5/FC6), or -1 with *e the errno of the last attempt (the link is
 * recovered, or closed when lost). dest and data as mb_link_read() and mb_link_write(). */
int mb_request_read(const struct mb_request_ctx *c, unsigned table, uint32_t addr, uint32_t count,
                    void *dest, int *e);
int mb_request_write(const struct mb_request_ctx *c, uint8_t fc, uint32_t addr, uint32_t count,
                     const void *data, int *e);

#endif
