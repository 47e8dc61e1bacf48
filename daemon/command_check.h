/* The checks of one tag's write that need no device (docs/commands.md): writable, the value's
 * type, write_min/write_max in engineering units, and the scaling undone exactly. Pure: any
 * thread. */
#ifndef IB_COMMAND_CHECK_H
#define IB_COMMAND_CHECK_H

#include <stdbool.h>
#include <stddef.h>

#include <ironbridge/value.h>

#include "command.h"
#include "command_cfg.h"
#include "record.h"

/* Check `eng` (engineering units) for a tag and undo its scaling into `raw` (what the plugin's
 * write_tag gets): an integer raw value when one normalizes back to exactly `eng`, else the
 * fractional raw double (which an integer wire type refuses). Returns IB_CMD_OK, or the
 * refusal (IB_CMD_DENIED, IB_CMD_OUT_OF_RANGE, IB_CMD_BAD_TYPE) with a sentence in err. A
 * string value of `raw` points where the one of `eng` does. */
int ib_command_check_write(const struct ib_tag_core *t, const struct ib_tag_write *w, bool writable,
                           const struct ib_value *eng, struct ib_value *raw, char *err,
                           size_t errlen);

/* The result a plugin's write_tag return code means for a raw value (IB_ERR_INVALID is a bad
 * type for a fraction or a string, out of range otherwise). */
int ib_command_result_of(int rc, const struct ib_value *raw);

#endif
