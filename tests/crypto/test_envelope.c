/*
 * crypto/envelope.c: round trips of every field, and the hostile cases: every
 * byte flipped, every truncation, oversize declarations, expired, misaddressed,
 * replayed, untrusted, wrong magic, trailing bytes, malformed signed bodies.
 * Batched envelopes (SR2) are test_batch.c's.
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

static void seal(sr_buf *b, const sr_key *k, const struct sr_envelope *e)
{
    sr_buf_init(b, 1 << 26);
    assert_int_equal(sr_envelope_seal(b, k, e), 0);
}

/* ---- round trips ---------------------------------------------------------- */

static void test_roundtrip_full(void **state)
{
    (void)state;
    struct sr_envelope in = full_env(), out;
    sr_buf b;
    seal(&b, alpha, &in);
    /* the documented 12-byte header */
    static const uint8_t hdr[8] = {0xdc, 0x00, 0x04, 0xa3, 'S', 'R', '1', 0xc6};
    assert_memory_equal(b.data, hdr, 8);
    size_t body_len =
        (size_t)b.data[8] << 24 | (size_t)b.data[9] << 16 | (size_t)b.data[10] << 8 | b.data[11];
    assert_int_equal(b.len, 12 + body_len + 76);

    struct sr_open_opts o = opts_for("gs-svalbard");
    char why[256] = "";
    assert_int_equal(sr_envelope_open(&out, b.data, b.len, &o, why, sizeof(why)), 0);
    assert_env_equal(&in, &out);
    assert_memory_equal(out.signer, sr_key_id(alpha), SR_KEYIDBYTES);
    assert_string_equal(out.signer_name, "alpha");
    /* zero-copy: the payload points into the input */
    assert_true(out.payload > b.data && out.payload + out.payload_len <= b.data + b.len);
    sr_buf_free(&b);
}

static void test_roundtrip_minimal(void **state)
{
    (void)state;
    struct sr_envelope in, out;
    memset(&in, 0, sizeof(in));
    in.kind = SR_KIND_SCHEDULE;
    in.exp = NOW + 1;
    strcpy(in.dst, "gw");
    sr_buf b;
    seal(&b, alpha, &in);
    struct sr_open_opts o = opts_for(NULL);
    assert_int_equal(sr_envelope_open(&out, b.data, b.len, &o, NULL, 0), 0);
    assert_env_equal(&in, &out);
    assert_int_equal(out.flags, 0);
    assert_string_equal(out.handler, "");
    sr_buf_free(&b);

    /* each optional flag alone */
    struct sr_envelope f = full_env();
    unsigned all = f.flags;
    for (unsigned bit = 1; bit <= all; bit <<= 1) {
        f.flags = bit;
        seal(&b, alpha, &f);
        assert_int_equal(sr_envelope_open(&out, b.data, b.len, &o, NULL, 0), 0);
        assert_env_equal(&f, &out);
        sr_buf_free(&b);
    }
}

static void test_roundtrip_limits(void **state)
{
    (void)state;
    struct sr_envelope in = full_env(), out;
    memset(in.src, 's', SR_ENV_STRMAX - 1);
    memset(in.dst, 'd', SR_ENV_STRMAX - 1);
    memset(in.handler, 'h', SR_ENV_STRMAX - 1);
    memset(in.error, 'e', SR_ENV_ERRMAX - 1);
    in.iat = INT64_MIN;
    in.exp = INT64_MAX;
    in.status = INT64_MIN;
    in.t_recv = -1;
    in.t_done = 0x7fffffff;
    in.work = 0;
    in.result_bytes = 0;
    /* a payload larger than the stack verification buffer */
    size_t big = 300000;
    uint8_t *p = malloc(big);
    assert_non_null(p);
    for (size_t i = 0; i < big; i++) {
        p[i] = (uint8_t)(i * 7);
    }
    in.payload = p;
    in.payload_len = big;
    sr_buf b;
    seal(&b, alpha, &in);
    struct sr_open_opts o = opts_for(NULL);
    assert_int_equal(sr_envelope_open(&out, b.data, b.len, &o, NULL, 0), 0);
    assert_env_equal(&in, &out);
    /* the size estimate held with every field at its longest and widest: a
     * fresh buffer got its one exact reservation (12-byte header, payload,
     * 320 + the strings, 76-byte tail, 1 for a terminator) and never grew */
    size_t want = 12 + big + 320 + 3 * (SR_ENV_STRMAX - 1) + (SR_ENV_ERRMAX - 1) + 76 + 1;
    assert_true(b.len < want);
    assert_int_equal(b.cap, want);
    sr_buf_free(&b);
    free(p);
}

static void test_seal_appends(void **state)
{
    (void)state;
    struct sr_envelope in = full_env(), out;
    sr_buf b;
    sr_buf_init(&b, 1 << 20);
    assert_int_equal(sr_buf_append(&b, "abc", 3), 0);
    assert_int_equal(sr_envelope_seal(&b, alpha, &in), 0);
    size_t first = b.len;
    assert_int_equal(sr_envelope_seal(&b, alpha, &in), 0);
    assert_memory_equal(b.data, "abc", 3);
    struct sr_open_opts o = opts_for(NULL);
    assert_int_equal(sr_envelope_open(&out, b.data + 3, first - 3, &o, NULL, 0), 0);
    assert_int_equal(sr_envelope_open(&out, b.data + first, b.len - first, &o, NULL, 0), 0);
    /* deterministic: the same envelope twice gives the same bytes */
    assert_int_equal(b.len - first, first - 3);
    assert_memory_equal(b.data + 3, b.data + first, first - 3);
    sr_buf_free(&b);
}

static void test_seal_refusals(void **state)
{
    (void)state;
    sr_buf b;
    sr_buf_init(&b, 1 << 20);
    assert_int_equal(sr_buf_append(&b, "xy", 2), 0);
    struct sr_envelope e = full_env();
    e.kind = (sr_kind)0;
    assert_int_equal(sr_envelope_seal(&b, alpha, &e), SR_ERR_INVAL);
    e = full_env();
    memset(e.src, 'a', sizeof(e.src)); /* not terminated */
    assert_int_equal(sr_envelope_seal(&b, alpha, &e), SR_ERR_INVAL);
    e = full_env();
    e.work = NAN;
    assert_int_equal(sr_envelope_seal(&b, alpha, &e), SR_ERR_INVAL);
    e.work = -1;
    assert_int_equal(sr_envelope_seal(&b, alpha, &e), SR_ERR_INVAL);
    e = full_env();
    e.result_bytes = -1;
    assert_int_equal(sr_envelope_seal(&b, alpha, &e), SR_ERR_INVAL);
    e = full_env();
    e.payload = NULL;
    assert_int_equal(sr_envelope_seal(&b, alpha, &e), SR_ERR_INVAL);
    assert_int_equal(b.len, 2);
    sr_buf_free(&b);

    /* the buffer's ceiling: refused, length restored */
    sr_buf_init(&b, 100);
    assert_int_equal(sr_buf_append(&b, "xy", 2), 0);
    e = full_env();
    assert_int_equal(sr_envelope_seal(&b, alpha, &e), SR_ERR_TOOBIG);
    assert_int_equal(b.len, 2);
    sr_buf_free(&b);
}

/* Other implementations may frame minimally: 0x94, fixstr, bin8/bin16. */
static void test_open_minimal_framing(void **state)
{
    (void)state;
    struct sr_envelope in = full_env(), out;
    sr_buf b;
    seal(&b, alpha, &in);
    size_t body_len = b.len - 12 - 76;
    uint8_t *m = malloc(b.len);
    size_t n = 0;
    m[n++] = 0x94;
    m[n++] = 0xa3;
    memcpy(m + n, "SR1", 3);
    n += 3;
    m[n++] = 0xc5; /* bin16 */
    m[n++] = (uint8_t)(body_len >> 8);
    m[n++] = (uint8_t)body_len;
    memcpy(m + n, b.data + 12, body_len + 76);
    n += body_len + 76;
    struct sr_open_opts o = opts_for(NULL);
    char why[256];
    assert_int_equal(sr_envelope_open(&out, m, n, &o, why, sizeof(why)), 0);
    assert_env_equal(&in, &out);
    free(m);
    sr_buf_free(&b);
}

/* ---- hostile inputs --------------------------------------------------------- */

static bool is_structural(int rv)
{
    return rv == SR_ERR_ENV_FORMAT || rv == SR_ERR_ENV_TRUNCATED || rv == SR_ERR_ENV_OVERSIZE ||
           rv == SR_ERR_ENV_VERSION || rv == SR_ERR_ENV_TRAILING;
}

static void test_flip_every_byte(void **state)
{
    (void)state;
    struct sr_envelope in = full_env();
    sr_buf b;
    seal(&b, alpha, &in);
    size_t body_len = b.len - 12 - 76;
    size_t signer_at = 12 + body_len + 2, sig_at = signer_at + 8 + 2;
    struct sr_open_opts o = opts_for("gs-svalbard");
    static const uint8_t masks[] = {0x01, 0x02, 0x04, 0x08, 0x10, 0x20, 0x40, 0x80, 0xff};
    uint8_t *copy = malloc(b.len);
    for (size_t i = 0; i < b.len; i++) {
        for (size_t m = 0; m < sizeof(masks); m++) {
            memcpy(copy, b.data, b.len);
            copy[i] ^= masks[m];
            char why[256] = "";
            int rv = open_buf(copy, b.len, &o, why, sizeof(why));
            if (rv == 0) {
                fail_msg("flipping byte %zu with 0x%02x was accepted", i, masks[m]);
            }
            assert_true(why[0] != '\0');
            if (i >= 12 && i < 12 + body_len) {
                assert_int_equal(rv, SR_ERR_ENV_BADSIG);
            } else if (i >= signer_at && i < signer_at + 8) {
                assert_int_equal(rv, SR_ERR_ENV_UNTRUSTED);
            } else if (i >= sig_at) {
                assert_int_equal(rv, SR_ERR_ENV_BADSIG);
            } else if (i >= 4 && i < 7) {
                assert_int_equal(rv, SR_ERR_ENV_VERSION); /* "SR1" */
            } else if (!is_structural(rv)) {
                fail_msg("byte %zu ^ 0x%02x: unexpected %s (%s)", i, masks[m], sr_errname(rv), why);
            }
        }
    }
    free(copy);
    sr_buf_free(&b);
}

static void test_truncate_everywhere(void **state)
{
    (void)state;
    struct sr_envelope in = full_env();
    sr_buf b;
    seal(&b, alpha, &in);
    struct sr_open_opts o = opts_for("gs-svalbard");
    for (size_t n = 0; n < b.len; n++) {
        /* a right-sized heap copy, so ASan sees any read past the end */
        uint8_t *copy = malloc(n ? n : 1);
        memcpy(copy, b.data, n);
        char why[256] = "";
        int rv = open_buf(copy, n, &o, why, sizeof(why));
        if (rv != SR_ERR_ENV_TRUNCATED) {
            fail_msg("truncated to %zu: %s (%s)", n, sr_errname(rv), why);
        }
        free(copy);
    }
    sr_buf_free(&b);
}

static void test_oversize(void **state)
{
    (void)state;
    struct sr_open_opts o = opts_for(NULL);
    char why[256];
    /* a bin32 claiming 4 GiB - 1 */
    static const uint8_t claim[] = {0xdc, 0x00, 0x04, 0xa3, 'S',  'R', '1',
                                    0xc6, 0xff, 0xff, 0xff, 0xff, 0x00};
    assert_int_equal(open_buf(claim, sizeof(claim), &o, why, sizeof(why)), SR_ERR_ENV_OVERSIZE);
    assert_non_null(strstr(why, "4294967295"));
    /* an array32 claiming 4G elements */
    static const uint8_t arr[] = {0xdd, 0xff, 0xff, 0xff, 0xff, 0xa3, 'S', 'R', '1'};
    assert_int_equal(open_buf(arr, sizeof(arr), &o, why, sizeof(why)), SR_ERR_ENV_OVERSIZE);
    /* a str32 magic claiming 2 GiB */
    static const uint8_t str[] = {0x94, 0xdb, 0x80, 0x00, 0x00, 0x00, 'S'};
    assert_int_equal(open_buf(str, sizeof(str), &o, why, sizeof(why)), SR_ERR_ENV_OVERSIZE);
    /* under max_len but past the end: truncated */
    o.max_len = 1 << 20;
    static const uint8_t mid[] = {0x94, 0xa3, 'S', 'R', '1', 0xc6, 0x00, 0x01, 0x00, 0x00, 0x80};
    assert_int_equal(open_buf(mid, sizeof(mid), &o, why, sizeof(why)), SR_ERR_ENV_TRUNCATED);
    o.max_len = 1000;
    assert_int_equal(open_buf(mid, sizeof(mid), &o, why, sizeof(why)), SR_ERR_ENV_OVERSIZE);

    /* a whole envelope longer than max_len */
    struct sr_envelope in = full_env();
    sr_buf b;
    seal(&b, alpha, &in);
    o.max_len = b.len - 1;
    assert_int_equal(open_buf(b.data, b.len, &o, why, sizeof(why)), SR_ERR_ENV_OVERSIZE);
    o.max_len = b.len;
    assert_int_equal(open_buf(b.data, b.len, &o, why, sizeof(why)), 0);
    sr_buf_free(&b);
}

/* Every refusal has its own code and says why. */
static void test_distinct_refusals(void **state)
{
    (void)state;
    struct sr_envelope in = full_env(), out;
    in.kind = SR_KIND_WORKLOAD;
    sr_buf good, bad;
    seal(&good, alpha, &in);
    struct sr_open_opts o = opts_for("gs-svalbard");
    char why[256];
    struct {
        const char *name;
        int code;
        const char *needle;
    } seen[16];
    size_t n = 0;
#define RECORD(nm, rv, want, needle_)                                                              \
    do {                                                                                           \
        int rv_ = (rv);                                                                            \
        if (rv_ != (want)) {                                                                       \
            fail_msg("%s: got %s (%s), want %s", nm, sr_errname(rv_), why, sr_errname(want));      \
        }                                                                                          \
        if (!strstr(why, needle_)) {                                                               \
            fail_msg("%s: why \"%s\" does not mention \"%s\"", nm, why, needle_);                  \
        }                                                                                          \
        seen[n].name = nm;                                                                         \
        seen[n].code = rv_;                                                                        \
        n++;                                                                                       \
    } while (0)

    /* truncated */
    RECORD("truncated", open_buf(good.data, good.len - 1, &o, why, sizeof(why)),
           SR_ERR_ENV_TRUNCATED, "signature");
    /* oversize */
    o.max_len = 64;
    RECORD("oversize", open_buf(good.data, good.len, &o, why, sizeof(why)), SR_ERR_ENV_OVERSIZE,
           "limit");
    o.max_len = 0;
    /* expired: exp == now */
    o.now_ms = in.exp;
    RECORD("expired", open_buf(good.data, good.len, &o, why, sizeof(why)), SR_ERR_ENV_EXPIRED,
           "expired at 2026-11-22T14:04:10.250Z");
    o.now_ms = in.exp - 1;
    assert_int_equal(open_buf(good.data, good.len, &o, why, sizeof(why)), 0);
    o.now_ms = NOW;
    /* misaddressed */
    o.self_id = "gs-inuvik";
    RECORD("misaddressed", open_buf(good.data, good.len, &o, why, sizeof(why)),
           SR_ERR_ENV_MISADDRESSED, "gs-inuvik");
    o.self_id = "gs-svalbard";
    /* replayed: the second delivery of the same id */
    sr_replay *g = NULL;
    assert_int_equal(sr_replay_new(&g, 16), 0);
    assert_int_equal(sr_envelope_open(&out, good.data, good.len, &o, why, sizeof(why)), 0);
    assert_int_equal(sr_replay_check(g, out.id, out.exp, o.now_ms, NULL, NULL), 0);
    assert_int_equal(sr_envelope_open(&out, good.data, good.len, &o, why, sizeof(why)), 0);
    snprintf(why, sizeof(why), "replay");
    RECORD("replayed", sr_replay_check(g, out.id, out.exp, o.now_ms, NULL, NULL), SR_ERR_ENV_REPLAY,
           "replay");
    sr_replay_free(g);
    /* untrusted signer */
    seal(&bad, mallory, &in);
    RECORD("untrusted", open_buf(bad.data, bad.len, &o, why, sizeof(why)), SR_ERR_ENV_UNTRUSTED,
           "not a trusted key");
    sr_buf_free(&bad);
    /* bad signature: signed by mallory, claiming to be alpha */
    seal(&bad, mallory, &in);
    memcpy(bad.data + bad.len - 74, sr_key_id(alpha), 8);
    RECORD("badsig", open_buf(bad.data, bad.len, &o, why, sizeof(why)), SR_ERR_ENV_BADSIG, "alpha");
    sr_buf_free(&bad);
    /* wrong magic */
    sr_buf_init(&bad, 1 << 20);
    assert_int_equal(sr_buf_append(&bad, good.data, good.len), 0);
    bad.data[6] = '2';
    RECORD("magic", open_buf(bad.data, bad.len, &o, why, sizeof(why)), SR_ERR_ENV_VERSION,
           "\"SR2\"");
    sr_buf_free(&bad);
    /* trailing bytes */
    sr_buf_init(&bad, 1 << 20);
    assert_int_equal(sr_buf_append(&bad, good.data, good.len), 0);
    assert_int_equal(sr_buf_append(&bad, "\xc0", 1), 0);
    RECORD("trailing", open_buf(bad.data, bad.len, &o, why, sizeof(why)), SR_ERR_ENV_TRAILING,
           "1 bytes follow");
    sr_buf_free(&bad);
    /* wrong outer shape */
    static const uint8_t three[] = {0x93, 0xa3, 'S', 'R', '1', 0xc4, 0x00, 0xc4, 0x00};
    RECORD("format", open_buf(three, sizeof(three), &o, why, sizeof(why)), SR_ERR_ENV_FORMAT,
           "3 elements");
    /* kind not accepted */
    o.kinds = 1u << SR_KIND_RESULT;
    RECORD("kind", open_buf(good.data, good.len, &o, why, sizeof(why)), SR_ERR_ENV_KIND,
           "workload");
    o.kinds = (1u << SR_KIND_RESULT) | (1u << SR_KIND_WORKLOAD);
    assert_int_equal(open_buf(good.data, good.len, &o, why, sizeof(why)), 0);
    o.kinds = 0;

    for (size_t i = 0; i < n; i++) {
        for (size_t j = i + 1; j < n; j++) {
            if (seen[i].code == seen[j].code) {
                fail_msg("%s and %s share %s", seen[i].name, seen[j].name,
                         sr_errname(seen[i].code));
            }
        }
    }
    sr_buf_free(&good);
#undef RECORD
}

/* ---- signed but malformed bodies -------------------------------------------- */

struct body {
    msgpack_sbuffer sb;
    msgpack_packer pk;
};

static void body_begin(struct body *b, size_t nfields)
{
    msgpack_sbuffer_init(&b->sb);
    msgpack_packer_init(&b->pk, &b->sb, msgpack_sbuffer_write);
    msgpack_pack_map(&b->pk, nfields);
}

static void kstr(struct body *b, const char *k, const char *v)
{
    msgpack_pack_str_with_body(&b->pk, k, strlen(k));
    msgpack_pack_str_with_body(&b->pk, v, strlen(v));
}

static void kint(struct body *b, const char *k, int64_t v)
{
    msgpack_pack_str_with_body(&b->pk, k, strlen(k));
    msgpack_pack_int64(&b->pk, v);
}

static void kid(struct body *b, size_t len)
{
    static const uint8_t id[32] = {1, 2, 3};
    msgpack_pack_str_with_body(&b->pk, "id", 2);
    msgpack_pack_bin_with_body(&b->pk, id, len);
}

/* The seven required fields; |skip| names one to leave out. */
static void required(struct body *b, const char *skip)
{
    if (strcmp(skip, "v")) {
        kint(b, "v", 1);
    }
    if (strcmp(skip, "kind")) {
        kstr(b, "kind", "workload");
    }
    if (strcmp(skip, "id")) {
        kid(b, 16);
    }
    if (strcmp(skip, "iat")) {
        kint(b, "iat", NOW - 5);
    }
    if (strcmp(skip, "exp")) {
        kint(b, "exp", NOW + 5000);
    }
    if (strcmp(skip, "src")) {
        kstr(b, "src", "edge-app");
    }
    if (strcmp(skip, "dst")) {
        kstr(b, "dst", "gw");
    }
}

static int open_body(struct body *b, struct sr_envelope *out, char *why, size_t whylen,
                     unsigned kinds)
{
    sr_buf env;
    sr_buf_init(&env, 1 << 20);
    assert_int_equal(sr_envelope_seal_raw(&env, alpha, (const uint8_t *)b->sb.data, b->sb.size), 0);
    struct sr_open_opts o = opts_for("gw");
    o.kinds = kinds;
    why[0] = '\0';
    int rv = sr_envelope_open(out, env.data, env.len, &o, why, whylen);
    sr_buf_free(&env);
    msgpack_sbuffer_destroy(&b->sb);
    return rv;
}

#define EXPECT_BODY(code, needle)                                                                  \
    do {                                                                                           \
        int rv_ = open_body(&b, &out, why, sizeof(why), 0);                                        \
        if (rv_ != (code) || !strstr(why, needle)) {                                               \
            fail_msg("line %d: got %s (%s), want %s mentioning \"%s\"", __LINE__, sr_errname(rv_), \
                     why, sr_errname(code), needle);                                               \
        }                                                                                          \
    } while (0)

static void test_body_required(void **state)
{
    (void)state;
    static const char *const fields[] = {"v", "kind", "id", "iat", "exp", "src", "dst"};
    struct body b;
    struct sr_envelope out;
    char why[256];
    for (size_t i = 0; i < 7; i++) {
        body_begin(&b, 6);
        required(&b, fields[i]);
        char needle[32];
        snprintf(needle, sizeof(needle), "missing required field '%s'", fields[i]);
        EXPECT_BODY(SR_ERR_ENV_BODY, needle);
    }
    /* all present: fine, and unknown keys of every type are skipped */
    body_begin(&b, 7 + 6);
    required(&b, "");
    kstr(&b, "future", "x");
    msgpack_pack_str_with_body(&b.pk, "nested", 6);
    msgpack_pack_array(&b.pk, 3);
    msgpack_pack_map(&b.pk, 1);
    msgpack_pack_nil(&b.pk);
    msgpack_pack_true(&b.pk);
    msgpack_pack_ext_with_body(&b.pk, "abcd", 4, 7);
    msgpack_pack_float(&b.pk, 1.5f);
    msgpack_pack_int(&b.pk, 7); /* an integer key */
    msgpack_pack_str_with_body(&b.pk, "v", 1);
    msgpack_pack_nil(&b.pk); /* a nil key */
    msgpack_pack_nil(&b.pk);
    msgpack_pack_array(&b.pk, 1); /* an array key */
    msgpack_pack_int(&b.pk, 1);
    msgpack_pack_int(&b.pk, 2);
    kstr(&b, "Kind", "not the kind key");
    assert_int_equal(open_body(&b, &out, why, sizeof(why), 0), 0);
    assert_int_equal(out.kind, SR_KIND_WORKLOAD);
    assert_string_equal(out.src, "edge-app");
    assert_null(out.payload);
    assert_int_equal(out.payload_len, 0);
}

static void test_body_types(void **state)
{
    (void)state;
    struct body b;
    struct sr_envelope out;
    char why[256];

    /* body not a map */
    msgpack_sbuffer_init(&b.sb);
    msgpack_packer_init(&b.pk, &b.sb, msgpack_sbuffer_write);
    msgpack_pack_array(&b.pk, 0);
    EXPECT_BODY(SR_ERR_ENV_BODY, "expected a map");

    /* wrong types, one field at a time */
    body_begin(&b, 7);
    required(&b, "iat");
    kstr(&b, "iat", "yesterday");
    EXPECT_BODY(SR_ERR_ENV_BODY, "'iat'");

    body_begin(&b, 7);
    required(&b, "src");
    kint(&b, "src", 5);
    EXPECT_BODY(SR_ERR_ENV_BODY, "'src'");

    body_begin(&b, 7);
    required(&b, "id");
    kid(&b, 15);
    EXPECT_BODY(SR_ERR_ENV_BODY, "'id'");

    body_begin(&b, 7);
    required(&b, "kind");
    msgpack_pack_str_with_body(&b.pk, "kind", 4);
    msgpack_pack_array(&b.pk, 1);
    msgpack_pack_int(&b.pk, 1);
    EXPECT_BODY(SR_ERR_ENV_BODY, "'kind'");

    body_begin(&b, 8);
    required(&b, "");
    kstr(&b, "payload", "text, not bin");
    EXPECT_BODY(SR_ERR_ENV_BODY, "'payload'");

    body_begin(&b, 8);
    required(&b, "");
    msgpack_pack_str_with_body(&b.pk, "exp", 3);
    msgpack_pack_uint64(&b.pk, UINT64_MAX);
    EXPECT_BODY(SR_ERR_ENV_BODY, "duplicate key 'exp'");

    body_begin(&b, 7);
    required(&b, "exp");
    msgpack_pack_str_with_body(&b.pk, "exp", 3);
    msgpack_pack_uint64(&b.pk, (uint64_t)INT64_MAX + 1);
    EXPECT_BODY(SR_ERR_ENV_BODY, "'exp'");

    /* strings too long for their arrays, or with a NUL inside */
    char long_str[SR_ENV_STRMAX + 1];
    memset(long_str, 'x', SR_ENV_STRMAX);
    long_str[SR_ENV_STRMAX] = 0;
    body_begin(&b, 7);
    required(&b, "dst");
    kstr(&b, "dst", long_str);
    EXPECT_BODY(SR_ERR_ENV_BODY, "'dst' is 64 bytes, at most 63");

    body_begin(&b, 8);
    required(&b, "");
    kstr(&b, "handler", long_str);
    EXPECT_BODY(SR_ERR_ENV_BODY, "'handler'");

    char long_err[SR_ENV_ERRMAX + 1];
    memset(long_err, 'e', SR_ENV_ERRMAX);
    long_err[SR_ENV_ERRMAX] = 0;
    body_begin(&b, 8);
    required(&b, "");
    kstr(&b, "error", long_err);
    EXPECT_BODY(SR_ERR_ENV_BODY, "'error'");

    body_begin(&b, 7);
    required(&b, "dst");
    msgpack_pack_str_with_body(&b.pk, "dst", 3);
    msgpack_pack_str_with_body(&b.pk, "gw\0evil", 7);
    EXPECT_BODY(SR_ERR_ENV_BODY, "NUL");

    /* hints */
    body_begin(&b, 8);
    required(&b, "");
    msgpack_pack_str_with_body(&b.pk, "hints", 5);
    msgpack_pack_map(&b.pk, 1);
    msgpack_pack_str_with_body(&b.pk, "work", 4);
    msgpack_pack_double(&b.pk, NAN);
    EXPECT_BODY(SR_ERR_ENV_BODY, "'hints.work'");

    body_begin(&b, 8);
    required(&b, "");
    msgpack_pack_str_with_body(&b.pk, "hints", 5);
    msgpack_pack_map(&b.pk, 1);
    msgpack_pack_str_with_body(&b.pk, "work", 4);
    msgpack_pack_double(&b.pk, -0.5);
    EXPECT_BODY(SR_ERR_ENV_BODY, "'hints.work'");

    body_begin(&b, 8);
    required(&b, "");
    msgpack_pack_str_with_body(&b.pk, "hints", 5);
    msgpack_pack_map(&b.pk, 1);
    msgpack_pack_str_with_body(&b.pk, "work", 4);
    msgpack_pack_double(&b.pk, INFINITY);
    EXPECT_BODY(SR_ERR_ENV_BODY, "'hints.work'");

    body_begin(&b, 8);
    required(&b, "");
    msgpack_pack_str_with_body(&b.pk, "hints", 5);
    msgpack_pack_map(&b.pk, 1);
    kint(&b, "result_bytes", -1);
    EXPECT_BODY(SR_ERR_ENV_BODY, "'hints.result_bytes'");

    body_begin(&b, 8);
    required(&b, "");
    kint(&b, "hints", 3);
    EXPECT_BODY(SR_ERR_ENV_BODY, "'hints'");

    /* integer and float32 work are numbers too; unknown hints are skipped */
    body_begin(&b, 8);
    required(&b, "");
    msgpack_pack_str_with_body(&b.pk, "hints", 5);
    msgpack_pack_map(&b.pk, 3);
    kint(&b, "work", 5);
    kstr(&b, "colour", "blue");
    kint(&b, "result_bytes", 77);
    assert_int_equal(open_body(&b, &out, why, sizeof(why), 0), 0);
    assert_true(out.work == 5.0);
    assert_true(out.result_bytes == 77);
    assert_int_equal(out.flags, SR_ENV_HAS_WORK | SR_ENV_HAS_RESULT_BYTES);

    body_begin(&b, 8);
    required(&b, "");
    msgpack_pack_str_with_body(&b.pk, "hints", 5);
    msgpack_pack_map(&b.pk, 1);
    msgpack_pack_str_with_body(&b.pk, "work", 4);
    msgpack_pack_float(&b.pk, 0.25f);
    assert_int_equal(open_body(&b, &out, why, sizeof(why), 0), 0);
    assert_true(out.work == 0.25);
}

static void test_body_version_kind(void **state)
{
    (void)state;
    struct body b;
    struct sr_envelope out;
    char why[256];

    body_begin(&b, 7);
    required(&b, "v");
    kint(&b, "v", 2);
    EXPECT_BODY(SR_ERR_ENV_VERSION, "v=2");

    /* a v2 body may change types: the version is reported, not the type */
    body_begin(&b, 7);
    kint(&b, "src", 17);
    required(&b, "src");
    msgpack_sbuffer_destroy(&b.sb);
    body_begin(&b, 7);
    kint(&b, "src", 17);
    kint(&b, "v", 2);
    kstr(&b, "kind", "workload");
    kid(&b, 16);
    kint(&b, "iat", 0);
    kint(&b, "exp", NOW + 1);
    kstr(&b, "dst", "gw");
    EXPECT_BODY(SR_ERR_ENV_VERSION, "v=2");

    body_begin(&b, 7);
    required(&b, "v");
    kstr(&b, "v", "1");
    EXPECT_BODY(SR_ERR_ENV_BODY, "'v'");

    body_begin(&b, 7);
    required(&b, "kind");
    kstr(&b, "kind", "bogus\x01");
    EXPECT_BODY(SR_ERR_ENV_KIND, "unknown kind 'bogus?'");

    body_begin(&b, 7);
    required(&b, "");
    int rv = open_body(&b, &out, why, sizeof(why), 1u << SR_KIND_RESULT);
    assert_int_equal(rv, SR_ERR_ENV_KIND);
}

static void test_body_structure(void **state)
{
    (void)state;
    struct body b;
    struct sr_envelope out;
    char why[256];

    /* a map declaring more entries than it has */
    body_begin(&b, 9);
    required(&b, "");
    EXPECT_BODY(SR_ERR_ENV_BODY, "truncated");

    /* bytes after the map, inside the signed body */
    body_begin(&b, 7);
    required(&b, "");
    msgpack_pack_nil(&b.pk);
    EXPECT_BODY(SR_ERR_ENV_BODY, "1 bytes follow the body map");

    /* deep nesting inside an unknown value */
    body_begin(&b, 8);
    required(&b, "");
    msgpack_pack_str_with_body(&b.pk, "deep", 4);
    for (int i = 0; i < 40; i++) {
        msgpack_pack_array(&b.pk, 1);
    }
    msgpack_pack_nil(&b.pk);
    EXPECT_BODY(SR_ERR_ENV_BODY, "deeper than 32");

    /* 30 levels are fine */
    body_begin(&b, 8);
    required(&b, "");
    msgpack_pack_str_with_body(&b.pk, "deep", 4);
    for (int i = 0; i < 30; i++) {
        msgpack_pack_map(&b.pk, 1);
        msgpack_pack_int(&b.pk, i);
    }
    msgpack_pack_nil(&b.pk);
    assert_int_equal(open_body(&b, &out, why, sizeof(why), 0), 0);

    /* the never-used byte */
    body_begin(&b, 8);
    required(&b, "");
    msgpack_pack_str_with_body(&b.pk, "odd", 3);
    msgpack_sbuffer_write(&b.sb, "\xc1", 1);
    EXPECT_BODY(SR_ERR_ENV_BODY, "0xc1");

    /* a huge declared length inside the (signed) body */
    body_begin(&b, 8);
    required(&b, "");
    msgpack_pack_str_with_body(&b.pk, "blob", 4);
    msgpack_sbuffer_write(&b.sb, "\xc6\xff\xff\xff\xff", 5);
    EXPECT_BODY(SR_ERR_ENV_BODY, "truncated");

    /* an empty body */
    msgpack_sbuffer_init(&b.sb);
    msgpack_packer_init(&b.pk, &b.sb, msgpack_sbuffer_write);
    EXPECT_BODY(SR_ERR_ENV_BODY, "truncated");
}

static void test_seal_raw_roundtrip(void **state)
{
    (void)state;
    struct body b;
    struct sr_envelope out;
    char why[256];
    body_begin(&b, 9);
    required(&b, "");
    kstr(&b, "handler", "echo");
    msgpack_pack_str_with_body(&b.pk, "payload", 7);
    msgpack_pack_bin_with_body(&b.pk, "ping", 4);
    assert_int_equal(open_body(&b, &out, why, sizeof(why), 0), 0);
    assert_string_equal(out.handler, "echo");
    assert_int_equal(out.payload_len, 4);
    assert_memory_equal(out.payload, "ping", 4);
}

static void test_open_invalid_args(void **state)
{
    (void)state;
    struct sr_envelope out;
    struct sr_open_opts o = opts_for(NULL);
    char why[64];
    assert_int_equal(sr_envelope_open(&out, NULL, 1, &o, why, sizeof(why)), SR_ERR_INVAL);
    assert_int_equal(sr_envelope_open(&out, NULL, 0, &o, why, sizeof(why)), SR_ERR_ENV_TRUNCATED);
    o.trust = NULL;
    assert_int_equal(sr_envelope_open(&out, (const uint8_t *)"", 0, &o, why, sizeof(why)),
                     SR_ERR_INVAL);
    assert_string_equal(sr_kind_name(SR_KIND_RESULT), "result");
    assert_string_equal(sr_kind_name((sr_kind)9), "?");
    uint8_t a[16], b[16];
    sr_envelope_new_id(a);
    sr_envelope_new_id(b);
    assert_memory_not_equal(a, b, 16);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip_full),     cmocka_unit_test(test_roundtrip_minimal),
        cmocka_unit_test(test_roundtrip_limits),   cmocka_unit_test(test_seal_appends),
        cmocka_unit_test(test_seal_refusals),      cmocka_unit_test(test_open_minimal_framing),
        cmocka_unit_test(test_flip_every_byte),    cmocka_unit_test(test_truncate_everywhere),
        cmocka_unit_test(test_oversize),           cmocka_unit_test(test_distinct_refusals),
        cmocka_unit_test(test_body_required),      cmocka_unit_test(test_body_types),
        cmocka_unit_test(test_body_version_kind),  cmocka_unit_test(test_body_structure),
        cmocka_unit_test(test_seal_raw_roundtrip), cmocka_unit_test(test_open_invalid_args),
    };
    return cmocka_run_group_tests(tests, env_setup, env_teardown);
}
