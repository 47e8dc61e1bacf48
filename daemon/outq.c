/* In-memory outbound queue: a singly linked list in sequence order with a cursor at the first
 * record not yet sent. Records are one allocation each (header, topic and payload together). */
#include "outq.h"

#include "util.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct rec {
    struct rec *next;
    uint64_t seq;
    bool inflight;
    size_t topic_len, len, size;
    char data[]; /* topic NUL payload NUL */
};

struct ib_outq {
    pthread_mutex_t mu; /* guards every field below */
    pthread_cond_t cv;
    struct rec *head, *tail;
    uint64_t next_seq;
    size_t bytes, max_bytes;
    uint64_t n, n_inflight, pushed, acked, dropped;
    unsigned wakeups;
};

struct ib_outq *ib_outq_new(size_t max_bytes)
{
    struct ib_outq *q = calloc(1, sizeof *q);
    if (!q)
        return NULL;
    pthread_mutex_init(&q->mu, NULL);
    ib_cond_init_monotonic(&q->cv);
    q->next_seq = 1;
    q->max_bytes = max_bytes;
    return q;
}

void ib_outq_free(struct ib_outq *q)
{
    if (!q)
        return;
    struct rec *r = q->head;
    while (r) {
        struct rec *n = r->next;
        free(r);
        r = n;
    }
    pthread_mutex_destroy(&q->mu);
    pthread_cond_destroy(&q->cv);
    free(q);
}

/* Remove `r` whose predecessor is `prev` (NULL for the head). */
static void unlink_rec(struct ib_outq *q, struct rec *prev, struct rec *r)
{
    if (prev)
        prev->next = r->next;
    else
        q->head = r->next;
    if (q->tail == r)
        q->tail = prev;
    q->bytes -= r->size;
    q->n--;
    if (r->inflight)
        q->n_inflight--;
    free(r);
}

uint64_t ib_outq_push(struct ib_outq *q, const char *topic, const char *body, size_t body_len)
{
    size_t tl = strlen(topic);
    /* {"seq": + up to 20 digits */
    size_t cap = sizeof(struct rec) + tl + 1 + 8 + 20 + body_len + 1;
    struct rec *r = malloc(cap);
    pthread_mutex_lock(&q->mu);
    if (!r) {
        q->dropped++;
        pthread_mutex_unlock(&q->mu);
        return 0;
    }
    r->next = NULL;
    r->seq = q->next_seq++;
    r->inflight = false;
    r->topic_len = tl;
    memcpy(r->data, topic, tl + 1);
    char *p = r->data + tl + 1;
    int hl = snprintf(p, 8 + 21, "{\"seq\":%llu", (unsigned long long)r->seq);
    memcpy(p + hl, body, body_len);
    r->len = (size_t)hl + body_len;
    p[r->len] = '\0';
    r->size = cap;
    /* Full: the oldest records not in flight make room (counted, never silently). */
    struct rec *prev = NULL, *it = q->head;
    while (q->bytes + cap > q->max_bytes && it) {
        struct rec *next = it->next;
        if (!it->inflight) {
            unlink_rec(q, prev, it);
            q->dropped++;
        } else {
            prev = it;
        }
        it = next;
    }
    if (q->tail)
        q->tail->next = r;
    else
        q->head = r;
    q->tail = r;
    q->bytes += cap;
    q->n++;
    q->pushed++;
    uint64_t seq = r->seq;
    pthread_cond_signal(&q->cv);
    pthread_mutex_unlock(&q->mu);
    return seq;
}

static struct rec *first_unsent(struct ib_outq *q)
{
    /* In-flight records sit at the front (sent in order); the scan is bounded by the window. */
    struct rec *r = q->head;
    while (r && r->inflight)
        r = r->next;
    return r;
}

bool ib_outq_next(struct ib_outq *q, int timeout_ms, unsigned max_inflight, struct ib_outq_rec *out)
{
    struct timespec dl = ib_deadline_ms(timeout_ms);
    pthread_mutex_lock(&q->mu);
    unsigned w = q->wakeups;
    struct rec *r;
    while (!(r = first_unsent(q)) || q->n_inflight >= max_inflight) {
        if (q->wakeups != w || pthread_cond_timedwait(&q->cv, &q->mu, &dl) != 0 ||
            q->wakeups != w) {
            pthread_mutex_unlock(&q->mu);
            return false;
        }
    }
    r->inflight = true;
    q->n_inflight++;
    out->seq = r->seq;
    out->topic = r->data;
    out->payload = r->data + r->topic_len + 1;
    out->len = r->len;
    pthread_mutex_unlock(&q->mu);
    return true;
}

void ib_outq_ack(struct ib_outq *q, uint64_t seq)
{
    pthread_mutex_lock(&q->mu);
    struct rec *prev = NULL;
    for (struct rec *r = q->head; r; prev = r, r = r->next)
        if (r->seq == seq) {
            unlink_rec(q, prev, r);
            q->acked++;
            break;
        }
    pthread_cond_broadcast(&q->cv);
    pthread_mutex_unlock(&q->mu);
}

void ib_outq_nack(struct ib_outq *q, uint64_t seq)
{
    pthread_mutex_lock(&q->mu);
    /* Keep order: everything in flight from this one on is sent again. */
    bool found = false;
    for (struct rec *r = q->head; r; r = r->next) {
        if (r->seq == seq)
            found = true;
        if (found && r->inflight) {
            r->inflight = false;
            q->n_inflight--;
        }
    }
    pthread_cond_broadcast(&q->cv);
    pthread_mutex_unlock(&q->mu);
}

void ib_outq_rewind(struct ib_outq *q)
{
    pthread_mutex_lock(&q->mu);
    for (struct rec *r = q->head; r; r = r->next)
        r->inflight = false;
    q->n_inflight = 0;
    pthread_cond_broadcast(&q->cv);
    pthread_mutex_unlock(&q->mu);
}

void ib_outq_wake(struct ib_outq *q)
{
    pthread_mutex_lock(&q->mu);
    q->wakeups++;
    pthread_cond_broadcast(&q->cv);
    pthread_mutex_unlock(&q->mu);
}

void ib_outq_stats(struct ib_outq *q, struct ib_outq_stats *st)
{
    pthread_mutex_lock(&q->mu);
    st->queued = q->n;
    st->inflight = q->n_inflight;
    st->bytes = q->bytes;
    st->pushed = q->pushed;
    st->acked = q->acked;
    st->dropped = q->dropped;
    st->last_seq = q->next_seq - 1;
    pthread_mutex_unlock(&q->mu);
}

void ib_outq_set_limit(struct ib_outq *q, size_t max_bytes)
{
    pthread_mutex_lock(&q->mu);
    q->max_bytes = max_bytes;
    pthread_mutex_unlock(&q->mu);
}
