/* Configuration loading: libyaml's document tree walked against schemas (the core's own and
 * each plugin's), strictly: unknown keys, wrong types, ranges, duplicates and missing files are
 * errors with file:line:column and the key path, and every error is reported, not only the first.
 */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <yaml.h>

#include "plugin_loader.h"
#include "topic.h"
#include "units.h"

struct loader {
    struct ib_config *cfg;
    struct ib_diag *diag;
    yaml_document_t *doc;
    const char *file;
    const char *dir; /* of the file, for relative paths */
    struct ib_plugin_registry *plugins;
};

/* A schema paired with the struct it fills; a mapping may be validated by several. */
struct spec {
    const struct ib_schema *schema;
    void *out;
};

/* ---- YAML helpers ---------------------------------------------------------------------------- */

static yaml_node_t *node_at(struct loader *L, int idx)
{
    return yaml_document_get_node(L->doc, idx);
}

static const char *node_kind(const yaml_node_t *n)
{
    switch (n->type) {
    case YAML_SCALAR_NODE:
        return "a scalar";
    case YAML_SEQUENCE_NODE:
        return "a list";
    case YAML_MAPPING_NODE:
        return "a mapping";
    default:
        return "nothing";
    }
}

static const char *scalar(const yaml_node_t *n)
{
    return n && n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}

static struct ib_where *make_where(struct loader *L, yaml_node_t *n, const char *path)
{
    struct ib_where *w = ib_arena_alloc(&L->cfg->arena, sizeof *w);
    w->file = L->file;
    w->path = ib_arena_strdup(&L->cfg->arena, path);
    w->line = (int)n->start_mark.line + 1;
    w->col = (int)n->start_mark.column + 1;
    if (n->type == YAML_MAPPING_NODE) {
        size_t cnt = (size_t)(n->data.mapping.pairs.top - n->data.mapping.pairs.start);
        struct ib_keypos *k = ib_arena_alloc(&L->cfg->arena, (cnt ? cnt : 1) * sizeof *k);
        unsigned m = 0;
        for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top;
             p++) {
            yaml_node_t *kn = node_at(L, p->key);
            if (!scalar(kn))
                continue;
            k[m].key = ib_arena_strdup(&L->cfg->arena, scalar(kn));
            k[m].line = (int)kn->start_mark.line + 1;
            k[m].col = (int)kn->start_mark.column + 1;
            m++;
        }
        w->keys = k;
        w->n_keys = m;
    }
    return w;
}

/* An error at node `n` whose key path is `path` (and optional `key` below it). */
__attribute__((format(printf, 5, 6))) static void
err_node(struct loader *L, yaml_node_t *n, const char *path, const char *key, const char *fmt, ...)
{
    struct ib_where w = {.file = L->file,
                         .path = path,
                         .line = n ? (int)n->start_mark.line + 1 : 0,
                         .col = n ? (int)n->start_mark.column + 1 : 0};
    va_list ap;
    va_start(ap, fmt);
    ib_diag_addv(L->diag, &w, key, fmt, ap);
    va_end(ap);
}

/* The value node of `key` in mapping `map`, or NULL. */
static yaml_node_t *map_get(struct loader *L, yaml_node_t *map, const char *key)
{
    if (!map || map->type != YAML_MAPPING_NODE)
        return NULL;
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++)
        if (scalar(node_at(L, p->key)) && strcmp(scalar(node_at(L, p->key)), key) == 0)
            return node_at(L, p->value);
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
        const char *p = ib_arena_strdup(&L->cfg->arena, s);
        memcpy(field, &p, sizeof p);
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
static bool apply_mapping(struct loader *L, yaml_node_t *n, const char *path,
                          const struct spec *specs, size_t n_specs, const char *const *extra)
{
    if (!n || n->type != YAML_MAPPING_NODE) {
        err_node(L, n, path, NULL, "expected a mapping, found %s", n ? node_kind(n) : "nothing");
        return false;
    }
    char msg[640];
    for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
        yaml_node_t *kn = node_at(L, p->key), *vn = node_at(L, p->value);
        const char *key = scalar(kn);
        if (!key) {
            err_node(L, kn, path, NULL, "a key must be a plain word, found %s", node_kind(kn));
            continue;
        }
        bool dup = false;
        for (yaml_node_pair_t *q = n->data.mapping.pairs.start; q < p; q++)
            if (scalar(node_at(L, q->key)) && strcmp(scalar(node_at(L, q->key)), key) == 0)
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
        if (vn->type != YAML_SCALAR_NODE) {
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
static yaml_node_t *get_list(struct loader *L, yaml_node_t *map, const char *path, const char *key,
                             bool required)
{
    yaml_node_t *n = map_get(L, map, key);
    if (!n) {
        if (required)
            err_node(L, map, path, NULL, "missing required key '%s' (a list)", key);
        return NULL;
    }
    if (n->type != YAML_SEQUENCE_NODE) {
        err_node(L, n, path, key, "expected a list, found %s", node_kind(n));
        return NULL;
    }
    return n;
}

static size_t list_len(yaml_node_t *n)
{
    return n ? (size_t)(n->data.sequence.items.top - n->data.sequence.items.start) : 0;
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

static void check_ident(struct loader *L, yaml_node_t *map, const char *path, const char *name)
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
    E_STR("topic", struct ib_mqtt_cfg, topic, "ironbridge/{gateway}/{device}/{group}",
          "topic template of data messages"),
    E_STR("status_topic", struct ib_mqtt_cfg, status_topic, "ironbridge/{gateway}/status",
          "retained online/offline topic"),
    E_INT("keepalive_s", struct ib_mqtt_cfg, keepalive_s, "30", 5, 3600, "MQTT keep-alive"),
    E_INT("connect_timeout_ms", struct ib_mqtt_cfg, connect_timeout_ms, "10000", 100, 300000,
          "connect timeout"),
    E_INT("reconnect_min_ms", struct ib_mqtt_cfg, reconnect_min_ms, "1000", 100, 3600000,
          "first reconnect delay"),
    E_INT("reconnect_max_ms", struct ib_mqtt_cfg, reconnect_max_ms, "60000", 100, 3600000,
          "longest reconnect delay"),
    E_INT("max_inflight", struct ib_mqtt_cfg, max_inflight, "256", 1, 65535,
          "QoS 1 messages awaiting PUBACK"),
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

/* Sizes and durations are read as text and converted with their units below. */
struct store_section {
    const char *path, *max_bytes, *max_age, *fsync_bytes, *memory_max_bytes;
    int32_t fsync;
    int64_t fsync_interval_ms, replay_rate;
};
static const char *const fsync_choices[] = {"batch", "always", NULL};
static const struct ib_schema_entry store_entries[] = {
    E_STR("path", struct store_section, path, NULL,
          "queue directory (default $STATE_DIRECTORY/queue, else /var/lib/ironbridge/queue)"),
    E_STR("max_bytes", struct store_section, max_bytes, "1GiB",
          "disk space of the queue, e.g. 1GiB; the oldest records go first when full"),
    E_STR("max_age", struct store_section, max_age, "7d",
          "records older than this are dropped, e.g. 7d, 12h"),
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
    E_INT("replay_rate", struct store_section, replay_rate, "2000", 0, 10000000,
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
    E_INT("interval_ms", struct group_section, interval_ms, "1000", 10, 86400000,
          "poll interval of the group"),
};
static const struct ib_schema group_schema = {sizeof(struct group_section), 2, group_entries, {0}};

struct tag_section {
    const char *name;
    double scale, offset;
    const char *unit, *description;
    bool writable;
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
};
static const struct ib_schema tag_schema = {sizeof(struct tag_section), 6, tag_entries, {0}};

/* ---- Files ----------------------------------------------------------------------------------- */

static const char *resolve(struct loader *L, const char *p)
{
    if (!p || p[0] == '/')
        return p;
    return ib_arena_printf(&L->cfg->arena, "%s/%s", L->dir, p);
}

static void check_file(struct loader *L, yaml_node_t *map, const char *path, const char *key,
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

static void load_mqtt(struct loader *L, yaml_node_t *n, const char *path)
{
    struct ib_mqtt_cfg *m = &L->cfg->mqtt;
    static const char *const extra[] = {"tls", NULL};
    struct spec sp = {&mqtt_schema, m};
    if (!apply_mapping(L, n, path, &sp, 1, extra))
        return;
    struct ib_where *w = make_where(L, n, path);
    yaml_node_t *tn = map_get(L, n, "tls");
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
    struct ib_where *tw = tn && tn->type == YAML_MAPPING_NODE ? make_where(L, tn, tpath) : w;
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
    if ((e = ib_topic_check(
             m->topic, IB_TOPIC_GATEWAY | IB_TOPIC_CONNECTION | IB_TOPIC_DEVICE | IB_TOPIC_GROUP,
             what, sizeof what)))
        ib_diag_add(L->diag, w, "topic", "'%s': %s%s%s", m->topic, e, *what ? ": " : "", what);
    if ((e = ib_topic_check(m->status_topic, IB_TOPIC_GATEWAY, what, sizeof what)))
        ib_diag_add(L->diag, w, "status_topic", "'%s': %s%s%s", m->status_topic, e,
                    *what ? ": " : "", what);
    L->cfg->has_north = true;
}

/* A size or duration key of the store: text with a unit, converted and range-checked. */
static int64_t store_amount(struct loader *L, yaml_node_t *n, const char *text, const char *key,
                            bool duration, int64_t lo, int64_t hi)
{
    int64_t v = 0;
    yaml_node_t *vn = map_get(L, n, key);
    yaml_node_t *at = vn ? vn : n;
    if ((duration ? ib_parse_duration_ms(text, &v) : ib_parse_size(text, &v)) < 0) {
        err_node(L, at, "store", key,
                 duration ? "expected a duration such as 7d, 12h, 30min, 45s, 500ms or a number "
                            "of seconds, found '%s'"
                          : "expected a size such as 1GiB, 512MiB, 64KiB, 10MB or a number of "
                            "bytes, found '%s'",
                 text);
        return lo;
    }
    if (v < lo || v > hi) {
        char a[32], b[32];
        if (duration) {
            snprintf(a, sizeof a, "%llds", (long long)(lo / 1000));
            snprintf(b, sizeof b, "%lldd", (long long)(hi / 86400000));
        } else {
            ib_format_size(a, sizeof a, (uint64_t)lo);
            ib_format_size(b, sizeof b, (uint64_t)hi);
        }
        err_node(L, at, "store", key, "'%s' is out of range [%s, %s]", text, a, b);
        return lo;
    }
    return v;
}

/* `n` is the store section or NULL (defaults only). */
static void load_store(struct loader *L, yaml_node_t *n)
{
    struct store_section ss = {0};
    struct spec sp = {&store_schema, &ss};
    static yaml_node_t empty = {.type = YAML_MAPPING_NODE};
    if (!apply_mapping(L, n ? n : &empty, "store", &sp, 1, NULL))
        return;
    struct ib_store_cfg *st = &L->cfg->store;
    st->max_bytes = store_amount(L, n, ss.max_bytes, "max_bytes", false, 1LL << 20, 1LL << 50);
    st->max_age_ms = store_amount(L, n, ss.max_age, "max_age", true, 1000, 3650LL * 86400000);
    st->fsync_bytes = store_amount(L, n, ss.fsync_bytes, "fsync_bytes", false, 4096, 1LL << 30);
    st->memory_max_bytes =
        store_amount(L, n, ss.memory_max_bytes, "memory_max_bytes", false, 65536, 1LL << 40);
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

static void load_tags(struct loader *L, yaml_node_t *gn, const char *gpath,
                      struct ib_group_config *g, struct ib_cfg_group *cg,
                      const struct ib_plugin *plugin)
{
    yaml_node_t *list = get_list(L, gn, gpath, "tags", true);
    size_t n = list_len(list);
    if (list && n == 0)
        err_node(L, list, gpath, "tags", "a group needs at least one tag");
    struct ib_tag_config *tags = ib_arena_alloc(&L->cfg->arena, (n ? n : 1) * sizeof *tags);
    cg->tags = ib_arena_alloc(&L->cfg->arena, (n ? n : 1) * sizeof *cg->tags);
    g->tags = tags;
    g->n_tags = (uint32_t)n;
    for (size_t i = 0; i < n; i++) {
        yaml_node_t *tn = node_at(L, list->data.sequence.items.start[i]);
        char *tpath = ib_arena_printf(&L->cfg->arena, "%s.tags[%zu]", gpath, i);
        struct tag_section ts = {0};
        void *params = ib_arena_alloc(&L->cfg->arena, plugin->tag_schema->struct_size);
        struct spec sp[2] = {{&tag_schema, &ts}, {plugin->tag_schema, params}};
        if (!apply_mapping(L, tn, tpath, sp, 2, NULL))
            continue;
        tags[i].name = ts.name;
        tags[i].params = params;
        tags[i].where = make_where(L, tn, tpath);
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
    }
    L->cfg->n_tags += n;
}

static void load_devices(struct loader *L, yaml_node_t *cn, const char *cpath,
                         struct ib_cfg_connection *c)
{
    yaml_node_t *list = get_list(L, cn, cpath, "devices", true);
    size_t n = list_len(list);
    if (list && n == 0)
        err_node(L, list, cpath, "devices", "a connection needs at least one device");
    struct ib_device_config *devs = ib_arena_alloc(&L->cfg->arena, (n ? n : 1) * sizeof *devs);
    c->devices = ib_arena_alloc(&L->cfg->arena, (n ? n : 1) * sizeof *c->devices);
    c->pub.devices = devs;
    c->pub.n_devices = (uint32_t)n;
    const struct ib_plugin *plugin = c->plugin;
    for (size_t d = 0; d < n; d++) {
        yaml_node_t *dn = node_at(L, list->data.sequence.items.start[d]);
        char *dpath = ib_arena_printf(&L->cfg->arena, "%s.devices[%zu]", cpath, d);
        struct named nm = {0};
        void *params = ib_arena_alloc(&L->cfg->arena, plugin->device_schema->struct_size);
        struct spec sp[2] = {{&name_schema, &nm}, {plugin->device_schema, params}};
        static const char *const extra[] = {"groups", NULL};
        if (!apply_mapping(L, dn, dpath, sp, 2, extra))
            continue;
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
        yaml_node_t *glist = get_list(L, dn, dpath, "groups", true);
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
            yaml_node_t *gn = node_at(L, glist->data.sequence.items.start[g]);
            char *gpath = ib_arena_printf(&L->cfg->arena, "%s.groups[%zu]", dpath, g);
            struct group_section gs = {0};
            struct spec gsp = {&group_schema, &gs};
            static const char *const gextra[] = {"tags", NULL};
            if (!apply_mapping(L, gn, gpath, &gsp, 1, gextra))
                continue;
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
            load_tags(L, gn, gpath, &groups[g], &c->devices[d].groups[g], plugin);
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

static void load_connections(struct loader *L, yaml_node_t *root)
{
    yaml_node_t *list = get_list(L, root, "", "connections", false);
    size_t n = list_len(list);
    L->cfg->connections =
        ib_arena_alloc(&L->cfg->arena, (n ? n : 1) * sizeof(struct ib_cfg_connection));
    for (size_t i = 0; i < n; i++) {
        yaml_node_t *cn = node_at(L, list->data.sequence.items.start[i]);
        char *cpath = ib_arena_printf(&L->cfg->arena, "connections[%zu]", i);
        struct ib_cfg_connection *c = &L->cfg->connections[i];
        L->cfg->n_connections = i + 1;
        if (cn->type != YAML_MAPPING_NODE) {
            err_node(L, cn, cpath, NULL, "expected a mapping, found %s", node_kind(cn));
            continue;
        }
        c->where = make_where(L, cn, cpath);
        c->pub.where = c->where;
        const char *pname = scalar(map_get(L, cn, "plugin"));
        if (!map_get(L, cn, "plugin"))
            err_node(L, cn, cpath, NULL,
                     "missing required key 'plugin' (which driver, e.g. modbus)");
        else if (!pname)
            err_node(L, map_get(L, cn, "plugin"), cpath, "plugin", "expected a plugin name");
        else {
            char err[1024];
            c->plugin_name = ib_arena_strdup(&L->cfg->arena, pname);
            c->plugin = ib_plugins_get(L->plugins, pname, err, sizeof err);
            if (!c->plugin)
                err_node(L, map_get(L, cn, "plugin"), cpath, "plugin", "%s", err);
        }
        struct named nm = {0};
        void *params =
            c->plugin ? ib_arena_alloc(&L->cfg->arena, c->plugin->connection_schema->struct_size)
                      : NULL;
        struct spec sp[2] = {{&name_schema, &nm},
                             {c->plugin ? c->plugin->connection_schema : NULL, params}};
        static const char *const extra[] = {"plugin", "devices", NULL};
        if (c->plugin) {
            apply_mapping(L, cn, cpath, sp, 2, extra);
        } else {
            nm.name = scalar(map_get(L, cn, "name"));
            if (nm.name)
                nm.name = ib_arena_strdup(&L->cfg->arena, nm.name);
        }
        c->pub.name = nm.name;
        c->pub.params = params;
        check_ident(L, cn, cpath, nm.name);
        if (!c->plugin)
            continue; /* its blocks cannot be judged without the plugin's schemas */
        for (size_t o = 0; o < i && nm.name; o++)
            if (L->cfg->connections[o].pub.name &&
                strcmp(L->cfg->connections[o].pub.name, nm.name) == 0)
                err_node(L, map_get(L, cn, "name"), cpath, "name",
                         "duplicate connection name '%s' (first defined at line %d)", nm.name,
                         L->cfg->connections[o].where ? L->cfg->connections[o].where->line : 0);
        load_devices(L, cn, cpath, c);
    }
}

static void load_root(struct loader *L, yaml_node_t *root)
{
    static const char *const extra[] = {"gateway", "log", "north", "store", "connections", NULL};
    if (!apply_mapping(L, root, "", NULL, 0, extra))
        return;
    struct gw_section gw = {0};
    yaml_node_t *n;
    if ((n = map_get(L, root, "gateway"))) {
        struct spec sp = {&gw_schema, &gw};
        apply_mapping(L, n, "gateway", &sp, 1, NULL);
        check_ident(L, n, "gateway", NULL);
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

    struct log_section lg = {0};
    struct spec lsp = {&log_schema, &lg};
    if ((n = map_get(L, root, "log")))
        apply_mapping(L, n, "log", &lsp, 1, NULL);
    else
        lg.level = 3; /* info */
    L->cfg->log_level = IB_LOG_ERR + lg.level;

    if ((n = map_get(L, root, "north"))) {
        static const char *const nextra[] = {"mqtt", NULL};
        if (apply_mapping(L, n, "north", NULL, 0, nextra)) {
            yaml_node_t *m = map_get(L, n, "mqtt");
            if (m)
                load_mqtt(L, m, "north.mqtt");
            else
                err_node(L, n, "north", NULL, "missing required key 'mqtt'");
        }
    }
    if (!L->cfg->has_north && map_get(L, root, "connections") &&
        list_len(map_get(L, root, "connections")) > 0)
        err_node(L, root, "", NULL,
                 "connections are configured but there is no north.mqtt section: the values "
                 "would go nowhere");
    load_store(L, map_get(L, root, "store"));
    if (L->cfg->has_north && !L->cfg->mqtt.client_id)
        L->cfg->mqtt.client_id = ib_arena_printf(&L->cfg->arena, "ironbridge-%s", gw.id);
}

/* The plugin needs the plugin registry only when connections name plugins, so a config without
 * connections loads with no plugin directory at all. */
struct ib_config *ib_config_load(const char *path, struct ib_plugin_registry *plugins,
                                 struct ib_diag *diag)
{
    size_t errs_before = diag->n;
    FILE *f = fopen(path, "rb");
    if (!f) {
        ib_diag_add(diag, NULL, NULL, "%s: cannot open the configuration: %s", path,
                    strerror(errno));
        return NULL;
    }
    struct ib_config *cfg = calloc(1, sizeof *cfg);
    if (!cfg) {
        fclose(f);
        ib_diag_add(diag, NULL, NULL, "out of memory");
        return NULL;
    }
    cfg->file = ib_arena_strdup(&cfg->arena, path);
    yaml_parser_t parser;
    yaml_document_t doc;
    yaml_parser_initialize(&parser);
    yaml_parser_set_input_file(&parser, f);
    int ok = yaml_parser_load(&parser, &doc);
    if (!ok) {
        ib_diag_add(diag, NULL, NULL, "%s:%zu:%zu: YAML syntax error: %s%s%s", path,
                    parser.problem_mark.line + 1, parser.problem_mark.column + 1,
                    parser.problem ? parser.problem : "unknown", parser.context ? " " : "",
                    parser.context ? parser.context : "");
        yaml_parser_delete(&parser);
        fclose(f);
        ib_config_free(cfg);
        return NULL;
    }
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    if (root) {
        /* A second document in the same file would be silently ignored: refuse it. */
        yaml_document_t doc2;
        if (yaml_parser_load(&parser, &doc2)) {
            if (yaml_document_get_root_node(&doc2))
                ib_diag_add(diag, NULL, NULL,
                            "%s: holds more than one YAML document ('---'); keep one", path);
            yaml_document_delete(&doc2);
        }
    }
    yaml_parser_delete(&parser);
    fclose(f);

    char *dirbuf = strdup(path);
    char *slash = dirbuf ? strrchr(dirbuf, '/') : NULL;
    const char *dir = ".";
    if (slash) {
        *slash = '\0';
        dir = *dirbuf ? dirbuf : "/";
    }
    struct loader L = {.cfg = cfg,
                       .diag = diag,
                       .doc = &doc,
                       .file = cfg->file,
                       .dir = ib_arena_strdup(&cfg->arena, dir),
                       .plugins = plugins};
    free(dirbuf);
    if (!root || (root->type == YAML_SCALAR_NODE && !*scalar(root))) {
        ib_diag_add(diag, NULL, NULL, "%s: the configuration is empty", path);
    } else {
        load_root(&L, root);
        if (root->type == YAML_MAPPING_NODE)
            load_connections(&L, root);
    }
    yaml_document_delete(&doc);
    if (diag->n > errs_before) {
        ib_config_free(cfg);
        return NULL;
    }
    return cfg;
}

void ib_config_free(struct ib_config *cfg)
{
    if (!cfg)
        return;
    ib_arena_free(&cfg->arena);
    free(cfg);
}

const struct ib_where *ib_config_where(const void *where)
{
    return where;
}
