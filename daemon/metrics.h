/* The metrics registry: the counters and states that the pollers, the north and the command
 * path count into, read by the exposition, the health topic and `ironbridge status`.
 *
 * It belongs to the gateway and outlives every poller and north a reload rebuilds, so no
 * counter ever goes backwards while the process runs. Rows (one per connection, per device
 * group, per command result) are found or added under the registry's lock by the cold paths
 * (a poller being built, a north connecting); the hot path then counts through the row's
 * pointer with relaxed atomics and takes no lock. Rows are never freed before the registry, so
 * a pointer stays valid for the registry's whole life. Readers (any thread) take a snapshot
 * field by field: each figure is exact, two figures may be a few polls apart. */
#ifndef IB_METRICS_H
#define IB_METRICS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Histogram upper bounds, in ms, of the poll duration and of the publish-to-PUBACK latency;
 * the last bucket is +Inf. */
#define IB_METRICS_BUCKETS 12
extern const double ib_metrics_bucket_ms[IB_METRICS_BUCKETS - 1];

/* Reasons a poll failed, indexed by enum ib_reason (value.h); the exposition names them. */
#define IB_METRICS_REASONS 8

struct ib_metrics_hist {
    atomic_uint_fast64_t bucket[IB_METRICS_BUCKETS]; /* not cumulative; +Inf last */
    atomic_uint_fast64_t count;
    atomic_uint_fast64_t sum_us;
};

/* One group of one device of one connection. Counted by its poller's thread. */
struct ib_metrics_group {
    const char *conn, *dev, *grp; /* owned by the registry */
    atomic_uint_fast64_t polls;
    atomic_uint_fast64_t errors[IB_METRICS_REASONS]; /* polls with a bad tag, by its reason */
    struct ib_metrics_hist duration;
    _Atomic int64_t last_good_ms;   /* wall clock of the last poll with every tag good; 0 never */
    atomic_uint_fast64_t values;    /* samples read good */
    atomic_uint_fast64_t published; /* samples queued for the north */
    atomic_int up;                  /* -1: not polled yet; 0 down; 1 up (every tag good) */
    atomic_int reason;              /* enum ib_reason of the last bad poll's first bad tag */
    _Atomic int64_t since_ms;       /* wall clock: when `up` last changed */
    atomic_bool active;             /* in the running configuration */
    /* the main thread's tick (ib_metrics_tick): values per second over the last window */
    uint64_t rate_v0;
    int64_t rate_t0;
    _Atomic uint64_t rate_milli; /* values/s x 1000 */
    struct ib_metrics_group *next;
};

/* The north, whatever client a reload makes. */
struct ib_metrics_north {
    atomic_bool configured, connected;
    _Atomic int64_t since_ms; /* wall clock: when `connected` last changed */
    atomic_uint_fast64_t connects, published, acked, failed;
    struct ib_metrics_hist latency; /* publish to PUBACK */
};

/* The metrics section (docs/observability.md). */
struct ib_metrics_cfg {
    const char *listen;             /* host:port of the HTTP listener; NULL: off */
    bool allow_remote;              /* a listen address other than loopback is allowed */
    const char *path;               /* the one path answered */
    const char *tls_cert, *tls_key; /* HTTPS when both are set */
    const char *basic_auth_file;    /* "user:password" on its first line; NULL: no auth */
    int64_t health_interval_ms;     /* the MQTT health message; 0: off */
    const char *health_topic;       /* template; {gateway} */
    const char *status_socket;      /* the local socket of `ironbridge status`; "" off */
    int64_t max_connections;        /* of the HTTP listener */
    int64_t timeout_s;              /* an idle HTTP connection is closed after this */
    bool present;                   /* the section was written (it is hashed only then) */
};

struct ib_metrics;
struct ib_store;

/* NULL on out-of-memory. ib_metrics_free accepts NULL; no thread may count any more. */
struct ib_metrics *ib_metrics_new(void);
void ib_metrics_free(struct ib_metrics *m);

/* The row of (conn, dev, grp), added if new (strings copied); NULL on out-of-memory. Cold
 * path: takes the registry's lock. */
struct ib_metrics_group *ib_metrics_group(struct ib_metrics *m, const char *conn, const char *dev,
                                          const char *grp);
/* Show exactly rows[0 .. n-1] from now on (after a reload): removed devices leave the
 * exposition, their counters are kept should they come back. Main thread. */
void ib_metrics_set_active(struct ib_metrics *m, struct ib_metrics_group *const *rows, size_t n);

/* The hot path: one poll of a group (poller thread, no lock). `bad_reason` is the first bad
 * tag's reason, 0 when every tag was good; `good` the good samples. */
void ib_metrics_poll(struct ib_metrics_group *g, int64_t duration_us, uint32_t good,
                     uint8_t bad_reason, int64_t now_ms);
void ib_metrics_hist_add(struct ib_metrics_hist *h, int64_t us);
int64_t ib_metrics_now_us(void); /* CLOCK_MONOTONIC, microseconds */

/* A device: its groups folded (up only when every group is up). */
struct ib_metrics_device {
    const char *conn, *dev; /* NULL: empty */
    int up;                 /* -1: not polled yet; 0 down; 1 up */
    int reason;             /* the first down group's reason */
    int64_t since_ms;       /* the latest state change of its groups (wall clock) */
    int64_t last_good_ms;   /* its latest good poll (wall clock; 0 never) */
    uint64_t polls, values, published;
    double rate; /* values/s */
};
/* Fold group `g` into `d` (empty or of the same device): true; false (d untouched) when `g`
 * belongs to another device. Groups of a device are adjacent in the registry's order. */
bool ib_metrics_device_fold(struct ib_metrics_device *d, const struct ib_metrics_group *g);

/* Main thread, about once a second: the values/s of every group, over windows of >= 5 s. */
void ib_metrics_tick(struct ib_metrics *m, int64_t now_ms);

/* The north's counters (north and paho threads). */
struct ib_metrics_north *ib_metrics_north(struct ib_metrics *m);
void ib_metrics_north_set_connected(struct ib_metrics *m, bool on, const char *server);
/* The server in use (copied into buf, "" when none); any thread. */
void ib_metrics_north_server(struct ib_metrics *m, char *buf, size_t len);

/* A command handled, by its result ("ok", "denied", "timeout", ...: [a-z_]+, at most 31
 * bytes; at most 16 distinct results, more are counted as "other"). Any thread; takes the
 * registry's lock (commands are rare). */
void ib_metrics_command(struct ib_metrics *m, const char *result);
/* A source of command counters kept elsewhere (the command path's own atomics): `src` calls
 * emit(emit_ud, result, n) for each result. Set once by the gateway (main thread, before any
 * reader); `ud` must outlive every reader. */
typedef void (*ib_metrics_emit_fn)(void *emit_ud, const char *result, uint64_t n);
void ib_metrics_set_command_source(struct ib_metrics *m,
                                   void (*src)(void *ud, ib_metrics_emit_fn emit, void *emit_ud),
                                   void *ud);
/* Calls fn for each result counted so far (the source's, then ib_metrics_command's), under the
 * lock (fn must not call the registry). */
void ib_metrics_foreach_command(struct ib_metrics *m,
                                void (*fn)(void *ud, const char *result, uint64_t n), void *ud);

/* Calls fn for each active group row, under the lock (fn must not call the registry). */
void ib_metrics_foreach_group(struct ib_metrics *m,
                              void (*fn)(void *ud, const struct ib_metrics_group *g), void *ud);

/* The store whose figures are shown (set once it is opened, cleared before it is closed) and
 * the process facts: gateway id, configuration SHA-256 (copied; main thread). */
void ib_metrics_set_store(struct ib_metrics *m, struct ib_store *s);
struct ib_store *ib_metrics_store(struct ib_metrics *m);
void ib_metrics_set_info(struct ib_metrics *m, const char *gateway, const char *config_sha);
/* Copies of the info strings (any thread). */
void ib_metrics_info(struct ib_metrics *m, char *gateway, size_t glen, char *sha, size_t slen);
int64_t ib_metrics_started_ms(const struct ib_metrics *m); /* wall clock */

#endif
