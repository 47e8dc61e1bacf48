/* fuzz_command.c: fuzz target of the command request parser (daemon/command_parse.c,
 * ib_command_parse) over the input bytes as they come from the command topic, and of the
 * answer encoder for what it parsed. Besides the sanitizers it checks what the parser promises:
 * 0 means an id, a device and 1..IB_CMD_MAX_TAGS distinct tags, every text NUL-terminated inside
 * its buffer; -1 means a message naming a byte offset; an answer is valid JSON text starting
 * with {"id": and is never empty. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "command_answer.h"
#include "command_parse.h"
#include "fuzz_util.h"

static struct ib_cmd_request req;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    return 0;
}

static void check_ok(const struct ib_cmd_request *r)
{
    if (!r->has_id || !r->id[0] || !r->device[0] || r->n < 1 || r->n > IB_CMD_MAX_TAGS)
        abort();
    if (r->text_used > sizeof r->text)
        abort();
    for (size_t i = 0; i < r->n; i++) {
        const char *t = r->w[i].tag;
        if (t < r->text || t >= r->text + sizeof r->text || !*t || strlen(t) > 256)
            abort();
        for (size_t k = 0; k < i; k++)
            if (strcmp(r->w[k].tag, t) == 0)
                abort();
        const struct ib_value *v = &r->w[i].value;
        if (!r->is_read && v->type == IB_V_STRING &&
            (v->v.s.ptr < r->text || v->v.s.ptr + v->v.s.len >= r->text + sizeof r->text ||
             v->v.s.ptr[v->v.s.len] != '\0'))
            abort();
    }
}

static void answer(const struct ib_cmd_request *r)
{
    struct ib_cmd_tag_result res[IB_CMD_MAX_TAGS];
    memset(res, 0, sizeof res);
    for (size_t i = 0; i < r->n; i++) {
        strncpy(res[i].tag, r->w[i].tag, sizeof res[i].tag - 1);
        res[i].result = (uint8_t)(i % IB_CMD__COUNT);
        if (!r->is_read && r->w[i].value.type != IB_V_STRING) {
            res[i].value = r->w[i].value;
            res[i].has_value = r->w[i].value.type != IB_V_DOUBLE;
        }
    }
    struct ib_cmd_meta meta = {.id = r->id, .source = "fuzz"};
    struct ib_cmd_answer a = {
        .id = r->id, .device = r->device, .meta = &meta, .n = r->n, .results = res};
    struct ib_buf b = {0};
    if (ib_command_answer_json(&b, &a, 1) == 0 &&
        (b.len < 8 || memcmp(b.p, "{\"id\":\"", 7) != 0 || b.p[b.len - 1] != '}'))
        abort();
    ib_buf_free(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[256];
    err[0] = '\0';
    if (ib_command_parse((const char *)data, size, &req, err, sizeof err) == 0) {
        check_ok(&req);
        answer(&req);
        return 0;
    }
    if (!strstr(err, "byte") && !strstr(err, "bytes"))
        abort();
    if (req.has_id && (!req.id[0] || strlen(req.id) > IB_CMD_MAX_ID))
        abort();
    return 0;
}
