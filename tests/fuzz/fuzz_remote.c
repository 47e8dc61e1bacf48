/* fuzz_remote.c: fuzz target of signed remote configuration (daemon/remote.c): the envelope
 * parser and Ed25519 verification (ib_remote_verify), and what the daemon does with a verified
 * document: its text as conf.d/50-remote.yaml through the configuration loader
 * (ib_config_load_ex), written and its version read back (ib_remote_write_file,
 * ib_remote_file_version).
 *
 * Input: a mode byte, then
 *   mode bit 0 clear: a message as received over MQTT, verified as it is (almost never signed
 *     correctly: this explores the envelope parser);
 *   mode bit 0 set: an 8-byte little-endian version, then a document body, signed here with the
 *     process's own key (ib_remote_sign) so that the fuzzer reaches the paths behind the
 *     signature; with mode bit 1 the byte at offset (mode >> 2) of the envelope is then flipped.
 * The key pair is made at start (in memory, written to the scratch directory). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/evp.h>
#include <openssl/pem.h>

#include "config.h"
#include "fuzz_util.h"
#include "ib_build_config.h"
#include "log.h"
#include "plugin_loader.h"
#include "remote.h"

static struct ib_plugin_registry *plugins;
static char main_path[512], key_path[512], pub_path[512], doc_path[512];

static void write_keys(void)
{
    EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    FILE *f = k ? fopen(key_path, "w") : NULL;
    FILE *g = f ? fopen(pub_path, "w") : NULL;
    if (!g || !PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL) || !PEM_write_PUBKEY(g, k)) {
        fprintf(stderr, "fuzz_remote: cannot make an Ed25519 key pair\n");
        abort();
    }
    fclose(f);
    fclose(g);
    EVP_PKEY_free(k);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    ib_log_init(IB_LOG_ERR);
    const char *dir = getenv("IB_FUZZ_PLUGIN_DIR");
    plugins = ib_plugins_new(dir ? dir : IB_BUILD_PLUGIN_DIR, true);
    fz_path(main_path, sizeof main_path, "ironbridge.yaml");
    fz_path(key_path, sizeof key_path, "ops.key");
    fz_path(pub_path, sizeof pub_path, "ops.pub");
    fz_path(doc_path, sizeof doc_path, "applied/50-remote.yaml");
    write_keys();
    char applied[512];
    mkdir(fz_path(applied, sizeof applied, "applied"), 0700);
    char yaml[2048];
    int n = snprintf(yaml, sizeof yaml,
                     "gateway:\n  id: gw1\n"
                     "north:\n  mqtt:\n    url: mqtt://127.0.0.1:1883\n"
                     "remote_config:\n  enabled: true\n  public_key: %s\n",
                     pub_path);
    fz_write(main_path, yaml, (size_t)n);
    return 0;
}

/* What main.c does with a verified document. */
static void apply(const struct ib_signed_doc *doc)
{
    struct ib_buf text = {0};
    ib_remote_file_text(doc->version, doc->body, doc->body_len, &text);
    struct ib_config_extra extra = {.name = "50-remote.yaml", .text = text.p ? text.p : ""};
    struct ib_diag diag = {0};
    struct ib_config *cfg = ib_config_load_ex(main_path, plugins, &diag, &extra);
    if (cfg) {
        if (ib_remote_write_file(doc_path, doc->version, doc->body, doc->body_len) != 0)
            abort();
        if (ib_remote_file_version(doc_path) != doc->version) {
            fprintf(stderr, "fuzz_remote: version %llu written, %llu read back\n",
                    (unsigned long long)doc->version,
                    (unsigned long long)ib_remote_file_version(doc_path));
            abort();
        }
    }
    ib_config_free(cfg);
    ib_diag_free(&diag);
    ib_buf_free(&text);
}

static void verify(const char *msg, size_t len)
{
    struct ib_signed_doc doc;
    char err[512];
    if (ib_remote_verify(msg, len, pub_path, &doc, err, sizeof err) == 0)
        apply(&doc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t mode = data[0];
    if (!(mode & 1)) {
        /* libFuzzer's buffer has the input's exact size: a read past the message is caught. */
        verify((const char *)data + 1, size - 1);
        /* The first line of a file in conf.d is read back as the version of the document. */
        fz_write(doc_path, data + 1, size - 1);
        (void)ib_remote_file_version(doc_path);
        return 0;
    }
    if (size < 9)
        return 0;
    uint64_t version = 0;
    for (int i = 0; i < 8; i++)
        version |= (uint64_t)data[1 + i] << (8 * i);
    struct ib_buf env = {0};
    char err[512];
    if (ib_remote_sign((const char *)data + 9, size - 9, version, key_path, &env, err,
                       sizeof err) != 0) {
        ib_buf_free(&env); /* refused (a version out of bounds): nothing to verify */
        return 0;
    }
    if ((mode & 2) && env.len > 0)
        env.p[(size_t)(mode >> 2) % env.len] ^= 0x01;
    char *copy = malloc(env.len ? env.len : 1);
    memcpy(copy, env.p, env.len);
    verify(copy, env.len);
    free(copy);
    ib_buf_free(&env);
    return 0;
}
