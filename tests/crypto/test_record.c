/*
 * crypto/record.c: the signed-record codec on its own. Round trips with a key
 * id and with a name as the signer (every name length, each header form);
 * what the opener refuses, and in which order: wrong magic, element counts,
 * declared lengths over the limit or beyond the input, every truncation,
 * trailing bytes; an untrusted signer and a bad signature reported as such
 * even when the body is garbage, with the decoder never called; contexts kept
 * apart (an SR1 signature is no SRC1 signature, and back); a format's extra
 * elements and its hooks; sr_msgpack_bounded().
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>

#include "crypto/crypto.h"

static sr_key *alpha, *mallory;

static const struct sr_record_format by_id = {.magic = "TST1",
                                              .context = "skyroute/test/v1",
                                              .signer_form = SR_SIGNER_KEYID,
                                              .noun = "record",
                                              .signer_noun = "signer"};

static const struct sr_record_format by_name = {.magic = "TSN1",
                                                .context = "skyroute/test/names/v1",
                                                .signer_form = SR_SIGNER_NAME,
                                                .noun = "record",
                                                .signer_noun = "station"};

/* SR1's and SRC1's own, as crypto/envelope.c and gateway/cluster/record.c
 * define them */
static const struct sr_record_format sr1 = {.magic = "SR1",
                                            .context = "skyroute/v1",
                                            .signer_form = SR_SIGNER_KEYID,
                                            .noun = "envelope",
                                            .signer_noun = "signer"};

static const struct sr_record_format src1 = {.magic = "SRC1",
                                             .context = "skyroute/cluster/v1",
                                             .signer_form = SR_SIGNER_NAME,
                                             .noun = "record",
                                             .signer_noun = "station"};

/* What the callbacks saw. */
struct seen {
    int lookups;
    int decodes;
    char looked_up[SR_SIGNER_NAMEMAX];
    uint8_t body[256];
    size_t body_len;
    int decode_rv; /* what decode returns */
};

/* alpha is trusted as key id or as "gs-alpha" (any other name: no one);
 * mallory never. */
static const uint8_t *lookup(void *arg, const uint8_t *signer, size_t len, const char **name)
{
    struct seen *s = arg;
    s->lookups++;
    if (len == SR_KEYIDBYTES && !memcmp(signer, sr_key_id(alpha), SR_KEYIDBYTES)) {
        *name = "alpha";
        return sr_key_public(alpha);
    }
    assert_true(len < sizeof(s->looked_up));
    memcpy(s->looked_up, signer, len);
    s->looked_up[len] = '\0';
    if (len == 8 && !memcmp(signer, "gs-alpha", 8)) {
        return sr_key_public(alpha);
    }
    return NULL;
}

/* a lookup that trusts every name with alpha's key */
static const uint8_t *anyone(void *arg, const uint8_t *signer, size_t len, const char **name)
{
    (void)arg;
    (void)name;
    assert_int_equal(signer[len], '\0'); /* a name comes NUL-terminated */
    return sr_key_public(alpha);
}

static int decode(void *arg, const struct sr_record *rec, char *why, size_t whylen)
{
    struct seen *s = arg;
    s->decodes++;
    assert_true(rec->body_len <= sizeof(s->body));
    memcpy(s->body, rec->body, rec->body_len);
    s->body_len = rec->body_len;
    return s->decode_rv ? sr_whyf(why, whylen, s->decode_rv, "decoder refused") : 0;
}

/* a decoder that must never run */
static int no_decode(void *arg, const struct sr_record *rec, char *why, size_t whylen)
{
    (void)arg;
    (void)rec;
    (void)why;
    (void)whylen;
    fail_msg("the body was handed to the decoder");
    return 0;
}

static int pack_map(const void *arg, sr_buf *out, struct msgpack_packer *pk)
{
    (void)out;
    const char *v = arg;
    msgpack_pack_map(pk, 1);
    msgpack_pack_str_with_body(pk, "k", 1);
    msgpack_pack_str_with_body(pk, v, strlen(v));
    return 0;
}

struct raw {
    const void *p;
    size_t n;
};

static int pack_raw(const void *arg, sr_buf *out, struct msgpack_packer *pk)
{
    (void)pk;
    const struct raw *r = arg;
    return sr_buf_append(out, r->p, r->n);
}

static int pack_fails(const void *arg, sr_buf *out, struct msgpack_packer *pk)
{
    (void)arg;
    msgpack_pack_str_with_body(pk, "partial", 7);
    (void)out;
    return SR_ERR_RANGE;
}

static int setup(void **state)
{
    (void)state;
    static const uint8_t seed_a[32] = {0xa1}, seed_m[32] = {0x66};
    if (sr_crypto_init() || sr_key_from_seed(&alpha, seed_a) ||
        sr_key_from_seed(&mallory, seed_m)) {
        return -1;
    }
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    sr_key_free(alpha);
    sr_key_free(mallory);
    return 0;
}

static int open_one(const struct sr_record_format *f, const uint8_t *p, size_t n,
                    struct sr_record *rec, struct seen *s, sr_record_decode dec, char *why,
                    size_t whylen)
{
    struct sr_record_opener op = {
        .formats = f, .nformats = 1, .max_len = 1 << 20, .lookup = lookup, .decode = dec, .arg = s};
    return sr_record_open(rec, &op, p, n, why, whylen);
}

/* Seals raw |body| bytes (not checked) as |f| by |key|. */
static void seal_raw(sr_buf *b, const struct sr_record_format *f, const sr_key *key,
                     const char *name, const void *body, size_t n)
{
    struct raw r = {body, n};
    sr_buf_init(b, 1 << 20);
    assert_int_equal(sr_record_seal(b, f, key, name, n, pack_raw, &r), 0);
}

/* ---- round trips ------------------------------------------------------------------------------
 */

static void test_roundtrip_key_id(void **state)
{
    (void)state;
    sr_buf b;
    sr_buf_init(&b, 1 << 20);
    assert_int_equal(sr_record_seal(&b, &by_id, alpha, NULL, 64, pack_map, "value"), 0);
    /* minimal framing: the 17-byte context is longer than the widest header */
    static const uint8_t head[] = {0x94, 0xa4, 'T', 'S', 'T', '1', 0xc4};
    assert_memory_equal(b.data, head, sizeof(head));
    size_t body_len = b.data[7];
    assert_int_equal(b.len, 8 + body_len + 2 + 8 + 2 + 64);
    assert_memory_equal(b.data + 8 + body_len, "\xc4\x08", 2);
    assert_memory_equal(b.data + 8 + body_len + 2, sr_key_id(alpha), 8);

    struct seen s = {0};
    struct sr_record rec;
    char why[200] = "";
    assert_int_equal(open_one(&by_id, b.data, b.len, &rec, &s, decode, why, sizeof(why)), 0);
    assert_string_equal(why, "");
    assert_int_equal(s.decodes, 1);
    assert_ptr_equal(rec.format, &by_id);
    assert_memory_equal(rec.keyid, sr_key_id(alpha), SR_KEYIDBYTES);
    char hex[17];
    sr_hex(hex, sr_key_id(alpha), SR_KEYIDBYTES);
    assert_string_equal(rec.signer, hex);
    assert_string_equal(rec.signer_name, "alpha");
    assert_memory_equal(rec.pk, sr_key_public(alpha), SR_PUBLICKEYBYTES);
    /* zero-copy: the body is in the input, and it is what was packed */
    assert_ptr_equal(rec.body, b.data + 8);
    assert_int_equal(rec.body_len, body_len);
    assert_memory_equal(s.body, "\x81\xa1k\xa5value", 9);
    assert_int_equal(rec.extra_len, 0);
    /* without a decoder: verified only */
    s = (struct seen){0};
    assert_int_equal(open_one(&by_id, b.data, b.len, &rec, &s, NULL, why, sizeof(why)), 0);
    assert_int_equal(s.lookups, 1);
    /* the decoder's refusal is the opener's */
    s.decode_rv = SR_ERR_ENV_BODY;
    assert_int_equal(open_one(&by_id, b.data, b.len, &rec, &s, decode, why, sizeof(why)),
                     SR_ERR_ENV_BODY);
    assert_string_equal(why, "decoder refused");
    sr_buf_free(&b);
}

static void test_roundtrip_names(void **state)
{
    (void)state;
    /* fixstr below 32 bytes, str8 from there; 63 at most */
    static const size_t lens[] = {1, 8, 31, 32, 63};
    for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
        char name[SR_SIGNER_NAMEMAX];
        memset(name, 'n', lens[i]);
        name[lens[i]] = '\0';
        if (lens[i] == 8) {
            memcpy(name, "gs-alpha", 8);
        }
        sr_buf b;
        sr_buf_init(&b, 1 << 20);
        assert_int_equal(sr_record_seal(&b, &by_name, alpha, name, 0, pack_map, "v"), 0);
        /* the station follows the body as a str */
        size_t body_len = b.data[7];
        const uint8_t *st = b.data + 8 + body_len;
        if (lens[i] < 32) {
            assert_int_equal(st[0], 0xa0 | lens[i]);
            assert_memory_equal(st + 1, name, lens[i]);
        } else {
            assert_int_equal(st[0], 0xd9);
            assert_int_equal(st[1], lens[i]);
        }
        struct seen s = {0};
        struct sr_record rec;
        char why[200] = "";
        int rv = open_one(&by_name, b.data, b.len, &rec, &s, decode, why, sizeof(why));
        assert_string_equal(s.looked_up, name);
        if (lens[i] == 8) {
            assert_int_equal(rv, 0);
            assert_string_equal(rec.signer, "gs-alpha");
            assert_null(rec.signer_name);
            assert_int_equal(s.decodes, 1);
        } else {
            assert_int_equal(rv, SR_ERR_ENV_UNTRUSTED);
            assert_non_null(strstr(why, "station 'n"));
            assert_non_null(strstr(why, "is not a trusted key"));
            assert_int_equal(s.decodes, 0);
            /* trusted under any name */
            struct sr_record_opener op = {
                .formats = &by_name, .nformats = 1, .lookup = anyone, .decode = decode, .arg = &s};
            assert_int_equal(sr_record_open(&rec, &op, b.data, b.len, why, sizeof(why)), 0);
            assert_string_equal(rec.signer, name);
        }
        sr_buf_free(&b);
    }
    /* names out of range, a missing name, an unknown signer form */
    sr_buf b;
    sr_buf_init(&b, 1 << 20);
    char long_name[SR_SIGNER_NAMEMAX + 1];
    memset(long_name, 'x', SR_SIGNER_NAMEMAX);
    long_name[SR_SIGNER_NAMEMAX] = '\0';
    assert_int_equal(sr_record_seal(&b, &by_name, alpha, long_name, 0, pack_map, "v"),
                     SR_ERR_INVAL);
    assert_int_equal(sr_record_seal(&b, &by_name, alpha, "", 0, pack_map, "v"), SR_ERR_INVAL);
    assert_int_equal(sr_record_seal(&b, &by_name, alpha, NULL, 0, pack_map, "v"), SR_ERR_INVAL);
    struct sr_record_format odd = by_id;
    odd.signer_form = (sr_signer_form)7;
    assert_int_equal(sr_record_seal(&b, &odd, alpha, "x", 0, pack_map, "v"), SR_ERR_INVAL);
    assert_int_equal(b.len, 0);
    sr_buf_free(&b);
}

/* A context exactly as long as the widest header: the header takes its place (SR1's 12 bytes:
 * array16, fixstr, bin32), and nothing is allocated when |out| has room. Any other context: the
 * shortest header, and the body moves to it. */
static void test_header_over_the_context(void **state)
{
    (void)state;
    sr_buf b;
    sr_buf_init(&b, 1 << 20);
    assert_int_equal(sr_buf_reserve(&b, 4096), 0);
    const uint8_t *data = b.data;
    size_t cap = b.cap;
    static const uint8_t body[300] = {0x80}; /* an empty map, then 299 zero bytes */
    struct raw r = {body, sizeof(body)};
    assert_int_equal(sr_record_seal(&b, &sr1, alpha, NULL, sizeof(body), pack_raw, &r), 0);
    assert_ptr_equal(b.data, data);
    assert_int_equal(b.cap, cap);
    static const uint8_t head[] = {0xdc, 0x00, 0x04, 0xa3, 'S', 'R', '1', 0xc6, 0, 0, 1, 44};
    assert_memory_equal(b.data, head, sizeof(head));
    assert_int_equal(b.len, 12 + 300 + 76);
    /* and it opens as an SR1 envelope would: the signature is over "skyroute/v1\0" || body */
    uint8_t tbs[12 + 300];
    memcpy(tbs, "skyroute/v1", 12);
    memcpy(tbs + 12, body, sizeof(body));
    assert_int_equal(sr_verify(sr_key_public(alpha), b.data + b.len - 64, tbs, sizeof(tbs)), 0);
    struct seen s = {0};
    struct sr_record rec;
    assert_int_equal(open_one(&sr1, b.data, b.len, &rec, &s, NULL, NULL, 0), 0);
    assert_int_equal(rec.body_len, sizeof(body));
    /* a context shorter than the header: the body moves down to make room */
    struct sr_record_format tiny = by_id;
    tiny.context = "c";
    sr_buf_reset(&b);
    assert_int_equal(sr_record_seal(&b, &tiny, alpha, NULL, 0, pack_raw, &r), 0);
    static const uint8_t tiny_head[] = {0x94, 0xa4, 'T', 'S', 'T', '1', 0xc5, 1, 44};
    assert_memory_equal(b.data, tiny_head, sizeof(tiny_head));
    assert_memory_equal(b.data + sizeof(tiny_head), body, sizeof(body));
    assert_int_equal(open_one(&tiny, b.data, b.len, &rec, &s, NULL, NULL, 0), 0);
    sr_buf_free(&b);
}

/* A failed seal leaves |out| as it was. */
static void test_seal_refusals(void **state)
{
    (void)state;
    sr_buf b;
    sr_buf_init(&b, 100);
    assert_int_equal(sr_buf_append(&b, "ab", 2), 0);
    static const uint8_t big[200];
    struct raw r = {big, sizeof(big)};
    assert_int_equal(sr_record_seal(&b, &by_id, alpha, NULL, 0, pack_raw, &r), SR_ERR_TOOBIG);
    assert_int_equal(b.len, 2);
    assert_int_equal(sr_record_seal(&b, &by_id, alpha, NULL, 0, pack_fails, NULL), SR_ERR_RANGE);
    assert_int_equal(b.len, 2);
    /* a format with extra elements is its own sealer's */
    struct sr_record_format x = by_id;
    x.extra = 1;
    assert_int_equal(sr_record_seal(&b, &x, alpha, NULL, 0, pack_map, "v"), SR_ERR_INVAL);
    x = by_id;
    x.magic = "";
    assert_int_equal(sr_record_seal(&b, &x, alpha, NULL, 0, pack_map, "v"), SR_ERR_INVAL);
    assert_int_equal(sr_record_seal(&b, &by_id, alpha, NULL, 0, NULL, NULL), SR_ERR_INVAL);
    assert_int_equal(sr_record_seal(NULL, &by_id, alpha, NULL, 0, pack_map, "v"), SR_ERR_INVAL);
    assert_int_equal(sr_record_seal(&b, NULL, alpha, NULL, 0, pack_map, "v"), SR_ERR_INVAL);
    assert_int_equal(sr_record_seal(&b, &by_id, NULL, NULL, 0, pack_map, "v"), SR_ERR_INVAL);
    assert_int_equal(b.len, 2);
    sr_buf_free(&b);
}

/* ---- what the opener refuses -------------------------------------------------------------------
 */

static void test_wrong_magic_and_shape(void **state)
{
    (void)state;
    sr_buf b;
    sr_buf_init(&b, 1 << 20);
    assert_int_equal(sr_record_seal(&b, &by_id, alpha, NULL, 0, pack_map, "v"), 0);
    struct seen s = {0};
    struct sr_record rec;
    char why[200];
    /* another format's magic, as long */
    b.data[5] = '2';
    assert_int_equal(open_one(&by_id, b.data, b.len, &rec, &s, no_decode, why, sizeof(why)),
                     SR_ERR_ENV_VERSION);
    assert_non_null(strstr(why, "magic is \"TST2\", expected \"TST1\" in a 4-element record"));
    b.data[5] = '1';
    /* a magic that is not a str */
    b.data[1] = 0xc0;
    assert_int_equal(open_one(&by_id, b.data, b.len, &rec, &s, no_decode, why, sizeof(why)),
                     SR_ERR_ENV_FORMAT);
    assert_non_null(strstr(why, "element 1 (magic) is a nil"));
    b.data[1] = 0xa4;
    /* an array of 3 or 5, a map */
    for (uint8_t h = 0x93; h <= 0x95; h += 2) {
        b.data[0] = h;
        assert_int_equal(open_one(&by_id, b.data, b.len, &rec, &s, no_decode, why, sizeof(why)),
                         SR_ERR_ENV_FORMAT);
        assert_non_null(strstr(why, "expected 4 (TST1)"));
    }
    b.data[0] = 0x84;
    assert_int_equal(open_one(&by_id, b.data, b.len, &rec, &s, no_decode, why, sizeof(why)),
                     SR_ERR_ENV_FORMAT);
    assert_non_null(strstr(why, "outer value is a map, expected a 4-element array"));
    b.data[0] = 0x94;
    /* a signer of the other form */
    assert_int_equal(open_one(&by_name, b.data, b.len, &rec, &s, no_decode, why, sizeof(why)),
                     SR_ERR_ENV_VERSION);
    struct sr_record_format as_name = by_id;
    as_name.signer_form = SR_SIGNER_NAME;
    assert_int_equal(open_one(&as_name, b.data, b.len, &rec, &s, no_decode, why, sizeof(why)),
                     SR_ERR_ENV_FORMAT);
    assert_non_null(strstr(why, "element 3 (signer) is a bin of length 8"));
    /* a name with a NUL inside */
    sr_buf_reset(&b);
    assert_int_equal(sr_record_seal(&b, &by_name, alpha, "gs-alpha", 0, pack_map, "v"), 0);
    size_t at = 8 + b.data[7] + 1;
    b.data[at + 2] = 0;
    assert_int_equal(open_one(&by_name, b.data, b.len, &rec, &s, no_decode, why, sizeof(why)),
                     SR_ERR_ENV_FORMAT);
    assert_non_null(strstr(why, "without NUL"));
    assert_int_equal(s.lookups, 0);
    sr_buf_free(&b);
}

static void test_trailing_bytes(void **state)
{
    (void)state;
    sr_buf b;
    sr_buf_init(&b, 1 << 20);
    assert_int_equal(sr_record_seal(&b, &by_id, alpha, NULL, 0, pack_map, "v"), 0);
    assert_int_equal(sr_buf_append(&b, "\xc0\xc0", 2), 0);
    struct seen s = {0};
    struct sr_record rec;
    char why[200];
    assert_int_equal(open_one(&by_id, b.data, b.len, &rec, &s, no_decode, why, sizeof(why)),
                     SR_ERR_ENV_TRAILING);
    assert_string_equal(why, "2 bytes follow the record");
    assert_int_equal(s.lookups, 0);
    sr_buf_free(&b);
}

/* Declared lengths are checked against the limit, then against what is left, before
 * anything relies on them; every truncation is refused as such. */
static void test_declared_lengths(void **state)
{
    (void)state;
    struct seen s = {0};
    struct sr_record rec;
    char why[200];
    struct sr_record_opener op = {
        .formats = &by_id, .nformats = 1, .max_len = 1 << 20, .lookup = lookup, .arg = &s};
    /* a bin32 body declaring 4 GiB - 1: over the limit */
    static const uint8_t huge[] = {0x94, 0xa4, 'T', 'S', 'T', '1', 0xc6, 0xff, 0xff, 0xff, 0xff, 0};
    assert_int_equal(sr_record_open(&rec, &op, huge, sizeof(huge), why, sizeof(why)),
                     SR_ERR_ENV_OVERSIZE);
    assert_non_null(strstr(why, "the body at offset 6 declares length 4294967295, over the limit"));
    /* under the limit, beyond the input */
    static const uint8_t past[] = {0x94, 0xa4, 'T', 'S', 'T', '1', 0xc5, 0x10, 0x00, 0x80};
    assert_int_equal(sr_record_open(&rec, &op, past, sizeof(past), why, sizeof(why)),
                     SR_ERR_ENV_TRUNCATED);
    assert_non_null(strstr(why, "declares length 4096 but only"));
    op.max_len = 1000;
    assert_int_equal(sr_record_open(&rec, &op, past, sizeof(past), why, sizeof(why)),
                     SR_ERR_ENV_OVERSIZE);
    /* an array32 of 4 billion, a str32 magic of 2 GiB */
    static const uint8_t arr[] = {0xdd, 0xff, 0xff, 0xff, 0xff, 0xa4};
    assert_int_equal(sr_record_open(&rec, &op, arr, sizeof(arr), why, sizeof(why)),
                     SR_ERR_ENV_OVERSIZE);
    static const uint8_t str[] = {0x94, 0xdb, 0x80, 0x00, 0x00, 0x00, 'T'};
    assert_int_equal(sr_record_open(&rec, &op, str, sizeof(str), why, sizeof(why)),
                     SR_ERR_ENV_OVERSIZE);
    /* the input itself over the limit */
    sr_buf b;
    sr_buf_init(&b, 1 << 20);
    assert_int_equal(sr_record_seal(&b, &by_id, alpha, NULL, 0, pack_map, "v"), 0);
    op.max_len = b.len - 1;
    assert_int_equal(sr_record_open(&rec, &op, b.data, b.len, why, sizeof(why)),
                     SR_ERR_ENV_OVERSIZE);
    assert_non_null(strstr(why, "record is"));
    op.max_len = b.len;
    assert_int_equal(sr_record_open(&rec, &op, b.data, b.len, why, sizeof(why)), 0);
    /* every truncation, in a right-sized copy so ASan sees a read past the end */
    for (size_t n = 0; n < b.len; n++) {
        uint8_t *copy = malloc(n ? n : 1);
        assert_non_null(copy);
        memcpy(copy, b.data, n);
        int rv = sr_record_open(&rec, &op, copy, n, why, sizeof(why));
        if (rv != SR_ERR_ENV_TRUNCATED) {
            fail_msg("cut to %zu: %s (%s)", n, sr_errname(rv), why);
        }
        free(copy);
    }
    /* the never-used byte */
    b.data[1] = 0xc1;
    assert_int_equal(sr_record_open(&rec, &op, b.data, b.len, why, sizeof(why)), SR_ERR_ENV_FORMAT);
    assert_non_null(strstr(why, "0xc1"));
    assert_int_equal(s.lookups, 1); /* only the one that opened */
    sr_buf_free(&b);
}

/* Trust and signature are judged before the body is decoded: a body that is not msgpack at all
 * still gets UNTRUSTED or BADSIG, and the decoder never sees it. */
static void test_signature_before_body(void **state)
{
    (void)state;
    static const uint8_t garbage[] = {0xc1, 0xdf, 0xff, 0xff, 0xff, 0xff, 0xc1};
    struct seen s = {0};
    struct sr_record rec;
    char why[200];
    sr_buf b;
    /* untrusted: mallory's key id, then a name no one knows */
    seal_raw(&b, &by_id, mallory, NULL, garbage, sizeof(garbage));
    assert_int_equal(open_one(&by_id, b.data, b.len, &rec, &s, no_decode, why, sizeof(why)),
                     SR_ERR_ENV_UNTRUSTED);
    char hex[17];
    sr_hex(hex, sr_key_id(mallory), SR_KEYIDBYTES);
    assert_non_null(strstr(why, hex));
    assert_non_null(strstr(why, "signer"));
    sr_buf_free(&b);
    seal_raw(&b, &by_name, alpha, "gs-nobody", garbage, sizeof(garbage));
    assert_int_equal(open_one(&by_name, b.data, b.len, &rec, &s, no_decode, why, sizeof(why)),
                     SR_ERR_ENV_UNTRUSTED);
    assert_string_equal(why, "station 'gs-nobody' is not a trusted key");
    sr_buf_free(&b);
    /* bad signature: mallory signing as alpha; the body changed after signing */
    seal_raw(&b, &by_name, mallory, "gs-alpha", garbage, sizeof(garbage));
    assert_int_equal(open_one(&by_name, b.data, b.len, &rec, &s, no_decode, why, sizeof(why)),
                     SR_ERR_ENV_BADSIG);
    assert_string_equal(why, "signature by station 'gs-alpha' does not verify");
    sr_buf_free(&b);
    seal_raw(&b, &by_id, alpha, NULL, garbage, sizeof(garbage));
    assert_int_equal(open_one(&by_id, b.data, b.len, &rec, &s, NULL, why, sizeof(why)), 0);
    b.data[9] ^= 1; /* inside the body */
    assert_int_equal(open_one(&by_id, b.data, b.len, &rec, &s, no_decode, why, sizeof(why)),
                     SR_ERR_ENV_BADSIG);
    assert_non_null(strstr(why, "signature by alpha ("));
    b.data[9] ^= 1;
    b.data[b.len - 1] ^= 0x80; /* inside the signature */
    assert_int_equal(open_one(&by_id, b.data, b.len, &rec, &s, no_decode, why, sizeof(why)),
                     SR_ERR_ENV_BADSIG);
    sr_buf_free(&b);
    /* a body over the stack buffer: verified from a heap copy, same verdicts */
    uint8_t *big = malloc(10000);
    assert_non_null(big);
    memset(big, 0xc1, 10000);
    seal_raw(&b, &by_id, alpha, NULL, big, 10000);
    assert_int_equal(open_one(&by_id, b.data, b.len, &rec, &s, NULL, why, sizeof(why)), 0);
    b.data[5000] ^= 4;
    assert_int_equal(open_one(&by_id, b.data, b.len, &rec, &s, no_decode, why, sizeof(why)),
                     SR_ERR_ENV_BADSIG);
    sr_buf_free(&b);
    free(big);
}

/* Swaps the framing of a record for another format's, keeping body and signature. */
static void reframe(sr_buf *out, const char *magic, const uint8_t *body, size_t body_len,
                    const void *signer, size_t signer_len, bool name, const uint8_t *sig)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 4);
    msgpack_pack_str_with_body(&pk, magic, strlen(magic));
    msgpack_pack_bin_with_body(&pk, body, body_len);
    if (name) {
        msgpack_pack_str_with_body(&pk, signer, signer_len);
    } else {
        msgpack_pack_bin_with_body(&pk, signer, signer_len);
    }
    msgpack_pack_bin_with_body(&pk, sig, SR_SIGBYTES);
    sr_buf_init(out, 1 << 20);
    assert_int_equal(sr_buf_append(out, sb.data, sb.size), 0);
    msgpack_sbuffer_destroy(&sb);
}

/* An SR1 signature never verifies as an SRC1 record's, nor an SRC1 signature as an SR1
 * envelope's: the contexts differ. */
static void test_context_separation(void **state)
{
    (void)state;
    struct seen s = {0};
    struct sr_record rec;
    char why[200];
    /* a real SR1 envelope, its body and signature framed as SRC1 by "gs-alpha" */
    struct sr_envelope e = {.kind = SR_KIND_WORKLOAD, .exp = 1000, .payload_len = 0};
    strcpy(e.src, "a");
    strcpy(e.dst, "b");
    sr_buf env;
    sr_buf_init(&env, 1 << 20);
    assert_int_equal(sr_envelope_seal(&env, alpha, &e), 0);
    size_t body_len = env.len - 12 - 76;
    assert_int_equal(open_one(&sr1, env.data, env.len, &rec, &s, NULL, why, sizeof(why)), 0);
    sr_buf x;
    reframe(&x, "SRC1", env.data + 12, body_len, "gs-alpha", 8, true, env.data + env.len - 64);
    assert_int_equal(open_one(&src1, x.data, x.len, &rec, &s, no_decode, why, sizeof(why)),
                     SR_ERR_ENV_BADSIG);
    sr_buf_free(&x);
    /* and back: an SRC1 record by "gs-alpha" framed as SR1 by alpha's key id */
    sr_buf rc;
    sr_buf_init(&rc, 1 << 20);
    assert_int_equal(sr_record_seal(&rc, &src1, alpha, "gs-alpha", 0, pack_map, "v"), 0);
    assert_int_equal(open_one(&src1, rc.data, rc.len, &rec, &s, NULL, why, sizeof(why)), 0);
    reframe(&x, "SR1", rec.body, rec.body_len, sr_key_id(alpha), SR_KEYIDBYTES, false, rec.sig);
    assert_int_equal(open_one(&sr1, x.data, x.len, &rec, &s, no_decode, why, sizeof(why)),
                     SR_ERR_ENV_BADSIG);
    struct sr_open_opts o = {.trust = NULL, .now_ms = 0};
    sr_keyring *ring;
    assert_int_equal(sr_keyring_new(&ring), 0);
    assert_int_equal(sr_keyring_add(ring, sr_key_public(alpha), "alpha"), 0);
    o.trust = ring;
    struct sr_envelope out;
    assert_int_equal(sr_envelope_open(&out, x.data, x.len, &o, why, sizeof(why)),
                     SR_ERR_ENV_BADSIG);
    sr_keyring_free(ring);
    sr_buf_free(&x);
    sr_buf_free(&rc);
    sr_buf_free(&env);
}

/* ---- formats with extra elements, and several formats -------------------------------------------
 */

struct hooked {
    struct seen seen;
    int checks, verifies;
    int verify_rv;
    uint64_t value;   /* the extra element, as the check read it */
    size_t extra_len; /* and the bytes the check was given */
};

static int hook_check(void *arg, const struct sr_record *rec, char *why, size_t whylen)
{
    struct hooked *h = arg;
    h->checks++;
    h->extra_len = rec->extra_len;
    /* one positive fixint */
    if (rec->extra_len != 1 || rec->extra[0] > 0x7f) {
        return sr_whyf(why, whylen, SR_ERR_ENV_FORMAT, "element 5 must be a small integer");
    }
    h->value = rec->extra[0];
    return 0;
}

static int hook_verify(void *arg, const struct sr_record *rec, char *why, size_t whylen)
{
    struct hooked *h = arg;
    h->verifies++;
    assert_non_null(rec->pk);
    return h->verify_rv ? sr_whyf(why, whylen, h->verify_rv, "hook says no") : 0;
}

static const uint8_t *hooked_lookup(void *arg, const uint8_t *signer, size_t len, const char **name)
{
    return lookup(&((struct hooked *)arg)->seen, signer, len, name);
}

static int hooked_decode(void *arg, const struct sr_record *rec, char *why, size_t whylen)
{
    return decode(&((struct hooked *)arg)->seen, rec, why, whylen);
}

static void test_extra_elements_and_formats(void **state)
{
    (void)state;
    static const char *const names[] = {"counter"};
    const struct sr_record_format fmts[2] = {
        by_id,
        {.magic = "TSX1",
         .context = "skyroute/test/x/v1",
         .signer_form = SR_SIGNER_KEYID,
         .noun = "record",
         .signer_noun = "signer",
         .extra = 1,
         .extra_names = names,
         .check = hook_check,
         .verify = hook_verify},
    };
    /* [TSX1, body, id, sig, 5]: the signature is the hook's to judge */
    static const uint8_t sig[SR_SIGBYTES];
    sr_buf b;
    reframe(&b, "TSX1", (const uint8_t *)"\x80", 1, sr_key_id(alpha), SR_KEYIDBYTES, false, sig);
    b.data[0] = 0x95;
    assert_int_equal(sr_buf_append(&b, "\x05", 1), 0);
    struct hooked h = {0};
    struct sr_record_opener op = {.formats = fmts,
                                  .nformats = 2,
                                  .lookup = hooked_lookup,
                                  .decode = hooked_decode,
                                  .arg = &h};
    struct sr_record rec;
    char why[200];
    assert_int_equal(sr_record_open(&rec, &op, b.data, b.len, why, sizeof(why)), 0);
    assert_ptr_equal(rec.format, &fmts[1]);
    assert_int_equal(h.value, 5);
    assert_int_equal(h.checks + h.verifies + h.seen.decodes, 3);
    /* the verify hook's refusal: no decode */
    h.verify_rv = SR_ERR_ENV_BADSIG;
    assert_int_equal(sr_record_open(&rec, &op, b.data, b.len, why, sizeof(why)), SR_ERR_ENV_BADSIG);
    assert_string_equal(why, "hook says no");
    assert_int_equal(h.seen.decodes, 1);
    /* the check's refusal comes before the lookup */
    b.data[b.len - 1] = 0xcc; /* uint8 without its byte: truncated */
    assert_int_equal(sr_record_open(&rec, &op, b.data, b.len, why, sizeof(why)),
                     SR_ERR_ENV_TRUNCATED);
    assert_non_null(strstr(why, "the counter"));
    b.data[b.len - 1] = 0xc0; /* nil */
    int lookups = h.seen.lookups;
    assert_int_equal(sr_record_open(&rec, &op, b.data, b.len, why, sizeof(why)), SR_ERR_ENV_FORMAT);
    assert_string_equal(why, "element 5 must be a small integer");
    assert_int_equal(h.seen.lookups, lookups);
    /* an extra container is read whole */
    b.data[b.len - 1] = 0x91;
    assert_int_equal(sr_buf_append(&b, "\x07", 1), 0);
    assert_int_equal(sr_record_open(&rec, &op, b.data, b.len, why, sizeof(why)), SR_ERR_ENV_FORMAT);
    assert_int_equal(h.extra_len, 2);
    /* a count no format has; a magic that is not the one of its count */
    b.data[0] = 0x96;
    assert_int_equal(sr_record_open(&rec, &op, b.data, b.len, why, sizeof(why)), SR_ERR_ENV_FORMAT);
    assert_string_equal(why, "outer array has 6 elements, expected 4 (TST1) or 5 (TSX1)");
    b.data[0] = 0x94;
    assert_int_equal(sr_record_open(&rec, &op, b.data, b.len, why, sizeof(why)),
                     SR_ERR_ENV_VERSION);
    assert_non_null(strstr(why, "expected \"TST1\" in a 4-element record"));
    sr_buf_free(&b);
}

static void test_invalid_arguments(void **state)
{
    (void)state;
    struct seen s = {0};
    struct sr_record rec;
    char why[64];
    struct sr_record_opener op = {.formats = &by_id, .nformats = 1, .lookup = lookup, .arg = &s};
    static const uint8_t one[] = {0x94};
    assert_int_equal(sr_record_open(NULL, &op, one, 1, why, sizeof(why)), SR_ERR_INVAL);
    assert_string_equal(why, "invalid arguments");
    assert_int_equal(sr_record_open(&rec, NULL, one, 1, why, sizeof(why)), SR_ERR_INVAL);
    assert_int_equal(sr_record_open(&rec, &op, NULL, 1, why, sizeof(why)), SR_ERR_INVAL);
    assert_int_equal(sr_record_open(&rec, &op, NULL, 0, why, sizeof(why)), SR_ERR_ENV_TRUNCATED);
    assert_string_equal(why, "empty input");
    op.lookup = NULL;
    assert_int_equal(sr_record_open(&rec, &op, one, 1, why, sizeof(why)), SR_ERR_INVAL);
    op.lookup = lookup;
    op.nformats = 0;
    assert_int_equal(sr_record_open(&rec, &op, one, 1, why, sizeof(why)), SR_ERR_INVAL);
    /* no why buffer: the code alone */
    op.nformats = 1;
    assert_int_equal(sr_record_open(&rec, &op, one, 1, NULL, 0), SR_ERR_ENV_TRUNCATED);
    assert_int_equal(sr_whyf(NULL, 0, SR_ERR_PARSE, "%d", 1), SR_ERR_PARSE);
    assert_int_equal(sr_whyf(why, sizeof(why), 0, "%s-%d", "x", 2), 0);
    assert_string_equal(why, "x-2");
}

/* ---- sr_msgpack_bounded -------------------------------------------------------------------------
 */

static void test_msgpack_bounded(void **state)
{
    (void)state;
    static const uint8_t good[] = {0x82, 0xa1, 'a', 0x93, 1, 2, 3, 0xa1, 'b', 0xc4, 1, 0xff};
    assert_true(sr_msgpack_bounded(good, sizeof(good)));
    assert_false(sr_msgpack_bounded(good, sizeof(good) - 1)); /* cut */
    static const uint8_t two[] = {0x01, 0x02};
    assert_false(sr_msgpack_bounded(two, sizeof(two))); /* not one value */
    static const uint8_t bomb[] = {0xdf, 0xff, 0xff, 0xff, 0xff};
    assert_false(sr_msgpack_bounded(bomb, sizeof(bomb)));
    /* every declared element there, or refused: an array of 3 holding 2 */
    static const uint8_t short_arr[] = {0x93, 0x01, 0x02};
    assert_false(sr_msgpack_bounded(short_arr, sizeof(short_arr)));
    static const uint8_t bad_byte[] = {0x91, 0xc1};
    assert_false(sr_msgpack_bounded(bad_byte, sizeof(bad_byte)));
    assert_false(sr_msgpack_bounded(NULL, 0));
    assert_false(sr_msgpack_bounded(good, 0));
    /* nesting: 32 arrays one in another are fine, 33 are not */
    uint8_t deep[40];
    for (size_t depth = 32; depth <= 33; depth++) {
        memset(deep, 0x91, depth);
        deep[depth] = 0xc0;
        assert_int_equal(sr_msgpack_bounded(deep, depth + 1), depth == 32);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip_key_id),
        cmocka_unit_test(test_roundtrip_names),
        cmocka_unit_test(test_header_over_the_context),
        cmocka_unit_test(test_seal_refusals),
        cmocka_unit_test(test_wrong_magic_and_shape),
        cmocka_unit_test(test_trailing_bytes),
        cmocka_unit_test(test_declared_lengths),
        cmocka_unit_test(test_signature_before_body),
        cmocka_unit_test(test_context_separation),
        cmocka_unit_test(test_extra_elements_and_formats),
        cmocka_unit_test(test_invalid_arguments),
        cmocka_unit_test(test_msgpack_bounded),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
