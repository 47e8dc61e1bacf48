/* OPC UA plugin: one client connection (channel.c): TCP to an opc.tcp:// endpoint,
 * Hello/Acknowledge, a secure channel (OpenSecureChannel issue and
 * renew before the token's lifetime runs out, CloseSecureChannel), signed and encrypted
 * chunks when a security policy is set (secure.c), and request/response with
 * request ids and timeouts. Owned and called by one poller thread. */
#ifndef IB_OPCUA_CHANNEL_H
#define IB_OPCUA_CHANNEL_H

#include <stdint.h>

#include "chunk.h"
#include "secure.h"
#include "ua.h"

struct ua_channel {
    int fd;
    struct ua_sec *sec; /* the security policy (the caller's); NULL or policy None: none */
    struct ua_limits ours, theirs;
    struct ua_seq seq;
    struct ua_asm rx;
    uint32_t next_request_id;
    uint32_t lifetime_ms; /* requested token lifetime */
    int64_t renew_at_ms;  /* monotonic time to renew the token (75% of its lifetime) */
    uint32_t timeout_ms;  /* per request */
    struct ua_buf tx;     /* encoded chunks about to be sent */
    struct ua_buf req;    /* the request being built (ua_channel_begin) */
    uint8_t *chunk;       /* one received chunk (ours.recv_buf bytes) */
    char url[512];
    char error[4096];             /* what went wrong last, for the log */
    uint32_t renewals;            /* tokens renewed on this connection */
    uint32_t revised_lifetime_ms; /* what the server granted last */
    uint32_t last_status;         /* ServiceResult / ERR code of the last failure (0 if none) */
    uint32_t hint_ms;             /* TimeoutHint of the next request only (0: timeout_ms) */
    int64_t last_sent_ms;         /* monotonic: when the last request was sent */
    /* Called with a complete response (in ch->rx.body, readable with ua_channel_response)
     * to a request the channel is not waiting for: outstanding Publish requests. It must not
     * use the channel but for ua_channel_response. NULL: such responses are dropped. */
    void (*on_stray)(void *arg, uint32_t request_id);
    void *stray_arg;
};

/* Prepares an unconnected channel (no I/O). recv_buf/max_msg: our limits. */
int ua_channel_init(struct ua_channel *ch, uint32_t recv_buf, uint32_t max_msg, uint32_t timeout_ms,
                    uint32_t lifetime_ms);
void ua_channel_free(struct ua_channel *ch);

/* Splits "opc.tcp://host:port/path" into host and port (4840 when absent). 0 or -1. */
int ua_url_split(const char *url, char *host, size_t host_size, char *port, size_t port_size);

/* Connects, exchanges Hello/Acknowledge and opens the secure channel. 0, or an ib_err with
 * ch->error set (and ch->last_status for a server's ERR). */
int ua_channel_open(struct ua_channel *ch, const char *url);
/* Sends CloseSecureChannel (best effort) and closes the socket. Safe when closed. */
void ua_channel_close(struct ua_channel *ch);

/* Starts a request of binary encoding id `type_id`: returns ch->req holding its type NodeId
 * and a RequestHeader with `auth` (NULL: none); the caller appends the request's fields. */
struct ua_buf *ua_channel_begin(struct ua_channel *ch, uint32_t type_id,
                                const struct ua_nodeid *auth);
/* Sends ch->req and waits for its response of `resp_type_id`. On success *resp is a cursor
 * just after the ResponseHeader, valid until the next call on the channel. A ServiceFault or a
 * bad ServiceResult gives IB_ERR_EXCEPTION with ch->last_status set; a broken channel
 * IB_ERR_CONNECTION / IB_ERR_PROTOCOL / IB_ERR_TIMEOUT. Renews the token first when due. */
int ua_channel_call(struct ua_channel *ch, uint32_t resp_type_id, struct ua_cur *resp);

/* Sends ch->req without waiting for its response (which comes to on_stray); *rid is its
 * request id. Renews the token first when due. 0 or an ib_err. */
int ua_channel_send(struct ua_channel *ch, uint32_t *rid);
/* Receives what the server sends until `deadline` (monotonic ms), handing complete responses
 * to on_stray. 0 at the deadline, or an ib_err when the channel broke (a chunk begun and not
 * finished within the timeout is IB_ERR_CONNECTION). */
int ua_channel_pump(struct ua_channel *ch, int64_t deadline);
/* The ResponseHeader of the message in ch->rx.body (for on_stray): as ua_channel_call. */
int ua_channel_response(struct ua_channel *ch, uint32_t resp_type_id, struct ua_cur *resp);

#endif
