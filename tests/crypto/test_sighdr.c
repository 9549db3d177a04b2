/* crypto/sighdr.c: the skyroute-signature header of operator uploads. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <ctype.h>
#include <string.h>

#include "crypto/crypto.h"

static void test_sighdr(void **state)
{
    (void)state;
    static const uint8_t seed[32] = {1, 2, 3};
    sr_key *k = NULL, *other = NULL;
    sr_keyring *ring = NULL;
    assert_int_equal(sr_key_from_seed(&k, seed), 0);
    assert_int_equal(sr_key_generate(&other), 0);
    assert_int_equal(sr_keyring_new(&ring), 0);
    assert_int_equal(sr_keyring_add(ring, sr_key_public(k), "ops"), 0);

    const uint8_t body[] = "{\"station\": \"gs-1\", \"passes\": []}";
    size_t blen = sizeof(body) - 1;
    char hdr[SR_SIGHDR_MAX], why[256];
    assert_int_equal(sr_sighdr_sign(hdr, k, body, blen), 105);
    char idhex[17];
    sr_hex(idhex, sr_key_id(k), 8);
    assert_memory_equal(hdr, idhex, 16);
    assert_int_equal(hdr[16], ':');
    /* the signature is plain Ed25519 over the body */
    uint8_t sig[64];
    size_t n = 0;
    assert_int_equal(sr_b64_decode(sig, sizeof(sig), &n, hdr + 17, strlen(hdr + 17)), 0);
    assert_int_equal(sr_verify(sr_key_public(k), sig, body, blen), 0);

    const char *name = NULL;
    assert_int_equal(sr_sighdr_verify(ring, hdr, strlen(hdr), body, blen, &name, why, sizeof(why)),
                     0);
    assert_string_equal(name, "ops");

    char spaced[SR_SIGHDR_MAX + 4];
    strcpy(spaced, " ");
    strcat(spaced, hdr);
    strcat(spaced, "\r\n");
    for (int i = 0; i < 16; i++) {
        spaced[1 + i] = (char)toupper((unsigned char)spaced[1 + i]);
    }
    assert_int_equal(
        sr_sighdr_verify(ring, spaced, strlen(spaced), body, blen, NULL, why, sizeof(why)), 0);

    /* a changed body */
    assert_int_equal(
        sr_sighdr_verify(ring, hdr, strlen(hdr), body, blen - 1, NULL, why, sizeof(why)),
        SR_ERR_ENV_BADSIG);
    assert_non_null(strstr(why, "ops"));
    /* an unknown key */
    char theirs[SR_SIGHDR_MAX];
    sr_sighdr_sign(theirs, other, body, blen);
    assert_int_equal(
        sr_sighdr_verify(ring, theirs, strlen(theirs), body, blen, NULL, why, sizeof(why)),
        SR_ERR_ENV_UNTRUSTED);
    /* malformed values */
    static const char *const bad[] = {
        "", "abc", "0123456789abcdef", "0123456789abcdef:", "0123456789abcdeg:AAAA",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(
            sr_sighdr_verify(ring, bad[i], strlen(bad[i]), body, blen, NULL, why, sizeof(why)),
            SR_ERR_PARSE);
    }
    char broken[SR_SIGHDR_MAX];
    strcpy(broken, hdr);
    broken[16] = ';';
    assert_int_equal(
        sr_sighdr_verify(ring, broken, strlen(broken), body, blen, NULL, why, sizeof(why)),
        SR_ERR_PARSE);
    strcpy(broken, hdr);
    broken[40] = '*';
    assert_int_equal(
        sr_sighdr_verify(ring, broken, strlen(broken), body, blen, NULL, why, sizeof(why)),
        SR_ERR_PARSE);

    sr_key_free(k);
    sr_key_free(other);
    sr_keyring_free(ring);
}

int main(void)
{
    if (sr_crypto_init() != 0) {
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sighdr),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
