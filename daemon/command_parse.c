/* The command request parser: a strict recursive-descent JSON reader for the one shape a request
 * has (id, device, ts, write {tag: value} or read [tags], verify), every length checked before
 * it is read, every error naming its byte offset and key. */
#include "command_parse.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct pctx {
    const char *s;
    size_t len, pos;
    struct ib_cmd_request *out;
    char *err;
    size_t errlen;
    const char *key; /* where we are, for messages */
    bool failed;
};

__attribute__((format(printf, 2, 3))) static int fail(struct pctx *p, const char *fmt, ...)
{
    if (p->failed)
        return -1;
    p->failed = true;
    char what[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    if (p->key)
        snprintf(p->err, p->errlen, "at byte %zu, in %s: %s", p->pos, p->key, what);
    else
        snprintf(p->err, p->errlen, "at byte %zu: %s", p->pos, what);
    return -1;
}

static void ws(struct pctx *p)
{
    while (p->pos < p->len && (p->s[p->pos] == ' ' || p->s[p->pos] == '\t' ||
                               p->s[p->pos] == '\n' || p->s[p->pos] == '\r'))
        p->pos++;
}

static bool peek(struct pctx *p, char c)
{
    ws(p);
    return p->pos < p->len && p->s[p->pos] == c;
}

static int expect(struct pctx *p, char c)
{
    if (!peek(p, c))
        return p->pos < p->len ? fail(p, "expected '%c', found '%c'", c, p->s[p->pos])
                               : fail(p, "expected '%c', found the end of the request", c);
    p->pos++;
    return 0;
}

static int hex4(struct pctx *p, unsigned *v)
{
    if (p->len - p->pos < 4)
        return fail(p, "a \\u escape needs 4 hex digits");
    *v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p->s[p->pos++];
        unsigned d = c >= '0' && c <= '9'   ? (unsigned)(c - '0')
                     : c >= 'a' && c <= 'f' ? (unsigned)(c - 'a' + 10)
                     : c >= 'A' && c <= 'F' ? (unsigned)(c - 'A' + 10)
                                            : 16u;
        if (d > 15)
            return fail(p, "a \\u escape needs 4 hex digits");
        *v = *v << 4 | d;
    }
    return 0;
}

static int put(struct pctx *p, char *dst, size_t cap, size_t *n, const char *b, size_t k)
{
    if (*n + k >= cap)
        return fail(p, "text longer than %zu bytes", cap - 1);
    memcpy(dst + *n, b, k);
    *n += k;
    return 0;
}

/* One escape after the backslash, appended as UTF-8. */
static int escape(struct pctx *p, char *dst, size_t cap, size_t *n)
{
    if (p->pos >= p->len)
        return fail(p, "unfinished escape");
    char c = p->s[p->pos++], b[4];
    static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
    const char *f = strchr(from, c);
    if (c && f)
        return put(p, dst, cap, n, &to[f - from], 1);
    if (c != 'u')
        return fail(p, "unknown escape '\\%c'", c);
    unsigned u, lo;
    if (hex4(p, &u) < 0)
        return -1;
    if (u >= 0xDC00 && u <= 0xDFFF)
        return fail(p, "a lone low surrogate \\u%04X", u);
    if (u >= 0xD800 && u <= 0xDBFF) {
        if (p->len - p->pos < 2 || p->s[p->pos] != '\\' || p->s[p->pos + 1] != 'u')
            return fail(p, "a high surrogate without its low half");
        p->pos += 2;
        if (hex4(p, &lo) < 0)
            return -1;
        if (lo < 0xDC00 || lo > 0xDFFF)
            return fail(p, "a high surrogate without its low half");
        u = 0x10000 + ((u - 0xD800) << 10) + (lo - 0xDC00);
    }
    if (u == 0)
        return fail(p, "a NUL character (\\u0000) is not allowed");
    size_t k = u < 0x80 ? 1 : u < 0x800 ? 2 : u < 0x10000 ? 3 : 4;
    static const unsigned char lead[] = {0, 0, 0xC0, 0xE0, 0xF0};
    for (size_t i = k - 1; i > 0; i--, u >>= 6)
        b[i] = (char)(0x80 | (u & 0x3F));
    b[0] = (char)(k == 1 ? u : (lead[k] | u));
    return put(p, dst, cap, n, b, k);
}

/* The length of a valid UTF-8 sequence starting at s (at most `room` bytes), or 0. */
static size_t utf8_len(const unsigned char *s, size_t room)
{
    size_t k = s[0] < 0x80             ? 1
               : (s[0] & 0xE0) == 0xC0 ? 2
               : (s[0] & 0xF0) == 0xE0 ? 3
               : (s[0] & 0xF8) == 0xF0 ? 4
                                       : 0;
    if (!k || k > room || (k == 2 && s[0] < 0xC2))
        return 0;
    for (size_t i = 1; i < k; i++)
        if ((s[i] & 0xC0) != 0x80)
            return 0;
    if (k == 3 && ((s[0] == 0xE0 && s[1] < 0xA0) || (s[0] == 0xED && s[1] >= 0xA0)))
        return 0;
    if (k == 4 && ((s[0] == 0xF0 && s[1] < 0x90) || s[0] > 0xF4 || (s[0] == 0xF4 && s[1] >= 0x90)))
        return 0;
    return k;
}

/* A JSON string into dst (cap bytes with its NUL); its length into *n. */
static int string(struct pctx *p, char *dst, size_t cap, size_t *n)
{
    if (expect(p, '"') < 0)
        return -1;
    *n = 0;
    for (;;) {
        if (p->pos >= p->len)
            return fail(p, "unterminated string");
        unsigned char c = (unsigned char)p->s[p->pos];
        if (c == '"') {
            p->pos++;
            dst[*n] = '\0';
            return 0;
        }
        if (c < 0x20)
            return fail(p, "a control character in a string");
        if (c == '\\') {
            p->pos++;
            if (escape(p, dst, cap, n) < 0)
                return -1;
            continue;
        }
        size_t k = utf8_len((const unsigned char *)p->s + p->pos, p->len - p->pos);
        if (!k)
            return fail(p, "not UTF-8");
        if (put(p, dst, cap, n, p->s + p->pos, k) < 0)
            return -1;
        p->pos += k;
    }
}

/* A string kept in out->text; its start into *s. */
static int kept_string(struct pctx *p, const char **s, size_t *n)
{
    struct ib_cmd_request *r = p->out;
    char *dst = r->text + r->text_used;
    size_t room = sizeof r->text - r->text_used;
    if (room < 2)
        return fail(p, "the request holds more text than %zu bytes", sizeof r->text);
    if (string(p, dst, room, n) < 0)
        return -1;
    r->text_used += *n + 1;
    *s = dst;
    return 0;
}

/* A JSON number: an integer literal becomes IB_V_INT (IB_V_UINT above INT64_MAX), anything
 * with a fraction or an exponent IB_V_DOUBLE. */
static int number(struct pctx *p, struct ib_value *v)
{
    size_t st = p->pos, i = st;
    bool integer = true;
    if (i < p->len && p->s[i] == '-')
        i++;
    if (i >= p->len || p->s[i] < '0' || p->s[i] > '9')
        return fail(p, "expected a value (a number, true, false or a string)");
    if (p->s[i] == '0' && i + 1 < p->len && p->s[i + 1] >= '0' && p->s[i + 1] <= '9')
        return fail(p, "a number with a leading zero");
    while (i < p->len && p->s[i] >= '0' && p->s[i] <= '9')
        i++;
    if (i < p->len && p->s[i] == '.') {
        integer = false;
        if (++i >= p->len || p->s[i] < '0' || p->s[i] > '9')
            return fail(p, "a digit must follow the decimal point");
        while (i < p->len && p->s[i] >= '0' && p->s[i] <= '9')
            i++;
    }
    if (i < p->len && (p->s[i] == 'e' || p->s[i] == 'E')) {
        integer = false;
        if (++i < p->len && (p->s[i] == '+' || p->s[i] == '-'))
            i++;
        if (i >= p->len || p->s[i] < '0' || p->s[i] > '9')
            return fail(p, "a digit must follow the exponent");
        while (i < p->len && p->s[i] >= '0' && p->s[i] <= '9')
            i++;
    }
    char buf[64];
    if (i - st >= sizeof buf)
        return fail(p, "a number longer than %zu characters", sizeof buf - 1);
    memcpy(buf, p->s + st, i - st);
    buf[i - st] = '\0';
    memset(v, 0, sizeof *v);
    errno = 0;
    if (integer && buf[0] == '-') {
        v->type = IB_V_INT;
        v->v.i = strtoll(buf, NULL, 10);
    } else if (integer) {
        v->v.u = strtoull(buf, NULL, 10);
        v->type = v->v.u > INT64_MAX ? IB_V_UINT : IB_V_INT;
    } else {
        v->type = IB_V_DOUBLE;
        v->v.d = strtod(buf, NULL);
        if (!isfinite(v->v.d))
            errno = ERANGE;
    }
    if (errno)
        return fail(p, "the number %s is out of range", buf);
    p->pos = i;
    return 0;
}

static int literal(struct pctx *p, const char *word)
{
    size_t k = strlen(word);
    if (p->len - p->pos < k || memcmp(p->s + p->pos, word, k) != 0)
        return fail(p, "expected a value (a number, true, false or a string)");
    p->pos += k;
    return 0;
}

static int boolean(struct pctx *p, bool *b)
{
    ws(p);
    if (p->pos < p->len && p->s[p->pos] == 't') {
        *b = true;
        return literal(p, "true");
    }
    if (p->pos < p->len && p->s[p->pos] == 'f') {
        *b = false;
        return literal(p, "false");
    }
    return fail(p, "expected true or false");
}

/* A value to write: number, true/false or string. */
static int write_value(struct pctx *p, struct ib_value *v)
{
    ws(p);
    if (p->pos >= p->len)
        return fail(p, "expected a value, found the end of the request");
    char c = p->s[p->pos];
    memset(v, 0, sizeof *v);
    if (c == 't' || c == 'f') {
        v->type = IB_V_BOOL;
        return boolean(p, &v->v.b);
    }
    if (c == '"') {
        const char *s;
        size_t n;
        if (kept_string(p, &s, &n) < 0)
            return -1;
        v->type = IB_V_STRING;
        v->v.s.ptr = s;
        v->v.s.len = (uint32_t)n;
        return 0;
    }
    if (c == 'n')
        return fail(p, "null is not a value to write");
    if (c == '{' || c == '[')
        return fail(p, "expected a number, true, false or a string, not an %s",
                    c == '{' ? "object" : "array");
    return number(p, v);
}

static int add_tag(struct pctx *p, const char **name)
{
    size_t n;
    if (p->out->n >= IB_CMD_MAX_TAGS)
        return fail(p, "more than %d tags in one request", IB_CMD_MAX_TAGS);
    if (kept_string(p, name, &n) < 0)
        return -1;
    if (n == 0 || n > 256)
        return fail(p, "a tag name must have 1 to 256 bytes");
    for (size_t i = 0; i < p->out->n; i++)
        if (strcmp(p->out->w[i].tag, *name) == 0)
            return fail(p, "tag '%s' is named twice", *name);
    return 0;
}

static int write_object(struct pctx *p)
{
    if (expect(p, '{') < 0)
        return -1;
    if (peek(p, '}'))
        return fail(p, "write names no tag");
    for (;;) {
        struct ib_cmd_write *w = &p->out->w[p->out->n];
        if (add_tag(p, &w->tag) < 0 || expect(p, ':') < 0 || write_value(p, &w->value) < 0)
            return -1;
        p->out->n++;
        if (peek(p, '}'))
            return expect(p, '}');
        if (expect(p, ',') < 0)
            return -1;
    }
}

static int read_array(struct pctx *p)
{
    if (expect(p, '[') < 0)
        return -1;
    if (peek(p, ']'))
        return fail(p, "read names no tag");
    for (;;) {
        struct ib_cmd_write *w = &p->out->w[p->out->n];
        ws(p);
        if (add_tag(p, &w->tag) < 0)
            return -1;
        p->out->n++;
        if (peek(p, ']'))
            return expect(p, ']');
        if (expect(p, ',') < 0)
            return -1;
    }
}

enum { K_ID = 1, K_DEVICE = 2, K_TS = 4, K_WRITE = 8, K_READ = 16, K_VERIFY = 32 };

static int member(struct pctx *p, const char *key, unsigned *seen)
{
    static const char *const keys[] = {"id", "device", "ts", "write", "read", "verify"};
    unsigned bit = 0;
    for (unsigned i = 0; i < 6; i++)
        if (strcmp(key, keys[i]) == 0)
            bit = 1u << i, p->key = keys[i];
    if (!bit)
        return fail(p, "unknown key '%s' (a request has id, device, ts, write or read, verify)",
                    key);
    if (*seen & bit)
        return fail(p, "'%s' is given twice", key);
    if ((bit | *seen) & K_WRITE && (bit | *seen) & K_READ)
        return fail(p, "a request either writes or reads, not both");
    *seen |= bit;
    struct ib_cmd_request *r = p->out;
    size_t n;
    struct ib_value v;
    switch (bit) {
    case K_ID:
        if (string(p, r->id, sizeof r->id, &n) < 0)
            return -1;
        if (n == 0)
            return fail(p, "the id is empty");
        r->has_id = true;
        return 0;
    case K_DEVICE:
        if (string(p, r->device, sizeof r->device, &n) < 0)
            return -1;
        return n ? 0 : fail(p, "the device is empty");
    case K_TS:
        ws(p);
        if (number(p, &v) < 0)
            return -1;
        if (v.type != IB_V_INT || v.v.i <= 0)
            return fail(p, "ts must be a whole number of ms since the epoch");
        r->ts_ms = v.v.i;
        return 0;
    case K_WRITE:
        return write_object(p);
    case K_READ:
        r->is_read = true;
        return read_array(p);
    default:
        return boolean(p, &r->verify);
    }
}

static int request(struct pctx *p)
{
    unsigned seen = 0;
    if (expect(p, '{') < 0)
        return -1;
    if (!peek(p, '}'))
        for (;;) {
            char key[32];
            size_t n;
            p->key = NULL;
            ws(p);
            if (string(p, key, sizeof key, &n) < 0 || expect(p, ':') < 0 ||
                member(p, key, &seen) < 0)
                return -1;
            if (peek(p, '}'))
                break;
            if (expect(p, ',') < 0)
                return -1;
        }
    p->pos++;
    p->key = NULL;
    ws(p);
    if (p->pos != p->len)
        return fail(p, "text after the request's closing brace");
    if (!(seen & K_ID))
        return fail(p, "the request has no id");
    if (!(seen & K_DEVICE))
        return fail(p, "the request names no device");
    if (!(seen & (K_WRITE | K_READ)))
        return fail(p, "the request has neither write nor read");
    if ((seen & K_WRITE) && (seen & K_READ))
        return fail(p, "a request either writes or reads, not both");
    return 0;
}

/* After a syntax error: the id, if a top-level "id": "text" can still be found by a plain scan
 * (so that the requester learns what was wrong with its request). */
static void salvage_id(const char *s, size_t len, struct ib_cmd_request *out)
{
    for (size_t i = 0; i + 4 < len; i++) {
        if (memcmp(s + i, "\"id\"", 4) != 0)
            continue;
        struct pctx q = {.s = s, .len = len, .pos = i + 4, .out = out};
        char e[8];
        q.err = e;
        q.errlen = sizeof e;
        size_t n;
        if (expect(&q, ':') == 0 && peek(&q, '"') && string(&q, out->id, sizeof out->id, &n) == 0 &&
            n > 0) {
            out->has_id = true;
            return;
        }
    }
}

int ib_command_parse(const char *json, size_t len, struct ib_cmd_request *out, char *err,
                     size_t errlen)
{
    memset(out, 0, offsetof(struct ib_cmd_request, text));
    out->text_used = 0;
    struct pctx p = {.s = json, .len = len, .out = out, .err = err, .errlen = errlen};
    if (len > IB_CMD_MAX_REQUEST) {
        snprintf(err, errlen, "the request has %zu bytes, more than %d", len, IB_CMD_MAX_REQUEST);
        return -1;
    }
    if (request(&p) == 0)
        return 0;
    if (!out->has_id) {
        out->id[0] = '\0';
        salvage_id(json, len, out);
    }
    return -1;
}
