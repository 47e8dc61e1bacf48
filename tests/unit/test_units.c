/* Sizes and durations as the configuration writes them (units.c): exact values, every unit,
 * blanks, and refusals (no number, unknown unit, overflow, fractions of a byte, a bare number
 * where a duration needs its unit). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "units.h"

static int64_t size_of(const char *s)
{
    int64_t v = -12345;
    assert_int_equal(ib_units_parse_size(s, &v), 0);
    return v;
}

static void sizes(void **state)
{
    (void)state;
    assert_int_equal(size_of("0"), 0);
    assert_int_equal(size_of("1048576"), 1048576);
    assert_int_equal(size_of("12B"), 12);
    assert_int_equal(size_of("1k"), 1000);
    assert_int_equal(size_of("1kB"), 1000);
    assert_int_equal(size_of("1KB"), 1000);
    assert_int_equal(size_of("64KiB"), 65536);
    assert_int_equal(size_of("10MB"), 10000000);
    assert_int_equal(size_of("8MiB"), 8 << 20);
    assert_int_equal(size_of("1GB"), 1000000000);
    assert_int_equal(size_of("1GiB"), 1LL << 30);
    assert_int_equal(size_of("2TB"), 2000000000000LL);
    assert_int_equal(size_of("1TiB"), 1LL << 40);
    assert_int_equal(size_of(" 512 MiB "), 512LL << 20);
    assert_int_equal(size_of("8388607TiB"), 8388607LL << 40); /* the largest that fits */
}

static void sizes_refused(void **state)
{
    (void)state;
    static const char *const bad[] = {"",
                                      " ",
                                      "GiB",
                                      "1.5GiB",
                                      "1 gib",
                                      "-1",
                                      "+1",
                                      "1PiB",
                                      "1 2",
                                      "0x10",
                                      "1GiBB",
                                      "8388608TiB",
                                      "99999999999999999999",
                                      "1 MiB x"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int64_t v = 7;
        if (ib_units_parse_size(bad[i], &v) != -1)
            fail_msg("'%s' was accepted as %lld", bad[i], (long long)v);
        assert_int_equal(v, 7); /* untouched when refused */
    }
}

static void formatted(void **state)
{
    (void)state;
    char b[32];
    ib_units_format_size(b, sizeof b, 12);
    assert_string_equal(b, "12 B");
    ib_units_format_size(b, sizeof b, 300 * 1024);
    assert_string_equal(b, "300.0 KiB");
    ib_units_format_size(b, sizeof b, 3ULL << 29);
    assert_string_equal(b, "1.5 GiB");
    ib_units_format_size(b, sizeof b, 1024ULL << 40);
    assert_string_equal(b, "1024.0 TiB");
}

static int64_t ms_of(const char *s)
{
    int64_t v = -12345;
    assert_int_equal(ib_units_parse_duration_ms(s, &v), 0);
    return v;
}

static void durations(void **state)
{
    (void)state;
    assert_int_equal(ms_of("0ms"), 0);
    assert_int_equal(ms_of("500ms"), 500);
    assert_int_equal(ms_of("1s"), 1000);
    assert_int_equal(ms_of("1sec"), 1000);
    assert_int_equal(ms_of("1.5s"), 1500);
    assert_int_equal(ms_of("5min"), 300000);
    assert_int_equal(ms_of("5m"), 300000);
    assert_int_equal(ms_of("2h"), 7200000);
    assert_int_equal(ms_of("7d"), 7LL * 86400000);
}

static void durations_refused(void **state)
{
    (void)state;
    static const char *const bad[] = {"",        "3600", "1y",    "s",   "-1s",
                                      "1.0005s", "1 s",  "1e30d", "nan", "inf s"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int64_t v = 7;
        if (ib_units_parse_duration_ms(bad[i], &v) != -1)
            fail_msg("'%s' was accepted as %lld ms", bad[i], (long long)v);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(sizes),
        cmocka_unit_test(sizes_refused),
        cmocka_unit_test(formatted),
        cmocka_unit_test(durations),
        cmocka_unit_test(durations_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
