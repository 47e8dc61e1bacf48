/* Where applied signed documents are kept: the service's state directory ($STATE_DIRECTORY/remote,
 * else /var/lib/ironbridge/remote), the one place the shipped unit lets the daemon write. Finding
 * the kept document and reading it back, durably; the write itself is ib_remote_write_file. */
#include "remote.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define DEFAULT_STATE_DIR "/var/lib/ironbridge"

void ib_remote_dir(char *buf, size_t len)
{
    /* systemd's StateDirectory= sets $STATE_DIRECTORY (several paths are ':'-separated): the
     * first is ours, as for the store's default path. */
    const char *sd = getenv("STATE_DIRECTORY");
    size_t n = sd ? strcspn(sd, ":") : 0;
    if (n)
        snprintf(buf, len, "%.*s/remote", (int)n, sd);
    else
        snprintf(buf, len, "%s/remote", DEFAULT_STATE_DIR);
}

static bool is_doc_name(const char *name)
{
    size_t n = strlen(name);
    return name[0] != '.' && n > 5 && strcmp(name + n - 5, ".yaml") == 0;
}

/* Reads at most IB_REMOTE_MAX_FILE bytes of a regular file into `text`. */
static int read_regular(const char *path, struct ib_buf *text, char *err, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0) {
        snprintf(err, errlen, "%s: cannot read it: %s", path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    if (!S_ISREG(st.st_mode) || st.st_size > IB_REMOTE_MAX_FILE) {
        snprintf(err, errlen, "%s: not a regular file of at most %d bytes", path,
                 IB_REMOTE_MAX_FILE);
        close(fd);
        return -1;
    }
    ib_buf_reset(text);
    char chunk[8192];
    ssize_t r;
    while ((r = read(fd, chunk, sizeof chunk)) > 0 && text->len <= IB_REMOTE_MAX_FILE)
        if (ib_buf_append(text, chunk, (size_t)r) < 0)
            r = -1;
    int e = errno;
    close(fd);
    if (r < 0 || text->len > IB_REMOTE_MAX_FILE || ib_buf_append(text, "", 0) < 0) {
        snprintf(err, errlen, "%s: cannot read it: %s", path,
                 r < 0 ? strerror(e) : "it grew past the limit");
        return -1;
    }
    return 0;
}

int ib_remote_stored_read(const char *dir, struct ib_remote_stored *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    DIR *d = opendir(dir);
    if (!d) {
        if (errno == ENOENT)
            return 0;
        snprintf(err, errlen, "%s: cannot read the directory of applied signed documents: %s", dir,
                 strerror(errno));
        return -1;
    }
    int found = 0;
    for (struct dirent *e; (e = readdir(d));) {
        if (!is_doc_name(e->d_name))
            continue;
        if (found++) {
            snprintf(err, errlen,
                     "%s holds more than one document (%s and %s): keep the one named as "
                     "remote_config.file",
                     dir, out->name, e->d_name);
            break;
        }
        snprintf(out->name, sizeof out->name, "%s", e->d_name);
    }
    closedir(d);
    if (found != 1)
        return found ? -1 : 0;
    snprintf(out->path, sizeof out->path, "%s/%s", dir, out->name);
    if (read_regular(out->path, &out->text, err, errlen) < 0) {
        ib_buf_free(&out->text);
        return -1;
    }
    out->version = ib_remote_text_version(out->text.p);
    return 1;
}

void ib_remote_stored_free(struct ib_remote_stored *s)
{
    ib_buf_free(&s->text);
}

int ib_remote_stored_prune(const char *dir, const char *keep)
{
    DIR *d = opendir(dir);
    if (!d)
        return -1;
    int rc = 0;
    for (struct dirent *e; (e = readdir(d));)
        if (is_doc_name(e->d_name) && strcmp(e->d_name, keep) != 0 &&
            unlinkat(dirfd(d), e->d_name, 0) < 0)
            rc = -1;
    if (rc == 0 && fsync(dirfd(d)) < 0)
        rc = -1;
    closedir(d);
    return rc;
}
