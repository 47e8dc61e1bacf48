/* MQTT north through paho MQTTAsync. A fresh paho client is made for every connection attempt
 * and destroyed when the attempt fails or the connection drops: what was in flight then is sent
 * again from our queue (at least once), and no paho state or callback context outlives it. */
#include "north.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <MQTTAsync.h>

#include "log.h"
#include "tlscheck.h"
#include "topic.h"
#include "util.h"

enum nstate { N_DISCONNECTED, N_CONNECTING, N_CONNECTED };

/* One per message handed to paho: the callback finds its record by seq. `gen` tells a callback
 * of an earlier client from one of the current. Listed so that what paho never calls back is
 * freed when the client is destroyed. */
struct sendctx {
    struct ib_north *n;
    uint64_t seq; /* 0: a status message, not a record */
    size_t len;   /* payload bytes, counted in n->inflight_bytes while paho holds it */
    unsigned gen;
    struct sendctx *prev, *next;
};

struct ib_north {
    const struct ib_mqtt_cfg *cfg;
    struct ib_store *q;
    char status_topic[512];
    char cfgstat_topic[512];
    char sub_topic[512]; /* empty: no subscription */
    ib_north_msg_fn sub_fn;
    void *sub_ud;
    pthread_t thread;
    bool started;

    pthread_mutex_t mu; /* guards the fields below, touched by paho's threads and ours */
    enum nstate state;
    unsigned gen;
    bool conn_failed, conn_lost, stopping, flush;
    char *cfgstat;     /* retained config-status payload */
    bool cfgstat_sent; /* published on the current connection */
    char fail_msg[256];
    struct sendctx *ctxs;
    size_t inflight_bytes; /* payload bytes of ctxs: paho holds a copy of each */
    atomic_bool connected;

    /* The north thread's own wake-up: paho's callbacks, the store (ib_store_set_notify) and the
     * main thread set `woken` and signal; the north thread waits here between its steps. A leaf
     * lock: nothing else is taken while it is held (lock order in north.h). */
    pthread_mutex_t wake_mu;
    pthread_cond_t wake_cv;
    bool woken;

    /* north thread only: */
    MQTTAsync client;
    unsigned attempt;
    int64_t next_attempt_ms;
    uint64_t rng;
    struct ib_ratelimit rl_fail, rl_tls;
    char password[256];
};

/* Any thread, with or without n->mu or store.mu held. */
static void wake(struct ib_north *n)
{
    pthread_mutex_lock(&n->wake_mu);
    n->woken = true;
    pthread_cond_signal(&n->wake_cv);
    pthread_mutex_unlock(&n->wake_mu);
}

static void wake_from_store(void *ud)
{
    wake(ud);
}

/* The north thread: wait up to ms for a wake-up (one since the last wait counts). */
static void wait_wake(struct ib_north *n, int64_t ms)
{
    struct timespec dl = ib_deadline_ms(ms > 0 ? ms : 0);
    pthread_mutex_lock(&n->wake_mu);
    while (!n->woken && pthread_cond_timedwait(&n->wake_cv, &n->wake_mu, &dl) == 0)
        ;
    n->woken = false;
    pthread_mutex_unlock(&n->wake_mu);
}

/* ---- paho callbacks (paho's threads) --------------------------------------------------------- */

static void on_connect_ok(void *ctx, MQTTAsync_successData *r)
{
    (void)r;
    struct ib_north *n = ctx;
    pthread_mutex_lock(&n->mu);
    if (n->state == N_CONNECTING)
        n->state = N_CONNECTED;
    pthread_mutex_unlock(&n->mu);
    wake(n);
}

/* Record a failure for the north thread to act on (any thread). */
static void set_failure(struct ib_north *n, bool lost, const char *why)
{
    pthread_mutex_lock(&n->mu);
    if (lost)
        n->conn_lost = true;
    else
        n->conn_failed = true;
    snprintf(n->fail_msg, sizeof n->fail_msg, "%s", why);
    pthread_mutex_unlock(&n->mu);
    wake(n);
}

static void on_connect_fail(void *ctx, MQTTAsync_failureData *r)
{
    char why[256];
    if (r && r->message)
        snprintf(why, sizeof why, "%s", r->message);
    else if (r)
        snprintf(why, sizeof why, "%s (code %d)", MQTTAsync_strerror(r->code), r->code);
    else
        snprintf(why, sizeof why, "connect failed");
    set_failure(ctx, false, why);
}

static void on_conn_lost(void *ctx, char *cause)
{
    set_failure(ctx, true, cause ? cause : "connection lost");
}

static int on_message(void *ctx, char *topic, int topic_len, MQTTAsync_message *m)
{
    struct ib_north *n = ctx;
    size_t tl = topic_len > 0 ? (size_t)topic_len : strlen(topic);
    if (n->sub_fn && tl == strlen(n->sub_topic) && memcmp(topic, n->sub_topic, tl) == 0 &&
        m->payloadlen >= 0)
        n->sub_fn(n->sub_ud, m->payload, (size_t)m->payloadlen);
    MQTTAsync_freeMessage(&m);
    MQTTAsync_free(topic);
    return 1;
}

/* Take `c` off the list of contexts paho holds; n->mu is held. */
static void ctx_unlink(struct ib_north *n, struct sendctx *c)
{
    n->inflight_bytes -= c->len;
    if (c->prev)
        c->prev->next = c->next;
    else
        n->ctxs = c->next;
    if (c->next)
        c->next->prev = c->prev;
}

static void ctx_done(struct sendctx *c, bool ok)
{
    struct ib_north *n = c->n;
    pthread_mutex_lock(&n->mu);
    if (c->gen == n->gen && c->seq) {
        if (ok)
            ib_store_ack(n->q, c->seq);
        else
            ib_store_nack(n->q, c->seq);
    }
    ctx_unlink(n, c);
    pthread_mutex_unlock(&n->mu);
    free(c);
}

static void on_sent(void *ctx, MQTTAsync_successData *r)
{
    (void)r;
    ctx_done(ctx, true);
}

static void on_send_fail(void *ctx, MQTTAsync_failureData *r)
{
    (void)r;
    ctx_done(ctx, false);
}

static int on_tls_error(const char *str, size_t len, void *u)
{
    struct ib_north *n = u;
    /* Called on paho's thread during the handshake; the rate limit is ours alone there. */
    pthread_mutex_lock(&n->mu);
    int ok = ib_ratelimit_ok(&n->rl_tls, ib_monotonic_ms());
    pthread_mutex_unlock(&n->mu);
    if (ok >= 0)
        ib_log(IB_LOG_ERR, NULL, NULL, NULL, "north: TLS with %s failed: %.*s", n->cfg->url,
               (int)(len > 0 && str[len - 1] == '\n' ? len - 1 : len), str);
    return 0;
}

/* ---- the north thread ------------------------------------------------------------------------ */

/* How many records may be in flight now: max_inflight, or, while the payloads paho holds reach
 * max_inflight_bytes, only those already in flight (so the next waits for an acknowledgement;
 * one record is always let through). Large records must not make paho hold max_inflight copies
 * of themselves: 256 records of 480 KB were 123 MB of RSS. */
static unsigned inflight_limit(struct ib_north *n)
{
    pthread_mutex_lock(&n->mu);
    bool full = n->inflight_bytes >= (size_t)n->cfg->max_inflight_bytes;
    pthread_mutex_unlock(&n->mu);
    if (!full)
        return (unsigned)n->cfg->max_inflight;
    struct ib_store_stats st;
    ib_store_stats(n->q, &st);
    return st.inflight ? (unsigned)st.inflight : 1;
}

static int read_secret(const char *path, char *out, size_t len)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t n = fread(out, 1, len - 1, f);
    fclose(f);
    out[n] = '\0';
    while (n && (out[n - 1] == '\n' || out[n - 1] == '\r'))
        out[--n] = '\0';
    return 0;
}

static struct sendctx *ctx_new(struct ib_north *n, uint64_t seq, size_t len)
{
    struct sendctx *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->n = n;
    c->seq = seq;
    c->len = len;
    pthread_mutex_lock(&n->mu);
    c->gen = n->gen;
    n->inflight_bytes += len;
    c->next = n->ctxs;
    if (n->ctxs)
        n->ctxs->prev = c;
    n->ctxs = c;
    pthread_mutex_unlock(&n->mu);
    return c;
}

static int publish(struct ib_north *n, const char *topic, const void *payload, size_t len, int qos,
                   int retained, uint64_t seq)
{
    struct sendctx *c = ctx_new(n, seq, len);
    if (!c)
        return -1;
    MQTTAsync_message m = MQTTAsync_message_initializer;
    m.payload = (void *)payload;
    m.payloadlen = (int)len;
    m.qos = qos;
    m.retained = retained;
    MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;
    ro.onSuccess = on_sent;
    ro.onFailure = on_send_fail;
    ro.context = c;
    int rc = MQTTAsync_sendMessage(n->client, topic, &m, &ro);
    if (rc != MQTTASYNC_SUCCESS) {
        /* paho did not take it, so it will not call back. */
        pthread_mutex_lock(&n->mu);
        ctx_unlink(n, c);
        pthread_mutex_unlock(&n->mu);
        free(c);
        return rc;
    }
    return 0;
}

/* Destroy the paho client: no callback of it can run afterwards, so its contexts go too. */
static void drop_client(struct ib_north *n)
{
    if (n->client)
        MQTTAsync_destroy(&n->client);
    n->client = NULL;
    pthread_mutex_lock(&n->mu);
    n->gen++;
    struct sendctx *c = n->ctxs;
    n->ctxs = NULL;
    n->inflight_bytes = 0;
    n->state = N_DISCONNECTED;
    n->conn_failed = n->conn_lost = false;
    pthread_mutex_unlock(&n->mu);
    atomic_store(&n->connected, false);
    while (c) {
        struct sendctx *next = c->next;
        free(c);
        c = next;
    }
    ib_store_rewind(n->q);
}

static void start_connect(struct ib_north *n)
{
    const struct ib_mqtt_cfg *cfg = n->cfg;
    MQTTAsync_createOptions co = MQTTAsync_createOptions_initializer;
    co.sendWhileDisconnected = 0; /* our queue holds data while offline, not paho's buffer */
    /* paho counts messages not yet written against maxBufferedMessages even while connected
     * (default 100): below the in-flight window it refuses sends during a fast replay. */
    co.maxBufferedMessages = (int)cfg->max_inflight + 16;
    int rc = MQTTAsync_createWithOptions(&n->client, cfg->server_uri, cfg->client_id,
                                         MQTTCLIENT_PERSISTENCE_NONE, NULL, &co);
    if (rc != MQTTASYNC_SUCCESS) {
        ib_log(IB_LOG_ERR, NULL, NULL, NULL, "north: cannot create an MQTT client for %s: %s",
               cfg->url, MQTTAsync_strerror(rc));
        n->client = NULL;
        n->next_attempt_ms = ib_monotonic_ms() + cfg->reconnect_max_ms;
        return;
    }
    MQTTAsync_setCallbacks(n->client, n, on_conn_lost, on_message, NULL);

    MQTTAsync_connectOptions o = MQTTAsync_connectOptions_initializer;
    o.keepAliveInterval = (int)cfg->keepalive_s;
    o.cleansession = 1;
    o.connectTimeout = (int)((cfg->connect_timeout_ms + 999) / 1000);
    o.automaticReconnect = 0; /* we reconnect ourselves, with jitter and a fresh client */
    o.maxInflight = (int)cfg->max_inflight + 4;
    o.onSuccess = on_connect_ok;
    o.onFailure = on_connect_fail;
    o.context = n;
    MQTTAsync_willOptions will = MQTTAsync_willOptions_initializer;
    will.topicName = n->status_topic;
    will.message = "offline";
    will.retained = 1;
    will.qos = 1;
    o.will = &will;
    MQTTAsync_SSLOptions ssl = MQTTAsync_SSLOptions_initializer;
    if (cfg->tls) {
        ssl.trustStore = cfg->ca;
        ssl.CApath = cfg->ca_path;
        ssl.keyStore = cfg->cert;
        ssl.privateKey = cfg->key;
        ssl.enableServerCertAuth = 1;
        ssl.verify = 1;                            /* paho's default 0 skips the host name check */
        ssl.disableDefaultTrustStore = 1;          /* trust only the configured CA */
        ssl.sslVersion = MQTT_SSL_VERSION_DEFAULT; /* OpenSSL 3 refuses below TLS 1.2 */
        ssl.ssl_error_cb = on_tls_error;
        ssl.ssl_error_context = n;
        o.ssl = &ssl;
    } else {
        ib_log(IB_LOG_WARNING, NULL, NULL, NULL,
               "north: connecting to %s in PLAINTEXT (allow_insecure: true): data and "
               "credentials travel unencrypted",
               cfg->url);
    }
    if (cfg->username)
        o.username = cfg->username;
    if (cfg->password_file) {
        if (read_secret(cfg->password_file, n->password, sizeof n->password) < 0)
            ib_log(IB_LOG_ERR, NULL, NULL, NULL, "north: cannot read password_file %s: %s",
                   cfg->password_file, strerror(errno));
        else
            o.password = n->password;
    }
    pthread_mutex_lock(&n->mu);
    n->state = N_CONNECTING;
    n->conn_failed = n->conn_lost = false;
    pthread_mutex_unlock(&n->mu);
    ib_log(IB_LOG_DEBUG, NULL, NULL, NULL, "north: connecting to %s", cfg->url);
    rc = MQTTAsync_connect(n->client, &o);
    if (rc != MQTTASYNC_SUCCESS)
        set_failure(n, false, MQTTAsync_strerror(rc));
}

static void schedule_retry(struct ib_north *n, const char *why)
{
    int64_t delay =
        ib_backoff_ms(n->cfg->reconnect_min_ms, n->cfg->reconnect_max_ms, n->attempt, &n->rng);
    n->attempt++;
    int s = ib_ratelimit_ok(&n->rl_fail, ib_monotonic_ms());
    if (s >= 0) {
        /* paho says only "TCP/TLS connect failure" for a refused certificate: find out why with
         * a handshake of our own, so that the log tells a person what to fix. */
        char diag[512] = "";
        if (n->cfg->tls && ib_tls_diagnose(n->cfg, 3000, diag, sizeof diag) < 0)
            why = diag;
        ib_log(IB_LOG_ERR, NULL, NULL, NULL,
               "north: cannot connect to the broker %s: %s; retrying in %.1f s%s", n->cfg->url, why,
               (double)delay / 1000.0, s > 0 ? " (similar messages were suppressed)" : "");
    }
    n->next_attempt_ms = ib_monotonic_ms() + delay;
}

static void on_connected(struct ib_north *n)
{
    atomic_store(&n->connected, true);
    if (n->attempt > 0)
        ib_log(IB_LOG_NOTICE, NULL, NULL, NULL, "north: connected to %s after %u failed attempts",
               n->cfg->url, n->attempt);
    else
        ib_log(IB_LOG_INFO, NULL, NULL, NULL, "north: connected to %s", n->cfg->url);
    n->attempt = 0;
    publish(n, n->status_topic, "online", 6, 1, 1, 0);
    if (n->sub_topic[0]) {
        MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;
        int rc = MQTTAsync_subscribe(n->client, n->sub_topic, 1, &ro);
        if (rc != MQTTASYNC_SUCCESS)
            ib_log(IB_LOG_ERR, NULL, NULL, NULL, "north: cannot subscribe to %s: %s", n->sub_topic,
                   MQTTAsync_strerror(rc));
    }
    pthread_mutex_lock(&n->mu);
    n->cfgstat_sent = false;
    pthread_mutex_unlock(&n->mu);
}

/* Publish the config-status message if it changed or was not sent on this connection. */
static void send_cfgstat(struct ib_north *n)
{
    pthread_mutex_lock(&n->mu);
    char *p = n->cfgstat && !n->cfgstat_sent ? strdup(n->cfgstat) : NULL;
    n->cfgstat_sent = true;
    pthread_mutex_unlock(&n->mu);
    if (p && publish(n, n->cfgstat_topic, p, strlen(p), 1, 1, 0) != 0) {
        pthread_mutex_lock(&n->mu);
        n->cfgstat_sent = false;
        pthread_mutex_unlock(&n->mu);
    }
    free(p);
}

static void *north_main(void *arg)
{
    struct ib_north *n = arg;
    int64_t flush_deadline = 0;
    for (;;) {
        pthread_mutex_lock(&n->mu);
        enum nstate st = n->state;
        bool failed = n->conn_failed, lost = n->conn_lost, stopping = n->stopping;
        bool flush = n->flush;
        char why[256];
        memcpy(why, n->fail_msg, sizeof why);
        pthread_mutex_unlock(&n->mu);
        int64_t now = ib_monotonic_ms();

        if (stopping && !flush_deadline)
            flush_deadline = now + (flush ? n->cfg->flush_timeout_ms : 0);
        if (failed || lost) {
            drop_client(n);
            if (lost)
                ib_log(IB_LOG_WARNING, NULL, NULL, NULL,
                       "north: connection to %s lost: %s; unacknowledged messages will be sent "
                       "again",
                       n->cfg->url, why);
            schedule_retry(n, why);
            continue;
        }
        if (st == N_CONNECTED && !atomic_load(&n->connected))
            on_connected(n);
        if (st == N_CONNECTED)
            send_cfgstat(n);
        if (stopping) {
            struct ib_store_stats s;
            ib_store_stats(n->q, &s);
            if (s.queued == 0 || now >= flush_deadline || st != N_CONNECTED)
                break;
        }
        if (st == N_DISCONNECTED) {
            if (stopping)
                break;
            if (now >= n->next_attempt_ms)
                start_connect(n);
            else
                wait_wake(n, n->next_attempt_ms - now > 1000 ? 1000 : n->next_attempt_ms - now);
            continue;
        }
        if (st == N_CONNECTING) {
            /* Wait for paho's answer; the callbacks wake us. */
            if (stopping && now >= flush_deadline)
                break;
            wait_wake(n, 200);
            continue;
        }
        struct ib_store_rec r;
        int64_t wait_ms;
        if (!ib_store_next(n->q, inflight_limit(n), &r, &wait_ms)) {
            wait_wake(n, wait_ms > 0 && wait_ms < 200 ? wait_ms : 200);
            continue;
        }
        int rc = publish(n, r.topic, r.payload, r.len, (int)n->cfg->qos, 0, r.seq);
        if (rc != 0) {
            ib_store_nack(n->q, r.seq);
            if (rc == MQTTASYNC_DISCONNECTED) {
                set_failure(n, true, "disconnected while sending");
            } else {
                wait_wake(n, 50);
            }
        }
    }
    /* Leaving: say so while we can (not for a reconnect on reload), then disconnect cleanly
     * (no last will). */
    if (n->client && atomic_load(&n->connected)) {
        if (n->flush)
            publish(n, n->status_topic, "offline", 7, 1, 1, 0);
        MQTTAsync_disconnectOptions d = MQTTAsync_disconnectOptions_initializer;
        d.timeout = 1000;
        MQTTAsync_disconnect(n->client, &d);
        for (int i = 0; i < 20 && MQTTAsync_isConnected(n->client); i++) {
            struct timespec ts = {0, 50 * 1000000L};
            nanosleep(&ts, NULL);
        }
    }
    struct ib_store_stats s;
    ib_store_stats(n->q, &s);
    if (s.queued)
        ib_log(IB_LOG_WARNING, NULL, NULL, NULL,
               "north: stopping with %llu records not yet delivered to the broker; they stay "
               "in the store for the next start",
               (unsigned long long)s.queued);
    drop_client(n);
    return NULL;
}

/* paho initialises OpenSSL itself unless told not to, whether or not TLS is used: that runs
 * enough of libcrypto to keep 1.3 MB of it resident. OpenSSL 3 initialises itself when a TLS
 * connection first needs it. */
static void paho_init(void)
{
    MQTTAsync_init_options o = MQTTAsync_init_options_initializer;
    o.do_openssl_init = 0;
    MQTTAsync_global_init(&o);
}

struct ib_north *ib_north_new(const struct ib_mqtt_cfg *cfg, const char *gateway_id,
                              struct ib_store *q)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, paho_init);
    struct ib_north *n = calloc(1, sizeof *n);
    if (!n)
        return NULL;
    n->cfg = cfg;
    n->q = q;
    pthread_mutex_init(&n->mu, NULL);
    pthread_mutex_init(&n->wake_mu, NULL);
    ib_cond_init_monotonic(&n->wake_cv);
    n->rng = (uint64_t)ib_now_ms() ^ ((uint64_t)(uintptr_t)n << 16);
    n->rl_fail = (struct ib_ratelimit)IB_RATELIMIT_INIT(60000, 3);
    n->rl_tls = (struct ib_ratelimit)IB_RATELIMIT_INIT(60000, 6);
    struct ib_topic_vars v = {.gateway = gateway_id};
    if (ib_topic_expand(cfg->status_topic, &v, n->status_topic, sizeof n->status_topic) < 0)
        snprintf(n->status_topic, sizeof n->status_topic, "ironbridge/%s/status", gateway_id);
    if (ib_topic_expand(cfg->config_status_topic, &v, n->cfgstat_topic, sizeof n->cfgstat_topic) <
        0)
        snprintf(n->cfgstat_topic, sizeof n->cfgstat_topic, "ironbridge/%s/config", gateway_id);
    return n;
}

int ib_north_start(struct ib_north *n)
{
    ib_store_set_notify(n->q, wake_from_store, n);
    if (pthread_create(&n->thread, NULL, north_main, n) != 0) {
        ib_store_set_notify(n->q, NULL, NULL);
        return -1;
    }
    n->started = true;
    return 0;
}

void ib_north_set_config_status(struct ib_north *n, const char *json)
{
    char *p = strdup(json);
    if (!p)
        return;
    pthread_mutex_lock(&n->mu);
    free(n->cfgstat);
    n->cfgstat = p;
    n->cfgstat_sent = false;
    pthread_mutex_unlock(&n->mu);
    wake(n);
}

void ib_north_stop(struct ib_north *n, bool flush)
{
    if (!n || !n->started)
        return;
    pthread_mutex_lock(&n->mu);
    n->stopping = true;
    n->flush = flush;
    pthread_mutex_unlock(&n->mu);
    wake(n);
    pthread_join(n->thread, NULL);
    ib_store_set_notify(n->q, NULL, NULL);
    n->started = false;
}

void ib_north_free(struct ib_north *n)
{
    if (!n)
        return;
    ib_north_stop(n, false);
    free(n->cfgstat);
    pthread_mutex_destroy(&n->mu);
    pthread_mutex_destroy(&n->wake_mu);
    pthread_cond_destroy(&n->wake_cv);
    explicit_bzero(n->password, sizeof n->password);
    free(n);
}

void ib_north_set_subscription(struct ib_north *n, const char *topic, ib_north_msg_fn fn, void *ud)
{
    snprintf(n->sub_topic, sizeof n->sub_topic, "%s", topic);
    n->sub_fn = fn;
    n->sub_ud = ud;
}

bool ib_north_connected(struct ib_north *n)
{
    return n && atomic_load(&n->connected);
}
