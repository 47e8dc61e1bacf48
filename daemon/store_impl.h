/* Private to the store's files (store*.c): the store's state, shared by its parts, and the
 * functions one part calls in another. Every function here is called with s->mu held unless it
 * says otherwise. Not for other modules: they use store.h. */
#ifndef IB_STORE_IMPL_H
#define IB_STORE_IMPL_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include <ironbridge/log.h>

#include "log.h"
#include "store.h"
#include "store_format.h"
#include "util.h"

#define CKPT_NAME       "checkpoint"
#define SEQ_RESERVE     65536u /* sequence numbers persisted ahead of use (power-loss guard) */
#define MEM_RESERVE     4096u  /* same for records sent from memory (the disk refused them) */
#define MAX_HOLES       64
#define READ_CHUNK      (128 * 1024)
#define HOUSEKEEPING_MS 1000
#define EPISODE_END_MS  10000 /* drops this far apart are one episode */

enum { LANE_BACKLOG = 0, LANE_LIVE = 1 };
enum { DROP_FULL, DROP_AGE, DROP_MEMORY, N_DROP };

extern const char *const store_drop_reason[N_DROP];

/* One segment file, seg-<id>.ibq. Its records have seqs in [id, next segment's id). */
struct seg {
    uint64_t id;
    uint64_t first, last;        /* seqs of the first and last record; meaningless when n == 0 */
    uint64_t n, done;            /* records; records acknowledged (or counted as dropped) */
    uint64_t size;               /* bytes: header and valid frames */
    int64_t created_ms, last_ts; /* wall clock: creation, newest record */
};

/* A record held in memory because the disk refused it. */
struct mrec {
    struct mrec *next;
    uint64_t seq;
    int64_t ts;
    size_t size; /* of the allocation */
    uint32_t tl, len;
    bool done;
    char data[]; /* topic NUL payload NUL */
};

/* One sending order: the backlog (what was queued before this connection) or the live lane.
 * The reader fields are the north thread's read-ahead window over one segment file. */
struct lane {
    uint64_t next;  /* the lowest seq that may still have to be sent */
    uint64_t end;   /* the lane's last seq (inclusive) */
    uint64_t acked; /* every record of the lane up to here is done */
    int fd;
    uint64_t fd_id;
    unsigned char *buf;
    size_t cap, buf_len;
    uint64_t buf_off;
    uint64_t pos_id, pos_off, pos_seq; /* in segment pos_id, frames before pos_off are < pos_seq */
    struct mrec *mhint;                /* a memory record at or before next, if mhint_seq >= */
    uint64_t mhint_seq;                /* the head's seq (still in the list) */
};

struct inflight {
    uint64_t seq;
    uint8_t lane;
    bool acked;
};

struct range {
    uint64_t lo, hi;
};

/* An episode of drops for one reason (docs/store.md "Counting"): logged when it starts, as a
 * reminder every 10 min while it lasts, and when no drop came for EPISODE_END_MS. */
struct drop_episode {
    struct ib_episode ep;
    uint64_t n, lo, hi; /* records dropped, first and last seq */
    int64_t last_ms;    /* the last drop */
};

struct ib_store {
    const struct ib_store_cfg *cfg; /* = &settings */
    struct ib_store_cfg settings;   /* a copy (path included): a reload frees the config */
    uint64_t seg_bytes, max_record;
    int64_t seg_age_ms;
    int dirfd, ckpt_fd;
    char boot_id[40];

    pthread_mutex_t mu;        /* guards everything below; see store.h for the lock order */
    pthread_cond_t fcv;        /* the flusher waits here */
    ib_store_notify_fn notify; /* the sender's wake-up, called with mu held */
    void *notify_ud;
    uint64_t next_seq;
    struct seg *segs;
    size_t n_segs, cap_segs;
    int active_fd;  /* of segs[n_segs - 1]; -1 when the disk failed */
    int sealed_fd;  /* a rotated segment waiting for its last fdatasync by the flusher */
    bool dir_dirty; /* a segment was created: the directory needs an fsync */
    uint64_t disk_bytes, unsynced;
    int64_t unsynced_since;

    struct mrec *mhead, *mtail;
    uint64_t mbytes, mcount;
    struct mrec *mack; /* where the last acknowledged memory record was found */
    uint64_t mack_seq;

    int disk_err;
    int64_t disk_fail_since, next_probe;
    uint64_t disk_fail_mem; /* records that went to memory in this episode */

    struct lane lane[2];
    bool boundary_pending; /* the next connection's backlog boundary is not yet fixed */
    bool backlog_active;
    uint64_t replay_total;
    int64_t replay_said_ms; /* when a replay's start was last logged (monotonic; 0: never) */
    int64_t replay_t0;
    double tokens;
    int64_t tokens_ms;

    struct inflight *ring;
    size_t ring_cap, ring_head, ring_len, ring_lane_n[2];
    bool window_full; /* the last ib_store_next found max_inflight in flight: an ack notifies */
    bool ack_wakes;   /* ib_store_wake_on_ack: every ack notifies */
    struct range holes[MAX_HOLES]; /* acknowledged seqs above the backlog, sorted */
    size_t n_holes;

    uint64_t floor_ok, mem_floor_ok; /* persisted: seqs up to these may be sent */
    uint64_t ck_acked;               /* acked position in the checkpoint file */
    uint64_t ck_gen;
    bool ck_failed;

    uint64_t pending, pushed, acked;
    uint64_t dropped[N_DROP], dropped_large, damaged;
    struct drop_episode ep[N_DROP];
    struct ib_ratelimit rl_large, rl_damage;

    struct ib_buf send; /* the record handed out by ib_store_next */
    pthread_t flusher;
    bool flusher_started, stop;
};

/* Tell the sender that something it may wait for happened (records, acknowledgements, a
 * persisted floor, a rewind). */
static inline void store_notify(struct ib_store *s)
{
    if (s->notify)
        s->notify(s->notify_ud);
}

/* store_segments.c: segment files and appending to them. */
void store_seg_name(char *buf, size_t len, uint64_t id);
long store_seg_index(const struct ib_store *s, uint64_t seq);
bool store_seg_is_active(const struct ib_store *s, size_t i);
void store_seg_remove(struct ib_store *s, size_t i);
int store_seg_create(struct ib_store *s, uint64_t id);
int store_disk_append(struct ib_store *s, uint64_t seq, int64_t ts, const char *topic, size_t tl,
                      const struct iovec *parts, int n_parts);
void store_disk_fail(struct ib_store *s, int err);
void store_drop_oldest(struct ib_store *s, int why);
void store_drop_note(struct ib_store *s, int why, uint64_t n, uint64_t lo, uint64_t hi);
void store_pending_sub(struct ib_store *s, uint64_t n);

/* store_memory.c: the memory list used while the disk refuses writes. */
bool store_mem_append(struct ib_store *s, uint64_t seq, int64_t ts, const char *topic, size_t tl,
                      const struct iovec *parts, int n_parts);
void store_mem_pop_head(struct ib_store *s);
void store_mem_drop_head(struct ib_store *s, int why);
void store_mem_trim(struct ib_store *s);
struct mrec *store_mem_find(struct ib_store *s, uint64_t seq, struct mrec *hint, uint64_t hint_seq);

/* store_lanes.c: what is sent next, acknowledgements, the replay. */
void store_mark_gone(struct ib_store *s, uint64_t upto);
uint64_t store_acked_through(const struct ib_store *s);
void store_lane_close(struct lane *l);

/* store_checkpoint.c: the two-slot checkpoint file. */
int store_ckpt_read(int fd, struct ib_store_ckpt *out);
int store_ckpt_write(struct ib_store *s, struct ib_store_ckpt *c); /* s->mu not needed */
void store_checkpoint_flush(struct ib_store *s);

/* store_flusher.c: the flusher thread (fsync, housekeeping, disk recovery). */
void *store_flusher_main(void *arg); /* takes s->mu itself */
void store_try_recover(struct ib_store *s);

/* store_recovery.c: reading what earlier runs left, at open. */
struct store_open_report {
    uint64_t damaged, damaged_bytes, places;
    uint64_t records, bytes;
};
int store_load_segments(struct ib_store *s, const struct ib_store_ckpt *ck, bool have_ck,
                        struct store_open_report *rep);

#endif
