/* What the plugin logs while something fails (issue 13 #6): a failure is logged when it starts,
 * when its cause changes and when it ends; repeats are counted, not printed. Against the
 * harness's server: a device that closes the connection after every answer, a device that
 * keeps answering garbage, a device that cannot be reached. The daemon's side (closing and
 * reopening a lost connection) is played here as the gateway does it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "harness.h"

#define POLLS 20

/* One poll as the gateway does it: a lost connection is closed and reopened for the next. */
static int poll_like_gateway(struct fixture *fx)
{
    int rc = read_group(fx);
    if (rc == IB_ERR_CONNECTION) {
        plugin->close(fx->inst);
        assert_int_equal(plugin->open(fx->inst), 0);
    }
    return rc;
}

static void two_requests(struct fixture *fx)
{
    static const uint16_t v[] = {11, 22};
    set_regs(fx->srv, 1, 0, v, 1);
    set_regs(fx->srv, 0, 5, v + 1, 1);
    add_tag(&fx->cfg, "in", MB_P_TABLE_INPUT, 0, -1, -1, false);
    add_tag(&fx->cfg, "hold", MB_P_TABLE_HOLDING, 5, -1, -1, false);
    create_and_open(fx);
}

/* The device: it closes the connection after each request, so every poll loses it (the
 * second request finds it closed). Before: two plugin lines per poll ("connection lost", then
 * "connected again"), 40 in 20 polls. Now: one when it starts, one when a connection holds. */
static void test_device_closing_after_each_request(void **state)
{
    struct fixture *fx = *state;
    two_requests(fx);
    unsigned from = fx->fake.n_logs;
    mbt_server_close_each(fx->srv, true);
    unsigned lost = 0;
    for (int i = 0; i < POLLS; i++)
        lost += poll_like_gateway(fx) == IB_ERR_CONNECTION;
    assert_true(lost >= POLLS / 2); /* it did fail, again and again */
    assert_int_equal(mbt_log_count_level(&fx->fake, from, IB_LOG_INFO), 1);
    assert_int_equal(mbt_log_count(&fx->fake, from, "connection to", "lost", NULL), 1);

    /* The device behaves again: once a connection outlives a poll, that is said once. */
    mbt_server_close_each(fx->srv, false);
    from = fx->fake.n_logs;
    for (int i = 0; i < 4; i++)
        poll_like_gateway(fx);
    assert_int_equal(read_group(fx), 0);
    assert_int_equal(mbt_log_count_level(&fx->fake, from, IB_LOG_INFO), 1);
    assert_int_equal(mbt_log_count(&fx->fake, from, "holds again", "lost", NULL), 1);
}

/* A device that keeps answering with a wrong transaction id: one line with the cause, then
 * quiet; another cause is a new line; the end is one line. */
static void test_garbage_logged_per_episode(void **state)
{
    struct fixture *fx = *state;
    fx->cfg.dp[0].retries = 0;
    fx->cfg.dp[0].backoff_max_ms = 0;
    two_requests(fx);
    unsigned from = fx->fake.n_logs;
    mbt_server_fault(fx->srv, MBT_WRONG_TID, 2 * POLLS);
    for (int i = 0; i < POLLS; i++)
        assert_int_equal(read_group(fx), IB_ERR_PROTOCOL);
    assert_int_equal(mbt_log_count_level(&fx->fake, from, IB_LOG_INFO), 1);
    assert_int_equal(mbt_log_count(&fx->fake, from, "transaction id", "expected", NULL), 1);

    from = fx->fake.n_logs;
    mbt_server_fault(fx->srv, MBT_WRONG_FUNCTION, 2 * POLLS);
    for (int i = 0; i < POLLS; i++)
        assert_int_equal(read_group(fx), IB_ERR_PROTOCOL);
    /* Protocol errors have one reason: the cause is the reason, the text says which. */
    assert_int_equal(mbt_log_count_level(&fx->fake, from, IB_LOG_INFO), 0);

    from = fx->fake.n_logs;
    mbt_server_fault(fx->srv, MBT_OK, 0);
    for (int i = 0; i < 3; i++)
        assert_int_equal(read_group(fx), 0);
    assert_int_equal(mbt_log_count_level(&fx->fake, from, IB_LOG_INFO), 1);
    assert_int_equal(mbt_log_count(&fx->fake, from, "reads again", NULL), 1);
}

/* A device that cannot be reached: the gateway retries open(); one line, not one per try. */
static void test_open_failures_logged_once(void **state)
{
    struct fixture *fx = *state;
    two_requests(fx);
    plugin->close(fx->inst);
    mbt_server_stop(fx->srv); /* nothing listens: connection refused */
    unsigned from = fx->fake.n_logs;
    for (int i = 0; i < POLLS; i++)
        assert_int_equal(plugin->open(fx->inst), IB_ERR_CONNECTION);
    assert_int_equal(mbt_log_count_level(&fx->fake, from, IB_LOG_INFO), 1);
    assert_int_equal(mbt_log_count(&fx->fake, from, "cannot connect", "refused", NULL), 1);
}

static int setup_tcp(void **state)
{
    *state = mbt_fixture_new(MBT_TCP);
    return 0;
}

static int setup_rtu_tcp(void **state)
{
    *state = mbt_fixture_new(MBT_RTU_TCP);
    return 0;
}

int main(int argc, char **argv)
{
    mbt_load_plugin(argc, argv);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_device_closing_after_each_request, setup_tcp,
                                        mbt_teardown),
        cmocka_unit_test_setup_teardown(test_device_closing_after_each_request, setup_rtu_tcp,
                                        mbt_teardown),
        cmocka_unit_test_setup_teardown(test_garbage_logged_per_episode, setup_tcp, mbt_teardown),
        cmocka_unit_test_setup_teardown(test_open_failures_logged_once, setup_tcp, mbt_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
