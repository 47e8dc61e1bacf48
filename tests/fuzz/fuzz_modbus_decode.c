/* fuzz_modbus_decode.c: fuzz target of the Modbus value codec (plugins/modbus/decode.c) for
 * every type and byte/word order: registers to values (mb_decode_registers, mb_decode_bit,
 * mb_decode_reg_bit, mb_decode_string) and back (mb_encode_registers, mb_encode_reg_bit,
 * mb_encode_bit), with the properties the header promises checked: a decoded value encodes
 * back to the same registers, strings are valid UTF-8 within MB_STRING_CAP, a bit written is
 * read back and the other bits stay.
 *
 * Input: [0] type, [1] order, [2] bit number or string length, [3] value type for an encode,
 * then registers (two bytes each, little-endian host order as libmodbus gives them). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "decode.h"
#include "fuzz_util.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    return 0;
}

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_modbus_decode: %s:%d: %s\n", __FILE__, __LINE__, #cond);         \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static int utf8_valid(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i], k;
        uint32_t min;
        if (c < 0x80) {
            i++;
            continue;
        } else if (c >= 0xC2 && c <= 0xDF) {
            k = 1, min = 0x80;
        } else if ((c & 0xF0) == 0xE0) {
            k = 2, min = 0x800;
        } else if (c >= 0xF0 && c <= 0xF4) {
            k = 3, min = 0x10000;
        } else {
            return 0;
        }
        if (i + k >= n)
            return 0;
        uint32_t cp = c & (0x3Fu >> k);
        for (unsigned j = 1; j <= k; j++) {
            if ((s[i + j] & 0xC0) != 0x80)
                return 0;
            cp = cp << 6 | (s[i + j] & 0x3Fu);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return 0;
        i += k + 1;
    }
    return 1;
}

static void registers(const uint16_t *regs, unsigned n, enum mb_type type, enum mb_order order)
{
    unsigned w = mb_decode_width(type);
    CHECK(mb_decode_type_name(type) != NULL && mb_decode_order_name(order) != NULL);
    if (type == MB_TYPE_BOOL || type == MB_TYPE_BIT || type == MB_TYPE_STRING || n < w)
        return;
    struct ib_value v;
    memset(&v, 0xA5, sizeof v);
    if (mb_decode_registers(regs, type, order, &v) != 0) {
        CHECK(v.type == IB_V_NONE);
        CHECK(type == MB_TYPE_FLOAT32 || type == MB_TYPE_FLOAT64);
        return;
    }
    CHECK(v.type == mb_decode_vtype(type));
    uint16_t back[4] = {0};
    CHECK(mb_encode_registers(&v, type, order, back) == 0);
    CHECK(memcmp(back, regs, w * sizeof *regs) == 0);
}

static void string(const uint16_t *regs, unsigned n, enum mb_order order)
{
    size_t cap = MB_STRING_CAP(n);
    char *out = malloc(cap > 0 ? cap : 1);
    struct ib_value v;
    uint32_t len = mb_decode_string(regs, n, order, out, &v);
    CHECK(len <= MB_STRING_CAP(n));
    CHECK(v.type == IB_V_STRING && v.v.s.ptr == out && v.v.s.len == len);
    CHECK(utf8_valid((const unsigned char *)out, len));
    free(out);
}

static void bits(uint16_t reg, unsigned bit, enum mb_order order, uint8_t byte)
{
    struct ib_value v;
    mb_decode_bit(byte, &v);
    CHECK(v.type == IB_V_BOOL && v.v.b == (byte != 0));
    order &= MB_ORDER_BYTE_SWAP;
    for (int on = 0; on <= 1; on++) {
        uint16_t r = mb_encode_reg_bit(reg, bit, on, order);
        mb_decode_reg_bit(r, bit, order, &v);
        CHECK(v.type == IB_V_BOOL && v.v.b == on);
        uint16_t other = 0;
        /* every other bit as it was */
        for (unsigned b = 0; b < 16; b++) {
            if (b == bit)
                continue;
            struct ib_value x, y;
            mb_decode_reg_bit(reg, b, order, &x);
            mb_decode_reg_bit(r, b, order, &y);
            other |= (uint16_t)(x.v.b != y.v.b);
        }
        CHECK(other == 0);
    }
}

/* A value of any type from 8 bytes, encoded; what is accepted decodes back to the same. */
static void encode(const uint8_t *p, uint8_t vt, enum mb_type type, enum mb_order order)
{
    struct ib_value in = {.type = (uint8_t)(vt % 6)};
    memcpy(&in.v.u, p, 8);
    if (in.type == IB_V_BOOL) /* a bool holds 0 or 1: anything else is the caller's UB */
        in.v.u = 0, in.v.b = p[0] & 1;
    if (in.type == IB_V_STRING)
        in.v.s.ptr = "x", in.v.s.len = 1;
    uint8_t bit;
    if (mb_encode_bit(&in, &bit) == 0)
        CHECK(bit == 0 || bit == 1);
    uint16_t regs[4] = {0x1111, 0x2222, 0x3333, 0x4444};
    if (mb_encode_registers(&in, type, order, regs) != 0)
        return;
    struct ib_value out;
    CHECK(mb_decode_registers(regs, type, order, &out) == 0);
    long double a = in.type == IB_V_INT    ? (long double)in.v.i
                    : in.type == IB_V_UINT ? (long double)in.v.u
                                           : (long double)in.v.d;
    long double b = out.type == IB_V_INT    ? (long double)out.v.i
                    : out.type == IB_V_UINT ? (long double)out.v.u
                                            : (long double)out.v.d;
    if (type != MB_TYPE_FLOAT32 && !(type == MB_TYPE_FLOAT64 && in.type != IB_V_DOUBLE))
        CHECK(a == b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 4)
        return 0;
    enum mb_type type = (enum mb_type)(data[0] % MB_TYPE_COUNT);
    enum mb_order order = (enum mb_order)(data[1] & 3);
    unsigned n = (unsigned)(size - 4) / 2;
    uint16_t *regs = malloc((n ? n : 1) * sizeof *regs);
    for (unsigned i = 0; i < n; i++)
        regs[i] = (uint16_t)(data[4 + 2 * i] | data[5 + 2 * i] << 8);
    registers(regs, n, type, order);
    unsigned sn = n ? 1 + data[2] % n : 0;
    if (type == MB_TYPE_STRING && sn)
        string(regs, sn, order);
    bits(n ? regs[0] : 0, data[2] & 15, order, data[3]);
    if (size >= 12)
        encode(data + 4, data[3], type, order);
    free(regs);
    return 0;
}
