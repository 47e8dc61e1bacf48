/* Modbus driver plugin (TCP, RTU, RTU over TCP): the exported descriptor, its config schemas,
 * and create(), which turns every device group into planned requests and buffers. */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <modbus.h>

#include <ironbridge/ironbridge.h>

#include "address.h"
#include "decode.h"
#include "instance.h"
#include "link.h"
#include "params.h"
#include "planner.h"

#ifndef MB_PLUGIN_VERSION
#define MB_PLUGIN_VERSION "0"
#endif

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* ---- Schemas --------------------------------------------------------------------------------- */

static const char *const transport_choices[] = {
    [MB_P_TRANSPORT_TCP] = "tcp",
    [MB_P_TRANSPORT_RTU] = "rtu",
    [MB_P_TRANSPORT_RTU_OVER_TCP] = "rtu_over_tcp",
    [MB_P_TRANSPORT_COUNT] = NULL,
};

static const char *const order_choices[] = {
    [MB_P_ORDER_ABCD] = "ABCD", [MB_P_ORDER_CDAB] = "CDAB", [MB_P_ORDER_BADC] = "BADC",
    [MB_P_ORDER_DCBA] = "DCBA", [MB_P_ORDER_AB] = "AB",     [MB_P_ORDER_BA] = "BA",
    [MB_P_ORDER_COUNT] = NULL,
};

/* byte_order: the 32/64-bit orders, the first four of order_choices. */
static const char *const order32_choices[] = {"ABCD", "CDAB", "BADC", "DCBA", NULL};

static const char *const order16_choices[] = {
    [MB_P_ORDER16_AB] = "AB",
    [MB_P_ORDER16_BA] = "BA",
    [MB_P_ORDER16_COUNT] = NULL,
};

static const char *const table_choices[] = {
    [MB_P_TABLE_COIL] = "coil",   [MB_P_TABLE_DISCRETE_INPUT] = "discrete_input",
    [MB_P_TABLE_INPUT] = "input", [MB_P_TABLE_HOLDING] = "holding",
    [MB_P_TABLE_COUNT] = NULL,
};

static const char *const type_choices[] = {
    [MB_P_TYPE_BOOL] = "bool",   [MB_P_TYPE_INT16] = "int16",   [MB_P_TYPE_UINT16] = "uint16",
    [MB_P_TYPE_INT32] = "int32", [MB_P_TYPE_UINT32] = "uint32", [MB_P_TYPE_FLOAT32] = "float32",
    [MB_P_TYPE_INT64] = "int64", [MB_P_TYPE_UINT64] = "uint64", [MB_P_TYPE_FLOAT64] = "float64",
    [MB_P_TYPE_BIT] = "bit",     [MB_P_TYPE_STRING] = "string", [MB_P_TYPE_COUNT] = NULL,
};

static const char *const parity_choices[] = {
    [MB_P_PARITY_NONE] = "none",
    [MB_P_PARITY_EVEN] = "even",
    [MB_P_PARITY_ODD] = "odd",
    [MB_P_PARITY_COUNT] = NULL,
};

#define X(b) #b,
static const char *const baud_choices[] = {MB_P_BAUD_CHOICES NULL};
#undef X
#define X(b) b,
static const int baud_values[] = {MB_P_BAUD_CHOICES};
#undef X

static const char *const data_bits_choices[] = {"5", "6", "7", "8", NULL};
static const char *const stop_bits_choices[] = {"1", "2", NULL};
static const char *const bit_choices[] = {"0", "1",  "2",  "3",  "4",  "5",  "6",  "7", "8",
                                          "9", "10", "11", "12", "13", "14", "15", NULL};

/* Schema indices to the codec's and planner's own enums. */
static const enum mb_order order_map[MB_P_ORDER_COUNT] = {
    [MB_P_ORDER_ABCD] = MB_ORDER_ABCD, [MB_P_ORDER_CDAB] = MB_ORDER_CDAB,
    [MB_P_ORDER_BADC] = MB_ORDER_BADC, [MB_P_ORDER_DCBA] = MB_ORDER_DCBA,
    [MB_P_ORDER_AB] = MB_ORDER_AB,     [MB_P_ORDER_BA] = MB_ORDER_BA,
};

static const enum mb_table table_map[MB_P_TABLE_COUNT] = {
    [MB_P_TABLE_COIL] = MB_TABLE_COIL,
    [MB_P_TABLE_DISCRETE_INPUT] = MB_TABLE_DISCRETE_INPUT,
    [MB_P_TABLE_INPUT] = MB_TABLE_INPUT,
    [MB_P_TABLE_HOLDING] = MB_TABLE_HOLDING,
};

static const enum mb_type type_map[MB_P_TYPE_COUNT] = {
    [MB_P_TYPE_BOOL] = MB_TYPE_BOOL,       [MB_P_TYPE_INT16] = MB_TYPE_INT16,
    [MB_P_TYPE_UINT16] = MB_TYPE_UINT16,   [MB_P_TYPE_INT32] = MB_TYPE_INT32,
    [MB_P_TYPE_UINT32] = MB_TYPE_UINT32,   [MB_P_TYPE_FLOAT32] = MB_TYPE_FLOAT32,
    [MB_P_TYPE_INT64] = MB_TYPE_INT64,     [MB_P_TYPE_UINT64] = MB_TYPE_UINT64,
    [MB_P_TYPE_FLOAT64] = MB_TYPE_FLOAT64, [MB_P_TYPE_BIT] = MB_TYPE_BIT,
    [MB_P_TYPE_STRING] = MB_TYPE_STRING,
};

#define E_INT(st, k, f, d, lo, hi, desc)                                                           \
    {                                                                                              \
        .key = k, .type = IB_S_INT, .flags = IB_SF_RANGE, .offset = offsetof(st, f), .def = d,     \
        .min = lo, .max = hi, .description = desc                                                  \
    }
#define E_BOOL(st, k, f, d, desc)                                                                  \
    {                                                                                              \
        .key = k, .type = IB_S_BOOL, .offset = offsetof(st, f), .def = d, .description = desc      \
    }
#define E_ENUM(st, k, f, d, ch, desc)                                                              \
    {                                                                                              \
        .key = k, .type = IB_S_ENUM, .offset = offsetof(st, f), .def = d, .choices = ch,           \
        .description = desc                                                                        \
    }
#define E_STR(st, k, f, desc)                                                                      \
    {                                                                                              \
        .key = k, .type = IB_S_STRING, .offset = offsetof(st, f), .description = desc              \
    }

#define CP struct mb_connection_params
static const struct ib_schema_entry connection_entries[] = {
    E_ENUM(CP, "transport", transport, "tcp", transport_choices,
           "How the devices are reached: tcp (Modbus TCP), rtu (Modbus RTU on a serial port) or "
           "rtu_over_tcp (RTU frames through a serial-to-Ethernet converter)"),
    E_STR(CP, "host", host,
          "tcp, rtu_over_tcp: host name or IP address (IPv4 or IPv6) of the server, gateway or "
          "converter; required there"),
    {.key = "port",
     .type = IB_S_INT,
     .flags = IB_SF_RANGE,
     .offset = offsetof(CP, port),
     .min = 1,
     .max = 65535,
     .description = "tcp, rtu_over_tcp: TCP port; 502 when absent"},
    E_STR(CP, "serial_port", serial_port,
          "rtu: the serial device, e.g. /dev/ttyUSB0 or /dev/serial/by-id/...; required there"),
    E_ENUM(CP, "baud", baud, NULL, baud_choices, "rtu: bits per second; 19200 when absent"),
    E_ENUM(CP, "parity", parity, NULL, parity_choices,
           "rtu: none, even or odd; even (the Modbus default) when absent"),
    E_ENUM(CP, "data_bits", data_bits, NULL, data_bits_choices,
           "rtu: data bits per character; 8 when absent (RTU frames need 8)"),
    E_ENUM(CP, "stop_bits", stop_bits, NULL, stop_bits_choices, "rtu: 1 or 2; 1 when absent"),
    E_BOOL(CP, "rs485", rs485, "false",
           "rtu: switch the port into RS-485 mode (driver-controlled transmit enable) at open; "
           "opening fails when the port has no RS-485 mode"),
    E_INT(CP, "inter_frame_delay_us", inter_frame_delay_us, "0", 0, 1000000,
          "Silence kept between frames, in microseconds; 0: 3.5 characters at the baud rate for "
          "rtu (1750 above 19200 baud), none for tcp and rtu_over_tcp"),
    E_INT(CP, "timeout_ms", timeout_ms, "1000", 1, 60000,
          "How long to wait for the first byte of a response, in ms"),
    E_INT(CP, "byte_timeout_ms", byte_timeout_ms, "500", 1, 60000,
          "The longest pause allowed between two bytes of one response, in ms"),
    E_INT(CP, "connect_timeout_ms", connect_timeout_ms, "3000", 1, 60000,
          "tcp, rtu_over_tcp: how long to wait for the TCP connection, in ms"),
    E_BOOL(CP, "close_after_poll", close_after_poll, "false",
           "Close the connection after every poll and open it again for the next (devices that "
           "serve one client at a time)"),
};
#undef CP

#define DP struct mb_device_params
static const struct ib_schema_entry device_entries[] = {
    E_INT(DP, "unit_id", unit_id, "1", 0, 255,
          "Modbus unit identifier (slave address): 1..247 on rtu kinds; 0..247 or 255 on tcp"),
    E_ENUM(DP, "byte_order", byte_order, "ABCD", order32_choices,
           "Default order of 32- and 64-bit values: ABCD (big-endian, standard), CDAB (words "
           "swapped), BADC (bytes swapped) or DCBA (little-endian)"),
    E_ENUM(DP, "byte_order_16", byte_order_16, "AB", order16_choices,
           "Default order of 16-bit values, bits of registers and strings: AB (standard) or BA "
           "(bytes swapped)"),
    E_INT(DP, "timeout_ms", timeout_ms, "0", 0, 60000,
          "Response timeout for this device in ms; 0 uses the connection's"),
    E_INT(DP, "retries", retries, "1", 0, 10,
          "Repeats of a request that timed out or came back garbled (not of an exception)"),
    E_INT(DP, "max_registers", max_registers, "125", 1, MODBUS_MAX_READ_REGISTERS,
          "Most registers the device accepts in one read request"),
    E_INT(DP, "max_bits", max_bits, "2000", 1, MODBUS_MAX_READ_BITS,
          "Most coils or discrete inputs the device accepts in one read request"),
    E_INT(DP, "max_gap", max_gap, "10", 0, MODBUS_MAX_READ_REGISTERS - 1,
          "Unused registers a read may span to join two tags into one request (16 times as "
          "many bits in the coil and discrete input tables); 0: join only adjacent tags"),
    E_BOOL(DP, "one_request_per_tag", one_request_per_tag, "false",
           "Read every tag with a request of its own (devices that refuse block reads)"),
    E_INT(DP, "pause_between_requests_ms", pause_between_requests_ms, "0", 0, 60000,
          "Pause before each request to this device after the previous request, in ms"),
    E_BOOL(DP, "write_multiple", write_multiple, "false",
           "Write single coils and registers with FC15/FC16 instead of FC5/FC6 (devices without "
           "FC5/FC6)"),
    E_INT(DP, "backoff_max_ms", backoff_max_ms, "60000", 0, 3600000,
          "A device that stops answering is asked again after 1, 2, 4... poll intervals, at "
          "most this far apart, in ms; 0: ask at every poll"),
};
#undef DP

#define TP struct mb_tag_params
static const struct ib_schema_entry tag_entries[] = {
    {.key = "address",
     .type = IB_S_STRING,
     .flags = IB_SF_REQUIRED,
     .offset = offsetof(TP, address),
     .description = "0-based protocol address of the first register or bit (3027 or 0x0BD3), "
                    "or a Modicon reference marked as such: modicon:403028 (holding 3027)"},
    E_ENUM(TP, "table", table, NULL, table_choices,
           "Modbus table: coil, discrete_input, input (register) or holding (register); "
           "required unless the address is a modicon: reference"),
    E_ENUM(TP, "type", type, NULL, type_choices,
           "Value type; default bool for coil/discrete_input, uint16 for registers"),
    E_ENUM(TP, "order", order, NULL, order_choices,
           "Byte/word order overriding the device's: AB or BA for 16-bit types, bit and string; "
           "ABCD, CDAB, BADC or DCBA for 32- and 64-bit types"),
    E_ENUM(TP, "bit", bit, NULL, bit_choices,
           "type bit: which bit of the register, 0 (least significant) to 15; required there"),
    E_INT(TP, "length", length, NULL, 1, MODBUS_MAX_READ_REGISTERS,
          "type string: registers the text occupies (two bytes each); required there"),
    E_BOOL(TP, "verify_write", verify_write, "false",
           "After a write, read the value back and report a mismatch as a failed write"),
};
#undef TP

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

/* ---- create / destroy ------------------------------------------------------------------------ */

static void mb_destroy(void *instance)
{
    struct mb_instance *in = instance;
    if (in == NULL)
        return;
    for (uint32_t d = 0; d < in->n_devices && in->devices != NULL; d++) {
        struct mb_device *dev = &in->devices[d];
        for (uint32_t g = 0; g < dev->n_groups && dev->groups != NULL; g++) {
            struct mb_group *grp = &dev->groups[g];
            for (uint32_t t = 0; t < grp->n_tags && grp->tags != NULL; t++)
                free(grp->tags[t].text);
            free(grp->tags);
            mb_plan_free(&grp->plan);
            free(grp->reqs);
            free(grp->scratch);
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
    bool bits = mb_plan_table_is_bits((enum mb_table)t->table);
    bool wide = t->type != MB_TYPE_STRING && t->width > 1; /* 32- and 64-bit */
    if (p->order >= 0) {
        if (bits)
            cfg_error(rs, tc->where, "order", "a %s holds single bits: it has no byte order",
                      mb_table_name(t->table));
        else if (wide && is_word_order(p->order))
            cfg_error(rs, tc->where, "order",
                      "type %s takes ABCD, CDAB, BADC or DCBA, not %s (AB and BA are for 16-bit "
                      "types, bit and string)",
                      mb_decode_type_name(t->type), order_choices[p->order]);
        else if (!wide && !is_word_order(p->order))
            cfg_error(rs, tc->where, "order",
                      "type %s takes AB or BA, not %s (ABCD, CDAB, BADC and DCBA are for 32- "
                      "and 64-bit types)",
                      mb_decode_type_name(t->type), order_choices[p->order]);
        t->order = (uint8_t)order_map[p->order];
        return;
    }
    if (bits)
        t->order = MB_ORDER_AB;
    else if (wide)
        t->order = (uint8_t)order_map[dp->byte_order >= 0 ? dp->byte_order : MB_P_ORDER_ABCD];
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
    if (a.table >= 0 && p->table >= 0 && table_map[p->table] != (enum mb_table)a.table) {
        cfg_error(rs, tc->where, "table",
                  "table %s contradicts the Modicon reference %s, which names the %s table",
                  table_choices[p->table], p->address, mb_table_name((unsigned)a.table));
        return;
    }
    if (a.table < 0 && p->table < 0) {
        cfg_error(rs, tc->where, "table",
                  "the table is missing: coil, discrete_input, input or holding (or write the "
                  "address as a Modicon reference, modicon:4xxxxx)");
        return;
    }
    t->table = (uint8_t)(a.table >= 0 ? a.table : (int)table_map[p->table]);
    bool bits = mb_plan_table_is_bits((enum mb_table)t->table);

    if (p->type < 0)
        t->type = bits ? MB_TYPE_BOOL : MB_TYPE_UINT16;
    else
        t->type = (uint8_t)type_map[p->type];

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
        if (t->text == NULL)
            rs->nomem = true;
    }
}

/* Plan a resolved group and allocate its buffers. 0, or IB_ERR_NOMEM, or IB_ERR_INVALID (a
 * planner refusal that resolve_tag() should have caught; reported as such). */
static int build_group(struct resolver *rs, const struct ib_group_config *gc,
                       const struct mb_device_params *dp, struct mb_group *grp)
{
    uint32_t n = grp->n_tags;
    struct mb_plan_item *items = calloc(n ? n : 1, sizeof(*items));
    if (items == NULL)
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
    grp->regs = calloc(grp->plan.n_registers + 1, sizeof(*grp->regs));
    grp->bits = calloc(grp->plan.n_bits + 1, sizeof(*grp->bits));
    /* Room for the planned requests; a refusal makes room for a request per tag (poll.c). */
    grp->reqs = calloc(grp->plan.n_requests + 1, sizeof(*grp->reqs));
    grp->req_of = calloc(n + 1, sizeof(*grp->req_of));
    if (grp->regs == NULL || grp->bits == NULL || grp->reqs == NULL || grp->req_of == NULL)
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
    const char *name = transport_choices[tr];
    bool serial = tr == MB_P_TRANSPORT_RTU;

    memset(lc, 0, sizeof(*lc));
    lc->kind = tr == MB_P_TRANSPORT_RTU            ? MB_LINK_RTU
               : tr == MB_P_TRANSPORT_RTU_OVER_TCP ? MB_LINK_RTU_OVER_TCP
                                                   : MB_LINK_TCP;
    lc->host = cp->host;
    lc->port = cp->port > 0 ? (int)cp->port : 502;
    lc->serial_port = cp->serial_port;
    lc->baud =
        cp->baud >= 0 && (size_t)cp->baud < ARRAY_SIZE(baud_values) ? baud_values[cp->baud] : 19200;
    lc->parity = cp->parity == MB_P_PARITY_NONE ? 'N' : cp->parity == MB_P_PARITY_ODD ? 'O' : 'E';
    lc->data_bits = cp->data_bits >= 0 ? 5 + cp->data_bits : 8;
    lc->stop_bits = cp->stop_bits >= 0 ? 1 + cp->stop_bits : 1;
    lc->rs485 = cp->rs485;
    lc->connect_timeout_ms = (uint32_t)cp->connect_timeout_ms;
    lc->byte_timeout_ms = (uint32_t)cp->byte_timeout_ms;
    lc->frame_gap_us = cp->inter_frame_delay_us > 0 ? (uint32_t)cp->inter_frame_delay_us
                       : serial ? frame_gap_us(lc->baud, lc->parity, lc->data_bits, lc->stop_bits)
                                : 0;

    if (serial) {
        if (cp->serial_port == NULL)
            cfg_error(rs, cfg->where, "serial_port",
                      "transport rtu needs serial_port (e.g. /dev/ttyUSB0)");
        if (cp->host != NULL)
            cfg_error(rs, cfg->where, "host", "host applies to tcp and rtu_over_tcp, not rtu");
        if (cp->port != 0)
            cfg_error(rs, cfg->where, "port", "port applies to tcp and rtu_over_tcp, not rtu");
        return;
    }
    if (cp->host == NULL || cp->host[0] == '\0')
        cfg_error(rs, cfg->where, "host", "transport %s needs host", name);
    else if (strlen(cp->host) > 253)
        /* 253 is the longest DNS name; libmodbus would refuse it later with a bare EINVAL. */
        cfg_error(rs, cfg->where, "host", "the host is longer than 253 characters");
    static const char *const serial_keys[] = {"serial_port", "baud",      "parity",
                                              "data_bits",   "stop_bits", "rs485"};
    bool set[] = {cp->serial_port != NULL, cp->baud >= 0,      cp->parity >= 0,
                  cp->data_bits >= 0,      cp->stop_bits >= 0, cp->rs485};
    for (size_t k = 0; k < ARRAY_SIZE(set); k++)
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

static int mb_create(const struct ib_host *host, struct ib_host_ctx *ctx,
                     const struct ib_connection_config *cfg, void **instance)
{
    if (host == NULL || cfg == NULL || cfg->params == NULL || instance == NULL)
        return IB_ERR_INVALID;
    *instance = NULL;
    if (host->abi_major != IB_ABI_MAJOR)
        return IB_ERR_UNSUPPORTED;

    const struct mb_connection_params *cp = cfg->params;
    struct resolver rs = {host, ctx, 0, false};
    struct mb_link_config lc;
    int rc = IB_ERR_NOMEM;
    resolve_link(&rs, cfg, &lc);

    struct mb_instance *in = calloc(1, sizeof(*in));
    if (in == NULL)
        return IB_ERR_NOMEM;
    in->host = host;
    in->ctx = ctx;
    in->timeout_ms = (uint32_t)cp->timeout_ms;
    in->close_after_poll = cp->close_after_poll;
    in->devices = calloc(cfg->n_devices ? cfg->n_devices : 1, sizeof(*in->devices));
    if (in->devices == NULL)
        goto fail;
    in->n_devices = cfg->n_devices;

    for (uint32_t d = 0; d < cfg->n_devices; d++) {
        const struct ib_device_config *dc = &cfg->devices[d];
        struct mb_device *dev = &in->devices[d];
        resolve_device(&rs, dc, &lc, in->timeout_ms, dev);
        dev->groups = calloc(dc->n_groups ? dc->n_groups : 1, sizeof(*dev->groups));
        if (dev->groups == NULL)
            goto fail;
        dev->n_groups = dc->n_groups;
        for (uint32_t g = 0; g < dc->n_groups; g++) {
            const struct ib_group_config *gc = &dc->groups[g];
            struct mb_group *grp = &dev->groups[g];
            grp->name = gc->name;
            grp->interval_ms = gc->interval_ms;
            grp->tags = calloc(gc->n_tags ? gc->n_tags : 1, sizeof(*grp->tags));
            if (grp->tags == NULL)
                goto fail;
            grp->n_tags = gc->n_tags;
            for (uint32_t t = 0; t < gc->n_tags; t++)
                resolve_tag(&rs, &gc->tags[t], dc->params, &grp->tags[t]);
        }
    }
    if (rs.nomem)
        goto fail;
    if (rs.errors > 0) {
        rc = IB_ERR_INVALID;
        goto fail;
    }

    /* Plans only for a valid configuration, so the planner never sees what was reported. */
    for (uint32_t d = 0; d < in->n_devices; d++) {
        const struct ib_device_config *dc = &cfg->devices[d];
        for (uint32_t g = 0; g < dc->n_groups; g++) {
            rc = build_group(&rs, &dc->groups[g], dc->params, &in->devices[d].groups[g]);
            if (rc != 0)
                goto fail;
        }
    }
    /* The link only stores its settings here (no I/O: --check calls create). */
    rc = mb_link_new(&lc, &in->link);
    if (rc != 0)
        goto fail;
    *instance = in;
    return 0;

fail:
    mb_destroy(in);
    return rc;
}

/* ---- Callbacks ------------------------------------------------------------------------------- */

static void log_plan(struct mb_instance *in)
{
    uint32_t tags = 0, reqs = 0;
    for (uint32_t d = 0; d < in->n_devices; d++)
        for (uint32_t g = 0; g < in->devices[d].n_groups; g++) {
            const struct mb_group *grp = &in->devices[d].groups[g];
            tags += grp->n_tags;
            reqs += grp->plan.n_requests;
            MB_LOG(in, IB_LOG_DEBUG, in->devices[d].name, NULL,
                   "group %s: %u tags in %u read requests (%u registers, %u bits)", grp->name,
                   grp->n_tags, grp->plan.n_requests, grp->plan.n_registers, grp->plan.n_bits);
        }
    MB_LOG(in, IB_LOG_INFO, NULL, NULL,
           "connected to %s: %u devices, %u tags in %u read requests when every group is polled "
           "once",
           mb_link_name(in->link), in->n_devices, tags, reqs);
}

static int mb_open(void *instance)
{
    struct mb_instance *in = instance;
    if (in == NULL)
        return IB_ERR_INVALID;
    mb_link_close(in->link);
    int err = mb_link_open(in->link);
    if (err != 0) {
        mb_log_open_error(in, err);
        return IB_ERR_CONNECTION;
    }
    if (!in->opened_once)
        log_plan(in);
    else
        MB_LOG(in, in->open_errno != 0 || in->loss_logged ? IB_LOG_NOTICE : IB_LOG_INFO, NULL, NULL,
               "connected to %s again", mb_link_name(in->link));
    in->open_errno = 0;
    in->opened_once = true;
    in->loss_logged = false;
    return 0;
}

static void mb_close(void *instance)
{
    struct mb_instance *in = instance;
    if (in != NULL)
        mb_link_close(in->link);
}

static int mb_read_group(void *instance, uint32_t device, uint32_t group, struct ib_sample *samples)
{
    struct mb_instance *in = instance;
    if (in == NULL || samples == NULL || device >= in->n_devices ||
        group >= in->devices[device].n_groups)
        return IB_ERR_INVALID;
    return mb_poll_group(in, device, group, samples);
}

static int mb_write_tag(void *instance, uint32_t device, uint32_t group, uint32_t tag,
                        const struct ib_value *value)
{
    struct mb_instance *in = instance;
    if (in == NULL || value == NULL || device >= in->n_devices ||
        group >= in->devices[device].n_groups || tag >= in->devices[device].groups[group].n_tags)
        return IB_ERR_INVALID;
    return mb_write(in, device, group, tag, value);
}

IB_PLUGIN_DEFINE(.name = "modbus", .version = MB_PLUGIN_VERSION,
                 .description = "Modbus client over TCP, RTU (serial) and RTU over TCP: coils, "
                                "discrete inputs, input and holding registers",
                 .connection_schema = &connection_schema, .device_schema = &device_schema,
                 .tag_schema = &tag_schema, .create = mb_create, .destroy = mb_destroy,
                 .open = mb_open, .close = mb_close, .read_group = mb_read_group,
                 .write_tag = mb_write_tag);
