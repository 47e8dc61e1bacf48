/* MQTT north through paho MQTTAsync. A fresh paho client is made for every connection attempt
 * and destroyed when the attempt fails or the connection drops: what was in flight then is sent
 * again from our queue (at least once), and no paho state or callback context outlives it. */
#include "north.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <MQTTAsync.h>

#include <ironbridge/log.h>

#include "log.h"
#include "tlscheck.h"
#include "topic.h"
#include "util.h"

enum nstate { N_DISCONNECTED, N_CONNECTING, N_CONNECTED };

/* A connection that holds this long (with nothing to deliver) ends a failure episode. */
#define NORTH_STABLE_MS 10000
/* The sendctx seq of the retained "online" published at each connect. */
#define SEQ_ONLINE UINT64_MAX

/* One per message handed to paho: the callback finds its record by seq. `gen` tells a callback
 * of an earlier client from one of the current. Listed so that what paho never calls back is
 * freed when the client is destroyed. */
struct sendctx {
    struct ib_north *n;
    uint64_t seq; /* 0: a status message, not a record; SEQ_ONLINE: the "online" status */
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
    char fail_msg[512];
    struct sendctx *ctxs;
    size_t inflight_bytes; /* payload bytes of ctxs: paho holds a copy of each */
    bool delivered;        /* the broker acknowledged a record on this connection */
    bool ready;            /* it acknowledged the "online" status: records may go */
    char tls_raw[256];     /* OpenSSL's last line of this attempt (logged at debug only) */
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
    int64_t up_since_ms; /* when the current connection came up */
    uint64_t rng;
    struct ib_episode ep; /* the broker connection failing: from the first failure until a
                             connection delivers (or holds for NORTH_STABLE_MS) */
    bool plain_warned;
    char password[IB_NORTH_PASSWORD_MAX + 1];
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
    const char *refused = r ? ib_north_connack_text(r->code) : NULL;
    if (refused)
        snprintf(why, sizeof why, "the broker refused the connection: CONNACK return code %d (%s)",
                 r->code, refused);
    else if (r && r->message)
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
    if (c->gen == n->gen && c->seq == SEQ_ONLINE) {
        n->ready |= ok;
    } else if (c->gen == n->gen && c->seq) {
        if (ok)
            ib_store_ack(n->q, c->seq);
        else
            ib_store_nack(n->q, c->seq);
        n->delivered |= ok;
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

/* OpenSSL's own line for a failed handshake, on paho's thread. It comes before the clear cause
 * (the diagnostic handshake, schedule_retry) and at every retry: kept for debug only. */
static int on_tls_error(const char *str, size_t len, void *u)
{
    struct ib_north *n = u;
    int l = (int)(len > 0 && str[len - 1] == '\n' ? len - 1 : len);
    pthread_mutex_lock(&n->mu);
    snprintf(n->tls_raw, sizeof n->tls_raw, "%.*s", l, str);
    pthread_mutex_unlock(&n->mu);
    ib_log(IB_LOG_DEBUG, NULL, NULL, NULL, "north: TLS with %s: %.*s", n->cfg->url, l, str);
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

int ib_north_read_password(const char *path, char *out, size_t len, char *err, size_t err_len)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, err_len, "cannot read password_file %s: %s", path, strerror(errno));
        return -1;
    }
    size_t n = fread(out, 1, len, f);
    fclose(f);
    size_t line = 0;
    while (line < n && out[line] != '\n' && out[line] != '\0')
        line++;
    bool ended = line < n || n < len; /* a newline (or NUL) or the end of the file came */
    if (line && out[line - 1] == '\r')
        line--;
    if (!ended || line >= len) {
        explicit_bzero(out, len);
        snprintf(err, err_len,
                 "password_file %s: its first line is longer than %zu bytes, the longest "
                 "password ironbridge sends; not connecting: put the password alone on the "
                 "first line",
                 path, len - 1);
        return -1;
    }
    out[line] = '\0';
    explicit_bzero(out + line, len - line);
    if (!line) {
        snprintf(err, err_len,
                 "password_file %s: its first line is empty; not connecting: put the password "
                 "on the first line",
                 path);
        return -1;
    }
    return 0;
}

const char *ib_north_connack_text(int code)
{
    static const char *const text[] = {
        [1] = "unacceptable protocol version",
        [2] = "client identifier rejected",
        [3] = "server unavailable",
        [4] = "bad user name or password",
        [5] = "not authorized",
    };
    return code >= 1 && code <= 5 ? text[code] : NULL;
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
    n->delivered = n->ready = false;
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
    char err[512];
    if (cfg->password_file && ib_north_read_password(cfg->password_file, n->password,
                                                     sizeof n->password, err, sizeof err) < 0) {
        set_failure(n, false, err); /* the file may be fixed: tried again with back-off */
        return;
    }
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
    } else if (!n->plain_warned) {
        n->plain_warned = true;
        ib_log(IB_LOG_WARNING, NULL, NULL, NULL,
               "north: connecting to %s in PLAINTEXT (allow_insecure: true): data and "
               "credentials travel unencrypted",
               cfg->url);
    }
    if (cfg->username)
        o.username = cfg->username;
    if (cfg->password_file)
        o.password = n->password;
    pthread_mutex_lock(&n->mu);
    n->state = N_CONNECTING;
    n->conn_failed = n->conn_lost = false;
    n->tls_raw[0] = '\0';
    pthread_mutex_unlock(&n->mu);
    ib_log(IB_LOG_DEBUG, NULL, NULL, NULL, "north: connecting to %s", cfg->url);
    rc = MQTTAsync_connect(n->client, &o);
    if (rc != MQTTASYNC_SUCCESS)
        set_failure(n, false, MQTTAsync_strerror(rc));
}

/* A code for a failure's cause: another text is another cause (ib_episode). */
static long cause_code(bool lost, const char *why)
{
    uint32_t h = lost ? 2166136261u : 2166136262u;
    for (const unsigned char *p = (const unsigned char *)why; *p; p++)
        h = (h ^ *p) * 16777619u;
    return (long)h;
}

/* paho says only "TCP/TLS connect failure" for a refused certificate: find out why with a
 * handshake of our own, so that the log tells a person what to fix. */
static const char *clear_cause(struct ib_north *n, bool lost, const char *why, char *buf,
                               size_t len)
{
    if (lost || !n->cfg->tls || strstr(why, "CONNACK") || strstr(why, "password_file"))
        return why;
    if (ib_tls_diagnose(n->cfg, 3000, buf, len) < 0)
        return buf;
    pthread_mutex_lock(&n->mu); /* our handshake passed, paho's did not: OpenSSL's line helps */
    bool raw = n->tls_raw[0];
    if (raw)
        snprintf(buf, len, "%s (OpenSSL: %s)", why, n->tls_raw);
    pthread_mutex_unlock(&n->mu);
    return raw ? buf : why;
}

/* A connection attempt failed or a connection was lost: log it as one episode (its start, a
 * change of cause, a reminder every 10 min; repeats are counted) and schedule the next try with
 * capped, jittered back-off. */
static void schedule_retry(struct ib_north *n, bool lost, const char *why_in)
{
    int64_t delay =
        ib_backoff_ms(n->cfg->reconnect_min_ms, n->cfg->reconnect_max_ms, n->attempt, &n->rng);
    n->attempt++;
    char buf[512];
    const char *why = clear_cause(n, lost, why_in, buf, sizeof buf);
    int64_t now = ib_monotonic_ms();
    const char *url = n->cfg->url;
    switch (ib_episode_fail(&n->ep, cause_code(lost, why), now)) {
    case IB_EPISODE_STARTED:
        if (lost)
            ib_log(IB_LOG_WARNING, NULL, NULL, NULL,
                   "north: connection to %s lost: %s; unacknowledged messages will be sent "
                   "again; reconnecting (repeats are counted, not logged, until a connection "
                   "delivers again)",
                   url, why);
        else
            ib_log(IB_LOG_ERR, NULL, NULL, NULL,
                   "north: cannot connect to the broker %s: %s; retrying in %.1f s (repeats "
                   "are counted, not logged, until a connection delivers again)",
                   url, why, (double)delay / 1000.0);
        break;
    case IB_EPISODE_CHANGED:
        ib_log(IB_LOG_ERR, NULL, NULL, NULL,
               "north: still no working connection to %s, now: %s%s (%" PRIu64
               " failures in %" PRId64 " s)",
               url, lost ? "connection lost: " : "", why, n->ep.count,
               ib_episode_age_s(&n->ep, now));
        break;
    case IB_EPISODE_REMIND:
        ib_log(IB_LOG_ERR, NULL, NULL, NULL,
               "north: still no working connection to %s: %s%s (%" PRIu64 " failures in %" PRId64
               " s); retrying",
               url, lost ? "connection lost: " : "", why, n->ep.count,
               ib_episode_age_s(&n->ep, now));
        break;
    default:
        ib_log(IB_LOG_DEBUG, NULL, NULL, NULL, "north: %s %s: %s; retrying in %.1f s",
               lost ? "lost" : "cannot connect to", url, why, (double)delay / 1000.0);
        break;
    }
    n->next_attempt_ms = now + delay;
}

static void on_connected(struct ib_north *n)
{
    atomic_store(&n->connected, true);
    n->up_since_ms = ib_monotonic_ms();
    if (!n->ep.active) {
        ib_log(IB_LOG_INFO, NULL, NULL, NULL, "north: connected to %s", n->cfg->url);
        n->attempt = 0;
    } else {
        ib_log(IB_LOG_DEBUG, NULL, NULL, NULL,
               "north: connected to %s (failing since %" PRId64 " s ago)", n->cfg->url,
               ib_episode_age_s(&n->ep, n->up_since_ms));
    }
    if (publish(n, n->status_topic, "online", 6, 1, 1, SEQ_ONLINE) != 0) {
        pthread_mutex_lock(&n->mu);
        n->ready = true; /* not handed to paho: do not wait for its acknowledgement */
        pthread_mutex_unlock(&n->mu);
    }
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

/* Records go to paho only once the broker acknowledged this connection's "online" status. A
 * broker that drops the connection at each PUBLISH then never holds records: paho 1.3.12 does
 * not free the messages it still holds unsent when the connection drops (upstream issue 1689;
 * MQTTAsync_destroy does not either), so what is lost to paho per dropped connection is bounded
 * by that one small status message. Costs one round trip per connect. */
static bool connection_ready(struct ib_north *n)
{
    pthread_mutex_lock(&n->mu);
    bool ready = n->ready;
    pthread_mutex_unlock(&n->mu);
    return ready;
}

/* The failure episode ends when a connection delivers a record, or holds NORTH_STABLE_MS with
 * nothing to deliver: a broker that takes the connection and drops it at each PUBLISH is
 * still failing. */
static void check_stable(struct ib_north *n, int64_t now)
{
    if (!n->ep.active)
        return;
    pthread_mutex_lock(&n->mu);
    bool delivered = n->delivered;
    pthread_mutex_unlock(&n->mu);
    if (!delivered && now - n->up_since_ms < NORTH_STABLE_MS)
        return;
    if (ib_episode_ok(&n->ep, now) == IB_EPISODE_ENDED)
        ib_log(IB_LOG_NOTICE, NULL, NULL, NULL,
               "north: connected to %s and delivering again, after %" PRIu64
               " failed attempts or dropped connections in %" PRId64 " s",
               n->cfg->url, n->ep.count, ib_episode_age_s(&n->ep, now));
    n->attempt = 0;
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
        char why[sizeof n->fail_msg];
        memcpy(why, n->fail_msg, sizeof why);
        pthread_mutex_unlock(&n->mu);
        int64_t now = ib_monotonic_ms();

        if (stopping && !flush_deadline)
            flush_deadline = now + (flush ? n->cfg->flush_timeout_ms : 0);
        if (failed || lost) {
            drop_client(n);
            schedule_retry(n, lost, why);
            continue;
        }
        if (st == N_CONNECTED && !atomic_load(&n->connected))
            on_connected(n);
        if (st == N_CONNECTED)
            check_stable(n, now);
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
        if (!connection_ready(n)) {
            if (stopping && now >= flush_deadline)
                break;
            wait_wake(n, 200);
            continue;
        }
        send_cfgstat(n);
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
