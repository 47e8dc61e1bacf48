/* OPC UA plugin: the client side of one connection: TCP connect with a deadline, Hello and
 * Acknowledge, OpenSecureChannel (issue, then renew at 75% of the token's lifetime; with a
 * security policy the chunks are signed and encrypted by secure.c), request ids, waiting for the
 * matching response within the request timeout, ERR messages and aborted chunks,
 * CloseSecureChannel. */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/rand.h>
#include <openssl/sha.h>

#include <ironbridge/error.h>

#include "channel.h"
#include "ids.h"
#include "status.h"

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int fail(struct ua_channel *ch, int err, const char *fmt, const char *arg)
{
    snprintf(ch->error, sizeof ch->error, fmt, arg ? arg : "");
    return err;
}

int ua_channel_init(struct ua_channel *ch, uint32_t recv_buf, uint32_t max_msg, uint32_t timeout_ms,
                    uint32_t lifetime_ms)
{
    memset(ch, 0, sizeof *ch);
    ch->fd = -1;
    ch->ours = (struct ua_limits){.version = 0,
                                  .recv_buf = recv_buf,
                                  .send_buf = recv_buf,
                                  .max_msg = max_msg,
                                  .max_chunks = 0};
    ch->timeout_ms = timeout_ms;
    ch->lifetime_ms = lifetime_ms;
    ch->chunk = malloc(recv_buf);
    return ch->chunk ? IB_OK : IB_ERR_NOMEM;
}

void ua_channel_free(struct ua_channel *ch)
{
    ua_channel_close(ch);
    free(ch->chunk);
    ch->chunk = NULL;
    ua_buf_free(&ch->tx);
    ua_buf_free(&ch->req);
    ua_asm_free(&ch->rx);
}

int ua_url_split(const char *url, char *host, size_t host_size, char *port, size_t port_size)
{
    const char *p = url;
    if (strncmp(p, "opc.tcp://", 10) != 0)
        return -1;
    p += 10;
    const char *end = p + strcspn(p, "/");
    const char *colon = NULL;
    if (*p == '[') { /* [IPv6]:port */
        const char *rb = memchr(p, ']', (size_t)(end - p));
        if (!rb)
            return -1;
        if ((size_t)(rb - p - 1) >= host_size)
            return -1;
        memcpy(host, p + 1, (size_t)(rb - p - 1));
        host[rb - p - 1] = '\0';
        colon = rb + 1 < end && rb[1] == ':' ? rb + 1 : NULL;
    } else {
        colon = memchr(p, ':', (size_t)(end - p));
        size_t hl = (size_t)((colon ? colon : end) - p);
        if (hl == 0 || hl >= host_size)
            return -1;
        memcpy(host, p, hl);
        host[hl] = '\0';
    }
    if (colon) {
        size_t pl = (size_t)(end - colon - 1);
        if (pl == 0 || pl >= port_size || strspn(colon + 1, "0123456789") < pl)
            return -1;
        memcpy(port, colon + 1, pl);
        port[pl] = '\0';
    } else {
        snprintf(port, port_size, "4840");
    }
    return 0;
}

static int tcp_connect(struct ua_channel *ch, const char *host, const char *port)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL;
    int rc = getaddrinfo(host, port, &hints, &res);
    if (rc != 0)
        return fail(ch, IB_ERR_CONNECTION, "cannot resolve the host: %s", gai_strerror(rc));
    int64_t deadline = mono_ms() + ch->timeout_ms;
    int err = IB_ERR_CONNECTION;
    snprintf(ch->error, sizeof ch->error, "connection refused");
    for (struct addrinfo *a = res; a && ch->fd < 0; a = a->ai_next) {
        int fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
            continue;
        if (connect(fd, a->ai_addr, a->ai_addrlen) < 0 && errno != EINPROGRESS) {
            snprintf(ch->error, sizeof ch->error, "cannot connect: %s", strerror(errno));
            close(fd);
            continue;
        }
        struct pollfd pf = {.fd = fd, .events = POLLOUT};
        int64_t left = deadline - mono_ms();
        int so = 0;
        socklen_t sl = sizeof so;
        int pr = poll(&pf, 1, left > 0 ? (int)left : 0);
        if (pr == 1 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &so, &sl) == 0 && so == 0) {
            ch->fd = fd;
            break;
        }
        if (pr == 0) {
            err = IB_ERR_TIMEOUT;
            snprintf(ch->error, sizeof ch->error, "no answer to the TCP connection in %u ms",
                     ch->timeout_ms);
        } else {
            snprintf(ch->error, sizeof ch->error, "cannot connect: %s", strerror(so ? so : errno));
        }
        close(fd);
    }
    freeaddrinfo(res);
    return ch->fd >= 0 ? IB_OK : err;
}

static int send_all(struct ua_channel *ch, const uint8_t *p, size_t n, int64_t deadline)
{
    while (n > 0) {
        ssize_t w = send(ch->fd, p, n, MSG_NOSIGNAL);
        if (w > 0) {
            p += w;
            n -= (size_t)w;
            continue;
        }
        if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
            return fail(ch, IB_ERR_CONNECTION, "send failed: %s", strerror(errno));
        struct pollfd pf = {.fd = ch->fd, .events = POLLOUT};
        int64_t left = deadline - mono_ms();
        if (left <= 0 || poll(&pf, 1, (int)left) == 0)
            return fail(ch, IB_ERR_TIMEOUT, "the server did not take the request in time%s", "");
    }
    return IB_OK;
}

static int recv_exact(struct ua_channel *ch, uint8_t *p, size_t n, int64_t deadline)
{
    while (n > 0) {
        ssize_t r = recv(ch->fd, p, n, 0);
        if (r > 0) {
            p += r;
            n -= (size_t)r;
            continue;
        }
        if (r == 0)
            return fail(ch, IB_ERR_CONNECTION, "the server closed the connection%s", "");
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
            return fail(ch, IB_ERR_CONNECTION, "receive failed: %s", strerror(errno));
        struct pollfd pf = {.fd = ch->fd, .events = POLLIN};
        int64_t left = deadline - mono_ms();
        if (left <= 0 || poll(&pf, 1, (int)left) == 0) {
            snprintf(ch->error, sizeof ch->error, "no response within %u ms", ch->timeout_ms);
            return IB_ERR_TIMEOUT;
        }
    }
    return IB_OK;
}

/* Reads one chunk into ch->chunk; *hdr describes it. */
static int recv_chunk(struct ua_channel *ch, struct ua_hdr *hdr, int64_t deadline)
{
    int rc = recv_exact(ch, ch->chunk, UA_HDR_LEN, deadline);
    if (rc != IB_OK)
        return rc;
    int e = ua_hdr_parse(ch->chunk, UA_HDR_LEN, ch->ours.recv_buf, hdr);
    if (e != UA_OK)
        return fail(ch, IB_ERR_PROTOCOL, "bad message header from the server: %s", ua_err_name(e));
    return recv_exact(ch, ch->chunk + UA_HDR_LEN, hdr->size - UA_HDR_LEN, deadline);
}

static int server_error(struct ua_channel *ch, const struct ua_hdr *h)
{
    uint32_t code = 0;
    struct ua_str reason;
    char sc[64];
    if (ua_errmsg_parse(ch->chunk + UA_HDR_LEN, h->size - UA_HDR_LEN, &code, &reason) != UA_OK)
        return fail(ch, IB_ERR_PROTOCOL, "the server sent an unreadable ERR message%s", "");
    ch->last_status = code;
    snprintf(ch->error, sizeof ch->error, "the server refused: %s%s%.*s",
             ua_status_text(code, sc, sizeof sc), reason.len > 0 ? ": " : "",
             reason.len > 0 ? (int)(reason.len > 150 ? 150 : reason.len) : 0,
             reason.len > 0 ? reason.ptr : "");
    return IB_ERR_CONNECTION;
}

static bool sec_on(const struct ua_channel *ch)
{
    return ch->sec && ch->sec->policy != UA_POLICY_NONE;
}

/* Bytes after the 8-byte header up to the sequence header. */
static size_t sec_header_len(const struct ua_channel *ch, bool asym)
{
    if (!asym)
        return 8;
    return 4 + 4 + strlen(ua_policy_uri(ch->sec->policy)) + 4 + ch->sec->own_cert_len + 4 + 20;
}

/* ua_chunks_build's secured twin: chunks of ch->req, padded, signed and encrypted. */
static int secure_chunks(struct ua_channel *ch, const char *type, uint32_t rid)
{
    struct ua_sec *s = ch->sec;
    bool asym = memcmp(type, "OPN", 3) == 0;
    size_t sh = sec_header_len(ch, asym);
    size_t room = ua_sec_body_room(s, ch->theirs.recv_buf, 8 + sh, asym);
    size_t len = ch->req.len;
    size_t n_chunks = room && len ? (len + room - 1) / room : 1;
    if (room == 0 || (asym && n_chunks > 1) ||
        (ch->theirs.max_chunks && n_chunks > ch->theirs.max_chunks) ||
        (ch->theirs.max_msg && len > ch->theirs.max_msg))
        return UA_E_LIMIT;
    for (size_t i = 0, off = 0; i < n_chunks; i++) {
        size_t part = len - off < room ? len - off : room, start = ch->tx.len;
        ua_put_bytes(&ch->tx, type, 3);
        ua_put_u8(&ch->tx, i + 1 == n_chunks ? 'F' : 'C');
        ua_put_u32(&ch->tx, 0);
        ua_put_u32(&ch->tx, ch->seq.channel_id);
        if (asym) {
            ua_put_cstr(&ch->tx, ua_policy_uri(s->policy));
            ua_put_i32(&ch->tx, (int32_t)s->own_cert_len);
            ua_put_bytes(&ch->tx, s->own_cert, s->own_cert_len);
            ua_put_i32(&ch->tx, 20);
            ua_put_bytes(&ch->tx, s->peer_thumb, 20);
        } else {
            ua_put_u32(&ch->tx, ch->seq.token_id);
        }
        ua_put_u32(&ch->tx, ch->seq.next_seq);
        ua_put_u32(&ch->tx, rid);
        ch->seq.next_seq = ch->seq.next_seq >= 4294966271u ? 1 : ch->seq.next_seq + 1;
        ua_put_bytes(&ch->tx, ch->req.data + off, part);
        if (ch->tx.err != UA_OK || ua_sec_wrap(s, &ch->tx, start, sh, asym) != 0)
            return ch->tx.err != UA_OK ? ch->tx.err : UA_E_TYPE;
        off += part;
    }
    return UA_OK;
}

static bool str_is(struct ua_str s, const void *p, size_t n)
{
    return s.len >= 0 && (size_t)s.len == n && memcmp(s.ptr, p, n) == 0;
}

/* Verifies and decrypts a secured chunk in ch->chunk; *len becomes its plain length. */
static int secure_unwrap(struct ua_channel *ch, const struct ua_hdr *h, size_t *len)
{
    bool asym = strcmp(h->type, "OPN") == 0;
    struct ua_cur c;
    ua_cur_init(&c, ch->chunk + UA_HDR_LEN, h->size - UA_HDR_LEN);
    ua_get_u32(&c); /* channel id: checked by the reassembly */
    uint32_t token = 0;
    if (asym) {
        uint8_t own_thumb[20];
        SHA1(ch->sec->own_cert, ch->sec->own_cert_len, own_thumb);
        ua_get_str(&c); /* policy URI: checked by the reassembly */
        struct ua_str cert = ua_get_str(&c), thumb = ua_get_str(&c);
        if (c.err != UA_OK || !str_is(cert, ch->sec->peer_cert, ch->sec->peer_cert_len) ||
            !str_is(thumb, own_thumb, 20))
            return fail(ch, IB_ERR_PROTOCOL,
                        "the OpenSecureChannel response names other certificates than ours and "
                        "the endpoint's%s",
                        "");
    } else {
        token = ua_get_u32(&c);
    }
    if (c.err != UA_OK)
        return fail(ch, IB_ERR_PROTOCOL, "a truncated security header%s", "");
    size_t sh = h->size - UA_HDR_LEN - c.left;
    *len = h->size;
    char err[160];
    if (ua_sec_unwrap(ch->sec, ch->chunk, len, sh, asym, token, err, sizeof err) != 0)
        return fail(ch, IB_ERR_PROTOCOL, "%s", err);
    return IB_OK;
}

static int hello(struct ua_channel *ch, int64_t deadline)
{
    ua_buf_reset(&ch->tx);
    ua_hello_build(&ch->tx, &ch->ours, ch->url);
    if (ch->tx.err != UA_OK)
        return fail(ch, IB_ERR_INVALID, "cannot encode Hello%s", "");
    int rc = send_all(ch, ch->tx.data, ch->tx.len, deadline);
    struct ua_hdr h;
    if (rc == IB_OK)
        rc = recv_chunk(ch, &h, deadline);
    if (rc != IB_OK)
        return rc;
    if (strcmp(h.type, "ERR") == 0)
        return server_error(ch, &h);
    if (strcmp(h.type, "ACK") != 0)
        return fail(ch, IB_ERR_PROTOCOL, "expected Acknowledge, got %s", h.type);
    if (ua_ack_parse(ch->chunk + UA_HDR_LEN, h.size - UA_HDR_LEN, &ch->ours, &ch->theirs) != UA_OK)
        return fail(ch, IB_ERR_PROTOCOL, "the server's Acknowledge has invalid limits%s", "");
    return IB_OK;
}

struct ua_buf *ua_channel_begin(struct ua_channel *ch, uint32_t type_id,
                                const struct ua_nodeid *auth)
{
    struct ua_buf *b = &ch->req;
    ua_buf_reset(b);
    b->max = ch->theirs.max_msg;
    struct ua_nodeid t = ua_nid_num(0, type_id);
    struct ua_nodeid none = ua_nid_num(0, 0);
    ua_put_nodeid(b, &t);
    ua_put_nodeid(b, auth ? auth : &none);
    ua_put_i64(b, ua_ms_to_datetime(wall_ms()));
    ua_put_u32(b, ch->next_request_id + 1);                    /* RequestHandle */
    ua_put_u32(b, 0);                                          /* ReturnDiagnostics */
    ua_put_i32(b, -1);                                         /* AuditEntryId */
    ua_put_u32(b, ch->hint_ms ? ch->hint_ms : ch->timeout_ms); /* TimeoutHint */
    ch->hint_ms = 0;
    ua_put_u8(b, 0); /* AdditionalHeader: null ExtensionObject */
    ua_put_u8(b, 0);
    ua_put_u8(b, 0);
    return b;
}

static int response_header(struct ua_channel *ch, uint32_t want, struct ua_cur *c);

/* Receives and takes in one chunk. *done_rid is set to the request id of a message that it
 * completed (0: none yet); an aborted message of request `rid` is IB_ERR_EXCEPTION. */
static int recv_one(struct ua_channel *ch, uint32_t rid, int64_t deadline, uint32_t *done_rid)
{
    *done_rid = 0;
    struct ua_hdr h;
    int rc = recv_chunk(ch, &h, deadline);
    if (rc != IB_OK)
        return rc;
    if (strcmp(h.type, "ERR") == 0)
        return server_error(ch, &h);
    uint32_t code = 0;
    struct ua_str reason;
    size_t len = h.size;
    if (sec_on(ch) && strcmp(h.type, "ACK") != 0) {
        rc = secure_unwrap(ch, &h, &len);
        if (rc != IB_OK)
            return rc;
    }
    int r = ua_asm_add(&ch->rx, ch->chunk, len, &code, &reason);
    if (r < 0)
        return fail(ch, IB_ERR_PROTOCOL, "bad chunk from the server: %s", ua_err_name(-r));
    if (r == UA_ASM_ABORT && ch->rx.request_id == rid) {
        char sc[64];
        ch->last_status = code;
        return fail(ch, IB_ERR_EXCEPTION, "the server aborted the response: %s",
                    ua_status_text(code, sc, sizeof sc));
    }
    if (r == UA_ASM_DONE)
        *done_rid = ch->rx.request_id;
    return IB_OK;
}

/* Waits for the complete response to request `rid`; responses to other requests go to the
 * stray handler (outstanding Publish requests), if any, else are dropped (late answers). */
static int await(struct ua_channel *ch, uint32_t rid, int64_t deadline)
{
    for (;;) {
        uint32_t done;
        int rc = recv_one(ch, rid, deadline, &done);
        if (rc != IB_OK)
            return rc;
        if (done && done == rid)
            return IB_OK;
        if (done && ch->on_stray)
            ch->on_stray(ch->stray_arg, done);
    }
}

int ua_channel_pump(struct ua_channel *ch, int64_t deadline)
{
    if (ch->fd < 0)
        return fail(ch, IB_ERR_CONNECTION, "not connected%s", "");
    for (;;) {
        int64_t left = deadline - mono_ms();
        struct pollfd pf = {.fd = ch->fd, .events = POLLIN};
        int pr = poll(&pf, 1, left > 0 ? (int)left : 0);
        if (pr < 0 && errno != EINTR)
            return fail(ch, IB_ERR_CONNECTION, "poll failed: %s", strerror(errno));
        if (pr <= 0)
            return IB_OK; /* the deadline (or a signal): nothing more now */
        /* A chunk has begun: it is read whole, within the request timeout. */
        uint32_t done;
        int rc = recv_one(ch, 0, mono_ms() + ch->timeout_ms, &done);
        if (rc != IB_OK)
            return rc == IB_ERR_TIMEOUT ? IB_ERR_CONNECTION : rc;
        if (done && ch->on_stray) {
            ch->on_stray(ch->stray_arg, done);
            return IB_OK; /* the caller sees to what the message changed */
        }
        if (mono_ms() >= deadline)
            return IB_OK;
    }
}

int ua_channel_response(struct ua_channel *ch, uint32_t resp_type_id, struct ua_cur *resp)
{
    return response_header(ch, resp_type_id, resp);
}

/* Parses the type id and ResponseHeader of the message in ch->rx.body. */
static int response_header(struct ua_channel *ch, uint32_t want, struct ua_cur *c)
{
    ua_cur_init(c, ch->rx.body.data, ch->rx.body.len);
    c->max_array = ch->ours.max_msg;
    struct ua_nodeid t;
    ua_get_nodeid(c, &t);
    ua_get_i64(c); /* Timestamp */
    ua_get_u32(c); /* RequestHandle */
    uint32_t result = ua_get_u32(c);
    struct ua_diaginfo di;
    ua_get_diaginfo(c, &di);
    int32_t n = ua_get_array_len(c, 4); /* StringTable */
    for (int32_t i = 0; i < n; i++)
        ua_get_str(c);
    struct ua_extobj eo;
    ua_get_extobj(c, &eo);
    if (c->err != UA_OK)
        return fail(ch, IB_ERR_PROTOCOL, "undecodable response: %s", ua_err_name(c->err));
    char sc[64];
    if (t.kind == UA_NID_NUMERIC && t.ns == 0 && t.id.num == UA_ID_SERVICE_FAULT) {
        ch->last_status = result;
        return fail(ch, IB_ERR_EXCEPTION, "ServiceFault: %s",
                    ua_status_text(result, sc, sizeof sc));
    }
    if (t.kind != UA_NID_NUMERIC || t.ns != 0 || t.id.num != want)
        return fail(ch, IB_ERR_PROTOCOL, "unexpected response type%s", "");
    if (ua_status_is_bad(result)) {
        ch->last_status = result;
        return fail(ch, IB_ERR_EXCEPTION, "the server answered %s",
                    ua_status_text(result, sc, sizeof sc));
    }
    return IB_OK;
}

static int transact(struct ua_channel *ch, const char *type, uint32_t resp_type,
                    struct ua_cur *resp)
{
    if (ch->fd < 0)
        return fail(ch, IB_ERR_CONNECTION, "not connected%s", "");
    if (ch->req.err != UA_OK)
        return fail(ch, ch->req.err == UA_E_LIMIT ? IB_ERR_INVALID : IB_ERR_NOMEM,
                    "cannot encode the request: %s", ua_err_name(ch->req.err));
    ch->last_status = 0;
    uint32_t rid = ++ch->next_request_id;
    if (rid == 0)
        rid = ch->next_request_id = 1;
    ua_buf_reset(&ch->tx);
    int e = sec_on(ch)
                ? secure_chunks(ch, type, rid)
                : ua_chunks_build(&ch->tx, type, &ch->seq, rid, ch->req.data, ch->req.len,
                                  ch->theirs.recv_buf, ch->theirs.max_chunks, ch->theirs.max_msg);
    if (e != UA_OK)
        return fail(ch, IB_ERR_INVALID, "the request exceeds the server's limits: %s",
                    ua_err_name(e));
    int64_t deadline = mono_ms() + ch->timeout_ms;
    ch->last_sent_ms = mono_ms();
    int rc = send_all(ch, ch->tx.data, ch->tx.len, deadline);
    if (rc == IB_OK && resp_type == 0)
        return IB_OK; /* CloseSecureChannel has no response */
    if (rc == IB_OK)
        rc = await(ch, rid, deadline);
    if (rc == IB_OK)
        rc = response_header(ch, resp_type, resp);
    return rc;
}

/* OpenSecureChannel, issue (renew = 0) or renew. */
static int open_secure(struct ua_channel *ch, int renew)
{
    struct ua_buf *b = ua_channel_begin(ch, UA_ID_OPEN_SECURE_CHANNEL_REQ, NULL);
    ua_put_u32(b, 0);     /* ClientProtocolVersion */
    ua_put_u32(b, renew); /* RequestType: 0 Issue, 1 Renew */
    if (sec_on(ch)) {
        if (RAND_bytes(ch->sec->client_nonce, UA_NONCE_LEN) != 1)
            return fail(ch, IB_ERR_IO, "no random bytes for the nonce%s", "");
        ua_put_u32(b, (uint32_t)ch->sec->mode);
        ua_put_i32(b, UA_NONCE_LEN);
        ua_put_bytes(b, ch->sec->client_nonce, UA_NONCE_LEN);
    } else {
        ua_put_u32(b, 1); /* MessageSecurityMode None */
        ua_put_i32(b, 0); /* ClientNonce: empty */
    }
    ua_put_u32(b, ch->lifetime_ms);
    struct ua_cur c;
    int rc = transact(ch, "OPN", UA_ID_OPEN_SECURE_CHANNEL_RESP, &c);
    if (rc != IB_OK)
        return rc;
    ua_get_u32(&c); /* ServerProtocolVersion */
    uint32_t chan = ua_get_u32(&c);
    uint32_t token = ua_get_u32(&c);
    ua_get_i64(&c); /* CreatedAt */
    uint32_t lifetime = ua_get_u32(&c);
    struct ua_str nonce = ua_get_str(&c);
    if (c.err != UA_OK || chan == 0 || (renew && chan != ch->seq.channel_id))
        return fail(ch, IB_ERR_PROTOCOL, "bad OpenSecureChannel response%s", "");
    if (sec_on(ch) &&
        (nonce.len != UA_NONCE_LEN ||
         ua_sec_derive(ch->sec, (const uint8_t *)nonce.ptr, UA_NONCE_LEN, token) != 0))
        return fail(ch, IB_ERR_PROTOCOL, "the server's nonce is not %d bytes", "32");
    ch->rx.prev_token_id = renew ? ch->seq.token_id : 0;
    ch->seq.channel_id = chan;
    ch->seq.token_id = token;
    ch->rx.channel_id = chan;
    ch->rx.token_id = token;
    if (lifetime < 1000)
        lifetime = 1000;
    ch->renew_at_ms = mono_ms() + (int64_t)lifetime * 3 / 4;
    ch->revised_lifetime_ms = lifetime;
    ch->renewals = renew ? ch->renewals + 1 : 0;
    return IB_OK;
}

int ua_channel_open(struct ua_channel *ch, const char *url)
{
    char host[256], port[16];
    ua_channel_close(ch);
    snprintf(ch->url, sizeof ch->url, "%s", url);
    if (ua_url_split(url, host, sizeof host, port, sizeof port) != 0)
        return fail(ch, IB_ERR_INVALID, "not an opc.tcp://host:port URL: %s", url);
    int rc = tcp_connect(ch, host, port);
    if (rc != IB_OK)
        return rc;
    ch->seq = (struct ua_seq){.next_seq = 1};
    ua_asm_reset(&ch->rx);
    ch->rx.channel_id = ch->rx.token_id = 0;
    ch->rx.have_seq = false;
    ch->rx.max_msg = ch->ours.max_msg;
    ch->rx.max_chunks = ch->ours.max_chunks;
    ch->rx.policy_uri = sec_on(ch) ? ua_policy_uri(ch->sec->policy) : NULL;
    ch->rx.prev_token_id = 0;
    rc = hello(ch, mono_ms() + ch->timeout_ms);
    if (rc == IB_OK)
        rc = open_secure(ch, 0);
    if (rc != IB_OK) {
        close(ch->fd);
        ch->fd = -1;
    }
    return rc;
}

int ua_channel_call(struct ua_channel *ch, uint32_t resp_type_id, struct ua_cur *resp)
{
    if (ch->fd >= 0 && mono_ms() >= ch->renew_at_ms) {
        struct ua_buf saved = ch->req; /* the caller's request survives the renewal */
        ch->req = (struct ua_buf){0};
        int rc = open_secure(ch, 1);
        ua_buf_free(&ch->req);
        ch->req = saved;
        if (rc != IB_OK)
            return rc;
    }
    return transact(ch, "MSG", resp_type_id, resp);
}

/* The token renewal that precedes a request, when due. */
static int renew_if_due(struct ua_channel *ch)
{
    if (ch->fd < 0 || mono_ms() < ch->renew_at_ms)
        return IB_OK;
    struct ua_buf saved = ch->req;
    ch->req = (struct ua_buf){0};
    int rc = open_secure(ch, 1);
    ua_buf_free(&ch->req);
    ch->req = saved;
    return rc;
}

int ua_channel_send(struct ua_channel *ch, uint32_t *rid)
{
    int rc = renew_if_due(ch);
    if (rc == IB_OK)
        rc = transact(ch, "MSG", 0, NULL);
    if (rc == IB_OK)
        *rid = ch->next_request_id;
    return rc;
}

void ua_channel_close(struct ua_channel *ch)
{
    if (ch->fd < 0)
        return;
    if (ch->seq.channel_id) {
        uint32_t t = ch->timeout_ms;
        ch->timeout_ms = t < 500 ? t : 500;
        ua_channel_begin(ch, UA_ID_CLOSE_SECURE_CHANNEL_REQ, NULL);
        transact(ch, "CLO", 0, NULL);
        ch->timeout_ms = t;
    }
    close(ch->fd);
    ch->fd = -1;
    ch->seq.channel_id = 0;
}
