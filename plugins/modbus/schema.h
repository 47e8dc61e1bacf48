/* Modbus plugin: the schemas of its connection, device and tag keys (schema.c), and the maps from
 * their choice indices (params.h) to the codec's and planner's enums. Read-only data. */
#ifndef IB_MODBUS_SCHEMA_H
#define IB_MODBUS_SCHEMA_H

#include <stddef.h>

#include <ironbridge/ironbridge.h>

#include "decode.h"
#include "params.h"
#include "planner.h"

extern const struct ib_schema mb_connection_schema;
extern const struct ib_schema mb_device_schema;
extern const struct ib_schema mb_tag_schema;

/* Choice names, indexed by the params.h enums (NULL-terminated). */
extern const char *const mb_schema_transport_choices[];
extern const char *const mb_schema_order_choices[];
extern const char *const mb_schema_table_choices[];

/* Choice index to the enum the code uses. */
extern const enum mb_order mb_schema_order_map[MB_P_ORDER_COUNT];
extern const enum mb_table mb_schema_table_map[MB_P_TABLE_COUNT];
extern const enum mb_type mb_schema_type_map[MB_P_TYPE_COUNT];
extern const int mb_schema_baud_values[]; /* by the index of the baud choice */
extern const size_t mb_schema_n_baud_values;

#endif
