/* Unit tests of the address parser: plain 0-based addresses, hex, and Modicon references that
 * count only with their marker; every near miss is refused with a hint, never misread. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
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
    refuse("Modicon:400001", "not a number");
    struct mb_address a;
    assert_int_equal(mb_address_parse(NULL, &a, NULL, 0), IB_ERR_INVALID);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plain),
        cmocka_unit_test(test_modicon),
        cmocka_unit_test(test_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
