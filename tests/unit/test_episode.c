/* test_episode.c: the SDK's failure-episode helper (include/ironbridge/log.h): logged once when
 * a failure starts, when its cause changes, as a periodic reminder, and once when it ends. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <ironbridge/log.h>

static void starts_once_then_counts(void **state)
{
    (void)state;
    struct ib_episode e = {0};
    assert_int_equal(ib_episode_ok(&e, 0), IB_EPISODE_QUIET);
    assert_int_equal(ib_episode_fail(&e, 111, 1000), IB_EPISODE_STARTED);
    for (int i = 0; i < 100; i++)
        assert_int_equal(ib_episode_fail(&e, 111, 1000 + i * 100), IB_EPISODE_QUIET);
    assert_int_equal(e.count, 101);
    assert_int_equal(e.unlogged, 100);
    assert_int_equal(ib_episode_age_s(&e, 11000), 10);
    assert_int_equal(ib_episode_ok(&e, 12000), IB_EPISODE_ENDED);
    assert_int_equal(e.count, 101); /* still describes the episode that ended */
    assert_int_equal(ib_episode_ok(&e, 13000), IB_EPISODE_QUIET);
    assert_int_equal(ib_episode_fail(&e, 111, 14000), IB_EPISODE_STARTED);
    assert_int_equal(e.count, 1);
    assert_int_equal(e.since_ms, 14000);
}

static void cause_change_is_logged(void **state)
{
    (void)state;
    struct ib_episode e = {0};
    assert_int_equal(ib_episode_fail(&e, 1, 0), IB_EPISODE_STARTED);
    assert_int_equal(ib_episode_fail(&e, 1, 10), IB_EPISODE_QUIET);
    assert_int_equal(ib_episode_fail(&e, 2, 20), IB_EPISODE_CHANGED);
    assert_int_equal(ib_episode_fail(&e, 2, 30), IB_EPISODE_QUIET);
    assert_int_equal(e.cause, 2);
    assert_int_equal(e.since_ms, 0); /* the episode goes on */
}

static void reminders(void **state)
{
    (void)state;
    struct ib_episode e = {.remind_ms = 1000};
    assert_int_equal(ib_episode_fail(&e, 5, 0), IB_EPISODE_STARTED);
    assert_int_equal(ib_episode_fail(&e, 5, 999), IB_EPISODE_QUIET);
    assert_int_equal(ib_episode_fail(&e, 5, 1000), IB_EPISODE_REMIND);
    assert_int_equal(e.unlogged, 0);
    assert_int_equal(ib_episode_fail(&e, 5, 1500), IB_EPISODE_QUIET);

    struct ib_episode never = {.remind_ms = -1};
    assert_int_equal(ib_episode_fail(&never, 5, 0), IB_EPISODE_STARTED);
    assert_int_equal(ib_episode_fail(&never, 5, INT64_MAX / 2), IB_EPISODE_QUIET);

    struct ib_episode dflt = {0};
    assert_int_equal(ib_episode_fail(&dflt, 5, 0), IB_EPISODE_STARTED);
    assert_int_equal(ib_episode_fail(&dflt, 5, IB_EPISODE_REMIND_MS_DEFAULT - 1), IB_EPISODE_QUIET);
    assert_int_equal(ib_episode_fail(&dflt, 5, IB_EPISODE_REMIND_MS_DEFAULT), IB_EPISODE_REMIND);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(starts_once_then_counts),
        cmocka_unit_test(cause_change_is_logged),
        cmocka_unit_test(reminders),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
