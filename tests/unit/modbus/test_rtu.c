/* Unit tests of the RTU framing: CRC against published frames, request layouts, and responses
 * checked field by field (CRC, unit, exception, function, byte count, echo). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <modbus.h>

#include "rtu.h"

/* Frames from the Modbus over serial line specification and common references, with CRC. */
static void test_crc_known_frames(void **state)
{
    (void)state;
    /* Read holding registers: unit 1, address 0, count 10 -> CRC C5 CD (low byte first). */
    static const uint8_t read10[] = {0x01, 0x03, 0x00, 0x00, 0x00, 0x0A, 0xC5, 0xCD};
    assert_int_equal(mb_rtu_crc(read10, 6), 0xCDC5);
    assert_int_equal(mb_rtu_crc(read10, 8), 0); /* a frame with its CRC sums to 0 */
    /* Write single coil: unit 17, coil 172 on -> CRC 4E 8B. */
    static const uint8_t coil[] = {0x11, 0x05, 0x00, 0xAC, 0xFF, 0x00, 0x4E, 0x8B};
    assert_int_equal(mb_rtu_crc(coil, 8), 0);
    assert_int_equal(mb_rtu_crc(NULL, 0), 0xFFFF);
}

static void test_requests(void **state)
{
    (void)state;
    uint8_t adu[MB_RTU_MAX_ADU];
    size_t n = mb_rtu_read_request(adu, 1, MB_FC_READ_HOLDING_REGISTERS, 0, 10);
    static const uint8_t read10[] = {0x01, 0x03, 0x00, 0x00, 0x00, 0x0A, 0xC5, 0xCD};
    assert_int_equal(n, sizeof(read10));
    assert_memory_equal(adu, read10, n);

    uint8_t on = 1;
    n = mb_rtu_write_request(adu, 0x11, MB_FC_WRITE_SINGLE_COIL, 172, 1, &on, NULL);
    static const uint8_t coil[] = {0x11, 0x05, 0x00, 0xAC, 0xFF, 0x00, 0x4E, 0x8B};
    assert_int_equal(n, 8);
    assert_memory_equal(adu, coil, 8);

    uint16_t reg = 0x1234;
    n = mb_rtu_write_request(adu, 2, MB_FC_WRITE_SINGLE_REGISTER, 7, 1, NULL, &reg);
    assert_int_equal(n, 8);
    assert_int_equal(adu[4], 0x12);
    assert_int_equal(adu[5], 0x34);
    assert_int_equal(mb_rtu_crc(adu, n), 0);

    static const uint8_t bits[10] = {1, 0, 1, 1, 0, 0, 1, 1, 1, 0};
    n = mb_rtu_write_request(adu, 0x11, MB_FC_WRITE_MULTIPLE_COILS, 19, 10, bits, NULL);
    static const uint8_t coils[] = {0x11, 0x0F, 0x00, 0x13, 0x00, 0x0A, 0x02, 0xCD, 0x01};
    assert_int_equal(n, sizeof(coils) + 2);
    assert_memory_equal(adu, coils, sizeof(coils));
    assert_int_equal(mb_rtu_crc(adu, n), 0);

    static const uint16_t regs[2] = {0x000A, 0x0102};
    n = mb_rtu_write_request(adu, 0x11, MB_FC_WRITE_MULTIPLE_REGISTERS, 1, 2, NULL, regs);
    static const uint8_t wregs[] = {0x11, 0x10, 0x00, 0x01, 0x00, 0x02,
                                    0x04, 0x00, 0x0A, 0x01, 0x02};
    assert_int_equal(n, sizeof(wregs) + 2);
    assert_memory_equal(adu, wregs, sizeof(wregs));
    assert_int_equal(mb_rtu_crc(adu, n), 0);
}

static size_t with_crc(uint8_t *f, size_t n)
{
    uint16_t crc = mb_rtu_crc(f, n);
    f[n] = (uint8_t)crc;
    f[n + 1] = (uint8_t)(crc >> 8);
    return n + 2;
}

static void expect_errno(const uint8_t *req, size_t rl, const uint8_t *rsp, size_t n, int e)
{
    uint16_t dest[8];
    errno = 0;
    assert_int_equal(mb_rtu_check_response(req, rl, rsp, n, dest, NULL, 0), -1);
    if (errno != e)
        fail_msg("errno %d (%s), expected %d (%s)", errno, modbus_strerror(errno), e,
                 modbus_strerror(e));
}

static void test_responses(void **state)
{
    (void)state;
    uint8_t req[MB_RTU_MAX_ADU], rsp[MB_RTU_MAX_ADU];
    size_t rl = mb_rtu_read_request(req, 5, MB_FC_READ_HOLDING_REGISTERS, 100, 2);

    uint8_t good[] = {5, 3, 4, 0x12, 0x34, 0xAB, 0xCD, 0, 0};
    size_t n = with_crc(good, 7);
    assert_int_equal(mb_rtu_response_length(req, good, 1), 0);
    assert_int_equal(mb_rtu_response_length(req, good, 2), 0);
    assert_int_equal(mb_rtu_response_length(req, good, 3), 9);
    uint16_t regs[2];
    assert_int_equal(mb_rtu_check_response(req, rl, good, n, regs, NULL, 0), 2);
    assert_int_equal(regs[0], 0x1234);
    assert_int_equal(regs[1], 0xABCD);

    memcpy(rsp, good, n);
    rsp[4] ^= 1; /* a changed value without a new CRC */
    expect_errno(req, rl, rsp, n, EMBBADCRC);
    memcpy(rsp, good, n);
    rsp[0] = 6;
    expect_errno(req, rl, rsp, with_crc(rsp, 7), EMBBADSLAVE);
    /* What was wrong is said, for the log. */
    char why[160];
    assert_int_equal(mb_rtu_check_response(req, rl, rsp, n, regs, why, sizeof(why)), -1);
    assert_string_equal(why, "unit 6 answered, expected unit 5");
    rsp[3] ^= 1;
    assert_int_equal(mb_rtu_check_response(req, rl, rsp, n, regs, why, sizeof(why)), -1);
    assert_non_null(strstr(why, "CRC is 0x"));
    uint8_t count6[] = {5, 3, 6, 0x12, 0x34, 0xAB, 0xCD, 0, 0, 0, 0};
    assert_int_equal(
        mb_rtu_check_response(req, rl, count6, with_crc(count6, 9), regs, why, sizeof(why)), -1);
    assert_string_equal(why, "byte count 6, expected 4 for 2 registers");
    memcpy(rsp, good, n);
    rsp[1] = 4;
    expect_errno(req, rl, rsp, with_crc(rsp, 7), EMBBADDATA);
    uint8_t shortf[] = {5, 3, 2, 0x12, 0x34, 0, 0};
    expect_errno(req, rl, shortf, with_crc(shortf, 5), EMBBADDATA);

    uint8_t exc[] = {5, 0x83, 2, 0, 0};
    assert_int_equal(mb_rtu_response_length(req, exc, 2), 5);
    expect_errno(req, rl, exc, with_crc(exc, 3), EMBXILADD);
    uint8_t exc11[] = {5, 0x83, 11, 0, 0};
    expect_errno(req, rl, exc11, with_crc(exc11, 3), EMBXGTAR);
    uint8_t exc_bad[] = {5, 0x83, 0x42, 0, 0};
    expect_errno(req, rl, exc_bad, with_crc(exc_bad, 3), EMBBADEXC);
    uint8_t exc_other[] = {5, 0x84, 2, 0, 0}; /* an exception to another function */
    expect_errno(req, rl, exc_other, with_crc(exc_other, 3), EMBBADDATA);

    uint8_t unknown[] = {5, 0x2B, 0};
    assert_int_equal(mb_rtu_response_length(req, unknown, 2), -1);

    /* Bits: 10 coils in 2 bytes, least significant bit first. */
    rl = mb_rtu_read_request(req, 1, MB_FC_READ_COILS, 0, 10);
    uint8_t bits_rsp[] = {1, 1, 2, 0xCD, 0x01, 0, 0};
    n = with_crc(bits_rsp, 5);
    uint8_t bits[10];
    assert_int_equal(mb_rtu_check_response(req, rl, bits_rsp, n, bits, NULL, 0), 10);
    static const uint8_t expect_bits[10] = {1, 0, 1, 1, 0, 0, 1, 1, 1, 0};
    assert_memory_equal(bits, expect_bits, 10);

    /* Writes: the echo must repeat the address and value / count. */
    uint16_t reg = 0x1234;
    rl = mb_rtu_write_request(req, 2, MB_FC_WRITE_SINGLE_REGISTER, 7, 1, NULL, &reg);
    memcpy(rsp, req, rl);
    assert_int_equal(mb_rtu_response_length(req, rsp, 2), 8);
    assert_int_equal(mb_rtu_check_response(req, rl, rsp, rl, NULL, NULL, 0), 1);
    rsp[5] = 0x35;
    expect_errno(req, rl, rsp, with_crc(rsp, 6), EMBBADDATA);
    static const uint16_t two[2] = {1, 2};
    rl = mb_rtu_write_request(req, 2, MB_FC_WRITE_MULTIPLE_REGISTERS, 7, 2, NULL, two);
    uint8_t echo[] = {2, 0x10, 0, 7, 0, 2, 0, 0};
    assert_int_equal(mb_rtu_check_response(req, rl, echo, with_crc(echo, 6), NULL, NULL, 0), 2);
    echo[5] = 3;
    expect_errno(req, rl, echo, with_crc(echo, 6), EMBBADDATA);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crc_known_frames),
        cmocka_unit_test(test_requests),
        cmocka_unit_test(test_responses),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
