/* Test harness for the built modbus.so: fake host, configs, and a misbehaving-on-demand Modbus
 * server thread (TCP, RTU over TCP, RTU on a pty) answering through libmodbus. */
#include "harness.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pty.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cmocka.h>

const struct ib_plugin *plugin;

void mbt_load_plugin(int argc, char **argv)
{
    const char *path = argc > 1 ? argv[1] : getenv("IB_MODBUS_PLUGIN");
    if (path == NULL) {
        fprintf(stderr, "usage: %s path/to/modbus.so\n", argv[0]);
        exit(2);
    }
    /* Kept open until exit: the samples' and schemas' strings live in the module. */
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (h == NULL) {
        fprintf(stderr, "dlopen %s: %s\n", path, dlerror());
        exit(2);
    }
    plugin = dlsym(h, IB_PLUGIN_SYMBOL);
    if (plugin == NULL) {
        fprintf(stderr, "dlsym: %s\n", dlerror());
        exit(2);
    }
}

/* ---- Fake host ------------------------------------------------------------------------------- */

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
    if (f->n_logs < MBT_LOG_LINES) {
        memcpy(f->lines[f->n_logs], f->last_log, sizeof(f->lines[0]) - 1);
        f->lines[f->n_logs][sizeof(f->lines[0]) - 1] = '\0';
        f->levels[f->n_logs] = level;
    }
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
    snprintf(f->last_config_error, sizeof(f->last_config_error), "%s", msg);
    fprintf(stderr, "  [config error] %s: %s\n", key ? key : "-", msg);
}

static int64_t clock_ms(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t fake_now_ms(void)
{
    return clock_ms(CLOCK_REALTIME);
}

static int64_t fake_monotonic_ms(void)
{
    return clock_ms(CLOCK_MONOTONIC);
}

void fake_init(struct fake_host *f)
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

struct ib_host_ctx *ctx_of(struct fake_host *f)
{
    return (struct ib_host_ctx *)(void *)f;
}

unsigned mbt_log_count(const struct fake_host *f, unsigned from, ...)
{
    unsigned n = 0;
    unsigned end = f->n_logs < MBT_LOG_LINES ? f->n_logs : MBT_LOG_LINES;
    for (unsigned i = from; i < end; i++) {
        va_list ap;
        va_start(ap, from);
        bool all = true;
        for (const char *s = va_arg(ap, const char *); s != NULL; s = va_arg(ap, const char *))
            if (strstr(f->lines[i], s) == NULL)
                all = false;
        va_end(ap);
        n += all;
    }
    return n;
}

unsigned mbt_log_count_level(const struct fake_host *f, unsigned from, int level)
{
    unsigned n = 0;
    unsigned end = f->n_logs < MBT_LOG_LINES ? f->n_logs : MBT_LOG_LINES;
    for (unsigned i = from; i < end; i++)
        n += f->levels[i] <= level;
    return n;
}

/* ---- Configs --------------------------------------------------------------------------------- */

void fill_defaults(const struct ib_schema *schema, void *params)
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
        } else if (e->type == IB_S_BOOL && e->def != NULL) {
            bool b = strcmp(e->def, "true") == 0;
            memcpy(p, &b, sizeof(b));
        } else if (e->type == IB_S_STRING && e->def != NULL) {
            memcpy(p, &e->def, sizeof(e->def));
        }
    }
}

static void config_base(struct mbt_config *c)
{
    memset(c, 0, sizeof(*c));
    fill_defaults(plugin->connection_schema, &c->cp);
    c->conn = (struct ib_connection_config){
        .name = "conn", .params = &c->cp, .devices = c->device, .where = &c->conn};
    mbt_add_device(c, 1);
}

void mbt_config_tcp(struct mbt_config *c, int port)
{
    config_base(c);
    c->cp.host = "127.0.0.1";
    c->cp.port = port;
}

void mbt_config_rtu(struct mbt_config *c, const char *serial_port)
{
    config_base(c);
    c->cp.transport = MB_P_TRANSPORT_RTU;
    c->cp.serial_port = serial_port;
}

void mbt_config_rtu_over_tcp(struct mbt_config *c, int port)
{
    config_base(c);
    c->cp.transport = MB_P_TRANSPORT_RTU_OVER_TCP;
    c->cp.host = "127.0.0.1";
    c->cp.port = port;
}

uint32_t mbt_add_device(struct mbt_config *c, int unit_id)
{
    uint32_t d = c->conn.n_devices++;
    assert_true(d < MBT_MAX_DEVICES);
    fill_defaults(plugin->device_schema, &c->dp[d]);
    c->dp[d].unit_id = unit_id;
    snprintf(c->dev_names[d], sizeof(c->dev_names[d]), d == 0 ? "dev" : "dev%u", d);
    c->group[d] = (struct ib_group_config){
        .name = "g", .interval_ms = 1000, .tags = c->tags[d], .where = &c->group[d]};
    c->device[d] = (struct ib_device_config){.name = c->dev_names[d],
                                             .params = &c->dp[d],
                                             .n_groups = 1,
                                             .groups = &c->group[d],
                                             .where = &c->device[d]};
    return d;
}

uint32_t mbt_tag(struct mbt_config *c, uint32_t dev, const char *name, int32_t table,
                 const char *address, int32_t type, int32_t order, bool writable)
{
    uint32_t i = c->group[dev].n_tags++;
    assert_true(i < MBT_MAX_TAGS);
    struct mb_tag_params *tp = &c->tp[dev][i];
    fill_defaults(plugin->tag_schema, tp);
    snprintf(c->addr[dev][i], sizeof(c->addr[dev][i]), "%s", address);
    tp->address = c->addr[dev][i];
    tp->table = table;
    tp->type = type;
    tp->order = order;
    c->tags[dev][i] =
        (struct ib_tag_config){.name = name, .params = tp, .where = tp, .writable = writable};
    return i;
}

uint32_t add_tag(struct mbt_config *c, const char *name, enum mb_p_table table, int64_t address,
                 int32_t type, int32_t order, bool writable)
{
    char text[24];
    snprintf(text, sizeof(text), "%lld", (long long)address);
    return mbt_tag(c, 0, name, (int32_t)table, text, type, order, writable);
}

/* ---- The server ------------------------------------------------------------------------------ */

/* CRC-16/MODBUS by table, written apart from the plugin's bitwise one so that the server does
 * not share a mistake with the code under test. */
static uint16_t server_crc(const uint8_t *p, size_t n)
{
    static uint16_t table[256];
    static bool made;
    if (!made) {
        for (unsigned i = 0; i < 256; i++) {
            uint16_t r = (uint16_t)i;
            for (int k = 0; k < 8; k++)
                r = (uint16_t)((r >> 1) ^ ((r & 1) ? 0xA001 : 0));
            table[i] = r;
        }
        made = true;
    }
    uint16_t crc = 0xFFFF;
    while (n--)
        crc = (uint16_t)((crc >> 8) ^ table[(crc ^ *p++) & 0xFF]);
    return crc;
}

static void set_crc(uint8_t *r, size_t n)
{
    uint16_t crc = server_crc(r, n - 2);
    r[n - 2] = (uint8_t)crc;
    r[n - 1] = (uint8_t)(crc >> 8);
}

/* Read exactly n bytes unless stopped or the peer goes quiet for quiet_ms (0: wait forever).
 * Returns the bytes read, or -1 on stop / end of file. */
static ssize_t read_n(struct mbt_server *s, int fd, uint8_t *buf, size_t n, int quiet_ms)
{
    size_t have = 0;
    while (have < n) {
        struct pollfd p[2] = {{fd, POLLIN, 0}, {s->stop_pipe[0], POLLIN, 0}};
        int rc = poll(p, 2, quiet_ms > 0 && have > 0 ? quiet_ms : -1);
        if (rc < 0 && errno == EINTR)
            continue;
        if (rc < 0 || p[1].revents)
            return -1;
        if (rc == 0)
            return (ssize_t)have;
        ssize_t r = read(fd, buf + have, n - have);
        if (r <= 0) {
            if (r < 0 && (errno == EAGAIN || errno == EINTR))
                continue;
            return -1;
        }
        have += (size_t)r;
    }
    return (ssize_t)have;
}

/* One request frame, framed by the test's own reading of the protocol. */
static ssize_t read_request(struct mbt_server *s, int fd, uint8_t *buf)
{
    if (s->kind == MBT_TCP) {
        ssize_t n = read_n(s, fd, buf, 7, 500);
        if (n < 7)
            return n < 0 ? -1 : 0;
        size_t len = (size_t)((buf[4] << 8) | buf[5]);
        if (len < 2 || len > 254)
            return -1;
        ssize_t m = read_n(s, fd, buf + 7, len - 1, 500);
        return m < 0 ? -1 : 7 + m;
    }
    ssize_t n = read_n(s, fd, buf, 2, 50);
    if (n < 2)
        return n < 0 ? -1 : 0;
    size_t total;
    if (buf[1] >= 1 && buf[1] <= 6) {
        total = 8;
    } else if (buf[1] == 15 || buf[1] == 16) {
        if (read_n(s, fd, buf + 2, 5, 50) < 5)
            return 0;
        total = 7 + (size_t)buf[6] + 2;
        ssize_t m = read_n(s, fd, buf + 7, total - 7, 50);
        return m < 0 ? -1 : 7 + m;
    } else {
        return 2; /* not a request: libmodbus will refuse it */
    }
    ssize_t m = read_n(s, fd, buf + 2, total - 2, 50);
    return m < 0 ? -1 : 2 + m;
}

static void drain_fd(int fd)
{
    uint8_t junk[512];
    while (recv(fd, junk, sizeof(junk), MSG_DONTWAIT) > 0)
        ;
}

/* Spoil an answer as told. r holds n bytes with room for more. */
static void spoil(const struct mbt_server *s, enum mbt_fault f, uint8_t *r, size_t *n)
{
    bool tcp = s->kind == MBT_TCP;
    size_t fc = tcp ? 7 : 1;
    switch (f) {
    case MBT_WRONG_TID:
        r[1] ^= 0x55;
        return;
    case MBT_WRONG_LENGTH:
        if (r[fc] <= 4 && *n >= fc + 4) {
            r[fc + 1] = (uint8_t)(r[fc + 1] - 2); /* one register short */
            *n -= 2;
            if (tcp) {
                unsigned len = (unsigned)((r[4] << 8) | r[5]) - 2;
                r[4] = (uint8_t)(len >> 8);
                r[5] = (uint8_t)len;
            } else {
                set_crc(r, *n);
            }
        }
        return;
    case MBT_LENGTH_FIELD:
        if (tcp) {
            r[4] = 0;
            r[5] = 46;
        } else {
            r[fc + 1] = (uint8_t)(r[fc + 1] + 40);
            set_crc(r, *n);
        }
        return;
    case MBT_WRONG_FUNCTION:
        r[fc] = r[fc] == 4 ? 3 : 4;
        if (!tcp)
            set_crc(r, *n);
        return;
    case MBT_WRONG_UNIT:
        r[tcp ? 6 : 0] ^= 1;
        if (!tcp)
            set_crc(r, *n);
        return;
    case MBT_BAD_CRC:
        r[*n - 1] ^= 0xFF;
        return;
    case MBT_TRUNCATED:
        *n /= 2;
        return;
    case MBT_TRAILING:
        r[*n] = 0x00;
        r[*n + 1] = 0x01;
        r[*n + 2] = 0x02;
        *n += 3;
        return;
    case MBT_GARBAGE: {
        static const uint8_t noise[] = {0x5A, 0xA5, 0x00, 0xFF, 0x13, 0x37, 0x42, 0x24, 0x99};
        memcpy(r, noise, sizeof(noise));
        *n = sizeof(noise);
        return;
    }
    case MBT_WRONG_VALUE_CRC:
        r[fc + 2] ^= 0x01;
        return;
    case MBT_FLIP:
        r[s->flip_pos % *n] ^= s->flip_xor;
        return;
    default:
        return;
    }
}

/* Serve one request on fd. Returns false when the client is gone or the server stops. */
static bool serve_one(struct mbt_server *s, int fd)
{
    uint8_t buf[MODBUS_TCP_MAX_ADU_LENGTH + 8], req[MODBUS_TCP_MAX_ADU_LENGTH];
    uint8_t reply[MODBUS_TCP_MAX_ADU_LENGTH + 16];
    ssize_t len = read_request(s, fd, buf);
    if (len < 0)
        return false;
    if (len == 0)
        return true;
    int unit = s->kind == MBT_TCP ? (len > 6 ? buf[6] : 0) : buf[0];

    pthread_mutex_lock(&s->lock);
    s->requests++;
    s->unit_requests[unit]++;
    s->last_fc = s->kind == MBT_TCP ? (len > 7 ? buf[7] : 0) : (len > 1 ? buf[1] : 0);
    enum mbt_fault f = MBT_OK;
    bool live = s->live[unit];
    if (live && s->fault_count > 0) {
        f = s->fault;
        s->fault_count--;
    }
    pthread_mutex_unlock(&s->lock);
    if (!live || f == MBT_SILENT)
        return true;

    /* libmodbus checks the request (the CRC of RTU) and builds the answer. */
    drain_fd(s->sp[0]);
    drain_fd(s->sp[1]);
    if (write(s->sp[1], buf, (size_t)len) != len)
        return false;
    modbus_set_slave(s->ctx, unit);
    int rc = modbus_receive(s->ctx, req);
    if (rc <= 0)
        return true; /* refused by libmodbus: a real device stays silent too */

    pthread_mutex_lock(&s->lock);
    if (f == MBT_HOLD) {
        s->holding = true;
        pthread_cond_broadcast(&s->cond);
        while (!s->released && !s->stopping)
            pthread_cond_wait(&s->cond, &s->lock);
    }
    int hl = modbus_get_header_length(s->ctx);
    int first = (req[hl + 1] << 8) | req[hl + 2], count = (req[hl + 3] << 8) | req[hl + 4];
    bool refused = false;
    for (int a = first; req[hl] == MODBUS_FC_READ_HOLDING_REGISTERS && a < first + count && a < 200;
         a++)
        refused = refused || s->refuse[a];
    uint16_t saved_regs[200];
    uint8_t saved_bits[100];
    memcpy(saved_regs, s->map->tab_registers, sizeof(saved_regs));
    memcpy(saved_bits, s->map->tab_bits, sizeof(saved_bits));
    if (refused)
        modbus_reply_exception(s->ctx, req, MODBUS_EXCEPTION_ILLEGAL_DATA_ADDRESS);
    else
        modbus_reply(s->ctx, req, rc, s->map);
    if (f == MBT_DISCARD_WRITE) {
        memcpy(s->map->tab_registers, saved_regs, sizeof(saved_regs));
        memcpy(s->map->tab_bits, saved_bits, sizeof(saved_bits));
    }
    pthread_mutex_unlock(&s->lock);

    if (f == MBT_SLOW) {
        pthread_mutex_lock(&s->lock);
        unsigned ms = s->slow_ms;
        pthread_mutex_unlock(&s->lock);
        usleep(ms * 1000u);
    }
    if (f == MBT_LATE) {
        struct pollfd p[2] = {{fd, POLLIN, 0}, {s->stop_pipe[0], POLLIN, 0}};
        poll(p, 2, 5000);
    }
    ssize_t n = recv(s->sp[1], reply, sizeof(reply) - 16, MSG_DONTWAIT);
    if (n <= 0)
        return true;
    size_t out = (size_t)n;
    spoil(s, f, reply, &out);
    if (write(fd, reply, out) != (ssize_t)out)
        return false;
    if (f == MBT_HOLD) {
        pthread_mutex_lock(&s->lock);
        s->late_sent = true;
        pthread_cond_broadcast(&s->cond);
        pthread_mutex_unlock(&s->lock);
    }
    pthread_mutex_lock(&s->lock);
    bool close_each = s->close_each && s->kind != MBT_RTU_PTY;
    pthread_mutex_unlock(&s->lock);
    return !close_each;
}

static void *server_main(void *arg)
{
    struct mbt_server *s = arg;
    if (s->kind == MBT_RTU_PTY) {
        while (serve_one(s, s->pty_master))
            ;
        return NULL;
    }
    for (;;) {
        struct pollfd lp[2] = {{s->listen_fd, POLLIN, 0}, {s->stop_pipe[0], POLLIN, 0}};
        if (poll(lp, 2, -1) < 0 && errno != EINTR)
            break;
        if (lp[1].revents)
            break;
        if (!(lp[0].revents & POLLIN))
            continue;
        int c = accept(s->listen_fd, NULL, NULL);
        if (c < 0)
            continue;
        pthread_mutex_lock(&s->lock);
        s->connections++;
        pthread_mutex_unlock(&s->lock);
        while (serve_one(s, c))
            ;
        close(c);
        char x;
        if (recv(s->stop_pipe[0], &x, 1, MSG_PEEK | MSG_DONTWAIT) == 1)
            break;
    }
    return NULL;
}

static int listen_loopback(int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(fd, (struct sockaddr *)&addr, sizeof(addr)), 0);
    assert_int_equal(listen(fd, 4), 0);
    socklen_t len = sizeof(addr);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&addr, &len), 0);
    *port = ntohs(addr.sin_port);
    return fd;
}

struct mbt_server *mbt_server_start(enum mbt_kind kind)
{
    struct mbt_server *s = calloc(1, sizeof(*s));
    assert_non_null(s);
    s->kind = kind;
    s->listen_fd = -1;
    s->pty_master = -1;
    s->pty_slave = -1;
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->cond, NULL);
    for (int u = 0; u < 256; u++)
        s->live[u] = true;
    assert_int_equal(pipe(s->stop_pipe), 0);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, s->sp), 0);
    s->map = modbus_mapping_new(100, 100, 200, 100);
    assert_non_null(s->map);
    s->ctx = kind == MBT_TCP ? modbus_new_tcp("127.0.0.1", 0)
                             : modbus_new_rtu("/dev/null", 19200, 'E', 8, 1);
    assert_non_null(s->ctx);
    modbus_set_socket(s->ctx, s->sp[0]);
    /* libmodbus sleeps this long before some exception answers; keep it short. */
    modbus_set_response_timeout(s->ctx, 0, 1000);
    modbus_set_byte_timeout(s->ctx, 0, 20000);
    if (kind == MBT_RTU_PTY) {
        assert_int_equal(openpty(&s->pty_master, &s->pty_slave, s->pty, NULL, NULL), 0);
        /* The plugin opens the pty by name and sets it up itself; raw here so that nothing
         * is translated before it does. The slave stays open: without any open slave the
         * master reads EIO, and the plugin closes and reopens the port. */
        struct termios t;
        tcgetattr(s->pty_slave, &t);
        cfmakeraw(&t);
        tcsetattr(s->pty_slave, TCSANOW, &t);
    } else {
        s->listen_fd = listen_loopback(&s->port);
    }
    assert_int_equal(pthread_create(&s->thread, NULL, server_main, s), 0);
    s->running = true;
    return s;
}

void mbt_server_stop(struct mbt_server *s)
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
    if (s->listen_fd >= 0)
        close(s->listen_fd);
    s->listen_fd = -1;
}

void mbt_server_free(struct mbt_server *s)
{
    if (s == NULL)
        return;
    mbt_server_stop(s);
    if (s->pty_master >= 0)
        close(s->pty_master);
    if (s->pty_slave >= 0)
        close(s->pty_slave);
    close(s->stop_pipe[0]);
    close(s->stop_pipe[1]);
    modbus_free(s->ctx); /* does not close sp[0]: it was never connected through libmodbus */
    close(s->sp[0]);
    close(s->sp[1]);
    modbus_mapping_free(s->map);
    pthread_cond_destroy(&s->cond);
    pthread_mutex_destroy(&s->lock);
    free(s);
}

void mbt_server_fault(struct mbt_server *s, enum mbt_fault f, unsigned count)
{
    pthread_mutex_lock(&s->lock);
    s->fault = f;
    s->fault_count = count;
    s->holding = s->released = s->late_sent = false;
    pthread_mutex_unlock(&s->lock);
}

void mbt_server_close_each(struct mbt_server *s, bool on)
{
    pthread_mutex_lock(&s->lock);
    s->close_each = on;
    pthread_mutex_unlock(&s->lock);
}

void mbt_server_units(struct mbt_server *s, const int *units, unsigned n)
{
    pthread_mutex_lock(&s->lock);
    for (int u = 0; u < 256; u++)
        s->live[u] = false;
    for (unsigned i = 0; i < n; i++)
        s->live[units[i]] = true;
    pthread_mutex_unlock(&s->lock);
}

void mbt_server_release(struct mbt_server *s)
{
    pthread_mutex_lock(&s->lock);
    assert_true(s->holding);
    s->released = true;
    pthread_cond_broadcast(&s->cond);
    while (!s->late_sent)
        pthread_cond_wait(&s->cond, &s->lock);
    pthread_mutex_unlock(&s->lock);
}

unsigned mbt_server_requests(struct mbt_server *s)
{
    pthread_mutex_lock(&s->lock);
    unsigned n = s->requests;
    pthread_mutex_unlock(&s->lock);
    return n;
}

unsigned mbt_server_connections(struct mbt_server *s)
{
    pthread_mutex_lock(&s->lock);
    unsigned n = s->connections;
    pthread_mutex_unlock(&s->lock);
    return n;
}

void mbt_server_refuse(struct mbt_server *s, int addr, int n, bool refuse)
{
    pthread_mutex_lock(&s->lock);
    for (int a = addr; a < addr + n && a < 200; a++)
        s->refuse[a] = refuse;
    pthread_mutex_unlock(&s->lock);
}

void set_regs(struct mbt_server *s, int table_input, int addr, const uint16_t *v, int n)
{
    pthread_mutex_lock(&s->lock);
    uint16_t *tab = table_input ? s->map->tab_input_registers : s->map->tab_registers;
    memcpy(tab + addr, v, (size_t)n * sizeof(*v));
    pthread_mutex_unlock(&s->lock);
}

/* ---- Fixture --------------------------------------------------------------------------------- */

struct fixture *mbt_fixture_new(enum mbt_kind kind)
{
    struct fixture *fx = calloc(1, sizeof(*fx));
    assert_non_null(fx);
    fake_init(&fx->fake);
    fx->srv = mbt_server_start(kind);
    switch (kind) {
    case MBT_TCP:
        mbt_config_tcp(&fx->cfg, fx->srv->port);
        break;
    case MBT_RTU_TCP:
        mbt_config_rtu_over_tcp(&fx->cfg, fx->srv->port);
        break;
    case MBT_RTU_PTY:
        mbt_config_rtu(&fx->cfg, fx->srv->pty);
        break;
    }
    return fx;
}

int mbt_teardown(void **state)
{
    struct fixture *fx = *state;
    if (fx->inst != NULL) {
        plugin->close(fx->inst);
        plugin->destroy(fx->inst);
    }
    mbt_server_free(fx->srv);
    free(fx);
    return 0;
}

void create_and_open(struct fixture *fx)
{
    assert_int_equal(plugin->create(&fx->fake.host, ctx_of(&fx->fake), &fx->cfg.conn, &fx->inst),
                     0);
    assert_non_null(fx->inst);
    assert_int_equal(plugin->open(fx->inst), 0);
}

void mbt_recreate(struct fixture *fx)
{
    plugin->close(fx->inst);
    plugin->destroy(fx->inst);
    fx->inst = NULL;
    create_and_open(fx);
}

int read_dev(struct fixture *fx, uint32_t dev)
{
    memset(fx->samples, 0xA5, sizeof(fx->samples));
    return plugin->read_group(fx->inst, dev, 0, fx->samples);
}

int read_group(struct fixture *fx)
{
    return read_dev(fx, 0);
}

void write_expect(struct fixture *fx, uint32_t tag, const struct ib_value *v, int rc, int fc)
{
    int got = plugin->write_tag(fx->inst, 0, 0, tag, v);
    if (got != rc)
        fail_msg("writing tag %u returned %d, expected %d", tag, got, rc);
    if (fc >= 0) {
        pthread_mutex_lock(&fx->srv->lock);
        int last = fx->srv->last_fc;
        pthread_mutex_unlock(&fx->srv->lock);
        if (last != fc)
            fail_msg("writing tag %u: the last function code was %d, expected %d", tag, last, fc);
    }
}

void assert_good(const struct ib_sample *s, uint8_t vtype)
{
    if (s->quality != IB_Q_GOOD)
        fail_msg("sample bad: reason %u code %u", s->reason, s->code);
    assert_int_equal(s->reason, IB_R_NONE);
    assert_int_equal(s->value.type, vtype);
}

void assert_bad(const struct ib_sample *s, uint8_t reason, uint16_t code)
{
    if (s->quality != IB_Q_BAD || s->reason != reason || s->code != code)
        fail_msg("sample: quality %u reason %u code %u, expected bad, reason %u code %u",
                 s->quality, s->reason, s->code, reason, code);
    assert_int_equal(s->value.type, IB_V_NONE);
}
