/* gateway_sparkplug.c: the gateway's Sparkplug B edge node (docs/sparkplug.md): its metric table
 * from the configuration (devices in order, a metric "group/tag" per tag, aliases from
 * IB_SPB_FIRST_DEVICE_ALIAS in configuration order), its figures, and attaching it to the north
 * as the payload format. Main thread, while the north is stopped. */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "command.h"
#include "gateway_priv.h"
#include "log.h"
#include "sparkplug_node.h"

struct ib_gateway_spb {
    struct ib_spb_device_def *devs;
    struct ib_spb_metric_def *metrics;
    size_t n_devs, n_metrics;
    struct ib_spb_cfg cfg; /* the configuration's, with the bdSeq file resolved */
    char *bdseq_file;
    struct ib_spb_node *node;
    struct ib_commands *commands;
    atomic_uint_fast64_t dcmd_ids;
};

uint32_t ib_gateway_spb_alias(const struct ib_config *cfg, size_t ci, uint32_t dev, uint32_t grp)
{
    uint32_t a = IB_SPB_FIRST_DEVICE_ALIAS;
    for (size_t c = 0; c < cfg->n_connections; c++) {
        const struct ib_connection_config *cc = &cfg->connections[c].pub;
        for (uint32_t d = 0; d < cc->n_devices; d++)
            for (uint32_t g = 0; g < cc->devices[d].n_groups; g++) {
                if (c == ci && d == dev && g == grp)
                    return a;
                a += cc->devices[d].groups[g].n_tags;
            }
    }
    return a;
}

static uint32_t fnv(uint32_t h, const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        h = (h ^ *p) * 16777619u;
    return (h ^ 0xff) * 16777619u; /* a separator no name contains */
}

uint32_t ib_gateway_spb_layout(const struct ib_config *cfg)
{
    uint32_t h = 2166136261u;
    for (size_t c = 0; c < cfg->n_connections; c++) {
        const struct ib_connection_config *cc = &cfg->connections[c].pub;
        for (uint32_t d = 0; d < cc->n_devices; d++) {
            h = fnv(h, cc->devices[d].name);
            for (uint32_t g = 0; g < cc->devices[d].n_groups; g++) {
                const struct ib_group_config *gr = &cc->devices[d].groups[g];
                h = fnv(h, gr->name);
                for (uint32_t t = 0; t < gr->n_tags; t++)
                    h = fnv(h, gr->tags[t].name);
            }
        }
    }
    return h;
}

static void free_table(struct ib_gateway_spb *s)
{
    for (size_t i = 0; s->metrics && i < s->n_metrics; i++)
        free((char *)s->metrics[i].name);
    free(s->metrics);
    free(s->devs);
    free(s->bdseq_file);
    free(s);
}

/* One metric per tag, named group/tag, in the order ib_gateway_spb_alias counts. */
static int add_device(struct ib_gateway_spb *s, const struct ib_cfg_connection *cc, uint32_t d)
{
    const struct ib_device_config *dc = &cc->pub.devices[d];
    struct ib_spb_device_def *dev = &s->devs[s->n_devs++];
    dev->name = dc->name;
    dev->first = (uint32_t)s->n_metrics;
    for (uint32_t g = 0; g < dc->n_groups; g++)
        for (uint32_t t = 0; t < dc->groups[g].n_tags; t++) {
            const struct ib_tag_core *tc = &cc->devices[d].groups[g].tags[t];
            struct ib_spb_metric_def *m = &s->metrics[s->n_metrics++];
            size_t len = strlen(dc->groups[g].name) + strlen(dc->groups[g].tags[t].name) + 2;
            char *name = malloc(len);
            if (!name)
                return -1;
            snprintf(name, len, "%s/%s", dc->groups[g].name, dc->groups[g].tags[t].name);
            m->name = name;
            m->tag = dc->groups[g].tags[t].name;
            m->unit = tc->unit && *tc->unit ? tc->unit : NULL;
            m->has_range = tc->has_range;
            m->eng_low = tc->range_min;
            m->eng_high = tc->range_max;
            m->device = (uint32_t)(s->n_devs - 1);
            m->scaled = tc->scaled;
            m->writable = dc->groups[g].tags[t].writable;
        }
    dev->n = (uint32_t)s->n_metrics - dev->first;
    return 0;
}

/* The bdSeq file: as configured, else sparkplug-bdseq beside the store's directory (the state
 * directory by default). */
static char *bdseq_path(const struct ib_config *cfg)
{
    if (cfg->spb.bdseq_file)
        return strdup(cfg->spb.bdseq_file);
    const char *q = cfg->store.path;
    const char *slash = strrchr(q, '/');
    size_t dir = slash ? (size_t)(slash - q) : 0;
    size_t len = dir + 32;
    char *p = malloc(len);
    if (p)
        snprintf(p, len, "%.*s%ssparkplug-bdseq", (int)dir, q, slash ? "/" : "");
    return p;
}

static void figures(void *ud, struct ib_spb_figures *f)
{
    struct ib_gateway *gw = ud;
    struct ib_store_stats st;
    ib_store_stats(gw->store, &st);
    f->backlog = st.queued;
    for (size_t i = 0; i < gw->n_pollers; i++)
        f->connections_up += atomic_load(&gw->pollers[i]->up);
}

/* The answer of a DCMD write (a poller's thread or the caller's): a refusal is logged and
 * counted; an accepted write shows in the next DDATA, when the poll reads the new value. */
static void dcmd_done(void *ud, const struct ib_cmd_answer *a)
{
    struct ib_gateway_spb *s = ud;
    for (size_t i = 0; i < a->n; i++) {
        const struct ib_cmd_tag_result *r = &a->results[i];
        if (r->result == IB_CMD_OK)
            continue;
        ib_spb_node_refused(s->node);
        ib_log(IB_LOG_WARNING, NULL, a->device, r->tag, "sparkplug: DCMD write refused: %s%s%s",
               ib_command_result_name(r->result), r->error[0] ? ": " : "", r->error);
    }
}

/* paho's thread: a DCMD metric into the command path (ACL, limits, expiry by the DCMD's
 * timestamp, audit), as a request of one tag with an id of our own. */
static int dcmd_write(void *ud, const char *device, const struct ib_spb_metric_def *m,
                      const struct ib_value *v, int64_t ts_ms)
{
    struct ib_gateway_spb *s = ud;
    char id[64];
    snprintf(id, sizeof id, "sparkplug-%u-%llu", ib_spb_node_bdseq(s->node),
             (unsigned long long)atomic_fetch_add(&s->dcmd_ids, 1));
    struct ib_cmd_write w = {.tag = m->tag, .value = *v};
    struct ib_cmd_meta meta = {
        .id = id, .ts_ms = ts_ms, .received_ms = ib_now_ms(), .source = "sparkplug"};
    return ib_command_apply_writes(s->commands, device, &w, 1, &meta, dcmd_done, s);
}

int ib_gateway_spb_attach(struct ib_gateway *gw, const struct ib_config *cfg, struct ib_north *n)
{
    if (cfg->spb.format != IB_FORMAT_SPARKPLUG_B)
        return 0;
    struct ib_gateway_spb *s = calloc(1, sizeof *s);
    if (!s)
        return -1;
    s->devs = calloc(cfg->n_devices ? cfg->n_devices : 1, sizeof *s->devs);
    s->metrics = calloc(cfg->n_tags ? cfg->n_tags : 1, sizeof *s->metrics);
    s->bdseq_file = bdseq_path(cfg);
    if (!s->devs || !s->metrics || !s->bdseq_file)
        goto oom;
    for (size_t c = 0; c < cfg->n_connections; c++)
        for (uint32_t d = 0; d < cfg->connections[c].pub.n_devices; d++)
            if (add_device(s, &cfg->connections[c], d) < 0)
                goto oom;
    s->cfg = cfg->spb;
    s->cfg.bdseq_file = s->bdseq_file;
    s->node =
        ib_spb_node_new(&s->cfg, cfg->gateway_id, s->devs, s->n_devs, s->metrics, s->n_metrics);
    if (!s->node)
        goto oom;
    ib_spb_node_set_figures(s->node, figures, gw);
    ib_spb_node_set_layout(s->node, ib_gateway_spb_layout(cfg));
    s->commands = gw->commands;
    if (s->commands)
        ib_spb_node_set_writer(s->node, dcmd_write, s);
    ib_north_set_format(n, ib_spb_node_format(s->node));
    gw->spb = s;
    return 0;
oom:
    ib_err("out of memory building the Sparkplug metric table");
    free_table(s);
    return -1;
}

void ib_gateway_spb_detach(struct ib_gateway *gw)
{
    if (!gw->spb)
        return;
    ib_spb_node_free(gw->spb->node);
    free_table(gw->spb);
    gw->spb = NULL;
}
