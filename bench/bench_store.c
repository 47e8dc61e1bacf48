/* Benchmark of the durable store: append rate under each fsync policy next to raw write() loops
 * doing the same I/O, the RSS while a backlog builds up, and the replay of a 1,000,000-sample
 * backlog to a local mosquitto through the real north while live records keep being appended.
 * Prints Markdown tables; never pass/fail.
 *
 *   bench_store [DIR]   DIR: where the store and the baselines write (default $TMPDIR or /tmp);
 *                       it should be on the disk a gateway would use, not a tmpfs. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "north.h"
#include "config.h"
#include "record.h"
#include "store.h"

#define TAGS_PER_RECORD 10
#define BACKLOG_SAMPLES 1000000
#define LIVE_RECORDS_S  100 /* 1,000 values/s of live polling during the replay */

extern char **environ;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static long rss_kib(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kib = -1;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %ld", &kib) == 1)
            break;
    if (f)
        fclose(f);
    return kib;
}

static void rm_rf(const char *dir)
{
    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "bench_store: cannot remove %s\n", dir);
}

/* A record as the core makes it: one group of TAGS_PER_RECORD float and integer tags. */
struct sample_record {
    struct ib_group_enc enc;
    struct ib_buf body;
    struct ib_tag_config tags[TAGS_PER_RECORD];
    struct ib_tag_core core[TAGS_PER_RECORD];
    struct ib_sample s[TAGS_PER_RECORD];
    char names[TAGS_PER_RECORD][16];
    uint32_t x;
};

static void record_init(struct sample_record *r)
{
    memset(r, 0, sizeof *r);
    for (int i = 0; i < TAGS_PER_RECORD; i++) {
        snprintf(r->names[i], sizeof r->names[i], "tag%02d", i);
        r->tags[i].name = r->names[i];
        r->core[i].scale = 1;
        r->core[i].unit = i % 2 ? "V" : NULL;
    }
    struct ib_group_config g = {.name = "fast", .n_tags = TAGS_PER_RECORD, .tags = r->tags};
    struct ib_cfg_group cg = {.tags = r->core};
    for (uint32_t k_ = 0; k_ < g.n_tags; k_++)
        cg.tags[k_].name = g.tags[k_].name;
    if (ib_record_enc_init(&r->enc, "line3-gw01", "press-hall", "meter-1", NULL, g.name, g.n_tags,
                          cg.tags) < 0)
        exit(1);
    r->x = 12345;
}

/* The next poll's record (values change every time) in r->body. */
static void record_next(struct sample_record *r, int64_t ts)
{
    for (int i = 0; i < TAGS_PER_RECORD; i++) {
        r->x = r->x * 1664525u + 1013904223u;
        r->s[i] = (struct ib_sample){.ts_ms = ts, .quality = IB_Q_GOOD};
        if (i % 2) {
            r->s[i].value.type = IB_V_DOUBLE;
            r->s[i].value.v.d = 200.0 + (r->x >> 8) % 5000 / 100.0;
        } else {
            r->s[i].value.type = IB_V_UINT;
            r->s[i].value.v.u = r->x >> 16;
        }
    }
    if (ib_record_encode(&r->body, &r->enc, ts, r->s, NULL, 0) < 0)
        exit(1);
}

static struct ib_store_cfg store_cfg(const char *path, int fsync)
{
    return (struct ib_store_cfg){.path = path,
                                 .max_bytes = 4LL << 30,
                                 .max_age_ms = 7LL * 86400000,
                                 .fsync = fsync,
                                 .fsync_interval_ms = 1000,
                                 .fsync_bytes = 1 << 20,
                                 .replay_rate = 0,
                                 .memory_max_bytes = 16 << 20};
}

/* ---- appends --------------------------------------------------------------------------------- */

struct rate {
    double records_s, mb_s, seconds;
};

static struct rate append_store(const char *dir, int fsync, long n, const char *topic,
                                struct sample_record *r)
{
    char path[600];
    snprintf(path, sizeof path, "%s/store-%s", dir, fsync ? "always" : "batch");
    struct ib_store_cfg c = store_cfg(path, fsync);
    struct ib_store *s = ib_store_open(&c);
    if (!s)
        exit(1);
    uint64_t bytes = 0;
    double t0 = now_s();
    for (long i = 0; i < n; i++) {
        record_next(r, 1764163200000 + i);
        ib_store_push(s, topic, ib_record_seq_head, NULL, r->body.p, r->body.len);
        bytes += r->body.len;
    }
    ib_store_close(s); /* the last fdatasync belongs to the cost */
    double dt = now_s() - t0;
    rm_rf(path);
    return (struct rate){n / dt, bytes / dt / 1e6, dt};
}

/* The same bytes with plain write(): fdatasync every 1 MiB (batch) or after every record. */
static struct rate append_raw(const char *dir, int always, long n, struct sample_record *r)
{
    char path[600];
    snprintf(path, sizeof path, "%s/raw.bin", dir);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        exit(1);
    uint64_t bytes = 0, unsynced = 0;
    double t0 = now_s();
    for (long i = 0; i < n; i++) {
        record_next(r, 1764163200000 + i);
        if (write(fd, r->body.p, r->body.len) != (ssize_t)r->body.len)
            exit(1);
        bytes += r->body.len;
        unsynced += r->body.len;
        if (always || unsynced >= (1 << 20)) {
            fdatasync(fd);
            unsynced = 0;
        }
    }
    fdatasync(fd);
    close(fd);
    double dt = now_s() - t0;
    unlink(path);
    return (struct rate){n / dt, bytes / dt / 1e6, dt};
}

/* ---- mosquitto ------------------------------------------------------------------------------- */

static int free_port(void)
{
    for (int p = 20000 + getpid() % 20000;; p = p % 60000 + 1) {
        char cmd[96];
        snprintf(cmd, sizeof cmd, "ss -ltnH 'sport = :%d' | grep -q .", p);
        if (system(cmd) != 0)
            return p;
    }
}

static pid_t start_mosquitto(const char *dir, int port)
{
    char conf[600];
    snprintf(conf, sizeof conf, "%s/mosquitto.conf", dir);
    FILE *f = fopen(conf, "w");
    if (!f)
        return -1;
    fprintf(f, "listener %d 127.0.0.1\nallow_anonymous true\npersistence false\n", port);
    fprintf(f, "log_dest none\n");
    if (geteuid() == 0)
        fprintf(f, "user root\n");
    fclose(f);
    pid_t pid;
    char *argv[] = {"/usr/sbin/mosquitto", "-c", conf, NULL};
    if (access(argv[0], X_OK) != 0 || posix_spawn(&pid, argv[0], NULL, NULL, argv, environ) != 0)
        return -1;
    for (int i = 0; i < 100; i++) { /* up to 5 s */
        char cmd[96];
        snprintf(cmd, sizeof cmd, "ss -ltnH 'sport = :%d' | grep -q .", port);
        if (system(cmd) == 0)
            return pid;
        struct timespec ts = {0, 50 * 1000000L};
        nanosleep(&ts, NULL);
    }
    kill(pid, SIGTERM);
    waitpid(pid, NULL, 0);
    return -1;
}

/* ---- replay ---------------------------------------------------------------------------------- */

struct live {
    struct ib_store *s;
    struct sample_record r;
    atomic_bool stop;
    atomic_long pushed;
};

static void *live_main(void *arg)
{
    struct live *lv = arg;
    double next = now_s();
    while (!atomic_load(&lv->stop)) {
        record_next(&lv->r, 1764163300000);
        ib_store_push(lv->s, "bench/live", ib_record_seq_head, NULL, lv->r.body.p, lv->r.body.len);
        atomic_fetch_add(&lv->pushed, 1);
        next += 1.0 / LIVE_RECORDS_S;
        double wait = next - now_s();
        if (wait > 0) {
            struct timespec ts = {(time_t)wait, (long)((wait - (time_t)wait) * 1e9)};
            nanosleep(&ts, NULL);
        }
    }
    return NULL;
}

struct replay_result {
    bool ok;
    double seconds, live_wait_max_s;
    long rss_during;
    uint64_t records, live_acked;
};

static struct replay_result replay(const char *dir, int port, int64_t rate)
{
    struct replay_result res = {0};
    char path[600];
    snprintf(path, sizeof path, "%s/store-replay", dir);
    struct ib_store_cfg c = store_cfg(path, IB_FSYNC_BATCH);
    c.replay_rate = rate;
    struct ib_store *s = ib_store_open(&c);
    if (!s)
        return res;
    struct sample_record r;
    record_init(&r);
    long n = BACKLOG_SAMPLES / TAGS_PER_RECORD;
    for (long i = 0; i < n; i++) {
        record_next(&r, 1764163200000 + i);
        ib_store_push(s, "bench/backlog", ib_record_seq_head, NULL, r.body.p, r.body.len);
    }
    char uri[64], url[64];
    snprintf(uri, sizeof uri, "tcp://127.0.0.1:%d", port);
    snprintf(url, sizeof url, "mqtt://127.0.0.1:%d", port);
    struct ib_mqtt_cfg m = {.url = url,
                            .server_uri = uri,
                            .client_id = "ironbridge-bench",
                            .allow_insecure = true,
                            .qos = 1,
                            .topic = "bench/{device}",
                            .status_topic = "bench/status",
                            .config_status_topic = "bench/config",
                            .keepalive_s = 30,
                            .connect_timeout_ms = 5000,
                            .reconnect_min_ms = 200,
                            .reconnect_max_ms = 1000,
                            .max_inflight = 256,
                            .flush_timeout_ms = 0};
    struct live lv = {.s = s};
    record_init(&lv.r);
    pthread_t lt;
    pthread_create(&lt, NULL, live_main, &lv);
    struct ib_north *north = ib_north_new(&m, "bench", s);
    double t0 = now_s();
    if (!north || ib_north_start(north) < 0)
        exit(1);
    /* Done when every backlog record is acknowledged; watch the live records meanwhile. */
    double live_wait_max = 0;
    struct ib_store_stats st;
    for (;;) {
        struct timespec ts = {0, 20 * 1000000L};
        nanosleep(&ts, NULL);
        ib_store_stats(s, &st);
        long rss = rss_kib();
        if (rss > res.rss_during)
            res.rss_during = rss;
        double live_wait = (double)(st.queued - st.replaying) / LIVE_RECORDS_S;
        if (st.acked > 0 && live_wait > live_wait_max)
            live_wait_max = live_wait;
        if (st.acked >= (uint64_t)n && st.replaying == 0)
            break;
        if (now_s() - t0 > 300)
            break;
    }
    res.seconds = now_s() - t0;
    res.ok = st.acked >= (uint64_t)n;
    res.records = (uint64_t)n;
    res.live_wait_max_s = live_wait_max;
    atomic_store(&lv.stop, true);
    pthread_join(lt, NULL);
    ib_store_stats(s, &st);
    res.live_acked = st.acked > (uint64_t)n ? st.acked - (uint64_t)n : 0;
    ib_north_stop(north, false);
    ib_north_free(north);
    ib_store_close(s);
    ib_record_enc_free(&r.enc);
    ib_buf_free(&r.body);
    ib_record_enc_free(&lv.r.enc);
    ib_buf_free(&lv.r.body);
    rm_rf(path);
    return res;
}

int main(int argc, char **argv)
{
    ib_log_init(IB_LOG_ERR);
    const char *base = argc > 1 ? argv[1] : getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    char dir[512];
    snprintf(dir, sizeof dir, "%s/ib-bench-store-XXXXXX", base);
    if (!mkdtemp(dir)) {
        fprintf(stderr, "bench_store: cannot make a directory in %s: %s\n", base, strerror(errno));
        return 1;
    }
    struct sample_record r;
    record_init(&r);
    record_next(&r, 1764163200000);
    const char *topic = "ironbridge/line3-gw01/meter-1/fast";
    printf("# bench_store: records of %d samples (%zu-byte JSON payload), store and baselines in "
           "%s\n\n",
           TAGS_PER_RECORD, r.body.len + 24, base);

    long n_batch = 300000, n_always = 3000;
    struct rate sb = append_store(dir, IB_FSYNC_BATCH, n_batch, topic, &r);
    struct rate rb = append_raw(dir, 0, n_batch, &r);
    struct rate sa = append_store(dir, IB_FSYNC_ALWAYS, n_always, topic, &r);
    struct rate ra = append_raw(dir, 1, n_always, &r);
    printf("## Append (one thread, until durable)\n\n");
    printf("| writer | records | records/s | samples/s | MB/s (payload) |\n");
    printf("|---|---:|---:|---:|---:|\n");
    printf("| store, fsync: batch (1 s / 1 MiB) | %ld | %.0f | %.0f | %.1f |\n", n_batch,
           sb.records_s, sb.records_s * TAGS_PER_RECORD, sb.mb_s);
    printf("| baseline: write() + fdatasync every 1 MiB | %ld | %.0f | %.0f | %.1f |\n", n_batch,
           rb.records_s, rb.records_s * TAGS_PER_RECORD, rb.mb_s);
    printf("| store, fsync: always | %ld | %.0f | %.0f | %.2f |\n", n_always, sa.records_s,
           sa.records_s * TAGS_PER_RECORD, sa.mb_s);
    printf("| baseline: write() + fdatasync per record | %ld | %.0f | %.0f | %.2f |\n\n", n_always,
           ra.records_s, ra.records_s * TAGS_PER_RECORD, ra.mb_s);

    /* RSS while a backlog builds up with nobody sending: flat, whatever its size. */
    printf("## RSS while the backlog grows (no broker)\n\n| backlog samples | RSS KiB |\n"
           "|---:|---:|\n");
    char path[600];
    snprintf(path, sizeof path, "%s/store-rss", dir);
    struct ib_store_cfg c = store_cfg(path, IB_FSYNC_BATCH);
    struct ib_store *s = ib_store_open(&c);
    if (!s)
        return 1;
    long pushed = 0;
    for (long target = 10000; target <= 5000000; target *= 10) {
        for (; pushed * TAGS_PER_RECORD < target; pushed++) {
            record_next(&r, 1764163200000 + pushed);
            ib_store_push(s, topic, ib_record_seq_head, NULL, r.body.p, r.body.len);
        }
        printf("| %ld | %ld |\n", pushed * TAGS_PER_RECORD, rss_kib());
        if (target == 1000000)
            target = 500000; /* then 5,000,000 */
    }
    struct ib_store_stats st;
    ib_store_stats(s, &st);
    printf("\n(%" PRIu64 " records, %.0f MiB on disk)\n\n", st.queued, st.bytes / 1048576.0);
    /* The store's own replay capacity: hand out and acknowledge, no network. */
    double t0 = now_s();
    struct ib_store_rec rec;
    uint64_t replayed = 0;
    while (ib_store_next(s, 256, &rec, NULL)) {
        ib_store_ack(s, rec.seq);
        replayed++;
    }
    double dt = now_s() - t0;
    printf("Reading that backlog back (next + ack, no broker): %" PRIu64 " records in %.1f s, "
           "%.0f records/s, %.0f samples/s\n\n",
           replayed, dt, replayed / dt, replayed * TAGS_PER_RECORD / dt);
    ib_store_close(s);
    rm_rf(path);

    int port = free_port();
    pid_t mq = start_mosquitto(dir, port);
    if (mq < 0) {
        printf("## Replay\n\nnot measured: /usr/sbin/mosquitto could not be started\n");
    } else {
        printf("## Replay of a %d-sample backlog (%d records) to mosquitto on 127.0.0.1 "
               "(plaintext, QoS 1, 256 in flight) while %d live records/s are appended\n\n",
               BACKLOG_SAMPLES, BACKLOG_SAMPLES / TAGS_PER_RECORD, LIVE_RECORDS_S);
        printf("| replay_rate | replay s | backlog samples/s | live records acked meanwhile | "
               "live backlog at most (s) | peak RSS KiB |\n|---|---:|---:|---:|---:|---:|\n");
        int64_t rates[] = {5000, 0}; /* the default, then no limit */
        for (size_t i = 0; i < sizeof rates / sizeof rates[0]; i++) {
            struct replay_result rr = replay(dir, port, rates[i]);
            char rate[32];
            snprintf(rate, sizeof rate, rates[i] ? "%" PRId64 " records/s%s" : "unlimited",
                     rates[i], rates[i] == 5000 ? " (default)" : "");
            if (!rr.ok)
                printf("| %s | did not finish in 300 s | | | | |\n", rate);
            else
                printf("| %s | %.1f | %.0f | %" PRIu64 " | %.2f | %ld |\n", rate, rr.seconds,
                       BACKLOG_SAMPLES / rr.seconds, rr.live_acked, rr.live_wait_max_s,
                       rr.rss_during);
        }
        kill(mq, SIGTERM);
        waitpid(mq, NULL, 0);
    }
    ib_record_enc_free(&r.enc);
    ib_buf_free(&r.body);
    rm_rf(dir);
    return 0;
}
