/* ironbridge plugin SDK: typed values, quality and samples.
 * A sample is what one poll yields for one tag; plugins fill them, the daemon normalizes them. */
#ifndef IRONBRIDGE_VALUE_H
#define IRONBRIDGE_VALUE_H

#include <stdbool.h>
#include <stdint.h>

enum ib_vtype {
    IB_V_NONE = 0, /* no value (a bad sample) */
    IB_V_BOOL = 1,
    IB_V_INT = 2,    /* signed 64-bit */
    IB_V_UINT = 3,   /* unsigned 64-bit */
    IB_V_DOUBLE = 4, /* IEEE-754 binary64 */
    IB_V_STRING = 5, /* bytes, not NUL-terminated; see ib_value.v.s */
    /* ABI 1.1: an array, as the JSON text of an array of numbers or strings (`[1,2.5,3]`,
     * `["a","b"]`) in v.s (same ownership as a string), published as that JSON array. The
     * plugin makes it valid JSON (numbers finite, strings escaped); the daemon does not scale
     * it and compares it as text. Only a 1.1 daemon receives it: check host->abi_minor. */
    IB_V_JSON = 6,
};

/* ib_value.flags */
enum ib_value_flags {
    /* An IB_V_DOUBLE widened from an IEEE-754 binary32 reading: payloads show it as the
     * shortest decimal that reads back to the same binary32 (123.456, not 123.45600128173828). */
    IB_VF_FLOAT32 = 1u << 0,
};

struct ib_value {
    uint8_t type;  /* enum ib_vtype */
    uint8_t flags; /* enum ib_value_flags; 0 unless a flag applies */
    uint8_t reserved[6];
    union {
        bool b;
        int64_t i;
        uint64_t u;
        double d;
        /* A string value points into memory the plugin owns. It must stay valid until the
         * next read_group() call on the same group, or until close()/destroy(). */
        struct {
            const char *ptr;
            uint32_t len;
        } s;
    } v;
};

enum ib_quality {
    IB_Q_GOOD = 0,
    IB_Q_BAD = 1,
    IB_Q_STALE = 2, /* set by the daemon only */
};

/* Why a sample is bad. Plugins set the reason; IB_R_EXCEPTION carries the code in ib_sample.code.
 */
enum ib_reason {
    IB_R_NONE = 0,
    IB_R_TIMEOUT = 1,
    IB_R_EXCEPTION = 2, /* the device answered with an exception; code = its number */
    IB_R_CONN_LOST = 3, /* the transport is down or was lost during the request */
    IB_R_DECODE = 4,    /* the response could not be decoded into the tag's type */
    IB_R_CRC = 5,       /* a checksum mismatch on the wire */
    IB_R_PROTOCOL = 6,  /* a malformed or unexpected response */
    IB_R_INTERNAL = 7,  /* anything else; the plugin logs the details */
};

struct ib_sample {
    struct ib_value value; /* IB_V_NONE when quality is not good */
    int64_t ts_ms;   /* source time: ms since the Unix epoch, UTC, when the response arrived */
    uint8_t quality; /* enum ib_quality */
    uint8_t reason;  /* enum ib_reason; IB_R_NONE when good */
    uint16_t code;   /* protocol-specific detail (Modbus exception number) */
    uint32_t reserved;
};

/* Helpers for plugins filling samples. */
static inline void ib_sample_bad(struct ib_sample *s, int64_t ts_ms, uint8_t reason, uint16_t code)
{
    s->value.type = IB_V_NONE;
    s->ts_ms = ts_ms;
    s->quality = IB_Q_BAD;
    s->reason = reason;
    s->code = code;
}

static inline void ib_sample_good(struct ib_sample *s, int64_t ts_ms)
{
    s->ts_ms = ts_ms;
    s->quality = IB_Q_GOOD;
    s->reason = IB_R_NONE;
    s->code = 0;
}

#endif
