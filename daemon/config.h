/* The configuration model: what ironbridge.yaml says, validated, with the position of every
 * node kept for messages. One arena owns it all; the plugin views (ib_*_config) live inside. */
#ifndef IB_CONFIG_H
#define IB_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <ironbridge/plugin.h>

#include "command_cfg.h"
#include "diag.h"
#include "metrics.h"
#include "north.h"
#include "record.h"
#include "report.h"
#include "store.h"
#include "units.h"
#include "util.h"

struct ib_plugin_registry;

struct ib_cfg_group {
    struct ib_tag_core *tags; /* parallel to the plugin view's tags[] */
    const struct ib_where *where;
    int64_t stale_after_ms;      /* a tag not read successfully this long is reported stale */
    struct ib_tag_write *writes; /* parallel to tags: write limits (command_cfg.h) */
};

struct ib_cfg_device {
    struct ib_cfg_group *groups; /* parallel to the plugin view's groups[] */
    const struct ib_where *where;
    const char *meta_json; /* the device's metadata as a JSON object, or NULL */
};

struct ib_cfg_connection {
    struct ib_connection_config pub; /* handed to the plugin's create() */
    const char *plugin_name;
    const struct ib_plugin *plugin; /* NULL when it could not be loaded (an error was reported) */
    struct ib_cfg_device *devices;  /* parallel to pub.devices[] */
    const struct ib_where *where;
    int64_t call_timeout_ms; /* a plugin call longer than this stalls the connection */
};

/* Signed configuration over MQTT (docs/remote-config.md). */
struct ib_remote_cfg {
    bool enabled;
    const char *public_key; /* PEM Ed25519 public key of the operators */
    const char *topic;      /* template; {gateway} */
    const char
        *file; /* NAME.yaml: an accepted document is kept as $STATE_DIRECTORY/remote/NAME.yaml
                * and stands for conf.d/NAME.yaml in the tree */
};

struct ib_config {
    struct ib_arena arena;
    int refs;               /* the running gateway's pollers may keep a generation alive */
    const char *file;       /* the main file */
    const char *dropin_dir; /* conf.d beside it */
    size_t n_files;         /* files of the tree read */
    const char *gateway_id;
    const char *plugin_dir;
    int log_level;          /* enum ib_log_level */
    bool watch;             /* apply changes of the files by themselves */
    int64_t watch_delay_ms; /* quiet time after the last change before applying */
    bool has_north;
    struct ib_mqtt_cfg mqtt;
    struct ib_store_cfg store;
    struct ib_remote_cfg remote;
    struct ib_commands_cfg commands;
    struct ib_metrics_cfg metrics;
    size_t n_connections;
    struct ib_cfg_connection *connections;
    size_t n_devices, n_groups, n_tags;
};

/* A file's text standing for conf.d/`name` (read instead of, or added as, that file): how a
 * configuration received over MQTT is validated before it is written. */
struct ib_config_extra {
    const char *name; /* NULL: no file stands in */
    const char *text;
    const char *shown_as; /* the file messages name (NULL: conf.d/name); e.g. the state dir's */
    bool north_optional;  /* connections without north.mqtt are fine (ironbridge-plugin-test) */
};

/* Load and validate `path`. Plugins named by connections are loaded from `plugins` and their
 * blocks validated against their schemas. Every error found is added to `diag`; returns NULL
 * if there was any (nothing to free then), else the configuration (free with ib_config_free). */
struct ib_config *ib_config_load(const char *path, struct ib_plugin_registry *plugins,
                                 struct ib_diag *diag);
/* Both read the main file and then every conf.d/NAME.yaml beside it (docs/configuration.md);
 * `extra` (may be NULL) stands for one of those files. */
struct ib_config *ib_config_load_ex(const char *path, struct ib_plugin_registry *plugins,
                                    struct ib_diag *diag, const struct ib_config_extra *extra);
/* Configurations are reference-counted: a running poller keeps the generation it was built from
 * alive across reloads. ib_config_free drops one reference (accepts NULL). Main thread only. */
struct ib_config *ib_config_ref(struct ib_config *cfg);
void ib_config_free(struct ib_config *cfg);

/* The host's config_error() implementation needs to reach the diag from a plugin's `where`. */
const struct ib_where *ib_config_where(const void *where);

#endif
