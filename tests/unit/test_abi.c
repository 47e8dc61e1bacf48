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
    const char *n[] = {"ABI 2.0", "ABI 1.0", "badmajor.so", "rebuild", NULL};
    expect_refused("badmajor", n);
}

static void newer_minor(void **state)
{
    (void)state;
    const char *n[] = {"ABI 1.7", "provides only ABI 1.0", "upgrade", NULL};
    expect_refused("newminor", n);
}

static void short_size(void **state)
{
    (void)state;
    const char *n[] = {"16 bytes", "ABI 1.0", NULL};
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
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
