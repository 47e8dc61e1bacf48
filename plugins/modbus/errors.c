/* What a failed request's errno means: the reason its samples carry, how severe it is among the
 * failures of one poll, and the text a log line gives it. */
#include <errno.h>
#include <stdio.h>

#include <modbus.h>

#include <ironbridge/ironbridge.h>

#include "errors.h"
#include "link.h" /* MB_ESTRAY, MB_ENORESOLVE */

const char *mb_errtext(int e)
{
    if (e == MB_ESTRAY)
        return "more bytes arrived than the response frame holds";
    if (e == EMBBADSLAVE)
        return "wrong unit id";
    if (e == ETIMEDOUT)
        return "no response within the timeout";
    if (e == MB_ENORESOLVE)
        return "the host name does not resolve";
    if (e == EMBBADDATA)
        return "invalid response";
    return modbus_strerror(e);
}

const char *mb_describe(char *buf, size_t n, int e, const char *why)
{
    if (!why || why[0] == '\0')
        snprintf(buf, n, "%s", mb_errtext(e));
    else
        snprintf(buf, n, "%s: %s", mb_errtext(e), why);
    return buf;
}

struct mb_failure mb_classify(int e)
{
    if (e == ETIMEDOUT)
        return (struct mb_failure){IB_R_TIMEOUT, 0, IB_ERR_TIMEOUT};
    if (e >= EMBXILFUN && e <= EMBXGTAR)
        return (struct mb_failure){IB_R_EXCEPTION, (uint16_t)(e - MODBUS_ENOBASE),
                                   IB_ERR_EXCEPTION};
    if (e == EMBBADCRC)
        return (struct mb_failure){IB_R_CRC, 0, IB_ERR_PROTOCOL};
    /* EMBBADDATA, EMBBADEXC, EMBUNKEXC, EMBMDATA, EMBBADSLAVE, MB_ESTRAY. */
    if (e >= MODBUS_ENOBASE)
        return (struct mb_failure){IB_R_PROTOCOL, 0, IB_ERR_PROTOCOL};
    /* Every system error (ECONNRESET, EPIPE, EBADF, ENOTCONN, EIO, ...) leaves the link in an
     * unknown state: only a new connection is trustworthy. */
    return (struct mb_failure){IB_R_CONN_LOST, 0, IB_ERR_CONNECTION};
}

int mb_severity(int err)
{
    switch (err) {
    case IB_OK:
        return 0;
    case IB_ERR_EXCEPTION:
        return 1;
    case IB_ERR_TIMEOUT:
        return 2;
    case IB_ERR_PROTOCOL:
        return 3;
    case IB_ERR_CONNECTION:
        return 5;
    default:
        return 4;
    }
}
