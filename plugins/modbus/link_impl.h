/* Inside the link: the backend table and the state every backend shares. Private to link*.c. */
#ifndef IB_MODBUS_LINK_IMPL_H
#define IB_MODBUS_LINK_IMPL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

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
};

struct mb_link {
    const struct mb_link_ops *ops;
    struct mb_link_config cfg;
    char name[300];
    uint32_t timeout_ms;    /* response timeout */
    int64_t quiet_since_us; /* monotonic time the last frame ended; 0: unknown */
    bool late_answer;       /* Modbus TCP: a request timed out, its answer may still come */
};

/* Backends: fill a new link (NULL on out of memory). */
struct mb_link *mb_link_libmodbus_new(const struct mb_link_config *cfg);
struct mb_link *mb_link_rtu_tcp_new(const struct mb_link_config *cfg);

int64_t mb_link_now_us(void);

/* Read and drop what arrives on fd until nothing has come for quiet_us, for at most max_us in
 * all. Returns the bytes dropped, or -1 with errno (ECONNRESET when the peer closed). */
long mb_link_drain(int fd, uint32_t quiet_us, uint32_t max_us);

#endif
