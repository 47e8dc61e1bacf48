/* Modbus TCP framing: requests behind an MBAP header, and responses whose header (transaction
 * id, protocol id, length, unit) is checked before their PDU is checked against the request. */
#include "mbap.h"

#include <errno.h>
#include <stdio.h>

#include <modbus.h> /* errno values (EMBBADDATA, EMBBADSLAVE) shared with the libmodbus link */

#include "pdu.h"

static size_t header(uint8_t *adu, uint16_t tid, uint8_t unit, size_t pdu_len)
{
    adu[0] = (uint8_t)(tid >> 8);
    adu[1] = (uint8_t)tid;
    adu[2] = 0; /* protocol id: Modbus */
    adu[3] = 0;
    adu[4] = (uint8_t)((pdu_len + 1) >> 8); /* what follows: the unit id and the PDU */
    adu[5] = (uint8_t)(pdu_len + 1);
    adu[6] = unit;
    return MB_MBAP_HEADER + pdu_len;
}

size_t mb_mbap_read_request(uint8_t *adu, uint16_t tid, uint8_t unit, uint8_t fc, uint16_t addr,
                            uint16_t count)
{
    return header(adu, tid, unit, mb_pdu_read_request(adu + MB_MBAP_HEADER, fc, addr, count));
}

size_t mb_mbap_write_request(uint8_t *adu, uint16_t tid, uint8_t unit, uint8_t fc, uint16_t addr,
                             uint16_t count, const uint8_t *bits, const uint16_t *regs)
{
    size_t n = mb_pdu_write_request(adu + MB_MBAP_HEADER, fc, addr, count, bits, regs);
    return header(adu, tid, unit, n);
}

int mb_mbap_response_length(const uint8_t *rsp, size_t have)
{
    if (have < MB_MBAP_HEADER)
        return 0;
    int n = mb_pdu_response_length(rsp + MB_MBAP_HEADER, have - MB_MBAP_HEADER);
    return n <= 0 ? n : MB_MBAP_HEADER + n;
}

static int refuse(int e, char *why, size_t whylen, const char *text, unsigned a, unsigned b)
{
    if (why && whylen > 0)
        snprintf(why, whylen, text, a, b);
    errno = e;
    return -1;
}

int mb_mbap_check_response(const uint8_t *req, size_t req_len, const uint8_t *rsp, size_t len,
                           void *dest, char *why, size_t whylen)
{
    if (req_len < MB_MBAP_HEADER + 5)
        return refuse(EINVAL, why, whylen, "a request frame of %u bytes%.0u", (unsigned)req_len, 0);
    if (len < MB_MBAP_HEADER + 1)
        return refuse(EMBBADDATA, why, whylen,
                      "a frame of %u bytes, shorter than a header and a function code (%u)",
                      (unsigned)len, MB_MBAP_HEADER + 1);
    if (mb_get16(rsp) != mb_get16(req))
        return refuse(EMBBADDATA, why, whylen, "transaction id %u, expected %u", mb_get16(rsp),
                      mb_get16(req));
    if (mb_get16(rsp + 2) != 0)
        return refuse(EMBBADDATA, why, whylen, "protocol id %u, expected %u (Modbus)",
                      mb_get16(rsp + 2), 0);
    if (mb_get16(rsp + 4) != len - 6)
        return refuse(EMBBADDATA, why, whylen, "the MBAP header says %u bytes follow, %u came",
                      mb_get16(rsp + 4), (unsigned)(len - 6));
    if (rsp[6] != req[6])
        return refuse(EMBBADSLAVE, why, whylen, "unit %u answered, expected unit %u", rsp[6],
                      req[6]);
    return mb_pdu_check_response(req + MB_MBAP_HEADER, req_len - MB_MBAP_HEADER,
                                 rsp + MB_MBAP_HEADER, len - MB_MBAP_HEADER, dest, why, whylen);
}
