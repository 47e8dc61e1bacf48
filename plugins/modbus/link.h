/* The driver's transport interface: one link per connection, behind which sit Modbus RTU on a
 * serial port (through libmodbus), and Modbus TCP and RTU frames over a TCP socket (our own
 * socket and framing: link_stream.c). Every call returns as libmodbus does: a count, or -1 with
 * errno (ETIMEDOUT, EMBX* for an exception, EMBBADCRC, EMBBADDATA, MB_ESTRAY, a system error).
 * A link is used by one thread at a time (the connection's poller). */
#ifndef IB_MODBUS_LINK_H
#define IB_MODBUS_LINK_H

#include <stdbool.h>
#include <stdint.h>

#include <modbus.h>

enum mb_link_kind {
    MB_LINK_TCP = 0,      /* Modbus TCP (MBAP header), mbap.c framing */
    MB_LINK_RTU,          /* Modbus RTU on a serial port, libmodbus */
    MB_LINK_RTU_OVER_TCP, /* Modbus RTU frames on a TCP socket, rtu.c framing */
};

/* errno of a response that was followed by more bytes than its frame holds. */
#define MB_ESTRAY (MODBUS_ENOBASE + 1000)
/* errno of an open whose host name did not resolve (RTU over TCP; libmodbus says
 * ECONNREFUSED). */
#define MB_ENORESOLVE (MODBUS_ENOBASE + 1001)

enum mb_link_impl {
    MB_IMPL_NATIVE = 0, /* our own socket and framing (link_stream.c) */
    MB_IMPL_LIBMODBUS,  /* Modbus TCP through libmodbus 3.1.6 (link_libmodbus.c) */
};

struct mb_pipe;
struct mb_pipe_item;

struct mb_link_config {
    uint8_t kind; /* enum mb_link_kind */
    uint8_t impl; /* enum mb_link_impl; MB_IMPL_LIBMODBUS only with MB_LINK_TCP */
    /* TCP kinds */
    const char *host;
    int port;
    /* MB_LINK_RTU */
    const char *serial_port;
    int baud;
    char parity; /* 'N', 'E' or 'O' */
    int data_bits;
    int stop_bits;
    bool rs485; /* switch the port to RS-485 mode (TIOCSRS485) at open */
    /* all */
    uint32_t connect_timeout_ms; /* TCP kinds */
    uint32_t byte_timeout_ms;    /* the longest pause allowed inside one response */
    uint32_t frame_gap_us;       /* silence kept before each request and expected after each
                                    response (RTU's 3.5 characters); 0: none */
};

struct mb_link;

/* A closed link for cfg (strings are borrowed and must outlive it). No I/O.
 * Returns 0 and *out (free with mb_link_free), or IB_ERR_NOMEM. */
int mb_link_new(const struct mb_link_config *cfg, struct mb_link **out);
void mb_link_free(struct mb_link *link); /* accepts NULL; closes first */

/* Open (connect) a closed link. 0, or a positive errno: ETIMEDOUT for a connect that did not
 * finish within connect_timeout_ms, ENOTTY when rs485 is asked of a port that has no RS-485
 * mode, others as the system says. */
int mb_link_open(struct mb_link *link);
void mb_link_close(struct mb_link *link); /* safe when closed */
bool mb_link_is_open(const struct mb_link *link);

/* What the link talks to, for logs: "host:port" or the serial port. */
const char *mb_link_name(const struct mb_link *link);
enum mb_link_kind mb_link_kind(const struct mb_link *link);

/* The response timeout of the requests that follow, in ms. */
void mb_link_set_timeout(struct mb_link *link, uint32_t response_ms);

/* Read count values of a table (enum mb_table) from unit at addr into dest (uint16_t registers
 * in host order, or one byte per bit). Returns count or -1 with errno. */
int mb_link_read(struct mb_link *link, int unit, unsigned table, uint16_t addr, uint16_t count,
                 void *dest);

/* Write with function code fc (5, 6, 15 or 16): count bits (one byte each) or registers.
 * Returns 1 (FC5/FC6) or count (FC15/FC16), or -1 with errno. */
int mb_link_write(struct mb_link *link, int unit, uint8_t fc, uint16_t addr, uint16_t count,
                  const void *data);

/* Can this link have several requests in flight (native Modbus TCP)? */
bool mb_link_pipelines(const struct mb_link *link);

/* Read items[0 .. n-1] of unit with up to `window` (1..MB_PIPE_MAX) requests in flight at once,
 * answers matched by transaction id in pipe (the caller's, one per link). Items with count 0 are
 * skipped. Each item gets its outcome (pipe.h): done with rc and err, or not done when the batch
 * stopped before its answer (the link was lost or out of step: it is then reopened once, or left
 * closed). No retries: the caller repeats what failed, one at a time. A device that mishandles
 * several requests in flight leaves pipe->misbehaved set. Only on links that pipeline. */
void mb_link_read_batch(struct mb_link *link, struct mb_pipe *pipe, int unit,
                        struct mb_pipe_item *items, uint32_t n, uint32_t window);

/* What was wrong with the last response, for logs ("transaction id 7, expected 12"), when the
 * link knows more than its errno says; "" otherwise. Valid until the next request. */
const char *mb_link_why(const struct mb_link *link);

/* After a request that succeeded: were more bytes sent than the response frame held? On links
 * with a frame gap this waits for the gap of silence. Stray bytes are read and dropped.
 * Returns 0 (clean), or -1 with errno MB_ESTRAY (stray bytes) or a system error. */
int mb_link_settle(struct mb_link *link);

/* After a request that failed with errno e: leave the link ready for a clean next request.
 * Modbus TCP reconnects after a protocol error (the stream has no frame boundary to resync on)
 * and drops what arrived after a timeout; the RTU kinds read until the line is quiet. Returns 0,
 * or a positive errno when the link is lost (it is then closed). */
int mb_link_recover(struct mb_link *link, int e);

#endif
