/* crypto/sighdr.c: the skyroute-signature header (v2) of operator uploads. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "crypto/crypto.h"

static const uint8_t body[] = "{\"station\": \"gs-1\", \"passes\": []}";
#define BLEN (sizeof(body) - 1)
#define NONCE "0123456789abcdef0123"
#define TS 1780000000

static struct sr_sigreq req(const char *target, const char *ct)
{
    struct sr_sigreq r = {"PUT", target, ct, "gs-a", body, BLEN};
    return r;
}

/* The canonical string, byte for byte as crypto.h documents it. */
static void test_canon(void **state)
{
    (void)state;
    sr_buf c;
    sr_buf_init(&c, 0);
    char why[256];
    struct sr_sigreq r =
        req("/v1/passes?format=ion&epoch=2026-01-01T00%3A00%3A00Z&x", "text/plain ");
    assert_int_equal(sr_sighdr_canon(&c, &r, TS, NONCE, why, sizeof(why)), 0);
    uint8_t dig[32];
    char hex[65], want[512];
    crypto_hash_sha256(dig, body, BLEN);
    sr_hex(hex, dig, 32);
    snprintf(
        want, sizeof(want),
        "skyroute-signature v2\nPUT\n/v1/passes\nepoch=2026-01-01T00%%3A00%%3A00Z&format=ion&x=\n"
        "text/plain\ngs-a\n%d\n" NONCE "\n%s\n",
        TS, hex);
    assert_int_equal(c.len, strlen(want));
    assert_memory_equal(c.data, want, c.len);

    /* '+' and %XX decode as the gateway's query reader does; one spelling each */
    r = req("/v1/x?b=x+y&a=%7e%41", NULL);
    assert_int_equal(sr_sighdr_canon(&c, &r, TS, NONCE, why, sizeof(why)), 0);
    assert_int_equal(sr_buf_terminate(&c), 0);
    assert_non_null(strstr((const char *)c.data, "\n/v1/x\na=~A&b=x%20y\n\ngs-a\n"));

    /* what the format cannot carry without two meanings */
    static const char *const bad[] = {
        "/v1/passes?epoch=1&epoch=2", /* which one wins depends on the raw order */
        "/v1/passes?%65poch=1",       /* the gateway matches names raw */
        "/v1/passes?a=%zz",
        "/v1/passes?a=%0",
        "/v1/passes?a=%00",
        "/v1/pa%73ses",
        "/v1/passes/../elements?",
        "v1/passes",
        "",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        r = req(bad[i], NULL);
        int rv = sr_sighdr_canon(&c, &r, TS, NONCE, why, sizeof(why));
        if (i == 6) {
            assert_int_equal(rv, 0); /* dots are unreserved: routed byte for byte, never resolved */
            continue;
        }
        assert_int_equal(rv, SR_ERR_PARSE);
    }
    r = req("/v1/passes", "text/plain\x01");
    assert_int_equal(sr_sighdr_canon(&c, &r, TS, NONCE, why, sizeof(why)), SR_ERR_PARSE);
    r = req("/v1/passes", NULL);
    r.method = "put";
    assert_int_equal(sr_sighdr_canon(&c, &r, TS, NONCE, why, sizeof(why)), SR_ERR_PARSE);
    sr_buf_free(&c);
}

static void test_sign_verify(void **state)
{
    (void)state;
    static const uint8_t seed[32] = {1, 2, 3};
    sr_key *k = NULL, *other = NULL;
    sr_keyring *ring = NULL;
    assert_int_equal(sr_key_from_seed(&k, seed), 0);
    assert_int_equal(sr_key_generate(&other), 0);
    assert_int_equal(sr_keyring_new(&ring), 0);
    assert_int_equal(sr_keyring_add(ring, sr_key_public(k), "ops"), 0);

    char hdr[SR_SIGHDR_MAX], why[256];
    struct sr_sigreq r = req("/v1/passes?format=json", "application/json");
    int n = sr_sighdr_sign(hdr, k, &r, TS, NONCE, why, sizeof(why));
    assert_true(n > 0 && (size_t)n == strlen(hdr));
    char idhex[17];
    sr_hex(idhex, sr_key_id(k), 8);
    char prefix[128];
    snprintf(prefix, sizeof(prefix), "v2 key=%s ts=%d nonce=" NONCE " station=gs-a sig=", idhex,
             TS);
    assert_memory_equal(hdr, prefix, strlen(prefix));

    /* the signature is plain Ed25519 over the canonical string */
    uint8_t sig[64];
    size_t sl = 0;
    const char *b64 = strstr(hdr, "sig=") + 4;
    assert_int_equal(sr_b64_decode(sig, sizeof(sig), &sl, b64, strlen(b64)), 0);
    sr_buf c;
    sr_buf_init(&c, 0);
    assert_int_equal(sr_sighdr_canon(&c, &r, TS, NONCE, why, sizeof(why)), 0);
    assert_int_equal(sr_verify(sr_key_public(k), sig, c.data, c.len), 0);
    sr_buf_free(&c);

    sr_sighdr h;
    const char *name = NULL;
    assert_int_equal(sr_sighdr_verify(ring, hdr, strlen(hdr), &r, &h, &name, why, sizeof(why)), 0);
    assert_string_equal(name, "ops");
    assert_int_equal(h.ts, TS);
    assert_string_equal(h.nonce, NONCE);

    /* fields in another order, extra spaces, upper-case hex: the same header */
    char moved[SR_SIGHDR_MAX];
    snprintf(moved, sizeof(moved), "  v2  sig=%s station=gs-a   nonce=" NONCE " ts=%d key=%s\r\n",
             b64, TS, idhex);
    for (char *p = strstr(moved, "key=") + 4; *p && *p != '\r'; p++) {
        *p = (char)(*p >= 'a' && *p <= 'f' ? *p - 32 : *p);
    }
    assert_int_equal(sr_sighdr_verify(ring, moved, strlen(moved), &r, &h, NULL, why, sizeof(why)),
                     0);

    /* every bound part of the request changed in turn: none verifies */
    struct sr_sigreq m;
    const struct sr_sigreq changed[] = {
        {"PUT", r.target, r.content_type, "gs-a", body, BLEN - 1},
        {"POST", r.target, r.content_type, "gs-a", body, BLEN},
        {"PUT", "/v1/elements?format=json", r.content_type, "gs-a", body, BLEN},
        {"PUT", "/v1/passes?format=ion", r.content_type, "gs-a", body, BLEN},
        {"PUT", "/v1/passes?format=json&force=1", r.content_type, "gs-a", body, BLEN},
        {"PUT", r.target, "text/plain", "gs-a", body, BLEN},
        {"PUT", r.target, NULL, "gs-a", body, BLEN},
    };
    for (size_t i = 0; i < sizeof(changed) / sizeof(changed[0]); i++) {
        assert_int_equal(
            sr_sighdr_verify(ring, hdr, strlen(hdr), &changed[i], &h, NULL, why, sizeof(why)),
            SR_ERR_ENV_BADSIG);
        assert_non_null(strstr(why, "ops"));
    }
    m = r;
    m.station = "gs-b"; /* a good signature for gs-a, received by gs-b */
    assert_int_equal(sr_sighdr_verify(ring, hdr, strlen(hdr), &m, &h, NULL, why, sizeof(why)),
                     SR_ERR_ENV_MISADDRESSED);
    assert_non_null(strstr(why, "gs-a"));
    char edited[SR_SIGHDR_MAX];
    snprintf(edited, sizeof(edited), "v2 key=%s ts=%d nonce=" NONCE " station=gs-a sig=%s", idhex,
             TS + 1, b64);
    assert_int_equal(sr_sighdr_verify(ring, edited, strlen(edited), &r, &h, NULL, why, sizeof(why)),
                     SR_ERR_ENV_BADSIG);
    snprintf(edited, sizeof(edited), "v2 key=%s ts=%d nonce=" NONCE "x station=gs-a sig=%s", idhex,
             TS, b64);
    assert_int_equal(sr_sighdr_verify(ring, edited, strlen(edited), &r, &h, NULL, why, sizeof(why)),
                     SR_ERR_ENV_BADSIG);
    snprintf(edited, sizeof(edited), "v2 key=%s ts=%d nonce=" NONCE " station=gs-b sig=%s", idhex,
             TS, b64);
    m = r;
    m.station = "gs-b"; /* the station field edited to match the receiver */
    assert_int_equal(sr_sighdr_verify(ring, edited, strlen(edited), &m, &h, NULL, why, sizeof(why)),
                     SR_ERR_ENV_BADSIG);

    /* an unknown key */
    char theirs[SR_SIGHDR_MAX];
    assert_true(sr_sighdr_sign(theirs, other, &r, TS, NONCE, why, sizeof(why)) > 0);
    assert_int_equal(sr_sighdr_verify(ring, theirs, strlen(theirs), &r, &h, NULL, why, sizeof(why)),
                     SR_ERR_ENV_UNTRUSTED);
    /* a nonce or station the format cannot carry is refused when signing */
    assert_int_equal(sr_sighdr_sign(theirs, k, &r, TS, "short", why, sizeof(why)), SR_ERR_PARSE);
    m = r;
    m.station = "gs a";
    assert_int_equal(sr_sighdr_sign(theirs, k, &m, TS, NONCE, why, sizeof(why)), SR_ERR_PARSE);

    sr_key_free(k);
    sr_key_free(other);
    sr_keyring_free(ring);
}

static void test_parse(void **state)
{
    (void)state;
    sr_sighdr h;
    char why[256];
    static const char *const sig88 =
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==";
    char good[SR_SIGHDR_MAX];
    snprintf(good, sizeof(good), "v2 key=0123456789abcdef ts=1 nonce=" NONCE " station=a sig=%s",
             sig88);
    assert_int_equal(sr_sighdr_parse(&h, good, strlen(good), why, sizeof(why)), 0);
    assert_int_equal(h.ts, 1);

    /* the old body-only format is named as such */
    char v1[128];
    snprintf(v1, sizeof(v1), "0123456789abcdef:%s", sig88);
    assert_int_equal(sr_sighdr_parse(&h, v1, strlen(v1), why, sizeof(why)), SR_ERR_ENV_VERSION);
    assert_non_null(strstr(why, "upgrade"));
    assert_int_equal(sr_sighdr_parse(&h, "v3 key=1", 8, why, sizeof(why)), SR_ERR_ENV_VERSION);
    assert_int_equal(sr_sighdr_parse(&h, "", 0, why, sizeof(why)), SR_ERR_PARSE);
    assert_int_equal(sr_sighdr_parse(&h, "v2x key=1", 9, why, sizeof(why)), SR_ERR_PARSE);
    assert_int_equal(sr_sighdr_parse(&h, "v10", 3, why, sizeof(why)), SR_ERR_ENV_VERSION);

    static const char *const bad[] = {
        "v2",
        "v2 key=0123456789abcdef ts=1 nonce=" NONCE " station=a",         /* no sig */
        "v2 key=0123456789abcdeg ts=1 nonce=" NONCE " station=a sig=%s",  /* hex */
        "v2 key=0123456789abcdef ts=01 nonce=" NONCE " station=a sig=%s", /* leading 0 */
        "v2 key=0123456789abcdef ts=-1 nonce=" NONCE " station=a sig=%s", /* sign */
        "v2 key=0123456789abcdef ts=1234567890123 nonce=" NONCE " station=a sig=%s",
        "v2 key=0123456789abcdef ts=1 nonce=short station=a sig=%s",
        "v2 key=0123456789abcdef ts=1 nonce=" NONCE "+ station=a sig=%s",
        "v2 key=0123456789abcdef ts=1 nonce=" NONCE " station= sig=%s",
        "v2 key=0123456789abcdef ts=1 nonce=" NONCE " station=a/b sig=%s",
        "v2 key=0123456789abcdef ts=1 nonce=" NONCE " station=a sig=%s ts=2",    /* twice */
        "v2 key=0123456789abcdef ts=1 nonce=" NONCE " station=a sig=%s force=1", /* unknown */
        "v2 key=0123456789abcdef ts=1 nonce=" NONCE " station=a sig=%s=",
        "v2 key=0123456789abcdef ts=1 nonce=" NONCE " station=a sig=AAAA",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char v[SR_SIGHDR_MAX + 64];
        const char *at = strstr(bad[i], "%s");
        size_t pre = at ? (size_t)(at - bad[i]) : strlen(bad[i]);
        snprintf(v, sizeof(v), "%.*s%s%s", (int)pre, bad[i], at ? sig88 : "", at ? at + 2 : "");
        assert_int_equal(sr_sighdr_parse(&h, v, strlen(v), why, sizeof(why)), SR_ERR_PARSE);
        assert_true(why[0] != 0);
    }
    char longv[SR_SIGHDR_MAX + 8];
    memset(longv, ' ', sizeof(longv));
    memcpy(longv, "v2", 2);
    longv[sizeof(longv) - 2] = 'x';
    assert_int_equal(sr_sighdr_parse(&h, longv, sizeof(longv) - 1, why, sizeof(why)), SR_ERR_PARSE);
}

int main(void)
{
    if (sr_crypto_init() != 0) {
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_canon),
        cmocka_unit_test(test_sign_verify),
        cmocka_unit_test(test_parse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
