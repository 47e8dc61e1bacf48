/* Sizes in the configuration and in messages: "1GiB", "512MiB", "10MB", or a number of bytes.
 * (Durations are a schema type of their own, parsed by config.c.) */
#ifndef IB_UNITS_H
#define IB_UNITS_H

#include <stdint.h>

/* Binary (KiB, MiB, GiB, TiB) and decimal (kB, MB, GB, TB) multiples, an optional "B", a blank
 * between number and unit allowed; a plain integer is bytes. Returns 0, or -1 when `s` is not
 * a size or does not fit in int64. */
int ib_parse_size(const char *s, int64_t *bytes);

/* "1.5 GiB", "300 KiB", "12 B": for logs and the status line. */
void ib_format_size(char *buf, unsigned len, uint64_t bytes);

#endif
