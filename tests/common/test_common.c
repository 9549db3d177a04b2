/* Known answers for common/: RFC 3339 round trips, strict parsers, buffer ceilings. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "common/common.h"

static void test_time_format(void **state)
{
    (void)state;
    char out[SR_RFC3339_LEN];
    assert_int_equal(sr_time_format(out, 0), 24);
    assert_string_equal(out, "1970-01-01T00:00:00.000Z");
    assert_int_equal(sr_time_format(out, 1795356190250), 24);
    assert_string_equal(out, "2026-11-22T14:03:10.250Z");
    assert_int_equal(sr_time_format(out, -1), 24);
    assert_string_equal(out, "1969-12-31T23:59:59.999Z");
    assert_int_equal(sr_time_format(out, 951782400000), 24); /* leap day 2000 */
    assert_string_equal(out, "2000-02-29T00:00:00.000Z");
}

static void test_time_parse(void **state)
{
    (void)state;
    int64_t ms;
    assert_int_equal(sr_time_parse(&ms, "2026-11-22T14:03:10.250Z", (size_t)-1), 0);
    assert_true(ms == 1795356190250);
    assert_int_equal(sr_time_parse(&ms, "2026-11-22T15:03:10.2504+01:00", (size_t)-1), 0);
    assert_true(ms == 1795356190250);
    assert_int_equal(sr_time_parse(&ms, "2026-11-22 14:03:10", (size_t)-1), 0);
    assert_true(ms == 1795356190000);
    assert_int_equal(sr_time_parse(&ms, "2026-11-22T14:03:10.0009Z", (size_t)-1), 0);
    assert_true(ms == 1795356190001);
    assert_int_equal(sr_time_parse(&ms, "2026-02-29T00:00:00Z", (size_t)-1), SR_ERR_RANGE);
    assert_int_equal(sr_time_parse(&ms, "2026-13-01T00:00:00Z", (size_t)-1), SR_ERR_RANGE);
    assert_int_equal(sr_time_parse(&ms, "2026-11-22T14:03:10.Z", (size_t)-1), SR_ERR_PARSE);
    assert_int_equal(sr_time_parse(&ms, "2026-11-22T14:03:10Zjunk", (size_t)-1), SR_ERR_PARSE);
    assert_int_equal(sr_time_parse(&ms, "yesterday", (size_t)-1), SR_ERR_PARSE);
}

static void test_buf_ceiling(void **state)
{
    (void)state;
    sr_buf b;
    sr_buf_init(&b, 10);
    assert_int_equal(sr_buf_append(&b, "0123456789", 10), 0);
    assert_int_equal(sr_buf_append(&b, "x", 1), SR_ERR_TOOBIG);
    assert_int_equal(b.len, 10);
    sr_buf_free(&b);
    sr_buf_init(&b, 64);
    assert_int_equal(sr_buf_append_json_str(&b, "a\"\n", 3), 0);
    assert_int_equal(sr_buf_terminate(&b), 0);
    assert_string_equal((char *)b.data, "\"a\\\"\\u000a\"");
    sr_buf_free(&b);
}

static void test_strict_numbers(void **state)
{
    (void)state;
    int64_t v;
    double d;
    assert_int_equal(sr_parse_i64(&v, "-42", 3), 0);
    assert_true(v == -42);
    assert_int_equal(sr_parse_i64(&v, "42x", 3), SR_ERR_PARSE);
    assert_int_equal(sr_parse_i64(&v, "99999999999999999999", 20), SR_ERR_RANGE);
    assert_int_equal(sr_parse_double(&d, "1.5e3", 5), 0);
    assert_true(d == 1500.0);
    assert_int_equal(sr_parse_double(&d, "nan", 3), SR_ERR_RANGE);
    assert_int_equal(sr_parse_double(&d, "", 0), SR_ERR_PARSE);
    /* decimal only: no hex floats, no leading blanks (strtod takes both) */
    assert_int_equal(sr_parse_double(&d, "0x10", 4), SR_ERR_PARSE);
    assert_int_equal(sr_parse_double(&d, "0x1p4", 5), SR_ERR_PARSE);
    assert_int_equal(sr_parse_double(&d, " 5", 2), SR_ERR_PARSE);
    assert_int_equal(sr_parse_double(&d, "-.5E-2", 6), 0);
    assert_true(d == -0.005);
    uint8_t raw[2];
    assert_int_equal(sr_unhex(raw, 2, "a0FF", 4), 0);
    assert_int_equal(raw[0], 0xa0);
    assert_int_equal(sr_unhex(raw, 2, "a0FG", 4), SR_ERR_PARSE);
}

static void test_strerror_total(void **state)
{
    (void)state;
    for (int c = -300; c <= 0; c++) {
        assert_non_null(sr_strerror(c));
        assert_non_null(sr_errname(c));
    }
    assert_string_equal(sr_errname(SR_ERR_ENV_BADSIG), "env_badsig");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_time_format),    cmocka_unit_test(test_time_parse),
        cmocka_unit_test(test_buf_ceiling),    cmocka_unit_test(test_strict_numbers),
        cmocka_unit_test(test_strerror_total),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
