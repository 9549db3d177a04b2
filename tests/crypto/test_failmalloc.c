/*
 * Out-of-memory policy (STYLE habit 6): every allocation the crypto module
 * makes is failed in turn; each call must then return SR_ERR_NOMEM (or
 * succeed) and leave nothing leaked or half-built. Under -DSR_SANITIZE=ON,
 * LeakSanitizer checks the "nothing leaked" part.
 *
 * malloc/calloc/realloc are wrapped at link time (-Wl,--wrap), which catches
 * the calls made from libsr_crypto.a and libsr_common.a (libsodium's own
 * sodium_malloc is not wrapped).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "crypto/crypto.h"

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t m);
void *__real_realloc(void *p, size_t n);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t n, size_t m);
void *__wrap_realloc(void *p, size_t n);

static long countdown = -1; /* fail when it reaches 0; -1: never */
static long injected;

static int should_fail(void)
{
    if (countdown < 0) {
        return 0;
    }
    if (countdown-- == 0) {
        injected++;
        return 1;
    }
    return 0;
}

void *__wrap_malloc(size_t n)
{
    return should_fail() ? NULL : __real_malloc(n);
}

void *__wrap_calloc(size_t n, size_t m)
{
    return should_fail() ? NULL : __real_calloc(n, m);
}

void *__wrap_realloc(void *p, size_t n)
{
    return should_fail() ? NULL : __real_realloc(p, n);
}

#define OK_OR_NOMEM(expr)                                                                          \
    do {                                                                                           \
        int rv_ = (expr);                                                                          \
        if (rv_ != 0 && rv_ != SR_ERR_NOMEM) {                                                     \
            fail_msg("%s: %s", #expr, sr_errname(rv_));                                            \
        }                                                                                          \
        if (rv_) {                                                                                 \
            goto out;                                                                              \
        }                                                                                          \
    } while (0)

/* One pass of a receiver's life: ring, guard, seal, open, store. */
static void scenario(const sr_key *key, const uint8_t *payload, size_t plen)
{
    sr_keyring *ring = NULL;
    sr_replay *guard = NULL;
    sr_buf b;
    sr_buf_init(&b, 1 << 24);

    OK_OR_NOMEM(sr_keyring_new(&ring));
    for (int i = 0; i < 6; i++) {
        uint8_t pk[SR_PUBLICKEYBYTES];
        memcpy(pk, sr_key_public(key), sizeof(pk));
        if (i < 5) {
            /* other valid points: public keys of derived seeds (sr_key lives
             * in sodium_malloc'd memory, which is not wrapped) */
            uint8_t seed[32] = {(uint8_t)(i + 1)};
            sr_key *k = NULL;
            if (sr_key_from_seed(&k, seed) != 0) {
                goto out;
            }
            memcpy(pk, sr_key_public(k), sizeof(pk));
            sr_key_free(k);
        }
        OK_OR_NOMEM(sr_keyring_add(ring, pk, "peer"));
    }
    assert_int_equal(sr_keyring_count(ring), 6);

    OK_OR_NOMEM(sr_replay_new(&guard, 8));

    struct sr_envelope e;
    memset(&e, 0, sizeof(e));
    e.kind = SR_KIND_WORKLOAD;
    e.exp = 2000;
    strcpy(e.src, "a");
    strcpy(e.dst, "gw");
    strcpy(e.handler, "h");
    e.payload = payload;
    e.payload_len = plen;
    OK_OR_NOMEM(sr_envelope_seal(&b, key, &e));

    struct sr_open_opts o = {.trust = ring, .self_id = "gw", .now_ms = 1000};
    struct sr_envelope out;
    char why[128];
    OK_OR_NOMEM(sr_envelope_open(&out, b.data, b.len, &o, why, sizeof(why)));
    assert_int_equal(out.payload_len, plen);

    OK_OR_NOMEM(sr_replay_check(guard, out.id, out.exp, o.now_ms, NULL, NULL));
    OK_OR_NOMEM(sr_replay_store(guard, out.id, out.payload, out.payload_len));
    const uint8_t *res = NULL;
    size_t rlen = 0;
    assert_int_equal(sr_replay_check(guard, out.id, out.exp, o.now_ms, &res, &rlen),
                     SR_ERR_ENV_REPLAY);
    assert_int_equal(rlen, plen);
out:
    sr_buf_free(&b);
    sr_replay_free(guard);
    sr_keyring_free(ring);
}

/* Runs |run| with allocation 0, 1, 2, ... failing, until a run reaches none
 * (at most |max| runs): how many allocations it makes. */
static long fail_each_in_turn(void (*run)(const sr_key *, const uint8_t *, size_t),
                              const sr_key *key, const uint8_t *p, size_t len, long max)
{
    long n;
    for (n = 0; n < max; n++) {
        injected = 0;
        countdown = n;
        run(key, p, len);
        countdown = -1;
        if (injected == 0) {
            break; /* the scenario ran to the end without reaching allocation n */
        }
    }
    return n;
}

static void test_every_allocation_fails_in_turn(void **state)
{
    (void)state;
    static const uint8_t seed[32] = {9};
    sr_key *key = NULL;
    assert_int_equal(sr_key_from_seed(&key, seed), 0);
    size_t plen = 20000; /* over the stack buffer: open allocates */
    uint8_t *payload = __real_malloc(plen);
    assert_non_null(payload);
    memset(payload, 0x42, plen);

    long n = fail_each_in_turn(scenario, key, payload, plen, 10000);
    print_message("failed each of %ld allocations in turn\n", n);
    assert_true(n > 10); /* the scenario does allocate */
    assert_true(n < 10000);
    free(payload);
    sr_key_free(key);
}

static const struct sr_record_format rec_fmt = {.magic = "OOM1",
                                                .context = "skyroute/test/oom/v1",
                                                .signer_form = SR_SIGNER_NAME,
                                                .noun = "record",
                                                .signer_noun = "station"};

static const uint8_t *rec_lookup(void *arg, const uint8_t *signer, size_t len, const char **name)
{
    (void)signer;
    (void)len;
    (void)name;
    return sr_key_public(arg);
}

struct rec_body {
    const uint8_t *p;
    size_t len;
};

static int rec_pack(const void *arg, sr_buf *out, struct msgpack_packer *pk)
{
    (void)pk;
    const struct rec_body *r = arg;
    return sr_buf_append(out, r->p, r->len);
}

/* The record codec: sealing into an empty buffer (it grows), opening a body
 * over the stack buffer (verified from a heap copy). */
static void record_scenario(const sr_key *key, const uint8_t *body, size_t len)
{
    sr_buf b;
    sr_buf_init(&b, 1 << 24);
    struct rec_body r = {body, len};
    OK_OR_NOMEM(sr_record_seal(&b, &rec_fmt, key, "gs-oom", len, rec_pack, &r));
    struct sr_record_opener op = {
        .formats = &rec_fmt, .nformats = 1, .lookup = rec_lookup, .arg = (void *)key};
    struct sr_record rec;
    char why[128];
    OK_OR_NOMEM(sr_record_open(&rec, &op, b.data, b.len, why, sizeof(why)));
    assert_int_equal(rec.body_len, len);
    assert_string_equal(rec.signer, "gs-oom");
out:
    sr_buf_free(&b);
}

static void test_record_allocations_fail_in_turn(void **state)
{
    (void)state;
    static const uint8_t seed[32] = {9};
    sr_key *key = NULL;
    assert_int_equal(sr_key_from_seed(&key, seed), 0);
    size_t len = 20000;
    uint8_t *body = __real_malloc(len);
    assert_non_null(body);
    memset(body, 0xc1, len); /* not msgpack: the codec never decodes it */
    long n = fail_each_in_turn(record_scenario, key, body, len, 100);
    print_message("record codec: failed each of %ld allocations in turn\n", n);
    assert_true(n >= 2); /* the buffer, the verification copy */
    assert_true(n < 100);
    free(body);
    sr_key_free(key);
}

int main(void)
{
    if (sr_crypto_init() != 0) {
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_allocation_fails_in_turn),
        cmocka_unit_test(test_record_allocations_fail_in_turn),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
