/* What a failed request's errno means (errors.c): the reason its samples carry, how severe it is
 * among the failures of one poll, and the text a log line gives it. Pure; any thread. */
#ifndef IB_MODBUS_ERRORS_H
#define IB_MODBUS_ERRORS_H

#include <stddef.h>
#include <stdint.h>

/* How a failed request is reported. */
struct mb_failure {
    uint8_t reason; /* enum ib_reason */
    uint16_t code;  /* Modbus exception number */
    int err;        /* enum ib_err */
};

/* errno e (a system error, ETIMEDOUT, EMBX*, EMBBAD*, MB_ESTRAY) as a failure. */
struct mb_failure mb_classify(int e);
/* Rank of an ib_err among the failures of one poll: the worst is reported. */
int mb_severity(int err);
/* errno e as a short text for a log line; never NULL. */
const char *mb_errtext(int e);
/* errno e for a log line, with what was wrong when known (why may be NULL or ""): writes buf
 * (n bytes) and returns it. */
const char *mb_describe(char *buf, size_t n, int e, const char *why);

#endif
