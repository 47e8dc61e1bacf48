/* OPC UA plugin: NodeIds written as text (OPC 10000-6 §5.3.1.10): ns=2;s=Foo, i=2258,
 * ns=3;g=09087e75-8e5e-499b-954f-f2a9603db28a, ns=1;b=M/RbKBsRVkePCePcx24oRA==, and base64
 * (nodeid.c). Pure, any thread. */
#ifndef IB_OPCUA_NODEID_H
#define IB_OPCUA_NODEID_H

#include <stddef.h>
#include <stdint.h>

#include "ua.h"

/* Parses `text` into *n. A string id points into `text` (which must outlive *n); a b= id is
 * decoded into `bytes` (size `bytes_size`, as big as strlen(text) is enough). Returns 0, or -1
 * with a message for the user in err. */
int ua_nodeid_parse(const char *text, struct ua_nodeid *n, uint8_t *bytes, size_t bytes_size,
                    char *err, size_t err_size);

/* As ua_nodeid_parse, also accepting nsu=<namespace URI>;<i|s|g|b>=...: *nsu then points to
 * the URI in `text` (len -1 when the id has none), for the caller to resolve into n->ns with
 * the server's NamespaceArray. */
int ua_nodeid_parse_uri(const char *text, struct ua_nodeid *n, struct ua_str *nsu, uint8_t *bytes,
                        size_t bytes_size, char *err, size_t err_size);

/* Writes the text form of *n (truncated to size). Returns buf. */
char *ua_nodeid_format(const struct ua_nodeid *n, char *buf, size_t size);

/* Standard base64 with padding. encode: out must hold 4 * ceil(n / 3) + 1 bytes (NUL added);
 * returns the length. decode: returns the number of bytes, or -1 for invalid input or when out
 * (out_size) is too small. */
size_t ua_base64_encode(const uint8_t *in, size_t n, char *out);
long ua_base64_decode(const char *in, size_t n, uint8_t *out, size_t out_size);

#endif
