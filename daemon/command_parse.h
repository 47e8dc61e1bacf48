/* The command request parser (docs/commands.md): a JSON request from outside, checked byte by
 * byte, into a fixed-size struct. Pure: no allocation, no global state, any thread. */
#ifndef IB_COMMAND_PARSE_H
#define IB_COMMAND_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "command.h"

/* The largest request accepted, in bytes. */
#define IB_CMD_MAX_REQUEST 65536
/* Room for the tag names and string values of one request (NUL-terminated each). */
#define IB_CMD_TEXT_ROOM 16384

struct ib_cmd_request {
    bool has_id; /* an id was found (also set for a malformed request, when it could be read) */
    char id[IB_CMD_MAX_ID + 1];
    char device[257];
    int64_t ts_ms; /* 0: absent */
    bool verify;
    bool is_read; /* "read": [tags] (w[i].value unused); else "write": {tag: value} */
    size_t n;
    struct ib_cmd_write w[IB_CMD_MAX_TAGS]; /* tag and string values point into text */
    char text[IB_CMD_TEXT_ROOM];
    size_t text_used;
};

/* Parse `json` (len bytes, need not be NUL-terminated). Returns 0 with `out` filled, or -1 with
 * a sentence in `err` saying what is wrong and where ("at byte 42, in write.setpoint: ...");
 * out->has_id and out->id tell whether the request can be answered then. */
int ib_command_parse(const char *json, size_t len, struct ib_cmd_request *out, char *err,
                     size_t errlen);

#endif
