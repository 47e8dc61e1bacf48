/* The status socket's server: a thread of its own that answers `ironbridge status` on a Unix
 * socket (mode 0660: the service's group may read) with the report of metrics_report.h. One
 * client at a time; a client that does not send its request within 1 s, or does not read the
 * reply within 2 s, is dropped, so none can hold it for longer. */
#ifndef IB_STATUS_SERVER_H
#define IB_STATUS_SERVER_H

#include <stddef.h>

#include "metrics.h"

struct ib_status_server;

/* Listen on `path` (a stale socket file there is replaced) for the registry `m` (which must
 * outlive the server). NULL after a sentence in err. Main thread. */
struct ib_status_server *ib_status_server_start(const char *path, struct ib_metrics *m, char *err,
                                                size_t len);
/* Stop, remove the socket file, free (accepts NULL). Main thread. */
void ib_status_server_stop(struct ib_status_server *s);

#endif
