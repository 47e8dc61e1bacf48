/* OPC UA plugin: groups in mode subscribe (OPC 10000-4 §5.13): one subscription per group
 * (CreateSubscription, CreateMonitoredItems with sampling interval, queue size, discard oldest
 * and an optional deadband filter), Publish requests kept outstanding with their
 * acknowledgements, Republish for a gap in sequence numbers, and a watch on every subscription's
 * keep-alives: one that goes silent, or that the server reports gone, is re-created. Values go
 * to a per-group cache and to the daemon through push_samples (ABI 1.1). Poller thread. */
#include <inttypes.h>
#include <stdio.h>

#include "ids.h"
#include "instance.h"
#include "notify.h"
#include "status.h"

#define SC_BAD_NO_SUBSCRIPTION       0x80790000u
#define SC_BAD_TOO_MANY_PUBLISH      0x80780000u
#define SC_BAD_SUBSCRIPTION_INVALID  0x80280000u
#define SC_BAD_MESSAGE_NOT_AVAILABLE 0x807B0000u
/* A keep-alive at least this often (ms) when the publishing interval allows. */
#define KEEPALIVE_TARGET_MS 5000
#define RETRY_MS            5000
#define MAX_REPUBLISH       16
#define PUBLISH_HINT_MS     600000

static struct op_sub *sub_at(struct op_instance *in, uint32_t d, uint32_t g)
{
    return in->devices[d].groups[g].sub;
}

#define EACH_SUB(in, s, d, g)                                                                      \
    for (uint32_t d = 0; d < (in)->n_devices; d++)                                                 \
        for (uint32_t g = 0; g < (in)->devices[d].n_groups; g++)                                   \
            if (((s) = sub_at((in), d, g)) != NULL)

static void cache_bad(struct op_instance *in, struct op_sub *s, uint8_t reason)
{
    const struct op_group *g = &in->devices[s->dev].groups[s->grp];
    int64_t now = in->host->now_ms();
    for (uint32_t t = 0; t < g->n_tags; t++)
        ib_sample_bad(&s->cache[t], now, reason, 0);
    s->dirty = true;
}

static void on_stray(void *arg, uint32_t rid);

void op_sub_init(struct op_instance *in)
{
    struct op_sub *s;
    EACH_SUB(in, s, d, g)
    {
        s->dev = d;
        s->grp = g;
        cache_bad(in, s, IB_R_CONN_LOST);
    }
    in->ch.on_stray = in->n_subs ? on_stray : NULL;
    in->ch.stray_arg = in;
}

void op_sub_reset(struct op_instance *in)
{
    struct op_sub *s;
    EACH_SUB(in, s, d, g)
    {
        s->id = 0;
        s->last_seq = s->gap_from = s->gap_to = 0;
        s->recreate = false;
        s->retry_ms = 0;
        cache_bad(in, s, IB_R_CONN_LOST);
    }
    in->n_pub = in->n_acks = 0;
    in->session_lost = false;
}

/* ---- pushing to the daemon ------------------------------------------------------------------ */

static void flush(struct op_instance *in, struct op_sub *s)
{
    if (!s->dirty || !in->may_push || in->host->abi_minor < 1 || !in->host->push_samples)
        return;
    const struct op_group *g = &in->devices[s->dev].groups[s->grp];
    in->host->push_samples(in->ctx, s->dev, s->grp, s->cache, g->n_tags);
    s->dirty = false;
}

static void flush_all(struct op_instance *in)
{
    struct op_sub *s;
    EACH_SUB(in, s, d, g)
    flush(in, s);
}

/* ---- notifications ----------------------------------------------------------------------------
 */

struct apply {
    struct op_instance *in;
    struct op_sub *s;
    int64_t now;
    bool older; /* a republished message: do not overwrite newer values */
};

static void on_change(void *arg, uint32_t handle, const struct ua_datavalue *dv)
{
    struct apply *a = arg;
    struct op_group *g = &a->in->devices[a->s->dev].groups[a->s->grp];
    if (handle >= g->n_tags)
        return; /* not one of ours: ignored */
    struct ib_sample *c = &a->s->cache[handle];
    if (a->older && dv->src_ts && ua_datetime_to_ms(dv->src_ts) < c->ts_ms)
        return;
    /* The same item twice in one message (queue size > 1): hand over the first value before
     * it is replaced (and its text buffer reused). */
    if (a->s->mark[handle] == a->s->gen)
        flush(a->in, a->s);
    a->s->mark[handle] = a->s->gen;
    struct op_tag *t = &g->tags[handle];
    int r = ua_value_to_sample(dv, a->now, &t->text, c);
    a->s->dirty = true;
    if (r == UA_MAP_BAD_STATUS &&
        ib_episode_fail(&t->ep, (long)dv->status, a->in->host->monotonic_ms()) ==
            IB_EPISODE_STARTED) {
        char sc[64];
        IB_LOG(a->in->host, a->in->ctx, IB_LOG_WARNING, a->in->devices[a->s->dev].name, t->name,
               "the server says %s", ua_status_text(dv->status, sc, sizeof sc));
    } else if (r == UA_MAP_GOOD &&
               ib_episode_ok(&t->ep, a->in->host->monotonic_ms()) == IB_EPISODE_ENDED) {
        IB_LOG(a->in->host, a->in->ctx, IB_LOG_NOTICE, a->in->devices[a->s->dev].name, t->name,
               "good again");
    }
}

static void on_status(void *arg, uint32_t status)
{
    struct apply *a = arg;
    char sc[64];
    IB_WARN(a->in->host, a->in->ctx,
            "subscription of group %s: the server reports %s; it is created again",
            a->in->devices[a->s->dev].groups[a->s->grp].name,
            ua_status_text(status, sc, sizeof sc));
    a->s->recreate = true;
}

static void apply(struct op_instance *in, struct op_sub *s, const struct ua_notif_msg *m,
                  bool older)
{
    if (++s->gen == 0)
        s->gen = 1;
    struct apply a = {in, s, in->host->now_ms(), older};
    struct ua_notif_cbs cbs = {on_change, on_status, &a};
    ua_notif_each(m, &cbs);
    flush(in, s);
}

static void ack(struct op_instance *in, uint32_t sub, uint32_t seq)
{
    if (in->n_acks == OP_MAX_ACKS) /* the server keeps it until it times out: harmless */
        return;
    in->acks[in->n_acks].sub = sub;
    in->acks[in->n_acks].seq = seq;
    in->n_acks++;
}

static struct op_sub *find_sub(struct op_instance *in, uint32_t id)
{
    struct op_sub *s;
    EACH_SUB(in, s, d, g)
    if (s->id == id && id)
        return s;
    return NULL;
}

/* A PublishResponse (data or keep-alive) for subscription m->sub_id. */
static void on_publish(struct op_instance *in, const struct ua_notif_msg *m)
{
    struct op_sub *s = find_sub(in, m->sub_id);
    if (!s)
        return; /* an old subscription's late message */
    s->heard_ms = in->host->monotonic_ms();
    bool keepalive = m->n_data == 0;
    /* A keep-alive carries the next sequence number, a data message its own. */
    uint32_t expect = s->last_seq + 1;
    if (s->last_seq && m->seq > expect && !s->gap_from) {
        s->gap_from = expect;
        s->gap_to = m->seq - 1;
    }
    if (keepalive)
        return;
    s->has_data = true;
    ack(in, s->id, m->seq);
    if (m->seq > s->last_seq || !s->last_seq)
        s->last_seq = m->seq;
    apply(in, s, m, false);
}

static bool take_rid(struct op_instance *in, uint32_t rid)
{
    for (uint32_t i = 0; i < in->n_pub; i++)
        if (in->pub_rids[i] == rid) {
            in->pub_rids[i] = in->pub_rids[--in->n_pub];
            return true;
        }
    return false;
}

static bool session_gone(uint32_t sc)
{
    return sc == 0x80250000u || sc == 0x80260000u || sc == 0x80270000u || sc == 0x80220000u;
}

static void on_stray(void *arg, uint32_t rid)
{
    struct op_instance *in = arg;
    if (!take_rid(in, rid)) {
        IB_DEBUG(in->host, in->ctx, "dropped a response to request %u", rid);
        return; /* a late answer to a request that timed out */
    }
    struct ua_cur c;
    int rc = ua_channel_response(&in->ch, UA_ID_PUBLISH_RESP, &c);
    if (rc != IB_OK) {
        uint32_t sc = in->ch.last_status;
        if (session_gone(sc))
            in->session_lost = true;
        else if (sc != SC_BAD_NO_SUBSCRIPTION && sc != SC_BAD_TOO_MANY_PUBLISH &&
                 sc != UA_SC_BAD_TIMEOUT)
            IB_WARN(in->host, in->ctx, "Publish failed: %s", in->ch.error);
        return;
    }
    struct ua_notif_msg m;
    int e = ua_notif_parse(&c, true, &m);
    if (e != UA_OK) {
        IB_WARN(in->host, in->ctx, "undecodable PublishResponse (%s): its values are dropped",
                ua_err_name(e));
        return;
    }
    on_publish(in, &m);
}

/* ---- requests -----------------------------------------------------------------------------------
 */

static int send_publish(struct op_instance *in)
{
    in->ch.hint_ms = PUBLISH_HINT_MS; /* a Publish waits at the server for data or keep-alive */
    struct ua_buf *b = ua_channel_begin(&in->ch, UA_ID_PUBLISH_REQ, &in->session.auth);
    ua_put_i32(b, (int32_t)in->n_acks);
    for (uint32_t i = 0; i < in->n_acks; i++) {
        ua_put_u32(b, in->acks[i].sub);
        ua_put_u32(b, in->acks[i].seq);
    }
    uint32_t rid = 0;
    int rc = ua_channel_send(&in->ch, &rid);
    if (rc == IB_OK) {
        in->n_acks = 0;
        in->pub_rids[in->n_pub++] = rid;
    }
    return rc;
}

static void put_item(struct ua_buf *b, const struct op_group *g, uint32_t t, double sampling)
{
    const struct op_group_params *gp = g->gp;
    ua_put_nodeid(b, &g->nodes[t]);
    ua_put_u32(b, UA_ATTR_VALUE);
    ua_put_i32(b, -1); /* IndexRange */
    ua_put_u16(b, 0);  /* DataEncoding: default */
    ua_put_i32(b, -1);
    ua_put_u32(b, 2); /* MonitoringMode Reporting */
    ua_put_u32(b, t); /* ClientHandle: the tag's index */
    ua_put_double(b, sampling);
    ua_put_datachange_filter(b, (uint32_t)gp->deadband_type, gp->deadband);
    ua_put_u32(b, (uint32_t)gp->queue_size);
    ua_put_bool(b, gp->discard_oldest);
}

static int create_items(struct op_instance *in, struct op_sub *s)
{
    struct op_group *g = &in->devices[s->dev].groups[s->grp];
    double sampling = g->gp->sampling_interval_ms < 0 ? (double)g->interval_ms
                                                      : (double)g->gp->sampling_interval_ms;
    struct ua_buf *b =
        ua_channel_begin(&in->ch, UA_ID_CREATE_MONITORED_ITEMS_REQ, &in->session.auth);
    ua_put_u32(b, s->id);
    ua_put_u32(b, 2); /* TimestampsToReturn Both */
    ua_put_i32(b, (int32_t)g->n_tags);
    for (uint32_t t = 0; t < g->n_tags; t++)
        put_item(b, g, t, sampling);
    struct ua_cur c;
    int rc = ua_channel_call(&in->ch, UA_ID_CREATE_MONITORED_ITEMS_RESP, &c);
    if (rc != IB_OK)
        return rc;
    int32_t n = ua_get_array_len(&c, 4 + 4 + 8 + 4 + 3);
    if (c.err != UA_OK || (uint32_t)n != g->n_tags) {
        snprintf(in->ch.error, sizeof in->ch.error,
                 "CreateMonitoredItems answered %d results for %u items", n, g->n_tags);
        return IB_ERR_PROTOCOL;
    }
    for (uint32_t t = 0; t < g->n_tags && c.err == UA_OK; t++) {
        uint32_t sc = ua_get_u32(&c);
        ua_get_u32(&c);    /* MonitoredItemId */
        ua_get_double(&c); /* RevisedSamplingInterval */
        ua_get_u32(&c);    /* RevisedQueueSize */
        struct ua_extobj eo;
        ua_get_extobj(&c, &eo);
        if (c.err == UA_OK && ua_status_is_bad(sc)) {
            char text[64];
            ib_sample_bad(&s->cache[t], in->host->now_ms(), IB_R_EXCEPTION, (uint16_t)(sc >> 16));
            s->dirty = true;
            IB_LOG(in->host, in->ctx, IB_LOG_WARNING, in->devices[s->dev].name, g->tags[t].name,
                   "cannot monitor %s: the server says %s", g->name,
                   ua_status_text(sc, text, sizeof text));
        }
    }
    if (c.err != UA_OK) {
        snprintf(in->ch.error, sizeof in->ch.error, "undecodable CreateMonitoredItems response");
        return IB_ERR_PROTOCOL;
    }
    return IB_OK;
}

static int create_sub(struct op_instance *in, struct op_sub *s)
{
    struct op_group *g = &in->devices[s->dev].groups[s->grp];
    double iv = g->interval_ms ? (double)g->interval_ms : 100.0;
    uint32_t keepalive = iv >= KEEPALIVE_TARGET_MS ? 1 : (uint32_t)(KEEPALIVE_TARGET_MS / iv);
    struct ua_buf *b = ua_channel_begin(&in->ch, UA_ID_CREATE_SUBSCRIPTION_REQ, &in->session.auth);
    ua_put_double(b, iv);
    ua_put_u32(b, keepalive * 10); /* RequestedLifetimeCount: >= 3 keep-alives */
    ua_put_u32(b, keepalive);
    ua_put_u32(b, 0); /* MaxNotificationsPerPublish: no limit */
    ua_put_bool(b, true);
    ua_put_u8(b, 0); /* Priority */
    struct ua_cur c;
    int rc = ua_channel_call(&in->ch, UA_ID_CREATE_SUBSCRIPTION_RESP, &c);
    if (rc != IB_OK)
        return rc;
    uint32_t id = ua_get_u32(&c);
    double revised = ua_get_double(&c);
    ua_get_u32(&c); /* RevisedLifetimeCount */
    uint32_t rka = ua_get_u32(&c);
    if (c.err != UA_OK || id == 0) {
        snprintf(in->ch.error, sizeof in->ch.error, "undecodable CreateSubscription response");
        return IB_ERR_PROTOCOL;
    }
    s->id = id;
    s->interval_ms = revised > 0 ? revised : iv;
    s->keepalive = rka ? rka : keepalive;
    s->last_seq = s->gap_from = s->gap_to = 0;
    s->recreate = false;
    s->has_data = false;
    s->heard_ms = in->host->monotonic_ms();
    return create_items(in, s);
}

static void delete_sub(struct op_instance *in, uint32_t id)
{
    struct ua_buf *b = ua_channel_begin(&in->ch, UA_ID_DELETE_SUBSCRIPTIONS_REQ, &in->session.auth);
    ua_put_i32(b, 1);
    ua_put_u32(b, id);
    uint32_t rid;
    ua_channel_send(&in->ch, &rid); /* best effort: its answer is dropped */
}

/* The messages of a gap, asked again; what the server no longer has is logged as lost. */
static int republish(struct op_instance *in, struct op_sub *s)
{
    uint32_t from = s->gap_from, to = s->gap_to;
    s->gap_from = s->gap_to = 0;
    if (to - from >= MAX_REPUBLISH)
        from = to - MAX_REPUBLISH + 1;
    uint32_t lost = 0;
    for (uint32_t seq = from; seq <= to && seq >= from; seq++) {
        struct ua_buf *b = ua_channel_begin(&in->ch, UA_ID_REPUBLISH_REQ, &in->session.auth);
        ua_put_u32(b, s->id);
        ua_put_u32(b, seq);
        struct ua_cur c;
        int rc = ua_channel_call(&in->ch, UA_ID_REPUBLISH_RESP, &c);
        struct ua_notif_msg m;
        if (rc == IB_ERR_EXCEPTION || (rc == IB_OK && ua_notif_parse(&c, false, &m) != UA_OK)) {
            lost++;
            continue;
        }
        if (rc != IB_OK)
            return rc;
        ack(in, s->id, seq);
        apply(in, s, &m, true);
    }
    if (lost)
        IB_WARN(in->host, in->ctx,
                "subscription of group %s: %u notification message(s) %" PRIu32 "..%" PRIu32
                " could not be republished; values in them are lost",
                in->devices[s->dev].groups[s->grp].name, lost, from, to);
    return IB_OK;
}

static bool silent(struct op_instance *in, const struct op_sub *s, int64_t now)
{
    int64_t period = (int64_t)(s->interval_ms * s->keepalive);
    return now - s->heard_ms > 3 * period + (int64_t)in->p->timeout_ms;
}

/* Creates what is missing, re-creates what is silent or gone, asks for gaps, and keeps
 * Publish requests outstanding. 0, or the channel's ib_err. */
static int service(struct op_instance *in)
{
    if (in->session_lost) {
        snprintf(in->ch.error, sizeof in->ch.error, "the server lost the session");
        return IB_ERR_CONNECTION;
    }
    int64_t now = in->host->monotonic_ms();
    struct op_sub *s;
    uint32_t active = 0;
    EACH_SUB(in, s, d, g)
    {
        if (s->id && (s->recreate || silent(in, s, now))) {
            if (!s->recreate)
                IB_WARN(in->host, in->ctx,
                        "subscription of group %s sent nothing for %lld ms (not even a "
                        "keep-alive): it is created again",
                        in->devices[d].groups[g].name, (long long)(now - s->heard_ms));
            delete_sub(in, s->id);
            s->id = 0;
            s->recreated++;
        }
        if (!s->id && now >= s->retry_ms) {
            int rc = create_sub(in, s);
            if (rc == IB_ERR_CONNECTION || rc == IB_ERR_TIMEOUT)
                return IB_ERR_CONNECTION;
            if (rc != IB_OK) {
                s->id = 0;
                s->retry_ms = now + RETRY_MS;
                cache_bad(in, s, IB_R_EXCEPTION);
                if (ib_episode_fail(&s->ep, op_cause(in, rc), now) != IB_EPISODE_QUIET)
                    IB_WARN(in->host, in->ctx, "cannot subscribe group %s: %s",
                            in->devices[d].groups[g].name, in->ch.error);
            } else if (ib_episode_ok(&s->ep, now) == IB_EPISODE_ENDED) {
                IB_NOTICE(in->host, in->ctx, "group %s subscribed again",
                          in->devices[d].groups[g].name);
            }
        }
        if (s->id && s->gap_from) {
            int rc = republish(in, s);
            if (rc != IB_OK)
                return IB_ERR_CONNECTION;
        }
        active += s->id != 0;
    }
    uint32_t want = active ? (active + 1 < OP_MAX_PUBLISH ? active + 1 : OP_MAX_PUBLISH) : 0;
    while (in->n_pub < want) {
        int rc = send_publish(in);
        if (rc != IB_OK)
            return IB_ERR_CONNECTION;
    }
    return IB_OK;
}

/* ---- the callbacks --------------------------------------------------------------------------- */

static int broken(struct op_instance *in, int rc)
{
    int64_t now = in->host->monotonic_ms();
    enum ib_episode_event ev = ib_episode_fail(&in->read_ep, op_cause(in, rc), now);
    if (ev == IB_EPISODE_STARTED || ev == IB_EPISODE_CHANGED || ev == IB_EPISODE_REMIND)
        IB_WARN(in->host, in->ctx, "subscriptions interrupted: %s", in->ch.error);
    in->connected = false;
    return IB_ERR_CONNECTION;
}

/* How long a first read waits for a new subscription's first values: two publishing
 * intervals and a second, within the request timeout. */
static int64_t first_wait_ms(const struct op_instance *in, const struct op_group *g)
{
    int64_t w = 2 * (int64_t)g->interval_ms + 1000;
    return w < in->p->timeout_ms ? w : in->p->timeout_ms;
}

int op_sub_read(struct op_instance *in, uint32_t device, uint32_t group, struct ib_sample *samples)
{
    struct op_group *g = &in->devices[device].groups[group];
    struct op_sub *s = g->sub;
    if (!in->connected) {
        for (uint32_t t = 0; t < g->n_tags; t++)
            ib_sample_bad(&samples[t], in->host->now_ms(), IB_R_CONN_LOST, 0);
        return IB_ERR_CONNECTION;
    }
    in->may_push = true;
    int rc = service(in);
    if (rc == IB_OK)
        rc = ua_channel_pump(&in->ch, in->host->monotonic_ms()); /* what has arrived */
    /* A subscription just made sends the current values with its first Publish response:
     * wait for them (a first read, --once, shows values, not "connection lost"). */
    int64_t until = in->host->monotonic_ms() + first_wait_ms(in, g);
    while (rc == IB_OK && s->id && !s->has_data && in->host->monotonic_ms() < until) {
        rc = service(in);
        if (rc == IB_OK)
            rc = ua_channel_pump(&in->ch, until);
    }
    flush_all(in);
    in->may_push = false;
    if (rc != IB_OK) {
        for (uint32_t t = 0; t < g->n_tags; t++)
            ib_sample_bad(&samples[t], in->host->now_ms(), IB_R_CONN_LOST, 0);
        return broken(in, rc);
    }
    for (uint32_t t = 0; t < g->n_tags; t++)
        samples[t] = s->cache[t];
    return IB_OK;
}

int op_sub_wait(struct op_instance *in, int64_t deadline_ms)
{
    if (!in->connected)
        return IB_ERR_CONNECTION;
    in->may_push = true;
    int rc = IB_OK;
    while (rc == IB_OK && in->host->monotonic_ms() < deadline_ms) {
        rc = service(in);
        if (rc == IB_OK)
            rc = ua_channel_pump(&in->ch, deadline_ms);
        flush_all(in);
    }
    in->may_push = false;
    if (in->ch.renewals != in->renewals_logged) {
        in->renewals_logged = in->ch.renewals;
        IB_DEBUG(in->host, in->ctx,
                 "secure channel token renewed (%u on this connection, lifetime %u ms)",
                 in->ch.renewals, in->ch.revised_lifetime_ms);
    }
    if (rc == IB_OK && ib_episode_ok(&in->read_ep, in->host->monotonic_ms()) == IB_EPISODE_ENDED)
        IB_NOTICE(in->host, in->ctx, "subscriptions work again after %" PRIu64 " failures",
                  in->read_ep.count);
    return rc == IB_OK ? IB_OK : broken(in, rc);
}
