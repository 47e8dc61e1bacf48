/* A test plugin that misbehaves on purpose, for the fault-containment tests: its read_group()
 * yields a counter per tag, then after `after` reads either blocks forever or crashes. */
#include <signal.h>
#include <sys/mman.h>
#include <stdlib.h>
#include <unistd.h>

#include <ironbridge/ironbridge.h>

struct conn_params {
    int32_t mode; /* 0 ok, 1 hang, 2 crash */
    int64_t after;
};

static const char *const modes[] = {"ok", "hang", "crash", NULL};
static const struct ib_schema_entry conn_entries[] = {
    {.key = "mode",
     .type = IB_S_ENUM,
     .offset = offsetof(struct conn_params, mode),
     .def = "ok",
     .choices = modes,
     .description = "ok: a counter; hang: block forever; crash: write to an inaccessible page (SIGSEGV)"},
    {.key = "after",
     .type = IB_S_INT,
     .flags = IB_SF_RANGE,
     .offset = offsetof(struct conn_params, after),
     .def = "0",
     .min = 0,
     .max = 1000000,
     .description = "good reads before the fault"},
};
static const struct ib_schema conn_schema = {sizeof(struct conn_params), 2, conn_entries, {0}};
static const struct ib_schema empty = {0, 0, NULL, {0}};

struct inst {
    const struct ib_host *host;
    struct ib_host_ctx *ctx;
    const struct conn_params *params;
    uint64_t reads;
};

static int f_create(const struct ib_host *host, struct ib_host_ctx *ctx,
                    const struct ib_connection_config *cfg, void **instance)
{
    struct inst *in = calloc(1, sizeof *in);
    if (!in)
        return IB_ERR_NOMEM;
    in->host = host;
    in->ctx = ctx;
    in->params = cfg->params;
    *instance = in;
    return IB_OK;
}

static void f_destroy(void *instance)
{
    free(instance);
}

static int f_open(void *instance)
{
    (void)instance;
    return IB_OK;
}

static void f_close(void *instance)
{
    (void)instance;
}

static int f_read(void *instance, uint32_t device, uint32_t group, struct ib_sample *samples)
{
    (void)device;
    (void)group;
    struct inst *in = instance;
    if (in->reads >= (uint64_t)in->params->after && in->params->mode == 1) {
        IB_WARN(in->host, in->ctx, "faulty: blocking forever in read_group()");
        for (;;)
            pause();
    }
    if (in->reads >= (uint64_t)in->params->after && in->params->mode == 2) {
        IB_WARN(in->host, in->ctx, "faulty: crashing in read_group()");
        /* A real invalid write (a page with no access), not a null store, which UBSan would
         * report and stop on before the signal. */
        volatile int *page = mmap(NULL, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        *page = 1; /* SIGSEGV */
    }
    in->reads++;
    /* One tag per group is all the tests use; the counter goes to the first sample. */
    samples[0].value.type = IB_V_UINT;
    samples[0].value.v.u = in->reads;
    ib_sample_good(&samples[0], in->host->now_ms());
    return IB_OK;
}

IB_PLUGIN_DEFINE(.name = "faulty", .version = "1", .description = "misbehaves on purpose (tests)",
                 .connection_schema = &conn_schema, .device_schema = &empty, .tag_schema = &empty,
                 .create = f_create, .destroy = f_destroy, .open = f_open, .close = f_close,
                 .read_group = f_read);
