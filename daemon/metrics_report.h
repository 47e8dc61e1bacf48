/* The gateway's health as a person and a machine read it: one JSON document (the MQTT health
 * message and `ironbridge status --json`), the same as text lines (`ironbridge status`), and
 * the verdict healthy / degraded / down. Any thread; reads the registry and its store. */
#ifndef IB_METRICS_REPORT_H
#define IB_METRICS_REPORT_H

#include <stdint.h>

#include "metrics.h"
#include "util.h"

/* The exit status of `ironbridge status` (docs/observability.md). */
enum ib_health {
    IB_HEALTH_OK = 0,       /* every device up, the broker connected (or no north) */
    IB_HEALTH_DEGRADED = 1, /* some device down or not polled yet, or the store's disk failing */
    IB_HEALTH_DOWN = 2,     /* the broker unreachable, or every device down */
};
const char *ib_health_name(enum ib_health h); /* "healthy", "degraded", "down" */

/* The verdict and, in why (may be NULL), a phrase naming the cause. */
enum ib_health ib_metrics_health(struct ib_metrics *m, char *why, size_t len);

/* Write the document into `b` (reset first). Returns 0, or -1 when memory ran out. */
int ib_metrics_report_json(struct ib_metrics *m, struct ib_buf *b, int64_t now_ms);
/* The same as lines for a person. */
int ib_metrics_report_text(struct ib_metrics *m, struct ib_buf *b, int64_t now_ms);

#endif
