/* The schema engine: validates a YAML mapping against declarative schemas (the core's sections
 * and the plugins' blocks) strictly, typed values, ranges, enums, durations and sizes, and
 * stores them into the structs the schemas describe; unknown and duplicate keys are errors. */
#include "schema.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config_loader.h"
#include "units.h"

/* ---- Scalars --------------------------------------------------------------------------------- */

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

int ib_schema_parse_double(const char *s, double *out)
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

int ib_schema_parse_bool(const char *s, bool *out)
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

const char *ib_schema_type_word(uint32_t t)
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
    case IB_S_SIZE:
        return "a size such as 1GiB, 512MiB, 64KiB, 10MB or a number of bytes";
    default:
        return "a value";
    }
}

const struct ib_schema_entry *ib_schema_find(const struct ib_schema *sc, const char *key)
{
    for (size_t i = 0; sc && i < sc->n_entries; i++)
        if (strcmp(sc->entries[i].key, key) == 0)
            return &sc->entries[i];
    return NULL;
}

/* ---- Storing one value ----------------------------------------------------------------------- */

static void choices_text(const struct ib_schema_entry *e, char *buf, size_t len)
{
    size_t off = 0;
    buf[0] = '\0';
    for (const char *const *c = e->choices; c && *c && off < len; c++)
        off += (size_t)snprintf(buf + off, len - off, "%s%s", c == e->choices ? "" : ", ", *c);
}

/* The unit an integer key's name gives it ("interval_ms", "keepalive_s"): its length in ms, or
 * 0 when the name says none. */
static int64_t name_unit_ms(const char *key)
{
    size_t n = strlen(key);
    if (n > 3 && strcmp(key + n - 3, "_ms") == 0)
        return 1;
    if (n > 2 && strcmp(key + n - 2, "_s") == 0)
        return 1000;
    return 0;
}

/* A duration with a unit ("1s", "500ms") for a key whose name gives its unit, in that unit;
 * -1 if `s` is not one, or not a whole number of that unit. */
static int duration_in_unit(const char *s, int64_t unit_ms, int64_t *v)
{
    int64_t ms;
    if (ib_units_parse_duration_ms(s, &ms) < 0 || ms % unit_ms != 0)
        return -1;
    *v = ms / unit_ms;
    return 0;
}

static const char *store_int(const struct ib_schema_entry *e, const char *s, char *field, char *msg,
                             size_t msglen)
{
    int64_t v;
    int64_t unit = name_unit_ms(e->key);
    bool with_unit = parse_int(s, &v) < 0;
    if (with_unit && (!unit || duration_in_unit(s, unit, &v) < 0)) {
        if (unit)
            snprintf(msg, msglen,
                     "expected a number of %s or a duration with a unit (500ms, 1s, 5min), "
                     "found '%s'",
                     unit == 1 ? "milliseconds" : "seconds", s);
        else
            snprintf(msg, msglen, "expected an integer, found '%s'", s);
        return msg;
    }
    if ((e->flags & IB_SF_RANGE) && (v < e->min || v > e->max)) {
        if (with_unit)
            snprintf(msg, msglen, "%s is out of range [%lld, %lld] (%s)", s, (long long)e->min,
                     (long long)e->max, unit == 1 ? "milliseconds" : "seconds");
        else
            snprintf(msg, msglen, "%lld is out of range [%lld, %lld]", (long long)v,
                     (long long)e->min, (long long)e->max);
        return msg;
    }
    memcpy(field, &v, sizeof v);
    return NULL;
}

static const char *store_double(const struct ib_schema_entry *e, const char *s, char *field,
                                char *msg, size_t msglen)
{
    double v;
    if (ib_schema_parse_double(s, &v) < 0) {
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

static const char *store_duration(const struct ib_schema_entry *e, const char *s, char *field,
                                  char *msg, size_t msglen)
{
    int64_t v;
    if (ib_units_parse_duration_ms(s, &v) < 0) {
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

static const char *store_size(const struct ib_schema_entry *e, const char *s, char *field,
                              char *msg, size_t msglen)
{
    int64_t v;
    if (!*s) {
        snprintf(msg, msglen, "must not be empty");
        return msg;
    }
    if (ib_units_parse_size(s, &v) < 0) {
        snprintf(msg, msglen, "expected %s, found '%s'", ib_schema_type_word(IB_S_SIZE), s);
        return msg;
    }
    if ((e->flags & IB_SF_RANGE) && (v < e->min || v > e->max)) {
        char a[32], b[32];
        ib_units_format_size(a, sizeof a, (uint64_t)e->min);
        ib_units_format_size(b, sizeof b, (uint64_t)e->max);
        snprintf(msg, msglen, "'%s' is out of range [%s, %s]", s, a, b);
        return msg;
    }
    memcpy(field, &v, sizeof v);
    return NULL;
}

static const char *store_enum(const struct ib_schema_entry *e, const char *s, char *field,
                              char *msg, size_t msglen)
{
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

/* Store scalar text `s` for entry `e` into `out`; returns an error message (in `msg`) or NULL.
 * Nothing is stored when the value is refused. */
static const char *store_value(struct ib_loader *L, const struct ib_schema_entry *e, const char *s,
                               void *out, char *msg, size_t msglen)
{
    char *field = (char *)out + e->offset;
    switch (e->type) {
    case IB_S_BOOL: {
        bool b;
        if (ib_schema_parse_bool(s, &b) < 0) {
            snprintf(msg, msglen, "expected true or false, found '%s'", s);
            return msg;
        }
        memcpy(field, &b, sizeof b);
        return NULL;
    }
    case IB_S_INT:
        return store_int(e, s, field, msg, msglen);
    case IB_S_DOUBLE:
        return store_double(e, s, field, msg, msglen);
    case IB_S_STRING: {
        if (!*s) {
            snprintf(msg, msglen, "must not be empty");
            return msg;
        }
        const char *p = ib_ystr_intern(&L->strings, s, strlen(s));
        memcpy(field, &p, sizeof p);
        return NULL;
    }
    case IB_S_DURATION:
        return store_duration(e, s, field, msg, msglen);
    case IB_S_SIZE:
        return store_size(e, s, field, msg, msglen);
    case IB_S_ENUM:
        return store_enum(e, s, field, msg, msglen);
    default:
        snprintf(msg, msglen, "schema entry has an unknown type %u (a plugin defect)", e->type);
        return msg;
    }
}

/* ---- A mapping ------------------------------------------------------------------------------- */

static bool is_extra(const char *key, const char *const *extra)
{
    for (; extra && *extra; extra++)
        if (strcmp(*extra, key) == 0)
            return true;
    return false;
}

static const struct ib_schema_entry *find_entry(const struct ib_spec *specs, size_t n_specs,
                                                const char *key, void **out)
{
    for (size_t s = 0; s < n_specs; s++) {
        const struct ib_schema_entry *e = ib_schema_find(specs[s].schema, key);
        if (e) {
            *out = specs[s].out;
            return e;
        }
    }
    return NULL;
}

/* "unknown key" with what would have been accepted: the commonest mistake is a typo. */
static void unknown_key(struct ib_loader *L, struct ynode *kn, const char *path, const char *key,
                        const struct ib_spec *specs, size_t n_specs, const char *const *extra)
{
    char msg[640];
    size_t off = 0;
    msg[0] = '\0';
    for (const char *const *x = extra; x && *x && off < sizeof msg; x++)
        off += (size_t)snprintf(msg + off, sizeof msg - off, "%s%s", off ? ", " : "", *x);
    for (size_t s = 0; s < n_specs; s++)
        for (size_t i = 0; specs[s].schema && i < specs[s].schema->n_entries && off < sizeof msg;
             i++)
            off += (size_t)snprintf(msg + off, sizeof msg - off, "%s%s", off ? ", " : "",
                                    specs[s].schema->entries[i].key);
    ib_loader_err(L, kn, path, key, "unknown key; known keys here: %s", msg);
}

/* One pair of the mapping. Sizes are judged after the other keys (see apply_sizes). */
static void apply_pair(struct ib_loader *L, struct ynode *kn, struct ynode *vn, const char *path,
                       const struct ib_spec *specs, size_t n_specs, const char *const *extra,
                       struct ib_nameset *seen)
{
    const char *key = scalar(kn);
    if (!key) {
        ib_loader_err(L, kn, path, NULL, "a key must be a plain word, found %s",
                      ib_loader_kind(kn));
        return;
    }
    size_t first;
    if (!ib_nameset_add(seen, key, 0, &first)) {
        ib_loader_err(L, kn, path, key, "duplicate key");
        return;
    }
    if (is_extra(key, extra))
        return;
    void *out = NULL;
    const struct ib_schema_entry *e = find_entry(specs, n_specs, key, &out);
    if (!e) {
        unknown_key(L, kn, path, key, specs, n_specs, extra);
        return;
    }
    if (vn->type != YNODE_SCALAR) {
        ib_loader_err(L, vn, path, key, "expected %s, found %s", ib_schema_type_word(e->type),
                      ib_loader_kind(vn));
        return;
    }
    if (e->type == IB_S_SIZE)
        return;
    char msg[640];
    const char *m = store_value(L, e, scalar(vn), out, msg, sizeof msg);
    if (m)
        ib_loader_err(L, vn, path, key, "%s", m);
}

/* Absent keys: required ones are errors, others take their default. */
static void apply_absent(struct ib_loader *L, struct ynode *n, const char *path,
                         const struct ib_spec *sp)
{
    char msg[640];
    const struct ib_schema *sc = sp->schema;
    for (size_t i = 0; sc && i < sc->n_entries; i++) {
        const struct ib_schema_entry *e = &sc->entries[i];
        if (ib_loader_get(L, n, e->key))
            continue;
        if (e->flags & IB_SF_REQUIRED) {
            ib_loader_err(L, n, path, NULL, "missing required key '%s' (%s)", e->key,
                          e->description ? e->description : ib_schema_type_word(e->type));
            continue;
        }
        if (e->def) {
            const char *m = store_value(L, e, e->def, sp->out, msg, sizeof msg);
            if (m)
                ib_loader_err(L, n, path, e->key, "invalid default (a plugin defect): %s", m);
        } else if (e->type == IB_S_ENUM) {
            int32_t none = -1;
            memcpy((char *)sp->out + e->offset, &none, sizeof none);
        }
    }
}

/* The sizes given, in schema order, after every other message about the mapping (the order in
 * which --check has always listed them). A size key given twice is judged by its first value;
 * one that is not a scalar was reported already. */
static void apply_sizes(struct ib_loader *L, struct ynode *n, const char *path,
                        const struct ib_spec *sp)
{
    char msg[640];
    const struct ib_schema *sc = sp->schema;
    for (size_t i = 0; sc && i < sc->n_entries; i++) {
        const struct ib_schema_entry *e = &sc->entries[i];
        struct ynode *vn = e->type == IB_S_SIZE ? ib_loader_get(L, n, e->key) : NULL;
        if (!scalar(vn))
            continue;
        const char *m = store_value(L, e, scalar(vn), sp->out, msg, sizeof msg);
        if (m)
            ib_loader_err(L, vn, path, e->key, "%s", m);
    }
}

bool ib_schema_apply(struct ib_loader *L, struct ynode *n, const char *path,
                     const struct ib_spec *specs, size_t n_specs, const char *const *extra)
{
    if (!n || n->type != YNODE_MAPPING) {
        ib_loader_err(L, n, path, NULL, "expected a mapping, found %s",
                      n ? ib_loader_kind(n) : "nothing");
        return false;
    }
    struct ib_nameset seen = {0};
    for (size_t p = 0; p < n->n; p++)
        apply_pair(L, key_at(L, n, p), value_at(L, n, p), path, specs, n_specs, extra, &seen);
    ib_nameset_free(&seen);
    for (size_t s = 0; s < n_specs; s++)
        apply_absent(L, n, path, &specs[s]);
    for (size_t s = 0; s < n_specs; s++)
        apply_sizes(L, n, path, &specs[s]);
    return true;
}
