/* Normalization (scale, offset, quality) and the JSON encoding of one group's poll: the record
 * the north publishes. Encoding state is prepared once per group; a poll only appends. */
#ifndef IB_RECORD_H
#define IB_RECORD_H

#include <stddef.h>
#include <stdint.h>

#include <ironbridge/value.h>

#include "report.h"
#include "util.h"

/* What the core does with a tag's value, beside what the plugin reads. */
struct ib_tag_core {
    const char *name; /* the tag's name (the configuration owns it) */
    double scale, offset;
    /* When scale is 1/N for an integer N (0.1, 0.01, 0.001...), value = raw / N + offset:
     * 614 / 10 is 61.4, whereas 614 * 0.1 is 61.400000000000006. 0 when not applicable. */
    double divisor;
    bool scaled; /* scale != 1 or offset != 0: the value becomes a double */
    const char *unit;
    bool has_range; /* range: [min, max] was given (Sparkplug's engLow/engHigh) */
    double range_min, range_max;
    const char *description;
    struct ib_report_cfg report;
};

/* N when scale is exactly 1/N for an integer N (see ib_tag_core.divisor), else 0. */
double ib_record_scale_divisor(double scale);

/* value = raw * scale + offset for numeric tags with scaling, else the raw value unchanged.
 * A result that is not finite (or a non-finite raw double) becomes bad with IB_R_DECODE.
 * `in` and `out` may be the same sample. */
void ib_record_normalize(const struct ib_tag_core *t, const struct ib_sample *in,
                         struct ib_sample *out);

/* Text of a bad sample's reason, as in payloads: "timeout", "exception", "connection_lost"... */
const char *ib_record_reason_name(uint8_t reason);
const char *ib_record_quality_name(uint8_t quality);

/* Precomputed JSON fragments of one group (names escaped once), all in one block `text`:
 * offsets and lengths per tag, so that encoding copies without strlen. Owned by the caller;
 * free with ib_record_enc_free (accepts a zeroed or half-built one). */
struct ib_tag_frag {
    uint32_t open, name, unit;             /* offsets into text */
    uint16_t open_len, name_len, unit_len; /* "name":{  ,"tag":"name"  ,"unit":"V" or "" */
};
struct ib_group_enc {
    char *text;
    struct ib_tag_frag *tags;
    uint32_t head_len; /* text[0 .. head_len-1]: ,"gateway":"..",..,"group":".."[,"meta":{}] */
    uint32_t n_tags;
};

/* `meta_json` (a JSON object, or NULL) is attached to every message as "meta". */
int ib_record_enc_init(struct ib_group_enc *e, const char *gateway, const char *connection,
                       const char *device, const char *meta_json, const char *group,
                       uint32_t n_tags, const struct ib_tag_core *tags);
void ib_record_enc_free(struct ib_group_enc *e);

/* The start of every record's payload, {"seq":N, written into buf (cap >= 28 bytes) for the
 * store when it assigns N: an ib_store_head_fn (store.h) for ib_store_push, `ud` unused.
 * Returns the length written (0 when cap is too small). Any thread; no lock, no allocation. */
size_t ib_record_seq_head(void *ud, uint64_t seq, char *buf, size_t cap);

/* Encode the body of a batch record: everything after {"seq":N — the head, the poll time and
 * the values of the tags listed in idx[0 .. n_idx-1] (all tags when idx is NULL). The sequence
 * number is put in front when the record is queued (ib_store_push with ib_record_seq_head). */
int ib_record_encode(struct ib_buf *out, const struct ib_group_enc *e, int64_t poll_ts_ms,
                     const struct ib_sample *samples, const uint32_t *idx, uint32_t n_idx);

/* Encode the body of a one-tag record (layout tag): the head, "tag", and the sample's fields. */
int ib_record_encode_tag(struct ib_buf *out, const struct ib_group_enc *e, uint32_t tag,
                         const struct ib_sample *sample);

/* Append a sample's fields as payloads have them, without braces:
 * "v":..,"q":"good","ts":.. or "q":"bad","reason":"..",["code":N,]"ts":.. (the printers of
 * --once --json and ironbridge-plugin-test use it, so that JSON has one encoder). 0 or -1. */
int ib_record_encode_sample(struct ib_buf *out, const struct ib_sample *sample);

#endif
