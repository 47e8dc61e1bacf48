/* The north's answers to commands: a bounded queue filled by the command path
 * (ib_north_answer), published by the north thread once the connection is ready. */
#include "north_impl.h"

#include <stdlib.h>
#include <string.h>

#include "log.h"

/* An answer waiting for the north thread (ib_north_answer): one allocation. */
struct north_answer {
    struct north_answer *next;
    char *topic;
    char *payload;
    size_t len;
    void *corr; /* NULL: none */
    size_t corr_len;
};

static void answer_free(struct north_answer *a)
{
    free(a);
}

/* Put answers back at the head of the queue (paho's buffer was full). */
static void requeue_answers(struct ib_north *n, struct north_answer *a)
{
    struct north_answer *last = a;
    size_t k = 1;
    while (last->next) {
        last = last->next;
        k++;
    }
    pthread_mutex_lock(&n->mu);
    last->next = n->ans_head;
    if (!n->ans_head)
        n->ans_tail = last;
    n->ans_head = a;
    n->ans_n += k;
    pthread_mutex_unlock(&n->mu);
}

/* Publish the answers to commands that wait (the north thread, connected and ready). When
 * paho's buffer is full, the rest wait for the next round (acknowledgements free it). */
void north_send_answers(struct ib_north *n)
{
    pthread_mutex_lock(&n->mu);
    struct north_answer *a = n->ans_head;
    n->ans_head = n->ans_tail = NULL;
    n->ans_n = 0;
    pthread_mutex_unlock(&n->mu);
    while (a) {
        struct north_answer *next = a->next;
        MQTTProperties props = MQTTProperties_initializer;
        MQTTProperty cd = {.identifier = MQTTPROPERTY_CODE_CORRELATION_DATA};
        bool with = a->corr && n->cfg->version == IB_MQTT_V5;
        if (with) {
            cd.value.data.data = a->corr;
            cd.value.data.len = (int)a->corr_len;
            MQTTProperties_add(&props, &cd); /* copies */
        }
        int rc =
            north_publish_props(n, a->topic, a->payload, a->len, 1, 0, 0, with ? &props : NULL);
        MQTTProperties_free(&props);
        if (rc == MQTTASYNC_MAX_BUFFERED_MESSAGES) {
            requeue_answers(n, a);
            return;
        }
        if (rc != 0)
            ib_log(IB_LOG_WARNING, NULL, NULL, NULL,
                   "north: an answer to a command on %s could not be sent: %s", a->topic,
                   MQTTAsync_strerror(rc));
        answer_free(a);
        a = next;
    }
}

int ib_north_answer(struct ib_north *n, const char *topic, const char *payload, size_t len,
                    const void *correlation, size_t correlation_len)
{
    size_t tl = strlen(topic) + 1;
    struct north_answer *a = malloc(sizeof *a + tl + len + correlation_len);
    if (!a)
        return -1;
    a->next = NULL;
    a->topic = (char *)(a + 1);
    memcpy(a->topic, topic, tl);
    a->payload = a->topic + tl;
    memcpy(a->payload, payload, len);
    a->len = len;
    a->corr = correlation ? a->payload + len : NULL;
    a->corr_len = correlation ? correlation_len : 0;
    if (correlation)
        memcpy(a->corr, correlation, correlation_len);
    pthread_mutex_lock(&n->mu);
    bool full = n->ans_n >= IB_NORTH_MAX_ANSWERS;
    if (!full) {
        if (n->ans_tail)
            n->ans_tail->next = a;
        else
            n->ans_head = a;
        n->ans_tail = a;
        n->ans_n++;
    }
    pthread_mutex_unlock(&n->mu);
    if (full) {
        free(a);
        return -1;
    }
    north_wake(n);
    return 0;
}

/* The answers still queued when the north is freed. */
void north_answers_free(struct ib_north *n)
{
    for (struct north_answer *a = n->ans_head, *next; a; a = next) {
        next = a->next;
        answer_free(a);
    }
    n->ans_head = n->ans_tail = NULL;
    n->ans_n = 0;
}
