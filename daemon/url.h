/* The broker URL of north.mqtt: mqtts://host[:port] or mqtt://host[:port]. Any thread. */
#ifndef IB_URL_H
#define IB_URL_H

#include <stdbool.h>

struct ib_url {
    bool tls;       /* mqtts://; set from the scheme even when the rest is refused */
    char host[256]; /* a name, an IPv4 address, or an IPv6 address without its brackets */
    int port;       /* the one given, else 8883 (TLS) or 1883 */
};

/* `s` is a scheme, a host ([IPv6] in brackets), an optional :port (1-65535) and an optional
 * trailing '/', nothing else. Returns 0, or -1 when `s` is not such a URL. */
int ib_url_parse(const char *s, struct ib_url *out);

#endif
