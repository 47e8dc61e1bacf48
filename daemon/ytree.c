/* A YAML document as a compact tree (see ytree.h), and its loader from libyaml's events. The
 * loader composes exactly as libyaml's yaml_parser_load does: the same nodes at the same
 * positions, an alias standing for its anchored node, and the same errors. */
#include "ytree.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHUNK_NODES 4096

/* Configuration time only: out of memory ends the process, as the arena does. */
static _Noreturn void oom(void)
{
    fputs("ironbridge: out of memory\n", stderr);
    abort();
}

static void *xrealloc(void *p, size_t n)
{
    p = realloc(p, n);
    if (!p)
        oom();
    return p;
}

/* ---- the string pool ------------------------------------------------------------------------- */

static uint32_t hash(const char *s, size_t len)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)s[i]) * 16777619u;
    return h;
}

const char *ib_ystr_intern(struct ystrpool *sp, const char *s, size_t len)
{
    if (2 * (sp->n + 1) > sp->cap) {
        size_t cap = sp->cap ? 2 * sp->cap : 256;
        const char **slot = calloc(cap, sizeof *slot);
        if (!slot)
            oom();
        for (size_t i = 0; i < sp->cap; i++)
            if (sp->slot[i]) {
                size_t j = hash(sp->slot[i], strlen(sp->slot[i])) & (cap - 1);
                while (slot[j])
                    j = (j + 1) & (cap - 1);
                slot[j] = sp->slot[i];
            }
        free(sp->slot);
        sp->slot = slot;
        sp->cap = cap;
    }
    size_t j = hash(s, len) & (sp->cap - 1);
    for (; sp->slot[j]; j = (j + 1) & (sp->cap - 1))
        if (strncmp(sp->slot[j], s, len) == 0 && sp->slot[j][len] == '\0')
            return sp->slot[j];
    sp->n++;
    return sp->slot[j] = ib_arena_strndup(sp->arena, s, len);
}

void ib_ystr_free(struct ystrpool *sp)
{
    free(sp->slot);
    sp->slot = NULL;
    sp->n = sp->cap = 0;
}

/* ---- building -------------------------------------------------------------------------------- */

struct ytree_open {
    uint32_t id;
    size_t first; /* its children so far: pending[first .. n_pending-1] */
};

void ib_ytree_init(struct ytree *t, struct ystrpool *strings)
{
    memset(t, 0, sizeof *t);
    t->strings = strings;
}

void ib_ytree_free(struct ytree *t)
{
    for (size_t i = 0; i < t->n_chunks; i++)
        free(t->chunk[i]);
    free(t->chunk);
    free(t->open);
    free(t->pending);
    ib_arena_free(&t->arena);
    memset(t, 0, sizeof *t);
}

void ib_ytree_add(struct ytree *t, uint32_t id)
{
    if (t->n_open == 0)
        return; /* the root */
    if (t->n_pending == t->cap_pending) {
        t->cap_pending = t->cap_pending ? 2 * t->cap_pending : 256;
        t->pending = xrealloc(t->pending, t->cap_pending * sizeof *t->pending);
    }
    t->pending[t->n_pending++] = id;
}

static uint32_t new_node(struct ytree *t, enum ynode_type type, int line, int col)
{
    if (t->n_nodes % CHUNK_NODES == 0) {
        t->chunk = xrealloc(t->chunk, (t->n_chunks + 1) * sizeof *t->chunk);
        t->chunk[t->n_chunks++] = xrealloc(NULL, CHUNK_NODES * sizeof(struct ynode));
    }
    uint32_t id = ++t->n_nodes;
    *ib_ytree_node(t, id) =
        (struct ynode){.line = (uint32_t)line, .col = (uint32_t)col, .type = type};
    ib_ytree_add(t, id);
    return id;
}

uint32_t ib_ytree_scalar(struct ytree *t, const char *text, size_t len, int line, int col)
{
    uint32_t id = new_node(t, YNODE_SCALAR, line, col);
    ib_ytree_node(t, id)->u.text = ib_ystr_intern(t->strings, text, strnlen(text, len));
    return id;
}

uint32_t ib_ytree_begin(struct ytree *t, enum ynode_type type, int line, int col)
{
    uint32_t id = new_node(t, type, line, col);
    if (t->n_open == t->cap_open) {
        t->cap_open = t->cap_open ? 2 * t->cap_open : 16;
        t->open = xrealloc(t->open, t->cap_open * sizeof *t->open);
    }
    t->open[t->n_open++] = (struct ytree_open){id, t->n_pending};
    return id;
}

void ib_ytree_end(struct ytree *t)
{
    if (t->n_open == 0)
        return;
    struct ytree_open o = t->open[--t->n_open];
    struct ynode *n = ib_ytree_node(t, o.id);
    size_t cnt = t->n_pending - o.first;
    n->n = (uint32_t)(n->type == YNODE_MAPPING ? cnt / 2 : cnt);
    if (cnt) {
        uint32_t *id = ib_arena_alloc_align(&t->arena, cnt * sizeof *id, sizeof *id);
        memcpy(id, t->pending + o.first, cnt * sizeof *id);
        n->u.id = id;
    }
    t->n_pending = o.first;
    if (t->n_open == 0) { /* the root is complete: no more building state */
        free(t->open);
        free(t->pending);
        t->open = NULL;
        t->pending = NULL;
        t->cap_open = t->cap_pending = 0;
    }
}

/* ---- loading from events --------------------------------------------------------------------- */

struct anchor {
    char *name;
    uint32_t id;
};

/* The anchors of a document so far, by name: an open-addressing table (a document may hold
 * tens of thousands of anchors; finding one must not cost a scan of them all). */
struct anchors {
    struct anchor *v;
    size_t n, cap;
};

static void set_error(struct yerror *err, const char *problem, const char *context,
                      yaml_mark_t mark)
{
    err->problem = problem;
    err->context = context;
    err->line = mark.line + 1;
    err->col = mark.column + 1;
}

static void syntax_error(struct yerror *err, const yaml_parser_t *p)
{
    set_error(err, p->problem, p->context, p->problem_mark);
}

static struct anchor *slot_of(const struct anchors *a, const char *name)
{
    size_t j = hash(name, strlen(name)) & (a->cap - 1);
    while (a->v[j].name && strcmp(a->v[j].name, name) != 0)
        j = (j + 1) & (a->cap - 1);
    return &a->v[j];
}

static uint32_t find_anchor(const struct anchors *a, const char *name)
{
    return a->cap ? slot_of(a, name)->id : 0;
}

static void grow_anchors(struct anchors *a)
{
    struct anchors g = {.cap = a->cap ? 2 * a->cap : 64, .n = a->n};
    g.v = calloc(g.cap, sizeof *g.v);
    if (!g.v)
        oom();
    for (size_t i = 0; i < a->cap; i++)
        if (a->v[i].name)
            *slot_of(&g, a->v[i].name) = a->v[i];
    free(a->v);
    *a = g;
}

/* Remember node `id`'s anchor (if any); a name used twice is an error, as in libyaml. */
static int add_anchor(struct anchors *a, const yaml_char_t *name, uint32_t id, yaml_mark_t mark,
                      struct yerror *err)
{
    if (!name)
        return 0;
    if (find_anchor(a, (const char *)name)) {
        set_error(err, "second occurrence", "found duplicate anchor; first occurrence", mark);
        return -1;
    }
    if (2 * (a->n + 1) > a->cap)
        grow_anchors(a);
    struct anchor *slot = slot_of(a, (const char *)name);
    slot->name = strdup((const char *)name);
    if (!slot->name)
        oom();
    slot->id = id;
    a->n++;
    return 0;
}

/* The events of one document after its DOCUMENT-START, up to its DOCUMENT-END. */
static int load_nodes(struct ytree *t, yaml_parser_t *parser, struct anchors *a, struct yerror *err)
{
    for (;;) {
        yaml_event_t ev;
        if (!yaml_parser_parse(parser, &ev)) {
            syntax_error(err, parser);
            return -1;
        }
        yaml_mark_t m = ev.start_mark;
        int line = (int)m.line + 1, col = (int)m.column + 1, rc = 0;
        uint32_t id;
        switch (ev.type) {
        case YAML_ALIAS_EVENT:
            if ((id = find_anchor(a, (const char *)ev.data.alias.anchor))) {
                ib_ytree_add(t, id);
            } else {
                set_error(err, "found undefined alias", NULL, m);
                rc = -1;
            }
            break;
        case YAML_SCALAR_EVENT:
            id = ib_ytree_scalar(t, (const char *)ev.data.scalar.value, ev.data.scalar.length, line,
                                 col);
            rc = add_anchor(a, ev.data.scalar.anchor, id, m, err);
            break;
        case YAML_SEQUENCE_START_EVENT:
            id = ib_ytree_begin(t, YNODE_SEQUENCE, line, col);
            rc = add_anchor(a, ev.data.sequence_start.anchor, id, m, err);
            break;
        case YAML_MAPPING_START_EVENT:
            id = ib_ytree_begin(t, YNODE_MAPPING, line, col);
            rc = add_anchor(a, ev.data.mapping_start.anchor, id, m, err);
            break;
        case YAML_SEQUENCE_END_EVENT:
        case YAML_MAPPING_END_EVENT:
            ib_ytree_end(t);
            break;
        case YAML_DOCUMENT_END_EVENT:
            rc = 1;
            break;
        default: /* the parser produces no other event inside a document */
            break;
        }
        yaml_event_delete(&ev);
        if (rc)
            return rc < 0 ? -1 : 0;
    }
}

int ib_ytree_load(struct ytree *t, yaml_parser_t *parser, struct yerror *err)
{
    yaml_event_t ev;
    if (!parser->stream_start_produced) {
        if (!yaml_parser_parse(parser, &ev)) {
            syntax_error(err, parser);
            return -1;
        }
        yaml_event_delete(&ev); /* STREAM-START */
    }
    if (parser->stream_end_produced)
        return 0;
    if (!yaml_parser_parse(parser, &ev)) {
        syntax_error(err, parser);
        return -1;
    }
    yaml_event_type_t type = ev.type;
    yaml_event_delete(&ev);
    if (type == YAML_STREAM_END_EVENT)
        return 0;
    struct anchors a = {0};
    int rc = load_nodes(t, parser, &a, err);
    for (size_t i = 0; i < a.cap; i++)
        free(a.v[i].name);
    free(a.v);
    return rc;
}
