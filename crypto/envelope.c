/*
 * The signed msgpack envelope of DESIGN section 5: seal and open.
 *
 *     outer = ["SR1", bin body, bin(8) signer, bin(64) sig]
 *     sig   = Ed25519("skyroute/v1\0" || body)
 *
 * ---- Sealing: one copy of the payload, no scratch buffer -------------------
 *
 * Plain Ed25519 hashes the message twice, so it needs "skyroute/v1\0" || body
 * contiguous in memory. We write exactly that into the output buffer: the
 * 12-byte signing prefix, then the body map encoded in place (the payload is
 * copied once, by the packer). After signing, the prefix has served its
 * purpose and the outer header is written over it. The header is always
 * exactly 12 bytes, so nothing has to move:
 *
 *     dc 00 04          array16, 4 elements
 *     a3 53 52 31       fixstr "SR1"
 *     c6 LL LL LL LL    bin32, body length (big endian)
 *
 * array16 and bin32 are valid, if not minimal, msgpack encodings; every
 * msgpack decoder accepts them. The opener accepts any encoding of the outer
 * array (fixarray, bin8, ...), so other implementations may emit minimal ones.
 * The signature covers only the body bytes, never the framing.
 *
 * ---- Opening: nothing is decoded before the signature verifies --------------
 *
 * The outer array is parsed by hand over [p, end): every declared length is
 * checked against opts->max_len (OVERSIZE) and then against the bytes left
 * (TRUNCATED) before anything is read. Then the signer must be in the ring
 * (UNTRUSTED) and the signature must verify (BADSIG). Only then is the body
 * map decoded, by the same hand-written reader, zero-copy: strings are copied
 * into the fixed arrays of struct sr_envelope and the payload points into the
 * caller's input. Verification needs prefix || body contiguous too, and the
 * input is const, so the body is copied once: into a stack buffer when small,
 * else into one malloc'd block.
 */
/* the one-shot SHA256_* functions, below */
#define OPENSSL_SUPPRESS_DEPRECATED

#include "crypto/crypto.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <pthread.h>
#include <string.h>
#include <sys/random.h>

#include <msgpack.h>
#include <openssl/sha.h>
#include <sodium.h>

#define SR_ENV_DEFAULT_MAX ((size_t)64 << 20)
#define SR_ENV_HDRLEN 12                                     /* see the banner */
#define SR_ENV_TAILLEN (2 + SR_KEYIDBYTES + 2 + SR_SIGBYTES) /* bin8 id, bin8 sig */
#define SR_ENV_BODY_OVERHEAD 1024 /* bound on a body minus its payload (checks only) */
#define SR_ENV_VERIFY_STACK 4096  /* prefix + body up to this size: no malloc */
#define SR_MP_MAXDEPTH 32         /* nesting allowed inside unknown values */
#define SR_MERKLE_HASHBYTES 32    /* SHA-256 */

_Static_assert(SR_ENV_HDRLEN == SR_ENV_SIGCTX_LEN,
               "the outer header is written over the signing prefix");
_Static_assert(sizeof(SR_ENV_SIGCTX) == SR_ENV_SIGCTX_LEN, "prefix includes its NUL");

static const char *const kind_names[] = {NULL, "workload", "result", "schedule"};

const char *sr_kind_name(sr_kind kind)
{
    if ((int)kind >= SR_KIND_WORKLOAD && (int)kind <= SR_KIND_SCHEDULE) {
        return kind_names[kind];
    }
    return "?";
}

/*
 * Ids come from a per-thread pool of 4 KiB of random bytes, refilled from the
 * kernel's generator with one getrandom() call per refill, not per id
 * (randombytes_buf() asks for 256 bytes at a time: 16 system calls per
 * refill). Each pool byte is handed out once and wiped as it goes. A child
 * made by fork() starts with an empty pool (pthread_atfork), so parent and
 * child never hand out the same ids.
 */
#define SR_ID_POOL 4096

static _Thread_local uint8_t id_pool[SR_ID_POOL];
static _Thread_local size_t id_left;
static pthread_once_t id_once = PTHREAD_ONCE_INIT;

static void id_pool_forget(void)
{
    sodium_memzero(id_pool, sizeof(id_pool));
    id_left = 0;
}

static void id_pool_init(void)
{
    /* if this fails the pool still works; only fork safety is lost, and the
     * daemons do not call this after fork */
    (void)pthread_atfork(NULL, NULL, id_pool_forget);
}

static void id_pool_fill(void)
{
    size_t got = 0;
    while (got < sizeof(id_pool)) {
        ssize_t n = getrandom(id_pool + got, sizeof(id_pool) - got, 0);
        if (n > 0) {
            got += (size_t)n;
        } else if (n < 0 && errno == EINTR) {
            continue; /* a signal before any bytes */
        } else {
            /* no getrandom() (ENOSYS): libsodium's own way to the kernel */
            randombytes_buf(id_pool + got, sizeof(id_pool) - got);
            break;
        }
    }
    id_left = sizeof(id_pool);
}

void sr_envelope_new_id(uint8_t id[SR_ENV_IDBYTES])
{
    (void)pthread_once(&id_once, id_pool_init);
    if (id_left < SR_ENV_IDBYTES) {
        id_pool_fill();
    }
    uint8_t *p = id_pool + sizeof(id_pool) - id_left;
    memcpy(id, p, SR_ENV_IDBYTES);
    sodium_memzero(p, SR_ENV_IDBYTES);
    id_left -= SR_ENV_IDBYTES;
}

static int fail(char *why, size_t whylen, int code, const char *fmt, ...) SR_PRINTF(4, 5);

static int fail(char *why, size_t whylen, int code, const char *fmt, ...)
{
    if (why && whylen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(why, whylen, fmt, ap);
        va_end(ap);
    }
    return code;
}

/* Copies up to 24 bytes of untrusted text for a message, '?' for anything not
 * printable ASCII. */
static void printable(char *dst, size_t dstlen, const uint8_t *s, size_t n)
{
    size_t j = 0;
    for (size_t i = 0; i < n && j + 4 < dstlen; i++) {
        if (i == 24) {
            memcpy(dst + j, "...", 3);
            j += 3;
            break;
        }
        dst[j++] = (s[i] >= 0x20 && s[i] < 0x7f) ? (char)s[i] : '?';
    }
    dst[j] = '\0';
}

/* ===========================================================================
 * Sealing
 * ======================================================================== */

struct pack_ctx {
    sr_buf *b;
    int err;
};

static int pack_write(void *data, const char *buf, size_t len)
{
    struct pack_ctx *c = data;
    int rv = sr_buf_append(c->b, buf, len);
    if (rv && !c->err) {
        c->err = rv;
    }
    return rv ? -1 : 0;
}

static void pack_key(msgpack_packer *pk, const char *k)
{
    msgpack_pack_str_with_body(pk, k, strlen(k));
}

static void pack_kv_str(msgpack_packer *pk, const char *k, const char *v)
{
    pack_key(pk, k);
    msgpack_pack_str_with_body(pk, v, strlen(v));
}

static void pack_kv_int(msgpack_packer *pk, const char *k, int64_t v)
{
    pack_key(pk, k);
    msgpack_pack_int64(pk, v);
}

/* True if |s| is NUL-terminated within |cap| bytes. */
static bool fits(const char *s, size_t cap)
{
    return memchr(s, '\0', cap) != NULL;
}

static int check_env(const struct sr_envelope *env)
{
    if ((int)env->kind < SR_KIND_WORKLOAD || (int)env->kind > SR_KIND_SCHEDULE) {
        return SR_ERR_INVAL;
    }
    if (!fits(env->src, sizeof(env->src)) || !fits(env->dst, sizeof(env->dst)) ||
        !fits(env->handler, sizeof(env->handler))) {
        return SR_ERR_INVAL;
    }
    if ((env->flags & SR_ENV_HAS_ERROR) && !fits(env->error, sizeof(env->error))) {
        return SR_ERR_INVAL;
    }
    if (!env->payload && env->payload_len) {
        return SR_ERR_INVAL;
    }
    if ((env->flags & SR_ENV_HAS_WORK) && !(isfinite(env->work) && env->work >= 0)) {
        return SR_ERR_INVAL;
    }
    if ((env->flags & SR_ENV_HAS_RESULT_BYTES) && env->result_bytes < 0) {
        return SR_ERR_INVAL;
    }
    return 0;
}

/* Encodes the body map of |env| at the end of |b|. */
static int pack_body(sr_buf *b, const struct sr_envelope *env)
{
    struct pack_ctx ctx = {b, 0};
    msgpack_packer pk;
    msgpack_packer_init(&pk, &ctx, pack_write);

    unsigned f = env->flags;
    bool hints = f & (SR_ENV_HAS_WORK | SR_ENV_HAS_RESULT_BYTES);
    size_t n = 8; /* v kind id iat exp src dst payload */
    n += env->handler[0] != '\0';
    n += hints;
    n += !!(f & SR_ENV_HAS_STATUS) + !!(f & SR_ENV_HAS_ERROR);
    n += !!(f & SR_ENV_HAS_T_RECV) + !!(f & SR_ENV_HAS_T_DONE);

    msgpack_pack_map(&pk, n);
    pack_kv_int(&pk, "v", 1);
    pack_kv_str(&pk, "kind", kind_names[env->kind]);
    pack_key(&pk, "id");
    msgpack_pack_bin_with_body(&pk, env->id, SR_ENV_IDBYTES);
    pack_kv_int(&pk, "iat", env->iat);
    pack_kv_int(&pk, "exp", env->exp);
    pack_kv_str(&pk, "src", env->src);
    pack_kv_str(&pk, "dst", env->dst);
    if (env->handler[0]) {
        pack_kv_str(&pk, "handler", env->handler);
    }
    pack_key(&pk, "payload");
    msgpack_pack_bin(&pk, env->payload_len);
    if (env->payload_len) {
        msgpack_pack_bin_body(&pk, env->payload, env->payload_len); /* the one copy */
    }
    if (hints) {
        pack_key(&pk, "hints");
        msgpack_pack_map(&pk, (size_t) !!(f & SR_ENV_HAS_WORK) + !!(f & SR_ENV_HAS_RESULT_BYTES));
        if (f & SR_ENV_HAS_WORK) {
            pack_key(&pk, "work");
            msgpack_pack_double(&pk, env->work);
        }
        if (f & SR_ENV_HAS_RESULT_BYTES) {
            pack_kv_int(&pk, "result_bytes", env->result_bytes);
        }
    }
    if (f & SR_ENV_HAS_STATUS) {
        pack_kv_int(&pk, "status", env->status);
    }
    if (f & SR_ENV_HAS_ERROR) {
        pack_kv_str(&pk, "error", env->error);
    }
    if (f & SR_ENV_HAS_T_RECV) {
        pack_kv_int(&pk, "t_recv", env->t_recv);
    }
    if (f & SR_ENV_HAS_T_DONE) {
        pack_kv_int(&pk, "t_done", env->t_done);
    }
    return ctx.err;
}

/* |out| holds, from |start|, the signing prefix and then the body. Signs,
 * writes the outer header over the prefix and appends signer and signature. */
static int seal_finish(sr_buf *out, size_t start, const sr_key *key)
{
    size_t body_len = out->len - start - SR_ENV_HDRLEN;
    if (body_len > UINT32_MAX) {
        return SR_ERR_TOOBIG;
    }
    uint8_t tail[SR_ENV_TAILLEN];
    tail[0] = 0xc4;
    tail[1] = SR_KEYIDBYTES;
    memcpy(tail + 2, sr_key_id(key), SR_KEYIDBYTES);
    tail[2 + SR_KEYIDBYTES] = 0xc4;
    tail[3 + SR_KEYIDBYTES] = SR_SIGBYTES;
    sr_key_sign(key, tail + 4 + SR_KEYIDBYTES, out->data + start, SR_ENV_HDRLEN + body_len);

    uint8_t *h = out->data + start;
    h[0] = 0xdc;
    h[1] = 0x00;
    h[2] = 0x04;
    h[3] = 0xa3;
    h[4] = 'S';
    h[5] = 'R';
    h[6] = '1';
    h[7] = 0xc6;
    h[8] = (uint8_t)(body_len >> 24);
    h[9] = (uint8_t)(body_len >> 16);
    h[10] = (uint8_t)(body_len >> 8);
    h[11] = (uint8_t)body_len;
    return sr_buf_append(out, tail, sizeof(tail));
}

/* Bytes pack_body() writes for |env| at most: the payload, the strings, and
 * 320 for the keys, headers and numbers (about 230 with every optional field;
 * checked in tests/crypto). An estimate only sizes the buffer once: were it
 * short, the appends would still grow it. */
static size_t body_bound(const struct sr_envelope *env)
{
    size_t n = env->payload_len + 320;
    n += strnlen(env->src, SR_ENV_STRMAX) + strnlen(env->dst, SR_ENV_STRMAX) +
         strnlen(env->handler, SR_ENV_STRMAX);
    if (env->flags & SR_ENV_HAS_ERROR) {
        n += strnlen(env->error, SR_ENV_ERRMAX);
    }
    return n;
}

/* Reserves room for the whole envelope up front when the ceiling allows, so
 * the encoder never reallocates midway. A failed estimate is not an error:
 * the appends themselves enforce the ceiling. */
static int reserve_for(sr_buf *out, size_t body_bound)
{
    if (body_bound > SIZE_MAX - SR_ENV_HDRLEN - SR_ENV_TAILLEN) {
        return SR_ERR_TOOBIG;
    }
    int rv = sr_buf_reserve(out, SR_ENV_HDRLEN + body_bound + SR_ENV_TAILLEN);
    return rv == SR_ERR_NOMEM ? rv : 0;
}

int sr_envelope_seal(sr_buf *out, const sr_key *key, const struct sr_envelope *env)
{
    if (!out || !key || !env) {
        return SR_ERR_INVAL;
    }
    int rv = check_env(env);
    if (rv) {
        return rv;
    }
    size_t start = out->len;
    if (env->payload_len > SIZE_MAX - SR_ENV_BODY_OVERHEAD) {
        return SR_ERR_TOOBIG;
    }
    rv = reserve_for(out, body_bound(env));
    if (rv == 0) {
        rv = sr_buf_append(out, SR_ENV_SIGCTX, SR_ENV_SIGCTX_LEN);
    }
    if (rv == 0) {
        rv = pack_body(out, env);
    }
    if (rv == 0) {
        rv = seal_finish(out, start, key);
    }
    if (rv) {
        out->len = start;
    }
    return rv;
}

int sr_envelope_seal_raw(sr_buf *out, const sr_key *key, const uint8_t *body, size_t body_len)
{
    if (!out || !key || (!body && body_len)) {
        return SR_ERR_INVAL;
    }
    size_t start = out->len;
    int rv = reserve_for(out, body_len);
    if (rv == 0) {
        rv = sr_buf_append(out, SR_ENV_SIGCTX, SR_ENV_SIGCTX_LEN);
    }
    if (rv == 0) {
        rv = sr_buf_append(out, body, body_len);
    }
    if (rv == 0) {
        rv = seal_finish(out, start, key);
    }
    if (rv) {
        out->len = start;
    }
    return rv;
}

/* ===========================================================================
 * Batched envelopes ("SR2"): one signature over a Merkle root
 *
 * Leaves, inner nodes and padding hash under distinct one-byte prefixes, and
 * the root is signed under "skyroute/v2\0" with the tree depth, so a leaf can
 * never pass for a node, a shorter tree for a longer one, or a root signature
 * for an SR1 body signature (whose prefix is "skyroute/v1\0"). The batch is
 * padded to a power of two with the empty hash, so every path has the same
 * length and the index's bits alone say left or right at each level.
 * ======================================================================== */

#define SR_ENV_SIGCTX2 "skyroute/v2"
#define SR_ROOTMSG_LEN (SR_ENV_SIGCTX_LEN + 1 + SR_MERKLE_HASHBYTES)
#define SR_ROOTCACHE_SLOTS 64

_Static_assert(sizeof(SR_ENV_SIGCTX2) == SR_ENV_SIGCTX_LEN, "v2 prefix is as long as v1's");

/* SHA-256 through OpenSSL, which uses the CPU's SHA instructions where
 * there are any (x86 SHA-NI, ARMv8 SHA2): 2.7x the speed of libsodium's
 * BLAKE2b on a 64 KiB body and 1.9x on a 65-byte inner node on the machine
 * of the README's benchmark. Every leaf is hashed twice per hop (sealed and
 * opened), so this is most of what a batched envelope costs. The one-shot
 * SHA256_* functions (deprecated in OpenSSL 3, still in every 3.x) rather
 * than EVP: OpenSSL 3.0's EVP_DigestInit_ex2 makes and frees a provider
 * context per hash, one malloc and free for each of the nine or so hashes of
 * a request, and 0.12 against 0.10 us for an inner node. */
static int sha256_tagged(uint8_t out[SR_MERKLE_HASHBYTES], uint8_t tag, const void *a, size_t alen,
                         const void *b, size_t blen)
{
    SHA256_CTX c;
    if (SHA256_Init(&c) != 1 || SHA256_Update(&c, &tag, 1) != 1 ||
        (alen && SHA256_Update(&c, a, alen) != 1) || (blen && SHA256_Update(&c, b, blen) != 1) ||
        SHA256_Final(out, &c) != 1) {
        return SR_ERR_NOMEM;
    }
    return 0;
}

static int merkle_leaf(uint8_t out[SR_MERKLE_HASHBYTES], const uint8_t *body, size_t len)
{
    return sha256_tagged(out, 0x00, body, len, NULL, 0);
}

static int merkle_node(uint8_t out[SR_MERKLE_HASHBYTES], const uint8_t l[SR_MERKLE_HASHBYTES],
                       const uint8_t r[SR_MERKLE_HASHBYTES])
{
    return sha256_tagged(out, 0x01, l, SR_MERKLE_HASHBYTES, r, SR_MERKLE_HASHBYTES);
}

static int merkle_empty(uint8_t out[SR_MERKLE_HASHBYTES])
{
    return sha256_tagged(out, 0x02, NULL, 0, NULL, 0);
}

/* The signed message: prefix || depth || root. */
static void root_msg(uint8_t msg[SR_ROOTMSG_LEN], unsigned depth,
                     const uint8_t root[SR_MERKLE_HASHBYTES])
{
    memcpy(msg, SR_ENV_SIGCTX2, SR_ENV_SIGCTX_LEN);
    msg[SR_ENV_SIGCTX_LEN] = (uint8_t)depth;
    memcpy(msg + SR_ENV_SIGCTX_LEN + 1, root, SR_MERKLE_HASHBYTES);
}

/* One verified root, and the last envelope opened under it: its leaf index,
 * its path, and the nodes its leaf and path led to (last_nodes[k] at level k,
 * 1 <= k <= depth; level depth is the root). The next envelope of the same
 * batch is usually the next leaf: its climb meets the last one's a level or
 * two up, and from there on both are the same nodes. */
struct rootcache_slot {
    bool used;
    uint8_t pk[SR_PUBLICKEYBYTES];
    uint8_t msg[SR_ROOTMSG_LEN];
    uint8_t sig[SR_SIGBYTES];
    uint64_t last_index;
    uint8_t last_path[SR_ENV_PATH_MAX][SR_MERKLE_HASHBYTES];
    uint8_t last_nodes[SR_ENV_PATH_MAX + 1][SR_MERKLE_HASHBYTES];
};

struct sr_rootcache {
    struct rootcache_slot slot[SR_ROOTCACHE_SLOTS];
    unsigned next; /* round-robin replacement */
    uint64_t hits, hashes_saved;
};

int sr_rootcache_new(sr_rootcache **out)
{
    *out = calloc(1, sizeof(**out));
    return *out ? 0 : SR_ERR_NOMEM;
}

void sr_rootcache_free(sr_rootcache *c)
{
    free(c);
}

uint64_t sr_rootcache_hits(const sr_rootcache *c)
{
    return c ? c->hits : 0;
}

uint64_t sr_rootcache_hashes_saved(const sr_rootcache *c)
{
    return c ? c->hashes_saved : 0;
}

/*
 * The newest slot (the envelopes of one batch arrive together) holding a
 * signature |sig| by |pk| over |msg|, or with |msg| NULL over any root of a
 * tree |depth| deep; NULL if none. Slots hold only signatures that verified,
 * and Ed25519 verification is deterministic, so a slot found by |msg| is as
 * good as verifying, and one found by |sig| holds the root |sig| covers.
 */
static struct rootcache_slot *rootcache_find(sr_rootcache *c, const uint8_t *pk, const uint8_t *sig,
                                             const uint8_t *msg, unsigned depth)
{
    for (unsigned k = 1; k <= SR_ROOTCACHE_SLOTS; k++) {
        struct rootcache_slot *s =
            &c->slot[(c->next + SR_ROOTCACHE_SLOTS - k) % SR_ROOTCACHE_SLOTS];
        if (s->used && !memcmp(s->sig, sig, SR_SIGBYTES) &&
            (msg ? !memcmp(s->msg, msg, SR_ROOTMSG_LEN) : s->msg[SR_ENV_SIGCTX_LEN] == depth) &&
            !memcmp(s->pk, pk, SR_PUBLICKEYBYTES)) {
            return s;
        }
    }
    return NULL;
}

static struct rootcache_slot *rootcache_add(sr_rootcache *c, const uint8_t *pk, const uint8_t *msg,
                                            const uint8_t *sig)
{
    struct rootcache_slot *s = &c->slot[c->next];
    c->next = (c->next + 1) % SR_ROOTCACHE_SLOTS;
    s->used = true;
    memcpy(s->pk, pk, SR_PUBLICKEYBYTES);
    memcpy(s->msg, msg, SR_ROOTMSG_LEN);
    memcpy(s->sig, sig, SR_SIGBYTES);
    return s;
}

/* Records the envelope at |index| as the last one opened under |s|'s root:
 * its path and its nodes at levels 1 to |level| - 1, starting at |nodes1|
 * (those from |level| up are already the slot's). */
static void rootcache_remember(struct rootcache_slot *s, uint64_t index, const uint8_t *path,
                               const uint8_t *nodes1, unsigned level)
{
    s->last_index = index;
    memcpy(s->last_path, path, (size_t)level * SR_MERKLE_HASHBYTES);
    if (level > 1) {
        memcpy(s->last_nodes[1], nodes1, (size_t)(level - 1) * SR_MERKLE_HASHBYTES);
    }
}

/*
 * Recomputes the root from the body and its path and checks the signature
 * over it (or finds it in |cache|). 0 or SR_ERR_ENV_BADSIG.
 *
 * With |cache|, the climb may stop early: once it reaches the level where
 * this leaf's ancestors and those of the last envelope opened under the same
 * signature are the same nodes, an equal node there and an equal path from
 * there up mean the rest of the climb would repeat the last one's, to the
 * root its signature verified over. The verdict is the one the full climb
 * gives; only the hashes are saved.
 */
static int merkle_verify(const uint8_t *pk, sr_rootcache *cache, const uint8_t *body, size_t len,
                         const uint8_t *sig, uint64_t index, const uint8_t *path, unsigned depth)
{
    uint8_t nodes[SR_ENV_PATH_MAX + 1][SR_MERKLE_HASHBYTES];
    if (depth == 0) {
        cache = NULL; /* a tree of one leaf: no other envelope shares its root */
    }
    struct rootcache_slot *s = cache ? rootcache_find(cache, pk, sig, NULL, depth) : NULL;
    int rv = merkle_leaf(nodes[0], body, len);
    for (unsigned k = 0; rv == 0 && k < depth; k++) {
        const uint8_t *sib = path + (size_t)k * SR_MERKLE_HASHBYTES;
        rv = (index >> k) & 1 ? merkle_node(nodes[k + 1], sib, nodes[k])
                              : merkle_node(nodes[k + 1], nodes[k], sib);
        unsigned level = k + 1;
        if (rv == 0 && s && (index >> level) == (s->last_index >> level)) {
            /* the first level where this climb and the last one share a node */
            if (!memcmp(nodes[level], s->last_nodes[level], SR_MERKLE_HASHBYTES) &&
                !memcmp(path + (size_t)level * SR_MERKLE_HASHBYTES, s->last_path[level],
                        (size_t)(depth - level) * SR_MERKLE_HASHBYTES)) {
                rootcache_remember(s, index, path, nodes[1], level);
                cache->hits++;
                cache->hashes_saved += depth - level;
                return 0;
            }
            s = NULL; /* not the last one's tree here: climb to the root */
        }
    }
    if (rv) {
        return rv;
    }
    uint8_t msg[SR_ROOTMSG_LEN];
    root_msg(msg, depth, nodes[depth]);
    if (cache && (s = rootcache_find(cache, pk, sig, msg, depth))) {
        cache->hits++;
    } else if (sr_verify(pk, sig, msg, sizeof(msg)) != 0) {
        return SR_ERR_ENV_BADSIG;
    } else if (cache) {
        s = rootcache_add(cache, pk, msg, sig);
    }
    if (s) {
        memcpy(s->last_nodes[depth], nodes[depth], SR_MERKLE_HASHBYTES);
        rootcache_remember(s, index, path, nodes[1], depth);
    }
    return 0;
}

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

int sr_envelope_seal_batch(sr_buf *outs, const sr_key *key, const struct sr_envelope *envs,
                           size_t n)
{
    if (!outs || !key || !envs || n == 0 || n > SR_ENV_BATCH_MAX) {
        return SR_ERR_INVAL;
    }
    if (n == 1 && envs[0].payload_len < SR_ENV_PREHASH_MIN) {
        return sr_envelope_seal(&outs[0], key, &envs[0]); /* signed as it is */
    }
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
    /* bodies first, each after a 12-byte gap for the outer header */
    for (; rv == 0 && done < n; done++) {
        sr_buf *out = &outs[done];
        starts[done] = out->len;
        rv = check_env(&envs[done]);
        if (rv == 0 && envs[done].payload_len > SIZE_MAX - SR_ENV_BODY_OVERHEAD - 512) {
            rv = SR_ERR_TOOBIG;
        }
        /* + the leaf index and the path */
        rv = rv ? rv : reserve_for(out, body_bound(&envs[done]) + 16 + 32 * (size_t)depth);
        rv = rv ? rv : sr_buf_append(out, SR_ENV_SIGCTX2, SR_ENV_SIGCTX_LEN);
        rv = rv ? rv : pack_body(out, &envs[done]);
        if (rv == 0) {
            size_t body_len = out->len - starts[done] - SR_ENV_HDRLEN;
            if (body_len > UINT32_MAX) {
                rv = SR_ERR_TOOBIG;
            } else {
                rv = merkle_leaf(tree[done], out->data + starts[done] + SR_ENV_HDRLEN, body_len);
            }
        }
    }
    for (size_t i = n; rv == 0 && i < width; i++) {
        rv = merkle_empty(tree[i]);
    }
    /* level k starts at off[k]; its parent level follows it */
    size_t off = 0;
    for (size_t w = width; rv == 0 && w > 1; w /= 2) {
        for (size_t i = 0; rv == 0 && i < w / 2; i++) {
            rv = merkle_node(tree[off + w + i], tree[off + 2 * i], tree[off + 2 * i + 1]);
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
    root_msg(msg, depth, tree[off]);
    sr_key_sign(key, sig, msg, sizeof(msg));

    for (size_t i = 0; rv == 0 && i < n; i++) {
        sr_buf *out = &outs[i];
        size_t body_len = out->len - starts[i] - SR_ENV_HDRLEN;
        uint8_t *h = out->data + starts[i];
        const uint8_t head[SR_ENV_HDRLEN] = {0xdc,
                                             0x00,
                                             0x06,
                                             0xa3,
                                             'S',
                                             'R',
                                             '2',
                                             0xc6,
                                             (uint8_t)(body_len >> 24),
                                             (uint8_t)(body_len >> 16),
                                             (uint8_t)(body_len >> 8),
                                             (uint8_t)body_len};
        memcpy(h, head, SR_ENV_HDRLEN);
        /* signer, sig, index (uint16), path (bin8: depth <= 10 -> <= 320 bytes, bin16) */
        uint8_t tail[SR_ENV_TAILLEN + 3 + 3 + 10 * SR_MERKLE_HASHBYTES];
        size_t t = 0;
        tail[t++] = 0xc4;
        tail[t++] = SR_KEYIDBYTES;
        memcpy(tail + t, sr_key_id(key), SR_KEYIDBYTES);
        t += SR_KEYIDBYTES;
        tail[t++] = 0xc4;
        tail[t++] = SR_SIGBYTES;
        memcpy(tail + t, sig, SR_SIGBYTES);
        t += SR_SIGBYTES;
        tail[t++] = 0xcd;
        tail[t++] = (uint8_t)(i >> 8);
        tail[t++] = (uint8_t)i;
        size_t plen = (size_t)depth * SR_MERKLE_HASHBYTES;
        tail[t++] = 0xc5;
        tail[t++] = (uint8_t)(plen >> 8);
        tail[t++] = (uint8_t)plen;
        size_t idx = i, loff = 0;
        for (size_t w = width; w > 1; w /= 2) {
            memcpy(tail + t, tree[loff + (idx ^ 1)], SR_MERKLE_HASHBYTES);
            t += SR_MERKLE_HASHBYTES;
            idx /= 2;
            loff += w;
        }
        rv = sr_buf_append(out, tail, t);
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
 * A bounded msgpack reader over [p, end)
 * ======================================================================== */

enum mp_type {
    MP_NIL,
    MP_BOOL,
    MP_UINT,
    MP_INT,
    MP_FLOAT,
    MP_STR,
    MP_BIN,
    MP_ARRAY,
    MP_MAP,
    MP_EXT
};

static const char *const mp_type_names[] = {"nil",    "boolean", "integer", "integer", "float",
                                            "string", "bin",     "array",   "map",     "ext"};

enum {
    MP_OK = 0,
    MP_TRUNC = -1,   /* input ends inside the value (o->len: declared length, 0 if unknown) */
    MP_INVALID = -2, /* the never-used byte 0xc1 */
    MP_DEEP = -3,    /* nesting deeper than SR_MP_MAXDEPTH */
};

struct mp_obj {
    enum mp_type type;
    uint64_t u;         /* MP_UINT, MP_BOOL */
    int64_t i;          /* MP_INT (always negative) */
    double f;           /* MP_FLOAT */
    uint64_t len;       /* STR, BIN, EXT: bytes; ARRAY, MAP: entries */
    const uint8_t *ptr; /* STR, BIN, EXT: the bytes, inside the input */
};

static uint64_t load_be(const uint8_t *p, unsigned n)
{
    uint64_t v = 0;
    for (unsigned k = 0; k < n; k++) {
        v = (v << 8) | p[k];
    }
    return v;
}

/*
 * Reads one value's header (and, for str/bin/ext, locates its bytes) at *pp,
 * advancing *pp past what it read. Never reads at or beyond |end|. A declared
 * length is checked against what remains before anything relies on it; an
 * array or map needs at least one byte per element (two per map entry).
 */
static int mp_next(const uint8_t **pp, const uint8_t *end, struct mp_obj *o)
{
    const uint8_t *p = *pp;
    o->len = 0;
    if (p >= end) {
        return MP_TRUNC;
    }
    uint8_t c = *p++;
    size_t avail = (size_t)(end - p);
    unsigned fw = 0; /* width of the length or value field after c */
    bool has_ext_type = false;

    if (c <= 0x7f) {
        o->type = MP_UINT;
        o->u = c;
    } else if (c <= 0x8f) {
        o->type = MP_MAP;
        o->len = c & 0x0f;
    } else if (c <= 0x9f) {
        o->type = MP_ARRAY;
        o->len = c & 0x0f;
    } else if (c <= 0xbf) {
        o->type = MP_STR;
        o->len = c & 0x1f;
    } else if (c >= 0xe0) {
        o->type = MP_INT;
        o->i = (int8_t)c;
    } else {
        switch (c) {
        case 0xc0:
            o->type = MP_NIL;
            break;
        case 0xc1:
            return MP_INVALID;
        case 0xc2:
        case 0xc3:
            o->type = MP_BOOL;
            o->u = c & 1;
            break;
        case 0xc4:
        case 0xc5:
        case 0xc6:
            o->type = MP_BIN;
            fw = 1u << (c - 0xc4);
            break;
        case 0xc7:
        case 0xc8:
        case 0xc9:
            o->type = MP_EXT;
            fw = 1u << (c - 0xc7);
            has_ext_type = true;
            break;
        case 0xca:
        case 0xcb:
            o->type = MP_FLOAT;
            fw = c == 0xca ? 4 : 8;
            break;
        case 0xcc:
        case 0xcd:
        case 0xce:
        case 0xcf:
            o->type = MP_UINT;
            fw = 1u << (c - 0xcc);
            break;
        case 0xd0:
        case 0xd1:
        case 0xd2:
        case 0xd3:
            o->type = MP_INT;
            fw = 1u << (c - 0xd0);
            break;
        case 0xd4:
        case 0xd5:
        case 0xd6:
        case 0xd7:
        case 0xd8:
            o->type = MP_EXT;
            o->len = 1u << (c - 0xd4);
            has_ext_type = true;
            break;
        case 0xd9:
        case 0xda:
        case 0xdb:
            o->type = MP_STR;
            fw = 1u << (c - 0xd9);
            break;
        case 0xdc:
        case 0xdd:
            o->type = MP_ARRAY;
            fw = c == 0xdc ? 2 : 4;
            break;
        default: /* 0xde, 0xdf */
            o->type = MP_MAP;
            fw = c == 0xde ? 2 : 4;
            break;
        }
    }

    if (fw) {
        if (avail < fw) {
            return MP_TRUNC;
        }
        uint64_t v = load_be(p, fw);
        p += fw;
        avail -= fw;
        switch (o->type) {
        case MP_UINT:
            o->u = v;
            break;
        case MP_INT:
            /* sign-extend the fw-byte two's complement value */
            o->i = fw == 8
                       ? (int64_t)v
                       : (int64_t)(v ^ (1ull << (8 * fw - 1))) - (int64_t)(1ull << (8 * fw - 1));
            if (o->i >= 0) {
                o->type = MP_UINT;
                o->u = (uint64_t)o->i;
            }
            break;
        case MP_FLOAT:
            if (fw == 4) {
                uint32_t w = (uint32_t)v;
                float fl;
                memcpy(&fl, &w, sizeof(fl));
                o->f = fl;
            } else {
                memcpy(&o->f, &v, sizeof(o->f));
            }
            break;
        default:
            o->len = v;
            break;
        }
    }
    if (has_ext_type) {
        if (avail < 1) {
            return MP_TRUNC;
        }
        p++;
        avail--;
    }
    switch (o->type) {
    case MP_STR:
    case MP_BIN:
    case MP_EXT:
        if (o->len > avail) {
            return MP_TRUNC;
        }
        o->ptr = p;
        p += o->len;
        break;
    case MP_ARRAY:
        if (o->len > avail) {
            return MP_TRUNC;
        }
        break;
    case MP_MAP:
        if (o->len > avail / 2) {
            return MP_TRUNC;
        }
        break;
    default:
        break;
    }
    *pp = p;
    return MP_OK;
}

static int mp_skip(const uint8_t **pp, const uint8_t *end, unsigned depth);

/* Skips the elements of an array or map whose header was just read. */
static int mp_skip_children(const uint8_t **pp, const uint8_t *end, const struct mp_obj *o,
                            unsigned depth)
{
    if (o->type != MP_ARRAY && o->type != MP_MAP) {
        return MP_OK;
    }
    if (depth >= SR_MP_MAXDEPTH) {
        return MP_DEEP;
    }
    uint64_t n = o->type == MP_MAP ? 2 * o->len : o->len;
    for (uint64_t k = 0; k < n; k++) {
        int rv = mp_skip(pp, end, depth + 1);
        if (rv) {
            return rv;
        }
    }
    return MP_OK;
}

/* Skips one value of any type. Each value consumes at least one byte and the
 * depth is bounded, so this is linear in the input and shallow on the stack. */
static int mp_skip(const uint8_t **pp, const uint8_t *end, unsigned depth)
{
    struct mp_obj o;
    int rv = mp_next(pp, end, &o);
    return rv ? rv : mp_skip_children(pp, end, &o, depth);
}

/* ===========================================================================
 * Opening: the outer array
 * ======================================================================== */

/* Reads one element of the outer array, mapping reader errors to codes. */
static int outer_next(const uint8_t **pp, const uint8_t *begin, const uint8_t *end, size_t max,
                      struct mp_obj *o, const char *what, char *why, size_t whylen)
{
    size_t off = (size_t)(*pp - begin);
    int rv = mp_next(pp, end, o);
    if (rv == MP_OK) {
        return 0;
    }
    if (rv == MP_INVALID) {
        return fail(why, whylen, SR_ERR_ENV_FORMAT, "%s at offset %zu: invalid msgpack byte 0xc1",
                    what, off);
    }
    if (o->len > max) {
        return fail(why, whylen, SR_ERR_ENV_OVERSIZE,
                    "%s at offset %zu declares length %llu, over the limit of %zu", what, off,
                    (unsigned long long)o->len, max);
    }
    if (o->len) {
        return fail(why, whylen, SR_ERR_ENV_TRUNCATED,
                    "%s at offset %zu declares length %llu but only %zu bytes follow", what, off,
                    (unsigned long long)o->len, (size_t)(end - *pp));
    }
    return fail(why, whylen, SR_ERR_ENV_TRUNCATED, "input ends inside %s at offset %zu", what, off);
}

/* ===========================================================================
 * Opening: the body map (signature already verified)
 * ======================================================================== */

enum field {
    F_V,
    F_KIND,
    F_ID,
    F_IAT,
    F_EXP,
    F_SRC,
    F_DST,
    F_HANDLER,
    F_PAYLOAD,
    F_HINTS,
    F_STATUS,
    F_ERROR,
    F_T_RECV,
    F_T_DONE,
    F_COUNT
};

static const char *const field_names[F_COUNT] = {
    "v",       "kind",    "id",    "iat",    "exp",   "src",    "dst",
    "handler", "payload", "hints", "status", "error", "t_recv", "t_done",
};

#define REQUIRED_FIELDS                                                                            \
    ((1u << F_V) | (1u << F_KIND) | (1u << F_ID) | (1u << F_IAT) | (1u << F_EXP) | (1u << F_SRC) | \
     (1u << F_DST))

struct body_dec {
    struct sr_envelope *env;
    const uint8_t *p, *end;
    unsigned seen;
    int64_t v;
    bool v_ok; /* v present and an integer */
    int err;   /* first field-level error; decoding continues to find v */
    char *why;
    size_t whylen;
    char kind_text[32];
};

static void field_err(struct body_dec *d, const char *fmt, ...) SR_PRINTF(2, 3);

static void field_err(struct body_dec *d, const char *fmt, ...)
{
    if (d->err) {
        return;
    }
    d->err = SR_ERR_ENV_BODY;
    if (d->why && d->whylen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(d->why, d->whylen, fmt, ap);
        va_end(ap);
    }
}

static int struct_err(struct body_dec *d, int rv, const char *where)
{
    const char *what = rv == MP_DEEP      ? "nested deeper than 32 levels"
                       : rv == MP_INVALID ? "holds the invalid msgpack byte 0xc1"
                                          : "is truncated";
    return fail(d->why, d->whylen, SR_ERR_ENV_BODY, "body: %s %s", where, what);
}

static bool get_i64(const struct mp_obj *o, int64_t *out)
{
    if (o->type == MP_INT) {
        *out = o->i;
        return true;
    }
    if (o->type == MP_UINT && o->u <= INT64_MAX) {
        *out = (int64_t)o->u;
        return true;
    }
    return false;
}

static void get_int_field(struct body_dec *d, const struct mp_obj *o, const char *name,
                          int64_t *out)
{
    if (!get_i64(o, out)) {
        field_err(d, "body: '%s' must be a 64-bit signed integer, got a %s", name,
                  o->type == MP_UINT ? "too large integer" : mp_type_names[o->type]);
    }
}

static void get_str_field(struct body_dec *d, const struct mp_obj *o, const char *name, char *dst,
                          size_t cap)
{
    if (o->type != MP_STR) {
        field_err(d, "body: '%s' must be a string, got a %s", name, mp_type_names[o->type]);
        return;
    }
    if (o->len >= cap) {
        field_err(d, "body: '%s' is %llu bytes, at most %zu allowed", name,
                  (unsigned long long)o->len, cap - 1);
        return;
    }
    if (memchr(o->ptr, '\0', o->len)) {
        field_err(d, "body: '%s' contains a NUL byte", name);
        return;
    }
    memcpy(dst, o->ptr, o->len);
    dst[o->len] = '\0';
}

static int decode_hints(struct body_dec *d, uint64_t n)
{
    struct sr_envelope *env = d->env;
    for (uint64_t k = 0; k < n; k++) {
        struct mp_obj key, val;
        int rv = mp_next(&d->p, d->end, &key);
        if (rv == 0) {
            rv = mp_skip_children(&d->p, d->end, &key, 2);
        }
        if (rv == 0) {
            rv = mp_next(&d->p, d->end, &val);
        }
        if (rv) {
            return struct_err(d, rv, "'hints'");
        }
        bool is_work = key.type == MP_STR && key.len == 4 && !memcmp(key.ptr, "work", 4);
        bool is_rb = key.type == MP_STR && key.len == 12 && !memcmp(key.ptr, "result_bytes", 12);
        if (is_work) {
            double w = val.type == MP_FLOAT  ? val.f
                       : val.type == MP_UINT ? (double)val.u
                       : val.type == MP_INT  ? (double)val.i
                                             : NAN;
            if (env->flags & SR_ENV_HAS_WORK) {
                field_err(d, "body: duplicate key 'hints.work'");
            } else if (val.type != MP_FLOAT && val.type != MP_UINT && val.type != MP_INT) {
                field_err(d, "body: 'hints.work' must be a number, got a %s",
                          mp_type_names[val.type]);
            } else if (!isfinite(w) || w < 0) {
                field_err(d, "body: 'hints.work' must be a finite number >= 0");
            } else {
                env->work = w;
                env->flags |= SR_ENV_HAS_WORK;
            }
        } else if (is_rb) {
            int64_t v = 0;
            if (env->flags & SR_ENV_HAS_RESULT_BYTES) {
                field_err(d, "body: duplicate key 'hints.result_bytes'");
            } else if (!get_i64(&val, &v) || v < 0) {
                field_err(d, "body: 'hints.result_bytes' must be an integer >= 0");
            } else {
                env->result_bytes = v;
                env->flags |= SR_ENV_HAS_RESULT_BYTES;
            }
        }
        rv = mp_skip_children(&d->p, d->end, &val, 2);
        if (rv) {
            return struct_err(d, rv, "'hints'");
        }
    }
    return 0;
}

static int lookup_field(const struct mp_obj *key)
{
    if (key->type != MP_STR) {
        return -1;
    }
    for (int k = 0; k < F_COUNT; k++) {
        size_t n = strlen(field_names[k]);
        if (key->len == n && memcmp(key->ptr, field_names[k], n) == 0) {
            return k;
        }
    }
    return -1;
}

/* Decodes one known field from its value |o| (header already read). */
static int decode_field(struct body_dec *d, int f, const struct mp_obj *o)
{
    struct sr_envelope *env = d->env;
    const char *name = field_names[f];
    switch (f) {
    case F_V:
        get_int_field(d, o, name, &d->v);
        d->v_ok = get_i64(o, &d->v);
        break;
    case F_KIND:
        if (o->type != MP_STR) {
            field_err(d, "body: 'kind' must be a string, got a %s", mp_type_names[o->type]);
            break;
        }
        for (int k = SR_KIND_WORKLOAD; k <= SR_KIND_SCHEDULE; k++) {
            if (o->len == strlen(kind_names[k]) && !memcmp(o->ptr, kind_names[k], o->len)) {
                env->kind = (sr_kind)k;
            }
        }
        if (!env->kind) {
            printable(d->kind_text, sizeof(d->kind_text), o->ptr, o->len);
        }
        break;
    case F_ID:
        if (o->type != MP_BIN || o->len != SR_ENV_IDBYTES) {
            field_err(d, "body: 'id' must be bin(16), got a %s of length %llu",
                      mp_type_names[o->type], (unsigned long long)o->len);
        } else {
            memcpy(env->id, o->ptr, SR_ENV_IDBYTES);
        }
        break;
    case F_IAT:
        get_int_field(d, o, name, &env->iat);
        break;
    case F_EXP:
        get_int_field(d, o, name, &env->exp);
        break;
    case F_SRC:
        get_str_field(d, o, name, env->src, sizeof(env->src));
        break;
    case F_DST:
        get_str_field(d, o, name, env->dst, sizeof(env->dst));
        break;
    case F_HANDLER:
        get_str_field(d, o, name, env->handler, sizeof(env->handler));
        break;
    case F_PAYLOAD:
        if (o->type != MP_BIN) {
            field_err(d, "body: 'payload' must be bin, got a %s", mp_type_names[o->type]);
        } else {
            env->payload = o->ptr;
            env->payload_len = (size_t)o->len;
        }
        break;
    case F_HINTS:
        if (o->type != MP_MAP) {
            field_err(d, "body: 'hints' must be a map, got a %s", mp_type_names[o->type]);
            break;
        }
        return decode_hints(d, o->len);
    case F_STATUS:
        if (get_i64(o, &env->status)) {
            env->flags |= SR_ENV_HAS_STATUS;
        } else {
            field_err(d, "body: 'status' must be a 64-bit signed integer");
        }
        break;
    case F_ERROR:
        get_str_field(d, o, name, env->error, sizeof(env->error));
        if (o->type == MP_STR && !d->err) {
            env->flags |= SR_ENV_HAS_ERROR;
        }
        break;
    case F_T_RECV:
        if (get_i64(o, &env->t_recv)) {
            env->flags |= SR_ENV_HAS_T_RECV;
        } else {
            field_err(d, "body: 't_recv' must be a 64-bit signed integer");
        }
        break;
    default: /* F_T_DONE */
        if (get_i64(o, &env->t_done)) {
            env->flags |= SR_ENV_HAS_T_DONE;
        } else {
            field_err(d, "body: 't_done' must be a 64-bit signed integer");
        }
        break;
    }
    /* a wrongly typed container value still has to be stepped over */
    if (f != F_HINTS || o->type != MP_MAP) {
        int rv = mp_skip_children(&d->p, d->end, o, 1);
        if (rv) {
            return struct_err(d, rv, "a value");
        }
    }
    return 0;
}

static int decode_body(struct body_dec *d)
{
    struct mp_obj top;
    int rv = mp_next(&d->p, d->end, &top);
    if (rv) {
        return struct_err(d, rv, "map header");
    }
    if (top.type != MP_MAP) {
        return fail(d->why, d->whylen, SR_ERR_ENV_BODY, "body is a %s, expected a map",
                    mp_type_names[top.type]);
    }
    for (uint64_t k = 0; k < top.len; k++) {
        struct mp_obj key, val;
        rv = mp_next(&d->p, d->end, &key);
        if (rv == 0) {
            rv = mp_skip_children(&d->p, d->end, &key, 1); /* non-string keys are unknown */
        }
        if (rv) {
            return struct_err(d, rv, "a key");
        }
        int f = lookup_field(&key);
        rv = mp_next(&d->p, d->end, &val);
        if (rv) {
            return struct_err(d, rv, f >= 0 ? field_names[f] : "a value");
        }
        if (f < 0) {
            rv = mp_skip_children(&d->p, d->end, &val, 1);
            if (rv) {
                return struct_err(d, rv, "an unknown value");
            }
            continue;
        }
        if (d->seen & (1u << f)) {
            field_err(d, "body: duplicate key '%s'", field_names[f]);
        }
        d->seen |= 1u << f;
        rv = decode_field(d, f, &val);
        if (rv) {
            return rv;
        }
    }
    if (d->p != d->end) {
        field_err(d, "body: %zu bytes follow the body map", (size_t)(d->end - d->p));
    }

    /* A different version may mean different types: say so before anything else. */
    if (d->v_ok && d->v != 1) {
        return fail(d->why, d->whylen, SR_ERR_ENV_VERSION, "body version v=%lld, expected 1",
                    (long long)d->v);
    }
    if (d->err) {
        return d->err;
    }
    unsigned missing = REQUIRED_FIELDS & ~d->seen;
    if (missing) {
        int f = __builtin_ctz(missing);
        return fail(d->why, d->whylen, SR_ERR_ENV_BODY, "body: missing required field '%s'",
                    field_names[f]);
    }
    if (!d->env->kind) {
        return fail(d->why, d->whylen, SR_ERR_ENV_KIND, "unknown kind '%s'", d->kind_text);
    }
    return 0;
}

/* ===========================================================================
 * sr_envelope_open
 * ======================================================================== */

int sr_envelope_open(struct sr_envelope *env, const uint8_t *data, size_t len,
                     const struct sr_open_opts *opts, char *why, size_t whylen)
{
    if (why && whylen) {
        why[0] = '\0';
    }
    if (!env || !opts || !opts->trust || (!data && len)) {
        return fail(why, whylen, SR_ERR_INVAL, "invalid arguments");
    }
    size_t max = opts->max_len ? opts->max_len : SR_ENV_DEFAULT_MAX;
    if (len > max) {
        return fail(why, whylen, SR_ERR_ENV_OVERSIZE,
                    "envelope is %zu bytes, over the limit of %zu", len, max);
    }

    /* ---- outer array: structure only ---- */
    if (len == 0) {
        return fail(why, whylen, SR_ERR_ENV_TRUNCATED, "empty input");
    }
    const uint8_t *p = data, *end = data + len;
    struct mp_obj arr, magic, body, signer, sig;
    int rv;
    if ((rv = outer_next(&p, data, end, max, &arr, "the outer array", why, whylen))) {
        return rv;
    }
    if (arr.type != MP_ARRAY) {
        return fail(why, whylen, SR_ERR_ENV_FORMAT,
                    "outer value is a %s, expected a 4-element array", mp_type_names[arr.type]);
    }
    if (arr.len != 4 && arr.len != 6) {
        return fail(why, whylen, SR_ERR_ENV_FORMAT,
                    "outer array has %llu elements, expected 4 (SR1) or 6 (SR2)",
                    (unsigned long long)arr.len);
    }
    if ((rv = outer_next(&p, data, end, max, &magic, "the magic", why, whylen))) {
        return rv;
    }
    if (magic.type != MP_STR) {
        return fail(why, whylen, SR_ERR_ENV_FORMAT, "element 1 (magic) is a %s, expected \"SR1\"",
                    mp_type_names[magic.type]);
    }
    int version = magic.len != 3                     ? 0
                  : memcmp(magic.ptr, "SR1", 3) == 0 ? 1
                  : memcmp(magic.ptr, "SR2", 3) == 0 ? 2
                                                     : 0;
    if (version != (arr.len == 4 ? 1 : 2)) {
        char text[32];
        printable(text, sizeof(text), magic.ptr, (size_t)magic.len);
        return fail(why, whylen, SR_ERR_ENV_VERSION,
                    "magic is \"%s\", expected \"%s\" in a %llu-element envelope", text,
                    arr.len == 4 ? "SR1" : "SR2", (unsigned long long)arr.len);
    }
    if ((rv = outer_next(&p, data, end, max, &body, "the body", why, whylen))) {
        return rv;
    }
    if (body.type != MP_BIN) {
        return fail(why, whylen, SR_ERR_ENV_FORMAT, "element 2 (body) is a %s, expected bin",
                    mp_type_names[body.type]);
    }
    if ((rv = outer_next(&p, data, end, max, &signer, "the signer", why, whylen))) {
        return rv;
    }
    if (signer.type != MP_BIN || signer.len != SR_KEYIDBYTES) {
        return fail(why, whylen, SR_ERR_ENV_FORMAT,
                    "element 3 (signer) is a %s of length %llu, expected bin(8)",
                    mp_type_names[signer.type], (unsigned long long)signer.len);
    }
    if ((rv = outer_next(&p, data, end, max, &sig, "the signature", why, whylen))) {
        return rv;
    }
    if (sig.type != MP_BIN || sig.len != SR_SIGBYTES) {
        return fail(why, whylen, SR_ERR_ENV_FORMAT,
                    "element 4 (signature) is a %s of length %llu, expected bin(64)",
                    mp_type_names[sig.type], (unsigned long long)sig.len);
    }
    struct mp_obj index, path;
    unsigned depth = 0;
    if (version == 2) {
        if ((rv = outer_next(&p, data, end, max, &index, "the leaf index", why, whylen))) {
            return rv;
        }
        if ((rv = outer_next(&p, data, end, max, &path, "the path", why, whylen))) {
            return rv;
        }
        if (path.type != MP_BIN || path.len % SR_MERKLE_HASHBYTES != 0 ||
            path.len / SR_MERKLE_HASHBYTES > SR_ENV_PATH_MAX) {
            return fail(why, whylen, SR_ERR_ENV_FORMAT,
                        "element 6 (path) is a %s of length %llu, expected bin of at most %d "
                        "32-byte hashes",
                        mp_type_names[path.type], (unsigned long long)path.len, SR_ENV_PATH_MAX);
        }
        depth = (unsigned)(path.len / SR_MERKLE_HASHBYTES);
        if (index.type != MP_UINT || index.u >= ((uint64_t)1 << depth)) {
            return fail(why, whylen, SR_ERR_ENV_FORMAT,
                        "element 5 (leaf index) must be an unsigned integer below 2^%u", depth);
        }
    }
    if (p != end) {
        return fail(why, whylen, SR_ERR_ENV_TRAILING, "%zu bytes follow the envelope",
                    (size_t)(end - p));
    }

    /* ---- trust, then signature ---- */
    const char *name = NULL;
    const uint8_t *pk = sr_keyring_find(opts->trust, signer.ptr, &name);
    char idhex[2 * SR_KEYIDBYTES + 1];
    sr_hex(idhex, signer.ptr, SR_KEYIDBYTES);
    if (!pk) {
        return fail(why, whylen, SR_ERR_ENV_UNTRUSTED, "signer %s is not a trusted key", idhex);
    }
    if (version == 2) {
        rv = merkle_verify(pk, opts->roots, body.ptr, (size_t)body.len, sig.ptr, index.u, path.ptr,
                           depth);
        if (rv) {
            return fail(why, whylen, SR_ERR_ENV_BADSIG,
                        "batch signature by %s (%s) does not verify over this body's path",
                        name && *name ? name : "trusted key", idhex);
        }
        goto verified;
    }
    uint8_t stackbuf[SR_ENV_VERIFY_STACK];
    size_t mlen = SR_ENV_SIGCTX_LEN + (size_t)body.len;
    uint8_t *msg = mlen <= sizeof(stackbuf) ? stackbuf : malloc(mlen);
    if (!msg) {
        return fail(why, whylen, SR_ERR_NOMEM, "no memory to verify a %zu-byte body",
                    (size_t)body.len);
    }
    memcpy(msg, SR_ENV_SIGCTX, SR_ENV_SIGCTX_LEN);
    if (body.len) {
        memcpy(msg + SR_ENV_SIGCTX_LEN, body.ptr, (size_t)body.len);
    }
    rv = sr_verify(pk, sig.ptr, msg, mlen);
    if (msg != stackbuf) {
        free(msg);
    }
    if (rv) {
        return fail(why, whylen, SR_ERR_ENV_BADSIG, "signature by %s (%s) does not verify",
                    name && *name ? name : "trusted key", idhex);
    }

    /* ---- body: signed, so now worth decoding ---- */
verified:
    memset(env, 0, sizeof(*env));
    struct body_dec d = {
        .env = env, .p = body.ptr, .end = body.ptr + body.len, .why = why, .whylen = whylen};
    rv = decode_body(&d);
    if (rv) {
        return rv;
    }
    memcpy(env->signer, signer.ptr, SR_KEYIDBYTES);
    env->signer_name = name;
    env->version = version;
    env->depth = depth;

    /* ---- is it for us, and now? ---- */
    if (opts->kinds && !(opts->kinds & (1u << env->kind))) {
        return fail(why, whylen, SR_ERR_ENV_KIND, "kind '%s' is not accepted here",
                    sr_kind_name(env->kind));
    }
    if (opts->self_id && strcmp(env->dst, opts->self_id) != 0) {
        char dst[40];
        printable(dst, sizeof(dst), (const uint8_t *)env->dst, strlen(env->dst));
        return fail(why, whylen, SR_ERR_ENV_MISADDRESSED, "addressed to '%s', not to '%s'", dst,
                    opts->self_id);
    }
    if (env->exp <= opts->now_ms) {
        char e[SR_RFC3339_LEN], n[SR_RFC3339_LEN];
        if (sr_time_format(e, env->exp) < 0) {
            snprintf(e, sizeof(e), "%lld ms", (long long)env->exp);
        }
        if (sr_time_format(n, opts->now_ms) < 0) {
            snprintf(n, sizeof(n), "%lld ms", (long long)opts->now_ms);
        }
        return fail(why, whylen, SR_ERR_ENV_EXPIRED, "expired at %s (now %s)", e, n);
    }
    return 0;
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
    struct pack_ctx ctx = {.b = b};
    msgpack_packer pk;
    msgpack_packer_init(&pk, &ctx, pack_write);
    msgpack_pack_bin_with_body(&pk, env, len);
    if (ctx.err) {
        b->len = before;
    }
    return ctx.err;
}

int sr_batch_split(const uint8_t *msg, size_t len, struct sr_batch_env *envs, size_t max, size_t *n,
                   char *why, size_t whylen)
{
    const uint8_t *p = msg, *end = msg + len;
    size_t k = 0;
    while (p < end) {
        size_t off = (size_t)(p - msg);
        struct mp_obj o;
        int rv = mp_next(&p, end, &o);
        if (rv != MP_OK) {
            return fail(why, whylen, SR_ERR_PARSE,
                        "batch: the value at offset %zu is cut short or not msgpack", off);
        }
        if (o.type != MP_BIN) {
            return fail(why, whylen, SR_ERR_PARSE,
                        "batch: the value at offset %zu is not a bin (one envelope each)", off);
        }
        if (k == max) {
            return fail(why, whylen, SR_ERR_TOOBIG, "batch: more than %zu envelopes", max);
        }
        envs[k].ptr = o.ptr;
        envs[k].len = (size_t)o.len;
        k++;
    }
    if (k == 0) {
        return fail(why, whylen, SR_ERR_PARSE, "batch: no envelope");
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
        return fail(why, whylen, SR_ERR_PARSE,
                    "batch answer: an item is not a 4-element array (it starts with 0x%02x)", p[0]);
    }
    struct mp_obj o[5];
    int rv = MP_OK;
    for (int k = 0; k < 5 && rv == MP_OK; k++) {
        rv = mp_next(&q, end, &o[k]);
    }
    if (rv == MP_TRUNC) {
        *used = 0; /* cut short: complete once more bytes come */
        return 0;
    }
    if (rv != MP_OK || o[0].type != MP_ARRAY || o[0].len != 4 || o[1].type != MP_UINT ||
        o[1].u > UINT32_MAX || o[2].type != MP_UINT || o[2].u < 100 || o[2].u > 999 ||
        o[3].type != MP_STR || o[3].len > 31 || o[4].type != MP_BIN) {
        return fail(why, whylen, SR_ERR_PARSE,
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
