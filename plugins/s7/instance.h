/* S7 plugin: an instance (one connection to one PLC) as create() builds it, shared by s7.c
 * (descriptor, create, open), poll.c (read_group) and write.c (write_tag). Private. */
#ifndef IB_S7_INSTANCE_H
#define IB_S7_INSTANCE_H

#include <stdbool.h>
#include <stdint.h>

#include <ironbridge/ironbridge.h>

#include "address.h"
#include "planner.h"
#include "session.h"
#include "types.h"

/* Parallel jobs the plugin ever keeps in flight (parallel_jobs' maximum). */
#define S7_MAX_JOBS 8

struct s7_tag {
    const char *name;
    struct s7_address addr;
    uint8_t type;   /* enum s7_type */
    uint8_t format; /* enum s7_time_format */
    bool writable;
    uint32_t length; /* string, wstring: declared characters */
    uint32_t size;   /* bytes read */
    uint32_t slot;   /* offset in the group buffer */
    bool alone;      /* read as an item of its own: its address was refused in a shared span */
    char *text;      /* text values: text_cap bytes the sample points into */
    uint32_t text_cap;
    /* what was last logged about it, so a repeating failure is logged once */
    uint8_t logged_reason;
    uint16_t logged_code;
};

/* Per chunk of the plan: the outcome of the current poll. */
struct s7_chunk_state {
    uint8_t reason; /* enum ib_reason; IB_R_NONE: data good */
    uint16_t code;  /* S7 return code, or error class << 8 | code */
};

struct s7_group {
    const char *name;
    uint32_t n_tags;
    struct s7_tag *tags;
    struct s7_plan plan;
    uint8_t *buf;                 /* plan.buf_size bytes */
    struct s7_chunk_state *state; /* plan.n_chunks */
    int64_t *ts;                  /* plan.n_requests: when each answer arrived */
};

struct s7_device {
    const char *name;
    uint32_t max_gap, max_items;
    uint32_t n_groups;
    struct s7_group *groups;
};

struct s7_instance {
    const struct ib_host *host;
    struct ib_host_ctx *ctx;
    struct s7_session session;
    struct ib_episode open_ep; /* failures to connect */
    struct ib_episode io_ep;   /* failures of an open connection */
    bool opened_once;
    uint32_t n_devices;
    struct s7_device *devices;
};

#define S7_LOG(in, level, dev, tag, ...)                                                           \
    (in)->host->log((in)->ctx, (level), (dev), (tag), __VA_ARGS__)

/* poll.c: one poll of a group; the read_group contract. */
int s7_poll_group(struct s7_instance *in, uint32_t device, uint32_t group,
                  struct ib_sample *samples);
/* poll.c: (re)build a group's spans and buffers from its tags (no packing yet). 0 or
 * IB_ERR_NOMEM. */
int s7_group_build(struct s7_group *grp, uint32_t max_gap);
/* poll.c: (re)pack every group for the negotiated PDU size. 0 or IB_ERR_NOMEM. */
int s7_pack_all(struct s7_instance *in, uint32_t pdu);
/* poll.c: an ib_reason for an ib_err of the session. */
uint8_t s7_reason_of(int err);

/* write.c: the write_tag contract. */
int s7_write(struct s7_instance *in, uint32_t device, uint32_t group, uint32_t tag,
             const struct ib_value *value);

#endif
