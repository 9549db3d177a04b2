/*
 * common/buf.c's formatters against printf: sr_fmt_fixed / sr_buf_append_fixed
 * must give the bytes of "%.*f" (rounding of the exact binary value, ties to
 * even, "-0.0", the snprintf fallback for NaN, infinities and large values),
 * sr_fmt_u64 / sr_fmt_i64 those of "%llu" / "%lld", sr_str_copy those of
 * snprintf("%s") with its truncation. Plus the JSON string escaper.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <math.h>

#include "common/common.h"

static uint64_t rng = 0x9e3779b97f4a7c15u;

static uint64_t next_u64(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

/* One value through sr_fmt_fixed (two buffer sizes) and sr_buf_append_fixed,
 * each against snprintf. */
static void check_fixed(double v, int decimals)
{
    char want[400], got[400];
    int wn = snprintf(want, sizeof(want), "%.*f", decimals, v);
    assert_true(wn > 0 && (size_t)wn < sizeof(want));
    memset(got, 'x', sizeof(got));
    size_t gn = sr_fmt_fixed(got, sizeof(got), v, decimals);
    if (strcmp(want, got) != 0 || gn != (size_t)wn) {
        fail_msg("%%.%df of %a (%.17g): printf \"%s\", sr_fmt_fixed \"%s\"", decimals, v, v, want,
                 got);
    }
    char small[SR_FMT_FIXED_LEN];
    gn = sr_fmt_fixed(small, sizeof(small), v, decimals);
    char wsmall[SR_FMT_FIXED_LEN];
    int wsn = snprintf(wsmall, sizeof(wsmall), "%.*f", decimals, v);
    assert_string_equal(small, wsmall);
    assert_int_equal(gn, (size_t)wsn < sizeof(wsmall) ? (size_t)wsn : sizeof(wsmall) - 1);

    sr_buf b, w;
    sr_buf_init(&b, 1024);
    sr_buf_init(&w, 1024);
    assert_int_equal(sr_buf_append(&b, "<", 1), 0);
    assert_int_equal(sr_buf_append(&w, "<", 1), 0);
    if (decimals == 1) {
        assert_int_equal(sr_buf_append_fixed1(&b, v), 0);
    } else {
        assert_int_equal(sr_buf_append_fixed(&b, v, decimals), 0);
    }
    assert_int_equal(sr_buf_appendf(&w, "%.*f", decimals, v), 0);
    assert_int_equal(b.len, w.len);
    assert_memory_equal(b.data, w.data, b.len);
    sr_buf_free(&b);
    sr_buf_free(&w);
}

static void check_fixed_all(double v)
{
    for (int d = 0; d <= 3; d++) {
        check_fixed(v, d);
        check_fixed(-v, d);
    }
}

static void test_fixed_known(void **state)
{
    (void)state;
    char out[SR_FMT_FIXED_LEN];
    /* ties go to even: 0.25 and 0.75 are exact in binary, 0.35 and 0.45 are not */
    assert_int_equal(sr_fmt_fixed(out, sizeof(out), 0.25, 1), 3);
    assert_string_equal(out, "0.2");
    sr_fmt_fixed(out, sizeof(out), 0.75, 1);
    assert_string_equal(out, "0.8");
    sr_fmt_fixed(out, sizeof(out), 0.35, 1);
    assert_string_equal(out, "0.3"); /* 0.34999999999999997780 */
    sr_fmt_fixed(out, sizeof(out), 0.45, 1);
    assert_string_equal(out, "0.5"); /* 0.45000000000000001110 */
    sr_fmt_fixed(out, sizeof(out), 2.5, 0);
    assert_string_equal(out, "2");
    sr_fmt_fixed(out, sizeof(out), 3.5, 0);
    assert_string_equal(out, "4");
    sr_fmt_fixed(out, sizeof(out), -0.01, 1);
    assert_string_equal(out, "-0.0");
    sr_fmt_fixed(out, sizeof(out), -0.0, 0);
    assert_string_equal(out, "-0");
    sr_fmt_fixed(out, sizeof(out), 1234.56, 1);
    assert_string_equal(out, "1234.6");
    /* the fallback: the bytes snprintf stores, truncation included */
    sr_fmt_fixed(out, sizeof(out), NAN, 1);
    assert_string_equal(out, "nan");
    sr_fmt_fixed(out, sizeof(out), -INFINITY, 1);
    assert_string_equal(out, "-inf");
    assert_int_equal(sr_fmt_fixed(out, 4, 123.45, 1), 3);
    assert_string_equal(out, "123");
    assert_int_equal(sr_fmt_fixed(out, 0, 1.0, 1), 0);
    /* decimals outside 0..3 go to snprintf too */
    sr_fmt_fixed(out, sizeof(out), 1.23456, 4);
    assert_string_equal(out, "1.2346");
}

static void test_fixed_against_printf(void **state)
{
    (void)state;
    /* special values and the edges of the fast path */
    static const double special[] = {0.0,
                                     0.05,
                                     0.15,
                                     0.5,
                                     1.0,
                                     9.95,
                                     99.95,
                                     999.5,
                                     1e15,
                                     9007199254740991.0, /* 2^53 - 1 */
                                     9007199254740992.0, /* 2^53: snprintf */
                                     9007199254740994.0,
                                     4503599627370495.5, /* 2^52 - 0.5 */
                                     4503599627370496.0,
                                     1e16,
                                     1e20,
                                     1.8446744073709552e19,
                                     1e300,
                                     1.7976931348623157e308,
                                     5e-324, /* the smallest subnormal */
                                     2.2250738585072014e-308,
                                     1e-5,
                                     0.0004999999999999999,
                                     0.0005,
                                     INFINITY,
                                     NAN};
    for (size_t i = 0; i < sizeof(special) / sizeof(special[0]); i++) {
        check_fixed_all(special[i]);
        check_fixed_all(nextafter(special[i], 0));
        check_fixed_all(nextafter(special[i], INFINITY));
    }
    /* every tie and near-tie of one and two decimals up to 5000, and their
     * neighbours: k/20 and k/200 (x.x5, x.xx5), k/4 (exact binary ties) */
    for (int64_t k = 0; k <= 100000; k++) {
        double v = (double)k / 20;
        check_fixed(v, 1);
        check_fixed(-v, 1);
        check_fixed(nextafter(v, 0), 1);
        check_fixed(nextafter(v, INFINITY), 1);
        if (k % 10 == 0) {
            check_fixed((double)k / 4, 0);
            check_fixed((double)k / 4, 1);
            check_fixed((double)k / 200, 2);
            check_fixed((double)k / 2000, 3);
        }
    }
    /* milliseconds as they occur: whole numbers, and quotients of them */
    for (int64_t ms = 0; ms < 100000; ms += 13) {
        check_fixed_all((double)ms);
        check_fixed_all((double)ms / 3.0);
        check_fixed_all((double)ms * 0.1);
    }
    /* random magnitudes from 2^-60 to 2^60, and random bit patterns */
    for (int i = 0; i < 20000; i++) {
        double mant = (double)(next_u64() >> 11) / 9007199254740992.0;
        double v = ldexp(mant, (int)(next_u64() % 121) - 60);
        check_fixed_all(v);
        uint64_t bits = next_u64();
        double r;
        memcpy(&r, &bits, sizeof(r));
        check_fixed_all(r);
    }
}

static void check_int(uint64_t u)
{
    char want[32], got[SR_FMT_U64_LEN];
    snprintf(want, sizeof(want), "%llu", (unsigned long long)u);
    assert_int_equal(sr_fmt_u64(got, u), strlen(want));
    assert_string_equal(got, want);
    int64_t s = (int64_t)u;
    char igot[SR_FMT_I64_LEN];
    snprintf(want, sizeof(want), "%lld", (long long)s);
    assert_int_equal(sr_fmt_i64(igot, s), strlen(want));
    assert_string_equal(igot, want);

    sr_buf b;
    sr_buf_init(&b, 64);
    assert_int_equal(sr_buf_append_i64(&b, s), 0);
    assert_int_equal(sr_buf_append(&b, "/", 1), 0);
    assert_int_equal(sr_buf_append_u64(&b, u), 0);
    assert_int_equal(sr_buf_terminate(&b), 0);
    char both[64];
    snprintf(both, sizeof(both), "%lld/%llu", (long long)s, (unsigned long long)u);
    assert_string_equal((char *)b.data, both);
    sr_buf_free(&b);
}

static void test_integers(void **state)
{
    (void)state;
    uint64_t p = 1;
    for (int i = 0; i < 20; i++) {
        check_int(p - 1);
        check_int(p);
        check_int(p + 1);
        check_int(0 - p);
        p *= 10;
    }
    check_int(UINT64_MAX);
    check_int((uint64_t)INT64_MAX);
    check_int((uint64_t)INT64_MIN);
    for (uint64_t v = 0; v < 100000; v++) {
        check_int(v);
    }
    for (int i = 0; i < 100000; i++) {
        check_int(next_u64() >> (next_u64() % 64));
    }
}

static void test_str_copy(void **state)
{
    (void)state;
    static const char *srcs[] = {"", "a", "idc", "satellite", "0123456789abcdef0123456789abcdef"};
    for (size_t i = 0; i < sizeof(srcs) / sizeof(srcs[0]); i++) {
        for (size_t size = 0; size < 40; size++) {
            char want[48], got[48];
            memset(want, 'x', sizeof(want));
            memset(got, 'x', sizeof(got));
            int n = snprintf(want, size, "%s", srcs[i]);
            size_t stored = size == 0 ? 0 : (size_t)n < size ? (size_t)n : size - 1;
            assert_int_equal(sr_str_copy(got, size, srcs[i]), stored);
            assert_memory_equal(got, want, sizeof(got));
        }
    }
}

static void test_json_str(void **state)
{
    (void)state;
    sr_buf b;
    sr_buf_init(&b, 256);
    static const char in[] = "plain \"q\" back\\slash \x01\x1f\x7f caf\xc3\xa9 end";
    assert_int_equal(sr_buf_append_json_str(&b, in, sizeof(in) - 1), 0);
    assert_int_equal(sr_buf_append_json_str(&b, "", 0), 0);
    assert_int_equal(sr_buf_append_json_str(&b, "\n", 1), 0);
    assert_int_equal(sr_buf_terminate(&b), 0);
    assert_string_equal((char *)b.data, "\"plain \\\"q\\\" back\\\\slash \\u0001\\u001f\\u007f "
                                        "caf\xc3\xa9 end\"\"\"\"\\u000a\"");
    sr_buf_free(&b);
    /* the ceiling holds inside a run of plain bytes */
    sr_buf_init(&b, 8);
    assert_int_equal(sr_buf_append_json_str(&b, "abcdefgh", 8), SR_ERR_TOOBIG);
    assert_true(b.len <= 8);
    sr_buf_free(&b);
    sr_buf_init(&b, 10);
    assert_int_equal(sr_buf_append_json_str(&b, "abcdefgh", 8), 0);
    assert_int_equal(b.len, 10);
    sr_buf_free(&b);
}

static void test_append_fast_path_ceiling(void **state)
{
    (void)state;
    sr_buf b;
    sr_buf_init(&b, 300); /* below the first allocation (256 + growth) */
    for (int i = 0; i < 300; i++) {
        assert_int_equal(sr_buf_append(&b, "x", 1), 0);
    }
    assert_int_equal(sr_buf_append(&b, "x", 1), SR_ERR_TOOBIG);
    assert_int_equal(sr_buf_append(&b, "", 0), 0);
    assert_int_equal(b.len, 300);
    assert_int_equal(sr_buf_append_str(&b, "y"), SR_ERR_TOOBIG);
    assert_int_equal(sr_buf_terminate(&b), 0);
    assert_int_equal(b.data[300], 0);
    sr_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fixed_known), cmocka_unit_test(test_fixed_against_printf),
        cmocka_unit_test(test_integers),    cmocka_unit_test(test_str_copy),
        cmocka_unit_test(test_json_str),    cmocka_unit_test(test_append_fast_path_ceiling),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
