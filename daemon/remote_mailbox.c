/* The mailbox of signed configuration documents: paho's thread posts every message of the config
 * topic, the main loop takes them in order. Bounded; what does not fit is kept as a refusal so
 * that every document gets a status (docs/remote-config.md). */
#include "remote.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

struct ib_remote_mailbox {
    pthread_mutex_t mu; /* guards everything below but fd */
    int fd;             /* eventfd: readable while something waits */
    char *msg[IB_REMOTE_MAILBOX_SLOTS];
    size_t len[IB_REMOTE_MAILBOX_SLOTS];
    size_t head, n;
    uint64_t overflow; /* messages refused since the last take */
};

struct ib_remote_mailbox *ib_remote_mailbox_new(void)
{
    struct ib_remote_mailbox *m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    m->fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (m->fd < 0) {
        free(m);
        return NULL;
    }
    pthread_mutex_init(&m->mu, NULL);
    return m;
}

void ib_remote_mailbox_free(struct ib_remote_mailbox *m)
{
    if (!m)
        return;
    for (size_t i = 0; i < m->n; i++)
        free(m->msg[(m->head + i) % IB_REMOTE_MAILBOX_SLOTS]);
    close(m->fd);
    pthread_mutex_destroy(&m->mu);
    free(m);
}

int ib_remote_mailbox_fd(const struct ib_remote_mailbox *m)
{
    return m->fd;
}

static void wake(struct ib_remote_mailbox *m)
{
    uint64_t one = 1;
    ssize_t w = write(m->fd, &one, sizeof one);
    (void)w; /* the counter cannot overflow at our rate; EAGAIN means it is readable anyway */
}

void ib_remote_mailbox_post(struct ib_remote_mailbox *m, const char *payload, size_t len)
{
    char *copy = len < SIZE_MAX ? malloc(len + 1) : NULL;
    if (copy) {
        memcpy(copy, payload, len);
        copy[len] = '\0';
    }
    pthread_mutex_lock(&m->mu);
    if (copy && m->n < IB_REMOTE_MAILBOX_SLOTS) {
        size_t at = (m->head + m->n) % IB_REMOTE_MAILBOX_SLOTS;
        m->msg[at] = copy;
        m->len[at] = len;
        m->n++;
        copy = NULL;
    } else {
        m->overflow++;
    }
    pthread_mutex_unlock(&m->mu);
    free(copy);
    wake(m);
}

int ib_remote_mailbox_take(struct ib_remote_mailbox *m, char **msg, size_t *len, uint64_t *overflow)
{
    uint64_t v;
    ssize_t r = read(m->fd, &v, sizeof v);
    (void)r; /* drained; re-armed below while something is left */
    pthread_mutex_lock(&m->mu);
    *overflow = m->overflow;
    m->overflow = 0;
    int got = m->n > 0;
    if (got) {
        *msg = m->msg[m->head];
        *len = m->len[m->head];
        m->msg[m->head] = NULL;
        m->head = (m->head + 1) % IB_REMOTE_MAILBOX_SLOTS;
        m->n--;
    }
    bool more = m->n > 0 || m->overflow > 0;
    pthread_mutex_unlock(&m->mu);
    if (more)
        wake(m);
    return got;
}
