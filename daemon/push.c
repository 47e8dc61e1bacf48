/* Push from a plugin (ABI 1.1): the poller's wait for a plugin's own events between polls
 * (wait_events) and the host function that hands the samples of a group to the daemon
 * (push_samples), which normalizes, reports and publishes them as a poll. Poller thread. */
#include <pthread.h>
#include <string.h>

#include "gateway_priv.h"
#include "log.h"
#include "plugin_loader.h"

#define WAIT_SLICE_MS 200

static struct group_rt *find_group(struct poller *p, uint32_t device, uint32_t group)
{
    for (size_t i = 0; i < p->n_groups; i++)
        if (p->groups[i].dev == device && p->groups[i].grp == group)
            return &p->groups[i];
    return NULL;
}

int ib_push_samples(struct ib_host_ctx *ctx, uint32_t device, uint32_t group,
                    const struct ib_sample *samples, uint32_t n)
{
    struct poller *p = ctx ? ctx->poller : NULL;
    if (!p || !samples || !ctx->may_push || !pthread_equal(pthread_self(), ctx->thread))
        return IB_ERR_INVALID;
    struct group_rt *g = find_group(p, device, group);
    if (!g || n != g->g->n_tags)
        return IB_ERR_INVALID;
    memcpy(g->raw, samples, n * sizeof *samples);
    uint8_t reason;
    ib_poller_finish_group(p, g, &reason); /* a push is not a poll: not in the poll metrics */
    ib_publish_poll(p, g, ib_now_ms());
    return 0;
}

bool ib_push_wait(struct poller *p, int64_t wait)
{
    int (*wait_events)(void *, int64_t) = ib_plugin_wait_events(p->p);
    if (!wait_events || !p->open || p->hctx.no_events || wait <= 0)
        return false;
    /* Well inside the call deadline, so that a wait is never taken for a stuck call; and in
     * slices of WAIT_SLICE_MS, so that a command queued meanwhile (it signals the condition
     * variable, which a plugin's wait does not see) runs soon after. */
    int64_t cap = p->cc->call_timeout_ms / 2;
    if (cap > WAIT_SLICE_MS)
        cap = WAIT_SLICE_MS;
    if (wait > cap)
        wait = cap > 1 ? cap : 1;
    int64_t deadline = ib_monotonic_ms() + wait;
    ib_poller_call_begin(p, CALL_WAIT);
    p->hctx.may_push = true;
    int rc = wait_events(p->inst, deadline);
    p->hctx.may_push = false;
    ib_poller_call_end(p);
    if (rc == IB_ERR_CONNECTION)
        ib_poller_lost(p, NULL);
    else if (rc == IB_ERR_UNSUPPORTED) /* nothing to wait for on this connection */
        p->hctx.no_events = true;
    return true;
}
