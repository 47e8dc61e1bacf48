/* The practical limit of this machine for the Modbus benchmark: a bare libmodbus read loop, one
 * thread and context per connection, sending the very requests the plugin's planner makes for
 * the same tags, as fast as the server answers. bench_modbus.py runs it next to the gateway.
 *
 *   bench_modbus_raw PORT CONNECTIONS SECONDS dense|sparse TAGS
 *
 * Prints one line of key=value pairs: requests_per_cycle, cycles, values, seconds, values_per_s,
 * cpu_s (this process, user + system). */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include <modbus.h>

#include "planner.h"

struct worker {
    pthread_t thread;
    int port;
    const struct mb_plan *plan;
    double seconds;
    uint64_t cycles;
    int failed;
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void *work(void *arg)
{
    struct worker *w = arg;
    modbus_t *mb = modbus_new_tcp("127.0.0.1", w->port);
    uint16_t *regs = calloc(w->plan->n_registers + 1, sizeof(*regs));
    if (mb == NULL || regs == NULL || modbus_connect(mb) != 0) {
        fprintf(stderr, "bench_modbus_raw: cannot connect to port %d: %s\n", w->port,
                modbus_strerror(errno));
        w->failed = 1;
        goto out;
    }
    double end = now_s() + w->seconds;
    while (now_s() < end) {
        for (uint32_t r = 0; r < w->plan->n_requests; r++) {
            const struct mb_plan_request *q = &w->plan->requests[r];
            if (modbus_read_registers(mb, (int)q->start, (int)q->count, regs + q->buf) !=
                (int)q->count) {
                fprintf(stderr, "bench_modbus_raw: read failed: %s\n", modbus_strerror(errno));
                w->failed = 1;
                goto out;
            }
        }
        w->cycles++;
    }
out:
    if (mb != NULL) {
        modbus_close(mb);
        modbus_free(mb);
    }
    free(regs);
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc != 6) {
        fprintf(stderr, "usage: %s PORT CONNECTIONS SECONDS dense|sparse TAGS\n", argv[0]);
        return 2;
    }
    int port = atoi(argv[1]), conns = atoi(argv[2]);
    double seconds = atof(argv[3]);
    int sparse = strcmp(argv[4], "sparse") == 0;
    uint32_t n = (uint32_t)atoi(argv[5]);
    if (conns < 1 || n < 1 || seconds <= 0)
        return 2;

    /* The plugin's defaults: 125 registers, gaps of up to 10 read over. Sparse tags are every
     * 4th register (3-register gaps), dense ones adjacent. */
    struct mb_plan_item *items = calloc(n, sizeof(*items));
    if (items == NULL)
        return 1;
    for (uint32_t i = 0; i < n; i++)
        items[i] = (struct mb_plan_item){MB_TABLE_HOLDING, sparse ? 4 * i : i, 1};
    const struct mb_plan_limits limits = {.max_registers = 125, .max_bits = 2000, .max_gap = 10};
    struct mb_plan plan;
    if (mb_plan_build(items, n, &limits, &plan, NULL) != 0)
        return 1;

    struct worker *w = calloc((size_t)conns, sizeof(*w));
    if (w == NULL)
        return 1;
    double t0 = now_s();
    for (int i = 0; i < conns; i++) {
        w[i] = (struct worker){.port = port, .plan = &plan, .seconds = seconds};
        pthread_create(&w[i].thread, NULL, work, &w[i]);
    }
    uint64_t cycles = 0;
    int failed = 0;
    for (int i = 0; i < conns; i++) {
        pthread_join(w[i].thread, NULL);
        cycles += w[i].cycles;
        failed |= w[i].failed;
    }
    double elapsed = now_s() - t0;
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
                 (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
    double values = (double)cycles * n;
    printf("requests_per_cycle=%u cycles=%llu values=%.0f seconds=%.3f values_per_s=%.0f "
           "cpu_s=%.3f\n",
           plan.n_requests, (unsigned long long)cycles, values, elapsed, values / elapsed, cpu);
    mb_plan_free(&plan);
    free(items);
    free(w);
    return failed;
}
