/* Diagnostic TLS handshake: the same trust settings as the north (only the configured CA, host
 * name verified, TLS >= 1.2), with OpenSSL's own verification result turned into a sentence. */
#include "tlscheck.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

static int connect_to(const char *host, int port, int timeout_ms, char *out, size_t len)
{
    char ps[8];
    snprintf(ps, sizeof ps, "%d", port);
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL;
    int rc = getaddrinfo(host, ps, &hints, &res);
    if (rc != 0) {
        snprintf(out, len, "cannot resolve %s: %s", host, gai_strerror(rc));
        return -1;
    }
    int fd = -1;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
            continue;
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
            break;
        if (errno == EINPROGRESS) {
            struct pollfd p = {.fd = fd, .events = POLLOUT};
            int err = 0;
            socklen_t el = sizeof err;
            if (poll(&p, 1, timeout_ms) == 1 &&
                getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) == 0 && err == 0)
                break;
            errno = err ? err : ETIMEDOUT;
        }
        snprintf(out, len, "cannot connect to %s port %d: %s", host, port, strerror(errno));
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd >= 0) {
        int fl = fcntl(fd, F_GETFL);
        fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
        struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    }
    return fd;
}

/* The DNS and IP names a certificate is valid for, for the message. */
static void cert_names(X509 *cert, char *out, size_t len)
{
    size_t off = 0;
    out[0] = '\0';
    GENERAL_NAMES *names = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
    for (int i = 0; names && i < sk_GENERAL_NAME_num(names) && off < len; i++) {
        const GENERAL_NAME *n = sk_GENERAL_NAME_value(names, i);
        if (n->type == GEN_DNS) {
            const unsigned char *s = ASN1_STRING_get0_data(n->d.dNSName);
            off += (size_t)snprintf(out + off, len - off, "%s%.*s", off ? ", " : "",
                                    ASN1_STRING_length(n->d.dNSName), s);
        } else if (n->type == GEN_IPADD && ASN1_STRING_length(n->d.iPAddress) == 4) {
            const unsigned char *a = ASN1_STRING_get0_data(n->d.iPAddress);
            off += (size_t)snprintf(out + off, len - off, "%sIP %u.%u.%u.%u", off ? ", " : "", a[0],
                                    a[1], a[2], a[3]);
        }
    }
    GENERAL_NAMES_free(names);
    if (!off) {
        char cn[200];
        if (X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, cn, sizeof cn) >
            0)
            snprintf(out, len, "CN %s (no subjectAltName)", cn);
        else
            snprintf(out, len, "no names");
    }
}

/* The handshake is aborted on a verification failure before the peer certificate is kept, so
 * the names of the leaf certificate are copied while OpenSSL verifies it. */
static int keep_leaf_names(int preverify, X509_STORE_CTX *xs)
{
    SSL *ssl = X509_STORE_CTX_get_ex_data(xs, SSL_get_ex_data_X509_STORE_CTX_idx());
    char *names = ssl ? SSL_get_app_data(ssl) : NULL;
    X509 *cert = X509_STORE_CTX_get_current_cert(xs);
    if (names && cert && X509_STORE_CTX_get_error_depth(xs) == 0 && !names[0])
        cert_names(cert, names, 256);
    return preverify;
}

int ib_tlscheck_diagnose(const struct ib_mqtt_cfg *cfg, int timeout_ms, char *out, size_t len)
{
    char names[256] = "";
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    SSL *ssl = NULL;
    int fd = -1, result = -1;
    if (!ctx) {
        snprintf(out, len, "OpenSSL cannot create a TLS context");
        return -1;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    if (SSL_CTX_load_verify_locations(ctx, cfg->ca, cfg->ca_path) != 1) {
        snprintf(out, len, "cannot load the CA from %s: %s", cfg->ca ? cfg->ca : cfg->ca_path,
                 ERR_reason_error_string(ERR_get_error()));
        goto done;
    }
    if (cfg->cert && (SSL_CTX_use_certificate_chain_file(ctx, cfg->cert) != 1 ||
                      SSL_CTX_use_PrivateKey_file(ctx, cfg->key, SSL_FILETYPE_PEM) != 1 ||
                      SSL_CTX_check_private_key(ctx) != 1)) {
        snprintf(out, len, "the client certificate %s or key %s cannot be used: %s", cfg->cert,
                 cfg->key, ERR_reason_error_string(ERR_get_error()));
        goto done;
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, keep_leaf_names);
    fd = connect_to(cfg->host, cfg->port, timeout_ms, out, len);
    if (fd < 0)
        goto done;
    ssl = SSL_new(ctx);
    if (!ssl)
        goto done;
    SSL_set_app_data(ssl, names);
    SSL_set_fd(ssl, fd);
    SSL_set_tlsext_host_name(ssl, cfg->host);
    SSL_set1_host(ssl, cfg->host);
    ERR_clear_error();
    if (SSL_connect(ssl) == 1) {
        /* With TLS 1.3 a broker that wants a client certificate says so only after the
         * handshake, with an alert: wait briefly for it. */
        struct timeval tv = {1, 0};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        char byte;
        ERR_clear_error();
        if (SSL_read(ssl, &byte, 1) <= 0 && ERR_peek_last_error()) {
            const char *reason = ERR_reason_error_string(ERR_peek_last_error());
            snprintf(out, len, "the broker ended the TLS session: %s%s",
                     reason ? reason : "unknown reason",
                     cfg->cert ? ""
                               : " (the broker probably requires a client certificate: set "
                                 "tls.cert and tls.key)");
            goto done;
        }
        snprintf(out, len, "a TLS %s handshake with %s:%d and the certificate check succeed",
                 SSL_get_version(ssl), cfg->host, cfg->port);
        result = 0;
        goto done;
    }
    long v = SSL_get_verify_result(ssl);
    if (v == X509_V_ERR_HOSTNAME_MISMATCH || v == X509_V_ERR_IP_ADDRESS_MISMATCH) {
        snprintf(out, len,
                 "certificate host name mismatch: the broker's certificate is not valid for "
                 "'%s' (it is for: %s); use a url with a name the certificate holds, or reissue "
                 "the certificate",
                 cfg->host, names[0] ? names : "?");
    } else if (v != X509_V_OK) {
        snprintf(out, len, "the broker's certificate fails verification against %s: %s",
                 cfg->ca ? cfg->ca : cfg->ca_path, X509_verify_cert_error_string(v));
    } else {
        unsigned long e = ERR_peek_last_error();
        snprintf(out, len, "the TLS handshake with %s:%d failed: %s", cfg->host, cfg->port,
                 e ? ERR_reason_error_string(e) : "the broker closed the connection");
    }
done:
    if (ssl)
        SSL_free(ssl);
    if (fd >= 0)
        close(fd);
    SSL_CTX_free(ctx);
    ERR_clear_error();
    return result;
}
