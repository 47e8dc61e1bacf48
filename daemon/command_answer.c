/* The JSON answers to commands: a result per tag in the request's order, the value read back
 * or read, the device's exception code, a sentence for anything but ok. */
#include "command_answer.h"

#include <string.h>

#include "json.h"

static int tag_result(struct ib_buf *b, const struct ib_cmd_tag_result *r, bool first)
{
    int rc = ib_buf_puts(b, first ? "" : ",");
    rc |= ib_json_cstr(b, r->tag);
    rc |= ib_buf_puts(b, ":{\"result\":");
    rc |= ib_json_cstr(b, ib_command_result_name(r->result));
    if (r->has_value) {
        rc |= ib_buf_puts(b, ",\"v\":");
        if (r->value.type == IB_V_STRING)
            rc |= ib_json_str(b, r->text, r->value.v.s.len);
        else
            rc |= ib_json_value(b, &r->value);
    }
    if (r->code)
        rc |= ib_buf_printf(b, ",\"code\":%u", r->code);
    if (r->error[0]) {
        rc |= ib_buf_puts(b, ",\"error\":");
        rc |= ib_json_cstr(b, r->error);
    }
    return rc | ib_buf_puts(b, "}");
}

int ib_command_answer_json(struct ib_buf *b, const struct ib_cmd_answer *a, int64_t now_ms)
{
    bool ok = true;
    for (size_t i = 0; i < a->n; i++)
        ok &= a->results[i].result == IB_CMD_OK;
    ib_buf_reset(b);
    int rc = ib_buf_puts(b, "{\"id\":");
    rc |= ib_json_cstr(b, a->id);
    rc |= ib_buf_puts(b, ",\"device\":");
    rc |= ib_json_cstr(b, a->device);
    rc |= ib_buf_puts(b, ",\"ts\":");
    rc |= ib_json_int(b, now_ms);
    rc |= ib_buf_puts(b, ok && !a->duplicate ? ",\"ok\":true" : ",\"ok\":false");
    if (a->duplicate)
        rc |= ib_buf_puts(b, ",\"duplicate\":true");
    rc |= ib_buf_puts(b, ",\"results\":{");
    for (size_t i = 0; i < a->n; i++)
        rc |= tag_result(b, &a->results[i], i == 0);
    return rc | ib_buf_puts(b, "}}");
}

int ib_command_refusal_json(struct ib_buf *b, const char *id, const char *device, int result,
                            const char *error, int64_t now_ms)
{
    ib_buf_reset(b);
    int rc = ib_buf_puts(b, "{\"id\":");
    rc |= ib_json_cstr(b, id);
    if (device && *device) {
        rc |= ib_buf_puts(b, ",\"device\":");
        rc |= ib_json_cstr(b, device);
    }
    rc |= ib_buf_puts(b, ",\"ts\":");
    rc |= ib_json_int(b, now_ms);
    rc |= ib_buf_puts(b, ",\"ok\":false,\"result\":");
    rc |= ib_json_cstr(b, ib_command_result_name(result));
    rc |= ib_buf_puts(b, ",\"error\":");
    rc |= ib_json_cstr(b, error);
    return rc | ib_buf_puts(b, "}");
}
