/* The status socket's two parsers: the daemon's of a request line, the client's of a reply
 * header (status_proto.h). Outside input on both sides: lengths first. */
#include "status_proto.h"

#include <string.h>

int ib_status_request_parse(const char *buf, size_t len)
{
    if (len == 5 && memcmp(buf, "text\n", 5) == 0)
        return IB_STATUS_TEXT;
    if (len == 5 && memcmp(buf, "json\n", 5) == 0)
        return IB_STATUS_JSON;
    return -1;
}

int ib_status_reply_parse(const char *buf, size_t len, int *code, size_t *body)
{
    static const char magic[] = "ironbridge-status 1 ";
    const size_t ml = sizeof magic - 1;
    if (len < ml + 2 || memcmp(buf, magic, ml) != 0)
        return -1;
    char c = buf[ml];
    if (c < '0' || c > '2' || buf[ml + 1] != '\n')
        return -1;
    *code = c - '0';
    *body = ml + 2;
    return 0;
}
