/* The running gateway: plugin instances, one poller thread per connection, the durable store
 * and the north. Built from a validated configuration; the configuration must outlive it. */
#ifndef IB_GATEWAY_H
#define IB_GATEWAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "config.h"
#include "diag.h"

struct ib_gateway;

/* Create every connection's plugin instance (no I/O). Semantic errors of plugins go to `diag`
 * with their positions; then NULL is returned and nothing is left allocated. */
struct ib_gateway *ib_gateway_create(const struct ib_config *cfg, struct ib_diag *diag);
void ib_gateway_free(struct ib_gateway *gw); /* stops it first if running; accepts NULL */

/* Start the north and the pollers. Returns 0 or -1 (thread creation failed; logged). */
int ib_gateway_start(struct ib_gateway *gw);
/* Stop the pollers, then let the north deliver what is queued (bounded), then stop it. */
void ib_gateway_stop(struct ib_gateway *gw);

/* Poll every group of every connection once, in order, and print a table to `out`. */
void ib_gateway_once(struct ib_gateway *gw, FILE *out);

/* One line for a person (systemctl status): connections up/total, values/s, broker, queue. */
void ib_gateway_status(struct ib_gateway *gw, char *buf, size_t len);

/* True while every poller's heartbeat is younger than `max_age_ms` (watchdog). */
bool ib_gateway_healthy(struct ib_gateway *gw, int64_t max_age_ms);

#endif
