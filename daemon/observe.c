/* The daemon's observability glue: the metrics listener, the status socket and the health
 * message, following the configuration's metrics section (observe.h). */
#include "observe.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "metrics_http.h"
#include "metrics_report.h"
#include "status_client.h"
#include "status_server.h"
#include "topic.h"

struct ib_observe {
    struct ib_gateway *gw;
    struct ib_metrics_http *http;
    struct ib_status_server *status;
    char sig[2048]; /* the settings the listener and the socket were started with */
    int64_t next_health_ms;
};

static void signature(const struct ib_metrics_cfg *c, char *buf, size_t len)
{
    snprintf(buf, len, "%s|%d|%s|%s|%s|%s|%s|%lld|%lld", c->listen ? c->listen : "-",
             c->allow_remote, c->path, c->tls_cert ? c->tls_cert : "-",
             c->tls_key ? c->tls_key : "-", c->basic_auth_file ? c->basic_auth_file : "-",
             c->status_socket ? c->status_socket : "(default)", (long long)c->max_connections,
             (long long)c->timeout_s);
}

static void start_services(struct ib_observe *o, const struct ib_metrics_cfg *c)
{
    char err[300];
    struct ib_metrics *m = ib_gateway_metrics(o->gw);
    if (c->listen && !(o->http = ib_metrics_http_start(c, m, err, sizeof err)))
        ib_err("metrics: %s; the gateway runs without its Prometheus endpoint", err);
    /* Unset: the socket lives in systemd's RuntimeDirectory; a daemon started by hand (or
     * by a test) does not take /run/ironbridge from the service. */
    char def[128];
    const char *sock = c->status_socket              ? c->status_socket
                       : getenv("RUNTIME_DIRECTORY") ? ib_status_client_default(def, sizeof def)
                                                     : "";
    if (*sock && !(o->status = ib_status_server_start(sock, m, err, sizeof err)))
        ib_warn("%s; `ironbridge status` cannot reach this daemon", err);
    signature(c, o->sig, sizeof o->sig);
}

static void stop_services(struct ib_observe *o)
{
    ib_metrics_http_stop(o->http);
    o->http = NULL;
    ib_status_server_stop(o->status);
    o->status = NULL;
}

struct ib_observe *ib_observe_start(struct ib_gateway *gw, const struct ib_config *cfg,
                                    const char *config_sha)
{
    struct ib_observe *o = calloc(1, sizeof *o);
    if (!o)
        return NULL;
    o->gw = gw;
    ib_metrics_set_info(ib_gateway_metrics(gw), cfg->gateway_id, config_sha);
    start_services(o, &cfg->metrics);
    return o;
}

void ib_observe_reload(struct ib_observe *o, const struct ib_config *cfg, const char *config_sha)
{
    if (!o)
        return;
    ib_metrics_set_info(ib_gateway_metrics(o->gw), cfg->gateway_id, config_sha);
    char sig[sizeof o->sig];
    signature(&cfg->metrics, sig, sizeof sig);
    if (strcmp(sig, o->sig) != 0) {
        stop_services(o);
        start_services(o, &cfg->metrics);
    }
    o->next_health_ms = 0; /* the new settings' health message at once */
}

static void publish_health(struct ib_observe *o, const struct ib_config *cfg, int64_t now_ms)
{
    char topic[512];
    struct ib_topic_vars v = {.gateway = cfg->gateway_id};
    if (ib_topic_expand(cfg->metrics.health_topic, &v, topic, sizeof topic) < 0)
        return;
    struct ib_buf b = {0};
    if (ib_metrics_report_json(ib_gateway_metrics(o->gw), &b, now_ms) == 0)
        ib_gateway_set_health(o->gw, topic, b.p);
    ib_buf_free(&b);
}

void ib_observe_tick(struct ib_observe *o, const struct ib_config *cfg, int64_t now_ms)
{
    if (!o)
        return;
    ib_metrics_tick(ib_gateway_metrics(o->gw), ib_monotonic_ms());
    int64_t iv = cfg->metrics.health_interval_ms;
    if (!iv || !cfg->has_north || now_ms < o->next_health_ms)
        return;
    /* the first one a few seconds after start, once the devices had a poll */
    if (!o->next_health_ms) {
        o->next_health_ms = now_ms + (iv < 5000 ? iv : 5000);
        return;
    }
    o->next_health_ms = now_ms + iv;
    publish_health(o, cfg, now_ms);
}

void ib_observe_stop(struct ib_observe *o)
{
    if (!o)
        return;
    stop_services(o);
    free(o);
}
