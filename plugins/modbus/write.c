/* The write path: a value encoded by the tag's type and order, sent with FC5/FC15 (coils) or
 * FC6/FC16 (registers), a bit of a register by read-modify-write, and optionally read back. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <modbus.h>

#include "instance.h"

/* A failed request of a write: logged, and the ib_err it means. */
static int write_failed(struct mb_instance *in, const struct mb_device *dev, const struct mb_tag *t,
                        const char *what, int e)
{
    struct mb_failure f = mb_classify(e);
    char text[256];
    MB_LOG(in, IB_LOG_WARNING, dev->name, t->name, "%s %s %u (unit %d) failed: %s", what,
           mb_table_name(t->table), t->address, dev->unit_id,
           mb_describe(text, sizeof(text), e, in->why));
    if (f.reason == IB_R_CONN_LOST)
        mb_note_connection_lost(in, dev, e);
    return f.err;
}

/* Read the tag's registers (or its coil) back and compare with what was written. */
static int verify(struct mb_instance *in, const struct mb_device *dev, const struct mb_tag *t,
                  const uint16_t *regs, uint8_t bit)
{
    uint16_t back[4] = {0};
    uint8_t back_bit = 0;
    int e = 0, n;
    bool same;
    if (t->table == MB_TABLE_COIL) {
        n = mb_transact_read(in, dev, MB_TABLE_COIL, t->address, 1, &back_bit, &e);
        same = (back_bit != 0) == (bit != 0);
    } else if (t->type == MB_TYPE_BIT) {
        n = mb_transact_read(in, dev, MB_TABLE_HOLDING, t->address, 1, back, &e);
        struct ib_value v;
        mb_decode_reg_bit(back[0], t->bit, (enum mb_order)t->order, &v);
        same = v.v.b == (bit != 0);
    } else {
        n = mb_transact_read(in, dev, MB_TABLE_HOLDING, t->address, t->width, back, &e);
        same = memcmp(back, regs, t->width * sizeof *regs) == 0;
    }
    if (n < 0)
        return write_failed(in, dev, t, "reading back", e);
    if (same)
        return 0;
    MB_LOG(in, IB_LOG_WARNING, dev->name, t->name,
           "write not verified: %s %u reads back 0x%04X%s after the write (expected 0x%04X%s); "
           "the device may limit or ignore the value",
           mb_table_name(t->table), t->address, t->table == MB_TABLE_COIL ? back_bit : back[0],
           t->width > 1 ? "..." : "", t->table == MB_TABLE_COIL ? bit : regs[0],
           t->width > 1 ? "..." : "");
    return IB_ERR_PROTOCOL;
}

static int write_now(struct mb_instance *in, struct mb_device *dev, const struct mb_tag *t,
                     uint16_t *regs, uint8_t bit)
{
    int e = 0, n;
    if (t->table == MB_TABLE_COIL) {
        uint8_t fc = dev->write_multiple ? MB_FC_WRITE_MULTIPLE_COILS : MB_FC_WRITE_SINGLE_COIL;
        n = mb_transact_write(in, dev, fc, t->address, 1, &bit, &e);
    } else {
        if (t->type == MB_TYPE_BIT) {
            /* Read-modify-write: not atomic against the device's own program changing the other
             * bits of the register in between (docs/modbus.md says so). */
            uint16_t cur = 0;
            n = mb_transact_read(in, dev, MB_TABLE_HOLDING, t->address, 1, &cur, &e);
            if (n < 0)
                return write_failed(in, dev, t, "reading (to set one bit of)", e);
            regs[0] = mb_encode_reg_bit(cur, t->bit, bit != 0, (enum mb_order)t->order);
        }
        /* FC16 for values of several registers, so that all of them change at once; for one
         * register FC6 unless the device wants FC16 for everything. */
        uint8_t fc = t->width > 1 || dev->write_multiple ? MB_FC_WRITE_MULTIPLE_REGISTERS
                                                         : MB_FC_WRITE_SINGLE_REGISTER;
        n = mb_transact_write(in, dev, fc, t->address, t->width, regs, &e);
    }
    if (n < 0)
        return write_failed(in, dev, t, "writing", e);
    if (t->verify_write)
        return verify(in, dev, t, regs, bit);
    return 0;
}

int mb_write(struct mb_instance *in, uint32_t device, uint32_t group, uint32_t tag,
             const struct ib_value *value)
{
    struct mb_device *dev = &in->devices[device];
    const struct mb_tag *t = &dev->groups[group].tags[tag];
    uint16_t regs[4] = {0};
    uint8_t bit = 0;
    int rc;

    if (!t->writable || t->table == MB_TABLE_DISCRETE_INPUT || t->table == MB_TABLE_INPUT)
        return IB_ERR_DENIED;
    if (t->type == MB_TYPE_STRING)
        return IB_ERR_UNSUPPORTED; /* create() refuses writable strings; this is a guard */
    if (t->type == MB_TYPE_BOOL || t->type == MB_TYPE_BIT)
        rc = mb_encode_bit(value, &bit);
    else
        rc = mb_encode_registers(value, (enum mb_type)t->type, (enum mb_order)t->order, regs);
    if (rc != 0) {
        MB_LOG(in, IB_LOG_WARNING, dev->name, t->name,
               "write refused: the value does not fit type %s (out of range, not a whole "
               "number, or not a number)",
               mb_decode_type_name(t->type));
        return IB_ERR_INVALID;
    }
    if (mb_ensure_open(in) != 0)
        return IB_ERR_CONNECTION;
    rc = write_now(in, dev, t, regs, bit);
    if (rc != IB_ERR_CONNECTION && rc != IB_ERR_TIMEOUT && dev->failed_polls > 0) {
        /* It answered: end its back-off now rather than at its next probe. */
        if (ib_episode_ok(&dev->silent_ep, in->host->monotonic_ms()) == IB_EPISODE_ENDED)
            MB_LOG(in, IB_LOG_NOTICE, dev->name, NULL, "unit %d answers again (to a write)",
                   dev->unit_id);
        dev->failed_polls = 0;
        dev->retry_at_ms = 0;
    }
    if (in->close_after_poll)
        mb_link_close(in->link);
    return rc;
}
