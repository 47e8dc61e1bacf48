/* test_crc32c.c: CRC32C (daemon/crc32c.c, the checksum of the store's frames) against known
 * vectors (RFC 3720), in pieces of any size and alignment, and the hardware path against the
 * software tables. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "crc32c.h"

static void crc32c_vectors(void **state)
{
    (void)state;
    assert_int_equal(ib_crc32c("123456789", 9), 0xE3069283u);
    assert_int_equal(ib_crc32c("", 0), 0);
    unsigned char zeros[32] = {0}, ones[32];
    memset(ones, 0xff, sizeof ones);
    assert_int_equal(ib_crc32c(zeros, 32), 0x8A9136AAu); /* RFC 3720, B.4 */
    assert_int_equal(ib_crc32c(ones, 32), 0x62A8AB43u);
    unsigned char inc[32];
    for (int i = 0; i < 32; i++)
        inc[i] = (unsigned char)i;
    assert_int_equal(ib_crc32c(inc, 32), 0x46DD794Eu);
    /* Pieces of any size and alignment give the CRC of the whole. */
    const char *text = "The quick brown fox jumps over the lazy dog, twice over the lazy dog";
    size_t n = strlen(text);
    uint32_t whole = ib_crc32c(text, n);
    for (size_t cut = 0; cut <= n; cut++)
        assert_int_equal(ib_crc32c_update(ib_crc32c(text, cut), text + cut, n - cut), whole);
    /* The hardware path (when this CPU has one) equals the tables on random data of every
     * length and alignment. */
    print_message("crc32c implementation: %s\n", ib_crc32c_impl());
    unsigned char rnd[1100];
    uint32_t x = 12345;
    for (size_t i = 0; i < sizeof rnd; i++) {
        x = x * 1103515245u + 12345u;
        rnd[i] = (unsigned char)(x >> 16);
    }
    for (size_t off = 0; off < 9; off++)
        for (size_t len = 0; len + off <= sizeof rnd; len += 37)
            assert_int_equal(ib_crc32c_update(7, rnd + off, len),
                             ib_crc32c_update_sw(7, rnd + off, len));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(crc32c_vectors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
