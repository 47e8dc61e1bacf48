/* Modbus plugin: an instance (one connection) as create() builds it (resolve.c), and the calls
 * its parts make on it: modbus.c (callbacks), poll.c (reads), write.c (writes), transact.h
 * (requests), connection.c (opening and losing the link), errors.h (what an errno means).
 * Private to the plugin. All of it runs on the connection's poller thread, except create and
 * destroy (the daemon's main thread, before the poller starts and after it stopped). */
#ifndef IB_MODBUS_INSTANCE_H
#define IB_MODBUS_INSTANCE_H

#include <stdbool.h>
#include <stdint.h>

#include <ironbridge/ironbridge.h>
#include <ironbridge/log.h>

#include "decode.h"
#include "errors.h"
#include "link.h"
#include "pipe.h"
#include "planner.h"
#include "transact.h"

/* A refused tag (the device answers it alone with an exception) is tried again alone every this
 * many polls of its group. */
#define MB_REFUSED_RECHECK_POLLS 32u

struct mb_tag {
    const char *name;
    uint32_t address;
    uint32_t data;  /* offset of its first register (or bit) in the group's buffer */
    uint16_t width; /* registers, or 1 for a bit of a bit table */
    uint8_t table;  /* enum mb_table */
    uint8_t type;   /* enum mb_type */
    uint8_t order;  /* enum mb_order */
    uint8_t bit;    /* MB_TYPE_BIT: which bit, 0 = least significant */
    bool writable;
    bool verify_write;
    struct ib_episode decode_ep;  /* its registers hold NaN or infinity */
    struct ib_episode refusal_ep; /* the device refuses it when it is read alone */
    char *text; /* MB_TYPE_STRING: MB_STRING_CAP(width) bytes the sample points into */
};

/* One request as it is read now. The group starts with the planner's requests; a block that the
 * device refuses is split (bisected) into the blocks it accepts and the single tags it refuses,
 * and the split is kept. */
struct mb_req {
    uint32_t table; /* enum mb_table */
    uint32_t start, count;
    uint32_t buf;            /* offset of `start` in the group's buffer */
    uint32_t first, n_items; /* tags order[first .. first + n_items - 1] of the plan */
    bool refused;            /* a single tag the device refuses; re-checked now and then */
    uint16_t refused_code;
    /* outcome in the current poll */
    int64_t ts_ms;
    uint8_t reason; /* enum ib_reason */
    uint16_t code;
};

struct mb_group {
    const char *name;
    uint32_t interval_ms;
    uint32_t n_tags;
    struct mb_tag *tags; /* config order */
    struct mb_plan plan; /* the planner's requests: what the group reads when nothing refuses */
    uint32_t n_reqs;
    struct mb_req *reqs;    /* as read now; room for plan.n_requests, or for n_tags once scratch
                               is made (a block was refused: bisection may split it per tag) */
    struct mb_req *scratch; /* NULL, or room for n_tags: bisection results */
    uint32_t *req_of;       /* tag -> its request in reqs */
    uint16_t *regs;         /* plan.n_registers */
    uint8_t *bits;          /* plan.n_bits, one byte per bit as libmodbus stores them */
    uint32_t polls;
    bool split; /* reqs differ from the plan */
    /* max_outstanding > 1: the pipelined reads of a poll, one per request (NULL until then) */
    struct mb_pipe_item *batch;
    uint32_t batch_cap;
    /* Its reads fail (cause: reason << 16 | code), logged when that starts, changes, ends. */
    struct ib_episode ep;
};

struct mb_device {
    const char *name;
    int unit_id;
    uint32_t timeout_ms; /* effective response timeout */
    uint32_t retries;
    uint32_t pause_ms;
    uint32_t backoff_max_ms;
    bool write_multiple;
    uint32_t n_groups;
    struct mb_group *groups;
    /* Back-off of a device that stopped answering. */
    uint32_t failed_polls;       /* consecutive polls without an answer */
    struct ib_episode silent_ep; /* it does not answer (cause: reason << 16 | code) */
    int64_t retry_at_ms;         /* monotonic: no I/O before this */
    uint8_t down_reason;         /* what its bad samples say meanwhile */
    uint16_t down_code;
};

struct mb_instance {
    const struct ib_host *host;
    struct ib_host_ctx *ctx;
    struct mb_link *link;
    uint32_t timeout_ms;
    bool close_after_poll;
    bool opened_once;
    /* Opening fails (cause: errno). Ends at the next open that succeeds. */
    struct ib_episode open_ep;
    /* An open link is lost (cause: errno). Ends only when a connection outlives a poll: a
     * device that closes after every answer is one episode, however often it is reopened. */
    struct ib_episode loss_ep;
    uint32_t polls_on_link;  /* polls that began on the link since it was opened */
    int64_t last_request_us; /* when the last request ended (pause_between_requests_ms) */
    char why[160]; /* what was wrong with the last failed request's response ("" unknown) */
    /* max_outstanding: as configured, and as used now (1 after a device mishandled more) */
    uint32_t max_outstanding, outstanding;
    struct mb_pipe pipe;                  /* the requests in flight (pipeline.c) */
    uint64_t late_logged, unknown_logged; /* the pipe's counters as last logged */
    uint32_t n_devices;
    struct mb_device *devices;
};

#define MB_LOG(in, level, dev, tag, ...)                                                           \
    (in)->host->log((in)->ctx, (level), (dev), (tag), __VA_ARGS__)

/* connection.c */
/* Make sure the link is open: 0, or IB_ERR_CONNECTION. With close_after_poll a closed link is
 * opened here (a failure is logged); otherwise a closed link was lost and is the daemon's to
 * reopen. */
int mb_ensure_open(struct mb_instance *in);
/* Opening the link failed with errno err: logged when that starts, changes or is reminded. */
void mb_log_open_error(struct mb_instance *in, int err);
/* Opening the link succeeded: ends an open failure episode (logged), and says it at `level`
 * otherwise (routine reopenings inside a loss episode only at debug level; level < 0: not). */
void mb_note_opened(struct mb_instance *in, int level);
/* A poll ended on a link that is still open (or closed by close_after_poll) and was not lost:
 * ends a loss episode once a connection has outlived a poll. */
void mb_note_link_held(struct mb_instance *in);
/* The link was lost with errno e: logged when that starts, changes or is reminded. */
void mb_note_connection_lost(struct mb_instance *in, const struct mb_device *dev, int e);

/* A request to a device through the instance's link, as transact.h does it; a device in
 * back-off gets one try: it is probed, not waited for. */
static inline struct mb_request_ctx mb_request_of(struct mb_instance *in,
                                                  const struct mb_device *dev)
{
    return (struct mb_request_ctx){.link = in->link,
                                   .unit = dev->unit_id,
                                   .timeout_ms = dev->timeout_ms,
                                   .retries = dev->failed_polls > 0 ? 0 : dev->retries,
                                   .pause_ms = dev->pause_ms,
                                   .last_request_us = &in->last_request_us,
                                   .why = in->why,
                                   .whylen = sizeof in->why};
}

static inline int mb_transact_read(struct mb_instance *in, const struct mb_device *dev,
                                   unsigned table, uint32_t addr, uint32_t count, void *dest,
                                   int *e)
{
    struct mb_request_ctx c = mb_request_of(in, dev);
    return mb_request_read(&c, table, addr, count, dest, e);
}

static inline int mb_transact_write(struct mb_instance *in, const struct mb_device *dev, uint8_t fc,
                                    uint32_t addr, uint32_t count, const void *data, int *e)
{
    struct mb_request_ctx c = mb_request_of(in, dev);
    return mb_request_write(&c, fc, addr, count, data, e);
}

/* pipeline.c */
/* Read the group's requests r with batch[r] filled (count 0: skipped) with up to in->outstanding
 * in flight; logs dropped answers at debug level and falls back to one request at a time when
 * the device mishandled several in flight. */
void mb_pipeline_read(struct mb_instance *in, const struct mb_device *dev, struct mb_group *grp);
/* The device showed that it mishandles several requests in flight (`what` it did): from now on
 * one request at a time on this connection, logged once (until the connection is made anew: a
 * restart, or a reload that changes it). */
void mb_pipeline_fall_back(struct mb_instance *in, const struct mb_device *dev, const char *what);

/* poll.c */
int mb_poll_group(struct mb_instance *in, uint32_t device, uint32_t group,
                  struct ib_sample *samples);
/* Reset a group's requests to the plan (after a refused tag came back). */
void mb_group_restore_plan(struct mb_group *grp);

/* write.c */
int mb_write(struct mb_instance *in, uint32_t device, uint32_t group, uint32_t tag,
             const struct ib_value *value);

#endif
