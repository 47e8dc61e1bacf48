/* Canonical digests of a configuration: the SHA-256 of every resolved value (defaults included,
 * comments and formatting excluded), for the config-status message and to tell on reload which
 * parts changed. */
#ifndef IB_CONFIG_HASH_H
#define IB_CONFIG_HASH_H

#include <stddef.h>

#include "config.h"

#define IB_DIGEST_LEN 32

/* The whole configuration, as 64 lowercase hex digits and a NUL. */
void ib_config_hash_hex(const struct ib_config *cfg, char hex[65]);

/* One connection with its devices, groups and tags. */
void ib_config_conn_digest(const struct ib_config *cfg, size_t conn, unsigned char out[32]);

/* The north: MQTT settings plus the size and modification time of the certificate, key and
 * password files, so that a replaced certificate is picked up by a reload. */
void ib_config_north_digest(const struct ib_config *cfg, unsigned char out[32]);

/* What every poller's messages depend on beyond its connection: gateway id, topic, layout. */
void ib_config_poller_digest(const struct ib_config *cfg, unsigned char out[32]);

/* The store section (its settings apply when the store opens, at the daemon's start). */
void ib_config_store_digest(const struct ib_config *cfg, unsigned char out[32]);

#endif
