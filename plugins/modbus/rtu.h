/* Modbus RTU framing (unit id, PDU, CRC-16) for the stream link (RTU over TCP, and RTU on a
 * serial port): building request frames and checking response frames (CRC, unit, then the PDU
 * by pdu.h) against the request. Pure: no I/O; callable on a buffer and its length. */
#ifndef IB_MODBUS_RTU_H
#define IB_MODBUS_RTU_H

#include <stddef.h>
#include <stdint.h>

#include "proto.h"

/* The longest RTU frame: unit, function, 252 bytes of data, CRC. */
#define MB_RTU_MAX_ADU 256

/* CRC-16/MODBUS of p[0 .. n-1] (polynomial 0xA001 reflected, initial 0xFFFF). On the wire the
 * low byte goes first. */
uint16_t mb_rtu_crc(const uint8_t *p, size_t n);

/* Request frames into adu (MB_RTU_MAX_ADU bytes); each returns the frame's length.
 * Reads: FC1..FC4 with count 1..2000 bits or 1..125 registers (not checked here).
 * Writes: FC5/FC6 write one value (count must be 1); FC15/FC16 write count values. Bits are one
 * byte each (0 or non-zero), as libmodbus holds them. */
size_t mb_rtu_read_request(uint8_t *adu, uint8_t unit, uint8_t fc, uint16_t addr, uint16_t count);
size_t mb_rtu_write_request(uint8_t *adu, uint8_t unit, uint8_t fc, uint16_t addr, uint16_t count,
                            const uint8_t *bits, const uint16_t *regs);

/* How long the response frame to `req` is, judged from the first `have` bytes of it:
 * the total length, 0 when more bytes are needed to tell, or -1 when the bytes cannot start a
 * response to this request (an unknown function code: the caller reads until the line is quiet
 * and reports a protocol error). The length comes from the frame's own byte count, the only
 * length field RTU has; mb_rtu_check_response() then checks it against the request. */
int mb_rtu_response_length(const uint8_t *req, const uint8_t *rsp, size_t have);

/* Check a complete response frame rsp[0 .. len-1] against the request frame req[0 .. req_len-1]
 * and copy its values into dest (registers as uint16_t in host order, bits one byte each) for
 * reads. Returns the number of values (reads) or 1 / the written count (writes), or -1 with errno
 * set as libmodbus does: EMBBADCRC, EMBBADSLAVE (another unit answered), EMBXILFUN..EMBXGTAR (an
 * exception; EMBBADEXC for an unknown one), EMBBADDATA (a frame too short, wrong function, byte
 * count, length or echo). dest is written only on success. On failure `why` (whylen bytes, may
 * be NULL) gets what was wrong. */
int mb_rtu_check_response(const uint8_t *req, size_t req_len, const uint8_t *rsp, size_t len,
                          void *dest, char *why, size_t whylen);

#endif
