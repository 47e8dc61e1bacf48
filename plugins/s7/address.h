/* S7 plugin, addresses: parses the notation users copy from STEP 7 / TIA Portal (DB10.DBX4.3,
 * DB10.DBW4, M0.1, MW10, I0.0/E0.0, IW64, Q4.2/A4.2, QD8, T5, C3; case-insensitive, with or
 * without a leading %) into an area, a DB number, a byte offset, a bit and a width. Pure. */
#ifndef IB_S7_ADDRESS_H
#define IB_S7_ADDRESS_H

#include <stddef.h>
#include <stdint.h>

/* The width the address names: a bit (X), byte (B), word (W), double word (D), or a timer or
 * counter (T, C: 2 bytes each, addressed by number). */
enum s7_width {
    S7_W_BIT = 'X',
    S7_W_BYTE = 'B',
    S7_W_WORD = 'W',
    S7_W_DWORD = 'D',
    S7_W_TIMER = 'T',
    S7_W_COUNTER = 'C',
};

#define S7_ADDRESS_MAX_BYTE 65535u /* the last byte offset of an area or a (standard) DB */

struct s7_address {
    uint8_t area;    /* enum s7_area (wire.h) */
    uint8_t width;   /* enum s7_width */
    uint8_t bit;     /* S7_W_BIT: 0..7 */
    uint16_t db;     /* S7_AREA_DB: 1..65535 */
    uint32_t offset; /* byte offset; for T and C the timer/counter number */
};

/* Parse `text`. 0, or -1 with a message for a person (what is wrong and how it is written) in
 * why[0 .. why_len-1]. */
int s7_address_parse(const char *text, struct s7_address *a, char *why, size_t why_len);

/* Write the address in canonical form (DB10.DBX4.3, MW10, T5) into buf; returns buf. */
const char *s7_address_format(const struct s7_address *a, char *buf, size_t len);

#endif
