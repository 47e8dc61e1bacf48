/* The durable store (its CRC32C is tested in test_crc32c.c): size/duration units, sequence order,
 * ack/nack/rewind, live records before the backlog, sequence numbers that survive a reopen,
 * a torn tail and a flipped byte found by their CRC and counted, and the byte bound that drops
 * (and counts) the oldest segment. */
#include <dirent.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "log.h"
#include "config.h"
#include "record.h"
#include "store.h"
#include "units.h"

static void units(void **state)
{
    (void)state;
    int64_t v;
    assert_int_equal(ib_units_parse_size("1GiB", &v), 0);
    assert_int_equal(v, 1LL << 30);
    assert_int_equal(ib_units_parse_size(" 512 MiB ", &v), 0);
    assert_int_equal(v, 512LL << 20);
    assert_int_equal(ib_units_parse_size("10MB", &v), 0);
    assert_int_equal(v, 10000000);
    assert_int_equal(ib_units_parse_size("1048576", &v), 0);
    assert_int_equal(v, 1048576);
    assert_int_equal(ib_units_parse_size("64KiB", &v), 0);
    assert_int_equal(v, 65536);
    assert_int_equal(ib_units_parse_size("1.5GiB", &v), -1);
    assert_int_equal(ib_units_parse_size("GiB", &v), -1);
    assert_int_equal(ib_units_parse_size("1 gib", &v), -1);
    assert_int_equal(ib_units_parse_size("-1", &v), -1);
    assert_int_equal(ib_units_parse_size("99999999999TiB", &v), -1);
    assert_int_equal(ib_units_parse_duration_ms("7d", &v), 0);
    assert_int_equal(v, 7LL * 86400000);
    assert_int_equal(ib_units_parse_duration_ms("12h", &v), 0);
    assert_int_equal(v, 12LL * 3600000);
    assert_int_equal(ib_units_parse_duration_ms("30min", &v), 0);
    assert_int_equal(v, 1800000);
    assert_int_equal(ib_units_parse_duration_ms("500ms", &v), 0);
    assert_int_equal(v, 500);
    assert_int_equal(ib_units_parse_duration_ms("3600", &v), -1); /* no unit: refused */
    assert_int_equal(ib_units_parse_duration_ms("1y", &v), -1);
}

/* The encoder's head: {"seq":N exactly as the store wrote it before 0.2, for every width of N;
 * too small a buffer gives nothing. */
static void seq_head(void **state)
{
    (void)state;
    char b[IB_STORE_HEAD_MAX];
    assert_int_equal(ib_record_seq_head(NULL, 0, b, sizeof b), 8);
    assert_memory_equal(b, "{\"seq\":0", 8);
    assert_int_equal(ib_record_seq_head(NULL, 1234567, b, sizeof b), 14);
    assert_memory_equal(b, "{\"seq\":1234567", 14);
    assert_int_equal(ib_record_seq_head(NULL, UINT64_MAX, b, sizeof b), 27);
    assert_memory_equal(b, "{\"seq\":18446744073709551615", 27);
    assert_int_equal(ib_record_seq_head(NULL, 10, b, 8), 0);
}

/* ---- store helpers --------------------------------------------------------------------------- */

struct fixture {
    char dir[64];
    struct ib_store_cfg cfg;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/ib-test-store-XXXXXX");
    if (!mkdtemp(f->dir))
        return -1;
    f->cfg = (struct ib_store_cfg){.path = f->dir,
                                   .max_bytes = 64 << 20,
                                   .max_age_ms = 7LL * 86400000,
                                   .fsync = IB_FSYNC_BATCH,
                                   .fsync_interval_ms = 1000,
                                   .fsync_bytes = 1 << 20,
                                   .replay_rate = 0,
                                   .memory_max_bytes = 1 << 20};
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
    int rc = system(cmd);
    free(f);
    return rc == 0 ? 0 : -1;
}

static void push_n(struct ib_store *s, int n)
{
    char body[64];
    for (int i = 0; i < n; i++) {
        int len = snprintf(body, sizeof body, ",\"i\":%d}", i);
        assert_true(ib_store_push(s, "t/x", ib_record_seq_head, NULL, body, (size_t)len) > 0);
    }
}

static uint64_t next_seq(struct ib_store *s)
{
    struct ib_store_rec r;
    if (!ib_store_next(s, 1000, &r, NULL))
        return 0;
    return r.seq;
}

/* The path of the only (or first) segment file. */
static void first_segment(const char *dir, char *out, size_t len)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    struct dirent *de;
    char best[300] = "";
    while ((de = readdir(d)))
        if (strncmp(de->d_name, "seg-", 4) == 0 && (!*best || strcmp(de->d_name, best) < 0))
            snprintf(best, sizeof best, "%s", de->d_name);
    closedir(d);
    assert_true(*best);
    snprintf(out, len, "%s/%s", dir, best);
}

/* Offsets of the frames of a segment file, from its own framing (docs/store.md). */
static int frames(const char *path, long *offs, int max)
{
    FILE *fp = fopen(path, "rb");
    assert_non_null(fp);
    int n = 0;
    long off = 32;
    unsigned char h[8];
    while (n < max && fseek(fp, off, SEEK_SET) == 0 && fread(h, 1, 8, fp) == 8) {
        uint32_t len =
            (uint32_t)h[4] | (uint32_t)h[5] << 8 | (uint32_t)h[6] << 16 | (uint32_t)h[7] << 24;
        offs[n++] = off;
        off += 8 + (long)len;
    }
    fclose(fp);
    return n;
}

/* ---- store tests ----------------------------------------------------------------------------- */

static void order_ack_rewind(void **state)
{
    struct fixture *f = *state;
    struct ib_store *s = ib_store_open(&f->cfg);
    assert_non_null(s);
    assert_int_equal(ib_store_push(s, "t/a", ib_record_seq_head, NULL, ",\"x\":1}", 7), 1);
    assert_int_equal(ib_store_push(s, "t/b", ib_record_seq_head, NULL, ",\"x\":2}", 7), 2);
    struct ib_store_rec r;
    assert_true(ib_store_next(s, 10, &r, NULL));
    assert_int_equal(r.seq, 1);
    assert_string_equal(r.topic, "t/a");
    assert_int_equal(r.len, strlen("{\"seq\":1,\"x\":1}"));
    assert_memory_equal(r.payload, "{\"seq\":1,\"x\":1}", r.len);
    assert_true(ib_store_next(s, 10, &r, NULL));
    assert_int_equal(r.seq, 2);
    assert_false(ib_store_next(s, 10, &r, NULL)); /* nothing unsent */
    ib_store_ack(s, 1);
    ib_store_rewind(s); /* connection lost: 2 is sent again */
    assert_true(ib_store_next(s, 10, &r, NULL));
    assert_int_equal(r.seq, 2);
    assert_memory_equal(r.payload, "{\"seq\":2,\"x\":2}", r.len);
    ib_store_ack(s, 2);
    struct ib_store_stats st;
    ib_store_stats(s, &st);
    assert_int_equal(st.queued, 0);
    assert_int_equal(st.acked, 2);
    assert_int_equal(st.last_seq, 2);
    ib_store_close(s);
}

static void window_and_nack(void **state)
{
    struct fixture *f = *state;
    struct ib_store *s = ib_store_open(&f->cfg);
    assert_non_null(s);
    push_n(s, 5);
    struct ib_store_rec r;
    assert_true(ib_store_next(s, 2, &r, NULL));
    assert_true(ib_store_next(s, 2, &r, NULL));
    assert_false(ib_store_next(s, 2, &r, NULL)); /* window full */
    ib_store_nack(s, 1);                         /* 1 and 2 go back, in order */
    assert_true(ib_store_next(s, 2, &r, NULL));
    assert_int_equal(r.seq, 1);
    assert_true(ib_store_next(s, 2, &r, NULL));
    assert_int_equal(r.seq, 2);
    ib_store_close(s);
}

static void count_notify(void *ud)
{
    (*(int *)ud)++;
}

/* Issue 21: an ack wakes the sender only when it waits for one (the window was full, or it
 * flushes before stopping); a push always does. */
static void ack_wakes_only_a_waiting_sender(void **state)
{
    struct fixture *f = *state;
    struct ib_store *s = ib_store_open(&f->cfg);
    assert_non_null(s);
    int woken = 0;
    ib_store_set_notify(s, count_notify, &woken);
    push_n(s, 3);
    assert_int_equal(woken, 3);
    struct ib_store_rec r;
    assert_true(ib_store_next(s, 2, &r, NULL));
    ib_store_ack(s, r.seq); /* the sender never found the window full: nobody waits */
    assert_int_equal(woken, 3);
    assert_true(ib_store_next(s, 2, &r, NULL));
    assert_true(ib_store_next(s, 2, &r, NULL));
    assert_false(ib_store_next(s, 2, &r, NULL)); /* window full: the sender waits */
    ib_store_ack(s, 2);
    assert_int_equal(woken, 4);
    ib_store_ack(s, 3); /* the window was no longer full */
    assert_int_equal(woken, 4);
    push_n(s, 1);
    assert_int_equal(woken, 5);
    assert_true(ib_store_next(s, 2, &r, NULL));
    ib_store_wake_on_ack(s); /* stopping: it waits for the last ack */
    ib_store_ack(s, r.seq);
    assert_int_equal(woken, 6);
    ib_store_set_notify(s, NULL, &woken);
    ib_store_close(s);
}

/* Records queued before the connection are the backlog; records queued after it go first. */
static void live_before_backlog(void **state)
{
    struct fixture *f = *state;
    struct ib_store *s = ib_store_open(&f->cfg);
    assert_non_null(s);
    push_n(s, 3);
    assert_int_equal(next_seq(s), 1); /* connected: backlog 1..3 */
    push_n(s, 1);                     /* live: 4 */
    assert_int_equal(next_seq(s), 4);
    assert_int_equal(next_seq(s), 2);
    push_n(s, 1);
    assert_int_equal(next_seq(s), 5);
    assert_int_equal(next_seq(s), 3);
    assert_int_equal(next_seq(s), 0);
    /* Acked live records are not sent again after a reconnect; unacked backlog ones are. */
    ib_store_ack(s, 1);
    ib_store_ack(s, 4);
    ib_store_ack(s, 2);
    ib_store_ack(s, 5);
    ib_store_rewind(s); /* 3 was in flight */
    assert_int_equal(next_seq(s), 3);
    assert_int_equal(next_seq(s), 0);
    ib_store_ack(s, 3);
    struct ib_store_stats st;
    ib_store_stats(s, &st);
    assert_int_equal(st.queued, 0);
    ib_store_close(s);
}

/* A clean stop and a reopen: unacknowledged records come back, numbers continue. */
static void reopen_continues(void **state)
{
    struct fixture *f = *state;
    struct ib_store *s = ib_store_open(&f->cfg);
    assert_non_null(s);
    push_n(s, 5);
    assert_int_equal(next_seq(s), 1);
    assert_int_equal(next_seq(s), 2);
    ib_store_ack(s, 1);
    ib_store_ack(s, 2);
    ib_store_close(s);

    s = ib_store_open(&f->cfg);
    assert_non_null(s);
    struct ib_store_stats st;
    ib_store_stats(s, &st);
    assert_int_equal(st.queued, 3);
    assert_int_equal(st.last_seq, 5);
    assert_int_equal(next_seq(s), 3);
    assert_int_equal(ib_store_push(s, "t/x", ib_record_seq_head, NULL, "}", 1), 6);
    assert_int_equal(next_seq(s), 6);
    assert_int_equal(next_seq(s), 4);
    assert_int_equal(next_seq(s), 5);
    ib_store_close(s);
}

/* A tail cut in the middle of a record (a crash while writing): cut off, counted, the rest
 * delivered; the numbering does not reuse the lost number. */
static void torn_tail(void **state)
{
    struct fixture *f = *state;
    struct ib_store *s = ib_store_open(&f->cfg);
    push_n(s, 10);
    ib_store_close(s);
    char seg[400];
    first_segment(f->dir, seg, sizeof seg);
    long offs[16];
    assert_int_equal(frames(seg, offs, 16), 10);
    assert_int_equal(truncate(seg, offs[9] + 11), 0); /* record 10 half written */

    s = ib_store_open(&f->cfg);
    assert_non_null(s);
    struct ib_store_stats st;
    ib_store_stats(s, &st);
    assert_int_equal(st.damaged, 1);
    assert_int_equal(st.queued, 9);
    for (uint64_t i = 1; i <= 9; i++)
        assert_int_equal(next_seq(s), i);
    assert_int_equal(next_seq(s), 0);
    assert_int_equal(ib_store_push(s, "t/x", ib_record_seq_head, NULL, "}", 1), 11);
    ib_store_close(s);
    struct stat sb;
    assert_int_equal(stat(seg, &sb), 0);
    assert_int_equal(sb.st_size, offs[9]); /* the torn bytes are gone from the file */
}

/* A flipped byte inside record 4: that record is discarded and counted, the frames after it
 * are found again and delivered. */
static void flipped_byte(void **state)
{
    struct fixture *f = *state;
    struct ib_store *s = ib_store_open(&f->cfg);
    push_n(s, 8);
    ib_store_close(s);
    char seg[400];
    first_segment(f->dir, seg, sizeof seg);
    long offs[16];
    assert_int_equal(frames(seg, offs, 16), 8);
    int fd = open(seg, O_RDWR);
    unsigned char c;
    assert_int_equal(pread(fd, &c, 1, offs[3] + 40), 1);
    c ^= 0x20;
    assert_int_equal(pwrite(fd, &c, 1, offs[3] + 40), 1);
    /* And the length field of record 6: the scan must find record 7 by its CRC. */
    assert_int_equal(pread(fd, &c, 1, offs[5] + 5), 1);
    c ^= 0x01;
    assert_int_equal(pwrite(fd, &c, 1, offs[5] + 5), 1);
    close(fd);

    s = ib_store_open(&f->cfg);
    assert_non_null(s);
    struct ib_store_stats st;
    ib_store_stats(s, &st);
    assert_int_equal(st.damaged, 2);
    assert_int_equal(st.queued, 6);
    uint64_t want[] = {1, 2, 3, 5, 7, 8};
    for (size_t i = 0; i < 6; i++)
        assert_int_equal(next_seq(s), want[i]);
    assert_int_equal(next_seq(s), 0);
    ib_store_close(s);
    /* Repaired on disk: a second open finds nothing damaged. */
    s = ib_store_open(&f->cfg);
    ib_store_stats(s, &st);
    assert_int_equal(st.damaged, 0);
    assert_int_equal(st.queued, 6);
    ib_store_close(s);
}

/* Full: the oldest segment goes, every record in it is counted, the disk use stays bounded. */
static void bounded_drops_oldest(void **state)
{
    struct fixture *f = *state;
    f->cfg.max_bytes = 1 << 20;
    struct ib_store *s = ib_store_open(&f->cfg);
    char body[10000];
    memset(body, 'x', sizeof body);
    body[0] = ',';
    body[sizeof body - 1] = '}';
    for (int i = 0; i < 500; i++)
        assert_true(ib_store_push(s, "t", ib_record_seq_head, NULL, body, sizeof body) > 0);
    struct ib_store_stats st;
    ib_store_stats(s, &st);
    assert_true(st.bytes <= (1u << 20));
    /* 10,040-byte frames: 1 MiB holds 104; at least 15 of its 16 segments stay full. */
    assert_true(st.queued <= 104 && st.queued >= 95);
    assert_int_equal(st.queued + st.dropped, 500);
    uint64_t first = next_seq(s);
    assert_int_equal(first, st.dropped + 1); /* the newest are kept, in order */
    ib_store_close(s);
}

int main(void)
{
    ib_log_init(IB_LOG_ERR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(units),
        cmocka_unit_test(seq_head),
        cmocka_unit_test_setup_teardown(order_ack_rewind, setup, teardown),
        cmocka_unit_test_setup_teardown(window_and_nack, setup, teardown),
        cmocka_unit_test_setup_teardown(live_before_backlog, setup, teardown),
        cmocka_unit_test_setup_teardown(reopen_continues, setup, teardown),
        cmocka_unit_test_setup_teardown(torn_tail, setup, teardown),
        cmocka_unit_test_setup_teardown(flipped_byte, setup, teardown),
        cmocka_unit_test_setup_teardown(bounded_drops_oldest, setup, teardown),
        cmocka_unit_test_setup_teardown(ack_wakes_only_a_waiting_sender, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
