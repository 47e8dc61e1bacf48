/* A poll's reads with several requests in flight (max_outstanding > 1 on native Modbus TCP): the
 * batch run on the link, its dropped answers logged at debug level, and the fall-back to one
 * request at a time when a device shows that it mishandles several in flight. */
#include <inttypes.h>

#include "instance.h"
#include "link_impl.h" /* mb_link_now_us */

void mb_pipeline_fall_back(struct mb_instance *in, const struct mb_device *dev, const char *what)
{
    if (in->outstanding <= 1)
        return;
    in->outstanding = 1;
    MB_LOG(in, IB_LOG_WARNING, dev ? dev->name : NULL, NULL,
           "%s mishandles several requests in flight: %s; max_outstanding %u falls back to 1 on "
           "this connection until it is restarted (set max_outstanding: 1 to "
           "silence this)",
           mb_link_name(in->link), what, in->max_outstanding);
}

static void log_dropped(struct mb_instance *in, const struct mb_device *dev)
{
    const struct mb_pipe *p = &in->pipe;
    if (p->late_dropped == in->late_logged && p->unknown_dropped == in->unknown_logged)
        return;
    MB_LOG(in, IB_LOG_DEBUG, dev->name, NULL,
           "dropped %" PRIu64 " late answer(s) and %" PRIu64
           " with unknown transaction ids from %s since the last such line; the last: %s",
           p->late_dropped - in->late_logged, p->unknown_dropped - in->unknown_logged,
           mb_link_name(in->link), p->note);
    in->late_logged = p->late_dropped;
    in->unknown_logged = p->unknown_dropped;
}

void mb_pipeline_read(struct mb_instance *in, const struct mb_device *dev, struct mb_group *grp)
{
    mb_link_set_timeout(in->link, dev->timeout_ms);
    mb_link_read_batch(in->link, &in->pipe, dev->unit_id, grp->batch, grp->n_reqs, in->outstanding);
    in->last_request_us = mb_link_now_us();
    log_dropped(in, dev);
    if (in->pipe.misbehaved[0] != '\0')
        mb_pipeline_fall_back(in, dev, in->pipe.misbehaved);
}
