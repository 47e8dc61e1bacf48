/* OPC UA plugin: one instance (one connection to one server): the resolved tags with their
 * parsed NodeIds, the channel and session, and the failure episodes that decide what is
 * logged. Built by create() on the main thread (resolve.c), used by the poller-thread
 * callbacks only (connect.c, read.c, write.c), freed by destroy(). */
#ifndef IB_OPCUA_INSTANCE_H
#define IB_OPCUA_INSTANCE_H

#include <stdbool.h>
#include <stdint.h>

#include <ironbridge/ironbridge.h>

#include "channel.h"
#include "params.h"
#include "secure.h"
#include "session.h"
#include "value.h"

#define OP_MAX_PUBLISH 5
#define OP_MAX_ACKS    64

struct op_tag {
    const char *name;
    struct ua_nodeid node;
    struct ua_str nsu;    /* nsu= namespace URI (in the config), len -1 when none */
    uint8_t *bytes;       /* decoded b= identifier (owned) */
    struct ua_text text;  /* string values (owned) */
    struct ib_episode ep; /* bad StatusCodes of this tag */
    bool writable;
};

/* The subscription of a group in mode subscribe (sub.c). */
struct op_sub {
    uint32_t dev, grp;
    uint32_t id;               /* the server's SubscriptionId; 0: to be created */
    double interval_ms;        /* revised publishing interval */
    uint32_t keepalive;        /* revised max keep-alive count */
    uint32_t last_seq;         /* the last data message's sequence number (0: none yet) */
    uint32_t gap_from, gap_to; /* sequence numbers to ask again with Republish (0: none) */
    int64_t heard_ms;          /* monotonic: its last Publish response (data or keep-alive) */
    int64_t retry_ms;          /* monotonic: when to try creating it again after a failure */
    struct ib_sample *cache;   /* the latest sample per tag (owned; strings in the tags' text) */
    uint32_t *mark;            /* per tag: the message (gen) that last set it (owned) */
    uint32_t gen;              /* messages applied, never 0 */
    bool dirty;                /* cache changed since it was last pushed */
    bool recreate;             /* the server reported it gone (StatusChangeNotification) */
    bool has_data;             /* a data message arrived since it was created */
    uint32_t recreated;        /* times re-created on this connection after silence or loss */
    struct ib_episode ep;      /* failures to create it */
};

struct op_group {
    const char *name;
    uint32_t n_tags;
    struct op_tag *tags;
    struct ua_nodeid *nodes; /* the tags' NodeIds in order, for Read (owned) */
    uint32_t interval_ms;
    const struct op_group_params *gp; /* the group keys (the daemon's); NULL: mode read */
    struct op_sub *sub;               /* mode subscribe (owned), else NULL */
};

struct op_device {
    const char *name;
    uint32_t n_groups;
    struct op_group *groups;
};

struct op_instance {
    const struct ib_host *host;
    struct ib_host_ctx *ctx;
    const struct op_connection_params *p;
    uint32_t n_devices;
    struct op_device *devices;
    struct ua_channel ch;
    struct ua_session session;
    struct ua_session_config scfg;
    struct ua_sec sec; /* own key and certificate (loaded at the first open), peer, keys */
    char application_uri[320];
    char pki_dir[1024];
    char password[512];    /* read from password_file at each connect; wiped after use */
    uint32_t max_per_read; /* the configured limit, lowered by the server's */
    bool connected;
    bool has_nsu; /* some tag names its namespace by URI */
    uint32_t renewals_logged;
    struct ib_episode open_ep;
    struct ib_episode read_ep;
    /* subscriptions (sub.c): Publish requests outstanding, acknowledgements to send */
    uint32_t n_subs;
    uint32_t pub_rids[OP_MAX_PUBLISH];
    uint32_t n_pub;
    struct {
        uint32_t sub, seq;
    } acks[OP_MAX_ACKS];
    uint32_t n_acks;
    bool may_push;     /* inside read_group() or wait_events(): push_samples allowed */
    bool session_lost; /* a Publish response said the session or channel is gone */
};

/* resolve.c: builds the instance from the configuration; config errors go to the host. */
int op_resolve(struct op_instance *in, const struct ib_connection_config *cfg);
void op_instance_free(struct op_instance *in);

/* connect.c */
int op_connect(struct op_instance *in);
void op_disconnect(struct op_instance *in);

/* read.c, write.c */
int op_read_group(struct op_instance *in, uint32_t device, uint32_t group,
                  struct ib_sample *samples);
int op_write_tag(struct op_instance *in, uint32_t device, uint32_t group, uint32_t tag,
                 const struct ib_value *value);

/* sub.c: mode subscribe. op_sub_init at create, op_sub_reset at every connect and disconnect;
 * op_sub_read for read_group() of a subscribe group; op_sub_wait for wait_events(). */
void op_sub_init(struct op_instance *in);
void op_sub_reset(struct op_instance *in);
int op_sub_read(struct op_instance *in, uint32_t device, uint32_t group, struct ib_sample *samples);
int op_sub_wait(struct op_instance *in, int64_t deadline_ms);

/* The cause code of a failure for the episodes: the StatusCode when there is one, else the
 * ib_err. */
static inline long op_cause(const struct op_instance *in, int rc)
{
    return in->ch.last_status ? (long)in->ch.last_status : rc;
}

#endif
