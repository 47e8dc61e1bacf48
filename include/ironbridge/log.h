/* ironbridge plugin SDK: logging macros over the host table's log(), so that a plugin writes
 *   IB_WARN(host, ctx, "device %s: no answer", name);
 * `host` and `ctx` are what create() received; messages go to the journal (or stderr) with
 * IB_CONNECTION= set by the daemon. Warnings and errors are rate-limited per instance by the
 * daemon, so a plugin may log every failure without flooding. Never log secrets. */
#ifndef IRONBRIDGE_LOG_H
#define IRONBRIDGE_LOG_H

#include <stdint.h>

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

/* ---- Failure episodes ------------------------------------------------------------------------
 * One small object per thing that can fail (a connection, a device, a broker, a disk): it tells
 * its owner when to log, so that a failure is logged once when it starts, once when its cause
 * changes, as a rate-limited reminder with the count of repeats while it lasts, and once when it
 * ends, never at every retry. Header-only: no ABI change. Not thread-safe: one per owner.
 *
 *   switch (ib_episode_fail(&d->ep, errno, now)) {
 *   case IB_EPISODE_STARTED: IB_WARN(host, ctx, "%s: %s", name, strerror(errno)); break;
 *   case IB_EPISODE_CHANGED: IB_WARN(host, ctx, "%s: now %s", name, strerror(errno)); break;
 *   case IB_EPISODE_REMIND:  IB_WARN(host, ctx, "%s: still failing (%" PRIu64 " times in %"
 *                                    PRId64 " s)", name, d->ep.count, ib_episode_age_s(&d->ep,
 * now)); break; default: break; // counted, not printed
 *   }
 *   ...
 *   if (ib_episode_ok(&d->ep, now) == IB_EPISODE_ENDED)
 *       IB_NOTICE(host, ctx, "%s: recovered after %" PRIu64 " failures", name, d->ep.count);
 *
 * After IB_EPISODE_ENDED the fields still describe the episode that ended (count, since_ms)
 * until the next failure starts a new one. */
enum ib_episode_event {
    IB_EPISODE_QUIET = 0, /* nothing to log: a repeat (counted) or a success while all is well */
    IB_EPISODE_STARTED,   /* the first failure after success (or ever) */
    IB_EPISODE_CHANGED,   /* still failing, with another cause than the one last logged */
    IB_EPISODE_REMIND,    /* still failing with the same cause, remind_ms after the last line */
    IB_EPISODE_ENDED,     /* the first success after failures */
};

#define IB_EPISODE_REMIND_MS_DEFAULT (10 * 60 * 1000)

struct ib_episode {
    int64_t since_ms;  /* when the current (or last) episode started */
    int64_t logged_ms; /* when the owner was last told to log */
    int64_t
        remind_ms;  /* reminder period while failing; 0: IB_EPISODE_REMIND_MS_DEFAULT, <0: never */
    uint64_t count; /* failures in the current (or last) episode */
    uint64_t unlogged;    /* failures counted but not logged since the last line */
    long cause;           /* the owner's code of the cause last logged (errno, reason, ...) */
    unsigned char active; /* a failure episode is under way */
    unsigned char reserved[7];
};

/* Records a failure with `cause` at `now_ms` (any monotonic clock in ms). */
static inline enum ib_episode_event ib_episode_fail(struct ib_episode *e, long cause,
                                                    int64_t now_ms)
{
    int64_t every = e->remind_ms == 0 ? IB_EPISODE_REMIND_MS_DEFAULT : e->remind_ms;
    enum ib_episode_event ev = IB_EPISODE_QUIET;

    if (!e->active) {
        e->active = 1;
        e->since_ms = now_ms;
        e->count = 0;
        ev = IB_EPISODE_STARTED;
    } else if (cause != e->cause) {
        ev = IB_EPISODE_CHANGED;
    } else if (every > 0 && now_ms - e->logged_ms >= every) {
        ev = IB_EPISODE_REMIND;
    }
    e->count++;
    if (ev == IB_EPISODE_QUIET) {
        e->unlogged++;
    } else {
        e->cause = cause;
        e->logged_ms = now_ms;
        e->unlogged = 0;
    }
    return ev;
}

/* Records a success at `now_ms`. */
static inline enum ib_episode_event ib_episode_ok(struct ib_episode *e, int64_t now_ms)
{
    if (!e->active)
        return IB_EPISODE_QUIET;
    e->active = 0;
    e->logged_ms = now_ms;
    return IB_EPISODE_ENDED;
}

/* Whole seconds since the episode started. */
static inline int64_t ib_episode_age_s(const struct ib_episode *e, int64_t now_ms)
{
    return (now_ms - e->since_ms) / 1000;
}

#endif
