/* Tests of the built modbus.so through its descriptor, as the daemon loads it, over Modbus TCP
 * against the harness's libmodbus server: every type, order and address form, block planning
 * with gaps, bisection of refused blocks, dead-unit back-off, writes, and config errors. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <modbus.h>

#include <ironbridge/ironbridge.h>

#include "harness.h"
#include "params.h"

static int setup(void **state)
{
    *state = mbt_fixture_new(MBT_TCP);
    return 0;
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- Tests ----------------------------------------------------------------------------------- */

static void test_descriptor(void **state)
{
    (void)state;
    assert_non_null(plugin);
    assert_int_equal(plugin->abi_major, IB_ABI_MAJOR);
    assert_true(plugin->abi_minor <= IB_ABI_MINOR);
    assert_int_equal(plugin->size, sizeof(struct ib_plugin));
    assert_string_equal(plugin->name, "modbus");
    assert_non_null(plugin->version);
    assert_non_null(plugin->description);
    assert_non_null(plugin->create);
    assert_non_null(plugin->destroy);
    assert_non_null(plugin->open);
    assert_non_null(plugin->close);
    assert_non_null(plugin->read_group);
    assert_non_null(plugin->write_tag);

    const struct ib_schema *schemas[] = {plugin->connection_schema, plugin->device_schema,
                                         plugin->tag_schema};
    const size_t sizes[] = {sizeof(struct mb_connection_params), sizeof(struct mb_device_params),
                            sizeof(struct mb_tag_params)};
    for (size_t s = 0; s < 3; s++) {
        assert_non_null(schemas[s]);
        assert_int_equal(schemas[s]->struct_size, sizes[s]);
        assert_true(schemas[s]->n_entries > 0);
        for (size_t i = 0; i < schemas[s]->n_entries; i++) {
            const struct ib_schema_entry *e = &schemas[s]->entries[i];
            assert_non_null(e->key);
            assert_non_null(e->description);
            assert_true(strlen(e->description) > 10);
            assert_true(e->offset < schemas[s]->struct_size);
            if (e->type == IB_S_ENUM)
                assert_non_null(e->choices);
            for (size_t j = 0; j < i; j++)
                assert_string_not_equal(e->key, schemas[s]->entries[j].key);
        }
    }
    /* The generic keys are the daemon's; the plugin must not claim them. */
    static const char *const generic[] = {"name",        "plugin",   "devices",    "groups",
                                          "interval_ms", "tags",     "scale",      "offset",
                                          "unit",        "writable", "description"};
    for (size_t s = 0; s < 3; s++)
        for (size_t i = 0; i < schemas[s]->n_entries; i++)
            for (size_t g = 0; g < sizeof(generic) / sizeof(generic[0]); g++)
                assert_string_not_equal(schemas[s]->entries[i].key, generic[g]);

    /* Defaults as documented. */
    struct mb_connection_params cp;
    struct mb_device_params dp;
    struct mb_tag_params tp;
    fill_defaults(plugin->connection_schema, &cp);
    fill_defaults(plugin->device_schema, &dp);
    fill_defaults(plugin->tag_schema, &tp);
    assert_int_equal(cp.transport, MB_P_TRANSPORT_TCP);
    assert_null(cp.host);
    assert_int_equal(cp.port, 0); /* absent: 502, so that it can be refused for rtu */
    assert_null(cp.serial_port);
    assert_int_equal(cp.baud, -1);
    assert_int_equal(cp.parity, -1);
    assert_int_equal(cp.data_bits, -1);
    assert_int_equal(cp.stop_bits, -1);
    assert_false(cp.rs485);
    assert_int_equal(cp.inter_frame_delay_us, 0);
    assert_int_equal(cp.timeout_ms, 1000);
    assert_int_equal(cp.byte_timeout_ms, 500);
    assert_int_equal(cp.connect_timeout_ms, 3000);
    assert_false(cp.close_after_poll);
    assert_int_equal(dp.unit_id, 1);
    assert_int_equal(dp.byte_order, MB_P_ORDER_ABCD);
    assert_int_equal(dp.byte_order_16, MB_P_ORDER16_AB);
    assert_int_equal(dp.timeout_ms, 0);
    assert_int_equal(dp.retries, 1);
    assert_int_equal(dp.max_registers, 125);
    assert_int_equal(dp.max_bits, 2000);
    assert_int_equal(dp.max_gap, 10);
    assert_false(dp.one_request_per_tag);
    assert_int_equal(dp.pause_between_requests_ms, 0);
    assert_false(dp.write_multiple);
    assert_int_equal(dp.backoff_max_ms, 60000);
    assert_null(tp.address);
    assert_int_equal(tp.table, -1);
    assert_int_equal(tp.type, -1);
    assert_int_equal(tp.order, -1);
    assert_int_equal(tp.bit, -1);
    assert_int_equal(tp.length, 0);
    assert_false(tp.verify_write);
}

static void test_read_every_type_and_order(void **state)
{
    struct fixture *fx = *state;
    struct mbt_server *s = fx->srv;
    struct mbt_config *c = &fx->cfg;

    static const uint16_t holding[] = {
        0x42F6, 0xE979, /* 0: float32 123.456 ABCD */
        0xE979, 0x42F6, /* 2: float32 123.456 CDAB */
        0xFFFF, 0xFFFE, /* 4: int32 -2 ABCD */
        0xFFFE, 0xFFFF, /* 6: int32 -2 CDAB */
        0x1234, 0x5678, /* 8: uint32 ABCD */
        0x5678, 0x1234, /* 10: uint32 CDAB */
        0xFB2E,         /* 12: int16 -1234 */
        0xFDE8,         /* 13: uint16 65000 */
        0x0000, 0x7FC0, /* 14: float32 NaN, CDAB */
    };
    static const uint16_t input[] = {4242, 0x0000, 0xBE20};
    set_regs(s, 0, 0, holding, 16);
    set_regs(s, 1, 0, input, 3);
    pthread_mutex_lock(&s->lock);
    s->map->tab_bits[0] = 1;
    s->map->tab_bits[1] = 0;
    s->map->tab_bits[2] = 1;
    s->map->tab_input_bits[5] = 1;
    pthread_mutex_unlock(&s->lock);

    /* The device's default order is CDAB; ABCD tags say so. */
    c->dp[0].byte_order = MB_P_ORDER_CDAB;
    c->dp[0].unit_id = 7;
    uint32_t f_abcd =
        add_tag(c, "f_abcd", MB_P_TABLE_HOLDING, 0, MB_P_TYPE_FLOAT32, MB_P_ORDER_ABCD, false);
    uint32_t f_cdab = add_tag(c, "f_cdab", MB_P_TABLE_HOLDING, 2, MB_P_TYPE_FLOAT32, -1, false);
    uint32_t i_abcd =
        add_tag(c, "i_abcd", MB_P_TABLE_HOLDING, 4, MB_P_TYPE_INT32, MB_P_ORDER_ABCD, false);
    uint32_t i_cdab =
        add_tag(c, "i_cdab", MB_P_TABLE_HOLDING, 6, MB_P_TYPE_INT32, MB_P_ORDER_CDAB, false);
    uint32_t u_abcd =
        add_tag(c, "u_abcd", MB_P_TABLE_HOLDING, 8, MB_P_TYPE_UINT32, MB_P_ORDER_ABCD, false);
    uint32_t u_cdab = add_tag(c, "u_cdab", MB_P_TABLE_HOLDING, 10, MB_P_TYPE_UINT32, -1, false);
    uint32_t i16 = add_tag(c, "i16", MB_P_TABLE_HOLDING, 12, MB_P_TYPE_INT16, -1, false);
    uint32_t u16 = add_tag(c, "u16", MB_P_TABLE_HOLDING, 13, -1, -1, false);
    uint32_t nan = add_tag(c, "nan", MB_P_TABLE_HOLDING, 14, MB_P_TYPE_FLOAT32, -1, false);
    uint32_t in16 = add_tag(c, "in16", MB_P_TABLE_INPUT, 0, -1, -1, false);
    uint32_t in_f = add_tag(c, "in_f", MB_P_TABLE_INPUT, 1, MB_P_TYPE_FLOAT32, -1, false);
    uint32_t c0 = add_tag(c, "c0", MB_P_TABLE_COIL, 0, -1, -1, false);
    uint32_t c1 = add_tag(c, "c1", MB_P_TABLE_COIL, 1, MB_P_TYPE_BOOL, -1, false);
    uint32_t c2 = add_tag(c, "c2", MB_P_TABLE_COIL, 2, -1, -1, false);
    uint32_t d5 = add_tag(c, "d5", MB_P_TABLE_DISCRETE_INPUT, 5, -1, -1, false);
    uint32_t dup = add_tag(c, "dup", MB_P_TABLE_HOLDING, 13, MB_P_TYPE_UINT16, -1, false);
    create_and_open(fx);

    unsigned before_requests = mbt_server_requests(s);
    int64_t t0 = fx->fake.host.now_ms();
    assert_int_equal(read_group(fx), 0);
    int64_t t1 = fx->fake.host.now_ms();
    struct ib_sample *sm = fx->samples;

    /* 4 requests: holding 0..15, input 0..2, coils 0..2, discrete input 5. */
    assert_int_equal(mbt_server_requests(s) - before_requests, 4);
    pthread_mutex_lock(&s->lock);
    assert_int_equal(s->unit_requests[7], 4);
    pthread_mutex_unlock(&s->lock);

    assert_good(&sm[f_abcd], IB_V_DOUBLE);
    assert_true(sm[f_abcd].value.v.d == (double)123.456f);
    assert_good(&sm[f_cdab], IB_V_DOUBLE);
    assert_true(sm[f_cdab].value.v.d == (double)123.456f);
    assert_good(&sm[i_abcd], IB_V_INT);
    assert_true(sm[i_abcd].value.v.i == -2);
    assert_good(&sm[i_cdab], IB_V_INT);
    assert_true(sm[i_cdab].value.v.i == -2);
    assert_good(&sm[u_abcd], IB_V_UINT);
    assert_true(sm[u_abcd].value.v.u == 0x12345678u);
    assert_good(&sm[u_cdab], IB_V_UINT);
    assert_true(sm[u_cdab].value.v.u == 0x12345678u);
    assert_good(&sm[i16], IB_V_INT);
    assert_true(sm[i16].value.v.i == -1234);
    assert_good(&sm[u16], IB_V_UINT);
    assert_true(sm[u16].value.v.u == 65000);
    assert_good(&sm[dup], IB_V_UINT);
    assert_true(sm[dup].value.v.u == 65000);
    assert_bad(&sm[nan], IB_R_DECODE, 0);
    assert_good(&sm[in16], IB_V_UINT);
    assert_true(sm[in16].value.v.u == 4242);
    assert_good(&sm[in_f], IB_V_DOUBLE);
    assert_true(sm[in_f].value.v.d == -0.15625);
    assert_good(&sm[c0], IB_V_BOOL);
    assert_true(sm[c0].value.v.b);
    assert_good(&sm[c1], IB_V_BOOL);
    assert_false(sm[c1].value.v.b);
    assert_good(&sm[c2], IB_V_BOOL);
    assert_true(sm[c2].value.v.b);
    assert_good(&sm[d5], IB_V_BOOL);
    assert_true(sm[d5].value.v.b);
    for (uint32_t i = 0; i < c->group[0].n_tags; i++) {
        assert_true(sm[i].ts_ms >= t0 && sm[i].ts_ms <= t1);
        assert_int_equal(sm[i].reserved, 0);
    }

    /* The NaN is logged once, not at every poll. */
    unsigned warnings = fx->fake.n_warnings;
    assert_int_equal(read_group(fx), 0);
    assert_bad(&sm[nan], IB_R_DECODE, 0);
    assert_int_equal(fx->fake.n_warnings, warnings);
}

static void test_exception_marks_only_its_request(void **state)
{
    struct fixture *fx = *state;
    struct mbt_config *c = &fx->cfg;
    static const uint16_t v[] = {11, 22};
    set_regs(fx->srv, 0, 0, v, 2);

    uint32_t coil = add_tag(c, "coil", MB_P_TABLE_COIL, 3, -1, -1, false);
    uint32_t in_ok = add_tag(c, "in_ok", MB_P_TABLE_INPUT, 99, -1, -1, false);
    /* The server maps 100 input registers: 150 is past the end (exception 2). */
    uint32_t in_bad1 = add_tag(c, "in_bad1", MB_P_TABLE_INPUT, 150, -1, -1, false);
    uint32_t in_bad2 = add_tag(c, "in_bad2", MB_P_TABLE_INPUT, 151, MB_P_TYPE_INT32, -1, false);
    uint32_t h0 = add_tag(c, "h0", MB_P_TABLE_HOLDING, 0, -1, -1, false);
    uint32_t h1 = add_tag(c, "h1", MB_P_TABLE_HOLDING, 1, -1, -1, false);
    create_and_open(fx);

    assert_int_equal(read_group(fx), IB_ERR_EXCEPTION);
    struct ib_sample *sm = fx->samples;
    assert_good(&sm[coil], IB_V_BOOL);
    assert_good(&sm[in_ok], IB_V_UINT);
    assert_bad(&sm[in_bad1], IB_R_EXCEPTION, 2);
    assert_bad(&sm[in_bad2], IB_R_EXCEPTION, 2);
    assert_true(sm[in_bad1].ts_ms > 0);
    /* The request after the failed one still ran. */
    assert_good(&sm[h0], IB_V_UINT);
    assert_true(sm[h0].value.v.u == 11);
    assert_good(&sm[h1], IB_V_UINT);
    assert_true(sm[h1].value.v.u == 22);

    /* Logged once, then not again while it repeats. */
    unsigned warnings = fx->fake.n_warnings;
    assert_true(warnings >= 1);
    for (int i = 0; i < 3; i++)
        assert_int_equal(read_group(fx), IB_ERR_EXCEPTION);
    assert_int_equal(fx->fake.n_warnings, warnings);
}

static void test_timeout_then_late_answer(void **state)
{
    struct fixture *fx = *state;
    struct mbt_server *s = fx->srv;
    struct mbt_config *c = &fx->cfg;
    static const uint16_t v[] = {0x0001, 0x0002};
    set_regs(s, 0, 40, v, 2);

    /* The device's timeout overrides the connection's: with the connection's 60 s this test
     * would run into meson's time limit. */
    c->cp.timeout_ms = 60000;
    c->dp[0].timeout_ms = 200;
    c->dp[0].retries = 0;        /* a retry would meet the late answer */
    c->dp[0].backoff_max_ms = 0; /* and a back-off would skip the next poll */
    uint32_t t = add_tag(c, "u32", MB_P_TABLE_HOLDING, 40, MB_P_TYPE_UINT32, -1, false);
    create_and_open(fx);

    mbt_server_fault(s, MBT_HOLD, 1);
    assert_int_equal(read_group(fx), IB_ERR_TIMEOUT);
    assert_bad(&fx->samples[t], IB_R_TIMEOUT, 0);

    /* Now the server answers the old request, after the plugin gave up on it, and the value
     * changes. The late answer (0x00010002) waits in the socket: it is dropped before the next
     * request, which reads the current value, without a reconnect. */
    mbt_server_release(s);
    uint16_t three = 0x0003;
    set_regs(s, 0, 41, &three, 1);
    unsigned conns = mbt_server_connections(s);
    assert_int_equal(read_group(fx), 0);
    assert_good(&fx->samples[t], IB_V_UINT);
    assert_true(fx->samples[t].value.v.u == 0x00010003u);
    assert_int_equal(mbt_server_connections(s), conns);

    /* An answer that comes only after the next request was sent carries the old transaction
     * id: it is refused (protocol error, never its value) and the plugin reconnects by itself;
     * the poll after that reads current data. */
    mbt_server_fault(s, MBT_LATE, 1);
    assert_int_equal(read_group(fx), IB_ERR_TIMEOUT);
    assert_int_equal(read_group(fx), IB_ERR_PROTOCOL);
    assert_bad(&fx->samples[t], IB_R_PROTOCOL, 0);
    uint16_t four = 0x0004;
    set_regs(s, 0, 41, &four, 1);
    assert_int_equal(read_group(fx), 0);
    assert_true(fx->samples[t].value.v.u == 0x00010004u);
    assert_int_equal(mbt_server_connections(s), conns + 1); /* one reconnect */
}

static void test_write_round_trip(void **state)
{
    struct fixture *fx = *state;
    struct mbt_server *s = fx->srv;
    struct mbt_config *c = &fx->cfg;

    c->dp[0].byte_order = MB_P_ORDER_CDAB;
    uint32_t coil = add_tag(c, "coil", MB_P_TABLE_COIL, 10, -1, -1, true);
    uint32_t u16 = add_tag(c, "u16", MB_P_TABLE_HOLDING, 20, -1, -1, true);
    uint32_t i16 = add_tag(c, "i16", MB_P_TABLE_HOLDING, 21, MB_P_TYPE_INT16, -1, true);
    uint32_t i32 = add_tag(c, "i32", MB_P_TABLE_HOLDING, 30, MB_P_TYPE_INT32, -1, true);
    uint32_t f32 =
        add_tag(c, "f32", MB_P_TABLE_HOLDING, 40, MB_P_TYPE_FLOAT32, MB_P_ORDER_ABCD, true);
    uint32_t ro = add_tag(c, "ro", MB_P_TABLE_HOLDING, 50, -1, -1, false);
    uint32_t in = add_tag(c, "in", MB_P_TABLE_INPUT, 0, -1, -1, false);
    uint32_t di = add_tag(c, "di", MB_P_TABLE_DISCRETE_INPUT, 0, -1, -1, false);
    /* The server maps 200 holding registers: a write to 300 draws exception 2. */
    uint32_t far = add_tag(c, "far", MB_P_TABLE_HOLDING, 300, -1, -1, true);
    create_and_open(fx);

    const struct ib_value on = {.type = IB_V_BOOL, .v.b = true};
    const struct ib_value u = {.type = IB_V_UINT, .v.u = 65000};
    const struct ib_value neg = {.type = IB_V_INT, .v.i = -1234};
    const struct ib_value big_neg = {.type = IB_V_INT, .v.i = -2};
    const struct ib_value fl = {.type = IB_V_DOUBLE, .v.d = 123.456};
    assert_int_equal(plugin->write_tag(fx->inst, 0, 0, coil, &on), 0);
    assert_int_equal(plugin->write_tag(fx->inst, 0, 0, u16, &u), 0);
    assert_int_equal(plugin->write_tag(fx->inst, 0, 0, i16, &neg), 0);
    assert_int_equal(plugin->write_tag(fx->inst, 0, 0, i32, &big_neg), 0);
    assert_int_equal(plugin->write_tag(fx->inst, 0, 0, f32, &fl), 0);

    pthread_mutex_lock(&s->lock);
    assert_int_equal(s->map->tab_bits[10], 1);
    assert_int_equal(s->map->tab_registers[20], 65000);
    assert_int_equal(s->map->tab_registers[21], 0xFB2E);
    assert_int_equal(s->map->tab_registers[30], 0xFFFE); /* CDAB: low word first */
    assert_int_equal(s->map->tab_registers[31], 0xFFFF);
    assert_int_equal(s->map->tab_registers[40], 0x42F6);
    assert_int_equal(s->map->tab_registers[41], 0xE979);
    pthread_mutex_unlock(&s->lock);

    /* "far" fails with its own request; everything written reads back. */
    assert_int_equal(read_group(fx), IB_ERR_EXCEPTION);
    struct ib_sample *sm = fx->samples;
    assert_bad(&sm[far], IB_R_EXCEPTION, 2);
    assert_true(sm[coil].value.v.b);
    assert_true(sm[u16].value.v.u == 65000);
    assert_true(sm[i16].value.v.i == -1234);
    assert_true(sm[i32].value.v.i == -2);
    assert_true(sm[f32].value.v.d == (double)123.456f);

    /* An integral double is accepted for an integer tag (the daemon's inverse scaling). */
    const struct ib_value two = {.type = IB_V_DOUBLE, .v.d = 2.0};
    assert_int_equal(plugin->write_tag(fx->inst, 0, 0, u16, &two), 0);
    pthread_mutex_lock(&s->lock);
    assert_int_equal(s->map->tab_registers[20], 2);
    pthread_mutex_unlock(&s->lock);

    /* Refusals, with nothing sent. */
    unsigned requests = mbt_server_requests(s);
    const struct ib_value too_big = {.type = IB_V_UINT, .v.u = 70000};
    assert_int_equal(plugin->write_tag(fx->inst, 0, 0, u16, &too_big), IB_ERR_INVALID);
    const struct ib_value half = {.type = IB_V_DOUBLE, .v.d = 1.5};
    assert_int_equal(plugin->write_tag(fx->inst, 0, 0, i16, &half), IB_ERR_INVALID);
    const struct ib_value nan = {.type = IB_V_DOUBLE, .v.d = __builtin_nan("")};
    assert_int_equal(plugin->write_tag(fx->inst, 0, 0, f32, &nan), IB_ERR_INVALID);
    const struct ib_value seven = {.type = IB_V_INT, .v.i = 7};
    assert_int_equal(plugin->write_tag(fx->inst, 0, 0, coil, &seven), IB_ERR_INVALID);
    assert_int_equal(plugin->write_tag(fx->inst, 0, 0, ro, &u), IB_ERR_DENIED);
    assert_int_equal(plugin->write_tag(fx->inst, 0, 0, in, &u), IB_ERR_DENIED);
    assert_int_equal(plugin->write_tag(fx->inst, 0, 0, di, &on), IB_ERR_DENIED);
    assert_int_equal(plugin->write_tag(fx->inst, 0, 0, 99, &u), IB_ERR_INVALID);
    assert_int_equal(plugin->write_tag(fx->inst, 0, 1, 0, &u), IB_ERR_INVALID);
    assert_int_equal(plugin->write_tag(fx->inst, 1, 0, 0, &u), IB_ERR_INVALID);
    assert_int_equal(mbt_server_requests(s), requests);
    pthread_mutex_lock(&s->lock);
    assert_int_equal(s->map->tab_registers[20], 2);
    pthread_mutex_unlock(&s->lock);

    /* A write past the server's mapping comes back as the device's exception. */
    assert_int_equal(plugin->write_tag(fx->inst, 0, 0, far, &u), IB_ERR_EXCEPTION);
}

static void test_connection_lost(void **state)
{
    struct fixture *fx = *state;
    struct mbt_config *c = &fx->cfg;
    uint32_t a = add_tag(c, "a", MB_P_TABLE_HOLDING, 0, -1, -1, true);
    uint32_t b = add_tag(c, "b", MB_P_TABLE_COIL, 0, -1, -1, false);
    create_and_open(fx);
    assert_int_equal(read_group(fx), 0);

    mbt_server_stop(fx->srv);
    assert_int_equal(read_group(fx), IB_ERR_CONNECTION);
    /* Both requests' tags are bad: the first failed, the second was not tried. */
    assert_bad(&fx->samples[a], IB_R_CONN_LOST, 0);
    assert_bad(&fx->samples[b], IB_R_CONN_LOST, 0);
    assert_true(fx->samples[a].ts_ms > 0 && fx->samples[b].ts_ms > 0);

    /* The daemon closes and reopens; nobody listens now. */
    plugin->close(fx->inst);
    plugin->close(fx->inst); /* twice is fine */
    unsigned logs = fx->fake.n_logs;
    assert_int_equal(plugin->open(fx->inst), IB_ERR_CONNECTION);
    assert_int_equal(fx->fake.n_logs, logs + 1);
    assert_non_null(strstr(fx->fake.last_log, "cannot connect"));
    assert_non_null(strstr(fx->fake.last_log, "refused"));
    /* The same failure again is not logged again. */
    assert_int_equal(plugin->open(fx->inst), IB_ERR_CONNECTION);
    assert_int_equal(fx->fake.n_logs, logs + 1);

    /* Closed: every sample is still filled, and writes say so too. */
    assert_int_equal(read_group(fx), IB_ERR_CONNECTION);
    assert_bad(&fx->samples[a], IB_R_CONN_LOST, 0);
    assert_bad(&fx->samples[b], IB_R_CONN_LOST, 0);
    const struct ib_value one = {.type = IB_V_UINT, .v.u = 1};
    assert_int_equal(plugin->write_tag(fx->inst, 0, 0, a, &one), IB_ERR_CONNECTION);
}

static void test_create_reports_every_error(void **state)
{
    struct fixture *fx = *state;
    struct mbt_config *c = &fx->cfg;
    c->dp[0].unit_id = 250;
    c->dp[0].max_registers = 1;
    add_tag(c, "ok", MB_P_TABLE_HOLDING, 0, -1, -1, true);
    add_tag(c, "int_on_coil", MB_P_TABLE_COIL, 0, MB_P_TYPE_INT16, -1, false);
    add_tag(c, "bool_on_holding", MB_P_TABLE_HOLDING, 1, MB_P_TYPE_BOOL, -1, false);
    add_tag(c, "order_on_16bit", MB_P_TABLE_INPUT, 2, MB_P_TYPE_UINT16, MB_P_ORDER_CDAB, false);
    add_tag(c, "past_end", MB_P_TABLE_INPUT, 65535, MB_P_TYPE_FLOAT32, -1, false);
    add_tag(c, "ro_writable", MB_P_TABLE_DISCRETE_INPUT, 0, -1, -1, true);

    void *inst = (void *)1;
    assert_int_equal(plugin->create(&fx->fake.host, ctx_of(&fx->fake), &c->conn, &inst),
                     IB_ERR_INVALID);
    assert_null(inst);
    /* unit_id; type; type; order; address and max_registers of past_end; writable. */
    assert_int_equal(fx->fake.n_config_errors, 7);
    static const char *const keys[] = {"type", "type", "order", "address", "type", "writable"};
    assert_ptr_equal(fx->fake.config_where[0], &c->device[0]);
    assert_string_equal(fx->fake.config_keys[0], "unit_id");
    for (unsigned i = 0; i < 6; i++)
        assert_string_equal(fx->fake.config_keys[1 + i], keys[i]);
    assert_ptr_equal(fx->fake.config_where[1], &c->tp[0][1]);
    assert_ptr_equal(fx->fake.config_where[6], &c->tp[0][5]);
}

static void test_create_does_no_io(void **state)
{
    struct fixture *fx = *state;
    struct mbt_config *c = &fx->cfg;
    /* A name that never resolves: create() must not try (--check runs it offline). */
    c->cp.host = "ironbridge-test.invalid";
    add_tag(c, "a", MB_P_TABLE_HOLDING, 0, -1, -1, false);
    void *inst = NULL;
    assert_int_equal(plugin->create(&fx->fake.host, ctx_of(&fx->fake), &c->conn, &inst), 0);
    assert_int_equal(fx->fake.n_logs, 0);
    /* No group, no device: fine too; destroy(NULL) is a no-op. */
    plugin->destroy(inst);
    plugin->destroy(NULL);
    c->group[0].n_tags = 0;
    inst = NULL;
    assert_int_equal(plugin->create(&fx->fake.host, ctx_of(&fx->fake), &c->conn, &inst), 0);
    assert_int_equal(plugin->read_group(inst, 0, 0, fx->samples), 0);
    plugin->destroy(inst);
    c->conn.n_devices = 0;
    inst = NULL;
    assert_int_equal(plugin->create(&fx->fake.host, ctx_of(&fx->fake), &c->conn, &inst), 0);
    assert_int_equal(plugin->read_group(inst, 0, 0, fx->samples), IB_ERR_INVALID);
    plugin->destroy(inst);
    /* An empty host is a config error. */
    c->cp.host = "";
    assert_int_equal(plugin->create(&fx->fake.host, ctx_of(&fx->fake), &c->conn, &inst),
                     IB_ERR_INVALID);
    assert_string_equal(fx->fake.config_keys[0], "host");
}

static void test_more_types_orders_and_addresses(void **state)
{
    struct fixture *fx = *state;
    struct mbt_server *s = fx->srv;
    struct mbt_config *c = &fx->cfg;

    static const uint16_t holding[] = {
        0x0102, 0x0304, 0x0506, 0x0708, /* 0: uint64 ABCD */
        0x0807, 0x0605, 0x0403, 0x0201, /* 4: uint64 DCBA */
        0x0201, 0x0403, 0x0605, 0x0807, /* 8: uint64 BADC */
        0xFFFF, 0xFFFF, 0xFFFF, 0xFFFE, /* 12: int64 -2 ABCD */
        0x405E, 0xDD2F, 0x1A9F, 0xBE77, /* 16: float64 123.456 ABCD */
        0x3412,                         /* 20: uint16 0x1234 as BA */
        0x79E9, 0xF642,                 /* 21: float32 123.456 DCBA */
        0xF642, 0x79E9,                 /* 23: float32 123.456 BADC */
        0x8005,                         /* 25: bits 0, 2, 15 */
        0x6865, 0x6C6C, 0x6F20, 0x0000, /* 26: "hello " + NUL: string AB, 4 registers */
        0x6548, 0x6C6C, 0x006F,         /* 30: "Hello" as BA */
        0x41FF, 0xC3A9, 0x2020,         /* 33: 'A', an invalid byte, e-acute, two spaces */
        0xFFFF, 0xFFFF, 0xFFFF, 0xFFFF, /* 36: uint64 max */
    };
    set_regs(s, 0, 0, holding, 40);

    uint32_t u64 = add_tag(c, "u64", MB_P_TABLE_HOLDING, 0, MB_P_TYPE_UINT64, -1, false);
    uint32_t u64_dcba =
        add_tag(c, "u64_dcba", MB_P_TABLE_HOLDING, 4, MB_P_TYPE_UINT64, MB_P_ORDER_DCBA, false);
    uint32_t u64_badc =
        add_tag(c, "u64_badc", MB_P_TABLE_HOLDING, 8, MB_P_TYPE_UINT64, MB_P_ORDER_BADC, false);
    uint32_t i64 = add_tag(c, "i64", MB_P_TABLE_HOLDING, 12, MB_P_TYPE_INT64, -1, false);
    uint32_t f64 = add_tag(c, "f64", MB_P_TABLE_HOLDING, 16, MB_P_TYPE_FLOAT64, -1, false);
    uint32_t u16_ba =
        add_tag(c, "u16_ba", MB_P_TABLE_HOLDING, 20, MB_P_TYPE_UINT16, MB_P_ORDER_BA, false);
    uint32_t f_dcba =
        add_tag(c, "f_dcba", MB_P_TABLE_HOLDING, 21, MB_P_TYPE_FLOAT32, MB_P_ORDER_DCBA, false);
    uint32_t f_badc =
        add_tag(c, "f_badc", MB_P_TABLE_HOLDING, 23, MB_P_TYPE_FLOAT32, MB_P_ORDER_BADC, false);
    uint32_t b0 = add_tag(c, "b0", MB_P_TABLE_HOLDING, 25, MB_P_TYPE_BIT, -1, false);
    c->tp[0][b0].bit = 0;
    uint32_t b1 = add_tag(c, "b1", MB_P_TABLE_HOLDING, 25, MB_P_TYPE_BIT, -1, false);
    c->tp[0][b1].bit = 1;
    uint32_t b15 = add_tag(c, "b15", MB_P_TABLE_HOLDING, 25, MB_P_TYPE_BIT, -1, false);
    c->tp[0][b15].bit = 15;
    /* With BA the register reads 0x0580: bit 7 is set, bit 15 is not. */
    uint32_t b7_ba =
        add_tag(c, "b7_ba", MB_P_TABLE_HOLDING, 25, MB_P_TYPE_BIT, MB_P_ORDER_BA, false);
    c->tp[0][b7_ba].bit = 7;
    uint32_t str = add_tag(c, "str", MB_P_TABLE_HOLDING, 26, MB_P_TYPE_STRING, -1, false);
    c->tp[0][str].length = 4;
    uint32_t str_ba =
        add_tag(c, "str_ba", MB_P_TABLE_HOLDING, 30, MB_P_TYPE_STRING, MB_P_ORDER_BA, false);
    c->tp[0][str_ba].length = 3;
    uint32_t utf = add_tag(c, "utf", MB_P_TABLE_HOLDING, 33, MB_P_TYPE_STRING, -1, false);
    c->tp[0][utf].length = 3;
    uint32_t u64max = add_tag(c, "u64max", MB_P_TABLE_HOLDING, 36, MB_P_TYPE_UINT64, -1, false);
    /* Modicon references: holding 400021 is address 20, input 30001 is address 0; hex too. */
    uint32_t modi =
        mbt_tag(c, 0, "modicon", -1, "modicon:400021", MB_P_TYPE_UINT16, MB_P_ORDER_BA, false);
    uint32_t modi5 = mbt_tag(c, 0, "modicon5", MB_P_TABLE_INPUT, "modicon:30001", -1, -1, false);
    uint32_t hex = mbt_tag(c, 0, "hex", MB_P_TABLE_HOLDING, "0x0014", -1, -1, false);
    uint16_t in0 = 4242;
    set_regs(s, 1, 0, &in0, 1);
    create_and_open(fx);

    unsigned before = mbt_server_requests(s);
    assert_int_equal(read_group(fx), 0);
    /* Holding 0..39 in one request, input 0 in another. */
    assert_int_equal(mbt_server_requests(s) - before, 2);
    struct ib_sample *sm = fx->samples;
    assert_good(&sm[u64], IB_V_UINT);
    assert_true(sm[u64].value.v.u == 0x0102030405060708ull);
    assert_true(sm[u64_dcba].value.v.u == 0x0102030405060708ull);
    assert_true(sm[u64_badc].value.v.u == 0x0102030405060708ull);
    assert_good(&sm[i64], IB_V_INT);
    assert_true(sm[i64].value.v.i == -2);
    assert_good(&sm[f64], IB_V_DOUBLE);
    assert_true(sm[f64].value.v.d == 123.456);
    assert_int_equal(sm[f64].value.flags, 0);
    assert_good(&sm[u16_ba], IB_V_UINT);
    assert_true(sm[u16_ba].value.v.u == 0x1234);
    assert_true(sm[f_dcba].value.v.d == (double)123.456f);
    assert_int_equal(sm[f_dcba].value.flags, IB_VF_FLOAT32);
    assert_true(sm[f_badc].value.v.d == (double)123.456f);
    assert_good(&sm[b0], IB_V_BOOL);
    assert_true(sm[b0].value.v.b);
    assert_false(sm[b1].value.v.b);
    assert_true(sm[b15].value.v.b);
    assert_true(sm[b7_ba].value.v.b);
    assert_good(&sm[str], IB_V_STRING);
    assert_int_equal(sm[str].value.v.s.len, 5); /* "hello": NUL and the space trimmed */
    assert_memory_equal(sm[str].value.v.s.ptr, "hello", 5);
    assert_int_equal(sm[str_ba].value.v.s.len, 5);
    assert_memory_equal(sm[str_ba].value.v.s.ptr, "Hello", 5);
    /* The invalid byte became U+FFFD; valid UTF-8 stays. */
    assert_int_equal(sm[utf].value.v.s.len, 6);
    assert_memory_equal(sm[utf].value.v.s.ptr, "A\xEF\xBF\xBD\xC3\xA9", 6);
    assert_true(sm[u64max].value.v.u == UINT64_MAX);
    assert_good(&sm[modi], IB_V_UINT);
    assert_true(sm[modi].value.v.u == 0x1234);
    assert_good(&sm[modi5], IB_V_UINT);
    assert_true(sm[modi5].value.v.u == 4242);
    assert_true(sm[hex].value.v.u == 0x3412);
}

/* A device that refuses some registers inside a block: the block is bisected, only the refused
 * tags go bad, the split is kept, and the planned block comes back when they read again. */
static void test_refused_block_is_narrowed_down(void **state)
{
    struct fixture *fx = *state;
    struct mbt_server *s = fx->srv;
    struct mbt_config *c = &fx->cfg;
    uint16_t v[40];
    for (int i = 0; i < 40; i++)
        v[i] = (uint16_t)(1000 + i);
    set_regs(s, 0, 0, v, 40);
    char name[40][8];
    for (int i = 0; i < 40; i++) {
        snprintf(name[i], sizeof(name[i]), "t%d", i);
        add_tag(c, name[i], MB_P_TABLE_HOLDING, i, -1, -1, false);
    }
    /* Two tags the device refuses, and an unused hole inside a gap that is read over. */
    mbt_server_refuse(s, 10, 1, true);
    mbt_server_refuse(s, 25, 1, true);
    uint32_t far1 = add_tag(c, "far1", MB_P_TABLE_HOLDING, 50, -1, -1, false);
    uint32_t far2 = add_tag(c, "far2", MB_P_TABLE_HOLDING, 56, -1, -1, false);
    mbt_server_refuse(s, 53, 1, true);
    create_and_open(fx);

    unsigned logs = fx->fake.n_logs;
    unsigned r0 = mbt_server_requests(s);
    assert_int_equal(read_group(fx), IB_ERR_EXCEPTION);
    unsigned first_poll = mbt_server_requests(s) - r0;
    struct ib_sample *sm = fx->samples;
    for (int i = 0; i < 40; i++) {
        if (i == 10 || i == 25) {
            assert_bad(&sm[i], IB_R_EXCEPTION, 2);
            continue;
        }
        assert_good(&sm[i], IB_V_UINT);
        assert_true(sm[i].value.v.u == (uint64_t)(1000 + i));
    }
    /* far1 and far2 were one block over the hole; both halves read alone. */
    assert_good(&sm[far1], IB_V_UINT);
    assert_good(&sm[far2], IB_V_UINT);
    /* One block refused, then halves until the two tags were found: a few requests, not 42. */
    assert_true(first_poll > 2 && first_poll < 30);
    assert_int_equal(mbt_log_count(&fx->fake, logs, "refuses holding 10", NULL), 1);
    assert_int_equal(mbt_log_count(&fx->fake, logs, "refuses holding 25", NULL), 1);
    assert_int_equal(mbt_log_count(&fx->fake, logs, "narrowed down to 5 request(s) and 2", NULL),
                     1);

    /* The split is kept: the next poll reads the accepted blocks without asking again for the
     * refused tags, and says nothing new. */
    r0 = mbt_server_requests(s);
    logs = fx->fake.n_logs;
    assert_int_equal(read_group(fx), IB_ERR_EXCEPTION);
    unsigned steady = mbt_server_requests(s) - r0;
    /* 0..9, 11..24, 26..39 and the two far tags. */
    assert_int_equal(steady, 5);
    assert_bad(&sm[10], IB_R_EXCEPTION, 2);
    assert_bad(&sm[25], IB_R_EXCEPTION, 2);
    assert_good(&sm[11], IB_V_UINT);
    assert_int_equal(fx->fake.n_logs, logs);

    /* The device accepts register 25 again: the refused tag is tried again within
     * MB_REFUSED_RECHECK_POLLS polls, and then the group goes back to its planned blocks
     * (and narrows 10 down once more). */
    mbt_server_refuse(s, 25, 1, false);
    bool back = false;
    for (int i = 0; i < 40 && !back; i++) {
        read_group(fx);
        back = sm[25].quality == IB_Q_GOOD;
    }
    assert_true(back);
    assert_true(sm[25].value.v.u == 1025);
    assert_int_equal(mbt_log_count(&fx->fake, logs, "reads holding 25 again", NULL), 1);
    assert_int_equal(read_group(fx), IB_ERR_EXCEPTION);
    assert_good(&sm[25], IB_V_UINT);
    assert_bad(&sm[10], IB_R_EXCEPTION, 2);
    r0 = mbt_server_requests(s);
    read_group(fx);
    /* 0..9, 11..39 (one block again) and the two far tags. */
    assert_int_equal(mbt_server_requests(s) - r0, 4);
}

/* Gaps are read over up to max_gap; one_request_per_tag and max_registers split further. */
static void test_gaps_and_request_limits(void **state)
{
    struct fixture *fx = *state;
    struct mbt_server *s = fx->srv;
    struct mbt_config *c = &fx->cfg;
    /* 20 tags 4 registers apart: 0, 4, ..., 76 (3-register gaps). */
    char name[20][8];
    for (int i = 0; i < 20; i++) {
        snprintf(name[i], sizeof(name[i]), "t%d", i);
        add_tag(c, name[i], MB_P_TABLE_HOLDING, 4 * i, -1, -1, false);
    }
    static const struct {
        int64_t max_gap, max_registers;
        bool one_per_tag;
        unsigned requests;
    } cases[] = {
        {10, 125, false, 1},                     /* the default: one request over the gaps */
        {2, 125, false, 20},                     /* gaps of 3 are too wide */
        {3, 125, false, 1},  {10, 40, false, 2}, /* 77 registers, at most 40 each */
        {10, 125, true, 20},
    };
    for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
        c->dp[0].max_gap = cases[k].max_gap;
        c->dp[0].max_registers = cases[k].max_registers;
        c->dp[0].one_request_per_tag = cases[k].one_per_tag;
        create_and_open(fx);
        unsigned r0 = mbt_server_requests(s);
        assert_int_equal(read_group(fx), 0);
        if (mbt_server_requests(s) - r0 != cases[k].requests)
            fail_msg("case %zu: %u requests, expected %u", k, mbt_server_requests(s) - r0,
                     cases[k].requests);
        plugin->close(fx->inst);
        plugin->destroy(fx->inst);
        fx->inst = NULL;
    }
}

static void test_pause_between_requests(void **state)
{
    struct fixture *fx = *state;
    struct mbt_config *c = &fx->cfg;
    c->dp[0].one_request_per_tag = true;
    c->dp[0].pause_between_requests_ms = 30;
    add_tag(c, "a", MB_P_TABLE_HOLDING, 0, -1, -1, false);
    add_tag(c, "b", MB_P_TABLE_HOLDING, 1, -1, -1, false);
    add_tag(c, "c", MB_P_TABLE_HOLDING, 2, -1, -1, false);
    create_and_open(fx);
    int64_t t0 = mono_ms();
    assert_int_equal(read_group(fx), 0);
    /* Three requests with a pause before the second and the third (a lower bound only). */
    assert_true(mono_ms() - t0 >= 60);
}

/* Five units on one connection, one of them silent: it costs one timeout, then it is backed off
 * (its samples bad without I/O) for 1, 2, 4... intervals; it recovers by itself. */
static void test_dead_unit_is_backed_off(void **state)
{
    struct fixture *fx = *state;
    struct mbt_server *s = fx->srv;
    struct mbt_config *c = &fx->cfg;
    c->cp.timeout_ms = 100;
    for (int u = 2; u <= 5; u++)
        mbt_add_device(c, u);
    for (uint32_t d = 0; d < 5; d++) {
        c->group[d].interval_ms = 20;
        mbt_tag(c, d, "v", MB_P_TABLE_HOLDING, "0", -1, -1, false);
        mbt_tag(c, d, "w", MB_P_TABLE_INPUT, "0", -1, -1, false);
    }
    static const int live[] = {1, 2, 4, 5};
    mbt_server_units(s, live, 4);
    create_and_open(fx);

    unsigned logs = fx->fake.n_logs;
    int64_t worst_skip = 0;
    for (int cycle = 0; cycle < 25; cycle++) {
        int64_t cycle_start = mono_ms();
        for (uint32_t d = 0; d < 5; d++) {
            int64_t t0 = mono_ms();
            int rc = read_dev(fx, d);
            if (d == 2) {
                assert_int_equal(rc, IB_ERR_TIMEOUT);
                assert_bad(&fx->samples[0], IB_R_TIMEOUT, 0);
                assert_bad(&fx->samples[1], IB_R_TIMEOUT, 0);
                if (cycle > 0 && s->unit_requests[3] == 0)
                    fail_msg("unit 3 never asked");
            } else {
                assert_int_equal(rc, 0);
                assert_good(&fx->samples[0], IB_V_UINT);
            }
            int64_t took = mono_ms() - t0;
            if (d == 2 && took < 50 && took > worst_skip)
                worst_skip = took;
        }
        int64_t left = 20 - (mono_ms() - cycle_start);
        if (left > 0)
            usleep((useconds_t)left * 1000);
    }
    pthread_mutex_lock(&s->lock);
    unsigned asked = s->unit_requests[3];
    pthread_mutex_unlock(&s->lock);
    /* Without back-off 25 polls would each send 1 + 1 retry; with it: the first poll (and its
     * retry, of the first request only), then probes after 1, 2, 4, 8 intervals (each probe one
     * request, no retry). Cycles stretch while a probe waits, so allow some slack. */
    if (asked < 3 || asked > 8)
        fail_msg("unit 3 was asked %u times in 25 cycles", asked);
    assert_true(worst_skip < 10); /* a backed-off poll does no I/O */
    assert_int_equal(mbt_log_count(&fx->fake, logs, "unit 3 does not answer", NULL), 1);

    /* It comes back: within the current back-off (at most 16 intervals here) it reads again,
     * and that is logged once. */
    static const int all[] = {1, 2, 3, 4, 5};
    mbt_server_units(s, all, 5);
    bool back = false;
    for (int i = 0; i < 60 && !back; i++) {
        back = read_dev(fx, 2) == 0;
        usleep(20000);
    }
    assert_true(back);
    assert_good(&fx->samples[0], IB_V_UINT);
    assert_int_equal(mbt_log_count(&fx->fake, logs, "unit 3 answers again", NULL), 1);
}

/* A dead unit with back-off disabled is asked at every poll. */
static void test_backoff_can_be_disabled(void **state)
{
    struct fixture *fx = *state;
    struct mbt_server *s = fx->srv;
    struct mbt_config *c = &fx->cfg;
    c->cp.timeout_ms = 30;
    c->dp[0].backoff_max_ms = 0;
    c->dp[0].retries = 0;
    c->group[0].interval_ms = 10;
    add_tag(c, "v", MB_P_TABLE_HOLDING, 0, -1, -1, false);
    static const int none[] = {9};
    mbt_server_units(s, none, 1);
    create_and_open(fx);
    for (int i = 0; i < 5; i++)
        assert_int_equal(read_group(fx), IB_ERR_TIMEOUT);
    /* Retries 0 here; the first failure would be the only one with them anyway. */
    assert_int_equal(mbt_server_requests(s), 5);
    assert_int_equal(mbt_log_count(&fx->fake, 0, "asked again at every poll", NULL), 1);
}

static void test_retries(void **state)
{
    struct fixture *fx = *state;
    struct mbt_server *s = fx->srv;
    struct mbt_config *c = &fx->cfg;
    uint16_t v = 77;
    set_regs(s, 0, 3, &v, 1);
    uint32_t t = add_tag(c, "t", MB_P_TABLE_HOLDING, 3, -1, -1, false);
    c->cp.timeout_ms = 100;
    create_and_open(fx);

    /* One garbled answer: the default single retry reads the value. */
    mbt_server_fault(s, MBT_WRONG_TID, 1);
    assert_int_equal(read_group(fx), 0);
    assert_good(&fx->samples[t], IB_V_UINT);
    assert_true(fx->samples[t].value.v.u == 77);
    /* Two in a row: bad (protocol), never a wrong value; then good again. */
    mbt_server_fault(s, MBT_WRONG_FUNCTION, 2);
    assert_int_equal(read_group(fx), IB_ERR_PROTOCOL);
    assert_bad(&fx->samples[t], IB_R_PROTOCOL, 0);
    assert_int_equal(read_group(fx), 0);
    /* An exception is the device's answer: not repeated. */
    unsigned r0 = mbt_server_requests(s);
    mbt_server_refuse(s, 3, 1, true);
    assert_int_equal(read_group(fx), IB_ERR_EXCEPTION);
    assert_int_equal(mbt_server_requests(s) - r0, 1);
}

static void test_close_after_poll(void **state)
{
    struct fixture *fx = *state;
    struct mbt_server *s = fx->srv;
    struct mbt_config *c = &fx->cfg;
    c->cp.close_after_poll = true;
    uint32_t t = add_tag(c, "t", MB_P_TABLE_HOLDING, 0, -1, -1, true);
    create_and_open(fx);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(read_group(fx), 0);
        assert_good(&fx->samples[t], IB_V_UINT);
    }
    const struct ib_value v = {.type = IB_V_UINT, .v.u = 5};
    assert_int_equal(plugin->write_tag(fx->inst, 0, 0, t, &v), 0);
    assert_int_equal(read_group(fx), 0);
    assert_true(fx->samples[t].value.v.u == 5);
    /* One connection per poll or write (the first one is open()'s). */
    usleep(20000);
    assert_int_equal(mbt_server_connections(s), 5);
    /* Routine reconnects are not logged as news. */
    assert_int_equal(mbt_log_count(&fx->fake, 0, "again", NULL), 0);
}

static void test_write_function_codes_bits_and_verify(void **state)
{
    struct fixture *fx = *state;
    struct mbt_server *s = fx->srv;
    struct mbt_config *c = &fx->cfg;
    uint16_t reg = 0x00F0;
    set_regs(s, 0, 5, &reg, 1);
    uint32_t coil = add_tag(c, "coil", MB_P_TABLE_COIL, 1, -1, -1, true);
    uint32_t u16 = add_tag(c, "u16", MB_P_TABLE_HOLDING, 2, -1, -1, true);
    uint32_t u32 = add_tag(c, "u32", MB_P_TABLE_HOLDING, 3, MB_P_TYPE_UINT32, -1, true);
    uint32_t bit3 = add_tag(c, "bit3", MB_P_TABLE_HOLDING, 5, MB_P_TYPE_BIT, -1, true);
    c->tp[0][bit3].bit = 3;
    uint32_t bit4 = add_tag(c, "bit4", MB_P_TABLE_HOLDING, 5, MB_P_TYPE_BIT, MB_P_ORDER_BA, true);
    c->tp[0][bit4].bit = 4;
    uint32_t checked = add_tag(c, "checked", MB_P_TABLE_HOLDING, 6, MB_P_TYPE_INT16, -1, true);
    c->tp[0][checked].verify_write = true;
    uint32_t checked_coil = add_tag(c, "checked_coil", MB_P_TABLE_COIL, 2, -1, -1, true);
    c->tp[0][checked_coil].verify_write = true;
    create_and_open(fx);

    const struct ib_value on = {.type = IB_V_BOOL, .v.b = true};
    const struct ib_value off = {.type = IB_V_BOOL, .v.b = false};
    const struct ib_value n7 = {.type = IB_V_INT, .v.i = 7};
    const struct ib_value minus5 = {.type = IB_V_DOUBLE, .v.d = -5.0};
    write_expect(fx, coil, &on, 0, MODBUS_FC_WRITE_SINGLE_COIL);
    write_expect(fx, u16, &n7, 0, MODBUS_FC_WRITE_SINGLE_REGISTER);
    write_expect(fx, u32, &n7, 0, MODBUS_FC_WRITE_MULTIPLE_REGISTERS);
    /* A bit of a register: read, modify, write; the other bits stay. */
    write_expect(fx, bit3, &on, 0, MODBUS_FC_WRITE_SINGLE_REGISTER);
    pthread_mutex_lock(&s->lock);
    assert_int_equal(s->map->tab_registers[5], 0x00F8);
    pthread_mutex_unlock(&s->lock);
    /* BA: bit 4 of the swapped register is bit 12 on the wire. */
    assert_int_equal(plugin->write_tag(fx->inst, 0, 0, bit4, &on), 0);
    assert_int_equal(plugin->write_tag(fx->inst, 0, 0, bit3, &off), 0);
    pthread_mutex_lock(&s->lock);
    assert_int_equal(s->map->tab_registers[5], 0x10F0);
    assert_int_equal(s->map->tab_bits[1], 1);
    assert_int_equal(s->map->tab_registers[2], 7);
    assert_int_equal(s->map->tab_registers[3], 0);
    assert_int_equal(s->map->tab_registers[4], 7);
    pthread_mutex_unlock(&s->lock);

    /* Read-back verification: passes when the device took the value, fails when it did not. */
    write_expect(fx, checked, &minus5, 0, MODBUS_FC_READ_HOLDING_REGISTERS);
    assert_int_equal(plugin->write_tag(fx->inst, 0, 0, checked_coil, &on), 0);
    unsigned logs = fx->fake.n_logs;
    mbt_server_fault(s, MBT_DISCARD_WRITE, 1);
    assert_int_equal(plugin->write_tag(fx->inst, 0, 0, checked, &n7), IB_ERR_PROTOCOL);
    assert_int_equal(mbt_log_count(&fx->fake, logs, "not verified", NULL), 1);
    mbt_server_fault(s, MBT_DISCARD_WRITE, 1);
    assert_int_equal(plugin->write_tag(fx->inst, 0, 0, checked_coil, &off), IB_ERR_PROTOCOL);
    pthread_mutex_lock(&s->lock);
    assert_int_equal(s->map->tab_registers[6], 0xFFFB);
    pthread_mutex_unlock(&s->lock);

    /* write_multiple: FC15 and FC16 for single values too. */
    c->dp[0].write_multiple = true;
    mbt_recreate(fx);
    write_expect(fx, coil, &off, 0, MODBUS_FC_WRITE_MULTIPLE_COILS);
    assert_int_equal(plugin->write_tag(fx->inst, 0, 0, u16, &on), IB_ERR_INVALID);
    const struct ib_value n9 = {.type = IB_V_UINT, .v.u = 9};
    write_expect(fx, u16, &n9, 0, MODBUS_FC_WRITE_MULTIPLE_REGISTERS);
    write_expect(fx, bit3, &on, 0, MODBUS_FC_WRITE_MULTIPLE_REGISTERS);
    pthread_mutex_lock(&s->lock);
    assert_int_equal(s->map->tab_bits[1], 0);
    assert_int_equal(s->map->tab_registers[2], 9);
    assert_int_equal(s->map->tab_registers[5], 0x10F8);
    pthread_mutex_unlock(&s->lock);
}

static void test_create_reports_new_errors(void **state)
{
    struct fixture *fx = *state;
    struct mbt_config *c = &fx->cfg;
    static const struct {
        const char *key;
        int32_t table;
        const char *address;
        int32_t type, order, bit;
        int64_t length;
        bool writable, verify;
    } bad[] = {
        {"bit", MB_P_TABLE_HOLDING, "0", MB_P_TYPE_BIT, -1, -1, 0, false, false},
        {"bit", MB_P_TABLE_HOLDING, "0", MB_P_TYPE_UINT16, -1, 3, 0, false, false},
        {"length", MB_P_TABLE_HOLDING, "0", MB_P_TYPE_STRING, -1, -1, 0, false, false},
        {"length", MB_P_TABLE_HOLDING, "0", MB_P_TYPE_INT32, -1, -1, 2, false, false},
        {"order", MB_P_TABLE_HOLDING, "0", MB_P_TYPE_INT32, MB_P_ORDER_BA, -1, 0, false, false},
        {"order", MB_P_TABLE_HOLDING, "0", MB_P_TYPE_BIT, MB_P_ORDER_DCBA, 1, 0, false, false},
        {"order", MB_P_TABLE_COIL, "0", -1, MB_P_ORDER_AB, -1, 0, false, false},
        {"writable", MB_P_TABLE_HOLDING, "0", MB_P_TYPE_STRING, -1, -1, 2, true, false},
        {"verify_write", MB_P_TABLE_HOLDING, "0", -1, -1, -1, 0, false, true},
        {"table", -1, "12", -1, -1, -1, 0, false, false},
        {"table", MB_P_TABLE_COIL, "modicon:400001", -1, -1, -1, 0, false, false},
        {"address", MB_P_TABLE_HOLDING, "400001", -1, -1, -1, 0, false, false},
        {"address", MB_P_TABLE_HOLDING, "040001", -1, -1, -1, 0, false, false},
        {"address", MB_P_TABLE_HOLDING, "modicon:200001", -1, -1, -1, 0, false, false},
        {"address", MB_P_TABLE_HOLDING, "modicon:400000", -1, -1, -1, 0, false, false},
        {"address", MB_P_TABLE_HOLDING, "12a", -1, -1, -1, 0, false, false},
    };
    size_t n = sizeof(bad) / sizeof(bad[0]);
    for (size_t i = 0; i < n; i++) {
        uint32_t t = mbt_tag(c, 0, "x", bad[i].table, bad[i].address, bad[i].type, bad[i].order,
                             bad[i].writable);
        c->tp[0][t].bit = bad[i].bit;
        c->tp[0][t].length = bad[i].length;
        c->tp[0][t].verify_write = bad[i].verify;
    }
    /* And one good tag of each new kind. */
    uint32_t ok = mbt_tag(c, 0, "ok", -1, "modicon:100001", -1, -1, false);
    void *inst = (void *)1;
    assert_int_equal(plugin->create(&fx->fake.host, ctx_of(&fx->fake), &c->conn, &inst),
                     IB_ERR_INVALID);
    assert_null(inst);
    assert_int_equal(fx->fake.n_config_errors, n);
    for (size_t i = 0; i < n; i++) {
        if (strcmp(fx->fake.config_keys[i], bad[i].key) != 0)
            fail_msg("error %zu: key %s, expected %s", i, fx->fake.config_keys[i], bad[i].key);
        assert_ptr_equal(fx->fake.config_where[i], &c->tp[0][i]);
    }
    (void)ok;
}

/* A tag without its table is refused with a hint that names a marked reference for its
 * address, and that reference, written as the hint says, is accepted (issue 13 #4). */
static void test_table_hint_works(void **state)
{
    struct fixture *fx = *state;
    struct mbt_config *c = &fx->cfg;
    mbt_tag(c, 0, "t", -1, "3027", -1, -1, false);
    assert_int_equal(plugin->create(&fx->fake.host, ctx_of(&fx->fake), &c->conn, &fx->inst),
                     IB_ERR_INVALID);
    const char *hint = strstr(fx->fake.last_config_error, "modicon:");
    assert_non_null(hint);
    char addr[24];
    snprintf(addr, sizeof(addr), "%.*s", (int)(8 + strspn(hint + 8, "0123456789")), hint);
    assert_string_equal(addr, "modicon:403028");
    snprintf(c->addr[0][0], sizeof(c->addr[0][0]), "%s", addr);
    fx->fake.n_config_errors = 0;
    assert_int_equal(plugin->create(&fx->fake.host, ctx_of(&fx->fake), &c->conn, &fx->inst), 0);
    assert_int_equal(fx->fake.n_config_errors, 0);
}

static void test_create_checks_transport_keys(void **state)
{
    struct fixture *fx = *state;
    struct mbt_config *c = &fx->cfg;
    add_tag(c, "a", MB_P_TABLE_HOLDING, 0, -1, -1, false);
    void *inst = NULL;

    /* Serial keys on tcp. */
    c->cp.serial_port = "/dev/ttyUSB0";
    c->cp.baud = 3;
    c->cp.rs485 = true;
    assert_int_equal(plugin->create(&fx->fake.host, ctx_of(&fx->fake), &c->conn, &inst),
                     IB_ERR_INVALID);
    assert_int_equal(fx->fake.n_config_errors, 3);
    assert_string_equal(fx->fake.config_keys[0], "serial_port");
    assert_string_equal(fx->fake.config_keys[1], "baud");
    assert_string_equal(fx->fake.config_keys[2], "rs485");

    /* rtu: no serial port, a host and a port, unit 0 and 248. */
    fx->fake.n_config_errors = 0;
    mbt_config_rtu(c, NULL);
    c->cp.host = "127.0.0.1";
    c->cp.port = 502;
    c->dp[0].unit_id = 0;
    uint32_t d = mbt_add_device(c, 248);
    add_tag(c, "a", MB_P_TABLE_HOLDING, 0, -1, -1, false);
    mbt_tag(c, d, "b", MB_P_TABLE_HOLDING, "0", -1, -1, false);
    assert_int_equal(plugin->create(&fx->fake.host, ctx_of(&fx->fake), &c->conn, &inst),
                     IB_ERR_INVALID);
    assert_int_equal(fx->fake.n_config_errors, 5);
    static const char *const keys[] = {"serial_port", "host", "port", "unit_id", "unit_id"};
    for (int i = 0; i < 5; i++)
        assert_string_equal(fx->fake.config_keys[i], keys[i]);

    /* rtu_over_tcp needs a host, takes no serial settings. */
    fx->fake.n_config_errors = 0;
    mbt_config_rtu_over_tcp(c, 502);
    c->cp.host = NULL;
    c->cp.parity = MB_P_PARITY_NONE;
    add_tag(c, "a", MB_P_TABLE_HOLDING, 0, -1, -1, false);
    assert_int_equal(plugin->create(&fx->fake.host, ctx_of(&fx->fake), &c->conn, &inst),
                     IB_ERR_INVALID);
    assert_int_equal(fx->fake.n_config_errors, 2);
    assert_string_equal(fx->fake.config_keys[0], "host");
    assert_string_equal(fx->fake.config_keys[1], "parity");

    /* A valid rtu connection is created without touching the port. */
    fx->fake.n_config_errors = 0;
    mbt_config_rtu(c, "/dev/ironbridge-test-no-such-port");
    add_tag(c, "a", MB_P_TABLE_HOLDING, 0, -1, -1, false);
    assert_int_equal(plugin->create(&fx->fake.host, ctx_of(&fx->fake), &c->conn, &inst), 0);
    assert_int_equal(plugin->open(inst), IB_ERR_CONNECTION);
    assert_non_null(strstr(fx->fake.last_log, "cannot open /dev/ironbridge-test-no-such-port"));
    plugin->destroy(inst);
}

int main(int argc, char **argv)
{
    mbt_load_plugin(argc, argv);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_descriptor),
        cmocka_unit_test_setup_teardown(test_read_every_type_and_order, setup, mbt_teardown),
        cmocka_unit_test_setup_teardown(test_more_types_orders_and_addresses, setup, mbt_teardown),
        cmocka_unit_test_setup_teardown(test_exception_marks_only_its_request, setup, mbt_teardown),
        cmocka_unit_test_setup_teardown(test_refused_block_is_narrowed_down, setup, mbt_teardown),
        cmocka_unit_test_setup_teardown(test_gaps_and_request_limits, setup, mbt_teardown),
        cmocka_unit_test_setup_teardown(test_pause_between_requests, setup, mbt_teardown),
        cmocka_unit_test_setup_teardown(test_timeout_then_late_answer, setup, mbt_teardown),
        cmocka_unit_test_setup_teardown(test_retries, setup, mbt_teardown),
        cmocka_unit_test_setup_teardown(test_dead_unit_is_backed_off, setup, mbt_teardown),
        cmocka_unit_test_setup_teardown(test_backoff_can_be_disabled, setup, mbt_teardown),
        cmocka_unit_test_setup_teardown(test_close_after_poll, setup, mbt_teardown),
        cmocka_unit_test_setup_teardown(test_write_round_trip, setup, mbt_teardown),
        cmocka_unit_test_setup_teardown(test_write_function_codes_bits_and_verify, setup,
                                        mbt_teardown),
        cmocka_unit_test_setup_teardown(test_connection_lost, setup, mbt_teardown),
        cmocka_unit_test_setup_teardown(test_create_reports_every_error, setup, mbt_teardown),
        cmocka_unit_test_setup_teardown(test_create_reports_new_errors, setup, mbt_teardown),
        cmocka_unit_test_setup_teardown(test_create_checks_transport_keys, setup, mbt_teardown),
        cmocka_unit_test_setup_teardown(test_table_hint_works, setup, mbt_teardown),
        cmocka_unit_test_setup_teardown(test_create_does_no_io, setup, mbt_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
