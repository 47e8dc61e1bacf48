/* Modbus TCP with several requests in flight: the requests outstanding, and the answers on the
 * stream matched to them by transaction id; late and unknown answers dropped and counted, and
 * what shows that a device mishandles several requests in flight noted. No I/O. */
#include "pipe.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <modbus.h> /* errno values shared with the links */

#include "pdu.h"

void mb_pipe_begin(struct mb_pipe *p)
{
    for (uint32_t s = 0; s < MB_PIPE_MAX; s++)
        p->slot[s].busy = false;
    p->n_busy = 0;
    p->have = 0;
    p->answered = 0;
    p->timed_out = 0;
    p->misbehaved[0] = '\0';
    p->note[0] = '\0';
}

int mb_pipe_add(struct mb_pipe *p, uint32_t item, const uint8_t *req, size_t req_len,
                int64_t deadline_us)
{
    if (req_len < MB_MBAP_HEADER + 1 || req_len > MB_MBAP_MAX_ADU)
        return -1;
    for (uint32_t s = 0; s < MB_PIPE_MAX; s++) {
        struct mb_pipe_slot *sl = &p->slot[s];
        if (sl->busy)
            continue;
        sl->busy = true;
        sl->tid = mb_get16(req);
        sl->item = item;
        sl->deadline_us = deadline_us;
        sl->req_len = req_len;
        memcpy(sl->req, req, req_len);
        p->n_busy++;
        return (int)s;
    }
    return -1;
}

int64_t mb_pipe_next_deadline(const struct mb_pipe *p)
{
    int64_t next = INT64_MAX;
    for (uint32_t s = 0; s < MB_PIPE_MAX; s++)
        if (p->slot[s].busy && p->slot[s].deadline_us < next)
            next = p->slot[s].deadline_us;
    return next;
}

static void finish(struct mb_pipe *p, struct mb_pipe_slot *sl, struct mb_pipe_item *it, int rc,
                   int err)
{
    it->rc = rc;
    it->err = rc < 0 ? err : 0;
    it->done = true;
    sl->busy = false;
    p->n_busy--;
}

uint32_t mb_pipe_expire(struct mb_pipe *p, struct mb_pipe_item *items, int64_t now_us)
{
    uint32_t n = 0;
    for (uint32_t s = 0; s < MB_PIPE_MAX; s++) {
        struct mb_pipe_slot *sl = &p->slot[s];
        if (!sl->busy || sl->deadline_us > now_us)
            continue;
        p->late[p->late_at] = sl->tid;
        p->late_at = (p->late_at + 1) % MB_PIPE_LATE;
        if (p->n_late < MB_PIPE_LATE)
            p->n_late++;
        finish(p, sl, &items[sl->item], -1, ETIMEDOUT);
        p->timed_out++;
        n++;
    }
    return n;
}

static struct mb_pipe_slot *in_flight(struct mb_pipe *p, uint16_t tid)
{
    for (uint32_t s = 0; s < MB_PIPE_MAX; s++)
        if (p->slot[s].busy && p->slot[s].tid == tid)
            return &p->slot[s];
    return NULL;
}

static bool was_late(const struct mb_pipe *p, uint16_t tid)
{
    for (uint32_t k = 0; k < p->n_late; k++)
        if (p->late[k] == tid)
            return true;
    return false;
}

/* A frame no request in flight waits for, framed by its own MBAP length: dropped. Returns its
 * length, 0 when more bytes are needed, -1 when its length field cannot be a frame's. */
static int drop_unmatched(struct mb_pipe *p)
{
    unsigned follow = mb_get16(p->rx + 4); /* unit id and PDU */
    if (follow < 2 || follow > MB_MBAP_MAX_ADU - 6)
        return -1;
    size_t len = 6 + follow;
    if (p->have < len)
        return 0;
    uint16_t tid = mb_get16(p->rx);
    if (was_late(p, tid)) {
        p->late_dropped++;
        snprintf(p->note, sizeof p->note,
                 "a late answer (transaction id %u, its request timed out)", tid);
    } else {
        p->unknown_dropped++;
        snprintf(p->note, sizeof p->note, "an answer with transaction id %u, which no request had",
                 tid);
        if (p->misbehaved[0] == '\0')
            snprintf(p->misbehaved, sizeof p->misbehaved,
                     "it answered with transaction id %u, which no request in flight had", tid);
    }
    return (int)len;
}

/* Frame and match what rx holds. 1: a frame was taken, 0: more bytes needed, -1: out of step. */
static int take_one(struct mb_pipe *p, struct mb_pipe_item *items)
{
    if (p->have < MB_MBAP_HEADER)
        return 0;
    struct mb_pipe_slot *sl = in_flight(p, mb_get16(p->rx));
    int len;
    if (!sl) {
        len = drop_unmatched(p);
    } else {
        len = mb_mbap_response_length(p->rx, p->have);
        if (len > MB_MBAP_MAX_ADU)
            len = -1;
        if (len > 0 && p->have >= (size_t)len) {
            struct mb_pipe_item *it = &items[sl->item];
            int rc =
                mb_mbap_check_response(sl->req, sl->req_len, p->rx, (size_t)len, it->dest, NULL, 0);
            int err = errno;
            finish(p, sl, it, rc, err);
            p->answered++;
            /* An exception is a whole, well-formed answer; any other refusal leaves the stream's
             * framing in doubt (the header and the PDU disagree): stop here. */
            if (rc < 0 && !(err >= EMBXILFUN && err <= EMBXGTAR))
                len = -1;
        }
    }
    if (len < 0)
        return -1;
    if (len == 0 || p->have < (size_t)len)
        return 0;
    p->have -= (size_t)len;
    memmove(p->rx, p->rx + len, p->have);
    return 1;
}

size_t mb_pipe_room(const struct mb_pipe *p)
{
    return sizeof p->rx - p->have;
}

int mb_pipe_feed(struct mb_pipe *p, struct mb_pipe_item *items, const uint8_t *data, size_t n)
{
    while (n > 0) {
        size_t take = n < mb_pipe_room(p) ? n : mb_pipe_room(p);
        if (take == 0)
            return -1; /* a full buffer and no frame in it */
        memcpy(p->rx + p->have, data, take);
        p->have += take;
        data += take;
        n -= take;
        int rc;
        while ((rc = take_one(p, items)) > 0)
            ;
        if (rc < 0)
            return -1;
    }
    return 0;
}
