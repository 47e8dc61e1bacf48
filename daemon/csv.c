/* The CSV reader of tag lists: splits RFC 4180 text into rows of trimmed cells, each with the
 * line and column where it starts, and hands them to a callback; it refuses with the position
 * what it cannot read whole or faithfully (an unclosed quote, a NUL byte, too many cells,
 * invalid UTF-8). Reads only within the buffer's length. */
#include "csv.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* The text of the current row's cells, one after the other, each NUL-terminated. */
struct rowbuf {
    char *p;
    size_t len, cap;
};

struct parser {
    const char *p, *end;
    int line, col;
    bool comment; /* the row is a comment: its cells are not kept nor checked */
    struct rowbuf text;
    size_t off[IB_CSV_MAX_CELLS]; /* where each kept cell's text starts in `text` */
    struct ib_csv_cell cells[IB_CSV_MAX_CELLS];
    int n;
};

static void put(struct rowbuf *b, char c)
{
    if (b->len == b->cap) {
        size_t cap = b->cap ? 2 * b->cap : 256;
        char *p = realloc(b->p, cap);
        if (!p)
            abort();
        b->p = p;
        b->cap = cap;
    }
    b->p[b->len++] = c;
}

/* Not at a separator (nor at the end): the cell goes on. */
static bool in_cell(const struct parser *s)
{
    return s->p < s->end && *s->p != ',' && *s->p != '\n' && *s->p != '\r';
}

/* A quoted cell, from its opening quote; -1 if it is never closed. */
static int quoted(struct parser *s)
{
    s->p++;
    s->col++;
    for (;;) {
        if (s->p >= s->end)
            return -1;
        if (*s->p == '\0')
            return -2;
        if (*s->p == '"' && s->p + 1 < s->end && s->p[1] == '"') {
            put(&s->text, '"');
            s->p += 2;
            s->col += 2;
        } else if (*s->p == '"') {
            s->p++;
            s->col++;
            break;
        } else {
            if (*s->p == '\n') {
                s->line++;
                s->col = 0;
            }
            put(&s->text, *s->p++);
            s->col++;
        }
    }
    while (in_cell(s)) {
        if (*s->p == '\0')
            return -2;
        s->p++; /* text after a closing quote is ignored, as spreadsheets do */
        s->col++;
    }
    return 0;
}

/* Keep the cell whose text starts at `start`, trimmed of the blanks PLC tools put around it. */
static void keep(struct parser *s, size_t start, int line, int col)
{
    char *t = s->text.p + start;
    while (*t == ' ' || *t == '\t') {
        t++;
        col++;
    }
    size_t len = strlen(t);
    while (len && (t[len - 1] == ' ' || t[len - 1] == '\t'))
        t[--len] = '\0';
    s->off[s->n] = (size_t)(t - s->text.p);
    s->cells[s->n] = (struct ib_csv_cell){NULL, len, line, col};
    s->n++;
}

static int refuse(struct ib_csv_error *err, const char *what, int line, int col, int byte)
{
    *err = (struct ib_csv_error){what, line, col, byte};
    return -1;
}

static const char nul_byte[] =
    "a NUL byte: this is not a text file, or not UTF-8 (a UTF-16 export has a NUL in every other "
    "byte): save the tag list as CSV in UTF-8";

/* One cell and its separator; returns 1 when the row goes on, 0 at its end, -1 on error. */
static int cell(struct parser *s, struct ib_csv_error *err)
{
    size_t start = s->text.len;
    int line = s->line, col = s->col;
    if (s->p < s->end && *s->p == '"') {
        int rc = quoted(s);
        if (rc == -1)
            return refuse(err, "a quoted cell is never closed", line, col, -1);
        if (rc < 0)
            return refuse(err, nul_byte, s->line, s->col, 0);
    } else {
        while (in_cell(s)) {
            if (*s->p == '\0')
                return refuse(err, nul_byte, s->line, s->col, 0);
            put(&s->text, *s->p++);
            s->col++;
        }
    }
    char sep = s->p < s->end ? *s->p : '\0';
    put(&s->text, '\0');
    if (s->n < IB_CSV_MAX_CELLS)
        keep(s, start, line, col);
    else if (!s->comment)
        return refuse(err,
                      "more than 64 cells in this row: a tag list has at most 64 columns (is the "
                      "separator a ',' ?)",
                      line, col, -1);
    if (sep == ',') {
        s->p++;
        s->col++;
        return 1;
    }
    if (sep == '\r' && ++s->p < s->end && *s->p == '\n')
        s->p++;
    else if (sep == '\n')
        s->p++;
    s->line++;
    s->col = 1;
    return 0;
}

/* Length of the valid UTF-8 sequence at `p` (at most `n` bytes), or 0. */
static size_t utf8_seq(const unsigned char *p, size_t n)
{
    size_t len = p[0] < 0x80                    ? 1
                 : p[0] >= 0xc2 && p[0] <= 0xdf ? 2
                 : p[0] >= 0xe0 && p[0] <= 0xef ? 3
                 : p[0] >= 0xf0 && p[0] <= 0xf4 ? 4
                                                : 0;
    if (len == 0 || len > n)
        return 0;
    for (size_t i = 1; i < len; i++)
        if ((p[i] & 0xc0) != 0x80)
            return 0;
    /* No overlong forms, no surrogates, nothing past U+10FFFF. */
    if ((p[0] == 0xe0 && p[1] < 0xa0) || (p[0] == 0xed && p[1] > 0x9f) ||
        (p[0] == 0xf0 && p[1] < 0x90) || (p[0] == 0xf4 && p[1] > 0x8f))
        return 0;
    return len;
}

/* A cell's text must be UTF-8: it goes into JSON as it is. */
static int check_utf8(const struct ib_csv_cell *c, struct ib_csv_error *err)
{
    const unsigned char *p = (const unsigned char *)c->text;
    for (size_t i = 0; i < c->len;) {
        size_t n = utf8_seq(p + i, c->len - i);
        if (n == 0)
            return refuse(err,
                          "this cell is not valid UTF-8: the file is in another encoding "
                          "(a spreadsheet's Latin-1 or Windows-1252 export writes '\xc2\xb0"
                          "C' as "
                          "the bytes B0 43); save the tag list as CSV in UTF-8",
                          c->line, c->col, p[i]);
        i += n;
    }
    return 0;
}

static int parse(struct parser *s, ib_csv_row_fn row, void *ud, struct ib_csv_error *err)
{
    while (s->p < s->end) {
        int line = s->line, rc;
        s->comment = *s->p == '#';
        s->n = 0;
        s->text.len = 0;
        while ((rc = cell(s, err)) > 0)
            ;
        if (rc < 0)
            return -1;
        bool empty = s->n == 1 && s->cells[0].len == 0;
        if (s->comment || empty)
            continue;
        for (int i = 0; i < s->n; i++) {
            s->cells[i].text = s->text.p + s->off[i];
            if (check_utf8(&s->cells[i], err) < 0)
                return -1;
        }
        if ((rc = row(ud, s->cells, s->n, line)) != 0)
            return rc;
    }
    return 0;
}

int ib_csv_parse(const char *buf, size_t len, ib_csv_row_fn row, void *ud, struct ib_csv_error *err)
{
    struct parser s = {.p = buf, .end = buf + len, .line = 1, .col = 1};
    /* A UTF-8 byte order mark, which spreadsheet exports like to add. */
    if (len >= 3 && memcmp(buf, "\xef\xbb\xbf", 3) == 0)
        s.p += 3;
    int rc = parse(&s, row, ud, err);
    free(s.text.p);
    return rc;
}
