/* OPC UA plugin: the decoder of Browse and BrowseNext responses (OPC 10000-4 §5.8.2, §5.8.3):
 * BrowseResults with their ReferenceDescriptions, checking every length before it reads and
 * validating the whole response before any reference is handed on. Pure: the fuzz target
 * opcua_browse calls it. */
#include "browse.h"

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
