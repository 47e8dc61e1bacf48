/* The daemon's observability: starts and stops the metrics listener and the status socket
 * with the configuration's metrics section, keeps the registry's info (gateway id, config
 * SHA-256) current, and hands the health message to the north every health_interval. Main
 * thread only. */
#ifndef IB_OBSERVE_H
#define IB_OBSERVE_H

#include <stdint.h>

#include "config.h"
#include "gateway.h"

struct ib_observe;

/* Start what `cfg` asks for; failures are logged (the gateway runs without them). NULL only
 * on out-of-memory. */
struct ib_observe *ib_observe_start(struct ib_gateway *gw, const struct ib_config *cfg,
                                    const char *config_sha);
/* After a reload: restart the listener and the socket if their settings changed. */
void ib_observe_reload(struct ib_observe *o, const struct ib_config *cfg, const char *config_sha);
/* About once a second: rates, and the health message when due. */
void ib_observe_tick(struct ib_observe *o, const struct ib_config *cfg, int64_t now_ms);
void ib_observe_stop(struct ib_observe *o); /* accepts NULL */

#endif
