/* Sizes ("1GiB", "512MiB", "10MB", or a number of bytes) and durations ("500ms", "5min") in
 * the configuration and in messages. Pure functions; any thread. */
#ifndef IB_UNITS_H
#define IB_UNITS_H

#include <stdint.h>

/* Binary (KiB, MiB, GiB, TiB) and decimal (kB, MB, GB, TB) multiples, an optional "B", a blank
 * between number and unit allowed; a plain integer is bytes. Returns 0, or -1 when `s` is not
 * a size or does not fit in int64. */
int ib_units_parse_size(const char *s, int64_t *bytes);

/* "1.5 GiB", "300 KiB", "12 B": for logs and the status line. */
void ib_units_format_size(char *buf, unsigned len, uint64_t bytes);

/* "500ms", "60s", "5min", "2h", "7d" to ms; -1 for anything else (a bare number too). */
int ib_units_parse_duration_ms(const char *s, int64_t *out);

#endif
