/* Signed configuration documents: sign/verify round trip, and every way a document is refused
 * (no magic, no signature, altered body or version, another key, a key that is not Ed25519). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(round_trip),
        cmocka_unit_test(refusals),
        cmocka_unit_test(file_version),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
