/* Signed configuration documents (opt-in remote configuration over MQTT): the envelope format,
 * Ed25519 signing and verification with OpenSSL. Pure functions: no I/O but key files. */
#ifndef IB_REMOTE_H
#define IB_REMOTE_H

#include <stddef.h>
#include <stdint.h>

#include "util.h"

/* The envelope (docs/remote-config.md):
 *
 *   ironbridge-signed-config 1
 *   version 42
 *   signature <base64 of the Ed25519 signature>
 *   <empty line>
 *   <the YAML document>
 *
 * The signature covers the envelope without its signature line: "ironbridge-signed-config 1\n"
 * "version 42\n" "\n" and the document, byte for byte. */
#define IB_REMOTE_MAGIC "ironbridge-signed-config 1"

struct ib_signed_doc {
    uint64_t version;
    const char *body; /* points into the message */
    size_t body_len;
};

/* Check `msg` against the PEM Ed25519 public key in `pubkey_path`. Returns 0 and fills `out`,
 * or -1 with a reason for a person in `err` (unsigned, malformed, wrong key type, bad
 * signature). */
int ib_remote_verify(const char *msg, size_t len, const char *pubkey_path,
                     struct ib_signed_doc *out, char *err, size_t errlen);

/* Make the envelope of `body` with the PEM Ed25519 private key in `key_path`, into `out`.
 * Returns 0, or -1 with `err`. */
int ib_remote_sign(const char *body, size_t body_len, uint64_t version, const char *key_path,
                   struct ib_buf *out, char *err, size_t errlen);

/* The version recorded in the first line of a file written by ib_remote_write_file, or 0. */
uint64_t ib_remote_file_version(const char *path);

/* Write `body` to `path` atomically (temporary file, fsync, rename, fsync of the directory),
 * with a first line recording the version. Returns 0 or -1 with errno. */
int ib_remote_write_file(const char *path, uint64_t version, const char *body, size_t len);

/* The text ib_remote_write_file would write (for validating it before it is written). */
int ib_remote_file_text(uint64_t version, const char *body, size_t len, struct ib_buf *out);

#endif
