/* Benchmark of report by exception: 10,000 tags polled at 1 s whose values change slowly
 * (1% of tags per second cross the deadband), sent with `always` and with `deadband`, through
 * the core's real path (normalize, decide, encode, append to the store in a temporary
 * directory). Reports messages/s, bytes/s and CPU seconds per million polled values for each,
 * side by side. Simulated poll time: no sleeping. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config.h"
#include "record.h"
#include "report.h"
#include "store.h"

#define N_GROUPS  10
#define PER_GROUP 1000
#define SECONDS   120

struct result {
    uint64_t messages, bytes;             /* steady state: after the first poll */
    uint64_t first_messages, first_bytes; /* the first poll: every tag's initial value */
    double cpu;
};

static double cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static struct result run(uint8_t mode, double deadband)
{
    static struct ib_tag_config tags[PER_GROUP];
    static char names[PER_GROUP][16];
    static struct ib_tag_core core[PER_GROUP];
    for (int i = 0; i < PER_GROUP; i++) {
        snprintf(names[i], sizeof names[i], "tag%04d", i);
        tags[i].name = names[i];
        core[i] = (struct ib_tag_core){.scale = 1,
                                       .unit = i % 2 ? "degC" : NULL,
                                       .report = {.mode = mode, .deadband = deadband}};
    }
    struct ib_group_config g = {.name = "g", .n_tags = PER_GROUP, .tags = tags};
    struct ib_cfg_group cg = {.tags = core, .stale_after_ms = 3000};
    for (uint32_t k_ = 0; k_ < g.n_tags; k_++)
        cg.tags[k_].name = g.tags[k_].name;
    struct ib_group_enc enc[N_GROUPS];
    static struct ib_report_state rs[N_GROUPS][PER_GROUP];
    static struct ib_sample norm[PER_GROUP];
    static double level[N_GROUPS][PER_GROUP];
    uint32_t idx[PER_GROUP];
    char dev[N_GROUPS][16], topic[N_GROUPS][64];
    for (int k = 0; k < N_GROUPS; k++) {
        snprintf(dev[k], sizeof dev[k], "dev%d", k);
        snprintf(topic[k], sizeof topic[k], "ironbridge/gw/dev%d/g", k);
        ib_record_enc_init(&enc[k], "gw", "conn", dev[k], NULL, g.name, g.n_tags, cg.tags);
        for (int i = 0; i < PER_GROUP; i++) {
            ib_report_state_init(&rs[k][i], 0);
            level[k][i] = 20.0 + i % 50;
        }
    }
    char dir[] = "/tmp/ib-bench-report-XXXXXX";
    if (!mkdtemp(dir))
        exit(1);
    struct ib_store_cfg sc = {.path = dir,
                              .max_bytes = 1LL << 30,
                              .max_age_ms = 86400000,
                              .fsync_interval_ms = 1000,
                              .fsync_bytes = 1 << 20,
                              .memory_max_bytes = 1 << 20};
    struct ib_store *q = ib_store_open(&sc);
    if (!q)
        exit(1);
    struct ib_buf body = {0};
    struct result r = {0};
    uint32_t x = 2463534242u; /* the same value sequence for both modes */
    double c0 = cpu_s();
    for (int sec = 0; sec < SECONDS; sec++) {
        for (int k = 0; k < N_GROUPS; k++) {
            for (int i = 0; i < PER_GROUP; i++) {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                /* Noise well inside the deadband; 1% of tags step beyond it each second. */
                double noise = ((double)(x % 1000) / 1000.0 - 0.5) * 0.2;
                if (x % 100 == 0)
                    level[k][i] += (x & 1024) ? 2.0 : -2.0;
                norm[i] =
                    (struct ib_sample){.value = {.type = IB_V_DOUBLE, .v.d = level[k][i] + noise},
                                       .ts_ms = 1764163200000LL + sec * 1000,
                                       .quality = IB_Q_GOOD};
            }
            uint32_t n = 0;
            for (uint32_t i = 0; i < PER_GROUP; i++)
                if (ib_report_decide(&core[i].report, &rs[k][i], &norm[i], sec * 1000, 3000))
                    idx[n++] = i;
            if (!n)
                continue;
            ib_record_encode(&body, &enc[k], 1764163200000LL + sec * 1000, norm, idx, n);
            ib_store_push(q, topic[k], ib_record_seq_head, NULL, body.p, body.len);
            struct ib_store_rec rec;
            while (ib_store_next(q, 1, &rec, NULL)) { /* the broker takes it at once */
                if (sec == 0) {
                    r.first_messages++;
                    r.first_bytes += rec.len + strlen(rec.topic);
                } else {
                    r.messages++;
                    r.bytes += rec.len + strlen(rec.topic);
                }
                ib_store_ack(q, rec.seq);
            }
        }
    }
    r.cpu = cpu_s() - c0;
    for (int k = 0; k < N_GROUPS; k++) {
        ib_record_enc_free(&enc[k]);
        for (int i = 0; i < PER_GROUP; i++)
            ib_report_state_free(&rs[k][i]);
    }
    ib_buf_free(&body);
    ib_store_close(q);
    char cmd[64];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "bench_report: cannot remove %s\n", dir);
    return r;
}

int main(void)
{
    struct result a = run(IB_REPORT_ALWAYS, 0);
    struct result d = run(IB_REPORT_DEADBAND, 1.0);
    double polled = (double)N_GROUPS * PER_GROUP * SECONDS;
    printf("# bench_report: %d tags at 1 s for %d s (simulated), 1%% of tags per second cross "
           "the deadband (1.0; noise +-0.1)\n",
           N_GROUPS * PER_GROUP, SECONDS);
    printf("| mode | messages/s | bytes/s (payload+topic) | first poll (all tags): messages, "
           "bytes | CPU s per million polled values |\n");
    printf("|---|---:|---:|---:|---:|\n");
    const double steady = SECONDS - 1;
    printf("| always | %.1f | %.0f | %" PRIu64 ", %" PRIu64 " | %.3f |\n", a.messages / steady,
           a.bytes / steady, a.first_messages, a.first_bytes, a.cpu / polled * 1e6);
    printf("| deadband | %.1f | %.0f | %" PRIu64 ", %" PRIu64 " | %.3f |\n", d.messages / steady,
           d.bytes / steady, d.first_messages, d.first_bytes, d.cpu / polled * 1e6);
    printf("(messages/s and bytes/s: steady state, after the first poll, which sends every "
           "tag's initial value in both modes)\n");
    printf("bytes always/deadband: %.1fx fewer (target >= 50x); CPU deadband/always: %.2f "
           "(target <= 1)\n",
           (double)a.bytes / (double)d.bytes, d.cpu / a.cpu);
    return 0;
}
