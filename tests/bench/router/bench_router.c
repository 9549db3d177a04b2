/*
 * Router decision cost: 10,000 satellites with a day of passes each, 100
 * IDCs with energy profiles (a third PV-powered with a day's forecast), and
 * a stream of workloads ranked at times spread over the day. Prints the
 * stored passes, the router's memory per pass, and the decisions made; run
 * under callgrind with --toggle-collect=sr_router_rank (see run.sh) to count
 * instructions per decision.
 *
 * Passes are synthetic but shaped like a LEO shell over a mid-latitude
 * station: each satellite has 4 to 7 passes a day of 2 to 10 minutes, so
 * about 230 satellites are in view at any instant.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "routing/routing.h"

#define NSAT 10000
#define NIDC 100
#define DAY_MS (86400 * 1000LL)
#define T0 1795392000000LL

static uint64_t rng = 88172645463325252ULL;
static double rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (double)(rng >> 11) / 9007199254740992.0;
}

int main(int argc, char **argv)
{
    int decisions = argc > 1 ? atoi(argv[1]) : 2000;
    sr_router *r;
    if (sr_router_new(&r) != 0) {
        return 1;
    }
    char id[32];
    for (int i = 0; i < NIDC; i++) {
        struct sr_target_info t;
        memset(&t, 0, sizeof(t));
        snprintf(t.id, sizeof(t.id), "idc-%03d", i);
        t.kind = SR_TARGET_IDC;
        t.prior_rtt_ms = 5 + rnd() * 200;
        t.gops = 50 + rnd() * 2000;
        t.uplink_bps = 1e6 + rnd() * 1e8;
        t.downlink_bps = 1e6 + rnd() * 1e8;
        t.energy.joules_per_gop = 0.8 + rnd() * 2;
        t.energy.pue = 1.08 + rnd() * 0.6;
        t.energy.price_per_kwh = 0.05 + rnd() * 0.3;
        t.energy.carbon_g_per_kwh = 20 + rnd() * 700;
        t.energy.pv = i % 3 == 0;
        int idx = sr_router_add_target(r, &t);
        if (idx < 0) {
            return 1;
        }
        if (t.energy.pv) {
            struct sr_energy_point pts[24];
            for (int h = 0; h < 24; h++) {
                double sun = sin(M_PI * (h - 6) / 12.0);
                pts[h] = (struct sr_energy_point){T0 + h * 3600000LL, NAN, NAN,
                                                  sun > 0 ? 5000 * sun : 0};
            }
            if (sr_router_set_energy_series(r, (size_t)idx, pts, 24) != 0) {
                return 1;
            }
        }
    }
    size_t npasses = 0;
    for (int i = 0; i < NSAT; i++) {
        struct sr_target_info t;
        memset(&t, 0, sizeof(t));
        snprintf(t.id, sizeof(t.id), "sat-%05d", i);
        snprintf(id, sizeof(id), "%s", t.id);
        t.kind = SR_TARGET_SATELLITE;
        t.prior_rtt_ms = 30;
        t.gops = 10 + rnd() * 200;
        t.uplink_bps = 2e6;
        t.downlink_bps = 2e7;
        t.energy.joules_per_gop = 2;
        t.energy.battery_cost = 2;
        if (sr_router_add_target(r, &t) < 0) {
            return 1;
        }
        struct sr_pass_rec p[8];
        int n = 4 + (int)(rnd() * 4);
        int64_t slot = DAY_MS / n;
        for (int k = 0; k < n; k++) {
            memset(&p[k], 0, sizeof(p[k]));
            snprintf(p[k].sat, sizeof(p[k].sat), "%s", id);
            p[k].aos_ms = T0 + k * slot + (int64_t)(rnd() * (double)(slot - 600000));
            p[k].los_ms = p[k].aos_ms + 120000 + (int64_t)(rnd() * 480000);
            p[k].tca_ms = (p[k].aos_ms + p[k].los_ms) / 2;
            p[k].max_el_deg = 10 + rnd() * 80;
            p[k].light_ms = 3 + rnd() * 5;
            snprintf(p[k].source, sizeof(p[k].source), "predicted");
        }
        if (sr_router_set_passes(r, id, T0 - DAY_MS, T0 + 2 * DAY_MS, p, (size_t)n) != 0) {
            return 1;
        }
        npasses += (size_t)n;
    }
    struct sr_pass_rec probe[1];
    size_t inview = sr_router_passes(r, NULL, T0 + DAY_MS / 2, T0 + DAY_MS / 2 + 1, probe, 0);
    printf("targets %zu (satellites %d, IDCs %d), passes %zu, in view at noon %zu\n",
           sr_router_count(r), NSAT, NIDC, npasses, inview);
    printf("memory per stored pass: %zu bytes\n", sr_router_pass_bytes(r));

    struct sr_candidate c[8];
    size_t feasible = 0, on_orbit = 0;
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (int i = 0; i < decisions; i++) {
        struct sr_workload w;
        memset(&w, 0, sizeof(w));
        int64_t now = T0 + (int64_t)(rnd() * (double)(DAY_MS - 3600000));
        w.work_gop = 10 + rnd() * 2000;
        w.bytes_in = (int64_t)(1e4 + rnd() * 1e7);
        w.result_bytes = (int64_t)(1e3 + rnd() * 1e6);
        w.deadline_ms = now + 2000 + (int64_t)(rnd() * 600000);
        w.store_and_forward = i % 2 == 0;
        w.place = i % 10 == 0 ? SR_PLACE_ORBIT : SR_PLACE_ANY;
        size_t n = sr_router_rank(r, &w, now, c, 8);
        if (n && c[0].feasible) {
            feasible++;
            on_orbit += sr_router_target(r, c[0].target)->kind == SR_TARGET_SATELLITE;
        }
    }
    clock_gettime(CLOCK_MONOTONIC, &b);
    double ns = ((double)(b.tv_sec - a.tv_sec) * 1e9 + (double)(b.tv_nsec - a.tv_nsec)) / decisions;
    printf("decisions %d (feasible %zu, to orbit %zu), %.0f ns per decision (native clock)\n",
           decisions, feasible, on_orbit, ns);
    sr_router_free(r);
    return 0;
}
