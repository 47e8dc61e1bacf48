/* Normalization (scale, offset, non-finite values) and the JSON record of a group's poll. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "config.h"
#include "record.h"

static struct ib_sample good(struct ib_value v)
{
    struct ib_sample s = {.value = v, .ts_ms = 1000};
    return s;
}

static void scaling(void **state)
{
    (void)state;
    struct ib_tag_core t = {.scale = 0.1, .offset = -40, .divisor = 10, .scaled = true};
    struct ib_sample in = good((struct ib_value){.type = IB_V_UINT, .v.u = 655}), out;
    ib_record_normalize(&t, &in, &out);
    assert_int_equal(out.value.type, IB_V_DOUBLE);
    assert_true(fabs(out.value.v.d - 25.5) < 1e-12);
    assert_int_equal(in.value.type, IB_V_UINT); /* raw kept */

    struct ib_tag_core plain = {.scale = 1, .offset = 0, .scaled = false};
    in = good((struct ib_value){.type = IB_V_INT, .v.i = -5});
    ib_record_normalize(&plain, &in, &out);
    assert_int_equal(out.value.type, IB_V_INT); /* unscaled integers stay integers */
    assert_int_equal(out.value.v.i, -5);

    in = good((struct ib_value){.type = IB_V_BOOL, .v.b = true});
    ib_record_normalize(&t, &in, &out);
    assert_int_equal(out.value.type, IB_V_BOOL); /* booleans are never scaled */
}

static void decimal_scales_exact(void **state)
{
    (void)state;
    /* A scale of 0.1 means "divide by ten": 614 reads 61.4, not 61.400000000000006. */
    struct ib_tag_core t = {.scale = 0.1, .divisor = ib_record_scale_divisor(0.1), .scaled = true};
    assert_true(t.divisor == 10.0);
    struct ib_sample in = good((struct ib_value){.type = IB_V_INT, .v.i = 614}), out;
    ib_record_normalize(&t, &in, &out);
    assert_true(out.value.v.d == 61.4);
    t = (struct ib_tag_core){
        .scale = 0.01, .divisor = ib_record_scale_divisor(0.01), .scaled = true};
    in = good((struct ib_value){.type = IB_V_UINT, .v.u = 4526});
    ib_record_normalize(&t, &in, &out);
    assert_true(out.value.v.d == 45.26);
    assert_true(ib_record_scale_divisor(0.3) == 0.0); /* not 1/N: multiplied */
    assert_true(ib_record_scale_divisor(2.0) == 0.0);
    assert_true(ib_record_scale_divisor(-0.001) == -1000.0);
}

static void non_finite_is_bad(void **state)
{
    (void)state;
    struct ib_tag_core plain = {.scale = 1};
    struct ib_sample in = good((struct ib_value){.type = IB_V_DOUBLE, .v.d = NAN}), out;
    ib_record_normalize(&plain, &in, &out);
    assert_int_equal(out.quality, IB_Q_BAD);
    assert_int_equal(out.reason, IB_R_DECODE);
    struct ib_tag_core big = {.scale = 1e308, .scaled = true};
    in = good((struct ib_value){.type = IB_V_DOUBLE, .v.d = 1e10});
    ib_record_normalize(&big, &in, &out);
    assert_int_equal(out.reason, IB_R_DECODE);
}

static void bad_passes_through(void **state)
{
    (void)state;
    struct ib_tag_core t = {.scale = 2, .scaled = true};
    struct ib_sample in = {.quality = IB_Q_BAD, .reason = IB_R_TIMEOUT, .ts_ms = 5}, out;
    ib_record_normalize(&t, &in, &out);
    assert_int_equal(out.quality, IB_Q_BAD);
    assert_int_equal(out.reason, IB_R_TIMEOUT);
}

static void record_json(void **state)
{
    (void)state;
    struct ib_tag_config tags[3] = {{.name = "volt"}, {.name = "run\"ning"}, {.name = "x"}};
    struct ib_tag_core core[3] = {{.unit = "V"}, {0}, {0}};
    struct ib_group_config g = {.name = "fast", .n_tags = 3, .tags = tags};
    struct ib_cfg_group cg = {.tags = core};
    for (uint32_t k_ = 0; k_ < g.n_tags; k_++)
        cg.tags[k_].name = g.tags[k_].name;
    struct ib_group_enc e;
    assert_int_equal(ib_record_enc_init(&e, "gw", "plc", "m1", NULL, g.name, g.n_tags, cg.tags), 0);
    struct ib_sample s[3] = {
        good((struct ib_value){.type = IB_V_DOUBLE, .v.d = 230.5}),
        good((struct ib_value){.type = IB_V_BOOL, .v.b = false}),
        {.quality = IB_Q_BAD, .reason = IB_R_EXCEPTION, .code = 2, .ts_ms = 1000},
    };
    struct ib_buf b = {0};
    assert_int_equal(ib_record_encode(&b, &e, 999, s, NULL, 0), 0);
    assert_string_equal(b.p, ",\"gateway\":\"gw\",\"connection\":\"plc\",\"device\":\"m1\","
                             "\"group\":\"fast\",\"ts\":999,\"values\":{"
                             "\"volt\":{\"v\":230.5,\"q\":\"good\",\"ts\":1000,\"unit\":\"V\"},"
                             "\"run\\\"ning\":{\"v\":false,\"q\":\"good\",\"ts\":1000},"
                             "\"x\":{\"q\":\"bad\",\"reason\":\"exception\",\"code\":2,"
                             "\"ts\":1000}}}");
    /* the buffer is reused: a second poll does not grow or append */
    size_t cap = b.cap;
    assert_int_equal(ib_record_encode(&b, &e, 999, s, NULL, 0), 0);
    assert_int_equal(b.cap, cap);
    ib_buf_free(&b);
    ib_record_enc_free(&e);
}

/* ABI 1.1 arrays (IB_V_JSON): published as the plugin's JSON array text, never scaled; a text
 * that is not an array becomes null. */
static void record_json_array(void **state)
{
    (void)state;
    struct ib_tag_config tags[3] = {{.name = "a"}, {.name = "s"}, {.name = "x"}};
    struct ib_tag_core core[3] = {{.scale = 2, .scaled = true}, {0}, {0}};
    struct ib_group_config g = {.name = "g", .n_tags = 3, .tags = tags};
    struct ib_cfg_group cg = {.tags = core};
    for (uint32_t k_ = 0; k_ < g.n_tags; k_++)
        cg.tags[k_].name = g.tags[k_].name;
    struct ib_group_enc e;
    assert_int_equal(ib_record_enc_init(&e, "gw", "plc", "m1", NULL, g.name, g.n_tags, cg.tags), 0);
    const char *nums = "[1,2.5,-3]", *strs = "[\"a\",\"b\\\"c\"]", *broken = "{\"no\":1}";
    struct ib_sample s[3] = {
        good((struct ib_value){.type = IB_V_JSON, .v.s = {nums, (uint32_t)strlen(nums)}}),
        good((struct ib_value){.type = IB_V_JSON, .v.s = {strs, (uint32_t)strlen(strs)}}),
        good((struct ib_value){.type = IB_V_JSON, .v.s = {broken, (uint32_t)strlen(broken)}}),
    };
    struct ib_sample n;
    ib_record_normalize(&core[0], &s[0], &n);
    assert_int_equal(n.value.type, IB_V_JSON); /* not scaled */
    struct ib_buf b = {0};
    assert_int_equal(ib_record_encode(&b, &e, 999, s, NULL, 0), 0);
    assert_string_equal(b.p, ",\"gateway\":\"gw\",\"connection\":\"plc\",\"device\":\"m1\","
                             "\"group\":\"g\",\"ts\":999,\"values\":{"
                             "\"a\":{\"v\":[1,2.5,-3],\"q\":\"good\",\"ts\":1000},"
                             "\"s\":{\"v\":[\"a\",\"b\\\"c\"],\"q\":\"good\",\"ts\":1000},"
                             "\"x\":{\"v\":null,\"q\":\"good\",\"ts\":1000}}}");
    ib_buf_free(&b);
    ib_record_enc_free(&e);
}

/* The encoder's fast path for good numbers (fixed-size fragment copies, cached time digits)
 * gives the same text as the general path: every numeric kind, integers past 2^53, float32,
 * names and units longer than one 16-byte step, changing source times, and a string (the
 * general path) between fast ones. */
static void record_fast_path(void **state)
{
    (void)state;
    struct ib_tag_config tags[6] = {
        {.name = "i"},   {.name = "u_past_2_pow_53"},
        {.name = "f32"}, {.name = "a_tag_name_of_forty_characters_exactly_"},
        {.name = "s"},   {.name = "neg_min"}};
    struct ib_tag_core core[6] = {{0}, {0}, {.unit = "kWh"}, {.unit = "a unit of 20 chars.."}};
    struct ib_group_config g = {.name = "g", .n_tags = 6, .tags = tags};
    struct ib_cfg_group cg = {.tags = core};
    for (uint32_t k_ = 0; k_ < g.n_tags; k_++)
        cg.tags[k_].name = g.tags[k_].name;
    struct ib_group_enc e;
    assert_int_equal(ib_record_enc_init(&e, "gw", "c", "d", NULL, g.name, g.n_tags, cg.tags), 0);
    struct ib_sample s[6] = {
        good((struct ib_value){.type = IB_V_INT, .v.i = -42}),
        good((struct ib_value){.type = IB_V_UINT, .v.u = UINT64_MAX}),
        good((struct ib_value){.type = IB_V_DOUBLE, .flags = IB_VF_FLOAT32, .v.d = 123.456f}),
        good((struct ib_value){.type = IB_V_BOOL, .v.b = true}),
        good((struct ib_value){.type = IB_V_STRING, .v.s = {"ok", 2}}),
        good((struct ib_value){.type = IB_V_INT, .v.i = INT64_MIN}),
    };
    s[3].ts_ms = 1764163200123; /* a time of its own, then back to 1000 */
    struct ib_buf b = {0};
    assert_int_equal(ib_record_encode(&b, &e, 5, s, NULL, 0), 0);
    assert_string_equal(b.p,
                        ",\"gateway\":\"gw\",\"connection\":\"c\",\"device\":\"d\","
                        "\"group\":\"g\",\"ts\":5,\"values\":{"
                        "\"i\":{\"v\":-42,\"q\":\"good\",\"ts\":1000},"
                        "\"u_past_2_pow_53\":{\"v\":\"18446744073709551615\",\"q\":\"good\","
                        "\"ts\":1000},"
                        "\"f32\":{\"v\":123.456,\"q\":\"good\",\"ts\":1000,\"unit\":\"kWh\"},"
                        "\"a_tag_name_of_forty_characters_exactly_\":{\"v\":true,\"q\":\"good\","
                        "\"ts\":1764163200123,\"unit\":\"a unit of 20 chars..\"},"
                        "\"s\":{\"v\":\"ok\",\"q\":\"good\",\"ts\":1000},"
                        "\"neg_min\":{\"v\":\"-9223372036854775808\",\"q\":\"good\","
                        "\"ts\":1000}}}");
    ib_buf_free(&b);
    ib_record_enc_free(&e);
}

static void subset_tag_layout_meta_stale(void **state)
{
    (void)state;
    struct ib_tag_config tags[2] = {{.name = "a"}, {.name = "b"}};
    struct ib_tag_core core[2] = {{.unit = "bar"}, {0}};
    struct ib_group_config g = {.name = "g", .n_tags = 2, .tags = tags};
    struct ib_cfg_group cg = {.tags = core};
    for (uint32_t k_ = 0; k_ < g.n_tags; k_++)
        cg.tags[k_].name = g.tags[k_].name;
    struct ib_group_enc e;
    assert_int_equal(
        ib_record_enc_init(&e, "gw", "c", "d", "{\"site\":\"P1\"}", g.name, g.n_tags, cg.tags), 0);
    struct ib_sample s[2] = {
        good((struct ib_value){.type = IB_V_INT, .v.i = 3}),
        {.quality = IB_Q_STALE, .reason = IB_R_TIMEOUT, .ts_ms = 7},
    };
    struct ib_buf b = {0};
    const uint32_t only_b[] = {1};
    assert_int_equal(ib_record_encode(&b, &e, 5, s, only_b, 1), 0);
    assert_string_equal(b.p, ",\"gateway\":\"gw\",\"connection\":\"c\",\"device\":\"d\","
                             "\"group\":\"g\",\"meta\":{\"site\":\"P1\"},\"ts\":5,"
                             "\"values\":{\"b\":{\"q\":\"stale\",\"reason\":\"timeout\","
                             "\"ts\":7}}}");
    assert_int_equal(ib_record_encode_tag(&b, &e, 0, &s[0]), 0);
    assert_string_equal(b.p, ",\"gateway\":\"gw\",\"connection\":\"c\",\"device\":\"d\","
                             "\"group\":\"g\",\"meta\":{\"site\":\"P1\"},\"tag\":\"a\","
                             "\"v\":3,\"q\":\"good\",\"ts\":1000,\"unit\":\"bar\"}");
    ib_buf_free(&b);
    ib_record_enc_free(&e);
}

static void reason_names(void **state)
{
    (void)state;
    assert_string_equal(ib_record_reason_name(IB_R_TIMEOUT), "timeout");
    assert_string_equal(ib_record_reason_name(IB_R_CONN_LOST), "connection_lost");
    assert_string_equal(ib_record_reason_name(IB_R_DECODE), "decode_error");
    assert_string_equal(ib_record_reason_name(IB_R_CRC), "crc_error");
    assert_string_equal(ib_record_reason_name(IB_R_PROTOCOL), "protocol_error");
    assert_string_equal(ib_record_reason_name(200), "internal");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(scaling),           cmocka_unit_test(decimal_scales_exact),
        cmocka_unit_test(non_finite_is_bad), cmocka_unit_test(bad_passes_through),
        cmocka_unit_test(record_json),       cmocka_unit_test(record_json_array),
        cmocka_unit_test(record_fast_path),  cmocka_unit_test(subset_tag_layout_meta_stale),
        cmocka_unit_test(reason_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
