/* Test harness for the built s7.so: the plugin loaded with dlopen, a fake host, and configs. */
#include "harness.h"

#include <dlfcn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

const struct ib_plugin *s7t_plugin;

void s7t_load_plugin(int argc, char **argv)
{
    const char *path = argc > 1 ? argv[1] : getenv("IB_S7_PLUGIN");
    void *h = path ? dlopen(path, RTLD_NOW | RTLD_LOCAL) : NULL;
    if (h == NULL) {
        fprintf(stderr, "cannot load the s7 plugin (%s): %s\n", path ? path : "no path",
                path ? dlerror() : "pass it as argv[1]");
        exit(1);
    }
    s7t_plugin = dlsym(h, IB_PLUGIN_SYMBOL);
    if (s7t_plugin == NULL) {
        fprintf(stderr, "%s exports no descriptor\n", path);
        exit(1);
    }
}

static struct s7t_host *of(struct ib_host_ctx *ctx)
{
    return (struct s7t_host *)(void *)ctx;
}

static void fake_log(struct ib_host_ctx *ctx, int level, const char *device, const char *tag,
                     const char *fmt, ...)
{
    struct s7t_host *h = of(ctx);
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    snprintf(h->log[h->n_logs % 64], sizeof h->log[0], "<%d> [%s/%s] %s", level,
             device ? device : "-", tag ? tag : "-", msg);
    if (getenv("S7T_VERBOSE"))
        fprintf(stderr, "%s\n", h->log[h->n_logs % 64]);
    h->n_logs++;
}

static void fake_config_error(struct ib_host_ctx *ctx, const void *where, const char *key,
                              const char *fmt, ...)
{
    (void)where;
    struct s7t_host *h = of(ctx);
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    snprintf(h->log[h->n_logs % 64], sizeof h->log[0], "config %s: %s", key ? key : "-", msg);
    h->n_logs++;
    h->n_config_errors++;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void s7t_host_init(struct s7t_host *h)
{
    memset(h, 0, sizeof *h);
    h->host = (struct ib_host){.abi_major = IB_ABI_MAJOR,
                               .abi_minor = IB_ABI_MINOR,
                               .size = sizeof(struct ib_host),
                               .log = fake_log,
                               .config_error = fake_config_error,
                               .now_ms = now_ms,
                               .monotonic_ms = mono_ms};
}

struct ib_host_ctx *s7t_ctx(struct s7t_host *h)
{
    return (struct ib_host_ctx *)(void *)h;
}

bool s7t_logged(const struct s7t_host *h, const char *needle)
{
    unsigned n = h->n_logs < 64 ? h->n_logs : 64;
    for (unsigned i = 0; i < n; i++)
        if (strstr(h->log[i], needle) != NULL)
            return true;
    return false;
}

/* Zero, then every schema default: what the daemon does for absent keys. */
static void fill_defaults(const struct ib_schema *schema, void *params)
{
    memset(params, 0, schema->struct_size);
    for (size_t i = 0; i < schema->n_entries; i++) {
        const struct ib_schema_entry *e = &schema->entries[i];
        char *field = (char *)params + e->offset;
        if (e->type == IB_S_ENUM) {
            int32_t idx = -1;
            for (int32_t k = 0; e->def && e->choices[k]; k++)
                if (strcmp(e->choices[k], e->def) == 0)
                    idx = k;
            memcpy(field, &idx, sizeof idx);
        } else if (e->def != NULL && e->type == IB_S_INT) {
            int64_t v = strtoll(e->def, NULL, 10);
            memcpy(field, &v, sizeof v);
        } else if (e->def != NULL && e->type == IB_S_DURATION) {
            char *end;
            int64_t v = strtoll(e->def, &end, 10);
            if (strcmp(end, "s") == 0)
                v *= 1000;
            memcpy(field, &v, sizeof v);
        } else if (e->def != NULL && e->type == IB_S_BOOL) {
            bool v = strcmp(e->def, "true") == 0;
            memcpy(field, &v, sizeof v);
        }
    }
}

void s7t_config(struct s7t_config *c, int port)
{
    memset(c, 0, sizeof *c);
    fill_defaults(s7t_plugin->connection_schema, &c->cp);
    fill_defaults(s7t_plugin->device_schema, &c->dp);
    c->cp.host = "127.0.0.1";
    c->cp.port = port;
    c->cp.timeout_ms = 1000;
    c->group = (struct ib_group_config){.name = "g", .interval_ms = 1000, .tags = c->tags};
    c->device = (struct ib_device_config){
        .name = "plc", .params = &c->dp, .n_groups = 1, .groups = &c->group};
    c->conn = (struct ib_connection_config){
        .name = "s7", .params = &c->cp, .n_devices = 1, .devices = &c->device};
}

uint32_t s7t_tag(struct s7t_config *c, const char *address, int32_t type, int64_t length,
                 bool writable)
{
    uint32_t i = c->group.n_tags++;
    fill_defaults(s7t_plugin->tag_schema, &c->tp[i]);
    c->tp[i].address = address;
    c->tp[i].type = type;
    c->tp[i].length = length;
    snprintf(c->names[i], sizeof c->names[i], "t%u", i);
    c->tags[i] = (struct ib_tag_config){
        .name = c->names[i], .params = &c->tp[i], .writable = writable ? 1 : 0};
    return i;
}
