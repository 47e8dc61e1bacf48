/* JSON writer: numbers exactly, strings escaped per RFC 8259.
 * Doubles use the shortest of %.15g/%.16g/%.17g that round-trips, so 0.1 stays "0.1". */
#include "json.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int ib_json_str(struct ib_buf *b, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    /* Worst case every byte becomes \u00XX. */
    if (ib_buf_reserve(b, len * 6 + 2) < 0)
        return -1;
    char *o = b->p + b->len;
    *o++ = '"';
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        switch (c) {
        case '"':
            *o++ = '\\';
            *o++ = '"';
            break;
        case '\\':
            *o++ = '\\';
            *o++ = '\\';
            break;
        case '\n':
            *o++ = '\\';
            *o++ = 'n';
            break;
        case '\r':
            *o++ = '\\';
            *o++ = 'r';
            break;
        case '\t':
            *o++ = '\\';
            *o++ = 't';
            break;
        case '\b':
            *o++ = '\\';
            *o++ = 'b';
            break;
        case '\f':
            *o++ = '\\';
            *o++ = 'f';
            break;
        default:
            if (c < 0x20 || c == 0x7f) {
                *o++ = '\\';
                *o++ = 'u';
                *o++ = '0';
                *o++ = '0';
                *o++ = hex[c >> 4];
                *o++ = hex[c & 15];
            } else {
                *o++ = (char)c;
            }
        }
    }
    *o++ = '"';
    b->len = (size_t)(o - b->p);
    b->p[b->len] = '\0';
    return 0;
}

int ib_json_cstr(struct ib_buf *b, const char *s)
{
    return ib_json_str(b, s, strlen(s));
}

/* Digits of an unsigned integer written backwards into the end of `tmp`; returns the start. */
static char *utoa_rev(char *end, uint64_t v)
{
    char *p = end;
    do {
        *--p = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    return p;
}

static int put_int(struct ib_buf *b, uint64_t mag, int neg, int quote)
{
    char tmp[24];
    char *end = tmp + sizeof tmp;
    char *p = utoa_rev(end, mag);
    if (neg)
        *--p = '-';
    size_t n = (size_t)(end - p);
    if (ib_buf_reserve(b, n + 2) < 0)
        return -1;
    if (quote)
        b->p[b->len++] = '"';
    memcpy(b->p + b->len, p, n);
    b->len += n;
    if (quote)
        b->p[b->len++] = '"';
    b->p[b->len] = '\0';
    return 0;
}

int ib_json_int(struct ib_buf *b, int64_t v)
{
    uint64_t mag = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    return put_int(b, mag, v<0, mag>(uint64_t) IB_JSON_MAX_SAFE_INT);
}

int ib_json_uint(struct ib_buf *b, uint64_t v)
{
    return put_int(b, v, 0, v > (uint64_t)IB_JSON_MAX_SAFE_INT);
}

int ib_fmt_double(char *out, double v)
{
    if (v == 0) {
        /* Keep the sign of -0.0 out of payloads: consumers compare numerically. */
        strcpy(out, "0");
        return 1;
    }
    /* Integral values in the exactly representable range print as integers. */
    if (fabs(v) < 1e15 && v == (double)(int64_t)v)
        return snprintf(out, 32, "%" PRId64, (int64_t)v);
    int n = 0;
    for (int prec = 15; prec <= 17; prec++) {
        n = snprintf(out, 32, "%.*g", prec, v);
        if (strtod(out, NULL) == v)
            break;
    }
    return n;
}

int ib_json_double(struct ib_buf *b, double v)
{
    char tmp[32];
    int n = ib_fmt_double(tmp, v);
    return ib_buf_append(b, tmp, (size_t)n);
}

int ib_json_value(struct ib_buf *b, const struct ib_value *v)
{
    switch (v->type) {
    case IB_V_BOOL:
        return ib_buf_puts(b, v->v.b ? "true" : "false");
    case IB_V_INT:
        return ib_json_int(b, v->v.i);
    case IB_V_UINT:
        return ib_json_uint(b, v->v.u);
    case IB_V_DOUBLE:
        if (!isfinite(v->v.d))
            return ib_buf_puts(b, "null");
        return ib_json_double(b, v->v.d);
    case IB_V_STRING:
        return ib_json_str(b, v->v.s.ptr, v->v.s.len);
    default:
        return ib_buf_puts(b, "null");
    }
}
