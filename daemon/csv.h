/* The CSV reader of tag lists: RFC 4180 text (quoted cells with "" escapes, LF or CRLF line
 * ends) split into rows of cells with the position of each. A pure function over a buffer, with
 * no file, allocator state or global: testable and fuzzable on its own. Any thread. */
#ifndef IB_CSV_H
#define IB_CSV_H

#include <stddef.h>

#define IB_CSV_MAX_CELLS 64 /* cells in one row */

/* One cell: its text (quotes removed, "" unescaped, blanks and tabs around it trimmed),
 * NUL-terminated, and where it starts (1-based line and column, in bytes, of its first
 * character after the trimmed blanks). */
struct ib_csv_cell {
    const char *text;
    size_t len;
    int line, col;
};

/* Called for every row that is not empty and not a comment (a row starting with '#'), in
 * order, with its n cells (1 <= n <= IB_CSV_MAX_CELLS) and the line the row starts on. The
 * cells and their texts are the parser's: valid during the call only. Return 0 to go on, any
 * other value to stop the parse (ib_csv_parse then returns that value). */
typedef int (*ib_csv_row_fn)(void *ud, const struct ib_csv_cell *cells, int n, int line);

/* Why a text was refused: a static message and where (1-based line and column: of the byte
 * at fault, or of the cell that holds it); `byte` is that byte, or -1. */
struct ib_csv_error {
    const char *what;
    int line, col;
    int byte;
};

/* Parse `len` bytes at `buf` (need not be NUL-terminated; a leading UTF-8 byte order mark is
 * skipped). Refused, with the position: a quoted cell never closed, a NUL byte (anywhere: a
 * UTF-16 file or a binary one), a row of more than IB_CSV_MAX_CELLS cells, and a cell that is
 * not valid UTF-8 (a Latin-1 or Windows-1252 export; comment rows are not checked). Rows are
 * handed to `row` as they are read, so rows before an error have been delivered. Returns 0
 * after the last row; -1 with `err` set when the text is refused; or what `row` returned when
 * it stopped the parse. Reads only the `len` bytes; any thread. */
int ib_csv_parse(const char *buf, size_t len, ib_csv_row_fn row, void *ud,
                 struct ib_csv_error *err);

#endif
