/* Configuration loading: every kind of bad input gives an error with file:line:column and the
 * key path, all errors are reported at once, and a valid file loads with defaults filled. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "config.h"
#include "gateway.h"
#include "plugin_loader.h"

static char dir[256];
static char file[300];

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/ib-test-config-XXXXXX");
    assert_non_null(mkdtemp(dir));
    snprintf(file, sizeof file, "%s/gw.yaml", dir);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd);
}

static void write_file(const char *path, const char *text, mode_t mode)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    chmod(path, mode);
}

/* Load `yaml`; return the configuration (or NULL) and the diagnostics. Plugin instances are
 * created too, so that the plugin's own semantic checks run as in the daemon. */
static struct ib_config *load(const char *yaml, struct ib_diag *d)
{
    write_file(file, yaml, 0600);
    struct ib_plugin_registry *r = ib_plugins_new(getenv("IB_TEST_PLUGIN_DIR"), true);
    struct ib_config *cfg = ib_config_load(file, r, d);
    if (cfg) {
        struct ib_gateway *gw = ib_gateway_create(cfg, d);
        if (!gw) {
            ib_config_free(cfg);
            cfg = NULL;
        }
        ib_gateway_free(gw);
    }
    ib_config_free(cfg);
    ib_plugins_free(r);
    return cfg;
}

static void expect_error(const char *yaml, const char *needle)
{
    struct ib_diag d = {0};
    load(yaml, &d);
    bool found = false;
    for (size_t i = 0; i < d.n; i++)
        if (strstr(d.msgs[i], needle))
            found = true;
    if (!found) {
        for (size_t i = 0; i < d.n; i++)
            fprintf(stderr, "  got: %s\n", d.msgs[i]);
        fail_msg("no error containing '%s' (%zu errors)", needle, d.n);
    }
    ib_diag_free(&d);
}

#define NORTH                                                                                      \
    "north:\n"                                                                                     \
    "  mqtt:\n"                                                                                    \
    "    url: mqtt://127.0.0.1:1883\n"                                                             \
    "    allow_insecure: true\n"

#define CONN_HEAD                                                                                  \
    "connections:\n"                                                                               \
    "  - name: plc\n"                                                                              \
    "    plugin: modbus\n"                                                                         \
    "    host: 127.0.0.1\n"                                                                        \
    "    devices:\n"                                                                               \
    "      - name: m1\n"                                                                           \
    "        groups:\n"                                                                            \
    "          - name: g\n"                                                                        \
    "            tags:\n"

static void valid_minimal(void **state)
{
    (void)state;
    struct ib_diag d = {0};
    write_file(file, NORTH CONN_HEAD "              - { name: a, table: holding, address: 0 }\n",
               0600);
    struct ib_plugin_registry *r = ib_plugins_new(getenv("IB_TEST_PLUGIN_DIR"), true);
    struct ib_config *cfg = ib_config_load(file, r, &d);
    for (size_t i = 0; i < d.n; i++)
        fprintf(stderr, "%s\n", d.msgs[i]);
    assert_non_null(cfg);
    assert_int_equal(cfg->n_connections, 1);
    assert_int_equal(cfg->n_tags, 1);
    assert_int_equal(cfg->mqtt.qos, 1);
    assert_string_equal(cfg->mqtt.topic, "ironbridge/{gateway}/{device}/{group}");
    assert_string_equal(cfg->mqtt.server_uri, "tcp://127.0.0.1:1883");
    assert_int_equal(cfg->connections[0].pub.devices[0].groups[0].interval_ms, 1000);
    assert_true(cfg->connections[0].devices[0].groups[0].tags[0].scale == 1.0);
    assert_false(cfg->connections[0].devices[0].groups[0].tags[0].scaled);
    ib_config_free(cfg);
    ib_plugins_free(r);
    ib_diag_free(&d);
}

static void unknown_key_has_position(void **state)
{
    (void)state;
    expect_error(NORTH CONN_HEAD "              - { name: a, table: holding, adress: 0 }\n",
                 "gw.yaml:14:44: connections[0].devices[0].groups[0].tags[0].adress: unknown key");
}

static void unknown_top_level_key(void **state)
{
    (void)state;
    expect_error("gatway:\n  id: x\n", "gw.yaml:1:1: gatway: unknown key");
}

static void wrong_type(void **state)
{
    (void)state;
    expect_error(NORTH CONN_HEAD
                 "              - { name: a, table: holding, address: 0, length: ten }\n",
                 "tags[0].length: expected an integer, found 'ten'");
    expect_error(NORTH CONN_HEAD
                 "              - { name: a, table: holding, address: 0, length: [1] }\n",
                 "expected an integer, found a list");
}

static void out_of_range(void **state)
{
    (void)state;
    expect_error(NORTH CONN_HEAD
                 "              - { name: a, table: holding, address: 0, length: 700 }\n",
                 "700 is out of range [1, 125]");
    expect_error("north:\n  mqtt:\n    url: mqtt://h\n    allow_insecure: true\n    qos: 2\n",
                 "gw.yaml:5:10: north.mqtt.qos: 2 is out of range [0, 1]");
}

static void bad_enum(void **state)
{
    (void)state;
    expect_error(NORTH CONN_HEAD
                 "              - { name: a, table: holding, address: 1, type: flot32 }\n",
                 "unknown value 'flot32'; expected one of: bool, int16, uint16");
}

static void missing_required(void **state)
{
    (void)state;
    expect_error(NORTH CONN_HEAD "              - { name: a, table: holding }\n",
                 "tags[0]: missing required key 'address'");
}

static void duplicates(void **state)
{
    (void)state;
    expect_error(NORTH CONN_HEAD "              - { name: a, table: holding, address: 1 }\n"
                                 "              - { name: a, table: holding, address: 2 }\n",
                 "duplicate tag name 'a'");
    expect_error(NORTH CONN_HEAD
                 "              - { name: a, table: holding, address: 1, address: 2 }\n",
                 "address: duplicate key");
    expect_error(NORTH CONN_HEAD "              - { name: a, table: holding, address: 1 }\n"
                                 "  - name: plc\n    plugin: modbus\n    host: h\n"
                                 "    devices:\n      - name: m2\n        groups:\n"
                                 "          - name: g\n            tags:\n"
                                 "              - { name: a, table: holding, address: 1 }\n",
                 "duplicate connection name 'plc'");
}

static void every_error_reported(void **state)
{
    (void)state;
    struct ib_diag d = {0};
    load(NORTH CONN_HEAD "              - { name: a, table: holding, address: 0, length: -1 }\n"
                         "              - { name: b, table: hold, address: 1 }\n"
                         "              - { name: c, table: holding, address: 1, bogus: 1 }\n",
         &d);
    assert_true(d.n >= 3);
    ib_diag_free(&d);
}

static void unknown_plugin(void **state)
{
    (void)state;
    expect_error(NORTH "connections:\n  - name: x\n    plugin: profinet\n    devices: []\n",
                 "gw.yaml:7:13: connections[0].plugin: unknown plugin 'profinet'");
}

static void missing_file(void **state)
{
    (void)state;
    struct ib_diag d = {0};
    struct ib_plugin_registry *r = ib_plugins_new("/nonexistent", true);
    assert_null(ib_config_load("/nonexistent/gw.yaml", r, &d));
    assert_int_equal(d.n, 1);
    assert_non_null(strstr(d.msgs[0], "/nonexistent/gw.yaml: cannot open"));
    ib_plugins_free(r);
    ib_diag_free(&d);
}

static void yaml_syntax(void **state)
{
    (void)state;
    expect_error("north: [\n", "YAML syntax error");
}

static void plaintext_refused(void **state)
{
    (void)state;
    expect_error("north:\n  mqtt:\n    url: mqtt://broker:1883\n",
                 "north.mqtt.url: 'mqtt://broker:1883' is plaintext MQTT");
    expect_error("north:\n  mqtt:\n    url: http://broker\n", "is not a broker URL");
}

static void tls_needs_ca(void **state)
{
    (void)state;
    expect_error("north:\n  mqtt:\n    url: mqtts://broker\n", "TLS needs a CA");
    expect_error("north:\n  mqtt:\n    url: mqtts://broker\n    tls: { ca: nope.crt }\n",
                 "north.mqtt.tls.ca: cannot use");
}

static void private_key_permissions(void **state)
{
    (void)state;
    char ca[320], crt[320], key[320], yaml[2048];
    snprintf(ca, sizeof ca, "%s/ca.crt", dir);
    snprintf(crt, sizeof crt, "%s/c.crt", dir);
    snprintf(key, sizeof key, "%s/c.key", dir);
    write_file(ca, "x", 0644);
    write_file(crt, "x", 0644);
    write_file(key, "x", 0644);
    snprintf(yaml, sizeof yaml,
             "north:\n  mqtt:\n    url: mqtts://broker\n    tls:\n      ca: ca.crt\n"
             "      cert: c.crt\n      key: %s\n",
             key);
    expect_error(yaml, "readable or writable by group or others (mode 0644)");
    chmod(key, 0600);
    struct ib_diag d = {0};
    load(yaml, &d);
    assert_int_equal(d.n, 0);
    ib_diag_free(&d);
}

static void topic_template(void **state)
{
    (void)state;
    expect_error("north:\n  mqtt:\n    url: mqtt://h\n    allow_insecure: true\n"
                 "    topic: a/{devise}\n",
                 "north.mqtt.topic: 'a/{devise}': unknown placeholder");
    expect_error("north:\n  mqtt:\n    url: mqtt://h\n    allow_insecure: true\n    topic: a/#\n",
                 "wildcards");
}

static void names_checked(void **state)
{
    (void)state;
    expect_error(NORTH
                 "connections:\n  - name: 'a/b'\n    plugin: modbus\n    host: h\n"
                 "    devices:\n      - name: m\n        groups:\n          - name: g\n"
                 "            tags:\n              - { name: a, table: holding, address: 1 }\n",
                 "'a/b' is not a valid name");
}

static void plugin_semantic_errors(void **state)
{
    (void)state;
    /* The plugin's own checks (a float on a coil) come with the tag's position. */
    expect_error(NORTH CONN_HEAD
                 "              - { name: a, table: coil, address: 1, type: float32 }\n",
                 "gw.yaml:14:53: connections[0].devices[0].groups[0].tags[0].type:");
    /* An unmarked Modicon-style address is refused with a hint, at the tag. */
    expect_error(NORTH CONN_HEAD "              - { name: a, table: holding, address: 400001 }\n",
                 "tags[0].address: address 400001 is past 65535; if it is a Modicon reference, "
                 "mark it: modicon:400001");
}

static void no_north_with_connections(void **state)
{
    (void)state;
    expect_error(CONN_HEAD "              - { name: a, table: holding, address: 1 }\n",
                 "there is no north.mqtt section");
}

static void empty_config_is_idle(void **state)
{
    (void)state;
    struct ib_diag d = {0};
    write_file(file, "gateway:\n  id: idle\n", 0600);
    struct ib_plugin_registry *r = ib_plugins_new("/nonexistent", true);
    struct ib_config *cfg = ib_config_load(file, r, &d);
    assert_non_null(cfg);
    assert_int_equal(cfg->n_connections, 0);
    assert_false(cfg->has_north);
    ib_config_free(cfg);
    ib_plugins_free(r);
    expect_error("", "the configuration is empty");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(valid_minimal),
        cmocka_unit_test(unknown_key_has_position),
        cmocka_unit_test(unknown_top_level_key),
        cmocka_unit_test(wrong_type),
        cmocka_unit_test(out_of_range),
        cmocka_unit_test(bad_enum),
        cmocka_unit_test(missing_required),
        cmocka_unit_test(duplicates),
        cmocka_unit_test(every_error_reported),
        cmocka_unit_test(unknown_plugin),
        cmocka_unit_test(missing_file),
        cmocka_unit_test(yaml_syntax),
        cmocka_unit_test(plaintext_refused),
        cmocka_unit_test(tls_needs_ca),
        cmocka_unit_test(private_key_permissions),
        cmocka_unit_test(topic_template),
        cmocka_unit_test(names_checked),
        cmocka_unit_test(plugin_semantic_errors),
        cmocka_unit_test(no_north_with_connections),
        cmocka_unit_test(empty_config_is_idle),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
