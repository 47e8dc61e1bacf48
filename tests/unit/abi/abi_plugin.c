/* Test plugins for the ABI checks: one source, built several times with -D flags that break the
 * descriptor in one way each (wrong major, newer minor, short size, missing callback, no symbol);
 * 'good' is built against the frozen 1.0 header, 'good11' (WITH_WAIT) has a 1.1 wait_events().
 */
#include <ironbridge/plugin.h>

static const struct ib_schema empty = {0, 0, NULL, {0}};

static int t_create(const struct ib_host *h, struct ib_host_ctx *c,
                    const struct ib_connection_config *cfg, void **inst)
{
    (void)h;
    (void)c;
    (void)cfg;
    *inst = (void *)1;
    return 0;
}
static void t_destroy(void *i)
{
    (void)i;
}
static int t_open(void *i)
{
    (void)i;
    return 0;
}
static void t_close(void *i)
{
    (void)i;
}
__attribute__((unused)) static int t_read(void *i, uint32_t d, uint32_t g, struct ib_sample *s)
{
    (void)i;
    (void)d;
    (void)g;
    (void)s;
    return 0;
}

#ifdef WITH_WAIT
static int t_wait(void *i, int64_t deadline_ms)
{
    (void)i;
    (void)deadline_ms;
    return 0;
}
#endif

#ifndef ABI_MAJOR
#define ABI_MAJOR IB_ABI_MAJOR
#endif
#ifndef ABI_MINOR
#define ABI_MINOR IB_ABI_MINOR
#endif
#ifndef ABI_SIZE
#define ABI_SIZE sizeof(struct ib_plugin)
#endif
#ifndef READ_CB
#define READ_CB t_read
#endif
#ifndef SYMBOL
#define SYMBOL ironbridge_plugin
#endif

IB_PLUGIN_EXPORT const struct ib_plugin SYMBOL = {
    .abi_major = ABI_MAJOR,
    .abi_minor = ABI_MINOR,
    .size = ABI_SIZE,
    .name = PLUGIN_NAME,
    .version = "1",
    .connection_schema = &empty,
    .device_schema = &empty,
    .tag_schema = &empty,
    .create = t_create,
    .destroy = t_destroy,
    .open = t_open,
    .close = t_close,
    .read_group = READ_CB,
#ifdef WITH_WAIT
    .wait_events = t_wait,
#endif
};
