/* opcua_write: drives the built opcua.so through its descriptor, as the daemon would once it
 * sends commands: create, open, write_tag of one value, read_group of the same tag, close,
 * destroy. For test_opcua.py (the daemon does not call write_tag yet).
 *
 *   opcua_write PLUGIN.so ENDPOINT NODE VALUE
 *
 * VALUE is written as a double. Prints "write: <ib_err text>" and then "read: <value>" or
 * "read: bad <reason> <code>"; exit status 0 when both calls returned 0. Security None. */
#include <dlfcn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <ironbridge/ironbridge.h>

#include "params.h"

static void host_log(struct ib_host_ctx *ctx, int level, const char *device, const char *tag,
                     const char *fmt, ...)
{
    (void)ctx;
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "log %d [%s/%s] ", level, device ? device : "", tag ? tag : "");
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

static void host_config_error(struct ib_host_ctx *ctx, const void *where, const char *key,
                              const char *fmt, ...)
{
    (void)ctx;
    (void)where;
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "config error %s: ", key ? key : "");
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

static int64_t clock_ms(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t now_ms(void)
{
    return clock_ms(CLOCK_REALTIME);
}

static int64_t mono_ms(void)
{
    return clock_ms(CLOCK_MONOTONIC);
}

int main(int argc, char **argv)
{
    if (argc != 5) {
        fprintf(stderr, "usage: opcua_write PLUGIN.so ENDPOINT NODE VALUE\n");
        return 2;
    }
    void *so = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    const struct ib_plugin *pl = so ? dlsym(so, IB_PLUGIN_SYMBOL) : NULL;
    if (!pl) {
        fprintf(stderr, "cannot load %s: %s\n", argv[1], dlerror());
        return 2;
    }
    struct ib_host host = {.abi_major = IB_ABI_MAJOR,
                           .abi_minor = IB_ABI_MINOR,
                           .size = sizeof host,
                           .log = host_log,
                           .config_error = host_config_error,
                           .now_ms = now_ms,
                           .monotonic_ms = mono_ms};
    struct op_connection_params cp = {.endpoint = argv[2],
                                      .security_policy = OP_POLICY_NONE,
                                      .security_mode = OP_MODE_NONE,
                                      .allow_insecure = true,
                                      .timeout_ms = 10000,
                                      .session_timeout_ms = 60000,
                                      .token_lifetime_ms = 3600000,
                                      .max_nodes_per_read = 1000,
                                      .max_message_size = 16777216};
    struct op_tag_params tp = {.node = argv[3]};
    struct ib_tag_config tag = {.name = "t", .params = &tp, .writable = 1};
    struct ib_group_config group = {.name = "g", .interval_ms = 1000, .n_tags = 1, .tags = &tag};
    struct ib_device_config dev = {.name = "d", .n_groups = 1, .groups = &group};
    struct ib_connection_config cfg = {.name = "c", .params = &cp, .n_devices = 1, .devices = &dev};
    void *in = NULL;
    if (pl->create(&host, NULL, &cfg, &in) != 0)
        return 2;
    int rc = pl->open(in);
    if (rc != 0) {
        printf("open: %s\n", ib_strerror(rc));
        pl->destroy(in);
        return 1;
    }
    struct ib_value v = {.type = IB_V_DOUBLE, .v.d = strtod(argv[4], NULL)};
    int wrc = pl->write_tag(in, 0, 0, 0, &v);
    printf("write: %s\n", ib_strerror(wrc));
    struct ib_sample s;
    memset(&s, 0, sizeof s);
    int rrc = pl->read_group(in, 0, 0, &s);
    if (s.quality == IB_Q_GOOD && s.value.type == IB_V_DOUBLE)
        printf("read: %.17g\n", s.value.v.d);
    else if (s.quality == IB_Q_GOOD && s.value.type == IB_V_INT)
        printf("read: %lld\n", (long long)s.value.v.i);
    else
        printf("read: bad %u %u\n", s.reason, s.code);
    pl->close(in);
    pl->destroy(in);
    dlclose(so);
    return wrc == 0 && rrc == 0 ? 0 : 1;
}
