/* Canonical digests of a configuration. Each value is written as "path=value\n" in a fixed
 * order and format (integers in decimal, numbers with 17 significant digits, strings escaped),
 * then hashed with SHA-256 through OpenSSL's SHA256_* functions. Not EVP: its first use loads
 * OpenSSL's providers, which keeps 1.5 MB of libcrypto resident in a daemon that may never use
 * TLS; the 1.1.1 API, deprecated since 3.0 but kept, computes the same digest without that. */
#include "config_hash.h"

#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#define OPENSSL_API_COMPAT 10101 /* SHA256_Init and co., see above */
#include <openssl/sha.h>

#include "json.h"

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

/* A plugin's params struct, key by key, through its schema. */
static void h_params(struct hasher *h, const char *prefix, const struct ib_schema *sc,
                     const void *params)
{
    char key[256];
    for (size_t i = 0; sc && params && i < sc->n_entries; i++) {
        const struct ib_schema_entry *e = &sc->entries[i];
        const char *f = (const char *)params + e->offset;
        snprintf(key, sizeof key, "%s.%s", prefix, e->key);
        switch (e->type) {
        case IB_S_BOOL: {
            bool v;
            memcpy(&v, f, sizeof v);
            h_kv(h, "%s=%s", key, v ? "true" : "false");
            break;
        }
        case IB_S_INT:
        case IB_S_DURATION: {
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

static void h_north(struct hasher *h, const struct ib_config *cfg, bool files)
{
    const struct ib_mqtt_cfg *m = &cfg->mqtt;
    h_kv(h, "north=%d", cfg->has_north);
    if (!cfg->has_north)
        return;
    h_str(h, "url", m->url);
    h_str(h, "client_id", m->client_id);
    h_str(h, "topic", m->topic);
    h_str(h, "status_topic", m->status_topic);
    h_str(h, "config_status_topic", m->config_status_topic);
    h_str(h, "username", m->username);
    h_str(h, "password_file", m->password_file);
    h_str(h, "ca", m->ca);
    h_str(h, "ca_path", m->ca_path);
    h_str(h, "cert", m->cert);
    h_str(h, "key", m->key);
    h_kv(h,
         "insecure=%d qos=%lld layout=%d keepalive=%lld connect=%lld rmin=%lld rmax=%lld "
         "inflight=%lld inflight_bytes=%lld flush=%lld",
         m->allow_insecure, (long long)m->qos, m->layout, (long long)m->keepalive_s,
         (long long)m->connect_timeout_ms, (long long)m->reconnect_min_ms,
         (long long)m->reconnect_max_ms, (long long)m->max_inflight,
         (long long)m->max_inflight_bytes, (long long)m->flush_timeout_ms);
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
    h_kv(h,
         "store max_bytes=%lld max_age=%lld fsync=%d interval=%lld bytes=%lld replay=%lld "
         "memory=%lld",
         (long long)st->max_bytes, (long long)st->max_age_ms, st->fsync,
         (long long)st->fsync_interval_ms, (long long)st->fsync_bytes, (long long)st->replay_rate,
         (long long)st->memory_max_bytes);
}

void ib_config_hash_hex(const struct ib_config *cfg, char hex[65])
{
    struct hasher h;
    h_begin(&h);
    h_str(&h, "gateway.id", cfg->gateway_id);
    h_str(&h, "gateway.plugin_dir", cfg->plugin_dir);
    h_kv(&h, "log.level=%d watch=%d watch_delay=%lld", cfg->log_level, cfg->watch,
         (long long)cfg->watch_delay_ms);
    h_north(&h, cfg, false);
    h_store(&h, cfg);
    h_kv(&h, "remote=%d", cfg->remote.enabled);
    h_str(&h, "remote.public_key", cfg->remote.public_key);
    h_str(&h, "remote.topic", cfg->remote.topic);
    h_str(&h, "remote.file", cfg->remote.file);
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
    h_end(&h, out);
}

void ib_config_poller_digest(const struct ib_config *cfg, unsigned char out[32])
{
    struct hasher h;
    h_begin(&h);
    h_str(&h, "gateway.id", cfg->gateway_id);
    h_str(&h, "topic", cfg->has_north ? cfg->mqtt.topic : NULL);
    h_kv(&h, "layout=%d", cfg->mqtt.layout);
    h_end(&h, out);
}

void ib_config_store_digest(const struct ib_config *cfg, unsigned char out[32])
{
    struct hasher h;
    h_begin(&h);
    h_store(&h, cfg);
    h_end(&h, out);
}
