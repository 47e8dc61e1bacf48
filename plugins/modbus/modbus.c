/* Modbus TCP driver plugin: the exported descriptor, its config schemas and the callbacks.
 * create() turns every device group into planned requests and buffers; polls then only do I/O. */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <modbus.h>

#include <ironbridge/ironbridge.h>

#include "decode.h"
#include "params.h"
#include "planner.h"

#ifndef MB_PLUGIN_VERSION
#define MB_PLUGIN_VERSION "0"
#endif

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* ---- Schemas --------------------------------------------------------------------------------- */

static const char *const transport_choices[] = {
    [MB_P_TRANSPORT_TCP] = "tcp",
    [MB_P_TRANSPORT_COUNT] = NULL,
};

static const char *const order_choices[] = {
    [MB_P_ORDER_ABCD] = "ABCD",
    [MB_P_ORDER_CDAB] = "CDAB",
    [MB_P_ORDER_COUNT] = NULL,
};

static const char *const table_choices[] = {
    [MB_P_TABLE_COIL] = "coil",   [MB_P_TABLE_DISCRETE_INPUT] = "discrete_input",
    [MB_P_TABLE_INPUT] = "input", [MB_P_TABLE_HOLDING] = "holding",
    [MB_P_TABLE_COUNT] = NULL,
};

static const char *const type_choices[] = {
    [MB_P_TYPE_BOOL] = "bool",   [MB_P_TYPE_INT16] = "int16",   [MB_P_TYPE_UINT16] = "uint16",
    [MB_P_TYPE_INT32] = "int32", [MB_P_TYPE_UINT32] = "uint32", [MB_P_TYPE_FLOAT32] = "float32",
    [MB_P_TYPE_COUNT] = NULL,
};

/* Schema indices to the codec's and planner's own enums; the codec knows more than the schema
 * exposes yet. */
static const enum mb_order order_map[MB_P_ORDER_COUNT] = {
    [MB_P_ORDER_ABCD] = MB_ORDER_ABCD,
    [MB_P_ORDER_CDAB] = MB_ORDER_CDAB,
};

static const enum mb_table table_map[MB_P_TABLE_COUNT] = {
    [MB_P_TABLE_COIL] = MB_TABLE_COIL,
    [MB_P_TABLE_DISCRETE_INPUT] = MB_TABLE_DISCRETE_INPUT,
    [MB_P_TABLE_INPUT] = MB_TABLE_INPUT,
    [MB_P_TABLE_HOLDING] = MB_TABLE_HOLDING,
};

static const enum mb_type type_map[MB_P_TYPE_COUNT] = {
    [MB_P_TYPE_BOOL] = MB_TYPE_BOOL,     [MB_P_TYPE_INT16] = MB_TYPE_INT16,
    [MB_P_TYPE_UINT16] = MB_TYPE_UINT16, [MB_P_TYPE_INT32] = MB_TYPE_INT32,
    [MB_P_TYPE_UINT32] = MB_TYPE_UINT32, [MB_P_TYPE_FLOAT32] = MB_TYPE_FLOAT32,
};

static const char *const table_names[MB_TABLE_COUNT] = {
    [MB_TABLE_COIL] = "coil",
    [MB_TABLE_DISCRETE_INPUT] = "discrete_input",
    [MB_TABLE_INPUT] = "input",
    [MB_TABLE_HOLDING] = "holding",
};

static const struct ib_schema_entry connection_entries[] = {
    {.key = "transport",
     .type = IB_S_ENUM,
     .offset = offsetof(struct mb_connection_params, transport),
     .def = "tcp",
     .choices = transport_choices,
     .description = "How the devices are reached: tcp (Modbus TCP)"},
    {.key = "host",
     .type = IB_S_STRING,
     .flags = IB_SF_REQUIRED,
     .offset = offsetof(struct mb_connection_params, host),
     .description = "Host name or IP address (IPv4 or IPv6) of the Modbus TCP server or gateway"},
    {.key = "port",
     .type = IB_S_INT,
     .flags = IB_SF_RANGE,
     .offset = offsetof(struct mb_connection_params, port),
     .def = "502",
     .min = 1,
     .max = 65535,
     .description = "TCP port of the server"},
    {.key = "timeout_ms",
     .type = IB_S_INT,
     .flags = IB_SF_RANGE,
     .offset = offsetof(struct mb_connection_params, timeout_ms),
     .def = "1000",
     .min = 1,
     .max = 60000,
     .description = "How long to wait for the response to a request, in ms"},
    {.key = "connect_timeout_ms",
     .type = IB_S_INT,
     .flags = IB_SF_RANGE,
     .offset = offsetof(struct mb_connection_params, connect_timeout_ms),
     .def = "3000",
     .min = 1,
     .max = 60000,
     .description = "How long to wait for the TCP connection to be established, in ms"},
};

static const struct ib_schema_entry device_entries[] = {
    {.key = "unit_id",
     .type = IB_S_INT,
     .flags = IB_SF_RANGE,
     .offset = offsetof(struct mb_device_params, unit_id),
     .def = "1",
     .min = 0,
     .max = 255,
     .description = "Modbus unit identifier (slave address) of the device; 255 or 1 for most "
                    "plain TCP devices"},
    {.key = "byte_order",
     .type = IB_S_ENUM,
     .offset = offsetof(struct mb_device_params, byte_order),
     .def = "ABCD",
     .choices = order_choices,
     .description = "Default order of 32-bit values: ABCD (big-endian, standard) or CDAB "
                    "(words swapped)"},
    {.key = "timeout_ms",
     .type = IB_S_INT,
     .flags = IB_SF_RANGE,
     .offset = offsetof(struct mb_device_params, timeout_ms),
     .def = "0",
     .min = 0,
     .max = 60000,
     .description = "Response timeout for this device in ms; 0 uses the connection's"},
    {.key = "max_registers",
     .type = IB_S_INT,
     .flags = IB_SF_RANGE,
     .offset = offsetof(struct mb_device_params, max_registers),
     .def = "125",
     .min = 1,
     .max = MODBUS_MAX_READ_REGISTERS,
     .description = "Most registers the device accepts in one read request"},
    {.key = "max_bits",
     .type = IB_S_INT,
     .flags = IB_SF_RANGE,
     .offset = offsetof(struct mb_device_params, max_bits),
     .def = "2000",
     .min = 1,
     .max = MODBUS_MAX_READ_BITS,
     .description = "Most coils or discrete inputs the device accepts in one read request"},
};

static const struct ib_schema_entry tag_entries[] = {
    {.key = "table",
     .type = IB_S_ENUM,
     .flags = IB_SF_REQUIRED,
     .offset = offsetof(struct mb_tag_params, table),
     .choices = table_choices,
     .description = "Modbus table: coil, discrete_input, input (register) or holding (register)"},
    {.key = "address",
     .type = IB_S_INT,
     .flags = IB_SF_REQUIRED | IB_SF_RANGE,
     .offset = offsetof(struct mb_tag_params, address),
     .min = 0,
     .max = 65535,
     .description = "0-based protocol address of the first register or bit (40001 is 0)"},
    {.key = "type",
     .type = IB_S_ENUM,
     .offset = offsetof(struct mb_tag_params, type),
     .choices = type_choices,
     .description = "Value type; default bool for coil/discrete_input, uint16 for registers"},
    {.key = "order",
     .type = IB_S_ENUM,
     .offset = offsetof(struct mb_tag_params, order),
     .choices = order_choices,
     .description = "Order of a 32-bit value, overriding the device's byte_order"},
};

static const struct ib_schema connection_schema = {
    .struct_size = sizeof(struct mb_connection_params),
    .n_entries = ARRAY_SIZE(connection_entries),
    .entries = connection_entries,
};

static const struct ib_schema device_schema = {
    .struct_size = sizeof(struct mb_device_params),
    .n_entries = ARRAY_SIZE(device_entries),
    .entries = device_entries,
};

static const struct ib_schema tag_schema = {
    .struct_size = sizeof(struct mb_tag_params),
    .n_entries = ARRAY_SIZE(tag_entries),
    .entries = tag_entries,
};

/* ---- Instance -------------------------------------------------------------------------------- */

struct mb_tag {
    const char *name;
    uint32_t address;
    uint8_t table; /* enum mb_table */
    uint8_t type;  /* enum mb_type */
    uint8_t order; /* enum mb_order */
    bool writable;
    bool decode_failing; /* a decode error was logged; log again only after a good value */
};

/* Outcome of one planned request in the current poll. */
struct mb_request_state {
    int64_t ts_ms;
    uint8_t reason; /* enum ib_reason */
    uint16_t code;
};

struct mb_group {
    const char *name;
    uint32_t n_tags;
    struct mb_tag *tags; /* config order */
    struct mb_plan plan;
    uint16_t *regs;                 /* plan.n_registers */
    uint8_t *bits;                  /* plan.n_bits, one byte per bit as libmodbus stores them */
    struct mb_request_state *state; /* plan.n_requests */
    /* The failure last logged (IB_R_NONE: none), so a repeating one is logged once. */
    uint8_t logged_reason;
    uint16_t logged_code;
};

struct mb_device {
    const char *name;
    int unit_id;
    uint32_t timeout_ms; /* effective response timeout */
    uint32_t n_groups;
    struct mb_group *groups;
};

struct mb_instance {
    const struct ib_host *host;
    struct ib_host_ctx *ctx;
    modbus_t *mb;
    const char *host_name;
    int port;
    uint32_t timeout_ms;
    uint32_t connect_timeout_ms;
    uint32_t current_timeout_ms; /* what the context is set to; 0: unknown */
    int open_errno;              /* errno of the last failed open (0: last open succeeded) */
    bool opened_once;
    bool loss_logged; /* the loss of the current connection was logged */
    uint32_t n_devices;
    struct mb_device *devices;
};

#define LOG(in, level, dev, tag, ...) (in)->host->log((in)->ctx, (level), (dev), (tag), __VA_ARGS__)

static void mb_destroy(void *instance)
{
    struct mb_instance *in = instance;
    if (in == NULL)
        return;
    for (uint32_t d = 0; d < in->n_devices && in->devices != NULL; d++) {
        struct mb_device *dev = &in->devices[d];
        for (uint32_t g = 0; g < dev->n_groups && dev->groups != NULL; g++) {
            struct mb_group *grp = &dev->groups[g];
            free(grp->tags);
            mb_plan_free(&grp->plan);
            free(grp->regs);
            free(grp->bits);
            free(grp->state);
        }
        free(dev->groups);
    }
    free(in->devices);
    if (in->mb != NULL) {
        modbus_close(in->mb);
        modbus_free(in->mb);
    }
    free(in);
}

/* Resolve one tag's params against its device and report every semantic error.
 * Returns the number of errors reported. */
static unsigned resolve_tag(const struct ib_host *host, struct ib_host_ctx *ctx,
                            const struct ib_tag_config *tc, const struct mb_device_params *dp,
                            struct mb_tag *t)
{
    const struct mb_tag_params *p = tc->params;
    unsigned errors = 0;

    t->name = tc->name;
    t->writable = tc->writable != 0;
    t->address = (uint32_t)p->address;
    if (p->table < 0 || p->table >= MB_P_TABLE_COUNT || p->type >= MB_P_TYPE_COUNT ||
        p->order >= MB_P_ORDER_COUNT) {
        /* The daemon validated the enums; this guards against a params struct built by hand. */
        host->config_error(ctx, tc->where, "table", "table, type or order out of range");
        return 1;
    }
    t->table = (uint8_t)table_map[p->table];
    bool bits = mb_plan_table_is_bits((enum mb_table)t->table);

    if (p->type < 0)
        t->type = bits ? MB_TYPE_BOOL : MB_TYPE_UINT16;
    else
        t->type = (uint8_t)type_map[p->type];

    if (bits && t->type != MB_TYPE_BOOL) {
        host->config_error(ctx, tc->where, "type",
                           "a %s holds single bits: its type is bool, not %s",
                           table_names[t->table], mb_decode_type_name(t->type));
        errors++;
    } else if (!bits && t->type == MB_TYPE_BOOL) {
        host->config_error(ctx, tc->where, "type",
                           "bool needs a coil or discrete_input table; reading a bit of a %s "
                           "register comes in a later version",
                           table_names[t->table]);
        errors++;
    }

    unsigned width = mb_decode_width((enum mb_type)t->type);
    if (p->order >= 0) {
        if (width == 1) {
            host->config_error(ctx, tc->where, "order",
                               "order applies to 32-bit types; type %s has no word order",
                               mb_decode_type_name(t->type));
            errors++;
        }
        t->order = (uint8_t)order_map[p->order];
    } else if (width > 1) {
        int32_t dev_order = dp->byte_order >= 0 && dp->byte_order < MB_P_ORDER_COUNT
                                ? dp->byte_order
                                : MB_P_ORDER_ABCD;
        t->order = (uint8_t)order_map[dev_order];
    } else {
        t->order = MB_ORDER_AB;
    }

    if (t->address + width > 65536) {
        host->config_error(ctx, tc->where, "address",
                           "type %s at address %u needs %u registers and would end past 65535",
                           mb_decode_type_name(t->type), t->address, width);
        errors++;
    }
    if (!bits && width > dp->max_registers) {
        host->config_error(ctx, tc->where, "type",
                           "type %s needs %u registers but the device's max_registers is %lld",
                           mb_decode_type_name(t->type), width, (long long)dp->max_registers);
        errors++;
    }
    if (t->writable && (t->table == MB_TABLE_DISCRETE_INPUT || t->table == MB_TABLE_INPUT)) {
        host->config_error(ctx, tc->where, "writable",
                           "%s tags are read-only; only coil and holding tags can be writable",
                           table_names[t->table]);
        errors++;
    }
    return errors;
}

/* Plan a resolved group and allocate its buffers. 0, or IB_ERR_NOMEM, or IB_ERR_INVALID (a
 * planner refusal that resolve_tag() should have caught; reported as such). */
static int build_group(const struct ib_host *host, struct ib_host_ctx *ctx,
                       const struct ib_group_config *gc, const struct mb_device_params *dp,
                       struct mb_group *grp)
{
    struct mb_plan_item *items = calloc(grp->n_tags ? grp->n_tags : 1, sizeof(*items));
    if (items == NULL)
        return IB_ERR_NOMEM;
    for (uint32_t i = 0; i < grp->n_tags; i++) {
        const struct mb_tag *t = &grp->tags[i];
        items[i] =
            (struct mb_plan_item){t->table, t->address, mb_decode_width((enum mb_type)t->type)};
    }
    struct mb_plan_limits limits = {
        .max_registers = (uint32_t)dp->max_registers,
        .max_bits = (uint32_t)dp->max_bits,
    };
    uint32_t bad = 0;
    int rc = mb_plan_build(items, grp->n_tags, &limits, &grp->plan, &bad);
    free(items);
    if (rc == IB_ERR_INVALID) {
        host->config_error(ctx, bad < gc->n_tags ? gc->tags[bad].where : gc->where, NULL,
                           "this tag cannot be read within the device's limits");
        return rc;
    }
    if (rc != 0)
        return rc;

    /* calloc(0) may return NULL; keep one element so NULL always means out of memory. */
    grp->regs = calloc(grp->plan.n_registers + 1, sizeof(*grp->regs));
    grp->bits = calloc(grp->plan.n_bits + 1, sizeof(*grp->bits));
    grp->state = calloc(grp->plan.n_requests + 1, sizeof(*grp->state));
    if (grp->regs == NULL || grp->bits == NULL || grp->state == NULL)
        return IB_ERR_NOMEM; /* the caller's mb_destroy() frees what was allocated */
    return 0;
}

static int mb_create(const struct ib_host *host, struct ib_host_ctx *ctx,
                     const struct ib_connection_config *cfg, void **instance)
{
    if (host == NULL || cfg == NULL || cfg->params == NULL || instance == NULL)
        return IB_ERR_INVALID;
    *instance = NULL;
    if (host->abi_major != IB_ABI_MAJOR)
        return IB_ERR_UNSUPPORTED;

    const struct mb_connection_params *cp = cfg->params;
    unsigned errors = 0;
    int rc = IB_ERR_NOMEM;

    if (cp->transport != MB_P_TRANSPORT_TCP) {
        host->config_error(ctx, cfg->where, "transport", "only tcp is supported in this version");
        errors++;
    }
    if (cp->host == NULL || cp->host[0] == '\0') {
        host->config_error(ctx, cfg->where, "host", "the host must not be empty");
        errors++;
    } else if (strlen(cp->host) > 253) {
        /* 253 is the longest DNS name; libmodbus would refuse it later with a bare EINVAL. */
        host->config_error(ctx, cfg->where, "host", "the host is longer than 253 characters");
        errors++;
    }

    struct mb_instance *in = calloc(1, sizeof(*in));
    if (in == NULL)
        return IB_ERR_NOMEM;
    in->host = host;
    in->ctx = ctx;
    in->host_name = cp->host;
    in->port = (int)cp->port;
    in->timeout_ms = (uint32_t)cp->timeout_ms;
    in->connect_timeout_ms = (uint32_t)cp->connect_timeout_ms;
    in->devices = calloc(cfg->n_devices ? cfg->n_devices : 1, sizeof(*in->devices));
    if (in->devices == NULL)
        goto fail;
    in->n_devices = cfg->n_devices;

    for (uint32_t d = 0; d < cfg->n_devices; d++) {
        const struct ib_device_config *dc = &cfg->devices[d];
        const struct mb_device_params *dp = dc->params;
        struct mb_device *dev = &in->devices[d];

        dev->name = dc->name;
        dev->unit_id = (int)dp->unit_id;
        dev->timeout_ms = dp->timeout_ms > 0 ? (uint32_t)dp->timeout_ms : in->timeout_ms;
        /* libmodbus 3.1.6 refuses 248..254 on TCP (reserved in the serial line spec). */
        if (dp->unit_id > 247 && dp->unit_id != 255) {
            host->config_error(ctx, dc->where, "unit_id",
                               "unit_id %lld is reserved; use 0..247 or 255",
                               (long long)dp->unit_id);
            errors++;
        }
        dev->groups = calloc(dc->n_groups ? dc->n_groups : 1, sizeof(*dev->groups));
        if (dev->groups == NULL)
            goto fail;
        dev->n_groups = dc->n_groups;

        for (uint32_t g = 0; g < dc->n_groups; g++) {
            const struct ib_group_config *gc = &dc->groups[g];
            struct mb_group *grp = &dev->groups[g];

            grp->name = gc->name;
            grp->tags = calloc(gc->n_tags ? gc->n_tags : 1, sizeof(*grp->tags));
            if (grp->tags == NULL)
                goto fail;
            grp->n_tags = gc->n_tags;
            for (uint32_t t = 0; t < gc->n_tags; t++)
                errors += resolve_tag(host, ctx, &gc->tags[t], dp, &grp->tags[t]);
        }
    }
    if (errors > 0) {
        rc = IB_ERR_INVALID;
        goto fail;
    }

    /* Plans only for a valid configuration, so the planner never sees what was reported. */
    for (uint32_t d = 0; d < in->n_devices; d++) {
        const struct ib_device_config *dc = &cfg->devices[d];
        for (uint32_t g = 0; g < dc->n_groups; g++) {
            rc = build_group(host, ctx, &dc->groups[g], dc->params, &in->devices[d].groups[g]);
            if (rc != 0)
                goto fail;
        }
    }

    /* The _pi variant takes a host name or an IPv6 address as well as an IPv4 one; it only
     * stores them here (no I/O: --check calls create) and resolves at connect. */
    char service[8];
    snprintf(service, sizeof(service), "%d", in->port);
    in->mb = modbus_new_tcp_pi(cp->host, service);
    if (in->mb == NULL)
        goto fail; /* out of memory: the host was checked above */
    *instance = in;
    return 0;

fail:
    mb_destroy(in);
    return rc;
}

/* ---- I/O helpers ----------------------------------------------------------------------------- */

static void set_timeout(struct mb_instance *in, uint32_t ms)
{
    if (ms == in->current_timeout_ms)
        return;
    if (modbus_set_response_timeout(in->mb, ms / 1000, (ms % 1000) * 1000) == 0)
        in->current_timeout_ms = ms;
}

/* Connect the (closed) context, then leave the response timeout at restore_ms.
 * Returns 0 or the errno of the failure. */
static int connect_now(struct mb_instance *in, uint32_t restore_ms)
{
    /* libmodbus 3.1.6 has no connect timeout of its own: its TCP connect waits for the
     * non-blocking connect() for as long as the response timeout. Lend it the connect timeout
     * for the duration of modbus_connect() and restore the response timeout afterwards. */
    set_timeout(in, in->connect_timeout_ms);
    int rc = modbus_connect(in->mb);
    int err = errno;
    set_timeout(in, restore_ms);
    if (rc == 0)
        return 0;
    /* When the wait times out libmodbus returns with connect()'s EINPROGRESS still in errno. */
    if (err == EINPROGRESS || err == 0)
        err = ETIMEDOUT;
    return err;
}

static const char *connect_error_text(int err)
{
    /* libmodbus 3.1.6 turns a failed name lookup into ECONNREFUSED too; say so rather than
     * send someone to look for a closed port. */
    if (err == ECONNREFUSED)
        return "connection refused, or the host name does not resolve";
    if (err == ETIMEDOUT)
        return "no answer within connect_timeout_ms";
    return modbus_strerror(err);
}

/* How a failed request is reported. */
struct mb_failure {
    uint8_t reason; /* enum ib_reason */
    uint16_t code;  /* Modbus exception number */
    int err;        /* enum ib_err */
};

static struct mb_failure classify(int e)
{
    if (e == ETIMEDOUT)
        return (struct mb_failure){IB_R_TIMEOUT, 0, IB_ERR_TIMEOUT};
    if (e >= EMBXILFUN && e <= EMBXGTAR)
        return (struct mb_failure){IB_R_EXCEPTION, (uint16_t)(e - MODBUS_ENOBASE),
                                   IB_ERR_EXCEPTION};
    if (e == EMBBADCRC)
        return (struct mb_failure){IB_R_CRC, 0, IB_ERR_PROTOCOL};
    /* EMBBADDATA, EMBBADEXC, EMBUNKEXC, EMBMDATA, EMBBADSLAVE, and an exception numbered 0. */
    if (e >= MODBUS_ENOBASE)
        return (struct mb_failure){IB_R_PROTOCOL, 0, IB_ERR_PROTOCOL};
    /* Every system error (ECONNRESET, EPIPE, EBADF, ENOTCONN, EIO, ...) leaves the socket in an
     * unknown state: only a new connection is trustworthy. */
    return (struct mb_failure){IB_R_CONN_LOST, 0, IB_ERR_CONNECTION};
}

/* Severity of an ib_err for "the worst failure" of a poll. */
static int severity(int err)
{
    switch (err) {
    case IB_OK:
        return 0;
    case IB_ERR_EXCEPTION:
        return 1;
    case IB_ERR_TIMEOUT:
        return 2;
    case IB_ERR_PROTOCOL:
        return 3;
    case IB_ERR_CONNECTION:
        return 5;
    default:
        return 4;
    }
}

/* Recover the link after a failed request. Returns false when the connection is lost. */
static bool recover(struct mb_instance *in, const struct mb_device *dev, const struct mb_failure *f)
{
    if (f->reason == IB_R_TIMEOUT) {
        /* The answer may still come: drop whatever already arrived. One that arrives later is
         * caught by the transaction id check of the next request (a protocol error below). */
        modbus_flush(in->mb);
    } else if (f->reason == IB_R_PROTOCOL || f->reason == IB_R_CRC) {
        /* The byte stream is out of step (a late answer to an earlier request, or a device
         * that framed its answer wrongly). On TCP nothing marks where the next frame starts,
         * and flushing only drops what has arrived so far: a fresh connection is the only
         * way to be sure the next answer belongs to the next request. */
        modbus_close(in->mb);
        int err = connect_now(in, dev->timeout_ms);
        if (err != 0) {
            LOG(in, IB_LOG_WARNING, dev->name, NULL,
                "reconnect to %s:%d after a protocol error failed: %s", in->host_name, in->port,
                connect_error_text(err));
            in->loss_logged = true;
            return false;
        }
    }
    return f->reason != IB_R_CONN_LOST;
}

static void select_device(struct mb_instance *in, const struct mb_device *dev)
{
    /* Unit ids were validated at create; libmodbus cannot refuse them here. */
    modbus_set_slave(in->mb, dev->unit_id);
    set_timeout(in, dev->timeout_ms);
}

static int read_request(struct mb_instance *in, struct mb_group *grp,
                        const struct mb_plan_request *req)
{
    int addr = (int)req->start, nb = (int)req->count;
    switch (req->table) {
    case MB_TABLE_COIL:
        return modbus_read_bits(in->mb, addr, nb, grp->bits + req->buf);
    case MB_TABLE_DISCRETE_INPUT:
        return modbus_read_input_bits(in->mb, addr, nb, grp->bits + req->buf);
    case MB_TABLE_INPUT:
        return modbus_read_input_registers(in->mb, addr, nb, grp->regs + req->buf);
    default:
        return modbus_read_registers(in->mb, addr, nb, grp->regs + req->buf);
    }
}

static void fill_sample(struct mb_instance *in, const struct mb_device *dev, struct mb_group *grp,
                        uint32_t i, struct ib_sample *s)
{
    struct mb_tag *t = &grp->tags[i];
    const struct mb_plan_slot *slot = &grp->plan.slots[i];
    const struct mb_plan_request *req = &grp->plan.requests[slot->request];
    const struct mb_request_state *st = &grp->state[slot->request];

    memset(s, 0, sizeof(*s));
    if (st->reason != IB_R_NONE) {
        ib_sample_bad(s, st->ts_ms, st->reason, st->code);
        return;
    }
    if (t->type == MB_TYPE_BOOL) {
        mb_decode_bit(grp->bits[req->buf + slot->offset], &s->value);
    } else if (mb_decode_registers(grp->regs + req->buf + slot->offset, (enum mb_type)t->type,
                                   (enum mb_order)t->order, &s->value) != 0) {
        ib_sample_bad(s, st->ts_ms, IB_R_DECODE, 0);
        if (!t->decode_failing)
            LOG(in, IB_LOG_WARNING, dev->name, t->name,
                "%s %u holds a NaN or infinity, not a %s value", table_names[t->table], t->address,
                mb_decode_type_name(t->type));
        t->decode_failing = true;
        return;
    }
    t->decode_failing = false;
    ib_sample_good(s, st->ts_ms);
}

static void log_group_outcome(struct mb_instance *in, const struct mb_device *dev,
                              struct mb_group *grp, const struct mb_plan_request *failed,
                              const struct mb_failure *f, int err_no)
{
    /* A lost connection is the connection's event, logged once by the caller. */
    if (f != NULL && f->reason == IB_R_CONN_LOST)
        return;
    if (f == NULL) {
        if (grp->logged_reason != IB_R_NONE)
            LOG(in, IB_LOG_NOTICE, dev->name, NULL, "group %s reads again", grp->name);
        grp->logged_reason = IB_R_NONE;
        grp->logged_code = 0;
        return;
    }
    if (f->reason == grp->logged_reason && f->code == grp->logged_code)
        return;
    grp->logged_reason = f->reason;
    grp->logged_code = f->code;
    LOG(in, IB_LOG_WARNING, dev->name, NULL,
        "group %s: reading %s %u..%u (unit %d) failed: %s%s; logged again when this changes",
        grp->name, table_names[failed->table], failed->start, failed->start + failed->count - 1,
        dev->unit_id, modbus_strerror(err_no),
        f->reason == IB_R_TIMEOUT ? " (check host, unit_id and timeout_ms)" : "");
}

/* ---- Callbacks ------------------------------------------------------------------------------- */

static int mb_open(void *instance)
{
    struct mb_instance *in = instance;
    if (in == NULL)
        return IB_ERR_INVALID;

    /* libmodbus would overwrite (leak) a socket that is still open. */
    modbus_close(in->mb);
    int err = connect_now(in, in->timeout_ms);
    if (err != 0) {
        /* The daemon retries with back-off: log a failure once until its cause changes. */
        if (err != in->open_errno)
            LOG(in, IB_LOG_WARNING, NULL, NULL, "cannot connect to %s:%d: %s", in->host_name,
                in->port, connect_error_text(err));
        in->open_errno = err;
        return IB_ERR_CONNECTION;
    }
    LOG(in, in->open_errno != 0 || in->loss_logged ? IB_LOG_NOTICE : IB_LOG_INFO, NULL, NULL,
        "connected to %s:%d%s", in->host_name, in->port, in->opened_once ? " again" : "");
    in->open_errno = 0;
    in->opened_once = true;
    in->loss_logged = false;
    return 0;
}

static void mb_close(void *instance)
{
    struct mb_instance *in = instance;
    if (in != NULL)
        modbus_close(in->mb);
}

static int mb_read_group(void *instance, uint32_t device, uint32_t group, struct ib_sample *samples)
{
    struct mb_instance *in = instance;
    if (in == NULL || device >= in->n_devices || group >= in->devices[device].n_groups)
        return IB_ERR_INVALID;
    struct mb_device *dev = &in->devices[device];
    struct mb_group *grp = &dev->groups[group];
    const struct mb_plan_request *worst_req = NULL;
    struct mb_failure worst = {IB_R_NONE, 0, IB_OK};
    int worst_errno = 0;
    bool lost = modbus_get_socket(in->mb) < 0;

    select_device(in, dev);
    for (uint32_t r = 0; r < grp->plan.n_requests; r++) {
        const struct mb_plan_request *req = &grp->plan.requests[r];
        struct mb_request_state *st = &grp->state[r];
        struct mb_failure f = {IB_R_CONN_LOST, 0, IB_ERR_CONNECTION};
        int n = -1, e = ENOTCONN;

        if (!lost) {
            n = read_request(in, grp, req);
            e = errno;
        }
        st->ts_ms = in->host->now_ms();
        if (n == (int)req->count) {
            st->reason = IB_R_NONE;
            st->code = 0;
            continue;
        }
        if (!lost) {
            if (n >= 0)
                e = EMBBADDATA; /* an answer with another count than asked for */
            f = classify(e);
            if (!recover(in, dev, &f)) {
                if (f.reason == IB_R_CONN_LOST && !in->loss_logged) {
                    LOG(in, IB_LOG_WARNING, dev->name, NULL, "connection to %s:%d lost: %s",
                        in->host_name, in->port, modbus_strerror(e));
                    in->loss_logged = true;
                }
                lost = true;
                /* This request keeps its own reason; the ones after it are lost. */
                if (severity(IB_ERR_CONNECTION) > severity(worst.err)) {
                    worst = (struct mb_failure){IB_R_CONN_LOST, 0, IB_ERR_CONNECTION};
                    worst_req = req;
                    worst_errno = e;
                }
            }
        }
        st->reason = f.reason;
        st->code = f.code;
        if (severity(f.err) > severity(worst.err)) {
            worst = f;
            worst_req = req;
            worst_errno = e;
        }
    }

    for (uint32_t i = 0; i < grp->n_tags; i++)
        fill_sample(in, dev, grp, i, &samples[i]);
    log_group_outcome(in, dev, grp, worst_req, worst_req != NULL ? &worst : NULL, worst_errno);
    return worst.err;
}

static int mb_write_tag(void *instance, uint32_t device, uint32_t group, uint32_t tag,
                        const struct ib_value *value)
{
    struct mb_instance *in = instance;
    if (in == NULL || value == NULL || device >= in->n_devices ||
        group >= in->devices[device].n_groups || tag >= in->devices[device].groups[group].n_tags)
        return IB_ERR_INVALID;
    struct mb_device *dev = &in->devices[device];
    const struct mb_tag *t = &dev->groups[group].tags[tag];
    uint16_t regs[4];
    uint8_t bit = 0;
    unsigned width = mb_decode_width((enum mb_type)t->type);
    int rc;

    if (!t->writable || t->table == MB_TABLE_DISCRETE_INPUT || t->table == MB_TABLE_INPUT)
        return IB_ERR_DENIED;
    if (t->table == MB_TABLE_COIL)
        rc = mb_encode_bit(value, &bit);
    else
        rc = mb_encode_registers(value, (enum mb_type)t->type, (enum mb_order)t->order, regs);
    if (rc != 0) {
        LOG(in, IB_LOG_WARNING, dev->name, t->name,
            "write refused: the value does not fit type %s (or is not a number)",
            mb_decode_type_name(t->type));
        return IB_ERR_INVALID;
    }
    if (modbus_get_socket(in->mb) < 0)
        return IB_ERR_CONNECTION;

    select_device(in, dev);
    int expect = 1;
    if (t->table == MB_TABLE_COIL) {
        rc = modbus_write_bit(in->mb, (int)t->address, bit); /* FC5 */
    } else if (width == 1) {
        rc = modbus_write_register(in->mb, (int)t->address, regs[0]); /* FC6 */
    } else {
        /* FC16 even where FC6 twice would do: it writes both halves of the value at once. */
        rc = modbus_write_registers(in->mb, (int)t->address, (int)width, regs);
        expect = (int)width;
    }
    if (rc == expect)
        return 0;

    int e = rc < 0 ? errno : EMBBADDATA;
    struct mb_failure f = classify(e);
    bool up = recover(in, dev, &f);
    LOG(in, IB_LOG_WARNING, dev->name, t->name, "writing %s %u (unit %d) failed: %s",
        table_names[t->table], t->address, dev->unit_id, modbus_strerror(e));
    if (!up) {
        in->loss_logged = true;
        return IB_ERR_CONNECTION;
    }
    return f.err;
}

IB_PLUGIN_DEFINE(.name = "modbus", .version = MB_PLUGIN_VERSION,
                 .description = "Modbus TCP client: coils, discrete inputs, input and holding "
                                "registers",
                 .connection_schema = &connection_schema, .device_schema = &device_schema,
                 .tag_schema = &tag_schema, .create = mb_create, .destroy = mb_destroy,
                 .open = mb_open, .close = mb_close, .read_group = mb_read_group,
                 .write_tag = mb_write_tag);
