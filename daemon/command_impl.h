/* Private to the command path's files (command.c, command_queue.c, command_exec.c,
 * command_dedup.c, command_audit.c) and the gateway's hooks: the service, its jobs and queues.
 *
 * Locks, each with one purpose, never two held at once except as said:
 *   commands.mu  the gateway's pollers as the entry points see them: held while a request finds
 *                its device's poller and queues its job, and by reload.c while it swaps the
 *                pollers (ib_command_lock). Under it only a queue's lock is taken.
 *   queue.mu     a poller's command queue (command_queue.c); then that poller's mu to wake it.
 *   dedup.mu     the ids seen (command_dedup.c): a leaf. */
#ifndef IB_COMMAND_IMPL_H
#define IB_COMMAND_IMPL_H

#include <pthread.h>
#include <stdatomic.h>

#include "command.h"
#include "command_cfg.h"

struct poller;
struct ib_gateway;
struct ib_cmd_dedup;
struct ib_cmd_north;
struct ib_north;
struct ib_north_req;
struct ib_config;

struct ib_commands {
    struct ib_gateway *gw;
    pthread_mutex_t mu;
    struct ib_cmd_dedup *dedup;
    struct ib_cmd_north *front; /* the MQTT front end (command_north.c) */
    atomic_uint_fast64_t counts[IB_CMD__COUNT];
};

/* One tag of a job. */
struct cmd_item {
    uint32_t grp, tag;
    bool run;            /* passed the checks: the poller writes/reads it */
    struct ib_value raw; /* what write_tag gets (a string points into sbuf) */
    struct ib_value eng; /* as requested (a string points into sbuf) */
    char sbuf[256];
};

/* A request on its way: made by the entry point, run by the poller, finished once. Owns
 * everything it points to. */
struct cmd_job {
    struct ib_commands *c;
    struct cmd_job *next;
    ib_command_done_fn fn;
    void *ud;
    struct ib_cmd_meta meta; /* id, requester and source point into the strings below */
    char id[IB_CMD_MAX_ID + 1];
    char requester[128];
    char device[257];
    const char *conn; /* the connection's name (the configuration outlives the job) */
    uint32_t dev;
    bool is_read;
    bool dup;          /* a repeat of a known id: its answer is not remembered again */
    int64_t queued_ms; /* monotonic */
    size_t n;
    struct cmd_item *items;
    struct ib_cmd_tag_result *res;
};

/* command.c: the service of a gateway (gateway.c makes and frees it; NULL on out-of-memory). */
struct ib_commands *ib_command_new(struct ib_gateway *gw);
void ib_command_free(struct ib_commands *c); /* accepts NULL */
/* reload.c, around the swap of the gateway's pollers and configuration. */
void ib_command_lock(struct ib_commands *c);
void ib_command_unlock(struct ib_commands *c);

/* command.c: count a request refused as a whole (malformed, unsigned), once. */
void ib_command_note(struct ib_commands *c, int result);

/* command_north.c: the MQTT front end. Attach to a north as it starts (subscribes to the
 * command topic when commands are enabled; main thread, before ib_north_start); detach before
 * it stops: answers after that are dropped. */
struct ib_cmd_north *ib_cmd_north_new(void);
void ib_cmd_north_free(struct ib_cmd_north *cn);
void ib_cmd_north_attach(struct ib_commands *c, struct ib_north *n, const struct ib_config *cfg);
void ib_cmd_north_detach(struct ib_commands *c);
/* paho's thread: a request from the command topic. */
void ib_cmd_north_on_request(void *ud, const struct ib_north_req *m);

/* command.c: answer the job (dedup, audit, counters, callback) and free it. Any thread. */
void ib_command_finish(struct cmd_job *j);

/* command_exec.c: run a job on its poller's thread (writes in order, verify, reads). */
void ib_command_exec(struct poller *p, struct cmd_job *j);

/* command_dedup.c: ids seen within the window. Leaf lock. */
struct ib_cmd_dedup *ib_cmd_dedup_new(size_t cap);
void ib_cmd_dedup_free(struct ib_cmd_dedup *d);
/* Remember `id` as in progress unless known: returns 0 (new, now reserved), or 1 with the first
 * answer's results copied into res (up to n of them, *found of them; *pending when the first
 * is still running). */
int ib_cmd_dedup_claim(struct ib_cmd_dedup *d, const char *id, int64_t now_ms, int64_t window_ms,
                       struct ib_cmd_tag_result *res, size_t n, size_t *found, bool *pending);
/* The results of `id`, kept for repeats. */
void ib_cmd_dedup_done(struct ib_cmd_dedup *d, const char *id, const struct ib_cmd_tag_result *res,
                       size_t n);

/* Forget `id`: its request was not applied at all and may be sent again with the same id. */
void ib_cmd_dedup_forget(struct ib_cmd_dedup *d, const char *id);

/* command_audit.c: every tag's result to the journal (IB_COMMAND_ID, IB_DEVICE, IB_TAG,
 * IB_OLD_VALUE, IB_NEW_VALUE, IB_RESULT, IB_REQUESTER). Any thread. */
void ib_command_audit(const struct ib_cmd_answer *a, const char *conn);

/* command_queue.c: a poller's bounded queue of jobs. */
struct ib_cmd_queue;
struct ib_cmd_queue *ib_cmd_queue_new(size_t cap, size_t n_groups);
void ib_cmd_queue_free(struct ib_cmd_queue *q); /* accepts NULL; the queue must be closed */
/* Queue `j` on poller `p` and wake it: 0, -1 when full, -2 when the poller stopped. */
int ib_cmd_queue_push(struct poller *p, struct cmd_job *j);
/* The poller's thread: true while jobs wait (read without the lock). */
bool ib_cmd_queue_pending(const struct ib_cmd_queue *q);
/* The poller's thread: run the oldest job. */
void ib_cmd_queue_run_one(struct poller *p);
/* The poller's thread as it stops: refuse new jobs, answer the waiting ones connection_lost. */
void ib_cmd_queue_close(struct poller *p);
/* The poller's thread: when tag (g, t) was last written (monotonic ms, 0: never), to read and
 * set; NULL when it cannot be kept (out of memory). */
int64_t *ib_cmd_queue_last_write(struct ib_cmd_queue *q, uint32_t g_index, uint32_t tag,
                                 uint32_t n_tags);

#endif
