/* The running daemon's state on the main thread, shared by its event loop (daemon.c) and by the
 * application of configurations (apply.c). Main thread only, except where said. */
#ifndef IB_DAEMON_H
#define IB_DAEMON_H

#include <stdbool.h>
#include <stdint.h>

#include <systemd/sd-event.h>

#include "config.h"
#include "diag.h"
#include "gateway.h"
#include "observe.h"
#include "plugin_loader.h"
#include "remote.h"
#include "tree.h"

struct ib_daemon {
    struct ib_gateway *gw;
    struct ib_config *cfg; /* the configuration applied last (a reference) */
    const char *path;
    struct ib_plugin_registry *plugins;
    bool fixed_log_level;
    uint64_t watchdog_usec; /* 0: no watchdog */
    int64_t applied_at_ms;
    char hash[65];
    char status[320]; /* a STATUS= line shown instead of the gateway's (idle, reload rejected) */
    int64_t status_until_ms;
    sd_event_source *watch_timer;
    struct ib_tree_info tree;          /* of the running configuration: the remote version */
    struct ib_remote_mailbox *mailbox; /* signed documents from paho's thread */
    struct ib_observe *obs;            /* metrics listener, status socket, health message */
};

/* daemon.c: run the event loop until SIGTERM/SIGINT; `d` holds a started-to-be gateway and its
 * configuration. Returns the exit status. */
int ib_daemon_run(struct ib_daemon *d);
/* WATCHDOG=1, if a watchdog is set and every poller is healthy. */
void ib_daemon_feed_watchdog(struct ib_daemon *d);

/* apply.c */
/* The retained config-status message: what runs, and how the last attempt went. */
void ib_daemon_publish_status(struct ib_daemon *d, const char *result, int64_t attempted_ms,
                              const struct ib_diag *errors);
/* The idle STATUS= while nothing is configured, else the gateway's own. */
void ib_daemon_set_idle_or_clear(struct ib_daemon *d);
/* Load the tree again beside the running one and apply the difference (docs/reload.md). */
void ib_daemon_reload(struct ib_daemon *d, const char *why);
/* A message of the config topic (docs/remote-config.md). */
void ib_daemon_remote(struct ib_daemon *d, const char *msg, size_t len);
/* `n` messages of the config topic found the mailbox full: answered with a rejection. */
void ib_daemon_remote_overflow(struct ib_daemon *d, uint64_t n);

#endif
