/* Unit tests of the security layer (plugins/opcua/secure.c, pki.c): P_SHA256 against the
 * published TLS 1.2 PRF vector, secured chunks wrapped and unwrapped (OpenSecureChannel with
 * RSA-OAEP and RSA-SHA256, messages with AES-CBC and HMAC-SHA256, Sign and SignAndEncrypt, both
 * policies), every tampered byte and unknown token refused; the application certificate made
 * with the ApplicationUri in subjectAltName, its key refused when group-readable, and a server
 * certificate refused into rejected/ until it is moved to trusted/. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/crypto.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "pki.h"
#include "secure.h"

static char dir[] = "/tmp/ib-test-ua-secure-XXXXXX";

static void p_sha256(void **state)
{
    (void)state;
    /* TLS 1.2 PRF (P_SHA256) test vector: secret, "test label" || seed, 100 bytes */
    static const uint8_t secret[] = {0x9b, 0xbe, 0x43, 0x6b, 0xa9, 0x40, 0xf0, 0x17,
                                     0xb1, 0x76, 0x52, 0x84, 0x9a, 0x71, 0xdb, 0x35};
    uint8_t seed[26] = "test label";
    static const uint8_t s2[] = {0xa0, 0xba, 0x9f, 0x93, 0x6c, 0xda, 0x31, 0x18,
                                 0x27, 0xa6, 0xf7, 0x96, 0xff, 0xd5, 0x19, 0x8c};
    memcpy(seed + 10, s2, 16);
    static const uint8_t want_head[] = {0xe3, 0xf2, 0x29, 0xba, 0x72, 0x7b, 0xe1, 0x7b};
    static const uint8_t want_tail[] = {0xff, 0xf7, 0x01, 0x87, 0x34, 0x7b, 0x66};
    uint8_t out[100];
    assert_int_equal(ua_psha256(secret, sizeof secret, seed, sizeof seed, out, sizeof out), 0);
    assert_memory_equal(out, want_head, sizeof want_head);
    assert_memory_equal(out + 93, want_tail, sizeof want_tail);
}

/* A ua_sec whose own and peer key are the same (made by ua_pki_own), so that what it wraps it
 * can unwrap. */
static void make_sec(struct ua_sec *s, int policy, int mode)
{
    memset(s, 0, sizeof *s);
    s->policy = policy;
    s->mode = mode;
    char err[256];
    assert_int_equal(ua_pki_own(dir, "urn:test:ironbridge", &s->own_key, &s->own_cert,
                                &s->own_cert_len, err, sizeof err),
                     0);
    assert_int_equal(ua_sec_set_peer(s, s->own_cert, s->own_cert_len), 0);
}

static void free_sec(struct ua_sec *s)
{
    ua_sec_clear(s);
    EVP_PKEY_free(s->own_key);
    OPENSSL_free(s->own_cert);
}

/* A plain chunk: header, channel id, security header of sh - 4 bytes, sequence header, body. */
static size_t plain_chunk(struct ua_buf *b, const char *type, size_t sh, size_t body)
{
    ua_put_bytes(b, type, 3);
    ua_put_u8(b, 'F');
    ua_put_u32(b, 0);
    ua_put_u32(b, 7);
    for (size_t i = 4; i < sh; i++)
        ua_put_u8(b, (uint8_t)i);
    ua_put_u32(b, 1);
    ua_put_u32(b, 2);
    for (size_t i = 0; i < body; i++)
        ua_put_u8(b, (uint8_t)(i * 13));
    return b->len;
}

static void round_trip(struct ua_sec *s, const char *type, size_t sh, bool asym, size_t body,
                       uint32_t token)
{
    struct ua_buf b = {0};
    size_t plain_len = plain_chunk(&b, type, sh, body);
    uint8_t *plain = malloc(plain_len);
    memcpy(plain, b.data, plain_len);
    assert_int_equal(ua_sec_wrap(s, &b, 0, sh, asym), 0);
    uint32_t size = b.data[4] | b.data[5] << 8 | b.data[6] << 16 | (uint32_t)b.data[7] << 24;
    assert_int_equal(size, b.len);
    bool encrypted = asym || s->mode == UA_MODE_SIGN_AND_ENCRYPT;
    if (encrypted) /* the body does not travel in the clear */
        assert_true(memcmp(b.data + 8 + sh, plain + 8 + sh, 16) != 0);
    char err[160];
    /* every single flipped byte after the header is refused */
    for (size_t i = 8 + sh; i < b.len; i += (b.len - 8 - sh) / 7 + 1) {
        uint8_t *copy = malloc(b.len);
        memcpy(copy, b.data, b.len);
        copy[i] ^= 0x01;
        size_t len = b.len;
        assert_int_equal(ua_sec_unwrap(s, copy, &len, sh, asym, token, err, sizeof err), -1);
        free(copy);
    }
    size_t len = b.len;
    assert_int_equal(ua_sec_unwrap(s, b.data, &len, sh, asym, token, err, sizeof err), 0);
    assert_int_equal(len, plain_len);
    assert_memory_equal(b.data + 8, plain + 8, plain_len - 8);
    free(plain);
    ua_buf_free(&b);
}

static void asymmetric(void **state)
{
    (void)state;
    struct ua_sec s;
    make_sec(&s, UA_POLICY_BASIC256SHA256, UA_MODE_SIGN);
    round_trip(&s, "OPN", 40, true, 10, 0);
    round_trip(&s, "OPN", 40, true, 600, 0); /* several RSA blocks */
    free_sec(&s);
}

static void signatures(void **state)
{
    (void)state;
    struct ua_sec s;
    make_sec(&s, UA_POLICY_BASIC256SHA256, UA_MODE_SIGN);
    uint8_t nonce[UA_NONCE_LEN] = {1, 2, 3};
    uint8_t *sig = NULL;
    size_t len = 0;
    assert_int_equal(ua_sec_sign(&s, s.own_cert, s.own_cert_len, nonce, sizeof nonce, &sig, &len),
                     0);
    assert_int_equal(len, 256);
    assert_int_equal(ua_sec_verify(&s, s.own_cert, s.own_cert_len, nonce, sizeof nonce, sig, len),
                     0);
    nonce[0] ^= 1;
    assert_int_equal(ua_sec_verify(&s, s.own_cert, s.own_cert_len, nonce, sizeof nonce, sig, len),
                     -1);
    OPENSSL_free(sig);
    free_sec(&s);
}

static void symmetric(void **state)
{
    (void)state;
    static const int policies[] = {UA_POLICY_BASIC256SHA256, UA_POLICY_AES128_SHA256_RSAOAEP};
    static const int modes[] = {UA_MODE_SIGN, UA_MODE_SIGN_AND_ENCRYPT};
    for (int p = 0; p < 2; p++)
        for (int m = 0; m < 2; m++) {
            struct ua_sec s;
            make_sec(&s, policies[p], modes[m]);
            uint8_t server_nonce[UA_NONCE_LEN];
            memset(server_nonce, 0x5a, sizeof server_nonce);
            memset(s.client_nonce, 0xa5, sizeof s.client_nonce);
            assert_int_equal(ua_sec_derive(&s, server_nonce, UA_NONCE_LEN, 3), 0);
            assert_true(memcmp(s.tx.sign, s.rx.sign, 32) != 0); /* two directions, two keys */
            s.rx = s.tx;                                        /* receive what we send */
            for (size_t body = 0; body < 40; body += 13)
                round_trip(&s, "MSG", 8, false, body, 3);
            /* an unknown token */
            struct ua_buf b = {0};
            plain_chunk(&b, "MSG", 8, 5);
            assert_int_equal(ua_sec_wrap(&s, &b, 0, 8, false), 0);
            size_t len = b.len;
            char err[160];
            assert_int_equal(ua_sec_unwrap(&s, b.data, &len, 8, false, 4, err, sizeof err), -1);
            ua_buf_free(&b);
            free_sec(&s);
        }
}

static void certificate(void **state)
{
    (void)state;
    struct ua_sec s;
    make_sec(&s, UA_POLICY_BASIC256SHA256, UA_MODE_SIGN);
    const unsigned char *p = s.own_cert;
    X509 *x = d2i_X509(NULL, &p, (long)s.own_cert_len);
    assert_non_null(x);
    GENERAL_NAMES *names = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
    assert_non_null(names);
    int found = 0;
    for (int i = 0; i < sk_GENERAL_NAME_num(names); i++) {
        GENERAL_NAME *g = sk_GENERAL_NAME_value(names, i);
        if (g->type == GEN_URI &&
            strcmp((const char *)ASN1_STRING_get0_data(g->d.uniformResourceIdentifier),
                   "urn:test:ironbridge") == 0)
            found = 1;
    }
    GENERAL_NAMES_free(names);
    assert_int_equal(EVP_PKEY_get_bits(s.own_key), 2048);
    X509_free(x);
    free_sec(&s);

    /* a group-readable key is refused, with what to do */
    char key[512], err[512];
    snprintf(key, sizeof key, "%s/own/private/ironbridge.pem", dir);
    assert_int_equal(chmod(key, 0640), 0);
    EVP_PKEY *k = NULL;
    uint8_t *der = NULL;
    size_t len = 0;
    assert_int_equal(ua_pki_own(dir, "urn:x", &k, &der, &len, err, sizeof err), -1);
    assert_non_null(strstr(err, "chmod 600"));
    assert_int_equal(chmod(key, 0600), 0);
    assert_true(found);
}

static void trust(void **state)
{
    (void)state;
    struct ua_sec s;
    make_sec(&s, UA_POLICY_BASIC256SHA256, UA_MODE_SIGN);
    char rejected[4096], trusted[4096];
    assert_int_equal(ua_pki_check(dir, s.own_cert, s.own_cert_len, rejected, sizeof rejected), -1);
    assert_non_null(strstr(rejected, "/rejected/ironbridge ["));
    assert_int_equal(access(rejected, R_OK), 0);
    snprintf(trusted, sizeof trusted, "%s/trusted/server.der", dir);
    assert_int_equal(rename(rejected, trusted), 0);
    assert_int_equal(ua_pki_check(dir, s.own_cert, s.own_cert_len, rejected, sizeof rejected), 0);
    free_sec(&s);
}

int main(void)
{
    if (!mkdtemp(dir))
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(p_sha256),  cmocka_unit_test(asymmetric),  cmocka_unit_test(signatures),
        cmocka_unit_test(symmetric), cmocka_unit_test(certificate), cmocka_unit_test(trust),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        rc = rc ? rc : 1;
    return rc;
}
