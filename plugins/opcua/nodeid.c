/* OPC UA plugin: NodeId text parsing and formatting (ns=<index>;<i|s|g|b>=<id>) and base64,
 * which b= ids and ByteString values use. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nodeid.h"

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

size_t ua_base64_encode(const uint8_t *in, size_t n, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)in[i + 1] << 8;
        if (i + 2 < n)
            v |= in[i + 2];
        out[o++] = b64[(v >> 18) & 63];
        out[o++] = b64[(v >> 12) & 63];
        out[o++] = i + 1 < n ? b64[(v >> 6) & 63] : '=';
        out[o++] = i + 2 < n ? b64[v & 63] : '=';
    }
    out[o] = '\0';
    return o;
}

long ua_base64_decode(const char *in, size_t n, uint8_t *out, size_t out_size)
{
    if (n % 4 != 0)
        return -1;
    size_t o = 0;
    for (size_t i = 0; i < n; i += 4) {
        uint32_t v = 0;
        int pad = 0;
        for (int k = 0; k < 4; k++) {
            char ch = in[i + (size_t)k];
            const char *p = ch ? strchr(b64, ch) : NULL;
            if (ch == '=' && i + 4 == n && k >= 2) {
                pad++;
                v <<= 6;
                continue;
            }
            if (!p || pad)
                return -1;
            v = v << 6 | (uint32_t)(p - b64);
        }
        size_t take = (size_t)(3 - pad);
        if (o + take > out_size)
            return -1;
        for (size_t k = 0; k < take; k++)
            out[o++] = (uint8_t)(v >> (16 - 8 * k));
    }
    return (long)o;
}

static int bad(char *err, size_t size, const char *msg)
{
    snprintf(err, size, "%s", msg);
    return -1;
}

static int parse_u(const char *s, size_t len, uint64_t max, uint64_t *out)
{
    if (len == 0 || len > 10 || strspn(s, "0123456789") < len)
        return -1;
    uint64_t v = 0;
    for (size_t i = 0; i < len; i++)
        v = v * 10 + (uint64_t)(s[i] - '0');
    if (v > max)
        return -1;
    *out = v;
    return 0;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static int parse_guid(const char *s, struct ua_guid *g)
{
    /* 8-4-4-4-12 hex digits */
    static const int groups[] = {8, 4, 4, 4, 12};
    uint8_t bytes[16];
    size_t bi = 0, i = 0;
    for (int gi = 0; gi < 5; gi++) {
        for (int k = 0; k < groups[gi]; k += 2) {
            int hi = hexval(s[i]), lo = hi < 0 ? -1 : hexval(s[i + 1]);
            if (hi < 0 || lo < 0)
                return -1;
            bytes[bi++] = (uint8_t)(hi << 4 | lo);
            i += 2;
        }
        if (gi < 4 && s[i++] != '-')
            return -1;
    }
    if (s[i] != '\0')
        return -1;
    g->d1 =
        (uint32_t)bytes[0] << 24 | (uint32_t)bytes[1] << 16 | (uint32_t)bytes[2] << 8 | bytes[3];
    g->d2 = (uint16_t)(bytes[4] << 8 | bytes[5]);
    g->d3 = (uint16_t)(bytes[6] << 8 | bytes[7]);
    memcpy(g->d4, bytes + 8, 8);
    return 0;
}

/* The ';' that ends an nsu= URI: the first one followed by an identifier type and '='. */
static const char *uri_end(const char *p)
{
    for (const char *s = strchr(p, ';'); s; s = strchr(s + 1, ';'))
        if (s[1] && strchr("isgb", s[1]) && s[2] == '=')
            return s;
    return NULL;
}

int ua_nodeid_parse_uri(const char *text, struct ua_nodeid *n, struct ua_str *nsu, uint8_t *bytes,
                        size_t bytes_size, char *err, size_t err_size)
{
    nsu->ptr = NULL;
    nsu->len = -1;
    if (strncmp(text, "nsu=", 4) != 0)
        return ua_nodeid_parse(text, n, bytes, bytes_size, err, err_size);
    const char *end = uri_end(text + 4);
    if (!end || end == text + 4)
        return bad(err, err_size,
                   "nsu= takes a namespace URI followed by ';' and the identifier, for example "
                   "nsu=urn:example:machine;s=Speed");
    if (ua_nodeid_parse(end + 1, n, bytes, bytes_size, err, err_size) != 0)
        return -1;
    nsu->ptr = text + 4;
    nsu->len = (int32_t)(end - text - 4);
    return 0;
}

int ua_nodeid_parse(const char *text, struct ua_nodeid *n, uint8_t *bytes, size_t bytes_size,
                    char *err, size_t err_size)
{
    memset(n, 0, sizeof *n);
    const char *p = text;
    if (strncmp(p, "nsu=", 4) == 0)
        return bad(err, err_size, "nsu= is not allowed here");
    if (strncmp(p, "ns=", 3) == 0) {
        const char *semi = strchr(p, ';');
        uint64_t ns;
        if (!semi || parse_u(p + 3, (size_t)(semi - p - 3), 65535, &ns) != 0)
            return bad(err, err_size, "ns= takes a namespace index 0..65535 followed by ';'");
        n->ns = (uint16_t)ns;
        p = semi + 1;
    }
    if (p[0] == '\0' || p[1] != '=')
        return bad(err, err_size,
                   "expected i=<number>, s=<string>, g=<guid> or b=<base64> (for example "
                   "ns=2;s=Machine.Speed or i=2258)");
    const char *v = p + 2;
    size_t len = strlen(v);
    uint64_t num;
    switch (p[0]) {
    case 'i':
        if (parse_u(v, len, UINT32_MAX, &num) != 0)
            return bad(err, err_size, "i= takes a number 0..4294967295");
        n->kind = UA_NID_NUMERIC;
        n->id.num = (uint32_t)num;
        return 0;
    case 's':
        if (len == 0 || len > 4096)
            return bad(err, err_size, "s= takes a string of 1 to 4096 bytes");
        n->kind = UA_NID_STRING;
        n->id.str.ptr = v;
        n->id.str.len = (int32_t)len;
        return 0;
    case 'g':
        if (parse_guid(v, &n->id.guid) != 0)
            return bad(err, err_size,
                       "g= takes a GUID written 09087e75-8e5e-499b-954f-f2a9603db28a");
        n->kind = UA_NID_GUID;
        return 0;
    case 'b': {
        long got = ua_base64_decode(v, len, bytes, bytes_size);
        if (got <= 0)
            return bad(err, err_size, "b= takes a non-empty base64 string (RFC 4648, padded)");
        n->kind = UA_NID_BYTES;
        n->id.str.ptr = (const char *)bytes;
        n->id.str.len = (int32_t)got;
        return 0;
    }
    default:
        return bad(err, err_size, "the identifier type must be i, s, g or b");
    }
}

char *ua_nodeid_format(const struct ua_nodeid *n, char *buf, size_t size)
{
    char ns[16] = "";
    if (n->ns)
        snprintf(ns, sizeof ns, "ns=%u;", (unsigned)n->ns);
    switch (n->kind) {
    case UA_NID_NUMERIC:
        snprintf(buf, size, "%si=%" PRIu32, ns, n->id.num);
        break;
    case UA_NID_STRING:
        snprintf(buf, size, "%ss=%.*s", ns, n->id.str.len > 0 ? (int)n->id.str.len : 0,
                 n->id.str.ptr ? n->id.str.ptr : "");
        break;
    case UA_NID_GUID: {
        const struct ua_guid *g = &n->id.guid;
        snprintf(buf, size, "%sg=%08" PRIx32 "-%04x-%04x-%02x%02x-%02x%02x%02x%02x%02x%02x", ns,
                 g->d1, g->d2, g->d3, g->d4[0], g->d4[1], g->d4[2], g->d4[3], g->d4[4], g->d4[5],
                 g->d4[6], g->d4[7]);
        break;
    }
    default:
        snprintf(buf, size, "%sb=(%d bytes)", ns, (int)n->id.str.len);
    }
    return buf;
}
