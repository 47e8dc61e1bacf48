/* Benchmark of the core's hot path per poll: normalize and JSON-encode a 1,000-tag group,
 * next to a baseline encoder written the obvious way (snprintf per value) in the same run. */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "config.h"
#include "record.h"

#define N_TAGS 1000

static double cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The baseline: what a first implementation looks like (and what rounds floats: %.17g). */
static size_t naive_encode(char *out, size_t cap, struct ib_tag_config *tags,
                           const struct ib_tag_core *core, const struct ib_sample *raw)
{
    size_t o = (size_t)snprintf(out, cap, ",\"gateway\":\"gw\",\"values\":{");
    for (int i = 0; i < N_TAGS; i++) {
        double v = raw[i].value.type == IB_V_DOUBLE ? raw[i].value.v.d : (double)raw[i].value.v.u;
        if (core[i].scaled)
            v = v * core[i].scale + core[i].offset;
        o += (size_t)snprintf(out + o, cap - o,
                              "%s\"%s\":{\"v\":%.17g,\"q\":\"good\",\"ts\":%" PRId64 "}",
                              i ? "," : "", tags[i].name, v, raw[i].ts_ms);
    }
    o += (size_t)snprintf(out + o, cap - o, "}}");
    return o;
}

int main(int argc, char **argv)
{
    int rounds = argc > 1 ? atoi(argv[1]) : 2000;
    static struct ib_tag_config tags[N_TAGS];
    static struct ib_tag_core core[N_TAGS];
    static struct ib_sample raw[N_TAGS], norm[N_TAGS];
    static char names[N_TAGS][16];
    for (int i = 0; i < N_TAGS; i++) {
        snprintf(names[i], sizeof names[i], "tag%04d", i);
        tags[i].name = names[i];
        /* A third float32 values, a third plain uint16, a third uint16 scaled by 0.1. */
        core[i].scale = i % 3 == 2 ? 0.1 : 1.0;
        core[i].divisor = i % 3 == 2 ? 10.0 : 0.0;
        core[i].scaled = i % 3 == 2;
        core[i].unit = i % 3 == 0 ? "V" : NULL;
    }
    struct ib_group_config g = {.name = "bench", .n_tags = N_TAGS, .tags = tags};
    struct ib_cfg_group cg = {.tags = core};
    for (uint32_t k_ = 0; k_ < g.n_tags; k_++)
        cg.tags[k_].name = g.tags[k_].name;
    struct ib_group_enc enc;
    if (ib_record_enc_init(&enc, "gw", "conn", "dev", NULL, g.name, g.n_tags, cg.tags) < 0)
        return 1;
    struct ib_buf buf = {0};
    char *naive = malloc(1 << 20);
    size_t bytes_ours = 0, bytes_naive = 0;
    uint32_t x = 12345;

    double c0 = cpu_s();
    for (int r = 0; r < rounds; r++) {
        for (int i = 0; i < N_TAGS; i++) {
            x = x * 1664525u + 1013904223u; /* values change every poll */
            raw[i].ts_ms = 1764163200000 + r;
            raw[i].quality = IB_Q_GOOD;
            if (i % 3 == 0) {
                raw[i].value.type = IB_V_DOUBLE;
                raw[i].value.flags = IB_VF_FLOAT32; /* as the Modbus plugin marks float32 */
                raw[i].value.v.d = (double)(float)((x >> 8) / 1000.0f);
            } else {
                raw[i].value.type = IB_V_UINT;
                raw[i].value.v.u = x >> 16;
            }
            ib_record_normalize(&core[i], &raw[i], &norm[i]);
        }
        ib_record_encode(&buf, &enc, 1764163200000 + r, norm, NULL, 0);
        bytes_ours += buf.len;
    }
    double ours = cpu_s() - c0;

    c0 = cpu_s();
    for (int r = 0; r < rounds; r++) {
        for (int i = 0; i < N_TAGS; i++) {
            x = x * 1664525u + 1013904223u;
            raw[i].ts_ms = 1764163200000 + r;
            if (i % 3 == 0)
                raw[i].value.v.d = (double)(float)((x >> 8) / 1000.0f);
            else
                raw[i].value.v.u = x >> 16;
        }
        bytes_naive += naive_encode(naive, 1 << 20, tags, core, raw);
    }
    double base = cpu_s() - c0;

    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double values = (double)rounds * N_TAGS;
    printf("# bench_record: normalize + JSON-encode one %d-tag group, %d polls\n", N_TAGS, rounds);
    printf("| encoder | values/s | CPU s per million values | bytes per value |\n");
    printf("|---|---:|---:|---:|\n");
    printf("| ironbridge (exact shortest numbers, precomputed keys) | %.0f | %.3f | %.1f |\n",
           values / ours, ours / values * 1e6, (double)bytes_ours / values);
    printf("| baseline (snprintf %%.17g per value) | %.0f | %.3f | %.1f |\n", values / base,
           base / values * 1e6, (double)bytes_naive / values);
    printf("ratio (baseline CPU / ironbridge CPU): %.2f; peak RSS %ld KiB\n", base / ours,
           ru.ru_maxrss);
    ib_buf_free(&buf);
    ib_record_enc_free(&enc);
    free(naive);
    return 0;
}
