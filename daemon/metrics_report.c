/* The health document (JSON) and its text for a person, and the healthy / degraded / down
 * verdict, from the metrics registry and the store (metrics_report.h). */
#include "metrics_report.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ib_build_config.h"
#include "json.h"
#include "metrics_text.h"
#include "store.h"

const char *ib_health_name(enum ib_health h)
{
    static const char *const n[] = {"healthy", "degraded", "down"};
    return h <= IB_HEALTH_DOWN ? n[h] : "?";
}

/* ---- the devices, folded -------------------------------------------------------------------- */

#define MAX_DEVS 4096

struct devs {
    struct ib_metrics_device d[MAX_DEVS];
    size_t n;
    size_t up, down, unpolled;
};

static void dev_add(void *ud, const struct ib_metrics_group *g)
{
    struct devs *v = ud;
    if (v->n && ib_metrics_device_fold(&v->d[v->n - 1], g))
        return;
    if (v->n == MAX_DEVS)
        return;
    v->d[v->n] = (struct ib_metrics_device){0};
    ib_metrics_device_fold(&v->d[v->n++], g);
}

/* The rows are read under the registry's lock; their strings live as long as the registry. */
static struct devs *devs_read(struct ib_metrics *m)
{
    struct devs *v = calloc(1, sizeof *v);
    if (!v)
        return NULL;
    ib_metrics_foreach_group(m, dev_add, v);
    for (size_t i = 0; i < v->n; i++) {
        v->up += v->d[i].up == 1;
        v->down += v->d[i].up == 0;
        v->unpolled += v->d[i].up < 0;
    }
    return v;
}

static enum ib_health verdict(struct ib_metrics *m, const struct devs *v,
                              const struct ib_store_stats *st, char *why, size_t len)
{
    struct ib_metrics_north *n = ib_metrics_north(m);
    char w[200] = "";
    enum ib_health h = IB_HEALTH_OK;
    if (atomic_load(&n->configured) && !atomic_load(&n->connected)) {
        snprintf(w, sizeof w, "the broker is not connected");
        h = IB_HEALTH_DOWN;
    } else if (v->n && v->down == v->n) {
        snprintf(w, sizeof w, "every device is down");
        h = IB_HEALTH_DOWN;
    } else if (v->down || v->unpolled) {
        snprintf(w, sizeof w, "%zu of %zu devices %s", v->down ? v->down : v->unpolled, v->n,
                 v->down ? "down" : "not polled yet");
        h = IB_HEALTH_DEGRADED;
    } else if (st->disk_error) {
        snprintf(w, sizeof w, "the store's disk refuses writes (%s)", strerror(st->disk_error));
        h = IB_HEALTH_DEGRADED;
    }
    if (why)
        snprintf(why, len, "%s", h == IB_HEALTH_OK ? "all devices up, broker connected" : w);
    return h;
}

static void stats(struct ib_metrics *m, struct ib_store_stats *st)
{
    memset(st, 0, sizeof *st);
    struct ib_store *s = ib_metrics_store(m);
    if (s)
        ib_store_stats(s, st);
}

enum ib_health ib_metrics_health(struct ib_metrics *m, char *why, size_t len)
{
    struct devs *v = devs_read(m);
    struct ib_store_stats st;
    stats(m, &st);
    enum ib_health h = v ? verdict(m, v, &st, why, len) : IB_HEALTH_DEGRADED;
    free(v);
    return h;
}

/* ---- JSON ----------------------------------------------------------------------------------- */

static void kv_u(struct ib_buf *b, const char *k, uint64_t v)
{
    ib_buf_printf(b, ",\"%s\":", k);
    ib_json_uint(b, v);
}

static void kv_s(struct ib_buf *b, const char *k, const char *v)
{
    ib_buf_printf(b, ",\"%s\":", k);
    ib_json_cstr(b, v);
}

static void json_dev(struct ib_buf *b, const struct ib_metrics_device *d, bool first)
{
    ib_buf_puts(b, first ? "{\"connection\":" : ",{\"connection\":");
    ib_json_cstr(b, d->conn);
    kv_s(b, "device", d->dev);
    kv_s(b, "state", d->up == 1 ? "up" : d->up == 0 ? "down" : "not_polled");
    kv_s(b, "reason", ib_metrics_device_reason(d));
    ib_buf_puts(b, ",\"since_ms\":");
    ib_json_int(b, d->since_ms);
    ib_buf_puts(b, ",\"last_good_ms\":");
    ib_json_int(b, d->last_good_ms);
    ib_buf_puts(b, ",\"values_per_s\":");
    ib_json_double(b, d->rate);
    kv_u(b, "polls", d->polls);
    kv_u(b, "values_read", d->values);
    kv_u(b, "values_published", d->published);
    ib_buf_puts(b, "}");
}

static void json_store(struct ib_buf *b, const struct ib_store_stats *st, int64_t now_ms)
{
    ib_buf_puts(b, ",\"store\":{\"records\":");
    ib_json_uint(b, st->queued);
    kv_u(b, "bytes", st->bytes + st->mem_bytes);
    kv_u(b, "oldest_age_s",
         st->oldest_ms && now_ms > st->oldest_ms ? (uint64_t)(now_ms - st->oldest_ms) / 1000 : 0);
    kv_u(b, "appended", st->pushed);
    kv_u(b, "acknowledged", st->acked);
    kv_u(b, "dropped", st->dropped);
    kv_u(b, "damaged", st->damaged);
    ib_buf_printf(b, ",\"disk_ok\":%s}", st->disk_error ? "false" : "true");
}

static void json_north(struct ib_buf *b, struct ib_metrics *m, const struct ib_store_stats *st)
{
    struct ib_metrics_north *n = ib_metrics_north(m);
    char server[256];
    ib_metrics_north_server(m, server, sizeof server);
    uint64_t c = atomic_load(&n->connects);
    ib_buf_printf(b, ",\"north\":{\"configured\":%s,\"connected\":%s",
                  atomic_load(&n->configured) ? "true" : "false",
                  atomic_load(&n->connected) ? "true" : "false");
    kv_s(b, "server", server);
    ib_buf_puts(b, ",\"since_ms\":");
    ib_json_int(b, atomic_load(&n->since_ms));
    kv_u(b, "reconnects", c ? c - 1 : 0);
    kv_u(b, "published", atomic_load(&n->published));
    kv_u(b, "acknowledged", atomic_load(&n->acked));
    kv_u(b, "in_flight", st->inflight);
    ib_buf_puts(b, "}");
}

static void json_cmd(void *ud, const char *result, uint64_t n)
{
    struct ib_buf *b = ud;
    bool first = b->len && b->p[b->len - 1] == '{';
    ib_buf_printf(b, "%s\"%s\":", first ? "" : ",", result);
    ib_json_uint(b, n);
}

int ib_metrics_report_json(struct ib_metrics *m, struct ib_buf *b, int64_t now_ms)
{
    ib_buf_reset(b);
    struct devs *v = devs_read(m);
    if (!v)
        return -1;
    struct ib_store_stats st;
    stats(m, &st);
    char why[200], gwid[128], sha[65];
    enum ib_health h = verdict(m, v, &st, why, sizeof why);
    ib_metrics_info(m, gwid, sizeof gwid, sha, sizeof sha);
    ib_buf_puts(b, "{\"gateway\":");
    ib_json_cstr(b, gwid);
    ib_buf_puts(b, ",\"ts\":");
    ib_json_int(b, now_ms);
    kv_s(b, "health", ib_health_name(h));
    ib_buf_printf(b, ",\"exit_status\":%d", (int)h);
    kv_s(b, "why", why);
    kv_s(b, "version", IB_VERSION);
    kv_s(b, "config_sha256", sha);
    kv_u(b, "uptime_s", (uint64_t)(now_ms - ib_metrics_started_ms(m)) / 1000);
    ib_buf_puts(b, ",\"devices\":[");
    for (size_t i = 0; i < v->n; i++)
        json_dev(b, &v->d[i], i == 0);
    ib_buf_puts(b, "]");
    json_store(b, &st, now_ms);
    json_north(b, m, &st);
    ib_buf_puts(b, ",\"commands\":{");
    ib_metrics_foreach_command(m, json_cmd, b);
    int rc = ib_buf_puts(b, "}}\n");
    free(v);
    return rc;
}

/* ---- text ----------------------------------------------------------------------------------- */

static const char *when(int64_t ms, char *buf, size_t len)
{
    if (ms <= 0)
        return "-";
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buf;
}

static void text_dev(struct ib_buf *b, const struct ib_metrics_device *d)
{
    char s1[32], s2[32];
    ib_buf_printf(b, "%-16s %-16s %-10s %-20s %-16s %-20s %.1f\n", d->conn, d->dev,
                  d->up == 1   ? "up"
                  : d->up == 0 ? "DOWN"
                               : "not_polled",
                  when(d->since_ms, s1, sizeof s1), d->up == 1 ? "-" : ib_metrics_device_reason(d),
                  when(d->last_good_ms, s2, sizeof s2), d->rate);
}

static void text_tail(struct ib_buf *b, struct ib_metrics *m, const struct ib_store_stats *st,
                      int64_t now_ms)
{
    ib_buf_printf(b,
                  "store: %llu records (%llu bytes) waiting, oldest %llu s; appended %llu, "
                  "acknowledged %llu, dropped %llu, damaged %llu%s\n",
                  (unsigned long long)st->queued, (unsigned long long)(st->bytes + st->mem_bytes),
                  (unsigned long long)(st->oldest_ms && now_ms > st->oldest_ms
                                           ? (now_ms - st->oldest_ms) / 1000
                                           : 0),
                  (unsigned long long)st->pushed, (unsigned long long)st->acked,
                  (unsigned long long)st->dropped, (unsigned long long)st->damaged,
                  st->disk_error ? "; DISK FAILING" : "");
    struct ib_metrics_north *n = ib_metrics_north(m);
    char server[256], s1[32];
    ib_metrics_north_server(m, server, sizeof server);
    uint64_t c = atomic_load(&n->connects);
    if (!atomic_load(&n->configured))
        ib_buf_puts(b, "broker: none configured\n");
    else
        ib_buf_printf(b,
                      "broker: %s%s%s since %s; %llu reconnects, published %llu, acknowledged "
                      "%llu, in flight %llu\n",
                      atomic_load(&n->connected) ? "connected to " : "NOT CONNECTED", server, "",
                      when(atomic_load(&n->since_ms), s1, sizeof s1),
                      (unsigned long long)(c ? c - 1 : 0),
                      (unsigned long long)atomic_load(&n->published),
                      (unsigned long long)atomic_load(&n->acked), (unsigned long long)st->inflight);
}

int ib_metrics_report_text(struct ib_metrics *m, struct ib_buf *b, int64_t now_ms)
{
    ib_buf_reset(b);
    struct devs *v = devs_read(m);
    if (!v)
        return -1;
    struct ib_store_stats st;
    stats(m, &st);
    char why[200], gwid[128], sha[65];
    enum ib_health h = verdict(m, v, &st, why, sizeof why);
    ib_metrics_info(m, gwid, sizeof gwid, sha, sizeof sha);
    ib_buf_printf(b, "gateway %s: %s: %s\n", gwid, ib_health_name(h), why);
    ib_buf_printf(b, "%-16s %-16s %-10s %-20s %-16s %-20s %s\n", "CONNECTION", "DEVICE", "STATE",
                  "SINCE", "REASON", "LAST GOOD POLL", "VALUES/S");
    for (size_t i = 0; i < v->n; i++)
        text_dev(b, &v->d[i]);
    text_tail(b, m, &st, now_ms);
    free(v);
    return b->p ? 0 : -1;
}
