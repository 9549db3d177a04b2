/*
 * What the envelope tests share (env_fixture.c): cmocka group setup and
 * teardown making |alpha| (trusted, as "alpha"), |mallory| (not trusted) and
 * |ring|; an envelope with every field set; helpers to open and compare.
 */
#ifndef SR_TESTS_CRYPTO_ENV_FIXTURE_H
#define SR_TESTS_CRYPTO_ENV_FIXTURE_H

#include <stddef.h>
#include <stdint.h>

#include "crypto/crypto.h"

#define NOW 1795356190250LL /* 2026-11-22T14:03:10.250Z */

extern sr_key *alpha, *mallory;
extern sr_keyring *ring;

int env_setup(void **state);
int env_teardown(void **state);
/* A result from "sat-44713" to "gs-svalbard" with every optional field. */
struct sr_envelope full_env(void);
/* Trusting |ring|, at NOW, addressed to |self| (NULL: any). */
struct sr_open_opts opts_for(const char *self);
int open_buf(const uint8_t *p, size_t n, const struct sr_open_opts *o, char *why, size_t whylen);
void assert_env_equal(const struct sr_envelope *a, const struct sr_envelope *b);

#endif /* SR_TESTS_CRYPTO_ENV_FIXTURE_H */
