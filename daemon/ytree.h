/* A YAML document as a compact tree, built from libyaml's event API.
 *
 * libyaml's own document API keeps ~100 bytes per node in one array that doubles as it grows,
 * plus a heap string per scalar and per tag: loading a configuration of 16,000 tags took over
 * 30 MB. Here a node is 24 bytes in chunks that never move (a node pointer stays valid while
 * the tree lives), every scalar text is kept once however often it occurs (in a string pool the
 * caller may share with what it keeps), and a collection's children are an exact-size array of
 * node ids, written when the collection ends. Node id 0 is "none"; the root is id 1. */
#ifndef IB_YTREE_H
#define IB_YTREE_H

#include <stddef.h>
#include <stdint.h>

#include <yaml.h>

#include "util.h"

enum ynode_type { YNODE_NONE = 0, YNODE_SCALAR, YNODE_SEQUENCE, YNODE_MAPPING };

struct ynode {
    uint32_t line, col; /* 1-based, where the node starts (its anchor, if it has one) */
    uint8_t type;       /* enum ynode_type */
    uint32_t n;         /* items of a sequence, pairs of a mapping */
    union {
        const char *text;   /* scalar: NUL-terminated (text after a NUL in it is not kept) */
        const uint32_t *id; /* sequence: n item ids; mapping: key, value, key, value... */
    } u;
};

/* Each distinct string once, in `arena` (which the pool does not own). */
struct ystrpool {
    struct ib_arena *arena;
    const char **slot;
    size_t n, cap;
};

const char *ib_ystr_intern(struct ystrpool *sp, const char *s, size_t len);
void ib_ystr_free(struct ystrpool *sp); /* the table; the strings stay in the arena */

struct ytree_open;

struct ytree {
    struct ynode **chunk;
    size_t n_chunks;
    uint32_t n_nodes;
    struct ystrpool *strings; /* where scalar texts go */
    struct ib_arena arena;    /* children arrays */
    /* while building: the open collections, and the children of each so far */
    struct ytree_open *open;
    size_t n_open, cap_open;
    uint32_t *pending;
    size_t n_pending, cap_pending;
};

/* An empty tree whose scalar texts go to `strings`. */
void ib_ytree_init(struct ytree *t, struct ystrpool *strings);
void ib_ytree_free(struct ytree *t);

/* Why a document could not be loaded: libyaml's own words and position for a syntax error,
 * and the same as libyaml's loader gave for an undefined alias or a duplicate anchor. */
struct yerror {
    const char *problem, *context;
    size_t line, col; /* 1-based */
};

/* Load the next document of `parser`'s stream into the empty tree `t`. Returns 0 (the tree has
 * no nodes when the stream has no more documents) or -1 with `err`. */
int ib_ytree_load(struct ytree *t, yaml_parser_t *parser, struct yerror *err);

/* Building by hand (CSV tag lists). Each new node becomes the next child of the innermost open
 * collection; ib_ytree_begin opens the collection it creates, ib_ytree_end closes the innermost. */
uint32_t ib_ytree_scalar(struct ytree *t, const char *text, size_t len, int line, int col);
uint32_t ib_ytree_begin(struct ytree *t, enum ynode_type type, int line, int col);
void ib_ytree_add(struct ytree *t, uint32_t id); /* an existing node as the next child */
void ib_ytree_end(struct ytree *t);

static inline struct ynode *ib_ytree_node(const struct ytree *t, uint32_t id)
{
    if (id == 0 || id > t->n_nodes)
        return NULL;
    return &t->chunk[(id - 1) / 4096][(id - 1) % 4096];
}

static inline struct ynode *ib_ytree_root(const struct ytree *t)
{
    return ib_ytree_node(t, 1);
}

/* The i-th item of a sequence; the key and the value of the i-th pair of a mapping. */
static inline struct ynode *ib_ytree_item(const struct ytree *t, const struct ynode *n, size_t i)
{
    return ib_ytree_node(t, n->u.id[i]);
}

static inline struct ynode *ib_ytree_key(const struct ytree *t, const struct ynode *n, size_t i)
{
    return ib_ytree_node(t, n->u.id[2 * i]);
}

static inline struct ynode *ib_ytree_value(const struct ytree *t, const struct ynode *n, size_t i)
{
    return ib_ytree_node(t, n->u.id[2 * i + 1]);
}

#endif
