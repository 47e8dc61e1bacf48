/* A small JSON writer into an ib_buf: exact numbers (shortest round-trip doubles, 64-bit
 * integers beyond 2^53 as strings), correct string escaping, no allocation beyond the buffer. */
#ifndef IB_JSON_H
#define IB_JSON_H

#include <stddef.h>
#include <stdint.h>

#include <ironbridge/value.h>

#include "util.h"

/* Each returns 0, or -1 when the buffer cannot grow. */
int ib_json_str(struct ib_buf *b, const char *s, size_t len);
int ib_json_cstr(struct ib_buf *b, const char *s);
int ib_json_int(struct ib_buf *b, int64_t v);
int ib_json_uint(struct ib_buf *b, uint64_t v);
/* The same into `out` (room for 24 bytes; no terminator); return the length written. */
int ib_fmt_json_int(char *out, int64_t v);
int ib_fmt_json_uint(char *out, uint64_t v);
int ib_json_double(struct ib_buf *b, double v); /* v must be finite */
int ib_json_value(struct ib_buf *b, const struct ib_value *v);

/* Format a finite double as a decimal that reads back to the same bits (the shortest such
 * for values written with up to 17 significant digits in fixed notation); returns the length.
 * `out` needs 32 bytes. */
int ib_fmt_double(char *out, double v);
/* The same for a binary32 value: the shortest decimal that reads back to the same float. */
int ib_fmt_float32(char *out, float f);
/* A value's number or literal as in payloads (honours IB_VF_FLOAT32); `out` needs 32 bytes
 * (strings are not handled here). Returns the length, or -1 for a string or no value. */
int ib_fmt_scalar(char *out, const struct ib_value *v);

/* Integers with magnitude above 2^53 do not survive a JSON reader that uses doubles; they are
 * written as strings ("18446744073709551615"), as docs/payload.md states. */
#define IB_JSON_MAX_SAFE_INT 9007199254740992LL

#endif
