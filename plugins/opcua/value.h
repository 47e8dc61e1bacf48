/* OPC UA plugin: a Read result (DataValue) to an ironbridge sample (value.c): the Variant's
 * scalar built-in type to the value union, the StatusCode to the quality, the SourceTimestamp
 * (else the ServerTimestamp, else the time of receipt) to the sample time. Pure, any thread. */
#ifndef IB_OPCUA_VALUE_H
#define IB_OPCUA_VALUE_H

#include <stddef.h>
#include <stdint.h>

#include <ironbridge/value.h>

#include "ua.h"

/* Text a string-like value is copied into; owned by the caller (one per tag), grown here. */
struct ua_text {
    char *ptr;
    size_t cap;
};

enum ua_map_result {
    UA_MAP_GOOD = 0,
    UA_MAP_BAD_STATUS = 1,  /* the server's status is not Good: sample bad, code = status >> 16 */
    UA_MAP_NO_VALUE = 2,    /* Good status without a value */
    UA_MAP_UNSUPPORTED = 3, /* a type (or array) without a mapping: sample bad, decode */
    UA_MAP_NOMEM = 4,
};

/* Fills *s from *dv; `now_ms` stands in when the DataValue carries no timestamp. String values
 * point into `text`, valid until it is next used or freed. Returns an ua_map_result. */
int ua_value_to_sample(const struct ua_datavalue *dv, int64_t now_ms, struct ua_text *text,
                       struct ib_sample *s);

/* Converts an ib_value to a scalar Variant of built-in `type` (the node's current value
 * type). Refuses (-1, with a reason in err) a value that does not fit: out of range, a
 * fraction for an integer type, a string for a number. */
int ua_value_to_variant(const struct ib_value *v, int type, struct ua_variant *out, char *err,
                        size_t err_size);

void ua_text_free(struct ua_text *t);

/* A scalar Variant to a value (string values in `t`): an ua_map_result. */
int ua_scalar_to_value(const struct ua_variant *var, struct ua_text *t, struct ib_value *v);

/* array.c: an array Variant of numbers or of types shown as text (String, LocalizedText,
 * DateTime, ByteString, Guid, ...) to an IB_V_JSON value, the JSON text of the array
 * (multi-dimensional arrays flattened) in `t`. Integers beyond 2^53 are decimal strings, as in
 * scalars; a non-finite float is null. UA_MAP_UNSUPPORTED for arrays of other types or beyond
 * UA_ARRAY_MAX_ELEMS elements / UA_ARRAY_MAX_TEXT bytes of JSON. */
#define UA_ARRAY_MAX_ELEMS 100000
#define UA_ARRAY_MAX_TEXT  (1u << 20)
int ua_array_to_value(const struct ua_variant *var, struct ua_text *t, struct ib_value *v);

#endif
