/* The outbound queue: sequence order, ack/nack/rewind, in-flight window, and the byte bound
 * that drops (and counts) the oldest records. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "outq.h"

static void order_and_ack(void **state)
{
    (void)state;
    struct ib_outq *q = ib_outq_new(1 << 20);
    assert_int_equal(ib_outq_push(q, "t/a", ",\"x\":1}", 7), 1);
    assert_int_equal(ib_outq_push(q, "t/b", ",\"x\":2}", 7), 2);
    struct ib_outq_rec r;
    assert_true(ib_outq_next(q, 0, 10, &r));
    assert_int_equal(r.seq, 1);
    assert_string_equal(r.topic, "t/a");
    assert_int_equal(r.len, strlen("{\"seq\":1,\"x\":1}"));
    assert_memory_equal(r.payload, "{\"seq\":1,\"x\":1}", r.len);
    assert_true(ib_outq_next(q, 0, 10, &r));
    assert_int_equal(r.seq, 2);
    assert_false(ib_outq_next(q, 0, 10, &r)); /* nothing unsent */
    ib_outq_ack(q, 1);
    /* connection lost: record 2 is sent again */
    ib_outq_rewind(q);
    assert_true(ib_outq_next(q, 0, 10, &r));
    assert_int_equal(r.seq, 2);
    ib_outq_ack(q, 2);
    struct ib_outq_stats st;
    ib_outq_stats(q, &st);
    assert_int_equal(st.queued, 0);
    assert_int_equal(st.acked, 2);
    assert_int_equal(st.last_seq, 2);
    ib_outq_free(q);
}

static void window_and_nack(void **state)
{
    (void)state;
    struct ib_outq *q = ib_outq_new(1 << 20);
    for (int i = 0; i < 5; i++)
        ib_outq_push(q, "t", "}", 1);
    struct ib_outq_rec r;
    assert_true(ib_outq_next(q, 0, 2, &r));
    assert_true(ib_outq_next(q, 0, 2, &r));
    assert_false(ib_outq_next(q, 0, 2, &r)); /* window full */
    ib_outq_nack(q, 1);                      /* 1 and 2 go back, in order */
    assert_true(ib_outq_next(q, 0, 2, &r));
    assert_int_equal(r.seq, 1);
    ib_outq_free(q);
}

static void bounded_drops_oldest(void **state)
{
    (void)state;
    char body[1000];
    memset(body, 'x', sizeof body);
    struct ib_outq *q = ib_outq_new(10 * 1100);
    for (int i = 0; i < 100; i++)
        ib_outq_push(q, "t", body, sizeof body);
    struct ib_outq_stats st;
    ib_outq_stats(q, &st);
    assert_true(st.bytes <= 10 * 1100);
    assert_true(st.dropped >= 90);
    assert_int_equal(st.queued + st.dropped, 100);
    struct ib_outq_rec r;
    assert_true(ib_outq_next(q, 0, 10, &r));
    assert_int_equal(r.seq, 100 - st.queued + 1); /* the newest are kept */
    ib_outq_free(q);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(order_and_ack),
        cmocka_unit_test(window_and_nack),
        cmocka_unit_test(bounded_drops_oldest),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
