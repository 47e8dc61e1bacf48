/* Writes the base sample store of tests/data/store/ with the store code of commit d153bda (the
 * format every later version must read): two segment files and a clean checkpoint. Built and run
 * by make_samples.sh against that commit's libibcore.a; it uses that commit's API
 * (ib_store_push prepending {"seq":N), so it is not part of the build. */
#include <stdio.h>
#include <stdlib.h>

#include "log.h"
#include "store.h"

static void push(struct ib_store *s, int from, int to)
{
    for (int i = from; i <= to; i++) {
        char body[64];
        int n = snprintf(body, sizeof body, ",\"i\":%d,\"v\":\"sample\"}", i);
        if (ib_store_push(s, "plant/line1/meter", body, (size_t)n) != (uint64_t)i)
            exit(1);
    }
}

int main(int argc, char **argv)
{
    if (argc != 2)
        return 2;
    ib_log_init(IB_LOG_INFO);
    struct ib_store_cfg cfg = {.path = argv[1],
                               .max_bytes = 64 << 20,
                               .max_age_ms = 7LL * 86400000,
                               .fsync = IB_FSYNC_BATCH,
                               .fsync_interval_ms = 1000,
                               .fsync_bytes = 1 << 20,
                               .memory_max_bytes = 1 << 20};
    struct ib_store *s = ib_store_open(&cfg);
    if (!s)
        return 1;
    push(s, 1, 10); /* seg-0000000000000001.ibq */
    struct ib_store_rec r;
    for (int i = 1; i <= 3; i++) {
        if (!ib_store_next(s, 0, 100, &r) || r.seq != (uint64_t)i)
            return 1;
        ib_store_ack(s, r.seq);
    }
    ib_store_close(s); /* clean checkpoint: acked 3, next 11 */
    if (!(s = ib_store_open(&cfg)))
        return 1;
    push(s, 11, 20);   /* seg-000000000000000b.ibq */
    ib_store_close(s); /* clean checkpoint: acked 3, next 21, disk_last 20 */
    return 0;
}
