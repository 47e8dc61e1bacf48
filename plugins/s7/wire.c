/* S7 plugin, wire layer: TPKT, COTP and S7comm frames built and checked byte by byte, from the
 * public descriptions of the protocol (RFC 1006, ISO 8073, the S7comm dissector's notes). */
#include "wire.h"

#include <string.h>

#define COTP_CR 0xE0
#define COTP_CC 0xD0
#define COTP_DT 0xF0

#define S7_MAGIC     0x32
#define ROSCTR_JOB   0x01
#define ROSCTR_ACK_D 0x03
#define FN_SETUP     0xF0
#define FN_READ      0x04
#define FN_WRITE     0x05

static void put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static uint16_t get16(const uint8_t *p)
{
    return (uint16_t)(p[0] << 8 | p[1]);
}

uint16_t s7_wire_remote_tsap(unsigned conn_type, unsigned rack, unsigned slot)
{
    return (uint16_t)((conn_type & 0xFF) << 8 | (rack & 7) << 5 | (slot & 31));
}

uint32_t s7_wire_address(const struct s7_item *it)
{
    if (it->area == S7_AREA_T || it->area == S7_AREA_C)
        return it->start;
    return it->start * 8u + (it->tsize == S7_TS_BIT ? it->bit : 0u);
}

/* TPKT + COTP DT + S7 job header; returns the offset of the parameters. */
static size_t job_header(uint8_t *buf, size_t total, uint16_t ref, uint16_t plen, uint16_t dlen)
{
    buf[0] = 3;
    buf[1] = 0;
    put16(buf + 2, (uint16_t)total);
    buf[4] = 2;
    buf[5] = COTP_DT;
    buf[6] = 0x80;
    uint8_t *s = buf + S7_TPKT_HDR + S7_COTP_DT_HDR;
    s[0] = S7_MAGIC;
    s[1] = ROSCTR_JOB;
    put16(s + 2, 0);
    put16(s + 4, ref);
    put16(s + 6, plen);
    put16(s + 8, dlen);
    return S7_TPKT_HDR + S7_COTP_DT_HDR + S7_JOB_HDR;
}

size_t s7_wire_cotp_cr(uint8_t *buf, size_t cap, uint16_t local_tsap, uint16_t remote_tsap)
{
    static const size_t total = S7_TPKT_HDR + 18;
    if (!buf || cap < total)
        return 0;
    uint8_t *c = buf + S7_TPKT_HDR;
    buf[0] = 3;
    buf[1] = 0;
    put16(buf + 2, (uint16_t)total);
    c[0] = 17; /* LI: the bytes after it */
    c[1] = COTP_CR;
    put16(c + 2, 0);      /* destination reference */
    put16(c + 4, 0x0001); /* source reference */
    c[6] = 0;             /* class 0 */
    c[7] = 0xC0;          /* TPDU size: 2^10 = 1024 */
    c[8] = 1;
    c[9] = 0x0A;
    c[10] = 0xC1; /* calling TSAP */
    c[11] = 2;
    put16(c + 12, local_tsap);
    c[14] = 0xC2; /* called TSAP */
    c[15] = 2;
    put16(c + 16, remote_tsap);
    return total;
}

size_t s7_wire_setup(uint8_t *buf, size_t cap, uint16_t ref, uint16_t amq, uint16_t pdu)
{
    size_t total = S7_TPKT_HDR + S7_COTP_DT_HDR + S7_JOB_HDR + 8;
    if (!buf || cap < total)
        return 0;
    uint8_t *p = buf + job_header(buf, total, ref, 8, 0);
    p[0] = FN_SETUP;
    p[1] = 0;
    put16(p + 2, amq);
    put16(p + 4, amq);
    put16(p + 6, pdu);
    return total;
}

static void put_item(uint8_t *p, const struct s7_item *it)
{
    uint32_t a = s7_wire_address(it);
    p[0] = 0x12; /* variable specification */
    p[1] = 10;   /* length of the rest */
    p[2] = 0x10; /* syntax id: S7ANY */
    p[3] = it->tsize;
    put16(p + 4, it->count);
    put16(p + 6, it->area == S7_AREA_DB ? it->db : 0);
    p[8] = it->area;
    p[9] = (uint8_t)(a >> 16);
    p[10] = (uint8_t)(a >> 8);
    p[11] = (uint8_t)a;
}

static int item_valid(const struct s7_item *it)
{
    if (it->count == 0 || s7_wire_address(it) > 0xFFFFFFu)
        return 0;
    if (it->tsize == S7_TS_BIT)
        return it->bit < 8 && it->count == 1;
    return it->tsize == S7_TS_BYTE || it->tsize == S7_TS_TIMER || it->tsize == S7_TS_COUNTER;
}

size_t s7_wire_read(uint8_t *buf, size_t cap, uint16_t ref, const struct s7_item *items, unsigned n)
{
    if (!buf || !items || n == 0 || n > S7_MAX_ITEMS)
        return 0;
    size_t plen = 2 + (size_t)n * S7_READ_ITEM;
    size_t total = S7_TPKT_HDR + S7_COTP_DT_HDR + S7_JOB_HDR + plen;
    if (cap < total)
        return 0;
    for (unsigned i = 0; i < n; i++)
        if (!item_valid(&items[i]))
            return 0;
    uint8_t *p = buf + job_header(buf, total, ref, (uint16_t)plen, 0);
    p[0] = FN_READ;
    p[1] = (uint8_t)n;
    for (unsigned i = 0; i < n; i++)
        put_item(p + 2 + i * S7_READ_ITEM, &items[i]);
    return total;
}

/* The data transport size of a written item, and whether its length counts bits. */
static uint8_t data_tsize(const struct s7_item *it, int *in_bits)
{
    *in_bits = it->tsize == S7_TS_BIT || it->tsize == S7_TS_BYTE;
    if (it->tsize == S7_TS_BIT)
        return 0x03;
    return it->tsize == S7_TS_BYTE ? 0x04 : 0x09;
}

size_t s7_wire_write(uint8_t *buf, size_t cap, uint16_t ref, const struct s7_item *item,
                     const uint8_t *data, uint16_t len)
{
    if (!buf || !item || !data || !item_valid(item) || len == 0 || len > S7_FRAME_MAX)
        return 0;
    if (item->tsize == S7_TS_BIT && len != 1)
        return 0;
    size_t plen = 2 + S7_READ_ITEM, dlen = 4 + (size_t)len;
    size_t total = S7_TPKT_HDR + S7_COTP_DT_HDR + S7_JOB_HDR + plen + dlen;
    if (cap < total || total > 0xFFFF)
        return 0;
    uint8_t *p = buf + job_header(buf, total, ref, (uint16_t)plen, (uint16_t)dlen);
    p[0] = FN_WRITE;
    p[1] = 1;
    put_item(p + 2, item);
    uint8_t *d = p + plen;
    int bits;
    d[0] = 0;
    d[1] = data_tsize(item, &bits);
    put16(d + 2, (uint16_t)(item->tsize == S7_TS_BIT ? 1 : bits ? len * 8u : len));
    memcpy(d + 4, data, len);
    return total;
}

long s7_wire_tpkt_length(const uint8_t *hdr, size_t len)
{
    if (!hdr || len < S7_TPKT_HDR || hdr[0] != 3 || hdr[1] != 0)
        return -1;
    long n = get16(hdr + 2);
    if (n < S7_TPKT_HDR + 3 || n > S7_FRAME_MAX)
        return -1;
    return n;
}

/* The TPKT header agrees with len and the COTP header fits: the COTP part's start, or NULL. */
static const uint8_t *cotp_of(const uint8_t *frame, size_t len)
{
    if (!frame || s7_wire_tpkt_length(frame, len) != (long)len)
        return NULL;
    const uint8_t *c = frame + S7_TPKT_HDR;
    size_t rest = len - S7_TPKT_HDR;
    if (rest < 2 || (size_t)c[0] + 1 > rest)
        return NULL;
    return c;
}

int s7_wire_cotp_cc(const uint8_t *frame, size_t len)
{
    const uint8_t *c = cotp_of(frame, len);
    /* LI covers at least type, two references and the class. */
    if (!c || c[0] < 6 || (c[1] & 0xF0) != COTP_CC)
        return -1;
    return 0;
}

int s7_wire_pdu(const uint8_t *frame, size_t len, struct s7_pdu *pdu)
{
    const uint8_t *c = cotp_of(frame, len);
    if (!c || !pdu || c[0] != 2 || c[1] != COTP_DT || !(c[2] & 0x80))
        return -1;
    const uint8_t *s = c + S7_COTP_DT_HDR;
    size_t n = len - S7_TPKT_HDR - S7_COTP_DT_HDR;
    if (n < S7_JOB_HDR || s[0] != S7_MAGIC)
        return -1;
    memset(pdu, 0, sizeof *pdu);
    pdu->rosctr = s[1];
    size_t hdr = (s[1] == 2 || s[1] == 3) ? S7_ACK_HDR : S7_JOB_HDR;
    if (n < hdr)
        return -1;
    pdu->ref = get16(s + 4);
    pdu->param_len = get16(s + 6);
    pdu->data_len = get16(s + 8);
    if (hdr == S7_ACK_HDR) {
        pdu->err_class = s[10];
        pdu->err_code = s[11];
    }
    if (hdr + pdu->param_len + pdu->data_len != n)
        return -1;
    pdu->param = s + hdr;
    pdu->data = s + hdr + pdu->param_len;
    return 0;
}

static int is_ack_of(const struct s7_pdu *pdu, uint8_t fn, size_t min_param)
{
    return pdu != NULL && pdu->rosctr == ROSCTR_ACK_D && pdu->err_class == 0 &&
           pdu->err_code == 0 && pdu->param_len >= min_param && pdu->param[0] == fn;
}

int s7_wire_setup_ack(const struct s7_pdu *pdu, uint16_t *amq_calling, uint16_t *amq_called,
                      uint16_t *pdu_size)
{
    if (!is_ack_of(pdu, FN_SETUP, 8))
        return -1;
    *amq_calling = get16(pdu->param + 2);
    *amq_called = get16(pdu->param + 4);
    *pdu_size = get16(pdu->param + 6);
    if (*pdu_size < 64 || *amq_calling == 0)
        return -1;
    return 0;
}

/* Data bytes of a successful item from its transport size and length field. */
static int item_bytes(uint8_t tsize, uint16_t length, uint32_t *bytes)
{
    switch (tsize) {
    case 0x03: /* bit */
    case 0x04: /* byte/word/dword: length in bits */
    case 0x05: /* integer: length in bits */
        *bytes = (length + 7u) / 8u;
        return 0;
    case 0x06: /* dinteger: bytes */
    case 0x07: /* real: bytes */
    case 0x09: /* octet string: bytes */
        *bytes = length;
        return 0;
    default:
        return -1;
    }
}

int s7_wire_read_ack(const struct s7_pdu *pdu, unsigned n, struct s7_result *results)
{
    if (!is_ack_of(pdu, FN_READ, 2) || !results || pdu->param[1] != n || n == 0)
        return -1;
    const uint8_t *d = pdu->data;
    size_t left = pdu->data_len;
    for (unsigned i = 0; i < n; i++) {
        if (left < 4)
            return -1;
        struct s7_result *r = &results[i];
        r->rc = d[0];
        r->data = NULL;
        r->len = 0;
        uint32_t bytes = 0;
        if (r->rc == S7_RC_OK && item_bytes(d[1], get16(d + 2), &bytes) != 0)
            return -1;
        if (r->rc != S7_RC_OK) {
            d += 4;
            left -= 4;
            continue;
        }
        if (bytes > left - 4)
            return -1;
        r->data = d + 4;
        r->len = bytes;
        size_t used = 4 + bytes;
        /* a fill byte follows odd data, except after the last item */
        if ((bytes & 1u) && i + 1 < n)
            used++;
        if (used > left)
            return -1;
        d += used;
        left -= used;
    }
    /* some CPUs pad an odd last item too: one fill byte more is accepted, nothing else */
    return left == 0 || (left == 1 && d[0] == 0) ? 0 : -1;
}

int s7_wire_write_ack(const struct s7_pdu *pdu, uint8_t *rc)
{
    if (!is_ack_of(pdu, FN_WRITE, 2) || pdu->param[1] != 1 || pdu->data_len != 1 || !rc)
        return -1;
    *rc = pdu->data[0];
    return 0;
}

const char *s7_wire_rc_text(uint8_t rc)
{
    switch (rc) {
    case S7_RC_OK:
        return "success";
    case S7_RC_HW_FAULT:
        return "hardware fault";
    case S7_RC_ACCESS_DENIED:
        return "access denied";
    case S7_RC_ADDRESS:
        return "address out of range";
    case S7_RC_TYPE_UNSUPPORTED:
        return "data type not supported";
    case S7_RC_TYPE_INCONSISTENT:
        return "data type inconsistent";
    case S7_RC_NO_OBJECT:
        return "object does not exist";
    default:
        return "unknown return code";
    }
}

const char *s7_wire_rc_hint(uint8_t rc)
{
    switch (rc) {
    case S7_RC_ACCESS_DENIED:
        return "likely cause: PUT/GET access is not enabled in the CPU's protection settings "
               "(S7-1200/1500: Properties > Protection & Security > Connection mechanisms), or "
               "the area is write-protected";
    case S7_RC_NO_OBJECT:
        return "likely cause: the DB does not exist, or it has optimized block access "
               "(S7-1200/1500: switch 'Optimized block access' off in the DB's attributes), or "
               "PUT/GET is not enabled";
    case S7_RC_ADDRESS:
        return "likely cause: the address lies past the end of the DB or area";
    case S7_RC_TYPE_INCONSISTENT:
    case S7_RC_TYPE_UNSUPPORTED:
        return "likely cause: the PLC refuses this access width at this address";
    default:
        return "";
    }
}
