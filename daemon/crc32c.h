/* CRC32C (Castagnoli, the checksum of iSCSI, ext4 metadata and the store's frames): the SSE4.2
 * crc32 instruction on x86-64 (about 8 GB/s per core), software slicing-by-8 elsewhere (about
 * 1 GB/s). */
#ifndef IB_CRC32C_H
#define IB_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* Continue a CRC32C over `n` more bytes: start with crc = 0; the value returned after the last
 * piece is the CRC of the concatenation ("123456789" gives 0xE3069283). Thread-safe. */
uint32_t ib_crc32c_update(uint32_t crc, const void *data, size_t n);

/* The same with the software tables whatever the CPU (to test one against the other). */
uint32_t ib_crc32c_update_sw(uint32_t crc, const void *data, size_t n);

/* "sse4.2" or "slicing-by-8": what ib_crc32c_update uses on this CPU. */
const char *ib_crc32c_impl(void);

static inline uint32_t ib_crc32c(const void *data, size_t n)
{
    return ib_crc32c_update(0, data, n);
}

#endif
