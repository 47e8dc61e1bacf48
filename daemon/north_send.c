/* The north's sending: hands a message to paho with a context that its PUBACK (or failure)
 * callback uses to ack or nack the record in the store, and limits what is in flight by count
 * and by the payload bytes paho holds. */
#include "north_impl.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

/* ---- paho callbacks (paho's threads) --------------------------------------------------------- */

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
unsigned north_inflight_limit(struct ib_north *n)
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

int north_publish_props(struct ib_north *n, const char *topic, const void *payload, size_t len,
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

int north_publish(struct ib_north *n, const char *topic, const void *payload, size_t len, int qos,
                  int retained, uint64_t seq)
{
    return north_publish_props(n, topic, payload, len, qos, retained, seq, NULL);
}

int ib_north_publish(struct ib_north *n, const char *topic, const void *payload, size_t len,
                     int qos, uint64_t rec_seq)
{
    return north_publish(n, topic, payload, len, qos, 0, rec_seq);
}
