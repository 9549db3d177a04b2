/*
 * routing/due.c: the spool's order of dispatch, with no SQLite and no event
 * loop: earliest deadline first, one at a time per target, later deadlines
 * for a target waiting behind an earlier one that is about to go, and the
 * caller's capacity stopping the walk.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "routing/routing.h"

#define NOW 1800000000000LL

/* What the fake start callback saw and says. */
struct run {
    const char *started[64]; /* the names, in the order start() was called */
    size_t n;
    int refuse_from; /* start() answers 0 from this call on (-1: never) */
    int stop_after;  /* start() answers -1 once this many started (-1: never) */
    size_t ok;
};

struct wl {
    const char *name;
    int64_t deadline, wait_until;
    const char *target;
};

static int start(void *arg, struct sr_due *d)
{
    struct run *r = arg;
    if (r->stop_after >= 0 && (int)r->ok >= r->stop_after) {
        return -1;
    }
    const struct wl *w = d->item;
    int call = (int)r->n;
    r->started[r->n++] = w->name;
    if (r->refuse_from >= 0 && call >= r->refuse_from) {
        return 0;
    }
    r->ok++;
    return 1;
}

/* Runs the dispatcher over |w| (all taking part) and returns what started. */
static size_t run(struct wl *w, size_t n, struct run *r)
{
    struct sr_due due[64];
    assert_true(n <= 64);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (sr_due_soon(w[i].wait_until, NOW)) {
            due[k++] = (struct sr_due){.deadline_ms = w[i].deadline,
                                       .wait_until_ms = w[i].wait_until,
                                       .target = w[i].target,
                                       .item = &w[i]};
        }
    }
    return sr_due_run(due, k, NOW, start, r);
}

static void names_are(const struct run *r, const char *const *want, size_t n)
{
    assert_int_equal(r->n, n);
    for (size_t i = 0; i < n; i++) {
        assert_string_equal(r->started[i], want[i]);
    }
}

static void test_soon(void **state)
{
    (void)state;
    assert_true(sr_due_soon(NOW - 1, NOW));
    assert_true(sr_due_soon(NOW, NOW));
    assert_true(sr_due_soon(NOW + SR_DUE_AHEAD_MS, NOW));
    assert_false(sr_due_soon(NOW + SR_DUE_AHEAD_MS + 1, NOW));
}

static void test_earliest_deadline_first(void **state)
{
    (void)state;
    struct wl w[] = {
        {"c", NOW + 30000, 0, ""},
        {"a", NOW + 10000, 0, ""},
        {"b", NOW + 20000, 0, ""},
    };
    struct run r = {.refuse_from = -1, .stop_after = -1};
    assert_int_equal(run(w, 3, &r), 3);
    const char *want[] = {"a", "b", "c"};
    names_are(&r, want, 3);
}

static void test_one_at_a_time_per_target(void **state)
{
    (void)state;
    struct wl w[] = {
        {"sat-late", NOW + 30000, 0, "sat"}, {"sat-early", NOW + 10000, 0, "sat"},
        {"idc", NOW + 20000, 0, "idc"},      {"any", NOW + 40000, 0, ""},
        {"any2", NOW + 50000, 0, ""},
    };
    struct run r = {.refuse_from = -1, .stop_after = -1};
    assert_int_equal(run(w, 5, &r), 4);
    /* the later one for "sat" waits for the next turn; unbound work is never held */
    const char *want[] = {"sat-early", "idc", "any", "any2"};
    names_are(&r, want, 4);
}

static void test_waiting_earlier_deadline_keeps_its_place(void **state)
{
    (void)state;
    /* "first" is due in a second (a retry while the link comes up): the
     * later-deadline work for the same target does not overtake it */
    struct wl w[] = {
        {"first", NOW + 10000, NOW + 1000, "sat"},
        {"second", NOW + 20000, 0, "sat"},
        {"other", NOW + 30000, 0, "idc"},
        {"far", NOW + 5000, NOW + 60000, "idc"}, /* not soon: takes no part */
    };
    struct run r = {.refuse_from = -1, .stop_after = -1};
    assert_int_equal(run(w, 4, &r), 1);
    const char *want[] = {"other"};
    names_are(&r, want, 1);
}

static void test_not_started_holds_nothing(void **state)
{
    (void)state;
    /* a start that fails (the row vanished, out of memory) does not hold its
     * target: the next workload for it may go */
    struct wl w[] = {
        {"a", NOW + 10000, 0, "sat"},
        {"b", NOW + 20000, 0, "sat"},
    };
    struct run r = {.refuse_from = 0, .stop_after = -1};
    assert_int_equal(run(w, 2, &r), 0);
    const char *want[] = {"a", "b"};
    names_are(&r, want, 2);
}

static void test_capacity_stops_the_walk(void **state)
{
    (void)state;
    struct wl w[] = {
        {"a", NOW + 10000, 0, "t1"},
        {"b", NOW + 20000, 0, "t2"},
        {"c", NOW + 30000, 0, "t3"},
    };
    struct run r = {.refuse_from = -1, .stop_after = 2};
    assert_int_equal(run(w, 3, &r), 2);
    const char *want[] = {"a", "b"};
    names_are(&r, want, 2);
}

static void test_at_most_sixteen_targets_held(void **state)
{
    (void)state;
    /* 17 targets each with two due workloads: the 17th target is not held,
     * so both of its workloads start */
    static char names[34][16], targets[17][8];
    struct wl w[34];
    for (int t = 0; t < 17; t++) {
        snprintf(targets[t], sizeof(targets[t]), "t%d", t);
        for (int k = 0; k < 2; k++) {
            int i = 2 * t + k;
            snprintf(names[i], sizeof(names[i]), "t%d-%d", t, k);
            w[i] = (struct wl){names[i], NOW + 1000 * (k * 100 + t + 1), 0, targets[t]};
        }
    }
    struct run r = {.refuse_from = -1, .stop_after = -1};
    assert_int_equal(run(w, 34, &r), 18);
    assert_string_equal(r.started[16], "t16-0");
    assert_string_equal(r.started[17], "t16-1");
}

static void test_empty(void **state)
{
    (void)state;
    struct run r = {.refuse_from = -1, .stop_after = -1};
    assert_int_equal(sr_due_run(NULL, 0, NOW, start, &r), 0);
    assert_int_equal(r.n, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_soon),
        cmocka_unit_test(test_earliest_deadline_first),
        cmocka_unit_test(test_one_at_a_time_per_target),
        cmocka_unit_test(test_waiting_earlier_deadline_keeps_its_place),
        cmocka_unit_test(test_not_started_holds_nothing),
        cmocka_unit_test(test_capacity_stops_the_walk),
        cmocka_unit_test(test_at_most_sixteen_targets_held),
        cmocka_unit_test(test_empty),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
