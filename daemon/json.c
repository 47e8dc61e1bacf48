/* JSON writer: numbers exactly, strings escaped per RFC 8259.
 * Doubles use the shortest of %.15g/%.16g/%.17g that round-trips, so 0.1 stays "0.1". */
#include "json.h"

#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
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

static const char digit_pairs[201] = "00010203040506070809101112131415161718192021222324"
                                     "25262728293031323334353637383940414243444546474849"
                                     "50515253545556575859606162636465666768697071727374"
                                     "75767778798081828384858687888990919293949596979899";

/* Decimal digits of v at out (no terminator); returns their number. Two digits per step. */
static int fmt_u64(char *out, uint64_t v)
{
    char tmp[20];
    char *p = tmp + sizeof tmp;
    while (v >= 100) {
        unsigned r = (unsigned)(v % 100);
        v /= 100;
        p -= 2;
        memcpy(p, digit_pairs + 2 * r, 2);
    }
    if (v >= 10) {
        p -= 2;
        memcpy(p, digit_pairs + 2 * v, 2);
    } else {
        *--p = (char)('0' + v);
    }
    int n = (int)(tmp + sizeof tmp - p);
    memcpy(out, p, (size_t)n);
    return n;
}

/* An integer as JSON: a number, or a string beyond 2^53 (docs/payload.md). */
static int fmt_int(char *out, uint64_t mag, bool neg)
{
    bool quote = mag > (uint64_t)IB_JSON_MAX_SAFE_INT;
    char *o = out;
    if (quote)
        *o++ = '"';
    if (neg)
        *o++ = '-';
    o += fmt_u64(o, mag);
    if (quote)
        *o++ = '"';
    return (int)(o - out);
}

int ib_fmt_json_int(char *out, int64_t v)
{
    uint64_t mag = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    return fmt_int(out, mag, v < 0);
}

int ib_fmt_json_uint(char *out, uint64_t v)
{
    return fmt_int(out, v, false);
}

int ib_json_int(struct ib_buf *b, int64_t v)
{
    if (ib_buf_reserve(b, 24) < 0)
        return -1;
    b->len += (size_t)ib_fmt_json_int(b->p + b->len, v);
    b->p[b->len] = '\0';
    return 0;
}

int ib_json_uint(struct ib_buf *b, uint64_t v)
{
    if (ib_buf_reserve(b, 24) < 0)
        return -1;
    b->len += (size_t)ib_fmt_json_uint(b->p + b->len, v);
    b->p[b->len] = '\0';
    return 0;
}

/* Powers of ten that are exact doubles (5^22 < 2^53). */
static const double pow10_exact[23] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                       1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                       1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

#define TWO53 9007199254740992.0

/* m with k digits after the decimal point: 614,1 -> "61.4"; 5,3 -> "0.005". */
static int fmt_fixed(char *out, bool neg, uint64_t m, int k)
{
    char d[24];
    int n = 0;
    do {
        d[n++] = (char)('0' + m % 10);
        m /= 10;
    } while (m);
    char *o = out;
    if (neg)
        *o++ = '-';
    if (n <= k) {
        *o++ = '0';
        *o++ = '.';
        for (int i = 0; i < k - n; i++)
            *o++ = '0';
        for (int i = n - 1; i >= 0; i--)
            *o++ = d[i];
    } else {
        for (int i = n - 1; i >= 0; i--) {
            *o++ = d[i];
            if (i == k && k > 0)
                *o++ = '.';
        }
    }
    *o = '\0';
    return (int)(o - out);
}

int ib_fmt_double(char *out, double v)
{
    if (v == 0) {
        /* Keep the sign of -0.0 out of payloads: consumers compare numerically. */
        strcpy(out, "0");
        return 1;
    }
    double a = fabs(v);
    /* Fast path, exact: if c / 10^k == a with c and 10^k exact doubles, IEEE division rounds
     * the real c/10^k correctly, which is what strtod does with "c e-k": the digits read back
     * to a. The smallest k gives the fewest digits. Candidates next to round(a*10^k) cover
     * the rounding of that product. */
    if (a >= 1e-5 && a < 1e15) {
        for (int k = 0; k <= 17; k++) {
            double p = a * pow10_exact[k];
            if (p >= TWO53)
                break;
            double r = nearbyint(p);
            const double cand[3] = {r, r - 1, r + 1};
            for (int i = 0; i < 3; i++)
                if (cand[i] >= 0 && cand[i] < TWO53 && cand[i] / pow10_exact[k] == a)
                    return fmt_fixed(out, v < 0, (uint64_t)cand[i], k);
        }
    }
    /* %g drops trailing zeros, so for a normal double %.15g already is the shortest form when
     * one of at most 15 digits exists (DBL_DIG); subnormals have fewer bits and start at 1. */
    int n = 0;
    for (int prec = a < DBL_MIN ? 1 : 15; prec <= 17; prec++) {
        n = snprintf(out, 32, "%.*g", prec, v);
        if (strtod(out, NULL) == v)
            break;
    }
    return n;
}

int ib_fmt_float32(char *out, float f)
{
    if (f == 0) {
        strcpy(out, "0");
        return 1;
    }
    double a = fabs((double)f);
    /* Fast path, exact: a has 24 significant bits and 10^k (k <= 12) at most 28, so a*10^k is
     * an exact double p. A decimal c*10^-k reads back to f when it lies within half a float ulp
     * of f, i.e. |c - p| < half_ulp*10^k (exact too); a tie goes to the even float, as strtof
     * rounds. Below a power of two the ulp is half as wide. */
    /* Up to 2^24 a float's neighbours are at most 1 apart, so no trailing digit of its integer
     * part can be dropped; above, the %g loop finds the rounder forms (1.0075093e+08). */
    if (a >= 1e-5 && a < 16777216.0) {
        int e;
        double mant = frexp(a, &e); /* a = mant * 2^e, mant in [0.5, 1) */
        double half_ulp = ldexp(1.0, e - 25);
        double half_ulp_below = mant == 0.5 ? half_ulp / 2 : half_ulp;
        uint32_t bits;
        memcpy(&bits, &f, sizeof bits);
        bool even = !(bits & 1);
        for (int k = 0; k <= 12; k++) {
            double p = a * pow10_exact[k];
            if (p >= TWO53)
                break;
            double hi = half_ulp * pow10_exact[k], lo = half_ulp_below * pow10_exact[k];
            double r = nearbyint(p);
            const double cand[3] = {r, r - 1, r + 1};
            for (int i = 0; i < 3; i++) {
                double c = cand[i];
                if (c < 0)
                    continue;
                double d = c - p;
                if ((d >= 0 && (d < hi || (d == hi && even))) ||
                    (d < 0 && (-d < lo || (-d == lo && even))))
                    return fmt_fixed(out, f < 0, (uint64_t)c, k);
            }
        }
    }
    int n = 0;
    for (int prec = a < FLT_MIN ? 1 : 6; prec <= 9; prec++) {
        n = snprintf(out, 32, "%.*g", prec, (double)f);
        if (strtof(out, NULL) == f)
            break;
    }
    return n;
}

int ib_fmt_scalar(char *out, const struct ib_value *v)
{
    switch (v->type) {
    case IB_V_BOOL:
        strcpy(out, v->v.b ? "true" : "false");
        return v->v.b ? 4 : 5;
    case IB_V_INT:
        return snprintf(out, 32, "%lld", (long long)v->v.i);
    case IB_V_UINT:
        return snprintf(out, 32, "%llu", (unsigned long long)v->v.u);
    case IB_V_DOUBLE:
        if (!isfinite(v->v.d))
            return -1;
        if (v->flags & IB_VF_FLOAT32)
            return ib_fmt_float32(out, (float)v->v.d);
        return ib_fmt_double(out, v->v.d);
    default:
        return -1;
    }
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
    case IB_V_DOUBLE: {
        char tmp[32];
        int n = ib_fmt_scalar(tmp, v);
        if (n < 0)
            return ib_buf_puts(b, "null");
        return ib_buf_append(b, tmp, (size_t)n);
    }
    case IB_V_STRING:
        return ib_json_str(b, v->v.s.ptr, v->v.s.len);
    case IB_V_JSON: /* the plugin's JSON array text, as it is (ABI 1.1) */
        if (v->v.s.len < 2 || v->v.s.ptr[0] != '[' || v->v.s.ptr[v->v.s.len - 1] != ']')
            return ib_buf_puts(b, "null");
        return ib_buf_append(b, v->v.s.ptr, v->v.s.len);
    default:
        return ib_buf_puts(b, "null");
    }
}
