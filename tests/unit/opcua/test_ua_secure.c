/* Unit tests of the security layer (plugins/opcua/secure.c, pki.c): P_SHA256 against the
 * published TLS 1.2 PRF vector, secured chunks wrapped and unwrapped (OpenSecureChannel with
 * RSA-OAEP and RSA-SHA256, messages with AES-CBC and HMAC-SHA256, Sign and SignAndEncrypt, all
 * three policies), every tampered byte and unknown token refused; Aes256_Sha256_RsaPss's
 * RSA-PSS signatures and RSA-OAEP-SHA256 blocks checked against OpenSSL set up independently,
 * its key lengths and its 66-byte OAEP overhead in the chunk arithmetic; the application
 * certificate made with the ApplicationUri in subjectAltName, its key refused when group-readable,
 * and a server certificate refused into rejected/ until it is moved to trusted/. */
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
#include <openssl/rsa.h>
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
    for (int p = UA_POLICY_BASIC256SHA256; p < UA_POLICY_COUNT; p++) {
        struct ua_sec s;
        make_sec(&s, p, UA_MODE_SIGN);
        round_trip(&s, "OPN", 40, true, 10, 0);
        round_trip(&s, "OPN", 40, true, 600, 0); /* several RSA blocks */
        free_sec(&s);
    }
}

static void policy_table(void **state)
{
    (void)state;
    assert_string_equal(ua_policy_uri(UA_POLICY_AES256_SHA256_RSAPSS),
                        "http://opcfoundation.org/UA/SecurityPolicy#Aes256_Sha256_RsaPss");
    assert_string_equal(ua_policy_sig_alg(UA_POLICY_AES256_SHA256_RSAPSS),
                        "http://opcfoundation.org/UA/security/rsa-pss-sha2-256");
    assert_string_equal(ua_policy_enc_alg(UA_POLICY_AES256_SHA256_RSAPSS),
                        "http://opcfoundation.org/UA/security/rsa-oaep-sha2-256");
    assert_string_equal(ua_policy_sig_alg(UA_POLICY_BASIC256SHA256),
                        "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256");
    assert_string_equal(ua_policy_enc_alg(UA_POLICY_AES128_SHA256_RSAOAEP),
                        "http://www.w3.org/2001/04/xmlenc#rsa-oaep");
    assert_string_equal(ua_policy_uri(UA_POLICY_COUNT),
                        "http://opcfoundation.org/UA/SecurityPolicy#None");
    /* OAEP plaintext per block: SHA-1 2 * 20 + 2, SHA-256 2 * 32 + 2 */
    assert_int_equal(ua_policy_oaep_block(UA_POLICY_BASIC256SHA256, 256), 214);
    assert_int_equal(ua_policy_oaep_block(UA_POLICY_AES128_SHA256_RSAOAEP, 512), 470);
    assert_int_equal(ua_policy_oaep_block(UA_POLICY_AES256_SHA256_RSAPSS, 256), 190);
    assert_int_equal(ua_policy_oaep_block(UA_POLICY_AES256_SHA256_RSAPSS, 512), 446);
    assert_int_equal(ua_policy_oaep_block(UA_POLICY_AES256_SHA256_RSAPSS, 60), 0);
}

/* OpenSSL set up by hand: RSA-PSS SHA-256, MGF1-SHA256, salt 32 */
static int pss_verify(EVP_PKEY *key, const uint8_t *d, size_t n, const uint8_t *sig, size_t len,
                      int salt)
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    EVP_PKEY_CTX *pctx = NULL;
    int ok = EVP_DigestVerifyInit(ctx, &pctx, EVP_sha256(), NULL, key) == 1 &&
             EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) == 1 &&
             EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, salt) == 1 &&
             EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, EVP_sha256()) == 1 &&
             EVP_DigestVerify(ctx, sig, len, d, n) == 1;
    EVP_MD_CTX_free(ctx);
    return ok ? 0 : -1;
}

static void pss_signatures(void **state)
{
    (void)state;
    struct ua_sec s, pkcs1;
    make_sec(&s, UA_POLICY_AES256_SHA256_RSAPSS, UA_MODE_SIGN);
    make_sec(&pkcs1, UA_POLICY_BASIC256SHA256, UA_MODE_SIGN);
    uint8_t nonce[UA_NONCE_LEN] = {9, 8, 7};
    uint8_t data[64];
    memcpy(data, "certificate.", 12);
    memcpy(data + 12, nonce, sizeof nonce);
    uint8_t *sig = NULL, *sig2 = NULL;
    size_t len = 0, len2 = 0;
    assert_int_equal(ua_sec_sign(&s, data, 12, nonce, sizeof nonce, &sig, &len), 0);
    assert_int_equal(len, 256);
    /* OpenSSL with PSS, salt 32, MGF1-SHA256 set by hand accepts it; another salt length not */
    assert_int_equal(pss_verify(s.peer_key, data, 12 + sizeof nonce, sig, len, 32), 0);
    assert_int_equal(pss_verify(s.peer_key, data, 12 + sizeof nonce, sig, len, 20), -1);
    assert_int_equal(ua_sec_verify(&s, data, 12, nonce, sizeof nonce, sig, len), 0);
    /* a PKCS#1 v1.5 verifier refuses it, and the PSS verifier a PKCS#1 v1.5 signature */
    assert_int_equal(ua_sec_verify(&pkcs1, data, 12, nonce, sizeof nonce, sig, len), -1);
    assert_int_equal(ua_sec_sign(&pkcs1, data, 12, nonce, sizeof nonce, &sig2, &len2), 0);
    assert_int_equal(ua_sec_verify(&s, data, 12, nonce, sizeof nonce, sig2, len2), -1);
    OPENSSL_free(sig2);
    /* PSS is randomised: a second signature differs and verifies too */
    assert_int_equal(ua_sec_sign(&s, data, 12, nonce, sizeof nonce, &sig2, &len2), 0);
    assert_true(len2 == len && memcmp(sig, sig2, len) != 0);
    assert_int_equal(ua_sec_verify(&s, data, 12, nonce, sizeof nonce, sig2, len2), 0);
    nonce[0] ^= 1;
    assert_int_equal(ua_sec_verify(&s, data, 12, nonce, sizeof nonce, sig, len), -1);
    OPENSSL_free(sig);
    OPENSSL_free(sig2);
    free_sec(&s);
    free_sec(&pkcs1);
}

/* OpenSSL set up by hand: RSA-OAEP with SHA-256 and MGF1-SHA256, one block */
static int oaep256_decrypt(EVP_PKEY *key, const uint8_t *in, size_t n, uint8_t *out,
                           size_t *out_len)
{
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new(key, NULL);
    int ok = EVP_PKEY_decrypt_init(ctx) == 1 &&
             EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_OAEP_PADDING) == 1 &&
             EVP_PKEY_CTX_set_rsa_oaep_md(ctx, EVP_sha256()) == 1 &&
             EVP_PKEY_CTX_set_rsa_mgf1_md(ctx, EVP_sha256()) == 1 &&
             EVP_PKEY_decrypt(ctx, out, out_len, in, n) == 1;
    EVP_PKEY_CTX_free(ctx);
    return ok ? 0 : -1;
}

static void oaep_sha256(void **state)
{
    (void)state;
    struct ua_sec s;
    make_sec(&s, UA_POLICY_AES256_SHA256_RSAPSS, UA_MODE_SIGN_AND_ENCRYPT);
    uint8_t plain[400], *ct = NULL, out[256];
    for (size_t i = 0; i < sizeof plain; i++)
        plain[i] = (uint8_t)(i * 7 + 1);
    /* 190 bytes fill one block of a 2048-bit key, 191 need two */
    size_t ct_len = 0, len = sizeof out;
    assert_int_equal(
        ua_sec_rsa_encrypt(&s, UA_POLICY_AES256_SHA256_RSAPSS, plain, 190, &ct, &ct_len), 0);
    assert_int_equal(ct_len, 256);
    assert_int_equal(oaep256_decrypt(s.own_key, ct, ct_len, out, &len), 0);
    assert_int_equal(len, 190);
    assert_memory_equal(out, plain, 190);
    /* the SHA-1 policies cannot decrypt it */
    len = ct_len;
    assert_int_equal(ua_sec_rsa_decrypt(&s, UA_POLICY_BASIC256SHA256, ct, &len), -1);
    OPENSSL_free(ct);
    assert_int_equal(
        ua_sec_rsa_encrypt(&s, UA_POLICY_AES256_SHA256_RSAPSS, plain, 191, &ct, &ct_len), 0);
    assert_int_equal(ct_len, 512);
    OPENSSL_free(ct);
    /* several blocks, round trip */
    assert_int_equal(
        ua_sec_rsa_encrypt(&s, UA_POLICY_AES256_SHA256_RSAPSS, plain, sizeof plain, &ct, &ct_len),
        0);
    assert_int_equal(ct_len, 3 * 256);
    len = ct_len;
    assert_int_equal(ua_sec_rsa_decrypt(&s, UA_POLICY_AES256_SHA256_RSAPSS, ct, &len), 0);
    assert_int_equal(len, sizeof plain);
    assert_memory_equal(ct, plain, sizeof plain);
    OPENSSL_free(ct);
    /* a SHA-1 block (Basic256Sha256's 214 bytes) fits one block there */
    assert_int_equal(ua_sec_rsa_encrypt(&s, UA_POLICY_BASIC256SHA256, plain, 214, &ct, &ct_len), 0);
    assert_int_equal(ct_len, 256);
    OPENSSL_free(ct);
    free_sec(&s);
}

/* The largest body ua_sec_body_room allows for an OPN chunk of 8192 bytes fits one after
 * wrapping, and one byte more would not (the padding fills the last RSA block). */
static void asymmetric_room(void **state)
{
    (void)state;
    for (int p = UA_POLICY_BASIC256SHA256; p < UA_POLICY_COUNT; p++) {
        struct ua_sec s;
        make_sec(&s, p, UA_MODE_SIGN_AND_ENCRYPT);
        size_t sh = 40, pb = ua_policy_oaep_block(p, 256);
        size_t room = ua_sec_body_room(&s, 8192, 8 + sh, true);
        /* (8192 - 48) / 256 = 31 blocks of plaintext, less sequence header, padding byte and
         * the 256-byte signature */
        assert_int_equal(room, 31 * pb - 8 - 1 - 256);
        struct ua_buf b = {0};
        plain_chunk(&b, "OPN", sh, room);
        assert_int_equal(ua_sec_wrap(&s, &b, 0, sh, true), 0);
        assert_int_equal(b.len, 8 + sh + 31 * 256);
        assert_true(b.len <= 8192);
        ua_buf_free(&b);
        plain_chunk(&b, "OPN", sh, room + 1);
        assert_int_equal(ua_sec_wrap(&s, &b, 0, sh, true), 0);
        assert_int_equal(b.len, 8 + sh + 32 * 256);
        ua_buf_free(&b);
        free_sec(&s);
    }
}

/* The client and server keys are P_SHA256(secret, seed) cut into signing key 32, encryption key
 * 32 (16 for Aes128_Sha256_RsaOaep) and IV 16 bytes (OPC 10000-6 §6.7.5). */
static void key_lengths(void **state)
{
    (void)state;
    static const struct {
        int policy;
        size_t enc;
    } cases[] = {{UA_POLICY_BASIC256SHA256, 32},
                 {UA_POLICY_AES128_SHA256_RSAOAEP, 16},
                 {UA_POLICY_AES256_SHA256_RSAPSS, 32}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct ua_sec s;
        make_sec(&s, cases[i].policy, UA_MODE_SIGN_AND_ENCRYPT);
        uint8_t server_nonce[UA_NONCE_LEN], m[80];
        memset(server_nonce, 0x33, sizeof server_nonce);
        memset(s.client_nonce, 0xcc, sizeof s.client_nonce);
        assert_int_equal(ua_sec_derive(&s, server_nonce, UA_NONCE_LEN, 1), 0);
        /* client keys: secret the server nonce, seed the client nonce */
        size_t ek = cases[i].enc;
        assert_int_equal(ua_psha256(server_nonce, 32, s.client_nonce, 32, m, 32 + ek + 16), 0);
        assert_memory_equal(s.tx.sign, m, 32);
        assert_memory_equal(s.tx.enc, m + 32, ek);
        assert_memory_equal(s.tx.iv, m + 32 + ek, 16);
        assert_int_equal(ua_psha256(s.client_nonce, 32, server_nonce, 32, m, 32 + ek + 16), 0);
        assert_memory_equal(s.rx.sign, m, 32);
        assert_memory_equal(s.rx.enc, m + 32, ek);
        assert_memory_equal(s.rx.iv, m + 32 + ek, 16);
        free_sec(&s);
    }
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
    static const int policies[] = {UA_POLICY_BASIC256SHA256, UA_POLICY_AES128_SHA256_RSAOAEP,
                                   UA_POLICY_AES256_SHA256_RSAPSS};
    static const int modes[] = {UA_MODE_SIGN, UA_MODE_SIGN_AND_ENCRYPT};
    for (int p = 0; p < 3; p++)
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
        cmocka_unit_test(p_sha256),     cmocka_unit_test(asymmetric),
        cmocka_unit_test(policy_table), cmocka_unit_test(pss_signatures),
        cmocka_unit_test(oaep_sha256),  cmocka_unit_test(asymmetric_room),
        cmocka_unit_test(key_lengths),  cmocka_unit_test(signatures),
        cmocka_unit_test(symmetric),    cmocka_unit_test(certificate),
        cmocka_unit_test(trust),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        rc = rc ? rc : 1;
    return rc;
}
