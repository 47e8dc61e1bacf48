/* Test harness for the built s7.so: dlopens it as the daemon does, a fake host that keeps the
 * log, and configurations filled as the daemon fills them (schema defaults, then the keys a
 * test sets). Shared by test_s7_plugin (a scripted hostile peer) and test_s7_peer (snap7). */
#ifndef IB_TEST_S7_HARNESS_H
#define IB_TEST_S7_HARNESS_H

#include <stdbool.h>
#include <stdint.h>

#include <ironbridge/ironbridge.h>

#include "params.h"

#define S7T_MAX_TAGS 64

extern const struct ib_plugin *s7t_plugin;

/* dlopen argv[1] and set s7t_plugin; exits on error. */
void s7t_load_plugin(int argc, char **argv);

struct s7t_host {
    struct ib_host host;
    unsigned n_logs, n_config_errors;
    char log[64][320]; /* the last 64 lines, round robin */
};

void s7t_host_init(struct s7t_host *h);
struct ib_host_ctx *s7t_ctx(struct s7t_host *h);
/* Whether a logged line contains `needle`. */
bool s7t_logged(const struct s7t_host *h, const char *needle);

struct s7t_config {
    struct s7_connection_params cp;
    struct s7_device_params dp;
    struct s7_tag_params tp[S7T_MAX_TAGS];
    struct ib_tag_config tags[S7T_MAX_TAGS];
    char names[S7T_MAX_TAGS][16];
    struct ib_group_config group;
    struct ib_device_config device;
    struct ib_connection_config conn;
};

/* One device "plc" with one group "g" on 127.0.0.1:port, defaults filled, no tags. */
void s7t_config(struct s7t_config *c, int port);
/* A tag; type -1: by the address; length 0: none. Returns its index. */
uint32_t s7t_tag(struct s7t_config *c, const char *address, int32_t type, int64_t length,
                 bool writable);

#endif
