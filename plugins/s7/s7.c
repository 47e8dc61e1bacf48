/* Siemens S7 driver plugin (S7-300/400, S7-1200/1500 with PUT/GET, S7-200 SMART, LOGO! over
 * ISO-on-TCP): the exported descriptor, its config schemas, create() (addresses, types and
 * spans resolved, every error with its position), and open()/close(). */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ironbridge/ironbridge.h>

#include "instance.h"
#include "params.h"

#ifndef S7_PLUGIN_VERSION
#define S7_PLUGIN_VERSION "0"
#endif

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* ---- Schemas --------------------------------------------------------------------------------- */

static const char *const conn_type_choices[] = {"pg", "op", "s7_basic", NULL};
static const char *const format_choices[] = {"ms", "iso", NULL};

#define E_INT(st, k, f, d, lo, hi, desc)                                                           \
    {                                                                                              \
        .key = k, .type = IB_S_INT, .flags = IB_SF_RANGE, .offset = offsetof(st, f), .def = d,     \
        .min = lo, .max = hi, .description = desc                                                  \
    }
#define E_DUR(st, k, f, d, lo, hi, desc)                                                           \
    {                                                                                              \
        .key = k, .type = IB_S_DURATION, .flags = IB_SF_RANGE, .offset = offsetof(st, f),          \
        .def = d, .min = lo, .max = hi, .description = desc                                        \
    }
#define E_ENUM(st, k, f, d, ch, desc)                                                              \
    {                                                                                              \
        .key = k, .type = IB_S_ENUM, .offset = offsetof(st, f), .def = d, .choices = ch,           \
        .description = desc                                                                        \
    }
#define E_STR(st, k, f, fl, desc)                                                                  \
    {                                                                                              \
        .key = k, .type = IB_S_STRING, .flags = fl, .offset = offsetof(st, f), .description = desc \
    }

#define CP struct s7_connection_params
static const struct ib_schema_entry connection_entries[] = {
    E_STR(CP, "host", host, IB_SF_REQUIRED, "Host name or IP address of the PLC (or its CP)"),
    E_INT(CP, "port", port, "102", 1, 65535, "TCP port of ISO-on-TCP (RFC 1006)"),
    E_INT(CP, "rack", rack, "0", 0, 7,
          "Rack of the CPU (0 on S7-300, S7-1200, S7-1500); ignored with remote_tsap"),
    E_INT(CP, "slot", slot, "1", 0, 31,
          "Slot of the CPU: 1 on S7-1200/1500 (and S7-200 SMART), 2 on S7-300, as configured "
          "on S7-400; ignored with remote_tsap"),
    E_ENUM(CP, "connection_type", connection_type, "pg", conn_type_choices,
           "Connection resource the PLC assigns: pg (programming device), op (operator panel) "
           "or s7_basic; the high byte of the remote TSAP"),
    E_STR(CP, "local_tsap", local_tsap, 0,
          "Local (calling) TSAP as 4 hex digits, 01.00 or 0x0100; 01.00 when absent. LOGO! "
          "and S7-200: as configured in the PLC's connection"),
    E_STR(CP, "remote_tsap", remote_tsap, 0,
          "Remote (called) TSAP as 4 hex digits, 02.00 or 0x0200 (LOGO!, S7-200); when absent "
          "it is made from connection_type, rack and slot"),
    E_INT(CP, "pdu_size", pdu_size, "960", 240, 960,
          "PDU size asked for in Setup Communication; the PLC answers with what it allows "
          "(240 on S7-300, 480 or 960 on newer CPUs) and requests are packed for that"),
    E_INT(CP, "parallel_jobs", parallel_jobs, "3", 1, 8,
          "Read Var requests sent before their answers arrive, asked for in Setup Communication; "
          "the PLC grants its own (1 on S7-300, 3 and more on S7-1200/1500)"),
    E_DUR(CP, "timeout", timeout_ms, "2s", 10, 60000, "How long to wait for each answer"),
    E_DUR(CP, "connect_timeout", connect_timeout_ms, "3s", 10, 60000,
          "How long to wait for the TCP connection"),
};
#undef CP

#define DP struct s7_device_params
static const struct ib_schema_entry device_entries[] = {
    E_INT(DP, "max_gap", max_gap, "32", 0, 512,
          "Unused bytes a read may span to join two tags of one area or DB into one item"),
    E_INT(DP, "max_items", max_items, "20", 1, S7_MAX_ITEMS,
          "Most items in one Read Var request (also limited by the PDU size)"),
};
#undef DP

#define TP struct s7_tag_params
static const struct ib_schema_entry tag_entries[] = {
    E_STR(TP, "address", address, IB_SF_REQUIRED,
          "STEP 7 / TIA Portal address, case-insensitive, % optional: DB10.DBX4.3, DB10.DBB4, "
          "DB10.DBW4, DB10.DBD4, M0.1, MB5, MW10, MD20, I0.0 (E0.0), IW64, Q4.2 (A4.2), QD8, "
          "T5, C3"),
    E_ENUM(TP, "type", type, NULL, s7_type_names,
           "S7 data type; by the address width when absent: bool (X or .bit), byte (B), word "
           "(W), dword (D), s5time (T), counter (C). Types longer than 4 bytes (lreal, lint, "
           "ulint, string, wstring, date_and_time, dtl) start at a byte address (DBB, MB)"),
    E_INT(TP, "length", length, NULL, 1, 16382,
          "string: declared length (1..254, STRING[n]); wstring: declared length (WSTRING[n]); "
          "required there"),
    E_ENUM(TP, "format", format, "ms", format_choices,
           "date, time_of_day, date_and_time, dtl: ms (since the Unix epoch taking the PLC's "
           "clock as UTC; since midnight for time_of_day) or iso (2024-05-01T12:34:56.789)"),
};
#undef TP

static const struct ib_schema connection_schema = {
    sizeof(struct s7_connection_params), ARRAY_SIZE(connection_entries), connection_entries, {0}};
static const struct ib_schema device_schema = {
    sizeof(struct s7_device_params), ARRAY_SIZE(device_entries), device_entries, {0}};
static const struct ib_schema tag_schema = {
    sizeof(struct s7_tag_params), ARRAY_SIZE(tag_entries), tag_entries, {0}};

/* ---- destroy --------------------------------------------------------------------------------- */

static void s7_destroy(void *instance)
{
    struct s7_instance *in = instance;
    if (!in)
        return;
    s7_session_close(&in->session);
    for (uint32_t d = 0; d < in->n_devices && in->devices; d++) {
        struct s7_device *dev = &in->devices[d];
        for (uint32_t g = 0; g < dev->n_groups && dev->groups; g++) {
            struct s7_group *grp = &dev->groups[g];
            for (uint32_t t = 0; t < grp->n_tags && grp->tags; t++)
                free(grp->tags[t].text);
            free(grp->tags);
            s7_plan_free(&grp->plan);
            free(grp->buf);
            free(grp->state);
            free(grp->ts);
        }
        free(dev->groups);
    }
    free(in->devices);
    free(in);
}

/* ---- create ---------------------------------------------------------------------------------- */

struct resolver {
    const struct ib_host *host;
    struct ib_host_ctx *ctx;
    unsigned errors;
    bool nomem;
};

__attribute__((format(printf, 4, 5))) static void cfg_error(struct resolver *rs, const void *where,
                                                            const char *key, const char *fmt, ...)
{
    char msg[640];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    rs->host->config_error(rs->ctx, where, key, "%s", msg);
    rs->errors++;
}

/* "01.00", "0100", "0x0100" -> 0x0100; -1 when malformed. */
static long parse_tsap(const char *s)
{
    char hex[5];
    size_t n = 0;
    if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X'))
        s += 2;
    for (; *s != '\0'; s++) {
        if (*s == '.' && n == 2)
            continue;
        if (n == 4 ||
            !((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f') || (*s >= 'A' && *s <= 'F')))
            return -1;
        hex[n++] = *s;
    }
    if (n != 4)
        return -1;
    hex[4] = '\0';
    return strtol(hex, NULL, 16);
}

static void resolve_connection(struct resolver *rs, const struct ib_connection_config *cfg,
                               struct s7_session_cfg *sc)
{
    const struct s7_connection_params *cp = cfg->params;
    memset(sc, 0, sizeof *sc);
    sc->host = cp->host;
    sc->port = (int)cp->port;
    sc->timeout_ms = (uint32_t)cp->timeout_ms;
    sc->connect_timeout_ms = (uint32_t)cp->connect_timeout_ms;
    sc->pdu_request = (uint16_t)cp->pdu_size;
    sc->jobs_request = (uint16_t)(cp->parallel_jobs > 0 ? cp->parallel_jobs : 1);
    int32_t ct = cp->connection_type >= 0 && cp->connection_type < S7_P_CONN_COUNT
                     ? cp->connection_type
                     : S7_P_CONN_PG;
    sc->local_tsap = 0x0100;
    sc->remote_tsap = s7_wire_remote_tsap((unsigned)ct + 1, (unsigned)cp->rack, (unsigned)cp->slot);
    if (!cp->host || cp->host[0] == '\0' || strlen(cp->host) > 253)
        cfg_error(rs, cfg->where, "host", "host must be a host name or IP address of the PLC");
    if (cp->local_tsap) {
        long t = parse_tsap(cp->local_tsap);
        if (t < 0)
            cfg_error(rs, cfg->where, "local_tsap",
                      "'%s' is not a TSAP: write 4 hex digits, as 01.00, 0100 or 0x0100",
                      cp->local_tsap);
        sc->local_tsap = (uint16_t)(t < 0 ? 0 : t);
    }
    if (cp->remote_tsap) {
        long t = parse_tsap(cp->remote_tsap);
        if (t < 0)
            cfg_error(rs, cfg->where, "remote_tsap",
                      "'%s' is not a TSAP: write 4 hex digits, as 02.00, 0200 or 0x0200",
                      cp->remote_tsap);
        sc->remote_tsap = (uint16_t)(t < 0 ? 0 : t);
    }
}

/* Check the type against the address and fill size, format and text buffer. */
static void resolve_type(struct resolver *rs, const struct ib_tag_config *tc,
                         const struct s7_tag_params *p, struct s7_tag *t)
{
    const char *hint = "";
    char ab[40];
    enum s7_type ty = (enum s7_type)t->type;
    if (!s7_type_fits(ty, t->addr.width, &hint))
        cfg_error(rs, tc->where, "type", "type %s does not fit address %s: %s", s7_type_names[ty],
                  s7_address_format(&t->addr, ab, sizeof ab), hint);
    bool text = ty == S7_T_STRING || ty == S7_T_WSTRING;
    uint32_t max_len = ty == S7_T_STRING ? 254 : 16382;
    if (text && (p->length <= 0 || (uint32_t)p->length > max_len))
        cfg_error(rs, tc->where, "length", "type %s needs length: its declared length, 1..%u",
                  s7_type_names[ty], max_len);
    if (!text && p->length > 0)
        cfg_error(rs, tc->where, "length", "length applies to string and wstring only, not %s",
                  s7_type_names[ty]);
    t->length = text && p->length > 0 ? (uint32_t)p->length : 0;
    t->format = (uint8_t)(p->format == 1 ? S7_TF_ISO : S7_TF_MS);
    if (t->format == S7_TF_ISO && !s7_type_has_iso(ty))
        cfg_error(rs, tc->where, "format",
                  "format iso applies to date, time_of_day, date_and_time and dtl, not %s",
                  s7_type_names[ty]);
    t->size = t->addr.width == S7_W_TIMER || t->addr.width == S7_W_COUNTER
                  ? 2
                  : s7_type_size(ty, t->length);
    if (t->addr.width != S7_W_TIMER && t->addr.width != S7_W_COUNTER &&
        t->addr.offset + t->size > S7_ADDRESS_MAX_BYTE + 1)
        cfg_error(rs, tc->where, "address", "type %s at %s would end past byte %u",
                  s7_type_names[ty], s7_address_format(&t->addr, ab, sizeof ab),
                  S7_ADDRESS_MAX_BYTE);
    if (t->writable && !s7_type_writable(ty))
        cfg_error(rs, tc->where, "writable",
                  "tags of type %s cannot be written: write "
                  "writable: false",
                  s7_type_names[ty]);
    t->text_cap = s7_type_text_cap(ty, t->length);
    if (t->text_cap > 0 && rs->errors == 0) {
        t->text = malloc(t->text_cap);
        if (!t->text)
            rs->nomem = true;
    }
}

static void resolve_tag(struct resolver *rs, const struct ib_tag_config *tc, struct s7_tag *t)
{
    const struct s7_tag_params *p = tc->params;
    char why[400];
    t->name = tc->name;
    t->writable = tc->writable != 0;
    if (p->type >= S7_T_COUNT) {
        cfg_error(rs, tc->where, "type", "type out of range");
        return;
    }
    if (s7_address_parse(p->address, &t->addr, why, sizeof why) != 0) {
        cfg_error(rs, tc->where, "address", "%s", why);
        return;
    }
    t->type = (uint8_t)(p->type >= 0 ? (enum s7_type)p->type : s7_type_default(t->addr.width));
    resolve_type(rs, tc, p, t);
}

static int resolve_devices(struct resolver *rs, const struct ib_connection_config *cfg,
                           struct s7_instance *in)
{
    for (uint32_t d = 0; d < cfg->n_devices; d++) {
        const struct ib_device_config *dc = &cfg->devices[d];
        const struct s7_device_params *dp = dc->params;
        struct s7_device *dev = &in->devices[d];
        dev->name = dc->name;
        dev->max_gap = (uint32_t)dp->max_gap;
        dev->max_items = (uint32_t)dp->max_items;
        dev->groups = calloc(dc->n_groups ? dc->n_groups : 1, sizeof *dev->groups);
        if (!dev->groups)
            return IB_ERR_NOMEM;
        dev->n_groups = dc->n_groups;
        for (uint32_t g = 0; g < dc->n_groups; g++) {
            const struct ib_group_config *gc = &dc->groups[g];
            struct s7_group *grp = &dev->groups[g];
            grp->name = gc->name;
            grp->tags = calloc(gc->n_tags ? gc->n_tags : 1, sizeof *grp->tags);
            if (!grp->tags)
                return IB_ERR_NOMEM;
            grp->n_tags = gc->n_tags;
            for (uint32_t t = 0; t < gc->n_tags; t++)
                resolve_tag(rs, &gc->tags[t], &grp->tags[t]);
        }
    }
    return rs->nomem ? IB_ERR_NOMEM : 0;
}

static int s7_create(const struct ib_host *host, struct ib_host_ctx *ctx,
                     const struct ib_connection_config *cfg, void **instance)
{
    if (!host || !cfg || !cfg->params || !instance)
        return IB_ERR_INVALID;
    *instance = NULL;
    if (host->abi_major != IB_ABI_MAJOR)
        return IB_ERR_UNSUPPORTED;
    struct resolver rs = {host, ctx, 0, false};
    struct s7_session_cfg sc;
    resolve_connection(&rs, cfg, &sc);
    struct s7_instance *in = calloc(1, sizeof *in);
    if (!in)
        return IB_ERR_NOMEM;
    in->host = host;
    in->ctx = ctx;
    s7_session_init(&in->session, &sc);
    int rc = IB_ERR_NOMEM;
    in->devices = calloc(cfg->n_devices ? cfg->n_devices : 1, sizeof *in->devices);
    if (!in->devices)
        goto fail;
    in->n_devices = cfg->n_devices;
    rc = resolve_devices(&rs, cfg, in);
    if (rc == 0 && rs.errors > 0)
        rc = IB_ERR_INVALID;
    for (uint32_t d = 0; rc == 0 && d < in->n_devices; d++)
        for (uint32_t g = 0; rc == 0 && g < in->devices[d].n_groups; g++)
            rc = s7_group_build(&in->devices[d].groups[g], in->devices[d].max_gap);
    if (rc != 0)
        goto fail;
    *instance = in;
    return 0;
fail:
    s7_destroy(in);
    return rc;
}

/* ---- open / close ---------------------------------------------------------------------------- */

static void log_open(struct s7_instance *in)
{
    struct s7_session *s = &in->session;
    uint32_t tags = 0, reqs = 0;
    for (uint32_t d = 0; d < in->n_devices; d++)
        for (uint32_t g = 0; g < in->devices[d].n_groups; g++) {
            const struct s7_group *grp = &in->devices[d].groups[g];
            tags += grp->n_tags;
            reqs += grp->plan.n_requests;
            S7_LOG(in, IB_LOG_DEBUG, in->devices[d].name, NULL,
                   "group %s: %u tags in %u spans, %u Read Var requests with %u items "
                   "(PDU %u)",
                   grp->name, grp->n_tags, grp->plan.n_spans, grp->plan.n_requests,
                   grp->plan.n_chunks, s->pdu);
        }
    S7_LOG(in, in->open_ep.count > 0 ? IB_LOG_NOTICE : IB_LOG_INFO, NULL, NULL,
           "connected to %s:%d (TSAP %04X -> %04X): PDU %u bytes, %u/%u parallel jobs granted, "
           "%u used; %u tags in %u Read Var requests when every group is polled once",
           s->cfg.host, s->cfg.port, s->cfg.local_tsap, s->cfg.remote_tsap, s->pdu, s->amq_calling,
           s->amq_called, s7_session_jobs(s), tags, reqs);
}

static int s7_open(void *instance)
{
    struct s7_instance *in = instance;
    if (!in)
        return IB_ERR_INVALID;
    int64_t now = in->host->monotonic_ms();
    int rc = s7_session_open(&in->session);
    if (rc == 0 && in->session.pdu != 0) {
        rc = s7_pack_all(in, in->session.pdu);
        if (rc != 0) {
            snprintf(in->session.error, sizeof in->session.error,
                     "cannot pack requests for PDU %u: %s", in->session.pdu, ib_strerror(rc));
            s7_session_close(&in->session);
        }
    }
    if (rc != 0) {
        switch (ib_episode_fail(&in->open_ep, rc, now)) {
        case IB_EPISODE_STARTED:
        case IB_EPISODE_CHANGED:
            IB_WARN(in->host, in->ctx, "%s", in->session.error);
            break;
        case IB_EPISODE_REMIND:
            IB_WARN(in->host, in->ctx, "%s (still failing: %" PRIu64 " attempts in %" PRId64 " s)",
                    in->session.error, in->open_ep.count, ib_episode_age_s(&in->open_ep, now));
            break;
        default:
            break;
        }
        return rc == IB_ERR_TIMEOUT ? IB_ERR_TIMEOUT : IB_ERR_CONNECTION;
    }
    log_open(in);
    ib_episode_ok(&in->open_ep, now);
    in->opened_once = true;
    return 0;
}

static void s7_close(void *instance)
{
    struct s7_instance *in = instance;
    if (in)
        s7_session_close(&in->session);
}

static int s7_read_group(void *instance, uint32_t device, uint32_t group, struct ib_sample *samples)
{
    struct s7_instance *in = instance;
    if (!in || !samples || device >= in->n_devices || group >= in->devices[device].n_groups)
        return IB_ERR_INVALID;
    return s7_poll_group(in, device, group, samples);
}

static int s7_write_tag(void *instance, uint32_t device, uint32_t group, uint32_t tag,
                        const struct ib_value *value)
{
    struct s7_instance *in = instance;
    if (!in || !value || device >= in->n_devices || group >= in->devices[device].n_groups ||
        tag >= in->devices[device].groups[group].n_tags)
        return IB_ERR_INVALID;
    return s7_write(in, device, group, tag, value);
}

IB_PLUGIN_DEFINE(.name = "s7", .version = S7_PLUGIN_VERSION,
                 .description = "Siemens S7 over ISO-on-TCP (S7-300/400, S7-1200/1500 with "
                                "PUT/GET, S7-200 SMART, LOGO!): DB, M, I, Q, T and C",
                 .connection_schema = &connection_schema, .device_schema = &device_schema,
                 .tag_schema = &tag_schema, .create = s7_create, .destroy = s7_destroy,
                 .open = s7_open, .close = s7_close, .read_group = s7_read_group,
                 .write_tag = s7_write_tag);
