/* Unit tests of the S7 request planner: spans over gaps and areas, packing that keeps every
 * request and its response within the PDU and the item limit, the fewest requests for dense
 * data, T/C items in whole elements, and that every tag's bytes are covered by its items. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <ironbridge/error.h>

#include "planner.h"

/* Invariants of any packing: requests and responses within the PDU, items within the limit,
 * chunks tiling every span in order, each item's bytes inside the buffer. */
static void check_pack(const struct s7_plan *p, uint32_t pdu, uint32_t max_items)
{
    uint32_t c = 0;
    for (uint32_t r = 0; r < p->n_requests; r++) {
        const struct s7_plan_request *rq = &p->requests[r];
        assert_int_equal(rq->first, c);
        assert_true(rq->n >= 1 && rq->n <= max_items);
        assert_true(S7_JOB_HDR + 2 + rq->n * S7_READ_ITEM <= pdu);
        uint32_t resp = S7_ACK_HDR + 2;
        for (uint32_t k = 0; k < rq->n; k++, c++) {
            const struct s7_plan_chunk *ch = &p->chunks[c];
            assert_int_equal(ch->request, r);
            resp += 4 + ch->len + (ch->len & 1);
        }
        assert_true(resp <= pdu);
    }
    assert_int_equal(c, p->n_chunks);
    uint32_t at = 0;
    for (uint32_t k = 0; k < p->n_chunks; k++) {
        assert_int_equal(p->chunks[k].buf, at);
        at += p->chunks[k].len;
    }
    assert_int_equal(at, p->buf_size);
}

static void spans_and_gaps(void **state)
{
    (void)state;
    struct s7_plan_item items[] = {
        {S7_AREA_DB, 1, 0, 4},  {S7_AREA_DB, 1, 10, 2}, /* gap 6: joined with max_gap 8 */
        {S7_AREA_DB, 1, 40, 4},                         /* gap 28: a span of its own */
        {S7_AREA_DB, 2, 0, 2},                          /* another DB */
        {S7_AREA_M, 0, 2, 1},   {S7_AREA_M, 0, 0, 1},   /* unsorted, gap 1 */
        {S7_AREA_DB, 1, 1, 2},                          /* overlapping */
    };
    struct s7_plan p;
    assert_int_equal(s7_plan_spans(items, 7, 8, &p), 0);
    assert_int_equal(p.n_spans, 4);
    assert_int_equal(p.buf_size, 12 + 4 + 2 + 3);
    /* sorted by area code: M (0x83) before DB (0x84) */
    assert_int_equal(p.spans[0].area, S7_AREA_M);
    assert_int_equal(p.slot[5], 0);
    assert_int_equal(p.slot[4], 2);
    assert_int_equal(p.slot[0], 3);
    assert_int_equal(p.slot[6], 4);
    assert_int_equal(p.slot[1], 13);
    assert_int_equal(p.slot[2], 15);
    assert_int_equal(p.slot[3], 19);
    assert_int_equal(s7_plan_pack(&p, 240, 20), 0);
    assert_int_equal(p.n_requests, 1);
    assert_int_equal(p.n_chunks, 4);
    check_pack(&p, 240, 20);
    s7_plan_free(&p);
    /* max_gap 0: only touching tags share a span */
    assert_int_equal(s7_plan_spans(items, 7, 0, &p), 0);
    assert_int_equal(p.n_spans, 6);
    s7_plan_free(&p);
}

static void dense_fewest(void **state)
{
    (void)state;
    /* 500 REALs over three DBs, back to back */
    struct s7_plan_item items[500];
    for (uint32_t i = 0; i < 500; i++)
        items[i] = (struct s7_plan_item){S7_AREA_DB, (uint16_t)(10 + i % 3), 4 * (i / 3), 4};
    struct s7_plan p;
    assert_int_equal(s7_plan_spans(items, 500, 0, &p), 0);
    assert_int_equal(p.n_spans, 3);
    static const uint32_t pdus[] = {240, 480, 960};
    static const uint32_t want[] = {10, 5, 3}; /* 2000 bytes + item headers per pdu - 14 */
    for (unsigned k = 0; k < 3; k++) {
        assert_int_equal(s7_plan_pack(&p, pdus[k], 20), 0);
        check_pack(&p, pdus[k], 20);
        uint32_t bound = (2000 + 4 * 3 + pdus[k] - 14 - 1) / (pdus[k] - 14);
        assert_true(p.n_requests >= bound);
        assert_int_equal(p.n_requests, want[k]);
    }
    s7_plan_free(&p);
}

static void item_limit(void **state)
{
    (void)state;
    /* 45 single bytes far apart: 45 spans, at most max_items per request */
    struct s7_plan_item items[45];
    for (uint32_t i = 0; i < 45; i++)
        items[i] = (struct s7_plan_item){S7_AREA_M, 0, 100 * i, 1};
    struct s7_plan p;
    assert_int_equal(s7_plan_spans(items, 45, 32, &p), 0);
    assert_int_equal(s7_plan_pack(&p, 960, 20), 0);
    assert_int_equal(p.n_requests, 3);
    check_pack(&p, 960, 20);
    assert_int_equal(s7_plan_pack(&p, 960, 5), 0);
    assert_int_equal(p.n_requests, 9);
    check_pack(&p, 960, 5);
    /* PDU 240: 19 items fit the request (12 + 19 * 12 = 240) */
    assert_int_equal(s7_plan_pack(&p, 240, 20), 0);
    check_pack(&p, 240, 20);
    assert_int_equal(p.requests[0].n, 19);
    assert_int_equal(s7_plan_pack(&p, 20, 20), IB_ERR_INVALID);
    assert_int_equal(p.n_requests, 0);
    s7_plan_free(&p);
}

static void big_and_counted(void **state)
{
    (void)state;
    /* a STRING[254] (256 bytes) does not fit one item of a 240 PDU: it is cut, and its bytes
     * stay contiguous in the buffer; timers pack in whole 2-byte elements */
    struct s7_plan_item items[] = {
        {S7_AREA_DB, 1, 0, 256},
        {S7_AREA_T, 0, 5, 2},
        {S7_AREA_T, 0, 6, 2},
        {S7_AREA_C, 0, 3, 2},
    };
    struct s7_plan p;
    assert_int_equal(s7_plan_spans(items, 4, 0, &p), 0);
    assert_int_equal(p.n_spans, 3);
    assert_int_equal(s7_plan_pack(&p, 240, 20), 0);
    check_pack(&p, 240, 20);
    for (uint32_t k = 0; k < p.n_chunks; k++) {
        const struct s7_plan_chunk *c = &p.chunks[k];
        struct s7_item it = s7_plan_item_of(&p, c);
        if (p.spans[c->span].area == S7_AREA_T) {
            assert_int_equal(c->len % 2, 0);
            assert_int_equal(it.tsize, S7_TS_TIMER);
            assert_int_equal(it.start, 5 + c->offset / 2);
            assert_int_equal(it.count, c->len / 2);
        }
    }
    assert_true(p.n_requests >= 2);
    s7_plan_free(&p);
    struct s7_plan_item zero = {S7_AREA_DB, 1, 0, 0};
    assert_int_equal(s7_plan_spans(&zero, 1, 0, &p), IB_ERR_INVALID);
    s7_plan_free(&p);
}

static void alone_items(void **state)
{
    (void)state;
    /* three touching words; the middle one alone: three spans, slots still right */
    struct s7_plan_item items[] = {
        {S7_AREA_DB, 2, 94, 2, 0},
        {S7_AREA_DB, 2, 96, 2, 1},
        {S7_AREA_DB, 2, 98, 4, 0},
    };
    struct s7_plan p;
    assert_int_equal(s7_plan_spans(items, 3, 32, &p), 0);
    assert_int_equal(p.n_spans, 3);
    assert_int_equal(p.slot[0], 0);
    assert_int_equal(p.slot[1], 2);
    assert_int_equal(p.slot[2], 4);
    s7_plan_free(&p);
    items[1].alone = 0;
    assert_int_equal(s7_plan_spans(items, 3, 32, &p), 0);
    assert_int_equal(p.n_spans, 1);
    s7_plan_free(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(spans_and_gaps), cmocka_unit_test(dense_fewest),
        cmocka_unit_test(item_limit),     cmocka_unit_test(big_and_counted),
        cmocka_unit_test(alone_items),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
