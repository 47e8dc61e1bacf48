/* OPC UA plugin: StatusCode names and severity (status.c). Pure, any thread. */
#ifndef IB_OPCUA_STATUS_H
#define IB_OPCUA_STATUS_H

#include <stddef.h>
#include <stdint.h>

#define UA_SC_GOOD                    0x00000000u
#define UA_SC_BAD_TIMEOUT             0x800A0000u
#define UA_SC_BAD_NODE_ID_UNKNOWN     0x80340000u
#define UA_SC_BAD_TYPE_MISMATCH       0x80740000u
#define UA_SC_BAD_DECODING_ERROR      0x80070000u
#define UA_SC_BAD_TOO_MANY_OPERATIONS 0x80100000u

static inline int ua_status_is_bad(uint32_t c)
{
    return (c >> 30) >= 2;
}
static inline int ua_status_is_uncertain(uint32_t c)
{
    return (c >> 30) == 1;
}

/* The symbolic name of the code's 16 high bits (BadNodeIdUnknown), or NULL when unknown. The
 * string is static. */
const char *ua_status_name(uint32_t code);

/* The name, or the name with the hex value when info bits are set, or the hex value alone;
 * written into buf when needed. Returns buf or a static string. */
const char *ua_status_text(uint32_t code, char *buf, size_t size);

#endif
