/* Signed configuration documents (opt-in remote configuration over MQTT): the envelope format,
 * Ed25519 signing and verification with OpenSSL (remote.c), where applied documents are kept
 * (remote_store.c) and the mailbox from paho's thread to the main loop (remote_mailbox.c). */
#ifndef IB_REMOTE_H
#define IB_REMOTE_H

#include <stdbool.h>
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

/* The largest version accepted: 2^53, so that every version is exact in the JSON config status
 * (readers that use doubles) and a document signed with a huge version cannot lock out every
 * later one (docs/remote-config.md). */
#define IB_REMOTE_MAX_VERSION 9007199254740992ULL

/* The same envelope signs commands (docs/commands.md), with its own first line so that a signed
 * configuration is never taken for a command, nor the reverse. */
#define IB_COMMAND_MAGIC "ironbridge-signed-command 1"

/* What is signed: the envelope's first line and the words of messages. */
struct ib_signed_kind {
    const char *magic; /* IB_REMOTE_MAGIC, IB_COMMAND_MAGIC */
    const char *noun;  /* "configuration", "command" */
    const char *tool;  /* the option that makes one: "--sign-config" */
};
extern const struct ib_signed_kind ib_signed_config, ib_signed_command;

struct ib_signed_doc {
    uint64_t version;
    const char *body; /* points into the message */
    size_t body_len;
};

/* Check `msg` against the PEM Ed25519 public key in `pubkey_path`. Returns 0 and fills `out`,
 * or -1 with a reason for a person in `err` (unsigned, malformed, a version of 0 or above
 * IB_REMOTE_MAX_VERSION, wrong key type, bad signature). */
int ib_remote_verify(const char *msg, size_t len, const char *pubkey_path,
                     struct ib_signed_doc *out, char *err, size_t errlen);

/* The verifier and signer of any kind of envelope; the ib_remote_* calls are these for
 * configurations. */
int ib_signed_verify(const struct ib_signed_kind *k, const char *msg, size_t len,
                     const char *pubkey_path, struct ib_signed_doc *out, char *err, size_t errlen);
int ib_signed_sign(const struct ib_signed_kind *k, const char *body, size_t body_len,
                   uint64_t version, const char *key_path, struct ib_buf *out, char *err,
                   size_t errlen);
int ib_signed_sign_file(const struct ib_signed_kind *k, const char *path, uint64_t version,
                        const char *key_path, char *err, size_t errlen);

/* Make the envelope of `body` with the PEM Ed25519 private key in `key_path`, into `out`.
 * Returns 0, or -1 with `err` (a version of 0 or above IB_REMOTE_MAX_VERSION too). */
int ib_remote_sign(const char *body, size_t body_len, uint64_t version, const char *key_path,
                   struct ib_buf *out, char *err, size_t errlen);

/* --sign-config: read `path` (at most IB_REMOTE_MAX_FILE bytes) and write its envelope to
 * stdout. Returns 0, or -1 with `err`. */
int ib_remote_sign_file(const char *path, uint64_t version, const char *key_path, char *err,
                        size_t errlen);

/* The version recorded in the first line of a file written by ib_remote_write_file, or 0 (none,
 * or one above IB_REMOTE_MAX_VERSION, which an older daemon may have written: it counts as none
 * so that it locks nothing out). */
uint64_t ib_remote_file_version(const char *path);
uint64_t ib_remote_text_version(const char *text); /* the same from the file's text */

/* Write `body` to `path` atomically and durably: the directory (and its parent) made if
 * missing (0700), a temporary file written and fsynced, renamed into place, the directory
 * fsynced. Returns 0 only when all of it succeeded, else -1 with errno (nothing replaced). */
int ib_remote_write_file(const char *path, uint64_t version, const char *body, size_t len);
/* The same for a whole file's text (putting a kept document back). */
int ib_remote_write_text(const char *path, const char *text, size_t len);

/* The text ib_remote_write_file would write (for validating it before it is written). */
int ib_remote_file_text(uint64_t version, const char *body, size_t len, struct ib_buf *out);

/* ---- remote_store.c: applied documents in the state directory ---- */

#define IB_REMOTE_MAX_FILE (16 * 1024 * 1024)

/* $STATE_DIRECTORY/remote (its first path), else /var/lib/ironbridge/remote. */
void ib_remote_dir(char *buf, size_t len);

struct ib_remote_stored {
    char name[256];     /* NAME.yaml: stands for conf.d/NAME.yaml in the tree */
    char path[4352];    /* dir/NAME.yaml */
    struct ib_buf text; /* the whole file, NUL-terminated; owned, ib_remote_stored_free */
    uint64_t version;
};

/* The document kept in `dir`: 1 and `out` filled (free it with ib_remote_stored_free), 0 when
 * there is none (no directory, or no NAME.yaml in it), -1 with `err` (unreadable, not a regular
 * file, too big, more than one document). */
int ib_remote_stored_read(const char *dir, struct ib_remote_stored *out, char *err, size_t errlen);
void ib_remote_stored_free(struct ib_remote_stored *s);
/* Remove every NAME.yaml in `dir` but `keep`, then fsync `dir`. 0 or -1. */
int ib_remote_stored_prune(const char *dir, const char *keep);

/* ---- remote_mailbox.c: from paho's thread to the main loop ---- */

/* Documents waiting at most; a message that finds the mailbox full is counted and answered
 * with a rejected status, never dropped silently. */
#define IB_REMOTE_MAILBOX_SLOTS 8

struct ib_remote_mailbox;
struct ib_remote_mailbox *ib_remote_mailbox_new(void);    /* NULL: no memory or no eventfd */
void ib_remote_mailbox_free(struct ib_remote_mailbox *m); /* accepts NULL */
/* An eventfd, readable while something waits (for the main loop's sd-event source). */
int ib_remote_mailbox_fd(const struct ib_remote_mailbox *m);
/* Any thread (paho's): copy the message in, or count it as overflow when full. */
void ib_remote_mailbox_post(struct ib_remote_mailbox *m, const char *payload, size_t len);
/* Main thread: 1 and the oldest message (NUL-terminated, the caller frees it), or 0; either way
 * `overflow` tells how many messages were refused since the last call. */
int ib_remote_mailbox_take(struct ib_remote_mailbox *m, char **msg, size_t *len,
                           uint64_t *overflow);

#endif
