/*
 * routing/schedule.c: operator schedules beat predictions (sr_schedule_merge),
 * with known answers at the edges: a prediction overlapping an operator pass
 * or window is dropped whole, one touching it is kept. The pass store and its
 * index are pinned through the decisions that use them, in test_predict.c.
 */
#include "routing_test.h"

#define T0 1800000000000LL

static struct sr_pass_rec op(int64_t aos, int64_t los)
{
    struct sr_pass_rec p = pass("sat", aos, los, 2e5, 1e6, 4);
    snprintf(p.source, sizeof(p.source), "json");
    return p;
}

static struct sr_pass_rec pred(int64_t aos, int64_t los)
{
    struct sr_pass_rec p = pass("sat", aos, los, 0, 0, 3.5);
    p.max_el_deg = 30;
    snprintf(p.source, sizeof(p.source), "predicted");
    return p;
}

static void test_operator_beats_prediction(void **state)
{
    (void)state;
    /* given out of order: the result is sorted by AOS */
    const struct sr_pass_rec ops[] = {op(T0 + 10000, T0 + 11000), op(T0 + 1000, T0 + 2000)};
    /* a span an operator covered with no pass left in it (a cancelled contact),
     * and another */
    const int64_t win[][2] = {{T0 + 20000, T0 + 30000}, {T0 + 40000, T0 + 45000}};
    const struct sr_pass_rec preds[] = {
        pred(T0, T0 + 500),           /* before everything: kept */
        pred(T0 + 1500, T0 + 2500),   /* overlaps an operator pass: dropped, not clipped */
        pred(T0 + 2500, T0 + 3000),   /* after it: kept */
        pred(T0 + 10500, T0 + 10600), /* inside an operator pass: dropped */
        pred(T0 + 19000, T0 + 20000), /* LOS at a window's start: kept */
        pred(T0 + 25000, T0 + 26000), /* inside a window: dropped */
        pred(T0 + 29000, T0 + 30500), /* across a window's end: dropped whole */
        pred(T0 + 45000, T0 + 46000), /* AOS at a window's end: kept */
        pred(T0 + 39000, T0 + 41000), /* across a window's start: dropped whole */
        pred(T0 + 50000, T0 + 51000), /* after everything: kept */
    };
    size_t nops = sizeof(ops) / sizeof(ops[0]), npred = sizeof(preds) / sizeof(preds[0]);
    struct sr_pass_rec *out = calloc(nops + npred, sizeof(*out));
    assert_non_null(out);
    size_t n = sr_schedule_merge(out, ops, nops, win, 2, preds, npred);
    static const struct {
        int64_t aos, los;
        const char *source;
    } want[] = {
        {T0, T0 + 500, "predicted"},           {T0 + 1000, T0 + 2000, "json"},
        {T0 + 2500, T0 + 3000, "predicted"},   {T0 + 10000, T0 + 11000, "json"},
        {T0 + 19000, T0 + 20000, "predicted"}, {T0 + 45000, T0 + 46000, "predicted"},
        {T0 + 50000, T0 + 51000, "predicted"},
    };
    assert_int_equal(n, sizeof(want) / sizeof(want[0]));
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(out[i].aos_ms, want[i].aos);
        assert_int_equal(out[i].los_ms, want[i].los);
        assert_string_equal(out[i].source, want[i].source);
        assert_string_equal(out[i].sat, "sat");
    }
    /* records are copied whole: the operator's rates, the prediction's elevation */
    assert_near(out[1].uplink_bps, 2e5);
    assert_near(out[1].light_ms, 4);
    assert_near(out[0].max_el_deg, 30);
    assert_near(out[0].light_ms, 3.5);
    assert_int_equal(out[0].tca_ms, T0 + 250);
    free(out);
}

static void test_merge_one_side_empty(void **state)
{
    (void)state;
    const struct sr_pass_rec preds[] = {pred(T0 + 5000, T0 + 6000), pred(T0, T0 + 1000)};
    const struct sr_pass_rec ops[] = {op(T0 + 3000, T0 + 4000)};
    struct sr_pass_rec out[3];
    /* no operator schedule: every prediction, by AOS */
    assert_int_equal(sr_schedule_merge(out, NULL, 0, NULL, 0, preds, 2), 2);
    assert_int_equal(out[0].aos_ms, T0);
    assert_int_equal(out[1].aos_ms, T0 + 5000);
    /* no prediction: the operator's passes */
    assert_int_equal(sr_schedule_merge(out, ops, 1, NULL, 0, NULL, 0), 1);
    assert_string_equal(out[0].source, "json");
    /* nothing at all */
    assert_int_equal(sr_schedule_merge(out, NULL, 0, NULL, 0, NULL, 0), 0);
    /* a window covering all time leaves the operator's passes alone */
    const int64_t all[][2] = {{INT64_MIN, INT64_MAX}};
    assert_int_equal(sr_schedule_merge(out, ops, 1, all, 1, preds, 2), 1);
    assert_int_equal(out[0].aos_ms, T0 + 3000);
    /* a window alone (every contact cancelled) clears what it covers */
    const int64_t early[][2] = {{T0 - 1000, T0 + 2000}};
    assert_int_equal(sr_schedule_merge(out, NULL, 0, early, 1, preds, 2), 1);
    assert_int_equal(out[0].aos_ms, T0 + 5000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_operator_beats_prediction),
        cmocka_unit_test(test_merge_one_side_empty),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
