/* The durable queue between the pollers and the north (docs/store.md): every record is appended
 * to a segment file before it can be published and leaves only after the broker acknowledged it.
 * Sequence numbers are gateway-wide and survive restarts. One mutex guards the state. */
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
    int disk_error; /* 0 while the disk takes writes, else the errno that stopped it */
};

/* Open (creating it with mode 0700) the store at cfg->path: recover the segments left by an
 * earlier run (a damaged or torn tail is cut off and counted), continue the sequence numbers,
 * start the flusher thread. `cfg` is copied. Returns NULL after logging why (the
 * directory cannot be created or used, or another process holds it); a disk that is full or
 * read-only is not a reason: the store then starts in memory and recovers by itself. */
struct ib_store *ib_store_open(const struct ib_store_cfg *cfg);
/* Final fsync, a clean checkpoint (the next open continues exactly), close. Accepts NULL. */
void ib_store_close(struct ib_store *s);

/* Append a record: payload = {"seq":N + body. Returns N, or 0 when the record was dropped
 * (larger than a quarter of max_bytes, or out of memory while the disk is failing; counted).
 * Never waits for the broker; with fsync: always it waits for the disk. */
uint64_t ib_store_push(struct ib_store *s, const char *topic, const char *body, size_t body_len);

/* Wait up to timeout_ms for a record to send and mark it in flight. Live records (queued while
 * connected) go first; the backlog (what was queued before the connection) follows oldest
 * first at up to replay_rate records/s; each lane is in sequence order. Returns false on
 * timeout, on ib_store_wake(), or when max_inflight records are in flight (0: only wait). */
bool ib_store_next(struct ib_store *s, int timeout_ms, unsigned max_inflight,
                   struct ib_store_rec *out);

/* The broker has it. Unknown seqs (rewound, dropped) are ignored. */
void ib_store_ack(struct ib_store *s, uint64_t seq);
/* Sending failed: that record and those sent after it in its lane are sent again, in order. */
void ib_store_nack(struct ib_store *s, uint64_t seq);
/* The connection was lost: nothing is in flight any more; everything not acknowledged is the
 * backlog of the next connection. */
void ib_store_rewind(struct ib_store *s);
/* Wake a waiter of ib_store_next (the north's state changed). */
void ib_store_wake(struct ib_store *s);

/* Records queued and not yet handed to the north: while connected, the live records it has
 * not taken yet; while not, everything not acknowledged. 0 for NULL. */
uint64_t ib_store_unsent(struct ib_store *s);

void ib_store_stats(struct ib_store *s, struct ib_store_stats *st);
/* One phrase for the status line: "queue 12 records, 0 dropped" (the backlog: records not yet
 * acknowledged), then only when there is something to say: ", 3 damaged", ", replaying 1200",
 * ", STORE DISK FAILING (No space left on device): 40 records in memory". */
void ib_store_describe(struct ib_store *s, char *buf, size_t len);

#endif
