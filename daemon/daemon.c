/* The daemon's main loop (sd-event): stop and reload signals, the one-second tick (STATUS=, the
 * plugin-call watch, the watchdog), the file watch (inotify) and the mailbox of signed
 * documents. Every event source is checked when it is added. Main thread. */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/inotify.h>

#include <systemd/sd-daemon.h>

#include "config_hash.h"
#include "daemon.h"
#include "ib_build_config.h"
#include "log.h"

void ib_daemon_feed_watchdog(struct ib_daemon *d)
{
    /* Fed only while every poller shows progress: a hung poller gets the service restarted. */
    if (d->watchdog_usec &&
        (!d->gw || ib_gateway_healthy(d->gw, (int64_t)(d->watchdog_usec / 1000))))
        sd_notify(0, "WATCHDOG=1");
}

static int on_stop_signal(sd_event_source *s, const struct signalfd_siginfo *si, void *ud)
{
    (void)ud;
    ib_notice("received %s: stopping", strsignal((int)si->ssi_signo));
    sd_notify(0, "STOPPING=1\nSTATUS=stopping: delivering queued values");
    return sd_event_exit(sd_event_source_get_event(s), 0);
}

static int on_hup(sd_event_source *s, const struct signalfd_siginfo *si, void *ud)
{
    (void)s;
    (void)si;
    ib_daemon_reload(ud, "SIGHUP");
    return 0;
}

static int on_watch_timer(sd_event_source *s, uint64_t usec, void *ud)
{
    (void)s;
    (void)usec;
    ib_daemon_reload(ud, "the configuration files changed");
    return 0;
}

/* A file changed under the configuration directory or conf.d: apply it once things are quiet
 * (writers should write a temporary file and rename it into place). */
static int on_inotify(sd_event_source *s, const struct inotify_event *ev, void *ud)
{
    (void)s;
    struct ib_daemon *d = ud;
    if (ev->len && ev->name[0] == '.')
        return 0; /* editors' and writers' temporary files */
    if (!d->cfg->watch)
        return 0;
    uint64_t now;
    sd_event_now(sd_event_source_get_event(d->watch_timer), CLOCK_MONOTONIC, &now);
    sd_event_source_set_time(d->watch_timer, now + (uint64_t)d->cfg->watch_delay_ms * 1000);
    sd_event_source_set_enabled(d->watch_timer, SD_EVENT_ONESHOT);
    return 0;
}

/* paho's thread: a message on the config topic. */
static void on_remote_message(void *ud, const char *payload, size_t len)
{
    ib_remote_mailbox_post(ud, payload, len);
}

static int on_mailbox(sd_event_source *s, int fd, uint32_t revents, void *ud)
{
    (void)s;
    (void)fd;
    (void)revents;
    struct ib_daemon *d = ud;
    char *msg = NULL;
    size_t len = 0;
    uint64_t overflow = 0;
    /* One document per turn of the loop: the tick and the signals run between them. */
    int got = ib_remote_mailbox_take(d->mailbox, &msg, &len, &overflow);
    if (got)
        ib_daemon_remote(d, msg, len);
    if (overflow && d->cfg->remote.enabled)
        ib_daemon_remote_overflow(d, overflow);
    free(msg);
    return 0;
}

static int on_tick(sd_event_source *s, uint64_t usec, void *ud)
{
    struct ib_daemon *d = ud;
    char status[256];
    if (d->status[0] && ib_monotonic_ms() < d->status_until_ms) {
        sd_notifyf(0, "STATUS=%s", d->status);
    } else if (d->gw) {
        d->status[0] = '\0';
        ib_gateway_status(d->gw, status, sizeof status);
        sd_notifyf(0, "STATUS=%s", status);
    }
    /* A plugin call past its deadline is reported bad at once (docs/isolation.md). */
    if (d->gw)
        ib_gateway_supervise(d->gw);
    ib_observe_tick(d->obs, d->cfg, ib_now_ms());
    ib_daemon_feed_watchdog(d);
    uint64_t period = d->watchdog_usec ? d->watchdog_usec / 3 : 1000000;
    if (period > 1000000)
        period = 1000000;
    /* A time source fires once (SD_EVENT_ONESHOT): re-arm it, or the status and the watchdog
     * would be sent only once. */
    sd_event_source_set_time(s, usec + period);
    sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
    return 0;
}

static int check_add(int r, const char *what)
{
    if (r < 0)
        ib_err("cannot set up the main loop: %s: %s", what, strerror(-r));
    return r;
}

/* Watched always (cheap); acted on only while config.watch is true, so that turning it on in
 * a reload takes effect. */
static int add_file_watch(sd_event *ev, struct ib_daemon *d)
{
    const uint32_t mask = IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE | IN_CREATE;
    int r = check_add(sd_event_add_time(ev, &d->watch_timer, CLOCK_MONOTONIC, UINT64_MAX, 100000,
                                        on_watch_timer, d),
                      "the file watch's timer");
    if (r < 0)
        return r;
    sd_event_source_set_enabled(d->watch_timer, SD_EVENT_OFF);
    char *dir = strdup(d->path);
    if (!dir)
        return check_add(-ENOMEM, "the file watch");
    char *slash = strrchr(dir, '/');
    if (slash)
        *slash = '\0';
    const char *main_dir = slash ? (*dir ? dir : "/") : ".";
    r = sd_event_add_inotify(ev, NULL, main_dir, mask, on_inotify, d);
    if (r < 0)
        ib_err("cannot watch %s for changes (%s): config.watch will not see them; reload with "
               "SIGHUP",
               main_dir, strerror(-r));
    if (d->cfg->dropin_dir) {
        r = sd_event_add_inotify(ev, NULL, d->cfg->dropin_dir, mask, on_inotify, d);
        if (r < 0 && r != -ENOENT)
            ib_err("cannot watch %s for changes (%s): config.watch will not see them; reload "
                   "with SIGHUP",
                   d->cfg->dropin_dir, strerror(-r));
    }
    free(dir);
    return 0; /* a directory that cannot be watched is told, not fatal */
}

static int add_sources(sd_event *ev, struct ib_daemon *d)
{
    if (check_add(sd_event_add_signal(ev, NULL, SIGTERM, on_stop_signal, d), "SIGTERM") < 0 ||
        check_add(sd_event_add_signal(ev, NULL, SIGINT, on_stop_signal, d), "SIGINT") < 0 ||
        check_add(sd_event_add_signal(ev, NULL, SIGHUP, on_hup, d), "SIGHUP") < 0)
        return -1;
    uint64_t now;
    sd_event_now(ev, CLOCK_MONOTONIC, &now);
    if (check_add(sd_event_add_time(ev, NULL, CLOCK_MONOTONIC, now + 1000000, 100000, on_tick, d),
                  "the status and watchdog timer") < 0)
        return -1;
    if (add_file_watch(ev, d) < 0)
        return -1;
    d->mailbox = ib_remote_mailbox_new();
    if (!d->mailbox) {
        ib_err("cannot set up the main loop: the mailbox of signed documents: %s", strerror(errno));
        return -1;
    }
    if (check_add(
            sd_event_add_io(ev, NULL, ib_remote_mailbox_fd(d->mailbox), EPOLLIN, on_mailbox, d),
            "the mailbox of signed documents") < 0)
        return -1;
    ib_gateway_set_remote_handler(d->gw, on_remote_message, d->mailbox);
    return 0;
}

static void announce(struct ib_daemon *d)
{
    ib_daemon_publish_status(d, "applied", d->applied_at_ms, NULL);
    if (d->cfg->n_connections == 0)
        ib_notice("no connections configured in %s: idle. See the examples in %s and "
                  "ironbridge.yaml(5)",
                  d->cfg->file, IB_EXAMPLES_DIR);
    else
        ib_info("ironbridge %s started: gateway %s, %zu connections, %zu devices, %zu tags, "
                "configuration sha256 %.12s",
                IB_VERSION, d->cfg->gateway_id, d->cfg->n_connections, d->cfg->n_devices,
                d->cfg->n_tags, d->hash);
    if (d->tree.kept)
        ib_info("signed configuration version %llu in force (%s)",
                (unsigned long long)d->tree.remote_version, d->tree.remote_path);
    ib_daemon_set_idle_or_clear(d);
    sd_notify(0, "READY=1");
}

int ib_daemon_run(struct ib_daemon *d)
{
    sd_event *ev = NULL;
    int r = sd_event_default(&ev);
    if (r < 0) {
        ib_err("cannot create the event loop: %s", strerror(-r));
        return 1;
    }
    sd_watchdog_enabled(0, &d->watchdog_usec);
    ib_config_hash_hex(d->cfg, d->hash);
    d->applied_at_ms = ib_now_ms();
    int rc = 1;
    if (add_sources(ev, d) == 0 && ib_gateway_start(d->gw) == 0) {
        d->obs = ib_observe_start(d->gw, d->cfg, d->hash);
        ib_gateway_metrics_activate(d->gw);
        announce(d);
        r = sd_event_loop(ev);
        rc = r < 0 ? 1 : 0;
    }
    ib_observe_stop(d->obs); /* before the gateway: they read its registry and store */
    d->obs = NULL;
    ib_gateway_stop(d->gw);
    ib_info("stopped");
    sd_event_unref(ev);
    /* after the gateway stopped: no north thread posts any more */
    ib_remote_mailbox_free(d->mailbox);
    d->mailbox = NULL;
    return rc;
}
