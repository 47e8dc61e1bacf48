/* OPC UA browse tool and its library part: the Browse and BrowseNext services (browse.c, OPC
 * 10000-4 §5.8.2, §5.8.3) and the walk of an address space into a tag list (browse_walk.c).
 * Decoded references point into the channel's receive buffer and are valid only during the
 * callback. One thread per channel. */
#ifndef IB_OPCUA_BROWSE_H
#define IB_OPCUA_BROWSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "channel.h"
#include "session.h"
#include "ua.h"

#define UA_NODECLASS_OBJECT   1
#define UA_NODECLASS_VARIABLE 2

/* One ReferenceDescription of a BrowseResult. */
struct ua_ref {
    struct ua_nodeid type; /* ReferenceTypeId */
    bool is_forward;
    struct ua_expnodeid node;
    struct ua_qname browse_name;
    struct ua_ltext display_name;
    int32_t node_class;
    struct ua_expnodeid type_definition;
};

struct ua_browse_cb {
    /* Called once per BrowseResult i, before its references; cont is its ContinuationPoint
     * (len -1 or 0 when none). */
    void (*result)(void *arg, size_t i, uint32_t status, struct ua_str cont);
    void (*ref)(void *arg, size_t i, const struct ua_ref *ref);
    void *arg;
};

/* Decodes the body of a BrowseResponse or BrowseNextResponse (after the ResponseHeader) that
 * answers `n` nodes: validates all of it first, then calls cb for each result and reference.
 * UA_OK, or the UA_E_* of the first bad field (nothing was called then); UA_E_RANGE when the
 * number of results is not n. Pure: the fuzz target calls it. */
int ua_browse_decode(struct ua_cur *c, size_t n, const struct ua_browse_cb *cb);

/* Browse: the forward hierarchical references (and subtypes) of nodes[0 .. n-1] to Objects
 * and Variables, at most max_refs per node (0: the server's choice). 0 or an ib_err with
 * ch->error set. */
int ua_browse(struct ua_channel *ch, const struct ua_session *s, const struct ua_nodeid *nodes,
              size_t n, uint32_t max_refs, const struct ua_browse_cb *cb);
/* BrowseNext with the continuation points conts[0 .. n-1]; release: free them instead. */
int ua_browse_next(struct ua_channel *ch, const struct ua_session *s, const struct ua_str *conts,
                   size_t n, bool release, const struct ua_browse_cb *cb);

/* The walk (browse_walk.c). */
struct ua_walk_opts {
    const char *root; /* node id text; NULL: i=85 (Objects) */
    int max_depth;    /* levels below the root */
    bool all_ns0;     /* also namespace 0 nodes below the root (the Server object...) */
    bool with_header; /* print the CSV header row */
};

/* Walks the address space from the root on an active session and writes the tag list CSV
 * (columns name,node,writable,description; the type and access level lead the description)
 * to out. Returns the number of variables written, or -1 with ch->error set. */
long ua_walk(struct ua_channel *ch, const struct ua_session *s, const struct ua_walk_opts *o,
             FILE *out);

/* Writes one CSV cell (quoted when it holds a comma, quote, CR/LF or edge spaces). */
void ua_csv_cell(FILE *out, const char *text);

#endif
