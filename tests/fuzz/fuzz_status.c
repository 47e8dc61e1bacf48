/* fuzz_status.c: fuzz target of the status socket's two parsers (daemon/status_proto.c): the
 * daemon's of a request line (what any member of the service's group may send) and the
 * client's of a reply header. Byte 0 picks the parser; the rest is the input, copied to an
 * exact-size buffer so that a read past it is caught. Checks: a request is accepted only as
 * exactly "text\n" or "json\n"; an accepted reply has a code 0..2 and a body offset within the
 * input. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "status_proto.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t n = size - 1;
    char *buf = malloc(n ? n : 1);
    if (!buf)
        return 0;
    memcpy(buf, data + 1, n);
    if (data[0] & 1) {
        int code = -1;
        size_t body = 0;
        if (ib_status_reply_parse(buf, n, &code, &body) == 0 && (code < 0 || code > 2 || body > n))
            abort();
    } else {
        int f = ib_status_request_parse(buf, n);
        if (f >= 0 && !(n == 5 && (memcmp(buf, "text\n", 5) == 0 || memcmp(buf, "json\n", 5) == 0)))
            abort();
    }
    free(buf);
    return 0;
}
