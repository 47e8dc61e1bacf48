/* The north.mqtt section: the broker's URL, TLS files, credentials, topics and delivery
 * settings, validated against its schema and checked together (a TLS URL needs a CA, a
 * certificate needs its key, topics their placeholders). */
#include <stdio.h>
#include <string.h>

#include "config_core.h"
#include "config_loader.h"
#include "schema.h"
#include "topic.h"
#include "url.h"

static const char *const layout_choices[] = {"batch", "tag", NULL};
static const char *const version_choices[] = {"3.1.1", "5", NULL};
static const struct ib_schema_entry mqtt_entries[] = {
    {.key = "url",
     .type = IB_S_STRING,
     .flags = IB_SF_REQUIRED,
     .offset = offsetof(struct ib_mqtt_cfg, url),
     .description = "broker: mqtts://host[:port] (TLS) or mqtt://host[:port]"},
    IB_E_STR("client_id", struct ib_mqtt_cfg, client_id, NULL, "MQTT client id"),
    {.key = "allow_insecure",
     .type = IB_S_BOOL,
     .offset = offsetof(struct ib_mqtt_cfg, allow_insecure),
     .def = "false",
     .description = "permit plaintext mqtt://"},
    IB_E_INT("qos", struct ib_mqtt_cfg, qos, "1", 0, 1, "QoS of data messages"),
    {.key = "version",
     .type = IB_S_ENUM,
     .offset = offsetof(struct ib_mqtt_cfg, version),
     .def = "3.1.1",
     .choices = version_choices,
     .description = "MQTT protocol version: 3.1.1 or 5 (5: commands honour response topic and "
                    "correlation data)"},
    {.key = "layout",
     .type = IB_S_ENUM,
     .offset = offsetof(struct ib_mqtt_cfg, layout),
     .def = "batch",
     .choices = layout_choices,
     .description = "batch: a message per device group per poll; tag: a message per tag"},
    IB_E_STR("topic", struct ib_mqtt_cfg, topic, NULL,
             "topic template of data messages (default ironbridge/{gateway}/{device}/{group}, "
             "with /{tag} for layout tag)"),
    IB_E_STR("status_topic", struct ib_mqtt_cfg, status_topic, "ironbridge/{gateway}/status",
             "retained online/offline topic"),
    IB_E_STR("config_status_topic", struct ib_mqtt_cfg, config_status_topic,
             "ironbridge/{gateway}/config",
             "retained message: which configuration runs, and the last reload's result"),
    IB_E_INT("keepalive_s", struct ib_mqtt_cfg, keepalive_s, "30", 5, 3600, "MQTT keep-alive"),
    IB_E_INT("connect_timeout_ms", struct ib_mqtt_cfg, connect_timeout_ms, "10000", 100, 300000,
             "connect timeout"),
    IB_E_INT("reconnect_min_ms", struct ib_mqtt_cfg, reconnect_min_ms, "1000", 100, 3600000,
             "first reconnect delay"),
    IB_E_INT("reconnect_max_ms", struct ib_mqtt_cfg, reconnect_max_ms, "8000", 100, 3600000,
             "longest reconnect delay"),
    IB_E_INT("max_inflight", struct ib_mqtt_cfg, max_inflight, "256", 1, 65535,
             "QoS 1 messages awaiting PUBACK"),
    {.key = "max_inflight_bytes",
     .type = IB_S_SIZE,
     .flags = IB_SF_RANGE,
     .offset = offsetof(struct ib_mqtt_cfg, max_inflight_bytes),
     .def = "8MiB",
     .min = 65536,
     .max = 1LL << 30,
     .description = "bytes of QoS 1 messages awaiting PUBACK (one message is always let through)"},
    IB_E_INT("flush_timeout_ms", struct ib_mqtt_cfg, flush_timeout_ms, "5000", 0, 600000,
             "time given at stop to deliver what is queued"),
    IB_E_INT("linger_ms", struct ib_mqtt_cfg, linger_ms, IB_MQTT_LINGER_DEFAULT, 0, 1000,
             "after sending, wait this long for more records before sending again, so that "
             "records queued meanwhile go as one batch (0: send each at once)"),
    IB_E_STR("username", struct ib_mqtt_cfg, username, NULL, "MQTT user name"),
    IB_E_STR("password_file", struct ib_mqtt_cfg, password_file, NULL,
             "file holding the MQTT password (mode 0600)"),
};
const struct ib_schema ib_config_mqtt_schema = {
    sizeof(struct ib_mqtt_cfg), sizeof mqtt_entries / sizeof mqtt_entries[0], mqtt_entries, {0}};

static const struct ib_schema_entry tls_entries[] = {
    IB_E_STR("ca", struct ib_mqtt_cfg, ca, NULL, "CA certificate file (PEM)"),
    IB_E_STR("ca_path", struct ib_mqtt_cfg, ca_path, NULL, "directory of CA certificates"),
    IB_E_STR("cert", struct ib_mqtt_cfg, cert, NULL, "client certificate (mutual TLS)"),
    IB_E_STR("key", struct ib_mqtt_cfg, key, NULL, "client private key (mode 0600)"),
};
const struct ib_schema ib_config_tls_schema = {sizeof(struct ib_mqtt_cfg), 4, tls_entries, {0}};

/* The URL decides TLS; plaintext must be asked for explicitly. */
static void north_url(struct ib_loader *L, struct ib_mqtt_cfg *m, const struct ib_where *w)
{
    struct ib_url u;
    int rc = ib_url_parse(m->url, &u);
    m->tls = u.tls;
    if (rc < 0) {
        ib_diag_add(L->diag, w, "url",
                    "'%s' is not a broker URL: write mqtts://host[:port] (TLS, port 8883 by "
                    "default) or mqtt://host[:port]",
                    m->url);
        return;
    }
    m->host = ib_arena_strdup(&L->cfg->arena, u.host);
    m->port = u.port;
    bool v6 = strchr(u.host, ':') != NULL;
    m->server_uri = ib_arena_printf(&L->cfg->arena, "%s://%s%s%s:%d", m->tls ? "ssl" : "tcp",
                                    v6 ? "[" : "", u.host, v6 ? "]" : "", u.port);
    if (!m->tls && !m->allow_insecure)
        ib_diag_add(L->diag, w, "url",
                    "'%s' is plaintext MQTT: use mqtts:// with a CA, or set "
                    "allow_insecure: true to accept sending data unencrypted",
                    m->url);
}

/* The files of tls and password_file: resolved beside the file that names them, checked. */
static void north_files(struct ib_loader *L, struct ynode *n, const char *path, struct ynode *tn,
                        const char *tpath, const struct ib_where *w)
{
    struct ib_mqtt_cfg *m = &L->cfg->mqtt;
    const struct ib_where *tw = tn && tn->type == YNODE_MAPPING ? ib_loader_where(L, tn, tpath) : w;
    m->ca = ib_loader_resolve(L, m->ca);
    m->ca_path = ib_loader_resolve(L, m->ca_path);
    m->cert = ib_loader_resolve(L, m->cert);
    m->key = ib_loader_resolve(L, m->key);
    m->password_file = ib_loader_resolve(L, m->password_file);
    if (m->tls && !m->ca && !m->ca_path)
        ib_diag_add(L->diag, tn ? tw : w, tn ? NULL : "tls",
                    "TLS needs a CA to verify the broker: set tls.ca (a PEM file) or tls.ca_path");
    if (m->ca)
        ib_loader_check_file(L, tn, tpath, "ca", m->ca, false, false);
    if (m->ca_path)
        ib_loader_check_file(L, tn, tpath, "ca_path", m->ca_path, false, true);
    if (!!m->cert != !!m->key)
        ib_diag_add(L->diag, tw, m->cert ? "cert" : "key",
                    "tls.cert and tls.key go together (mutual TLS needs both)");
    if (m->cert)
        ib_loader_check_file(L, tn, tpath, "cert", m->cert, false, false);
    if (m->key)
        ib_loader_check_file(L, tn, tpath, "key", m->key, true, false);
    if (m->password_file)
        ib_loader_check_file(L, n, path, "password_file", m->password_file, true, false);
    if (!m->tls && tn && (m->ca || m->cert))
        ib_diag_add(L->diag, tw, NULL,
                    "a tls section is given but the url is mqtt://: use mqtts://");
}

/* Topic templates: their placeholders, and the default data topic of the layout. */
static void north_topics(struct ib_loader *L, const struct ib_where *w)
{
    struct ib_mqtt_cfg *m = &L->cfg->mqtt;
    if (m->reconnect_min_ms > m->reconnect_max_ms)
        ib_diag_add(L->diag, w, "reconnect_min_ms", "must not exceed reconnect_max_ms (%lld)",
                    (long long)m->reconnect_max_ms);
    char what[64];
    const char *e;
    bool per_tag = m->layout == IB_LAYOUT_TAG;
    bool own_topic = m->topic != NULL;
    if (!m->topic)
        m->topic = per_tag ? "ironbridge/{gateway}/{device}/{group}/{tag}"
                           : "ironbridge/{gateway}/{device}/{group}";
    unsigned allowed = IB_TOPIC_GATEWAY | IB_TOPIC_CONNECTION | IB_TOPIC_DEVICE | IB_TOPIC_GROUP |
                       (per_tag ? IB_TOPIC_TAG : 0);
    if ((e = ib_topic_check(m->topic, allowed, what, sizeof what)))
        ib_diag_add(L->diag, w, "topic", "'%s': %s%s%s%s", m->topic, e, *what ? ": " : "", what,
                    !per_tag && strcmp(what, "{tag}") == 0 ? " ({tag} needs layout: tag)" : "");
    else if (per_tag && own_topic && !strstr(m->topic, "{tag}"))
        ib_diag_add(L->diag, w, "topic",
                    "'%s': with layout: tag every tag needs its own topic: add {tag}", m->topic);
    if ((e = ib_topic_check(m->status_topic, IB_TOPIC_GATEWAY, what, sizeof what)))
        ib_diag_add(L->diag, w, "status_topic", "'%s': %s%s%s", m->status_topic, e,
                    *what ? ": " : "", what);
    if ((e = ib_topic_check(m->config_status_topic, IB_TOPIC_GATEWAY, what, sizeof what)))
        ib_diag_add(L->diag, w, "config_status_topic", "'%s': %s%s%s", m->config_status_topic, e,
                    *what ? ": " : "", what);
}

void ib_loader_north(struct ib_loader *L, struct ynode *n, const char *path)
{
    struct ib_mqtt_cfg *m = &L->cfg->mqtt;
    static const char *const extra[] = {"tls", "servers", NULL};
    struct ib_spec sp = {&ib_config_mqtt_schema, m};
    if (!ib_schema_apply(L, n, path, &sp, 1, extra))
        return;
    struct ib_where *w = ib_loader_where(L, n, path);
    struct ynode *tn = ib_loader_get(L, n, "tls");
    const char *tpath = ib_loader_join(L, path, "tls");
    struct ib_spec tsp = {&ib_config_tls_schema, m};
    if (tn)
        ib_schema_apply(L, tn, tpath, &tsp, 1, NULL);
    if (m->url)
        north_url(L, m, w);
    ib_loader_servers(L, n, path);
    north_files(L, n, path, tn, tpath, w);
    north_topics(L, w);
    L->cfg->has_north = true;
}
