/* ironbridge: the daemon's entry point. Parses the command line, loads and validates the
 * configuration, then runs the main thread's sd-event loop (signals, status, watchdog). */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <systemd/sd-daemon.h>
#include <systemd/sd-event.h>

#include "config.h"
#include "diag.h"
#include "gateway.h"
#include "ib_build_config.h"
#include "log.h"
#include "plugin_loader.h"

enum { EXIT_CONFIG = 1, EXIT_USAGE = 2 };

struct opts {
    const char *config;
    const char *plugin_dir;
    int log_level; /* -1: from the config */
    bool check, once, list_plugins;
};

/* The state of the running daemon, reached from event callbacks. */
struct daemon {
    struct ib_gateway *gw;
    const struct ib_config *cfg;
    uint64_t watchdog_usec;
};

static void usage(FILE *f)
{
    fprintf(f,
            "Usage: ironbridge [OPTIONS]\n"
            "Industrial IoT gateway: polls field devices through protocol plugins (Modbus TCP),\n"
            "normalizes the values and publishes them to an MQTT broker over TLS.\n"
            "\n"
            "Options:\n"
            "  -c, --config FILE     configuration file (default: %s)\n"
            "      --check           validate the configuration, print every error, and exit:\n"
            "                        0 when valid (a summary is printed), 1 when not\n"
            "      --once            poll every tag once, print a table (tag, raw, value,\n"
            "                        unit, quality) and exit; nothing is published\n"
            "      --list-plugins    list the plugins in the plugin directory with their\n"
            "                        configuration keys, and exit\n"
            "      --plugin-dir DIR  load plugins from DIR (default: %s,\n"
            "                        or the build tree's when run from it)\n"
            "      --log-level LEVEL error, warning, notice, info or debug (overrides log.level)\n"
            "  -V, --version         print the version and exit\n"
            "  -h, --help            print this help and exit\n"
            "\n"
            "Signals: SIGTERM and SIGINT stop cleanly, delivering what is queued first.\n"
            "Exit status: 0 on success, 1 for a configuration error, 2 for a usage error.\n"
            "Documentation: README.md and docs/ (configuration.md, payload.md, modbus.md).\n",
            IB_CONFIG_FILE, IB_PLUGIN_DIR);
}

static int parse_args(int argc, char **argv, struct opts *o)
{
    enum { O_CHECK = 256, O_ONCE, O_PLUGIN_DIR, O_LOG_LEVEL, O_LIST };
    static const struct option lo[] = {
        {"config", required_argument, NULL, 'c'},
        {"check", no_argument, NULL, O_CHECK},
        {"once", no_argument, NULL, O_ONCE},
        {"list-plugins", no_argument, NULL, O_LIST},
        {"plugin-dir", required_argument, NULL, O_PLUGIN_DIR},
        {"log-level", required_argument, NULL, O_LOG_LEVEL},
        {"version", no_argument, NULL, 'V'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    o->config = IB_CONFIG_FILE;
    o->log_level = -1;
    int c;
    while ((c = getopt_long(argc, argv, "c:Vh", lo, NULL)) != -1) {
        switch (c) {
        case 'c':
            o->config = optarg;
            break;
        case O_CHECK:
            o->check = true;
            break;
        case O_ONCE:
            o->once = true;
            break;
        case O_LIST:
            o->list_plugins = true;
            break;
        case O_PLUGIN_DIR:
            o->plugin_dir = optarg;
            break;
        case O_LOG_LEVEL:
            o->log_level = ib_log_level_parse(optarg);
            if (o->log_level < 0) {
                fprintf(stderr,
                        "ironbridge: unknown log level '%s' (error, warning, notice, info, "
                        "debug)\n",
                        optarg);
                return -1;
            }
            break;
        case 'V':
            printf("ironbridge %s (plugin ABI %d.%d)\n", IB_VERSION, IB_ABI_MAJOR, IB_ABI_MINOR);
            exit(0);
        case 'h':
            usage(stdout);
            exit(0);
        default:
            fprintf(stderr, "Try 'ironbridge --help'.\n");
            return -1;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "ironbridge: unexpected argument '%s'. Try 'ironbridge --help'.\n",
                argv[optind]);
        return -1;
    }
    if (o->check + o->once + o->list_plugins > 1) {
        fprintf(stderr, "ironbridge: --check, --once and --list-plugins exclude each other\n");
        return -1;
    }
    return 0;
}

static void print_diag(const struct ib_diag *d)
{
    for (size_t i = 0; i < d->n; i++)
        fprintf(stderr, "%s\n", d->msgs[i]);
    if (d->n)
        fprintf(stderr, "ironbridge: %zu configuration error%s\n", d->n, d->n == 1 ? "" : "s");
}

/* ---- --list-plugins -------------------------------------------------------------------------- */

static const char *schema_type_name(uint32_t t)
{
    switch (t) {
    case IB_S_BOOL:
        return "bool";
    case IB_S_INT:
        return "integer";
    case IB_S_DOUBLE:
        return "number";
    case IB_S_STRING:
        return "string";
    case IB_S_ENUM:
        return "enum";
    default:
        return "?";
    }
}

static void print_schema(const char *title, const struct ib_schema *s)
{
    printf("  %s keys:\n", title);
    for (size_t i = 0; i < s->n_entries; i++) {
        const struct ib_schema_entry *e = &s->entries[i];
        printf("    %-20s %-8s", e->key, schema_type_name(e->type));
        if (e->flags & IB_SF_REQUIRED)
            printf(" required");
        if (e->def)
            printf(" default %s", e->def);
        if (e->type == IB_S_INT && (e->flags & IB_SF_RANGE))
            printf(" range [%lld, %lld]", (long long)e->min, (long long)e->max);
        if (e->type == IB_S_DOUBLE && (e->flags & IB_SF_RANGE))
            printf(" range [%g, %g]", e->dmin, e->dmax);
        if (e->type == IB_S_ENUM && e->choices) {
            printf(" one of");
            for (const char *const *c = e->choices; *c; c++)
                printf(" %s", *c);
        }
        printf("\n      %s\n", e->description ? e->description : "");
    }
}

static void list_one(const char *path, const struct ib_plugin *p, const char *err, void *ud)
{
    int *bad = ud;
    if (!p) {
        fprintf(stderr, "%s\n", err);
        (*bad)++;
        return;
    }
    printf("%s %s (ABI %u.%u) — %s\n  file: %s\n", p->name, p->version, p->abi_major, p->abi_minor,
           p->description ? p->description : "", path);
    print_schema("connection", p->connection_schema);
    print_schema("device", p->device_schema);
    print_schema("tag", p->tag_schema);
    printf("\n");
}

/* ---- the event loop -------------------------------------------------------------------------- */

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
    (void)ud;
    ib_warn("SIGHUP received: configuration reload is not implemented in this version; "
            "restart the service to apply a new configuration");
    return 0;
}

static int on_tick(sd_event_source *s, uint64_t usec, void *ud)
{
    struct daemon *d = ud;
    char status[256];
    if (d->gw) {
        ib_gateway_status(d->gw, status, sizeof status);
        sd_notifyf(0, "STATUS=%s", status);
    }
    /* The watchdog is fed only while every poller shows progress: a hung poller gets the
     * service restarted. */
    if (d->watchdog_usec &&
        (!d->gw || ib_gateway_healthy(d->gw, (int64_t)(d->watchdog_usec / 1000))))
        sd_notify(0, "WATCHDOG=1");
    uint64_t period = d->watchdog_usec ? d->watchdog_usec / 3 : 1000000;
    if (period > 1000000)
        period = 1000000;
    sd_event_source_set_time(s, usec + period);
    /* A time source fires once (SD_EVENT_ONESHOT) unless enabled again. */
    sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
    return 0;
}

static int run_daemon(struct ib_config *cfg, struct ib_gateway *gw)
{
    sd_event *ev = NULL;
    int r = sd_event_default(&ev);
    if (r < 0) {
        ib_err("cannot create the event loop: %s", strerror(-r));
        return 1;
    }
    struct daemon d = {.gw = gw, .cfg = cfg};
    sd_watchdog_enabled(0, &d.watchdog_usec);
    sd_event_add_signal(ev, NULL, SIGTERM, on_stop_signal, &d);
    sd_event_add_signal(ev, NULL, SIGINT, on_stop_signal, &d);
    sd_event_add_signal(ev, NULL, SIGHUP, on_hup, &d);
    uint64_t now;
    sd_event_now(ev, CLOCK_MONOTONIC, &now);
    sd_event_add_time(ev, NULL, CLOCK_MONOTONIC, now + 1000000, 100000, on_tick, &d);

    if (ib_gateway_start(gw) < 0) {
        sd_event_unref(ev);
        return 1;
    }
    if (cfg->n_connections == 0) {
        ib_notice("no connections configured in %s: idle. See the examples in "
                  "/usr/share/doc/ironbridge/examples and docs/configuration.md",
                  cfg->file);
        sd_notifyf(0,
                   "READY=1\nSTATUS=idle: nothing configured yet in %s (see "
                   "/usr/share/doc/ironbridge/examples)",
                   cfg->file);
    } else {
        ib_info("ironbridge %s started: gateway %s, %zu connections, %zu devices, %zu tags",
                IB_VERSION, cfg->gateway_id, cfg->n_connections, cfg->n_devices, cfg->n_tags);
        sd_notify(0, "READY=1\nSTATUS=started");
    }
    r = sd_event_loop(ev);
    ib_gateway_stop(gw);
    ib_info("stopped");
    sd_event_unref(ev);
    return r < 0 ? 1 : 0;
}

int main(int argc, char **argv)
{
    struct opts o = {0};
    if (parse_args(argc, argv, &o) < 0)
        return EXIT_USAGE;
    ib_log_init(o.log_level >= 0 ? o.log_level : IB_LOG_INFO);

    /* Signals are handled by the event loop: block them before any thread exists so that every
     * thread inherits the mask. SIGPIPE from a dropped socket must not kill the daemon. */
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &mask, NULL);
    signal(SIGPIPE, SIG_IGN);

    const char *pdir = o.plugin_dir ? o.plugin_dir : getenv("IRONBRIDGE_PLUGIN_DIR");
    /* --plugin-dir (or $IRONBRIDGE_PLUGIN_DIR) wins over gateway.plugin_dir in the config. */
    struct ib_plugin_registry *plugins =
        ib_plugins_new(pdir ? pdir : ib_plugins_default_dir(), pdir != NULL);
    if (!plugins) {
        fprintf(stderr, "ironbridge: out of memory\n");
        return EXIT_CONFIG;
    }
    if (o.list_plugins) {
        int bad = 0;
        ib_plugins_scan(plugins, list_one, &bad);
        ib_plugins_free(plugins);
        return bad ? EXIT_CONFIG : 0;
    }

    struct ib_diag diag = {0};
    struct ib_config *cfg = ib_config_load(o.config, plugins, &diag);
    struct ib_gateway *gw = cfg ? ib_gateway_create(cfg, &diag) : NULL;
    if (!cfg || !gw) {
        print_diag(&diag);
        if (o.check)
            fprintf(stderr, "ironbridge: %s is NOT valid\n", o.config);
        else
            fprintf(stderr,
                    "ironbridge: refusing to start; fix the configuration (check it "
                    "with `ironbridge --check -c %s`)\n",
                    o.config);
        ib_diag_free(&diag);
        ib_config_free(cfg);
        ib_plugins_free(plugins);
        return EXIT_CONFIG;
    }
    if (o.log_level < 0)
        ib_log_set_level(cfg->log_level);

    int rc = 0;
    if (o.check) {
        printf("%s: valid: gateway %s, %zu connections, %zu devices, %zu groups, %zu tags\n",
               o.config, cfg->gateway_id, cfg->n_connections, cfg->n_devices, cfg->n_groups,
               cfg->n_tags);
    } else if (o.once) {
        ib_gateway_once(gw, stdout);
    } else {
        rc = run_daemon(cfg, gw);
    }
    ib_gateway_free(gw);
    ib_config_free(cfg);
    ib_plugins_free(plugins);
    ib_diag_free(&diag);
    return rc;
}
