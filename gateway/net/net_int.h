/*
 * Private to net/: what the HTTP server and client share below the public
 * header: socket output, body slots, and the TLS context's SSL objects.
 *
 * ---- Output of one HTTP/2 flush, written straight to the socket ----
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
#ifndef SR_NET_INT_H
#define SR_NET_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gateway/net/net.h"

struct bufferevent;
struct event;
struct event_base;

typedef struct sr_sockout {
    struct bufferevent *bev;
    bool direct; /* gathering in the thread's buffer */
    /* in an sr_flushq: flushed once the loop turn's other events ran */
    bool queued;
    struct sr_sockout *next;
    void *owner; /* passed to the queue's flush function */
} sr_sockout;

/* One recv() of up to 256 KiB into the thread's read buffer, for plain
 * sockets read without a bufferevent: the bytes stay at *data until the next
 * call. Returns how many (> 0); 0 if there is nothing to read after all; -1
 * when the connection is over, with *events BEV_EVENT_EOF or BEV_EVENT_ERROR
 * (errno set) for the caller's event callback. */
long sr_sock_read(int fd, const uint8_t **data, short *events);

/* Connections whose output was produced outside their own read callback (a
 * response to another connection's event, a request from a timer) are
 * flushed together by one event at the I/O priority: appended behind the
 * turn's active events, it runs once they have, so all of the turn's output
 * for a connection leaves in one write. */
typedef struct sr_flushq {
    struct event *ev;
    sr_sockout *head;
    void (*flush)(void *owner);
} sr_flushq;

/* 0, or -1 when out of memory. */
int sr_flushq_init(sr_flushq *q, struct event_base *base, void (*flush)(void *owner));
void sr_flushq_free(sr_flushq *q);
/* Queues |o| (once) to have flush(owner) called at the end of the turn. */
void sr_flushq_add(sr_flushq *q, sr_sockout *o, void *owner);
/* Takes |o| out of the queue (its connection is going away). */
void sr_flushq_remove(sr_flushq *q, sr_sockout *o);

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

/* Slots: at most |max| bodies of an HTTP/2 connection under way at once,
 * the others waiting their turn in order of a key (the client's: each
 * workload's deadline, so the earliest goes first), equal keys oldest first. h2client.c uses
 * them to send large request bodies a few at a time (SR_SEND_SLOTS; the others wait with
 * NGHTTP2_ERR_DEFERRED from their DATA read callback): left to nghttp2, the DATA of every stream
 * with window would be interleaved frame by frame, so under a burst of large bodies none would be
 * whole at the peer, which verifies whole envelopes, until nearly all were; in turn, they arrive
 * whole one after another, and the peer starts on the first while the rest
 * are on the way. Small bodies, one frame each, never take a slot.
 * h2server.c uses them to let large uploads in a few at a time. */
#define SR_SEND_SLOTS 8
#define SR_SEND_SMALL (16u << 10)

enum { SR_SLOT_NONE, SR_SLOT_WAITING, SR_SLOT_HELD, SR_SLOT_DONE };

typedef struct sr_slot {
    struct sr_slot *next; /* in the queue while waiting */
    int state;            /* SR_SLOT_* */
    int64_t key;
    void *owner;
} sr_slot;

typedef struct sr_slots {
    unsigned held, max, waiting;
    sr_slot *head, *last; /* waiting, by key, equal keys oldest first */
} sr_slots;

/* True if |s| (of |owner|) holds a slot now; false if it waits its turn,
 * behind those waiting with a key not above |key|. */
bool sr_slot_acquire(sr_slots *q, sr_slot *s, void *owner, int64_t key);
/* |s| is done (its body whole, or its stream gone): if it held a slot, the
 * oldest waiting one now holds it, and is returned for its owner to start;
 * else NULL. Idempotent. */
sr_slot *sr_slot_release(sr_slots *q, sr_slot *s);
/* The session is going away: forgets every slot; the owner marks each of
 * its members SR_SLOT_DONE. */
void sr_slots_reset(sr_slots *q);

/* A new SSL object for a server connection under |tls|'s context (tls.c). */
void *sr_tls_new_ssl(sr_tls *tls);

#endif /* SR_NET_INT_H */
