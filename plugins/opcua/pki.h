/* OPC UA plugin: the PKI directory (pki.c) in the layout OPC UA tools share: own/ (our
 * certificate own/certs/ironbridge.der and key own/private/ironbridge.pem, made at first use
 * with the ApplicationUri in subjectAltName), trusted/ (server certificates we trust), issuers/,
 * rejected/ (what we refused, for an admin to move to trusted/). One poller thread. */
#ifndef IB_OPCUA_PKI_H
#define IB_OPCUA_PKI_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

/* Loads our certificate and key from dir/own, making both (RSA 2048, SHA-256, 10 years) when
 * absent. *der (OPENSSL_free) and *key (EVP_PKEY_free) on success. 0, or -1 with err set. A key
 * file readable by group or others is refused. */
int ua_pki_own(const char *dir, const char *app_uri, EVP_PKEY **key, uint8_t **der, size_t *der_len,
               char *err, size_t err_size);

/* Loads a configured certificate (DER or PEM) and its private key (PEM, refused when readable
 * by group or others; it must go with the certificate), as ua_pki_own. Also used for the X.509
 * user identity. 0, or -1 with err set. */
int ua_pki_load(const char *cert_path, const char *key_path, EVP_PKEY **key, uint8_t **der,
                size_t *der_len, char *err, size_t err_size);

/* 0 when the server certificate `der` is in dir/trusted (as DER or PEM); otherwise copies it to
 * dir/rejected/<name> [<sha1>].der, writes that path to `rejected` and returns -1. */
int ua_pki_check(const char *dir, const uint8_t *der, size_t len, char *rejected,
                 size_t rejected_size);

/* The first URI in the subjectAltName of certificate `der` into uri. 0, or -1 when none. */
int ua_pki_cert_uri(const uint8_t *der, size_t len, char *uri, size_t size);

/* 1 when the very certificate `der` is in dir/trusted (as DER or PEM), else 0. */
int ua_pki_trusted(const char *dir, const uint8_t *der, size_t len);

/* What a server certificate must name besides being valid (pki_verify.c). */
struct ua_pki_expect {
    const char *host;    /* the endpoint URL's host (DNS name or IP address); NULL: unchecked */
    const char *app_uri; /* the server's ApplicationUri (GetEndpoints); NULL or "": unchecked */
};

/* Checks the server certificate `der`: validity dates, key usage (digitalSignature and
 * keyEncipherment), host and ApplicationUri in subjectAltName, then trust (in trusted/, or a
 * chain to a CA in trusted/ through issuers/, with the CAs' CRLs from trusted/crl and
 * issuers/crl). 0 when accepted; else the StatusCode of the refusal (BadCertificate...) with
 * what the admin should do in err; an untrusted one is copied to rejected/ (as
 * ua_pki_check). */
uint32_t ua_pki_verify(const char *dir, const uint8_t *der, size_t len,
                       const struct ua_pki_expect *e, char *err, size_t err_size);

#endif
