/* The store's checkpoint file: two 128-byte slots written alternately, read at open and
 * written by the flusher (the acknowledged position and the sequence floors). */
#include "store_impl.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "crc32c.h"

/* The checkpoint file's slots: 2 or 1 when valid ones were found (the newer in *out), 0 when
 * none was, -1 when the file is empty (a new store). */
int store_ckpt_read(int fd, struct ib_store_ckpt *out)
{
    unsigned char b[2 * CKPT_SLOT];
    ssize_t n = pread(fd, b, sizeof b, 0);
    if (n <= 0)
        return -1;
    return ib_store_ckpt_parse(b, (size_t)n, out);
}

/* Write a new generation into the older slot and fdatasync. Called by the flusher or when no
 * flusher runs (open, close). Returns 0 or -errno. */
int store_ckpt_write(struct ib_store *s, struct ib_store_ckpt *c)
{
    if (s->ckpt_fd < 0) {
        s->ckpt_fd = openat(s->dirfd, CKPT_NAME, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        if (s->ckpt_fd < 0)
            return -errno;
    }
    c->gen = ++s->ck_gen;
    memcpy(c->boot_id, s->boot_id, sizeof c->boot_id);
    unsigned char b[CKPT_SLOT];
    ib_store_ckpt_encode(c, b);
    ssize_t w = pwrite(s->ckpt_fd, b, CKPT_SLOT, (off_t)((c->gen & 1) * CKPT_SLOT));
    if (w != CKPT_SLOT)
        return w < 0 ? -errno : -ENOSPC;
    if (fdatasync(s->ckpt_fd) < 0)
        return -errno;
    return 0;
}

/* Snapshot under the lock, write without it, publish the new floors under it again. */
void store_checkpoint_flush(struct ib_store *s)
{
    struct ib_store_ckpt c = {.acked = store_acked_through(s),
                              .floor = s->next_seq - 1 + SEQ_RESERVE,
                              .mem_floor =
                                  s->mtail ? s->mtail->seq + MEM_RESERVE : s->mem_floor_ok};
    if (c.floor < s->floor_ok)
        c.floor = s->floor_ok;
    if (c.mem_floor < s->mem_floor_ok)
        c.mem_floor = s->mem_floor_ok;
    pthread_mutex_unlock(&s->mu);
    int rc = store_ckpt_write(s, &c);
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
    store_notify(s);
}
