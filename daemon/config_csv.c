/* A group's CSV tag list (tags_csv, docs/configuration.md) read into YAML nodes: a header row
 * naming the columns (the tag keys: name, table, address, type, order, scale, offset, unit,
 * deadband, range, writable, description...), then one tag per row, each node positioned at its
 * cell, so that every error about a tag names file:line:column. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config_loader.h"
#include "csv.h"

struct csv_ctx {
    struct ib_loader *L;
    struct ytree *t;
    struct ib_csv_cell header[IB_CSV_MAX_CELLS]; /* texts lowercased, in the arena */
    int n_header;
    bool have_header;
    const char *path;
};

static void csv_scalar(struct ytree *t, const char *text, size_t len, int line, int col)
{
    ib_ytree_scalar(t, text, len, line, col);
}

static void csv_header(struct csv_ctx *c, const struct ib_csv_cell *f, int n)
{
    for (int i = 0; i < n; i++) {
        char *t = ib_arena_strdup(&c->L->cfg->arena, f[i].text);
        for (char *p = t; *p; p++)
            *p = (char)(*p >= 'A' && *p <= 'Z' ? *p - 'A' + 'a' : *p);
        c->header[i] = f[i];
        c->header[i].text = t;
    }
    c->n_header = n;
    c->have_header = true;
}

/* A cell's value; a range written "min..max" becomes the list [min, max]. */
static void csv_value(struct csv_ctx *c, const char *column, const struct ib_csv_cell *f)
{
    const char *dots = strcmp(column, "range") == 0 ? strstr(f->text, "..") : NULL;
    if (!dots) {
        csv_scalar(c->t, f->text, f->len, f->line, f->col);
        return;
    }
    ib_ytree_begin(c->t, YNODE_SEQUENCE, f->line, f->col);
    csv_scalar(c->t, f->text, (size_t)(dots - f->text), f->line, f->col);
    csv_scalar(c->t, dots + 2, strlen(dots + 2), f->line, f->col);
    ib_ytree_end(c->t);
}

static int csv_row(void *ud, const struct ib_csv_cell *f, int n, int line)
{
    struct csv_ctx *c = ud;
    if (!c->have_header) {
        csv_header(c, f, n);
        return 0;
    }
    ib_ytree_begin(c->t, YNODE_MAPPING, line, 1); /* the next item of the list */
    for (int i = 0; i < n; i++) {
        if (!f[i].len)
            continue; /* an empty cell: the key is absent */
        if (i >= c->n_header) {
            struct ib_where w = {.file = c->path, .line = f[i].line, .col = f[i].col};
            ib_diag_add(c->L->diag, &w, NULL,
                        "this row has more cells than the header has columns");
            continue;
        }
        /* The key carries the cell's position too: an error about this tag's key (an unknown
         * column, a plugin's complaint) names the row, not only the header. */
        csv_scalar(c->t, c->header[i].text, strlen(c->header[i].text), f[i].line, f[i].col);
        csv_value(c, c->header[i].text, &f[i]);
    }
    ib_ytree_end(c->t);
    return 0;
}

/* A tag list is read whole into memory: bound it (a runaway export, or a path that names a
 * device file, must not take the memory of the machine). */
#define CSV_MAX_BYTES (64 << 20)

/* The whole file into `b`: a regular file of at most CSV_MAX_BYTES. Opened without blocking,
 * so that a FIFO is refused instead of waited on. -1 after an error (reported). */
static int slurp(struct ib_loader *L, const char *path, struct ynode *at, const char *gpath,
                 struct ib_buf *b)
{
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0) {
        ib_loader_err(L, at, gpath, "tags_csv", "cannot read %s: %s", path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    if (!S_ISREG(st.st_mode)) {
        ib_loader_err(L, at, gpath, "tags_csv", "%s is not a regular file: name a CSV file", path);
        close(fd);
        return -1;
    }
    char chunk[8192];
    ssize_t got = 0;
    while (b->len <= CSV_MAX_BYTES && (got = read(fd, chunk, sizeof chunk)) > 0)
        ib_buf_append(b, chunk, (size_t)got);
    int e = errno;
    close(fd);
    if (got < 0) {
        ib_loader_err(L, at, gpath, "tags_csv", "cannot read %s: %s", path, strerror(e));
        return -1;
    }
    if (b->len > CSV_MAX_BYTES) {
        ib_loader_err(L, at, gpath, "tags_csv",
                      "%s is larger than 64 MiB: a tag list may be at most that; split it over "
                      "groups",
                      path);
        return -1;
    }
    return 0;
}

int ib_loader_read_csv(struct ib_loader *L, const char *path, struct ynode *at, const char *gpath)
{
    struct ib_buf b = {0};
    if (slurp(L, path, at, gpath, &b) < 0) {
        ib_buf_free(&b);
        return -1;
    }
    struct ib_srcdoc *sd = ib_arena_alloc(&L->cfg->arena, sizeof *sd);
    sd->file = ib_arena_strdup(&L->cfg->arena, path);
    sd->dir = L->dir;
    ib_ytree_init(&sd->tree, &L->strings);
    struct csv_ctx c = {.L = L, .t = &sd->tree, .path = sd->file};
    ib_ytree_begin(c.t, YNODE_SEQUENCE, 1, 1); /* the root: a list of the rows */
    struct ib_csv_error ce = {0};
    int rc = ib_csv_parse(b.p ? b.p : "", b.len, csv_row, &c, &ce);
    ib_ytree_end(c.t);
    ib_buf_free(&b);
    if (rc < 0 || !c.have_header) {
        struct ib_where w = {
            .file = sd->file, .line = rc < 0 ? ce.line : 1, .col = rc < 0 ? ce.col : 1};
        if (rc < 0 && ce.byte > 0)
            ib_diag_add(L->diag, &w, NULL, "%s (byte 0x%02X)", ce.what, (unsigned)ce.byte);
        else
            ib_diag_add(L->diag, &w, NULL, "%s",
                        rc < 0 ? ce.what
                               : "the CSV file is empty: it needs a header row "
                                 "naming its columns (name,table,address,...)");
        ib_ytree_free(&sd->tree);
        return -1;
    }
    return (int)ib_loader_add_doc(L, sd);
}
