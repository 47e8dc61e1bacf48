/* Configuration loading: every kind of bad input gives an error with file:line:column and the
 * key path, all errors are reported at once, and a valid file loads with defaults filled. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
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
    assert_int_equal(cfg->mqtt.max_inflight_bytes, 8 << 20);
    assert_int_equal(cfg->mqtt.linger_ms, 10);
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
    expect_error("north:\n  mqtt:\n    url: mqtt://h\n    allow_insecure: true\n"
                 "    max_inflight_bytes: lots\n",
                 "gw.yaml:5:25: north.mqtt.max_inflight_bytes: expected a size such as 1GiB");
    expect_error("north:\n  mqtt:\n    url: mqtt://h\n    allow_insecure: true\n"
                 "    max_inflight_bytes: 1KiB\n",
                 "north.mqtt.max_inflight_bytes: '1KiB' is out of range [64.0 KiB, 1.0 GiB]");
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
                 "connections[1].name: connection 'plc' is already defined at ");
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

/* Anchors, aliases and documents behave as libyaml's own loader made them: an alias is the
 * anchored node itself (its errors point at the anchor's node, once per use), an undefined
 * alias and a reused anchor are syntax errors with their position, a second document is
 * refused. */
static void yaml_anchors_and_documents(void **state)
{
    (void)state;
    struct ib_diag d = {0};
    load(NORTH CONN_HEAD "              - {name: a, table: &t holding, address: 0}\n"
                         "              - {name: b, table: *t, address: 1}\n",
         &d);
    assert_int_equal(d.n, 0);
    ib_diag_free(&d);
    load(NORTH CONN_HEAD "              - &tag {name: a, table: holing, address: 0}\n"
                         "              - *tag\n",
         &d);
    assert_int_equal(d.n, 3);
    assert_non_null(strstr(d.msgs[0], "gw.yaml:14:39: connections[0].devices[0].groups[0]."
                                      "tags[0].table: unknown value 'holing'"));
    assert_non_null(strstr(d.msgs[1], "gw.yaml:14:39: connections[0].devices[0].groups[0]."
                                      "tags[1].table: unknown value 'holing'"));
    assert_non_null(strstr(d.msgs[2], "gw.yaml:14:23: connections[0].devices[0].groups[0]."
                                      "tags[1].name: duplicate tag name 'a'"));
    ib_diag_free(&d);
    expect_error(NORTH CONN_HEAD "              - {name: a, table: *nope, address: 0}\n",
                 "gw.yaml:14:34: YAML syntax error: found undefined alias");
    expect_error(NORTH CONN_HEAD "              - {name: &x a, table: holding, address: 0}\n"
                                 "              - {name: &x b, table: holding, address: 1}\n",
                 "gw.yaml:15:24: YAML syntax error: second occurrence found duplicate anchor; "
                 "first occurrence");
    expect_error("log:\n  level: [\n", "gw.yaml:3:1: YAML syntax error: did not find expected "
                                       "node content while parsing a flow node");
    expect_error(NORTH "---\nlog: {level: info}\n",
                 "gw.yaml: holds more than one YAML document ('---'); keep one");
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

/* Load a valid file and return the first tag's resolved core settings via a callback. */
static void with_config(const char *yaml, void (*fn)(const struct ib_config *))
{
    struct ib_diag d = {0};
    write_file(file, yaml, 0600);
    struct ib_plugin_registry *r = ib_plugins_new(getenv("IB_TEST_PLUGIN_DIR"), true);
    struct ib_config *cfg = ib_config_load(file, r, &d);
    for (size_t i = 0; i < d.n; i++)
        fprintf(stderr, "%s\n", d.msgs[i]);
    assert_non_null(cfg);
    fn(cfg);
    ib_config_free(cfg);
    ib_plugins_free(r);
    ib_diag_free(&d);
}

#define GROUP_HEAD                                                                                 \
    NORTH "connections:\n  - name: plc\n    plugin: modbus\n    host: h\n    devices:\n"           \
          "      - name: m1\n        metadata: { site: Plant-1, line: 3 }\n        groups:\n"      \
          "          - name: g\n            interval_ms: 500\n"

static void check_report(const struct ib_config *cfg)
{
    const struct ib_cfg_group *g = &cfg->connections[0].devices[0].groups[0];
    assert_int_equal(g->stale_after_ms, 10000);
    assert_int_equal(g->tags[0].report.mode, IB_REPORT_DEADBAND); /* group's */
    assert_true(g->tags[0].report.deadband == 0.5);
    assert_int_equal(g->tags[0].report.heartbeat_ms, 60000);
    assert_int_equal(g->tags[1].report.mode, IB_REPORT_DEADBAND);
    assert_true(g->tags[1].report.deadband == 10.0);               /* 2% of [0, 500] */
    assert_int_equal(g->tags[2].report.mode, IB_REPORT_ON_CHANGE); /* tag override */
    assert_int_equal(g->tags[2].report.heartbeat_ms, 500);
    assert_string_equal(cfg->connections[0].devices[0].meta_json,
                        "{\"site\":\"Plant-1\",\"line\":\"3\"}");
}

static void check_defaults(const struct ib_config *cfg)
{
    const struct ib_cfg_group *g = &cfg->connections[0].devices[0].groups[0];
    assert_int_equal(g->tags[0].report.mode, IB_REPORT_ALWAYS);
    assert_int_equal(g->tags[0].report.heartbeat_ms, 0);
    assert_int_equal(g->stale_after_ms, 3000);
    assert_null(cfg->connections[0].devices[0].meta_json);
    assert_int_equal(cfg->mqtt.layout, IB_LAYOUT_BATCH);
}

static void report_settings(void **state)
{
    (void)state;
    with_config(
        GROUP_HEAD
        "            report: { mode: deadband, deadband: 0.5, heartbeat: 1min, "
        "stale_after: 10s }\n"
        "            tags:\n"
        "              - { name: a, table: holding, address: 0 }\n"
        "              - { name: b, table: holding, address: 1, deadband: 2%, range: [0, 500] }\n"
        "              - { name: c, table: holding, address: 2, report: { mode: on_change, "
        "heartbeat: 500ms } }\n",
        check_report);
    /* defaults: always, no heartbeat, stale after 3 intervals */
    with_config(NORTH CONN_HEAD "              - { name: a, table: holding, address: 0 }\n",
                check_defaults);
}

#define CONT_HEAD                                                                                  \
    NORTH "connections:\n  - name: plc\n    plugin: modbus\n    host: h\n    devices:\n"           \
          "      - name: m1\n        groups:\n          - name: g\n"

static void check_continuous(const struct ib_config *cfg)
{
    const struct ib_cfg_group *g = &cfg->connections[0].devices[0].groups[0];
    assert_int_equal(cfg->connections[0].pub.devices[0].groups[0].interval_ms, 0);
    assert_int_equal(g->stale_after_ms, 3000); /* a continuous group counts 1 s */
}

/* interval_ms: 0 polls continuously; 1-9 ms is refused with the way out. */
static void continuous_interval(void **state)
{
    (void)state;
    with_config(CONT_HEAD "            interval_ms: 0\n            tags:\n"
                          "              - { name: a, table: holding, address: 0 }\n",
                check_continuous);
    expect_error(CONT_HEAD "            interval_ms: 5\n            tags:\n"
                           "              - { name: a, table: holding, address: 0 }\n",
                 ":13:26: connections[0].devices[0].groups[0].interval_ms: 5 ms is too short a "
                 "period: use at least 10, or 0 to poll continuously");
    expect_error(CONT_HEAD "            interval_ms: -1\n            tags:\n"
                           "              - { name: a, table: holding, address: 0 }\n",
                 "interval_ms: -1 is out of range");
}

static void report_errors(void **state)
{
    (void)state;
    expect_error(GROUP_HEAD "            report: { mode: deadband }\n            tags:\n"
                            "              - { name: a, table: holding, address: 0 }\n",
                 "report mode deadband needs a deadband");
    expect_error(GROUP_HEAD
                 "            tags:\n"
                 "              - { name: a, table: holding, address: 0, deadband: 2% }\n",
                 "tags[0].deadband: deadband 2% is a percent of the tag's range: add range");
    expect_error(GROUP_HEAD
                 "            tags:\n"
                 "              - { name: a, table: holding, address: 0, deadband: lots }\n",
                 "'lots' is not a deadband");
    expect_error(GROUP_HEAD "            report: { heartbeat: 60 }\n            tags:\n"
                            "              - { name: a, table: holding, address: 0 }\n",
                 "report.heartbeat: expected a duration with a unit");
    expect_error(GROUP_HEAD "            tags:\n"
                            "              - { name: a, table: holding, address: 0, deadband: 1, "
                            "report: { mode: always } }\n",
                 "a deadband is given but the tag's report mode is always");
    expect_error(GROUP_HEAD "            report: { mode: sometimes }\n            tags:\n"
                            "              - { name: a, table: holding, address: 0 }\n",
                 "unknown value 'sometimes'; expected one of: always, on_change, deadband");
    expect_error(GROUP_HEAD "            tags:\n"
                            "              - { name: a, table: holding, address: 0, deadband: 1%, "
                            "range: [5, 1] }\n",
                 "min (5) must be below max (1)");
}

static void layout_tag_topics(void **state)
{
    (void)state;
    expect_error("north:\n  mqtt:\n    url: mqtt://h\n    allow_insecure: true\n"
                 "    topic: a/{device}/{tag}\n",
                 "({tag} needs layout: tag)");
    expect_error("north:\n  mqtt:\n    url: mqtt://h\n    allow_insecure: true\n"
                 "    layout: tag\n    topic: a/{device}\n",
                 "with layout: tag every tag needs its own topic: add {tag}");
}

static void write_in(const char *rel, const char *text)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, rel);
    write_file(path, text, 0600);
}

static void rm_in(const char *rel)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, rel);
    unlink(path);
}

static void check_merged(const struct ib_config *cfg)
{
    assert_int_equal(cfg->n_files, 3);
    assert_int_equal(cfg->n_connections, 2);
    assert_string_equal(cfg->connections[0].pub.name, "plc");
    assert_int_equal(cfg->connections[0].pub.n_devices, 2); /* extended by 20-more.yaml */
    assert_string_equal(cfg->connections[0].pub.devices[1].name, "m2");
    assert_string_equal(cfg->connections[1].pub.name, "plc2");
    assert_int_equal(cfg->log_level, IB_LOG_DEBUG); /* overridden by 10-log.yaml */
}

static void dropins_merge(void **state)
{
    (void)state;
    char d[400];
    snprintf(d, sizeof d, "%s/conf.d", dir);
    mkdir(d, 0700);
    write_in("conf.d/10-log.yaml", "log: { level: debug, override: true }\n");
    write_in("conf.d/20-more.yaml",
             "connections:\n"
             "  - { name: plc, extend: true, devices: [ { name: m2, groups: [ { name: g, tags: "
             "[ { name: a, table: holding, address: 0 } ] } ] } ] }\n"
             "  - name: plc2\n    plugin: modbus\n    host: h2\n    devices:\n"
             "      - { name: m3, groups: [ { name: g, tags: [ { name: a, table: coil, address: "
             "0 } ] } ] }\n");
    write_in("conf.d/README", "not yaml, ignored\n");
    with_config(NORTH "log: { level: info }\n" CONN_HEAD
                      "              - { name: a, table: holding, address: 0 }\n",
                check_merged);
    /* a second definition without override names both places */
    write_in("conf.d/10-log.yaml", "log: { level: debug }\n");
    expect_error(NORTH "log: { level: info }\n" CONN_HEAD
                       "              - { name: a, table: holding, address: 0 }\n",
                 "conf.d/10-log.yaml:1:6: log: 'log' is already defined at ");
    rm_in("conf.d/10-log.yaml");
    /* a connection defined twice */
    write_in("conf.d/20-more.yaml", "connections:\n  - { name: plc, plugin: modbus, host: x, "
                                    "devices: [] }\n");
    expect_error(NORTH CONN_HEAD "              - { name: a, table: holding, address: 0 }\n",
                 "20-more.yaml:2:13: connections[0].name: connection 'plc' is already defined "
                 "at ");
    write_in("conf.d/20-more.yaml",
             "connections:\n  - { name: nope, extend: true, devices: [] }\n");
    expect_error(NORTH CONN_HEAD "              - { name: a, table: holding, address: 0 }\n",
                 "extends connection 'nope', which no earlier file defines");
    rm_in("conf.d/20-more.yaml");
    rm_in("conf.d/README");
    rmdir(d);
}

static void check_csv(const struct ib_config *cfg)
{
    const struct ib_group_config *g = &cfg->connections[0].pub.devices[0].groups[0];
    const struct ib_cfg_group *cg = &cfg->connections[0].devices[0].groups[0];
    assert_int_equal(g->n_tags, 4); /* one from YAML, three rows of CSV */
    assert_string_equal(g->tags[1].name, "flow, total");
    assert_true(cg->tags[1].scale == 0.1);
    assert_string_equal(cg->tags[1].unit, "m3");
    assert_true(g->tags[2].writable);
    assert_int_equal(cg->tags[3].report.mode, IB_REPORT_DEADBAND);
    assert_true(cg->tags[3].report.deadband == 5.0); /* 5% of 0..100 */
}

static void csv_tags(void **state)
{
    (void)state;
    write_in("tags.csv",
             "\xef\xbb\xbfName,Table,Address,Type,Scale,Unit,Writable,Deadband,Range,"
             "Description\n"
             "# a comment row\n"
             "\"flow, total\",holding,10,uint32,0.1,m3,,,,\"the \"\"main\"\" meter\"\r\n"
             "\n"
             "setpoint, holding, 20, uint16, , , true\n"
             "level,input,5,,,,,5%,0..100,\n");
    with_config(NORTH CONN_HEAD "              - { name: a, table: holding, address: 0 }\n"
                                "            tags_csv: tags.csv\n",
                check_csv);
    write_in("tags.csv", "name,table,address,colour\nx,holding,1,red\ny,holding,zz\n");
    expect_error(NORTH CONN_HEAD "              - { name: a, table: holding, address: 0 }\n"
                                 "            tags_csv: tags.csv\n",
                 "tags.csv:2:13: connections[0].devices[0].groups[0].tags[1].colour: unknown key");
    write_in("tags.csv", "name,table,address\nx,holding,1\ny,holding,zz\n");
    expect_error(NORTH CONN_HEAD "              - { name: a, table: holding, address: 0 }\n"
                                 "            tags_csv: tags.csv\n",
                 "tags.csv:3:11: connections[0].devices[0].groups[0].tags[2].address: address 'zz' "
                 "is not a number");
    write_in("tags.csv", "name,table,address\nx,holding,1,extra\n");
    expect_error(NORTH CONN_HEAD "              - { name: a, table: holding, address: 0 }\n"
                                 "            tags_csv: tags.csv\n",
                 "tags.csv:2:13: this row has more cells than the header has columns");
    write_in("tags.csv", "name,table,address\n\"x,holding,1\n");
    expect_error(NORTH CONN_HEAD "              - { name: a, table: holding, address: 0 }\n"
                                 "            tags_csv: tags.csv\n",
                 "tags.csv:2:1: a quoted cell is never closed");
    expect_error(NORTH CONN_HEAD "              - { name: a, table: holding, address: 0 }\n"
                                 "            tags_csv: missing.csv\n",
                 "tags_csv: cannot read ");
    rm_in("tags.csv");
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

/* The store section: units, ranges, positions; relative paths from the file's directory; the
 * default path from $STATE_DIRECTORY as systemd sets it. */
static void store_section(void **state)
{
    (void)state;
    struct ib_diag d = {0};
    write_file(file,
               NORTH "store:\n  path: q\n  max_bytes: 2GiB\n  max_age: 12h\n  fsync: always\n"
                     "  fsync_bytes: 4096\n",
               0600);
    struct ib_plugin_registry *r = ib_plugins_new("/nonexistent", true);
    struct ib_config *cfg = ib_config_load(file, r, &d);
    assert_non_null(cfg);
    char want[400];
    snprintf(want, sizeof want, "%s/q", dir);
    assert_string_equal(cfg->store.path, want);
    assert_false(cfg->store.path_default);
    assert_int_equal(cfg->store.max_bytes, 2LL << 30);
    assert_int_equal(cfg->store.max_age_ms, 12LL * 3600000);
    assert_int_equal(cfg->store.fsync, IB_FSYNC_ALWAYS);
    assert_int_equal(cfg->store.fsync_bytes, 4096);
    assert_int_equal(cfg->store.memory_max_bytes, 16 << 20);
    ib_config_free(cfg);

    setenv("STATE_DIRECTORY", "/srv/state:/other", 1);
    write_file(file, NORTH, 0600);
    cfg = ib_config_load(file, r, &d);
    unsetenv("STATE_DIRECTORY");
    assert_non_null(cfg);
    assert_string_equal(cfg->store.path, "/srv/state/queue");
    assert_true(cfg->store.path_default);
    assert_int_equal(cfg->store.max_bytes, 1LL << 30);
    assert_int_equal(cfg->store.max_age_ms, 7LL * 86400000);
    assert_int_equal(cfg->store.fsync, IB_FSYNC_BATCH);
    ib_config_free(cfg);
    ib_plugins_free(r);
    ib_diag_free(&d);

    expect_error(NORTH "store:\n  max_bytes: 1 gigabyte\n",
                 "gw.yaml:6:14: store.max_bytes: expected a size such as 1GiB");
    expect_error(NORTH "store:\n  max_bytes: 1KiB\n", "gw.yaml:6:14: store.max_bytes: '1KiB' "
                                                      "is out of range [1.0 MiB, 1024.0 TiB]");
    expect_error(NORTH "store:\n  max_age: 7\n",
                 "gw.yaml:6:12: store.max_age: expected a duration with a unit");
    expect_error(NORTH "store:\n  fsync: sometimes\n",
                 "store.fsync: unknown value 'sometimes'; expected one of: batch, always");
    expect_error(NORTH "store:\n  max_byte: 1GiB\n", "gw.yaml:6:3: store.max_byte: unknown key");
}

/* Issue 13: every duration key accepts a unit; a bare number stays accepted where the key's
 * name says its unit (interval_ms, keepalive_s), and is refused where it does not. */
static void check_durations(const struct ib_config *cfg)
{
    assert_int_equal(cfg->connections[0].pub.devices[0].groups[0].interval_ms, 1000);
    assert_int_equal(cfg->connections[0].pub.devices[0].groups[1].interval_ms, 250);
    assert_int_equal(cfg->connections[0].pub.devices[0].groups[2].interval_ms, 120000);
    assert_int_equal(cfg->connections[0].pub.devices[0].groups[3].interval_ms, 0);
    assert_int_equal(cfg->mqtt.keepalive_s, 60);
    assert_int_equal(cfg->mqtt.reconnect_max_ms, 30000);
    assert_int_equal(cfg->mqtt.flush_timeout_ms, 1500);
    assert_int_equal(cfg->mqtt.linger_ms, 20);
    assert_int_equal(cfg->store.fsync_interval_ms, 200);
}

#define GROUP(name, interval)                                                                      \
    "          - name: " name "\n"                                                                 \
    "            interval_ms: " interval "\n"                                                      \
    "            tags: [ { name: t" name ", table: coil, address: 1 } ]\n"

static void durations_with_units(void **state)
{
    (void)state;
    with_config("north:\n  mqtt:\n    url: mqtt://h\n    allow_insecure: true\n"
                "    keepalive_s: 1min\n    reconnect_max_ms: 30s\n    flush_timeout_ms: 1.5s\n"
                "    linger_ms: 20ms\n"
                "store: { fsync_interval_ms: 200ms }\n"
                "connections:\n  - name: plc\n    plugin: modbus\n    host: 127.0.0.1\n"
                "    timeout_ms: 2s\n"
                "    devices:\n      - name: m1\n        groups:\n" GROUP("a", "1s")
                    GROUP("b", "250") GROUP("c", "2min") GROUP("d", "0s"),
                check_durations);
    expect_error(NORTH CONN_HEAD "              - { name: a, table: holding, address: 0 }\n"
                                 "            interval_ms: soon\n",
                 "groups[0].interval_ms: expected a number of milliseconds or a duration with a "
                 "unit (500ms, 1s, 5min), found 'soon'");
    expect_error(NORTH CONN_HEAD "              - { name: a, table: holding, address: 0 }\n"
                                 "            interval_ms: 2d\n",
                 "groups[0].interval_ms: 2d is out of range [0, 86400000] (milliseconds)");
    expect_error("north:\n  mqtt:\n    url: mqtt://h\n    allow_insecure: true\n"
                 "    linger_ms: 2s\n",
                 "gw.yaml:5:16: north.mqtt.linger_ms: 2s is out of range [0, 1000] (milliseconds)");
    expect_error("north:\n  mqtt:\n    url: mqtt://h\n    allow_insecure: true\n"
                 "    keepalive_s: 1500ms\n",
                 "north.mqtt.keepalive_s: expected a number of seconds or a duration with a unit");
    expect_error(NORTH CONN_HEAD "              - { name: a, table: holding, address: 0 }\n"
                                 "            interval_ms: 5ms\n",
                 "5 ms is too short a period");
    /* The name says no unit: a bare number is still refused. */
    expect_error(NORTH "store:\n  max_age: 3600\n",
                 "store.max_age: expected a duration with a unit");
}

/* Issue 15 #1: an empty size value is refused with a message, and nothing reads it after. */
static void empty_size_refused(void **state)
{
    (void)state;
    expect_error(NORTH "store: { max_bytes: }\n",
                 "gw.yaml:5:21: store.max_bytes: must not be empty");
    expect_error(NORTH "store: { max_bytes: '' }\n", "store.max_bytes: must not be empty");
    expect_error(NORTH "store:\n  fsync_bytes:\n", "store.fsync_bytes: must not be empty");
    expect_error(NORTH "store:\n  memory_max_bytes:\n",
                 "store.memory_max_bytes: must not be empty");
    expect_error(NORTH "store:\n  max_bytes: [1]\n", "store.max_bytes: expected a size");
    expect_error(NORTH "    max_inflight_bytes:\n",
                 "north.mqtt.max_inflight_bytes: must not be empty");
    expect_error(NORTH "    max_inflight_bytes: { a: 1 }\n",
                 "north.mqtt.max_inflight_bytes: expected a size");
}

/* How many messages of `d` contain `needle`. */
static size_t count_msgs(const struct ib_diag *d, const char *needle)
{
    size_t n = 0;
    for (size_t i = 0; i < d->n; i++)
        n += strstr(d->msgs[i], needle) != NULL;
    return n;
}

/* Issue 15 #4: N copies of a name give N - 1 errors, not N * (N - 1) / 2; the errors kept are
 * capped, the rest counted ("and N more"). */
static void duplicates_reported_once(void **state)
{
    (void)state;
    struct ib_buf b = {0};
    ib_buf_puts(&b, NORTH "connections:\n  - name: plc\n    plugin: modbus\n    host: h\n"
                          "    devices:\n      - name: m1\n        metadata:\n");
    for (int i = 0; i < 30; i++)
        ib_buf_printf(&b, "          site: s%d\n", i);
    ib_buf_puts(&b, "        groups:\n");
    for (int i = 0; i < 40; i++)
        ib_buf_printf(
            &b, "          - { name: g, tags: [ { name: t%d, table: coil, address: %d } ] }\n", i,
            i);
    struct ib_diag d = {0};
    load(b.p, &d);
    assert_int_equal(count_msgs(&d, "duplicate group name 'g'"), 39);
    assert_int_equal(count_msgs(&d, "metadata.site: duplicate key"), 29);
    assert_int_equal(d.more, 0);
    ib_diag_free(&d);

    ib_buf_reset(&b);
    ib_buf_puts(&b, NORTH CONN_HEAD
                "              - { name: a, table: holding, address: 0 }\n"
                "          - &g { name: g2, tags: [ { name: b, table: coil, address: 1 } ] }\n");
    for (int i = 0; i < 2000; i++)
        ib_buf_puts(&b, "          - *g\n");
    load(b.p, &d);
    assert_int_equal(d.n, IB_DIAG_KEEP + 1);
    assert_int_equal(ib_diag_total(&d), 2000 + 2000); /* the group, and its tag, each time */
    assert_non_null(strstr(d.msgs[d.n - 1], "... and 3900 more errors (only the first 100"));
    ib_diag_free(&d);
    ib_buf_free(&b);
}

/* Issue 15 #9: a unit too long for the payload's encoder is refused with a message. */
static void long_unit_refused(void **state)
{
    (void)state;
    struct ib_buf b = {0};
    ib_buf_puts(&b,
                NORTH CONN_HEAD "              - { name: a, table: holding, address: 0, unit: ");
    for (int i = 0; i < 70000; i++)
        ib_buf_puts(&b, "u");
    ib_buf_puts(&b, " }\n");
    expect_error(b.p, "tags[0].unit: is 70000 bytes long: a unit may be at most 256");
    ib_buf_free(&b);
}

#define CSV_CONFIG                                                                                 \
    NORTH CONN_HEAD "              - { name: a, table: holding, address: 0 }\n"                    \
                    "            tags_csv: tags.csv\n"

/* Issue 15 #3 and #6: what a CSV tag list cannot carry faithfully is refused with its position:
 * invalid UTF-8 (a Latin-1 export), a NUL byte, cells past column 64. */
static void csv_refusals(void **state)
{
    (void)state;
    write_in("tags.csv", "name,table,address,unit\nt,holding,1,\xb0"
                         "C\n");
    expect_error(CSV_CONFIG, "tags.csv:2:13: this cell is not valid UTF-8: the file is in another "
                             "encoding (a spreadsheet's Latin-1 or Windows-1252 export writes");
    expect_error(CSV_CONFIG, "save the tag list as CSV in UTF-8 (byte 0xB0)");
    write_in("tags.csv", "name,table,address,unit\nt,holding,1,\xc2\xb0"
                         "C\n");
    struct ib_diag d = {0};
    load(CSV_CONFIG, &d);
    assert_int_equal(d.n, 0);
    ib_diag_free(&d);

    char path[512];
    snprintf(path, sizeof path, "%s/tags.csv", dir);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    fwrite("name,table,address\nx,holding,1\ny,hol\0ding,2\nz,bad\n", 1, 49, f);
    fclose(f);
    expect_error(CSV_CONFIG, "tags.csv:3:6: a NUL byte: this is not a text file, or not UTF-8");

    struct ib_buf b = {0};
    ib_buf_puts(&b, "name,table,address\nx,holding,1");
    for (int i = 3; i < 70; i++)
        ib_buf_puts(&b, ",");
    ib_buf_puts(&b, "\n");
    write_in("tags.csv", b.p);
    expect_error(CSV_CONFIG, "tags.csv:2:74: more than 64 cells in this row");
    ib_buf_free(&b);
    rm_in("tags.csv");
}

/* Issue 15 #8: tags_csv must name a regular file (not /dev/zero, not a FIFO that would block the
 * check forever), of at most 64 MiB. */
static void csv_must_be_regular_file(void **state)
{
    (void)state;
    expect_error(NORTH CONN_HEAD "              - { name: a, table: holding, address: 0 }\n"
                                 "            tags_csv: /dev/zero\n",
                 "tags_csv: /dev/zero is not a regular file: name a CSV file");
    char path[512];
    snprintf(path, sizeof path, "%s/fifo.csv", dir);
    assert_int_equal(mkfifo(path, 0600), 0);
    expect_error(NORTH CONN_HEAD "              - { name: a, table: holding, address: 0 }\n"
                                 "            tags_csv: fifo.csv\n",
                 "fifo.csv is not a regular file");
    rm_in("fifo.csv");
    snprintf(path, sizeof path, "%s/big.csv", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(ftruncate(fileno(f), (64 << 20) + 1), 0);
    fclose(f);
    expect_error(NORTH CONN_HEAD "              - { name: a, table: holding, address: 0 }\n"
                                 "            tags_csv: big.csv\n",
                 "big.csv is larger than 64 MiB");
    rm_in("big.csv");
}

/* Issue 15 #7: anchors are found by name in a table; thousands of them load (and resolve). */
static void check_many_anchors(const struct ib_config *cfg)
{
    const struct ib_group_config *g = &cfg->connections[0].pub.devices[0].groups[0];
    assert_int_equal(g->n_tags, 5000);
    assert_string_equal(g->tags[4999].name, "t4999");
    assert_string_equal(cfg->mqtt.topic, "ironbridge/{gateway}/{device}/{group}");
}

static void many_anchors(void **state)
{
    (void)state;
    struct ib_buf b = {0};
    ib_buf_puts(&b, NORTH CONN_HEAD);
    for (int i = 0; i < 5000; i++)
        ib_buf_printf(&b, "              - &a%d { name: t%d, table: coil, address: %d }\n", i, i,
                      i);
    ib_buf_puts(&b, "      - { name: m2, groups: [ { name: h, tags: [ *a0, *a4999 ] } ] }\n");
    with_config(b.p, check_many_anchors);
    ib_buf_free(&b);
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
        cmocka_unit_test(yaml_anchors_and_documents),
        cmocka_unit_test(plaintext_refused),
        cmocka_unit_test(tls_needs_ca),
        cmocka_unit_test(private_key_permissions),
        cmocka_unit_test(topic_template),
        cmocka_unit_test(names_checked),
        cmocka_unit_test(plugin_semantic_errors),
        cmocka_unit_test(no_north_with_connections),
        cmocka_unit_test(report_settings),
        cmocka_unit_test(continuous_interval),
        cmocka_unit_test(report_errors),
        cmocka_unit_test(layout_tag_topics),
        cmocka_unit_test(dropins_merge),
        cmocka_unit_test(csv_tags),
        cmocka_unit_test(empty_config_is_idle),
        cmocka_unit_test(store_section),
        cmocka_unit_test(durations_with_units),
        cmocka_unit_test(empty_size_refused),
        cmocka_unit_test(duplicates_reported_once),
        cmocka_unit_test(long_unit_refused),
        cmocka_unit_test(csv_refusals),
        cmocka_unit_test(csv_must_be_regular_file),
        cmocka_unit_test(many_anchors),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
