/*
 * gateway/cluster/record.c: the signed records stations exchange over NATS.
 * Round trips of every kind; the signature is checked before the body is
 * decoded (every byte flipped is refused, never crashes); an unknown station,
 * a record signed by another station's key, truncation, trailing bytes, a
 * wrong magic and malformed bodies are refused with a message naming what is
 * wrong.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <string.h>

#include <msgpack.h>

#include "gateway/cluster/cluster.h"

static sr_key *key_a, *key_b;

static const uint8_t *lookup(void *arg, const char *station)
{
    (void)arg;
    if (!strcmp(station, "gs-a")) {
        return sr_key_public(key_a);
    }
    if (!strcmp(station, "gs-b")) {
        return sr_key_public(key_b);
    }
    return NULL;
}

static int setup(void **state)
{
    (void)state;
    uint8_t seed[32];
    memset(seed, 1, sizeof(seed));
    if (sr_crypto_init() || sr_key_from_seed(&key_a, seed)) {
        return -1;
    }
    memset(seed, 2, sizeof(seed));
    return sr_key_from_seed(&key_b, seed);
}

static int teardown(void **state)
{
    (void)state;
    sr_key_free(key_a);
    sr_key_free(key_b);
    return 0;
}

static struct sr_cmsg work_msg(void)
{
    static uint8_t payload[] = "hello, station B";
    struct sr_cmsg m;
    memset(&m, 0, sizeof(m));
    m.kind = SR_CMSG_WORK;
    snprintf(m.station, sizeof(m.station), "gs-a");
    m.t_ms = 1700000000000LL;
    m.seq = 1700000000000000LL;
    memset(m.id, 0xab, sizeof(m.id));
    snprintf(m.origin, sizeof(m.origin), "gs-a");
    snprintf(m.dest, sizeof(m.dest), "gs-b");
    snprintf(m.target, sizeof(m.target), "sat-1");
    snprintf(m.handler, sizeof(m.handler), "digest");
    snprintf(m.client, sizeof(m.client), "edge");
    m.payload = payload;
    m.payload_len = sizeof(payload) - 1;
    m.iat_ms = 1700000000001LL;
    m.deadline_ms = 1700000600000LL;
    m.work_gop = 2.5;
    m.result_bytes = 32;
    m.env_flags = 3;
    m.place = SR_PLACE_TARGET;
    snprintf(m.place_target, sizeof(m.place_target), "sat-1");
    return m;
}

static void test_work_round_trip(void **state)
{
    (void)state;
    struct sr_cmsg m = work_msg(), d;
    sr_buf b;
    sr_buf_init(&b, 1 << 20);
    assert_int_equal(sr_cmsg_encode(&b, key_a, &m), 0);
    char err[200];
    assert_int_equal(sr_cmsg_decode(&d, b.data, b.len, 1 << 20, lookup, NULL, err, sizeof(err)), 0);
    assert_int_equal(d.kind, SR_CMSG_WORK);
    assert_string_equal(d.station, "gs-a");
    assert_memory_equal(d.id, m.id, sizeof(m.id));
    assert_string_equal(d.dest, "gs-b");
    assert_string_equal(d.target, "sat-1");
    assert_string_equal(d.handler, "digest");
    assert_string_equal(d.client, "edge");
    assert_int_equal(d.payload_len, m.payload_len);
    assert_memory_equal(d.payload, m.payload, m.payload_len);
    assert_int_equal(d.deadline_ms, m.deadline_ms);
    assert_true(d.work_gop == 2.5);
    assert_int_equal(d.result_bytes, 32);
    assert_int_equal(d.place, SR_PLACE_TARGET);
    sr_cmsg_clear(&d);
    /* every byte flipped: refused, never a crash, never accepted */
    for (size_t i = 0; i < b.len; i++) {
        b.data[i] ^= 0x41;
        int rv = sr_cmsg_decode(&d, b.data, b.len, 1 << 20, lookup, NULL, err, sizeof(err));
        assert_int_not_equal(rv, 0);
        assert_true(err[0] != 0);
        sr_cmsg_clear(&d);
        b.data[i] ^= 0x41;
    }
    /* every truncation */
    for (size_t n = 0; n < b.len; n++) {
        assert_int_equal(sr_cmsg_decode(&d, b.data, n, 1 << 20, lookup, NULL, err, sizeof(err)),
                         SR_ERR_ENV_FORMAT);
        sr_cmsg_clear(&d);
    }
    /* trailing bytes */
    assert_int_equal(sr_buf_append(&b, "\x00", 1), 0);
    assert_int_equal(sr_cmsg_decode(&d, b.data, b.len, 1 << 20, lookup, NULL, err, sizeof(err)),
                     SR_ERR_ENV_FORMAT);
    assert_non_null(strstr(err, "after the record"));
    sr_cmsg_clear(&d);
    /* over the limit */
    assert_int_equal(sr_cmsg_decode(&d, b.data, b.len, 10, lookup, NULL, err, sizeof(err)),
                     SR_ERR_TOOBIG);
    sr_buf_free(&b);
}

static void test_untrusted_and_impersonation(void **state)
{
    (void)state;
    struct sr_cmsg m = work_msg(), d;
    sr_buf b;
    sr_buf_init(&b, 1 << 20);
    char err[200];
    /* unknown station */
    snprintf(m.station, sizeof(m.station), "gs-x");
    assert_int_equal(sr_cmsg_encode(&b, key_a, &m), 0);
    assert_int_equal(sr_cmsg_decode(&d, b.data, b.len, 1 << 20, lookup, NULL, err, sizeof(err)),
                     SR_ERR_ENV_UNTRUSTED);
    assert_non_null(strstr(err, "gs-x"));
    sr_cmsg_clear(&d);
    /* gs-b's key signing a record that claims to be gs-a's */
    sr_buf_reset(&b);
    m = work_msg();
    assert_int_equal(sr_cmsg_encode(&b, key_b, &m), 0);
    assert_int_equal(sr_cmsg_decode(&d, b.data, b.len, 1 << 20, lookup, NULL, err, sizeof(err)),
                     SR_ERR_ENV_BADSIG);
    sr_cmsg_clear(&d);
    sr_buf_free(&b);
}

static void test_passes_and_state_round_trip(void **state)
{
    (void)state;
    struct sr_pass_rec p[2];
    memset(p, 0, sizeof(p));
    p[0].aos_ms = 1000;
    p[0].tca_ms = 1500;
    p[0].los_ms = 2000;
    p[0].max_el_deg = NAN;
    p[0].uplink_bps = 1e6;
    snprintf(p[0].source, sizeof(p[0].source), "predicted");
    p[1] = p[0];
    p[1].aos_ms = 5000;
    p[1].los_ms = 6000;
    p[1].max_el_deg = 42;
    snprintf(p[1].source, sizeof(p[1].source), "aws");
    struct sr_cmsg m, d;
    memset(&m, 0, sizeof(m));
    m.kind = SR_CMSG_PASSES;
    snprintf(m.station, sizeof(m.station), "gs-b");
    m.seq = 5;
    snprintf(m.sat, sizeof(m.sat), "sat-1");
    m.passes = p;
    m.npasses = 2;
    sr_buf b;
    sr_buf_init(&b, 1 << 20);
    char err[200];
    assert_int_equal(sr_cmsg_encode(&b, key_b, &m), 0);
    assert_int_equal(sr_cmsg_decode(&d, b.data, b.len, 1 << 20, lookup, NULL, err, sizeof(err)), 0);
    assert_int_equal(d.kind, SR_CMSG_PASSES);
    assert_string_equal(d.sat, "sat-1");
    assert_int_equal(d.npasses, 2);
    assert_true(isnan(d.passes[0].max_el_deg));
    assert_int_equal(d.passes[1].aos_ms, 5000);
    assert_string_equal(d.passes[1].source, "aws");
    sr_cmsg_clear(&d);

    struct sr_cmsg_target t = {
        .id = "alpha", .ewma_ms = 12.5, .inflight = 3, .failures = 1, .kind = 1, .gops = 50};
    memset(&m, 0, sizeof(m));
    m.kind = SR_CMSG_STATE;
    snprintf(m.station, sizeof(m.station), "gs-a");
    m.seq = 6;
    m.items = 7;
    m.bytes = 700;
    m.ready = true;
    m.targets = &t;
    m.ntargets = 1;
    sr_buf_reset(&b);
    assert_int_equal(sr_cmsg_encode(&b, key_a, &m), 0);
    assert_int_equal(sr_cmsg_decode(&d, b.data, b.len, 1 << 20, lookup, NULL, err, sizeof(err)), 0);
    assert_int_equal(d.items, 7);
    assert_true(d.ready);
    assert_int_equal(d.ntargets, 1);
    assert_string_equal(d.targets[0].id, "alpha");
    assert_true(d.targets[0].ewma_ms == 12.5);
    assert_int_equal(d.targets[0].kind, 1);
    assert_true(d.targets[0].gops == 50);
    sr_cmsg_clear(&d);
    static const char tle[] = "1 90000U ...\n2 90000 ...\n";
    memset(&m, 0, sizeof(m));
    m.kind = SR_CMSG_ELEMENTS;
    snprintf(m.station, sizeof(m.station), "gs-a");
    m.seq = 7;
    snprintf(m.sat, sizeof(m.sat), "sat-1");
    snprintf(m.format, sizeof(m.format), "tle");
    snprintf(m.op, sizeof(m.op), "ops");
    m.epoch_ms = 1700000000000LL;
    m.payload = (uint8_t *)(uintptr_t)tle;
    m.payload_len = sizeof(tle) - 1;
    sr_buf_reset(&b);
    assert_int_equal(sr_cmsg_encode(&b, key_a, &m), 0);
    assert_int_equal(sr_cmsg_decode(&d, b.data, b.len, 1 << 20, lookup, NULL, err, sizeof(err)), 0);
    assert_int_equal(d.kind, SR_CMSG_ELEMENTS);
    assert_string_equal(d.format, "tle");
    assert_string_equal(d.op, "ops");
    assert_int_equal(d.epoch_ms, 1700000000000LL);
    assert_int_equal(d.payload_len, sizeof(tle) - 1);
    assert_memory_equal(d.payload, tle, sizeof(tle) - 1);
    sr_cmsg_clear(&d);
    /* encoding refuses what it could not decode */
    m.kind = (sr_cmsg_kind)9;
    assert_int_equal(sr_cmsg_encode(&b, key_a, &m), SR_ERR_INVAL);
    sr_buf_free(&b);
}

/* Signs an arbitrary body with gs-a's key, as a record of format |v| (1 or 2). */
static void seal_body_v(sr_buf *out, const msgpack_sbuffer *body, int v)
{
    const char *ctx = v == 1 ? "skyroute/cluster/v1" : "skyroute/cluster/v2";
    sr_buf tbs;
    sr_buf_init(&tbs, 1 << 20);
    assert_int_equal(sr_buf_append(&tbs, ctx, strlen(ctx) + 1), 0);
    assert_int_equal(sr_buf_append(&tbs, body->data, body->size), 0);
    uint8_t sig[SR_SIGBYTES];
    sr_key_sign(key_a, sig, tbs.data, tbs.len);
    sr_buf_free(&tbs);
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 4);
    msgpack_pack_str_with_body(&pk, v == 1 ? "SRC1" : "SRC2", 4);
    msgpack_pack_bin_with_body(&pk, body->data, body->size);
    msgpack_pack_str_with_body(&pk, "gs-a", 4);
    msgpack_pack_bin_with_body(&pk, sig, SR_SIGBYTES);
    sr_buf_reset(out);
    assert_int_equal(sr_buf_append(out, sb.data, sb.size), 0);
    msgpack_sbuffer_destroy(&sb);
}

static void seal_body(sr_buf *out, const msgpack_sbuffer *body)
{
    seal_body_v(out, body, 2);
}

static void expect_body_error(const char *what, void (*build)(msgpack_packer *pk))
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    build(&pk);
    sr_buf b;
    sr_buf_init(&b, 1 << 20);
    seal_body(&b, &sb);
    msgpack_sbuffer_destroy(&sb);
    struct sr_cmsg d;
    char err[200];
    assert_int_equal(sr_cmsg_decode(&d, b.data, b.len, 1 << 20, lookup, NULL, err, sizeof(err)),
                     SR_ERR_ENV_BODY);
    if (!strstr(err, what)) {
        fail_msg("error '%s' does not name '%s'", err, what);
    }
    sr_cmsg_clear(&d);
    sr_buf_free(&b);
}

static void s(msgpack_packer *pk, const char *v)
{
    msgpack_pack_str_with_body(pk, v, strlen(v));
}

static void body_not_map(msgpack_packer *pk)
{
    msgpack_pack_array(pk, 0);
}

static void body_no_kind(msgpack_packer *pk)
{
    msgpack_pack_map(pk, 2);
    s(pk, "station");
    s(pk, "gs-a");
    s(pk, "t");
    msgpack_pack_int64(pk, 1);
}

static void body_bad_kind(msgpack_packer *pk)
{
    msgpack_pack_map(pk, 3);
    s(pk, "kind");
    s(pk, "launch");
    s(pk, "station");
    s(pk, "gs-a");
    s(pk, "t");
    msgpack_pack_int64(pk, 1);
}

static void body_work_missing_payload(msgpack_packer *pk)
{
    msgpack_pack_map(pk, 3);
    s(pk, "kind");
    s(pk, "work");
    s(pk, "station");
    s(pk, "gs-a");
    s(pk, "t");
    msgpack_pack_int64(pk, 1);
}

static void body_other_station(msgpack_packer *pk)
{
    msgpack_pack_map(pk, 4);
    s(pk, "kind");
    s(pk, "state");
    s(pk, "station");
    s(pk, "gs-b");
    s(pk, "t");
    msgpack_pack_int64(pk, 1);
    s(pk, "items");
    msgpack_pack_int64(pk, 1);
}

static void body_bad_pass(msgpack_packer *pk)
{
    msgpack_pack_map(pk, 5);
    s(pk, "kind");
    s(pk, "passes");
    s(pk, "station");
    s(pk, "gs-a");
    s(pk, "t");
    msgpack_pack_int64(pk, 1);
    s(pk, "sat");
    s(pk, "sat-1");
    s(pk, "passes");
    msgpack_pack_array(pk, 1);
    msgpack_pack_array(pk, 8);
    msgpack_pack_int64(pk, 10); /* aos after los */
    msgpack_pack_int64(pk, 5);
    msgpack_pack_int64(pk, 1);
    for (int i = 0; i < 4; i++) {
        msgpack_pack_double(pk, 0);
    }
    s(pk, "json");
}

static void body_duplicate_key(msgpack_packer *pk)
{
    msgpack_pack_map(pk, 4);
    s(pk, "kind");
    s(pk, "state");
    s(pk, "station");
    s(pk, "gs-a");
    s(pk, "t");
    msgpack_pack_int64(pk, 1);
    s(pk, "t");
    msgpack_pack_int64(pk, 2);
}

static void test_malformed_bodies(void **state)
{
    (void)state;
    expect_body_error("not one msgpack map", body_not_map);
    expect_body_error("'kind' is missing", body_no_kind);
    expect_body_error("'kind' is not one of", body_bad_kind);
    expect_body_error("'id' is missing (kind work)", body_work_missing_payload);
    expect_body_error("body names station 'gs-b', signed by 'gs-a'", body_other_station);
    expect_body_error("passes[0]", body_bad_pass);
    expect_body_error("'t' appears twice", body_duplicate_key);
}

/* Found by fuzz_cluster_msg: a 6-byte map32 header declaring 4 billion
 * entries made msgpack-c allocate 128 GiB before reading any of them. */
static void test_declared_count_beyond_input(void **state)
{
    (void)state;
    static const uint8_t bomb[] = {0x94, 0xa4, 'S', 'R', 'C', '1', 0xdf, 0xff, 0xff, 0xff, 0xff};
    static const uint8_t bin_bomb[] = {0xc6, 0x7f, 0xff, 0xff, 0xff, 0x00};
    struct sr_cmsg d;
    char err[200];
    assert_int_equal(
        sr_cmsg_decode(&d, bomb, sizeof(bomb), 1 << 20, lookup, NULL, err, sizeof(err)),
        SR_ERR_ENV_FORMAT);
    assert_non_null(strstr(err, "truncated"));
    sr_cmsg_clear(&d);
    assert_int_equal(
        sr_cmsg_decode(&d, bin_bomb, sizeof(bin_bomb), 1 << 20, lookup, NULL, err, sizeof(err)),
        SR_ERR_ENV_FORMAT);
    sr_cmsg_clear(&d);
}

/* Appends [magic, bin16 body, signer, bin(64) sig] to |out|: |magic| and |signer| are
 * already encoded. */
static void frame(sr_buf *out, const char *magic, const uint8_t *body, size_t body_len,
                  const char *signer, size_t signer_len, const uint8_t *sig)
{
    const uint8_t bin16[] = {0xc5, (uint8_t)(body_len >> 8), (uint8_t)body_len};
    sr_buf_reset(out);
    assert_true(body_len < 65536);
    assert_int_equal(sr_buf_append(out, "\x94", 1), 0);
    assert_int_equal(sr_buf_append(out, magic, strlen(magic)), 0);
    assert_int_equal(sr_buf_append(out, bin16, sizeof(bin16)), 0);
    assert_int_equal(sr_buf_append(out, body, body_len), 0);
    assert_int_equal(sr_buf_append(out, signer, signer_len), 0);
    assert_int_equal(sr_buf_append(out, "\xc4\x40", 2), 0);
    assert_int_equal(sr_buf_append(out, sig, SR_SIGBYTES), 0);
}

/* A record's signature never passes for an envelope's, nor an envelope's for a record's: the
 * same key, the same body bytes, other signing contexts. */
/* A state body of gs-a's, with or without a sequence. */
static void state_body(msgpack_sbuffer *sb, bool with_seq)
{
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, with_seq ? 5 : 4);
    s(&pk, "kind");
    s(&pk, "state");
    s(&pk, "station");
    s(&pk, "gs-a");
    s(&pk, "t");
    msgpack_pack_int64(&pk, 1);
    s(&pk, "items");
    msgpack_pack_int64(&pk, 0);
    if (with_seq) {
        s(&pk, "seq");
        msgpack_pack_int64(&pk, 9);
    }
}

/* SRC2 carries a sequence; SRC1 (none) is refused for every kind but work,
 * before the station's key is looked up when the caller says what it wants;
 * a valid record of another kind than the one wanted is refused. */
static void test_versions_and_kinds(void **state)
{
    (void)state;
    struct sr_cmsg d;
    char err[200];
    sr_buf b;
    sr_buf_init(&b, 1 << 20);
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    /* an SRC1 heartbeat: refused, with and without a wanted kind */
    state_body(&sb, false);
    seal_body_v(&b, &sb, 1);
    assert_int_equal(
        sr_cmsg_open(&d, b.data, b.len, 1 << 20, SR_CMSG_STATE, lookup, NULL, err, sizeof(err)),
        SR_ERR_ENV_VERSION);
    assert_non_null(strstr(err, "SRC1"));
    sr_cmsg_clear(&d);
    assert_int_equal(sr_cmsg_decode(&d, b.data, b.len, 1 << 20, lookup, NULL, err, sizeof(err)),
                     SR_ERR_ENV_VERSION);
    sr_cmsg_clear(&d);
    /* SRC2 without seq: refused; with it: taken, and refused where a result belongs */
    seal_body_v(&b, &sb, 2);
    assert_int_equal(sr_cmsg_decode(&d, b.data, b.len, 1 << 20, lookup, NULL, err, sizeof(err)),
                     SR_ERR_ENV_BODY);
    assert_non_null(strstr(err, "seq"));
    sr_cmsg_clear(&d);
    msgpack_sbuffer_clear(&sb);
    state_body(&sb, true);
    seal_body_v(&b, &sb, 2);
    assert_int_equal(
        sr_cmsg_open(&d, b.data, b.len, 1 << 20, SR_CMSG_STATE, lookup, NULL, err, sizeof(err)), 0);
    assert_int_equal(d.seq, 9);
    assert_int_equal(d.version, 2);
    sr_cmsg_clear(&d);
    assert_int_equal(
        sr_cmsg_open(&d, b.data, b.len, 1 << 20, SR_CMSG_RESULT, lookup, NULL, err, sizeof(err)),
        SR_ERR_ENV_KIND);
    sr_cmsg_clear(&d);
    /* an SRC2 record relabelled SRC1 does not verify: other signing contexts */
    assert_int_equal(b.data[5], '2'); /* fixarray, fixstr header, 'S' 'R' 'C' '2' */
    b.data[5] = '1';
    assert_int_equal(sr_cmsg_decode(&d, b.data, b.len, 1 << 20, lookup, NULL, err, sizeof(err)),
                     SR_ERR_ENV_BADSIG);
    sr_cmsg_clear(&d);
    /* SRC1 work is still read (from a station not yet upgraded) */
    struct sr_cmsg m = work_msg();
    sr_buf_reset(&b);
    assert_int_equal(sr_cmsg_encode(&b, key_a, &m), 0);
    size_t body_at = 1 + 5 + (b.data[6] == 0xc4 ? 2 : 3);
    size_t body_len = b.data[6] == 0xc4 ? b.data[7] : (size_t)b.data[7] << 8 | b.data[8];
    msgpack_sbuffer_clear(&sb);
    msgpack_sbuffer_write(&sb, (const char *)b.data + body_at, body_len);
    seal_body_v(&b, &sb, 1);
    assert_int_equal(
        sr_cmsg_open(&d, b.data, b.len, 1 << 20, SR_CMSG_WORK, lookup, NULL, err, sizeof(err)), 0);
    assert_int_equal(d.version, 1);
    assert_string_equal(d.dest, "gs-b");
    sr_cmsg_clear(&d);
    msgpack_sbuffer_destroy(&sb);
    sr_buf_free(&b);
}

/* A result carries the target's own envelope, byte for byte, when there is one. */
static void test_result_carries_node_envelope(void **state)
{
    (void)state;
    static uint8_t payload[] = "42", env[] = "\x94\xa3SR1 stand-in";
    struct sr_cmsg m, d;
    memset(&m, 0, sizeof(m));
    m.kind = SR_CMSG_RESULT;
    snprintf(m.station, sizeof(m.station), "gs-b");
    m.seq = 11;
    memset(m.id, 0x5c, sizeof(m.id));
    snprintf(m.origin, sizeof(m.origin), "gs-a");
    snprintf(m.target, sizeof(m.target), "sat-1");
    m.status = 200;
    m.payload = payload;
    m.payload_len = 2;
    m.node_env = env;
    m.node_env_len = sizeof(env) - 1;
    sr_buf b;
    sr_buf_init(&b, 1 << 20);
    char err[200];
    assert_int_equal(sr_cmsg_encode(&b, key_b, &m), 0);
    assert_int_equal(
        sr_cmsg_open(&d, b.data, b.len, 1 << 20, SR_CMSG_RESULT, lookup, NULL, err, sizeof(err)),
        0);
    assert_int_equal(d.node_env_len, sizeof(env) - 1);
    assert_memory_equal(d.node_env, env, sizeof(env) - 1);
    assert_string_equal(d.origin, "gs-a");
    sr_cmsg_clear(&d);
    m.node_env = NULL;
    m.node_env_len = 0;
    sr_buf_reset(&b);
    assert_int_equal(sr_cmsg_encode(&b, key_b, &m), 0);
    assert_int_equal(sr_cmsg_decode(&d, b.data, b.len, 1 << 20, lookup, NULL, err, sizeof(err)), 0);
    assert_null(d.node_env);
    sr_cmsg_clear(&d);
    sr_buf_free(&b);
}

static void test_not_an_envelope_signature(void **state)
{
    (void)state;
    sr_buf env, rec, x;
    sr_buf_init(&env, 1 << 20);
    sr_buf_init(&rec, 1 << 20);
    sr_buf_init(&x, 1 << 20);
    struct sr_envelope e;
    memset(&e, 0, sizeof(e));
    e.kind = SR_KIND_WORKLOAD;
    e.exp = 2;
    snprintf(e.dst, sizeof(e.dst), "gs-a");
    assert_int_equal(sr_envelope_seal(&env, key_a, &e), 0);
    /* the envelope's body (12-byte header, 76-byte tail) and signature, as gs-a's record */
    frame(&x, "\xa4SRC1", env.data + 12, env.len - 88, "\xa4gs-a", 5, env.data + env.len - 64);
    struct sr_cmsg d;
    char err[200];
    assert_int_equal(sr_cmsg_decode(&d, x.data, x.len, 1 << 20, lookup, NULL, err, sizeof(err)),
                     SR_ERR_ENV_BADSIG);
    sr_cmsg_clear(&d);
    /* a record's body and signature, as an envelope signed by gs-a's key */
    struct sr_cmsg m = work_msg();
    assert_int_equal(sr_cmsg_encode(&rec, key_a, &m), 0);
    size_t body_at = 1 + 5 + (rec.data[6] == 0xc4 ? 2 : 3);
    size_t body_len = rec.data[6] == 0xc4 ? rec.data[7] : (size_t)rec.data[7] << 8 | rec.data[8];
    char id[2 + SR_KEYIDBYTES] = "\xc4\x08";
    memcpy(id + 2, sr_key_id(key_a), SR_KEYIDBYTES);
    frame(&x, "\xa3SR1", rec.data + body_at, body_len, id, sizeof(id), rec.data + rec.len - 64);
    sr_keyring *ring;
    assert_int_equal(sr_keyring_new(&ring), 0);
    assert_int_equal(sr_keyring_add(ring, sr_key_public(key_a), "gs-a"), 0);
    struct sr_open_opts o = {.trust = ring, .now_ms = 1};
    struct sr_envelope out;
    assert_int_equal(sr_envelope_open(&out, x.data, x.len, &o, err, sizeof(err)),
                     SR_ERR_ENV_BADSIG);
    sr_keyring_free(ring);
    sr_buf_free(&x);
    sr_buf_free(&rec);
    sr_buf_free(&env);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_work_round_trip),
        cmocka_unit_test(test_untrusted_and_impersonation),
        cmocka_unit_test(test_passes_and_state_round_trip),
        cmocka_unit_test(test_malformed_bodies),
        cmocka_unit_test(test_declared_count_beyond_input),
        cmocka_unit_test(test_not_an_envelope_signature),
        cmocka_unit_test(test_versions_and_kinds),
        cmocka_unit_test(test_result_carries_node_envelope),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
