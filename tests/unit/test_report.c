/* Report by exception: every mode and edge — deadband crossing up and down against the last
 * value sent, heartbeat, quality flips, staleness once, strings, 64-bit extremes. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "report.h"

static struct ib_sample dbl(double v)
{
    return (struct ib_sample){.value = {.type = IB_V_DOUBLE, .v.d = v}, .quality = IB_Q_GOOD};
}

static struct ib_sample i64(int64_t v)
{
    return (struct ib_sample){.value = {.type = IB_V_INT, .v.i = v}, .quality = IB_Q_GOOD};
}

static struct ib_sample bad(uint8_t reason, uint16_t code)
{
    return (struct ib_sample){.quality = IB_Q_BAD, .reason = reason, .code = code};
}

/* Feed one sample at time t; returns whether it was sent. */
static bool feed(const struct ib_report_cfg *c, struct ib_report_state *st, struct ib_sample s,
                 int64_t t)
{
    return ib_report_decide(c, st, &s, t, 3000);
}

static void always_sends_every_poll(void **state)
{
    (void)state;
    struct ib_report_cfg c = {.mode = IB_REPORT_ALWAYS};
    struct ib_report_state st;
    ib_report_state_init(&st, 0);
    for (int t = 0; t < 5; t++)
        assert_true(feed(&c, &st, dbl(1.0), t * 1000));
    /* bad too, every poll */
    assert_true(feed(&c, &st, bad(IB_R_TIMEOUT, 0), 5000));
    assert_true(feed(&c, &st, bad(IB_R_TIMEOUT, 0), 6000));
    ib_report_state_free(&st);
}

static void on_change_exact(void **state)
{
    (void)state;
    struct ib_report_cfg c = {.mode = IB_REPORT_ON_CHANGE};
    struct ib_report_state st;
    ib_report_state_init(&st, 0);
    assert_true(feed(&c, &st, i64(5), 0)); /* first value */
    assert_false(feed(&c, &st, i64(5), 1000));
    assert_true(feed(&c, &st, i64(6), 2000));
    assert_false(feed(&c, &st, i64(6), 3000));
    assert_true(feed(&c, &st, dbl(6.0), 4000)); /* a change of type is a change */
    assert_true(feed(&c, &st, dbl(6.000000000000001), 5000));
    ib_report_state_free(&st);
}

static void deadband_up_and_down_against_last_sent(void **state)
{
    (void)state;
    struct ib_report_cfg c = {.mode = IB_REPORT_DEADBAND, .deadband = 0.5};
    struct ib_report_state st;
    ib_report_state_init(&st, 0);
    assert_true(feed(&c, &st, dbl(10.0), 0));
    assert_false(feed(&c, &st, dbl(10.3), 1));
    assert_false(feed(&c, &st, dbl(10.5), 2)); /* exactly the deadband: not beyond it */
    assert_true(feed(&c, &st, dbl(10.51), 3)); /* crossing up */
    /* the reference is now 10.51: a slow creep is sent once it adds up */
    assert_false(feed(&c, &st, dbl(10.8), 4));
    assert_false(feed(&c, &st, dbl(10.9), 5));
    assert_true(feed(&c, &st, dbl(11.2), 6));
    assert_false(feed(&c, &st, dbl(10.75), 7));
    assert_true(feed(&c, &st, dbl(10.6), 8)); /* crossing down */
    ib_report_state_free(&st);
}

static void deadband_integers_64bit_extremes(void **state)
{
    (void)state;
    struct ib_report_cfg c = {.mode = IB_REPORT_DEADBAND, .deadband = 10};
    struct ib_report_state st;
    ib_report_state_init(&st, 0);
    assert_true(feed(&c, &st, i64(INT64_MIN), 0));
    assert_true(feed(&c, &st, i64(INT64_MAX), 1)); /* the distance does not overflow */
    assert_false(feed(&c, &st, i64(INT64_MAX - 10), 2));
    assert_true(feed(&c, &st, i64(INT64_MAX - 11), 3));
    struct ib_sample u = {.value = {.type = IB_V_UINT, .v.u = UINT64_MAX}, .quality = IB_Q_GOOD};
    assert_true(ib_report_decide(&c, &st, &u, 4, 3000)); /* type change */
    u.value.v.u = 0;
    assert_true(ib_report_decide(&c, &st, &u, 5, 3000));
    u.value.v.u = 10;
    assert_false(ib_report_decide(&c, &st, &u, 6, 3000));
    ib_report_state_free(&st);
}

static void booleans_and_strings_report_on_change(void **state)
{
    (void)state;
    struct ib_report_cfg c = {.mode = IB_REPORT_DEADBAND, .deadband = 100};
    struct ib_report_state st;
    ib_report_state_init(&st, 0);
    struct ib_sample b = {.value = {.type = IB_V_BOOL, .v.b = false}, .quality = IB_Q_GOOD};
    assert_true(ib_report_decide(&c, &st, &b, 0, 3000));
    assert_false(ib_report_decide(&c, &st, &b, 1, 3000));
    b.value.v.b = true; /* a deadband of 100 does not hide a flip */
    assert_true(ib_report_decide(&c, &st, &b, 2, 3000));
    ib_report_state_free(&st);

    ib_report_state_init(&st, 0);
    char buf[16] = "RUN";
    struct ib_sample s = {.value = {.type = IB_V_STRING, .v.s = {buf, 3}}, .quality = IB_Q_GOOD};
    assert_true(ib_report_decide(&c, &st, &s, 0, 3000));
    /* the plugin reuses its buffer: the state kept its own copy */
    memcpy(buf, "RUN", 3);
    assert_false(ib_report_decide(&c, &st, &s, 1, 3000));
    memcpy(buf, "STOP", 4);
    s.value.v.s.len = 4;
    assert_true(ib_report_decide(&c, &st, &s, 2, 3000));
    memcpy(buf, "STOX", 4);
    assert_true(ib_report_decide(&c, &st, &s, 3, 3000));
    ib_report_state_free(&st);
}

static void heartbeat_resends_unchanged(void **state)
{
    (void)state;
    struct ib_report_cfg c = {.mode = IB_REPORT_ON_CHANGE, .heartbeat_ms = 5000};
    struct ib_report_state st;
    ib_report_state_init(&st, 0);
    assert_true(feed(&c, &st, dbl(1), 0));
    assert_false(feed(&c, &st, dbl(1), 1000));
    assert_false(feed(&c, &st, dbl(1), 4999));
    assert_true(feed(&c, &st, dbl(1), 5000)); /* heartbeat fires */
    assert_false(feed(&c, &st, dbl(1), 6000));
    assert_true(feed(&c, &st, dbl(2), 7000)); /* a change restarts the heartbeat period */
    assert_false(feed(&c, &st, dbl(2), 11000));
    assert_true(feed(&c, &st, dbl(2), 12000));
    ib_report_state_free(&st);
}

static void quality_changes_at_once(void **state)
{
    (void)state;
    struct ib_report_cfg c = {.mode = IB_REPORT_DEADBAND, .deadband = 1000};
    struct ib_report_state st;
    ib_report_state_init(&st, 0);
    assert_true(feed(&c, &st, dbl(1), 0));
    assert_true(feed(&c, &st, bad(IB_R_TIMEOUT, 0), 100));   /* good -> bad */
    assert_false(feed(&c, &st, bad(IB_R_TIMEOUT, 0), 200));  /* same reason */
    assert_true(feed(&c, &st, bad(IB_R_EXCEPTION, 2), 300)); /* a new reason */
    assert_true(feed(&c, &st, bad(IB_R_EXCEPTION, 4), 400)); /* a new code */
    assert_false(feed(&c, &st, bad(IB_R_EXCEPTION, 4), 500));
    assert_true(feed(&c, &st, dbl(1), 600)); /* bad -> good, even within the deadband */
    ib_report_state_free(&st);
}

static void stale_once(void **state)
{
    (void)state;
    struct ib_report_cfg c = {.mode = IB_REPORT_ON_CHANGE};
    struct ib_report_state st;
    ib_report_state_init(&st, 0);
    struct ib_sample s = dbl(3);
    assert_true(ib_report_decide(&c, &st, &s, 0, 3000));
    s = bad(IB_R_TIMEOUT, 0);
    assert_true(ib_report_decide(&c, &st, &s, 1000, 3000));
    assert_int_equal(s.quality, IB_Q_BAD); /* the failure first, with its reason */
    s = bad(IB_R_TIMEOUT, 0);
    assert_false(ib_report_decide(&c, &st, &s, 2000, 3000));
    s = bad(IB_R_TIMEOUT, 0);
    assert_true(ib_report_decide(&c, &st, &s, 3000, 3000)); /* 3 s without a good read */
    assert_int_equal(s.quality, IB_Q_STALE);
    assert_int_equal(s.reason, IB_R_TIMEOUT);
    for (int t = 4000; t < 10000; t += 1000) {
        s = bad(IB_R_CONN_LOST, 0);
        assert_false(ib_report_decide(&c, &st, &s, t, 3000)); /* once, not every poll */
    }
    s = dbl(3);
    assert_true(ib_report_decide(&c, &st, &s, 10000, 3000)); /* back */
    ib_report_state_free(&st);
}

static void never_read_is_bad_then_stale(void **state)
{
    (void)state;
    struct ib_report_cfg c = {.mode = IB_REPORT_ON_CHANGE};
    struct ib_report_state st;
    ib_report_state_init(&st, 0);
    struct ib_sample s = bad(IB_R_CONN_LOST, 0);
    assert_true(ib_report_decide(&c, &st, &s, 5000, 3000));
    assert_int_equal(s.quality, IB_Q_BAD);
    s = bad(IB_R_CONN_LOST, 0);
    assert_true(ib_report_decide(&c, &st, &s, 6000, 3000));
    assert_int_equal(s.quality, IB_Q_STALE);
    ib_report_state_free(&st);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(always_sends_every_poll),
        cmocka_unit_test(on_change_exact),
        cmocka_unit_test(deadband_up_and_down_against_last_sent),
        cmocka_unit_test(deadband_integers_64bit_extremes),
        cmocka_unit_test(booleans_and_strings_report_on_change),
        cmocka_unit_test(heartbeat_resends_unchanged),
        cmocka_unit_test(quality_changes_at_once),
        cmocka_unit_test(stale_once),
        cmocka_unit_test(never_read_is_bad_then_stale),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
