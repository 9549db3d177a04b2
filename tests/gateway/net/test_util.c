/*
 * gateway/net/util.c: address parsing (numeric hosts only, so no resolver
 * traffic), query parameters and config-relative paths; gateway/net/sockout.c:
 * the send slots' queue.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "gateway/net/net_int.h"

/* ---- sr_parse_hostport ------------------------------------------------------------------ */

static void parse_ok(const char *text, int family, const char *addr, int port)
{
    struct sockaddr_storage ss;
    int sl = 0;
    char err[256] = "";
    if (sr_parse_hostport(&ss, &sl, text, err, sizeof(err)) != 0) {
        fail_msg("'%s' refused: %s", text, err);
    }
    assert_int_equal(ss.ss_family, family);
    char got[INET6_ADDRSTRLEN];
    if (family == AF_INET) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)&ss;
        assert_int_equal(sl, sizeof(*sin));
        assert_non_null(inet_ntop(AF_INET, &sin->sin_addr, got, sizeof(got)));
        assert_int_equal(ntohs(sin->sin_port), port);
    } else {
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)&ss;
        assert_int_equal(sl, sizeof(*sin6));
        assert_non_null(inet_ntop(AF_INET6, &sin6->sin6_addr, got, sizeof(got)));
        assert_int_equal(ntohs(sin6->sin6_port), port);
    }
    assert_string_equal(got, addr);
}

static void parse_bad(const char *text, const char *why)
{
    struct sockaddr_storage ss;
    int sl = 0;
    char err[256] = "";
    assert_int_equal(sr_parse_hostport(&ss, &sl, text, err, sizeof(err)), SR_ERR_CONFIG);
    char want[300];
    snprintf(want, sizeof(want), "'%s': %s", text, why);
    assert_string_equal(err, want);
}

static void test_hostport_ok(void **state)
{
    (void)state;
    parse_ok("127.0.0.1:8443", AF_INET, "127.0.0.1", 8443);
    parse_ok("0.0.0.0:0", AF_INET, "0.0.0.0", 0);
    parse_ok("10.1.2.3:65535", AF_INET, "10.1.2.3", 65535);
    parse_ok("[::1]:9000", AF_INET6, "::1", 9000);
    parse_ok("[2001:db8::7]:80", AF_INET6, "2001:db8::7", 80);
    parse_ok("http://127.0.0.1:9101", AF_INET, "127.0.0.1", 9101);
    parse_ok("http://127.0.0.1:9101/", AF_INET, "127.0.0.1", 9101);
    parse_ok("http://[::1]:9102/", AF_INET6, "::1", 9102);
}

static void test_hostport_refused(void **state)
{
    (void)state;
    parse_bad("https://127.0.0.1:8443", "only http:// (h2c) origins are supported");
    parse_bad("ftp://127.0.0.1:21", "only http:// (h2c) origins are supported");
    parse_bad("http://127.0.0.1:9101/run", "an origin takes no path");
    parse_bad("http://127.0.0.1:9101//", "an origin takes no path");
    parse_bad("127.0.0.1:70000", "port must be 0..65535");
    parse_bad("127.0.0.1:65536", "port must be 0..65535");
    parse_bad("127.0.0.1:-1", "port must be 0..65535");
    parse_bad("127.0.0.1:http", "port must be 0..65535");
    parse_bad("127.0.0.1:", "port must be 0..65535");
    parse_bad("127.0.0.1", "expected HOST:PORT");
    parse_bad("http://127.0.0.1/", "expected HOST:PORT");
    parse_bad("", "expected HOST:PORT");
    parse_bad("[::1]", "expected [IPV6]:PORT");
    parse_bad("[::1]9000", "expected [IPV6]:PORT");
    parse_bad("[::1:9000", "expected [IPV6]:PORT");
    parse_bad("[::1]:99999", "port must be 0..65535");
}

/* ---- sr_query_get --------------------------------------------------------------------------- */

static void test_query_get(void **state)
{
    (void)state;
    char v[64];
    assert_int_equal(sr_query_get("/x?a=1&b=two&c=3", "b", v, sizeof(v)), 0);
    assert_string_equal(v, "two");
    assert_int_equal(sr_query_get("/x?a=1&b=two&c=3", "a", v, sizeof(v)), 0);
    assert_string_equal(v, "1");
    assert_int_equal(sr_query_get("/x?a=1&b=two&c=3", "c", v, sizeof(v)), 0);
    assert_string_equal(v, "3");
    /* the first occurrence wins */
    assert_int_equal(sr_query_get("/x?k=first&k=second", "k", v, sizeof(v)), 0);
    assert_string_equal(v, "first");
}

static void test_query_decoding(void **state)
{
    (void)state;
    char v[64];
    assert_int_equal(sr_query_get("/x?q=a%20b%2Fc%2fd", "q", v, sizeof(v)), 0);
    assert_string_equal(v, "a b/c/d");
    assert_int_equal(sr_query_get("/x?q=one+two", "q", v, sizeof(v)), 0);
    assert_string_equal(v, "one two");
    /* %2B is a literal plus, %26 a literal ampersand inside the value */
    assert_int_equal(sr_query_get("/x?q=1%2B1%3D2%26", "q", v, sizeof(v)), 0);
    assert_string_equal(v, "1+1=2&");
    /* malformed escapes are kept as they are */
    assert_int_equal(sr_query_get("/x?q=100%&r=1", "q", v, sizeof(v)), 0);
    assert_string_equal(v, "100%");
    assert_int_equal(sr_query_get("/x?q=%zz%4", "q", v, sizeof(v)), 0);
    assert_string_equal(v, "%zz%4");
    assert_int_equal(sr_query_get("/x?q=%4&r=1", "q", v, sizeof(v)), 0);
    assert_string_equal(v, "%4");
    /* an escaped NUL would cut the value short: refused, and not "absent" */
    assert_int_equal(sr_query_get("/x?q=a%00b", "q", v, sizeof(v)), SR_ERR_PARSE);
}

static void test_query_missing_and_empty(void **state)
{
    (void)state;
    char v[64];
    assert_int_equal(sr_query_get("/x", "a", v, sizeof(v)), SR_ERR_NOTFOUND);
    assert_int_equal(sr_query_get("/x?", "a", v, sizeof(v)), SR_ERR_NOTFOUND);
    assert_int_equal(sr_query_get("/x?b=1", "a", v, sizeof(v)), SR_ERR_NOTFOUND);
    /* a key that only starts with the one asked for is another key */
    assert_int_equal(sr_query_get("/x?ab=1&ba=2", "a", v, sizeof(v)), SR_ERR_NOTFOUND);
    assert_int_equal(sr_query_get("/x?a=", "ab", v, sizeof(v)), SR_ERR_NOTFOUND);
    /* empty values: "a=" and a bare "a" */
    strcpy(v, "junk");
    assert_int_equal(sr_query_get("/x?a=&b=1", "a", v, sizeof(v)), 0);
    assert_string_equal(v, "");
    strcpy(v, "junk");
    assert_int_equal(sr_query_get("/x?b=1&a", "a", v, sizeof(v)), 0);
    assert_string_equal(v, "");
    strcpy(v, "junk");
    assert_int_equal(sr_query_get("/x?a&b=1", "a", v, sizeof(v)), 0);
    assert_string_equal(v, "");
    /* empty segments are skipped */
    assert_int_equal(sr_query_get("/x?&&a=5&", "a", v, sizeof(v)), 0);
    assert_string_equal(v, "5");
}

static void test_query_too_long(void **state)
{
    (void)state;
    char v[4];
    assert_int_equal(sr_query_get("/x?a=abc", "a", v, sizeof(v)), 0);
    assert_string_equal(v, "abc");
    assert_int_equal(sr_query_get("/x?a=abcd", "a", v, sizeof(v)), SR_ERR_TOOBIG);
    /* the limit counts decoded bytes */
    assert_int_equal(sr_query_get("/x?a=%41%42%43", "a", v, sizeof(v)), 0);
    assert_string_equal(v, "ABC");
    assert_int_equal(sr_query_get("/x?a=%41%42%43%44", "a", v, sizeof(v)), SR_ERR_TOOBIG);
}

/* ---- sr_path_relative ------------------------------------------------------------------------ */

static void test_path_relative(void **state)
{
    (void)state;
    char out[64];
    assert_int_equal(sr_path_relative(out, sizeof(out), "/etc/sr/gw.ini", "gw.key"), 0);
    assert_string_equal(out, "/etc/sr/gw.key");
    assert_int_equal(sr_path_relative(out, sizeof(out), "/etc/sr/gw.ini", "../k/a.pub"), 0);
    assert_string_equal(out, "/etc/sr/../k/a.pub");
    assert_int_equal(sr_path_relative(out, sizeof(out), "/etc/sr/gw.ini", "/var/k.pub"), 0);
    assert_string_equal(out, "/var/k.pub");
    assert_int_equal(sr_path_relative(out, sizeof(out), "conf/gw.ini", "state"), 0);
    assert_string_equal(out, "conf/state");
    /* a config in the working directory, or none: the path as it is */
    assert_int_equal(sr_path_relative(out, sizeof(out), "gw.ini", "state"), 0);
    assert_string_equal(out, "state");
    assert_int_equal(sr_path_relative(out, sizeof(out), NULL, "state"), 0);
    assert_string_equal(out, "state");
    /* a config at the root */
    assert_int_equal(sr_path_relative(out, sizeof(out), "/gw.ini", "state"), 0);
    assert_string_equal(out, "/state");
}

static void test_path_relative_too_long(void **state)
{
    (void)state;
    char out[16];
    /* "/etc/sr/" + "abcdefg" = 15 characters + NUL fits; one more does not */
    assert_int_equal(sr_path_relative(out, sizeof(out), "/etc/sr/x.ini", "abcdefg"), 0);
    assert_string_equal(out, "/etc/sr/abcdefg");
    assert_int_equal(sr_path_relative(out, sizeof(out), "/etc/sr/x.ini", "abcdefgh"),
                     SR_ERR_TOOBIG);
    assert_int_equal(sr_path_relative(out, sizeof(out), "/etc/sr/x.ini", "/0123456789abcdef"),
                     SR_ERR_TOOBIG);
}

/* ---- sr_slot_* -------------------------------------------------------------------------- */

/* The owners of the slots waiting, in queue order, as letters. */
static void waiting(const sr_slots *q, char *out)
{
    for (const sr_slot *w = q->head; w; w = w->next) {
        *out++ = *(const char *)w->owner;
    }
    *out = 0;
}

static void test_slots_by_key_then_arrival(void **state)
{
    (void)state;
    sr_slots q = {.max = 2};
    sr_slot s[7] = {{0}};
    static const char names[] = "abcdefg";
    static const int64_t keys[] = {100, 100, 300, 200, 200, 50, 400};
    bool got[7];
    for (int i = 0; i < 7; i++) {
        got[i] = sr_slot_acquire(&q, &s[i], (void *)&names[i], keys[i]);
    }
    assert_true(got[0] && got[1]);
    for (int i = 2; i < 7; i++) {
        assert_false(got[i]);
        assert_int_equal(s[i].state, SR_SLOT_WAITING);
    }
    char order[8];
    waiting(&q, order);
    assert_string_equal(order, "fdecg"); /* earliest key first; d before e: arrival */
    assert_int_equal(q.waiting, 5);
    assert_ptr_equal(q.last, &s[6]);
    /* asking again changes nothing */
    assert_false(sr_slot_acquire(&q, &s[2], (void *)&names[2], 0));
    assert_true(sr_slot_acquire(&q, &s[0], (void *)&names[0], 0));

    /* a waiting one leaves (its stream reset): from the middle, then the end */
    assert_null(sr_slot_release(&q, &s[4]));
    assert_null(sr_slot_release(&q, &s[6]));
    waiting(&q, order);
    assert_string_equal(order, "fdc");
    assert_ptr_equal(q.last, &s[2]);
    assert_int_equal(q.waiting, 3);

    /* a held one finishes: the head of the queue takes its slot */
    assert_ptr_equal(sr_slot_release(&q, &s[0]), &s[5]);
    assert_int_equal(s[5].state, SR_SLOT_HELD);
    assert_true(sr_slot_acquire(&q, &s[5], (void *)&names[5], 50)); /* held now */
    assert_null(sr_slot_release(&q, &s[0]));                        /* idempotent */
    assert_ptr_equal(sr_slot_release(&q, &s[1]), &s[3]);
    assert_ptr_equal(sr_slot_release(&q, &s[5]), &s[2]);
    assert_null(q.head);
    assert_null(q.last);
    assert_null(sr_slot_release(&q, &s[3]));
    assert_null(sr_slot_release(&q, &s[2]));
    assert_int_equal(q.held, 0);
    assert_int_equal(q.waiting, 0);

    /* in order of arrival when keys are equal, appended at the end */
    sr_slot t[4] = {{0}};
    for (int i = 0; i < 4; i++) {
        assert_int_equal(sr_slot_acquire(&q, &t[i], (void *)&names[i], 7), i < 2);
    }
    waiting(&q, order);
    assert_string_equal(order, "cd");
    assert_int_equal(q.waiting, 2);
    sr_slots_reset(&q);
    assert_int_equal(q.held, 0);
    assert_int_equal(q.waiting, 0);
    assert_null(q.head);
    assert_null(q.last);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hostport_ok),
        cmocka_unit_test(test_hostport_refused),
        cmocka_unit_test(test_query_get),
        cmocka_unit_test(test_query_decoding),
        cmocka_unit_test(test_query_missing_and_empty),
        cmocka_unit_test(test_query_too_long),
        cmocka_unit_test(test_path_relative),
        cmocka_unit_test(test_path_relative_too_long),
        cmocka_unit_test(test_slots_by_key_then_arrival),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
