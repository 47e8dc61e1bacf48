/* OPC UA plugin: the checks of a server certificate before a secured channel is opened
 * (OPC 10000-4 §6.1.3): its validity period, its key usage, the endpoint URL's host and the
 * server's ApplicationUri in its subjectAltName, then trust: the very certificate in trusted/,
 * or a chain to a CA in trusted/ through the CA certificates in issuers/, each CA's CRL from
 * trusted/crl/ or issuers/crl/ consulted. Each refusal says what the admin should do. */
#include <dirent.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "pki.h"

enum {
    BAD_CERT_INVALID = 0x80120000u,
    BAD_CERT_TIME_INVALID = 0x80140000u,
    BAD_CERT_ISSUER_TIME_INVALID = 0x80150000u,
    BAD_CERT_HOST_INVALID = 0x80160000u,
    BAD_CERT_URI_INVALID = 0x80170000u,
    BAD_CERT_USE_NOT_ALLOWED = 0x80180000u,
    BAD_CERT_UNTRUSTED = 0x801A0000u,
    BAD_CERT_REVOCATION_UNKNOWN = 0x801B0000u,
    BAD_CERT_REVOKED = 0x801D0000u,
};

static void when(const ASN1_TIME *t, char *buf, size_t size)
{
    struct tm tm;
    if (ASN1_TIME_to_tm(t, &tm) == 1)
        strftime(buf, size, "%Y-%m-%d %H:%M:%S UTC", &tm);
    else
        snprintf(buf, size, "(unreadable date)");
}

static uint32_t check_dates(X509 *x, char *err, size_t size)
{
    char d[64];
    if (X509_cmp_current_time(X509_get0_notBefore(x)) >= 0) {
        when(X509_get0_notBefore(x), d, sizeof d);
        snprintf(err, size,
                 "the server's certificate is not valid before %s: check the clocks of the "
                 "server and of this machine (NTP)",
                 d);
        return BAD_CERT_TIME_INVALID;
    }
    if (X509_cmp_current_time(X509_get0_notAfter(x)) <= 0) {
        when(X509_get0_notAfter(x), d, sizeof d);
        snprintf(err, size,
                 "the server's certificate expired on %s: renew it on the server, then trust "
                 "the new one (it lands in rejected/ at the next connect)",
                 d);
        return BAD_CERT_TIME_INVALID;
    }
    return 0;
}

static uint32_t check_key_usage(X509 *x, char *err, size_t size)
{
    uint32_t ku = X509_get_key_usage(x); /* UINT32_MAX when the extension is absent */
    if ((ku & KU_DIGITAL_SIGNATURE) && (ku & (KU_KEY_ENCIPHERMENT | KU_DATA_ENCIPHERMENT)))
        return 0;
    snprintf(err, size,
             "the server's certificate may not be used for signing and encryption (its keyUsage "
             "lacks digitalSignature or keyEncipherment): the server needs an application "
             "instance certificate with the key usages OPC 10000-6 §6.2.2 lists");
    return BAD_CERT_USE_NOT_ALLOWED;
}

/* The subjectAltName entries as text ("DNS:a, IP:1.2.3.4, URI:u"); *uri: its first URI. */
static void san_text(X509 *x, char *buf, size_t size, char *uri, size_t uri_size)
{
    GENERAL_NAMES *names = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
    size_t n = 0;
    buf[0] = uri[0] = '\0';
    for (int i = 0; names && i < sk_GENERAL_NAME_num(names) && n + 1 < size; i++) {
        const GENERAL_NAME *g = sk_GENERAL_NAME_value(names, i);
        char v[256] = "";
        const char *kind = NULL;
        if (g->type == GEN_DNS || g->type == GEN_URI) {
            const ASN1_IA5STRING *s =
                g->type == GEN_DNS ? g->d.dNSName : g->d.uniformResourceIdentifier;
            snprintf(v, sizeof v, "%.*s", s->length, (const char *)s->data);
            kind = g->type == GEN_DNS ? "DNS" : "URI";
            if (g->type == GEN_URI && !uri[0])
                snprintf(uri, uri_size, "%.*s", s->length, (const char *)s->data);
        } else if (g->type == GEN_IPADD &&
                   (g->d.iPAddress->length == 4 || g->d.iPAddress->length == 16)) {
            inet_ntop(g->d.iPAddress->length == 4 ? AF_INET : AF_INET6, g->d.iPAddress->data, v,
                      sizeof v);
            kind = "IP";
        }
        if (kind)
            n += (size_t)snprintf(buf + n, size - n, "%s%s:%s", n ? ", " : "", kind, v);
    }
    GENERAL_NAMES_free(names);
}

static uint32_t check_names(X509 *x, const struct ua_pki_expect *e, char *err, size_t size)
{
    char san[1024], uri[512];
    san_text(x, san, sizeof san, uri, sizeof uri);
    if (e->host && e->host[0]) {
        unsigned char ip[16];
        bool is_ip = inet_pton(AF_INET, e->host, ip) == 1 || inet_pton(AF_INET6, e->host, ip) == 1;
        int ok = is_ip ? X509_check_ip_asc(x, e->host, 0) : X509_check_host(x, e->host, 0, 0, NULL);
        if (ok != 1) {
            snprintf(err, size,
                     "the server's certificate does not name the endpoint's host '%s' in its "
                     "subjectAltName (it names %s): write a host name or address it names in "
                     "endpoint, or give the server a certificate that names '%s'",
                     e->host, san[0] ? san : "nothing", e->host);
            return BAD_CERT_HOST_INVALID;
        }
    }
    if (e->app_uri && e->app_uri[0] && strcmp(e->app_uri, uri) != 0) {
        snprintf(err, size,
                 "the server's ApplicationUri '%s' is not the URI in its certificate's "
                 "subjectAltName ('%s'): the server's configuration is inconsistent; fix it on "
                 "the server (make its certificate again with its ApplicationUri)",
                 e->app_uri, uri);
        return BAD_CERT_URI_INVALID;
    }
    return 0;
}

/* Every certificate (as_crl false) or CRL in dir (DER or PEM), added to the store or stack. */
static void load_dir(const char *dir, bool as_crl, X509_STORE *store, STACK_OF(X509) * untrusted)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL) {
        char p[4096 + 256];
        if (e->d_name[0] == '.')
            continue;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        BIO *bio = BIO_new_file(p, "rb");
        if (!bio)
            continue;
        if (as_crl) {
            X509_CRL *c = PEM_read_bio_X509_CRL(bio, NULL, NULL, NULL);
            if (!c && BIO_reset(bio) == 0)
                c = d2i_X509_CRL_bio(bio, NULL);
            if (c)
                X509_STORE_add_crl(store, c);
            X509_CRL_free(c);
        } else {
            X509 *x = PEM_read_bio_X509(bio, NULL, NULL, NULL);
            if (!x && BIO_reset(bio) == 0)
                x = d2i_X509_bio(bio, NULL);
            if (x && untrusted)
                sk_X509_push(untrusted, x);
            else if (x) {
                X509_STORE_add_cert(store, x);
                X509_free(x);
            }
        }
        BIO_free(bio);
    }
    if (d)
        closedir(d);
    ERR_clear_error();
}

static uint32_t chain_error(const char *dir, int e, X509_STORE_CTX *ctx, char *err, size_t size)
{
    char subj[256] = "?";
    X509 *at = X509_STORE_CTX_get_current_cert(ctx);
    if (at)
        X509_NAME_oneline(X509_get_subject_name(at), subj, sizeof subj);
    switch (e) {
    case X509_V_ERR_CERT_REVOKED:
        snprintf(err, size,
                 "the certificate %s is revoked by its CA's CRL: the server needs a new "
                 "certificate",
                 subj);
        return BAD_CERT_REVOKED;
    case X509_V_ERR_UNABLE_TO_GET_CRL:
        snprintf(err, size,
                 "no CRL of the CA that issued %s: put that CA's CRL (PEM or DER) into "
                 "%s/issuers/crl/ (or trusted/crl/); OPC UA checks every CA's revocation list",
                 subj, dir);
        return BAD_CERT_REVOCATION_UNKNOWN;
    case X509_V_ERR_CRL_HAS_EXPIRED:
    case X509_V_ERR_CRL_NOT_YET_VALID:
        snprintf(err, size,
                 "the CRL for %s is out of date: put the CA's current CRL into %s/issuers/crl/",
                 subj, dir);
        return BAD_CERT_REVOCATION_UNKNOWN;
    case X509_V_ERR_CERT_HAS_EXPIRED:
    case X509_V_ERR_CERT_NOT_YET_VALID:
        snprintf(err, size, "the CA certificate %s is outside its validity period: renew it", subj);
        return BAD_CERT_ISSUER_TIME_INVALID;
    default:
        snprintf(err, size, "the server's certificate chain does not verify at %s: %s", subj,
                 X509_verify_cert_error_string(e));
        return BAD_CERT_INVALID;
    }
}

/* A chain from x to a certificate of trusted/ (a CA, or an intermediate: partial chains are
 * accepted) through issuers/, with every CA's CRL. 0 verified, 1 no trusted issuer (untrusted),
 * else the StatusCode with err set. */
static uint32_t check_chain(const char *dir, X509 *x, char *err, size_t size)
{
    char p[4096];
    X509_STORE *store = X509_STORE_new();
    STACK_OF(X509) *issuers = sk_X509_new_null();
    X509_STORE_CTX *ctx = X509_STORE_CTX_new();
    uint32_t rc = BAD_CERT_INVALID;
    snprintf(err, size, "out of memory checking the certificate chain");
    if (store && issuers && ctx) {
        static const char *const anchors[] = {"trusted", "trusted/certs"};
        static const char *const mids[] = {"issuers", "issuers/certs"};
        static const char *const crls[] = {"trusted/crl", "issuers/crl"};
        for (int i = 0; i < 2; i++) {
            snprintf(p, sizeof p, "%s/%s", dir, anchors[i]);
            load_dir(p, false, store, NULL);
            snprintf(p, sizeof p, "%s/%s", dir, mids[i]);
            load_dir(p, false, store, issuers);
            snprintf(p, sizeof p, "%s/%s", dir, crls[i]);
            load_dir(p, true, store, NULL);
        }
        X509_STORE_set_flags(store, X509_V_FLAG_CRL_CHECK | X509_V_FLAG_CRL_CHECK_ALL |
                                        X509_V_FLAG_PARTIAL_CHAIN);
        if (X509_STORE_CTX_init(ctx, store, x, issuers) == 1) {
            int ok = X509_verify_cert(ctx);
            int e = X509_STORE_CTX_get_error(ctx);
            if (ok == 1)
                rc = 0;
            else if (e == X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY ||
                     e == X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT ||
                     e == X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT ||
                     e == X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN ||
                     e == X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE)
                rc = 1;
            else
                rc = chain_error(dir, e, ctx, err, size);
        }
    }
    X509_STORE_CTX_free(ctx);
    sk_X509_pop_free(issuers, X509_free);
    X509_STORE_free(store);
    ERR_clear_error();
    return rc;
}

uint32_t ua_pki_verify(const char *dir, const uint8_t *der, size_t len,
                       const struct ua_pki_expect *e, char *err, size_t err_size)
{
    const unsigned char *p = der;
    X509 *x = d2i_X509(NULL, &p, (long)len);
    if (!x || p != der + len) {
        X509_free(x);
        snprintf(err, err_size, "the server sent no valid X.509 certificate");
        return BAD_CERT_INVALID;
    }
    uint32_t rc = check_dates(x, err, err_size);
    if (!rc)
        rc = check_key_usage(x, err, err_size);
    if (!rc)
        rc = check_names(x, e, err, err_size);
    if (!rc && !ua_pki_trusted(dir, der, len)) {
        rc = check_chain(dir, x, err, err_size);
        if (rc == 1) {
            char rejected[2048];
            ua_pki_check(dir, der, len, rejected, sizeof rejected);
            snprintf(err, err_size,
                     "the server's certificate is not trusted; it was copied to '%s': if it is "
                     "the right server, move that file to %s/trusted/ (or put its CA's "
                     "certificate there)",
                     rejected, dir);
            rc = BAD_CERT_UNTRUSTED;
        }
    }
    X509_free(x);
    return rc;
}

int ua_pki_cert_uri(const uint8_t *der, size_t len, char *uri, size_t size)
{
    const unsigned char *p = der;
    X509 *x = d2i_X509(NULL, &p, (long)len);
    char san[1024];
    uri[0] = '\0';
    if (x)
        san_text(x, san, sizeof san, uri, size);
    X509_free(x);
    return uri[0] ? 0 : -1;
}
