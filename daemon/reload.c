/* Reload: apply a new configuration to the running gateway, restarting only the connections
 * whose settings changed (docs/reload.md). Main thread. */
#include <stdlib.h>
#include <string.h>

#include "gateway_priv.h"
#include "log.h"

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
        np[j] = ib_poller_new(gw, next, j, diag);
        if (!np[j])
            failed = true;
    }
    if (failed) {
        for (size_t j = 0; j < next->n_connections; j++)
            if (np[j] && np[j]->cfg == next) /* built now; the kept ones belong to gw */
                ib_poller_free(np[j]);
        free(np);
        free(kept);
        return -1;
    }
    /* 2. Stop what goes (changed or removed): their last polls are queued before they stop. */
    for (size_t i = 0; i < gw->n_pollers; i++)
        if (!kept[i]) {
            ib_poller_signal_stop(gw->pollers[i]);
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
        if (!kept[i] && ib_poller_join(gw->pollers[i])) {
            gw->values_retired += atomic_load(&gw->pollers[i]->values);
            ib_poller_free(gw->pollers[i]);
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
        ib_gateway_north_stop(gw, false);
        if (gw->running && ib_gateway_north_start(gw, next) < 0)
            ib_diag_add(diag, NULL, NULL, "the MQTT north could not be restarted");
        sum->north_restarted = true;
    }
    /* 4. Start what is new. */
    free(gw->pollers);
    gw->pollers = np;
    gw->n_pollers = next->n_connections;
    for (size_t j = 0; j < gw->n_pollers; j++)
        if (!np[j]->running && gw->running)
            ib_poller_start(np[j]);
    sum->added = next->n_connections - sum->kept - sum->restarted;
    ib_config_free(gw->cfg);
    gw->cfg = ib_config_ref(next);
    free(kept);
    return 0;
}
