/* Private to the north's files (north*.c): the north's state and what one file calls in
 * another. Lock order and threads: north.h. */
#ifndef IB_NORTH_IMPL_H
#define IB_NORTH_IMPL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <MQTTAsync.h>

#include <ironbridge/log.h>

#include "metrics.h"
#include "north.h"

enum nstate { N_DISCONNECTED, N_CONNECTING, N_CONNECTED };

/* A connection that holds this long (with nothing to deliver) ends a failure episode. */
#define NORTH_STABLE_MS 10000
/* The sendctx seq of the retained "online" published at each connect. */
#define SEQ_ONLINE UINT64_MAX
/* A linger ends early when this many records were queued during it: a continuous group holds its
 * next poll while more than 8 records wait (poller.c), so the linger must never gather more (a
 * 10 ms linger without this bound halved the S7 continuous workload: 0.83 against 1.53 M values/s).
 */
#define NORTH_LINGER_BATCH 8u

/* One per message handed to paho: the callback finds its record by seq. `gen` tells a callback
 * of an earlier client from one of the current. Listed so that what paho never calls back is
 * freed when the client is destroyed. */
struct sendctx {
    struct ib_north *n;
    uint64_t seq; /* 0: a status message, not a record; SEQ_ONLINE: the "online" status */
    size_t len;   /* payload bytes, counted in n->inflight_bytes while paho holds it */
    unsigned gen;
    int64_t t0_us; /* handed to paho (monotonic), for the PUBACK latency */
    struct sendctx *prev, *next;
};

struct north_answer; /* north_answer.c */

struct ib_north {
    const struct ib_mqtt_cfg *cfg;
    struct ib_store *q;
    char status_topic[512];
    char cfgstat_topic[512];
    char sub_topic[512];   /* empty: no subscription */
    struct ib_metrics *mx; /* counted into when set (NULL: not counted) */
    ib_north_msg_fn sub_fn;
    const struct ib_north_format *fmt; /* NULL: JSON */
    atomic_bool fmt_subscribed;        /* the format's subscriptions were acknowledged */
    void *sub_ud;
    char req_topic[512]; /* commands (ib_north_set_requests); empty: none */
    ib_north_req_fn req_fn;
    void *req_ud;
    pthread_t thread;
    bool started;

    pthread_mutex_t mu; /* guards the fields below, touched by paho's threads and ours */
    enum nstate state;
    unsigned gen;
    bool conn_failed, conn_lost, stopping, flush;
    char *cfgstat;     /* retained config-status payload */
    bool cfgstat_sent; /* published on the current connection */
    char *health;      /* retained health message and its topic (metrics_report.h) */
    char *health_topic;
    bool health_sent;
    char fail_msg[512];
    char server[256];     /* the URI of the server connected to (from paho's connect answer) */
    unsigned server_skip; /* north thread: servers to rotate past at the next connect */
    struct sendctx *ctxs;
    size_t inflight_bytes; /* payload bytes of ctxs: paho holds a copy of each */
    bool delivered;        /* the broker acknowledged a record on this connection */
    bool ready;            /* it acknowledged the "online" status: records may go */
    char tls_raw[256];     /* OpenSSL's last line of this attempt (logged at debug only) */
    struct north_answer *ans_head, *ans_tail; /* answers to commands, to publish */
    size_t ans_n;
    atomic_bool connected;

    /* The north thread's own wake-up: paho's callbacks, the store (ib_store_set_notify) and the
     * main thread set `woken` and signal; the north thread waits here between its steps. A leaf
     * lock: nothing else is taken while it is held (lock order in north.h). */
    pthread_mutex_t wake_mu;
    pthread_cond_t wake_cv;
    bool woken;
    /* The north thread gathers a batch (north.mqtt.linger_ms): records queued meanwhile do not
     * wake it, it looks when the linger ends or when NORTH_LINGER_BATCH of them came (a
     * continuous group holds its polls while more than 8 records wait: poller.c). */
    atomic_bool lingering;
    atomic_uint lingered;

    /* north thread only: */
    MQTTAsync client;
    unsigned attempt;
    int64_t next_attempt_ms;
    int64_t up_since_ms; /* when the current connection came up */
    uint64_t rng;
    struct ib_episode ep; /* the broker connection failing: from the first failure until a
                             connection delivers (or holds for NORTH_STABLE_MS) */
    bool plain_warned;
    char password[IB_NORTH_PASSWORD_MAX + 1];
};

/* north.c: the north thread, its wake-up and the public life cycle. */
void north_wake(struct ib_north *n); /* any thread, any lock held */

/* north_receive.c: incoming messages. */
/* paho's threads: the message-arrived callback (its context is n). */
int north_on_message(void *ctx, char *topic, int topic_len, MQTTAsync_message *m);

/* north_send.c: handing messages to paho, their acknowledgements, the in-flight limit. */
/* The north thread: publish through a new send context (seq: the record's; 0: a status message;
 * SEQ_ONLINE: the "online" status); 0, -1 (no memory) or paho's error code. */
int north_publish(struct ib_north *n, const char *topic, const void *payload, size_t len, int qos,
                  int retained, uint64_t seq);
/* The north thread: the same with MQTT 5 properties (NULL: none; paho copies them). */
int north_publish_props(struct ib_north *n, const char *topic, const void *payload, size_t len,
                        int qos, int retained, uint64_t seq, MQTTProperties *props);
/* The north thread: how many records may be in flight now. */
unsigned north_inflight_limit(struct ib_north *n);

/* north_session.c: the session on a connection. */
/* The north thread, once paho says connected: the "online" status or the format's
 * subscriptions, and our subscriptions. */
void north_on_connected(struct ib_north *n);
/* The north thread: whether records may go (the broker acknowledged "online"; takes n->mu). */
bool north_connection_ready(struct ib_north *n);
/* The north thread, with a payload format: its births when due; true when records may go. */
bool north_fmt_ready(struct ib_north *n);
/* The north thread: a clean DISCONNECT, waiting up to 1 s for it to go out. */
void north_disconnect(struct ib_north *n);
/* The north thread: destroy the paho client and what it held; rewind the store. */
void north_drop_client(struct ib_north *n);

/* north_retained.c: the retained config-status and health messages. */
/* The north thread, connected and ready: publish each if it changed or is not yet sent on this
 * connection. */
void north_send_cfgstat(struct ib_north *n);
void north_send_health(struct ib_north *n);

/* north_answer.c: answers to commands. */
/* The north thread, connected and ready: publish the queued answers. */
void north_send_answers(struct ib_north *n);
/* ib_north_free's thread, after the north thread ended: free the answers still queued. */
void north_answers_free(struct ib_north *n);

/* north_connect.c: connecting, and the failure episode of the connection. */
/* Record a failure for the north thread to act on (any thread; takes n->mu). */
void north_set_failure(struct ib_north *n, bool lost, const char *why);
/* The north thread: a fresh paho client and its connect. */
void north_start_connect(struct ib_north *n);
/* The north thread: log the failure as part of its episode, schedule the next attempt. */
void north_schedule_retry(struct ib_north *n, bool lost, const char *why);
/* The north thread, while connected: end the episode once the connection delivers. */
void north_check_stable(struct ib_north *n, int64_t now);

#endif
