/* OPC UA plugin: the UA Binary encoder (OPC 10000-6 §5.2) into a growable buffer bounded by the
 * negotiated message size: built-in types, NodeId in its smallest form, ExpandedNodeId,
 * QualifiedName, LocalizedText, scalar Variant and DataValue. */
#include <stdlib.h>
#include <string.h>

#include "ua.h"

void ua_buf_free(struct ua_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
    b->err = UA_OK;
}

void ua_buf_reset(struct ua_buf *b)
{
    b->len = 0;
    b->err = UA_OK;
}

static bool reserve(struct ua_buf *b, size_t n)
{
    if (b->err != UA_OK)
        return false;
    if (n > SIZE_MAX - b->len || (b->max && b->len + n > b->max)) {
        b->err = UA_E_LIMIT;
        return false;
    }
    if (b->len + n <= b->cap)
        return true;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + n)
        cap *= 2;
    uint8_t *d = realloc(b->data, cap);
    if (!d) {
        b->err = UA_E_NOMEM;
        return false;
    }
    b->data = d;
    b->cap = cap;
    return true;
}

void ua_put_bytes(struct ua_buf *b, const void *p, size_t n)
{
    if (n && reserve(b, n)) {
        memcpy(b->data + b->len, p, n);
        b->len += n;
    }
}

static void put_le(struct ua_buf *b, uint64_t v, size_t n)
{
    if (!reserve(b, n))
        return;
    for (size_t i = 0; i < n; i++)
        b->data[b->len++] = (uint8_t)(v >> (8 * i));
}

void ua_put_bool(struct ua_buf *b, bool v)
{
    put_le(b, v ? 1 : 0, 1);
}
void ua_put_u8(struct ua_buf *b, uint8_t v)
{
    put_le(b, v, 1);
}
void ua_put_u16(struct ua_buf *b, uint16_t v)
{
    put_le(b, v, 2);
}
void ua_put_u32(struct ua_buf *b, uint32_t v)
{
    put_le(b, v, 4);
}
void ua_put_u64(struct ua_buf *b, uint64_t v)
{
    put_le(b, v, 8);
}
void ua_put_i32(struct ua_buf *b, int32_t v)
{
    put_le(b, (uint32_t)v, 4);
}
void ua_put_i64(struct ua_buf *b, int64_t v)
{
    put_le(b, (uint64_t)v, 8);
}

void ua_put_float(struct ua_buf *b, float v)
{
    uint32_t u;
    memcpy(&u, &v, sizeof u);
    ua_put_u32(b, u);
}

void ua_put_double(struct ua_buf *b, double v)
{
    uint64_t u;
    memcpy(&u, &v, sizeof u);
    ua_put_u64(b, u);
}

void ua_put_str(struct ua_buf *b, struct ua_str s)
{
    if (!s.ptr || s.len < 0) {
        ua_put_i32(b, -1);
        return;
    }
    ua_put_i32(b, s.len);
    ua_put_bytes(b, s.ptr, (size_t)s.len);
}

void ua_put_cstr(struct ua_buf *b, const char *s)
{
    ua_put_str(b, ua_str_c(s));
}

void ua_put_guid(struct ua_buf *b, const struct ua_guid *g)
{
    ua_put_u32(b, g->d1);
    ua_put_u16(b, g->d2);
    ua_put_u16(b, g->d3);
    ua_put_bytes(b, g->d4, 8);
}

static void put_nodeid_flags(struct ua_buf *b, const struct ua_nodeid *n, uint8_t flags)
{
    switch (n->kind) {
    case UA_NID_NUMERIC:
        if (n->ns == 0 && n->id.num <= 0xff) {
            ua_put_u8(b, 0 | flags);
            ua_put_u8(b, (uint8_t)n->id.num);
        } else if (n->ns <= 0xff && n->id.num <= 0xffff) {
            ua_put_u8(b, 1 | flags);
            ua_put_u8(b, (uint8_t)n->ns);
            ua_put_u16(b, (uint16_t)n->id.num);
        } else {
            ua_put_u8(b, 2 | flags);
            ua_put_u16(b, n->ns);
            ua_put_u32(b, n->id.num);
        }
        break;
    case UA_NID_STRING:
    case UA_NID_BYTES:
        ua_put_u8(b, (n->kind == UA_NID_STRING ? 3 : 5) | flags);
        ua_put_u16(b, n->ns);
        ua_put_str(b, n->id.str);
        break;
    case UA_NID_GUID:
        ua_put_u8(b, 4 | flags);
        ua_put_u16(b, n->ns);
        ua_put_guid(b, &n->id.guid);
        break;
    default:
        if (b->err == UA_OK)
            b->err = UA_E_TYPE;
    }
}

void ua_put_nodeid(struct ua_buf *b, const struct ua_nodeid *n)
{
    put_nodeid_flags(b, n, 0);
}

void ua_put_expnodeid(struct ua_buf *b, const struct ua_expnodeid *n)
{
    uint8_t flags = (n->uri.ptr && n->uri.len >= 0 ? 0x80 : 0) | (n->server ? 0x40 : 0);
    put_nodeid_flags(b, &n->id, flags);
    if (flags & 0x80)
        ua_put_str(b, n->uri);
    if (flags & 0x40)
        ua_put_u32(b, n->server);
}

void ua_put_qname(struct ua_buf *b, const struct ua_qname *q)
{
    ua_put_u16(b, q->ns);
    ua_put_str(b, q->name);
}

void ua_put_ltext(struct ua_buf *b, const struct ua_ltext *t)
{
    uint8_t m =
        (t->locale.ptr && t->locale.len >= 0 ? 1 : 0) | (t->text.ptr && t->text.len >= 0 ? 2 : 0);
    ua_put_u8(b, m);
    if (m & 1)
        ua_put_str(b, t->locale);
    if (m & 2)
        ua_put_str(b, t->text);
}

void ua_put_variant(struct ua_buf *b, const struct ua_variant *v)
{
    if (v->type == 0) {
        ua_put_u8(b, 0);
        return;
    }
    if (v->is_array) { /* arrays are not written by this client */
        if (b->err == UA_OK)
            b->err = UA_E_TYPE;
        return;
    }
    ua_put_u8(b, v->type);
    switch (v->type) {
    case UA_BOOLEAN:
        ua_put_bool(b, v->v.b);
        break;
    case UA_SBYTE:
        ua_put_u8(b, (uint8_t)(int8_t)v->v.i);
        break;
    case UA_BYTE:
        ua_put_u8(b, (uint8_t)v->v.u);
        break;
    case UA_INT16:
        ua_put_u16(b, (uint16_t)(int16_t)v->v.i);
        break;
    case UA_UINT16:
        ua_put_u16(b, (uint16_t)v->v.u);
        break;
    case UA_INT32:
        ua_put_i32(b, (int32_t)v->v.i);
        break;
    case UA_UINT32:
    case UA_STATUSCODE:
        ua_put_u32(b, (uint32_t)v->v.u);
        break;
    case UA_INT64:
        ua_put_i64(b, v->v.i);
        break;
    case UA_UINT64:
        ua_put_u64(b, v->v.u);
        break;
    case UA_FLOAT:
        ua_put_float(b, v->v.f);
        break;
    case UA_DOUBLE:
        ua_put_double(b, v->v.d);
        break;
    case UA_DATETIME:
        ua_put_i64(b, v->v.dt);
        break;
    case UA_STRING:
    case UA_BYTESTRING:
    case UA_XMLELEMENT:
        ua_put_str(b, v->v.s);
        break;
    case UA_GUID:
        ua_put_guid(b, &v->v.g);
        break;
    case UA_NODEID:
        ua_put_nodeid(b, &v->v.nid);
        break;
    case UA_QUALIFIEDNAME:
        ua_put_qname(b, &v->v.qn);
        break;
    case UA_LOCALIZEDTEXT:
        ua_put_ltext(b, &v->v.lt);
        break;
    default:
        if (b->err == UA_OK)
            b->err = UA_E_TYPE;
    }
}

void ua_put_datavalue(struct ua_buf *b, const struct ua_datavalue *dv)
{
    ua_put_u8(b, dv->mask);
    if (dv->mask & UA_DV_VALUE)
        ua_put_variant(b, &dv->value);
    if (dv->mask & UA_DV_STATUS)
        ua_put_u32(b, dv->status);
    if (dv->mask & UA_DV_SRC_TS)
        ua_put_i64(b, dv->src_ts);
    if (dv->mask & UA_DV_SRC_PICO)
        ua_put_u16(b, dv->src_pico);
    if (dv->mask & UA_DV_SRV_TS)
        ua_put_i64(b, dv->srv_ts);
    if (dv->mask & UA_DV_SRV_PICO)
        ua_put_u16(b, dv->srv_pico);
}

void ua_buf_patch_u32(struct ua_buf *b, size_t at, uint32_t v)
{
    if (b->err != UA_OK || at + 4 > b->len)
        return;
    for (int i = 0; i < 4; i++)
        b->data[at + (size_t)i] = (uint8_t)(v >> (8 * i));
}
