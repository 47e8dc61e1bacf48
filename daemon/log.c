/* Logging to journald (structured fields) or stderr, with a level threshold and rate limiting.
 * The sink is chosen once at start from $JOURNAL_STREAM, as systemd documents. */
#include "log.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <systemd/sd-journal.h>

static atomic_int log_level = IB_LOG_INFO;
static bool log_journal;

static const char *const level_names[] = {
    [IB_LOG_ERR] = "error", [IB_LOG_WARNING] = "warning", [IB_LOG_NOTICE] = "notice",
    [IB_LOG_INFO] = "info", [IB_LOG_DEBUG] = "debug",
};

static bool stderr_is_journal(void)
{
    const char *js = getenv("JOURNAL_STREAM");
    if (!js)
        return false;
    unsigned long long dev, ino;
    if (sscanf(js, "%llu:%llu", &dev, &ino) != 2)
        return false;
    struct stat st;
    if (fstat(STDERR_FILENO, &st) < 0)
        return false;
    return (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

void ib_log_init(int level)
{
    ib_log_set_level(level);
    log_journal = stderr_is_journal();
}

void ib_log_set_level(int level)
{
    if (level < IB_LOG_ERR)
        level = IB_LOG_ERR;
    if (level > IB_LOG_DEBUG)
        level = IB_LOG_DEBUG;
    atomic_store(&log_level, level);
}

bool ib_log_journal(void)
{
    return log_journal;
}

int ib_log_level(void)
{
    return atomic_load(&log_level);
}

int ib_log_level_parse(const char *s)
{
    for (int l = IB_LOG_ERR; l <= IB_LOG_DEBUG; l++)
        if (strcmp(s, level_names[l]) == 0)
            return l;
    return -1;
}

static void log_journald(int level, const char *conn, const char *dev, const char *tag,
                         const char *msg)
{
    char prio[16];
    snprintf(prio, sizeof prio, "PRIORITY=%d", level);
    struct iovec iov[6];
    int n = 0;
    char *fields[3] = {NULL, NULL, NULL};
    iov[n++] = (struct iovec){.iov_base = (void *)msg, .iov_len = strlen(msg)};
    iov[n++] = (struct iovec){.iov_base = prio, .iov_len = strlen(prio)};
    iov[n++] = (struct iovec){.iov_base = (void *)"SYSLOG_IDENTIFIER=ironbridge", .iov_len = 28};
    const char *keys[3] = {"IB_CONNECTION=", "IB_DEVICE=", "IB_TAG="};
    const char *vals[3] = {conn, dev, tag};
    for (int i = 0; i < 3; i++) {
        if (!vals[i])
            continue;
        if (asprintf(&fields[i], "%s%s", keys[i], vals[i]) < 0) {
            fields[i] = NULL;
            continue;
        }
        iov[n++] = (struct iovec){.iov_base = fields[i], .iov_len = strlen(fields[i])};
    }
    sd_journal_sendv(iov, n);
    for (int i = 0; i < 3; i++)
        free(fields[i]);
}

void ib_logv(int level, const char *conn, const char *dev, const char *tag, const char *fmt,
             va_list ap)
{
    if (level > atomic_load(&log_level))
        return;
    char text[1024];
    int off = 0;
    if (log_journal) {
        off = snprintf(text, sizeof text, "MESSAGE=");
    } else {
        struct timespec ts;
        struct tm tm;
        clock_gettime(CLOCK_REALTIME, &ts);
        gmtime_r(&ts.tv_sec, &tm);
        off = (int)strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%S", &tm);
        off += snprintf(text + off, sizeof text - (size_t)off, ".%03ldZ %s ", ts.tv_nsec / 1000000,
                        level_names[level]);
    }
    if (conn && !log_journal) {
        off += snprintf(text + off, sizeof text - (size_t)off, "[%s%s%s%s%s] ", conn,
                        dev ? "/" : "", dev ? dev : "", tag ? "/" : "", tag ? tag : "");
    } else if (log_journal && (conn || dev)) {
        /* The fields carry the names too, but a person reading `journalctl` wants them inline. */
        off += snprintf(text + off, sizeof text - (size_t)off, "[%s%s%s%s%s] ", conn ? conn : "",
                        dev ? "/" : "", dev ? dev : "", tag ? "/" : "", tag ? tag : "");
    }
    if (off < (int)sizeof text)
        vsnprintf(text + off, sizeof text - (size_t)off, fmt, ap);
    if (log_journal) {
        log_journald(level, conn, dev, tag, text);
    } else {
        size_t len = strnlen(text, sizeof text - 2);
        text[len++] = '\n';
        /* One write() per line keeps lines of concurrent threads whole. */
        ssize_t w = write(STDERR_FILENO, text, len);
        (void)w;
    }
}

void ib_log(int level, const char *conn, const char *dev, const char *tag, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    ib_logv(level, conn, dev, tag, fmt, ap);
    va_end(ap);
}

int ib_ratelimit_ok(struct ib_ratelimit *rl, int64_t now_ms)
{
    if (now_ms - rl->window_start >= rl->interval_ms) {
        rl->window_start = now_ms;
        rl->printed = 0;
    }
    if (rl->printed >= rl->burst) {
        rl->suppressed++;
        return -1;
    }
    rl->printed++;
    int s = (int)rl->suppressed;
    rl->suppressed = 0;
    return s;
}
