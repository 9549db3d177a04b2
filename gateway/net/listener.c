/*
 * The HTTP server's lifecycle: the listener and accepting connections (and
 * adopting sockets), the server's defaults, stopping and resuming listening
 * (link emulation), the graceful drain (RFC 9113 section 6.8), and freeing.
 * What a connection then does is h2server.c's, or http1.c's.
 */
#include "gateway/net/net_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/listener.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/ssl.h>

#define IO_CHUNK (256 * 1024) /* bytes per read() and per write() at most */
#define FIRST_REQUEST_S 10    /* a connection must send a request within this */
/* How long after the notice the clients that have not answered its PING get
 * the final GOAWAY anyway (a round trip, even a GEO one, is well within). */
#define DRAIN_GRACE_MS 1000

static void first_request_timeout(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct sr_conn *c = arg;
    if (!c->got_request && !c->reqs) {
        sr_log(SR_LOG_DEBUG, "%s: no request within %d s, closing", c->peer, FIRST_REQUEST_S);
        sr_conn_free(c);
    }
}

static void on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int salen,
                      void *arg)
{
    (void)l;
    (void)salen;
    sr_http_server *srv = arg;
    if (srv->nconns >= srv->opts.max_conns) {
        evutil_closesocket(fd); /* over the connection limit */
        return;
    }
    struct sr_conn *c = calloc(1, sizeof(*c));
    if (!c) {
        evutil_closesocket(fd);
        return;
    }
    c->srv = srv;
    c->uploads.max = srv->opts.upload_slots;
    srv->nconns++;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (srv->opts.tls) {
        SSL *ssl = sr_tls_new_ssl(srv->opts.tls);
        c->bev = ssl ? bufferevent_openssl_socket_new(srv->base, fd, ssl, BUFFEREVENT_SSL_ACCEPTING,
                                                      BEV_OPT_CLOSE_ON_FREE)
                     : NULL;
        if (!c->bev && ssl) {
            SSL_free(ssl);
        }
        if (c->bev) {
            bufferevent_openssl_set_allow_dirty_shutdown(c->bev, 1);
        }
        c->tls = true;
    } else {
        c->bev = bufferevent_socket_new(srv->base, fd, BEV_OPT_CLOSE_ON_FREE);
    }
    if (!c->bev) {
        evutil_closesocket(fd);
        srv->nconns--;
        free(c);
        return;
    }
    char host[INET6_ADDRSTRLEN] = "local";
    int port = 0;
    if (!sa) {
        /* adopted socket: no address */
    } else if (sa->sa_family == AF_INET) {
        struct sockaddr_in *in = (struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
        port = ntohs(in->sin_port);
    } else if (sa->sa_family == AF_INET6) {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)sa;
        inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
        port = ntohs(in6->sin6_port);
    }
    snprintf(c->peer, sizeof(c->peer), "%s:%d", host, port);
    if (srv->rate && bufferevent_set_rate_limit(c->bev, srv->rate) != 0) {
        sr_log(SR_LOG_WARN, "%s: cannot limit the connection's rate", c->peer);
    }
    struct timeval idle = {srv->opts.idle_timeout_s, 0};
    bufferevent_set_timeouts(c->bev, &idle, NULL);
    bufferevent_setwatermark(c->bev, EV_WRITE, SR_OUT_LOW, 0);
    /* up to IO_CHUNK per read and per write, not libevent's 16 KiB: a 64 KiB
     * body in one syscall and one loop turn instead of four of each */
    bufferevent_set_max_single_read(c->bev, IO_CHUNK);
    bufferevent_set_max_single_write(c->bev, IO_CHUNK);
    bufferevent_setcb(c->bev, sr_conn_readcb, sr_conn_writecb, sr_conn_eventcb, c);
    if (!c->tls && !srv->rate) {
        c->rev = event_new(srv->base, bufferevent_getfd(c->bev), EV_READ | EV_PERSIST,
                           sr_conn_rawread, c);
    }
    if (c->rev) {
        /* the bufferevent never reads this socket, and sr_conn_rawread() appends
         * to its input buffer, whose end a bufferevent keeps frozen */
        evbuffer_unfreeze(bufferevent_get_input(c->bev), 0);
        bufferevent_enable(c->bev, EV_WRITE);
        event_add(c->rev, &idle);
    } else {
        bufferevent_enable(c->bev, EV_READ | EV_WRITE);
    }
    c->next = srv->conns;
    if (srv->conns) {
        srv->conns->prev = c;
    }
    srv->conns = c;
    /* slow or silent clients (slowloris) do not keep a connection for free */
    c->first_req_timer = evtimer_new(srv->base, first_request_timeout, c);
    if (c->first_req_timer) {
        struct timeval tv = {FIRST_REQUEST_S, 0};
        evtimer_add(c->first_req_timer, &tv);
    }
}

int sr_http_server_new(sr_http_server **out, struct event_base *base,
                       const struct sr_http_server_opts *opts, char *err, size_t errlen)
{
    struct sockaddr_storage ss;
    int sslen = 0;
    if (opts->listen && sr_parse_hostport(&ss, &sslen, opts->listen, err, errlen) != 0) {
        return SR_ERR_CONFIG;
    }
    sr_http_server *srv = calloc(1, sizeof(*srv));
    if (!srv) {
        return SR_ERR_NOMEM;
    }
    srv->base = base;
    srv->opts = *opts;
    srv->h1 = &sr_h1_ops;
    if (sr_flushq_init(&srv->flushq, base, sr_conn_flush_queued) != 0) {
        free(srv);
        return SR_ERR_NOMEM;
    }
    if (!srv->opts.max_body) {
        srv->opts.max_body = 32u << 20;
    }
    if (!srv->opts.max_streams) {
        srv->opts.max_streams = 1000;
    }
    if (!srv->opts.max_header_list) {
        srv->opts.max_header_list = 64 * 1024;
    }
    if (!srv->opts.idle_timeout_s) {
        srv->opts.idle_timeout_s = 300;
    }
    if (!srv->opts.max_buffered) {
        srv->opts.max_buffered = 256u << 20;
    }
    if (!srv->opts.max_conns) {
        srv->opts.max_conns = 4096;
    }
    if (srv->opts.rate_Bps) {
        /* 10 ticks a second, so a transfer flows smoothly rather than in bursts */
        static const struct timeval tick = {0, 100000};
        uint64_t per_tick = srv->opts.rate_Bps / 10 ? srv->opts.rate_Bps / 10 : 1;
        if (per_tick > EV_RATE_LIMIT_MAX) {
            per_tick = EV_RATE_LIMIT_MAX;
        }
        srv->rate = ev_token_bucket_cfg_new((size_t)per_tick, (size_t)per_tick, (size_t)per_tick,
                                            (size_t)per_tick, &tick);
        if (!srv->rate) {
            sr_flushq_free(&srv->flushq);
            free(srv);
            snprintf(err, errlen, "out of memory");
            return SR_ERR_NOMEM;
        }
    }
    if (!opts->listen) {
        *out = srv; /* no listener: connections come through sr_http_server_adopt() */
        return 0;
    }
    srv->listener = evconnlistener_new_bind(
        base, on_accept, srv, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC | LEV_OPT_REUSEABLE,
        1024, (struct sockaddr *)&ss, sslen);
    if (!srv->listener) {
        snprintf(err, errlen, "cannot listen on %s: %s", opts->listen, strerror(errno));
        if (srv->rate) {
            ev_token_bucket_cfg_free(srv->rate);
        }
        sr_flushq_free(&srv->flushq);
        free(srv);
        return SR_ERR_IO;
    }
    struct sockaddr_storage bound;
    socklen_t blen = sizeof(bound);
    getsockname(evconnlistener_get_fd(srv->listener), (struct sockaddr *)&bound, &blen);
    srv->addr = bound;
    srv->addrlen = (int)blen;
    srv->port = ntohs(bound.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&bound)->sin6_port
                                                  : ((struct sockaddr_in *)&bound)->sin_port);
    *out = srv;
    return 0;
}

int sr_http_server_adopt(sr_http_server *srv, int fd)
{
    evutil_make_socket_nonblocking(fd);
    evutil_make_socket_closeonexec(fd);
    size_t before = srv->nconns;
    on_accept(NULL, fd, NULL, 0, srv);
    return srv->nconns > before ? 0 : SR_ERR_NOMEM;
}

int sr_http_server_port(const sr_http_server *srv)
{
    return srv->port;
}

void sr_http_server_stop_listening(sr_http_server *srv)
{
    if (!srv->listener) {
        return;
    }
    /* Connections the kernel has completed but the loop has not accepted yet
     * would be reset when the socket closes, their requests perhaps already
     * sent: a draining gateway's clients would see a request cut mid-flight.
     * Take them in first; they are then served like the others (a draining
     * gateway answers 503, link emulation drops them as it drops the rest). */
    evutil_socket_t lfd = evconnlistener_get_fd(srv->listener);
    for (;;) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof(ss);
        evutil_socket_t fd = accept(lfd, (struct sockaddr *)&ss, &sl);
        if (fd < 0) {
            break; /* EAGAIN: none left (the listener's socket is non-blocking) */
        }
        if (evutil_make_socket_nonblocking(fd) != 0 || evutil_make_socket_closeonexec(fd) != 0) {
            evutil_closesocket(fd);
            continue;
        }
        on_accept(srv->listener, fd, (struct sockaddr *)&ss, (int)sl, srv);
    }
    evconnlistener_free(srv->listener);
    srv->listener = NULL;
}

void sr_http_server_goaway(sr_http_server *srv, bool final)
{
    if (!srv->draining) {
        srv->draining = true;
        srv->drain_grace_mono = sr_mono_ms() + DRAIN_GRACE_MS;
    }
    struct sr_conn *next;
    for (struct sr_conn *c = srv->conns; c; c = next) {
        next = c->next; /* a flush may free |c| */
        if (c->mode != SR_MODE_H2 || !c->h2 || c->drain_final) {
            continue;
        }
        if (final) {
            sr_conn_goaway_final(c);
        } else {
            sr_conn_notice(c);
        }
        sr_conn_flush(c);
    }
}

bool sr_http_server_drain_step(sr_http_server *srv)
{
    if (srv->draining && sr_mono_ms() >= srv->drain_grace_mono) {
        sr_http_server_goaway(srv, true); /* only connections still without one */
    }
    if (srv->inflight || srv->nlinger) {
        return false;
    }
    for (const struct sr_conn *c = srv->conns; c; c = c->next) {
        if (c->mode == SR_MODE_H2) {
            return false;
        }
    }
    return true;
}

void sr_http_server_set_tls(sr_http_server *srv, sr_tls *tls)
{
    srv->opts.tls = tls;
}

int sr_http_server_resume_listening(sr_http_server *srv)
{
    if (srv->listener) {
        return 0;
    }
    srv->listener =
        evconnlistener_new_bind(srv->base, on_accept, srv,
                                LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC | LEV_OPT_REUSEABLE,
                                1024, (struct sockaddr *)&srv->addr, srv->addrlen);
    return srv->listener ? 0 : SR_ERR_IO;
}

void sr_http_server_drop_connections(sr_http_server *srv)
{
    while (srv->conns) {
        /* linger 0: the peer sees a reset, as when the link is cut */
        struct linger lg = {1, 0};
        evutil_socket_t fd = bufferevent_getfd(srv->conns->bev);
        if (fd >= 0) {
            setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
        }
        sr_conn_free(srv->conns);
    }
}

void sr_http_server_free(sr_http_server *srv)
{
    if (!srv) {
        return;
    }
    sr_http_server_stop_listening(srv);
    while (srv->conns) {
        sr_conn_free(srv->conns);
    }
    while (srv->lingers) {
        sr_linger_free(srv->lingers);
    }
    if (srv->rate) {
        ev_token_bucket_cfg_free(srv->rate); /* after the connections that use it */
    }
    sr_flushq_free(&srv->flushq);
    free(srv);
}

size_t sr_http_server_inflight(const sr_http_server *srv)
{
    return srv->inflight;
}
