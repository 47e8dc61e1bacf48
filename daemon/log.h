/* Logging: to journald with structured fields (IB_CONNECTION=, IB_DEVICE=, IB_TAG=) when stderr
 * is connected to the journal, otherwise one line per message on stderr. Thread-safe. */
#ifndef IB_LOG_H
#define IB_LOG_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>

#include <ironbridge/plugin.h>

/* Decide the sink (journald or stderr) and the threshold; call once before threads start. */
void ib_log_init(int level);
void ib_log_set_level(int level);
int ib_log_level(void);
/* Whether messages go to journald (with structured fields) rather than stderr. */
bool ib_log_journal(void);
/* Parse "error|warning|notice|info|debug"; -1 when unknown. */
int ib_log_level_parse(const char *s);

void ib_log(int level, const char *conn, const char *dev, const char *tag, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
void ib_logv(int level, const char *conn, const char *dev, const char *tag, const char *fmt,
             va_list ap);

#define ib_err(...)    ib_log(IB_LOG_ERR, NULL, NULL, NULL, __VA_ARGS__)
#define ib_warn(...)   ib_log(IB_LOG_WARNING, NULL, NULL, NULL, __VA_ARGS__)
#define ib_notice(...) ib_log(IB_LOG_NOTICE, NULL, NULL, NULL, __VA_ARGS__)
#define ib_info(...)   ib_log(IB_LOG_INFO, NULL, NULL, NULL, __VA_ARGS__)
#define ib_debug(...)  ib_log(IB_LOG_DEBUG, NULL, NULL, NULL, __VA_ARGS__)

/* A token bucket for messages that can repeat: at most `burst` per `interval_ms`; the number
 * suppressed is reported with the next message let through. Not thread-safe: one per owner. */
struct ib_ratelimit {
    int64_t interval_ms;
    unsigned burst;
    int64_t window_start;
    unsigned printed;
    unsigned suppressed;
};

#define IB_RATELIMIT_INIT(interval, n)                                                             \
    {                                                                                              \
        .interval_ms = (interval), .burst = (n)                                                    \
    }

/* Returns the number of messages suppressed before this one (>= 0) if it may be printed, or -1
 * if it must be dropped. */
int ib_ratelimit_ok(struct ib_ratelimit *rl, int64_t now_ms);

#endif
