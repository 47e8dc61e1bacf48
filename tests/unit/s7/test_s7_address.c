/* Unit tests of the S7 address parser: every notation of the STEP 7 / TIA Portal forms
 * (case, %, German mnemonics), the canonical form back, and refusals with a hint. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "address.h"
#include "wire.h"

static void expect(const char *text, uint8_t area, uint16_t db, uint8_t width, uint32_t off,
                   uint8_t bit, const char *canonical)
{
    struct s7_address a;
    char why[400], out[40];
    if (s7_address_parse(text, &a, why, sizeof why) != 0)
        fail_msg("'%s' refused: %s", text, why);
    assert_int_equal(a.area, area);
    assert_int_equal(a.db, db);
    assert_int_equal(a.width, width);
    assert_int_equal(a.offset, off);
    assert_int_equal(a.bit, bit);
    assert_string_equal(s7_address_format(&a, out, sizeof out), canonical);
}

static void refused(const char *text, const char *hint)
{
    struct s7_address a;
    char why[400];
    if (s7_address_parse(text, &a, why, sizeof why) == 0)
        fail_msg("'%s' accepted", text);
    if (strstr(why, hint) == NULL)
        fail_msg("'%s': '%s' does not say '%s'", text, why, hint);
    assert_non_null(strstr(why, "DB10.DBX4.3")); /* every refusal shows the notation */
}

static void forms(void **state)
{
    (void)state;
    expect("DB10.DBX4.3", S7_AREA_DB, 10, S7_W_BIT, 4, 3, "DB10.DBX4.3");
    expect("%db10.dbx4.3", S7_AREA_DB, 10, S7_W_BIT, 4, 3, "DB10.DBX4.3");
    expect("DB10.DBB4", S7_AREA_DB, 10, S7_W_BYTE, 4, 0, "DB10.DBB4");
    expect("DB10.DBW4", S7_AREA_DB, 10, S7_W_WORD, 4, 0, "DB10.DBW4");
    expect("%DB65535.DBD65535", S7_AREA_DB, 65535, S7_W_DWORD, 65535, 0, "DB65535.DBD65535");
    expect("M0.1", S7_AREA_M, 0, S7_W_BIT, 0, 1, "M0.1");
    expect("%MX7.7", S7_AREA_M, 0, S7_W_BIT, 7, 7, "M7.7");
    expect("mb5", S7_AREA_M, 0, S7_W_BYTE, 5, 0, "MB5");
    expect("MW10", S7_AREA_M, 0, S7_W_WORD, 10, 0, "MW10");
    expect("%MD20", S7_AREA_M, 0, S7_W_DWORD, 20, 0, "MD20");
    expect("I0.0", S7_AREA_I, 0, S7_W_BIT, 0, 0, "I0.0");
    expect("E0.0", S7_AREA_I, 0, S7_W_BIT, 0, 0, "I0.0");
    expect("%IW64", S7_AREA_I, 0, S7_W_WORD, 64, 0, "IW64");
    expect("EB3", S7_AREA_I, 0, S7_W_BYTE, 3, 0, "IB3");
    expect("Q4.2", S7_AREA_Q, 0, S7_W_BIT, 4, 2, "Q4.2");
    expect("a4.2", S7_AREA_Q, 0, S7_W_BIT, 4, 2, "Q4.2");
    expect("QD8", S7_AREA_Q, 0, S7_W_DWORD, 8, 0, "QD8");
    expect("AW2", S7_AREA_Q, 0, S7_W_WORD, 2, 0, "QW2");
    expect("T5", S7_AREA_T, 0, S7_W_TIMER, 5, 0, "T5");
    expect("%t0", S7_AREA_T, 0, S7_W_TIMER, 0, 0, "T0");
    expect("C3", S7_AREA_C, 0, S7_W_COUNTER, 3, 0, "C3");
    expect("Z3", S7_AREA_C, 0, S7_W_COUNTER, 3, 0, "C3");
}

static void refusals(void **state)
{
    (void)state;
    refused("", "empty");
    refused("DB10.DBX4.8", "bit number must be 0..7");
    refused("DB10.DBX4", "needs .bit");
    refused("M0", "needs .bit");
    refused("DB0.DBW4", "DB number must be 1..65535");
    refused("DB65536.DBW4", "DB number must be 1..65535");
    refused("DB10.DBW65536", "past 65535");
    refused("DB10.DBW4.1", "only bit addresses");
    refused("DB10.DBQ4", "after .DB comes the width");
    refused("DB10,DBW4", ".DBX, .DBB, .DBW or .DBD");
    refused("DB10.DBW", "byte offset");
    refused("X10", "unknown area");
    refused("MW10 ", "unexpected text");
    refused("T-1", "timer is T");
    refused("C70000", "counter is C");
    refused("M.1", "width letter");
    refused("DB10.DBW99999999", "byte offset");
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(forms), cmocka_unit_test(refusals)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
