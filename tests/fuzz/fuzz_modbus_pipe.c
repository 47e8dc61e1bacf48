/* fuzz_modbus_pipe.c: fuzz target of the pipelined Modbus TCP receive path (plugins/modbus/pipe.c,
 * then mbap.c and pdu.c): up to 16 reads in flight, the stream's bytes fed in pieces of the
 * input's choosing, with timeouts between pieces, as link_pipe.c does on a socket. Pure: no I/O.
 * Checks: a read that succeeds returns its count; the requests in flight are those neither
 * answered nor timed out; the buffer never holds more than its size; an out-of-step stream stops.
 *
 * Input: [0] requests in flight (1 + n % 16); [1] bit i: request i reads bits (coils) instead of
 * registers; then pieces: a byte p (bit 7: expire the earliest request first; bits 0-6: the
 * piece's length) and that many bytes. Request k has transaction id 0x0100 + k, unit 1, address
 * 10 * k and count 1 + (7 * k) % 125. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "pipe.h"
#include "proto.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    return 0;
}

static struct mb_pipe pipe;
static struct mb_pipe_item items[MB_PIPE_MAX];
static uint16_t dest[MB_PIPE_MAX][2000];

static void check(uint32_t n)
{
    uint32_t busy = 0;
    for (uint32_t k = 0; k < n; k++) {
        if (!items[k].done)
            busy++;
        else if (items[k].rc >= 0 && items[k].rc != items[k].count)
            abort();
        else if (items[k].rc < 0 && items[k].err == 0)
            abort();
    }
    if (busy != pipe.n_busy || pipe.have > sizeof pipe.rx)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    uint32_t n = 1 + data[0] % MB_PIPE_MAX;
    mb_pipe_begin(&pipe);
    for (uint32_t k = 0; k < n; k++) {
        uint8_t table = (data[1] >> (k % 8)) & 1 ? MB_TABLE_COIL : MB_TABLE_HOLDING;
        uint16_t count = (uint16_t)(1 + (7 * k) % 125);
        uint8_t req[MB_MBAP_MAX_ADU];
        size_t len = mb_mbap_read_request(req, (uint16_t)(0x100 + k), 1, mb_table_read_fc(table),
                                          (uint16_t)(10 * k), count);
        items[k] = (struct mb_pipe_item){
            .table = table, .addr = (uint16_t)(10 * k), .count = count, .dest = dest[k], .rc = -1};
        if (mb_pipe_add(&pipe, k, req, len, k) < 0)
            abort();
    }
    size_t at = 2;
    while (at < size) {
        uint8_t p = data[at++];
        size_t len = p & 0x7F;
        if (len > size - at)
            len = size - at;
        if (p & 0x80)
            mb_pipe_expire(&pipe, items, mb_pipe_next_deadline(&pipe));
        uint8_t *piece = malloc(len ? len : 1); /* exact size: ASan sees any overread */
        memcpy(piece, data + at, len);
        int rc = mb_pipe_feed(&pipe, items, piece, len);
        free(piece);
        at += len;
        check(n);
        if (rc < 0)
            break;
    }
    return 0;
}
