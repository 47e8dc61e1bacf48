/* S7 plugin, addresses: a small hand-written scanner over the STEP 7 / TIA notation; every
 * refusal names what was expected and gives an example. */
#include "address.h"

#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "wire.h"

#define EXAMPLES                                                                                   \
    "write e.g. DB10.DBX4.3, DB10.DBB4, DB10.DBW4, DB10.DBD4, M0.1, MB5, MW10, MD20, I0.0, IW64, " \
    "Q4.2, QD8, T5 or C3"

struct scan {
    const char *p;
    char *why;
    size_t why_len;
    const char *text;
};

static int fail(struct scan *s, const char *msg)
{
    snprintf(s->why, s->why_len, "address '%s': %s; %s", s->text, msg, EXAMPLES);
    return -1;
}

/* A decimal number of at most 7 digits into *v; false when there is none. */
static bool number(struct scan *s, uint32_t *v)
{
    if (!isdigit((unsigned char)*s->p))
        return false;
    uint32_t n = 0;
    int digits = 0;
    while (isdigit((unsigned char)*s->p)) {
        if (++digits > 7)
            return false;
        n = n * 10 + (uint32_t)(*s->p++ - '0');
    }
    *v = n;
    return true;
}

static bool accept(struct scan *s, const char *word)
{
    size_t n = strlen(word);
    if (strncasecmp(s->p, word, n) != 0)
        return false;
    s->p += n;
    return true;
}

/* The width letter after M, I, Q or DBn.DB: X, B, W, D; or none (a bit address, M0.1). */
static int width_letter(struct scan *s, bool in_db)
{
    char c = (char)toupper((unsigned char)*s->p);
    if (c == 'X' || c == 'B' || c == 'W' || c == 'D') {
        s->p++;
        return c;
    }
    return in_db ? -1 : S7_W_BIT;
}

/* offset[.bit] after the width letter. */
static int offset_and_bit(struct scan *s, struct s7_address *a)
{
    uint32_t off = 0, bit = 0;
    if (!number(s, &off))
        return fail(s, "a byte offset (a number) is missing or too long");
    if (off > S7_ADDRESS_MAX_BYTE) {
        char msg[96];
        snprintf(msg, sizeof msg, "byte offset %u is past %u, the last byte of an area", off,
                 S7_ADDRESS_MAX_BYTE);
        return fail(s, msg);
    }
    a->offset = off;
    if (a->width == S7_W_BIT) {
        if (*s->p != '.')
            return fail(s, "a bit address needs .bit (0..7), as in M0.1 or DB1.DBX2.3");
        s->p++;
        if (!number(s, &bit) || bit > 7)
            return fail(s, "the bit number must be 0..7");
        a->bit = (uint8_t)bit;
    } else if (*s->p == '.') {
        return fail(s, "only bit addresses (X, or no width letter) take .bit; a byte, word or "
                       "double word address does not");
    }
    if (*s->p != '\0')
        return fail(s, "unexpected text after the address");
    return 0;
}

static int parse_db(struct scan *s, struct s7_address *a)
{
    uint32_t db = 0;
    if (!number(s, &db) || db == 0 || db > 65535)
        return fail(s, "the DB number must be 1..65535");
    a->db = (uint16_t)db;
    a->area = S7_AREA_DB;
    if (!accept(s, ".DB"))
        return fail(s, "a DB address continues with .DBX, .DBB, .DBW or .DBD");
    int w = width_letter(s, true);
    if (w < 0)
        return fail(s, "after .DB comes the width: X (bit), B (byte), W (word) or D (double word)");
    a->width = (uint8_t)w;
    return offset_and_bit(s, a);
}

static int parse_number_only(struct scan *s, struct s7_address *a, uint8_t area, uint8_t width)
{
    uint32_t n = 0;
    a->area = area;
    a->width = width;
    if (!number(s, &n) || n > 65535 || *s->p != '\0')
        return fail(s, width == S7_W_TIMER ? "a timer is T and its number 0..65535, as in T5"
                                           : "a counter is C and its number 0..65535, as in C3");
    a->offset = n;
    return 0;
}

int s7_address_parse(const char *text, struct s7_address *a, char *why, size_t why_len)
{
    struct scan s = {text, why, why_len, text ? text : ""};
    memset(a, 0, sizeof *a);
    if (!text || *text == '\0')
        return fail(&s, "empty");
    if (*s.p == '%')
        s.p++;
    if (accept(&s, "DB"))
        return parse_db(&s, a);
    char c = (char)toupper((unsigned char)*s.p);
    switch (c) {
    case 'M':
        a->area = S7_AREA_M;
        break;
    case 'I':
    case 'E':
        a->area = S7_AREA_I;
        break;
    case 'Q':
    case 'A':
        a->area = S7_AREA_Q;
        break;
    case 'T':
        s.p++;
        return parse_number_only(&s, a, S7_AREA_T, S7_W_TIMER);
    case 'C':
    case 'Z': /* German mnemonics: Z for Zähler */
        s.p++;
        return parse_number_only(&s, a, S7_AREA_C, S7_W_COUNTER);
    default:
        return fail(&s, "unknown area: it starts with DB, M, I/E, Q/A, T or C");
    }
    s.p++;
    if (!isdigit((unsigned char)*s.p) && toupper((unsigned char)*s.p) != 'X' &&
        toupper((unsigned char)*s.p) != 'B' && toupper((unsigned char)*s.p) != 'W' &&
        toupper((unsigned char)*s.p) != 'D')
        return fail(&s, "after the area comes a width letter (X, B, W, D) or a byte offset");
    a->width = (uint8_t)width_letter(&s, false);
    return offset_and_bit(&s, a);
}

static const char *area_letter(uint8_t area)
{
    switch (area) {
    case S7_AREA_I:
        return "I";
    case S7_AREA_Q:
        return "Q";
    case S7_AREA_M:
        return "M";
    case S7_AREA_T:
        return "T";
    case S7_AREA_C:
        return "C";
    default:
        return "?";
    }
}

const char *s7_address_format(const struct s7_address *a, char *buf, size_t len)
{
    if (a->width == S7_W_TIMER || a->width == S7_W_COUNTER)
        snprintf(buf, len, "%s%u", area_letter(a->area), a->offset);
    else if (a->area == S7_AREA_DB && a->width == S7_W_BIT)
        snprintf(buf, len, "DB%u.DBX%u.%u", a->db, a->offset, a->bit);
    else if (a->area == S7_AREA_DB)
        snprintf(buf, len, "DB%u.DB%c%u", a->db, a->width, a->offset);
    else if (a->width == S7_W_BIT)
        snprintf(buf, len, "%s%u.%u", area_letter(a->area), a->offset, a->bit);
    else
        snprintf(buf, len, "%s%c%u", area_letter(a->area), a->width, a->offset);
    return buf;
}
