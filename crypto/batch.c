/*
 * Sealing batched envelopes (SR2, crypto.h): the bodies of one batch under
 * one signature over their Merkle root (merkle.c), each framed by the record
 * codec (record.c) as an envelope that opens on its own; and the batch
 * messages of POST /v1/batch, several envelopes and their answers in one
 * HTTP message.
 */
#include "crypto/crypto_int.h"

#include <stdlib.h>
#include <string.h>

size_t sr_envelope_batch_auto(size_t inflight, unsigned answered_depth)
{
    size_t m = inflight / 8;
    size_t answers = answered_depth >= 16 ? SR_ENV_BATCH_AUTO_MAX : (size_t)1 << answered_depth;
    if (answers > m) {
        m = answers;
    }
    return m < SR_ENV_BATCH_DEFAULT    ? SR_ENV_BATCH_DEFAULT
           : m > SR_ENV_BATCH_AUTO_MAX ? SR_ENV_BATCH_AUTO_MAX
                                       : m;
}

int sr_envelope_seal_one(sr_buf *out, const sr_key *key, const struct sr_envelope *env)
{
    return sr_envelope_seal_batch(out, key, env, 1);
}

/* Appends envelope |i|'s leaf index and path (uint16, bin16: a tree of depth
 * <= 10 has paths of at most 320 bytes) to |x|: its length. */
static size_t sr2_extra(uint8_t *x, size_t i, uint8_t (*tree)[SR_MERKLE_HASHBYTES], size_t width,
                        unsigned depth)
{
    size_t t = 0;
    x[t++] = 0xcd;
    x[t++] = (uint8_t)(i >> 8);
    x[t++] = (uint8_t)i;
    size_t plen = (size_t)depth * SR_MERKLE_HASHBYTES;
    x[t++] = 0xc5;
    x[t++] = (uint8_t)(plen >> 8);
    x[t++] = (uint8_t)plen;
    size_t idx = i, loff = 0;
    for (size_t w = width; w > 1; w /= 2) {
        memcpy(x + t, tree[loff + (idx ^ 1)], SR_MERKLE_HASHBYTES);
        t += SR_MERKLE_HASHBYTES;
        idx /= 2;
        loff += w;
    }
    return t;
}

int sr_envelope_seal_batch(sr_buf *outs, const sr_key *key, const struct sr_envelope *envs,
                           size_t n)
{
    if (!outs || !key || !envs || n == 0 || n > SR_ENV_BATCH_MAX) {
        return SR_ERR_INVAL;
    }
    if (n == 1 && envs[0].payload_len < SR_ENV_PREHASH_MIN) {
        return sr_envelope_seal(&outs[0], key, &envs[0]); /* signed as it is */
    }
    const struct sr_record_format *fmt = &sr_env_formats[1];
    const size_t ctx = SR_ENV_SIGCTX_LEN;
    unsigned depth = 0;
    while (((size_t)1 << depth) < n) {
        depth++;
    }
    size_t width = (size_t)1 << depth;
    /* tree[] holds every level, leaves first: width + width/2 + ... + 1 */
    uint8_t(*tree)[SR_MERKLE_HASHBYTES] = malloc(2 * width * SR_MERKLE_HASHBYTES);
    size_t *starts = malloc(n * sizeof(*starts));
    int rv = tree && starts ? 0 : SR_ERR_NOMEM;
    size_t done = 0;
    /* bodies first, each after the context, the gap for the outer header */
    for (; rv == 0 && done < n; done++) {
        sr_buf *out = &outs[done];
        starts[done] = out->len;
        rv = sr_env_check(&envs[done]);
        if (rv == 0 && envs[done].payload_len > SIZE_MAX - SR_ENV_BODY_OVERHEAD - 512) {
            rv = SR_ERR_TOOBIG;
        }
        /* + the leaf index and the path */
        rv = rv ? rv
                : sr_rec_begin(out, fmt, SR_KEYIDBYTES,
                               sr_env_body_bound(&envs[done]) + 16 + 32 * (size_t)depth);
        rv = rv ? rv : sr_rec_body(out, sr_env_pack_body, &envs[done]);
        if (rv == 0) {
            size_t body_len = out->len - starts[done] - ctx;
            if (body_len > UINT32_MAX) {
                rv = SR_ERR_TOOBIG;
            } else {
                rv = sr_merkle_leaf(tree[done], out->data + starts[done] + ctx, body_len);
            }
        }
    }
    for (size_t i = n; rv == 0 && i < width; i++) {
        rv = sr_merkle_empty(tree[i]);
    }
    /* level k starts at off[k]; its parent level follows it */
    size_t off = 0;
    for (size_t w = width; rv == 0 && w > 1; w /= 2) {
        for (size_t i = 0; rv == 0 && i < w / 2; i++) {
            rv = sr_merkle_node(tree[off + w + i], tree[off + 2 * i], tree[off + 2 * i + 1]);
        }
        off += w;
    }
    if (rv) {
        for (size_t i = 0; i < done; i++) {
            outs[i].len = starts[i];
        }
        free(tree);
        free(starts);
        return rv;
    }
    uint8_t msg[SR_ROOTMSG_LEN], sig[SR_SIGBYTES];
    sr_merkle_root_msg(msg, depth, tree[off]);
    sr_key_sign(key, sig, msg, sizeof(msg));

    for (size_t i = 0; rv == 0 && i < n; i++) {
        uint8_t extra[6 + 10 * SR_MERKLE_HASHBYTES];
        size_t xl = sr2_extra(extra, i, tree, width, depth);
        rv = sr_rec_frame(&outs[i], starts[i], fmt, sr_key_id(key), SR_KEYIDBYTES, sig, extra, xl);
    }
    if (rv) {
        for (size_t i = 0; i < n; i++) {
            outs[i].len = starts[i];
        }
    }
    free(tree);
    free(starts);
    return rv;
}

/* ===========================================================================
 * Batch messages: several envelopes in one message, and their answers
 * ======================================================================== */

int sr_batch_append_env(sr_buf *b, const void *env, size_t len)
{
    if ((uint64_t)len > 0xffffffffu) {
        return SR_ERR_TOOBIG;
    }
    size_t before = b->len;
    struct sr_mp_sink sink;
    msgpack_packer pk;
    sr_mp_sink_init(&sink, &pk, b);
    msgpack_pack_bin_with_body(&pk, env, len);
    if (sink.err) {
        b->len = before;
    }
    return sink.err;
}

int sr_batch_split(const uint8_t *msg, size_t len, struct sr_batch_env *envs, size_t max, size_t *n,
                   char *why, size_t whylen)
{
    const uint8_t *p = msg, *end = msg + len;
    size_t k = 0;
    while (p < end) {
        size_t off = (size_t)(p - msg);
        struct sr_mp_obj o;
        int rv = sr_mp_next(&p, end, &o);
        if (rv != SR_MP_OK) {
            return sr_whyf(why, whylen, SR_ERR_PARSE,
                           "batch: the value at offset %zu is cut short or not msgpack", off);
        }
        if (o.type != SR_MP_BIN) {
            return sr_whyf(why, whylen, SR_ERR_PARSE,
                           "batch: the value at offset %zu is not a bin (one envelope each)", off);
        }
        if (k == max) {
            return sr_whyf(why, whylen, SR_ERR_TOOBIG, "batch: more than %zu envelopes", max);
        }
        envs[k].ptr = o.ptr;
        envs[k].len = (size_t)o.len;
        k++;
    }
    if (k == 0) {
        return sr_whyf(why, whylen, SR_ERR_PARSE, "batch: no envelope");
    }
    *n = k;
    return 0;
}

/* A msgpack writer into a fixed array (an item's head: no allocation). */
struct fixed_ctx {
    uint8_t *p;
    size_t len, cap;
};

static int fixed_write(void *data, const char *buf, size_t len)
{
    struct fixed_ctx *c = data;
    if (len > c->cap - c->len) {
        return -1;
    }
    memcpy(c->p + c->len, buf, len);
    c->len += len;
    return 0;
}

size_t sr_batch_item_head(uint8_t out[SR_BATCH_HEAD_MAX], const struct sr_batch_item *it)
{
    size_t cl = strlen(it->ctype);
    if (it->status < 100 || it->status > 999 || cl > 31 || (uint64_t)it->len > 0xffffffffu) {
        return 0;
    }
    struct fixed_ctx ctx = {.p = out, .cap = SR_BATCH_HEAD_MAX};
    msgpack_packer pk;
    msgpack_packer_init(&pk, &ctx, fixed_write);
    int rv = msgpack_pack_array(&pk, 4);
    rv = rv ? rv : msgpack_pack_uint32(&pk, it->index);
    rv = rv ? rv : msgpack_pack_uint32(&pk, (uint32_t)it->status);
    rv = rv ? rv : msgpack_pack_str_with_body(&pk, it->ctype, cl);
    rv = rv ? rv : msgpack_pack_bin(&pk, it->len);
    return rv ? 0 : ctx.len;
}

int sr_batch_append_item(sr_buf *b, const struct sr_batch_item *it)
{
    uint8_t head[SR_BATCH_HEAD_MAX];
    size_t hl = sr_batch_item_head(head, it);
    if (!hl) {
        return SR_ERR_INVAL;
    }
    size_t before = b->len;
    int rv = sr_buf_append(b, head, hl);
    rv = rv ? rv : sr_buf_append(b, it->body, it->len);
    if (rv) {
        b->len = before;
    }
    return rv;
}

int sr_batch_next_item(const uint8_t *p, size_t len, struct sr_batch_item *it, size_t *used,
                       char *why, size_t whylen)
{
    const uint8_t *q = p, *end = p + len;
    if (len > 0 && p[0] != 0x94) {
        return sr_whyf(why, whylen, SR_ERR_PARSE,
                       "batch answer: an item is not a 4-element array (it starts with 0x%02x)",
                       p[0]);
    }
    struct sr_mp_obj o[5];
    int rv = SR_MP_OK;
    for (int k = 0; k < 5 && rv == SR_MP_OK; k++) {
        rv = sr_mp_next(&q, end, &o[k]);
    }
    if (rv == SR_MP_TRUNC) {
        *used = 0; /* cut short: complete once more bytes come */
        return 0;
    }
    if (rv != SR_MP_OK || o[0].type != SR_MP_ARRAY || o[0].len != 4 || o[1].type != SR_MP_UINT ||
        o[1].u > UINT32_MAX || o[2].type != SR_MP_UINT || o[2].u < 100 || o[2].u > 999 ||
        o[3].type != SR_MP_STR || o[3].len > 31 || o[4].type != SR_MP_BIN) {
        return sr_whyf(why, whylen, SR_ERR_PARSE,
                       "batch answer: not [index, status, content-type, body]");
    }
    it->index = (uint32_t)o[1].u;
    it->status = (int)o[2].u;
    memcpy(it->ctype_buf, o[3].ptr, (size_t)o[3].len);
    it->ctype_buf[o[3].len] = 0;
    it->ctype = it->ctype_buf;
    it->body = o[4].ptr;
    it->len = (size_t)o[4].len;
    *used = (size_t)(q - p);
    return 0;
}
