/* The running gateway: the host table given to plugins, creating and freeing the gateway,
 * starting and stopping its pollers and its north, and its one-line status. */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "command_impl.h"
#include "gateway_priv.h"
#include "log.h"
#include "north.h"
#include "store.h"
#include "topic.h"
/* ---- the host table -------------------------------------------------------------------------- */

static void host_log(struct ib_host_ctx *ctx, int level, const char *dev, const char *tag,
                     const char *fmt, ...)
{
    /* Warnings and errors from a plugin are rate-limited per instance: a dead device must not
     * flood the journal. */
    int sup = 0;
    if (level <= IB_LOG_WARNING && (sup = ib_ratelimit_ok(&ctx->rl, ib_monotonic_ms())) < 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    ib_logv(level, ctx->conn, dev, tag, fmt, ap);
    va_end(ap);
    if (sup > 0)
        ib_log(IB_LOG_NOTICE, ctx->conn, dev, tag, "(%d similar messages suppressed)", sup);
}

static void host_config_error(struct ib_host_ctx *ctx, const void *where, const char *key,
                              const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (ctx->diag) {
        ib_diag_addv(ctx->diag, ib_config_where(where), key, fmt, ap);
    } else {
        /* Outside create() there is no one to report to but the log. */
        ib_logv(IB_LOG_ERR, ctx->conn, NULL, NULL, fmt, ap);
    }
    va_end(ap);
}

/* The command path's counters, for the metrics (any thread; atomic reads). */
static void command_counts(void *ud, ib_metrics_emit_fn emit, void *emit_ud)
{
    uint64_t counts[IB_CMD__COUNT];
    ib_command_counters(ud, counts);
    for (int i = 0; i < IB_CMD__COUNT; i++)
        emit(emit_ud, ib_command_result_name(i), counts[i]);
}

struct ib_gateway *ib_gateway_create(struct ib_config *cfg, struct ib_diag *diag)
{
    struct ib_gateway *gw = calloc(1, sizeof *gw);
    if (!gw)
        return NULL;
    gw->cfg = ib_config_ref(cfg);
    gw->host = (struct ib_host){.abi_major = IB_ABI_MAJOR,
                                .abi_minor = IB_ABI_MINOR,
                                .size = sizeof(struct ib_host),
                                .log = host_log,
                                .config_error = host_config_error,
                                .now_ms = ib_now_ms,
                                .monotonic_ms = ib_monotonic_ms,
                                .push_samples = ib_push_samples};
    gw->metrics = ib_metrics_new();
    gw->pollers = calloc(cfg->n_connections ? cfg->n_connections : 1, sizeof *gw->pollers);
    gw->commands = ib_command_new(gw);
    if (!gw->pollers || !gw->commands || !gw->metrics) {
        ib_diag_add(diag, NULL, NULL, "out of memory");
        ib_gateway_free(gw);
        return NULL;
    }
    ib_metrics_set_command_source(gw->metrics, command_counts, gw->commands);
    bool failed = false;
    for (size_t i = 0; i < cfg->n_connections; i++) {
        gw->pollers[gw->n_pollers] = ib_poller_new(gw, cfg, i, diag);
        if (gw->pollers[gw->n_pollers])
            gw->n_pollers++;
        else
            failed = true; /* keep going: report every connection's errors */
    }
    if (failed) {
        ib_gateway_free(gw);
        return NULL;
    }
    return gw;
}

int ib_gateway_north_start(struct ib_gateway *gw, struct ib_config *cfg)
{
    if (!cfg->has_north)
        return 0;
    if (!gw->store && (gw->store = ib_store_open(&cfg->store)))
        ib_metrics_set_store(gw->metrics, gw->store);
    if (!gw->store)
        return -1; /* logged */
    gw->north_cfg = ib_config_ref(cfg);
    gw->north = ib_north_new(&cfg->mqtt, cfg->gateway_id, gw->store);
    if (gw->north)
        ib_north_set_metrics(gw->north, gw->metrics);
    atomic_store(&ib_metrics_north(gw->metrics)->configured, true);
    if (gw->north && cfg->remote.enabled && gw->remote_fn) {
        char topic[512];
        struct ib_topic_vars v = {.gateway = cfg->gateway_id};
        if (ib_topic_expand(cfg->remote.topic, &v, topic, sizeof topic) > 0)
            ib_north_set_subscription(gw->north, topic, gw->remote_fn, gw->remote_ud);
    }
    if (gw->north)
        ib_cmd_north_attach(gw->commands, gw->north, cfg);
    if (gw->north && ib_gateway_spb_attach(gw, cfg, gw->north) < 0)
        return -1;
    if (!gw->north || ib_north_start(gw->north) < 0) {
        ib_err("cannot start the MQTT north");
        return -1;
    }
    if (gw->config_status)
        ib_north_set_config_status(gw->north, gw->config_status);
    return 0;
}

void ib_gateway_north_stop(struct ib_gateway *gw, bool flush)
{
    ib_cmd_north_detach(gw->commands);
    if (gw->north)
        ib_north_stop(gw->north, flush);
    ib_north_free(gw->north);
    gw->north = NULL;
    ib_gateway_spb_detach(gw);
    ib_config_free(gw->north_cfg);
    gw->north_cfg = NULL;
}

int ib_gateway_start(struct ib_gateway *gw)
{
    if (ib_gateway_north_start(gw, gw->cfg) < 0)
        return -1;
    gw->running = true;
    for (size_t i = 0; i < gw->n_pollers; i++)
        if (ib_poller_start(gw->pollers[i]) < 0)
            return -1;
    gw->rate_t0 = ib_monotonic_ms();
    return 0;
}

void ib_gateway_stop(struct ib_gateway *gw)
{
    if (!gw || !gw->running)
        return;
    for (size_t i = 0; i < gw->n_pollers; i++)
        ib_poller_signal_stop(gw->pollers[i]);
    for (size_t i = 0; i < gw->n_pollers; i++)
        ib_poller_join(gw->pollers[i]);
    if (gw->north)
        ib_north_stop(gw->north, true);
    gw->running = false;
}

/* The registry of a gateway whose poller was abandoned (its thread blocked in a plugin call
 * may still count into it): kept here, reachable, for the rest of the process. */
static struct ib_metrics *volatile abandoned_metrics; /* volatile: the store is kept */

void ib_gateway_free(struct ib_gateway *gw)
{
    if (!gw)
        return;
    ib_gateway_stop(gw);
    ib_gateway_north_stop(gw, false);
    for (size_t i = 0; i < gw->n_pollers; i++)
        if (!gw->pollers[i]->abandoned)
            ib_poller_free(gw->pollers[i]);
    free(gw->pollers);
    ib_command_free(gw->commands);
    if (gw->metrics)
        ib_metrics_set_store(gw->metrics, NULL);
    ib_store_close(gw->store);
    if (!gw->abandoned) /* an abandoned poller's thread may still count into it */
        ib_metrics_free(gw->metrics);
    else
        abandoned_metrics = gw->metrics; /* so it stays reachable, never freed */
    ib_config_free(gw->cfg);
    free(gw->config_status);
    free(gw);
}

void ib_gateway_set_remote_handler(struct ib_gateway *gw, ib_north_msg_fn fn, void *ud)
{
    gw->remote_fn = fn;
    gw->remote_ud = ud;
}

void ib_gateway_set_config_status(struct ib_gateway *gw, const char *json)
{
    free(gw->config_status);
    gw->config_status = json ? strdup(json) : NULL;
    if (gw->north && gw->config_status)
        ib_north_set_config_status(gw->north, gw->config_status);
}

struct ib_metrics *ib_gateway_metrics(struct ib_gateway *gw)
{
    return gw->metrics;
}

void ib_gateway_set_health(struct ib_gateway *gw, const char *topic, const char *json)
{
    if (gw->north)
        ib_north_set_health(gw->north, topic, json);
}

void ib_gateway_metrics_activate(struct ib_gateway *gw)
{
    size_t n = 0;
    for (size_t i = 0; i < gw->n_pollers; i++)
        n += gw->pollers[i]->n_groups;
    struct ib_metrics_group **rows = calloc(n ? n : 1, sizeof *rows);
    if (!rows)
        return; /* the rows of removed devices stay shown */
    n = 0;
    for (size_t i = 0; i < gw->n_pollers; i++)
        for (size_t k = 0; k < gw->pollers[i]->n_groups; k++)
            if (gw->pollers[i]->groups[k].mx)
                rows[n++] = gw->pollers[i]->groups[k].mx;
    ib_metrics_set_active(gw->metrics, rows, n);
    free(rows);
}

/* ---- status ---------------------------------------------------------------------------------- */

void ib_gateway_status(struct ib_gateway *gw, char *buf, size_t len)
{
    size_t up = 0, stalled = 0;
    uint64_t values = gw->values_retired;
    for (size_t i = 0; i < gw->n_pollers; i++) {
        stalled += ib_poller_stalled(gw->pollers[i]);
        up += atomic_load(&gw->pollers[i]->up);
        values += atomic_load(&gw->pollers[i]->values);
    }
    int64_t now = ib_monotonic_ms();
    if (now - gw->rate_t0 >= 1000) {
        gw->rate = (double)(values - gw->rate_v0) * 1000.0 / (double)(now - gw->rate_t0);
        gw->rate_t0 = now;
        gw->rate_v0 = values;
    }
    char server[300] = "";
    if (gw->north && gw->cfg->mqtt.n_server_uris && ib_north_connected(gw->north)) {
        char uri[256];
        ib_north_server(gw->north, uri, sizeof uri);
        snprintf(server, sizeof server, " to %s", uri); /* which of the servers */
    }
    char store[200] = "no store";
    if (gw->store)
        ib_store_describe(gw->store, store, sizeof store);
    snprintf(buf, len, "connections %zu/%zu up%s, %.0f values/s, broker %s%s, %s", up,
             gw->n_pollers, stalled ? " (a plugin call is stalled, see the log)" : "", gw->rate,
             !gw->north                      ? "none"
             : ib_north_connected(gw->north) ? "connected"
                                             : "disconnected",
             server, store);
}
