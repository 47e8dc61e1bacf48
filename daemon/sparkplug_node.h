/* The Sparkplug B edge node (docs/sparkplug.md): one per gateway, a payload format of the north
 * (ib_north_format). It owns the session numbers (bdSeq persisted in a file, seq per message),
 * the births and deaths, the metric table with its aliases, and turns each stored record
 * (sparkplug_record.h) into a DDATA, DBIRTH or DDEATH when the north sends it.
 *
 * Threads: made and freed by the main thread while the north is stopped; the callbacks of its
 * format run on the north thread, except `message` (paho's thread), which only sets atomics. */
#ifndef IB_SPARKPLUG_NODE_H
#define IB_SPARKPLUG_NODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <ironbridge/value.h>

#include "north.h"
#include "store.h"

/* Node metrics have aliases 1..15; a device's metrics come from this alias on, in configuration
 * order (the gateway layer computes a group's first alias the same way: sparkplug_table.c). */
#define IB_SPB_FIRST_DEVICE_ALIAS 16

enum ib_north_payload { IB_FORMAT_JSON = 0, IB_FORMAT_SPARKPLUG_B = 1 };

/* north.format and the north.sparkplug section (docs/sparkplug.md). */
struct ib_spb_cfg {
    int32_t format; /* enum ib_north_payload */
    const char *group_id;
    const char *primary_host_id; /* or NULL: births do not wait for a host */
    const char *bdseq_file;      /* derived: where bdSeq survives restarts */
};

/* One metric: a tag of a device (name "group/tag"). The strings belong to the caller (the
 * configuration), which outlives the node. */
struct ib_spb_metric_def {
    const char *name;
    const char *tag;  /* the tag's own name (what the command path addresses) */
    const char *unit; /* or NULL */
    bool has_range;   /* the tag's range: engLow, engHigh */
    double eng_low, eng_high;
    uint32_t device; /* index into the devices */
    bool scaled;     /* its value is computed: a Double */
    bool writable;
};

struct ib_spb_device_def {
    const char *name;
    uint32_t first, n; /* its metrics: defs[first .. first+n-1], aliases first+16 .. */
};

/* The gateway's own figures for NBIRTH; called on the north thread. */
struct ib_spb_figures {
    uint64_t uptime_s, backlog, connections_up;
};
typedef void (*ib_spb_figures_fn)(void *ud, struct ib_spb_figures *out);

/* A DCMD metric for the command path: called on paho's thread with the device's name, the
 * tag's metric definition, the value (IB_V_NONE when it could not be converted) and the DCMD's
 * timestamp (0: none). Returns 0 when the write was handed over (its refusal, if any, comes
 * later: ib_spb_node_refused), else -1 (refused now: logged and counted by the node). It must
 * not block. */
typedef int (*ib_spb_write_fn)(void *ud, const char *device, const struct ib_spb_metric_def *m,
                               const struct ib_value *v, int64_t ts_ms);

struct ib_spb_node;

/* Copies nothing: cfg, node_id, devices and metrics must outlive the node. NULL on error (out
 * of memory). Reads the last bdSeq from cfg->bdseq_file (missing: none yet). */
struct ib_spb_node *ib_spb_node_new(const struct ib_spb_cfg *cfg, const char *node_id,
                                    const struct ib_spb_device_def *devs, size_t n_devs,
                                    const struct ib_spb_metric_def *metrics, size_t n_metrics);
void ib_spb_node_set_figures(struct ib_spb_node *node, ib_spb_figures_fn fn, void *ud);
/* The layout of the table (ib_gateway_spb_layout): records of another are skipped. */
void ib_spb_node_set_layout(struct ib_spb_node *node, uint32_t layout);
void ib_spb_node_set_writer(struct ib_spb_node *node, ib_spb_write_fn fn, void *ud);
/* The north format to hand to ib_north_set_format; valid while the node lives. */
const struct ib_north_format *ib_spb_node_format(struct ib_spb_node *node);
void ib_spb_node_free(struct ib_spb_node *node);

/* The command path refused a DCMD write it had taken: counted (any thread). */
void ib_spb_node_refused(struct ib_spb_node *node);

/* Counters (any thread). */
uint64_t ib_spb_node_refused_writes(const struct ib_spb_node *node);
unsigned ib_spb_node_bdseq(const struct ib_spb_node *node);

#endif
