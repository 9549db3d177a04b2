/*
 * libFuzzer harness for the element-set parsers (linkmodels/tle.c, omm.c).
 *
 * The first byte picks the entry point: auto-detection, each OMM form, or a
 * single TLE from three NUL- or newline-separated lines; the rest is the
 * text. Every set that parses is also initialised with SGP4, propagated a
 * little, formatted back to TLE / OMM JSON, and the TLE re-parsed, so the
 * propagator and the formatters see whatever the parsers accept.
 */
#include "linkmodels/linkmodels.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void exercise(const sr_elements *e)
{
    sr_sat *sat;
    if (sr_sat_new(&sat, e) == 0) {
        sr_state s;
        int64_t t0 = (int64_t)e->epoch_ms;
        for (int k = -2; k <= 2; k++) {
            (void)sr_propagate(sat, t0 + k * 3600000LL, &s);
        }
        sr_station st;
        if (sr_station_init(&st, 10.0, 20.0, 0.0) == 0) {
            sr_look_angles la;
            (void)sr_look(&st, sat, t0, &la);
        }
        sr_sat_free(sat);
    }
    char l1[SR_TLE_LINE_LEN], l2[SR_TLE_LINE_LEN];
    if (sr_tle_format(l1, l2, e) == 0) {
        sr_elements back;
        if (sr_tle_parse(&back, NULL, l1, l2, 0, NULL, 0) != 0) {
            abort(); /* what we write we must read */
        }
    }
    sr_buf b;
    sr_buf_init(&b, 1 << 16);
    (void)sr_omm_format_json(&b, e);
    sr_buf_free(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > (1 << 16)) {
        return 0;
    }
    unsigned mode = data[0] % 7;
    const char *text = (const char *)data + 1;
    size_t len = size - 1;
    sr_elements *els = NULL;
    size_t n = 0;
    char err[256] = "";
    int rc;

    switch (mode) {
    case 0:
        rc = sr_elements_parse_text(&els, &n, text, len, 64, 0, err, sizeof err);
        break;
    case 1:
        rc = sr_omm_parse_json(&els, &n, text, len, 64, err, sizeof err);
        break;
    case 2:
        rc = sr_omm_parse_csv(&els, &n, text, len, 64, err, sizeof err);
        break;
    case 3:
        rc = sr_omm_parse_xml(&els, &n, text, len, 64, err, sizeof err);
        break;
    case 4:
        rc = sr_omm_parse_kvn(&els, &n, text, len, 64, err, sizeof err);
        break;
    case 5:
        rc = sr_elements_parse_text(&els, &n, text, len, 64, SR_ELEM_NO_CHECKSUM, err, sizeof err);
        break;
    default: {
        /* three lines for sr_tle_parse, NUL-terminated copies */
        char *copy = malloc(len + 1);
        if (copy == NULL) {
            return 0;
        }
        memcpy(copy, text, len);
        copy[len] = '\0';
        char *lines[3] = {NULL, NULL, NULL};
        char *p = copy;
        for (int i = 0; i < 3 && p != NULL; i++) {
            lines[i] = p;
            p = strchr(p, '\n');
            if (p != NULL) {
                *p++ = '\0';
            }
        }
        sr_elements e;
        if (lines[2] != NULL &&
            sr_tle_parse(&e, lines[0], lines[1], lines[2], 0, err, sizeof err) == 0) {
            exercise(&e);
        }
        free(copy);
        return 0;
    }
    }
    if (rc == 0) {
        for (size_t i = 0; i < n; i++) {
            exercise(&els[i]);
        }
    } else if (els != NULL || n != 0 || strlen(err) == 0) {
        abort(); /* failure must leave no output and say why */
    }
    free(els);
    return 0;
}
