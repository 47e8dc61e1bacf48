/* fuzz_modbus_rtu.c: fuzz target of Modbus RTU response frames (plugins/modbus/rtu.c): the frame
 * length judged byte by byte as link_rtu_tcp.c receives (mb_rtu_response_length), then the
 * complete frame checked against the request (mb_rtu_check_response, then pdu.c's checks). Pure:
 * no I/O.
 *
 * Input: [0] bits 0-2 the request's function (FC1-4 reads, FC5/6/15/16 writes), bit 3 leave the
 * CRC as given (else it is made valid); [1] unit; [2..3] count; [4..5] address; then the frame. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "rtu.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    return 0;
}

static const uint8_t fcs[8] = {
    MB_FC_READ_COILS,           MB_FC_READ_DISCRETE_INPUTS,    MB_FC_READ_HOLDING_REGISTERS,
    MB_FC_READ_INPUT_REGISTERS, MB_FC_WRITE_SINGLE_COIL,       MB_FC_WRITE_SINGLE_REGISTER,
    MB_FC_WRITE_MULTIPLE_COILS, MB_FC_WRITE_MULTIPLE_REGISTERS};
static const uint16_t max_count[8] = {2000, 2000, 125, 125, 1, 1, 1968, 123};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 6)
        return 0;
    unsigned sel = data[0] & 7;
    uint8_t fc = fcs[sel], unit = data[1];
    uint16_t count = (uint16_t)(1 + (data[2] | data[3] << 8) % max_count[sel]);
    uint16_t addr = (uint16_t)(data[4] | data[5] << 8);
    static uint16_t regs[2048];
    static uint8_t bits[2048];
    uint8_t req[MB_RTU_MAX_ADU];
    size_t req_len = sel < 4 ? mb_rtu_read_request(req, unit, fc, addr, count)
                             : mb_rtu_write_request(req, unit, fc, addr, count, bits, regs);
    if (req_len > MB_RTU_MAX_ADU || mb_rtu_crc(req, req_len) != 0) /* a frame's CRC checks to 0 */
        abort();

    size_t len = size - 6;
    uint8_t *rsp = malloc(len ? len : 1);
    memcpy(rsp, data + 6, len);
    /* As link_rtu_tcp.c's transact(): read until the length is known, never past the frame. */
    size_t have = 0, need = 2;
    int flen = 0;
    while (have < need && have < len) {
        have++;
        flen = mb_rtu_response_length(req, rsp, have);
        if (flen < 0 || flen > MB_RTU_MAX_ADU)
            break;
        need = flen > 0 ? (size_t)flen : have + 1;
    }
    if (flen > 0 && flen <= MB_RTU_MAX_ADU && (size_t)flen <= len) {
        if (!(data[0] & 8) && flen >= 4) {
            uint16_t crc = mb_rtu_crc(rsp, (size_t)flen - 2);
            rsp[flen - 2] = (uint8_t)crc;
            rsp[flen - 1] = (uint8_t)(crc >> 8);
        }
        /* An exact-size copy of the frame: dest is as large as the count asks, no more. */
        uint8_t *frame = malloc((size_t)flen);
        memcpy(frame, rsp, (size_t)flen);
        size_t dest_size = sel < 2 ? count : sel < 4 ? 2u * count : 1;
        void *dest = malloc(dest_size);
        char why[256];
        int rc = mb_rtu_check_response(req, req_len, frame, (size_t)flen, sel < 4 ? dest : NULL,
                                       why, sizeof why);
        if (rc >= 0 && rc != (sel == 4 || sel == 5 ? 1 : count)) {
            fprintf(stderr, "fuzz_modbus_rtu: success with %d values, %u asked\n", rc, count);
            abort();
        }
        free(dest);
        free(frame);
    }
    /* The whole input as one frame too (what a caller with its own framing would pass). */
    if (len <= MB_RTU_MAX_ADU) {
        static uint8_t dest[4096];
        (void)mb_rtu_check_response(req, req_len, rsp, len, sel < 4 ? dest : NULL, NULL, 0);
    }
    free(rsp);
    return 0;
}
