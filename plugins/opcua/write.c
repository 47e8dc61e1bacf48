/* OPC UA plugin: write_tag(): reads the node's current value to learn its built-in type,
 * converts the value to that type (refusing what does not fit), and writes it with the Write
 * service; the server's refusal is logged with its StatusCode name. */
#include "ids.h"
#include "instance.h"
#include "services.h"
#include "status.h"

struct current {
    int type;
    bool array;
    uint32_t status;
};

static void on_current(void *arg, size_t i, const struct ua_datavalue *dv)
{
    struct current *c = arg;
    (void)i;
    c->status = dv->status;
    c->type = (dv->mask & UA_DV_VALUE) ? dv->value.type : 0;
    c->array = dv->value.is_array;
}

int op_write_tag(struct op_instance *in, uint32_t device, uint32_t group, uint32_t tag,
                 const struct ib_value *value)
{
    struct op_device *dev = &in->devices[device];
    struct op_tag *t = &dev->groups[group].tags[tag];
    if (!t->writable)
        return IB_ERR_DENIED;
    if (!in->connected)
        return IB_ERR_CONNECTION;
    struct current cur = {0};
    int rc = ua_read(&in->ch, &in->session, &t->node, 1, UA_ATTR_VALUE, on_current, &cur);
    if (rc != IB_OK) {
        IB_LOG(in->host, in->ctx, IB_LOG_WARNING, dev->name, t->name,
               "write: cannot read the node's type: %s", in->ch.error);
        return rc == IB_ERR_TIMEOUT ? IB_ERR_CONNECTION : rc;
    }
    char sc[64], err[160];
    if (ua_status_is_bad(cur.status) || cur.type == 0 || cur.array) {
        IB_LOG(in->host, in->ctx, IB_LOG_WARNING, dev->name, t->name,
               "write refused: the node's current value (%s) gives no scalar type to write",
               ua_status_text(cur.status, sc, sizeof sc));
        return IB_ERR_INVALID;
    }
    struct ua_variant v;
    if (ua_value_to_variant(value, cur.type, &v, err, sizeof err) != 0) {
        IB_LOG(in->host, in->ctx, IB_LOG_WARNING, dev->name, t->name, "write refused: %s", err);
        return IB_ERR_INVALID;
    }
    rc = ua_write_value(&in->ch, &in->session, &t->node, &v);
    if (rc != IB_OK) {
        IB_LOG(in->host, in->ctx, IB_LOG_WARNING, dev->name, t->name, "write failed: %s",
               in->ch.error);
        if (rc == IB_ERR_EXCEPTION && in->ch.last_status == 0x803B0000u) /* BadNotWritable */
            return IB_ERR_DENIED;
    }
    return rc == IB_ERR_TIMEOUT ? IB_ERR_CONNECTION : rc;
}
