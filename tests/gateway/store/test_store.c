/*
 * gateway/store/store.c: the embedded SQLite store in a scratch directory
 * under /tmp. Schedules and elements survive closing and reopening; a
 * re-upload changes nothing; a newer schedule for a window replaces the old
 * one; a transaction that fails half-way (a trigger aborts the second
 * window) leaves everything as it was; the database is in WAL mode.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

#include "gateway/net/net.h"
#include "gateway/store/store.h"

static char dir[64];

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/sr-test-store-XXXXXX");
    return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char p[PATH_MAX];
    const char *files[] = {"skyroute.db", "skyroute.db-wal", "skyroute.db-shm"};
    for (size_t i = 0; i < 3; i++) {
        snprintf(p, sizeof(p), "%s/%s", dir, files[i]);
        unlink(p);
    }
    rmdir(dir);
    return 0;
}

static struct sr_pass_rec pass(const char *sat, int64_t aos, int64_t los, double el)
{
    struct sr_pass_rec p;
    memset(&p, 0, sizeof(p));
    snprintf(p.sat, sizeof(p.sat), "%s", sat);
    p.aos_ms = aos;
    p.los_ms = los;
    p.max_el_deg = el;
    p.uplink_bps = 31250;
    p.downlink_bps = 781250;
    p.light_ms = 2.5;
    snprintf(p.source, sizeof(p.source), "aws");
    return p;
}

#define T0 1795392000000LL /* 2026-11-23T00:00:00Z */

static sr_store *open_store(void)
{
    sr_store *st = NULL;
    char err[256];
    int rv = sr_store_open(&st, dir, err, sizeof(err));
    if (rv) {
        fprintf(stderr, "%s\n", err);
    }
    assert_int_equal(rv, 0);
    return st;
}

static void test_passes_persist_and_replace(void **state)
{
    (void)state;
    sr_store *st = open_store();
    struct sr_pass_rec a[] = {pass("sat-1", T0 + 1000, T0 + 600000, 45.5),
                              pass("sat-1", T0 + 6000000, T0 + 6600000, NAN)};
    struct sr_pass_rec b[] = {pass("sat-2", T0 + 2000, T0 + 500000, 12.0)};
    struct sr_store_window w[] = {{"sat-1", a[0].aos_ms, a[1].los_ms, a, 2},
                                  {"sat-2", b[0].aos_ms, b[0].los_ms, b, 1}};
    size_t changed = 99;
    assert_int_equal(sr_store_put_passes(st, "acme", T0 - 5000, w, 2, &changed), 0);
    assert_int_equal(changed, 2);
    /* the same upload again: nothing changes */
    assert_int_equal(sr_store_put_passes(st, "acme", T0 - 4000, w, 2, &changed), 0);
    assert_int_equal(changed, 0);
    sr_store_close(st);

    st = open_store();
    struct sr_pass_rec *out;
    size_t n;
    assert_int_equal(sr_store_passes(st, NULL, INT64_MIN, INT64_MAX, &out, &n), 0);
    assert_int_equal(n, 3);
    assert_string_equal(out[0].sat, "sat-1");
    assert_true(out[0].aos_ms == T0 + 1000 && out[0].los_ms == T0 + 600000);
    assert_true(out[0].max_el_deg == 45.5 && out[0].light_ms == 2.5);
    assert_true(out[0].uplink_bps == 31250 && out[0].downlink_bps == 781250);
    assert_string_equal(out[0].source, "aws");
    assert_true(isnan(out[1].max_el_deg));
    assert_string_equal(out[2].sat, "sat-2");
    free(out);
    assert_int_equal(sr_store_passes(st, "sat-1", T0 + 600000, T0 + 6000001, &out, &n), 0);
    assert_int_equal(n, 1);
    assert_true(out[0].aos_ms == T0 + 6000000);
    free(out);

    /* a newer schedule for sat-1's first pass window replaces what overlaps it */
    struct sr_pass_rec c[] = {pass("sat-1", T0 + 30000, T0 + 630000, 47.0)};
    struct sr_store_window w2 = {"sat-1", c[0].aos_ms, c[0].los_ms, c, 1};
    assert_int_equal(sr_store_put_passes(st, "acme", T0, &w2, 1, &changed), 0);
    assert_int_equal(changed, 1);
    assert_int_equal(sr_store_passes(st, "sat-1", INT64_MIN, INT64_MAX, &out, &n), 0);
    assert_int_equal(n, 2);
    assert_true(out[0].aos_ms == T0 + 30000 && out[0].max_el_deg == 47.0);
    assert_true(out[1].aos_ms == T0 + 6000000);
    free(out);

    /* operator windows are kept as a union */
    struct sr_store_span *sp;
    assert_int_equal(sr_store_windows(st, "sat-1", &sp, &n), 0);
    assert_int_equal(n, 1);
    assert_true(sp[0].from_ms == T0 + 1000 && sp[0].to_ms == T0 + 6600000);
    free(sp);
    assert_int_equal(sr_store_windows(st, NULL, &sp, &n), 0);
    assert_int_equal(n, 2);
    free(sp);

    /* pruning forgets what ended before the cut, passes and windows */
    size_t gone = 0;
    assert_int_equal(sr_store_prune(st, T0 + 600001, &gone), 0);
    assert_int_equal(gone, 1); /* sat-2's pass ended at T0 + 500000 */
    assert_int_equal(sr_store_passes(st, NULL, INT64_MIN, INT64_MAX, &out, &n), 0);
    assert_int_equal(n, 2);
    free(out);
    assert_int_equal(sr_store_windows(st, "sat-2", &sp, &n), 0);
    assert_int_equal(n, 0);
    free(sp);

    /* bad windows are refused before anything is written */
    struct sr_store_window bad = {"sat-2", T0, T0 + 10, c, 1}; /* a sat-1 pass in a sat-2 window */
    assert_int_equal(sr_store_put_passes(st, "acme", T0, &bad, 1, NULL), SR_ERR_INVAL);
    sr_store_close(st);
}

static void test_transaction_is_all_or_nothing(void **state)
{
    (void)state;
    sr_store *st = open_store();
    struct sr_pass_rec a[] = {pass("sat-1", T0 + 1000, T0 + 600000, 45.5)};
    struct sr_store_window w = {"sat-1", a[0].aos_ms, a[0].los_ms, a, 1};
    assert_int_equal(sr_store_put_passes(st, "acme", T0, &w, 1, NULL), 0);

    /* make inserting any 'boom' pass fail inside the transaction */
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/skyroute.db", dir);
    sqlite3 *db;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(
        sqlite3_exec(db,
                     "CREATE TRIGGER boom BEFORE INSERT ON passes WHEN NEW.sat = 'boom' "
                     "BEGIN SELECT RAISE(ABORT, 'boom'); END;",
                     NULL, NULL, NULL),
        SQLITE_OK);
    sqlite3_close(db);

    struct sr_pass_rec b[] = {pass("sat-1", T0 + 100000, T0 + 700000, 10.0)};
    struct sr_pass_rec c[] = {pass("boom", T0, T0 + 1000, 1.0)};
    struct sr_store_window ws[] = {{"sat-1", b[0].aos_ms, b[0].los_ms, b, 1},
                                   {"boom", c[0].aos_ms, c[0].los_ms, c, 1}};
    int old = sr_log_level;
    sr_log_level = -1; /* the failure is expected */
    assert_int_equal(sr_store_put_passes(st, "acme", T0 + 1, ws, 2, NULL), SR_ERR_IO);
    sr_log_level = old;
    struct sr_pass_rec *out;
    size_t n;
    assert_int_equal(sr_store_passes(st, NULL, INT64_MIN, INT64_MAX, &out, &n), 0);
    assert_int_equal(n, 1);
    assert_true(out[0].aos_ms == T0 + 1000 && out[0].max_el_deg == 45.5);
    free(out);
    /* and the store still works afterwards */
    assert_int_equal(sr_store_put_passes(st, "acme", T0 + 2, ws, 1, NULL), 0);
    sr_store_close(st);
}

static void test_elements(void **state)
{
    (void)state;
    sr_store *st = open_store();
    char text[] = "ISS (ZARYA)\n1 25544U ...\n2 25544 ...\n";
    struct sr_store_elements e[2];
    memset(e, 0, sizeof(e));
    snprintf(e[0].sat, sizeof(e[0].sat), "sat-1");
    snprintf(e[0].format, sizeof(e[0].format), "tle");
    e[0].catnum = 25544;
    e[0].epoch_ms = 1795392000123.5;
    e[0].text = text;
    e[0].len = strlen(text);
    e[1] = e[0];
    snprintf(e[1].sat, sizeof(e[1].sat), "sat-2");
    e[1].catnum = 270001;
    size_t changed;
    assert_int_equal(sr_store_put_elements(st, "acme", T0, e, 2, &changed), 0);
    assert_int_equal(changed, 2);
    assert_int_equal(sr_store_put_elements(st, "acme", T0 + 1, e, 2, &changed), 0);
    assert_int_equal(changed, 0);
    sr_store_close(st);

    st = open_store();
    struct sr_store_elements *out;
    size_t n;
    assert_int_equal(sr_store_get_elements(st, &out, &n), 0);
    assert_int_equal(n, 2);
    assert_string_equal(out[0].sat, "sat-1");
    assert_string_equal(out[0].format, "tle");
    assert_string_equal(out[0].op, "acme");
    assert_true(out[0].catnum == 25544 && out[0].epoch_ms == 1795392000123.5);
    assert_true(out[0].len == strlen(text) && !memcmp(out[0].text, text, out[0].len));
    assert_true(out[0].uploaded_ms == T0);
    assert_true(out[1].catnum == 270001);
    sr_store_elements_free(out, n);

    /* a new set replaces the old */
    char text2[] = "{\"NORAD_CAT_ID\":25544}";
    e[0].text = text2;
    e[0].len = strlen(text2);
    snprintf(e[0].format, sizeof(e[0].format), "omm-json");
    assert_int_equal(sr_store_put_elements(st, "zeta", T0 + 2, e, 1, &changed), 0);
    assert_int_equal(changed, 1);
    assert_int_equal(sr_store_get_elements(st, &out, &n), 0);
    assert_int_equal(n, 2);
    assert_string_equal(out[0].format, "omm-json");
    assert_string_equal(out[0].op, "zeta");
    assert_string_equal(out[0].text, text2);
    sr_store_elements_free(out, n);
    sr_store_close(st);
}

static void test_nonces(void **state)
{
    (void)state;
    sr_store *st = open_store();
    const uint8_t k1[8] = {1}, k2[8] = {2};
    assert_int_equal(sr_store_claim_nonce(st, k1, 8, "nonce-0000000001", T0, T0 + 1000, 10), 0);
    assert_int_equal(sr_store_claim_nonce(st, k1, 8, "nonce-0000000001", T0, T0 + 1000, 10),
                     SR_ERR_EXISTS);
    /* another key may use the same nonce */
    assert_int_equal(sr_store_claim_nonce(st, k2, 8, "nonce-0000000001", T0, T0 + 1000, 10), 0);
    /* remembered across a reopen */
    sr_store_close(st);
    st = open_store();
    assert_int_equal(sr_store_claim_nonce(st, k1, 8, "nonce-0000000001", T0 + 999, T0 + 2000, 10),
                     SR_ERR_EXISTS);
    /* forgotten once expired */
    assert_int_equal(sr_store_claim_nonce(st, k1, 8, "nonce-0000000001", T0 + 1000, T0 + 2000, 10),
                     0);
    /* the ceiling counts unexpired nonces only */
    assert_int_equal(sr_store_claim_nonce(st, k1, 8, "nonce-0000000002", T0 + 1000, T0 + 2000, 2),
                     0);
    assert_int_equal(sr_store_claim_nonce(st, k1, 8, "nonce-0000000003", T0 + 1000, T0 + 2000, 2),
                     SR_ERR_FULL);
    assert_int_equal(sr_store_claim_nonce(st, k1, 8, "nonce-0000000003", T0 + 2000, T0 + 3000, 2),
                     0);
    sr_store_close(st);
}

static void test_wal_and_errors(void **state)
{
    (void)state;
    sr_store *st = open_store();
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/skyroute.db", dir);
    sqlite3 *db;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    sqlite3_stmt *s;
    assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &s, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(s), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(s, 0), "wal");
    sqlite3_finalize(s);
    sqlite3_close(db);
    sr_store_close(st);
    sr_store_close(NULL);

    char err[256];
    sr_store *bad = NULL;
    assert_int_equal(sr_store_open(&bad, "/proc/no/such/dir", err, sizeof(err)), SR_ERR_IO);
    assert_null(bad);
    assert_non_null(strstr(err, "/proc/no/such/dir"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_passes_persist_and_replace, setup, teardown),
        cmocka_unit_test_setup_teardown(test_transaction_is_all_or_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_elements, setup, teardown),
        cmocka_unit_test_setup_teardown(test_nonces, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wal_and_errors, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
