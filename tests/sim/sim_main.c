/* ironbridge-sim: the project's Modbus TCP device simulator for the demo, integration tests and
 * benchmarks; serves a map file to many concurrent clients from a single poll loop. */

#include "sim_map.h"

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <modbus.h>

#ifndef IB_SIM_VERSION
#define IB_SIM_VERSION "unknown"
#endif

#define PROG              "ironbridge-sim"
#define EXIT_USAGE        2
#define MBAP_SIZE         7   /* transaction, protocol, length, unit */
#define MAX_ADU           260 /* MBAP + largest PDU */
#define CLIENT_BUF        (2 * MAX_ADU)
#define ACCEPT_BURST      64
#define NS_PER_MS         1000000LL
#define NS_PER_S          1000000000LL
#define EMFILE_BACKOFF_NS (100 * NS_PER_MS)

struct options {
    const char *map_path;
    const char *listen_addr;
    unsigned port;
    unsigned nports;
    const char *port_file;
    unsigned tick_ms;
    bool quiet;
};

struct client {
    int fd;
    size_t len;
    char peer[INET_ADDRSTRLEN + 8];
    uint8_t buf[CLIENT_BUF];
};

struct server {
    modbus_t *ctx;
    struct sim_map *map;
    modbus_mapping_t *mb;
    int *listen_fds;
    size_t nlisten;
    bool quiet;
    /* pfds[0 .. nlisten-1] are the listeners, pfds[nlisten + i] belongs to clients[i] */
    struct pollfd *pfds;
    struct client *clients;
    size_t nclients, cap;
    size_t ndropped;
    int64_t accept_paused_until;
};

static volatile sig_atomic_t stop_signal;

static void on_stop_signal(int sig)
{
    stop_signal = sig;
}

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * NS_PER_S + ts.tv_nsec;
}

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: " PROG " --map FILE [OPTIONS]\n"
            "Modbus TCP device simulator: serves the coils, discrete inputs, input registers and\n"
            "holding registers described in a map file (format: docs/simulator.md).\n"
            "\n"
            "  --map FILE         register map to serve (required)\n"
            "  --listen ADDR      IPv4 address to listen on (default 127.0.0.1; 0.0.0.0 = all)\n"
            "  --port N           TCP port (default 1502; 0 lets the kernel pick a free port)\n"
            "  --ports N          listen on N ports, 1 to 10000 (default 1): N consecutive ports\n"
            "                     from --port, or N kernel-chosen ones with --port 0; all serve\n"
            "                     the same map (a device farm in one process)\n"
            "  --port-file PATH   once listening, write the port number to PATH (atomically, via\n"
            "                     a temporary file and rename), one line per port with --ports;\n"
            "                     removed again on clean shutdown\n"
            "  --tick-ms MS       re-evaluate behaviour-driven values every MS milliseconds,\n"
            "                     1 to 3600000 (default 100)\n"
            "  --quiet            do not log the map summary, client connects/disconnects or the\n"
            "                     shutdown to stderr (the listening line and errors still print)\n"
            "  -h, --help         show this help and exit\n"
            "  --version          print the version and exit\n"
            "\n"
            "Once listening it prints \"" PROG ": listening on ADDR:PORT\" to stdout.\n"
            "Every unit id is answered unless the map has a 'units' line. Values clients write\n"
            "to const registers are kept; behaviour-driven ones are overwritten on the next tick.\n"
            "Exit status: 0 after SIGTERM or SIGINT, 1 if it cannot listen or write the port\n"
            "file, 2 on usage or map errors.\n");
}

static bool parse_uint(const char *s, unsigned long min, unsigned long max, unsigned *out)
{
    char *end;
    unsigned long v;

    if (*s < '0' || *s > '9')
        return false;
    errno = 0;
    v = strtoul(s, &end, 10);
    if (*end != '\0' || errno == ERANGE || v < min || v > max)
        return false;
    *out = (unsigned)v;
    return true;
}

static int parse_options(int argc, char **argv, struct options *o)
{
    enum {
        OPT_MAP = 256,
        OPT_LISTEN,
        OPT_PORT,
        OPT_PORTS,
        OPT_PORT_FILE,
        OPT_TICK,
        OPT_QUIET,
        OPT_VERSION
    };
    static const struct option longopts[] = {
        {"map", required_argument, NULL, OPT_MAP},
        {"listen", required_argument, NULL, OPT_LISTEN},
        {"port", required_argument, NULL, OPT_PORT},
        {"ports", required_argument, NULL, OPT_PORTS},
        {"port-file", required_argument, NULL, OPT_PORT_FILE},
        {"tick-ms", required_argument, NULL, OPT_TICK},
        {"quiet", no_argument, NULL, OPT_QUIET},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, OPT_VERSION},
        {NULL, 0, NULL, 0},
    };
    int c;

    o->listen_addr = "127.0.0.1";
    o->port = 1502;
    o->nports = 1;
    o->tick_ms = 100;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (c) {
        case OPT_MAP:
            o->map_path = optarg;
            break;
        case OPT_LISTEN:
            o->listen_addr = optarg;
            break;
        case OPT_PORT:
            if (!parse_uint(optarg, 0, 65535, &o->port)) {
                fprintf(stderr, PROG ": --port needs a number from 0 to 65535, not '%s'\n", optarg);
                return EXIT_USAGE;
            }
            break;
        case OPT_PORTS:
            if (!parse_uint(optarg, 1, 10000, &o->nports)) {
                fprintf(stderr, PROG ": --ports needs a number from 1 to 10000, not '%s'\n",
                        optarg);
                return EXIT_USAGE;
            }
            break;
        case OPT_PORT_FILE:
            o->port_file = optarg;
            break;
        case OPT_TICK:
            if (!parse_uint(optarg, 1, 3600000, &o->tick_ms)) {
                fprintf(stderr, PROG ": --tick-ms needs a number from 1 to 3600000, not '%s'\n",
                        optarg);
                return EXIT_USAGE;
            }
            break;
        case OPT_QUIET:
            o->quiet = true;
            break;
        case 'h':
            usage(stdout);
            return EXIT_SUCCESS;
        case OPT_VERSION:
            printf(PROG " " IB_SIM_VERSION "\n");
            return EXIT_SUCCESS;
        default:
            fprintf(stderr, "Try '" PROG " --help' for more information.\n");
            return EXIT_USAGE;
        }
    }
    if (optind < argc) {
        fprintf(stderr, PROG ": unexpected argument '%s'\n", argv[optind]);
        return EXIT_USAGE;
    }
    if (o->map_path == NULL) {
        fprintf(stderr, PROG ": --map FILE is required (see --help)\n");
        return EXIT_USAGE;
    }
    if (o->port != 0 && o->port + o->nports - 1 > 65535) {
        fprintf(stderr, PROG ": --port %u with --ports %u runs past port 65535\n", o->port,
                o->nports);
        return EXIT_USAGE;
    }
    return -1;
}

/* libmodbus binds INADDR_ANY for any address starting with '0' and silently turns invalid text
 * into 255.255.255.255, so the address is validated and canonicalised up front. */
static bool canonical_ipv4(const char *text, char *out, size_t len, bool *any)
{
    struct in_addr in;

    if (inet_pton(AF_INET, text, &in) != 1 || inet_ntop(AF_INET, &in, out, (socklen_t)len) == NULL)
        return false;
    *any = in.s_addr == htonl(INADDR_ANY);
    return *any || out[0] != '0';
}

static int write_port_file(const char *path, const unsigned *ports, size_t nports)
{
    size_t n = strlen(path) + 32;
    char *tmp = malloc(n);
    FILE *f;
    int ok;

    if (tmp == NULL)
        return -1;
    /* Readers poll for the file's existence, so they must never see it half written. */
    snprintf(tmp, n, "%s.%ld.tmp", path, (long)getpid());
    f = fopen(tmp, "we");
    if (f == NULL) {
        free(tmp);
        return -1;
    }
    ok = true;
    for (size_t i = 0; i < nports && ok; i++)
        ok = fprintf(f, "%u\n", ports[i]) > 0;
    ok = (fclose(f) == 0) && ok;
    if (!ok || rename(tmp, path) != 0) {
        int saved = errno;
        unlink(tmp);
        free(tmp);
        errno = saved;
        return -1;
    }
    free(tmp);
    return 0;
}

/* Returns 0 to pass the request to modbus_reply(), or the exception to answer with. Requests
 * that modbus_reply() would answer with an exception only after sleeping for the response
 * timeout and flushing the socket (bad quantities, unknown functions) are answered here,
 * because that sleep would stall every other client of this single-threaded server. */
static unsigned check_pdu(const uint8_t *pdu, size_t len)
{
    unsigned qty = len >= 5 ? (unsigned)(pdu[3] << 8 | pdu[4]) : 0;

    switch (pdu[0]) {
    case MODBUS_FC_READ_COILS:
    case MODBUS_FC_READ_DISCRETE_INPUTS:
        if (len != 5 || qty < 1 || qty > MODBUS_MAX_READ_BITS)
            return MODBUS_EXCEPTION_ILLEGAL_DATA_VALUE;
        return 0;
    case MODBUS_FC_READ_HOLDING_REGISTERS:
    case MODBUS_FC_READ_INPUT_REGISTERS:
        if (len != 5 || qty < 1 || qty > MODBUS_MAX_READ_REGISTERS)
            return MODBUS_EXCEPTION_ILLEGAL_DATA_VALUE;
        return 0;
    case MODBUS_FC_WRITE_SINGLE_COIL:
    case MODBUS_FC_WRITE_SINGLE_REGISTER:
        return len == 5 ? 0 : MODBUS_EXCEPTION_ILLEGAL_DATA_VALUE;
    case MODBUS_FC_WRITE_MULTIPLE_COILS:
        if (len < 6 || len != 6u + pdu[5] || qty < 1 || qty > MODBUS_MAX_WRITE_BITS ||
            pdu[5] != (qty + 7) / 8)
            return MODBUS_EXCEPTION_ILLEGAL_DATA_VALUE;
        return 0;
    case MODBUS_FC_WRITE_MULTIPLE_REGISTERS:
        if (len < 6 || len != 6u + pdu[5] || qty < 1 || qty > MODBUS_MAX_WRITE_REGISTERS ||
            pdu[5] != 2 * qty)
            return MODBUS_EXCEPTION_ILLEGAL_DATA_VALUE;
        return 0;
    case MODBUS_FC_REPORT_SLAVE_ID:
        return len == 1 ? 0 : MODBUS_EXCEPTION_ILLEGAL_DATA_VALUE;
    case MODBUS_FC_MASK_WRITE_REGISTER:
        return len == 7 ? 0 : MODBUS_EXCEPTION_ILLEGAL_DATA_VALUE;
    case MODBUS_FC_WRITE_AND_READ_REGISTERS: {
        unsigned wqty = len >= 9 ? (unsigned)(pdu[7] << 8 | pdu[8]) : 0;
        if (len < 10 || len != 10u + pdu[9] || qty < 1 || qty > MODBUS_MAX_WR_READ_REGISTERS ||
            wqty < 1 || wqty > MODBUS_MAX_WR_WRITE_REGISTERS || pdu[9] != 2 * wqty)
            return MODBUS_EXCEPTION_ILLEGAL_DATA_VALUE;
        return 0;
    }
    default:
        /* Includes read exception status (0x07), for which libmodbus 3.1.6 sends nothing. */
        return MODBUS_EXCEPTION_ILLEGAL_FUNCTION;
    }
}

static void log_client(const struct server *s, const struct client *c, const char *what,
                       size_t remaining)
{
    if (!s->quiet)
        fprintf(stderr, PROG ": client %s %s (%zu connected)\n", c->peer, what, remaining);
}

/* Dropped clients leave the table only after the poll round, so count them to log the right
 * number of remaining connections. */
static void log_drop(struct server *s, const struct client *c, const char *what)
{
    s->ndropped++;
    log_client(s, c, what, s->nclients - s->ndropped);
}

/* Returns false when the client must be dropped. */
static bool serve_frame(struct server *s, const uint8_t *frame, size_t len)
{
    unsigned fc = frame[MBAP_SIZE];
    unsigned exception;
    int rc;

    /* Function codes 0 and >= 0x80 are never valid requests; answering would echo nonsense. */
    if (fc == 0 || fc >= 0x80)
        return false;
    if (!sim_map_serves_unit(s->map, frame[MBAP_SIZE - 1]))
        exception = MODBUS_EXCEPTION_GATEWAY_TARGET;
    else
        exception = check_pdu(frame + MBAP_SIZE, len - MBAP_SIZE);
    if (exception != 0)
        rc = modbus_reply_exception(s->ctx, frame, exception);
    else
        rc = modbus_reply(s->ctx, frame, (int)len, s->mb);
    return rc >= 0;
}

/* Frames requests by the MBAP length field rather than with modbus_receive(), which blocks the
 * whole loop for up to its byte timeout whenever a client has sent only part of a request. */
static bool serve_client(struct server *s, struct client *c)
{
    ssize_t n = recv(c->fd, c->buf + c->len, sizeof c->buf - c->len, 0);
    size_t off = 0;

    if (n == 0) {
        log_drop(s, c, "disconnected");
        return false;
    }
    if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
            return true;
        log_drop(s, c, "dropped after a read error");
        return false;
    }
    c->len += (size_t)n;
    modbus_set_socket(s->ctx, c->fd);
    while (c->len - off >= MBAP_SIZE) {
        const uint8_t *f = c->buf + off;
        unsigned protocol = (unsigned)(f[2] << 8 | f[3]);
        unsigned length = (unsigned)(f[4] << 8 | f[5]);
        if (protocol != 0 || length < 2 || length > MAX_ADU - 6) {
            log_drop(s, c, "dropped: not a Modbus TCP request");
            return false;
        }
        if (c->len - off < 6 + length)
            break;
        if (!serve_frame(s, f, 6 + length)) {
            log_drop(s, c, "dropped: invalid request or send failure");
            return false;
        }
        off += 6 + length;
    }
    /* What is left is less than one frame, so the buffer always has room to complete it. */
    memmove(c->buf, c->buf + off, c->len - off);
    c->len -= off;
    return true;
}

static bool add_client(struct server *s, int fd, const struct sockaddr_in *peer)
{
    if (s->nclients == s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 16;
        struct pollfd *pfds = realloc(s->pfds, (cap + s->nlisten) * sizeof *pfds);
        if (pfds == NULL)
            return false;
        s->pfds = pfds;
        struct client *clients = realloc(s->clients, cap * sizeof *clients);
        if (clients == NULL)
            return false;
        s->clients = clients;
        s->cap = cap;
    }
    struct client *c = &s->clients[s->nclients];
    c->fd = fd;
    c->len = 0;
    char addr[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &peer->sin_addr, addr, sizeof addr);
    snprintf(c->peer, sizeof c->peer, "%s:%u", addr, (unsigned)ntohs(peer->sin_port));
    s->pfds[s->nlisten + s->nclients] = (struct pollfd){.fd = fd, .events = POLLIN};
    s->nclients++;
    log_client(s, c, "connected", s->nclients);
    return true;
}

static void accept_clients(struct server *s, int listen_fd)
{
    for (int i = 0; i < ACCEPT_BURST; i++) {
        struct sockaddr_in peer;
        socklen_t plen = sizeof peer;
        int fd = accept4(listen_fd, (struct sockaddr *)&peer, &plen, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                /* The pending connection keeps the listener readable; without a pause the
                 * loop would spin until a descriptor frees up. */
                fprintf(stderr, PROG ": cannot accept: %s; pausing accepts\n", strerror(errno));
                s->accept_paused_until = now_ns() + EMFILE_BACKOFF_NS;
            }
            return;
        }
        int one = 1;
        /* Request/response traffic: Nagle would only add latency. */
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        if (!add_client(s, fd, &peer)) {
            fprintf(stderr, PROG ": out of memory, refusing a client\n");
            close(fd);
        }
    }
}

static void drop_marked_clients(struct server *s)
{
    for (size_t i = 0; i < s->nclients;) {
        if (s->clients[i].fd >= 0) {
            i++;
            continue;
        }
        s->nclients--;
        s->clients[i] = s->clients[s->nclients];
        s->pfds[s->nlisten + i] = s->pfds[s->nlisten + s->nclients];
        s->accept_paused_until = 0;
    }
    s->ndropped = 0;
}

static int run(struct server *s, unsigned tick_ms, const sigset_t *run_mask)
{
    const int64_t tick_ns = (int64_t)tick_ms * NS_PER_MS;
    int64_t next_tick = now_ns() + tick_ns;

    while (!stop_signal) {
        int64_t now = now_ns();
        if (now >= next_tick) {
            sim_map_tick(s->map);
            next_tick += tick_ns;
            /* After a stall, resume the cadence instead of replaying missed ticks in a burst. */
            if (next_tick <= now)
                next_tick = now + tick_ns;
        }
        int64_t wake = next_tick;
        bool accepting = now >= s->accept_paused_until;
        if (!accepting && s->accept_paused_until < wake)
            wake = s->accept_paused_until;
        for (size_t l = 0; l < s->nlisten; l++)
            s->pfds[l].events = accepting ? POLLIN : 0;

        struct timespec timeout = {.tv_sec = (wake - now) / NS_PER_S,
                                   .tv_nsec = (wake - now) % NS_PER_S};
        size_t polled = s->nclients;
        int rc = ppoll(s->pfds, s->nlisten + polled, &timeout, run_mask);
        if (rc < 0) {
            if (errno == EINTR)
                continue;
            fprintf(stderr, PROG ": poll: %s\n", strerror(errno));
            return EXIT_FAILURE;
        }
        if (rc == 0)
            continue;
        for (size_t i = 0; i < polled; i++) {
            struct client *c = &s->clients[i];
            if (s->pfds[s->nlisten + i].revents == 0)
                continue;
            if (!serve_client(s, c)) {
                close(c->fd);
                c->fd = -1;
            }
        }
        drop_marked_clients(s);
        for (size_t l = 0; l < s->nlisten; l++)
            if (s->pfds[l].revents & POLLIN)
                accept_clients(s, s->pfds[l].fd);
    }
    if (!s->quiet)
        fprintf(stderr, PROG ": stopping on %s\n", strsignal(stop_signal));
    return EXIT_SUCCESS;
}

/* A non-blocking listening socket on ADDR:PORT (PORT 0: the kernel chooses); *bound gets the
 * port. Returns the descriptor, or -1 with errno set. */
static int open_listener(const char *addr, unsigned port, unsigned *bound)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    socklen_t len = sizeof sa;
    int one = 1;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

    if (fd < 0)
        return -1;
    if (inet_pton(AF_INET, addr, &sa.sin_addr) != 1) {
        close(fd);
        errno = EINVAL;
        return -1;
    }
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
        bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(fd, SOMAXCONN) < 0 ||
        getsockname(fd, (struct sockaddr *)&sa, &len) < 0) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    *bound = ntohs(sa.sin_port);
    return fd;
}

static int serve(const struct options *o, struct server *s)
{
    char addr[INET_ADDRSTRLEN], describe[256];
    bool any;
    sigset_t stop_set, run_mask;
    struct sigaction sa;

    if (!canonical_ipv4(o->listen_addr, addr, sizeof addr, &any)) {
        fprintf(stderr,
                PROG ": --listen needs an IPv4 address such as 127.0.0.1 or 0.0.0.0, "
                     "not '%s'\n",
                o->listen_addr);
        return EXIT_USAGE;
    }
    s->map = sim_map_load(o->map_path);
    if (s->map == NULL)
        return EXIT_USAGE;
    s->mb = sim_map_mapping(s->map);
    if (!o->quiet) {
        sim_map_describe(s->map, describe, sizeof describe);
        fprintf(stderr, PROG ": map %s: %s\n", o->map_path, describe);
    }

    /* Signals stay blocked except inside ppoll(), so a stop request can never slip in between
     * checking the flag and going to sleep. */
    sigemptyset(&stop_set);
    sigaddset(&stop_set, SIGTERM);
    sigaddset(&stop_set, SIGINT);
    sigprocmask(SIG_BLOCK, &stop_set, &run_mask);
    sigdelset(&run_mask, SIGTERM);
    sigdelset(&run_mask, SIGINT);
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, NULL);

    /* The context only frames replies; the listening sockets are opened here, so that one
     * process can listen on many ports (--ports). */
    s->ctx = modbus_new_tcp(any ? NULL : addr, (int)o->port);
    if (s->ctx == NULL) {
        fprintf(stderr, PROG ": modbus_new_tcp: %s\n", modbus_strerror(errno));
        return EXIT_FAILURE;
    }
    s->listen_fds = calloc(o->nports, sizeof *s->listen_fds);
    s->pfds = calloc(o->nports, sizeof *s->pfds);
    unsigned *ports = calloc(o->nports, sizeof *ports);
    if (s->listen_fds == NULL || s->pfds == NULL || ports == NULL) {
        free(ports);
        fprintf(stderr, PROG ": out of memory\n");
        return EXIT_FAILURE;
    }
    for (unsigned i = 0; i < o->nports; i++) {
        unsigned want = o->port == 0 ? 0 : o->port + i;
        int fd = open_listener(addr, want, &ports[i]);
        if (fd < 0) {
            fprintf(stderr, PROG ": cannot listen on %s:%u: %s\n", addr, want, strerror(errno));
            free(ports);
            return EXIT_FAILURE;
        }
        s->listen_fds[s->nlisten++] = fd;
        s->pfds[i] = (struct pollfd){.fd = fd, .events = POLLIN};
    }

    for (unsigned i = 0; i < o->nports; i++)
        printf(PROG ": listening on %s:%u\n", addr, ports[i]);
    fflush(stdout);
    if (o->port_file != NULL && write_port_file(o->port_file, ports, o->nports) != 0) {
        fprintf(stderr, PROG ": cannot write port file %s: %s\n", o->port_file, strerror(errno));
        free(ports);
        return EXIT_FAILURE;
    }
    free(ports);

    int rc = run(s, o->tick_ms, &run_mask);
    if (o->port_file != NULL)
        unlink(o->port_file);
    return rc;
}

int main(int argc, char **argv)
{
    struct options o = {0};
    struct server s = {0};
    int rc = parse_options(argc, argv, &o);

    if (rc >= 0)
        return rc;
    s.quiet = o.quiet;
    rc = serve(&o, &s);

    for (size_t i = 0; i < s.nclients; i++)
        close(s.clients[i].fd);
    for (size_t i = 0; i < s.nlisten; i++)
        close(s.listen_fds[i]);
    free(s.listen_fds);
    if (s.ctx != NULL)
        modbus_free(s.ctx);
    sim_map_free(s.map);
    free(s.clients);
    free(s.pfds);
    return rc;
}
