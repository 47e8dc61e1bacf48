/* The built s7.so writing to the snap7 server (npm node-snap7, an independent S7
 * implementation; tests/peers/s7): every writable type at odd and even offsets changes exactly
 * its bytes on the server (text: its header and current characters), a bit write changes exactly
 * that bit (no read-modify-write of its neighbours), and each value reads back equal through
 * read_group. Suite integration: needs Node.js (tests/lib/deps.sh: ib_install_s7_peer_deps).
 *   test_s7_peer S7.SO BUILD.SH SERVER.JS PEER_DIR */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"
#include "types.h"

#define DB_SIZE 64
#define PATTERN 0x5A

static char **args;
static pid_t peer_pid;
static int s7_port;
static FILE *ctl;

static int read_port(const char *path)
{
    FILE *f = fopen(path, "r");
    int port = 0;
    if (f != NULL) {
        if (fscanf(f, "%d", &port) != 1)
            port = 0;
        fclose(f);
    }
    return port;
}

static int start_peer(void **state)
{
    (void)state;
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "bash '%s' '%s'", args[2], args[4]);
    if (system(cmd) != 0) {
        fprintf(stderr, "the S7 peer did not build (%s)\n", cmd);
        return -1;
    }
    char dir[] = "/tmp/s7peer-XXXXXX";
    if (mkdtemp(dir) == NULL)
        return -1;
    char spec[256], portf[256], ctlf[256];
    snprintf(spec, sizeof spec, "%s/spec.json", dir);
    snprintf(portf, sizeof portf, "%s/port", dir);
    snprintf(ctlf, sizeof ctlf, "%s/ctl", dir);
    FILE *f = fopen(spec, "w");
    fprintf(f, "{\"pdu\": 480, \"dbs\": {\"1\": %d}, \"m\": 16, \"q\": 16, \"t\": 16, \"c\": 16}\n",
            DB_SIZE);
    fclose(f);
    setenv("IB_S7_PEER_DIR", args[4], 1);
    peer_pid = fork();
    if (peer_pid == 0) {
        execlp("node", "node", args[3], spec, portf, ctlf, (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 200 && (s7_port = read_port(portf)) == 0; i++)
        usleep(50000);
    int cport = read_port(ctlf);
    if (s7_port == 0 || cport == 0) {
        fprintf(stderr, "the snap7 peer did not start\n");
        return -1;
    }
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)cport),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0)
        return -1;
    ctl = fdopen(fd, "r+");
    return 0;
}

static int stop_peer(void **state)
{
    (void)state;
    if (ctl != NULL)
        fclose(ctl);
    if (peer_pid > 0) {
        kill(peer_pid, SIGTERM);
        waitpid(peer_pid, NULL, 0);
    }
    return 0;
}

/* One control request; the answer line into out. */
static void control(char *out, size_t cap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfprintf(ctl, fmt, ap);
    va_end(ap);
    fputc('\n', ctl);
    fflush(ctl);
    assert_non_null(fgets(out, (int)cap, ctl));
    assert_non_null(strstr(out, "\"ok\":true"));
}

static void fill(const char *area, uint8_t byte, int size)
{
    char hex[2 * DB_SIZE + 1], out[512];
    for (int i = 0; i < size; i++)
        snprintf(hex + 2 * i, 3, "%02x", byte);
    control(out, sizeof out,
            "{\"op\":\"set\",\"area\":\"%s\",\"db\":1,\"offset\":0,\"hex\":\"%s\"}", area, hex);
}

static void get(const char *area, uint8_t *buf, int size)
{
    char out[512];
    control(out, sizeof out, "{\"op\":\"get\",\"area\":\"%s\",\"db\":1,\"offset\":0,\"length\":%d}",
            area, size);
    const char *h = strstr(out, "\"hex\":\"");
    assert_non_null(h);
    h += 7;
    for (int i = 0; i < size; i++) {
        unsigned v;
        assert_int_equal(sscanf(h + 2 * i, "%2x", &v), 1);
        buf[i] = (uint8_t)v;
    }
}

struct fx {
    struct s7t_host host;
    struct s7t_config cfg;
    void *inst;
    struct ib_sample s[S7T_MAX_TAGS];
};

static void open_with(struct fx *fx, const char *address, int32_t type, int64_t length)
{
    s7t_host_init(&fx->host);
    s7t_config(&fx->cfg, s7_port);
    s7t_tag(&fx->cfg, address, type, length, true);
    assert_int_equal(
        s7t_plugin->create(&fx->host.host, s7t_ctx(&fx->host), &fx->cfg.conn, &fx->inst), 0);
    assert_int_equal(s7t_plugin->open(fx->inst), 0);
}

static void close_fx(struct fx *fx)
{
    s7t_plugin->close(fx->inst);
    s7t_plugin->destroy(fx->inst);
}

/* Write v to `address` as `type` (`length`: of a string); the server's DB1 must differ from the
 * pattern exactly at [off, off + n) with `want`; the value reads back as `back`. */
static void write_text_case(const char *address, int32_t type, int64_t length, struct ib_value v,
                            uint32_t off, const uint8_t *want, uint32_t n, struct ib_value back)
{
    struct fx fx;
    uint8_t db[DB_SIZE];
    fill("DB", PATTERN, DB_SIZE);
    open_with(&fx, address, type, length);
    int rc = s7t_plugin->write_tag(fx.inst, 0, 0, 0, &v);
    if (rc != 0)
        fail_msg("%s: write_tag returned %d (%s)", address, rc, fx.host.log[0]);
    get("DB", db, DB_SIZE);
    for (uint32_t i = 0; i < DB_SIZE; i++) {
        uint8_t expect = i >= off && i < off + n ? want[i - off] : PATTERN;
        if (db[i] != expect)
            fail_msg("%s as type %d: byte %u is %02x, expected %02x", address, type, i, db[i],
                     expect);
    }
    memset(fx.s, 0, sizeof fx.s);
    assert_int_equal(s7t_plugin->read_group(fx.inst, 0, 0, fx.s), 0);
    assert_int_equal(fx.s[0].quality, IB_Q_GOOD);
    assert_int_equal(fx.s[0].value.type, back.type);
    if (back.type == IB_V_DOUBLE)
        assert_true(fx.s[0].value.v.d == back.v.d);
    else if (back.type == IB_V_STRING)
        assert_true(fx.s[0].value.v.s.len == back.v.s.len &&
                    memcmp(fx.s[0].value.v.s.ptr, back.v.s.ptr, back.v.s.len) == 0);
    else
        assert_memory_equal(&fx.s[0].value.v, &back.v, sizeof back.v.u);
    close_fx(&fx);
}

static void write_case(const char *address, int32_t type, struct ib_value v, uint32_t off,
                       const uint8_t *want, uint32_t n, struct ib_value back)
{
    write_text_case(address, type, 0, v, off, want, n, back);
}

#define I(x) ((struct ib_value){.type = IB_V_INT, .v.i = (x)})
#define U(x) ((struct ib_value){.type = IB_V_UINT, .v.u = (x)})
#define D(x) ((struct ib_value){.type = IB_V_DOUBLE, .v.d = (x)})
#define B(x) ((struct ib_value){.type = IB_V_BOOL, .v.b = (x)})

static void bits(void **state)
{
    (void)state;
    /* 0x5A = 0101 1010: set the clear bits, clear the set ones, at an even and an odd byte */
    for (uint32_t byte = 2; byte <= 3; byte++)
        for (uint8_t bit = 0; bit < 8; bit++) {
            char addr[32];
            snprintf(addr, sizeof addr, "DB1.DBX%u.%u", byte, bit);
            bool was = (PATTERN >> bit) & 1;
            uint8_t want = (uint8_t)(PATTERN ^ (1u << bit));
            write_case(addr, -1, B(!was), byte, &want, 1, B(!was));
        }
}

static void numbers(void **state)
{
    (void)state;
    write_case("DB1.DBB4", S7_T_BYTE, U(0xA7), 4, (const uint8_t[]){0xA7}, 1, U(0xA7));
    write_case("DB1.DBB5", S7_T_SINT, I(-3), 5, (const uint8_t[]){0xFD}, 1, I(-3));
    write_case("DB1.DBB7", S7_T_USINT, U(200), 7, (const uint8_t[]){200}, 1, U(200));
    write_case("DB1.DBW8", S7_T_INT, I(-12345), 8, (const uint8_t[]){0xCF, 0xC7}, 2, I(-12345));
    write_case("DB1.DBW11", S7_T_WORD, U(0xBEEF), 11, (const uint8_t[]){0xBE, 0xEF}, 2, U(0xBEEF));
    write_case("DB1.DBW13", S7_T_UINT, D(65535.0), 13, (const uint8_t[]){0xFF, 0xFF}, 2, U(65535));
    write_case("DB1.DBD16", S7_T_DINT, I(-2000000000), 16,
               (const uint8_t[]){0x88, 0xCA, 0x6C, 0x00}, 4, I(-2000000000));
    write_case("DB1.DBD21", S7_T_DWORD, U(0xDEADBEEF), 21,
               (const uint8_t[]){0xDE, 0xAD, 0xBE, 0xEF}, 4, U(0xDEADBEEF));
    write_case("DB1.DBD25", S7_T_UDINT, U(4000000000u), 25,
               (const uint8_t[]){0xEE, 0x6B, 0x28, 0x00}, 4, U(4000000000u));
    struct ib_value r = D(3.5);
    write_case("DB1.DBD29", S7_T_REAL, r, 29, (const uint8_t[]){0x40, 0x60, 0, 0}, 4, r);
    write_case("DB1.DBB33", S7_T_LREAL, D(-2.0), 33, (const uint8_t[]){0xC0, 0, 0, 0, 0, 0, 0, 0},
               8, D(-2.0));
    write_case("DB1.DBB42", S7_T_LINT, I(-2), 42,
               (const uint8_t[]){0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFE}, 8, I(-2));
    write_case("DB1.DBB51", S7_T_ULINT, U(UINT64_MAX), 51,
               (const uint8_t[]){0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF}, 8, U(UINT64_MAX));
}

static void times(void **state)
{
    (void)state;
    write_case("DB1.DBW2", S7_T_S5TIME, U(123000), 2, (const uint8_t[]){0x21, 0x23}, 2, U(123000));
    write_case("DB1.DBD5", S7_T_TIME, I(-5000), 5, (const uint8_t[]){0xFF, 0xFF, 0xEC, 0x78}, 4,
               I(-5000));
    write_case("DB1.DBW10", S7_T_DATE, I(1714521600000LL), 10, (const uint8_t[]){0x30, 0xFB}, 2,
               I(1714521600000LL));
    write_case("DB1.DBD13", S7_T_TIME_OF_DAY, I(45296789), 13,
               (const uint8_t[]){0x02, 0xB3, 0x2C, 0x95}, 4, I(45296789));
    write_case("DB1.DBB20", S7_T_DATE_AND_TIME, I(1714566896789LL), 20,
               (const uint8_t[]){0x24, 0x05, 0x01, 0x12, 0x34, 0x56, 0x78, 0x94}, 8,
               I(1714566896789LL));
    write_case("DB1.DBB31", S7_T_DTL, I(1714566896789LL), 31,
               (const uint8_t[]){0x07, 0xE8, 5, 1, 4, 12, 34, 56, 0x2F, 0x07, 0x2F, 0x40}, 12,
               I(1714566896789LL));
}

#define T(str) ((struct ib_value){.type = IB_V_STRING, .v.s = {(str), sizeof(str) - 1}})

/* Text: the header (max kept, current set) and the current characters change, nothing past
 * them; strings of several lengths at odd and even offsets; refusals send nothing. */
static void strings(void **state)
{
    (void)state;
    write_text_case("DB1.DBB3", S7_T_STRING, 10, T(""), 3, (const uint8_t[]){10, 0}, 2, T(""));
    write_text_case("DB1.DBB4", S7_T_STRING, 10, T("A"), 4, (const uint8_t[]){10, 1, 'A'}, 3,
                    T("A"));
    write_text_case("DB1.DBB7", S7_T_STRING, 10, T("Grüße"), 7,
                    (const uint8_t[]){10, 5, 'G', 'r', 0xFC, 0xDF, 'e'}, 7, T("Grüße"));
    write_text_case("DB1.DBB20", S7_T_STRING, 10, T("0123456789"), 20,
                    (const uint8_t[]){10, 10, '0', '1', '2', '3', '4', '5', '6', '7', '8', '9'}, 12,
                    T("0123456789"));
    write_text_case("DB1.DBB9", S7_T_WSTRING, 6, T(""), 9, (const uint8_t[]){0, 6, 0, 0}, 4, T(""));
    write_text_case("DB1.DBB12", S7_T_WSTRING, 6, T("Ω"), 12,
                    (const uint8_t[]){0, 6, 0, 1, 0x03, 0xA9}, 6, T("Ω"));
    write_text_case(
        "DB1.DBB31", S7_T_WSTRING, 6, T("hé€\xF0\x9F\x98\x80"), 31,
        (const uint8_t[]){0, 6, 0, 5, 0, 'h', 0, 0xE9, 0x20, 0xAC, 0xD8, 0x3D, 0xDE, 0x00}, 14,
        T("hé€\xF0\x9F\x98\x80"));
    write_text_case("DB1.DBB5", S7_T_CHAR, 0, T("é"), 5, (const uint8_t[]){0xE9}, 1, T("é"));
    write_text_case("DB1.DBB6", S7_T_CHAR, 0, T("z"), 6, (const uint8_t[]){'z'}, 1, T("z"));
    /* refused before anything is sent: the DB keeps its pattern */
    static const struct {
        const char *address;
        int32_t type;
        int64_t length;
        struct ib_value v;
    } bad[] = {
        {"DB1.DBB3", S7_T_STRING, 4, T("12345")}, {"DB1.DBB3", S7_T_STRING, 10, T("5 €")},
        {"DB1.DBB3", S7_T_WSTRING, 2, T("abc")},  {"DB1.DBB3", S7_T_CHAR, 0, T("ab")},
        {"DB1.DBB3", S7_T_STRING, 10, I(5)},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct fx fx;
        uint8_t db[DB_SIZE];
        fill("DB", PATTERN, DB_SIZE);
        open_with(&fx, bad[i].address, bad[i].type, bad[i].length);
        assert_int_equal(s7t_plugin->write_tag(fx.inst, 0, 0, 0, &bad[i].v), IB_ERR_INVALID);
        if (!s7t_logged(&fx.host, "write refused"))
            fail_msg("case %zu: no 'write refused' log (%s)", i, fx.host.log[0]);
        close_fx(&fx);
        get("DB", db, DB_SIZE);
        for (int b = 0; b < DB_SIZE; b++)
            assert_int_equal(db[b], PATTERN);
    }
    /* fits the declared length but not one Write Var of the negotiated PDU */
    static char many[2000];
    memset(many, 'a', sizeof many);
    struct fx fx;
    open_with(&fx, "DB1.DBB0", S7_T_WSTRING, 2000);
    struct ib_value v = {.type = IB_V_STRING, .v.s = {many, sizeof many}};
    assert_int_equal(s7t_plugin->write_tag(fx.inst, 0, 0, 0, &v), IB_ERR_INVALID);
    if (!s7t_logged(&fx.host, "negotiated PDU"))
        fail_msg("no PDU refusal logged (%s)", fx.host.log[0]);
    close_fx(&fx);
}

static void other_areas(void **state)
{
    (void)state;
    struct fx fx;
    uint8_t q[16];
    fill("Q", 0x00, 16);
    open_with(&fx, "A4.2", -1, 0);
    struct ib_value v = B(true);
    assert_int_equal(s7t_plugin->write_tag(fx.inst, 0, 0, 0, &v), 0);
    close_fx(&fx);
    get("Q", q, 16);
    for (int i = 0; i < 16; i++)
        assert_int_equal(q[i], i == 4 ? 0x04 : 0x00);
    uint8_t m[16];
    fill("M", 0xFF, 16);
    open_with(&fx, "%MW6", S7_T_INT, 0);
    v = I(1);
    assert_int_equal(s7t_plugin->write_tag(fx.inst, 0, 0, 0, &v), 0);
    close_fx(&fx);
    get("M", m, 16);
    for (int i = 0; i < 16; i++)
        assert_int_equal(m[i], i == 6 ? 0x00 : i == 7 ? 0x01 : 0xFF);
}

static void timers_and_counters(void **state)
{
    (void)state;
    /* snap7's server keeps timer/counter n at byte n/2 of its area (its reading of the address
     * field); the plugin sends the number as the protocol defines it. T4 and C6 land on bytes
     * 2..3 and 3..4 of snap7's areas. */
    struct fx fx;
    uint8_t a[16];
    fill("T", 0x00, 16);
    open_with(&fx, "T4", -1, 0);
    struct ib_value v = U(123000);
    assert_int_equal(s7t_plugin->write_tag(fx.inst, 0, 0, 0, &v), 0);
    memset(fx.s, 0, sizeof fx.s);
    assert_int_equal(s7t_plugin->read_group(fx.inst, 0, 0, fx.s), 0);
    assert_int_equal(fx.s[0].quality, IB_Q_GOOD);
    assert_int_equal(fx.s[0].value.v.u, 123000);
    close_fx(&fx);
    get("T", a, 16);
    for (int i = 0; i < 16; i++)
        assert_int_equal(a[i], i == 2 ? 0x21 : i == 3 ? 0x23 : 0x00);
    fill("C", 0x00, 16);
    open_with(&fx, "C6", -1, 0);
    v = U(42);
    assert_int_equal(s7t_plugin->write_tag(fx.inst, 0, 0, 0, &v), 0);
    assert_int_equal(s7t_plugin->read_group(fx.inst, 0, 0, fx.s), 0);
    assert_int_equal(fx.s[0].value.v.u, 42);
    close_fx(&fx);
    get("C", a, 16);
    for (int i = 0; i < 16; i++)
        assert_int_equal(a[i], i == 4 ? 0x42 : 0x00);
}

int main(int argc, char **argv)
{
    if (argc < 5) {
        fprintf(stderr, "usage: test_s7_peer S7.SO BUILD.SH SERVER.JS PEER_DIR\n");
        return 2;
    }
    args = argv;
    s7t_load_plugin(argc, argv);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(bits),        cmocka_unit_test(numbers),
        cmocka_unit_test(times),       cmocka_unit_test(strings),
        cmocka_unit_test(other_areas), cmocka_unit_test(timers_and_counters),
    };
    return cmocka_run_group_tests(tests, start_peer, stop_peer);
}
