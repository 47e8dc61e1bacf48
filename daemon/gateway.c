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

#include "json.h"
#include "log.h"
#include "north.h"
#include "record.h"
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
    char topic[512];
    int64_t next_due;
    int last_rc;
    uint8_t last_reason;
};

struct poller {
    struct ib_gateway *gw;
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

    /* poller thread only: */
    bool open;
    unsigned open_failures;
    int64_t next_open_ms;
    uint64_t rng;
};

struct ib_gateway {
    const struct ib_config *cfg;
    struct ib_host host;
    struct poller *pollers;
    size_t n_pollers;
    struct ib_store *store; /* opened by ib_gateway_start when there is a north */
    struct ib_north *north;
    bool running;
    int64_t rate_t0;
    uint64_t rate_v0;
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

static void ensure_open(struct poller *p, int64_t now)
{
    if (p->open || now < p->next_open_ms)
        return;
    int rc = p->p->open(p->inst);
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
        rc = p->p->read_group(p->inst, g->dev, g->grp, g->raw);
        if (rc == IB_ERR_CONNECTION) {
            p->p->close(p->inst);
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

static void publish_group(struct poller *p, struct group_rt *g, int64_t poll_ts)
{
    if (ib_record_encode(&g->body, &g->enc, poll_ts, g->norm) < 0) {
        ib_log(IB_LOG_ERR, p->cc->pub.name, g->dev_name, NULL,
               "out of memory encoding group %s; this poll is lost", g->g->name);
        return;
    }
    ib_store_push(p->gw->store, g->topic, g->body.p, g->body.len);
    atomic_fetch_add(&p->values, g->g->n_tags);
}

static void *poller_main(void *arg)
{
    struct poller *p = arg;
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
        if (wait <= 0) {
            int64_t ts = ib_now_ms();
            poll_group(p, g);
            publish_group(p, g, ts);
            int64_t after = ib_monotonic_ms();
            /* Keep the phase; a poll that overran skips the missed cycles rather than bunching. */
            g->next_due += g->g->interval_ms;
            if (g->next_due <= after)
                g->next_due += ((after - g->next_due) / g->g->interval_ms + 1) * g->g->interval_ms;
            pthread_mutex_lock(&p->mu);
            continue;
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
        p->p->close(p->inst);
        p->open = false;
        atomic_store(&p->up, false);
    }
    return NULL;
}

/* ---- building -------------------------------------------------------------------------------- */

static void poller_free(struct poller *p)
{
    if (p->inst)
        p->p->destroy(p->inst);
    p->inst = NULL;
    for (size_t i = 0; i < p->n_groups; i++) {
        free(p->groups[i].raw);
        free(p->groups[i].norm);
        ib_group_enc_free(&p->groups[i].enc);
        ib_buf_free(&p->groups[i].body);
    }
    free(p->groups);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
}

static int poller_init(struct ib_gateway *gw, struct poller *p, const struct ib_cfg_connection *cc,
                       struct ib_diag *diag)
{
    const struct ib_config *cfg = gw->cfg;
    p->gw = gw;
    p->cc = cc;
    p->p = cc->plugin;
    p->hctx.conn = cc->pub.name;
    p->hctx.rl = (struct ib_ratelimit)IB_RATELIMIT_INIT(60000, 20);
    p->rng = (uint64_t)ib_now_ms() ^ (uint64_t)(uintptr_t)p;
    pthread_mutex_init(&p->mu, NULL);
    ib_cond_init_monotonic(&p->cv);

    size_t ng = 0;
    for (uint32_t d = 0; d < cc->pub.n_devices; d++)
        ng += cc->pub.devices[d].n_groups;
    p->groups = calloc(ng ? ng : 1, sizeof *p->groups);
    if (!p->groups)
        return -1;
    size_t k = 0;
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
            if (!g->raw || !g->norm ||
                ib_group_enc_init(&g->enc, cfg->gateway_id, cc->pub.name, dc->name, g->g, g->cg))
                return -1;
            if (cfg->has_north) {
                struct ib_topic_vars v = {.gateway = cfg->gateway_id,
                                          .connection = cc->pub.name,
                                          .device = dc->name,
                                          .group = g->g->name};
                if (ib_topic_expand(cfg->mqtt.topic, &v, g->topic, sizeof g->topic) < 0) {
                    ib_diag_add(diag, dc->where, NULL,
                                "the topic of group '%s' is longer than %zu bytes", g->g->name,
                                sizeof g->topic - 1);
                    return -1;
                }
            }
        }
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
        return -1;
    }
    return 0;
}

struct ib_gateway *ib_gateway_create(const struct ib_config *cfg, struct ib_diag *diag)
{
    struct ib_gateway *gw = calloc(1, sizeof *gw);
    if (!gw)
        return NULL;
    gw->cfg = cfg;
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
        gw->n_pollers = i + 1;
        if (poller_init(gw, &gw->pollers[i], &cfg->connections[i], diag) < 0)
            failed = true; /* keep going: report every connection's errors */
    }
    if (failed) {
        ib_gateway_free(gw);
        return NULL;
    }
    return gw;
}

int ib_gateway_start(struct ib_gateway *gw)
{
    if (gw->cfg->has_north) {
        gw->store = ib_store_open(&gw->cfg->store);
        if (!gw->store)
            return -1; /* logged */
        gw->north = ib_north_new(&gw->cfg->mqtt, gw->cfg->gateway_id, gw->store);
        if (!gw->north || ib_north_start(gw->north) < 0) {
            ib_err("cannot start the MQTT north");
            return -1;
        }
    }
    gw->running = true;
    for (size_t i = 0; i < gw->n_pollers; i++) {
        struct poller *p = &gw->pollers[i];
        atomic_store(&p->heartbeat_ms, ib_monotonic_ms());
        pthread_attr_t at;
        pthread_attr_init(&at);
        /* Poller stacks are sized explicitly: hundreds of connections must not reserve 8 MB
         * each. Plugins get 256 KiB, ample for libmodbus and decoding. */
        pthread_attr_setstacksize(&at, 256 * 1024);
        int rc = pthread_create(&p->thread, &at, poller_main, p);
        pthread_attr_destroy(&at);
        if (rc != 0) {
            ib_err("cannot start the poller of connection %s: %s", p->cc->pub.name, strerror(rc));
            return -1;
        }
        p->running = true;
    }
    gw->rate_t0 = ib_monotonic_ms();
    return 0;
}

void ib_gateway_stop(struct ib_gateway *gw)
{
    if (!gw || !gw->running)
        return;
    for (size_t i = 0; i < gw->n_pollers; i++) {
        struct poller *p = &gw->pollers[i];
        pthread_mutex_lock(&p->mu);
        p->stop = true;
        pthread_cond_signal(&p->cv);
        pthread_mutex_unlock(&p->mu);
    }
    for (size_t i = 0; i < gw->n_pollers; i++)
        if (gw->pollers[i].running) {
            pthread_join(gw->pollers[i].thread, NULL);
            gw->pollers[i].running = false;
        }
    if (gw->north)
        ib_north_stop(gw->north);
    gw->running = false;
}

void ib_gateway_free(struct ib_gateway *gw)
{
    if (!gw)
        return;
    ib_gateway_stop(gw);
    ib_north_free(gw->north);
    for (size_t i = 0; i < gw->n_pollers; i++)
        poller_free(&gw->pollers[i]);
    free(gw->pollers);
    ib_store_close(gw->store);
    free(gw);
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

void ib_gateway_once(struct ib_gateway *gw, FILE *out)
{
    fprintf(out, "%-16s %-16s %-24s %-22s %-22s %-8s %s\n", "CONNECTION", "DEVICE", "TAG", "RAW",
            "VALUE", "UNIT", "QUALITY");
    for (size_t i = 0; i < gw->n_pollers; i++) {
        struct poller *p = &gw->pollers[i];
        p->next_open_ms = 0;
        for (size_t k = 0; k < p->n_groups; k++) {
            struct group_rt *g = &p->groups[k];
            /* One attempt to open per connection: a dead one must not cost a timeout per group. */
            if (!p->open && p->open_failures)
                p->next_open_ms = INT64_MAX;
            poll_group(p, g);
            for (uint32_t t = 0; t < g->g->n_tags; t++) {
                char raw[64], val[64], q[48];
                value_text(&g->raw[t], raw, sizeof raw);
                value_text(&g->norm[t], val, sizeof val);
                quality_text(&g->norm[t], q, sizeof q);
                const char *unit = g->cg->tags[t].unit;
                fprintf(out, "%-16s %-16s %-24s %-22s %-22s %-8s %s\n", p->cc->pub.name,
                        g->dev_name, g->g->tags[t].name, raw, val, unit ? unit : "", q);
            }
        }
        if (p->open) {
            p->p->close(p->inst);
            p->open = false;
        }
    }
    fflush(out);
}

/* ---- status ---------------------------------------------------------------------------------- */

void ib_gateway_status(struct ib_gateway *gw, char *buf, size_t len)
{
    size_t up = 0;
    uint64_t values = 0;
    for (size_t i = 0; i < gw->n_pollers; i++) {
        up += atomic_load(&gw->pollers[i].up);
        values += atomic_load(&gw->pollers[i].values);
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
    snprintf(buf, len, "connections %zu/%zu up, %.0f values/s, broker %s, %s", up, gw->n_pollers,
             gw->rate,
             !gw->north                      ? "none"
             : ib_north_connected(gw->north) ? "connected"
                                             : "disconnected",
             store);
}

bool ib_gateway_healthy(struct ib_gateway *gw, int64_t max_age_ms)
{
    int64_t now = ib_monotonic_ms();
    for (size_t i = 0; i < gw->n_pollers; i++)
        if (gw->pollers[i].running && now - atomic_load(&gw->pollers[i].heartbeat_ms) > max_age_ms)
            return false;
    return true;
}
