/* The store's sending side: the backlog and live lanes (which record goes next, read back from
 * disk through a read-ahead window), the in-flight ring, acknowledgements and the replay rate. */
#include "store_impl.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "crc32c.h"

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
void store_mark_gone(struct ib_store *s, uint64_t upto)
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

uint64_t store_acked_through(const struct ib_store *s)
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

void store_lane_close(struct lane *l)
{
    if (l->fd >= 0)
        close(l->fd);
    l->fd = -1;
    l->buf_len = 0;
}

/* ---- reading --------------------------------------------------------------------------------- */

/* `need` bytes of segment `g` at `off`, through lane l's read-ahead window; NULL on an I/O
 * error (errno set). */
static const unsigned char *lane_read(struct ib_store *s, struct lane *l, const struct seg *g,
                                      uint64_t off, size_t need)
{
    if (l->fd < 0 || l->fd_id != g->id) {
        store_lane_close(l);
        char name[40];
        store_seg_name(name, sizeof name, g->id);
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
    store_pending_sub(s, n);
    s->damaged += n;
    if (ib_ratelimit_ok(&s->rl_damage, ib_monotonic_ms()) >= 0) {
        char name[40];
        store_seg_name(name, sizeof name, g->id);
        ib_log(IB_LOG_ERR, NULL, NULL, NULL,
               "store: %s cannot be read from seq %" PRIu64 " on (%s): %" PRIu64
               " records discarded, never sent",
               name, seq, err ? strerror(err) : "checksum mismatch: damaged on disk", n);
    }
    store_mark_gone(s, g->last);
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
            struct mrec *m = store_mem_find(s, q, l->mhint, l->mhint_seq);
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
        long i = store_seg_index(s, q);
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
            uint32_t len = ib_get32(p + 4);
            uint64_t seq = ib_get64(p + FRAME_HDR);
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
            struct ib_store_frame f;
            if (!p || !ib_store_frame_check(p, FRAME_HDR + len, s->max_record, &f) ||
                f.seq != seq) {
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
        struct mrec *m = store_mem_find(s, seq, s->mack, s->mack_seq);
        if (m && m->seq == seq && !m->done) {
            m->done = true;
            store_pending_sub(s, 1);
            s->acked++;
            s->mack = m;
            s->mack_seq = seq;
        }
        store_mem_trim(s);
        return;
    }
    long i = store_seg_index(s, seq);
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
    store_pending_sub(s, 1);
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
    /* In a reconnect storm every connection restarts the replay: announced at most once a
     * minute (the next announcement says how much is left). */
    bool say = s->pending && (!s->replay_said_ms || s->replay_t0 - s->replay_said_ms >= 60000);
    if (s->pending)
        ib_log(say ? IB_LOG_INFO : IB_LOG_DEBUG, NULL, NULL, NULL,
               "store: replaying the backlog of %" PRIu64 " records (seq %" PRIu64 "..%" PRIu64
               ") oldest first at up to %" PRId64 " records/s; live records are sent alongside",
               s->pending, b->next, last, s->cfg->replay_rate);
    if (say)
        s->replay_said_ms = s->replay_t0;
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

static void emit(struct ib_store *s, int lane, uint64_t seq, struct ib_store_rec *out)
{
    s->lane[lane].next = seq + 1;
    out->seq = seq;
    out->topic = s->send.p;
    size_t tl = strlen(s->send.p);
    out->payload = s->send.p + tl + 1;
    out->len = s->send.len - tl - 1;
}

bool ib_store_next(struct ib_store *s, unsigned max_inflight, struct ib_store_rec *out,
                   int64_t *wait_ms)
{
    int64_t token_ms = -1;
    pthread_mutex_lock(&s->mu);
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
    s->window_full = max_inflight && s->ring_len >= max_inflight;
    pthread_mutex_unlock(&s->mu);
    if (wait_ms)
        *wait_ms = token_ms > 0 ? token_ms : -1;
    return false;
}

void ib_store_wake_on_ack(struct ib_store *s)
{
    pthread_mutex_lock(&s->mu);
    s->ack_wakes = true;
    pthread_mutex_unlock(&s->mu);
}

void ib_store_set_notify(struct ib_store *s, ib_store_notify_fn fn, void *ud)
{
    pthread_mutex_lock(&s->mu);
    if (fn || s->notify_ud == ud) {
        s->notify = fn;
        s->notify_ud = fn ? ud : NULL;
        s->ack_wakes = false; /* a new sender (after a reload) is not stopping */
    }
    pthread_mutex_unlock(&s->mu);
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
        if (s->window_full || s->ack_wakes) { /* else the sender is not waiting for it */
            s->window_full = false;
            store_notify(s);
        }
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
        store_notify(s);
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
    store_notify(s);
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
