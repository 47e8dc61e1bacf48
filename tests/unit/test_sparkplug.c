/* test_sparkplug.c: the Sparkplug B pieces without a broker: the stored record (round trip,
 * every truncation refused), the NCMD/DCMD decoder (datatypes, UInt32 in either field, null,
 * garbage), and the payload builder (a bad or stale sample becomes is_null with Quality and
 * reason; a value the datatype cannot hold too). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "sparkplug.pb-c.h"
#include "sparkplug_cmd.h"
#include "sparkplug_impl.h"
#include "sparkplug_record.h"

static void samples(struct ib_sample s[4])
{
    memset(s, 0, 4 * sizeof *s);
    s[0].value.type = IB_V_INT;
    s[0].value.v.i = -42;
    ib_sample_good(&s[0], 1000);
    s[1].value.type = IB_V_DOUBLE;
    s[1].value.v.d = 61.4;
    ib_sample_good(&s[1], 1001);
    ib_sample_bad(&s[2], 1002, IB_R_EXCEPTION, 2);
    s[3].value.type = IB_V_STRING;
    s[3].value.v.s.ptr = "hello";
    s[3].value.v.s.len = 5;
    ib_sample_good(&s[3], 1003);
}

static void record_round_trip(void **state)
{
    (void)state;
    struct ib_sample s[4];
    samples(s);
    struct ib_buf b = {0};
    uint32_t idx[] = {0, 2, 3};
    assert_int_equal(ib_spb_record_encode(&b, 0xabcd, 16, s, idx, 3), 0);
    struct ib_spb_reader r;
    assert_int_equal(ib_spb_record_open(&r, b.p, b.len), 0);
    assert_int_equal(r.alias_base, 16);
    assert_int_equal(r.layout, 0xabcd);
    struct ib_spb_rsample x;
    assert_int_equal(ib_spb_record_next(&r, &x), 1);
    assert_int_equal(x.tag, 0);
    assert_int_equal(x.s.value.v.i, -42);
    assert_int_equal(x.s.ts_ms, 1000);
    assert_int_equal(ib_spb_record_next(&r, &x), 1);
    assert_int_equal(x.tag, 2);
    assert_int_equal(x.s.quality, IB_Q_BAD);
    assert_int_equal(x.s.code, 2);
    assert_int_equal(ib_spb_record_next(&r, &x), 1);
    assert_int_equal(x.s.value.v.s.len, 5);
    assert_memory_equal(x.s.value.v.s.ptr, "hello", 5);
    assert_int_equal(ib_spb_record_next(&r, &x), 0);
    /* Every shorter prefix is refused somewhere, never read past its end. */
    for (size_t len = 0; len < b.len; len++) {
        void *copy = malloc(len ? len : 1);
        memcpy(copy, b.p, len);
        int rc = ib_spb_record_open(&r, copy, len);
        while (rc == 0 && (rc = ib_spb_record_next(&r, &x)) == 1)
            rc = 0;
        assert_int_equal(rc, -1);
        free(copy);
    }
    ib_buf_free(&b);
}

/* A command payload with one metric. */
static size_t one_metric(uint8_t *out, const char *name, uint32_t dt, int which, uint64_t v)
{
    Ibspb__Payload p = IBSPB__PAYLOAD__INIT;
    Ibspb__Metric m = IBSPB__METRIC__INIT, *mp = &m;
    m.name = (char *)name;
    m.has_datatype = dt != 0;
    m.datatype = dt;
    m.value_case = which;
    if (which == IBSPB__METRIC__VALUE_INT_VALUE)
        m.int_value = (uint32_t)v;
    else if (which == IBSPB__METRIC__VALUE_LONG_VALUE)
        m.long_value = v;
    else if (which == IBSPB__METRIC__VALUE_BOOLEAN_VALUE)
        m.boolean_value = v != 0;
    else if (which == IBSPB__METRIC__VALUE__NOT_SET)
        m.has_is_null = m.is_null = true;
    p.n_metrics = 1;
    p.metrics = &mp;
    return ibspb__payload__pack(&p, out);
}

static int grab(void *ud, const struct ib_spb_cmd_metric *m)
{
    *(struct ib_value *)ud = m->value;
    return 0;
}

static void cmd_decode(void **state)
{
    (void)state;
    uint8_t buf[256];
    struct ib_value v;
    size_t n = one_metric(buf, "Node Control/Rebirth", 11, IBSPB__METRIC__VALUE_BOOLEAN_VALUE, 1);
    assert_int_equal(ib_spb_cmd_is_rebirth(buf, n), 1);
    n = one_metric(buf, "Node Control/Rebirth", 0, IBSPB__METRIC__VALUE_BOOLEAN_VALUE, 0);
    assert_int_equal(ib_spb_cmd_is_rebirth(buf, n), 0);
    /* UInt32 from int_value (the datatype table) and long_value (Tahu, sparkplug-payload). */
    n = one_metric(buf, "x", 7, IBSPB__METRIC__VALUE_INT_VALUE, 4000000000u);
    assert_int_equal(ib_spb_cmd_decode(buf, n, grab, &v), 1);
    assert_int_equal(v.type, IB_V_UINT);
    assert_true(v.v.u == 4000000000u);
    n = one_metric(buf, "x", 7, IBSPB__METRIC__VALUE_LONG_VALUE, 4000000000u);
    assert_int_equal(ib_spb_cmd_decode(buf, n, grab, &v), 1);
    assert_true(v.type == IB_V_UINT && v.v.u == 4000000000u);
    /* Int16 -2 as two's complement in int_value. */
    n = one_metric(buf, "x", 2, IBSPB__METRIC__VALUE_INT_VALUE, 0xFFFEu);
    assert_int_equal(ib_spb_cmd_decode(buf, n, grab, &v), 1);
    assert_true(v.type == IB_V_INT && v.v.i == -2);
    /* Null, and a value of the wrong field for its datatype: no value. */
    n = one_metric(buf, "x", 10, IBSPB__METRIC__VALUE__NOT_SET, 0);
    assert_int_equal(ib_spb_cmd_decode(buf, n, grab, &v), 1);
    assert_int_equal(v.type, IB_V_NONE);
    n = one_metric(buf, "x", 11, IBSPB__METRIC__VALUE_LONG_VALUE, 1);
    assert_int_equal(ib_spb_cmd_decode(buf, n, grab, &v), 1);
    assert_int_equal(v.type, IB_V_NONE);
    /* Not protobuf. */
    assert_int_equal(ib_spb_cmd_decode("\xff\xff\xff", 3, grab, &v), -1);
    assert_int_equal(ib_spb_cmd_is_rebirth("\x12\x05", 2), -1);
}

static Ibspb__Payload *built(struct spb_msg *msg, struct ib_buf *out)
{
    assert_int_equal(spb_msg_pack(msg, out, 5, 7), 0);
    return ibspb__payload__unpack(NULL, out->len, (const uint8_t *)out->p);
}

static void payload_quality(void **state)
{
    (void)state;
    struct ib_sample s[4];
    samples(s);
    struct ib_sample stale = s[1];
    stale.quality = IB_Q_STALE;
    struct spb_msg msg;
    assert_int_equal(spb_msg_init(&msg, 6), 0);
    spb_msg_add(&msg);
    spb_put_sample(&msg, SPB_INT64, &s[0]);
    spb_msg_add(&msg);
    spb_put_sample(&msg, SPB_DOUBLE, &s[1]);
    spb_msg_add(&msg);
    spb_put_sample(&msg, SPB_UINT64, &s[2]);
    spb_msg_add(&msg);
    spb_put_sample(&msg, SPB_STRING, &s[3]);
    spb_msg_add(&msg);
    spb_put_sample(&msg, SPB_DOUBLE, &stale);
    spb_msg_add(&msg);
    spb_put_sample(&msg, SPB_UINT64, &s[0]); /* -42 cannot be a UInt64 */
    struct ib_buf out = {0};
    Ibspb__Payload *p = built(&msg, &out);
    spb_msg_free(&msg);
    assert_non_null(p);
    assert_true(p->has_seq && p->seq == 7);
    assert_int_equal(p->n_metrics, 6);
    assert_true((int64_t)p->metrics[0]->long_value == -42);
    assert_true(p->metrics[1]->double_value == 61.4);
    Ibspb__Metric *bad = p->metrics[2];
    assert_true(bad->is_null && bad->value_case == IBSPB__METRIC__VALUE__NOT_SET);
    assert_string_equal(bad->properties->keys[0], "Quality");
    assert_int_equal(bad->properties->values[0]->int_value, SPB_QUALITY_BAD);
    assert_string_equal(bad->properties->values[1]->string_value, "exception 2");
    assert_string_equal(p->metrics[3]->string_value, "hello");
    assert_int_equal(p->metrics[4]->properties->values[0]->int_value, SPB_QUALITY_STALE);
    assert_string_equal(p->metrics[4]->properties->values[1]->string_value, "stale");
    assert_true(p->metrics[5]->is_null);
    assert_string_equal(p->metrics[5]->properties->values[1]->string_value, "type_mismatch");
    ibspb__payload__free_unpacked(p, NULL);
    ib_buf_free(&out);
}

static void state_parse(void **state)
{
    (void)state;
    bool on = false;
    int64_t ts = 0;
    const char *ok =
        " { \"online\" : true, \"x\": [1, {\"online\": false}], \"timestamp\": 1700000000123 }";
    assert_int_equal(ib_spb_state_parse(ok, strlen(ok), &on, &ts), 0);
    assert_true(on);
    assert_true(ts == 1700000000123);
    const char *off = "{\"timestamp\":5,\"online\":false}";
    assert_int_equal(ib_spb_state_parse(off, strlen(off), &on, &ts), 0);
    assert_false(on);
    assert_true(ts == 5);
    const char *bad[] = {"",
                         "{",
                         "{\"online\":true}",
                         "{\"online\":yes,\"timestamp\":1}",
                         "{\"online\":true,\"timestamp\":-1}",
                         "ONLINE",
                         "{\"online\":true,\"timestamp\":\"1\"}"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(ib_spb_state_parse(bad[i], strlen(bad[i]), &on, &ts), -1);
    /* Cut anywhere: never read past the end. */
    for (size_t len = 0; len < strlen(ok); len++) {
        char *copy = malloc(len ? len : 1);
        memcpy(copy, ok, len);
        ib_spb_state_parse(copy, len, &on, &ts);
        free(copy);
    }
}

/* The fast DDATA path writes byte for byte what protobuf-c packs for the same metrics. */
static void fast_path_matches(void **state)
{
    (void)state;
    struct ib_sample s[5];
    memset(s, 0, sizeof s);
    s[0].value.type = IB_V_UINT;
    s[0].value.v.u = 300;
    s[1].value.type = IB_V_INT;
    s[1].value.v.i = -7;
    s[2].value.type = IB_V_DOUBLE;
    s[2].value.v.d = 61.4;
    s[3].value.type = IB_V_BOOL;
    s[3].value.v.b = true;
    s[4].value.type = IB_V_DOUBLE;
    s[4].value.flags = IB_VF_FLOAT32;
    s[4].value.v.d = 1.5;
    const uint32_t dt[] = {SPB_UINT64, SPB_INT64, SPB_DOUBLE, SPB_BOOLEAN, SPB_FLOAT};
    for (int hist = 0; hist < 2; hist++) {
        struct spb_msg msg;
        struct ib_buf slow = {0}, fast = {0};
        assert_int_equal(spb_msg_init(&msg, 5), 0);
        assert_int_equal(spb_fast_begin(&fast, 1796500000000), 0);
        for (int i = 0; i < 5; i++) {
            ib_sample_good(&s[i], 1796500000000 - i);
            Ibspb__Metric *m = spb_msg_add(&msg);
            m->has_alias = true;
            m->alias = 16 + (uint64_t)i * 100;
            m->has_timestamp = true;
            m->timestamp = (uint64_t)s[i].ts_ms;
            m->has_is_historical = m->is_historical = hist;
            spb_put_sample(&msg, dt[i], &s[i]);
            assert_int_equal(spb_fast_metric(&fast, m->alias, s[i].ts_ms, dt[i], hist, &s[i]), 1);
        }
        assert_int_equal(spb_msg_pack(&msg, &slow, 1796500000000, 200), 0);
        assert_int_equal(spb_fast_end(&fast, 200), 0);
        assert_int_equal(fast.len, slow.len);
        assert_memory_equal(fast.p, slow.p, slow.len);
        spb_msg_free(&msg);
        ib_buf_free(&slow);
        ib_buf_free(&fast);
    }
    /* What needs the general path says so. */
    struct ib_buf b = {0};
    struct ib_sample bad;
    ib_sample_bad(&bad, 1, IB_R_TIMEOUT, 0);
    assert_int_equal(spb_fast_metric(&b, 16, 1, SPB_DOUBLE, false, &bad), 0);
    assert_int_equal(spb_fast_metric(&b, 16, 1, SPB_UINT64, false, &s[1]), 0); /* -7 */
    ib_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(record_round_trip), cmocka_unit_test(cmd_decode),
        cmocka_unit_test(payload_quality),   cmocka_unit_test(state_parse),
        cmocka_unit_test(fast_path_matches),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
