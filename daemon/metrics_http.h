/* The HTTP listener of the Prometheus exposition, through libmicrohttpd in a private module
 * loaded on first start (metrics_httpd.h): one thread of its own
 * (MHD's internal polling thread), connection timeouts and limits, optional HTTPS and basic
 * auth; it answers GET of the configured path and nothing else (404, 405). */
#ifndef IB_METRICS_HTTP_H
#define IB_METRICS_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include "metrics.h"

struct ib_metrics_addr {
    struct sockaddr_storage ss;
    socklen_t len;
    bool loopback;
};

/* "127.0.0.1:9464", "[::1]:9464", "localhost:9464", "0.0.0.0:9464" (numeric hosts and
 * localhost only: the listener never resolves names). Returns 0, or -1 with a sentence in err. */
int ib_metrics_http_parse_addr(const char *s, struct ib_metrics_addr *a, char *err, size_t len);

struct ib_metrics_http;

/* Start listening on cfg->listen, serving the exposition of `m` (both must outlive the
 * listener). Returns NULL after a sentence in err (the address is taken, a file unreadable).
 * Main thread. */
struct ib_metrics_http *ib_metrics_http_start(const struct ib_metrics_cfg *cfg,
                                              struct ib_metrics *m, char *err, size_t len);
/* Stop and free (accepts NULL): no request is served afterwards. Main thread. */
void ib_metrics_http_stop(struct ib_metrics_http *h);

#endif
