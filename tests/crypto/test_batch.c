/*
 * crypto/batch.c and crypto/merkle.c: batched envelopes (SR2), one signature
 * over a Merkle root: round trips of every batch size, a single large
 * envelope as a tree of one, the root cache and its climb shortcut, every
 * byte flipped, crossing SR1 and SR2; the "auto" batch size; batch messages
 * (POST /v1/batch), split and answered.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <limits.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <msgpack.h>

#include "crypto/crypto.h"
#include "tests/crypto/env_fixture.h"

/* ---- batched envelopes (SR2) ------------------------------------------------ */

#define BATCH_MAXN 17

/* Seals |n| envelopes addressed to "gs-svalbard", ids and payloads distinct. */
static void seal_batch_n(sr_buf *outs, struct sr_envelope *envs, uint8_t (*payloads)[40], size_t n,
                         const sr_key *k)
{
    for (size_t i = 0; i < n; i++) {
        envs[i] = full_env();
        envs[i].id[0] = (uint8_t)i;
        snprintf((char *)payloads[i], 40, "payload number %zu", i);
        envs[i].payload = payloads[i];
        envs[i].payload_len = strlen((char *)payloads[i]);
        sr_buf_init(&outs[i], 1 << 20);
    }
    assert_int_equal(sr_envelope_seal_batch(outs, k, envs, n), 0);
}

static void free_bufs(sr_buf *b, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        sr_buf_free(&b[i]);
    }
}

static void test_batch_roundtrip(void **state)
{
    (void)state;
    static const size_t sizes[] = {1, 2, 3, 5, 8, BATCH_MAXN};
    for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
        size_t n = sizes[s];
        sr_buf outs[BATCH_MAXN];
        struct sr_envelope envs[BATCH_MAXN];
        uint8_t payloads[BATCH_MAXN][40];
        seal_batch_n(outs, envs, payloads, n, alpha);
        sr_rootcache *cache;
        assert_int_equal(sr_rootcache_new(&cache), 0);
        for (int pass = 0; pass < 2; pass++) { /* without, then with the cache */
            struct sr_open_opts o = opts_for("gs-svalbard");
            o.roots = pass ? cache : NULL;
            for (size_t i = 0; i < n; i++) {
                struct sr_envelope out;
                char why[256] = "";
                assert_int_equal(
                    sr_envelope_open(&out, outs[i].data, outs[i].len, &o, why, sizeof(why)), 0);
                assert_env_equal(&out, &envs[i]);
                assert_int_equal(out.version, n == 1 ? 1 : 2);
                /* the tree's depth: n padded to a power of two */
                assert_int_equal((size_t)1 << out.depth, n == 1   ? 1
                                                         : n <= 2 ? 2
                                                         : n <= 4 ? 4
                                                         : n <= 8 ? 8
                                                                  : 32);
                assert_memory_equal(outs[i].data + 4, n == 1 ? "SR1" : "SR2", 3);
                assert_string_equal(out.signer_name, "alpha");
            }
        }
        /* one signature verified for the whole batch, the rest from the cache */
        assert_int_equal(sr_rootcache_hits(cache), n == 1 ? 0 : n - 1);
        sr_rootcache_free(cache);
        free_bufs(outs, n);
    }
}

/* One envelope sealed alone: SR1 below SR_ENV_PREHASH_MIN bytes of payload, an SR2 tree of
 * one leaf from there on (its signature covers the body's SHA-256). It opens like any other,
 * any changed byte of body or signature fails, and its root never enters the root cache. */
static void test_single_large_envelope_is_a_tree_of_one(void **state)
{
    (void)state;
    static const size_t lens[] = {1024, SR_ENV_PREHASH_MIN - 1, SR_ENV_PREHASH_MIN, 65536};
    uint8_t *payload = malloc(65536);
    assert_non_null(payload);
    for (size_t i = 0; i < 65536; i++) {
        payload[i] = (uint8_t)(i * 7 + 3);
    }
    for (size_t l = 0; l < sizeof(lens) / sizeof(lens[0]); l++) {
        struct sr_envelope e = full_env();
        e.payload = payload;
        e.payload_len = lens[l];
        sr_buf b;
        sr_buf_init(&b, 1 << 20);
        assert_int_equal(sr_envelope_seal_one(&b, alpha, &e), 0);
        bool tree = lens[l] >= SR_ENV_PREHASH_MIN;
        assert_memory_equal(b.data + 4, tree ? "SR2" : "SR1", 3);
        sr_rootcache *cache;
        assert_int_equal(sr_rootcache_new(&cache), 0);
        struct sr_open_opts o = opts_for("gs-svalbard");
        o.roots = cache;
        for (int k = 0; k < 2; k++) {
            struct sr_envelope out;
            char why[256] = "";
            assert_int_equal(sr_envelope_open(&out, b.data, b.len, &o, why, sizeof(why)), 0);
            assert_env_equal(&out, &e);
            assert_int_equal(out.version, tree ? 2 : 1);
            assert_int_equal(out.depth, 0);
        }
        assert_int_equal(sr_rootcache_hits(cache), 0);
        if (tree) {
            size_t body_len = (size_t)b.data[8] << 24 | (size_t)b.data[9] << 16 |
                              (size_t)b.data[10] << 8 | b.data[11];
            size_t sig_at = 12 + body_len + 2 + 8 + 2;
            /* index 0 (uint16) and an empty path (bin16) end it */
            assert_int_equal(b.len, sig_at + 64 + 3 + 3);
            static const size_t at[] = {12, 100, 4000};
            uint8_t *copy = malloc(b.len);
            assert_non_null(copy);
            for (size_t i = 0; i < 4; i++) {
                size_t pos = i < 3 ? 12 + body_len - 1 - at[i] : sig_at + 10;
                memcpy(copy, b.data, b.len);
                copy[pos] ^= 0x20;
                char why[256] = "";
                assert_int_equal(open_buf(copy, b.len, &o, why, sizeof(why)), SR_ERR_ENV_BADSIG);
            }
            free(copy);
        }
        sr_rootcache_free(cache);
        sr_buf_free(&b);
    }
    free(payload);
}

static void test_batch_rootcache_eviction(void **state)
{
    (void)state;
    enum { BATCHES = 70 };
    sr_buf outs[BATCHES][2];
    struct sr_envelope envs[2];
    uint8_t payloads[2][40];
    for (size_t b = 0; b < BATCHES; b++) { /* distinct batches, distinct roots */
        for (size_t i = 0; i < 2; i++) {
            envs[i] = full_env();
            envs[i].id[0] = (uint8_t)i;
            envs[i].id[1] = (uint8_t)b;
            snprintf((char *)payloads[i], 40, "batch %zu, payload %zu", b, i);
            envs[i].payload = payloads[i];
            envs[i].payload_len = strlen((char *)payloads[i]);
            sr_buf_init(&outs[b][i], 1 << 20);
        }
        assert_int_equal(sr_envelope_seal_batch(outs[b], alpha, envs, 2), 0);
    }
    sr_rootcache *cache;
    assert_int_equal(sr_rootcache_new(&cache), 0);
    struct sr_open_opts o = opts_for("gs-svalbard");
    o.roots = cache;
    for (size_t b = 0; b < BATCHES; b++) { /* first of each: verified; second: a hit */
        assert_int_equal(open_buf(outs[b][0].data, outs[b][0].len, &o, NULL, 0), 0);
        assert_int_equal(open_buf(outs[b][1].data, outs[b][1].len, &o, NULL, 0), 0);
        assert_int_equal(sr_rootcache_hits(cache), b + 1);
    }
    /* the newest 64 are still there */
    assert_int_equal(open_buf(outs[BATCHES - 1][0].data, outs[BATCHES - 1][0].len, &o, NULL, 0), 0);
    assert_int_equal(open_buf(outs[BATCHES - 64][0].data, outs[BATCHES - 64][0].len, &o, NULL, 0),
                     0);
    assert_int_equal(sr_rootcache_hits(cache), BATCHES + 2);
    /* the oldest was evicted: verified again, no hit */
    assert_int_equal(open_buf(outs[0][1].data, outs[0][1].len, &o, NULL, 0), 0);
    assert_int_equal(sr_rootcache_hits(cache), BATCHES + 2);
    sr_rootcache_free(cache);
    for (size_t b = 0; b < BATCHES; b++) {
        free_bufs(outs[b], 2);
    }
}

static void test_batch_flip_every_byte(void **state)
{
    (void)state;
    sr_buf outs[5];
    struct sr_envelope envs[5];
    uint8_t payloads[5][40];
    seal_batch_n(outs, envs, payloads, 5, alpha);
    sr_rootcache *cache;
    assert_int_equal(sr_rootcache_new(&cache), 0);
    struct sr_open_opts o = opts_for("gs-svalbard");
    o.roots = cache;
    /* the genuine batch is in the cache: a tampered copy must still fail */
    for (size_t i = 0; i < 5; i++) {
        assert_int_equal(open_buf(outs[i].data, outs[i].len, &o, NULL, 0), 0);
    }
    const sr_buf *b = &outs[3];
    uint8_t *copy = malloc(b->len);
    assert_non_null(copy);
    size_t body_len = (size_t)b->data[8] << 24 | (size_t)b->data[9] << 16 |
                      (size_t)b->data[10] << 8 | b->data[11];
    size_t signer_at = 12 + body_len + 2, sig_at = signer_at + 8 + 2;
    size_t index_at = sig_at + 64, path_at = index_at + 3 + 3;
    assert_int_equal(b->len, path_at + 3 * 32); /* 5 leaves: depth 3 */
    static const uint8_t masks[] = {0x01, 0x10, 0x80, 0xff};
    for (size_t i = 0; i < b->len; i++) {
        for (size_t m = 0; m < sizeof(masks); m++) {
            memcpy(copy, b->data, b->len);
            copy[i] ^= masks[m];
            char why[256] = "";
            int rv = open_buf(copy, b->len, &o, why, sizeof(why));
            if (rv == 0) {
                fail_msg("batched: flipping byte %zu with 0x%02x was accepted", i, masks[m]);
            }
            if ((i >= 12 && i < 12 + body_len) || (i >= sig_at && i < index_at) || i >= path_at) {
                assert_int_equal(rv, SR_ERR_ENV_BADSIG); /* body, signature, path */
            } else if (i >= signer_at && i < signer_at + 8) {
                assert_int_equal(rv, SR_ERR_ENV_UNTRUSTED);
            }
        }
    }
    /* another leaf's index (valid, below 2^depth) with this body and path */
    for (unsigned idx = 0; idx < 8; idx++) {
        if (idx == 3) {
            continue;
        }
        memcpy(copy, b->data, b->len);
        copy[index_at + 1] = 0;
        copy[index_at + 2] = (uint8_t)idx;
        assert_int_equal(open_buf(copy, b->len, &o, NULL, 0), SR_ERR_ENV_BADSIG);
    }
    /* envelope 3's body with envelope 2's index and path */
    memcpy(copy, b->data, b->len);
    memcpy(copy + index_at, outs[2].data + index_at, 6 + 3 * 32);
    assert_int_equal(open_buf(copy, b->len, &o, NULL, 0), SR_ERR_ENV_BADSIG);
    free(copy);
    sr_rootcache_free(cache);
    free_bufs(outs, 5);
}

/* A root signature is no SR1 body signature and vice versa; a batch sealed by
 * an untrusted key fails; the usual body rules (expiry, address) still hold. */
static void test_batch_cross_and_rules(void **state)
{
    (void)state;
    sr_buf outs[2];
    struct sr_envelope envs[2];
    uint8_t payloads[2][40];
    seal_batch_n(outs, envs, payloads, 2, alpha);
    const sr_buf *b = &outs[0];
    size_t body_len = (size_t)b->data[8] << 24 | (size_t)b->data[9] << 16 |
                      (size_t)b->data[10] << 8 | b->data[11];
    size_t tail_at = 12 + body_len;
    /* as SR1: same body, signer and signature in a 4-element array */
    sr_buf v1;
    sr_buf_init(&v1, 1 << 20);
    assert_int_equal(sr_buf_append(&v1, b->data, tail_at + 10 + 66), 0);
    v1.data[2] = 4;
    v1.data[6] = '1';
    assert_int_equal(
        open_buf(v1.data, v1.len, &(struct sr_open_opts){.trust = ring, .now_ms = NOW}, NULL, 0),
        SR_ERR_ENV_BADSIG);
    /* 6 elements with SR1's magic, 4 with SR2's */
    sr_buf_reset(&v1);
    assert_int_equal(sr_buf_append(&v1, b->data, b->len), 0);
    v1.data[6] = '1';
    char why[256];
    struct sr_open_opts o = opts_for("gs-svalbard");
    assert_int_equal(open_buf(v1.data, v1.len, &o, why, sizeof(why)), SR_ERR_ENV_VERSION);
    sr_buf_free(&v1);
    /* structural: path not whole hashes, index out of range */
    uint8_t *copy = malloc(b->len + 1);
    assert_non_null(copy);
    size_t index_at = tail_at + 10 + 66;
    memcpy(copy, b->data, b->len);
    copy[index_at + 2] = 2; /* depth 1: index must be 0 or 1 */
    assert_int_equal(open_buf(copy, b->len, &o, why, sizeof(why)), SR_ERR_ENV_FORMAT);
    memcpy(copy, b->data, b->len);
    copy[index_at + 5] = 31; /* path bin16 length 32 -> 31 */
    assert_int_equal(open_buf(copy, b->len - 1, &o, why, sizeof(why)), SR_ERR_ENV_FORMAT);
    free(copy);
    /* expiry and address are checked as for SR1 */
    struct sr_open_opts late = opts_for("gs-svalbard");
    late.now_ms = envs[0].exp;
    assert_int_equal(open_buf(b->data, b->len, &late, why, sizeof(why)), SR_ERR_ENV_EXPIRED);
    struct sr_open_opts other = opts_for("gs-other");
    assert_int_equal(open_buf(b->data, b->len, &other, why, sizeof(why)), SR_ERR_ENV_MISADDRESSED);
    free_bufs(outs, 2);
    /* mallory's batch claiming to be alpha's */
    seal_batch_n(outs, envs, payloads, 2, mallory);
    memcpy(outs[1].data + tail_at + 2, sr_key_id(alpha), 8);
    assert_int_equal(open_buf(outs[1].data, outs[1].len, &o, why, sizeof(why)), SR_ERR_ENV_BADSIG);
    free_bufs(outs, 2);
    /* refusals leave every buffer as it was */
    sr_buf bufs[3];
    struct sr_envelope bad[3] = {full_env(), full_env(), full_env()};
    bad[2].kind = (sr_kind)9;
    for (int i = 0; i < 3; i++) {
        sr_buf_init(&bufs[i], 1 << 20);
        assert_int_equal(sr_buf_append(&bufs[i], "x", 1), 0);
    }
    assert_int_equal(sr_envelope_seal_batch(bufs, alpha, bad, 3), SR_ERR_INVAL);
    assert_int_equal(sr_envelope_seal_batch(bufs, alpha, bad, 0), SR_ERR_INVAL);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(bufs[i].len, 1);
    }
    free_bufs(bufs, 3);
}

/* The level where leaf |i|'s climb first meets leaf |j|'s. */
static unsigned meet_level(uint64_t i, uint64_t j)
{
    unsigned l = 1;
    while ((i >> l) != (j >> l)) {
        l++;
    }
    return l;
}

/* Receivers stop climbing where an envelope's path meets that of the last one opened
 * under the same signature; the verdict is the full climb's. Every tampered byte of
 * the next envelope still fails, and a failure leaves the cache as it was. */
static void test_batch_climb_shortcut(void **state)
{
    (void)state;
    enum { N = BATCH_MAXN, DEPTH = 5 }; /* 17 leaves: a tree 5 deep */
    sr_buf outs[N];
    struct sr_envelope envs[N];
    uint8_t payloads[N][40];
    seal_batch_n(outs, envs, payloads, N, alpha);
    struct sr_open_opts o = opts_for("gs-svalbard");
    sr_rootcache *cache;
    /* in order, then backwards, then every other one */
    static const int orders[3] = {1, -1, 2};
    for (int ord = 0; ord < 3; ord++) {
        assert_int_equal(sr_rootcache_new(&cache), 0);
        o.roots = cache;
        uint64_t saved = 0, prev = 0;
        for (int step = 0; step < N; step++) {
            uint64_t i = orders[ord] == 1    ? (uint64_t)step
                         : orders[ord] == -1 ? (uint64_t)(N - 1 - step)
                                             : (uint64_t)((step * 2) % N);
            struct sr_envelope out;
            char why[256] = "";
            assert_int_equal(
                sr_envelope_open(&out, outs[i].data, outs[i].len, &o, why, sizeof(why)), 0);
            assert_env_equal(&out, &envs[i]);
            assert_int_equal(out.depth, DEPTH);
            if (step > 0) {
                saved += DEPTH - meet_level(i, prev);
            }
            prev = i;
        }
        assert_int_equal(sr_rootcache_hits(cache), N - 1);
        assert_int_equal(sr_rootcache_hashes_saved(cache), saved);
        assert_true(saved > 0);
        sr_rootcache_free(cache);
    }

    /* leaf 6 after leaf 5: they meet at level 2 (below, 6 and 7 hash to their own node) */
    const sr_buf *prev = &outs[5], *cur = &outs[6];
    uint8_t *copy = malloc(cur->len);
    assert_non_null(copy);
    size_t body_len = (size_t)cur->data[8] << 24 | (size_t)cur->data[9] << 16 |
                      (size_t)cur->data[10] << 8 | cur->data[11];
    size_t index_at = 12 + body_len + 2 + 8 + 2 + 64, path_at = index_at + 3 + 3;
    assert_int_equal(cur->len, path_at + DEPTH * 32);
    static const uint8_t masks[] = {0x01, 0x80};
    for (size_t i = 0; i < cur->len; i++) {
        for (size_t m = 0; m < sizeof(masks); m++) {
            assert_int_equal(sr_rootcache_new(&cache), 0);
            o.roots = cache;
            assert_int_equal(open_buf(prev->data, prev->len, &o, NULL, 0), 0);
            memcpy(copy, cur->data, cur->len);
            copy[i] ^= masks[m];
            if (open_buf(copy, cur->len, &o, NULL, 0) == 0) {
                fail_msg("after leaf 5, flipping byte %zu of leaf 6 with 0x%02x was accepted", i,
                         masks[m]);
            }
            /* the genuine one still opens, through the shortcut */
            assert_int_equal(open_buf(cur->data, cur->len, &o, NULL, 0), 0);
            assert_int_equal(sr_rootcache_hashes_saved(cache), DEPTH - 2);
            sr_rootcache_free(cache);
        }
    }
    /* leaf 6's body and index with leaf 5's path, and leaf 5's with leaf 6's index */
    assert_int_equal(sr_rootcache_new(&cache), 0);
    o.roots = cache;
    assert_int_equal(open_buf(prev->data, prev->len, &o, NULL, 0), 0);
    memcpy(copy, cur->data, cur->len);
    memcpy(copy + path_at, prev->data + path_at, DEPTH * 32);
    assert_int_equal(open_buf(copy, cur->len, &o, NULL, 0), SR_ERR_ENV_BADSIG);
    assert_int_equal(sr_rootcache_hashes_saved(cache), 0);
    sr_rootcache_free(cache);
    free(copy);
    free_bufs(outs, N);
}

/* "auto": 32 while few are in flight, an eighth of them past 256, at most 256. */
static void test_batch_auto_follows_inflight(void **state)
{
    (void)state;
    static const size_t cases[][2] = {{0, 32},       {1, 32},        {100, 32},   {263, 32},
                                      {264, 33},     {1000, 125},    {2047, 255}, {2048, 256},
                                      {100000, 256}, {SIZE_MAX, 256}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        assert_int_equal(sr_envelope_batch_auto(cases[i][0], 0), cases[i][1]);
    }
    /* a sender of answers: as large a batch as the deepest request's tree */
    static const struct {
        size_t inflight;
        unsigned depth;
        size_t want;
    } ans[] = {{0, 0, 32},     {0, 5, 32},   {0, 6, 64},   {10, 7, 128},
               {2000, 7, 250}, {0, 8, 256},  {0, 9, 256},  {0, 15, 256},
               {0, 16, 256},   {0, 63, 256}, {0, 64, 256}, {0, UINT_MAX, 256}};
    for (size_t i = 0; i < sizeof(ans) / sizeof(ans[0]); i++) {
        assert_int_equal(sr_envelope_batch_auto(ans[i].inflight, ans[i].depth), ans[i].want);
    }
    assert_int_equal(SR_ENV_BATCH_DEFAULT, 32);
    assert_true(SR_ENV_BATCH_AUTO_MAX <= SR_ENV_BATCH_MAX);
}

/* ---- batch messages (POST /v1/batch) -------------------------------------------------- */

static void test_batchmsg_split_roundtrip(void **state)
{
    (void)state;
    /* lengths that take each bin header: 8, 16 and 32 bits */
    static const size_t lens[] = {0, 1, 255, 256, 65535, 65536, 70000};
    size_t n = sizeof(lens) / sizeof(lens[0]);
    sr_buf msg;
    sr_buf_init(&msg, 1 << 20);
    uint8_t *src = malloc(70000);
    assert_non_null(src);
    for (size_t i = 0; i < 70000; i++) {
        src[i] = (uint8_t)(i * 7);
    }
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(sr_batch_append_env(&msg, src, lens[i]), 0);
    }
    struct sr_batch_env envs[8];
    size_t k = 0;
    char why[160];
    assert_int_equal(sr_batch_split(msg.data, msg.len, envs, 8, &k, why, sizeof(why)), 0);
    assert_int_equal(k, n);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(envs[i].len, lens[i]);
        if (lens[i]) {
            assert_memory_equal(envs[i].ptr, src, lens[i]);
        }
    }
    /* more than |max| */
    assert_int_equal(sr_batch_split(msg.data, msg.len, envs, 3, &k, why, sizeof(why)),
                     SR_ERR_TOOBIG);
    assert_non_null(strstr(why, "more than 3"));
    /* a message cut anywhere inside its last value is refused */
    for (size_t cut = 1; cut < 70000 + 5; cut += 997) {
        int rv = sr_batch_split(msg.data, msg.len - cut, envs, 8, &k, why, sizeof(why));
        assert_int_equal(rv, SR_ERR_PARSE);
        assert_non_null(strstr(why, "cut short"));
    }
    free(src);
    sr_buf_free(&msg);
}

static void test_batchmsg_split_refusals(void **state)
{
    (void)state;
    struct sr_batch_env envs[4];
    size_t k = 99;
    char why[160];
    assert_int_equal(sr_batch_split((const uint8_t *)"", 0, envs, 4, &k, why, sizeof(why)),
                     SR_ERR_PARSE);
    assert_non_null(strstr(why, "no envelope"));
    /* a str, an int, an array: each not a bin, named with its offset */
    static const uint8_t not_bin[] = {0xc4, 0x01, 0x41, 0xa1, 0x41};
    assert_int_equal(sr_batch_split(not_bin, sizeof(not_bin), envs, 4, &k, why, sizeof(why)),
                     SR_ERR_PARSE);
    assert_non_null(strstr(why, "offset 3 is not a bin"));
    static const uint8_t an_int[] = {0x05};
    assert_int_equal(sr_batch_split(an_int, 1, envs, 4, &k, why, sizeof(why)), SR_ERR_PARSE);
    assert_non_null(strstr(why, "offset 0 is not a bin"));
    static const uint8_t c1[] = {0xc1};
    assert_int_equal(sr_batch_split(c1, 1, envs, 4, &k, why, sizeof(why)), SR_ERR_PARSE);
    /* a bin 32 declaring 4 GiB in a 6-byte message */
    static const uint8_t huge[] = {0xc6, 0xff, 0xff, 0xff, 0xff, 0x00};
    assert_int_equal(sr_batch_split(huge, sizeof(huge), envs, 4, &k, why, sizeof(why)),
                     SR_ERR_PARSE);
    assert_non_null(strstr(why, "cut short"));
    assert_int_equal(k, 99); /* untouched on failure */
}

static void test_batchmsg_items(void **state)
{
    (void)state;
    sr_buf ans;
    sr_buf_init(&ans, 1 << 20);
    static const uint32_t idx[] = {0, 127, 128, 255, 256, 65535, 65536, UINT32_MAX};
    static const int st[] = {200, 409, 401, 503, 100, 999, 200, 422};
    const char *ct[] = {"application/vnd.msgpack",
                        "application/json",
                        "",
                        "x",
                        "0123456789012345678901234567890",
                        "a",
                        "b",
                        "c"};
    static uint8_t body[300];
    for (size_t i = 0; i < 8; i++) {
        struct sr_batch_item it = {
            .index = idx[i], .status = st[i], .ctype = ct[i], .body = body, .len = i * 40};
        assert_int_equal(sr_batch_append_item(&ans, &it), 0);
    }
    /* out of range: refused, nothing appended */
    size_t before = ans.len;
    struct sr_batch_item bad = {.index = 1, .status = 99, .ctype = "x", .body = body, .len = 1};
    assert_int_equal(sr_batch_append_item(&ans, &bad), SR_ERR_INVAL);
    bad.status = 200;
    bad.ctype = "01234567890123456789012345678901"; /* 32 bytes */
    assert_int_equal(sr_batch_append_item(&ans, &bad), SR_ERR_INVAL);
    assert_int_equal(ans.len, before);

    /* read whole, then one byte at a time as a stream would bring them */
    for (int pass = 0; pass < 2; pass++) {
        size_t off = 0, have = pass ? 0 : ans.len, got = 0;
        char why[160];
        while (off < ans.len) {
            struct sr_batch_item it;
            size_t used;
            assert_int_equal(
                sr_batch_next_item(ans.data + off, have - off, &it, &used, why, sizeof(why)), 0);
            if (used == 0) {
                assert_true(have < ans.len);
                have++;
                continue;
            }
            assert_int_equal(it.index, idx[got]);
            assert_int_equal(it.status, st[got]);
            assert_string_equal(it.ctype, ct[got]);
            assert_int_equal(it.len, got * 40);
            got++;
            off += used;
        }
        assert_int_equal(got, 8);
    }
    sr_buf_free(&ans);
}

static void test_batchmsg_item_refusals(void **state)
{
    (void)state;
    struct sr_batch_item it;
    size_t used;
    char why[160];
    /* not an array / an array of 3 / a status out of range / an index that is
     * not an unsigned int / a body that is a str */
    static const uint8_t a[] = {0x93, 0x00, 0xcc, 0xc8, 0xa0};
    static const uint8_t b[] = {0x94, 0x00, 0x63, 0xa0, 0xc4, 0x00};
    static const uint8_t c[] = {0x94, 0xff, 0xcc, 0xc8, 0xa0, 0xc4, 0x00};
    static const uint8_t d[] = {0x94, 0x00, 0xcc, 0xc8, 0xa0, 0xa1, 0x41};
    static const uint8_t e[] = {0x81, 0x00, 0x00};
    const uint8_t *cases[] = {a, b, c, d, e};
    size_t lens[] = {sizeof(a), sizeof(b), sizeof(c), sizeof(d), sizeof(e)};
    for (size_t i = 0; i < 5; i++) {
        assert_int_equal(sr_batch_next_item(cases[i], lens[i], &it, &used, why, sizeof(why)),
                         SR_ERR_PARSE);
        assert_non_null(strstr(why, "batch answer"));
    }
    /* an incomplete item is not an error yet */
    static const uint8_t part[] = {0x94, 0x00, 0xcc, 0xc8};
    used = 7;
    assert_int_equal(sr_batch_next_item(part, sizeof(part), &it, &used, why, sizeof(why)), 0);
    assert_int_equal(used, 0);
    assert_int_equal(sr_batch_next_item(part, 0, &it, &used, why, sizeof(why)), 0);
    assert_int_equal(used, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_batch_roundtrip),
        cmocka_unit_test(test_single_large_envelope_is_a_tree_of_one),
        cmocka_unit_test(test_batch_rootcache_eviction),
        cmocka_unit_test(test_batch_flip_every_byte),
        cmocka_unit_test(test_batch_cross_and_rules),
        cmocka_unit_test(test_batch_auto_follows_inflight),
        cmocka_unit_test(test_batch_climb_shortcut),
        cmocka_unit_test(test_batchmsg_split_roundtrip),
        cmocka_unit_test(test_batchmsg_split_refusals),
        cmocka_unit_test(test_batchmsg_items),
        cmocka_unit_test(test_batchmsg_item_refusals),
    };
    return cmocka_run_group_tests(tests, env_setup, env_teardown);
}
