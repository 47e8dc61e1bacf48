/* The north: publishes the outbound queue's records to an MQTT broker through paho MQTTAsync,
 * over TLS with verification unless plaintext was allowed explicitly. One thread of its own
 * drives connect, reconnect with capped jittered back-off, and sending; pollers never wait on it.
 */
#ifndef IB_NORTH_H
#define IB_NORTH_H

#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "store.h"

struct ib_north;

/* `cfg` and `gateway_id` must outlive the north. Returns NULL on out-of-memory. */
struct ib_north *ib_north_new(const struct ib_mqtt_cfg *cfg, const char *gateway_id,
                              struct ib_store *q);
int ib_north_start(struct ib_north *n);
/* With `flush`, deliver what is queued for up to cfg->flush_timeout_ms (if connected); then
 * publish the retained "offline" (only when flushing: a reload reconnects at once), disconnect
 * and join the thread. What is not delivered stays in the queue. */
void ib_north_stop(struct ib_north *n, bool flush);

/* A retained message for the config-status topic (JSON, copied), published now if connected
 * and again after every connect. */
void ib_north_set_config_status(struct ib_north *n, const char *json);
void ib_north_free(struct ib_north *n);

bool ib_north_connected(struct ib_north *n);

/* Subscribe to `topic` (QoS 1) on every connect and hand each message to fn, called on paho's
 * thread: it must only copy the payload and signal (never block). Set before ib_north_start. */
typedef void (*ib_north_msg_fn)(void *ud, const char *payload, size_t len);
void ib_north_set_subscription(struct ib_north *n, const char *topic, ib_north_msg_fn fn, void *ud);

#endif
