/* S7 plugin: the params structs its schemas describe, which the daemon fills from YAML.
 * Private to the plugin and its tests; the daemon sees only the schemas (offsets and sizes). */
#ifndef IB_S7_PARAMS_H
#define IB_S7_PARAMS_H

#include <stdbool.h>
#include <stdint.h>

enum s7_p_conn_type {
    S7_P_CONN_PG = 0,   /* programming device: remote TSAP 0x01xx */
    S7_P_CONN_OP,       /* operator panel: 0x02xx */
    S7_P_CONN_S7_BASIC, /* 0x03xx */
    S7_P_CONN_COUNT,
};

/* connection_schema */
struct s7_connection_params {
    const char *host;           /* IB_S_STRING, required */
    int64_t port;               /* IB_S_INT 1..65535, default 102 */
    int64_t rack;               /* IB_S_INT 0..7, default 0 */
    int64_t slot;               /* IB_S_INT 0..31, default 1 */
    int32_t connection_type;    /* IB_S_ENUM enum s7_p_conn_type, default pg */
    const char *local_tsap;     /* IB_S_STRING "01.00" or "0x0100"; absent: 0x0100 */
    const char *remote_tsap;    /* IB_S_STRING; absent: from rack, slot, connection_type */
    int64_t pdu_size;           /* IB_S_INT 240..960, default 960: asked for, then negotiated */
    int64_t parallel_jobs;      /* IB_S_INT 1..8, default 3: asked for, then negotiated */
    int64_t timeout_ms;         /* IB_S_DURATION, default 2s */
    int64_t connect_timeout_ms; /* IB_S_DURATION, default 3s */
};

/* device_schema */
struct s7_device_params {
    int64_t max_gap;   /* IB_S_INT 0..512, default 32: bytes read across to join two tags */
    int64_t max_items; /* IB_S_INT 1..20, default 20: items per Read Var request */
};

/* tag_schema */
struct s7_tag_params {
    const char *address; /* IB_S_STRING, required: DB10.DBW4, M0.1, ... */
    int32_t type;        /* IB_S_ENUM enum s7_type (types.h); -1: by the address width */
    int64_t length;      /* IB_S_INT 1..16382, 0: absent; string (1..254) and wstring only */
    int32_t format;      /* IB_S_ENUM enum s7_time_format, default ms */
};

#endif
