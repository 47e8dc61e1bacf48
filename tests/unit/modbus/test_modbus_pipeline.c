/* max_outstanding through the built module against the harness's server (which reads one frame
 * at a time, as a device that serialises requests does): exact values with several requests in
 * flight; a mangled transaction id falls back to one at a time, logged once; a silent device
 * and a refused register are what they are one at a time too, so they are no reason to fall
 * back. And implementation: libmodbus, exact and with the same failures. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "harness.h"

#define FALLBACK "mishandles several requests in flight"

/* Four requests (holding 0, 20, 40, 60: too far apart to join) with values 100, 120, 140, 160. */
static void four_requests(struct fixture *fx, int64_t max_outstanding)
{
    static const char *const names[] = {"h0", "h1", "h2", "h3"};
    for (int k = 0; k < 4; k++) {
        uint16_t v = (uint16_t)(100 + 20 * k);
        set_regs(fx->srv, 0, 20 * k, &v, 1);
        add_tag(&fx->cfg, names[k], MB_P_TABLE_HOLDING, 20 * k, -1, -1, false);
    }
    fx->cfg.dp[0].max_gap = 0;
    fx->cfg.cp.timeout_ms = 300;
    fx->cfg.cp.max_outstanding = max_outstanding;
    create_and_open(fx);
}

static void assert_values(struct fixture *fx)
{
    for (int k = 0; k < 4; k++) {
        assert_good(&fx->samples[k], IB_V_UINT);
        assert_int_equal(fx->samples[k].value.v.u, 100 + 20 * k);
    }
}

static void test_exact_in_flight(void **state)
{
    struct fixture *fx = *state;
    four_requests(fx, 8);
    unsigned from = fx->fake.n_logs;
    for (int poll = 0; poll < 3; poll++) {
        unsigned before = mbt_server_requests(fx->srv);
        assert_int_equal(read_group(fx), IB_OK);
        assert_values(fx);
        assert_int_equal(mbt_server_requests(fx->srv) - before, 4);
    }
    assert_int_equal(mbt_log_count(&fx->fake, from, FALLBACK, NULL), 0);
}

static void test_wrong_tid_falls_back_once(void **state)
{
    struct fixture *fx = *state;
    four_requests(fx, 8);
    unsigned from = fx->fake.n_logs;
    mbt_server_fault(fx->srv, MBT_WRONG_TID, 1);
    assert_int_equal(read_group(fx), IB_OK); /* the mangled answer's request, read again alone */
    assert_values(fx);
    assert_int_equal(
        mbt_log_count(&fx->fake, from, FALLBACK, "transaction id", "falls back to 1", NULL), 1);
    /* One at a time from now on: a wrong id is then the request's own protocol error (retried),
     * and the fall-back is not logged again. */
    mbt_server_fault(fx->srv, MBT_WRONG_TID, 1);
    assert_int_equal(read_group(fx), IB_OK);
    assert_values(fx);
    assert_int_equal(mbt_log_count(&fx->fake, from, FALLBACK, NULL), 1);
}

static void test_silent_device_is_no_reason(void **state)
{
    struct fixture *fx = *state;
    four_requests(fx, 8);
    unsigned from = fx->fake.n_logs;
    mbt_server_fault(fx->srv, MBT_SILENT, 1000);
    assert_int_not_equal(read_group(fx), IB_OK);
    for (int k = 0; k < 4; k++)
        assert_bad(&fx->samples[k], IB_R_TIMEOUT, 0);
    assert_int_equal(mbt_log_count(&fx->fake, from, FALLBACK, NULL), 0);
}

static void test_refused_register_is_no_reason(void **state)
{
    struct fixture *fx = *state;
    four_requests(fx, 8);
    unsigned from = fx->fake.n_logs;
    mbt_server_refuse(fx->srv, 20, 1, true);
    assert_int_equal(read_group(fx), IB_ERR_EXCEPTION);
    assert_bad(&fx->samples[1], IB_R_EXCEPTION, 2);
    assert_good(&fx->samples[0], IB_V_UINT);
    assert_good(&fx->samples[2], IB_V_UINT);
    assert_good(&fx->samples[3], IB_V_UINT);
    assert_int_equal(mbt_log_count(&fx->fake, from, FALLBACK, NULL), 0);
}

/* implementation: libmodbus: the same values, one request at a time, and its failures classified
 * as the native link's (a wrong transaction id is a protocol error, a silent device a timeout).
 * It is libmodbus: an MBAP length field that disagrees with the PDU passes, as documented (the
 * native link refuses it). */
static void test_libmodbus_link(void **state)
{
    struct fixture *fx = *state;
    fx->cfg.cp.implementation = MB_P_IMPL_LIBMODBUS;
    fx->cfg.dp[0].retries = 0;
    four_requests(fx, 1);
    unsigned before = mbt_server_requests(fx->srv);
    assert_int_equal(read_group(fx), IB_OK);
    assert_values(fx);
    assert_int_equal(mbt_server_requests(fx->srv) - before, 4);
    mbt_server_fault(fx->srv, MBT_LENGTH_FIELD, 1);
    assert_int_equal(read_group(fx), IB_OK);
    assert_values(fx);
    mbt_server_fault(fx->srv, MBT_WRONG_TID, 1);
    assert_int_not_equal(read_group(fx), IB_OK);
    assert_bad(&fx->samples[0], IB_R_PROTOCOL, 0);
    assert_good(&fx->samples[1], IB_V_UINT);
    mbt_server_fault(fx->srv, MBT_SILENT, 1000);
    assert_int_not_equal(read_group(fx), IB_OK);
    for (int k = 0; k < 4; k++)
        assert_bad(&fx->samples[k], IB_R_TIMEOUT, 0);
}

/* The same MBAP length fault on the native link: refused. */
static void test_native_refuses_length_field(void **state)
{
    struct fixture *fx = *state;
    fx->cfg.dp[0].retries = 0;
    four_requests(fx, 1);
    mbt_server_fault(fx->srv, MBT_LENGTH_FIELD, 1);
    assert_int_not_equal(read_group(fx), IB_OK);
    assert_bad(&fx->samples[0], IB_R_PROTOCOL, 0);
}

static int setup_tcp(void **state)
{
    *state = mbt_fixture_new(MBT_TCP);
    return 0;
}

int main(int argc, char **argv)
{
    mbt_load_plugin(argc, argv);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_exact_in_flight, setup_tcp, mbt_teardown),
        cmocka_unit_test_setup_teardown(test_wrong_tid_falls_back_once, setup_tcp, mbt_teardown),
        cmocka_unit_test_setup_teardown(test_silent_device_is_no_reason, setup_tcp, mbt_teardown),
        cmocka_unit_test_setup_teardown(test_refused_register_is_no_reason, setup_tcp,
                                        mbt_teardown),
        cmocka_unit_test_setup_teardown(test_libmodbus_link, setup_tcp, mbt_teardown),
        cmocka_unit_test_setup_teardown(test_native_refuses_length_field, setup_tcp, mbt_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
