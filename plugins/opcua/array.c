/* OPC UA plugin: an array Variant to the JSON text of an array (IB_V_JSON, plugin ABI 1.1):
 * numbers as JSON numbers (exact: the shortest decimal that reads back, integers beyond 2^53 as
 * decimal strings, non-finite floats as null), text-like types as JSON strings (escaped, bytes
 * that are not UTF-8 replaced by U+FFFD). Pure, any thread. */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "value.h"

#define EXACT_INT_MAX 9007199254740992ULL /* 2^53 */

struct out {
    struct ua_text *t;
    size_t len;
    bool full;
};

static void put(struct out *o, const char *p, size_t n)
{
    if (o->full || o->len + n + 1 > UA_ARRAY_MAX_TEXT) {
        o->full = true;
        return;
    }
    if (o->len + n + 1 > o->t->cap) {
        size_t cap = o->t->cap ? o->t->cap : 256;
        while (cap < o->len + n + 1)
            cap *= 2;
        char *q = realloc(o->t->ptr, cap);
        if (!q) {
            o->full = true;
            return;
        }
        o->t->ptr = q;
        o->t->cap = cap;
    }
    memcpy(o->t->ptr + o->len, p, n);
    o->len += n;
}

/* Length of the valid UTF-8 sequence at p (1..4), or 0. */
static size_t utf8_len(const unsigned char *p, size_t left)
{
    size_t n = p[0] < 0xC2 ? 0 : p[0] < 0xE0 ? 2 : p[0] < 0xF0 ? 3 : p[0] < 0xF5 ? 4 : 0;
    if (n == 0 || n > left)
        return 0;
    for (size_t i = 1; i < n; i++)
        if ((p[i] & 0xC0) != 0x80)
            return 0;
    if ((p[0] == 0xE0 && p[1] < 0xA0) || (p[0] == 0xED && p[1] > 0x9F) ||
        (p[0] == 0xF0 && p[1] < 0x90) || (p[0] == 0xF4 && p[1] > 0x8F))
        return 0; /* overlong, surrogate, beyond U+10FFFF */
    return n;
}

static void put_json_string(struct out *o, const char *s, size_t n)
{
    put(o, "\"", 1);
    const unsigned char *p = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        char esc[8];
        if (p[i] == '"' || p[i] == '\\') {
            esc[0] = '\\';
            esc[1] = (char)p[i];
            put(o, esc, 2);
            i++;
        } else if (p[i] < 0x20) {
            snprintf(esc, sizeof esc, "\\u%04x", p[i]);
            put(o, esc, 6);
            i++;
        } else if (p[i] < 0x80) {
            put(o, (const char *)p + i, 1);
            i++;
        } else {
            size_t k = utf8_len(p + i, n - i);
            if (k)
                put(o, (const char *)p + i, k);
            else
                put(o, "\\ufffd", 6);
            i += k ? k : 1;
        }
    }
    put(o, "\"", 1);
}

static void put_double(struct out *o, double d, bool float32)
{
    char buf[40];
    if (!isfinite(d)) {
        put(o, "null", 4);
        return;
    }
    int n = 0;
    for (int prec = 1; prec <= 17; prec++) {
        n = snprintf(buf, sizeof buf, "%.*g", prec, d);
        if (float32 ? strtof(buf, NULL) == (float)d : strtod(buf, NULL) == d)
            break;
    }
    put(o, buf, (size_t)n);
}

/* One element, already a scalar Variant of its type. */
static int put_elem(struct out *o, const struct ua_variant *e, struct ua_text *scratch)
{
    char buf[32];
    int n;
    switch (e->type) {
    case UA_BOOLEAN:
        put(o, e->v.b ? "true" : "false", e->v.b ? 4 : 5);
        return UA_MAP_GOOD;
    case UA_SBYTE:
    case UA_INT16:
    case UA_INT32:
    case UA_INT64: {
        uint64_t mag = e->v.i < 0 ? (uint64_t)0 - (uint64_t)e->v.i : (uint64_t)e->v.i;
        const char *fmt = mag > EXACT_INT_MAX ? "\"%" PRId64 "\"" : "%" PRId64;
        n = snprintf(buf, sizeof buf, fmt, e->v.i);
        put(o, buf, (size_t)n);
        return UA_MAP_GOOD;
    }
    case UA_BYTE:
    case UA_UINT16:
    case UA_UINT32:
    case UA_UINT64:
    case UA_STATUSCODE:
        n = snprintf(buf, sizeof buf, e->v.u > EXACT_INT_MAX ? "\"%" PRIu64 "\"" : "%" PRIu64,
                     e->v.u);
        put(o, buf, (size_t)n);
        return UA_MAP_GOOD;
    case UA_FLOAT:
        put_double(o, (double)e->v.f, true);
        return UA_MAP_GOOD;
    case UA_DOUBLE:
        put_double(o, e->v.d, false);
        return UA_MAP_GOOD;
    default: {
        struct ib_value v;
        int r = ua_scalar_to_value(e, scratch, &v);
        if (r != UA_MAP_GOOD)
            return r;
        if (v.type != IB_V_STRING)
            return UA_MAP_UNSUPPORTED;
        put_json_string(o, v.v.s.ptr, v.v.s.len);
        return UA_MAP_GOOD;
    }
    }
}

int ua_array_to_value(const struct ua_variant *var, struct ua_text *t, struct ib_value *v)
{
    if (var->n > UA_ARRAY_MAX_ELEMS)
        return UA_MAP_UNSUPPORTED;
    struct out o = {t, 0, false};
    struct ua_text scratch = {0};
    int r = UA_MAP_GOOD;
    put(&o, "[", 1);
    struct ua_cur c;
    ua_cur_init(&c, var->raw, var->raw ? var->raw_len : 0);
    for (int32_t i = 0; i < var->n && r == UA_MAP_GOOD && !o.full; i++) {
        struct ua_variant e;
        if (ua_variant_next(&c, var->type, &e) != 0) {
            r = UA_MAP_UNSUPPORTED;
            break;
        }
        if (i)
            put(&o, ",", 1);
        r = put_elem(&o, &e, &scratch);
    }
    put(&o, "]", 1);
    ua_text_free(&scratch);
    if (r != UA_MAP_GOOD)
        return r;
    if (o.full)
        return UA_MAP_UNSUPPORTED;
    t->ptr[o.len] = '\0';
    v->type = IB_V_JSON;
    v->flags = 0;
    v->v.s.ptr = t->ptr;
    v->v.s.len = (uint32_t)o.len;
    return UA_MAP_GOOD;
}
