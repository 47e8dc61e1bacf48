/* The RTU transports through the built modbus.so: Modbus RTU on a serial port (a pty with the
 * harness's libmodbus RTU server on the other side) and RTU frames over TCP, both the plugin's
 * own framing against libmodbus's: every table and type, writes with each function code, units
 * that do not answer, refused blocks, the silence between frames, RS-485 mode and open errors. */
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
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <modbus.h>

#include "harness.h"

static int setup_pty(void **state)
{
    *state = mbt_fixture_new(MBT_RTU_PTY);
    return 0;
}

static int setup_rtu_tcp(void **state)
{
    *state = mbt_fixture_new(MBT_RTU_TCP);
    return 0;
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Reads of all four tables and several types, then a write with each function code, read back
 * through the same link. */
static void reads_and_writes(struct fixture *fx)
{
    struct mbt_server *s = fx->srv;
    struct mbt_config *c = &fx->cfg;
    static const uint16_t holding[] = {0x42F6, 0xE979, 0xFFFF, 0xFFFE, 0x6869, 0x0000, 0x0005};
    static const uint16_t input[] = {4242, 0x0102, 0x0304, 0x0506, 0x0708};
    set_regs(s, 0, 10, holding, 7);
    set_regs(s, 1, 0, input, 5);
    pthread_mutex_lock(&s->lock);
    s->map->tab_bits[3] = 1;
    s->map->tab_input_bits[9] = 1;
    pthread_mutex_unlock(&s->lock);

    c->dp[0].unit_id = 17;
    uint32_t f = add_tag(c, "f", MB_P_TABLE_HOLDING, 10, MB_P_TYPE_FLOAT32, -1, true);
    uint32_t i32 = add_tag(c, "i32", MB_P_TABLE_HOLDING, 12, MB_P_TYPE_INT32, -1, true);
    uint32_t str = add_tag(c, "str", MB_P_TABLE_HOLDING, 14, MB_P_TYPE_STRING, -1, false);
    c->tp[0][str].length = 2;
    uint32_t bit2 = add_tag(c, "bit2", MB_P_TABLE_HOLDING, 16, MB_P_TYPE_BIT, -1, true);
    c->tp[0][bit2].bit = 2;
    uint32_t in = add_tag(c, "in", MB_P_TABLE_INPUT, 0, -1, -1, false);
    uint32_t u64 = add_tag(c, "u64", MB_P_TABLE_INPUT, 1, MB_P_TYPE_UINT64, -1, false);
    uint32_t coil = add_tag(c, "coil", MB_P_TABLE_COIL, 3, -1, -1, true);
    uint32_t di = add_tag(c, "di", MB_P_TABLE_DISCRETE_INPUT, 9, -1, -1, false);
    uint32_t u16 = add_tag(c, "u16", MB_P_TABLE_HOLDING, 20, -1, -1, true);
    create_and_open(fx);

    unsigned r0 = mbt_server_requests(s);
    assert_int_equal(read_group(fx), 0);
    assert_int_equal(mbt_server_requests(s) - r0, 4); /* one request per table */
    struct ib_sample *sm = fx->samples;
    assert_good(&sm[f], IB_V_DOUBLE);
    assert_true(sm[f].value.v.d == (double)123.456f);
    assert_true(sm[i32].value.v.i == -2);
    assert_good(&sm[str], IB_V_STRING);
    assert_int_equal(sm[str].value.v.s.len, 2);
    assert_memory_equal(sm[str].value.v.s.ptr, "hi", 2);
    assert_true(sm[bit2].value.v.b);
    assert_true(sm[in].value.v.u == 4242);
    assert_true(sm[u64].value.v.u == 0x0102030405060708ull);
    assert_true(sm[coil].value.v.b);
    assert_true(sm[di].value.v.b);
    unsigned all = mbt_server_requests(s);
    pthread_mutex_lock(&s->lock);
    assert_int_equal(s->unit_requests[17], all);
    pthread_mutex_unlock(&s->lock);

    const struct ib_value off = {.type = IB_V_BOOL, .v.b = false};
    const struct ib_value minus = {.type = IB_V_INT, .v.i = -100000};
    const struct ib_value fl = {.type = IB_V_DOUBLE, .v.d = -1.5};
    const struct ib_value n = {.type = IB_V_UINT, .v.u = 65535};
    write_expect(fx, coil, &off, 0, MODBUS_FC_WRITE_SINGLE_COIL);
    write_expect(fx, u16, &n, 0, MODBUS_FC_WRITE_SINGLE_REGISTER);
    write_expect(fx, i32, &minus, 0, MODBUS_FC_WRITE_MULTIPLE_REGISTERS);
    assert_int_equal(plugin->write_tag(fx->inst, 0, 0, f, &fl), 0);
    assert_int_equal(plugin->write_tag(fx->inst, 0, 0, bit2, &off), 0);
    assert_int_equal(read_group(fx), 0);
    assert_false(sm[coil].value.v.b);
    assert_true(sm[u16].value.v.u == 65535);
    assert_true(sm[i32].value.v.i == -100000);
    assert_true(sm[f].value.v.d == -1.5);
    assert_false(sm[bit2].value.v.b);
    pthread_mutex_lock(&s->lock);
    assert_int_equal(s->map->tab_registers[16], 0x0001); /* the other bits stayed */
    pthread_mutex_unlock(&s->lock);

    /* FC15 through write_multiple. */
    c->dp[0].write_multiple = true;
    mbt_recreate(fx);
    const struct ib_value on = {.type = IB_V_BOOL, .v.b = true};
    write_expect(fx, coil, &on, 0, MODBUS_FC_WRITE_MULTIPLE_COILS);
    assert_int_equal(read_group(fx), 0);
    assert_true(sm[coil].value.v.b);
}

static void test_serial_reads_and_writes(void **state)
{
    reads_and_writes(*state);
}

static void test_rtu_over_tcp_reads_and_writes(void **state)
{
    reads_and_writes(*state);
}

/* Several units on one line, one of them silent, and a refused block on another. */
static void units_on_one_line(struct fixture *fx)
{
    struct mbt_server *s = fx->srv;
    struct mbt_config *c = &fx->cfg;
    c->cp.timeout_ms = 1000; /* what a live unit may take on a loaded machine */
    mbt_add_device(c, 2);
    mbt_add_device(c, 3);
    c->group[1].interval_ms = 60000; /* the silent unit's back-off: one interval */
    for (uint32_t d = 0; d < 3; d++) {
        for (int a = 0; a < 8; a++) {
            char addr[8];
            snprintf(addr, sizeof(addr), "%d", a);
            mbt_tag(c, d,
                    d == 0   ? "a"
                    : d == 1 ? "b"
                             : "c",
                    MB_P_TABLE_HOLDING, addr, -1, -1, false);
        }
    }
    static const int live[] = {1, 3};
    mbt_server_units(s, live, 2);
    mbt_server_refuse(s, 5, 1, true);
    create_and_open(fx);

    assert_int_equal(read_dev(fx, 0), IB_ERR_EXCEPTION);
    for (int a = 0; a < 8; a++) {
        if (a == 5)
            assert_bad(&fx->samples[a], IB_R_EXCEPTION, 2);
        else
            assert_good(&fx->samples[a], IB_V_UINT);
    }
    int64_t t0 = mono_ms();
    assert_int_equal(read_dev(fx, 1), IB_ERR_TIMEOUT);
    assert_true(mono_ms() - t0 >= 1000);
    assert_bad(&fx->samples[0], IB_R_TIMEOUT, 0);
    /* The unit after the silent one answers at once: the line is clean. */
    assert_int_equal(read_dev(fx, 2), IB_ERR_EXCEPTION);
    assert_good(&fx->samples[0], IB_V_UINT);
    /* Backed off for one interval (60 s): no I/O for unit 2 now (no request reaches the line). */
    unsigned asked = mbt_server_requests(s);
    assert_int_equal(read_dev(fx, 1), IB_ERR_TIMEOUT);
    assert_int_equal(mbt_server_requests(s), asked);
}

static void test_serial_units_on_one_line(void **state)
{
    units_on_one_line(*state);
}

static void test_rtu_over_tcp_units_on_one_line(void **state)
{
    units_on_one_line(*state);
}

/* The silence between frames: 3.5 characters by default, or inter_frame_delay_us. */
static void test_serial_frame_gap(void **state)
{
    struct fixture *fx = *state;
    struct mbt_config *c = &fx->cfg;
    c->cp.inter_frame_delay_us = 25000;
    c->dp[0].one_request_per_tag = true;
    for (int a = 0; a < 5; a++)
        add_tag(c, a == 0 ? "a" : "b", MB_P_TABLE_HOLDING, a, -1, -1, false);
    create_and_open(fx);
    int64_t t0 = mono_ms();
    assert_int_equal(read_group(fx), 0);
    /* Five requests, each followed by 25 ms of silence (a lower bound only). */
    assert_true(mono_ms() - t0 >= 5 * 25);
}

static void test_serial_rs485_refused_by_a_pty(void **state)
{
    struct fixture *fx = *state;
    struct mbt_config *c = &fx->cfg;
    c->cp.rs485 = true;
    add_tag(c, "a", MB_P_TABLE_HOLDING, 0, -1, -1, false);
    assert_int_equal(plugin->create(&fx->fake.host, ctx_of(&fx->fake), &c->conn, &fx->inst), 0);
    assert_int_equal(plugin->open(fx->inst), IB_ERR_CONNECTION);
    assert_non_null(strstr(fx->fake.last_log, "no RS-485 mode"));
    assert_non_null(strstr(fx->fake.last_log, fx->srv->pty));
}

static void test_serial_settings(void **state)
{
    struct fixture *fx = *state;
    struct mbt_config *c = &fx->cfg;
    /* 9600 8N2: accepted by the pty; values still arrive. */
    c->cp.baud = 5;
    c->cp.parity = MB_P_PARITY_NONE;
    c->cp.stop_bits = 1;
    c->cp.data_bits = 3;
    uint32_t a = add_tag(c, "a", MB_P_TABLE_HOLDING, 0, -1, -1, false);
    uint16_t v = 9600;
    set_regs(fx->srv, 0, 0, &v, 1);
    create_and_open(fx);
    assert_int_equal(read_group(fx), 0);
    assert_true(fx->samples[a].value.v.u == 9600);
}

/* Sent is readable at once on loopback TCP; a pty hands it to the reading side in a kernel
 * worker: wait until the line holds it (the harness keeps the slave open; it shares the
 * plugin's input queue). */
static void late_answer_readable(struct mbt_server *s)
{
    for (int k = 0; s->pty_slave >= 0 && k < 10000; k++) {
        int queued = 0;
        if (ioctl(s->pty_slave, FIONREAD, &queued) == 0 && queued > 0)
            return;
        usleep(1000);
    }
}

/* A slow device: an answer within the timeout is good however late; one after it is a timeout,
 * and the late answer is dropped, never taken for the next one. */
static void slow_device(struct fixture *fx)
{
    struct mbt_config *c = &fx->cfg;
    c->cp.timeout_ms = 1000; /* the slow answer within it may take long on a loaded machine */
    c->dp[0].retries = 0;
    c->dp[0].backoff_max_ms = 0;
    uint32_t a = add_tag(c, "a", MB_P_TABLE_HOLDING, 0, -1, -1, false);
    uint16_t v = 4711;
    set_regs(fx->srv, 0, 0, &v, 1);
    create_and_open(fx);
    pthread_mutex_lock(&fx->srv->lock);
    fx->srv->slow_ms = 100;
    pthread_mutex_unlock(&fx->srv->lock);
    mbt_server_fault(fx->srv, MBT_SLOW, 1);
    assert_int_equal(read_group(fx), 0);
    assert_true(fx->samples[a].value.v.u == 4711);

    /* An answer held past the timeout (not slept: a loaded machine may wake the reader late). */
    mbt_server_fault(fx->srv, MBT_HOLD, 1);
    assert_int_equal(read_group(fx), IB_ERR_TIMEOUT);
    assert_bad(&fx->samples[a], IB_R_TIMEOUT, 0);
    /* The late answer arrives while nothing is asked; the next request must get its own. */
    mbt_server_release(fx->srv);
    late_answer_readable(fx->srv);
    v = 4712;
    set_regs(fx->srv, 0, 0, &v, 1);
    assert_int_equal(read_group(fx), 0);
    assert_true(fx->samples[a].value.v.u == 4712);
}

static void test_serial_slow_device(void **state)
{
    slow_device(*state);
}

static void test_rtu_over_tcp_slow_device(void **state)
{
    slow_device(*state);
}

static void test_rtu_over_tcp_open_errors(void **state)
{
    struct fixture *fx = *state;
    struct mbt_config *c = &fx->cfg;
    add_tag(c, "a", MB_P_TABLE_HOLDING, 0, -1, -1, false);
    mbt_server_stop(fx->srv); /* nobody listens on its port now */
    assert_int_equal(plugin->create(&fx->fake.host, ctx_of(&fx->fake), &c->conn, &fx->inst), 0);
    assert_int_equal(plugin->open(fx->inst), IB_ERR_CONNECTION);
    assert_non_null(strstr(fx->fake.last_log, "refused"));
    plugin->destroy(fx->inst);
    fx->inst = NULL;
    c->cp.host = "ironbridge-test.invalid";
    assert_int_equal(plugin->create(&fx->fake.host, ctx_of(&fx->fake), &c->conn, &fx->inst), 0);
    assert_int_equal(plugin->open(fx->inst), IB_ERR_CONNECTION);
    assert_non_null(strstr(fx->fake.last_log, "does not resolve"));
    /* Closed: reads say so without I/O. */
    assert_int_equal(read_group(fx), IB_ERR_CONNECTION);
    assert_bad(&fx->samples[0], IB_R_CONN_LOST, 0);
}

static void test_rtu_over_tcp_peer_closes(void **state)
{
    struct fixture *fx = *state;
    struct mbt_config *c = &fx->cfg;
    add_tag(c, "a", MB_P_TABLE_HOLDING, 0, -1, -1, false);
    create_and_open(fx);
    assert_int_equal(read_group(fx), 0);
    mbt_server_stop(fx->srv);
    assert_int_equal(read_group(fx), IB_ERR_CONNECTION);
    assert_bad(&fx->samples[0], IB_R_CONN_LOST, 0);
}

int main(int argc, char **argv)
{
    mbt_load_plugin(argc, argv);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_serial_reads_and_writes, setup_pty, mbt_teardown),
        cmocka_unit_test_setup_teardown(test_rtu_over_tcp_reads_and_writes, setup_rtu_tcp,
                                        mbt_teardown),
        cmocka_unit_test_setup_teardown(test_serial_units_on_one_line, setup_pty, mbt_teardown),
        cmocka_unit_test_setup_teardown(test_rtu_over_tcp_units_on_one_line, setup_rtu_tcp,
                                        mbt_teardown),
        cmocka_unit_test_setup_teardown(test_serial_frame_gap, setup_pty, mbt_teardown),
        cmocka_unit_test_setup_teardown(test_serial_rs485_refused_by_a_pty, setup_pty,
                                        mbt_teardown),
        cmocka_unit_test_setup_teardown(test_serial_settings, setup_pty, mbt_teardown),
        cmocka_unit_test_setup_teardown(test_serial_slow_device, setup_pty, mbt_teardown),
        cmocka_unit_test_setup_teardown(test_rtu_over_tcp_slow_device, setup_rtu_tcp, mbt_teardown),
        cmocka_unit_test_setup_teardown(test_rtu_over_tcp_open_errors, setup_rtu_tcp, mbt_teardown),
        cmocka_unit_test_setup_teardown(test_rtu_over_tcp_peer_closes, setup_rtu_tcp, mbt_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
