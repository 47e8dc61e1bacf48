/* The gateway's private parts, shared by its files (gateway.c, poller.c, poller_build.c,
 * publish.c, watch.c, reload.c, once.c) and by no one else: the poller, its groups and the
 * gateway's own state. Threads: see each field. */
#ifndef IB_GATEWAY_PRIV_H
#define IB_GATEWAY_PRIV_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <ironbridge/log.h>

#include "config_hash.h"
#include "log.h"
#include "gateway.h"
#include "metrics.h"
#include "record.h"
#include "report.h"
#include "util.h"

/* The daemon's side of a plugin instance. */
struct ib_host_ctx {
    const char *conn;
    struct ib_diag *diag; /* during create() only */
    struct ib_ratelimit rl;
};

struct group_rt {
    uint32_t dev, grp;
    const char *dev_name;
    const struct ib_group_config *g;
    const struct ib_cfg_group *cg;
    struct ib_sample *raw;  /* filled by the plugin */
    struct ib_sample *norm; /* after scaling */
    struct ib_group_enc enc;
    struct ib_buf body;
    struct ib_report_state *rs; /* per tag: what was last sent */
    uint32_t *send_idx;         /* per poll: the tags to send */
    char **tag_topics;          /* layout tag: per tag */
    char *topic;                /* layout batch (with a north) */
    int64_t next_due;
    int64_t last_poll_ms;        /* monotonic start of its last poll */
    struct ib_metrics_group *mx; /* its row in the gateway's registry (NULL: not counted) */
    struct ib_episode bad;       /* some tags bad: logged when it starts, changes reason, ends */
    /* main thread (the supervisor) only: the bad samples it publishes for a stalled call, made
     * at the group's first stall (most groups never stall) */
    struct ib_sample *stall_samples;
    struct ib_buf stall_body;
};

/* Which plugin callback a poller is in, for the supervisor's message. */
enum plugin_call { CALL_NONE = 0, CALL_OPEN, CALL_READ, CALL_CLOSE, CALL_WRITE };
/* "open()", "read_group()", ... */
const char *ib_poller_call_name(int what);

struct poller {
    struct ib_gateway *gw;
    struct ib_config *cfg; /* the generation this poller was built from (a reference) */
    unsigned char digest[IB_DIGEST_LEN];
    const struct ib_cfg_connection *cc;
    const struct ib_plugin *p;
    void *inst;
    struct ib_host_ctx hctx;
    struct group_rt *groups;
    size_t n_groups;

    pthread_t thread;
    bool running;
    pthread_mutex_t mu; /* guards stop, with cv to wake the sleeping poller */
    pthread_cond_t cv;
    bool stop;

    _Atomic int64_t heartbeat_ms;
    atomic_bool up;
    atomic_uint_fast64_t values;

    /* The deadline of plugin calls (docs/isolation.md): the poller stores when a call began
     * (monotonic ms, > 0) and which; 0 when it is in none. The supervisor (main thread) marks
     * a call past cc->call_timeout_ms stalled by negating the start with a compare-and-swap,
     * and the poller's exchange back to 0 sees the mark: one word, so a call that returns
     * just as it is marked is either marked and told, or not marked at all. */
    _Atomic int64_t call_since_ms;
    atomic_int call_what; /* enum plugin_call */
    bool abandoned; /* stopped while stalled: never joined nor freed (its thread may resume) */
    struct ib_cmd_queue *cmdq; /* commands from the platform (command_impl.h) */

    /* poller thread only: */
    bool open;
    struct ib_episode open_failing; /* failed attempts to open, since the last success */
    struct ib_episode losing;       /* connections lost while reading, until one stays up */
    unsigned reads_on_conn;         /* reads since the connection was opened */
    unsigned opens;                 /* attempts to open, ever */
    int64_t next_open_ms;
    uint64_t rng;
};

struct ib_gateway {
    struct ib_config *cfg; /* the configuration applied last (a reference) */
    struct ib_host host;
    struct poller **pollers;
    size_t n_pollers;
    struct ib_config *north_cfg; /* the generation the north's settings point into */
    char *config_status;         /* retained config-status payload, republished on connect */
    ib_north_msg_fn remote_fn;   /* receives signed configuration documents */
    void *remote_ud;
    struct ib_store *store; /* opened with the first north; stays across reloads */
    struct ib_north *north;
    struct ib_commands *commands; /* the command path (command_impl.h) */
    struct ib_metrics *metrics;   /* outlives pollers and norths: counters never go back */
    bool abandoned;               /* a poller was abandoned: its thread may still count */
    bool running;
    int64_t rate_t0;
    uint64_t rate_v0;
    uint64_t values_retired; /* values polled by pollers a reload stopped */
    double rate;
};

/* ---- gateway.c ---- */

/* Start a north for `cfg` (and open the store with the first one); 0, or -1 (logged). */
int ib_gateway_north_start(struct ib_gateway *gw, struct ib_config *cfg);
/* Stop and free the north (delivering what is queued first when `flush`). */
void ib_gateway_north_stop(struct ib_gateway *gw, bool flush);

/* ---- poller_build.c ---- */

/* A poller for connection `ci` of `cfg`, its plugin instance created (no I/O), not started.
 * Errors (the plugin's too) go to `diag`; NULL then. Main thread. */
struct poller *ib_poller_new(struct ib_gateway *gw, struct ib_config *cfg, size_t ci,
                             struct ib_diag *diag);
/* Accepts NULL; the poller must not be running. */
void ib_poller_free(struct poller *p);

/* ---- poller.c (main thread, except where said) ---- */

int ib_poller_start(struct poller *p); /* 0, or -1 (logged) */
void ib_poller_signal_stop(struct poller *p);
/* Join a stopped poller. One blocked in a plugin call past its call_timeout cannot be joined:
 * it is abandoned (its thread and memory left alone, for the call may still return) so that
 * stop and reload never hang on a plugin; the process stays correct, and the watchdog restarts
 * the service. Returns false then; the caller must not free it. */
bool ib_poller_join(struct poller *p);
bool ib_poller_stalled(struct poller *p);
/* One poll of one group: raw samples from the plugin, normalized into g->norm (opening the
 * connection first if needed). The poller's thread, or the main thread when none runs. */
int ib_poller_poll_group(struct poller *p, struct group_rt *g);
void ib_poller_close(struct poller *p); /* closes the plugin's connection if open */
/* Write tag `tag` of group `g` through the plugin (opening the connection first if needed),
 * bracketed for the supervisor; the raw value is the plugin's. Returns the plugin's ib_err.
 * The poller's thread, between polls (command_exec.c). */
int ib_poller_write(struct poller *p, struct group_rt *g, uint32_t tag, const struct ib_value *v);

/* ---- publish.c ---- */

/* Queue samples s[idx[0 .. n-1]] (all tags when idx is NULL) of group `g`, taken at `ts`, as
 * one record (layout batch) or one per tag (layout tag), encoded into `body`. The one way a
 * record is made: a poll (poller thread, g->body) and a stalled call (main thread,
 * g->stall_body) both come here. Nothing without a north. */
void ib_publish(struct poller *p, struct group_rt *g, struct ib_buf *body, int64_t ts,
                const struct ib_sample *s, const uint32_t *idx, uint32_t n);
/* Decide which tags of the poll to report (docs/reporting.md) and publish them. */
void ib_publish_poll(struct poller *p, struct group_rt *g, int64_t poll_ts);

#endif
