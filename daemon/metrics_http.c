/* The metrics' HTTP listener (libmicrohttpd): address parsing, HTTPS and basic-auth files, and
 * the one handler that serves the exposition. A slow or garbage client only holds one of
 * max_connections slots until timeout_s: MHD's thread polls every socket without blocking. */
#include "metrics_http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "metrics_text.h"
#include "util.h"

struct ib_metrics_http {
    struct MHD_Daemon *d;
    struct ib_metrics *m;
    char *path;
    char *user, *pass; /* NULL: no authentication */
    char *cert, *key;  /* PEM text for MHD (kept while it runs) */
};

static int set_port(const char *p, int *port)
{
    char *end;
    long v = strtol(p, &end, 10);
    if (!*p || *end || v < 1 || v > 65535)
        return -1;
    *port = (int)v;
    return 0;
}

int ib_metrics_http_parse_addr(const char *s, struct ib_metrics_addr *a, char *err, size_t len)
{
    memset(a, 0, sizeof *a);
    char host[64];
    const char *colon = strrchr(s, ':');
    size_t hl = colon ? (size_t)(colon - s) : 0;
    int port;
    if (!colon || hl == 0 || hl >= sizeof host || set_port(colon + 1, &port) < 0) {
        snprintf(err, len, "expected HOST:PORT with a numeric host, e.g. 127.0.0.1:9464");
        return -1;
    }
    memcpy(host, s, hl);
    host[hl] = '\0';
    if (host[0] == '[' && hl > 2 && host[hl - 1] == ']') {
        memmove(host, host + 1, hl - 2);
        host[hl - 2] = '\0';
    }
    if (strcmp(host, "localhost") == 0)
        snprintf(host, sizeof host, "127.0.0.1");
    struct sockaddr_in *v4 = (struct sockaddr_in *)&a->ss;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&a->ss;
    if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons((uint16_t)port);
        a->len = sizeof *v4;
        a->loopback = (ntohl(v4->sin_addr.s_addr) >> 24) == 127;
    } else if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons((uint16_t)port);
        a->len = sizeof *v6;
        a->loopback = IN6_IS_ADDR_LOOPBACK(&v6->sin6_addr);
    } else {
        snprintf(err, len, "'%s' is not a numeric IPv4 or IPv6 address (nor localhost)", host);
        return -1;
    }
    return 0;
}

static enum MHD_Result reply(struct MHD_Connection *c, unsigned code, const char *type, char *body,
                             size_t n, enum MHD_ResponseMemoryMode mode)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(n, body, mode);
    if (!r)
        return MHD_NO;
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    enum MHD_Result rc = MHD_queue_response(c, code, r);
    MHD_destroy_response(r);
    return rc;
}

static bool authorized(struct ib_metrics_http *h, struct MHD_Connection *c)
{
    if (!h->user)
        return true;
    char *pass = NULL;
    char *user = MHD_basic_auth_get_username_password(c, &pass);
    bool ok = user && pass && strcmp(user, h->user) == 0 && strlen(pass) == strlen(h->pass) &&
              CRYPTO_memcmp(pass, h->pass, strlen(pass)) == 0;
    MHD_free(user);
    MHD_free(pass);
    return ok;
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *c, const char *url,
                              const char *method, const char *version, const char *upload,
                              size_t *upload_len, void **con_cls)
{
    (void)version;
    (void)upload;
    struct ib_metrics_http *h = cls;
    static char nf[] = "not found: the metrics are at the configured path only\n";
    static char na[] = "method not allowed\n";
    static char ua[] = "authentication required\n";
    if (!*con_cls) { /* the headers only: answer once the (unexpected) body is read */
        *con_cls = h;
        return MHD_YES;
    }
    if (*upload_len) {
        *upload_len = 0; /* a body is read and ignored */
        return MHD_YES;
    }
    if (strcmp(url, h->path) != 0)
        return reply(c, MHD_HTTP_NOT_FOUND, "text/plain", nf, sizeof nf - 1,
                     MHD_RESPMEM_PERSISTENT);
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
        return reply(c, MHD_HTTP_METHOD_NOT_ALLOWED, "text/plain", na, sizeof na - 1,
                     MHD_RESPMEM_PERSISTENT);
    if (!authorized(h, c)) {
        struct MHD_Response *r =
            MHD_create_response_from_buffer(sizeof ua - 1, ua, MHD_RESPMEM_PERSISTENT);
        if (!r)
            return MHD_NO;
        enum MHD_Result rc = MHD_queue_basic_auth_fail_response(c, "ironbridge", r);
        MHD_destroy_response(r);
        return rc;
    }
    struct ib_buf b = {0};
    if (ib_metrics_render(h->m, &b, ib_now_ms()) < 0) {
        ib_buf_free(&b);
        return MHD_NO;
    }
    /* MHD frees the body with free() once sent */
    enum MHD_Result rc = reply(c, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8", b.p,
                               b.len, MHD_RESPMEM_MUST_FREE);
    return rc;
}

/* The whole of a small file (PEM, auth) as a string; NULL after a sentence in err. */
static char *slurp(const char *path, char *err, size_t len)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, len, "cannot read %s: %s", path, strerror(errno));
        return NULL;
    }
    char *buf = calloc(1, 65537);
    size_t n = buf ? fread(buf, 1, 65536, f) : 0;
    bool big = buf && n == 65536 && fgetc(f) != EOF;
    fclose(f);
    if (!buf || big) {
        snprintf(err, len, "%s is larger than 64 KiB", path);
        free(buf);
        return NULL;
    }
    return buf;
}

/* The first line of the auth file: user:password (never logged). */
static int read_auth(struct ib_metrics_http *h, const char *path, char *err, size_t len)
{
    char *t = slurp(path, err, len);
    if (!t)
        return -1;
    t[strcspn(t, "\r\n")] = '\0';
    char *colon = strchr(t, ':');
    if (!colon || colon == t || !colon[1]) {
        snprintf(err, len, "%s: the first line must be user:password (both not empty)", path);
        explicit_bzero(t, strlen(t));
        free(t);
        return -1;
    }
    *colon = '\0';
    h->user = strdup(t);
    h->pass = strdup(colon + 1);
    explicit_bzero(colon + 1, strlen(colon + 1));
    free(t);
    return h->user && h->pass ? 0 : -1;
}

static void http_free(struct ib_metrics_http *h)
{
    free(h->path);
    free(h->user);
    if (h->pass)
        explicit_bzero(h->pass, strlen(h->pass));
    free(h->pass);
    free(h->cert);
    if (h->key)
        explicit_bzero(h->key, strlen(h->key));
    free(h->key);
    free(h);
}

static struct MHD_Daemon *http_listen(struct ib_metrics_http *h, const struct ib_metrics_cfg *cfg,
                                      struct ib_metrics_addr *a)
{
    unsigned flags = MHD_USE_AUTO_INTERNAL_THREAD | MHD_USE_ERROR_LOG;
    if (a->ss.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    if (h->cert)
        flags |= MHD_USE_TLS;
    struct MHD_OptionItem tls[] = {
        {h->cert ? MHD_OPTION_HTTPS_MEM_CERT : MHD_OPTION_END, 0, h->cert},
        {h->cert ? MHD_OPTION_HTTPS_MEM_KEY : MHD_OPTION_END, 0, h->key},
        {MHD_OPTION_END, 0, NULL},
    };
    return MHD_start_daemon(
        flags, 0, NULL, NULL, handle, h, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&a->ss,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)cfg->timeout_s, MHD_OPTION_CONNECTION_LIMIT,
        (unsigned)cfg->max_connections, MHD_OPTION_PER_IP_CONNECTION_LIMIT,
        (unsigned)(cfg->max_connections > 4 ? cfg->max_connections / 2 : cfg->max_connections),
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)32768, MHD_OPTION_ARRAY, tls, MHD_OPTION_END);
}

struct ib_metrics_http *ib_metrics_http_start(const struct ib_metrics_cfg *cfg,
                                              struct ib_metrics *m, char *err, size_t len)
{
    struct ib_metrics_addr a;
    if (ib_metrics_http_parse_addr(cfg->listen, &a, err, len) < 0)
        return NULL;
    struct ib_metrics_http *h = calloc(1, sizeof *h);
    if (!h || !(h->path = strdup(cfg->path))) {
        snprintf(err, len, "out of memory");
        free(h);
        return NULL;
    }
    h->m = m;
    if ((cfg->basic_auth_file && read_auth(h, cfg->basic_auth_file, err, len) < 0) ||
        (cfg->tls_cert && (!(h->cert = slurp(cfg->tls_cert, err, len)) ||
                           !(h->key = slurp(cfg->tls_key, err, len))))) {
        http_free(h);
        return NULL;
    }
    h->d = http_listen(h, cfg, &a);
    if (!h->d) {
        snprintf(err, len, "cannot listen on %s (in use, or the TLS files do not load)",
                 cfg->listen);
        http_free(h);
        return NULL;
    }
    ib_info("metrics: serving %s%s%s%s", h->cert ? "https://" : "http://", cfg->listen, cfg->path,
            h->user ? " (basic auth)" : "");
    return h;
}

void ib_metrics_http_stop(struct ib_metrics_http *h)
{
    if (!h)
        return;
    MHD_stop_daemon(h->d);
    http_free(h);
}
