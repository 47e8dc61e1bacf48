/* Unit tests of NodeId text (plugins/opcua/nodeid.c): the four identifier types with and
 * without a namespace, their refusals with a message, formatting back, and base64. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "nodeid.h"

static int parse(const char *t, struct ua_nodeid *n, uint8_t *bytes)
{
    char err[200];
    return ua_nodeid_parse(t, n, bytes, 64, err, sizeof err);
}

static void good_forms(void **state)
{
    (void)state;
    struct ua_nodeid n;
    uint8_t bytes[64];
    char buf[128];
    assert_int_equal(parse("i=2258", &n, bytes), 0);
    assert_int_equal(n.ns, 0);
    assert_int_equal(n.id.num, 2258);
    assert_string_equal(ua_nodeid_format(&n, buf, sizeof buf), "i=2258");
    assert_int_equal(parse("ns=2;s=Machine.Speed", &n, bytes), 0);
    assert_int_equal(n.ns, 2);
    assert_int_equal(n.kind, UA_NID_STRING);
    assert_int_equal(n.id.str.len, 13);
    assert_string_equal(ua_nodeid_format(&n, buf, sizeof buf), "ns=2;s=Machine.Speed");
    assert_int_equal(parse("ns=3;g=09087e75-8e5e-499b-954f-f2a9603db28a", &n, bytes), 0);
    assert_int_equal(n.kind, UA_NID_GUID);
    assert_int_equal(n.id.guid.d1, 0x09087e75);
    assert_int_equal(n.id.guid.d2, 0x8e5e);
    assert_int_equal(n.id.guid.d4[7], 0x8a);
    assert_string_equal(ua_nodeid_format(&n, buf, sizeof buf),
                        "ns=3;g=09087e75-8e5e-499b-954f-f2a9603db28a");
    assert_int_equal(parse("ns=1;b=M/RbKBsRVkePCePcx24oRA==", &n, bytes), 0);
    assert_int_equal(n.kind, UA_NID_BYTES);
    assert_int_equal(n.id.str.len, 16);
    assert_int_equal(bytes[0], 0x33);
    assert_int_equal(parse("ns=65535;i=4294967295", &n, bytes), 0);
    assert_int_equal(n.id.num, 4294967295u);
    /* a string id may hold ; and = */
    assert_int_equal(parse("ns=2;s=a;b=c", &n, bytes), 0);
    assert_int_equal(n.id.str.len, 5);
}

static void refusals(void **state)
{
    (void)state;
    struct ua_nodeid n;
    uint8_t bytes[64];
    char err[200];
    const char *bad[] = {"",
                         "x",
                         "i=",
                         "i=abc",
                         "i=4294967296",
                         "ns=65536;i=1",
                         "ns=;i=1",
                         "ns=1i=1",
                         "s=",
                         "g=1234",
                         "g=09087e75-8e5e-499b-954f-f2a9603db28",
                         "b=abc",
                         "b=!!!!",
                         "q=1",
                         "nsu=urn:x;s=a",
                         "ns=1;"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = '\0';
        assert_int_equal(ua_nodeid_parse(bad[i], &n, bytes, sizeof bytes, err, sizeof err), -1);
        assert_true(strlen(err) > 10);
    }
    ua_nodeid_parse("nsu=urn:x;s=a", &n, bytes, sizeof bytes, err, sizeof err);
    assert_non_null(strstr(err, "nsu="));
}

static void namespace_uris(void **state)
{
    (void)state;
    struct ua_nodeid n;
    struct ua_str uri;
    uint8_t bytes[64];
    char err[200];
    assert_int_equal(ua_nodeid_parse_uri("nsu=urn:ironbridge:test;s=Double", &n, &uri, bytes,
                                         sizeof bytes, err, sizeof err),
                     0);
    assert_int_equal(uri.len, 19);
    assert_memory_equal(uri.ptr, "urn:ironbridge:test", 19);
    assert_int_equal(n.kind, UA_NID_STRING);
    assert_int_equal(n.id.str.len, 6);
    /* a URI with ';' inside, and a string id with ';' inside */
    assert_int_equal(
        ua_nodeid_parse_uri("nsu=http://x/a;b;i=7", &n, &uri, bytes, sizeof bytes, err, sizeof err),
        0);
    assert_int_equal(uri.len, 12);
    assert_int_equal(n.id.num, 7);
    assert_int_equal(ua_nodeid_parse_uri("i=7", &n, &uri, bytes, sizeof bytes, err, sizeof err), 0);
    assert_int_equal(uri.len, -1);
    const char *bad[] = {"nsu=urn:a", "nsu=;s=a", "nsu=urn:a;s=", "nsu=urn:a;x=1"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(
            ua_nodeid_parse_uri(bad[i], &n, &uri, bytes, sizeof bytes, err, sizeof err), -1);
}

static void base64(void **state)
{
    (void)state;
    char out[16];
    uint8_t back[16];
    assert_int_equal(ua_base64_encode((const uint8_t *)"foob", 4, out), 8);
    assert_string_equal(out, "Zm9vYg==");
    assert_int_equal(ua_base64_encode((const uint8_t *)"foo", 3, out), 4);
    assert_string_equal(out, "Zm9v");
    assert_int_equal(ua_base64_decode("Zm9vYg==", 8, back, sizeof back), 4);
    assert_memory_equal(back, "foob", 4);
    assert_int_equal(ua_base64_decode("Zm9vYg==", 8, back, 3), -1);
    assert_int_equal(ua_base64_decode("Zm=v", 4, back, sizeof back), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(good_forms),
        cmocka_unit_test(refusals),
        cmocka_unit_test(namespace_uris),
        cmocka_unit_test(base64),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
