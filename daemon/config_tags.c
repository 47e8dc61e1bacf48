/* The groups of a device and their tags, from YAML lists and CSV tag lists: the core's group
 * and tag keys (interval, scaling, unit, reporting with deadbands and ranges) beside the
 * plugin's, and the names that must be unique within a device. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config_loader.h"
#include "schema.h"
#include "plugin_loader.h"

struct group_section {
    const char *name;
    int64_t interval_ms;
};
static const struct ib_schema_entry group_entries[] = {
    {.key = "name",
     .type = IB_S_STRING,
     .flags = IB_SF_REQUIRED,
     .offset = offsetof(struct group_section, name),
     .description = "group name, unique in its device"},
    IB_E_INT("interval_ms", struct group_section, interval_ms, "1000", 0, 86400000,
             "poll interval of the group (at least 10; 0: continuously, each poll as soon as the "
             "connection's previous one is done)"),
};
static const struct ib_schema group_schema = {sizeof(struct group_section), 2, group_entries, {0}};

/* A continuous group (interval_ms: 0) counts 1 s as its "poll interval" for the default
 * stale_after (3 intervals). */
#define CONTINUOUS_STALE_MS 1000

/* report: at group and tag level. */
struct report_section {
    int32_t mode;
    const char *deadband;
    int64_t heartbeat_ms;
    int64_t stale_after_ms;
};
static const char *const mode_choices[] = {"always", "on_change", "deadband", NULL};
#define REPORT_ENTRIES                                                                             \
    {.key = "mode",                                                                                \
     .type = IB_S_ENUM,                                                                            \
     .offset = offsetof(struct report_section, mode),                                              \
     .choices = mode_choices,                                                                      \
     .description = "always (every poll), on_change or deadband"},                                 \
        {.key = "deadband",                                                                        \
         .type = IB_S_STRING,                                                                      \
         .offset = offsetof(struct report_section, deadband),                                      \
         .description = "smallest change reported: a number (0.5) or a percent of range (2%)"},    \
    {                                                                                              \
        .key = "heartbeat", .type = IB_S_DURATION, .flags = IB_SF_RANGE,                           \
        .offset = offsetof(struct report_section, heartbeat_ms), .min = 1, .max = 31536000000LL,   \
        .description = "re-send an unchanged value after this long"                                \
    }
static const struct ib_schema_entry group_report_entries[] = {
    REPORT_ENTRIES,
    {.key = "stale_after",
     .type = IB_S_DURATION,
     .flags = IB_SF_RANGE,
     .offset = offsetof(struct report_section, stale_after_ms),
     .min = 1,
     .max = 31536000000LL,
     .description = "report a tag stale when not read successfully this long (default: 3 "
                    "intervals)"},
};
static const struct ib_schema group_report_schema = {
    sizeof(struct report_section), 4, group_report_entries, {0}};
static const struct ib_schema_entry tag_report_entries[] = {REPORT_ENTRIES};
static const struct ib_schema tag_report_schema = {
    sizeof(struct report_section), 3, tag_report_entries, {0}};

struct tag_section {
    const char *name;
    double scale, offset;
    const char *unit, *description;
    bool writable;
    const char *deadband;
    const char *write_min, *write_max;
    int64_t write_interval_ms;
};
static const struct ib_schema_entry tag_entries[] = {
    {.key = "name",
     .type = IB_S_STRING,
     .flags = IB_SF_REQUIRED,
     .offset = offsetof(struct tag_section, name),
     .description = "tag name, unique in its device"},
    {.key = "scale",
     .type = IB_S_DOUBLE,
     .offset = offsetof(struct tag_section, scale),
     .def = "1",
     .description = "value = raw * scale + offset"},
    {.key = "offset",
     .type = IB_S_DOUBLE,
     .offset = offsetof(struct tag_section, offset),
     .def = "0",
     .description = "value = raw * scale + offset"},
    IB_E_STR("unit", struct tag_section, unit, NULL, "engineering unit"),
    IB_E_STR("description", struct tag_section, description, NULL, "free text"),
    {.key = "writable",
     .type = IB_S_BOOL,
     .offset = offsetof(struct tag_section, writable),
     .def = "false",
     .description = "the tag accepts writes"},
    {.key = "deadband",
     .type = IB_S_STRING,
     .offset = offsetof(struct tag_section, deadband),
     .description = "report this tag by deadband: a number (0.5) or a percent of range (2%)"},
    IB_E_STR("write_min", struct tag_section, write_min, NULL,
             "smallest value a command may write, in engineering units"),
    IB_E_STR("write_max", struct tag_section, write_max, NULL,
             "largest value a command may write, in engineering units"),
    {.key = "write_interval",
     .type = IB_S_DURATION,
     .flags = IB_SF_RANGE,
     .offset = offsetof(struct tag_section, write_interval_ms),
     .min = 0,
     .max = 86400000,
     .description = "minimum time between two writes of the tag (a faster one is busy)"},
};
static const struct ib_schema tag_schema = {
    sizeof(struct tag_section), sizeof tag_entries / sizeof tag_entries[0], tag_entries, {0}};

/* A tag's write keys: limits in engineering units, checked against each other. */
static void load_write_keys(struct ib_loader *L, struct ynode *tn, const char *tpath,
                            const struct tag_section *ts, struct ib_tag_write *w)
{
    const char *const keys[] = {"write_min", "write_max"};
    const char *const vals[] = {ts->write_min, ts->write_max};
    double *out[] = {&w->min, &w->max};
    bool *has[] = {&w->has_min, &w->has_max};
    for (int i = 0; i < 2; i++) {
        if (!vals[i])
            continue;
        if (ib_schema_parse_double(vals[i], out[i]) < 0 || !isfinite(*out[i]))
            ib_loader_err(L, ib_loader_get(L, tn, keys[i]), tpath, keys[i],
                          "expected a number, found '%s'", vals[i]);
        else
            *has[i] = true;
    }
    if (w->has_min && w->has_max && !(w->min <= w->max))
        ib_loader_err(L, ib_loader_get(L, tn, "write_max"), tpath, "write_max",
                      "write_max (%g) is below write_min (%g)", w->max, w->min);
    if ((w->has_min || w->has_max || ts->write_interval_ms) && !ts->writable)
        ib_loader_err(L, tn, tpath, NULL,
                      "write_min, write_max and write_interval need writable: true");
    w->min_interval_ms = ts->write_interval_ms;
}

/* A unit goes with every value of the tag into the payload: keep it short. */
#define MAX_UNIT 256

/* Tag names are JSON keys: any printable text but topic separators and wildcards. */
static bool valid_tag_name(const char *s)
{
    if (!s || !*s || strlen(s) > 256)
        return false;
    for (const unsigned char *c = (const unsigned char *)s; *c; c++)
        if (*c < 0x20 || *c == 0x7f || *c == '/' || *c == '+' || *c == '#')
            return false;
    return true;
}

/* "0.5" -> 0.5 absolute; "2%" -> 2 percent. Returns -1 if neither. */
static int parse_deadband(const char *s, double *v, bool *pct)
{
    char *end;
    errno = 0;
    *v = strtod(s, &end);
    if (end == s || errno || !isfinite(*v) || *v < 0)
        return -1;
    *pct = *end == '%';
    return (*end == '\0' || (*pct && end[1] == '\0')) ? 0 : -1;
}

/* The report section of a group or tag at key "report" of `n`, or all absent (mode -1). */
static void load_report(struct ib_loader *L, struct ynode *n, const char *path,
                        const struct ib_schema *schema, struct report_section *r)
{
    memset(r, 0, sizeof *r);
    r->mode = -1;
    struct ynode *rn = ib_loader_get(L, n, "report");
    if (!rn)
        return;
    struct ib_spec sp = {schema, r};
    ib_schema_apply(L, rn, ib_loader_join(L, path, "report"), &sp, 1, NULL);
}

/* A tag's range: [min, max], for percent deadbands. */
static bool load_range(struct ib_loader *L, struct ynode *tn, const char *tpath, double *lo,
                       double *hi)
{
    struct ynode *rn = ib_loader_get(L, tn, "range");
    if (!rn)
        return false;
    double v[2];
    if (rn->type != YNODE_SEQUENCE || list_len(rn) != 2) {
        ib_loader_err(L, rn, tpath, "range", "expected [min, max], found %s", ib_loader_kind(rn));
        return false;
    }
    for (int i = 0; i < 2; i++) {
        struct ynode *x = item_at(L, rn, (size_t)i);
        if (!scalar(x) || ib_schema_parse_double(scalar(x), &v[i]) < 0) {
            ib_loader_err(L, x, tpath, "range", "expected a number, found %s",
                          scalar(x) ? scalar(x) : ib_loader_kind(x));
            return false;
        }
    }
    if (!(v[0] < v[1])) {
        ib_loader_err(L, rn, tpath, "range", "min (%g) must be below max (%g)", v[0], v[1]);
        return false;
    }
    *lo = v[0];
    *hi = v[1];
    return true;
}

/* The tag's range when it is a well-formed [min, max], without a message (load_range reports
 * the errors where the range is required): the engineering range a payload may carry. */
static bool peek_range(struct ib_loader *L, struct ynode *tn, double *lo, double *hi)
{
    struct ynode *rn = ib_loader_get(L, tn, "range");
    if (!rn || rn->type != YNODE_SEQUENCE || list_len(rn) != 2)
        return false;
    double v[2];
    for (int i = 0; i < 2; i++) {
        const char *x = scalar(item_at(L, rn, (size_t)i));
        if (!x || ib_schema_parse_double(x, &v[i]) < 0)
            return false;
    }
    *lo = v[0];
    *hi = v[1];
    return v[0] < v[1];
}

/* Resolve a tag's reporting from its own keys over its group's: mode, deadband, heartbeat. */
static void resolve_report(struct ib_loader *L, struct ynode *tn, const char *tpath,
                           const struct report_section *gr, const struct tag_section *ts,
                           struct ib_report_cfg *out)
{
    struct report_section tr;
    load_report(L, tn, tpath, &tag_report_schema, &tr);
    const char *db = ts->deadband ? ts->deadband : tr.deadband;
    if (ts->deadband && tr.deadband)
        ib_loader_err(L, ib_loader_get(L, tn, "deadband"), tpath, "deadband",
                      "the deadband is given twice (deadband and report.deadband): keep one");
    /* A tag's own deadband means "report this tag by deadband" unless it says otherwise. */
    int32_t mode = tr.mode >= 0 ? tr.mode : db ? IB_REPORT_DEADBAND : gr->mode >= 0 ? gr->mode : 0;
    if (db && mode != IB_REPORT_DEADBAND)
        ib_loader_err(L, tn, tpath, NULL,
                      "a deadband is given but the tag's report mode is %s: remove one of them",
                      mode_choices[mode]);
    if (!db && mode == IB_REPORT_DEADBAND)
        db = gr->deadband;
    out->mode = (uint8_t)mode;
    out->heartbeat_ms = tr.heartbeat_ms ? tr.heartbeat_ms : gr->heartbeat_ms;
    if (mode != IB_REPORT_DEADBAND)
        return;
    double v = 0, lo = 0, hi = 0;
    bool pct = false;
    if (!db) {
        ib_loader_err(
            L, tn, tpath, NULL,
            "report mode deadband needs a deadband: a number (deadband: 0.5) or a percent "
            "of the tag's range (deadband: 2%%, with range: [min, max])");
        return;
    }
    if (parse_deadband(db, &v, &pct) < 0) {
        if (db == gr->deadband)
            return; /* the group's, reported once at the group */
        ib_loader_err(L, tn, tpath, "deadband",
                      "'%s' is not a deadband: write a number >= 0 (0.5) or a percent (2%%)", db);
        return;
    }
    bool has_range = load_range(L, tn, tpath, &lo, &hi);
    if (pct && !has_range) {
        ib_loader_err(L, tn, tpath, "deadband",
                      "deadband %s is a percent of the tag's range: add range: [min, max]", db);
        return;
    }
    out->deadband = pct ? v / 100.0 * (hi - lo) : v;
}

/* The tags of a group: its `tags` list and/or the rows of its `tags_csv` file, in that order. */
static void load_tags(struct ib_loader *L, struct ynode *gn, const char *gpath,
                      struct ib_group_config *g, struct ib_cfg_group *cg,
                      const struct ib_plugin *plugin, const struct report_section *gr)
{
    struct ib_listsrc src[2];
    size_t nsrc = 0, n = 0, home = L->cur;
    struct ynode *csv = ib_loader_get(L, gn, "tags_csv");
    struct ynode *list =
        ib_loader_get(L, gn, "tags") || !csv ? ib_loader_list(L, gn, gpath, "tags", true) : NULL;
    if (list)
        src[nsrc++] = (struct ib_listsrc){home, list};
    if (csv) {
        if (!scalar(csv) || !*scalar(csv)) {
            ib_loader_err(L, csv, gpath, "tags_csv", "expected the path of a CSV file");
        } else {
            int d = ib_loader_read_csv(L, ib_loader_resolve(L, scalar(csv)), csv, gpath);
            if (d >= 0)
                src[nsrc++] = (struct ib_listsrc){(size_t)d, ib_ytree_root(&L->docs[d]->tree)};
        }
        ib_loader_use_doc(L, home);
    }
    for (size_t k = 0; k < nsrc; k++)
        n += list_len(src[k].list);
    if (nsrc && n == 0)
        ib_loader_err(L, gn, gpath, NULL, "a group needs at least one tag");
    struct ib_tag_config *tags = ib_arena_alloc(&L->cfg->arena, (n ? n : 1) * sizeof *tags);
    cg->tags = ib_arena_alloc(&L->cfg->arena, (n ? n : 1) * sizeof *cg->tags);
    cg->writes = ib_arena_alloc(&L->cfg->arena, (n ? n : 1) * sizeof *cg->writes);
    g->tags = tags;
    g->n_tags = (uint32_t)n;
    size_t i = 0;
    for (size_t k = 0; k < nsrc; k++) {
        ib_loader_use_doc(L, src[k].doc);
        for (size_t j = 0; j < list_len(src[k].list); j++, i++) {
            struct ynode *tn = item_at(L, src[k].list, j);
            char tpath[256]; /* for messages now: the tag's where does not keep it */
            snprintf(tpath, sizeof tpath, "%s.tags[%zu]", gpath, i);
            struct tag_section ts = {0};
            void *params = ib_arena_alloc(&L->cfg->arena, plugin->tag_schema->struct_size);
            struct ib_spec sp[2] = {{&tag_schema, &ts}, {plugin->tag_schema, params}};
            static const char *const textra[] = {"report", "range", NULL};
            if (!ib_schema_apply(L, tn, tpath, sp, 2, textra))
                continue;
            tags[i].name = ts.name;
            tags[i].params = params;
            tags[i].where = ib_loader_item_where(L, tn, cg->where, "tags", i);
            tags[i].writable = ts.writable;
            cg->tags[i] = (struct ib_tag_core){.name = ts.name,
                                               .scale = ts.scale,
                                               .offset = ts.offset,
                                               .divisor = ib_record_scale_divisor(ts.scale),
                                               .scaled = ts.scale != 1.0 || ts.offset != 0.0,
                                               .unit = ts.unit,
                                               .description = ts.description};
            if (ts.name && !valid_tag_name(ts.name))
                ib_loader_err(
                    L, ib_loader_get(L, tn, "name"), tpath, "name",
                    "'%s' is not a valid tag name: no control characters, '/', '+' or '#'",
                    ts.name);
            if (ts.scale == 0.0)
                ib_loader_err(L, ib_loader_get(L, tn, "scale"), tpath, "scale", "must not be 0");
            if (ts.unit && strlen(ts.unit) > MAX_UNIT)
                ib_loader_err(L, ib_loader_get(L, tn, "unit"), tpath, "unit",
                              "is %zu bytes long: a unit may be at most %d (it is sent with every "
                              "value)",
                              strlen(ts.unit), MAX_UNIT);
            resolve_report(L, tn, tpath, gr, &ts, &cg->tags[i].report);
            cg->tags[i].has_range =
                peek_range(L, tn, &cg->tags[i].range_min, &cg->tags[i].range_max);
            load_write_keys(L, tn, tpath, &ts, &cg->writes[i]);
        }
    }
    ib_loader_use_doc(L, home);
    L->cfg->n_tags += n;
}

/* One group of a device: its keys, its reporting and its tags. */
static void load_group(struct ib_loader *L, struct ynode *gn, const char *gpath,
                       const struct ib_cfg_connection *c, struct ib_device_config *dev,
                       struct ib_group_config *groups, struct ib_cfg_group *cgroups, size_t g,
                       struct ib_nameset *names)
{
    struct ib_cfg_group *cg = &cgroups[g];
    const char *device_name = dev->name;
    struct group_section gs = {0};
    /* ABI 1.1: the plugin's own group keys beside ours */
    const struct ib_schema *pgs = c->plugin ? ib_plugin_group_schema(c->plugin) : NULL;
    void *gparams = pgs ? ib_arena_alloc(&L->cfg->arena, pgs->struct_size) : NULL;
    struct ib_spec gsp[2] = {{&group_schema, &gs}, {pgs, gparams}};
    static const char *const gextra[] = {"tags", "tags_csv", "report", NULL};
    if (!ib_schema_apply(L, gn, gpath, gsp, pgs ? 2 : 1, gextra))
        return;
    groups[g].params = gparams;
    struct report_section gr;
    load_report(L, gn, gpath, &group_report_schema, &gr);
    double dbv;
    bool dbpct;
    if (gr.deadband && parse_deadband(gr.deadband, &dbv, &dbpct) < 0)
        ib_loader_err(L, ib_loader_get(L, ib_loader_get(L, gn, "report"), "deadband"),
                      ib_loader_join(L, gpath, "report"), "deadband",
                      "'%s' is not a deadband: write a number >= 0 (0.5) or a percent (2%%)",
                      gr.deadband);
    if (gs.interval_ms > 0 && gs.interval_ms < 10)
        ib_loader_err(L, ib_loader_get(L, gn, "interval_ms"), gpath, "interval_ms",
                      "%lld ms is too short a period: use at least 10, or 0 to poll "
                      "continuously",
                      (long long)gs.interval_ms);
    cg->stale_after_ms = gr.stale_after_ms
                             ? gr.stale_after_ms
                             : 3 * (gs.interval_ms ? gs.interval_ms : CONTINUOUS_STALE_MS);
    groups[g].name = gs.name;
    groups[g].interval_ms = (uint32_t)gs.interval_ms;
    groups[g].where = ib_loader_where(L, gn, gpath);
    cg->where = groups[g].where;
    ib_loader_check_ident(L, gn, gpath, gs.name);
    size_t first; /* each repeat reported once */
    if (gs.name && !ib_nameset_add(names, gs.name, g, &first))
        ib_loader_err(L, ib_loader_get(L, gn, "name"), gpath, "name",
                      "duplicate group name '%s' in device '%s'", gs.name,
                      device_name ? device_name : "?");
    load_tags(L, gn, gpath, &groups[g], cg, c->plugin, &gr);
    L->cfg->n_groups++;
}

/* Tag names are unique within a device: they key the values of its messages. Each repeat is
 * reported once, with the line of the first. */
static void unique_tags(struct ib_loader *L, const struct ib_device_config *dev,
                        const char *device_name)
{
    struct ib_nameset seen = {0};
    for (size_t g = 0; g < dev->n_groups; g++)
        for (size_t t = 0; t < dev->groups[g].n_tags; t++) {
            const struct ib_tag_config *tg = &dev->groups[g].tags[t];
            size_t first;
            if (!tg->name || ib_nameset_add(&seen, tg->name, g << 32 | t, &first))
                continue;
            const struct ib_where *ow = dev->groups[first >> 32].tags[first & 0xffffffffu].where;
            ib_diag_add(L->diag, tg->where, "name",
                        "duplicate tag name '%s' in device '%s' (first defined at line %d)",
                        tg->name, device_name ? device_name : "?", ow ? ow->line : 0);
        }
    ib_nameset_free(&seen);
}

void ib_loader_groups(struct ib_loader *L, struct ynode *dn, const char *dpath,
                      struct ib_cfg_connection *c, size_t d, struct ib_device_config *dev)
{
    struct ynode *glist = ib_loader_list(L, dn, dpath, "groups", true);
    size_t ng = list_len(glist);
    if (glist && ng == 0)
        ib_loader_err(L, glist, dpath, "groups", "a device needs at least one group");
    struct ib_group_config *groups = ib_arena_alloc(&L->cfg->arena, (ng ? ng : 1) * sizeof *groups);
    struct ib_cfg_group *cgroups = ib_arena_alloc(&L->cfg->arena, (ng ? ng : 1) * sizeof *cgroups);
    c->devices[d].groups = cgroups;
    dev->groups = groups;
    dev->n_groups = (uint32_t)ng;
    struct ib_nameset names = {0};
    for (size_t g = 0; g < ng; g++) {
        char *gpath = ib_arena_printf(&L->cfg->arena, "%s.groups[%zu]", dpath, g);
        load_group(L, item_at(L, glist, g), gpath, c, dev, groups, cgroups, g, &names);
    }
    ib_nameset_free(&names);
    unique_tags(L, dev, dev->name);
}
