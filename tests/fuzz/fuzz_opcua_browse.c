/* fuzz_opcua_browse.c: fuzz target of the Browse and BrowseNext response decoder of the OPC UA
 * browse tool (plugins/opcua/browse_decode.c): the BrowseResults after the ResponseHeader, each
 * with its StatusCode, ContinuationPoint and ReferenceDescriptions (NodeIds, ExpandedNodeIds
 * with their URIs, QualifiedNames, LocalizedTexts), then the DiagnosticInfos. Checks that the
 * decoder calls back only after validating everything, once per result, and that every string
 * it hands on lies inside the input. Pure: no I/O.
 *
 * Input: [0] low 4 bits the number of nodes the request had (0-15); then the response body. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "browse.h"
#include "fuzz_util.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    return 0;
}

struct seen {
    const uint8_t *lo, *hi;
    size_t results, refs, n;
};

static void inside(const struct seen *s, struct ua_str t)
{
    if (t.len > 0 && ((const uint8_t *)t.ptr < s->lo || (const uint8_t *)t.ptr + t.len > s->hi))
        abort();
    if (t.len > 0) /* touch it: ASan reports a read past the copy */
        (void)*(volatile const char *)(t.ptr + t.len - 1);
}

static void on_result(void *arg, size_t i, uint32_t status, struct ua_str cont)
{
    struct seen *s = arg;
    (void)status;
    if (i != s->results++ || i >= s->n)
        abort();
    inside(s, cont);
}

static void on_ref(void *arg, size_t i, const struct ua_ref *r)
{
    struct seen *s = arg;
    if (i + 1 != s->results)
        abort();
    s->refs++;
    inside(s, r->browse_name.name);
    inside(s, r->display_name.text);
    inside(s, r->display_name.locale);
    inside(s, r->node.uri);
    inside(s, r->type_definition.uri);
    if (r->node.id.kind == UA_NID_STRING || r->node.id.kind == UA_NID_BYTES)
        inside(s, r->node.id.id.str);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t n = data[0] & 15, len = size - 1;
    uint8_t *copy = malloc(len ? len : 1); /* exactly the body, so that ASan sees overreads */
    memcpy(copy, data + 1, len);
    struct seen s = {copy, copy + len, 0, 0, n};
    struct ua_browse_cb cb = {on_result, on_ref, &s};
    struct ua_cur c;
    ua_cur_init(&c, copy, len);
    c.max_array = 1u << 16;
    int err = ua_browse_decode(&c, n, &cb);
    if (err != UA_OK && (s.results || s.refs))
        abort(); /* a bad response must hand on nothing */
    if (err == UA_OK && s.results != n)
        abort();
    free(copy);
    return 0;
}
