/* Modbus PDUs: requests built, responses checked against their request (function, exception,
 * byte count, length, echoes). Pure; shared by the RTU and the MBAP framings. */
#include "pdu.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <modbus.h> /* errno values (EMBBADDATA, EMBX...) shared with the libmodbus link */

static size_t put16(uint8_t *p, size_t at, uint16_t v)
{
    p[at] = (uint8_t)(v >> 8);
    p[at + 1] = (uint8_t)v;
    return at + 2;
}

size_t mb_pdu_read_request(uint8_t *pdu, uint8_t fc, uint16_t addr, uint16_t count)
{
    pdu[0] = fc;
    size_t n = put16(pdu, 1, addr);
    return put16(pdu, n, count);
}

size_t mb_pdu_write_request(uint8_t *pdu, uint8_t fc, uint16_t addr, uint16_t count,
                            const uint8_t *bits, const uint16_t *regs)
{
    pdu[0] = fc;
    size_t n = put16(pdu, 1, addr);
    switch (fc) {
    case MB_FC_WRITE_SINGLE_COIL:
        return put16(pdu, n, bits[0] ? 0xFF00 : 0x0000);
    case MB_FC_WRITE_SINGLE_REGISTER:
        return put16(pdu, n, regs[0]);
    case MB_FC_WRITE_MULTIPLE_COILS: {
        n = put16(pdu, n, count);
        uint8_t bytes = (uint8_t)((count + 7) / 8);
        pdu[n++] = bytes;
        memset(pdu + n, 0, bytes);
        for (uint16_t i = 0; i < count; i++)
            if (bits[i])
                pdu[n + i / 8] |= (uint8_t)(1u << (i % 8));
        return n + bytes;
    }
    default: /* MB_FC_WRITE_MULTIPLE_REGISTERS */
        n = put16(pdu, n, count);
        pdu[n++] = (uint8_t)(2 * count);
        for (uint16_t i = 0; i < count; i++)
            n = put16(pdu, n, regs[i]);
        return n;
    }
}

int mb_pdu_response_length(const uint8_t *rsp, size_t have)
{
    if (have < 1)
        return 0;
    uint8_t fc = rsp[0];
    if (fc & 0x80)
        return 2; /* function | 0x80, exception code */
    switch (fc) {
    case MB_FC_READ_COILS:
    case MB_FC_READ_DISCRETE_INPUTS:
    case MB_FC_READ_HOLDING_REGISTERS:
    case MB_FC_READ_INPUT_REGISTERS:
        if (have < 2)
            return 0;
        return 2 + rsp[1]; /* function, byte count, data */
    case MB_FC_WRITE_SINGLE_COIL:
    case MB_FC_WRITE_SINGLE_REGISTER:
    case MB_FC_WRITE_MULTIPLE_COILS:
    case MB_FC_WRITE_MULTIPLE_REGISTERS:
        return 5; /* function, address, value or count */
    default:
        return -1;
    }
}

__attribute__((format(printf, 4, 5))) static int refuse(int e, char *why, size_t whylen,
                                                        const char *fmt, ...)
{
    if (why && whylen > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(why, whylen, fmt, ap);
        va_end(ap);
    }
    errno = e;
    return -1;
}

static int check_exception(uint8_t fc, const uint8_t *rsp, size_t len, char *why, size_t whylen)
{
    if (len != 2)
        return refuse(EMBBADDATA, why, whylen,
                      "an exception response (function 0x%02X) of %zu bytes, not 2", rsp[0], len);
    uint8_t code = rsp[1];
    if (code == 0 || code >= MODBUS_EXCEPTION_MAX)
        return refuse(EMBBADEXC, why, whylen,
                      "exception code %u to function %u is none Modbus defines", code, fc);
    return refuse(MODBUS_ENOBASE + code, why, whylen, "exception %u", code);
}

/* A read's data: byte count and length against the request's count. */
static int check_read(uint8_t fc, uint16_t count, const uint8_t *rsp, size_t len, void *dest,
                      char *why, size_t whylen)
{
    bool bits = fc == MB_FC_READ_COILS || fc == MB_FC_READ_DISCRETE_INPUTS;
    size_t bytes = bits ? (size_t)(count + 7) / 8 : 2 * (size_t)count;
    if (len < 2)
        return refuse(EMBBADDATA, why, whylen, "a response of %zu byte(s) with no byte count", len);
    if (rsp[1] != bytes)
        return refuse(EMBBADDATA, why, whylen, "byte count %u, expected %zu for %u %s", rsp[1],
                      bytes, count, bits ? "bits" : "registers");
    if (len != 2 + bytes)
        return refuse(EMBBADDATA, why, whylen, "%zu bytes of data after byte count %u", len - 2,
                      rsp[1]);
    if (bits) {
        uint8_t *out = dest;
        for (uint16_t i = 0; i < count; i++)
            out[i] = (uint8_t)((rsp[2 + i / 8] >> (i % 8)) & 1);
    } else {
        uint16_t *out = dest;
        for (uint16_t i = 0; i < count; i++)
            out[i] = mb_get16(rsp + 2 + 2 * i);
    }
    return count;
}

int mb_pdu_check_response(const uint8_t *req, size_t req_len, const uint8_t *rsp, size_t len,
                          void *dest, char *why, size_t whylen)
{
    if (req_len < 5)
        return refuse(EINVAL, why, whylen, "a request of %zu bytes", req_len);
    if (len < 1)
        return refuse(EMBBADDATA, why, whylen, "an empty response");
    uint8_t fc = req[0];
    if (rsp[0] == (fc | 0x80))
        return check_exception(fc, rsp, len, why, whylen);
    if (rsp[0] != fc)
        return refuse(EMBBADDATA, why, whylen, "function 0x%02X in answer to function 0x%02X",
                      rsp[0], fc);
    uint16_t addr = mb_get16(req + 1), value = mb_get16(req + 3);
    switch (fc) {
    case MB_FC_READ_COILS:
    case MB_FC_READ_DISCRETE_INPUTS:
    case MB_FC_READ_HOLDING_REGISTERS:
    case MB_FC_READ_INPUT_REGISTERS:
        return check_read(fc, value, rsp, len, dest, why, whylen);
    default:
        /* Writes echo the address and the value (FC5/FC6) or the count (FC15/FC16): a device
         * that echoes something else did not do what was asked. */
        if (len != 5)
            return refuse(EMBBADDATA, why, whylen, "a write response of %zu bytes, not 5", len);
        if (mb_get16(rsp + 1) != addr || mb_get16(rsp + 3) != value)
            return refuse(EMBBADDATA, why, whylen,
                          "the write's echo says address %u and %u, expected %u and %u",
                          mb_get16(rsp + 1), mb_get16(rsp + 3), addr, value);
        return (fc == MB_FC_WRITE_SINGLE_COIL || fc == MB_FC_WRITE_SINGLE_REGISTER) ? 1 : value;
    }
}
