/* S7 plugin, wire layer: encoding and decoding of the frames of S7 over ISO-on-TCP — TPKT
 * (RFC 1006), COTP (ISO 8073 CR/CC/DT) and S7comm jobs (Setup Communication, Read Var, Write
 * Var). Pure functions over a buffer and its length: no I/O, no allocation, no state. Every
 * decoder checks every length before it reads and refuses what does not add up. */
#ifndef IB_S7_WIRE_H
#define IB_S7_WIRE_H

#include <stddef.h>
#include <stdint.h>

#define S7_TPKT_HDR    4    /* version 3, reserved, length (big-endian, whole frame) */
#define S7_COTP_DT_HDR 3    /* LI 2, DT 0xF0, EOT|nr 0x80 */
#define S7_JOB_HDR     10   /* S7 header of a job (ROSCTR 1) */
#define S7_ACK_HDR     12   /* S7 header of an ack_data (ROSCTR 3): + error class and code */
#define S7_FRAME_MAX   4096 /* the longest frame accepted (PDU 960 plus headers, with room) */
#define S7_READ_ITEM   12   /* one item of a Read Var / Write Var request's parameters */
#define S7_MAX_ITEMS   20   /* items per Read Var request (what PLCs and snap7 accept) */

/* S7 protocol areas (the "area" byte of an item). */
enum s7_area {
    S7_AREA_I = 0x81,  /* process inputs (I, E) */
    S7_AREA_Q = 0x82,  /* process outputs (Q, A) */
    S7_AREA_M = 0x83,  /* bit memory (M, merker) */
    S7_AREA_DB = 0x84, /* data blocks */
    S7_AREA_C = 0x1C,  /* S7 counters */
    S7_AREA_T = 0x1D,  /* S7 timers */
};

/* Transport sizes of a request item. */
enum s7_tsize {
    S7_TS_BIT = 0x01,
    S7_TS_BYTE = 0x02,
    S7_TS_COUNTER = 0x1C,
    S7_TS_TIMER = 0x1D,
};

/* Return codes of a data item. */
enum s7_rc {
    S7_RC_HW_FAULT = 0x01,
    S7_RC_ACCESS_DENIED = 0x03, /* "accessing the object not allowed" */
    S7_RC_ADDRESS = 0x05,       /* address out of range */
    S7_RC_TYPE_UNSUPPORTED = 0x06,
    S7_RC_TYPE_INCONSISTENT = 0x07,
    S7_RC_NO_OBJECT = 0x0A, /* object does not exist */
    S7_RC_OK = 0xFF,
};

/* One item of a Read Var or Write Var request. */
struct s7_item {
    uint8_t area;   /* enum s7_area */
    uint8_t tsize;  /* enum s7_tsize */
    uint16_t db;    /* DB number (S7_AREA_DB), else 0 */
    uint32_t start; /* byte offset; for T and C the timer/counter number */
    uint8_t bit;    /* S7_TS_BIT: 0..7 */
    uint16_t count; /* elements: bytes, 1 bit, or timers/counters */
};

/* A decoded S7 PDU; param and data point into the caller's buffer. */
struct s7_pdu {
    uint8_t rosctr;              /* 1 job, 2 ack, 3 ack_data, 7 userdata */
    uint16_t ref;                /* PDU reference */
    uint8_t err_class, err_code; /* ack/ack_data only; both 0: no error */
    const uint8_t *param;
    uint16_t param_len;
    const uint8_t *data;
    uint16_t data_len;
};

/* One item of a Read Var response: rc, and for S7_RC_OK the data (len bytes). */
struct s7_result {
    uint8_t rc;
    const uint8_t *data;
    uint32_t len;
};

/* The remote (called) TSAP of a CPU reached by rack and slot: the connection type (1 PG, 2 OP,
 * 3..0x10 S7 basic) in the high byte, rack * 32 + slot in the low byte. */
uint16_t s7_wire_remote_tsap(unsigned conn_type, unsigned rack, unsigned slot);

/* The wire address of an item: bits for byte areas, the number for T and C. */
uint32_t s7_wire_address(const struct s7_item *it);

/* ---- Encoders: each writes a whole frame (TPKT included) into buf[0 .. cap-1] and returns its
 * length, or 0 when cap is too small or the arguments are invalid. */

/* COTP connection request with the calling (local) and called (remote) TSAPs, TPDU size 1024. */
size_t s7_wire_cotp_cr(uint8_t *buf, size_t cap, uint16_t local_tsap, uint16_t remote_tsap);
/* Setup Communication asking for `pdu` bytes and `amq` parallel jobs both ways. */
size_t s7_wire_setup(uint8_t *buf, size_t cap, uint16_t ref, uint16_t amq, uint16_t pdu);
/* Read Var of items[0 .. n-1] (1 <= n <= S7_MAX_ITEMS). */
size_t s7_wire_read(uint8_t *buf, size_t cap, uint16_t ref, const struct s7_item *items,
                    unsigned n);
/* Write Var of one item with `len` bytes of data (S7_TS_BIT: one byte, 0 or 1). */
size_t s7_wire_write(uint8_t *buf, size_t cap, uint16_t ref, const struct s7_item *item,
                     const uint8_t *data, uint16_t len);

/* ---- Decoders: 0, or -1 when the input is malformed (nothing of it may then be used). ---- */

/* The frame length a TPKT header announces (hdr: S7_TPKT_HDR bytes), or -1 when the header is
 * not TPKT version 3 or announces less than a COTP header or more than S7_FRAME_MAX. */
long s7_wire_tpkt_length(const uint8_t *hdr, size_t len);
/* A COTP connection confirm (CC) frame, TPKT included. */
int s7_wire_cotp_cc(const uint8_t *frame, size_t len);
/* A COTP data frame (DT, last fragment) carrying an S7 PDU: *pdu set from its headers, whose
 * lengths must add up to the frame's exactly. */
int s7_wire_pdu(const uint8_t *frame, size_t len, struct s7_pdu *pdu);
/* The parameters of a Setup Communication ack_data: the negotiated jobs and PDU size. */
int s7_wire_setup_ack(const struct s7_pdu *pdu, uint16_t *amq_calling, uint16_t *amq_called,
                      uint16_t *pdu_size);
/* A Read Var ack_data answering `n` items: results[0 .. n-1]. */
int s7_wire_read_ack(const struct s7_pdu *pdu, unsigned n, struct s7_result *results);
/* A Write Var ack_data answering one item: *rc its return code. */
int s7_wire_write_ack(const struct s7_pdu *pdu, uint8_t *rc);

/* Bytes of a Read Var response for items of these data lengths (what the planner must keep
 * within the PDU size): header, parameters, and per item 4 bytes, its data and a fill byte
 * after odd data unless it is the last. */
static inline uint32_t s7_wire_read_ack_size(uint32_t n_items, uint32_t data_bytes,
                                             uint32_t odd_items)
{
    return S7_ACK_HDR + 2 + 4 * n_items + data_bytes + odd_items;
}

/* Text for a return code ("object does not exist"); never NULL. */
const char *s7_wire_rc_text(uint8_t rc);
/* The likely cause of a return code on a real PLC, for a person; "" when none. */
const char *s7_wire_rc_hint(uint8_t rc);

#endif
