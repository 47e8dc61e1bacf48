/* Modbus plugin: the params structs its schemas describe, which the daemon fills from YAML.
 * Private to the plugin and its tests; the daemon sees only the schemas (offsets and sizes). */
#ifndef IB_MODBUS_PARAMS_H
#define IB_MODBUS_PARAMS_H

#include <stdbool.h>
#include <stdint.h>

/* Enum keys are stored as the index of the choice. New choices are only ever appended, so
 * stored indices keep their meaning; -1 means absent (enum keys without a default are used
 * where the plugin must tell "not written" from any value). */

enum mb_p_transport {
    MB_P_TRANSPORT_TCP = 0,
    MB_P_TRANSPORT_RTU,
    MB_P_TRANSPORT_RTU_OVER_TCP,
    MB_P_TRANSPORT_COUNT,
};

enum mb_p_implementation {
    MB_P_IMPL_NATIVE = 0,
    MB_P_IMPL_LIBMODBUS,
    MB_P_IMPL_COUNT,
};

enum mb_p_order {
    MB_P_ORDER_ABCD = 0,
    MB_P_ORDER_CDAB,
    MB_P_ORDER_BADC,
    MB_P_ORDER_DCBA,
    MB_P_ORDER_AB,
    MB_P_ORDER_BA,
    MB_P_ORDER_COUNT,
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
    MB_P_TYPE_INT64,
    MB_P_TYPE_UINT64,
    MB_P_TYPE_FLOAT64,
    MB_P_TYPE_BIT,
    MB_P_TYPE_STRING,
    MB_P_TYPE_COUNT,
};

/* byte_order_16: the 16-bit orders alone. */
enum mb_p_order16 {
    MB_P_ORDER16_AB = 0,
    MB_P_ORDER16_BA,
    MB_P_ORDER16_COUNT,
};

enum mb_p_parity {
    MB_P_PARITY_NONE = 0,
    MB_P_PARITY_EVEN,
    MB_P_PARITY_ODD,
    MB_P_PARITY_COUNT,
};

/* Baud rates libmodbus 3.1.6 maps to termios speeds on Linux (it silently uses 9600 for any
 * other number, so the schema offers only these). */
#define MB_P_BAUD_CHOICES                                                                          \
    X(300)                                                                                         \
    X(600)                                                                                         \
    X(1200)                                                                                        \
    X(2400) X(4800) X(9600) X(19200) X(38400) X(57600) X(115200) X(230400) X(460800) X(921600)

/* connection_schema */
struct mb_connection_params {
    int32_t transport;            /* IB_S_ENUM enum mb_p_transport, default tcp */
    const char *host;             /* IB_S_STRING; tcp and rtu_over_tcp */
    int64_t port;                 /* IB_S_INT 1..65535; absent (0): 502 */
    const char *serial_port;      /* IB_S_STRING; rtu */
    int32_t baud;                 /* IB_S_ENUM index into MB_P_BAUD_CHOICES; -1: 19200 */
    int32_t parity;               /* IB_S_ENUM enum mb_p_parity; -1: even */
    int32_t data_bits;            /* IB_S_ENUM "5".."8"; -1: 8 */
    int32_t stop_bits;            /* IB_S_ENUM "1", "2"; -1: 1 */
    bool rs485;                   /* IB_S_BOOL, default false; rtu */
    int64_t inter_frame_delay_us; /* IB_S_INT 0..1000000; 0: automatic */
    int64_t timeout_ms;           /* IB_S_INT 1..60000, default 1000: response timeout */
    int64_t byte_timeout_ms;      /* IB_S_INT 1..60000, default 500 */
    int64_t connect_timeout_ms;   /* IB_S_INT 1..60000, default 3000 */
    bool close_after_poll;        /* IB_S_BOOL, default false */
    int32_t implementation;       /* IB_S_ENUM enum mb_p_implementation; -1: native; tcp only */
    int64_t max_outstanding;      /* IB_S_INT 1..MB_PIPE_MAX, default 1; tcp native only */
};

/* device_schema */
struct mb_device_params {
    int64_t unit_id;                   /* IB_S_INT 0..255, default 1 */
    int32_t byte_order;                /* IB_S_ENUM ABCD/CDAB/BADC/DCBA, default ABCD */
    int32_t byte_order_16;             /* IB_S_ENUM enum mb_p_order16, default AB */
    int64_t timeout_ms;                /* IB_S_INT 0..60000, default 0: the connection's */
    int64_t retries;                   /* IB_S_INT 0..10, default 1 */
    int64_t max_registers;             /* IB_S_INT 1..125, default 125 */
    int64_t max_bits;                  /* IB_S_INT 1..2000, default 2000 */
    int64_t max_gap;                   /* IB_S_INT 0..124, default 10 */
    bool one_request_per_tag;          /* IB_S_BOOL, default false */
    int64_t pause_between_requests_ms; /* IB_S_INT 0..60000, default 0 */
    bool write_multiple;               /* IB_S_BOOL, default false: FC5/FC6 for single values */
    int64_t backoff_max_ms;            /* IB_S_INT 0..3600000, default 60000; 0: no back-off */
};

/* tag_schema */
struct mb_tag_params {
    const char *address; /* IB_S_STRING, required: "3027", "0x0BD3" or "modicon:403028" */
    int32_t table;       /* IB_S_ENUM enum mb_p_table; -1: from a Modicon address */
    int32_t type;        /* IB_S_ENUM enum mb_p_type, -1: by table (bool or uint16) */
    int32_t order;       /* IB_S_ENUM enum mb_p_order, -1: the device's default */
    int32_t bit;         /* IB_S_ENUM "0".."15", -1: absent; type bit only */
    int64_t length;      /* IB_S_INT 1..125, 0: absent; type string only (registers) */
    bool verify_write;   /* IB_S_BOOL, default false */
};

#endif
