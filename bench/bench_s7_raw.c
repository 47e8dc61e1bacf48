/* bench_s7_raw: the practical limit for the S7 benchmark — one connection sending the same Read
 * Var requests the plugin plans for DBS data blocks of TAGS REALs each, back to back, with as
 * many in flight as the plugin keeps (the parallel jobs granted, at most 3 asked), with the
 * plugin's own wire and session code but no daemon, no decoding into samples and no MQTT.
 *   bench_s7_raw PORT SECONDS [DBS [TAGS]]
 * Prints: values=N seconds=S values_per_s=R requests_per_poll=Q pdu=P cpu_s=C */
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <time.h>

#include "planner.h"
#include "session.h"
#include "wire.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static double cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
           ru.ru_stime.tv_usec / 1e6;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: bench_s7_raw PORT SECONDS [DBS [TAGS]]\n");
        return 2;
    }
    int port = atoi(argv[1]);
    double seconds = atof(argv[2]);
    unsigned dbs = argc > 3 ? (unsigned)atoi(argv[3]) : 10,
             tags = argc > 4 ? (unsigned)atoi(argv[4]) : 1000;
    struct s7_session_cfg cfg = {.host = "127.0.0.1",
                                 .port = port,
                                 .local_tsap = 0x0100,
                                 .remote_tsap = 0x0101,
                                 .connect_timeout_ms = 3000,
                                 .timeout_ms = 3000,
                                 .pdu_request = 960,
                                 .jobs_request = 3};
    static struct s7_session s;
    s7_session_init(&s, &cfg);
    if (s7_session_open(&s) != 0) {
        fprintf(stderr, "bench_s7_raw: %s\n", s.error);
        return 1;
    }
    /* one plan per DB, as the plugin makes one per group */
    struct s7_plan *plans = calloc(dbs, sizeof *plans);
    struct s7_plan_item *items = calloc(tags, sizeof *items);
    uint32_t reqs = 0;
    for (unsigned d = 0; d < dbs; d++) {
        for (unsigned i = 0; i < tags; i++)
            items[i] = (struct s7_plan_item){S7_AREA_DB, (uint16_t)(d + 1), 4 * i, 4, 0};
        if (s7_plan_spans(items, tags, 32, &plans[d]) != 0 ||
            s7_plan_pack(&plans[d], s.pdu, S7_MAX_ITEMS) != 0)
            return 1;
        reqs += plans[d].n_requests;
    }
    struct s7_item it[S7_MAX_ITEMS];
    struct s7_result res[S7_MAX_ITEMS];
    unsigned jobs = s7_session_jobs(&s), in_flight = 0;
    double t0 = now_s(), c0 = cpu_s();
    unsigned long long values = 0;
    while (now_s() - t0 < seconds) {
        for (unsigned d = 0; d < dbs; d++) {
            const struct s7_plan *p = &plans[d];
            for (uint32_t r = 0; r < p->n_requests; r++) {
                const struct s7_plan_request *rq = &p->requests[r];
                for (uint32_t k = 0; k < rq->n; k++)
                    it[k] = s7_plan_item_of(p, &p->chunks[rq->first + k]);
                uint16_t ref = s7_session_next_ref(&s);
                size_t len = s7_wire_read(s.tx, sizeof s.tx, ref, it, rq->n);
                if (s7_session_send(&s, len) != 0)
                    goto failed;
                /* keep `jobs` in flight: take an answer once the window is full */
                if (++in_flight < jobs)
                    continue;
                struct s7_pdu pdu;
                if (s7_session_receive(&s, &pdu) != 0 ||
                    s7_wire_read_ack(&pdu, pdu.param_len >= 2 ? pdu.param[1] : 0, res) != 0)
                    goto failed;
                in_flight--;
            }
            values += tags;
        }
    }
    double t = now_s() - t0, c = cpu_s() - c0;
    printf("values=%llu seconds=%.3f values_per_s=%.0f requests_per_poll=%u pdu=%u jobs=%u "
           "cpu_s=%.3f\n",
           values, t, values / t, reqs, s.pdu, jobs, c);
    s7_session_close(&s);
    return 0;
failed:
    fprintf(stderr, "bench_s7_raw: %s\n", s.error);
    return 1;
}
