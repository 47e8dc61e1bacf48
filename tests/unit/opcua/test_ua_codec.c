/* Unit tests of the UA Binary codec (plugins/opcua/decode.c, encode.c, status.c): byte-exact
 * vectors of OPC 10000-6 §5.2 for the built-in types, the four NodeId forms, ExpandedNodeId,
 * Variant scalars and arrays, DataValue and DiagnosticInfo, and refusals of every truncation,
 * oversized length and excessive nesting. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "status.h"
#include "ua.h"

#define BYTES(...) ((const uint8_t[]){__VA_ARGS__}), sizeof((const uint8_t[]){__VA_ARGS__})

static void expect_bytes(const struct ua_buf *b, const uint8_t *want, size_t n)
{
    assert_int_equal(b->err, UA_OK);
    assert_int_equal(b->len, n);
    assert_memory_equal(b->data, want, n);
}

/* Every prefix shorter than the whole must fail with UA_E_SHORT (or another error), never
 * read past its end (ASan checks the reads). */
static void every_prefix_fails(const uint8_t *p, size_t n, void (*dec)(struct ua_cur *))
{
    for (size_t k = 0; k < n; k++) {
        uint8_t *copy = test_malloc(k ? k : 1);
        memcpy(copy, p, k);
        struct ua_cur c;
        ua_cur_init(&c, copy, k);
        dec(&c);
        assert_int_not_equal(c.err, UA_OK);
        test_free(copy);
    }
}

static void integers(void **state)
{
    (void)state;
    struct ua_buf b = {0};
    ua_put_bool(&b, true);
    ua_put_u16(&b, 0x1234);
    ua_put_i32(&b, -2);
    ua_put_u64(&b, 0x0102030405060708ULL);
    expect_bytes(&b, BYTES(0x01, 0x34, 0x12, 0xfe, 0xff, 0xff, 0xff, 0x08, 0x07, 0x06, 0x05, 0x04,
                           0x03, 0x02, 0x01));
    struct ua_cur c;
    ua_cur_init(&c, b.data, b.len);
    assert_true(ua_get_bool(&c));
    assert_int_equal(ua_get_u16(&c), 0x1234);
    assert_int_equal(ua_get_i32(&c), -2);
    assert_true(ua_get_u64(&c) == 0x0102030405060708ULL);
    assert_int_equal(c.err, UA_OK);
    assert_int_equal(c.left, 0);
    ua_get_u8(&c);
    assert_int_equal(c.err, UA_E_SHORT);
    ua_buf_free(&b);
}

static void floats(void **state)
{
    (void)state;
    struct ua_buf b = {0};
    /* Part 6 §5.2.2.3: -6.5 as Float is 0x00 0x00 0xD0 0xC0 */
    ua_put_float(&b, -6.5f);
    ua_put_double(&b, 1.0);
    expect_bytes(&b, BYTES(0x00, 0x00, 0xd0, 0xc0, 0, 0, 0, 0, 0, 0, 0xf0, 0x3f));
    ua_buf_free(&b);
}

static void strings(void **state)
{
    (void)state;
    struct ua_buf b = {0};
    /* Part 6 §5.2.2.4: the string "水Boy" is 6 bytes of UTF-8 after its length */
    ua_put_cstr(&b, "\xe6\xb0\xb4"
                    "Boy");
    ua_put_cstr(&b, NULL);
    ua_put_cstr(&b, "");
    expect_bytes(&b, BYTES(0x06, 0, 0, 0, 0xe6, 0xb0, 0xb4, 'B', 'o', 'y', 0xff, 0xff, 0xff, 0xff,
                           0, 0, 0, 0));
    struct ua_cur c;
    ua_cur_init(&c, b.data, b.len);
    struct ua_str s = ua_get_str(&c);
    assert_int_equal(s.len, 6);
    assert_memory_equal(s.ptr,
                        "\xe6\xb0\xb4"
                        "Boy",
                        6);
    s = ua_get_str(&c);
    assert_int_equal(s.len, -1);
    assert_null(s.ptr);
    s = ua_get_str(&c);
    assert_int_equal(s.len, 0);
    assert_int_equal(c.err, UA_OK);
    ua_buf_free(&b);

    /* a length past the end, and a length below -1 */
    ua_cur_init(&c, BYTES(0x05, 0, 0, 0, 'a', 'b'));
    ua_get_str(&c);
    assert_int_equal(c.err, UA_E_SHORT);
    ua_cur_init(&c, BYTES(0xfe, 0xff, 0xff, 0xff));
    ua_get_str(&c);
    assert_int_equal(c.err, UA_E_RANGE);
}

static void guid_and_datetime(void **state)
{
    (void)state;
    /* Part 6 §5.2.2.7: {72962B91-FA75-4AE6-8D28-B404DC7DAF63} */
    struct ua_guid g = {
        0x72962B91, 0xFA75, 0x4AE6, {0x8D, 0x28, 0xB4, 0x04, 0xDC, 0x7D, 0xAF, 0x63}};
    struct ua_buf b = {0};
    ua_put_guid(&b, &g);
    expect_bytes(&b, BYTES(0x91, 0x2B, 0x96, 0x72, 0x75, 0xFA, 0xE6, 0x4A, 0x8D, 0x28, 0xB4, 0x04,
                           0xDC, 0x7D, 0xAF, 0x63));
    ua_buf_free(&b);
    assert_true(ua_datetime_to_ms(UA_EPOCH_DELTA) == 0);
    assert_true(ua_datetime_to_ms(UA_EPOCH_DELTA + 12345678) == 1234);
    assert_true(ua_ms_to_datetime(1) == UA_EPOCH_DELTA + 10000);
    assert_true(ua_datetime_to_ms(0) == 0);
}

static void nodeids(void **state)
{
    (void)state;
    struct ua_buf b = {0};
    struct ua_nodeid two = ua_nid_num(0, 72);
    struct ua_nodeid four = ua_nid_num(5, 1025);
    struct ua_nodeid num = ua_nid_num(2, 0x10000);
    struct ua_nodeid str = {.ns = 1, .kind = UA_NID_STRING, .id.str = ua_str_c("Hot水")};
    /* Part 6 §5.2.2.9 Tables 7-9 */
    ua_put_nodeid(&b, &two);
    ua_put_nodeid(&b, &four);
    ua_put_nodeid(&b, &num);
    ua_put_nodeid(&b, &str);
    expect_bytes(&b, BYTES(0x00, 0x48, 0x01, 0x05, 0x01, 0x04, 0x02, 0x02, 0x00, 0x00, 0x00, 0x01,
                           0x00, 0x03, 0x01, 0x00, 0x06, 0x00, 0x00, 0x00, 0x48, 0x6F, 0x74, 0xE6,
                           0xB0, 0xB4));
    struct ua_cur c;
    ua_cur_init(&c, b.data, b.len);
    struct ua_nodeid n;
    ua_get_nodeid(&c, &n);
    assert_int_equal(n.id.num, 72);
    ua_get_nodeid(&c, &n);
    assert_int_equal(n.ns, 5);
    assert_int_equal(n.id.num, 1025);
    ua_get_nodeid(&c, &n);
    assert_int_equal(n.ns, 2);
    assert_int_equal(n.id.num, 0x10000);
    ua_get_nodeid(&c, &n);
    assert_int_equal(n.kind, UA_NID_STRING);
    assert_int_equal(n.id.str.len, 6);
    assert_int_equal(c.err, UA_OK);
    ua_buf_free(&b);

    /* an unknown encoding, and the ExpandedNodeId flags in a plain NodeId */
    ua_cur_init(&c, BYTES(0x06, 0, 0));
    ua_get_nodeid(&c, &n);
    assert_int_equal(c.err, UA_E_TYPE);
    ua_cur_init(&c, BYTES(0x80, 0x01));
    ua_get_nodeid(&c, &n);
    assert_int_equal(c.err, UA_E_TYPE);
}

static void expanded_nodeid(void **state)
{
    (void)state;
    struct ua_expnodeid x = {.id = ua_nid_num(0, 5), .uri = ua_str_c("u"), .server = 2};
    struct ua_buf b = {0};
    ua_put_expnodeid(&b, &x);
    expect_bytes(&b, BYTES(0xC0, 0x05, 0x01, 0, 0, 0, 'u', 0x02, 0, 0, 0));
    struct ua_cur c;
    ua_cur_init(&c, b.data, b.len);
    struct ua_expnodeid y;
    ua_get_expnodeid(&c, &y);
    assert_int_equal(c.err, UA_OK);
    assert_int_equal(y.server, 2);
    assert_int_equal(y.uri.len, 1);
    ua_buf_free(&b);
}

static void dec_variant(struct ua_cur *c)
{
    struct ua_variant v;
    ua_get_variant(c, &v);
}

static void variants(void **state)
{
    (void)state;
    struct ua_cur c;
    struct ua_variant v, e;
    /* scalar Int32 -1 */
    ua_cur_init(&c, BYTES(0x06, 0xff, 0xff, 0xff, 0xff));
    ua_get_variant(&c, &v);
    assert_int_equal(c.err, UA_OK);
    assert_int_equal(v.type, UA_INT32);
    assert_false(v.is_array);
    assert_true(v.v.i == -1);
    /* array of 3 UInt16 with dimensions [3] */
    static const uint8_t arr[] = {0xC5, 3, 0, 0, 0, 1, 0, 2, 0, 3, 0, 1, 0, 0, 0, 3, 0, 0, 0};
    ua_cur_init(&c, arr, sizeof arr);
    ua_get_variant(&c, &v);
    assert_int_equal(c.err, UA_OK);
    assert_true(v.is_array);
    assert_int_equal(v.n, 3);
    assert_int_equal(v.n_dims, 1);
    assert_int_equal(ua_variant_elem(&v, 2, &e), UA_OK);
    assert_true(e.v.u == 3);
    assert_int_not_equal(ua_variant_elem(&v, 3, &e), UA_OK);
    every_prefix_fails(arr, sizeof arr, dec_variant);
    /* array of strings */
    ua_cur_init(&c, BYTES(0x8C, 2, 0, 0, 0, 1, 0, 0, 0, 'a', 0xff, 0xff, 0xff, 0xff));
    ua_get_variant(&c, &v);
    assert_int_equal(c.err, UA_OK);
    assert_int_equal(ua_variant_elem(&v, 0, &e), UA_OK);
    assert_int_equal(e.v.s.len, 1);
    assert_int_equal(ua_variant_elem(&v, 1, &e), UA_OK);
    assert_int_equal(e.v.s.len, -1);
    /* a count that cannot fit in what is left is refused before any element is read */
    ua_cur_init(&c, BYTES(0x88, 0xff, 0xff, 0xff, 0x7f, 0, 0, 0, 0, 0, 0, 0, 0));
    ua_get_variant(&c, &v);
    assert_int_equal(c.err, UA_E_RANGE);
    /* dimensions that disagree with the count */
    ua_cur_init(&c, BYTES(0xC3, 2, 0, 0, 0, 7, 8, 1, 0, 0, 0, 3, 0, 0, 0));
    ua_get_variant(&c, &v);
    assert_int_equal(c.err, UA_E_RANGE);
    /* an unknown type id */
    ua_cur_init(&c, BYTES(0x1A, 0));
    ua_get_variant(&c, &v);
    assert_int_equal(c.err, UA_E_TYPE);
    /* the null Variant */
    ua_cur_init(&c, BYTES(0x00));
    ua_get_variant(&c, &v);
    assert_int_equal(c.err, UA_OK);
    assert_int_equal(v.type, 0);
    /* the array limit of the cursor */
    ua_cur_init(&c, BYTES(0x83, 3, 0, 0, 0, 1, 2, 3));
    c.max_array = 2;
    ua_get_variant(&c, &v);
    assert_int_equal(c.err, UA_E_RANGE);
}

static void nested_variants_are_bounded(void **state)
{
    (void)state;
    /* Variant of Variant of ... 40 deep */
    uint8_t deep[42];
    memset(deep, 0x18, 40);
    deep[40] = 0x01;
    deep[41] = 0x01;
    struct ua_cur c;
    struct ua_variant v;
    ua_cur_init(&c, deep, sizeof deep);
    ua_get_variant(&c, &v);
    assert_int_equal(c.err, UA_E_DEPTH);
    /* 3 deep is fine */
    ua_cur_init(&c, deep + 37, 5);
    ua_get_variant(&c, &v);
    assert_int_equal(c.err, UA_OK);
    assert_int_equal(v.type, UA_VARIANT);
}

static void dec_datavalue(struct ua_cur *c)
{
    struct ua_datavalue dv;
    ua_get_datavalue(c, &dv);
}

static void datavalues(void **state)
{
    (void)state;
    struct ua_datavalue dv = {.mask = UA_DV_VALUE | UA_DV_STATUS | UA_DV_SRC_TS | UA_DV_SRC_PICO,
                              .value = {.type = UA_FLOAT, .v.f = 1.5f},
                              .status = 0x40000000,
                              .src_ts = 0x0102030405060708LL,
                              .src_pico = 7};
    struct ua_buf b = {0};
    ua_put_datavalue(&b, &dv);
    static const uint8_t want[] = {0x17, 0x0A, 0, 0, 0xC0, 0x3F, 0, 0, 0, 0x40,
                                   8,    7,    6, 5, 4,    3,    2, 1, 7, 0};
    expect_bytes(&b, want, sizeof want);
    struct ua_cur c;
    struct ua_datavalue back;
    ua_cur_init(&c, b.data, b.len);
    ua_get_datavalue(&c, &back);
    assert_int_equal(c.err, UA_OK);
    assert_int_equal(back.status, 0x40000000);
    assert_true(back.value.v.f == 1.5f);
    assert_int_equal(back.src_pico, 7);
    every_prefix_fails(want, sizeof want, dec_datavalue);
    ua_buf_free(&b);
    /* reserved mask bits */
    ua_cur_init(&c, BYTES(0x40));
    ua_get_datavalue(&c, &back);
    assert_int_not_equal(c.err, UA_OK);
}

static void diagnostic_infos(void **state)
{
    (void)state;
    /* SymbolicId 1, Locale 2, LocalizedText 3 (mask 0x0D; Locale comes before LocalizedText),
     * AdditionalInfo "x", InnerStatusCode, one inner DiagnosticInfo with SymbolicId 9. */
    static const uint8_t di[] = {0x7D, 1, 0, 0,   0,    2,    0,    0,    0,    3, 0, 0, 0, 1,
                                 0,    0, 0, 'x', 0x00, 0x00, 0x34, 0x80, 0x01, 9, 0, 0, 0};
    struct ua_cur c;
    struct ua_diaginfo d;
    ua_cur_init(&c, di, sizeof di);
    ua_get_diaginfo(&c, &d);
    assert_int_equal(c.err, UA_OK);
    assert_int_equal(c.left, 0);
    assert_int_equal(d.symbolic_id, 1);
    assert_int_equal(d.locale, 2);
    assert_int_equal(d.localized_text, 3);
    assert_int_equal(d.namespace_uri, -1);
    assert_int_equal(d.additional_info.len, 1);
    assert_int_equal(d.inner_status, 0x80340000);
    assert_int_equal(d.depth, 1);
    /* nesting beyond the limit */
    uint8_t deep[UA_MAX_DEPTH + 3];
    memset(deep, 0x40, sizeof deep);
    deep[sizeof deep - 1] = 0;
    ua_cur_init(&c, deep, sizeof deep);
    ua_get_diaginfo(&c, &d);
    assert_int_equal(c.err, UA_E_DEPTH);
}

static void status_names(void **state)
{
    (void)state;
    char buf[64];
    assert_string_equal(ua_status_name(0x80340000), "BadNodeIdUnknown");
    assert_string_equal(ua_status_name(0), "Good");
    assert_string_equal(ua_status_name(0x801A0000), "BadCertificateUntrusted");
    assert_string_equal(ua_status_text(0x80340000, buf, sizeof buf), "BadNodeIdUnknown");
    assert_string_equal(ua_status_text(0x00000400, buf, sizeof buf), "Good (0x00000400)");
    assert_string_equal(ua_status_text(0x8FFF0000, buf, sizeof buf), "0x8FFF0000");
    assert_true(ua_status_is_bad(0x80340000));
    assert_false(ua_status_is_bad(0x40000000));
    assert_true(ua_status_is_uncertain(0x40000000));
}

static void encoder_limit(void **state)
{
    (void)state;
    struct ua_buf b = {.max = 6};
    ua_put_u32(&b, 1);
    ua_put_u32(&b, 2);
    assert_int_equal(b.err, UA_E_LIMIT);
    assert_int_equal(b.len, 4);
    ua_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(integers),     cmocka_unit_test(floats),
        cmocka_unit_test(strings),      cmocka_unit_test(guid_and_datetime),
        cmocka_unit_test(nodeids),      cmocka_unit_test(expanded_nodeid),
        cmocka_unit_test(variants),     cmocka_unit_test(nested_variants_are_bounded),
        cmocka_unit_test(datavalues),   cmocka_unit_test(diagnostic_infos),
        cmocka_unit_test(status_names), cmocka_unit_test(encoder_limit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
