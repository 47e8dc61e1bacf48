/* config_servers.c: north.mqtt.servers, the brokers tried after `url` when it is down (paho's
 * server list, for both payload formats): each a broker URL with the same scheme as `url`, so
 * that one TLS setting and one CA serve them all. */
#include <stdio.h>
#include <string.h>

#include "config_core.h"
#include "config_loader.h"
#include "url.h"

/* paho's form of a broker URL: ssl://host:port or tcp://host:port ([v6]). */
static const char *paho_uri(struct ib_loader *L, const struct ib_url *u, bool tls)
{
    bool v6 = strchr(u->host, ':') != NULL;
    return ib_arena_printf(&L->cfg->arena, "%s://%s%s%s:%d", tls ? "ssl" : "tcp", v6 ? "[" : "",
                           u->host, v6 ? "]" : "", u->port);
}

void ib_loader_servers(struct ib_loader *L, struct ynode *n, const char *path)
{
    struct ib_mqtt_cfg *m = &L->cfg->mqtt;
    struct ynode *list = ib_loader_get(L, n, "servers");
    if (!list || !m->server_uri)
        return;
    if (list->type != YNODE_SEQUENCE) {
        ib_loader_err(L, list, path, "servers", "expected a list of broker URLs, found %s",
                      ib_loader_kind(list));
        return;
    }
    size_t count = list_len(list) + 1;
    const char **uris = ib_arena_alloc(&L->cfg->arena, (count + 1) * sizeof *uris);
    if (!uris)
        return;
    uris[0] = m->server_uri;
    for (size_t i = 1; i < count; i++) {
        struct ynode *it = item_at(L, list, i - 1);
        const char *text = scalar(it);
        struct ib_url u;
        if (!text || ib_url_parse(text, &u) < 0) {
            ib_loader_err(L, it, path, "servers",
                          "item %zu is not a broker URL: write mqtts://host[:port] or "
                          "mqtt://host[:port]",
                          i);
            return;
        }
        if (u.tls != m->tls) {
            ib_loader_err(L, it, path, "servers",
                          "'%s': every server must use the scheme of url (%s), so that one "
                          "tls section serves them all",
                          text, m->tls ? "mqtts://" : "mqtt://");
            return;
        }
        uris[i] = paho_uri(L, &u, m->tls);
    }
    uris[count] = NULL;
    m->server_uris = uris;
    m->n_server_uris = (int)count;
}
