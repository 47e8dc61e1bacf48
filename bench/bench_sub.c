/* bench_sub: the benchmark suite's MQTT subscriber. Counts every record and value the gateway
 * publishes, finds lost records (seq gaps) and short records, and measures latency from the
 * simulator's clock tag to receipt; prints one JSON object at the end of its window.
 *
 * Control: SIGUSR1 starts the measurement window (counters are reset), SIGUSR2 or SIGTERM ends
 * it; the results go to stdout. Work per message is one pass of memmem() over the payload, so
 * that the subscriber is never the bottleneck (checked by the suite: its CPU is reported). */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <MQTTAsync.h>

#define MAX_DEVICES 4096

struct device {
    char name[64];
    uint64_t records;
};

struct stats {
    uint64_t records, values, bad, bytes, short_values, dup_records, reordered;
    uint64_t seq_first, seq_last;
    struct device dev[MAX_DEVICES];
    size_t ndev;
    double *lat, *pipe; /* change to receipt; the sample's source ts to receipt */
    size_t nlat, caplat;
    double t0, t1;
};

static atomic_int phase; /* 0 warm-up, 1 measuring, 2 done */
static struct stats st;
static const char *clock_hi, *clock_lo;
static long expect_values; /* values per record; 0: do not check */
static atomic_int connected;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The unsigned integer after `"NAME":{"v":` in the record, or -1; *ts gets the tag's "ts". */
static int64_t tag_value(const char *p, size_t len, const char *name, int64_t *ts)
{
    char key[80];
    int k = snprintf(key, sizeof key, "\"%s\":{\"v\":", name);
    const char *at = memmem(p, len, key, (size_t)k);
    if (at == NULL)
        return -1;
    at += k;
    int64_t v = 0;
    const char *end = p + len;
    if (at >= end || *at < '0' || *at > '9')
        return -1;
    while (at < end && *at >= '0' && *at <= '9')
        v = v * 10 + (*at++ - '0');
    *ts = -1;
    const char *t = memmem(at, (size_t)(end - at) < 64 ? (size_t)(end - at) : 64, "\"ts\":", 5);
    if (t != NULL) {
        *ts = 0;
        for (t += 5; t < end && *t >= '0' && *t <= '9'; t++)
            *ts = *ts * 10 + (*t - '0');
    }
    return v;
}

static uint64_t top_u64(const char *p, size_t len, const char *key)
{
    const char *at = memmem(p, len < 200 ? len : 200, key, strlen(key));
    uint64_t v = 0;
    if (at == NULL)
        return 0;
    for (at += strlen(key); at < p + len && *at >= '0' && *at <= '9'; at++)
        v = v * 10 + (uint64_t)(*at - '0');
    return v;
}

static struct device *device_of(const char *p, size_t len)
{
    const char *at = memmem(p, len < 400 ? len : 400, "\"device\":\"", 10);
    if (at == NULL)
        return NULL;
    at += 10;
    const char *q = memchr(at, '"', (size_t)(p + len - at));
    if (q == NULL || q - at >= 63)
        return NULL;
    size_t n = (size_t)(q - at);
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (uint8_t)at[i]) * 16777619u;
    for (size_t i = 0; i < MAX_DEVICES; i++) {
        struct device *d = &st.dev[(h + i) % MAX_DEVICES];
        if (d->name[0] == '\0') {
            memcpy(d->name, at, n);
            st.ndev++;
            return d;
        }
        if (strlen(d->name) == n && memcmp(d->name, at, n) == 0)
            return d;
    }
    return NULL;
}

static void count(const char *p, size_t len)
{
    double t = now_s();
    st.records++;
    st.bytes += len;
    uint64_t seq = top_u64(p, len, "\"seq\":");
    if (seq != 0) {
        if (st.seq_first == 0)
            st.seq_first = seq;
        if (seq <= st.seq_last)
            st.dup_records++; /* at least once: a re-sent record */
        else
            st.seq_last = seq;
    }
    struct device *d = device_of(p, len);
    if (d != NULL)
        d->records++;
    uint64_t values = 0, bad = 0;
    const char *end = p + len, *at = p;
    while ((at = memmem(at, (size_t)(end - at), "\"q\":\"", 5)) != NULL) {
        at += 5;
        values++;
        if (*at != 'g')
            bad++;
    }
    st.values += values;
    st.bad += bad;
    if (expect_values > 0 && values < (uint64_t)expect_values)
        st.short_values += (uint64_t)expect_values - values;
    if (clock_hi != NULL) {
        int64_t ts_hi, ts_lo;
        int64_t hi = tag_value(p, len, clock_hi, &ts_hi), lo = tag_value(p, len, clock_lo, &ts_lo);
        if (hi >= 0 && lo >= 0) {
            double clk = (double)(((uint64_t)hi << 32) | (uint64_t)lo) / 1e3;
            if (st.nlat == st.caplat) {
                st.caplat = st.caplat ? 2 * st.caplat : 65536;
                st.lat = realloc(st.lat, st.caplat * sizeof *st.lat);
                st.pipe = realloc(st.pipe, st.caplat * sizeof *st.pipe);
                if (st.lat == NULL || st.pipe == NULL)
                    abort();
            }
            st.pipe[st.nlat] = ts_lo >= 0 ? t * 1e3 - (double)ts_lo : -1;
            st.lat[st.nlat++] = (t - clk) * 1e3;
        }
    }
}

static int on_message(void *ctx, char *topic, int topic_len, MQTTAsync_message *m)
{
    (void)ctx;
    (void)topic_len;
    int ph = atomic_load(&phase);
    if (ph == 1) {
        if (st.t0 == 0)
            st.t0 = now_s();
        count(m->payload, (size_t)m->payloadlen);
    }
    MQTTAsync_freeMessage(&m);
    MQTTAsync_free(topic);
    return 1;
}

static void on_lost(void *ctx, char *cause)
{
    (void)ctx;
    fprintf(stderr, "bench_sub: connection lost: %s\n", cause ? cause : "?");
    atomic_store(&connected, -1);
}

static void on_subscribed(void *ctx, MQTTAsync_successData *r)
{
    (void)ctx;
    (void)r;
    atomic_store(&connected, 1);
}

static void on_fail(void *ctx, MQTTAsync_failureData *r)
{
    (void)ctx;
    fprintf(stderr, "bench_sub: failed: %d %s\n", r ? r->code : 0,
            r && r->message ? r->message : "");
    atomic_store(&connected, -1);
}

static const char *g_topic;
static int g_qos;

static void on_connect(void *ctx, MQTTAsync_successData *r)
{
    (void)r;
    MQTTAsync c = ctx;
    MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;
    ro.onSuccess = on_subscribed;
    ro.onFailure = on_fail;
    ro.context = c;
    MQTTAsync_subscribe(c, g_topic, g_qos, &ro);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double pct(const double *a, double p)
{
    if (st.nlat == 0)
        return -1;
    size_t i = (size_t)(p * (double)(st.nlat - 1) + 0.5);
    return a[i];
}

int main(int argc, char **argv)
{
    const char *url = NULL, *ready_file = NULL;
    g_topic = "#";
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--url"))
            url = argv[i + 1];
        else if (!strcmp(argv[i], "--topic"))
            g_topic = argv[i + 1];
        else if (!strcmp(argv[i], "--qos"))
            g_qos = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--clock"))
            clock_hi = argv[i + 1]; /* NAME: tags NAME_hi and NAME_lo */
        else if (!strcmp(argv[i], "--expect"))
            expect_values = atol(argv[i + 1]);
        else if (!strcmp(argv[i], "--ready-file"))
            ready_file = argv[i + 1];
        else {
            fprintf(stderr, "bench_sub: unknown option %s\n", argv[i]);
            return 2;
        }
    }
    if (url == NULL) {
        fprintf(stderr, "usage: bench_sub --url tcp://127.0.0.1:PORT [--topic T] [--qos Q] "
                        "[--clock NAME] [--expect VALUES_PER_RECORD] [--ready-file PATH]\n"
                        "SIGUSR1 starts the window, SIGUSR2/SIGTERM ends it and prints JSON\n");
        return 2;
    }
    static char hi[64], lo[64];
    if (clock_hi != NULL) {
        snprintf(hi, sizeof hi, "%s_hi", clock_hi);
        snprintf(lo, sizeof lo, "%s_lo", clock_hi);
        clock_hi = hi;
        clock_lo = lo;
    }

    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    sigaddset(&set, SIGUSR2);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL); /* before paho starts its threads */

    MQTTAsync c;
    char id[64];
    snprintf(id, sizeof id, "bench-sub-%ld", (long)getpid());
    if (MQTTAsync_create(&c, url, id, MQTTCLIENT_PERSISTENCE_NONE, NULL) != MQTTASYNC_SUCCESS)
        return 1;
    MQTTAsync_setCallbacks(c, c, on_lost, on_message, NULL);
    MQTTAsync_connectOptions co = MQTTAsync_connectOptions_initializer;
    co.keepAliveInterval = 60;
    co.cleansession = 1;
    co.onSuccess = on_connect;
    co.onFailure = on_fail;
    co.context = c;
    if (MQTTAsync_connect(c, &co) != MQTTASYNC_SUCCESS)
        return 1;
    for (int i = 0; i < 1000 && atomic_load(&connected) == 0; i++)
        usleep(10000);
    if (atomic_load(&connected) != 1) {
        fprintf(stderr, "bench_sub: could not subscribe to %s on %s\n", g_topic, url);
        return 1;
    }
    if (ready_file != NULL) {
        FILE *f = fopen(ready_file, "w");
        if (f != NULL)
            fclose(f);
    }

    int sig;
    do {
        sigwait(&set, &sig);
    } while (sig != SIGUSR1 && sig != SIGUSR2 && sig != SIGTERM && sig != SIGINT);
    double start = now_s();
    if (sig == SIGUSR1) {
        atomic_store(&phase, 1);
        do {
            sigwait(&set, &sig);
        } while (sig == SIGUSR1);
    }
    atomic_store(&phase, 2);
    double end = now_s();
    usleep(20000); /* let a callback in progress finish before reading the counters */

    qsort(st.lat, st.nlat, sizeof *st.lat, cmp_double);
    if (st.nlat)
        qsort(st.pipe, st.nlat, sizeof *st.pipe, cmp_double);
    uint64_t pmin = UINT64_MAX, pmax = 0;
    for (size_t i = 0; i < MAX_DEVICES; i++) {
        if (st.dev[i].name[0] == '\0')
            continue;
        if (st.dev[i].records < pmin)
            pmin = st.dev[i].records;
        if (st.dev[i].records > pmax)
            pmax = st.dev[i].records;
    }
    if (st.ndev == 0)
        pmin = 0;
    uint64_t span =
        st.seq_last >= st.seq_first && st.seq_first ? st.seq_last - st.seq_first + 1 : 0;
    uint64_t unique = st.records - st.dup_records;
    printf("{\"window_s\":%.3f,\"records\":%" PRIu64 ",\"values\":%" PRIu64 ",\"bad\":%" PRIu64
           ",\"bytes\":%" PRIu64 ",\"seq_first\":%" PRIu64 ",\"seq_last\":%" PRIu64
           ",\"missing_records\":%" PRIu64 ",\"dup_records\":%" PRIu64 ",\"short_values\":%" PRIu64
           ",\"devices\":%zu,\"polls_min\":%" PRIu64 ",\"polls_max\":%" PRIu64
           ",\"lat_n\":%zu,\"lat_p50_ms\":%.2f,\"lat_p99_ms\":%.2f,"
           "\"lat_max_ms\":%.2f,\"pipe_p50_ms\":%.2f,\"pipe_p99_ms\":%.2f,\"pipe_max_ms\":%.2f,"
           "\"connection_lost\":%s}\n",
           end - start, st.records, st.values, st.bad, st.bytes, st.seq_first, st.seq_last,
           span > unique ? span - unique : 0, st.dup_records, st.short_values, st.ndev, pmin, pmax,
           st.nlat, pct(st.lat, 0.5), pct(st.lat, 0.99), st.nlat ? st.lat[st.nlat - 1] : -1.0,
           pct(st.pipe, 0.5), pct(st.pipe, 0.99), st.nlat ? st.pipe[st.nlat - 1] : -1.0,
           atomic_load(&connected) == -1 ? "true" : "false");
    fflush(stdout);
    MQTTAsync_disconnectOptions d = MQTTAsync_disconnectOptions_initializer;
    d.timeout = 100;
    MQTTAsync_disconnect(c, &d);
    MQTTAsync_destroy(&c);
    free(st.lat);
    free(st.pipe);
    return 0;
}
