/* The configuration digests (config_hash.c): the SHA-256 of a configuration stays what it was
 * (pinned values, computed by the code before the core sections were hashed through their
 * schemas), and every key of every core schema changes it, so that no key can be left out. */
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
#include "config_core.h"
#include "config_hash.h"
#include "plugin_loader.h"

static char dir[256];

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/ib-test-hash-XXXXXX");
    assert_non_null(mkdtemp(dir));
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd);
}

static void write_in(const char *name, const char *text, mode_t mode)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    chmod(path, mode);
}

/* The whole digest of `yaml` (which must be valid). */
static void hash_of(const char *yaml, char hex[65])
{
    write_in("gw.yaml", yaml, 0600);
    char path[512];
    snprintf(path, sizeof path, "%s/gw.yaml", dir);
    struct ib_diag d = {0};
    struct ib_plugin_registry *r = ib_plugins_new("/nonexistent", true);
    struct ib_config *cfg = ib_config_load(path, r, &d);
    for (size_t i = 0; i < d.n; i++)
        fprintf(stderr, "%s\n", d.msgs[i]);
    assert_non_null(cfg);
    ib_config_hash_hex(cfg, hex);
    ib_config_free(cfg);
    ib_plugins_free(r);
    ib_diag_free(&d);
}

/* ---- Pinned digests -------------------------------------------------------------------------- */

static const char all_keys[] = "gateway:\n  id: pin-gw\n  plugin_dir: /nonexistent/plugins\n"
                               "log:\n  level: debug\n"
                               "config:\n  watch: true\n  watch_delay: 250ms\n"
                               "remote_config:\n  enabled: true\n  public_key: /etc/passwd\n"
                               "  topic: ops/{gateway}/set\n  file: 60-ops.yaml\n"
                               "north:\n  mqtt:\n    url: mqtts://broker.example:18883\n"
                               "    client_id: pin-client\n    qos: 0\n    layout: tag\n"
                               "    topic: plant/{gateway}/{device}/{tag}\n"
                               "    status_topic: plant/{gateway}/up\n"
                               "    config_status_topic: plant/{gateway}/cfg\n"
                               "    keepalive_s: 45\n    connect_timeout_ms: 7000\n"
                               "    reconnect_min_ms: 500\n    reconnect_max_ms: 9000\n"
                               "    max_inflight: 100\n    max_inflight_bytes: 2MiB\n"
                               "    flush_timeout_ms: 1234\n    username: operator\n"
                               "    tls:\n      ca: /etc/passwd\n      ca_path: /etc\n"
                               "store:\n  path: /var/tmp/pin-queue\n  max_bytes: 3GiB\n"
                               "  max_age: 36h\n  fsync: always\n  fsync_interval_ms: 250\n"
                               "  fsync_bytes: 64KiB\n  replay_rate: 77\n"
                               "  memory_max_bytes: 1MiB\n";

/* The digests printed by `ironbridge --check` before the split of config.c (d153bda): a
 * running gateway compares them across an upgrade, so they must never change. */
static void pinned(void **state)
{
    (void)state;
    char hex[65];
    hash_of("gateway:\n  id: pin-defaults\n", hex);
    assert_string_equal(hex, "ddf8dad43b873fba352fbe972cea57f5935d4b1de51e3ff2d4dd18058d3d3a8b");
    hash_of("gateway:\n  id: pin-north\nnorth:\n  mqtt:\n    url: mqtt://127.0.0.1\n"
            "    allow_insecure: true\n",
            hex);
    /* reconnect_max_ms's default became 8000 (issue 13 point 7): this is the digest the code
     * before the split gives with reconnect_max_ms: 8000 written out. */
    assert_string_equal(hex, "15b8c6c963eaf56e29643c7f55f644210cf74f1107f6abe625afd9c41ac7e718");
    hash_of(all_keys, hex);
    assert_string_equal(hex, "fc8cb5fea2e40db60bc9d5e44263fa34e832a74f07dd18f930876fbd9458404b");
}

/* Units and layout do not matter, values do: 1GiB and 1073741824 are the same setting. */
static void same_value_same_digest(void **state)
{
    (void)state;
    char a[65], b[65];
    hash_of("gateway: { id: g }\nstore: { max_bytes: 1GiB, max_age: 1d }\n", a);
    hash_of("# a comment\ngateway:\n  id: g\nstore:\n  max_age: 24h\n  max_bytes: 1073741824\n", b);
    assert_string_equal(a, b);
}

/* ---- Every core key changes the digest ------------------------------------------------------- */

/* Two values of one key in one section; `also` is a line both configurations carry (a key the
 * varied one needs beside it). "@" in a value stands for the test directory. */
struct variant {
    const char *section; /* gateway, log, config, remote_config, mqtt, tls, store, commands */
    const char *key;
    const char *a, *b;
    const char *also;
};

static const struct variant variants[] = {
    {"gateway", "id", "one", "two", NULL},
    {"gateway", "plugin_dir", "/p1", "/p2", NULL},
    {"log", "level", "info", "debug", NULL},
    {"config", "watch", "false", "true", NULL},
    {"config", "watch_delay", "1s", "2s", NULL},
    {"remote_config", "enabled", "false", "true", "public_key: @/pub.pem"},
    {"remote_config", "public_key", "@/pub.pem", "@/pub2.pem", NULL},
    {"remote_config", "topic", "a/{gateway}", "b/{gateway}", NULL},
    {"remote_config", "file", "60-a.yaml", "60-b.yaml", NULL},
    {"mqtt", "url", "mqtts://h1", "mqtts://h2", NULL},
    {"mqtt", "client_id", "c1", "c2", NULL},
    {"mqtt", "allow_insecure", "false", "true", NULL},
    {"mqtt", "qos", "0", "1", NULL},
    {"mqtt", "layout", "batch", "tag", NULL},
    {"mqtt", "version", "3.1.1", "5", NULL},
    {"commands", "enabled", "true", "false", NULL},
    {"commands", "topic", "a/{gateway}", "b/{gateway}", NULL},
    {"commands", "response_topic", "a/{gateway}", "b/{gateway}", NULL},
    {"commands", "max_age", "10s", "11s", NULL},
    {"commands", "duplicate_window", "5min", "6min", NULL},
    {"commands", "queue", "64", "65", NULL},
    {"commands", "require_signature", "false", "true", "public_key: @/pub.pem"},
    {"commands", "public_key", "@/pub.pem", "@/pub2.pem", NULL},
    {"mqtt", "topic", "x/{gateway}/{device}/{group}", "y/{gateway}/{device}/{group}", NULL},
    {"mqtt", "status_topic", "s1/{gateway}", "s2/{gateway}", NULL},
    {"mqtt", "config_status_topic", "c1/{gateway}", "c2/{gateway}", NULL},
    {"mqtt", "keepalive_s", "30", "31", NULL},
    {"mqtt", "connect_timeout_ms", "1000", "1001", NULL},
    {"mqtt", "reconnect_min_ms", "1000", "1001", NULL},
    {"mqtt", "reconnect_max_ms", "60000", "60001", NULL},
    {"mqtt", "max_inflight", "10", "11", NULL},
    {"mqtt", "max_inflight_bytes", "1MiB", "2MiB", NULL},
    {"mqtt", "linger_ms", "10", "0", NULL},
    {"mqtt", "flush_timeout_ms", "100", "101", NULL},
    {"mqtt", "username", "u1", "u2", NULL},
    {"mqtt", "password_file", "@/pw1", "@/pw2", NULL},
    {"tls", "ca", "@/ca.pem", "@/ca2.pem", NULL},
    {"tls", "ca_path", "@", "/etc", NULL},
    {"tls", "cert", "@/c.pem", "@/c2.pem", "key: @/k.pem"},
    {"tls", "key", "@/k.pem", "@/k2.pem", "cert: @/c.pem"},
    {"store", "path", "/var/tmp/q1", "/var/tmp/q2", NULL},
    {"store", "max_bytes", "1GiB", "2GiB", NULL},
    {"store", "max_age", "1d", "2d", NULL},
    {"store", "fsync", "batch", "always", NULL},
    {"store", "fsync_interval_ms", "100", "101", NULL},
    {"store", "fsync_bytes", "1MiB", "2MiB", NULL},
    {"store", "replay_rate", "10", "11", NULL},
    {"store", "memory_max_bytes", "1MiB", "2MiB", NULL},
};

/* "@" replaced by the test directory. */
static void put_value(struct ib_buf *b, const char *v)
{
    for (; *v; v++)
        if (*v == '@')
            ib_buf_puts(b, dir);
        else
            ib_buf_append(b, v, 1);
}

static void put_line(struct ib_buf *b, const char *indent, const char *key, const char *value)
{
    ib_buf_printf(b, "%s%s: ", indent, key);
    put_value(b, value);
    ib_buf_puts(b, "\n");
}

/* A valid configuration with the core sections, `v`'s key set to `value` in its section. */
static void build(struct ib_buf *b, const struct variant *v, const char *value)
{
    static const struct {
        const char *section, *key, *line;
    } base[] = {{"gateway", "id", "id: base"}, {"store", "path", "path: /var/tmp/q"}};
    static const char *const sections[] = {"gateway",       "log",   "config",
                                           "remote_config", "store", "commands"};
    ib_buf_reset(b);
    for (size_t s = 0; s < sizeof sections / sizeof sections[0]; s++) {
        bool mine = !strcmp(v->section, sections[s]), header = false;
        for (size_t i = 0; i < sizeof base / sizeof base[0]; i++)
            if (!strcmp(base[i].section, sections[s]) && !(mine && !strcmp(base[i].key, v->key))) {
                ib_buf_printf(b, "%s%s:\n  %s\n", header ? "" : "", sections[s], base[i].line);
                header = true;
            }
        if (!mine)
            continue;
        if (!header)
            ib_buf_printf(b, "%s:\n", sections[s]);
        put_line(b, "  ", v->key, value);
        if (v->also) {
            ib_buf_puts(b, "  ");
            put_value(b, v->also);
            ib_buf_puts(b, "\n");
        }
    }
    ib_buf_puts(b, "north:\n  mqtt:\n");
    if (strcmp(v->key, "url") || strcmp(v->section, "mqtt"))
        ib_buf_puts(b, "    url: mqtts://broker\n");
    if (!strcmp(v->section, "mqtt"))
        put_line(b, "    ", v->key, value);
    ib_buf_puts(b, "    tls:\n");
    if (strcmp(v->key, "ca") || strcmp(v->section, "tls"))
        put_line(b, "      ", "ca", "@/ca.pem");
    if (!strcmp(v->section, "tls")) {
        put_line(b, "      ", v->key, value);
        if (v->also) {
            ib_buf_puts(b, "      ");
            put_value(b, v->also);
            ib_buf_puts(b, "\n");
        }
    }
}

static void every_key_counts(void **state)
{
    (void)state;
    static const char *const files[] = {"pub.pem", "pub2.pem", "ca.pem", "ca2.pem", "c.pem",
                                        "c2.pem",  "k.pem",    "k2.pem", "pw1",     "pw2"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++)
        write_in(files[i], "x\n", 0600);
    struct ib_buf b = {0};
    for (size_t i = 0; i < sizeof variants / sizeof variants[0]; i++) {
        char ha[65], hb[65];
        build(&b, &variants[i], variants[i].a);
        hash_of(b.p, ha);
        build(&b, &variants[i], variants[i].b);
        hash_of(b.p, hb);
        if (!strcmp(ha, hb))
            fail_msg("%s.%s: '%s' and '%s' give the same digest", variants[i].section,
                     variants[i].key, variants[i].a, variants[i].b);
    }
    ib_buf_free(&b);
}

/* Every entry of every core schema has a variant above: a key added to a schema fails here
 * until it is added there (and so proved to count in the digest). */
static void every_key_listed(void **state)
{
    (void)state;
    static const struct {
        const char *section;
        const struct ib_schema *sc;
    } schemas[] = {
        {"gateway", &ib_config_gateway_schema}, {"log", &ib_config_log_schema},
        {"config", &ib_config_watch_schema},    {"remote_config", &ib_config_remote_schema},
        {"mqtt", &ib_config_mqtt_schema},       {"tls", &ib_config_tls_schema},
        {"store", &ib_config_store_schema},     {"commands", &ib_config_commands_schema},
    };
    for (size_t s = 0; s < sizeof schemas / sizeof schemas[0]; s++)
        for (size_t e = 0; e < schemas[s].sc->n_entries; e++) {
            bool found = false;
            for (size_t i = 0; i < sizeof variants / sizeof variants[0]; i++)
                found |= !strcmp(variants[i].section, schemas[s].section) &&
                         !strcmp(variants[i].key, schemas[s].sc->entries[e].key);
            if (!found)
                fail_msg("%s.%s has no variant in test_config_hash.c", schemas[s].section,
                         schemas[s].sc->entries[e].key);
        }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(pinned),
        cmocka_unit_test(same_value_same_digest),
        cmocka_unit_test(every_key_counts),
        cmocka_unit_test(every_key_listed),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
