/* Example driver for the ironbridge plugin SDK (docs/writing-plugins.md): instruments that speak
 * a line-based ASCII protocol over TCP — send a query line, read one answer line. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* SOCK_CLOEXEC, MSG_NOSIGNAL: plugins are built with -std=c11 */
#endif
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <ironbridge/ironbridge.h>

#ifndef EX_VERSION
#define EX_VERSION "1.0"
#endif

/* ---- Step 1: the configuration, as schemas the daemon validates --------------------------- */

struct ex_conn {
    const char *host;
    int64_t port;
    int64_t timeout_ms;
};

static const struct ib_schema_entry conn_entries[] = {
    {.key = "host",
     .type = IB_S_STRING,
     .flags = IB_SF_REQUIRED,
     .offset = offsetof(struct ex_conn, host),
     .description = "host name or address of the instrument"},
    {.key = "port",
     .type = IB_S_INT,
     .flags = IB_SF_REQUIRED | IB_SF_RANGE,
     .offset = offsetof(struct ex_conn, port),
     .min = 1,
     .max = 65535,
     .description = "TCP port of the instrument"},
    {.key = "timeout",
     .type = IB_S_DURATION,
     .flags = IB_SF_RANGE,
     .offset = offsetof(struct ex_conn, timeout_ms),
     .def = "1s",
     .min = 10,
     .max = 60000,
     .description = "how long to wait to connect and for each answer line"},
};

enum ex_type { EX_DOUBLE, EX_INT, EX_BOOL, EX_STRING };
static const char *const type_names[] = {"double", "int", "bool", "string", NULL};

struct ex_tag {
    const char *query;
    int32_t type; /* enum ex_type */
};

static const struct ib_schema_entry tag_entries[] = {
    {.key = "query",
     .type = IB_S_STRING,
     .flags = IB_SF_REQUIRED,
     .offset = offsetof(struct ex_tag, query),
     .description = "the line sent to the instrument (without the newline), e.g. MEAS:TEMP?"},
    {.key = "type",
     .type = IB_S_ENUM,
     .offset = offsetof(struct ex_tag, type),
     .def = "double",
     .choices = type_names,
     .description = "how the answer line is read: a number, an integer, 0/1, or text"},
};

static const struct ib_schema conn_schema = {sizeof(struct ex_conn), 3, conn_entries, {0}};
static const struct ib_schema device_schema = {0, 0, NULL, {0}};
static const struct ib_schema tag_schema = {sizeof(struct ex_tag), 2, tag_entries, {0}};

/* ---- Step 2: the instance: everything allocated once, in create() ---------------------------- */

#define EX_LINE_MAX 256

struct ex {
    const struct ib_host *host;
    struct ib_host_ctx *ctx;
    const struct ib_connection_config *cfg;
    const struct ex_conn *p;
    int fd;
    char rx[EX_LINE_MAX]; /* bytes received and not yet consumed */
    size_t rx_len;
    char *strings; /* one EX_LINE_MAX slot per string tag, in config order */
};

static int ex_create(const struct ib_host *host, struct ib_host_ctx *ctx,
                     const struct ib_connection_config *cfg, void **instance)
{
    /* Semantic checks the schema cannot express go to config_error(), with the position. */
    size_t n_tags = 0;
    int bad = 0;
    for (uint32_t d = 0; d < cfg->n_devices; d++)
        for (uint32_t g = 0; g < cfg->devices[d].n_groups; g++)
            for (uint32_t t = 0; t < cfg->devices[d].groups[g].n_tags; t++) {
                const struct ib_tag_config *tc = &cfg->devices[d].groups[g].tags[t];
                const struct ex_tag *et = tc->params;
                if (strlen(et->query) > EX_LINE_MAX - 2 || strchr(et->query, '\n')) {
                    host->config_error(ctx, tc->where, "query",
                                       "a query is one line of at most %d bytes", EX_LINE_MAX - 2);
                    bad = 1;
                }
                n_tags++;
            }
    if (bad)
        return IB_ERR_INVALID;
    struct ex *ex = calloc(1, sizeof *ex);
    if (!ex)
        return IB_ERR_NOMEM;
    ex->strings = calloc(n_tags ? n_tags : 1, EX_LINE_MAX);
    if (!ex->strings) {
        free(ex);
        return IB_ERR_NOMEM;
    }
    ex->host = host;
    ex->ctx = ctx;
    ex->cfg = cfg;
    ex->p = cfg->params;
    ex->fd = -1;
    *instance = ex;
    return IB_OK;
}

static void ex_close(void *instance)
{
    struct ex *ex = instance;
    if (ex->fd >= 0)
        close(ex->fd);
    ex->fd = -1;
    ex->rx_len = 0;
}

static void ex_destroy(void *instance)
{
    struct ex *ex = instance;
    if (!ex)
        return;
    ex_close(ex);
    free(ex->strings);
    free(ex);
}

/* ---- Step 3: the transport ------------------------------------------------------------------ */

static int64_t ms_left(int64_t deadline, const struct ib_host *host)
{
    int64_t left = deadline - host->monotonic_ms();
    return left > 0 ? left : 0;
}

static int ex_open(void *instance)
{
    struct ex *ex = instance;
    char port[16];
    snprintf(port, sizeof port, "%d", (int)ex->p->port);
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL;
    int rc = getaddrinfo(ex->p->host, port, &hints, &res);
    if (rc != 0) {
        IB_WARN(ex->host, ex->ctx, "cannot resolve %s: %s", ex->p->host, gai_strerror(rc));
        return IB_ERR_CONNECTION;
    }
    int64_t deadline = ex->host->monotonic_ms() + ex->p->timeout_ms;
    int err = IB_ERR_CONNECTION;
    for (struct addrinfo *a = res; a && ex->fd < 0; a = a->ai_next) {
        int fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
            continue;
        if (connect(fd, a->ai_addr, a->ai_addrlen) < 0 && errno != EINPROGRESS) {
            close(fd);
            continue;
        }
        struct pollfd pf = {.fd = fd, .events = POLLOUT};
        int so = 0;
        socklen_t sl = sizeof so;
        if (poll(&pf, 1, (int)ms_left(deadline, ex->host)) == 1 &&
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &so, &sl) == 0 && so == 0) {
            ex->fd = fd;
            break;
        }
        if (!so)
            err = IB_ERR_TIMEOUT;
        close(fd);
    }
    freeaddrinfo(res);
    return ex->fd >= 0 ? IB_OK : err;
}

/* Send `query` and read one answer line into `line` (NUL-terminated, without CR/LF). */
static int transact(struct ex *ex, const char *query, char *line)
{
    char out[EX_LINE_MAX];
    int n = snprintf(out, sizeof out, "%s\n", query);
    if (send(ex->fd, out, (size_t)n, MSG_NOSIGNAL) != n)
        return IB_ERR_CONNECTION;
    int64_t deadline = ex->host->monotonic_ms() + ex->p->timeout_ms;
    for (;;) {
        char *nl = memchr(ex->rx, '\n', ex->rx_len);
        if (nl) {
            size_t len = (size_t)(nl - ex->rx);
            memcpy(line, ex->rx, len);
            line[len] = '\0';
            if (len && line[len - 1] == '\r')
                line[len - 1] = '\0';
            ex->rx_len -= len + 1;
            memmove(ex->rx, nl + 1, ex->rx_len);
            return IB_OK;
        }
        if (ex->rx_len == sizeof ex->rx)
            return IB_ERR_PROTOCOL; /* a line longer than any answer we accept */
        struct pollfd pf = {.fd = ex->fd, .events = POLLIN};
        int64_t left = ms_left(deadline, ex->host);
        if (!left || poll(&pf, 1, (int)left) != 1)
            return IB_ERR_TIMEOUT;
        ssize_t r = recv(ex->fd, ex->rx + ex->rx_len, sizeof ex->rx - ex->rx_len, 0);
        if (r <= 0)
            return IB_ERR_CONNECTION;
        ex->rx_len += (size_t)r;
    }
}

/* ---- Step 4: reading a group: one sample per tag, always ------------------------------------ */

static bool decode(const char *line, int32_t type, char *slot, struct ib_value *v)
{
    char *end;
    errno = 0;
    switch (type) {
    case EX_DOUBLE:
        v->type = IB_V_DOUBLE;
        v->v.d = strtod(line, &end);
        return end != line && !*end && !errno;
    case EX_INT:
        v->type = IB_V_INT;
        v->v.i = strtoll(line, &end, 10);
        return end != line && !*end && !errno;
    case EX_BOOL:
        v->type = IB_V_BOOL;
        v->v.b = line[0] == '1';
        return (line[0] == '0' || line[0] == '1') && !line[1];
    default:
        /* The string stays valid until the next read of this group: it lives in the tag's slot. */
        v->type = IB_V_STRING;
        v->v.s.len = (uint32_t)strlen(line);
        memcpy(slot, line, v->v.s.len);
        v->v.s.ptr = slot;
        return true;
    }
}

static int ex_read_group(void *instance, uint32_t device, uint32_t group, struct ib_sample *samples)
{
    struct ex *ex = instance;
    const struct ib_group_config *g = &ex->cfg->devices[device].groups[group];
    /* The slot index of this group's first tag: the tags of earlier groups come first. */
    size_t slot = 0;
    for (uint32_t d = 0; d <= device; d++)
        for (uint32_t k = 0; k < (d < device ? ex->cfg->devices[d].n_groups : group); k++)
            slot += ex->cfg->devices[d].groups[k].n_tags;
    int worst = IB_OK;
    for (uint32_t t = 0; t < g->n_tags; t++) {
        const struct ex_tag *et = g->tags[t].params;
        char line[EX_LINE_MAX];
        int rc = worst == IB_ERR_CONNECTION ? IB_ERR_CONNECTION : transact(ex, et->query, line);
        int64_t ts = ex->host->now_ms();
        if (rc == IB_ERR_CONNECTION) {
            ib_sample_bad(&samples[t], ts, IB_R_CONN_LOST, 0);
            worst = IB_ERR_CONNECTION;
        } else if (rc == IB_ERR_TIMEOUT) {
            ib_sample_bad(&samples[t], ts, IB_R_TIMEOUT, 0);
            /* The answer may still come: the stream is out of step, so start over. */
            worst = IB_ERR_CONNECTION;
        } else if (rc != IB_OK) {
            ib_sample_bad(&samples[t], ts, IB_R_PROTOCOL, 0);
            worst = IB_ERR_CONNECTION;
        } else if (strncmp(line, "ERR", 3) == 0) {
            /* The instrument refused this query; the others go on. */
            IB_LOG(ex->host, ex->ctx, IB_LOG_WARNING, ex->cfg->devices[device].name,
                   g->tags[t].name, "instrument answered '%s' to '%s'", line, et->query);
            ib_sample_bad(&samples[t], ts, IB_R_EXCEPTION, 0);
            if (worst == IB_OK)
                worst = IB_ERR_EXCEPTION;
        } else if (decode(line, et->type, ex->strings + (slot + t) * EX_LINE_MAX,
                          &samples[t].value)) {
            ib_sample_good(&samples[t], ts);
        } else {
            ib_sample_bad(&samples[t], ts, IB_R_DECODE, 0);
        }
    }
    return worst;
}

/* ---- Step 5: the descriptor, the one exported symbol ----------------------------------------- */

IB_PLUGIN_DEFINE(.name = "example", .version = EX_VERSION,
                 .description = "line-based TCP instruments: send a query line, read one answer",
                 .connection_schema = &conn_schema, .device_schema = &device_schema,
                 .tag_schema = &tag_schema, .create = ex_create, .destroy = ex_destroy,
                 .open = ex_open, .close = ex_close, .read_group = ex_read_group);
