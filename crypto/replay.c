/*
 * Replay guard: a bounded map from envelope id to (exp, stored result).
 *
 * Layout, all sized once at sr_replay_new():
 *   - ents[cap]: the records; slots [0, used) have been handed out, and the
 *     freed ones among them are chained through |next_free|. Slots past
 *     |used| are never touched, so a large guard costs little until it fills
 *     (calloc'd pages stay unmapped);
 *   - table[2^k >= 2 cap]: open addressing with linear probing, holding entry
 *     index + 1 (0 = empty). Load stays <= 1/2, and deletion shifts the probe
 *     run back instead of leaving tombstones, so lookups stay short forever;
 *   - heap[cap]: a binary min-heap of entry indices ordered by exp, so expiry
 *     pops exactly the dead records (O(log n) each) and never scans.
 * Ids come from senders, so slots are chosen with SipHash-2-4
 * (crypto_shorthash) under a random per-guard key: nobody can aim ids at one
 * probe run.
 *
 * Stored results are copies on the heap, capped in total by
 * sr_replay_set_result_limit(). When a new result would pass the cap, the
 * oldest stored results are dropped first (a FIFO of (entry, sequence)
 * pairs; a pair whose entry was removed or stored again since is stale and
 * skipped). A dropped result's id stays recorded until it expires, so its
 * envelope is still refused as a replay: the handler never runs twice, only
 * the first answer is no longer at hand (sr_replay_dropped()).
 */
#include "crypto/crypto.h"

#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#define SR_REPLAY_MAXCAP ((size_t)1 << 30)
#define SR_REPLAY_DEFAULT_RESULT_LIMIT ((size_t)256 << 20)

struct replay_ent {
    uint8_t id[SR_ENV_IDBYTES];
    int64_t exp;
    uint64_t hash;
    uint8_t *result; /* NULL while pending (or for an empty stored result) */
    size_t result_len;
    void (*release)(void *); /* how the result is let go: NULL = free(result) */
    void *owner;             /* release's argument */
    uint32_t heap_pos;
    uint32_t next_free;
    uint32_t seq; /* of its place in the result FIFO */
    bool stored;
    bool dropped; /* its result was dropped to make room */
};

static void ent_release(struct replay_ent *e);

struct fifo_ent {
    uint32_t ei, seq;
};

struct sr_replay {
    size_t cap, count;
    struct replay_ent *ents;
    uint32_t free_head; /* freed entry index + 1; 0 = none */
    size_t used;        /* entries ever handed out */
    uint32_t *table;
    size_t mask;
    uint32_t *heap;
    size_t result_bytes, result_limit;
    struct fifo_ent *fifo; /* stored results, oldest first: a ring of 2 cap */
    size_t fifo_cap, fifo_head, fifo_len;
    uint32_t next_seq;
    uint64_t dropped_total;
    uint8_t hkey[crypto_shorthash_KEYBYTES];
};

static uint64_t id_hash(const sr_replay *g, const uint8_t id[SR_ENV_IDBYTES])
{
    uint8_t h[crypto_shorthash_BYTES];
    uint64_t v;
    crypto_shorthash(h, id, SR_ENV_IDBYTES, g->hkey);
    memcpy(&v, h, sizeof(v));
    return v;
}

int sr_replay_new(sr_replay **out, size_t capacity)
{
    if (!out || capacity == 0 || capacity > SR_REPLAY_MAXCAP) {
        return SR_ERR_INVAL;
    }
    if (sodium_init() < 0) {
        return SR_ERR_UNAVAILABLE;
    }
    size_t tsize = 4;
    while (tsize < 2 * capacity) {
        tsize *= 2;
    }
    sr_replay *g = calloc(1, sizeof(*g));
    if (!g) {
        return SR_ERR_NOMEM;
    }
    g->ents = calloc(capacity, sizeof(*g->ents));
    g->table = calloc(tsize, sizeof(*g->table));
    g->heap = calloc(capacity, sizeof(*g->heap));
    g->fifo_cap = 2 * capacity;
    g->fifo = calloc(g->fifo_cap, sizeof(*g->fifo));
    if (!g->ents || !g->table || !g->heap || !g->fifo) {
        sr_replay_free(g);
        return SR_ERR_NOMEM;
    }
    g->cap = capacity;
    g->mask = tsize - 1;
    g->result_limit = SR_REPLAY_DEFAULT_RESULT_LIMIT;
    randombytes_buf(g->hkey, sizeof(g->hkey));
    *out = g;
    return 0;
}

void sr_replay_free(sr_replay *g)
{
    if (!g) {
        return;
    }
    if (g->ents) {
        for (size_t i = 0; i < g->used; i++) {
            ent_release(&g->ents[i]);
        }
    }
    free(g->ents);
    free(g->table);
    free(g->heap);
    free(g->fifo);
    free(g);
}

void sr_replay_set_result_limit(sr_replay *g, size_t max_bytes)
{
    g->result_limit = max_bytes;
}

size_t sr_replay_count(const sr_replay *g)
{
    return g ? g->count : 0;
}

uint64_t sr_replay_results_dropped(const sr_replay *g)
{
    return g ? g->dropped_total : 0;
}

/* Lets go of an entry's stored result (its bytes are counted by the caller). */
static void ent_release(struct replay_ent *e)
{
    if (e->release) {
        e->release(e->owner);
    } else {
        free(e->result);
    }
    e->result = NULL;
    e->release = NULL;
    e->owner = NULL;
}

/* ---- min-heap on exp -------------------------------------------------------- */

static void heap_set(sr_replay *g, size_t pos, uint32_t ei)
{
    g->heap[pos] = ei;
    g->ents[ei].heap_pos = (uint32_t)pos;
}

static void heap_up(sr_replay *g, size_t pos)
{
    uint32_t ei = g->heap[pos];
    int64_t exp = g->ents[ei].exp;
    while (pos > 0) {
        size_t parent = (pos - 1) / 2;
        if (g->ents[g->heap[parent]].exp <= exp) {
            break;
        }
        heap_set(g, pos, g->heap[parent]);
        pos = parent;
    }
    heap_set(g, pos, ei);
}

static void heap_down(sr_replay *g, size_t pos)
{
    uint32_t ei = g->heap[pos];
    int64_t exp = g->ents[ei].exp;
    for (;;) {
        size_t c = 2 * pos + 1;
        if (c >= g->count) {
            break;
        }
        if (c + 1 < g->count && g->ents[g->heap[c + 1]].exp < g->ents[g->heap[c]].exp) {
            c++;
        }
        if (g->ents[g->heap[c]].exp >= exp) {
            break;
        }
        heap_set(g, pos, g->heap[c]);
        pos = c;
    }
    heap_set(g, pos, ei);
}

/* ---- hash table ------------------------------------------------------------- */

/* Returns the table slot holding |id|, or the empty slot where it would go. */
static size_t table_probe(const sr_replay *g, const uint8_t id[SR_ENV_IDBYTES], uint64_t h)
{
    size_t i = (size_t)h & g->mask;
    for (;;) {
        uint32_t t = g->table[i];
        if (t == 0) {
            return i;
        }
        const struct replay_ent *e = &g->ents[t - 1];
        if (e->hash == h && memcmp(e->id, id, SR_ENV_IDBYTES) == 0) {
            return i;
        }
        i = (i + 1) & g->mask;
    }
}

/* Empties slot |i| and shifts the rest of its probe run back (no tombstones). */
static void table_delete(sr_replay *g, size_t i)
{
    size_t j = i;
    for (;;) {
        j = (j + 1) & g->mask;
        uint32_t t = g->table[j];
        if (t == 0) {
            break;
        }
        size_t home = (size_t)g->ents[t - 1].hash & g->mask;
        /* The entry at j may stay iff its home lies cyclically in (i, j]. */
        bool stays = i <= j ? (home > i && home <= j) : (home > i || home <= j);
        if (!stays) {
            g->table[i] = t;
            i = j;
        }
    }
    g->table[i] = 0;
}

/* Removes the record at table slot |slot|. */
static void remove_at(sr_replay *g, size_t slot)
{
    uint32_t ei = g->table[slot] - 1;
    struct replay_ent *e = &g->ents[ei];
    table_delete(g, slot);

    size_t pos = e->heap_pos;
    g->count--;
    if (pos != g->count) {
        uint32_t moved = g->heap[g->count];
        heap_set(g, pos, moved);
        heap_down(g, pos);
        heap_up(g, g->ents[moved].heap_pos);
    }

    g->result_bytes -= e->result_len;
    ent_release(e);
    memset(e, 0, sizeof(*e));
    e->next_free = g->free_head;
    g->free_head = ei + 1;
}

static void expire(sr_replay *g, int64_t now_ms)
{
    while (g->count > 0) {
        struct replay_ent *e = &g->ents[g->heap[0]];
        if (e->exp > now_ms) {
            break;
        }
        remove_at(g, table_probe(g, e->id, e->hash));
    }
}

int sr_replay_check(sr_replay *g, const uint8_t id[SR_ENV_IDBYTES], int64_t exp_ms, int64_t now_ms,
                    const uint8_t **result, size_t *result_len)
{
    static const uint8_t empty[1];
    if (result) {
        *result = NULL;
    }
    if (result_len) {
        *result_len = 0;
    }
    if (!g || !id) {
        return SR_ERR_INVAL;
    }
    expire(g, now_ms);

    uint64_t h = id_hash(g, id);
    size_t slot = table_probe(g, id, h);
    if (g->table[slot] != 0) {
        const struct replay_ent *e = &g->ents[g->table[slot] - 1];
        if (e->stored) {
            if (result) {
                *result = e->result ? e->result : empty;
            }
            if (result_len) {
                *result_len = e->result_len;
            }
        }
        return SR_ERR_ENV_REPLAY;
    }
    if (g->count == g->cap) {
        return SR_ERR_FULL;
    }

    uint32_t ei;
    if (g->free_head) {
        ei = g->free_head - 1;
        g->free_head = g->ents[ei].next_free;
    } else {
        ei = (uint32_t)g->used++; /* count < cap and no freed slot: used < cap */
    }
    struct replay_ent *e = &g->ents[ei];
    memset(e, 0, sizeof(*e));
    memcpy(e->id, id, SR_ENV_IDBYTES);
    e->exp = exp_ms;
    e->hash = h;
    g->table[slot] = ei + 1;
    g->heap[g->count] = ei;
    e->heap_pos = (uint32_t)g->count;
    g->count++;
    heap_up(g, g->count - 1);
    return 0;
}

/* Is the FIFO pair still the entry's stored result? */
static bool fifo_live(const sr_replay *g, struct fifo_ent f)
{
    const struct replay_ent *e = &g->ents[f.ei];
    return f.ei < g->used && e->stored && e->seq == f.seq;
}

static void fifo_drop_oldest(sr_replay *g)
{
    struct fifo_ent f = g->fifo[g->fifo_head];
    g->fifo_head = (g->fifo_head + 1) % g->fifo_cap;
    g->fifo_len--;
    if (fifo_live(g, f)) {
        struct replay_ent *e = &g->ents[f.ei];
        g->result_bytes -= e->result_len;
        ent_release(e);
        e->result_len = 0;
        e->stored = false;
        e->dropped = true;
        g->dropped_total++;
    }
}

/* Removes stale pairs. Live ones are at most cap (one per entry), half the
 * ring, so this frees at least half of it. */
static void fifo_compact(sr_replay *g)
{
    size_t n = 0;
    for (size_t k = 0; k < g->fifo_len; k++) {
        struct fifo_ent f = g->fifo[(g->fifo_head + k) % g->fifo_cap];
        if (fifo_live(g, f)) {
            g->fifo[(g->fifo_head + n) % g->fifo_cap] = f;
            n++;
        }
    }
    g->fifo_len = n;
}

/* Stores |result| for |id|, held as is: released with |release|(|owner|)
 * (NULL: free(result)) when the guard lets go of it, or at once on failure. */
static int store(sr_replay *g, const uint8_t id[SR_ENV_IDBYTES], uint8_t *result, size_t len,
                 void (*release)(void *), void *owner)
{
    size_t slot = table_probe(g, id, id_hash(g, id));
    int rv = g->table[slot] == 0 ? SR_ERR_NOTFOUND : len > g->result_limit ? SR_ERR_FULL : 0;
    if (rv) {
        struct replay_ent tmp = {.result = result, .release = release, .owner = owner};
        ent_release(&tmp);
        return rv;
    }
    uint32_t ei = g->table[slot] - 1;
    struct replay_ent *e = &g->ents[ei];
    g->result_bytes -= e->result_len;
    ent_release(e);
    e->result_len = 0;
    e->stored = false;
    while (g->result_bytes > g->result_limit - len && g->fifo_len > 0) {
        fifo_drop_oldest(g);
    }
    if (g->fifo_len == g->fifo_cap) {
        fifo_compact(g);
    }
    e->result = result;
    e->result_len = len;
    e->release = release;
    e->owner = owner;
    e->stored = true;
    e->dropped = false;
    e->seq = ++g->next_seq;
    g->fifo[(g->fifo_head + g->fifo_len) % g->fifo_cap] = (struct fifo_ent){ei, e->seq};
    g->fifo_len++;
    g->result_bytes += len;
    return 0;
}

int sr_replay_store(sr_replay *g, const uint8_t id[SR_ENV_IDBYTES], const uint8_t *result,
                    size_t len)
{
    if (!g || !id || (!result && len)) {
        return SR_ERR_INVAL;
    }
    size_t slot = table_probe(g, id, id_hash(g, id));
    if (g->table[slot] == 0) {
        return SR_ERR_NOTFOUND;
    }
    if (len > g->result_limit) {
        return SR_ERR_FULL;
    }
    uint8_t *copy = NULL;
    if (len) {
        copy = malloc(len);
        if (!copy) {
            return SR_ERR_NOMEM;
        }
        memcpy(copy, result, len);
    }
    return store(g, id, copy, len, NULL, NULL);
}

int sr_replay_store_shared(sr_replay *g, const uint8_t id[SR_ENV_IDBYTES], const uint8_t *result,
                           size_t len, void (*release)(void *), void *owner)
{
    if (!g || !id || (!result && len) || !release) {
        if (release) {
            release(owner);
        }
        return SR_ERR_INVAL;
    }
    return store(g, id, (uint8_t *)result, len, release, owner);
}

bool sr_replay_dropped(sr_replay *g, const uint8_t id[SR_ENV_IDBYTES])
{
    if (!g || !id || g->count == 0) {
        return false;
    }
    size_t slot = table_probe(g, id, id_hash(g, id));
    return g->table[slot] != 0 && g->ents[g->table[slot] - 1].dropped;
}

void sr_replay_forget(sr_replay *g, const uint8_t id[SR_ENV_IDBYTES])
{
    if (!g || !id || g->count == 0) {
        return;
    }
    size_t slot = table_probe(g, id, id_hash(g, id));
    if (g->table[slot] != 0) {
        remove_at(g, slot);
    }
}
