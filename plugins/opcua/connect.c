/* OPC UA plugin: open() and close(): the secure channel, GetEndpoints, the session, and the
 * server's MaxNodesPerRead; a failure is logged once per episode with the server's StatusCode
 * name, and a connect with security None is warned every time. */
#include <inttypes.h>

#include "ids.h"
#include "instance.h"
#include "services.h"
#include "status.h"

static void on_limit(void *arg, size_t i, const struct ua_datavalue *dv)
{
    struct op_instance *in = arg;
    (void)i;
    if ((dv->mask & UA_DV_VALUE) && !dv->value.is_array && !ua_status_is_bad(dv->status) &&
        (dv->value.type == UA_UINT32 || dv->value.type == UA_UINT16) && dv->value.v.u > 0 &&
        dv->value.v.u < in->max_per_read)
        in->max_per_read = (uint32_t)dv->value.v.u;
}

static void log_failure(struct op_instance *in, int rc)
{
    int64_t now = in->host->monotonic_ms();
    switch (ib_episode_fail(&in->open_ep, op_cause(in, rc), now)) {
    case IB_EPISODE_STARTED:
        IB_WARN(in->host, in->ctx, "cannot connect to %s: %s", in->p->endpoint, in->ch.error);
        break;
    case IB_EPISODE_CHANGED:
        IB_WARN(in->host, in->ctx, "still cannot connect to %s, now: %s", in->p->endpoint,
                in->ch.error);
        break;
    case IB_EPISODE_REMIND:
        IB_WARN(in->host, in->ctx,
                "still cannot connect to %s (%" PRIu64 " attempts in %" PRId64 " s): %s",
                in->p->endpoint, in->open_ep.count, ib_episode_age_s(&in->open_ep, now),
                in->ch.error);
        break;
    default:
        break;
    }
}

int op_connect(struct op_instance *in)
{
    op_disconnect(in);
    IB_WARN(in->host, in->ctx,
            "connecting to %s with security policy None (allow_insecure: true): values and "
            "commands travel unsigned and unencrypted",
            in->p->endpoint);
    int rc = ua_channel_open(&in->ch, in->p->endpoint);
    if (rc == IB_OK)
        rc = ua_session_endpoints(&in->ch, &in->session, &in->scfg);
    if (rc == IB_OK)
        rc = ua_session_open(&in->ch, &in->session, &in->scfg);
    if (rc != IB_OK) {
        log_failure(in, rc);
        ua_channel_close(&in->ch);
        return rc == IB_ERR_INVALID ? rc : IB_ERR_CONNECTION;
    }
    in->max_per_read = (uint32_t)in->p->max_nodes_per_read;
    struct ua_nodeid limit = ua_nid_num(0, UA_NODE_MAX_NODES_PER_READ);
    ua_read(&in->ch, &in->session, &limit, 1, UA_ATTR_VALUE, on_limit, in);
    in->connected = true;
    int64_t now = in->host->monotonic_ms();
    if (ib_episode_ok(&in->open_ep, now) == IB_EPISODE_ENDED)
        IB_NOTICE(in->host, in->ctx, "connected to %s after %" PRIu64 " failed attempt(s)",
                  in->p->endpoint, in->open_ep.count);
    else
        IB_INFO(in->host, in->ctx, "connected to %s (at most %u nodes per Read)", in->p->endpoint,
                in->max_per_read);
    return IB_OK;
}

void op_disconnect(struct op_instance *in)
{
    if (in->ch.fd >= 0)
        ua_session_close(&in->ch, &in->session);
    ua_channel_close(&in->ch);
    in->session.active = false;
    in->connected = false;
}
