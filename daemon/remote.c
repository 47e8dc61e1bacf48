/* Signed envelopes (configuration documents and commands): parsing, Ed25519 verification and
 * signing through OpenSSL's EVP interface, and the atomic write of an accepted document into
 * conf.d. */
#include "remote.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#define FILE_HEADER "# ironbridge remote configuration, version "

static EVP_PKEY *read_key(const char *path, int private_key, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errlen, "cannot read the key %s: %s", path, strerror(errno));
        return NULL;
    }
    EVP_PKEY *k = private_key ? PEM_read_PrivateKey(f, NULL, NULL, NULL)
                              : PEM_read_PUBKEY(f, NULL, NULL, NULL);
    fclose(f);
    if (!k) {
        snprintf(err, errlen, "%s is not a PEM %s key", path, private_key ? "private" : "public");
        ERR_clear_error();
        return NULL;
    }
    if (EVP_PKEY_id(k) != EVP_PKEY_ED25519) {
        snprintf(err, errlen, "%s is not an Ed25519 key", path);
        EVP_PKEY_free(k);
        return NULL;
    }
    return k;
}

/* The bytes the signature covers. */
static int signed_bytes(const struct ib_signed_kind *k, uint64_t version, const char *body,
                        size_t len, struct ib_buf *out)
{
    ib_buf_reset(out);
    int rc = ib_buf_printf(out, "%s\nversion %llu\n\n", k->magic, (unsigned long long)version);
    return rc | ib_buf_append(out, body, len);
}

static const char *line_end(const char *p, const char *end)
{
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    return nl ? nl : end;
}

const struct ib_signed_kind ib_signed_config = {IB_REMOTE_MAGIC, "configuration", "--sign-config"};
const struct ib_signed_kind ib_signed_command = {IB_COMMAND_MAGIC, "command", "--sign-command"};

int ib_remote_verify(const char *msg, size_t len, const char *pubkey_path,
                     struct ib_signed_doc *out, char *err, size_t errlen)
{
    return ib_signed_verify(&ib_signed_config, msg, len, pubkey_path, out, err, errlen);
}

int ib_signed_verify(const struct ib_signed_kind *k, const char *msg, size_t len,
                     const char *pubkey_path, struct ib_signed_doc *out, char *err, size_t errlen)
{
    const char *end = msg + len, *p = msg, *e = line_end(p, end);
    if ((size_t)(e - p) != strlen(k->magic) || memcmp(p, k->magic, (size_t)(e - p))) {
        snprintf(err, errlen,
                 "not a signed %s: it must start with '%s' (make it with `ironbridge %s`)", k->noun,
                 k->magic, k->tool);
        return -1;
    }
    p = e + 1;
    e = p < end ? line_end(p, end) : end;
    char num[32] = "";
    if (p >= end || e - p < 9 || e - p > 30 || memcmp(p, "version ", 8) != 0) {
        snprintf(err, errlen, "malformed signed %s: no 'version N' line", k->noun);
        return -1;
    }
    memcpy(num, p + 8, (size_t)(e - p - 8));
    char *ne;
    errno = 0;
    unsigned long long v = strtoull(num, &ne, 10);
    if (errno || *ne || num[0] < '0' || num[0] > '9') {
        snprintf(err, errlen, "malformed signed %s: version '%s'", k->noun, num);
        return -1;
    }
    if (v == 0 || v > IB_REMOTE_MAX_VERSION) {
        snprintf(err, errlen,
                 "version %s is out of range: versions go from 1 to %llu (2^53); sign the "
                 "document again with a version in that range",
                 num, (unsigned long long)IB_REMOTE_MAX_VERSION);
        return -1;
    }
    p = e + 1;
    e = p < end ? line_end(p, end) : end;
    if (p >= end || e - p < 11 || memcmp(p, "signature ", 10) != 0) {
        snprintf(err, errlen, "unsigned %s: no 'signature' line", k->noun);
        return -1;
    }
    const char *sig64 = p + 10;
    size_t sig64_len = (size_t)(e - sig64);
    p = e + 1;
    if (p >= end || *p != '\n') {
        snprintf(err, errlen, "malformed signed %s: no empty line before the document", k->noun);
        return -1;
    }
    const char *body = p + 1;
    size_t body_len = (size_t)(end - body);
    unsigned char sig[96];
    if (sig64_len > 128) {
        snprintf(err, errlen, "malformed signature");
        return -1;
    }
    int n = EVP_DecodeBlock(sig, (const unsigned char *)sig64, (int)sig64_len);
    /* EVP_DecodeBlock counts base64 padding as bytes: an Ed25519 signature is 64. */
    if (n < 64) {
        snprintf(err, errlen, "malformed signature: not the base64 of an Ed25519 signature");
        return -1;
    }
    EVP_PKEY *key = read_key(pubkey_path, 0, err, errlen);
    if (!key)
        return -1;
    struct ib_buf b = {0};
    int rc = -1;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (ctx && signed_bytes(k, v, body, body_len, &b) == 0 &&
        EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, key) == 1) {
        if (EVP_DigestVerify(ctx, sig, 64, (const unsigned char *)b.p, b.len) == 1)
            rc = 0;
        else
            snprintf(err, errlen,
                     "the signature does not match: the document was altered or signed with "
                     "another key than %s",
                     pubkey_path);
    } else {
        snprintf(err, errlen, "cannot verify signatures (OpenSSL)");
    }
    ERR_clear_error();
    EVP_MD_CTX_free(ctx);
    EVP_PKEY_free(key);
    ib_buf_free(&b);
    if (rc == 0)
        *out = (struct ib_signed_doc){.version = v, .body = body, .body_len = body_len};
    return rc;
}

int ib_remote_sign(const char *body, size_t body_len, uint64_t version, const char *key_path,
                   struct ib_buf *out, char *err, size_t errlen)
{
    return ib_signed_sign(&ib_signed_config, body, body_len, version, key_path, out, err, errlen);
}

int ib_signed_sign(const struct ib_signed_kind *kind, const char *body, size_t body_len,
                   uint64_t version, const char *key_path, struct ib_buf *out, char *err,
                   size_t errlen)
{
    if (version == 0 || version > IB_REMOTE_MAX_VERSION) {
        snprintf(err, errlen, "the version must be between 1 and %llu (2^53)",
                 (unsigned long long)IB_REMOTE_MAX_VERSION);
        return -1;
    }
    EVP_PKEY *k = read_key(key_path, 1, err, errlen);
    if (!k)
        return -1;
    struct ib_buf b = {0};
    unsigned char sig[64];
    size_t siglen = sizeof sig;
    int rc = -1;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (ctx && signed_bytes(kind, version, body, body_len, &b) == 0 &&
        EVP_DigestSignInit(ctx, NULL, NULL, NULL, k) == 1 &&
        EVP_DigestSign(ctx, sig, &siglen, (const unsigned char *)b.p, b.len) == 1) {
        char sig64[128];
        EVP_EncodeBlock((unsigned char *)sig64, sig, (int)siglen);
        ib_buf_reset(out);
        rc = ib_buf_printf(out, "%s\nversion %llu\nsignature %s\n\n", kind->magic,
                           (unsigned long long)version, sig64);
        rc |= ib_buf_append(out, body, body_len);
    } else {
        snprintf(err, errlen, "cannot sign with %s (OpenSSL)", key_path);
    }
    ERR_clear_error();
    EVP_MD_CTX_free(ctx);
    EVP_PKEY_free(k);
    ib_buf_free(&b);
    return rc;
}

uint64_t ib_remote_text_version(const char *text)
{
    size_t hl = strlen(FILE_HEADER);
    if (!text || strncmp(text, FILE_HEADER, hl) != 0)
        return 0;
    const char *p = text + hl;
    if (*p < '0' || *p > '9')
        return 0;
    errno = 0;
    unsigned long long v = strtoull(p, NULL, 10);
    return errno || v > IB_REMOTE_MAX_VERSION ? 0 : v;
}

uint64_t ib_remote_file_version(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    char line[128] = "";
    if (!fgets(line, sizeof line, f))
        line[0] = '\0';
    fclose(f);
    return ib_remote_text_version(line);
}

int ib_remote_sign_file(const char *path, uint64_t version, const char *key_path, char *err,
                        size_t errlen)
{
    return ib_signed_sign_file(&ib_signed_config, path, version, key_path, err, errlen);
}

int ib_signed_sign_file(const struct ib_signed_kind *kind, const char *path, uint64_t version,
                        const char *key_path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
        return -1;
    }
    struct ib_buf body = {0}, out = {0};
    char chunk[8192];
    size_t n;
    int rc = 0;
    while (rc == 0 && (n = fread(chunk, 1, sizeof chunk, f)) > 0)
        if (ib_buf_append(&body, chunk, n) < 0 || body.len > IB_REMOTE_MAX_FILE)
            rc = -1;
    if (rc < 0 || ferror(f))
        snprintf(err, errlen, "cannot read %s (at most %d bytes)", path, IB_REMOTE_MAX_FILE);
    else
        rc = ib_signed_sign(kind, body.p ? body.p : "", body.len, version, key_path, &out, err,
                            errlen);
    if (!ferror(f) && rc == 0 && fwrite(out.p, 1, out.len, stdout) != out.len)
        rc = -1;
    fclose(f);
    ib_buf_free(&body);
    ib_buf_free(&out);
    return rc < 0 || ferror(stdout) ? -1 : 0;
}

int ib_remote_file_text(uint64_t version, const char *body, size_t len, struct ib_buf *out)
{
    ib_buf_reset(out);
    int rc = ib_buf_printf(out,
                           FILE_HEADER "%llu (signed; received over MQTT: do not edit, the "
                                       "next signed document replaces this file)\n",
                           (unsigned long long)version);
    return rc | ib_buf_append(out, body, len);
}

/* mkdir `dir` (0700) unless it exists, its parent too. */
static int make_dir(const char *dir)
{
    if (mkdir(dir, 0700) == 0 || errno == EEXIST)
        return 0;
    if (errno != ENOENT)
        return -1;
    char parent[4096];
    const char *slash = strrchr(dir, '/');
    if (!slash || slash == dir)
        return -1;
    snprintf(parent, sizeof parent, "%.*s", (int)(slash - dir), dir);
    if (mkdir(parent, 0700) < 0 && errno != EEXIST)
        return -1;
    return mkdir(dir, 0700) == 0 || errno == EEXIST ? 0 : -1;
}

static int write_all(int fd, const char *p, size_t len)
{
    while (len) {
        ssize_t w = write(fd, p, len);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        len -= (size_t)w;
    }
    return 0;
}

static int fsync_dir(const char *dir)
{
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        return -1;
    int rc = fsync(dfd);
    int e = errno;
    close(dfd);
    errno = e;
    return rc;
}

int ib_remote_write_file(const char *path, uint64_t version, const char *body, size_t len)
{
    struct ib_buf b = {0};
    if (ib_remote_file_text(version, body, len, &b) < 0) {
        ib_buf_free(&b);
        errno = ENOMEM;
        return -1;
    }
    int rc = ib_remote_write_text(path, b.p, b.len);
    int e = errno;
    ib_buf_free(&b);
    errno = e;
    return rc;
}

int ib_remote_write_text(const char *path, const char *text, size_t len)
{
    char tmp[8300], dir[4096];
    const char *slash = strrchr(path, '/');
    snprintf(dir, sizeof dir, "%.*s", slash ? (int)(slash - path) : 1, slash ? path : ".");
    snprintf(tmp, sizeof tmp, "%s/.%s.tmp", dir, slash ? slash + 1 : path);
    int rc = -1, e = 0;
    int fd = make_dir(dir) == 0 ? open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600) : -1;
    if (fd >= 0) {
        if (write_all(fd, text, len) == 0 && fsync(fd) == 0) {
            rc = close(fd);
            fd = -1;
            if (rc == 0 && (rc = rename(tmp, path)) == 0)
                rc = fsync_dir(dir); /* the rename is durable only now */
        }
        e = errno;
        if (fd >= 0)
            close(fd);
        if (rc < 0)
            unlink(tmp);
    } else {
        e = errno;
    }
    errno = e;
    return rc;
}
