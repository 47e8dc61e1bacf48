/* The JSON answers to commands (docs/commands.md): one per request, a result per tag, or the
 * request-level refusal of a malformed or unsigned request. Pure: any thread. */
#ifndef IB_COMMAND_ANSWER_H
#define IB_COMMAND_ANSWER_H

#include <stdint.h>

#include "command.h"
#include "util.h"

/* {"id":..,"device":..,"ts":now,"ok":bool,["duplicate":true,]"results":{tag:{"result":..,
 * ["v":..,]["code":N,]["error":..]},..}} into b (reset first). 0 or -1 (no memory). */
int ib_command_answer_json(struct ib_buf *b, const struct ib_cmd_answer *a, int64_t now_ms);

/* {"id":..,["device":..,]"ts":now,"ok":false,"result":"malformed"|"denied","error":..}. */
int ib_command_refusal_json(struct ib_buf *b, const char *id, const char *device, int result,
                            const char *error, int64_t now_ms);

#endif
