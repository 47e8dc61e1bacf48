/* The Prometheus text exposition of the metrics registry, its store and the process (format
 * 0.0.4; the families are listed in docs/observability.md). */
#ifndef IB_METRICS_TEXT_H
#define IB_METRICS_TEXT_H

#include <stdint.h>

#include "metrics.h"
#include "util.h"

/* Write the whole exposition into `b` (reset first; the caller owns and frees it). Any
 * thread. Returns 0, or -1 when memory ran out (b then holds a part). */
int ib_metrics_render(struct ib_metrics *m, struct ib_buf *b, int64_t now_ms);

/* "ok", "not_polled" or the reason a down device's first bad group was bad ("timeout"). */
const char *ib_metrics_device_reason(const struct ib_metrics_device *d);

#endif
