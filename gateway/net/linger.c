/*
 * The end of an HTTP/2 connection closed after the final GOAWAY (net_int.h,
 * struct sr_linger): read until the client closes, never reset.
 */
#include "gateway/net/net_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>

#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <openssl/ssl.h>

#define LINGER_MS 1000

void sr_linger_free(struct sr_linger *l)
{
    if (l->prev) {
        l->prev->next = l->next;
    } else {
        l->srv->lingers = l->next;
    }
    if (l->next) {
        l->next->prev = l->prev;
    }
    l->srv->nlinger--;
    event_free(l->ev);
    evutil_closesocket(l->fd);
    free(l);
}

static void linger_read(evutil_socket_t fd, short what, void *arg)
{
    struct sr_linger *l = arg;
    char buf[4096];
    for (int i = 0; i < 16; i++) { /* a client that keeps sending waits for the next turn */
        ssize_t n = recv(fd, buf, sizeof(buf), 0);
        if (n > 0) {
            continue; /* dropped: nothing more is taken */
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
            break;
        }
        sr_linger_free(l); /* the client closed its side (or the socket failed) */
        return;
    }
    if ((what & EV_TIMEOUT) || sr_mono_ms() >= l->until) {
        sr_linger_free(l);
    }
}

/* The bufferevent closes its own descriptor when it is freed; a duplicate
 * keeps the socket open for reading meanwhile. */
bool sr_linger_start(sr_http_server *srv, struct bufferevent *bev, bool tls)
{
    evutil_socket_t fd = bufferevent_getfd(bev);
    if (fd < 0) {
        return false;
    }
    if (tls) {
        SSL *ssl = bufferevent_openssl_get_ssl(bev);
        if (ssl) {
            SSL_shutdown(ssl); /* close_notify: the records end here, by intent */
        }
    }
    struct sr_linger *l = calloc(1, sizeof(*l));
    if (!l) {
        return false;
    }
    l->fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    l->ev = l->fd >= 0 ? event_new(srv->base, l->fd, EV_READ | EV_PERSIST, linger_read, l) : NULL;
    struct timeval tv = {LINGER_MS / 1000, (LINGER_MS % 1000) * 1000};
    if (!l->ev || shutdown(l->fd, SHUT_WR) != 0 || event_add(l->ev, &tv) != 0) {
        if (l->ev) {
            event_free(l->ev);
        }
        if (l->fd >= 0) {
            evutil_closesocket(l->fd);
        }
        free(l);
        return false;
    }
    l->srv = srv;
    l->until = sr_mono_ms() + LINGER_MS;
    l->next = srv->lingers;
    if (l->next) {
        l->next->prev = l;
    }
    srv->lingers = l;
    srv->nlinger++;
    return true;
}
