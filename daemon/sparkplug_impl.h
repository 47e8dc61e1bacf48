/* Private to the Sparkplug edge node's files: sparkplug_node.c (the session: bdSeq, will,
 * births, commands, death), sparkplug_data.c (stored records to DDATA / DDEATH) and
 * sparkplug_pb.c (building protobuf messages). Threads: sparkplug_node.h. */
#ifndef IB_SPARKPLUG_IMPL_H
#define IB_SPARKPLUG_IMPL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "sparkplug.pb-c.h"
#include "sparkplug_node.h"
#include "util.h"

/* Sparkplug datatypes (specification: Payloads). */
enum spb_dt {
    SPB_INT32 = 3,
    SPB_INT64 = 4,
    SPB_UINT64 = 8,
    SPB_FLOAT = 9,
    SPB_DOUBLE = 10,
    SPB_BOOLEAN = 11,
    SPB_STRING = 12,
};

/* Quality property codes (docs/sparkplug.md). */
#define SPB_QUALITY_GOOD  192
#define SPB_QUALITY_BAD   0
#define SPB_QUALITY_STALE 500

/* What the node knows of a metric on the north thread: its datatype (learned from the first
 * good value: the core has no declared type) and the last sample sent, for births. */
struct spb_metric_rt {
    uint32_t datatype; /* 0: not known yet */
    bool guessed;      /* datatype was announced before a good value showed the real one */
    bool has_last;
    struct ib_sample last;
    char *str; /* backing store of last's string */
    size_t str_cap;
};

struct spb_device_rt {
    bool born; /* DBIRTH sent in this session (since the last NBIRTH) */
    bool dead; /* DDEATH sent, no DBIRTH since */
};

struct ib_spb_node {
    const struct ib_spb_cfg *cfg;
    const char *node_id;
    const struct ib_spb_device_def *devs;
    size_t n_devs;
    const struct ib_spb_metric_def *defs;
    size_t n_defs;
    struct spb_metric_rt *m;
    struct spb_device_rt *d;
    char t_nbirth[384], t_ndeath[384], t_ncmd[384], t_dcmd[384], t_dcmd_prefix[384];
    char t_state[384];
    const char *topics[4];
    _Atomic int host;        /* primary host: -1 unknown, 0 offline, 1 online */
    _Atomic int64_t host_ts; /* the timestamp of its last STATE taken */
    atomic_bool host_left;   /* offline after this session's births: leave */
    bool born;               /* NBIRTH sent in this session (north thread) */
    bool waiting_logged;
    int bdseq; /* the current session's; -1 before the first connect */
    uint8_t seq;
    uint32_t layout;               /* of the metric table: a stored record of another is skipped */
    int64_t start_ms;              /* monotonic: the node's creation, for uptime */
    int64_t session_ms;            /* wall clock: the last NBIRTH; older samples are historical */
    struct ib_buf will, out, data; /* data: the DDATA being made (sparkplug_data.c) */
    atomic_bool rebirth;
    bool retype; /* a guessed datatype proved wrong: births again before the next data */
    atomic_uint_fast64_t refused;
    ib_spb_figures_fn figures;
    void *figures_ud;
    ib_spb_write_fn writer;
    void *writer_ud;
    struct ib_north_format fmt;
};

/* sparkplug_pb.c: one message being built. */
struct spb_msg {
    Ibspb__Payload p;
    Ibspb__Metric *ms, **mp;
    Ibspb__PropertySet *ps;
    Ibspb__PropertyValue *pv, **pvp;
    char **keys;
    char (*reason)[48];
    char **strs; /* NUL-terminated copies of string values, freed with the message */
    size_t cap;
};
#define SPB_MAX_PROPS 5

int spb_msg_init(struct spb_msg *msg, size_t cap);
void spb_msg_free(struct spb_msg *msg);
/* The next metric (zeroed), or NULL when cap is reached. */
Ibspb__Metric *spb_msg_add(struct spb_msg *msg);
/* Add a String or Int32 property to the metric last added. */
void spb_prop_str(struct spb_msg *msg, const char *key, const char *v);
void spb_prop_int(struct spb_msg *msg, const char *key, int32_t v);
void spb_prop_double(struct spb_msg *msg, const char *key, double v);
/* Set the metric last added to the string (copied, NUL-terminated). */
void spb_put_string(struct spb_msg *msg, const char *p, size_t len);
/* Pack with timestamp (and seq when seq >= 0) into out. 0 or -1. */
int spb_msg_pack(struct spb_msg *msg, struct ib_buf *out, int64_t ts_ms, int seq);
/* The datatype of a good value. */
uint32_t spb_type_of(const struct ib_value *v);
/* Set the metric last added to sample s as datatype dt: a value, or is_null with the Quality
 * and reason properties for a bad or stale sample or a value that dt cannot hold. */
void spb_put_sample(struct spb_msg *msg, uint32_t dt, const struct ib_sample *s);

/* The fast path of DDATA (sparkplug_pb.c), byte for byte what protobuf-c packs for the same
 * fields: begin (the payload's timestamp), one call per metric, end (seq). spb_fast_metric
 * returns 1 when written, 0 when the sample needs the general path (not good, a string, a value
 * the datatype cannot hold: Quality properties), -1 out of memory. */
int spb_fast_begin(struct ib_buf *out, int64_t ts_ms);
int spb_fast_metric(struct ib_buf *out, uint64_t alias, int64_t ts_ms, uint32_t dt, bool hist,
                    const struct ib_sample *s);
int spb_fast_end(struct ib_buf *out, int seq);

/* sparkplug_node.c: NBIRTH and the DBIRTHs of this session (north thread). 0 or -1. */
int spb_births(struct ib_spb_node *node, struct ib_north *n);

/* sparkplug_data.c */
int spb_send_record(void *ud, struct ib_north *n, const struct ib_store_rec *r);
/* Publish the DBIRTH of device `dev` (north thread); 0 or a paho error. */
int spb_dbirth(struct ib_spb_node *node, struct ib_north *n, uint32_t dev, uint64_t rec_seq);
/* The next seq (0..255, wrapping). */
int spb_next_seq(struct ib_spb_node *node);

#endif
