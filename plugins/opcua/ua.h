/* OPC UA plugin: UA Binary (OPC 10000-6 §5.2) types, the bounded decoder cursor and the growable
 * encoder buffer shared by every layer. Decoding allocates nothing: strings, byte strings and
 * arrays point into the message buffer and stay valid as long as that buffer does; every length
 * is checked against the bytes left before it is read. Pure code, any thread. */
#ifndef IB_OPCUA_UA_H
#define IB_OPCUA_UA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* Built-in type ids (Part 6 Table 1). */
enum ua_type {
    UA_BOOLEAN = 1,
    UA_SBYTE,
    UA_BYTE,
    UA_INT16,
    UA_UINT16,
    UA_INT32,
    UA_UINT32,
    UA_INT64,
    UA_UINT64,
    UA_FLOAT,
    UA_DOUBLE,
    UA_STRING,
    UA_DATETIME,
    UA_GUID,
    UA_BYTESTRING,
    UA_XMLELEMENT,
    UA_NODEID,
    UA_EXPANDEDNODEID,
    UA_STATUSCODE,
    UA_QUALIFIEDNAME,
    UA_LOCALIZEDTEXT,
    UA_EXTENSIONOBJECT,
    UA_DATAVALUE,
    UA_VARIANT,
    UA_DIAGNOSTICINFO,
    UA_TYPE_MAX = UA_DIAGNOSTICINFO,
};

/* Most nesting of DiagnosticInfo / Variant / DataValue a decoder follows (Part 6 asks at
 * least 4 levels for DiagnosticInfo, not more than 10 expected). */
#define UA_MAX_DEPTH 10

/* 100 ns ticks between 1601-01-01 and 1970-01-01 (DateTime epoch to Unix epoch). */
#define UA_EPOCH_DELTA 116444736000000000LL

/* A String, ByteString or XmlElement: len -1 is the null value; ptr is not NUL-terminated. */
struct ua_str {
    const char *ptr;
    int32_t len;
};

struct ua_guid {
    uint32_t d1;
    uint16_t d2, d3;
    uint8_t d4[8];
};

enum ua_nid_kind { UA_NID_NUMERIC = 0, UA_NID_STRING = 1, UA_NID_GUID = 2, UA_NID_BYTES = 3 };

struct ua_nodeid {
    uint16_t ns;
    uint8_t kind; /* enum ua_nid_kind */
    union {
        uint32_t num;
        struct ua_str str; /* UA_NID_STRING and UA_NID_BYTES */
        struct ua_guid guid;
    } id;
};

struct ua_expnodeid {
    struct ua_nodeid id;
    struct ua_str uri; /* len -1 when absent */
    uint32_t server;
};

struct ua_qname {
    uint16_t ns;
    struct ua_str name;
};

struct ua_ltext {
    struct ua_str locale, text; /* len -1 when absent */
};

struct ua_extobj {
    struct ua_nodeid type;
    uint8_t encoding; /* 0 no body, 1 ByteString, 2 XmlElement */
    struct ua_str body;
};

/* A decoded Variant. Scalars are decoded into `v`; an array (or a scalar of a nested type:
 * DataValue, Variant, DiagnosticInfo) keeps `raw`, the validated encoded elements, which
 * ua_variant_elem() decodes one at a time. */
struct ua_variant {
    uint8_t type; /* enum ua_type; 0 for the null Variant */
    bool is_array;
    int32_t n;          /* elements of an array (-1 for a null array) */
    int32_t n_dims;     /* array dimensions given (0 when absent) */
    const uint8_t *raw; /* arrays and nested scalars: first encoded element */
    size_t raw_len;     /* bytes of all encoded elements */
    union {
        bool b;
        int64_t i;  /* SByte, Int16, Int32, Int64 */
        uint64_t u; /* Byte, UInt16, UInt32, UInt64, StatusCode */
        float f;
        double d;
        int64_t dt;      /* DateTime ticks */
        struct ua_str s; /* String, ByteString, XmlElement */
        struct ua_guid g;
        struct ua_nodeid nid;
        struct ua_expnodeid xnid;
        struct ua_qname qn;
        struct ua_ltext lt;
        struct ua_extobj eo;
    } v;
};

enum ua_dv_mask {
    UA_DV_VALUE = 0x01,
    UA_DV_STATUS = 0x02,
    UA_DV_SRC_TS = 0x04,
    UA_DV_SRV_TS = 0x08,
    UA_DV_SRC_PICO = 0x10,
    UA_DV_SRV_PICO = 0x20,
};

struct ua_datavalue {
    uint8_t mask; /* enum ua_dv_mask */
    struct ua_variant value;
    uint32_t status; /* 0 (Good) when absent */
    int64_t src_ts, srv_ts;
    uint16_t src_pico, srv_pico;
};

struct ua_diaginfo {
    uint8_t mask;
    int32_t symbolic_id, namespace_uri, locale, localized_text;
    struct ua_str additional_info;
    uint32_t inner_status;
    uint8_t depth; /* inner DiagnosticInfos that followed (validated, skipped) */
};

/* ---- Decoding ---------------------------------------------------------------------------------
 * A cursor over bytes the caller owns. The first failure sets `err` (UA_E_*) and makes every
 * later read return zeros, so a decoder checks `err` once at the end. */
enum ua_err {
    UA_OK = 0,
    UA_E_SHORT = 1, /* a field runs past the end of the message */
    UA_E_RANGE = 2, /* a length, count or value outside what the format or limits allow */
    UA_E_DEPTH = 3, /* nesting deeper than UA_MAX_DEPTH */
    UA_E_TYPE = 4,  /* an unknown type id or encoding byte */
    UA_E_NOMEM = 5, /* (encoder) out of memory */
    UA_E_LIMIT = 6, /* (encoder) the message would exceed its maximum size */
};

struct ua_cur {
    const uint8_t *p;
    size_t left;
    int err;            /* enum ua_err */
    uint32_t max_array; /* most elements accepted in any array; 0: no limit but the bytes left */
};

void ua_cur_init(struct ua_cur *c, const void *data, size_t len);
const char *ua_err_name(int err);

bool ua_get_bool(struct ua_cur *c);
uint8_t ua_get_u8(struct ua_cur *c);
uint16_t ua_get_u16(struct ua_cur *c);
uint32_t ua_get_u32(struct ua_cur *c);
uint64_t ua_get_u64(struct ua_cur *c);
int32_t ua_get_i32(struct ua_cur *c);
int64_t ua_get_i64(struct ua_cur *c);
float ua_get_float(struct ua_cur *c);
double ua_get_double(struct ua_cur *c);
struct ua_str ua_get_str(struct ua_cur *c); /* String, ByteString, XmlElement */
void ua_get_guid(struct ua_cur *c, struct ua_guid *g);
void ua_get_nodeid(struct ua_cur *c, struct ua_nodeid *n);
void ua_get_expnodeid(struct ua_cur *c, struct ua_expnodeid *n);
void ua_get_qname(struct ua_cur *c, struct ua_qname *q);
void ua_get_ltext(struct ua_cur *c, struct ua_ltext *t);
void ua_get_extobj(struct ua_cur *c, struct ua_extobj *e);
void ua_get_variant(struct ua_cur *c, struct ua_variant *v);
void ua_get_datavalue(struct ua_cur *c, struct ua_datavalue *dv);
void ua_get_diaginfo(struct ua_cur *c, struct ua_diaginfo *d);
/* An array length: -1 (null) or 0..n, refused (UA_E_RANGE) when n elements of at least
 * `min_elem` bytes cannot fit in what is left or exceed c->max_array. Returns 0 for null. */
int32_t ua_get_array_len(struct ua_cur *c, size_t min_elem);
/* Skips one encoded value of built-in `type` (validated as it goes). */
void ua_skip(struct ua_cur *c, int type, int depth);

/* Element i of an array Variant (or the nested scalar, i = 0) decoded into `out` as a scalar
 * Variant of the same type; for DataValue/Variant/DiagnosticInfo elements only `type`, `raw`
 * and `raw_len` are set. Returns 0, or a UA_E_* code. O(i) for variable-size types. */
int ua_variant_elem(const struct ua_variant *v, int32_t i, struct ua_variant *out);

/* The next element of an array of built-in `type` at the cursor (start it at v->raw with
 * v->raw_len bytes), decoded as ua_variant_elem does; O(1) per element. 0 or a UA_E_* code. */
int ua_variant_next(struct ua_cur *c, int type, struct ua_variant *out);

/* ---- Encoding ---------------------------------------------------------------------------------
 * A growable buffer owned by its user (ua_buf_free). `max` bounds its length (0: no bound);
 * the first failure sets `err` and later writes do nothing. */
struct ua_buf {
    uint8_t *data;
    size_t len, cap, max;
    int err;
};

void ua_buf_free(struct ua_buf *b);
void ua_buf_reset(struct ua_buf *b); /* len 0, err 0, keeps the memory */
void ua_put_bytes(struct ua_buf *b, const void *p, size_t n);
void ua_put_bool(struct ua_buf *b, bool v);
void ua_put_u8(struct ua_buf *b, uint8_t v);
void ua_put_u16(struct ua_buf *b, uint16_t v);
void ua_put_u32(struct ua_buf *b, uint32_t v);
void ua_put_u64(struct ua_buf *b, uint64_t v);
void ua_put_i32(struct ua_buf *b, int32_t v);
void ua_put_i64(struct ua_buf *b, int64_t v);
void ua_put_float(struct ua_buf *b, float v);
void ua_put_double(struct ua_buf *b, double v);
void ua_put_str(struct ua_buf *b, struct ua_str s);
void ua_put_cstr(struct ua_buf *b, const char *s); /* NULL: the null String */
void ua_put_guid(struct ua_buf *b, const struct ua_guid *g);
void ua_put_nodeid(struct ua_buf *b, const struct ua_nodeid *n); /* the smallest form */
void ua_put_expnodeid(struct ua_buf *b, const struct ua_expnodeid *n);
void ua_put_qname(struct ua_buf *b, const struct ua_qname *q);
void ua_put_ltext(struct ua_buf *b, const struct ua_ltext *t);
/* A scalar Variant of the simple types (Boolean..DateTime, ByteString, StatusCode). */
void ua_put_variant(struct ua_buf *b, const struct ua_variant *v);
void ua_put_datavalue(struct ua_buf *b, const struct ua_datavalue *dv);
/* Overwrites 4 bytes at `at` (a length or size filled in after the fact). */
void ua_buf_patch_u32(struct ua_buf *b, size_t at, uint32_t v);

static inline struct ua_str ua_str_c(const char *s)
{
    struct ua_str r = {s, s ? (int32_t)strlen(s) : -1};
    return r;
}

static inline struct ua_nodeid ua_nid_num(uint16_t ns, uint32_t num)
{
    struct ua_nodeid n = {.ns = ns, .kind = UA_NID_NUMERIC, .id.num = num};
    return n;
}

/* DateTime ticks to ms since the Unix epoch; 0 ticks (no time) gives 0. */
int64_t ua_datetime_to_ms(int64_t ticks);
int64_t ua_ms_to_datetime(int64_t ms);

#endif
