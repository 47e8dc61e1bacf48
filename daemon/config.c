/* Configuration loading: YAML trees (ytree.h) walked against schemas (the core's own and
 * each plugin's), strictly: unknown keys, wrong types, ranges, duplicates and missing files are
 * errors with file:line:column and the key path, and every error is reported, not only the first.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "json.h"
#include "plugin_loader.h"
#include "topic.h"
#include "units.h"
#include "ytree.h"

/* One source document: a YAML file of the tree, or a CSV tag list turned into YAML nodes. */
struct srcdoc {
    const char *file;
    const char *dir; /* for relative paths in it */
    struct ytree tree;
};

struct loader {
    struct ib_config *cfg;
    struct ib_diag *diag;
    struct ytree *t; /* the document being walked (node ids are per document) */
    size_t cur;      /* its index in docs */
    const char *file;
    const char *dir;
    struct ib_plugin_registry *plugins;
    struct srcdoc **docs;  /* every document read, in merge order; CSV documents after */
    size_t n_docs, n_tree; /* n_tree: the YAML files of the tree, docs[0 .. n_tree-1] */
    /* Every scalar of every document, each distinct text once, in the configuration's arena:
     * what the configuration keeps of them (names, keys, strings) is these very texts. */
    struct ystrpool strings;
};

/* A list of nodes (devices, tags) that comes from one document. */
struct listsrc {
    size_t doc;
    struct ynode *list;
};

static void use_doc(struct loader *L, size_t i)
{
    L->cur = i;
    L->t = &L->docs[i]->tree;
    L->file = L->docs[i]->file;
    L->dir = L->docs[i]->dir;
}

/* A schema paired with the struct it fills; a mapping may be validated by several. */
struct spec {
    const struct ib_schema *schema;
    void *out;
};

/* ---- YAML helpers ---------------------------------------------------------------------------- */

/* Item `i` of sequence `n`; key and value of pair `i` of mapping `n`. */
static struct ynode *item_at(struct loader *L, const struct ynode *n, size_t i)
{
    return ytree_item(L->t, n, i);
}

static struct ynode *key_at(struct loader *L, const struct ynode *n, size_t i)
{
    return ytree_key(L->t, n, i);
}

static struct ynode *value_at(struct loader *L, const struct ynode *n, size_t i)
{
    return ytree_value(L->t, n, i);
}

static const char *node_kind(const struct ynode *n)
{
    switch (n->type) {
    case YNODE_SCALAR:
        return "a scalar";
    case YNODE_SEQUENCE:
        return "a list";
    case YNODE_MAPPING:
        return "a mapping";
    default:
        return "nothing";
    }
}

/* A scalar's text (it lives as long as the configuration), or NULL for anything else. */
static const char *scalar(const struct ynode *n)
{
    return n && n->type == YNODE_SCALAR ? n->u.text : NULL;
}

/* Where node `n` is, for messages after loading (a plugin's among them): its file, position and
 * its keys' positions. The caller sets the key path. */
static struct ib_where *where_of(struct loader *L, struct ynode *n)
{
    struct ib_where *w = ib_arena_alloc(&L->cfg->arena, sizeof *w);
    w->file = L->file;
    w->line = (int)n->line;
    w->col = (int)n->col;
    if (n->type == YNODE_MAPPING) {
        struct ib_keypos *k = ib_arena_alloc(&L->cfg->arena, (n->n ? n->n : 1) * sizeof *k);
        unsigned m = 0;
        for (size_t i = 0; i < n->n; i++) {
            struct ynode *kn = key_at(L, n, i);
            if (!scalar(kn))
                continue;
            k[m].key = scalar(kn);
            k[m].line = (int)kn->line;
            k[m].col = (int)kn->col;
            m++;
        }
        w->keys = k;
        w->n_keys = m;
    }
    return w;
}

/* ... with the key path `path` (static or in the configuration's arena: it is not copied). */
static struct ib_where *make_where(struct loader *L, struct ynode *n, const char *path)
{
    struct ib_where *w = where_of(L, n);
    w->path = path;
    return w;
}

/* ... for item `index` of list `list` of the node at `parent`: parent's path.list[index]. */
static struct ib_where *make_item_where(struct loader *L, struct ynode *n,
                                        const struct ib_where *parent, const char *list,
                                        size_t index)
{
    struct ib_where *w = where_of(L, n);
    w->parent = parent;
    w->path = list;
    w->index = (unsigned)index;
    return w;
}

/* An error at node `n` whose key path is `path` (and optional `key` below it). */
__attribute__((format(printf, 5, 6))) static void
err_node(struct loader *L, struct ynode *n, const char *path, const char *key, const char *fmt, ...)
{
    struct ib_where w = {
        .file = L->file, .path = path, .line = n ? (int)n->line : 0, .col = n ? (int)n->col : 0};
    va_list ap;
    va_start(ap, fmt);
    ib_diag_addv(L->diag, &w, key, fmt, ap);
    va_end(ap);
}

/* The value node of `key` in mapping `map`, or NULL. */
static struct ynode *map_get(struct loader *L, struct ynode *map, const char *key)
{
    if (!map || map->type != YNODE_MAPPING)
        return NULL;
    for (size_t i = 0; i < map->n; i++)
        if (scalar(key_at(L, map, i)) && strcmp(scalar(key_at(L, map, i)), key) == 0)
            return value_at(L, map, i);
    return NULL;
}

static char *join_path(struct loader *L, const char *path, const char *key)
{
    return *path ? ib_arena_printf(&L->cfg->arena, "%s.%s", path, key)
                 : ib_arena_strdup(&L->cfg->arena, key);
}

/* ---- Typed values ---------------------------------------------------------------------------- */

static int parse_int(const char *s, int64_t *out)
{
    if (!*s)
        return -1;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 0);
    if (errno || *end)
        return -1;
    *out = v;
    return 0;
}

static int parse_double(const char *s, double *out)
{
    if (!*s)
        return -1;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || *end || !isfinite(v))
        return -1;
    *out = v;
    return 0;
}

static int parse_bool(const char *s, bool *out)
{
    if (!strcmp(s, "true") || !strcmp(s, "True") || !strcmp(s, "TRUE")) {
        *out = true;
        return 0;
    }
    if (!strcmp(s, "false") || !strcmp(s, "False") || !strcmp(s, "FALSE")) {
        *out = false;
        return 0;
    }
    return -1;
}

/* "500ms", "60s", "5min", "2h", "7d" (also "1.5s") -> ms. A bare number has no unit: refused. */
int ib_parse_duration_ms(const char *s, int64_t *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || errno || !isfinite(v) || v < 0)
        return -1;
    static const struct {
        const char *unit;
        double ms;
    } units[] = {{"ms", 1},    {"s", 1000},    {"sec", 1000},  {"min", 60000},
                 {"m", 60000}, {"h", 3600000}, {"d", 86400000}};
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
        if (strcmp(end, units[i].unit) == 0) {
            double ms = v * units[i].ms;
            if (ms > 9.2e18 || ms != floor(ms))
                return -1;
            *out = (int64_t)ms;
            return 0;
        }
    return -1;
}

static const char *type_word(uint32_t t)
{
    switch (t) {
    case IB_S_BOOL:
        return "true or false";
    case IB_S_INT:
        return "an integer";
    case IB_S_DOUBLE:
        return "a number";
    case IB_S_STRING:
        return "a string";
    case IB_S_ENUM:
        return "one of the listed words";
    case IB_S_DURATION:
        return "a duration with a unit (500ms, 60s, 5min, 2h, 7d)";
    default:
        return "a value";
    }
}

static void choices_text(const struct ib_schema_entry *e, char *buf, size_t len)
{
    size_t off = 0;
    buf[0] = '\0';
    for (const char *const *c = e->choices; c && *c && off < len; c++)
        off += (size_t)snprintf(buf + off, len - off, "%s%s", c == e->choices ? "" : ", ", *c);
}

/* Store scalar text `s` for entry `e` into `out`; returns an error message or NULL. `n` (may be
 * NULL for defaults) is the node for positions. */
static const char *store_value(struct loader *L, const struct ib_schema_entry *e, const char *s,
                               void *out, char *msg, size_t msglen)
{
    char *field = (char *)out + e->offset;
    switch (e->type) {
    case IB_S_BOOL: {
        bool b;
        if (parse_bool(s, &b) < 0) {
            snprintf(msg, msglen, "expected true or false, found '%s'", s);
            return msg;
        }
        memcpy(field, &b, sizeof b);
        return NULL;
    }
    case IB_S_INT: {
        int64_t v;
        if (parse_int(s, &v) < 0) {
            snprintf(msg, msglen, "expected an integer, found '%s'", s);
            return msg;
        }
        if ((e->flags & IB_SF_RANGE) && (v < e->min || v > e->max)) {
            snprintf(msg, msglen, "%lld is out of range [%lld, %lld]", (long long)v,
                     (long long)e->min, (long long)e->max);
            return msg;
        }
        memcpy(field, &v, sizeof v);
        return NULL;
    }
    case IB_S_DOUBLE: {
        double v;
        if (parse_double(s, &v) < 0) {
            snprintf(msg, msglen, "expected a finite number, found '%s'", s);
            return msg;
        }
        if ((e->flags & IB_SF_RANGE) && (v < e->dmin || v > e->dmax)) {
            snprintf(msg, msglen, "%g is out of range [%g, %g]", v, e->dmin, e->dmax);
            return msg;
        }
        memcpy(field, &v, sizeof v);
        return NULL;
    }
    case IB_S_STRING: {
        if (!*s) {
            snprintf(msg, msglen, "must not be empty");
            return msg;
        }
        const char *p = ystr_intern(&L->strings, s, strlen(s));
        memcpy(field, &p, sizeof p);
        return NULL;
    }
    case IB_S_DURATION: {
        int64_t v;
        if (ib_parse_duration_ms(s, &v) < 0) {
            snprintf(msg, msglen,
                     "expected a duration with a unit (500ms, 60s, 5min, 2h, 7d), found '%s'", s);
            return msg;
        }
        if ((e->flags & IB_SF_RANGE) && (v < e->min || v > e->max)) {
            snprintf(msg, msglen, "%s is out of range [%lldms, %lldms]", s, (long long)e->min,
                     (long long)e->max);
            return msg;
        }
        memcpy(field, &v, sizeof v);
        return NULL;
    }
    case IB_S_ENUM: {
        for (int32_t i = 0; e->choices && e->choices[i]; i++)
            if (strcmp(e->choices[i], s) == 0) {
                memcpy(field, &i, sizeof i);
                return NULL;
            }
        char list[512];
        choices_text(e, list, sizeof list);
        snprintf(msg, msglen, "unknown value '%s'; expected one of: %s", s, list);
        return msg;
    }
    default:
        snprintf(msg, msglen, "schema entry has an unknown type %u (a plugin defect)", e->type);
        return msg;
    }
}

static bool is_extra(const char *key, const char *const *extra)
{
    for (; extra && *extra; extra++)
        if (strcmp(*extra, key) == 0)
            return true;
    return false;
}

/* Validate mapping `n` at `path`: every key must belong to one of the specs or to `extra` (keys
 * the caller handles itself). Fills the spec structs with values and defaults. Returns false if
 * `n` is not a mapping. */
static bool apply_mapping(struct loader *L, struct ynode *n, const char *path,
                          const struct spec *specs, size_t n_specs, const char *const *extra)
{
    if (!n || n->type != YNODE_MAPPING) {
        err_node(L, n, path, NULL, "expected a mapping, found %s", n ? node_kind(n) : "nothing");
        return false;
    }
    char msg[640];
    for (size_t p = 0; p < n->n; p++) {
        struct ynode *kn = key_at(L, n, p), *vn = value_at(L, n, p);
        const char *key = scalar(kn);
        if (!key) {
            err_node(L, kn, path, NULL, "a key must be a plain word, found %s", node_kind(kn));
            continue;
        }
        bool dup = false;
        for (size_t q = 0; q < p; q++)
            if (scalar(key_at(L, n, q)) && strcmp(scalar(key_at(L, n, q)), key) == 0)
                dup = true;
        if (dup) {
            err_node(L, kn, path, key, "duplicate key");
            continue;
        }
        if (is_extra(key, extra))
            continue;
        const struct ib_schema_entry *e = NULL;
        void *out = NULL;
        for (size_t s = 0; s < n_specs && !e; s++) {
            if (!specs[s].schema)
                continue;
            for (size_t i = 0; i < specs[s].schema->n_entries; i++)
                if (strcmp(specs[s].schema->entries[i].key, key) == 0) {
                    e = &specs[s].schema->entries[i];
                    out = specs[s].out;
                    break;
                }
        }
        if (!e) {
            /* List what would have been accepted: the commonest mistake is a typo. */
            size_t off = 0;
            msg[0] = '\0';
            for (const char *const *x = extra; x && *x && off < sizeof msg; x++)
                off += (size_t)snprintf(msg + off, sizeof msg - off, "%s%s", off ? ", " : "", *x);
            for (size_t s = 0; s < n_specs; s++)
                for (size_t i = 0;
                     specs[s].schema && i < specs[s].schema->n_entries && off < sizeof msg; i++)
                    off += (size_t)snprintf(msg + off, sizeof msg - off, "%s%s", off ? ", " : "",
                                            specs[s].schema->entries[i].key);
            err_node(L, kn, path, key, "unknown key; known keys here: %s", msg);
            continue;
        }
        if (vn->type != YNODE_SCALAR) {
            err_node(L, vn, path, key, "expected %s, found %s", type_word(e->type), node_kind(vn));
            continue;
        }
        const char *m = store_value(L, e, scalar(vn), out, msg, sizeof msg);
        if (m)
            err_node(L, vn, path, key, "%s", m);
    }
    /* Absent keys: required ones are errors, others take their default. */
    for (size_t s = 0; s < n_specs; s++) {
        const struct ib_schema *sc = specs[s].schema;
        for (size_t i = 0; sc && i < sc->n_entries; i++) {
            const struct ib_schema_entry *e = &sc->entries[i];
            if (map_get(L, n, e->key))
                continue;
            if (e->flags & IB_SF_REQUIRED) {
                err_node(L, n, path, NULL, "missing required key '%s' (%s)", e->key,
                         e->description ? e->description : type_word(e->type));
                continue;
            }
            if (e->def) {
                const char *m = store_value(L, e, e->def, specs[s].out, msg, sizeof msg);
                if (m)
                    err_node(L, n, path, e->key, "invalid default (a plugin defect): %s", m);
            } else if (e->type == IB_S_ENUM) {
                int32_t none = -1;
                memcpy((char *)specs[s].out + e->offset, &none, sizeof none);
            }
        }
    }
    return true;
}

/* The items of a list at `key` of `map`; NULL (and an error when required) if absent or not a
 * list. */
static struct ynode *get_list(struct loader *L, struct ynode *map, const char *path,
                              const char *key, bool required)
{
    struct ynode *n = map_get(L, map, key);
    if (!n) {
        if (required)
            err_node(L, map, path, NULL, "missing required key '%s' (a list)", key);
        return NULL;
    }
    if (n->type != YNODE_SEQUENCE) {
        err_node(L, n, path, key, "expected a list, found %s", node_kind(n));
        return NULL;
    }
    return n;
}

static size_t list_len(const struct ynode *n)
{
    return n ? n->n : 0;
}

/* ---- Names ----------------------------------------------------------------------------------- */

/* Names of connections, devices and groups appear in MQTT topics and journald fields: keep
 * them to characters that cannot add topic levels or wildcards. */
static bool valid_ident(const char *s)
{
    if (!s || !*s || strlen(s) > 128)
        return false;
    for (const unsigned char *c = (const unsigned char *)s; *c; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
              *c == '_' || *c == '-' || *c == '.'))
            return false;
    return true;
}

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

static void check_ident(struct loader *L, struct ynode *map, const char *path, const char *name)
{
    if (name && !valid_ident(name))
        err_node(L, map_get(L, map, "name"), path, "name",
                 "'%s' is not a valid name: use letters, digits, '_', '-' and '.' (it becomes "
                 "part of MQTT topics)",
                 name);
}

/* ---- Core schemas ---------------------------------------------------------------------------- */

#define E_STR(k, st, f, d, desc)                                                                   \
    {                                                                                              \
        .key = k, .type = IB_S_STRING, .offset = offsetof(st, f), .def = d, .description = desc    \
    }
#define E_INT(k, st, f, d, lo, hi, desc)                                                           \
    {                                                                                              \
        .key = k, .type = IB_S_INT, .flags = IB_SF_RANGE, .offset = offsetof(st, f), .def = d,     \
        .min = lo, .max = hi, .description = desc                                                  \
    }

struct gw_section {
    const char *id;
    const char *plugin_dir;
};
static const struct ib_schema_entry gw_entries[] = {
    E_STR("id", struct gw_section, id, NULL,
          "gateway id, {gateway} in topics (default: host name)"),
    E_STR("plugin_dir", struct gw_section, plugin_dir, NULL, "where plugins are loaded from"),
};
static const struct ib_schema gw_schema = {sizeof(struct gw_section), 2, gw_entries, {0}};

struct config_section {
    bool watch;
    int64_t delay_ms;
};
static const struct ib_schema_entry config_entries[] = {
    {.key = "watch",
     .type = IB_S_BOOL,
     .offset = offsetof(struct config_section, watch),
     .def = "false",
     .description = "apply changes of the configuration files by themselves (inotify)"},
    {.key = "watch_delay",
     .type = IB_S_DURATION,
     .flags = IB_SF_RANGE,
     .offset = offsetof(struct config_section, delay_ms),
     .def = "1s",
     .min = 50,
     .max = 600000,
     .description = "quiet time after the last change before it is applied"},
};
static const struct ib_schema config_schema = {
    sizeof(struct config_section), 2, config_entries, {0}};

static const struct ib_schema_entry remote_entries[] = {
    {.key = "enabled",
     .type = IB_S_BOOL,
     .offset = offsetof(struct ib_remote_cfg, enabled),
     .def = "false",
     .description = "accept signed configuration documents over MQTT"},
    E_STR("public_key", struct ib_remote_cfg, public_key, NULL,
          "PEM Ed25519 public key that signs the documents"),
    E_STR("topic", struct ib_remote_cfg, topic, "ironbridge/{gateway}/config-set",
          "topic the documents are published to"),
    E_STR("file", struct ib_remote_cfg, file, "50-remote.yaml",
          "name an accepted document is kept under (state directory, remote/NAME)"),
};
static const struct ib_schema remote_schema = {
    sizeof(struct ib_remote_cfg), 4, remote_entries, {0}};

struct log_section {
    int32_t level;
};
static const char *const level_choices[] = {"error", "warning", "notice", "info", "debug", NULL};
static const struct ib_schema_entry log_entries[] = {
    {.key = "level",
     .type = IB_S_ENUM,
     .offset = offsetof(struct log_section, level),
     .def = "info",
     .choices = level_choices,
     .description = "least severe level logged"},
};
static const struct ib_schema log_schema = {sizeof(struct log_section), 1, log_entries, {0}};

static const char *const layout_choices[] = {"batch", "tag", NULL};
static const struct ib_schema_entry mqtt_entries[] = {
    {.key = "url",
     .type = IB_S_STRING,
     .flags = IB_SF_REQUIRED,
     .offset = offsetof(struct ib_mqtt_cfg, url),
     .description = "broker: mqtts://host[:port] (TLS) or mqtt://host[:port]"},
    E_STR("client_id", struct ib_mqtt_cfg, client_id, NULL, "MQTT client id"),
    {.key = "allow_insecure",
     .type = IB_S_BOOL,
     .offset = offsetof(struct ib_mqtt_cfg, allow_insecure),
     .def = "false",
     .description = "permit plaintext mqtt://"},
    E_INT("qos", struct ib_mqtt_cfg, qos, "1", 0, 1, "QoS of data messages"),
    {.key = "layout",
     .type = IB_S_ENUM,
     .offset = offsetof(struct ib_mqtt_cfg, layout),
     .def = "batch",
     .choices = layout_choices,
     .description = "batch: a message per device group per poll; tag: a message per tag"},
    E_STR("topic", struct ib_mqtt_cfg, topic, NULL,
          "topic template of data messages (default ironbridge/{gateway}/{device}/{group}, "
          "with /{tag} for layout tag)"),
    E_STR("status_topic", struct ib_mqtt_cfg, status_topic, "ironbridge/{gateway}/status",
          "retained online/offline topic"),
    E_STR("config_status_topic", struct ib_mqtt_cfg, config_status_topic,
          "ironbridge/{gateway}/config",
          "retained message: which configuration runs, and the last reload's result"),
    E_INT("keepalive_s", struct ib_mqtt_cfg, keepalive_s, "30", 5, 3600, "MQTT keep-alive"),
    E_INT("connect_timeout_ms", struct ib_mqtt_cfg, connect_timeout_ms, "10000", 100, 300000,
          "connect timeout"),
    E_INT("reconnect_min_ms", struct ib_mqtt_cfg, reconnect_min_ms, "1000", 100, 3600000,
          "first reconnect delay"),
    E_INT("reconnect_max_ms", struct ib_mqtt_cfg, reconnect_max_ms, "8000", 100, 3600000,
          "longest reconnect delay"),
    E_INT("max_inflight", struct ib_mqtt_cfg, max_inflight, "256", 1, 65535,
          "QoS 1 messages awaiting PUBACK"),
    E_STR("max_inflight_bytes", struct ib_mqtt_cfg, max_inflight_size, "8MiB",
          "bytes of QoS 1 messages awaiting PUBACK (one message is always let through)"),
    E_INT("flush_timeout_ms", struct ib_mqtt_cfg, flush_timeout_ms, "5000", 0, 600000,
          "time given at stop to deliver what is queued"),
    E_STR("username", struct ib_mqtt_cfg, username, NULL, "MQTT user name"),
    E_STR("password_file", struct ib_mqtt_cfg, password_file, NULL,
          "file holding the MQTT password (mode 0600)"),
};
static const struct ib_schema mqtt_schema = {
    sizeof(struct ib_mqtt_cfg), sizeof mqtt_entries / sizeof mqtt_entries[0], mqtt_entries, {0}};

static const struct ib_schema_entry tls_entries[] = {
    E_STR("ca", struct ib_mqtt_cfg, ca, NULL, "CA certificate file (PEM)"),
    E_STR("ca_path", struct ib_mqtt_cfg, ca_path, NULL, "directory of CA certificates"),
    E_STR("cert", struct ib_mqtt_cfg, cert, NULL, "client certificate (mutual TLS)"),
    E_STR("key", struct ib_mqtt_cfg, key, NULL, "client private key (mode 0600)"),
};
static const struct ib_schema tls_schema = {sizeof(struct ib_mqtt_cfg), 4, tls_entries, {0}};

/* Sizes are read as text and converted with their units by size_setting(). */
struct store_section {
    const char *path, *max_bytes, *fsync_bytes, *memory_max_bytes;
    int32_t fsync;
    int64_t max_age_ms, fsync_interval_ms, replay_rate;
};
static const char *const fsync_choices[] = {"batch", "always", NULL};
static const struct ib_schema_entry store_entries[] = {
    E_STR("path", struct store_section, path, NULL,
          "queue directory (default $STATE_DIRECTORY/queue, else /var/lib/ironbridge/queue)"),
    E_STR("max_bytes", struct store_section, max_bytes, "1GiB",
          "disk space of the queue, e.g. 1GiB; the oldest records go first when full"),
    {.key = "max_age",
     .type = IB_S_DURATION,
     .flags = IB_SF_RANGE,
     .offset = offsetof(struct store_section, max_age_ms),
     .def = "7d",
     .min = 1000,
     .max = 3650LL * 86400000,
     .description = "records older than this are dropped, e.g. 7d, 12h"},
    {.key = "fsync",
     .type = IB_S_ENUM,
     .offset = offsetof(struct store_section, fsync),
     .def = "batch",
     .choices = fsync_choices,
     .description = "batch: fsync every fsync_interval_ms or fsync_bytes; always: every record"},
    E_INT("fsync_interval_ms", struct store_section, fsync_interval_ms, "1000", 1, 600000,
          "longest time appended records wait for an fsync (the power-loss window)"),
    E_STR("fsync_bytes", struct store_section, fsync_bytes, "1MiB",
          "appended bytes that trigger an fsync before the interval ends"),
    E_INT("replay_rate", struct store_section, replay_rate, "5000", 0, 10000000,
          "backlog records sent per second after a reconnect (0: unlimited)"),
    E_STR("memory_max_bytes", struct store_section, memory_max_bytes, "16MiB",
          "memory holding records while the disk refuses writes"),
};
static const struct ib_schema store_schema = {sizeof(struct store_section),
                                              sizeof store_entries / sizeof store_entries[0],
                                              store_entries,
                                              {0}};

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
    E_INT("interval_ms", struct group_section, interval_ms, "1000", 0, 86400000,
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
    E_STR("unit", struct tag_section, unit, NULL, "engineering unit"),
    E_STR("description", struct tag_section, description, NULL, "free text"),
    {.key = "writable",
     .type = IB_S_BOOL,
     .offset = offsetof(struct tag_section, writable),
     .def = "false",
     .description = "the tag accepts writes"},
    {.key = "deadband",
     .type = IB_S_STRING,
     .offset = offsetof(struct tag_section, deadband),
     .description = "report this tag by deadband: a number (0.5) or a percent of range (2%)"},
};
static const struct ib_schema tag_schema = {sizeof(struct tag_section), 7, tag_entries, {0}};

/* ---- Files ----------------------------------------------------------------------------------- */

static const char *resolve(struct loader *L, const char *p)
{
    if (!p || p[0] == '/')
        return p;
    return ib_arena_printf(&L->cfg->arena, "%s/%s", L->dir, p);
}

static void check_file(struct loader *L, struct ynode *map, const char *path, const char *key,
                       const char *file, bool secret, bool dir)
{
    struct stat st;
    if (stat(file, &st) < 0) {
        err_node(L, map, path, key, "cannot use %s: %s", file, strerror(errno));
        return;
    }
    if (dir ? !S_ISDIR(st.st_mode) : !S_ISREG(st.st_mode)) {
        err_node(L, map, path, key, "%s is not a %s", file, dir ? "directory" : "regular file");
        return;
    }
    if (access(file, R_OK) < 0) {
        err_node(L, map, path, key, "cannot read %s: %s", file, strerror(errno));
        return;
    }
    if (secret && (st.st_mode & 077))
        err_node(L, map, path, key,
                 "%s is readable or writable by group or others (mode %04o): a secret must be "
                 "private; run `chmod 600 %s`",
                 file, (unsigned)(st.st_mode & 07777), file);
}

double ib_scale_divisor(double scale)
{
    if (scale == 0.0 || fabs(scale) >= 1.0)
        return 0.0;
    double n = round(1.0 / scale);
    /* Exact reciprocals only: 1/n must be the very double the user wrote. */
    return (fabs(n) <= 1e15 && 1.0 / n == scale) ? n : 0.0;
}

/* ---- Sections -------------------------------------------------------------------------------- */

static int64_t size_setting(struct loader *L, struct ynode *n, const char *path, const char *text,
                            const char *key, int64_t lo, int64_t hi);

static void load_mqtt(struct loader *L, struct ynode *n, const char *path)
{
    struct ib_mqtt_cfg *m = &L->cfg->mqtt;
    static const char *const extra[] = {"tls", NULL};
    struct spec sp = {&mqtt_schema, m};
    if (!apply_mapping(L, n, path, &sp, 1, extra))
        return;
    struct ib_where *w = make_where(L, n, path);
    m->max_inflight_bytes =
        size_setting(L, n, path, m->max_inflight_size, "max_inflight_bytes", 65536, 1LL << 30);
    struct ynode *tn = map_get(L, n, "tls");
    const char *tpath = join_path(L, path, "tls");
    struct spec tsp = {&tls_schema, m};
    if (tn)
        apply_mapping(L, tn, tpath, &tsp, 1, NULL);

    /* URL: the scheme decides TLS; plaintext must be asked for explicitly. */
    if (m->url) {
        const char *u = m->url, *rest = NULL;
        if (strncmp(u, "mqtts://", 8) == 0) {
            m->tls = true;
            rest = u + 8;
        } else if (strncmp(u, "mqtt://", 7) == 0) {
            m->tls = false;
            rest = u + 7;
        }
        char host[256] = "";
        int port = m->tls ? 8883 : 1883;
        bool ok = rest != NULL;
        if (ok && rest[0] == '[') {
            const char *e = strchr(rest, ']');
            ok = e && (size_t)(e - rest - 1) < sizeof host && e > rest + 1;
            if (ok) {
                snprintf(host, sizeof host, "%.*s", (int)(e - rest - 1), rest + 1);
                rest = e + 1;
            }
        } else if (ok) {
            size_t hl = strcspn(rest, ":/");
            ok = hl > 0 && hl < sizeof host;
            if (ok) {
                snprintf(host, sizeof host, "%.*s", (int)hl, rest);
                rest += hl;
            }
        }
        if (ok && *rest == ':') {
            char *end;
            long p = strtol(rest + 1, &end, 10);
            ok = end != rest + 1 && p > 0 && p <= 65535 && (*end == '\0' || *end == '/');
            port = (int)p;
            rest = end;
        }
        if (ok && *rest == '/')
            rest++;
        if (ok && *rest)
            ok = false;
        if (!ok) {
            ib_diag_add(L->diag, w, "url",
                        "'%s' is not a broker URL: write mqtts://host[:port] (TLS, port 8883 by "
                        "default) or mqtt://host[:port]",
                        m->url);
        } else {
            m->host = ib_arena_strdup(&L->cfg->arena, host);
            m->port = port;
            bool v6 = strchr(host, ':') != NULL;
            m->server_uri =
                ib_arena_printf(&L->cfg->arena, "%s://%s%s%s:%d", m->tls ? "ssl" : "tcp",
                                v6 ? "[" : "", host, v6 ? "]" : "", port);
            if (!m->tls && !m->allow_insecure)
                ib_diag_add(L->diag, w, "url",
                            "'%s' is plaintext MQTT: use mqtts:// with a CA, or set "
                            "allow_insecure: true to accept sending data unencrypted",
                            m->url);
        }
    }
    struct ib_where *tw = tn && tn->type == YNODE_MAPPING ? make_where(L, tn, tpath) : w;
    m->ca = resolve(L, m->ca);
    m->ca_path = resolve(L, m->ca_path);
    m->cert = resolve(L, m->cert);
    m->key = resolve(L, m->key);
    m->password_file = resolve(L, m->password_file);
    if (m->tls && !m->ca && !m->ca_path)
        ib_diag_add(L->diag, tn ? tw : w, tn ? NULL : "tls",
                    "TLS needs a CA to verify the broker: set tls.ca (a PEM file) or tls.ca_path");
    if (m->ca)
        check_file(L, tn, tpath, "ca", m->ca, false, false);
    if (m->ca_path)
        check_file(L, tn, tpath, "ca_path", m->ca_path, false, true);
    if (!!m->cert != !!m->key)
        ib_diag_add(L->diag, tw, m->cert ? "cert" : "key",
                    "tls.cert and tls.key go together (mutual TLS needs both)");
    if (m->cert)
        check_file(L, tn, tpath, "cert", m->cert, false, false);
    if (m->key)
        check_file(L, tn, tpath, "key", m->key, true, false);
    if (m->password_file)
        check_file(L, n, path, "password_file", m->password_file, true, false);
    if (!m->tls && tn && (m->ca || m->cert))
        ib_diag_add(L->diag, tw, NULL,
                    "a tls section is given but the url is mqtt://: use mqtts://");
    if (m->reconnect_min_ms > m->reconnect_max_ms)
        ib_diag_add(L->diag, w, "reconnect_min_ms", "must not exceed reconnect_max_ms (%lld)",
                    (long long)m->reconnect_max_ms);
    char what[64];
    const char *e;
    bool per_tag = m->layout == IB_LAYOUT_TAG;
    bool own_topic = m->topic != NULL;
    if (!m->topic)
        m->topic = per_tag ? "ironbridge/{gateway}/{device}/{group}/{tag}"
                           : "ironbridge/{gateway}/{device}/{group}";
    unsigned allowed = IB_TOPIC_GATEWAY | IB_TOPIC_CONNECTION | IB_TOPIC_DEVICE | IB_TOPIC_GROUP |
                       (per_tag ? IB_TOPIC_TAG : 0);
    if ((e = ib_topic_check(m->topic, allowed, what, sizeof what)))
        ib_diag_add(L->diag, w, "topic", "'%s': %s%s%s%s", m->topic, e, *what ? ": " : "", what,
                    !per_tag && strcmp(what, "{tag}") == 0 ? " ({tag} needs layout: tag)" : "");
    else if (per_tag && own_topic && !strstr(m->topic, "{tag}"))
        ib_diag_add(L->diag, w, "topic",
                    "'%s': with layout: tag every tag needs its own topic: add {tag}", m->topic);
    if ((e = ib_topic_check(m->status_topic, IB_TOPIC_GATEWAY, what, sizeof what)))
        ib_diag_add(L->diag, w, "status_topic", "'%s': %s%s%s", m->status_topic, e,
                    *what ? ": " : "", what);
    if ((e = ib_topic_check(m->config_status_topic, IB_TOPIC_GATEWAY, what, sizeof what)))
        ib_diag_add(L->diag, w, "config_status_topic", "'%s': %s%s%s", m->config_status_topic, e,
                    *what ? ": " : "", what);
    L->cfg->has_north = true;
}

/* A size key (of the store, north.mqtt): text such as "1GiB" or a number of bytes, range-checked.
 */
static int64_t size_setting(struct loader *L, struct ynode *n, const char *path, const char *text,
                            const char *key, int64_t lo, int64_t hi)
{
    int64_t v = 0;
    struct ynode *vn = map_get(L, n, key);
    struct ynode *at = vn ? vn : n;
    if (ib_parse_size(text, &v) < 0) {
        err_node(L, at, path, key,
                 "expected a size such as 1GiB, 512MiB, 64KiB, 10MB or a number of bytes, found "
                 "'%s'",
                 text);
        return lo;
    }
    if (v < lo || v > hi) {
        char a[32], b[32];
        ib_format_size(a, sizeof a, (uint64_t)lo);
        ib_format_size(b, sizeof b, (uint64_t)hi);
        err_node(L, at, path, key, "'%s' is out of range [%s, %s]", text, a, b);
        return lo;
    }
    return v;
}

/* `n` is the store section or NULL (defaults only). */
static void load_store(struct loader *L, struct ynode *n)
{
    struct store_section ss = {0};
    struct spec sp = {&store_schema, &ss};
    static struct ynode empty = {.type = YNODE_MAPPING};
    static const char *const ov[] = {"override", NULL};
    if (!apply_mapping(L, n ? n : &empty, "store", &sp, 1, ov))
        return;
    struct ib_store_cfg *st = &L->cfg->store;
    st->max_bytes = size_setting(L, n, "store", ss.max_bytes, "max_bytes", 1LL << 20, 1LL << 50);
    st->fsync_bytes = size_setting(L, n, "store", ss.fsync_bytes, "fsync_bytes", 4096, 1LL << 30);
    st->memory_max_bytes =
        size_setting(L, n, "store", ss.memory_max_bytes, "memory_max_bytes", 65536, 1LL << 40);
    st->max_age_ms = ss.max_age_ms;
    st->fsync = ss.fsync;
    st->fsync_interval_ms = ss.fsync_interval_ms;
    st->replay_rate = ss.replay_rate;
    if (ss.path) {
        st->path = resolve(L, ss.path);
    } else {
        /* systemd's StateDirectory= sets $STATE_DIRECTORY (several paths are ':'-separated). */
        const char *sd = getenv("STATE_DIRECTORY");
        size_t len = sd ? strcspn(sd, ":") : 0;
        st->path = len ? ib_arena_printf(&L->cfg->arena, "%.*s/queue", (int)len, sd)
                       : "/var/lib/ironbridge/queue";
        st->path_default = true;
    }
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
static void load_report(struct loader *L, struct ynode *n, const char *path,
                        const struct ib_schema *schema, struct report_section *r)
{
    memset(r, 0, sizeof *r);
    r->mode = -1;
    struct ynode *rn = map_get(L, n, "report");
    if (!rn)
        return;
    struct spec sp = {schema, r};
    apply_mapping(L, rn, join_path(L, path, "report"), &sp, 1, NULL);
}

/* A tag's range: [min, max], for percent deadbands. */
static bool load_range(struct loader *L, struct ynode *tn, const char *tpath, double *lo,
                       double *hi)
{
    struct ynode *rn = map_get(L, tn, "range");
    if (!rn)
        return false;
    double v[2];
    if (rn->type != YNODE_SEQUENCE || list_len(rn) != 2) {
        err_node(L, rn, tpath, "range", "expected [min, max], found %s", node_kind(rn));
        return false;
    }
    for (int i = 0; i < 2; i++) {
        struct ynode *x = item_at(L, rn, (size_t)i);
        if (!scalar(x) || parse_double(scalar(x), &v[i]) < 0) {
            err_node(L, x, tpath, "range", "expected a number, found %s",
                     scalar(x) ? scalar(x) : node_kind(x));
            return false;
        }
    }
    if (!(v[0] < v[1])) {
        err_node(L, rn, tpath, "range", "min (%g) must be below max (%g)", v[0], v[1]);
        return false;
    }
    *lo = v[0];
    *hi = v[1];
    return true;
}

/* Resolve a tag's reporting from its own keys over its group's: mode, deadband, heartbeat. */
static void resolve_report(struct loader *L, struct ynode *tn, const char *tpath,
                           const struct report_section *gr, const struct tag_section *ts,
                           struct ib_report_cfg *out)
{
    struct report_section tr;
    load_report(L, tn, tpath, &tag_report_schema, &tr);
    const char *db = ts->deadband ? ts->deadband : tr.deadband;
    if (ts->deadband && tr.deadband)
        err_node(L, map_get(L, tn, "deadband"), tpath, "deadband",
                 "the deadband is given twice (deadband and report.deadband): keep one");
    /* A tag's own deadband means "report this tag by deadband" unless it says otherwise. */
    int32_t mode = tr.mode >= 0 ? tr.mode : db ? IB_REPORT_DEADBAND : gr->mode >= 0 ? gr->mode : 0;
    if (db && mode != IB_REPORT_DEADBAND)
        err_node(L, tn, tpath, NULL,
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
        err_node(L, tn, tpath, NULL,
                 "report mode deadband needs a deadband: a number (deadband: 0.5) or a percent "
                 "of the tag's range (deadband: 2%%, with range: [min, max])");
        return;
    }
    if (parse_deadband(db, &v, &pct) < 0) {
        if (db == gr->deadband)
            return; /* the group's, reported once at the group */
        err_node(L, tn, tpath, "deadband",
                 "'%s' is not a deadband: write a number >= 0 (0.5) or a percent (2%%)", db);
        return;
    }
    bool has_range = load_range(L, tn, tpath, &lo, &hi);
    if (pct && !has_range) {
        err_node(L, tn, tpath, "deadband",
                 "deadband %s is a percent of the tag's range: add range: [min, max]", db);
        return;
    }
    out->deadband = pct ? v / 100.0 * (hi - lo) : v;
}

/* One CSV field with the position where it starts (1-based). */
struct csv_field {
    char *text;
    int line, col;
};

/* Parse RFC 4180 CSV (quotes with "" escapes, LF or CRLF); calls row() for every record that is
 * not empty and not a '#' comment. Returns -1 with `err` for an unterminated quote. */
static int csv_parse(char *buf, void (*row)(void *ud, struct csv_field *f, int n, int line),
                     void *ud, int *err_line)
{
    struct csv_field f[64];
    int nf = 0, line = 1, col = 1;
    char *p = buf;
    while (*p) {
        int rec_line = line;
        nf = 0;
        bool comment = *p == '#';
        for (;;) {
            struct csv_field *cur = nf < 64 ? &f[nf] : NULL;
            char *out = p, *start = p;
            int fl = line, fc = col;
            if (*p == '"') {
                p++;
                col++;
                for (;;) {
                    if (!*p) {
                        *err_line = fl;
                        return -1;
                    }
                    if (*p == '"' && p[1] == '"') {
                        *out++ = '"';
                        p += 2;
                        col += 2;
                    } else if (*p == '"') {
                        p++;
                        col++;
                        break;
                    } else {
                        if (*p == '\n') {
                            line++;
                            col = 0;
                        }
                        *out++ = *p++;
                        col++;
                    }
                }
                while (*p && *p != ',' && *p != '\n' && *p != '\r') {
                    p++; /* text after a closing quote is ignored, as spreadsheets do */
                    col++;
                }
            } else {
                while (*p && *p != ',' && *p != '\n' && *p != '\r') {
                    *out++ = *p++;
                    col++;
                }
            }
            char sep = *p;
            *out = '\0';
            if (cur) {
                /* Trim the spaces PLC tools put around cells. */
                char *t = start;
                while (*t == ' ' || *t == '\t') {
                    t++;
                    fc++;
                }
                size_t len = strlen(t);
                while (len && (t[len - 1] == ' ' || t[len - 1] == '\t'))
                    t[--len] = '\0';
                *cur = (struct csv_field){t, fl, fc};
                nf++;
            }
            if (sep == ',') {
                p++;
                col++;
                continue;
            }
            /* The field's terminator was overwritten: step over the separator we saved. */
            if (sep == '\r') {
                p++;
                if (*p == '\n')
                    p++;
            } else if (sep == '\n') {
                p++;
            }
            line++;
            col = 1;
            break;
        }
        bool empty = nf == 1 && !*f[0].text;
        if (!comment && !empty)
            row(ud, f, nf, rec_line);
    }
    return 0;
}

struct csv_ctx {
    struct loader *L;
    struct ytree *t;
    struct csv_field header[64];
    int n_header;
    bool have_header;
    const char *path;
};

static void csv_scalar(struct ytree *t, const char *text, int line, int col)
{
    ytree_scalar(t, text, strlen(text), line, col);
}

static void csv_row(void *ud, struct csv_field *f, int n, int line)
{
    struct csv_ctx *c = ud;
    if (!c->have_header) {
        for (int i = 0; i < n; i++) {
            c->header[i] = f[i];
            c->header[i].text = ib_arena_strdup(&c->L->cfg->arena, f[i].text);
            for (char *t = c->header[i].text; *t; t++)
                *t = (char)(*t >= 'A' && *t <= 'Z' ? *t - 'A' + 'a' : *t);
        }
        c->n_header = n;
        c->have_header = true;
        return;
    }
    ytree_begin(c->t, YNODE_MAPPING, line, 1); /* the next item of the list */
    for (int i = 0; i < n; i++) {
        if (!*f[i].text)
            continue; /* an empty cell: the key is absent */
        if (i >= c->n_header) {
            struct ib_where w = {.file = c->path, .line = f[i].line, .col = f[i].col};
            ib_diag_add(c->L->diag, &w, NULL,
                        "this row has more cells than the header has columns");
            continue;
        }
        /* The key carries the cell's position too: an error about this tag's key (an unknown
         * column, a plugin's complaint) names the row, not only the header. */
        csv_scalar(c->t, c->header[i].text, f[i].line, f[i].col);
        char *dots = strcmp(c->header[i].text, "range") == 0 ? strstr(f[i].text, "..") : NULL;
        if (dots) {
            /* range as "min..max" */
            *dots = '\0';
            ytree_begin(c->t, YNODE_SEQUENCE, f[i].line, f[i].col);
            csv_scalar(c->t, f[i].text, f[i].line, f[i].col);
            csv_scalar(c->t, dots + 2, f[i].line, f[i].col);
            ytree_end(c->t);
        } else {
            csv_scalar(c->t, f[i].text, f[i].line, f[i].col);
        }
    }
    ytree_end(c->t);
}

/* Read a CSV tag list (docs/configuration.md): a header row naming the columns (the tag keys:
 * name, table, address, type, order, scale, offset, unit, deadband, range, writable,
 * description...), then one tag per row. The rows become YAML nodes positioned at their cells,
 * so every error names file:line:column. Returns the new document's index, or -1. */
static int read_csv(struct loader *L, const char *path, struct ynode *at, const char *gpath)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        err_node(L, at, gpath, "tags_csv", "cannot read %s: %s", path, strerror(errno));
        return -1;
    }
    struct ib_buf b = {0};
    char chunk[8192];
    size_t got;
    while ((got = fread(chunk, 1, sizeof chunk, f)) > 0)
        ib_buf_append(&b, chunk, got);
    fclose(f);
    if (!b.p)
        ib_buf_puts(&b, "");
    struct srcdoc *sd = ib_arena_alloc(&L->cfg->arena, sizeof *sd);
    sd->file = ib_arena_strdup(&L->cfg->arena, path);
    sd->dir = L->dir;
    ytree_init(&sd->tree, &L->strings);
    struct csv_ctx c = {.L = L, .t = &sd->tree, .path = sd->file};
    ytree_begin(c.t, YNODE_SEQUENCE, 1, 1); /* the root: a list of the rows */
    int bad_line = 0;
    /* Skip a UTF-8 byte order mark, which spreadsheet exports like to add. */
    char *text = b.p;
    if ((unsigned char)text[0] == 0xef && (unsigned char)text[1] == 0xbb &&
        (unsigned char)text[2] == 0xbf)
        text += 3;
    int rc = csv_parse(text, csv_row, &c, &bad_line);
    ytree_end(c.t);
    ib_buf_free(&b);
    if (rc < 0 || !c.have_header) {
        struct ib_where w = {.file = sd->file, .line = rc < 0 ? bad_line : 1, .col = 1};
        ib_diag_add(L->diag, &w, NULL,
                    rc < 0 ? "a quoted cell is never closed"
                           : "the CSV file is empty: it needs a header row "
                             "naming its columns (name,table,address,...)");
        ytree_free(&sd->tree);
        return -1;
    }
    struct srcdoc **nd = realloc(L->docs, (L->n_docs + 1) * sizeof *nd);
    if (!nd)
        abort();
    L->docs = nd;
    L->docs[L->n_docs] = sd;
    return (int)L->n_docs++;
}

/* The tags of a group: its `tags` list and/or the rows of its `tags_csv` file, in that order. */
static void load_tags(struct loader *L, struct ynode *gn, const char *gpath,
                      struct ib_group_config *g, struct ib_cfg_group *cg,
                      const struct ib_plugin *plugin, const struct report_section *gr)
{
    struct listsrc src[2];
    size_t nsrc = 0, n = 0, home = L->cur;
    struct ynode *csv = map_get(L, gn, "tags_csv");
    struct ynode *list =
        map_get(L, gn, "tags") || !csv ? get_list(L, gn, gpath, "tags", true) : NULL;
    if (list)
        src[nsrc++] = (struct listsrc){home, list};
    if (csv) {
        if (!scalar(csv) || !*scalar(csv)) {
            err_node(L, csv, gpath, "tags_csv", "expected the path of a CSV file");
        } else {
            int d = read_csv(L, resolve(L, scalar(csv)), csv, gpath);
            if (d >= 0)
                src[nsrc++] = (struct listsrc){(size_t)d, ytree_root(&L->docs[d]->tree)};
        }
        use_doc(L, home);
    }
    for (size_t k = 0; k < nsrc; k++)
        n += list_len(src[k].list);
    if (nsrc && n == 0)
        err_node(L, gn, gpath, NULL, "a group needs at least one tag");
    struct ib_tag_config *tags = ib_arena_alloc(&L->cfg->arena, (n ? n : 1) * sizeof *tags);
    cg->tags = ib_arena_alloc(&L->cfg->arena, (n ? n : 1) * sizeof *cg->tags);
    g->tags = tags;
    g->n_tags = (uint32_t)n;
    size_t i = 0;
    for (size_t k = 0; k < nsrc; k++) {
        use_doc(L, src[k].doc);
        for (size_t j = 0; j < list_len(src[k].list); j++, i++) {
            struct ynode *tn = item_at(L, src[k].list, j);
            char tpath[256]; /* for messages now: the tag's where does not keep it */
            snprintf(tpath, sizeof tpath, "%s.tags[%zu]", gpath, i);
            struct tag_section ts = {0};
            void *params = ib_arena_alloc(&L->cfg->arena, plugin->tag_schema->struct_size);
            struct spec sp[2] = {{&tag_schema, &ts}, {plugin->tag_schema, params}};
            static const char *const textra[] = {"report", "range", NULL};
            if (!apply_mapping(L, tn, tpath, sp, 2, textra))
                continue;
            tags[i].name = ts.name;
            tags[i].params = params;
            tags[i].where = make_item_where(L, tn, cg->where, "tags", i);
            tags[i].writable = ts.writable;
            cg->tags[i] = (struct ib_tag_core){.scale = ts.scale,
                                               .offset = ts.offset,
                                               .divisor = ib_scale_divisor(ts.scale),
                                               .scaled = ts.scale != 1.0 || ts.offset != 0.0,
                                               .unit = ts.unit,
                                               .description = ts.description};
            if (ts.name && !valid_tag_name(ts.name))
                err_node(L, map_get(L, tn, "name"), tpath, "name",
                         "'%s' is not a valid tag name: no control characters, '/', '+' or '#'",
                         ts.name);
            if (ts.scale == 0.0)
                err_node(L, map_get(L, tn, "scale"), tpath, "scale", "must not be 0");
            resolve_report(L, tn, tpath, gr, &ts, &cg->tags[i].report);
        }
    }
    use_doc(L, home);
    L->cfg->n_tags += n;
}

/* A device's metadata: free key/value pairs (site, line, asset ids) sent with each of its
 * messages as a JSON object of strings. */
static const char *load_metadata(struct loader *L, struct ynode *mn, const char *dpath)
{
    if (!mn)
        return NULL;
    const char *path = join_path(L, dpath, "metadata");
    if (mn->type != YNODE_MAPPING) {
        err_node(L, mn, dpath, "metadata", "expected a mapping of names to values, found %s",
                 node_kind(mn));
        return NULL;
    }
    struct ib_buf b = {0};
    ib_buf_puts(&b, "{");
    int n = 0;
    for (size_t p = 0; p < mn->n; p++) {
        struct ynode *kn = key_at(L, mn, p), *vn = value_at(L, mn, p);
        if (!scalar(kn) || !*scalar(kn)) {
            err_node(L, kn, path, NULL, "a metadata name must be a non-empty word");
            continue;
        }
        if (!scalar(vn)) {
            err_node(L, vn, path, scalar(kn), "expected a single value, found %s", node_kind(vn));
            continue;
        }
        for (size_t q = 0; q < p; q++)
            if (scalar(key_at(L, mn, q)) && !strcmp(scalar(key_at(L, mn, q)), scalar(kn)))
                err_node(L, kn, path, scalar(kn), "duplicate key");
        if (n++)
            ib_buf_puts(&b, ",");
        ib_json_cstr(&b, scalar(kn));
        ib_buf_puts(&b, ":");
        ib_json_cstr(&b, scalar(vn));
    }
    ib_buf_puts(&b, "}");
    const char *out = n ? ib_arena_strdup(&L->cfg->arena, b.p) : NULL;
    ib_buf_free(&b);
    return out;
}

/* The devices of a connection: from its own item and from later files' `extend: true` items. */
static void load_devices(struct loader *L, const struct listsrc *src, size_t nsrc,
                         const char *cpath, struct ib_cfg_connection *c)
{
    size_t n = 0;
    for (size_t k = 0; k < nsrc; k++)
        n += list_len(src[k].list);
    if (nsrc && n == 0) {
        use_doc(L, src[0].doc);
        err_node(L, src[0].list, cpath, "devices", "a connection needs at least one device");
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
        use_doc(L, src[k].doc);
        struct ynode *dn = item_at(L, src[k].list, j);
        char *dpath = ib_arena_printf(&L->cfg->arena, "%s.devices[%zu]", cpath, d);
        struct named nm = {0};
        void *params = ib_arena_alloc(&L->cfg->arena, plugin->device_schema->struct_size);
        struct spec sp[2] = {{&name_schema, &nm}, {plugin->device_schema, params}};
        static const char *const extra[] = {"groups", "metadata", NULL};
        if (!apply_mapping(L, dn, dpath, sp, 2, extra))
            continue;
        c->devices[d].meta_json = load_metadata(L, map_get(L, dn, "metadata"), dpath);
        devs[d].name = nm.name;
        devs[d].params = params;
        devs[d].where = make_where(L, dn, dpath);
        c->devices[d].where = devs[d].where;
        check_ident(L, dn, dpath, nm.name);
        /* Device names are unique across the gateway: they key topics and journald fields. */
        for (size_t ci = 0; ci < L->cfg->n_connections && nm.name; ci++) {
            struct ib_cfg_connection *oc = &L->cfg->connections[ci];
            size_t lim = oc == c ? d : oc->pub.n_devices;
            for (size_t od = 0; od < lim; od++)
                if (oc->pub.devices[od].name && strcmp(oc->pub.devices[od].name, nm.name) == 0) {
                    const struct ib_where *ow = oc->pub.devices[od].where;
                    err_node(L, map_get(L, dn, "name"), dpath, "name",
                             "duplicate device name '%s' (first defined at %s:%d:%d)", nm.name,
                             ow->file, ow->line, ow->col);
                }
        }
        struct ynode *glist = get_list(L, dn, dpath, "groups", true);
        size_t ng = list_len(glist);
        if (glist && ng == 0)
            err_node(L, glist, dpath, "groups", "a device needs at least one group");
        struct ib_group_config *groups =
            ib_arena_alloc(&L->cfg->arena, (ng ? ng : 1) * sizeof *groups);
        c->devices[d].groups =
            ib_arena_alloc(&L->cfg->arena, (ng ? ng : 1) * sizeof(struct ib_cfg_group));
        devs[d].groups = groups;
        devs[d].n_groups = (uint32_t)ng;
        for (size_t g = 0; g < ng; g++) {
            struct ynode *gn = item_at(L, glist, g);
            char *gpath = ib_arena_printf(&L->cfg->arena, "%s.groups[%zu]", dpath, g);
            struct group_section gs = {0};
            struct spec gsp = {&group_schema, &gs};
            static const char *const gextra[] = {"tags", "tags_csv", "report", NULL};
            if (!apply_mapping(L, gn, gpath, &gsp, 1, gextra))
                continue;
            struct report_section gr;
            load_report(L, gn, gpath, &group_report_schema, &gr);
            double dbv;
            bool dbpct;
            if (gr.deadband && parse_deadband(gr.deadband, &dbv, &dbpct) < 0)
                err_node(L, map_get(L, map_get(L, gn, "report"), "deadband"),
                         join_path(L, gpath, "report"), "deadband",
                         "'%s' is not a deadband: write a number >= 0 (0.5) or a percent (2%%)",
                         gr.deadband);
            if (gs.interval_ms > 0 && gs.interval_ms < 10)
                err_node(L, map_get(L, gn, "interval_ms"), gpath, "interval_ms",
                         "%lld ms is too short a period: use at least 10, or 0 to poll "
                         "continuously",
                         (long long)gs.interval_ms);
            c->devices[d].groups[g].stale_after_ms =
                gr.stale_after_ms ? gr.stale_after_ms
                                  : 3 * (gs.interval_ms ? gs.interval_ms : CONTINUOUS_STALE_MS);
            groups[g].name = gs.name;
            groups[g].interval_ms = (uint32_t)gs.interval_ms;
            groups[g].where = make_where(L, gn, gpath);
            c->devices[d].groups[g].where = groups[g].where;
            check_ident(L, gn, gpath, gs.name);
            for (size_t og = 0; og < g; og++)
                if (groups[og].name && gs.name && strcmp(groups[og].name, gs.name) == 0)
                    err_node(L, map_get(L, gn, "name"), gpath, "name",
                             "duplicate group name '%s' in device '%s'", gs.name,
                             nm.name ? nm.name : "?");
            load_tags(L, gn, gpath, &groups[g], &c->devices[d].groups[g], plugin, &gr);
            L->cfg->n_groups++;
        }
        /* Tag names are unique within a device: they key the values of its messages. */
        for (size_t g = 0; g < ng; g++)
            for (size_t t = 0; t < groups[g].n_tags; t++) {
                const struct ib_tag_config *tg = &groups[g].tags[t];
                if (!tg->name)
                    continue;
                bool dup = false;
                for (size_t g2 = 0; g2 <= g && !dup; g2++)
                    for (size_t t2 = 0; t2 < (g2 == g ? t : groups[g2].n_tags) && !dup; t2++)
                        if (groups[g2].tags[t2].name &&
                            strcmp(groups[g2].tags[t2].name, tg->name) == 0) {
                            const struct ib_where *ow = groups[g2].tags[t2].where;
                            ib_diag_add(L->diag, tg->where, "name",
                                        "duplicate tag name '%s' in device '%s' (first defined "
                                        "at line %d)",
                                        tg->name, nm.name ? nm.name : "?", ow ? ow->line : 0);
                            dup = true;
                        }
            }
        L->cfg->n_devices++;
    }
}

static bool flag_set(struct loader *L, struct ynode *map, const char *key)
{
    const char *v = scalar(map_get(L, map, key));
    bool b = false;
    return v && parse_bool(v, &b) == 0 && b;
}

static const char *where_text(struct loader *L, struct ynode *n)
{
    return ib_arena_printf(&L->cfg->arena, "%s:%u:%u", L->file, (unsigned)n->line,
                           (unsigned)n->col);
}

/* A connection as merged from the files: its item, and the device lists extending it. */
struct csrc {
    size_t doc;
    struct ynode *node;
    const char *name;
    struct listsrc dev[16];
    size_t n_dev;
};

static void load_connection(struct loader *L, struct csrc *cs, size_t i)
{
    use_doc(L, cs->doc);
    struct ynode *cn = cs->node;
    char *cpath = ib_arena_printf(&L->cfg->arena, "connections[%zu]", i);
    struct ib_cfg_connection *c = &L->cfg->connections[i];
    if (cn->type != YNODE_MAPPING) {
        err_node(L, cn, cpath, NULL, "expected a mapping, found %s", node_kind(cn));
        return;
    }
    c->where = make_where(L, cn, cpath);
    c->pub.where = c->where;
    const char *pname = scalar(map_get(L, cn, "plugin"));
    if (!map_get(L, cn, "plugin"))
        err_node(L, cn, cpath, NULL, "missing required key 'plugin' (which driver, e.g. modbus)");
    else if (!pname)
        err_node(L, map_get(L, cn, "plugin"), cpath, "plugin", "expected a plugin name");
    else {
        char err[1024];
        c->plugin_name = pname;
        c->plugin = ib_plugins_get(L->plugins, pname, err, sizeof err);
        if (!c->plugin)
            err_node(L, map_get(L, cn, "plugin"), cpath, "plugin", "%s", err);
    }
    struct conn_section nm = {0};
    void *params = c->plugin
                       ? ib_arena_alloc(&L->cfg->arena, c->plugin->connection_schema->struct_size)
                       : NULL;
    struct spec sp[2] = {{&conn_schema, &nm},
                         {c->plugin ? c->plugin->connection_schema : NULL, params}};
    static const char *const extra[] = {"plugin", "devices", "override", NULL};
    if (c->plugin) {
        apply_mapping(L, cn, cpath, sp, 2, extra);
    } else {
        nm.name = scalar(map_get(L, cn, "name"));
    }
    c->pub.name = nm.name;
    c->call_timeout_ms = nm.call_timeout_ms;
    c->pub.params = params;
    check_ident(L, cn, cpath, nm.name);
    if (!c->plugin)
        return; /* its blocks cannot be judged without the plugin's schemas */
    struct listsrc src[17];
    size_t nsrc = 0;
    struct ynode *own = get_list(L, cn, cpath, "devices", cs->n_dev == 0);
    if (own)
        src[nsrc++] = (struct listsrc){cs->doc, own};
    for (size_t k = 0; k < cs->n_dev; k++)
        src[nsrc++] = cs->dev[k];
    load_devices(L, src, nsrc, cpath, c);
}

/* Merge the connections of every file by name: a later file adds new ones; one of the same
 * name is an error naming both places, unless it says `override: true` (it replaces the
 * earlier one) or `extend: true` (its devices are added to the earlier one's). */
static void load_connections(struct loader *L)
{
    struct csrc *cs = NULL;
    size_t n = 0, cap = 0;
    for (size_t di = 0; di < L->n_tree; di++) {
        use_doc(L, di);
        struct ynode *root = ytree_root(L->t);
        struct ynode *list = get_list(L, root, "", "connections", false);
        for (size_t j = 0; j < list_len(list); j++) {
            struct ynode *cn = item_at(L, list, j);
            const char *name = scalar(map_get(L, cn, "name"));
            size_t k = 0;
            while (name && k < n && !(cs[k].name && strcmp(cs[k].name, name) == 0))
                k++;
            bool known = name && k < n;
            if (known && flag_set(L, cn, "override")) {
                cs[k] = (struct csrc){.doc = di, .node = cn, .name = cs[k].name};
                continue;
            }
            if (flag_set(L, cn, "extend")) {
                char *path = ib_arena_printf(&L->cfg->arena, "connections[%s]", name ? name : "?");
                struct named nm = {0};
                struct spec sp = {&name_schema, &nm};
                static const char *const ext[] = {"extend", "devices", NULL};
                apply_mapping(L, cn, path, &sp, 1, ext);
                struct ynode *devs = get_list(L, cn, path, "devices", true);
                if (!known)
                    err_node(L, cn, path, "extend",
                             "extends connection '%s', which no earlier file defines",
                             name ? name : "?");
                else if (cs[k].n_dev == sizeof cs[k].dev / sizeof cs[k].dev[0])
                    err_node(L, cn, path, "extend", "too many files extend connection '%s'", name);
                else if (devs)
                    cs[k].dev[cs[k].n_dev++] = (struct listsrc){di, devs};
                continue;
            }
            if (known) {
                size_t cur = di;
                use_doc(L, cs[k].doc);
                const char *first = where_text(L, cs[k].node);
                use_doc(L, cur);
                err_node(L, map_get(L, cn, "name"),
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
}

/* The one definition of a top-level section: a later file may define it again only with
 * `override: true` in it (it then replaces the earlier one). Leaves that document in use. */
static struct ynode *pick_section(struct loader *L, const char *key)
{
    struct ynode *found = NULL;
    size_t fdoc = 0;
    for (size_t di = 0; di < L->n_tree; di++) {
        use_doc(L, di);
        struct ynode *n = map_get(L, ytree_root(L->t), key);
        if (!n)
            continue;
        if (found && !flag_set(L, n, "override")) {
            use_doc(L, fdoc);
            const char *first = where_text(L, found);
            use_doc(L, di);
            err_node(L, n, key, NULL,
                     "'%s' is already defined at %s; a later file replaces a section only with "
                     "override: true in it",
                     key, first);
            continue;
        }
        found = n;
        fdoc = di;
    }
    use_doc(L, fdoc);
    return found;
}

static void load_root(struct loader *L)
{
    static const char *const extra[] = {"gateway",     "log",    "north",         "store",
                                        "connections", "config", "remote_config", NULL};
    for (size_t di = 0; di < L->n_tree; di++) {
        use_doc(L, di);
        struct ynode *root = ytree_root(L->t);
        if (!root || (root->type == YNODE_SCALAR && !*scalar(root)))
            continue; /* an empty drop-in is harmless */
        apply_mapping(L, root, "", NULL, 0, extra);
    }
    static const char *const ov[] = {"override", NULL};
    struct gw_section gw = {0};
    struct ynode *n;
    if ((n = pick_section(L, "gateway")) && n->type != YNODE_SCALAR) {
        struct spec sp = {&gw_schema, &gw};
        apply_mapping(L, n, "gateway", &sp, 1, ov);
        if (gw.id && !valid_ident(gw.id))
            err_node(L, map_get(L, n, "id"), "gateway", "id",
                     "'%s' is not a valid id: use letters, digits, '_', '-' and '.'", gw.id);
    }
    char host[256];
    if (!gw.id) {
        if (gethostname(host, sizeof host) < 0 || !valid_ident(host))
            snprintf(host, sizeof host, "ironbridge");
        host[sizeof host - 1] = '\0';
        gw.id = ib_arena_strdup(&L->cfg->arena, host);
    }
    L->cfg->gateway_id = gw.id;
    L->cfg->plugin_dir = resolve(L, gw.plugin_dir);
    if (L->cfg->plugin_dir && L->plugins)
        ib_plugins_prefer_dir(L->plugins, L->cfg->plugin_dir);

    struct log_section lg = {.level = 3}; /* info */
    struct spec lsp = {&log_schema, &lg};
    if ((n = pick_section(L, "log")) && n->type != YNODE_SCALAR)
        apply_mapping(L, n, "log", &lsp, 1, ov);
    L->cfg->log_level = IB_LOG_ERR + lg.level;

    struct config_section cs = {0};
    struct spec csp = {&config_schema, &cs};
    if ((n = pick_section(L, "config")) && n->type != YNODE_SCALAR)
        apply_mapping(L, n, "config", &csp, 1, ov);
    else
        cs.delay_ms = 1000;
    L->cfg->watch = cs.watch;
    L->cfg->watch_delay_ms = cs.delay_ms;

    struct ib_remote_cfg *rc = &L->cfg->remote;
    struct spec rsp = {&remote_schema, rc};
    if ((n = pick_section(L, "remote_config")) &&
        apply_mapping(L, n, "remote_config", &rsp, 1, ov)) {
        rc->public_key = resolve(L, rc->public_key);
        const char *f = rc->file;
        size_t fl = f ? strlen(f) : 0;
        if (f && (fl < 6 || strcmp(f + fl - 5, ".yaml") != 0 || f[0] == '.' || strchr(f, '/')))
            err_node(L, map_get(L, n, "file"), "remote_config", "file",
                     "'%s' must be a file name ending in .yaml (it stands for conf.d/NAME)", f);
        char what[64];
        const char *e = ib_topic_check(rc->topic, IB_TOPIC_GATEWAY, what, sizeof what);
        if (e)
            err_node(L, map_get(L, n, "topic"), "remote_config", "topic", "'%s': %s%s%s", rc->topic,
                     e, *what ? ": " : "", what);
        if (rc->enabled && !rc->public_key)
            err_node(L, n, "remote_config", NULL,
                     "enabled: true needs public_key: the Ed25519 key that signs the documents");
        else if (rc->enabled)
            check_file(L, n, "remote_config", "public_key", rc->public_key, false, false);
    } else if (!n) {
        rc->topic = "ironbridge/{gateway}/config-set";
        rc->file = "50-remote.yaml";
    }

    if ((n = pick_section(L, "north"))) {
        static const char *const nextra[] = {"mqtt", "override", NULL};
        if (apply_mapping(L, n, "north", NULL, 0, nextra)) {
            struct ynode *m = map_get(L, n, "mqtt");
            if (m)
                load_mqtt(L, m, "north.mqtt");
            else
                err_node(L, n, "north", NULL, "missing required key 'mqtt'");
        }
    }
    if ((n = pick_section(L, "store")) && n->type == YNODE_SCALAR)
        n = NULL; /* "store:" alone: the defaults */
    load_store(L, n);
    if (L->cfg->has_north && !L->cfg->mqtt.client_id)
        L->cfg->mqtt.client_id = ib_arena_printf(&L->cfg->arena, "ironbridge-%s", gw.id);
}

/* Read a YAML file (or `text`, standing for that file) into a new document; -1 on error.
 * `shown`: the name messages give it (NULL: `path`); its relative paths resolve against the
 * directory of `path` all the same. */
static int read_yaml(struct loader *L, const char *path, const char *text, const char *shown)
{
    const char *rpath = path;
    path = shown ? shown : path;
    FILE *f = text ? fmemopen((void *)text, strlen(text), "rb") : fopen(rpath, "rb");
    if (!f) {
        ib_diag_add(L->diag, NULL, NULL, "%s: cannot open the configuration: %s", path,
                    strerror(errno));
        return -1;
    }
    struct srcdoc *sd = ib_arena_alloc(&L->cfg->arena, sizeof *sd);
    sd->file = ib_arena_strdup(&L->cfg->arena, path);
    char *dir = ib_arena_strdup(&L->cfg->arena, rpath);
    char *slash = strrchr(dir, '/');
    sd->dir = slash ? (slash == dir ? "/" : (*slash = '\0', dir)) : ".";
    yaml_parser_t parser;
    yaml_parser_initialize(&parser);
    yaml_parser_set_input_file(&parser, f);
    ytree_init(&sd->tree, &L->strings);
    struct yerror ye;
    int rc = -1;
    if (ytree_load(&sd->tree, &parser, &ye) < 0) {
        ib_diag_add(L->diag, NULL, NULL, "%s:%zu:%zu: YAML syntax error: %s%s%s", path, ye.line,
                    ye.col, ye.problem ? ye.problem : "unknown", ye.context ? " " : "",
                    ye.context ? ye.context : "");
        ytree_free(&sd->tree);
    } else {
        /* A second document in the same file would be silently ignored: refuse it. It is read
         * into a scratch tree whose strings are thrown away with it. */
        struct ib_arena scratch = {0};
        struct ystrpool sp = {.arena = &scratch};
        struct ytree doc2;
        ytree_init(&doc2, &sp);
        if (ytree_root(&sd->tree) && ytree_load(&doc2, &parser, &ye) == 0 && ytree_root(&doc2))
            ib_diag_add(L->diag, NULL, NULL,
                        "%s: holds more than one YAML document ('---'); keep one", path);
        ytree_free(&doc2);
        ystr_free(&sp);
        ib_arena_free(&scratch);
        struct srcdoc **nd = realloc(L->docs, (L->n_docs + 1) * sizeof *nd);
        if (!nd)
            abort();
        L->docs = nd;
        L->docs[L->n_docs] = sd;
        rc = (int)L->n_docs++;
    }
    yaml_parser_delete(&parser);
    fclose(f);
    return rc;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* conf.d/NAME.yaml beside the main file, in lexical order; `extra` stands for one of them (or is
 * added in its place). */
static void read_dropins(struct loader *L, const char *main_path,
                         const struct ib_config_extra *extra)
{
    char *dir = ib_arena_strdup(&L->cfg->arena, main_path);
    char *slash = strrchr(dir, '/');
    const char *cdir =
        ib_arena_printf(&L->cfg->arena, "%s/conf.d", slash ? (*slash = '\0', dir) : ".");
    L->cfg->dropin_dir = cdir;
    char **names = NULL;
    size_t n = 0;
    DIR *d = opendir(cdir);
    if (!d && errno != ENOENT)
        ib_diag_add(L->diag, NULL, NULL, "%s: cannot read the drop-in directory: %s", cdir,
                    strerror(errno));
    for (struct dirent *e; d && (e = readdir(d));) {
        size_t len = strlen(e->d_name);
        if (e->d_name[0] == '.' || len < 6 || strcmp(e->d_name + len - 5, ".yaml") != 0)
            continue;
        char **nn = realloc(names, (n + 1) * sizeof *nn);
        if (!nn)
            abort();
        names = nn;
        names[n++] = ib_arena_strdup(&L->cfg->arena, e->d_name);
    }
    if (d)
        closedir(d);
    bool extra_seen = false;
    if (extra && extra->name) {
        for (size_t i = 0; i < n; i++)
            extra_seen |= strcmp(names[i], extra->name) == 0;
        if (!extra_seen) {
            char **nn = realloc(names, (n + 1) * sizeof *nn);
            if (!nn)
                abort();
            names = nn;
            names[n++] = (char *)extra->name;
        }
    }
    if (n)
        qsort(names, n, sizeof *names, cmp_str);
    for (size_t i = 0; i < n; i++) {
        const char *path = ib_arena_printf(&L->cfg->arena, "%s/%s", cdir, names[i]);
        bool is_extra = extra && extra->name && strcmp(names[i], extra->name) == 0;
        read_yaml(L, path, is_extra ? extra->text : NULL, is_extra ? extra->shown_as : NULL);
    }
    free(names);
}

struct ib_config *ib_config_load_ex(const char *path, struct ib_plugin_registry *plugins,
                                    struct ib_diag *diag, const struct ib_config_extra *extra)
{
    size_t errs_before = diag->n;
    struct ib_config *cfg = calloc(1, sizeof *cfg);
    if (!cfg) {
        ib_diag_add(diag, NULL, NULL, "out of memory");
        return NULL;
    }
    cfg->refs = 1;
    cfg->file = ib_arena_strdup(&cfg->arena, path);
    struct loader L = {.cfg = cfg, .diag = diag, .plugins = plugins, .strings = {&cfg->arena}};
    if (read_yaml(&L, path, NULL, NULL) == 0) {
        read_dropins(&L, path, extra);
        L.n_tree = L.n_docs;
        use_doc(&L, 0);
        struct ynode *root = ytree_root(L.t);
        if (!root || (root->type == YNODE_SCALAR && !*scalar(root) && L.n_tree == 1)) {
            ib_diag_add(diag, NULL, NULL, "%s: the configuration is empty", path);
        } else {
            load_root(&L);
            load_connections(&L);
            if (!cfg->has_north && cfg->remote.enabled)
                ib_diag_add(diag, NULL, NULL,
                            "%s: remote_config is enabled but there is no north.mqtt section to "
                            "receive documents from",
                            path);
            if (!cfg->has_north && cfg->n_connections > 0 && !(extra && extra->north_optional))
                ib_diag_add(diag, NULL, NULL,
                            "%s: connections are configured but there is no north.mqtt section: "
                            "the values would go nowhere",
                            path);
        }
    }
    cfg->n_files = L.n_tree;
    for (size_t i = 0; i < L.n_docs; i++)
        ytree_free(&L.docs[i]->tree);
    ystr_free(&L.strings);
    free(L.docs);
    if (diag->n > errs_before) {
        ib_config_free(cfg);
        return NULL;
    }
    return cfg;
}

struct ib_config *ib_config_load(const char *path, struct ib_plugin_registry *plugins,
                                 struct ib_diag *diag)
{
    return ib_config_load_ex(path, plugins, diag, NULL);
}

struct ib_config *ib_config_ref(struct ib_config *cfg)
{
    cfg->refs++;
    return cfg;
}

void ib_config_free(struct ib_config *cfg)
{
    if (!cfg || --cfg->refs > 0)
        return;
    ib_arena_free(&cfg->arena);
    free(cfg);
}

const struct ib_where *ib_config_where(const void *where)
{
    return where;
}
