/* Commands from the platform (docs/commands.md): writes and reads "now" of a device's tags,
 * checked (writable, limits, minimum interval, age, duplicate ids), run as jobs on the
 * connection's poller thread between polls, answered with one result per tag and audited.
 *
 * The entry points below are what every front end uses: the MQTT command topic
 * (command_north.c), the command line (--write / --read) and the Sparkplug DCMD path. A front
 * end gives a device name, tag/value pairs (or tag names to read) and the request's metadata;
 * the results come back once, through a callback, possibly on another thread.
 *
 * Threads: ib_command_apply_writes / ib_command_read may be called from any thread (paho's, the
 * main thread); the callback runs on the connection's poller thread after the job ran, or on
 * the caller's thread before the call returns when the request is answered at once (refused by
 * a check, duplicate, busy, unknown device, dead connection). The callback must not block: copy
 * and hand over. */
#ifndef IB_COMMAND_H
#define IB_COMMAND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <ironbridge/value.h>

/* One result per tag, as answers name them ("ok", "denied", ...: ib_command_result_name). */
enum ib_cmd_result {
    IB_CMD_OK = 0,
    IB_CMD_DENIED,          /* the tag is not writable (or the plugin refuses writes) */
    IB_CMD_OUT_OF_RANGE,    /* outside write_min/write_max, or does not fit the wire type */
    IB_CMD_BAD_TYPE,        /* a fraction for an integer, text for a number, ... */
    IB_CMD_UNKNOWN_DEVICE,  /* no device of that name */
    IB_CMD_UNKNOWN_TAG,     /* no tag of that name in the device */
    IB_CMD_EXPIRED,         /* older than max_age (by its ts, or held through a reconnect) */
    IB_CMD_DUPLICATE,       /* id seen within the window: the first result is repeated */
    IB_CMD_BUSY,            /* the connection's command queue is full, or min_interval */
    IB_CMD_TIMEOUT,         /* the device did not answer in time */
    IB_CMD_DEVICE_ERROR,    /* the device refused (exception) or answered garbage */
    IB_CMD_CONNECTION_LOST, /* the connection is down */
    IB_CMD_MALFORMED,       /* the request itself is wrong (request-level only) */
    IB_CMD__COUNT
};

/* "ok", "denied", "out_of_range", ...; never NULL. */
const char *ib_command_result_name(int result);

/* The largest number of tags in one request. */
#define IB_CMD_MAX_TAGS 64
/* The longest id (bytes) and the longest error text of a tag's result. */
#define IB_CMD_MAX_ID    128
#define IB_CMD_ERROR_LEN 160

/* One tag to write: the value in engineering units (before scaling is undone). A string value
 * points into the caller's memory, valid only during the call that takes it (it is copied). */
struct ib_cmd_write {
    const char *tag;
    struct ib_value value;
};

/* What a request says about itself. Copied by the entry points; the pointers need only be
 * valid during the call. */
struct ib_cmd_meta {
    const char *id;        /* required; at most IB_CMD_MAX_ID bytes */
    int64_t ts_ms;         /* when the requester sent it (ms since the epoch), 0: unknown */
    int64_t received_ms;   /* when it arrived (ms since the epoch) */
    const char *requester; /* who asked (MQTT 5 user property "requester"), or NULL */
    const char *source;    /* "mqtt", "cli", "sparkplug": for the journal */
    bool verify;           /* read the value back after a write and return it */
    bool stale_session;    /* arrived before the first poll of a new north session: see
                              docs/commands.md, "held through an outage" */
};

/* The result of one tag. */
struct ib_cmd_tag_result {
    char tag[257];
    uint8_t result;            /* enum ib_cmd_result */
    bool has_value;            /* value: read back (verify), or read */
    bool has_old;              /* old: the last polled value before the write */
    bool has_requested;        /* requested: the value a write asked for (engineering units) */
    struct ib_value requested; /* a string points into memory valid during the callback only */
    struct ib_value value;     /* engineering units; a string points into `text` */
    struct ib_value old;
    uint16_t code;                /* device_error: the exception code, when there is one */
    char error[IB_CMD_ERROR_LEN]; /* for a person; empty for ok */
    char text[256];               /* a string value's bytes */
};

/* A request's answer: every tag of it, in the request's order. Owned by the command module;
 * valid only during the callback. */
struct ib_cmd_answer {
    const char *id;
    const char *device;
    const struct ib_cmd_meta *meta;
    bool duplicate; /* the whole request is a repeat of an earlier id: results are the first */
    size_t n;
    const struct ib_cmd_tag_result *results;
};

typedef void (*ib_command_done_fn)(void *ud, const struct ib_cmd_answer *a);

struct ib_commands; /* the gateway's command service (one per gateway) */

/* Write tags of one device, in the given order, after the checks (docs/commands.md): each tag
 * writable, its value within write_min/write_max and min_interval, the request not older than
 * max_age and its id not seen within the duplicate window. Tags that fail a check get their
 * refusal and are not written; the others are written on the poller thread, between polls.
 * `fn` is called exactly once with the answer (see Threads above). Returns 0, or -1 (out of
 * memory: fn not called). */
int ib_command_apply_writes(struct ib_commands *c, const char *device, const struct ib_cmd_write *w,
                            size_t n, const struct ib_cmd_meta *meta, ib_command_done_fn fn,
                            void *ud);

/* Read tags of one device from the device now (not the last poll), through the group's read;
 * the same age and duplicate checks. `fn` is called exactly once. 0, or -1 (fn not called). */
int ib_command_read(struct ib_commands *c, const char *device, const char *const *tags, size_t n,
                    const struct ib_cmd_meta *meta, ib_command_done_fn fn, void *ud);

/* Tag results given since start, per result (ok, denied, ...): counts[IB_CMD__COUNT].
 * Any thread; atomic reads, costs the pollers nothing. */
void ib_command_counters(const struct ib_commands *c, uint64_t counts[IB_CMD__COUNT]);

/* --write DEVICE.TAG=VALUE (is_read false) or --read DEVICE.TAG: the command through the same
 * checks, run on the calling thread (main; the gateway created, not started), its answer
 * printed as JSON to `out`. Returns 0 when every tag is ok, 4 when refused or failed, 2 for a
 * SPEC that names no device (a message on stderr). */
#include <stdio.h>
struct ib_gateway;
int ib_command_cli(struct ib_gateway *gw, const char *spec, bool is_read, FILE *out);

#endif
