/* The durable queue between the pollers and the north (docs/store.md): every record is appended
 * to a segment file before it can be published and leaves only after the broker acknowledged it.
 * Sequence numbers are gateway-wide and survive restarts. A record is opaque payload bytes plus a
 * header (seq, time, topic); the store never writes the payload's format itself: the encoder
 * writes the seq into the payload through the ib_store_head_fn it hands to ib_store_push.
 *
 * Threads and locks: one mutex (store.mu) guards the store's state; pollers (push), the north
 * (next, ack, nack, rewind, from its thread and paho's) and the store's flusher thread take it.
 * Lock order: north.mu -> store.mu -> north.wake_mu (north.h). Under store.mu the store calls
 * only the ib_store_head_fn of a push and the ib_store_notify_fn, both of which must take no lock
 * but a leaf one and never call the store. */
#ifndef IB_STORE_H
#define IB_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The store section (docs/store.md). */
enum ib_fsync_policy { IB_FSYNC_BATCH = 0, IB_FSYNC_ALWAYS = 1 };

/* The durable queue between the core and the north (docs/store.md). */
struct ib_store_cfg {
    const char *path;  /* absolute */
    bool path_default; /* no store.path in the file: $STATE_DIRECTORY/queue or /var/lib/... */
    int64_t max_bytes;
    int64_t max_age_ms;
    int32_t fsync; /* enum ib_fsync_policy */
    int64_t fsync_interval_ms;
    int64_t fsync_bytes;
    int64_t replay_rate; /* backlog records per second; 0: unlimited */
    int64_t memory_max_bytes;
};

struct ib_store;

struct ib_store_rec {
    uint64_t seq;
    const char *topic;   /* both point into the store's send buffer, valid until the next */
    const char *payload; /* ib_store_next() call; paho copies them when publishing */
    size_t len;
};

struct ib_store_stats {
    uint64_t queued;                 /* records not yet acknowledged, on disk and in memory */
    uint64_t inflight;               /* handed out by ib_store_next, not yet acknowledged */
    uint64_t bytes;                  /* disk bytes of the segments */
    uint64_t mem_records, mem_bytes; /* held in memory because the disk refused them */
    uint64_t pushed, acked;
    uint64_t dropped; /* dropped_full + dropped_age + dropped_memory + dropped_large */
    uint64_t dropped_full, dropped_age, dropped_memory, dropped_large;
    uint64_t damaged;   /* records discarded because their bytes were damaged (CRC) */
    uint64_t replaying; /* backlog records of the current connection not yet acknowledged */
    uint64_t last_seq;
    int disk_error;    /* 0 while the disk takes writes, else the errno that stopped it */
    int64_t oldest_ms; /* wall clock: creation of the oldest segment (or memory record) still
                          holding an unacknowledged record; 0 when none */
};

/* Open (creating it with mode 0700) the store at cfg->path: recover the segments left by an
 * earlier run (a damaged or torn tail is cut off and counted), continue the sequence numbers,
 * start the flusher thread. `cfg` is copied. Returns NULL after logging why (the
 * directory cannot be created or used, or another process holds it); a disk that is full or
 * read-only is not a reason: the store then starts in memory and recovers by itself. */
struct ib_store *ib_store_open(const struct ib_store_cfg *cfg);
/* Final fsync, a clean checkpoint (the next open continues exactly), close. Accepts NULL. */
void ib_store_close(struct ib_store *s);

/* The most bytes an ib_store_head_fn may write. */
#define IB_STORE_HEAD_MAX 32

/* Writes the start of a record's payload that depends on its sequence number `seq` into buf
 * (cap = IB_STORE_HEAD_MAX bytes) and returns its length (<= cap). Called by ib_store_push on
 * the pushing thread with store.mu held, once the seq is assigned: it must be quick, take no
 * lock and not call the store. NULL: no head. */
typedef size_t (*ib_store_head_fn)(void *ud, uint64_t seq, char *buf, size_t cap);

/* Append a record: payload = head(seq) + body (opaque bytes, copied). Returns seq, or 0 when
 * the record was dropped (larger than a quarter of max_bytes, or out of memory while the disk
 * is failing; counted). Never waits for the broker; with fsync: always it waits for the disk. */
uint64_t ib_store_push(struct ib_store *s, const char *topic, ib_store_head_fn head, void *head_ud,
                       const void *body, size_t body_len);

/* Called with store.mu held whenever something a sender may wait for happened: a record was
 * appended, an acknowledgement freed room the sender was waiting for (its last
 * ib_store_next found max_inflight in flight, or it asked with ib_store_wake_on_ack), a
 * sequence floor was persisted, a rewind. It must
 * only signal (a leaf lock at most) and never call the store. */
typedef void (*ib_store_notify_fn)(void *ud);
/* Set the sender's wake-up (one sender at a time: a new one replaces the last), before it starts
 * calling ib_store_next; with fn NULL, clear it if `ud` is still the one set (so that a north
 * stopping after its successor started does not clear the successor's). Any thread. */
void ib_store_set_notify(struct ib_store *s, ib_store_notify_fn fn, void *ud);

/* Take the next record to send, without waiting, and mark it in flight. Live records (queued
 * while connected) go first; the backlog (what was queued before the connection) follows
 * oldest first at up to replay_rate records/s; each lane is in sequence order. Returns false
 * when there is none now or max_inflight records are in flight; then, when wait_ms is not NULL,
 * *wait_ms is the time until the replay rate lets the next backlog record go (-1: until
 * notified). */
bool ib_store_next(struct ib_store *s, unsigned max_inflight, struct ib_store_rec *out,
                   int64_t *wait_ms);

/* From now on every acknowledgement notifies (a sender flushing before it stops waits for the
 * last one); otherwise only one that frees the in-flight window the sender found full: an
 * acknowledgement the sender does not wait for wakes nobody (issue 21). Any thread. */
void ib_store_wake_on_ack(struct ib_store *s);

/* The broker has it. Unknown seqs (rewound, dropped) are ignored. */
void ib_store_ack(struct ib_store *s, uint64_t seq);
/* Sending failed: that record and those sent after it in its lane are sent again, in order. */
void ib_store_nack(struct ib_store *s, uint64_t seq);
/* The connection was lost: nothing is in flight any more; everything not acknowledged is the
 * backlog of the next connection. */
void ib_store_rewind(struct ib_store *s);

/* Records queued and not yet handed to the north: while connected, the live records it has
 * not taken yet; while not, everything not acknowledged. 0 for NULL. */
uint64_t ib_store_unsent(struct ib_store *s);

void ib_store_stats(struct ib_store *s, struct ib_store_stats *st);
/* One phrase for the status line: "queue 12 records, 0 dropped" (the backlog: records not yet
 * acknowledged), then only when there is something to say: ", 3 damaged", ", replaying 1200",
 * ", STORE DISK FAILING (No space left on device): 40 records in memory". */
void ib_store_describe(struct ib_store *s, char *buf, size_t len);

#endif
