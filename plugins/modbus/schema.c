/* Modbus plugin: its configuration schemas (connection, device, tag keys with their types,
 * ranges, defaults and descriptions), which the daemon validates and documents, and the maps from
 * the schemas' choice indices to the codec's and planner's own enums. Data only. */
#include <stddef.h>

#include <modbus.h>

#include <ironbridge/ironbridge.h>

#include "pipe.h" /* MB_PIPE_MAX */
#include "schema.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

const char *const mb_schema_transport_choices[] = {
    [MB_P_TRANSPORT_TCP] = "tcp",
    [MB_P_TRANSPORT_RTU] = "rtu",
    [MB_P_TRANSPORT_RTU_OVER_TCP] = "rtu_over_tcp",
    [MB_P_TRANSPORT_COUNT] = NULL,
};

const char *const mb_schema_order_choices[] = {
    [MB_P_ORDER_ABCD] = "ABCD", [MB_P_ORDER_CDAB] = "CDAB", [MB_P_ORDER_BADC] = "BADC",
    [MB_P_ORDER_DCBA] = "DCBA", [MB_P_ORDER_AB] = "AB",     [MB_P_ORDER_BA] = "BA",
    [MB_P_ORDER_COUNT] = NULL,
};

/* byte_order: the 32/64-bit orders, the first four of order_choices. */
static const char *const order32_choices[] = {"ABCD", "CDAB", "BADC", "DCBA", NULL};

static const char *const order16_choices[] = {
    [MB_P_ORDER16_AB] = "AB",
    [MB_P_ORDER16_BA] = "BA",
    [MB_P_ORDER16_COUNT] = NULL,
};

const char *const mb_schema_table_choices[] = {
    [MB_P_TABLE_COIL] = "coil",   [MB_P_TABLE_DISCRETE_INPUT] = "discrete_input",
    [MB_P_TABLE_INPUT] = "input", [MB_P_TABLE_HOLDING] = "holding",
    [MB_P_TABLE_COUNT] = NULL,
};

static const char *const type_choices[] = {
    [MB_P_TYPE_BOOL] = "bool",   [MB_P_TYPE_INT16] = "int16",   [MB_P_TYPE_UINT16] = "uint16",
    [MB_P_TYPE_INT32] = "int32", [MB_P_TYPE_UINT32] = "uint32", [MB_P_TYPE_FLOAT32] = "float32",
    [MB_P_TYPE_INT64] = "int64", [MB_P_TYPE_UINT64] = "uint64", [MB_P_TYPE_FLOAT64] = "float64",
    [MB_P_TYPE_BIT] = "bit",     [MB_P_TYPE_STRING] = "string", [MB_P_TYPE_COUNT] = NULL,
};

static const char *const implementation_choices[] = {
    [MB_P_IMPL_NATIVE] = "native",
    [MB_P_IMPL_LIBMODBUS] = "libmodbus",
    [MB_P_IMPL_COUNT] = NULL,
};

static const char *const parity_choices[] = {
    [MB_P_PARITY_NONE] = "none",
    [MB_P_PARITY_EVEN] = "even",
    [MB_P_PARITY_ODD] = "odd",
    [MB_P_PARITY_COUNT] = NULL,
};

#define X(b) #b,
static const char *const baud_choices[] = {MB_P_BAUD_CHOICES NULL};
#undef X
#define X(b) b,
const int mb_schema_baud_values[] = {MB_P_BAUD_CHOICES};
#undef X

static const char *const data_bits_choices[] = {"5", "6", "7", "8", NULL};
static const char *const stop_bits_choices[] = {"1", "2", NULL};
static const char *const bit_choices[] = {"0", "1",  "2",  "3",  "4",  "5",  "6",  "7", "8",
                                          "9", "10", "11", "12", "13", "14", "15", NULL};

/* Schema indices to the codec's and planner's own enums. */
const enum mb_order mb_schema_order_map[MB_P_ORDER_COUNT] = {
    [MB_P_ORDER_ABCD] = MB_ORDER_ABCD, [MB_P_ORDER_CDAB] = MB_ORDER_CDAB,
    [MB_P_ORDER_BADC] = MB_ORDER_BADC, [MB_P_ORDER_DCBA] = MB_ORDER_DCBA,
    [MB_P_ORDER_AB] = MB_ORDER_AB,     [MB_P_ORDER_BA] = MB_ORDER_BA,
};

const enum mb_table mb_schema_table_map[MB_P_TABLE_COUNT] = {
    [MB_P_TABLE_COIL] = MB_TABLE_COIL,
    [MB_P_TABLE_DISCRETE_INPUT] = MB_TABLE_DISCRETE_INPUT,
    [MB_P_TABLE_INPUT] = MB_TABLE_INPUT,
    [MB_P_TABLE_HOLDING] = MB_TABLE_HOLDING,
};

const enum mb_type mb_schema_type_map[MB_P_TYPE_COUNT] = {
    [MB_P_TYPE_BOOL] = MB_TYPE_BOOL,       [MB_P_TYPE_INT16] = MB_TYPE_INT16,
    [MB_P_TYPE_UINT16] = MB_TYPE_UINT16,   [MB_P_TYPE_INT32] = MB_TYPE_INT32,
    [MB_P_TYPE_UINT32] = MB_TYPE_UINT32,   [MB_P_TYPE_FLOAT32] = MB_TYPE_FLOAT32,
    [MB_P_TYPE_INT64] = MB_TYPE_INT64,     [MB_P_TYPE_UINT64] = MB_TYPE_UINT64,
    [MB_P_TYPE_FLOAT64] = MB_TYPE_FLOAT64, [MB_P_TYPE_BIT] = MB_TYPE_BIT,
    [MB_P_TYPE_STRING] = MB_TYPE_STRING,
};

const size_t mb_schema_n_baud_values = ARRAY_SIZE(mb_schema_baud_values);

#define E_INT(st, k, f, d, lo, hi, desc)                                                           \
    {                                                                                              \
        .key = k, .type = IB_S_INT, .flags = IB_SF_RANGE, .offset = offsetof(st, f), .def = d,     \
        .min = lo, .max = hi, .description = desc                                                  \
    }
#define E_BOOL(st, k, f, d, desc)                                                                  \
    {                                                                                              \
        .key = k, .type = IB_S_BOOL, .offset = offsetof(st, f), .def = d, .description = desc      \
    }
#define E_ENUM(st, k, f, d, ch, desc)                                                              \
    {                                                                                              \
        .key = k, .type = IB_S_ENUM, .offset = offsetof(st, f), .def = d, .choices = ch,           \
        .description = desc                                                                        \
    }
#define E_STR(st, k, f, desc)                                                                      \
    {                                                                                              \
        .key = k, .type = IB_S_STRING, .offset = offsetof(st, f), .description = desc              \
    }

#define CP struct mb_connection_params
static const struct ib_schema_entry connection_entries[] = {
    E_ENUM(CP, "transport", transport, "tcp", mb_schema_transport_choices,
           "How the devices are reached: tcp (Modbus TCP), rtu (Modbus RTU on a serial port) or "
           "rtu_over_tcp (RTU frames through a serial-to-Ethernet converter)"),
    E_STR(CP, "host", host,
          "tcp, rtu_over_tcp: host name or IP address (IPv4 or IPv6) of the server, gateway or "
          "converter; required there"),
    {.key = "port",
     .type = IB_S_INT,
     .flags = IB_SF_RANGE,
     .offset = offsetof(CP, port),
     .min = 1,
     .max = 65535,
     .description = "tcp, rtu_over_tcp: TCP port; 502 when absent"},
    E_STR(CP, "serial_port", serial_port,
          "rtu: the serial device, e.g. /dev/ttyUSB0 or /dev/serial/by-id/...; required there"),
    E_ENUM(CP, "baud", baud, NULL, baud_choices, "rtu: bits per second; 19200 when absent"),
    E_ENUM(CP, "parity", parity, NULL, parity_choices,
           "rtu: none, even or odd; even (the Modbus default) when absent"),
    E_ENUM(CP, "data_bits", data_bits, NULL, data_bits_choices,
           "rtu: data bits per character; 8 when absent (RTU frames need 8)"),
    E_ENUM(CP, "stop_bits", stop_bits, NULL, stop_bits_choices, "rtu: 1 or 2; 1 when absent"),
    E_BOOL(CP, "rs485", rs485, "false",
           "rtu: switch the port into RS-485 mode (driver-controlled transmit enable) at open; "
           "opening fails when the port has no RS-485 mode"),
    E_INT(CP, "inter_frame_delay_us", inter_frame_delay_us, "0", 0, 1000000,
          "Silence kept between frames, in microseconds; 0: 3.5 characters at the baud rate for "
          "rtu (1750 above 19200 baud), none for tcp and rtu_over_tcp"),
    E_INT(CP, "timeout_ms", timeout_ms, "1000", 1, 60000,
          "How long to wait for the first byte of a response, in ms"),
    E_INT(CP, "byte_timeout_ms", byte_timeout_ms, "500", 1, 60000,
          "The longest pause allowed between two bytes of one response, in ms"),
    E_INT(CP, "connect_timeout_ms", connect_timeout_ms, "3000", 1, 60000,
          "tcp, rtu_over_tcp: how long to wait for the TCP connection, in ms"),
    E_BOOL(CP, "close_after_poll", close_after_poll, "false",
           "Close the connection after every poll and open it again for the next (devices that "
           "serve one client at a time)"),
    E_ENUM(CP, "implementation", implementation, NULL, implementation_choices,
           "tcp: native (the plugin's own Modbus TCP framing; the default) or libmodbus (Modbus "
           "TCP through libmodbus, one request at a time, for a device that works only with it)"),
    E_INT(CP, "max_outstanding", max_outstanding, "1", 1, MB_PIPE_MAX,
          "tcp, native: requests of a poll in flight at once, answers matched by transaction id "
          "(saves round trips on slow links); 1: one at a time. A device that mishandles several "
          "in flight is detected and falls back to 1 (logged)"),
};
#undef CP

#define DP struct mb_device_params
static const struct ib_schema_entry device_entries[] = {
    E_INT(DP, "unit_id", unit_id, "1", 0, 255,
          "Modbus unit identifier (slave address): 1..247 on rtu kinds; 0..247 or 255 on tcp"),
    E_ENUM(DP, "byte_order", byte_order, "ABCD", order32_choices,
           "Default order of 32- and 64-bit values: ABCD (big-endian, standard), CDAB (words "
           "swapped), BADC (bytes swapped) or DCBA (little-endian)"),
    E_ENUM(DP, "byte_order_16", byte_order_16, "AB", order16_choices,
           "Default order of 16-bit values, bits of registers and strings: AB (standard) or BA "
           "(bytes swapped)"),
    E_INT(DP, "timeout_ms", timeout_ms, "0", 0, 60000,
          "Response timeout for this device in ms; 0 uses the connection's"),
    E_INT(DP, "retries", retries, "1", 0, 10,
          "Repeats of a request that timed out or came back garbled (not of an exception)"),
    E_INT(DP, "max_registers", max_registers, "125", 1, MODBUS_MAX_READ_REGISTERS,
          "Most registers the device accepts in one read request"),
    E_INT(DP, "max_bits", max_bits, "2000", 1, MODBUS_MAX_READ_BITS,
          "Most coils or discrete inputs the device accepts in one read request"),
    E_INT(DP, "max_gap", max_gap, "10", 0, MODBUS_MAX_READ_REGISTERS - 1,
          "Unused registers a read may span to join two tags into one request (16 times as "
          "many bits in the coil and discrete input tables); 0: join only adjacent tags"),
    E_BOOL(DP, "one_request_per_tag", one_request_per_tag, "false",
           "Read every tag with a request of its own (devices that refuse block reads)"),
    E_INT(DP, "pause_between_requests_ms", pause_between_requests_ms, "0", 0, 60000,
          "Pause before each request to this device after the previous request, in ms"),
    E_BOOL(DP, "write_multiple", write_multiple, "false",
           "Write single coils and registers with FC15/FC16 instead of FC5/FC6 (devices without "
           "FC5/FC6)"),
    E_INT(DP, "backoff_max_ms", backoff_max_ms, "60000", 0, 3600000,
          "A device that stops answering is asked again after 1, 2, 4... poll intervals, at "
          "most this far apart, in ms; 0: ask at every poll"),
};
#undef DP

#define TP struct mb_tag_params
static const struct ib_schema_entry tag_entries[] = {
    {.key = "address",
     .type = IB_S_STRING,
     .flags = IB_SF_REQUIRED,
     .offset = offsetof(TP, address),
     .description = "0-based protocol address of the first register or bit (3027 or 0x0BD3), "
                    "or a Modicon reference marked as such: modicon:403028 (holding 3027)"},
    E_ENUM(TP, "table", table, NULL, mb_schema_table_choices,
           "Modbus table: coil, discrete_input, input (register) or holding (register); "
           "required unless the address is a modicon: reference"),
    E_ENUM(TP, "type", type, NULL, type_choices,
           "Value type; default bool for coil/discrete_input, uint16 for registers"),
    E_ENUM(TP, "order", order, NULL, mb_schema_order_choices,
           "Byte/word order overriding the device's: AB or BA for 16-bit types, bit and string; "
           "ABCD, CDAB, BADC or DCBA for 32- and 64-bit types"),
    E_ENUM(TP, "bit", bit, NULL, bit_choices,
           "type bit: which bit of the register, 0 (least significant) to 15; required there"),
    E_INT(TP, "length", length, NULL, 1, MODBUS_MAX_READ_REGISTERS,
          "type string: registers the text occupies (two bytes each); required there"),
    E_BOOL(TP, "verify_write", verify_write, "false",
           "After a write, read the value back and report a mismatch as a failed write"),
};
#undef TP

const struct ib_schema mb_connection_schema = {
    .struct_size = sizeof(struct mb_connection_params),
    .n_entries = ARRAY_SIZE(connection_entries),
    .entries = connection_entries,
};

const struct ib_schema mb_device_schema = {
    .struct_size = sizeof(struct mb_device_params),
    .n_entries = ARRAY_SIZE(device_entries),
    .entries = device_entries,
};

const struct ib_schema mb_tag_schema = {
    .struct_size = sizeof(struct mb_tag_params),
    .n_entries = ARRAY_SIZE(tag_entries),
    .entries = tag_entries,
};
