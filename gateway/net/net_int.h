/*
 * Private to net/: what its files share below the public header.
 *
 *   - socket output of HTTP/2 flushes and the end-of-turn flush queue
 *     (sockout.c), used by the server and the client alike;
 *   - body slots (sockout.c), the TLS context's SSL objects (tls.c);
 *   - the HTTP server's objects and the calls between its files. Lowest
 *     first: request.c (a request's header block and accessors), linger.c
 *     (the end of a closed connection) and addrs.c (connections per client
 *     address) call nothing of the server;
 *     h2server.c (the HTTP/2 connection: nghttp2 callbacks, flow control,
 *     responses, flushes) calls those; http1.c (HTTP/1.1 requests) calls
 *     h2server.c; listener.c (accepting, the server's lifecycle, draining)
 *     calls all of them and hands h2server.c the HTTP/1.1 side as a struct of
 *     callbacks, so that no file calls one above it.
 */
#ifndef SR_NET_INT_H
#define SR_NET_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sys/socket.h>

#include <event2/util.h>
#include <nghttp2/nghttp2.h>

#include "gateway/net/net.h"

struct bufferevent;
struct event;
struct event_base;

/* ---- Output of one HTTP/2 flush, written straight to the socket ----
 *
 * libevent's bufferevent writes from its write callback: every flush arms
 * EV_WRITE (an epoll_ctl), waits a loop turn for epoll to say the socket is
 * writable (it nearly always is), writes, and disarms (another epoll_ctl).
 * For a plain socket whose bufferevent has nothing queued, the frames of a
 * flush are instead gathered here and sent with one send() at its end; only
 * what the kernel does not take goes to the bufferevent, which then writes it
 * from its write callback. TLS and rate-limited connections always use the
 * bufferevent.
 *
 * One gathering buffer serves the whole thread; a flush that starts while
 * another is gathering (a callback flushing another connection) uses the
 * bufferevent path.
 */

/* A flush stops pulling frames once this much output is queued, and the
 * bufferevent's write callback (armed below SR_OUT_LOW) resumes it: one
 * nghttp2_session_mem_send call would otherwise emit every ready DATA frame of
 * every stream at once (backpressure, STYLE habit 9). */
#define SR_OUT_HIGH (256 * 1024)
#define SR_OUT_LOW (32 * 1024)

typedef struct sr_sockout {
    struct bufferevent *bev;
    bool direct; /* gathering in the thread's buffer */
    bool full;   /* the flush stopped at SR_OUT_HIGH with frames left */
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

/* One flush of |h2| to |bev| (|plain|: the socket may be written directly):
 * frames are pulled with nghttp2_session_mem_send until there are none left
 * or SR_OUT_HIGH bytes wait (then o->full is set: the rest goes in the next
 * flush), and sent. NULL, or why the session must end: nghttp2's error text,
 * or "out of memory". */
const char *sr_sockout_flush(sr_sockout *o, nghttp2_session *h2, struct bufferevent *bev,
                             bool plain);
/* For a send_data callback during sr_sockout_flush: queues the DATA frame,
 * its 9-byte header |framehd| and the |length| bytes of |body| (|len| bytes)
 * from |off| on. 0; NGHTTP2_ERR_WOULDBLOCK with o->full set once SR_OUT_HIGH
 * bytes wait; NGHTTP2_ERR_CALLBACK_FAILURE if the frame is padded, the bytes
 * are not all in |body|, or memory ran out. */
int sr_sockout_data(sr_sockout *o, const nghttp2_frame *frame, const uint8_t *framehd,
                    size_t length, const uint8_t *body, size_t off, size_t len);

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

/* For an nghttp2 header callback: the user data (a request, a call) of the
 * stream |f| is a HEADERS frame of, or NULL if |f| is another frame (a
 * PUSH_PROMISE) or the stream has none. */
static inline void *sr_h2_header_owner(nghttp2_session *s, const nghttp2_frame *f)
{
    return f->hd.type == NGHTTP2_HEADERS ? nghttp2_session_get_stream_user_data(s, f->hd.stream_id)
                                         : NULL;
}

/* ---- The HTTP server ---------------------------------------------------------- */

#define SR_MAX_HEADERS 100 /* header fields of a request, pseudo-headers included */

enum sr_conn_mode { SR_MODE_DETECT, SR_MODE_H2, SR_MODE_H1 };

/* addrs.c: open connections per client address (sr_addr_key). */
struct sr_addr_slot {
    uint8_t key[16];
    uint32_t n; /* 0: free */
};
struct sr_addrs {
    struct sr_addr_slot *slots;
    size_t cap; /* a power of two, at least twice the entries */
    uint64_t seed[2];
};
/* A table for up to |max_entries| addresses. 0, or -1 when out of memory. */
int sr_addrs_init(struct sr_addrs *t, size_t max_entries);
void sr_addrs_free(struct sr_addrs *t);
/* Counts one more connection of |key|: false (nothing counted) if it has
 * |max| already. */
bool sr_addrs_acquire(struct sr_addrs *t, const uint8_t key[16], unsigned max);
/* One connection of |key| closed. */
void sr_addrs_release(struct sr_addrs *t, const uint8_t key[16]);

struct sr_conn;

struct sr_req {
    struct sr_conn *conn; /* NULL once the connection or stream is gone */
    struct sr_req *prev, *next;
    int32_t stream_id;
    sr_buf hdrs; /* the header block, pseudo-headers included (request.c) */
    size_t nhdrs;
    sr_buf body;
    int64_t declared_len; /* content-length or -1 */
    int64_t start_mono;
    bool dispatched; /* handed to the handler */
    bool responded;  /* sr_req_respond called */
    bool too_big;    /* 413 already sent */
    bool h1_close;   /* HTTP/1.1: close after this response */
    bool head_done;  /* the whole header block is in */
    bool incomplete; /* counted in conn->incomplete: not dispatched or refused yet */
    bool cut;        /* refused before its end: to be reset (conn->cuts) ... */
    int64_t cut_at;  /* ... once answered (0), or at this monotonic ms */
    /* progress of a body, looked at by sr_server_sweep (not on the request path) */
    size_t seen_len, win_len;
    int64_t progress_mono, win_mono;
    void *data;
    void (*on_abort)(sr_req *, void *);
    sr_http_server *srv;
    void (*done_fn)(void *);
    void *done_arg;
    size_t counted;    /* body bytes counted in srv->body_bytes */
    size_t unconsumed; /* received but not yet given back to flow control */
    size_t held;       /* given back to the connection's window, not the stream's */
    sr_slot upload;    /* a large body's turn for its window (upload_start) */
    /* response body being sent */
    uint8_t *resp;
    size_t resp_len, resp_off;
    void *resp_mem; /* freed with the request: the block holding |resp|, if ours */
    /* a body written in pieces (sr_req_stream_begin): |resp| is stream.data */
    bool streaming, stream_done;
    sr_buf stream;
};

struct sr_conn {
    sr_http_server *srv;
    struct sr_conn *prev, *next; /* in srv->conns */
    struct bufferevent *bev;     /* writes, TLS, rate limits; reads unless |rev| */
    struct event *rev;           /* plain sockets: our own read event (sr_conn_rawread) */
    nghttp2_session *h2;
    enum sr_conn_mode mode;
    struct sr_req *reqs;
    bool in_recv;     /* inside nghttp2_session_mem_recv */
    bool want_flush;  /* a response was queued while in_recv */
    sr_sockout out;   /* the flush in progress */
    bool closing;     /* close once output is drained */
    bool drain_final; /* the final GOAWAY (last stream taken) is submitted */
    char peer[64];
    bool tls;
    int cert_state; /* 0 unknown, 1 verified client certificate, -1 none */
    char cert_cn[SR_CERT_CN_MAX + 1];
    uint8_t addr_key[16]; /* sr_addr_key of the peer */
    bool has_addr;
    bool addr_counted;   /* in srv->addrs */
    unsigned incomplete; /* requests not whole yet (opts.max_incomplete) */
    unsigned cuts;       /* requests with |cut| set */
    uint64_t rx_body;    /* body bytes received, all streams */
    uint64_t rx_seen;    /* rx_body at the last sweep ... */
    int64_t rx_mono;     /* ... and when it last moved */
    /* abuse accounting */
    int64_t ctrl_window_start; /* monotonic ms */
    unsigned ctrl_frames;
    unsigned wu_credit; /* WINDOW_UPDATEs the DATA we sent justifies (two per frame) */
    unsigned header_abuse;
    bool got_request;
    struct event *first_req_timer;
    sr_slots uploads; /* bodies beyond the initial window, granted in turn */
    /* HTTP/1.1 */
    sr_req *h1_req; /* request awaiting its response */
    bool h1_reading_body;
};

/* The HTTP/1.1 side (http1.c) as the HTTP/2 core sees it: filled in by
 * listener.c, so that h2server.c, below http1.c, never calls it by name. */
struct sr_h1_ops {
    /* Reads what it can of the connection's input: request heads and bodies,
     * each complete request dispatched in turn. */
    void (*process)(struct sr_conn *c);
    /* Writes |r|'s response (its body already in r->resp) to the connection's
     * output and frees |r|. 0. */
    int (*respond)(sr_req *r, int status, const struct sr_http_header *hdrs, size_t nhdrs);
};

struct sr_http_server {
    struct event_base *base;
    struct evconnlistener *listener;
    struct sr_http_server_opts opts;
    const struct sr_h1_ops *h1;
    int port;
    size_t inflight;
    struct sr_conn *conns;
    struct sockaddr_storage addr; /* bound address, for resume_listening */
    int addrlen;
    size_t nconns;
    size_t body_bytes;                /* request body bytes buffered, all connections */
    bool starved;                     /* some stream waits for body budget */
    struct ev_token_bucket_cfg *rate; /* opts.rate_Bps, or NULL */
    sr_flushq flushq;                 /* connections to flush at the end of the turn */
    bool draining;                    /* the shutdown notice went out (goaway) */
    int64_t drain_grace_mono;         /* the final GOAWAY to all by then (drain_step) */
    struct sr_linger *lingers;        /* closed connections still read until EOF */
    size_t nlinger;
    struct sr_addrs addrs; /* opts.per_addr_conns: connections per address */
    struct event *sweep;   /* opts.body_timeout_s: sr_server_sweep's timer */
};

/* Counts a refusal before authentication in opts.metrics (if set):
 * skyroute_preauth_refused_total{reason="|reason|"}. */
void sr_server_count_refusal(sr_http_server *srv, const char *reason);

/* request.c: a request's header block. */

/* Appends a header field (its name lowercased). 0; SR_ERR_TOOBIG past
 * SR_MAX_HEADERS fields or the block's ceiling (opts.max_header_list and some
 * room for the framing); SR_ERR_NOMEM. */
int sr_req_add_header(sr_req *r, const uint8_t *name, size_t nlen, const uint8_t *value,
                      size_t vlen);

/* linger.c: a connection closed after the final GOAWAY. Our side is shut
 * (FIN sent) and whatever the client still sends is read and dropped until it
 * closes too, or a second passes. Closing a socket with unread bytes would
 * reset it, and a reset can destroy what is still on its way to the client:
 * the last responses and the GOAWAY that says which streams were taken. */
struct sr_linger {
    struct sr_linger *prev, *next; /* in srv->lingers */
    sr_http_server *srv;
    struct event *ev;
    evutil_socket_t fd;
    int64_t until; /* monotonic ms */
};

/* Ends the connection of |bev| (about to be freed) gracefully: with |tls|,
 * its close_notify; then a duplicate of its socket, shut for writing, is read
 * until the client closes, in srv->lingers. false if that cannot be set up:
 * the socket then just closes with the bufferevent. */
bool sr_linger_start(sr_http_server *srv, struct bufferevent *bev, bool tls);
/* Closes |l| and takes it out of its server's list. */
void sr_linger_free(struct sr_linger *l);

/* h2server.c: requests and connections. */

/* A new request on |c|, in its list. NULL when out of memory. */
sr_req *sr_req_new(struct sr_conn *c);
/* Unlinks and frees |r| (NULL is fine); its done function runs. */
void sr_req_free(sr_req *r);
/* Hands the complete request |r| to the server's handler. */
void sr_req_dispatch(sr_req *r);
/* Answers |r| 413 for a body over opts.max_body. */
void sr_req_reject_too_big(sr_req *r);
/* Refuses the requests that stopped sending (opts.body_timeout_s,
 * opts.body_min_Bps); run a few times per body_timeout_s by listener.c. */
void sr_server_sweep(sr_http_server *srv);

/* Writes what |c| has to send. -1 if |c| was freed (it was closing and
 * its output is drained), else 0. */
int sr_conn_flush(struct sr_conn *c);
/* sr_conn_flush for the server's flush queue. */
void sr_conn_flush_queued(void *c);
/* Starts or stops reading |c|. */
void sr_conn_read_enable(struct sr_conn *c, bool on);
/* Closes |c| now: its requests are aborted. */
void sr_conn_free(struct sr_conn *c);
/* The shutdown notice: a GOAWAY with last stream 2^31-1, then a PING whose
 * ACK tells when the client has read it. */
void sr_conn_notice(struct sr_conn *c);
/* The final GOAWAY, naming the last stream taken (once per connection). */
void sr_conn_goaway_final(struct sr_conn *c);
/* The connection's bufferevent callbacks, and its own read event's on plain
 * sockets (|arg| is the connection). */
void sr_conn_readcb(struct bufferevent *bev, void *arg);
void sr_conn_writecb(struct bufferevent *bev, void *arg);
void sr_conn_eventcb(struct bufferevent *bev, short events, void *arg);
void sr_conn_rawread(evutil_socket_t fd, short what, void *arg);

/* http1.c */
extern const struct sr_h1_ops sr_h1_ops;

#endif /* SR_NET_INT_H */
