/* OPC UA plugin: the cryptography of the Basic256Sha256, Aes128_Sha256_RsaOaep and
 * Aes256_Sha256_RsaPss security policies (OPC 10000-7) on OpenSSL EVP, and the padding, signing and
 * encryption of secured chunks and their reverse (OPC 10000-6 §6.7.2, §6.7.5). Every length of a
 * received chunk is checked before the bytes are touched. */
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rsa.h>
#include <openssl/sha.h>
#include <openssl/x509.h>

#include "secure.h"

#define SIG_PKCS1 "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
#define ENC_OAEP  "http://www.w3.org/2001/04/xmlenc#rsa-oaep"

/* What sets the policies apart; rsa_pss: PSS signatures and OAEP with SHA-256 */
static const struct policy {
    const char *uri, *sig_alg, *enc_alg;
    size_t enc_key; /* AES key bytes */
    bool rsa_pss;
} policies[UA_POLICY_COUNT] = {
    [UA_POLICY_NONE] = {"http://opcfoundation.org/UA/SecurityPolicy#None", "", "", 0, false},
    [UA_POLICY_BASIC256SHA256] = {"http://opcfoundation.org/UA/SecurityPolicy#Basic256Sha256",
                                  SIG_PKCS1, ENC_OAEP, 32, false},
    [UA_POLICY_AES128_SHA256_RSAOAEP] =
        {"http://opcfoundation.org/UA/SecurityPolicy#Aes128_Sha256_RsaOaep", SIG_PKCS1, ENC_OAEP,
         16, false},
    [UA_POLICY_AES256_SHA256_RSAPSS] =
        {"http://opcfoundation.org/UA/SecurityPolicy#Aes256_Sha256_RsaPss",
         "http://opcfoundation.org/UA/security/rsa-pss-sha2-256",
         "http://opcfoundation.org/UA/security/rsa-oaep-sha2-256", 32, true},
};

static const struct policy *policy_of(int policy)
{
    return &policies[policy > 0 && policy < UA_POLICY_COUNT ? policy : UA_POLICY_NONE];
}

const char *ua_policy_uri(int policy)
{
    return policy_of(policy)->uri;
}

const char *ua_policy_sig_alg(int policy)
{
    return policy_of(policy)->sig_alg;
}

const char *ua_policy_enc_alg(int policy)
{
    return policy_of(policy)->enc_alg;
}

size_t ua_policy_oaep_block(int policy, size_t key_bytes)
{
    size_t overhead = policy_of(policy)->rsa_pss ? 2 * 32 + 2 : 2 * 20 + 2;
    return key_bytes > overhead ? key_bytes - overhead : 0;
}

void ua_sec_clear(struct ua_sec *s)
{
    EVP_PKEY_free(s->peer_key);
    OPENSSL_free(s->peer_cert);
    s->peer_key = NULL;
    s->peer_cert = NULL;
    s->peer_cert_len = 0;
    OPENSSL_cleanse(&s->tx, sizeof s->tx);
    OPENSSL_cleanse(&s->rx, sizeof s->rx);
    OPENSSL_cleanse(&s->rx_prev, sizeof s->rx_prev);
}

int ua_psha256(const uint8_t *secret, size_t slen, const uint8_t *seed, size_t seedlen,
               uint8_t *out, size_t n)
{
    uint8_t a[32], buf[32 + 64];
    unsigned int len = 0;
    if (seedlen > 64)
        return -1;
    /* A(1) = HMAC(secret, seed); out += HMAC(secret, A(i) || seed); A(i+1) = HMAC(secret, A(i)) */
    if (!HMAC(EVP_sha256(), secret, (int)slen, seed, seedlen, a, &len))
        return -1;
    for (size_t off = 0; off < n;) {
        memcpy(buf, a, 32);
        memcpy(buf + 32, seed, seedlen);
        uint8_t h[32];
        if (!HMAC(EVP_sha256(), secret, (int)slen, buf, 32 + seedlen, h, &len))
            return -1;
        size_t take = n - off < 32 ? n - off : 32;
        memcpy(out + off, h, take);
        off += take;
        if (!HMAC(EVP_sha256(), secret, (int)slen, a, 32, a, &len))
            return -1;
    }
    return 0;
}

static size_t enc_key_len(const struct ua_sec *s)
{
    return policy_of(s->policy)->enc_key == 16 ? 16 : 32;
}

static int derive(const uint8_t *secret, const uint8_t *seed, size_t n, size_t ek,
                  struct ua_keyset *k)
{
    uint8_t m[32 + 32 + 16];
    if (ua_psha256(secret, n, seed, n, m, 32 + ek + 16) != 0)
        return -1;
    memcpy(k->sign, m, 32);
    memcpy(k->enc, m + 32, ek);
    memcpy(k->iv, m + 32 + ek, 16);
    OPENSSL_cleanse(m, sizeof m);
    return 0;
}

int ua_sec_derive(struct ua_sec *s, const uint8_t *server_nonce, size_t n, uint32_t token)
{
    if (n != UA_NONCE_LEN)
        return -1;
    s->rx_prev = s->rx;
    s->rx_prev_token = s->rx_token;
    if (derive(server_nonce, s->client_nonce, n, enc_key_len(s), &s->tx) != 0 ||
        derive(s->client_nonce, server_nonce, n, enc_key_len(s), &s->rx) != 0)
        return -1;
    s->rx_token = token;
    return 0;
}

int ua_sec_set_peer(struct ua_sec *s, const uint8_t *der, size_t len)
{
    const unsigned char *p = der;
    X509 *x = d2i_X509(NULL, &p, (long)len);
    if (!x || p != der + len) {
        X509_free(x);
        return -1;
    }
    EVP_PKEY *k = X509_get_pubkey(x);
    X509_free(x);
    if (!k || EVP_PKEY_get_base_id(k) != EVP_PKEY_RSA || EVP_PKEY_get_bits(k) < 2048 ||
        EVP_PKEY_get_bits(k) > 4096) {
        EVP_PKEY_free(k);
        return -1;
    }
    EVP_PKEY_free(s->peer_key);
    OPENSSL_free(s->peer_cert);
    s->peer_key = k;
    s->peer_cert = OPENSSL_memdup(der, len);
    s->peer_cert_len = len;
    SHA1(der, len, s->peer_thumb);
    return s->peer_cert ? 0 : -1;
}

/* RSA-PSS as OPC 10000-7 asks: MGF1 with SHA-256, a salt as long as the hash (32) */
static bool sig_padding(EVP_PKEY_CTX *pctx, int policy)
{
    return !policy_of(policy)->rsa_pss ||
           (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) == 1 &&
            EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, 32) == 1 &&
            EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, EVP_sha256()) == 1);
}

int ua_sec_sign(struct ua_sec *s, const uint8_t *d1, size_t n1, const uint8_t *d2, size_t n2,
                uint8_t **sig, size_t *sig_len)
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    EVP_PKEY_CTX *pctx = NULL;
    size_t len = (size_t)EVP_PKEY_get_size(s->own_key);
    uint8_t *out = OPENSSL_malloc(len);
    int ok = ctx && out && EVP_DigestSignInit(ctx, &pctx, EVP_sha256(), NULL, s->own_key) == 1 &&
             sig_padding(pctx, s->policy) && EVP_DigestSignUpdate(ctx, d1, n1) == 1 &&
             (n2 == 0 || EVP_DigestSignUpdate(ctx, d2, n2) == 1) &&
             EVP_DigestSignFinal(ctx, out, &len) == 1;
    EVP_MD_CTX_free(ctx);
    if (!ok) {
        OPENSSL_free(out);
        return -1;
    }
    *sig = out;
    *sig_len = len;
    return 0;
}

int ua_sec_verify(struct ua_sec *s, const uint8_t *d1, size_t n1, const uint8_t *d2, size_t n2,
                  const uint8_t *sig, size_t sig_len)
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    EVP_PKEY_CTX *pctx = NULL;
    int ok = ctx && s->peer_key &&
             EVP_DigestVerifyInit(ctx, &pctx, EVP_sha256(), NULL, s->peer_key) == 1 &&
             sig_padding(pctx, s->policy) && EVP_DigestVerifyUpdate(ctx, d1, n1) == 1 &&
             (n2 == 0 || EVP_DigestVerifyUpdate(ctx, d2, n2) == 1) &&
             EVP_DigestVerifyFinal(ctx, sig, sig_len) == 1;
    EVP_MD_CTX_free(ctx);
    return ok ? 0 : -1;
}

/* RSA-OAEP one block (SHA-1, or SHA-256 with MGF1-SHA256 for RsaPss); enc selects encrypt
 * (peer key) or decrypt (own key). */
static int rsa_block(EVP_PKEY *key, int policy, bool enc, const uint8_t *in, size_t n, uint8_t *out,
                     size_t *out_len)
{
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new(key, NULL);
    bool sha256 = policy_of(policy)->rsa_pss;
    int ok = ctx && (enc ? EVP_PKEY_encrypt_init(ctx) : EVP_PKEY_decrypt_init(ctx)) == 1 &&
             EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_OAEP_PADDING) == 1 &&
             (!sha256 || (EVP_PKEY_CTX_set_rsa_oaep_md(ctx, EVP_sha256()) == 1 &&
                          EVP_PKEY_CTX_set_rsa_mgf1_md(ctx, EVP_sha256()) == 1)) &&
             (enc ? EVP_PKEY_encrypt(ctx, out, out_len, in, n)
                  : EVP_PKEY_decrypt(ctx, out, out_len, in, n)) == 1;
    EVP_PKEY_CTX_free(ctx);
    return ok ? 0 : -1;
}

int ua_sec_rsa_encrypt(const struct ua_sec *s, int policy, const uint8_t *in, size_t n,
                       uint8_t **out, size_t *out_len)
{
    if (!s->peer_key)
        return -1;
    size_t cb = (size_t)EVP_PKEY_get_size(s->peer_key), pb = ua_policy_oaep_block(policy, cb);
    size_t blocks = n ? (n + pb - 1) / pb : 1;
    uint8_t *o = pb ? OPENSSL_malloc(blocks * cb) : NULL;
    if (!o)
        return -1;
    for (size_t i = 0; i < blocks; i++) {
        size_t part = n - i * pb < pb ? n - i * pb : pb, len = cb;
        if (rsa_block(s->peer_key, policy, true, in + i * pb, part, o + i * cb, &len) != 0 ||
            len != cb) {
            OPENSSL_free(o);
            return -1;
        }
    }
    *out = o;
    *out_len = blocks * cb;
    return 0;
}

static int aes(const struct ua_sec *s, const struct ua_keyset *k, bool enc, uint8_t *p, size_t n)
{
    const EVP_CIPHER *c = enc_key_len(s) == 16 ? EVP_aes_128_cbc() : EVP_aes_256_cbc();
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    int l1 = 0, l2 = 0;
    int ok = ctx && EVP_CipherInit_ex(ctx, c, NULL, k->enc, k->iv, enc ? 1 : 0) == 1 &&
             EVP_CIPHER_CTX_set_padding(ctx, 0) == 1 &&
             EVP_CipherUpdate(ctx, p, &l1, p, (int)n) == 1 &&
             EVP_CipherFinal_ex(ctx, p + l1, &l2) == 1 && (size_t)(l1 + l2) == n;
    EVP_CIPHER_CTX_free(ctx);
    return ok ? 0 : -1;
}

static void put_size(uint8_t *hdr, size_t v)
{
    for (int i = 0; i < 4; i++)
        hdr[4 + i] = (uint8_t)(v >> (8 * i));
}

size_t ua_sec_body_room(const struct ua_sec *s, uint32_t chunk_size, size_t head, bool asym)
{
    bool encrypt = asym || s->mode == UA_MODE_SIGN_AND_ENCRYPT;
    size_t sig = asym ? (size_t)EVP_PKEY_get_size(s->own_key) : 32;
    if (!encrypt)
        return chunk_size > head + 8 + sig ? chunk_size - head - 8 - sig : 0;
    size_t cb = asym ? (size_t)EVP_PKEY_get_size(s->peer_key) : 16;
    size_t pb = asym ? ua_policy_oaep_block(s->policy, cb) : 16;
    size_t extra = asym && cb > 256 ? 1 : 0;
    if (chunk_size <= head)
        return 0;
    size_t blocks = (chunk_size - head) / cb;
    size_t plain = blocks * pb; /* seq + body + padding + signature */
    return plain > 8 + 1 + extra + sig ? plain - 8 - 1 - extra - sig : 0;
}

int ua_sec_wrap(struct ua_sec *s, struct ua_buf *b, size_t start, size_t sec_hdr_len, bool asym)
{
    size_t enc_at = start + 8 + sec_hdr_len;
    bool encrypt = asym || s->mode == UA_MODE_SIGN_AND_ENCRYPT;
    size_t sig_len = asym ? (size_t)EVP_PKEY_get_size(s->own_key) : 32;
    size_t cb = asym ? (size_t)EVP_PKEY_get_size(s->peer_key) : 16;
    size_t pb = asym ? ua_policy_oaep_block(s->policy, cb) : 16;
    if (encrypt && pb == 0)
        return -1;
    if (encrypt) {
        bool extra = asym && cb > 256;
        size_t total = b->len - enc_at + 1 + (extra ? 1 : 0) + sig_len;
        size_t pad = (pb - total % pb) % pb;
        for (size_t i = 0; i <= pad; i++)
            ua_put_u8(b, (uint8_t)pad);
        if (extra)
            ua_put_u8(b, (uint8_t)(pad >> 8));
    }
    if (b->err != UA_OK)
        return -1;
    size_t plain_len = b->len - enc_at + sig_len;
    size_t size = b->len - start + sig_len;
    if (encrypt && asym)
        size = 8 + sec_hdr_len + plain_len / pb * cb;
    put_size(b->data + start, size);
    if (asym) {
        uint8_t *sig;
        size_t n;
        if (ua_sec_sign(s, b->data + start, b->len - start, NULL, 0, &sig, &n) != 0)
            return -1;
        ua_put_bytes(b, sig, n);
        OPENSSL_free(sig);
    } else {
        uint8_t mac[32];
        unsigned int n = 0;
        if (!HMAC(EVP_sha256(), s->tx.sign, 32, b->data + start, b->len - start, mac, &n))
            return -1;
        ua_put_bytes(b, mac, sizeof mac);
    }
    if (b->err != UA_OK)
        return -1;
    if (!encrypt)
        return 0;
    if (!asym)
        return aes(s, &s->tx, true, b->data + enc_at, b->len - enc_at);
    uint8_t *ct;
    size_t ct_len;
    if (ua_sec_rsa_encrypt(s, s->policy, b->data + enc_at, b->len - enc_at, &ct, &ct_len) != 0)
        return -1;
    b->len = enc_at;
    ua_put_bytes(b, ct, ct_len);
    OPENSSL_free(ct);
    return b->err == UA_OK ? 0 : -1;
}

static int fail(char *err, size_t size, const char *msg)
{
    snprintf(err, size, "%s", msg);
    return -1;
}

int ua_sec_rsa_decrypt(const struct ua_sec *s, int policy, uint8_t *p, size_t *n)
{
    size_t cb = (size_t)EVP_PKEY_get_size(s->own_key);
    if (*n == 0 || *n % cb != 0)
        return -1;
    uint8_t *tmp = OPENSSL_malloc(cb);
    size_t out = 0;
    int rc = tmp ? 0 : -1;
    for (size_t i = 0; rc == 0 && i < *n; i += cb) {
        size_t len = cb;
        rc = rsa_block(s->own_key, policy, false, p + i, cb, tmp, &len);
        if (rc == 0) { /* out <= i: the plaintext never overtakes what is still to decrypt */
            memmove(p + out, tmp, len);
            out += len;
        }
    }
    OPENSSL_free(tmp);
    *n = out;
    return rc;
}

int ua_sec_unwrap(struct ua_sec *s, uint8_t *chunk, size_t *len, size_t sec_hdr_len, bool asym,
                  uint32_t token, char *err, size_t err_size)
{
    size_t enc_at = 8 + sec_hdr_len;
    bool encrypt = asym || s->mode == UA_MODE_SIGN_AND_ENCRYPT;
    const struct ua_keyset *k = token == s->rx_token                            ? &s->rx
                                : token == s->rx_prev_token && s->rx_prev_token ? &s->rx_prev
                                                                                : NULL;
    if (!asym && !k)
        return fail(err, err_size, "a message with an unknown security token");
    if (*len < enc_at)
        return fail(err, err_size, "a secured chunk shorter than its headers");
    size_t n = *len - enc_at;
    if (encrypt && asym) {
        if (ua_sec_rsa_decrypt(s, s->policy, chunk + enc_at, &n) != 0)
            return fail(err, err_size,
                        "cannot decrypt the OpenSecureChannel response with our "
                        "key");
    } else if (encrypt) {
        if (n % 16 != 0 || aes(s, k, false, chunk + enc_at, n) != 0)
            return fail(err, err_size, "cannot decrypt a message");
    }
    size_t sig_len = asym ? (size_t)EVP_PKEY_get_size(s->peer_key) : 32;
    if (n < 8 + sig_len + (encrypt ? 1 : 0))
        return fail(err, err_size, "a secured chunk too short for its signature");
    size_t signed_len = enc_at + n - sig_len;
    const uint8_t *sig = chunk + signed_len;
    if (asym) {
        if (ua_sec_verify(s, chunk, signed_len, NULL, 0, sig, sig_len) != 0)
            return fail(err, err_size, "the server's signature does not verify");
    } else {
        uint8_t mac[32];
        unsigned int ml = 0;
        if (!HMAC(EVP_sha256(), k->sign, 32, chunk, signed_len, mac, &ml) ||
            CRYPTO_memcmp(mac, sig, 32) != 0)
            return fail(err, err_size, "a message's signature does not verify");
    }
    size_t pad_total = 0;
    if (encrypt) {
        bool extra = asym && EVP_PKEY_get_size(s->own_key) > 256;
        size_t pad = chunk[signed_len - 1];
        if (extra)
            pad = pad << 8 | chunk[signed_len - 2];
        pad_total = pad + 1 + (extra ? 1 : 0);
        if (pad_total > n - sig_len - 8)
            return fail(err, err_size, "a secured chunk with invalid padding");
    }
    *len = signed_len - pad_total;
    put_size(chunk, *len);
    return 0;
}
