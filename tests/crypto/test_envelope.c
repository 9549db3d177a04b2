/*
 * crypto/envelope.c: round trips of every field, and the hostile cases: every
 * byte flipped, every truncation, oversize declarations, expired, misaddressed,
 * replayed, untrusted, wrong magic, trailing bytes, malformed signed bodies.
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

#define NOW 1795356190250LL /* 2026-11-22T14:03:10.250Z */

static sr_key *alpha, *mallory;
static sr_keyring *ring;

static int setup(void **state)
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

static int teardown(void **state)
{
    (void)state;
    sr_key_free(alpha);
    sr_key_free(mallory);
    sr_keyring_free(ring);
    return 0;
}

static const uint8_t payload_bytes[] = "\x00\x01\x02 the application's bytes \xff";

static struct sr_envelope full_env(void)
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

static struct sr_open_opts opts_for(const char *self)
{
    struct sr_open_opts o;
    memset(&o, 0, sizeof(o));
    o.trust = ring;
    o.self_id = self;
    o.now_ms = NOW;
    return o;
}

static void seal(sr_buf *b, const sr_key *k, const struct sr_envelope *e)
{
    sr_buf_init(b, 1 << 26);
    assert_int_equal(sr_envelope_seal(b, k, e), 0);
}

static int open_buf(const uint8_t *p, size_t n, const struct sr_open_opts *o, char *why,
                    size_t whylen)
{
    struct sr_envelope out;
    return sr_envelope_open(&out, p, n, o, why, whylen);
}

/* ---- round trips ---------------------------------------------------------- */

static void assert_env_equal(const struct sr_envelope *a, const struct sr_envelope *b)
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

static int id_cmp(const void *a, const void *b)
{
    return memcmp(a, b, SR_ENV_IDBYTES);
}

/* Ids come from a pool refilled every 256 ids: none repeats across refills,
 * and a forked child does not hand out its parent's next ids. */
static void test_new_id_pool(void **state)
{
    (void)state;
    enum { N = 2000 };
    uint8_t(*ids)[SR_ENV_IDBYTES] = malloc(N * SR_ENV_IDBYTES);
    assert_non_null(ids);
    for (size_t i = 0; i < N; i++) {
        sr_envelope_new_id(ids[i]);
    }
    qsort(ids, N, SR_ENV_IDBYTES, id_cmp);
    for (size_t i = 1; i < N; i++) {
        assert_memory_not_equal(ids[i - 1], ids[i], SR_ENV_IDBYTES);
    }
    free(ids);

    int fds[2];
    assert_int_equal(pipe(fds), 0);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        uint8_t c[SR_ENV_IDBYTES];
        sr_envelope_new_id(c);
        _exit(write(fds[1], c, sizeof(c)) == (ssize_t)sizeof(c) ? 0 : 1);
    }
    uint8_t mine[SR_ENV_IDBYTES], child[SR_ENV_IDBYTES];
    sr_envelope_new_id(mine);
    assert_int_equal(read(fds[0], child, sizeof(child)), (ssize_t)sizeof(child));
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    assert_memory_not_equal(mine, child, SR_ENV_IDBYTES);
    close(fds[0]);
    close(fds[1]);
}

/* The root cache holds the last 64 roots, newest first: a batch's envelopes
 * hit it, an evicted root is verified again (and still opens). */
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
        cmocka_unit_test(test_roundtrip_full),
        cmocka_unit_test(test_roundtrip_minimal),
        cmocka_unit_test(test_roundtrip_limits),
        cmocka_unit_test(test_seal_appends),
        cmocka_unit_test(test_seal_refusals),
        cmocka_unit_test(test_open_minimal_framing),
        cmocka_unit_test(test_flip_every_byte),
        cmocka_unit_test(test_truncate_everywhere),
        cmocka_unit_test(test_oversize),
        cmocka_unit_test(test_distinct_refusals),
        cmocka_unit_test(test_body_required),
        cmocka_unit_test(test_body_types),
        cmocka_unit_test(test_body_version_kind),
        cmocka_unit_test(test_body_structure),
        cmocka_unit_test(test_seal_raw_roundtrip),
        cmocka_unit_test(test_open_invalid_args),
        cmocka_unit_test(test_batch_roundtrip),
        cmocka_unit_test(test_single_large_envelope_is_a_tree_of_one),
        cmocka_unit_test(test_new_id_pool),
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
    return cmocka_run_group_tests(tests, setup, teardown);
}
