/* fuzz_modbus_link.c: fuzz target of what a Modbus device answers, through the plugin's real
 * link (plugins/modbus/link.c and its backends) on a real TCP connection over 127.0.0.1: Modbus
 * TCP responses (MBAP header and PDU: link_stream.c, mbap.c, pdu.c) when built with
 * FUZZ_LINK_KIND=MB_LINK_TCP, RTU frames on a TCP socket (link_stream.c, rtu.c, pdu.c) with
 * FUZZ_LINK_KIND=MB_LINK_RTU_OVER_TCP. Each input is one transaction: a request of the
 * plugin's, the input's bytes as the answer, then mb_link_settle() (bytes after the frame) or
 * mb_link_recover() (after a failure), as transact.c does. Modbus TCP reads may instead go
 * three in flight at once through mb_link_read_batch() (max_outstanding, link_pipe.c, pipe.c),
 * the input's bytes answering them all.
 *
 * Input: 6 header bytes, then the answer.
 *   [0] op: bits 0-1 the table (read) or the write function (5, 6, 15, 16); bit 2 a write;
 *       bit 3 Modbus TCP: keep the answer's transaction id as given (else the request's is
 *       copied in); RTU: leave the CRC as given (else the frame's CRC is made valid);
 *       bit 4 (Modbus TCP reads): three reads of count values at addr, addr + count and
 *       addr + 2 * count in flight at once, transaction ids 1, 2 and 3 (a new link's)
 *   [1] unit id   [2..3] count (little-endian, folded into the valid range)   [4..5] address */
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fuzz_util.h"
#include "link.h"
#include "pipe.h"
#include "proto.h"
#include "rtu.h"

#ifndef FUZZ_LINK_KIND
#define FUZZ_LINK_KIND MB_LINK_TCP
#endif

static int listener = -1;
static int port;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof sa;
    listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (listener < 0 || bind(listener, (struct sockaddr *)&sa, sizeof sa) < 0 ||
        listen(listener, 64) < 0 || getsockname(listener, (struct sockaddr *)&sa, &sl) < 0) {
        perror("fuzz_modbus_link: listen on 127.0.0.1");
        abort();
    }
    port = ntohs(sa.sin_port);
    return 0;
}

struct peer {
    int fd;
    const uint8_t *answer;
    size_t len;
    int patch_tid;
};

/* The device: wait for the request, send the answer at once, then end the stream (so that a
 * short answer ends in ECONNRESET, not in a timeout). */
static void *peer_main(void *arg)
{
    struct peer *p = arg;
    uint8_t req[512];
    struct pollfd pf = {p->fd, POLLIN, 0};
    ssize_t n = poll(&pf, 1, 2000) == 1 ? recv(p->fd, req, sizeof req, 0) : -1;
    if (n > 0 && p->len > 0) {
        uint8_t *out = malloc(p->len);
        memcpy(out, p->answer, p->len);
        if (p->patch_tid && n >= 2 && p->len >= 2)
            memcpy(out, req, 2);
        send(p->fd, out, p->len, MSG_NOSIGNAL);
        free(out);
    }
    shutdown(p->fd, SHUT_WR);
    return NULL;
}

/* Close with a reset: no TIME_WAIT left behind by the thousands of connections of a run. */
static void close_hard(int fd)
{
    struct linger lg = {1, 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    close(fd);
}

static int accept_one(void)
{
    struct pollfd pf = {listener, POLLIN, 0};
    if (poll(&pf, 1, 2000) != 1)
        return -1;
    return accept4(listener, NULL, NULL, SOCK_CLOEXEC);
}

static void drain_backlog(void)
{
    int fd;
    while ((fd = accept4(listener, NULL, NULL, SOCK_CLOEXEC)) >= 0)
        close_hard(fd);
}

static const uint8_t write_fcs[4] = {MB_FC_WRITE_SINGLE_COIL, MB_FC_WRITE_SINGLE_REGISTER,
                                     MB_FC_WRITE_MULTIPLE_COILS, MB_FC_WRITE_MULTIPLE_REGISTERS};

/* A count the plugin could send for this request (libmodbus refuses others before sending). */
static uint16_t fold_count(int write, unsigned sel, uint16_t raw)
{
    static const uint16_t read_max[MB_TABLE_COUNT] = {2000, 2000, 125, 125};
    static const uint16_t write_max[4] = {1, 1, 1968, 123};
    uint16_t max = write ? write_max[sel] : read_max[sel];
    return (uint16_t)(1 + raw % max);
}

/* RTU: make the CRC of the frame the request expects valid, so that the checks behind it are
 * reached. */
static void fix_crc(const uint8_t *req, uint8_t *rsp, size_t len)
{
    int flen = mb_rtu_response_length(req, rsp, len);
    if (flen >= 4 && (size_t)flen <= len) {
        uint16_t crc = mb_rtu_crc(rsp, (size_t)flen - 2);
        rsp[flen - 2] = (uint8_t)crc;
        rsp[flen - 1] = (uint8_t)(crc >> 8);
    }
}

/* Three reads in flight: each that is done must hold its count or an errno. */
static void read_batch(struct mb_link *link, uint8_t unit, unsigned sel, uint16_t addr,
                       uint16_t count)
{
    static struct mb_pipe pipe;
    static uint16_t dest[3][2048];
    struct mb_pipe_item items[3];
    for (unsigned k = 0; k < 3; k++)
        items[k] = (struct mb_pipe_item){.table = (uint8_t)sel,
                                         .addr = (uint16_t)(addr + k * count),
                                         .count = count,
                                         .dest = dest[k]};
    mb_link_read_batch(link, &pipe, unit, items, 3, 3);
    for (unsigned k = 0; k < 3; k++) {
        if (items[k].done && items[k].rc >= 0 && items[k].rc != count) {
            fprintf(stderr, "fuzz_modbus_link: read %u in flight: %d values, %u asked\n", k,
                    items[k].rc, count);
            abort();
        }
        if (items[k].done && items[k].rc < 0 && items[k].err == 0)
            abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 6)
        return 0;
    uint8_t op = data[0];
    unsigned sel = op & 3;
    int write = (op >> 2) & 1, as_given = (op >> 3) & 1;
    uint8_t unit = FUZZ_LINK_KIND == MB_LINK_TCP ? data[1] : (uint8_t)(1 + data[1] % 247);
    uint16_t count = fold_count(write, sel, (uint16_t)(data[2] | data[3] << 8));
    uint16_t addr = (uint16_t)(data[4] | data[5] << 8);
    size_t len = size - 6;
    uint8_t *answer = malloc(len ? len : 1);
    memcpy(answer, data + 6, len);
    static uint16_t regs[2048];
    static uint8_t bits[2048];
    for (unsigned i = 0; i < count; i++) {
        regs[i] = (uint16_t)(addr + i);
        bits[i] = (uint8_t)(i & 1);
    }
    if (FUZZ_LINK_KIND != MB_LINK_TCP && !as_given) {
        uint8_t req[MB_RTU_MAX_ADU];
        if (write)
            mb_rtu_write_request(req, unit, write_fcs[sel], addr, count, bits, regs);
        else {
            static const uint8_t fc[MB_TABLE_COUNT] = {MB_FC_READ_COILS, MB_FC_READ_DISCRETE_INPUTS,
                                                       MB_FC_READ_INPUT_REGISTERS,
                                                       MB_FC_READ_HOLDING_REGISTERS};
            mb_rtu_read_request(req, unit, fc[sel], addr, count);
        }
        fix_crc(req, answer, len);
    }

    struct mb_link_config cfg = {.kind = FUZZ_LINK_KIND,
                                 .host = "127.0.0.1",
                                 .port = port,
                                 .connect_timeout_ms = 2000,
                                 .byte_timeout_ms = 1000};
    struct mb_link *link = NULL;
    if (mb_link_new(&cfg, &link) != 0)
        abort();
    mb_link_set_timeout(link, 2000);
    int rc = mb_link_open(link);
    int sfd = rc == 0 ? accept_one() : -1;
    if (sfd < 0) {
        fprintf(stderr, "fuzz_modbus_link: cannot connect to 127.0.0.1:%d (%s)\n", port,
                strerror(rc ? rc : errno));
        abort();
    }
    struct peer peer = {sfd, answer, len, FUZZ_LINK_KIND == MB_LINK_TCP && !as_given};
    pthread_t th;
    if (pthread_create(&th, NULL, peer_main, &peer) != 0)
        abort();
    static uint16_t dest[2048];
    if (FUZZ_LINK_KIND == MB_LINK_TCP && !write && (op >> 4) & 1)
        read_batch(link, unit, sel, addr, count);
    else if (write)
        rc = mb_link_write(link, unit, write_fcs[sel], addr, count,
                           sel == 0 || sel == 2 ? (const void *)bits : (const void *)regs);
    else
        rc = mb_link_read(link, unit, sel, addr, count, dest);
    if (FUZZ_LINK_KIND == MB_LINK_TCP && !write && (op >> 4) & 1) {
        /* checked in read_batch */
    } else if (rc >= 0) {
        if (rc != (write && sel < 2 ? 1 : count)) {
            fprintf(stderr, "fuzz_modbus_link: success with %d values, %u asked\n", rc, count);
            abort();
        }
        (void)mb_link_settle(link);
    } else {
        (void)mb_link_recover(link, errno);
    }
    /* The device side goes first, with a reset: neither side is left in TIME_WAIT. */
    pthread_join(th, NULL);
    close_hard(sfd);
    drain_backlog(); /* a reconnect of mb_link_recover() */
    mb_link_free(link);
    free(answer);
    return 0;
}
