/* ironbridge plugin SDK: error codes shared by the daemon and plugins.
 * Functions return 0 (IB_OK) or one of these negative codes. */
#ifndef IRONBRIDGE_ERROR_H
#define IRONBRIDGE_ERROR_H

enum ib_err {
    IB_OK = 0,
    IB_ERR_NOMEM = -1,       /* out of memory */
    IB_ERR_INVALID = -2,     /* invalid argument or configuration */
    IB_ERR_TIMEOUT = -3,     /* the device did not answer in time */
    IB_ERR_CONNECTION = -4,  /* the transport is down; the host closes and reopens it */
    IB_ERR_PROTOCOL = -5,    /* a malformed or unexpected response */
    IB_ERR_EXCEPTION = -6,   /* the device refused the request (exception code in the sample) */
    IB_ERR_UNSUPPORTED = -7, /* the plugin does not implement this */
    IB_ERR_IO = -8,          /* an operating-system I/O error */
    IB_ERR_DENIED = -9,      /* not permitted (for example a write to a read-only tag) */
};

/* Text for an ib_err code; never NULL. The string is static. */
static inline const char *ib_strerror(int err)
{
    switch (err) {
    case IB_OK:
        return "success";
    case IB_ERR_NOMEM:
        return "out of memory";
    case IB_ERR_INVALID:
        return "invalid argument";
    case IB_ERR_TIMEOUT:
        return "timeout";
    case IB_ERR_CONNECTION:
        return "connection lost";
    case IB_ERR_PROTOCOL:
        return "protocol error";
    case IB_ERR_EXCEPTION:
        return "device exception";
    case IB_ERR_UNSUPPORTED:
        return "not supported";
    case IB_ERR_IO:
        return "I/O error";
    case IB_ERR_DENIED:
        return "permission denied";
    default:
        return "unknown error";
    }
}

#endif
