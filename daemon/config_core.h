/* The schemas of the core's own sections, for the loader that fills them and the digests that
 * hash them (config_hash.c): each fills, at its entries' offsets, the struct named beside it.
 * Static data; any thread may read them. */
#ifndef IB_CONFIG_CORE_H
#define IB_CONFIG_CORE_H

#include <ironbridge/schema.h>

extern const struct ib_schema ib_config_gateway_schema;  /* gateway: struct ib_config */
extern const struct ib_schema ib_config_log_schema;      /* log: struct ib_config */
extern const struct ib_schema ib_config_watch_schema;    /* config: struct ib_config */
extern const struct ib_schema ib_config_remote_schema;   /* remote_config: struct ib_remote_cfg */
extern const struct ib_schema ib_config_mqtt_schema;     /* north.mqtt: struct ib_mqtt_cfg */
extern const struct ib_schema ib_config_tls_schema;      /* north.mqtt.tls: struct ib_mqtt_cfg */
extern const struct ib_schema ib_config_store_schema;    /* store: struct ib_store_cfg */
extern const struct ib_schema ib_config_commands_schema; /* commands: struct ib_commands_cfg */
extern const struct ib_schema ib_config_metrics_schema;  /* metrics: struct ib_metrics_cfg */

#endif
