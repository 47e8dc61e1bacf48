/* The outbound queue between the pollers and the north: records in sequence order, each kept
 * until the broker acknowledged it (QoS 1) or it was written (QoS 0). Bounded in bytes: when full
 * the oldest record not in flight is dropped and counted. In memory; the durable store replaces
 * it behind the same functions. One mutex guards it all. */
#ifndef IB_OUTQ_H
#define IB_OUTQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct ib_outq;

struct ib_outq_rec {
    uint64_t seq;
    const char *topic; /* points into the record */
    const char *payload;
    size_t len;
};

struct ib_outq_stats {
    uint64_t queued, inflight, bytes;
    uint64_t pushed, acked, dropped;
    uint64_t last_seq;
};

struct ib_outq *ib_outq_new(size_t max_bytes);
void ib_outq_free(struct ib_outq *q);

/* Append a record: payload = {"seq":N + body. The next gateway-wide sequence number is taken
 * under the queue's lock, so records are queued in sequence order. Returns the sequence number,
 * or 0 on out-of-memory (counted as dropped). Never blocks on the north. */
uint64_t ib_outq_push(struct ib_outq *q, const char *topic, const char *body, size_t body_len);

/* Wait up to timeout_ms for a record not yet sent, mark it in flight and return it (the
 * pointers stay valid until ib_outq_ack/ib_outq_nack of that seq). Returns false on timeout, on
 * ib_outq_wake(), or when `max_inflight` records are already in flight. */
bool ib_outq_next(struct ib_outq *q, int timeout_ms, unsigned max_inflight,
                  struct ib_outq_rec *out);

/* The broker has it: drop the record. Unknown seqs (already dropped) are ignored. */
void ib_outq_ack(struct ib_outq *q, uint64_t seq);
/* Sending failed: the record goes back to be sent again, in order. */
void ib_outq_nack(struct ib_outq *q, uint64_t seq);
/* The connection was lost: everything in flight is sent again (at-least-once delivery). */
void ib_outq_rewind(struct ib_outq *q);
/* Wake a waiter of ib_outq_next (state changed: connected, stopping). */
void ib_outq_wake(struct ib_outq *q);

void ib_outq_stats(struct ib_outq *q, struct ib_outq_stats *st);
/* Change the byte bound (a reload); applies from the next push. */
void ib_outq_set_limit(struct ib_outq *q, size_t max_bytes);

#endif
