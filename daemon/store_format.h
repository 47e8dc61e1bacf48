/* The store's on-disk format (docs/store.md "On-disk format"): little-endian fields, the segment
 * header, record frames, the checkpoint slot, and the two readers of outside bytes, the segment
 * scanner and the checkpoint parser, as pure functions over a buffer and its length (no I/O, no
 * allocation, no global state) so that a fuzzer can call them. Any thread. */
#ifndef IB_STORE_FORMAT_H
#define IB_STORE_FORMAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SEG_MAGIC  "IBQSEG01"
#define SEG_HDR    32 /* magic, id, created ms, reserved, crc */
#define FRAME_HDR  8  /* crc, len */
#define REC_HDR    20 /* seq, ts, topic length, reserved */
#define MAX_RECORD (16u << 20)
#define CKPT_MAGIC "IBQCKP01"
#define CKPT_SLOT  128

static inline void ib_put16(unsigned char *p, uint16_t v)
{
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
}
static inline void ib_put32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}
static inline void ib_put64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}
static inline uint16_t ib_get16(const unsigned char *p)
{
    return (uint16_t)(p[0] | p[1] << 8);
}
static inline uint32_t ib_get32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static inline uint64_t ib_get64(const unsigned char *p)
{
    return (uint64_t)ib_get32(p) | (uint64_t)ib_get32(p + 4) << 32;
}

/* One record frame's header fields. */
struct ib_store_frame {
    uint64_t seq;
    int64_t ts;
    uint32_t len, tl; /* body length (REC_HDR + topic + payload), topic length */
};

/* Is there a whole, intact frame (lengths in bounds, CRC right) at p, within avail bytes?
 * Reads nothing beyond p + avail. */
bool ib_store_frame_check(const unsigned char *p, size_t avail, uint64_t max_record,
                          struct ib_store_frame *f);

/* The 32-byte header of segment `id`, created at `created_ms`. */
void ib_store_seg_header(unsigned char h[SEG_HDR], uint64_t id, int64_t created_ms);

/* What a scan of one segment file found. */
struct ib_store_scan {
    uint64_t first, last, n, done; /* seqs of the first and last intact record; intact records;
                                      those at or below `acked` */
    uint64_t valid_end;            /* offset after the last intact frame */
    uint64_t open_bytes;           /* bytes of the intact frames above `acked` */
    int64_t last_ts;               /* append time of the last intact record */
    uint64_t bad_regions, bad_records, bad_bytes; /* damage followed by an intact frame */
    uint64_t tail_bytes;                          /* damage up to the end: a torn tail */
    bool header_bad;                              /* the 32-byte header is not right for `id` */
};

/* Called for each intact frame (frame: its whole bytes, len of them); non-zero stops the scan
 * and becomes its result. */
typedef int (*ib_store_frame_fn)(void *ud, const unsigned char *frame, size_t len);

/* Walk the frames of the segment file `id` in buf[0..len). Damage in the middle is skipped up to
 * the next intact frame with a higher seq (whose seq tells how many records were lost); damage
 * with nothing intact after it is the torn tail. Frames must have increasing seqs from `id` on.
 * fn may be NULL. Returns 0, or what fn returned to stop it. Pure: reads only buf[0..len). */
int ib_store_scan_segment(const unsigned char *buf, size_t len, uint64_t id, uint64_t acked,
                          uint64_t max_record, struct ib_store_scan *r, ib_store_frame_fn fn,
                          void *ud);

/* One checkpoint slot (docs/store.md "Checkpoint slot"). */
struct ib_store_ckpt {
    uint64_t gen, acked, next_seq, disk_last, floor, mem_floor;
    bool clean;
    char boot_id[40]; /* NUL-terminated */
};

/* Fill a 128-byte slot (magic, fields, CRC32C). */
void ib_store_ckpt_encode(const struct ib_store_ckpt *c, unsigned char b[CKPT_SLOT]);

/* The checkpoint file's contents buf[0..len): the newer of its two valid slots in *out.
 * Returns 2 when both slots are valid, 1 when one is, 0 when none is (*out untouched).
 * Pure: reads only buf[0..len). */
int ib_store_ckpt_parse(const unsigned char *buf, size_t len, struct ib_store_ckpt *out);

#endif
