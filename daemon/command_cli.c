/* `ironbridge --write DEVICE.TAG=VALUE` and `--read DEVICE.TAG`: one command for commissioning,
 * through the same checks as a request from the platform, run on the main thread as the
 * connection's poller (the gateway is not started: nothing is published). */
#include "command_impl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "command_answer.h"
#include "command_parse.h"
#include "gateway_priv.h"
#include "json.h"

struct cli_state {
    struct ib_buf out;
    bool done, ok;
};

static void on_answer(void *ud, const struct ib_cmd_answer *a)
{
    struct cli_state *s = ud;
    s->done = true;
    s->ok = !a->duplicate;
    for (size_t i = 0; i < a->n; i++)
        s->ok &= a->results[i].result == IB_CMD_OK;
    ib_command_answer_json(&s->out, a, ib_now_ms());
}

static bool known_device(struct ib_gateway *gw, const char *name, size_t len)
{
    for (size_t i = 0; i < gw->n_pollers; i++) {
        const struct ib_connection_config *pc = &gw->pollers[i]->cc->pub;
        for (uint32_t d = 0; d < pc->n_devices; d++)
            if (strlen(pc->devices[d].name) == len && memcmp(pc->devices[d].name, name, len) == 0)
                return true;
    }
    return false;
}

/* VALUE as a JSON literal: a number, true or false as they are, anything else as a string. */
static int json_value(struct ib_buf *b, const char *v)
{
    struct ib_cmd_request q;
    char err[64];
    struct ib_buf probe = {0};
    ib_buf_printf(&probe, "{\"id\":\"x\",\"device\":\"d\",\"write\":{\"t\":%s}}", v);
    bool literal = probe.p && ib_command_parse(probe.p, probe.len, &q, err, sizeof err) == 0 &&
                   q.w[0].value.type != IB_V_STRING;
    ib_buf_free(&probe);
    return literal ? ib_buf_puts(b, v) : ib_json_cstr(b, v);
}

/* The request's JSON from SPEC (DEVICE.TAG=VALUE or DEVICE.TAG): the device is the longest
 * known name before a '.', so that names with dots work. */
static int build(struct ib_gateway *gw, const char *spec, bool is_read, struct ib_buf *b)
{
    const char *eq = is_read ? NULL : strchr(spec, '=');
    size_t end = eq ? (size_t)(eq - spec) : strlen(spec);
    if (!is_read && !eq) {
        fprintf(stderr, "ironbridge: --write needs DEVICE.TAG=VALUE, not '%s'\n", spec);
        return -1;
    }
    const char *dot = NULL;
    for (const char *p = spec; p < spec + end; p++)
        if (*p == '.' && known_device(gw, spec, (size_t)(p - spec)))
            dot = p;
    if (!dot) {
        fprintf(stderr, "ironbridge: '%.*s' names no device of the configuration (DEVICE.TAG)\n",
                (int)end, spec);
        return -1;
    }
    int rc = ib_buf_printf(b, "{\"id\":\"cli-%ld-%lld\",\"device\":", (long)getpid(),
                           (long long)ib_now_ms());
    rc |= ib_json_str(b, spec, (size_t)(dot - spec));
    rc |= ib_buf_puts(b, is_read ? ",\"read\":[" : ",\"verify\":true,\"write\":{");
    rc |= ib_json_str(b, dot + 1, (size_t)(spec + end - dot - 1));
    if (!is_read) {
        rc |= ib_buf_puts(b, ":");
        rc |= json_value(b, eq + 1);
    }
    return rc | ib_buf_puts(b, is_read ? "]}" : "}}");
}

int ib_command_cli(struct ib_gateway *gw, const char *spec, bool is_read, FILE *out)
{
    struct ib_buf req = {0};
    struct ib_cmd_request *q = malloc(sizeof *q);
    struct cli_state s = {0};
    char err[256];
    int rc = 2;
    if (!q || build(gw, spec, is_read, &req) < 0)
        goto done;
    if (ib_command_parse(req.p, req.len, q, err, sizeof err) < 0) {
        fprintf(stderr, "ironbridge: %s: %s\n", spec, err);
        goto done;
    }
    struct ib_cmd_meta meta = {
        .id = q->id, .received_ms = ib_now_ms(), .source = "cli", .verify = q->verify};
    const char *tags[1] = {q->w[0].tag};
    if ((is_read
             ? ib_command_read(gw->commands, q->device, tags, 1, &meta, on_answer, &s)
             : ib_command_apply_writes(gw->commands, q->device, q->w, 1, &meta, on_answer, &s)) < 0)
        goto done;
    for (size_t i = 0; i < gw->n_pollers && !s.done; i++) {
        while (ib_cmd_queue_pending(gw->pollers[i]->cmdq))
            ib_cmd_queue_run_one(gw->pollers[i]);
        ib_poller_close(gw->pollers[i]);
    }
    if (s.done && s.out.p)
        fprintf(out, "%.*s\n", (int)s.out.len, s.out.p);
    rc = s.done && s.ok ? 0 : 4;
done:
    free(q);
    ib_buf_free(&req);
    ib_buf_free(&s.out);
    return rc;
}
