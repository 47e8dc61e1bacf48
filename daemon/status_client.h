/* `ironbridge status`: asks the running daemon through its status socket and prints the
 * report (text, or JSON with `json`) to `out`. */
#ifndef IB_STATUS_CLIENT_H
#define IB_STATUS_CLIENT_H

#include <stdbool.h>
#include <stdio.h>

/* Exit statuses (docs/observability.md): 0 healthy, 1 degraded, 2 down, and: */
#define IB_STATUS_UNREACHABLE 4 /* no daemon answers on the socket (or no permission) */

/* The socket a client asks when none is named: $RUNTIME_DIRECTORY/status.sock, else
 * /run/ironbridge/status.sock (into buf). */
const char *ib_status_client_default(char *buf, size_t len);

/* Returns the exit status; messages go to stderr. */
int ib_status_client_run(const char *socket_path, bool json, FILE *out);

#endif
