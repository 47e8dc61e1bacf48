/* Building a poller: its groups' buffers, encoders, reporting state and topics, and its
 * plugin instance (create(), no I/O); and freeing it. Main thread. */
#include <stdlib.h>
#include <string.h>

#include "command_impl.h"
#include "gateway_priv.h"
#include "topic.h"

void ib_poller_free(struct poller *p)
{
    if (!p)
        return;
    if (p->inst)
        p->p->destroy(p->inst);
    p->inst = NULL;
    for (size_t i = 0; i < p->n_groups; i++) {
        struct group_rt *g = &p->groups[i];
        for (uint32_t t = 0; g->g && t < g->g->n_tags; t++) {
            if (g->rs)
                ib_report_state_free(&g->rs[t]);
            if (g->tag_topics)
                free(g->tag_topics[t]);
        }
        free(g->rs);
        free(g->stall_samples);
        ib_buf_free(&g->stall_body);
        free(g->send_idx);
        free(g->tag_topics);
        free(g->topic);
        free(g->raw);
        free(g->norm);
        ib_record_enc_free(&g->enc);
        ib_buf_free(&g->body);
    }
    free(p->groups);
    ib_cmd_queue_free(p->cmdq);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    ib_config_free(p->cfg);
    free(p);
}

static int poller_build(struct poller *p, struct ib_diag *diag)
{
    const struct ib_config *cfg = p->cfg;
    const struct ib_cfg_connection *cc = p->cc;
    size_t ng = 0;
    for (uint32_t d = 0; d < cc->pub.n_devices; d++)
        ng += cc->pub.devices[d].n_groups;
    p->groups = calloc(ng ? ng : 1, sizeof *p->groups);
    if (!p->groups)
        return -1;
    size_t k = 0;
    int64_t now = ib_monotonic_ms();
    for (uint32_t d = 0; d < cc->pub.n_devices; d++) {
        const struct ib_device_config *dc = &cc->pub.devices[d];
        for (uint32_t gi = 0; gi < dc->n_groups; gi++, k++) {
            struct group_rt *g = &p->groups[k];
            p->n_groups = k + 1;
            g->dev = d;
            g->grp = gi;
            g->dev_name = dc->name;
            g->g = &dc->groups[gi];
            g->cg = &cc->devices[d].groups[gi];
            g->mx = p->gw->metrics
                        ? ib_metrics_group(p->gw->metrics, cc->pub.name, dc->name, g->g->name)
                        : NULL;
            g->raw = calloc(g->g->n_tags, sizeof *g->raw);
            g->norm = calloc(g->g->n_tags, sizeof *g->norm);
            g->rs = calloc(g->g->n_tags, sizeof *g->rs);
            g->send_idx = calloc(g->g->n_tags, sizeof *g->send_idx);
            if (!g->raw || !g->norm || !g->rs || !g->send_idx ||
                ib_record_enc_init(&g->enc, cfg->gateway_id, cc->pub.name, dc->name,
                                   cc->devices[d].meta_json, g->g->name, g->g->n_tags, g->cg->tags))
                return -1;
            for (uint32_t t = 0; t < g->g->n_tags; t++)
                ib_report_state_init(&g->rs[t], now);
            if (!cfg->has_north)
                continue;
            struct ib_topic_vars v = {.gateway = cfg->gateway_id,
                                      .connection = cc->pub.name,
                                      .device = dc->name,
                                      .group = g->g->name};
            if (cfg->mqtt.layout != IB_LAYOUT_TAG) {
                char buf[512];
                if (ib_topic_expand(cfg->mqtt.topic, &v, buf, sizeof buf) < 0) {
                    ib_diag_add(diag, dc->where, NULL,
                                "the topic of group '%s' is longer than %zu bytes", g->g->name,
                                sizeof buf - 1);
                    return -1;
                }
                if (!(g->topic = strdup(buf)))
                    return -1;
                continue;
            }
            g->tag_topics = calloc(g->g->n_tags, sizeof *g->tag_topics);
            if (!g->tag_topics)
                return -1;
            for (uint32_t t = 0; t < g->g->n_tags; t++) {
                char buf[1024];
                v.tag = g->g->tags[t].name;
                if (ib_topic_expand(cfg->mqtt.topic, &v, buf, sizeof buf) < 0 ||
                    !(g->tag_topics[t] = strdup(buf))) {
                    ib_diag_add(diag, g->g->tags[t].where, NULL,
                                "the topic of tag '%s' is longer than %zu bytes",
                                g->g->tags[t].name, sizeof buf - 1);
                    return -1;
                }
            }
        }
    }
    return 0;
}

struct poller *ib_poller_new(struct ib_gateway *gw, struct ib_config *cfg, size_t ci,
                             struct ib_diag *diag)
{
    struct poller *p = calloc(1, sizeof *p);
    if (!p) {
        ib_diag_add(diag, NULL, NULL, "out of memory");
        return NULL;
    }
    const struct ib_cfg_connection *cc = &cfg->connections[ci];
    p->gw = gw;
    p->cfg = ib_config_ref(cfg);
    ib_config_conn_digest(cfg, ci, p->digest);
    p->cc = cc;
    p->p = cc->plugin;
    p->hctx.conn = cc->pub.name;
    p->hctx.rl = (struct ib_ratelimit)IB_RATELIMIT_INIT(60000, 20);
    p->rng = (uint64_t)ib_now_ms() ^ (uint64_t)(uintptr_t)p;
    pthread_mutex_init(&p->mu, NULL);
    ib_cond_init_monotonic(&p->cv);
    if (poller_build(p, diag) < 0 ||
        !(p->cmdq = ib_cmd_queue_new((size_t)cfg->commands.queue, p->n_groups))) {
        ib_poller_free(p);
        return NULL;
    }
    p->hctx.diag = diag;
    size_t before = diag->n;
    int rc = p->p->create(&gw->host, &p->hctx, &cc->pub, &p->inst);
    p->hctx.diag = NULL;
    if (rc != 0) {
        if (diag->n == before)
            ib_diag_add(diag, cc->where, NULL, "plugin '%s' refused the connection: %s", p->p->name,
                        ib_strerror(rc));
        p->inst = NULL;
        ib_poller_free(p);
        return NULL;
    }
    return p;
}
