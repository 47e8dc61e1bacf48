/* MQTT topic templates: validation at load time, expansion per group.
 * A topic never contains wildcards; names that would inject levels are refused by the config. */
#include "topic.h"

#include <stdio.h>
#include <string.h>

static const struct {
    const char *name;
    unsigned bit;
} vars[] = {
    {"gateway", IB_TOPIC_GATEWAY}, {"connection", IB_TOPIC_CONNECTION},
    {"device", IB_TOPIC_DEVICE},   {"group", IB_TOPIC_GROUP},
    {"tag", IB_TOPIC_TAG},
};

static int var_index(const char *p, size_t n)
{
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++)
        if (strlen(vars[i].name) == n && memcmp(vars[i].name, p, n) == 0)
            return (int)i;
    return -1;
}

const char *ib_topic_check(const char *t, unsigned allowed, char *what, size_t whatlen)
{
    if (what && whatlen)
        what[0] = '\0';
    if (!t || !*t)
        return "the topic is empty";
    if (strchr(t, '+') || strchr(t, '#'))
        return "a topic to publish to must not contain the wildcards '+' or '#'";
    for (const char *p = t; *p; p++) {
        if (*p == '}')
            return "unbalanced '}'";
        if (*p != '{')
            continue;
        const char *e = strchr(p, '}');
        if (!e)
            return "unbalanced '{'";
        int i = var_index(p + 1, (size_t)(e - p - 1));
        if (what && whatlen)
            snprintf(what, whatlen, "%.*s", (int)(e - p + 1), p);
        if (i < 0)
            return "unknown placeholder (known: {gateway}, {connection}, {device}, {group}, "
                   "{tag})";
        if (!(vars[i].bit & allowed))
            return "placeholder not allowed here";
        if (what && whatlen)
            what[0] = '\0';
        p = e;
    }
    return NULL;
}

int ib_topic_expand(const char *t, const struct ib_topic_vars *v, char *out, size_t len)
{
    size_t o = 0;
    for (const char *p = t; *p; p++) {
        const char *val = NULL;
        size_t vl = 1;
        if (*p == '{') {
            const char *e = strchr(p, '}');
            int i = e ? var_index(p + 1, (size_t)(e - p - 1)) : -1;
            if (i < 0)
                return -1;
            const char *vals[] = {v->gateway, v->connection, v->device, v->group, v->tag};
            val = vals[i];
            if (!val)
                return -1;
            vl = strlen(val);
            p = e;
        } else {
            val = p;
        }
        if (o + vl + 1 > len)
            return -1;
        memcpy(out + o, val, vl);
        o += vl;
    }
    if (o >= len)
        return -1;
    out[o] = '\0';
    return (int)o;
}
