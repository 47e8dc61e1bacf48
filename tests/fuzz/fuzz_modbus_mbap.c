/* fuzz_modbus_mbap.c: fuzz target of Modbus TCP response frames (plugins/modbus/mbap.c, then
 * pdu.c): the frame length judged byte by byte as link_stream.c receives
 * (mb_mbap_response_length), then the complete frame checked against the request
 * (mb_mbap_check_response). Pure: no I/O. The modbus_tcp target drives the same code through the
 * link on a socket.
 *
 * Input: [0] bits 0-2 the request's function (FC1-4 reads, FC5/6/15/16 writes), bit 3 keep the
 * transaction id as given (else the request's is copied in), bit 4 keep the header's length
 * field as given (else it is set to the bytes that follow it); [1] unit; [2..3] count;
 * [4..5] address; then the frame. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "mbap.h"

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
    uint8_t req[MB_MBAP_MAX_ADU];
    uint16_t tid = (uint16_t)(0x1200 + addr % 256);
    size_t req_len = sel < 4 ? mb_mbap_read_request(req, tid, unit, fc, addr, count)
                             : mb_mbap_write_request(req, tid, unit, fc, addr, count, bits, regs);
    if (req_len < MB_MBAP_HEADER + 1 || req_len > MB_MBAP_MAX_ADU)
        abort();

    size_t len = size - 6;
    uint8_t *rsp = malloc(len ? len : 1);
    memcpy(rsp, data + 6, len);
    if (!(data[0] & 8) && len >= 2)
        memcpy(rsp, req, 2);
    /* As link_stream.c: read until the length is known, never past the frame. */
    size_t have = 0, need = 2;
    int flen = 0;
    while (have < need && have < len) {
        have++;
        flen = mb_mbap_response_length(rsp, have);
        if (flen < 0 || flen > MB_MBAP_MAX_ADU)
            break;
        need = flen > 0 ? (size_t)flen : have + 1;
    }
    if (flen > 0 && flen <= MB_MBAP_MAX_ADU && (size_t)flen <= len) {
        if (!(data[0] & 16) && flen >= 6) {
            rsp[4] = (uint8_t)((flen - 6) >> 8);
            rsp[5] = (uint8_t)(flen - 6);
        }
        uint8_t *frame = malloc((size_t)flen); /* exact size: a read past it is caught */
        memcpy(frame, rsp, (size_t)flen);
        size_t dest_size = sel < 2 ? count : sel < 4 ? 2u * count : 1;
        void *dest = malloc(dest_size);
        char why[256];
        int rc = mb_mbap_check_response(req, req_len, frame, (size_t)flen, sel < 4 ? dest : NULL,
                                        why, sizeof why);
        if (rc >= 0 && rc != (sel == 4 || sel == 5 ? 1 : count)) {
            fprintf(stderr, "fuzz_modbus_mbap: success with %d values, %u asked\n", rc, count);
            abort();
        }
        if (rc < 0 && strnlen(why, sizeof why) == sizeof why)
            abort(); /* the reason is a C string */
        free(dest);
        free(frame);
    }
    /* The whole input as one frame too. */
    if (len <= MB_MBAP_MAX_ADU) {
        static uint8_t dest[4096];
        (void)mb_mbap_check_response(req, req_len, rsp, len, sel < 4 ? dest : NULL, NULL, 0);
    }
    free(rsp);
    return 0;
}
