/* Modbus TCP framing (MBAP header: transaction id, protocol id, length, unit id; then the PDU)
 * for the stream link: building request frames and checking response frames (transaction id,
 * protocol, the header's length against what came, unit, then the PDU by pdu.h) against the
 * request. Pure: no I/O; callable on a buffer and its length. */
#ifndef IB_MODBUS_MBAP_H
#define IB_MODBUS_MBAP_H

#include <stddef.h>
#include <stdint.h>

#include "proto.h"

#define MB_MBAP_HEADER 7 /* transaction id, protocol id, length, unit id */
/* The longest Modbus TCP frame: the header and the longest PDU. */
#define MB_MBAP_MAX_ADU 260

/* Request frames into adu (MB_MBAP_MAX_ADU bytes) with transaction id tid; each returns the
 * frame's length. Arguments as mb_pdu_read_request() and mb_pdu_write_request(). */
size_t mb_mbap_read_request(uint8_t *adu, uint16_t tid, uint8_t unit, uint8_t fc, uint16_t addr,
                            uint16_t count);
size_t mb_mbap_write_request(uint8_t *adu, uint16_t tid, uint8_t unit, uint8_t fc, uint16_t addr,
                             uint16_t count, const uint8_t *bits, const uint16_t *regs);

/* How long the response frame is, judged from its first `have` bytes: the header and the PDU as
 * the PDU describes itself (function code, byte count), 0 when more bytes are needed to tell, or
 * -1 when the function code is none the plugin sends. The header's own length field is not
 * trusted for this: a frame whose header disagrees with its PDU is complete when the PDU is, and
 * mb_mbap_check_response() then refuses it at once (no wait for bytes that never come). */
int mb_mbap_response_length(const uint8_t *rsp, size_t have);

/* Check a complete response frame rsp[0 .. len-1] against the request frame req[0 .. req_len-1]
 * and copy its values into dest as mb_pdu_check_response() does. Returns what that returns, or
 * -1 with errno EMBBADDATA (a frame shorter than a header and a function code, another
 * transaction id, a protocol id other than 0, a length field other than the bytes that follow
 * it) or EMBBADSLAVE (another unit id). On failure `why` (whylen bytes, may be NULL) gets what
 * was wrong, e.g. "transaction id 7, expected 12" or "the MBAP header says 46 bytes follow, 9
 * came". */
int mb_mbap_check_response(const uint8_t *req, size_t req_len, const uint8_t *rsp, size_t len,
                           void *dest, char *why, size_t whylen);

#endif
