/* OPC UA plugin: OPC UA Connection Protocol and message chunks (OPC 10000-6 §7.1): the 8-byte
 * header, Hello/Acknowledge/Error bodies, splitting a message into MSG/OPN/CLO chunks within
 * the peer's buffer size, and reassembling received chunks (secure channel id, token id,
 * sequence numbers, request id, chunk count and message size all checked). SecurityPolicy None
 * framing only. Pure code (no I/O), any thread; one ua_asm per channel. */
#ifndef IB_OPCUA_CHUNK_H
#define IB_OPCUA_CHUNK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ua.h"

#define UA_HDR_LEN           8
#define UA_MIN_BUFFER        8192 /* smallest buffer size a peer may announce */
#define UA_SECURITY_NONE_URI "http://opcfoundation.org/UA/SecurityPolicy#None"

struct ua_hdr {
    char type[4];  /* "HEL", "ACK", "ERR", "RHE", "MSG", "OPN", "CLO", NUL-terminated */
    char chunk;    /* 'F' final, 'C' more follow, 'A' abort */
    uint32_t size; /* of the whole chunk, header included */
};

/* Limits of one side (Hello: ours; Acknowledge: the server's answer). 0: no limit. */
struct ua_limits {
    uint32_t version, recv_buf, send_buf, max_msg, max_chunks;
};

/* Parses the 8-byte header; refuses an unknown type or chunk byte, a size below 8 or above
 * `max_size` (our receive buffer). Returns 0 or a UA_E_* code. */
int ua_hdr_parse(const uint8_t *p, size_t n, uint32_t max_size, struct ua_hdr *h);

/* Encodes a whole Hello message for `url` with our limits. */
void ua_hello_build(struct ua_buf *b, const struct ua_limits *ours, const char *url);
/* Parses an Acknowledge body (after the header) into `theirs` and checks it against ours:
 * buffers of at least 8192 bytes, and no bigger than we offered. 0 or a UA_E_* code. */
int ua_ack_parse(const uint8_t *body, size_t n, const struct ua_limits *ours,
                 struct ua_limits *theirs);
/* Parses an Error body: its StatusCode and reason (pointing into body). */
int ua_errmsg_parse(const uint8_t *body, size_t n, uint32_t *code, struct ua_str *reason);

/* What the secure channel adds to every chunk it sends or checks in every chunk it receives. */
struct ua_seq {
    uint32_t channel_id;
    uint32_t token_id; /* MSG/CLO */
    uint32_t next_seq; /* our next sequence number */
};

/* Appends the chunks of one message of `type` ("MSG", "CLO", "OPN") carrying `body` (the
 * encoded type id and request) to `out`, each at most `chunk_size` bytes, at most
 * `max_chunks` of them (0: no limit) and `max_msg` body bytes (0: no limit). OPN chunks carry
 * the None asymmetric header. Returns 0 or UA_E_LIMIT / UA_E_NOMEM. */
int ua_chunks_build(struct ua_buf *out, const char *type, struct ua_seq *s, uint32_t request_id,
                    const uint8_t *body, size_t len, uint32_t chunk_size, uint32_t max_chunks,
                    uint32_t max_msg);

/* Reassembly of received chunks into one message body. */
struct ua_asm {
    struct ua_buf body;     /* the message so far (owned; ua_asm_free) */
    uint32_t channel_id;    /* expected (0 before the first OPN response) */
    uint32_t token_id;      /* expected in MSG/CLO (0: any, before the first OPN response) */
    uint32_t prev_token_id; /* also accepted after a renewal (0: none) */
    const char *policy_uri; /* expected in OPN chunks; NULL: the None policy */
    uint32_t last_seq;      /* the peer's last sequence number */
    bool have_seq;
    uint32_t request_id; /* of the message under way */
    uint32_t n_chunks;
    uint32_t max_chunks; /* 0: no limit */
    uint32_t max_msg;    /* 0: no limit */
    char type[4];
};

enum ua_asm_result {
    UA_ASM_MORE = 0,  /* an intermediate chunk was taken */
    UA_ASM_DONE = 1,  /* body holds a complete message (request_id says whose) */
    UA_ASM_ABORT = 2, /* the peer aborted the message; *abort_code / abort_reason say why */
};

/* Adds one whole chunk (header included, as received). Returns a ua_asm_result, or a negative
 * -UA_E_* for a chunk that breaks the rules (the channel must then be closed). */
int ua_asm_add(struct ua_asm *a, const uint8_t *chunk, size_t len, uint32_t *abort_code,
               struct ua_str *abort_reason);
void ua_asm_reset(struct ua_asm *a); /* drops a partial message */
void ua_asm_free(struct ua_asm *a);

#endif
