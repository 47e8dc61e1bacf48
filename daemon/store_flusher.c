/* The store's flusher thread: batched fdatasync, the sequence floors, housekeeping (age limits,
 * finished segments, the end of drop episodes) and recovery from a failing disk. */
#include "store_impl.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sys/uio.h>

#include "crc32c.h"

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
        store_disk_fail(s, err);
}

/* The disk failed earlier: try a new segment, then move the memory records to it in order. */
void store_try_recover(struct ib_store *s)
{
    int rc = store_seg_create(s, s->mhead ? s->mhead->seq : s->next_seq);
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
            rc = store_disk_append(s, m->seq, m->ts, m->data, m->tl, &part, 1);
            if (rc < 0) {
                store_disk_fail(s, -rc);
                s->next_probe = ib_monotonic_ms() + HOUSEKEEPING_MS;
                return;
            }
            moved++;
        }
        store_mem_pop_head(s);
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
        int rc = store_seg_create(s, s->next_seq);
        if (rc < 0)
            store_disk_fail(s, -rc);
    }
    while (s->n_segs && !store_seg_is_active(s, 0) && s->segs[0].last_ts < cut)
        store_drop_oldest(s, DROP_AGE);
    while (s->mhead && s->mhead->ts < cut)
        store_mem_drop_head(s, DROP_AGE);
    for (size_t i = 0; i < s->n_segs;)
        if (!store_seg_is_active(s, i) && s->segs[i].done >= s->segs[i].n)
            store_seg_remove(s, i);
        else
            i++;
    if (s->disk_err && ib_monotonic_ms() >= s->next_probe)
        store_try_recover(s);
    int64_t now = ib_monotonic_ms();
    for (int i = 0; i < N_DROP; i++) {
        struct drop_episode *e = &s->ep[i];
        if (e->ep.active && now - e->last_ms >= EPISODE_END_MS &&
            ib_episode_ok(&e->ep, now) == IB_EPISODE_ENDED)
            ib_log(IB_LOG_NOTICE, NULL, NULL, NULL,
                   "store: %" PRIu64 " records dropped because %s (seq %" PRIu64 "..%" PRIu64
                   "); no more drops for %d s",
                   e->n, store_drop_reason[i], e->lo, e->hi, EPISODE_END_MS / 1000);
    }
    if (store_acked_through(s) != s->ck_acked || s->ck_failed)
        store_checkpoint_flush(s);
}

void *store_flusher_main(void *arg)
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
            store_checkpoint_flush(s);
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
