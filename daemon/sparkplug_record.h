/* The Sparkplug mode's record: a format-neutral batch of one group's samples as the store keeps
 * it. The Sparkplug edge node (sparkplug_node.c) turns it into a DDATA payload when it is sent,
 * so that seq and bdSeq, which belong to a session, are never stored.
 *
 * Layout (little endian): "ibs1", u32 the metric table's layout (a hash of every device, group
 * and tag name in order: a record of another table is not rendered with this one), u32 alias
 * of the group's first tag, u32 count, then per
 * sample: u32 tag index, u8 quality, u8 reason, u16 code, u8 value type, u8 value flags,
 * u16 zero, i64 timestamp, and the value: 8 bytes, or for a string u32 length and its bytes. */
#ifndef IB_SPARKPLUG_RECORD_H
#define IB_SPARKPLUG_RECORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <ironbridge/value.h>

#include "util.h"

#define IB_SPB_RECORD_MAGIC "ibs1"

/* Encode samples[idx[k]] (all n_idx; or samples[0 .. n_idx-1] when idx is NULL) into out
 * (reset first). String values are copied. Any thread (the caller owns out). 0 or -1 (memory). */
int ib_spb_record_encode(struct ib_buf *out, uint32_t layout, uint32_t alias_base,
                         const struct ib_sample *samples, const uint32_t *idx, uint32_t n_idx);

/* One sample read back; a string value points into the record. */
struct ib_spb_rsample {
    uint32_t tag;
    struct ib_sample s;
};

/* Reading a record: ib_spb_record_open checks the head (0, or -1 when it is not one of ours),
 * then ib_spb_record_next yields the samples in order: 1 for a sample, 0 at the end, -1 when the
 * record is cut short or a length does not fit. Every length is checked before it is read. */
struct ib_spb_reader {
    const uint8_t *p;
    size_t len, off;
    uint32_t layout, alias_base, count, read;
};
int ib_spb_record_open(struct ib_spb_reader *r, const void *p, size_t len);
int ib_spb_record_next(struct ib_spb_reader *r, struct ib_spb_rsample *out);

#endif
