/* Unit tests of the S7 wire layer: exact bytes of COTP CR (TSAPs per PLC family), Setup
 * Communication, Read Var and Write Var; decoding of CC, PDUs, Read Var responses with fill
 * bytes and error items; refusal of every truncation and wrong length. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "wire.h"

static uint8_t buf[S7_FRAME_MAX];

/* The remote TSAP s7.c sends for connection type (1 PG, 2 OP, 3 S7 basic), rack and slot. */
static uint16_t tsap(unsigned type, unsigned rack, unsigned slot)
{
    return s7_wire_remote_tsap(type, rack, slot);
}

static void cr_bytes(void **state)
{
    (void)state;
    /* S7-300, rack 0 slot 2, as a PG: local 01.00, remote 01.02 */
    static const uint8_t want[] = {0x03, 0x00, 0x00, 0x16, 0x11, 0xE0, 0x00, 0x00,
                                   0x00, 0x01, 0x00, 0xC0, 0x01, 0x0A, 0xC1, 0x02,
                                   0x01, 0x00, 0xC2, 0x02, 0x01, 0x02};
    size_t n = s7_wire_cotp_cr(buf, sizeof buf, 0x0100, tsap(1, 0, 2));
    assert_int_equal(n, sizeof want);
    assert_memory_equal(buf, want, sizeof want);
    assert_int_equal(s7_wire_cotp_cr(buf, sizeof want - 1, 0x0100, 0x0102), 0);
}

static void tsaps_per_family(void **state)
{
    (void)state;
    /* documented values (snap7's and Siemens' connection notes) */
    assert_int_equal(tsap(1, 0, 2), 0x0102); /* S7-300 */
    assert_int_equal(tsap(1, 0, 3), 0x0103); /* S7-400, CPU in slot 3 */
    assert_int_equal(tsap(1, 0, 1), 0x0101); /* S7-1200/1500, S7-200 SMART */
    assert_int_equal(tsap(2, 0, 2), 0x0202); /* OP connection to an S7-300 */
    assert_int_equal(tsap(3, 0, 2), 0x0302); /* S7 basic */
    assert_int_equal(tsap(1, 1, 4), 0x0124); /* rack 1, slot 4: rack * 0x20 + slot */
    /* LOGO! 0BA7/0BA8: explicit TSAPs 01.00 -> 02.00, carried as given */
    size_t n = s7_wire_cotp_cr(buf, sizeof buf, 0x0100, 0x0200);
    assert_int_equal(n, 22);
    assert_int_equal(buf[16], 0x01);
    assert_int_equal(buf[17], 0x00);
    assert_int_equal(buf[20], 0x02);
    assert_int_equal(buf[21], 0x00);
}

static void setup_bytes(void **state)
{
    (void)state;
    static const uint8_t want[] = {0x03, 0x00, 0x00, 0x19, 0x02, 0xF0, 0x80, 0x32, 0x01,
                                   0x00, 0x00, 0x00, 0x07, 0x00, 0x08, 0x00, 0x00, 0xF0,
                                   0x00, 0x00, 0x01, 0x00, 0x01, 0x03, 0xC0};
    size_t n = s7_wire_setup(buf, sizeof buf, 7, 1, 960);
    assert_int_equal(n, sizeof want);
    assert_memory_equal(buf, want, sizeof want);
}

static void read_bytes(void **state)
{
    (void)state;
    struct s7_item items[] = {
        {.area = S7_AREA_DB, .tsize = S7_TS_BYTE, .db = 10, .start = 4, .count = 6},
        {.area = S7_AREA_M, .tsize = S7_TS_BIT, .start = 5, .bit = 3, .count = 1},
        {.area = S7_AREA_T, .tsize = S7_TS_TIMER, .start = 5, .count = 2},
    };
    size_t n = s7_wire_read(buf, sizeof buf, 0x1234, items, 3);
    assert_int_equal(n, 7 + 10 + 2 + 36);
    static const uint8_t hdr[] = {0x03, 0x00, 0x00, 55,   0x02, 0xF0, 0x80, 0x32, 0x01, 0x00,
                                  0x00, 0x12, 0x34, 0x00, 38,   0x00, 0x00, 0x04, 0x03};
    assert_memory_equal(buf, hdr, sizeof hdr);
    static const uint8_t db[] = {0x12, 0x0A, 0x10, 0x02, 0x00, 0x06,
                                 0x00, 0x0A, 0x84, 0x00, 0x00, 0x20};
    static const uint8_t m[] = {0x12, 0x0A, 0x10, 0x01, 0x00, 0x01,
                                0x00, 0x00, 0x83, 0x00, 0x00, 0x2B};
    static const uint8_t t[] = {0x12, 0x0A, 0x10, 0x1D, 0x00, 0x02,
                                0x00, 0x00, 0x1D, 0x00, 0x00, 0x05};
    assert_memory_equal(buf + 19, db, 12);
    assert_memory_equal(buf + 31, m, 12);
    assert_memory_equal(buf + 43, t, 12);
    /* refused: no items, too many, a bit count of 2, a bit of 8 */
    assert_int_equal(s7_wire_read(buf, sizeof buf, 1, items, 0), 0);
    struct s7_item many[S7_MAX_ITEMS + 1];
    for (unsigned i = 0; i <= S7_MAX_ITEMS; i++)
        many[i] = items[0];
    assert_int_equal(s7_wire_read(buf, sizeof buf, 1, many, S7_MAX_ITEMS + 1), 0);
    struct s7_item bad = items[1];
    bad.count = 2;
    assert_int_equal(s7_wire_read(buf, sizeof buf, 1, &bad, 1), 0);
    bad = items[1];
    bad.bit = 8;
    assert_int_equal(s7_wire_read(buf, sizeof buf, 1, &bad, 1), 0);
}

static void write_bytes(void **state)
{
    (void)state;
    struct s7_item bit = {.area = S7_AREA_Q, .tsize = S7_TS_BIT, .start = 4, .bit = 2, .count = 1};
    uint8_t one = 1;
    size_t n = s7_wire_write(buf, sizeof buf, 9, &bit, &one, 1);
    assert_int_equal(n, 7 + 10 + 14 + 5);
    static const uint8_t tail[] = {0x05, 0x01, 0x12, 0x0A, 0x10, 0x01, 0x00, 0x01, 0x00, 0x00,
                                   0x82, 0x00, 0x00, 0x22, 0x00, 0x03, 0x00, 0x01, 0x01};
    assert_memory_equal(buf + 17, tail, sizeof tail);
    struct s7_item word = {
        .area = S7_AREA_DB, .tsize = S7_TS_BYTE, .db = 1, .start = 7, .count = 2};
    uint8_t v[] = {0xBE, 0xEF};
    n = s7_wire_write(buf, sizeof buf, 9, &word, v, 2);
    static const uint8_t data[] = {0x00, 0x04, 0x00, 0x10, 0xBE, 0xEF};
    assert_int_equal(n, 7 + 10 + 14 + 6);
    assert_memory_equal(buf + 31, data, sizeof data);
}

/* A response frame: TPKT + DT + ack_data header + param + data. */
static size_t frame(uint8_t *f, uint16_t ref, uint8_t ec, uint8_t ecode, const uint8_t *par,
                    uint16_t plen, const uint8_t *data, uint16_t dlen)
{
    size_t n = 4 + 3 + 12 + plen + dlen;
    uint8_t h[] = {3,
                   0,
                   (uint8_t)(n >> 8),
                   (uint8_t)n,
                   2,
                   0xF0,
                   0x80,
                   0x32,
                   3,
                   0,
                   0,
                   (uint8_t)(ref >> 8),
                   (uint8_t)ref,
                   (uint8_t)(plen >> 8),
                   (uint8_t)plen,
                   (uint8_t)(dlen >> 8),
                   (uint8_t)dlen,
                   ec,
                   ecode};
    memcpy(f, h, sizeof h);
    memcpy(f + sizeof h, par, plen);
    if (dlen)
        memcpy(f + sizeof h + plen, data, dlen);
    return n;
}

static void decode_read_ack(void **state)
{
    (void)state;
    static const uint8_t par[] = {0x04, 0x03};
    /* item 1: 3 bytes (24 bits) + fill; item 2: object does not exist; item 3: 2 octets */
    static const uint8_t data[] = {0xFF, 0x04, 0x00, 0x18, 1,    2,    3,    0x00, 0x0A,
                                   0x00, 0x00, 0x00, 0xFF, 0x09, 0x00, 0x02, 0x21, 0x23};
    uint8_t f[128];
    size_t n = frame(f, 5, 0, 0, par, 2, data, sizeof data);
    struct s7_pdu pdu;
    assert_int_equal(s7_wire_pdu(f, n, &pdu), 0);
    assert_int_equal(pdu.ref, 5);
    struct s7_result r[3];
    assert_int_equal(s7_wire_read_ack(&pdu, 3, r), 0);
    assert_int_equal(r[0].rc, 0xFF);
    assert_int_equal(r[0].len, 3);
    assert_int_equal(r[0].data[2], 3);
    assert_int_equal(r[1].rc, S7_RC_NO_OBJECT);
    assert_int_equal(r[2].len, 2);
    assert_int_equal(r[2].data[0], 0x21);
    /* a count that does not match the request */
    assert_int_equal(s7_wire_read_ack(&pdu, 2, r), -1);
    /* every truncation of the frame is refused by s7_wire_pdu (the TPKT length no longer
     * matches) and every shorter data part by s7_wire_read_ack */
    for (size_t k = 0; k < n; k++)
        assert_int_equal(s7_wire_pdu(f, k, &pdu), -1);
    for (uint16_t dl = 0; dl < sizeof data; dl++) {
        n = frame(f, 5, 0, 0, par, 2, data, dl);
        assert_int_equal(s7_wire_pdu(f, n, &pdu), 0);
        assert_int_equal(s7_wire_read_ack(&pdu, 3, r), -1);
    }
    /* an item announcing more data than there is */
    static const uint8_t longer[] = {0xFF, 0x04, 0x01, 0x00, 1, 2};
    static const uint8_t one[] = {0x04, 0x01};
    n = frame(f, 5, 0, 0, one, 2, longer, sizeof longer);
    assert_int_equal(s7_wire_pdu(f, n, &pdu), 0);
    assert_int_equal(s7_wire_read_ack(&pdu, 1, r), -1);
    /* a fill byte after an odd last item is tolerated; any other extra byte is not */
    static const uint8_t padded[] = {0xFF, 0x04, 0x00, 0x08, 7, 0};
    n = frame(f, 5, 0, 0, one, 2, padded, sizeof padded);
    assert_int_equal(s7_wire_pdu(f, n, &pdu), 0);
    assert_int_equal(s7_wire_read_ack(&pdu, 1, r), 0);
    assert_int_equal(r[0].len, 1);
    static const uint8_t extra[] = {0xFF, 0x04, 0x00, 0x08, 7, 9};
    n = frame(f, 5, 0, 0, one, 2, extra, sizeof extra);
    assert_int_equal(s7_wire_pdu(f, n, &pdu), 0);
    assert_int_equal(s7_wire_read_ack(&pdu, 1, r), -1);
    /* an unknown transport size */
    static const uint8_t odd_ts[] = {0xFF, 0x42, 0x00, 0x08, 1};
    n = frame(f, 5, 0, 0, one, 2, odd_ts, sizeof odd_ts);
    assert_int_equal(s7_wire_pdu(f, n, &pdu), 0);
    assert_int_equal(s7_wire_read_ack(&pdu, 1, r), -1);
    /* an error in the header: refused as a read ack, readable as an error */
    n = frame(f, 5, 0x85, 0x00, par, 2, data, sizeof data);
    assert_int_equal(s7_wire_pdu(f, n, &pdu), 0);
    assert_int_equal(pdu.err_class, 0x85);
    assert_int_equal(s7_wire_read_ack(&pdu, 3, r), -1);
}

static void decode_frames(void **state)
{
    (void)state;
    static const uint8_t cc[] = {0x03, 0x00, 0x00, 0x16, 0x11, 0xD0, 0x00, 0x01, 0x44, 0x31, 0x00,
                                 0xC0, 0x01, 0x0A, 0xC1, 0x02, 0x01, 0x00, 0xC2, 0x02, 0x01, 0x02};
    assert_int_equal(s7_wire_cotp_cc(cc, sizeof cc), 0);
    uint8_t f[64];
    memcpy(f, cc, sizeof cc);
    f[5] = 0x80; /* a disconnect request, not a confirm */
    assert_int_equal(s7_wire_cotp_cc(f, sizeof cc), -1);
    memcpy(f, cc, sizeof cc);
    f[4] = 0x40; /* LI past the frame */
    assert_int_equal(s7_wire_cotp_cc(f, sizeof cc), -1);
    for (size_t k = 0; k < sizeof cc; k++)
        assert_int_equal(s7_wire_cotp_cc(cc, k), -1);
    /* TPKT headers */
    static const uint8_t http[] = {'H', 'T', 'T', 'P'};
    assert_int_equal(s7_wire_tpkt_length(http, 4), -1);
    static const uint8_t tiny[] = {3, 0, 0, 6};
    assert_int_equal(s7_wire_tpkt_length(tiny, 4), -1);
    static const uint8_t huge[] = {3, 0, 0xFF, 0xFF};
    assert_int_equal(s7_wire_tpkt_length(huge, 4), -1);
    static const uint8_t ok[] = {3, 0, 0, 25};
    assert_int_equal(s7_wire_tpkt_length(ok, 4), 25);
    /* setup ack */
    static const uint8_t par[] = {0xF0, 0x00, 0x00, 0x01, 0x00, 0x01, 0x00, 0xF0};
    size_t n = frame(f, 1, 0, 0, par, sizeof par, NULL, 0);
    struct s7_pdu pdu;
    uint16_t a, b, size;
    assert_int_equal(s7_wire_pdu(f, n, &pdu), 0);
    assert_int_equal(s7_wire_setup_ack(&pdu, &a, &b, &size), 0);
    assert_int_equal(size, 240);
    f[7] = 0x33; /* not S7 */
    assert_int_equal(s7_wire_pdu(f, n, &pdu), -1);
    f[7] = 0x32;
    f[15] = 0x09; /* data length one more than there is */
    assert_int_equal(s7_wire_pdu(f, n, &pdu), -1);
    /* write ack */
    static const uint8_t wpar[] = {0x05, 0x01};
    static const uint8_t wdata[] = {0x05};
    n = frame(f, 2, 0, 0, wpar, 2, wdata, 1);
    uint8_t rc = 0;
    assert_int_equal(s7_wire_pdu(f, n, &pdu), 0);
    assert_int_equal(s7_wire_write_ack(&pdu, &rc), 0);
    assert_int_equal(rc, S7_RC_ADDRESS);
}

static void rc_texts(void **state)
{
    (void)state;
    assert_string_equal(s7_wire_rc_text(0x0A), "object does not exist");
    assert_non_null(strstr(s7_wire_rc_hint(0x0A), "ptimized block access"));
    assert_non_null(strstr(s7_wire_rc_hint(0x03), "PUT/GET"));
    assert_string_equal(s7_wire_rc_text(0x42), "unknown return code");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(cr_bytes),      cmocka_unit_test(tsaps_per_family),
        cmocka_unit_test(setup_bytes),   cmocka_unit_test(read_bytes),
        cmocka_unit_test(write_bytes),   cmocka_unit_test(decode_read_ack),
        cmocka_unit_test(decode_frames), cmocka_unit_test(rc_texts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
