/* The configuration model: what ironbridge.yaml says, validated, with the position of every
 * node kept for messages. One arena owns it all; the plugin views (ib_*_config) live inside. */
#ifndef IB_CONFIG_H
#define IB_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <ironbridge/plugin.h>

#include "diag.h"
#include "util.h"

struct ib_plugin_registry;

/* What the core does with a tag's value, beside what the plugin reads. */
struct ib_tag_core {
    double scale, offset;
    /* When scale is 1/N for an integer N (0.1, 0.01, 0.001...), value = raw / N + offset:
     * 614 / 10 is 61.4, whereas 614 * 0.1 is 61.400000000000006. 0 when not applicable. */
    double divisor;
    bool scaled; /* scale != 1 or offset != 0: the value becomes a double */
    const char *unit;
    const char *description;
};

struct ib_cfg_group {
    struct ib_tag_core *tags; /* parallel to the plugin view's tags[] */
    const struct ib_where *where;
};

struct ib_cfg_device {
    struct ib_cfg_group *groups; /* parallel to the plugin view's groups[] */
    const struct ib_where *where;
};

struct ib_cfg_connection {
    struct ib_connection_config pub; /* handed to the plugin's create() */
    const char *plugin_name;
    const struct ib_plugin *plugin; /* NULL when it could not be loaded (an error was reported) */
    struct ib_cfg_device *devices;  /* parallel to pub.devices[] */
    const struct ib_where *where;
};

struct ib_mqtt_cfg {
    const char *url;
    const char *client_id;
    bool allow_insecure;
    int64_t qos;
    const char *topic;
    const char *status_topic;
    int64_t keepalive_s;
    int64_t connect_timeout_ms;
    int64_t reconnect_min_ms;
    int64_t reconnect_max_ms;
    int64_t max_inflight;
    int64_t flush_timeout_ms;
    const char *username;
    const char *password_file;
    /* tls: */
    const char *ca, *ca_path, *cert, *key;
    /* derived: */
    bool tls;
    const char *server_uri; /* for paho: ssl://host:port or tcp://host:port */
    const char *host;
    int port;
};

enum ib_fsync_policy { IB_FSYNC_BATCH = 0, IB_FSYNC_ALWAYS = 1 };

/* The durable queue between the core and the north (docs/store.md). */
struct ib_store_cfg {
    const char *path;  /* absolute */
    bool path_default; /* no store.path in the file: $STATE_DIRECTORY/queue or /var/lib/... */
    int64_t max_bytes;
    int64_t max_age_ms;
    int32_t fsync; /* enum ib_fsync_policy */
    int64_t fsync_interval_ms;
    int64_t fsync_bytes;
    int64_t replay_rate; /* backlog records per second; 0: unlimited */
    int64_t memory_max_bytes;
};

struct ib_config {
    struct ib_arena arena;
    const char *file;
    const char *gateway_id;
    const char *plugin_dir;
    int log_level; /* enum ib_log_level */
    bool has_north;
    struct ib_mqtt_cfg mqtt;
    struct ib_store_cfg store;
    size_t n_connections;
    struct ib_cfg_connection *connections;
    size_t n_devices, n_groups, n_tags;
};

/* Load and validate `path`. Plugins named by connections are loaded from `plugins` and their
 * blocks validated against their schemas. Every error found is added to `diag`; returns NULL
 * if there was any (nothing to free then), else the configuration (free with ib_config_free). */
struct ib_config *ib_config_load(const char *path, struct ib_plugin_registry *plugins,
                                 struct ib_diag *diag);
void ib_config_free(struct ib_config *cfg);

/* N when scale is exactly 1/N for an integer N (see ib_tag_core.divisor), else 0. */
double ib_scale_divisor(double scale);

/* The host's config_error() implementation needs to reach the diag from a plugin's `where`. */
const struct ib_where *ib_config_where(const void *where);

#endif
