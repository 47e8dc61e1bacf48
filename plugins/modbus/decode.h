/* Modbus value codec: turns the registers or bits of a response into typed values, and values
 * into registers for writes, for every type and byte/word order. Pure: no I/O, no allocation. */
#ifndef IB_MODBUS_DECODE_H
#define IB_MODBUS_DECODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <ironbridge/value.h>

/* Value types of a tag. Bool lives in a coil or discrete input (one bit); bit is one bit of a
 * register; string occupies as many registers as its tag says; the others occupy 1, 2 or 4
 * consecutive registers. New types are appended only. */
enum mb_type {
    MB_TYPE_BOOL = 0,
    MB_TYPE_INT16,
    MB_TYPE_UINT16,
    MB_TYPE_INT32,
    MB_TYPE_UINT32,
    MB_TYPE_FLOAT32,
    MB_TYPE_INT64,
    MB_TYPE_UINT64,
    MB_TYPE_FLOAT64,
    MB_TYPE_BIT,    /* one bit of a register, 0 = least significant */
    MB_TYPE_STRING, /* text in N registers, two bytes each */
    MB_TYPE_COUNT,
};

/* Byte and word order of a multi-register value, named by where the bytes of the big-endian
 * value A B C D (A most significant) appear on the wire, register by register.
 * Two independent flags: MB_ORDER_WORD_SWAP reverses the order of the registers (least
 * significant word first), MB_ORDER_BYTE_SWAP swaps the two bytes inside each register.
 * For 64-bit values the same flags give ABCDEFGH, GHEFCDAB, BADCFEHG and HGFEDCBA; for 16-bit
 * values only the byte swap matters (AB or BA). */
enum mb_order {
    MB_ORDER_WORD_SWAP = 1u << 0,
    MB_ORDER_BYTE_SWAP = 1u << 1,

    MB_ORDER_ABCD = 0,                                       /* Modbus standard, big-endian */
    MB_ORDER_CDAB = MB_ORDER_WORD_SWAP,                      /* words swapped */
    MB_ORDER_BADC = MB_ORDER_BYTE_SWAP,                      /* bytes swapped in each word */
    MB_ORDER_DCBA = MB_ORDER_WORD_SWAP | MB_ORDER_BYTE_SWAP, /* little-endian */

    MB_ORDER_AB = MB_ORDER_ABCD, /* 16-bit, big-endian */
    MB_ORDER_BA = MB_ORDER_BADC, /* 16-bit, bytes swapped */
};

/* Registers a type occupies (1, 2 or 4); 1 for MB_TYPE_BOOL, which occupies one bit, and for
 * MB_TYPE_BIT; 0 for MB_TYPE_STRING, whose length is the tag's. */
unsigned mb_decode_width(enum mb_type type);

/* The enum ib_vtype a decoded value of this type carries. */
uint8_t mb_decode_vtype(enum mb_type type);

/* Config spelling of a type ("float32") and an order ("CDAB"); never NULL. */
const char *mb_decode_type_name(enum mb_type type);
const char *mb_decode_order_name(enum mb_order order);

/* Decode mb_decode_width(type) registers, as libmodbus returns them (host order), into *out.
 * Returns 0, or IB_ERR_INVALID when the type is not a register type or the registers hold a
 * float NaN or infinity (the caller reports a decode error; *out is then IB_V_NONE). */
int mb_decode_registers(const uint16_t *regs, enum mb_type type, enum mb_order order,
                        struct ib_value *out);

/* Decode one bit of a coil or discrete input (libmodbus gives one byte per bit). */
void mb_decode_bit(uint8_t bit, struct ib_value *out);

/* Bit `bit` (0..15, 0 = least significant) of a register whose two bytes arrive in `order`
 * (MB_ORDER_AB or MB_ORDER_BA), as IB_V_BOOL. */
void mb_decode_reg_bit(uint16_t reg, unsigned bit, enum mb_order order, struct ib_value *out);

/* The register `reg` (as read, in `order`) with bit `bit` set to `on`, for a read-modify-write. */
uint16_t mb_encode_reg_bit(uint16_t reg, unsigned bit, bool on, enum mb_order order);

/* Bytes of output mb_decode_string() may write for n registers: an invalid UTF-8 byte becomes
 * the three bytes of U+FFFD. */
#define MB_STRING_CAP(n) ((size_t)(n)*6)

/* The most registers a string tag may have (the schema's `length`: one read request). */
#define MB_STRING_MAX_REGS 125

/* Decode n registers as text. Each register holds two bytes, the first one in its high byte
 * (MB_ORDER_AB) or in its low byte (MB_ORDER_BA). The text ends at the first NUL byte, trailing
 * spaces are trimmed, and each byte that is not part of valid UTF-8 becomes U+FFFD, so that the
 * value is always valid UTF-8. Writes at most MB_STRING_CAP(n) bytes to out (no NUL terminator)
 * and returns how many; sets *out_value to an IB_V_STRING pointing at out. */
uint32_t mb_decode_string(const uint16_t *regs, unsigned n, enum mb_order order, char *out,
                          struct ib_value *out_value);

/* Decode a value straight from response bytes p[0 .. len-1], checking len first: the registers
 * as they arrive on the wire (two bytes each, high byte first), or for MB_TYPE_BOOL one byte per
 * bit as libmodbus and the framings hold them (non-zero: on). A type needs mb_decode_width(type)
 * registers (BOOL: 1 byte; BIT: 1 register and bit 0..15; STRING: len / 2 registers, at least
 * 1 and at most MB_STRING_MAX_REGS, into text of text_cap >= MB_STRING_CAP(len / 2) bytes,
 * which *out then points into).
 * Every type and every order: the order must be one of MB_ORDER_*; a 16-bit type, BIT and
 * STRING take AB or BA only, as the configuration does. Returns 0, or IB_ERR_INVALID (too
 * short, an unknown type or order, a bit past 15, text too small, a NaN or infinity), *out then
 * IB_V_NONE. Pure: no allocation; what a fuzzer calls on a buffer and its length. */
int mb_decode_wire(const uint8_t *p, size_t len, enum mb_type type, enum mb_order order,
                   unsigned bit, char *text, size_t text_cap, struct ib_value *out);

/* Encode *in into mb_decode_width(type) registers for a write. The value may come as
 * IB_V_INT, IB_V_UINT or IB_V_DOUBLE (an integral one for integer types); it must fit the type.
 * Returns 0, or IB_ERR_INVALID (wrong value type, out of range, NaN/infinity, not an integer
 * for an integer type, or a non-register type); regs is then left unchanged. */
int mb_encode_registers(const struct ib_value *in, enum mb_type type, enum mb_order order,
                        uint16_t *regs);

/* Encode *in into a coil state: IB_V_BOOL, or IB_V_INT/IB_V_UINT 0 or 1.
 * Returns 0 or IB_ERR_INVALID. */
int mb_encode_bit(const struct ib_value *in, uint8_t *bit);

#endif
