/* Unit tests of several Modbus TCP requests in flight (pipe.c): answers matched to their requests
 * by transaction id in any order and in any pieces, exceptions kept per request, late answers
 * (their request timed out) and unknown ones dropped and counted, an unknown or repeated
 * transaction id noted as a device that mishandles several in flight, and a stream that cannot
 * be framed reported out of step. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <modbus.h>

#include "mbap.h"
#include "pipe.h"

#define N 4

struct fx {
    struct mb_pipe pipe;
    struct mb_pipe_item items[N];
    uint16_t dest[N][2];
};

static struct fx fx;

/* Request k: read 2 holding registers at 10 * k from unit 1, transaction id 100 + k, due at
 * 1000 + k. */
static void send_req(uint32_t k)
{
    uint8_t req[MB_MBAP_MAX_ADU];
    size_t n = mb_mbap_read_request(req, (uint16_t)(100 + k), 1, 3, (uint16_t)(10 * k), 2);
    fx.items[k] = (struct mb_pipe_item){
        .table = 3, .addr = (uint16_t)(10 * k), .count = 2, .dest = fx.dest[k], .rc = -1};
    assert_true(mb_pipe_add(&fx.pipe, k, req, n, 1000 + k) >= 0);
}

/* The answer to request k (or to transaction id tid) holding k, k + 1. */
static size_t answer(uint8_t *a, uint16_t tid, uint16_t k)
{
    const uint8_t f[] = {tid >> 8, tid & 0xFF,      0, 0, 0, 7, 1, 3, 4, 0, (uint8_t)k,
                         0,        (uint8_t)(k + 1)};
    memcpy(a, f, sizeof f);
    return sizeof f;
}

static int setup(void **state)
{
    (void)state;
    memset(&fx, 0, sizeof fx);
    mb_pipe_begin(&fx.pipe);
    for (uint32_t k = 0; k < N; k++)
        send_req(k);
    return 0;
}

static void assert_read(uint32_t k)
{
    assert_true(fx.items[k].done);
    assert_int_equal(fx.items[k].rc, 2);
    assert_int_equal(fx.dest[k][0], k);
    assert_int_equal(fx.dest[k][1], k + 1);
}

static void test_any_order(void **state)
{
    (void)state;
    uint8_t a[64];
    for (int k = N - 1; k >= 0; k--)
        assert_int_equal(mb_pipe_feed(&fx.pipe, fx.items, a, answer(a, 100 + k, k)), 0);
    for (uint32_t k = 0; k < N; k++)
        assert_read(k);
    assert_int_equal(fx.pipe.n_busy, 0);
    assert_int_equal(fx.pipe.answered, N);
    assert_string_equal(fx.pipe.misbehaved, "");
}

/* All answers in one buffer, then fed one byte at a time. */
static void test_pieces(void **state)
{
    (void)state;
    uint8_t a[256];
    size_t n = 0;
    for (uint32_t k = 0; k < N; k++)
        n += answer(a + n, (uint16_t)(100 + (k + 2) % N), (uint16_t)((k + 2) % N));
    for (size_t i = 0; i < n; i++)
        assert_int_equal(mb_pipe_feed(&fx.pipe, fx.items, a + i, 1), 0);
    for (uint32_t k = 0; k < N; k++)
        assert_read(k);
    assert_int_equal(fx.pipe.have, 0);
}

static void test_exception_kept(void **state)
{
    (void)state;
    const uint8_t exc[] = {0, 101, 0, 0, 0, 3, 1, 0x83, 2};
    uint8_t a[64];
    assert_int_equal(mb_pipe_feed(&fx.pipe, fx.items, exc, sizeof exc), 0);
    assert_true(fx.items[1].done);
    assert_int_equal(fx.items[1].rc, -1);
    assert_int_equal(fx.items[1].err, EMBXILADD);
    /* The stream stays in step: the next answer is taken. */
    assert_int_equal(mb_pipe_feed(&fx.pipe, fx.items, a, answer(a, 100, 0)), 0);
    assert_read(0);
    assert_string_equal(fx.pipe.misbehaved, "");
}

static void test_timeout_then_late_answer(void **state)
{
    (void)state;
    uint8_t a[64];
    /* Requests 0 and 1 are due at 1000 and 1001. */
    assert_int_equal(mb_pipe_next_deadline(&fx.pipe), 1000);
    assert_int_equal(mb_pipe_expire(&fx.pipe, fx.items, 1001), 2);
    assert_int_equal(fx.items[0].err, ETIMEDOUT);
    assert_int_equal(fx.items[1].err, ETIMEDOUT);
    assert_false(fx.items[2].done);
    assert_int_equal(mb_pipe_next_deadline(&fx.pipe), 1002);
    /* Request 0's answer comes late: dropped and counted, the values untouched. */
    fx.dest[0][0] = 0xDEAD;
    assert_int_equal(mb_pipe_feed(&fx.pipe, fx.items, a, answer(a, 100, 0)), 0);
    assert_int_equal(fx.dest[0][0], 0xDEAD);
    assert_int_equal(fx.items[0].err, ETIMEDOUT);
    assert_int_equal(fx.pipe.late_dropped, 1);
    assert_int_equal(fx.pipe.unknown_dropped, 0);
    assert_string_equal(fx.pipe.misbehaved, "");
    assert_non_null(strstr(fx.pipe.note, "late answer (transaction id 100"));
    /* The others still match. */
    assert_int_equal(mb_pipe_feed(&fx.pipe, fx.items, a, answer(a, 102, 2)), 0);
    assert_read(2);
    /* A late id is remembered past the batch. */
    mb_pipe_begin(&fx.pipe);
    assert_int_equal(mb_pipe_feed(&fx.pipe, fx.items, a, answer(a, 101, 1)), 0);
    assert_int_equal(fx.pipe.late_dropped, 2);
    assert_string_equal(fx.pipe.misbehaved, "");
}

static void test_unknown_id(void **state)
{
    (void)state;
    uint8_t a[64];
    assert_int_equal(mb_pipe_feed(&fx.pipe, fx.items, a, answer(a, 7, 0)), 0);
    assert_int_equal(fx.pipe.unknown_dropped, 1);
    assert_non_null(strstr(fx.pipe.misbehaved, "transaction id 7"));
    for (uint32_t k = 0; k < N; k++)
        assert_false(fx.items[k].done);
}

/* A device that answers one request twice (a second answer for an answered id). */
static void test_repeated_id(void **state)
{
    (void)state;
    uint8_t a[64];
    assert_int_equal(mb_pipe_feed(&fx.pipe, fx.items, a, answer(a, 100, 0)), 0);
    assert_read(0);
    assert_int_equal(mb_pipe_feed(&fx.pipe, fx.items, a, answer(a, 100, 9)), 0);
    assert_int_equal(fx.dest[0][0], 0); /* the first answer stays */
    assert_int_equal(fx.pipe.unknown_dropped, 1);
    assert_non_null(strstr(fx.pipe.misbehaved, "transaction id 100"));
}

/* An answer whose byte count does not fit its request: the request fails, and since the header
 * and the PDU then disagree about where the next frame starts, the stream is out of step. */
static void test_wrong_length_is_out_of_step(void **state)
{
    (void)state;
    const uint8_t bad[] = {0, 101, 0, 0, 0, 5, 1, 3, 2, 0, 1};
    assert_int_equal(mb_pipe_feed(&fx.pipe, fx.items, bad, sizeof bad), -1);
    assert_true(fx.items[1].done);
    assert_int_equal(fx.items[1].err, EMBBADDATA);
}

static void test_unframeable(void **state)
{
    (void)state;
    /* Unknown id and a length field no frame has. */
    const uint8_t bad[] = {0x12, 0x34, 0, 0, 0xFF, 0xFF, 1, 3};
    assert_int_equal(mb_pipe_feed(&fx.pipe, fx.items, bad, sizeof bad), -1);
    /* A known id with a function code the plugin never sends. */
    setup(NULL);
    const uint8_t badfc[] = {0, 100, 0, 0, 0, 3, 1, 0x2B, 0};
    assert_int_equal(mb_pipe_feed(&fx.pipe, fx.items, badfc, sizeof badfc), -1);
}

static void test_full(void **state)
{
    (void)state;
    uint8_t req[MB_MBAP_MAX_ADU];
    size_t n = mb_mbap_read_request(req, 1, 1, 3, 0, 1);
    for (uint32_t k = N; k < MB_PIPE_MAX; k++)
        assert_true(mb_pipe_add(&fx.pipe, 0, req, n, 0) >= 0);
    assert_int_equal(mb_pipe_add(&fx.pipe, 0, req, n, 0), -1);
    assert_int_equal(mb_pipe_add(&fx.pipe, 0, req, 3, 0), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_any_order, setup),
        cmocka_unit_test_setup(test_pieces, setup),
        cmocka_unit_test_setup(test_exception_kept, setup),
        cmocka_unit_test_setup(test_timeout_then_late_answer, setup),
        cmocka_unit_test_setup(test_unknown_id, setup),
        cmocka_unit_test_setup(test_repeated_id, setup),
        cmocka_unit_test_setup(test_wrong_length_is_out_of_step, setup),
        cmocka_unit_test_setup(test_unframeable, setup),
        cmocka_unit_test_setup(test_full, setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
