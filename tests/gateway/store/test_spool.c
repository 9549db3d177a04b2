/*
 * gateway/store/spool.c: the spool's rows in a scratch directory under /tmp.
 * A workload stored once is read back as submitted and survives reopening; a
 * second insert of the same id changes nothing; state changes, results,
 * forwards and imports land where GET /v1/workloads/ID reads them; the
 * outbox hands out only what a satellite has not confirmed; recovery sees
 * only unfinished work; republication only what the cluster has not
 * acknowledged; prune forgets only what finished before the line, except
 * the id of an uplink whose envelope has not expired.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gateway/store/store.h"

#define NOW 1800000000000LL

static char dir[64];

static int setup(void **state)
{
    snprintf(dir, sizeof(dir), "/tmp/sr-test-spool-XXXXXX");
    if (!mkdtemp(dir)) {
        return -1;
    }
    sr_spooldb *db;
    char err[200];
    if (sr_spooldb_open(&db, dir, err, sizeof(err)) != 0) {
        return -1;
    }
    *state = db;
    return 0;
}

static int teardown(void **state)
{
    sr_spooldb_close(*state);
    char p[PATH_MAX];
    const char *files[] = {"spool.db", "spool.db-wal", "spool.db-shm"};
    for (size_t i = 0; i < 3; i++) {
        snprintf(p, sizeof(p), "%s/%s", dir, files[i]);
        unlink(p);
    }
    rmdir(dir);
    return 0;
}

static struct sr_spool_work work(uint8_t tag, const char *reply_to, const char *origin)
{
    static const uint8_t payload[] = {'h', 'i', 0, 1};
    struct sr_spool_work w = {.client = "alice",
                              .handler = "upper",
                              .payload = payload,
                              .payload_len = sizeof(payload),
                              .iat_ms = NOW - 5,
                              .deadline_ms = NOW + 60000,
                              .work_gop = 2.5,
                              .result_bytes = 128,
                              .env_flags = 3,
                              .place = 2,
                              .place_target = "sat-1",
                              .data_at = "sat-2",
                              .reply_to = reply_to,
                              .origin = origin};
    memset(w.id, tag, sizeof(w.id));
    return w;
}

static void insert(sr_spooldb *db, const struct sr_spool_work *w, bool want_fresh)
{
    bool fresh = !want_fresh;
    assert_int_equal(sr_spooldb_begin(db), 0);
    assert_int_equal(sr_spooldb_insert(db, w, NOW, &fresh), 0);
    assert_int_equal(sr_spooldb_commit(db), 0);
    assert_int_equal(fresh, want_fresh);
}

static void test_insert_and_read_back(void **state)
{
    sr_spooldb *db = *state;
    struct sr_spool_work w = work(1, "", ""), got;
    insert(db, &w, true);
    insert(db, &w, false); /* the same id again: already here */
    assert_int_equal(sr_spooldb_work(db, w.id, &got), 0);
    assert_string_equal(got.handler, "upper");
    assert_int_equal(got.payload_len, 4);
    assert_memory_equal(got.payload, w.payload, 4);
    assert_true(got.iat_ms == NOW - 5 && got.deadline_ms == NOW + 60000);
    assert_true(got.work_gop == 2.5 && got.result_bytes == 128);
    assert_int_equal(got.env_flags, 3);
    assert_int_equal(got.place, 2);
    assert_string_equal(got.place_target, "sat-1");
    assert_string_equal(got.data_at, "sat-2");
    uint8_t other[SR_SPOOL_IDBYTES] = {9};
    assert_int_equal(sr_spooldb_work(db, other, &got), SR_ERR_NOTFOUND);
    struct sr_spool_status s;
    assert_int_equal(sr_spooldb_status(db, w.id, &s), 0);
    assert_int_equal(s.state, SR_SPOOL_QUEUED);
    assert_string_equal(sr_spool_state_name(s.state), "queued");
    assert_string_equal(sr_spool_state_name(99), "queued");
}

static void test_a_failed_insert_rolls_back(void **state)
{
    sr_spooldb *db = *state;
    struct sr_spool_work a = work(1, "", ""), b = work(2, "", "");
    bool fresh;
    assert_int_equal(sr_spooldb_begin(db), 0);
    assert_int_equal(sr_spooldb_insert(db, &a, NOW, &fresh), 0);
    assert_int_equal(sr_spooldb_insert(db, &b, NOW, &fresh), 0);
    sr_spooldb_rollback(db);
    struct sr_spool_work got;
    assert_int_equal(sr_spooldb_work(db, a.id, &got), SR_ERR_NOTFOUND);
    assert_int_equal(sr_spooldb_work(db, b.id, &got), SR_ERR_NOTFOUND);
}

static int collect_active(void *arg, const struct sr_spool_active *a)
{
    struct sr_spool_active *out = arg;
    out[a->id[0]] = *a;
    out[a->id[0]].target = strdup(a->target); /* the row's text lives until the next row */
    return 0;
}

static void test_states_and_recovery(void **state)
{
    sr_spooldb *db = *state;
    struct sr_spool_work w1 = work(1, "", ""), w2 = work(2, "", "gs-b"), w3 = work(3, "", "");
    insert(db, &w1, true);
    insert(db, &w2, true);
    insert(db, &w3, true);
    struct sr_spool_progress p = {.state = SR_SPOOL_DISPATCHED,
                                  .target = "sat-1",
                                  .wait_until_ms = 0,
                                  .attempt = true,
                                  .pinned = true,
                                  .reason = ""};
    assert_int_equal(sr_spooldb_set_state(db, w1.id, &p, NOW), 0);
    p = (struct sr_spool_progress){.state = SR_SPOOL_WAITING,
                                   .target = "sat-2",
                                   .wait_until_ms = NOW + 5000,
                                   .reason = "waiting for a window"};
    assert_int_equal(sr_spooldb_set_state(db, w2.id, &p, NOW), 0);
    struct sr_spool_result done = {.state = SR_SPOOL_DONE, .status = 200, .target = "idc-1"};
    assert_int_equal(sr_spooldb_finish(db, w3.id, &done, NOW), 0);

    struct sr_spool_status s;
    assert_int_equal(sr_spooldb_status(db, w2.id, &s), 0);
    assert_int_equal(s.state, SR_SPOOL_WAITING);
    assert_true(s.wait_until_ms == NOW + 5000 && s.deadline_ms == NOW + 60000);
    assert_string_equal(s.r.reason, "waiting for a window");
    assert_int_equal(sr_spooldb_status(db, w1.id, &s), 0);
    assert_int_equal(s.attempts, 1);

    struct sr_spool_active seen[4];
    memset(seen, 0, sizeof(seen));
    assert_int_equal(sr_spooldb_active(db, collect_active, seen), 0);
    assert_int_equal(seen[1].state, SR_SPOOL_DISPATCHED);
    assert_true(seen[1].pinned);
    assert_string_equal(seen[1].target, "sat-1");
    assert_int_equal(seen[1].bytes, 4);
    assert_int_equal(seen[2].state, SR_SPOOL_WAITING);
    assert_false(seen[2].pinned);
    assert_null(seen[3].target); /* finished: not recovered */
    free((char *)seen[1].target);
    free((char *)seen[2].target);
}

static void test_finish_forward_import(void **state)
{
    sr_spooldb *db = *state;
    struct sr_spool_work w = work(4, "", "");
    insert(db, &w, true);
    static const uint8_t result[] = "RESULT";
    struct sr_spool_result res = {.state = SR_SPOOL_FAILED,
                                  .status = 502,
                                  .target = "sat-1",
                                  .reason = "the target refused the envelope",
                                  .detail = "{\"status\":400}",
                                  .predicted_ms = 10,
                                  .elapsed_ms = 20};
    /* an import only lands on a workload forwarded from here */
    assert_int_equal(sr_spooldb_import(db, w.id, &res, NOW), SR_ERR_NOTFOUND);
    assert_int_equal(sr_spooldb_forwarded(db, w.id, "forwarded to station gs-b", NOW), 0);
    struct sr_spool_status s;
    assert_int_equal(sr_spooldb_status(db, w.id, &s), 0);
    assert_int_equal(s.state, SR_SPOOL_FORWARDED);
    assert_string_equal(s.r.reason, "forwarded to station gs-b");
    res = (struct sr_spool_result){.state = SR_SPOOL_DONE,
                                   .status = 200,
                                   .payload = result,
                                   .payload_len = 6,
                                   .signer = "sat-1 0011",
                                   .reason = "ran through station gs-b",
                                   .predicted_ms = 10,
                                   .elapsed_ms = 20};
    assert_int_equal(sr_spooldb_import(db, w.id, &res, NOW), 0);
    assert_int_equal(sr_spooldb_status(db, w.id, &s), 0);
    assert_int_equal(s.state, SR_SPOOL_DONE);
    assert_int_equal(s.r.status, 200);
    assert_int_equal(s.r.payload_len, 6);
    assert_memory_equal(s.r.payload, "RESULT", 6);
    assert_string_equal(s.r.signer, "sat-1 0011");
    assert_true(s.r.elapsed_ms == 20);
    /* once finished, the request's payload is let go */
    struct sr_spool_work got;
    assert_int_equal(sr_spooldb_work(db, w.id, &got), 0);
    assert_int_equal(got.payload_len, 0);
    /* a second import finds nothing forwarded */
    assert_int_equal(sr_spooldb_import(db, w.id, &res, NOW), SR_ERR_NOTFOUND);
}

struct seen {
    uint8_t ids[8];
    int statuses[8];
    size_t n;
};

static int collect_outbox(void *arg, const uint8_t id[SR_SPOOL_IDBYTES], const char *handler,
                          const struct sr_spool_result *r)
{
    struct seen *s = arg;
    assert_string_equal(handler, "upper");
    s->ids[s->n] = id[0];
    s->statuses[s->n++] = r->status;
    return 0;
}

static void test_outbox(void **state)
{
    sr_spooldb *db = *state;
    struct sr_spool_work a = work(5, "sat-9", ""), b = work(6, "sat-9", ""),
                         c = work(7, "sat-8", "");
    insert(db, &a, true);
    insert(db, &b, true);
    insert(db, &c, true);
    struct sr_spool_result ok = {.state = SR_SPOOL_DONE, .status = 200};
    struct sr_spool_result bad = {.state = SR_SPOOL_FAILED, .status = 504, .reason = "late"};
    assert_int_equal(sr_spooldb_finish(db, a.id, &ok, NOW), 0);
    assert_int_equal(sr_spooldb_finish(db, b.id, &bad, NOW + 1), 0);
    assert_int_equal(sr_spooldb_finish(db, c.id, &ok, NOW), 0);
    struct seen s = {0};
    assert_int_equal(sr_spooldb_outbox(db, "sat-9", collect_outbox, &s), 0);
    assert_int_equal(s.n, 2);
    assert_int_equal(s.ids[0], 5); /* oldest first */
    assert_int_equal(s.statuses[1], 504);
    /* confirmed by sat-9 (a confirmation naming another satellite changes nothing) */
    assert_int_equal(sr_spooldb_delivered(db, a.id, "sat-9"), 0);
    assert_int_equal(sr_spooldb_delivered(db, b.id, "sat-8"), 0);
    memset(&s, 0, sizeof(s));
    assert_int_equal(sr_spooldb_outbox(db, "sat-9", collect_outbox, &s), 0);
    assert_int_equal(s.n, 1);
    assert_int_equal(s.ids[0], 6);
}

static int collect_unpublished(void *arg, const uint8_t id[SR_SPOOL_IDBYTES], const char *origin,
                               const struct sr_spool_result *r)
{
    struct seen *s = arg;
    assert_string_equal(origin, id[0] == 1 ? "" : "gs-b");
    /* the target's envelope comes back with the result it was stored with */
    if (id[0] == 3) {
        assert_int_equal(r->envelope_len, 3);
        assert_memory_equal(r->envelope, "env", 3);
    } else {
        assert_int_equal(r->envelope_len, 0);
    }
    s->ids[s->n] = id[0];
    s->statuses[s->n++] = r->status;
    return 0;
}

static int stop_at_first(void *arg, const uint8_t id[SR_SPOOL_IDBYTES], const char *origin,
                         const struct sr_spool_result *r)
{
    (void)id;
    (void)origin;
    (void)r;
    (*(int *)arg)++;
    return SR_ERR_NOMEM;
}

static void test_republication_and_prune(void **state)
{
    sr_spooldb *db = *state;
    struct sr_spool_work mine = work(1, "", ""), a = work(2, "", "gs-b"), b = work(3, "", "gs-b");
    insert(db, &mine, true);
    insert(db, &a, true);
    insert(db, &b, true);
    struct sr_spool_result ok = {.state = SR_SPOOL_DONE, .status = 200};
    assert_int_equal(sr_spooldb_finish(db, mine.id, &ok, NOW - 100000), 0);
    assert_int_equal(sr_spooldb_finish(db, a.id, &ok, NOW - 100000), 0);
    struct sr_spool_result ok_env = ok;
    ok_env.envelope = (const uint8_t *)"env";
    ok_env.envelope_len = 3;
    assert_int_equal(sr_spooldb_finish(db, b.id, &ok_env, NOW), 0);
    struct seen s = {0};
    assert_int_equal(sr_spooldb_unpublished(db, collect_unpublished, &s), 0);
    assert_int_equal(s.n, 3); /* adopted work, and this station's own for any station */
    int calls = 0;
    assert_int_equal(sr_spooldb_unpublished(db, stop_at_first, &calls), SR_ERR_NOMEM);
    assert_int_equal(calls, 1);
    assert_int_equal(sr_spooldb_published(db, a.id), 0);
    assert_int_equal(sr_spooldb_published(db, mine.id), 0);
    memset(&s, 0, sizeof(s));
    assert_int_equal(sr_spooldb_unpublished(db, collect_unpublished, &s), 0);
    assert_int_equal(s.n, 1);
    assert_int_equal(s.ids[0], 3);
    /* finished before the line: forgotten; after it, or unfinished: kept */
    struct sr_spool_work open = work(4, "", "");
    insert(db, &open, true);
    assert_int_equal(sr_spooldb_prune(db, NOW - 50000, NOW), 0);
    struct sr_spool_status st;
    assert_int_equal(sr_spooldb_status(db, mine.id, &st), SR_ERR_NOTFOUND);
    assert_int_equal(sr_spooldb_status(db, a.id, &st), SR_ERR_NOTFOUND);
    assert_int_equal(sr_spooldb_status(db, b.id, &st), 0);
    assert_int_equal(sr_spooldb_status(db, open.id, &st), 0);
}

/* An uplinked workload pruned before its envelope expires leaves its id
 * behind until then; other work leaves nothing, and nor does an uplink whose
 * envelope has expired by the prune. */
static void test_prune_remembers_unexpired_uplinks(void **state)
{
    sr_spooldb *db = *state;
    struct sr_spool_work up = work(9, "sat-9", ""), late = work(10, "sat-9", ""),
                         plain = work(11, "", "");
    late.deadline_ms = NOW - 1; /* expired by the prune */
    insert(db, &up, true);
    insert(db, &late, true);
    insert(db, &plain, true);
    struct sr_spool_result ok = {.state = SR_SPOOL_DONE, .status = 200};
    assert_int_equal(sr_spooldb_finish(db, up.id, &ok, NOW - 100000), 0);
    assert_int_equal(sr_spooldb_finish(db, late.id, &ok, NOW - 100000), 0);
    assert_int_equal(sr_spooldb_finish(db, plain.id, &ok, NOW - 100000), 0);
    bool spent = true;
    assert_int_equal(sr_spooldb_uplink_spent(db, up.id, &spent), 0);
    assert_false(spent); /* its row still answers for it */
    assert_int_equal(sr_spooldb_prune(db, NOW - 50000, NOW), 0);
    struct sr_spool_status st;
    assert_int_equal(sr_spooldb_status(db, up.id, &st), SR_ERR_NOTFOUND);
    assert_int_equal(sr_spooldb_uplink_spent(db, up.id, &spent), 0);
    assert_true(spent);
    assert_int_equal(sr_spooldb_uplink_spent(db, late.id, &spent), 0);
    assert_false(spent);
    assert_int_equal(sr_spooldb_uplink_spent(db, plain.id, &spent), 0);
    assert_false(spent);
    /* a second insert of the id is still ignored by the spool... */
    bool fresh = true;
    assert_int_equal(sr_spooldb_insert(db, &up, NOW, &fresh), 0);
    assert_true(fresh); /* (the row is gone: the caller must ask uplink_spent first) */
    /* ...and the id is remembered across reopening, until its exp */
    sr_spooldb_close(db);
    char err[200];
    assert_int_equal(sr_spooldb_open(&db, dir, err, sizeof(err)), 0);
    *state = db;
    assert_int_equal(sr_spooldb_uplink_spent(db, up.id, &spent), 0);
    assert_true(spent);
    assert_int_equal(sr_spooldb_prune(db, NOW, up.deadline_ms), 0);
    assert_int_equal(sr_spooldb_uplink_spent(db, up.id, &spent), 0);
    assert_false(spent);
}

static void test_survives_reopening(void **state)
{
    sr_spooldb *db = *state;
    struct sr_spool_work w = work(8, "", "");
    insert(db, &w, true);
    sr_spooldb_close(db);
    char err[200];
    assert_int_equal(sr_spooldb_open(&db, dir, err, sizeof(err)), 0);
    *state = db;
    struct sr_spool_work got;
    assert_int_equal(sr_spooldb_work(db, w.id, &got), 0);
    assert_string_equal(got.handler, "upper");
}

static void test_open_names_the_path(void **state)
{
    (void)state;
    sr_spooldb *db = (sr_spooldb *)1;
    char err[300];
    assert_int_equal(sr_spooldb_open(&db, "/nonexistent-dir/x", err, sizeof(err)), SR_ERR_IO);
    assert_null(db);
    assert_non_null(strstr(err, "/nonexistent-dir/x/spool.db"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_insert_and_read_back, setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_failed_insert_rolls_back, setup, teardown),
        cmocka_unit_test_setup_teardown(test_states_and_recovery, setup, teardown),
        cmocka_unit_test_setup_teardown(test_finish_forward_import, setup, teardown),
        cmocka_unit_test_setup_teardown(test_outbox, setup, teardown),
        cmocka_unit_test_setup_teardown(test_republication_and_prune, setup, teardown),
        cmocka_unit_test_setup_teardown(test_prune_remembers_unexpired_uplinks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_survives_reopening, setup, teardown),
        cmocka_unit_test(test_open_names_the_path),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
