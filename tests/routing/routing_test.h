/* Shared helpers for the routing unit tests: a router per test, targets and
 * workloads with the fields a test names, and the candidate for one target. */
#ifndef SR_ROUTING_TEST_H
#define SR_ROUTING_TEST_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "routing/routing.h"

#define assert_near(a, b)                                                                          \
    do {                                                                                           \
        double a_ = (a), b_ = (b);                                                                 \
        if (!(fabs(a_ - b_) <= 1e-9 * (1 + fabs(b_)))) {                                           \
            fail_msg("%s = %.17g, expected %.17g", #a, a_, b_);                                    \
        }                                                                                          \
    } while (0)

/* cmocka setup / teardown: *state is a new, empty router. */
static inline int setup(void **state)
{
    sr_router *r;
    if (sr_router_new(&r) != 0) {
        return -1;
    }
    *state = r;
    return 0;
}

static inline int teardown(void **state)
{
    sr_router_free(*state);
    return 0;
}

static inline struct sr_target_info info(const char *id, sr_target_kind kind, double rtt,
                                         double gops)
{
    struct sr_target_info t;
    memset(&t, 0, sizeof(t));
    snprintf(t.id, sizeof(t.id), "%s", id);
    t.kind = kind;
    t.prior_rtt_ms = rtt;
    t.gops = gops;
    return t;
}

/* Adds a target with unlimited links; its index or the error. */
static inline int add(sr_router *r, const char *id, sr_target_kind kind, double rtt, double gops)
{
    struct sr_target_info t = info(id, kind, rtt, gops);
    return sr_router_add_target(r, &t);
}

/* A synchronous workload placed anywhere. */
static inline struct sr_workload workload(double work_gop, int64_t deadline_ms)
{
    struct sr_workload w;
    memset(&w, 0, sizeof(w));
    w.work_gop = work_gop;
    w.deadline_ms = deadline_ms;
    w.place = SR_PLACE_ANY;
    return w;
}

/* Ranks with room for 16 and returns the candidate for |idx|. */
static inline struct sr_candidate cand_for(sr_router *r, const struct sr_workload *w, int64_t now,
                                           size_t idx)
{
    struct sr_candidate c[16];
    size_t n = sr_router_rank(r, w, now, c, 16);
    for (size_t i = 0; i < n; i++) {
        if (c[i].target == idx) {
            return c[i];
        }
    }
    fail_msg("target %zu not ranked", idx);
    return c[0];
}

static inline void fail_n(sr_router *r, size_t idx, int n, int64_t now)
{
    for (int i = 0; i < n; i++) {
        sr_router_failure(r, idx, now);
    }
}

/* A pass of |sat| with source "test", TCA halfway and 45 degrees up. */
static inline struct sr_pass_rec pass(const char *sat, int64_t aos, int64_t los, double up,
                                      double down, double light)
{
    struct sr_pass_rec p;
    memset(&p, 0, sizeof(p));
    snprintf(p.sat, sizeof(p.sat), "%s", sat);
    p.aos_ms = aos;
    p.tca_ms = (aos + los) / 2;
    p.los_ms = los;
    p.max_el_deg = 45;
    p.uplink_bps = up;
    p.downlink_bps = down;
    p.light_ms = light;
    snprintf(p.source, sizeof(p.source), "test");
    return p;
}

#endif
