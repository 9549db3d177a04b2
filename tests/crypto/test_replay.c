/* crypto/replay.c: expiry, capacity, stored results, and a model check. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "crypto/crypto.h"

static void make_id(uint8_t id[SR_ENV_IDBYTES], unsigned n)
{
    memset(id, 0, SR_ENV_IDBYTES);
    memcpy(id, &n, sizeof(n));
}

static void test_replay_basic(void **state)
{
    (void)state;
    sr_replay *g = NULL;
    const uint8_t *res = (const uint8_t *)"x";
    size_t rlen = 99;
    uint8_t a[16], b[16];
    make_id(a, 1);
    make_id(b, 2);
    assert_int_equal(sr_replay_new(&g, 0), SR_ERR_INVAL);
    assert_int_equal(sr_replay_new(&g, 4), 0);

    assert_int_equal(sr_replay_check(g, a, 2000, 1000, &res, &rlen), 0);
    assert_null(res);
    assert_int_equal(rlen, 0);
    /* seen, still pending: no result yet */
    assert_int_equal(sr_replay_check(g, a, 2000, 1500, &res, &rlen), SR_ERR_ENV_REPLAY);
    assert_null(res);
    assert_int_equal(rlen, 0);
    /* a stored result comes back with the replay */
    assert_int_equal(sr_replay_store(g, a, (const uint8_t *)"result", 6), 0);
    assert_int_equal(sr_replay_check(g, a, 2000, 1600, &res, &rlen), SR_ERR_ENV_REPLAY);
    assert_int_equal(rlen, 6);
    assert_memory_equal(res, "result", 6);
    /* replaced by a newer store */
    assert_int_equal(sr_replay_store(g, a, (const uint8_t *)"second", 6), 0);
    assert_int_equal(sr_replay_check(g, a, 2000, 1600, &res, &rlen), SR_ERR_ENV_REPLAY);
    assert_memory_equal(res, "second", 6);
    /* an empty stored result is "stored", not "pending" */
    assert_int_equal(sr_replay_check(g, b, 3000, 1600, NULL, NULL), 0);
    assert_int_equal(sr_replay_store(g, b, NULL, 0), 0);
    assert_int_equal(sr_replay_check(g, b, 3000, 1600, &res, &rlen), SR_ERR_ENV_REPLAY);
    assert_non_null(res);
    assert_int_equal(rlen, 0);
    assert_int_equal(sr_replay_count(g), 2);

    /* expiry: exp <= now forgets the id, which is then new again */
    assert_int_equal(sr_replay_check(g, a, 2500, 2000, &res, &rlen), 0);
    assert_int_equal(sr_replay_count(g), 2);
    assert_int_equal(sr_replay_check(g, a, 2500, 2100, &res, &rlen), SR_ERR_ENV_REPLAY);
    assert_null(res); /* the old result went with the old record */

    /* store for an unknown id; forget */
    uint8_t c[16];
    make_id(c, 3);
    assert_int_equal(sr_replay_store(g, c, (const uint8_t *)"r", 1), SR_ERR_NOTFOUND);
    sr_replay_forget(g, a);
    sr_replay_forget(g, c); /* unknown: no-op */
    assert_int_equal(sr_replay_count(g), 1);
    assert_int_equal(sr_replay_check(g, a, 2500, 2100, &res, &rlen), 0);
    sr_replay_free(g);
    sr_replay_free(NULL);
}

static void test_replay_capacity(void **state)
{
    (void)state;
    sr_replay *g = NULL;
    uint8_t id[16];
    assert_int_equal(sr_replay_new(&g, 3), 0);
    for (unsigned i = 0; i < 3; i++) {
        make_id(id, i);
        assert_int_equal(sr_replay_check(g, id, 1000 + i, 0, NULL, NULL), 0);
    }
    make_id(id, 99);
    assert_int_equal(sr_replay_check(g, id, 5000, 0, NULL, NULL), SR_ERR_FULL);
    /* a known id is still answered as a replay when full */
    make_id(id, 1);
    assert_int_equal(sr_replay_check(g, id, 1001, 0, NULL, NULL), SR_ERR_ENV_REPLAY);
    /* once the earliest expires, there is room again */
    make_id(id, 99);
    assert_int_equal(sr_replay_check(g, id, 5000, 1000, NULL, NULL), 0);
    make_id(id, 100);
    assert_int_equal(sr_replay_check(g, id, 5000, 1000, NULL, NULL), SR_ERR_FULL);
    assert_int_equal(sr_replay_count(g), 3);
    /* everything expires */
    assert_int_equal(sr_replay_check(g, id, 9000, 5000, NULL, NULL), 0);
    assert_int_equal(sr_replay_count(g), 1);
    sr_replay_free(g);
}

static void test_replay_result_limit(void **state)
{
    (void)state;
    sr_replay *g = NULL;
    uint8_t a[16], b[16];
    const uint8_t *res;
    size_t res_len;
    make_id(a, 1);
    make_id(b, 2);
    assert_int_equal(sr_replay_new(&g, 8), 0);
    sr_replay_set_result_limit(g, 10);
    assert_int_equal(sr_replay_check(g, a, 100, 0, NULL, NULL), 0);
    assert_int_equal(sr_replay_check(g, b, 200, 0, NULL, NULL), 0);
    /* one result over the limit by itself: refused and counted as dropped
     * (a replay is told result_dropped), nothing else dropped; a later
     * store that fits clears it */
    assert_int_equal(sr_replay_store(g, a, (const uint8_t *)"0123456789A", 11), SR_ERR_FULL);
    assert_true(sr_replay_dropped(g, a));
    assert_int_equal(sr_replay_results_dropped(g), 1);
    assert_int_equal(sr_replay_store(g, a, (const uint8_t *)"012345", 6), 0);
    assert_int_equal(sr_replay_store(g, b, (const uint8_t *)"0123", 4), 0);
    /* replacing counts only the difference: 6 + 4 still fits */
    assert_int_equal(sr_replay_store(g, a, (const uint8_t *)"abcdef", 6), 0);
    assert_int_equal(sr_replay_results_dropped(g), 1);
    assert_false(sr_replay_dropped(g, a));
    /* a new result that does not fit drops the oldest (b, since a was stored
     * again after it); the dropped id is still a replay, without its answer */
    uint8_t c[16];
    make_id(c, 3);
    assert_int_equal(sr_replay_check(g, c, 300, 0, NULL, NULL), 0);
    assert_int_equal(sr_replay_store(g, c, (const uint8_t *)"wxyz", 4), 0);
    assert_int_equal(sr_replay_results_dropped(g), 2);
    assert_true(sr_replay_dropped(g, b));
    assert_false(sr_replay_dropped(g, a));
    assert_int_equal(sr_replay_check(g, b, 200, 0, &res, &res_len), SR_ERR_ENV_REPLAY);
    assert_null(res);
    assert_int_equal(res_len, 0);
    assert_int_equal(sr_replay_check(g, a, 100, 0, &res, &res_len), SR_ERR_ENV_REPLAY);
    assert_int_equal(res_len, 6);
    assert_memory_equal(res, "abcdef", 6);
    assert_int_equal(sr_replay_check(g, c, 300, 0, &res, &res_len), SR_ERR_ENV_REPLAY);
    assert_memory_equal(res, "wxyz", 4);
    /* expiry releases the bytes: with a and b gone, 6 more fit next to c */
    uint8_t d[16];
    make_id(d, 4);
    assert_int_equal(sr_replay_check(g, d, 400, 250, NULL, NULL), 0);
    assert_false(sr_replay_dropped(g, b)); /* expired: no longer recorded */
    assert_int_equal(sr_replay_store(g, d, (const uint8_t *)"012345", 6), 0);
    assert_int_equal(sr_replay_results_dropped(g), 2);
    sr_replay_free(g);
}

/* Stores of |lo|..|hi| bytes, round robin over |nids| ids, into a guard
 * whose log holds |limit| bytes: the FIFO fills with stale triples and is
 * compacted, the ring wraps many times, and after every store each result
 * still held is exactly the last one stored for its id (no result written
 * over another), the bytes held never pass the limit, and the newest is
 * always kept. */
static void ring_rounds(size_t nids, size_t limit, size_t lo, size_t hi, unsigned rounds)
{
    sr_replay *g = NULL;
    assert_int_equal(sr_replay_new(&g, nids), 0);
    sr_replay_set_result_limit(g, limit);
    uint8_t(*id)[16] = calloc(nids, 16);
    unsigned *last = calloc(nids, sizeof(*last)); /* round + 1 of the last store */
    size_t *last_len = calloc(nids, sizeof(*last_len));
    uint8_t *val = malloc(hi);
    assert_non_null(id);
    assert_non_null(last);
    assert_non_null(last_len);
    assert_non_null(val);
    for (size_t i = 0; i < nids; i++) {
        make_id(id[i], (unsigned)i + 10);
        assert_int_equal(sr_replay_check(g, id[i], 1000, 0, NULL, NULL), 0);
    }
    srand(777);
    for (unsigned round = 0; round < rounds; round++) {
        size_t i = round % nids;
        size_t len = lo + (size_t)rand() % (hi - lo + 1);
        memset(val, (int)(round % 251), len);
        assert_int_equal(sr_replay_store(g, id[i], val, len), 0);
        last[i] = round + 1;
        last_len[i] = len;
        size_t held = 0;
        for (size_t k = 0; k < nids; k++) {
            const uint8_t *res;
            size_t res_len;
            assert_int_equal(sr_replay_check(g, id[k], 1000, 0, &res, &res_len), SR_ERR_ENV_REPLAY);
            if (!last[k]) {
                continue; /* never stored */
            }
            if (!res) {
                assert_true(sr_replay_dropped(g, id[k]));
                continue;
            }
            assert_int_equal(res_len, last_len[k]);
            uint8_t want = (uint8_t)((last[k] - 1) % 251);
            for (size_t b = 0; b < res_len; b++) {
                if (res[b] != want) {
                    fail_msg("id %zu byte %zu: %u, want %u", k, b, res[b], want);
                }
            }
            held += res_len;
        }
        assert_true(held <= limit);
        assert_false(sr_replay_dropped(g, id[i])); /* the one just stored is there */
    }
    assert_true(sr_replay_results_dropped(g) > 0);
    free(id);
    free(last);
    free(last_len);
    free(val);
    sr_replay_free(g);
}

/* A small log (on the heap) and a mapped one (2 MiB and more) with results
 * of up to a fifth of it. */
static void test_replay_result_ring(void **state)
{
    (void)state;
    ring_rounds(4, 24, 5, 10, 200);
    ring_rounds(7, 100, 1, 40, 2000);
    ring_rounds(12, (size_t)5 << 20, 1, 1 << 20, 300);
}

/* Random operations against a brute-force model: exercises probe-run
 * deletion and heap removal from the middle. */
/* sr_replay_check of id number |n|, without a result. */
static int check_n(sr_replay *g, unsigned n, int64_t exp, int64_t now)
{
    uint8_t id[16];
    make_id(id, n);
    return sr_replay_check(g, id, exp, now, NULL, NULL);
}

/* Room follows the live ids: the guard starts small and doubles up to its
 * capacity, keeping every record, stored result and expiry across each
 * growth; when full it says when room comes back. */
static void test_replay_grows(void **state)
{
    (void)state;
    enum { CAP = 20000 };
    sr_replay *g = NULL;
    uint8_t id[16];
    assert_int_equal(sr_replay_new(&g, CAP), 0);
    size_t cap0 = sr_replay_capacity(g), bytes0 = sr_replay_bytes(g);
    assert_true(cap0 < CAP);
    assert_int_equal(sr_replay_next_expiry(g), 0);
    for (unsigned i = 0; i < CAP; i++) {
        make_id(id, i * 2654435761u);
        /* expiries out of order, the earliest in the middle */
        int64_t exp = 10000 + (int64_t)((i * 7919u) % CAP);
        assert_int_equal(sr_replay_check(g, id, exp, 0, NULL, NULL), 0);
        if (i % 3 == 0) {
            assert_int_equal(sr_replay_store(g, id, (const uint8_t *)&i, sizeof(i)), 0);
        }
    }
    assert_int_equal(sr_replay_capacity(g), CAP);
    assert_true(sr_replay_bytes(g) > 4 * bytes0);
    assert_true(sr_replay_bytes(g) <= 128 * (size_t)CAP);
    assert_int_equal(sr_replay_count(g), CAP);
    assert_int_equal(check_n(g, 0xdeadbeef, 50000, 0), SR_ERR_FULL);
    assert_int_equal(sr_replay_next_expiry(g), 10000);
    for (unsigned i = 0; i < CAP; i++) {
        const uint8_t *res = NULL;
        size_t rlen = 0;
        make_id(id, i * 2654435761u);
        int64_t exp = 10000 + (int64_t)((i * 7919u) % CAP);
        assert_int_equal(sr_replay_check(g, id, exp, 0, &res, &rlen), SR_ERR_ENV_REPLAY);
        if (i % 3 == 0) {
            unsigned v;
            assert_int_equal(rlen, sizeof(v));
            memcpy(&v, res, sizeof(v));
            assert_int_equal(v, i);
        } else {
            assert_null(res);
        }
    }
    /* the earliest expiry passed: exactly one slot came back; then all but
     * the two late ones expire: room for CAP - 2 again, no regrowth */
    assert_int_equal(check_n(g, 0xdeadbeef, 50000, 10000), 0);
    assert_int_equal(check_n(g, 0xfeedface, 50000, 10000), SR_ERR_FULL);
    assert_int_equal(sr_replay_next_expiry(g), 10001);
    assert_int_equal(check_n(g, 0xfeedface, 50000, 40000), 0);
    assert_true(sr_replay_count(g) == 2 && sr_replay_capacity(g) == CAP);
    sr_replay_free(g);

    /* a budget buys a capacity whose tables fit in it */
    assert_int_equal(sr_replay_capacity_for(0), 0);
    size_t c1 = sr_replay_capacity_for((size_t)1 << 20);
    size_t c16 = sr_replay_capacity_for((size_t)16 << 20);
    assert_true(c1 > 4000 && c1 < 20000);
    assert_true(c16 > 15 * c1 && c16 < 17 * c1);
    assert_int_equal(sr_replay_new(&g, c1), 0);
    for (unsigned i = 0; i < c1; i++) {
        assert_int_equal(check_n(g, i, 1000, 0), 0);
    }
    assert_true(sr_replay_bytes(g) <= (size_t)1 << 20);
    sr_replay_free(g);
}

static void test_replay_model(void **state)
{
    (void)state;
    enum { CAP = 50, IDS = 120, OPS = 200000 };
    struct {
        bool live;
        int64_t exp;
        bool stored;
        unsigned val;
    } model[IDS];
    memset(model, 0, sizeof(model));
    sr_replay *g = NULL;
    assert_int_equal(sr_replay_new(&g, CAP), 0);
    srand(12345);
    int64_t now = 0;
    for (int op = 0; op < OPS; op++) {
        now += rand() % 3;
        unsigned k = (unsigned)rand() % IDS;
        uint8_t id[16];
        make_id(id, k * 2654435761u);
        int what = rand() % 10;
        size_t live = 0;
        for (unsigned i = 0; i < IDS; i++) {
            if (model[i].live && model[i].exp <= now) {
                model[i].live = false;
            }
            live += model[i].live;
        }
        if (what < 7) {
            int64_t exp = now + 1 + rand() % 60;
            const uint8_t *res = NULL;
            size_t rlen = 0;
            int rv = sr_replay_check(g, id, exp, now, &res, &rlen);
            if (model[k].live) {
                assert_int_equal(rv, SR_ERR_ENV_REPLAY);
                if (model[k].stored) {
                    assert_int_equal(rlen, sizeof(unsigned));
                    unsigned v;
                    memcpy(&v, res, sizeof(v));
                    assert_int_equal(v, model[k].val);
                } else {
                    assert_null(res);
                }
            } else if (live == CAP) {
                assert_int_equal(rv, SR_ERR_FULL);
            } else {
                assert_int_equal(rv, 0);
                model[k].live = true;
                model[k].exp = exp;
                model[k].stored = false;
            }
        } else if (what < 9) {
            unsigned v = (unsigned)rand();
            int rv = sr_replay_store(g, id, (const uint8_t *)&v, sizeof(v));
            if (model[k].live) {
                assert_int_equal(rv, 0);
                model[k].stored = true;
                model[k].val = v;
            } else {
                /* expired records are dropped lazily, so it may still be
                 * there: only a miss for a never-live id is certain */
                assert_true(rv == 0 || rv == SR_ERR_NOTFOUND);
            }
        } else {
            sr_replay_forget(g, id);
            model[k].live = false;
        }
    }
    sr_replay_free(g);
}

int main(void)
{
    if (sr_crypto_init() != 0) {
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_replay_basic),        cmocka_unit_test(test_replay_capacity),
        cmocka_unit_test(test_replay_result_limit), cmocka_unit_test(test_replay_result_ring),
        cmocka_unit_test(test_replay_model),        cmocka_unit_test(test_replay_grows),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
