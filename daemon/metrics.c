/* The metrics registry: rows of relaxed atomic counters that outlive pollers and norths, found
 * or added under one lock on cold paths, counted without a lock on the hot path (metrics.h). */
#include "metrics.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <string.h>

#include "util.h"

const double ib_metrics_bucket_ms[IB_METRICS_BUCKETS - 1] = {1,   2.5, 5,   10,   25,  50,
                                                             100, 250, 500, 1000, 5000};

#define MAX_RESULTS 16

struct cmd_row {
    char result[32];
    uint64_t n;
};

struct ib_metrics {
    pthread_mutex_t mu; /* guards the lists and the strings below; never taken by a poll */
    struct ib_metrics_group *groups, **tail;
    struct ib_metrics_north north;
    char server[256];
    struct cmd_row cmds[MAX_RESULTS];
    size_t n_cmds;
    void (*cmd_src)(void *ud, ib_metrics_emit_fn emit, void *emit_ud);
    void *cmd_ud;
    char gateway[128], sha[65];
    _Atomic(struct ib_store *) store;
    int64_t started_ms;
};

struct ib_metrics *ib_metrics_new(void)
{
    struct ib_metrics *m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    pthread_mutex_init(&m->mu, NULL);
    m->tail = &m->groups;
    m->started_ms = ib_now_ms();
    return m;
}

void ib_metrics_free(struct ib_metrics *m)
{
    if (!m)
        return;
    struct ib_metrics_group *g = m->groups;
    while (g) {
        struct ib_metrics_group *next = g->next;
        free(g);
        g = next;
    }
    pthread_mutex_destroy(&m->mu);
    free(m);
}

static bool same(const struct ib_metrics_group *g, const char *c, const char *d, const char *gr)
{
    return strcmp(g->conn, c) == 0 && strcmp(g->dev, d) == 0 && strcmp(g->grp, gr) == 0;
}

/* One allocation: the row, then its three strings. */
static struct ib_metrics_group *row_new(const char *c, const char *d, const char *gr)
{
    size_t lc = strlen(c) + 1, ld = strlen(d) + 1, lg = strlen(gr) + 1;
    struct ib_metrics_group *g = calloc(1, sizeof *g + lc + ld + lg);
    if (!g)
        return NULL;
    char *s = (char *)(g + 1);
    g->conn = memcpy(s, c, lc);
    g->dev = memcpy(s + lc, d, ld);
    g->grp = memcpy(s + lc + ld, gr, lg);
    atomic_init(&g->up, -1);
    return g;
}

struct ib_metrics_group *ib_metrics_group(struct ib_metrics *m, const char *conn, const char *dev,
                                          const char *grp)
{
    pthread_mutex_lock(&m->mu);
    struct ib_metrics_group *g = m->groups;
    while (g && !same(g, conn, dev, grp))
        g = g->next;
    if (!g && (g = row_new(conn, dev, grp))) {
        *m->tail = g;
        m->tail = &g->next;
    }
    if (g)
        atomic_store(&g->active, true);
    pthread_mutex_unlock(&m->mu);
    return g;
}

void ib_metrics_set_active(struct ib_metrics *m, struct ib_metrics_group *const *rows, size_t n)
{
    pthread_mutex_lock(&m->mu);
    for (struct ib_metrics_group *g = m->groups; g; g = g->next)
        atomic_store(&g->active, false);
    for (size_t i = 0; i < n; i++)
        atomic_store(&rows[i]->active, true);
    pthread_mutex_unlock(&m->mu);
}

#define RELAXED memory_order_relaxed

void ib_metrics_hist_add(struct ib_metrics_hist *h, int64_t us)
{
    if (us < 0)
        us = 0;
    size_t b = 0;
    while (b < IB_METRICS_BUCKETS - 1 && (double)us > ib_metrics_bucket_ms[b] * 1000.0)
        b++;
    atomic_fetch_add_explicit(&h->bucket[b], 1, RELAXED);
    atomic_fetch_add_explicit(&h->sum_us, (uint64_t)us, RELAXED);
    atomic_fetch_add_explicit(&h->count, 1, RELAXED);
}

void ib_metrics_poll(struct ib_metrics_group *g, int64_t duration_us, uint32_t good,
                     uint8_t bad_reason, int64_t now_ms)
{
    if (!g)
        return;
    atomic_fetch_add_explicit(&g->polls, 1, RELAXED);
    ib_metrics_hist_add(&g->duration, duration_us);
    atomic_fetch_add_explicit(&g->values, good, RELAXED);
    int up = bad_reason == 0;
    if (up)
        atomic_store_explicit(&g->last_good_ms, now_ms, RELAXED);
    else
        atomic_fetch_add_explicit(&g->errors[bad_reason < IB_METRICS_REASONS ? bad_reason : 0], 1,
                                  RELAXED);
    if (!up)
        atomic_store_explicit(&g->reason, bad_reason, RELAXED);
    if (atomic_load_explicit(&g->up, RELAXED) != up) {
        atomic_store_explicit(&g->since_ms, now_ms, RELAXED);
        atomic_store_explicit(&g->up, up, RELAXED);
    }
}

struct ib_metrics_north *ib_metrics_north(struct ib_metrics *m)
{
    return &m->north;
}

void ib_metrics_north_set_connected(struct ib_metrics *m, bool on, const char *server)
{
    pthread_mutex_lock(&m->mu);
    if (on && server)
        snprintf(m->server, sizeof m->server, "%s", server);
    else
        m->server[0] = '\0';
    pthread_mutex_unlock(&m->mu);
    if (on)
        atomic_fetch_add_explicit(&m->north.connects, 1, RELAXED);
    if (atomic_exchange(&m->north.connected, on) != on)
        atomic_store(&m->north.since_ms, ib_now_ms());
}

void ib_metrics_north_server(struct ib_metrics *m, char *buf, size_t len)
{
    pthread_mutex_lock(&m->mu);
    snprintf(buf, len, "%s", m->server);
    pthread_mutex_unlock(&m->mu);
}

static bool result_ok(const char *r)
{
    size_t n = strlen(r);
    if (!n || n >= sizeof((struct cmd_row *)0)->result)
        return false;
    return strspn(r, "abcdefghijklmnopqrstuvwxyz_") == n;
}

void ib_metrics_command(struct ib_metrics *m, const char *result)
{
    if (!result || !result_ok(result))
        result = "other";
    pthread_mutex_lock(&m->mu);
    size_t i = 0;
    while (i < m->n_cmds && strcmp(m->cmds[i].result, result) != 0)
        i++;
    if (i == m->n_cmds && i == MAX_RESULTS) {
        result = "other";
        for (i = 0; i < m->n_cmds && strcmp(m->cmds[i].result, result) != 0; i++)
            ;
        if (i == m->n_cmds) /* the table is full of others: the last row takes it */
            i = MAX_RESULTS - 1;
    }
    if (i == m->n_cmds)
        snprintf(m->cmds[m->n_cmds++].result, sizeof m->cmds[0].result, "%s", result);
    m->cmds[i].n++;
    pthread_mutex_unlock(&m->mu);
}

void ib_metrics_set_command_source(struct ib_metrics *m,
                                   void (*src)(void *ud, ib_metrics_emit_fn emit, void *emit_ud),
                                   void *ud)
{
    pthread_mutex_lock(&m->mu);
    m->cmd_src = src;
    m->cmd_ud = ud;
    pthread_mutex_unlock(&m->mu);
}

void ib_metrics_foreach_command(struct ib_metrics *m,
                                void (*fn)(void *ud, const char *result, uint64_t n), void *ud)
{
    pthread_mutex_lock(&m->mu);
    if (m->cmd_src)
        m->cmd_src(m->cmd_ud, fn, ud);
    for (size_t i = 0; i < m->n_cmds; i++)
        fn(ud, m->cmds[i].result, m->cmds[i].n);
    pthread_mutex_unlock(&m->mu);
}

void ib_metrics_foreach_group(struct ib_metrics *m,
                              void (*fn)(void *ud, const struct ib_metrics_group *g), void *ud)
{
    pthread_mutex_lock(&m->mu);
    for (struct ib_metrics_group *g = m->groups; g; g = g->next)
        if (atomic_load(&g->active))
            fn(ud, g);
    pthread_mutex_unlock(&m->mu);
}

void ib_metrics_set_store(struct ib_metrics *m, struct ib_store *s)
{
    atomic_store(&m->store, s);
}

struct ib_store *ib_metrics_store(struct ib_metrics *m)
{
    return atomic_load(&m->store);
}

void ib_metrics_set_info(struct ib_metrics *m, const char *gateway, const char *config_sha)
{
    pthread_mutex_lock(&m->mu);
    snprintf(m->gateway, sizeof m->gateway, "%s", gateway ? gateway : "");
    snprintf(m->sha, sizeof m->sha, "%s", config_sha ? config_sha : "");
    pthread_mutex_unlock(&m->mu);
}

void ib_metrics_info(struct ib_metrics *m, char *gateway, size_t glen, char *sha, size_t slen)
{
    pthread_mutex_lock(&m->mu);
    snprintf(gateway, glen, "%s", m->gateway);
    snprintf(sha, slen, "%s", m->sha);
    pthread_mutex_unlock(&m->mu);
}

int64_t ib_metrics_started_ms(const struct ib_metrics *m)
{
    return m->started_ms;
}

int64_t ib_metrics_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

bool ib_metrics_device_fold(struct ib_metrics_device *d, const struct ib_metrics_group *g)
{
    int up = atomic_load(&g->up);
    if (!d->conn) {
        *d = (struct ib_metrics_device){.conn = g->conn, .dev = g->dev, .up = 1};
    } else if (strcmp(d->conn, g->conn) != 0 || strcmp(d->dev, g->dev) != 0) {
        return false;
    }
    if (up == 0 && d->up != 0) {
        d->up = 0;
        d->reason = atomic_load(&g->reason);
    } else if (up < 0 && d->up == 1) {
        d->up = -1;
    }
    int64_t since = atomic_load(&g->since_ms), good = atomic_load(&g->last_good_ms);
    if (since > d->since_ms)
        d->since_ms = since;
    if (good > d->last_good_ms)
        d->last_good_ms = good;
    d->polls += atomic_load_explicit(&g->polls, RELAXED);
    d->values += atomic_load_explicit(&g->values, RELAXED);
    d->published += atomic_load_explicit(&g->published, RELAXED);
    d->rate += (double)atomic_load_explicit(&g->rate_milli, RELAXED) / 1000.0;
    return true;
}

void ib_metrics_tick(struct ib_metrics *m, int64_t now_ms)
{
    pthread_mutex_lock(&m->mu);
    for (struct ib_metrics_group *g = m->groups; g; g = g->next) {
        uint64_t v = atomic_load_explicit(&g->values, RELAXED);
        if (!g->rate_t0) {
            g->rate_t0 = now_ms;
            g->rate_v0 = v;
        } else if (now_ms - g->rate_t0 >= 5000) {
            atomic_store(&g->rate_milli,
                         (v - g->rate_v0) * 1000000 / (uint64_t)(now_ms - g->rate_t0));
            g->rate_t0 = now_ms;
            g->rate_v0 = v;
        }
    }
    pthread_mutex_unlock(&m->mu);
}
