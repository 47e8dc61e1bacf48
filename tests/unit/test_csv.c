/* The CSV reader (csv.c) on its own: cells and their positions, quotes, line ends, comments and
 * blank rows, a byte order mark, and every refusal with its position; it reads only the length
 * it is given. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "csv.h"

/* Every row as "line|cell@line:col|cell@line:col...\n". */
struct got {
    char text[4096];
    size_t len;
    int rows, stop_after;
};

static int on_row(void *ud, const struct ib_csv_cell *c, int n, int line)
{
    struct got *g = ud;
    g->len += (size_t)snprintf(g->text + g->len, sizeof g->text - g->len, "%d", line);
    for (int i = 0; i < n; i++) {
        assert_int_equal(strlen(c[i].text), c[i].len);
        g->len += (size_t)snprintf(g->text + g->len, sizeof g->text - g->len, "|%s@%d:%d",
                                   c[i].text, c[i].line, c[i].col);
    }
    g->len += (size_t)snprintf(g->text + g->len, sizeof g->text - g->len, "\n");
    return ++g->rows == g->stop_after ? 7 : 0;
}

static void parse_ok(const char *buf, size_t len, const char *want)
{
    struct got g = {0};
    struct ib_csv_error e = {0};
    assert_int_equal(ib_csv_parse(buf, len, on_row, &g, &e), 0);
    assert_string_equal(g.text, want);
}

static void cells_and_positions(void **state)
{
    (void)state;
    const char t[] = "name, table ,address\n"
                     "# a comment, \"with a quote\n"
                     "\n"
                     "\"a, b\",\"say \"\"hi\"\"\" x,1\r\n"
                     "  c\t,,\"multi\nline\"\r"
                     "last,1,2";
    parse_ok(t, sizeof t - 1,
             "1|name@1:1|table@1:7|address@1:14\n"
             "4|a, b@4:1|say \"hi\"@4:8|1@4:23\n"
             "5|c@5:3|@5:6|multi\nline@5:7\n"
             "7|last@7:1|1@7:6|2@7:8\n");
}

static void bom_and_empty(void **state)
{
    (void)state;
    parse_ok("\xef\xbb\xbf"
             "a,b\n",
             7, "1|a@1:1|b@1:3\n");
    parse_ok("", 0, "");
    parse_ok("\n\n\r\n", 4, "");
    parse_ok("a,b\nc,d", 3, "1|a@1:1|b@1:3\n"); /* only the length given is read */
    parse_ok("x\xc3\xa9,\xe2\x82\xac,\xf0\x9f\x98\x80\n", 12,
             "1|x\xc3\xa9@1:1|\xe2\x82\xac@1:5|\xf0\x9f\x98\x80@1:9\n");
}

static void refused(const char *buf, size_t len, int line, int col, int byte, const char *what)
{
    struct got g = {0};
    struct ib_csv_error e = {0};
    assert_int_equal(ib_csv_parse(buf, len, on_row, &g, &e), -1);
    assert_non_null(strstr(e.what, what));
    assert_int_equal(e.line, line);
    assert_int_equal(e.col, col);
    assert_int_equal(e.byte, byte);
}

static void refusals(void **state)
{
    (void)state;
    refused("a,b\nc,\"open\n", 12, 2, 3, -1, "a quoted cell is never closed");
    refused("a,b\nc,d\0e\n", 10, 2, 4, 0, "a NUL byte");
    refused("a\n\"x\0\"\n", 7, 2, 3, 0, "a NUL byte");
    refused("a\n\"x\"\0\n", 7, 2, 4, 0, "a NUL byte");
    refused("name,unit\nt,\xb0"
            "C\n",
            15, 2, 3, 0xb0, "is not valid UTF-8");
    refused("a\n\xc0\xaf\n", 5, 2, 1, 0xc0, "is not valid UTF-8");     /* overlong */
    refused("a\n\xed\xa0\x80\n", 6, 2, 1, 0xed, "is not valid UTF-8"); /* a surrogate */
    refused("a\nok,x\xe2\x82\n", 9, 2, 4, 0xe2, "is not valid UTF-8"); /* cut short */
    char wide[200] = "a";
    for (int i = 0; i < 64; i++)
        strcat(wide, ",b");
    refused(wide, strlen(wide), 1, 129, -1, "more than 64 cells");
    wide[0] = '#'; /* a comment row may be as wide as it likes */
    parse_ok(wide, strlen(wide), "");
    parse_ok("# \xb0 Latin-1 in a comment\n", 24, "");
}

static void callback_stops(void **state)
{
    (void)state;
    struct got g = {.stop_after = 2};
    struct ib_csv_error e = {0};
    assert_int_equal(ib_csv_parse("a\nb\nc\n", 6, on_row, &g, &e), 7);
    assert_int_equal(g.rows, 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(cells_and_positions),
        cmocka_unit_test(bom_and_empty),
        cmocka_unit_test(refusals),
        cmocka_unit_test(callback_stops),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
