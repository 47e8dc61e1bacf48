/* Garbage on the wire, against every transport: wrong transaction id, wrong length, wrong
 * function, wrong unit, bad CRC, a truncated frame, bytes after the frame, noise, silence, and
 * single flipped bytes anywhere. The plugin must not crash, must never publish a wrong value,
 * must mark the tags bad with a fitting reason, and must read correctly at the next poll. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "harness.h"

static const uint16_t regs[] = {0x1111, 0x2222, 0x3333, 0x4444};

/* a, b and c are input registers: the first request of a poll (tables are read in the order
 * coil, discrete input, input, holding), which the faults hit. `after` is a holding register,
 * the second request. */
struct tags {
    uint32_t a, b, c, after;
};

static struct tags setup_tags(struct fixture *fx)
{
    struct mbt_config *c = &fx->cfg;
    set_regs(fx->srv, 1, 0, regs, 4);
    set_regs(fx->srv, 0, 7, regs, 1);
    /* Every failure must show at once: no retry, no back-off. The timeout is what a silent fault
     * costs, and what a good answer may take on a loaded machine: with less, a good answer that
     * comes late fails the poll after a fault, and then (RTU has no transaction id) the next. */
    c->dp[0].retries = 0;
    c->dp[0].backoff_max_ms = 0;
    c->cp.timeout_ms = 1000;
    c->cp.byte_timeout_ms = 50;
    struct tags t;
    t.a = add_tag(c, "a", MB_P_TABLE_INPUT, 0, -1, -1, false);
    t.b = add_tag(c, "b", MB_P_TABLE_INPUT, 1, MB_P_TYPE_UINT32, -1, false);
    t.c = add_tag(c, "c", MB_P_TABLE_INPUT, 3, -1, -1, false);
    t.after = add_tag(c, "after", MB_P_TABLE_HOLDING, 7, -1, -1, false);
    create_and_open(fx);
    return t;
}

/* A good sample must carry exactly the server's value. */
static void assert_never_wrong(const struct fixture *fx, const struct tags *t)
{
    const struct ib_sample *sm = fx->samples;
    if (sm[t->a].quality == IB_Q_GOOD)
        assert_true(sm[t->a].value.v.u == 0x1111);
    if (sm[t->b].quality == IB_Q_GOOD)
        assert_true(sm[t->b].value.v.u == 0x22223333u);
    if (sm[t->c].quality == IB_Q_GOOD)
        assert_true(sm[t->c].value.v.u == 0x4444);
    if (sm[t->after].quality == IB_Q_GOOD)
        assert_true(sm[t->after].value.v.u == 0x1111);
    for (int i = 0; i < 4; i++)
        if (sm[i].quality != IB_Q_GOOD)
            assert_int_equal(sm[i].value.type, IB_V_NONE);
}

static void assert_all_good(struct fixture *fx, const struct tags *t, const char *after)
{
    int rc = read_group(fx);
    if (rc != 0)
        fail_msg("the poll after %s failed: %d (reason %u)", after, rc, fx->samples[t->a].reason);
    for (int i = 0; i < 4; i++)
        if (fx->samples[i].quality != IB_Q_GOOD)
            fail_msg("after %s: tag %d bad (reason %u)", after, i, fx->samples[i].reason);
    assert_never_wrong(fx, t);
}

struct expectation {
    enum mbt_fault fault;
    const char *name;
    uint8_t reasons[3]; /* any of these (0: unused) */
    const char *log;    /* NULL, or what a log line of the poll must say */
};

static void run_faults(struct fixture *fx, const struct expectation *ex, size_t n)
{
    struct tags t = setup_tags(fx);
    assert_all_good(fx, &t, "start");
    for (size_t i = 0; i < n; i++) {
        mbt_server_fault(fx->srv, ex[i].fault, 1);
        unsigned logs = fx->fake.n_logs;
        int rc = read_group(fx);
        if (ex[i].log != NULL && mbt_log_count(&fx->fake, logs, ex[i].log, NULL) == 0)
            fail_msg("%s: no log line says '%s'", ex[i].name, ex[i].log);
        assert_never_wrong(fx, &t);
        uint8_t r = fx->samples[t.a].reason;
        if (rc == 0 || fx->samples[t.a].quality != IB_Q_BAD ||
            (r != ex[i].reasons[0] && r != ex[i].reasons[1] && r != ex[i].reasons[2]))
            fail_msg("%s: read_group %d, tag a quality %u reason %u", ex[i].name, rc,
                     fx->samples[t.a].quality, r);
        /* The whole request is bad, not only its first tag. */
        assert_int_equal(fx->samples[t.b].quality, IB_Q_BAD);
        assert_int_equal(fx->samples[t.c].quality, IB_Q_BAD);
        /* The request after it, in the same poll, is read on a link already recovered; only
         * after a timeout it is skipped, since a device that does not answer its first request
         * is not waited for again in the same poll (poll.c). */
        if (r != IB_R_TIMEOUT && fx->samples[t.after].quality != IB_Q_GOOD)
            fail_msg("%s: the request after it failed too (reason %u)", ex[i].name,
                     fx->samples[t.after].reason);
        assert_all_good(fx, &t, ex[i].name);
    }
}

#define P IB_R_PROTOCOL
#define T IB_R_TIMEOUT
#define C IB_R_CRC

static void test_tcp(void **state)
{
    static const struct expectation ex[] = {
        {MBT_WRONG_TID, "wrong transaction id", {P}, "expected"},
        {MBT_WRONG_LENGTH, "wrong length", {P}, "byte count 6, expected 8 for 4 registers"},
        /* The case: the header says 46 bytes follow, the PDU holds 10 (11 with the
         * unit id). Refused at once, not published, and said. */
        {MBT_LENGTH_FIELD,
         "MBAP length field",
         {P},
         "the MBAP header says 46 bytes follow, 11 came"},
        {MBT_WRONG_FUNCTION,
         "wrong function code",
         {P},
         "function 0x03 in answer to function 0x04"},
        {MBT_WRONG_UNIT, "wrong unit id", {P}, "unit 0 answered, expected unit 1"},
        {MBT_TRUNCATED, "truncated frame", {T}},
        {MBT_TRAILING, "bytes after the frame", {P}},
        {MBT_GARBAGE, "noise", {P, T}},
        {MBT_SILENT, "no answer", {T}},
    };
    run_faults(*state, ex, sizeof(ex) / sizeof(ex[0]));
}

static const struct expectation rtu_ex[] = {
    {MBT_WRONG_LENGTH, "wrong length", {P}, "byte count 6, expected 8 for 4 registers"},
    /* RTU's only length field is the byte count: 40 more than came is a frame that never ends. */
    {MBT_LENGTH_FIELD, "byte count past the frame", {T, P, C}, NULL},
    {MBT_WRONG_FUNCTION, "wrong function code", {P}},
    {MBT_WRONG_UNIT, "wrong unit id", {P}},
    {MBT_BAD_CRC, "bad CRC", {C}},
    {MBT_WRONG_VALUE_CRC, "a changed value", {C}},
    {MBT_TRUNCATED, "truncated frame", {T}},
    {MBT_TRAILING, "bytes after the frame", {P}},
    {MBT_GARBAGE, "noise", {P, C, T}},
    {MBT_SILENT, "no answer", {T}},
};

static void test_rtu_over_tcp(void **state)
{
    run_faults(*state, rtu_ex, sizeof(rtu_ex) / sizeof(rtu_ex[0]));
}

static void test_rtu_serial(void **state)
{
    run_faults(*state, rtu_ex, sizeof(rtu_ex) / sizeof(rtu_ex[0]));
}

/* Every single byte of an RTU answer flipped in turn (with a few patterns): CRC-16 catches each,
 * so no flip may ever turn into a good sample with another value. */
static void flip_every_byte(struct fixture *fx)
{
    struct tags t = setup_tags(fx);
    static const uint8_t xors[] = {0x01, 0x80, 0xFF};
    /* The input register answer is 3 + 8 + 2 = 13 bytes. */
    for (unsigned pos = 0; pos < 13; pos++) {
        for (size_t k = 0; k < sizeof(xors); k++) {
            pthread_mutex_lock(&fx->srv->lock);
            fx->srv->flip_pos = pos;
            fx->srv->flip_xor = xors[k];
            pthread_mutex_unlock(&fx->srv->lock);
            mbt_server_fault(fx->srv, MBT_FLIP, 1);
            int rc = read_group(fx);
            assert_never_wrong(fx, &t);
            if (rc == 0 || fx->samples[t.a].quality != IB_Q_BAD)
                fail_msg("byte %u ^ 0x%02X: read_group %d, quality %u", pos, xors[k], rc,
                         fx->samples[t.a].quality);
            char what[64];
            snprintf(what, sizeof(what), "byte %u ^ 0x%02X", pos, xors[k]);
            assert_all_good(fx, &t, what);
        }
    }
}

static void test_rtu_over_tcp_flips(void **state)
{
    flip_every_byte(*state);
}

static void test_rtu_serial_flips(void **state)
{
    flip_every_byte(*state);
}

static int setup_tcp(void **state)
{
    *state = mbt_fixture_new(MBT_TCP);
    return 0;
}

static int setup_rtu_tcp(void **state)
{
    *state = mbt_fixture_new(MBT_RTU_TCP);
    return 0;
}

static int setup_pty(void **state)
{
    *state = mbt_fixture_new(MBT_RTU_PTY);
    return 0;
}

int main(int argc, char **argv)
{
    mbt_load_plugin(argc, argv);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_tcp, setup_tcp, mbt_teardown),
        cmocka_unit_test_setup_teardown(test_rtu_over_tcp, setup_rtu_tcp, mbt_teardown),
        cmocka_unit_test_setup_teardown(test_rtu_serial, setup_pty, mbt_teardown),
        cmocka_unit_test_setup_teardown(test_rtu_over_tcp_flips, setup_rtu_tcp, mbt_teardown),
        cmocka_unit_test_setup_teardown(test_rtu_serial_flips, setup_pty, mbt_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
