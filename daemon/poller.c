/* The poller: one thread per connection that opens its connection (with back-off), schedules
 * its groups by deadline, polls and normalizes each group and hands the poll to publish.c; and
 * the bracketing of every plugin call that lets the supervisor (watch.c) see a stuck one. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "command_impl.h"
#include "gateway_priv.h"
#include "log.h"
#include "store.h"

const char *ib_poller_call_name(int what)
{
    static const char *const names[] = {"-",       "open()",      "read_group()",
                                        "close()", "write_tag()", "wait_events()"};
    return what >= 0 && what <= CALL_WAIT ? names[what] : "?";
}

static void fill_bad(struct group_rt *g, int64_t ts, uint8_t reason)
{
    for (uint32_t i = 0; i < g->g->n_tags; i++)
        ib_sample_bad(&g->raw[i], ts, reason, 0);
}

bool ib_poller_stalled(struct poller *p)
{
    return atomic_load(&p->call_since_ms) < 0;
}

void ib_poller_call_begin(struct poller *p, enum plugin_call what)
{
    atomic_store(&p->call_what, (int)what);
    int64_t now = ib_monotonic_ms();
    atomic_store(&p->call_since_ms, now > 0 ? now : 1);
}

void ib_poller_call_end(struct poller *p)
{
    int64_t since = atomic_exchange(&p->call_since_ms, 0);
    int what = atomic_load(&p->call_what);
    if (since >= 0)
        return;
    since = -since;
    ib_log(IB_LOG_NOTICE, p->cc->pub.name, NULL, NULL,
           "plugin '%s' returned from %s after %lld ms (past its call_timeout of %lld ms); the "
           "connection polls again",
           p->p->name, ib_poller_call_name(what), (long long)(ib_monotonic_ms() - since),
           (long long)p->cc->call_timeout_ms);
    /* The supervisor reported every tag bad: report the next poll in full, whatever the
     * reporting mode, so that consumers see the tags come back. */
    int64_t now = ib_monotonic_ms();
    for (size_t i = 0; i < p->n_groups; i++)
        for (uint32_t t = 0; t < p->groups[i].g->n_tags; t++) {
            ib_report_state_free(&p->groups[i].rs[t]);
            ib_report_state_init(&p->groups[i].rs[t], now);
        }
}

static int plugin_open(struct poller *p)
{
    ib_poller_call_begin(p, CALL_OPEN);
    int rc = p->p->open(p->inst);
    ib_poller_call_end(p);
    return rc;
}

static void plugin_close(struct poller *p)
{
    ib_poller_call_begin(p, CALL_CLOSE);
    p->p->close(p->inst);
    ib_poller_call_end(p);
}

void ib_poller_close(struct poller *p)
{
    if (!p->open)
        return;
    plugin_close(p);
    p->open = false;
    atomic_store(&p->up, false);
}

static void ensure_open(struct poller *p, int64_t now)
{
    if (p->open || now < p->next_open_ms)
        return;
    p->opens++;
    int rc = plugin_open(p);
    now = ib_monotonic_ms();
    if (rc == 0) {
        p->open = true;
        p->hctx.no_events = false;
        atomic_store(&p->up, true);
        p->reads_on_conn = 0;
        if (ib_episode_ok(&p->open_failing, now) == IB_EPISODE_ENDED)
            ib_log(IB_LOG_NOTICE, p->cc->pub.name, NULL, NULL,
                   "connection re-established after %llu failed attempts",
                   (unsigned long long)p->open_failing.count);
        else if (!p->losing.active) /* reopened after each loss: the loss episode tells */
            ib_log(IB_LOG_INFO, p->cc->pub.name, NULL, NULL, "connection open");
        return;
    }
    unsigned attempt = p->open_failing.active ? (unsigned)p->open_failing.count : 0;
    p->next_open_ms = now + ib_backoff_ms(500, 30000, attempt, &p->rng);
    switch (ib_episode_fail(&p->open_failing, rc, now)) {
    case IB_EPISODE_STARTED:
        ib_log(IB_LOG_WARNING, p->cc->pub.name, NULL, NULL,
               "cannot open the connection (%s); its tags are reported bad (connection_lost) "
               "and it is retried with back-off up to 30 s",
               ib_strerror(rc));
        break;
    case IB_EPISODE_CHANGED:
    case IB_EPISODE_REMIND:
        ib_log(IB_LOG_WARNING, p->cc->pub.name, NULL, NULL,
               "still cannot open the connection (%s): %llu attempts in %lld s", ib_strerror(rc),
               (unsigned long long)p->open_failing.count,
               (long long)ib_episode_age_s(&p->open_failing, now));
        break;
    default:
        break; /* counted */
    }
}

/* A connection lost while reading is reopened at once (then with back-off). Losses are one
 * failure episode until a connection outlives a poll: a device that closes the connection after
 * every request is logged once when that starts (and as a reminder), not at every poll. */
void ib_poller_lost(struct poller *p, const struct group_rt *g)
{
    plugin_close(p);
    p->open = false;
    atomic_store(&p->up, false);
    p->next_open_ms = 0; /* try once right away at the next poll, then back off */
    int64_t now = ib_monotonic_ms();
    switch (ib_episode_fail(&p->losing, 0, now)) {
    case IB_EPISODE_STARTED:
        if (g)
            ib_log(IB_LOG_WARNING, p->cc->pub.name, NULL, NULL,
                   "connection lost while reading %s/%s; reopening (further losses are counted, "
                   "not logged, until a connection stays up)",
                   g->dev_name, g->g->name);
        else
            ib_log(IB_LOG_WARNING, p->cc->pub.name, NULL, NULL,
                   "connection lost between polls; reopening (further losses are counted, "
                   "not logged, until a connection stays up)");
        break;
    case IB_EPISODE_REMIND:
    case IB_EPISODE_CHANGED:
        ib_log(IB_LOG_WARNING, p->cc->pub.name, NULL, NULL,
               "connection lost %llu times in %lld s; reopening each time",
               (unsigned long long)p->losing.count, (long long)ib_episode_age_s(&p->losing, now));
        break;
    default:
        break;
    }
}

/* A read on an open connection that did not lose it. */
static void kept(struct poller *p)
{
    if (++p->reads_on_conn < 2)
        return; /* the first read after an open does not show that the connection stays */
    if (ib_episode_ok(&p->losing, ib_monotonic_ms()) == IB_EPISODE_ENDED)
        ib_log(IB_LOG_NOTICE, p->cc->pub.name, NULL, NULL,
               "connection stays up again, after %llu losses in %lld s",
               (unsigned long long)p->losing.count,
               (long long)ib_episode_age_s(&p->losing, ib_monotonic_ms()));
}

/* A group's health is logged when it turns bad, when the first bad tag's reason changes (and
 * as a reminder while it stays bad), and when it is all good again: not at every poll. */
static void log_health(struct poller *p, struct group_rt *g, uint32_t bad, uint8_t reason)
{
    int64_t now = ib_monotonic_ms();
    if (!bad) {
        if (ib_episode_ok(&g->bad, now) == IB_EPISODE_ENDED)
            ib_log(IB_LOG_NOTICE, p->cc->pub.name, g->dev_name, NULL,
                   "group %s: all %u tags good again", g->g->name, g->g->n_tags);
        return;
    }
    if (ib_episode_fail(&g->bad, reason, now) != IB_EPISODE_QUIET)
        ib_log(IB_LOG_WARNING, p->cc->pub.name, g->dev_name, NULL,
               "group %s: %u of %u tags bad (first reason: %s)", g->g->name, bad, g->g->n_tags,
               ib_record_reason_name(reason));
}

int ib_poller_poll_group(struct poller *p, struct group_rt *g)
{
    int64_t t0_us = ib_metrics_now_us();
    int64_t now = ib_monotonic_ms();
    ensure_open(p, now);
    int rc;
    /* A plugin that forgets a sample must not publish the previous poll's value as new. */
    fill_bad(g, ib_now_ms(), IB_R_INTERNAL);
    if (p->open) {
        ib_poller_call_begin(p, CALL_READ);
        p->hctx.may_push = true;
        rc = p->p->read_group(p->inst, g->dev, g->grp, g->raw);
        p->hctx.may_push = false;
        ib_poller_call_end(p);
        if (rc == IB_ERR_CONNECTION)
            ib_poller_lost(p, g);
        else
            kept(p);
    } else {
        fill_bad(g, ib_now_ms(), IB_R_CONN_LOST);
        rc = IB_ERR_CONNECTION;
    }
    uint8_t reason;
    uint32_t bad = ib_poller_finish_group(p, g, &reason);
    ib_metrics_poll(g->mx, ib_metrics_now_us() - t0_us, g->g->n_tags - bad,
                    bad ? (reason ? reason : IB_R_INTERNAL) : 0, ib_now_ms());
    return rc;
}

uint32_t ib_poller_finish_group(struct poller *p, struct group_rt *g, uint8_t *first_reason)
{
    uint8_t reason = IB_R_NONE;
    uint32_t bad = 0;
    for (uint32_t i = 0; i < g->g->n_tags; i++) {
        ib_record_normalize(&g->cg->tags[i], &g->raw[i], &g->norm[i]);
        if (g->norm[i].quality != IB_Q_GOOD) {
            if (!bad)
                reason = g->norm[i].reason;
            bad++;
        }
    }
    log_health(p, g, bad, reason);
    *first_reason = reason;
    return bad;
}

int ib_poller_write(struct poller *p, struct group_rt *g, uint32_t tag, const struct ib_value *v)
{
    ensure_open(p, ib_monotonic_ms());
    if (!p->open)
        return IB_ERR_CONNECTION;
    if (!p->p->write_tag)
        return IB_ERR_UNSUPPORTED;
    ib_poller_call_begin(p, CALL_WRITE);
    int rc = p->p->write_tag(p->inst, g->dev, g->grp, tag, v);
    ib_poller_call_end(p);
    if (rc == IB_ERR_CONNECTION)
        ib_poller_lost(p, g);
    return rc;
}

/* Decide which tags to report (docs/reporting.md) and queue the record(s): one message with
 * those tags (layout batch; none if nothing is to be reported) or one per tag (layout tag). */
/* A continuous group whose poll failed (no connection, a unit backed off) waits this long
 * instead of spinning on failures. */
#define CONTINUOUS_RETRY_MS 100
/* A continuous group does not outrun the north: while more than this many records wait to be
 * sent, it waits in steps of CONTINUOUS_HOLD_STEP_MS, but at most CONTINUOUS_RETRY_MS after its
 * previous poll (so that it keeps collecting, into the store, while the broker is away). */
#define CONTINUOUS_MAX_UNSENT   8
#define CONTINUOUS_HOLD_STEP_MS 2

static bool continuous_held(struct poller *p, const struct group_rt *g, int64_t now)
{
    return g->g->interval_ms == 0 && now - g->last_poll_ms < CONTINUOUS_RETRY_MS &&
           ib_store_unsent(p->gw->store) > CONTINUOUS_MAX_UNSENT;
}

static void *poller_main(void *arg)
{
    struct poller *p = arg;
    p->hctx.thread = pthread_self();
    unsigned trimmed = 0; /* p->opens when the stack was last trimmed */
    bool command_ran = false;
    int64_t start = ib_monotonic_ms();
    for (size_t i = 0; i < p->n_groups; i++)
        p->groups[i].next_due = start;
    pthread_mutex_lock(&p->mu);
    while (!p->stop) {
        pthread_mutex_unlock(&p->mu);
        int64_t now = ib_monotonic_ms();
        atomic_store(&p->heartbeat_ms, now);
        struct group_rt *g = &p->groups[0];
        for (size_t i = 1; i < p->n_groups; i++)
            if (p->groups[i].next_due < g->next_due)
                g = &p->groups[i];
        int64_t wait = g->next_due - now;
        /* Commands between polls, before the next one is due; with a continuous group, one
         * command between two polls. */
        if (ib_cmd_queue_pending(p->cmdq) &&
            (wait > 0 || (g->g->interval_ms == 0 && !command_ran))) {
            ib_cmd_queue_run_one(p);
            command_ran = true;
            pthread_mutex_lock(&p->mu);
            continue;
        }
        command_ran = false;
        if (wait <= 0 && continuous_held(p, g, now)) {
            g->next_due = now + CONTINUOUS_HOLD_STEP_MS; /* another group may be due meanwhile */
            pthread_mutex_lock(&p->mu);
            continue;
        }
        if (wait <= 0) {
            g->last_poll_ms = now;
            int64_t ts = ib_now_ms();
            int rc = ib_poller_poll_group(p, g);
            ib_publish_poll(p, g, ts);
            int64_t after = ib_monotonic_ms();
            /* Keep the phase; a poll that overran skips the missed cycles rather than bunching.
             * A continuous group (interval 0) is due again at once, behind any group that was
             * due before it finished; after a failed poll, in CONTINUOUS_RETRY_MS. */
            int64_t iv = g->g->interval_ms;
            if (iv == 0)
                g->next_due = after + (rc != 0 ? CONTINUOUS_RETRY_MS : 0);
            else if ((g->next_due += iv) <= after)
                g->next_due += ((after - g->next_due) / iv + 1) * iv;
            pthread_mutex_lock(&p->mu);
            continue;
        }
        /* Opening a connection runs deep (libmodbus resolves the host with getaddrinfo): give
         * back the stack pages that only it touched, 4 KiB per poller otherwise kept. */
        if (p->opens != trimmed) {
            ib_stack_trim();
            trimmed = p->opens;
        }
        /* Sleep at most 1 s so that the heartbeat stays fresh for the watchdog. */
        if (wait > 1000)
            wait = 1000;
        if (ib_push_wait(p, wait)) { /* ABI 1.1: the plugin waits for its own events */
            pthread_mutex_lock(&p->mu);
            continue;
        }
        struct timespec dl = ib_deadline_ms(wait);
        pthread_mutex_lock(&p->mu);
        if (!p->stop && !ib_cmd_queue_pending(p->cmdq))
            pthread_cond_timedwait(&p->cv, &p->mu, &dl);
    }
    pthread_mutex_unlock(&p->mu);
    ib_cmd_queue_close(p);
    ib_poller_close(p);
    return NULL;
}

int ib_poller_start(struct poller *p)
{
    atomic_store(&p->heartbeat_ms, ib_monotonic_ms());
    pthread_attr_t at;
    pthread_attr_init(&at);
    /* Poller stacks are sized explicitly: hundreds of connections must not reserve 8 MB each.
     * Plugins get 256 KiB, ample for libmodbus and decoding. */
    pthread_attr_setstacksize(&at, 256 * 1024);
    int rc = pthread_create(&p->thread, &at, poller_main, p);
    pthread_attr_destroy(&at);
    if (rc != 0) {
        ib_err("cannot start the poller of connection %s: %s", p->cc->pub.name, strerror(rc));
        return -1;
    }
    ib_thread_name(p->thread, "poll", p->cc->pub.name);
    p->running = true;
    return 0;
}

void ib_poller_signal_stop(struct poller *p)
{
    pthread_mutex_lock(&p->mu);
    p->stop = true;
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

bool ib_poller_join(struct poller *p)
{
    if (!p->running)
        return !p->abandoned;
    for (;;) {
        struct timespec dl;
        clock_gettime(CLOCK_REALTIME, &dl); /* pthread_timedjoin_np's clock */
        dl.tv_nsec += 100 * 1000000L;
        if (dl.tv_nsec >= 1000000000L) {
            dl.tv_sec++;
            dl.tv_nsec -= 1000000000L;
        }
        if (pthread_timedjoin_np(p->thread, NULL, &dl) == 0)
            break;
        int64_t since = atomic_load(&p->call_since_ms);
        if (since < 0 || (since > 0 && ib_monotonic_ms() - since > p->cc->call_timeout_ms)) {
            ib_log(IB_LOG_ERR, p->cc->pub.name, NULL, NULL,
                   "plugin '%s' is still blocked in %s: its poller is abandoned, not joined",
                   p->p->name, ib_poller_call_name(atomic_load(&p->call_what)));
            pthread_detach(p->thread);
            p->running = false;
            p->abandoned = true;
            p->gw->abandoned = true;
            return false;
        }
    }
    p->running = false;
    return true;
}
