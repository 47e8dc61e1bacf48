/* Opening a serial port for Modbus RTU through libmodbus 3.1.6: its termios settings (baud,
 * parity, data and stop bits, raw mode) and RS-485 mode, reported at open. Only the port: the
 * frames on it are link_stream.c's, the same as on an RTU-over-TCP socket. */
#include <errno.h>
#include <stdlib.h>

#include <modbus.h>

#include "link_impl.h"

modbus_t *mb_serial_new(const struct mb_link_config *cfg)
{
    /* Only stores the settings (no I/O: --check calls create). */
    modbus_t *mb =
        modbus_new_rtu(cfg->serial_port, cfg->baud, cfg->parity, cfg->data_bits, cfg->stop_bits);
    if (mb)
        modbus_set_error_recovery(mb, MODBUS_ERROR_RECOVERY_NONE);
    return mb;
}

int mb_serial_open(modbus_t *mb, const struct mb_link_config *cfg, int *fd)
{
    if (modbus_connect(mb) != 0)
        return errno != 0 ? errno : EIO;
    if (cfg->rs485 && modbus_rtu_set_serial_mode(mb, MODBUS_RTU_RS485) != 0) {
        int err = errno;
        modbus_close(mb);
        /* libmodbus gives EINVAL for a port without TIOCSRS485 (a USB adapter without it, a
         * pty): say what it means. */
        return err == EINVAL || err == ENOTTY ? ENOTTY : err;
    }
    *fd = modbus_get_socket(mb);
    return 0;
}
