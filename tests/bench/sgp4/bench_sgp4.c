/*
 * Benchmark for linkmodels: propagate every satellite of a catalogue over a
 * day at fixed steps (sr_propagate, one core), then predict a day of passes
 * for all of them over one station. Not a test: run.sh drives it. Reads the
 * clock, which linkmodels itself never does.
 *
 * usage: bench_sgp4 CATALOGUE START_ISO STEPS STEP_S LAT,LON,ALT_M MIN_EL
 *        bench_sgp4 synth PLANES PER_PLANE START_ISO   (Walker TLEs on stdout)
 * prints "props N seconds S rate R" and "passes N seconds S sats K"
 */
#include "linkmodels/linkmodels.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int synth(int argc, char **argv)
{
    int64_t epoch;
    if (argc != 5 || sr_time_parse(&epoch, argv[4], (size_t)-1) != 0) {
        fprintf(stderr, "usage: bench_sgp4 synth PLANES PER_PLANE START\n");
        return 2;
    }
    unsigned planes = (unsigned)atoi(argv[2]), per = (unsigned)atoi(argv[3]);
    sr_elements *els = calloc((size_t)planes * per, sizeof(*els));
    if (els == NULL || sr_synth_walker(els, 550.0, 53.0, planes, per, 1, epoch, 100000) != 0) {
        fprintf(stderr, "synth failed\n");
        return 1;
    }
    for (size_t i = 0; i < (size_t)planes * per; i++) {
        char l1[SR_TLE_LINE_LEN], l2[SR_TLE_LINE_LEN];
        if (sr_tle_format(l1, l2, &els[i]) != 0) {
            return 1;
        }
        printf("%s\n%s\n%s\n", els[i].name, l1, l2);
    }
    free(els);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "synth") == 0) {
        return synth(argc, argv);
    }
    if (argc != 7) {
        fprintf(stderr, "usage: bench_sgp4 CATALOGUE START STEPS STEP_S LAT,LON,ALT MIN_EL\n");
        return 2;
    }
    FILE *f = fopen(argv[1], "rb");
    if (f == NULL) {
        perror(argv[1]);
        return 1;
    }
    size_t cap = 64u << 20;
    char *text = malloc(cap);
    size_t len = fread(text, 1, cap, f);
    fclose(f);
    sr_elements *els;
    size_t n;
    char err[256];
    if (sr_elements_parse_text(&els, &n, text, len, 0, 0, err, sizeof err) != 0) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    free(text);
    int64_t start;
    if (sr_time_parse(&start, argv[2], (size_t)-1) != 0) {
        fprintf(stderr, "bad start\n");
        return 2;
    }
    long steps = atol(argv[3]);
    double step_s = atof(argv[4]);
    sr_station st;
    if (sr_station_parse(&st, argv[5]) != 0) {
        fprintf(stderr, "bad station\n");
        return 2;
    }
    double min_el = atof(argv[6]);
    sr_sat **sats = calloc(n, sizeof(*sats));
    double t0 = now();
    for (size_t i = 0; i < n; i++) {
        if (sr_sat_new(&sats[i], &els[i]) != 0) {
            fprintf(stderr, "satellite %u does not initialise\n", els[i].catnum);
            return 1;
        }
    }
    double t_init = now() - t0;

    /* propagation */
    double sum = 0;
    long props = 0, errs = 0;
    int64_t step_ms = (int64_t)(step_s * 1000.0);
    t0 = now();
    for (size_t i = 0; i < n; i++) {
        for (long k = 0; k < steps; k++) {
            sr_state s;
            if (sr_propagate(sats[i], start + k * step_ms, &s) != 0) {
                errs++;
            }
            sum += s.r[0];
            props++;
        }
        if (n >= 10 && i % (n / 10) == 0) {
            fprintf(stderr, "\r  C: %3zu%%", i * 100 / n);
        }
    }
    double t_prop = now() - t0;
    fprintf(stderr, "\r  C: 100%%\n");
    printf("init %zu seconds %.6f\n", n, t_init);
    printf("props %ld seconds %.6f rate %.0f errors %ld checksum %.6e\n", props, t_prop,
           (double)props / t_prop, errs, sum);

    /* passes */
    size_t npasses = 0;
    t0 = now();
    for (size_t i = 0; i < n; i++) {
        sr_pass *p;
        size_t np;
        if (sr_find_passes(&st, sats[i], start, start + (int64_t)(steps * step_ms), min_el, &p,
                           &np) == 0) {
            npasses += np;
            free(p);
        }
        if (n >= 10 && i % (n / 10) == 0) {
            fprintf(stderr, "\r  passes: %3zu%%", i * 100 / n);
        }
    }
    double t_pass = now() - t0;
    fprintf(stderr, "\r  passes: 100%%\n");
    printf("passes %zu seconds %.6f sats %zu\n", npasses, t_pass, n);

    /* handover: best satellite in each 15-s slot of the same span */
    size_t nslots = (size_t)(steps * step_ms / SR_HANDOVER_SLOT_MS);
    size_t *best = calloc(nslots ? nslots : 1, sizeof(*best));
    size_t covered = 0;
    t0 = now();
    if (sr_best_per_slot(&st, (const sr_sat *const *)sats, n, start, SR_HANDOVER_SLOT_MS, nslots,
                         min_el, best) == 0) {
        for (size_t k = 0; k < nslots; k++) {
            covered += best[k] != (size_t)-1;
        }
    }
    double t_slots = now() - t0;
    printf("slots %zu seconds %.6f covered %zu\n", nslots, t_slots, covered);
    free(best);
    for (size_t i = 0; i < n; i++) {
        sr_sat_free(sats[i]);
    }
    free(sats);
    free(els);
    return 0;
}
