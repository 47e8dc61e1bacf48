/* Map file support for ironbridge-sim: parses the line-based register map, lays it out in a
 * libmodbus mapping and re-encodes behaviour-driven values on every tick. */

#include "sim_map.h"

#include <ctype.h>
#include <errno.h>
#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define ADDRESS_SPACE   65536u
#define MAX_TOKENS      16
#define MAX_STRING_REGS 125 /* the most one read request can return */

enum table { TBL_COIL, TBL_DISCRETE, TBL_INPUT, TBL_HOLDING, TBL_COUNT };

static const char *const table_names[TBL_COUNT] = {"coil", "discrete", "input", "holding"};

enum kind { KIND_BOOL, KIND_SIGNED, KIND_UNSIGNED, KIND_FLOAT, KIND_STRING };

struct scalar_type {
    const char *name;
    enum kind kind;
    unsigned bits;
};

static const struct scalar_type scalar_types[] = {
    {"bool", KIND_BOOL, 1},        {"int16", KIND_SIGNED, 16},    {"uint16", KIND_UNSIGNED, 16},
    {"int32", KIND_SIGNED, 32},    {"uint32", KIND_UNSIGNED, 32}, {"int64", KIND_SIGNED, 64},
    {"uint64", KIND_UNSIGNED, 64}, {"float32", KIND_FLOAT, 32},   {"float64", KIND_FLOAT, 64},
};

enum behaviour { BEH_CONST, BEH_RAMP, BEH_SINE, BEH_STEP, BEH_RANDOM, BEH_CLOCK };

/* Integers are carried as 64-bit two's complement patterns (sign-extended for signed types) so
 * one code path serves every width and signedness; floats are carried as double. */
struct value {
    uint64_t i;
    double f;
};

struct def {
    int line;
    enum table table;
    unsigned address;
    unsigned nregs; /* registers occupied, or 1 for a bit */
    enum kind kind;
    unsigned bits;
    char type_name[16];
    bool swap_bytes;
    bool swap_words;
    enum behaviour beh;
    union {
        struct {
            struct value start, max;
            int64_t istep;
            double fstep;
            uint64_t cur;   /* integer ramps: current pattern */
            uint64_t count; /* float ramps: ticks since the last wrap, to avoid drift */
        } ramp;
        struct {
            double center, amplitude, period;
        } sine;
        struct {
            double period;
            uint16_t regs[2][4]; /* both phases pre-encoded: a tick is a copy */
        } step;
        struct {
            struct value min, max;
        } random;
    } u;
    uint16_t regs[4];   /* const value, pre-encoded */
    uint16_t *str_regs; /* string const, pre-encoded; only during loading */
};

struct sim_map {
    modbus_mapping_t *mb;
    struct def *dyn; /* behaviour-driven definitions only: the tick never looks at consts */
    size_t ndyn;
    size_t ndefs;
    unsigned table_size[TBL_COUNT];
    bool units_restricted;
    bool units[256];
    struct timespec start;
    uint64_t rng;
};

struct parser {
    const char *path;
    int line;
    struct def *defs;
    size_t ndefs, cap;
    uint32_t *owner[TBL_COUNT]; /* def index + 1 per address, to report overlaps */
    unsigned size_req[TBL_COUNT];
    int size_line[TBL_COUNT];
    bool units_restricted;
    bool units[256];
};

struct token {
    char *text;
    bool quoted;
};

static void perr(const struct parser *p, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void perr(const struct parser *p, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "%s:%d: ", p->path, p->line);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

static uint64_t umax_bits(unsigned bits)
{
    return bits >= 64 ? UINT64_MAX : (UINT64_C(1) << bits) - 1;
}

static int64_t smax_bits(unsigned bits)
{
    return (int64_t)umax_bits(bits - 1);
}

/* ---- encoding ---------------------------------------------------------------------------- */

/* The single place that defines register orders (see docs/simulator.md): `be` holds the value's
 * bytes most significant first; word order is reversed for CDAB/DCBA and the two bytes of every
 * word are exchanged for BADC/DCBA. */
static void encode_bytes(const struct def *d, const uint8_t *be, uint16_t *regs)
{
    for (unsigned i = 0; i < d->nregs; i++) {
        unsigned w = d->swap_words ? d->nregs - 1 - i : i;
        uint8_t hi = be[2 * w], lo = be[2 * w + 1];
        regs[i] = d->swap_bytes ? (uint16_t)(lo << 8 | hi) : (uint16_t)(hi << 8 | lo);
    }
}

static void encode_pattern(const struct def *d, uint64_t v, uint16_t *regs)
{
    uint8_t be[8];
    unsigned n = d->nregs * 2;

    if (d->kind == KIND_BOOL) {
        regs[0] = v != 0;
        return;
    }
    for (unsigned i = 0; i < n; i++)
        be[n - 1 - i] = (uint8_t)(v >> (8 * i));
    encode_bytes(d, be, regs);
}

/* Rounds and saturates, because sine and float ramps can land outside an integer type. */
static uint64_t pattern_from_double(const struct def *d, double v)
{
    double r = round(v);

    if (isnan(r))
        return 0;
    if (d->kind == KIND_SIGNED) {
        double lim = ldexp(1.0, (int)d->bits - 1);
        if (r >= lim)
            return (uint64_t)smax_bits(d->bits);
        if (r < -lim)
            return (uint64_t)(-smax_bits(d->bits) - 1);
        return (uint64_t)(int64_t)r;
    }
    if (r <= 0)
        return 0;
    if (r >= ldexp(1.0, (int)d->bits))
        return umax_bits(d->bits);
    return (uint64_t)r;
}

static void encode_double(const struct def *d, double v, uint16_t *regs)
{
    if (d->kind != KIND_FLOAT) {
        encode_pattern(d, pattern_from_double(d, v), regs);
    } else if (d->bits == 32) {
        float f = (float)v;
        uint32_t u;
        memcpy(&u, &f, sizeof u);
        encode_pattern(d, u, regs);
    } else {
        uint64_t u;
        memcpy(&u, &v, sizeof u);
        encode_pattern(d, u, regs);
    }
}

static void encode_value(const struct def *d, const struct value *v, uint16_t *regs)
{
    if (d->kind == KIND_FLOAT)
        encode_double(d, v->f, regs);
    else
        encode_pattern(d, v->i, regs);
}

static void store(modbus_mapping_t *mb, const struct def *d, const uint16_t *regs)
{
    switch (d->table) {
    case TBL_COIL:
        mb->tab_bits[d->address] = regs[0] ? 1 : 0;
        break;
    case TBL_DISCRETE:
        mb->tab_input_bits[d->address] = regs[0] ? 1 : 0;
        break;
    case TBL_INPUT:
        memcpy(&mb->tab_input_registers[d->address], regs, d->nregs * sizeof *regs);
        break;
    case TBL_HOLDING:
        memcpy(&mb->tab_registers[d->address], regs, d->nregs * sizeof *regs);
        break;
    case TBL_COUNT:
        break;
    }
}

/* ---- behaviours -------------------------------------------------------------------------- */

/* splitmix64: tiny, fast and good enough for test data; no need for a crypto source. */
static uint64_t rng_next(uint64_t *state)
{
    uint64_t z = (*state += UINT64_C(0x9E3779B97F4A7C15));
    z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
    return z ^ (z >> 31);
}

static uint64_t random_pattern(uint64_t *state, uint64_t min, uint64_t max)
{
    /* Modular arithmetic gives the true span for signed patterns too, since min <= max. */
    uint64_t span = max - min;
    uint64_t r = rng_next(state);

    if (span == UINT64_MAX)
        return r;
    /* Rejection keeps small ranges unbiased. */
    uint64_t range = span + 1, limit = UINT64_MAX - UINT64_MAX % range;
    while (r >= limit)
        r = rng_next(state);
    return min + r % range;
}

static void ramp_advance(struct def *d)
{
    if (d->kind == KIND_FLOAT) {
        double step = d->u.ramp.fstep, max = d->u.ramp.max.f;
        double v = d->u.ramp.start.f + (double)(d->u.ramp.count + 1) * step;
        /* A little slack so MAX itself is reached despite rounding in start + n * step. */
        double slack = fabs(step) * 1e-9;
        bool past = step > 0 ? v > max + slack : v < max - slack;
        d->u.ramp.count = past ? 0 : d->u.ramp.count + 1;
        return;
    }
    int64_t step = d->u.ramp.istep;
    uint64_t cur = d->u.ramp.cur, max = d->u.ramp.max.i;
    uint64_t mag = step > 0 ? (uint64_t)step : 0 - (uint64_t)step;
    /* Distance left before MAX, computed without overflow for any width or signedness. */
    uint64_t room = step > 0 ? max - cur : cur - max;
    d->u.ramp.cur = room < mag ? d->u.ramp.start.i : cur + (uint64_t)step;
}

static void evaluate(struct sim_map *m, struct def *d, double t, int64_t wall_ms, uint16_t *regs)
{
    switch (d->beh) {
    case BEH_CONST:
        memcpy(regs, d->regs, sizeof d->regs);
        break;
    case BEH_RAMP:
        if (d->kind == KIND_FLOAT)
            encode_double(d, d->u.ramp.start.f + (double)d->u.ramp.count * d->u.ramp.fstep, regs);
        else
            encode_pattern(d, d->u.ramp.cur, regs);
        break;
    case BEH_SINE: {
        double phase = fmod(t, d->u.sine.period) / d->u.sine.period;
        encode_double(d, d->u.sine.center + d->u.sine.amplitude * sin(2.0 * M_PI * phase), regs);
        break;
    }
    case BEH_STEP: {
        unsigned which = (unsigned)fmod(floor(t / d->u.step.period), 2.0);
        memcpy(regs, d->u.step.regs[which], sizeof d->u.step.regs[which]);
        break;
    }
    case BEH_RANDOM:
        if (d->kind == KIND_FLOAT) {
            double u = (double)(rng_next(&m->rng) >> 11) * 0x1.0p-53;
            double lo = d->u.random.min.f, hi = d->u.random.max.f;
            encode_double(d, lo + (hi - lo) * u, regs);
        } else {
            encode_pattern(d, random_pattern(&m->rng, d->u.random.min.i, d->u.random.max.i), regs);
        }
        break;
    case BEH_CLOCK:
        if (d->kind == KIND_FLOAT)
            encode_double(d, (double)wall_ms, regs);
        else
            encode_pattern(d, (uint64_t)wall_ms, regs);
        break;
    }
}

static double elapsed_s(const struct sim_map *m)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - m->start.tv_sec) + (double)(now.tv_nsec - m->start.tv_nsec) / 1e9;
}

static int64_t wall_clock_ms(void)
{
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    return (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

void sim_map_tick(struct sim_map *m)
{
    double t = elapsed_s(m);
    int64_t wall_ms = wall_clock_ms();
    uint16_t regs[4];

    for (size_t i = 0; i < m->ndyn; i++) {
        struct def *d = &m->dyn[i];
        if (d->beh == BEH_RAMP)
            ramp_advance(d);
        evaluate(m, d, t, wall_ms, regs);
        store(m->mb, d, regs);
    }
}

/* ---- parsing ----------------------------------------------------------------------------- */

/* Splits in place; quoted tokens may contain blanks, '#' and the escapes \" and \\. */
static int tokenize(const struct parser *p, char *s, struct token *tok)
{
    int n = 0;

    for (;;) {
        while (isspace((unsigned char)*s))
            s++;
        if (*s == '\0' || *s == '#')
            return n;
        if (n == MAX_TOKENS) {
            perr(p, "too many fields (at most %d)", MAX_TOKENS);
            return -1;
        }
        if (*s == '"') {
            char *out = ++s;
            tok[n].text = out;
            tok[n].quoted = true;
            for (;;) {
                if (*s == '\0') {
                    perr(p, "unterminated quoted string");
                    return -1;
                }
                if (*s == '"')
                    break;
                if (*s == '\\') {
                    s++;
                    if (*s != '"' && *s != '\\') {
                        perr(p, "unknown escape '\\%c' in quoted string (only \\\" and \\\\)",
                             *s ? *s : ' ');
                        return -1;
                    }
                }
                *out++ = *s++;
            }
            s++;
            if (*s != '\0' && !isspace((unsigned char)*s) && *s != '#') {
                perr(p, "unexpected text after closing quote");
                return -1;
            }
            *out = '\0';
        } else {
            tok[n].text = s;
            tok[n].quoted = false;
            while (*s != '\0' && *s != '#' && !isspace((unsigned char)*s))
                s++;
            if (*s == '#') {
                *s = '\0';
                return n + 1;
            }
            if (*s != '\0')
                *s++ = '\0';
        }
        n++;
    }
}

/* Decimal or 0x-hex with an optional sign; strtoull alone would accept "-1" for unsigned
 * values and leading blanks. */
static bool parse_magnitude(const char *s, bool *neg, uint64_t *mag)
{
    int base = 10;
    char *end;

    errno = 0;
    *neg = false;
    if (*s == '-' || *s == '+')
        *neg = *s++ == '-';
    if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
        base = 16;
        s += 2;
    }
    if (!(base == 16 ? isxdigit((unsigned char)*s) : isdigit((unsigned char)*s)))
        return false;
    unsigned long long v = strtoull(s, &end, base);
    if (*end != '\0')
        return false;
    *mag = errno == ERANGE ? UINT64_MAX : (uint64_t)v;
    return errno != ERANGE;
}

static bool parse_int(const struct parser *p, const char *s, enum kind kind, unsigned bits,
                      const char *type_name, const char *what, uint64_t *out)
{
    bool neg;
    uint64_t mag;

    if (kind == KIND_BOOL && (strcmp(s, "true") == 0 || strcmp(s, "false") == 0)) {
        *out = s[0] == 't';
        return true;
    }
    if (!parse_magnitude(s, &neg, &mag)) {
        if (errno == ERANGE)
            perr(p, "%s '%s' is out of range", what, s);
        else
            perr(p, "%s '%s' is not an integer", what, s);
        return false;
    }
    if (kind == KIND_SIGNED) {
        uint64_t lim = (uint64_t)smax_bits(bits) + (neg ? 1 : 0);
        if (mag > lim) {
            perr(p, "%s %s is out of range for %s (%" PRId64 "..%" PRId64 ")", what, s, type_name,
                 -smax_bits(bits) - 1, smax_bits(bits));
            return false;
        }
        *out = neg ? 0 - mag : mag;
        return true;
    }
    if ((neg && mag != 0) || mag > umax_bits(bits)) {
        perr(p, "%s %s is out of range for %s (0..%" PRIu64 ")", what, s, type_name,
             umax_bits(bits));
        return false;
    }
    *out = mag;
    return true;
}

static bool parse_double(const struct parser *p, const char *s, const char *what, double *out)
{
    char *end;

    errno = 0;
    *out = strtod(s, &end);
    if (end == s || *end != '\0' || isspace((unsigned char)*s)) {
        perr(p, "%s '%s' is not a number", what, s);
        return false;
    }
    if (errno == ERANGE && isinf(*out)) {
        perr(p, "%s %s is out of range", what, s);
        return false;
    }
    return true;
}

static bool parse_positive(const struct parser *p, const char *s, const char *what, double *out)
{
    if (!parse_double(p, s, what, out))
        return false;
    if (!(*out > 0) || isinf(*out)) {
        perr(p, "%s must be a positive number of seconds, not %s", what, s);
        return false;
    }
    return true;
}

/* A number in the definition's own type: integers exactly, floats within the type's range. */
static bool parse_value(const struct parser *p, const struct def *d, const struct token *t,
                        const char *what, struct value *v)
{
    v->i = 0;
    v->f = 0;
    if (t->quoted) {
        perr(p, "%s must not be quoted for %s", what, d->type_name);
        return false;
    }
    if (d->kind != KIND_FLOAT)
        return parse_int(p, t->text, d->kind, d->bits, d->type_name, what, &v->i);
    if (!parse_double(p, t->text, what, &v->f))
        return false;
    if (d->bits == 32 && isfinite(v->f) && fabs(v->f) > FLT_MAX) {
        perr(p, "%s %s is out of range for float32", what, t->text);
        return false;
    }
    return true;
}

/* Compares two values of the definition's type: <0, 0, >0. */
static int compare_values(const struct def *d, const struct value *a, const struct value *b)
{
    switch (d->kind) {
    case KIND_FLOAT:
        return (a->f > b->f) - (a->f < b->f);
    case KIND_SIGNED:
        return ((int64_t)a->i > (int64_t)b->i) - ((int64_t)a->i < (int64_t)b->i);
    default:
        return (a->i > b->i) - (a->i < b->i);
    }
}

static bool parse_address(const struct parser *p, const char *s, unsigned *out)
{
    bool neg;
    uint64_t mag;

    if (!parse_magnitude(s, &neg, &mag) || neg || mag >= ADDRESS_SPACE) {
        perr(p, "address '%s' is not a number from 0 to 65535", s);
        return false;
    }
    *out = (unsigned)mag;
    return true;
}

static bool parse_type(const struct parser *p, const char *s, struct def *d)
{
    for (size_t i = 0; i < sizeof scalar_types / sizeof scalar_types[0]; i++) {
        if (strcmp(s, scalar_types[i].name) == 0) {
            d->kind = scalar_types[i].kind;
            d->bits = scalar_types[i].bits;
            d->nregs = d->bits <= 16 ? 1 : d->bits / 16;
            snprintf(d->type_name, sizeof d->type_name, "%s", s);
            return true;
        }
    }
    if (strncmp(s, "string", 6) == 0) {
        const char *n = s + 6;
        bool neg;
        uint64_t count;
        if (*n == '\0' || strspn(n, "0123456789") != strlen(n) ||
            !parse_magnitude(n, &neg, &count) || count < 1 || count > MAX_STRING_REGS) {
            perr(p, "string type needs a register count from 1 to %d, e.g. string10, not '%s'",
                 MAX_STRING_REGS, s);
            return false;
        }
        d->kind = KIND_STRING;
        d->nregs = (unsigned)count;
        d->bits = 16 * d->nregs;
        snprintf(d->type_name, sizeof d->type_name, "string%u", d->nregs);
        return true;
    }
    perr(p,
         "unknown type '%s' (expected bool, int16, uint16, int32, uint32, int64, uint64, "
         "float32, float64 or stringN)",
         s);
    return false;
}

static bool parse_order(const struct parser *p, const char *s, struct def *d)
{
    static const struct {
        const char *name;
        unsigned width; /* registers the spelling applies to; 0 = 32- and 64-bit */
        bool swap_bytes, swap_words;
    } orders[] = {
        {"AB", 1, false, false},       {"BA", 1, true, false},       {"ABCD", 0, false, false},
        {"BADC", 0, true, false},      {"CDAB", 0, false, true},     {"DCBA", 0, true, true},
        {"ABCDEFGH", 4, false, false}, {"BADCFEHG", 4, true, false}, {"GHEFCDAB", 4, false, true},
        {"HGFEDCBA", 4, true, true},
    };
    bool sixteen = d->kind == KIND_STRING || d->bits == 16;

    d->swap_bytes = d->swap_words = false;
    if (strcmp(s, "-") == 0)
        return true;
    if (d->kind != KIND_BOOL) {
        for (size_t i = 0; i < sizeof orders / sizeof orders[0]; i++) {
            bool fits = sixteen ? orders[i].width == 1
                                : orders[i].width == 0 || orders[i].width == d->nregs;
            if (fits && strcmp(s, orders[i].name) == 0) {
                d->swap_bytes = orders[i].swap_bytes;
                d->swap_words = orders[i].swap_words;
                return true;
            }
        }
    }
    if (d->kind == KIND_BOOL)
        perr(p, "order '%s' is not valid for bool (use -)", s);
    else if (sixteen)
        perr(p, "order '%s' is not valid for %s (use AB, BA or -)", s, d->type_name);
    else
        perr(p, "order '%s' is not valid for %s (use ABCD, BADC, CDAB, DCBA or -)", s,
             d->type_name);
    return false;
}

static bool parse_string_const(const struct parser *p, struct def *d, const char *s)
{
    size_t len = strlen(s), cap = 2 * (size_t)d->nregs;
    uint8_t bytes[2 * MAX_STRING_REGS] = {0};

    if (len > cap) {
        perr(p, "string of %zu bytes does not fit in %s (%zu bytes)", len, d->type_name, cap);
        return false;
    }
    memcpy(bytes, s, len);
    d->str_regs = calloc(d->nregs, sizeof *d->str_regs);
    if (d->str_regs == NULL) {
        perr(p, "out of memory");
        return false;
    }
    encode_bytes(d, bytes, d->str_regs);
    return true;
}

static bool expect_args(const struct parser *p, const char *beh, const char *usage, int want,
                        int got)
{
    if (want == got)
        return true;
    if (want == 0)
        perr(p, "%s takes no values, got %d", beh, got);
    else
        perr(p, "%s takes %s (%d value%s), got %d", beh, usage, want, want == 1 ? "" : "s", got);
    return false;
}

static bool parse_behaviour(const struct parser *p, struct def *d, const struct token *t, int n)
{
    const char *beh = t[0].text;
    const struct token *a = t + 1;
    int nargs = n - 1;

    if (d->kind == KIND_STRING && strcmp(beh, "const") != 0) {
        perr(p, "%s only supports const, not '%s'", d->type_name, beh);
        return false;
    }
    if (strcmp(beh, "const") == 0) {
        struct value v;
        d->beh = BEH_CONST;
        if (!expect_args(p, beh, "VALUE", 1, nargs))
            return false;
        if (d->kind == KIND_STRING)
            return parse_string_const(p, d, a[0].text);
        if (!parse_value(p, d, &a[0], "value", &v))
            return false;
        encode_value(d, &v, d->regs);
        return true;
    }
    if (strcmp(beh, "ramp") == 0) {
        struct value step;
        d->beh = BEH_RAMP;
        if (!expect_args(p, beh, "START STEP MAX", 3, nargs) ||
            !parse_value(p, d, &a[0], "START", &d->u.ramp.start) ||
            !parse_value(p, d, &a[2], "MAX", &d->u.ramp.max))
            return false;
        if (d->kind == KIND_FLOAT) {
            if (!parse_double(p, a[1].text, "STEP", &step.f))
                return false;
            d->u.ramp.fstep = step.f;
        } else {
            if (!parse_int(p, a[1].text, KIND_SIGNED, 64, "int64", "STEP", &step.i))
                return false;
            d->u.ramp.istep = (int64_t)step.i;
            d->u.ramp.fstep = (double)d->u.ramp.istep;
        }
        if (!(d->u.ramp.fstep != 0) || isinf(d->u.ramp.fstep)) {
            perr(p, "ramp STEP must be a non-zero finite number");
            return false;
        }
        int cmp = compare_values(d, &d->u.ramp.start, &d->u.ramp.max);
        if ((d->u.ramp.fstep > 0 && cmp > 0) || (d->u.ramp.fstep < 0 && cmp < 0)) {
            perr(p, "ramp never reaches MAX %s from START %s with STEP %s", a[2].text, a[0].text,
                 a[1].text);
            return false;
        }
        d->u.ramp.cur = d->u.ramp.start.i;
        d->u.ramp.count = 0;
        return true;
    }
    if (strcmp(beh, "sine") == 0) {
        d->beh = BEH_SINE;
        return expect_args(p, beh, "CENTER AMPLITUDE PERIOD_S", 3, nargs) &&
               parse_double(p, a[0].text, "CENTER", &d->u.sine.center) &&
               parse_double(p, a[1].text, "AMPLITUDE", &d->u.sine.amplitude) &&
               parse_positive(p, a[2].text, "PERIOD_S", &d->u.sine.period);
    }
    if (strcmp(beh, "step") == 0) {
        struct value va, vb;
        d->beh = BEH_STEP;
        if (!expect_args(p, beh, "A B PERIOD_S", 3, nargs) || !parse_value(p, d, &a[0], "A", &va) ||
            !parse_value(p, d, &a[1], "B", &vb) ||
            !parse_positive(p, a[2].text, "PERIOD_S", &d->u.step.period))
            return false;
        encode_value(d, &va, d->u.step.regs[0]);
        encode_value(d, &vb, d->u.step.regs[1]);
        return true;
    }
    if (strcmp(beh, "random") == 0) {
        d->beh = BEH_RANDOM;
        if (!expect_args(p, beh, "MIN MAX", 2, nargs) ||
            !parse_value(p, d, &a[0], "MIN", &d->u.random.min) ||
            !parse_value(p, d, &a[1], "MAX", &d->u.random.max))
            return false;
        if (compare_values(d, &d->u.random.min, &d->u.random.max) > 0) {
            perr(p, "random MIN %s is greater than MAX %s", a[0].text, a[1].text);
            return false;
        }
        if (d->kind == KIND_FLOAT &&
            !(isfinite(d->u.random.min.f) && isfinite(d->u.random.max.f))) {
            perr(p, "random MIN and MAX must be finite");
            return false;
        }
        return true;
    }
    if (strcmp(beh, "clock_ms") == 0) {
        d->beh = BEH_CLOCK;
        if (!expect_args(p, beh, "", 0, nargs))
            return false;
        if (d->bits != 64) {
            perr(p, "clock_ms needs a 64-bit type (int64, uint64 or float64), not %s",
                 d->type_name);
            return false;
        }
        return true;
    }
    perr(p, "unknown behaviour '%s' (expected const, ramp, sine, step, random or clock_ms)", beh);
    return false;
}

static bool parse_table(const char *s, enum table *t)
{
    for (int i = 0; i < TBL_COUNT; i++) {
        if (strcmp(s, table_names[i]) == 0) {
            *t = (enum table)i;
            return true;
        }
    }
    return false;
}

static bool claim_addresses(struct parser *p, const struct def *d)
{
    uint32_t *owner = p->owner[d->table];

    if (owner == NULL) {
        owner = p->owner[d->table] = calloc(ADDRESS_SPACE, sizeof *owner);
        if (owner == NULL) {
            perr(p, "out of memory");
            return false;
        }
    }
    for (unsigned a = d->address; a < d->address + d->nregs; a++) {
        if (owner[a] != 0) {
            const struct def *o = &p->defs[owner[a] - 1];
            perr(p, "%s %u %s overlaps %s %u %s defined on line %d", table_names[d->table],
                 d->address, d->type_name, table_names[o->table], o->address, o->type_name,
                 o->line);
            return false;
        }
    }
    for (unsigned a = d->address; a < d->address + d->nregs; a++)
        owner[a] = (uint32_t)p->ndefs + 1;
    return true;
}

static bool parse_definition(struct parser *p, const struct token *t, int n)
{
    struct def d;

    memset(&d, 0, sizeof d);
    d.line = p->line;
    if (!parse_table(t[0].text, &d.table)) {
        perr(p,
             "unknown table or directive '%s' (expected coil, discrete, input, holding, size or "
             "units)",
             t[0].text);
        return false;
    }
    if (n < 5) {
        perr(p, "expected TABLE ADDRESS TYPE ORDER BEHAVIOUR [VALUES...]");
        return false;
    }
    for (int i = 0; i < 4; i++) {
        if (t[i].quoted) {
            perr(p, "unexpected quoted text \"%s\"", t[i].text);
            return false;
        }
    }
    if (!parse_address(p, t[1].text, &d.address) || !parse_type(p, t[2].text, &d))
        return false;
    bool bit_table = d.table == TBL_COIL || d.table == TBL_DISCRETE;
    if (bit_table != (d.kind == KIND_BOOL)) {
        perr(p,
             bit_table ? "%s table only holds bool, not %s"
                       : "%s table holds registers; bool belongs in coil or discrete, not %s",
             table_names[d.table], d.type_name);
        return false;
    }
    if (d.address + d.nregs > ADDRESS_SPACE) {
        perr(p, "%s at %s %u runs past the last address 65535", d.type_name, table_names[d.table],
             d.address);
        return false;
    }
    if (!parse_order(p, t[3].text, &d) || !parse_behaviour(p, &d, t + 4, n - 4))
        goto fail;

    if (p->ndefs == p->cap) {
        size_t cap = p->cap ? 2 * p->cap : 64;
        struct def *defs = realloc(p->defs, cap * sizeof *defs);
        if (defs == NULL) {
            perr(p, "out of memory");
            goto fail;
        }
        p->defs = defs;
        p->cap = cap;
    }
    if (!claim_addresses(p, &d))
        goto fail;
    p->defs[p->ndefs++] = d;
    return true;
fail:
    free(d.str_regs);
    return false;
}

static bool parse_size(struct parser *p, const struct token *t, int n)
{
    enum table tbl;
    bool neg;
    uint64_t size;

    if (n != 3 || !parse_table(t[1].text, &tbl)) {
        perr(p, "expected 'size TABLE COUNT' with TABLE one of coil, discrete, input, holding");
        return false;
    }
    if (!parse_magnitude(t[2].text, &neg, &size) || neg || size > ADDRESS_SPACE) {
        perr(p, "size '%s' is not a number from 0 to 65536", t[2].text);
        return false;
    }
    if (p->size_line[tbl] != 0) {
        perr(p, "size of %s already set on line %d", table_names[tbl], p->size_line[tbl]);
        return false;
    }
    p->size_req[tbl] = (unsigned)size;
    p->size_line[tbl] = p->line;
    return true;
}

static bool parse_units(struct parser *p, const struct token *t, int n)
{
    if (n < 2) {
        perr(p, "expected 'units ID...' with at least one unit id");
        return false;
    }
    for (int i = 1; i < n; i++) {
        bool neg;
        uint64_t unit;
        if (t[i].quoted || !parse_magnitude(t[i].text, &neg, &unit) || neg || unit > 255) {
            perr(p, "unit id '%s' is not a number from 0 to 255", t[i].text);
            return false;
        }
        p->units[unit] = true;
    }
    p->units_restricted = true;
    return true;
}

static bool parse_line(struct parser *p, char *line)
{
    struct token tok[MAX_TOKENS];
    int n = tokenize(p, line, tok);

    if (n <= 0)
        return n == 0;
    if (!tok[0].quoted && strcmp(tok[0].text, "size") == 0)
        return parse_size(p, tok, n);
    if (!tok[0].quoted && strcmp(tok[0].text, "units") == 0)
        return parse_units(p, tok, n);
    return parse_definition(p, tok, n);
}

static bool parse_file(struct parser *p, FILE *f)
{
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    bool ok = true;

    while (ok && (len = getline(&line, &cap, f)) >= 0) {
        p->line++;
        if ((size_t)len != strlen(line)) {
            perr(p, "line contains a NUL byte");
            ok = false;
            break;
        }
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
            line[--len] = '\0';
        ok = parse_line(p, line);
    }
    if (ok && ferror(f)) {
        fprintf(stderr, "%s: read error: %s\n", p->path, strerror(errno));
        ok = false;
    }
    free(line);
    return ok;
}

/* Sizes the tables, writes every initial value and keeps only the behaviour-driven
 * definitions for the tick. */
static bool build(struct sim_map *m, struct parser *p)
{
    unsigned end[TBL_COUNT] = {0};
    size_t ndyn = 0;

    for (size_t i = 0; i < p->ndefs; i++) {
        const struct def *d = &p->defs[i];
        if (d->address + d->nregs > end[d->table])
            end[d->table] = d->address + d->nregs;
        ndyn += d->beh != BEH_CONST;
    }
    for (int t = 0; t < TBL_COUNT; t++)
        m->table_size[t] = end[t] > p->size_req[t] ? end[t] : p->size_req[t];

    m->mb = modbus_mapping_new_start_address(
        0, m->table_size[TBL_COIL], 0, m->table_size[TBL_DISCRETE], 0, m->table_size[TBL_HOLDING],
        0, m->table_size[TBL_INPUT]);
    m->dyn = calloc(ndyn ? ndyn : 1, sizeof *m->dyn);
    if (m->mb == NULL || m->dyn == NULL) {
        fprintf(stderr, "%s: out of memory\n", p->path);
        return false;
    }

    double t = elapsed_s(m);
    int64_t wall_ms = wall_clock_ms();
    for (size_t i = 0; i < p->ndefs; i++) {
        struct def *d = &p->defs[i];
        uint16_t regs[4];
        if (d->str_regs != NULL) {
            store(m->mb, d, d->str_regs);
            continue;
        }
        evaluate(m, d, t, wall_ms, regs);
        store(m->mb, d, regs);
        if (d->beh != BEH_CONST)
            m->dyn[m->ndyn++] = *d;
    }
    m->ndefs = p->ndefs;
    m->units_restricted = p->units_restricted;
    memcpy(m->units, p->units, sizeof m->units);
    return true;
}

struct sim_map *sim_map_load(const char *path)
{
    struct parser p;
    struct sim_map *m;
    FILE *f;
    bool ok;

    memset(&p, 0, sizeof p);
    p.path = path;
    f = fopen(path, "re");
    if (f == NULL) {
        fprintf(stderr, "%s: cannot open map: %s\n", path, strerror(errno));
        return NULL;
    }
    m = calloc(1, sizeof *m);
    if (m == NULL) {
        fclose(f);
        fprintf(stderr, "%s: out of memory\n", path);
        return NULL;
    }
    clock_gettime(CLOCK_MONOTONIC, &m->start);
    /* Fixed seed: a failing test sees the same random sequence when rerun. */
    m->rng = UINT64_C(0x1B5E7A1D0C0FFEE);

    ok = parse_file(&p, f) && build(m, &p);

    fclose(f);
    for (size_t i = 0; i < p.ndefs; i++)
        free(p.defs[i].str_regs);
    free(p.defs);
    for (int t = 0; t < TBL_COUNT; t++)
        free(p.owner[t]);
    if (!ok) {
        sim_map_free(m);
        return NULL;
    }
    return m;
}

void sim_map_free(struct sim_map *m)
{
    if (m == NULL)
        return;
    modbus_mapping_free(m->mb);
    free(m->dyn);
    free(m);
}

modbus_mapping_t *sim_map_mapping(struct sim_map *m)
{
    return m->mb;
}

bool sim_map_serves_unit(const struct sim_map *m, uint8_t unit)
{
    return !m->units_restricted || m->units[unit];
}

void sim_map_describe(const struct sim_map *m, char *buf, size_t len)
{
    snprintf(buf, len,
             "%zu definitions (%zu dynamic); coils %u, discrete inputs %u, input registers %u, "
             "holding registers %u; %s unit ids",
             m->ndefs, m->ndyn, m->table_size[TBL_COIL], m->table_size[TBL_DISCRETE],
             m->table_size[TBL_INPUT], m->table_size[TBL_HOLDING],
             m->units_restricted ? "listed" : "all");
}
