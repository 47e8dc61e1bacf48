/* OPC UA plugin: the UA Binary decoder (OPC 10000-6 §5.2): built-in types, NodeId,
 * ExpandedNodeId, Variant, DataValue, DiagnosticInfo, over a bounded cursor. Every length is
 * checked against the bytes left (and array counts against the cursor's limit) before use;
 * nothing is allocated, so hostile input can cost at most its own size in time. */
#include <string.h>

#include "ua.h"

void ua_cur_init(struct ua_cur *c, const void *data, size_t len)
{
    c->p = data;
    c->left = data ? len : 0;
    c->err = UA_OK;
    c->max_array = 0;
}

const char *ua_err_name(int err)
{
    switch (err) {
    case UA_OK:
        return "ok";
    case UA_E_SHORT:
        return "truncated (a field runs past the end of the message)";
    case UA_E_RANGE:
        return "a length or count out of range";
    case UA_E_DEPTH:
        return "nesting too deep";
    case UA_E_TYPE:
        return "unknown type or encoding byte";
    case UA_E_NOMEM:
        return "out of memory";
    case UA_E_LIMIT:
        return "message larger than the negotiated maximum";
    default:
        return "unknown decoding error";
    }
}

static void fail(struct ua_cur *c, int err)
{
    if (c->err == UA_OK)
        c->err = err;
    c->left = 0;
}

/* Returns a pointer to n bytes and advances, or NULL (error set) when fewer are left. */
static const uint8_t *take(struct ua_cur *c, size_t n)
{
    if (c->err != UA_OK || n > c->left) {
        fail(c, UA_E_SHORT);
        return NULL;
    }
    const uint8_t *p = c->p;
    c->p += n;
    c->left -= n;
    return p;
}

static uint64_t get_le(struct ua_cur *c, size_t n)
{
    const uint8_t *p = take(c, n);
    uint64_t v = 0;
    if (!p)
        return 0;
    for (size_t i = 0; i < n; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

bool ua_get_bool(struct ua_cur *c)
{
    return get_le(c, 1) != 0;
}
uint8_t ua_get_u8(struct ua_cur *c)
{
    return (uint8_t)get_le(c, 1);
}
uint16_t ua_get_u16(struct ua_cur *c)
{
    return (uint16_t)get_le(c, 2);
}
uint32_t ua_get_u32(struct ua_cur *c)
{
    return (uint32_t)get_le(c, 4);
}
uint64_t ua_get_u64(struct ua_cur *c)
{
    return get_le(c, 8);
}
int32_t ua_get_i32(struct ua_cur *c)
{
    return (int32_t)(uint32_t)get_le(c, 4);
}
int64_t ua_get_i64(struct ua_cur *c)
{
    return (int64_t)get_le(c, 8);
}

float ua_get_float(struct ua_cur *c)
{
    uint32_t u = ua_get_u32(c);
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

double ua_get_double(struct ua_cur *c)
{
    uint64_t u = ua_get_u64(c);
    double d;
    memcpy(&d, &u, sizeof d);
    return d;
}

struct ua_str ua_get_str(struct ua_cur *c)
{
    struct ua_str s = {NULL, -1};
    int32_t n = ua_get_i32(c);
    if (c->err != UA_OK)
        return s;
    if (n < -1) {
        fail(c, UA_E_RANGE);
        return s;
    }
    if (n == -1)
        return s;
    const uint8_t *p = take(c, (size_t)n);
    if (p) {
        s.ptr = (const char *)p;
        s.len = n;
    }
    return s;
}

void ua_get_guid(struct ua_cur *c, struct ua_guid *g)
{
    g->d1 = ua_get_u32(c);
    g->d2 = ua_get_u16(c);
    g->d3 = ua_get_u16(c);
    const uint8_t *p = take(c, 8);
    if (p)
        memcpy(g->d4, p, 8);
    else
        memset(g->d4, 0, 8);
}

/* The NodeId body after its encoding byte (low 6 bits). */
static void get_nodeid_body(struct ua_cur *c, uint8_t enc, struct ua_nodeid *n)
{
    memset(n, 0, sizeof *n);
    switch (enc & 0x3f) {
    case 0: /* two-byte */
        n->id.num = ua_get_u8(c);
        break;
    case 1: /* four-byte */
        n->ns = ua_get_u8(c);
        n->id.num = ua_get_u16(c);
        break;
    case 2:
        n->ns = ua_get_u16(c);
        n->id.num = ua_get_u32(c);
        break;
    case 3:
        n->ns = ua_get_u16(c);
        n->kind = UA_NID_STRING;
        n->id.str = ua_get_str(c);
        break;
    case 4:
        n->ns = ua_get_u16(c);
        n->kind = UA_NID_GUID;
        ua_get_guid(c, &n->id.guid);
        break;
    case 5:
        n->ns = ua_get_u16(c);
        n->kind = UA_NID_BYTES;
        n->id.str = ua_get_str(c);
        break;
    default:
        fail(c, UA_E_TYPE);
    }
}

void ua_get_nodeid(struct ua_cur *c, struct ua_nodeid *n)
{
    uint8_t enc = ua_get_u8(c);
    if (enc & 0xc0) /* the ExpandedNodeId flags have no place in a NodeId */
        fail(c, UA_E_TYPE);
    get_nodeid_body(c, enc, n);
}

void ua_get_expnodeid(struct ua_cur *c, struct ua_expnodeid *n)
{
    uint8_t enc = ua_get_u8(c);
    get_nodeid_body(c, enc, &n->id);
    n->uri.ptr = NULL;
    n->uri.len = -1;
    n->server = 0;
    if (enc & 0x80)
        n->uri = ua_get_str(c);
    if (enc & 0x40)
        n->server = ua_get_u32(c);
}

void ua_get_qname(struct ua_cur *c, struct ua_qname *q)
{
    q->ns = ua_get_u16(c);
    q->name = ua_get_str(c);
}

void ua_get_ltext(struct ua_cur *c, struct ua_ltext *t)
{
    uint8_t m = ua_get_u8(c);
    struct ua_str none = {NULL, -1};
    t->locale = (m & 0x01) ? ua_get_str(c) : none;
    t->text = (m & 0x02) ? ua_get_str(c) : none;
    if (m & ~0x03)
        fail(c, UA_E_TYPE);
}

void ua_get_extobj(struct ua_cur *c, struct ua_extobj *e)
{
    ua_get_nodeid(c, &e->type);
    e->encoding = ua_get_u8(c);
    e->body.ptr = NULL;
    e->body.len = -1;
    if (e->encoding == 1 || e->encoding == 2)
        e->body = ua_get_str(c);
    else if (e->encoding != 0)
        fail(c, UA_E_TYPE);
}

int32_t ua_get_array_len(struct ua_cur *c, size_t min_elem)
{
    int32_t n = ua_get_i32(c);
    if (c->err != UA_OK || n == -1)
        return 0;
    if (n < -1 || (c->max_array && (uint32_t)n > c->max_array) ||
        (min_elem && (size_t)n > c->left / min_elem)) {
        fail(c, UA_E_RANGE);
        return 0;
    }
    return n;
}

/* Smallest encoded size of a value of built-in `type` (used to bound array counts). */
static size_t min_size(int type)
{
    static const uint8_t sz[UA_TYPE_MAX + 1] = {
        [UA_BOOLEAN] = 1,         [UA_SBYTE] = 1,         [UA_BYTE] = 1,
        [UA_INT16] = 2,           [UA_UINT16] = 2,        [UA_INT32] = 4,
        [UA_UINT32] = 4,          [UA_INT64] = 8,         [UA_UINT64] = 8,
        [UA_FLOAT] = 4,           [UA_DOUBLE] = 8,        [UA_STRING] = 4,
        [UA_DATETIME] = 8,        [UA_GUID] = 16,         [UA_BYTESTRING] = 4,
        [UA_XMLELEMENT] = 4,      [UA_NODEID] = 2,        [UA_EXPANDEDNODEID] = 2,
        [UA_STATUSCODE] = 4,      [UA_QUALIFIEDNAME] = 6, [UA_LOCALIZEDTEXT] = 1,
        [UA_EXTENSIONOBJECT] = 3, [UA_DATAVALUE] = 1,     [UA_VARIANT] = 1,
        [UA_DIAGNOSTICINFO] = 1,
    };
    return (type >= 1 && type <= UA_TYPE_MAX) ? sz[type] : 1;
}

static void get_variant_depth(struct ua_cur *c, struct ua_variant *v, int depth);
static void get_datavalue_depth(struct ua_cur *c, struct ua_datavalue *dv, int depth);
static void get_diaginfo_depth(struct ua_cur *c, struct ua_diaginfo *d, int depth);

void ua_skip(struct ua_cur *c, int type, int depth)
{
    struct ua_variant v;
    struct ua_datavalue dv;
    struct ua_diaginfo di;
    struct ua_str s;
    switch (type) {
    case UA_BOOLEAN:
    case UA_SBYTE:
    case UA_BYTE:
    case UA_INT16:
    case UA_UINT16:
    case UA_INT32:
    case UA_UINT32:
    case UA_INT64:
    case UA_UINT64:
    case UA_FLOAT:
    case UA_DOUBLE:
    case UA_DATETIME:
    case UA_GUID:
    case UA_STATUSCODE:
        take(c, min_size(type));
        break;
    case UA_STRING:
    case UA_BYTESTRING:
    case UA_XMLELEMENT:
        s = ua_get_str(c);
        (void)s;
        break;
    case UA_NODEID:
        ua_get_nodeid(c, &v.v.nid);
        break;
    case UA_EXPANDEDNODEID:
        ua_get_expnodeid(c, &v.v.xnid);
        break;
    case UA_QUALIFIEDNAME:
        ua_get_qname(c, &v.v.qn);
        break;
    case UA_LOCALIZEDTEXT:
        ua_get_ltext(c, &v.v.lt);
        break;
    case UA_EXTENSIONOBJECT:
        ua_get_extobj(c, &v.v.eo);
        break;
    case UA_DATAVALUE:
        get_datavalue_depth(c, &dv, depth + 1);
        break;
    case UA_VARIANT:
        get_variant_depth(c, &v, depth + 1);
        break;
    case UA_DIAGNOSTICINFO:
        get_diaginfo_depth(c, &di, depth + 1);
        break;
    default:
        fail(c, UA_E_TYPE);
    }
}

/* A scalar of `type` into v->v (nested types: validated and kept raw). */
static void get_scalar(struct ua_cur *c, int type, struct ua_variant *v, int depth)
{
    const uint8_t *start = c->p;
    v->type = (uint8_t)type;
    switch (type) {
    case UA_BOOLEAN:
        v->v.b = ua_get_bool(c);
        break;
    case UA_SBYTE:
        v->v.i = (int8_t)ua_get_u8(c);
        break;
    case UA_BYTE:
        v->v.u = ua_get_u8(c);
        break;
    case UA_INT16:
        v->v.i = (int16_t)ua_get_u16(c);
        break;
    case UA_UINT16:
        v->v.u = ua_get_u16(c);
        break;
    case UA_INT32:
        v->v.i = ua_get_i32(c);
        break;
    case UA_UINT32:
    case UA_STATUSCODE:
        v->v.u = ua_get_u32(c);
        break;
    case UA_INT64:
        v->v.i = ua_get_i64(c);
        break;
    case UA_UINT64:
        v->v.u = ua_get_u64(c);
        break;
    case UA_FLOAT:
        v->v.f = ua_get_float(c);
        break;
    case UA_DOUBLE:
        v->v.d = ua_get_double(c);
        break;
    case UA_DATETIME:
        v->v.dt = ua_get_i64(c);
        break;
    case UA_STRING:
    case UA_BYTESTRING:
    case UA_XMLELEMENT:
        v->v.s = ua_get_str(c);
        break;
    case UA_GUID:
        ua_get_guid(c, &v->v.g);
        break;
    case UA_NODEID:
        ua_get_nodeid(c, &v->v.nid);
        break;
    case UA_EXPANDEDNODEID:
        ua_get_expnodeid(c, &v->v.xnid);
        break;
    case UA_QUALIFIEDNAME:
        ua_get_qname(c, &v->v.qn);
        break;
    case UA_LOCALIZEDTEXT:
        ua_get_ltext(c, &v->v.lt);
        break;
    case UA_EXTENSIONOBJECT:
        ua_get_extobj(c, &v->v.eo);
        break;
    case UA_DATAVALUE:
    case UA_VARIANT:
    case UA_DIAGNOSTICINFO:
        ua_skip(c, type, depth);
        v->raw = start;
        v->raw_len = c->err == UA_OK ? (size_t)(c->p - start) : 0;
        break;
    default:
        fail(c, UA_E_TYPE);
    }
}

static void get_variant_depth(struct ua_cur *c, struct ua_variant *v, int depth)
{
    memset(v, 0, sizeof *v);
    if (depth > UA_MAX_DEPTH) {
        fail(c, UA_E_DEPTH);
        return;
    }
    uint8_t enc = ua_get_u8(c);
    int type = enc & 0x3f;
    if (c->err != UA_OK)
        return;
    if (type == 0) { /* the null Variant */
        if (enc != 0)
            fail(c, UA_E_TYPE);
        return;
    }
    if (type > UA_TYPE_MAX) {
        fail(c, UA_E_TYPE);
        return;
    }
    if (!(enc & 0x80)) {
        if (enc & 0x40) /* dimensions without an array */
            fail(c, UA_E_TYPE);
        get_scalar(c, type, v, depth);
        return;
    }
    v->type = (uint8_t)type;
    v->is_array = true;
    int32_t raw_n = ua_get_i32(c);
    if (c->err != UA_OK)
        return;
    if (raw_n < -1 || (c->max_array && raw_n > 0 && (uint32_t)raw_n > c->max_array) ||
        (raw_n > 0 && (size_t)raw_n > c->left / min_size(type))) {
        fail(c, UA_E_RANGE);
        return;
    }
    v->n = raw_n;
    v->raw = c->p;
    struct ua_variant tmp;
    for (int32_t i = 0; i < v->n && c->err == UA_OK; i++)
        get_scalar(c, type, &tmp, depth);
    v->raw_len = c->err == UA_OK ? (size_t)(c->p - v->raw) : 0;
    if (enc & 0x40) {
        int32_t nd = ua_get_array_len(c, 4);
        int64_t product = 1;
        for (int32_t i = 0; i < nd && c->err == UA_OK; i++) {
            int32_t d = ua_get_i32(c);
            if (d < 0)
                fail(c, UA_E_RANGE);
            product *= d;
            if (product > INT32_MAX)
                fail(c, UA_E_RANGE);
        }
        if (c->err == UA_OK && product != (v->n < 0 ? 0 : v->n))
            fail(c, UA_E_RANGE);
        v->n_dims = nd;
    }
}

void ua_get_variant(struct ua_cur *c, struct ua_variant *v)
{
    get_variant_depth(c, v, 0);
}

static void get_datavalue_depth(struct ua_cur *c, struct ua_datavalue *dv, int depth)
{
    memset(dv, 0, sizeof *dv);
    if (depth > UA_MAX_DEPTH) {
        fail(c, UA_E_DEPTH);
        return;
    }
    dv->mask = ua_get_u8(c);
    if (dv->mask & 0xc0)
        fail(c, UA_E_TYPE);
    if (dv->mask & UA_DV_VALUE)
        get_variant_depth(c, &dv->value, depth);
    if (dv->mask & UA_DV_STATUS)
        dv->status = ua_get_u32(c);
    if (dv->mask & UA_DV_SRC_TS)
        dv->src_ts = ua_get_i64(c);
    if (dv->mask & UA_DV_SRC_PICO)
        dv->src_pico = ua_get_u16(c);
    if (dv->mask & UA_DV_SRV_TS)
        dv->srv_ts = ua_get_i64(c);
    if (dv->mask & UA_DV_SRV_PICO)
        dv->srv_pico = ua_get_u16(c);
}

void ua_get_datavalue(struct ua_cur *c, struct ua_datavalue *dv)
{
    get_datavalue_depth(c, dv, 0);
}

static void get_diaginfo_depth(struct ua_cur *c, struct ua_diaginfo *d, int depth)
{
    memset(d, 0, sizeof *d);
    for (int level = depth;; level++) {
        if (level > UA_MAX_DEPTH) {
            fail(c, UA_E_DEPTH);
            return;
        }
        uint8_t m = ua_get_u8(c);
        if (m & 0x80)
            fail(c, UA_E_TYPE);
        int32_t sym = (m & 0x01) ? ua_get_i32(c) : -1;
        int32_t ns = (m & 0x02) ? ua_get_i32(c) : -1;
        int32_t loc = (m & 0x08) ? ua_get_i32(c) : -1;
        int32_t txt = (m & 0x04) ? ua_get_i32(c) : -1;
        struct ua_str add = (m & 0x10) ? ua_get_str(c) : (struct ua_str){NULL, -1};
        uint32_t inner = (m & 0x20) ? ua_get_u32(c) : 0;
        if (c->err != UA_OK)
            return;
        if (level == depth) { /* the outer one is kept; inner ones are validated only */
            d->mask = m;
            d->symbolic_id = sym;
            d->namespace_uri = ns;
            d->locale = loc;
            d->localized_text = txt;
            d->additional_info = add;
            d->inner_status = inner;
        } else {
            d->depth++;
        }
        if (!(m & 0x40))
            return;
    }
}

void ua_get_diaginfo(struct ua_cur *c, struct ua_diaginfo *d)
{
    get_diaginfo_depth(c, d, 0);
}

int ua_variant_next(struct ua_cur *c, int type, struct ua_variant *out)
{
    memset(out, 0, sizeof *out);
    get_scalar(c, type, out, 0);
    return c->err;
}

int ua_variant_elem(const struct ua_variant *v, int32_t i, struct ua_variant *out)
{
    memset(out, 0, sizeof *out);
    if (!v->raw || i < 0 || (v->is_array ? i >= v->n : i != 0))
        return UA_E_RANGE;
    struct ua_cur c;
    ua_cur_init(&c, v->raw, v->raw_len);
    for (int32_t k = 0; k < i && c.err == UA_OK; k++)
        ua_skip(&c, v->type, 0);
    if (!v->is_array) { /* a nested scalar: its raw bytes are the element */
        out->type = v->type;
        out->raw = v->raw;
        out->raw_len = v->raw_len;
        return UA_OK;
    }
    get_scalar(&c, v->type, out, 0);
    return c.err;
}

int64_t ua_datetime_to_ms(int64_t ticks)
{
    if (ticks <= 0)
        return 0;
    /* floor division: DateTime before 1970 stays exact */
    int64_t rel = ticks - UA_EPOCH_DELTA;
    int64_t ms = rel / 10000;
    if (rel % 10000 < 0)
        ms--;
    return ms;
}

int64_t ua_ms_to_datetime(int64_t ms)
{
    return ms * 10000 + UA_EPOCH_DELTA;
}
