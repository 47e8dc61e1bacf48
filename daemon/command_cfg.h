/* The settings of commands from the platform (docs/commands.md): the `commands` section and the
 * write keys of a tag. Plain data filled by the configuration loader (config_commands.c,
 * config_tags.c); read by the command path. */
#ifndef IB_COMMAND_CFG_H
#define IB_COMMAND_CFG_H

#include <stdbool.h>
#include <stdint.h>

/* The `commands` section. */
struct ib_commands_cfg {
    bool enabled;                /* subscribe to the command topic */
    const char *topic;           /* template; {gateway} */
    const char *response_topic;  /* template; where answers go without an MQTT 5 response topic */
    int64_t max_age_ms;          /* a request older than this is refused as expired */
    int64_t duplicate_window_ms; /* ids remembered this long */
    int64_t queue;               /* requests waiting per connection; busy beyond */
    bool require_signature;      /* only signed envelopes (docs/commands.md) */
    const char *public_key;      /* PEM Ed25519 key of the signers (remote_config's if absent) */
};

/* A tag's write keys (config_tags.c), parallel to a group's tags. */
struct ib_tag_write {
    bool has_min, has_max;
    double min, max;         /* write_min / write_max, engineering units */
    int64_t min_interval_ms; /* write_interval: minimum time between two writes, 0: none */
};

#endif
