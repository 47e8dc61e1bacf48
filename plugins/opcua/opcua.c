/* OPC UA client plugin: the exported descriptor and its callbacks (create, destroy, open,
 * close, read_group, write_tag, wait_events), each checking its arguments and handing off to
 * resolve.c, connect.c, read.c and write.c. */
#include <stdlib.h>

#include <ironbridge/ironbridge.h>

#include "instance.h"
#include "ids.h"
#include "schema.h"
#include "services.h"

#ifndef OP_PLUGIN_VERSION
#define OP_PLUGIN_VERSION "0"
#endif

static void op_destroy(void *instance)
{
    struct op_instance *in = instance;
    if (in && in->ch.chunk)
        op_disconnect(in);
    op_instance_free(in);
}

static int op_create(const struct ib_host *host, struct ib_host_ctx *ctx,
                     const struct ib_connection_config *cfg, void **instance)
{
    if (!host || !cfg || !cfg->params || !instance)
        return IB_ERR_INVALID;
    *instance = NULL;
    if (host->abi_major != IB_ABI_MAJOR)
        return IB_ERR_UNSUPPORTED;
    struct op_instance *in = calloc(1, sizeof *in);
    if (!in)
        return IB_ERR_NOMEM;
    in->host = host;
    in->ctx = ctx;
    in->p = cfg->params;
    in->ch.fd = -1;
    int rc = op_resolve(in, cfg);
    if (rc != IB_OK) {
        op_instance_free(in);
        return rc;
    }
    *instance = in;
    return IB_OK;
}

static int op_open(void *instance)
{
    return instance ? op_connect(instance) : IB_ERR_INVALID;
}

static void op_close(void *instance)
{
    if (instance)
        op_disconnect(instance);
}

static int op_read(void *instance, uint32_t device, uint32_t group, struct ib_sample *samples)
{
    struct op_instance *in = instance;
    if (!in || !samples || device >= in->n_devices || group >= in->devices[device].n_groups)
        return IB_ERR_INVALID;
    return op_read_group(in, device, group, samples);
}

/* ABI 1.1: between polls, Publish responses of subscribed groups; a connection with none only
 * watches its socket (a server that goes away is noticed at once) and keeps its session alive
 * with a read of the server's state when nothing else was sent for a third of its timeout. */
static void on_keepalive(void *arg, size_t i, const struct ua_datavalue *dv)
{
    (void)arg;
    (void)i;
    (void)dv;
}

static int op_wait(void *instance, int64_t deadline_ms)
{
    struct op_instance *in = instance;
    if (!in)
        return IB_ERR_INVALID;
    if (in->n_subs)
        return op_sub_wait(in, deadline_ms);
    if (!in->connected)
        return IB_ERR_CONNECTION;
    int64_t now = in->host->monotonic_ms();
    if (now - in->ch.last_sent_ms > in->p->session_timeout_ms / 3) {
        struct ua_nodeid state = ua_nid_num(0, UA_NODE_SERVER_STATE);
        if (ua_read(&in->ch, &in->session, &state, 1, UA_ATTR_VALUE, on_keepalive, NULL) ==
                IB_ERR_CONNECTION ||
            in->ch.fd < 0) {
            in->connected = false;
            return IB_ERR_CONNECTION;
        }
    }
    int rc = ua_channel_pump(&in->ch, deadline_ms);
    if (rc != IB_OK) {
        IB_WARN(in->host, in->ctx, "connection lost between reads: %s", in->ch.error);
        in->connected = false;
        return IB_ERR_CONNECTION;
    }
    return IB_OK;
}

static int op_write(void *instance, uint32_t device, uint32_t group, uint32_t tag,
                    const struct ib_value *value)
{
    struct op_instance *in = instance;
    if (!in || !value || device >= in->n_devices || group >= in->devices[device].n_groups ||
        tag >= in->devices[device].groups[group].n_tags)
        return IB_ERR_INVALID;
    return op_write_tag(in, device, group, tag, value);
}

IB_PLUGIN_DEFINE(.name = "opcua", .version = OP_PLUGIN_VERSION,
                 .description = "OPC UA client (opc.tcp, UA Binary): polled Read or subscriptions "
                                "(mode: subscribe) of variables by NodeId, Write",
                 .connection_schema = &op_connection_schema, .device_schema = &op_device_schema,
                 .tag_schema = &op_tag_schema, .create = op_create, .destroy = op_destroy,
                 .open = op_open, .close = op_close, .read_group = op_read, .write_tag = op_write,
                 .wait_events = op_wait, .group_schema = &op_group_schema);
