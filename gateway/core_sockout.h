/*
 * Output of one HTTP/2 flush, written straight to the socket.
 *
 * libevent's bufferevent writes from its write callback: every flush arms
 * EV_WRITE (an epoll_ctl), waits a loop turn for epoll to say the socket is
 * writable (it nearly always is), writes, and disarms (another epoll_ctl).
 * For a plain socket whose bufferevent has nothing queued, the frames of a
 * flush are instead gathered here and sent with one send() at its end; only
 * what the kernel does not take goes to the bufferevent, which then writes it
 * as before. TLS and rate-limited connections always use the bufferevent.
 *
 * One gathering buffer serves the whole thread; a flush that starts while
 * another is gathering (a callback flushing another connection) uses the
 * bufferevent path.
 */
#ifndef SR_CORE_SOCKOUT_H
#define SR_CORE_SOCKOUT_H

#include <stdbool.h>
#include <stddef.h>

struct bufferevent;

typedef struct sr_sockout {
    struct bufferevent *bev;
    bool direct; /* gathering in the thread's buffer */
} sr_sockout;

/* Starts a flush of |bev|; |plain| says the socket may be written directly. */
void sr_sockout_begin(sr_sockout *o, struct bufferevent *bev, bool plain);
/* Queues |len| bytes. 0, or -1 when out of memory. */
int sr_sockout_add(sr_sockout *o, const void *data, size_t len);
/* Bytes queued and not yet taken by the kernel (this flush's and the
 * bufferevent's). */
size_t sr_sockout_pending(const sr_sockout *o);
/* Sends what was gathered; the rest goes to the bufferevent. 0, or -1 when
 * out of memory (the connection should close). */
int sr_sockout_end(sr_sockout *o);

#endif
