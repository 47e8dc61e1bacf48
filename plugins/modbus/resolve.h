/* Modbus plugin: a connection's configuration resolved into an instance (resolve.c). Called by
 * create() on the daemon's main thread; no I/O. */
#ifndef IB_MODBUS_RESOLVE_H
#define IB_MODBUS_RESOLVE_H

#include <ironbridge/ironbridge.h>

#include "instance.h"
#include "link.h"

/* Fill in's devices, groups and tags from cfg (in->host and in->ctx set; every semantic error is
 * reported through host->config_error with its place), plan every group and allocate its buffers,
 * and fill *lc with the link's settings. Returns 0, IB_ERR_INVALID (errors were reported) or
 * IB_ERR_NOMEM. On failure in may hold part of what was built: mb_instance_free() frees it.
 * Borrowed: the names and strings of cfg, which must outlive in. */
int mb_resolve(struct mb_instance *in, const struct ib_connection_config *cfg,
               struct mb_link_config *lc);

/* Free an instance and all it owns (closing its link first); accepts NULL. */
void mb_instance_free(struct mb_instance *in);

#endif
