/* OPC UA plugin library: the Browse and BrowseNext services (OPC 10000-4 §5.8.2, §5.8.3):
 * encodes the requests and decodes their responses, checking every length before it reads and
 * validating the whole response before any reference is handed on. */
#include <stdio.h>

#include <ironbridge/error.h>

#include "browse.h"

enum {
    ID_BROWSE_REQ = 527,
    ID_BROWSE_RESP = 530,
    ID_BROWSE_NEXT_REQ = 533,
    ID_BROWSE_NEXT_RESP = 536,
    REF_HIERARCHICAL = 33,
    BROWSE_FORWARD = 0,
    RESULT_MASK_ALL = 0x3f,
};

static void decode_ref(struct ua_cur *c, struct ua_ref *r)
{
    ua_get_nodeid(c, &r->type);
    r->is_forward = ua_get_bool(c);
    ua_get_expnodeid(c, &r->node);
    ua_get_qname(c, &r->browse_name);
    ua_get_ltext(c, &r->display_name);
    r->node_class = ua_get_i32(c);
    ua_get_expnodeid(c, &r->type_definition);
}

/* One pass over the results; callbacks only when cb is not NULL. */
static void pass(struct ua_cur *c, size_t n, const struct ua_browse_cb *cb)
{
    int32_t got = ua_get_array_len(c, 4 + 4 + 4);
    if (c->err == UA_OK && (got < 0 ? 0 : (size_t)got) != n)
        c->err = UA_E_RANGE;
    for (int32_t i = 0; i < got && c->err == UA_OK; i++) {
        uint32_t status = ua_get_u32(c);
        struct ua_str cont = ua_get_str(c);
        int32_t nref = ua_get_array_len(c, 2 + 1 + 2 + 2 + 1 + 4 + 2);
        if (cb && c->err == UA_OK)
            cb->result(cb->arg, (size_t)i, status, cont);
        for (int32_t k = 0; k < nref && c->err == UA_OK; k++) {
            struct ua_ref r;
            decode_ref(c, &r);
            if (cb && c->err == UA_OK)
                cb->ref(cb->arg, (size_t)i, &r);
        }
    }
    int32_t nd = ua_get_array_len(c, 1); /* DiagnosticInfos */
    for (int32_t i = 0; i < nd && c->err == UA_OK; i++) {
        struct ua_diaginfo d;
        ua_get_diaginfo(c, &d);
    }
}

int ua_browse_decode(struct ua_cur *c, size_t n, const struct ua_browse_cb *cb)
{
    struct ua_cur check = *c;
    pass(&check, n, NULL);
    if (check.err != UA_OK)
        return check.err;
    pass(c, n, cb);
    return c->err;
}

static int call(struct ua_channel *ch, uint32_t resp, size_t n, const struct ua_browse_cb *cb)
{
    struct ua_cur c;
    int rc = ua_channel_call(ch, resp, &c);
    if (rc != IB_OK)
        return rc;
    int err = ua_browse_decode(&c, n, cb);
    if (err != UA_OK) {
        snprintf(ch->error, sizeof ch->error, "undecodable %s response: %s",
                 resp == ID_BROWSE_RESP ? "Browse" : "BrowseNext", ua_err_name(err));
        return IB_ERR_PROTOCOL;
    }
    return IB_OK;
}

int ua_browse(struct ua_channel *ch, const struct ua_session *s, const struct ua_nodeid *nodes,
              size_t n, uint32_t max_refs, const struct ua_browse_cb *cb)
{
    struct ua_buf *b = ua_channel_begin(ch, ID_BROWSE_REQ, &s->auth);
    struct ua_nodeid null_id = ua_nid_num(0, 0), hier = ua_nid_num(0, REF_HIERARCHICAL);
    ua_put_nodeid(b, &null_id); /* View: the whole address space */
    ua_put_i64(b, 0);
    ua_put_u32(b, 0);
    ua_put_u32(b, max_refs);
    ua_put_i32(b, (int32_t)n);
    for (size_t i = 0; i < n; i++) {
        ua_put_nodeid(b, &nodes[i]);
        ua_put_u32(b, BROWSE_FORWARD);
        ua_put_nodeid(b, &hier);
        ua_put_bool(b, true); /* IncludeSubtypes */
        ua_put_u32(b, UA_NODECLASS_OBJECT | UA_NODECLASS_VARIABLE);
        ua_put_u32(b, RESULT_MASK_ALL);
    }
    return call(ch, ID_BROWSE_RESP, n, cb);
}

int ua_browse_next(struct ua_channel *ch, const struct ua_session *s, const struct ua_str *conts,
                   size_t n, bool release, const struct ua_browse_cb *cb)
{
    struct ua_buf *b = ua_channel_begin(ch, ID_BROWSE_NEXT_REQ, &s->auth);
    ua_put_bool(b, release);
    ua_put_i32(b, (int32_t)n);
    for (size_t i = 0; i < n; i++)
        ua_put_str(b, conts[i]);
    return call(ch, ID_BROWSE_NEXT_RESP, n, cb);
}
