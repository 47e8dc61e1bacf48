/* The metrics' HTTP listener: address parsing, HTTPS and basic-auth files, and the one handler
 * that serves the exposition. libmicrohttpd lives in a private module (metrics_httpd.c), loaded
 * only when a listener starts. A slow or garbage client only holds one of
 * max_connections slots until timeout_s: MHD's thread polls every socket without blocking. */
#include "metrics_http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <dlfcn.h>
#include <limits.h>
#include <netinet/in.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ib_build_config.h"
#include "log.h"
#include "metrics_httpd.h"
#include "metrics_text.h"
#include "util.h"

#define IB_HTTPD_MODULE "metrics-http.so"

static ib_httpd_open_fn httpd_open; /* NULL until the module is loaded */
static ib_httpd_close_fn httpd_close;

struct ib_metrics_http {
    struct ib_httpd *d;
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

/* MHD's thread (through the module): the exposition, or 401 when auth is configured and the
 * credentials differ (compared in constant time). */
static int serve(void *cls, const char *user, const char *pass, char **body, size_t *n)
{
    struct ib_metrics_http *h = cls;
    if (h->user &&
        !(user && pass && strcmp(user, h->user) == 0 && strlen(pass) == strlen(h->pass) &&
          CRYPTO_memcmp(pass, h->pass, strlen(pass)) == 0))
        return 401;
    struct ib_buf b = {0};
    if (ib_metrics_render(h->m, &b, ib_now_ms()) < 0) {
        ib_buf_free(&b);
        return 500;
    }
    *body = b.p;
    *n = b.len;
    return 200;
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

/* The module's path: next to the build's daemon when this runs from the build tree (tests),
 * else the package's private lib dir. */
static const char *module_path(void)
{
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    size_t rl = strlen(IB_BUILD_ROOT);
    if (n > 0) {
        exe[n] = '\0';
        if (strncmp(exe, IB_BUILD_ROOT, rl) == 0 && exe[rl] == '/')
            return IB_BUILD_ROOT "/daemon/" IB_HTTPD_MODULE;
    }
    return IB_PRIVLIB_DIR "/" IB_HTTPD_MODULE;
}

/* Loaded once, on first use, and kept (GnuTLS is not meant to be unloaded). Main thread. */
static int load_module(char *err, size_t len)
{
    if (httpd_open)
        return 0;
    const char *path = module_path();
    void *dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!dl) {
        snprintf(err, len, "cannot load the HTTP module %s (%s): reinstall the package", path,
                 dlerror());
        return -1;
    }
    httpd_open = (ib_httpd_open_fn)dlsym(dl, IB_HTTPD_OPEN);
    httpd_close = (ib_httpd_close_fn)dlsym(dl, IB_HTTPD_CLOSE);
    if (!httpd_open || !httpd_close) {
        snprintf(err, len, "%s is not ironbridge's HTTP module: reinstall the package", path);
        httpd_open = NULL;
        dlclose(dl);
        return -1;
    }
    return 0;
}

static struct ib_httpd *http_listen(struct ib_metrics_http *h, const struct ib_metrics_cfg *cfg,
                                    struct ib_metrics_addr *a)
{
    struct ib_httpd_args args = {
        .addr = (const struct sockaddr *)&a->ss,
        .path = h->path,
        .cert = h->cert,
        .key = h->key,
        .timeout_s = (unsigned)cfg->timeout_s,
        .max_connections = (unsigned)cfg->max_connections,
        .per_ip_limit =
            (unsigned)(cfg->max_connections > 4 ? cfg->max_connections / 2 : cfg->max_connections),
        .serve = serve,
        .cls = h,
    };
    return httpd_open(&args);
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
    if (load_module(err, len) < 0) {
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
    httpd_close(h->d);
    http_free(h);
}
