/* The north's pieces that need no broker: the default reconnect back-off cap is the one the docs
 * promise (data resumes within ~10 s of the broker's return) and stays jittered; password_file
 * gives its first line and refuses what does not fit; CONNACK codes have their meaning. */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "config.h"
#include "diag.h"
#include "log.h"
#include "north.h"
#include "plugin_loader.h"
#include "util.h"

static char dir[64];

static void write_file(const char *name, const char *text, size_t len)
{
    char path[128];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, len), (ssize_t)len);
    close(fd);
}

/* The number in the docs' table row of reconnect_max_ms (docs/configuration.md). */
static long documented_cap(void)
{
    char path[512];
    snprintf(path, sizeof path, "%s/docs/configuration.md", getenv("IB_TEST_SOURCE_ROOT"));
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char line[4096];
    long cap = -1;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, "| `reconnect_min_ms`, `reconnect_max_ms` |", 42) == 0) {
            const char *p = strstr(line, "`, `");
            p = p ? strstr(p + 4, "`, `") : NULL; /* the defaults column: `1000`, `8000` */
            assert_non_null(p);
            cap = strtol(p + 4, NULL, 10);
        }
    fclose(f);
    return cap;
}

static void default_reconnect_cap(void **state)
{
    (void)state;
    const char *yaml = "gateway: { id: t }\nnorth: { mqtt: { url: \"mqtts://localhost:8883\", "
                       "tls: { ca: /etc/ssl/certs/ca-certificates.crt } } }\n";
    write_file("gw.yaml", yaml, strlen(yaml));
    char path[128];
    snprintf(path, sizeof path, "%s/gw.yaml", dir);
    struct ib_diag d = {0};
    struct ib_plugin_registry *r = ib_plugins_new("/nonexistent", true);
    struct ib_config *cfg = ib_config_load(path, r, &d);
    for (size_t i = 0; i < d.n; i++)
        fprintf(stderr, "%s\n", d.msgs[i]);
    assert_non_null(cfg);
    long cap = documented_cap();
    assert_int_equal(cfg->mqtt.reconnect_max_ms, cap);
    assert_true(cap <= 10000); /* data within ~10 s of the broker's return */
    /* Full jitter up to the cap: never above it, and not always the same. */
    uint64_t rng = 42;
    int64_t lo = INT64_MAX, hi = 0;
    for (int i = 0; i < 200; i++) {
        int64_t ms =
            ib_backoff_ms(cfg->mqtt.reconnect_min_ms, cfg->mqtt.reconnect_max_ms, 30, &rng);
        lo = ms < lo ? ms : lo;
        hi = ms > hi ? ms : hi;
    }
    assert_true(hi <= cap && lo >= cfg->mqtt.reconnect_min_ms && hi - lo > cap / 4);
    ib_config_free(cfg);
    ib_plugins_free(r);
    ib_diag_free(&d);
}

static int read_pw(const char *content, size_t len, char *out, char *err)
{
    write_file("pw", content, len);
    char path[128];
    snprintf(path, sizeof path, "%s/pw", dir);
    return ib_north_read_password(path, out, IB_NORTH_PASSWORD_MAX + 1, err, 512);
}

static void password_first_line(void **state)
{
    (void)state;
    char pw[IB_NORTH_PASSWORD_MAX + 1], err[512];
    assert_int_equal(read_pw("s3cret\nsecond line\n", 19, pw, err), 0);
    assert_string_equal(pw, "s3cret");
    assert_int_equal(read_pw("s3cret\r\n", 8, pw, err), 0);
    assert_string_equal(pw, "s3cret");
    assert_int_equal(read_pw("s3cret", 6, pw, err), 0);
    assert_string_equal(pw, "s3cret");
    char big[600];
    memset(big, 'x', sizeof big);
    assert_int_equal(read_pw(big, 255, pw, err), 0); /* 255 bytes fit */
    assert_int_equal(strlen(pw), 255);
    big[255] = '\n';
    assert_int_equal(read_pw(big, sizeof big, pw, err), 0);
    assert_int_equal(strlen(pw), 255);
    memset(big, 'x', sizeof big);
    assert_int_equal(read_pw(big, 256, pw, err), -1); /* 256 do not: refused, not cut */
    assert_non_null(strstr(err, "longer than 255 bytes"));
    assert_null(strstr(err, "xxxx")); /* never the content */
    assert_int_equal(read_pw(big, sizeof big, pw, err), -1);
    assert_int_equal(read_pw("\nsecond\n", 8, pw, err), -1);
    assert_non_null(strstr(err, "first line is empty"));
    assert_int_equal(ib_north_read_password("/nonexistent/pw", pw, sizeof pw, err, sizeof err), -1);
    assert_non_null(strstr(err, "/nonexistent/pw"));
}

static void connack_codes(void **state)
{
    (void)state;
    assert_string_equal(ib_north_connack_text(5), "not authorized");
    assert_string_equal(ib_north_connack_text(4), "bad user name or password");
    assert_null(ib_north_connack_text(0));
    assert_null(ib_north_connack_text(-1));
    assert_null(ib_north_connack_text(6));
}

int main(void)
{
    ib_log_init(IB_LOG_ERR);
    snprintf(dir, sizeof dir, "/tmp/ib-test-north-XXXXXX");
    if (!mkdtemp(dir))
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(default_reconnect_cap),
        cmocka_unit_test(password_first_line),
        cmocka_unit_test(connack_codes),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        rc = 1;
    return rc;
}
