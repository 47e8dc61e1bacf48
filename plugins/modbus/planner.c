/* Modbus block planner: one sweep over the items sorted by (table, address) grows a request
 * while the next item is within the gap and the limit allows, so config order never matters. */
#include "planner.h"

#include <stdlib.h>
#include <string.h>

#include <ironbridge/error.h>

/* The highest address + 1 a span may reach. */
#define MB_PLAN_ADDRESS_END 65536u

struct sorted_item {
    uint32_t table;
    uint32_t address;
    uint32_t end; /* address + width */
    uint32_t index;
};

static int compare_items(const void *pa, const void *pb)
{
    const struct sorted_item *a = pa, *b = pb;
    if (a->table != b->table)
        return a->table < b->table ? -1 : 1;
    if (a->address != b->address)
        return a->address < b->address ? -1 : 1;
    /* Input order as the last key keeps the plan deterministic although qsort is not stable. */
    return a->index < b->index ? -1 : (a->index > b->index);
}

static uint32_t limit_for(const struct mb_plan_limits *limits, uint32_t table)
{
    return mb_table_is_bits((enum mb_table)table) ? limits->max_bits : limits->max_registers;
}

static uint32_t gap_for(const struct mb_plan_limits *limits, uint32_t table)
{
    if (limits->one_per_item)
        return 0;
    /* A gap of 16 bits costs the same two bytes on the wire as a gap of one register. */
    uint32_t gap = limits->max_gap > 65535 ? 65535 : limits->max_gap;
    return mb_table_is_bits((enum mb_table)table) ? gap * 16 : gap;
}

int mb_plan_build(const struct mb_plan_item *items, uint32_t n_items,
                  const struct mb_plan_limits *limits, struct mb_plan *plan, uint32_t *bad_item)
{
    struct sorted_item *sorted = NULL;
    uint32_t bad = n_items;

    memset(plan, 0, sizeof *plan);
    if (limits->max_registers == 0 || limits->max_bits == 0)
        goto invalid;
    for (uint32_t i = 0; i < n_items; i++) {
        const struct mb_plan_item *it = &items[i];
        if (it->table >= MB_TABLE_COUNT || it->width == 0 ||
            it->width > limit_for(limits, it->table) || it->address >= MB_PLAN_ADDRESS_END ||
            it->width > MB_PLAN_ADDRESS_END - it->address) {
            bad = i;
            goto invalid;
        }
    }
    if (n_items == 0)
        return 0;

    /* At most one request per item, so the arrays never grow. */
    sorted = calloc(n_items, sizeof *sorted);
    plan->requests = calloc(n_items, sizeof *plan->requests);
    plan->slots = calloc(n_items, sizeof *plan->slots);
    plan->order = calloc(n_items, sizeof *plan->order);
    if (!sorted || !plan->requests || !plan->slots || !plan->order) {
        free(sorted);
        mb_plan_free(plan);
        return IB_ERR_NOMEM;
    }
    for (uint32_t i = 0; i < n_items; i++)
        sorted[i] = (struct sorted_item){items[i].table, items[i].address,
                                         items[i].address + items[i].width, i};
    qsort(sorted, n_items, sizeof *sorted, compare_items);

    struct mb_plan_request *cur = NULL;
    uint32_t cur_end = 0;
    for (uint32_t i = 0; i < n_items; i++) {
        const struct sorted_item *s = &sorted[i];
        uint32_t end = s->end > cur_end ? s->end : cur_end;
        plan->order[i] = s->index;
        if (!cur || limits->one_per_item || cur->table != s->table ||
            s->address > cur_end + gap_for(limits, s->table) ||
            end - cur->start > limit_for(limits, s->table)) {
            cur = &plan->requests[plan->n_requests++];
            cur->table = s->table;
            cur->start = s->address;
            cur->first = i;
            end = s->end;
        }
        cur_end = end;
        cur->count = cur_end - cur->start;
        cur->n_items++;
        plan->slots[s->index] =
            (struct mb_plan_slot){plan->n_requests - 1, s->address - cur->start};
    }
    plan->n_slots = n_items;
    free(sorted);
    /* Room was made for a request per item; keep what is used (a shrink that fails keeps it). */
    struct mb_plan_request *fit = realloc(plan->requests, plan->n_requests * sizeof *fit);
    if (fit)
        plan->requests = fit;

    for (uint32_t r = 0; r < plan->n_requests; r++) {
        struct mb_plan_request *req = &plan->requests[r];
        uint32_t *total =
            mb_table_is_bits((enum mb_table)req->table) ? &plan->n_bits : &plan->n_registers;
        req->buf = *total;
        *total += req->count;
    }
    return 0;

invalid:
    if (bad_item)
        *bad_item = bad;
    return IB_ERR_INVALID;
}

void mb_plan_free(struct mb_plan *plan)
{
    if (!plan)
        return;
    free(plan->requests);
    free(plan->slots);
    free(plan->order);
    memset(plan, 0, sizeof *plan);
}
