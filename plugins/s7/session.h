/* S7 plugin, session: one TCP connection to a PLC — connect with a timeout, COTP connection
 * with the TSAPs, Setup Communication (PDU size, parallel jobs), then one request and its
 * response at a time with a timeout. A session that fails in any way is closed: a late or
 * garbled answer would put the stream out of step. Used by one poller thread only. */
#ifndef IB_S7_SESSION_H
#define IB_S7_SESSION_H

#include <stddef.h>
#include <stdint.h>

#include "wire.h"

struct s7_session_cfg {
    const char *host; /* owned by the caller, valid while the session is */
    int port;
    uint16_t local_tsap, remote_tsap;
    uint32_t connect_timeout_ms;
    uint32_t timeout_ms; /* per response */
    uint16_t pdu_request;
    uint16_t jobs_request; /* parallel jobs asked for in Setup Communication, >= 1 */
};

struct s7_session {
    struct s7_session_cfg cfg;
    int fd;               /* -1: closed */
    uint16_t pdu;         /* negotiated PDU size */
    uint16_t amq_calling; /* negotiated parallel jobs */
    uint16_t amq_called;
    uint16_t ref;
    size_t rx_len;   /* bytes in rx */
    size_t rx_frame; /* the frame last returned is rx[0 .. rx_frame-1]; dropped at the next */
    int last_errno;  /* the errno of the last transport failure, 0 if none */
    char error[192]; /* the last failure, for a person */
    uint8_t tx[S7_FRAME_MAX];
    uint8_t rx[S7_FRAME_MAX];
};

/* Set up a closed session (no I/O). */
void s7_session_init(struct s7_session *s, const struct s7_session_cfg *cfg);

/* Connect, COTP, Setup Communication. 0, or IB_ERR_CONNECTION / IB_ERR_TIMEOUT /
 * IB_ERR_PROTOCOL with s->error set; the session is then closed. */
int s7_session_open(struct s7_session *s);

/* Close; safe when closed. */
void s7_session_close(struct s7_session *s);

/* The next PDU reference (never 0). */
uint16_t s7_session_next_ref(struct s7_session *s);

/* Parallel jobs this session may have outstanding: the least of what was asked and what the
 * PLC granted both ways (1 before a Setup Communication). */
unsigned s7_session_jobs(const struct s7_session *s);

/* Pipelining: send s->tx[0 .. len-1]; then receive the answers one by one (any order), each
 * decoded into *pdu pointing into s->rx until the next receive. 0, or an ib_err as for
 * s7_session_transact() with the session closed. After the last answer expected,
 * s7_session_check_idle() refuses bytes past it. */
int s7_session_send(struct s7_session *s, size_t len);
int s7_session_receive(struct s7_session *s, struct s7_pdu *pdu);
int s7_session_check_idle(struct s7_session *s);

/* Send s->tx[0 .. len-1] (a frame with PDU reference `ref`) and receive its answer into s->rx,
 * decoded into *pdu (pointing into s->rx, valid until the next call). 0, or IB_ERR_TIMEOUT,
 * IB_ERR_CONNECTION (closed by the peer, a socket error) or IB_ERR_PROTOCOL (a frame that is
 * not a valid S7 answer to this request), with s->error set and the session closed. */
int s7_session_transact(struct s7_session *s, size_t len, uint16_t ref, struct s7_pdu *pdu);

#endif
