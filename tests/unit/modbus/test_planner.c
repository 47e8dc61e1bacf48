/* Unit tests of the Modbus block planner: request counts for dense, sparse, mixed, duplicate and
 * unsorted tags, with and without reading over gaps, limits, and that every tag lies wholly
 * inside its one request. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <ironbridge/error.h>

#include "planner.h"

static const struct mb_plan_limits wire_limits = {.max_registers = 125, .max_bits = 2000};
/* The plugin's defaults (docs/modbus.md): gaps of up to 10 registers are read over. */
static const struct mb_plan_limits default_limits = {
    .max_registers = 125, .max_bits = 2000, .max_gap = 10};

/* Every plan must satisfy these, whatever the input: each item inside its request, requests
 * within the limits, one table per request, buffers laid out back to back. */
static void check_plan(const struct mb_plan_item *items, uint32_t n,
                       const struct mb_plan_limits *lim, const struct mb_plan *plan)
{
    assert_int_equal(plan->n_slots, n);
    uint32_t regs = 0, bits = 0;
    for (uint32_t r = 0; r < plan->n_requests; r++) {
        const struct mb_plan_request *req = &plan->requests[r];
        int is_bits = mb_table_is_bits((enum mb_table)req->table);
        assert_true(req->count >= 1);
        assert_true(req->count <= (is_bits ? lim->max_bits : lim->max_registers));
        assert_true(req->start + req->count <= 65536);
        assert_int_equal(req->buf, is_bits ? bits : regs);
        *(is_bits ? &bits : &regs) += req->count;
        if (r > 0) {
            const struct mb_plan_request *prev = &plan->requests[r - 1];
            assert_true(prev->table < req->table ||
                        (prev->table == req->table && prev->start <= req->start));
        }
    }
    assert_int_equal(plan->n_registers, regs);
    assert_int_equal(plan->n_bits, bits);
    for (uint32_t i = 0; i < n; i++) {
        const struct mb_plan_slot *s = &plan->slots[i];
        assert_true(s->request < plan->n_requests);
        const struct mb_plan_request *req = &plan->requests[s->request];
        assert_int_equal(req->table, items[i].table);
        assert_int_equal(req->start + s->offset, items[i].address);
        assert_true(s->offset + items[i].width <= req->count);
    }
    /* order[] lists each request's items, by address, request after request. */
    for (uint32_t r = 0, k = 0; r < plan->n_requests; r++) {
        const struct mb_plan_request *req = &plan->requests[r];
        assert_int_equal(req->first, k);
        assert_true(req->n_items >= 1);
        for (uint32_t j = req->first; j < req->first + req->n_items; j++, k++) {
            uint32_t item = plan->order[j];
            assert_true(item < n);
            assert_int_equal(plan->slots[item].request, r);
            if (j > req->first)
                assert_true(items[plan->order[j - 1]].address <= items[item].address);
        }
        if (r == plan->n_requests - 1)
            assert_int_equal(k, n);
    }
}

static uint32_t plan_count(const struct mb_plan_item *items, uint32_t n,
                           const struct mb_plan_limits *lim)
{
    struct mb_plan plan;
    assert_int_equal(mb_plan_build(items, n, lim, &plan, NULL), 0);
    check_plan(items, n, lim, &plan);
    uint32_t count = plan.n_requests;
    mb_plan_free(&plan);
    return count;
}

static struct mb_plan_item *run(uint32_t n, uint32_t table, uint32_t first, uint32_t stride,
                                uint32_t width)
{
    struct mb_plan_item *items = calloc(n, sizeof(*items));
    assert_non_null(items);
    for (uint32_t i = 0; i < n; i++)
        items[i] = (struct mb_plan_item){table, first + i * stride, width};
    return items;
}

static void test_dense_registers(void **state)
{
    (void)state;
    struct mb_plan_item *items = run(1000, MB_TABLE_HOLDING, 0, 1, 1);
    struct mb_plan plan;
    assert_int_equal(mb_plan_build(items, 1000, &wire_limits, &plan, NULL), 0);
    check_plan(items, 1000, &wire_limits, &plan);
    assert_int_equal(plan.n_requests, 8);
    for (uint32_t r = 0; r < 8; r++) {
        assert_int_equal(plan.requests[r].start, r * 125);
        assert_int_equal(plan.requests[r].count, 125);
    }
    assert_int_equal(plan.n_registers, 1000);
    assert_int_equal(plan.n_bits, 0);
    mb_plan_free(&plan);
    /* One more register needs one more request. */
    free(items);
    items = run(1001, MB_TABLE_INPUT, 0, 1, 1);
    assert_int_equal(plan_count(items, 1001, &wire_limits), 9);
    free(items);
}

static void test_coils(void **state)
{
    (void)state;
    struct mb_plan_item *items = run(2001, MB_TABLE_COIL, 0, 1, 1);
    assert_int_equal(plan_count(items, 2000, &wire_limits), 1);
    assert_int_equal(plan_count(items, 2001, &wire_limits), 2);
    free(items);
    items = run(2000, MB_TABLE_DISCRETE_INPUT, 63536, 1, 1);
    assert_int_equal(plan_count(items, 2000, &wire_limits), 1);
    free(items);
}

static void test_sparse(void **state)
{
    (void)state;
    /* Tags 4 apart leave 3-register gaps, which are not read over with max_gap 0. */
    struct mb_plan_item *items = run(100, MB_TABLE_HOLDING, 10, 4, 1);
    assert_int_equal(plan_count(items, 100, &wire_limits), 100);
    free(items);
    /* float32 tags 2 apart touch: one request. */
    items = run(10, MB_TABLE_HOLDING, 0, 2, 2);
    assert_int_equal(plan_count(items, 10, &wire_limits), 1);
    free(items);
    /* A single-register gap splits. */
    items = run(10, MB_TABLE_HOLDING, 0, 3, 2);
    assert_int_equal(plan_count(items, 10, &wire_limits), 10);
    free(items);
}

/* The request counts the issue asks to prove, with the default gap of 10 registers. */
static void test_gaps_dense_sparse_mixed(void **state)
{
    (void)state;
    /* Dense: 1,000 adjacent uint16 in 8 requests of 125. */
    struct mb_plan_item *items = run(1000, MB_TABLE_HOLDING, 0, 1, 1);
    assert_int_equal(plan_count(items, 1000, &default_limits), 8);
    free(items);
    /* Sparse: 1,000 uint16 with 3-register gaps (every 4th register): 32 tags fit in 125
     * registers (4 * 31 + 1), so 32 requests instead of 1,000. */
    items = run(1000, MB_TABLE_HOLDING, 0, 4, 1);
    assert_int_equal(plan_count(items, 1000, &default_limits), 32);
    assert_int_equal(plan_count(items, 1000, &wire_limits), 1000); /* max_gap 0 */
    free(items);
    /* Gaps of exactly max_gap are read over (12 per request: 11 * 11 + 1 <= 125)... */
    items = run(1000, MB_TABLE_INPUT, 0, 11, 1);
    assert_int_equal(plan_count(items, 1000, &default_limits), 84);
    free(items);
    /* ...one more register is not. */
    items = run(1000, MB_TABLE_INPUT, 0, 12, 1);
    assert_int_equal(plan_count(items, 1000, &default_limits), 1000);
    free(items);
    /* Bits: the gap is 16 times as many bits; coils 100 apart, 20 per 2,000-bit request. */
    items = run(200, MB_TABLE_COIL, 0, 100, 1);
    assert_int_equal(plan_count(items, 200, &default_limits), 10);
    free(items);
    items = run(200, MB_TABLE_COIL, 0, 162, 1); /* a 161-bit gap */
    assert_int_equal(plan_count(items, 200, &default_limits), 200);
    free(items);

    /* Mixed: float32 every 3 registers (1-register gaps), uint16 runs with 20-register gaps
     * between them, coils and discrete inputs, in one scrambled list. */
    struct mb_plan_item mixed[400];
    uint32_t n = 0;
    for (uint32_t i = 0; i < 100; i++) /* holding 0..298: 42 per request (3 * 41 + 2 = 125) */
        mixed[n++] = (struct mb_plan_item){MB_TABLE_HOLDING, 3 * i, 2};
    for (uint32_t i = 0; i < 100; i++) /* input: 10 runs of 10, 20 apart: 10 requests */
        mixed[n++] = (struct mb_plan_item){MB_TABLE_INPUT, (i / 10) * 30 + i % 10, 1};
    for (uint32_t i = 0; i < 100; i++) /* coils every 8: one request of 793 bits */
        mixed[n++] = (struct mb_plan_item){MB_TABLE_COIL, 8 * i, 1};
    for (uint32_t i = 0; i < 100; i++) /* discrete inputs: 2 clusters 5,000 apart */
        mixed[n++] = (struct mb_plan_item){MB_TABLE_DISCRETE_INPUT, (i / 50) * 5000 + i, 1};
    struct mb_plan_item scrambled[400];
    for (uint32_t i = 0; i < n; i++)
        scrambled[i] = mixed[(i * 7u) % n];
    struct mb_plan plan;
    assert_int_equal(mb_plan_build(scrambled, n, &default_limits, &plan, NULL), 0);
    check_plan(scrambled, n, &default_limits, &plan);
    uint32_t per_table[MB_TABLE_COUNT] = {0};
    for (uint32_t r = 0; r < plan.n_requests; r++)
        per_table[plan.requests[r].table]++;
    assert_int_equal(per_table[MB_TABLE_HOLDING], 3);
    assert_int_equal(per_table[MB_TABLE_INPUT], 10);
    assert_int_equal(per_table[MB_TABLE_COIL], 1);
    assert_int_equal(per_table[MB_TABLE_DISCRETE_INPUT], 2);
    assert_int_equal(plan.n_requests, 16);
    mb_plan_free(&plan);
    /* The same list with max_gap 0: every float32 and coil alone, input runs stay. */
    assert_int_equal(plan_count(scrambled, n, &wire_limits), 100 + 10 + 100 + 2);
}

static void test_one_request_per_tag(void **state)
{
    (void)state;
    const struct mb_plan_limits one = {
        .max_registers = 125, .max_bits = 2000, .max_gap = 10, .one_per_item = true};
    struct mb_plan_item *items = run(50, MB_TABLE_HOLDING, 0, 1, 2);
    assert_int_equal(plan_count(items, 50, &one), 50);
    free(items);
    /* Duplicates too: each tag its own request. */
    struct mb_plan_item dup[] = {{MB_TABLE_COIL, 3, 1}, {MB_TABLE_COIL, 3, 1}};
    assert_int_equal(plan_count(dup, 2, &one), 2);
}

static void test_mixed_tables(void **state)
{
    (void)state;
    /* Same addresses in all four tables: never merged across tables. */
    struct mb_plan_item items[] = {
        {MB_TABLE_HOLDING, 0, 1},        {MB_TABLE_INPUT, 0, 1},          {MB_TABLE_COIL, 0, 1},
        {MB_TABLE_DISCRETE_INPUT, 0, 1}, {MB_TABLE_HOLDING, 1, 2},        {MB_TABLE_INPUT, 1, 1},
        {MB_TABLE_COIL, 1, 1},           {MB_TABLE_DISCRETE_INPUT, 1, 1},
    };
    struct mb_plan plan;
    assert_int_equal(mb_plan_build(items, 8, &wire_limits, &plan, NULL), 0);
    check_plan(items, 8, &wire_limits, &plan);
    assert_int_equal(plan.n_requests, 4);
    assert_int_equal(plan.requests[0].table, MB_TABLE_COIL);
    assert_int_equal(plan.requests[1].table, MB_TABLE_DISCRETE_INPUT);
    assert_int_equal(plan.requests[2].table, MB_TABLE_INPUT);
    assert_int_equal(plan.requests[3].table, MB_TABLE_HOLDING);
    assert_int_equal(plan.requests[3].count, 3);
    assert_int_equal(plan.n_registers, 5);
    assert_int_equal(plan.n_bits, 4);
    mb_plan_free(&plan);
}

static void test_float32_not_split(void **state)
{
    (void)state;
    /* 100 adjacent float32: 62 fit in 124 registers; the 63rd would straddle the 125 limit and
     * starts the next request instead. */
    struct mb_plan_item *items = run(100, MB_TABLE_HOLDING, 0, 2, 2);
    struct mb_plan plan;
    assert_int_equal(mb_plan_build(items, 100, &wire_limits, &plan, NULL), 0);
    check_plan(items, 100, &wire_limits, &plan);
    assert_int_equal(plan.n_requests, 2);
    assert_int_equal(plan.requests[0].count, 124);
    assert_int_equal(plan.requests[1].start, 124);
    assert_int_equal(plan.requests[1].count, 76);
    mb_plan_free(&plan);
    free(items);
    /* A uint16 before them shifts the boundary: the float32 at 124..125 must not be cut. */
    struct mb_plan_item shifted[64];
    shifted[0] = (struct mb_plan_item){MB_TABLE_HOLDING, 0, 1};
    for (uint32_t i = 1; i < 64; i++)
        shifted[i] = (struct mb_plan_item){MB_TABLE_HOLDING, 1 + (i - 1) * 2, 2};
    assert_int_equal(mb_plan_build(shifted, 64, &wire_limits, &plan, NULL), 0);
    check_plan(shifted, 64, &wire_limits, &plan);
    assert_int_equal(plan.n_requests, 2);
    assert_int_equal(plan.requests[0].count, 125);
    assert_int_equal(plan.requests[1].start, 125);
    mb_plan_free(&plan);
}

static void test_lowered_limit(void **state)
{
    (void)state;
    const struct mb_plan_limits lim = {.max_registers = 10, .max_bits = 16};
    struct mb_plan_item *items = run(100, MB_TABLE_HOLDING, 0, 1, 1);
    assert_int_equal(plan_count(items, 100, &lim), 10);
    free(items);
    items = run(20, MB_TABLE_HOLDING, 0, 2, 2); /* 40 registers, 5 float32 per request */
    assert_int_equal(plan_count(items, 20, &lim), 4);
    free(items);
    items = run(33, MB_TABLE_COIL, 0, 1, 1);
    assert_int_equal(plan_count(items, 33, &lim), 3);
    free(items);
    /* A limit of 3 registers with float32s: one float32 per request, never split. */
    const struct mb_plan_limits three = {.max_registers = 3, .max_bits = 1};
    items = run(4, MB_TABLE_HOLDING, 0, 2, 2);
    assert_int_equal(plan_count(items, 4, &three), 4);
    free(items);
}

static void test_duplicates_and_overlaps(void **state)
{
    (void)state;
    /* The same register read as uint16 twice, a float32 over 10..11 and an int32 over 11..12,
     * and a uint16 inside the float32. */
    struct mb_plan_item items[] = {
        {MB_TABLE_HOLDING, 10, 2}, {MB_TABLE_HOLDING, 11, 2}, {MB_TABLE_HOLDING, 10, 1},
        {MB_TABLE_HOLDING, 10, 1}, {MB_TABLE_HOLDING, 11, 1}, {MB_TABLE_COIL, 5, 1},
        {MB_TABLE_COIL, 5, 1},
    };
    struct mb_plan plan;
    assert_int_equal(mb_plan_build(items, 7, &wire_limits, &plan, NULL), 0);
    check_plan(items, 7, &wire_limits, &plan);
    assert_int_equal(plan.n_requests, 2);
    assert_int_equal(plan.requests[1].start, 10);
    assert_int_equal(plan.requests[1].count, 3);
    assert_int_equal(plan.slots[2].offset, plan.slots[3].offset);
    assert_int_equal(plan.requests[0].count, 1);
    mb_plan_free(&plan);

    /* Overlaps at the limit: [0,4) then [3,5) would make 5 > 4 registers, so the second
     * request starts at 3 and re-reads register 3. */
    const struct mb_plan_limits four = {.max_registers = 4, .max_bits = 1};
    struct mb_plan_item ov[] = {{MB_TABLE_INPUT, 0, 4}, {MB_TABLE_INPUT, 3, 2}};
    assert_int_equal(mb_plan_build(ov, 2, &four, &plan, NULL), 0);
    check_plan(ov, 2, &four, &plan);
    assert_int_equal(plan.n_requests, 2);
    assert_int_equal(plan.requests[1].start, 3);
    mb_plan_free(&plan);
}

static void test_unsorted_input(void **state)
{
    (void)state;
    /* 300 adjacent registers in a scrambled order plan exactly like the sorted ones. */
    struct mb_plan_item *sorted = run(300, MB_TABLE_HOLDING, 1000, 1, 1);
    struct mb_plan_item *shuffled = calloc(300, sizeof(*shuffled));
    assert_non_null(shuffled);
    for (uint32_t i = 0; i < 300; i++)
        shuffled[i] = sorted[(i * 7u) % 300u]; /* 7 is coprime with 300: a permutation */
    struct mb_plan a, b;
    assert_int_equal(mb_plan_build(sorted, 300, &wire_limits, &a, NULL), 0);
    assert_int_equal(mb_plan_build(shuffled, 300, &wire_limits, &b, NULL), 0);
    check_plan(shuffled, 300, &wire_limits, &b);
    assert_int_equal(a.n_requests, 3);
    assert_int_equal(b.n_requests, 3);
    assert_memory_equal(a.requests, b.requests, 3 * sizeof(*a.requests));
    for (uint32_t i = 0; i < 300; i++)
        assert_int_equal(b.slots[i].offset + b.requests[b.slots[i].request].start,
                         shuffled[i].address);
    mb_plan_free(&a);
    mb_plan_free(&b);
    free(sorted);
    free(shuffled);

    /* Descending addresses across tables. */
    struct mb_plan_item desc[] = {
        {MB_TABLE_HOLDING, 5, 1}, {MB_TABLE_COIL, 9, 1},    {MB_TABLE_HOLDING, 4, 1},
        {MB_TABLE_COIL, 8, 1},    {MB_TABLE_HOLDING, 3, 1},
    };
    assert_int_equal(plan_count(desc, 5, &wire_limits), 2);
}

static void test_errors(void **state)
{
    (void)state;
    struct mb_plan plan;
    uint32_t bad = 99;
    const struct mb_plan_limits one = {.max_registers = 1, .max_bits = 2000};
    struct mb_plan_item wide[] = {{MB_TABLE_HOLDING, 0, 1}, {MB_TABLE_HOLDING, 1, 2}};
    assert_int_equal(mb_plan_build(wide, 2, &one, &plan, &bad), IB_ERR_INVALID);
    assert_int_equal(bad, 1);
    assert_int_equal(plan.n_requests, 0);
    assert_null(plan.requests);

    struct mb_plan_item past_end[] = {{MB_TABLE_HOLDING, 65535, 1}, {MB_TABLE_HOLDING, 65535, 2}};
    assert_int_equal(mb_plan_build(past_end, 1, &wire_limits, &plan, &bad), 0);
    check_plan(past_end, 1, &wire_limits, &plan);
    mb_plan_free(&plan);
    assert_int_equal(mb_plan_build(past_end, 2, &wire_limits, &plan, &bad), IB_ERR_INVALID);
    assert_int_equal(bad, 1);

    struct mb_plan_item zero[] = {{MB_TABLE_COIL, 0, 0}};
    assert_int_equal(mb_plan_build(zero, 1, &wire_limits, &plan, &bad), IB_ERR_INVALID);
    assert_int_equal(bad, 0);
    struct mb_plan_item table[] = {{MB_TABLE_COUNT, 0, 1}};
    assert_int_equal(mb_plan_build(table, 1, &wire_limits, &plan, &bad), IB_ERR_INVALID);
    const struct mb_plan_limits none = {0};
    assert_int_equal(mb_plan_build(wide, 1, &none, &plan, &bad), IB_ERR_INVALID);
    assert_int_equal(bad, 1);

    /* No items: an empty plan, and freeing it (or NULL) is fine. */
    assert_int_equal(mb_plan_build(NULL, 0, &wire_limits, &plan, NULL), 0);
    assert_int_equal(plan.n_requests, 0);
    mb_plan_free(&plan);
    mb_plan_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dense_registers),
        cmocka_unit_test(test_coils),
        cmocka_unit_test(test_sparse),
        cmocka_unit_test(test_gaps_dense_sparse_mixed),
        cmocka_unit_test(test_one_request_per_tag),
        cmocka_unit_test(test_mixed_tables),
        cmocka_unit_test(test_float32_not_split),
        cmocka_unit_test(test_lowered_limit),
        cmocka_unit_test(test_duplicates_and_overlaps),
        cmocka_unit_test(test_unsorted_input),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
