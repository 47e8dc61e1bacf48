/* The durable store: append-only segment files of CRC32C-framed records, a two-slot checkpoint,
 * a flusher thread for batched fsync and housekeeping, and a bounded memory list for the time
 * the disk refuses writes. Memory does not grow with the backlog: records are read back from
 * disk through a small read-ahead window per lane. The format is documented in docs/store.md. */
#include "store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "crc32c.h"
#include "log.h"
#include "units.h"
#include "util.h"

#define SEG_MAGIC       "IBQSEG01"
#define SEG_HDR         32 /* magic, id, created ms, reserved, crc */
#define FRAME_HDR       8  /* crc, len */
#define REC_HDR         20 /* seq, ts, topic length, reserved */
#define MAX_RECORD      (16u << 20)
#define CKPT_MAGIC      "IBQCKP01"
#define CKPT_SLOT       128
#define CKPT_NAME       "checkpoint"
#define SEQ_RESERVE     65536u /* sequence numbers persisted ahead of use (power-loss guard) */
#define MEM_RESERVE     4096u  /* same for records sent from memory (the disk refused them) */
#define MAX_HOLES       64
#define READ_CHUNK      (128 * 1024)
#define HOUSEKEEPING_MS 1000
#define EPISODE_END_MS  10000 /* drops this far apart are one episode */

enum { LANE_BACKLOG = 0, LANE_LIVE = 1 };
enum { DROP_FULL, DROP_AGE, DROP_MEMORY, N_DROP };

/* ---- little-endian fields -------------------------------------------------------------------- */

static void put16(unsigned char *p, uint16_t v)
{
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
}
static void put32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}
static void put64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}
static uint16_t get16(const unsigned char *p)
{
    return (uint16_t)(p[0] | p[1] << 8);
}
static uint32_t get32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint64_t get64(const unsigned char *p)
{
    return (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32;
}

/* ---- state ----------------------------------------------------------------------------------- */

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

struct episode {
    bool active;
    uint64_t n, lo, hi;
    int64_t last_ms;
};

struct ib_store {
    const struct ib_store_cfg *cfg; /* = &settings */
    struct ib_store_cfg settings;   /* a copy (path included): a reload frees the config */
    uint64_t seg_bytes, max_record;
    int64_t seg_age_ms;
    int dirfd, ckpt_fd;
    char boot_id[40];

    pthread_mutex_t mu; /* guards everything below */
    pthread_cond_t cv;  /* the north waits here for records, acks and wake-ups */
    pthread_cond_t fcv; /* the flusher waits here */
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
    int64_t replay_t0;
    double tokens;
    int64_t tokens_ms;

    struct inflight *ring;
    size_t ring_cap, ring_head, ring_len, ring_lane_n[2];
    struct range holes[MAX_HOLES]; /* acknowledged seqs above the backlog, sorted */
    size_t n_holes;

    uint64_t floor_ok, mem_floor_ok; /* persisted: seqs up to these may be sent */
    uint64_t ck_acked;               /* acked position in the checkpoint file */
    uint64_t ck_gen;
    bool ck_failed;

    uint64_t pending, pushed, acked;
    uint64_t dropped[N_DROP], dropped_large, damaged;
    struct episode ep[N_DROP];
    struct ib_ratelimit rl_large, rl_damage;

    struct ib_buf send; /* the record handed out by ib_store_next */
    unsigned wakeups;
    pthread_t flusher;
    bool flusher_started, stop;
};

static const char *const drop_reason[N_DROP] = {
    [DROP_FULL] = "the store is full (max_bytes)",
    [DROP_AGE] = "they are older than max_age",
    [DROP_MEMORY] = "the memory buffer is full while the disk refuses writes (memory_max_bytes)",
};

/* ---- frames ---------------------------------------------------------------------------------- */

struct frame {
    uint64_t seq;
    int64_t ts;
    uint32_t len, tl; /* body length, topic length */
};

/* Is there a whole, intact frame at p (avail bytes)? */
static bool frame_ok(const unsigned char *p, size_t avail, uint64_t max_record, struct frame *f)
{
    if (avail < FRAME_HDR + REC_HDR)
        return false;
    uint32_t len = get32(p + 4);
    if (len < REC_HDR || len > max_record || (size_t)len > avail - FRAME_HDR)
        return false;
    uint32_t tl = get16(p + FRAME_HDR + 16);
    if (tl > len - REC_HDR || ib_crc32c(p + 4, 4 + (size_t)len) != get32(p))
        return false;
    f->len = len;
    f->tl = tl;
    f->seq = get64(p + FRAME_HDR);
    f->ts = (int64_t)get64(p + FRAME_HDR + 8);
    return true;
}

static void seg_name(char *buf, size_t len, uint64_t id)
{
    snprintf(buf, len, "seg-%016" PRIx64 ".ibq", id);
}

/* ---- holes and lanes ------------------------------------------------------------------------- */

static const struct range *hole_at(const struct ib_store *s, uint64_t seq)
{
    for (size_t i = 0; i < s->n_holes && s->holes[i].lo <= seq; i++)
        if (seq <= s->holes[i].hi)
            return &s->holes[i];
    return NULL;
}

/* Records lo..hi are acknowledged: the backlog skips them. When the list is full the range is
 * not kept; those records are then sent again (a duplicate, never a loss). */
static void hole_add(struct ib_store *s, uint64_t lo, uint64_t hi)
{
    if (s->n_holes == MAX_HOLES)
        return;
    size_t i = 0;
    while (i < s->n_holes && s->holes[i].lo < lo)
        i++;
    memmove(&s->holes[i + 1], &s->holes[i], (s->n_holes - i) * sizeof s->holes[0]);
    s->holes[i] = (struct range){lo, hi};
    s->n_holes++;
}

/* Every seq up to `upto` is done or gone (dropped with its segment). */
static void mark_gone(struct ib_store *s, uint64_t upto)
{
    for (int i = 0; i < 2; i++) {
        struct lane *l = &s->lane[i];
        uint64_t a = upto < l->end ? upto : l->end;
        if (a > l->acked)
            l->acked = a;
        if (l->next <= upto)
            l->next = upto + 1;
    }
    size_t k = 0;
    for (size_t i = 0; i < s->n_holes; i++) {
        if (s->holes[i].hi <= upto)
            continue;
        if (s->holes[i].lo <= upto)
            s->holes[i].lo = upto + 1;
        s->holes[k++] = s->holes[i];
    }
    s->n_holes = k;
}

static uint64_t acked_through(const struct ib_store *s)
{
    return s->boundary_pending || s->backlog_active ? s->lane[LANE_BACKLOG].acked
                                                    : s->lane[LANE_LIVE].acked;
}

static void backlog_check_done(struct ib_store *s)
{
    struct lane *b = &s->lane[LANE_BACKLOG];
    if (!s->backlog_active || s->boundary_pending || b->next <= b->end ||
        s->ring_lane_n[LANE_BACKLOG])
        return;
    s->backlog_active = false;
    s->n_holes = 0; /* all of them lie inside the finished backlog */
    if (s->replay_total)
        ib_log(IB_LOG_INFO, NULL, NULL, NULL,
               "store: replay finished: %" PRIu64 " records of the backlog in %.1f s",
               s->replay_total, (double)(ib_monotonic_ms() - s->replay_t0) / 1000.0);
    s->replay_total = 0;
}

/* ---- segments -------------------------------------------------------------------------------- */

/* The index of the segment whose seq range holds `seq`, or -1 (before the oldest). */
static long seg_index(const struct ib_store *s, uint64_t seq)
{
    long lo = 0, hi = (long)s->n_segs - 1, r = -1;
    while (lo <= hi) {
        long mid = (lo + hi) / 2;
        if (s->segs[mid].id <= seq) {
            r = mid;
            lo = mid + 1;
        } else {
            hi = mid - 1;
        }
    }
    return r;
}

static bool seg_is_active(const struct ib_store *s, size_t i)
{
    return s->active_fd >= 0 && i + 1 == s->n_segs;
}

static void lane_close_file(struct lane *l)
{
    if (l->fd >= 0)
        close(l->fd);
    l->fd = -1;
    l->buf_len = 0;
}

static void seg_remove(struct ib_store *s, size_t i)
{
    char name[40];
    seg_name(name, sizeof name, s->segs[i].id);
    if (unlinkat(s->dirfd, name, 0) < 0 && errno != ENOENT)
        ib_log(IB_LOG_WARNING, NULL, NULL, NULL, "store: cannot delete %s: %s", name,
               strerror(errno));
    for (int k = 0; k < 2; k++)
        if (s->lane[k].fd_id == s->segs[i].id)
            lane_close_file(&s->lane[k]); /* an open file would keep its space in use */
    s->disk_bytes -= s->segs[i].size;
    memmove(&s->segs[i], &s->segs[i + 1], (s->n_segs - i - 1) * sizeof s->segs[0]);
    s->n_segs--;
}

static void episode_note(struct ib_store *s, int why, uint64_t n, uint64_t lo, uint64_t hi)
{
    struct episode *e = &s->ep[why];
    s->dropped[why] += n;
    if (!e->active) {
        *e = (struct episode){.active = true, .lo = lo};
        ib_log(IB_LOG_WARNING, NULL, NULL, NULL,
               "store: dropping the oldest records because %s (first seq %" PRIu64
               "); every dropped record is counted in the status",
               drop_reason[why], lo);
    }
    e->n += n;
    e->hi = hi;
    e->last_ms = ib_monotonic_ms();
}

static void pending_sub(struct ib_store *s, uint64_t n)
{
    s->pending = n > s->pending ? 0 : s->pending - n;
}

/* Drop the oldest segment with whatever it still holds (counted under `why`). */
static void drop_oldest(struct ib_store *s, int why)
{
    struct seg *g = &s->segs[0];
    uint64_t lost = g->n > g->done ? g->n - g->done : 0;
    if (lost) {
        pending_sub(s, lost);
        episode_note(s, why, lost, g->first, g->last);
    }
    if (g->n)
        mark_gone(s, g->last);
    seg_remove(s, 0);
}

/* The disk refused a write (errno `err`): from now on records go to memory until the flusher
 * finds the disk usable again. */
static void disk_fail(struct ib_store *s, int err)
{
    if (!s->disk_err) {
        char mem[32];
        ib_format_size(mem, sizeof mem, (uint64_t)s->cfg->memory_max_bytes);
        ib_log(IB_LOG_ERR, NULL, NULL, NULL,
               "store: cannot write to %s: %s; polling goes on and records are kept in memory "
               "(up to %s, then the oldest are dropped and counted) until the disk accepts "
               "writes again",
               s->cfg->path, strerror(err), mem);
        s->disk_fail_since = ib_monotonic_ms();
        s->disk_fail_mem = 0;
        s->next_probe = s->disk_fail_since + HOUSEKEEPING_MS;
    }
    s->disk_err = err;
    if (s->active_fd >= 0) {
        if (s->sealed_fd >= 0)
            close(s->sealed_fd);
        s->sealed_fd = s->active_fd;
        s->active_fd = -1;
    }
}

/* Start a new active segment whose first record will be `id`. Returns 0 or -errno. */
static int seg_create(struct ib_store *s, uint64_t id)
{
    if (s->n_segs == s->cap_segs) {
        size_t cap = s->cap_segs ? s->cap_segs * 2 : 16;
        struct seg *n = realloc(s->segs, cap * sizeof *n);
        if (!n)
            return -ENOMEM;
        s->segs = n;
        s->cap_segs = cap;
    }
    /* An empty segment left by a failed disk may carry this very id: the new file replaces it
     * (O_TRUNC), so its entry must go too, or deleting it later would delete the new file. */
    while (s->n_segs && s->segs[s->n_segs - 1].id >= id && !s->segs[s->n_segs - 1].n &&
           !seg_is_active(s, s->n_segs - 1)) {
        s->disk_bytes -= s->segs[s->n_segs - 1].size;
        s->n_segs--;
    }
    char name[40];
    seg_name(name, sizeof name, id);
    int fd = openat(s->dirfd, name, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return -errno;
    int64_t now = ib_now_ms();
    unsigned char h[SEG_HDR] = {0};
    memcpy(h, SEG_MAGIC, 8);
    put64(h + 8, id);
    put64(h + 16, (uint64_t)now);
    put32(h + 28, ib_crc32c(h, 28));
    ssize_t w = pwrite(fd, h, SEG_HDR, 0);
    if (w != SEG_HDR) {
        int e = w < 0 ? errno : ENOSPC;
        close(fd);
        unlinkat(s->dirfd, name, 0);
        return -e;
    }
    bool always = s->cfg->fsync == IB_FSYNC_ALWAYS;
    if (s->active_fd >= 0) {
        if (always) {
            close(s->active_fd); /* every record of it was synced already */
        } else {
            if (s->sealed_fd >= 0) { /* the flusher is behind: do its job here, rarely */
                fdatasync(s->sealed_fd);
                close(s->sealed_fd);
            }
            s->sealed_fd = s->active_fd;
        }
    }
    s->segs[s->n_segs++] =
        (struct seg){.id = id, .size = SEG_HDR, .created_ms = now, .last_ts = now};
    s->active_fd = fd;
    s->disk_bytes += SEG_HDR;
    if (always) {
        fdatasync(fd);
        fsync(s->dirfd);
    } else {
        s->dir_dirty = true;
        s->unsynced += SEG_HDR;
        if (!s->unsynced_since)
            s->unsynced_since = ib_monotonic_ms();
    }
    return 0;
}

/* Append one frame to the active segment (rotating and making room first). The payload comes
 * in n_parts pieces. Returns 0 or -errno (nothing appended). */
static int disk_append(struct ib_store *s, uint64_t seq, int64_t ts, const char *topic, size_t tl,
                       const struct iovec *parts, int n_parts)
{
    size_t plen = 0;
    for (int i = 0; i < n_parts; i++)
        plen += parts[i].iov_len;
    size_t body = REC_HDR + tl + plen, frame = FRAME_HDR + body;
    struct seg *a = s->active_fd >= 0 ? &s->segs[s->n_segs - 1] : NULL;
    if (!a || (a->n &&
               (a->size + frame > s->seg_bytes || ib_now_ms() - a->created_ms >= s->seg_age_ms))) {
        int rc = seg_create(s, seq);
        if (rc < 0)
            return rc;
        a = &s->segs[s->n_segs - 1];
    }
    while (s->disk_bytes + frame > (uint64_t)s->cfg->max_bytes && s->n_segs > 1) {
        drop_oldest(s, DROP_FULL);
        a = &s->segs[s->n_segs - 1];
    }
    unsigned char h[FRAME_HDR + REC_HDR] = {0};
    put32(h + 4, (uint32_t)body);
    put64(h + 8, seq);
    put64(h + 16, (uint64_t)ts);
    put16(h + 24, (uint16_t)tl);
    uint32_t crc = ib_crc32c(h + 4, 4 + REC_HDR);
    crc = ib_crc32c_update(crc, topic, tl);
    struct iovec iov[8];
    iov[0] = (struct iovec){h, sizeof h};
    iov[1] = (struct iovec){(void *)topic, tl};
    for (int i = 0; i < n_parts; i++) {
        crc = ib_crc32c_update(crc, parts[i].iov_base, parts[i].iov_len);
        iov[2 + i] = parts[i];
    }
    put32(h, crc);
    ssize_t w = pwritev(s->active_fd, iov, 2 + n_parts, (off_t)a->size);
    if (w != (ssize_t)frame) {
        int e = w < 0 ? errno : ENOSPC;
        if (w > 0 && ftruncate(s->active_fd, (off_t)a->size) < 0) {
            /* The partial frame stays behind the valid ones; the next open cuts it off. */
        }
        return -e;
    }
    if (!a->n)
        a->first = seq;
    a->n++;
    a->last = seq;
    a->last_ts = ts;
    a->size += frame;
    s->disk_bytes += frame;
    if (s->cfg->fsync == IB_FSYNC_ALWAYS) {
        if (fdatasync(s->active_fd) < 0)
            disk_fail(s, errno); /* written, but the disk cannot promise it: stop using it */
        return 0;
    }
    if (!s->unsynced_since)
        s->unsynced_since = ib_monotonic_ms();
    s->unsynced += frame;
    if (s->unsynced >= (uint64_t)s->cfg->fsync_bytes)
        pthread_cond_signal(&s->fcv);
    return 0;
}

/* ---- memory ---------------------------------------------------------------------------------- */

static void mem_pop_head(struct ib_store *s)
{
    struct mrec *m = s->mhead;
    s->mhead = m->next;
    if (!s->mhead)
        s->mtail = NULL;
    s->mbytes -= m->size;
    s->mcount--;
    free(m);
}

static void mem_drop_head(struct ib_store *s, int why)
{
    struct mrec *m = s->mhead;
    if (!m->done) {
        pending_sub(s, 1);
        episode_note(s, why, 1, m->seq, m->seq);
    }
    mem_pop_head(s);
}

static void mem_trim(struct ib_store *s)
{
    while (s->mhead && s->mhead->done)
        mem_pop_head(s);
}

/* The first memory record with seq >= `seq`, starting from a hint when it is still valid. */
static struct mrec *mem_find(struct ib_store *s, uint64_t seq, struct mrec *hint, uint64_t hint_seq)
{
    struct mrec *m = s->mhead;
    if (hint && s->mhead && hint_seq >= s->mhead->seq && hint_seq <= seq)
        m = hint;
    while (m && m->seq < seq)
        m = m->next;
    return m;
}

static bool mem_append(struct ib_store *s, uint64_t seq, int64_t ts, const char *topic, size_t tl,
                       const struct iovec *parts, int n_parts)
{
    size_t plen = 0;
    for (int i = 0; i < n_parts; i++)
        plen += parts[i].iov_len;
    size_t size = sizeof(struct mrec) + tl + 1 + plen + 1;
    while (s->mhead && s->mbytes + size > (uint64_t)s->cfg->memory_max_bytes)
        mem_drop_head(s, DROP_MEMORY);
    struct mrec *m = size <= (uint64_t)s->cfg->memory_max_bytes ? malloc(size) : NULL;
    if (!m) {
        episode_note(s, DROP_MEMORY, 1, seq, seq);
        return false;
    }
    *m = (struct mrec){
        .seq = seq, .ts = ts, .size = size, .tl = (uint32_t)tl, .len = (uint32_t)plen};
    memcpy(m->data, topic, tl);
    m->data[tl] = '\0';
    char *p = m->data + tl + 1;
    for (int i = 0; i < n_parts; i++) {
        memcpy(p, parts[i].iov_base, parts[i].iov_len);
        p += parts[i].iov_len;
    }
    *p = '\0';
    if (s->mtail)
        s->mtail->next = m;
    else
        s->mhead = m;
    s->mtail = m;
    s->mbytes += size;
    s->mcount++;
    s->disk_fail_mem++;
    if (seq + MEM_RESERVE / 2 > s->mem_floor_ok)
        pthread_cond_signal(&s->fcv);
    return true;
}

/* ---- push ------------------------------------------------------------------------------------ */

uint64_t ib_store_push(struct ib_store *s, const char *topic, const char *body, size_t body_len)
{
    size_t tl = strlen(topic);
    char prefix[32];
    pthread_mutex_lock(&s->mu);
    uint64_t seq = s->next_seq++;
    s->pushed++;
    int pl = snprintf(prefix, sizeof prefix, "{\"seq\":%" PRIu64, seq);
    if (tl > UINT16_MAX || REC_HDR + tl + (size_t)pl + body_len > s->max_record) {
        s->dropped_large++;
        int sup = ib_ratelimit_ok(&s->rl_large, ib_monotonic_ms());
        pthread_mutex_unlock(&s->mu);
        if (sup >= 0)
            ib_log(IB_LOG_ERR, NULL, NULL, NULL,
                   "store: record %" PRIu64 " on %s is %zu bytes, more than the store takes "
                   "(a quarter of max_bytes, at most 16 MiB): dropped and counted",
                   seq, topic, body_len);
        return 0;
    }
    struct iovec parts[2] = {{prefix, (size_t)pl}, {(void *)body, body_len}};
    int64_t ts = ib_now_ms();
    bool kept;
    if (!s->disk_err && !s->mhead) {
        int rc = disk_append(s, seq, ts, topic, tl, parts, 2);
        if (rc < 0)
            disk_fail(s, -rc);
        kept = rc == 0 || mem_append(s, seq, ts, topic, tl, parts, 2);
    } else {
        kept = mem_append(s, seq, ts, topic, tl, parts, 2);
    }
    if (kept)
        s->pending++;
    if (seq + SEQ_RESERVE / 2 > s->floor_ok)
        pthread_cond_signal(&s->fcv);
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
    return kept ? seq : 0;
}

/* ---- reading --------------------------------------------------------------------------------- */

/* `need` bytes of segment `g` at `off`, through lane l's read-ahead window; NULL on an I/O
 * error (errno set). */
static const unsigned char *lane_read(struct ib_store *s, struct lane *l, const struct seg *g,
                                      uint64_t off, size_t need)
{
    if (l->fd < 0 || l->fd_id != g->id) {
        lane_close_file(l);
        char name[40];
        seg_name(name, sizeof name, g->id);
        l->fd = openat(s->dirfd, name, O_RDONLY | O_CLOEXEC);
        if (l->fd < 0)
            return NULL;
        l->fd_id = g->id;
    }
    if (off >= l->buf_off && off + need <= l->buf_off + l->buf_len)
        return l->buf + (off - l->buf_off);
    size_t want = need > READ_CHUNK ? need : READ_CHUNK;
    if (off + want > g->size)
        want = (size_t)(g->size - off);
    if (want > l->cap) {
        unsigned char *b = realloc(l->buf, want);
        if (!b) {
            errno = ENOMEM;
            return NULL;
        }
        l->buf = b;
        l->cap = want;
    }
    ssize_t n = pread(l->fd, l->buf, want, (off_t)off);
    if (n < (ssize_t)need) {
        l->buf_len = 0;
        if (n >= 0)
            errno = EIO;
        return NULL;
    }
    l->buf_off = off;
    l->buf_len = (size_t)n;
    return l->buf;
}

/* The bytes of segment `g` from `seq` on cannot be read (I/O error or a bad checksum after
 * they were written): count what it still holds from there as damaged and skip it. */
static void seg_damaged(struct ib_store *s, struct seg *g, uint64_t seq, int err)
{
    uint64_t n = g->last >= seq ? g->last - seq + 1 : 0;
    if (n > g->n - g->done)
        n = g->n - g->done;
    g->done += n;
    pending_sub(s, n);
    s->damaged += n;
    if (ib_ratelimit_ok(&s->rl_damage, ib_monotonic_ms()) >= 0) {
        char name[40];
        seg_name(name, sizeof name, g->id);
        ib_log(IB_LOG_ERR, NULL, NULL, NULL,
               "store: %s cannot be read from seq %" PRIu64 " on (%s): %" PRIu64
               " records discarded, never sent",
               name, seq, err ? strerror(err) : "checksum mismatch: damaged on disk", n);
    }
    mark_gone(s, g->last);
}

static uint64_t next_start(const struct ib_store *s, long i)
{
    if (i + 1 < (long)s->n_segs)
        return s->segs[i + 1].id;
    return s->mhead ? s->mhead->seq : s->next_seq;
}

static void send_copy(struct ib_store *s, const void *topic, size_t tl, const void *p, size_t len)
{
    ib_buf_reset(&s->send);
    if (ib_buf_reserve(&s->send, tl + len + 2) < 0)
        return;
    ib_buf_append(&s->send, topic, tl);
    ib_buf_append(&s->send, "", 1);
    ib_buf_append(&s->send, p, len);
}

/* Find lane l's next record to send and copy it to s->send. Returns its seq, or 0 when there is
 * none (yet) or it may not be sent before the flusher persisted a higher sequence floor. */
static uint64_t lane_find(struct ib_store *s, struct lane *l)
{
    for (;;) {
        uint64_t q = l->next, limit = l->end < s->next_seq - 1 ? l->end : s->next_seq - 1;
        if (q > limit)
            return 0;
        const struct range *h = hole_at(s, q);
        if (h) {
            l->next = h->hi + 1;
            continue;
        }
        if (s->mhead && q >= s->mhead->seq) {
            struct mrec *m = mem_find(s, q, l->mhint, l->mhint_seq);
            if (!m) {
                l->next = s->next_seq;
                return 0;
            }
            l->mhint = m;
            l->mhint_seq = m->seq;
            if (m->done || hole_at(s, m->seq)) {
                l->next = m->seq + 1;
                continue;
            }
            if (m->seq > s->floor_ok || m->seq > s->mem_floor_ok)
                return 0;
            send_copy(s, m->data, m->tl, m->data + m->tl + 1, m->len);
            return m->seq;
        }
        long i = seg_index(s, q);
        if (i < 0) {
            l->next = s->n_segs ? s->segs[0].id : next_start(s, -1);
            if (l->next <= q)
                return 0;
            continue;
        }
        struct seg *g = &s->segs[i];
        if (!g->n || q > g->last) {
            l->next = next_start(s, i);
            if (l->next <= q)
                return 0;
            continue;
        }
        uint64_t off = l->pos_id == g->id && l->pos_seq <= q ? l->pos_off : SEG_HDR;
        while (off < g->size) {
            const unsigned char *p = lane_read(s, l, g, off, FRAME_HDR + REC_HDR);
            if (!p) {
                seg_damaged(s, g, q, errno);
                break;
            }
            uint32_t len = get32(p + 4);
            uint64_t seq = get64(p + FRAME_HDR);
            if (len < REC_HDR || len > s->max_record || off + FRAME_HDR + len > g->size) {
                seg_damaged(s, g, q, 0);
                break;
            }
            if (seq < q) {
                off += FRAME_HDR + len;
                continue;
            }
            l->pos_id = g->id;
            l->pos_off = off;
            l->pos_seq = seq;
            if ((h = hole_at(s, seq))) {
                l->next = h->hi + 1;
                break;
            }
            if (seq > s->floor_ok)
                return 0;
            p = lane_read(s, l, g, off, FRAME_HDR + len);
            struct frame f;
            if (!p || !frame_ok(p, FRAME_HDR + len, s->max_record, &f) || f.seq != seq) {
                seg_damaged(s, g, seq, p ? 0 : errno);
                break;
            }
            const unsigned char *b = p + FRAME_HDR + REC_HDR;
            send_copy(s, b, f.tl, b + f.tl, f.len - REC_HDR - f.tl);
            l->pos_off = off + FRAME_HDR + len;
            l->pos_seq = seq + 1;
            return seq;
        }
        if (off >= g->size) /* nothing >= q left in it (cannot happen while q <= last) */
            l->next = next_start(s, i);
    }
}

/* ---- the north's side ------------------------------------------------------------------------ */

static int ring_push(struct ib_store *s, uint64_t seq, int lane)
{
    if (s->ring_len == s->ring_cap) {
        size_t cap = s->ring_cap ? s->ring_cap * 2 : 64;
        struct inflight *n = malloc(cap * sizeof *n);
        if (!n)
            return -1;
        for (size_t i = 0; i < s->ring_len; i++)
            n[i] = s->ring[(s->ring_head + i) % s->ring_cap];
        free(s->ring);
        s->ring = n;
        s->ring_cap = cap;
        s->ring_head = 0;
    }
    s->ring[(s->ring_head + s->ring_len) % s->ring_cap] =
        (struct inflight){.seq = seq, .lane = (uint8_t)lane};
    s->ring_len++;
    s->ring_lane_n[lane]++;
    return 0;
}

static struct inflight *ring_at(struct ib_store *s, size_t i)
{
    return &s->ring[(s->ring_head + i) % s->ring_cap];
}

/* A pending record is acknowledged: count it done where it lives. */
static void record_done(struct ib_store *s, uint64_t seq)
{
    if (s->mhead && seq >= s->mhead->seq) {
        struct mrec *m = mem_find(s, seq, s->mack, s->mack_seq);
        if (m && m->seq == seq && !m->done) {
            m->done = true;
            pending_sub(s, 1);
            s->acked++;
            s->mack = m;
            s->mack_seq = seq;
        }
        mem_trim(s);
        return;
    }
    long i = seg_index(s, seq);
    if (i < 0) {
        /* Its segment was dropped while the record was in flight, and the drop counted it.
         * The broker has it after all: it was delivered, not dropped. (A record in flight
         * whose acknowledgement never comes stays counted.) */
        for (int w = 0; w < N_DROP; w++)
            if (s->dropped[w]) {
                s->dropped[w]--;
                break;
            }
        return;
    }
    struct seg *g = &s->segs[i];
    if (!g->n || seq > g->last || g->done >= g->n)
        return;
    g->done++;
    pending_sub(s, 1);
    s->acked++;
}

static void ring_pop_acked(struct ib_store *s)
{
    while (s->ring_len && ring_at(s, 0)->acked) {
        struct inflight e = *ring_at(s, 0);
        s->ring_head = (s->ring_head + 1) % s->ring_cap;
        s->ring_len--;
        s->ring_lane_n[e.lane]--;
        struct lane *l = &s->lane[e.lane];
        if (e.seq > l->acked)
            l->acked = e.seq;
        record_done(s, e.seq);
    }
    backlog_check_done(s);
}

static void set_boundary(struct ib_store *s)
{
    struct lane *b = &s->lane[LANE_BACKLOG], *live = &s->lane[LANE_LIVE];
    uint64_t last = s->next_seq - 1;
    b->end = last;
    live->next = last + 1;
    live->acked = last;
    live->end = UINT64_MAX;
    s->boundary_pending = false;
    s->backlog_active = true;
    s->replay_total = s->pending;
    s->replay_t0 = ib_monotonic_ms();
    s->tokens = 0;
    s->tokens_ms = s->replay_t0;
    if (s->pending)
        ib_log(IB_LOG_INFO, NULL, NULL, NULL,
               "store: replaying the backlog of %" PRIu64 " records (seq %" PRIu64 "..%" PRIu64
               ") oldest first at up to %" PRId64 " records/s; live records are sent alongside",
               s->pending, b->next, last, s->cfg->replay_rate);
    backlog_check_done(s);
}

/* Replay budget: a token bucket of replay_rate records/s. Returns 0 when a record may go now,
 * else the ms until one may. */
static int64_t replay_wait(struct ib_store *s)
{
    int64_t rate = s->cfg->replay_rate;
    if (rate <= 0)
        return 0;
    int64_t now = ib_monotonic_ms();
    double burst = rate / 10 > 1 ? (double)(rate / 10 < 1000 ? rate / 10 : 1000) : 1.0;
    s->tokens += (double)(now - s->tokens_ms) * (double)rate / 1000.0;
    if (s->tokens > burst)
        s->tokens = burst;
    s->tokens_ms = now;
    if (s->tokens >= 1.0)
        return 0;
    int64_t ms = (int64_t)((1.0 - s->tokens) * 1000.0 / (double)rate) + 1;
    return ms;
}

static bool ts_before(const struct timespec *a, const struct timespec *b)
{
    return a->tv_sec < b->tv_sec || (a->tv_sec == b->tv_sec && a->tv_nsec < b->tv_nsec);
}

static void emit(struct ib_store *s, int lane, uint64_t seq, struct ib_store_rec *out)
{
    s->lane[lane].next = seq + 1;
    out->seq = seq;
    out->topic = s->send.p;
    size_t tl = strlen(s->send.p);
    out->payload = s->send.p + tl + 1;
    out->len = s->send.len - tl - 1;
}

bool ib_store_next(struct ib_store *s, int timeout_ms, unsigned max_inflight,
                   struct ib_store_rec *out)
{
    struct timespec dl = ib_deadline_ms(timeout_ms);
    pthread_mutex_lock(&s->mu);
    unsigned w = s->wakeups;
    for (;;) {
        int64_t token_ms = -1;
        if (max_inflight && s->ring_len < max_inflight) {
            if (s->boundary_pending)
                set_boundary(s);
            uint64_t seq = lane_find(s, &s->lane[LANE_LIVE]);
            int lane = LANE_LIVE;
            if (!seq && s->backlog_active) {
                token_ms = replay_wait(s);
                if (token_ms == 0) {
                    seq = lane_find(s, &s->lane[LANE_BACKLOG]);
                    lane = LANE_BACKLOG;
                    if (seq && s->cfg->replay_rate > 0)
                        s->tokens -= 1.0;
                    token_ms = -1;
                    backlog_check_done(s);
                }
            }
            if (seq && ring_push(s, seq, lane) == 0) {
                emit(s, lane, seq, out);
                pthread_mutex_unlock(&s->mu);
                return true;
            }
        }
        struct timespec d = dl;
        if (token_ms > 0) {
            struct timespec t = ib_deadline_ms(token_ms);
            if (ts_before(&t, &d))
                d = t;
        }
        int rc = pthread_cond_timedwait(&s->cv, &s->mu, &d);
        if (s->wakeups != w || (rc == ETIMEDOUT && !ts_before(&d, &dl)))
            break;
    }
    pthread_mutex_unlock(&s->mu);
    return false;
}

static long ring_find(struct ib_store *s, uint64_t seq)
{
    for (size_t i = 0; i < s->ring_len; i++)
        if (ring_at(s, i)->seq == seq)
            return (long)i;
    return -1;
}

void ib_store_ack(struct ib_store *s, uint64_t seq)
{
    pthread_mutex_lock(&s->mu);
    long i = ring_find(s, seq);
    if (i >= 0) {
        ring_at(s, (size_t)i)->acked = true;
        ring_pop_acked(s);
        pthread_cond_broadcast(&s->cv);
    }
    pthread_mutex_unlock(&s->mu);
}

void ib_store_nack(struct ib_store *s, uint64_t seq)
{
    pthread_mutex_lock(&s->mu);
    long at = ring_find(s, seq);
    if (at >= 0) {
        int lane = ring_at(s, (size_t)at)->lane;
        /* This one and every later one of its lane go again, in order. */
        size_t k = 0;
        for (size_t i = 0; i < s->ring_len; i++) {
            struct inflight e = *ring_at(s, i);
            if (e.lane == lane && e.seq >= seq) {
                s->ring_lane_n[lane]--;
                continue;
            }
            *ring_at(s, k++) = e;
        }
        s->ring_len = k;
        if (s->lane[lane].next > seq)
            s->lane[lane].next = seq;
        ring_pop_acked(s);
        pthread_cond_broadcast(&s->cv);
    }
    pthread_mutex_unlock(&s->mu);
}

void ib_store_rewind(struct ib_store *s)
{
    pthread_mutex_lock(&s->mu);
    s->ring_len = s->ring_head = 0;
    s->ring_lane_n[0] = s->ring_lane_n[1] = 0;
    struct lane *b = &s->lane[LANE_BACKLOG], *live = &s->lane[LANE_LIVE];
    if (!s->boundary_pending) {
        if (s->backlog_active) {
            if (live->acked > b->end)
                hole_add(s, b->end + 1, live->acked);
        } else {
            b->acked = live->acked;
        }
        b->end = UINT64_MAX;
        s->boundary_pending = true;
        s->backlog_active = true;
    }
    b->next = b->acked + 1;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

void ib_store_wake(struct ib_store *s)
{
    pthread_mutex_lock(&s->mu);
    s->wakeups++;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

uint64_t ib_store_unsent(struct ib_store *s)
{
    if (!s)
        return 0;
    pthread_mutex_lock(&s->mu);
    uint64_t n = s->boundary_pending                     ? s->pending
                 : s->next_seq > s->lane[LANE_LIVE].next ? s->next_seq - s->lane[LANE_LIVE].next
                                                         : 0;
    pthread_mutex_unlock(&s->mu);
    return n;
}

void ib_store_stats(struct ib_store *s, struct ib_store_stats *st)
{
    pthread_mutex_lock(&s->mu);
    *st = (struct ib_store_stats){
        .queued = s->pending,
        .inflight = s->ring_len,
        .bytes = s->disk_bytes,
        .mem_records = s->mcount,
        .mem_bytes = s->mbytes,
        .pushed = s->pushed,
        .acked = s->acked,
        .dropped_full = s->dropped[DROP_FULL],
        .dropped_age = s->dropped[DROP_AGE],
        .dropped_memory = s->dropped[DROP_MEMORY],
        .dropped_large = s->dropped_large,
        .damaged = s->damaged,
        .last_seq = s->next_seq - 1,
        .disk_error = s->disk_err,
    };
    st->dropped = st->dropped_full + st->dropped_age + st->dropped_memory + st->dropped_large;
    if (s->backlog_active && !s->boundary_pending) {
        const struct lane *b = &s->lane[LANE_BACKLOG];
        st->replaying = b->end > b->acked ? b->end - b->acked : 0;
        if (st->replaying > st->queued)
            st->replaying = st->queued;
    }
    pthread_mutex_unlock(&s->mu);
}

void ib_store_describe(struct ib_store *s, char *buf, size_t len)
{
    struct ib_store_stats st;
    ib_store_stats(s, &st);
    int n =
        snprintf(buf, len, "queue %" PRIu64 " records, %" PRIu64 " dropped", st.queued, st.dropped);
    if (n >= 0 && (size_t)n < len && st.damaged)
        n += snprintf(buf + n, len - (size_t)n, ", %" PRIu64 " damaged", st.damaged);
    if (n >= 0 && (size_t)n < len && st.replaying)
        n += snprintf(buf + n, len - (size_t)n, ", replaying %" PRIu64, st.replaying);
    if (n >= 0 && (size_t)n < len && st.disk_error)
        snprintf(buf + n, len - (size_t)n,
                 ", STORE DISK FAILING (%s): %" PRIu64 " records in memory",
                 strerror(st.disk_error), st.mem_records);
}

/* ---- checkpoint ------------------------------------------------------------------------------ */

struct ckpt {
    uint64_t gen, acked, next_seq, disk_last, floor, mem_floor;
    bool clean;
    char boot_id[40];
};

static void ckpt_encode(const struct ckpt *c, unsigned char *b)
{
    memset(b, 0, CKPT_SLOT);
    memcpy(b, CKPT_MAGIC, 8);
    put64(b + 8, c->gen);
    put64(b + 16, c->acked);
    put64(b + 24, c->next_seq);
    put64(b + 32, c->disk_last);
    put64(b + 40, c->floor);
    put64(b + 48, c->mem_floor);
    put32(b + 56, c->clean ? 1 : 0);
    memcpy(b + 60, c->boot_id, 40);
    put32(b + CKPT_SLOT - 4, ib_crc32c(b, CKPT_SLOT - 4));
}

static bool ckpt_decode(const unsigned char *b, struct ckpt *c)
{
    if (memcmp(b, CKPT_MAGIC, 8) || get32(b + CKPT_SLOT - 4) != ib_crc32c(b, CKPT_SLOT - 4))
        return false;
    c->gen = get64(b + 8);
    c->acked = get64(b + 16);
    c->next_seq = get64(b + 24);
    c->disk_last = get64(b + 32);
    c->floor = get64(b + 40);
    c->mem_floor = get64(b + 48);
    c->clean = get32(b + 56) & 1;
    memcpy(c->boot_id, b + 60, 40);
    c->boot_id[39] = '\0';
    return true;
}

/* The newer valid slot of the checkpoint file, or false when there is none. */
static bool ckpt_read(int fd, struct ckpt *out)
{
    unsigned char b[2 * CKPT_SLOT];
    ssize_t n = pread(fd, b, sizeof b, 0);
    struct ckpt c[2];
    bool ok[2] = {n >= CKPT_SLOT && ckpt_decode(b, &c[0]),
                  n >= 2 * CKPT_SLOT && ckpt_decode(b + CKPT_SLOT, &c[1])};
    if (!ok[0] && !ok[1])
        return false;
    *out = ok[0] && (!ok[1] || c[0].gen > c[1].gen) ? c[0] : c[1];
    return true;
}

/* Write a new generation into the older slot and fdatasync. Called by the flusher or when no
 * flusher runs (open, close). Returns 0 or -errno. */
static int ckpt_write(struct ib_store *s, struct ckpt *c)
{
    if (s->ckpt_fd < 0) {
        s->ckpt_fd = openat(s->dirfd, CKPT_NAME, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        if (s->ckpt_fd < 0)
            return -errno;
    }
    c->gen = ++s->ck_gen;
    memcpy(c->boot_id, s->boot_id, sizeof c->boot_id);
    unsigned char b[CKPT_SLOT];
    ckpt_encode(c, b);
    ssize_t w = pwrite(s->ckpt_fd, b, CKPT_SLOT, (off_t)((c->gen & 1) * CKPT_SLOT));
    if (w != CKPT_SLOT)
        return w < 0 ? -errno : -ENOSPC;
    if (fdatasync(s->ckpt_fd) < 0)
        return -errno;
    return 0;
}

/* Snapshot under the lock, write without it, publish the new floors under it again. */
static void flusher_checkpoint(struct ib_store *s)
{
    struct ckpt c = {.acked = acked_through(s),
                     .floor = s->next_seq - 1 + SEQ_RESERVE,
                     .mem_floor = s->mtail ? s->mtail->seq + MEM_RESERVE : s->mem_floor_ok};
    if (c.floor < s->floor_ok)
        c.floor = s->floor_ok;
    if (c.mem_floor < s->mem_floor_ok)
        c.mem_floor = s->mem_floor_ok;
    pthread_mutex_unlock(&s->mu);
    int rc = ckpt_write(s, &c);
    pthread_mutex_lock(&s->mu);
    if (rc < 0) {
        if (!s->ck_failed)
            ib_log(IB_LOG_ERR, NULL, NULL, NULL,
                   "store: cannot write the checkpoint in %s: %s; records beyond sequence "
                   "number %" PRIu64 " are held back until it can be written (a restart could "
                   "otherwise reuse numbers a consumer has seen)",
                   s->cfg->path, strerror(-rc), s->floor_ok);
        s->ck_failed = true;
        return;
    }
    if (s->ck_failed)
        ib_log(IB_LOG_NOTICE, NULL, NULL, NULL, "store: the checkpoint can be written again");
    s->ck_failed = false;
    s->ck_acked = c.acked;
    s->floor_ok = c.floor;
    s->mem_floor_ok = c.mem_floor;
    pthread_cond_broadcast(&s->cv);
}

/* ---- flusher --------------------------------------------------------------------------------- */

static void flusher_sync(struct ib_store *s)
{
    int fd = s->active_fd >= 0 ? dup(s->active_fd) : -1;
    int sealed = s->sealed_fd;
    bool dir = s->dir_dirty;
    s->sealed_fd = -1;
    s->dir_dirty = false;
    s->unsynced = 0;
    s->unsynced_since = 0;
    pthread_mutex_unlock(&s->mu);
    int err = 0;
    if (sealed >= 0) {
        if (fdatasync(sealed) < 0)
            err = errno;
        close(sealed);
    }
    if (fd >= 0) {
        if (fdatasync(fd) < 0)
            err = errno;
        close(fd);
    }
    if (dir && fsync(s->dirfd) < 0 && !err)
        err = errno;
    pthread_mutex_lock(&s->mu);
    if (err && err != EINVAL) /* EINVAL: a file system without fsync */
        disk_fail(s, err);
}

/* The disk failed earlier: try a new segment, then move the memory records to it in order. */
static void try_recover(struct ib_store *s)
{
    int rc = seg_create(s, s->mhead ? s->mhead->seq : s->next_seq);
    if (rc < 0) {
        s->disk_err = -rc;
        s->next_probe = ib_monotonic_ms() + HOUSEKEEPING_MS;
        return;
    }
    uint64_t moved = 0;
    while (s->mhead) {
        struct mrec *m = s->mhead;
        if (!m->done) {
            struct iovec part = {m->data + m->tl + 1, m->len};
            rc = disk_append(s, m->seq, m->ts, m->data, m->tl, &part, 1);
            if (rc < 0) {
                disk_fail(s, -rc);
                s->next_probe = ib_monotonic_ms() + HOUSEKEEPING_MS;
                return;
            }
            moved++;
        }
        mem_pop_head(s);
        if (moved % 64 == 63) { /* let pollers and the north in */
            pthread_mutex_unlock(&s->mu);
            pthread_mutex_lock(&s->mu);
            if (s->active_fd < 0)
                return;
        }
    }
    ib_log(IB_LOG_NOTICE, NULL, NULL, NULL,
           "store: writing to %s again after %.0f s; %" PRIu64 " records went to memory "
           "meanwhile, the %" PRIu64 " of them still waiting are now on disk",
           s->cfg->path, (double)(ib_monotonic_ms() - s->disk_fail_since) / 1000.0,
           s->disk_fail_mem, moved);
    s->disk_err = 0;
}

static void housekeeping(struct ib_store *s)
{
    int64_t cut = ib_now_ms() - s->cfg->max_age_ms;
    /* The active segment is rotated when old, so that age limits apply to it too. */
    if (s->active_fd >= 0 && s->segs[s->n_segs - 1].n &&
        ib_now_ms() - s->segs[s->n_segs - 1].created_ms >= s->seg_age_ms) {
        int rc = seg_create(s, s->next_seq);
        if (rc < 0)
            disk_fail(s, -rc);
    }
    while (s->n_segs && !seg_is_active(s, 0) && s->segs[0].last_ts < cut)
        drop_oldest(s, DROP_AGE);
    while (s->mhead && s->mhead->ts < cut)
        mem_drop_head(s, DROP_AGE);
    for (size_t i = 0; i < s->n_segs;)
        if (!seg_is_active(s, i) && s->segs[i].done >= s->segs[i].n)
            seg_remove(s, i);
        else
            i++;
    if (s->disk_err && ib_monotonic_ms() >= s->next_probe)
        try_recover(s);
    int64_t now = ib_monotonic_ms();
    for (int i = 0; i < N_DROP; i++) {
        struct episode *e = &s->ep[i];
        if (e->active && now - e->last_ms >= EPISODE_END_MS) {
            ib_log(IB_LOG_NOTICE, NULL, NULL, NULL,
                   "store: %" PRIu64 " records dropped because %s (seq %" PRIu64 "..%" PRIu64
                   "); no more drops for %d s",
                   e->n, drop_reason[i], e->lo, e->hi, EPISODE_END_MS / 1000);
            e->active = false;
        }
    }
    if (acked_through(s) != s->ck_acked || s->ck_failed)
        flusher_checkpoint(s);
}

static void *flusher_main(void *arg)
{
    struct ib_store *s = arg;
    int64_t next_house = ib_monotonic_ms() + HOUSEKEEPING_MS;
    pthread_mutex_lock(&s->mu);
    while (!s->stop) {
        int64_t now = ib_monotonic_ms();
        bool sync_due = s->unsynced && (s->unsynced >= (uint64_t)s->cfg->fsync_bytes ||
                                        now - s->unsynced_since >= s->cfg->fsync_interval_ms);
        bool floor_due =
            !s->ck_failed && (s->next_seq + SEQ_RESERVE / 2 > s->floor_ok ||
                              (s->mtail && s->mtail->seq + MEM_RESERVE / 2 > s->mem_floor_ok));
        if (sync_due || s->sealed_fd >= 0)
            flusher_sync(s);
        if (floor_due)
            flusher_checkpoint(s);
        if (now >= next_house) {
            housekeeping(s);
            next_house = now + HOUSEKEEPING_MS;
        }
        if (sync_due || floor_due || s->stop)
            continue;
        int64_t wake = next_house;
        if (s->unsynced && s->unsynced_since + s->cfg->fsync_interval_ms < wake)
            wake = s->unsynced_since + s->cfg->fsync_interval_ms;
        struct timespec dl = ib_deadline_ms(wake > now ? wake - now : 0);
        pthread_cond_timedwait(&s->fcv, &s->mu, &dl);
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

/* ---- open: recovery -------------------------------------------------------------------------- */

struct scan {
    uint64_t first, last, n, done, valid_end;
    int64_t last_ts;
    uint64_t bad_regions, bad_records, bad_bytes, tail_bytes;
    bool header_bad;
};

/* Walk the frames of a mapped segment file. Damage in the middle is skipped up to the next
 * intact frame (whose seq tells how many records were lost); damage with nothing intact after
 * it is the torn tail. With out_fd >= 0, the intact frames are copied there. */
static int scan_segment(const unsigned char *m, size_t size, uint64_t id, uint64_t acked,
                        uint64_t max_record, struct scan *r, int out_fd)
{
    memset(r, 0, sizeof *r);
    r->valid_end = SEG_HDR;
    if (size < SEG_HDR) {
        r->header_bad = true;
        r->tail_bytes = size;
        return 0;
    }
    r->header_bad =
        memcmp(m, SEG_MAGIC, 8) || get64(m + 8) != id || get32(m + 28) != ib_crc32c(m, 28);
    uint64_t out_off = SEG_HDR, prev = id - 1;
    size_t off = SEG_HDR;
    while (off < size) {
        struct frame f;
        if (frame_ok(m + off, size - off, max_record, &f) && f.seq > prev) {
            size_t fl = FRAME_HDR + f.len;
            if (out_fd >= 0) {
                if (pwrite(out_fd, m + off, fl, (off_t)out_off) != (ssize_t)fl)
                    return -1;
                out_off += fl;
            }
            if (!r->n)
                r->first = f.seq;
            r->n++;
            r->done += f.seq <= acked;
            r->last = f.seq;
            r->last_ts = f.ts;
            prev = f.seq;
            off += fl;
            r->valid_end = off;
            continue;
        }
        /* Damaged here: find the next intact frame. The seq check comes first so that random
         * bytes rarely cost a checksum. */
        size_t p = off + 1;
        for (; p + FRAME_HDR + REC_HDR <= size; p++) {
            uint64_t sq = get64(m + p + FRAME_HDR);
            if (sq > prev && sq - prev < (1ull << 32) && frame_ok(m + p, size - p, max_record, &f))
                break;
        }
        if (p + FRAME_HDR + REC_HDR > size) {
            r->tail_bytes = size - off;
            break;
        }
        r->bad_regions++;
        r->bad_bytes += p - off;
        r->bad_records += f.seq - prev - 1;
        off = p;
    }
    return 0;
}

struct open_report {
    uint64_t damaged, damaged_bytes, places;
    uint64_t records, bytes;
};

/* Rewrite a segment without its damaged parts (temporary file, fsync, rename). */
static int seg_rewrite(struct ib_store *s, const char *name, const unsigned char *m, size_t size,
                       uint64_t id)
{
    char tmp[48];
    snprintf(tmp, sizeof tmp, "%s.tmp", name);
    int fd = openat(s->dirfd, tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return -1;
    unsigned char h[SEG_HDR] = {0};
    memcpy(h, SEG_MAGIC, 8);
    put64(h + 8, id);
    put64(h + 16, size >= SEG_HDR ? get64(m + 16) : (uint64_t)ib_now_ms());
    put32(h + 28, ib_crc32c(h, 28));
    struct scan r;
    int rc = pwrite(fd, h, SEG_HDR, 0) == SEG_HDR ? 0 : -1;
    if (rc == 0)
        rc = scan_segment(m, size, id, 0, s->max_record, &r, fd);
    if (rc == 0)
        rc = fdatasync(fd);
    close(fd);
    if (rc == 0)
        rc = renameat(s->dirfd, tmp, s->dirfd, name);
    if (rc < 0)
        unlinkat(s->dirfd, tmp, 0);
    return rc;
}

/* Load one segment file into the index, repairing it when damaged. Returns false when it holds
 * nothing (deleted then). */
static bool seg_load(struct ib_store *s, const char *name, uint64_t id, uint64_t acked,
                     struct scan *r)
{
    int fd = openat(s->dirfd, name, O_RDWR | O_CLOEXEC);
    if (fd < 0)
        fd = openat(s->dirfd, name, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0) {
        ib_log(IB_LOG_ERR, NULL, NULL, NULL, "store: cannot open %s/%s: %s; it is left alone",
               s->cfg->path, name, strerror(errno));
        if (fd >= 0)
            close(fd);
        memset(r, 0, sizeof *r);
        return false;
    }
    size_t size = (size_t)st.st_size;
    const unsigned char *m = NULL;
    if (size) {
        m = mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);
        if (m == MAP_FAILED) {
            ib_log(IB_LOG_ERR, NULL, NULL, NULL, "store: cannot map %s/%s: %s", s->cfg->path, name,
                   strerror(errno));
            close(fd);
            memset(r, 0, sizeof *r);
            return false;
        }
        madvise((void *)m, size, MADV_SEQUENTIAL);
    }
    scan_segment(m ? m : (const unsigned char *)"", size, id, acked, s->max_record, r, -1);
    bool keep = r->n > r->done;
    if (keep && (r->bad_regions || r->header_bad)) {
        if (seg_rewrite(s, name, m, size, id) < 0)
            ib_log(IB_LOG_WARNING, NULL, NULL, NULL,
                   "store: cannot rewrite the damaged %s/%s without its damage: %s; it is "
                   "read as it is",
                   s->cfg->path, name, strerror(errno));
    } else if (keep && r->tail_bytes && ftruncate(fd, (off_t)r->valid_end) == 0) {
        fdatasync(fd);
    }
    if (m)
        munmap((void *)m, size);
    close(fd);
    if (!keep) {
        unlinkat(s->dirfd, name, 0);
        return false;
    }
    return true;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Index the segment files left by earlier runs; count what was damaged. */
static int load_segments(struct ib_store *s, const struct ckpt *ck, bool have_ck,
                         struct open_report *rep)
{
    int dfd = dup(s->dirfd);
    DIR *d = dfd >= 0 ? fdopendir(dfd) : NULL;
    if (!d) {
        if (dfd >= 0)
            close(dfd);
        return -errno;
    }
    uint64_t *ids = NULL;
    size_t n = 0, cap = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        uint64_t id;
        char tail[8];
        int k = 0;
        if (sscanf(de->d_name, "seg-%16" SCNx64 ".ibq%n", &id, &k) == 1 && k &&
            de->d_name[k] == '\0') {
            if (n == cap) {
                cap = cap ? cap * 2 : 64;
                uint64_t *x = realloc(ids, cap * sizeof *x);
                if (!x) {
                    free(ids);
                    closedir(d);
                    return -ENOMEM;
                }
                ids = x;
            }
            ids[n++] = id;
        } else if (sscanf(de->d_name, "seg-%16" SCNx64 ".ibq.tm%1s", &id, tail) == 2) {
            unlinkat(s->dirfd, de->d_name, 0); /* a repair interrupted by a crash */
        }
    }
    closedir(d);
    if (n) /* qsort(NULL, 0) is undefined */
        qsort(ids, n, sizeof *ids, cmp_u64);
    uint64_t acked = have_ck ? ck->acked : 0;
    for (size_t i = 0; i < n; i++) {
        char name[40];
        seg_name(name, sizeof name, ids[i]);
        struct scan r;
        bool keep = seg_load(s, name, ids[i], acked, &r);
        uint64_t lost = r.bad_records;
        if (r.tail_bytes) {
            /* What the torn tail held: up to the next file's first record, or up to the last
             * record written before a clean stop; at least one (the incomplete one). */
            uint64_t last = r.n ? r.last : ids[i] - 1, t = 1;
            if (i + 1 < n) {
                t = ids[i + 1] > last + 1 ? ids[i + 1] - last - 1 : 0;
            } else if (have_ck && ck->clean && ck->disk_last > last) {
                t = ck->disk_last - last;
            }
            lost += t;
            rep->places++;
            rep->damaged_bytes += r.tail_bytes;
        }
        if (r.bad_regions) {
            rep->places += r.bad_regions;
            rep->damaged_bytes += r.bad_bytes;
        }
        if (lost || r.tail_bytes || r.bad_regions)
            ib_log(IB_LOG_WARNING, NULL, NULL, NULL,
                   "store: %s: %" PRIu64 " damaged bytes in %" PRIu64 " place%s%s: %" PRIu64
                   " records discarded",
                   name, r.bad_bytes + r.tail_bytes, r.bad_regions + (r.tail_bytes ? 1 : 0),
                   r.bad_regions + (r.tail_bytes ? 1 : 0) == 1 ? "" : "s",
                   r.tail_bytes ? " (a torn tail cut off)" : "", lost);
        rep->damaged += lost;
        if (!keep)
            continue;
        if (s->n_segs == s->cap_segs) {
            size_t c = s->cap_segs ? s->cap_segs * 2 : 16;
            struct seg *x = realloc(s->segs, c * sizeof *x);
            if (!x) {
                free(ids);
                return -ENOMEM;
            }
            s->segs = x;
            s->cap_segs = c;
        }
        uint64_t size = r.bad_regions || r.header_bad ? 0 : r.valid_end;
        if (!size) { /* rewritten: its size is the header and the intact frames */
            struct stat st;
            int fd = openat(s->dirfd, name, O_RDONLY | O_CLOEXEC);
            size = fd >= 0 && fstat(fd, &st) == 0 ? (uint64_t)st.st_size : r.valid_end;
            if (fd >= 0)
                close(fd);
        }
        s->segs[s->n_segs++] = (struct seg){.id = ids[i],
                                            .first = r.first,
                                            .last = r.last,
                                            .n = r.n,
                                            .done = r.done,
                                            .size = size,
                                            .created_ms = r.last_ts,
                                            .last_ts = r.last_ts};
        s->disk_bytes += size;
        rep->records += r.n - r.done;
        rep->bytes += size;
    }
    free(ids);
    return 0;
}

static void read_boot_id(char *buf, size_t len)
{
    buf[0] = '\0';
    FILE *f = fopen("/proc/sys/kernel/random/boot_id", "r");
    if (!f)
        return;
    if (fgets(buf, (int)len, f))
        buf[strcspn(buf, "\n")] = '\0';
    fclose(f);
}

/* mkdir -p with mode 0700 for what it creates. */
static int make_dirs(const char *path)
{
    char *p = strdup(path);
    if (!p)
        return -1;
    int rc = 0;
    for (char *c = p + 1;; c++) {
        if (*c != '/' && *c != '\0')
            continue;
        char save = *c;
        *c = '\0';
        if (mkdir(p, 0700) < 0 && errno != EEXIST) {
            rc = -1;
            break;
        }
        *c = save;
        if (!save)
            break;
    }
    free(p);
    return rc;
}

static bool disk_condition(int err)
{
    return err == ENOSPC || err == EDQUOT || err == EROFS || err == EIO;
}

static void refuse(const struct ib_store_cfg *cfg, const char *what, int err)
{
    ib_log(IB_LOG_ERR, NULL, NULL, NULL, "store: %s %s: %s; %s", what, cfg->path, strerror(err),
           cfg->path_default
               ? "set store.path in the configuration to a directory this user can write "
                 "(the queue must survive restarts: not /tmp), or run under systemd with "
                 "StateDirectory=ironbridge"
               : "make store.path a directory this user can write");
}

struct ib_store *ib_store_open(const struct ib_store_cfg *cfg)
{
    struct ib_store *s = calloc(1, sizeof *s);
    char *path = strdup(cfg->path);
    if (!s || !path) {
        free(s);
        free(path);
        return NULL;
    }
    s->settings = *cfg;
    s->settings.path = path;
    s->cfg = cfg = &s->settings;
    s->dirfd = s->ckpt_fd = s->active_fd = s->sealed_fd = -1;
    s->lane[0].fd = s->lane[1].fd = -1;
    pthread_mutex_init(&s->mu, NULL);
    ib_cond_init_monotonic(&s->cv);
    ib_cond_init_monotonic(&s->fcv);
    s->rl_large = (struct ib_ratelimit)IB_RATELIMIT_INIT(60000, 5);
    s->rl_damage = (struct ib_ratelimit)IB_RATELIMIT_INIT(60000, 5);
    uint64_t mb = (uint64_t)cfg->max_bytes;
    s->seg_bytes = mb / 16 < (64u << 10)   ? (64u << 10)
                   : mb / 16 > (16u << 20) ? (16u << 20)
                                           : mb / 16;
    s->max_record = mb / 4 < MAX_RECORD ? mb / 4 : MAX_RECORD;
    s->seg_age_ms = cfg->max_age_ms / 8 > 1000 ? cfg->max_age_ms / 8 : 1000;

    if (make_dirs(cfg->path) < 0) {
        refuse(cfg, "cannot create the store directory", errno);
        goto fail;
    }
    s->dirfd = open(cfg->path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (s->dirfd < 0) {
        refuse(cfg, "cannot open the store directory", errno);
        goto fail;
    }
    if (flock(s->dirfd, LOCK_EX | LOCK_NB) < 0) {
        ib_log(IB_LOG_ERR, NULL, NULL, NULL,
               "store: %s is in use by another process (another ironbridge?); two gateways "
               "cannot share a store: give each its own store.path",
               cfg->path);
        goto fail;
    }
    struct stat st;
    if (fstat(s->dirfd, &st) == 0 && (st.st_mode & 077))
        ib_log(IB_LOG_WARNING, NULL, NULL, NULL,
               "store: %s is accessible by group or others (mode %04o); the queue holds plant "
               "data: chmod 700 it",
               cfg->path, (unsigned)(st.st_mode & 07777));
    read_boot_id(s->boot_id, sizeof s->boot_id);

    struct ckpt ck = {0};
    bool have_ck = false;
    s->ckpt_fd = openat(s->dirfd, CKPT_NAME, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (s->ckpt_fd < 0) {
        int e = errno;
        if (!disk_condition(e)) {
            refuse(cfg, "cannot write in the store directory", e);
            goto fail;
        }
        int ro = openat(s->dirfd, CKPT_NAME, O_RDONLY | O_CLOEXEC);
        if (ro >= 0) {
            have_ck = ckpt_read(ro, &ck);
            close(ro);
        }
    } else {
        have_ck = ckpt_read(s->ckpt_fd, &ck);
    }
    if (have_ck)
        s->ck_gen = ck.gen;

    struct open_report rep = {0};
    int rc = load_segments(s, &ck, have_ck, &rep);
    if (rc < 0) {
        refuse(cfg, "cannot read the store directory", -rc);
        goto fail;
    }
    uint64_t disk_last = 0;
    for (size_t i = 0; i < s->n_segs; i++)
        if (s->segs[i].n && s->segs[i].last > disk_last)
            disk_last = s->segs[i].last;
    uint64_t hi = disk_last, acked = have_ck ? ck.acked : 0;
    if (acked > hi)
        hi = acked;
    bool jumped = false;
    if (have_ck && ck.clean) {
        if (ck.next_seq - 1 > hi)
            hi = ck.next_seq - 1;
    } else if (have_ck && strcmp(ck.boot_id, s->boot_id) == 0 && s->boot_id[0]) {
        /* Killed, but the machine kept running: the page cache kept every byte written, and
         * records sent from memory stayed below the persisted mem_floor. */
        if (ck.mem_floor > hi)
            hi = ck.mem_floor;
    } else if (have_ck) {
        /* Power loss or a crash of the machine: records of the last fsync window may be gone
         * although sent. Continue above every number that could have been sent. */
        if (ck.floor > hi) {
            hi = ck.floor;
            jumped = true;
        }
    }
    s->next_seq = hi + 1;
    s->damaged = rep.damaged;
    for (size_t i = 0; i < s->n_segs; i++)
        s->pending += s->segs[i].n - s->segs[i].done;
    s->lane[LANE_BACKLOG] =
        (struct lane){.next = acked + 1, .acked = acked, .end = UINT64_MAX, .fd = -1};
    s->lane[LANE_LIVE] = (struct lane){.fd = -1};
    s->boundary_pending = true;
    s->backlog_active = true;
    s->floor_ok = s->mem_floor_ok = hi;
    s->ck_acked = acked;

    struct ckpt now = {.acked = acked, .floor = hi + SEQ_RESERVE, .mem_floor = hi};
    rc = ckpt_write(s, &now);
    if (rc == 0) {
        s->floor_ok = now.floor;
    } else {
        if (!disk_condition(-rc)) {
            refuse(cfg, "cannot write the checkpoint in", -rc);
            goto fail;
        }
        s->ck_failed = true;
    }
    rc = seg_create(s, s->next_seq);
    if (rc < 0) {
        if (!disk_condition(-rc)) {
            refuse(cfg, "cannot create a segment file in", -rc);
            goto fail;
        }
        disk_fail(s, -rc);
    }
    if (rep.damaged || rep.places) {
        char b[32];
        ib_format_size(b, sizeof b, rep.damaged_bytes);
        ib_log(IB_LOG_WARNING, NULL, NULL, NULL,
               "store: discarded %" PRIu64 " damaged records (%s in %" PRIu64
               " places: a torn tail from a crash or power cut, or damaged media) while opening "
               "%s; the other records are kept and will be sent",
               rep.damaged, b, rep.places, cfg->path);
    }
    if (jumped)
        ib_log(IB_LOG_WARNING, NULL, NULL, NULL,
               "store: the previous run did not stop cleanly and the machine restarted since "
               "(power loss?): records of its last fsync window (fsync_interval_ms) may be "
               "lost; sequence numbers continue at %" PRIu64
               ", above every number it could have sent",
               s->next_seq);
    char b[32];
    ib_format_size(b, sizeof b, rep.bytes);
    ib_log(IB_LOG_INFO, NULL, NULL, NULL,
           "store: %s: %" PRIu64 " records (%s) waiting from an earlier run; sequence numbers "
           "continue at %" PRIu64,
           cfg->path, s->pending, b, s->next_seq);
    if (pthread_create(&s->flusher, NULL, flusher_main, s) != 0) {
        ib_log(IB_LOG_ERR, NULL, NULL, NULL, "store: cannot start its flusher thread");
        goto fail;
    }
    s->flusher_started = true;
    return s;
fail:
    ib_store_close(s);
    return NULL;
}

void ib_store_close(struct ib_store *s)
{
    if (!s)
        return;
    if (s->flusher_started) {
        pthread_mutex_lock(&s->mu);
        s->stop = true;
        pthread_cond_signal(&s->fcv);
        pthread_mutex_unlock(&s->mu);
        pthread_join(s->flusher, NULL);
        pthread_mutex_lock(&s->mu);
        if (s->disk_err)
            try_recover(s);
        uint64_t lost = 0;
        for (struct mrec *m = s->mhead; m; m = m->next)
            lost += !m->done;
        if (lost)
            ib_log(IB_LOG_ERR, NULL, NULL, NULL,
                   "store: %" PRIu64 " records held in memory are lost: the disk did not take "
                   "them before the stop",
                   lost);
        if (s->active_fd >= 0)
            fdatasync(s->active_fd);
        if (s->sealed_fd >= 0)
            fdatasync(s->sealed_fd);
        fsync(s->dirfd);
        uint64_t disk_last = 0;
        for (size_t i = 0; i < s->n_segs; i++)
            if (s->segs[i].n && s->segs[i].last > disk_last)
                disk_last = s->segs[i].last;
        struct ckpt c = {.acked = acked_through(s),
                         .next_seq = s->next_seq,
                         .disk_last = disk_last,
                         .floor = s->floor_ok,
                         .mem_floor = s->mem_floor_ok,
                         .clean = true};
        int rc = ckpt_write(s, &c);
        if (rc < 0)
            ib_log(IB_LOG_WARNING, NULL, NULL, NULL,
                   "store: cannot write the final checkpoint: %s; the next start treats this "
                   "stop as a crash",
                   strerror(-rc));
        pthread_mutex_unlock(&s->mu);
    }
    /* A clean stop leaves only what is waiting: the active segment goes when it holds nothing
     * unacknowledged (the checkpoint says where the numbers continue). */
    if (s->active_fd >= 0 && s->n_segs && s->segs[s->n_segs - 1].done >= s->segs[s->n_segs - 1].n) {
        close(s->active_fd);
        s->active_fd = -1;
        seg_remove(s, s->n_segs - 1);
    }
    if (s->active_fd >= 0)
        close(s->active_fd);
    if (s->sealed_fd >= 0)
        close(s->sealed_fd);
    if (s->ckpt_fd >= 0)
        close(s->ckpt_fd);
    for (int i = 0; i < 2; i++) {
        lane_close_file(&s->lane[i]);
        free(s->lane[i].buf);
    }
    if (s->dirfd >= 0)
        close(s->dirfd); /* releases the flock */
    while (s->mhead)
        mem_pop_head(s);
    free(s->segs);
    free(s->ring);
    ib_buf_free(&s->send);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    pthread_cond_destroy(&s->fcv);
    free((char *)s->settings.path);
    free(s);
}
