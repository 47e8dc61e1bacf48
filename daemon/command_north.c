/* The MQTT front end of commands: a request from the command topic (a signed envelope when
 * required), parsed, handed to the command service; its answer published on the MQTT 5
 * Response Topic with its Correlation Data, or on the configured response topic. */
#include "command_impl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "command_answer.h"
#include "command_parse.h"
#include "config.h"
#include "log.h"
#include "north.h"
#include "remote.h"
#include "topic.h"

struct ib_cmd_north {
    pthread_mutex_t mu; /* north and the settings below: attach/detach against paho's threads */
    struct ib_north *north;
    char response_topic[512];
    bool require_signature;
    char public_key[4096];
};

/* Where one request's answer goes: made per request, freed by its answer. */
struct reply {
    struct ib_commands *c;
    char topic[512];
    size_t corr_len;
    unsigned char corr[];
};

struct ib_cmd_north *ib_cmd_north_new(void)
{
    struct ib_cmd_north *cn = calloc(1, sizeof *cn);
    if (cn)
        pthread_mutex_init(&cn->mu, NULL);
    return cn;
}

void ib_cmd_north_free(struct ib_cmd_north *cn)
{
    if (!cn)
        return;
    pthread_mutex_destroy(&cn->mu);
    free(cn);
}

/* Publish `json` to the reply's topic if a north is attached. Any thread. */
static void send_json(struct ib_commands *c, const char *topic, const struct ib_buf *b,
                      const void *corr, size_t corr_len)
{
    struct ib_cmd_north *cn = c->front;
    pthread_mutex_lock(&cn->mu);
    if (cn->north && b->p &&
        ib_north_answer(cn->north, topic, b->p, b->len, corr_len ? corr : NULL, corr_len) < 0)
        ib_log(IB_LOG_WARNING, NULL, NULL, NULL,
               "commands: an answer could not be queued (too many wait): the requester gets none");
    pthread_mutex_unlock(&cn->mu);
}

static void on_answer(void *ud, const struct ib_cmd_answer *a)
{
    struct reply *r = ud;
    struct ib_buf b = {0};
    if (ib_command_answer_json(&b, a, ib_now_ms()) == 0)
        send_json(r->c, r->topic, &b, r->corr, r->corr_len);
    ib_buf_free(&b);
    free(r);
}

/* A request refused as a whole (malformed, unsigned): answered when it has an id, always
 * logged and counted. */
static void refuse(struct ib_commands *c, struct reply *r, const struct ib_cmd_request *q,
                   int result, const char *why)
{
    ib_command_note(c, result);
    ib_log(IB_LOG_WARNING, NULL, q->device[0] ? q->device : NULL, NULL,
           "command %s refused (%s): %s%s", q->has_id ? q->id : "(no id)",
           ib_command_result_name(result), why, q->has_id ? "" : "; not answered: it has no id");
    if (q->has_id) {
        struct ib_buf b = {0};
        if (ib_command_refusal_json(&b, q->id, q->device, result, why, ib_now_ms()) == 0)
            send_json(c, r->topic, &b, r->corr, r->corr_len);
        ib_buf_free(&b);
    }
    free(r);
}

static struct reply *new_reply(struct ib_commands *c, const struct ib_north_req *m)
{
    struct reply *r = calloc(1, sizeof *r + m->correlation_len);
    if (!r)
        return NULL;
    r->c = c;
    struct ib_cmd_north *cn = c->front;
    pthread_mutex_lock(&cn->mu);
    snprintf(r->topic, sizeof r->topic, "%s",
             m->response_topic && *m->response_topic ? m->response_topic : cn->response_topic);
    pthread_mutex_unlock(&cn->mu);
    if (m->correlation) {
        memcpy(r->corr, m->correlation, m->correlation_len);
        r->corr_len = m->correlation_len;
    }
    return r;
}

/* The request's JSON: the payload, or the body of a verified envelope. -1 with `why` when a
 * signature is required and missing or wrong (the body is still parsed for its id). */
static int unwrap(struct ib_cmd_north *cn, const struct ib_north_req *m, const char **body,
                  size_t *len, bool *required_out, char *why, size_t whylen)
{
    *body = m->payload;
    *len = m->len;
    pthread_mutex_lock(&cn->mu);
    bool required = *required_out = cn->require_signature;
    char key[sizeof cn->public_key];
    memcpy(key, cn->public_key, sizeof key);
    pthread_mutex_unlock(&cn->mu);
    if (!required)
        return 0;
    struct ib_signed_doc d;
    if (ib_signed_verify(&ib_signed_command, m->payload, m->len, key, &d, why, whylen) == 0) {
        *body = d.body;
        *len = d.body_len;
        return 0;
    }
    const char *sep = memmem(m->payload, m->len, "\n\n", 2); /* for the id of the answer */
    if (sep) {
        *body = sep + 2;
        *len = m->len - (size_t)(sep + 2 - m->payload);
    }
    return -1;
}

static void start(struct ib_commands *c, struct reply *r, const struct ib_cmd_request *q,
                  const struct ib_north_req *m)
{
    struct ib_cmd_meta meta = {.id = q->id,
                               .ts_ms = q->ts_ms,
                               .received_ms = ib_now_ms(),
                               .requester = m->requester,
                               .source = "mqtt",
                               .verify = q->verify,
                               .stale_session = m->retained};
    const char *tags[IB_CMD_MAX_TAGS];
    for (size_t i = 0; i < q->n; i++)
        tags[i] = q->w[i].tag;
    int rc = q->is_read ? ib_command_read(c, q->device, tags, q->n, &meta, on_answer, r)
                        : ib_command_apply_writes(c, q->device, q->w, q->n, &meta, on_answer, r);
    if (rc < 0)
        refuse(c, r, q, IB_CMD_BUSY, "out of memory");
}

void ib_cmd_north_on_request(void *ud, const struct ib_north_req *m)
{
    struct ib_commands *c = ud;
    struct reply *r = new_reply(c, m);
    struct ib_cmd_request *q = malloc(sizeof *q);
    if (!r || !q) {
        free(r);
        free(q);
        ib_log(IB_LOG_ERR, NULL, NULL, NULL, "commands: out of memory: a request is lost");
        return;
    }
    const char *body;
    size_t len;
    char why[512], perr[256];
    bool required;
    int signed_ok = unwrap(c->front, m, &body, &len, &required, why, sizeof why);
    int parsed = ib_command_parse(body, len, q, perr, sizeof perr);
    if (signed_ok < 0)
        refuse(c, r, q, IB_CMD_DENIED, why);
    else if (parsed < 0)
        refuse(c, r, q, IB_CMD_MALFORMED, perr);
    else if (required && !q->ts_ms)
        refuse(c, r, q, IB_CMD_MALFORMED, "a signed request needs ts (its age limits replays)");
    else
        start(c, r, q, m);
    free(q);
}

void ib_cmd_north_attach(struct ib_commands *c, struct ib_north *n, const struct ib_config *cfg)
{
    const struct ib_commands_cfg *cc = &cfg->commands;
    struct ib_cmd_north *cn = c->front;
    if (!cc->enabled)
        return;
    char topic[512];
    struct ib_topic_vars v = {.gateway = cfg->gateway_id};
    if (ib_topic_expand(cc->topic, &v, topic, sizeof topic) <= 0)
        return;
    pthread_mutex_lock(&cn->mu);
    cn->north = n;
    if (ib_topic_expand(cc->response_topic, &v, cn->response_topic, sizeof cn->response_topic) <= 0)
        cn->response_topic[0] = '\0';
    cn->require_signature = cc->require_signature;
    snprintf(cn->public_key, sizeof cn->public_key, "%s", cc->public_key ? cc->public_key : "");
    pthread_mutex_unlock(&cn->mu);
    ib_north_set_requests(n, topic, ib_cmd_north_on_request, c);
}

void ib_cmd_north_detach(struct ib_commands *c)
{
    struct ib_cmd_north *cn = c ? c->front : NULL;
    if (!cn)
        return;
    pthread_mutex_lock(&cn->mu);
    cn->north = NULL;
    pthread_mutex_unlock(&cn->mu);
}
