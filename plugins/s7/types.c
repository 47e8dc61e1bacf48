/* S7 plugin, types: sizes, width rules and the byte conversions of the S7 data types. S7 is
 * big-endian throughout; BCD fields (S5TIME, DATE_AND_TIME, counters) are checked digit by
 * digit; dates convert through a proleptic Gregorian day count. */
#include "types.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "address.h"

#define MS_PER_DAY   86400000LL
#define DAYS_1990    7305  /* days from 1970-01-01 to 1990-01-01 */
#define DATE_MAX_DAY 65378 /* 2168-12-31, the last S7 DATE */

const char *const s7_type_names[S7_T_COUNT + 1] = {
    [S7_T_BOOL] = "bool",
    [S7_T_BYTE] = "byte",
    [S7_T_CHAR] = "char",
    [S7_T_WORD] = "word",
    [S7_T_INT] = "int",
    [S7_T_DWORD] = "dword",
    [S7_T_DINT] = "dint",
    [S7_T_REAL] = "real",
    [S7_T_LREAL] = "lreal",
    [S7_T_USINT] = "usint",
    [S7_T_SINT] = "sint",
    [S7_T_UINT] = "uint",
    [S7_T_UDINT] = "udint",
    [S7_T_LINT] = "lint",
    [S7_T_ULINT] = "ulint",
    [S7_T_STRING] = "string",
    [S7_T_WSTRING] = "wstring",
    [S7_T_S5TIME] = "s5time",
    [S7_T_TIME] = "time",
    [S7_T_DATE] = "date",
    [S7_T_TIME_OF_DAY] = "time_of_day",
    [S7_T_DATE_AND_TIME] = "date_and_time",
    [S7_T_DTL] = "dtl",
    [S7_T_COUNTER] = "counter",
    [S7_T_COUNT] = NULL,
};

uint32_t s7_type_size(enum s7_type t, uint32_t length)
{
    switch (t) {
    case S7_T_BOOL:
    case S7_T_BYTE:
    case S7_T_CHAR:
    case S7_T_USINT:
    case S7_T_SINT:
        return 1;
    case S7_T_WORD:
    case S7_T_INT:
    case S7_T_UINT:
    case S7_T_S5TIME:
    case S7_T_DATE:
    case S7_T_COUNTER:
        return 2;
    case S7_T_DWORD:
    case S7_T_DINT:
    case S7_T_UDINT:
    case S7_T_REAL:
    case S7_T_TIME:
    case S7_T_TIME_OF_DAY:
        return 4;
    case S7_T_LREAL:
    case S7_T_LINT:
    case S7_T_ULINT:
    case S7_T_DATE_AND_TIME:
        return 8;
    case S7_T_DTL:
        return 12;
    case S7_T_STRING:
        return 2 + length;
    case S7_T_WSTRING:
        return 4 + 2 * length;
    default:
        return 0;
    }
}

enum s7_type s7_type_default(int width)
{
    switch (width) {
    case S7_W_BIT:
        return S7_T_BOOL;
    case S7_W_WORD:
        return S7_T_WORD;
    case S7_W_DWORD:
        return S7_T_DWORD;
    case S7_W_TIMER:
        return S7_T_S5TIME;
    case S7_W_COUNTER:
        return S7_T_COUNTER;
    default:
        return S7_T_BYTE;
    }
}

int s7_type_fits(enum s7_type t, int width, const char **hint)
{
    uint32_t size = s7_type_size(t, 1);
    switch (width) {
    case S7_W_BIT:
        *hint = "a bit address (DBX, M0.1) holds bool only";
        return t == S7_T_BOOL;
    case S7_W_TIMER:
        *hint = "a timer (T) reads as s5time or word";
        return t == S7_T_S5TIME || t == S7_T_WORD;
    case S7_W_COUNTER:
        *hint = "a counter (C) reads as counter or word";
        return t == S7_T_COUNTER || t == S7_T_WORD;
    case S7_W_BYTE:
        *hint = "a byte address (DBB, MB) holds byte, char, usint or sint, or starts a type longer "
                "than 4 bytes (lreal, lint, ulint, string, wstring, date_and_time, dtl)";
        return t != S7_T_BOOL && t != S7_T_COUNTER &&
               (size == 1 || size > 4 || t == S7_T_STRING || t == S7_T_WSTRING);
    case S7_W_WORD:
        *hint = "a word address (DBW, MW) holds word, int, uint, s5time or date";
        return size == 2 && t != S7_T_COUNTER;
    case S7_W_DWORD:
        *hint = "a double word address (DBD, MD) holds dword, dint, udint, real, time or "
                "time_of_day";
        return size == 4;
    default:
        *hint = "unknown address width";
        return 0;
    }
}

int s7_type_has_iso(enum s7_type t)
{
    return t == S7_T_DATE || t == S7_T_TIME_OF_DAY || t == S7_T_DATE_AND_TIME || t == S7_T_DTL;
}

int s7_type_writable(enum s7_type t)
{
    return t < S7_T_COUNT;
}

uint32_t s7_type_text_cap(enum s7_type t, uint32_t length)
{
    switch (t) {
    case S7_T_CHAR:
        return 2; /* Latin-1 as UTF-8 */
    case S7_T_STRING:
        return 2 * length + 1;
    case S7_T_WSTRING:
        return 3 * length + 1;
    default:
        return s7_type_has_iso(t) ? 32 : 0;
    }
}

/* ---- big-endian and BCD ------------------------------------------------------------------- */

static uint64_t be(const uint8_t *p, unsigned n)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

static void put_be(uint8_t *p, unsigned n, uint64_t v)
{
    for (unsigned i = n; i-- > 0; v >>= 8)
        p[i] = (uint8_t)v;
}

/* Two BCD digits, or -1. */
static int bcd2(uint8_t b)
{
    if ((b >> 4) > 9 || (b & 15) > 9)
        return -1;
    return (b >> 4) * 10 + (b & 15);
}

static uint8_t to_bcd2(unsigned v)
{
    return (uint8_t)((v / 10) << 4 | (v % 10));
}

/* ---- calendar ------------------------------------------------------------------------------ */

/* Days since 1970-01-01 of a proleptic Gregorian date. */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (int64_t)yoe + era * 400 + (*m <= 2);
}

static int valid_date(int64_t y, unsigned m, unsigned d)
{
    static const unsigned mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (m < 1 || m > 12 || d < 1 || d > mdays[m - 1])
        return 0;
    int64_t yy, back;
    unsigned mm, dd;
    back = days_from_civil(y, m, d);
    civil_from_days(back, &yy, &mm, &dd);
    return yy == y && mm == m && dd == d; /* refuses 29 February of a common year */
}

struct civil {
    int64_t y;
    unsigned mo, d, h, mi, s, ms;
};

static int64_t civil_ms(const struct civil *c)
{
    return days_from_civil(c->y, c->mo, c->d) * MS_PER_DAY +
           ((int64_t)c->h * 3600 + c->mi * 60 + c->s) * 1000 + c->ms;
}

static void civil_of_ms(int64_t ms, struct civil *c)
{
    int64_t days = ms >= 0 ? ms / MS_PER_DAY : -((-ms + MS_PER_DAY - 1) / MS_PER_DAY);
    int64_t rest = ms - days * MS_PER_DAY;
    civil_from_days(days, &c->y, &c->mo, &c->d);
    c->h = (unsigned)(rest / 3600000);
    c->mi = (unsigned)(rest / 60000 % 60);
    c->s = (unsigned)(rest / 1000 % 60);
    c->ms = (unsigned)(rest % 1000);
}

static int valid_clock(const struct civil *c)
{
    return c->h < 24 && c->mi < 60 && c->s < 60 && c->ms < 1000 && valid_date(c->y, c->mo, c->d);
}

/* ---- decoding ------------------------------------------------------------------------------ */

static void set_text(struct ib_value *v, char *text, uint32_t len)
{
    v->type = IB_V_STRING;
    v->v.s.ptr = text;
    v->v.s.len = len;
}

/* Latin-1 bytes to UTF-8; text holds 2 bytes per input byte. */
static uint32_t latin1_to_utf8(const uint8_t *p, uint32_t n, char *text)
{
    uint32_t o = 0;
    for (uint32_t i = 0; i < n; i++) {
        if (p[i] < 0x80) {
            text[o++] = (char)p[i];
        } else {
            text[o++] = (char)(0xC0 | p[i] >> 6);
            text[o++] = (char)(0x80 | (p[i] & 0x3F));
        }
    }
    return o;
}

/* UTF-16BE units to UTF-8 (unpaired surrogates become U+FFFD); text holds 3 bytes per unit. */
static uint32_t utf16_to_utf8(const uint8_t *p, uint32_t units, char *text)
{
    uint32_t o = 0;
    for (uint32_t i = 0; i < units; i++) {
        uint32_t c = (uint32_t)be(p + 2 * i, 2);
        if (c >= 0xD800 && c < 0xDC00 && i + 1 < units) {
            uint32_t lo = (uint32_t)be(p + 2 * i + 2, 2);
            if (lo >= 0xDC00 && lo < 0xE000) {
                c = 0x10000 + ((c - 0xD800) << 10) + (lo - 0xDC00);
                i++;
                text[o++] = (char)(0xF0 | c >> 18);
                text[o++] = (char)(0x80 | (c >> 12 & 0x3F));
                text[o++] = (char)(0x80 | (c >> 6 & 0x3F));
                text[o++] = (char)(0x80 | (c & 0x3F));
                continue;
            }
        }
        if (c >= 0xD800 && c < 0xE000)
            c = 0xFFFD;
        if (c < 0x80) {
            text[o++] = (char)c;
        } else if (c < 0x800) {
            text[o++] = (char)(0xC0 | c >> 6);
            text[o++] = (char)(0x80 | (c & 0x3F));
        } else {
            text[o++] = (char)(0xE0 | c >> 12);
            text[o++] = (char)(0x80 | (c >> 6 & 0x3F));
            text[o++] = (char)(0x80 | (c & 0x3F));
        }
    }
    return o;
}

static int decode_string(const uint8_t *p, uint32_t len, uint32_t length, char *text,
                         struct ib_value *v)
{
    uint32_t max = p[0], cur = p[1];
    if (cur > max || cur > length || 2 + cur > len)
        return -1;
    set_text(v, text, latin1_to_utf8(p + 2, cur, text));
    return 0;
}

static int decode_wstring(const uint8_t *p, uint32_t len, uint32_t length, char *text,
                          struct ib_value *v)
{
    uint32_t max = (uint32_t)be(p, 2), cur = (uint32_t)be(p + 2, 2);
    if (cur > max || cur > length || 4 + 2 * cur > len)
        return -1;
    set_text(v, text, utf16_to_utf8(p + 4, cur, text));
    return 0;
}

static int decode_s5time(const uint8_t *p, struct ib_value *v)
{
    static const uint32_t base_ms[] = {10, 100, 1000, 10000};
    int hi = bcd2(p[0] & 0x0F), lo = bcd2(p[1]);
    if (hi < 0 || lo < 0 || (p[0] & 0xC0))
        return -1;
    v->type = IB_V_UINT;
    v->v.u = (uint64_t)(hi * 100 + lo) * base_ms[p[0] >> 4 & 3];
    return 0;
}

static int decode_counter(const uint8_t *p, struct ib_value *v)
{
    int hi = bcd2(p[0] & 0x0F), lo = bcd2(p[1]);
    if (hi < 0 || lo < 0 || (p[0] & 0xF0))
        return -1;
    v->type = IB_V_UINT;
    v->v.u = (uint64_t)(hi * 100 + lo);
    return 0;
}

/* A point in time as ms or ISO text; `date_only`/`clock_only` choose the ISO form. */
static int put_time(const struct civil *c, enum s7_time_format fmt, int form, char *text,
                    uint32_t cap, struct ib_value *v)
{
    if (fmt == S7_TF_MS) {
        v->type = IB_V_INT;
        v->v.i =
            form == 2 ? (((int64_t)c->h * 60 + c->mi) * 60 + c->s) * 1000 + c->ms : civil_ms(c);
        return 0;
    }
    int n;
    if (form == 1)
        n = snprintf(text, cap, "%04lld-%02u-%02u", (long long)c->y, c->mo, c->d);
    else if (form == 2)
        n = snprintf(text, cap, "%02u:%02u:%02u.%03u", c->h, c->mi, c->s, c->ms);
    else
        n = snprintf(text, cap, "%04lld-%02u-%02uT%02u:%02u:%02u.%03u", (long long)c->y, c->mo,
                     c->d, c->h, c->mi, c->s, c->ms);
    if (n < 0 || (uint32_t)n >= cap)
        return -1;
    set_text(v, text, (uint32_t)n);
    return 0;
}

static int decode_dt(const uint8_t *p, struct civil *c)
{
    int y = bcd2(p[0]), mo = bcd2(p[1]), d = bcd2(p[2]), h = bcd2(p[3]), mi = bcd2(p[4]),
        s = bcd2(p[5]), ms2 = bcd2(p[6]), ms1 = p[7] >> 4;
    if (y < 0 || mo < 0 || d < 0 || h < 0 || mi < 0 || s < 0 || ms2 < 0 || ms1 > 9)
        return -1;
    *c = (struct civil){y >= 90 ? 1900 + y : 2000 + y,
                        (unsigned)mo,
                        (unsigned)d,
                        (unsigned)h,
                        (unsigned)mi,
                        (unsigned)s,
                        (unsigned)(ms2 * 10 + ms1)};
    return valid_clock(c) ? 0 : -1;
}

static int decode_dtl(const uint8_t *p, struct civil *c)
{
    uint32_t ns = (uint32_t)be(p + 8, 4);
    *c = (struct civil){(int64_t)be(p, 2), p[2], p[3], p[5], p[6], p[7], ns / 1000000};
    return ns < 1000000000u && valid_clock(c) ? 0 : -1;
}

static int decode_time_type(enum s7_type t, enum s7_time_format fmt, const uint8_t *p, char *text,
                            uint32_t cap, struct ib_value *v)
{
    struct civil c = {0};
    switch (t) {
    case S7_T_DATE: {
        uint32_t days = (uint32_t)be(p, 2);
        if (days > DATE_MAX_DAY)
            return -1;
        civil_from_days(DAYS_1990 + (int64_t)days, &c.y, &c.mo, &c.d);
        return put_time(&c, fmt, 1, text, cap, v);
    }
    case S7_T_TIME_OF_DAY: {
        uint32_t ms = (uint32_t)be(p, 4);
        if (ms >= MS_PER_DAY)
            return -1;
        c = (struct civil){1970, 1, 1, ms / 3600000, ms / 60000 % 60, ms / 1000 % 60, ms % 1000};
        return put_time(&c, fmt, 2, text, cap, v);
    }
    case S7_T_DATE_AND_TIME:
        if (decode_dt(p, &c) != 0)
            return -1;
        return put_time(&c, fmt, 0, text, cap, v);
    default: /* S7_T_DTL */
        if (decode_dtl(p, &c) != 0)
            return -1;
        return put_time(&c, fmt, 0, text, cap, v);
    }
}

static int decode_number(enum s7_type t, const uint8_t *p, struct ib_value *v)
{
    uint32_t size = s7_type_size(t, 0);
    uint64_t raw = be(p, size);
    switch (t) {
    case S7_T_SINT:
        v->type = IB_V_INT;
        v->v.i = (int8_t)raw;
        return 0;
    case S7_T_INT:
        v->type = IB_V_INT;
        v->v.i = (int16_t)raw;
        return 0;
    case S7_T_DINT:
    case S7_T_TIME:
        v->type = IB_V_INT;
        v->v.i = (int32_t)raw;
        return 0;
    case S7_T_LINT:
        v->type = IB_V_INT;
        v->v.i = (int64_t)raw;
        return 0;
    case S7_T_REAL: {
        uint32_t r32 = (uint32_t)raw;
        float f;
        memcpy(&f, &r32, sizeof f);
        v->type = IB_V_DOUBLE;
        v->flags = IB_VF_FLOAT32;
        v->v.d = f;
        return 0;
    }
    case S7_T_LREAL:
        v->type = IB_V_DOUBLE;
        memcpy(&v->v.d, &raw, sizeof v->v.d);
        return 0;
    default: /* BYTE, WORD, DWORD, USINT, UINT, UDINT, ULINT */
        v->type = IB_V_UINT;
        v->v.u = raw;
        return 0;
    }
}

int s7_type_decode(enum s7_type t, enum s7_time_format fmt, const uint8_t *p, uint32_t len,
                   uint8_t bit, uint32_t length, char *text, uint32_t text_cap, struct ib_value *v)
{
    if (!p || !v || t >= S7_T_COUNT || len < s7_type_size(t, length) ||
        text_cap < s7_type_text_cap(t, length) || (text_cap > 0 && !text))
        return -1;
    memset(v, 0, sizeof *v);
    switch (t) {
    case S7_T_BOOL:
        v->type = IB_V_BOOL;
        v->v.b = (p[0] >> (bit & 7)) & 1;
        return 0;
    case S7_T_CHAR:
        set_text(v, text, latin1_to_utf8(p, 1, text));
        return 0;
    case S7_T_STRING:
        return decode_string(p, len, length, text, v);
    case S7_T_WSTRING:
        return decode_wstring(p, len, length, text, v);
    case S7_T_S5TIME:
        return decode_s5time(p, v);
    case S7_T_COUNTER:
        return decode_counter(p, v);
    case S7_T_DATE:
    case S7_T_TIME_OF_DAY:
    case S7_T_DATE_AND_TIME:
    case S7_T_DTL:
        return decode_time_type(t, fmt, p, text, text_cap, v);
    default:
        return decode_number(t, p, v);
    }
}

/* ---- encoding ------------------------------------------------------------------------------ */

/* *v as an integer within [lo, hi] (hi as unsigned so that ULINT fits); two's complement bits
 * in *out. */
static int as_integer(const struct ib_value *v, int64_t lo, uint64_t hi, uint64_t *out,
                      const char **why)
{
    *why = "out of the type's range";
    switch (v->type) {
    case IB_V_BOOL:
        *out = v->v.b ? 1 : 0;
        return 0;
    case IB_V_INT:
        if (v->v.i < lo || (v->v.i >= 0 && (uint64_t)v->v.i > hi))
            return -1;
        *out = (uint64_t)v->v.i;
        return 0;
    case IB_V_UINT:
        if (v->v.u > hi)
            return -1;
        *out = v->v.u;
        return 0;
    case IB_V_DOUBLE: {
        double d = v->v.d;
        if (!isfinite(d) || trunc(d) != d) {
            *why = "not a whole number (the type is an integer)";
            return -1;
        }
        if (d < (double)lo || d >= 18446744073709551616.0 || (d >= 0 && (uint64_t)d > hi))
            return -1;
        *out = d < 0 ? (uint64_t)(int64_t)d : (uint64_t)d;
        return 0;
    }
    default:
        *why = "the value is not a number";
        return -1;
    }
}

static int as_double(const struct ib_value *v, double *d, const char **why)
{
    switch (v->type) {
    case IB_V_BOOL:
        *d = v->v.b;
        return 0;
    case IB_V_INT:
        *d = (double)v->v.i;
        return 0;
    case IB_V_UINT:
        *d = (double)v->v.u;
        return 0;
    case IB_V_DOUBLE:
        *d = v->v.d;
        return 0;
    default:
        *why = "the value is not a number";
        return -1;
    }
}

static int encode_s5time(uint64_t ms, uint8_t *out, const char **why)
{
    static const uint32_t base_ms[] = {10, 100, 1000, 10000};
    for (unsigned b = 0; b < 4; b++) {
        if (ms % base_ms[b] != 0 || ms / base_ms[b] > 999)
            continue;
        unsigned n = (unsigned)(ms / base_ms[b]);
        out[0] = (uint8_t)(b << 4 | n / 100);
        out[1] = to_bcd2(n % 100);
        return 0;
    }
    *why = "an S5TIME holds 0..9990000 ms with 3 significant digits (10 ms steps up to 9.99 s, "
           "100 ms to 99.9 s, 1 s to 999 s, 10 s beyond)";
    return -1;
}

static int encode_point(enum s7_type t, int64_t ms, uint8_t *out, const char **why)
{
    struct civil c;
    civil_of_ms(ms, &c);
    int64_t days = days_from_civil(c.y, c.mo, c.d);
    unsigned wday = (unsigned)(((days % 7) + 11) % 7) + 1; /* 1 = Sunday; 1970-01-01: Thursday */
    if (t == S7_T_DATE) {
        if (days < DAYS_1990 || days - DAYS_1990 > DATE_MAX_DAY) {
            *why = "a DATE lies between 1990-01-01 and 2168-12-31";
            return -1;
        }
        put_be(out, 2, (uint64_t)(days - DAYS_1990));
        return 0;
    }
    if (t == S7_T_DATE_AND_TIME) {
        if (c.y < 1990 || c.y > 2089) {
            *why = "a DATE_AND_TIME lies between 1990 and 2089";
            return -1;
        }
        uint8_t b[8] = {to_bcd2((unsigned)(c.y % 100)),
                        to_bcd2(c.mo),
                        to_bcd2(c.d),
                        to_bcd2(c.h),
                        to_bcd2(c.mi),
                        to_bcd2(c.s),
                        to_bcd2(c.ms / 10),
                        (uint8_t)((c.ms % 10) << 4 | wday)};
        memcpy(out, b, sizeof b);
        return 0;
    }
    if (c.y < 1970 || c.y > 2262) {
        *why = "a DTL lies between 1970 and 2262";
        return -1;
    }
    put_be(out, 2, (uint64_t)c.y);
    out[2] = (uint8_t)c.mo;
    out[3] = (uint8_t)c.d;
    out[4] = (uint8_t)wday;
    out[5] = (uint8_t)c.h;
    out[6] = (uint8_t)c.mi;
    out[7] = (uint8_t)c.s;
    put_be(out + 8, 4, (uint64_t)c.ms * 1000000u);
    return 0;
}

int s7_type_encode(enum s7_type t, const struct ib_value *v, uint8_t *out, const char **why)
{
    uint64_t u = 0;
    double d = 0;
    *why = "";
    switch (t) {
    case S7_T_BOOL:
        if (as_integer(v, 0, 1, &u, why) != 0) {
            *why = "a bool takes 0 or 1 (true or false)";
            return -1;
        }
        out[0] = (uint8_t)u;
        return 0;
    case S7_T_BYTE:
    case S7_T_USINT:
        return as_integer(v, 0, UINT8_MAX, &u, why) ? -1 : (put_be(out, 1, u), 0);
    case S7_T_SINT:
        return as_integer(v, INT8_MIN, INT8_MAX, &u, why) ? -1 : (put_be(out, 1, u), 0);
    case S7_T_WORD:
    case S7_T_UINT:
        return as_integer(v, 0, UINT16_MAX, &u, why) ? -1 : (put_be(out, 2, u), 0);
    case S7_T_INT:
        return as_integer(v, INT16_MIN, INT16_MAX, &u, why) ? -1 : (put_be(out, 2, u), 0);
    case S7_T_DWORD:
    case S7_T_UDINT:
        return as_integer(v, 0, UINT32_MAX, &u, why) ? -1 : (put_be(out, 4, u), 0);
    case S7_T_DINT:
    case S7_T_TIME:
        return as_integer(v, INT32_MIN, INT32_MAX, &u, why) ? -1 : (put_be(out, 4, u), 0);
    case S7_T_TIME_OF_DAY:
        return as_integer(v, 0, MS_PER_DAY - 1, &u, why) ? -1 : (put_be(out, 4, u), 0);
    case S7_T_LINT:
        return as_integer(v, INT64_MIN, INT64_MAX, &u, why) ? -1 : (put_be(out, 8, u), 0);
    case S7_T_ULINT:
        return as_integer(v, 0, UINT64_MAX, &u, why) ? -1 : (put_be(out, 8, u), 0);
    case S7_T_S5TIME:
        if (as_integer(v, 0, 9990000, &u, why) != 0)
            return -1;
        return encode_s5time(u, out, why);
    case S7_T_COUNTER:
        if (as_integer(v, 0, 999, &u, why) != 0) {
            *why = "a counter holds 0..999";
            return -1;
        }
        out[0] = (uint8_t)(u / 100);
        out[1] = to_bcd2((unsigned)(u % 100));
        return 0;
    case S7_T_REAL: {
        if (as_double(v, &d, why) != 0)
            return -1;
        if (isfinite(d) && fabs(d) > FLT_MAX) {
            *why = "out of the range of a REAL";
            return -1;
        }
        float f = (float)d;
        uint32_t r;
        memcpy(&r, &f, sizeof r);
        put_be(out, 4, r);
        return 0;
    }
    case S7_T_LREAL:
        if (as_double(v, &d, why) != 0)
            return -1;
        memcpy(&u, &d, sizeof u);
        put_be(out, 8, u);
        return 0;
    case S7_T_DATE:
    case S7_T_DATE_AND_TIME:
    case S7_T_DTL:
        if (as_integer(v, INT64_MIN, INT64_MAX, &u, why) != 0)
            return -1;
        return encode_point(t, (int64_t)u, out, why);
    default:
        *why = "this type cannot be written";
        return -1;
    }
}

/* ---- encoding text ------------------------------------------------------------------------- */

/* The code point of the UTF-8 sequence at p[*i .. len-1]; *i moves past it. -1 when the bytes
 * are not UTF-8 (a stray continuation byte, a truncated or overlong sequence, a surrogate, above
 * U+10FFFF). */
static long utf8_next(const uint8_t *p, uint32_t len, uint32_t *i)
{
    static const uint32_t min_cp[] = {0, 0x80, 0x800, 0x10000};
    uint8_t b = p[*i];
    unsigned more = b < 0x80             ? 0
                    : (b & 0xE0) == 0xC0 ? 1
                    : (b & 0xF0) == 0xE0 ? 2
                    : (b & 0xF8) == 0xF0 ? 3
                                         : 4;
    if (more == 4 || len - *i <= more)
        return -1;
    uint32_t cp = more == 0 ? b : b & (0x3Fu >> more);
    for (unsigned k = 1; k <= more; k++) {
        uint8_t c = p[*i + k];
        if ((c & 0xC0) != 0x80)
            return -1;
        cp = cp << 6 | (c & 0x3F);
    }
    if (cp < min_cp[more] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return -1;
    *i += more + 1;
    return (long)cp;
}

/* UTF-8 text as Latin-1 into out[0 .. max-1]; *n characters. -1: not Latin-1 text, -2: more
 * than max characters. */
static int text_to_latin1(const struct ib_value *v, uint8_t *out, uint32_t max, uint32_t *n,
                          const char **why)
{
    const uint8_t *p = (const uint8_t *)v->v.s.ptr;
    uint32_t k = 0;
    for (uint32_t i = 0; i < v->v.s.len;) {
        long cp = utf8_next(p, v->v.s.len, &i);
        if (cp < 0) {
            *why = "the text is not valid UTF-8";
            return -1;
        }
        if (cp > 0xFF) {
            *why = "the text has a character outside Latin-1 (U+0000..U+00FF), which a STRING "
                   "or CHAR cannot hold (a WSTRING can)";
            return -1;
        }
        if (k == max) {
            *why = "the text is longer than the declared length";
            return -2;
        }
        out[k++] = (uint8_t)cp;
    }
    *n = k;
    return 0;
}

/* UTF-8 text as UTF-16BE into out (max code units); *n code units. */
static int text_to_utf16(const struct ib_value *v, uint8_t *out, uint32_t max, uint32_t *n,
                         const char **why)
{
    const uint8_t *p = (const uint8_t *)v->v.s.ptr;
    uint32_t k = 0;
    for (uint32_t i = 0; i < v->v.s.len;) {
        long cp = utf8_next(p, v->v.s.len, &i);
        if (cp < 0) {
            *why = "the text is not valid UTF-8";
            return -1;
        }
        uint32_t units = cp > 0xFFFF ? 2 : 1;
        if (max - k < units) {
            *why = "the text is longer than the declared length (UTF-16 code units)";
            return -1;
        }
        if (units == 2) {
            uint32_t c = (uint32_t)cp - 0x10000;
            put_be(out + 2 * k++, 2, 0xD800 | c >> 10);
            put_be(out + 2 * k++, 2, 0xDC00 | (c & 0x3FF));
        } else {
            put_be(out + 2 * k++, 2, (uint64_t)cp);
        }
    }
    *n = k;
    return 0;
}

int s7_type_encode_text(enum s7_type t, const struct ib_value *v, uint32_t length, uint8_t *out,
                        uint32_t cap, uint32_t *n, const char **why)
{
    uint32_t k = 0;
    *why = "";
    if (v->type != IB_V_STRING || (v->v.s.len > 0 && !v->v.s.ptr)) {
        *why = "the type takes text (a string value)";
        return -1;
    }
    if (cap < s7_type_size(t, length)) {
        *why = "internal: buffer too small";
        return -1;
    }
    switch (t) {
    case S7_T_CHAR: {
        int rc = text_to_latin1(v, out, 1, &k, why);
        if (rc == -1)
            return -1;
        if (rc != 0 || k != 1) {
            *why = "a CHAR takes exactly one character";
            return -1;
        }
        *n = 1;
        return 0;
    }
    case S7_T_STRING:
        if (length > 254 || text_to_latin1(v, out + 2, length, &k, why) != 0)
            return -1;
        out[0] = (uint8_t)length;
        out[1] = (uint8_t)k;
        *n = 2 + k;
        return 0;
    case S7_T_WSTRING:
        if (length > 16382 || text_to_utf16(v, out + 4, length, &k, why) != 0)
            return -1;
        put_be(out, 2, length);
        put_be(out + 2, 2, k);
        *n = 4 + 2 * k;
        return 0;
    default:
        *why = "not a text type";
        return -1;
    }
}
