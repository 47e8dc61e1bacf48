/* fuzz_opcua.c: fuzz target of what an OPC UA server sends the client (plugins/opcua): the
 * 8-byte header, Acknowledge and Error bodies, MSG/OPN/CLO chunks reassembled as channel.c
 * does (channel and token ids, sequence numbers, request ids, chunk count and message size
 * limits), and every reassembled message decoded as a response: its type NodeId, the
 * ResponseHeader with its DiagnosticInfo and string table, then DataValues (as a Read response)
 * whose Variants are walked element by element and mapped to samples; the same bytes after the
 * ResponseHeader also as a PublishResponse and as a RepublishResponse's NotificationMessage
 * (notify.c: DataChangeNotification values mapped to samples, StatusChangeNotification), and
 * as a DataChangeFilter. Pure: no I/O.
 *
 * Input: [0] bit 0 the first chunk is an OPN (ids not yet known), bits 1-2 max chunks (0: none,
 * else 1, 4, 16); then a stream of chunks, each as long as its header says. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "chunk.h"
#include "fuzz_util.h"
#include "notify.h"
#include "ua.h"
#include "value.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    return 0;
}

static void walk_variant(const struct ua_variant *v, struct ua_text *t)
{
    struct ua_variant e;
    for (int32_t i = 0; v->is_array && i < v->n && i < 64; i++)
        if (ua_variant_elem(v, i, &e) != UA_OK)
            abort(); /* the decoder validated every element already */
    struct ua_datavalue dv = {.mask = UA_DV_VALUE, .value = *v};
    struct ib_sample s;
    ua_value_to_sample(&dv, 0, t, &s);
    if (s.value.type == IB_V_STRING && s.value.v.s.len && !s.value.v.s.ptr)
        abort();
}

static void on_change(void *arg, uint32_t handle, const struct ua_datavalue *dv)
{
    (void)handle;
    struct ib_sample s;
    ua_value_to_sample(dv, 0, arg, &s);
    if (dv->mask & UA_DV_VALUE)
        walk_variant(&dv->value, arg);
}

static void on_status(void *arg, uint32_t status)
{
    (void)arg;
    (void)status;
}

/* What follows a ResponseHeader, as the subscription decoders see it. */
static void decode_notifications(struct ua_cur c, struct ua_text *t)
{
    struct ua_notif_cbs cbs = {on_change, on_status, t};
    for (int publish = 0; publish < 2; publish++) {
        struct ua_cur k = c;
        struct ua_notif_msg m;
        if (ua_notif_parse(&k, publish, &m) == UA_OK) {
            if (m.n_avail > UA_MAX_AVAIL || (m.n_data && !m.data))
                abort();
            ua_notif_each(&m, &cbs);
        }
    }
    struct ua_cur f = c;
    uint32_t trigger, type;
    double value;
    if (ua_datachange_filter_parse(&f, &trigger, &type, &value) == UA_OK &&
        (trigger > 2 || type > 2))
        abort();
}

static void decode_response(const uint8_t *p, size_t n)
{
    struct ua_cur c;
    ua_cur_init(&c, p, n);
    c.max_array = 1u << 20;
    struct ua_nodeid type;
    struct ua_diaginfo di;
    struct ua_extobj eo;
    ua_get_nodeid(&c, &type);
    ua_get_i64(&c);
    ua_get_u32(&c);
    ua_get_u32(&c);
    ua_get_diaginfo(&c, &di);
    int32_t k = ua_get_array_len(&c, 4);
    for (int32_t i = 0; i < k; i++)
        ua_get_str(&c);
    ua_get_extobj(&c, &eo);
    struct ua_text t = {0};
    if (c.err == UA_OK)
        decode_notifications(c, &t);
    int32_t nv = ua_get_array_len(&c, 1);
    for (int32_t i = 0; i < nv && c.err == UA_OK; i++) {
        struct ua_datavalue dv;
        ua_get_datavalue(&c, &dv);
        if (c.err == UA_OK) {
            struct ib_sample s;
            ua_value_to_sample(&dv, 0, &t, &s);
            if (dv.mask & UA_DV_VALUE)
                walk_variant(&dv.value, &t);
        }
    }
    ua_text_free(&t);
    if (c.err == UA_OK && c.left > n)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    static const uint32_t max_chunks[4] = {0, 1, 4, 16};
    struct ua_asm a = {.channel_id = (data[0] & 1) ? 0 : 5,
                       .token_id = (data[0] & 1) ? 0 : 9,
                       .max_chunks = max_chunks[(data[0] >> 1) & 3],
                       .max_msg = 1u << 20};
    struct ua_limits ours = {0, 65535, 65535, 1u << 20, 0}, theirs;
    size_t off = 1;
    while (off < size) {
        struct ua_hdr h;
        if (ua_hdr_parse(data + off, size - off, 65535, &h) != UA_OK || h.size > size - off)
            break;
        /* a copy of exactly the chunk, so that ASan sees any read past it */
        uint8_t *chunk = malloc(h.size);
        memcpy(chunk, data + off, h.size);
        const uint8_t *body = chunk + UA_HDR_LEN;
        size_t blen = h.size - UA_HDR_LEN;
        uint32_t code;
        struct ua_str reason;
        if (strcmp(h.type, "ACK") == 0) {
            ua_ack_parse(body, blen, &ours, &theirs);
        } else if (strcmp(h.type, "ERR") == 0) {
            ua_errmsg_parse(body, blen, &code, &reason);
        } else {
            int r = ua_asm_add(&a, chunk, h.size, &code, &reason);
            if (r == UA_ASM_DONE)
                decode_response(a.body.data, a.body.len);
            if (a.max_msg && a.body.len > a.max_msg)
                abort();
        }
        free(chunk);
        off += h.size;
    }
    ua_asm_free(&a);
    return 0;
}
