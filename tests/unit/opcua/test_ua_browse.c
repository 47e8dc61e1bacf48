/* Unit tests of the Browse/BrowseNext response decoder (plugins/opcua/browse_decode.c): a
 * response with two results (references with string and numeric NodeIds, a continuation
 * point, a bad StatusCode) decoded field by field; every truncation and a wrong result count
 * refused with nothing handed on. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "browse.h"

/* One ReferenceDescription, written byte by byte (OPC 10000-4 §7.30). */
static const uint8_t REF_SPEED[] = {
    0x01, 0x00, 47,   0x00,              /* ReferenceTypeId: 4-byte form ns 0, i=47 */
    0x01,                                /* IsForward */
    0x03, 0x02, 0x00, 5,    0,   0,   0, /* NodeId: string form ns 2, "Speed" */
    'S',  'p',  'e',  'e',  'd',         /*  */
    0x02, 0x00, 5,    0,    0,   0,      /* BrowseName: ns 2, "Speed" */
    'S',  'p',  'e',  'e',  'd',         /*  */
    0x02, 5,    0,    0,    0,   'S',    /* DisplayName: text only, "Speed" */
    'p',  'e',  'e',  'd',               /*  */
    2,    0,    0,    0,                 /* NodeClass Variable */
    0x01, 0x00, 63,   0x00,              /* TypeDefinition i=63 */
};
static const uint8_t REF_FOLDER[] = {
    0x01, 0x00, 35, 0x00, 0x01, 0x00, 0x55, /* Organizes, forward, i=85 (2-byte form) */
    0x00, 0x00, 1,  0,    0,    0,    'F',  /* BrowseName ns 0 "F" */
    0x00,                                   /* DisplayName: nothing */
    1,    0,    0,  0,    0x00, 61,         /* Object, TypeDefinition i=61 */
};

struct seen {
    int results, refs;
    uint32_t status[4];
    int32_t cont_len[4];
    char names[4][16];
    int32_t classes[4];
    uint16_t ns[4];
};

static void on_result(void *arg, size_t i, uint32_t status, struct ua_str cont)
{
    struct seen *s = arg;
    assert_int_equal(i, s->results);
    s->status[i] = status;
    s->cont_len[i] = cont.len;
    s->results++;
}

static void on_ref(void *arg, size_t i, const struct ua_ref *r)
{
    struct seen *s = arg;
    (void)i;
    snprintf(s->names[s->refs], sizeof s->names[0], "%.*s", (int)r->browse_name.name.len,
             r->browse_name.name.ptr);
    s->classes[s->refs] = r->node_class;
    s->ns[s->refs] = r->node.id.ns;
    s->refs++;
}

static size_t response(uint8_t *out)
{
    struct ua_buf b = {0};
    ua_put_i32(&b, 2); /* results */
    ua_put_u32(&b, 0); /* Good */
    ua_put_i32(&b, 3);
    ua_put_bytes(&b, "\x01\x02\x03", 3); /* ContinuationPoint */
    ua_put_i32(&b, 2);
    ua_put_bytes(&b, REF_SPEED, sizeof REF_SPEED);
    ua_put_bytes(&b, REF_FOLDER, sizeof REF_FOLDER);
    ua_put_u32(&b, 0x80340000u); /* BadNodeIdUnknown */
    ua_put_i32(&b, -1);          /* no ContinuationPoint */
    ua_put_i32(&b, 0);           /* no references */
    ua_put_i32(&b, -1);          /* DiagnosticInfos */
    memcpy(out, b.data, b.len);
    size_t n = b.len;
    ua_buf_free(&b);
    return n;
}

static void decodes_every_field(void **state)
{
    (void)state;
    uint8_t msg[512];
    size_t n = response(msg);
    struct seen s = {0};
    struct ua_browse_cb cb = {on_result, on_ref, &s};
    struct ua_cur c;
    ua_cur_init(&c, msg, n);
    assert_int_equal(ua_browse_decode(&c, 2, &cb), UA_OK);
    assert_int_equal(c.left, 0);
    assert_int_equal(s.results, 2);
    assert_int_equal(s.refs, 2);
    assert_int_equal(s.cont_len[0], 3);
    assert_int_equal(s.status[1], 0x80340000u);
    assert_string_equal(s.names[0], "Speed");
    assert_int_equal(s.classes[0], UA_NODECLASS_VARIABLE);
    assert_int_equal(s.ns[0], 2);
    assert_string_equal(s.names[1], "F");
    assert_int_equal(s.classes[1], UA_NODECLASS_OBJECT);
}

static void truncations_hand_on_nothing(void **state)
{
    (void)state;
    uint8_t msg[512];
    size_t n = response(msg);
    for (size_t len = 0; len < n; len++) {
        struct seen s = {0};
        struct ua_browse_cb cb = {on_result, on_ref, &s};
        struct ua_cur c;
        ua_cur_init(&c, msg, len);
        assert_int_not_equal(ua_browse_decode(&c, 2, &cb), UA_OK);
        assert_int_equal(s.results + s.refs, 0);
    }
}

static void wrong_count_refused(void **state)
{
    (void)state;
    uint8_t msg[512];
    size_t n = response(msg);
    struct seen s = {0};
    struct ua_browse_cb cb = {on_result, on_ref, &s};
    struct ua_cur c;
    ua_cur_init(&c, msg, n);
    assert_int_equal(ua_browse_decode(&c, 3, &cb), UA_E_RANGE);
    assert_int_equal(s.results, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(decodes_every_field),
        cmocka_unit_test(truncations_hand_on_nothing),
        cmocka_unit_test(wrong_count_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
