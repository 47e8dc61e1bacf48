/* A poller's command queue: jobs from any thread, bounded (busy beyond), run one at a time on
 * the poller's thread between polls; answered connection_lost when the poller stops. */
#include "command_impl.h"

#include <stdio.h>
#include <stdlib.h>

#include "gateway_priv.h"

struct ib_cmd_queue {
    pthread_mutex_t mu; /* head, tail, n, closed */
    struct cmd_job *head, *tail;
    size_t n, cap;
    bool closed;
    atomic_bool pending;
    /* poller thread only: when each tag was last written, per group (made at first use) */
    int64_t **last;
    size_t n_groups;
};

struct ib_cmd_queue *ib_cmd_queue_new(size_t cap, size_t n_groups)
{
    struct ib_cmd_queue *q = calloc(1, sizeof *q);
    if (!q || !(q->last = calloc(n_groups ? n_groups : 1, sizeof *q->last))) {
        free(q);
        return NULL;
    }
    q->cap = cap ? cap : 1;
    q->n_groups = n_groups;
    pthread_mutex_init(&q->mu, NULL);
    return q;
}

void ib_cmd_queue_free(struct ib_cmd_queue *q)
{
    if (!q)
        return;
    for (size_t i = 0; i < q->n_groups; i++)
        free(q->last[i]);
    free(q->last);
    pthread_mutex_destroy(&q->mu);
    free(q);
}

int ib_cmd_queue_push(struct poller *p, struct cmd_job *j)
{
    struct ib_cmd_queue *q = p->cmdq;
    if (!q)
        return -2;
    pthread_mutex_lock(&q->mu);
    int rc = q->closed ? -2 : q->n >= q->cap ? -1 : 0;
    if (rc == 0) {
        j->next = NULL;
        if (q->tail)
            q->tail->next = j;
        else
            q->head = j;
        q->tail = j;
        q->n++;
        atomic_store(&q->pending, true);
    }
    pthread_mutex_unlock(&q->mu);
    if (rc == 0) { /* wake the poller from its sleep between polls */
        pthread_mutex_lock(&p->mu);
        pthread_cond_signal(&p->cv);
        pthread_mutex_unlock(&p->mu);
    }
    return rc;
}

bool ib_cmd_queue_pending(const struct ib_cmd_queue *q)
{
    return q && atomic_load(&q->pending);
}

static struct cmd_job *pop(struct ib_cmd_queue *q)
{
    pthread_mutex_lock(&q->mu);
    struct cmd_job *j = q->head;
    if (j) {
        q->head = j->next;
        if (!q->head)
            q->tail = NULL;
        q->n--;
    }
    atomic_store(&q->pending, q->head != NULL);
    pthread_mutex_unlock(&q->mu);
    return j;
}

void ib_cmd_queue_run_one(struct poller *p)
{
    struct cmd_job *j = p->cmdq ? pop(p->cmdq) : NULL;
    if (j)
        ib_command_exec(p, j);
}

void ib_cmd_queue_close(struct poller *p)
{
    struct ib_cmd_queue *q = p->cmdq;
    if (!q)
        return;
    pthread_mutex_lock(&q->mu);
    q->closed = true;
    pthread_mutex_unlock(&q->mu);
    struct cmd_job *j;
    while ((j = pop(q))) {
        for (size_t i = 0; i < j->n; i++)
            if (j->items[i].run) {
                j->res[i].result = IB_CMD_CONNECTION_LOST;
                snprintf(j->res[i].error, sizeof j->res[i].error,
                         "the connection stopped before the command ran: nothing was sent");
            }
        ib_command_finish(j);
    }
}

int64_t *ib_cmd_queue_last_write(struct ib_cmd_queue *q, uint32_t g_index, uint32_t tag,
                                 uint32_t n_tags)
{
    if (g_index >= q->n_groups)
        return NULL;
    if (!q->last[g_index] && !(q->last[g_index] = calloc(n_tags, sizeof **q->last)))
        return NULL;
    return &q->last[g_index][tag];
}
