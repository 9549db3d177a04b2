/*
 * routing/chooser.c: target validation, the predicted-time model, peak-EWMA
 * against hand-computed values, ejection and its back-off, placements,
 * deadlines, ordering and prediction-error statistics. Pure: every time is a
 * parameter, so all numbers below are exact.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "routing/routing.h"

#define T0 1700000000000LL /* an arbitrary "now" in ms */

#define assert_near(a, b)                                                                          \
    do {                                                                                           \
        double a_ = (a), b_ = (b);                                                                 \
        if (!(fabs(a_ - b_) <= 1e-9 * (1 + fabs(b_)))) {                                           \
            fail_msg("%s = %.17g, expected %.17g", #a, a_, b_);                                    \
        }                                                                                          \
    } while (0)

static struct sr_target_info info(const char *id, sr_target_kind kind, double rtt, double gops)
{
    struct sr_target_info t;
    memset(&t, 0, sizeof(t));
    snprintf(t.id, sizeof(t.id), "%s", id);
    t.kind = kind;
    t.prior_rtt_ms = rtt;
    t.gops = gops;
    return t;
}

static struct sr_workload workload(double work_gop, int64_t deadline_ms)
{
    struct sr_workload w;
    memset(&w, 0, sizeof(w));
    w.work_gop = work_gop;
    w.deadline_ms = deadline_ms;
    w.place = SR_PLACE_ANY;
    return w;
}

static int setup(void **state)
{
    sr_router *r;
    if (sr_router_new(&r) != 0) {
        return -1;
    }
    *state = r;
    return 0;
}

static int teardown(void **state)
{
    sr_router_free(*state);
    return 0;
}

static int add(sr_router *r, const char *id, sr_target_kind kind, double rtt, double gops)
{
    struct sr_target_info t = info(id, kind, rtt, gops);
    return sr_router_add_target(r, &t);
}

static double ewma(sr_router *r, size_t idx)
{
    struct sr_target_state st;
    sr_router_state(r, idx, T0, &st);
    return st.ewma_ms;
}

/* Ranks with a generous deadline and returns the candidate for |idx|. */
static struct sr_candidate cand_for(sr_router *r, const struct sr_workload *w, int64_t now,
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

/* ---- targets ---------------------------------------------------------------------------- */

static void test_add_target(void **state)
{
    sr_router *r = *state;
    assert_int_equal(sr_router_count(r), 0);
    assert_int_equal(add(r, "alpha", SR_TARGET_IDC, 20, 100), 0);
    assert_int_equal(add(r, "sat-1", SR_TARGET_SATELLITE, 40, 10), 1);
    assert_int_equal(sr_router_count(r), 2);
    assert_int_equal(sr_router_find(r, "sat-1"), 1);
    assert_int_equal(sr_router_find(r, "alpha"), 0);
    assert_int_equal(sr_router_find(r, "nope"), SR_ERR_NOTFOUND);
    const struct sr_target_info *t = sr_router_target(r, 1);
    assert_non_null(t);
    assert_string_equal(t->id, "sat-1");
    assert_int_equal(t->kind, SR_TARGET_SATELLITE);
    assert_near(t->gops, 10);
    assert_null(sr_router_target(r, 2));
    /* the prior is the estimate until something is observed */
    assert_near(ewma(r, 0), 20);
    assert_near(ewma(r, 1), 40);
}

static void test_add_target_duplicate(void **state)
{
    sr_router *r = *state;
    assert_int_equal(add(r, "alpha", SR_TARGET_IDC, 20, 100), 0);
    assert_int_equal(add(r, "alpha", SR_TARGET_IDC, 20, 100), SR_ERR_EXISTS);
    /* the kind does not matter: ids are one namespace */
    assert_int_equal(add(r, "alpha", SR_TARGET_SATELLITE, 40, 10), SR_ERR_EXISTS);
    assert_int_equal(sr_router_count(r), 1);
}

static void test_add_target_invalid(void **state)
{
    sr_router *r = *state;
    assert_int_equal(add(r, "", SR_TARGET_IDC, 20, 100), SR_ERR_INVAL);
    assert_int_equal(add(r, "a", SR_TARGET_IDC, 0, 100), SR_ERR_INVAL);
    assert_int_equal(add(r, "a", SR_TARGET_IDC, -1, 100), SR_ERR_INVAL);
    assert_int_equal(add(r, "a", SR_TARGET_IDC, NAN, 100), SR_ERR_INVAL);
    assert_int_equal(add(r, "a", SR_TARGET_IDC, 20, 0), SR_ERR_INVAL);
    assert_int_equal(add(r, "a", SR_TARGET_IDC, 20, -5), SR_ERR_INVAL);
    assert_int_equal(add(r, "a", SR_TARGET_IDC, 20, NAN), SR_ERR_INVAL);
    struct sr_target_info t = info("a", SR_TARGET_IDC, 20, 100);
    t.uplink_bps = -1;
    assert_int_equal(sr_router_add_target(r, &t), SR_ERR_INVAL);
    t.uplink_bps = 0;
    t.downlink_bps = -1;
    assert_int_equal(sr_router_add_target(r, &t), SR_ERR_INVAL);
    t.downlink_bps = NAN;
    assert_int_equal(sr_router_add_target(r, &t), SR_ERR_INVAL);
    t.downlink_bps = 0;
    t.uplink_bps = NAN;
    assert_int_equal(sr_router_add_target(r, &t), SR_ERR_INVAL);
    t.uplink_bps = 0;
    /* a kind that is neither IDC nor satellite */
    t.kind = (sr_target_kind)0;
    assert_int_equal(sr_router_add_target(r, &t), SR_ERR_INVAL);
    t.kind = (sr_target_kind)3;
    assert_int_equal(sr_router_add_target(r, &t), SR_ERR_INVAL);
    t.kind = SR_TARGET_IDC;
    /* an id that fills the array without a terminator */
    memset(t.id, 'x', sizeof(t.id));
    assert_int_equal(sr_router_add_target(r, &t), SR_ERR_INVAL);
    assert_int_equal(sr_router_count(r), 0);
    /* the longest id that fits is fine; unlimited links are 0 */
    memset(t.id, 'x', sizeof(t.id) - 1);
    t.id[sizeof(t.id) - 1] = 0;
    assert_int_equal(sr_router_add_target(r, &t), 0);
}

static void test_many_targets(void **state)
{
    sr_router *r = *state;
    char id[16];
    for (int i = 0; i < 100; i++) {
        snprintf(id, sizeof(id), "t%d", i);
        assert_int_equal(add(r, id, SR_TARGET_IDC, 10 + i, 100), i);
    }
    assert_int_equal(sr_router_count(r), 100);
    assert_int_equal(sr_router_find(r, "t99"), 99);
    assert_near(sr_router_target(r, 57)->prior_rtt_ms, 67);
}

/* ---- the predicted-time model -------------------------------------------------------------- */

static void test_predict_compute(void **state)
{
    sr_router *r = *state;
    add(r, "alpha", SR_TARGET_IDC, 20, 100);
    struct sr_workload w = workload(50, T0 + 60000); /* 50 Gop at 100 Gop/s = 500 ms */
    struct sr_candidate c = cand_for(r, &w, T0, 0);
    assert_true(c.feasible);
    assert_string_equal(c.why, "");
    assert_near(c.predicted_ms, 520);
    assert_near(c.cost, 520);
    /* no work: the latency alone */
    w.work_gop = 0;
    c = cand_for(r, &w, T0, 0);
    assert_near(c.predicted_ms, 20);
    /* payload sizes do not matter when the links are unlimited */
    w.bytes_in = 1 << 30;
    w.result_bytes = 1 << 30;
    c = cand_for(r, &w, T0, 0);
    assert_near(c.predicted_ms, 20);
}

static void test_predict_transfer(void **state)
{
    sr_router *r = *state;
    struct sr_target_info t = info("sat", SR_TARGET_SATELLITE, 40, 10);
    t.uplink_bps = 1e6;
    t.downlink_bps = 5e5;
    assert_int_equal(sr_router_add_target(r, &t), 0);
    struct sr_workload w = workload(5, T0 + 600000);
    w.bytes_in = 2000000;    /* 2 s up */
    w.result_bytes = 100000; /* 0.2 s down */
    struct sr_candidate c = cand_for(r, &w, T0, 0);
    /* 40 latency + 5/10*1000 compute + 2000 up + 200 down */
    assert_near(c.predicted_ms, 40 + 500 + 2000 + 200);
    assert_near(c.cost, 2740);
    /* only the uplink limited */
    t = info("up", SR_TARGET_IDC, 10, 100);
    t.uplink_bps = 1e6;
    assert_int_equal(sr_router_add_target(r, &t), 1);
    c = cand_for(r, &w, T0, 1);
    assert_near(c.predicted_ms, 10 + 50 + 2000);
}

static void test_cost_inflight(void **state)
{
    sr_router *r = *state;
    add(r, "a", SR_TARGET_IDC, 20, 100);
    add(r, "b", SR_TARGET_IDC, 30, 100);
    struct sr_workload w = workload(1, T0 + 60000); /* +10 ms compute */
    struct sr_candidate c[2];
    assert_int_equal(sr_router_rank(r, &w, T0, c, 2), 2);
    assert_int_equal(c[0].target, 0);
    assert_near(c[0].cost, 30);
    assert_near(c[1].cost, 40);

    sr_router_begin(r, 0);
    sr_router_begin(r, 0);
    struct sr_target_state st;
    sr_router_state(r, 0, T0, &st);
    assert_int_equal(st.inflight, 2);
    assert_int_equal(sr_router_rank(r, &w, T0, c, 2), 2);
    /* (2 + 1) x 30 = 90 > 40: load moves to b; the prediction itself is unchanged */
    assert_int_equal(c[0].target, 1);
    assert_int_equal(c[1].target, 0);
    assert_near(c[1].cost, 90);
    assert_near(c[1].predicted_ms, 30);

    sr_router_end(r, 0);
    sr_router_end(r, 0);
    sr_router_end(r, 0); /* unmatched end: stays at 0 */
    sr_router_state(r, 0, T0, &st);
    assert_int_equal(st.inflight, 0);
    sr_router_begin(r, 7); /* out of range: ignored */
    sr_router_end(r, 7);
    assert_int_equal(sr_router_rank(r, &w, T0, c, 2), 2);
    assert_int_equal(c[0].target, 0);
    assert_near(c[0].cost, 30);
}

/* ---- peak-EWMA ------------------------------------------------------------------------------ */

static void test_ewma_first_observation_replaces_prior(void **state)
{
    sr_router *r = *state;
    add(r, "a", SR_TARGET_IDC, 20, 100);
    add(r, "b", SR_TARGET_IDC, 20, 100);
    /* the first observation replaces the prior, even when it is lower */
    sr_router_success(r, 0, 5, 20, 0, T0);
    assert_near(ewma(r, 0), 5);
    sr_router_success(r, 1, 50, 20, 0, T0);
    assert_near(ewma(r, 1), 50);
}

/* The estimate as the next observation sees it: relaxed towards the prior
 * (PRIOR_TAU_MS = 300 s in chooser.c) for the time since the last one. */
static double relaxed(double prior, double ewma_ms, double dt_ms)
{
    return prior + (ewma_ms - prior) * exp(-dt_ms / 300000.0);
}

static void test_ewma_peak_and_decay(void **state)
{
    sr_router *r = *state;
    add(r, "a", SR_TARGET_IDC, 20, 100);
    sr_router_success(r, 0, 50, 20, 0, T0);
    assert_near(ewma(r, 0), 50);

    /* one time constant later, a faster 10 ms: the estimate first relaxes
     * towards the prior for 10 s, then blends: cur e^-1 + 10 (1 - e^-1) */
    double cur = relaxed(20, 50, 10000);
    double e1 = cur * exp(-1.0) + 10 * (1 - exp(-1.0));
    sr_router_success(r, 0, 10, 50, 0, T0 + 10000);
    assert_near(ewma(r, 0), e1);
    assert_near(e1, 24.35336196783468);

    /* a slower observation is taken at once, whatever the elapsed time */
    sr_router_success(r, 0, 100, 25, 0, T0 + 10001);
    assert_near(ewma(r, 0), 100);

    /* 5 s later a 0 ms one: relaxed(100) e^-0.5 */
    sr_router_success(r, 0, 0, 100, 0, T0 + 15001);
    assert_near(ewma(r, 0), relaxed(20, 100, 5000) * exp(-0.5));

    /* at the same instant (dt = 0) a faster one changes nothing */
    double before = ewma(r, 0);
    sr_router_success(r, 0, 1, 100, 0, T0 + 15001);
    assert_near(ewma(r, 0), before);

    /* a clock that steps back counts as dt = 0 */
    sr_router_success(r, 0, 1, 100, 0, T0);
    assert_near(ewma(r, 0), before);

    /* 20 s after that (the stamp is now T0) towards 30: */
    sr_router_success(r, 0, 30, 100, 0, T0 + 20000);
    assert_near(ewma(r, 0), relaxed(20, before, 20000) * exp(-2.0) + 30 * (1 - exp(-2.0)));
}

/* Behaviour change (issue 5): an estimate nobody refreshes drifts back to the
 * configured prior, so one slow sample an hour ago does not keep a target
 * out of favour forever. */
static void test_ewma_relaxes_to_prior_when_unobserved(void **state)
{
    sr_router *r = *state;
    add(r, "a", SR_TARGET_IDC, 20, 100);
    sr_router_success(r, 0, 80, 80, 0, T0);
    struct sr_target_state st;
    sr_router_state(r, 0, T0, &st);
    assert_near(st.ewma_ms, 80);
    sr_router_state(r, 0, T0 + 300000, &st);
    assert_near(st.ewma_ms, 20 + 60 * exp(-1.0));
    sr_router_state(r, 0, T0 + 3600000, &st);
    assert_true(fabs(st.ewma_ms - 20) < 0.01);
    /* the ranking sees the same relaxed value */
    struct sr_workload w = workload(0, T0 + 4000000);
    assert_near(cand_for(r, &w, T0 + 300000, 0).predicted_ms, 20 + 60 * exp(-1.0));
    /* before the observation's stamp nothing is relaxed */
    sr_router_state(r, 0, T0 - 1000, &st);
    assert_near(st.ewma_ms, 80);
}

static void test_ewma_subtracts_compute(void **state)
{
    sr_router *r = *state;
    add(r, "a", SR_TARGET_IDC, 20, 100);
    /* 230 ms end to end of which 2 Gop at 100 Gop/s = 20 ms compute: 210 ms overhead */
    sr_router_success(r, 0, 230, 230, 2, T0);
    assert_near(ewma(r, 0), 210);
    /* compute longer than elapsed: overhead clamps to 0, decaying from 210
     * (relaxed towards the prior for 10 s) over 10 s */
    sr_router_success(r, 0, 5, 5, 1, T0 + 10000);
    assert_near(ewma(r, 0), relaxed(20, 210, 10000) * exp(-1.0));
    /* the rank uses the estimate */
    struct sr_workload w = workload(0, T0 + 60000);
    assert_near(cand_for(r, &w, T0 + 10000, 0).predicted_ms, relaxed(20, 210, 10000) * exp(-1.0));
}

static void test_ewma_ignores_bad_observations(void **state)
{
    sr_router *r = *state;
    add(r, "a", SR_TARGET_IDC, 20, 100);
    sr_router_success(r, 0, -1, 20, 0, T0);
    sr_router_success(r, 0, NAN, 20, 0, T0);
    sr_router_success(r, 9, 500, 20, 0, T0); /* out of range */
    struct sr_target_state st;
    sr_router_state(r, 0, T0, &st);
    assert_near(st.ewma_ms, 20);
    assert_int_equal(st.successes, 0);
    sr_router_state(r, 9, T0, &st);
    assert_int_equal(st.successes, 0);
    assert_near(st.ewma_ms, 0);
}

/* ---- failures and ejection ----------------------------------------------------------------- */

static void fail_n(sr_router *r, size_t idx, int n, int64_t now)
{
    for (int i = 0; i < n; i++) {
        sr_router_failure(r, idx, now);
    }
}

static void test_eject_after_consecutive_failures(void **state)
{
    sr_router *r = *state;
    add(r, "a", SR_TARGET_IDC, 10, 100);
    add(r, "b", SR_TARGET_IDC, 50, 100);
    struct sr_workload w = workload(0, T0 + 60000);
    struct sr_target_state st;

    fail_n(r, 0, SR_ROUTER_EJECT_AFTER - 1, T0);
    sr_router_state(r, 0, T0, &st);
    assert_int_equal(st.consecutive_failures, SR_ROUTER_EJECT_AFTER - 1);
    assert_int_equal(st.ejected_until, 0);
    assert_true(cand_for(r, &w, T0, 0).feasible);

    sr_router_failure(r, 0, T0);
    sr_router_state(r, 0, T0, &st);
    assert_int_equal(st.failures, SR_ROUTER_EJECT_AFTER);
    assert_int_equal(st.consecutive_failures, 0);
    assert_int_equal(st.ejected_until, T0 + 2000);

    struct sr_candidate c[2];
    assert_int_equal(sr_router_rank(r, &w, T0 + 1000, c, 2), 2);
    assert_int_equal(c[0].target, 1);
    assert_true(c[0].feasible);
    assert_int_equal(c[1].target, 0);
    assert_false(c[1].feasible);
    assert_string_equal(c[1].why, "ejected after repeated failures for 1000 ms more");
    /* the prediction is still there, for explaining the decision */
    assert_near(c[1].predicted_ms, 10);

    assert_false(cand_for(r, &w, T0 + 1999, 0).feasible);
    /* back in at the end of the period */
    assert_int_equal(sr_router_rank(r, &w, T0 + 2000, c, 2), 2);
    assert_int_equal(c[0].target, 0);
    assert_true(c[0].feasible);
    assert_string_equal(c[0].why, "");
}

static void test_eject_period_doubles_and_caps(void **state)
{
    sr_router *r = *state;
    add(r, "a", SR_TARGET_IDC, 10, 100);
    static const int64_t periods[] = {2000, 4000, 8000, 16000, 32000, 60000, 60000, 60000};
    int64_t now = T0;
    struct sr_target_state st;
    for (size_t i = 0; i < sizeof(periods) / sizeof(periods[0]); i++) {
        fail_n(r, 0, SR_ROUTER_EJECT_AFTER, now);
        sr_router_state(r, 0, now, &st);
        assert_int_equal(st.ejected_until, now + periods[i]);
        now = st.ejected_until; /* the next chance */
    }
    assert_int_equal(st.failures, 8 * SR_ROUTER_EJECT_AFTER);

    /* a success resets the back-off to the base period */
    sr_router_success(r, 0, 10, 10, 0, now);
    fail_n(r, 0, SR_ROUTER_EJECT_AFTER, now);
    sr_router_state(r, 0, now, &st);
    assert_int_equal(st.ejected_until, now + 2000);
}

static void test_success_resets_consecutive_failures(void **state)
{
    sr_router *r = *state;
    add(r, "a", SR_TARGET_IDC, 10, 100);
    struct sr_target_state st;
    fail_n(r, 0, SR_ROUTER_EJECT_AFTER - 1, T0);
    sr_router_success(r, 0, 10, 10, 0, T0 + 1);
    fail_n(r, 0, SR_ROUTER_EJECT_AFTER - 1, T0 + 2);
    sr_router_state(r, 0, T0 + 2, &st);
    assert_int_equal(st.consecutive_failures, SR_ROUTER_EJECT_AFTER - 1);
    assert_int_equal(st.failures, 2 * (SR_ROUTER_EJECT_AFTER - 1));
    assert_int_equal(st.successes, 1);
    assert_int_equal(st.ejected_until, 0);
    struct sr_workload w = workload(0, T0 + 60000);
    assert_true(cand_for(r, &w, T0 + 2, 0).feasible);
    sr_router_failure(r, 9, T0); /* out of range: ignored */
}

/* ---- placements ------------------------------------------------------------------------- */

static void test_place_parse(void **state)
{
    (void)state;
    struct sr_workload w = workload(0, 0);
    static const struct {
        const char *v;
        sr_place_kind kind;
    } ok[] = {{"any", SR_PLACE_ANY},         {"", SR_PLACE_ANY},
              {"orbit", SR_PLACE_ORBIT},     {"ground", SR_PLACE_GROUND},
              {"target:a", SR_PLACE_TARGET}, {"target:sat-1.b_c", SR_PLACE_TARGET}};
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        w.place = (sr_place_kind)99;
        assert_int_equal(sr_place_parse(&w, ok[i].v), 0);
        assert_int_equal(w.place, ok[i].kind);
    }
    assert_int_equal(sr_place_parse(&w, "target:sat-1.b_c"), 0);
    assert_string_equal(w.place_target, "sat-1.b_c");
    assert_int_equal(sr_place_parse(&w, NULL), 0);
    assert_int_equal(w.place, SR_PLACE_ANY);
    assert_string_equal(w.place_target, "");

    char longest[7 + SR_TARGET_IDMAX + 1];
    memcpy(longest, "target:", 7);
    memset(longest + 7, 'x', SR_TARGET_IDMAX - 1);
    longest[7 + SR_TARGET_IDMAX - 1] = 0;
    assert_int_equal(sr_place_parse(&w, longest), 0);
    assert_int_equal(strlen(w.place_target), SR_TARGET_IDMAX - 1);

    static const char *bad[] = {"target:", "target",  "Orbit", "orbit ", " any",
                                "ANY",     "ground2", "sat",   "idc",    "target;a"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(sr_place_parse(&w, bad[i]), SR_ERR_PARSE);
    }
    longest[7 + SR_TARGET_IDMAX - 1] = 'x'; /* one character too many */
    longest[7 + SR_TARGET_IDMAX] = 0;
    assert_int_equal(sr_place_parse(&w, longest), SR_ERR_PARSE);
}

static void test_place_feasibility(void **state)
{
    sr_router *r = *state;
    add(r, "ground-1", SR_TARGET_IDC, 20, 100);
    add(r, "sat-1", SR_TARGET_SATELLITE, 40, 10);
    add(r, "ground-2", SR_TARGET_IDC, 30, 100);
    struct sr_workload w = workload(0, T0 + 60000);
    struct sr_candidate c[3];

    assert_int_equal(sr_place_parse(&w, "orbit"), 0);
    assert_int_equal(sr_router_rank(r, &w, T0, c, 3), 3);
    assert_int_equal(c[0].target, 1);
    assert_true(c[0].feasible);
    for (int i = 1; i < 3; i++) {
        assert_false(c[i].feasible);
        assert_string_equal(c[i].why, "placement 'orbit' excludes ground targets");
    }

    assert_int_equal(sr_place_parse(&w, "ground"), 0);
    assert_int_equal(sr_router_rank(r, &w, T0, c, 3), 3);
    assert_int_equal(c[0].target, 0);
    assert_int_equal(c[1].target, 2);
    assert_true(c[0].feasible && c[1].feasible);
    assert_int_equal(c[2].target, 1);
    assert_false(c[2].feasible);
    assert_string_equal(c[2].why, "placement 'ground' excludes satellites");

    assert_int_equal(sr_place_parse(&w, "target:ground-2"), 0);
    assert_int_equal(sr_router_rank(r, &w, T0, c, 3), 3);
    assert_int_equal(c[0].target, 2);
    assert_true(c[0].feasible);
    assert_false(c[1].feasible);
    assert_false(c[2].feasible);
    assert_string_equal(c[1].why, "not the requested target");

    assert_int_equal(sr_place_parse(&w, "target:nobody"), 0);
    assert_int_equal(sr_router_rank(r, &w, T0, c, 3), 3);
    for (int i = 0; i < 3; i++) {
        assert_false(c[i].feasible);
        assert_string_equal(c[i].why, "not the requested target");
    }

    assert_int_equal(sr_place_parse(&w, "any"), 0);
    assert_int_equal(sr_router_rank(r, &w, T0, c, 3), 3);
    for (int i = 0; i < 3; i++) {
        assert_true(c[i].feasible);
    }
    /* the requested target, ejected, is infeasible for that reason */
    fail_n(r, 2, SR_ROUTER_EJECT_AFTER, T0);
    assert_int_equal(sr_place_parse(&w, "target:ground-2"), 0);
    struct sr_candidate x = cand_for(r, &w, T0 + 500, 2);
    assert_false(x.feasible);
    assert_string_equal(x.why, "ejected after repeated failures for 1500 ms more");
}

/* ---- deadlines -------------------------------------------------------------------------- */

static void test_deadline(void **state)
{
    sr_router *r = *state;
    add(r, "a", SR_TARGET_IDC, 20, 100);
    struct sr_workload w = workload(50, T0 + 500); /* predicted 520 ms, 500 left */
    struct sr_candidate c = cand_for(r, &w, T0, 0);
    assert_false(c.feasible);
    assert_near(c.predicted_ms, 520);
    assert_string_equal(c.why, "predicted 520 ms exceeds the 500 ms left");

    w.deadline_ms = T0 + 520; /* exactly enough */
    c = cand_for(r, &w, T0, 0);
    assert_true(c.feasible);

    w.deadline_ms = T0 - 100; /* already past */
    c = cand_for(r, &w, T0, 0);
    assert_false(c.feasible);
    assert_string_equal(c.why, "predicted 520 ms exceeds the -100 ms left");
}

/* ---- ordering ---------------------------------------------------------------------------- */

static void test_order_feasible_first_by_cost_ties_by_index(void **state)
{
    sr_router *r = *state;
    add(r, "slow", SR_TARGET_IDC, 300, 100);   /* 0: infeasible (deadline) */
    add(r, "tie-a", SR_TARGET_IDC, 50, 100);   /* 1 */
    add(r, "fast", SR_TARGET_IDC, 10, 100);    /* 2 */
    add(r, "tie-b", SR_TARGET_IDC, 50, 100);   /* 3 */
    add(r, "slower", SR_TARGET_IDC, 400, 100); /* 4: infeasible */
    add(r, "tie-c", SR_TARGET_IDC, 50, 100);   /* 5 */
    struct sr_workload w = workload(0, T0 + 200);
    struct sr_candidate c[8];
    assert_int_equal(sr_router_rank(r, &w, T0, c, 8), 6);
    static const size_t want[] = {2, 1, 3, 5, 0, 4};
    for (int i = 0; i < 6; i++) {
        assert_int_equal(c[i].target, want[i]);
        assert_int_equal(c[i].feasible, i < 4);
    }
    /* ranking again gives the same order */
    assert_int_equal(sr_router_rank(r, &w, T0, c, 8), 6);
    for (int i = 0; i < 6; i++) {
        assert_int_equal(c[i].target, want[i]);
    }
}

static void test_rank_empty_and_zero_max(void **state)
{
    sr_router *r = *state;
    struct sr_workload w = workload(0, T0 + 1000);
    struct sr_candidate c[1];
    assert_int_equal(sr_router_rank(r, &w, T0, c, 1), 0);
    add(r, "a", SR_TARGET_IDC, 20, 100);
    assert_int_equal(sr_router_rank(r, &w, T0, c, 0), 0);
}

/* Regression: with more targets than |max|, only the first |max| targets were
 * considered, so a better target later in the list could never be chosen. */
static void test_rank_max_keeps_the_best(void **state)
{
    sr_router *r = *state;
    char id[16];
    for (int i = 0; i < 10; i++) {
        snprintf(id, sizeof(id), "t%d", i);
        /* latencies 100, 90, ..., 10: the best are last */
        assert_int_equal(add(r, id, SR_TARGET_IDC, 100 - 10 * i, 100), i);
    }
    struct sr_workload w = workload(0, T0 + 60000);
    struct sr_candidate c[3];
    assert_int_equal(sr_router_rank(r, &w, T0, c, 3), 3);
    assert_int_equal(c[0].target, 9);
    assert_int_equal(c[1].target, 8);
    assert_int_equal(c[2].target, 7);
    assert_near(c[0].predicted_ms, 10);

    /* a feasible target beats cheaper infeasible ones */
    w.place = SR_PLACE_TARGET;
    snprintf(w.place_target, sizeof(w.place_target), "t0");
    assert_int_equal(sr_router_rank(r, &w, T0, c, 3), 3);
    assert_int_equal(c[0].target, 0);
    assert_true(c[0].feasible);
    assert_int_equal(c[1].target, 9);
    assert_false(c[1].feasible);
    assert_int_equal(c[2].target, 8);

    /* ties keep the lowest indexes */
    sr_router *r2;
    assert_int_equal(sr_router_new(&r2), 0);
    for (int i = 0; i < 10; i++) {
        snprintf(id, sizeof(id), "u%d", i);
        assert_int_equal(add(r2, id, SR_TARGET_IDC, 10, 100), i);
    }
    w.place = SR_PLACE_ANY;
    assert_int_equal(sr_router_rank(r2, &w, T0, c, 3), 3);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(c[i].target, (size_t)i);
    }
    sr_router_free(r2);
}

/* ---- prediction error ----------------------------------------------------------------------- */

static void test_prediction_error(void **state)
{
    sr_router *r = *state;
    add(r, "a", SR_TARGET_IDC, 20, 100);
    struct sr_target_state st;
    sr_router_state(r, 0, T0, &st);
    assert_near(st.err_mean_ms, 0);
    assert_near(st.err_abs_ms, 0);

    /* the first error is taken as is */
    sr_router_success(r, 0, 120, 100, 0, T0);
    sr_router_state(r, 0, T0, &st);
    assert_near(st.err_mean_ms, 20);
    assert_near(st.err_abs_ms, 20);
    /* then an EWMA with alpha 0.1: err -20 */
    sr_router_success(r, 0, 80, 100, 0, T0 + 1000);
    sr_router_state(r, 0, T0, &st);
    assert_near(st.err_mean_ms, 16);
    assert_near(st.err_abs_ms, 20);
    /* err -50 */
    sr_router_success(r, 0, 100, 150, 0, T0 + 2000);
    sr_router_state(r, 0, T0, &st);
    assert_near(st.err_mean_ms, 9.4);
    assert_near(st.err_abs_ms, 23);
    assert_int_equal(st.successes, 3);
    assert_int_equal(st.failures, 0);
    /* failures do not move it */
    sr_router_failure(r, 0, T0 + 3000);
    sr_router_state(r, 0, T0, &st);
    assert_near(st.err_mean_ms, 9.4);
    assert_int_equal(st.failures, 1);
}

/* Federation: "sat@B" is sat seen through station B's passes. A store-and-
 * forward workload picks whichever view has the earlier pass; target:sat
 * allows both views; an offline view is never feasible and says why; the
 * explanation names the station. */
static void test_via_station_and_offline(void **state)
{
    sr_router *r = *state;
    struct sr_target_info local = info("sat", SR_TARGET_SATELLITE, 40, 10);
    struct sr_target_info remote = info("sat@B", SR_TARGET_SATELLITE, 40, 10);
    snprintf(remote.via_station, sizeof(remote.via_station), "B");
    assert_int_equal(sr_router_add_target(r, &local), 0);
    assert_int_equal(sr_router_add_target(r, &remote), 1);
    struct sr_pass_rec here = {.sat = "sat", .aos_ms = T0 + 3600000, .los_ms = T0 + 3900000};
    struct sr_pass_rec there = {.sat = "sat@B", .aos_ms = T0 + 60000, .los_ms = T0 + 360000};
    assert_int_equal(sr_router_set_passes(r, "sat", INT64_MIN, INT64_MAX, &here, 1), 0);
    assert_int_equal(sr_router_set_passes(r, "sat@B", INT64_MIN, INT64_MAX, &there, 1), 0);
    struct sr_workload w = workload(1, T0 + 86400000);
    w.store_and_forward = true;
    assert_int_equal(sr_place_parse(&w, "target:sat"), 0);
    struct sr_candidate c[4];
    assert_int_equal(sr_router_rank(r, &w, T0, c, 4), 2);
    assert_true(c[0].feasible && c[1].feasible);
    assert_int_equal(c[0].target, 1); /* B's pass comes first */
    assert_int_equal(c[0].up_aos_ms, T0 + 60000);
    sr_buf b;
    sr_buf_init(&b, 1 << 20);
    assert_int_equal(sr_explain_json(&b, r, &w, T0, c, 2), 0);
    assert_int_equal(sr_buf_terminate(&b), 0);
    assert_non_null(strstr((const char *)b.data, "\"target\":\"sat@B\""));
    assert_non_null(strstr((const char *)b.data, "\"via_station\":\"B\""));
    sr_buf_free(&b);

    assert_int_equal(sr_router_set_offline(r, 1, true), 0);
    assert_int_equal(sr_router_rank(r, &w, T0, c, 4), 2);
    assert_int_equal(c[0].target, 0);
    assert_false(c[1].feasible);
    assert_int_equal(c[1].why_code, SR_WHY_OFFLINE);
    assert_non_null(strstr(c[1].why, "station B"));
    assert_int_equal(sr_router_set_offline(r, 1, false), 0);
    assert_int_equal(sr_router_rank(r, &w, T0, c, 4), 2);
    assert_int_equal(c[0].target, 1);
    assert_int_equal(sr_router_set_offline(r, 7, true), SR_ERR_INVAL);
    /* target:sat@B names that view alone */
    assert_int_equal(sr_place_parse(&w, "target:sat@B"), 0);
    assert_int_equal(sr_router_rank(r, &w, T0, c, 4), 2);
    assert_true(c[0].feasible && c[0].target == 1 && !c[1].feasible);
    /* a prefix of it matches nothing */
    assert_int_equal(sr_place_parse(&w, "target:sat@"), 0);
    assert_int_equal(sr_router_rank(r, &w, T0, c, 4), 2);
    assert_false(c[0].feasible || c[1].feasible);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_add_target),
        T(test_add_target_duplicate),
        T(test_add_target_invalid),
        T(test_many_targets),
        T(test_predict_compute),
        T(test_predict_transfer),
        T(test_cost_inflight),
        T(test_ewma_first_observation_replaces_prior),
        T(test_ewma_peak_and_decay),
        T(test_ewma_relaxes_to_prior_when_unobserved),
        T(test_ewma_subtracts_compute),
        T(test_ewma_ignores_bad_observations),
        T(test_eject_after_consecutive_failures),
        T(test_eject_period_doubles_and_caps),
        T(test_success_resets_consecutive_failures),
        T(test_place_parse),
        T(test_place_feasibility),
        T(test_deadline),
        T(test_order_feasible_first_by_cost_ties_by_index),
        T(test_rank_empty_and_zero_max),
        T(test_rank_max_keeps_the_best),
        T(test_prediction_error),
        T(test_via_station_and_offline),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
