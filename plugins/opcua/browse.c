/* OPC UA plugin library: the Browse and BrowseNext services (OPC 10000-4 §5.8.2, §5.8.3):
 * encodes the requests, sends them on the channel and hands the responses to
 * ua_browse_decode (browse_decode.c). */
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
