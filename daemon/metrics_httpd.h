/* metrics_httpd.h: the interface of the private HTTP module (metrics_httpd.c, built as
 * metrics-http.so under the package's private lib dir). The daemon dlopens it only when
 * metrics.listen is set, so libmicrohttpd and GnuTLS (about 2.8 MB resident, mostly their
 * relocations) are never loaded otherwise. The module knows MHD only; what is served and who
 * may see it stay in the daemon (metrics_http.c), behind the callback below. */
#ifndef IB_METRICS_HTTPD_H
#define IB_METRICS_HTTPD_H

#include <stddef.h>
#include <sys/socket.h>

/* MHD's thread asks for the body of a GET/HEAD of the configured path with the basic-auth
 * credentials (NULL when none came). Returns 200 with *body (malloc'd; MHD frees it once sent),
 * 401 (credentials wrong or missing) or 500 (no body). */
typedef int (*ib_httpd_serve_fn)(void *cls, const char *user, const char *pass, char **body,
                                 size_t *n);

struct ib_httpd_args {
    const struct sockaddr *addr; /* bound by the module; copied */
    const char *path;            /* the one path served; must outlive the listener */
    const char *cert, *key;      /* PEM text for HTTPS, or NULL; must outlive the listener */
    unsigned timeout_s, max_connections, per_ip_limit;
    ib_httpd_serve_fn serve;
    void *cls;
};

struct ib_httpd;

#define IB_HTTPD_OPEN  "ib_httpd_open"
#define IB_HTTPD_CLOSE "ib_httpd_close"
/* Start listening (MHD's own thread); NULL when the address is taken or the TLS text does not
 * load. Main thread. */
typedef struct ib_httpd *(*ib_httpd_open_fn)(const struct ib_httpd_args *a);
/* Stop: no callback runs afterwards. Main thread. */
typedef void (*ib_httpd_close_fn)(struct ib_httpd *h);

#endif
