/* crypto/keyring.c: add, find by id, duplicates, stable pointers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "crypto/crypto.h"

static void test_keyring_basic(void **state)
{
    (void)state;
    sr_keyring *r = NULL;
    assert_int_equal(sr_keyring_new(&r), 0);
    assert_int_equal(sr_keyring_count(r), 0);

    enum { N = 37 };
    sr_key *keys[N];
    const uint8_t *first_pk = NULL;
    const char *first_name = NULL;
    for (int i = 0; i < N; i++) {
        char name[16];
        snprintf(name, sizeof(name), "key-%d", i);
        assert_int_equal(sr_key_generate(&keys[i]), 0);
        assert_int_equal(sr_keyring_add(r, sr_key_public(keys[i]), name), 0);
        if (i == 0) {
            first_pk = sr_keyring_find(r, sr_key_id(keys[0]), &first_name);
            assert_non_null(first_pk);
        }
    }
    assert_int_equal(sr_keyring_count(r), N);
    for (int i = 0; i < N; i++) {
        const char *name = NULL;
        char want[16];
        snprintf(want, sizeof(want), "key-%d", i);
        const uint8_t *pk = sr_keyring_find(r, sr_key_id(keys[i]), &name);
        assert_non_null(pk);
        assert_memory_equal(pk, sr_key_public(keys[i]), 32);
        assert_string_equal(name, want);
        assert_non_null(sr_keyring_find(r, sr_key_id(keys[i]), NULL));
    }
    /* pointers handed out earlier survive the ring's growth */
    assert_ptr_equal(sr_keyring_find(r, sr_key_id(keys[0]), NULL), first_pk);
    assert_string_equal(first_name, "key-0");

    assert_int_equal(sr_keyring_add(r, sr_key_public(keys[3]), "again"), SR_ERR_EXISTS);
    assert_int_equal(sr_keyring_count(r), N);

    uint8_t unknown[8] = {0};
    assert_null(sr_keyring_find(r, unknown, NULL));
    assert_int_equal(sr_keyring_add(NULL, sr_key_public(keys[0]), "x"), SR_ERR_INVAL);

    sr_key *extra = NULL;
    assert_int_equal(sr_key_generate(&extra), 0);
    assert_int_equal(sr_keyring_add(r, sr_key_public(extra), NULL), 0);
    const char *name = "unset";
    assert_non_null(sr_keyring_find(r, sr_key_id(extra), &name));
    assert_string_equal(name, "");
    sr_key_free(extra);

    for (int i = 0; i < N; i++) {
        sr_key_free(keys[i]);
    }
    sr_keyring_free(r);
    sr_keyring_free(NULL);
    assert_int_equal(sr_keyring_count(NULL), 0);
}

int main(void)
{
    if (sr_crypto_init() != 0) {
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_keyring_basic),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
