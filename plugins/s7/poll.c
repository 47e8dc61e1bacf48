/* S7 plugin, the read path: one poll of one group sends its planned Read Var requests in turn,
 * records each item's outcome, then decodes every tag from the group buffer — good only when
 * every item its bytes came from succeeded, else bad with that item's reason and return code.
 * A transport failure closes the session; the daemon reopens it with back-off. */
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "instance.h"

uint8_t s7_reason_of(int err)
{
    switch (err) {
    case IB_ERR_TIMEOUT:
        return IB_R_TIMEOUT;
    case IB_ERR_PROTOCOL:
        return IB_R_PROTOCOL;
    default:
        return IB_R_CONN_LOST;
    }
}

int s7_group_build(struct s7_group *grp, uint32_t max_gap)
{
    s7_plan_free(&grp->plan);
    free(grp->buf);
    free(grp->state);
    free(grp->ts);
    grp->buf = NULL;
    grp->state = NULL;
    grp->ts = NULL;
    struct s7_plan_item *items = calloc(grp->n_tags ? grp->n_tags : 1, sizeof *items);
    if (!items)
        return IB_ERR_NOMEM;
    for (uint32_t i = 0; i < grp->n_tags; i++) {
        const struct s7_tag *t = &grp->tags[i];
        items[i] =
            (struct s7_plan_item){t->addr.area, t->addr.db, t->addr.offset, t->size, t->alone};
    }
    int rc = s7_plan_spans(items, grp->n_tags, max_gap, &grp->plan);
    free(items);
    if (rc != 0)
        return rc;
    for (uint32_t i = 0; i < grp->n_tags; i++)
        grp->tags[i].slot = grp->plan.slot[i];
    grp->buf = calloc(grp->plan.buf_size + 1, 1);
    return grp->buf == NULL ? IB_ERR_NOMEM : 0;
}

static int pack_group(struct s7_group *grp, uint32_t pdu, uint32_t max_items)
{
    if (grp->plan.pdu == pdu && grp->state)
        return 0;
    int rc = s7_plan_pack(&grp->plan, pdu, max_items);
    if (rc != 0)
        return rc;
    free(grp->state);
    free(grp->ts);
    grp->state = calloc(grp->plan.n_chunks + 1, sizeof *grp->state);
    grp->ts = calloc(grp->plan.n_requests + 1, sizeof *grp->ts);
    return !grp->state || grp->ts == NULL ? IB_ERR_NOMEM : 0;
}

int s7_pack_all(struct s7_instance *in, uint32_t pdu)
{
    for (uint32_t d = 0; d < in->n_devices; d++)
        for (uint32_t g = 0; g < in->devices[d].n_groups; g++) {
            int rc = pack_group(&in->devices[d].groups[g], pdu, in->devices[d].max_items);
            if (rc != 0)
                return rc;
        }
    return 0;
}

static void mark_request(struct s7_group *grp, uint32_t r, uint8_t reason, uint16_t code,
                         int64_t ts)
{
    const struct s7_plan_request *rq = &grp->plan.requests[r];
    for (uint32_t c = rq->first; c < rq->first + rq->n; c++)
        grp->state[c] = (struct s7_chunk_state){reason, code};
    grp->ts[r] = ts;
}

static void log_io(struct s7_instance *in, const struct s7_device *dev, const struct s7_group *grp,
                   int rc)
{
    int64_t now = in->host->monotonic_ms();
    switch (ib_episode_fail(&in->io_ep, rc, now)) {
    case IB_EPISODE_STARTED:
    case IB_EPISODE_CHANGED:
        S7_LOG(in, IB_LOG_WARNING, dev->name, NULL, "group %s: %s", grp->name, in->session.error);
        break;
    case IB_EPISODE_REMIND:
        S7_LOG(in, IB_LOG_WARNING, dev->name, NULL,
               "group %s: %s (still failing: %" PRIu64 " times in %" PRId64 " s)", grp->name,
               in->session.error, in->io_ep.count, ib_episode_age_s(&in->io_ep, now));
        break;
    default:
        break;
    }
}

/* Build and send request r; its PDU reference in *ref. 0, or the session's ib_err (the
 * session is closed then). */
static int send_request(struct s7_instance *in, struct s7_group *grp, uint32_t r, uint16_t *ref)
{
    struct s7_session *s = &in->session;
    const struct s7_plan_request *rq = &grp->plan.requests[r];
    struct s7_item items[S7_MAX_ITEMS];
    for (uint32_t k = 0; k < rq->n; k++)
        items[k] = s7_plan_item_of(&grp->plan, &grp->plan.chunks[rq->first + k]);
    *ref = s7_session_next_ref(s);
    size_t len = s7_wire_read(s->tx, sizeof s->tx, *ref, items, rq->n);
    if (len == 0) { /* the planner keeps within the limits: cannot happen */
        snprintf(s->error, sizeof s->error, "request %u of %u items cannot be encoded", r, rq->n);
        s7_session_close(s);
        return IB_ERR_PROTOCOL;
    }
    return s7_session_send(s, len);
}

/* Store the answer *pdu to request r. 0, IB_ERR_EXCEPTION (the PLC refused the request as a
 * whole), or IB_ERR_PROTOCOL (malformed: the session is closed). */
static int store_answer(struct s7_instance *in, struct s7_group *grp, uint32_t r,
                        const struct s7_pdu *pdu, int64_t ts)
{
    struct s7_session *s = &in->session;
    const struct s7_plan_request *rq = &grp->plan.requests[r];
    struct s7_result res[S7_MAX_ITEMS];
    if (pdu->err_class != 0 || pdu->err_code != 0) {
        snprintf(s->error, sizeof s->error,
                 "the PLC refused a Read Var request of %u items: error class %02X code %02X",
                 rq->n, pdu->err_class, pdu->err_code);
        mark_request(grp, r, IB_R_EXCEPTION, (uint16_t)(pdu->err_class << 8 | pdu->err_code), ts);
        return IB_ERR_EXCEPTION;
    }
    if (s7_wire_read_ack(pdu, rq->n, res) != 0) {
        snprintf(s->error, sizeof s->error,
                 "%s:%d answered a Read Var request of %u items with a malformed response",
                 s->cfg.host, s->cfg.port, rq->n);
        s7_session_close(s);
        mark_request(grp, r, IB_R_PROTOCOL, 0, ts);
        return IB_ERR_PROTOCOL;
    }
    grp->ts[r] = ts;
    for (uint32_t k = 0; k < rq->n; k++) {
        const struct s7_plan_chunk *c = &grp->plan.chunks[rq->first + k];
        struct s7_chunk_state *st = &grp->state[rq->first + k];
        if (res[k].rc != S7_RC_OK) {
            *st = (struct s7_chunk_state){IB_R_EXCEPTION, res[k].rc};
        } else if (res[k].len != c->len) {
            *st = (struct s7_chunk_state){IB_R_PROTOCOL, 0};
        } else {
            memcpy(grp->buf + c->buf, res[k].data, c->len);
            *st = (struct s7_chunk_state){IB_R_NONE, 0};
        }
    }
    return 0;
}

/* The requests of one poll in flight: up to `jobs` sent before their answers, matched by PDU
 * reference (a PLC may answer parallel jobs in any order). */
struct flight {
    uint32_t jobs, sent, answered;
    uint32_t req[S7_MAX_JOBS];
    uint16_t ref[S7_MAX_JOBS];
    uint32_t n; /* outstanding */
};

/* Receive one answer and store it. 0, or an ib_err; with the session closed, the outstanding
 * requests are marked with the failure (the first with its reason, the others lost). */
static int receive_one(struct s7_instance *in, struct s7_group *grp, struct flight *f)
{
    struct s7_pdu pdu;
    int rc = s7_session_receive(&in->session, &pdu);
    int64_t ts = in->host->now_ms();
    uint32_t k = 0;
    while (rc == 0 && k < f->n && f->ref[k] != pdu.ref)
        k++;
    if (rc == 0 && k == f->n) {
        snprintf(in->session.error, sizeof in->session.error,
                 "%s:%d answered with PDU reference %u, which no request in flight has",
                 in->session.cfg.host, in->session.cfg.port, pdu.ref);
        s7_session_close(&in->session);
        rc = IB_ERR_PROTOCOL;
    }
    if (rc != 0) {
        for (uint32_t j = 0; j < f->n; j++)
            mark_request(grp, f->req[j], j == 0 ? s7_reason_of(rc) : IB_R_CONN_LOST, 0, ts);
        f->n = 0;
        return rc;
    }
    uint32_t r = f->req[k];
    f->req[k] = f->req[f->n - 1];
    f->ref[k] = f->ref[f->n - 1];
    f->n--;
    f->answered++;
    return store_answer(in, grp, r, &pdu, ts);
}

/* Read every request of the group, `jobs` at a time. Returns 0, IB_ERR_EXCEPTION (a request
 * refused as a whole; the others read) or the transport failure that closed the session. */
static int read_requests(struct s7_instance *in, const struct s7_device *dev, struct s7_group *grp)
{
    struct flight f = {.jobs = s7_session_jobs(&in->session)};
    int worst = 0;
    if (f.jobs > S7_MAX_JOBS)
        f.jobs = S7_MAX_JOBS;
    uint32_t total = grp->plan.n_requests;
    while (f.answered < total && in->session.fd >= 0) {
        while (f.sent < total && f.n < f.jobs) {
            uint16_t ref;
            int rc = send_request(in, grp, f.sent, &ref);
            f.req[f.n] = f.sent;
            f.ref[f.n++] = ref;
            f.sent++;
            if (rc != 0) {
                int64_t ts = in->host->now_ms();
                for (uint32_t j = 0; j < f.n; j++)
                    mark_request(grp, f.req[j], j + 1 == f.n ? s7_reason_of(rc) : IB_R_CONN_LOST, 0,
                                 ts);
                log_io(in, dev, grp, rc);
                worst = IB_ERR_CONNECTION;
                break;
            }
        }
        if (in->session.fd < 0)
            break;
        int rc = receive_one(in, grp, &f);
        if (rc != 0 && in->session.fd < 0) {
            log_io(in, dev, grp, rc);
            worst = IB_ERR_CONNECTION;
        } else if (rc != 0 && worst == 0) {
            worst = IB_ERR_EXCEPTION;
        }
    }
    int64_t ts = in->host->now_ms();
    if (in->session.fd >= 0 && s7_session_check_idle(&in->session) != 0) {
        /* bytes past the last answer: the stream is out of step, nothing of it is trusted */
        log_io(in, dev, grp, IB_ERR_PROTOCOL);
        for (uint32_t r = 0; r < total; r++)
            mark_request(grp, r, IB_R_PROTOCOL, 0, ts);
        worst = IB_ERR_CONNECTION;
    }
    for (uint32_t r = f.sent; r < total; r++) /* never sent: the connection was lost */
        mark_request(grp, r, IB_R_CONN_LOST, 0, ts);
    return worst;
}

/* The first chunk whose bytes end after `at` (chunks are sorted by buffer offset). */
static uint32_t first_chunk(const struct s7_plan *plan, uint32_t at)
{
    uint32_t lo = 0, hi = plan->n_chunks;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (plan->chunks[mid].buf + plan->chunks[mid].len <= at)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* Tag lines of one poll: at most S7_TAG_LINES, the rest counted in one line (a missing DB of
 * 1,000 tags is 9 lines, not 1,000). */
#define S7_TAG_LINES 8
struct tag_log {
    unsigned lines;
    unsigned more_bad, more_good;
};

static bool is_tag_failure(uint8_t reason)
{
    /* connection-wide failures are logged once for the connection, not per tag */
    return reason == IB_R_EXCEPTION || reason == IB_R_DECODE;
}

static void log_tag(struct s7_instance *in, const struct s7_device *dev, struct s7_tag *t,
                    uint8_t reason, uint16_t code, struct tag_log *tl)
{
    if (t->logged_reason == reason && t->logged_code == code)
        return;
    t->logged_reason = reason;
    t->logged_code = code;
    if (!is_tag_failure(reason))
        return;
    if (tl->lines >= S7_TAG_LINES) {
        tl->more_bad++;
        return;
    }
    tl->lines++;
    char ab[40];
    s7_address_format(&t->addr, ab, sizeof ab);
    if (reason == IB_R_DECODE)
        S7_LOG(in, IB_LOG_WARNING, dev->name, t->name,
               "%s does not hold a valid %s value (bad quality, decode error)", ab,
               s7_type_names[t->type]);
    else if (code > 0xFF)
        S7_LOG(in, IB_LOG_WARNING, dev->name, t->name,
               "the PLC refused the request reading %s: error class %02X code %02X", ab, code >> 8,
               code & 0xFF);
    else
        S7_LOG(in, IB_LOG_WARNING, dev->name, t->name, "reading %s: %s (return code %02X); %s", ab,
               s7_wire_rc_text((uint8_t)code), code, s7_wire_rc_hint((uint8_t)code));
}

static void fill_tag(struct s7_instance *in, const struct s7_device *dev, struct s7_group *grp,
                     uint32_t i, struct ib_sample *smp, struct tag_log *tl)
{
    struct s7_tag *t = &grp->tags[i];
    const struct s7_plan *plan = &grp->plan;
    int64_t ts = 0;
    for (uint32_t c = first_chunk(plan, t->slot);
         c < plan->n_chunks && plan->chunks[c].buf < t->slot + t->size; c++) {
        const struct s7_chunk_state *st = &grp->state[c];
        ts = grp->ts[plan->chunks[c].request];
        if (st->reason != IB_R_NONE) {
            ib_sample_bad(smp, ts, st->reason, st->code);
            log_tag(in, dev, t, st->reason, st->code, tl);
            return;
        }
    }
    if (s7_type_decode((enum s7_type)t->type, (enum s7_time_format)t->format, grp->buf + t->slot,
                       t->size, t->addr.bit, t->length, t->text, t->text_cap, &smp->value) != 0) {
        ib_sample_bad(smp, ts, IB_R_DECODE, 0);
        log_tag(in, dev, t, IB_R_DECODE, 0, tl);
        return;
    }
    ib_sample_good(smp, ts);
    if (is_tag_failure(t->logged_reason)) {
        if (tl->lines < S7_TAG_LINES) {
            tl->lines++;
            S7_LOG(in, IB_LOG_NOTICE, dev->name, t->name, "reads good again");
        } else {
            tl->more_good++;
        }
    }
    t->logged_reason = IB_R_NONE;
    t->logged_code = 0;
}

/* Tags refused as "address out of range" while sharing a span with others: read each alone from
 * the next poll on, so that the one past the end does not take its neighbours with it. */
static void isolate_refused(struct s7_instance *in, struct s7_device *dev, struct s7_group *grp,
                            const struct ib_sample *samples)
{
    uint32_t n = 0;
    for (uint32_t i = 0; i < grp->n_tags; i++) {
        struct s7_tag *t = &grp->tags[i];
        if (t->alone || samples[i].reason != IB_R_EXCEPTION || samples[i].code != S7_RC_ADDRESS)
            continue;
        uint32_t span = 0;
        while (span + 1 < grp->plan.n_spans && grp->plan.spans[span + 1].buf <= t->slot)
            span++;
        if (grp->plan.spans[span].size == t->size)
            continue; /* already alone in its span */
        t->alone = true;
        n++;
    }
    if (n == 0)
        return;
    uint32_t pdu = grp->plan.pdu;
    int rc = s7_group_build(grp, dev->max_gap);
    if (rc == 0)
        rc = pack_group(grp, pdu, dev->max_items);
    if (rc != 0) {
        S7_LOG(in, IB_LOG_ERR, dev->name, NULL, "group %s: cannot re-plan: %s", grp->name,
               ib_strerror(rc));
        s7_session_close(&in->session); /* reopened (and re-planned) by the daemon */
        return;
    }
    S7_LOG(in, IB_LOG_NOTICE, dev->name, NULL,
           "group %s: %u tags shared a span with an address the PLC refused (out of range): "
           "they are read one by one from now on, %u Read Var requests",
           grp->name, n, grp->plan.n_requests);
}

int s7_poll_group(struct s7_instance *in, uint32_t device, uint32_t group,
                  struct ib_sample *samples)
{
    struct s7_device *dev = &in->devices[device];
    struct s7_group *grp = &dev->groups[group];
    int worst = 0;
    if (in->session.fd < 0 || !grp->state) {
        int64_t now = in->host->now_ms();
        for (uint32_t i = 0; i < grp->n_tags; i++)
            ib_sample_bad(&samples[i], now, IB_R_CONN_LOST, 0);
        return IB_ERR_CONNECTION;
    }
    worst = read_requests(in, dev, grp);
    struct tag_log tl = {0};
    for (uint32_t i = 0; i < grp->n_tags; i++)
        fill_tag(in, dev, grp, i, &samples[i], &tl);
    if (tl.more_bad > 0 || tl.more_good > 0)
        S7_LOG(in, IB_LOG_WARNING, dev->name, NULL,
               "group %s: %u more tags went bad and %u more read good again (not listed)",
               grp->name, tl.more_bad, tl.more_good);
    if (in->session.fd < 0)
        return IB_ERR_CONNECTION;
    isolate_refused(in, dev, grp, samples);
    if (worst == 0 && ib_episode_ok(&in->io_ep, in->host->monotonic_ms()) == IB_EPISODE_ENDED)
        S7_LOG(in, IB_LOG_NOTICE, dev->name, NULL, "group %s reads again", grp->name);
    return worst == IB_ERR_EXCEPTION ? IB_ERR_EXCEPTION : 0;
}
