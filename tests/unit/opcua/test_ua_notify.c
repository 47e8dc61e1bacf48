/* Unit tests of the subscription codec (plugins/opcua/notify.c): a PublishResponse with a
 * DataChangeNotification (two values, one with a bad status) and a StatusChangeNotification
 * decoded field by field; a keep-alive; every truncation and a lying array length refused
 * with no value handed over; a RepublishResponse's NotificationMessage; the DataChangeFilter
 * encoded and decoded back. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "notify.h"

static size_t put_i32(uint8_t *p, int32_t v)
{
    memcpy(p, &v, 4); /* little-endian machines only, as the codec's own tests */
    return 4;
}

/* A PublishResponse body after its ResponseHeader: subscription 11, available 3 and 4, seq 5,
 * a DataChangeNotification (handle 0: Int32 42 with a source timestamp; handle 1: Double 1.5
 * with BadDeviceFailure) and a StatusChangeNotification (BadTimeout). */
static size_t publish_body(uint8_t *b)
{
    size_t n = 0;
    uint8_t dcn[64];
    size_t k = 0;
    k += put_i32(dcn + k, 2);
    k += put_i32(dcn + k, 0);
    dcn[k++] = 0x05; /* value + source timestamp */
    dcn[k++] = 6;    /* Int32 */
    k += put_i32(dcn + k, 42);
    int64_t ts = 133000000000000000LL;
    memcpy(dcn + k, &ts, 8);
    k += 8;
    k += put_i32(dcn + k, 1);
    dcn[k++] = 0x03; /* value + status */
    dcn[k++] = 11;   /* Double */
    double d = 1.5;
    memcpy(dcn + k, &d, 8);
    k += 8;
    k += put_i32(dcn + k, (int32_t)0x808B0000u);
    k += put_i32(dcn + k, -1); /* DiagnosticInfos */
    n += put_i32(b + n, 11);
    n += put_i32(b + n, 2);
    n += put_i32(b + n, 3);
    n += put_i32(b + n, 4);
    b[n++] = 0; /* MoreNotifications */
    n += put_i32(b + n, 5);
    memset(b + n, 0, 8); /* PublishTime */
    n += 8;
    n += put_i32(b + n, 2);
    const uint8_t eo1[] = {1, 0, 811 & 0xff, 811 >> 8, 1};
    memcpy(b + n, eo1, sizeof eo1);
    n += sizeof eo1;
    n += put_i32(b + n, (int32_t)k);
    memcpy(b + n, dcn, k);
    n += k;
    const uint8_t eo2[] = {1, 0, 820 & 0xff, 820 >> 8, 1};
    memcpy(b + n, eo2, sizeof eo2);
    n += sizeof eo2;
    n += put_i32(b + n, 5);
    n += put_i32(b + n, (int32_t)0x800A0000u);
    b[n++] = 0;              /* DiagnosticInfo: empty */
    n += put_i32(b + n, 0);  /* Results */
    n += put_i32(b + n, -1); /* DiagnosticInfos */
    return n;
}

struct seen {
    int changes, statuses;
    uint32_t handles[4];
    struct ua_datavalue dv[4];
    uint32_t status;
};

static void on_change(void *arg, uint32_t h, const struct ua_datavalue *dv)
{
    struct seen *s = arg;
    if (s->changes < 4) {
        s->handles[s->changes] = h;
        s->dv[s->changes] = *dv;
    }
    s->changes++;
}

static void on_status(void *arg, uint32_t status)
{
    struct seen *s = arg;
    s->statuses++;
    s->status = status;
}

static void publish_response(void **state)
{
    (void)state;
    uint8_t b[256];
    size_t n = publish_body(b);
    struct ua_cur c;
    ua_cur_init(&c, b, n);
    struct ua_notif_msg m;
    assert_int_equal(ua_notif_parse(&c, true, &m), UA_OK);
    assert_int_equal(c.left, 0);
    assert_int_equal(m.sub_id, 11);
    assert_int_equal(m.n_avail, 2);
    assert_int_equal(m.avail[0], 3);
    assert_int_equal(m.avail[1], 4);
    assert_false(m.more);
    assert_int_equal(m.seq, 5);
    assert_int_equal(m.n_data, 2);
    struct seen s = {0};
    struct ua_notif_cbs cbs = {on_change, on_status, &s};
    assert_int_equal(ua_notif_each(&m, &cbs), 2);
    assert_int_equal(s.changes, 2);
    assert_int_equal(s.handles[0], 0);
    assert_int_equal(s.dv[0].value.type, 6);
    assert_int_equal(s.dv[0].value.v.i, 42);
    assert_int_equal(s.dv[0].src_ts, 133000000000000000LL);
    assert_int_equal(s.handles[1], 1);
    assert_int_equal(s.dv[1].status, 0x808B0000u);
    assert_int_equal(s.statuses, 1);
    assert_int_equal(s.status, 0x800A0000u);
}

static void truncated_and_lying(void **state)
{
    (void)state;
    uint8_t b[256];
    size_t n = publish_body(b);
    for (size_t cut = 0; cut < n; cut++) {
        struct ua_cur c;
        ua_cur_init(&c, b, cut);
        struct ua_notif_msg m;
        if (ua_notif_parse(&c, true, &m) == UA_OK)
            fail_msg("a PublishResponse cut at %zu of %zu bytes was accepted", cut, n);
    }
    /* The DataChangeNotification claims 1000 items in its few bytes. */
    uint8_t bad[256];
    memcpy(bad, b, n);
    size_t at = 4 + 4 + 8 + 1 + 4 + 8 + 4 + 5 + 4; /* its first field */
    put_i32(bad + at, 1000);
    struct ua_cur c;
    ua_cur_init(&c, bad, n);
    struct ua_notif_msg m;
    assert_int_not_equal(ua_notif_parse(&c, true, &m), UA_OK);
}

static void keepalive_and_republish(void **state)
{
    (void)state;
    uint8_t b[64];
    size_t n = 0;
    n += put_i32(b + n, 7);  /* SubscriptionId */
    n += put_i32(b + n, -1); /* no AvailableSequenceNumbers */
    b[n++] = 0;
    n += put_i32(b + n, 9); /* the next sequence number */
    memset(b + n, 0, 8);
    n += 8;
    n += put_i32(b + n, 0);
    n += put_i32(b + n, -1);
    n += put_i32(b + n, -1);
    struct ua_cur c;
    ua_cur_init(&c, b, n);
    struct ua_notif_msg m;
    assert_int_equal(ua_notif_parse(&c, true, &m), UA_OK);
    assert_int_equal(m.sub_id, 7);
    assert_int_equal(m.n_data, 0);
    assert_int_equal(m.seq, 9);
    /* The same NotificationMessage alone, as Republish returns it. */
    ua_cur_init(&c, b + 9, 16);
    assert_int_equal(ua_notif_parse(&c, false, &m), UA_OK);
    assert_int_equal(m.seq, 9);
    assert_int_equal(m.n_data, 0);
}

static void filter_roundtrip(void **state)
{
    (void)state;
    struct ua_buf b = {0};
    ua_put_datachange_filter(&b, 2, 2.5);
    /* NodeId i=724 (4-byte form), encoding 1, length 16, then the body */
    assert_int_equal(b.len, 4 + 1 + 4 + 16);
    assert_int_equal(b.data[0], 1);
    assert_int_equal(b.data[2] | b.data[3] << 8, 724);
    struct ua_cur c;
    ua_cur_init(&c, b.data + 9, 16);
    uint32_t trigger, type;
    double v;
    assert_int_equal(ua_datachange_filter_parse(&c, &trigger, &type, &v), UA_OK);
    assert_int_equal(trigger, 1);
    assert_int_equal(type, 2);
    assert_true(v == 2.5);
    ua_buf_reset(&b);
    ua_put_datachange_filter(&b, 0, 0);
    assert_int_equal(b.len, 3); /* the null ExtensionObject */
    ua_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(publish_response),
        cmocka_unit_test(truncated_and_lying),
        cmocka_unit_test(keepalive_and_republish),
        cmocka_unit_test(filter_roundtrip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
