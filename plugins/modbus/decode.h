/* Modbus value codec: turns the registers or bits of a response into typed values, and values
 * into registers for writes, for every type and byte/word order. Pure: no I/O, no allocation. */
#ifndef IB_MODBUS_DECODE_H
#define IB_MODBUS_DECODE_H

#include <stdint.h>

#include <ironbridge/value.h>

/* Value types of a tag. Bool lives in a coil or discrete input (one bit); the others occupy 1, 2
 * or 4 consecutive registers. */
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

/* Registers a type occupies (1, 2 or 4); 1 for MB_TYPE_BOOL, which occupies one bit. */
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
