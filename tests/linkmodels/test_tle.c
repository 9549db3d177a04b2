/* linkmodels/tle.c: TLE parsing, refusals that name line and field, Alpha-5,
 * formatting round trips. */
#include "lm_test.h"

#include <math.h>

#define L1 "1 00005U 58002B   00179.78495062  .00000023  00000-0  28098-4 0  4753"
#define L2 "2 00005  34.2682 348.7242 1859667 331.7664  19.3264 10.82419157413667"

static void test_parse_good(void **state)
{
    (void)state;
    sr_elements e;
    char err[200];
    assert_int_equal(sr_tle_parse(&e, "0 VANGUARD 1", L1, L2, 0, err, sizeof err), 0);
    assert_string_equal(e.name, "VANGUARD 1");
    assert_int_equal(e.catnum, 5);
    assert_int_equal(e.classification, 'U');
    assert_string_equal(e.intldes, "58002B");
    assert_int_equal(e.epoch_year, 2000);
    assert_true(fabs(e.epoch_days - 179.78495062) < 1e-12);
    assert_true(fabs(e.ndot - 0.00000023) < 1e-15);
    assert_true(fabs(e.bstar - 0.28098e-4) < 1e-15);
    assert_true(fabs(e.ecc - 0.1859667) < 1e-12);
    assert_true(fabs(e.incl_deg - 34.2682) < 1e-12);
    assert_true(fabs(e.mean_motion - 10.82419157) < 1e-12);
    assert_int_equal(e.rev_num, 41366);
    assert_int_equal(e.elset_num, 475);
    /* epoch: 2000-06-27 18:50:19.733568 UTC */
    assert_true(fabs(e.epoch_ms - 962131819733.568) < 0.01);
    /* negative BSTAR and ndot */
    assert_int_equal(sr_tle_parse(&e, NULL, VANGUARD_L1, VANGUARD_L2, 0, err, sizeof err), 0);
    assert_true(fabs(e.bstar + 0.22483e-4) < 1e-15);
    assert_true(fabs(e.ndot + 0.00000016) < 1e-15);
    assert_int_equal(e.epoch_year, 2020);
}

static void expect_refusal(const char *l1, const char *l2, int code, const char *needle1,
                           const char *needle2)
{
    sr_elements e;
    char err[200] = "";
    int rc = sr_tle_parse(&e, NULL, l1, l2, 0, err, sizeof err);
    if (rc != code || strstr(err, needle1) == NULL || strstr(err, needle2) == NULL) {
        fprintf(stderr, "rc=%d msg=%s (wanted %d, '%s', '%s')\n", rc, err, code, needle1, needle2);
    }
    assert_int_equal(rc, code);
    assert_non_null(strstr(err, needle1));
    assert_non_null(strstr(err, needle2));
}

static void set_checksum(char *l)
{
    int s = 0;
    for (int i = 0; i < 68; i++) {
        if (l[i] >= '0' && l[i] <= '9') {
            s += l[i] - '0';
        } else if (l[i] == '-') {
            s++;
        }
    }
    l[68] = (char)('0' + s % 10);
}

static void test_refusals(void **state)
{
    (void)state;
    char a[80], b[80];
    /* bad checksum */
    strcpy(a, L1);
    a[68] = '5';
    expect_refusal(a, L2, SR_ERR_ELEM_CHECKSUM, "line 1", "checksum");
    /* truncated */
    strcpy(b, L2);
    b[50] = '\0';
    expect_refusal(L1, b, SR_ERR_ELEM_FORMAT, "line 2", "truncated");
    /* NaN in the mean motion */
    strcpy(b, L2);
    memcpy(b + 52, "        nan", 11);
    set_checksum(b);
    expect_refusal(L1, b, SR_ERR_ELEM_FORMAT, "line 2", "mean motion");
    /* eccentricity with a decimal point (wrong units / format) */
    strcpy(b, L2);
    memcpy(b + 26, "0.18596", 7);
    set_checksum(b);
    expect_refusal(L1, b, SR_ERR_ELEM_FORMAT, "line 2", "eccentricity");
    /* inclination out of range */
    strcpy(b, L2);
    memcpy(b + 8, "234.2682", 8);
    set_checksum(b);
    expect_refusal(L1, b, SR_ERR_ELEM_FORMAT, "line 2", "inclination");
    /* catalogue numbers differ */
    strcpy(b, L2);
    memcpy(b + 2, "00007", 5);
    set_checksum(b);
    expect_refusal(L1, b, SR_ERR_ELEM_FORMAT, "line 2", "catalogue number");
    /* BSTAR garbage */
    strcpy(a, L1);
    memcpy(a + 53, " 2x098-4", 8);
    set_checksum(a);
    expect_refusal(a, L2, SR_ERR_ELEM_FORMAT, "line 1", "BSTAR");
    /* epoch day 0 */
    strcpy(a, L1);
    memcpy(a + 20, "000.78495062", 12);
    set_checksum(a);
    expect_refusal(a, L2, SR_ERR_ELEM_FORMAT, "line 1", "epoch day");
    /* lines swapped */
    expect_refusal(L2, L1, SR_ERR_ELEM_FORMAT, "line 1", "line number");
    /* SR_ELEM_NO_CHECKSUM accepts a wrong checksum */
    sr_elements e;
    strcpy(a, L1);
    a[68] = '5';
    assert_int_equal(sr_tle_parse(&e, NULL, a, L2, SR_ELEM_NO_CHECKSUM, NULL, 0), 0);
}

static void test_alpha5(void **state)
{
    (void)state;
    char a[80], b[80];
    sr_elements e;
    strcpy(a, L1);
    strcpy(b, L2);
    memcpy(a + 2, "A0001", 5);
    memcpy(b + 2, "A0001", 5);
    set_checksum(a);
    set_checksum(b);
    assert_int_equal(sr_tle_parse(&e, NULL, a, b, 0, NULL, 0), 0);
    assert_int_equal(e.catnum, 100001);
    memcpy(a + 2, "Z9999", 5);
    memcpy(b + 2, "Z9999", 5);
    set_checksum(a);
    set_checksum(b);
    assert_int_equal(sr_tle_parse(&e, NULL, a, b, 0, NULL, 0), 0);
    assert_int_equal(e.catnum, 339999);
    memcpy(a + 2, "J0000", 5);
    memcpy(b + 2, "J0000", 5);
    set_checksum(a);
    set_checksum(b);
    assert_int_equal(sr_tle_parse(&e, NULL, a, b, 0, NULL, 0), 0);
    assert_int_equal(e.catnum, 180000);
    /* I and O are not used */
    memcpy(a + 2, "I0001", 5);
    memcpy(b + 2, "I0001", 5);
    set_checksum(a);
    set_checksum(b);
    expect_refusal(a, b, SR_ERR_ELEM_FORMAT, "line 1", "catalogue number");

    /* format round trip through Alpha-5 */
    char o1[SR_TLE_LINE_LEN], o2[SR_TLE_LINE_LEN];
    e.catnum = 270123;
    assert_int_equal(sr_tle_format(o1, o2, &e), 0);
    assert_memory_equal(o1 + 2, "T0123", 5);
    sr_elements back;
    assert_int_equal(sr_tle_parse(&back, NULL, o1, o2, 0, NULL, 0), 0);
    assert_int_equal(back.catnum, 270123);
    e.catnum = 340000;
    assert_int_equal(sr_tle_format(o1, o2, &e), SR_ERR_RANGE);
}

static void test_format_roundtrip(void **state)
{
    (void)state;
    sr_elements e;
    char o1[SR_TLE_LINE_LEN], o2[SR_TLE_LINE_LEN];
    assert_int_equal(sr_tle_parse(&e, NULL, L1, L2, 0, NULL, 0), 0);
    assert_int_equal(sr_tle_format(o1, o2, &e), 0);
    assert_string_equal(o1, L1);
    assert_string_equal(o2, L2);
    assert_int_equal(sr_tle_parse(&e, NULL, VANGUARD_L1, VANGUARD_L2, 0, NULL, 0), 0);
    assert_int_equal(sr_tle_format(o1, o2, &e), 0);
    assert_string_equal(o1, VANGUARD_L1);
    assert_string_equal(o2, VANGUARD_L2);
}

static void test_text(void **state)
{
    (void)state;
    sr_elements *els;
    size_t n;
    char err[200];
    const char *txt = "VANGUARD 1\n" L1 "\r\n" L2 "\n\n" VANGUARD_L1 "\n" VANGUARD_L2 "\n";
    assert_int_equal(sr_elements_parse_text(&els, &n, txt, strlen(txt), 0, 0, err, sizeof err), 0);
    assert_int_equal(n, 2);
    assert_string_equal(els[0].name, "VANGUARD 1");
    assert_string_equal(els[1].name, "");
    free(els);
    /* a name followed by a name */
    const char *bad = "A\nB\n" L1 "\n" L2 "\n";
    assert_int_equal(sr_elements_parse_text(&els, &n, bad, strlen(bad), 0, 0, err, sizeof err),
                     SR_ERR_ELEM_FORMAT);
    assert_non_null(strstr(err, "line 2"));
    assert_null(els);
    /* a set cut after line 1 */
    const char *cut = "X\n" L1 "\n";
    assert_int_equal(sr_elements_parse_text(&els, &n, cut, strlen(cut), 0, 0, err, sizeof err),
                     SR_ERR_ELEM_FORMAT);
    /* the error in the second set names its text line */
    char big[512];
    snprintf(big, sizeof big, "%s\n%s\n%s\n%.60s\n", L1, L2, L1, L2);
    assert_int_equal(sr_elements_parse_text(&els, &n, big, strlen(big), 0, 0, err, sizeof err),
                     SR_ERR_ELEM_FORMAT);
    assert_non_null(strstr(err, "text line 4"));
    /* ceiling */
    assert_int_equal(sr_elements_parse_text(&els, &n, txt, strlen(txt), 1, 0, err, sizeof err),
                     SR_ERR_TOOBIG);
}

static void test_set_epoch(void **state)
{
    (void)state;
    static const struct {
        const char *iso;
        int year;
        double days;
    } cases[] = {
        {"2026-01-01T00:00:00Z", 2026, 1.0},
        {"2024-12-31T12:00:00Z", 2024, 366.5},
        {"2000-03-01T06:00:00Z", 2000, 61.25},
        {"1999-12-31T23:59:59.999Z", 1999, 365.0 + 86399.999 / 86400.0},
        {"1970-01-01T00:00:00Z", 1970, 1.0},
        {"1957-10-04T19:28:34Z", 1957, 277.0 + (19 * 3600 + 28 * 60 + 34) / 86400.0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int64_t ms;
        sr_elements e;
        memset(&e, 0, sizeof e);
        assert_int_equal(sr_time_parse(&ms, cases[i].iso, (size_t)-1), 0);
        sr_elements_set_epoch(&e, (double)ms);
        assert_int_equal(e.epoch_year, cases[i].year);
        assert_true(fabs(e.epoch_days - cases[i].days) < 1e-9);
        assert_true(e.epoch_ms == (double)ms);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_good), cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_alpha5),     cmocka_unit_test(test_format_roundtrip),
        cmocka_unit_test(test_text),       cmocka_unit_test(test_set_epoch),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
