/* Modbus PDUs (function code and data, the part every transport shares): building the requests
 * the plugin sends, and checking a response field by field against the request it answers, so
 * that nothing but the exact answer is ever decoded. Pure: no I/O, no allocation; every length
 * is checked before a byte is read. The fuzz targets call these on a buffer and its length. */
#ifndef IB_MODBUS_PDU_H
#define IB_MODBUS_PDU_H

#include <stddef.h>
#include <stdint.h>

#include "proto.h"

/* The longest PDU: function code and 252 bytes of data. */
#define MB_PDU_MAX 253

/* Request PDUs into pdu (MB_PDU_MAX bytes); each returns the PDU's length.
 * Reads: FC1..FC4 with count 1..2000 bits or 1..125 registers (not checked here).
 * Writes: FC5/FC6 write one value (count must be 1); FC15/FC16 write count values (1..1968 bits
 * or 1..123 registers). Bits are one byte each (0 or non-zero), as libmodbus holds them. */
size_t mb_pdu_read_request(uint8_t *pdu, uint8_t fc, uint16_t addr, uint16_t count);
size_t mb_pdu_write_request(uint8_t *pdu, uint8_t fc, uint16_t addr, uint16_t count,
                            const uint8_t *bits, const uint16_t *regs);

/* How long a response PDU is by its own description (function code, byte count), judged from its
 * first `have` bytes: the length, 0 when more bytes are needed to tell, or -1 when the function
 * code is none the plugin sends (nor its exception). */
int mb_pdu_response_length(const uint8_t *rsp, size_t have);

/* Check the response PDU rsp[0 .. len-1] against the request PDU req[0 .. req_len-1] (as built
 * above) and copy its values into dest for reads (registers as uint16_t in host order, bits one
 * byte each; dest holds the request's count, and is written only on success).
 * Returns the number of values (reads) or 1 / the written count (writes), or -1 with errno set as
 * libmodbus does: EMBXILFUN..EMBXGTAR (an exception), EMBBADEXC (an exception code Modbus does
 * not define), EMBBADDATA (another function, a byte count or length that does not fit the
 * request, a wrong echo). On failure `why` (whylen bytes, may be NULL) gets what was wrong, e.g.
 * "byte count 6, expected 8 for 4 registers". */
int mb_pdu_check_response(const uint8_t *req, size_t req_len, const uint8_t *rsp, size_t len,
                          void *dest, char *why, size_t whylen);

/* Big-endian 16-bit field at p. */
static inline uint16_t mb_get16(const uint8_t *p)
{
    return (uint16_t)((p[0] << 8) | p[1]);
}

#endif
