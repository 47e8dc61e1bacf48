/* Tests of the built modbus.so through its descriptor, as the daemon loads it: a fake host, hand
 * built configs, and a libmodbus TCP server on a kernel-chosen loopback port in a thread. */
#include <dlfcn.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cmocka.h>
#include <modbus.h>

#include <ironbridge/ironbridge.h>

#include "params.h"

static const char *plugin_path;
static const struct ib_plugin *plugin;

/* ---- Fake host --------------------------------------------------------------------------------
 */

struct fake_host {
    struct ib_host host;
    unsigned n_logs;
    unsigned n_warnings;
    char last_log[512];
    unsigned n_config_errors;
    char config_keys[16][24];
    const void *config_where[16];
};

static struct fake_host *fake_of(struct ib_host_ctx *ctx)
{
    return (struct fake_host *)(void *)ctx;
}

static void fake_log(struct ib_host_ctx *ctx, int level, const char *device, const char *tag,
                     const char *fmt, ...)
{
    struct fake_host *f = fake_of(ctx);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(f->last_log, sizeof(f->last_log), fmt, ap);
    va_end(ap);
    f->n_logs++;
    if (level <= IB_LOG_WARNING)
        f->n_warnings++;
    fprintf(stderr, "  [plugin log %d] %s%s%s: %s\n", level, device ? device : "-", tag ? "/" : "",
            tag ? tag : "", f->last_log);
}

static void fake_config_error(struct ib_host_ctx *ctx, const void *where, const char *key,
                              const char *fmt, ...)
{
    struct fake_host *f = fake_of(ctx);
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (f->n_config_errors < 16) {
        snprintf(f->config_keys[f->n_config_errors], sizeof(f->config_keys[0]), "%s",
                 key ? key : "");
        f->config_where[f->n_config_errors] = where;
    }
    f->n_config_errors++;
    fprintf(stderr, "  [config error] %s: %s\n", key ? key : "-", msg);
}

static int64_t fake_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t fake_monotonic_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void fake_init(struct fake_host *f)
{
    memset(f, 0, sizeof(*f));
    f->host.abi_major = IB_ABI_MAJOR;
    f->host.abi_minor = IB_ABI_MINOR;
    f->host.size = sizeof(struct ib_host);
    f->host.log = fake_log;
    f->host.config_error = fake_config_error;
    f->host.now_ms = fake_now_ms;
    f->host.monotonic_ms = fake_monotonic_ms;
}

static struct ib_host_ctx *ctx_of(struct fake_host *f)
{
    return (struct ib_host_ctx *)(void *)f;
}

/* ---- Params as the daemon fills them: zeroed, then every default applied ------------------- */

static void fill_defaults(const struct ib_schema *schema, void *params)
{
    memset(params, 0, schema->struct_size);
    for (size_t i = 0; i < schema->n_entries; i++) {
        const struct ib_schema_entry *e = &schema->entries[i];
        char *p = (char *)params + e->offset;
        if (e->type == IB_S_ENUM) {
            int32_t idx = -1;
            for (int32_t c = 0; e->def != NULL && e->choices[c] != NULL; c++)
                if (strcmp(e->choices[c], e->def) == 0)
                    idx = c;
            if (e->def != NULL && idx < 0)
                fail_msg("default %s of %s is not a choice", e->def, e->key);
            memcpy(p, &idx, sizeof(idx));
        } else if (e->type == IB_S_INT && e->def != NULL) {
            int64_t v = strtoll(e->def, NULL, 10);
            if ((e->flags & IB_SF_RANGE) && (v < e->min || v > e->max))
                fail_msg("default %s of %s is out of range", e->def, e->key);
            memcpy(p, &v, sizeof(v));
        } else if (e->type == IB_S_STRING && e->def != NULL) {
            memcpy(p, &e->def, sizeof(e->def));
        }
    }
}

/* ---- A libmodbus server in a thread ------------------------------------------------------------
 */

struct server {
    pthread_t thread;
    bool running;
    modbus_t *ctx;
    modbus_mapping_t *map;
    int listen_fd;
    int port;
    int stop_pipe[2];
    pthread_mutex_t lock; /* guards map and everything below */
    pthread_cond_t cond;
    bool stopping;
    bool hold_next; /* receive the next request, then answer only once released */
    bool holding;
    bool released;
    bool late_sent;
    unsigned requests;
    int last_unit;
};

static void *server_main(void *arg)
{
    struct server *s = arg;
    uint8_t query[MODBUS_TCP_MAX_ADU_LENGTH];

    for (;;) {
        struct pollfd lp[2] = {{s->listen_fd, POLLIN, 0}, {s->stop_pipe[0], POLLIN, 0}};
        if (poll(lp, 2, -1) < 0 && errno != EINTR)
            break;
        if (lp[1].revents)
            break;
        if (!(lp[0].revents & POLLIN))
            continue;
        int lfd = s->listen_fd;
        int c = modbus_tcp_accept(s->ctx, &lfd);
        if (c < 0)
            continue;
        bool stop = false;
        for (;;) {
            struct pollfd cp[2] = {{c, POLLIN, 0}, {s->stop_pipe[0], POLLIN, 0}};
            if (poll(cp, 2, -1) < 0 && errno != EINTR)
                break;
            if (cp[1].revents) {
                stop = true;
                break;
            }
            if (!(cp[0].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            int rc = modbus_receive(s->ctx, query);
            if (rc < 0)
                break;
            if (rc == 0)
                continue;
            pthread_mutex_lock(&s->lock);
            s->requests++;
            s->last_unit = query[6];
            bool held = s->hold_next;
            if (held) {
                s->hold_next = false;
                s->holding = true;
                pthread_cond_broadcast(&s->cond);
                while (!s->released && !s->stopping)
                    pthread_cond_wait(&s->cond, &s->lock);
            }
            modbus_reply(s->ctx, query, rc, s->map);
            if (held) {
                s->late_sent = true;
                pthread_cond_broadcast(&s->cond);
            }
            pthread_mutex_unlock(&s->lock);
        }
        close(c);
        if (stop)
            break;
    }
    close(s->listen_fd);
    return NULL;
}

static struct server *server_start(void)
{
    struct server *s = calloc(1, sizeof(*s));
    assert_non_null(s);
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->cond, NULL);
    assert_int_equal(pipe(s->stop_pipe), 0);
    s->map = modbus_mapping_new(100, 100, 200, 100);
    assert_non_null(s->map);
    /* Port 0: the kernel picks a free one, so tests can run side by side. */
    s->ctx = modbus_new_tcp("127.0.0.1", 0);
    assert_non_null(s->ctx);
    s->listen_fd = modbus_tcp_listen(s->ctx, 4);
    assert_true(s->listen_fd >= 0);
    struct sockaddr_in addr;
    socklen_t len = sizeof(addr);
    assert_int_equal(getsockname(s->listen_fd, (struct sockaddr *)&addr, &len), 0);
    s->port = ntohs(addr.sin_port);
    assert_int_equal(pthread_create(&s->thread, NULL, server_main, s), 0);
    s->running = true;
    return s;
}

/* Stop the thread and close its sockets; the mapping stays readable. */
static void server_stop(struct server *s)
{
    if (!s->running)
        return;
    pthread_mutex_lock(&s->lock);
    s->stopping = true;
    pthread_cond_broadcast(&s->cond);
    pthread_mutex_unlock(&s->lock);
    assert_int_equal(write(s->stop_pipe[1], "x", 1), 1);
    pthread_join(s->thread, NULL);
    s->running = false;
}

static void server_free(struct server *s)
{
    if (s == NULL)
        return;
    server_stop(s);
    close(s->stop_pipe[0]);
    close(s->stop_pipe[1]);
    modbus_mapping_free(s->map);
    modbus_free(s->ctx);
    pthread_cond_destroy(&s->cond);
    pthread_mutex_destroy(&s->lock);
    free(s);
}

/* ---- Config building --------------------------------------------------------------------------
 */

#define MAX_TAGS 32

struct test_config {
    struct mb_connection_params cp;
    struct mb_device_params dp;
    struct mb_tag_params tp[MAX_TAGS];
    struct ib_tag_config tags[MAX_TAGS];
    struct ib_group_config group;
    struct ib_device_config device;
    struct ib_connection_config conn;
};

static void config_init(struct test_config *c, int port)
{
    memset(c, 0, sizeof(*c));
    fill_defaults(plugin->connection_schema, &c->cp);
    fill_defaults(plugin->device_schema, &c->dp);
    c->cp.host = "127.0.0.1";
    c->cp.port = port;
    c->group = (struct ib_group_config){
        .name = "g", .interval_ms = 1000, .tags = c->tags, .where = &c->group};
    c->device = (struct ib_device_config){
        .name = "dev", .params = &c->dp, .n_groups = 1, .groups = &c->group, .where = &c->device};
    c->conn = (struct ib_connection_config){
        .name = "conn", .params = &c->cp, .n_devices = 1, .devices = &c->device, .where = &c->conn};
}

/* Append a tag; type and order -1 mean "absent in YAML". Returns its index. */
static uint32_t add_tag(struct test_config *c, const char *name, enum mb_p_table table,
                        int64_t address, int32_t type, int32_t order, bool writable)
{
    uint32_t i = c->group.n_tags++;
    assert_true(i < MAX_TAGS);
    fill_defaults(plugin->tag_schema, &c->tp[i]);
    c->tp[i].table = table;
    c->tp[i].address = address;
    c->tp[i].type = type;
    c->tp[i].order = order;
    c->tags[i] = (struct ib_tag_config){
        .name = name, .params = &c->tp[i], .where = &c->tp[i], .writable = writable};
    return i;
}

/* ---- Fixtures ---------------------------------------------------------------------------------
 */

struct fixture {
    struct fake_host fake;
    struct server *srv;
    struct test_config cfg;
    void *inst;
    struct ib_sample samples[MAX_TAGS];
};

static int setup(void **state)
{
    struct fixture *fx = calloc(1, sizeof(*fx));
    if (fx == NULL)
        return -1;
    fake_init(&fx->fake);
    fx->srv = server_start();
    config_init(&fx->cfg, fx->srv->port);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *fx = *state;
    if (fx->inst != NULL) {
        plugin->close(fx->inst);
        plugin->destroy(fx->inst);
    }
    server_free(fx->srv);
    free(fx);
    return 0;
}

static void create_and_open(struct fixture *fx)
{
    assert_int_equal(plugin->create(&fx->fake.host, ctx_of(&fx->fake), &fx->cfg.conn, &fx->inst),
                     0);
    assert_non_null(fx->inst);
    assert_int_equal(plugin->open(fx->inst), 0);
}

/* read_group with every sample pre-filled with garbage, so an unfilled one shows. */
static int read_group(struct fixture *fx)
{
    memset(fx->samples, 0xA5, sizeof(fx->samples));
    return plugin->read_group(fx->inst, 0, 0, fx->samples);
}

static void set_regs(struct server *s, int table_input, int addr, const uint16_t *v, int n)
{
    pthread_mutex_lock(&s->lock);
    uint16_t *tab = table_input ? s->map->tab_input_registers : s->map->tab_registers;
    memcpy(tab + addr, v, (size_t)n * sizeof(*v));
    pthread_mutex_unlock(&s->lock);
}

static void assert_good(const struct ib_sample *s, uint8_t vtype)
{
    if (s->quality != IB_Q_GOOD)
        fail_msg("sample bad: reason %u code %u", s->reason, s->code);
    assert_int_equal(s->reason, IB_R_NONE);
    assert_int_equal(s->value.type, vtype);
}

static void assert_bad(const struct ib_sample *s, uint8_t reason, uint16_t code)
{
    assert_int_equal(s->quality, IB_Q_BAD);
    assert_int_equal(s->reason, reason);
    assert_int_equal(s->code, code);
    assert_int_equal(s->value.type, IB_V_NONE);
}

/* ---- Tests ------------------------------------------------------------------------------------
 */

static void test_descriptor(void **state)
{
    (void)state;
    assert_non_null(plugin);
    assert_int_equal(plugin->abi_major, IB_ABI_MAJOR);
    assert_true(plugin->abi_minor <= IB_ABI_MINOR);
    assert_int_equal(plugin->size, sizeof(struct ib_plugin));
    assert_string_equal(plugin->name, "modbus");
    assert_non_null(plugin->version);
    assert_non_null(plugin->description);
    assert_non_null(plugin->create);
    assert_non_null(plugin->destroy);
    assert_non_null(plugin->open);
    assert_non_null(plugin->close);
    assert_non_null(plugin->read_group);
    assert_non_null(plugin->write_tag);

    const struct ib_schema *schemas[] = {plugin->connection_schema, plugin->device_schema,
                                         plugin->tag_schema};
    const size_t sizes[] = {sizeof(struct mb_connection_params), sizeof(struct mb_device_params),
                            sizeof(struct mb_tag_params)};
    for (size_t s = 0; s < 3; s++) {
        assert_non_null(schemas[s]);
        assert_int_equal(schemas[s]->struct_size, sizes[s]);
        assert_true(schemas[s]->n_entries > 0);
        for (size_t i = 0; i < schemas[s]->n_entries; i++) {
            const struct ib_schema_entry *e = &schemas[s]->entries[i];
            assert_non_null(e->key);
            assert_non_null(e->description);
            assert_true(strlen(e->description) > 10);
            assert_true(e->offset < schemas[s]->struct_size);
            if (e->type == IB_S_ENUM)
                assert_non_null(e->choices);
            for (size_t j = 0; j < i; j++)
                assert_string_not_equal(e->key, schemas[s]->entries[j].key);
        }
    }
    /* The generic keys are the daemon's; the plugin must not claim them. */
    static const char *const generic[] = {"name",        "plugin",   "devices",    "groups",
                                          "interval_ms", "tags",     "scale",      "offset",
                                          "unit",        "writable", "description"};
    for (size_t s = 0; s < 3; s++)
        for (size_t i = 0; i < schemas[s]->n_entries; i++)
            for (size_t g = 0; g < sizeof(generic) / sizeof(generic[0]); g++)
                assert_string_not_equal(schemas[s]->entries[i].key, generic[g]);

    /* Defaults as documented. */
    struct mb_connection_params cp;
    struct mb_device_params dp;
    struct mb_tag_params tp;
    fill_defaults(plugin->connection_schema, &cp);
    fill_defaults(plugin->device_schema, &dp);
    fill_defaults(plugin->tag_schema, &tp);
    assert_int_equal(cp.transport, MB_P_TRANSPORT_TCP);
    assert_null(cp.host);
    assert_int_equal(cp.port, 502);
    assert_int_equal(cp.timeout_ms, 1000);
    assert_int_equal(cp.connect_timeout_ms, 3000);
    assert_int_equal(dp.unit_id, 1);
    assert_int_equal(dp.byte_order, MB_P_ORDER_ABCD);
    assert_int_equal(dp.timeout_ms, 0);
    assert_int_equal(dp.max_registers, 125);
    assert_int_equal(dp.max_bits, 2000);
    assert_int_equal(tp.table, -1);
    assert_int_equal(tp.type, -1);
    assert_int_equal(tp.order, -1);
}

static void test_read_every_type_and_order(void **state)
{
    struct fixture *fx = *state;
    struct server *s = fx->srv;
    struct test_config *c = &fx->cfg;

    static const uint16_t holding[] = {
        0x42F6, 0xE979, /* 0: float32 123.456 ABCD */
        0xE979, 0x42F6, /* 2: float32 123.456 CDAB */
        0xFFFF, 0xFFFE, /* 4: int32 -2 ABCD */
        0xFFFE, 0xFFFF, /* 6: int32 -2 CDAB */
        0x1234, 0x5678, /* 8: uint32 ABCD */
        0x5678, 0x1234, /* 10: uint32 CDAB */
        0xFB2E,         /* 12: int16 -1234 */
        0xFDE8,         /* 13: uint16 65000 */
        0x0000, 0x7FC0, /* 14: float32 NaN, CDAB */
    };
    static const uint16_t input[] = {4242, 0x0000, 0xBE20};
    set_regs(s, 0, 0, holding, 16);
    set_regs(s, 1, 0, input, 3);
    pthread_mutex_lock(&s->lock);
    s->map->tab_bits[0] = 1;
    s->map->tab_bits[1] = 0;
    s->map->tab_bits[2] = 1;
    s->map->tab_input_bits[5] = 1;
    pthread_mutex_unlock(&s->lock);

    /* The device's default order is CDAB; ABCD tags say so. */
    c->dp.byte_order = MB_P_ORDER_CDAB;
    c->dp.unit_id = 7;
    uint32_t f_abcd =
        add_tag(c, "f_abcd", MB_P_TABLE_HOLDING, 0, MB_P_TYPE_FLOAT32, MB_P_ORDER_ABCD, false);
    uint32_t f_cdab = add_tag(c, "f_cdab", MB_P_TABLE_HOLDING, 2, MB_P_TYPE_FLOAT32, -1, false);
    uint32_t i_abcd =
        add_tag(c, "i_abcd", MB_P_TABLE_HOLDING, 4, MB_P_TYPE_INT32, MB_P_ORDER_ABCD, false);
    uint32_t i_cdab =
        add_tag(c, "i_cdab", MB_P_TABLE_HOLDING, 6, MB_P_TYPE_INT32, MB_P_ORDER_CDAB, false);
    uint32_t u_abcd =
        add_tag(c, "u_abcd", MB_P_TABLE_HOLDING, 8, MB_P_TYPE_UINT32, MB_P_ORDER_ABCD, false);
    uint32_t u_cdab = add_tag(c, "u_cdab", MB_P_TABLE_HOLDING, 10, MB_P_TYPE_UINT32, -1, false);
    uint32_t i16 = add_tag(c, "i16", MB_P_TABLE_HOLDING, 12, MB_P_TYPE_INT16, -1, false);
    uint32_t u16 = add_tag(c, "u16", MB_P_TABLE_HOLDING, 13, -1, -1, false);
    uint32_t nan = add_tag(c, "nan", MB_P_TABLE_HOLDING, 14, MB_P_TYPE_FLOAT32, -1, false);
    uint32_t in16 = add_tag(c, "in16", MB_P_TABLE_INPUT, 0, -1, -1, false);
    uint32_t in_f = add_tag(c, "in_f", MB_P_TABLE_INPUT, 1, MB_P_TYPE_FLOAT32, -1, false);
    uint32_t c0 = add_tag(c, "c0", MB_P_TABLE_COIL, 0, -1, -1, false);
    uint32_t c1 = add_tag(c, "c1", MB_P_TABLE_COIL, 1, MB_P_TYPE_BOOL, -1, false);
    uint32_t c2 = add_tag(c, "c2", MB_P_TABLE_COIL, 2, -1, -1, false);
    uint32_t d5 = add_tag(c, "d5", MB_P_TABLE_DISCRETE_INPUT, 5, -1, -1, false);
    uint32_t dup = add_tag(c, "dup", MB_P_TABLE_HOLDING, 13, MB_P_TYPE_UINT16, -1, false);
    create_and_open(fx);

    unsigned before_requests = s->requests;
    int64_t t0 = fake_now_ms();
    assert_int_equal(read_group(fx), 0);
    int64_t t1 = fake_now_ms();
    struct ib_sample *sm = fx->samples;

    /* 4 requests: holding 0..15, input 0..2, coils 0..2, discrete input 5. */
    pthread_mutex_lock(&s->lock);
    assert_int_equal(s->requests - before_requests, 4);
    assert_int_equal(s->last_unit, 7);
    pthread_mutex_unlock(&s->lock);

    assert_good(&sm[f_abcd], IB_V_DOUBLE);
    assert_true(sm[f_abcd].value.v.d == (double)123.456f);
    assert_good(&sm[f_cdab], IB_V_DOUBLE);
    assert_true(sm[f_cdab].value.v.d == (double)123.456f);
    assert_good(&sm[i_abcd], IB_V_INT);
    assert_true(sm[i_abcd].value.v.i == -2);
    assert_good(&sm[i_cdab], IB_V_INT);
    assert_true(sm[i_cdab].value.v.i == -2);
    assert_good(&sm[u_abcd], IB_V_UINT);
    assert_true(sm[u_abcd].value.v.u == 0x12345678u);
    assert_good(&sm[u_cdab], IB_V_UINT);
    assert_true(sm[u_cdab].value.v.u == 0x12345678u);
    assert_good(&sm[i16], IB_V_INT);
    assert_true(sm[i16].value.v.i == -1234);
    assert_good(&sm[u16], IB_V_UINT);
    assert_true(sm[u16].value.v.u == 65000);
    assert_good(&sm[dup], IB_V_UINT);
    assert_true(sm[dup].value.v.u == 65000);
    assert_bad(&sm[nan], IB_R_DECODE, 0);
    assert_good(&sm[in16], IB_V_UINT);
    assert_true(sm[in16].value.v.u == 4242);
    assert_good(&sm[in_f], IB_V_DOUBLE);
    assert_true(sm[in_f].value.v.d == -0.15625);
    assert_good(&sm[c0], IB_V_BOOL);
    assert_true(sm[c0].value.v.b);
    assert_good(&sm[c1], IB_V_BOOL);
    assert_false(sm[c1].value.v.b);
    assert_good(&sm[c2], IB_V_BOOL);
    assert_true(sm[c2].value.v.b);
    assert_good(&sm[d5], IB_V_BOOL);
    assert_true(sm[d5].value.v.b);
    for (uint32_t i = 0; i < c->group.n_tags; i++) {
        assert_true(sm[i].ts_ms >= t0 && sm[i].ts_ms <= t1);
        assert_int_equal(sm[i].reserved, 0);
    }

    /* The NaN is logged once, not at every poll. */
    unsigned warnings = fx->fake.n_warnings;
    assert_int_equal(read_group(fx), 0);
    assert_bad(&sm[nan], IB_R_DECODE, 0);
    assert_int_equal(fx->fake.n_warnings, warnings);
}

static void test_exception_marks_only_its_request(void **state)
{
    struct fixture *fx = *state;
    struct test_config *c = &fx->cfg;
    static const uint16_t v[] = {11, 22};
    set_regs(fx->srv, 0, 0, v, 2);

    uint32_t coil = add_tag(c, "coil", MB_P_TABLE_COIL, 3, -1, -1, false);
    uint32_t in_ok = add_tag(c, "in_ok", MB_P_TABLE_INPUT, 99, -1, -1, false);
    /* The server maps 100 input registers: 150 is past the end (exception 2). */
    uint32_t in_bad1 = add_tag(c, "in_bad1", MB_P_TABLE_INPUT, 150, -1, -1, false);
    uint32_t in_bad2 = add_tag(c, "in_bad2", MB_P_TABLE_INPUT, 151, MB_P_TYPE_INT32, -1, false);
    uint32_t h0 = add_tag(c, "h0", MB_P_TABLE_HOLDING, 0, -1, -1, false);
    uint32_t h1 = add_tag(c, "h1", MB_P_TABLE_HOLDING, 1, -1, -1, false);
    create_and_open(fx);

    assert_int_equal(read_group(fx), IB_ERR_EXCEPTION);
    struct ib_sample *sm = fx->samples;
    assert_good(&sm[coil], IB_V_BOOL);
    assert_good(&sm[in_ok], IB_V_UINT);
    assert_bad(&sm[in_bad1], IB_R_EXCEPTION, 2);
    assert_bad(&sm[in_bad2], IB_R_EXCEPTION, 2);
    assert_true(sm[in_bad1].ts_ms > 0);
    /* The request after the failed one still ran. */
    assert_good(&sm[h0], IB_V_UINT);
    assert_true(sm[h0].value.v.u == 11);
    assert_good(&sm[h1], IB_V_UINT);
    assert_true(sm[h1].value.v.u == 22);

    /* Logged once, then not again while it repeats. */
    unsigned warnings = fx->fake.n_warnings;
    assert_true(warnings >= 1);
    for (int i = 0; i < 3; i++)
        assert_int_equal(read_group(fx), IB_ERR_EXCEPTION);
    assert_int_equal(fx->fake.n_warnings, warnings);
}

static void test_timeout_then_late_answer(void **state)
{
    struct fixture *fx = *state;
    struct server *s = fx->srv;
    struct test_config *c = &fx->cfg;
    static const uint16_t v[] = {0x0001, 0x0002};
    set_regs(s, 0, 40, v, 2);

    /* The device's timeout overrides the connection's: with the connection's 60 s this test
     * would run into meson's time limit. */
    c->cp.timeout_ms = 60000;
    c->dp.timeout_ms = 200;
    uint32_t t = add_tag(c, "u32", MB_P_TABLE_HOLDING, 40, MB_P_TYPE_UINT32, -1, false);
    create_and_open(fx);

    pthread_mutex_lock(&s->lock);
    s->hold_next = true;
    pthread_mutex_unlock(&s->lock);
    assert_int_equal(read_group(fx), IB_ERR_TIMEOUT);
    assert_bad(&fx->samples[t], IB_R_TIMEOUT, 0);

    /* Now the server answers the old request, after the plugin gave up on it. */
    pthread_mutex_lock(&s->lock);
    assert_true(s->holding);
    s->released = true;
    pthread_cond_broadcast(&s->cond);
    while (!s->late_sent)
        pthread_cond_wait(&s->cond, &s->lock);
    s->map->tab_registers[41] = 0x0003; /* the late answer carries 0x00010002 */
    pthread_mutex_unlock(&s->lock);

    /* The late answer sits in the socket before the answer to the next request. It must not be
     * taken for it: the transaction id differs, so it is a protocol error... */
    assert_int_equal(read_group(fx), IB_ERR_PROTOCOL);
    assert_bad(&fx->samples[t], IB_R_PROTOCOL, 0);
    /* ...after which the plugin reconnected by itself, and the next poll reads current data. */
    assert_int_equal(read_group(fx), 0);
    assert_good(&fx->samples[t], IB_V_UINT);
    assert_true(fx->samples[t].value.v.u == 0x00010003u);
}

static void test_write_round_trip(void **state)
{
    struct fixture *fx = *state;
    struct server *s = fx->srv;
    struct test_config *c = &fx->cfg;

    c->dp.byte_order = MB_P_ORDER_CDAB;
    uint32_t coil = add_tag(c, "coil", MB_P_TABLE_COIL, 10, -1, -1, true);
    uint32_t u16 = add_tag(c, "u16", MB_P_TABLE_HOLDING, 20, -1, -1, true);
    uint32_t i16 = add_tag(c, "i16", MB_P_TABLE_HOLDING, 21, MB_P_TYPE_INT16, -1, true);
    uint32_t i32 = add_tag(c, "i32", MB_P_TABLE_HOLDING, 30, MB_P_TYPE_INT32, -1, true);
    uint32_t f32 =
        add_tag(c, "f32", MB_P_TABLE_HOLDING, 40, MB_P_TYPE_FLOAT32, MB_P_ORDER_ABCD, true);
    uint32_t ro = add_tag(c, "ro", MB_P_TABLE_HOLDING, 50, -1, -1, false);
    uint32_t in = add_tag(c, "in", MB_P_TABLE_INPUT, 0, -1, -1, false);
    uint32_t di = add_tag(c, "di", MB_P_TABLE_DISCRETE_INPUT, 0, -1, -1, false);
    /* The server maps 200 holding registers: a write to 300 draws exception 2. */
    uint32_t far = add_tag(c, "far", MB_P_TABLE_HOLDING, 300, -1, -1, true);
    create_and_open(fx);

    const struct ib_value on = {.type = IB_V_BOOL, .v.b = true};
    const struct ib_value u = {.type = IB_V_UINT, .v.u = 65000};
    const struct ib_value neg = {.type = IB_V_INT, .v.i = -1234};
    const struct ib_value big_neg = {.type = IB_V_INT, .v.i = -2};
    const struct ib_value fl = {.type = IB_V_DOUBLE, .v.d = 123.456};
    assert_int_equal(plugin->write_tag(fx->inst, 0, 0, coil, &on), 0);
    assert_int_equal(plugin->write_tag(fx->inst, 0, 0, u16, &u), 0);
    assert_int_equal(plugin->write_tag(fx->inst, 0, 0, i16, &neg), 0);
    assert_int_equal(plugin->write_tag(fx->inst, 0, 0, i32, &big_neg), 0);
    assert_int_equal(plugin->write_tag(fx->inst, 0, 0, f32, &fl), 0);

    pthread_mutex_lock(&s->lock);
    assert_int_equal(s->map->tab_bits[10], 1);
    assert_int_equal(s->map->tab_registers[20], 65000);
    assert_int_equal(s->map->tab_registers[21], 0xFB2E);
    assert_int_equal(s->map->tab_registers[30], 0xFFFE); /* CDAB: low word first */
    assert_int_equal(s->map->tab_registers[31], 0xFFFF);
    assert_int_equal(s->map->tab_registers[40], 0x42F6);
    assert_int_equal(s->map->tab_registers[41], 0xE979);
    pthread_mutex_unlock(&s->lock);

    /* "far" fails with its own request; everything written reads back. */
    assert_int_equal(read_group(fx), IB_ERR_EXCEPTION);
    struct ib_sample *sm = fx->samples;
    assert_bad(&sm[far], IB_R_EXCEPTION, 2);
    assert_true(sm[coil].value.v.b);
    assert_true(sm[u16].value.v.u == 65000);
    assert_true(sm[i16].value.v.i == -1234);
    assert_true(sm[i32].value.v.i == -2);
    assert_true(sm[f32].value.v.d == (double)123.456f);

    /* An integral double is accepted for an integer tag (the daemon's inverse scaling). */
    const struct ib_value two = {.type = IB_V_DOUBLE, .v.d = 2.0};
    assert_int_equal(plugin->write_tag(fx->inst, 0, 0, u16, &two), 0);
    pthread_mutex_lock(&s->lock);
    assert_int_equal(s->map->tab_registers[20], 2);
    pthread_mutex_unlock(&s->lock);

    /* Refusals, with nothing sent. */
    unsigned requests = s->requests;
    const struct ib_value too_big = {.type = IB_V_UINT, .v.u = 70000};
    assert_int_equal(plugin->write_tag(fx->inst, 0, 0, u16, &too_big), IB_ERR_INVALID);
    const struct ib_value half = {.type = IB_V_DOUBLE, .v.d = 1.5};
    assert_int_equal(plugin->write_tag(fx->inst, 0, 0, i16, &half), IB_ERR_INVALID);
    const struct ib_value nan = {.type = IB_V_DOUBLE, .v.d = __builtin_nan("")};
    assert_int_equal(plugin->write_tag(fx->inst, 0, 0, f32, &nan), IB_ERR_INVALID);
    const struct ib_value seven = {.type = IB_V_INT, .v.i = 7};
    assert_int_equal(plugin->write_tag(fx->inst, 0, 0, coil, &seven), IB_ERR_INVALID);
    assert_int_equal(plugin->write_tag(fx->inst, 0, 0, ro, &u), IB_ERR_DENIED);
    assert_int_equal(plugin->write_tag(fx->inst, 0, 0, in, &u), IB_ERR_DENIED);
    assert_int_equal(plugin->write_tag(fx->inst, 0, 0, di, &on), IB_ERR_DENIED);
    assert_int_equal(plugin->write_tag(fx->inst, 0, 0, 99, &u), IB_ERR_INVALID);
    assert_int_equal(plugin->write_tag(fx->inst, 0, 1, 0, &u), IB_ERR_INVALID);
    assert_int_equal(plugin->write_tag(fx->inst, 1, 0, 0, &u), IB_ERR_INVALID);
    pthread_mutex_lock(&s->lock);
    assert_int_equal(s->requests, requests);
    assert_int_equal(s->map->tab_registers[20], 2);
    pthread_mutex_unlock(&s->lock);

    /* A write past the server's mapping comes back as the device's exception. */
    assert_int_equal(plugin->write_tag(fx->inst, 0, 0, far, &u), IB_ERR_EXCEPTION);
}

static void test_connection_lost(void **state)
{
    struct fixture *fx = *state;
    struct test_config *c = &fx->cfg;
    uint32_t a = add_tag(c, "a", MB_P_TABLE_HOLDING, 0, -1, -1, true);
    uint32_t b = add_tag(c, "b", MB_P_TABLE_COIL, 0, -1, -1, false);
    create_and_open(fx);
    assert_int_equal(read_group(fx), 0);

    server_stop(fx->srv);
    assert_int_equal(read_group(fx), IB_ERR_CONNECTION);
    /* Both requests' tags are bad: the first failed, the second was not tried. */
    assert_bad(&fx->samples[a], IB_R_CONN_LOST, 0);
    assert_bad(&fx->samples[b], IB_R_CONN_LOST, 0);
    assert_true(fx->samples[a].ts_ms > 0 && fx->samples[b].ts_ms > 0);

    /* The daemon closes and reopens; nobody listens now. */
    plugin->close(fx->inst);
    plugin->close(fx->inst); /* twice is fine */
    unsigned logs = fx->fake.n_logs;
    assert_int_equal(plugin->open(fx->inst), IB_ERR_CONNECTION);
    assert_int_equal(fx->fake.n_logs, logs + 1);
    assert_non_null(strstr(fx->fake.last_log, "cannot connect"));
    assert_non_null(strstr(fx->fake.last_log, "refused"));
    /* The same failure again is not logged again. */
    assert_int_equal(plugin->open(fx->inst), IB_ERR_CONNECTION);
    assert_int_equal(fx->fake.n_logs, logs + 1);

    /* Closed: every sample is still filled, and writes say so too. */
    assert_int_equal(read_group(fx), IB_ERR_CONNECTION);
    assert_bad(&fx->samples[a], IB_R_CONN_LOST, 0);
    assert_bad(&fx->samples[b], IB_R_CONN_LOST, 0);
    const struct ib_value one = {.type = IB_V_UINT, .v.u = 1};
    assert_int_equal(plugin->write_tag(fx->inst, 0, 0, a, &one), IB_ERR_CONNECTION);
}

static void test_create_reports_every_error(void **state)
{
    struct fixture *fx = *state;
    struct test_config *c = &fx->cfg;
    c->dp.unit_id = 250;
    c->dp.max_registers = 1;
    add_tag(c, "ok", MB_P_TABLE_HOLDING, 0, -1, -1, true);
    add_tag(c, "int_on_coil", MB_P_TABLE_COIL, 0, MB_P_TYPE_INT16, -1, false);
    add_tag(c, "bool_on_holding", MB_P_TABLE_HOLDING, 1, MB_P_TYPE_BOOL, -1, false);
    add_tag(c, "order_on_16bit", MB_P_TABLE_INPUT, 2, MB_P_TYPE_UINT16, MB_P_ORDER_CDAB, false);
    add_tag(c, "past_end", MB_P_TABLE_INPUT, 65535, MB_P_TYPE_FLOAT32, -1, false);
    add_tag(c, "ro_writable", MB_P_TABLE_DISCRETE_INPUT, 0, -1, -1, true);

    void *inst = (void *)1;
    assert_int_equal(plugin->create(&fx->fake.host, ctx_of(&fx->fake), &c->conn, &inst),
                     IB_ERR_INVALID);
    assert_null(inst);
    /* unit_id; type; type; order; address and max_registers of past_end; writable. */
    assert_int_equal(fx->fake.n_config_errors, 7);
    static const char *const keys[] = {"type", "type", "order", "address", "type", "writable"};
    assert_ptr_equal(fx->fake.config_where[0], &c->device);
    assert_string_equal(fx->fake.config_keys[0], "unit_id");
    for (unsigned i = 0; i < 6; i++)
        assert_string_equal(fx->fake.config_keys[1 + i], keys[i]);
    assert_ptr_equal(fx->fake.config_where[1], &c->tp[1]);
    assert_ptr_equal(fx->fake.config_where[6], &c->tp[5]);
}

static void test_create_does_no_io(void **state)
{
    struct fixture *fx = *state;
    struct test_config *c = &fx->cfg;
    /* A name that never resolves: create() must not try (--check runs it offline). */
    c->cp.host = "ironbridge-test.invalid";
    add_tag(c, "a", MB_P_TABLE_HOLDING, 0, -1, -1, false);
    void *inst = NULL;
    assert_int_equal(plugin->create(&fx->fake.host, ctx_of(&fx->fake), &c->conn, &inst), 0);
    assert_int_equal(fx->fake.n_logs, 0);
    /* No group, no device: fine too; destroy(NULL) is a no-op. */
    plugin->destroy(inst);
    plugin->destroy(NULL);
    c->group.n_tags = 0;
    inst = NULL;
    assert_int_equal(plugin->create(&fx->fake.host, ctx_of(&fx->fake), &c->conn, &inst), 0);
    assert_int_equal(plugin->read_group(inst, 0, 0, fx->samples), 0);
    plugin->destroy(inst);
    c->conn.n_devices = 0;
    inst = NULL;
    assert_int_equal(plugin->create(&fx->fake.host, ctx_of(&fx->fake), &c->conn, &inst), 0);
    assert_int_equal(plugin->read_group(inst, 0, 0, fx->samples), IB_ERR_INVALID);
    plugin->destroy(inst);
    /* An empty host is a config error. */
    c->cp.host = "";
    assert_int_equal(plugin->create(&fx->fake.host, ctx_of(&fx->fake), &c->conn, &inst),
                     IB_ERR_INVALID);
    assert_string_equal(fx->fake.config_keys[0], "host");
}

static int load_plugin(void **state)
{
    (void)state;
    void *h = dlopen(plugin_path, RTLD_NOW | RTLD_LOCAL);
    if (h == NULL) {
        fprintf(stderr, "dlopen %s: %s\n", plugin_path, dlerror());
        return -1;
    }
    plugin = dlsym(h, IB_PLUGIN_SYMBOL);
    if (plugin == NULL) {
        fprintf(stderr, "dlsym: %s\n", dlerror());
        dlclose(h);
        return -1;
    }
    /* Kept open until exit: the samples' and schemas' strings live in the module. */
    return 0;
}

int main(int argc, char **argv)
{
    plugin_path = argc > 1 ? argv[1] : getenv("IB_MODBUS_PLUGIN");
    if (plugin_path == NULL) {
        fprintf(stderr, "usage: %s path/to/modbus.so\n", argv[0]);
        return 2;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_descriptor),
        cmocka_unit_test_setup_teardown(test_read_every_type_and_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_exception_marks_only_its_request, setup, teardown),
        cmocka_unit_test_setup_teardown(test_timeout_then_late_answer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_connection_lost, setup, teardown),
        cmocka_unit_test_setup_teardown(test_create_reports_every_error, setup, teardown),
        cmocka_unit_test_setup_teardown(test_create_does_no_io, setup, teardown),
    };
    return cmocka_run_group_tests(tests, load_plugin, NULL);
}
