/* The watch over plugin calls (docs/isolation.md), from the main thread: a call past its
 * connection's call_timeout marks the poller stalled and publishes its tags bad (timeout);
 * and the health the watchdog is fed by. */
#include <stdlib.h>

#include "gateway_priv.h"
#include "log.h"

bool ib_gateway_healthy(struct ib_gateway *gw, int64_t max_age_ms)
{
    int64_t now = ib_monotonic_ms();
    for (size_t i = 0; i < gw->n_pollers; i++) {
        struct poller *p = gw->pollers[i];
        if (p->running &&
            (ib_poller_stalled(p) || now - atomic_load(&p->heartbeat_ms) > max_age_ms))
            return false;
    }
    return true;
}

/* Publish every tag of `g` bad (timeout) from the main thread, with the supervisor's own
 * buffers: the group's encoder is only read, never written, so sharing it is safe. */

static void publish_stalled(struct poller *p, struct group_rt *g, int64_t ts)
{
    if (!g->stall_samples && !(g->stall_samples = calloc(g->g->n_tags, sizeof *g->stall_samples))) {
        ib_log(IB_LOG_ERR, p->cc->pub.name, g->dev_name, NULL,
               "out of memory: group %s is not reported bad", g->g->name);
        return;
    }
    for (uint32_t t = 0; t < g->g->n_tags; t++)
        ib_sample_bad(&g->stall_samples[t], ts, IB_R_TIMEOUT, 0);
    ib_publish(p, g, &g->stall_body, ts, g->stall_samples, NULL, g->g->n_tags);
}

size_t ib_gateway_supervise(struct ib_gateway *gw)
{
    size_t stalled = 0;
    int64_t now = ib_monotonic_ms();
    for (size_t i = 0; i < gw->n_pollers; i++) {
        struct poller *p = gw->pollers[i];
        if (!p->running)
            continue;
        int64_t since = atomic_load(&p->call_since_ms);
        if (since < 0) {
            stalled++; /* reported already */
            continue;
        }
        if (!since || now - since <= p->cc->call_timeout_ms)
            continue;
        if (!atomic_compare_exchange_strong(&p->call_since_ms, &since, -since))
            continue; /* it returned meanwhile (or began another call) */
        stalled++;
        atomic_store(&p->up, false);
        ib_log(IB_LOG_ERR, p->cc->pub.name, NULL, NULL,
               "plugin '%s' has been blocked in %s for %lld ms, past the connection's "
               "call_timeout of %lld ms: the connection is reported bad (timeout); the other "
               "connections keep polling; if it never returns, the watchdog restarts the service",
               p->p->name, ib_poller_call_name(atomic_load(&p->call_what)),
               (long long)(now - since), (long long)p->cc->call_timeout_ms);
        int64_t ts = ib_now_ms();
        for (size_t k = 0; k < p->n_groups; k++)
            publish_stalled(p, &p->groups[k], ts);
    }
    return stalled;
}
