/* OPC UA plugin: security policies Basic256Sha256, Aes128_Sha256_RsaOaep and
 * Aes256_Sha256_RsaPss (OPC 10000-7) on OpenSSL EVP (secure.c): P_SHA256 key derivation, RSA-OAEP
 * (SHA-1, or SHA-256 for RsaPss) and RSA SHA-256 signatures (PKCS#1 v1.5, or PSS for RsaPss) for
 * the asymmetric OpenSecureChannel, HMAC-SHA256 and AES-CBC for the symmetric messages, and the
 * padding and framing of secured chunks (OPC 10000-6 §6.7.2). One poller thread per struct
 * ua_sec. */
#ifndef IB_OPCUA_SECURE_H
#define IB_OPCUA_SECURE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "ua.h"

enum ua_policy {
    UA_POLICY_NONE = 0,
    UA_POLICY_BASIC256SHA256,
    UA_POLICY_AES128_SHA256_RSAOAEP,
    UA_POLICY_AES256_SHA256_RSAPSS,
    UA_POLICY_COUNT
};
enum ua_mode { UA_MODE_NONE = 1, UA_MODE_SIGN = 2, UA_MODE_SIGN_AND_ENCRYPT = 3 };

#define UA_NONCE_LEN 32

/* The policy's URI; "...#None" for UA_POLICY_NONE and unknown values. */
const char *ua_policy_uri(int policy);
/* The URIs of the policy's asymmetric signature (ClientSignature, ServerSignature,
 * UserTokenSignature) and asymmetric encryption (an encrypted password) algorithms. */
const char *ua_policy_sig_alg(int policy);
const char *ua_policy_enc_alg(int policy);
/* The plaintext bytes of one RSA-OAEP block of a key of key_bytes under the policy: key_bytes
 * less 42 (OAEP with SHA-1: 2 * 20 + 2) or 66 (with SHA-256: 2 * 32 + 2). */
size_t ua_policy_oaep_block(int policy, size_t key_bytes);

struct ua_keyset {
    uint8_t sign[32], enc[32], iv[16];
};

struct ua_sec {
    int policy;        /* enum ua_policy */
    int mode;          /* enum ua_mode */
    EVP_PKEY *own_key; /* ours (owned) */
    uint8_t *own_cert; /* DER (owned) */
    size_t own_cert_len;
    EVP_PKEY *peer_key; /* from the server certificate (owned) */
    uint8_t *peer_cert; /* DER (owned) */
    size_t peer_cert_len;
    uint8_t peer_thumb[20];
    uint8_t client_nonce[UA_NONCE_LEN];
    struct ua_keyset tx, rx, rx_prev; /* tx: client keys; rx: server keys of rx_token */
    uint32_t rx_token, rx_prev_token;
};

/* Frees keys and certificates; the struct may be reused. */
void ua_sec_clear(struct ua_sec *s);

/* P_SHA256(secret, seed) (RFC 5246 §5) into out[0 .. n-1]. 0 or -1. */
int ua_psha256(const uint8_t *secret, size_t slen, const uint8_t *seed, size_t seedlen,
               uint8_t *out, size_t n);
/* Derives the client (tx) and server (rx) keys of a new token from both nonces. */
int ua_sec_derive(struct ua_sec *s, const uint8_t *server_nonce, size_t n, uint32_t token);

/* Sets the server's certificate (DER), its public key and thumbprint. 0 or -1. */
int ua_sec_set_peer(struct ua_sec *s, const uint8_t *der, size_t len);

/* The policy's RSA SHA-256 signature (PKCS#1 v1.5, or PSS with a 32-byte salt and MGF1-SHA256)
 * with our key of data1 || data2 into a new buffer (*sig, *sig_len; OPENSSL_free()). 0 or -1. */
int ua_sec_sign(struct ua_sec *s, const uint8_t *d1, size_t n1, const uint8_t *d2, size_t n2,
                uint8_t **sig, size_t *sig_len);
/* Verifies the policy's RSA SHA-256 signature of d1 || d2 with the server's key. 0 or -1. */
int ua_sec_verify(struct ua_sec *s, const uint8_t *d1, size_t n1, const uint8_t *d2, size_t n2,
                  const uint8_t *sig, size_t sig_len);
/* RSA-OAEP encryption as `policy` asks (SHA-1, or SHA-256 for Aes256_Sha256_RsaPss; the
 * channel's policy, or a user token's) with the server's key, block by block, into `out` (a new
 * buffer; OPENSSL_free()). 0 or -1. */
int ua_sec_rsa_encrypt(const struct ua_sec *s, int policy, const uint8_t *in, size_t n,
                       uint8_t **out, size_t *out_len);
/* The reverse with our key (whole blocks only), in place: *n becomes the plaintext's length.
 * 0 or -1. */
int ua_sec_rsa_decrypt(const struct ua_sec *s, int policy, uint8_t *p, size_t *n);

/* Secures one chunk in place: `b` holds a plain chunk (header, security header of `sec_hdr_len`
 * bytes after the 8-byte header, sequence header, body) and is padded, signed and encrypted as
 * the mode and the chunk type need; the size in the header is rewritten. 0 or -1. */
int ua_sec_wrap(struct ua_sec *s, struct ua_buf *b, size_t start, size_t sec_hdr_len, bool asym);
/* The reverse for a received chunk: decrypts and verifies chunk[0 .. *len-1] in place and
 * drops padding and signature, rewriting the header's size and *len. Returns 0, or -1 with a
 * reason in err. */
int ua_sec_unwrap(struct ua_sec *s, uint8_t *chunk, size_t *len, size_t sec_hdr_len, bool asym,
                  uint32_t token, char *err, size_t err_size);

/* The largest body per chunk of `chunk_size` bytes. */
size_t ua_sec_body_room(const struct ua_sec *s, uint32_t chunk_size, size_t head, bool asym);

#endif
