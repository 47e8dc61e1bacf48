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

    struct ib_store_ckpt ck = {0};
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
            have_ck = store_ckpt_read(ro, &ck);
            close(ro);
        }
    } else {
        have_ck = store_ckpt_read(s->ckpt_fd, &ck);
    }
    if (have_ck)
        s->ck_gen = ck.gen;

    struct store_open_report rep = {0};
    int rc = store_load_segments(s, &ck, have_ck, &rep);
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

    struct ib_store_ckpt now = {.acked = acked, .floor = hi + SEQ_RESERVE, .mem_floor = hi};
    rc = store_ckpt_write(s, &now);
    if (rc == 0) {
        s->floor_ok = now.floor;
    } else {
        if (!disk_condition(-rc)) {
            refuse(cfg, "cannot write the checkpoint in", -rc);
            goto fail;
        }
        s->ck_failed = true;
    }
    rc = store_seg_create(s, s->next_seq);
    if (rc < 0) {
        if (!disk_condition(-rc)) {
            refuse(cfg, "cannot create a segment file in", -rc);
            goto fail;
        }
        store_disk_fail(s, -rc);
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
    if (pthread_create(&s->flusher, NULL, store_flusher_main, s) != 0) {
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
