/* Sizes and durations written the way people write them, parsed exactly (sizes in integers
 * only, so "1GiB" is 1073741824 and nothing is rounded), and sizes printed back for people. */
#include "units.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

struct unit {
    const char *name;
    int64_t factor;
};

/* Splits "  12 GiB " into 12 and "GiB"; returns -1 when there is no leading integer. */
static int split(const char *s, uint64_t *num, char *unit, size_t unit_len)
{
    while (isspace((unsigned char)*s))
        s++;
    if (!isdigit((unsigned char)*s))
        return -1;
    uint64_t v = 0;
    for (; isdigit((unsigned char)*s); s++) {
        if (v > (UINT64_MAX - 9) / 10)
            return -1;
        v = v * 10 + (uint64_t)(*s - '0');
    }
    while (isspace((unsigned char)*s))
        s++;
    size_t n = strlen(s);
    while (n && isspace((unsigned char)s[n - 1]))
        n--;
    if (n >= unit_len)
        return -1;
    memcpy(unit, s, n);
    unit[n] = '\0';
    *num = v;
    return 0;
}

static int scale(const char *s, const struct unit *units, size_t n_units, int64_t *out)
{
    uint64_t v;
    char u[8];
    if (split(s, &v, u, sizeof u) < 0)
        return -1;
    for (size_t i = 0; i < n_units; i++)
        if (strcmp(u, units[i].name) == 0) {
            if (v > (uint64_t)INT64_MAX / (uint64_t)units[i].factor)
                return -1;
            *out = (int64_t)v * units[i].factor;
            return 0;
        }
    return -1;
}

int ib_units_parse_size(const char *s, int64_t *bytes)
{
    static const struct unit units[] = {
        {"", 1},
        {"B", 1},
        {"k", 1000},
        {"K", 1000},
        {"kB", 1000},
        {"KB", 1000},
        {"KiB", 1LL << 10},
        {"M", 1000000},
        {"MB", 1000000},
        {"MiB", 1LL << 20},
        {"G", 1000000000},
        {"GB", 1000000000},
        {"GiB", 1LL << 30},
        {"T", 1000000000000},
        {"TB", 1000000000000},
        {"TiB", 1LL << 40},
    };
    if (!s) /* an empty value (`max_bytes:`): the loader reported it already */
        return -1;
    return scale(s, units, sizeof units / sizeof units[0], bytes);
}

void ib_units_format_size(char *buf, unsigned len, uint64_t bytes)
{
    static const char *const names[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double v = (double)bytes;
    unsigned i = 0;
    while (v >= 1024.0 && i < 4) {
        v /= 1024.0;
        i++;
    }
    if (i == 0)
        snprintf(buf, len, "%llu B", (unsigned long long)bytes);
    else
        snprintf(buf, len, "%.1f %s", v, names[i]);
}

/* "500ms", "60s", "5min", "2h", "7d" (also "1.5s") -> ms. A bare number has no unit: refused. */
int ib_units_parse_duration_ms(const char *s, int64_t *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || errno || !isfinite(v) || v < 0)
        return -1;
    static const struct {
        const char *unit;
        double ms;
    } units[] = {{"ms", 1},    {"s", 1000},    {"sec", 1000},  {"min", 60000},
                 {"m", 60000}, {"h", 3600000}, {"d", 86400000}};
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
        if (strcmp(end, units[i].unit) == 0) {
            double ms = v * units[i].ms;
            if (ms > 9.2e18 || ms != floor(ms))
                return -1;
            *out = (int64_t)ms;
            return 0;
        }
    return -1;
}
