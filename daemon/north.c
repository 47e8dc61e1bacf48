/* The north's thread and sending: takes records from the store and hands them to paho, tracks
 * their PUBACKs, publishes the status messages. A fresh paho client is made for every connection
 * attempt (north_connect.c) and destroyed when the attempt fails or the connection drops: what
 * was in flight then is sent again from our queue (at least once), and no paho state or
 * callback context outlives it. */
#include "north_impl.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "topic.h"
#include "util.h"

/* Any thread, with or without n->mu or store.mu held. */
void north_wake(struct ib_north *n)
{
    pthread_mutex_lock(&n->wake_mu);
    n->woken = true;
    pthread_cond_signal(&n->wake_cv);
    pthread_mutex_unlock(&n->wake_mu);
}

static void wake_from_store(void *ud)
{
    struct ib_north *n = ud;
    if (!atomic_load_explicit(&n->lingering, memory_order_relaxed))
        north_wake(n);
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

/* A string property of an MQTT 5 message, NUL-terminated into buf, or NULL. */
static const char *prop_string(MQTTProperties *props, enum MQTTPropertyCodes code, char *buf,
                               size_t len)
{
    MQTTProperty *p = MQTTProperties_getProperty(props, code);
    if (!p || p->value.data.len < 0 || (size_t)p->value.data.len >= len)
        return NULL;
    memcpy(buf, p->value.data.data, (size_t)p->value.data.len);
    buf[p->value.data.len] = '\0';
    return buf;
}

/* The user property "requester" of an MQTT 5 message, into buf, or NULL. */
static const char *prop_requester(MQTTProperties *props, char *buf, size_t len)
{
    for (int i = 0; i < props->count; i++) {
        MQTTProperty *p = &props->array[i];
        if (p->identifier != MQTTPROPERTY_CODE_USER_PROPERTY || p->value.data.len != 9 ||
            memcmp(p->value.data.data, "requester", 9) != 0 || p->value.value.len < 0 ||
            (size_t)p->value.value.len >= len)
            continue;
        memcpy(buf, p->value.value.data, (size_t)p->value.value.len);
        buf[p->value.value.len] = '\0';
        return buf;
    }
    return NULL;
}

static void deliver_request(struct ib_north *n, MQTTAsync_message *m)
{
    char rt[512], who[128];
    struct ib_north_req r = {
        .payload = m->payload, .len = (size_t)m->payloadlen, .retained = m->retained != 0};
    if (n->cfg->version == IB_MQTT_V5) {
        r.response_topic =
            prop_string(&m->properties, MQTTPROPERTY_CODE_RESPONSE_TOPIC, rt, sizeof rt);
        MQTTProperty *c =
            MQTTProperties_getProperty(&m->properties, MQTTPROPERTY_CODE_CORRELATION_DATA);
        if (c && c->value.data.len > 0) {
            r.correlation = c->value.data.data;
            r.correlation_len = (size_t)c->value.data.len;
        }
        r.requester = prop_requester(&m->properties, who, sizeof who);
    }
    n->req_fn(n->req_ud, &r);
}

int north_on_message(void *ctx, char *topic, int topic_len, MQTTAsync_message *m)
{
    struct ib_north *n = ctx;
    size_t tl = topic_len > 0 ? (size_t)topic_len : strlen(topic);
    if (n->fmt && m->payloadlen >= 0 && tl < 512) {
        char t[512]; /* paho's topic is not NUL-terminated when topic_len > 0 */
        memcpy(t, topic, tl);
        t[tl] = '\0';
        if (n->fmt->message(n->fmt->ud, t, m->payload, (size_t)m->payloadlen)) {
            MQTTAsync_freeMessage(&m);
            MQTTAsync_free(topic);
            return 1;
        }
    }
    if (n->sub_fn && tl == strlen(n->sub_topic) && memcmp(topic, n->sub_topic, tl) == 0 &&
        m->payloadlen >= 0)
        n->sub_fn(n->sub_ud, m->payload, (size_t)m->payloadlen);
    else if (n->req_fn && tl == strlen(n->req_topic) && memcmp(topic, n->req_topic, tl) == 0 &&
             m->payloadlen >= 0)
        deliver_request(n, m);
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

static void count_done(struct ib_north *n, const struct sendctx *c, bool ok)
{
    if (!n->mx)
        return;
    struct ib_metrics_north *mn = ib_metrics_north(n->mx);
    atomic_fetch_add_explicit(ok ? &mn->acked : &mn->failed, 1, memory_order_relaxed);
    if (ok)
        ib_metrics_hist_add(&mn->latency, ib_metrics_now_us() - c->t0_us);
}

static void ctx_done(struct sendctx *c, bool ok)
{
    struct ib_north *n = c->n;
    bool online = c->seq == SEQ_ONLINE, online_failed = false, status = !c->seq;
    pthread_mutex_lock(&n->mu);
    if (online) {
        online = c->gen == n->gen; /* still this connection's */
        n->ready |= online && ok;
        online_failed = online && !ok;
    } else if (c->gen == n->gen && c->seq) {
        if (ok)
            ib_store_ack(n->q, c->seq);
        else
            ib_store_nack(n->q, c->seq);
        n->delivered |= ok;
        count_done(n, c, ok);
    }
    ctx_unlink(n, c);
    pthread_mutex_unlock(&n->mu);
    free(c);
    if (online_failed) /* a connection that cannot take one message does not work */
        north_set_failure(n, true, "the broker did not take the online status message");
    else if (online || status)
        north_wake(n); /* records may go; answers to commands held back may go */
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

/* The same for MQTT 5, whose calls take the *5 callbacks. */
static void on_sent5(void *ctx, MQTTAsync_successData5 *r)
{
    (void)r;
    ctx_done(ctx, true);
}

static void on_send_fail5(void *ctx, MQTTAsync_failureData5 *r)
{
    (void)r;
    ctx_done(ctx, false);
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

static struct sendctx *ctx_new(struct ib_north *n, uint64_t seq, size_t len)
{
    struct sendctx *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->n = n;
    c->seq = seq;
    c->len = len;
    c->t0_us = ib_metrics_now_us();
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

static int publish_props(struct ib_north *n, const char *topic, const void *payload, size_t len,
                         int qos, int retained, uint64_t seq, MQTTProperties *props)
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
    if (n->cfg->version == IB_MQTT_V5) {
        ro.onSuccess5 = on_sent5;
        ro.onFailure5 = on_send_fail5;
        if (props)
            m.properties = *props;
    } else {
        ro.onSuccess = on_sent;
        ro.onFailure = on_send_fail;
    }
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
    if (n->mx && seq && seq != SEQ_ONLINE)
        atomic_fetch_add_explicit(&ib_metrics_north(n->mx)->published, 1, memory_order_relaxed);
    return 0;
}

static int publish(struct ib_north *n, const char *topic, const void *payload, size_t len, int qos,
                   int retained, uint64_t seq)
{
    return publish_props(n, topic, payload, len, qos, retained, seq, NULL);
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
    if (n->mx && atomic_load(&n->connected))
        ib_metrics_north_set_connected(n->mx, false, NULL);
    atomic_store(&n->connected, false);
    atomic_store(&n->fmt_subscribed, false);
    while (c) {
        struct sendctx *next = c->next;
        free(c);
        c = next;
    }
    ib_store_rewind(n->q);
}

static bool connection_ready(struct ib_north *n);

static void on_fmt_subscribed(void *ctx, MQTTAsync_successData *r)
{
    (void)r;
    struct ib_north *n = ctx;
    atomic_store(&n->fmt_subscribed, true);
    north_wake(n);
}

static void on_fmt_subscribe_fail(void *ctx, MQTTAsync_failureData *r)
{
    (void)r;
    north_set_failure(ctx, true, "the broker refused the subscriptions of the payload format");
}

/* A format subscribes before it publishes anything (its births wait for the SUBACK). */
static void fmt_subscribe(struct ib_north *n)
{
    const char *const *t = n->fmt->topics(n->fmt->ud);
    int count = 0, qos[8];
    while (count < 8 && t[count])
        qos[count++] = 1;
    MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;
    ro.onSuccess = on_fmt_subscribed;
    ro.onFailure = on_fmt_subscribe_fail;
    ro.context = n;
    int rc = MQTTAsync_subscribeMany(n->client, count, (char *const *)t, qos, &ro);
    if (rc != MQTTASYNC_SUCCESS)
        north_set_failure(n, true, "cannot subscribe to the payload format's topics");
}

/* The format ends the session (Sparkplug: primary host offline): its death, a clean DISCONNECT
 * (no will), then the next connect starts at the next server. */
static void fmt_leave(struct ib_north *n)
{
    n->fmt->death(n->fmt->ud, n);
    MQTTAsync_disconnectOptions d = MQTTAsync_disconnectOptions_initializer;
    d.timeout = 1000;
    MQTTAsync_disconnect(n->client, &d);
    for (int i = 0; i < 20 && MQTTAsync_isConnected(n->client); i++) {
        struct timespec ts = {0, 50 * 1000000L};
        nanosleep(&ts, NULL);
    }
    n->server_skip++;
    north_set_failure(n, true, "the payload format ended the session (primary host offline)");
}

/* A format's session: births once subscribed (then records may go), again when it asks. true
 * when records may go. */
static bool fmt_ready(struct ib_north *n)
{
    if (!atomic_load(&n->fmt_subscribed))
        return false;
    if (n->fmt->leave && n->fmt->leave(n->fmt->ud)) {
        fmt_leave(n);
        return false;
    }
    if ((!connection_ready(n) || n->fmt->want_births(n->fmt->ud)) &&
        n->fmt->births(n->fmt->ud, n) == 0) {
        pthread_mutex_lock(&n->mu);
        n->ready = true;
        pthread_mutex_unlock(&n->mu);
    }
    return connection_ready(n);
}

static void on_connected(struct ib_north *n)
{
    atomic_store(&n->connected, true);
    if (n->mx)
        ib_metrics_north_set_connected(n->mx, true, n->cfg->url);
    n->up_since_ms = ib_monotonic_ms();
    char srv[256];
    ib_north_server(n, srv, sizeof srv);
    if (n->cfg->n_server_uris)
        ib_log(IB_LOG_INFO, NULL, NULL, NULL, "north: connected to server %s", srv);
    if (!n->ep.active) {
        ib_log(IB_LOG_INFO, NULL, NULL, NULL, "north: connected to %s", n->cfg->url);
        n->attempt = 0;
    } else {
        ib_log(IB_LOG_DEBUG, NULL, NULL, NULL,
               "north: connected to %s (failing since %" PRId64 " s ago)", n->cfg->url,
               ib_episode_age_s(&n->ep, n->up_since_ms));
    }
    if (n->fmt)
        fmt_subscribe(n);
    else if (publish(n, n->status_topic, "online", 6, 1, 1, SEQ_ONLINE) != 0) {
        pthread_mutex_lock(&n->mu);
        n->ready = true; /* not handed to paho: do not wait for its acknowledgement */
        pthread_mutex_unlock(&n->mu);
    }
    const char *subs[] = {n->sub_topic, n->req_topic};
    for (int i = 0; i < 2; i++) {
        if (!subs[i][0])
            continue;
        MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;
        int rc = MQTTAsync_subscribe(n->client, subs[i], 1, &ro);
        /* Lost again before the SUBSCRIBE went out: part of the episode the loss already
         * logged; the next connection subscribes again. */
        if (rc != MQTTASYNC_SUCCESS)
            ib_log(rc == MQTTASYNC_DISCONNECTED ? IB_LOG_DEBUG : IB_LOG_ERR, NULL, NULL, NULL,
                   "north: cannot subscribe to %s: %s", subs[i], MQTTAsync_strerror(rc));
    }
    pthread_mutex_lock(&n->mu);
    n->cfgstat_sent = false;
    n->health_sent = false;
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

/* The same for the health message. */
static void send_health(struct ib_north *n)
{
    pthread_mutex_lock(&n->mu);
    bool due = n->health && n->health_topic && !n->health_sent;
    char *p = due ? strdup(n->health) : NULL, *t = due ? strdup(n->health_topic) : NULL;
    n->health_sent = true;
    pthread_mutex_unlock(&n->mu);
    if (p && t && publish(n, t, p, strlen(p), 1, 1, 0) != 0) {
        pthread_mutex_lock(&n->mu);
        n->health_sent = false;
        pthread_mutex_unlock(&n->mu);
    }
    free(p);
    free(t);
}

static void answer_free(struct north_answer *a)
{
    free(a);
}

/* Put answers back at the head of the queue (paho's buffer was full). */
static void requeue_answers(struct ib_north *n, struct north_answer *a)
{
    struct north_answer *last = a;
    size_t k = 1;
    while (last->next) {
        last = last->next;
        k++;
    }
    pthread_mutex_lock(&n->mu);
    last->next = n->ans_head;
    if (!n->ans_head)
        n->ans_tail = last;
    n->ans_head = a;
    n->ans_n += k;
    pthread_mutex_unlock(&n->mu);
}

/* Publish the answers to commands that wait (the north thread, connected and ready). When
 * paho's buffer is full, the rest wait for the next round (acknowledgements free it). */
static void send_answers(struct ib_north *n)
{
    pthread_mutex_lock(&n->mu);
    struct north_answer *a = n->ans_head;
    n->ans_head = n->ans_tail = NULL;
    n->ans_n = 0;
    pthread_mutex_unlock(&n->mu);
    while (a) {
        struct north_answer *next = a->next;
        MQTTProperties props = MQTTProperties_initializer;
        MQTTProperty cd = {.identifier = MQTTPROPERTY_CODE_CORRELATION_DATA};
        bool with = a->corr && n->cfg->version == IB_MQTT_V5;
        if (with) {
            cd.value.data.data = a->corr;
            cd.value.data.len = (int)a->corr_len;
            MQTTProperties_add(&props, &cd); /* copies */
        }
        int rc = publish_props(n, a->topic, a->payload, a->len, 1, 0, 0, with ? &props : NULL);
        MQTTProperties_free(&props);
        if (rc == MQTTASYNC_MAX_BUFFERED_MESSAGES) {
            requeue_answers(n, a);
            return;
        }
        if (rc != 0)
            ib_log(IB_LOG_WARNING, NULL, NULL, NULL,
                   "north: an answer to a command on %s could not be sent: %s", a->topic,
                   MQTTAsync_strerror(rc));
        answer_free(a);
        a = next;
    }
}

int ib_north_answer(struct ib_north *n, const char *topic, const char *payload, size_t len,
                    const void *correlation, size_t correlation_len)
{
    size_t tl = strlen(topic) + 1;
    struct north_answer *a = malloc(sizeof *a + tl + len + correlation_len);
    if (!a)
        return -1;
    a->next = NULL;
    a->topic = (char *)(a + 1);
    memcpy(a->topic, topic, tl);
    a->payload = a->topic + tl;
    memcpy(a->payload, payload, len);
    a->len = len;
    a->corr = correlation ? a->payload + len : NULL;
    a->corr_len = correlation ? correlation_len : 0;
    if (correlation)
        memcpy(a->corr, correlation, correlation_len);
    pthread_mutex_lock(&n->mu);
    bool full = n->ans_n >= IB_NORTH_MAX_ANSWERS;
    if (!full) {
        if (n->ans_tail)
            n->ans_tail->next = a;
        else
            n->ans_head = a;
        n->ans_tail = a;
        n->ans_n++;
    }
    pthread_mutex_unlock(&n->mu);
    if (full) {
        free(a);
        return -1;
    }
    north_wake(n);
    return 0;
}

/* The in-flight window is full: an acknowledgement, not a linger, is what lets the next go. */
static bool window_full(struct ib_north *n, unsigned limit)
{
    struct ib_store_stats s;
    ib_store_stats(n->q, &s);
    return s.inflight >= limit;
}

static void *north_main(void *arg)
{
    struct ib_north *n = arg;
    int64_t flush_deadline = 0;
    int64_t linger_ms = n->cfg->linger_ms;
    bool sent = false; /* records went to paho since the thread last waited */
    for (;;) {
        pthread_mutex_lock(&n->mu);
        enum nstate st = n->state;
        bool failed = n->conn_failed, lost = n->conn_lost, stopping = n->stopping;
        bool flush = n->flush;
        char why[sizeof n->fail_msg];
        memcpy(why, n->fail_msg, sizeof why);
        pthread_mutex_unlock(&n->mu);
        int64_t now = ib_monotonic_ms();

        if (stopping && !flush_deadline) {
            flush_deadline = now + (flush ? n->cfg->flush_timeout_ms : 0);
            ib_store_wake_on_ack(n->q); /* the flush below waits for the last acks */
        }
        if (failed || lost) {
            drop_client(n);
            north_schedule_retry(n, lost, why);
            continue;
        }
        if (st == N_CONNECTED && !atomic_load(&n->connected))
            on_connected(n);
        if (st == N_CONNECTED)
            north_check_stable(n, now);
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
                north_start_connect(n);
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
        if (n->fmt ? !fmt_ready(n) : !connection_ready(n)) {
            if (stopping && now >= flush_deadline)
                break;
            wait_wake(n, 200);
            continue;
        }
        send_cfgstat(n);
        send_answers(n);
        send_health(n);
        struct ib_store_rec r;
        int64_t wait_ms;
        unsigned limit = inflight_limit(n);
        if (!ib_store_next(n->q, limit, &r, &wait_ms)) {
            if (sent && linger_ms > 0 && wait_ms < 0 && !stopping && !window_full(n, limit)) {
                /* Records were just sent: let the next ones gather for linger_ms rather than
                 * wake for each (pollers queue them one by one). */
                sent = false;
                atomic_store(&n->lingering, true);
                wait_wake(n, linger_ms);
                atomic_store(&n->lingering, false);
                continue;
            }
            sent = false;
            wait_wake(n, wait_ms > 0 && wait_ms < 200 ? wait_ms : 200);
            continue;
        }
        int rc = n->fmt ? n->fmt->send(n->fmt->ud, n, &r)
                        : publish(n, r.topic, r.payload, r.len, (int)n->cfg->qos, 0, r.seq);
        if (rc == 1) { /* the format had nothing to send for it */
            ib_store_ack(n->q, r.seq);
            continue;
        }
        sent |= rc == 0;
        if (rc != 0) {
            ib_store_nack(n->q, r.seq);
            if (rc == MQTTASYNC_DISCONNECTED) {
                north_set_failure(n, true, "disconnected while sending");
            } else {
                wait_wake(n, 50);
            }
        }
    }
    /* Leaving: say so while we can (not for a reconnect on reload), then disconnect cleanly
     * (no last will). */
    if (n->client && atomic_load(&n->connected)) {
        if (n->fmt)
            n->fmt->death(n->fmt->ud, n);
        else if (n->flush)
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
        ib_store_set_notify(n->q, NULL, n);
        return -1;
    }
    ib_thread_name(n->thread, "north", NULL);
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
    north_wake(n);
}

void ib_north_set_health(struct ib_north *n, const char *topic, const char *json)
{
    char *p = strdup(json), *t = strdup(topic);
    if (!p || !t) {
        free(p);
        free(t);
        return;
    }
    pthread_mutex_lock(&n->mu);
    free(n->health);
    free(n->health_topic);
    n->health = p;
    n->health_topic = t;
    n->health_sent = false;
    pthread_mutex_unlock(&n->mu);
    north_wake(n);
}

void ib_north_stop(struct ib_north *n, bool flush)
{
    if (!n || !n->started)
        return;
    pthread_mutex_lock(&n->mu);
    n->stopping = true;
    n->flush = flush;
    pthread_mutex_unlock(&n->mu);
    north_wake(n);
    pthread_join(n->thread, NULL);
    ib_store_set_notify(n->q, NULL, n);
    n->started = false;
}

void ib_north_free(struct ib_north *n)
{
    if (!n)
        return;
    ib_north_stop(n, false);
    free(n->cfgstat);
    for (struct north_answer *a = n->ans_head, *next; a; a = next) {
        next = a->next;
        answer_free(a);
    }
    free(n->health);
    free(n->health_topic);
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

void ib_north_server(struct ib_north *n, char *buf, size_t len)
{
    pthread_mutex_lock(&n->mu);
    snprintf(buf, len, "%s", atomic_load(&n->connected) ? n->server : "");
    pthread_mutex_unlock(&n->mu);
}

void ib_north_set_requests(struct ib_north *n, const char *topic, ib_north_req_fn fn, void *ud)
{
    snprintf(n->req_topic, sizeof n->req_topic, "%s", topic);
    n->req_fn = fn;
    n->req_ud = ud;
}

bool ib_north_connected(struct ib_north *n)
{
    return n && atomic_load(&n->connected);
}

void ib_north_set_format(struct ib_north *n, const struct ib_north_format *f)
{
    n->fmt = f;
}

int ib_north_publish(struct ib_north *n, const char *topic, const void *payload, size_t len,
                     int qos, uint64_t rec_seq)
{
    return publish(n, topic, payload, len, qos, 0, rec_seq);
}

void ib_north_set_metrics(struct ib_north *n, struct ib_metrics *m)
{
    n->mx = m;
}
