/*
 * What the envelope tests share (test_envelope.c, test_batch.c): two keys,
 * a ring that trusts one of them, an envelope with every field set, and
 * helpers to open and compare.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>

#include "tests/crypto/env_fixture.h"

sr_key *alpha, *mallory;
sr_keyring *ring;

int env_setup(void **state)
{
    (void)state;
    static const uint8_t seed_a[32] = {0xa1}, seed_m[32] = {0x66};
    if (sr_crypto_init() || sr_key_from_seed(&alpha, seed_a) ||
        sr_key_from_seed(&mallory, seed_m) || sr_keyring_new(&ring) ||
        sr_keyring_add(ring, sr_key_public(alpha), "alpha")) {
        return -1;
    }
    return 0;
}

int env_teardown(void **state)
{
    (void)state;
    sr_key_free(alpha);
    sr_key_free(mallory);
    sr_keyring_free(ring);
    return 0;
}

static const uint8_t payload_bytes[] = "\x00\x01\x02 the application's bytes \xff";

struct sr_envelope full_env(void)
{
    struct sr_envelope e;
    memset(&e, 0, sizeof(e));
    e.kind = SR_KIND_RESULT;
    for (int i = 0; i < SR_ENV_IDBYTES; i++) {
        e.id[i] = (uint8_t)(0xa0 + i);
    }
    e.iat = NOW - 1000;
    e.exp = NOW + 60000;
    strcpy(e.src, "sat-44713");
    strcpy(e.dst, "gs-svalbard");
    strcpy(e.handler, "ndvi.v2");
    e.payload = payload_bytes;
    e.payload_len = sizeof(payload_bytes) - 1;
    e.flags = SR_ENV_HAS_WORK | SR_ENV_HAS_RESULT_BYTES | SR_ENV_HAS_STATUS | SR_ENV_HAS_ERROR |
              SR_ENV_HAS_T_RECV | SR_ENV_HAS_T_DONE;
    e.work = 12.5;
    e.result_bytes = 1 << 20;
    e.status = -42;
    strcpy(e.error, "handler exited with 3");
    e.t_recv = NOW - 800;
    e.t_done = NOW - 300;
    return e;
}

struct sr_open_opts opts_for(const char *self)
{
    struct sr_open_opts o;
    memset(&o, 0, sizeof(o));
    o.trust = ring;
    o.self_id = self;
    o.now_ms = NOW;
    return o;
}

int open_buf(const uint8_t *p, size_t n, const struct sr_open_opts *o, char *why, size_t whylen)
{
    struct sr_envelope out;
    return sr_envelope_open(&out, p, n, o, why, whylen);
}

void assert_env_equal(const struct sr_envelope *a, const struct sr_envelope *b)
{
    assert_int_equal(a->kind, b->kind);
    assert_memory_equal(a->id, b->id, SR_ENV_IDBYTES);
    assert_true(a->iat == b->iat);
    assert_true(a->exp == b->exp);
    assert_string_equal(a->src, b->src);
    assert_string_equal(a->dst, b->dst);
    assert_string_equal(a->handler, b->handler);
    assert_int_equal(a->payload_len, b->payload_len);
    if (a->payload_len) {
        assert_memory_equal(a->payload, b->payload, a->payload_len);
    }
    assert_int_equal(a->flags, b->flags);
    if (a->flags & SR_ENV_HAS_WORK) {
        assert_true(a->work == b->work);
    }
    if (a->flags & SR_ENV_HAS_RESULT_BYTES) {
        assert_true(a->result_bytes == b->result_bytes);
    }
    if (a->flags & SR_ENV_HAS_STATUS) {
        assert_true(a->status == b->status);
    }
    if (a->flags & SR_ENV_HAS_ERROR) {
        assert_string_equal(a->error, b->error);
    }
    if (a->flags & SR_ENV_HAS_T_RECV) {
        assert_true(a->t_recv == b->t_recv);
    }
    if (a->flags & SR_ENV_HAS_T_DONE) {
        assert_true(a->t_done == b->t_done);
    }
}
