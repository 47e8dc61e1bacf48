/* Decoding what a Sparkplug host sends an edge node: NCMD and DCMD payloads (protobuf), read
 * metric by metric. Pure functions of their input (fuzzed: tests/fuzz/fuzz_sparkplug.c). */
#ifndef IB_SPARKPLUG_CMD_H
#define IB_SPARKPLUG_CMD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <ironbridge/value.h>

/* One metric of a command: its name (or NULL), its alias (has_alias), and its value converted
 * to the core's value union (IB_V_NONE when null or of a type we do not write). A string value
 * points into the decoded message, valid during the callback only. */
struct ib_spb_cmd_metric {
    const char *name;
    bool has_alias;
    uint64_t alias;
    uint32_t datatype;
    struct ib_value value;
    int64_t payload_ts; /* the payload's timestamp (ms since the epoch), 0 when absent */
};

/* Called once per metric; return non-zero to stop. */
typedef int (*ib_spb_cmd_fn)(void *ud, const struct ib_spb_cmd_metric *m);

/* Decode a NCMD or DCMD payload of `len` bytes and call fn for each metric. Returns the number
 * of metrics, or -1 when the payload is not a Sparkplug payload (protobuf-c rejects it). */
int ib_spb_cmd_decode(const void *payload, size_t len, ib_spb_cmd_fn fn, void *ud);

/* NCMD: true when it asks for `Node Control/Rebirth` = true. -1 when undecodable. */
int ib_spb_cmd_is_rebirth(const void *payload, size_t len);

/* A primary host's STATE payload (Sparkplug 3.0: JSON {"online":BOOL,"timestamp":MS}): 0 with
 * both found at the top level, else -1. Every length is checked; other keys are skipped. */
int ib_spb_state_parse(const char *p, size_t len, bool *online, int64_t *ts);

#endif
