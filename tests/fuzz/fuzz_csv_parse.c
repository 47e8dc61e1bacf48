/* fuzz_csv_parse.c: fuzz target of the CSV reader alone (ib_csv_parse over the input bytes, no
 * file): besides the sanitizers it checks what the reader promises its callers: 1..64 cells a
 * row, each cell NUL-terminated at its length with no NUL inside, valid UTF-8 (a cell that is
 * not is refused), positions that start at 1 and never go backwards. The `csv` target covers
 * the same bytes through the configuration loader. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "csv.h"
#include "fuzz_util.h"

/* Valid UTF-8 per RFC 3629: no overlong forms, no surrogates, nothing above U+10FFFF. */
static int utf8_ok(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i], need;
        uint32_t cp, min;
        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xE0) == 0xC0) {
            need = 1, cp = c & 0x1F, min = 0x80;
        } else if ((c & 0xF0) == 0xE0) {
            need = 2, cp = c & 0x0F, min = 0x800;
        } else if ((c & 0xF8) == 0xF0) {
            need = 3, cp = c & 0x07, min = 0x10000;
        } else {
            return 0;
        }
        if (n - i <= need)
            return 0;
        for (unsigned k = 1; k <= need; k++) {
            if ((s[i + k] & 0xC0) != 0x80)
                return 0;
            cp = cp << 6 | (s[i + k] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return 0;
        i += need + 1;
    }
    return 1;
}

static int row(void *ud, const struct ib_csv_cell *cells, int n, int line)
{
    int *last_line = ud;
    if (n < 1 || n > IB_CSV_MAX_CELLS || line < *last_line || line < 1)
        abort();
    *last_line = line;
    for (int i = 0; i < n; i++) {
        const struct ib_csv_cell *c = &cells[i];
        if (!c->text || c->text[c->len] != '\0' || strlen(c->text) != c->len)
            abort();
        if (c->line < line || c->col < 1 || !utf8_ok((const unsigned char *)c->text, c->len))
            abort();
    }
    return 0;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* A copy of exactly `size` bytes, so that ASan sees any read past the end. */
    char *buf = malloc(size ? size : 1);
    if (!buf)
        return 0;
    memcpy(buf, data, size);
    int last_line = 0;
    struct ib_csv_error err = {0};
    int rc = ib_csv_parse(buf, size, row, &last_line, &err);
    if (rc == -1 && (!err.what || err.line < 1 || err.col < 1))
        abort();
    free(buf);
    return 0;
}
