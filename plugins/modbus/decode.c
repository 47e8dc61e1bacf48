/* Modbus value codec: registers to typed values and back, for every type and byte/word order.
 * Every order is reduced to one big-endian integer first, so each type is converted only once. */
#include "decode.h"

#include <float.h>
#include <math.h>
#include <string.h>

#include <ironbridge/error.h>

unsigned mb_decode_width(enum mb_type type)
{
    switch (type) {
    case MB_TYPE_INT32:
    case MB_TYPE_UINT32:
    case MB_TYPE_FLOAT32:
        return 2;
    case MB_TYPE_INT64:
    case MB_TYPE_UINT64:
    case MB_TYPE_FLOAT64:
        return 4;
    case MB_TYPE_STRING:
        return 0;
    default:
        return 1;
    }
}

uint8_t mb_decode_vtype(enum mb_type type)
{
    switch (type) {
    case MB_TYPE_BOOL:
    case MB_TYPE_BIT:
        return IB_V_BOOL;
    case MB_TYPE_INT16:
    case MB_TYPE_INT32:
    case MB_TYPE_INT64:
        return IB_V_INT;
    case MB_TYPE_UINT16:
    case MB_TYPE_UINT32:
    case MB_TYPE_UINT64:
        return IB_V_UINT;
    case MB_TYPE_FLOAT32:
    case MB_TYPE_FLOAT64:
        return IB_V_DOUBLE;
    case MB_TYPE_STRING:
        return IB_V_STRING;
    default:
        return IB_V_NONE;
    }
}

const char *mb_decode_type_name(enum mb_type type)
{
    static const char *const names[MB_TYPE_COUNT] = {
        [MB_TYPE_BOOL] = "bool",   [MB_TYPE_INT16] = "int16",   [MB_TYPE_UINT16] = "uint16",
        [MB_TYPE_INT32] = "int32", [MB_TYPE_UINT32] = "uint32", [MB_TYPE_FLOAT32] = "float32",
        [MB_TYPE_INT64] = "int64", [MB_TYPE_UINT64] = "uint64", [MB_TYPE_FLOAT64] = "float64",
        [MB_TYPE_BIT] = "bit",     [MB_TYPE_STRING] = "string",
    };
    return (unsigned)type < MB_TYPE_COUNT ? names[type] : "?";
}

const char *mb_decode_order_name(enum mb_order order)
{
    switch (order) {
    case MB_ORDER_ABCD:
        return "ABCD";
    case MB_ORDER_CDAB:
        return "CDAB";
    case MB_ORDER_BADC:
        return "BADC";
    case MB_ORDER_DCBA:
        return "DCBA";
    default:
        return "?";
    }
}

static uint16_t swap_bytes(uint16_t w)
{
    return (uint16_t)((w >> 8) | (w << 8));
}

/* The n registers as one big-endian integer, undoing the wire order. */
static uint64_t gather(const uint16_t *regs, unsigned n, enum mb_order order)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < n; i++) {
        uint16_t w = regs[(order & MB_ORDER_WORD_SWAP) ? n - 1 - i : i];
        if (order & MB_ORDER_BYTE_SWAP)
            w = swap_bytes(w);
        v = (v << 16) | w;
    }
    return v;
}

/* The inverse of gather(). */
static void scatter(uint64_t v, unsigned n, enum mb_order order, uint16_t *regs)
{
    for (unsigned i = 0; i < n; i++) {
        uint16_t w = (uint16_t)(v >> (16 * (n - 1 - i)));
        if (order & MB_ORDER_BYTE_SWAP)
            w = swap_bytes(w);
        regs[(order & MB_ORDER_WORD_SWAP) ? n - 1 - i : i] = w;
    }
}

/* Two's complement reinterpretation without implementation-defined conversions. */
static int64_t sign_extend(uint64_t v, unsigned bits)
{
    uint64_t sign = (uint64_t)1 << (bits - 1);
    if (bits < 64)
        v &= (sign << 1) - 1;
    if (v & sign)
        return -(int64_t)(~v & (sign - 1)) - 1;
    return (int64_t)v;
}

int mb_decode_registers(const uint16_t *regs, enum mb_type type, enum mb_order order,
                        struct ib_value *out)
{
    unsigned n = mb_decode_width(type);
    uint64_t raw;
    double d;

    memset(out, 0, sizeof *out);
    if (n == 0 || type == MB_TYPE_BOOL || type == MB_TYPE_BIT || (unsigned)type >= MB_TYPE_COUNT)
        return IB_ERR_INVALID;
    raw = gather(regs, n, order);
    switch (type) {
    case MB_TYPE_INT16:
    case MB_TYPE_INT32:
    case MB_TYPE_INT64:
        out->type = IB_V_INT;
        out->v.i = sign_extend(raw, 16 * n);
        return 0;
    case MB_TYPE_UINT16:
    case MB_TYPE_UINT32:
    case MB_TYPE_UINT64:
        out->type = IB_V_UINT;
        out->v.u = raw;
        return 0;
    case MB_TYPE_FLOAT32: {
        uint32_t bits = (uint32_t)raw;
        float f;
        memcpy(&f, &bits, sizeof(f));
        d = f; /* binary32 widens to binary64 exactly */
        break;
    }
    case MB_TYPE_FLOAT64:
        memcpy(&d, &raw, sizeof(d));
        break;
    default:
        return IB_ERR_INVALID;
    }
    /* A NaN or an infinity is a device saying "no valid reading" (sensor open, overflow); it
     * must not travel north as a number that JSON cannot even represent. */
    if (!isfinite(d)) {
        out->type = IB_V_NONE;
        return IB_ERR_INVALID;
    }
    out->type = IB_V_DOUBLE;
    out->flags = type == MB_TYPE_FLOAT32 ? IB_VF_FLOAT32 : 0;
    out->v.d = d;
    return 0;
}

void mb_decode_bit(uint8_t bit, struct ib_value *out)
{
    memset(out, 0, sizeof *out);
    out->type = IB_V_BOOL;
    out->v.b = bit != 0;
}

void mb_decode_reg_bit(uint16_t reg, unsigned bit, enum mb_order order, struct ib_value *out)
{
    if (order & MB_ORDER_BYTE_SWAP)
        reg = swap_bytes(reg);
    mb_decode_bit((uint8_t)((reg >> (bit & 15)) & 1), out);
}

uint16_t mb_encode_reg_bit(uint16_t reg, unsigned bit, bool on, enum mb_order order)
{
    uint16_t mask = (uint16_t)(1u << (bit & 15));
    if (order & MB_ORDER_BYTE_SWAP)
        mask = swap_bytes(mask);
    return on ? (uint16_t)(reg | mask) : (uint16_t)(reg & ~mask);
}

/* Length of the valid UTF-8 sequence at s[0 .. n-1], or 0 if it is not one (overlong forms,
 * surrogates and code points past U+10FFFF are invalid, as RFC 3629 says). */
static size_t utf8_sequence(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    size_t len;
    unsigned min;
    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF) {
        len = 2;
        min = 0x80;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        min = 0x800;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        min = 0x10000;
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    unsigned cp = c & (0x7Fu >> len);
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3Fu);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return len;
}

uint32_t mb_decode_string(const uint16_t *regs, unsigned n, enum mb_order order, char *out,
                          struct ib_value *out_value)
{
    /* The raw bytes go to the back half of out first: the UTF-8 repair writes from the front
     * and never overtakes the reader (each input byte becomes at most 3 output bytes, and the
     * raw bytes start at offset 4n of 6n). */
    unsigned char *raw = (unsigned char *)out + MB_STRING_CAP(n) - 2 * (size_t)n;
    size_t len = 0;
    for (unsigned i = 0; i < n; i++) {
        uint16_t w = (order & MB_ORDER_BYTE_SWAP) ? swap_bytes(regs[i]) : regs[i];
        raw[2 * i] = (unsigned char)(w >> 8);
        raw[2 * i + 1] = (unsigned char)w;
    }
    while (len < 2 * (size_t)n && raw[len] != 0)
        len++;
    while (len > 0 && raw[len - 1] == ' ')
        len--;

    size_t o = 0;
    for (size_t i = 0; i < len;) {
        size_t k = utf8_sequence(raw + i, len - i);
        if (k == 0) {
            out[o++] = (char)0xEF; /* U+FFFD REPLACEMENT CHARACTER */
            out[o++] = (char)0xBF;
            out[o++] = (char)0xBD;
            i++;
            continue;
        }
        memmove(out + o, raw + i, k);
        o += k;
        i += k;
    }
    memset(out_value, 0, sizeof *out_value);
    out_value->type = IB_V_STRING;
    out_value->v.s.ptr = out;
    out_value->v.s.len = (uint32_t)o;
    return (uint32_t)o;
}

static bool valid_order(enum mb_type type, enum mb_order order)
{
    if ((unsigned)order > (MB_ORDER_WORD_SWAP | MB_ORDER_BYTE_SWAP))
        return false;
    bool wide = mb_decode_width(type) > 1;
    return wide || !(order & MB_ORDER_WORD_SWAP);
}

int mb_decode_wire(const uint8_t *p, size_t len, enum mb_type type, enum mb_order order,
                   unsigned bit, char *text, size_t text_cap, struct ib_value *out)
{
    uint16_t regs[MB_STRING_MAX_REGS];
    memset(out, 0, sizeof *out);
    if ((unsigned)type >= MB_TYPE_COUNT || !valid_order(type, order))
        return IB_ERR_INVALID;
    if (type == MB_TYPE_BOOL) {
        if (len < 1)
            return IB_ERR_INVALID;
        mb_decode_bit(p[0], out);
        return 0;
    }
    size_t n = type == MB_TYPE_STRING ? len / 2 : mb_decode_width(type);
    if (n == 0 || n > MB_STRING_MAX_REGS || len < 2 * n)
        return IB_ERR_INVALID;
    for (size_t i = 0; i < n; i++)
        regs[i] = (uint16_t)(p[2 * i] << 8 | p[2 * i + 1]);
    if (type == MB_TYPE_BIT) {
        if (bit > 15)
            return IB_ERR_INVALID;
        mb_decode_reg_bit(regs[0], bit, order, out);
        return 0;
    }
    if (type == MB_TYPE_STRING) {
        if (!text || text_cap < MB_STRING_CAP(n))
            return IB_ERR_INVALID;
        mb_decode_string(regs, (unsigned)n, order, text, out);
        return 0;
    }
    return mb_decode_registers(regs, type, order, out);
}

/* *in as a signed integer in [min, max]; doubles only when integral. */
static int to_int(const struct ib_value *in, int64_t min, int64_t max, int64_t *out)
{
    switch (in->type) {
    case IB_V_INT:
        if (in->v.i < min || in->v.i > max)
            return IB_ERR_INVALID;
        *out = in->v.i;
        return 0;
    case IB_V_UINT:
        if (in->v.u > (uint64_t)max)
            return IB_ERR_INVALID;
        *out = (int64_t)in->v.u;
        return 0;
    case IB_V_DOUBLE:
        /* -2^63 and 2^63 are exact doubles; compare before converting, which would be UB. */
        if (!(in->v.d >= -9223372036854775808.0 && in->v.d < 9223372036854775808.0))
            return IB_ERR_INVALID;
        if ((double)(int64_t)in->v.d != in->v.d)
            return IB_ERR_INVALID;
        return to_int(&(struct ib_value){.type = IB_V_INT, .v.i = (int64_t)in->v.d}, min, max, out);
    default:
        return IB_ERR_INVALID;
    }
}

/* *in as an unsigned integer in [0, max]; doubles only when integral. */
static int to_uint(const struct ib_value *in, uint64_t max, uint64_t *out)
{
    switch (in->type) {
    case IB_V_INT:
        if (in->v.i < 0 || (uint64_t)in->v.i > max)
            return IB_ERR_INVALID;
        *out = (uint64_t)in->v.i;
        return 0;
    case IB_V_UINT:
        if (in->v.u > max)
            return IB_ERR_INVALID;
        *out = in->v.u;
        return 0;
    case IB_V_DOUBLE:
        if (!(in->v.d >= 0.0 && in->v.d < 18446744073709551616.0))
            return IB_ERR_INVALID;
        if ((double)(uint64_t)in->v.d != in->v.d)
            return IB_ERR_INVALID;
        return to_uint(&(struct ib_value){.type = IB_V_UINT, .v.u = (uint64_t)in->v.d}, max, out);
    default:
        return IB_ERR_INVALID;
    }
}

/* *in as a finite double. */
static int to_double(const struct ib_value *in, double *out)
{
    switch (in->type) {
    case IB_V_INT:
        *out = (double)in->v.i;
        return 0;
    case IB_V_UINT:
        *out = (double)in->v.u;
        return 0;
    case IB_V_DOUBLE:
        if (!isfinite(in->v.d))
            return IB_ERR_INVALID;
        *out = in->v.d;
        return 0;
    default:
        return IB_ERR_INVALID;
    }
}

int mb_encode_registers(const struct ib_value *in, enum mb_type type, enum mb_order order,
                        uint16_t *regs)
{
    unsigned n = mb_decode_width(type);
    uint64_t raw;
    int64_t i;
    uint64_t u;
    double d;
    int rc;

    switch (type) {
    case MB_TYPE_INT16:
    case MB_TYPE_INT32:
    case MB_TYPE_INT64: {
        unsigned bits = 16 * n;
        int64_t max = (int64_t)(((uint64_t)1 << (bits - 1)) - 1);
        rc = to_int(in, -max - 1, max, &i);
        /* Conversion to unsigned is modulo 2^64: the two's complement bit pattern. */
        raw = (uint64_t)i;
        break;
    }
    case MB_TYPE_UINT16:
    case MB_TYPE_UINT32:
    case MB_TYPE_UINT64:
        rc = to_uint(in, n == 4 ? UINT64_MAX : ((uint64_t)1 << (16 * n)) - 1, &u);
        raw = u;
        break;
    case MB_TYPE_FLOAT32: {
        rc = to_double(in, &d);
        if (rc != 0)
            return rc;
        /* Rounding to the nearest binary32 is expected; overflowing to infinity is not. */
        if (d > FLT_MAX || d < -FLT_MAX)
            return IB_ERR_INVALID;
        float f = (float)d;
        uint32_t bits;
        memcpy(&bits, &f, sizeof(bits));
        raw = bits;
        break;
    }
    case MB_TYPE_FLOAT64:
        rc = to_double(in, &d);
        memcpy(&raw, &d, sizeof(raw));
        break;
    default:
        return IB_ERR_INVALID;
    }
    if (rc != 0)
        return rc;
    scatter(raw, n, order, regs);
    return 0;
}

int mb_encode_bit(const struct ib_value *in, uint8_t *bit)
{
    switch (in->type) {
    case IB_V_BOOL:
        *bit = in->v.b ? 1 : 0;
        return 0;
    case IB_V_INT:
    case IB_V_UINT:
        /* v.i and v.u share the bit pattern, so 0 and 1 read the same through either member. */
        if (in->v.u > 1)
            return IB_ERR_INVALID;
        *bit = (uint8_t)in->v.u;
        return 0;
    default:
        return IB_ERR_INVALID;
    }
}
