/* fuzz_store.c: fuzz target of what the store reads back from disk at a start (daemon/store.c):
 * the checkpoint reader and the segment scanner (recovery of damaged and torn segments), then
 * the records read back and acknowledged, through the public entry points (ib_store_open,
 * ib_store_next, ib_store_ack, ib_store_close) on a store directory in the scratch directory.
 *
 * Input: [0] flags: bit 0 make the CRCs valid (segment header, each frame as far as its length
 * leads, both checkpoint slots), bit 1 write a checkpoint file, bit 2 two segments, bit 3 name
 * a segment one past the id its header says; [1..2] checkpoint length L (little-endian, at most
 * 256), L bytes of checkpoint; with bit 2 a 2-byte split offset; then the segment bytes. A
 * segment is named seg-<id>.ibq after the id in its header (bytes 8..15), 1 without one.
 *
 * IB_FUZZ_MKSEEDS=DIR: write seed inputs made by the real store to DIR instead, and exit. */
#include <dirent.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crc32c.h"
#include "fuzz_util.h"
#include "log.h"
#include "store.h"

#define SEG_HDR   32
#define FRAME_HDR 8
#define CKPT_SLOT 128

static char store_dir[512];

static struct ib_store_cfg store_cfg(void)
{
    return (struct ib_store_cfg){.path = store_dir,
                                 .max_bytes = 64 << 20,
                                 .max_age_ms = 7LL * 86400 * 1000,
                                 .fsync = IB_FSYNC_BATCH,
                                 .fsync_interval_ms = 1000,
                                 .fsync_bytes = 1 << 20,
                                 .memory_max_bytes = 1 << 20};
}

static uint64_t get64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

static void put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void seal_segment(uint8_t *m, size_t size)
{
    if (size < SEG_HDR)
        return;
    put32(m + 28, ib_crc32c(m, 28));
    for (size_t off = SEG_HDR; off + FRAME_HDR <= size;) {
        uint32_t len = (uint32_t)(m[off + 4] | m[off + 5] << 8 | m[off + 6] << 16 |
                                  (uint32_t)m[off + 7] << 24);
        if (len > size - off - FRAME_HDR)
            break;
        put32(m + off, ib_crc32c(m + off + 4, 4 + (size_t)len));
        off += FRAME_HDR + len;
    }
}

static void write_segment(uint8_t *m, size_t size, int seal, int misname)
{
    if (seal)
        seal_segment(m, size);
    uint64_t id = size >= 16 ? get64(m + 8) : 1;
    char path[600];
    snprintf(path, sizeof path, "%s/seg-%016" PRIx64 ".ibq", store_dir, id + (misname ? 1 : 0));
    fz_write(path, m, size);
}

static void run(struct ib_store *s)
{
    struct ib_store_rec rec;
    for (int i = 0; i < 64 && ib_store_next(s, 1000, &rec, NULL); i++) {
        if (!rec.topic || !rec.payload)
            abort();
        if (i % 3 == 0)
            ib_store_ack(s, rec.seq);
        else if (i % 7 == 0)
            ib_store_nack(s, rec.seq);
    }
    char line[256];
    ib_store_describe(s, line, sizeof line);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 3)
        return 0;
    uint8_t flags = data[0];
    size_t off = 3, ck = (size_t)(data[1] | data[2] << 8) % 257;
    if (ck > size - off)
        ck = size - off;
    fz_clear_dir(store_dir);
    if (flags & 2) {
        uint8_t slot[2 * CKPT_SLOT];
        memcpy(slot, data + off, ck);
        for (size_t i = 0; (flags & 1) && i + CKPT_SLOT <= ck; i += CKPT_SLOT)
            put32(slot + i + CKPT_SLOT - 4, ib_crc32c(slot + i, CKPT_SLOT - 4));
        char path[600];
        snprintf(path, sizeof path, "%s/checkpoint", store_dir);
        fz_write(path, slot, ck);
    }
    off += ck;
    size_t split = size - off;
    if ((flags & 4) && size - off >= 2) {
        split = (size_t)(data[off] | data[off + 1] << 8);
        off += 2;
        if (split > size - off)
            split = size - off;
    }
    size_t seg_len = size - off;
    uint8_t *seg = malloc(seg_len ? seg_len : 1);
    memcpy(seg, data + off, seg_len);
    if (seg_len > 0 || !(flags & 4))
        write_segment(seg, split, flags & 1, flags & 8);
    if ((flags & 4) && seg_len > split)
        write_segment(seg + split, seg_len - split, flags & 1, 0);
    free(seg);
    struct ib_store_cfg cfg = store_cfg();
    struct ib_store *s = ib_store_open(&cfg);
    if (s) {
        run(s);
        ib_store_close(s);
    }
    return 0;
}

/* ---- seeds: inputs made by the real store ---------------------------------------------------- */

static size_t read_all(const char *path, uint8_t *buf, size_t cap)
{
    FILE *f = fopen(path, "rb");
    size_t n = f ? fread(buf, 1, cap, f) : 0;
    if (f)
        fclose(f);
    return n;
}

/* Pack the store directory as an input (first one or two segments) into out/name. */
static void pack(const char *out, const char *name, uint8_t flags)
{
    static uint8_t buf[1 << 20];
    char path[1024];
    size_t n = 3;
    snprintf(path, sizeof path, "%s/checkpoint", store_dir);
    size_t ck = read_all(path, buf + 3, 256);
    buf[0] = flags | 2;
    buf[1] = (uint8_t)ck;
    buf[2] = (uint8_t)(ck >> 8);
    n += ck;
    struct dirent **list;
    int k = scandir(store_dir, &list, NULL, alphasort), segs = 0;
    size_t split_at = 0;
    for (int i = 0; i < k; i++) {
        if (!strncmp(list[i]->d_name, "seg-", 4) && segs < 2) {
            if (segs == 1) {
                buf[0] |= 4;
                memmove(buf + split_at + 2, buf + split_at, n - split_at);
                buf[split_at] = (uint8_t)(n - split_at);
                buf[split_at + 1] = (uint8_t)((n - split_at) >> 8);
                n += 2;
            }
            split_at = n;
            snprintf(path, sizeof path, "%s/%s", store_dir, list[i]->d_name);
            n += read_all(path, buf + n, sizeof buf - n);
            segs++;
        }
        free(list[i]);
    }
    free(list);
    snprintf(path, sizeof path, "%s/%s", out, name);
    fz_write(path, buf, n);
}

static void make_seeds(const char *out)
{
    static const char body[] = ",\"ts\":1700000000000,\"values\":{\"t\":21.5}}";
    struct ib_store_cfg cfg = store_cfg();
    for (int round = 0; round < 3; round++) {
        fz_clear_dir(store_dir);
        if (round == 2)
            cfg.max_bytes = 4096; /* small segments: several files */
        struct ib_store *s = ib_store_open(&cfg);
        if (!s)
            abort();
        for (int i = 0; i < (round == 0 ? 3 : 40); i++)
            ib_store_push(s, "ib/gw1/plc/meter/fast", NULL, NULL, body, sizeof body - 1);
        struct ib_store_rec rec;
        for (int i = 0; round == 1 && i < 10 && ib_store_next(s, 100, &rec, NULL); i++)
            ib_store_ack(s, rec.seq);
        ib_store_close(s);
        char name[32];
        snprintf(name, sizeof name, "store-%d", round);
        pack(out, name, 0);
        snprintf(name, sizeof name, "store-%d-sealed", round);
        pack(out, name, 1);
    }
    fz_clear_dir(store_dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    ib_log_init(IB_LOG_ERR);
    fz_path(store_dir, sizeof store_dir, "store");
    mkdir(store_dir, 0700);
    const char *seeds = getenv("IB_FUZZ_MKSEEDS");
    if (seeds) {
        make_seeds(seeds);
        exit(0);
    }
    return 0;
}
