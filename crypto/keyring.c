/*
 * The ring of trusted public keys: a short array searched by 8-byte key id.
 *
 * A ring holds a handful of keys (peer stations, targets, operators), so a
 * linear scan over a packed array of ids beats anything cleverer. Entries are
 * allocated one by one so the pointers sr_keyring_find() hands out stay valid
 * while the array of entry pointers grows.
 */
#include "crypto/crypto.h"

#include <stdlib.h>
#include <string.h>

struct ring_entry {
    uint8_t pk[SR_PUBLICKEYBYTES];
    char *name;
};

struct sr_keyring {
    uint64_t *ids; /* ids[i] is entries[i]'s key id, for a tight search loop */
    struct ring_entry **entries;
    size_t count, cap;
};

static uint64_t id_word(const uint8_t id[SR_KEYIDBYTES])
{
    uint64_t w;
    memcpy(&w, id, sizeof(w));
    return w;
}

int sr_keyring_new(sr_keyring **out)
{
    sr_keyring *r = calloc(1, sizeof(*r));
    if (!r) {
        return SR_ERR_NOMEM;
    }
    *out = r;
    return 0;
}

void sr_keyring_free(sr_keyring *ring)
{
    if (!ring) {
        return;
    }
    for (size_t i = 0; i < ring->count; i++) {
        free(ring->entries[i]->name);
        free(ring->entries[i]);
    }
    free(ring->entries);
    free(ring->ids);
    free(ring);
}

int sr_keyring_add(sr_keyring *ring, const uint8_t pk[SR_PUBLICKEYBYTES], const char *name)
{
    if (!ring || !pk) {
        return SR_ERR_INVAL;
    }
    uint8_t id[SR_KEYIDBYTES];
    sr_pubkey_id(id, pk);
    if (sr_keyring_find(ring, id, NULL)) {
        /* the same key, or (astronomically unlikely) another with its id */
        return SR_ERR_EXISTS;
    }
    if (ring->count == ring->cap) {
        size_t ncap = ring->cap ? ring->cap * 2 : 4;
        uint64_t *ids = realloc(ring->ids, ncap * sizeof(*ids));
        if (!ids) {
            return SR_ERR_NOMEM;
        }
        ring->ids = ids;
        struct ring_entry **ents = realloc(ring->entries, ncap * sizeof(*ents));
        if (!ents) {
            return SR_ERR_NOMEM;
        }
        ring->entries = ents;
        ring->cap = ncap;
    }
    struct ring_entry *e = calloc(1, sizeof(*e));
    if (!e) {
        return SR_ERR_NOMEM;
    }
    const char *nm = name ? name : "";
    size_t nlen = strlen(nm);
    e->name = malloc(nlen + 1);
    if (!e->name) {
        free(e);
        return SR_ERR_NOMEM;
    }
    memcpy(e->name, nm, nlen + 1);
    memcpy(e->pk, pk, SR_PUBLICKEYBYTES);
    ring->ids[ring->count] = id_word(id);
    ring->entries[ring->count] = e;
    ring->count++;
    return 0;
}

const uint8_t *sr_keyring_find(const sr_keyring *ring, const uint8_t id[SR_KEYIDBYTES],
                               const char **name)
{
    if (!ring || !id) {
        return NULL;
    }
    uint64_t w = id_word(id);
    for (size_t i = 0; i < ring->count; i++) {
        if (ring->ids[i] == w) {
            if (name) {
                *name = ring->entries[i]->name;
            }
            return ring->entries[i]->pk;
        }
    }
    return NULL;
}

size_t sr_keyring_count(const sr_keyring *ring)
{
    return ring ? ring->count : 0;
}
