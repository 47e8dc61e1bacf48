/* The north's session on a connection: what follows the CONNACK (the "online" status or a
 * payload format's subscriptions and births, our subscriptions), when records may go, and the
 * end of the client with what paho held. */
#include "north_impl.h"

#include <inttypes.h>
#include <stdlib.h>
#include <time.h>

#include "log.h"
#include "util.h"

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

/* A clean DISCONNECT (no last will), waiting up to a second for paho to send it. */
void north_disconnect(struct ib_north *n)
{
    MQTTAsync_disconnectOptions d = MQTTAsync_disconnectOptions_initializer;
    d.timeout = 1000;
    MQTTAsync_disconnect(n->client, &d);
    for (int i = 0; i < 20 && MQTTAsync_isConnected(n->client); i++) {
        struct timespec ts = {0, 50 * 1000000L};
        nanosleep(&ts, NULL);
    }
}

/* The format ends the session (Sparkplug: primary host offline): its death, a clean DISCONNECT
 * (no will), then the next connect starts at the next server. */
static void fmt_leave(struct ib_north *n)
{
    n->fmt->death(n->fmt->ud, n);
    north_disconnect(n);
    n->server_skip++;
    north_set_failure(n, true, "the payload format ended the session (primary host offline)");
}

/* A format's session: births once subscribed (then records may go), again when it asks. true
 * when records may go. */
bool north_fmt_ready(struct ib_north *n)
{
    if (!atomic_load(&n->fmt_subscribed))
        return false;
    if (n->fmt->leave && n->fmt->leave(n->fmt->ud)) {
        fmt_leave(n);
        return false;
    }
    if ((!north_connection_ready(n) || n->fmt->want_births(n->fmt->ud)) &&
        n->fmt->births(n->fmt->ud, n) == 0) {
        pthread_mutex_lock(&n->mu);
        n->ready = true;
        pthread_mutex_unlock(&n->mu);
    }
    return north_connection_ready(n);
}

void north_on_connected(struct ib_north *n)
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
    else if (north_publish(n, n->status_topic, "online", 6, 1, 1, SEQ_ONLINE) != 0) {
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
bool north_connection_ready(struct ib_north *n)
{
    pthread_mutex_lock(&n->mu);
    bool ready = n->ready;
    pthread_mutex_unlock(&n->mu);
    return ready;
}

/* Destroy the paho client: no callback of it can run afterwards, so its contexts go too. */
void north_drop_client(struct ib_north *n)
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
