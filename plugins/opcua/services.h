/* OPC UA plugin: the Read and Write services (services.c) on an active session. One poller
 * thread. */
#ifndef IB_OPCUA_SERVICES_H
#define IB_OPCUA_SERVICES_H

#include <stddef.h>
#include <stdint.h>

#include "channel.h"
#include "session.h"

/* Called for result i (0 .. n-1) of a Read; dv points into the channel's buffer, valid only
 * during the call. */
typedef void (*ua_read_cb)(void *arg, size_t i, const struct ua_datavalue *dv);

/* Reads attribute `attr` of nodes[0 .. n-1] in one request (the caller batches within the
 * server's MaxNodesPerRead), timestamps Both. 0 or an ib_err (channel->error says why). A
 * response with another number of results than nodes is IB_ERR_PROTOCOL. */
int ua_read(struct ua_channel *ch, const struct ua_session *s, const struct ua_nodeid *nodes,
            size_t n, uint32_t attr, ua_read_cb cb, void *arg);

/* Writes `value` to the Value attribute of `node`. 0, IB_ERR_EXCEPTION with ch->last_status
 * the node's bad result, or another ib_err. */
int ua_write_value(struct ua_channel *ch, const struct ua_session *s, const struct ua_nodeid *node,
                   const struct ua_variant *value);

#endif
