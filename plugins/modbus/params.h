/* Modbus plugin: the params structs its schemas describe, which the daemon fills from YAML.
 * Private to the plugin and its tests; the daemon sees only the schemas (offsets and sizes). */
#ifndef IB_MODBUS_PARAMS_H
#define IB_MODBUS_PARAMS_H

#include <stdint.h>

/* Enum keys are stored as the index of the choice. New choices are only ever appended, so
 * stored indices keep their meaning; -1 means absent without a default. */

enum mb_p_transport {
    MB_P_TRANSPORT_TCP = 0,
    MB_P_TRANSPORT_COUNT, /* rtu, rtu_over_tcp follow in a later version */
};

enum mb_p_order {
    MB_P_ORDER_ABCD = 0,
    MB_P_ORDER_CDAB,
    MB_P_ORDER_COUNT, /* BADC, DCBA follow in a later version */
};

enum mb_p_table {
    MB_P_TABLE_COIL = 0,
    MB_P_TABLE_DISCRETE_INPUT,
    MB_P_TABLE_INPUT,
    MB_P_TABLE_HOLDING,
    MB_P_TABLE_COUNT,
};

enum mb_p_type {
    MB_P_TYPE_BOOL = 0,
    MB_P_TYPE_INT16,
    MB_P_TYPE_UINT16,
    MB_P_TYPE_INT32,
    MB_P_TYPE_UINT32,
    MB_P_TYPE_FLOAT32,
    MB_P_TYPE_COUNT, /* int64, uint64, float64 follow in a later version */
};

/* connection_schema */
struct mb_connection_params {
    const char *host;           /* IB_S_STRING, required */
    int64_t port;               /* IB_S_INT 1..65535, default 502 */
    int64_t timeout_ms;         /* IB_S_INT 1..60000, default 1000: response timeout */
    int64_t connect_timeout_ms; /* IB_S_INT 1..60000, default 3000 */
    int32_t transport;          /* IB_S_ENUM enum mb_p_transport, default tcp */
};

/* device_schema */
struct mb_device_params {
    int64_t unit_id;       /* IB_S_INT 0..255, default 1 */
    int64_t timeout_ms;    /* IB_S_INT 0..60000, default 0: the connection's */
    int64_t max_registers; /* IB_S_INT 1..125, default 125 */
    int64_t max_bits;      /* IB_S_INT 1..2000, default 2000 */
    int32_t byte_order;    /* IB_S_ENUM enum mb_p_order, default ABCD */
};

/* tag_schema */
struct mb_tag_params {
    int64_t address; /* IB_S_INT 0..65535, required */
    int32_t table;   /* IB_S_ENUM enum mb_p_table, required */
    int32_t type;    /* IB_S_ENUM enum mb_p_type, -1: by table (bool or uint16) */
    int32_t order;   /* IB_S_ENUM enum mb_p_order, -1: the device's byte_order */
};

#endif
