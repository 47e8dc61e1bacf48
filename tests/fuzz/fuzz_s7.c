/* libFuzzer target for the S7 plugin's decoders of outside input: TPKT headers, COTP
 * connection confirms, S7 PDUs, Setup Communication / Read Var / Write Var responses, the
 * values of every S7 type decoded from the response data, and the address parser (config
 * text). Any crash, ASan or UBSan report is a defect; nothing here may read past the input.
 *
 * Built as fuzz_s7 by tests/fuzz/meson.build (docs/fuzzing.md); the normal build replays its
 * corpus and regressions (test fuzz_s7).
 * The seed corpus holds valid frames (CC, Setup ack, Read Var ack with fill bytes and error
 * items, Write Var ack) and addresses. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "address.h"
#include "types.h"
#include "wire.h"

static void decode_values(const uint8_t *p, uint32_t len)
{
    static char text[3 * 16382 + 64];
    for (int t = 0; t < S7_T_COUNT; t++)
        for (int f = 0; f <= S7_TF_ISO; f++) {
            uint32_t length = len > 4 ? (len - 4) / 2 : 1;
            struct ib_value v;
            (void)s7_type_decode((enum s7_type)t, (enum s7_time_format)f, p, len, p[0] & 7, length,
                                 text, sizeof text, &v);
        }
}

static void frames(const uint8_t *data, size_t size)
{
    (void)s7_wire_tpkt_length(data, size);
    (void)s7_wire_cotp_cc(data, size);
    struct s7_pdu pdu;
    if (s7_wire_pdu(data, size, &pdu) != 0)
        return;
    uint16_t a, b, n;
    (void)s7_wire_setup_ack(&pdu, &a, &b, &n);
    uint8_t rc;
    (void)s7_wire_write_ack(&pdu, &rc);
    struct s7_result res[S7_MAX_ITEMS];
    for (unsigned items = 1; items <= S7_MAX_ITEMS; items++) {
        if (s7_wire_read_ack(&pdu, items, res) != 0)
            continue;
        for (unsigned i = 0; i < items; i++)
            if (res[i].rc == S7_RC_OK && res[i].len > 0)
                decode_values(res[i].data, res[i].len);
    }
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    frames(data, size);
    if (size > 0 && size < 64) {
        char text[64];
        memcpy(text, data, size);
        text[size] = '\0';
        struct s7_address a;
        char why[400];
        if (s7_address_parse(text, &a, why, sizeof why) == 0)
            (void)s7_address_format(&a, why, sizeof why);
    }
    if (size > 0)
        decode_values(data, (uint32_t)size);
    return 0;
}
