/* Unit tests of the Modbus TCP framing (mbap.c) and of the PDU checks it shares with RTU
 * (pdu.c): requests byte for byte, responses checked header first (transaction id, protocol id,
 * the length field against what came, unit) and then field by field, each refusal saying what
 * was wrong. Also every prefix and every single-byte change of a good answer: none may pass with
 * a value other than the one sent. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <modbus.h>

#include "mbap.h"
#include "pdu.h"

static void test_requests(void **state)
{
    (void)state;
    uint8_t adu[MB_MBAP_MAX_ADU];
    size_t n = mb_mbap_read_request(adu, 0x0102, 17, MB_FC_READ_HOLDING_REGISTERS, 107, 3);
    static const uint8_t read3[] = {0x01, 0x02, 0, 0, 0, 6, 17, 0x03, 0x00, 0x6B, 0x00, 0x03};
    assert_int_equal(n, sizeof(read3));
    assert_memory_equal(adu, read3, n);

    static const uint16_t regs[2] = {0x000A, 0x0102};
    n = mb_mbap_write_request(adu, 7, 1, MB_FC_WRITE_MULTIPLE_REGISTERS, 1, 2, NULL, regs);
    static const uint8_t wregs[] = {0,    7,    0,    0,    0,    11,   1,    0x10, 0x00,
                                    0x01, 0x00, 0x02, 0x04, 0x00, 0x0A, 0x01, 0x02};
    assert_int_equal(n, sizeof(wregs));
    assert_memory_equal(adu, wregs, n);
}

/* req: read 2 holding registers at 100 from unit 5, transaction id 9. */
static size_t make_req(uint8_t *req)
{
    return mb_mbap_read_request(req, 9, 5, MB_FC_READ_HOLDING_REGISTERS, 100, 2);
}

static const uint8_t good[] = {0, 9, 0, 0, 0, 7, 5, 3, 4, 0x12, 0x34, 0xAB, 0xCD};

static void expect_refused(const uint8_t *rsp, size_t n, int e, const char *why)
{
    uint8_t req[MB_MBAP_MAX_ADU];
    size_t rl = make_req(req);
    uint16_t dest[2] = {0xEEEE, 0xEEEE};
    char text[160] = "";
    errno = 0;
    assert_int_equal(mb_mbap_check_response(req, rl, rsp, n, dest, text, sizeof(text)), -1);
    if (errno != e)
        fail_msg("errno %d (%s), expected %d (%s)", errno, modbus_strerror(errno), e,
                 modbus_strerror(e));
    if (strstr(text, why) == NULL)
        fail_msg("why: '%s', expected it to say '%s'", text, why);
    assert_int_equal(dest[0], 0xEEEE); /* written only on success */
}

static void test_responses(void **state)
{
    (void)state;
    uint8_t req[MB_MBAP_MAX_ADU], rsp[MB_MBAP_MAX_ADU];
    size_t rl = make_req(req);
    uint16_t regs[2];
    assert_int_equal(mb_mbap_check_response(req, rl, good, sizeof(good), regs, NULL, 0), 2);
    assert_int_equal(regs[0], 0x1234);
    assert_int_equal(regs[1], 0xABCD);

    /* The frame's length comes from its PDU, never from the header alone. */
    for (size_t have = 0; have < 9; have++)
        assert_int_equal(mb_mbap_response_length(good, have), 0);
    assert_int_equal(mb_mbap_response_length(good, 9), 13);

    memcpy(rsp, good, sizeof(good));
    rsp[1] = 8;
    expect_refused(rsp, sizeof(good), EMBBADDATA, "transaction id 8, expected 9");
    memcpy(rsp, good, sizeof(good));
    rsp[3] = 1;
    expect_refused(rsp, sizeof(good), EMBBADDATA, "protocol id 1, expected 0");
    /* The case: the header says 46 bytes follow, the PDU is complete after 7. */
    memcpy(rsp, good, sizeof(good));
    rsp[5] = 46;
    expect_refused(rsp, sizeof(good), EMBBADDATA, "the MBAP header says 46 bytes follow, 7 came");
    rsp[4] = 1;
    rsp[5] = 0;
    expect_refused(rsp, sizeof(good), EMBBADDATA, "says 256 bytes follow");
    memcpy(rsp, good, sizeof(good));
    rsp[6] = 4;
    expect_refused(rsp, sizeof(good), EMBBADSLAVE, "unit 4 answered, expected unit 5");
    /* A consistent frame with one register fewer than asked for. */
    static const uint8_t short_rsp[] = {0, 9, 0, 0, 0, 5, 5, 3, 2, 0x12, 0x34};
    expect_refused(short_rsp, sizeof(short_rsp), EMBBADDATA, "byte count 2, expected 4");
    static const uint8_t other_fc[] = {0, 9, 0, 0, 0, 7, 5, 4, 4, 0x12, 0x34, 0xAB, 0xCD};
    expect_refused(other_fc, sizeof(other_fc), EMBBADDATA, "function 0x04 in answer to");
    static const uint8_t exc[] = {0, 9, 0, 0, 0, 3, 5, 0x83, 2};
    expect_refused(exc, sizeof(exc), EMBXILADD, "exception 2");
    static const uint8_t exc_bad[] = {0, 9, 0, 0, 0, 3, 5, 0x83, 0x42};
    expect_refused(exc_bad, sizeof(exc_bad), EMBBADEXC, "none Modbus defines");
    expect_refused(good, 7, EMBBADDATA, "shorter than a header");
    static const uint8_t unknown[] = {0, 9, 0, 0, 0, 2, 5, 0x2B};
    assert_int_equal(mb_mbap_response_length(unknown, sizeof(unknown)), -1);
}

static void test_writes(void **state)
{
    (void)state;
    uint8_t req[MB_MBAP_MAX_ADU], rsp[MB_MBAP_MAX_ADU];
    uint8_t on = 1;
    size_t rl = mb_mbap_write_request(req, 3, 1, MB_FC_WRITE_SINGLE_COIL, 172, 1, &on, NULL);
    memcpy(rsp, req, rl); /* FC5 echoes the request */
    assert_int_equal(mb_mbap_response_length(rsp, 8), (int)rl);
    assert_int_equal(mb_mbap_check_response(req, rl, rsp, rl, NULL, NULL, 0), 1);
    rsp[10] = 0x00; /* the echo says off */
    char why[160];
    assert_int_equal(mb_mbap_check_response(req, rl, rsp, rl, NULL, why, sizeof(why)), -1);
    assert_non_null(strstr(why, "echo"));
}

/* Every prefix of a good answer and every single byte of it changed (three patterns): the check
 * accepts only the whole, unchanged answer with its value, or a change it cannot see (none in
 * the header and PDU of a read: each byte is checked or is the value, which must then be the
 * changed one). Never a crash, never a read past len (ASan). */
static void test_every_change(void **state)
{
    (void)state;
    uint8_t req[MB_MBAP_MAX_ADU], rsp[sizeof(good)];
    size_t rl = make_req(req);
    uint16_t regs[2];
    for (size_t n = 0; n < sizeof(good); n++) {
        memcpy(rsp, good, n);
        assert_int_equal(mb_mbap_check_response(req, rl, rsp, n, regs, NULL, 0), -1);
    }
    static const uint8_t xors[] = {0x01, 0x80, 0xFF};
    for (size_t pos = 0; pos < sizeof(good); pos++)
        for (size_t k = 0; k < sizeof(xors); k++) {
            memcpy(rsp, good, sizeof(good));
            rsp[pos] ^= xors[k];
            int rc = mb_mbap_check_response(req, rl, rsp, sizeof(good), regs, NULL, 0);
            if (pos < 9 && rc != -1) /* header, function, byte count */
                fail_msg("byte %zu ^ 0x%02X passed", pos, xors[k]);
        }
}

static void test_pdu_lengths(void **state)
{
    (void)state;
    static const uint8_t rd[] = {3, 250};
    assert_int_equal(mb_pdu_response_length(rd, 0), 0);
    assert_int_equal(mb_pdu_response_length(rd, 1), 0);
    assert_int_equal(mb_pdu_response_length(rd, 2), 252);
    static const uint8_t ex[] = {0x90};
    assert_int_equal(mb_pdu_response_length(ex, 1), 2);
    static const uint8_t wr[] = {0x10};
    assert_int_equal(mb_pdu_response_length(wr, 1), 5);
    /* A byte count that does not fit the request is refused with both numbers. */
    uint8_t req[MB_PDU_MAX];
    size_t rl = mb_pdu_read_request(req, MB_FC_READ_COILS, 0, 10);
    static const uint8_t bits3[] = {1, 3, 0xCD, 0x01, 0x00};
    uint8_t bits[10];
    char why[160];
    assert_int_equal(mb_pdu_check_response(req, rl, bits3, sizeof(bits3), bits, why, sizeof(why)),
                     -1);
    assert_string_equal(why, "byte count 3, expected 2 for 10 bits");
    static const uint8_t bits2[] = {1, 2, 0xCD, 0x01, 0x00}; /* one byte more than it says */
    assert_int_equal(mb_pdu_check_response(req, rl, bits2, sizeof(bits2), bits, why, sizeof(why)),
                     -1);
    assert_string_equal(why, "3 bytes of data after byte count 2");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_requests),    cmocka_unit_test(test_responses),
        cmocka_unit_test(test_writes),      cmocka_unit_test(test_every_change),
        cmocka_unit_test(test_pdu_lengths),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
