/* Signed configuration documents: sign/verify round trip, and every way a document is refused
 * (no magic, no signature, altered body or version, another key, a key that is not Ed25519, a
 * version out of range); the applied document kept in the state directory (written durably,
 * found, refused when ambiguous or not a regular file). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "remote.h"

static char dir[64];
static char key[128], pub[128], key2[128], rsa[128], rsapub[128];

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/ib-test-remote-XXXXXX");
    assert_non_null(mkdtemp(dir));
    snprintf(key, sizeof key, "%s/k.pem", dir);
    snprintf(pub, sizeof pub, "%s/k.pub", dir);
    snprintf(key2, sizeof key2, "%s/k2.pem", dir);
    snprintf(rsa, sizeof rsa, "%s/rsa.pem", dir);
    snprintf(rsapub, sizeof rsapub, "%s/rsa.pub", dir);
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "openssl genpkey -algorithm ed25519 -out %s && openssl pkey -in %s -pubout -out %s "
             "&& openssl genpkey -algorithm ed25519 -out %s && openssl genpkey -algorithm rsa "
             "-pkeyopt rsa_keygen_bits:1024 -out %s 2>/dev/null && openssl pkey -in %s -pubout "
             "-out %s",
             key, key, pub, key2, rsa, rsa, rsapub);
    return system(cmd) == 0 ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    return system(cmd);
}

static const char body[] = "connections: []\n# é and \"quotes\"\n";

static void expect_refused(const char *msg, size_t len, const char *keyfile, const char *needle)
{
    struct ib_signed_doc doc;
    char err[512] = "";
    assert_int_equal(ib_remote_verify(msg, len, keyfile, &doc, err, sizeof err), -1);
    if (!strstr(err, needle))
        fail_msg("expected '%s' in: %s", needle, err);
}

static void round_trip(void **state)
{
    (void)state;
    struct ib_buf env = {0};
    char err[512];
    assert_int_equal(ib_remote_sign(body, sizeof body - 1, 42, key, &env, err, sizeof err), 0);
    struct ib_signed_doc doc;
    assert_int_equal(ib_remote_verify(env.p, env.len, pub, &doc, err, sizeof err), 0);
    assert_int_equal(doc.version, 42);
    assert_int_equal(doc.body_len, sizeof body - 1);
    assert_memory_equal(doc.body, body, doc.body_len);
    ib_buf_free(&env);
}

static void refusals(void **state)
{
    (void)state;
    struct ib_buf env = {0};
    char err[512];
    assert_int_equal(ib_remote_sign(body, sizeof body - 1, 7, key, &env, err, sizeof err), 0);
    expect_refused(body, sizeof body - 1, pub, "not a signed configuration");
    /* the body altered by one byte */
    char *m = strdup(env.p);
    m[env.len - 3] ^= 1;
    expect_refused(m, env.len, pub, "signature does not match");
    /* the version changed: a replay dressed up as new */
    free(m);
    m = strdup(env.p);
    char *v = strstr(m, "version 7");
    v[8] = '8';
    expect_refused(m, env.len, pub, "signature does not match");
    free(m);
    /* no signature line */
    const char nosig[] = IB_REMOTE_MAGIC "\nversion 7\n\nx: 1\n";
    expect_refused(nosig, sizeof nosig - 1, pub, "no 'signature' line");
    /* signed with another key */
    struct ib_buf env2 = {0};
    assert_int_equal(ib_remote_sign(body, sizeof body - 1, 7, key2, &env2, err, sizeof err), 0);
    expect_refused(env2.p, env2.len, pub, "signature does not match");
    /* a public key that is not Ed25519 */
    expect_refused(env.p, env.len, rsapub, "is not an Ed25519 key");
    assert_int_equal(ib_remote_sign(body, 3, 1, rsa, &env2, err, sizeof err), -1);
    assert_non_null(strstr(err, "is not an Ed25519 key"));
    /* truncated */
    expect_refused(env.p, 30, pub, "");
    ib_buf_free(&env);
    ib_buf_free(&env2);
}

static void file_version(void **state)
{
    (void)state;
    char path[128];
    snprintf(path, sizeof path, "%s/conf.d/50-remote.yaml", dir);
    assert_int_equal(ib_remote_file_version(path), 0);
    assert_int_equal(ib_remote_write_file(path, 12, body, sizeof body - 1), 0);
    assert_int_equal(ib_remote_file_version(path), 12);
    char tmp[160];
    snprintf(tmp, sizeof tmp, "%s/conf.d/.50-remote.yaml.tmp", dir);
    assert_int_not_equal(access(tmp, F_OK), 0); /* renamed into place */
}

/* Versions go from 1 to 2^53: a huge one is refused before its signature is even looked at,
 * and a file recording one (an older daemon's) locks nothing out. */
static void version_bound(void **state)
{
    (void)state;
    struct ib_buf env = {0};
    char err[512];
    struct ib_signed_doc doc;
    assert_int_equal(ib_remote_sign(body, 3, IB_REMOTE_MAX_VERSION, key, &env, err, sizeof err), 0);
    assert_int_equal(ib_remote_verify(env.p, env.len, pub, &doc, err, sizeof err), 0);
    assert_true(doc.version == IB_REMOTE_MAX_VERSION);
    assert_int_equal(ib_remote_sign(body, 3, IB_REMOTE_MAX_VERSION + 1, key, &env, err, sizeof err),
                     -1);
    assert_non_null(strstr(err, "2^53"));
    assert_int_equal(ib_remote_sign(body, 3, 5, key, &env, err, sizeof err), 0);
    const char *huge[] = {"18446744073709551615", "9007199254740993", "0"};
    for (size_t i = 0; i < 3; i++) {
        struct ib_buf m = {0};
        const char *v = strstr(env.p, "version 5");
        ib_buf_append(&m, env.p, (size_t)(v - env.p) + 8);
        ib_buf_puts(&m, huge[i]);
        ib_buf_puts(&m, v + 9);
        expect_refused(m.p, m.len, pub, "out of range");
        ib_buf_free(&m);
    }
    assert_true(ib_remote_text_version("# ironbridge remote configuration, version "
                                       "18446744073709551615 (signed)\n") == 0);
    assert_true(ib_remote_text_version("# ironbridge remote configuration, version "
                                       "9007199254740992 (signed)\n") == IB_REMOTE_MAX_VERSION);
    assert_true(ib_remote_text_version("x: 1\n") == 0);
    ib_buf_free(&env);
}

/* The state directory: made when missing (two levels, 0700), the document found with its
 * version, a second one refused until pruned, a write that cannot be done reported. */
static void kept_document(void **state)
{
    (void)state;
    char sdir[128], rdir[160], path[200], other[200], err[4600];
    snprintf(sdir, sizeof sdir, "%s/state", dir);
    snprintf(rdir, sizeof rdir, "%s/remote", sdir);
    struct ib_remote_stored st;
    assert_int_equal(ib_remote_stored_read(rdir, &st, err, sizeof err), 0); /* none yet */
    snprintf(path, sizeof path, "%s/50-remote.yaml", rdir);
    assert_int_equal(ib_remote_write_file(path, 9, body, sizeof body - 1), 0);
    struct stat sb;
    assert_int_equal(stat(rdir, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0700);
    assert_int_equal(ib_remote_stored_read(rdir, &st, err, sizeof err), 1);
    assert_true(st.version == 9);
    assert_string_equal(st.name, "50-remote.yaml");
    assert_string_equal(st.path, path);
    assert_non_null(strstr(st.text.p, body));
    ib_remote_stored_free(&st);
    snprintf(other, sizeof other, "%s/60-other.yaml", rdir);
    assert_int_equal(ib_remote_write_file(other, 10, body, 3), 0);
    assert_int_equal(ib_remote_stored_read(rdir, &st, err, sizeof err), -1);
    assert_non_null(strstr(err, "more than one document"));
    assert_int_equal(ib_remote_stored_prune(rdir, "50-remote.yaml"), 0);
    assert_int_not_equal(access(other, F_OK), 0);
    assert_int_equal(ib_remote_stored_read(rdir, &st, err, sizeof err), 1);
    ib_remote_stored_free(&st);
    /* a FIFO named like a document: refused, never waited on */
    assert_int_equal(unlink(path), 0);
    assert_int_equal(mkfifo(path, 0600), 0);
    assert_int_equal(ib_remote_stored_read(rdir, &st, err, sizeof err), -1);
    assert_non_null(strstr(err, "not a regular file"));
    unlink(path);
    /* a directory that cannot be made (its parent is a file): -1 with errno, nothing written */
    char bad[300];
    assert_int_equal(ib_remote_write_file(other, 1, body, 3), 0);
    snprintf(bad, sizeof bad, "%s/remote/x.yaml", other);
    errno = 0;
    assert_int_equal(ib_remote_write_file(bad, 1, body, 3), -1);
    assert_int_not_equal(errno, 0);
}

/* The mailbox keeps every message in order up to its bound and counts what did not fit. */
static void mailbox(void **state)
{
    (void)state;
    struct ib_remote_mailbox *m = ib_remote_mailbox_new();
    assert_non_null(m);
    char *msg;
    size_t len;
    uint64_t over;
    assert_int_equal(ib_remote_mailbox_take(m, &msg, &len, &over), 0);
    assert_true(over == 0);
    for (int i = 0; i < IB_REMOTE_MAILBOX_SLOTS + 2; i++) {
        char text[16];
        snprintf(text, sizeof text, "doc %d", i);
        ib_remote_mailbox_post(m, text, strlen(text));
    }
    uint64_t total_over = 0;
    for (int i = 0; i < IB_REMOTE_MAILBOX_SLOTS; i++) {
        assert_int_equal(ib_remote_mailbox_take(m, &msg, &len, &over), 1);
        total_over += over;
        char want[16];
        snprintf(want, sizeof want, "doc %d", i);
        assert_string_equal(msg, want);
        assert_int_equal(len, strlen(want));
        free(msg);
    }
    assert_true(total_over == 2);
    assert_int_equal(ib_remote_mailbox_take(m, &msg, &len, &over), 0);
    assert_true(over == 0);
    /* posted after a take: the wake-up is there */
    ib_remote_mailbox_post(m, "late", 4);
    uint64_t n = 0;
    assert_int_equal(read(ib_remote_mailbox_fd(m), &n, sizeof n), (ssize_t)sizeof n);
    assert_int_equal(ib_remote_mailbox_take(m, &msg, &len, &over), 1);
    free(msg);
    ib_remote_mailbox_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(round_trip),    cmocka_unit_test(refusals),
        cmocka_unit_test(file_version),  cmocka_unit_test(version_bound),
        cmocka_unit_test(kept_document), cmocka_unit_test(mailbox),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
