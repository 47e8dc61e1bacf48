/* Normalization and JSON encoding of a group's samples (the payload of docs/payload.md).
 * Names and units are escaped once at start; a poll only copies fragments and numbers. */
#include "record.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"

/* Bytes of slack after fragments and in the output for put_frag's fixed-size copies. */
#define FRAG_PAD 16

static double as_double(const struct ib_value *v)
{
    switch (v->type) {
    case IB_V_INT:
        return (double)v->v.i;
    case IB_V_UINT:
        return (double)v->v.u;
    case IB_V_DOUBLE:
        return v->v.d;
    case IB_V_BOOL:
        return v->v.b ? 1.0 : 0.0;
    default:
        return NAN;
    }
}

double ib_record_scale_divisor(double scale)
{
    if (scale == 0.0 || fabs(scale) >= 1.0)
        return 0.0;
    double n = round(1.0 / scale);
    /* Exact reciprocals only: 1/n must be the very double the user wrote. */
    return (fabs(n) <= 1e15 && 1.0 / n == scale) ? n : 0.0;
}

void ib_record_normalize(const struct ib_tag_core *t, const struct ib_sample *in,
                         struct ib_sample *out)
{
    if (out != in)
        *out = *in;
    if (in->quality != IB_Q_GOOD)
        return;
    const struct ib_value *v = &in->value;
    if (v->type == IB_V_DOUBLE && !isfinite(v->v.d)) {
        ib_sample_bad(out, in->ts_ms, IB_R_DECODE, 0);
        return;
    }
    if (!t->scaled || v->type == IB_V_BOOL || v->type == IB_V_STRING || v->type == IB_V_JSON)
        return;
    double x =
        (t->divisor != 0.0 ? as_double(v) / t->divisor : as_double(v) * t->scale) + t->offset;
    if (!isfinite(x)) {
        ib_sample_bad(out, in->ts_ms, IB_R_DECODE, 0);
        return;
    }
    out->value.type = IB_V_DOUBLE;
    out->value.flags = 0; /* a computed value is a double, printed at double precision */
    out->value.v.d = x;
}

const char *ib_record_reason_name(uint8_t r)
{
    switch (r) {
    case IB_R_NONE:
        return "none";
    case IB_R_TIMEOUT:
        return "timeout";
    case IB_R_EXCEPTION:
        return "exception";
    case IB_R_CONN_LOST:
        return "connection_lost";
    case IB_R_DECODE:
        return "decode_error";
    case IB_R_CRC:
        return "crc_error";
    case IB_R_PROTOCOL:
        return "protocol_error";
    default:
        return "internal";
    }
}

const char *ib_record_quality_name(uint8_t q)
{
    switch (q) {
    case IB_Q_GOOD:
        return "good";
    case IB_Q_STALE:
        return "stale";
    default:
        return "bad";
    }
}

/* Append a fragment to `b` and record where it is; -1 when it does not fit the offsets. */
static int frag_add(struct ib_buf *b, const char *s, size_t n, uint32_t *off, uint16_t *len)
{
    if (n > UINT16_MAX || b->len > UINT32_MAX - n)
        return -1;
    *off = (uint32_t)b->len;
    *len = (uint16_t)n;
    return ib_buf_append(b, s, n);
}

int ib_record_enc_init(struct ib_group_enc *e, const char *gateway, const char *connection,
                       const char *device, const char *meta_json, const char *group,
                       uint32_t n_tags, const struct ib_tag_core *tags)
{
    memset(e, 0, sizeof *e);
    struct ib_buf text = {0}, f = {0};
    int rc = 0;
    rc |= ib_buf_puts(&text, ",\"gateway\":");
    rc |= ib_json_cstr(&text, gateway);
    rc |= ib_buf_puts(&text, ",\"connection\":");
    rc |= ib_json_cstr(&text, connection);
    rc |= ib_buf_puts(&text, ",\"device\":");
    rc |= ib_json_cstr(&text, device);
    rc |= ib_buf_puts(&text, ",\"group\":");
    rc |= ib_json_cstr(&text, group);
    if (meta_json) {
        rc |= ib_buf_puts(&text, ",\"meta\":");
        rc |= ib_buf_puts(&text, meta_json);
    }
    e->head_len = (uint32_t)text.len;
    e->n_tags = n_tags;
    e->tags = calloc(n_tags ? n_tags : 1, sizeof *e->tags);
    if (rc || !e->tags)
        goto fail;
    for (uint32_t i = 0; i < n_tags && !rc; i++) {
        struct ib_tag_frag *t = &e->tags[i];
        ib_buf_reset(&f);
        rc |= ib_json_cstr(&f, tags[i].name);
        rc |= ib_buf_puts(&f, ":{");
        rc |= rc ? 0 : frag_add(&text, f.p, f.len, &t->open, &t->open_len);
        ib_buf_reset(&f);
        rc |= ib_buf_puts(&f, ",\"tag\":");
        rc |= ib_json_cstr(&f, tags[i].name);
        rc |= rc ? 0 : frag_add(&text, f.p, f.len, &t->name, &t->name_len);
        ib_buf_reset(&f);
        if (tags[i].unit) {
            rc |= ib_buf_puts(&f, ",\"unit\":");
            rc |= ib_json_cstr(&f, tags[i].unit);
        }
        rc |= rc ? 0 : frag_add(&text, f.p ? f.p : "", f.len, &t->unit, &t->unit_len);
    }
    ib_buf_free(&f);
    if (rc)
        goto fail;
    /* Exactly sized (thousands of groups may be configured), plus put_frag's padding. */
    char *p = realloc(text.p, text.len + 1 + FRAG_PAD);
    if (!p)
        goto fail;
    memset(p + text.len, 0, 1 + FRAG_PAD);
    e->text = p;
    return 0;
fail:
    ib_buf_free(&f);
    ib_buf_free(&text);
    ib_record_enc_free(e);
    return -1;
}

void ib_record_enc_free(struct ib_group_enc *e)
{
    if (!e)
        return;
    free(e->text);
    free(e->tags);
    memset(e, 0, sizeof *e);
}

static inline char *put_mem(char *o, const void *s, size_t n)
{
    memcpy(o, s, n);
    return o + n;
}

/* Copy a short fragment in 16-byte steps: both sides must have FRAG_PAD bytes of room past n.
 * (A variable-length memcpy of 5-30 bytes costs more than the rest of a value's encoding.) */
static inline char *put_frag(char *o, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i += FRAG_PAD)
        memcpy(o + i, s + i, FRAG_PAD);
    return o + n;
}
#define PUT_LIT(o, lit) put_mem((o), (lit), sizeof(lit) - 1)

/* "v":..,"q":"good","ts":..,"unit":".." or "q":"bad","reason":"..","ts":.. (no braces). */
static int put_sample(struct ib_buf *b, const struct ib_sample *s, const char *unit_frag,
                      size_t unit_len)
{
    int rc = 0;
    if (s->quality == IB_Q_GOOD) {
        rc |= ib_buf_puts(b, "\"v\":");
        rc |= ib_json_value(b, &s->value);
        rc |= ib_buf_puts(b, ",\"q\":\"good\"");
    } else {
        rc |= ib_buf_puts(b, "\"q\":\"");
        rc |= ib_buf_puts(b, ib_record_quality_name(s->quality));
        /* stale keeps the reason of the failure that made it stale */
        rc |= ib_buf_puts(b, "\",\"reason\":\"");
        rc |= ib_buf_puts(b, ib_record_reason_name(s->reason));
        rc |= ib_buf_puts(b, "\"");
        if (s->reason == IB_R_EXCEPTION) {
            rc |= ib_buf_puts(b, ",\"code\":");
            rc |= ib_json_int(b, s->code);
        }
    }
    rc |= ib_buf_puts(b, ",\"ts\":");
    rc |= ib_json_int(b, s->ts_ms);
    rc |= ib_buf_append(b, unit_frag, unit_len);
    return rc;
}

int ib_record_encode_sample(struct ib_buf *b, const struct ib_sample *s)
{
    return put_sample(b, s, "", 0) ? -1 : 0;
}

/* Room a good numeric sample needs beyond its name and unit fragments: , "v": a number of at
 * most 32 characters (quotes included) ,"q":"good","ts": 20 digits } and the terminator. */
#define GOOD_NUM_ROOM (96 + FRAG_PAD)

/* The fast path of ib_record_encode: a good number, written without per-piece checks. `tsc`
 * caches the digits of the last source time (samples of one request share it). */
struct ts_cache {
    int64_t ts;
    uint8_t n;
    char d[24 + FRAG_PAD];
};

static char *put_good_number(char *o, const struct ib_value *v, int64_t ts, struct ts_cache *tc)
{
    o = PUT_LIT(o, "\"v\":");
    switch (v->type) {
    case IB_V_BOOL:
        o = v->v.b ? PUT_LIT(o, "true") : PUT_LIT(o, "false");
        break;
    case IB_V_INT:
        o += ib_fmt_json_int(o, v->v.i);
        break;
    case IB_V_UINT:
        o += ib_fmt_json_uint(o, v->v.u);
        break;
    default: {
        int n = ib_fmt_scalar(o, v);
        o = n < 0 ? PUT_LIT(o, "null") : o + n;
    }
    }
    o = PUT_LIT(o, ",\"q\":\"good\",\"ts\":");
    if (ts != tc->ts || !tc->n) {
        tc->ts = ts;
        tc->n = (uint8_t)ib_fmt_json_int(tc->d, ts);
    }
    return put_frag(o, tc->d, tc->n);
}

int ib_record_encode(struct ib_buf *b, const struct ib_group_enc *e, int64_t poll_ts_ms,
                     const struct ib_sample *s, const uint32_t *idx, uint32_t n_idx)
{
    int rc = 0;
    ib_buf_reset(b);
    rc |= ib_buf_append(b, e->text, e->head_len);
    rc |= ib_buf_puts(b, ",\"ts\":");
    rc |= ib_json_int(b, poll_ts_ms);
    rc |= ib_buf_puts(b, ",\"values\":{");
    uint32_t n = idx ? n_idx : e->n_tags;
    struct ts_cache tc = {0};
    for (uint32_t k = 0; k < n && !rc; k++) {
        uint32_t i = idx ? idx[k] : k;
        const struct ib_tag_frag *t = &e->tags[i];
        const struct ib_sample *sm = &s[i];
        if (sm->quality == IB_Q_GOOD && sm->value.type != IB_V_STRING &&
            sm->value.type != IB_V_JSON) {
            if (ib_buf_reserve(b, (size_t)t->open_len + t->unit_len + GOOD_NUM_ROOM) < 0)
                return -1;
            char *o = b->p + b->len;
            if (k)
                *o++ = ',';
            o = put_frag(o, e->text + t->open, t->open_len);
            o = put_good_number(o, &sm->value, sm->ts_ms, &tc);
            o = put_frag(o, e->text + t->unit, t->unit_len);
            *o++ = '}';
            b->len = (size_t)(o - b->p);
            continue;
        }
        if (k)
            rc |= ib_buf_append(b, ",", 1);
        rc |= ib_buf_append(b, e->text + t->open, t->open_len);
        rc |= put_sample(b, sm, e->text + t->unit, t->unit_len);
        rc |= ib_buf_append(b, "}", 1);
    }
    rc |= ib_buf_puts(b, "}}");
    return rc ? -1 : 0;
}

int ib_record_encode_tag(struct ib_buf *b, const struct ib_group_enc *e, uint32_t tag,
                         const struct ib_sample *s)
{
    int rc = 0;
    ib_buf_reset(b);
    const struct ib_tag_frag *t = &e->tags[tag];
    rc |= ib_buf_append(b, e->text, e->head_len);
    rc |= ib_buf_append(b, e->text + t->name, t->name_len);
    rc |= ib_buf_append(b, ",", 1);
    rc |= put_sample(b, s, e->text + t->unit, t->unit_len);
    rc |= ib_buf_append(b, "}", 1);
    return rc ? -1 : 0;
}

size_t ib_record_seq_head(void *ud, uint64_t seq, char *buf, size_t cap)
{
    (void)ud;
    char digits[20];
    size_t n = 0;
    do {
        digits[n++] = (char)('0' + seq % 10);
        seq /= 10;
    } while (seq);
    if (cap < 7 + n)
        return 0;
    memcpy(buf, "{\"seq\":", 7);
    for (size_t i = 0; i < n; i++)
        buf[7 + i] = digits[n - 1 - i];
    return 7 + n;
}
