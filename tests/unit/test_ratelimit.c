/* test_ratelimit.c: the token bucket for repeated log messages (ib_ratelimit_ok in
 * daemon/log.c): at most `burst` per window, the number suppressed reported with the next
 * message let through, a new window after `interval_ms`. Time is passed in, never read. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "log.h"

/* A burst passes with nothing suppressed before it; the rest of the window is dropped. */
static void test_burst_then_drop(void **state)
{
    (void)state;
    struct ib_ratelimit rl = IB_RATELIMIT_INIT(60000, 3);
    int64_t t = 1000000;
    for (int i = 0; i < 3; i++)
        assert_int_equal(ib_ratelimit_ok(&rl, t + i), 0);
    for (int i = 0; i < 10; i++)
        assert_int_equal(ib_ratelimit_ok(&rl, t + 100 + i), -1);
}

/* The first message of the next window passes and says how many were dropped before it; the
 * count starts again from zero after that. */
static void test_suppressed_count_reported_once(void **state)
{
    (void)state;
    struct ib_ratelimit rl = IB_RATELIMIT_INIT(1000, 2);
    int64_t t = 5000;
    assert_int_equal(ib_ratelimit_ok(&rl, t), 0);
    assert_int_equal(ib_ratelimit_ok(&rl, t + 1), 0);
    for (int i = 0; i < 7; i++)
        assert_int_equal(ib_ratelimit_ok(&rl, t + 2 + i), -1);
    assert_int_equal(ib_ratelimit_ok(&rl, t + 999), -1); /* still the same window: 8 dropped */
    assert_int_equal(ib_ratelimit_ok(&rl, t + 1000), 8);
    assert_int_equal(ib_ratelimit_ok(&rl, t + 1001), 0);
    assert_int_equal(ib_ratelimit_ok(&rl, t + 1002), -1);
    assert_int_equal(ib_ratelimit_ok(&rl, t + 5000), 1);
}

/* A quiet period longer than the window: everything passes, nothing is reported dropped. */
static void test_slow_messages_all_pass(void **state)
{
    (void)state;
    struct ib_ratelimit rl = IB_RATELIMIT_INIT(1000, 1);
    for (int64_t t = 10000; t < 30000; t += 1000)
        assert_int_equal(ib_ratelimit_ok(&rl, t), 0);
}

/* The window is counted from the first message let through in it, not from a fixed grid. */
static void test_window_starts_at_first_message(void **state)
{
    (void)state;
    struct ib_ratelimit rl = IB_RATELIMIT_INIT(1000, 1);
    assert_int_equal(ib_ratelimit_ok(&rl, 100500), 0);
    assert_int_equal(ib_ratelimit_ok(&rl, 101000), -1); /* 500 ms later: same window */
    assert_int_equal(ib_ratelimit_ok(&rl, 101499), -1);
    assert_int_equal(ib_ratelimit_ok(&rl, 101500), 2);
}

/* Two owners do not share a budget. */
static void test_independent_buckets(void **state)
{
    (void)state;
    struct ib_ratelimit a = IB_RATELIMIT_INIT(60000, 1), b = IB_RATELIMIT_INIT(60000, 1);
    assert_int_equal(ib_ratelimit_ok(&a, 70000), 0);
    assert_int_equal(ib_ratelimit_ok(&a, 70001), -1);
    assert_int_equal(ib_ratelimit_ok(&b, 70002), 0);
    assert_int_equal(ib_ratelimit_ok(&b, 70003), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_burst_then_drop),
        cmocka_unit_test(test_suppressed_count_reported_once),
        cmocka_unit_test(test_slow_messages_all_pass),
        cmocka_unit_test(test_window_starts_at_first_message),
        cmocka_unit_test(test_independent_buckets),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
