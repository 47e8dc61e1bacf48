/* The north's incoming messages (paho's threads): a payload format's own topics first, then the
 * subscription (ib_north_set_subscription) and the commands (ib_north_set_requests) with their
 * MQTT 5 properties. */
#include "north_impl.h"

#include <string.h>

/* A string property of an MQTT 5 message, NUL-terminated into buf, or NULL. */
static const char *prop_string(MQTTProperties *props, enum MQTTPropertyCodes code, char *buf,
                               size_t len)
{
    MQTTProperty *p = MQTTProperties_getProperty(props, code);
    if (!p || p->value.data.len < 0 || (size_t)p->value.data.len >= len)
        return NULL;
    memcpy(buf, p->value.data.data, (size_t)p->value.data.len);
    buf[p->value.data.len] = '\0';
    return buf;
}

/* The user property "requester" of an MQTT 5 message, into buf, or NULL. */
static const char *prop_requester(MQTTProperties *props, char *buf, size_t len)
{
    for (int i = 0; i < props->count; i++) {
        MQTTProperty *p = &props->array[i];
        if (p->identifier != MQTTPROPERTY_CODE_USER_PROPERTY || p->value.data.len != 9 ||
            memcmp(p->value.data.data, "requester", 9) != 0 || p->value.value.len < 0 ||
            (size_t)p->value.value.len >= len)
            continue;
        memcpy(buf, p->value.value.data, (size_t)p->value.value.len);
        buf[p->value.value.len] = '\0';
        return buf;
    }
    return NULL;
}

static void deliver_request(struct ib_north *n, MQTTAsync_message *m)
{
    char rt[512], who[128];
    struct ib_north_req r = {
        .payload = m->payload, .len = (size_t)m->payloadlen, .retained = m->retained != 0};
    if (n->cfg->version == IB_MQTT_V5) {
        r.response_topic =
            prop_string(&m->properties, MQTTPROPERTY_CODE_RESPONSE_TOPIC, rt, sizeof rt);
        MQTTProperty *c =
            MQTTProperties_getProperty(&m->properties, MQTTPROPERTY_CODE_CORRELATION_DATA);
        if (c && c->value.data.len > 0) {
            r.correlation = c->value.data.data;
            r.correlation_len = (size_t)c->value.data.len;
        }
        r.requester = prop_requester(&m->properties, who, sizeof who);
    }
    n->req_fn(n->req_ud, &r);
}

int north_on_message(void *ctx, char *topic, int topic_len, MQTTAsync_message *m)
{
    struct ib_north *n = ctx;
    size_t tl = topic_len > 0 ? (size_t)topic_len : strlen(topic);
    if (n->fmt && m->payloadlen >= 0 && tl < 512) {
        char t[512]; /* paho's topic is not NUL-terminated when topic_len > 0 */
        memcpy(t, topic, tl);
        t[tl] = '\0';
        if (n->fmt->message(n->fmt->ud, t, m->payload, (size_t)m->payloadlen)) {
            MQTTAsync_freeMessage(&m);
            MQTTAsync_free(topic);
            return 1;
        }
    }
    if (n->sub_fn && tl == strlen(n->sub_topic) && memcmp(topic, n->sub_topic, tl) == 0 &&
        m->payloadlen >= 0)
        n->sub_fn(n->sub_ud, m->payload, (size_t)m->payloadlen);
    else if (n->req_fn && tl == strlen(n->req_topic) && memcmp(topic, n->req_topic, tl) == 0 &&
             m->payloadlen >= 0)
        deliver_request(n, m);
    MQTTAsync_freeMessage(&m);
    MQTTAsync_free(topic);
    return 1;
}
