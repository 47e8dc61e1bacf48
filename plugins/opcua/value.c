/* OPC UA plugin: mapping of Read results to samples (scalar built-in types; DateTime as ISO
 * 8601 UTC text, ByteString as base64, LocalizedText as its text, Guid as text; arrays in
 * array.c) and of written
 * values to Variants of the node's type, refusing values that do not fit. */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "nodeid.h"
#include "status.h"
#include "value.h"

void ua_text_free(struct ua_text *t)
{
    free(t->ptr);
    t->ptr = NULL;
    t->cap = 0;
}

static char *text_room(struct ua_text *t, size_t n)
{
    if (n + 1 > t->cap) {
        size_t cap = n + 1 < 64 ? 64 : n + 1;
        char *p = realloc(t->ptr, cap);
        if (!p)
            return NULL;
        t->ptr = p;
        t->cap = cap;
    }
    return t->ptr;
}

static int set_text(struct ib_value *v, struct ua_text *t, const char *p, size_t n)
{
    char *d = text_room(t, n);
    if (!d)
        return UA_MAP_NOMEM;
    if (n)
        memcpy(d, p, n);
    d[n] = '\0';
    v->type = IB_V_STRING;
    v->v.s.ptr = d;
    v->v.s.len = (uint32_t)n;
    return UA_MAP_GOOD;
}

static int datetime_text(struct ib_value *v, struct ua_text *t, int64_t ticks)
{
    int64_t ms = ua_datetime_to_ms(ticks);
    time_t sec = (time_t)(ms >= 0 ? ms / 1000 : (ms - 999) / 1000);
    int frac = (int)(ms - (int64_t)sec * 1000);
    struct tm tm;
    char buf[48];
    if (!gmtime_r(&sec, &tm))
        return UA_MAP_UNSUPPORTED;
    size_t n = strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
    n += (size_t)snprintf(buf + n, sizeof buf - n, ".%03dZ", frac);
    return set_text(v, t, buf, n);
}

int ua_scalar_to_value(const struct ua_variant *var, struct ua_text *t, struct ib_value *v)
{
    v->flags = 0;
    switch (var->type) {
    case UA_BOOLEAN:
        v->type = IB_V_BOOL;
        v->v.b = var->v.b;
        return UA_MAP_GOOD;
    case UA_SBYTE:
    case UA_INT16:
    case UA_INT32:
    case UA_INT64:
        v->type = IB_V_INT;
        v->v.i = var->v.i;
        return UA_MAP_GOOD;
    case UA_BYTE:
    case UA_UINT16:
    case UA_UINT32:
    case UA_UINT64:
    case UA_STATUSCODE:
        v->type = IB_V_UINT;
        v->v.u = var->v.u;
        return UA_MAP_GOOD;
    case UA_FLOAT:
        v->type = IB_V_DOUBLE;
        v->flags = IB_VF_FLOAT32;
        v->v.d = (double)var->v.f;
        return UA_MAP_GOOD;
    case UA_DOUBLE:
        v->type = IB_V_DOUBLE;
        v->v.d = var->v.d;
        return UA_MAP_GOOD;
    case UA_STRING:
    case UA_XMLELEMENT:
        return set_text(v, t, var->v.s.ptr, var->v.s.len > 0 ? (size_t)var->v.s.len : 0);
    case UA_LOCALIZEDTEXT:
        return set_text(v, t, var->v.lt.text.ptr,
                        var->v.lt.text.len > 0 ? (size_t)var->v.lt.text.len : 0);
    case UA_DATETIME:
        return datetime_text(v, t, var->v.dt);
    case UA_BYTESTRING: {
        size_t n = var->v.s.len > 0 ? (size_t)var->v.s.len : 0;
        char *d = text_room(t, 4 * ((n + 2) / 3));
        if (!d)
            return UA_MAP_NOMEM;
        size_t len = ua_base64_encode((const uint8_t *)var->v.s.ptr, n, d);
        v->type = IB_V_STRING;
        v->v.s.ptr = d;
        v->v.s.len = (uint32_t)len;
        return UA_MAP_GOOD;
    }
    case UA_GUID: {
        struct ua_nodeid n = {.kind = UA_NID_GUID, .id.guid = var->v.g};
        char buf[64];
        ua_nodeid_format(&n, buf, sizeof buf);
        return set_text(v, t, buf + 2, strlen(buf + 2)); /* without "g=" */
    }
    default:
        return UA_MAP_UNSUPPORTED;
    }
}

int ua_value_to_sample(const struct ua_datavalue *dv, int64_t now_ms, struct ua_text *text,
                       struct ib_sample *s)
{
    int64_t ts = now_ms;
    if ((dv->mask & UA_DV_SRC_TS) && dv->src_ts > 0)
        ts = ua_datetime_to_ms(dv->src_ts);
    else if ((dv->mask & UA_DV_SRV_TS) && dv->srv_ts > 0)
        ts = ua_datetime_to_ms(dv->srv_ts);
    uint32_t status = (dv->mask & UA_DV_STATUS) ? dv->status : 0;
    if ((status & 0xC0000000u) != 0) {
        ib_sample_bad(s, ts, IB_R_EXCEPTION, (uint16_t)(status >> 16));
        return UA_MAP_BAD_STATUS;
    }
    if (!(dv->mask & UA_DV_VALUE) || dv->value.type == 0) {
        ib_sample_bad(s, ts, IB_R_DECODE, 0);
        return UA_MAP_NO_VALUE;
    }
    int r = dv->value.is_array ? ua_array_to_value(&dv->value, text, &s->value)
                               : ua_scalar_to_value(&dv->value, text, &s->value);
    if (r != UA_MAP_GOOD) {
        ib_sample_bad(s, ts, r == UA_MAP_NOMEM ? IB_R_INTERNAL : IB_R_DECODE, 0);
        return r;
    }
    ib_sample_good(s, ts);
    return UA_MAP_GOOD;
}

static int refuse(char *err, size_t size, const char *msg)
{
    snprintf(err, size, "%s", msg);
    return -1;
}

/* The value as a signed integer within [lo, hi]. */
static int as_int(const struct ib_value *v, int64_t lo, int64_t hi, int64_t *out, char *err,
                  size_t size)
{
    switch (v->type) {
    case IB_V_BOOL:
        *out = v->v.b;
        break;
    case IB_V_INT:
        *out = v->v.i;
        break;
    case IB_V_UINT:
        if (v->v.u > INT64_MAX)
            return refuse(err, size, "out of range for the node's type");
        *out = (int64_t)v->v.u;
        break;
    case IB_V_DOUBLE:
        if (!isfinite(v->v.d) || v->v.d != floor(v->v.d))
            return refuse(err, size, "the node's type is an integer: a fraction does not fit");
        if (v->v.d < -9223372036854775808.0 || v->v.d >= 9223372036854775808.0)
            return refuse(err, size, "out of range for the node's type");
        *out = (int64_t)v->v.d;
        break;
    default:
        return refuse(err, size, "a number is needed for the node's type");
    }
    if (*out < lo || *out > hi)
        return refuse(err, size, "out of range for the node's type");
    return 0;
}

static int as_uint(const struct ib_value *v, uint64_t hi, uint64_t *out, char *err, size_t size)
{
    if (v->type == IB_V_UINT) {
        *out = v->v.u;
    } else if (v->type == IB_V_DOUBLE) {
        if (!isfinite(v->v.d) || v->v.d != floor(v->v.d))
            return refuse(err, size, "the node's type is an integer: a fraction does not fit");
        if (v->v.d < 0 || v->v.d >= 18446744073709551616.0)
            return refuse(err, size, "out of range for the node's type");
        *out = (uint64_t)v->v.d;
    } else {
        int64_t i;
        if (as_int(v, 0, INT64_MAX, &i, err, size) != 0)
            return -1;
        *out = (uint64_t)i;
    }
    if (*out > hi)
        return refuse(err, size, "out of range for the node's type");
    return 0;
}

int ua_value_to_variant(const struct ib_value *v, int type, struct ua_variant *out, char *err,
                        size_t err_size)
{
    static const int64_t ilo[] = {[UA_SBYTE] = INT8_MIN,
                                  [UA_INT16] = INT16_MIN,
                                  [UA_INT32] = INT32_MIN,
                                  [UA_INT64] = INT64_MIN};
    static const int64_t ihi[] = {[UA_SBYTE] = INT8_MAX,
                                  [UA_INT16] = INT16_MAX,
                                  [UA_INT32] = INT32_MAX,
                                  [UA_INT64] = INT64_MAX};
    static const uint64_t uhi[] = {[UA_BYTE] = UINT8_MAX,
                                   [UA_UINT16] = UINT16_MAX,
                                   [UA_UINT32] = UINT32_MAX,
                                   [UA_UINT64] = UINT64_MAX};
    memset(out, 0, sizeof *out);
    out->type = (uint8_t)type;
    switch (type) {
    case UA_BOOLEAN: {
        int64_t i;
        if (as_int(v, 0, 1, &i, err, err_size) != 0)
            return refuse(err, err_size, "the node is Boolean: write true/false, 0 or 1");
        out->v.b = i != 0;
        return 0;
    }
    case UA_SBYTE:
    case UA_INT16:
    case UA_INT32:
    case UA_INT64:
        return as_int(v, ilo[type], ihi[type], &out->v.i, err, err_size);
    case UA_BYTE:
    case UA_UINT16:
    case UA_UINT32:
    case UA_UINT64:
        return as_uint(v, uhi[type], &out->v.u, err, err_size);
    case UA_FLOAT:
    case UA_DOUBLE: {
        double d;
        if (v->type == IB_V_DOUBLE)
            d = v->v.d;
        else if (v->type == IB_V_INT)
            d = (double)v->v.i;
        else if (v->type == IB_V_UINT)
            d = (double)v->v.u;
        else
            return refuse(err, err_size, "a number is needed for the node's type");
        if (type == UA_FLOAT) {
            if (isfinite(d) && fabs(d) > 3.4028234663852886e38)
                return refuse(err, err_size, "out of range for a Float node");
            out->v.f = (float)d;
        } else {
            out->v.d = d;
        }
        return 0;
    }
    default:
        return refuse(err, err_size, "writing this node's data type is not supported");
    }
}
