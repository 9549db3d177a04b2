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
