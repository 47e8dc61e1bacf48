/* The north: publishes the outbound queue's records to an MQTT broker through paho MQTTAsync,
 * over TLS with verification unless plaintext was allowed explicitly. One thread of its own
 * drives connect, reconnect with capped jittered back-off, and sending; pollers never wait on it.
 *
 * Threads and locks: the north thread, paho's threads (callbacks) and the main thread (start,
 * stop, config status). Two locks of the north and one of the store, always taken in this order:
 *   north.mu       the connection state and the contexts paho holds; a PUBACK callback holds it
 *                  while it calls ib_store_ack/nack (which take store.mu);
 *   store.mu       the store's state (store.h); the store calls the north's wake-up under it;
 *   north.wake_mu  the north thread's own wake-up (a flag and a condition variable): a leaf,
 *                  nothing is taken while it is held.
 * The north thread waits only on its wake-up, never on the store's lock or conditions; the
 * store wakes it (ib_store_set_notify) when records, acknowledgements or floors change. */
#ifndef IB_NORTH_H
#define IB_NORTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store.h"

enum ib_layout {
    IB_LAYOUT_BATCH = 0, /* one message per device group per poll */
    IB_LAYOUT_TAG = 1,   /* one message per tag */
};

enum ib_mqtt_version {
    IB_MQTT_V311 = 0,
    IB_MQTT_V5 = 1,
};

/* The north's settings: the north.mqtt section (docs/configuration.md). */
struct ib_mqtt_cfg {
    const char *url;
    const char *client_id;
    bool allow_insecure;
    int64_t qos;
    const char *topic;
    const char *status_topic;
    const char *config_status_topic;
    int64_t keepalive_s;
    int64_t connect_timeout_ms;
    int64_t reconnect_min_ms;
    int64_t reconnect_max_ms;
    int64_t max_inflight;
    int64_t flush_timeout_ms;
    int32_t layout;  /* enum ib_layout */
    int32_t version; /* enum ib_mqtt_version */
    const char *username;
    const char *password_file;
    /* tls: */
    const char *ca, *ca_path, *cert, *key;
    int64_t max_inflight_bytes;
    int64_t linger_ms;
    /* derived: */
    bool tls;
    const char *server_uri;   /* for paho: ssl://host:port or tcp://host:port */
    const char **server_uris; /* with north.mqtt.servers: server_uri, then those (NULL-ended) */
    int n_server_uris;        /* 0 without servers */
    const char *host;
    int port;
};

struct ib_north;

#define IB_MQTT_LINGER_DEFAULT "10" /* north.mqtt.linger_ms */

/* A payload format other than JSON (Sparkplug B, sparkplug_node.h) takes over the session's
 * own messages: the will, the subscriptions made before anything is published, the births, the
 * rendering of each stored record, the commands received and the last words of a clean stop.
 * All callbacks run on the north thread except `message` (paho's thread: copy and signal only).
 * The format and `ud` must outlive the north. */
struct ib_north_format {
    void *ud;
    /* Before each CONNECT: the will (bytes valid until the next call). */
    void (*will)(void *ud, const char **topic, const void **payload, size_t *len);
    /* The topics subscribed (QoS 1) at each connect before births: NULL-terminated. */
    const char *const *(*topics)(void *ud);
    /* Once subscribed, and again whenever want_births says so: publish the births. 0 or -1. */
    int (*births)(void *ud, struct ib_north *n);
    bool (*want_births)(void *ud);
    /* Publish stored record r (ib_north_publish with r->seq); 0, or a paho error code. */
    int (*send)(void *ud, struct ib_north *n, const struct ib_store_rec *r);
    /* A message on one of its topics; true when it was the format's. */
    bool (*message)(void *ud, const char *topic, const void *payload, size_t len);
    /* A clean stop while connected: the last message before DISCONNECT. */
    void (*death)(void *ud, struct ib_north *n);
    /* True when the session must end now (Sparkplug: the primary host went offline): the
     * north sends death, disconnects and connects again, to the next server if there are
     * several. May be NULL. */
    bool (*leave)(void *ud);
};
/* Set before ib_north_start. */
void ib_north_set_format(struct ib_north *n, const struct ib_north_format *f);
/* For a format's callbacks (north thread): hand a message to paho. `rec_seq` is the store's
 * record it carries (acknowledged when paho reports it sent), or 0. 0 or a paho error code. */
int ib_north_publish(struct ib_north *n, const char *topic, const void *payload, size_t len,
                     int qos, uint64_t rec_seq);

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
/* The same for the health message (JSON) on `topic` (both copied): published now if connected,
 * and again after every connect. */
void ib_north_set_health(struct ib_north *n, const char *topic, const char *json);

bool ib_north_connected(struct ib_north *n);

/* The server the current connection uses (paho's URI, copied into buf, "" when not connected).
 * Any thread. */
void ib_north_server(struct ib_north *n, char *buf, size_t len);
/* Count connections, records published and acknowledged and the PUBACK latency into `m`
 * (metrics.h), which must outlive the north. Set before ib_north_start. */
struct ib_metrics;
void ib_north_set_metrics(struct ib_north *n, struct ib_metrics *m);

/* The longest password sent (bytes of password_file's first line). */
#define IB_NORTH_PASSWORD_MAX 255

/* Read the password: the first line of `path` (without its \n or \r\n) into out (len bytes,
 * IB_NORTH_PASSWORD_MAX + 1). Returns 0, or -1 with a sentence in err (naming the file, never
 * its content) when the file cannot be read, its first line is empty or does not fit. */
int ib_north_read_password(const char *path, char *out, size_t len, char *err, size_t err_len);

/* The meaning of an MQTT 3.1.1 CONNACK return code 1..5 ("not authorized"), else NULL. */
const char *ib_north_connack_text(int code);

/* Subscribe to `topic` (QoS 1) on every connect and hand each message to fn, called on paho's
 * thread: it must only copy the payload and signal (never block). Set before ib_north_start. */
typedef void (*ib_north_msg_fn)(void *ud, const char *payload, size_t len);
void ib_north_set_subscription(struct ib_north *n, const char *topic, ib_north_msg_fn fn, void *ud);

/* A request received on the command subscription, with what MQTT 5 says about it. Everything
 * points into paho's message: valid only during the callback. */
struct ib_north_req {
    const char *payload;
    size_t len;
    bool retained;              /* held by the broker (a retained message) */
    const char *response_topic; /* MQTT 5 Response Topic, NUL-terminated, or NULL */
    const void *correlation;    /* MQTT 5 Correlation Data, or NULL */
    size_t correlation_len;
    const char *requester; /* MQTT 5 user property "requester", NUL-terminated, or NULL */
};
typedef void (*ib_north_req_fn)(void *ud, const struct ib_north_req *r);

/* Subscribe to `topic` (QoS 1) on every connect for commands; fn runs on paho's thread and must
 * only copy and hand over. Set before ib_north_start. */
void ib_north_set_requests(struct ib_north *n, const char *topic, ib_north_req_fn fn, void *ud);

/* Queue an answer (QoS 1, not retained, not kept in the store: an answer lost with the
 * connection is not sent again), with MQTT 5 Correlation Data when given (and the protocol is 5).
 * Any thread; copies everything; the north thread publishes it. 0, or -1 (no memory, or more
 * than IB_NORTH_MAX_ANSWERS wait). */
#define IB_NORTH_MAX_ANSWERS 4096
int ib_north_answer(struct ib_north *n, const char *topic, const char *payload, size_t len,
                    const void *correlation, size_t correlation_len);

#endif
