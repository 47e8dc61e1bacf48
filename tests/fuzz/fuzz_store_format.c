/* fuzz_store_format.c: fuzz target of the store's readers of disk bytes as pure functions
 * (daemon/store_format.c): the checkpoint parser (ib_store_ckpt_parse) and the segment scanner
 * (ib_store_scan_segment, ib_store_frame_check on each intact frame), with the properties their
 * header promises checked (nothing outside the buffer, the scan's counts and offsets within it,
 * a parsed slot encodes and parses back the same). The store target drives the same code
 * through ib_store_open on files.
 *
 * Input: [0] flags: bit 0 make the CRCs valid (segment header, each frame as far as its length
 * leads, both checkpoint slots), bit 1 scan as segment id+1 (a header that does not match),
 * bit 2 a small max_record (4096); [1..2] checkpoint length L (little-endian, at most 256),
 * L bytes of checkpoint; then the segment. The id is the one in the header (bytes 8..15). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crc32c.h"
#include "fuzz_util.h"
#include "store_format.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    return 0;
}

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_store_format: %s:%d: %s\n", __FILE__, __LINE__, #cond);          \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static void seal_segment(unsigned char *m, size_t size)
{
    if (size < SEG_HDR)
        return;
    ib_put32(m + 28, ib_crc32c(m, 28));
    for (size_t off = SEG_HDR; off + FRAME_HDR <= size;) {
        uint32_t len = ib_get32(m + off + 4);
        if (len > size - off - FRAME_HDR)
            break;
        ib_put32(m + off, ib_crc32c(m + off + 4, 4 + (size_t)len));
        off += FRAME_HDR + len;
    }
}

struct walk {
    const unsigned char *buf;
    size_t len;
    uint64_t max_record, frames;
};

static int on_frame(void *ud, const unsigned char *frame, size_t len)
{
    struct walk *w = ud;
    CHECK(frame >= w->buf && len <= w->len && (size_t)(frame - w->buf) <= w->len - len);
    struct ib_store_frame f;
    CHECK(ib_store_frame_check(frame, len, w->max_record, &f));
    CHECK(FRAME_HDR + (size_t)f.len == len && f.tl <= f.len - REC_HDR);
    w->frames++;
    return 0;
}

static void checkpoint(const unsigned char *p, size_t n)
{
    struct ib_store_ckpt c, again;
    int rc = ib_store_ckpt_parse(p, n, &c);
    CHECK(rc >= 0 && rc <= 2);
    if (rc == 0)
        return;
    CHECK(memchr(c.boot_id, 0, sizeof c.boot_id) != NULL);
    unsigned char slot[CKPT_SLOT];
    ib_store_ckpt_encode(&c, slot);
    CHECK(ib_store_ckpt_parse(slot, sizeof slot, &again) == 1);
    CHECK(again.gen == c.gen && again.acked == c.acked && again.next_seq == c.next_seq &&
          again.disk_last == c.disk_last && again.floor == c.floor &&
          again.mem_floor == c.mem_floor && again.clean == c.clean &&
          strcmp(again.boot_id, c.boot_id) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 3)
        return 0;
    uint8_t flags = data[0];
    size_t off = 3, ck = (size_t)(data[1] | data[2] << 8) % 257;
    if (ck > size - off)
        ck = size - off;
    /* Exact-size copies: a read past either is caught. */
    unsigned char *ckp = malloc(ck ? ck : 1);
    memcpy(ckp, data + off, ck);
    for (size_t i = 0; (flags & 1) && i + CKPT_SLOT <= ck; i += CKPT_SLOT)
        ib_put32(ckp + i + CKPT_SLOT - 4, ib_crc32c(ckp + i, CKPT_SLOT - 4));
    checkpoint(ckp, ck);
    struct ib_store_ckpt c = {0};
    ib_store_ckpt_parse(ckp, ck, &c);
    free(ckp);

    off += ck;
    size_t len = size - off;
    unsigned char *seg = malloc(len ? len : 1);
    memcpy(seg, data + off, len);
    if (flags & 1)
        seal_segment(seg, len);
    uint64_t id = len >= 16 ? ib_get64(seg + 8) : 1;
    id += (flags & 2) ? 1 : 0;
    struct walk w = {seg, len, (flags & 4) ? 4096 : MAX_RECORD, 0};
    struct ib_store_scan r;
    int rc = ib_store_scan_segment(seg, len, id, c.acked, w.max_record, &r, on_frame, &w);
    CHECK(rc == 0);
    CHECK(r.n == w.frames && r.done <= r.n);
    CHECK(r.valid_end <= (len > SEG_HDR ? len : SEG_HDR) && r.tail_bytes <= len &&
          r.bad_bytes <= len);
    CHECK(r.n == 0 || r.first <= r.last);
    free(seg);
    return 0;
}
