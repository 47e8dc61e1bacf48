/* sparkplug_pb.c: building Sparkplug protobuf messages with protobuf-c for the edge node: the
 * metrics of one message, their properties, a sample as a value of the metric's datatype or as
 * null with its quality. North thread only; one message is allocated, packed and freed. */
#include "sparkplug_impl.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "record.h"

int spb_msg_init(struct spb_msg *msg, size_t cap)
{
    memset(msg, 0, sizeof *msg);
    ibspb__payload__init(&msg->p);
    cap = cap ? cap : 1;
    msg->ms = calloc(cap, sizeof *msg->ms);
    msg->mp = calloc(cap, sizeof *msg->mp);
    msg->ps = calloc(cap, sizeof *msg->ps);
    msg->pv = calloc(cap * SPB_MAX_PROPS, sizeof *msg->pv);
    msg->pvp = calloc(cap * SPB_MAX_PROPS, sizeof *msg->pvp);
    msg->keys = calloc(cap * SPB_MAX_PROPS, sizeof *msg->keys);
    msg->reason = calloc(cap, sizeof *msg->reason);
    msg->strs = calloc(cap, sizeof *msg->strs);
    msg->cap = cap;
    if (!msg->ms || !msg->mp || !msg->ps || !msg->pv || !msg->pvp || !msg->keys || !msg->reason ||
        !msg->strs) {
        spb_msg_free(msg);
        return -1;
    }
    msg->p.metrics = msg->mp;
    return 0;
}

void spb_msg_free(struct spb_msg *msg)
{
    free(msg->ms);
    free(msg->mp);
    free(msg->ps);
    free(msg->pv);
    free(msg->pvp);
    free(msg->keys);
    free(msg->reason);
    for (size_t i = 0; msg->strs && i < msg->cap; i++)
        free(msg->strs[i]);
    free(msg->strs);
    memset(msg, 0, sizeof *msg);
}

Ibspb__Metric *spb_msg_add(struct spb_msg *msg)
{
    if (msg->p.n_metrics == msg->cap)
        return NULL;
    size_t i = msg->p.n_metrics++;
    Ibspb__Metric *m = &msg->ms[i];
    ibspb__metric__init(m);
    msg->mp[i] = m;
    return m;
}

/* A fresh property of the metric last added, or NULL when it has SPB_MAX_PROPS. */
static Ibspb__PropertyValue *prop_add(struct spb_msg *msg, const char *key)
{
    size_t i = msg->p.n_metrics - 1;
    Ibspb__PropertySet *ps = &msg->ps[i];
    if (!msg->ms[i].properties) {
        ibspb__property_set__init(ps);
        ps->keys = &msg->keys[i * SPB_MAX_PROPS];
        ps->values = &msg->pvp[i * SPB_MAX_PROPS];
        msg->ms[i].properties = ps;
    }
    if (ps->n_keys == SPB_MAX_PROPS)
        return NULL;
    Ibspb__PropertyValue *v = &msg->pv[i * SPB_MAX_PROPS + ps->n_keys];
    ibspb__property_value__init(v);
    ps->keys[ps->n_keys++] = (char *)key;
    ps->values[ps->n_values++] = v;
    return v;
}

void spb_prop_str(struct spb_msg *msg, const char *key, const char *s)
{
    Ibspb__PropertyValue *v = prop_add(msg, key);
    if (!v)
        return;
    v->has_type = true;
    v->type = SPB_STRING;
    v->value_case = IBSPB__PROPERTY_VALUE__VALUE_STRING_VALUE;
    v->string_value = (char *)s;
}

void spb_prop_int(struct spb_msg *msg, const char *key, int32_t x)
{
    Ibspb__PropertyValue *v = prop_add(msg, key);
    if (!v)
        return;
    v->has_type = true;
    v->type = SPB_INT32;
    v->value_case = IBSPB__PROPERTY_VALUE__VALUE_INT_VALUE;
    v->int_value = (uint32_t)x;
}

void spb_prop_double(struct spb_msg *msg, const char *key, double x)
{
    Ibspb__PropertyValue *v = prop_add(msg, key);
    if (!v)
        return;
    v->has_type = true;
    v->type = SPB_DOUBLE;
    v->value_case = IBSPB__PROPERTY_VALUE__VALUE_DOUBLE_VALUE;
    v->double_value = x;
}

int spb_msg_pack(struct spb_msg *msg, struct ib_buf *out, int64_t ts_ms, int seq)
{
    msg->p.has_timestamp = true;
    msg->p.timestamp = (uint64_t)ts_ms;
    msg->p.has_seq = seq >= 0;
    msg->p.seq = seq >= 0 ? (uint64_t)seq : 0;
    size_t len = ibspb__payload__get_packed_size(&msg->p);
    ib_buf_reset(out);
    if (ib_buf_reserve(out, len) < 0)
        return -1;
    out->len = ibspb__payload__pack(&msg->p, (uint8_t *)out->p);
    return 0;
}

uint32_t spb_type_of(const struct ib_value *v)
{
    switch (v->type) {
    case IB_V_BOOL:
        return SPB_BOOLEAN;
    case IB_V_INT:
        return SPB_INT64;
    case IB_V_UINT:
        return SPB_UINT64;
    case IB_V_STRING:
        return SPB_STRING;
    case IB_V_DOUBLE:
        return v->flags & IB_VF_FLOAT32 ? SPB_FLOAT : SPB_DOUBLE;
    default:
        return 0;
    }
}

static double as_double(const struct ib_value *v)
{
    switch (v->type) {
    case IB_V_BOOL:
        return v->v.b;
    case IB_V_INT:
        return (double)v->v.i;
    case IB_V_UINT:
        return (double)v->v.u;
    case IB_V_DOUBLE:
        return v->v.d;
    default:
        return NAN;
    }
}

/* The value v as datatype dt in m; false when dt cannot hold it (a string as a number, a
 * negative number as UInt64, a value out of range). */
static bool put_value(Ibspb__Metric *m, uint32_t dt, const struct ib_value *v)
{
    double d = as_double(v);
    switch (dt) {
    case SPB_BOOLEAN:
        if (v->type == IB_V_STRING)
            return false;
        m->value_case = IBSPB__METRIC__VALUE_BOOLEAN_VALUE;
        m->boolean_value = d != 0.0;
        return true;
    case SPB_INT64:
        m->value_case = IBSPB__METRIC__VALUE_LONG_VALUE;
        if (v->type == IB_V_INT || v->type == IB_V_BOOL) {
            m->long_value = (uint64_t)(int64_t)d;
            if (v->type == IB_V_INT)
                m->long_value = (uint64_t)v->v.i;
            return true;
        }
        if (v->type == IB_V_UINT && v->v.u <= INT64_MAX) {
            m->long_value = v->v.u;
            return true;
        }
        if (v->type == IB_V_DOUBLE && d >= -9.2e18 && d <= 9.2e18) {
            m->long_value = (uint64_t)(int64_t)llround(d);
            return true;
        }
        return false;
    case SPB_UINT64:
        m->value_case = IBSPB__METRIC__VALUE_LONG_VALUE;
        if (v->type == IB_V_UINT) {
            m->long_value = v->v.u;
            return true;
        }
        if (v->type == IB_V_STRING || !(d >= 0.0 && d <= 1.8e19))
            return false;
        m->long_value = v->type == IB_V_INT ? (uint64_t)v->v.i : (uint64_t)llround(d);
        return true;
    case SPB_FLOAT:
        m->value_case = IBSPB__METRIC__VALUE_FLOAT_VALUE;
        m->float_value = (float)d;
        return v->type != IB_V_STRING;
    case SPB_DOUBLE:
        m->value_case = IBSPB__METRIC__VALUE_DOUBLE_VALUE;
        m->double_value = d;
        return v->type != IB_V_STRING;
    case SPB_STRING:
        return false; /* strings are set by the caller, which owns their NUL-terminated copy */
    default:
        return false;
    }
}

/* A null value with its quality and reason (the properties hosts read: docs/sparkplug.md). */
static void put_null(struct spb_msg *msg, Ibspb__Metric *m, const struct ib_sample *s,
                     const char *why)
{
    size_t i = msg->p.n_metrics - 1;
    m->value_case = IBSPB__METRIC__VALUE__NOT_SET;
    m->has_is_null = m->is_null = true;
    spb_prop_int(msg, "Quality", s->quality == IB_Q_STALE ? SPB_QUALITY_STALE : SPB_QUALITY_BAD);
    if (why)
        snprintf(msg->reason[i], sizeof msg->reason[i], "%s", why);
    else if (s->quality == IB_Q_STALE)
        snprintf(msg->reason[i], sizeof msg->reason[i], "stale");
    else if (s->reason == IB_R_EXCEPTION)
        snprintf(msg->reason[i], sizeof msg->reason[i], "exception %u", s->code);
    else
        snprintf(msg->reason[i], sizeof msg->reason[i], "%s", ib_record_reason_name(s->reason));
    spb_prop_str(msg, "reason", msg->reason[i]);
}

void spb_put_sample(struct spb_msg *msg, uint32_t dt, const struct ib_sample *s)
{
    Ibspb__Metric *m = &msg->ms[msg->p.n_metrics - 1];
    m->has_datatype = true;
    m->datatype = dt;
    if (s->quality != IB_Q_GOOD) {
        put_null(msg, m, s, NULL);
        return;
    }
    if (dt == SPB_STRING && s->value.type == IB_V_STRING) {
        spb_put_string(msg, s->value.v.s.ptr, s->value.v.s.len);
        return;
    }
    if (!put_value(m, dt, &s->value))
        put_null(msg, m, s, "type_mismatch");
}

void spb_put_string(struct spb_msg *msg, const char *p, size_t len)
{
    size_t i = msg->p.n_metrics - 1;
    Ibspb__Metric *m = &msg->ms[i];
    char *c = malloc(len + 1);
    if (!c) { /* out of memory: said as a null value rather than lost silently */
        struct ib_sample bad = {0};
        ib_sample_bad(&bad, 0, IB_R_INTERNAL, 0);
        put_null(msg, m, &bad, "out_of_memory");
        return;
    }
    memcpy(c, p, len);
    c[len] = '\0';
    free(msg->strs[i]);
    msg->strs[i] = c;
    m->value_case = IBSPB__METRIC__VALUE_STRING_VALUE;
    m->string_value = c;
}

/* ---- the fast path of DDATA: good numeric samples written straight as protobuf --------------- */

static size_t put_varint(uint8_t *p, uint64_t v)
{
    size_t n = 0;
    while (v >= 0x80) {
        p[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    p[n++] = (uint8_t)v;
    return n;
}

static size_t put_fixed(uint8_t *p, uint64_t v, size_t bytes)
{
    for (size_t i = 0; i < bytes; i++)
        p[i] = (uint8_t)(v >> (8 * i));
    return bytes;
}

int spb_fast_begin(struct ib_buf *out, int64_t ts_ms)
{
    ib_buf_reset(out);
    if (ib_buf_reserve(out, 16) < 0)
        return -1;
    uint8_t *p = (uint8_t *)out->p;
    p[0] = 0x08; /* Payload.timestamp, varint */
    out->len = 1 + put_varint(p + 1, (uint64_t)ts_ms);
    return 0;
}

int spb_fast_metric(struct ib_buf *out, uint64_t alias, int64_t ts_ms, uint32_t dt, bool hist,
                    const struct ib_sample *s)
{
    if (s->quality != IB_Q_GOOD || s->value.type == IB_V_STRING || dt == SPB_STRING)
        return 0;
    Ibspb__Metric m = IBSPB__METRIC__INIT;
    if (!put_value(&m, dt, &s->value))
        return 0;
    uint8_t b[64], *p = b;
    p[0] = 0x10; /* alias */
    p += 1 + put_varint(p + 1, alias);
    p[0] = 0x18; /* timestamp */
    p += 1 + put_varint(p + 1, (uint64_t)ts_ms);
    p[0] = 0x20; /* datatype */
    p += 1 + put_varint(p + 1, dt);
    if (hist) {
        p[0] = 0x28; /* is_historical */
        p[1] = 1;
        p += 2;
    }
    switch (m.value_case) {
    case IBSPB__METRIC__VALUE_LONG_VALUE:
        p[0] = 0x58;
        p += 1 + put_varint(p + 1, m.long_value);
        break;
    case IBSPB__METRIC__VALUE_FLOAT_VALUE: {
        uint32_t u;
        memcpy(&u, &m.float_value, sizeof u);
        p[0] = 0x65;
        p += 1 + put_fixed(p + 1, u, 4);
        break;
    }
    case IBSPB__METRIC__VALUE_DOUBLE_VALUE: {
        uint64_t u;
        memcpy(&u, &m.double_value, sizeof u);
        p[0] = 0x69;
        p += 1 + put_fixed(p + 1, u, 8);
        break;
    }
    case IBSPB__METRIC__VALUE_BOOLEAN_VALUE:
        p[0] = 0x70;
        p[1] = m.boolean_value;
        p += 2;
        break;
    default:
        return 0;
    }
    size_t len = (size_t)(p - b); /* < 128: one byte of length */
    if (ib_buf_reserve(out, len + 2) < 0)
        return -1;
    uint8_t *o = (uint8_t *)out->p + out->len;
    o[0] = 0x12; /* Payload.metrics, length-delimited */
    o[1] = (uint8_t)len;
    memcpy(o + 2, b, len);
    out->len += len + 2;
    return 1;
}

int spb_fast_end(struct ib_buf *out, int seq)
{
    if (ib_buf_reserve(out, 4) < 0)
        return -1;
    uint8_t *p = (uint8_t *)out->p + out->len;
    p[0] = 0x18; /* Payload.seq */
    out->len += 1 + put_varint(p + 1, (uint64_t)seq);
    return 0;
}
