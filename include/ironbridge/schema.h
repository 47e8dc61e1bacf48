/* ironbridge plugin SDK: declarative configuration schemas.
 * A plugin describes its keys as data; the daemon validates YAML against it and fills a struct. */
#ifndef IRONBRIDGE_SCHEMA_H
#define IRONBRIDGE_SCHEMA_H

#include <stddef.h>
#include <stdint.h>

/* How a key is written in YAML, and what the daemon stores at `offset` in the params struct. */
enum ib_schema_type {
    IB_S_BOOL = 1,   /* stored as bool */
    IB_S_INT = 2,    /* stored as int64_t */
    IB_S_DOUBLE = 3, /* stored as double */
    IB_S_STRING = 4, /* stored as const char *; owned by the daemon, valid until destroy() */
    IB_S_ENUM = 5,   /* one of `choices`; stored as int32_t index, -1 when absent without default */
    IB_S_DURATION = 6, /* a number with a unit: 500ms, 60s, 5min, 2h, 7d; stored as int64_t ms.
                        * A bare number is refused (nobody guesses the unit). Range: min/max in
                        * ms with IB_SF_RANGE. (ABI 1.0) */
};

enum ib_schema_flags {
    IB_SF_REQUIRED = 1u << 0, /* the key must be present */
    IB_SF_RANGE = 1u << 1,    /* min/max (IB_S_INT) or dmin/dmax (IB_S_DOUBLE) are checked */
};

struct ib_schema_entry {
    const char *key;            /* YAML key, lower_snake_case */
    uint32_t type;              /* enum ib_schema_type */
    uint32_t flags;             /* enum ib_schema_flags */
    size_t offset;              /* offsetof() the field in the params struct */
    const char *def;            /* default, written as in YAML ("502", "ABCD"); NULL: none */
    int64_t min, max;           /* IB_S_INT with IB_SF_RANGE */
    double dmin, dmax;          /* IB_S_DOUBLE with IB_SF_RANGE */
    const char *const *choices; /* IB_S_ENUM: NULL-terminated list, matched case-sensitively */
    const char *description;    /* one line for --list-plugins and the docs */
    const void *reserved[2];
};

/* Absent keys without a default are stored as: false, 0, 0.0, NULL, -1 (enum). An IB_S_INT key
 * whose absence must be told apart from 0 should declare a default outside its range of
 * meaningful values, or use 0 to mean "inherit" and say so in its description. */
/* Schemas are the plugin's: static const data that lives as long as the shared object. The
 * params structs the daemon fills from them (zeroed, then defaults, then the YAML) are the
 * daemon's, valid until destroy() returns. */
struct ib_schema {
    size_t struct_size; /* bytes of the params struct the daemon allocates (zeroed) */
    size_t n_entries;
    const struct ib_schema_entry *entries;
    const void *reserved[2];
};

#endif
