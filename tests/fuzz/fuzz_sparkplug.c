/* fuzz_sparkplug.c: fuzz target of what a Sparkplug host sends the edge node: NCMD and DCMD
 * payloads through the decoder the node uses (ib_spb_cmd_decode, ib_spb_cmd_is_rebirth), a
 * primary host's STATE (ib_spb_state_parse), and
 * the node's stored record reader (sparkplug_record.h) on the same bytes. */
#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "sparkplug_cmd.h"
#include "sparkplug_record.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    ib_log_init(IB_LOG_ERR);
    return 0;
}

/* Touch what the callback is given, so that a bad pointer shows under ASan. */
static int visit(void *ud, const struct ib_spb_cmd_metric *m)
{
    size_t *sum = ud;
    if (m->name)
        *sum += strlen(m->name);
    if (m->value.type == IB_V_STRING)
        for (size_t i = 0; i < m->value.v.s.len; i++)
            *sum += (unsigned char)m->value.v.s.ptr[i];
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t sum = 0;
    ib_spb_cmd_decode(data, size, visit, &sum);
    ib_spb_cmd_is_rebirth(data, size);
    bool online = false;
    int64_t ts = 0;
    if (ib_spb_state_parse((const char *)data, size, &online, &ts) == 0 && ts < 0)
        abort(); /* the parser reads only digits */
    struct ib_spb_reader r;
    struct ib_spb_rsample x;
    if (ib_spb_record_open(&r, data, size) == 0)
        while (ib_spb_record_next(&r, &x) == 1)
            if (x.s.value.type == IB_V_STRING && x.s.value.v.s.len)
                sum += (unsigned char)x.s.value.v.s.ptr[x.s.value.v.s.len - 1];
    return sum == 1 ? 0 : 0;
}
