/*
 * gateway/net/http1.c: HTTP/1.1 requests on a server that allows them, over
 * an adopted socket pair: responses in order for pipelined requests, HEAD
 * without a body, HTTP/1.0 and refused heads closing the connection. The
 * parser's refusals one by one are test_api_fuzz's (integration).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>

#include "gateway/net/net.h"

static void handler(sr_req *req, void *arg)
{
    (void)arg;
    size_t len;
    const uint8_t *body = sr_req_body(req, &len);
    char text[256];
    int n = snprintf(text, sizeof(text), "%s %s %zu:%.*s", sr_req_method(req), sr_req_path(req),
                     len, (int)len, (const char *)body);
    static const struct sr_http_header h[] = {{"content-type", "text/plain"}};
    sr_req_respond(req, 200, h, 1, text, (size_t)n, false);
}

/* Sends |in| to a fresh connection and returns what the server wrote back
 * until it closed the connection or |turns| loop turns passed; |*closed|
 * says which. */
static void exchange(const char *in, size_t inlen, char *out, size_t outlen, int turns,
                     bool *closed)
{
    struct event_base *base = event_base_new();
    assert_non_null(base);
    sr_http_server *srv;
    char err[200];
    struct sr_http_server_opts o = {.allow_http1 = true, .max_body = 1024, .handler = handler};
    assert_int_equal(sr_http_server_new(&srv, base, &o, err, sizeof(err)), 0);
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    assert_int_equal(sr_http_server_adopt(srv, sv[0]), 0);
    assert_int_equal(write(sv[1], in, inlen), (ssize_t)inlen);
    size_t got = 0;
    *closed = false;
    for (int t = 0; t < turns && !*closed; t++) {
        event_base_loop(base, EVLOOP_NONBLOCK);
        ssize_t r = recv(sv[1], out + got, outlen - 1 - got, MSG_DONTWAIT);
        if (r > 0) {
            got += (size_t)r;
        } else if (r == 0) {
            *closed = true;
        }
        usleep(1000);
    }
    out[got] = 0;
    close(sv[1]);
    sr_http_server_free(srv);
    event_base_free(base);
}

static void test_pipelined(void **state)
{
    (void)state;
    static const char in[] = "GET /a HTTP/1.1\r\nHost: x\r\n\r\n"
                             "POST /b HTTP/1.1\r\nContent-Length: 3\r\n\r\nxyz"
                             "HEAD /c HTTP/1.1\r\n\r\n";
    char out[2048];
    bool closed;
    exchange(in, sizeof(in) - 1, out, sizeof(out), 50, &closed);
    assert_false(closed); /* HTTP/1.1 keeps the connection */
    assert_string_equal(out, "HTTP/1.1 200 OK\r\ncontent-length: 9\r\n"
                             "content-type: text/plain\r\n\r\n"
                             "GET /a 0:"
                             "HTTP/1.1 200 OK\r\ncontent-length: 13\r\n"
                             "content-type: text/plain\r\n\r\n"
                             "POST /b 3:xyz"
                             "HTTP/1.1 200 OK\r\ncontent-length: 10\r\n"
                             "content-type: text/plain\r\n\r\n");
}

static void test_http10_closes(void **state)
{
    (void)state;
    static const char in[] = "GET /a HTTP/1.0\r\n\r\n";
    char out[1024];
    bool closed;
    exchange(in, sizeof(in) - 1, out, sizeof(out), 200, &closed);
    assert_true(closed);
    assert_non_null(strstr(out, "connection: close\r\n"));
    assert_non_null(strstr(out, "\r\n\r\nGET /a 0:"));
}

static void test_refusals_close(void **state)
{
    (void)state;
    static const struct {
        const char *in, *status, *why;
    } cases[] = {
        {"GET /a HTTP/2.0\r\n\r\n", "HTTP/1.1 505 HTTP Version Not Supported\r\n",
         "HTTP/2.0 is not supported here"},
        {"GET /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
         "HTTP/1.1 501 Not Implemented\r\n", "chunked request bodies"},
        {"POST /a HTTP/1.1\r\nContent-Length: 2000\r\n\r\n", "HTTP/1.1 413 Content Too Large\r\n",
         "\"max_body_bytes\":1024"},
        {"GET a HTTP/1.1\r\n\r\n", "HTTP/1.1 400 Bad Request\r\n", "request target"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char out[1024];
        bool closed;
        exchange(cases[i].in, strlen(cases[i].in), out, sizeof(out), 200, &closed);
        assert_true(closed);
        assert_memory_equal(out, cases[i].status, strlen(cases[i].status));
        assert_non_null(strstr(out, "connection: close\r\n"));
        assert_non_null(strstr(out, cases[i].why));
    }
}

static void test_head_too_large(void **state)
{
    (void)state;
    static char in[17 * 1024];
    memcpy(in, "GET /a HTTP/1.1\r\nX: ", 20);
    memset(in + 20, 'a', sizeof(in) - 20);
    char out[1024];
    bool closed;
    exchange(in, sizeof(in), out, sizeof(out), 200, &closed);
    assert_true(closed);
    assert_string_equal(out, "HTTP/1.1 431 Request Header Fields Too Large\r\n"
                             "content-length: 0\r\nconnection: close\r\n\r\n");
}

int main(void)
{
    sr_log_level = SR_LOG_ERROR;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pipelined),
        cmocka_unit_test(test_http10_closes),
        cmocka_unit_test(test_refusals_close),
        cmocka_unit_test(test_head_too_large),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
