/* The store's segment files: naming, finding, creating, appending framed records (rotating and
 * dropping the oldest segment when full), and the disk failing; drops are counted here. */
#include "store_impl.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "crc32c.h"
#include "units.h"

const char *const store_drop_reason[N_DROP] = {
    [DROP_FULL] = "the store is full (max_bytes)",
    [DROP_AGE] = "they are older than max_age",
    [DROP_MEMORY] = "the memory buffer is full while the disk refuses writes (memory_max_bytes)",
};
void store_seg_name(char *buf, size_t len, uint64_t id)
{
    snprintf(buf, len, "seg-%016" PRIx64 ".ibq", id);
}
/* ---- segments -------------------------------------------------------------------------------- */

/* The index of the segment whose seq range holds `seq`, or -1 (before the oldest). */
long store_seg_index(const struct ib_store *s, uint64_t seq)
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

bool store_seg_is_active(const struct ib_store *s, size_t i)
{
    return s->active_fd >= 0 && i + 1 == s->n_segs;
}
void store_seg_remove(struct ib_store *s, size_t i)
{
    char name[40];
    store_seg_name(name, sizeof name, s->segs[i].id);
    if (unlinkat(s->dirfd, name, 0) < 0 && errno != ENOENT)
        ib_log(IB_LOG_WARNING, NULL, NULL, NULL, "store: cannot delete %s: %s", name,
               strerror(errno));
    for (int k = 0; k < 2; k++)
        if (s->lane[k].fd_id == s->segs[i].id)
            store_lane_close(&s->lane[k]); /* an open file would keep its space in use */
    s->disk_bytes -= s->segs[i].size;
    memmove(&s->segs[i], &s->segs[i + 1], (s->n_segs - i - 1) * sizeof s->segs[0]);
    s->n_segs--;
}

void store_drop_note(struct ib_store *s, int why, uint64_t n, uint64_t lo, uint64_t hi)
{
    struct drop_episode *e = &s->ep[why];
    int64_t now = ib_monotonic_ms();
    s->dropped[why] += n;
    switch (ib_episode_fail(&e->ep, why, now)) {
    case IB_EPISODE_STARTED:
        e->n = 0;
        e->lo = lo;
        ib_log(IB_LOG_WARNING, NULL, NULL, NULL,
               "store: dropping the oldest records because %s (first seq %" PRIu64
               "); every dropped record is counted in the status",
               store_drop_reason[why], lo);
        break;
    case IB_EPISODE_REMIND:
        ib_log(IB_LOG_WARNING, NULL, NULL, NULL,
               "store: still dropping the oldest records because %s: %" PRIu64 " in %" PRId64
               " s (seq %" PRIu64 "..%" PRIu64 ")",
               store_drop_reason[why], e->n + n, ib_episode_age_s(&e->ep, now), e->lo, hi);
        break;
    default:
        break;
    }
    e->n += n;
    e->hi = hi;
    e->last_ms = now;
}

void store_pending_sub(struct ib_store *s, uint64_t n)
{
    s->pending = n > s->pending ? 0 : s->pending - n;
}

/* Drop the oldest segment with whatever it still holds (counted under `why`). */
void store_drop_oldest(struct ib_store *s, int why)
{
    struct seg *g = &s->segs[0];
    uint64_t lost = g->n > g->done ? g->n - g->done : 0;
    if (lost) {
        store_pending_sub(s, lost);
        store_drop_note(s, why, lost, g->first, g->last);
    }
    if (g->n)
        store_mark_gone(s, g->last);
    store_seg_remove(s, 0);
}

/* The disk refused a write (errno `err`): from now on records go to memory until the flusher
 * finds the disk usable again. */
void store_disk_fail(struct ib_store *s, int err)
{
    if (!s->disk_err) {
        char mem[32];
        ib_units_format_size(mem, sizeof mem, (uint64_t)s->cfg->memory_max_bytes);
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
int store_seg_create(struct ib_store *s, uint64_t id)
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
           !store_seg_is_active(s, s->n_segs - 1)) {
        s->disk_bytes -= s->segs[s->n_segs - 1].size;
        s->n_segs--;
    }
    char name[40];
    store_seg_name(name, sizeof name, id);
    int fd = openat(s->dirfd, name, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return -errno;
    int64_t now = ib_now_ms();
    unsigned char h[SEG_HDR];
    ib_store_seg_header(h, id, now);
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

/* Append one ib_store_frame to the active segment (rotating and making room first). The payload
 * comes in n_parts pieces. Returns 0 or -errno (nothing appended). */
int store_disk_append(struct ib_store *s, uint64_t seq, int64_t ts, const char *topic, size_t tl,
                      const struct iovec *parts, int n_parts)
{
    size_t plen = 0;
    for (int i = 0; i < n_parts; i++)
        plen += parts[i].iov_len;
    size_t body = REC_HDR + tl + plen, ib_store_frame = FRAME_HDR + body;
    struct seg *a = s->active_fd >= 0 ? &s->segs[s->n_segs - 1] : NULL;
    if (!a || (a->n && (a->size + ib_store_frame > s->seg_bytes ||
                        ib_now_ms() - a->created_ms >= s->seg_age_ms))) {
        int rc = store_seg_create(s, seq);
        if (rc < 0)
            return rc;
        a = &s->segs[s->n_segs - 1];
    }
    while (s->disk_bytes + ib_store_frame > (uint64_t)s->cfg->max_bytes && s->n_segs > 1) {
        store_drop_oldest(s, DROP_FULL);
        a = &s->segs[s->n_segs - 1];
    }
    unsigned char h[FRAME_HDR + REC_HDR] = {0};
    ib_put32(h + 4, (uint32_t)body);
    ib_put64(h + 8, seq);
    ib_put64(h + 16, (uint64_t)ts);
    ib_put16(h + 24, (uint16_t)tl);
    uint32_t crc = ib_crc32c(h + 4, 4 + REC_HDR);
    crc = ib_crc32c_update(crc, topic, tl);
    struct iovec iov[8];
    iov[0] = (struct iovec){h, sizeof h};
    iov[1] = (struct iovec){(void *)topic, tl};
    for (int i = 0; i < n_parts; i++) {
        crc = ib_crc32c_update(crc, parts[i].iov_base, parts[i].iov_len);
        iov[2 + i] = parts[i];
    }
    ib_put32(h, crc);
    ssize_t w = pwritev(s->active_fd, iov, 2 + n_parts, (off_t)a->size);
    if (w != (ssize_t)ib_store_frame) {
        int e = w < 0 ? errno : ENOSPC;
        if (w > 0 && ftruncate(s->active_fd, (off_t)a->size) < 0) {
            /* The partial ib_store_frame stays behind the valid ones; the next open cuts it off. */
        }
        return -e;
    }
    if (!a->n)
        a->first = seq;
    a->n++;
    a->last = seq;
    a->last_ts = ts;
    a->size += ib_store_frame;
    s->disk_bytes += ib_store_frame;
    if (s->cfg->fsync == IB_FSYNC_ALWAYS) {
        if (fdatasync(s->active_fd) < 0)
            store_disk_fail(s, errno); /* written, but the disk cannot promise it: stop using it */
        return 0;
    }
    if (!s->unsynced_since)
        s->unsynced_since = ib_monotonic_ms();
    s->unsynced += ib_store_frame;
    if (s->unsynced >= (uint64_t)s->cfg->fsync_bytes)
        pthread_cond_signal(&s->fcv);
    return 0;
}
