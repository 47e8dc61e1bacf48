/* OPC UA plugin: the subscription messages' pure codec (notify.c): the PublishResponse and
 * NotificationMessage bodies, DataChangeNotification and StatusChangeNotification decoding,
 * and the DataChangeFilter encoding. Decoding allocates nothing and checks every length; a
 * message is validated whole before any callback runs, so a malformed one yields no value.
 * Pure, any thread. */
#ifndef IB_OPCUA_NOTIFY_H
#define IB_OPCUA_NOTIFY_H

#include <stdbool.h>
#include <stdint.h>

#include "ua.h"

enum {
    UA_ID_CREATE_MONITORED_ITEMS_REQ = 751,
    UA_ID_CREATE_MONITORED_ITEMS_RESP = 754,
    UA_ID_CREATE_SUBSCRIPTION_REQ = 787,
    UA_ID_CREATE_SUBSCRIPTION_RESP = 790,
    UA_ID_PUBLISH_REQ = 826,
    UA_ID_PUBLISH_RESP = 829,
    UA_ID_REPUBLISH_REQ = 832,
    UA_ID_REPUBLISH_RESP = 835,
    UA_ID_DELETE_SUBSCRIPTIONS_REQ = 847,
    UA_ID_DELETE_SUBSCRIPTIONS_RESP = 850,
    UA_ID_DATA_CHANGE_FILTER = 724,
    UA_ID_DATA_CHANGE_NOTIFICATION = 811,
    UA_ID_STATUS_CHANGE_NOTIFICATION = 820,
    UA_ID_EVENT_NOTIFICATION_LIST = 916,
};

/* Most sequence numbers of AvailableSequenceNumbers kept (the rest are validated, skipped). */
#define UA_MAX_AVAIL 32

/* A NotificationMessage, with the PublishResponse fields around it when it came in one. Points
 * into the message buffer. */
struct ua_notif_msg {
    uint32_t sub_id; /* PublishResponse only */
    bool more;       /* PublishResponse only */
    uint32_t n_avail;
    uint32_t avail[UA_MAX_AVAIL];
    uint32_t seq;
    int64_t publish_time;
    int32_t n_data;      /* NotificationData ExtensionObjects; 0: a keep-alive */
    const uint8_t *data; /* the first of them */
    size_t data_len;     /* bytes of all of them */
};

/* Called for each monitored item value of a DataChangeNotification (dv valid during the
 * call), and for each StatusChangeNotification's status. */
struct ua_notif_cbs {
    void (*change)(void *arg, uint32_t client_handle, const struct ua_datavalue *dv);
    void (*status)(void *arg, uint32_t status);
    void *arg;
};

/* Parses a PublishResponse body after its ResponseHeader (publish = true) or a
 * RepublishResponse's NotificationMessage (publish = false), validating every notification in
 * it. 0, or a UA_E_* code. */
int ua_notif_parse(struct ua_cur *c, bool publish, struct ua_notif_msg *m);

/* Hands the notifications of a parsed message to the callbacks, in order; EventNotificationLists
 * and unknown types are skipped. Returns how many values were handed over. */
uint32_t ua_notif_each(const struct ua_notif_msg *m, const struct ua_notif_cbs *cbs);

/* Appends a MonitoringParameters Filter: the null ExtensionObject for deadband_type 0, else a
 * DataChangeFilter (trigger StatusValue) with deadband_type 1 absolute / 2 percent. */
void ua_put_datachange_filter(struct ua_buf *b, uint32_t deadband_type, double value);

/* Decodes a DataChangeFilter body (for the fuzz target and tests): 0 or a UA_E_* code. */
int ua_datachange_filter_parse(struct ua_cur *c, uint32_t *trigger, uint32_t *type, double *value);

#endif
