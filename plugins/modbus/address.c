/* Modbus tag addresses: the plain 0-based form and the marked Modicon form. Strict on purpose: a
 * reference written one way and read the other is off by one, or by a whole table. */
#include "address.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <ironbridge/error.h>

#include "proto.h"

static bool all_digits(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return false;
    return n > 0;
}

static int hex_digit(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

__attribute__((format(printf, 3, 4))) static int fail(char *err, size_t errlen, const char *fmt,
                                                      ...)
{
    if (errlen > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return IB_ERR_INVALID;
}

static int parse_modicon(const char *ref, struct mb_address *out, char *err, size_t errlen)
{
    size_t n = strlen(ref);
    if (!all_digits(ref, n) || (n != 5 && n != 6))
        return fail(
            err, errlen,
            "'%s' is not a Modicon reference: write modicon: then 5 digits (modicon:40001) or 6 "
            "digits (modicon:400001)",
            ref);
    int table;
    switch (ref[0]) {
    case '0':
        table = MB_TABLE_COIL;
        break;
    case '1':
        table = MB_TABLE_DISCRETE_INPUT;
        break;
    case '3':
        table = MB_TABLE_INPUT;
        break;
    case '4':
        table = MB_TABLE_HOLDING;
        break;
    default:
        return fail(err, errlen,
                    "Modicon reference %s: the first digit names the table and must be 0 (coil), "
                    "1 (discrete input), 3 (input register) or 4 (holding register)",
                    ref);
    }
    unsigned long number = 0;
    for (size_t i = 1; i < n; i++)
        number = number * 10 + (unsigned long)(ref[i] - '0');
    if (number == 0)
        return fail(err, errlen, "Modicon reference %s: the numbers count from 1 (x0001)", ref);
    if (number > 65536)
        return fail(err, errlen, "Modicon reference %s is past the last address (x65536)", ref);
    out->table = table;
    out->address = (uint32_t)(number - 1);
    return 0;
}

/* The Modicon reference a plain number would be if it were marked, when that is a valid one:
 * the hint for an unmarked reference names only a marked form that parses. */
static bool marked_parses(const char *text)
{
    struct mb_address a;
    return parse_modicon(text, &a, NULL, 0) == 0;
}

static int parse_hex(const char *text, size_t n, unsigned long *v, char *err, size_t errlen)
{
    *v = 0;
    for (size_t i = 2; i < n; i++) {
        int d = hex_digit(text[i]);
        if (d < 0)
            return fail(err, errlen, "address %s is not a hexadecimal number", text);
        *v = *v * 16 + (unsigned long)d;
        if (*v > 0xFFFF)
            return fail(err, errlen,
                        "address %s is past 0xFFFF: protocol addresses are 0x0000 to 0xFFFF (0 "
                        "to 65535)",
                        text);
    }
    return 0;
}

/* A decimal number past 65535 or with a leading zero: refused, with a hint that works. */
static int refuse_decimal(const char *text, size_t n, char *err, size_t errlen)
{
    size_t z = 0;
    while (z + 1 < n && text[z] == '0')
        z++;
    unsigned long v = 0;
    for (size_t i = z; i < n && v <= 65535; i++)
        v = v * 10 + (unsigned long)(text[i] - '0');
    bool fits = v <= 65535;
    if (z > 0 && !fits && marked_parses(text))
        return fail(err, errlen,
                    "address %s has a leading zero, like a Modicon coil reference, and is past "
                    "65535 without it: mark the reference (modicon:%s)",
                    text, text);
    if (z > 0 && marked_parses(text))
        return fail(err, errlen,
                    "address %s has a leading zero, like a Modicon coil reference: write the "
                    "0-based protocol address without it (%lu), or mark the reference "
                    "(modicon:%s)",
                    text, v, text);
    if (z > 0 && fits)
        return fail(err, errlen,
                    "address %s has a leading zero: write the 0-based protocol address without "
                    "it (%lu)",
                    text, v);
    if (marked_parses(text))
        return fail(err, errlen,
                    "address %s is past 65535; if it is a Modicon reference, mark it: modicon:%s",
                    text, text);
    return fail(err, errlen,
                "address %s is past 65535: protocol addresses are 0 to 65535 (0x0000 to 0xFFFF); "
                "a Modicon reference is 5 or 6 digits after the marker (modicon:400001 to "
                "modicon:465536 for the holding registers)",
                text);
}

int mb_address_parse(const char *text, struct mb_address *out, char *err, size_t errlen)
{
    if (errlen > 0)
        err[0] = '\0';
    if (!text || text[0] == '\0')
        return fail(err, errlen, "the address is empty");
    size_t marker = strlen(MB_MODICON_MARKER);
    if (strncmp(text, MB_MODICON_MARKER, marker) == 0)
        return parse_modicon(text + marker, out, err, errlen);
    if (strncasecmp(text, MB_MODICON_MARKER, marker) == 0)
        return fail(err, errlen, "the marker of '%s' is written in lower case: modicon:%s", text,
                    text + marker);

    unsigned long v = 0;
    size_t n = strlen(text);
    if (n > 2 && text[0] == '0' && (text[1] == 'x' || text[1] == 'X')) {
        if (parse_hex(text, n, &v, err, errlen) != 0)
            return IB_ERR_INVALID;
    } else {
        if (!all_digits(text, n))
            return fail(err, errlen,
                        "address '%s' is not a number: write the 0-based protocol address "
                        "(3027 or 0x0BD3) or a marked Modicon reference (modicon:403028)",
                        text);
        if ((n > 1 && text[0] == '0') || n > 5)
            return refuse_decimal(text, n, err, errlen);
        for (size_t i = 0; i < n; i++)
            v = v * 10 + (unsigned long)(text[i] - '0');
        if (v > 65535)
            return refuse_decimal(text, n, err, errlen);
    }
    out->table = -1;
    out->address = (uint32_t)v;
    return 0;
}
