/* The connections of the configuration and their devices, merged across the files by name
 * (a later file adds, overrides or extends a connection), each validated against the core's
 * keys and its plugin's schemas; device metadata; names unique across the gateway. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config_loader.h"
#include "json.h"
#include "plugin_loader.h"
#include "schema.h"

struct named {
    const char *name;
};
static const struct ib_schema_entry name_entry[] = {
    {.key = "name",
     .type = IB_S_STRING,
     .flags = IB_SF_REQUIRED,
     .offset = offsetof(struct named, name),
     .description = "unique name"},
};
static const struct ib_schema name_schema = {sizeof(struct named), 1, name_entry, {0}};

/* The keys of a connection that the daemon itself reads (the plugin's come beside them). */
struct conn_section {
    const char *name;
    int64_t call_timeout_ms;
};
static const struct ib_schema_entry conn_entries[] = {
    {.key = "name",
     .type = IB_S_STRING,
     .flags = IB_SF_REQUIRED,
     .offset = offsetof(struct conn_section, name),
     .description = "unique name"},
    {.key = "call_timeout",
     .type = IB_S_DURATION,
     .flags = IB_SF_RANGE,
     .offset = offsetof(struct conn_section, call_timeout_ms),
     .def = "30s",
     .min = 100,
     .max = 3600000,
     .description = "longest a plugin call (open, read, write, close) may take before the "
                    "connection is reported stalled (docs/isolation.md)"},
};
static const struct ib_schema conn_schema = {sizeof(struct conn_section), 2, conn_entries, {0}};

/* Names of connections, devices and groups appear in MQTT topics and journald fields: keep
 * them to characters that cannot add topic levels or wildcards. */
bool ib_loader_valid_ident(const char *s)
{
    if (!s || !*s || strlen(s) > 128)
        return false;
    for (const unsigned char *c = (const unsigned char *)s; *c; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
              *c == '_' || *c == '-' || *c == '.'))
            return false;
    return true;
}

void ib_loader_check_ident(struct ib_loader *L, struct ynode *map, const char *path,
                           const char *name)
{
    if (name && !ib_loader_valid_ident(name))
        ib_loader_err(L, ib_loader_get(L, map, "name"), path, "name",
                      "'%s' is not a valid name: use letters, digits, '_', '-' and '.' (it becomes "
                      "part of MQTT topics)",
                      name);
}

/* A device's metadata: free key/value pairs (site, line, asset ids) sent with each of its
 * messages as a JSON object of strings. */
static const char *load_metadata(struct ib_loader *L, struct ynode *mn, const char *dpath)
{
    if (!mn)
        return NULL;
    const char *path = ib_loader_join(L, dpath, "metadata");
    if (mn->type != YNODE_MAPPING) {
        ib_loader_err(L, mn, dpath, "metadata", "expected a mapping of names to values, found %s",
                      ib_loader_kind(mn));
        return NULL;
    }
    struct ib_buf b = {0};
    ib_buf_puts(&b, "{");
    int n = 0;
    struct ib_nameset seen = {0};
    for (size_t p = 0; p < mn->n; p++) {
        struct ynode *kn = key_at(L, mn, p), *vn = value_at(L, mn, p);
        if (!scalar(kn) || !*scalar(kn)) {
            ib_loader_err(L, kn, path, NULL, "a metadata name must be a non-empty word");
            continue;
        }
        if (!scalar(vn)) {
            ib_loader_err(L, vn, path, scalar(kn), "expected a single value, found %s",
                          ib_loader_kind(vn));
            continue;
        }
        size_t first;
        if (!ib_nameset_add(&seen, scalar(kn), p, &first))
            ib_loader_err(L, kn, path, scalar(kn), "duplicate key");
        if (n++)
            ib_buf_puts(&b, ",");
        ib_json_cstr(&b, scalar(kn));
        ib_buf_puts(&b, ":");
        ib_json_cstr(&b, scalar(vn));
    }
    ib_nameset_free(&seen);
    ib_buf_puts(&b, "}");
    const char *out = n ? ib_arena_strdup(&L->cfg->arena, b.p) : NULL;
    ib_buf_free(&b);
    return out;
}

/* The devices of a connection: from its own item and from later files' `extend: true` items. */
/* Device names are unique across the gateway: they key topics and journald fields. Each repeat
 * is reported once, naming the first. */
static void unique_device(struct ib_loader *L, struct ynode *dn, const char *dpath,
                          const struct ib_device_config *dev)
{
    size_t first;
    if (!dev->name ||
        ib_nameset_add(&L->device_names, dev->name, (size_t)(uintptr_t)dev->where, &first))
        return;
    const struct ib_where *ow = (const struct ib_where *)(uintptr_t)first;
    ib_loader_err(L, ib_loader_get(L, dn, "name"), dpath, "name",
                  "duplicate device name '%s' (first defined at %s:%d:%d)", dev->name, ow->file,
                  ow->line, ow->col);
}

static void load_devices(struct ib_loader *L, const struct ib_listsrc *src, size_t nsrc,
                         const char *cpath, struct ib_cfg_connection *c)
{
    size_t n = 0;
    for (size_t k = 0; k < nsrc; k++)
        n += list_len(src[k].list);
    if (nsrc && n == 0) {
        ib_loader_use_doc(L, src[0].doc);
        ib_loader_err(L, src[0].list, cpath, "devices", "a connection needs at least one device");
    }
    struct ib_device_config *devs = ib_arena_alloc(&L->cfg->arena, (n ? n : 1) * sizeof *devs);
    c->devices = ib_arena_alloc(&L->cfg->arena, (n ? n : 1) * sizeof *c->devices);
    c->pub.devices = devs;
    c->pub.n_devices = (uint32_t)n;
    const struct ib_plugin *plugin = c->plugin;
    size_t k = 0, j = 0;
    for (size_t d = 0; d < n; d++, j++) {
        while (j >= list_len(src[k].list)) {
            k++;
            j = 0;
        }
        ib_loader_use_doc(L, src[k].doc);
        struct ynode *dn = item_at(L, src[k].list, j);
        char *dpath = ib_arena_printf(&L->cfg->arena, "%s.devices[%zu]", cpath, d);
        struct named nm = {0};
        void *params = ib_arena_alloc(&L->cfg->arena, plugin->device_schema->struct_size);
        struct ib_spec sp[2] = {{&name_schema, &nm}, {plugin->device_schema, params}};
        static const char *const extra[] = {"groups", "metadata", NULL};
        if (!ib_schema_apply(L, dn, dpath, sp, 2, extra))
            continue;
        c->devices[d].meta_json = load_metadata(L, ib_loader_get(L, dn, "metadata"), dpath);
        devs[d].name = nm.name;
        devs[d].params = params;
        devs[d].where = ib_loader_where(L, dn, dpath);
        c->devices[d].where = devs[d].where;
        ib_loader_check_ident(L, dn, dpath, nm.name);
        unique_device(L, dn, dpath, &devs[d]);
        ib_loader_groups(L, dn, dpath, c, d, &devs[d]);
        L->cfg->n_devices++;
    }
}

/* A connection as merged from the files: its item, and the device lists extending it. */
struct csrc {
    size_t doc;
    struct ynode *node;
    const char *name;
    struct ib_listsrc dev[16];
    size_t n_dev;
};

static void load_connection(struct ib_loader *L, struct csrc *cs, size_t i)
{
    ib_loader_use_doc(L, cs->doc);
    struct ynode *cn = cs->node;
    char *cpath = ib_arena_printf(&L->cfg->arena, "connections[%zu]", i);
    struct ib_cfg_connection *c = &L->cfg->connections[i];
    if (cn->type != YNODE_MAPPING) {
        ib_loader_err(L, cn, cpath, NULL, "expected a mapping, found %s", ib_loader_kind(cn));
        return;
    }
    c->where = ib_loader_where(L, cn, cpath);
    c->pub.where = c->where;
    const char *pname = scalar(ib_loader_get(L, cn, "plugin"));
    if (!ib_loader_get(L, cn, "plugin"))
        ib_loader_err(L, cn, cpath, NULL,
                      "missing required key 'plugin' (which driver, e.g. modbus)");
    else if (!pname)
        ib_loader_err(L, ib_loader_get(L, cn, "plugin"), cpath, "plugin", "expected a plugin name");
    else {
        char err[1024];
        c->plugin_name = pname;
        c->plugin = ib_plugins_get(L->plugins, pname, err, sizeof err);
        if (!c->plugin)
            ib_loader_err(L, ib_loader_get(L, cn, "plugin"), cpath, "plugin", "%s", err);
    }
    struct conn_section nm = {0};
    void *params = c->plugin
                       ? ib_arena_alloc(&L->cfg->arena, c->plugin->connection_schema->struct_size)
                       : NULL;
    struct ib_spec sp[2] = {{&conn_schema, &nm},
                            {c->plugin ? c->plugin->connection_schema : NULL, params}};
    static const char *const extra[] = {"plugin", "devices", "override", NULL};
    if (c->plugin) {
        ib_schema_apply(L, cn, cpath, sp, 2, extra);
    } else {
        nm.name = scalar(ib_loader_get(L, cn, "name"));
    }
    c->pub.name = nm.name;
    c->call_timeout_ms = nm.call_timeout_ms;
    c->pub.params = params;
    ib_loader_check_ident(L, cn, cpath, nm.name);
    if (!c->plugin)
        return; /* its blocks cannot be judged without the plugin's schemas */
    struct ib_listsrc src[17];
    size_t nsrc = 0;
    struct ynode *own = ib_loader_list(L, cn, cpath, "devices", cs->n_dev == 0);
    if (own)
        src[nsrc++] = (struct ib_listsrc){cs->doc, own};
    for (size_t k = 0; k < cs->n_dev; k++)
        src[nsrc++] = cs->dev[k];
    load_devices(L, src, nsrc, cpath, c);
}

/* Merge the connections of every file by name: a later file adds new ones; one of the same
 * name is an error naming both places, unless it says `override: true` (it replaces the
 * earlier one) or `extend: true` (its devices are added to the earlier one's). */
void ib_loader_connections(struct ib_loader *L)
{
    struct csrc *cs = NULL;
    struct ib_nameset names = {0}; /* connection name to its index in cs */
    size_t n = 0, cap = 0;
    for (size_t di = 0; di < L->n_tree; di++) {
        ib_loader_use_doc(L, di);
        struct ynode *root = ib_ytree_root(L->t);
        struct ynode *list = ib_loader_list(L, root, "", "connections", false);
        for (size_t j = 0; j < list_len(list); j++) {
            struct ynode *cn = item_at(L, list, j);
            const char *name = scalar(ib_loader_get(L, cn, "name"));
            size_t k = n;
            bool known = name && ib_nameset_find(&names, name, &k);
            if (known && ib_loader_flag(L, cn, "override")) {
                cs[k] = (struct csrc){.doc = di, .node = cn, .name = cs[k].name};
                continue;
            }
            if (ib_loader_flag(L, cn, "extend")) {
                char *path = ib_arena_printf(&L->cfg->arena, "connections[%s]", name ? name : "?");
                struct named nm = {0};
                struct ib_spec sp = {&name_schema, &nm};
                static const char *const ext[] = {"extend", "devices", NULL};
                ib_schema_apply(L, cn, path, &sp, 1, ext);
                struct ynode *devs = ib_loader_list(L, cn, path, "devices", true);
                if (!known)
                    ib_loader_err(L, cn, path, "extend",
                                  "extends connection '%s', which no earlier file defines",
                                  name ? name : "?");
                else if (cs[k].n_dev == sizeof cs[k].dev / sizeof cs[k].dev[0])
                    ib_loader_err(L, cn, path, "extend", "too many files extend connection '%s'",
                                  name);
                else if (devs)
                    cs[k].dev[cs[k].n_dev++] = (struct ib_listsrc){di, devs};
                continue;
            }
            if (known) {
                size_t cur = di;
                ib_loader_use_doc(L, cs[k].doc);
                const char *first = ib_loader_pos(L, cs[k].node);
                ib_loader_use_doc(L, cur);
                ib_loader_err(L, ib_loader_get(L, cn, "name"),
                              ib_arena_printf(&L->cfg->arena, "connections[%zu]", j), "name",
                              "connection '%s' is already defined at %s; to replace it write "
                              "override: true here, to add devices to it write extend: true",
                              name, first);
                continue;
            }
            if (n == cap) {
                cap = cap ? cap * 2 : 16;
                struct csrc *ncs = realloc(cs, cap * sizeof *cs);
                if (!ncs)
                    abort();
                cs = ncs;
            }
            if (name)
                ib_nameset_add(&names, name, n, &k);
            cs[n++] = (struct csrc){.doc = di, .node = cn, .name = name};
        }
    }
    L->cfg->connections =
        ib_arena_alloc(&L->cfg->arena, (n ? n : 1) * sizeof(struct ib_cfg_connection));
    for (size_t i = 0; i < n; i++) {
        L->cfg->n_connections = i + 1;
        load_connection(L, &cs[i], i);
    }
    free(cs);
    ib_nameset_free(&names);
}
