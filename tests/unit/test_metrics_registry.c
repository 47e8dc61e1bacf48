/* test_metrics_registry: the metrics registry (rows kept across "reloads", counters that never go
 * back, devices folded from groups), the Prometheus exposition (label escaping, histogram
 * buckets cumulative, families present), the health verdict and report, the listen address
 * parser, and the command counter. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "metrics.h"
#include "metrics_http.h"
#include "metrics_report.h"
#include "metrics_text.h"

static void test_rows_survive_reload(void **state)
{
    (void)state;
    struct ib_metrics *m = ib_metrics_new();
    struct ib_metrics_group *g = ib_metrics_group(m, "plc", "meter1", "fast");
    ib_metrics_poll(g, 1500, 3, 0, 1000);
    ib_metrics_poll(g, 1500, 3, 0, 2000);
    /* a reload rebuilds the poller: it finds the same row, counts on from 2 */
    struct ib_metrics_group *again = ib_metrics_group(m, "plc", "meter1", "fast");
    assert_ptr_equal(g, again);
    ib_metrics_poll(again, 1500, 3, 0, 3000);
    assert_int_equal(atomic_load(&g->polls), 3);
    assert_int_equal(atomic_load(&g->values), 9);
    /* a reload that removes it hides it, and its counters stay should it come back */
    ib_metrics_set_active(m, NULL, 0);
    struct ib_buf b = {0};
    assert_int_equal(ib_metrics_render(m, &b, 5000), 0);
    assert_null(strstr(b.p, "meter1"));
    g = ib_metrics_group(m, "plc", "meter1", "fast");
    assert_int_equal(ib_metrics_render(m, &b, 5000), 0);
    assert_non_null(strstr(
        b.p, "ironbridge_polls_total{connection=\"plc\",device=\"meter1\",group=\"fast\"} 3\n"));
    ib_buf_free(&b);
    ib_metrics_free(m);
}

static void test_device_state_and_reason(void **state)
{
    (void)state;
    struct ib_metrics *m = ib_metrics_new();
    struct ib_metrics_group *a = ib_metrics_group(m, "plc", "m1", "fast");
    struct ib_metrics_group *b2 = ib_metrics_group(m, "plc", "m1", "slow");
    struct ib_metrics_group *c = ib_metrics_group(m, "plc", "m2", "fast");
    ib_metrics_poll(a, 100, 2, 0, 1000);
    ib_metrics_poll(b2, 100, 0, 1 /* timeout */, 1000);
    struct ib_buf b = {0};
    assert_int_equal(ib_metrics_render(m, &b, 2000), 0);
    assert_non_null(strstr(
        b.p, "ironbridge_device_up{connection=\"plc\",device=\"m1\",reason=\"timeout\"} 0\n"));
    assert_non_null(strstr(
        b.p, "ironbridge_device_up{connection=\"plc\",device=\"m2\",reason=\"not_polled\"} 0\n"));
    assert_non_null(strstr(b.p, "ironbridge_poll_errors_total{connection=\"plc\",device=\"m1\","
                                "group=\"slow\",reason=\"timeout\"} 1\n"));
    char why[200];
    assert_int_equal(ib_metrics_health(m, why, sizeof why), IB_HEALTH_DEGRADED);
    assert_non_null(strstr(why, "down"));
    ib_metrics_poll(b2, 100, 2, 0, 3000);
    ib_metrics_poll(c, 100, 2, 0, 3000);
    assert_int_equal(ib_metrics_health(m, why, sizeof why), IB_HEALTH_OK);
    assert_int_equal(ib_metrics_report_text(m, &b, 4000), 0);
    assert_non_null(strstr(b.p, "healthy"));
    assert_non_null(strstr(b.p, "broker: none configured"));
    /* a configured north that is not connected: down */
    atomic_store(&ib_metrics_north(m)->configured, true);
    assert_int_equal(ib_metrics_health(m, why, sizeof why), IB_HEALTH_DOWN);
    assert_int_equal(ib_metrics_report_json(m, &b, 4000), 0);
    assert_non_null(strstr(b.p, "\"health\":\"down\",\"exit_status\":2"));
    ib_metrics_north_set_connected(m, true, "mqtts://broker:8883");
    assert_int_equal(ib_metrics_health(m, why, sizeof why), IB_HEALTH_OK);
    ib_buf_free(&b);
    ib_metrics_free(m);
}

static void test_escaping_and_histogram(void **state)
{
    (void)state;
    struct ib_metrics *m = ib_metrics_new();
    struct ib_metrics_group *g = ib_metrics_group(m, "a\"b", "c\\d", "e\nf");
    ib_metrics_poll(g, 500, 1, 0, 1000);     /* 0.5 ms: first bucket */
    ib_metrics_poll(g, 30000, 1, 0, 1000);   /* 30 ms: le 0.05 */
    ib_metrics_poll(g, 9000000, 1, 0, 1000); /* 9 s: +Inf only */
    struct ib_buf b = {0};
    assert_int_equal(ib_metrics_render(m, &b, 2000), 0);
    const char *lbl = "connection=\"a\\\"b\",device=\"c\\\\d\",group=\"e\\nf\"";
    char want[256];
    snprintf(want, sizeof want, "ironbridge_poll_duration_seconds_bucket{%s,le=\"0.001\"} 1\n",
             lbl);
    assert_non_null(strstr(b.p, want));
    snprintf(want, sizeof want, "ironbridge_poll_duration_seconds_bucket{%s,le=\"0.05\"} 2\n", lbl);
    assert_non_null(strstr(b.p, want));
    snprintf(want, sizeof want, "ironbridge_poll_duration_seconds_bucket{%s,le=\"5\"} 2\n", lbl);
    assert_non_null(strstr(b.p, want));
    snprintf(want, sizeof want, "ironbridge_poll_duration_seconds_bucket{%s,le=\"+Inf\"} 3\n", lbl);
    assert_non_null(strstr(b.p, want));
    snprintf(want, sizeof want, "ironbridge_poll_duration_seconds_count{%s} 3\n", lbl);
    assert_non_null(strstr(b.p, want));
    assert_non_null(strstr(b.p, "# TYPE ironbridge_build_info gauge\n"));
    assert_non_null(strstr(b.p, "ironbridge_process_open_fds "));
    ib_buf_free(&b);
    ib_metrics_free(m);
}

static void test_commands(void **state)
{
    (void)state;
    struct ib_metrics *m = ib_metrics_new();
    ib_metrics_command(m, "ok");
    ib_metrics_command(m, "ok");
    ib_metrics_command(m, "denied");
    ib_metrics_command(m, "Bad Result!"); /* not [a-z_]: counted as other */
    struct ib_buf b = {0};
    assert_int_equal(ib_metrics_render(m, &b, 2000), 0);
    assert_non_null(strstr(b.p, "ironbridge_commands_total{result=\"ok\"} 2\n"));
    assert_non_null(strstr(b.p, "ironbridge_commands_total{result=\"denied\"} 1\n"));
    assert_non_null(strstr(b.p, "ironbridge_commands_total{result=\"other\"} 1\n"));
    char name[16];
    for (int i = 0; i < 40; i++) { /* more results than rows: the rest are other */
        snprintf(name, sizeof name, "r%c", 'a' + i % 26);
        ib_metrics_command(m, name);
    }
    assert_int_equal(ib_metrics_render(m, &b, 2000), 0);
    ib_buf_free(&b);
    ib_metrics_free(m);
}

static void source(void *ud, ib_metrics_emit_fn emit, void *emit_ud)
{
    (void)ud;
    emit(emit_ud, "out_of_range", 7);
}

static void test_command_source(void **state)
{
    (void)state;
    struct ib_metrics *m = ib_metrics_new();
    ib_metrics_set_command_source(m, source, NULL);
    struct ib_buf b = {0};
    assert_int_equal(ib_metrics_render(m, &b, 2000), 0);
    assert_non_null(strstr(b.p, "ironbridge_commands_total{result=\"out_of_range\"} 7\n"));
    assert_int_equal(ib_metrics_report_json(m, &b, 2000), 0);
    assert_non_null(strstr(b.p, "\"commands\":{\"out_of_range\":7}"));
    ib_buf_free(&b);
    ib_metrics_free(m);
}

static void test_listen_addresses(void **state)
{
    (void)state;
    struct ib_metrics_addr a;
    char err[200];
    assert_int_equal(ib_metrics_http_parse_addr("127.0.0.1:9464", &a, err, sizeof err), 0);
    assert_true(a.loopback);
    assert_int_equal(ib_metrics_http_parse_addr("[::1]:9464", &a, err, sizeof err), 0);
    assert_true(a.loopback);
    assert_int_equal(ib_metrics_http_parse_addr("localhost:9464", &a, err, sizeof err), 0);
    assert_true(a.loopback);
    assert_int_equal(ib_metrics_http_parse_addr("0.0.0.0:9464", &a, err, sizeof err), 0);
    assert_false(a.loopback);
    assert_int_equal(ib_metrics_http_parse_addr("[::]:9464", &a, err, sizeof err), 0);
    assert_false(a.loopback);
    assert_int_equal(ib_metrics_http_parse_addr("10.0.0.5:80", &a, err, sizeof err), 0);
    assert_false(a.loopback);
    const char *bad[] = {"9464",          ":9464",           "127.0.0.1:",
                         "127.0.0.1:0",   "127.0.0.1:65536", "example.com:9464",
                         "127.0.0.1:94x", "[::1:9464"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(ib_metrics_http_parse_addr(bad[i], &a, err, sizeof err), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rows_survive_reload),
        cmocka_unit_test(test_device_state_and_reason),
        cmocka_unit_test(test_escaping_and_histogram),
        cmocka_unit_test(test_commands),
        cmocka_unit_test(test_command_source),
        cmocka_unit_test(test_listen_addresses),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
