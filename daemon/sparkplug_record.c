/* sparkplug_record.c: the Sparkplug mode's stored record (sparkplug_record.h), written by the
 * pollers and read back by the edge node when it sends. */
#include "sparkplug_record.h"

#include <string.h>

static int put_u32(struct ib_buf *b, uint32_t v)
{
    uint8_t x[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
    return ib_buf_append(b, x, sizeof x);
}

static uint8_t *w32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
    return p + 4;
}

static uint8_t *w64(uint8_t *p, uint64_t v)
{
    return w32(w32(p, (uint32_t)v), (uint32_t)(v >> 32));
}

/* One sample, written in place (the poller's hot path: no call per field). */
static int put_sample(struct ib_buf *b, uint32_t tag, const struct ib_sample *s)
{
    uint8_t type = s->quality == IB_Q_GOOD ? s->value.type : IB_V_NONE;
    size_t str = type == IB_V_STRING ? s->value.v.s.len : 0;
    if (str > UINT32_MAX || ib_buf_reserve(b, 28 + str) < 0)
        return -1;
    uint8_t *p0 = (uint8_t *)b->p + b->len, *p = w32(p0, tag);
    uint8_t h[8] = {
        s->quality, s->reason, (uint8_t)s->code, (uint8_t)(s->code >> 8), type, s->value.flags,
        0,          0};
    memcpy(p, h, sizeof h);
    p = w64(p + sizeof h, (uint64_t)s->ts_ms);
    uint64_t u = 0;
    switch (type) {
    case IB_V_BOOL:
        p = w64(p, s->value.v.b ? 1 : 0);
        break;
    case IB_V_INT:
        p = w64(p, (uint64_t)s->value.v.i);
        break;
    case IB_V_UINT:
        p = w64(p, s->value.v.u);
        break;
    case IB_V_DOUBLE:
        memcpy(&u, &s->value.v.d, sizeof u);
        p = w64(p, u);
        break;
    case IB_V_STRING:
        p = w32(p, (uint32_t)str);
        memcpy(p, s->value.v.s.ptr, str);
        p += str;
        break;
    default:
        break;
    }
    b->len += (size_t)(p - p0);
    return 0;
}

int ib_spb_record_encode(struct ib_buf *out, uint32_t layout, uint32_t alias_base,
                         const struct ib_sample *samples, const uint32_t *idx, uint32_t n_idx)
{
    ib_buf_reset(out);
    if (ib_buf_reserve(out, 16 + (size_t)n_idx * 28) < 0) /* numbers: no growth per sample */
        return -1;
    int rc = ib_buf_append(out, IB_SPB_RECORD_MAGIC, 4) | put_u32(out, layout) |
             put_u32(out, alias_base) | put_u32(out, n_idx);
    for (uint32_t k = 0; k < n_idx && rc == 0; k++) {
        uint32_t i = idx ? idx[k] : k;
        rc = put_sample(out, i, &samples[i]);
    }
    return rc ? -1 : 0;
}

static uint32_t get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t get_u64(const uint8_t *p)
{
    return (uint64_t)get_u32(p) | (uint64_t)get_u32(p + 4) << 32;
}

int ib_spb_record_open(struct ib_spb_reader *r, const void *p, size_t len)
{
    memset(r, 0, sizeof *r);
    if (len < 16 || memcmp(p, IB_SPB_RECORD_MAGIC, 4) != 0)
        return -1;
    r->p = p;
    r->len = len;
    r->layout = get_u32(r->p + 4);
    r->alias_base = get_u32(r->p + 8);
    r->count = get_u32(r->p + 12);
    r->off = 16;
    return 0;
}

/* The value of a sample whose head was read; -1 when it does not fit the record. */
static int get_value(struct ib_spb_reader *r, struct ib_value *v)
{
    size_t left = r->len - r->off;
    if (v->type == IB_V_NONE)
        return 0;
    if (v->type == IB_V_STRING) {
        if (left < 4 || left - 4 < get_u32(r->p + r->off))
            return -1;
        v->v.s.len = get_u32(r->p + r->off);
        v->v.s.ptr = (const char *)r->p + r->off + 4;
        r->off += 4 + v->v.s.len;
        return 0;
    }
    if (left < 8)
        return -1;
    uint64_t u = get_u64(r->p + r->off);
    r->off += 8;
    switch (v->type) {
    case IB_V_BOOL:
        v->v.b = u != 0;
        return 0;
    case IB_V_INT:
        v->v.i = (int64_t)u;
        return 0;
    case IB_V_UINT:
        v->v.u = u;
        return 0;
    case IB_V_DOUBLE:
        memcpy(&v->v.d, &u, sizeof u);
        return 0;
    default:
        return -1;
    }
}

int ib_spb_record_next(struct ib_spb_reader *r, struct ib_spb_rsample *out)
{
    if (r->read == r->count)
        return 0;
    if (r->len - r->off < 20)
        return -1;
    const uint8_t *h = r->p + r->off;
    memset(out, 0, sizeof *out);
    out->tag = get_u32(h);
    out->s.quality = h[4];
    out->s.reason = h[5];
    out->s.code = (uint16_t)(h[6] | h[7] << 8);
    out->s.value.type = h[8];
    out->s.value.flags = h[9];
    out->s.ts_ms = (int64_t)get_u64(h + 12);
    r->off += 20;
    if (get_value(r, &out->s.value) < 0)
        return -1;
    r->read++;
    return 1;
}
