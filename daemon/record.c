/* Normalization and JSON encoding of a group's samples (the payload of docs/payload.md).
 * Names and units are escaped once at start; a poll only copies fragments and numbers. */
#include "record.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"

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

void ib_normalize(const struct ib_tag_core *t, const struct ib_sample *in, struct ib_sample *out)
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
    if (!t->scaled || v->type == IB_V_BOOL || v->type == IB_V_STRING)
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

const char *ib_reason_name(uint8_t r)
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

const char *ib_quality_name(uint8_t q)
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

static char *frag_take(struct ib_buf *b)
{
    char *s = strdup(b->p ? b->p : "");
    ib_buf_reset(b);
    return s;
}

int ib_group_enc_init(struct ib_group_enc *e, const char *gateway, const char *connection,
                      const char *device, const char *meta_json, const struct ib_group_config *g,
                      const struct ib_cfg_group *cg)
{
    memset(e, 0, sizeof *e);
    struct ib_buf b = {0};
    int rc = 0;
    rc |= ib_buf_puts(&b, ",\"gateway\":");
    rc |= ib_json_cstr(&b, gateway);
    rc |= ib_buf_puts(&b, ",\"connection\":");
    rc |= ib_json_cstr(&b, connection);
    rc |= ib_buf_puts(&b, ",\"device\":");
    rc |= ib_json_cstr(&b, device);
    rc |= ib_buf_puts(&b, ",\"group\":");
    rc |= ib_json_cstr(&b, g->name);
    if (meta_json) {
        rc |= ib_buf_puts(&b, ",\"meta\":");
        rc |= ib_buf_puts(&b, meta_json);
    }
    e->head = frag_take(&b);
    e->n_tags = g->n_tags;
    e->tag_open = calloc(g->n_tags ? g->n_tags : 1, sizeof *e->tag_open);
    e->tag_name = calloc(g->n_tags ? g->n_tags : 1, sizeof *e->tag_name);
    e->tag_unit = calloc(g->n_tags ? g->n_tags : 1, sizeof *e->tag_unit);
    if (rc || !e->head || !e->tag_open || !e->tag_name || !e->tag_unit)
        goto fail;
    for (uint32_t i = 0; i < g->n_tags; i++) {
        rc |= ib_json_cstr(&b, g->tags[i].name);
        rc |= ib_buf_puts(&b, ":{");
        e->tag_open[i] = frag_take(&b);
        rc |= ib_buf_puts(&b, ",\"tag\":");
        rc |= ib_json_cstr(&b, g->tags[i].name);
        e->tag_name[i] = frag_take(&b);
        if (cg->tags[i].unit) {
            rc |= ib_buf_puts(&b, ",\"unit\":");
            rc |= ib_json_cstr(&b, cg->tags[i].unit);
        }
        e->tag_unit[i] = frag_take(&b);
        if (rc || !e->tag_open[i] || !e->tag_name[i] || !e->tag_unit[i])
            goto fail;
    }
    ib_buf_free(&b);
    return 0;
fail:
    ib_buf_free(&b);
    ib_group_enc_free(e);
    return -1;
}

void ib_group_enc_free(struct ib_group_enc *e)
{
    if (!e)
        return;
    for (uint32_t i = 0; i < e->n_tags; i++) {
        if (e->tag_open)
            free(e->tag_open[i]);
        if (e->tag_name)
            free(e->tag_name[i]);
        if (e->tag_unit)
            free(e->tag_unit[i]);
    }
    free(e->tag_open);
    free(e->tag_name);
    free(e->tag_unit);
    free(e->head);
    memset(e, 0, sizeof *e);
}

/* "v":..,"q":"good","ts":..,"unit":".." or "q":"bad","reason":"..","ts":.. (no braces). */
static int put_sample(struct ib_buf *b, const struct ib_sample *s, const char *unit_frag)
{
    int rc = 0;
    if (s->quality == IB_Q_GOOD) {
        rc |= ib_buf_puts(b, "\"v\":");
        rc |= ib_json_value(b, &s->value);
        rc |= ib_buf_puts(b, ",\"q\":\"good\"");
    } else {
        rc |= ib_buf_puts(b, "\"q\":\"");
        rc |= ib_buf_puts(b, ib_quality_name(s->quality));
        /* stale keeps the reason of the failure that made it stale */
        rc |= ib_buf_puts(b, "\",\"reason\":\"");
        rc |= ib_buf_puts(b, ib_reason_name(s->reason));
        rc |= ib_buf_puts(b, "\"");
        if (s->reason == IB_R_EXCEPTION) {
            rc |= ib_buf_puts(b, ",\"code\":");
            rc |= ib_json_int(b, s->code);
        }
    }
    rc |= ib_buf_puts(b, ",\"ts\":");
    rc |= ib_json_int(b, s->ts_ms);
    rc |= ib_buf_puts(b, unit_frag);
    return rc;
}

int ib_record_encode(struct ib_buf *b, const struct ib_group_enc *e, int64_t poll_ts_ms,
                     const struct ib_sample *s, const uint32_t *idx, uint32_t n_idx)
{
    int rc = 0;
    ib_buf_reset(b);
    rc |= ib_buf_puts(b, e->head);
    rc |= ib_buf_puts(b, ",\"ts\":");
    rc |= ib_json_int(b, poll_ts_ms);
    rc |= ib_buf_puts(b, ",\"values\":{");
    uint32_t n = idx ? n_idx : e->n_tags;
    for (uint32_t k = 0; k < n; k++) {
        uint32_t i = idx ? idx[k] : k;
        if (k)
            rc |= ib_buf_append(b, ",", 1);
        rc |= ib_buf_puts(b, e->tag_open[i]);
        rc |= put_sample(b, &s[i], e->tag_unit[i]);
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
    rc |= ib_buf_puts(b, e->head);
    rc |= ib_buf_puts(b, e->tag_name[tag]);
    rc |= ib_buf_append(b, ",", 1);
    rc |= put_sample(b, s, e->tag_unit[tag]);
    rc |= ib_buf_append(b, "}", 1);
    return rc ? -1 : 0;
}
