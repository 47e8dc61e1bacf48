/* OPC UA plugin: the 8-byte message header, Hello/Acknowledge/Error bodies, and the splitting
 * and reassembly of MSG/OPN/CLO chunks (OPC 10000-6 §6.7.2, §7.1.2), SecurityPolicy None. Every
 * header field and length is checked before it is used; reassembly is bounded by the
 * negotiated message size and chunk count. */
#include <string.h>

#include "chunk.h"

static bool type_is(const struct ua_hdr *h, const char *t)
{
    return memcmp(h->type, t, 3) == 0;
}

int ua_hdr_parse(const uint8_t *p, size_t n, uint32_t max_size, struct ua_hdr *h)
{
    static const char *const types[] = {"HEL", "ACK", "ERR", "RHE", "MSG", "OPN", "CLO"};
    if (n < UA_HDR_LEN)
        return UA_E_SHORT;
    memcpy(h->type, p, 3);
    h->type[3] = '\0';
    h->chunk = (char)p[3];
    h->size = (uint32_t)p[4] | (uint32_t)p[5] << 8 | (uint32_t)p[6] << 16 | (uint32_t)p[7] << 24;
    bool known = false;
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
        known |= type_is(h, types[i]);
    if (!known)
        return UA_E_TYPE;
    if (h->chunk != 'F' && h->chunk != 'C' && h->chunk != 'A')
        return UA_E_TYPE;
    if (h->chunk != 'F' && !type_is(h, "MSG"))
        return UA_E_TYPE; /* only MSG may come in several chunks */
    if (h->size < UA_HDR_LEN || (max_size && h->size > max_size))
        return UA_E_RANGE;
    return UA_OK;
}

void ua_hello_build(struct ua_buf *b, const struct ua_limits *ours, const char *url)
{
    size_t start = b->len;
    ua_put_bytes(b, "HELF", 4);
    ua_put_u32(b, 0); /* size, patched below */
    ua_put_u32(b, ours->version);
    ua_put_u32(b, ours->recv_buf);
    ua_put_u32(b, ours->send_buf);
    ua_put_u32(b, ours->max_msg);
    ua_put_u32(b, ours->max_chunks);
    ua_put_cstr(b, url);
    ua_buf_patch_u32(b, start + 4, (uint32_t)(b->len - start));
}

int ua_ack_parse(const uint8_t *body, size_t n, const struct ua_limits *ours,
                 struct ua_limits *theirs)
{
    struct ua_cur c;
    ua_cur_init(&c, body, n);
    theirs->version = ua_get_u32(&c);
    theirs->recv_buf = ua_get_u32(&c);
    theirs->send_buf = ua_get_u32(&c);
    theirs->max_msg = ua_get_u32(&c);
    theirs->max_chunks = ua_get_u32(&c);
    if (c.err != UA_OK)
        return c.err;
    if (theirs->recv_buf < UA_MIN_BUFFER || theirs->send_buf < UA_MIN_BUFFER ||
        theirs->send_buf > ours->recv_buf)
        return UA_E_RANGE;
    return UA_OK;
}

int ua_errmsg_parse(const uint8_t *body, size_t n, uint32_t *code, struct ua_str *reason)
{
    struct ua_cur c;
    ua_cur_init(&c, body, n);
    *code = ua_get_u32(&c);
    *reason = ua_get_str(&c);
    return c.err;
}

/* Bytes of a chunk's headers before its body: message header, channel id, security header,
 * sequence header. */
static size_t overhead(const char *type)
{
    if (memcmp(type, "OPN", 3) == 0) /* policy URI, null certificate, null thumbprint */
        return UA_HDR_LEN + 4 + 4 + strlen(UA_SECURITY_NONE_URI) + 4 + 4 + 8;
    return UA_HDR_LEN + 4 + 4 + 8;
}

int ua_chunks_build(struct ua_buf *out, const char *type, struct ua_seq *s, uint32_t request_id,
                    const uint8_t *body, size_t len, uint32_t chunk_size, uint32_t max_chunks,
                    uint32_t max_msg)
{
    size_t head = overhead(type);
    if (chunk_size <= head || (max_msg && len > max_msg))
        return UA_E_LIMIT;
    size_t room = chunk_size - head;
    size_t n_chunks = len ? (len + room - 1) / room : 1;
    bool multi_ok = memcmp(type, "MSG", 3) == 0;
    if ((!multi_ok && n_chunks > 1) || (max_chunks && n_chunks > max_chunks))
        return UA_E_LIMIT;
    size_t off = 0;
    for (size_t i = 0; i < n_chunks; i++) {
        size_t part = len - off < room ? len - off : room;
        size_t start = out->len;
        ua_put_bytes(out, type, 3);
        ua_put_u8(out, i + 1 == n_chunks ? 'F' : 'C');
        ua_put_u32(out, (uint32_t)(head + part));
        ua_put_u32(out, s->channel_id);
        if (memcmp(type, "OPN", 3) == 0) {
            ua_put_cstr(out, UA_SECURITY_NONE_URI);
            ua_put_i32(out, -1); /* SenderCertificate */
            ua_put_i32(out, -1); /* ReceiverCertificateThumbprint */
        } else {
            ua_put_u32(out, s->token_id);
        }
        ua_put_u32(out, s->next_seq);
        ua_put_u32(out, request_id);
        ua_put_bytes(out, body + off, part);
        s->next_seq = s->next_seq >= 4294966271u ? 1 : s->next_seq + 1;
        off += part;
        (void)start;
    }
    return out->err;
}

void ua_asm_reset(struct ua_asm *a)
{
    ua_buf_reset(&a->body);
    a->n_chunks = 0;
    a->request_id = 0;
}

void ua_asm_free(struct ua_asm *a)
{
    ua_buf_free(&a->body);
}

/* The sequence number must follow the last one (or wrap below 1024 after 4294966271). */
static bool seq_ok(struct ua_asm *a, uint32_t seq)
{
    if (!a->have_seq)
        return true;
    if (a->last_seq >= 4294966271u)
        return seq < 1024;
    return seq == a->last_seq + 1;
}

static int parse_security_header(struct ua_asm *a, const struct ua_hdr *h, struct ua_cur *c)
{
    uint32_t chan = ua_get_u32(c);
    if (type_is(h, "OPN")) {
        struct ua_str uri = ua_get_str(c);
        struct ua_str cert = ua_get_str(c);
        struct ua_str thumb = ua_get_str(c);
        if (c->err != UA_OK)
            return c->err;
        const char *want = a->policy_uri ? a->policy_uri : UA_SECURITY_NONE_URI;
        if (uri.len != (int32_t)strlen(want) || memcmp(uri.ptr, want, (size_t)uri.len) != 0)
            return UA_E_TYPE; /* another policy than the channel's */
        (void)cert;
        (void)thumb;
    } else {
        uint32_t token = ua_get_u32(c);
        if (c->err == UA_OK && a->token_id && token != a->token_id &&
            (!a->prev_token_id || token != a->prev_token_id))
            return UA_E_RANGE;
    }
    if (c->err != UA_OK)
        return c->err;
    if (a->channel_id && chan != a->channel_id)
        return UA_E_RANGE;
    return UA_OK;
}

int ua_asm_add(struct ua_asm *a, const uint8_t *chunk, size_t len, uint32_t *abort_code,
               struct ua_str *abort_reason)
{
    struct ua_hdr h;
    int err = ua_hdr_parse(chunk, len, 0, &h);
    if (err != UA_OK)
        return -err;
    if (h.size != len || !(type_is(&h, "MSG") || type_is(&h, "OPN") || type_is(&h, "CLO")))
        return -UA_E_TYPE;
    struct ua_cur c;
    ua_cur_init(&c, chunk + UA_HDR_LEN, len - UA_HDR_LEN);
    err = parse_security_header(a, &h, &c);
    if (err != UA_OK)
        return -err;
    uint32_t seq = ua_get_u32(&c);
    uint32_t req = ua_get_u32(&c);
    if (c.err != UA_OK)
        return -c.err;
    if (!seq_ok(a, seq))
        return -UA_E_RANGE;
    a->last_seq = seq;
    a->have_seq = true;
    if (a->n_chunks > 0 && (req != a->request_id || memcmp(a->type, h.type, 3) != 0))
        return -UA_E_RANGE; /* chunks of two messages interleaved */
    if (h.chunk == 'A') {
        ua_asm_reset(a);
        a->request_id = req;
        if (ua_errmsg_parse(c.p, c.left, abort_code, abort_reason) != UA_OK) {
            *abort_code = 0x80070000u; /* BadDecodingError */
            abort_reason->ptr = NULL;
            abort_reason->len = -1;
        }
        return UA_ASM_ABORT;
    }
    if (a->n_chunks == 0) {
        ua_buf_reset(&a->body);
        a->request_id = req;
        memcpy(a->type, h.type, 4);
    }
    a->n_chunks++;
    if ((a->max_chunks && a->n_chunks > a->max_chunks) ||
        (a->max_msg && a->body.len + c.left > a->max_msg)) {
        ua_asm_reset(a);
        return -UA_E_LIMIT;
    }
    ua_put_bytes(&a->body, c.p, c.left);
    if (a->body.err != UA_OK) {
        int e = a->body.err;
        ua_asm_reset(a);
        return -e;
    }
    if (h.chunk == 'C')
        return UA_ASM_MORE;
    a->n_chunks = 0;
    return UA_ASM_DONE;
}
