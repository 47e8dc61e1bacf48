/* sparkplug_cmd.c: decoding NCMD and DCMD payloads (sparkplug_cmd.h) with protobuf-c. The
 * UInt32 datatype is read from either int_value (the datatype table) or long_value (what Eclipse
 * Tahu and npm sparkplug-payload send): docs/sparkplug.md. */
#include "sparkplug_cmd.h"

#include <string.h>

#include "sparkplug.pb-c.h"

/* The Sparkplug datatypes we convert (specification: Payloads, datatypes). */
enum {
    DT_INT8 = 1,
    DT_INT16,
    DT_INT32,
    DT_INT64,
    DT_UINT8,
    DT_UINT16,
    DT_UINT32,
    DT_UINT64,
    DT_FLOAT,
    DT_DOUBLE,
    DT_BOOLEAN,
    DT_STRING,
    DT_DATETIME,
    DT_TEXT
};

static int64_t sign_extend(uint32_t v, uint32_t dt)
{
    switch (dt) {
    case DT_INT8:
        return (int8_t)(uint8_t)v;
    case DT_INT16:
        return (int16_t)(uint16_t)v;
    default:
        return (int32_t)v;
    }
}

/* A command without a datatype (hosts may leave it out): the one its value field implies. */
static uint32_t implied_type(const Ibspb__Metric *m)
{
    switch (m->value_case) {
    case IBSPB__METRIC__VALUE_INT_VALUE:
        return DT_INT32;
    case IBSPB__METRIC__VALUE_LONG_VALUE:
        return DT_INT64;
    case IBSPB__METRIC__VALUE_FLOAT_VALUE:
        return DT_FLOAT;
    case IBSPB__METRIC__VALUE_DOUBLE_VALUE:
        return DT_DOUBLE;
    case IBSPB__METRIC__VALUE_BOOLEAN_VALUE:
        return DT_BOOLEAN;
    case IBSPB__METRIC__VALUE_STRING_VALUE:
        return DT_STRING;
    default:
        return 0;
    }
}

static void convert(const Ibspb__Metric *m, uint32_t dt, struct ib_value *v)
{
    memset(v, 0, sizeof *v);
    if (!dt)
        dt = implied_type(m);
    if (m->has_is_null && m->is_null)
        return;
    bool small = m->value_case == IBSPB__METRIC__VALUE_INT_VALUE;
    bool wide = m->value_case == IBSPB__METRIC__VALUE_LONG_VALUE;
    uint64_t raw = small ? m->int_value : wide ? m->long_value : 0;
    if ((dt >= DT_INT8 && dt <= DT_INT32) && (small || wide)) {
        v->type = IB_V_INT;
        v->v.i = sign_extend((uint32_t)raw, dt);
    } else if (dt == DT_INT64 && (small || wide)) {
        v->type = IB_V_INT;
        v->v.i = small ? sign_extend((uint32_t)raw, DT_INT32) : (int64_t)raw;
    } else if (dt >= DT_UINT8 && dt <= DT_UINT64 && (small || wide)) {
        v->type = IB_V_UINT;
        v->v.u = raw;
    } else if (dt == DT_FLOAT && m->value_case == IBSPB__METRIC__VALUE_FLOAT_VALUE) {
        v->type = IB_V_DOUBLE;
        v->v.d = m->float_value;
    } else if (dt == DT_DOUBLE && m->value_case == IBSPB__METRIC__VALUE_DOUBLE_VALUE) {
        v->type = IB_V_DOUBLE;
        v->v.d = m->double_value;
    } else if (dt == DT_BOOLEAN && m->value_case == IBSPB__METRIC__VALUE_BOOLEAN_VALUE) {
        v->type = IB_V_BOOL;
        v->v.b = m->boolean_value;
    } else if ((dt == DT_STRING || dt == DT_TEXT) &&
               m->value_case == IBSPB__METRIC__VALUE_STRING_VALUE && m->string_value) {
        v->type = IB_V_STRING;
        v->v.s.ptr = m->string_value;
        v->v.s.len = strlen(m->string_value);
    }
}

int ib_spb_cmd_decode(const void *payload, size_t len, ib_spb_cmd_fn fn, void *ud)
{
    Ibspb__Payload *p = ibspb__payload__unpack(NULL, len, payload);
    if (!p)
        return -1;
    int n = 0;
    for (size_t i = 0; i < p->n_metrics; i++) {
        const Ibspb__Metric *m = p->metrics[i];
        struct ib_spb_cmd_metric c = {.name = m->name,
                                      .has_alias = m->has_alias,
                                      .alias = m->alias,
                                      .datatype = m->datatype,
                                      .payload_ts = p->has_timestamp ? (int64_t)p->timestamp : 0};
        convert(m, m->has_datatype ? m->datatype : 0, &c.value);
        n++;
        if (fn && fn(ud, &c))
            break;
    }
    ibspb__payload__free_unpacked(p, NULL);
    return n;
}

static int find_rebirth(void *ud, const struct ib_spb_cmd_metric *m)
{
    if (m->name && strcmp(m->name, "Node Control/Rebirth") == 0 && m->value.type == IB_V_BOOL &&
        m->value.v.b) {
        *(bool *)ud = true;
        return 1;
    }
    return 0;
}

int ib_spb_cmd_is_rebirth(const void *payload, size_t len)
{
    bool yes = false;
    if (ib_spb_cmd_decode(payload, len, find_rebirth, &yes) < 0)
        return -1;
    return yes;
}

/* ---- STATE: a small scanner of the one JSON object a host sends ------------------------------ */

static size_t skip_ws(const char *p, size_t len, size_t i)
{
    while (i < len && (p[i] == ' ' || p[i] == '\t' || p[i] == '\n' || p[i] == '\r'))
        i++;
    return i;
}

/* The end of the JSON value starting at i (string, number, literal; objects and arrays are
 * skipped by depth), or len when it does not end. */
static size_t skip_value(const char *p, size_t len, size_t i)
{
    if (i < len && p[i] == '"') {
        for (i++; i < len && p[i] != '"'; i++)
            if (p[i] == '\\')
                i++;
        return i < len ? i + 1 : len;
    }
    int depth = 0;
    for (; i < len; i++) {
        if (p[i] == '{' || p[i] == '[')
            depth++;
        else if (p[i] == '}' || p[i] == ']') {
            if (depth-- == 0)
                return i;
        } else if (p[i] == '"') {
            i = skip_value(p, len, i) - 1;
        } else if (p[i] == ',' && depth == 0) {
            return i;
        }
    }
    return len;
}

static bool key_is(const char *p, size_t len, size_t i, const char *key)
{
    size_t k = strlen(key);
    return len - i >= k + 2 && p[i] == '"' && memcmp(p + i + 1, key, k) == 0 && p[i + 1 + k] == '"';
}

int ib_spb_state_parse(const char *p, size_t len, bool *online, int64_t *ts)
{
    bool got_online = false, got_ts = false;
    size_t i = skip_ws(p, len, 0);
    if (i >= len || p[i] != '{')
        return -1;
    for (i++;;) {
        i = skip_ws(p, len, i);
        if (i >= len || p[i] != '"')
            break;
        bool is_online = key_is(p, len, i, "online"), is_ts = key_is(p, len, i, "timestamp");
        i = skip_ws(p, len, skip_value(p, len, i));
        if (i >= len || p[i] != ':')
            return -1;
        i = skip_ws(p, len, i + 1);
        size_t end = skip_value(p, len, i);
        if (is_online && end - i == 4 && memcmp(p + i, "true", 4) == 0)
            *online = got_online = true;
        else if (is_online && end - i == 5 && memcmp(p + i, "false", 5) == 0)
            got_online = !(*online = false);
        else if (is_ts) {
            int64_t v = 0;
            size_t j = i;
            for (; j < end && p[j] >= '0' && p[j] <= '9' && v < INT64_MAX / 10 - 10; j++)
                v = v * 10 + (p[j] - '0');
            if (j == i || skip_ws(p, end, j) != end)
                return -1;
            *ts = v;
            got_ts = true;
        }
        i = skip_ws(p, len, end);
        if (i < len && p[i] == ',')
            i++;
    }
    return got_online && got_ts ? 0 : -1;
}
