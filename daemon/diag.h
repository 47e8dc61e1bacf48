/* Diagnostics: configuration errors collected with their position (file:line:column and the key
 * path), so that --check and a refused start print every error, not only the first. */
#ifndef IB_DIAG_H
#define IB_DIAG_H

#include <stdarg.h>
#include <stddef.h>

/* Where a YAML node is. For a mapping, the position of each of its keys is kept too, so that a
 * plugin's complaint about one key points at that key. Owned by the configuration's arena. */
struct ib_keypos {
    const char *key;
    int line, col;
};

struct ib_where {
    const char *file;
    /* The key path of the node: connections[0].devices[1]. With `parent`, only its last step:
     * the path is the parent's, then ".", this, "[index]" (so that each of a group's thousands
     * of tags does not keep a copy of the group's path). */
    const char *path;
    const struct ib_where *parent;
    int line, col; /* 1-based */
    unsigned n_keys;
    unsigned index;
    const struct ib_keypos *keys;
};

/* At most IB_DIAG_KEEP messages are kept: 20,000 copies of one mistake must not take the
 * memory of 20,000 lines, nor bury the first ones. The rest are only counted, in `more`; the
 * last kept message then says how many ("... and N more errors"). */
#define IB_DIAG_KEEP 100

struct ib_diag {
    char **msgs;
    size_t n, cap;
    size_t more; /* errors past the first IB_DIAG_KEEP, counted, not kept */
};

/* Record "file:line:col: path[.key]: message". `w` may be NULL (no position). */
void ib_diag_add(struct ib_diag *d, const struct ib_where *w, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void ib_diag_addv(struct ib_diag *d, const struct ib_where *w, const char *key, const char *fmt,
                  va_list ap);
void ib_diag_free(struct ib_diag *d);

/* Every error added, kept or not (the "and N more" line is not one). */
static inline size_t ib_diag_total(const struct ib_diag *d)
{
    return d->more ? d->n - 1 + d->more : d->n;
}

#endif
