/* The read path: one poll of one device group. Requests run in order; a block the device refuses
 * is bisected down to the tags it refuses and the split is kept; a device that stops answering
 * costs one timeout and is then backed off, so the others on the line keep their period. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <modbus.h>

#include "instance.h"

/* The state of one poll. */
struct poll_ctx {
    struct mb_instance *in;
    struct mb_device *dev;
    struct mb_group *grp;
    bool answered; /* the device answered something (data or an exception) in this poll */
    bool silent;   /* it did not answer the first request it was asked: skip the rest */
    bool lost;     /* the link is gone: the rest is connection_lost */
    bool restore;  /* a refused tag reads again: back to the plan after this poll */
    /* The worst failure, for the return value and the group's log line. */
    struct mb_failure worst;
    uint32_t worst_table, worst_start, worst_count;
    int worst_errno;
    char worst_why[160]; /* what was wrong with its response, when known */
    /* Bisection of one refused block. */
    uint32_t n_scratch;
    bool aborted;
    uint32_t abort_at;
    struct mb_failure abort_f;
    int abort_errno;
    char abort_why[160];
    /* max_outstanding > 1: grp->batch holds the pipelined outcome of the first n_batch requests;
     * request r is batch[r - shift] (bisection inserts requests) */
    bool batched;
    uint32_t n_batch, shift;
};

/* The device refuses the addresses (exception 2, illegal data address) or the length
 * (exception 3, illegal data value, which devices also give for a read past their map). */
static bool is_refusal(const struct mb_failure *f)
{
    return f->reason == IB_R_EXCEPTION && (f->code == 2 || f->code == 3);
}

/* The device (or the gateway in front of it) says nothing useful: no answer at all, or a Modbus
 * TCP gateway's exception 10 (no path) or 11 (the target did not respond). */
static bool is_silence(const struct mb_failure *f)
{
    return f->reason == IB_R_TIMEOUT ||
           (f->reason == IB_R_EXCEPTION && (f->code == 10 || f->code == 11));
}

static void set_state(struct mb_req *q, int64_t ts, uint8_t reason, uint16_t code)
{
    q->ts_ms = ts;
    q->reason = reason;
    q->code = code;
}

static void note_worst(struct poll_ctx *pc, const struct mb_failure *f, uint32_t table,
                       uint32_t start, uint32_t count, int e, const char *why)
{
    if (mb_severity(f->err) <= mb_severity(pc->worst.err))
        return;
    pc->worst = *f;
    pc->worst_table = table;
    pc->worst_start = start;
    pc->worst_count = count;
    pc->worst_errno = e;
    snprintf(pc->worst_why, sizeof(pc->worst_why), "%s", why);
}

static void rebuild_req_of(struct mb_group *grp)
{
    for (uint32_t r = 0; r < grp->n_reqs; r++) {
        const struct mb_req *q = &grp->reqs[r];
        for (uint32_t k = q->first; k < q->first + q->n_items; k++)
            grp->req_of[grp->plan.order[k]] = r;
    }
}

void mb_group_restore_plan(struct mb_group *grp)
{
    for (uint32_t r = 0; r < grp->plan.n_requests; r++) {
        const struct mb_plan_request *p = &grp->plan.requests[r];
        grp->reqs[r] = (struct mb_req){.table = p->table,
                                       .start = p->start,
                                       .count = p->count,
                                       .buf = p->buf,
                                       .first = p->first,
                                       .n_items = p->n_items};
    }
    grp->n_reqs = grp->plan.n_requests;
    grp->split = false;
    rebuild_req_of(grp);
}

static void *buffer_at(struct mb_group *grp, uint32_t table, uint32_t buf)
{
    if (mb_table_is_bits((enum mb_table)table))
        return grp->bits + buf;
    return grp->regs + buf;
}

/* The addresses [start, end) that plan items order[a .. b-1] span. */
static void span(const struct mb_group *grp, uint32_t a, uint32_t b, uint32_t *start, uint32_t *end)
{
    *start = grp->tags[grp->plan.order[a]].address;
    *end = 0;
    for (uint32_t k = a; k < b; k++) {
        const struct mb_tag *t = &grp->tags[grp->plan.order[k]];
        if (t->address + t->width > *end)
            *end = t->address + t->width;
    }
}

static void append(struct poll_ctx *pc, const struct mb_req *parent, uint32_t a, uint32_t b,
                   bool refused, uint16_t code, int64_t ts)
{
    struct mb_group *grp = pc->grp;
    uint32_t start, end;
    span(grp, a, b, &start, &end);
    struct mb_req *q = &grp->scratch[pc->n_scratch++];
    *q = (struct mb_req){.table = parent->table,
                         .start = start,
                         .count = end - start,
                         .buf = parent->buf + (start - parent->start),
                         .first = a,
                         .n_items = b - a,
                         .refused = refused,
                         .refused_code = code};
    set_state(q, ts, refused ? IB_R_EXCEPTION : IB_R_NONE, refused ? code : 0);
}

static int64_t now_ms(const struct poll_ctx *pc)
{
    return pc->in->host->monotonic_ms();
}

/* A tag read alone was refused with exception `code`: logged when that starts or changes. */
static void log_refused_tag(struct poll_ctx *pc, struct mb_tag *t, uint16_t code)
{
    enum ib_episode_event ev = ib_episode_fail(&t->refusal_ep, code, now_ms(pc));
    if (ev == IB_EPISODE_QUIET)
        return;
    MB_LOG(pc->in, IB_LOG_WARNING, pc->dev->name, t->name,
           "unit %d %s %s %u (exception %u, %s): this tag is bad, the others of group %s "
           "are read without it; it is tried again every %u polls",
           pc->dev->unit_id, ev == IB_EPISODE_REMIND ? "still refuses" : "refuses",
           mb_table_name(t->table), t->address, code, mb_errtext(MODBUS_ENOBASE + code),
           pc->grp->name, MB_REFUSED_RECHECK_POLLS);
}

/* A tag's value was read: ends its refusal episode (logged). */
static void note_tag_read(struct poll_ctx *pc, struct mb_tag *t)
{
    struct ib_episode *ep = &t->refusal_ep;
    /* The clock only when an episode ends: not once per good tag (issue 21). */
    if (!ep->active || ib_episode_ok(ep, now_ms(pc)) != IB_EPISODE_ENDED)
        return;
    MB_LOG(pc->in, IB_LOG_NOTICE, pc->dev->name, t->name,
           "unit %d reads %s %u again (refused %" PRIu64 " time(s) in %" PRId64 " s)",
           pc->dev->unit_id, mb_table_name(t->table), t->address, ep->count,
           ib_episode_age_s(ep, now_ms(pc)));
}

/* Items [a, b) of a block the device refused: read them as one request unless that is already
 * known to be refused; when refused, split in halves until the single refused tags are found.
 * Appends the resulting requests to the scratch list. Stops at any other failure (aborted). */
static void bisect(struct poll_ctx *pc, const struct mb_req *parent, uint32_t a, uint32_t b,
                   bool known_refused, uint16_t code)
{
    struct mb_group *grp = pc->grp;
    if (pc->aborted)
        return;
    if (!known_refused) {
        uint32_t start, end;
        span(grp, a, b, &start, &end);
        int e = 0;
        int n = mb_transact_read(pc->in, pc->dev, parent->table, start, end - start,
                                 buffer_at(grp, parent->table, parent->buf + start - parent->start),
                                 &e);
        int64_t ts = pc->in->host->now_ms();
        if (n >= 0) {
            pc->answered = true;
            append(pc, parent, a, b, false, 0, ts);
            return;
        }
        struct mb_failure f = mb_classify(e);
        if (!is_refusal(&f)) {
            pc->aborted = true;
            pc->abort_at = a;
            pc->abort_f = f;
            pc->abort_errno = e;
            snprintf(pc->abort_why, sizeof(pc->abort_why), "%s", pc->in->why);
            return;
        }
        pc->answered = true;
        code = f.code;
    }
    if (b - a == 1) {
        append(pc, parent, a, b, true, code, pc->in->host->now_ms());
        log_refused_tag(pc, &grp->tags[grp->plan.order[a]], code);
        return;
    }
    uint32_t mid = a + (b - a) / 2;
    bisect(pc, parent, a, mid, false, 0);
    bisect(pc, parent, mid, b, false, 0);
}

/* Bisection needs room for a request per tag, in reqs and in scratch. Most groups never meet a
 * refusal: the room is made at the first. 0, or -1 (out of memory: nothing changed). */
static int make_room(struct mb_group *grp)
{
    if (grp->scratch)
        return 0;
    struct mb_req *scratch = calloc(grp->n_tags + 1, sizeof *scratch);
    if (!scratch)
        return -1;
    struct mb_req *reqs = realloc(grp->reqs, (grp->n_tags + 1) * sizeof *reqs);
    if (!reqs) {
        free(scratch);
        return -1;
    }
    grp->reqs = reqs;
    grp->scratch = scratch;
    return 0;
}

/* Replace reqs[r] by the scratch list. The requests still partition the tags, so there is room:
 * never more requests than tags. */
static void splice(struct mb_group *grp, uint32_t r, uint32_t ns)
{
    memmove(&grp->reqs[r + ns], &grp->reqs[r + 1], (grp->n_reqs - r - 1) * sizeof *grp->reqs);
    memcpy(&grp->reqs[r], grp->scratch, ns * sizeof *grp->reqs);
    grp->n_reqs += ns - 1;
    grp->split = true;
    rebuild_req_of(grp);
}

/* Bisection leaves accepted blocks side by side: join those that touch, since their union
 * reads no register that one of them did not read successfully. Blocks with unread registers
 * between them stay apart (the gap may be what the device refused). Returns the new count. */
static uint32_t coalesce(struct mb_req *q, uint32_t n)
{
    uint32_t out = 0;
    for (uint32_t k = 0; k < n; k++) {
        struct mb_req *prev = out > 0 ? &q[out - 1] : NULL;
        bool good = !q[k].refused && q[k].reason == IB_R_NONE;
        if (prev && good && !prev->refused && prev->reason == IB_R_NONE &&
            q[k].start <= prev->start + prev->count) {
            uint32_t end = q[k].start + q[k].count;
            if (end > prev->start + prev->count)
                prev->count = end - prev->start;
            prev->n_items += q[k].n_items;
            continue;
        }
        q[out++] = q[k];
    }
    return out;
}

/* A block came back refused: find out which of its tags the device refuses. Returns how many
 * requests replace it (they have their outcome already). */
static uint32_t narrow_down(struct poll_ctx *pc, uint32_t r, const struct mb_failure *f, int e)
{
    struct mb_group *grp = pc->grp;
    struct mb_req parent = grp->reqs[r];
    pc->n_scratch = 0;
    pc->aborted = false;
    bisect(pc, &parent, parent.first, parent.first + parent.n_items, true, f->code);
    if (pc->aborted) {
        /* What is left is kept as one request with the failure that stopped the search; the
         * next poll reads it again (and narrows it down further if it is still refused). */
        struct mb_req *q = &grp->scratch[pc->n_scratch];
        append(pc, &parent, pc->abort_at, parent.first + parent.n_items, false, 0,
               pc->in->host->now_ms());
        set_state(q, q->ts_ms, pc->abort_f.reason, pc->abort_f.code);
        note_worst(pc, &pc->abort_f, q->table, q->start, q->count, pc->abort_errno, pc->abort_why);
        if (pc->abort_f.reason == IB_R_CONN_LOST) {
            pc->lost = true;
            mb_note_connection_lost(pc->in, pc->dev, pc->abort_errno);
        }
    }
    uint32_t ns = coalesce(grp->scratch, pc->n_scratch);
    uint32_t refused = 0;
    for (uint32_t k = 0; k < ns; k++)
        if (grp->scratch[k].refused && ++refused)
            note_worst(pc,
                       &(struct mb_failure){IB_R_EXCEPTION, grp->scratch[k].refused_code,
                                            IB_ERR_EXCEPTION},
                       grp->scratch[k].table, grp->scratch[k].start, grp->scratch[k].count,
                       MODBUS_ENOBASE + grp->scratch[k].refused_code, "");
    splice(grp, r, ns);
    MB_LOG(pc->in, IB_LOG_NOTICE, pc->dev->name, NULL,
           "group %s: unit %d refused %s %u..%u (%s); narrowed down to %u request(s) and %u "
           "refused tag(s)%s, kept for the next polls",
           grp->name, pc->dev->unit_id, mb_table_name(parent.table), parent.start,
           parent.start + parent.count - 1, mb_errtext(e), ns - refused, refused,
           pc->aborted ? " so far (interrupted by another failure)" : "");
    return ns;
}

static void fill_sample(struct poll_ctx *pc, uint32_t i, struct ib_sample *s)
{
    struct mb_group *grp = pc->grp;
    struct mb_tag *t = &grp->tags[i];
    const struct mb_req *q = &grp->reqs[grp->req_of[i]];

    memset(s, 0, sizeof *s);
    if (q->reason != IB_R_NONE) {
        ib_sample_bad(s, q->ts_ms, q->reason, q->code);
        return;
    }
    switch (t->type) {
    case MB_TYPE_BOOL:
        mb_decode_bit(grp->bits[t->data], &s->value);
        break;
    case MB_TYPE_BIT:
        mb_decode_reg_bit(grp->regs[t->data], t->bit, (enum mb_order)t->order, &s->value);
        break;
    case MB_TYPE_STRING:
        mb_decode_string(grp->regs + t->data, t->width, (enum mb_order)t->order, t->text,
                         &s->value);
        break;
    default:
        if (mb_decode_registers(grp->regs + t->data, (enum mb_type)t->type, (enum mb_order)t->order,
                                &s->value) != 0) {
            ib_sample_bad(s, q->ts_ms, IB_R_DECODE, 0);
            if (ib_episode_fail(&t->decode_ep, IB_R_DECODE, now_ms(pc)) != IB_EPISODE_QUIET)
                MB_LOG(pc->in, IB_LOG_WARNING, pc->dev->name, t->name,
                       "%s %u holds a NaN or infinity, not a %s value%s", mb_table_name(t->table),
                       t->address, mb_decode_type_name(t->type),
                       t->decode_ep.count > 1 ? " (still)" : "");
            return;
        }
    }
    if (t->decode_ep.active && ib_episode_ok(&t->decode_ep, now_ms(pc)) == IB_EPISODE_ENDED)
        MB_LOG(pc->in, IB_LOG_NOTICE, pc->dev->name, t->name,
               "%s %u holds a valid %s value again (after %" PRIu64 " bad reads)",
               mb_table_name(t->table), t->address, mb_decode_type_name(t->type),
               t->decode_ep.count);
    note_tag_read(pc, t);
    ib_sample_good(s, q->ts_ms);
}

/* max_outstanding > 1: read the group's requests with several in flight first; what fails there
 * is read again alone in the loop. Not for a device in back-off (probed alone) nor with a pause
 * between requests. */
static void prefetch(struct poll_ctx *pc)
{
    struct mb_instance *in = pc->in;
    struct mb_group *grp = pc->grp;
    if (in->outstanding <= 1 || grp->n_reqs < 2 || pc->dev->failed_polls > 0 ||
        pc->dev->pause_ms > 0 || !mb_link_pipelines(in->link) || !mb_link_is_open(in->link))
        return;
    if (grp->batch_cap < grp->n_reqs) {
        struct mb_pipe_item *b = realloc(grp->batch, grp->n_reqs * sizeof *b);
        if (!b)
            return; /* one at a time this poll */
        grp->batch = b;
        grp->batch_cap = grp->n_reqs;
    }
    for (uint32_t r = 0; r < grp->n_reqs; r++) {
        const struct mb_req *q = &grp->reqs[r];
        bool skip = q->refused && grp->polls % MB_REFUSED_RECHECK_POLLS != 0;
        grp->batch[r] = (struct mb_pipe_item){.table = (uint8_t)q->table,
                                              .addr = (uint16_t)q->start,
                                              .count = skip ? 0 : (uint16_t)q->count,
                                              .dest = buffer_at(grp, q->table, q->buf)};
    }
    mb_pipeline_read(in, pc->dev, grp);
    pc->batched = true;
    pc->n_batch = grp->n_reqs;
}

/* A request that timed out in flight was asked again alone and the connection was lost: when
 * several requests of the batch went unanswered, the device has read them together on the wire
 * (it may have been too slow to read them in time) and reset the connection for that. That shows
 * it mishandles several in flight: fall back, reopen once, and ask this request again alone. */
static int reset_after_timeouts(struct poll_ctx *pc, const struct mb_req *q, int *e)
{
    struct mb_instance *in = pc->in;
    uint32_t unanswered = in->pipe.timed_out;
    if (unanswered < 2 || in->outstanding <= 1 || mb_classify(*e).reason != IB_R_CONN_LOST)
        return -1;
    char what[160];
    snprintf(what, sizeof what,
             "the connection was closed (%s) after %u requests in flight went unanswered",
             mb_errtext(*e), unanswered);
    mb_pipeline_fall_back(in, pc->dev, what);
    if (mb_link_open(in->link) != 0) {
        mb_link_close(in->link);
        return -1;
    }
    return mb_transact_read(in, pc->dev, q->table, q->start, q->count,
                            buffer_at(pc->grp, q->table, q->buf), e);
}

/* Request r: its pipelined answer when it has one, else read alone (with the retries). A request
 * that failed in flight and reads alone shows a device that mishandles several in flight. */
static int read_one(struct poll_ctx *pc, uint32_t r, int *e)
{
    struct mb_group *grp = pc->grp;
    const struct mb_req *q = &grp->reqs[r];
    const struct mb_pipe_item *it = NULL;
    if (pc->batched && r >= pc->shift && r - pc->shift < pc->n_batch)
        it = &grp->batch[r - pc->shift];
    if (it && it->done && it->rc >= 0) {
        *e = 0;
        return it->rc;
    }
    int n = mb_transact_read(pc->in, pc->dev, q->table, q->start, q->count,
                             buffer_at(grp, q->table, q->buf), e);
    if (it && it->done && it->err == ETIMEDOUT && n < 0)
        n = reset_after_timeouts(pc, q, e);
    if (it && it->done && it->err != 0 && n >= 0) {
        char what[160];
        snprintf(what, sizeof what, "reading %s %u..%u failed in flight (%s) and succeeded alone",
                 mb_table_name(q->table), q->start, q->start + q->count - 1, mb_errtext(it->err));
        mb_pipeline_fall_back(pc->in, pc->dev, what);
    }
    return n;
}

static void log_group_outcome(struct poll_ctx *pc)
{
    struct mb_group *grp = pc->grp;
    const struct mb_failure *f = &pc->worst;
    /* A lost connection is the connection's event, and a silent device the device's: both are
     * logged once where they happen. */
    if (f->reason == IB_R_CONN_LOST || pc->silent)
        return;
    struct ib_episode *ep = &grp->ep;
    if (f->err == IB_OK) {
        if (ib_episode_ok(ep, now_ms(pc)) == IB_EPISODE_ENDED)
            MB_LOG(pc->in, IB_LOG_NOTICE, pc->dev->name, NULL,
                   "group %s reads again (after %" PRIu64 " failed poll(s) in %" PRId64 " s)",
                   grp->name, ep->count, ib_episode_age_s(ep, now_ms(pc)));
        return;
    }
    enum ib_episode_event ev = ib_episode_fail(ep, (long)f->reason << 16 | f->code, now_ms(pc));
    if (ev == IB_EPISODE_QUIET)
        return;
    char text[256], more[96] = "";
    if (ev == IB_EPISODE_REMIND)
        snprintf(more, sizeof(more), " (still: %" PRIu64 " failed polls in %" PRId64 " s)",
                 ep->count, ib_episode_age_s(ep, now_ms(pc)));
    MB_LOG(pc->in, IB_LOG_WARNING, pc->dev->name, NULL,
           "group %s: reading %s %u..%u (unit %d) failed: %s%s; logged again when this changes",
           grp->name, mb_table_name(pc->worst_table), pc->worst_start,
           pc->worst_start + pc->worst_count - 1, pc->dev->unit_id,
           mb_describe(text, sizeof(text), pc->worst_errno, pc->worst_why), more);
}

/* A poll found the device silent: logged when that starts or changes, and reminded. */
static void log_silence(struct poll_ctx *pc)
{
    struct mb_device *dev = pc->dev;
    struct ib_episode *ep = &dev->silent_ep;
    char text[256];
    const char *cause = mb_describe(text, sizeof(text), pc->worst_errno, pc->worst_why);
    switch (ib_episode_fail(ep, (long)dev->down_reason << 16 | dev->down_code, now_ms(pc))) {
    case IB_EPISODE_STARTED:
    case IB_EPISODE_CHANGED:
        if (dev->backoff_max_ms > 0)
            MB_LOG(pc->in, IB_LOG_WARNING, dev->name, NULL,
                   "unit %d does not answer (%s): its tags are bad, and it is asked again "
                   "only after 1, 2, 4... poll intervals (at most every %u ms) so that the "
                   "other devices keep their poll period",
                   dev->unit_id, cause, dev->backoff_max_ms);
        else
            MB_LOG(pc->in, IB_LOG_WARNING, dev->name, NULL,
                   "unit %d does not answer (%s): its tags are bad; it is asked again at "
                   "every poll (backoff_max_ms: 0)",
                   dev->unit_id, cause);
        break;
    case IB_EPISODE_REMIND:
        MB_LOG(pc->in, IB_LOG_WARNING, dev->name, NULL,
               "unit %d still does not answer (%s): %" PRIu64 " polls in %" PRId64 " s",
               dev->unit_id, cause, ep->count, ib_episode_age_s(ep, now_ms(pc)));
        break;
    default:
        break;
    }
}

/* After a poll: back a silent device off for 1, 2, 4 ... poll intervals (at most
 * backoff_max_ms) from now, or note that it answers again. The wait counts from the end of
 * the failed poll, which itself lasted a whole timeout. */
static void account_device(struct poll_ctx *pc)
{
    struct mb_device *dev = pc->dev;
    struct mb_instance *in = pc->in;
    if (pc->silent) {
        dev->failed_polls++;
        log_silence(pc);
        if (dev->backoff_max_ms == 0)
            return;
        unsigned shift = dev->failed_polls - 1 < 20 ? dev->failed_polls - 1 : 20;
        /* A continuous group (interval 0) backs off in steps of 100 ms. */
        int64_t interval = pc->grp->interval_ms ? pc->grp->interval_ms : 100;
        int64_t delay = interval << shift;
        if (delay > dev->backoff_max_ms)
            delay = dev->backoff_max_ms;
        dev->retry_at_ms = in->host->monotonic_ms() + delay;
        return;
    }
    if (pc->answered && dev->failed_polls > 0) {
        if (ib_episode_ok(&dev->silent_ep, now_ms(pc)) == IB_EPISODE_ENDED)
            MB_LOG(in, IB_LOG_NOTICE, dev->name, NULL,
                   "unit %d answers again, after %u poll(s) without an answer", dev->unit_id,
                   dev->failed_polls);
        dev->failed_polls = 0;
        dev->retry_at_ms = 0;
    }
}

static int err_of_reason(uint8_t reason)
{
    return reason == IB_R_EXCEPTION ? IB_ERR_EXCEPTION : IB_ERR_TIMEOUT;
}

int mb_poll_group(struct mb_instance *in, uint32_t device, uint32_t group,
                  struct ib_sample *samples)
{
    struct mb_device *dev = &in->devices[device];
    struct mb_group *grp = &dev->groups[group];
    int64_t started = in->host->monotonic_ms();
    struct poll_ctx pc = {.in = in, .dev = dev, .grp = grp, .worst = {IB_R_NONE, 0, IB_OK}};

    grp->polls++;
    if (dev->failed_polls > 0 && started < dev->retry_at_ms) {
        /* Backed off: no I/O, the samples say why. */
        int64_t now = in->host->now_ms();
        for (uint32_t i = 0; i < grp->n_tags; i++) {
            memset(&samples[i], 0, sizeof(samples[i]));
            ib_sample_bad(&samples[i], now, dev->down_reason, dev->down_code);
        }
        return err_of_reason(dev->down_reason);
    }

    if (grp->n_reqs > 0 && mb_ensure_open(in) != 0) {
        pc.lost = true;
        pc.worst = (struct mb_failure){IB_R_CONN_LOST, 0, IB_ERR_CONNECTION};
    } else if (grp->n_reqs > 0) {
        in->polls_on_link++;
        prefetch(&pc);
    }
    for (uint32_t r = 0; r < grp->n_reqs; r++) {
        struct mb_req *q = &grp->reqs[r];
        if (pc.lost) {
            set_state(q, in->host->now_ms(), IB_R_CONN_LOST, 0);
            continue;
        }
        if (pc.silent) {
            set_state(q, in->host->now_ms(), dev->down_reason, dev->down_code);
            continue;
        }
        if (q->refused && grp->polls % MB_REFUSED_RECHECK_POLLS != 0) {
            set_state(q, in->host->now_ms(), IB_R_EXCEPTION, q->refused_code);
            note_worst(&pc, &(struct mb_failure){IB_R_EXCEPTION, q->refused_code, IB_ERR_EXCEPTION},
                       q->table, q->start, q->count, MODBUS_ENOBASE + q->refused_code, "");
            continue;
        }
        int e = 0;
        int n = read_one(&pc, r, &e);
        int64_t ts = in->host->now_ms();
        if (n >= 0) {
            pc.answered = true;
            set_state(q, ts, IB_R_NONE, 0);
            if (q->refused) {
                struct mb_tag *t = &grp->tags[grp->plan.order[q->first]];
                note_tag_read(&pc, t);
                MB_LOG(in, IB_LOG_INFO, dev->name, t->name,
                       "group %s goes back to its planned requests", grp->name);
                q->refused = false;
                pc.restore = true;
            }
            continue;
        }
        struct mb_failure f = mb_classify(e);
        if (f.reason == IB_R_EXCEPTION)
            pc.answered = true;
        if (is_refusal(&f) && q->n_items > 1) {
            if (make_room(grp) == 0) {
                uint32_t ns = narrow_down(&pc, r, &f, e);
                pc.shift += ns - 1;
                r += ns - 1;
                continue;
            }
            /* Out of memory: the block fails this poll and is narrowed down at a later one. */
        } else if (is_refusal(&f) && !q->refused) {
            q->refused = true;
            q->refused_code = f.code;
            grp->split = true;
            log_refused_tag(&pc, &grp->tags[grp->plan.order[q->first]], f.code);
        }
        set_state(q, ts, f.reason, f.code);
        note_worst(&pc, &f, q->table, q->start, q->count, e, in->why);
        if (f.reason == IB_R_CONN_LOST) {
            pc.lost = true;
            mb_note_connection_lost(in, dev, e);
        } else if (is_silence(&f) && !pc.answered) {
            pc.silent = true;
            dev->down_reason = f.reason;
            dev->down_code = f.code;
        }
    }

    for (uint32_t i = 0; i < grp->n_tags; i++)
        fill_sample(&pc, i, &samples[i]);
    if (pc.restore)
        mb_group_restore_plan(grp);
    account_device(&pc);
    log_group_outcome(&pc);
    if (!pc.lost && mb_link_is_open(in->link))
        mb_note_link_held(in);
    if (in->close_after_poll)
        mb_link_close(in->link);
    return pc.worst.err;
}
