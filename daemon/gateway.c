/* The running gateway: the host table given to plugins, one poller thread per connection that
 * schedules its groups by deadline, normalizes and encodes each poll and queues it for the north.
 */
#include "gateway.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config_hash.h"
#include "json.h"
#include "log.h"
#include "north.h"
#include "record.h"
#include "report.h"
#include "store.h"
#include "topic.h"
#include "util.h"

/* The daemon's side of a plugin instance. */
struct ib_host_ctx {
    const char *conn;
    struct ib_diag *diag; /* during create() only */
    struct ib_ratelimit rl;
};

struct group_rt {
    uint32_t dev, grp;
    const char *dev_name;
    const struct ib_group_config *g;
    const struct ib_cfg_group *cg;
    struct ib_sample *raw;  /* filled by the plugin */
    struct ib_sample *norm; /* after scaling */
    struct ib_group_enc enc;
    struct ib_buf body;
    struct ib_report_state *rs; /* per tag: what was last sent */
    uint32_t *send_idx;         /* per poll: the tags to send */
    char **tag_topics;          /* layout tag: per tag */
    char *topic;                /* layout batch (with a north) */
    int64_t next_due;
    int64_t last_poll_ms; /* monotonic start of its last poll */
    int last_rc;
    uint8_t last_reason;
    /* main thread (the supervisor) only: the bad samples it publishes for a stalled call, made
     * at the group's first stall (most groups never stall) */
    struct ib_sample *stall_samples;
    uint32_t *all_idx; /* 0 .. n_tags-1 */
    struct ib_buf stall_body;
};

/* Which plugin callback a poller is in, for the supervisor's message. */
enum plugin_call { CALL_NONE = 0, CALL_OPEN, CALL_READ, CALL_CLOSE };
static const char *const call_names[] = {"-", "open()", "read_group()", "close()"};

struct poller {
    struct ib_gateway *gw;
    struct ib_config *cfg; /* the generation this poller was built from (a reference) */
    unsigned char digest[IB_DIGEST_LEN];
    const struct ib_cfg_connection *cc;
    const struct ib_plugin *p;
    void *inst;
    struct ib_host_ctx hctx;
    struct group_rt *groups;
    size_t n_groups;

    pthread_t thread;
    bool running;
    pthread_mutex_t mu; /* guards stop, with cv to wake the sleeping poller */
    pthread_cond_t cv;
    bool stop;

    _Atomic int64_t heartbeat_ms;
    atomic_bool up;
    atomic_uint_fast64_t values;

    /* The deadline of plugin calls (docs/isolation.md): the poller stores when a call began
     * (monotonic ms, > 0) and which; 0 when it is in none. The supervisor (main thread) marks
     * a call past cc->call_timeout_ms stalled by negating the start with a compare-and-swap,
     * and the poller's exchange back to 0 sees the mark: one word, so a call that returns
     * just as it is marked is either marked and told, or not marked at all. */
    _Atomic int64_t call_since_ms;
    atomic_int call_what; /* enum plugin_call */
    bool abandoned; /* stopped while stalled: never joined nor freed (its thread may resume) */

    /* poller thread only: */
    bool open;
    unsigned open_failures;
    unsigned opens; /* attempts to open, ever */
    int64_t next_open_ms;
    uint64_t rng;
};

struct ib_gateway {
    struct ib_config *cfg; /* the configuration applied last (a reference) */
    struct ib_host host;
    struct poller **pollers;
    size_t n_pollers;
    struct ib_config *north_cfg; /* the generation the north's settings point into */
    char *config_status;         /* retained config-status payload, republished on connect */
    ib_north_msg_fn remote_fn;   /* receives signed configuration documents */
    void *remote_ud;
    struct ib_store *store; /* opened with the first north; stays across reloads */
    struct ib_north *north;
    bool running;
    int64_t rate_t0;
    uint64_t rate_v0;
    uint64_t values_retired; /* values polled by pollers a reload stopped */
    double rate;
};

/* ---- the host table -------------------------------------------------------------------------- */

static void host_log(struct ib_host_ctx *ctx, int level, const char *dev, const char *tag,
                     const char *fmt, ...)
{
    /* Warnings and errors from a plugin are rate-limited per instance: a dead device must not
     * flood the journal. */
    int sup = 0;
    if (level <= IB_LOG_WARNING && (sup = ib_ratelimit_ok(&ctx->rl, ib_monotonic_ms())) < 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    ib_logv(level, ctx->conn, dev, tag, fmt, ap);
    va_end(ap);
    if (sup > 0)
        ib_log(IB_LOG_NOTICE, ctx->conn, dev, tag, "(%d similar messages suppressed)", sup);
}

static void host_config_error(struct ib_host_ctx *ctx, const void *where, const char *key,
                              const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (ctx->diag) {
        ib_diag_addv(ctx->diag, ib_config_where(where), key, fmt, ap);
    } else {
        /* Outside create() there is no one to report to but the log. */
        ib_logv(IB_LOG_ERR, ctx->conn, NULL, NULL, fmt, ap);
    }
    va_end(ap);
}

/* ---- polling --------------------------------------------------------------------------------- */

static void fill_bad(struct group_rt *g, int64_t ts, uint8_t reason)
{
    for (uint32_t i = 0; i < g->g->n_tags; i++)
        ib_sample_bad(&g->raw[i], ts, reason, 0);
}

static bool poller_stalled(struct poller *p)
{
    return atomic_load(&p->call_since_ms) < 0;
}

static void call_begin(struct poller *p, enum plugin_call what)
{
    atomic_store(&p->call_what, (int)what);
    int64_t now = ib_monotonic_ms();
    atomic_store(&p->call_since_ms, now > 0 ? now : 1);
}

static void call_end(struct poller *p)
{
    int64_t since = atomic_exchange(&p->call_since_ms, 0);
    int what = atomic_load(&p->call_what);
    if (since >= 0)
        return;
    since = -since;
    ib_log(IB_LOG_NOTICE, p->cc->pub.name, NULL, NULL,
           "plugin '%s' returned from %s after %lld ms (past its call_timeout of %lld ms); the "
           "connection polls again",
           p->p->name, call_names[what], (long long)(ib_monotonic_ms() - since),
           (long long)p->cc->call_timeout_ms);
    /* The supervisor reported every tag bad: report the next poll in full, whatever the
     * reporting mode, so that consumers see the tags come back. */
    int64_t now = ib_monotonic_ms();
    for (size_t i = 0; i < p->n_groups; i++)
        for (uint32_t t = 0; t < p->groups[i].g->n_tags; t++) {
            ib_report_state_free(&p->groups[i].rs[t]);
            ib_report_state_init(&p->groups[i].rs[t], now);
        }
}

static int plugin_open(struct poller *p)
{
    call_begin(p, CALL_OPEN);
    int rc = p->p->open(p->inst);
    call_end(p);
    return rc;
}

static void plugin_close(struct poller *p)
{
    call_begin(p, CALL_CLOSE);
    p->p->close(p->inst);
    call_end(p);
}

static void ensure_open(struct poller *p, int64_t now)
{
    if (p->open || now < p->next_open_ms)
        return;
    p->opens++;
    int rc = plugin_open(p);
    if (rc == 0) {
        p->open = true;
        atomic_store(&p->up, true);
        if (p->open_failures)
            ib_log(IB_LOG_NOTICE, p->cc->pub.name, NULL, NULL,
                   "connection re-established after %u failed attempts", p->open_failures);
        else
            ib_log(IB_LOG_INFO, p->cc->pub.name, NULL, NULL, "connection open");
        p->open_failures = 0;
        return;
    }
    int64_t delay = ib_backoff_ms(500, 30000, p->open_failures, &p->rng);
    p->open_failures++;
    p->next_open_ms = ib_monotonic_ms() + delay;
    if (p->open_failures == 1)
        ib_log(IB_LOG_WARNING, p->cc->pub.name, NULL, NULL,
               "cannot open the connection (%s); its tags are reported bad (connection_lost) "
               "and it is retried with back-off up to 30 s",
               ib_strerror(rc));
}

/* One poll of one group: raw samples from the plugin, normalized into g->norm. */
static int poll_group(struct poller *p, struct group_rt *g)
{
    int64_t now = ib_monotonic_ms();
    ensure_open(p, now);
    int rc;
    /* A plugin that forgets a sample must not publish the previous poll's value as new. */
    fill_bad(g, ib_now_ms(), IB_R_INTERNAL);
    if (p->open) {
        call_begin(p, CALL_READ);
        rc = p->p->read_group(p->inst, g->dev, g->grp, g->raw);
        call_end(p);
        if (rc == IB_ERR_CONNECTION) {
            plugin_close(p);
            p->open = false;
            atomic_store(&p->up, false);
            p->next_open_ms = 0; /* try once right away at the next poll, then back off */
            ib_log(IB_LOG_WARNING, p->cc->pub.name, NULL, NULL,
                   "connection lost while reading %s/%s; reopening", g->dev_name, g->g->name);
        }
    } else {
        fill_bad(g, ib_now_ms(), IB_R_CONN_LOST);
        rc = IB_ERR_CONNECTION;
    }
    uint8_t reason = IB_R_NONE;
    uint32_t bad = 0;
    for (uint32_t i = 0; i < g->g->n_tags; i++) {
        ib_normalize(&g->cg->tags[i], &g->raw[i], &g->norm[i]);
        if (g->norm[i].quality != IB_Q_GOOD) {
            if (!bad)
                reason = g->norm[i].reason;
            bad++;
        }
    }
    /* Log changes of a group's health, not every failing poll. */
    if (reason != g->last_reason || (rc != 0) != (g->last_rc != 0)) {
        if (bad)
            ib_log(IB_LOG_WARNING, p->cc->pub.name, g->dev_name, NULL,
                   "group %s: %u of %u tags bad (first reason: %s)", g->g->name, bad, g->g->n_tags,
                   ib_reason_name(reason));
        else
            ib_log(IB_LOG_NOTICE, p->cc->pub.name, g->dev_name, NULL,
                   "group %s: all %u tags good again", g->g->name, g->g->n_tags);
    }
    g->last_rc = bad ? (rc ? rc : IB_ERR_PROTOCOL) : 0;
    g->last_reason = reason;
    return rc;
}

/* Decide which tags to report (docs/reporting.md) and queue the record(s): one message with
 * those tags (layout batch; none if nothing is to be reported) or one per tag (layout tag). */
static void publish_group(struct poller *p, struct group_rt *g, int64_t poll_ts)
{
    atomic_fetch_add(&p->values, g->g->n_tags);
    int64_t now = ib_monotonic_ms();
    uint32_t n = 0;
    for (uint32_t i = 0; i < g->g->n_tags; i++)
        if (ib_report_decide(&g->cg->tags[i].report, &g->rs[i], &g->norm[i], now,
                             g->cg->stale_after_ms))
            g->send_idx[n++] = i;
    if (n == 0)
        return;
    if (!g->tag_topics) {
        if (ib_record_encode(&g->body, &g->enc, poll_ts, g->norm, g->send_idx, n) < 0)
            goto oom;
        ib_store_push(p->gw->store, g->topic, ib_record_seq_head, NULL, g->body.p, g->body.len);
        return;
    }
    for (uint32_t k = 0; k < n; k++) {
        uint32_t i = g->send_idx[k];
        if (ib_record_encode_tag(&g->body, &g->enc, i, &g->norm[i]) < 0)
            goto oom;
        ib_store_push(p->gw->store, g->tag_topics[i], ib_record_seq_head, NULL, g->body.p,
                      g->body.len);
    }
    return;
oom:
    ib_log(IB_LOG_ERR, p->cc->pub.name, g->dev_name, NULL,
           "out of memory encoding group %s; this poll is lost", g->g->name);
}

/* A continuous group whose poll failed (no connection, a unit backed off) waits this long
 * instead of spinning on failures. */
#define CONTINUOUS_RETRY_MS 100
/* A continuous group does not outrun the north: while more than this many records wait to be
 * sent, it waits in steps of CONTINUOUS_HOLD_STEP_MS, but at most CONTINUOUS_RETRY_MS after its
 * previous poll (so that it keeps collecting, into the store, while the broker is away). */
#define CONTINUOUS_MAX_UNSENT   8
#define CONTINUOUS_HOLD_STEP_MS 2

static bool continuous_held(struct poller *p, const struct group_rt *g, int64_t now)
{
    return g->g->interval_ms == 0 && now - g->last_poll_ms < CONTINUOUS_RETRY_MS &&
           ib_store_unsent(p->gw->store) > CONTINUOUS_MAX_UNSENT;
}

static void *poller_main(void *arg)
{
    struct poller *p = arg;
    unsigned trimmed = 0; /* p->opens when the stack was last trimmed */
    int64_t start = ib_monotonic_ms();
    for (size_t i = 0; i < p->n_groups; i++)
        p->groups[i].next_due = start;
    pthread_mutex_lock(&p->mu);
    while (!p->stop) {
        pthread_mutex_unlock(&p->mu);
        int64_t now = ib_monotonic_ms();
        atomic_store(&p->heartbeat_ms, now);
        struct group_rt *g = &p->groups[0];
        for (size_t i = 1; i < p->n_groups; i++)
            if (p->groups[i].next_due < g->next_due)
                g = &p->groups[i];
        int64_t wait = g->next_due - now;
        if (wait <= 0 && continuous_held(p, g, now)) {
            g->next_due = now + CONTINUOUS_HOLD_STEP_MS; /* another group may be due meanwhile */
            pthread_mutex_lock(&p->mu);
            continue;
        }
        if (wait <= 0) {
            g->last_poll_ms = now;
            int64_t ts = ib_now_ms();
            int rc = poll_group(p, g);
            publish_group(p, g, ts);
            int64_t after = ib_monotonic_ms();
            /* Keep the phase; a poll that overran skips the missed cycles rather than bunching.
             * A continuous group (interval 0) is due again at once, behind any group that was
             * due before it finished; after a failed poll, in CONTINUOUS_RETRY_MS. */
            int64_t iv = g->g->interval_ms;
            if (iv == 0)
                g->next_due = after + (rc != 0 ? CONTINUOUS_RETRY_MS : 0);
            else if ((g->next_due += iv) <= after)
                g->next_due += ((after - g->next_due) / iv + 1) * iv;
            pthread_mutex_lock(&p->mu);
            continue;
        }
        /* Opening a connection runs deep (libmodbus resolves the host with getaddrinfo): give
         * back the stack pages that only it touched, 4 KiB per poller otherwise kept. */
        if (p->opens != trimmed) {
            ib_stack_trim();
            trimmed = p->opens;
        }
        /* Sleep at most 1 s so that the heartbeat stays fresh for the watchdog. */
        if (wait > 1000)
            wait = 1000;
        struct timespec dl = ib_deadline_ms(wait);
        pthread_mutex_lock(&p->mu);
        if (!p->stop)
            pthread_cond_timedwait(&p->cv, &p->mu, &dl);
    }
    pthread_mutex_unlock(&p->mu);
    if (p->open) {
        plugin_close(p);
        p->open = false;
        atomic_store(&p->up, false);
    }
    return NULL;
}

/* ---- building ----------------------------------------------------------------------------- */

static void poller_free(struct poller *p)
{
    if (!p)
        return;
    if (p->inst)
        p->p->destroy(p->inst);
    p->inst = NULL;
    for (size_t i = 0; i < p->n_groups; i++) {
        struct group_rt *g = &p->groups[i];
        for (uint32_t t = 0; g->g && t < g->g->n_tags; t++) {
            if (g->rs)
                ib_report_state_free(&g->rs[t]);
            if (g->tag_topics)
                free(g->tag_topics[t]);
        }
        free(g->rs);
        free(g->stall_samples);
        free(g->all_idx);
        ib_buf_free(&g->stall_body);
        free(g->send_idx);
        free(g->tag_topics);
        free(g->topic);
        free(g->raw);
        free(g->norm);
        ib_group_enc_free(&g->enc);
        ib_buf_free(&g->body);
    }
    free(p->groups);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    ib_config_free(p->cfg);
    free(p);
}

static int poller_build(struct poller *p, struct ib_diag *diag)
{
    const struct ib_config *cfg = p->cfg;
    const struct ib_cfg_connection *cc = p->cc;
    size_t ng = 0;
    for (uint32_t d = 0; d < cc->pub.n_devices; d++)
        ng += cc->pub.devices[d].n_groups;
    p->groups = calloc(ng ? ng : 1, sizeof *p->groups);
    if (!p->groups)
        return -1;
    size_t k = 0;
    int64_t now = ib_monotonic_ms();
    for (uint32_t d = 0; d < cc->pub.n_devices; d++) {
        const struct ib_device_config *dc = &cc->pub.devices[d];
        for (uint32_t gi = 0; gi < dc->n_groups; gi++, k++) {
            struct group_rt *g = &p->groups[k];
            p->n_groups = k + 1;
            g->dev = d;
            g->grp = gi;
            g->dev_name = dc->name;
            g->g = &dc->groups[gi];
            g->cg = &cc->devices[d].groups[gi];
            g->raw = calloc(g->g->n_tags, sizeof *g->raw);
            g->norm = calloc(g->g->n_tags, sizeof *g->norm);
            g->rs = calloc(g->g->n_tags, sizeof *g->rs);
            g->send_idx = calloc(g->g->n_tags, sizeof *g->send_idx);
            if (!g->raw || !g->norm || !g->rs || !g->send_idx ||
                ib_group_enc_init(&g->enc, cfg->gateway_id, cc->pub.name, dc->name,
                                  cc->devices[d].meta_json, g->g, g->cg))
                return -1;
            for (uint32_t t = 0; t < g->g->n_tags; t++)
                ib_report_state_init(&g->rs[t], now);
            if (!cfg->has_north)
                continue;
            struct ib_topic_vars v = {.gateway = cfg->gateway_id,
                                      .connection = cc->pub.name,
                                      .device = dc->name,
                                      .group = g->g->name};
            if (cfg->mqtt.layout != IB_LAYOUT_TAG) {
                char buf[512];
                if (ib_topic_expand(cfg->mqtt.topic, &v, buf, sizeof buf) < 0) {
                    ib_diag_add(diag, dc->where, NULL,
                                "the topic of group '%s' is longer than %zu bytes", g->g->name,
                                sizeof buf - 1);
                    return -1;
                }
                if (!(g->topic = strdup(buf)))
                    return -1;
                continue;
            }
            g->tag_topics = calloc(g->g->n_tags, sizeof *g->tag_topics);
            if (!g->tag_topics)
                return -1;
            for (uint32_t t = 0; t < g->g->n_tags; t++) {
                char buf[1024];
                v.tag = g->g->tags[t].name;
                if (ib_topic_expand(cfg->mqtt.topic, &v, buf, sizeof buf) < 0 ||
                    !(g->tag_topics[t] = strdup(buf))) {
                    ib_diag_add(diag, g->g->tags[t].where, NULL,
                                "the topic of tag '%s' is longer than %zu bytes",
                                g->g->tags[t].name, sizeof buf - 1);
                    return -1;
                }
            }
        }
    }
    return 0;
}

/* A poller for connection `ci` of `cfg`, its plugin instance created (no I/O), not started.
 * Errors (the plugin's too) go to `diag`; NULL then. */
static struct poller *poller_new(struct ib_gateway *gw, struct ib_config *cfg, size_t ci,
                                 struct ib_diag *diag)
{
    struct poller *p = calloc(1, sizeof *p);
    if (!p) {
        ib_diag_add(diag, NULL, NULL, "out of memory");
        return NULL;
    }
    const struct ib_cfg_connection *cc = &cfg->connections[ci];
    p->gw = gw;
    p->cfg = ib_config_ref(cfg);
    ib_config_conn_digest(cfg, ci, p->digest);
    p->cc = cc;
    p->p = cc->plugin;
    p->hctx.conn = cc->pub.name;
    p->hctx.rl = (struct ib_ratelimit)IB_RATELIMIT_INIT(60000, 20);
    p->rng = (uint64_t)ib_now_ms() ^ (uint64_t)(uintptr_t)p;
    pthread_mutex_init(&p->mu, NULL);
    ib_cond_init_monotonic(&p->cv);
    if (poller_build(p, diag) < 0) {
        poller_free(p);
        return NULL;
    }
    p->hctx.diag = diag;
    size_t before = diag->n;
    int rc = p->p->create(&gw->host, &p->hctx, &cc->pub, &p->inst);
    p->hctx.diag = NULL;
    if (rc != 0) {
        if (diag->n == before)
            ib_diag_add(diag, cc->where, NULL, "plugin '%s' refused the connection: %s", p->p->name,
                        ib_strerror(rc));
        p->inst = NULL;
        poller_free(p);
        return NULL;
    }
    return p;
}

static int poller_start(struct poller *p)
{
    atomic_store(&p->heartbeat_ms, ib_monotonic_ms());
    pthread_attr_t at;
    pthread_attr_init(&at);
    /* Poller stacks are sized explicitly: hundreds of connections must not reserve 8 MB each.
     * Plugins get 256 KiB, ample for libmodbus and decoding. */
    pthread_attr_setstacksize(&at, 256 * 1024);
    int rc = pthread_create(&p->thread, &at, poller_main, p);
    pthread_attr_destroy(&at);
    if (rc != 0) {
        ib_err("cannot start the poller of connection %s: %s", p->cc->pub.name, strerror(rc));
        return -1;
    }
    p->running = true;
    return 0;
}

static void poller_signal_stop(struct poller *p)
{
    pthread_mutex_lock(&p->mu);
    p->stop = true;
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

/* Join a stopped poller. One blocked in a plugin call past its call_timeout cannot be joined:
 * it is abandoned (its thread and memory left alone, for the call may still return) so that
 * stop and reload never hang on a plugin; the process stays correct, and the watchdog restarts
 * the service. Returns false then; the caller must not free it. */
static bool poller_join(struct poller *p)
{
    if (!p->running)
        return !p->abandoned;
    for (;;) {
        struct timespec dl;
        clock_gettime(CLOCK_REALTIME, &dl); /* pthread_timedjoin_np's clock */
        dl.tv_nsec += 100 * 1000000L;
        if (dl.tv_nsec >= 1000000000L) {
            dl.tv_sec++;
            dl.tv_nsec -= 1000000000L;
        }
        if (pthread_timedjoin_np(p->thread, NULL, &dl) == 0)
            break;
        int64_t since = atomic_load(&p->call_since_ms);
        if (since < 0 || (since > 0 && ib_monotonic_ms() - since > p->cc->call_timeout_ms)) {
            ib_log(IB_LOG_ERR, p->cc->pub.name, NULL, NULL,
                   "plugin '%s' is still blocked in %s: its poller is abandoned, not joined",
                   p->p->name, call_names[atomic_load(&p->call_what)]);
            pthread_detach(p->thread);
            p->running = false;
            p->abandoned = true;
            return false;
        }
    }
    p->running = false;
    return true;
}

struct ib_gateway *ib_gateway_create(struct ib_config *cfg, struct ib_diag *diag)
{
    struct ib_gateway *gw = calloc(1, sizeof *gw);
    if (!gw)
        return NULL;
    gw->cfg = ib_config_ref(cfg);
    gw->host = (struct ib_host){.abi_major = IB_ABI_MAJOR,
                                .abi_minor = IB_ABI_MINOR,
                                .size = sizeof(struct ib_host),
                                .log = host_log,
                                .config_error = host_config_error,
                                .now_ms = ib_now_ms,
                                .monotonic_ms = ib_monotonic_ms};
    gw->pollers = calloc(cfg->n_connections ? cfg->n_connections : 1, sizeof *gw->pollers);
    if (!gw->pollers) {
        ib_diag_add(diag, NULL, NULL, "out of memory");
        ib_gateway_free(gw);
        return NULL;
    }
    bool failed = false;
    for (size_t i = 0; i < cfg->n_connections; i++) {
        gw->pollers[gw->n_pollers] = poller_new(gw, cfg, i, diag);
        if (gw->pollers[gw->n_pollers])
            gw->n_pollers++;
        else
            failed = true; /* keep going: report every connection's errors */
    }
    if (failed) {
        ib_gateway_free(gw);
        return NULL;
    }
    return gw;
}

static int north_start(struct ib_gateway *gw, struct ib_config *cfg)
{
    if (!cfg->has_north)
        return 0;
    if (!gw->store && !(gw->store = ib_store_open(&cfg->store)))
        return -1; /* logged */
    gw->north_cfg = ib_config_ref(cfg);
    gw->north = ib_north_new(&cfg->mqtt, cfg->gateway_id, gw->store);
    if (gw->north && cfg->remote.enabled && gw->remote_fn) {
        char topic[512];
        struct ib_topic_vars v = {.gateway = cfg->gateway_id};
        if (ib_topic_expand(cfg->remote.topic, &v, topic, sizeof topic) > 0)
            ib_north_set_subscription(gw->north, topic, gw->remote_fn, gw->remote_ud);
    }
    if (!gw->north || ib_north_start(gw->north) < 0) {
        ib_err("cannot start the MQTT north");
        return -1;
    }
    if (gw->config_status)
        ib_north_set_config_status(gw->north, gw->config_status);
    return 0;
}

static void north_stop(struct ib_gateway *gw, bool flush)
{
    if (gw->north)
        ib_north_stop(gw->north, flush);
    ib_north_free(gw->north);
    gw->north = NULL;
    ib_config_free(gw->north_cfg);
    gw->north_cfg = NULL;
}

int ib_gateway_start(struct ib_gateway *gw)
{
    if (north_start(gw, gw->cfg) < 0)
        return -1;
    gw->running = true;
    for (size_t i = 0; i < gw->n_pollers; i++)
        if (poller_start(gw->pollers[i]) < 0)
            return -1;
    gw->rate_t0 = ib_monotonic_ms();
    return 0;
}

void ib_gateway_stop(struct ib_gateway *gw)
{
    if (!gw || !gw->running)
        return;
    for (size_t i = 0; i < gw->n_pollers; i++)
        poller_signal_stop(gw->pollers[i]);
    for (size_t i = 0; i < gw->n_pollers; i++)
        poller_join(gw->pollers[i]);
    if (gw->north)
        ib_north_stop(gw->north, true);
    gw->running = false;
}

void ib_gateway_free(struct ib_gateway *gw)
{
    if (!gw)
        return;
    ib_gateway_stop(gw);
    north_stop(gw, false);
    for (size_t i = 0; i < gw->n_pollers; i++)
        if (!gw->pollers[i]->abandoned)
            poller_free(gw->pollers[i]);
    free(gw->pollers);
    ib_store_close(gw->store);
    ib_config_free(gw->cfg);
    free(gw->config_status);
    free(gw);
}

int ib_gateway_reload(struct ib_gateway *gw, struct ib_config *next, struct ib_diag *diag,
                      struct ib_reload_summary *sum)
{
    memset(sum, 0, sizeof *sum);
    unsigned char a[IB_DIGEST_LEN], b[IB_DIGEST_LEN];
    ib_config_poller_digest(gw->cfg, a);
    ib_config_poller_digest(next, b);
    bool all_changed = memcmp(a, b, sizeof a) != 0;
    struct poller **np = calloc(next->n_connections ? next->n_connections : 1, sizeof *np);
    bool *kept = calloc(gw->n_pollers ? gw->n_pollers : 1, sizeof *kept);
    if (!np || !kept) {
        free(np);
        free(kept);
        ib_diag_add(diag, NULL, NULL, "out of memory");
        return -1;
    }
    /* 1. Build what changed beside what runs; on any error nothing has been touched. */
    bool failed = false;
    for (size_t j = 0; j < next->n_connections; j++) {
        unsigned char d[IB_DIGEST_LEN];
        ib_config_conn_digest(next, j, d);
        for (size_t i = 0; i < gw->n_pollers && !all_changed; i++)
            if (!kept[i] &&
                strcmp(gw->pollers[i]->cc->pub.name, next->connections[j].pub.name) == 0 &&
                memcmp(gw->pollers[i]->digest, d, sizeof d) == 0) {
                np[j] = gw->pollers[i];
                kept[i] = true;
                sum->kept++;
                break;
            }
        if (np[j])
            continue;
        np[j] = poller_new(gw, next, j, diag);
        if (!np[j])
            failed = true;
    }
    if (failed) {
        for (size_t j = 0; j < next->n_connections; j++)
            if (np[j] && np[j]->cfg == next) /* built now; the kept ones belong to gw */
                poller_free(np[j]);
        free(np);
        free(kept);
        return -1;
    }
    /* 2. Stop what goes (changed or removed): their last polls are queued before they stop. */
    for (size_t i = 0; i < gw->n_pollers; i++)
        if (!kept[i]) {
            poller_signal_stop(gw->pollers[i]);
            bool renamed = true;
            for (size_t j = 0; j < next->n_connections; j++)
                if (strcmp(gw->pollers[i]->cc->pub.name, next->connections[j].pub.name) == 0)
                    renamed = false;
            if (renamed)
                sum->removed++;
            else
                sum->restarted++;
        }
    for (size_t i = 0; i < gw->n_pollers; i++)
        if (!kept[i] && poller_join(gw->pollers[i])) {
            gw->values_retired += atomic_load(&gw->pollers[i]->values);
            poller_free(gw->pollers[i]);
        }
    /* 3. The store stays open with its settings and backlog; the north reconnects only if its
     * settings (or its certificate files) changed. */
    ib_config_store_digest(gw->cfg, a);
    ib_config_store_digest(next, b);
    if (gw->store && memcmp(a, b, sizeof a) != 0)
        ib_warn("store settings changed: they take effect at the next start of the daemon "
                "(the open store and its backlog stay across a reload)");
    ib_config_north_digest(gw->north_cfg ? gw->north_cfg : gw->cfg, a);
    ib_config_north_digest(next, b);
    if (memcmp(a, b, sizeof a) != 0 || !gw->north != !next->has_north) {
        north_stop(gw, false);
        if (gw->running && north_start(gw, next) < 0)
            ib_diag_add(diag, NULL, NULL, "the MQTT north could not be restarted");
        sum->north_restarted = true;
    }
    /* 4. Start what is new. */
    free(gw->pollers);
    gw->pollers = np;
    gw->n_pollers = next->n_connections;
    for (size_t j = 0; j < gw->n_pollers; j++)
        if (!np[j]->running && gw->running)
            poller_start(np[j]);
    sum->added = next->n_connections - sum->kept - sum->restarted;
    ib_config_free(gw->cfg);
    gw->cfg = ib_config_ref(next);
    free(kept);
    return 0;
}

void ib_gateway_set_remote_handler(struct ib_gateway *gw, ib_north_msg_fn fn, void *ud)
{
    gw->remote_fn = fn;
    gw->remote_ud = ud;
}

void ib_gateway_set_config_status(struct ib_gateway *gw, const char *json)
{
    free(gw->config_status);
    gw->config_status = json ? strdup(json) : NULL;
    if (gw->north && gw->config_status)
        ib_north_set_config_status(gw->north, gw->config_status);
}

/* ---- --once ---------------------------------------------------------------------------------- */

static void value_text(const struct ib_sample *s, char *buf, size_t len)
{
    if (s->quality != IB_Q_GOOD) {
        snprintf(buf, len, "-");
        return;
    }
    const struct ib_value *v = &s->value;
    switch (v->type) {
    case IB_V_BOOL:
        snprintf(buf, len, "%s", v->v.b ? "true" : "false");
        break;
    case IB_V_INT:
        snprintf(buf, len, "%" PRId64, v->v.i);
        break;
    case IB_V_UINT:
        snprintf(buf, len, "%" PRIu64, v->v.u);
        break;
    case IB_V_DOUBLE: {
        char d[32];
        if (ib_fmt_scalar(d, v) < 0)
            snprintf(d, sizeof d, "-");
        snprintf(buf, len, "%s", d);
        break;
    }
    case IB_V_STRING:
        snprintf(buf, len, "\"%.*s\"", (int)(v->v.s.len > 60 ? 60 : v->v.s.len), v->v.s.ptr);
        break;
    default:
        snprintf(buf, len, "-");
    }
}

static void quality_text(const struct ib_sample *s, char *buf, size_t len)
{
    if (s->quality == IB_Q_GOOD)
        snprintf(buf, len, "good");
    else if (s->quality == IB_Q_BAD && s->reason == IB_R_EXCEPTION)
        snprintf(buf, len, "bad (exception %u)", s->code);
    else if (s->quality == IB_Q_BAD)
        snprintf(buf, len, "bad (%s)", ib_reason_name(s->reason));
    else
        snprintf(buf, len, "%s", ib_quality_name(s->quality));
}

static void print_json_sample(FILE *out, unsigned poll, const struct poller *p,
                              const struct group_rt *g, uint32_t t)
{
    const struct ib_sample *s = &g->norm[t];
    struct ib_buf b = {0};
    ib_buf_printf(&b, "{\"poll\":%u,\"connection\":", poll);
    ib_json_cstr(&b, p->cc->pub.name);
    ib_buf_puts(&b, ",\"device\":");
    ib_json_cstr(&b, g->dev_name);
    ib_buf_puts(&b, ",\"group\":");
    ib_json_cstr(&b, g->g->name);
    ib_buf_puts(&b, ",\"tag\":");
    ib_json_cstr(&b, g->g->tags[t].name);
    ib_buf_puts(&b, ",\"raw\":");
    if (g->raw[t].quality == IB_Q_GOOD)
        ib_json_value(&b, &g->raw[t].value);
    else
        ib_buf_puts(&b, "null");
    ib_buf_puts(&b, ",\"v\":");
    if (s->quality == IB_Q_GOOD)
        ib_json_value(&b, &s->value);
    else
        ib_buf_puts(&b, "null");
    ib_buf_printf(&b, ",\"q\":\"%s\"", ib_quality_name(s->quality));
    if (s->quality != IB_Q_GOOD)
        ib_buf_printf(&b, ",\"reason\":\"%s\"", ib_reason_name(s->reason));
    if (s->reason == IB_R_EXCEPTION)
        ib_buf_printf(&b, ",\"code\":%u", s->code);
    ib_buf_printf(&b, ",\"ts\":%lld}", (long long)s->ts_ms);
    if (b.p)
        fprintf(out, "%s\n", b.p);
    ib_buf_free(&b);
}

void ib_gateway_poll_print(struct ib_gateway *gw, const struct ib_poll_opts *o, FILE *out,
                           struct ib_poll_counts *counts)
{
    memset(counts, 0, sizeof *counts);
    if (!o->json)
        fprintf(out, "%-16s %-16s %-24s %-22s %-22s %-8s %s\n", "CONNECTION", "DEVICE", "TAG",
                "RAW", "VALUE", "UNIT", "QUALITY");
    for (unsigned poll = 1; poll <= o->polls; poll++) {
        if (poll > 1 && o->interval_ms > 0) {
            struct timespec ts = {o->interval_ms / 1000, (o->interval_ms % 1000) * 1000000};
            nanosleep(&ts, NULL);
        }
        for (size_t i = 0; i < gw->n_pollers; i++) {
            struct poller *p = gw->pollers[i];
            p->next_open_ms = 0;
            for (size_t k = 0; k < p->n_groups; k++) {
                struct group_rt *g = &p->groups[k];
                /* One attempt to open per connection and poll: a dead one must not cost a
                 * timeout per group. */
                if (!p->open && p->open_failures)
                    p->next_open_ms = INT64_MAX;
                poll_group(p, g);
                for (uint32_t t = 0; t < g->g->n_tags; t++) {
                    counts->samples++;
                    counts->good += g->norm[t].quality == IB_Q_GOOD;
                    if (o->json) {
                        print_json_sample(out, poll, p, g, t);
                        continue;
                    }
                    char raw[64], val[64], q[48];
                    value_text(&g->raw[t], raw, sizeof raw);
                    value_text(&g->norm[t], val, sizeof val);
                    quality_text(&g->norm[t], q, sizeof q);
                    const char *unit = g->cg->tags[t].unit;
                    fprintf(out, "%-16s %-16s %-24s %-22s %-22s %-8s %s\n", p->cc->pub.name,
                            g->dev_name, g->g->tags[t].name, raw, val, unit ? unit : "", q);
                }
            }
            /* --once closes after its one poll; repeated polls keep the connection, as the
             * daemon does. */
            if (p->open && poll == o->polls) {
                plugin_close(p);
                p->open = false;
            }
        }
    }
    fflush(out);
}

void ib_gateway_once(struct ib_gateway *gw, FILE *out)
{
    struct ib_poll_opts o = {.polls = 1};
    struct ib_poll_counts c;
    ib_gateway_poll_print(gw, &o, out, &c);
}

/* ---- status ---------------------------------------------------------------------------------- */

void ib_gateway_status(struct ib_gateway *gw, char *buf, size_t len)
{
    size_t up = 0, stalled = 0;
    uint64_t values = gw->values_retired;
    for (size_t i = 0; i < gw->n_pollers; i++) {
        stalled += poller_stalled(gw->pollers[i]);
        up += atomic_load(&gw->pollers[i]->up);
        values += atomic_load(&gw->pollers[i]->values);
    }
    int64_t now = ib_monotonic_ms();
    if (now - gw->rate_t0 >= 1000) {
        gw->rate = (double)(values - gw->rate_v0) * 1000.0 / (double)(now - gw->rate_t0);
        gw->rate_t0 = now;
        gw->rate_v0 = values;
    }
    char store[200] = "no store";
    if (gw->store)
        ib_store_describe(gw->store, store, sizeof store);
    snprintf(buf, len, "connections %zu/%zu up%s, %.0f values/s, broker %s, %s", up, gw->n_pollers,
             stalled ? " (a plugin call is stalled, see the log)" : "", gw->rate,
             !gw->north                      ? "none"
             : ib_north_connected(gw->north) ? "connected"
                                             : "disconnected",
             store);
}

bool ib_gateway_healthy(struct ib_gateway *gw, int64_t max_age_ms)
{
    int64_t now = ib_monotonic_ms();
    for (size_t i = 0; i < gw->n_pollers; i++) {
        struct poller *p = gw->pollers[i];
        if (p->running && (poller_stalled(p) || now - atomic_load(&p->heartbeat_ms) > max_age_ms))
            return false;
    }
    return true;
}

/* Publish every tag of `g` bad (timeout) from the main thread, with the supervisor's own
 * buffers: the group's encoder is only read, never written, so sharing it is safe. */
static void publish_stalled(struct poller *p, struct group_rt *g, int64_t ts)
{
    if (!g->stall_samples) {
        g->stall_samples = calloc(g->g->n_tags, sizeof *g->stall_samples);
        g->all_idx = calloc(g->g->n_tags, sizeof *g->all_idx);
        if (!g->stall_samples || !g->all_idx) {
            free(g->stall_samples);
            free(g->all_idx);
            g->stall_samples = NULL;
            g->all_idx = NULL;
            ib_log(IB_LOG_ERR, p->cc->pub.name, g->dev_name, NULL,
                   "out of memory: group %s is not reported bad", g->g->name);
            return;
        }
        for (uint32_t t = 0; t < g->g->n_tags; t++)
            g->all_idx[t] = t;
    }
    for (uint32_t t = 0; t < g->g->n_tags; t++)
        ib_sample_bad(&g->stall_samples[t], ts, IB_R_TIMEOUT, 0);
    if (!p->cfg->has_north)
        return;
    if (!g->tag_topics) {
        if (ib_record_encode(&g->stall_body, &g->enc, ts, g->stall_samples, g->all_idx,
                             g->g->n_tags) == 0)
            ib_store_push(p->gw->store, g->topic, ib_record_seq_head, NULL, g->stall_body.p,
                          g->stall_body.len);
        return;
    }
    for (uint32_t t = 0; t < g->g->n_tags; t++)
        if (ib_record_encode_tag(&g->stall_body, &g->enc, t, &g->stall_samples[t]) == 0)
            ib_store_push(p->gw->store, g->tag_topics[t], ib_record_seq_head, NULL, g->stall_body.p,
                          g->stall_body.len);
}

size_t ib_gateway_supervise(struct ib_gateway *gw)
{
    size_t stalled = 0;
    int64_t now = ib_monotonic_ms();
    for (size_t i = 0; i < gw->n_pollers; i++) {
        struct poller *p = gw->pollers[i];
        if (!p->running)
            continue;
        int64_t since = atomic_load(&p->call_since_ms);
        if (since < 0) {
            stalled++; /* reported already */
            continue;
        }
        if (!since || now - since <= p->cc->call_timeout_ms)
            continue;
        if (!atomic_compare_exchange_strong(&p->call_since_ms, &since, -since))
            continue; /* it returned meanwhile (or began another call) */
        stalled++;
        atomic_store(&p->up, false);
        ib_log(IB_LOG_ERR, p->cc->pub.name, NULL, NULL,
               "plugin '%s' has been blocked in %s for %lld ms, past the connection's "
               "call_timeout of %lld ms: the connection is reported bad (timeout); the other "
               "connections keep polling; if it never returns, the watchdog restarts the service",
               p->p->name, call_names[atomic_load(&p->call_what)], (long long)(now - since),
               (long long)p->cc->call_timeout_ms);
        int64_t ts = ib_now_ms();
        for (size_t k = 0; k < p->n_groups; k++)
            publish_stalled(p, &p->groups[k], ts);
    }
    return stalled;
}
