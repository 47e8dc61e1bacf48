/* Test harness for the built modbus.so: a fake host, configs built as the daemon builds them, and
 * a Modbus server thread of the test suite's own that speaks Modbus TCP, RTU over TCP or RTU on
 * a pty, answers through libmodbus (an implementation independent of the plugin's RTU framing),
 * and misbehaves on request: silent units, garbled, truncated or late answers. */
#ifndef IB_TEST_MODBUS_HARNESS_H
#define IB_TEST_MODBUS_HARNESS_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include <modbus.h>

#include <ironbridge/ironbridge.h>

#include "params.h"

extern const struct ib_plugin *plugin;

/* dlopen the module named by argv[1] (or $IB_MODBUS_PLUGIN) and set `plugin`; exits on error. */
void mbt_load_plugin(int argc, char **argv);

/* ---- Fake host ----------------------------------------------------------------------------- */

#define MBT_LOG_LINES 256

struct fake_host {
    struct ib_host host;
    unsigned n_logs;
    unsigned n_warnings;
    char last_log[512];
    char lines[MBT_LOG_LINES][256]; /* the first MBT_LOG_LINES log lines */
    int levels[MBT_LOG_LINES];      /* and their levels */
    unsigned n_config_errors;
    char config_keys[16][24];
    const void *config_where[16];
    char last_config_error[512];
};

void fake_init(struct fake_host *f);
struct ib_host_ctx *ctx_of(struct fake_host *f);
/* Log lines since line `from` that contain every one of the strings (NULL-terminated list). */
unsigned mbt_log_count(const struct fake_host *f, unsigned from, ...);
/* Log lines since line `from` at `level` or more important (IB_LOG_INFO: all but debug). */
unsigned mbt_log_count_level(const struct fake_host *f, unsigned from, int level);

/* ---- Configs as the daemon fills them -------------------------------------------------------- */

#define MBT_MAX_TAGS    64
#define MBT_MAX_DEVICES 8

struct mbt_config {
    struct mb_connection_params cp;
    struct mb_device_params dp[MBT_MAX_DEVICES];
    struct mb_tag_params tp[MBT_MAX_DEVICES][MBT_MAX_TAGS];
    char addr[MBT_MAX_DEVICES][MBT_MAX_TAGS][24];
    struct ib_tag_config tags[MBT_MAX_DEVICES][MBT_MAX_TAGS];
    struct ib_group_config group[MBT_MAX_DEVICES]; /* one group per device */
    struct ib_device_config device[MBT_MAX_DEVICES];
    char dev_names[MBT_MAX_DEVICES][16];
    struct ib_connection_config conn;
};

/* Zero the params, then apply every schema default (what the daemon does for absent keys). */
void fill_defaults(const struct ib_schema *schema, void *params);

/* A connection with one device "dev" (unit 1, group "g" of 1000 ms) and no tags. */
void mbt_config_tcp(struct mbt_config *c, int port);
void mbt_config_rtu(struct mbt_config *c, const char *serial_port);
void mbt_config_rtu_over_tcp(struct mbt_config *c, int port);
/* Another device with its own group; returns its index. */
uint32_t mbt_add_device(struct mbt_config *c, int unit_id);
/* A tag of device `dev`; address as written in YAML ("12", "modicon:400013"); table, type and
 * order -1 mean absent. Returns its index. */
uint32_t mbt_tag(struct mbt_config *c, uint32_t dev, const char *name, int32_t table,
                 const char *address, int32_t type, int32_t order, bool writable);
/* The same for device 0 with a numeric address. */
uint32_t add_tag(struct mbt_config *c, const char *name, enum mb_p_table table, int64_t address,
                 int32_t type, int32_t order, bool writable);

/* ---- The server ------------------------------------------------------------------------------ */

enum mbt_kind {
    MBT_TCP,     /* Modbus TCP on a loopback port */
    MBT_RTU_TCP, /* RTU frames on a loopback port */
    MBT_RTU_PTY, /* RTU frames on a pty; the plugin opens mbt_server.pty */
};

/* What the server does to its next answers. */
enum mbt_fault {
    MBT_OK = 0,
    MBT_SILENT,          /* read the request, never answer */
    MBT_WRONG_TID,       /* TCP: another transaction id */
    MBT_WRONG_LENGTH,    /* byte count one register short (the frame is consistent otherwise) */
    MBT_WRONG_FUNCTION,  /* another function code */
    MBT_WRONG_UNIT,      /* another unit id */
    MBT_BAD_CRC,         /* RTU: CRC flipped */
    MBT_TRUNCATED,       /* only the first half of the answer */
    MBT_TRAILING,        /* the answer, then 3 more bytes */
    MBT_GARBAGE,         /* 9 bytes of noise instead of the answer */
    MBT_WRONG_VALUE_CRC, /* RTU: one data byte changed, CRC left as it was */
    MBT_HOLD,            /* answer only once released (mbt_server_release) */
    MBT_DISCARD_WRITE,   /* answer a write as done but leave the registers as they were */
    MBT_FLIP,            /* XOR byte flip_pos % length of the answer with flip_xor */
    MBT_SLOW,            /* answer after slow_ms */
    MBT_LATE,            /* answer only once the next request has arrived, before reading it */
    MBT_LENGTH_FIELD,    /* TCP: the MBAP length says 46; RTU: the byte count 40 more (CRC
                            made to fit); the rest of the answer as it was */
};

struct mbt_server {
    enum mbt_kind kind;
    pthread_t thread;
    bool running;
    int listen_fd;
    int port;
    int pty_master;
    int pty_slave;
    char pty[64];
    int stop_pipe[2];
    modbus_t *ctx;        /* libmodbus of the server's kind, on sp[0] */
    int sp[2];            /* socketpair: requests in, answers out through libmodbus */
    pthread_mutex_t lock; /* guards map and everything below */
    pthread_cond_t cond;
    modbus_mapping_t *map;
    bool live[256];       /* units that answer (all by default) */
    bool refuse[200];     /* holding registers a read may not touch (exception 2) */
    enum mbt_fault fault; /* applied to the next fault_count answers */
    unsigned fault_count;
    unsigned flip_pos;
    unsigned slow_ms;
    uint8_t flip_xor;
    bool stopping, holding, released, late_sent;
    unsigned requests;
    unsigned unit_requests[256];
    unsigned connections;
    uint8_t last_fc;
    bool close_each; /* TCP kinds: close the connection after every answer */
};

struct mbt_server *mbt_server_start(enum mbt_kind kind);
void mbt_server_stop(struct mbt_server *s); /* the mapping stays readable */
void mbt_server_free(struct mbt_server *s);
void mbt_server_fault(struct mbt_server *s, enum mbt_fault f, unsigned count);
/* TCP kinds: close the connection after every answer (a device that serves one request per
 * connection), or not. */
void mbt_server_close_each(struct mbt_server *s, bool on);
/* Answer only the units in the list (others are silent). */
void mbt_server_units(struct mbt_server *s, const int *units, unsigned n);
/* MBT_HOLD: wait until the request is held, release it, wait until the late answer is sent. */
void mbt_server_release(struct mbt_server *s);
unsigned mbt_server_requests(struct mbt_server *s);
unsigned mbt_server_connections(struct mbt_server *s);
/* Refuse (exception 2) any read of the holding registers that touches [addr, addr + n). */
void mbt_server_refuse(struct mbt_server *s, int addr, int n, bool refuse);
void set_regs(struct mbt_server *s, int table_input, int addr, const uint16_t *v, int n);

/* ---- Fixture --------------------------------------------------------------------------------- */

struct fixture {
    struct fake_host fake;
    struct mbt_server *srv;
    struct mbt_config cfg;
    void *inst;
    struct ib_sample samples[MBT_MAX_TAGS];
};

struct fixture *mbt_fixture_new(enum mbt_kind kind);
int mbt_teardown(void **state);
void create_and_open(struct fixture *fx);
/* Close and destroy the instance, then create and open it again from the (changed) config. */
void mbt_recreate(struct fixture *fx);
/* read_group of device `dev` with every sample pre-filled with garbage, so an unfilled one
 * shows. */
int read_dev(struct fixture *fx, uint32_t dev);
int read_group(struct fixture *fx); /* device 0 */
void assert_good(const struct ib_sample *s, uint8_t vtype);
/* write_tag of device 0's tag with *v must return rc; with fc >= 0, the server's last request
 * must have been function fc. */
void write_expect(struct fixture *fx, uint32_t tag, const struct ib_value *v, int rc, int fc);
void assert_bad(const struct ib_sample *s, uint8_t reason, uint16_t code);

#endif
