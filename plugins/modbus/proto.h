/* Modbus protocol constants shared by the planner, the framings and the transports: the four data
 * tables and the function codes that read and write them. No code beyond trivial lookups. */
#ifndef IB_MODBUS_PROTO_H
#define IB_MODBUS_PROTO_H

#include <stdbool.h>
#include <stdint.h>

/* The four Modbus data tables. */
enum mb_table {
    MB_TABLE_COIL = 0,       /* read/write bits, FC1 / FC5 / FC15 */
    MB_TABLE_DISCRETE_INPUT, /* read-only bits, FC2 */
    MB_TABLE_INPUT,          /* read-only registers, FC4 */
    MB_TABLE_HOLDING,        /* read/write registers, FC3 / FC6 / FC16 */
    MB_TABLE_COUNT,
};

/* Function codes the plugin sends. */
enum mb_fc {
    MB_FC_READ_COILS = 0x01,
    MB_FC_READ_DISCRETE_INPUTS = 0x02,
    MB_FC_READ_HOLDING_REGISTERS = 0x03,
    MB_FC_READ_INPUT_REGISTERS = 0x04,
    MB_FC_WRITE_SINGLE_COIL = 0x05,
    MB_FC_WRITE_SINGLE_REGISTER = 0x06,
    MB_FC_WRITE_MULTIPLE_COILS = 0x0F,
    MB_FC_WRITE_MULTIPLE_REGISTERS = 0x10,
};

static inline bool mb_table_is_bits(enum mb_table table)
{
    return table == MB_TABLE_COIL || table == MB_TABLE_DISCRETE_INPUT;
}

/* The function code that reads a table; 0 for an unknown table. */
static inline uint8_t mb_table_read_fc(unsigned table)
{
    static const uint8_t fc[MB_TABLE_COUNT] = {
        [MB_TABLE_COIL] = MB_FC_READ_COILS,
        [MB_TABLE_DISCRETE_INPUT] = MB_FC_READ_DISCRETE_INPUTS,
        [MB_TABLE_INPUT] = MB_FC_READ_INPUT_REGISTERS,
        [MB_TABLE_HOLDING] = MB_FC_READ_HOLDING_REGISTERS,
    };
    return table < MB_TABLE_COUNT ? fc[table] : 0;
}

/* The table's name as the configuration spells it; "?" for an unknown one. */
static inline const char *mb_table_name(unsigned table)
{
    static const char *const names[MB_TABLE_COUNT] = {
        [MB_TABLE_COIL] = "coil",
        [MB_TABLE_DISCRETE_INPUT] = "discrete_input",
        [MB_TABLE_INPUT] = "input",
        [MB_TABLE_HOLDING] = "holding",
    };
    return table < MB_TABLE_COUNT ? names[table] : "?";
}

#endif
