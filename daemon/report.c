/* Report by exception. The rules (docs/reporting.md): a change of quality is sent at once;
 * a good value by mode (always / on_change / deadband against the last value *sent*); a
 * heartbeat re-sends an unchanged value; booleans and strings report on change. */
#include "report.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void ib_report_state_init(struct ib_report_state *st, int64_t now_ms)
{
    memset(st, 0, sizeof *st);
    st->last_good_ms = now_ms;
}

void ib_report_state_free(struct ib_report_state *st)
{
    if (!st)
        return;
    free(st->str);
    st->str = NULL;
    st->str_cap = 0;
}

static bool same_value(const struct ib_value *a, const struct ib_value *b)
{
    if (a->type != b->type)
        return false;
    switch (a->type) {
    case IB_V_BOOL:
        return a->v.b == b->v.b;
    case IB_V_INT:
        return a->v.i == b->v.i;
    case IB_V_UINT:
        return a->v.u == b->v.u;
    case IB_V_DOUBLE:
        return a->v.d == b->v.d;
    case IB_V_STRING:
    case IB_V_JSON:
        return a->v.s.len == b->v.s.len && memcmp(a->v.s.ptr, b->v.s.ptr, a->v.s.len) == 0;
    default:
        return true;
    }
}

/* |a - b| > db for numbers of the same kind; other kinds fall back to "changed". Integer
 * differences are taken in integer arithmetic first so that 64-bit values lose nothing. */
static bool moved_beyond(const struct ib_value *a, const struct ib_value *b, double db)
{
    if (a->type != b->type)
        return true;
    double diff;
    switch (a->type) {
    case IB_V_INT: {
        /* In unsigned arithmetic the distance cannot overflow. */
        uint64_t d = a->v.i > b->v.i ? (uint64_t)a->v.i - (uint64_t)b->v.i
                                     : (uint64_t)b->v.i - (uint64_t)a->v.i;
        diff = (double)d;
        break;
    }
    case IB_V_UINT:
        diff = (double)(a->v.u > b->v.u ? a->v.u - b->v.u : b->v.u - a->v.u);
        break;
    case IB_V_DOUBLE:
        diff = fabs(a->v.d - b->v.d);
        break;
    default:
        return !same_value(a, b);
    }
    return diff > db;
}

static void remember(struct ib_report_state *st, const struct ib_sample *s, int64_t now_ms)
{
    st->last_q = s->quality;
    st->last_reason = s->reason;
    st->last_code = s->code;
    st->sent_any = true;
    st->last_sent_ms = now_ms;
    if (s->quality != IB_Q_GOOD)
        return;
    st->last = s->value;
    if (s->value.type == IB_V_STRING || s->value.type == IB_V_JSON) {
        uint32_t n = s->value.v.s.len;
        if (n > st->str_cap) {
            char *p = realloc(st->str, n);
            if (!p) {
                /* Without a copy the next comparison would read freed plugin memory: forget
                 * the value so that the next poll is sent in full. */
                st->sent_any = false;
                return;
            }
            st->str = p;
            st->str_cap = n;
        }
        if (n)
            memcpy(st->str, s->value.v.s.ptr, n);
        st->last.v.s.ptr = st->str;
    }
}

bool ib_report_decide(const struct ib_report_cfg *c, struct ib_report_state *st,
                      struct ib_sample *s, int64_t now_ms, int64_t stale_after_ms)
{
    bool send;
    if (s->quality == IB_Q_GOOD) {
        st->last_good_ms = now_ms;
        if (!st->sent_any || st->last_q != IB_Q_GOOD)
            send = true; /* first value, or back to good */
        else if (c->mode == IB_REPORT_ALWAYS)
            send = true;
        else if (c->mode == IB_REPORT_DEADBAND && s->value.type != IB_V_BOOL &&
                 s->value.type != IB_V_STRING)
            send = moved_beyond(&s->value, &st->last, c->deadband);
        else
            send = !same_value(&s->value, &st->last);
    } else {
        /* The failure itself is news first (bad, with its reason); a tag that then stays
         * unreadable for stale_after becomes stale. */
        if (st->sent_any && st->last_q != IB_Q_GOOD && now_ms - st->last_good_ms >= stale_after_ms)
            s->quality = IB_Q_STALE;
        if (!st->sent_any || c->mode == IB_REPORT_ALWAYS || s->quality != st->last_q)
            send = true;
        else /* still bad: a new reason is news, a repeat is not */
            send = s->quality == IB_Q_BAD &&
                   (s->reason != st->last_reason || s->code != st->last_code);
    }
    if (!send && c->heartbeat_ms > 0 && now_ms - st->last_sent_ms >= c->heartbeat_ms)
        send = true;
    if (send)
        remember(st, s, now_ms);
    return send;
}
