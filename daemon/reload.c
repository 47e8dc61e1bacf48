/* Reload: apply a new configuration to the running gateway, restarting only the connections
 * whose settings changed (docs/reload.md). Main thread. */
#include <stdlib.h>
#include <string.h>

#include "command_impl.h"
#include "gateway_priv.h"
#include "log.h"

/* The running poller that may go on unchanged as connection `j` of `next`, or -1. */
static long find_kept(struct ib_gateway *gw, struct ib_config *next, size_t j, const bool *kept)
{
    unsigned char d[IB_DIGEST_LEN];
    ib_config_conn_digest(next, j, d);
    for (size_t i = 0; i < gw->n_pollers; i++)
        if (!kept[i] && strcmp(gw->pollers[i]->cc->pub.name, next->connections[j].pub.name) == 0 &&
            memcmp(gw->pollers[i]->digest, d, sizeof d) == 0)
            return (long)i;
    return -1;
}

/* 1. Pollers for `next` in np[]: the unchanged ones taken over (kept[i]), the others built
 * beside what runs. On any error nothing has been touched and -1 is returned. */
static int build_next(struct ib_gateway *gw, struct ib_config *next, struct poller **np, bool *kept,
                      struct ib_diag *diag, struct ib_reload_summary *sum)
{
    unsigned char a[IB_DIGEST_LEN], b[IB_DIGEST_LEN];
    ib_config_poller_digest(gw->cfg, a);
    ib_config_poller_digest(next, b);
    bool all_changed = memcmp(a, b, sizeof a) != 0;
    bool failed = false;
    for (size_t j = 0; j < next->n_connections; j++) {
        long i = all_changed ? -1 : find_kept(gw, next, j, kept);
        if (i >= 0) {
            np[j] = gw->pollers[i];
            kept[i] = true;
            sum->kept++;
        } else if (!(np[j] = ib_poller_new(gw, next, j, diag))) {
            failed = true; /* go on: every connection's errors are reported */
        }
    }
    if (!failed)
        return 0;
    for (size_t j = 0; j < next->n_connections; j++)
        if (np[j] && np[j]->cfg == next) /* built now; the kept ones belong to gw */
            ib_poller_free(np[j]);
    return -1;
}

static bool named_in(const struct ib_config *cfg, const char *name)
{
    for (size_t j = 0; j < cfg->n_connections; j++)
        if (strcmp(name, cfg->connections[j].pub.name) == 0)
            return true;
    return false;
}

/* 2. Stop what goes (changed or removed): their last polls are queued before they stop. */
static void stop_gone(struct ib_gateway *gw, const struct ib_config *next, const bool *kept,
                      struct ib_reload_summary *sum)
{
    for (size_t i = 0; i < gw->n_pollers; i++)
        if (!kept[i]) {
            ib_poller_signal_stop(gw->pollers[i]);
            if (named_in(next, gw->pollers[i]->cc->pub.name))
                sum->restarted++;
            else
                sum->removed++;
        }
    for (size_t i = 0; i < gw->n_pollers; i++)
        if (!kept[i] && ib_poller_join(gw->pollers[i])) {
            gw->values_retired += atomic_load(&gw->pollers[i]->values);
            ib_poller_free(gw->pollers[i]);
        }
}

/* 3. The store stays open with its settings and backlog; the north reconnects only if its
 * settings (or its certificate files) changed. */
static void reload_north(struct ib_gateway *gw, struct ib_config *next, struct ib_diag *diag,
                         struct ib_reload_summary *sum)
{
    unsigned char a[IB_DIGEST_LEN], b[IB_DIGEST_LEN];
    ib_config_store_digest(gw->cfg, a);
    ib_config_store_digest(next, b);
    if (gw->store && memcmp(a, b, sizeof a) != 0)
        ib_warn("store settings changed: they take effect at the next start of the daemon "
                "(the open store and its backlog stay across a reload)");
    ib_config_north_digest(gw->north_cfg ? gw->north_cfg : gw->cfg, a);
    ib_config_north_digest(next, b);
    if (memcmp(a, b, sizeof a) != 0 || !gw->north != !next->has_north) {
        ib_gateway_north_stop(gw, false);
        if (gw->running && ib_gateway_north_start(gw, next) < 0)
            ib_diag_add(diag, NULL, NULL, "the MQTT north could not be restarted");
        sum->north_restarted = true;
    }
}

int ib_gateway_reload(struct ib_gateway *gw, struct ib_config *next, struct ib_diag *diag,
                      struct ib_reload_summary *sum)
{
    memset(sum, 0, sizeof *sum);
    struct poller **np = calloc(next->n_connections ? next->n_connections : 1, sizeof *np);
    bool *kept = calloc(gw->n_pollers ? gw->n_pollers : 1, sizeof *kept);
    if (!np || !kept) {
        ib_diag_add(diag, NULL, NULL, "out of memory");
    } else if (build_next(gw, next, np, kept, diag, sum) == 0) {
        ib_command_lock(gw->commands); /* commands find no poller while they change */
        stop_gone(gw, next, kept, sum);
        free(gw->pollers);
        gw->pollers = np;
        gw->n_pollers = next->n_connections;
        ib_command_unlock(gw->commands);
        reload_north(gw, next, diag, sum);
        /* 4. Start what is new. */
        for (size_t j = 0; j < gw->n_pollers; j++)
            if (!np[j]->running && gw->running)
                ib_poller_start(np[j]);
        sum->added = next->n_connections - sum->kept - sum->restarted;
        ib_gateway_metrics_activate(gw);
        ib_command_lock(gw->commands);
        ib_config_free(gw->cfg);
        gw->cfg = ib_config_ref(next);
        ib_command_unlock(gw->commands);
        free(kept);
        return 0;
    }
    free(np);
    free(kept);
    return -1;
}
