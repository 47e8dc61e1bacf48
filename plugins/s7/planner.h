/* S7 plugin, request planner: packs the tags of one group into the fewest Read Var requests
 * that fit the negotiated PDU size. Tags of one area (and DB) that touch, overlap or lie at most
 * a gap apart become one span; spans are cut into items and items packed into requests so that
 * every request and its response fit the PDU and hold at most S7_MAX_ITEMS items. Pure. */
#ifndef IB_S7_PLANNER_H
#define IB_S7_PLANNER_H

#include <stdint.h>

#include "wire.h"

/* One tag to read: `size` bytes from byte `start` of an area (T and C: start is the first
 * timer/counter number and size is 2 bytes per timer/counter). */
struct s7_plan_item {
    uint8_t area; /* enum s7_area */
    uint16_t db;
    uint32_t start;
    uint32_t size;
    uint8_t alone; /* a span of its own: never merged with a neighbour (an address the PLC
                      refused, so that it does not take its neighbours down with it) */
};

/* A run of bytes read for one or more tags: where it lies in the PLC and in the group buffer. */
struct s7_plan_span {
    uint8_t area;
    uint16_t db;
    uint32_t start; /* byte offset (T, C: number) */
    uint32_t size;  /* bytes */
    uint32_t buf;   /* offset in the group buffer */
};

/* One item of a request: `len` bytes of a span from `offset`; its data lands at group buffer
 * offset `buf`. */
struct s7_plan_chunk {
    uint32_t span;
    uint32_t offset;
    uint32_t len;
    uint32_t buf;
    uint32_t request;
};

struct s7_plan_request {
    uint32_t first; /* chunks[first .. first + n - 1] */
    uint32_t n;
    uint32_t response_bytes; /* the largest the response can be */
};

struct s7_plan {
    uint32_t n_items;
    uint32_t *slot; /* per item, input order: its offset in the group buffer */
    uint32_t n_spans;
    struct s7_plan_span *spans; /* sorted by area, db, start */
    uint32_t buf_size;          /* bytes of the group buffer */
    uint32_t pdu;               /* the PDU size the chunks were packed for (0: not yet) */
    uint32_t n_chunks;
    struct s7_plan_chunk *chunks; /* in request order, and by group buffer offset */
    uint32_t n_requests;
    struct s7_plan_request *requests;
};

/* Build the spans of items[0 .. n-1] (any order; overlaps allowed): items of the same area and
 * DB at most max_gap bytes apart share a span, except items marked alone. 0, IB_ERR_INVALID (a size
 * of 0) or IB_ERR_NOMEM; on error *plan owns nothing. */
int s7_plan_spans(const struct s7_plan_item *items, uint32_t n, uint32_t max_gap,
                  struct s7_plan *plan);

/* (Re)pack the spans into requests for a PDU of `pdu` bytes with at most `max_items` items per
 * request (1..S7_MAX_ITEMS). 0, IB_ERR_INVALID (a PDU too small for one item of one byte) or
 * IB_ERR_NOMEM (the previous packing is then gone: n_requests 0). */
int s7_plan_pack(struct s7_plan *plan, uint32_t pdu, uint32_t max_items);

/* The Read Var item of a chunk. */
struct s7_item s7_plan_item_of(const struct s7_plan *plan, const struct s7_plan_chunk *c);

/* Free and zero; accepts NULL. */
void s7_plan_free(struct s7_plan *plan);

#endif
