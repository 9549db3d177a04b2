/*
 * routing/registry.c: target validation, peak-EWMA against hand-computed
 * values, failures, ejection and its back-off, and prediction-error
 * statistics, read through sr_router_state and, where the ranking is what
 * uses them, through sr_router_rank. Pure: every time is a parameter, so all
 * numbers below are exact.
 */
#include "routing_test.h"

#define T0 1700000000000LL /* an arbitrary "now" in ms */

static double ewma(sr_router *r, size_t idx)
{
    struct sr_target_state st;
    sr_router_state(r, idx, T0, &st);
    return st.ewma_ms;
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
 * (SR_PRIOR_TAU_MS = 300 s in routing_int.h) for the time since the last one. */
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

/* An estimate nobody refreshes drifts back to the
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

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_add_target),
        T(test_add_target_duplicate),
        T(test_add_target_invalid),
        T(test_many_targets),
        T(test_ewma_first_observation_replaces_prior),
        T(test_ewma_peak_and_decay),
        T(test_ewma_relaxes_to_prior_when_unobserved),
        T(test_ewma_subtracts_compute),
        T(test_ewma_ignores_bad_observations),
        T(test_eject_after_consecutive_failures),
        T(test_eject_period_doubles_and_caps),
        T(test_success_resets_consecutive_failures),
        T(test_prediction_error),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
