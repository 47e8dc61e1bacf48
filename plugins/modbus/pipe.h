/* Modbus TCP with several requests in flight (pipe.c): which requests are outstanding, and the
 * answers that arrive on the stream matched to them by MBAP transaction id, late and unknown
 * answers dropped and counted, and what shows that the device mishandles several requests in
 * flight. Pure: no I/O (link_pipe.c sends, waits and reads); callable on a buffer and its length.
 * One mb_pipe belongs to one link and is used by its poller thread alone. */
#ifndef IB_MODBUS_PIPE_H
#define IB_MODBUS_PIPE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mbap.h"

/* The most requests in flight on one connection (max_outstanding's upper bound). */
#define MB_PIPE_MAX 16
/* Timed-out transaction ids remembered, so that their answers are told apart from unknown ones. */
#define MB_PIPE_LATE 32

/* One read of a batch. The caller fills the request; the pipe fills the outcome. */
struct mb_pipe_item {
    uint8_t table; /* enum mb_table */
    uint16_t addr, count;
    void *dest; /* count registers (uint16_t) or bits (one byte each); written only on success */
    /* outcome */
    int rc;    /* the count, or -1 */
    int err;   /* errno when rc is -1: an exception (EMBX*), EMBBADDATA..., ETIMEDOUT; 0: the
                  request was never answered nor timed out (the batch stopped first) */
    bool done; /* rc and err hold the outcome */
};

struct mb_pipe_slot {
    bool busy;
    uint16_t tid;
    uint32_t item;
    int64_t deadline_us;
    size_t req_len;
    uint8_t req[MB_MBAP_MAX_ADU];
};

struct mb_pipe {
    struct mb_pipe_slot slot[MB_PIPE_MAX];
    uint32_t n_busy;
    uint16_t late[MB_PIPE_LATE]; /* ring of timed-out transaction ids */
    uint32_t n_late, late_at;
    size_t have; /* bytes in rx not yet framed */
    uint8_t rx[2 * MB_MBAP_MAX_ADU];
    uint32_t answered;  /* answers matched to a request in flight, this batch */
    uint32_t timed_out; /* requests that timed out, this batch: still unanswered on the wire */
    /* Counters over the pipe's life, for debug logs and tests. */
    uint64_t late_dropped;    /* answers to requests that had timed out */
    uint64_t unknown_dropped; /* answers with a transaction id no request had */
    /* Set when the device showed that it mishandles several requests in flight: what it did. */
    char misbehaved[160];
    char note[160]; /* the last dropped answer, for a debug log; "" when none */
};

/* Start a batch: no request in flight, nothing buffered; the counters and the late ring stay. */
void mb_pipe_begin(struct mb_pipe *p);

/* Put a request frame in flight (the frame's first two bytes are its transaction id). Returns its
 * slot, or -1 when all MB_PIPE_MAX slots are busy or the frame is longer than MB_MBAP_MAX_ADU. */
int mb_pipe_add(struct mb_pipe *p, uint32_t item, const uint8_t *req, size_t req_len,
                int64_t deadline_us);

/* The earliest deadline of a request in flight; INT64_MAX when none. */
int64_t mb_pipe_next_deadline(const struct mb_pipe *p);

/* Requests whose deadline is before now time out: items[...] get ETIMEDOUT, their transaction
 * ids are remembered as late. Returns how many timed out. */
uint32_t mb_pipe_expire(struct mb_pipe *p, struct mb_pipe_item *items, int64_t now_us);

/* Bytes from the stream: complete frames are matched to the requests in flight and checked
 * (mb_mbap_check_response), their items done; answers to timed-out requests and answers with
 * unknown transaction ids are dropped and counted. An unknown id, or a second answer to an
 * answered request, while more than one request was in flight, sets `misbehaved`. Returns 0, or
 * -1 when the stream is out of step (a frame that cannot be framed, more bytes than the buffer
 * holds): the caller must reconnect; the items still in flight are left not done. */
int mb_pipe_feed(struct mb_pipe *p, struct mb_pipe_item *items, const uint8_t *data, size_t n);

/* Room for the next read from the stream into rx + have (never 0 while in step). */
size_t mb_pipe_room(const struct mb_pipe *p);

#endif
