/* Out-of-memory policy (STYLE habit 6): every allocation linkmodels makes is
 * failed in turn; each call must then return SR_ERR_NOMEM (or succeed when
 * the failed allocation was not needed), leave its outputs empty, and not
 * crash. Linked with -Wl,--wrap=malloc,--wrap=calloc,--wrap=realloc, which
 * reaches the static sr_linkmodels objects (jansson's own allocations are
 * inside the shared library and are not counted). */
#include "lm_test.h"

void *__real_malloc(size_t n);
void *__real_calloc(size_t a, size_t b);
void *__real_realloc(void *p, size_t n);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t a, size_t b);
void *__wrap_realloc(void *p, size_t n);

static long countdown = -1; /* fail when it reaches 0; -1 = never */
static long calls;

static int should_fail(void)
{
    calls++;
    if (countdown < 0) {
        return 0;
    }
    return countdown-- == 0;
}

void *__wrap_malloc(size_t n)
{
    return should_fail() ? NULL : __real_malloc(n);
}

void *__wrap_calloc(size_t a, size_t b)
{
    return should_fail() ? NULL : __real_calloc(a, b);
}

void *__wrap_realloc(void *p, size_t n)
{
    return should_fail() ? NULL : __real_realloc(p, n);
}

#define T0 1795356190250LL

static char *catalogue(size_t *len)
{
    static sr_elements w[40];
    char *buf = __real_malloc(40 * 3 * 80);
    size_t o = 0;
    assert_int_equal(sr_synth_walker(w, 550.0, 53.0, 5, 8, 1, T0, 1000), 0);
    for (int i = 0; i < 40; i++) {
        char l1[SR_TLE_LINE_LEN], l2[SR_TLE_LINE_LEN];
        assert_int_equal(sr_tle_format(l1, l2, &w[i]), 0);
        o += (size_t)snprintf(buf + o, 40 * 3 * 80 - o, "%s\n%s\n%s\n", w[i].name, l1, l2);
    }
    *len = o;
    return buf;
}

static void test_parse_oom(void **state)
{
    (void)state;
    size_t len;
    char *text = catalogue(&len);
    int saw_nomem = 0;
    for (long k = 0;; k++) {
        sr_elements *els = (sr_elements *)1;
        size_t n = 99;
        char err[200];
        countdown = k;
        int rc = sr_elements_parse_text(&els, &n, text, len, 0, 0, err, sizeof err);
        countdown = -1;
        if (rc == 0) {
            assert_int_equal(n, 40);
            free(els);
            break;
        }
        assert_int_equal(rc, SR_ERR_NOMEM);
        assert_non_null(strstr(err, "out of memory"));
        assert_null(els);
        assert_int_equal(n, 0);
        saw_nomem = 1;
    }
    assert_true(saw_nomem);
    free(text);
}

static void test_sat_and_passes_oom(void **state)
{
    (void)state;
    sr_elements e;
    sr_station st;
    assert_int_equal(sr_station_init(&st, 52.0, 4.37, 10.0), 0);
    assert_int_equal(sr_synth_overhead(&e, &st, T0, 550.0, 53.0, 1, 7), 0);
    sr_sat *s = (sr_sat *)1;
    countdown = 0;
    assert_int_equal(sr_sat_new(&s, &e), SR_ERR_NOMEM);
    countdown = -1;
    assert_null(s);
    assert_int_equal(sr_sat_new(&s, &e), 0);
    for (long k = 0;; k++) {
        sr_pass *p = (sr_pass *)1;
        size_t n = 99;
        countdown = k;
        int rc = sr_find_passes(&st, s, T0 - 86400000LL, T0 + 86400000LL, 10.0, &p, &n);
        countdown = -1;
        if (rc == 0) {
            assert_true(n >= 3);
            free(p);
            break;
        }
        assert_int_equal(rc, SR_ERR_NOMEM);
        assert_null(p);
        assert_int_equal(n, 0);
    }
    sr_sat_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_oom),
        cmocka_unit_test(test_sat_and_passes_oom),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
