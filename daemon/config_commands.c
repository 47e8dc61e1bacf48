/* The `commands` section (docs/commands.md): the command topic, the answers' topic, the age
 * and duplicate limits, the queue bound and signed commands; checked together. */
#include <string.h>

#include "config_core.h"
#include "config_loader.h"
#include "schema.h"
#include "topic.h"

static const struct ib_schema_entry commands_entries[] = {
    {.key = "enabled",
     .type = IB_S_BOOL,
     .offset = offsetof(struct ib_commands_cfg, enabled),
     .def = "true",
     .description = "subscribe to the command topic (tags are still written only where they "
                    "say writable: true)"},
    IB_E_STR("topic", struct ib_commands_cfg, topic, "ironbridge/{gateway}/command",
             "topic template of requests (QoS 1)"),
    IB_E_STR("response_topic", struct ib_commands_cfg, response_topic,
             "ironbridge/{gateway}/command/response",
             "topic template of answers to requests that carry no MQTT 5 response topic"),
    {.key = "max_age",
     .type = IB_S_DURATION,
     .flags = IB_SF_RANGE,
     .offset = offsetof(struct ib_commands_cfg, max_age_ms),
     .def = "10s",
     .min = 100,
     .max = 3600000,
     .description = "a request older than this (by its ts, or held through a reconnect) is "
                    "refused as expired"},
    {.key = "duplicate_window",
     .type = IB_S_DURATION,
     .flags = IB_SF_RANGE,
     .offset = offsetof(struct ib_commands_cfg, duplicate_window_ms),
     .def = "5min",
     .min = 1000,
     .max = 86400000,
     .description = "ids are remembered this long: a repeat is answered with its first result"},
    IB_E_INT("queue", struct ib_commands_cfg, queue, "64", 1, 4096,
             "requests waiting per connection; more are answered busy"),
    {.key = "require_signature",
     .type = IB_S_BOOL,
     .offset = offsetof(struct ib_commands_cfg, require_signature),
     .def = "false",
     .description = "accept only requests signed with Ed25519 (ironbridge --sign-command)"},
    IB_E_STR("public_key", struct ib_commands_cfg, public_key, NULL,
             "PEM Ed25519 public key of the signers (default: remote_config.public_key)"),
};
const struct ib_schema ib_config_commands_schema = {sizeof(struct ib_commands_cfg),
                                                    sizeof commands_entries /
                                                        sizeof commands_entries[0],
                                                    commands_entries,
                                                    {0}};

void ib_loader_commands(struct ib_loader *L, struct ynode *n)
{
    struct ib_commands_cfg *c = &L->cfg->commands;
    c->public_key = ib_loader_resolve(L, c->public_key);
    const char *const keys[] = {"topic", "response_topic"};
    const char *const vals[] = {c->topic, c->response_topic};
    for (int i = 0; i < 2; i++) {
        char what[64];
        const char *e = ib_topic_check(vals[i], IB_TOPIC_GATEWAY, what, sizeof what);
        if (e)
            ib_loader_err(L, ib_loader_get(L, n, keys[i]), "commands", keys[i], "'%s': %s%s%s",
                          vals[i], e, *what ? ": " : "", what);
    }
    if (c->max_age_ms > c->duplicate_window_ms)
        ib_loader_err(L, ib_loader_get(L, n, "max_age"), "commands", "max_age",
                      "max_age must not exceed duplicate_window: a request repeated after its "
                      "id is forgotten would otherwise be applied twice");
    if (!c->require_signature)
        return;
    if (!c->public_key)
        c->public_key = L->cfg->remote.public_key;
    if (!c->public_key)
        ib_loader_err(L, n, "commands", NULL,
                      "require_signature: true needs public_key (or remote_config.public_key): "
                      "the Ed25519 key that signs the requests");
    else
        ib_loader_check_file(L, n, "commands", "public_key", c->public_key, false, false);
}
