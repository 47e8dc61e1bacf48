/* OPC UA plugin: read_group(): the group's nodes read in batches within MaxNodesPerRead, each
 * DataValue mapped to its tag's sample; a tag's bad StatusCode is logged by its symbolic name
 * once per episode, and a broken channel or session makes the host reconnect. */
#include <inttypes.h>

#include "ids.h"
#include "instance.h"
#include "services.h"
#include "status.h"

struct batch {
    struct op_instance *in;
    const struct op_device *dev;
    struct op_tag *tags;
    struct ib_sample *samples;
    int64_t now;
};

static void log_tag(struct batch *b, struct op_tag *t, int result, const struct ua_datavalue *dv)
{
    const struct ib_host *h = b->in->host;
    int64_t mono = h->monotonic_ms();
    if (result == UA_MAP_GOOD) {
        if (ib_episode_ok(&t->ep, mono) == IB_EPISODE_ENDED)
            IB_LOG(h, b->in->ctx, IB_LOG_NOTICE, b->dev->name, t->name, "good again");
        return;
    }
    long cause = result == UA_MAP_BAD_STATUS ? (long)dv->status : -result;
    enum ib_episode_event ev = ib_episode_fail(&t->ep, cause, mono);
    if (ev == IB_EPISODE_QUIET || ev == IB_EPISODE_ENDED)
        return;
    char sc[64];
    if (result == UA_MAP_BAD_STATUS)
        IB_LOG(h, b->in->ctx, IB_LOG_WARNING, b->dev->name, t->name, "the server says %s",
               ua_status_text(dv->status, sc, sizeof sc));
    else if (result == UA_MAP_UNSUPPORTED)
        IB_LOG(h, b->in->ctx, IB_LOG_WARNING, b->dev->name, t->name,
               "the value's type (built-in type %u%s) has no mapping yet", dv->value.type,
               dv->value.is_array ? ", array" : "");
    else
        IB_LOG(h, b->in->ctx, IB_LOG_WARNING, b->dev->name, t->name, "the server sent no value");
}

static void on_value(void *arg, size_t i, const struct ua_datavalue *dv)
{
    struct batch *b = arg;
    struct op_tag *t = &b->tags[i];
    int r = ua_value_to_sample(dv, b->now, &t->text, &b->samples[i]);
    log_tag(b, t, r, dv);
}

static void all_bad(struct ib_sample *s, uint32_t n, int64_t now, uint8_t reason, uint16_t code)
{
    for (uint32_t i = 0; i < n; i++)
        ib_sample_bad(&s[i], now, reason, code);
}

static int failed(struct op_instance *in, int rc)
{
    int64_t now = in->host->monotonic_ms();
    enum ib_episode_event ev = ib_episode_fail(&in->read_ep, op_cause(in, rc), now);
    if (ev == IB_EPISODE_STARTED || ev == IB_EPISODE_CHANGED || ev == IB_EPISODE_REMIND)
        IB_WARN(in->host, in->ctx, "Read failed: %s", in->ch.error);
    uint32_t sc = in->ch.last_status;
    /* A lost session or channel is repaired by reconnecting. */
    if (rc == IB_ERR_EXCEPTION && sc != 0x80250000u && sc != 0x80260000u && sc != 0x80270000u &&
        sc != 0x80220000u)
        return IB_ERR_EXCEPTION;
    if (rc == IB_ERR_INVALID)
        return IB_ERR_PROTOCOL;
    return rc == IB_ERR_TIMEOUT ? IB_ERR_CONNECTION : rc;
}

int op_read_group(struct op_instance *in, uint32_t device, uint32_t group,
                  struct ib_sample *samples)
{
    struct op_group *g = &in->devices[device].groups[group];
    if (g->sub)
        return op_sub_read(in, device, group, samples);
    int64_t now = in->host->now_ms();
    if (!in->connected) {
        all_bad(samples, g->n_tags, now, IB_R_CONN_LOST, 0);
        return IB_ERR_CONNECTION;
    }
    uint32_t step = in->max_per_read ? in->max_per_read : g->n_tags;
    for (uint32_t off = 0; off < g->n_tags; off += step) {
        uint32_t n = g->n_tags - off < step ? g->n_tags - off : step;
        struct batch b = {in, &in->devices[device], g->tags + off, samples + off, now};
        int rc = ua_read(&in->ch, &in->session, g->nodes + off, n, UA_ATTR_VALUE, on_value, &b);
        if (rc != IB_OK) {
            int ret = failed(in, rc);
            uint8_t reason = ret == IB_ERR_CONNECTION  ? IB_R_CONN_LOST
                             : ret == IB_ERR_EXCEPTION ? IB_R_EXCEPTION
                                                       : IB_R_PROTOCOL;
            all_bad(samples, g->n_tags, now, reason, (uint16_t)(in->ch.last_status >> 16));
            if (ret == IB_ERR_CONNECTION)
                in->connected = false;
            return ret;
        }
    }
    if (in->ch.renewals != in->renewals_logged) {
        in->renewals_logged = in->ch.renewals;
        IB_DEBUG(in->host, in->ctx,
                 "secure channel token renewed (%u on this connection, "
                 "lifetime %u ms)",
                 in->ch.renewals, in->ch.revised_lifetime_ms);
    }
    int64_t mono = in->host->monotonic_ms();
    if (ib_episode_ok(&in->read_ep, mono) == IB_EPISODE_ENDED)
        IB_NOTICE(in->host, in->ctx, "Read works again after %" PRIu64 " failures",
                  in->read_ep.count);
    return IB_OK;
}
