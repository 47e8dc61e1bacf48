/* Diagnostics: formatted configuration errors, collected in order.
 * A message names where (file:line:col and key path) and what is wrong. */
#include "diag.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

/* The key path of a where that has a parent. */
static void where_path(const struct ib_where *w, struct ib_buf *b)
{
    if (w->parent)
        where_path(w->parent, b);
    else if (w->path)
        ib_buf_puts(b, w->path);
    if (w->parent)
        ib_buf_printf(b, ".%s[%u]", w->path, w->index);
}

/* Past the cap: count, and keep the last message saying how many were left out. */
static void count_more(struct ib_diag *d)
{
    d->more++;
    char *out = NULL;
    if (asprintf(&out, "... and %zu more error%s (only the first %d are shown)", d->more,
                 d->more == 1 ? "" : "s", IB_DIAG_KEEP) < 0)
        return;
    if (d->n == IB_DIAG_KEEP) {
        if (d->n == d->cap) {
            char **m = realloc(d->msgs, (d->cap + 1) * sizeof *m);
            if (!m) {
                free(out);
                return;
            }
            d->msgs = m;
            d->cap++;
        }
        d->msgs[d->n++] = out;
        return;
    }
    free(d->msgs[d->n - 1]);
    d->msgs[d->n - 1] = out;
}

void ib_diag_addv(struct ib_diag *d, const struct ib_where *w, const char *key, const char *fmt,
                  va_list ap)
{
    if (d->n >= IB_DIAG_KEEP) {
        count_more(d);
        return;
    }
    char msg[768];
    vsnprintf(msg, sizeof msg, fmt, ap);
    int line = w ? w->line : 0, col = w ? w->col : 0;
    if (w && key) {
        for (unsigned i = 0; i < w->n_keys; i++)
            if (strcmp(w->keys[i].key, key) == 0) {
                line = w->keys[i].line;
                col = w->keys[i].col;
                break;
            }
    }
    char *out = NULL;
    int rc;
    struct ib_buf pb = {0};
    if (w && w->parent)
        where_path(w, &pb);
    const char *path = pb.p ? pb.p : w && w->path ? w->path : "";
    const char *dot = (*path && key) ? "." : "";
    if (w && w->file && line > 0 && !*path && !key)
        rc = asprintf(&out, "%s:%d:%d: %s", w->file, line, col, msg);
    else if (w && w->file && line > 0)
        rc = asprintf(&out, "%s:%d:%d: %s%s%s: %s", w->file, line, col, path, dot, key ? key : "",
                      msg);
    else if (w && w->file)
        rc = asprintf(&out, "%s: %s%s%s%s%s", w->file, path, dot, key ? key : "",
                      (*path || key) ? ": " : "", msg);
    else
        rc = asprintf(&out, "%s", msg);
    ib_buf_free(&pb);
    if (rc < 0)
        return;
    if (d->n == d->cap) {
        size_t cap = d->cap ? d->cap * 2 : 16;
        char **m = realloc(d->msgs, cap * sizeof *m);
        if (!m) {
            free(out);
            return;
        }
        d->msgs = m;
        d->cap = cap;
    }
    d->msgs[d->n++] = out;
}

void ib_diag_add(struct ib_diag *d, const struct ib_where *w, const char *key, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    ib_diag_addv(d, w, key, fmt, ap);
    va_end(ap);
}

void ib_diag_free(struct ib_diag *d)
{
    if (!d)
        return;
    for (size_t i = 0; i < d->n; i++)
        free(d->msgs[i]);
    free(d->msgs);
    d->msgs = NULL;
    d->n = d->cap = d->more = 0;
}
