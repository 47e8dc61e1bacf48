/* Human units in the configuration: sizes ("1GiB", "512MiB", "10MB", or bytes) and durations
 * ("7d", "12h", "30min", "45s", "500ms", or seconds). */
#ifndef IB_UNITS_H
#define IB_UNITS_H

#include <stdint.h>

/* Binary (KiB, MiB, GiB, TiB) and decimal (kB, MB, GB, TB) multiples, an optional "B", a blank
 * between number and unit allowed; a plain integer is bytes. Returns 0, or -1 when `s` is not
 * a size or does not fit in int64. */
int ib_parse_size(const char *s, int64_t *bytes);

/* ms, s, min (or m), h, d, w; a plain integer is seconds. Returns 0 or -1 like ib_parse_size. */
int ib_parse_duration_ms(const char *s, int64_t *ms);

/* "1.5 GiB", "300 KiB", "12 B": for logs and the status line. */
void ib_format_size(char *buf, unsigned len, uint64_t bytes);

#endif
