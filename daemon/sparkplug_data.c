/* sparkplug_data.c: a stored record (sparkplug_record.h) becomes a message when the north sends
 * it: DDATA with the changed metrics (marked historical when collected before this session's
 * NBIRTH), preceded by the device's DBIRTH when it was not born in this session or died; a
 * record of a device whose connection was lost becomes its DDEATH. North thread only. */
#include "sparkplug_impl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "sparkplug_record.h"

/* What a record holds, read once before it is encoded. */
struct rec_summary {
    uint32_t count, good; /* samples; good ones of a number or bool */
    bool all_conn_lost, any_good, historical, broken;
    bool fast; /* node->data holds the DDATA's metrics, written in the same pass */
};

static int find_device(const struct ib_spb_node *node, const char *topic)
{
    const char *slash = strrchr(topic, '/');
    const char *name = slash ? slash + 1 : topic;
    for (size_t d = 0; d < node->n_devs; d++)
        if (strcmp(node->devs[d].name, name) == 0)
            return (int)d;
    return -1;
}

/* The metric a stored sample stands for, if it belongs to device dev; else -1. */
static long metric_of(const struct ib_spb_node *node, uint32_t dev, const struct ib_spb_reader *rd,
                      uint32_t tag)
{
    uint64_t alias = (uint64_t)rd->alias_base + tag;
    const struct ib_spb_device_def *d = &node->devs[dev];
    if (alias < IB_SPB_FIRST_DEVICE_ALIAS)
        return -1;
    uint64_t i = alias - IB_SPB_FIRST_DEVICE_ALIAS;
    return i >= d->first && i < (uint64_t)d->first + d->n ? (long)i : -1;
}

/* Keep s as the metric's last sample (for births); a string is copied. */
static void keep_last(struct spb_metric_rt *m, const struct ib_sample *s)
{
    m->last = *s;
    m->has_last = true;
    if (s->quality != IB_Q_GOOD || s->value.type != IB_V_STRING)
        return;
    size_t len = s->value.v.s.len;
    if (len + 1 > m->str_cap) {
        char *p = realloc(m->str, len + 1);
        if (!p) {
            ib_sample_bad(&m->last, s->ts_ms, IB_R_INTERNAL, 0);
            return;
        }
        m->str = p;
        m->str_cap = len + 1;
    }
    memcpy(m->str, s->value.v.s.ptr, len);
    m->last.value.v.s.ptr = m->str;
}

static void summarize(struct ib_spb_node *node, uint32_t dev, const struct ib_store_rec *r,
                      struct rec_summary *sum)
{
    memset(sum, 0, sizeof *sum);
    struct ib_spb_reader rd;
    struct ib_spb_rsample x;
    sum->all_conn_lost = true;
    if (ib_spb_record_open(&rd, r->payload, r->len) < 0 || rd.layout != node->layout) {
        sum->broken = true;
        return;
    }
    sum->fast = spb_fast_begin(&node->data, ib_now_ms()) == 0;
    int rc;
    while ((rc = ib_spb_record_next(&rd, &x)) == 1) {
        long i = metric_of(node, dev, &rd, x.tag);
        bool hist = x.s.ts_ms < node->session_ms;
        sum->count++;
        sum->historical |= hist;
        if (i >= 0 && !hist)
            keep_last(&node->m[i], &x.s); /* as it will be sent, for births */
        sum->any_good |= x.s.quality == IB_Q_GOOD;
        sum->good += x.s.quality == IB_Q_GOOD && x.s.value.type != IB_V_STRING;
        sum->all_conn_lost &= x.s.quality == IB_Q_BAD && x.s.reason == IB_R_CONN_LOST;
        if (i < 0 || x.s.quality != IB_Q_GOOD)
            continue;
        struct spb_metric_rt *m = &node->m[i];
        uint32_t dt = spb_type_of(&x.s.value);
        if (m->guessed && m->datatype != dt)
            node->retype = true; /* announced with a guess: the node is born again */
        if (!m->datatype || m->guessed) {
            m->datatype = dt;
            m->guessed = false;
        }
        if (sum->fast) /* the fast path of DDATA while every sample allows it */
            sum->fast = spb_fast_metric(&node->data, (uint64_t)i + IB_SPB_FIRST_DEVICE_ALIAS,
                                        x.s.ts_ms, m->datatype, hist, &x.s) == 1;
    }
    sum->broken = rc < 0;
    sum->fast &= sum->good == sum->count;
}

int spb_dbirth(struct ib_spb_node *node, struct ib_north *n, uint32_t dev, uint64_t rec_seq)
{
    const struct ib_spb_device_def *d = &node->devs[dev];
    struct spb_msg msg;
    if (spb_msg_init(&msg, d->n) < 0)
        return -1;
    int64_t now = ib_now_ms();
    for (uint32_t i = d->first; i < d->first + d->n; i++) {
        struct spb_metric_rt *rt = &node->m[i];
        Ibspb__Metric *m = spb_msg_add(&msg);
        m->name = (char *)node->defs[i].name;
        m->has_alias = true;
        m->alias = i + IB_SPB_FIRST_DEVICE_ALIAS;
        struct ib_sample s = rt->last;
        if (!rt->has_last)
            ib_sample_bad(&s, now, IB_R_NONE, 0);
        m->has_timestamp = true;
        m->timestamp = (uint64_t)(rt->has_last ? s.ts_ms : now);
        if (!rt->datatype) { /* never read good yet: corrected by a rebirth if wrong */
            rt->datatype = SPB_DOUBLE;
            rt->guessed = true;
        }
        spb_put_sample(&msg, rt->datatype, &s);
        if (!rt->has_last && msg.reason[msg.p.n_metrics - 1][0])
            snprintf(msg.reason[msg.p.n_metrics - 1], sizeof msg.reason[0], "not_read_yet");
        if (node->defs[i].unit)
            spb_prop_str(&msg, "engUnit", node->defs[i].unit);
        if (node->defs[i].has_range) {
            spb_prop_double(&msg, "engLow", node->defs[i].eng_low);
            spb_prop_double(&msg, "engHigh", node->defs[i].eng_high);
        }
    }
    int rc = spb_msg_pack(&msg, &node->out, now, spb_next_seq(node));
    spb_msg_free(&msg);
    if (rc < 0)
        return -1;
    char topic[512];
    snprintf(topic, sizeof topic, "spBv1.0/%s/DBIRTH/%s/%s", node->cfg->group_id, node->node_id,
             d->name);
    node->d[dev].born = true;
    node->d[dev].dead = false;
    return ib_north_publish(n, topic, node->out.p, node->out.len, 0, rec_seq);
}

static int ddeath(struct ib_spb_node *node, struct ib_north *n, uint32_t dev, uint64_t rec_seq)
{
    struct spb_msg msg;
    if (spb_msg_init(&msg, 1) < 0)
        return -1;
    int rc = spb_msg_pack(&msg, &node->out, ib_now_ms(), spb_next_seq(node));
    spb_msg_free(&msg);
    if (rc < 0)
        return -1;
    char topic[512];
    snprintf(topic, sizeof topic, "spBv1.0/%s/DDEATH/%s/%s", node->cfg->group_id, node->node_id,
             node->devs[dev].name);
    node->d[dev].dead = true;
    return ib_north_publish(n, topic, node->out.p, node->out.len, 0, rec_seq);
}

static int ddata(struct ib_spb_node *node, struct ib_north *n, uint32_t dev,
                 const struct ib_store_rec *r, const struct rec_summary *sum)
{
    char topic[512];
    snprintf(topic, sizeof topic, "spBv1.0/%s/DDATA/%s/%s", node->cfg->group_id, node->node_id,
             node->devs[dev].name);
    if (sum->fast) {
        if (spb_fast_end(&node->data, spb_next_seq(node)) < 0)
            return -1;
        return ib_north_publish(n, topic, node->data.p, node->data.len, 0, r->seq);
    }
    struct spb_msg msg;
    if (spb_msg_init(&msg, sum->count) < 0)
        return -1;
    struct ib_spb_reader rd;
    struct ib_spb_rsample x;
    ib_spb_record_open(&rd, r->payload, r->len);
    while (ib_spb_record_next(&rd, &x) == 1) {
        long i = metric_of(node, dev, &rd, x.tag);
        if (i < 0)
            continue;
        Ibspb__Metric *m = spb_msg_add(&msg);
        m->has_alias = true;
        m->alias = (uint64_t)i + IB_SPB_FIRST_DEVICE_ALIAS;
        m->has_timestamp = true;
        m->timestamp = (uint64_t)x.s.ts_ms;
        m->has_is_historical = m->is_historical = sum->historical;
        spb_put_sample(&msg, node->m[i].datatype ? node->m[i].datatype : SPB_DOUBLE, &x.s);
    }
    int rc = spb_msg_pack(&msg, &node->out, ib_now_ms(), spb_next_seq(node));
    spb_msg_free(&msg);
    if (rc < 0)
        return -1;
    return ib_north_publish(n, topic, node->out.p, node->out.len, 0, r->seq);
}

/* Returns 0 (handed to paho: acknowledged when written), 1 (nothing to send: the north
 * acknowledges the record itself), -1 or a paho error (sent again later). */
int spb_send_record(void *ud, struct ib_north *n, const struct ib_store_rec *r)
{
    struct ib_spb_node *node = ud;
    int dev = find_device(node, r->topic);
    struct rec_summary sum;
    if (dev >= 0)
        summarize(node, (uint32_t)dev, r, &sum);
    if (dev < 0 || sum.broken) {
        ib_log(IB_LOG_WARNING, NULL, NULL, NULL,
               "sparkplug: a stored record on %s is not one of this configuration's Sparkplug "
               "records (written by the JSON format or another configuration); skipped",
               r->topic);
        return 1;
    }
    if (node->retype) {
        int rc = spb_births(node, n);
        if (rc != 0)
            return rc;
    }
    struct spb_device_rt *d = &node->d[dev];
    if (!sum.historical && sum.count && sum.all_conn_lost) {
        if (d->born && !d->dead)
            return ddeath(node, n, (uint32_t)dev, r->seq);
        return 1;
    }
    if (!d->born || d->dead) {
        int rc = spb_dbirth(node, n, (uint32_t)dev, 0);
        if (rc != 0)
            return rc;
    }
    return ddata(node, n, (uint32_t)dev, r, &sum);
}
