/*
 * Replay guard: a bounded map from envelope id to (exp, stored result).
 *
 * Layout, sized for |cap| ids and grown by doubling (grow()) whenever the
 * live ids fill it, up to the ceiling given to sr_replay_new(): a guard
 * starts at REPLAY_INITIAL ids, so its memory follows the load it has seen
 * (ids live until their envelope expires: rate x deadline) instead of being
 * the ceiling's from the start. Growing copies the arrays once per doubling
 * (amortised O(1) per id) and rehashes the table.
 *   - ents[cap]: the records; slots [0, used) have been handed out, and the
 *     freed ones among them are chained through |next_free|;
 *   - table[2^k >= 2 cap]: open addressing with linear probing, holding entry
 *     index + 1 (0 = empty). Load stays <= 1/2, and deletion shifts the probe
 *     run back instead of leaving tombstones, so lookups stay short forever;
 *   - heap[cap]: a binary min-heap of entry indices ordered by exp, so expiry
 *     pops exactly the dead records (O(log n) each) and never scans.
 * Ids come from senders, so slots are chosen with SipHash-2-4
 * (crypto_shorthash) under a random per-guard key: nobody can aim ids at one
 * probe run.
 *
 * Stored results are copies kept in one ring, the result log, of the
 * guard's byte limit (sr_replay_set_result_limit()), written in the order
 * they are stored. A FIFO of (entry, sequence, offset) triples, oldest
 * first, says where each lies; the oldest triple marks the tail of the
 * ring, so bytes of results that expired, were forgotten or were stored
 * again are reused once the tail passes them. When a new result does not
 * fit between head and tail, the oldest stored results are dropped first (a
 * triple whose entry was removed or stored again since is stale and only
 * moves the tail). A dropped result's id stays recorded until it expires,
 * so its envelope is still refused as a replay: the handler never runs
 * twice, only the first answer is no longer at hand (sr_replay_dropped()).
 *
 * Why a ring and not a heap copy per result: a node keeps every result
 * until its limit is reached (256 MiB by default, some 200,000 results of
 * 1 KiB), and memory first touched costs a page fault per 4 KiB. On the
 * virtual machines we measure on that was half the node's CPU per request
 * at 64 KiB until the limit filled. The ring and the large tables are
 * mapped on their own and asked for huge pages; the log is faulted in whole
 * by sr_replay_reserve() (the node, at start), else 2 MiB ahead of its head,
 * in one call rather than a trap per page. Small guards (tests) stay on
 * calloc.
 */
#include "crypto/crypto.h"

#include <stdlib.h>
#include <string.h>

#include <sys/mman.h>

#include <sodium.h>

#define SR_REPLAY_MAXCAP ((size_t)1 << 30)
#define REPLAY_INITIAL ((size_t)4096)
#define SR_REPLAY_DEFAULT_RESULT_LIMIT ((size_t)256 << 20)

struct replay_ent {
    uint8_t id[SR_ENV_IDBYTES];
    int64_t exp;
    uint64_t hash;
    uint8_t *result; /* in the log; NULL while pending (or for an empty result) */
    size_t result_len;
    uint32_t heap_pos;
    uint32_t next_free;
    uint32_t seq; /* of its place in the result FIFO */
    bool stored;
    bool dropped; /* its result was dropped to make room */
};

struct fifo_ent {
    uint32_t ei, seq;
    size_t off; /* where its result starts in the log */
};

struct sr_replay {
    size_t cap, count;
    size_t max_cap; /* cap doubles up to this */
    struct replay_ent *ents;
    uint32_t free_head; /* freed entry index + 1; 0 = none */
    size_t used;        /* entries ever handed out */
    uint32_t *table;
    size_t mask;
    uint32_t *heap;
    size_t result_limit;
    uint8_t *log;          /* the result log (made at the first store), log_size bytes */
    size_t log_size;       /* == result_limit once made */
    size_t log_head;       /* where the next result goes */
    size_t log_touched;    /* bytes already faulted in (mapped logs) */
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

#define HUGE_PAGE ((size_t)2 << 20)

/* Zeroed memory for a table or the log: calloc below 2 MiB, else a mapping
 * of its own aligned to 2 MiB and asked for huge pages (untouched pages
 * cost nothing either way). Freed with big_free(p, same size). */
static void *big_alloc(size_t size)
{
    if (size < HUGE_PAGE) {
        return calloc(1, size ? size : 1);
    }
    size_t len = (size + HUGE_PAGE - 1) & ~(HUGE_PAGE - 1);
    uint8_t *p = mmap(NULL, len + HUGE_PAGE, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) {
        return NULL;
    }
    size_t lead = (HUGE_PAGE - ((uintptr_t)p & (HUGE_PAGE - 1))) & (HUGE_PAGE - 1);
    if (lead) {
        munmap(p, lead);
    }
    munmap(p + lead + len, HUGE_PAGE - lead);
    p += lead;
#ifdef MADV_HUGEPAGE
    (void)madvise(p, len, MADV_HUGEPAGE); /* advice: without THP, small pages */
#endif
    return p;
}

static void big_free(void *p, size_t size)
{
    if (!p) {
        return;
    }
    if (size < HUGE_PAGE) {
        free(p);
    } else {
        munmap(p, (size + HUGE_PAGE - 1) & ~(HUGE_PAGE - 1));
    }
}

static size_t table_size(size_t capacity)
{
    size_t tsize = 4;
    while (tsize < 2 * capacity) {
        tsize *= 2;
    }
    return tsize;
}

/* Bytes of the arrays for |cap| ids: what grow() keeps mapped at that size. */
static size_t arrays_bytes(size_t cap)
{
    return cap * (sizeof(struct replay_ent) + sizeof(uint32_t) + 2 * sizeof(struct fifo_ent)) +
           table_size(cap) * sizeof(uint32_t);
}

size_t sr_replay_capacity_for(size_t budget_bytes)
{
    /* the largest capacity whose arrays fit: bytes grow with cap, so bisect */
    size_t lo = 0, hi = SR_REPLAY_MAXCAP;
    while (lo < hi) {
        size_t mid = lo + (hi - lo + 1) / 2;
        if (arrays_bytes(mid) <= budget_bytes) {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    return lo;
}

/* The four arrays of a guard of |cap| ids, with |tsize| table slots. */
struct replay_arrays {
    struct replay_ent *ents;
    uint32_t *table, *heap;
    struct fifo_ent *fifo;
    size_t cap, tsize;
};

static void arrays_free(struct replay_arrays *a)
{
    big_free(a->ents, a->cap * sizeof(*a->ents));
    big_free(a->table, a->tsize * sizeof(*a->table));
    big_free(a->heap, a->cap * sizeof(*a->heap));
    big_free(a->fifo, 2 * a->cap * sizeof(*a->fifo));
}

static int arrays_alloc(struct replay_arrays *a, size_t cap)
{
    a->cap = cap;
    a->tsize = table_size(cap);
    a->ents = big_alloc(cap * sizeof(*a->ents));
    a->table = big_alloc(a->tsize * sizeof(*a->table));
    a->heap = big_alloc(cap * sizeof(*a->heap));
    a->fifo = big_alloc(2 * cap * sizeof(*a->fifo));
    if (!a->ents || !a->table || !a->heap || !a->fifo) {
        arrays_free(a);
        return SR_ERR_NOMEM;
    }
    return 0;
}

int sr_replay_new(sr_replay **out, size_t capacity)
{
    if (!out || capacity == 0 || capacity > SR_REPLAY_MAXCAP) {
        return SR_ERR_INVAL;
    }
    if (sodium_init() < 0) {
        return SR_ERR_UNAVAILABLE;
    }
    sr_replay *g = calloc(1, sizeof(*g));
    if (!g) {
        return SR_ERR_NOMEM;
    }
    struct replay_arrays a;
    if (arrays_alloc(&a, capacity < REPLAY_INITIAL ? capacity : REPLAY_INITIAL) != 0) {
        free(g);
        return SR_ERR_NOMEM;
    }
    g->cap = a.cap;
    g->max_cap = capacity;
    g->mask = a.tsize - 1;
    g->fifo_cap = 2 * a.cap;
    g->ents = a.ents;
    g->table = a.table;
    g->heap = a.heap;
    g->fifo = a.fifo;
    g->result_limit = SR_REPLAY_DEFAULT_RESULT_LIMIT;
    randombytes_buf(g->hkey, sizeof(g->hkey));
    *out = g;
    return 0;
}

/* Doubles the capacity (up to max_cap): the records, heap and FIFO are
 * copied as they are (indices stay valid), the table is rebuilt at its new
 * size. The old arrays are freed after the copy, so for that moment both
 * exist. 0 or SR_ERR_NOMEM (the guard is unchanged). */
static int grow(sr_replay *g)
{
    size_t cap = g->cap * 2 < g->max_cap ? g->cap * 2 : g->max_cap;
    struct replay_arrays a;
    if (arrays_alloc(&a, cap) != 0) {
        return SR_ERR_NOMEM;
    }
    memcpy(a.ents, g->ents, g->used * sizeof(*a.ents));
    memcpy(a.heap, g->heap, g->count * sizeof(*a.heap));
    for (size_t k = 0; k < g->fifo_len; k++) {
        a.fifo[k] = g->fifo[(g->fifo_head + k) % g->fifo_cap];
    }
    size_t mask = a.tsize - 1;
    for (size_t i = 0; i <= g->mask; i++) {
        uint32_t t = g->table[i];
        if (t != 0) {
            size_t j = (size_t)a.ents[t - 1].hash & mask;
            while (a.table[j] != 0) {
                j = (j + 1) & mask;
            }
            a.table[j] = t;
        }
    }
    struct replay_arrays old = {
        g->ents, g->table, g->heap, g->fifo, g->cap, g->mask + 1,
    };
    arrays_free(&old);
    g->ents = a.ents;
    g->table = a.table;
    g->heap = a.heap;
    g->fifo = a.fifo;
    g->cap = cap;
    g->mask = mask;
    g->fifo_cap = 2 * cap;
    g->fifo_head = 0;
    return 0;
}

void sr_replay_free(sr_replay *g)
{
    if (!g) {
        return;
    }
    struct replay_arrays a = {g->ents, g->table, g->heap, g->fifo, g->cap, g->mask + 1};
    arrays_free(&a);
    big_free(g->log, g->log_size);
    free(g);
}

static void fifo_drop_oldest(sr_replay *g);

void sr_replay_set_result_limit(sr_replay *g, size_t max_bytes)
{
    /* results held so far are dropped; the log is made again at the next
     * store, at the new size */
    while (g->fifo_len > 0) {
        fifo_drop_oldest(g);
    }
    big_free(g->log, g->log_size);
    g->log = NULL;
    g->log_size = g->log_head = g->log_touched = 0;
    g->result_limit = max_bytes;
}

size_t sr_replay_count(const sr_replay *g)
{
    return g ? g->count : 0;
}

size_t sr_replay_capacity(const sr_replay *g)
{
    return g ? g->cap : 0;
}

size_t sr_replay_bytes(const sr_replay *g)
{
    return g ? arrays_bytes(g->cap) : 0;
}

int64_t sr_replay_next_expiry(const sr_replay *g)
{
    return g && g->count > 0 ? g->ents[g->heap[0]].exp : 0;
}

uint64_t sr_replay_results_dropped(const sr_replay *g)
{
    return g ? g->dropped_total : 0;
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

    memset(e, 0, sizeof(*e)); /* its bytes in the log are reused once the tail passes */
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
        if (g->cap == g->max_cap || grow(g) != 0) {
            return SR_ERR_FULL;
        }
        slot = table_probe(g, id, h); /* the table was rebuilt */
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

/* Its result is no longer held (its id stays recorded): a replay is told
 * result_dropped, never run again. */
static void ent_drop(sr_replay *g, struct replay_ent *e)
{
    e->result = NULL;
    e->result_len = 0;
    e->stored = false;
    e->dropped = true;
    g->dropped_total++;
}

static void fifo_drop_oldest(sr_replay *g)
{
    struct fifo_ent f = g->fifo[g->fifo_head];
    g->fifo_head = (g->fifo_head + 1) % g->fifo_cap;
    g->fifo_len--;
    if (fifo_live(g, f)) {
        ent_drop(g, &g->ents[f.ei]);
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

/* Faults the log in from where it was up to |to|: in one call where the
 * kernel has it (MADV_POPULATE_WRITE, Linux 5.14; the start must be page
 * aligned, so not for a log on the heap), else a write to every page.
 * Pages past log_touched were never written, so writing them loses nothing. */
static void log_populate(sr_replay *g, size_t to)
{
    size_t from = g->log_touched;
#ifdef MADV_POPULATE_WRITE
    if (g->log_size >= HUGE_PAGE && from < to &&
        madvise(g->log + from, to - from, MADV_POPULATE_WRITE) == 0) {
        from = to;
    }
#endif
    for (size_t off = from; off < to; off += 4096) {
        ((volatile uint8_t *)g->log)[off] = 0;
    }
    g->log_touched = to > g->log_touched ? to : g->log_touched;
}

/* Room for |len| (> 0, <= log_size) bytes at the log's head: the oldest
 * stored results are dropped until they fit between head and tail. */
static uint8_t *log_reserve(sr_replay *g, size_t len)
{
    size_t off;
    for (;;) {
        if (g->fifo_len == 0) {
            off = 0; /* nothing held: the whole log is free */
            break;
        }
        /* each triple holds at least one byte, so head == tail only when the
         * ring has wrapped and is full */
        size_t tail = g->fifo[g->fifo_head].off;
        if (g->log_head > tail) {
            if (len <= g->log_size - g->log_head) {
                off = g->log_head;
                break;
            }
            if (len <= tail) {
                off = 0; /* wrap; the end of the log is left unused this round */
                break;
            }
        } else if (len <= tail - g->log_head) {
            off = g->log_head;
            break;
        }
        fifo_drop_oldest(g);
    }
    g->log_head = off + len;
    if (g->log_size >= HUGE_PAGE && g->log_head > g->log_touched) {
        /* a log not reserved at start: up to the next 2 MiB boundary */
        size_t to = (g->log_head + HUGE_PAGE - 1) & ~(HUGE_PAGE - 1);
        log_populate(g, to < g->log_size ? to : g->log_size);
    }
    return g->log + off;
}

static int log_open(sr_replay *g)
{
    if (!g->log) {
        g->log = big_alloc(g->result_limit);
        if (!g->log) {
            return SR_ERR_NOMEM;
        }
        g->log_size = g->result_limit;
    }
    return 0;
}

int sr_replay_reserve(sr_replay *g)
{
    if (!g) {
        return SR_ERR_INVAL;
    }
    if (g->result_limit == 0) {
        return 0;
    }
    int rv = log_open(g);
    if (rv) {
        return rv;
    }
    log_populate(g, g->log_size);
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
    uint32_t ei = g->table[slot] - 1;
    struct replay_ent *e = &g->ents[ei];
    if (len > g->result_limit) {
        ent_drop(g, e); /* a replay is told so, not "still running" */
        return SR_ERR_FULL;
    }
    int rv = len ? log_open(g) : 0;
    if (rv) {
        return rv;
    }
    /* an earlier result of this id is let go: its triple goes stale */
    e->result = NULL;
    e->result_len = 0;
    e->stored = false;
    e->seq = ++g->next_seq;
    if (len) {
        uint8_t *dst = log_reserve(g, len);
        memcpy(dst, result, len);
        if (g->fifo_len == g->fifo_cap) {
            fifo_compact(g);
        }
        g->fifo[(g->fifo_head + g->fifo_len) % g->fifo_cap] =
            (struct fifo_ent){ei, e->seq, (size_t)(dst - g->log)};
        g->fifo_len++;
        e->result = dst;
        e->result_len = len;
    }
    e->stored = true;
    e->dropped = false;
    return 0;
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
