/* Modbus RTU framing: requests with their CRC, and responses checked for length, CRC and unit
 * before their PDU is checked against the request (pdu.c). */
#include "rtu.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <modbus.h> /* errno values (EMBBADCRC, EMBX...) shared with the libmodbus link */

#include "pdu.h"

uint16_t mb_rtu_crc(const uint8_t *p, size_t n)
{
    uint16_t crc = 0xFFFF;
    for (size_t i = 0; i < n; i++) {
        crc ^= p[i];
        for (int b = 0; b < 8; b++)
            crc = (crc & 1) ? (uint16_t)((crc >> 1) ^ 0xA001) : (uint16_t)(crc >> 1);
    }
    return crc;
}

static size_t finish(uint8_t *adu, size_t n)
{
    uint16_t crc = mb_rtu_crc(adu, n);
    adu[n] = (uint8_t)crc; /* low byte first */
    adu[n + 1] = (uint8_t)(crc >> 8);
    return n + 2;
}

size_t mb_rtu_read_request(uint8_t *adu, uint8_t unit, uint8_t fc, uint16_t addr, uint16_t count)
{
    adu[0] = unit;
    return finish(adu, 1 + mb_pdu_read_request(adu + 1, fc, addr, count));
}

size_t mb_rtu_write_request(uint8_t *adu, uint8_t unit, uint8_t fc, uint16_t addr, uint16_t count,
                            const uint8_t *bits, const uint16_t *regs)
{
    adu[0] = unit;
    return finish(adu, 1 + mb_pdu_write_request(adu + 1, fc, addr, count, bits, regs));
}

int mb_rtu_response_length(const uint8_t *req, const uint8_t *rsp, size_t have)
{
    (void)req;
    if (have < 2)
        return 0;
    int n = mb_pdu_response_length(rsp + 1, have - 1);
    return n <= 0 ? n : 1 + n + 2; /* unit, PDU, CRC */
}

static int refuse(int e, char *why, size_t whylen, const char *text, size_t a, size_t b)
{
    if (why && whylen > 0)
        snprintf(why, whylen, text, a, b);
    errno = e;
    return -1;
}

int mb_rtu_check_response(const uint8_t *req, size_t req_len, const uint8_t *rsp, size_t len,
                          void *dest, char *why, size_t whylen)
{
    if (req_len < 8)
        return refuse(EINVAL, why, whylen, "a request frame of %zu bytes%.0zu", req_len, 0);
    if (len < 5)
        return refuse(EMBBADDATA, why, whylen,
                      "a frame of %zu bytes, shorter than the shortest response (%zu)", len, 5);
    uint16_t crc = (uint16_t)(rsp[len - 2] | (rsp[len - 1] << 8));
    if (crc != mb_rtu_crc(rsp, len - 2))
        return refuse(EMBBADCRC, why, whylen, "the frame's CRC is 0x%04zX, its bytes give 0x%04zX",
                      crc, mb_rtu_crc(rsp, len - 2));
    if (rsp[0] != req[0])
        return refuse(EMBBADSLAVE, why, whylen, "unit %zu answered, expected unit %zu", rsp[0],
                      req[0]);
    return mb_pdu_check_response(req + 1, req_len - 3, rsp + 1, len - 3, dest, why, whylen);
}
