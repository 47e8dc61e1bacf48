/* The store's on-disk format: frame checks, the segment header, the segment scanner and the
 * checkpoint slot codec, pure functions over buffers (docs/store.md "On-disk format"). */
#include "store_format.h"

#include <string.h>

#include "crc32c.h"

bool ib_store_frame_check(const unsigned char *p, size_t avail, uint64_t max_record,
                          struct ib_store_frame *f)
{
    if (avail < FRAME_HDR + REC_HDR)
        return false;
    uint32_t len = ib_get32(p + 4);
    if (len < REC_HDR || len > max_record || (size_t)len > avail - FRAME_HDR)
        return false;
    uint32_t tl = ib_get16(p + FRAME_HDR + 16);
    if (tl > len - REC_HDR || ib_crc32c(p + 4, 4 + (size_t)len) != ib_get32(p))
        return false;
    f->len = len;
    f->tl = tl;
    f->seq = ib_get64(p + FRAME_HDR);
    f->ts = (int64_t)ib_get64(p + FRAME_HDR + 8);
    return true;
}

void ib_store_seg_header(unsigned char h[SEG_HDR], uint64_t id, int64_t created_ms)
{
    memset(h, 0, SEG_HDR);
    memcpy(h, SEG_MAGIC, 8);
    ib_put64(h + 8, id);
    ib_put64(h + 16, (uint64_t)created_ms);
    ib_put32(h + 28, ib_crc32c(h, 28));
}

/* The next intact frame after damage at `off`, or size when there is none. The seq check comes
 * first so that random bytes rarely cost a checksum. */
static size_t resync(const unsigned char *m, size_t size, size_t off, uint64_t prev,
                     uint64_t max_record, struct ib_store_frame *f)
{
    for (size_t p = off + 1; p + FRAME_HDR + REC_HDR <= size; p++) {
        uint64_t sq = ib_get64(m + p + FRAME_HDR);
        if (sq > prev && sq - prev < (1ull << 32) &&
            ib_store_frame_check(m + p, size - p, max_record, f))
            return p;
    }
    return size;
}

int ib_store_scan_segment(const unsigned char *m, size_t size, uint64_t id, uint64_t acked,
                          uint64_t max_record, struct ib_store_scan *r, ib_store_frame_fn fn,
                          void *ud)
{
    memset(r, 0, sizeof *r);
    r->valid_end = SEG_HDR;
    if (size < SEG_HDR) {
        r->header_bad = true;
        r->tail_bytes = size;
        return 0;
    }
    r->header_bad =
        memcmp(m, SEG_MAGIC, 8) || ib_get64(m + 8) != id || ib_get32(m + 28) != ib_crc32c(m, 28);
    uint64_t prev = id - 1;
    size_t off = SEG_HDR;
    while (off < size) {
        struct ib_store_frame f;
        if (ib_store_frame_check(m + off, size - off, max_record, &f) && f.seq > prev) {
            size_t fl = FRAME_HDR + f.len;
            int rc = fn ? fn(ud, m + off, fl) : 0;
            if (rc)
                return rc;
            if (!r->n)
                r->first = f.seq;
            r->n++;
            r->done += f.seq <= acked;
            r->open_bytes += f.seq <= acked ? 0 : fl;
            r->last = f.seq;
            r->last_ts = f.ts;
            prev = f.seq;
            off += fl;
            r->valid_end = off;
            continue;
        }
        size_t p = resync(m, size, off, prev, max_record, &f);
        if (p == size) {
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

void ib_store_ckpt_encode(const struct ib_store_ckpt *c, unsigned char b[CKPT_SLOT])
{
    memset(b, 0, CKPT_SLOT);
    memcpy(b, CKPT_MAGIC, 8);
    ib_put64(b + 8, c->gen);
    ib_put64(b + 16, c->acked);
    ib_put64(b + 24, c->next_seq);
    ib_put64(b + 32, c->disk_last);
    ib_put64(b + 40, c->floor);
    ib_put64(b + 48, c->mem_floor);
    ib_put32(b + 56, c->clean ? 1 : 0);
    memcpy(b + 60, c->boot_id, 40);
    ib_put32(b + CKPT_SLOT - 4, ib_crc32c(b, CKPT_SLOT - 4));
}

static bool ckpt_decode(const unsigned char *b, struct ib_store_ckpt *c)
{
    if (memcmp(b, CKPT_MAGIC, 8) || ib_get32(b + CKPT_SLOT - 4) != ib_crc32c(b, CKPT_SLOT - 4))
        return false;
    c->gen = ib_get64(b + 8);
    c->acked = ib_get64(b + 16);
    c->next_seq = ib_get64(b + 24);
    c->disk_last = ib_get64(b + 32);
    c->floor = ib_get64(b + 40);
    c->mem_floor = ib_get64(b + 48);
    c->clean = ib_get32(b + 56) & 1;
    memcpy(c->boot_id, b + 60, 40);
    c->boot_id[39] = '\0';
    return true;
}

int ib_store_ckpt_parse(const unsigned char *buf, size_t len, struct ib_store_ckpt *out)
{
    struct ib_store_ckpt c[2];
    bool ok[2] = {len >= CKPT_SLOT && ckpt_decode(buf, &c[0]),
                  len >= 2 * CKPT_SLOT && ckpt_decode(buf + CKPT_SLOT, &c[1])};
    if (!ok[0] && !ok[1])
        return 0;
    *out = ok[0] && (!ok[1] || c[0].gen > c[1].gen) ? c[0] : c[1];
    return ok[0] + ok[1];
}
