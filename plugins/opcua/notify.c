/* OPC UA plugin: the subscription messages' pure codec (OPC 10000-4 §5.13, §7.22, §7.25;
 * OPC 10000-6 for the encodings): PublishResponse / NotificationMessage, DataChangeNotification,
 * StatusChangeNotification, DataChangeFilter. Every length is checked before it is read. */
#include "notify.h"

/* One notification's body: validated (and its values handed over when cbs is not NULL). */
static int one_notification(const struct ua_extobj *eo, const struct ua_notif_cbs *cbs,
                            uint32_t *values)
{
    if (eo->type.ns != 0 || eo->type.kind != UA_NID_NUMERIC)
        return UA_OK; /* not ours to know: skipped */
    uint32_t id = eo->type.id.num;
    if (id != UA_ID_DATA_CHANGE_NOTIFICATION && id != UA_ID_STATUS_CHANGE_NOTIFICATION)
        return UA_OK; /* EventNotificationList and others: skipped */
    if (eo->encoding != 1 || eo->body.len < 0)
        return UA_E_TYPE;
    struct ua_cur c;
    ua_cur_init(&c, eo->body.ptr, (size_t)eo->body.len);
    if (id == UA_ID_STATUS_CHANGE_NOTIFICATION) {
        uint32_t status = ua_get_u32(&c);
        struct ua_diaginfo di;
        ua_get_diaginfo(&c, &di);
        if (c.err == UA_OK && cbs && cbs->status)
            cbs->status(cbs->arg, status);
        return c.err;
    }
    int32_t n = ua_get_array_len(&c, 5); /* ClientHandle + DataValue mask */
    for (int32_t i = 0; i < n && c.err == UA_OK; i++) {
        uint32_t handle = ua_get_u32(&c);
        struct ua_datavalue dv;
        ua_get_datavalue(&c, &dv);
        if (c.err == UA_OK && cbs && cbs->change) {
            cbs->change(cbs->arg, handle, &dv);
            (*values)++;
        }
    }
    int32_t nd = ua_get_array_len(&c, 1); /* DiagnosticInfos */
    for (int32_t i = 0; i < nd && c.err == UA_OK; i++) {
        struct ua_diaginfo di;
        ua_get_diaginfo(&c, &di);
    }
    return c.err;
}

static int walk(const uint8_t *data, size_t len, int32_t n, const struct ua_notif_cbs *cbs,
                uint32_t *values)
{
    struct ua_cur c;
    ua_cur_init(&c, data, len);
    for (int32_t i = 0; i < n; i++) {
        struct ua_extobj eo;
        ua_get_extobj(&c, &eo);
        if (c.err != UA_OK)
            return c.err;
        int e = one_notification(&eo, cbs, values);
        if (e != UA_OK)
            return e;
    }
    return UA_OK;
}

int ua_notif_parse(struct ua_cur *c, bool publish, struct ua_notif_msg *m)
{
    *m = (struct ua_notif_msg){0};
    if (publish) {
        m->sub_id = ua_get_u32(c);
        int32_t n = ua_get_array_len(c, 4);
        for (int32_t i = 0; i < n && c->err == UA_OK; i++) {
            uint32_t s = ua_get_u32(c);
            if (m->n_avail < UA_MAX_AVAIL)
                m->avail[m->n_avail++] = s;
        }
        m->more = ua_get_bool(c);
    }
    m->seq = ua_get_u32(c);
    m->publish_time = ua_get_i64(c);
    m->n_data = ua_get_array_len(c, 3); /* ExtensionObject: NodeId (>= 2) + encoding byte */
    if (c->err != UA_OK)
        return c->err;
    m->data = c->p;
    struct ua_extobj eo;
    for (int32_t i = 0; i < m->n_data && c->err == UA_OK; i++)
        ua_get_extobj(c, &eo);
    if (c->err != UA_OK)
        return c->err;
    m->data_len = (size_t)(c->p - m->data);
    if (publish) { /* Results, DiagnosticInfos */
        int32_t nr = ua_get_array_len(c, 4);
        for (int32_t i = 0; i < nr && c->err == UA_OK; i++)
            ua_get_u32(c);
        int32_t nd = ua_get_array_len(c, 1);
        for (int32_t i = 0; i < nd && c->err == UA_OK; i++) {
            struct ua_diaginfo di;
            ua_get_diaginfo(c, &di);
        }
        if (c->err != UA_OK)
            return c->err;
    }
    uint32_t none = 0;
    return walk(m->data, m->data_len, m->n_data, NULL, &none);
}

uint32_t ua_notif_each(const struct ua_notif_msg *m, const struct ua_notif_cbs *cbs)
{
    uint32_t values = 0;
    walk(m->data, m->data_len, m->n_data, cbs, &values);
    return values;
}

void ua_put_datachange_filter(struct ua_buf *b, uint32_t deadband_type, double value)
{
    struct ua_nodeid none = ua_nid_num(0, 0);
    if (deadband_type == 0) {
        ua_put_nodeid(b, &none);
        ua_put_u8(b, 0);
        return;
    }
    struct ua_nodeid t = ua_nid_num(0, UA_ID_DATA_CHANGE_FILTER);
    ua_put_nodeid(b, &t);
    ua_put_u8(b, 1);
    ua_put_i32(b, 4 + 4 + 8);
    ua_put_u32(b, 1); /* DataChangeTrigger StatusValue */
    ua_put_u32(b, deadband_type);
    ua_put_double(b, value);
}

int ua_datachange_filter_parse(struct ua_cur *c, uint32_t *trigger, uint32_t *type, double *value)
{
    *trigger = ua_get_u32(c);
    *type = ua_get_u32(c);
    *value = ua_get_double(c);
    if (c->err == UA_OK && (*trigger > 2 || *type > 2))
        c->err = UA_E_RANGE;
    return c->err;
}
