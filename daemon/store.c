/* The store's entry points: open (with the directory, its lock and the recovery of an earlier
 * run), close (a clean checkpoint), push, and the statistics. The parts live in store_*.c. */
#include "store_impl.h"

#include <errno.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "crc32c.h"

#include "units.h"

/* ---- push ------------------------------------------------------------------------------------ */

uint64_t ib_store_push(struct ib_store *s, const char *topic, ib_store_head_fn head, void *head_ud,
                       const void *body, size_t body_len)
{
    size_t tl = strlen(topic);
    char prefix[IB_STORE_HEAD_MAX];
    pthread_mutex_lock(&s->mu);
    uint64_t seq = s->next_seq++;
    s->pushed++;
    size_t pl = head ? head(head_ud, seq, prefix, sizeof prefix) : 0;
    if (pl > sizeof prefix)
        pl = sizeof prefix;
    if (tl > UINT16_MAX || REC_HDR + tl + pl + body_len > s->max_record) {
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
    struct iovec parts[2] = {{prefix, pl}, {(void *)body, body_len}};
    int64_t ts = ib_now_ms();
    bool kept;
    if (!s->disk_err && !s->mhead) {
        int rc = store_disk_append(s, seq, ts, topic, tl, parts, 2);
        if (rc < 0)
            store_disk_fail(s, -rc);
        kept = rc == 0 || store_mem_append(s, seq, ts, topic, tl, parts, 2);
    } else {
        kept = store_mem_append(s, seq, ts, topic, tl, parts, 2);
    }
    if (kept)
        s->pending++;
    if (seq + SEQ_RESERVE / 2 > s->floor_ok)
        pthread_cond_signal(&s->fcv);
    store_notify(s);
    pthread_mutex_unlock(&s->mu);
    return kept ? seq : 0;
}

/* For the metrics' backlog age; store.mu is held. */
static int64_t store_oldest_ms(const struct ib_store *s)
{
    int64_t oldest = 0;
    for (size_t i = 0; i < s->n_segs && !oldest; i++)
        if (s->segs[i].done < s->segs[i].n)
            oldest = s->segs[i].created_ms;
    for (const struct mrec *r = s->mhead; r; r = r->next)
        if (!r->done) {
            if (!oldest || r->ts < oldest)
                oldest = r->ts;
            break;
        }
    return oldest;
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
    st->oldest_ms = store_oldest_ms(s);
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

/* A store with its settings copied, nothing opened yet; NULL when out of memory. */
static struct ib_store *store_new(const struct ib_store_cfg *cfg)
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
    s->cfg = &s->settings;
    s->dirfd = s->ckpt_fd = s->active_fd = s->sealed_fd = -1;
    s->lane[0].fd = s->lane[1].fd = -1;
    pthread_mutex_init(&s->mu, NULL);
    ib_cond_init_monotonic(&s->fcv);
    s->rl_large = (struct ib_ratelimit)IB_RATELIMIT_INIT(60000, 5);
    s->rl_damage = (struct ib_ratelimit)IB_RATELIMIT_INIT(60000, 5);
    uint64_t mb = (uint64_t)cfg->max_bytes;
    s->seg_bytes = mb / 16 < (64u << 10)   ? (64u << 10)
                   : mb / 16 > (16u << 20) ? (16u << 20)
                                           : mb / 16;
    s->max_record = mb / 4 < MAX_RECORD ? mb / 4 : MAX_RECORD;
    s->seg_age_ms = cfg->max_age_ms / 8 > 1000 ? cfg->max_age_ms / 8 : 1000;
    return s;
}

/* Create, open and lock the directory. Returns false after logging why. */
static bool open_dir(struct ib_store *s)
{
    const struct ib_store_cfg *cfg = s->cfg;
    if (make_dirs(cfg->path) < 0) {
        refuse(cfg, "cannot create the store directory", errno);
        return false;
    }
    s->dirfd = open(cfg->path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (s->dirfd < 0) {
        refuse(cfg, "cannot open the store directory", errno);
        return false;
    }
    if (flock(s->dirfd, LOCK_EX | LOCK_NB) < 0) {
        ib_log(IB_LOG_ERR, NULL, NULL, NULL,
               "store: %s is in use by another process (another ironbridge?); two gateways "
               "cannot share a store: give each its own store.path",
               cfg->path);
        return false;
    }
    struct stat st;
    if (fstat(s->dirfd, &st) == 0 && (st.st_mode & 077))
        ib_log(IB_LOG_WARNING, NULL, NULL, NULL,
               "store: %s is accessible by group or others (mode %04o); the queue holds plant "
               "data: chmod 700 it",
               cfg->path, (unsigned)(st.st_mode & 07777));
    read_boot_id(s->boot_id, sizeof s->boot_id);
    return true;
}

/* Open the checkpoint file and read it into *ck. Returns 1 (read), 0 (none, or damaged: logged)
 * or -1 after logging why the store cannot be used. */
static int open_checkpoint(struct ib_store *s, struct ib_store_ckpt *ck)
{
    int fd = s->ckpt_fd = openat(s->dirfd, CKPT_NAME, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        int e = errno;
        if (!disk_condition(e)) {
            refuse(s->cfg, "cannot write in the store directory", e);
            return -1;
        }
        fd = openat(s->dirfd, CKPT_NAME, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            return 0;
    }
    int rc = store_ckpt_read(fd, ck);
    if (fd != s->ckpt_fd)
        close(fd);
    if (rc == 0)
        ib_log(IB_LOG_WARNING, NULL, NULL, NULL,
               "store: the checkpoint %s/%s is damaged (no valid slot): which records were "
               "acknowledged is unknown, so every record on disk is sent again (duplicates, "
               "not losses); sequence numbers continue after the highest on disk",
               s->cfg->path, CKPT_NAME);
    if (rc <= 0)
        return 0;
    s->ck_gen = ck->gen;
    return 1;
}

/* The highest number that may have been used before this start (docs/store.md "Sequence
 * numbers"); *jumped when it is above what the disk holds because the machine restarted. */
static uint64_t seq_high(const struct ib_store *s, const struct ib_store_ckpt *ck, bool have_ck,
                         bool *jumped)
{
    uint64_t hi = have_ck ? ck->acked : 0;
    for (size_t i = 0; i < s->n_segs; i++)
        if (s->segs[i].n && s->segs[i].last > hi)
            hi = s->segs[i].last;
    *jumped = false;
    if (!have_ck)
        return hi;
    if (ck->clean)
        return ck->next_seq - 1 > hi ? ck->next_seq - 1 : hi;
    if (s->boot_id[0] && strcmp(ck->boot_id, s->boot_id) == 0)
        /* Killed, but the machine kept running: the page cache kept every byte written, and
         * records sent from memory stayed below the persisted mem_floor. */
        return ck->mem_floor > hi ? ck->mem_floor : hi;
    /* Power loss or a crash of the machine: records of the last fsync window may be gone
     * although sent. Continue above every number that could have been sent. */
    *jumped = ck->floor > hi;
    return *jumped ? ck->floor : hi;
}

/* Set the counters and lanes for the records found, numbers continuing after hi. */
static void resume(struct ib_store *s, uint64_t hi, uint64_t acked, uint64_t damaged)
{
    s->next_seq = hi + 1;
    s->damaged = damaged;
    for (size_t i = 0; i < s->n_segs; i++)
        s->pending += s->segs[i].n - s->segs[i].done;
    s->lane[LANE_BACKLOG] =
        (struct lane){.next = acked + 1, .acked = acked, .end = UINT64_MAX, .fd = -1};
    s->lane[LANE_LIVE] = (struct lane){.fd = -1};
    s->boundary_pending = true;
    s->backlog_active = true;
    s->floor_ok = s->mem_floor_ok = hi;
    s->ck_acked = acked;
}

/* Persist the reservation and start the active segment. Returns false after logging why the
 * store cannot be used (a full or read-only disk is not a reason). */
static bool start_writing(struct ib_store *s, uint64_t hi, uint64_t acked)
{
    struct ib_store_ckpt now = {.acked = acked, .floor = hi + SEQ_RESERVE, .mem_floor = hi};
    int rc = store_ckpt_write(s, &now);
    if (rc == 0) {
        s->floor_ok = now.floor;
    } else {
        if (!disk_condition(-rc)) {
            refuse(s->cfg, "cannot write the checkpoint in", -rc);
            return false;
        }
        s->ck_failed = true;
    }
    rc = store_seg_create(s, s->next_seq);
    if (rc < 0) {
        if (!disk_condition(-rc)) {
            refuse(s->cfg, "cannot create a segment file in", -rc);
            return false;
        }
        store_disk_fail(s, -rc);
    }
    return true;
}

static void log_open(const struct ib_store *s, const struct store_open_report *rep, bool jumped)
{
    char b[32];
    if (rep->damaged || rep->places) {
        ib_units_format_size(b, sizeof b, rep->damaged_bytes);
        ib_log(IB_LOG_WARNING, NULL, NULL, NULL,
               "store: discarded %" PRIu64 " damaged records (%s in %" PRIu64
               " places: a torn tail from a crash or power cut, or damaged media) while opening "
               "%s; the other records are kept and will be sent",
               rep->damaged, b, rep->places, s->cfg->path);
    }
    if (jumped)
        ib_log(IB_LOG_WARNING, NULL, NULL, NULL,
               "store: the previous run did not stop cleanly and the machine restarted since "
               "(power loss?): records of its last fsync window (fsync_interval_ms) may be "
               "lost; sequence numbers continue at %" PRIu64
               ", above every number it could have sent",
               s->next_seq);
    ib_units_format_size(b, sizeof b, rep->bytes);
    ib_log(IB_LOG_INFO, NULL, NULL, NULL,
           "store: %s: %" PRIu64 " records (%s) waiting from an earlier run; sequence numbers "
           "continue at %" PRIu64,
           s->cfg->path, s->pending, b, s->next_seq);
}

struct ib_store *ib_store_open(const struct ib_store_cfg *cfg)
{
    struct ib_store *s = store_new(cfg);
    if (!s)
        return NULL;
    struct ib_store_ckpt ck = {0};
    int have_ck = open_dir(s) ? open_checkpoint(s, &ck) : -1;
    if (have_ck < 0)
        goto fail;
    struct store_open_report rep = {0};
    int rc = store_load_segments(s, &ck, have_ck, &rep);
    if (rc < 0) {
        refuse(s->cfg, "cannot read the store directory", -rc);
        goto fail;
    }
    bool jumped;
    uint64_t hi = seq_high(s, &ck, have_ck, &jumped), acked = have_ck ? ck.acked : 0;
    resume(s, hi, acked, rep.damaged);
    if (!start_writing(s, hi, acked))
        goto fail;
    log_open(s, &rep, jumped);
    if (pthread_create(&s->flusher, NULL, store_flusher_main, s) != 0) {
        ib_log(IB_LOG_ERR, NULL, NULL, NULL, "store: cannot start its flusher thread");
        goto fail;
    }
    ib_thread_name(s->flusher, "store", NULL);
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
            store_try_recover(s);
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
        struct ib_store_ckpt c = {.acked = store_acked_through(s),
                                  .next_seq = s->next_seq,
                                  .disk_last = disk_last,
                                  .floor = s->floor_ok,
                                  .mem_floor = s->mem_floor_ok,
                                  .clean = true};
        int rc = store_ckpt_write(s, &c);
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
        store_seg_remove(s, s->n_segs - 1);
    }
    if (s->active_fd >= 0)
        close(s->active_fd);
    if (s->sealed_fd >= 0)
        close(s->sealed_fd);
    if (s->ckpt_fd >= 0)
        close(s->ckpt_fd);
    for (int i = 0; i < 2; i++) {
        store_lane_close(&s->lane[i]);
        free(s->lane[i].buf);
    }
    if (s->dirfd >= 0)
        close(s->dirfd); /* releases the flock */
    while (s->mhead)
        store_mem_pop_head(s);
    free(s->segs);
    free(s->ring);
    ib_buf_free(&s->send);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->fcv);
    free((char *)s->settings.path);
    free(s);
}
