/* The ids of commands seen within the duplicate window, with their first results: a request
 * redelivered (QoS 1) or repeated is answered with them and never applied twice. A bounded
 * table (the oldest id goes first when it is full), one leaf lock. The ring grows by need up
 * to its bound: nothing is allocated until the first command arrives. */
#include "command_impl.h"

#include <stdlib.h>
#include <string.h>

struct entry {
    char id[IB_CMD_MAX_ID + 1];
    int64_t seen_ms;
    bool done;
    size_t n;
    struct ib_cmd_tag_result *res; /* owned; NULL until done */
};

struct ib_cmd_dedup {
    pthread_mutex_t mu;
    struct entry *e; /* a ring of alloc slots: e[head] is the oldest; NULL until first use */
    size_t cap, alloc, head, used; /* cap: the bound; alloc <= cap: the slots allocated */
};

struct ib_cmd_dedup *ib_cmd_dedup_new(size_t cap)
{
    struct ib_cmd_dedup *d = calloc(1, sizeof *d);
    if (!d)
        return NULL;
    d->cap = cap ? cap : 1;
    pthread_mutex_init(&d->mu, NULL);
    return d;
}

void ib_cmd_dedup_free(struct ib_cmd_dedup *d)
{
    if (!d)
        return;
    for (size_t i = 0; i < d->alloc; i++)
        free(d->e[i].res);
    free(d->e);
    pthread_mutex_destroy(&d->mu);
    free(d);
}

/* Results copied: their string values point into their own text again. */
static void repoint(struct ib_cmd_tag_result *r, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (r[i].value.type == IB_V_STRING)
            r[i].value.v.s.ptr = r[i].text;
        if (r[i].old.type == IB_V_STRING)
            r[i].old.type = IB_V_NONE, r[i].has_old = false;
        if (r[i].requested.type == IB_V_STRING)
            r[i].requested.type = IB_V_NONE, r[i].has_requested = false;
    }
}

static void drop_oldest(struct ib_cmd_dedup *d)
{
    struct entry *o = &d->e[d->head];
    free(o->res);
    memset(o, 0, sizeof *o);
    d->head = (d->head + 1) % d->alloc;
    d->used--;
}

/* Doubles the ring (16 slots first, never beyond cap), oldest entry first again. False when
 * out of memory: the caller then reuses the oldest slot, as when the table is full. */
static bool grow(struct ib_cmd_dedup *d)
{
    size_t n = d->alloc ? d->alloc * 2 : 16;
    if (n > d->cap)
        n = d->cap;
    struct entry *e = calloc(n, sizeof *e);
    if (!e)
        return false;
    for (size_t k = 0; k < d->used; k++)
        e[k] = d->e[(d->head + k) % d->alloc];
    free(d->e);
    d->e = e;
    d->alloc = n;
    d->head = 0;
    return true;
}

static struct entry *find(struct ib_cmd_dedup *d, const char *id)
{
    if (!*id)
        return NULL;
    for (size_t k = 0; k < d->used; k++) {
        struct entry *e = &d->e[(d->head + k) % d->alloc];
        if (strcmp(e->id, id) == 0)
            return e;
    }
    return NULL;
}

int ib_cmd_dedup_claim(struct ib_cmd_dedup *d, const char *id, int64_t now_ms, int64_t window_ms,
                       struct ib_cmd_tag_result *res, size_t n, size_t *found, bool *pending)
{
    pthread_mutex_lock(&d->mu);
    while (d->used && now_ms - d->e[d->head].seen_ms > window_ms)
        drop_oldest(d);
    struct entry *e = find(d, id);
    if (e) {
        *pending = !e->done;
        *found = e->done ? (e->n < n ? e->n : n) : 0;
        if (*found)
            memcpy(res, e->res, *found * sizeof *res);
        repoint(res, *found);
        pthread_mutex_unlock(&d->mu);
        return 1;
    }
    if (d->used == d->alloc && (d->alloc == d->cap || !grow(d))) {
        if (!d->alloc) { /* out of memory before the first slot: claim without a record */
            pthread_mutex_unlock(&d->mu);
            return 0;
        }
        drop_oldest(d);
    }
    e = &d->e[(d->head + d->used++) % d->alloc];
    strncpy(e->id, id, sizeof e->id - 1);
    e->seen_ms = now_ms;
    pthread_mutex_unlock(&d->mu);
    return 0;
}

void ib_cmd_dedup_forget(struct ib_cmd_dedup *d, const char *id)
{
    pthread_mutex_lock(&d->mu);
    struct entry *e = find(d, id);
    if (e) /* the entry stays in its slot, unfindable, until it is the oldest */
        e->id[0] = '\0';
    pthread_mutex_unlock(&d->mu);
}

void ib_cmd_dedup_done(struct ib_cmd_dedup *d, const char *id, const struct ib_cmd_tag_result *res,
                       size_t n)
{
    struct ib_cmd_tag_result *copy = malloc((n ? n : 1) * sizeof *copy);
    if (copy)
        memcpy(copy, res, n * sizeof *copy);
    pthread_mutex_lock(&d->mu);
    struct entry *e = find(d, id);
    if (e && !e->done && copy) {
        e->res = copy;
        e->n = n;
        e->done = true;
        copy = NULL;
    }
    pthread_mutex_unlock(&d->mu);
    free(copy);
}
