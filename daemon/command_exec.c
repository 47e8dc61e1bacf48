/* A command's job on its poller's thread, between polls: each write in the request's order
 * (minimum interval, the plugin's write_tag under the call deadline, read back with verify),
 * each read through its group's read "now"; then the answer. */
#include "command_impl.h"

#include <stdio.h>
#include <string.h>

#include "command_check.h"
#include "gateway_priv.h"

static struct group_rt *group_of(struct poller *p, uint32_t dev, uint32_t grp, size_t *index)
{
    for (size_t i = 0; i < p->n_groups; i++)
        if (p->groups[i].dev == dev && p->groups[i].grp == grp) {
            *index = i;
            return &p->groups[i];
        }
    return NULL;
}

/* A value into a result: strings copied into its text. */
static void keep_value(struct ib_cmd_tag_result *r, const struct ib_value *v, struct ib_value *to)
{
    *to = *v;
    if (v->type != IB_V_STRING)
        return;
    size_t n = v->v.s.len < sizeof r->text - 1 ? v->v.s.len : sizeof r->text - 1;
    memcpy(r->text, v->v.s.ptr, n);
    r->text[n] = '\0';
    to->v.s.ptr = r->text;
    to->v.s.len = (uint32_t)n;
}

/* The tag's sample of the group's last poll into r: its value, or the reason it is bad. */
static void take_sample(struct ib_cmd_tag_result *r, const struct ib_sample *s)
{
    if (s->quality == IB_Q_GOOD) {
        r->result = IB_CMD_OK;
        r->has_value = true;
        keep_value(r, &s->value, &r->value);
        return;
    }
    r->result = s->reason == IB_R_TIMEOUT     ? IB_CMD_TIMEOUT
                : s->reason == IB_R_CONN_LOST ? IB_CMD_CONNECTION_LOST
                                              : IB_CMD_DEVICE_ERROR;
    r->code = s->code;
    snprintf(r->error, sizeof r->error, "the read failed: %s%s", ib_record_reason_name(s->reason),
             s->reason == IB_R_EXCEPTION ? " (see code)" : "");
}

static void do_read(struct poller *p, struct group_rt *g, struct cmd_item *it,
                    struct ib_cmd_tag_result *r, bool *polled)
{
    if (!*polled) {
        ib_poller_poll_group(p, g);
        *polled = true;
    }
    take_sample(r, &g->norm[it->tag]);
}

static void do_write(struct poller *p, struct cmd_job *j, struct group_rt *g, size_t gi,
                     struct cmd_item *it, struct ib_cmd_tag_result *r)
{
    int64_t now = ib_monotonic_ms();
    int64_t iv = p->cc->devices[j->dev].groups[it->grp].writes[it->tag].min_interval_ms;
    int64_t *last = ib_cmd_queue_last_write(p->cmdq, (uint32_t)gi, it->tag, g->g->n_tags);
    if (iv && last && *last && now - *last < iv) {
        r->result = IB_CMD_BUSY;
        snprintf(r->error, sizeof r->error,
                 "written %lld ms ago; write_interval is %lld ms: try again later",
                 (long long)(now - *last), (long long)iv);
        return;
    }
    int rc = ib_poller_write(p, g, it->tag, &it->raw);
    r->result = (uint8_t)ib_command_result_of(rc, &it->raw);
    if (rc != 0) {
        snprintf(r->error, sizeof r->error, "%s%s", ib_strerror(rc),
                 r->result == IB_CMD_OUT_OF_RANGE   ? ": the value does not fit the tag's type"
                 : r->result == IB_CMD_BAD_TYPE     ? ": the value does not fit the tag's type"
                 : r->result == IB_CMD_DEVICE_ERROR ? " (the device refused or answered badly)"
                                                    : "");
        return;
    }
    if (last)
        *last = ib_monotonic_ms();
    if (j->meta.verify) {
        ib_poller_poll_group(p, g);
        take_sample(r, &g->norm[it->tag]);
        if (r->result != IB_CMD_OK)
            snprintf(r->error + strlen(r->error), sizeof r->error - strlen(r->error),
                     " (written; the read back failed)");
    }
}

void ib_command_exec(struct poller *p, struct cmd_job *j)
{
    bool polled[IB_CMD_MAX_TAGS] = {0}; /* per item: its group read for this job */
    for (size_t i = 0; i < j->n; i++) {
        struct cmd_item *it = &j->items[i];
        struct ib_cmd_tag_result *r = &j->res[i];
        size_t gi = 0;
        struct group_rt *g = it->run ? group_of(p, j->dev, it->grp, &gi) : NULL;
        if (!g)
            continue;
        const struct ib_sample *old = &g->norm[it->tag];
        if (old->quality == IB_Q_GOOD && old->value.type != IB_V_STRING) {
            r->old = old->value;
            r->has_old = true;
        }
        if (j->is_read) {
            bool done = false;
            for (size_t k = 0; k < i && !done; k++)
                done = polled[k] && j->items[k].grp == it->grp;
            do_read(p, g, it, r, &done);
            polled[i] = true;
        } else {
            do_write(p, j, g, gi, it, r);
        }
    }
    ib_command_finish(j);
}
