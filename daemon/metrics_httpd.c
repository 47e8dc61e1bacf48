/* metrics_httpd.c: the private module (metrics-http.so) that holds the daemon's only use of
 * libmicrohttpd: one listener, its own polling thread, connection timeouts and limits, HTTPS,
 * 404/405/401 answers; the body comes from the daemon's callback (metrics_httpd.h). */
#include "metrics_httpd.h"

#include <microhttpd.h>
#include <stdlib.h>
#include <string.h>

#define EXPORT __attribute__((visibility("default")))

struct ib_httpd {
    struct MHD_Daemon *d;
    struct ib_httpd_args a;
};

EXPORT struct ib_httpd *ib_httpd_open(const struct ib_httpd_args *a);
EXPORT void ib_httpd_close(struct ib_httpd *h);

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

static enum MHD_Result deny(struct MHD_Connection *c)
{
    static char ua[] = "authentication required\n";
    struct MHD_Response *r =
        MHD_create_response_from_buffer(sizeof ua - 1, ua, MHD_RESPMEM_PERSISTENT);
    if (!r)
        return MHD_NO;
    enum MHD_Result rc = MHD_queue_basic_auth_fail_response(c, "ironbridge", r);
    MHD_destroy_response(r);
    return rc;
}

static enum MHD_Result serve(struct ib_httpd *h, struct MHD_Connection *c)
{
    char *pass = NULL, *body = NULL;
    char *user = MHD_basic_auth_get_username_password(c, &pass);
    size_t n = 0;
    int code = h->a.serve(h->a.cls, user, pass, &body, &n);
    MHD_free(user);
    MHD_free(pass);
    if (code == 401)
        return deny(c);
    if (code != 200)
        return MHD_NO;
    /* MHD frees the body with free() once sent */
    return reply(c, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8", body, n,
                 MHD_RESPMEM_MUST_FREE);
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *c, const char *url,
                              const char *method, const char *version, const char *upload,
                              size_t *upload_len, void **con_cls)
{
    (void)version;
    (void)upload;
    struct ib_httpd *h = cls;
    static char nf[] = "not found: the metrics are at the configured path only\n";
    static char na[] = "method not allowed\n";
    if (!*con_cls) { /* the headers only: answer once the (unexpected) body is read */
        *con_cls = h;
        return MHD_YES;
    }
    if (*upload_len) {
        *upload_len = 0; /* a body is read and ignored */
        return MHD_YES;
    }
    if (strcmp(url, h->a.path) != 0)
        return reply(c, MHD_HTTP_NOT_FOUND, "text/plain", nf, sizeof nf - 1,
                     MHD_RESPMEM_PERSISTENT);
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
        return reply(c, MHD_HTTP_METHOD_NOT_ALLOWED, "text/plain", na, sizeof na - 1,
                     MHD_RESPMEM_PERSISTENT);
    return serve(h, c);
}

struct ib_httpd *ib_httpd_open(const struct ib_httpd_args *a)
{
    struct ib_httpd *h = calloc(1, sizeof *h);
    if (!h)
        return NULL;
    h->a = *a;
    unsigned flags = MHD_USE_AUTO_INTERNAL_THREAD | MHD_USE_ERROR_LOG;
    if (a->addr->sa_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    if (a->cert)
        flags |= MHD_USE_TLS;
    struct MHD_OptionItem tls[] = {
        {a->cert ? MHD_OPTION_HTTPS_MEM_CERT : MHD_OPTION_END, 0, (void *)a->cert},
        {a->cert ? MHD_OPTION_HTTPS_MEM_KEY : MHD_OPTION_END, 0, (void *)a->key},
        {MHD_OPTION_END, 0, NULL},
    };
    h->d = MHD_start_daemon(
        flags, 0, NULL, NULL, handle, h, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)a->addr,
        MHD_OPTION_CONNECTION_TIMEOUT, a->timeout_s, MHD_OPTION_CONNECTION_LIMIT,
        a->max_connections, MHD_OPTION_PER_IP_CONNECTION_LIMIT, a->per_ip_limit,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)32768, MHD_OPTION_ARRAY, tls, MHD_OPTION_END);
    if (!h->d) {
        free(h);
        return NULL;
    }
    return h;
}

void ib_httpd_close(struct ib_httpd *h)
{
    if (!h)
        return;
    MHD_stop_daemon(h->d);
    free(h);
}
