/*
 * routing/predict.c (and the schedule, policy and explanations around it):
 * every component of the predicted completion time pinned against
 * hand-computed cases: a pass that ends mid-uplink, a result that waits for
 * the next pass, eclipse at execution time, a PV surplus window, data gravity,
 * reservations that stop a pass from being oversubscribed, the learned
 * margin, the pass index with many satellites, and schedules predicted from
 * elements.
 */
#include "routing_test.h"

#include "linkmodels/linkmodels.h"

#define T0 1800000000000LL

static struct sr_workload wl(double work, int64_t in, int64_t out, int64_t deadline)
{
    struct sr_workload w;
    memset(&w, 0, sizeof(w));
    w.work_gop = work;
    w.bytes_in = in;
    w.result_bytes = out;
    w.deadline_ms = deadline;
    w.store_and_forward = true;
    return w;
}

static struct sr_candidate cand(sr_router *r, const struct sr_workload *w, int64_t now,
                                const char *id)
{
    struct sr_candidate c[64];
    size_t n = sr_router_rank(r, w, now, c, 64);
    int idx = sr_router_find(r, id);
    for (size_t i = 0; i < n; i++) {
        if ((int)c[i].target == idx) {
            return c[i];
        }
    }
    fail_msg("%s not ranked", id);
    return c[0];
}

static void check_sum(const struct sr_candidate *c)
{
    assert_near(c->predicted_ms, c->fetch_ms + c->wait_ms + c->uplink_ms + c->light_up_ms +
                                     c->queue_ms + c->compute_ms + c->result_wait_ms +
                                     c->downlink_ms + c->light_down_ms);
}

/* ---- windows ----------------------------------------------------------------------------- */

/* The pass in progress ends 5 ms before the last byte would land: the uplink
 * is never started there; it waits for the next pass. */
static void test_pass_ends_mid_uplink(void **state)
{
    sr_router *r = *state;
    add(r, "s", SR_TARGET_SATELLITE, 40, 10);
    struct sr_pass_rec p[] = {pass("s", T0 - 5000, T0 + 10000, 1e5, 1e6, 5),
                              pass("s", T0 + 60000, T0 + 90000, 1e5, 1e6, 5)};
    assert_int_equal(sr_router_set_passes(r, "s", T0 - 86400000, T0 + 86400000, p, 2), 0);
    /* 1 MB at 100 kB/s = 10 s: T0 + 10 s + 5 ms light > LOS at T0 + 10 s */
    struct sr_workload w = wl(20, 1000000, 100000, T0 + 600000);
    struct sr_candidate c = cand(r, &w, T0, "s");
    assert_true(c.feasible);
    assert_near(c.wait_ms, 60000);
    assert_near(c.uplink_ms, 10000);
    assert_near(c.light_up_ms, 5);
    assert_near(c.queue_ms, 0);
    assert_near(c.compute_ms, 2000); /* 20 Gop at 10 Gop/s */
    assert_near(c.result_wait_ms, 0);
    assert_near(c.downlink_ms, 100); /* 100 kB at 1 MB/s */
    assert_near(c.light_down_ms, 5);
    assert_near(c.predicted_ms, 72110);
    check_sum(&c);
    assert_int_equal(c.up_aos_ms, T0 + 60000);
    assert_int_equal(c.down_aos_ms, T0 + 60000);
    assert_false(c.result_next_pass);

    /* 4 ms less of payload fits exactly: 999,500 B = 9995 ms, + 5 ms light = LOS */
    w.bytes_in = 999500;
    c = cand(r, &w, T0, "s");
    assert_int_equal(c.up_aos_ms, T0 - 5000);
    assert_near(c.wait_ms, 0);
    assert_near(c.uplink_ms, 9995);

    /* without store-and-forward the caller cannot wait for the next pass */
    w.bytes_in = 1000000;
    w.store_and_forward = false;
    c = cand(r, &w, T0, "s");
    assert_false(c.feasible);
    assert_int_equal(c.why_code, SR_WHY_WAIT);
}

/* Compute ends after LOS: the result waits for the next pass. */
static void test_result_waits_for_next_pass(void **state)
{
    sr_router *r = *state;
    add(r, "s", SR_TARGET_SATELLITE, 40, 10);
    struct sr_pass_rec p[] = {pass("s", T0, T0 + 10000, 1e6, 1e5, 5),
                              pass("s", T0 + 100000, T0 + 110000, 1e6, 1e5, 5)};
    assert_int_equal(sr_router_set_passes(r, "s", T0 - 1, T0 + 86400000, p, 2), 0);
    struct sr_workload w = wl(100, 1000000, 200000, T0 + 200000);
    struct sr_candidate c = cand(r, &w, T0, "s");
    assert_true(c.feasible);
    assert_near(c.wait_ms, 0);
    assert_near(c.uplink_ms, 1000);
    assert_near(c.light_up_ms, 5);
    assert_near(c.compute_ms, 10000);
    /* compute ends at T0 + 11005, after LOS (T0 + 10000): next AOS T0 + 100000 */
    assert_near(c.result_wait_ms, 100000 - 11005);
    assert_near(c.downlink_ms, 2000);
    assert_near(c.light_down_ms, 5);
    assert_near(c.predicted_ms, 102005);
    check_sum(&c);
    assert_true(c.result_next_pass);
    assert_int_equal(c.up_aos_ms, T0);
    assert_int_equal(c.down_aos_ms, T0 + 100000);

    /* a deadline before the next pass makes it infeasible, with the numbers */
    w.deadline_ms = T0 + 100000;
    c = cand(r, &w, T0, "s");
    assert_false(c.feasible);
    assert_string_equal(c.why, "predicted 102005 ms exceeds the 100000 ms left");

    /* synchronous callers cannot take a result from a later pass */
    w.deadline_ms = T0 + 200000;
    w.store_and_forward = false;
    c = cand(r, &w, T0, "s");
    assert_false(c.feasible);
    assert_string_equal(c.why, "the result would come down in a later pass (LOS in 10000 ms)");

    /* no pass at all after the last one: no window */
    w.store_and_forward = true;
    c = cand(r, &w, T0 + 120000, "s");
    assert_false(c.feasible);
    assert_int_equal(c.why_code, SR_WHY_NO_WINDOW);
    assert_near(c.predicted_ms, -1);
}

/* ---- energy ------------------------------------------------------------------------------- */

static void test_eclipse_at_execution(void **state)
{
    sr_router *r = *state;
    add(r, "s", SR_TARGET_SATELLITE, 40, 10);
    struct sr_energy_profile e = {.joules_per_gop = 2, .battery_cost = 0.5};
    assert_int_equal(sr_router_set_energy(r, 0, &e), 0);
    /* the compute starts at now + 20 ms (half the 40 ms prior RTT) */
    const int64_t iv[][2] = {{T0, T0 + 1000}, {T0 + 5000, T0 + 6000}};
    assert_int_equal(sr_router_set_eclipses(r, 0, iv, 2), 0);
    struct sr_workload w = wl(36, 0, 0, T0 + 600000);
    struct sr_candidate c = cand(r, &w, T0, "s");
    /* 36 Gop x 2 J = 72 J = 2e-5 kWh, from the battery at 0.5 per kWh */
    assert_true(c.eclipse);
    assert_near(c.energy_j, 72);
    assert_near(c.energy_price, 72 / 3.6e6 * 0.5);
    assert_near(c.carbon_g, 0);
    assert_near(c.green_frac, 0);
    assert_near(c.cost, 20 + 3600 + 20 + 0.072 + 1000 * 72 / 3.6e6 * 0.5);
    /* at now = T0 + 990 the compute starts at T0 + 1010: sunlit, free */
    c = cand(r, &w, T0 + 990, "s");
    assert_false(c.eclipse);
    assert_near(c.energy_price, 0);
    assert_near(c.green_frac, 1);
    /* the second interval, its exit exclusive */
    assert_true(cand(r, &w, T0 + 4980, "s").eclipse);
    assert_false(cand(r, &w, T0 + 5980, "s").eclipse);
    /* overlapping or inverted intervals are refused */
    const int64_t bad[][2] = {{T0, T0 + 1000}, {T0 + 500, T0 + 6000}};
    assert_int_equal(sr_router_set_eclipses(r, 0, bad, 2), SR_ERR_INVAL);
    const int64_t inv[][2] = {{T0 + 10, T0}};
    assert_int_equal(sr_router_set_eclipses(r, 0, inv, 1), SR_ERR_INVAL);
}

static void test_pv_surplus_window(void **state)
{
    sr_router *r = *state;
    add(r, "pv", SR_TARGET_IDC, 20, 100);
    struct sr_energy_profile e = {
        .joules_per_gop = 1, .pue = 1.08, .price_per_kwh = 0.2, .carbon_g_per_kwh = 400, .pv = 1};
    assert_int_equal(sr_router_set_energy(r, 0, &e), 0);
    /* draw = 100 Gop/s x 1 J x 1.08 = 108 W */
    const struct sr_energy_point pts[] = {
        {T0, NAN, NAN, 0},
        {T0 + 3600000, NAN, NAN, 200},
        {T0 + 7200000, 0.3, 500, 54},
    };
    assert_int_equal(sr_router_set_energy_series(r, 0, pts, 3), 0);
    struct sr_workload w = wl(1000, 0, 0, T0 + 86400000);
    /* 1000 Gop x 1 J x 1.08 = 1080 J = 3e-4 kWh */
    struct sr_candidate c = cand(r, &w, T0, "pv");
    assert_near(c.energy_j, 1080);
    assert_near(c.green_frac, 0);
    assert_near(c.energy_price, 3e-4 * 0.2);
    assert_near(c.carbon_g, 3e-4 * 400);
    /* compute starts at now + 10 ms: inside the surplus window, all green */
    c = cand(r, &w, T0 + 3600000 - 10, "pv");
    assert_near(c.green_frac, 1);
    assert_near(c.energy_price, 0);
    assert_near(c.carbon_g, 0);
    /* 11 ms earlier it is still the grid */
    assert_near(cand(r, &w, T0 + 3600000 - 11, "pv").green_frac, 0);
    /* half the draw covered; the rest at the forecast's price and carbon */
    c = cand(r, &w, T0 + 8000000, "pv");
    assert_near(c.green_frac, 0.5);
    assert_near(c.energy_price, 3e-4 * 0.5 * 0.3);
    assert_near(c.carbon_g, 3e-4 * 0.5 * 500);
    /* before the series: the profile's constants */
    assert_near(cand(r, &w, T0 - 100000, "pv").energy_price, 3e-4 * 0.2);
    /* bad series are refused and change nothing */
    const struct sr_energy_point unsorted[] = {{T0, NAN, NAN, 0}, {T0, NAN, NAN, 1}};
    assert_int_equal(sr_router_set_energy_series(r, 0, unsorted, 2), SR_ERR_INVAL);
    const struct sr_energy_point neg[] = {{T0, -1, NAN, 0}};
    assert_int_equal(sr_router_set_energy_series(r, 0, neg, 1), SR_ERR_INVAL);
    assert_near(cand(r, &w, T0 + 8000000, "pv").green_frac, 0.5);
}

/* Raising the energy weight moves work to the efficient, slower target. */
static void test_energy_weight_moves_work(void **state)
{
    sr_router *r = *state;
    add(r, "near", SR_TARGET_IDC, 20, 100);
    add(r, "green", SR_TARGET_IDC, 120, 100);
    struct sr_energy_profile grid = {
        .joules_per_gop = 2, .pue = 1.6, .price_per_kwh = 0.3, .carbon_g_per_kwh = 500};
    struct sr_energy_profile pv = {
        .joules_per_gop = 1, .pue = 1.08, .price_per_kwh = 0.1, .carbon_g_per_kwh = 50};
    assert_int_equal(sr_router_set_energy(r, 0, &grid), 0);
    assert_int_equal(sr_router_set_energy(r, 1, &pv), 0);
    struct sr_workload w = wl(100, 0, 0, T0 + 60000);
    struct sr_candidate c[2];
    assert_int_equal(sr_router_rank(r, &w, T0, c, 2), 2);
    assert_int_equal(c[0].target, 0);
    /* near: 1020 ms + 320 J (0.32 kJ) + price 320/3.6e6*0.3*1000 + carbon 320/3.6e6*500 */
    assert_near(c[0].cost, 1020 + 0.32 + 320 / 3.6e6 * 0.3 * 1000 + 320 / 3.6e6 * 500);
    struct sr_policy pol;
    sr_router_get_policy(r, &pol);
    pol.energy_weight = 1000;
    assert_int_equal(sr_router_set_policy(r, &pol), 0);
    assert_int_equal(sr_router_rank(r, &w, T0, c, 2), 2);
    assert_int_equal(c[0].target, 1);
    pol.energy_weight = -1;
    assert_int_equal(sr_router_set_policy(r, &pol), SR_ERR_INVAL);
}

/* ---- data gravity ------------------------------------------------------------------------ */

static void test_data_gravity(void **state)
{
    sr_router *r = *state;
    add(r, "eo", SR_TARGET_SATELLITE, 40, 10);
    struct sr_target_info g;
    memset(&g, 0, sizeof(g));
    snprintf(g.id, sizeof(g.id), "g");
    g.kind = SR_TARGET_IDC;
    g.prior_rtt_ms = 20;
    g.gops = 100;
    g.uplink_bps = 1e7;
    assert_int_equal(sr_router_add_target(r, &g), 1);
    struct sr_pass_rec p = pass("eo", T0, T0 + 600000, 5e4, 1e6, 5);
    assert_int_equal(sr_router_set_passes(r, "eo", T0 - 1, T0 + 86400000, &p, 1), 0);
    struct sr_workload w = wl(10, 50000000, 1000, T0 + 600000);
    snprintf(w.data_at, sizeof(w.data_at), "eo");
    /* onboard: nothing to upload; 1 s compute; 1 ms down */
    struct sr_candidate c = cand(r, &w, T0, "eo");
    if (!c.feasible) {
        fail_msg("why %d %s", c.why_code, c.why);
    }
    assert_near(c.fetch_ms, 0);
    assert_near(c.uplink_ms, 0);
    assert_near(c.compute_ms, 1000);
    assert_near(c.downlink_ms, 1);
    assert_near(c.predicted_ms, 5 + 1000 + 1 + 5);
    /* on the ground: 50 MB down at 1 MB/s + 5 ms light, then up at 10 MB/s */
    c = cand(r, &w, T0, "g");
    assert_near(c.fetch_ms, 50005);
    assert_near(c.uplink_ms, 5000);
    assert_near(c.light_up_ms, 10);
    assert_near(c.compute_ms, 100);
    assert_near(c.predicted_ms, 50005 + 5000 + 10 + 100 + 10);
    check_sum(&c);
    /* without the data hint the satellite must take 50 MB up at 50 kB/s: no pass can */
    w.data_at[0] = 0;
    c = cand(r, &w, T0, "eo");
    assert_false(c.feasible);
    assert_int_equal(c.why_code, SR_WHY_NO_WINDOW);
}

/* ---- reservations ------------------------------------------------------------------------- */

static void test_reservations_do_not_oversubscribe(void **state)
{
    sr_router *r = *state;
    add(r, "s", SR_TARGET_SATELLITE, 40, 10);
    struct sr_pass_rec p[] = {pass("s", T0, T0 + 10000, 1e5, 1e6, 0),
                              pass("s", T0 + 50000, T0 + 60000, 1e5, 1e6, 0)};
    assert_int_equal(sr_router_set_passes(r, "s", T0 - 1, T0 + 86400000, p, 2), 0);
    /* room at T0: 1e5 B/s x (10000 - 20 ms light) = 998,000 bytes */
    struct sr_workload w = wl(0, 600000, 0, T0 + 600000);
    struct sr_candidate c = cand(r, &w, T0, "s");
    assert_int_equal(c.up_aos_ms, T0);
    assert_int_equal(sr_router_commit(r, &w, &c, T0), 0);
    double up = 0, down = 0;
    assert_int_equal(sr_router_pass_reserved(r, "s", T0 + 1, &up, &down), 0);
    assert_near(up, 600000);
    /* 398,000 left: the next 600 kB goes to the next pass */
    c = cand(r, &w, T0, "s");
    assert_int_equal(c.up_aos_ms, T0 + 50000);
    assert_near(c.wait_ms, 50000);
    /* 390 kB still fits in the first */
    w.bytes_in = 390000;
    assert_int_equal(cand(r, &w, T0, "s").up_aos_ms, T0);
    /* re-feeding the same pass keeps its reservations */
    assert_int_equal(sr_router_set_passes(r, "s", T0 - 1, T0 + 86400000, p, 2), 0);
    assert_int_equal(sr_router_pass_reserved(r, "s", T0 + 1, &up, &down), 0);
    assert_near(up, 600000);
    assert_int_equal(sr_router_pass_reserved(r, "s", T0 + 20000, &up, &down), SR_ERR_NOTFOUND);
}

static void test_commit_builds_queue(void **state)
{
    sr_router *r = *state;
    add(r, "a", SR_TARGET_IDC, 20, 100);
    struct sr_workload w = wl(100, 0, 0, T0 + 600000); /* 1 s compute */
    struct sr_candidate c = cand(r, &w, T0, "a");
    assert_near(c.queue_ms, 0);
    assert_int_equal(sr_router_commit(r, &w, &c, T0), 0);
    /* the compute committed ends at T0 + 10 + 1000; a new one arrives at T0 + 10 */
    c = cand(r, &w, T0, "a");
    assert_near(c.queue_ms, 1000);
    assert_near(c.predicted_ms, 10 + 1000 + 1000 + 10);
}

/* ---- margin -------------------------------------------------------------------------------- */

static void test_margin_from_prediction_error(void **state)
{
    sr_router *r = *state;
    add(r, "a", SR_TARGET_IDC, 100, 100);
    struct sr_workload w = wl(0, 0, 0, T0 + 150);
    struct sr_candidate c = cand(r, &w, T0, "a");
    assert_true(c.feasible);
    assert_near(c.margin_ms, 0);
    /* observed 120 ms for a 100 ms prediction: err 20 -> margin 2 x 20 + 20 = 60 */
    sr_router_success(r, 0, 100, 80, 0, T0);
    c = cand(r, &w, T0, "a");
    assert_near(c.predicted_ms, 100);
    assert_near(c.margin_ms, 60);
    assert_false(c.feasible);
    assert_string_equal(c.why, "predicted 100 ms + margin 60 ms exceeds the 150 ms left");
    struct sr_policy pol;
    sr_router_get_policy(r, &pol);
    pol.margin_k = 0;
    pol.margin_ms = 5;
    assert_int_equal(sr_router_set_policy(r, &pol), 0);
    c = cand(r, &w, T0, "a");
    assert_near(c.margin_ms, 25);
    assert_true(c.feasible);
}

/* A failure makes a target dearer (expected retry), a success heals it. */
static void test_failure_rate_in_cost(void **state)
{
    sr_router *r = *state;
    add(r, "a", SR_TARGET_IDC, 20, 100);
    struct sr_workload w = wl(0, 0, 0, T0 + 60000);
    assert_near(cand(r, &w, T0, "a").cost, 20);
    sr_router_failure(r, 0, T0);
    assert_near(cand(r, &w, T0, "a").cost, 20 * 1.2);
    sr_router_failure(r, 0, T0);
    assert_near(cand(r, &w, T0, "a").cost, 20 * 1.36);
    /* after a success: 0.36 x 0.8 = 0.288 (the EWMA of latency also moves) */
    sr_router_success(r, 0, 20, 20, 0, T0);
    assert_near(cand(r, &w, T0, "a").cost, 20 * 1.288);
}

/* ---- the pass index ------------------------------------------------------------------------ */

static void test_index_many_satellites(void **state)
{
    sr_router *r = *state;
    char id[32];
    /* 2000 satellites, each with passes every 90 minutes, staggered; only a
     * few are in view at T0. One of them, "best", has a long pass and fast
     * compute. */
    for (int i = 0; i < 2000; i++) {
        snprintf(id, sizeof(id), "sat%d", i);
        assert_int_equal(add(r, id, SR_TARGET_SATELLITE, 40, i == 1234 ? 1000 : 10), i);
        struct sr_pass_rec p[16];
        for (int k = 0; k < 16; k++) {
            int64_t aos = T0 - 3600000 + (int64_t)k * 5400000 + (int64_t)i * 2700;
            p[k] = pass(id, aos, aos + 300000, 1e6, 1e6, 5);
        }
        assert_int_equal(sr_router_set_passes(r, id, T0 - 86400000, T0 + 86400000, p, 16), 0);
    }
    add(r, "ground", SR_TARGET_IDC, 30, 100);
    struct sr_workload w = wl(100, 1000, 1000, T0 + 3000);
    struct sr_candidate c[4];
    /* sat1234 is in view at T0 (AOS T0 - 268.2 s, LOS T0 + 31.8 s), among
     * about 110 others. It would finish in 1 + 5 + 100 + 1 + 5 = 112 ms. */
    struct sr_pass_rec pr[4];
    assert_int_equal(sr_router_passes(r, "sat1234", T0, T0 + 1, pr, 4), 1);
    assert_int_equal(pr[0].los_ms, T0 + 31800);
    /* The index hands the decision the max_windows (16) satellites in view
     * with the latest LOS; sat1234 sets soon, so it is not among them and the
     * ground target wins. That is the documented trade: bounded cost per
     * decision over an exhaustive look. */
    assert_int_equal(sr_router_rank(r, &w, T0, c, 4), 4);
    assert_string_equal(sr_router_target(r, c[0].target)->id, "ground");
    /* With a wider look it is found. */
    struct sr_policy pol;
    sr_router_get_policy(r, &pol);
    pol.max_windows = 200;
    assert_int_equal(sr_router_set_policy(r, &pol), 0);
    assert_int_equal(sr_router_rank(r, &w, T0, c, 4), 4);
    assert_string_equal(sr_router_target(r, c[0].target)->id, "sat1234");
    assert_near(c[0].predicted_ms, 112);
    /* passes(NULL) lists every satellite's passes by AOS */
    struct sr_pass_rec all[64];
    size_t total = sr_router_passes(r, NULL, T0, T0 + 600000, all, 64);
    assert_true(total > 64);
    for (size_t i = 1; i < 64; i++) {
        assert_true(all[i - 1].aos_ms <= all[i].aos_ms);
        assert_true(all[i].los_ms > T0);
    }
    assert_true(sr_router_pass_bytes(r) <= 200);
}

static void test_index_finds_in_view_satellite(void **state)
{
    sr_router *r = *state;
    char id[32];
    for (int i = 0; i < 500; i++) {
        snprintf(id, sizeof(id), "s%d", i);
        add(r, id, SR_TARGET_SATELLITE, 40, 10);
        /* everyone's pass is tomorrow, except s321's, now */
        int64_t aos = i == 321 ? T0 - 1000 : T0 + 86400000 + i * 1000;
        struct sr_pass_rec p = pass(id, aos, aos + 600000, 1e6, 1e6, 4);
        assert_int_equal(sr_router_set_passes(r, id, T0 - 86400000, T0 + 3 * 86400000, &p, 1), 0);
    }
    struct sr_workload w = wl(10, 1000, 1000, T0 + 10000);
    struct sr_candidate c[2];
    assert_int_equal(sr_router_rank(r, &w, T0, c, 2), 2);
    assert_string_equal(sr_router_target(r, c[0].target)->id, "s321");
    assert_true(c[0].feasible);
    assert_near(c[0].predicted_ms, 1 + 4 + 1000 + 1 + 4);
    assert_false(c[1].feasible);
}

static void test_set_passes_semantics(void **state)
{
    sr_router *r = *state;
    struct sr_pass_rec p[] = {pass("x", T0, T0 + 1000, 0, 0, 0),
                              pass("x", T0 + 5000, T0 + 6000, 0, 0, 0),
                              pass("x", T0 + 9000, T0 + 9500, 0, 0, 0)};
    /* satellites the router does not route to may still have schedules */
    assert_int_equal(sr_router_set_passes(r, "x", T0 - 1, T0 + 10000, p, 3), 0);
    struct sr_pass_rec out[4];
    assert_int_equal(sr_router_passes(r, "x", T0, T0 + 10000, out, 4), 3);
    assert_string_equal(out[0].source, "test");
    /* replace what overlaps [T0 + 4000, T0 + 7000) only */
    struct sr_pass_rec q = pass("x", T0 + 5500, T0 + 6500, 0, 0, 0);
    assert_int_equal(sr_router_set_passes(r, "x", T0 + 4000, T0 + 7000, &q, 1), 0);
    assert_int_equal(sr_router_passes(r, "x", T0, T0 + 10000, out, 4), 3);
    assert_int_equal(out[1].aos_ms, T0 + 5500);
    assert_int_equal(sr_router_passes(r, NULL, T0, T0 + 10000, out, 4), 3);
    assert_int_equal(out[2].aos_ms, T0 + 9000);
    /* all or nothing */
    struct sr_pass_rec bad[] = {pass("x", T0, T0 + 10, 0, 0, 0), pass("y", T0, T0 + 10, 0, 0, 0)};
    assert_int_equal(sr_router_set_passes(r, "x", T0 - 1, T0 + 10000, bad, 2), SR_ERR_INVAL);
    bad[1] = pass("x", T0 + 10, T0 + 10, 0, 0, 0);
    assert_int_equal(sr_router_set_passes(r, "x", T0 - 1, T0 + 10000, bad, 2), SR_ERR_INVAL);
    assert_int_equal(sr_router_passes(r, "x", T0, T0 + 10000, out, 4), 3);
    /* a target added later picks up its schedule */
    assert_int_equal(add(r, "x", SR_TARGET_SATELLITE, 40, 10), 0);
    struct sr_workload w = wl(0, 0, 0, T0 + 100000);
    struct sr_candidate c = cand(r, &w, T0 + 2000, "x");
    assert_near(c.wait_ms, 3500);
    /* the whole time line, as the feeds part asks for it */
    assert_int_equal(sr_router_passes(r, NULL, INT64_MIN, INT64_MAX, out, 4), 3);
    assert_int_equal(sr_router_passes(r, "x", INT64_MIN, INT64_MAX, out, 4), 3);
    assert_int_equal(sr_router_set_passes(r, "x", INT64_MIN, INT64_MAX, p, 3), 0);
    assert_int_equal(sr_router_passes(r, NULL, INT64_MIN, INT64_MAX, out, 4), 3);
    /* clearing a window */
    assert_int_equal(sr_router_set_passes(r, "x", T0 - 1, T0 + 100000, NULL, 0), 0);
    assert_int_equal(sr_router_passes(r, "x", T0 - 1, T0 + 100000, out, 4), 0);
}

/* ---- explanations ---------------------------------------------------------------------------- */

static void test_explain(void **state)
{
    sr_router *r = *state;
    add(r, "a", SR_TARGET_IDC, 20, 100);
    add(r, "b", SR_TARGET_IDC, 50, 100);
    add(r, "s", SR_TARGET_SATELLITE, 40, 10);
    struct sr_pass_rec p = pass("s", T0 + 100000, T0 + 200000, 1e6, 1e6, 5);
    assert_int_equal(sr_router_set_passes(r, "s", T0 - 1, T0 + 300000, &p, 1), 0);
    struct sr_workload w = wl(10, 1000, 1000, T0 + 5000);
    struct sr_candidate c[3];
    assert_int_equal(sr_router_rank(r, &w, T0, c, 3), 3);
    sr_buf b;
    sr_buf_init(&b, 1 << 20);
    assert_int_equal(sr_explain_json(&b, r, &w, T0, c, 3), 0);
    assert_int_equal(sr_buf_terminate(&b), 0);
    const char *j = (const char *)b.data;
    if (getenv("SR_TEST_VERBOSE")) {
        puts(j);
    }
    assert_non_null(strstr(j, "\"choice\":\"a\""));
    assert_non_null(strstr(j, "\"compute_ms\":100"));
    assert_non_null(strstr(j, "\"why\":\"higher cost than a (150.0 > 120.0): +30 ms"));
    assert_non_null(strstr(j, "\"reason\":\"deadline\""));
    assert_non_null(strstr(j, "\"uplink_aos\":\"2027-01-15T08:01:40.000Z\""));
    sr_buf_reset(&b);
    assert_int_equal(sr_explain_text(&b, r, &w, T0, c, 3), 0);
    assert_int_equal(sr_buf_terminate(&b), 0);
    assert_non_null(strstr((const char *)b.data, "choice: a\n"));
    sr_buf_free(&b);
}

/* ---- schedules from elements ----------------------------------------------------------------- */

static void test_orbit_schedule(void **state)
{
    sr_router *r = *state;
    add(r, "leo", SR_TARGET_SATELLITE, 40, 10);
    sr_station st;
    assert_int_equal(sr_station_init(&st, 48.85, 2.35, 35), 0);
    sr_elements e;
    assert_int_equal(sr_synth_overhead(&e, &st, T0 + 600000, 550, 53, 1, 90001), 0);
    sr_link_cfg link = {
        .freq_hz = 8e9, .eirp_dbw = 20, .gt_dbk = 30, .symbol_rate = 10e6, .min_el_deg = 10};
    assert_int_equal(sr_router_set_orbit(r, 0, &e, &st, 10, &link, &link, T0, T0 + 86400000), 0);
    struct sr_pass_rec p[16];
    size_t n = sr_router_passes(r, "leo", T0, T0 + 86400000, p, 16);
    assert_true(n >= 2 && n <= 16);
    assert_true(p[0].aos_ms < T0 + 600000 && p[0].los_ms > T0 + 600000);
    assert_string_equal(p[0].source, "predicted");
    /* light time at the mask: 550 km up, 10 degrees -> about 1800 km, 6 ms */
    assert_true(p[0].light_ms > 4 && p[0].light_ms < 8);
    assert_true(p[0].downlink_bps > 0);
    /* in the pass the satellite is reachable now; before it, not */
    struct sr_workload w = wl(1, 100, 100, T0 + 3600000);
    struct sr_candidate c = cand(r, &w, T0 + 600000, "leo");
    assert_true(c.feasible);
    assert_near(c.wait_ms, 0);
    c = cand(r, &w, p[0].aos_ms - 60000, "leo");
    assert_near(c.wait_ms, 60000);
    assert_int_equal(sr_router_set_orbit(r, 0, &e, &st, 10, NULL, NULL, T0 + 1, T0), SR_ERR_INVAL);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_pass_ends_mid_uplink),
        T(test_result_waits_for_next_pass),
        T(test_eclipse_at_execution),
        T(test_pv_surplus_window),
        T(test_energy_weight_moves_work),
        T(test_data_gravity),
        T(test_reservations_do_not_oversubscribe),
        T(test_commit_builds_queue),
        T(test_margin_from_prediction_error),
        T(test_failure_rate_in_cost),
        T(test_index_many_satellites),
        T(test_index_finds_in_view_satellite),
        T(test_set_passes_semantics),
        T(test_explain),
        T(test_orbit_schedule),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
