/* test_backoff.c: the capped exponential back-off with full jitter (ib_backoff_ms, used by the
 * MQTT reconnect and the plugin open retries) and its random source ib_util_rand64. The Modbus
 * plugin's per-device back-off is tested in tests/unit/modbus/test_modbus_plugin.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "util.h"

/* Every delay lies in [min, min(max, min * 2^attempt)]. */
static void test_bounds(void **state)
{
    (void)state;
    uint64_t rng = 1;
    for (unsigned attempt = 0; attempt < 40; attempt++) {
        int64_t cap = 500;
        for (unsigned i = 0; i < attempt && cap < 30000; i++)
            cap *= 2;
        if (cap > 30000)
            cap = 30000;
        for (int k = 0; k < 200; k++) {
            int64_t d = ib_backoff_ms(500, 30000, attempt, &rng);
            assert_true(d >= 500);
            assert_true(d <= cap);
        }
    }
}

/* The first attempt waits exactly the minimum; so does a back-off whose max is its min. */
static void test_first_attempt_and_flat(void **state)
{
    (void)state;
    uint64_t rng = 42;
    for (int k = 0; k < 50; k++) {
        assert_int_equal(ib_backoff_ms(1000, 60000, 0, &rng), 1000);
        assert_int_equal(ib_backoff_ms(2000, 2000, (unsigned)k, &rng), 2000);
    }
}

/* The range doubles with each attempt until the cap: the largest of many draws at attempt n
 * comes within 5% of min * 2^n (or of max), never past it. */
static void test_growth_and_cap(void **state)
{
    (void)state;
    uint64_t rng = 7;
    for (unsigned attempt = 1; attempt <= 10; attempt++) {
        int64_t hi = 0;
        for (int k = 0; k < 2000; k++) {
            int64_t d = ib_backoff_ms(100, 10000, attempt, &rng);
            if (d > hi)
                hi = d;
        }
        int64_t cap = (100LL << attempt) < 10000 ? (100LL << attempt) : 10000;
        assert_true(hi <= cap);
        assert_true(hi >= cap - (cap - 100) / 20); /* within 5% of the top of the range */
    }
    /* Far past the cap (and with an attempt count that would overflow a shift): max. */
    int64_t hi = 0;
    for (int k = 0; k < 2000; k++) {
        int64_t d = ib_backoff_ms(100, 10000, 4000000000u, &rng);
        assert_true(d >= 100 && d <= 10000);
        if (d > hi)
            hi = d;
    }
    assert_true(hi > 9500);
}

/* Jitter: two gateways with different seeds do not retry in lockstep, and one gateway's
 * successive draws differ. */
static void test_jitter(void **state)
{
    (void)state;
    uint64_t a = 1, b = 2;
    int same = 0, distinct_a = 0;
    int64_t last = -1;
    for (int k = 0; k < 100; k++) {
        int64_t da = ib_backoff_ms(1000, 60000, 6, &a);
        int64_t db = ib_backoff_ms(1000, 60000, 6, &b);
        same += da == db;
        distinct_a += da != last;
        last = da;
    }
    assert_true(same < 5);
    assert_true(distinct_a > 90);
}

/* A zero state (never seeded) still gives numbers, and the state moves on. */
static void test_rand64_zero_state(void **state)
{
    (void)state;
    uint64_t s = 0;
    uint64_t x = ib_util_rand64(&s);
    assert_int_not_equal(s, 0);
    uint64_t y = ib_util_rand64(&s);
    assert_int_not_equal(x, y);
    uint64_t t = 0;
    assert_int_equal(ib_util_rand64(&t), x); /* deterministic for a given state */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bounds),
        cmocka_unit_test(test_first_attempt_and_flat),
        cmocka_unit_test(test_growth_and_cap),
        cmocka_unit_test(test_jitter),
        cmocka_unit_test(test_rand64_zero_state),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
