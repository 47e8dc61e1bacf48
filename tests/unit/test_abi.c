/* Plugin ABI checks: a plugin with another major, a newer minor, a short descriptor, a missing
 * callback or no descriptor is refused with a message naming both versions; a good one loads. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "plugin_loader.h"

static struct ib_plugin_registry *reg(void)
{
    const char *dir = getenv("IB_TEST_ABI_DIR");
    assert_non_null(dir);
    struct ib_plugin_registry *r = ib_plugins_new(dir, true);
    assert_non_null(r);
    return r;
}

static void expect_refused(const char *name, const char *const *needles)
{
    struct ib_plugin_registry *r = reg();
    char err[1024] = "";
    const struct ib_plugin *p = ib_plugins_get(r, name, err, sizeof err);
    assert_null(p);
    for (; *needles; needles++) {
        if (!strstr(err, *needles))
            fail_msg("message for '%s' lacks '%s': %s", name, *needles, err);
    }
    ib_plugins_free(r);
}

static void good_loads(void **state)
{
    (void)state;
    struct ib_plugin_registry *r = reg();
    char err[1024] = "";
    const struct ib_plugin *p = ib_plugins_get(r, "good", err, sizeof err);
    assert_non_null(p);
    assert_string_equal(p->name, "good");
    /* loaded once, cached */
    assert_ptr_equal(ib_plugins_get(r, "good", err, sizeof err), p);
    ib_plugins_free(r);
}

static void bad_major(void **state)
{
    (void)state;
    const char *n[] = {"ABI 2.1", "provides ABI 1.1", "badmajor.so", "rebuild", NULL};
    expect_refused("badmajor", n);
}

static void newer_minor(void **state)
{
    (void)state;
    const char *n[] = {"ABI 1.7", "provides only ABI 1.1", "upgrade", NULL};
    expect_refused("newminor", n);
}

static void short_size(void **state)
{
    (void)state;
    const char *n[] = {"16 bytes", "ABI 1.1", NULL};
    expect_refused("shortsize", n);
}

static void missing_callback(void **state)
{
    (void)state;
    const char *n[] = {"read_group()", NULL};
    expect_refused("nocallback", n);
}

static void no_symbol(void **state)
{
    (void)state;
    const char *n[] = {"not an ironbridge plugin", "ironbridge_plugin", NULL};
    expect_refused("nosymbol", n);
}

static void unknown_and_bad_names(void **state)
{
    (void)state;
    const char *n[] = {"unknown plugin 'nothere'", NULL};
    expect_refused("nothere", n);
    const char *n2[] = {"is not a plugin name", NULL};
    expect_refused("../evil", n2);
}

static void others_keep_working(void **state)
{
    (void)state;
    /* A refused plugin does not poison the registry. */
    struct ib_plugin_registry *r = reg();
    char err[1024];
    assert_null(ib_plugins_get(r, "badmajor", err, sizeof err));
    assert_non_null(ib_plugins_get(r, "good", err, sizeof err));
    ib_plugins_free(r);
}

static void check_is_pure(void **state)
{
    (void)state;
    struct ib_plugin p = {.abi_major = 1, .abi_minor = 0, .size = sizeof(struct ib_plugin)};
    char err[512];
    assert_int_equal(ib_plugin_check(&p, "x.so", err, sizeof err), -1); /* no name */
    assert_non_null(strstr(err, "name"));
    p.abi_major = 0;
    assert_int_equal(ib_plugin_check(&p, "x.so", err, sizeof err), -1);
    assert_non_null(strstr(err, "ABI 0.0"));
}

/* The real 1.1 daemon loads 'good', built against the frozen 1.0 header, and never sees 1.1
 * fields in it; 'good11' brings its wait_events(). */
static void v10_plugin_loads_into_11(void **state)
{
    (void)state;
    char err[1024] = "";
    struct ib_plugin_registry *r = reg();
    const struct ib_plugin *good = ib_plugins_get(r, "good", err, sizeof err);
    if (!good)
        fail_msg("a 1.0 plugin refused by the 1.1 daemon: %s", err);
    assert_int_equal(good->abi_minor, 0);
    assert_null(ib_plugin_wait_events(good));
    assert_null(ib_plugin_group_schema(good));
    const struct ib_plugin *g11 = ib_plugins_get(r, "good11", err, sizeof err);
    if (!g11)
        fail_msg("a 1.1 plugin refused: %s", err);
    assert_int_equal(g11->abi_minor, 1);
    assert_non_null(ib_plugin_wait_events(g11));
    assert_int_equal(ib_plugin_wait_events(g11)(NULL, 0), 0);
    ib_plugins_free(r);
}

/* A host one minor ahead (1.2, whose descriptor grew by 16 bytes) against plugins built for 1.0,
 * 1.1 and 1.2: the minor table as it will be used when 1.2 exists. */
static void older_minor_loads(void **state)
{
    (void)state;
    const uint32_t sizes[] = {(uint32_t)sizeof(struct ib_plugin),
                              (uint32_t)sizeof(struct ib_plugin),
                              (uint32_t)sizeof(struct ib_plugin) + 16};
    char err[1024] = "";
    /* The real 'good' plugin, built against 1.0 and loaded from its .so. */
    struct ib_plugin_registry *r = reg();
    const struct ib_plugin *good = ib_plugins_get(r, "good", err, sizeof err);
    assert_non_null(good);
    assert_int_equal(good->abi_minor, 0);
    if (ib_plugin_check_abi(good, "good.so", 2, sizes, err, sizeof err) != 0)
        fail_msg("a 1.0 plugin refused by a 1.2 host: %s", err);
    struct ib_plugin p = *good; /* its pointers stay valid until ib_plugins_free(r) */
    /* Built for 1.2 with the 1.2 headers: accepted. */
    p.abi_minor = 2;
    p.size = sizes[2];
    assert_int_equal(ib_plugin_check_abi(&p, "new.so", 2, sizes, err, sizeof err), 0);
    /* Claims 1.2 but has the 1.1 size: refused, naming both. */
    p.size = sizes[1];
    assert_int_equal(ib_plugin_check_abi(&p, "mixed.so", 2, sizes, err, sizeof err), -1);
    assert_non_null(strstr(err, "declares ABI 1.2"));
    assert_non_null(strstr(err, "provides ABI 1.2"));
    /* Built for 1.3: refused by the 1.2 host. */
    p.abi_minor = 3;
    p.size = sizes[2] + 16;
    assert_int_equal(ib_plugin_check_abi(&p, "newer.so", 2, sizes, err, sizeof err), -1);
    assert_non_null(strstr(err, "provides only ABI 1.2"));
    ib_plugins_free(r);
}

/* The broken plugins beside a good one in one directory: each refused with its reason, the good
 * one listed (what --list-plugins does). */
struct scan_result {
    int good, refused;
    char msgs[2048];
};
static void scan_visit(const char *path, const struct ib_plugin *p, const char *err, void *ud)
{
    (void)path;
    struct scan_result *s = ud;
    if (p) {
        s->good++;
    } else {
        s->refused++;
        strncat(s->msgs, err, sizeof s->msgs - strlen(s->msgs) - 2);
        strcat(s->msgs, "\n");
    }
}

static void scan_refuses_each_and_keeps_good(void **state)
{
    (void)state;
    struct ib_plugin_registry *r = reg();
    struct scan_result s = {0};
    ib_plugins_scan(r, scan_visit, &s);
    assert_int_equal(s.good, 2); /* good (1.0) and good11 */
    assert_int_equal(s.refused, 5);
    const char *need[] = {"badmajor.so",   "newminor.so", "shortsize.so",
                          "nocallback.so", "nosymbol.so", NULL};
    for (const char *const *n = need; *n; n++)
        if (!strstr(s.msgs, *n))
            fail_msg("no refusal for %s in:\n%s", *n, s.msgs);
    ib_plugins_free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(good_loads),
        cmocka_unit_test(bad_major),
        cmocka_unit_test(newer_minor),
        cmocka_unit_test(short_size),
        cmocka_unit_test(missing_callback),
        cmocka_unit_test(no_symbol),
        cmocka_unit_test(unknown_and_bad_names),
        cmocka_unit_test(others_keep_working),
        cmocka_unit_test(check_is_pure),
        cmocka_unit_test(v10_plugin_loads_into_11),
        cmocka_unit_test(older_minor_loads),
        cmocka_unit_test(scan_refuses_each_and_keeps_good),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
