/* The north's thread and life cycle: its wake-up, the loop that connects, takes records from the
 * store and sends them, stops with a flush; and ib_north_new/start/stop/free and the settings.
 * A fresh paho client is made for every connection attempt (north_connect.c) and destroyed when
 * the attempt fails or the connection drops (north_session.c): what was in flight then is sent
 * again from our queue (at least once), and no paho state or callback context outlives it. */
#include "north_impl.h"

#include <errno.h>
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
    if (atomic_load_explicit(&n->lingering, memory_order_relaxed) &&
        atomic_fetch_add_explicit(&n->lingered, 1, memory_order_relaxed) + 1 < NORTH_LINGER_BATCH)
        return;
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
            north_drop_client(n);
            north_schedule_retry(n, lost, why);
            continue;
        }
        if (st == N_CONNECTED && !atomic_load(&n->connected))
            north_on_connected(n);
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
        if (n->fmt ? !north_fmt_ready(n) : !north_connection_ready(n)) {
            if (stopping && now >= flush_deadline)
                break;
            wait_wake(n, 200);
            continue;
        }
        north_send_cfgstat(n);
        north_send_answers(n);
        north_send_health(n);
        struct ib_store_rec r;
        int64_t wait_ms;
        unsigned limit = north_inflight_limit(n);
        if (!ib_store_next(n->q, limit, &r, &wait_ms)) {
            if (sent && linger_ms > 0 && wait_ms < 0 && !stopping && !window_full(n, limit)) {
                /* Records were just sent: let the next ones gather for linger_ms rather than
                 * wake for each (pollers queue them one by one). */
                sent = false;
                atomic_store(&n->lingered, 0);
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
                        : north_publish(n, r.topic, r.payload, r.len, (int)n->cfg->qos, 0, r.seq);
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
            north_publish(n, n->status_topic, "offline", 7, 1, 1, 0);
        north_disconnect(n);
    }
    struct ib_store_stats s;
    ib_store_stats(n->q, &s);
    if (s.queued)
        ib_log(IB_LOG_WARNING, NULL, NULL, NULL,
               "north: stopping with %llu records not yet delivered to the broker; they stay "
               "in the store for the next start",
               (unsigned long long)s.queued);
    north_drop_client(n);
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
    north_answers_free(n);
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

void ib_north_set_metrics(struct ib_north *n, struct ib_metrics *m)
{
    n->mx = m;
}
