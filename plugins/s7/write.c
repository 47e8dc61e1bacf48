/* S7 plugin, the write path: write_tag as one Write Var item — bits as bits (transport size
 * BIT: the PLC sets that bit alone, no read-modify-write of its neighbours), every other type
 * as its bytes, encoded and range-checked first (text: the header and the current characters). */
#include <stdlib.h>
#include <string.h>

#include "instance.h"

/* *value as the tag's bytes into data (t->size bytes at least); *n: how many to write. */
static int encode(struct s7_instance *in, const struct s7_device *dev, const struct s7_tag *t,
                  const struct ib_value *value, uint8_t *data, uint32_t *n)
{
    enum s7_type ty = (enum s7_type)t->type;
    const char *why = "";
    int rc;
    if (s7_type_is_text(ty)) {
        rc = s7_type_encode_text(ty, value, t->length, data, t->size, n, &why);
    } else {
        rc = t->size > 16 ? -1 : s7_type_encode(ty, value, data, &why);
        *n = ty == S7_T_BOOL ? 1 : t->size;
    }
    if (rc != 0) {
        char ab[40];
        S7_LOG(in, IB_LOG_WARNING, dev->name, t->name, "write refused: %s for %s at %s", why,
               s7_type_names[ty], s7_address_format(&t->addr, ab, sizeof ab));
        return IB_ERR_INVALID;
    }
    return 0;
}

static int send_item(struct s7_instance *in, const struct s7_device *dev, const struct s7_tag *t,
                     const uint8_t *data, uint32_t n)
{
    struct s7_session *s = &in->session;
    enum s7_type ty = (enum s7_type)t->type;
    char ab[40];
    s7_address_format(&t->addr, ab, sizeof ab);
    if (s->fd < 0)
        return IB_ERR_CONNECTION;
    if (S7_JOB_HDR + 2 + S7_READ_ITEM + 4 + (size_t)n > s->pdu) {
        S7_LOG(in, IB_LOG_WARNING, dev->name, t->name,
               "write refused: %u bytes for %s do not fit one Write Var of the negotiated PDU "
               "size (%u bytes); write shorter text",
               n, ab, s->pdu);
        return IB_ERR_INVALID;
    }
    struct s7_item it = {.area = t->addr.area, .db = t->addr.db, .start = t->addr.offset};
    if (ty == S7_T_BOOL) {
        it.tsize = S7_TS_BIT;
        it.bit = t->addr.bit;
        it.count = 1;
    } else if (t->addr.width == S7_W_TIMER || t->addr.width == S7_W_COUNTER) {
        it.tsize = t->addr.width == S7_W_TIMER ? S7_TS_TIMER : S7_TS_COUNTER;
        it.count = 1; /* one timer or counter, 2 bytes */
    } else {
        it.tsize = S7_TS_BYTE;
        it.count = (uint16_t)n;
    }
    uint16_t ref = s7_session_next_ref(s);
    size_t len = s7_wire_write(s->tx, sizeof s->tx, ref, &it, data, (uint16_t)n);
    struct s7_pdu pdu;
    int rc = len == 0 ? IB_ERR_INVALID : s7_session_transact(s, len, ref, &pdu);
    if (rc != 0) {
        S7_LOG(in, IB_LOG_WARNING, dev->name, t->name, "writing %s failed: %s", ab, s->error);
        return s->fd < 0 ? IB_ERR_CONNECTION : rc;
    }
    uint8_t item_rc = 0;
    if (pdu.err_class != 0 || pdu.err_code != 0) {
        S7_LOG(in, IB_LOG_WARNING, dev->name, t->name,
               "the PLC refused the write of %s: error class %02X code %02X", ab, pdu.err_class,
               pdu.err_code);
        return IB_ERR_EXCEPTION;
    }
    if (s7_wire_write_ack(&pdu, &item_rc) != 0) {
        s7_session_close(s);
        S7_LOG(in, IB_LOG_WARNING, dev->name, t->name,
               "writing %s: malformed Write Var response; reconnecting", ab);
        return IB_ERR_CONNECTION;
    }
    if (item_rc != S7_RC_OK) {
        S7_LOG(in, IB_LOG_WARNING, dev->name, t->name, "writing %s: %s (return code %02X); %s", ab,
               s7_wire_rc_text(item_rc), item_rc, s7_wire_rc_hint(item_rc));
        return IB_ERR_EXCEPTION;
    }
    return 0;
}

int s7_write(struct s7_instance *in, uint32_t device, uint32_t group, uint32_t tag,
             const struct ib_value *value)
{
    const struct s7_device *dev = &in->devices[device];
    const struct s7_tag *t = &dev->groups[group].tags[tag];
    if (!t->writable)
        return IB_ERR_DENIED;
    enum s7_type ty = (enum s7_type)t->type;
    uint8_t num[16];
    uint8_t *data = s7_type_is_text(ty) ? malloc(t->size) : num;
    if (!data)
        return IB_ERR_NOMEM;
    uint32_t n = 0;
    int rc = encode(in, dev, t, value, data, &n);
    if (rc == 0)
        rc = send_item(in, dev, t, data, n);
    if (data != num)
        free(data);
    return rc;
}
