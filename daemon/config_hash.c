/* Canonical digests of a configuration. Each value, read through its schema (the core's sections
 * and the plugins' blocks alike), is written as "path=value\n" in a fixed
 * order and format (integers in decimal, numbers with 17 significant digits, strings escaped),
 * then hashed with SHA-256 through OpenSSL's SHA256_* functions. Not EVP: its first use loads
 * OpenSSL's providers, which keeps 1.5 MB of libcrypto resident in a daemon that may never use
 * TLS; the 1.1.1 API, deprecated since 3.0 but kept, computes the same digest without that. */
#include "config_hash.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define OPENSSL_API_COMPAT 10101 /* SHA256_Init and co., see above */
#include <openssl/sha.h>

#include "config_core.h"
#include "json.h"
#include "schema.h"
#include "plugin_loader.h"

struct hasher {
    SHA256_CTX ctx;
    struct ib_buf b;
};

static void h_begin(struct hasher *h)
{
    SHA256_Init(&h->ctx);
    h->b = (struct ib_buf){0};
}

static void h_end(struct hasher *h, unsigned char out[32])
{
    SHA256_Final(out, &h->ctx);
    ib_buf_free(&h->b);
}

__attribute__((format(printf, 2, 3))) static void h_kv(struct hasher *h, const char *fmt, ...)
{
    ib_buf_reset(&h->b);
    va_list ap;
    char line[1024];
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    SHA256_Update(&h->ctx, line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
    SHA256_Update(&h->ctx, "\n", 1);
}

static void h_str(struct hasher *h, const char *key, const char *v)
{
    ib_buf_reset(&h->b);
    ib_buf_puts(&h->b, key);
    ib_buf_puts(&h->b, "=");
    if (v)
        ib_json_cstr(&h->b, v);
    else
        ib_buf_puts(&h->b, "null");
    ib_buf_puts(&h->b, "\n");
    SHA256_Update(&h->ctx, h->b.p, h->b.len);
}

/* One schema entry's value in `base`, as "key=value". */
static void h_entry(struct hasher *h, const char *key, const struct ib_schema_entry *e,
                    const void *base)
{
    const char *f = (const char *)base + e->offset;
    switch (e->type) {
    case IB_S_BOOL: {
        bool v;
        memcpy(&v, f, sizeof v);
        h_kv(h, "%s=%s", key, v ? "true" : "false");
        break;
    }
    case IB_S_INT:
    case IB_S_DURATION:
    case IB_S_SIZE: {
        int64_t v;
        memcpy(&v, f, sizeof v);
        h_kv(h, "%s=%lld", key, (long long)v);
        break;
    }
    case IB_S_DOUBLE: {
        double v;
        memcpy(&v, f, sizeof v);
        h_kv(h, "%s=%.17g", key, v);
        break;
    }
    case IB_S_STRING: {
        const char *v;
        memcpy(&v, f, sizeof v);
        h_str(h, key, v);
        break;
    }
    case IB_S_ENUM: {
        int32_t v;
        memcpy(&v, f, sizeof v);
        h_kv(h, "%s=%s", key, v >= 0 && e->choices ? e->choices[v] : "null");
        break;
    }
    }
}

/* A plugin's params struct, key by key, through its schema. */
static void h_params(struct hasher *h, const char *prefix, const struct ib_schema *sc,
                     const void *params)
{
    char key[256];
    for (size_t i = 0; sc && params && i < sc->n_entries; i++) {
        snprintf(key, sizeof key, "%s.%s", prefix, sc->entries[i].key);
        h_entry(h, key, &sc->entries[i], params);
    }
}

static void h_conn(struct hasher *h, const struct ib_cfg_connection *c, size_t ci)
{
    char p[128];
    snprintf(p, sizeof p, "connections[%zu]", ci);
    h_str(h, "connection", c->pub.name);
    h_str(h, "plugin", c->plugin_name);
    if (c->plugin)
        h_kv(h, "plugin.version=%s abi=%u.%u", c->plugin->version, c->plugin->abi_major,
             c->plugin->abi_minor);
    h_params(h, p, c->plugin ? c->plugin->connection_schema : NULL, c->pub.params);
    h_kv(h, "call_timeout=%lld", (long long)c->call_timeout_ms);
    for (uint32_t d = 0; d < c->pub.n_devices; d++) {
        const struct ib_device_config *dc = &c->pub.devices[d];
        char dp[160];
        snprintf(dp, sizeof dp, "%s.devices[%u]", p, d);
        h_str(h, "device", dc->name);
        h_str(h, "meta", c->devices[d].meta_json);
        h_params(h, dp, c->plugin ? c->plugin->device_schema : NULL, dc->params);
        for (uint32_t g = 0; g < dc->n_groups; g++) {
            const struct ib_group_config *gc = &dc->groups[g];
            const struct ib_cfg_group *cg = &c->devices[d].groups[g];
            h_str(h, "group", gc->name);
            h_kv(h, "interval_ms=%u stale_after_ms=%lld", gc->interval_ms,
                 (long long)cg->stale_after_ms);
            if (gc->params) {
                char gp[200];
                snprintf(gp, sizeof gp, "%s.groups[%u]", dp, g);
                h_params(h, gp, ib_plugin_group_schema(c->plugin), gc->params);
            }
            for (uint32_t t = 0; t < gc->n_tags; t++) {
                const struct ib_tag_core *tc = &cg->tags[t];
                char tp[200];
                snprintf(tp, sizeof tp, "%s.groups[%u].tags[%u]", dp, g, t);
                h_str(h, "tag", gc->tags[t].name);
                h_kv(h, "scale=%.17g offset=%.17g writable=%d mode=%u deadband=%.17g hb=%lld",
                     tc->scale, tc->offset, gc->tags[t].writable, tc->report.mode,
                     tc->report.deadband, (long long)tc->report.heartbeat_ms);
                h_str(h, "unit", tc->unit);
                h_str(h, "description", tc->description);
                const struct ib_tag_write *tw = &cg->writes[t];
                if (tw->has_min || tw->has_max || tw->min_interval_ms) /* digests before 17 */
                    h_kv(h, "write_min=%d:%.17g write_max=%d:%.17g write_interval=%lld",
                         tw->has_min, tw->min, tw->has_max, tw->max,
                         (long long)tw->min_interval_ms);
                h_params(h, tp, c->plugin ? c->plugin->tag_schema : NULL, gc->tags[t].params);
            }
        }
    }
}

static void h_file(struct hasher *h, const char *key, const char *path)
{
    struct stat st;
    if (path && stat(path, &st) == 0)
        h_kv(h, "%s.file=%lld.%09ld/%lld", key, (long long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec,
             (long long)st.st_size);
}

/* ---- The core's sections, through their schemas ----------------------------------------------
 *
 * The digest has always written the core's values in the layout below, and it must not change
 * (a changed digest would report every running configuration as changed). So each value is
 * read through its schema entry (offset and type) but written as listed here: H_STR a line
 * "label=<JSON string or null>" of its own, H_NUM " label=<number>" added to the current line
 * (bools and enum indexes as %d, integers, durations and sizes as %lld), H_END ending that
 * line. An entry of a core schema that no table lists is hashed after the tables as
 * "section.key=value" (see h_rest): a key added to a schema can never be left out of the
 * digest. test_config_hash checks both. */

enum { H_STR, H_NUM, H_END };

struct hfield {
    const struct ib_schema *sc;
    const char *key;
    const char *label;
    int kind;
};

#define STR(sc, key, label)                                                                        \
    {                                                                                              \
        &sc, key, label, H_STR                                                                     \
    }
#define NUM(sc, key, label)                                                                        \
    {                                                                                              \
        &sc, key, label, H_NUM                                                                     \
    }
#define END                                                                                        \
    {                                                                                              \
        NULL, NULL, NULL, H_END                                                                    \
    }

static const struct hfield gateway_fields[] = {
    STR(ib_config_gateway_schema, "id", "gateway.id"),
    STR(ib_config_gateway_schema, "plugin_dir", "gateway.plugin_dir"),
    NUM(ib_config_log_schema, "level", "log.level"),
    NUM(ib_config_watch_schema, "watch", "watch"),
    NUM(ib_config_watch_schema, "watch_delay", "watch_delay"),
    END,
};

static const struct hfield north_fields[] = {
    STR(ib_config_mqtt_schema, "url", "url"),
    STR(ib_config_mqtt_schema, "client_id", "client_id"),
    STR(ib_config_mqtt_schema, "topic", "topic"),
    STR(ib_config_mqtt_schema, "status_topic", "status_topic"),
    STR(ib_config_mqtt_schema, "config_status_topic", "config_status_topic"),
    STR(ib_config_mqtt_schema, "username", "username"),
    STR(ib_config_mqtt_schema, "password_file", "password_file"),
    STR(ib_config_tls_schema, "ca", "ca"),
    STR(ib_config_tls_schema, "ca_path", "ca_path"),
    STR(ib_config_tls_schema, "cert", "cert"),
    STR(ib_config_tls_schema, "key", "key"),
    NUM(ib_config_mqtt_schema, "allow_insecure", "insecure"),
    NUM(ib_config_mqtt_schema, "qos", "qos"),
    NUM(ib_config_mqtt_schema, "layout", "layout"),
    NUM(ib_config_mqtt_schema, "keepalive_s", "keepalive"),
    NUM(ib_config_mqtt_schema, "connect_timeout_ms", "connect"),
    NUM(ib_config_mqtt_schema, "reconnect_min_ms", "rmin"),
    NUM(ib_config_mqtt_schema, "reconnect_max_ms", "rmax"),
    NUM(ib_config_mqtt_schema, "max_inflight", "inflight"),
    NUM(ib_config_mqtt_schema, "max_inflight_bytes", "inflight_bytes"),
    NUM(ib_config_mqtt_schema, "flush_timeout_ms", "flush"),
    END,
    NUM(ib_config_mqtt_schema, "version", "version"),  /* h_north: only when 5 */
    NUM(ib_config_mqtt_schema, "linger_ms", "linger"), /* h_north: only when not the default */
};

/* store.path is written by h_store itself: its default depends on $STATE_DIRECTORY. */
static const struct hfield store_fields[] = {
    {&ib_config_store_schema, "path", NULL, H_END},
    NUM(ib_config_store_schema, "max_bytes", "store max_bytes"),
    NUM(ib_config_store_schema, "max_age", "max_age"),
    NUM(ib_config_store_schema, "fsync", "fsync"),
    NUM(ib_config_store_schema, "fsync_interval_ms", "interval"),
    NUM(ib_config_store_schema, "fsync_bytes", "bytes"),
    NUM(ib_config_store_schema, "replay_rate", "replay"),
    NUM(ib_config_store_schema, "memory_max_bytes", "memory"),
    END,
};

static const struct hfield remote_fields[] = {
    NUM(ib_config_remote_schema, "enabled", "remote"),
    END,
    STR(ib_config_remote_schema, "public_key", "remote.public_key"),
    STR(ib_config_remote_schema, "topic", "remote.topic"),
    STR(ib_config_remote_schema, "file", "remote.file"),
};

#define N_OF(a) (sizeof a / sizeof a[0])

/* The struct of `cfg` that schema `sc` fills (config_core.h). */
static const void *base_of(const struct ib_config *cfg, const struct ib_schema *sc)
{
    if (sc == &ib_config_remote_schema)
        return &cfg->remote;

    if (sc == &ib_config_mqtt_schema || sc == &ib_config_tls_schema)
        return &cfg->mqtt;
    if (sc == &ib_config_store_schema)
        return &cfg->store;
    if (sc == &ib_config_metrics_schema)
        return &cfg->metrics;
    return cfg; /* gateway, log, config */
}

static void h_number(struct ib_buf *line, const char *label, const struct ib_schema_entry *e,
                     const char *f)
{
    long long v = 0;
    if (e->type == IB_S_BOOL) {
        bool b;
        memcpy(&b, f, sizeof b);
        v = b;
    } else if (e->type == IB_S_ENUM) {
        int32_t i;
        memcpy(&i, f, sizeof i);
        v = i;
    } else {
        int64_t i;
        memcpy(&i, f, sizeof i);
        v = i;
    }
    ib_buf_printf(line, "%s%s=%lld", line->len ? " " : "", label, v);
}

static void h_fields(struct hasher *h, const struct ib_config *cfg, const struct hfield *fl,
                     size_t n)
{
    struct ib_buf line = {0};
    for (size_t i = 0; i < n; i++) {
        if (fl[i].kind == H_END) {
            if (line.len) {
                ib_buf_puts(&line, "\n");
                SHA256_Update(&h->ctx, line.p, line.len);
                ib_buf_reset(&line);
            }
            continue;
        }
        const struct ib_schema_entry *e = ib_schema_find(fl[i].sc, fl[i].key);
        const char *f = (const char *)base_of(cfg, fl[i].sc) + e->offset;
        if (fl[i].kind == H_STR) {
            const char *v;
            memcpy(&v, f, sizeof v);
            h_str(h, fl[i].label, v);
        } else {
            h_number(&line, fl[i].label, e, f);
        }
    }
    ib_buf_free(&line);
}

static bool listed(const struct hfield *fl, size_t n, const struct ib_schema *sc, const char *key)
{
    for (size_t i = 0; i < n; i++)
        if (fl[i].sc == sc && fl[i].key && strcmp(fl[i].key, key) == 0)
            return true;
    return false;
}

/* The entries of `sc` that table `fl` does not list, as "section.key=value". */
static void h_rest(struct hasher *h, const struct ib_config *cfg, const char *section,
                   const struct ib_schema *sc, const struct hfield *fl, size_t n)
{
    char key[128];
    for (size_t i = 0; i < sc->n_entries; i++) {
        const struct ib_schema_entry *e = &sc->entries[i];
        if (listed(fl, n, sc, e->key))
            continue;
        snprintf(key, sizeof key, "%s.%s", section, e->key);
        h_entry(h, key, e, base_of(cfg, sc));
    }
}

/* Sparkplug: the format, and the metric table's layout (every device, group and tag name in
 * order: the aliases follow it), which the north's births and every poller's records share. */
static void h_sparkplug(struct hasher *h, const struct ib_config *cfg)
{
    if (cfg->spb.format != IB_FORMAT_SPARKPLUG_B)
        return; /* JSON: the digests stay those of earlier versions (test_config_hash: pinned) */
    h_kv(h, "format=%d", cfg->spb.format);
    h_str(h, "sparkplug.group_id", cfg->spb.group_id);
    h_str(h, "sparkplug.bdseq_file", cfg->spb.bdseq_file);
    h_str(h, "sparkplug.primary_host_id", cfg->spb.primary_host_id);
    for (size_t c = 0; c < cfg->n_connections; c++) {
        const struct ib_connection_config *cc = &cfg->connections[c].pub;
        for (uint32_t d = 0; d < cc->n_devices; d++)
            for (uint32_t g = 0; g < cc->devices[d].n_groups; g++) {
                const struct ib_group_config *gr = &cc->devices[d].groups[g];
                h_str(h, "spb.device", cc->devices[d].name);
                h_str(h, "spb.group", gr->name);
                for (uint32_t t = 0; t < gr->n_tags; t++)
                    h_str(h, "spb.tag", gr->tags[t].name);
            }
    }
}

static void h_north(struct hasher *h, const struct ib_config *cfg, bool files)
{
    const struct ib_mqtt_cfg *m = &cfg->mqtt;
    h_kv(h, "north=%d", cfg->has_north);
    if (!cfg->has_north)
        return;
    h_sparkplug(h, cfg);
    for (int i = 1; i < m->n_server_uris; i++) /* only when given: earlier digests stay */
        h_str(h, "server", m->server_uris[i]);
    h_fields(h, cfg, north_fields, N_OF(north_fields));
    h_rest(h, cfg, "north.mqtt", &ib_config_mqtt_schema, north_fields, N_OF(north_fields));
    h_rest(h, cfg, "north.mqtt.tls", &ib_config_tls_schema, north_fields, N_OF(north_fields));
    if (m->version == IB_MQTT_V5) /* digests of 3.1.1 configurations as before */
        h_kv(h, "mqtt.version=5");
    if (m->linger_ms != strtoll(IB_MQTT_LINGER_DEFAULT, NULL, 10)) /* idem */
        h_kv(h, "mqtt.linger_ms=%lld", (long long)m->linger_ms);
    if (files) {
        h_file(h, "ca", m->ca);
        h_file(h, "cert", m->cert);
        h_file(h, "key", m->key);
        h_file(h, "password", m->password_file);
    }
}

static void h_store(struct hasher *h, const struct ib_config *cfg)
{
    const struct ib_store_cfg *st = &cfg->store;
    /* The default depends on $STATE_DIRECTORY, not on the files: --check and the service
     * must agree on the hash. */
    h_str(h, "store.path", st->path_default ? "(default)" : st->path);
    h_fields(h, cfg, store_fields, N_OF(store_fields));
    h_rest(h, cfg, "store", &ib_config_store_schema, store_fields, N_OF(store_fields));
}

/* The commands section, only where it differs from its defaults, so that the digests of
 * configurations without it stay those of before (they are compared across an upgrade). The
 * north digest takes what the MQTT front end depends on (topics, signatures): a change of them
 * restarts the north. */
static void h_commands(struct hasher *h, const struct ib_config *cfg, bool north_only)
{
    const struct ib_commands_cfg *c = &cfg->commands;
    if (!c->enabled)
        h_kv(h, "commands.enabled=0");
    if (c->topic && strcmp(c->topic, "ironbridge/{gateway}/command") != 0)
        h_str(h, "commands.topic", c->topic);
    if (c->response_topic && strcmp(c->response_topic, "ironbridge/{gateway}/command/response"))
        h_str(h, "commands.response_topic", c->response_topic);
    if (c->require_signature)
        h_kv(h, "commands.signed=1");
    if (c->public_key)
        h_str(h, "commands.public_key", c->public_key);
    if (north_only) /* what the MQTT front end took at the north's start */
        return;
    if (c->max_age_ms != 10000 || c->duplicate_window_ms != 300000 || c->queue != 64)
        h_kv(h, "commands max_age=%lld window=%lld queue=%lld", (long long)c->max_age_ms,
             (long long)c->duplicate_window_ms, (long long)c->queue);
}

void ib_config_hash_hex(const struct ib_config *cfg, char hex[65])
{
    struct hasher h;
    h_begin(&h);
    h_fields(&h, cfg, gateway_fields, N_OF(gateway_fields));
    h_rest(&h, cfg, "gateway", &ib_config_gateway_schema, gateway_fields, N_OF(gateway_fields));
    h_rest(&h, cfg, "log", &ib_config_log_schema, gateway_fields, N_OF(gateway_fields));
    h_rest(&h, cfg, "config", &ib_config_watch_schema, gateway_fields, N_OF(gateway_fields));
    h_north(&h, cfg, false);
    h_store(&h, cfg);
    h_fields(&h, cfg, remote_fields, N_OF(remote_fields));
    h_rest(&h, cfg, "remote_config", &ib_config_remote_schema, remote_fields, N_OF(remote_fields));
    h_commands(&h, cfg, false);
    if (cfg->metrics.present) /* the digests of files without it stay as they were */
        h_rest(&h, cfg, "metrics", &ib_config_metrics_schema, remote_fields, 0);
    for (size_t i = 0; i < cfg->n_connections; i++)
        h_conn(&h, &cfg->connections[i], i);
    unsigned char d[32];
    h_end(&h, d);
    for (int i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", d[i]);
}

void ib_config_conn_digest(const struct ib_config *cfg, size_t conn, unsigned char out[32])
{
    struct hasher h;
    h_begin(&h);
    h_conn(&h, &cfg->connections[conn], 0);
    h_end(&h, out);
}

void ib_config_north_digest(const struct ib_config *cfg, unsigned char out[32])
{
    struct hasher h;
    h_begin(&h);
    h_str(&h, "gateway.id", cfg->gateway_id); /* in the client id, status topic and will */
    h_north(&h, cfg, true);
    h_kv(&h, "remote=%d", cfg->remote.enabled);
    h_str(&h, "remote.topic", cfg->remote.topic);
    h_commands(&h, cfg, true);
    h_end(&h, out);
}

void ib_config_poller_digest(const struct ib_config *cfg, unsigned char out[32])
{
    struct hasher h;
    h_begin(&h);
    h_str(&h, "gateway.id", cfg->gateway_id);
    h_str(&h, "topic", cfg->has_north ? cfg->mqtt.topic : NULL);
    h_kv(&h, "layout=%d", cfg->mqtt.layout);
    h_sparkplug(&h, cfg);
    h_end(&h, out);
}

void ib_config_store_digest(const struct ib_config *cfg, unsigned char out[32])
{
    struct hasher h;
    h_begin(&h);
    h_store(&h, cfg);
    h_end(&h, out);
}
