/* Applying configurations on the running daemon: a reload (SIGHUP, the file watch) and a signed
 * document from the config topic, each loaded beside the running configuration while the
 * watchdog is kept fed, applied or refused, and reported on the config-status topic. */
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <systemd/sd-daemon.h>

#include "config_hash.h"
#include "daemon.h"
#include "ib_build_config.h"
#include "json.h"
#include "log.h"

void ib_daemon_publish_status(struct ib_daemon *d, const char *result, int64_t attempted_ms,
                              const struct ib_diag *errors)
{
    struct ib_buf b = {0};
    int rc = ib_buf_puts(&b, "{\"version\":");
    rc |= ib_json_cstr(&b, IB_VERSION);
    rc |= ib_buf_puts(&b, ",\"hash\":");
    rc |= ib_json_cstr(&b, d->hash);
    rc |= ib_buf_puts(&b, ",\"applied_at\":");
    rc |= ib_json_int(&b, d->applied_at_ms);
    rc |= ib_buf_puts(&b, ",\"files\":");
    rc |= ib_json_uint(&b, d->cfg->n_files);
    rc |= ib_buf_puts(&b, ",\"remote_version\":");
    rc |= ib_json_uint(&b, d->tree.remote_version);
    rc |= ib_buf_puts(&b, ",\"result\":");
    rc |= ib_json_cstr(&b, result);
    rc |= ib_buf_puts(&b, ",\"attempted_at\":");
    rc |= ib_json_int(&b, attempted_ms);
    rc |= ib_buf_puts(&b, ",\"errors\":[");
    for (size_t i = 0; errors && i < errors->n && i < 50; i++) {
        if (i)
            rc |= ib_buf_puts(&b, ",");
        rc |= ib_json_cstr(&b, errors->msgs[i]);
    }
    rc |= ib_buf_puts(&b, "]}");
    if (!rc)
        ib_gateway_set_config_status(d->gw, b.p);
    ib_buf_free(&b);
}

static void set_status(struct ib_daemon *d, int64_t for_ms, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_status(struct ib_daemon *d, int64_t for_ms, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(d->status, sizeof d->status, fmt, ap);
    va_end(ap);
    d->status_until_ms = for_ms ? ib_monotonic_ms() + for_ms : INT64_MAX;
    sd_notifyf(0, "STATUS=%s", d->status);
}

void ib_daemon_set_idle_or_clear(struct ib_daemon *d)
{
    if (d->cfg->n_connections == 0)
        set_status(d, 0,
                   "idle: nothing configured yet in %s; examples in %s, reference: man "
                   "ironbridge.yaml",
                   d->cfg->file, IB_EXAMPLES_DIR);
    else
        d->status[0] = '\0';
}

static void rejected(struct ib_daemon *d, const char *why, struct ib_diag *diag, int64_t attempted)
{
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
    ib_daemon_publish_status(d, "rejected", attempted, diag);
}

/* Apply `next` (loaded from the tree `info`, errors so far in `diag`; NULL when it did not
 * load) or report why not. Takes `next`. Returns 0 if applied. */
static int apply_config(struct ib_daemon *d, const char *why, struct ib_config *next,
                        const struct ib_tree_info *info, struct ib_diag *diag, int64_t attempted)
{
    struct ib_reload_summary sum;
    if (!next || ib_gateway_reload(d->gw, next, diag, &sum) < 0) {
        rejected(d, why, diag, attempted);
        ib_config_free(next);
        return -1;
    }
    ib_config_free(d->cfg);
    d->cfg = next; /* our reference; the gateway holds its own */
    d->tree = *info;
    char old[65];
    memcpy(old, d->hash, sizeof old);
    ib_config_hash_hex(next, d->hash);
    ib_observe_reload(d->obs, next, d->hash);
    d->applied_at_ms = attempted;
    if (!d->fixed_log_level)
        ib_log_set_level(next->log_level);
    ib_notice("configuration applied (%s): sha256 %.12s (was %.12s); connections: %zu kept "
              "running, %zu restarted, %zu added, %zu removed; north %s",
              why, d->hash, old, sum.kept, sum.restarted, sum.added, sum.removed,
              sum.north_restarted ? "reconnected" : "unchanged");
    ib_daemon_set_idle_or_clear(d);
    ib_daemon_publish_status(d, "applied", attempted, NULL);
    return 0;
}

/* ---- loading beside the running configuration, the watchdog fed -------------------------- */

struct load_job {
    struct ib_daemon *d;
    const struct ib_tree_doc *doc;
    struct ib_diag *diag;
    struct ib_tree_info *info;
    struct ib_config *cfg;
};

static void *load_main(void *arg)
{
    struct load_job *j = arg;
    j->cfg = ib_tree_load(j->d->path, j->d->plugins, j->diag, j->doc, j->info);
    return NULL;
}

/* A big tree takes seconds to load, longer than the main loop may stay away from the watchdog
 * (WatchdogSec=30s): it is loaded on a thread of its own while this one keeps feeding the
 * watchdog (only while the pollers are healthy, as ever) and waits. Nothing else touches the
 * plugin registry meanwhile: the main loop is here. */
static struct ib_config *load_watched(struct ib_daemon *d, const struct ib_tree_doc *doc,
                                      struct ib_diag *diag, struct ib_tree_info *info)
{
    struct load_job j = {.d = d, .doc = doc, .diag = diag, .info = info};
    pthread_t t;
    pthread_attr_t at;
    pthread_attr_init(&at);
    pthread_attr_setstacksize(&at, 8 * 1024 * 1024);
    int rc = pthread_create(&t, &at, load_main, &j);
    pthread_attr_destroy(&at);
    if (rc != 0) {
        load_main(&j); /* no thread: load here, as before */
        return j.cfg;
    }
    ib_thread_name(t, "load", NULL);
    int64_t period_ms = d->watchdog_usec ? (int64_t)(d->watchdog_usec / 3000) : 1000;
    if (period_ms > 1000)
        period_ms = 1000;
    for (;;) {
        struct timespec dl;
        clock_gettime(CLOCK_REALTIME, &dl); /* pthread_timedjoin_np's clock */
        dl.tv_sec += period_ms / 1000;
        dl.tv_nsec += (period_ms % 1000) * 1000000L;
        if (dl.tv_nsec >= 1000000000L) {
            dl.tv_sec++;
            dl.tv_nsec -= 1000000000L;
        }
        if (pthread_timedjoin_np(t, NULL, &dl) == 0)
            return j.cfg;
        ib_gateway_supervise(d->gw);
        ib_daemon_feed_watchdog(d);
    }
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

void ib_daemon_reload(struct ib_daemon *d, const char *why)
{
    notify_reloading(why);
    ib_notice("reloading the configuration (%s)", why);
    int64_t attempted = ib_now_ms();
    struct ib_diag diag = {0};
    struct ib_tree_info info;
    struct ib_config *next = load_watched(d, NULL, &diag, &info);
    apply_config(d, why, next, &info, &diag, attempted);
    ib_diag_free(&diag);
    /* The load freed its YAML trees, and what was replaced or refused (a configuration,
     * pollers) is gone too: give the pages back, which glibc keeps otherwise. */
    malloc_trim(0);
    sd_notify(0, "READY=1");
}

/* ---- signed documents ------------------------------------------------------------------- */

static void refuse(struct ib_daemon *d, struct ib_diag *diag, int64_t attempted)
{
    ib_log(IB_LOG_ERR, NULL, NULL, NULL, "%s", diag->msgs[0]);
    ib_daemon_publish_status(d, "rejected", attempted, diag);
}

/* Put back what `info->remote_path` held before a document that was kept but not applied. */
static void restore_kept(const struct ib_tree_info *info, const struct ib_remote_stored *prev,
                         int had)
{
    int rc;
    if (had == 1 && strcmp(prev->path, info->remote_path) == 0) {
        rc = ib_remote_write_text(prev->path, prev->text.p, prev->text.len);
    } else {
        rc = unlink(info->remote_path);
        if (rc == 0) /* and the directory made durable */
            rc = ib_remote_stored_prune(info->remote_dir, had == 1 ? prev->name : "");
    }
    if (rc < 0)
        ib_log(IB_LOG_ERR, NULL, NULL, NULL,
               "could not put back the previous signed document in %s (%s): check it before "
               "the next restart",
               info->remote_dir, strerror(errno));
}

/* Validated: keep it durably, then apply it; if it cannot be kept it is not applied, and if it
 * is not applied the previous one is put back. So `applied` is said only of a document a
 * restart finds again. */
static void keep_and_apply(struct ib_daemon *d, const struct ib_signed_doc *doc,
                           struct ib_config *next, struct ib_tree_info *info, struct ib_diag *diag,
                           int64_t attempted)
{
    struct ib_remote_stored prev = {0};
    char err[4600];
    int had = ib_remote_stored_read(info->remote_dir, &prev, err, sizeof err);
    if (ib_remote_write_file(info->remote_path, doc->version, doc->body, doc->body_len) < 0) {
        ib_diag_add(diag, NULL, NULL,
                    "remote configuration refused: version %llu could not be kept in %s (%s), "
                    "so it is not applied",
                    (unsigned long long)doc->version, info->remote_path, strerror(errno));
        ib_config_free(next);
        refuse(d, diag, attempted);
    } else {
        char why[64];
        snprintf(why, sizeof why, "signed configuration version %llu",
                 (unsigned long long)doc->version);
        if (apply_config(d, why, next, info, diag, attempted) == 0)
            ib_remote_stored_prune(info->remote_dir, d->cfg->remote.file);
        else
            restore_kept(info, &prev, had);
    }
    ib_remote_stored_free(&prev);
}

void ib_daemon_remote(struct ib_daemon *d, const char *msg, size_t len)
{
    if (!d->cfg->remote.enabled)
        return;
    int64_t attempted = ib_now_ms();
    struct ib_diag diag = {0};
    struct ib_signed_doc doc;
    char err[512];
    if (ib_remote_verify(msg, len, d->cfg->remote.public_key, &doc, err, sizeof err) < 0) {
        ib_diag_add(&diag, NULL, NULL, "remote configuration refused: %s", err);
    } else if (doc.version <= d->tree.remote_version) {
        ib_diag_add(&diag, NULL, NULL,
                    "remote configuration refused: version %llu is not newer than the applied "
                    "version %llu (a replay?)",
                    (unsigned long long)doc.version, (unsigned long long)d->tree.remote_version);
    }
    if (diag.n) {
        refuse(d, &diag, attempted);
        ib_diag_free(&diag);
        return;
    }
    notify_reloading("signed configuration received");
    struct ib_buf text = {0};
    ib_remote_file_text(doc.version, doc.body, doc.body_len, &text);
    struct ib_tree_doc td = {
        .name = d->cfg->remote.file, .text = text.p ? text.p : "", .version = doc.version};
    struct ib_tree_info info;
    struct ib_config *next = load_watched(d, &td, &diag, &info);
    /* The version counts as seen only if applied: a refused document may be fixed and resent
     * with the same version. */
    if (!next)
        apply_config(d, "signed configuration", NULL, &info, &diag, attempted);
    else
        keep_and_apply(d, &doc, next, &info, &diag, attempted);
    ib_buf_free(&text);
    ib_diag_free(&diag);
    malloc_trim(0);
    sd_notify(0, "READY=1");
}

void ib_daemon_remote_overflow(struct ib_daemon *d, uint64_t n)
{
    struct ib_diag diag = {0};
    ib_diag_add(&diag, NULL, NULL,
                "remote configuration refused: %llu message%s arrived while %d were waiting to "
                "be applied; send %s again",
                (unsigned long long)n, n == 1 ? "" : "s", IB_REMOTE_MAILBOX_SLOTS,
                n == 1 ? "it" : "them");
    refuse(d, &diag, ib_now_ms());
    ib_diag_free(&diag);
}
