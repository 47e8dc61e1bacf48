/* The audit of commands: one journal entry per tag of every request, with structured fields
 * (IB_COMMAND_ID, IB_DEVICE, IB_TAG, IB_OLD_VALUE, IB_NEW_VALUE, IB_RESULT, IB_REQUESTER), or one
 * line on stderr when not under journald. */
#include "command_impl.h"

#include <stdio.h>
#include <string.h>

#include <systemd/sd-journal.h>

#include "json.h"
#include "log.h"

static void fmt_value(char *out, size_t len, bool has, const struct ib_value *v)
{
    if (!has) {
        snprintf(out, len, "-");
        return;
    }
    if (v->type == IB_V_STRING) {
        snprintf(out, len, "\"%.*s\"", (int)(v->v.s.len < 200 ? v->v.s.len : 200), v->v.s.ptr);
        return;
    }
    char b[32];
    int n = ib_fmt_scalar(b, v);
    snprintf(out, len, "%.*s", n > 0 ? n : 1, n > 0 ? b : "-");
}

static void audit_one(const struct ib_cmd_answer *a, const char *conn,
                      const struct ib_cmd_tag_result *r, const char *newv)
{
    char oldv[256];
    fmt_value(oldv, sizeof oldv, r->has_old, &r->old);
    const char *res = a->duplicate ? "duplicate" : ib_command_result_name(r->result);
    const char *who = a->meta->requester ? a->meta->requester : "-";
    int level = r->result == IB_CMD_OK && !a->duplicate ? IB_LOG_NOTICE : IB_LOG_WARNING;
    if (!ib_log_journal()) {
        ib_log(level, conn, a->device, r->tag,
               "command %s (%s, requester %s): %s old=%s new=%s%s%s", a->id, a->meta->source, who,
               res, oldv, newv, r->error[0] ? ": " : "", r->error);
        return;
    }
    sd_journal_send("MESSAGE=command %s on %s/%s (%s, requester %s): %s, old %s, new %s%s%s", a->id,
                    a->device, r->tag, a->meta->source, who, res, oldv, newv,
                    r->error[0] ? ": " : "", r->error, "PRIORITY=%d", level,
                    "SYSLOG_IDENTIFIER=ironbridge", "IB_CONNECTION=%s", conn ? conn : "-",
                    "IB_COMMAND_ID=%s", a->id, "IB_DEVICE=%s", a->device, "IB_TAG=%s", r->tag,
                    "IB_OLD_VALUE=%s", oldv, "IB_NEW_VALUE=%s", newv, "IB_RESULT=%s", res,
                    "IB_REQUESTER=%s", who, "IB_COMMAND_SOURCE=%s", a->meta->source, NULL);
}

void ib_command_audit(const struct ib_cmd_answer *a, const char *conn)
{
    for (size_t i = 0; i < a->n; i++) {
        const struct ib_cmd_tag_result *r = &a->results[i];
        char newv[256];
        /* new: the value read back (verify) or read; else what the write asked for */
        if (r->has_value)
            fmt_value(newv, sizeof newv, true, &r->value);
        else
            fmt_value(newv, sizeof newv, r->has_requested, &r->requested);
        audit_one(a, conn, r, newv);
    }
}
