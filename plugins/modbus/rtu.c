/* Modbus RTU framing: requests with their CRC, and responses checked field by field against the
 * request they answer, so that nothing but the exact answer is ever decoded. */
#include "rtu.h"

#include <errno.h>
#include <string.h>

#include <modbus.h> /* errno values (EMBBADCRC, EMBX...) shared with the libmodbus links */

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

static size_t put16(uint8_t *p, size_t at, uint16_t v)
{
    p[at] = (uint8_t)(v >> 8);
    p[at + 1] = (uint8_t)v;
    return at + 2;
}

static uint16_t get16(const uint8_t *p)
{
    return (uint16_t)((p[0] << 8) | p[1]);
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
    adu[1] = fc;
    size_t n = put16(adu, 2, addr);
    n = put16(adu, n, count);
    return finish(adu, n);
}

size_t mb_rtu_write_request(uint8_t *adu, uint8_t unit, uint8_t fc, uint16_t addr, uint16_t count,
                            const uint8_t *bits, const uint16_t *regs)
{
    adu[0] = unit;
    adu[1] = fc;
    size_t n = put16(adu, 2, addr);
    switch (fc) {
    case MB_FC_WRITE_SINGLE_COIL:
        n = put16(adu, n, bits[0] ? 0xFF00 : 0x0000);
        break;
    case MB_FC_WRITE_SINGLE_REGISTER:
        n = put16(adu, n, regs[0]);
        break;
    case MB_FC_WRITE_MULTIPLE_COILS: {
        n = put16(adu, n, count);
        uint8_t bytes = (uint8_t)((count + 7) / 8);
        adu[n++] = bytes;
        memset(adu + n, 0, bytes);
        for (uint16_t i = 0; i < count; i++)
            if (bits[i])
                adu[n + i / 8] |= (uint8_t)(1u << (i % 8));
        n += bytes;
        break;
    }
    default: /* MB_FC_WRITE_MULTIPLE_REGISTERS */
        n = put16(adu, n, count);
        adu[n++] = (uint8_t)(2 * count);
        for (uint16_t i = 0; i < count; i++)
            n = put16(adu, n, regs[i]);
        break;
    }
    return finish(adu, n);
}

int mb_rtu_response_length(const uint8_t *req, const uint8_t *rsp, size_t have)
{
    (void)req;
    if (have < 2)
        return 0;
    uint8_t fc = rsp[1];
    if (fc & 0x80)
        return 5; /* unit, function | 0x80, exception code, CRC */
    switch (fc) {
    case MB_FC_READ_COILS:
    case MB_FC_READ_DISCRETE_INPUTS:
    case MB_FC_READ_HOLDING_REGISTERS:
    case MB_FC_READ_INPUT_REGISTERS:
        if (have < 3)
            return 0;
        return 3 + rsp[2] + 2; /* unit, function, byte count, data, CRC */
    case MB_FC_WRITE_SINGLE_COIL:
    case MB_FC_WRITE_SINGLE_REGISTER:
    case MB_FC_WRITE_MULTIPLE_COILS:
    case MB_FC_WRITE_MULTIPLE_REGISTERS:
        return 8; /* unit, function, address, value or count, CRC */
    default:
        return -1;
    }
}

static int fail(int e)
{
    errno = e;
    return -1;
}

int mb_rtu_check_response(const uint8_t *req, size_t req_len, const uint8_t *rsp, size_t len,
                          void *dest)
{
    if (len < 5 || req_len < 8)
        return fail(EMBBADDATA);
    uint16_t crc = (uint16_t)(rsp[len - 2] | (rsp[len - 1] << 8));
    if (crc != mb_rtu_crc(rsp, len - 2))
        return fail(EMBBADCRC);
    if (rsp[0] != req[0])
        return fail(EMBBADSLAVE);

    uint8_t fc = req[1];
    if (rsp[1] == (fc | 0x80)) {
        if (len != 5)
            return fail(EMBBADDATA);
        uint8_t code = rsp[2];
        if (code == 0 || code >= MODBUS_EXCEPTION_MAX)
            return fail(EMBBADEXC);
        return fail(MODBUS_ENOBASE + code);
    }
    if (rsp[1] != fc)
        return fail(EMBBADDATA);

    uint16_t addr = get16(req + 2), count = get16(req + 4);
    switch (fc) {
    case MB_FC_READ_COILS:
    case MB_FC_READ_DISCRETE_INPUTS: {
        size_t bytes = (size_t)(count + 7) / 8;
        if (rsp[2] != bytes || len != 3 + bytes + 2)
            return fail(EMBBADDATA);
        uint8_t *bits = dest;
        for (uint16_t i = 0; i < count; i++)
            bits[i] = (uint8_t)((rsp[3 + i / 8] >> (i % 8)) & 1);
        return count;
    }
    case MB_FC_READ_HOLDING_REGISTERS:
    case MB_FC_READ_INPUT_REGISTERS: {
        if (rsp[2] != 2 * (size_t)count || len != 3 + 2 * (size_t)count + 2)
            return fail(EMBBADDATA);
        uint16_t *regs = dest;
        for (uint16_t i = 0; i < count; i++)
            regs[i] = get16(rsp + 3 + 2 * i);
        return count;
    }
    default:
        /* Writes echo the address and the value (FC5/FC6) or the count (FC15/FC16): a device
         * that echoes something else did not do what was asked. */
        if (len != 8 || get16(rsp + 2) != addr || get16(rsp + 4) != count)
            return fail(EMBBADDATA);
        return (fc == MB_FC_WRITE_SINGLE_COIL || fc == MB_FC_WRITE_SINGLE_REGISTER) ? 1 : count;
    }
}
