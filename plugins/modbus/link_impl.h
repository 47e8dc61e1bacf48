/* Inside the link: the backend table and the state every backend shares. Private to link*.c. */
#ifndef IB_MODBUS_LINK_IMPL_H
#define IB_MODBUS_LINK_IMPL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <modbus.h>

#include "link.h"

struct mb_link_ops {
    int (*open)(struct mb_link *link); /* 0 or a positive errno */
    void (*close)(struct mb_link *link);
    int (*fd)(const struct mb_link *link); /* -1 when closed */
    void (*set_timeout)(struct mb_link *link, uint32_t response_ms);
    int (*read)(struct mb_link *link, int unit, unsigned table, uint16_t addr, uint16_t count,
                void *dest);
    int (*write)(struct mb_link *link, int unit, uint8_t fc, uint16_t addr, uint16_t count,
                 const void *data);
    void (*free)(struct mb_link *link);
    bool pipelines; /* Modbus TCP of our own framing: mb_link_read_batch() may use it */
};

struct mb_link {
    const struct mb_link_ops *ops;
    struct mb_link_config cfg;
    char name[300];
    uint32_t timeout_ms;    /* response timeout */
    int64_t quiet_since_us; /* monotonic time the last frame ended; 0: unknown */
    bool late_answer;       /* Modbus TCP: a request timed out, its answer may still come */
    char why[160];          /* what was wrong with the last response; "" when not known */
    uint16_t tid;           /* Modbus TCP: the transaction id of the last request */
    bool counts_surplus;    /* the backend reads all that came with a response (link_stream.c,
                               Modbus TCP): mb_link_settle() checks surplus, not the socket */
    size_t surplus;         /* bytes that came after the last response's frame: stray */
};

/* The backends: a new closed link (NULL on out of memory). link_stream.c: any kind, with our own
 * framing; link_libmodbus.c: Modbus TCP through libmodbus (implementation: libmodbus). */
struct mb_link *mb_link_stream_new(const struct mb_link_config *cfg);
struct mb_link *mb_link_libmodbus_new(const struct mb_link_config *cfg);

/* link_serial.c: a serial port's settings in a libmodbus context (no I/O; NULL on out of
 * memory; free with modbus_free), and opening it: 0 and *fd (the port's, owned by mb: close it
 * with modbus_close), or a positive errno (ENOTTY: rs485 asked of a port without RS-485 mode). */
modbus_t *mb_serial_new(const struct mb_link_config *cfg);
int mb_serial_open(modbus_t *mb, const struct mb_link_config *cfg, int *fd);

int64_t mb_link_now_us(void);

/* Read and drop what arrives on fd until nothing has come for quiet_us, for at most max_us in
 * all. Returns the bytes dropped, or -1 with errno (ECONNRESET when the peer closed). */
long mb_link_drain(int fd, uint32_t quiet_us, uint32_t max_us);

#endif
