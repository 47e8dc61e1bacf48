/* Private to the configuration module (config*.c, schema.c): the state of one load while it
 * walks the YAML trees of the files, and the helpers its files share. One load runs on one
 * thread (the main thread); everything allocated here lives in the configuration's arena
 * unless said otherwise. */
#ifndef IB_CONFIG_LOADER_H
#define IB_CONFIG_LOADER_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"
#include "ytree.h"

/* One source document: a YAML file of the tree, or a CSV tag list turned into YAML nodes. */
struct ib_srcdoc {
    const char *file;
    const char *dir; /* for relative paths in it */
    struct ytree tree;
};

/* A set of texts of this load, each distinct text interned once (struct ystrpool), so that
 * equal texts are the same pointer: duplicate names are found in linear time. Heap memory,
 * freed by ib_nameset_free. */
struct ib_nameset {
    const char **slot;
    size_t *val;
    size_t n, cap;
};
/* Adds `s` with value `v`; returns true if it was new, else false with *old its first value. */
bool ib_nameset_add(struct ib_nameset *set, const char *s, size_t v, size_t *old);
/* Whether `s` is in the set; its value into *v if so. */
bool ib_nameset_find(const struct ib_nameset *set, const char *s, size_t *v);
void ib_nameset_free(struct ib_nameset *set);

struct ib_loader {
    struct ib_config *cfg;
    struct ib_diag *diag;
    struct ytree *t; /* the document being walked (node ids are per document) */
    size_t cur;      /* its index in docs */
    const char *file;
    const char *dir;
    struct ib_plugin_registry *plugins;
    struct ib_srcdoc **docs; /* every document read, in merge order; CSV documents after */
    size_t n_docs, n_tree;   /* n_tree: the YAML files of the tree, docs[0 .. n_tree-1] */
    /* Every scalar of every document, each distinct text once, in the configuration's arena:
     * what the configuration keeps of them (names, keys, strings) is these very texts. */
    struct ystrpool strings;
    struct ib_nameset device_names; /* every device so far, to the where of its first */
};

/* A list of nodes (devices, tags) that comes from one document. */
struct ib_listsrc {
    size_t doc;
    struct ynode *list;
};

/* Walk document `i` from now on. */
void ib_loader_use_doc(struct ib_loader *L, size_t i);
/* Append a document (owned by the loader from then on); returns its index. */
size_t ib_loader_add_doc(struct ib_loader *L, struct ib_srcdoc *sd);

/* Item `i` of sequence `n`; key and value of pair `i` of mapping `n` (current document). */
static inline struct ynode *item_at(struct ib_loader *L, const struct ynode *n, size_t i)
{
    return ib_ytree_item(L->t, n, i);
}

static inline struct ynode *key_at(struct ib_loader *L, const struct ynode *n, size_t i)
{
    return ib_ytree_key(L->t, n, i);
}

static inline struct ynode *value_at(struct ib_loader *L, const struct ynode *n, size_t i)
{
    return ib_ytree_value(L->t, n, i);
}

/* A scalar's text (it lives as long as the configuration), or NULL for anything else. */
static inline const char *scalar(const struct ynode *n)
{
    return n && n->type == YNODE_SCALAR ? n->u.text : NULL;
}

static inline size_t list_len(const struct ynode *n)
{
    return n ? n->n : 0;
}

const char *ib_loader_kind(const struct ynode *n); /* "a scalar", "a list"... */

/* An error at node `n` (may be NULL) whose key path is `path` (and optional `key` below it). */
void ib_loader_err(struct ib_loader *L, struct ynode *n, const char *path, const char *key,
                   const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* Where node `n` is, kept for messages after loading (a plugin's among them), with the key
 * path `path` (static or in the arena: not copied) and its keys' positions. */
struct ib_where *ib_loader_where(struct ib_loader *L, struct ynode *n, const char *path);
/* ... for item `index` of list `list` of the node at `parent`: parent's path.list[index]. */
struct ib_where *ib_loader_item_where(struct ib_loader *L, struct ynode *n,
                                      const struct ib_where *parent, const char *list,
                                      size_t index);
/* "file:line:col" of node `n` of the current document, in the arena. */
const char *ib_loader_pos(struct ib_loader *L, struct ynode *n);

/* The value node of `key` in mapping `map` (NULL if absent or `map` is not a mapping); the
 * first, when the key is given twice. */
struct ynode *ib_loader_get(struct ib_loader *L, struct ynode *map, const char *key);
/* The list at `key` of `map`; NULL (and an error when required) if absent or not a list. */
struct ynode *ib_loader_list(struct ib_loader *L, struct ynode *map, const char *path,
                             const char *key, bool required);
/* path.key in the arena. */
char *ib_loader_join(struct ib_loader *L, const char *path, const char *key);
/* `p` relative to the current document's directory (NULL stays NULL). */
const char *ib_loader_resolve(struct ib_loader *L, const char *p);
/* `key` of `map` is a scalar that reads as true. */
bool ib_loader_flag(struct ib_loader *L, struct ynode *map, const char *key);
/* A file named by a key must exist, be a regular file (or a directory with `dir`), readable,
 * and (with `secret`) private to its owner; errors at `map`'s `key`. */
void ib_loader_check_file(struct ib_loader *L, struct ynode *map, const char *path, const char *key,
                          const char *file, bool secret, bool dir);

/* Names of connections, devices and groups appear in MQTT topics and journald fields. */
bool ib_loader_valid_ident(const char *s);
void ib_loader_check_ident(struct ib_loader *L, struct ynode *map, const char *path,
                           const char *name);

/* The sections: config_core.c (gateway, log, config, remote_config, north, store) and
 * config_conns.c (connections with their devices, merged across the files). */
void ib_loader_core(struct ib_loader *L);
/* config_north.c: the north.mqtt mapping `n` at `path`. */
void ib_loader_north(struct ib_loader *L, struct ynode *n, const char *path);
/* config_servers.c: north.mqtt.servers (after url). */
void ib_loader_servers(struct ib_loader *L, struct ynode *n, const char *path);
/* config_sparkplug.c: north.sparkplug, checked against north.format (after north.mqtt). */
void ib_loader_sparkplug(struct ib_loader *L, struct ynode *north);
/* After the connections: in Sparkplug mode, device ids and metric names (group/tag) that differ
 * only in case are errors (Sparkplug's rule: unique without regard to case). */
void ib_loader_sparkplug_names(struct ib_loader *L);
/* config_commands.c: checks of the commands section `n` (may be NULL), its schema applied. */
void ib_loader_commands(struct ib_loader *L, struct ynode *n);
void ib_loader_connections(struct ib_loader *L);
/* config_metrics.c: the checks of the metrics section `n` (may be NULL), applied into `mc`. */
void ib_loader_metrics(struct ib_loader *L, struct ynode *n, struct ib_metrics_cfg *mc);

/* config_tags.c: the groups of device `d` of connection `c` (its plugin view `dev`, being
 * built) from the device's node `dn`. */
void ib_loader_groups(struct ib_loader *L, struct ynode *dn, const char *dpath,
                      struct ib_cfg_connection *c, size_t d, struct ib_device_config *dev);

/* config_csv.c: read the CSV tag list at `path` (named by node `at`, key tags_csv of the group
 * at `gpath`) into a new document of YAML nodes; its index, or -1 after an error. */
int ib_loader_read_csv(struct ib_loader *L, const char *path, struct ynode *at, const char *gpath);

#endif
