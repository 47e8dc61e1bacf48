/* `ironbridge status`: one request to the daemon's status socket, the reply's header checked,
 * the report printed, its health returned as the exit status (status_client.h). */
#include "status_client.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "status_proto.h"

#define REPLY_MAX (16u << 20) /* a report is a few KiB per hundred devices */

const char *ib_status_client_default(char *buf, size_t len)
{
    const char *rd = getenv("RUNTIME_DIRECTORY");
    size_t n = rd ? strcspn(rd, ":") : 0;
    if (n)
        snprintf(buf, len, "%.*s/status.sock", (int)n, rd);
    else
        snprintf(buf, len, "/run/ironbridge/status.sock");
    return buf;
}

static int dial(const char *path)
{
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof a.sun_path) {
        errno = ENAMETOOLONG;
        return -1;
    }
    memcpy(a.sun_path, path, strlen(path) + 1);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct timeval tv = {5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

/* The whole reply (NUL-terminated) into *out; its length, or -1. */
static long read_reply(int fd, char **out)
{
    size_t cap = 65536, n = 0;
    char *buf = malloc(cap + 1);
    while (buf) {
        ssize_t r = read(fd, buf + n, cap - n);
        if (r < 0 || (r == 0 && n == 0)) {
            free(buf);
            return -1;
        }
        if (r == 0)
            break;
        n += (size_t)r;
        if (n == cap) {
            char *nb = cap < REPLY_MAX ? realloc(buf, cap * 2 + 1) : NULL;
            if (!nb)
                free(buf);
            buf = nb;
            cap *= 2;
        }
    }
    if (!buf)
        return -1;
    buf[n] = '\0';
    *out = buf;
    return (long)n;
}

int ib_status_client_run(const char *socket_path, bool json, FILE *out)
{
    int fd = dial(socket_path);
    if (fd < 0) {
        fprintf(stderr,
                "ironbridge status: cannot reach the daemon at %s: %s (is it running? is "
                "metrics.status_socket set elsewhere? members of the service's group may ask)\n",
                socket_path, strerror(errno));
        return IB_STATUS_UNREACHABLE;
    }
    const char *req = json ? "json\n" : "text\n";
    char *reply = NULL;
    long n = send(fd, req, 5, MSG_NOSIGNAL) == 5 ? read_reply(fd, &reply) : -1;
    close(fd);
    int code;
    size_t body;
    if (n < 0 || ib_status_reply_parse(reply, (size_t)n, &code, &body) < 0) {
        fprintf(stderr, "ironbridge status: %s did not answer as an ironbridge status socket\n",
                socket_path);
        free(reply);
        return IB_STATUS_UNREACHABLE;
    }
    fwrite(reply + body, 1, (size_t)n - body, out);
    free(reply);
    return code;
}
