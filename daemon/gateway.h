/* The running gateway: plugin instances, one poller thread per connection, the durable store
 * and the north. Built from a validated configuration; the configuration must outlive it. */
#ifndef IB_GATEWAY_H
#define IB_GATEWAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "config.h"
#include "diag.h"
#include "metrics.h"
#include "north.h"

struct ib_gateway;

/* Create every connection's plugin instance (no I/O). The gateway takes a reference to cfg.
 * Semantic errors of plugins go to `diag` with their positions; then NULL is returned and nothing
 * is left allocated. */
struct ib_gateway *ib_gateway_create(struct ib_config *cfg, struct ib_diag *diag);
void ib_gateway_free(struct ib_gateway *gw); /* stops it first if running; accepts NULL */

/* Start the north and the pollers. Returns 0 or -1 (thread creation failed; logged). */
int ib_gateway_start(struct ib_gateway *gw);
/* Stop the pollers, then let the north deliver what is queued (bounded), then stop it. */
void ib_gateway_stop(struct ib_gateway *gw);

struct ib_reload_summary {
    size_t kept, restarted, added, removed;
    bool north_restarted;
};

/* Apply `next` (loaded and validated) to the gateway: connections whose settings did not
 * change keep polling untouched (no missed poll, their reporting state kept); changed ones are
 * restarted; removed ones stop; added ones start; the north reconnects only if its settings
 * or certificate files changed. The queue and its backlog stay. Plugin instances for the new
 * and changed connections are created before anything is touched: if one refuses (errors in
 * `diag`), -1 is returned and the running gateway is unchanged. The gateway takes its own
 * reference to `next`. Main thread only. */
int ib_gateway_reload(struct ib_gateway *gw, struct ib_config *next, struct ib_diag *diag,
                      struct ib_reload_summary *sum);

/* Where signed configuration documents received over MQTT go (set before start; used by every
 * north the gateway starts while remote_config is enabled). */
void ib_gateway_set_remote_handler(struct ib_gateway *gw, ib_north_msg_fn fn, void *ud);

/* The retained config-status message (JSON) the north publishes on each connect. */
void ib_gateway_set_config_status(struct ib_gateway *gw, const char *json);

/* Poll every group of every connection once, in order, and print a table to `out`. Returns
 * true when every sample was good (--once exits non-zero otherwise). */
bool ib_gateway_once(struct ib_gateway *gw, FILE *out);

/* The same, `polls` times `interval_ms` apart, as a table or as one JSON object per sample and
 * line (ironbridge-plugin-test). Main thread, gateway not started. */
struct ib_poll_opts {
    unsigned polls;
    int64_t interval_ms;
    bool json;
};
struct ib_poll_counts {
    size_t samples, good;
};
void ib_gateway_poll_print(struct ib_gateway *gw, const struct ib_poll_opts *o, FILE *out,
                           struct ib_poll_counts *counts);

/* The gateway's metrics registry: it lives as long as the gateway (metrics.h). */
struct ib_metrics *ib_gateway_metrics(struct ib_gateway *gw);
/* Show exactly the rows of the running pollers (after a reload removed some). Main thread. */
void ib_gateway_metrics_activate(struct ib_gateway *gw);

/* The retained health message (JSON) on `topic`, handed to the north if one runs. */
void ib_gateway_set_health(struct ib_gateway *gw, const char *topic, const char *json);

/* One line for a person (systemctl status): connections up/total, values/s, broker, queue. */
void ib_gateway_status(struct ib_gateway *gw, char *buf, size_t len);

/* True while every poller's heartbeat is younger than `max_age_ms` and none is stalled in a
 * plugin call past its call_timeout (the watchdog is fed only then). */
bool ib_gateway_healthy(struct ib_gateway *gw, int64_t max_age_ms);

/* The supervisor of plugin calls (docs/isolation.md); main thread, about once a second. A
 * poller in a plugin call for longer than its connection's call_timeout is marked stalled: logged
 * once, its connection counted down, and every tag of it queued once as bad (timeout). Returns
 * how many pollers are stalled now. */
size_t ib_gateway_supervise(struct ib_gateway *gw);

#endif
