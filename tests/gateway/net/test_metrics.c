/*
 * gateway/net/metrics.c: the Prometheus text exposition of counters, gauges
 * and histograms (HELP/TYPE lines, sorted label sets, cumulative buckets with
 * +Inf equal to the count, _sum and _count) and sr_metrics_get.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/net/net.h"

static int setup(void **state)
{
    sr_metrics *m;
    if (sr_metrics_new(&m) != 0) {
        return -1;
    }
    *state = m;
    return 0;
}

static int teardown(void **state)
{
    sr_metrics_free(*state);
    return 0;
}

/* Renders |m| into a NUL-terminated string (caller frees). */
static char *render(const sr_metrics *m)
{
    sr_buf b;
    sr_buf_init(&b, 1 << 20);
    assert_int_equal(sr_metrics_render(m, &b), 0);
    assert_int_equal(sr_buf_terminate(&b), 0);
    char *s = strdup(b.data ? (char *)b.data : "");
    sr_buf_free(&b);
    assert_non_null(s);
    return s;
}

static void test_empty(void **state)
{
    sr_metrics *m = *state;
    char *s = render(m);
    assert_string_equal(s, "");
    free(s);
    assert_true(sr_metrics_get(m, "nothing", "") == 0);
    sr_metrics_free(NULL);
}

static void test_counter(void **state)
{
    sr_metrics *m = *state;
    sr_metrics_describe(m, "sr_requests_total", "counter", "Requests received.");
    sr_metrics_add(m, "sr_requests_total", "code=\"200\"", 1);
    sr_metrics_add(m, "sr_requests_total", "code=\"200\"", 2);
    sr_metrics_add(m, "sr_requests_total", "code=\"413\"", 1);
    sr_metrics_add(m, "sr_requests_total", "code=\"104\"", 0.5);
    assert_true(sr_metrics_get(m, "sr_requests_total", "code=\"200\"") == 3);
    assert_true(sr_metrics_get(m, "sr_requests_total", "code=\"413\"") == 1);
    assert_true(sr_metrics_get(m, "sr_requests_total", "code=\"500\"") == 0);
    assert_true(sr_metrics_get(m, "sr_other", "code=\"200\"") == 0);
    char *s = render(m);
    /* label sets come out sorted, whatever the order they were created in */
    assert_string_equal(s, "# HELP sr_requests_total Requests received.\n"
                           "# TYPE sr_requests_total counter\n"
                           "sr_requests_total{code=\"104\"} 0.5\n"
                           "sr_requests_total{code=\"200\"} 3\n"
                           "sr_requests_total{code=\"413\"} 1\n");
    free(s);
}

/* Label sets known up front are there at 0 before any event. */
static void test_zero(void **state)
{
    sr_metrics *m = *state;
    sr_metrics_zero(m, "sr_done_total",
                    (const char *const[]){"outcome=\"ok\"", "outcome=\"failed\"", NULL});
    sr_metrics_add(m, "sr_done_total", "outcome=\"ok\"", 2);
    char *s = render(m);
    assert_string_equal(s, "# HELP sr_done_total \n"
                           "# TYPE sr_done_total counter\n"
                           "sr_done_total{outcome=\"failed\"} 0\n"
                           "sr_done_total{outcome=\"ok\"} 2\n");
    free(s);
}

static void test_undescribed_and_unlabelled(void **state)
{
    sr_metrics *m = *state;
    /* a family used before (or without) describe gets its type from the call */
    sr_metrics_add(m, "sr_a_total", "", 7);
    sr_metrics_set(m, "sr_b", "", -2.25);
    char *s = render(m);
    assert_string_equal(s, "# HELP sr_a_total \n"
                           "# TYPE sr_a_total counter\n"
                           "sr_a_total 7\n"
                           "# HELP sr_b \n"
                           "# TYPE sr_b gauge\n"
                           "sr_b -2.25\n");
    free(s);
    /* describing later fixes the help text and keeps the series and the family order */
    sr_metrics_describe(m, "sr_b", "gauge", "B.");
    sr_metrics_describe(m, "sr_a_total", "counter", "A.");
    s = render(m);
    assert_non_null(strstr(s, "# HELP sr_a_total A.\n# TYPE sr_a_total counter\nsr_a_total 7\n"
                              "# HELP sr_b B.\n"));
    free(s);
}

static void test_gauge(void **state)
{
    sr_metrics *m = *state;
    sr_metrics_describe(m, "sr_inflight", "gauge", "Requests in flight.");
    sr_metrics_set(m, "sr_inflight", "target=\"beta\"", 5);
    sr_metrics_set(m, "sr_inflight", "target=\"alpha\"", 3);
    sr_metrics_set(m, "sr_inflight", "target=\"beta\"", 1);
    assert_true(sr_metrics_get(m, "sr_inflight", "target=\"beta\"") == 1);
    sr_metrics_set(m, "sr_ratio", "", 0.1);
    char *s = render(m);
    assert_string_equal(s, "# HELP sr_inflight Requests in flight.\n"
                           "# TYPE sr_inflight gauge\n"
                           "sr_inflight{target=\"alpha\"} 3\n"
                           "sr_inflight{target=\"beta\"} 1\n"
                           "# HELP sr_ratio \n"
                           "# TYPE sr_ratio gauge\n"
                           "sr_ratio 0.10000000000000001\n");
    free(s);
}

/* Parses one "name{labels} value" sample line. */
static double sample(const char *text, const char *prefix)
{
    const char *p = strstr(text, prefix);
    if (!p) {
        fail_msg("no sample '%s' in:\n%s", prefix, text);
    }
    p += strlen(prefix);
    assert_true(*p == ' ');
    return strtod(p + 1, NULL);
}

static void test_histogram(void **state)
{
    sr_metrics *m = *state;
    sr_metrics_describe(m, "sr_latency_seconds", "histogram", "Latency.");
    static const double obs[] = {0.0001, 0.0005, 0.003, 0.003, 0.2, 1, 7, 11};
    double sum = 0;
    for (size_t i = 0; i < sizeof(obs) / sizeof(obs[0]); i++) {
        sr_metrics_observe(m, "sr_latency_seconds", "target=\"a\"", obs[i]);
        sum += obs[i];
    }
    sr_metrics_observe(m, "sr_latency_seconds", "", 0.02);
    /* sr_metrics_get of a histogram is its count */
    assert_true(sr_metrics_get(m, "sr_latency_seconds", "target=\"a\"") == 8);
    assert_true(sr_metrics_get(m, "sr_latency_seconds", "") == 1);

    char *s = render(m);
    assert_non_null(strstr(s, "# HELP sr_latency_seconds Latency.\n"
                              "# TYPE sr_latency_seconds histogram\n"));
    /* the unlabelled series sorts first ("" < "target=...") */
    assert_true(strstr(s, "sr_latency_seconds_bucket{le=\"0.0005\"} 0\n") <
                strstr(s, "sr_latency_seconds_bucket{target=\"a\",le=\"0.0005\"}"));

    static const struct {
        const char *le;
        double want;
    } buckets[] = {{"0.0001", 1}, {"0.00025", 1}, {"0.0005", 2}, {"0.001", 2}, {"0.0025", 2},
                   {"0.005", 4},  {"0.01", 4},    {"0.025", 4},  {"0.05", 4},  {"0.1", 4},
                   {"0.25", 5},   {"0.5", 5},     {"1", 6},      {"2.5", 6},   {"5", 6},
                   {"10", 7},     {"+Inf", 8}};
    double prev = 0;
    char key[128];
    for (size_t i = 0; i < sizeof(buckets) / sizeof(buckets[0]); i++) {
        snprintf(key, sizeof(key), "sr_latency_seconds_bucket{target=\"a\",le=\"%s\"}",
                 buckets[i].le);
        double v = sample(s, key);
        assert_true(v == buckets[i].want);
        assert_true(v >= prev); /* cumulative */
        prev = v;
    }
    assert_true(sample(s, "sr_latency_seconds_count{target=\"a\"}") == 8);
    assert_true(fabs(sample(s, "sr_latency_seconds_sum{target=\"a\"}") - sum) < 1e-6);
    /* the unlabelled series uses no braces for _sum and _count */
    assert_true(sample(s, "sr_latency_seconds_bucket{le=\"0.01\"}") == 0);
    assert_true(sample(s, "sr_latency_seconds_bucket{le=\"0.025\"}") == 1);
    assert_true(sample(s, "sr_latency_seconds_bucket{le=\"+Inf\"}") == 1);
    assert_true(sample(s, "\nsr_latency_seconds_count") == 1);
    assert_true(fabs(sample(s, "\nsr_latency_seconds_sum") - 0.02) < 1e-12);
    free(s);
}

/* Every line is a comment (# HELP / # TYPE) or "name[{labels}] value". */
static void test_exposition_is_well_formed(void **state)
{
    sr_metrics *m = *state;
    sr_metrics_describe(m, "sr_h_seconds", "histogram", "H.");
    sr_metrics_observe(m, "sr_h_seconds", "a=\"1\",b=\"2\"", 0.3);
    sr_metrics_add(m, "sr_c_total", "x=\"y\"", 1);
    sr_metrics_set(m, "sr_g", "", 4);
    char *s = render(m);
    int samples = 0, types = 0, helps = 0;
    for (char *line = strtok(s, "\n"); line; line = strtok(NULL, "\n")) {
        if (!strncmp(line, "# HELP ", 7)) {
            helps++;
            continue;
        }
        if (!strncmp(line, "# TYPE ", 7)) {
            types++;
            const char *t = strrchr(line, ' ') + 1;
            assert_true(!strcmp(t, "counter") || !strcmp(t, "gauge") || !strcmp(t, "histogram"));
            continue;
        }
        samples++;
        size_t n = strspn(line, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_:0123456789");
        assert_true(n > 0);
        const char *rest = line + n;
        if (*rest == '{') {
            const char *close = strchr(rest, '}');
            assert_non_null(close);
            rest = close + 1;
        }
        assert_true(*rest == ' ');
        char *end;
        strtod(rest + 1, &end);
        assert_true(end > rest + 1 && *end == 0);
    }
    assert_int_equal(helps, 3);
    assert_int_equal(types, 3);
    assert_int_equal(samples, 17 + 2 + 1 + 1);
    free(s);
}

static void test_render_ceiling(void **state)
{
    sr_metrics *m = *state;
    sr_metrics_observe(m, "sr_h_seconds", "", 0.3);
    sr_buf b;
    sr_buf_init(&b, 64);
    assert_int_equal(sr_metrics_render(m, &b), SR_ERR_TOOBIG);
    sr_buf_free(&b);
}

/* A family's own bounds: sizes in powers of 4, written in full (no
 * exponent), and durations up to an hour; bounds are fixed once counted. */
static void test_histogram_buckets(void **state)
{
    sr_metrics *m = *state;
    sr_metrics_histogram(m, "sr_body_bytes", "Sizes.", &sr_buckets_bytes);
    sr_metrics_observe(m, "sr_body_bytes", "", 64);
    sr_metrics_observe(m, "sr_body_bytes", "", 65);
    sr_metrics_observe(m, "sr_body_bytes", "", 5000000);
    sr_metrics_observe(m, "sr_body_bytes", "", 1e9);
    sr_metrics_histogram(m, "sr_wait_seconds", "Waits.", &sr_buckets_duration);
    sr_metrics_observe(m, "sr_wait_seconds", "", 1000);
    /* too late: the series was counted in the bytes bounds */
    sr_metrics_histogram(m, "sr_body_bytes", "Sizes.", &sr_buckets_latency);
    char *s = render(m);
    assert_non_null(strstr(s, "# TYPE sr_body_bytes histogram\n"));
    assert_true(sample(s, "sr_body_bytes_bucket{le=\"64\"}") == 1);
    assert_true(sample(s, "sr_body_bytes_bucket{le=\"256\"}") == 2);
    assert_true(sample(s, "sr_body_bytes_bucket{le=\"4194304\"}") == 2);
    assert_true(sample(s, "sr_body_bytes_bucket{le=\"16777216\"}") == 3);
    assert_true(sample(s, "sr_body_bytes_bucket{le=\"67108864\"}") == 3);
    assert_true(sample(s, "sr_body_bytes_bucket{le=\"+Inf\"}") == 4);
    assert_null(strstr(s, "e+")); /* nor in _sum: 1005000129 whole */
    assert_null(strstr(s, "sr_body_bytes_bucket{le=\"0.0001\"}"));
    assert_true(sample(s, "sr_wait_seconds_bucket{le=\"600\"}") == 0);
    assert_true(sample(s, "sr_wait_seconds_bucket{le=\"1800\"}") == 1);
    assert_true(sample(s, "sr_wait_seconds_bucket{le=\"3600\"}") == 1);
    free(s);
    /* every set fits the fixed series array, and rises */
    const struct sr_metrics_buckets *sets[] = {&sr_buckets_latency, &sr_buckets_duration,
                                               &sr_buckets_bytes};
    for (size_t i = 0; i < 3; i++) {
        assert_true(sets[i]->n <= SR_METRICS_MAX_BUCKETS);
        for (size_t k = 1; k < sets[i]->n; k++) {
            assert_true(sets[i]->le[k] > sets[i]->le[k - 1]);
        }
    }
    assert_true(sr_buckets_latency.le[0] == 0.0001);
    assert_true(sr_buckets_latency.le[sr_buckets_latency.n - 1] == 10);
}

/* The build and the process, as this test process sees itself. */
static void test_process(void **state)
{
    (void)state;
    sr_buf b;
    sr_buf_init(&b, 1 << 20);
    assert_int_equal(sr_metrics_render_process(&b), 0);
    assert_int_equal(sr_buf_terminate(&b), 0);
    const char *s = (const char *)b.data;
    const char *bi = strstr(s, "\nskyroute_build_info{version=\"" SR_VERSION "\",");
    assert_non_null(bi);
    assert_non_null(strstr(bi, "arch=\""));
    assert_true(sample(s, "\nprocess_resident_memory_bytes") > 1e5);
    assert_true(sample(s, "\nprocess_virtual_memory_bytes") >=
                sample(s, "\nprocess_resident_memory_bytes"));
    double fds = sample(s, "\nprocess_open_fds");
    assert_true(fds >= 3 && fds < 1000);
    assert_true(sample(s, "\nprocess_max_fds") >= fds);
    double start = sample(s, "\nprocess_start_time_seconds");
    double now = (double)sr_now_ms() / 1000.0;
    assert_true(start > now - 600 && start <= now + 1);
    assert_true(sample(s, "\nprocess_cpu_seconds_total") >= 0);
    /* one more descriptor open shows at the next scrape */
    FILE *fp = fopen("/proc/self/stat", "r");
    assert_non_null(fp);
    sr_buf_reset(&b);
    assert_int_equal(sr_metrics_render_process(&b), 0);
    assert_int_equal(sr_buf_terminate(&b), 0);
    assert_true(sample((const char *)b.data, "\nprocess_open_fds") == fds + 1);
    fclose(fp);
    sr_buf_free(&b);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_empty),          T(test_counter),           T(test_undescribed_and_unlabelled),
        T(test_gauge),          T(test_histogram),         T(test_exposition_is_well_formed),
        T(test_render_ceiling), T(test_histogram_buckets), T(test_process),
        T(test_zero),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
