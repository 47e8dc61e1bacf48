/* The core's own sections: gateway, log, config, remote_config, north and store, each defined
 * once across the files (a later file replaces one only with `override: true`), validated
 * against its schema; an absent section takes its schema's defaults. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config_core.h"
#include "config_loader.h"
#include "plugin_loader.h"
#include "schema.h"
#include "topic.h"

static const struct ib_schema_entry gateway_entries[] = {
    IB_E_STR("id", struct ib_config, gateway_id, NULL,
             "gateway id, {gateway} in topics (default: host name)"),
    IB_E_STR("plugin_dir", struct ib_config, plugin_dir, NULL, "where plugins are loaded from"),
};
const struct ib_schema ib_config_gateway_schema = {
    sizeof(struct ib_config), 2, gateway_entries, {0}};

static const struct ib_schema_entry watch_entries[] = {
    {.key = "watch",
     .type = IB_S_BOOL,
     .offset = offsetof(struct ib_config, watch),
     .def = "false",
     .description = "apply changes of the configuration files by themselves (inotify)"},
    {.key = "watch_delay",
     .type = IB_S_DURATION,
     .flags = IB_SF_RANGE,
     .offset = offsetof(struct ib_config, watch_delay_ms),
     .def = "1s",
     .min = 50,
     .max = 600000,
     .description = "quiet time after the last change before it is applied"},
};
const struct ib_schema ib_config_watch_schema = {sizeof(struct ib_config), 2, watch_entries, {0}};

/* The enum's index is stored in log_level (an int32_t), then made an enum ib_log_level. */
_Static_assert(sizeof(((struct ib_config *)0)->log_level) == sizeof(int32_t), "log_level size");
static const char *const level_choices[] = {"error", "warning", "notice", "info", "debug", NULL};
static const struct ib_schema_entry log_entries[] = {
    {.key = "level",
     .type = IB_S_ENUM,
     .offset = offsetof(struct ib_config, log_level),
     .def = "info",
     .choices = level_choices,
     .description = "least severe level logged"},
};
const struct ib_schema ib_config_log_schema = {sizeof(struct ib_config), 1, log_entries, {0}};

static const struct ib_schema_entry remote_entries[] = {
    {.key = "enabled",
     .type = IB_S_BOOL,
     .offset = offsetof(struct ib_remote_cfg, enabled),
     .def = "false",
     .description = "accept signed configuration documents over MQTT"},
    IB_E_STR("public_key", struct ib_remote_cfg, public_key, NULL,
             "PEM Ed25519 public key that signs the documents"),
    IB_E_STR("topic", struct ib_remote_cfg, topic, "ironbridge/{gateway}/config-set",
             "topic the documents are published to"),
    IB_E_STR("file", struct ib_remote_cfg, file, "50-remote.yaml",
             "name an accepted document is kept under (state directory, remote/NAME)"),
};
const struct ib_schema ib_config_remote_schema = {
    sizeof(struct ib_remote_cfg), 4, remote_entries, {0}};

static const char *const fsync_choices[] = {"batch", "always", NULL};
static const struct ib_schema_entry store_entries[] = {
    IB_E_STR("path", struct ib_store_cfg, path, NULL,
             "queue directory (default $STATE_DIRECTORY/queue, else /var/lib/ironbridge/queue)"),
    {.key = "max_bytes",
     .type = IB_S_SIZE,
     .flags = IB_SF_RANGE,
     .offset = offsetof(struct ib_store_cfg, max_bytes),
     .def = "1GiB",
     .min = 1LL << 20,
     .max = 1LL << 50,
     .description = "disk space of the queue, e.g. 1GiB; the oldest records go first when full"},
    {.key = "max_age",
     .type = IB_S_DURATION,
     .flags = IB_SF_RANGE,
     .offset = offsetof(struct ib_store_cfg, max_age_ms),
     .def = "7d",
     .min = 1000,
     .max = 3650LL * 86400000,
     .description = "records older than this are dropped, e.g. 7d, 12h"},
    {.key = "fsync",
     .type = IB_S_ENUM,
     .offset = offsetof(struct ib_store_cfg, fsync),
     .def = "batch",
     .choices = fsync_choices,
     .description = "batch: fsync every fsync_interval_ms or fsync_bytes; always: every record"},
    IB_E_INT("fsync_interval_ms", struct ib_store_cfg, fsync_interval_ms, "1000", 1, 600000,
             "longest time appended records wait for an fsync (the power-loss window)"),
    {.key = "fsync_bytes",
     .type = IB_S_SIZE,
     .flags = IB_SF_RANGE,
     .offset = offsetof(struct ib_store_cfg, fsync_bytes),
     .def = "1MiB",
     .min = 4096,
     .max = 1LL << 30,
     .description = "appended bytes that trigger an fsync before the interval ends"},
    IB_E_INT("replay_rate", struct ib_store_cfg, replay_rate, "5000", 0, 10000000,
             "backlog records sent per second after a reconnect (0: unlimited)"),
    {.key = "memory_max_bytes",
     .type = IB_S_SIZE,
     .flags = IB_SF_RANGE,
     .offset = offsetof(struct ib_store_cfg, memory_max_bytes),
     .def = "16MiB",
     .min = 65536,
     .max = 1LL << 40,
     .description = "memory holding records while the disk refuses writes"},
};
const struct ib_schema ib_config_store_schema = {sizeof(struct ib_store_cfg),
                                                 sizeof store_entries / sizeof store_entries[0],
                                                 store_entries,
                                                 {0}};

/* The one definition of a top-level section: a later file may define it again only with
 * `override: true` in it (it then replaces the earlier one). Leaves that document in use. */
static struct ynode *pick_section(struct ib_loader *L, const char *key)
{
    struct ynode *found = NULL;
    size_t fdoc = 0;
    for (size_t di = 0; di < L->n_tree; di++) {
        ib_loader_use_doc(L, di);
        struct ynode *n = ib_loader_get(L, ib_ytree_root(L->t), key);
        if (!n)
            continue;
        if (found && !ib_loader_flag(L, n, "override")) {
            ib_loader_use_doc(L, fdoc);
            const char *first = ib_loader_pos(L, found);
            ib_loader_use_doc(L, di);
            ib_loader_err(L, n, key, NULL,
                          "'%s' is already defined at %s; a later file replaces a section only "
                          "with override: true in it",
                          key, first);
            continue;
        }
        found = n;
        fdoc = di;
    }
    ib_loader_use_doc(L, fdoc);
    return found;
}

static struct ynode empty_section = {.type = YNODE_MAPPING};

/* Section `key` validated against `schema` into `out`. An absent section, or (with
 * `bare_is_absent`) one written as a bare scalar ("store:"), takes its schema's defaults.
 * Returns the section's node (NULL when absent) and whether it was applied. */
static struct ynode *apply_section(struct ib_loader *L, const char *key,
                                   const struct ib_schema *schema, void *out, bool bare_is_absent,
                                   bool *ok)
{
    static const char *const ov[] = {"override", NULL};
    struct ynode *n = pick_section(L, key);
    if (n && bare_is_absent && n->type == YNODE_SCALAR)
        n = NULL;
    struct ib_spec sp = {schema, out};
    *ok = ib_schema_apply(L, n ? n : &empty_section, key, &sp, 1, ov);
    return n;
}

static void load_gateway(struct ib_loader *L)
{
    struct ib_config *cfg = L->cfg;
    bool ok;
    struct ynode *n = apply_section(L, "gateway", &ib_config_gateway_schema, cfg, true, &ok);
    if (cfg->gateway_id && !ib_loader_valid_ident(cfg->gateway_id))
        ib_loader_err(L, ib_loader_get(L, n, "id"), "gateway", "id",
                      "'%s' is not a valid id: use letters, digits, '_', '-' and '.'",
                      cfg->gateway_id);
    if (!cfg->gateway_id) {
        char host[256];
        if (gethostname(host, sizeof host) < 0 || !ib_loader_valid_ident(host))
            snprintf(host, sizeof host, "ironbridge");
        host[sizeof host - 1] = '\0';
        cfg->gateway_id = ib_arena_strdup(&cfg->arena, host);
    }
    cfg->plugin_dir = ib_loader_resolve(L, cfg->plugin_dir);
    if (cfg->plugin_dir && L->plugins)
        ib_plugins_prefer_dir(L->plugins, cfg->plugin_dir);
}

static void load_remote(struct ib_loader *L)
{
    struct ib_remote_cfg *rc = &L->cfg->remote;
    bool ok;
    struct ynode *n = apply_section(L, "remote_config", &ib_config_remote_schema, rc, false, &ok);
    if (!ok)
        return;
    rc->public_key = ib_loader_resolve(L, rc->public_key);
    const char *f = rc->file;
    size_t fl = f ? strlen(f) : 0;
    if (f && (fl < 6 || strcmp(f + fl - 5, ".yaml") != 0 || f[0] == '.' || strchr(f, '/')))
        ib_loader_err(L, ib_loader_get(L, n, "file"), "remote_config", "file",
                      "'%s' must be a file name ending in .yaml (it stands for conf.d/NAME)", f);
    char what[64];
    const char *e = ib_topic_check(rc->topic, IB_TOPIC_GATEWAY, what, sizeof what);
    if (e)
        ib_loader_err(L, ib_loader_get(L, n, "topic"), "remote_config", "topic", "'%s': %s%s%s",
                      rc->topic, e, *what ? ": " : "", what);
    if (rc->enabled && !rc->public_key)
        ib_loader_err(L, n, "remote_config", NULL,
                      "enabled: true needs public_key: the Ed25519 key that signs the documents");
    else if (rc->enabled)
        ib_loader_check_file(L, n, "remote_config", "public_key", rc->public_key, false, false);
}

static void load_north(struct ib_loader *L)
{
    struct ynode *n = pick_section(L, "north");
    static const char *const nextra[] = {"mqtt", "override", NULL};
    if (!n || !ib_schema_apply(L, n, "north", NULL, 0, nextra))
        return;
    struct ynode *m = ib_loader_get(L, n, "mqtt");
    if (m)
        ib_loader_north(L, m, "north.mqtt");
    else
        ib_loader_err(L, n, "north", NULL, "missing required key 'mqtt'");
}

static void load_store(struct ib_loader *L)
{
    struct ib_store_cfg *st = &L->cfg->store;
    bool ok;
    apply_section(L, "store", &ib_config_store_schema, st, true, &ok);
    if (!ok)
        return;
    if (st->path) {
        st->path = ib_loader_resolve(L, st->path);
        return;
    }
    /* systemd's StateDirectory= sets $STATE_DIRECTORY (several paths are ':'-separated). */
    const char *sd = getenv("STATE_DIRECTORY");
    size_t len = sd ? strcspn(sd, ":") : 0;
    st->path = len ? ib_arena_printf(&L->cfg->arena, "%.*s/queue", (int)len, sd)
                   : "/var/lib/ironbridge/queue";
    st->path_default = true;
}

void ib_loader_core(struct ib_loader *L)
{
    static const char *const extra[] = {"gateway",     "log",    "north",         "store",
                                        "connections", "config", "remote_config", "commands",
                                        "metrics",     NULL};
    for (size_t di = 0; di < L->n_tree; di++) {
        ib_loader_use_doc(L, di);
        struct ynode *root = ib_ytree_root(L->t);
        if (!root || (root->type == YNODE_SCALAR && !*scalar(root)))
            continue; /* an empty drop-in is harmless */
        ib_schema_apply(L, root, "", NULL, 0, extra);
    }
    struct ib_config *cfg = L->cfg;
    load_gateway(L);
    bool ok;
    apply_section(L, "log", &ib_config_log_schema, cfg, true, &ok);
    cfg->log_level += IB_LOG_ERR;
    apply_section(L, "config", &ib_config_watch_schema, cfg, true, &ok);
    load_remote(L);
    load_north(L);
    load_store(L);
    struct ynode *cn =
        apply_section(L, "commands", &ib_config_commands_schema, &cfg->commands, true, &ok);
    if (ok)
        ib_loader_commands(L, cn);
    struct ynode *mn =
        apply_section(L, "metrics", &ib_config_metrics_schema, &cfg->metrics, true, &ok);
    cfg->metrics.present = mn != NULL;
    if (ok)
        ib_loader_metrics(L, mn, &cfg->metrics);
    if (cfg->has_north && !cfg->mqtt.client_id)
        cfg->mqtt.client_id = ib_arena_printf(&cfg->arena, "ironbridge-%s", cfg->gateway_id);
}
