/* The store's recovery at open: index the segment files left by earlier runs, cut torn tails,
 * rewrite damaged segments without their damage, count and log what was lost. */
#include "store_impl.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <dirent.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include "units.h"

struct copy_out {
    int fd;
    uint64_t off;
};

/* Append one intact frame to the repaired file. */
static int copy_frame(void *ud, const unsigned char *frame, size_t len)
{
    struct copy_out *o = ud;
    if (pwrite(o->fd, frame, len, (off_t)o->off) != (ssize_t)len)
        return -1;
    o->off += len;
    return 0;
}

/* Rewrite a segment without its damaged parts (temporary file, fsync, rename). */
static int seg_rewrite(struct ib_store *s, const char *name, const unsigned char *m, size_t size,
                       uint64_t id)
{
    char tmp[48];
    snprintf(tmp, sizeof tmp, "%s.tmp", name);
    int fd = openat(s->dirfd, tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return -1;
    unsigned char h[SEG_HDR];
    ib_store_seg_header(h, id, size >= SEG_HDR ? (int64_t)ib_get64(m + 16) : ib_now_ms());
    struct ib_store_scan r;
    struct copy_out o = {fd, SEG_HDR};
    int rc = pwrite(fd, h, SEG_HDR, 0) == SEG_HDR ? 0 : -1;
    if (rc == 0)
        rc = ib_store_scan_segment(m, size, id, 0, s->max_record, &r, copy_frame, &o);
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
                     struct ib_store_scan *r)
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
    ib_store_scan_segment(m ? m : (const unsigned char *)"", size, id, acked, s->max_record, r,
                          NULL, NULL);
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

/* What lies around a segment file: the last record of the files before it, the next file's id
 * (0: none), the last record on disk at a clean stop (0: unknown). */
struct gap {
    uint64_t prev_last, next_id, clean_last;
};

/* Records a torn tail held: up to the next file's first record, or up to the last record
 * written before a clean stop; at least one (the incomplete one). */
static uint64_t torn_records(uint64_t id, const struct ib_store_scan *r, const struct gap *g)
{
    uint64_t last = r->n ? r->last : id - 1;
    if (g->next_id)
        return g->next_id > last + 1 ? g->next_id - last - 1 : 0;
    return g->clean_last > last ? g->clean_last - last : 1;
}

/* A file named like a segment with neither a valid header nor an intact record, whose name
 * falls among records another file holds: the store never made it (it names each new segment
 * after the next seq, above every record before it), so it held none of ours. */
static bool foreign_file(uint64_t id, const struct ib_store_scan *r, const struct gap *g)
{
    return r->header_bad && !r->n && r->valid_end + r->tail_bytes >= SEG_HDR &&
           (id == 0 || g->prev_last >= id);
}

/* Count and log what a segment file lost (docs/store.md "Damage"). */
static void report_damage(const char *name, uint64_t id, const struct ib_store_scan *r,
                          const struct gap *g, struct store_open_report *rep)
{
    uint64_t size = r->valid_end + r->tail_bytes, places = r->bad_regions + !!r->tail_bytes;
    if (foreign_file(id, r, g)) {
        char b[32];
        ib_units_format_size(b, sizeof b, size);
        ib_log(IB_LOG_WARNING, NULL, NULL, NULL,
               "store: %s is not a segment of this store (%s without a valid header or any "
               "intact record, named among records another file holds): deleted; no record was "
               "lost",
               name, b);
        return;
    }
    uint64_t lost = r->bad_records + (r->tail_bytes ? torn_records(id, r, g) : 0);
    rep->places += places;
    rep->damaged_bytes += r->bad_bytes + r->tail_bytes;
    rep->damaged += lost;
    if (lost || places)
        ib_log(IB_LOG_WARNING, NULL, NULL, NULL,
               "store: %s: %" PRIu64 " damaged bytes in %" PRIu64 " place%s%s: %" PRIu64
               " records discarded",
               name, r->bad_bytes + r->tail_bytes, places, places == 1 ? "" : "s",
               r->tail_bytes ? " (a torn tail cut off)" : "", lost);
    if (r->header_bad && r->n)
        ib_log(IB_LOG_WARNING, NULL, NULL, NULL,
               "store: %s: its header was damaged (bad media?); rewritten, its %" PRIu64
               " intact records are kept",
               name, r->n);
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Index the segment files left by earlier runs; count what was damaged. */
int store_load_segments(struct ib_store *s, const struct ib_store_ckpt *ck, bool have_ck,
                        struct store_open_report *rep)
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
    uint64_t acked = have_ck ? ck->acked : 0, prev_last = 0;
    for (size_t i = 0; i < n; i++) {
        char name[40];
        store_seg_name(name, sizeof name, ids[i]);
        struct ib_store_scan r;
        bool keep = seg_load(s, name, ids[i], acked, &r);
        struct gap g = {.prev_last = prev_last,
                        .next_id = i + 1 < n ? ids[i + 1] : 0,
                        .clean_last = have_ck && ck->clean ? ck->disk_last : 0};
        report_damage(name, ids[i], &r, &g, rep);
        if (r.n && r.last > prev_last)
            prev_last = r.last;
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
        rep->bytes += r.open_bytes;
    }
    free(ids);
    return 0;
}
