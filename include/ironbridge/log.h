/* ironbridge plugin SDK: logging macros over the host table's log(), so that a plugin writes
 *   IB_WARN(host, ctx, "device %s: no answer", name);
 * `host` and `ctx` are what create() received; messages go to the journal (or stderr) with
 * IB_CONNECTION= set by the daemon. Warnings and errors are rate-limited per instance by the
 * daemon, so a plugin may log every failure without flooding. Never log secrets. */
#ifndef IRONBRIDGE_LOG_H
#define IRONBRIDGE_LOG_H

#include "plugin.h"

/* The full form: device and tag (each may be NULL) become IB_DEVICE= and IB_TAG=. */
#define IB_LOG(host, ctx, level, device, tag, ...)                                                 \
    (host)->log((ctx), (level), (device), (tag), __VA_ARGS__)

/* Short forms for messages about the connection as a whole. */
#define IB_ERROR(host, ctx, ...)  IB_LOG(host, ctx, IB_LOG_ERR, NULL, NULL, __VA_ARGS__)
#define IB_WARN(host, ctx, ...)   IB_LOG(host, ctx, IB_LOG_WARNING, NULL, NULL, __VA_ARGS__)
#define IB_NOTICE(host, ctx, ...) IB_LOG(host, ctx, IB_LOG_NOTICE, NULL, NULL, __VA_ARGS__)
#define IB_INFO(host, ctx, ...)   IB_LOG(host, ctx, IB_LOG_INFO, NULL, NULL, __VA_ARGS__)
#define IB_DEBUG(host, ctx, ...)  IB_LOG(host, ctx, IB_LOG_DEBUG, NULL, NULL, __VA_ARGS__)

#endif
