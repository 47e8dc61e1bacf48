/* Modbus tag addresses as written in the configuration: a 0-based protocol address, or a Modicon
 * reference ("400001") that only counts as one when it carries the explicit marker "modicon:". */
#ifndef IB_MODBUS_ADDRESS_H
#define IB_MODBUS_ADDRESS_H

#include <stddef.h>
#include <stdint.h>

/* The marker that makes a Modicon reference of an address: "modicon:400001". */
#define MB_MODICON_MARKER "modicon:"

struct mb_address {
    uint32_t address; /* 0-based protocol address, 0..65535 */
    int table;        /* enum mb_table named by a Modicon reference; -1 for a plain address */
};

/* Parse `text`:
 *   "3027", "0x0BD3"      the 0-based protocol address (decimal without leading zeros, or hex);
 *   "modicon:400001"      a Modicon reference: a table digit (0 coil, 1 discrete input, 3 input
 *                         register, 4 holding register) then the 1-based number, 4 digits
 *                         (40001..49999) or 5 digits (400001..465536).
 * Returns 0 and fills *out, or IB_ERR_INVALID with a sentence for a person in err (always
 * NUL-terminated when errlen > 0). A plain number that looks like a Modicon reference (past
 * 65535, or with a leading zero) is refused with a hint, never read as something else. */
int mb_address_parse(const char *text, struct mb_address *out, char *err, size_t errlen);

#endif
