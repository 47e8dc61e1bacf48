/* A diagnostic TLS handshake with the broker, made with OpenSSL directly when paho reports only
 * "TCP/TLS connect failure": it tells a person *why* (host name mismatch, unknown CA, expired). */
#ifndef IB_TLSCHECK_H
#define IB_TLSCHECK_H

#include <stddef.h>

#include "north.h"

/* Connect to cfg->host:cfg->port, handshake with the configured CA, client certificate and host
 * name check, and write one sentence into `out`. Returns 0 if the handshake and verification
 * succeeded, -1 otherwise. Blocks for at most `timeout_ms` per step. */
int ib_tlscheck_diagnose(const struct ib_mqtt_cfg *cfg, int timeout_ms, char *out, size_t len);

#endif
