/* The configuration loader's helpers over YAML nodes: lookups, positions kept for later
 * messages, errors with file:line:column and key path, files named by keys, and the name sets
 * that find duplicates in linear time. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config_loader.h"
#include "schema.h"

const char *ib_loader_kind(const struct ynode *n)
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

/* Where node `n` is, for messages after loading (a plugin's among them): its file, position and
 * its keys' positions. The caller sets the key path. */
static struct ib_where *where_of(struct ib_loader *L, struct ynode *n)
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
struct ib_where *ib_loader_where(struct ib_loader *L, struct ynode *n, const char *path)
{
    struct ib_where *w = where_of(L, n);
    w->path = path;
    return w;
}

/* ... for item `index` of list `list` of the node at `parent`: parent's path.list[index]. */
struct ib_where *ib_loader_item_where(struct ib_loader *L, struct ynode *n,
                                      const struct ib_where *parent, const char *list, size_t index)
{
    struct ib_where *w = where_of(L, n);
    w->parent = parent;
    w->path = list;
    w->index = (unsigned)index;
    return w;
}

/* An error at node `n` whose key path is `path` (and optional `key` below it). */
void ib_loader_err(struct ib_loader *L, struct ynode *n, const char *path, const char *key,
                   const char *fmt, ...)
{
    struct ib_where w = {
        .file = L->file, .path = path, .line = n ? (int)n->line : 0, .col = n ? (int)n->col : 0};
    va_list ap;
    va_start(ap, fmt);
    ib_diag_addv(L->diag, &w, key, fmt, ap);
    va_end(ap);
}

/* The value node of `key` in mapping `map`, or NULL. */
struct ynode *ib_loader_get(struct ib_loader *L, struct ynode *map, const char *key)
{
    if (!map || map->type != YNODE_MAPPING)
        return NULL;
    for (size_t i = 0; i < map->n; i++)
        if (scalar(key_at(L, map, i)) && strcmp(scalar(key_at(L, map, i)), key) == 0)
            return value_at(L, map, i);
    return NULL;
}

char *ib_loader_join(struct ib_loader *L, const char *path, const char *key)
{
    return *path ? ib_arena_printf(&L->cfg->arena, "%s.%s", path, key)
                 : ib_arena_strdup(&L->cfg->arena, key);
}

/* The items of a list at `key` of `map`; NULL (and an error when required) if absent or not a
 * list. */
struct ynode *ib_loader_list(struct ib_loader *L, struct ynode *map, const char *path,
                             const char *key, bool required)
{
    struct ynode *n = ib_loader_get(L, map, key);
    if (!n) {
        if (required)
            ib_loader_err(L, map, path, NULL, "missing required key '%s' (a list)", key);
        return NULL;
    }
    if (n->type != YNODE_SEQUENCE) {
        ib_loader_err(L, n, path, key, "expected a list, found %s", ib_loader_kind(n));
        return NULL;
    }
    return n;
}

const char *ib_loader_resolve(struct ib_loader *L, const char *p)
{
    if (!p || p[0] == '/')
        return p;
    return ib_arena_printf(&L->cfg->arena, "%s/%s", L->dir, p);
}

void ib_loader_check_file(struct ib_loader *L, struct ynode *map, const char *path, const char *key,
                          const char *file, bool secret, bool dir)
{
    struct stat st;
    if (stat(file, &st) < 0) {
        ib_loader_err(L, map, path, key, "cannot use %s: %s", file, strerror(errno));
        return;
    }
    if (dir ? !S_ISDIR(st.st_mode) : !S_ISREG(st.st_mode)) {
        ib_loader_err(L, map, path, key, "%s is not a %s", file,
                      dir ? "directory" : "regular file");
        return;
    }
    if (access(file, R_OK) < 0) {
        ib_loader_err(L, map, path, key, "cannot read %s: %s", file, strerror(errno));
        return;
    }
    if (secret && (st.st_mode & 077))
        ib_loader_err(L, map, path, key,
                      "%s is readable or writable by group or others (mode %04o): a secret must be "
                      "private; run `chmod 600 %s`",
                      file, (unsigned)(st.st_mode & 07777), file);
}

bool ib_loader_flag(struct ib_loader *L, struct ynode *map, const char *key)
{
    const char *v = scalar(ib_loader_get(L, map, key));
    bool b = false;
    return v && ib_schema_parse_bool(v, &b) == 0 && b;
}

const char *ib_loader_pos(struct ib_loader *L, struct ynode *n)
{
    return ib_arena_printf(&L->cfg->arena, "%s:%u:%u", L->file, (unsigned)n->line,
                           (unsigned)n->col);
}

/* ---- Name sets ------------------------------------------------------------------------------- */

static size_t ptr_hash(const char *s)
{
    uintptr_t v = (uintptr_t)s;
    v ^= v >> 17;
    v *= 0x9e3779b97f4a7c15u;
    return (size_t)(v ^ (v >> 29));
}

static void nameset_grow(struct ib_nameset *set)
{
    size_t cap = set->cap ? 2 * set->cap : 64;
    const char **slot = calloc(cap, sizeof *slot);
    size_t *val = calloc(cap, sizeof *val);
    if (!slot || !val)
        abort();
    for (size_t i = 0; i < set->cap; i++) {
        if (!set->slot[i])
            continue;
        size_t j = ptr_hash(set->slot[i]) & (cap - 1);
        while (slot[j])
            j = (j + 1) & (cap - 1);
        slot[j] = set->slot[i];
        val[j] = set->val[i];
    }
    free(set->slot);
    free(set->val);
    set->slot = slot;
    set->val = val;
    set->cap = cap;
}

bool ib_nameset_add(struct ib_nameset *set, const char *s, size_t v, size_t *old)
{
    if (2 * (set->n + 1) > set->cap)
        nameset_grow(set);
    size_t j = ptr_hash(s) & (set->cap - 1);
    for (; set->slot[j]; j = (j + 1) & (set->cap - 1))
        if (set->slot[j] == s) {
            *old = set->val[j];
            return false;
        }
    set->slot[j] = s;
    set->val[j] = v;
    set->n++;
    return true;
}

bool ib_nameset_find(const struct ib_nameset *set, const char *s, size_t *v)
{
    for (size_t j = set->cap ? ptr_hash(s) & (set->cap - 1) : 0; set->cap && set->slot[j];
         j = (j + 1) & (set->cap - 1))
        if (set->slot[j] == s) {
            *v = set->val[j];
            return true;
        }
    return false;
}

void ib_nameset_free(struct ib_nameset *set)
{
    free(set->slot);
    free(set->val);
    *set = (struct ib_nameset){0};
}
