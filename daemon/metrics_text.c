/* The Prometheus text exposition (format 0.0.4) of the metrics registry, the store and the
 * process: every family documented in docs/observability.md. Any thread; reads only. */
#include "metrics_text.h"

#include <dirent.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <ironbridge/plugin.h>

#include "ib_build_config.h"
#include "record.h"
#include "store.h"

/* A label value with \, " and newline escaped (the format's rules). */
static void label(struct ib_buf *b, const char *v)
{
    for (; *v; v++) {
        if (*v == '\\' || *v == '"')
            ib_buf_printf(b, "\\%c", *v);
        else if (*v == '\n')
            ib_buf_puts(b, "\\n");
        else
            ib_buf_append(b, v, 1);
    }
}

static void head(struct ib_buf *b, const char *name, const char *type, const char *help)
{
    ib_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void group_labels(struct ib_buf *b, const struct ib_metrics_group *g)
{
    ib_buf_puts(b, "connection=\"");
    label(b, g->conn);
    ib_buf_puts(b, "\",device=\"");
    label(b, g->dev);
    ib_buf_puts(b, "\",group=\"");
    label(b, g->grp);
    ib_buf_puts(b, "\"");
}

static uint64_t ld(const atomic_uint_fast64_t *a)
{
    return atomic_load_explicit(a, memory_order_relaxed);
}

/* One family over every active group: `what` picks the figure. */
enum gfig { G_POLLS, G_ERRORS, G_DURATION, G_LAST_GOOD, G_VALUES, G_PUBLISHED };

struct gwalk {
    struct ib_buf *b;
    enum gfig fig;
    const char *name;
};

static void hist(struct ib_buf *b, const char *name, const struct ib_metrics_hist *h,
                 const struct ib_metrics_group *g)
{
    uint64_t cum = 0;
    for (size_t i = 0; i < IB_METRICS_BUCKETS; i++) {
        cum += ld(&h->bucket[i]);
        ib_buf_printf(b, "%s_bucket{", name);
        if (g) {
            group_labels(b, g);
            ib_buf_puts(b, ",");
        }
        if (i < IB_METRICS_BUCKETS - 1)
            ib_buf_printf(b, "le=\"%g\"} %llu\n", ib_metrics_bucket_ms[i] / 1000.0,
                          (unsigned long long)cum);
        else
            ib_buf_printf(b, "le=\"+Inf\"} %llu\n", (unsigned long long)cum);
    }
    /* count is the +Inf bucket, so the two never disagree within one scrape */
    const char *open = g ? "{" : "", *close = g ? "}" : "";
    ib_buf_printf(b, "%s_sum%s", name, open);
    if (g)
        group_labels(b, g);
    ib_buf_printf(b, "%s %.6f\n%s_count%s", close, (double)ld(&h->sum_us) / 1e6, name, open);
    if (g)
        group_labels(b, g);
    ib_buf_printf(b, "%s %llu\n", close, (unsigned long long)cum);
}

static void one_group(void *ud, const struct ib_metrics_group *g)
{
    struct gwalk *w = ud;
    struct ib_buf *b = w->b;
    if (w->fig == G_DURATION) {
        hist(b, w->name, &g->duration, g);
        return;
    }
    if (w->fig == G_ERRORS) {
        for (int r = 1; r < IB_METRICS_REASONS; r++) {
            ib_buf_printf(b, "%s{", w->name);
            group_labels(b, g);
            ib_buf_printf(b, ",reason=\"%s\"} %llu\n", ib_record_reason_name((uint8_t)r),
                          (unsigned long long)ld(&g->errors[r]));
        }
        return;
    }
    ib_buf_printf(b, "%s{", w->name);
    group_labels(b, g);
    ib_buf_puts(b, "} ");
    switch (w->fig) {
    case G_POLLS:
        ib_buf_printf(b, "%llu\n", (unsigned long long)ld(&g->polls));
        break;
    case G_LAST_GOOD:
        ib_buf_printf(b, "%.3f\n", (double)atomic_load(&g->last_good_ms) / 1000.0);
        break;
    case G_VALUES:
        ib_buf_printf(b, "%llu\n", (unsigned long long)ld(&g->values));
        break;
    default:
        ib_buf_printf(b, "%llu\n", (unsigned long long)ld(&g->published));
        break;
    }
}

static void groups(struct ib_buf *b, struct ib_metrics *m, enum gfig fig, const char *name,
                   const char *type, const char *help)
{
    head(b, name, type, help);
    struct gwalk w = {b, fig, name};
    ib_metrics_foreach_group(m, one_group, &w);
}

/* ---- devices: the groups of one device, folded ---------------------------------------------- */

struct dwalk {
    struct ib_buf *b;
    bool since; /* the second family: since when */
    struct ib_metrics_device cur;
};

static void dev_flush(struct dwalk *w)
{
    struct ib_metrics_device *d = &w->cur;
    if (!d->conn)
        return;
    ib_buf_printf(w->b, "%s{connection=\"",
                  w->since ? "ironbridge_device_state_since_seconds" : "ironbridge_device_up");
    label(w->b, d->conn);
    ib_buf_puts(w->b, "\",device=\"");
    label(w->b, d->dev);
    ib_buf_printf(w->b, "\",reason=\"%s\"} ", ib_metrics_device_reason(d));
    if (w->since)
        ib_buf_printf(w->b, "%.3f\n", (double)d->since_ms / 1000.0);
    else
        ib_buf_printf(w->b, "%d\n", d->up == 1);
}

static void dev_group(void *ud, const struct ib_metrics_group *g)
{
    struct dwalk *w = ud;
    if (!ib_metrics_device_fold(&w->cur, g)) {
        dev_flush(w);
        w->cur = (struct ib_metrics_device){0};
        ib_metrics_device_fold(&w->cur, g);
    }
}

static void devices(struct ib_buf *b, struct ib_metrics *m)
{
    head(b, "ironbridge_device_up", "gauge",
         "1 when every tag of the device's last polls was good, else 0; reason: ok, "
         "not_polled, or why its first bad tag was bad");
    struct dwalk w = {.b = b};
    ib_metrics_foreach_group(m, dev_group, &w);
    dev_flush(&w);
    head(b, "ironbridge_device_state_since_seconds", "gauge",
         "Unix time at which the device's up/down state last changed");
    w = (struct dwalk){.b = b, .since = true};
    ib_metrics_foreach_group(m, dev_group, &w);
    dev_flush(&w);
}

/* ---- the store ------------------------------------------------------------------------------ */

static void gauge(struct ib_buf *b, const char *name, const char *type, const char *help, double v)
{
    head(b, name, type, help);
    ib_buf_printf(b, "%s %.15g\n", name, v);
}

static void store(struct ib_buf *b, struct ib_metrics *m, int64_t now_ms)
{
    struct ib_store *s = ib_metrics_store(m);
    struct ib_store_stats st = {0};
    if (s)
        ib_store_stats(s, &st);
    gauge(b, "ironbridge_store_records", "gauge",
          "records in the store not yet acknowledged by the broker (the backlog)",
          (double)st.queued);
    gauge(b, "ironbridge_store_bytes", "gauge", "disk bytes of the store's segments plus memory",
          (double)(st.bytes + st.mem_bytes));
    gauge(b, "ironbridge_store_oldest_age_seconds", "gauge",
          "age of the oldest unacknowledged record (segment creation; 0 when empty)",
          st.oldest_ms && now_ms > st.oldest_ms ? (double)(now_ms - st.oldest_ms) / 1000.0 : 0);
    gauge(b, "ironbridge_store_appended_total", "counter", "records appended to the store",
          (double)st.pushed);
    gauge(b, "ironbridge_store_acknowledged_total", "counter",
          "records removed from the store after the broker's PUBACK", (double)st.acked);
    head(b, "ironbridge_store_dropped_total", "counter",
         "records dropped unsent, by reason: full, age, memory (disk failing), too_large");
    ib_buf_printf(b,
                  "ironbridge_store_dropped_total{reason=\"full\"} %llu\n"
                  "ironbridge_store_dropped_total{reason=\"age\"} %llu\n"
                  "ironbridge_store_dropped_total{reason=\"memory\"} %llu\n"
                  "ironbridge_store_dropped_total{reason=\"too_large\"} %llu\n",
                  (unsigned long long)st.dropped_full, (unsigned long long)st.dropped_age,
                  (unsigned long long)st.dropped_memory, (unsigned long long)st.dropped_large);
    gauge(b, "ironbridge_store_damaged_total", "counter",
          "records discarded because their bytes on disk were damaged (CRC)", (double)st.damaged);
    gauge(b, "ironbridge_store_disk_ok", "gauge", "1 while the disk takes the store's writes",
          st.disk_error == 0);
    gauge(b, "ironbridge_north_in_flight", "gauge",
          "records handed to the MQTT client and not yet acknowledged", (double)st.inflight);
}

/* ---- the north ------------------------------------------------------------------------------ */

static void north(struct ib_buf *b, struct ib_metrics *m)
{
    struct ib_metrics_north *n = ib_metrics_north(m);
    gauge(b, "ironbridge_north_connected", "gauge", "1 while connected to the MQTT broker",
          atomic_load(&n->connected));
    char server[256];
    ib_metrics_north_server(m, server, sizeof server);
    head(b, "ironbridge_north_server_info", "gauge", "the broker in use (1), when connected");
    if (*server) {
        ib_buf_puts(b, "ironbridge_north_server_info{server=\"");
        label(b, server);
        ib_buf_puts(b, "\"} 1\n");
    }
    uint64_t c = ld(&n->connects);
    gauge(b, "ironbridge_north_reconnects_total", "counter",
          "connections to the broker after the first", (double)(c ? c - 1 : 0));
    gauge(b, "ironbridge_north_published_total", "counter", "records handed to the MQTT client",
          (double)ld(&n->published));
    gauge(b, "ironbridge_north_acknowledged_total", "counter",
          "records the broker acknowledged (PUBACK)", (double)ld(&n->acked));
    gauge(b, "ironbridge_north_failed_total", "counter",
          "records the client gave back unacknowledged (sent again later)", (double)ld(&n->failed));
    head(b, "ironbridge_north_puback_latency_seconds", "histogram",
         "time from handing a record to the MQTT client to its PUBACK");
    hist(b, "ironbridge_north_puback_latency_seconds", &n->latency, NULL);
}

static void one_command(void *ud, const char *result, uint64_t n)
{
    ib_buf_printf(ud, "ironbridge_commands_total{result=\"%s\"} %llu\n", result,
                  (unsigned long long)n);
}

/* ---- the process ---------------------------------------------------------------------------- */

static long proc_threads(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long n = 0;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "Threads: %ld", &n) == 1)
            break;
    if (f)
        fclose(f);
    return n;
}

static long proc_rss(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    long size = 0, res = 0;
    if (f && fscanf(f, "%ld %ld", &size, &res) != 2)
        res = 0;
    if (f)
        fclose(f);
    return res * sysconf(_SC_PAGESIZE);
}

static long proc_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    long n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)))
        n += e->d_name[0] != '.';
    if (d)
        closedir(d);
    return n > 0 ? n - 1 : 0; /* not the directory's own descriptor */
}

static void process(struct ib_buf *b, struct ib_metrics *m, int64_t now_ms)
{
    gauge(b, "ironbridge_uptime_seconds", "gauge", "seconds since the daemon started",
          (double)(now_ms - ib_metrics_started_ms(m)) / 1000.0);
    gauge(b, "ironbridge_process_resident_memory_bytes", "gauge", "resident set size",
          (double)proc_rss());
    gauge(b, "ironbridge_process_threads", "gauge", "threads of the process",
          (double)proc_threads());
    gauge(b, "ironbridge_process_open_fds", "gauge", "open file descriptors", (double)proc_fds());
    char gwid[128], sha[65];
    ib_metrics_info(m, gwid, sizeof gwid, sha, sizeof sha);
    head(b, "ironbridge_build_info", "gauge", "the daemon's version and plugin ABI (always 1)");
    ib_buf_printf(b, "ironbridge_build_info{version=\"%s\",abi=\"%d.%d\"} 1\n", IB_VERSION,
                  IB_ABI_MAJOR, IB_ABI_MINOR);
    head(b, "ironbridge_config_info", "gauge",
         "the gateway id and the SHA-256 of the configuration in force (always 1)");
    ib_buf_puts(b, "ironbridge_config_info{gateway=\"");
    label(b, gwid);
    ib_buf_printf(b, "\",sha256=\"%s\"} 1\n", sha);
}

int ib_metrics_render(struct ib_metrics *m, struct ib_buf *b, int64_t now_ms)
{
    ib_buf_reset(b);
    groups(b, m, G_POLLS, "ironbridge_polls_total", "counter", "polls of the group");
    groups(b, m, G_ERRORS, "ironbridge_poll_errors_total", "counter",
           "polls with a bad tag, by the first bad tag's reason");
    groups(b, m, G_DURATION, "ironbridge_poll_duration_seconds", "histogram",
           "time one poll of the group took (plugin read and normalization)");
    groups(b, m, G_LAST_GOOD, "ironbridge_last_good_poll_timestamp_seconds", "gauge",
           "Unix time of the group's last poll with every tag good (0: none yet)");
    groups(b, m, G_VALUES, "ironbridge_values_read_total", "counter", "good samples read");
    groups(b, m, G_PUBLISHED, "ironbridge_values_published_total", "counter",
           "samples queued for the broker (after report by exception)");
    devices(b, m);
    store(b, m, now_ms);
    north(b, m);
    head(b, "ironbridge_commands_total", "counter", "commands from the platform, by result");
    ib_metrics_foreach_command(m, one_command, b);
    process(b, m, now_ms);
    return b->len && b->p ? 0 : -1;
}

const char *ib_metrics_device_reason(const struct ib_metrics_device *d)
{
    if (d->up == 1)
        return "ok";
    if (d->up < 0)
        return "not_polled";
    return ib_record_reason_name((uint8_t)d->reason);
}
