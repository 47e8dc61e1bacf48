/* The device-free checks of a write: writable, type, limits in engineering units, and the
 * scaling undone so that the device gets exactly the raw value that reads back as the request. */
#include "command_check.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include <ironbridge/error.h>

static double as_double(const struct ib_value *v)
{
    return v->type == IB_V_INT ? (double)v->v.i : v->type == IB_V_UINT ? (double)v->v.u : v->v.d;
}

static bool numeric(const struct ib_value *v)
{
    return v->type == IB_V_INT || v->type == IB_V_UINT || v->type == IB_V_DOUBLE;
}

/* The limits of the tag, in engineering units; an integer beyond 2^53 is compared exactly
 * enough: a limit is a double itself. */
static int limits(const struct ib_tag_write *w, const struct ib_value *eng, char *err, size_t len)
{
    double d = as_double(eng);
    if (w->has_min && d < w->min) {
        snprintf(err, len, "%.17g is below write_min (%.17g)", d, w->min);
        return IB_CMD_OUT_OF_RANGE;
    }
    if (w->has_max && d > w->max) {
        snprintf(err, len, "%.17g is above write_max (%.17g)", d, w->max);
        return IB_CMD_OUT_OF_RANGE;
    }
    return IB_CMD_OK;
}

/* raw = (eng - offset) / scale, as the integer that normalizes back to eng exactly if there
 * is one (614 for 61.4 at scale 0.1), else the double. */
static int unscale(const struct ib_tag_core *t, const struct ib_value *eng, struct ib_value *raw,
                   char *err, size_t len)
{
    double d = as_double(eng);
    double x = t->divisor != 0.0 ? (d - t->offset) * t->divisor : (d - t->offset) / t->scale;
    if (!isfinite(x)) {
        snprintf(err, len, "%.17g cannot be scaled back to a raw value", d);
        return IB_CMD_OUT_OF_RANGE;
    }
    memset(raw, 0, sizeof *raw);
    double r = nearbyint(x);
    if (fabs(r) < 9007199254740992.0) {
        struct ib_sample s = {.value = {.type = IB_V_INT, .v.i = (int64_t)r}, .quality = IB_Q_GOOD};
        ib_record_normalize(t, &s, &s);
        if (s.quality == IB_Q_GOOD && s.value.v.d == d) {
            raw->type = IB_V_INT;
            raw->v.i = (int64_t)r;
            return IB_CMD_OK;
        }
    }
    raw->type = IB_V_DOUBLE;
    raw->v.d = x;
    return IB_CMD_OK;
}

int ib_command_check_write(const struct ib_tag_core *t, const struct ib_tag_write *w, bool writable,
                           const struct ib_value *eng, struct ib_value *raw, char *err,
                           size_t errlen)
{
    err[0] = '\0';
    if (!writable) {
        snprintf(err, errlen,
                 "tag is not writable (its configuration says writable: true to "
                 "allow writes)");
        return IB_CMD_DENIED;
    }
    if (eng->type == IB_V_DOUBLE && !isfinite(eng->v.d)) {
        snprintf(err, errlen, "not a finite number");
        return IB_CMD_BAD_TYPE;
    }
    if (eng->type == IB_V_STRING || eng->type == IB_V_BOOL) {
        if (w->has_min || w->has_max || t->scaled) {
            snprintf(err, errlen, "expected a number (the tag has %s)",
                     t->scaled ? "a scale or offset" : "write limits");
            return IB_CMD_BAD_TYPE;
        }
        *raw = *eng;
        return IB_CMD_OK;
    }
    if (!numeric(eng)) {
        snprintf(err, errlen, "no value");
        return IB_CMD_BAD_TYPE;
    }
    int rc = limits(w, eng, err, errlen);
    if (rc != IB_CMD_OK)
        return rc;
    if (!t->scaled) {
        *raw = *eng;
        return IB_CMD_OK;
    }
    return unscale(t, eng, raw, err, errlen);
}

int ib_command_result_of(int rc, const struct ib_value *raw)
{
    switch (rc) {
    case IB_OK:
        return IB_CMD_OK;
    case IB_ERR_DENIED:
    case IB_ERR_UNSUPPORTED:
        return IB_CMD_DENIED;
    case IB_ERR_INVALID:
        if (raw->type == IB_V_STRING || raw->type == IB_V_BOOL ||
            (raw->type == IB_V_DOUBLE && raw->v.d != nearbyint(raw->v.d)))
            return IB_CMD_BAD_TYPE;
        return IB_CMD_OUT_OF_RANGE;
    case IB_ERR_TIMEOUT:
        return IB_CMD_TIMEOUT;
    case IB_ERR_CONNECTION:
        return IB_CMD_CONNECTION_LOST;
    default:
        return IB_CMD_DEVICE_ERROR;
    }
}
