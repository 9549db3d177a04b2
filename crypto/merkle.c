/*
 * SR2's Merkle trees (crypto.h, "batched envelopes"): the hashes, the signed
 * root message, and the opener's side: the climb from a body to the root and
 * the cache of verified roots. Sealing a batch is batch.c's.
 *
 * Leaves, inner nodes and padding hash under distinct one-byte prefixes, and
 * the root is signed under "skyroute/v2\0" with the tree depth, so a leaf can
 * never pass for a node, a shorter tree for a longer one, or a root signature
 * for an SR1 body signature (whose prefix is "skyroute/v1\0"). The batch is
 * padded to a power of two with the empty hash, so every path has the same
 * length and the index's bits alone say left or right at each level.
 */
/* the one-shot SHA256_* functions, below */
#define OPENSSL_SUPPRESS_DEPRECATED

#include "crypto/crypto_int.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/sha.h>

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

int sr_merkle_leaf(uint8_t out[SR_MERKLE_HASHBYTES], const uint8_t *body, size_t len)
{
    return sha256_tagged(out, 0x00, body, len, NULL, 0);
}

int sr_merkle_node(uint8_t out[SR_MERKLE_HASHBYTES], const uint8_t l[SR_MERKLE_HASHBYTES],
                   const uint8_t r[SR_MERKLE_HASHBYTES])
{
    return sha256_tagged(out, 0x01, l, SR_MERKLE_HASHBYTES, r, SR_MERKLE_HASHBYTES);
}

int sr_merkle_empty(uint8_t out[SR_MERKLE_HASHBYTES])
{
    return sha256_tagged(out, 0x02, NULL, 0, NULL, 0);
}

/* The signed message: prefix || depth || root. */
void sr_merkle_root_msg(uint8_t msg[SR_ROOTMSG_LEN], unsigned depth,
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
 * With |cache|, the climb may stop early: once it reaches the level where
 * this leaf's ancestors and those of the last envelope opened under the same
 * signature are the same nodes, an equal node there and an equal path from
 * there up mean the rest of the climb would repeat the last one's, to the
 * root its signature verified over. The verdict is the one the full climb
 * gives; only the hashes are saved.
 */
int sr_merkle_verify(const uint8_t *pk, sr_rootcache *cache, const uint8_t *body, size_t len,
                     const uint8_t *sig, uint64_t index, const uint8_t *path, unsigned depth)
{
    uint8_t nodes[SR_ENV_PATH_MAX + 1][SR_MERKLE_HASHBYTES];
    if (depth == 0) {
        cache = NULL; /* a tree of one leaf: no other envelope shares its root */
    }
    struct rootcache_slot *s = cache ? rootcache_find(cache, pk, sig, NULL, depth) : NULL;
    int rv = sr_merkle_leaf(nodes[0], body, len);
    for (unsigned k = 0; rv == 0 && k < depth; k++) {
        const uint8_t *sib = path + (size_t)k * SR_MERKLE_HASHBYTES;
        rv = (index >> k) & 1 ? sr_merkle_node(nodes[k + 1], sib, nodes[k])
                              : sr_merkle_node(nodes[k + 1], nodes[k], sib);
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
    sr_merkle_root_msg(msg, depth, nodes[depth]);
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
