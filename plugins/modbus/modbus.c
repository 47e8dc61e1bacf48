/* Modbus driver plugin (TCP, RTU, RTU over TCP): the exported descriptor and its callbacks
 * (create, destroy, open, close, read_group, write_tag), each checking its arguments and handing
 * off to resolve.c, poll.c, write.c and the link. */
#include <inttypes.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>

#include <ironbridge/ironbridge.h>

#include "instance.h"
#include "link.h"
#include "resolve.h"
#include "schema.h"

#ifndef MB_PLUGIN_VERSION
#define MB_PLUGIN_VERSION "0"
#endif

static void mb_destroy(void *instance)
{
    mb_instance_free(instance);
}

static int mb_create(const struct ib_host *host, struct ib_host_ctx *ctx,
                     const struct ib_connection_config *cfg, void **instance)
{
    if (!host || !cfg || !cfg->params || !instance)
        return IB_ERR_INVALID;
    *instance = NULL;
    if (host->abi_major != IB_ABI_MAJOR)
        return IB_ERR_UNSUPPORTED;

    struct mb_instance *in = calloc(1, sizeof *in);
    if (!in)
        return IB_ERR_NOMEM;
    in->host = host;
    in->ctx = ctx;
    struct mb_link_config lc;
    int rc = mb_resolve(in, cfg, &lc);
    /* The link only stores its settings here (no I/O: --check calls create). */
    if (rc == 0)
        rc = mb_link_new(&lc, &in->link);
    if (rc != 0) {
        mb_instance_free(in);
        return rc;
    }
    *instance = in;
    return 0;
}

static void log_plan(struct mb_instance *in)
{
    uint32_t tags = 0, reqs = 0;
    for (uint32_t d = 0; d < in->n_devices; d++)
        for (uint32_t g = 0; g < in->devices[d].n_groups; g++) {
            const struct mb_group *grp = &in->devices[d].groups[g];
            tags += grp->n_tags;
            reqs += grp->plan.n_requests;
            MB_LOG(in, IB_LOG_DEBUG, in->devices[d].name, NULL,
                   "group %s: %u tags in %u read requests (%u registers, %u bits)", grp->name,
                   grp->n_tags, grp->plan.n_requests, grp->plan.n_registers, grp->plan.n_bits);
        }
    MB_LOG(in, IB_LOG_INFO, NULL, NULL,
           "connected to %s: %u devices, %u tags in %u read requests when every group is polled "
           "once",
           mb_link_name(in->link), in->n_devices, tags, reqs);
}

static int mb_open(void *instance)
{
    struct mb_instance *in = instance;
    if (!in)
        return IB_ERR_INVALID;
    mb_link_close(in->link);
    int err = mb_link_open(in->link);
    if (err != 0) {
        mb_log_open_error(in, err);
        return IB_ERR_CONNECTION;
    }
    if (!in->opened_once) {
        in->polls_on_link = 0;
        int64_t now = in->host->monotonic_ms();
        if (ib_episode_ok(&in->open_ep, now) == IB_EPISODE_ENDED)
            MB_LOG(in, IB_LOG_NOTICE, NULL, NULL,
                   "connected to %s, after %" PRIu64 " failed attempt(s) in %" PRId64 " s",
                   mb_link_name(in->link), in->open_ep.count, ib_episode_age_s(&in->open_ep, now));
        log_plan(in);
    } else {
        mb_note_opened(in, IB_LOG_INFO);
    }
    in->opened_once = true;
    return 0;
}

static void mb_close(void *instance)
{
    struct mb_instance *in = instance;
    if (in)
        mb_link_close(in->link);
}

static int mb_read_group(void *instance, uint32_t device, uint32_t group, struct ib_sample *samples)
{
    struct mb_instance *in = instance;
    if (!in || !samples || device >= in->n_devices || group >= in->devices[device].n_groups)
        return IB_ERR_INVALID;
    return mb_poll_group(in, device, group, samples);
}

static int mb_write_tag(void *instance, uint32_t device, uint32_t group, uint32_t tag,
                        const struct ib_value *value)
{
    struct mb_instance *in = instance;
    if (!in || !value || device >= in->n_devices || group >= in->devices[device].n_groups ||
        tag >= in->devices[device].groups[group].n_tags)
        return IB_ERR_INVALID;
    return mb_write(in, device, group, tag, value);
}

IB_PLUGIN_DEFINE(.name = "modbus", .version = MB_PLUGIN_VERSION,
                 .description = "Modbus client over TCP, RTU (serial) and RTU over TCP: coils, "
                                "discrete inputs, input and holding registers",
                 .connection_schema = &mb_connection_schema, .device_schema = &mb_device_schema,
                 .tag_schema = &mb_tag_schema, .create = mb_create, .destroy = mb_destroy,
                 .open = mb_open, .close = mb_close, .read_group = mb_read_group,
                 .write_tag = mb_write_tag);
