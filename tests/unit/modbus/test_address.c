/* Unit tests of the address parser: plain 0-based addresses, hex, and Modicon references that
 * count only with their marker; every near miss is refused with a hint, never misread. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include <ironbridge/error.h>

#include "address.h"
#include "planner.h"

static void expect(const char *text, int table, uint32_t address)
{
    struct mb_address a;
    char err[256];
    if (mb_address_parse(text, &a, err, sizeof(err)) != 0)
        fail_msg("%s: refused: %s", text, err);
    if (a.table != table || a.address != address)
        fail_msg("%s: table %d address %u, expected table %d address %u", text, a.table, a.address,
                 table, address);
}

static void refuse(const char *text, const char *hint)
{
    struct mb_address a = {7, 7};
    char err[256];
    assert_int_equal(mb_address_parse(text, &a, err, sizeof(err)), IB_ERR_INVALID);
    if (strstr(err, hint) == NULL)
        fail_msg("%s: message '%s' lacks '%s'", text, err, hint);
    assert_int_equal(a.address, 7); /* untouched */
}

static void test_plain(void **state)
{
    (void)state;
    expect("0", -1, 0);
    expect("3027", -1, 3027);
    expect("65535", -1, 65535);
    expect("0x0BD3", -1, 3027);
    expect("0xffff", -1, 65535);
    expect("0x0", -1, 0);
}

static void test_modicon(void **state)
{
    (void)state;
    /* Six digits: table digit, then 00001..65536. */
    expect("modicon:400001", MB_TABLE_HOLDING, 0);
    expect("modicon:403028", MB_TABLE_HOLDING, 3027);
    expect("modicon:465536", MB_TABLE_HOLDING, 65535);
    expect("modicon:300001", MB_TABLE_INPUT, 0);
    expect("modicon:100010", MB_TABLE_DISCRETE_INPUT, 9);
    expect("modicon:000001", MB_TABLE_COIL, 0);
    /* Five digits: table digit, then 0001..9999. */
    expect("modicon:40001", MB_TABLE_HOLDING, 0);
    expect("modicon:49999", MB_TABLE_HOLDING, 9998);
    expect("modicon:30010", MB_TABLE_INPUT, 9);
    expect("modicon:00005", MB_TABLE_COIL, 4);
    expect("modicon:10001", MB_TABLE_DISCRETE_INPUT, 0);
}

static void test_refusals(void **state)
{
    (void)state;
    /* Unmarked Modicon-looking numbers are never read as something else. */
    refuse("400001", "modicon:400001");
    refuse("465536", "modicon:465536");
    refuse("65536", "past 65535");
    refuse("040001", "leading zero");
    refuse("00001", "modicon:00001");
    /* Marked but malformed. */
    refuse("modicon:400000", "count from 1");
    refuse("modicon:40000", "count from 1");
    refuse("modicon:465537", "past the last address");
    refuse("modicon:200001", "first digit");
    refuse("modicon:4001", "5 digits");
    refuse("modicon:4000001", "5 digits");
    refuse("modicon:4x0001", "5 digits");
    refuse("modicon:", "5 digits");
    /* Not numbers. */
    refuse("", "empty");
    refuse("12a", "not a number");
    refuse("-1", "not a number");
    refuse("+5", "not a number");
    refuse(" 5", "not a number");
    refuse("0x", "not a number");
    refuse("0x1g", "hexadecimal");
    refuse("0x10000", "past 0xFFFF");
    refuse("70000", "0 to 65535");
    refuse("Modicon:400001", "lower case: modicon:400001");
    struct mb_address a;
    assert_int_equal(mb_address_parse(NULL, &a, NULL, 0), IB_ERR_INVALID);
}

/* Every suggestion a refusal makes (a marked reference "modicon:NNNNN", a plain address in
 * parentheses "(NNN)") is itself accepted: a hint must lead to something that works. */
static unsigned check_suggestions(const char *text, const char *err)
{
    unsigned n = 0;
    for (const char *p = err; (p = strpbrk(p, "m(")) != NULL; p++) {
        char cand[64];
        size_t len = 0;
        if (strncmp(p, "modicon:", 8) == 0) {
            len = 8 + strspn(p + 8, "0123456789");
            if (len == 8)
                continue; /* the marker named alone */
        } else if (*p == '(') {
            len = strspn(p + 1, "0123456789");
            if (len == 0 || p[1 + len] != ')')
                continue;
            p++;
        } else {
            continue;
        }
        snprintf(cand, sizeof(cand), "%.*s", (int)len, p);
        struct mb_address a;
        char why[256];
        if (mb_address_parse(cand, &a, why, sizeof(why)) != 0)
            fail_msg("%s: the hint '%s' is refused too: %s", text, cand, why);
        n++;
    }
    return n;
}

static void test_hints_work(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "70000",   "99999",    "400001",       "465536",         "465537",         "500000",
        "1000000", "0123",     "01",           "00001",          "040001",         "00000",
        "065536",  "0x10000",  "0xFFFFF",      "Modicon:400001", "MODICON:300001", "12a",
        "3x",      "modicon:", "modicon:4001", "modicon:400000", "modicon:465537",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct mb_address a;
        char err[256];
        assert_int_equal(mb_address_parse(bad[i], &a, err, sizeof(err)), IB_ERR_INVALID);
        check_suggestions(bad[i], err);
    }
    /* The case: a number past 65535 that is no Modicon reference either names the range
     * instead of suggesting a marker that would be refused. */
    char err[256];
    struct mb_address a;
    mb_address_parse("70000", &a, err, sizeof(err));
    assert_null(strstr(err, "modicon:70000"));
    assert_non_null(strstr(err, "0 to 65535"));
    mb_address_parse("0123", &a, err, sizeof(err));
    assert_int_equal(check_suggestions("0123", err), 1); /* (123), not modicon:0123 */
    expect("0x00FF", -1, 255);                           /* leading zeros in hex are fine */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plain),
        cmocka_unit_test(test_modicon),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_hints_work),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
