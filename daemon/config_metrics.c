/* The metrics section of the configuration: its schema and the checks that go beyond it (a
 * listen address that parses and is loopback unless allowed, TLS and basic-auth files). */
#include <string.h>

#include "config_core.h"
#include "config_loader.h"
#include "metrics_http.h"
#include "schema.h"
#include "topic.h"

static const struct ib_schema_entry metrics_entries[] = {
    IB_E_STR("listen", struct ib_metrics_cfg, listen, NULL,
             "host:port of the Prometheus endpoint, e.g. 127.0.0.1:9464 (default: off)"),
    {.key = "allow_remote",
     .type = IB_S_BOOL,
     .offset = offsetof(struct ib_metrics_cfg, allow_remote),
     .def = "false",
     .description = "allow a listen address other than loopback"},
    IB_E_STR("path", struct ib_metrics_cfg, path, "/metrics", "the one HTTP path answered"),
    IB_E_STR("tls_cert", struct ib_metrics_cfg, tls_cert, NULL,
             "PEM certificate: serve HTTPS (with tls_key)"),
    IB_E_STR("tls_key", struct ib_metrics_cfg, tls_key, NULL,
             "PEM private key of tls_cert (readable by its owner only)"),
    IB_E_STR("basic_auth_file", struct ib_metrics_cfg, basic_auth_file, NULL,
             "file whose first line is user:password; scrapes must then authenticate"),
    {.key = "health_interval",
     .type = IB_S_DURATION,
     .flags = IB_SF_RANGE,
     .offset = offsetof(struct ib_metrics_cfg, health_interval_ms),
     .def = "60s",
     .min = 0,
     .max = 86400000,
     .description = "period of the retained MQTT health message (0: off)"},
    IB_E_STR("health_topic", struct ib_metrics_cfg, health_topic, "ironbridge/{gateway}/health",
             "topic of the health message"),
    IB_E_STR("status_socket", struct ib_metrics_cfg, status_socket, NULL,
             "socket of `ironbridge status` (default: $RUNTIME_DIRECTORY/status.sock under "
             "systemd, none otherwise; \"\" turns it off)"),
    IB_E_INT("max_connections", struct ib_metrics_cfg, max_connections, "16", 1, 1024,
             "HTTP connections served at once"),
    IB_E_INT("timeout_s", struct ib_metrics_cfg, timeout_s, "10", 1, 3600,
             "an HTTP connection idle this long is closed"),
};
const struct ib_schema ib_config_metrics_schema = {sizeof(struct ib_metrics_cfg),
                                                   sizeof metrics_entries /
                                                       sizeof metrics_entries[0],
                                                   metrics_entries,
                                                   {0}};

static void check_listen(struct ib_loader *L, struct ynode *n, struct ib_metrics_cfg *mc)
{
    char err[200];
    struct ib_metrics_addr a;
    if (ib_metrics_http_parse_addr(mc->listen, &a, err, sizeof err) < 0) {
        ib_loader_err(L, ib_loader_get(L, n, "listen"), "metrics", "listen", "'%s': %s", mc->listen,
                      err);
        return;
    }
    if (!a.loopback && !mc->allow_remote)
        ib_loader_err(L, ib_loader_get(L, n, "listen"), "metrics", "listen",
                      "'%s' is not a loopback address: the metrics would be open to the "
                      "network; set allow_remote: true (ideally with tls_cert/tls_key and "
                      "basic_auth_file) or listen on 127.0.0.1",
                      mc->listen);
}

static void check_files(struct ib_loader *L, struct ynode *n, struct ib_metrics_cfg *mc)
{
    mc->tls_cert = ib_loader_resolve(L, mc->tls_cert);
    mc->tls_key = ib_loader_resolve(L, mc->tls_key);
    mc->basic_auth_file = ib_loader_resolve(L, mc->basic_auth_file);
    if (!mc->tls_cert != !mc->tls_key)
        ib_loader_err(L, n, "metrics", NULL, "tls_cert and tls_key go together: set both or none");
    if (mc->tls_cert)
        ib_loader_check_file(L, n, "metrics", "tls_cert", mc->tls_cert, false, false);
    if (mc->tls_key)
        ib_loader_check_file(L, n, "metrics", "tls_key", mc->tls_key, true, false);
    if (mc->basic_auth_file)
        ib_loader_check_file(L, n, "metrics", "basic_auth_file", mc->basic_auth_file, true, false);
}

void ib_loader_metrics(struct ib_loader *L, struct ynode *n, struct ib_metrics_cfg *mc)
{
    if (mc->listen)
        check_listen(L, n, mc);
    check_files(L, n, mc);
    if (!mc->path || mc->path[0] != '/')
        ib_loader_err(L, ib_loader_get(L, n, "path"), "metrics", "path", "'%s' must start with '/'",
                      mc->path ? mc->path : "");
    char what[64];
    const char *e = ib_topic_check(mc->health_topic, IB_TOPIC_GATEWAY, what, sizeof what);
    if (e)
        ib_loader_err(L, ib_loader_get(L, n, "health_topic"), "metrics", "health_topic",
                      "'%s': %s%s%s", mc->health_topic, e, *what ? ": " : "", what);
}
