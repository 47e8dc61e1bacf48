/* Unit tests of the value mapping (plugins/opcua/value.c): every scalar built-in type to a
 * sample (Float keeps its binary32 flag, Int64/UInt64 beyond 2^53 exact, DateTime as ISO 8601,
 * ByteString as base64), StatusCodes to bad quality with the code, timestamps, arrays of numbers
 * and strings as JSON arrays, and written values converted or refused. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "value.h"

static struct ib_sample map(struct ua_variant v, uint32_t status, int *result, struct ua_text *t)
{
    struct ua_datavalue dv = {.mask = UA_DV_VALUE | UA_DV_STATUS | UA_DV_SRC_TS,
                              .value = v,
                              .status = status,
                              .src_ts = ua_ms_to_datetime(1700000000123)};
    struct ib_sample s;
    memset(&s, 0, sizeof s);
    *result = ua_value_to_sample(&dv, 5, t, &s);
    return s;
}

static void scalars(void **state)
{
    (void)state;
    struct ua_text t = {0};
    int r;
    struct ib_sample s =
        map((struct ua_variant){.type = UA_INT64, .v.i = -9007199254740993LL}, 0, &r, &t);
    assert_int_equal(r, UA_MAP_GOOD);
    assert_int_equal(s.value.type, IB_V_INT);
    assert_true(s.value.v.i == -9007199254740993LL);
    assert_true(s.ts_ms == 1700000000123);
    s = map((struct ua_variant){.type = UA_UINT64, .v.u = UINT64_MAX}, 0, &r, &t);
    assert_int_equal(s.value.type, IB_V_UINT);
    assert_true(s.value.v.u == UINT64_MAX);
    s = map((struct ua_variant){.type = UA_FLOAT, .v.f = 123.456f}, 0, &r, &t);
    assert_int_equal(s.value.type, IB_V_DOUBLE);
    assert_int_equal(s.value.flags, IB_VF_FLOAT32);
    assert_true((float)s.value.v.d == 123.456f);
    s = map((struct ua_variant){.type = UA_BOOLEAN, .v.b = true}, 0, &r, &t);
    assert_int_equal(s.value.type, IB_V_BOOL);
    s = map((struct ua_variant){.type = UA_SBYTE, .v.i = -5}, 0, &r, &t);
    assert_true(s.value.v.i == -5);
    s = map((struct ua_variant){.type = UA_STRING, .v.s = ua_str_c("héllo")}, 0, &r, &t);
    assert_int_equal(s.value.type, IB_V_STRING);
    assert_int_equal(s.value.v.s.len, 6);
    assert_memory_equal(s.value.v.s.ptr, "héllo", 6);
    s = map((struct ua_variant){.type = UA_DATETIME, .v.dt = ua_ms_to_datetime(1700000000123)}, 0,
            &r, &t);
    assert_string_equal(s.value.v.s.ptr, "2023-11-14T22:13:20.123Z");
    s = map((struct ua_variant){.type = UA_BYTESTRING, .v.s = {"\x01\x02\x03\x04", 4}}, 0, &r, &t);
    assert_string_equal(s.value.v.s.ptr, "AQIDBA==");
    struct ua_variant lt = {.type = UA_LOCALIZEDTEXT};
    lt.v.lt.locale = ua_str_c("en");
    lt.v.lt.text = ua_str_c("Running");
    s = map(lt, 0, &r, &t);
    assert_string_equal(s.value.v.s.ptr, "Running");
    ua_text_free(&t);
}

static void statuses_and_refusals(void **state)
{
    (void)state;
    struct ua_text t = {0};
    int r;
    struct ib_sample s = map((struct ua_variant){0}, 0x80340000, &r, &t);
    assert_int_equal(r, UA_MAP_BAD_STATUS);
    assert_int_equal(s.quality, IB_Q_BAD);
    assert_int_equal(s.reason, IB_R_EXCEPTION);
    assert_int_equal(s.code, 0x8034);
    s = map((struct ua_variant){.type = UA_DOUBLE, .v.d = 1}, 0x40000000, &r, &t);
    assert_int_equal(r, UA_MAP_BAD_STATUS); /* Uncertain is not published as good */
    assert_int_equal(s.code, 0x4000);
    s = map((struct ua_variant){0}, 0, &r, &t);
    assert_int_equal(r, UA_MAP_NO_VALUE);
    assert_int_equal(s.reason, IB_R_DECODE);
    s = map((struct ua_variant){.type = UA_INT32, .is_array = true, .n = 0}, 0, &r, &t);
    assert_int_equal(r, UA_MAP_GOOD); /* an empty array: [] (arrays: test arrays) */
    s = map((struct ua_variant){.type = UA_NODEID}, 0, &r, &t);
    assert_int_equal(r, UA_MAP_UNSUPPORTED);
    /* no source timestamp: the server's, else the time of receipt */
    struct ua_datavalue dv = {.mask = UA_DV_VALUE | UA_DV_SRV_TS,
                              .value = {.type = UA_BOOLEAN},
                              .srv_ts = ua_ms_to_datetime(42)};
    ua_value_to_sample(&dv, 5, &t, &s);
    assert_true(s.ts_ms == 42);
    dv.mask = UA_DV_VALUE;
    ua_value_to_sample(&dv, 5, &t, &s);
    assert_true(s.ts_ms == 5);
    ua_text_free(&t);
}

static struct ib_sample map_array(int type, int32_t n, const void *raw, size_t len, int *r,
                                  struct ua_text *t)
{
    struct ua_variant v = {
        .type = (uint8_t)type, .is_array = true, .n = n, .raw = raw, .raw_len = len};
    return map(v, 0, r, t);
}

static void expect_json(struct ib_sample s, const int *r, const char *want)
{
    assert_int_equal(*r, UA_MAP_GOOD);
    assert_int_equal(s.quality, IB_Q_GOOD);
    assert_int_equal(s.value.type, IB_V_JSON);
    assert_int_equal(s.value.v.s.len, strlen(want));
    assert_memory_equal(s.value.v.s.ptr, want, strlen(want));
}

/* Arrays of numbers and of text as JSON arrays (ABI 1.1 IB_V_JSON): exact numbers, integers
 * beyond 2^53 as strings, float32 shortest, NaN as null, strings escaped, invalid UTF-8
 * replaced; an array of a structured type, or a truncated one, is refused. */
static void arrays(void **state)
{
    (void)state;
    struct ua_text t = {0};
    int r;
    const int32_t i32[] = {1, -2, 2147483647};
    expect_json(map_array(UA_INT32, 3, i32, sizeof i32, &r, &t), &r, "[1,-2,2147483647]");
    const int64_t i64[] = {-9007199254740993LL, 9007199254740992LL};
    expect_json(map_array(UA_INT64, 2, i64, sizeof i64, &r, &t), &r,
                "[\"-9007199254740993\",9007199254740992]");
    const uint64_t u64[] = {18446744073709551615ULL};
    expect_json(map_array(UA_UINT64, 1, u64, sizeof u64, &r, &t), &r, "[\"18446744073709551615\"]");
    const double d[] = {0.1, NAN, -2.5e300};
    expect_json(map_array(UA_DOUBLE, 3, d, sizeof d, &r, &t), &r, "[0.1,null,-2.5e+300]");
    const float f[] = {123.456f};
    expect_json(map_array(UA_FLOAT, 1, f, sizeof f, &r, &t), &r, "[123.456]");
    const uint8_t b[] = {1, 0};
    expect_json(map_array(UA_BOOLEAN, 2, b, sizeof b, &r, &t), &r, "[true,false]");
    /* Strings: "a", "q\"\\", "\x01\xff" (a control character and a byte that is not UTF-8) */
    const uint8_t str[] = {1, 0, 0, 0, 'a', 3, 0, 0, 0, 'q', '"', '\\', 2, 0, 0, 0, 1, 0xff};
    expect_json(map_array(UA_STRING, 3, str, sizeof str, &r, &t), &r,
                "[\"a\",\"q\\\"\\\\\",\"\\u0001\\ufffd\"]");
    /* One element fewer in the bytes than the count says. */
    struct ib_sample s = map_array(UA_INT32, 4, i32, sizeof i32, &r, &t);
    assert_int_equal(r, UA_MAP_UNSUPPORTED);
    assert_int_equal(s.quality, IB_Q_BAD);
    const uint8_t nid[] = {0, 5};
    s = map_array(UA_NODEID, 1, nid, sizeof nid, &r, &t);
    assert_int_equal(r, UA_MAP_UNSUPPORTED);
    ua_text_free(&t);
}

static void writes(void **state)
{
    (void)state;
    struct ua_variant v;
    char err[160];
    struct ib_value in = {.type = IB_V_INT, .v.i = 300};
    assert_int_equal(ua_value_to_variant(&in, UA_INT16, &v, err, sizeof err), 0);
    assert_true(v.v.i == 300);
    assert_int_equal(ua_value_to_variant(&in, UA_BYTE, &v, err, sizeof err), -1);
    assert_non_null(strstr(err, "out of range"));
    in = (struct ib_value){.type = IB_V_DOUBLE, .v.d = 1.5};
    assert_int_equal(ua_value_to_variant(&in, UA_INT32, &v, err, sizeof err), -1);
    assert_non_null(strstr(err, "fraction"));
    assert_int_equal(ua_value_to_variant(&in, UA_FLOAT, &v, err, sizeof err), 0);
    assert_true(v.v.f == 1.5f);
    in = (struct ib_value){.type = IB_V_DOUBLE, .v.d = 1e300};
    assert_int_equal(ua_value_to_variant(&in, UA_FLOAT, &v, err, sizeof err), -1);
    in = (struct ib_value){.type = IB_V_INT, .v.i = -1};
    assert_int_equal(ua_value_to_variant(&in, UA_UINT32, &v, err, sizeof err), -1);
    in = (struct ib_value){.type = IB_V_UINT, .v.u = UINT64_MAX};
    assert_int_equal(ua_value_to_variant(&in, UA_UINT64, &v, err, sizeof err), 0);
    assert_true(v.v.u == UINT64_MAX);
    assert_int_equal(ua_value_to_variant(&in, UA_INT64, &v, err, sizeof err), -1);
    in = (struct ib_value){.type = IB_V_BOOL, .v.b = true};
    assert_int_equal(ua_value_to_variant(&in, UA_BOOLEAN, &v, err, sizeof err), 0);
    assert_true(v.v.b);
    in = (struct ib_value){.type = IB_V_INT, .v.i = 2};
    assert_int_equal(ua_value_to_variant(&in, UA_BOOLEAN, &v, err, sizeof err), -1);
    assert_int_equal(ua_value_to_variant(&in, UA_STRING, &v, err, sizeof err), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(scalars),
        cmocka_unit_test(statuses_and_refusals),
        cmocka_unit_test(arrays),
        cmocka_unit_test(writes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
