/* config_sparkplug.c: north.format and the north.sparkplug section (docs/sparkplug.md): the
 * payload format, the Sparkplug group, and what Sparkplug needs of the MQTT settings (its own
 * topic namespace, one message per group and poll). */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config_core.h"
#include "config_loader.h"
#include "schema.h"

static const char *const format_choices[] = {"json", "sparkplug_b", NULL};
static const struct ib_schema_entry format_entries[] = {
    {.key = "format",
     .type = IB_S_ENUM,
     .offset = offsetof(struct ib_spb_cfg, format),
     .def = "json",
     .choices = format_choices,
     .description = "payload format: json (docs/payload.md) or sparkplug_b (docs/sparkplug.md)"},
};
const struct ib_schema ib_config_format_schema = {
    sizeof(struct ib_spb_cfg), 1, format_entries, {0}};

static const struct ib_schema_entry spb_entries[] = {
    {.key = "group_id",
     .type = IB_S_STRING,
     .flags = IB_SF_REQUIRED,
     .offset = offsetof(struct ib_spb_cfg, group_id),
     .description = "the Sparkplug group id of this edge node (the node id is gateway.id)"},
    IB_E_STR("primary_host_id", struct ib_spb_cfg, primary_host_id, NULL,
             "births wait until this host's STATE says online; its offline ends the session"),
    IB_E_STR("bdseq_file", struct ib_spb_cfg, bdseq_file, NULL,
             "where bdSeq is kept across restarts (default: sparkplug-bdseq beside the store's "
             "directory)"),
};
const struct ib_schema ib_config_sparkplug_schema = {
    sizeof(struct ib_spb_cfg), sizeof spb_entries / sizeof spb_entries[0], spb_entries, {0}};

/* A Sparkplug id: an MQTT topic level, so no '/', '+' or '#' (specification: Topics). */
static bool spb_id_ok(const char *s)
{
    return s && *s && !strpbrk(s, "/+#");
}

void ib_loader_sparkplug(struct ib_loader *L, struct ynode *north)
{
    struct ib_spb_cfg *sp = &L->cfg->spb;
    struct ynode *n = ib_loader_get(L, north, "sparkplug");
    if (sp->format != IB_FORMAT_SPARKPLUG_B) {
        if (n)
            ib_loader_err(L, n, "north", "sparkplug",
                          "a sparkplug section needs format: sparkplug_b (north.format)");
        return;
    }
    if (!n) {
        ib_loader_err(L, north, "north", NULL,
                      "format: sparkplug_b needs a sparkplug section with group_id");
        return;
    }
    struct ib_spec spec = {&ib_config_sparkplug_schema, sp};
    if (!ib_schema_apply(L, n, "north.sparkplug", &spec, 1, NULL))
        return;
    if (sp->group_id && !spb_id_ok(sp->group_id))
        ib_loader_err(L, ib_loader_get(L, n, "group_id"), "north.sparkplug", "group_id",
                      "'%s' is not a Sparkplug group id: it must not be empty nor contain '/', "
                      "'+' or '#'",
                      sp->group_id);
    if (sp->primary_host_id && !spb_id_ok(sp->primary_host_id))
        ib_loader_err(L, ib_loader_get(L, n, "primary_host_id"), "north.sparkplug",
                      "primary_host_id",
                      "'%s' is not a Sparkplug host id: it must not be empty nor contain '/', "
                      "'+' or '#'",
                      sp->primary_host_id);
    if (sp->bdseq_file)
        sp->bdseq_file = ib_loader_resolve(L, sp->bdseq_file);
    struct ib_mqtt_cfg *m = &L->cfg->mqtt;
    if (m->layout != IB_LAYOUT_BATCH)
        ib_loader_err(L, north, "north.mqtt", "layout",
                      "format: sparkplug_b sends one DDATA per device group and poll: remove "
                      "layout: tag");
    /* The data topic: Sparkplug's, whatever the JSON template says. */
    m->topic = ib_arena_printf(&L->cfg->arena, "spBv1.0/%s/DDATA/{gateway}/{device}",
                               sp->group_id ? sp->group_id : "");
}

/* ---- names unique without regard to case (Sparkplug rule 14) -------------------------------- */

struct spb_name {
    const char *group, *tag; /* the metric's name is group/tag */
    const struct ib_where *where;
};

static int name_cmp(const void *a, const void *b)
{
    const struct spb_name *x = a, *y = b;
    int c = strcasecmp(x->group, y->group);
    return c ? c : strcasecmp(x->tag, y->tag);
}

/* The metrics of device d of connection c: two whose names differ only in case are an error. */
static void device_metrics(struct ib_loader *L, const struct ib_cfg_connection *c, uint32_t d)
{
    const struct ib_device_config *dev = &c->pub.devices[d];
    size_t n = 0;
    for (uint32_t g = 0; g < dev->n_groups; g++)
        n += dev->groups[g].n_tags;
    if (n < 2)
        return;
    struct spb_name *v = calloc(n, sizeof *v);
    if (!v) {
        ib_diag_add(L->diag, c->where, NULL, "out of memory checking Sparkplug metric names");
        return;
    }
    size_t k = 0; /* names a failed load left NULL are not compared (their error is out) */
    for (uint32_t g = 0; g < dev->n_groups; g++)
        for (uint32_t t = 0; t < dev->groups[g].n_tags; t++)
            if (dev->groups[g].name && dev->groups[g].tags[t].name)
                v[k++] = (struct spb_name){dev->groups[g].name, dev->groups[g].tags[t].name,
                                           dev->groups[g].tags[t].where};
    n = k;
    qsort(v, n, sizeof *v, name_cmp);
    for (size_t i = 1; i < n; i++)
        if (!name_cmp(&v[i - 1], &v[i]))
            ib_diag_add(L->diag, v[i].where, NULL,
                        "device %s: Sparkplug metric '%s/%s' differs from '%s/%s' only in case; "
                        "Sparkplug names must be unique without regard to case: rename one",
                        dev->name, v[i].group, v[i].tag, v[i - 1].group, v[i - 1].tag);
    free(v);
}

void ib_loader_sparkplug_names(struct ib_loader *L)
{
    const struct ib_config *cfg = L->cfg;
    if (cfg->spb.format != IB_FORMAT_SPARKPLUG_B)
        return;
    for (size_t a = 0; a < cfg->n_connections; a++) {
        const struct ib_cfg_connection *ca = &cfg->connections[a];
        for (uint32_t da = 0; da < ca->pub.n_devices; da++) {
            device_metrics(L, ca, da);
            /* device ids: against every later device of every connection */
            for (size_t b = a; b < cfg->n_connections; b++) {
                const struct ib_cfg_connection *cb = &cfg->connections[b];
                for (uint32_t db = b == a ? da + 1 : 0; db < cb->pub.n_devices; db++)
                    if (ca->pub.devices[da].name && cb->pub.devices[db].name &&
                        !strcasecmp(ca->pub.devices[da].name, cb->pub.devices[db].name))
                        ib_diag_add(L->diag, cb->devices[db].where, NULL,
                                    "Sparkplug device id '%s' differs from '%s' only in case; "
                                    "Sparkplug ids must be unique without regard to case: "
                                    "rename one",
                                    cb->pub.devices[db].name, ca->pub.devices[da].name);
            }
        }
    }
}
