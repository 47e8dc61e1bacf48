/* OPC UA plugin: the schemas of its connection, device and tag keys (schema.c). Read-only. */
#ifndef IB_OPCUA_SCHEMA_H
#define IB_OPCUA_SCHEMA_H

#include <ironbridge/ironbridge.h>

extern const struct ib_schema op_connection_schema;
extern const struct ib_schema op_device_schema;
extern const struct ib_schema op_tag_schema;
extern const struct ib_schema op_group_schema;

#endif
