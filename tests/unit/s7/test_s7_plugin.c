/* Tests of the built s7.so through its descriptor against a scripted peer of the test's own:
 * good answers, then every kind of hostile or broken answer (garbage, lying TPKT lengths,
 * wrong COTP type, wrong PDU reference, wrong item count, items longer than the frame, a
 * refused request, silence, a closed socket): never a value, never a crash (run under ASan),
 * the right reason and return. Also the COTP refusal at open, config refusals, and the exact
 * Write Var bytes (bits written as bits). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"
#include "types.h"

enum fault {
    F_GOOD = 0,
    F_GARBAGE,      /* bytes that are not TPKT */
    F_TPKT_LIE,     /* a TPKT header announcing more than is sent, then close */
    F_NOT_DT,       /* COTP type CR instead of DT */
    F_BAD_MAGIC,    /* S7 protocol id 0x33 */
    F_WRONG_REF,    /* another PDU reference */
    F_ITEM_COUNT,   /* one item more than asked */
    F_ITEM_LONG,    /* an item announcing 2 bytes more than the frame holds */
    F_LEN_MISMATCH, /* S7 header lengths that do not add up to the frame */
    F_HDR_ERROR,    /* ack_data with error class 0x85 (PDU size) */
    F_ITEM_RC,      /* item return code 0x0A */
    F_SILENT,       /* no answer */
    F_CLOSE,        /* close the socket */
    F_REORDER,      /* grant 3 parallel jobs; answer the first two reads in reverse order */
    F_TRAILING,     /* the answer, then 3 bytes more in the same segment */
    F_CR_REFUSED,   /* a disconnect request instead of the connection confirm */
};

struct peer {
    pthread_t thread;
    int lfd, port;
    enum fault fault;
    uint8_t last[512]; /* the last request */
    size_t last_len;
    uint8_t held[512]; /* F_REORDER: an answer held back */
    size_t held_len;
    unsigned reads;
};

static int read_all(int fd, uint8_t *p, size_t n)
{
    while (n > 0) {
        ssize_t r = read(fd, p, n);
        if (r <= 0)
            return -1;
        p += r;
        n -= (size_t)r;
    }
    return 0;
}

static void put16(uint8_t *p, unsigned v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

/* TPKT + DT + ack_data header around param/data already at f + 19. */
static size_t wrap(uint8_t *f, unsigned ref, unsigned plen, unsigned dlen, uint8_t ec)
{
    size_t n = 19 + plen + dlen;
    uint8_t h[19] = {3, 0, 0, 0, 2, 0xF0, 0x80, 0x32, 3, 0, 0, 0, 0, 0, 0, 0, 0, ec, 0};
    memcpy(f, h, sizeof h);
    put16(f + 2, (unsigned)n);
    put16(f + 11, ref);
    put16(f + 13, plen);
    put16(f + 15, dlen);
    return n;
}

static size_t read_answer(struct peer *p, const uint8_t *req, uint8_t *f)
{
    unsigned ref = (unsigned)(req[11] << 8 | req[12]), n = req[18];
    uint8_t *d = f + 21;
    size_t dl = 0;
    f[19] = 0x04;
    f[20] = (uint8_t)(n + (p->fault == F_ITEM_COUNT));
    for (unsigned k = 0; k < n; k++) {
        const uint8_t *it = req + 19 + 12 * k;
        unsigned count = (unsigned)(it[4] << 8 | it[5]);
        d[dl] = p->fault == F_ITEM_RC ? 0x0A : 0xFF;
        if (d[dl] != 0xFF) {
            d[dl + 1] = 0;
            put16(d + dl + 2, 0);
            dl += 4;
            continue;
        }
        d[dl + 1] = 0x04;
        put16(d + dl + 2, (count + (p->fault == F_ITEM_LONG ? 2 : 0)) * 8);
        for (unsigned b = 0; b < count; b++)
            d[dl + 4 + b] = p->fault == F_REORDER ? (uint8_t)(ref + b) : (uint8_t)(0x11 * (b + 1));
        dl += 4 + count;
        if ((count & 1) && k + 1 < n)
            d[dl++] = 0;
    }
    size_t len = wrap(f, p->fault == F_WRONG_REF ? ref + 1 : ref, 2, (unsigned)dl,
                      p->fault == F_HDR_ERROR ? 0x85 : 0);
    if (p->fault == F_HDR_ERROR)
        len = wrap(f, ref, 0, 0, 0x85);
    if (p->fault == F_NOT_DT)
        f[5] = 0xE0;
    if (p->fault == F_BAD_MAGIC)
        f[7] = 0x33;
    if (p->fault == F_LEN_MISMATCH)
        put16(f + 15, (unsigned)dl + 1);
    return len;
}

/* The scripted peer's writes: a short or failed write shows up as the plugin's error, which the
 * test checks; the result is checked here only so that nothing is ignored silently. */
static void peer_write(int fd, const void *p, size_t n)
{
    ssize_t w = write(fd, p, n);
    if (w != (ssize_t)n)
        fprintf(stderr, "s7 test peer: wrote %zd of %zu bytes\n", w, n);
}

static void answer(struct peer *p, int fd, const uint8_t *req, size_t len)
{
    uint8_t f[1024];
    size_t n = 0;
    if (req[5] == 0xE0) {
        static const uint8_t cc[] = {3, 0, 0, 11, 6, 0xD0, 0, 1, 0, 1, 0};
        static const uint8_t dr[] = {3, 0, 0, 11, 6, 0x80, 0, 1, 0, 1, 0};
        peer_write(fd, p->fault == F_CR_REFUSED ? dr : cc, sizeof cc);
        return;
    }
    if (len < 19)
        return;
    unsigned ref = (unsigned)(req[11] << 8 | req[12]);
    if (req[17] == 0xF0) { /* setup: PDU 240, 1 job (3 for F_REORDER) */
        uint8_t par[] = {0xF0, 0, 0, 1, 0, 1, 0, 240};
        if (p->fault == F_REORDER)
            par[3] = par[5] = 3;
        memcpy(f + 19, par, sizeof par);
        n = wrap(f, ref, sizeof par, 0, 0);
    } else if (req[17] == 0x05) { /* write: done */
        f[19] = 0x05;
        f[20] = 1;
        f[21] = 0xFF;
        n = wrap(f, ref, 2, 1, 0);
    } else if (req[17] == 0x04) {
        switch (p->fault) {
        case F_SILENT:
            return;
        case F_GARBAGE:
            peer_write(fd, "HELLO WORLD!", 12);
            return;
        case F_TPKT_LIE: {
            uint8_t lie[30] = {3, 0, 0, 200, 2, 0xF0, 0x80, 0x32, 3};
            peer_write(fd, lie, sizeof lie);
            return;
        }
        default:
            n = read_answer(p, req, f);
        }
    }
    if (n > 0 && p->fault == F_REORDER && req[17] == 0x04 && p->held_len == 0 && p->reads++ == 0) {
        memcpy(p->held, f, n); /* the first read's answer waits for the second's */
        p->held_len = n;
        return;
    }
    if (n > 0 && p->fault == F_TRAILING && req[17] == 0x04) {
        memcpy(f + n, "\x03\x00\x00", 3);
        n += 3;
    }
    if (n > 0)
        peer_write(fd, f, n);
    if (p->held_len > 0 && req[17] == 0x04) {
        peer_write(fd, p->held, p->held_len);
        p->held_len = 0;
    }
}

static void serve(struct peer *p, int fd)
{
    uint8_t req[512];
    for (;;) {
        if (read_all(fd, req, 4) != 0)
            return;
        size_t len = (size_t)(req[2] << 8 | req[3]);
        if (len < 7 || len > sizeof req || read_all(fd, req + 4, len - 4) != 0)
            return;
        memcpy(p->last, req, len);
        p->last_len = len;
        if (req[5] == 0xF0 && len > 17 && req[17] == 0x04 && p->fault == F_CLOSE)
            return;
        answer(p, fd, req, len);
        if (p->fault == F_TPKT_LIE && req[5] == 0xF0 && len > 17 && req[17] == 0x04)
            return; /* the rest of the announced frame never comes */
    }
}

static void *peer_main(void *arg)
{
    struct peer *p = arg;
    for (;;) {
        int fd = accept(p->lfd, NULL, NULL);
        if (fd < 0)
            return NULL;
        serve(p, fd);
        close(fd);
    }
}

static struct peer *peer_start(enum fault f)
{
    struct peer *p = calloc(1, sizeof *p);
    p->fault = f;
    p->lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t l = sizeof a;
    assert_int_equal(bind(p->lfd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(p->lfd, 4), 0);
    getsockname(p->lfd, (struct sockaddr *)&a, &l);
    p->port = ntohs(a.sin_port);
    pthread_create(&p->thread, NULL, peer_main, p);
    return p;
}

static void peer_stop(struct peer *p)
{
    shutdown(p->lfd, SHUT_RDWR);
    close(p->lfd);
    pthread_join(p->thread, NULL);
    free(p);
}

struct fx {
    struct s7t_host host;
    struct s7t_config cfg;
    void *inst;
    struct ib_sample s[S7T_MAX_TAGS];
};

/* A word and a real in DB1 (one item), read from a peer with fault f. Returns read_group's
 * value; samples in fx->s. */
static int poll_with(struct fx *fx, enum fault f, int *open_rc)
{
    struct peer *p = peer_start(f);
    s7t_host_init(&fx->host);
    s7t_config(&fx->cfg, p->port);
    fx->cfg.cp.timeout_ms = 300;
    s7t_tag(&fx->cfg, "DB1.DBW0", -1, 0, false);
    s7t_tag(&fx->cfg, "DB1.DBD2", S7_T_REAL, 0, false);
    assert_int_equal(
        s7t_plugin->create(&fx->host.host, s7t_ctx(&fx->host), &fx->cfg.conn, &fx->inst), 0);
    *open_rc = s7t_plugin->open(fx->inst);
    int rc = IB_ERR_CONNECTION;
    if (*open_rc == 0) {
        memset(fx->s, 0x5A, sizeof fx->s); /* an unfilled sample shows */
        rc = s7t_plugin->read_group(fx->inst, 0, 0, fx->s);
    }
    s7t_plugin->close(fx->inst);
    s7t_plugin->destroy(fx->inst);
    peer_stop(p);
    return rc;
}

static void good(void **state)
{
    (void)state;
    struct fx fx;
    int orc;
    assert_int_equal(poll_with(&fx, F_GOOD, &orc), 0);
    assert_int_equal(orc, 0);
    assert_int_equal(fx.s[0].quality, IB_Q_GOOD);
    assert_int_equal(fx.s[0].value.type, IB_V_UINT);
    assert_int_equal(fx.s[0].value.v.u, 0x1122);
    assert_int_equal(fx.s[1].quality, IB_Q_GOOD);
    assert_int_equal(fx.s[1].value.type, IB_V_DOUBLE);
    assert_true(s7t_logged(&fx.host, "PDU 240"));
}

static void expect_bad(enum fault f, int want_rc, uint8_t reason, uint16_t code)
{
    struct fx fx;
    int orc;
    int rc = poll_with(&fx, f, &orc);
    assert_int_equal(orc, 0);
    if (rc != want_rc)
        fail_msg("fault %d: read_group returned %d, expected %d", f, rc, want_rc);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(fx.s[i].quality, IB_Q_BAD);
        assert_int_equal(fx.s[i].value.type, IB_V_NONE);
        if (fx.s[i].reason != reason)
            fail_msg("fault %d: reason %u, expected %u", f, fx.s[i].reason, reason);
        assert_int_equal(fx.s[i].code, code);
    }
}

static void hostile(void **state)
{
    (void)state;
    expect_bad(F_GARBAGE, IB_ERR_CONNECTION, IB_R_PROTOCOL, 0);
    expect_bad(F_TPKT_LIE, IB_ERR_CONNECTION, IB_R_CONN_LOST, 0);
    expect_bad(F_NOT_DT, IB_ERR_CONNECTION, IB_R_PROTOCOL, 0);
    expect_bad(F_BAD_MAGIC, IB_ERR_CONNECTION, IB_R_PROTOCOL, 0);
    expect_bad(F_WRONG_REF, IB_ERR_CONNECTION, IB_R_PROTOCOL, 0);
    expect_bad(F_ITEM_COUNT, IB_ERR_CONNECTION, IB_R_PROTOCOL, 0);
    expect_bad(F_ITEM_LONG, IB_ERR_CONNECTION, IB_R_PROTOCOL, 0);
    expect_bad(F_LEN_MISMATCH, IB_ERR_CONNECTION, IB_R_PROTOCOL, 0);
    expect_bad(F_SILENT, IB_ERR_CONNECTION, IB_R_TIMEOUT, 0);
    expect_bad(F_TRAILING, IB_ERR_CONNECTION, IB_R_PROTOCOL, 0);
    expect_bad(F_CLOSE, IB_ERR_CONNECTION, IB_R_CONN_LOST, 0);
    /* refusals keep the connection */
    expect_bad(F_HDR_ERROR, IB_ERR_EXCEPTION, IB_R_EXCEPTION, 0x8500);
    expect_bad(F_ITEM_RC, 0, IB_R_EXCEPTION, 0x0A);
}

static unsigned count_logged(const struct s7t_host *h, const char *needle)
{
    unsigned n = 0, lines = h->n_logs < 64 ? h->n_logs : 64;
    for (unsigned i = 0; i < lines; i++)
        n += strstr(h->log[i], needle) != NULL;
    return n;
}

static void refusals_in_few_lines(void **state)
{
    (void)state;
    /* 20 tags of a DB the PLC says does not exist: 8 lines naming tags, one counting the rest,
     * and nothing more at the next poll */
    static const char *const addr[] = {
        "DB1.DBW0",  "DB1.DBW2",  "DB1.DBW4",  "DB1.DBW6",  "DB1.DBW8",  "DB1.DBW10", "DB1.DBW12",
        "DB1.DBW14", "DB1.DBW16", "DB1.DBW18", "DB1.DBW20", "DB1.DBW22", "DB1.DBW24", "DB1.DBW26",
        "DB1.DBW28", "DB1.DBW30", "DB1.DBW32", "DB1.DBW34", "DB1.DBW36", "DB1.DBW38"};
    struct peer *p = peer_start(F_ITEM_RC);
    struct fx fx;
    s7t_host_init(&fx.host);
    s7t_config(&fx.cfg, p->port);
    for (unsigned i = 0; i < 20; i++)
        s7t_tag(&fx.cfg, addr[i], -1, 0, false);
    assert_int_equal(s7t_plugin->create(&fx.host.host, s7t_ctx(&fx.host), &fx.cfg.conn, &fx.inst),
                     0);
    assert_int_equal(s7t_plugin->open(fx.inst), 0);
    unsigned before = fx.host.n_logs;
    assert_int_equal(s7t_plugin->read_group(fx.inst, 0, 0, fx.s), 0);
    assert_int_equal(count_logged(&fx.host, "object does not exist"), 8);
    assert_int_equal(count_logged(&fx.host, "12 more tags went bad"), 1);
    assert_int_equal(fx.host.n_logs - before, 9);
    before = fx.host.n_logs;
    assert_int_equal(s7t_plugin->read_group(fx.inst, 0, 0, fx.s), 0);
    assert_int_equal(fx.host.n_logs, before);
    for (unsigned i = 0; i < 20; i++)
        assert_int_equal(fx.s[i].code, 0x0A);
    s7t_plugin->destroy(fx.inst);
    peer_stop(p);
}

static void parallel_jobs_out_of_order(void **state)
{
    (void)state;
    /* two requests (max_items 1) in flight at once; the peer answers the second first: each
     * answer lands with its own request, matched by PDU reference */
    struct peer *p = peer_start(F_REORDER);
    struct fx fx;
    s7t_host_init(&fx.host);
    s7t_config(&fx.cfg, p->port);
    fx.cfg.dp.max_items = 1;
    s7t_tag(&fx.cfg, "DB1.DBW0", -1, 0, false);
    s7t_tag(&fx.cfg, "DB1.DBW100", -1, 0, false);
    assert_int_equal(s7t_plugin->create(&fx.host.host, s7t_ctx(&fx.host), &fx.cfg.conn, &fx.inst),
                     0);
    assert_int_equal(s7t_plugin->open(fx.inst), 0);
    assert_true(s7t_logged(&fx.host, "3/3 parallel jobs granted, 3 used"));
    assert_int_equal(s7t_plugin->read_group(fx.inst, 0, 0, fx.s), 0);
    /* setup was reference 1; the reads 2 and 3; data bytes are ref + offset */
    assert_int_equal(fx.s[0].quality, IB_Q_GOOD);
    assert_int_equal(fx.s[0].value.v.u, 0x0203);
    assert_int_equal(fx.s[1].value.v.u, 0x0304);
    s7t_plugin->destroy(fx.inst);
    peer_stop(p);
}

static void cotp_refused(void **state)
{
    (void)state;
    struct fx fx;
    int orc;
    poll_with(&fx, F_CR_REFUSED, &orc);
    assert_int_equal(orc, IB_ERR_CONNECTION);
    assert_true(s7t_logged(&fx.host, "refused the COTP connection"));
    assert_true(s7t_logged(&fx.host, "remote TSAP 0101"));
}

static void no_server(void **state)
{
    (void)state;
    struct fx fx;
    s7t_host_init(&fx.host);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t l = sizeof a;
    bind(fd, (struct sockaddr *)&a, sizeof a);
    getsockname(fd, (struct sockaddr *)&a, &l);
    s7t_config(&fx.cfg, ntohs(a.sin_port));
    close(fd); /* a port nobody listens on */
    s7t_tag(&fx.cfg, "MW0", -1, 0, false);
    assert_int_equal(s7t_plugin->create(&fx.host.host, s7t_ctx(&fx.host), &fx.cfg.conn, &fx.inst),
                     0);
    assert_int_equal(s7t_plugin->open(fx.inst), IB_ERR_CONNECTION);
    assert_int_equal(s7t_plugin->open(fx.inst), IB_ERR_CONNECTION);
    unsigned logged = fx.host.n_logs;
    assert_int_equal(logged, 1); /* the episode: logged once, not at every retry */
    memset(fx.s, 0x5A, sizeof fx.s);
    assert_int_equal(s7t_plugin->read_group(fx.inst, 0, 0, fx.s), IB_ERR_CONNECTION);
    assert_int_equal(fx.s[0].reason, IB_R_CONN_LOST);
    s7t_plugin->destroy(fx.inst);
}

static void config_refusals(void **state)
{
    (void)state;
    static const struct {
        const char *address;
        int32_t type;
        int64_t length;
        bool writable;
        const char *says;
    } bad[] = {
        {"DB1.DBX0.9", -1, 0, false, "bit number"},
        {"DB1.DBW0", S7_T_REAL, 0, false, "does not fit"},
        {"DB1.DBB0", S7_T_STRING, 0, false, "needs length"},
        {"DB1.DBB0", S7_T_STRING, 255, false, "1..254"},
        {"DB1.DBW0", S7_T_INT, 4, false, "length applies"},
        {"DB1.DBB65530", S7_T_LREAL, 0, false, "past byte 65535"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct fx fx;
        s7t_host_init(&fx.host);
        s7t_config(&fx.cfg, 102);
        s7t_tag(&fx.cfg, bad[i].address, bad[i].type, bad[i].length, bad[i].writable);
        fx.inst = (void *)1;
        assert_int_equal(
            s7t_plugin->create(&fx.host.host, s7t_ctx(&fx.host), &fx.cfg.conn, &fx.inst),
            IB_ERR_INVALID);
        assert_null(fx.inst);
        if (!s7t_logged(&fx.host, bad[i].says))
            fail_msg("%s: no config error saying '%s' (%s)", bad[i].address, bad[i].says,
                     fx.host.log[0]);
    }
    struct fx fx;
    s7t_host_init(&fx.host);
    s7t_config(&fx.cfg, 102);
    fx.cfg.cp.remote_tsap = "02.0";
    s7t_tag(&fx.cfg, "MW0", -1, 0, false);
    assert_int_equal(s7t_plugin->create(&fx.host.host, s7t_ctx(&fx.host), &fx.cfg.conn, &fx.inst),
                     IB_ERR_INVALID);
    assert_true(s7t_logged(&fx.host, "is not a TSAP"));
}

static void tsaps_sent(void **state)
{
    (void)state;
    struct peer *p = peer_start(F_CR_REFUSED);
    struct fx fx;
    s7t_host_init(&fx.host);
    s7t_config(&fx.cfg, p->port);
    fx.cfg.cp.rack = 1;
    fx.cfg.cp.slot = 4;
    fx.cfg.cp.connection_type = 1; /* op */
    s7t_tag(&fx.cfg, "MW0", -1, 0, false);
    assert_int_equal(s7t_plugin->create(&fx.host.host, s7t_ctx(&fx.host), &fx.cfg.conn, &fx.inst),
                     0);
    s7t_plugin->open(fx.inst);
    assert_int_equal(p->last_len, 22);
    assert_int_equal(p->last[16], 0x01); /* local 01.00 */
    assert_int_equal(p->last[17], 0x00);
    assert_int_equal(p->last[20], 0x02); /* OP */
    assert_int_equal(p->last[21], 0x24); /* rack 1 * 32 + slot 4 */
    s7t_plugin->destroy(fx.inst);
    /* explicit TSAPs (LOGO!) */
    s7t_config(&fx.cfg, p->port);
    fx.cfg.cp.local_tsap = "0x1000";
    fx.cfg.cp.remote_tsap = "20.01";
    s7t_tag(&fx.cfg, "MW0", -1, 0, false);
    assert_int_equal(s7t_plugin->create(&fx.host.host, s7t_ctx(&fx.host), &fx.cfg.conn, &fx.inst),
                     0);
    s7t_plugin->open(fx.inst);
    assert_int_equal(p->last[16], 0x10);
    assert_int_equal(p->last[17], 0x00);
    assert_int_equal(p->last[20], 0x20);
    assert_int_equal(p->last[21], 0x01);
    s7t_plugin->destroy(fx.inst);
    peer_stop(p);
}

static void write_bytes(void **state)
{
    (void)state;
    struct peer *p = peer_start(F_GOOD);
    struct fx fx;
    s7t_host_init(&fx.host);
    s7t_config(&fx.cfg, p->port);
    uint32_t bit = s7t_tag(&fx.cfg, "Q4.2", -1, 0, true);
    uint32_t w = s7t_tag(&fx.cfg, "DB2.DBW7", S7_T_INT, 0, true);
    uint32_t ro = s7t_tag(&fx.cfg, "DB2.DBW9", S7_T_INT, 0, false);
    assert_int_equal(s7t_plugin->create(&fx.host.host, s7t_ctx(&fx.host), &fx.cfg.conn, &fx.inst),
                     0);
    assert_int_equal(s7t_plugin->open(fx.inst), 0);
    struct ib_value v = {.type = IB_V_BOOL, .v.b = true};
    assert_int_equal(s7t_plugin->write_tag(fx.inst, 0, 0, bit, &v), 0);
    /* item: transport size BIT, 1 element, area Q, address 4 * 8 + 2; data: BIT, 1 bit, 1 */
    static const uint8_t bit_item[] = {0x12, 0x0A, 0x10, 0x01, 0x00, 0x01, 0x00, 0x00, 0x82,
                                       0x00, 0x00, 0x22, 0x00, 0x03, 0x00, 0x01, 0x01};
    assert_int_equal(p->last_len, 36);
    assert_memory_equal(p->last + 19, bit_item, sizeof bit_item);
    v = (struct ib_value){.type = IB_V_INT, .v.i = -2};
    assert_int_equal(s7t_plugin->write_tag(fx.inst, 0, 0, w, &v), 0);
    static const uint8_t word_item[] = {0x12, 0x0A, 0x10, 0x02, 0x00, 0x02, 0x00, 0x02, 0x84,
                                        0x00, 0x00, 0x38, 0x00, 0x04, 0x00, 0x10, 0xFF, 0xFE};
    assert_memory_equal(p->last + 19, word_item, sizeof word_item);
    v.v.i = 40000; /* out of INT range: refused before anything is sent */
    size_t before = p->last_len;
    p->last_len = 0;
    assert_int_equal(s7t_plugin->write_tag(fx.inst, 0, 0, w, &v), IB_ERR_INVALID);
    assert_int_equal(p->last_len, 0);
    assert_int_equal(s7t_plugin->write_tag(fx.inst, 0, 0, ro, &v), IB_ERR_DENIED);
    (void)before;
    s7t_plugin->destroy(fx.inst);
    peer_stop(p);
}

int main(int argc, char **argv)
{
    s7t_load_plugin(argc, argv);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(good),
        cmocka_unit_test(hostile),
        cmocka_unit_test(refusals_in_few_lines),
        cmocka_unit_test(parallel_jobs_out_of_order),
        cmocka_unit_test(cotp_refused),
        cmocka_unit_test(no_server),
        cmocka_unit_test(config_refusals),
        cmocka_unit_test(tsaps_sent),
        cmocka_unit_test(write_bytes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
