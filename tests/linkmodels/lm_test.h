/* Shared helpers for the linkmodels unit tests. */
#ifndef SR_LM_TEST_H
#define SR_LM_TEST_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "linkmodels/linkmodels.h"

#define SGP4_DIR "/usr/lib/python3/dist-packages/sgp4/"

/* Vanguard 1, as in python-sgp4's tests (the sample OMM files' TLE twin). */
#define VANGUARD_L1 "1 00005U 58002B   20287.20333880 -.00000016  00000-0 -22483-4 0  9998"
#define VANGUARD_L2 "2 00005  34.2443 225.5254 1845686 162.2516 205.2356 10.84869164218149"

static inline char *lm_slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        return NULL;
    }
    char *buf = malloc(1 << 20);
    size_t n = fread(buf, 1, (1 << 20) - 1, f);
    fclose(f);
    buf[n] = '\0';
    *len = n;
    return buf;
}

static inline sr_sat *lm_sat_from_tle(const char *l1, const char *l2)
{
    sr_elements e;
    sr_sat *s = NULL;
    char err[200];
    int rc = sr_tle_parse(&e, NULL, l1, l2, 0, err, sizeof err);
    if (rc != 0) {
        fprintf(stderr, "%s\n", err);
        return NULL;
    }
    if (sr_sat_new(&s, &e) != 0) {
        return NULL;
    }
    return s;
}

#endif
