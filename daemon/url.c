/* The broker URL parser: the scheme decides TLS, then a host (a name, IPv4, or [IPv6]), an
 * optional port and an optional trailing slash; anything else is refused. Reads only up to the
 * string's NUL and writes only within ib_url's host array. */
#include "url.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The host at `*rest` into `out`; advances `*rest` past it. */
static bool host(const char **rest, struct ib_url *out)
{
    const char *r = *rest;
    if (r[0] == '[') {
        const char *e = strchr(r, ']');
        if (!e || e == r + 1 || (size_t)(e - r - 1) >= sizeof out->host)
            return false;
        snprintf(out->host, sizeof out->host, "%.*s", (int)(e - r - 1), r + 1);
        *rest = e + 1;
        return true;
    }
    size_t hl = strcspn(r, ":/");
    if (hl == 0 || hl >= sizeof out->host)
        return false;
    snprintf(out->host, sizeof out->host, "%.*s", (int)hl, r);
    *rest = r + hl;
    return true;
}

int ib_url_parse(const char *s, struct ib_url *out)
{
    const char *rest;
    *out = (struct ib_url){0};
    if (strncmp(s, "mqtts://", 8) == 0) {
        out->tls = true;
        rest = s + 8;
    } else if (strncmp(s, "mqtt://", 7) == 0) {
        rest = s + 7;
    } else {
        return -1;
    }
    out->port = out->tls ? 8883 : 1883;
    if (!host(&rest, out))
        return -1;
    if (*rest == ':') {
        char *end;
        long p = strtol(rest + 1, &end, 10);
        if (end == rest + 1 || p <= 0 || p > 65535 || (*end != '\0' && *end != '/'))
            return -1;
        out->port = (int)p;
        rest = end;
    }
    if (*rest == '/')
        rest++;
    return *rest ? -1 : 0;
}
