/* OPC UA plugin: Read (OPC 10000-4 §5.10.2) and Write (§5.10.4) of node attributes: encodes
 * the request, checks that the response holds one result per node, and hands each DataValue
 * to the caller. */
#include <stdio.h>

#include <ironbridge/error.h>

#include "ids.h"
#include "services.h"
#include "status.h"

#define TIMESTAMPS_BOTH 2

int ua_read(struct ua_channel *ch, const struct ua_session *s, const struct ua_nodeid *nodes,
            size_t n, uint32_t attr, ua_read_cb cb, void *arg)
{
    struct ua_buf *b = ua_channel_begin(ch, UA_ID_READ_REQ, &s->auth);
    ua_put_double(b, 0); /* MaxAge: a fresh value */
    ua_put_u32(b, TIMESTAMPS_BOTH);
    ua_put_i32(b, (int32_t)n);
    for (size_t i = 0; i < n; i++) {
        ua_put_nodeid(b, &nodes[i]);
        ua_put_u32(b, attr);
        ua_put_i32(b, -1); /* IndexRange */
        ua_put_u16(b, 0);  /* DataEncoding: default */
        ua_put_i32(b, -1);
    }
    struct ua_cur c;
    int rc = ua_channel_call(ch, UA_ID_READ_RESP, &c);
    if (rc != IB_OK)
        return rc;
    int32_t got = ua_get_array_len(&c, 1);
    if (c.err == UA_OK && (size_t)got != n) {
        snprintf(ch->error, sizeof ch->error, "the server returned %d results for %zu nodes", got,
                 n);
        return IB_ERR_PROTOCOL;
    }
    /* Decode all first: a malformed response yields no value at all. */
    struct ua_cur check = c;
    struct ua_datavalue dv;
    for (size_t i = 0; i < n && check.err == UA_OK; i++)
        ua_get_datavalue(&check, &dv);
    if (check.err != UA_OK) {
        snprintf(ch->error, sizeof ch->error, "undecodable Read response: %s",
                 ua_err_name(check.err));
        return IB_ERR_PROTOCOL;
    }
    for (size_t i = 0; i < n; i++) {
        ua_get_datavalue(&c, &dv);
        cb(arg, i, &dv);
    }
    return IB_OK;
}

int ua_write_value(struct ua_channel *ch, const struct ua_session *s, const struct ua_nodeid *node,
                   const struct ua_variant *value)
{
    struct ua_buf *b = ua_channel_begin(ch, UA_ID_WRITE_REQ, &s->auth);
    ua_put_i32(b, 1);
    ua_put_nodeid(b, node);
    ua_put_u32(b, UA_ATTR_VALUE);
    ua_put_i32(b, -1); /* IndexRange */
    struct ua_datavalue dv = {.mask = UA_DV_VALUE, .value = *value};
    ua_put_datavalue(b, &dv);
    struct ua_cur c;
    int rc = ua_channel_call(ch, UA_ID_WRITE_RESP, &c);
    if (rc != IB_OK)
        return rc;
    int32_t got = ua_get_array_len(&c, 4);
    uint32_t result = ua_get_u32(&c);
    if (c.err != UA_OK || got != 1) {
        snprintf(ch->error, sizeof ch->error, "undecodable Write response");
        return IB_ERR_PROTOCOL;
    }
    if (ua_status_is_bad(result)) {
        char sc[64];
        ch->last_status = result;
        snprintf(ch->error, sizeof ch->error, "the server refused the write: %s",
                 ua_status_text(result, sc, sizeof sc));
        return IB_ERR_EXCEPTION;
    }
    return IB_OK;
}
