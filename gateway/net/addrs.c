/*
 * Open connections per client address (net_int.h, struct sr_addrs), for the
 * server's per-address cap: one address must not hold every connection slot
 * before it has authenticated anything.
 *
 * An open-addressing table with linear probing, sized at twice the server's
 * connection limit, so it is never more than half full and a lookup probes a
 * slot or two; removal shifts the following entries back (no tombstones).
 * The hash is seeded from the system's random source at start-up: a client
 * that picks its addresses (an IPv6 /48 holds 65,536 /64s) cannot aim them
 * at one run of slots. One lookup per accept and one per close; nothing on
 * the request path.
 */
#include "gateway/net/net_int.h"

#include <stdlib.h>
#include <string.h>

#include <event2/util.h>
#include <netinet/in.h>

bool sr_addr_key(const struct sockaddr *sa, uint8_t key[16])
{
    memset(key, 0, 16);
    if (!sa) {
        return false;
    }
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        key[10] = key[11] = 0xff; /* ::ffff:a.b.c.d, as the kernel maps it */
        memcpy(key + 12, &in->sin_addr, 4);
        return true;
    }
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr)) {
            memcpy(key, &in6->sin6_addr, 16); /* an IPv4 client: its whole address */
        } else {
            memcpy(key, &in6->sin6_addr, 8); /* the /64 */
        }
        return true;
    }
    return false;
}

static uint64_t mix(uint64_t x)
{
    /* splitmix64's finaliser */
    x ^= x >> 30;
    x *= UINT64_C(0xbf58476d1ce4e5b9);
    x ^= x >> 27;
    x *= UINT64_C(0x94d049bb133111eb);
    return x ^ (x >> 31);
}

static size_t slot_of(const struct sr_addrs *t, const uint8_t key[16])
{
    uint64_t a, b;
    memcpy(&a, key, 8);
    memcpy(&b, key + 8, 8);
    return (size_t)mix(mix(a ^ t->seed[0]) ^ b ^ t->seed[1]) & (t->cap - 1);
}

int sr_addrs_init(struct sr_addrs *t, size_t max_entries)
{
    size_t cap = 16;
    while (cap < 2 * max_entries) {
        cap *= 2;
    }
    t->slots = calloc(cap, sizeof(*t->slots));
    if (!t->slots) {
        return -1;
    }
    t->cap = cap;
    evutil_secure_rng_get_bytes(t->seed, sizeof(t->seed));
    return 0;
}

void sr_addrs_free(struct sr_addrs *t)
{
    free(t->slots);
    t->slots = NULL;
    t->cap = 0;
}

bool sr_addrs_acquire(struct sr_addrs *t, const uint8_t key[16], unsigned max)
{
    size_t mask = t->cap - 1, i = slot_of(t, key);
    while (t->slots[i].n && memcmp(t->slots[i].key, key, 16) != 0) {
        i = (i + 1) & mask;
    }
    if (t->slots[i].n >= max) {
        return false;
    }
    if (!t->slots[i].n) {
        memcpy(t->slots[i].key, key, 16);
    }
    t->slots[i].n++;
    return true;
}

void sr_addrs_release(struct sr_addrs *t, const uint8_t key[16])
{
    size_t mask = t->cap - 1, i = slot_of(t, key);
    while (t->slots[i].n && memcmp(t->slots[i].key, key, 16) != 0) {
        i = (i + 1) & mask;
    }
    if (!t->slots[i].n || --t->slots[i].n) {
        return;
    }
    /* the slot is free: move back each following entry that may sit in it,
     * so that every entry stays reachable from its home slot */
    for (size_t j = (i + 1) & mask; t->slots[j].n; j = (j + 1) & mask) {
        size_t home = slot_of(t, t->slots[j].key);
        bool stays = i <= j ? (home > i && home <= j) : (home > i || home <= j);
        if (!stays) {
            t->slots[i] = t->slots[j];
            t->slots[j].n = 0;
            i = j;
        }
    }
}
