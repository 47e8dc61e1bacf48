/* Unit tests of the S7 types: sizes and width rules, decoding of every type from PLC bytes
 * (including BCD, calendar and string checks that make a value a decode error), and encoding
 * with range checks, round trips included. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "address.h"
#include "types.h"

#define WHEN_MS 1714566896789LL /* 2024-05-01T12:34:56.789 */
#define DAY_MS  1714521600000LL /* 2024-05-01 */

static char text[1024];

static struct ib_value dec(enum s7_type t, const uint8_t *p, uint32_t len, uint8_t bit,
                           uint32_t length, enum s7_time_format f, int want_rc)
{
    struct ib_value v;
    int rc = s7_type_decode(t, f, p, len, bit, length, text, sizeof text, &v);
    assert_int_equal(rc, want_rc);
    return v;
}

static void numbers(void **state)
{
    (void)state;
    static const uint8_t b[] = {0xA5, 0xFF, 0xFF, 0xFF, 0xFE, 0x12, 0x34, 0x56, 0x78};
    for (uint8_t bit = 0; bit < 8; bit++)
        assert_int_equal(dec(S7_T_BOOL, b, 1, bit, 0, 0, 0).v.b, (0xA5 >> bit) & 1);
    assert_int_equal(dec(S7_T_BYTE, b, 1, 0, 0, 0, 0).v.u, 0xA5);
    assert_int_equal(dec(S7_T_SINT, b, 1, 0, 0, 0, 0).v.i, -91);
    assert_int_equal(dec(S7_T_INT, b + 3, 2, 0, 0, 0, 0).v.i, -2);
    assert_int_equal(dec(S7_T_WORD, b + 3, 2, 0, 0, 0, 0).v.u, 0xFFFE);
    assert_int_equal(dec(S7_T_DINT, b + 1, 4, 0, 0, 0, 0).v.i, -2);
    assert_int_equal(dec(S7_T_UDINT, b + 5, 4, 0, 0, 0, 0).v.u, 0x12345678);
    assert_int_equal(dec(S7_T_LINT, b + 1, 8, 0, 0, 0, 0).v.i, (int64_t)0xFFFFFFFE12345678LL);
    static const uint8_t r[] = {0x40, 0x49, 0x0F, 0xD0};
    struct ib_value v = dec(S7_T_REAL, r, 4, 0, 0, 0, 0);
    assert_int_equal(v.flags, IB_VF_FLOAT32);
    assert_true(fabs(v.v.d - 3.14159) < 1e-6);
    static const uint8_t lr[] = {0x40, 0x05, 0xBF, 0x0A, 0x8B, 0x14, 0x57, 0x69};
    assert_true(dec(S7_T_LREAL, lr, 8, 0, 0, 0, 0).v.d == 2.718281828459045);
    /* too few bytes */
    dec(S7_T_DINT, b, 3, 0, 0, 0, -1);
}

static void strings(void **state)
{
    (void)state;
    static const uint8_t s[] = {10, 5, 'h', 'e', 'l', 'l', 'o', 0, 0, 0, 0, 0};
    struct ib_value v = dec(S7_T_STRING, s, sizeof s, 0, 10, 0, 0);
    assert_int_equal(v.v.s.len, 5);
    assert_memory_equal(v.v.s.ptr, "hello", 5);
    static const uint8_t latin[] = {4, 3, 'G', 0xFC, 'n', 0, 0, 0};
    v = dec(S7_T_STRING, latin, 6, 0, 4, 0, 0);
    assert_int_equal(v.v.s.len, 4);
    assert_memory_equal(v.v.s.ptr, "G\xc3\xbcn", 4);
    static const uint8_t over[] = {4, 5, 'a', 'b', 'c', 'd', 'e', 0};
    dec(S7_T_STRING, over, 6, 0, 4, 0, -1); /* current length past the maximum */
    static const uint8_t longer[] = {20, 6, 'a', 'b', 'c', 'd', 'e', 'f'};
    dec(S7_T_STRING, longer, 6, 0, 4, 0, -1); /* longer than the declared length read */
    static const uint8_t ws[] = {0, 4, 0, 3, 0, 'G', 0, 0xFC, 0x20, 0xAC, 0, 0};
    v = dec(S7_T_WSTRING, ws, sizeof ws, 0, 4, 0, 0);
    assert_int_equal(v.v.s.len, 6);
    assert_memory_equal(v.v.s.ptr, "G\xc3\xbc\xe2\x82\xac", 6);
    static const uint8_t pair[] = {0, 2, 0, 2, 0xD8, 0x3D, 0xDE, 0x00};
    v = dec(S7_T_WSTRING, pair, sizeof pair, 0, 2, 0, 0);
    assert_memory_equal(v.v.s.ptr, "\xf0\x9f\x98\x80", 4);
    static const uint8_t lone[] = {0, 1, 0, 1, 0xDC, 0x00};
    v = dec(S7_T_WSTRING, lone, sizeof lone, 0, 1, 0, 0);
    assert_memory_equal(v.v.s.ptr, "\xef\xbf\xbd", 3);
    static const uint8_t c = 'Z';
    v = dec(S7_T_CHAR, &c, 1, 0, 0, 0, 0);
    assert_int_equal(v.type, IB_V_STRING);
    assert_int_equal(v.v.s.ptr[0], 'Z');
}

static void times(void **state)
{
    (void)state;
    static const uint8_t s5[] = {0x21, 0x23};
    assert_int_equal(dec(S7_T_S5TIME, s5, 2, 0, 0, 0, 0).v.u, 123000);
    static const uint8_t s5bad[] = {0x2A, 0x23};
    dec(S7_T_S5TIME, s5bad, 2, 0, 0, 0, -1);
    static const uint8_t cnt[] = {0x09, 0x99};
    assert_int_equal(dec(S7_T_COUNTER, cnt, 2, 0, 0, 0, 0).v.u, 999);
    static const uint8_t date[] = {0x30, 0xFB}; /* 12539 days after 1990-01-01 */
    assert_int_equal(dec(S7_T_DATE, date, 2, 0, 0, S7_TF_MS, 0).v.i, DAY_MS);
    struct ib_value v = dec(S7_T_DATE, date, 2, 0, 0, S7_TF_ISO, 0);
    assert_int_equal(v.v.s.len, 10);
    assert_memory_equal(v.v.s.ptr, "2024-05-01", 10);
    static const uint8_t tod[] = {0x02, 0xB3, 0x2C, 0x95}; /* 45296789 ms */
    assert_int_equal(dec(S7_T_TIME_OF_DAY, tod, 4, 0, 0, S7_TF_MS, 0).v.i, 45296789);
    v = dec(S7_T_TIME_OF_DAY, tod, 4, 0, 0, S7_TF_ISO, 0);
    assert_memory_equal(v.v.s.ptr, "12:34:56.789", 12);
    static const uint8_t dt[] = {0x24, 0x05, 0x01, 0x12, 0x34, 0x56, 0x78, 0x94};
    assert_int_equal(dec(S7_T_DATE_AND_TIME, dt, 8, 0, 0, S7_TF_MS, 0).v.i, WHEN_MS);
    v = dec(S7_T_DATE_AND_TIME, dt, 8, 0, 0, S7_TF_ISO, 0);
    assert_memory_equal(v.v.s.ptr, "2024-05-01T12:34:56.789", 23);
    static const uint8_t dt90[] = {0x90, 0x01, 0x01, 0x00, 0x00, 0x00, 0x00, 0x02};
    assert_int_equal(dec(S7_T_DATE_AND_TIME, dt90, 8, 0, 0, S7_TF_MS, 0).v.i, 631152000000LL);
    static const uint8_t dtbad[] = {0x23, 0x02, 0x29, 0x00, 0x00, 0x00, 0x00, 0x02};
    dec(S7_T_DATE_AND_TIME, dtbad, 8, 0, 0, S7_TF_MS, -1); /* 29 February 2023 */
    static const uint8_t dtl[] = {0x07, 0xE8, 5, 1, 4, 12, 34, 56, 0x2F, 0x07, 0x2F, 0x40};
    assert_int_equal(dec(S7_T_DTL, dtl, 12, 0, 0, S7_TF_MS, 0).v.i, WHEN_MS);
    static const uint8_t dtlbad[] = {0x07, 0xE8, 13, 1, 4, 12, 34, 56, 0, 0, 0, 0};
    dec(S7_T_DTL, dtlbad, 12, 0, 0, S7_TF_MS, -1);
    static const uint8_t t[] = {0xFF, 0xFF, 0xEC, 0x78};
    assert_int_equal(dec(S7_T_TIME, t, 4, 0, 0, 0, 0).v.i, -5000);
}

static void widths(void **state)
{
    (void)state;
    const char *hint;
    assert_true(s7_type_fits(S7_T_BOOL, S7_W_BIT, &hint));
    assert_false(s7_type_fits(S7_T_INT, S7_W_BIT, &hint));
    assert_true(s7_type_fits(S7_T_LREAL, S7_W_BYTE, &hint));
    assert_true(s7_type_fits(S7_T_STRING, S7_W_BYTE, &hint));
    assert_false(s7_type_fits(S7_T_REAL, S7_W_BYTE, &hint));
    assert_non_null(strstr(hint, "byte address"));
    assert_true(s7_type_fits(S7_T_REAL, S7_W_DWORD, &hint));
    assert_false(s7_type_fits(S7_T_LINT, S7_W_DWORD, &hint));
    assert_true(s7_type_fits(S7_T_S5TIME, S7_W_WORD, &hint));
    assert_true(s7_type_fits(S7_T_S5TIME, S7_W_TIMER, &hint));
    assert_false(s7_type_fits(S7_T_COUNTER, S7_W_WORD, &hint));
    assert_int_equal(s7_type_default(S7_W_TIMER), S7_T_S5TIME);
    assert_int_equal(s7_type_size(S7_T_STRING, 254), 256);
    assert_int_equal(s7_type_size(S7_T_WSTRING, 10), 24);
    assert_int_equal(s7_type_size(S7_T_DTL, 0), 12);
}

static void enc_ok(enum s7_type t, struct ib_value v, const uint8_t *want, size_t n)
{
    uint8_t out[16];
    const char *why = "";
    if (s7_type_encode(t, &v, out, &why) != 0)
        fail_msg("%s refused: %s", s7_type_names[t], why);
    assert_memory_equal(out, want, n);
}

static void enc_refused(enum s7_type t, struct ib_value v)
{
    uint8_t out[16];
    const char *why = "";
    if (s7_type_encode(t, &v, out, &why) == 0)
        fail_msg("%s accepted", s7_type_names[t]);
    assert_true(why[0] != '\0');
}

#define I(x) ((struct ib_value){.type = IB_V_INT, .v.i = (x)})
#define U(x) ((struct ib_value){.type = IB_V_UINT, .v.u = (x)})
#define D(x) ((struct ib_value){.type = IB_V_DOUBLE, .v.d = (x)})
#define B(x) ((struct ib_value){.type = IB_V_BOOL, .v.b = (x)})

static void encoding(void **state)
{
    (void)state;
    enc_ok(S7_T_BOOL, B(true), (const uint8_t[]){1}, 1);
    enc_ok(S7_T_BOOL, I(0), (const uint8_t[]){0}, 1);
    enc_refused(S7_T_BOOL, I(2));
    enc_ok(S7_T_INT, I(-12345), (const uint8_t[]){0xCF, 0xC7}, 2);
    enc_refused(S7_T_INT, I(32768));
    enc_refused(S7_T_INT, D(1.5));
    enc_ok(S7_T_INT, D(-2.0), (const uint8_t[]){0xFF, 0xFE}, 2);
    enc_ok(S7_T_SINT, I(-1), (const uint8_t[]){0xFF}, 1);
    enc_refused(S7_T_USINT, I(-1));
    enc_ok(S7_T_UDINT, U(4000000000u), (const uint8_t[]){0xEE, 0x6B, 0x28, 0x00}, 4);
    enc_refused(S7_T_DWORD, U(1ull << 32));
    enc_ok(S7_T_ULINT, U(UINT64_MAX),
           (const uint8_t[]){0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF}, 8);
    enc_refused(S7_T_LINT, U(1ull << 63));
    enc_ok(S7_T_REAL, D(3.5), (const uint8_t[]){0x40, 0x60, 0x00, 0x00}, 4);
    enc_refused(S7_T_REAL, D(1e39));
    enc_ok(S7_T_LREAL, D(-2.0), (const uint8_t[]){0xC0, 0, 0, 0, 0, 0, 0, 0}, 8);
    enc_ok(S7_T_S5TIME, U(123000), (const uint8_t[]){0x21, 0x23}, 2);
    enc_ok(S7_T_S5TIME, U(90), (const uint8_t[]){0x00, 0x09}, 2);
    enc_refused(S7_T_S5TIME, U(12345)); /* 4 significant digits */
    enc_ok(S7_T_TIME, I(-5000), (const uint8_t[]){0xFF, 0xFF, 0xEC, 0x78}, 4);
    enc_refused(S7_T_TIME_OF_DAY, I(86400000));
    enc_ok(S7_T_DATE, I(DAY_MS), (const uint8_t[]){0x30, 0xFB}, 2);
    enc_refused(S7_T_DATE, I(0)); /* 1970 is before 1990 */
    enc_ok(S7_T_DATE_AND_TIME, I(WHEN_MS),
           (const uint8_t[]){0x24, 0x05, 0x01, 0x12, 0x34, 0x56, 0x78, 0x94}, 8);
    enc_ok(S7_T_DTL, I(WHEN_MS),
           (const uint8_t[]){0x07, 0xE8, 5, 1, 4, 12, 34, 56, 0x2F, 0x07, 0x2F, 0x40}, 12);
    enc_ok(S7_T_COUNTER, U(42), (const uint8_t[]){0x00, 0x42}, 2);
    enc_ok(S7_T_COUNTER, U(999), (const uint8_t[]){0x09, 0x99}, 2);
    enc_refused(S7_T_COUNTER, U(1000));
    enc_refused(S7_T_STRING, I(1));
    struct ib_value s = {.type = IB_V_STRING};
    enc_refused(S7_T_INT, s);
}

#define T(str) ((struct ib_value){.type = IB_V_STRING, .v.s = {(str), sizeof(str) - 1}})

static void text_ok(enum s7_type t, uint32_t length, struct ib_value v, const uint8_t *want,
                    uint32_t n)
{
    uint8_t out[64];
    uint32_t got = 0;
    const char *why = "";
    memset(out, 0xEE, sizeof out);
    if (s7_type_encode_text(t, &v, length, out, sizeof out, &got, &why) != 0)
        fail_msg("%s[%u] '%.*s' refused: %s", s7_type_names[t], length, (int)v.v.s.len, v.v.s.ptr,
                 why);
    assert_int_equal(got, n);
    assert_memory_equal(out, want, n);
    for (uint32_t i = n; i < sizeof out; i++)
        assert_int_equal(out[i], 0xEE); /* nothing past the bytes to write */
}

static void text_refused(enum s7_type t, uint32_t length, struct ib_value v, const char *says)
{
    uint8_t out[64];
    uint32_t got = 0;
    const char *why = "";
    if (s7_type_encode_text(t, &v, length, out, sizeof out, &got, &why) == 0)
        fail_msg("%s[%u] accepted", s7_type_names[t], length);
    if (!strstr(why, says))
        fail_msg("%s[%u]: '%s' does not say '%s'", s7_type_names[t], length, why, says);
}

static void encoding_text(void **state)
{
    (void)state;
    text_ok(S7_T_STRING, 10, T(""), (const uint8_t[]){10, 0}, 2);
    text_ok(S7_T_STRING, 10, T("AB"), (const uint8_t[]){10, 2, 'A', 'B'}, 4);
    text_ok(S7_T_STRING, 4, T("Grüß"), (const uint8_t[]){4, 4, 'G', 'r', 0xFC, 0xDF}, 6);
    text_ok(S7_T_STRING, 40, T("\xC3\xBF"), (const uint8_t[]){40, 1, 0xFF}, 3);
    text_refused(S7_T_STRING, 3, T("Grüß"), "longer than the declared length");
    text_refused(S7_T_STRING, 10, T("5 \xE2\x82\xAC"), "outside Latin-1"); /* € */
    text_refused(S7_T_STRING, 10, T("\xC3"), "not valid UTF-8");           /* truncated */
    text_refused(S7_T_STRING, 10, T("\xC0\x80"), "not valid UTF-8");       /* overlong NUL */
    text_refused(S7_T_STRING, 10, T("\x80"), "not valid UTF-8");           /* stray continuation */
    text_refused(S7_T_STRING, 10, I(1), "takes text");
    text_ok(S7_T_WSTRING, 8, T(""), (const uint8_t[]){0, 8, 0, 0}, 4);
    text_ok(S7_T_WSTRING, 8, T("A\xE2\x82\xAC"), (const uint8_t[]){0, 8, 0, 2, 0, 'A', 0x20, 0xAC},
            8);
    /* U+1F600 is a surrogate pair: two of the declared code units */
    text_ok(S7_T_WSTRING, 2, T("\xF0\x9F\x98\x80"),
            (const uint8_t[]){0, 2, 0, 2, 0xD8, 0x3D, 0xDE, 0x00}, 8);
    text_refused(S7_T_WSTRING, 1, T("\xF0\x9F\x98\x80"), "longer than the declared length");
    text_refused(S7_T_WSTRING, 2, T("abc"), "longer than the declared length");
    text_refused(S7_T_WSTRING, 8, T("\xED\xA0\x80"), "not valid UTF-8");     /* a surrogate */
    text_refused(S7_T_WSTRING, 8, T("\xF4\x90\x80\x80"), "not valid UTF-8"); /* > U+10FFFF */
    text_ok(S7_T_CHAR, 0, T("x"), (const uint8_t[]){'x'}, 1);
    text_ok(S7_T_CHAR, 0, T("\xC3\xA9"), (const uint8_t[]){0xE9}, 1); /* é */
    text_refused(S7_T_CHAR, 0, T(""), "exactly one character");
    text_refused(S7_T_CHAR, 0, T("xy"), "exactly one character");
    text_refused(S7_T_CHAR, 0, T("\xE2\x82\xAC"), "outside Latin-1");
    text_refused(S7_T_CHAR, 0, U(65), "takes text");
    /* write_tag takes every type now */
    for (int t = 0; t < S7_T_COUNT; t++)
        assert_true(s7_type_writable((enum s7_type)t));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(numbers), cmocka_unit_test(strings),  cmocka_unit_test(times),
        cmocka_unit_test(widths),  cmocka_unit_test(encoding), cmocka_unit_test(encoding_text),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
