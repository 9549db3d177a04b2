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

    long n;
    for (n = 0; n < 10000; n++) {
        injected = 0;
        countdown = n;
        scenario(key, payload, plen);
        countdown = -1;
        if (injected == 0) {
            break; /* the scenario ran to the end without reaching allocation n */
        }
    }
    print_message("failed each of %ld allocations in turn\n", n);
    assert_true(n > 10); /* the scenario does allocate */
    assert_true(n < 10000);
    free(payload);
    sr_key_free(key);
}

int main(void)
{
    if (sr_crypto_init() != 0) {
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_allocation_fails_in_turn),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
