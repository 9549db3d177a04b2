/*
 * routing/rank.c (with the predictions it ranks): the predicted-time model
 * and its cost, placements, deadlines, ordering and the number kept, and
 * federated views of one satellite. Pure: every time is a parameter, so all
 * numbers below are exact.
 */
#include "routing_test.h"

#define T0 1700000000000LL /* an arbitrary "now" in ms */

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
        T(test_predict_compute),
        T(test_predict_transfer),
        T(test_cost_inflight),
        T(test_place_parse),
        T(test_place_feasibility),
        T(test_deadline),
        T(test_order_feasible_first_by_cost_ties_by_index),
        T(test_rank_empty_and_zero_max),
        T(test_rank_max_keeps_the_best),
        T(test_via_station_and_offline),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
