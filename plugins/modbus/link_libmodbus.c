/* Link backend for Modbus TCP through libmodbus 3.1.6 (connection key implementation:
 * libmodbus), for a device that works with libmodbus and not with our own framing, with what
 * that version lacks: a connect timeout. One request at a time; its errors are libmodbus's. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include <modbus.h>

#include "link_impl.h"
#include "proto.h"

struct lmb_link {
    struct mb_link base; /* first: the link functions cast between the two */
    modbus_t *mb;
};

static struct lmb_link *lmb(struct mb_link *link)
{
    return (struct lmb_link *)link;
}

static const struct lmb_link *lmb_const(const struct mb_link *link)
{
    return (const struct lmb_link *)link;
}

static void set_response_timeout(modbus_t *mb, uint32_t ms)
{
    modbus_set_response_timeout(mb, ms / 1000, (ms % 1000) * 1000);
}

static int lmb_open(struct mb_link *link)
{
    struct lmb_link *l = lmb(link);
    const struct mb_link_config *c = &link->cfg;
    /* libmodbus 3.1.6 waits for a non-blocking connect() as long as the response timeout:
     * lend it the connect timeout for the duration of modbus_connect(). */
    set_response_timeout(l->mb, c->connect_timeout_ms);
    int rc = modbus_connect(l->mb);
    int err = errno;
    set_response_timeout(l->mb, link->timeout_ms);
    if (rc == 0)
        return 0;
    /* When the wait times out libmodbus returns with connect()'s EINPROGRESS in errno. */
    return err == EINPROGRESS || err == 0 ? ETIMEDOUT : err;
}

static void lmb_close(struct mb_link *link)
{
    /* libmodbus closes only an open socket and marks it closed; calling it twice is fine. */
    modbus_close(lmb(link)->mb);
}

static int lmb_fd(const struct mb_link *link)
{
    return modbus_get_socket(lmb_const(link)->mb);
}

static void lmb_set_timeout(struct mb_link *link, uint32_t ms)
{
    set_response_timeout(lmb(link)->mb, ms);
}

static int lmb_read(struct mb_link *link, int unit, unsigned table, uint16_t addr, uint16_t count,
                    void *dest)
{
    modbus_t *mb = lmb(link)->mb;
    /* The unit was validated at create; libmodbus cannot refuse it here. */
    modbus_set_slave(mb, unit);
    switch (table) {
    case MB_TABLE_COIL:
        return modbus_read_bits(mb, addr, count, dest);
    case MB_TABLE_DISCRETE_INPUT:
        return modbus_read_input_bits(mb, addr, count, dest);
    case MB_TABLE_INPUT:
        return modbus_read_input_registers(mb, addr, count, dest);
    default:
        return modbus_read_registers(mb, addr, count, dest);
    }
}

static int lmb_write(struct mb_link *link, int unit, uint8_t fc, uint16_t addr, uint16_t count,
                     const void *data)
{
    modbus_t *mb = lmb(link)->mb;
    modbus_set_slave(mb, unit);
    switch (fc) {
    case MB_FC_WRITE_SINGLE_COIL:
        return modbus_write_bit(mb, addr, *(const uint8_t *)data ? 1 : 0);
    case MB_FC_WRITE_SINGLE_REGISTER:
        return modbus_write_register(mb, addr, *(const uint16_t *)data);
    case MB_FC_WRITE_MULTIPLE_COILS:
        return modbus_write_bits(mb, addr, count, data);
    default:
        return modbus_write_registers(mb, addr, count, data);
    }
}

static void lmb_free(struct mb_link *link)
{
    struct lmb_link *l = lmb(link);
    modbus_free(l->mb);
    free(l);
}

static const struct mb_link_ops lmb_ops = {
    .open = lmb_open,
    .close = lmb_close,
    .fd = lmb_fd,
    .set_timeout = lmb_set_timeout,
    .read = lmb_read,
    .write = lmb_write,
    .free = lmb_free,
};

struct mb_link *mb_link_libmodbus_new(const struct mb_link_config *cfg)
{
    struct lmb_link *l = calloc(1, sizeof *l);
    if (!l)
        return NULL;
    /* The _pi variant takes a host name or an IPv6 address as well as an IPv4 one; it only
     * stores them here (no I/O: --check calls create) and resolves at connect. */
    char service[8];
    snprintf(service, sizeof(service), "%d", cfg->port);
    l->mb = modbus_new_tcp_pi(cfg->host, service);
    if (!l->mb) {
        free(l);
        return NULL;
    }
    l->base.ops = &lmb_ops;
    l->base.cfg = *cfg;
    l->base.timeout_ms = 1000;
    set_response_timeout(l->mb, l->base.timeout_ms);
    uint32_t bt = cfg->byte_timeout_ms;
    modbus_set_byte_timeout(l->mb, bt / 1000, (bt % 1000) * 1000);
    /* Recovery is the plugin's (mb_link_recover): libmodbus's own would sleep a whole response
     * timeout after a protocol error. */
    modbus_set_error_recovery(l->mb, MODBUS_ERROR_RECOVERY_NONE);
    return &l->base;
}
