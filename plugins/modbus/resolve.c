/* Modbus plugin: resolving a connection's configuration into an instance: every tag's address,
 * table, type, width and order checked against its device (each error reported with its place),
 * the link settings of the transport, and each group planned into requests with its buffers. */
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ironbridge/ironbridge.h>

#include "address.h"
#include "decode.h"
#include "instance.h"
#include "params.h"
#include "planner.h"
#include "resolve.h"
#include "schema.h"

void mb_instance_free(struct mb_instance *in)
{
    if (!in)
        return;
    for (uint32_t d = 0; d < in->n_devices && in->devices; d++) {
        struct mb_device *dev = &in->devices[d];
        for (uint32_t g = 0; g < dev->n_groups && dev->groups; g++) {
            struct mb_group *grp = &dev->groups[g];
            for (uint32_t t = 0; t < grp->n_tags && grp->tags; t++)
                free(grp->tags[t].text);
            free(grp->tags);
            mb_plan_free(&grp->plan);
            free(grp->reqs);
            free(grp->scratch);
            free(grp->batch);
            free(grp->req_of);
            free(grp->regs);
            free(grp->bits);
        }
        free(dev->groups);
    }
    free(in->devices);
    mb_link_free(in->link);
    free(in);
}

/* What create() checks against: the config being resolved. */
struct resolver {
    const struct ib_host *host;
    struct ib_host_ctx *ctx;
    unsigned errors;
    bool nomem;
};

__attribute__((format(printf, 4, 5))) static void cfg_error(struct resolver *rs, const void *where,
                                                            const char *key, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    rs->host->config_error(rs->ctx, where, key, "%s", msg);
    rs->errors++;
}

static bool is_word_order(int32_t o)
{
    return o == MB_P_ORDER_AB || o == MB_P_ORDER_BA;
}

/* The tag's order: its own if given (checked against its width), else the device's default. */
static void resolve_order(struct resolver *rs, const struct ib_tag_config *tc,
                          const struct mb_tag_params *p, const struct mb_device_params *dp,
                          struct mb_tag *t)
{
    bool bits = mb_table_is_bits((enum mb_table)t->table);
    bool wide = t->type != MB_TYPE_STRING && t->width > 1; /* 32- and 64-bit */
    if (p->order >= 0) {
        if (bits)
            cfg_error(rs, tc->where, "order", "a %s holds single bits: it has no byte order",
                      mb_table_name(t->table));
        else if (wide && is_word_order(p->order))
            cfg_error(rs, tc->where, "order",
                      "type %s takes ABCD, CDAB, BADC or DCBA, not %s (AB and BA are for 16-bit "
                      "types, bit and string)",
                      mb_decode_type_name(t->type), mb_schema_order_choices[p->order]);
        else if (!wide && !is_word_order(p->order))
            cfg_error(rs, tc->where, "order",
                      "type %s takes AB or BA, not %s (ABCD, CDAB, BADC and DCBA are for 32- "
                      "and 64-bit types)",
                      mb_decode_type_name(t->type), mb_schema_order_choices[p->order]);
        t->order = (uint8_t)mb_schema_order_map[p->order];
        return;
    }
    if (bits)
        t->order = MB_ORDER_AB;
    else if (wide)
        t->order =
            (uint8_t)mb_schema_order_map[dp->byte_order >= 0 ? dp->byte_order : MB_P_ORDER_ABCD];
    else
        t->order = dp->byte_order_16 == MB_P_ORDER16_BA ? MB_ORDER_BA : MB_ORDER_AB;
}

/* Resolve one tag's params against its device and report every semantic error. */
static void resolve_tag(struct resolver *rs, const struct ib_tag_config *tc,
                        const struct mb_device_params *dp, struct mb_tag *t)
{
    const struct mb_tag_params *p = tc->params;
    unsigned before = rs->errors;

    t->name = tc->name;
    t->writable = tc->writable != 0;
    t->verify_write = p->verify_write;
    if (p->table >= MB_P_TABLE_COUNT || p->type >= MB_P_TYPE_COUNT ||
        p->order >= MB_P_ORDER_COUNT || p->bit > 15) {
        /* The daemon validated the enums; this guards against a params struct built by hand. */
        cfg_error(rs, tc->where, "table", "table, type, order or bit out of range");
        return;
    }

    struct mb_address a = {0, -1};
    char why[256];
    if (mb_address_parse(p->address, &a, why, sizeof(why)) != 0) {
        cfg_error(rs, tc->where, "address", "%s", why);
        return;
    }
    t->address = a.address;
    if (a.table >= 0 && p->table >= 0 && mb_schema_table_map[p->table] != (enum mb_table)a.table) {
        cfg_error(rs, tc->where, "table",
                  "table %s contradicts the Modicon reference %s, which names the %s table",
                  mb_schema_table_choices[p->table], p->address, mb_table_name((unsigned)a.table));
        return;
    }
    if (a.table < 0 && p->table < 0) {
        cfg_error(rs, tc->where, "table",
                  "the table is missing: write table: coil, discrete_input, input or holding "
                  "(or the address as a Modicon reference, e.g. modicon:4%05u for holding %u)",
                  a.address + 1, a.address);
        return;
    }
    t->table = (uint8_t)(a.table >= 0 ? a.table : (int)mb_schema_table_map[p->table]);
    bool bits = mb_table_is_bits((enum mb_table)t->table);

    if (p->type < 0)
        t->type = bits ? MB_TYPE_BOOL : MB_TYPE_UINT16;
    else
        t->type = (uint8_t)mb_schema_type_map[p->type];

    if (bits && t->type != MB_TYPE_BOOL)
        cfg_error(rs, tc->where, "type", "a %s holds single bits: its type is bool, not %s",
                  mb_table_name(t->table), mb_decode_type_name(t->type));
    else if (!bits && t->type == MB_TYPE_BOOL)
        cfg_error(rs, tc->where, "type",
                  "bool needs a coil or discrete_input; for one bit of a %s register write "
                  "type: bit with bit: 0..15",
                  mb_table_name(t->table));

    if (t->type == MB_TYPE_BIT && p->bit < 0)
        cfg_error(rs, tc->where, "bit", "type bit needs bit: 0 (least significant) to 15");
    if (t->type != MB_TYPE_BIT && p->bit >= 0)
        cfg_error(rs, tc->where, "bit", "bit applies to type bit only, not to %s",
                  mb_decode_type_name(t->type));
    t->bit = (uint8_t)(p->bit >= 0 ? p->bit : 0);

    if (t->type == MB_TYPE_STRING && p->length <= 0)
        cfg_error(rs, tc->where, "length",
                  "type string needs length: the registers the text occupies (1..125)");
    if (t->type != MB_TYPE_STRING && p->length > 0)
        cfg_error(rs, tc->where, "length", "length applies to type string only, not to %s",
                  mb_decode_type_name(t->type));
    t->width = (uint16_t)(t->type == MB_TYPE_STRING ? (p->length > 0 ? p->length : 1)
                                                    : mb_decode_width((enum mb_type)t->type));

    resolve_order(rs, tc, p, dp, t);

    if (t->address + t->width > 65536)
        cfg_error(rs, tc->where, "address",
                  "type %s at address %u needs %u registers and would end past 65535",
                  mb_decode_type_name(t->type), t->address, t->width);
    if (!bits && t->width > dp->max_registers)
        cfg_error(rs, tc->where, "type",
                  "type %s needs %u registers but the device's max_registers is %lld",
                  mb_decode_type_name(t->type), t->width, (long long)dp->max_registers);
    if (t->writable && (t->table == MB_TABLE_DISCRETE_INPUT || t->table == MB_TABLE_INPUT))
        cfg_error(rs, tc->where, "writable",
                  "%s tags are read-only; only coil and holding tags can be writable",
                  mb_table_name(t->table));
    else if (t->writable && t->type == MB_TYPE_STRING)
        cfg_error(rs, tc->where, "writable", "string tags cannot be written");
    if (t->verify_write && !t->writable)
        cfg_error(rs, tc->where, "verify_write", "verify_write needs writable: true");

    if (t->type == MB_TYPE_STRING && rs->errors == before) {
        t->text = malloc(MB_STRING_CAP(t->width));
        if (!t->text)
            rs->nomem = true;
    }
}

/* Plan a resolved group and allocate its buffers. 0, or IB_ERR_NOMEM, or IB_ERR_INVALID (a
 * planner refusal that resolve_tag() should have caught; reported as such). */
static int build_group(struct resolver *rs, const struct ib_group_config *gc,
                       const struct mb_device_params *dp, struct mb_group *grp)
{
    uint32_t n = grp->n_tags;
    struct mb_plan_item *items = calloc(n ? n : 1, sizeof *items);
    if (!items)
        return IB_ERR_NOMEM;
    for (uint32_t i = 0; i < n; i++)
        items[i] =
            (struct mb_plan_item){grp->tags[i].table, grp->tags[i].address, grp->tags[i].width};
    struct mb_plan_limits limits = {
        .max_registers = (uint32_t)dp->max_registers,
        .max_bits = (uint32_t)dp->max_bits,
        .max_gap = (uint32_t)dp->max_gap,
        .one_per_item = dp->one_request_per_tag,
    };
    uint32_t bad = 0;
    int rc = mb_plan_build(items, n, &limits, &grp->plan, &bad);
    free(items);
    if (rc == IB_ERR_INVALID) {
        cfg_error(rs, bad < gc->n_tags ? gc->tags[bad].where : gc->where, NULL,
                  "this tag cannot be read within the device's limits");
        return rc;
    }
    if (rc != 0)
        return rc;

    /* calloc(0) may return NULL; keep one element so NULL always means out of memory. */
    grp->regs = calloc(grp->plan.n_registers + 1, sizeof *grp->regs);
    grp->bits = calloc(grp->plan.n_bits + 1, sizeof *grp->bits);
    /* Room for the planned requests; a refusal makes room for a request per tag (poll.c). */
    grp->reqs = calloc(grp->plan.n_requests + 1, sizeof *grp->reqs);
    grp->req_of = calloc(n + 1, sizeof *grp->req_of);
    if (!grp->regs || !grp->bits || !grp->reqs || !grp->req_of)
        return IB_ERR_NOMEM; /* the caller's mb_destroy() frees what was allocated */
    for (uint32_t i = 0; i < n; i++) {
        const struct mb_plan_slot *s = &grp->plan.slots[i];
        grp->tags[i].data = grp->plan.requests[s->request].buf + s->offset;
    }
    mb_group_restore_plan(grp);
    return 0;
}

/* RTU's silence between frames: 3.5 characters, fixed at 1750 us above 19200 baud. */
static uint32_t frame_gap_us(int baud, char parity, int data_bits, int stop_bits)
{
    if (baud > 19200)
        return 1750;
    unsigned bits = 1 + (unsigned)data_bits + (parity != 'N') + (unsigned)stop_bits;
    return (uint32_t)((3500000ull * bits + (unsigned)baud - 1) / (unsigned)baud);
}

/* The link configuration, with every key that does not apply to the transport reported. */
static void resolve_link(struct resolver *rs, const struct ib_connection_config *cfg,
                         struct mb_link_config *lc)
{
    const struct mb_connection_params *cp = cfg->params;
    int32_t tr = cp->transport >= 0 && cp->transport < MB_P_TRANSPORT_COUNT ? cp->transport
                                                                            : MB_P_TRANSPORT_TCP;
    const char *name = mb_schema_transport_choices[tr];
    bool serial = tr == MB_P_TRANSPORT_RTU;

    memset(lc, 0, sizeof *lc);
    lc->kind = tr == MB_P_TRANSPORT_RTU            ? MB_LINK_RTU
               : tr == MB_P_TRANSPORT_RTU_OVER_TCP ? MB_LINK_RTU_OVER_TCP
                                                   : MB_LINK_TCP;
    lc->host = cp->host;
    lc->port = cp->port > 0 ? (int)cp->port : 502;
    lc->serial_port = cp->serial_port;
    lc->baud = cp->baud >= 0 && (size_t)cp->baud < mb_schema_n_baud_values
                   ? mb_schema_baud_values[cp->baud]
                   : 19200;
    lc->parity = cp->parity == MB_P_PARITY_NONE ? 'N' : cp->parity == MB_P_PARITY_ODD ? 'O' : 'E';
    lc->data_bits = cp->data_bits >= 0 ? 5 + cp->data_bits : 8;
    lc->stop_bits = cp->stop_bits >= 0 ? 1 + cp->stop_bits : 1;
    lc->rs485 = cp->rs485;
    lc->connect_timeout_ms = (uint32_t)cp->connect_timeout_ms;
    lc->byte_timeout_ms = (uint32_t)cp->byte_timeout_ms;
    lc->frame_gap_us = cp->inter_frame_delay_us > 0 ? (uint32_t)cp->inter_frame_delay_us
                       : serial ? frame_gap_us(lc->baud, lc->parity, lc->data_bits, lc->stop_bits)
                                : 0;

    lc->impl = cp->implementation == MB_P_IMPL_LIBMODBUS ? MB_IMPL_LIBMODBUS : MB_IMPL_NATIVE;
    if (tr != MB_P_TRANSPORT_TCP && cp->implementation >= 0)
        cfg_error(rs, cfg->where, "implementation",
                  "implementation applies to transport tcp, not %s (%s frames are always the "
                  "plugin's own%s)",
                  name, serial ? "RTU" : "RTU-over-TCP",
                  serial ? "; libmodbus opens the port" : "");
    if (tr != MB_P_TRANSPORT_TCP && cp->max_outstanding > 1)
        cfg_error(rs, cfg->where, "max_outstanding",
                  "max_outstanding %lld applies to transport tcp only: RTU frames carry no "
                  "transaction id to match answers by; remove it or set it to 1",
                  (long long)cp->max_outstanding);
    else if (lc->impl == MB_IMPL_LIBMODBUS && cp->max_outstanding > 1)
        cfg_error(rs, cfg->where, "max_outstanding",
                  "max_outstanding %lld needs implementation native: libmodbus sends one request "
                  "at a time; set max_outstanding to 1 or drop implementation: libmodbus",
                  (long long)cp->max_outstanding);

    if (serial) {
        if (!cp->serial_port)
            cfg_error(rs, cfg->where, "serial_port",
                      "transport rtu needs serial_port (e.g. /dev/ttyUSB0)");
        if (cp->host)
            cfg_error(rs, cfg->where, "host", "host applies to tcp and rtu_over_tcp, not rtu");
        if (cp->port != 0)
            cfg_error(rs, cfg->where, "port", "port applies to tcp and rtu_over_tcp, not rtu");
        return;
    }
    if (!cp->host || cp->host[0] == '\0')
        cfg_error(rs, cfg->where, "host", "transport %s needs host", name);
    else if (strlen(cp->host) > 253)
        /* 253 is the longest DNS name; libmodbus would refuse it later with a bare EINVAL. */
        cfg_error(rs, cfg->where, "host", "the host is longer than 253 characters");
    static const char *const serial_keys[] = {"serial_port", "baud",      "parity",
                                              "data_bits",   "stop_bits", "rs485"};
    bool set[] = {cp->serial_port != NULL, cp->baud >= 0,      cp->parity >= 0,
                  cp->data_bits >= 0,      cp->stop_bits >= 0, cp->rs485};
    for (size_t k = 0; k < sizeof set / sizeof set[0]; k++)
        if (set[k])
            cfg_error(rs, cfg->where, serial_keys[k], "%s applies to transport rtu, not %s%s",
                      serial_keys[k], name,
                      tr == MB_P_TRANSPORT_RTU_OVER_TCP
                          ? " (the converter's serial side is set up on the converter)"
                          : "");
}

static void resolve_device(struct resolver *rs, const struct ib_device_config *dc,
                           const struct mb_link_config *lc, uint32_t conn_timeout,
                           struct mb_device *dev)
{
    const struct mb_device_params *dp = dc->params;
    dev->name = dc->name;
    dev->unit_id = (int)dp->unit_id;
    dev->timeout_ms = dp->timeout_ms > 0 ? (uint32_t)dp->timeout_ms : conn_timeout;
    dev->retries = (uint32_t)dp->retries;
    dev->pause_ms = (uint32_t)dp->pause_between_requests_ms;
    dev->backoff_max_ms = (uint32_t)dp->backoff_max_ms;
    dev->write_multiple = dp->write_multiple;
    if (lc->kind == MB_LINK_TCP) {
        /* libmodbus 3.1.6 refuses 248..254 on TCP (reserved in the serial line spec). */
        if (dp->unit_id > 247 && dp->unit_id != 255)
            cfg_error(rs, dc->where, "unit_id", "unit_id %lld is reserved; use 0..247 or 255",
                      (long long)dp->unit_id);
    } else if (dp->unit_id < 1 || dp->unit_id > 247) {
        cfg_error(rs, dc->where, "unit_id",
                  "unit_id %lld cannot be polled on a serial line: use 1..247 (0 is the "
                  "broadcast address, which no device answers)",
                  (long long)dp->unit_id);
    }
}

int mb_resolve(struct mb_instance *in, const struct ib_connection_config *cfg,
               struct mb_link_config *lc)
{
    struct resolver rs = {in->host, in->ctx, 0, false};
    resolve_link(&rs, cfg, lc);
    in->timeout_ms = (uint32_t)((const struct mb_connection_params *)cfg->params)->timeout_ms;
    in->close_after_poll = ((const struct mb_connection_params *)cfg->params)->close_after_poll;
    int64_t mo = ((const struct mb_connection_params *)cfg->params)->max_outstanding;
    in->max_outstanding = mo > 1 && mo <= MB_PIPE_MAX ? (uint32_t)mo : 1;
    in->outstanding = in->max_outstanding;
    in->devices = calloc(cfg->n_devices ? cfg->n_devices : 1, sizeof *in->devices);
    if (!in->devices)
        return IB_ERR_NOMEM;
    in->n_devices = cfg->n_devices;

    for (uint32_t d = 0; d < cfg->n_devices; d++) {
        const struct ib_device_config *dc = &cfg->devices[d];
        struct mb_device *dev = &in->devices[d];
        resolve_device(&rs, dc, lc, in->timeout_ms, dev);
        dev->groups = calloc(dc->n_groups ? dc->n_groups : 1, sizeof *dev->groups);
        if (!dev->groups)
            return IB_ERR_NOMEM;
        dev->n_groups = dc->n_groups;
        for (uint32_t g = 0; g < dc->n_groups; g++) {
            const struct ib_group_config *gc = &dc->groups[g];
            struct mb_group *grp = &dev->groups[g];
            grp->name = gc->name;
            grp->interval_ms = gc->interval_ms;
            grp->tags = calloc(gc->n_tags ? gc->n_tags : 1, sizeof *grp->tags);
            if (!grp->tags)
                return IB_ERR_NOMEM;
            grp->n_tags = gc->n_tags;
            for (uint32_t t = 0; t < gc->n_tags; t++)
                resolve_tag(&rs, &gc->tags[t], dc->params, &grp->tags[t]);
        }
    }
    if (rs.nomem)
        return IB_ERR_NOMEM;
    if (rs.errors > 0)
        return IB_ERR_INVALID;

    /* Plans only for a valid configuration, so the planner never sees what was reported. */
    for (uint32_t d = 0; d < in->n_devices; d++) {
        const struct ib_device_config *dc = &cfg->devices[d];
        for (uint32_t g = 0; g < dc->n_groups; g++) {
            int rc = build_group(&rs, &dc->groups[g], dc->params, &in->devices[d].groups[g]);
            if (rc != 0)
                return rc;
        }
    }
    return 0;
}
