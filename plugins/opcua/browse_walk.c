/* OPC UA browse tool library: the walk of an address space (breadth first from a root, Browse
 * and BrowseNext, each node once), then Read of the DataType, AccessLevel and Description of
 * every Variable found, written as a tag list CSV in the shape `tags_csv:` reads. */
#include <stdlib.h>
#include <string.h>

#include <ironbridge/error.h>

#include "browse.h"
#include "nodeid.h"
#include "services.h"

enum {
    BATCH = 100,      /* nodes per Browse */
    READ_BATCH = 500, /* nodes per Read */
    ATTR_DESCRIPTION = 5,
    ATTR_DATA_TYPE = 14,
    ATTR_ACCESS_LEVEL = 17,
    REF_HAS_PROPERTY = 46,
    ACCESS_READ = 1,
    ACCESS_WRITE = 2,
};

struct item {
    char *id;   /* node id text (owned) */
    char *path; /* tag name: browse names joined with '.' (owned) */
    int depth;
    bool is_var;
    char type[64], access[32];
    char *descr; /* owned, NULL when none */
    bool readable;
};

struct walk {
    struct item *items; /* every node found, in order */
    size_t n, cap;
    char **seen; /* open addressing set of node id texts (point into items) */
    size_t seen_cap;
    size_t batch[BATCH]; /* items browsed by the current request */
    char *conts[BATCH];  /* their continuation points (owned copies) */
    int32_t cont_len[BATCH];
    const struct ua_walk_opts *o;
    size_t max_browse, max_read; /* nodes per request, lowered by the server's limits */
    bool nomem;
};

static uint64_t hash(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    while (*s)
        h = (h ^ (uint8_t)*s++) * 1099511628211ull;
    return h;
}

static void seen_put(char **set, size_t cap, char *id)
{
    size_t k = hash(id) & (cap - 1);
    while (set[k])
        k = (k + 1) & (cap - 1);
    set[k] = id;
}

/* Adds id to the set; false when it was there already (or no memory). */
static bool seen_add(struct walk *w, char *id)
{
    if (w->n * 2 >= w->seen_cap) {
        size_t cap = w->seen_cap ? w->seen_cap * 2 : 1024;
        char **s = calloc(cap, sizeof *s);
        if (!s)
            return !(w->nomem = true);
        for (size_t i = 0; i < w->seen_cap; i++)
            if (w->seen[i])
                seen_put(s, cap, w->seen[i]);
        free(w->seen);
        w->seen = s;
        w->seen_cap = cap;
    }
    for (size_t k = hash(id) & (w->seen_cap - 1); w->seen[k]; k = (k + 1) & (w->seen_cap - 1))
        if (strcmp(w->seen[k], id) == 0)
            return false;
    seen_put(w->seen, w->seen_cap, id);
    return true;
}

static struct item *add_item(struct walk *w, const char *id, const char *path, int depth,
                             bool is_var)
{
    if (w->n == w->cap) {
        size_t cap = w->cap ? w->cap * 2 : 256;
        struct item *p = realloc(w->items, cap * sizeof *p);
        if (!p)
            return (w->nomem = true, NULL);
        w->items = p;
        w->cap = cap;
    }
    struct item *it = &w->items[w->n];
    memset(it, 0, sizeof *it);
    it->id = strdup(id);
    it->path = strdup(path);
    it->depth = depth;
    it->is_var = is_var;
    if (!it->id || !it->path || !seen_add(w, it->id)) {
        free(it->id);
        free(it->path);
        return NULL;
    }
    w->n++;
    return it;
}

/* A browse name made safe as a tag name: no control characters, '/', '+', '#', ',' or '.'. */
static void append_name(char *dst, size_t size, const char *parent, struct ua_str name)
{
    size_t n = (size_t)snprintf(dst, size, "%s%s", parent, parent[0] ? "." : "");
    for (int32_t i = 0; i < name.len && n + 1 < size; i++) {
        char c = name.ptr[i];
        dst[n++] = ((unsigned char)c < 0x20 || c == 0x7f || strchr("/+#,.", c)) ? '_' : c;
    }
    dst[n < size ? n : size - 1] = '\0';
}

static void on_result(void *arg, size_t i, uint32_t status, struct ua_str cont)
{
    struct walk *w = arg;
    (void)status; /* a bad result has no references: the node is left out */
    free(w->conts[i]);
    w->conts[i] = NULL;
    w->cont_len[i] = 0;
    if (cont.len > 0 && (w->conts[i] = malloc((size_t)cont.len)) != NULL) {
        memcpy(w->conts[i], cont.ptr, (size_t)cont.len);
        w->cont_len[i] = cont.len;
    }
}

static void on_ref(void *arg, size_t i, const struct ua_ref *r)
{
    struct walk *w = arg;
    struct item *parent = &w->items[w->batch[i]];
    if (r->node.server != 0 || r->node.uri.len > 0 || r->browse_name.name.len <= 0)
        return; /* on another server, or named by URI: not resolvable here */
    if (r->node.id.ns == 0 && !w->o->all_ns0)
        return;
    if (parent->is_var && r->type.ns == 0 && r->type.kind == UA_NID_NUMERIC &&
        r->type.id.num == REF_HAS_PROPERTY)
        return; /* a variable's properties (EURange, EngineeringUnits...) are not tags */
    char id[1024], path[1024];
    ua_nodeid_format(&r->node.id, id, sizeof id);
    append_name(path, sizeof path, parent->path, r->browse_name.name);
    add_item(w, id, path, parent->depth + 1, r->node_class == UA_NODECLASS_VARIABLE);
}

/* Browses items[first .. first+k-1] with BrowseNext until no continuation point is left. */
static int browse_batch(struct ua_channel *ch, const struct ua_session *s, struct walk *w, size_t k)
{
    struct ua_nodeid nodes[BATCH] = {0};
    uint8_t bytes[BATCH][256];
    for (size_t i = 0; i < k; i++) {
        char err[256];
        if (ua_nodeid_parse(w->items[w->batch[i]].id, &nodes[i], bytes[i], sizeof bytes[i], err,
                            sizeof err) != 0)
            nodes[i] = ua_nid_num(0, 0); /* too long to browse again: BadNodeIdUnknown */
    }
    struct ua_browse_cb cb = {on_result, on_ref, w};
    int rc = ua_browse(ch, s, nodes, k, 1000, &cb);
    for (int round = 0; rc == IB_OK && round < 100000; round++) {
        struct ua_str conts[BATCH];
        size_t m = 0, saved[BATCH];
        for (size_t i = 0; i < k; i++)
            if (w->conts[i]) {
                saved[m] = w->batch[i];
                conts[m++] = (struct ua_str){w->conts[i], w->cont_len[i]};
            }
        if (!m)
            break;
        char *owned[BATCH];
        for (size_t i = 0; i < m; i++)
            owned[i] = (char *)conts[i].ptr;
        memset(w->conts, 0, sizeof w->conts);
        memcpy(w->batch, saved, m * sizeof *saved);
        k = m;
        rc = ua_browse_next(ch, s, conts, m, false, &cb);
        for (size_t i = 0; i < m; i++)
            free(owned[i]);
    }
    for (size_t i = 0; i < BATCH; i++) {
        free(w->conts[i]);
        w->conts[i] = NULL;
    }
    return rc;
}

static const char *type_name(const struct ua_nodeid *t, char *buf, size_t size)
{
    static const char *const names[] = {NULL,
                                        "Boolean",
                                        "SByte",
                                        "Byte",
                                        "Int16",
                                        "UInt16",
                                        "Int32",
                                        "UInt32",
                                        "Int64",
                                        "UInt64",
                                        "Float",
                                        "Double",
                                        "String",
                                        "DateTime",
                                        "Guid",
                                        "ByteString",
                                        "XmlElement",
                                        "NodeId",
                                        "ExpandedNodeId",
                                        "StatusCode",
                                        "QualifiedName",
                                        "LocalizedText",
                                        "ExtensionObject",
                                        "DataValue",
                                        "Variant",
                                        "DiagnosticInfo"};
    if (t->ns == 0 && t->kind == UA_NID_NUMERIC && t->id.num >= 1 && t->id.num <= 25)
        return names[t->id.num];
    return ua_nodeid_format(t, buf, size);
}

struct attr_ctx {
    struct walk *w;
    size_t *idx;
    uint32_t attr;
};

static void on_attr(void *arg, size_t i, const struct ua_datavalue *dv)
{
    struct attr_ctx *a = arg;
    struct item *it = &a->w->items[a->idx[i]];
    const struct ua_variant *v = &dv->value;
    if (!(dv->mask & UA_DV_VALUE) || v->is_array)
        return;
    if (a->attr == ATTR_DATA_TYPE && v->type == UA_NODEID) {
        char buf[sizeof it->type];
        snprintf(it->type, sizeof it->type, "%s", type_name(&v->v.nid, buf, sizeof buf));
    }
    if (a->attr == ATTR_ACCESS_LEVEL && v->type == UA_BYTE) {
        it->readable = v->v.u & ACCESS_READ;
        snprintf(it->access, sizeof it->access, "%s",
                 (v->v.u & ACCESS_WRITE) ? (it->readable ? "read/write" : "write only")
                                         : (it->readable ? "read only" : "no access"));
    }
    if (a->attr == ATTR_DESCRIPTION && v->type == UA_LOCALIZEDTEXT && v->v.lt.text.len > 0)
        it->descr = strndup(v->v.lt.text.ptr, (size_t)v->v.lt.text.len);
}

static int read_attrs(struct ua_channel *ch, const struct ua_session *s, struct walk *w,
                      size_t *idx, size_t k)
{
    struct ua_nodeid *nodes = calloc(k, sizeof *nodes);
    uint8_t(*bytes)[256] = calloc(k, sizeof *bytes);
    int rc = nodes && bytes ? IB_OK : IB_ERR_NOMEM;
    for (size_t i = 0; rc == IB_OK && i < k; i++) {
        char err[256];
        if (ua_nodeid_parse(w->items[idx[i]].id, &nodes[i], bytes[i], sizeof bytes[i], err,
                            sizeof err) != 0)
            nodes[i] = ua_nid_num(0, 0);
    }
    static const uint32_t attrs[] = {ATTR_DATA_TYPE, ATTR_ACCESS_LEVEL, ATTR_DESCRIPTION};
    for (size_t a = 0; rc == IB_OK && a < 3; a++) {
        struct attr_ctx ctx = {w, idx, attrs[a]};
        rc = ua_read(ch, s, nodes, k, attrs[a], on_attr, &ctx);
    }
    free(nodes);
    free(bytes);
    return rc;
}

void ua_csv_cell(FILE *out, const char *t)
{
    size_t n = strlen(t);
    bool quote = n && (t[0] == ' ' || t[n - 1] == ' ' || t[0] == '#' || strpbrk(t, ",\"\r\n"));
    if (!quote) {
        fputs(t, out);
        return;
    }
    fputc('"', out);
    for (; *t; t++) {
        if (*t == '"')
            fputc('"', out);
        fputc(*t, out);
    }
    fputc('"', out);
}

/* Finds name in the set; adds it and returns true when it was not there. */
static bool name_add(char **set, size_t cap, char *name)
{
    size_t h = hash(name) & (cap - 1);
    while (set[h] && strcmp(set[h], name) != 0)
        h = (h + 1) & (cap - 1);
    if (set[h])
        return false;
    set[h] = name;
    return true;
}

/* Tag names must be unique within a device: a path that two nodes share gets _2, _3... */
static int unique_names(struct walk *w)
{
    size_t cap = 1024;
    while (cap < 4 * w->n)
        cap *= 2;
    char **set = calloc(cap, sizeof *set);
    int rc = set ? IB_OK : IB_ERR_NOMEM;
    for (size_t i = 1; i < w->n && rc == IB_OK; i++) {
        struct item *it = &w->items[i];
        if (!it->is_var || !it->readable || name_add(set, cap, it->path))
            continue;
        size_t len = strlen(it->path) + 16;
        char *p = malloc(len);
        if (!p) {
            rc = IB_ERR_NOMEM;
            break;
        }
        for (int k = 2;; k++) {
            snprintf(p, len, "%s_%d", it->path, k);
            if (name_add(set, cap, p))
                break;
        }
        free(it->path);
        it->path = p;
    }
    free(set);
    return rc;
}

static void write_row(FILE *out, const struct item *it)
{
    char descr[2048];
    snprintf(descr, sizeof descr, "%s, %s%s%s", it->type[0] ? it->type : "unknown type",
             it->access[0] ? it->access : "access unknown", it->descr ? ": " : "",
             it->descr ? it->descr : "");
    ua_csv_cell(out, it->path);
    fputc(',', out);
    ua_csv_cell(out, it->id);
    fputs(",,", out); /* writable: empty (false); set true to allow commands */
    ua_csv_cell(out, descr);
    fputc('\n', out);
}

/* The server's MaxNodesPerRead (i=11705) and MaxNodesPerBrowse (i=11710), when it has them. */
static void on_limit(void *arg, size_t i, const struct ua_datavalue *dv)
{
    struct walk *w = arg;
    size_t *limit = i == 0 ? &w->max_read : &w->max_browse;
    if ((dv->mask & UA_DV_VALUE) && !dv->value.is_array && !(dv->status & 0x80000000u) &&
        dv->value.type == UA_UINT32 && dv->value.v.u > 0 && dv->value.v.u < *limit)
        *limit = (size_t)dv->value.v.u;
}

static void walk_free(struct walk *w)
{
    for (size_t i = 0; i < w->n; i++) {
        free(w->items[i].id);
        free(w->items[i].path);
        free(w->items[i].descr);
    }
    free(w->items);
    free(w->seen);
}

static int browse_all(struct ua_channel *ch, const struct ua_session *s, struct walk *w)
{
    int rc = IB_OK;
    for (size_t next = 0; rc == IB_OK && next < w->n && !w->nomem;) {
        size_t k = 0;
        for (; next < w->n && k < w->max_browse; next++)
            if (w->items[next].depth < w->o->max_depth)
                w->batch[k++] = next;
        if (k)
            rc = browse_batch(ch, s, w, k);
    }
    return rc;
}

long ua_walk(struct ua_channel *ch, const struct ua_session *s, const struct ua_walk_opts *o,
             FILE *out)
{
    struct walk w = {.o = o, .max_browse = BATCH, .max_read = READ_BATCH};
    struct ua_nodeid limits[2] = {ua_nid_num(0, 11705), ua_nid_num(0, 11710)};
    ua_read(ch, s, limits, 2, 13, on_limit, &w); /* best effort: the defaults stay */
    const char *root = o->root ? o->root : "i=85";
    int rc = add_item(&w, root, "", 0, false) ? browse_all(ch, s, &w) : IB_ERR_NOMEM;
    size_t *idx = calloc(READ_BATCH, sizeof *idx);
    long vars = 0;
    for (size_t i = 0; rc == IB_OK && i < w.n;) {
        size_t k = 0;
        for (; i < w.n && k < w.max_read && idx; i++)
            if (w.items[i].is_var && i > 0)
                idx[k++] = i;
        if (k)
            rc = read_attrs(ch, s, &w, idx, k);
    }
    if (rc == IB_OK)
        rc = unique_names(&w);
    if ((rc == IB_OK && (w.nomem || !idx)) || rc == IB_ERR_NOMEM) {
        snprintf(ch->error, sizeof ch->error, "out of memory");
        rc = IB_ERR_NOMEM;
    }
    if (rc == IB_OK) {
        if (o->with_header)
            fputs("name,node,writable,description\n", out);
        for (size_t i = 1; i < w.n; i++) {
            if (!w.items[i].is_var)
                continue;
            if (!w.items[i].readable) {
                fprintf(out, "# not readable (%s): %s %s\n",
                        w.items[i].access[0] ? w.items[i].access : "no AccessLevel",
                        w.items[i].path, w.items[i].id);
                continue;
            }
            write_row(out, &w.items[i]);
            vars++;
        }
    }
    free(idx);
    walk_free(&w);
    return rc == IB_OK ? vars : -1;
}
