/* S7 plugin, types: the S7 data types a tag can have (BOOL .. DTL), their sizes, which address
 * widths they fit, and their conversion between the big-endian bytes of the PLC and ib_value.
 * Pure functions; no allocation (string values go into a buffer the caller owns). */
#ifndef IB_S7_TYPES_H
#define IB_S7_TYPES_H

#include <stddef.h>
#include <stdint.h>

#include <ironbridge/value.h>

/* Order matters: it is the order of the schema's `type` choices (s7.c). Append only. */
enum s7_type {
    S7_T_BOOL = 0,
    S7_T_BYTE,
    S7_T_CHAR,
    S7_T_WORD,
    S7_T_INT,
    S7_T_DWORD,
    S7_T_DINT,
    S7_T_REAL,
    S7_T_LREAL,
    S7_T_USINT,
    S7_T_SINT,
    S7_T_UINT,
    S7_T_UDINT,
    S7_T_LINT,
    S7_T_ULINT,
    S7_T_STRING,
    S7_T_WSTRING,
    S7_T_S5TIME,
    S7_T_TIME,
    S7_T_DATE,
    S7_T_TIME_OF_DAY,
    S7_T_DATE_AND_TIME,
    S7_T_DTL,
    S7_T_COUNTER,
    S7_T_COUNT,
};

/* How date and time types are published. */
enum s7_time_format {
    S7_TF_MS = 0, /* ms: since the Unix epoch (DATE, DATE_AND_TIME, DTL), since midnight (TOD) */
    S7_TF_ISO,    /* ISO 8601 text: 2024-05-01, 12:34:56.789, 2024-05-01T12:34:56.789 */
};

/* The schema's names of the types, NULL-terminated, indexed by enum s7_type. */
extern const char *const s7_type_names[S7_T_COUNT + 1];

/* Bytes the type occupies in the PLC (BOOL: 1, the byte that holds the bit). `length` is the
 * declared maximum of characters of STRING and WSTRING (ignored otherwise). */
uint32_t s7_type_size(enum s7_type t, uint32_t length);
/* The type that an address of this width (enum s7_width) reads when none is written. */
enum s7_type s7_type_default(int width);
/* Whether type t may be read at an address of this width; if not, *hint names what fits. */
int s7_type_fits(enum s7_type t, int width, const char **hint);
/* Whether the type can be published as ISO text (`format: iso`). */
int s7_type_has_iso(enum s7_type t);
/* Whether write_tag can write the type (all of them: numbers, BOOL, times, dates, counters
 * through s7_type_encode(); CHAR, STRING and WSTRING through s7_type_encode_text()). */
int s7_type_writable(enum s7_type t);
/* Bytes of text a decoded STRING/WSTRING/ISO value may need: size the buffer of decode(). */
uint32_t s7_type_text_cap(enum s7_type t, uint32_t length);

/* Decode `len` bytes at `p` (s7_type_size() of them; BOOL: the byte, `bit` selects) into *v.
 * Text values are written into text[0 .. text_cap-1] and *v points there. 0, or -1 when the
 * bytes are not a valid value of the type (a BCD digit above 9, a string longer than its
 * maximum, a month 13): the sample is then a decode error. */
int s7_type_decode(enum s7_type t, enum s7_time_format fmt, const uint8_t *p, uint32_t len,
                   uint8_t bit, uint32_t length, char *text, uint32_t text_cap, struct ib_value *v);

/* Encode *v as type t into out[0 .. s7_type_size()-1] (BOOL: out[0] = 0 or 1). 0, or -1 with
 * *why (static text) when the value does not fit the type (out of range, a fraction for an
 * integer type, a value the type cannot be written from). */
int s7_type_encode(enum s7_type t, const struct ib_value *v, uint8_t *out, const char **why);

/* Whether the type is text (CHAR, STRING, WSTRING): written with s7_type_encode_text(). */
static inline int s7_type_is_text(enum s7_type t)
{
    return t == S7_T_CHAR || t == S7_T_STRING || t == S7_T_WSTRING;
}

/* Encode the text *v (IB_V_STRING: UTF-8 bytes, not NUL-terminated) as CHAR (one Latin-1
 * character), STRING[length] (bytes: max = length, current, Latin-1 characters) or
 * WSTRING[length] (big-endian words: max = length, current, UTF-16 code units) into
 * out[0 .. cap-1] (cap >= s7_type_size(t, length)). *n = the bytes to write: the header and the
 * current characters (the bytes past them are not part of the value and stay as they are).
 * 0, or -1 with *why (static text): not text, not UTF-8, a character the type cannot hold
 * (above U+00FF for CHAR and STRING), longer than `length` (CHAR: not exactly one). */
int s7_type_encode_text(enum s7_type t, const struct ib_value *v, uint32_t length, uint8_t *out,
                        uint32_t cap, uint32_t *n, const char **why);

#endif
