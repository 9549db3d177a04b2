/*
 * gateway/net/addrs.c: the key of an address (IPv4 whole, IPv6 by its /64,
 * IPv4-mapped IPv6 as IPv4) and the table of connections per key: the cap,
 * and removal that keeps every other entry reachable, checked against a
 * plain array over thousands of random operations on a full table.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "gateway/net/net_int.h"

static void key_of(const char *text, uint8_t key[16])
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    if (strchr(text, ':')) {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
        in6->sin6_family = AF_INET6;
        assert_int_equal(inet_pton(AF_INET6, text, &in6->sin6_addr), 1);
    } else {
        struct sockaddr_in *in = (struct sockaddr_in *)&ss;
        in->sin_family = AF_INET;
        assert_int_equal(inet_pton(AF_INET, text, &in->sin_addr), 1);
    }
    assert_true(sr_addr_key((struct sockaddr *)&ss, key));
}

static void test_keys(void **state)
{
    (void)state;
    uint8_t a[16], b[16];
    key_of("127.0.0.1", a);
    key_of("127.0.0.2", b);
    assert_memory_not_equal(a, b, 16);
    key_of("::ffff:127.0.0.1", b); /* an IPv4 client on a dual-stack socket */
    assert_memory_equal(a, b, 16);
    key_of("2001:db8:1:2::1", a);
    key_of("2001:db8:1:2:ffff:1:2:3", b); /* the same /64 */
    assert_memory_equal(a, b, 16);
    key_of("2001:db8:1:3::1", b);
    assert_memory_not_equal(a, b, 16);
    struct sockaddr un = {.sa_family = AF_UNIX};
    assert_false(sr_addr_key(&un, a));
    assert_false(sr_addr_key(NULL, a));
}

static void test_cap(void **state)
{
    (void)state;
    struct sr_addrs t;
    assert_int_equal(sr_addrs_init(&t, 16), 0);
    uint8_t a[16], b[16];
    key_of("10.0.0.1", a);
    key_of("10.0.0.2", b);
    for (int i = 0; i < 3; i++) {
        assert_true(sr_addrs_acquire(&t, a, 3));
    }
    assert_false(sr_addrs_acquire(&t, a, 3));
    assert_true(sr_addrs_acquire(&t, b, 3)); /* another address is not affected */
    sr_addrs_release(&t, a);
    assert_true(sr_addrs_acquire(&t, a, 3));
    assert_false(sr_addrs_acquire(&t, a, 3));
    sr_addrs_free(&t);
}

/* A full table (as many addresses as the server takes connections), taken
 * and given back at random: the counts always match a plain array's, so a
 * removal never hides another entry. */
static void test_random_against_array(void **state)
{
    (void)state;
    enum { N = 512, KEYS = 700, OPS = 200000 };
    struct sr_addrs t;
    assert_int_equal(sr_addrs_init(&t, N), 0);
    static uint8_t keys[KEYS][16];
    static unsigned count[KEYS];
    for (int i = 0; i < KEYS; i++) {
        keys[i][10] = keys[i][11] = 0xff;
        keys[i][12] = 10;
        keys[i][13] = (uint8_t)(i >> 8);
        keys[i][14] = (uint8_t)i;
    }
    srand(7);
    unsigned live = 0, open = 0;
    for (int op = 0; op < OPS; op++) {
        int k = rand() % KEYS;
        if (rand() % 2 && open < N && (count[k] || live < N)) {
            bool ok = sr_addrs_acquire(&t, keys[k], 4);
            assert_int_equal(ok, count[k] < 4);
            if (ok) {
                live += count[k] == 0;
                count[k]++;
                open++;
            }
        } else if (count[k]) {
            sr_addrs_release(&t, keys[k]);
            count[k]--;
            live -= count[k] == 0;
            open--;
        }
        if (op % 1000 == 0) { /* every key's count, as the table has it */
            for (int i = 0; i < KEYS; i++) {
                unsigned n = 0;
                for (size_t s = 0; s < t.cap; s++) {
                    if (t.slots[s].n && !memcmp(t.slots[s].key, keys[i], 16)) {
                        n += t.slots[s].n;
                    }
                }
                assert_int_equal(n, count[i]);
                if (count[i]) { /* and found from its hash: full at its own count */
                    assert_false(sr_addrs_acquire(&t, keys[i], count[i]));
                }
            }
        }
    }
    sr_addrs_free(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_keys),
        cmocka_unit_test(test_cap),
        cmocka_unit_test(test_random_against_array),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
