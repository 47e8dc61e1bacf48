/* Modbus block planner: merges the tags of one device group into as few read requests as the
 * device's limits allow, reading over small gaps, and says where in which response each tag's
 * data lies. */
#ifndef IB_MODBUS_PLANNER_H
#define IB_MODBUS_PLANNER_H

#include <stdbool.h>
#include <stdint.h>

#include "proto.h"

/* One tag to read: a table and the span [address, address + width) of registers or bits. */
struct mb_plan_item {
    uint32_t table;   /* enum mb_table */
    uint32_t address; /* 0-based protocol address, 0..65535 */
    uint32_t width;   /* registers (register tables) or bits (bit tables), >= 1 */
};

/* Limits for one device. Zero-initialize and set what you need: 0 in a field added later keeps
 * the earlier behaviour. */
struct mb_plan_limits {
    uint32_t max_registers; /* per request, register tables; 1..125 on the wire */
    uint32_t max_bits;      /* per request, bit tables; 1..2000 on the wire */
    /* Unrequested registers a request may read to join two tags: tags at most max_gap registers
     * apart share a request. In the bit tables the gap is 16 * max_gap bits (the same bytes on
     * the wire). 0: only touching or overlapping tags share a request. */
    uint32_t max_gap;
    bool one_per_item; /* every item gets a request of its own (devices that need it) */
};

/* One read request. */
struct mb_plan_request {
    uint32_t table; /* enum mb_table */
    uint32_t start; /* first address */
    uint32_t count; /* registers or bits */
    uint32_t buf;   /* where this request's values start in a buffer that holds the values of
                       all requests of its kind (registers or bits) one after another */
    uint32_t first; /* its items are order[first .. first + n_items - 1], by address */
    uint32_t n_items;
};

/* Where one item's data lies: request index and offset from that request's start. */
struct mb_plan_slot {
    uint32_t request;
    uint32_t offset;
};

struct mb_plan {
    uint32_t n_requests;
    struct mb_plan_request *requests; /* sorted by table, then address */
    uint32_t n_slots;                 /* = n_items, in input order */
    struct mb_plan_slot *slots;
    uint32_t *order; /* n_slots item indices sorted by table, then address (then input order) */
    uint32_t n_registers; /* sum of count over register requests: size the register buffer */
    uint32_t n_bits;      /* sum of count over bit requests: size the bit buffer */
};

/* Plan the reads of items[0 .. n_items-1] (any order; duplicates and overlaps allowed).
 * Items of the same table that overlap, touch or lie at most the gap apart share a request as
 * long as the request stays within the limit; an item is never split across requests.
 * Returns 0 and fills *plan (free it with mb_plan_free()); or IB_ERR_INVALID with *bad_item
 * (if not NULL) set to the first offending item (width 0 or above the limit, span past 65535,
 * unknown table) or to n_items for zero limits; or IB_ERR_NOMEM. On error *plan is zeroed and
 * owns nothing. */
int mb_plan_build(const struct mb_plan_item *items, uint32_t n_items,
                  const struct mb_plan_limits *limits, struct mb_plan *plan, uint32_t *bad_item);

/* Free what mb_plan_build() allocated and zero *plan; accepts NULL and a zeroed plan. */
void mb_plan_free(struct mb_plan *plan);

#endif
