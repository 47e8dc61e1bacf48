/* Register map of ironbridge-sim: the parsed map file, the libmodbus mapping it is laid out in,
 * and the per-tick re-evaluation of behaviour-driven values. */
#ifndef IB_SIM_MAP_H
#define IB_SIM_MAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <modbus.h>

struct sim_map;

/* Diagnostics go to stderr as "FILE:LINE: message" so editors can jump to them; NULL means the
 * map is unusable and the caller should exit with the usage status. */
struct sim_map *sim_map_load(const char *path);
void sim_map_free(struct sim_map *map);

/* The map keeps ownership; modbus_reply() reads and writes it directly. */
modbus_mapping_t *sim_map_mapping(struct sim_map *map);

bool sim_map_serves_unit(const struct sim_map *map, uint8_t unit);

/* Only behaviour-driven definitions are touched, so values clients wrote to const registers
 * survive ticks. */
void sim_map_tick(struct sim_map *map);

/* One-line human summary for the startup log. */
void sim_map_describe(const struct sim_map *map, char *buf, size_t len);

#endif
