/*
 * libFuzzer harness for sr_envelope_open().
 *
 * Input is an envelope, opened with a ring that trusts one fixed key (seed
 * 32 x 0x5a; its key file is "ed25519-secret:WlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlo=").
 * Random bytes almost never carry a valid signature, so an input starting
 * with 0xc1 (a byte msgpack never uses, so no envelope starts with it) is
 * instead taken as a BODY: the harness signs it with the trusted key and
 * opens the result, which drives the body decoder behind the signature check.
 *
 * Whatever opens must re-seal and re-open to the same fields, as SR1 and as
 * a batch of three (SR2) opened through a root cache. Every input is also
 * opened with the root cache, which must not change the verdict.
 *
 * An input starting with 0xc2 (also never the first byte of an envelope)
 * tampers with a genuine batch instead: bytes 1 and 2 pick two of its eight
 * envelopes, the rest is XORed into the second from its start. The first is
 * opened through a fresh root cache, then the tampered second, with the cache
 * (whose climb may stop where it meets the first's) and without: the verdicts
 * must agree, and the genuine second must still open afterwards.
 *
 * An input starting with 0xc3 (never the first byte of an envelope either)
 * drives the batch messages of POST /v1/batch: the rest is split as a batch
 * of envelopes (each then opened), and read as a node's answer, item by
 * item, whole and again as it would stream in, in pieces whose sizes come
 * from the input: both readings must give the same items, and each item,
 * written again, must read back the same.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "crypto/crypto.h"

#define FUZZ_NOW 1700000000000LL /* 2023-11-14: before any corpus envelope's exp */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static sr_key *key;
static sr_keyring *ring;
static sr_buf sealed, resealed;
static sr_buf batch[3];
static sr_rootcache *roots;
#define GENUINE 8
static sr_buf genuine[GENUINE]; /* one batch, sealed once */
static uint8_t *tampered;

static void init(void)
{
    uint8_t seed[32];
    memset(seed, 0x5a, sizeof(seed));
    if (sr_crypto_init() || sr_key_from_seed(&key, seed) || sr_keyring_new(&ring) ||
        sr_keyring_add(ring, sr_key_public(key), "fuzz")) {
        abort();
    }
    sr_buf_init(&sealed, (size_t)8 << 20);
    sr_buf_init(&resealed, (size_t)8 << 20);
    for (int i = 0; i < 3; i++) {
        sr_buf_init(&batch[i], (size_t)8 << 20);
    }
    if (sr_rootcache_new(&roots)) {
        abort();
    }
    struct sr_envelope envs[GENUINE];
    static const uint8_t payload[] = "a genuine payload";
    for (int i = 0; i < GENUINE; i++) {
        envs[i] = (struct sr_envelope){.kind = SR_KIND_WORKLOAD,
                                       .iat = FUZZ_NOW - 1000,
                                       .exp = FUZZ_NOW + 60000,
                                       .payload = payload,
                                       .payload_len = sizeof(payload) - 1};
        envs[i].id[0] = (uint8_t)i;
        memcpy(envs[i].src, "fuzz-src", 9);
        memcpy(envs[i].dst, "fuzz-gw", 8);
        memcpy(envs[i].handler, "echo", 5);
        sr_buf_init(&genuine[i], 1 << 16);
    }
    if (sr_envelope_seal_batch(genuine, key, envs, GENUINE) != 0 ||
        !(tampered = malloc(genuine[0].len + 1024))) {
        abort();
    }
}

/* The 0xc2 inputs (see the top): a root cache's shortcut never changes a verdict. */
static void tamper_batch(const uint8_t *data, size_t size)
{
    if (size < 3) {
        return;
    }
    const sr_buf *first = &genuine[data[1] % GENUINE], *second = &genuine[data[2] % GENUINE];
    size_t n = second->len;
    memcpy(tampered, second->data, n);
    for (size_t i = 3; i < size && i - 3 < n; i++) {
        tampered[i - 3] ^= data[i];
    }
    sr_rootcache *c;
    if (sr_rootcache_new(&c) != 0) {
        abort();
    }
    struct sr_open_opts o = {.trust = ring, .self_id = "fuzz-gw", .now_ms = FUZZ_NOW};
    struct sr_open_opts oc = o;
    oc.roots = c;
    struct sr_envelope env;
    char why[256];
    if (sr_envelope_open(&env, first->data, first->len, &oc, why, sizeof(why)) != 0) {
        abort();
    }
    int rv = sr_envelope_open(&env, tampered, n, &o, why, sizeof(why));
    if (sr_envelope_open(&env, tampered, n, &oc, why, sizeof(why)) != rv ||
        sr_envelope_open(&env, second->data, second->len, &oc, why, sizeof(why)) != 0) {
        abort();
    }
    sr_rootcache_free(c);
}

/* Reads the items at the front of [p, p + len) into |out| (at most |max|):
 * how many, and the bytes they took in |*taken|. */
static size_t read_items(const uint8_t *p, size_t len, struct sr_batch_item *out, size_t max,
                         size_t *taken)
{
    size_t k = 0, off = 0, used;
    char why[160];
    while (k < max && off < len &&
           sr_batch_next_item(p + off, len - off, &out[k], &used, why, sizeof(why)) == 0 && used) {
        out[k].ctype = out[k].ctype_buf;
        off += used;
        k++;
    }
    *taken = off;
    return k;
}

/* The 0xc3 inputs (see the top). */
static void batch_messages(const uint8_t *data, size_t size)
{
    struct sr_batch_env envs[SR_BATCH_MSG_MAX];
    size_t n;
    char why[256];
    if (sr_batch_split(data, size, envs, SR_BATCH_MSG_MAX, &n, why, sizeof(why)) == 0) {
        struct sr_open_opts o = {.trust = ring, .self_id = "fuzz-gw", .now_ms = FUZZ_NOW};
        for (size_t i = 0; i < n; i++) {
            struct sr_envelope env;
            if (envs[i].ptr < data || envs[i].ptr + envs[i].len > data + size) {
                abort();
            }
            (void)sr_envelope_open(&env, envs[i].ptr, envs[i].len, &o, why, sizeof(why));
        }
    }
    static struct sr_batch_item whole[64], piece[64];
    size_t taken;
    size_t k = read_items(data, size, whole, 64, &taken);
    /* again as a stream: each piece as long as the byte at its start says */
    size_t have = 0, off = 0, m = 0;
    while (m < 64 && have < size) {
        have += 1 + data[have] % 97;
        if (have > size) {
            have = size;
        }
        size_t t;
        m += read_items(data + off, have - off, piece + m, 64 - m, &t);
        off += t;
    }
    if (m < k) { /* the stream read ended early only at the 64 cap */
        abort();
    }
    sr_buf b;
    sr_buf_init(&b, 1 << 20);
    for (size_t i = 0; i < k; i++) {
        struct sr_batch_item again;
        size_t used;
        if (whole[i].index != piece[i].index || whole[i].status != piece[i].status ||
            strcmp(whole[i].ctype, piece[i].ctype) || whole[i].len != piece[i].len ||
            memcmp(whole[i].body, piece[i].body, whole[i].len) ||
            sr_batch_append_item(&b, &whole[i]) != 0 ||
            sr_batch_next_item(b.data, b.len, &again, &used, why, sizeof(why)) != 0 ||
            used != b.len || again.index != whole[i].index || again.status != whole[i].status ||
            strcmp(again.ctype_buf, whole[i].ctype) || again.len != whole[i].len ||
            memcmp(again.body, whole[i].body, again.len)) {
            abort();
        }
        sr_buf_reset(&b);
    }
    sr_buf_free(&b);
}

static void check_same(const struct sr_envelope *a, const struct sr_envelope *b)
{
    if (a->kind != b->kind || memcmp(a->id, b->id, sizeof(a->id)) || a->iat != b->iat ||
        a->exp != b->exp || strcmp(a->src, b->src) || strcmp(a->dst, b->dst) ||
        strcmp(a->handler, b->handler) || a->payload_len != b->payload_len ||
        (a->payload_len && memcmp(a->payload, b->payload, a->payload_len)) ||
        a->flags != b->flags) {
        abort();
    }
    unsigned f = a->flags;
    if (((f & SR_ENV_HAS_WORK) && a->work != b->work) ||
        ((f & SR_ENV_HAS_RESULT_BYTES) && a->result_bytes != b->result_bytes) ||
        ((f & SR_ENV_HAS_STATUS) && a->status != b->status) ||
        ((f & SR_ENV_HAS_ERROR) && strcmp(a->error, b->error)) ||
        ((f & SR_ENV_HAS_T_RECV) && a->t_recv != b->t_recv) ||
        ((f & SR_ENV_HAS_T_DONE) && a->t_done != b->t_done)) {
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int ready;
    if (!ready) {
        init();
        ready = 1;
    }
    if (size > 0 && data[0] == 0xc2) {
        tamper_batch(data, size);
        return 0;
    }
    if (size > 0 && data[0] == 0xc3) {
        batch_messages(data + 1, size - 1);
        return 0;
    }
    const uint8_t *in = data;
    size_t len = size;
    if (size > 0 && data[0] == 0xc1) {
        sr_buf_reset(&sealed);
        if (sr_envelope_seal_raw(&sealed, key, data + 1, size - 1) != 0) {
            return 0;
        }
        in = sealed.data;
        len = sealed.len;
    }

    struct sr_open_opts o = {
        .trust = ring, .self_id = "fuzz-gw", .now_ms = FUZZ_NOW, .max_len = 1 << 20, .kinds = 0};
    struct sr_envelope env;
    char why[256];
    int rv = sr_envelope_open(&env, in, len, &o, why, sizeof(why));
    /* a root cache changes how often a root is verified, never the verdict;
     * twice, so the second open may come from the cache */
    for (int k = 0; k < 2; k++) {
        struct sr_open_opts oc = o;
        oc.roots = roots;
        struct sr_envelope cached;
        char whyc[256];
        if (sr_envelope_open(&cached, in, len, &oc, whyc, sizeof(whyc)) != rv) {
            abort();
        }
        if (rv == 0) {
            check_same(&env, &cached);
        }
    }
    if (rv == 0) {
        /* open refuses exp <= now, so exp - 1 cannot overflow */
        if (env.payload_len && (env.payload < in || env.payload + env.payload_len > in + len)) {
            abort();
        }
        /* without an address or clock check, the same bytes also open */
        struct sr_open_opts any = {.trust = ring, .now_ms = env.exp - 1};
        struct sr_envelope again;
        sr_buf_reset(&resealed);
        if (sr_envelope_seal(&resealed, key, &env) != 0 ||
            sr_envelope_open(&again, resealed.data, resealed.len, &any, why, sizeof(why)) != 0) {
            abort();
        }
        check_same(&env, &again);
        /* as a batch of three (the middle one with another id), each opening
         * on its own through the root cache */
        struct sr_envelope envs[3] = {env, env, env};
        envs[1].id[0] ^= 0xff;
        for (int i = 0; i < 3; i++) {
            sr_buf_reset(&batch[i]);
        }
        struct sr_open_opts anyc = any;
        anyc.roots = roots;
        if (sr_envelope_seal_batch(batch, key, envs, 3) != 0) {
            abort();
        }
        for (int i = 0; i < 3; i++) {
            if (sr_envelope_open(&again, batch[i].data, batch[i].len, &anyc, why, sizeof(why)) !=
                    0 ||
                again.version != 2) {
                abort();
            }
            check_same(&envs[i], &again);
        }
    } else if (why[0] == '\0' || rv >= 0) {
        abort(); /* every refusal says why */
    }
    return 0;
}
