/* bench_modbus: the practical Modbus limit of this machine, for the suite to compare the gateway
 * with: a raw libmodbus loop of 125-register FC3 reads over REGS registers, one thread and one
 * TCP connection per port given, for SECONDS. Prints one JSON object. */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <modbus.h>

struct worker {
    pthread_t th;
    int port;
    int regs;
    double seconds;
    uint64_t requests, values, errors;
};

static double mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void *run(void *arg)
{
    struct worker *w = arg;
    modbus_t *ctx = modbus_new_tcp("127.0.0.1", w->port);
    uint16_t buf[125];
    if (ctx == NULL || modbus_connect(ctx) < 0) {
        fprintf(stderr, "bench_modbus: cannot connect to port %d: %s\n", w->port,
                modbus_strerror(errno));
        w->errors++;
        return NULL;
    }
    modbus_set_slave(ctx, 1);
    double end = mono_s() + w->seconds;
    int addr = 0;
    while (mono_s() < end) {
        int n = w->regs - addr < 125 ? w->regs - addr : 125;
        int rc = modbus_read_registers(ctx, addr, n, buf);
        if (rc != n)
            w->errors++;
        else {
            w->requests++;
            w->values += (uint64_t)n;
        }
        addr = addr + n >= w->regs ? 0 : addr + n;
    }
    modbus_close(ctx);
    modbus_free(ctx);
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: bench_modbus SECONDS REGS PORT [PORT...]\n");
        return 2;
    }
    double seconds = atof(argv[1]);
    int regs = atoi(argv[2]), n = argc - 3;
    struct worker *w = calloc((size_t)n, sizeof *w);
    double t0 = mono_s();
    for (int i = 0; i < n; i++) {
        w[i] = (struct worker){.port = atoi(argv[3 + i]), .regs = regs, .seconds = seconds};
        pthread_create(&w[i].th, NULL, run, &w[i]);
    }
    uint64_t req = 0, val = 0, err = 0;
    for (int i = 0; i < n; i++) {
        pthread_join(w[i].th, NULL);
        req += w[i].requests;
        val += w[i].values;
        err += w[i].errors;
    }
    double el = mono_s() - t0;
    printf("{\"connections\":%d,\"seconds\":%.3f,\"requests\":%" PRIu64 ",\"values\":%" PRIu64
           ",\"errors\":%" PRIu64 ",\"requests_per_s\":%.0f,\"values_per_s\":%.0f}\n",
           n, el, req, val, err, (double)req / el, (double)val / el);
    free(w);
    return err ? 1 : 0;
}
