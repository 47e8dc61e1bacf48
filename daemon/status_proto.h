/* The protocol of the status socket (/run/ironbridge/status.sock) between `ironbridge status`
 * and the daemon: the client sends one request line, "text\n" or "json\n"; the daemon answers
 * one header line, "ironbridge-status 1 CODE\n" (CODE the exit status: 0 healthy, 1 degraded,
 * 2 down), then the report, then closes. Both parsers check every length before they read. */
#ifndef IB_STATUS_PROTO_H
#define IB_STATUS_PROTO_H

#include <stddef.h>

enum ib_status_format { IB_STATUS_TEXT = 0, IB_STATUS_JSON = 1 };

#define IB_STATUS_REQUEST_MAX 16 /* bytes a request line may have, its \n included */

/* The format asked by `buf[0 .. len-1]` (a whole request line with its \n), or -1. */
int ib_status_request_parse(const char *buf, size_t len);

/* The header of a reply `buf[0 .. len-1]`: sets *code (0..2) and *body (offset of the report)
 * and returns 0; -1 when it is not a reply of protocol version 1. */
int ib_status_reply_parse(const char *buf, size_t len, int *code, size_t *body);

#endif
