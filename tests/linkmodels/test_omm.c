/* linkmodels/omm.c: CelesTrak OMM in JSON, CSV, XML and KVN; the sample files
 * from python3-sgp4 give the same orbits as their TLE twin. */
#include "lm_test.h"

#include <math.h>

static const char omm_json[] =
    "[{\"OBJECT_NAME\":\"VANGUARD 1\",\"OBJECT_ID\":\"1958-002B\",\"EPOCH\":\"2020-10-13T04:52:"
    "48.472320\",\"MEAN_MOTION\":10.84869164,\"ECCENTRICITY\":0.1845686,\"INCLINATION\":34."
    "2443,\"RA_OF_ASC_NODE\":225.5254,\"ARG_OF_PERICENTER\":162.2516,\"MEAN_ANOMALY\":205."
    "2356,\"EPHEMERIS_TYPE\":0,\"CLASSIFICATION_TYPE\":\"U\",\"NORAD_CAT_ID\":5,\"ELEMENT_SET_"
    "NO\":999,\"REV_AT_EPOCH\":21814,\"BSTAR\":-2.2483e-5,\"MEAN_MOTION_DOT\":-1.6e-7,\"MEAN_"
    "MOTION_DDOT\":0}]";

static const char omm_kvn[] = "CCSDS_OMM_VERS = 2.0\n"
                              "COMMENT GENERATED VIA SPACE-TRACK.ORG API\n"
                              "CREATION_DATE = 2020-10-13T12:00:00\n"
                              "ORIGINATOR = 18 SPCS\n"
                              "OBJECT_NAME = VANGUARD 1\n"
                              "OBJECT_ID = 1958-002B\n"
                              "CENTER_NAME = EARTH\n"
                              "REF_FRAME = TEME\n"
                              "TIME_SYSTEM = UTC\n"
                              "MEAN_ELEMENT_THEORY = SGP4\n"
                              "EPOCH = 2020-10-13T04:52:48.472320\n"
                              "MEAN_MOTION = 10.84869164 [rev/day]\n"
                              "ECCENTRICITY = .1845686\n"
                              "INCLINATION = 34.2443 [deg]\n"
                              "RA_OF_ASC_NODE = 225.5254 [deg]\n"
                              "ARG_OF_PERICENTER = 162.2516 [deg]\n"
                              "MEAN_ANOMALY = 205.2356 [deg]\n"
                              "EPHEMERIS_TYPE = 0\n"
                              "CLASSIFICATION_TYPE = U\n"
                              "NORAD_CAT_ID = 5\n"
                              "ELEMENT_SET_NO = 999\n"
                              "REV_AT_EPOCH = 21814\n"
                              "BSTAR = -.22483E-4 [1/ER]\n"
                              "MEAN_MOTION_DOT = -1.6E-7 [rev/day**2]\n"
                              "MEAN_MOTION_DDOT = 0 [rev/day**3]\n";

/* Propagates both over two days and returns the largest position difference. */
static double max_diff(const sr_elements *a, const sr_elements *b)
{
    sr_sat *sa, *sb;
    assert_int_equal(sr_sat_new(&sa, a), 0);
    assert_int_equal(sr_sat_new(&sb, b), 0);
    double worst = 0;
    for (double t = -1440; t <= 1440; t += 37.0) {
        double ra[3], va[3], rb[3], vb[3];
        assert_int_equal(sr_sgp4(sa, t, ra, va), 0);
        assert_int_equal(sr_sgp4(sb, t, rb, vb), 0);
        for (int i = 0; i < 3; i++) {
            worst = fmax(worst, fabs(ra[i] - rb[i]));
        }
    }
    /* and the same instants by wall-clock time */
    int64_t t0 = (int64_t)a->epoch_ms;
    for (int64_t t = t0 - 86400000; t <= t0 + 86400000; t += 3333333) {
        sr_state x, y;
        assert_int_equal(sr_propagate(sa, t, &x), 0);
        assert_int_equal(sr_propagate(sb, t, &y), 0);
        for (int i = 0; i < 3; i++) {
            worst = fmax(worst, fabs(x.r[i] - y.r[i]));
        }
    }
    sr_sat_free(sa);
    sr_sat_free(sb);
    return worst;
}

static void check_vanguard(const char *text, size_t len)
{
    sr_elements tle, *els;
    size_t n;
    char err[200] = "";
    assert_int_equal(sr_tle_parse(&tle, NULL, VANGUARD_L1, VANGUARD_L2, 0, NULL, 0), 0);
    int rc = sr_elements_parse_text(&els, &n, text, len, 0, 0, err, sizeof err);
    if (rc != 0) {
        fprintf(stderr, "%s\n", err);
    }
    assert_int_equal(rc, 0);
    assert_int_equal(n, 1);
    assert_int_equal(els[0].catnum, 5);
    assert_string_equal(els[0].name, "VANGUARD 1");
    assert_true(fabs(els[0].epoch_ms - tle.epoch_ms) < 0.001);
    double d = max_diff(&tle, &els[0]);
    assert_true(d < 1e-6);
    free(els);
}

static void test_sample_files(void **state)
{
    (void)state;
    size_t len = 0;
    char *csv = lm_slurp(SGP4_DIR "sample_omm.csv", &len);
    if (csv == NULL) {
        skip();
    }
    check_vanguard(csv, len);
    free(csv);
    char *xml = lm_slurp(SGP4_DIR "sample_omm.xml", &len);
    assert_non_null(xml);
    check_vanguard(xml, len);
    free(xml);
}

static void test_json_kvn(void **state)
{
    (void)state;
    check_vanguard(omm_json, strlen(omm_json));
    check_vanguard(omm_kvn, strlen(omm_kvn));
    /* a single object, numbers as strings (Space-Track style) */
    const char *obj = "{\"OBJECT_NAME\":\"VANGUARD 1\",\"EPOCH\":\"2020-10-13T04:52:48.472320\","
                      "\"MEAN_MOTION\":\"10.84869164\",\"ECCENTRICITY\":\".1845686\","
                      "\"INCLINATION\":\"34.2443\",\"RA_OF_ASC_NODE\":\"225.5254\","
                      "\"ARG_OF_PERICENTER\":\"162.2516\",\"MEAN_ANOMALY\":\"205.2356\","
                      "\"NORAD_CAT_ID\":\"5\",\"BSTAR\":\"-.22483E-4\"}";
    check_vanguard(obj, strlen(obj));
}

static void expect_err(const char *text, const char *needle)
{
    sr_elements *els;
    size_t n;
    char err[200] = "";
    int rc = sr_elements_parse_text(&els, &n, text, strlen(text), 0, 0, err, sizeof err);
    if (rc == 0 || strstr(err, needle) == NULL) {
        fprintf(stderr, "rc=%d err='%s' wanted '%s'\n", rc, err, needle);
    }
    assert_int_equal(rc, SR_ERR_ELEM_FORMAT);
    assert_non_null(strstr(err, needle));
    assert_null(els);
}

/* |sample| with its first |from| replaced by |to| (the same length) must be
 * refused naming |needle|. */
static void expect_err_edited(const char *sample, const char *from, const char *to,
                              const char *needle)
{
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", sample);
    char *p = strstr(buf, from);
    assert_non_null(p);
    assert_int_equal(strlen(from), strlen(to));
    memcpy(p, to, strlen(to));
    expect_err(buf, needle);
}

static void test_refusals(void **state)
{
    (void)state;
    /* wrong units in KVN */
    expect_err_edited(omm_kvn, "[rev/day]", "[rad/sec]", "units");
    expect_err_edited(omm_kvn, "[rev/day]", "[rad/sec]", "MEAN_MOTION");
    /* eccentricity out of range, NaN */
    expect_err_edited(omm_json, "0.1845686", "1.1845686", "ECCENTRICITY");
    expect_err_edited(omm_kvn, "= .1845686", "= nan     ", "ECCENTRICITY");
    /* missing field */
    const char *nomm = "[{\"OBJECT_NAME\":\"X\",\"EPOCH\":\"2020-10-13T04:52:48\"}]";
    expect_err(nomm, "missing");
    /* bad epoch, and a negative hour or minute ("%2d" reads "-1") */
    expect_err_edited(omm_json, "2020-10-13T04", "2020-13-13T04", "EPOCH");
    expect_err_edited(omm_json, "2020-10-13T04:52", "2020-10-13T-1:52", "EPOCH");
    expect_err_edited(omm_json, "2020-10-13T04:52", "2020-10-13T04:-2", "EPOCH");
    /* CSV: field count and bad number, with the line */
    expect_err("OBJECT_NAME,NORAD_CAT_ID\nX,5,6\n", "CSV line 2");
    expect_err("OBJECT_NAME,EPOCH,MEAN_MOTION,ECCENTRICITY,INCLINATION,RA_OF_ASC_NODE,ARG_OF_"
               "PERICENTER,MEAN_ANOMALY,NORAD_CAT_ID,BSTAR\nX,2020-10-13T04:52:48,15.5,0.001,"
               "51.6,10,20,30,5,1e-4\nY,2020-10-13T04:52:48,15.x,0.001,51.6,10,20,30,6,1e-4\n",
               "CSV line 3");
    /* XML: mismatched tags, DTD, units */
    expect_err("<ndm><omm><body></omm></ndm>", "XML line 1");
    expect_err("<!DOCTYPE x [<!ENTITY a 'b'>]><ndm/>", "DTD");
    expect_err("<ndm><omm><MEAN_MOTION units=\"rad/s\">1</MEAN_MOTION></omm></ndm>", "units");
    expect_err("<ndm>\n<omm>\n<EPOCH>2020-10-13T04:52:48</EPOCH>\n</omm>\n</ndm>\n", "missing");
    /* JSON syntax */
    expect_err("[{\"OBJECT_NAME\": }]", "JSON line 1");
}

static void test_big_catnum(void **state)
{
    (void)state;
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", omm_json);
    char *p = strstr(buf, "\"NORAD_CAT_ID\":5,");
    char tail[4096];
    snprintf(tail, sizeof tail, "%s", p + strlen("\"NORAD_CAT_ID\":5,"));
    snprintf(p, sizeof buf - (size_t)(p - buf), "\"NORAD_CAT_ID\":812345,%s", tail);
    sr_elements *els;
    size_t n;
    char err[200];
    assert_int_equal(sr_elements_parse_text(&els, &n, buf, strlen(buf), 0, 0, err, sizeof err), 0);
    assert_int_equal(els[0].catnum, 812345);
    /* JSON output and back */
    sr_buf b;
    sr_buf_init(&b, 1 << 16);
    assert_int_equal(sr_omm_format_json(&b, &els[0]), 0);
    sr_elements *back;
    size_t nb;
    assert_int_equal(
        sr_elements_parse_text(&back, &nb, (const char *)b.data, b.len, 0, 0, err, sizeof err), 0);
    assert_int_equal(back[0].catnum, 812345);
    assert_true(max_diff(&els[0], &back[0]) < 1e-3);
    free(back);
    free(els);
    sr_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sample_files),
        cmocka_unit_test(test_json_kvn),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_big_catnum),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
