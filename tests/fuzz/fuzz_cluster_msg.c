/*
 * libFuzzer harness for sr_cmsg_decode() (gateway/cluster/record.c), the
 * records stations exchange over NATS.
 *
 * Input is a record, decoded with one trusted station "fuzz" (key seed 32 x
 * 0x5a). Random bytes almost never carry a valid signature, so an input
 * starting with 0xc1 (a byte msgpack never uses) is instead taken as a BODY:
 * the harness signs it as station "fuzz" in an SRC2 record and decodes the
 * result, which drives the body decoder behind the signature check; 0xc0
 * (nil, never the start of a record) does the same with an SRC1 record. Whatever
 * decodes must encode (as SRC2, with a sequence) and decode again to the same
 * fields.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>

#include "gateway/cluster/cluster.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static sr_key *key;
static const char ctx2[] = "skyroute/cluster/v2";
static const char ctx1[] = "skyroute/cluster/v1";

static const uint8_t *lookup(void *arg, const char *station)
{
    (void)arg;
    return strcmp(station, "fuzz") ? NULL : sr_key_public(key);
}

static void init(void)
{
    uint8_t seed[32];
    memset(seed, 0x5a, sizeof(seed));
    if (sr_crypto_init() || sr_key_from_seed(&key, seed)) {
        abort();
    }
}

static void check_again(struct sr_cmsg *m)
{
    sr_buf b;
    sr_buf_init(&b, (size_t)64 << 20);
    if (m->seq < 1) {
        m->seq = 1; /* an SRC1 work record: SRC2 always carries one */
    }
    if (sr_cmsg_encode(&b, key, m) != 0) {
        abort(); /* what decodes must encode */
    }
    struct sr_cmsg d;
    char err[200];
    if (sr_cmsg_decode(&d, b.data, b.len, (size_t)64 << 20, lookup, NULL, err, sizeof(err)) != 0 ||
        d.kind != m->kind || strcmp(d.station, m->station) || d.t_ms != m->t_ms ||
        d.seq != m->seq || d.version != 2 || memcmp(d.id, m->id, sizeof(d.id)) ||
        strcmp(d.origin, m->origin) || strcmp(d.dest, m->dest) || strcmp(d.target, m->target) ||
        d.payload_len != m->payload_len ||
        (d.payload_len && memcmp(d.payload, m->payload, d.payload_len)) ||
        d.npasses != m->npasses || d.ntargets != m->ntargets || d.status != m->status ||
        d.node_env_len != m->node_env_len ||
        (d.node_env_len && memcmp(d.node_env, m->node_env, d.node_env_len))) {
        abort();
    }
    sr_cmsg_clear(&d);
    sr_buf_free(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int ready;
    if (!ready) {
        init();
        ready = 1;
    }
    struct sr_cmsg m;
    char err[200];
    int rv;
    if (size > 0 && (data[0] == 0xc1 || data[0] == 0xc0)) {
        /* sign data[1..] as a body */
        const char *ctx = data[0] == 0xc1 ? ctx2 : ctx1;
        size_t clen = strlen(ctx) + 1;
        size_t blen = size - 1;
        uint8_t *tbs = malloc(clen + blen + 1);
        if (!tbs) {
            return 0;
        }
        memcpy(tbs, ctx, clen);
        memcpy(tbs + clen, data + 1, blen);
        uint8_t sig[SR_SIGBYTES];
        sr_key_sign(key, sig, tbs, clen + blen);
        free(tbs);
        msgpack_sbuffer sb;
        msgpack_sbuffer_init(&sb);
        msgpack_packer pk;
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        msgpack_pack_array(&pk, 4);
        msgpack_pack_str_with_body(&pk, data[0] == 0xc1 ? "SRC2" : "SRC1", 4);
        msgpack_pack_bin_with_body(&pk, data + 1, blen);
        msgpack_pack_str_with_body(&pk, "fuzz", 4);
        msgpack_pack_bin_with_body(&pk, sig, SR_SIGBYTES);
        rv = sr_cmsg_decode(&m, (const uint8_t *)sb.data, sb.size, (size_t)64 << 20, lookup, NULL,
                            err, sizeof(err));
        msgpack_sbuffer_destroy(&sb);
    } else {
        rv = sr_cmsg_decode(&m, data, size, (size_t)64 << 20, lookup, NULL, err, sizeof(err));
    }
    if (rv == 0) {
        check_again(&m);
    } else if (!err[0]) {
        abort(); /* every refusal says why */
    }
    sr_cmsg_clear(&m);
    return 0;
}
