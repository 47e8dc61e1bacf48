/* The store reads the sample stores of tests/data/store/ (written by the 0.1 format, commit
 * d153bda; docs/store.md "Sample files"): whole, a torn tail, a damaged CRC, a damaged segment
 * header, a checkpoint of garbage and a junk file named like a segment. For each: exactly which
 * records come back, byte for byte, what is counted as damaged, and what is logged. An upgrade
 * keeps the state directory: every later version must pass this unchanged. */
#include <fcntl.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "log.h"
#include "record.h"
#include "store.h"
#include "store_format.h"

struct sample {
    char dir[64];
    char log[80];
    struct ib_store *s;
};

/* Copy sample `name` to a fresh directory (the store repairs what it opens) and open it with
 * stderr captured. */
static struct ib_store *open_sample(struct sample *x, const char *name)
{
    const char *root = getenv("IB_TEST_STORE_SAMPLES");
    assert_non_null(root);
    snprintf(x->dir, sizeof x->dir, "/tmp/ib-test-samples-XXXXXX");
    assert_non_null(mkdtemp(x->dir));
    char cmd[512];
    snprintf(cmd, sizeof cmd, "cp '%s/%s'/* '%s'/ && chmod 600 '%s'/*", root, name, x->dir, x->dir);
    assert_int_equal(system(cmd), 0);
    snprintf(x->log, sizeof x->log, "%s.log", x->dir);
    fflush(stderr);
    int saved = dup(STDERR_FILENO);
    int fd = open(x->log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(saved >= 0 && fd >= 0);
    dup2(fd, STDERR_FILENO);
    close(fd);
    /* The records were written in 2026: an age limit of 100 years keeps them. */
    struct ib_store_cfg cfg = {.path = x->dir,
                               .max_bytes = 64 << 20,
                               .max_age_ms = 100LL * 365 * 86400000,
                               .fsync = IB_FSYNC_BATCH,
                               .fsync_interval_ms = 1000,
                               .fsync_bytes = 1 << 20,
                               .memory_max_bytes = 1 << 20};
    x->s = ib_store_open(&cfg);
    fflush(stderr);
    dup2(saved, STDERR_FILENO);
    close(saved);
    assert_non_null(x->s);
    return x->s;
}

static char *log_text(const struct sample *x)
{
    static char buf[16384];
    FILE *f = fopen(x->log, "r");
    assert_non_null(f);
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

static void close_sample(struct sample *x)
{
    ib_store_close(x->s);
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf '%s' '%s'", x->dir, x->log);
    assert_int_equal(system(cmd), 0);
}

/* Every record comes back in order with exactly the bytes it was written with, and nothing
 * else: the seqs in want[0..n). */
static void expect_records(struct ib_store *s, const uint64_t *want, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        struct ib_store_rec r;
        assert_true(ib_store_next(s, 1000, &r, NULL));
        assert_int_equal(r.seq, want[i]);
        assert_string_equal(r.topic, "plant/line1/meter");
        char p[96];
        int len = snprintf(p, sizeof p, "{\"seq\":%" PRIu64 ",\"i\":%" PRIu64 ",\"v\":\"sample\"}",
                           want[i], want[i]);
        assert_int_equal(r.len, (size_t)len);
        assert_memory_equal(r.payload, p, r.len);
    }
    struct ib_store_rec r;
    assert_false(ib_store_next(s, 1000, &r, NULL));
}

static size_t range(uint64_t *out, uint64_t lo, uint64_t hi, uint64_t skip)
{
    size_t n = 0;
    for (uint64_t q = lo; q <= hi; q++)
        if (q != skip)
            out[n++] = q;
    return n;
}

static void expect_stats(struct ib_store *s, uint64_t queued, uint64_t damaged, uint64_t last)
{
    struct ib_store_stats st;
    ib_store_stats(s, &st);
    assert_int_equal(st.queued, queued);
    assert_int_equal(st.damaged, damaged);
    assert_int_equal(st.last_seq, last);
}

/* Two segments (1..10, 11..20), a clean checkpoint with 1..3 acknowledged. */
static void whole(void **state)
{
    (void)state;
    struct sample x;
    struct ib_store *s = open_sample(&x, "whole");
    expect_stats(s, 17, 0, 20);
    /* What is waiting: the 17 frames not acknowledged (1,224 bytes), not the segments' bytes
     * (1,546 with the headers and the 3 acknowledged records). */
    assert_non_null(strstr(log_text(&x), "17 records (1.2 KiB) waiting"));
    assert_null(strstr(log_text(&x), "damaged"));
    uint64_t w[32];
    expect_records(s, w, range(w, 4, 20, 0));
    assert_int_equal(ib_store_push(s, "t", ib_record_seq_head, NULL, "}", 1), 21);
    close_sample(&x);
}

/* Record 20 half written: cut off, counted, the numbers go on after it. */
static void torn(void **state)
{
    (void)state;
    struct sample x;
    struct ib_store *s = open_sample(&x, "torn");
    expect_stats(s, 16, 1, 20);
    const char *log = log_text(&x);
    assert_non_null(strstr(log, "seg-000000000000000b.ibq: 11 damaged bytes in 1 place (a torn "
                                "tail cut off): 1 records discarded"));
    uint64_t w[32];
    expect_records(s, w, range(w, 4, 19, 0));
    close_sample(&x);
}

/* A flipped byte inside record 5: that record is discarded and counted, 6 is found again. */
static void badcrc(void **state)
{
    (void)state;
    struct sample x;
    struct ib_store *s = open_sample(&x, "badcrc");
    expect_stats(s, 16, 1, 20);
    assert_non_null(strstr(log_text(&x), "seg-0000000000000001.ibq: 73 damaged bytes in 1 place: "
                                         "1 records discarded"));
    uint64_t w[32];
    expect_records(s, w, range(w, 4, 20, 5));
    close_sample(&x);
}

/* A flipped byte in the first segment's header: its records are intact and kept. */
static void badheader(void **state)
{
    (void)state;
    struct sample x;
    struct ib_store *s = open_sample(&x, "badheader");
    expect_stats(s, 17, 0, 20);
    const char *log = log_text(&x);
    assert_non_null(strstr(log, "seg-0000000000000001.ibq: its header was damaged (bad media?); "
                                "rewritten, its 10 intact records are kept"));
    assert_null(strstr(log, "discarded"));
    uint64_t w[32];
    expect_records(s, w, range(w, 4, 20, 0));
    close_sample(&x);
}

/* No valid checkpoint slot: nothing is known to be acknowledged, everything is sent again; the
 * numbers continue after the highest on disk. */
static void badckpt(void **state)
{
    (void)state;
    struct sample x;
    struct ib_store *s = open_sample(&x, "badckpt");
    expect_stats(s, 20, 0, 20);
    assert_non_null(strstr(log_text(&x), "/checkpoint is damaged (no valid slot)"));
    uint64_t w[32];
    expect_records(s, w, range(w, 1, 20, 0));
    close_sample(&x);
}

/* 5 KiB of garbage named seg-0000000000000005.ibq beside the two segments: not a segment the
 * store made (seg-1 holds 1..10), so nothing is counted as lost; it is logged and deleted. */
static void junk(void **state)
{
    (void)state;
    struct sample x;
    struct ib_store *s = open_sample(&x, "junk");
    expect_stats(s, 17, 0, 20);
    const char *log = log_text(&x);
    assert_non_null(strstr(log, "seg-0000000000000005.ibq is not a segment of this store (5.0 KiB "
                                "without a valid header or any intact record"));
    assert_non_null(strstr(log, "no record was lost"));
    assert_null(strstr(log, "discarded"));
    uint64_t w[32];
    expect_records(s, w, range(w, 4, 20, 0));
    close_sample(&x);
}

static size_t read_sample(const char *name, const char *file, unsigned char *buf, size_t cap)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s/%s", getenv("IB_TEST_STORE_SAMPLES"), name, file);
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    size_t n = fread(buf, 1, cap, f);
    fclose(f);
    return n;
}

/* The pure readers (store_format.h) over the sample bytes: the whole segment gives its 10
 * records, 3 of them at or below acked 3; the checkpoint its newer slot; the garbage one
 * nothing. Then every prefix and 20,000 single-byte changes of both files: no read outside the
 * buffer (under ASan), and counts that add up. */
static void pure_readers(void **state)
{
    (void)state;
    unsigned char seg[4096], ck[512], b[4096];
    size_t n = read_sample("whole", "seg-0000000000000001.ibq", seg, sizeof seg);
    struct ib_store_scan r;
    assert_int_equal(ib_store_scan_segment(seg, n, 1, 3, MAX_RECORD, &r, NULL, NULL), 0);
    assert_int_equal(r.n, 10);
    assert_int_equal(r.done, 3);
    assert_int_equal(r.first, 1);
    assert_int_equal(r.last, 10);
    assert_int_equal(r.valid_end, n);
    assert_false(r.header_bad);
    size_t cn = read_sample("whole", "checkpoint", ck, sizeof ck);
    struct ib_store_ckpt c;
    assert_int_equal(ib_store_ckpt_parse(ck, cn, &c), 2);
    assert_true(c.clean);
    assert_int_equal(c.acked, 3);
    assert_int_equal(c.next_seq, 21);
    size_t gn = read_sample("badckpt", "checkpoint", b, sizeof b);
    assert_int_equal(ib_store_ckpt_parse(b, gn, &c), 0);
    for (size_t len = 0; len <= n; len++) {
        memcpy(b, seg, len);
        ib_store_scan_segment(b, len, 1, 0, MAX_RECORD, &r, NULL, NULL);
        assert_true(r.valid_end <= (len < SEG_HDR ? SEG_HDR : len) && r.n <= 10);
    }
    uint32_t x = 1;
    for (int i = 0; i < 20000; i++) {
        memcpy(b, seg, n);
        x = x * 1103515245u + 12345u;
        b[(x >> 8) % n] ^= (unsigned char)(1u << (x & 7));
        ib_store_scan_segment(b, n, 1, 0, MAX_RECORD, &r, NULL, NULL);
        assert_true(r.n + r.bad_records <= 10 && r.valid_end <= n);
        memcpy(b, ck, cn);
        b[(x >> 8) % cn] ^= (unsigned char)(1u << (x & 7));
        ib_store_ckpt_parse(b, cn, &c);
    }
}

int main(void)
{
    ib_log_init(IB_LOG_INFO);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(whole),        cmocka_unit_test(torn),    cmocka_unit_test(badcrc),
        cmocka_unit_test(badheader),    cmocka_unit_test(badckpt), cmocka_unit_test(junk),
        cmocka_unit_test(pure_readers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
