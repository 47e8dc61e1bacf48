/* S7 plugin, request planner: one sweep merges sorted items into spans; a greedy pass fills
 * each request up to the PDU, cutting a span where a request is full, so no request is sent
 * while the previous one still had room. */
#include "planner.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <ironbridge/error.h>

struct sorted {
    uint8_t area, alone;
    uint16_t db;
    uint32_t start, end, index;
    uint32_t span; /* the span it landed in */
};

static int cmp(const void *pa, const void *pb)
{
    const struct sorted *a = pa, *b = pb;
    if (a->area != b->area)
        return a->area < b->area ? -1 : 1;
    if (a->db != b->db)
        return a->db < b->db ? -1 : 1;
    if (a->start != b->start)
        return a->start < b->start ? -1 : 1;
    return a->index < b->index ? -1 : (a->index > b->index);
}

static int is_counted(uint8_t area)
{
    return area == S7_AREA_T || area == S7_AREA_C;
}

/* Bytes of PLC address per unit of `start`: T and C count elements of 2 bytes. */
static uint32_t unit_of(uint8_t area)
{
    return is_counted(area) ? 2 : 1;
}

int s7_plan_spans(const struct s7_plan_item *items, uint32_t n, uint32_t max_gap,
                  struct s7_plan *plan)
{
    memset(plan, 0, sizeof *plan);
    for (uint32_t i = 0; i < n; i++)
        if (items[i].size == 0 || (is_counted(items[i].area) && items[i].size % 2))
            return IB_ERR_INVALID;
    struct sorted *s = calloc(n ? n : 1, sizeof *s);
    plan->slot = calloc(n ? n : 1, sizeof *plan->slot);
    plan->spans = calloc(n ? n : 1, sizeof *plan->spans);
    if (!s || !plan->slot || !plan->spans) {
        free(s);
        s7_plan_free(plan);
        return IB_ERR_NOMEM;
    }
    plan->n_items = n;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t u = unit_of(items[i].area);
        /* work in bytes for T and C too: number * 2 */
        s[i] = (struct sorted){items[i].area,
                               items[i].alone ? 1 : 0,
                               items[i].db,
                               items[i].start * u,
                               items[i].start * u + items[i].size,
                               i};
    }
    qsort(s, n, sizeof *s, cmp);
    struct s7_plan_span *cur = NULL;
    bool cur_alone = false;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t gap = is_counted(s[i].area) ? max_gap & ~1u : max_gap;
        if (!cur || cur->area != s[i].area || cur->db != s[i].db || cur_alone || s[i].alone ||
            s[i].start > cur->start + cur->size + gap) {
            cur = &plan->spans[plan->n_spans++];
            *cur = (struct s7_plan_span){s[i].area, s[i].db, s[i].start, 0, 0};
            cur_alone = s[i].alone;
        }
        if (s[i].end - cur->start > cur->size)
            cur->size = s[i].end - cur->start;
        s[i].span = plan->n_spans - 1;
    }
    /* buffer offsets, then each item's slot (its span is the last one starting at or before) */
    for (uint32_t k = 0; k < plan->n_spans; k++) {
        plan->spans[k].buf = plan->buf_size;
        plan->buf_size += plan->spans[k].size;
    }
    for (uint32_t i = 0; i < n; i++)
        plan->slot[s[i].index] =
            plan->spans[s[i].span].buf + (s[i].start - plan->spans[s[i].span].start);
    /* T and C spans: back to numbers */
    for (uint32_t j = 0; j < plan->n_spans; j++)
        if (is_counted(plan->spans[j].area))
            plan->spans[j].start /= 2;
    free(s);
    return 0;
}

/* Room left in a request for one more item's data, or 0 when it takes no more items. */
static uint32_t room(uint32_t pdu, uint32_t max_items, const struct s7_plan_request *r)
{
    if (r->n >= max_items || S7_JOB_HDR + 2 + (r->n + 1) * S7_READ_ITEM > pdu)
        return 0;
    uint32_t used = r->response_bytes + 4 + 1; /* item header, and a fill byte if odd */
    return used < pdu ? pdu - used : 0;
}

static int grow(struct s7_plan *plan, uint32_t *cap_c)
{
    if (plan->n_chunks < *cap_c)
        return 0;
    uint32_t cap = *cap_c ? *cap_c * 2 : 16;
    struct s7_plan_chunk *c = realloc(plan->chunks, cap * sizeof *c);
    struct s7_plan_request *r = realloc(plan->requests, cap * sizeof *r);
    if (c)
        plan->chunks = c;
    if (r)
        plan->requests = r;
    if (!c || !r)
        return IB_ERR_NOMEM;
    *cap_c = cap;
    return 0;
}

int s7_plan_pack(struct s7_plan *plan, uint32_t pdu, uint32_t max_items)
{
    free(plan->chunks);
    free(plan->requests);
    plan->chunks = NULL;
    plan->requests = NULL;
    plan->n_chunks = plan->n_requests = 0;
    plan->pdu = 0;
    if (max_items == 0 || max_items > S7_MAX_ITEMS || pdu < S7_ACK_HDR + 2 + 4 + 2 + 1 ||
        pdu < S7_JOB_HDR + 2 + S7_READ_ITEM)
        return IB_ERR_INVALID;
    uint32_t cap = 0;
    int rc = IB_ERR_NOMEM;
    for (uint32_t k = 0; k < plan->n_spans; k++) {
        const struct s7_plan_span *sp = &plan->spans[k];
        uint32_t unit = unit_of(sp->area);
        for (uint32_t off = 0; off < sp->size;) {
            /* grow first: it may move the requests */
            if (grow(plan, &cap) != 0)
                goto fail;
            struct s7_plan_request *r =
                plan->n_requests ? &plan->requests[plan->n_requests - 1] : NULL;
            uint32_t fit = r ? room(pdu, max_items, r) : 0;
            fit -= fit % unit;
            if (fit == 0) {
                if (r && r->n == 0) {
                    rc = IB_ERR_INVALID; /* not even one element fits an empty request */
                    goto fail;
                }
                r = &plan->requests[plan->n_requests++];
                *r = (struct s7_plan_request){plan->n_chunks, 0, S7_ACK_HDR + 2};
                continue;
            }
            uint32_t len = sp->size - off < fit ? sp->size - off : fit;
            plan->chunks[plan->n_chunks++] =
                (struct s7_plan_chunk){k, off, len, sp->buf + off, plan->n_requests - 1};
            r->n++;
            r->response_bytes += 4 + len + (len & 1u);
            off += len;
        }
    }
    plan->pdu = pdu;
    return 0;
fail:
    free(plan->chunks);
    free(plan->requests);
    plan->chunks = NULL;
    plan->requests = NULL;
    plan->n_chunks = plan->n_requests = 0;
    return rc;
}

struct s7_item s7_plan_item_of(const struct s7_plan *plan, const struct s7_plan_chunk *c)
{
    const struct s7_plan_span *sp = &plan->spans[c->span];
    struct s7_item it = {.area = sp->area, .db = sp->db};
    if (sp->area == S7_AREA_T || sp->area == S7_AREA_C) {
        it.tsize = sp->area == S7_AREA_T ? S7_TS_TIMER : S7_TS_COUNTER;
        it.start = sp->start + c->offset / 2;
        it.count = (uint16_t)(c->len / 2);
    } else {
        it.tsize = S7_TS_BYTE;
        it.start = sp->start + c->offset;
        it.count = (uint16_t)c->len;
    }
    return it;
}

void s7_plan_free(struct s7_plan *plan)
{
    if (!plan)
        return;
    free(plan->slot);
    free(plan->spans);
    free(plan->chunks);
    free(plan->requests);
    memset(plan, 0, sizeof *plan);
}
