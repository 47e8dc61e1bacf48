/* JSON encoding (exact numbers, escaping) and MQTT topic templates. */
#include <float.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
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
    assert_string_equal(dbl(0.005), "0.005");
    assert_string_equal(dbl(61.4), "61.4");
    assert_string_equal(dbl(1e-7), "1e-07");
    const double samples[] = {
        M_PI,   1.0 / 3.0, DBL_MIN, DBL_MAX, 5e-324, 0.30000000000000004, 123456789012345678.0,
        -2.5e-8};
    for (size_t i = 0; i < sizeof samples / sizeof samples[0]; i++)
        assert_true(strtod(dbl(samples[i]), NULL) == samples[i]);
}

/* Significant digits of a decimal string: what "shortest" is measured in. */
static int sig_digits(const char *s)
{
    int n = 0, seen = 0, trailing0 = 0;
    for (; *s && *s != 'e' && *s != 'E'; s++) {
        if (*s < '0' || *s > '9')
            continue;
        if (*s == '0' && !seen)
            continue;
        seen = 1;
        n++;
        trailing0 = *s == '0' ? trailing0 + 1 : 0;
    }
    return n - trailing0;
}

static uint64_t rng = 0x12345678abcdefull;
static uint64_t next(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static void doubles_random_round_trip_and_shortest(void **state)
{
    (void)state;
    char ours[32], ref[32];
    for (int i = 0; i < 300000; i++) {
        double v;
        uint64_t r = next();
        switch (i % 4) {
        case 0: /* any finite bit pattern */
            memcpy(&v, &r, sizeof v);
            if (!isfinite(v))
                continue;
            break;
        case 1: /* decimal-ish: scaled integers as gateways produce them */
            v = (double)(int64_t)(r % 2000001 - 1000000) / pow(10, (double)((r >> 40) % 7));
            break;
        case 2: /* raw * 0.1 + offset */
            v = (double)(r % 65536) * 0.1 - 40;
            break;
        default: /* widened float32 */
            v = (double)(float)((double)(int32_t)r / 1000.0);
        }
        ib_fmt_double(ours, v);
        if (strtod(ours, NULL) != v)
            fail_msg("%.17g formatted as %s does not read back", v, ours);
        for (int p = 1; p <= 17; p++) { /* the truly shortest %g */
            snprintf(ref, sizeof ref, "%.*g", p, v);
            if (strtod(ref, NULL) == v)
                break;
        }
        if (sig_digits(ours) > sig_digits(ref))
            fail_msg("%.17g: %s has more digits than %s", v, ours, ref);
    }
}

static void float32_random_round_trip_and_shortest(void **state)
{
    (void)state;
    char ours[32], ref[32];
    for (int i = 0; i < 300000; i++) {
        float f;
        uint32_t r = (uint32_t)next();
        if (i % 2) {
            memcpy(&f, &r, sizeof f);
            if (!isfinite(f))
                continue;
        } else {
            f = (float)((double)(int32_t)r / pow(10, (double)(r % 8)));
        }
        ib_fmt_float32(ours, f);
        if (strtof(ours, NULL) != f)
            fail_msg("%.9g formatted as %s does not read back", (double)f, ours);
        for (int p = 1; p <= 9; p++) {
            snprintf(ref, sizeof ref, "%.*g", p, (double)f);
            if (strtof(ref, NULL) == f)
                break;
        }
        if (sig_digits(ours) > sig_digits(ref))
            fail_msg("%.9g: %s has more digits than %s", (double)f, ours, ref);
    }
    ib_fmt_float32(ours, 123.456f);
    assert_string_equal(ours, "123.456");
    ib_fmt_float32(ours, -0.0123f);
    assert_string_equal(ours, "-0.0123");
    ib_fmt_float32(ours, 16777216.0f);
    assert_string_equal(ours, "16777216");
    struct ib_value v = {.type = IB_V_DOUBLE, .flags = IB_VF_FLOAT32, .v.d = (double)247.9f};
    assert_int_equal(ib_fmt_scalar(ours, &v), 5);
    assert_string_equal(ours, "247.9");
    v.flags = 0; /* without the flag the widened double is printed exactly */
    ib_fmt_scalar(ours, &v);
    assert_string_equal(ours, "247.89999389648438");
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
        cmocka_unit_test(doubles_random_round_trip_and_shortest),
        cmocka_unit_test(float32_random_round_trip_and_shortest),
        cmocka_unit_test(integers_exact),
        cmocka_unit_test(strings_escaped),
        cmocka_unit_test(values),
        cmocka_unit_test(topics),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
