/* The command service: a request's checks that need no device (age, duplicate id, device and
 * tags known, writable, limits, scaling undone), its job queued on the device's poller, and its
 * answer (first results kept for repeats, audited, counted, handed to the front end). */
#include "command_impl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "command_check.h"
#include "gateway_priv.h"

const char *ib_command_result_name(int r)
{
    static const char *const names[] = {
        "ok",           "denied",          "out_of_range", "bad_type", "unknown_device",
        "unknown_tag",  "expired",         "duplicate",    "busy",     "timeout",
        "device_error", "connection_lost", "malformed"};
    return r >= 0 && r < IB_CMD__COUNT ? names[r] : "?";
}

/* How many ids are remembered at most (the oldest go first beyond). */
#define DEDUP_CAP 8192

struct ib_commands *ib_command_new(struct ib_gateway *gw)
{
    struct ib_commands *c = calloc(1, sizeof *c);
    if (!c || !(c->dedup = ib_cmd_dedup_new(DEDUP_CAP)) || !(c->front = ib_cmd_north_new())) {
        if (c)
            ib_cmd_dedup_free(c->dedup);
        free(c);
        return NULL;
    }
    c->gw = gw;
    pthread_mutex_init(&c->mu, NULL);
    return c;
}

void ib_command_free(struct ib_commands *c)
{
    if (!c)
        return;
    ib_cmd_dedup_free(c->dedup);
    ib_cmd_north_free(c->front);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

void ib_command_lock(struct ib_commands *c)
{
    if (c)
        pthread_mutex_lock(&c->mu);
}

void ib_command_unlock(struct ib_commands *c)
{
    if (c)
        pthread_mutex_unlock(&c->mu);
}

void ib_command_counters(const struct ib_commands *c, uint64_t counts[IB_CMD__COUNT])
{
    for (int i = 0; i < IB_CMD__COUNT; i++)
        counts[i] = c ? atomic_load(&c->counts[i]) : 0;
}

void ib_command_note(struct ib_commands *c, int result)
{
    if (result >= 0 && result < IB_CMD__COUNT)
        atomic_fetch_add(&c->counts[result], 1);
}

static void free_job(struct cmd_job *j)
{
    free(j->items);
    free(j->res);
    free(j);
}

/* Nothing of the request reached a device and nothing was refused for good (busy, connection
 * down): the same id may come again and be applied then (within max_age). */
static bool retryable(const struct cmd_job *j)
{
    for (size_t i = 0; i < j->n; i++)
        if (j->res[i].result != IB_CMD_BUSY && j->res[i].result != IB_CMD_CONNECTION_LOST)
            return false;
    return j->n > 0;
}

void ib_command_finish(struct cmd_job *j)
{
    struct ib_cmd_answer a = {.id = j->id,
                              .device = j->device,
                              .meta = &j->meta,
                              .n = j->n,
                              .results = j->res,
                              .duplicate = j->dup};
    if (!j->dup && retryable(j))
        ib_cmd_dedup_forget(j->c->dedup, j->id);
    else if (!j->dup)
        ib_cmd_dedup_done(j->c->dedup, j->id, j->res, j->n);
    for (size_t i = 0; i < j->n; i++) {
        int r = j->dup ? IB_CMD_DUPLICATE : j->res[i].result;
        atomic_fetch_add(&j->c->counts[r < IB_CMD__COUNT ? r : IB_CMD_DEVICE_ERROR], 1);
    }
    ib_command_audit(&a, j->conn);
    j->fn(j->ud, &a);
    free_job(j);
}

static struct cmd_job *new_job(struct ib_commands *c, const char *device, size_t n,
                               const struct ib_cmd_meta *meta, ib_command_done_fn fn, void *ud)
{
    struct cmd_job *j = calloc(1, sizeof *j);
    if (!j)
        return NULL;
    j->items = calloc(n ? n : 1, sizeof *j->items);
    j->res = calloc(n ? n : 1, sizeof *j->res);
    if (!j->items || !j->res) {
        free_job(j);
        return NULL;
    }
    j->c = c;
    j->fn = fn;
    j->ud = ud;
    j->n = n;
    j->meta = *meta;
    snprintf(j->id, sizeof j->id, "%s", meta->id ? meta->id : "");
    snprintf(j->requester, sizeof j->requester, "%s", meta->requester ? meta->requester : "");
    snprintf(j->device, sizeof j->device, "%s", device ? device : "");
    j->meta.id = j->id;
    j->meta.requester = meta->requester ? j->requester : NULL;
    j->meta.source = meta->source ? meta->source : "?";
    return j;
}

/* Every tag not yet refused gets `result` with `why`. */
static void refuse_rest(struct cmd_job *j, int result, const char *why)
{
    for (size_t i = 0; i < j->n; i++)
        if (j->res[i].result == IB_CMD_OK && !j->res[i].error[0]) {
            j->res[i].result = (uint8_t)result;
            snprintf(j->res[i].error, sizeof j->res[i].error, "%s", why);
            j->items[i].run = false;
        }
}

/* A repeat of a known id: the first answer's results, not applied again. */
static bool duplicate(struct cmd_job *j, const struct ib_commands_cfg *cc, int64_t now)
{
    size_t found = 0;
    bool pending = false;
    struct ib_cmd_tag_result *first = calloc(j->n ? j->n : 1, sizeof *first);
    if (!first)
        return false;
    if (ib_cmd_dedup_claim(j->c->dedup, j->id, now, cc->duplicate_window_ms, first, j->n, &found,
                           &pending) == 0) {
        free(first);
        return false;
    }
    j->dup = true;
    for (size_t i = 0; i < j->n; i++) {
        struct ib_cmd_tag_result *r = &j->res[i];
        size_t k = 0;
        while (k < found && strcmp(first[k].tag, r->tag) != 0)
            k++;
        if (!pending && k < found) {
            *r = first[k];
            continue;
        }
        r->result = IB_CMD_DUPLICATE;
        snprintf(r->error, sizeof r->error, "%s",
                 pending ? "a request with this id is still running: not applied again"
                         : "a request with this id was answered already: not applied again");
    }
    free(first);
    return true;
}

/* The poller of the connection that has `device`, and the device's index in it; c->mu held. */
static struct poller *find_device(struct ib_gateway *gw, const char *device, uint32_t *dev)
{
    for (size_t i = 0; i < gw->n_pollers; i++) {
        const struct ib_connection_config *pc = &gw->pollers[i]->cc->pub;
        for (uint32_t d = 0; d < pc->n_devices; d++)
            if (strcmp(pc->devices[d].name, device) == 0) {
                *dev = d;
                return gw->pollers[i];
            }
    }
    return NULL;
}

/* Find each tag of the job in the device, and check writes without the device. */
static void check_tags(struct poller *p, struct cmd_job *j)
{
    const struct ib_device_config *dc = &p->cc->pub.devices[j->dev];
    const struct ib_cfg_device *cd = &p->cc->devices[j->dev];
    for (size_t i = 0; i < j->n; i++) {
        struct cmd_item *it = &j->items[i];
        struct ib_cmd_tag_result *r = &j->res[i];
        if (r->result != IB_CMD_OK)
            continue; /* refused already (a string too long) */
        bool found = false;
        for (uint32_t g = 0; g < dc->n_groups && !found; g++)
            for (uint32_t t = 0; t < dc->groups[g].n_tags && !found; t++)
                if (strcmp(dc->groups[g].tags[t].name, r->tag) == 0) {
                    it->grp = g, it->tag = t;
                    found = true;
                }
        if (!found) {
            r->result = IB_CMD_UNKNOWN_TAG;
            snprintf(r->error, sizeof r->error, "the device has no tag of that name");
            continue;
        }
        if (j->is_read) {
            it->run = true;
            continue;
        }
        const struct ib_cfg_group *cg = &cd->groups[it->grp];
        int rc = ib_command_check_write(&cg->tags[it->tag], &cg->writes[it->tag],
                                        dc->groups[it->grp].tags[it->tag].writable, &it->eng,
                                        &it->raw, r->error, sizeof r->error);
        r->result = (uint8_t)rc;
        it->run = rc == IB_CMD_OK;
        if (it->raw.type == IB_V_STRING)
            it->raw.v.s.ptr = it->sbuf;
    }
}

static bool any_run(const struct cmd_job *j)
{
    for (size_t i = 0; i < j->n; i++)
        if (j->items[i].run)
            return true;
    return false;
}

/* Route the job: answered at once, or queued on the poller (which answers it). */
static void submit(struct cmd_job *j)
{
    struct ib_commands *c = j->c;
    int64_t now = ib_now_ms();
    pthread_mutex_lock(&c->mu);
    const struct ib_commands_cfg *cc = &c->gw->cfg->commands;
    if (duplicate(j, cc, now))
        goto answer;
    if (j->meta.stale_session || (j->meta.ts_ms && now - j->meta.ts_ms > cc->max_age_ms)) {
        char why[IB_CMD_ERROR_LEN];
        snprintf(why, sizeof why,
                 j->meta.stale_session
                     ? "held by the broker while the gateway was away: not applied late"
                     : "sent %lld ms ago, more than max_age (%lld ms): not applied late",
                 (long long)(now - j->meta.ts_ms), (long long)cc->max_age_ms);
        refuse_rest(j, IB_CMD_EXPIRED, why);
        goto answer;
    }
    struct poller *p = find_device(c->gw, j->device, &j->dev);
    if (!p) {
        refuse_rest(j, IB_CMD_UNKNOWN_DEVICE, "no device of that name");
        goto answer;
    }
    j->conn = p->cc->pub.name;
    check_tags(p, j);
    if (!any_run(j))
        goto answer;
    if (c->gw->running && !atomic_load(&p->up)) { /* not running: --write, run in place */
        refuse_rest(j, IB_CMD_CONNECTION_LOST, "the connection is down: nothing was sent");
        goto answer;
    }
    j->queued_ms = ib_monotonic_ms();
    int rc = ib_cmd_queue_push(p, j);
    if (rc == 0) {
        pthread_mutex_unlock(&c->mu);
        return;
    }
    refuse_rest(j, rc == -1 ? IB_CMD_BUSY : IB_CMD_CONNECTION_LOST,
                rc == -1 ? "the connection's command queue is full: try again"
                         : "the connection is stopping: nothing was sent");
answer:
    pthread_mutex_unlock(&c->mu);
    ib_command_finish(j);
}

static int start(struct ib_commands *c, const char *device, size_t n,
                 const struct ib_cmd_meta *meta, ib_command_done_fn fn, void *ud,
                 struct cmd_job **out)
{
    if (n > IB_CMD_MAX_TAGS)
        n = IB_CMD_MAX_TAGS;
    *out = new_job(c, device, n, meta, fn, ud);
    return *out ? 0 : -1;
}

int ib_command_apply_writes(struct ib_commands *c, const char *device, const struct ib_cmd_write *w,
                            size_t n, const struct ib_cmd_meta *meta, ib_command_done_fn fn,
                            void *ud)
{
    struct cmd_job *j;
    if (start(c, device, n, meta, fn, ud, &j) < 0)
        return -1;
    for (size_t i = 0; i < j->n; i++) {
        snprintf(j->res[i].tag, sizeof j->res[i].tag, "%s", w[i].tag);
        j->items[i].eng = w[i].value;
        j->res[i].requested = w[i].value;
        j->res[i].has_requested = true;
        if (w[i].value.type != IB_V_STRING)
            continue;
        if (w[i].value.v.s.len >= sizeof j->items[i].sbuf) {
            j->res[i].result = IB_CMD_OUT_OF_RANGE;
            snprintf(j->res[i].error, sizeof j->res[i].error, "a string of %u bytes is too long",
                     w[i].value.v.s.len);
            j->res[i].has_requested = false;
            continue;
        }
        memcpy(j->items[i].sbuf, w[i].value.v.s.ptr, w[i].value.v.s.len);
        j->items[i].eng.v.s.ptr = j->items[i].sbuf;
        j->res[i].requested.v.s.ptr = j->items[i].sbuf;
    }
    submit(j);
    return 0;
}

int ib_command_read(struct ib_commands *c, const char *device, const char *const *tags, size_t n,
                    const struct ib_cmd_meta *meta, ib_command_done_fn fn, void *ud)
{
    struct cmd_job *j;
    if (start(c, device, n, meta, fn, ud, &j) < 0)
        return -1;
    j->is_read = true;
    for (size_t i = 0; i < j->n; i++)
        snprintf(j->res[i].tag, sizeof j->res[i].tag, "%s", tags[i]);
    submit(j);
    return 0;
}
