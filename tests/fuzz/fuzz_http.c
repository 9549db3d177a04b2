/*
 * libFuzzer harness for the HTTP request path: the input is written, as a
 * client would, into one end of a socket pair whose other end the server
 * adopts; the loop runs until the connection ends or a bounded number of
 * turns pass. Covers the protocol detection, HTTP/1.1 parsing, the nghttp2
 * session callbacks (headers, bodies, limits, resets) and the responses.
 * Inputs starting with the HTTP/2 preface exercise h2; others HTTP/1.1.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>

#include "gateway/net/net.h"

static struct event_base *base;
static sr_http_server *srv;
static sr_metrics *metrics;

static void handler(sr_req *req, void *arg)
{
    (void)arg;
    size_t len;
    const uint8_t *body = sr_req_body(req, &len);
    const char *ct = sr_req_header(req, "content-type");
    if (sr_admin_serve(req, metrics, true)) {
        return;
    }
    struct sr_http_header h[] = {{"content-type", ct ? ct : "application/octet-stream"}};
    sr_req_respond(req, len ? 200 : 204, h, 1, body, len, false);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!base) {
        base = event_base_new();
        sr_log_level = SR_LOG_ERROR;
        char err[200];
        struct sr_http_server_opts o = {.listen = NULL,
                                        .allow_http1 = true,
                                        .max_body = 1 << 16,
                                        .max_header_list = 4096,
                                        /* the refusal of streams past the cap
                                         * (on_begin_headers) is fuzzed too */
                                        .max_incomplete = 3,
                                        .handler = handler};
        if (!base || sr_metrics_new(&metrics) != 0 ||
            sr_http_server_new(&srv, base, &o, err, sizeof(err)) != 0) {
            abort();
        }
    }
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) {
        return 0;
    }
    if (sr_http_server_adopt(srv, sv[0]) != 0) {
        close(sv[1]);
        return 0;
    }
    /* the whole input, then half-close: the server sees EOF after it */
    size_t off = 0;
    while (off < size) {
        ssize_t w = write(sv[1], data + off, size - off);
        if (w <= 0) {
            break;
        }
        off += (size_t)w;
        event_base_loop(base, EVLOOP_NONBLOCK);
    }
    shutdown(sv[1], SHUT_WR);
    char sink[65536];
    for (int turn = 0; turn < 64; turn++) {
        event_base_loop(base, EVLOOP_NONBLOCK);
        ssize_t r = recv(sv[1], sink, sizeof(sink), MSG_DONTWAIT);
        if (r == 0) {
            break; /* the server closed the connection */
        }
    }
    close(sv[1]);
    /* the server notices the close and frees the connection */
    for (int turn = 0; turn < 4; turn++) {
        event_base_loop(base, EVLOOP_NONBLOCK);
    }
    sr_http_server_drop_connections(srv);
    return 0;
}
