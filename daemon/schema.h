/* The schema engine: a YAML mapping validated against declarative schemas (the core's sections
 * and each plugin's connection, device and tag blocks) and stored into the structs they
 * describe. Private to the configuration module; main thread only. */
#ifndef IB_SCHEMA_H
#define IB_SCHEMA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <ironbridge/schema.h>

struct ib_loader;
struct ynode;

/* A size in bytes written with a unit ("8MiB", "1GB") or as a number of bytes; stored as
 * int64_t. Range: min/max in bytes with IB_SF_RANGE. The core's own type: plugins cannot use
 * it (it is not part of the SDK's enum ib_schema_type). */
#define IB_S_SIZE 100u

/* Entries of the core's schemas: a string, an integer in [lo, hi]. */
#define IB_E_STR(k, st, f, d, desc)                                                                \
    {                                                                                              \
        .key = k, .type = IB_S_STRING, .offset = offsetof(st, f), .def = d, .description = desc    \
    }
#define IB_E_INT(k, st, f, d, lo, hi, desc)                                                        \
    {                                                                                              \
        .key = k, .type = IB_S_INT, .flags = IB_SF_RANGE, .offset = offsetof(st, f), .def = d,     \
        .min = lo, .max = hi, .description = desc                                                  \
    }

/* A schema paired with the struct it fills; a mapping may be validated by several. */
struct ib_spec {
    const struct ib_schema *schema;
    void *out;
};

/* Validate mapping `n` at key path `path`: every key must belong to one of the specs or to
 * `extra` (keys the caller handles itself). Fills the spec structs with the values and the
 * defaults of absent keys; a value refused leaves its field as it was (zero) and nothing later
 * reads it. Every error goes to the loader's diag. Returns false if `n` is not a mapping. */
bool ib_schema_apply(struct ib_loader *L, struct ynode *n, const char *path,
                     const struct ib_spec *specs, size_t n_specs, const char *const *extra);

/* The schema entry `key` of `sc`, or NULL. */
const struct ib_schema_entry *ib_schema_find(const struct ib_schema *sc, const char *key);

/* Scalars as the schema engine reads them: 0, or -1 when `s` is not one. */
int ib_schema_parse_bool(const char *s, bool *out);
int ib_schema_parse_double(const char *s, double *out);

/* What a value of type `t` must look like, for messages ("an integer"...). */
const char *ib_schema_type_word(uint32_t t);

#endif
