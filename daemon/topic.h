/* MQTT topic templates: {gateway}, {connection}, {device}, {group} expanded from names.
 * Templates are checked when the configuration loads and expanded once per group. */
#ifndef IB_TOPIC_H
#define IB_TOPIC_H

#include <stddef.h>

struct ib_topic_vars {
    const char *gateway, *connection, *device, *group, *tag;
};

/* Check a template: placeholders known and allowed (`allowed` is a bitmask of IB_TOPIC_*), no
 * MQTT wildcards, not empty, no empty leading level. Returns NULL when valid, else a static
 * message (the offending placeholder is copied into `what` if not NULL). */
enum {
    IB_TOPIC_GATEWAY = 1,
    IB_TOPIC_CONNECTION = 2,
    IB_TOPIC_DEVICE = 4,
    IB_TOPIC_GROUP = 8,
    IB_TOPIC_TAG = 16,
};
const char *ib_topic_check(const char *tmpl, unsigned allowed, char *what, size_t whatlen);

/* Expand into out[len]; returns the length, or -1 if it does not fit or a variable is NULL. */
int ib_topic_expand(const char *tmpl, const struct ib_topic_vars *v, char *out, size_t len);

#endif
