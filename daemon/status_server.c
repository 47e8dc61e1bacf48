/* The status socket's server thread: accept, read one request line (1 s), write the header and
 * the report (2 s), close (status_server.h). */
#include "status_server.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "log.h"
#include "metrics_report.h"
#include "status_proto.h"
#include "util.h"

struct ib_status_server {
    struct ib_metrics *m;
    int fd;
    char path[108];
    pthread_t thread;
    atomic_bool stop;
};

static void set_timeout(int fd, int opt, int ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    setsockopt(fd, SOL_SOCKET, opt, &tv, sizeof tv);
}

/* One request line, byte by byte (it is tiny): its length with the \n, or -1. */
static ssize_t read_request(int fd, char *buf, size_t cap)
{
    size_t n = 0;
    while (n < cap) {
        ssize_t r = read(fd, buf + n, 1);
        if (r <= 0)
            return -1;
        if (buf[n++] == '\n')
            return (ssize_t)n;
    }
    return -1;
}

static void write_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w <= 0)
            return;
        p += w;
        n -= (size_t)w;
    }
}

static void serve(struct ib_status_server *s, int c)
{
    set_timeout(c, SO_RCVTIMEO, 1000);
    set_timeout(c, SO_SNDTIMEO, 2000);
    char req[IB_STATUS_REQUEST_MAX];
    ssize_t n = read_request(c, req, sizeof req);
    int fmt = n > 0 ? ib_status_request_parse(req, (size_t)n) : -1;
    if (fmt < 0) {
        static const char bad[] = "error: send \"text\\n\" or \"json\\n\"\n";
        write_all(c, bad, sizeof bad - 1);
        return;
    }
    struct ib_buf b = {0};
    int64_t now = ib_now_ms();
    enum ib_health h = ib_metrics_health(s->m, NULL, 0);
    int rc = fmt == IB_STATUS_JSON ? ib_metrics_report_json(s->m, &b, now)
                                   : ib_metrics_report_text(s->m, &b, now);
    char head[32];
    int hl = snprintf(head, sizeof head, "ironbridge-status 1 %d\n", (int)h);
    if (rc == 0) {
        write_all(c, head, (size_t)hl);
        write_all(c, b.p, b.len);
    }
    ib_buf_free(&b);
}

static void *server_main(void *arg)
{
    struct ib_status_server *s = arg;
    while (!atomic_load(&s->stop)) {
        struct pollfd p = {s->fd, POLLIN, 0};
        if (poll(&p, 1, 200) <= 0)
            continue;
        int c = accept4(s->fd, NULL, NULL, SOCK_CLOEXEC);
        if (c < 0)
            continue;
        serve(s, c);
        close(c);
    }
    return NULL;
}

static int bind_socket(struct ib_status_server *s, const char *path, char *err, size_t len)
{
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof a.sun_path) {
        snprintf(err, len, "status socket path %s is too long (%zu bytes at most)", path,
                 sizeof a.sun_path - 1);
        return -1;
    }
    memcpy(a.sun_path, path, strlen(path) + 1);
    memcpy(s->path, path, strlen(path) + 1);
    s->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    unlink(path);             /* a socket left by a killed daemon */
    mode_t old = umask(0117); /* 0660: the service's group may ask */
    int rc = s->fd < 0 ? -1 : bind(s->fd, (struct sockaddr *)&a, sizeof a);
    umask(old);
    if (rc < 0 || listen(s->fd, 8) < 0) {
        snprintf(err, len, "cannot listen on the status socket %s: %s", path, strerror(errno));
        return -1;
    }
    return 0;
}

struct ib_status_server *ib_status_server_start(const char *path, struct ib_metrics *m, char *err,
                                                size_t len)
{
    struct ib_status_server *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(err, len, "out of memory");
        return NULL;
    }
    s->m = m;
    s->fd = -1;
    if (bind_socket(s, path, err, len) < 0 || pthread_create(&s->thread, NULL, server_main, s)) {
        if (s->fd >= 0)
            close(s->fd);
        free(s);
        return NULL;
    }
    ib_thread_name(s->thread, "status", NULL);
    return s;
}

void ib_status_server_stop(struct ib_status_server *s)
{
    if (!s)
        return;
    atomic_store(&s->stop, true);
    pthread_join(s->thread, NULL);
    close(s->fd);
    unlink(s->path);
    free(s);
}
