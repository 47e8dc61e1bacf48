/* Unit tests of the OPC UA connection protocol framing (plugins/opcua/chunk.c): Hello bytes,
 * Acknowledge limits, ERR bodies, splitting a message into chunks within the peer's buffer
 * size, reassembly, and the refusal of broken headers, wrong channel or token ids, sequence
 * gaps, interleaved messages, oversized messages and too many chunks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "chunk.h"

static void hello_bytes(void **state)
{
    (void)state;
    struct ua_limits ours = {0, 65535, 65535, 1 << 24, 0};
    struct ua_buf b = {0};
    ua_hello_build(&b, &ours, "opc.tcp://h:1");
    static const uint8_t want[] = {'H',  'E',  'L', 'F', 45,   0,    0,   0,   0,   0,   0,   0,
                                   0xff, 0xff, 0,   0,   0xff, 0xff, 0,   0,   0,   0,   0,   1,
                                   0,    0,    0,   0,   13,   0,    0,   0,   'o', 'p', 'c', '.',
                                   't',  'c',  'p', ':', '/',  '/',  'h', ':', '1'};
    assert_int_equal(b.len, sizeof want);
    assert_memory_equal(b.data, want, sizeof want);
    ua_buf_free(&b);
}

static void header_checks(void **state)
{
    (void)state;
    struct ua_hdr h;
    assert_int_equal(ua_hdr_parse((const uint8_t *)"ACKF\x1c\0\0\0", 8, 65535, &h), UA_OK);
    assert_string_equal(h.type, "ACK");
    assert_int_equal(h.size, 28);
    assert_int_equal(ua_hdr_parse((const uint8_t *)"XYZF\x1c\0\0\0", 8, 65535, &h), UA_E_TYPE);
    assert_int_equal(ua_hdr_parse((const uint8_t *)"MSGX\x1c\0\0\0", 8, 65535, &h), UA_E_TYPE);
    assert_int_equal(ua_hdr_parse((const uint8_t *)"OPNC\x1c\0\0\0", 8, 65535, &h), UA_E_TYPE);
    assert_int_equal(ua_hdr_parse((const uint8_t *)"MSGF\x07\0\0\0", 8, 65535, &h), UA_E_RANGE);
    assert_int_equal(ua_hdr_parse((const uint8_t *)"MSGF\0\0\1\0", 8, 65535, &h), UA_E_RANGE);
    assert_int_equal(ua_hdr_parse((const uint8_t *)"MSGF", 4, 65535, &h), UA_E_SHORT);
}

static void ack_limits(void **state)
{
    (void)state;
    struct ua_limits ours = {0, 65535, 65535, 0, 0}, theirs;
    uint8_t body[20] = {0};
    body[4] = 0x00, body[5] = 0x20; /* recv 8192 */
    body[8] = 0x00, body[9] = 0x20; /* send 8192 */
    assert_int_equal(ua_ack_parse(body, sizeof body, &ours, &theirs), UA_OK);
    assert_int_equal(theirs.recv_buf, 8192);
    body[5] = 0x10; /* recv 4096: below the minimum */
    assert_int_equal(ua_ack_parse(body, sizeof body, &ours, &theirs), UA_E_RANGE);
    body[5] = 0x20;
    body[10] = 0x01; /* send 73728: more than we can receive */
    assert_int_equal(ua_ack_parse(body, sizeof body, &ours, &theirs), UA_E_RANGE);
    assert_int_equal(ua_ack_parse(body, 19, &ours, &theirs), UA_E_SHORT);
}

static void err_body(void **state)
{
    (void)state;
    static const uint8_t body[] = {0, 0, 0x80, 0x80, 2, 0, 0, 0, 'n', 'o'};
    uint32_t code;
    struct ua_str reason;
    assert_int_equal(ua_errmsg_parse(body, sizeof body, &code, &reason), UA_OK);
    assert_int_equal(code, 0x80800000);
    assert_int_equal(reason.len, 2);
    assert_int_not_equal(ua_errmsg_parse(body, 9, &code, &reason), UA_OK);
}

/* Splits `len` bytes into MSG chunks of at most `size` bytes and reassembles them. */
static void split_and_join(size_t len, uint32_t size, uint32_t want_chunks)
{
    uint8_t *body = test_malloc(len ? len : 1);
    for (size_t i = 0; i < len; i++)
        body[i] = (uint8_t)(i * 7);
    struct ua_seq seq = {.channel_id = 5, .token_id = 9, .next_seq = 100};
    struct ua_buf out = {0};
    assert_int_equal(ua_chunks_build(&out, "MSG", &seq, 42, body, len, size, 0, 0), UA_OK);
    assert_int_equal(seq.next_seq, 100 + want_chunks);
    struct ua_asm a = {.channel_id = 5, .token_id = 9};
    size_t off = 0;
    uint32_t chunks = 0;
    int r = UA_ASM_MORE;
    while (off < out.len) {
        struct ua_hdr h;
        assert_int_equal(ua_hdr_parse(out.data + off, out.len - off, 0, &h), UA_OK);
        assert_true(h.size <= size);
        r = ua_asm_add(&a, out.data + off, h.size, NULL, NULL);
        chunks++;
        off += h.size;
        assert_int_equal(r, off == out.len ? UA_ASM_DONE : UA_ASM_MORE);
    }
    assert_int_equal(chunks, want_chunks);
    assert_int_equal(a.request_id, 42);
    assert_int_equal(a.body.len, len);
    if (len)
        assert_memory_equal(a.body.data, body, len);
    ua_asm_free(&a);
    ua_buf_free(&out);
    test_free(body);
}

static void chunking(void **state)
{
    (void)state;
    split_and_join(0, 8192, 1);
    split_and_join(100, 8192, 1);
    split_and_join(8192 - 24, 8192, 1);
    split_and_join(8192 - 23, 8192, 2);
    split_and_join(100000, 8192, 13);
}

static void build_limits(void **state)
{
    (void)state;
    uint8_t body[20000] = {0};
    struct ua_seq seq = {1, 1, 1};
    struct ua_buf out = {0};
    assert_int_equal(ua_chunks_build(&out, "MSG", &seq, 1, body, sizeof body, 8192, 2, 0),
                     UA_E_LIMIT);
    assert_int_equal(ua_chunks_build(&out, "MSG", &seq, 1, body, sizeof body, 8192, 0, 10000),
                     UA_E_LIMIT);
    assert_int_equal(ua_chunks_build(&out, "OPN", &seq, 1, body, sizeof body, 8192, 0, 0),
                     UA_E_LIMIT); /* OPN is never split */
    ua_buf_free(&out);
}

/* One MSG chunk by hand. */
static size_t chunk(uint8_t *p, char kind, uint32_t chan, uint32_t token, uint32_t seq,
                    uint32_t req, const char *payload)
{
    size_t n = strlen(payload);
    struct ua_buf b = {0};
    ua_put_bytes(&b, "MSG", 3);
    ua_put_u8(&b, (uint8_t)kind);
    ua_put_u32(&b, (uint32_t)(24 + n));
    ua_put_u32(&b, chan);
    ua_put_u32(&b, token);
    ua_put_u32(&b, seq);
    ua_put_u32(&b, req);
    ua_put_bytes(&b, payload, n);
    memcpy(p, b.data, b.len);
    size_t len = b.len;
    ua_buf_free(&b);
    return len;
}

static void reassembly_refusals(void **state)
{
    (void)state;
    uint8_t c[128];
    struct ua_asm a = {.channel_id = 5, .token_id = 9};
    size_t n = chunk(c, 'F', 6, 9, 1, 1, "x");
    assert_true(ua_asm_add(&a, c, n, NULL, NULL) < 0); /* another channel */
    n = chunk(c, 'F', 5, 8, 1, 1, "x");
    assert_true(ua_asm_add(&a, c, n, NULL, NULL) < 0); /* another token */
    n = chunk(c, 'F', 5, 9, 10, 1, "x");
    assert_int_equal(ua_asm_add(&a, c, n, NULL, NULL), UA_ASM_DONE);
    n = chunk(c, 'F', 5, 9, 12, 2, "x");
    assert_true(ua_asm_add(&a, c, n, NULL, NULL) < 0); /* a gap in sequence numbers */
    n = chunk(c, 'C', 5, 9, 11, 3, "ab");
    assert_int_equal(ua_asm_add(&a, c, n, NULL, NULL), UA_ASM_MORE);
    n = chunk(c, 'F', 5, 9, 12, 4, "cd");
    assert_true(ua_asm_add(&a, c, n, NULL, NULL) < 0); /* interleaved with another request */
    ua_asm_reset(&a);
    n = chunk(c, 'F', 5, 9, 13, 4, "x");
    assert_true(ua_asm_add(&a, c, n - 1, NULL, NULL) < 0); /* size disagrees with the header */
    ua_asm_free(&a);

    /* too many chunks, too many bytes */
    struct ua_asm b = {.channel_id = 5, .token_id = 9, .max_chunks = 2, .max_msg = 5};
    n = chunk(c, 'C', 5, 9, 1, 1, "ab");
    assert_int_equal(ua_asm_add(&b, c, n, NULL, NULL), UA_ASM_MORE);
    n = chunk(c, 'C', 5, 9, 2, 1, "cd");
    assert_int_equal(ua_asm_add(&b, c, n, NULL, NULL), UA_ASM_MORE);
    n = chunk(c, 'F', 5, 9, 3, 1, "e");
    assert_int_equal(ua_asm_add(&b, c, n, NULL, NULL), -UA_E_LIMIT);
    n = chunk(c, 'F', 5, 9, 4, 2, "abcdef");
    b.max_chunks = 0;
    assert_int_equal(ua_asm_add(&b, c, n, NULL, NULL), -UA_E_LIMIT);
    ua_asm_free(&b);
}

static void abort_chunk(void **state)
{
    (void)state;
    uint8_t c[128];
    struct ua_asm a = {.channel_id = 5, .token_id = 9};
    size_t n = chunk(c, 'C', 5, 9, 1, 7, "ab");
    assert_int_equal(ua_asm_add(&a, c, n, NULL, NULL), UA_ASM_MORE);
    n = chunk(c, 'A', 5, 9, 2, 7, "\x00\x00\x80\x80\x00\x00\x00\x00");
    n = 24 + 8; /* the payload holds NULs: fix the length written by strlen */
    c[4] = (uint8_t)n;
    memcpy(c + 24, "\x00\x00\x80\x80\x00\x00\x00\x00", 8);
    uint32_t code = 0;
    struct ua_str reason;
    assert_int_equal(ua_asm_add(&a, c, n, &code, &reason), UA_ASM_ABORT);
    assert_int_equal(code, 0x80800000);
    assert_int_equal(a.request_id, 7);
    ua_asm_free(&a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(hello_bytes),
        cmocka_unit_test(header_checks),
        cmocka_unit_test(ack_limits),
        cmocka_unit_test(err_body),
        cmocka_unit_test(chunking),
        cmocka_unit_test(build_limits),
        cmocka_unit_test(reassembly_refusals),
        cmocka_unit_test(abort_chunk),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
