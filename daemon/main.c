/* ironbridge: the daemon's entry point. Parses the command line, loads and validates the
 * configuration, then runs the main thread's sd-event loop (signals, status, watchdog). */
#include <errno.h>
#include <stdarg.h>
#include <getopt.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <time.h>
#include <unistd.h>

#include <systemd/sd-daemon.h>
#include <systemd/sd-event.h>

#include "config.h"
#include "config_hash.h"
#include "json.h"
#include "diag.h"
#include "gateway.h"
#include "ib_build_config.h"
#include "log.h"
#include "plugin_loader.h"
#include "remote.h"

enum { EXIT_CONFIG = 1, EXIT_USAGE = 2 };

struct opts {
    const char *config;
    const char *plugin_dir;
    int log_level; /* -1: from the config */
    bool check, once, list_plugins, markdown;
    const char *list_only; /* --list-plugins=NAME */
    const char *sign_file, *sign_key;
    unsigned long long sign_version;
};

/* The state of the running daemon, reached from event callbacks (main thread only). */
struct daemon {
    struct ib_gateway *gw;
    struct ib_config *cfg; /* the configuration applied last */
    const char *path;
    struct ib_plugin_registry *plugins;
    bool fixed_log_level;
    uint64_t watchdog_usec;
    int64_t applied_at_ms;
    char hash[65];
    char status[320]; /* a STATUS= line shown instead of the gateway's (idle, reload rejected) */
    int64_t status_until_ms;
    sd_event_source *watch_timer;
    uint64_t remote_version; /* of the signed document applied last (0: none) */
    /* The mailbox of signed documents from paho's thread: the latest one wins. */
    pthread_mutex_t mbox_mu; /* guards mbox, mbox_len */
    char *mbox;
    size_t mbox_len;
    int mbox_fd; /* eventfd that wakes the main loop */
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
            "      --list-plugins[=NAME]\n"
            "                        list the plugins in the plugin directory (or only NAME)\n"
            "                        with version, ABI and configuration keys (type, default,\n"
            "                        range, description), and exit\n"
            "      --format FORMAT   for --list-plugins: text (default) or markdown\n"
            "      --plugin-dir DIR  load plugins from DIR (default: %s,\n"
            "                        or the build tree's when run from it)\n"
            "      --log-level LEVEL error, warning, notice, info or debug (overrides log.level)\n"
            "      --sign-config FILE --key PRIVATE.pem --sign-version N\n"
            "                        print FILE as a signed configuration document (Ed25519) for\n"
            "                        remote_config, to publish to the gateway's config topic;\n"
            "                        N must grow with every document\n"
            "  -V, --version         print the version and exit\n"
            "  -h, --help            print this help and exit\n"
            "\n"
            "Signals: SIGTERM and SIGINT stop cleanly, delivering what is queued first;\n"
            "SIGHUP reloads the configuration (only what changed is restarted).\n"
            "Exit status: 0 on success, 1 for a configuration error, 2 for a usage error.\n"
            "Documentation: ironbridge(8), ironbridge.yaml(5), docs/ (plugin-abi.md,\n"
            "writing-plugins.md, isolation.md); examples in %s.\n",
            IB_CONFIG_FILE, IB_PLUGIN_DIR, IB_EXAMPLES_DIR);
}

static int parse_args(int argc, char **argv, struct opts *o)
{
    enum {
        O_CHECK = 256,
        O_ONCE,
        O_PLUGIN_DIR,
        O_LOG_LEVEL,
        O_LIST,
        O_SIGN,
        O_KEY,
        O_SIGN_VER,
        O_FORMAT
    };
    static const struct option lo[] = {
        {"config", required_argument, NULL, 'c'},
        {"check", no_argument, NULL, O_CHECK},
        {"once", no_argument, NULL, O_ONCE},
        {"list-plugins", optional_argument, NULL, O_LIST},
        {"format", required_argument, NULL, O_FORMAT},
        {"plugin-dir", required_argument, NULL, O_PLUGIN_DIR},
        {"log-level", required_argument, NULL, O_LOG_LEVEL},
        {"sign-config", required_argument, NULL, O_SIGN},
        {"key", required_argument, NULL, O_KEY},
        {"sign-version", required_argument, NULL, O_SIGN_VER},
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
            o->list_only = optarg;
            break;
        case O_FORMAT:
            if (strcmp(optarg, "markdown") == 0) {
                o->markdown = true;
            } else if (strcmp(optarg, "text") != 0) {
                fprintf(stderr, "ironbridge: --format is text or markdown, not '%s'\n", optarg);
                return -1;
            }
            break;
        case O_PLUGIN_DIR:
            o->plugin_dir = optarg;
            break;
        case O_SIGN:
            o->sign_file = optarg;
            break;
        case O_KEY:
            o->sign_key = optarg;
            break;
        case O_SIGN_VER: {
            char *end;
            o->sign_version = strtoull(optarg, &end, 10);
            if (*end || !o->sign_version) {
                fprintf(stderr, "ironbridge: --sign-version needs a whole number above 0\n");
                return -1;
            }
            break;
        }
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
    if (o->sign_file && (!o->sign_key || !o->sign_version)) {
        fprintf(stderr, "ironbridge: --sign-config FILE needs --key PRIVATE.pem and "
                        "--sign-version N\n");
        return -1;
    }
    if (o->check + o->once + o->list_plugins + !!o->sign_file > 1) {
        fprintf(stderr, "ironbridge: --check, --once and --list-plugins exclude each other\n");
        return -1;
    }
    return 0;
}

static void print_diag(const struct ib_diag *d)
{
    for (size_t i = 0; i < d->n; i++)
        fprintf(stderr, "%s\n", d->msgs[i]);
    size_t total = ib_diag_total(d);
    if (total)
        fprintf(stderr, "ironbridge: %zu configuration error%s\n", total, total == 1 ? "" : "s");
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
    case IB_S_DURATION:
        return "duration";
    default:
        return "?";
    }
}

static void fmt_duration(char *buf, size_t len, int64_t ms)
{
    static const struct {
        int64_t ms;
        const char *unit;
    } units[] = {{86400000, "d"}, {3600000, "h"}, {60000, "min"}, {1000, "s"}};
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
        if (ms && ms % units[i].ms == 0) {
            snprintf(buf, len, "%lld%s", (long long)(ms / units[i].ms), units[i].unit);
            return;
        }
    snprintf(buf, len, "%lldms", (long long)ms);
}

/* "[min, max]" or "one of a, b" or "" for a schema entry. */
static void range_text(const struct ib_schema_entry *e, char *buf, size_t len)
{
    buf[0] = '\0';
    if (e->type == IB_S_INT && (e->flags & IB_SF_RANGE)) {
        snprintf(buf, len, "[%lld, %lld]", (long long)e->min, (long long)e->max);
    } else if (e->type == IB_S_DOUBLE && (e->flags & IB_SF_RANGE)) {
        snprintf(buf, len, "[%g, %g]", e->dmin, e->dmax);
    } else if (e->type == IB_S_DURATION && (e->flags & IB_SF_RANGE)) {
        char a[32], b[32];
        fmt_duration(a, sizeof a, e->min);
        fmt_duration(b, sizeof b, e->max);
        snprintf(buf, len, "[%s, %s]", a, b);
    } else if (e->type == IB_S_ENUM && e->choices) {
        size_t n = (size_t)snprintf(buf, len, "one of");
        for (const char *const *c = e->choices; *c && n < len; c++)
            n += (size_t)snprintf(buf + n, len - n, "%s %s", c == e->choices ? "" : ",", *c);
    }
}

static void print_schema(const char *title, const struct ib_schema *s)
{
    printf("  %s keys:%s\n", title, s->n_entries ? "" : " none");
    for (size_t i = 0; i < s->n_entries; i++) {
        const struct ib_schema_entry *e = &s->entries[i];
        char range[512];
        range_text(e, range, sizeof range);
        printf("    %-20s %-8s", e->key, schema_type_name(e->type));
        if (e->flags & IB_SF_REQUIRED)
            printf(" required");
        if (e->def)
            printf(" default %s", e->def);
        if (*range)
            printf(" %s%s", e->type == IB_S_ENUM ? "" : "range ", range);
        printf("\n      %s\n", e->description ? e->description : "");
    }
}

/* Markdown text: a '|' would end a table cell. */
static void md_text(const char *s)
{
    for (; s && *s; s++) {
        if (*s == '|')
            putchar('\\');
        putchar(*s);
    }
}

static void print_schema_md(const char *title, const struct ib_schema *s)
{
    printf("\n## %s keys\n\n", title);
    if (!s->n_entries) {
        printf("None.\n");
        return;
    }
    printf("| key | type | required | default | range | description |\n"
           "|---|---|---|---|---|---|\n");
    for (size_t i = 0; i < s->n_entries; i++) {
        const struct ib_schema_entry *e = &s->entries[i];
        char range[512];
        range_text(e, range, sizeof range);
        printf("| `%s` | %s | %s | ", e->key, schema_type_name(e->type),
               e->flags & IB_SF_REQUIRED ? "yes" : "no");
        if (e->def) {
            printf("`");
            md_text(e->def);
            printf("`");
        }
        printf(" | ");
        md_text(range);
        printf(" | ");
        md_text(e->description);
        printf(" |\n");
    }
}

struct list_opts {
    const char *only; /* a plugin name, or NULL for all */
    bool markdown;
    int bad, shown;
};

static void list_one(const char *path, const struct ib_plugin *p, const char *err, void *ud)
{
    struct list_opts *lo = ud;
    if (!p) {
        fprintf(stderr, "%s\n", err);
        lo->bad++;
        return;
    }
    if (lo->only && strcmp(lo->only, p->name) != 0)
        return;
    lo->shown++;
    if (lo->markdown) {
        printf("# Plugin `%s`\n\n", p->name);
        printf("<!-- Generated by `ironbridge --list-plugins=%s --format markdown`: do not edit; "
               "tests/sdk/docs_current.sh fails when this file is out of date. -->\n\n",
               p->name);
        md_text(p->description);
        printf("\n\nVersion %s, plugin ABI %u.%u. Every connection also takes the daemon's own "
               "keys `name` and `call_timeout`, every device `name`, every tag `name` and the "
               "normalization keys ([configuration.md](../configuration.md)).\n",
               p->version, p->abi_major, p->abi_minor);
        print_schema_md("Connection", p->connection_schema);
        print_schema_md("Device", p->device_schema);
        print_schema_md("Tag", p->tag_schema);
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

/* The retained config-status message: what runs, and how the last attempt went. */
static void publish_config_status(struct daemon *d, const char *result, int64_t attempted_ms,
                                  const struct ib_diag *errors)
{
    struct ib_buf b = {0};
    ib_buf_printf(&b,
                  "{\"version\":\"%s\",\"hash\":\"%s\",\"applied_at\":%lld,\"files\":%zu,"
                  "\"remote_version\":%llu,\"result\":\"%s\",\"attempted_at\":%lld,"
                  "\"errors\":[",
                  IB_VERSION, d->hash, (long long)d->applied_at_ms, d->cfg->n_files,
                  (unsigned long long)d->remote_version, result, (long long)attempted_ms);
    for (size_t i = 0; errors && i < errors->n && i < 50; i++) {
        if (i)
            ib_buf_puts(&b, ",");
        ib_json_cstr(&b, errors->msgs[i]);
    }
    ib_buf_puts(&b, "]}");
    if (b.p)
        ib_gateway_set_config_status(d->gw, b.p);
    ib_buf_free(&b);
}

static void set_status(struct daemon *d, int64_t for_ms, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_status(struct daemon *d, int64_t for_ms, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(d->status, sizeof d->status, fmt, ap);
    va_end(ap);
    d->status_until_ms = for_ms ? ib_monotonic_ms() + for_ms : INT64_MAX;
    sd_notifyf(0, "STATUS=%s", d->status);
}

static void set_idle_or_clear(struct daemon *d)
{
    if (d->cfg->n_connections == 0)
        set_status(d, 0,
                   "idle: nothing configured yet in %s; examples in %s, reference: man "
                   "ironbridge.yaml",
                   d->cfg->file, IB_EXAMPLES_DIR);
    else
        d->status[0] = '\0';
}

/* Apply `next` (loaded by the caller, errors so far in `diag`) or report why not. Returns 0 if
 * applied. */
static int apply_config(struct daemon *d, const char *why, struct ib_config *next,
                        struct ib_diag *diag, int64_t attempted)
{
    struct ib_reload_summary sum;
    if (!next || ib_gateway_reload(d->gw, next, diag, &sum) < 0) {
        for (size_t i = 0; i < diag->n; i++)
            ib_log(IB_LOG_ERR, NULL, NULL, NULL, "reload: %s", diag->msgs[i]);
        ib_log(IB_LOG_ERR, NULL, NULL, NULL,
               "reload rejected (%s): %zu configuration error%s; the running configuration "
               "(sha256 %.12s) stays",
               why, diag->n, diag->n == 1 ? "" : "s", d->hash);
        set_status(d, 10 * 60 * 1000,
                   "reload REJECTED (%zu error%s, see journalctl -u ironbridge); running the "
                   "previous configuration %.12s",
                   diag->n, diag->n == 1 ? "" : "s", d->hash);
        publish_config_status(d, "rejected", attempted, diag);
        ib_config_free(next);
        return -1;
    }
    ib_config_free(d->cfg);
    d->cfg = next; /* our reference; the gateway holds its own */
    char old[65];
    memcpy(old, d->hash, sizeof old);
    ib_config_hash_hex(next, d->hash);
    d->applied_at_ms = attempted;
    if (!d->fixed_log_level)
        ib_log_set_level(next->log_level);
    ib_notice("configuration applied (%s): sha256 %.12s (was %.12s); connections: %zu kept "
              "running, %zu restarted, %zu added, %zu removed; north %s",
              why, d->hash, old, sum.kept, sum.restarted, sum.added, sum.removed,
              sum.north_restarted ? "reconnected" : "unchanged");
    set_idle_or_clear(d);
    publish_config_status(d, "applied", attempted, NULL);
    return 0;
}

static int apply(struct daemon *d, const char *why, struct ib_config *next, struct ib_diag *diag,
                 int64_t attempted)
{
    int rc = apply_config(d, why, next, diag, attempted);
    /* The load freed its YAML trees, and what was replaced or refused (a configuration,
     * pollers) is gone too: give the pages back, which glibc keeps otherwise. */
    malloc_trim(0);
    return rc;
}

static void notify_reloading(const char *why)
{
    struct timespec mono;
    clock_gettime(CLOCK_MONOTONIC, &mono);
    sd_notifyf(0, "RELOADING=1\nMONOTONIC_USEC=%llu\nSTATUS=reloading the configuration (%s)",
               (unsigned long long)mono.tv_sec * 1000000ULL +
                   (unsigned long long)mono.tv_nsec / 1000,
               why);
}

/* Load the tree again beside the running one and apply the difference (docs/reload.md). */
static void reload(struct daemon *d, const char *why)
{
    notify_reloading(why);
    ib_notice("reloading the configuration (%s)", why);
    int64_t attempted = ib_now_ms();
    struct ib_diag diag = {0};
    struct ib_config *next = ib_config_load(d->path, d->plugins, &diag);
    apply(d, why, next, &diag, attempted);
    ib_diag_free(&diag);
    sd_notify(0, "READY=1");
}

/* A signed document from the config topic (docs/remote-config.md): verified, checked against
 * replay, validated as the whole tree with it in place, applied, and only then written. */
static void remote_document(struct daemon *d, const char *msg, size_t len)
{
    int64_t attempted = ib_now_ms();
    struct ib_diag diag = {0};
    struct ib_signed_doc doc;
    char err[512];
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", d->cfg->dropin_dir, d->cfg->remote.file);
    if (ib_remote_verify(msg, len, d->cfg->remote.public_key, &doc, err, sizeof err) < 0) {
        ib_diag_add(&diag, NULL, NULL, "remote configuration refused: %s", err);
    } else if (doc.version <= d->remote_version) {
        ib_diag_add(&diag, NULL, NULL,
                    "remote configuration refused: version %llu is not newer than the applied "
                    "version %llu (a replay?)",
                    (unsigned long long)doc.version, (unsigned long long)d->remote_version);
    }
    if (diag.n) {
        ib_log(IB_LOG_ERR, NULL, NULL, NULL, "%s", diag.msgs[0]);
        publish_config_status(d, "rejected", attempted, &diag);
        ib_diag_free(&diag);
        return;
    }
    notify_reloading("signed configuration received");
    struct ib_buf text = {0};
    ib_remote_file_text(doc.version, doc.body, doc.body_len, &text);
    struct ib_config_extra extra = {.name = d->cfg->remote.file, .text = text.p ? text.p : ""};
    struct ib_config *next = ib_config_load_ex(d->path, d->plugins, &diag, &extra);
    char why[64];
    snprintf(why, sizeof why, "signed configuration version %llu", (unsigned long long)doc.version);
    /* The version counts as seen only if applied: a refused document may be fixed and resent
     * with the same version. (apply() publishes a rejection itself.) */
    if (apply(d, why, next, &diag, attempted) == 0) {
        d->remote_version = doc.version;
        publish_config_status(d, "applied", attempted, NULL);
        if (ib_remote_write_file(path, doc.version, doc.body, doc.body_len) < 0)
            ib_log(IB_LOG_ERR, NULL, NULL, NULL,
                   "signed configuration version %llu is applied but could not be written to "
                   "%s (%s): it will be lost at the next restart",
                   (unsigned long long)doc.version, path, strerror(errno));
    }
    ib_buf_free(&text);
    ib_diag_free(&diag);
    sd_notify(0, "READY=1");
}

static void on_remote_message(void *ud, const char *payload, size_t len)
{
    struct daemon *d = ud;
    char *copy = malloc(len + 1);
    if (!copy)
        return;
    memcpy(copy, payload, len);
    copy[len] = '\0';
    pthread_mutex_lock(&d->mbox_mu);
    free(d->mbox);
    d->mbox = copy;
    d->mbox_len = len;
    pthread_mutex_unlock(&d->mbox_mu);
    uint64_t one = 1;
    ssize_t w = write(d->mbox_fd, &one, sizeof one);
    (void)w;
}

static int on_mbox(sd_event_source *s, int fd, uint32_t revents, void *ud)
{
    (void)s;
    (void)revents;
    struct daemon *d = ud;
    uint64_t n;
    ssize_t r = read(fd, &n, sizeof n);
    (void)r;
    pthread_mutex_lock(&d->mbox_mu);
    char *msg = d->mbox;
    size_t len = d->mbox_len;
    d->mbox = NULL;
    pthread_mutex_unlock(&d->mbox_mu);
    if (msg && d->cfg->remote.enabled)
        remote_document(d, msg, len);
    free(msg);
    return 0;
}

static int on_hup(sd_event_source *s, const struct signalfd_siginfo *si, void *ud)
{
    (void)s;
    (void)si;
    reload(ud, "SIGHUP");
    return 0;
}

static int on_watch_timer(sd_event_source *s, uint64_t usec, void *ud)
{
    (void)s;
    (void)usec;
    reload(ud, "the configuration files changed");
    return 0;
}

/* A file changed under the configuration directory or conf.d: apply it once things are quiet
 * (writers should write a temporary file and rename it into place). */
static int on_inotify(sd_event_source *s, const struct inotify_event *ev, void *ud)
{
    (void)s;
    struct daemon *d = ud;
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

static int on_tick(sd_event_source *s, uint64_t usec, void *ud)
{
    struct daemon *d = ud;
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
    /* The watchdog is fed only while every poller shows progress: a hung poller gets the
     * service restarted. */
    if (d->watchdog_usec &&
        (!d->gw || ib_gateway_healthy(d->gw, (int64_t)(d->watchdog_usec / 1000))))
        sd_notify(0, "WATCHDOG=1");
    uint64_t period = d->watchdog_usec ? d->watchdog_usec / 3 : 1000000;
    if (period > 1000000)
        period = 1000000;
    /* A time source fires once (SD_EVENT_ONESHOT): re-arm it, or the status and the watchdog
     * would be sent only once. */
    sd_event_source_set_time(s, usec + period);
    sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
    return 0;
}

static int run_daemon(struct daemon *d)
{
    sd_event *ev = NULL;
    int r = sd_event_default(&ev);
    if (r < 0) {
        ib_err("cannot create the event loop: %s", strerror(-r));
        return 1;
    }
    sd_watchdog_enabled(0, &d->watchdog_usec);
    sd_event_add_signal(ev, NULL, SIGTERM, on_stop_signal, d);
    sd_event_add_signal(ev, NULL, SIGINT, on_stop_signal, d);
    sd_event_add_signal(ev, NULL, SIGHUP, on_hup, d);
    uint64_t now;
    sd_event_now(ev, CLOCK_MONOTONIC, &now);
    sd_event_add_time(ev, NULL, CLOCK_MONOTONIC, now + 1000000, 100000, on_tick, d);
    /* Watched always (cheap); acted on only while config.watch is true, so that turning it on
     * in a reload takes effect. */
    sd_event_add_time(ev, &d->watch_timer, CLOCK_MONOTONIC, UINT64_MAX, 100000, on_watch_timer, d);
    sd_event_source_set_enabled(d->watch_timer, SD_EVENT_OFF);
    const uint32_t mask = IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE | IN_CREATE;
    char *dir = strdup(d->path);
    char *slash = dir ? strrchr(dir, '/') : NULL;
    if (slash)
        *slash = '\0';
    sd_event_add_inotify(ev, NULL, slash ? (*dir ? dir : "/") : ".", mask, on_inotify, d);
    if (d->cfg->dropin_dir)
        sd_event_add_inotify(ev, NULL, d->cfg->dropin_dir, mask, on_inotify, d);
    free(dir);

    ib_config_hash_hex(d->cfg, d->hash);
    d->applied_at_ms = ib_now_ms();
    if (d->cfg->dropin_dir && d->cfg->remote.file) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", d->cfg->dropin_dir, d->cfg->remote.file);
        d->remote_version = ib_remote_file_version(path);
    }
    pthread_mutex_init(&d->mbox_mu, NULL);
    d->mbox_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (d->mbox_fd >= 0) {
        sd_event_add_io(ev, NULL, d->mbox_fd, EPOLLIN, on_mbox, d);
        ib_gateway_set_remote_handler(d->gw, on_remote_message, d);
    }
    if (ib_gateway_start(d->gw) < 0) {
        sd_event_unref(ev);
        return 1;
    }
    publish_config_status(d, "applied", d->applied_at_ms, NULL);
    if (d->cfg->n_connections == 0)
        ib_notice("no connections configured in %s: idle. See the examples in %s and "
                  "ironbridge.yaml(5)",
                  d->cfg->file, IB_EXAMPLES_DIR);
    else
        ib_info("ironbridge %s started: gateway %s, %zu connections, %zu devices, %zu tags, "
                "configuration sha256 %.12s",
                IB_VERSION, d->cfg->gateway_id, d->cfg->n_connections, d->cfg->n_devices,
                d->cfg->n_tags, d->hash);
    set_idle_or_clear(d);
    sd_notify(0, "READY=1");
    r = sd_event_loop(ev);
    ib_gateway_stop(d->gw);
    free(d->mbox);
    if (d->mbox_fd >= 0)
        close(d->mbox_fd);
    ib_info("stopped");
    sd_event_unref(ev);
    return r < 0 ? 1 : 0;
}

/* --sign-config: the operator's side of remote_config (docs/remote-config.md). */
static int sign_config(const struct opts *o)
{
    FILE *f = fopen(o->sign_file, "rb");
    if (!f) {
        fprintf(stderr, "ironbridge: cannot read %s: %s\n", o->sign_file, strerror(errno));
        return EXIT_USAGE;
    }
    struct ib_buf body = {0}, out = {0};
    char chunk[8192];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        ib_buf_append(&body, chunk, n);
    fclose(f);
    char err[512];
    int rc = ib_remote_sign(body.p ? body.p : "", body.len, o->sign_version, o->sign_key, &out, err,
                            sizeof err);
    if (rc == 0)
        fwrite(out.p, 1, out.len, stdout);
    else
        fprintf(stderr, "ironbridge: %s\n", err);
    ib_buf_free(&body);
    ib_buf_free(&out);
    return rc == 0 ? 0 : EXIT_USAGE;
}

int main(int argc, char **argv)
{
    struct opts o = {0};
    if (parse_args(argc, argv, &o) < 0)
        return EXIT_USAGE;
    ib_log_init(o.log_level >= 0 ? o.log_level : IB_LOG_INFO);
    if (o.sign_file)
        return sign_config(&o);

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
        struct list_opts lo = {.only = o.list_only, .markdown = o.markdown};
        ib_plugins_scan(plugins, list_one, &lo);
        ib_plugins_free(plugins);
        if (lo.only && !lo.shown) {
            fprintf(stderr, "ironbridge: no plugin '%s' in %s\n", lo.only,
                    pdir ? pdir : ib_plugins_default_dir());
            return EXIT_CONFIG;
        }
        return lo.bad ? EXIT_CONFIG : 0;
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
    /* Loading freed its YAML trees; glibc keeps freed heap pages until asked. (At start the
     * gateway's allocations mostly reuse them; after a reload this matters: see apply().) */
    malloc_trim(0);

    int rc = 0;
    if (o.check) {
        char hash[65];
        ib_config_hash_hex(cfg, hash);
        printf("%s: valid: %zu file%s, gateway %s, %zu connections, %zu devices, %zu groups, "
               "%zu tags, config sha256 %s\n",
               o.config, cfg->n_files, cfg->n_files == 1 ? "" : "s", cfg->gateway_id,
               cfg->n_connections, cfg->n_devices, cfg->n_groups, cfg->n_tags, hash);
    } else if (o.once) {
        ib_gateway_once(gw, stdout);
    } else {
        struct daemon d = {.gw = gw,
                           .cfg = ib_config_ref(cfg),
                           .path = o.config,
                           .plugins = plugins,
                           .fixed_log_level = o.log_level >= 0};
        rc = run_daemon(&d);
        ib_config_free(d.cfg);
    }
    ib_gateway_free(gw);
    ib_config_free(cfg);
    ib_plugins_free(plugins);
    ib_diag_free(&diag);
    return rc;
}
