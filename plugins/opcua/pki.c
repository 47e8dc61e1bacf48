/* OPC UA plugin: the application instance certificate (made at first use: RSA 2048, SHA-256,
 * subjectAltName URI:<ApplicationUri> and DNS:<host>, the key usages OPC 10000-6 §6.2.2 asks)
 * and the trust check of a server certificate against trusted/, with the refused one copied to
 * rejected/. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/sha.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "pki.h"

static int mkdirs(const char *dir)
{
    static const char *const sub[] = {"",         "/own",     "/own/certs", "/own/private",
                                      "/trusted", "/issuers", "/rejected"};
    char p[4096];
    for (size_t i = 0; i < sizeof sub / sizeof sub[0]; i++) {
        snprintf(p, sizeof p, "%s%s", dir, sub[i]);
        if (mkdir(p, i == 3 ? 0700 : 0755) != 0 && errno != EEXIST)
            return -1;
    }
    return 0;
}

static int add_ext(X509 *x, int nid, const char *value)
{
    X509V3_CTX ctx;
    X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
    X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
    int ok = e && X509_add_ext(x, e, -1) == 1;
    X509_EXTENSION_free(e);
    return ok ? 0 : -1;
}

static X509 *make_cert(EVP_PKEY *key, const char *app_uri)
{
    char host[256] = "localhost", san[1024];
    gethostname(host, sizeof host - 1);
    X509 *x = X509_new();
    uint8_t serial[16];
    int ok = x != NULL;
    if (ok) {
        X509_set_version(x, 2);
        BIGNUM *bn = BN_new();
        ok = bn && RAND_bytes(serial, sizeof serial) == 1 && (serial[0] &= 0x7f, 1) &&
             BN_bin2bn(serial, sizeof serial, bn) &&
             BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x));
        BN_free(bn);
    }
    X509_NAME *name = ok ? X509_get_subject_name(x) : NULL;
    ok = ok &&
         X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *)"ironbridge",
                                    -1, -1, 0) &&
         X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8, (const unsigned char *)"ironbridge",
                                    -1, -1, 0) &&
         X509_set_issuer_name(x, name) && X509_gmtime_adj(X509_getm_notBefore(x), -3600) &&
         X509_gmtime_adj(X509_getm_notAfter(x), 10L * 365 * 24 * 3600) && X509_set_pubkey(x, key);
    snprintf(san, sizeof san, "URI:%s,DNS:%s", app_uri, host);
    ok =
        ok && add_ext(x, NID_basic_constraints, "critical,CA:FALSE") == 0 &&
        add_ext(x, NID_key_usage,
                "critical,digitalSignature,nonRepudiation,keyEncipherment,dataEncipherment") == 0 &&
        add_ext(x, NID_ext_key_usage, "serverAuth,clientAuth") == 0 &&
        add_ext(x, NID_subject_alt_name, san) == 0 &&
        add_ext(x, NID_subject_key_identifier, "hash") == 0 && X509_sign(x, key, EVP_sha256()) > 0;
    if (!ok) {
        X509_free(x);
        return NULL;
    }
    return x;
}

static int write_file(const char *path, const uint8_t *p, size_t n, mode_t mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    if (fd < 0)
        return -1;
    ssize_t w = write(fd, p, n);
    int rc = (w == (ssize_t)n && fsync(fd) == 0) ? 0 : -1;
    close(fd);
    return rc;
}

static int create_own(const char *cert_path, const char *key_path, const char *app_uri)
{
    EVP_PKEY *key = EVP_RSA_gen(2048);
    X509 *x = key ? make_cert(key, app_uri) : NULL;
    uint8_t *der = NULL;
    int len = x ? i2d_X509(x, &der) : -1;
    int rc = -1;
    int fd = len > 0 ? open(key_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600) : -1;
    FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
    if (f && PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL) == 1 && fflush(f) == 0)
        rc = write_file(cert_path, der, (size_t)len, 0644);
    if (f)
        fclose(f);
    else if (fd >= 0)
        close(fd);
    OPENSSL_free(der);
    X509_free(x);
    EVP_PKEY_free(key);
    return rc;
}

static uint8_t *read_all(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    uint8_t *buf = NULL;
    if (fseek(f, 0, SEEK_END) == 0) {
        long size = ftell(f);
        if (size > 0 && size < (1 << 20) && fseek(f, 0, SEEK_SET) == 0) {
            buf = OPENSSL_malloc((size_t)size);
            if (buf && fread(buf, 1, (size_t)size, f) != (size_t)size) {
                OPENSSL_free(buf);
                buf = NULL;
            }
            *n = (size_t)size;
        }
    }
    fclose(f);
    return buf;
}

int ua_pki_own(const char *dir, const char *app_uri, EVP_PKEY **key, uint8_t **der, size_t *der_len,
               char *err, size_t err_size)
{
    char cert_path[4096], key_path[4096];
    if (mkdirs(dir) != 0) {
        snprintf(err, err_size, "cannot create the PKI directory %s: %s", dir, strerror(errno));
        return -1;
    }
    snprintf(cert_path, sizeof cert_path, "%s/own/certs/ironbridge.der", dir);
    snprintf(key_path, sizeof key_path, "%s/own/private/ironbridge.pem", dir);
    struct stat st;
    if (stat(key_path, &st) != 0 && create_own(cert_path, key_path, app_uri) != 0) {
        snprintf(err, err_size, "cannot create the application certificate in %s/own", dir);
        return -1;
    }
    if (stat(key_path, &st) != 0 || (st.st_mode & 077)) {
        snprintf(err, err_size,
                 "%s is readable by group or others: chmod 600 it (and keep it owned by the "
                 "user ironbridge runs as)",
                 key_path);
        return -1;
    }
    FILE *f = fopen(key_path, "r");
    *key = f ? PEM_read_PrivateKey(f, NULL, NULL, NULL) : NULL;
    if (f)
        fclose(f);
    *der = read_all(cert_path, der_len);
    if (!*key || !*der) {
        EVP_PKEY_free(*key);
        OPENSSL_free(*der);
        snprintf(err, err_size, "cannot read the application certificate %s and key %s", cert_path,
                 key_path);
        return -1;
    }
    return 0;
}

/* The DER of a certificate file written as DER or PEM (OPENSSL_free), or NULL. */
static uint8_t *cert_der(const char *path, size_t *n)
{
    uint8_t *raw = read_all(path, n);
    if (!raw || *n < 11 || memcmp(raw, "-----BEGIN", 10) != 0)
        return raw;
    BIO *bio = BIO_new_mem_buf(raw, (int)*n);
    X509 *x = bio ? PEM_read_bio_X509(bio, NULL, NULL, NULL) : NULL;
    BIO_free(bio);
    OPENSSL_free(raw);
    uint8_t *der = NULL;
    int len = x ? i2d_X509(x, &der) : -1;
    X509_free(x);
    *n = len > 0 ? (size_t)len : 0;
    return len > 0 ? der : NULL;
}

int ua_pki_trusted(const char *dir, const uint8_t *der, size_t len)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/trusted", dir);
    DIR *d = opendir(path);
    if (!d)
        return 0;
    int found = 0;
    struct dirent *e;
    while (!found && (e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char p[4096 + 256];
        size_t n = 0;
        snprintf(p, sizeof p, "%s/%s", path, e->d_name);
        uint8_t *c = cert_der(p, &n);
        found = c && n == len && memcmp(c, der, len) == 0;
        OPENSSL_free(c);
    }
    closedir(d);
    return found;
}

int ua_pki_check(const char *dir, const uint8_t *der, size_t len, char *rejected,
                 size_t rejected_size)
{
    if (ua_pki_trusted(dir, der, len))
        return 0;
    uint8_t sha[20];
    char hex[41], cn[128] = "server";
    SHA1(der, len, sha);
    for (int i = 0; i < 20; i++)
        snprintf(hex + 2 * i, 3, "%02x", sha[i]);
    const unsigned char *p = der;
    X509 *x = d2i_X509(NULL, &p, (long)len);
    if (x) {
        X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, cn, sizeof cn);
        X509_free(x);
    }
    for (char *c = cn; *c; c++)
        if (*c == '/' || *c == ' ' || (unsigned char)*c < 0x20)
            *c = '_';
    snprintf(rejected, rejected_size, "%s/rejected/%s [%s].der", dir, cn, hex);
    mkdirs(dir);
    write_file(rejected, der, len, 0644);
    return -1;
}

/* The private key file must be private: not readable by group or others. */
static int key_private(const char *path, char *err, size_t err_size)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        snprintf(err, err_size, "cannot read the private key %s: %s", path, strerror(errno));
        return -1;
    }
    if (st.st_mode & 077) {
        snprintf(err, err_size,
                 "%s is readable by group or others: chmod 600 it (and keep it owned by the "
                 "user ironbridge runs as)",
                 path);
        return -1;
    }
    return 0;
}

int ua_pki_load(const char *cert_path, const char *key_path, EVP_PKEY **key, uint8_t **der,
                size_t *der_len, char *err, size_t err_size)
{
    *key = NULL;
    *der = NULL;
    if (key_private(key_path, err, err_size) != 0)
        return -1;
    FILE *f = fopen(key_path, "r");
    *key = f ? PEM_read_PrivateKey(f, NULL, NULL, NULL) : NULL;
    if (f)
        fclose(f);
    if (!*key) {
        snprintf(err, err_size, "cannot read the private key %s (an unencrypted PEM key)",
                 key_path);
        return -1;
    }
    *der = cert_der(cert_path, der_len);
    const unsigned char *p = *der;
    X509 *x = *der ? d2i_X509(NULL, &p, (long)*der_len) : NULL;
    int ok = x && X509_check_private_key(x, *key) == 1;
    X509_free(x);
    if (!ok) {
        snprintf(err, err_size,
                 *der ? "the certificate %s does not go with the private key %s"
                      : "cannot read the certificate %s (DER or PEM)",
                 cert_path, key_path);
        EVP_PKEY_free(*key);
        OPENSSL_free(*der);
        *key = NULL;
        *der = NULL;
        return -1;
    }
    return 0;
}
