/* Unit tests of the command path's pure parts: the request parser (command_parse.c), the
 * device-free checks and the exact undoing of scaling (command_check.c), the answers
 * (command_answer.c) and the duplicate window (command_dedup.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <ironbridge/error.h>

#include "command_answer.h"
#include "command_check.h"
#include "command_impl.h"
#include "command_parse.h"

static struct ib_cmd_request req;
static char err[256];

static int parse(const char *s)
{
    err[0] = '\0';
    return ib_command_parse(s, strlen(s), &req, err, sizeof err);
}

static void parse_write(void **state)
{
    (void)state;
    assert_int_equal(parse("{\"id\": \"c-1842\", \"device\": \"press-3\", \"ts\": 1796490720315,"
                           " \"write\": {\"setpoint\": 48.5, \"run\": true, \"n\": -7, "
                           "\"big\": 18446744073709551615, \"s\": \"caf\\u00e9\"}, "
                           "\"verify\": true}"),
                     0);
    assert_string_equal(req.id, "c-1842");
    assert_string_equal(req.device, "press-3");
    assert_int_equal(req.ts_ms, 1796490720315LL);
    assert_true(req.verify);
    assert_false(req.is_read);
    assert_int_equal(req.n, 5);
    /* in the given order */
    assert_string_equal(req.w[0].tag, "setpoint");
    assert_int_equal(req.w[0].value.type, IB_V_DOUBLE);
    assert_true(req.w[0].value.v.d == 48.5);
    assert_string_equal(req.w[1].tag, "run");
    assert_int_equal(req.w[1].value.type, IB_V_BOOL);
    assert_true(req.w[1].value.v.b);
    assert_int_equal(req.w[2].value.type, IB_V_INT);
    assert_int_equal(req.w[2].value.v.i, -7);
    assert_int_equal(req.w[3].value.type, IB_V_UINT);
    assert_true(req.w[3].value.v.u == UINT64_MAX);
    assert_int_equal(req.w[4].value.type, IB_V_STRING);
    assert_int_equal(req.w[4].value.v.s.len, 5);
    assert_memory_equal(req.w[4].value.v.s.ptr, "caf\xc3\xa9", 5);
}

static void parse_read(void **state)
{
    (void)state;
    assert_int_equal(parse("{\"id\":\"r\",\"device\":\"d\",\"read\":[\"a\",\"b\"]}"), 0);
    assert_true(req.is_read);
    assert_int_equal(req.n, 2);
    assert_string_equal(req.w[1].tag, "b");
}

/* Each malformed request: refused, with where (a byte offset) and what. */
static void parse_errors(void **state)
{
    (void)state;
    static const struct {
        const char *json, *words;
        bool has_id;
    } cases[] = {
        {"{\"id\":\"a\",\"device\":\"d\",\"write\":{\"x\":1,}}", "at byte 38", true},
        {"{\"device\":\"d\",\"write\":{\"x\":1}}", "no id", false},
        {"{\"id\":\"a\",\"write\":{\"x\":1}}", "names no device", true},
        {"{\"id\":\"a\",\"device\":\"d\"}", "neither write nor read", true},
        {"{\"id\":\"a\",\"device\":\"d\",\"write\":{\"x\":1},\"read\":[\"x\"]}", "not both", true},
        {"{\"id\":\"a\",\"device\":\"d\",\"write\":{\"x\":1,\"x\":2}}", "named twice", true},
        {"{\"id\":\"a\",\"device\":\"d\",\"write\":{\"x\":null}}", "null", true},
        {"{\"id\":\"a\",\"device\":\"d\",\"write\":{\"x\":[1]}}", "not an array", true},
        {"{\"id\":\"a\",\"device\":\"d\",\"write\":{\"x\":01}}", "leading zero", true},
        {"{\"id\":\"a\",\"device\":\"d\",\"write\":{\"x\":1e999}}", "out of range", true},
        {"{\"id\":\"a\",\"device\":\"d\",\"write\":{\"x\":1},\"who\":1}", "unknown key 'who'",
         true},
        {"{\"id\":\"a\",\"device\":\"d\",\"ts\":1.5,\"write\":{\"x\":1}}", "whole number", true},
        {"{\"id\":\"a\",\"device\":\"d\",\"write\":{\"x\":\"\\ud800\"}}", "surrogate", true},
        {"{\"id\":\"a\",\"device\":\"d\",\"write\":{\"x\":\"\xff\"}}", "not UTF-8", true},
        {"{\"id\":\"a\",\"device\":\"d\",\"write\":{\"x\":1}} x", "after the request", true},
        {"{\"device\":\"d\",\"write\":{\"x\":}, \"id\": \"late\"}", "at byte", true},
        {"", "end of the request", false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        assert_int_equal(parse(cases[i].json), -1);
        if (!strstr(err, cases[i].words) || !strstr(err, "at byte"))
            fail_msg("case %zu: '%s' lacks '%s'", i, err, cases[i].words);
        assert_int_equal(req.has_id, cases[i].has_id);
    }
    assert_string_equal(req.id, "");
    /* the id of a request whose syntax breaks before it is still found */
    assert_int_equal(parse("{\"device\":\"d\",\"write\":{\"x\":}, \"id\": \"late\"}"), -1);
    assert_string_equal(req.id, "late");
}

static void parse_limits(void **state)
{
    (void)state;
    char big[8192];
    size_t n = (size_t)snprintf(big, sizeof big, "{\"id\":\"a\",\"device\":\"d\",\"write\":{");
    for (int i = 0; i <= IB_CMD_MAX_TAGS; i++)
        n += (size_t)snprintf(big + n, sizeof big - n, "%s\"t%d\":1", i ? "," : "", i);
    snprintf(big + n, sizeof big - n, "}}");
    assert_int_equal(parse(big), -1);
    assert_non_null(strstr(err, "more than 64 tags"));
    char id[300];
    memset(id, 'x', sizeof id);
    snprintf(big, sizeof big, "{\"id\":\"%.*s\",\"device\":\"d\",\"read\":[\"a\"]}", 200, id);
    assert_int_equal(parse(big), -1);
    assert_non_null(strstr(err, "longer than 128"));
    assert_int_equal(ib_command_parse(big, IB_CMD_MAX_REQUEST + 1, &req, err, sizeof err), -1);
}

static struct ib_tag_core core(double scale, double offset)
{
    return (struct ib_tag_core){.name = "t",
                                .scale = scale,
                                .offset = offset,
                                .divisor = ib_record_scale_divisor(scale),
                                .scaled = scale != 1.0 || offset != 0.0};
}

static int check_d(const struct ib_tag_core *t, const struct ib_tag_write *w, bool writable,
                   double d, struct ib_value *raw)
{
    struct ib_value v = {.type = IB_V_DOUBLE, .v.d = d};
    return ib_command_check_write(t, w, writable, &v, raw, err, sizeof err);
}

static void check_limits_and_denied(void **state)
{
    (void)state;
    struct ib_tag_core t = core(1, 0);
    struct ib_tag_write w = {.has_min = true, .min = 0, .has_max = true, .max = 100};
    struct ib_value raw;
    assert_int_equal(check_d(&t, &w, false, 5, &raw), IB_CMD_DENIED);
    assert_non_null(strstr(err, "writable: true"));
    assert_int_equal(check_d(&t, &w, true, 100.5, &raw), IB_CMD_OUT_OF_RANGE);
    assert_non_null(strstr(err, "write_max"));
    assert_int_equal(check_d(&t, &w, true, -0.1, &raw), IB_CMD_OUT_OF_RANGE);
    assert_int_equal(check_d(&t, &w, true, 100, &raw), IB_CMD_OK);
    struct ib_value s = {.type = IB_V_STRING, .v.s = {"x", 1}};
    assert_int_equal(ib_command_check_write(&t, &w, true, &s, &raw, err, sizeof err),
                     IB_CMD_BAD_TYPE);
    struct ib_tag_write none = {0};
    assert_int_equal(ib_command_check_write(&t, &none, true, &s, &raw, err, sizeof err), IB_CMD_OK);
    assert_int_equal(raw.type, IB_V_STRING);
}

/* The raw value normalizes back to exactly the requested value: 61.4 at scale 0.1 is 614. */
static void check_unscale_exact(void **state)
{
    (void)state;
    struct ib_tag_write w = {0};
    struct ib_value raw;
    struct ib_tag_core t = core(0.1, 0);
    assert_int_equal(check_d(&t, &w, true, 61.4, &raw), IB_CMD_OK);
    assert_int_equal(raw.type, IB_V_INT);
    assert_int_equal(raw.v.i, 614);
    /* 61.45 has no integer raw value: a double, which an integer wire type refuses */
    assert_int_equal(check_d(&t, &w, true, 61.45, &raw), IB_CMD_OK);
    assert_int_equal(raw.type, IB_V_DOUBLE);
    assert_int_equal(ib_command_result_of(IB_ERR_INVALID, &raw), IB_CMD_BAD_TYPE);
    t = core(0.5, -10);
    assert_int_equal(check_d(&t, &w, true, 490, &raw), IB_CMD_OK);
    assert_int_equal(raw.type, IB_V_INT);
    assert_int_equal(raw.v.i, 1000);
    t = core(2, 1);
    assert_int_equal(check_d(&t, &w, true, 100.9, &raw), IB_CMD_OK);
    assert_int_equal(raw.type, IB_V_DOUBLE);
    assert_true(raw.v.d == 49.95);
    /* every tenth from -100 to 100 comes back exactly */
    t = core(0.1, 0);
    for (int i = -1000; i <= 1000; i++) {
        double d = i / 10.0;
        assert_int_equal(check_d(&t, &w, true, d, &raw), IB_CMD_OK);
        assert_int_equal(raw.type, IB_V_INT);
        assert_int_equal(raw.v.i, i);
    }
}

static void result_codes(void **state)
{
    (void)state;
    struct ib_value i = {.type = IB_V_INT, .v.i = 70000};
    assert_int_equal(ib_command_result_of(IB_OK, &i), IB_CMD_OK);
    assert_int_equal(ib_command_result_of(IB_ERR_INVALID, &i), IB_CMD_OUT_OF_RANGE);
    assert_int_equal(ib_command_result_of(IB_ERR_DENIED, &i), IB_CMD_DENIED);
    assert_int_equal(ib_command_result_of(IB_ERR_TIMEOUT, &i), IB_CMD_TIMEOUT);
    assert_int_equal(ib_command_result_of(IB_ERR_CONNECTION, &i), IB_CMD_CONNECTION_LOST);
    assert_int_equal(ib_command_result_of(IB_ERR_EXCEPTION, &i), IB_CMD_DEVICE_ERROR);
    assert_string_equal(ib_command_result_name(IB_CMD_CONNECTION_LOST), "connection_lost");
    assert_string_equal(ib_command_result_name(IB_CMD_OUT_OF_RANGE), "out_of_range");
    assert_string_equal(ib_command_result_name(99), "?");
}

static void answer_json(void **state)
{
    (void)state;
    struct ib_cmd_tag_result r[2];
    memset(r, 0, sizeof r);
    strcpy(r[0].tag, "setpoint");
    r[0].result = IB_CMD_OK;
    r[0].has_value = true;
    r[0].value = (struct ib_value){.type = IB_V_DOUBLE, .v.d = 48.5};
    strcpy(r[1].tag, "run");
    r[1].result = IB_CMD_DEVICE_ERROR;
    r[1].code = 2;
    strcpy(r[1].error, "exception \"2\"");
    struct ib_cmd_meta m = {.id = "c-1842"};
    struct ib_cmd_answer a = {
        .id = "c-1842", .device = "press-3", .meta = &m, .n = 2, .results = r};
    struct ib_buf b = {0};
    assert_int_equal(ib_command_answer_json(&b, &a, 1796490720402LL), 0);
    assert_int_equal(ib_buf_puts(&b, ""), 0);
    assert_string_equal(b.p,
                        "{\"id\":\"c-1842\",\"device\":\"press-3\",\"ts\":1796490720402,"
                        "\"ok\":false,\"results\":{\"setpoint\":{\"result\":\"ok\",\"v\":48.5},"
                        "\"run\":{\"result\":\"device_error\",\"code\":2,\"error\":"
                        "\"exception \\\"2\\\"\"}}}");
    assert_int_equal(ib_command_refusal_json(&b, "x", NULL, IB_CMD_MALFORMED, "at byte 3: y", 5),
                     0);
    ib_buf_puts(&b, "");
    assert_string_equal(b.p, "{\"id\":\"x\",\"ts\":5,\"ok\":false,\"result\":\"malformed\","
                             "\"error\":\"at byte 3: y\"}");
    ib_buf_free(&b);
}

static void dedup_window(void **state)
{
    (void)state;
    struct ib_cmd_dedup *d = ib_cmd_dedup_new(4);
    struct ib_cmd_tag_result r = {.result = IB_CMD_OK}, got;
    strcpy(r.tag, "t");
    size_t found;
    bool pending;
    assert_int_equal(ib_cmd_dedup_claim(d, "a", 1000, 60000, &got, 1, &found, &pending), 0);
    /* running: a repeat is a duplicate without results yet */
    assert_int_equal(ib_cmd_dedup_claim(d, "a", 1001, 60000, &got, 1, &found, &pending), 1);
    assert_true(pending);
    ib_cmd_dedup_done(d, "a", &r, 1);
    assert_int_equal(ib_cmd_dedup_claim(d, "a", 2000, 60000, &got, 1, &found, &pending), 1);
    assert_false(pending);
    assert_int_equal(found, 1);
    assert_string_equal(got.tag, "t");
    /* beyond the window it is new again */
    assert_int_equal(ib_cmd_dedup_claim(d, "a", 70000, 60000, &got, 1, &found, &pending), 0);
    /* a full table forgets its oldest */
    for (int i = 0; i < 4; i++) {
        char id[8];
        snprintf(id, sizeof id, "n%d", i);
        assert_int_equal(ib_cmd_dedup_claim(d, id, 70001, 60000, &got, 1, &found, &pending), 0);
    }
    assert_int_equal(ib_cmd_dedup_claim(d, "a", 70002, 60000, &got, 1, &found, &pending), 0);
    /* a request answered busy is forgotten: the same id may come again */
    ib_cmd_dedup_forget(d, "a");
    assert_int_equal(ib_cmd_dedup_claim(d, "a", 70003, 60000, &got, 1, &found, &pending), 0);
    ib_cmd_dedup_free(d);
}

/* The table grows by need (issue 21): ids claimed across growth, after the ring has wrapped,
 * are all still remembered with their results, and the bound still forgets the oldest. */
static void dedup_grows(void **state)
{
    (void)state;
    struct ib_cmd_dedup *d = ib_cmd_dedup_new(100);
    struct ib_cmd_tag_result r = {.result = IB_CMD_OK}, got;
    size_t found;
    bool pending;
    char id[8];
    for (int i = 0; i < 10; i++) { /* 10 ids, then they expire: the ring's head moves on */
        snprintf(id, sizeof id, "old%d", i);
        assert_int_equal(ib_cmd_dedup_claim(d, id, 0, 1000, &got, 1, &found, &pending), 0);
    }
    for (int i = 0; i < 100; i++) {
        snprintf(id, sizeof id, "n%d", i);
        assert_int_equal(ib_cmd_dedup_claim(d, id, 5000, 1000, &got, 1, &found, &pending), 0);
        snprintf(r.tag, sizeof r.tag, "t%d", i);
        ib_cmd_dedup_done(d, id, &r, 1);
    }
    for (int i = 0; i < 100; i++) {
        snprintf(id, sizeof id, "n%d", i);
        assert_int_equal(ib_cmd_dedup_claim(d, id, 5001, 1000, &got, 1, &found, &pending), 1);
        assert_int_equal(found, 1);
        char tag[8];
        snprintf(tag, sizeof tag, "t%d", i);
        assert_string_equal(got.tag, tag);
    }
    assert_int_equal(ib_cmd_dedup_claim(d, "x", 5002, 1000, &got, 1, &found, &pending), 0);
    assert_int_equal(ib_cmd_dedup_claim(d, "n0", 5003, 1000, &got, 1, &found, &pending), 0);
    ib_cmd_dedup_free(d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(parse_write),
        cmocka_unit_test(parse_read),
        cmocka_unit_test(parse_errors),
        cmocka_unit_test(parse_limits),
        cmocka_unit_test(check_limits_and_denied),
        cmocka_unit_test(check_unscale_exact),
        cmocka_unit_test(result_codes),
        cmocka_unit_test(answer_json),
        cmocka_unit_test(dedup_window),
        cmocka_unit_test(dedup_grows),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
