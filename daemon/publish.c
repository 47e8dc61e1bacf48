/* Publishing a group's samples: the report-by-exception choice for a poll, the encoding into
 * records and the hand-off to the store. The one path from samples to the north: a normal
 * poll and a stalled plugin call (watch.c) both use ib_publish. */
#include "gateway_priv.h"
#include "log.h"
#include "store.h"

void ib_publish(struct poller *p, struct group_rt *g, struct ib_buf *body, int64_t ts,
                const struct ib_sample *s, const uint32_t *idx, uint32_t n)
{
    if (!p->cfg->has_north)
        return;
    if (!g->tag_topics) {
        if (ib_record_encode(body, &g->enc, ts, s, idx, n) < 0)
            goto oom;
        ib_store_push(p->gw->store, g->topic, ib_record_seq_head, NULL, body->p, body->len);
        if (g->mx)
            atomic_fetch_add_explicit(&g->mx->published, n, memory_order_relaxed);
        return;
    }
    for (uint32_t k = 0; k < (idx ? n : g->g->n_tags); k++) {
        uint32_t i = idx ? idx[k] : k;
        if (ib_record_encode_tag(body, &g->enc, i, &s[i]) < 0)
            goto oom;
        ib_store_push(p->gw->store, g->tag_topics[i], ib_record_seq_head, NULL, body->p, body->len);
        if (g->mx)
            atomic_fetch_add_explicit(&g->mx->published, 1, memory_order_relaxed);
    }
    return;
oom:
    ib_log(IB_LOG_ERR, p->cc->pub.name, g->dev_name, NULL,
           "out of memory encoding group %s; this poll is lost", g->g->name);
}

void ib_publish_poll(struct poller *p, struct group_rt *g, int64_t poll_ts)
{
    atomic_fetch_add(&p->values, g->g->n_tags);
    int64_t now = ib_monotonic_ms();
    uint32_t n = 0;
    for (uint32_t i = 0; i < g->g->n_tags; i++)
        if (ib_report_decide(&g->cg->tags[i].report, &g->rs[i], &g->norm[i], now,
                             g->cg->stale_after_ms))
            g->send_idx[n++] = i;
    if (n)
        ib_publish(p, g, &g->body, poll_ts, g->norm, g->send_idx, n);
}
