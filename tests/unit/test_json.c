/* JSON encoding (exact numbers, escaping) and MQTT topic templates. */
#include <float.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "json.h"
#include "topic.h"

static const char *dbl(double v)
{
    static char buf[32];
    ib_fmt_double(buf, v);
    return buf;
}

static void doubles_round_trip(void **state)
{
    (void)state;
    assert_string_equal(dbl(0.1), "0.1");
    assert_string_equal(dbl(230.5), "230.5");
    assert_string_equal(dbl(7), "7");
    assert_string_equal(dbl(-0.0), "0");
    assert_string_equal(dbl(1e300), "1e+300");
    assert_string_equal(dbl(-1234567.25), "-1234567.25");
    /* float32 values widened to double keep every digit they have */
    assert_string_equal(dbl((double)123.456f), "123.45600128173828");
    const double samples[] = {
        M_PI,   1.0 / 3.0, DBL_MIN, DBL_MAX, 5e-324, 0.30000000000000004, 123456789012345678.0,
        -2.5e-8};
    for (size_t i = 0; i < sizeof samples / sizeof samples[0]; i++)
        assert_true(strtod(dbl(samples[i]), NULL) == samples[i]);
}

static void integers_exact(void **state)
{
    (void)state;
    struct ib_buf b = {0};
    ib_json_int(&b, 0);
    ib_buf_puts(&b, ",");
    ib_json_int(&b, -32768);
    ib_buf_puts(&b, ",");
    ib_json_int(&b, 9007199254740992LL); /* 2^53: still a number */
    ib_buf_puts(&b, ",");
    ib_json_int(&b, 9007199254740993LL); /* beyond: a string */
    ib_buf_puts(&b, ",");
    ib_json_int(&b, INT64_MIN);
    ib_buf_puts(&b, ",");
    ib_json_uint(&b, UINT64_MAX);
    assert_string_equal(b.p, "0,-32768,9007199254740992,\"9007199254740993\","
                             "\"-9223372036854775808\",\"18446744073709551615\"");
    ib_buf_free(&b);
}

static void strings_escaped(void **state)
{
    (void)state;
    struct ib_buf b = {0};
    const char s[] = "a\"b\\c\n\t\x01\x7f/é";
    ib_json_str(&b, s, sizeof s - 1);
    assert_string_equal(b.p, "\"a\\\"b\\\\c\\n\\t\\u0001\\u007f/é\"");
    ib_buf_reset(&b);
    const char nul[] = {'x', '\0', 'y'};
    ib_json_str(&b, nul, 3);
    assert_string_equal(b.p, "\"x\\u0000y\"");
    ib_buf_free(&b);
}

static void values(void **state)
{
    (void)state;
    struct ib_buf b = {0};
    struct ib_value v = {.type = IB_V_BOOL, .v.b = true};
    ib_json_value(&b, &v);
    v = (struct ib_value){.type = IB_V_DOUBLE, .v.d = NAN};
    ib_buf_puts(&b, ",");
    ib_json_value(&b, &v); /* never reaches a payload: normalization makes it bad */
    v = (struct ib_value){.type = IB_V_STRING, .v.s = {"hi", 2}};
    ib_buf_puts(&b, ",");
    ib_json_value(&b, &v);
    assert_string_equal(b.p, "true,null,\"hi\"");
    ib_buf_free(&b);
}

static void topics(void **state)
{
    (void)state;
    char out[128], what[32];
    const unsigned all = IB_TOPIC_GATEWAY | IB_TOPIC_CONNECTION | IB_TOPIC_DEVICE | IB_TOPIC_GROUP;
    assert_null(ib_topic_check("plant/{gateway}/{device}/{group}", all, what, sizeof what));
    assert_non_null(ib_topic_check("plant/{tag}", all, what, sizeof what));
    assert_string_equal(what, "{tag}");
    assert_non_null(ib_topic_check("plant/{nope}", all, what, sizeof what));
    assert_string_equal(what, "{nope}");
    assert_non_null(ib_topic_check("plant/+/x", all, NULL, 0));
    assert_non_null(ib_topic_check("plant/#", all, NULL, 0));
    assert_non_null(ib_topic_check("plant/{device", all, NULL, 0));
    assert_non_null(ib_topic_check("", all, NULL, 0));
    struct ib_topic_vars v = {"gw1", "plc", "meter-1", "fast", NULL};
    assert_int_equal(
        ib_topic_expand("p/{gateway}/{connection}/{device}/{group}", &v, out, sizeof out),
        (int)strlen("p/gw1/plc/meter-1/fast"));
    assert_string_equal(out, "p/gw1/plc/meter-1/fast");
    assert_int_equal(ib_topic_expand("{tag}", &v, out, sizeof out), -1);
    assert_int_equal(ib_topic_expand("p/{device}", &v, out, 6), -1); /* does not fit */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(doubles_round_trip),
        cmocka_unit_test(integers_exact),
        cmocka_unit_test(strings_escaped),
        cmocka_unit_test(values),
        cmocka_unit_test(topics),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
