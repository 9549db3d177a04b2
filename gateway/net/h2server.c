/*
 * HTTP server over libevent: HTTP/2 with prior knowledge (h2c) through
 * nghttp2, and, on listeners that allow it, HTTP/1.1 on the same port.
 *
 * Shape (after nghttp2's libevent-server example, written anew):
 *   read callback -> nghttp2_session_mem_recv -> callbacks build sr_req
 *   -> handler called at END_STREAM -> sr_req_respond submits a response
 *   -> conn_flush pulls frames with nghttp2_session_mem_send into the
 *      bufferevent, stopping above a watermark and resuming from the write
 *      callback (backpressure, STYLE habit 9).
 *
 * A response may be given from inside the handler (we are then inside
 * nghttp2_session_mem_recv) or later from any other event; in the first case
 * we only mark the connection and flush once mem_recv has returned, because
 * nghttp2 forbids re-entering the session from its callbacks (habit 10).
 */
#include "gateway/net/net_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/listener.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <nghttp2/nghttp2.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <sys/socket.h>

#define OUT_HIGH (256 * 1024) /* stop pulling frames above this much queued output */
#define OUT_LOW (32 * 1024)   /* resume when output drains below this */
#define IO_CHUNK (256 * 1024) /* bytes per read() and per write() at most */
#define MAX_HEADERS 100
/* Abuse limits (per connection). nghttp2 itself caps CONTINUATION frames per
 * header block, RST_STREAM rate (rapid reset, CVE-2023-44487), queued
 * SETTINGS/PING ACKs and flow-control window overflow; these add the rest. */
#define CTRL_FRAMES_PER_S 200 /* PING + SETTINGS + PRIORITY + empty DATA per second */
#define HEADER_ABUSE_MAX 4    /* oversized header lists before the connection goes */
#define RST_BURST 200         /* RST_STREAM token bucket: burst ... */
#define RST_RATE 50           /* ... and tokens per second */
#define FIRST_REQUEST_S 10    /* a connection must send a request within this */
#define H1_MAX_HEAD (16 * 1024)
#define REQ_PRESIZE_MAX (256 * 1024) /* content-length trusted up to this for sizing */

static const char h2_preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
#define H2_PREFACE_LEN 24

enum conn_mode { MODE_DETECT, MODE_H2, MODE_H1 };

struct conn;

struct sr_req {
    struct conn *conn; /* NULL once the connection or stream is gone */
    struct sr_req *prev, *next;
    int32_t stream_id;
    sr_buf hdrs; /* "name\0value\0" pairs, pseudo-headers included */
    size_t nhdrs;
    sr_buf body;
    int64_t declared_len; /* content-length or -1 */
    int64_t start_mono;
    bool dispatched; /* handed to the handler */
    bool responded;  /* sr_req_respond called */
    bool too_big;    /* 413 already sent */
    bool h1_close;   /* HTTP/1.1: close after this response */
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

struct conn {
    sr_http_server *srv;
    struct conn *prev, *next; /* in srv->conns */
    struct bufferevent *bev;  /* writes, TLS, rate limits; reads unless |rev| */
    struct event *rev;        /* plain sockets: our own read event (see conn_rawread) */
    nghttp2_session *h2;
    enum conn_mode mode;
    struct sr_req *reqs;
    bool in_recv;     /* inside nghttp2_session_mem_recv */
    bool want_flush;  /* a response was queued while in_recv */
    sr_sockout out;   /* the flush in progress */
    bool out_full;    /* the flush stopped at OUT_HIGH with frames left */
    bool closing;     /* close once output is drained */
    bool drain_final; /* the final GOAWAY (last stream taken) is submitted */
    char peer[64];
    bool tls;
    int cert_state; /* 0 unknown, 1 verified client certificate, -1 none */
    char cert_cn[128];
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

struct sr_http_server {
    struct event_base *base;
    struct evconnlistener *listener;
    struct sr_http_server_opts opts;
    int port;
    size_t inflight;
    struct conn *conns;
    struct sockaddr_storage addr; /* bound address, for resume_listening */
    int addrlen;
    size_t nconns;
    size_t body_bytes;                /* request body bytes buffered, all connections */
    bool starved;                     /* some stream waits for body budget */
    struct ev_token_bucket_cfg *rate; /* opts.rate_Bps, or NULL */
    sr_flushq flushq;                 /* connections to flush at the end of the turn */
    bool draining;                    /* the shutdown notice went out (goaway) */
    int64_t drain_grace_mono;         /* the final GOAWAY to all by then (drain_step) */
    struct linger_fd *lingers;        /* closed connections still read until EOF */
    size_t nlinger;
};

/* A connection closed after the final GOAWAY: our side is shut (FIN sent)
 * and whatever the client still sends is read and dropped until it closes
 * too, or LINGER_MS. Closing a socket with unread bytes would reset it, and a
 * reset can destroy what is still on its way to the client: the last
 * responses and the GOAWAY that says which streams were taken. */
struct linger_fd {
    struct linger_fd *prev, *next;
    sr_http_server *srv;
    struct event *ev;
    evutil_socket_t fd;
    int64_t until; /* monotonic ms */
};

#define LINGER_MS 1000
/* How long after the notice the clients that have not answered its PING get
 * the final GOAWAY anyway (a round trip, even a GEO one, is well within). */
#define DRAIN_GRACE_MS 1000
/* The PING sent with the shutdown notice: its ACK says the client has read
 * the notice, so every stream it opened is in, and the final GOAWAY can name
 * the last one (RFC 9113 section 6.8: wait a round trip in between). */
static const uint8_t DRAIN_PING[8] = {'s', 'r', '-', 'd', 'r', 'a', 'i', 'n'};

static void conn_free(struct conn *c);
static void upload_done(sr_req *r);
static void upload_start(struct conn *c, sr_req *r);
static int conn_flush(struct conn *c);
static void conn_flush_later(struct conn *c);
static void stream_done(sr_req *r);
static void conn_read_enable(struct conn *c, bool on);
static void h1_process(struct conn *c);

/* ---- requests ------------------------------------------------------------------ */

#define UPLOAD_WINDOW0 (16 << 10) /* with upload slots: every stream's initial window */
#define UPLOAD_WINDOW (1 << 20)   /* a granted stream's window; every stream's without */

static sr_req *req_new(struct conn *c)
{
    sr_req *r = calloc(1, sizeof(*r));
    if (!r) {
        return NULL;
    }
    r->conn = c;
    r->srv = c->srv;
    sr_buf_init(&r->hdrs, c->srv->opts.max_header_list + 1024);
    sr_buf_init(&r->body, c->srv->opts.max_body);
    r->declared_len = -1;
    r->start_mono = sr_mono_ms();
    r->next = c->reqs;
    if (c->reqs) {
        c->reqs->prev = r;
    }
    c->reqs = r;
    return r;
}

static void req_unlink(sr_req *r)
{
    struct conn *c = r->conn;
    if (!c) {
        return;
    }
    upload_done(r);
    if (r->unconsumed && c->h2) {
        /* the stream is gone: its bytes still count against the connection */
        nghttp2_session_consume_connection(c->h2, r->unconsumed);
        r->unconsumed = 0;
    }
    if (r->prev) {
        r->prev->next = r->next;
    } else {
        c->reqs = r->next;
    }
    if (r->next) {
        r->next->prev = r->prev;
    }
    r->prev = r->next = NULL;
    r->conn = NULL;
}

static void req_free(sr_req *r)
{
    if (!r) {
        return;
    }
    req_unlink(r);
    if (r->srv) {
        r->srv->body_bytes -= r->counted;
    }
    if (r->done_fn) {
        r->done_fn(r->done_arg);
    }
    sr_buf_free(&r->hdrs);
    sr_buf_free(&r->body);
    sr_buf_free(&r->stream);
    free(r->resp_mem);
    free(r);
}

/* The stream died before a response: tell the owner, then free. */
static void req_abort(sr_req *r)
{
    sr_http_server *srv = r->conn ? r->conn->srv : NULL;
    req_unlink(r);
    if (r->dispatched && !r->responded) {
        if (srv && srv->inflight > 0) {
            srv->inflight--;
        }
        if (r->on_abort) {
            r->on_abort(r, r->data);
        }
    } else if (r->streaming && !r->stream_done) {
        stream_done(r);
        if (r->on_abort) {
            r->on_abort(r, r->data); /* its writer must stop */
        }
    }
    req_free(r);
}

/* Headers are stored as [u32 name length][name, lowercased]\0[u32 value
 * length][value]\0, so a lookup compares lengths first and skips entries
 * without scanning them (it runs a dozen times per request). */
static int req_add_header(sr_req *r, const uint8_t *name, size_t nlen, const uint8_t *value,
                          size_t vlen)
{
    if (r->nhdrs >= MAX_HEADERS) {
        return SR_ERR_TOOBIG;
    }
    if (nlen > UINT32_MAX || vlen > UINT32_MAX) {
        return SR_ERR_TOOBIG;
    }
    int rv = sr_buf_reserve(&r->hdrs, 8 + nlen + vlen + 2);
    if (rv) {
        return rv;
    }
    uint32_t n32 = (uint32_t)nlen, v32 = (uint32_t)vlen;
    memcpy(r->hdrs.data + r->hdrs.len, &n32, 4);
    r->hdrs.len += 4;
    for (size_t i = 0; i < nlen; i++) {
        char ch = (char)name[i];
        r->hdrs.data[r->hdrs.len++] = (uint8_t)(ch >= 'A' && ch <= 'Z' ? ch + 32 : ch);
    }
    r->hdrs.data[r->hdrs.len++] = 0;
    memcpy(r->hdrs.data + r->hdrs.len, &v32, 4);
    r->hdrs.len += 4;
    if (vlen) {
        memcpy(r->hdrs.data + r->hdrs.len, value, vlen);
    }
    r->hdrs.len += vlen;
    r->hdrs.data[r->hdrs.len++] = 0;
    r->nhdrs++;
    return 0;
}

/* |name| in lowercase, as every caller passes it (stored names are). */
const char *sr_req_header(const sr_req *r, const char *name)
{
    if (!r->hdrs.data) {
        return NULL;
    }
    size_t want = strlen(name);
    const uint8_t *p = r->hdrs.data;
    const uint8_t *end = p + r->hdrs.len;
    while (p < end) {
        uint32_t nlen, vlen;
        memcpy(&nlen, p, 4);
        const uint8_t *n = p + 4;
        memcpy(&vlen, n + nlen + 1, 4);
        const uint8_t *v = n + nlen + 1 + 4;
        if (nlen == want && !memcmp(n, name, want)) {
            return (const char *)v;
        }
        p = v + vlen + 1;
    }
    return NULL;
}

const char *sr_req_method(const sr_req *r)
{
    const char *m = sr_req_header(r, ":method");
    return m ? m : "";
}

const char *sr_req_path(const sr_req *r)
{
    const char *p = sr_req_header(r, ":path");
    return p ? p : "";
}

const uint8_t *sr_req_body(const sr_req *r, size_t *len)
{
    *len = r->body.len;
    return r->body.data ? r->body.data : (const uint8_t *)"";
}

void sr_req_set_data(sr_req *r, void *data)
{
    r->data = data;
}

void sr_req_set_abort(sr_req *r, void (*on_abort)(sr_req *, void *))
{
    r->on_abort = on_abort;
}

void sr_req_set_done(sr_req *r, void (*fn)(void *), void *arg)
{
    r->done_fn = fn;
    r->done_arg = arg;
}

const char *sr_req_client_cert(const sr_req *r)
{
    struct conn *c = r->conn;
    if (!c || !c->tls) {
        return NULL;
    }
    if (c->cert_state == 0) {
        c->cert_state = -1;
        SSL *ssl = bufferevent_openssl_get_ssl(c->bev);
        X509 *x = ssl ? SSL_get1_peer_certificate(ssl) : NULL;
        if (x && SSL_get_verify_result(ssl) == X509_V_OK) {
            X509_NAME *name = X509_get_subject_name(x);
            if (name && X509_NAME_get_text_by_NID(name, NID_commonName, c->cert_cn,
                                                  (int)sizeof(c->cert_cn)) > 0) {
                c->cert_state = 1;
            }
        }
        X509_free(x);
    }
    return c->cert_state == 1 ? c->cert_cn : NULL;
}

const char *sr_req_peer(const sr_req *r)
{
    return r->conn ? r->conn->peer : "?";
}

int64_t sr_req_start_mono(const sr_req *r)
{
    return r->start_mono;
}

size_t sr_http_server_inflight(const sr_http_server *srv)
{
    return srv->inflight;
}

static void req_dispatch(sr_req *r)
{
    struct conn *c = r->conn;
    upload_done(r);
    r->dispatched = true;
    c->got_request = true;
    c->srv->inflight++;
    c->srv->opts.handler(r, c->srv->opts.arg);
}

/* ---- responses ------------------------------------------------------------------ */

/* Response bodies go out without nghttp2's copy (as in core_h2client.c): the
 * read callback sizes the frame with NGHTTP2_DATA_FLAG_NO_COPY, and
 * resp_send_data_cb appends the frame header and the body slice straight to
 * the connection's output buffer. */
static ssize_t resp_read_cb(nghttp2_session *s, int32_t sid, uint8_t *buf, size_t length,
                            uint32_t *flags, nghttp2_data_source *src, void *ud)
{
    (void)s;
    (void)sid;
    (void)buf;
    (void)ud;
    sr_req *r = src->ptr;
    size_t left = r->resp_len - r->resp_off;
    size_t n = left < length ? left : length;
    if (!n && r->streaming && !r->stream_done) {
        return NGHTTP2_ERR_DEFERRED; /* sr_req_stream_write resumes it */
    }
    *flags |= NGHTTP2_DATA_FLAG_NO_COPY;
    if (n == left && (!r->streaming || r->stream_done)) {
        *flags |= NGHTTP2_DATA_FLAG_EOF;
    }
    return (ssize_t)n;
}

static int resp_send_data_cb(nghttp2_session *s, nghttp2_frame *frame, const uint8_t *framehd,
                             size_t length, nghttp2_data_source *src, void *ud)
{
    (void)s;
    struct conn *c = ud;
    sr_req *r = src->ptr;
    if (sr_sockout_pending(&c->out) >= OUT_HIGH) {
        /* one mem_send call would otherwise emit every ready DATA frame of
         * every stream: leave the rest for the next flush */
        c->out_full = true;
        return NGHTTP2_ERR_WOULDBLOCK;
    }
    /* no padding is ever asked for, so the frame is header + payload */
    if (frame->data.padlen > 0 || length > r->resp_len - r->resp_off ||
        sr_sockout_add(&c->out, framehd, 9) != 0 ||
        (length && sr_sockout_add(&c->out, r->resp + r->resp_off, length) != 0)) {
        return NGHTTP2_ERR_CALLBACK_FAILURE;
    }
    r->resp_off += length;
    if (length && c->wu_credit < 4096) {
        c->wu_credit += 2; /* the client may answer it for the stream and the connection */
    }
    return 0;
}

static const char *status_text(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 202:
        return "Accepted";
    case 204:
        return "No Content";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 409:
        return "Conflict";
    case 411:
        return "Length Required";
    case 413:
        return "Content Too Large";
    case 422:
        return "Unprocessable Content";
    case 429:
        return "Too Many Requests";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    case 505:
        return "HTTP Version Not Supported";
    case 507:
        return "Insufficient Storage";
    default:
        return "Status";
    }
}

static int h1_respond(sr_req *r, int status, const struct sr_http_header *hdrs, size_t nhdrs)
{
    struct conn *c = r->conn;
    struct evbuffer *out = bufferevent_get_output(c->bev);
    evbuffer_add_printf(out, "HTTP/1.1 %d %s\r\ncontent-length: %zu\r\n", status,
                        status_text(status), r->resp_len);
    for (size_t i = 0; i < nhdrs; i++) {
        evbuffer_add_printf(out, "%s: %s\r\n", hdrs[i].name, hdrs[i].value);
    }
    if (r->h1_close) {
        evbuffer_add(out, "connection: close\r\n", 19);
    }
    evbuffer_add(out, "\r\n", 2);
    if (r->resp_len && strcmp(sr_req_method(r), "HEAD") != 0) {
        evbuffer_add(out, r->resp, r->resp_len);
    }
    bool close_after = r->h1_close;
    c->h1_req = NULL;
    req_free(r);
    if (close_after) {
        c->closing = true;
        conn_read_enable(c, false);
    } else {
        h1_process(c); /* a pipelined request may be waiting */
    }
    return 0;
}

/* Whether response header |name| is one of opts.never_index. */
static bool never_index(const sr_http_server *srv, const char *name)
{
    for (const char *const *p = srv->opts.never_index; p && *p; p++) {
        if (!strcmp(*p, name)) {
            return true;
        }
    }
    return false;
}

/* A response's header fields for nghttp2, in |nva| (room for MAX_HEADERS +
 * 2): :status, content-length |len| unless |len_str| is NULL (a streamed
 * body), then |hdrs|, opts.never_index ones as never-indexed literals. The
 * numbers are formatted into |status_str| and |len_str|. Returns how many. */
static size_t response_nv(const struct conn *c, nghttp2_nv *nva, int status,
                          char status_str[SR_FMT_I64_LEN], char len_str[SR_FMT_U64_LEN], size_t len,
                          const struct sr_http_header *hdrs, size_t nhdrs)
{
    size_t n = 0;
    nva[n++] = (nghttp2_nv){(uint8_t *)":status", (uint8_t *)status_str, 7,
                            sr_fmt_i64(status_str, status), NGHTTP2_NV_FLAG_NONE};
    if (len_str) {
        nva[n++] = (nghttp2_nv){(uint8_t *)"content-length", (uint8_t *)len_str, 14,
                                sr_fmt_u64(len_str, len), NGHTTP2_NV_FLAG_NONE};
    }
    for (size_t i = 0; i < nhdrs && n < MAX_HEADERS + 2; i++) {
        nva[n++] = (nghttp2_nv){(uint8_t *)hdrs[i].name, (uint8_t *)hdrs[i].value,
                                strlen(hdrs[i].name), strlen(hdrs[i].value),
                                never_index(c->srv, hdrs[i].name) ? NGHTTP2_NV_FLAG_NO_INDEX
                                                                  : NGHTTP2_NV_FLAG_NONE};
    }
    return n;
}

/* |mem|: a malloc'd block holding |body| that becomes ours, or NULL to copy
 * |body|. */
static int respond(sr_req *r, int status, const struct sr_http_header *hdrs, size_t nhdrs,
                   const void *body, size_t len, void *mem)
{
    if (r->responded) {
        free(mem);
        return SR_ERR_INVAL;
    }
    r->responded = true;
    struct conn *c = r->conn;
    if (c && r->dispatched && c->srv->inflight > 0) {
        c->srv->inflight--;
    }
    if (mem) {
        r->resp = (uint8_t *)body;
        r->resp_mem = mem;
    } else if (len) {
        r->resp = malloc(len);
        if (!r->resp) {
            if (c && c->mode == MODE_H2) {
                nghttp2_submit_rst_stream(c->h2, NGHTTP2_FLAG_NONE, r->stream_id,
                                          NGHTTP2_INTERNAL_ERROR);
                conn_flush(c);
            }
            return SR_ERR_NOMEM;
        }
        memcpy(r->resp, body, len);
        r->resp_mem = r->resp;
    }
    r->resp_len = len;
    if (!c) { /* the client went away while we worked */
        req_free(r);
        return 0;
    }
    if (c->mode == MODE_H1) {
        int rv = h1_respond(r, status, hdrs, nhdrs);
        if (!c->in_recv) {
            conn_flush(c);
        }
        return rv;
    }

    nghttp2_nv nva[MAX_HEADERS + 2];
    char status_str[SR_FMT_I64_LEN], len_str[SR_FMT_U64_LEN];
    size_t n = response_nv(c, nva, status, status_str, len_str, len, hdrs, nhdrs);
    /* no DATA frame for an empty body, nor ever for HEAD (RFC 9110 9.3.2: the
     * headers, content-length included, are those GET would get) */
    nghttp2_data_provider prd = {.source.ptr = r, .read_callback = resp_read_cb};
    int rv = nghttp2_submit_response(c->h2, r->stream_id, nva, n,
                                     len && strcmp(sr_req_method(r), "HEAD") ? &prd : NULL);
    if (rv != 0) {
        nghttp2_submit_rst_stream(c->h2, NGHTTP2_FLAG_NONE, r->stream_id, NGHTTP2_INTERNAL_ERROR);
    }
    if (c->in_recv) {
        c->want_flush = true;
    } else {
        conn_flush_later(c);
    }
    return rv ? SR_ERR_NOMEM : 0;
}

/* A streamed response is over (ended, or its stream gone): no longer in flight. */
static void stream_done(sr_req *r)
{
    r->stream_done = true;
    sr_http_server *srv = r->srv;
    if (r->dispatched && srv && srv->inflight > 0) {
        srv->inflight--;
    }
}

int sr_req_stream_begin(sr_req *r, int status, const struct sr_http_header *hdrs, size_t nhdrs)
{
    struct conn *c = r->conn;
    if (r->responded) {
        return SR_ERR_INVAL;
    }
    if (c && c->mode != MODE_H2) {
        return SR_ERR_UNSUPPORTED;
    }
    if (!c) {
        r->responded = true;
        req_free(r);
        return SR_ERR_IO;
    }
    /* in flight until its end (a draining server waits for it) */
    r->responded = true;
    r->streaming = true;
    sr_buf_init(&r->stream, SIZE_MAX / 2);
    nghttp2_nv nva[MAX_HEADERS + 2];
    char status_str[SR_FMT_I64_LEN];
    size_t n = response_nv(c, nva, status, status_str, NULL, 0, hdrs, nhdrs);
    nghttp2_data_provider prd = {.source.ptr = r, .read_callback = resp_read_cb};
    if (nghttp2_submit_response(c->h2, r->stream_id, nva, n, &prd) != 0) {
        nghttp2_submit_rst_stream(c->h2, NGHTTP2_FLAG_NONE, r->stream_id, NGHTTP2_INTERNAL_ERROR);
        stream_done(r); /* no abort to come: the caller hears it now */
        conn_flush_later(c);
        return SR_ERR_NOMEM;
    }
    return 0;
}

/* More of a streamed body is there (or its end): wake the DATA frames up. */
static void stream_kick(sr_req *r)
{
    struct conn *c = r->conn;
    if (!c || !c->h2) {
        return;
    }
    nghttp2_session_resume_data(c->h2, r->stream_id); /* fails harmlessly if not deferred */
    if (c->in_recv) {
        c->want_flush = true;
    } else {
        conn_flush_later(c);
    }
}

int sr_req_stream_write(sr_req *r, const void *p, size_t len)
{
    if (!r->streaming || r->stream_done) {
        return SR_ERR_INVAL;
    }
    if (r->resp_off == r->stream.len) { /* all sent: start over at the front */
        r->stream.len = 0;
        r->resp_off = 0;
    }
    if (sr_buf_append(&r->stream, p, len) != 0) {
        return SR_ERR_NOMEM;
    }
    r->resp = r->stream.data;
    r->resp_len = r->stream.len;
    stream_kick(r);
    return 0;
}

int sr_req_stream_end(sr_req *r)
{
    if (!r->streaming || r->stream_done) {
        return SR_ERR_INVAL;
    }
    stream_done(r);
    stream_kick(r);
    return 0;
}

int sr_req_respond(sr_req *r, int status, const struct sr_http_header *hdrs, size_t nhdrs,
                   const void *body, size_t len, bool take)
{
    return respond(r, status, hdrs, nhdrs, body, len, take ? (void *)body : NULL);
}

int sr_req_respond_within(sr_req *r, int status, const struct sr_http_header *hdrs, size_t nhdrs,
                          const void *body, size_t len, void *mem)
{
    return respond(r, status, hdrs, nhdrs, body, len, mem);
}

int sr_error_body(sr_buf *b, const char *msg, const char *detail_json)
{
    int rv = sr_buf_append(b, "{\"error\":", 9);
    rv = rv ? rv : sr_buf_append_json_str(b, msg, strlen(msg));
    return rv ? rv : sr_buf_appendf(b, ",\"detail\":%s}\n", detail_json ? detail_json : "null");
}

int sr_req_respond_error(sr_req *r, int status, const char *msg, const char *detail_json)
{
    sr_buf b;
    sr_buf_init(&b, 1 << 20);
    int rv = sr_error_body(&b, msg, detail_json);
    static const struct sr_http_header h[] = {{"content-type", "application/json"}};
    if (rv) {
        sr_buf_free(&b);
        return sr_req_respond(r, status, h, 1, "{\"error\":\"internal\"}\n", 21, false);
    }
    return sr_req_respond(r, status, h, 1, b.data, b.len, true);
}

/* ---- nghttp2 server callbacks ------------------------------------------------------- */

static int on_begin_headers(nghttp2_session *s, const nghttp2_frame *f, void *ud)
{
    struct conn *c = ud;
    if (f->hd.type != NGHTTP2_HEADERS || f->headers.cat != NGHTTP2_HCAT_REQUEST) {
        return 0;
    }
    sr_req *r = req_new(c);
    if (!r) {
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    }
    r->stream_id = f->hd.stream_id;
    nghttp2_session_set_stream_user_data(s, f->hd.stream_id, r);
    return 0;
}

static int on_header(nghttp2_session *s, const nghttp2_frame *f, const uint8_t *name, size_t nlen,
                     const uint8_t *value, size_t vlen, uint8_t flags, void *ud)
{
    (void)flags;
    (void)ud;
    if (f->hd.type != NGHTTP2_HEADERS) {
        return 0;
    }
    sr_req *r = nghttp2_session_get_stream_user_data(s, f->hd.stream_id);
    if (!r) {
        return 0;
    }
    if (req_add_header(r, name, nlen, value, vlen) != 0) {
        /* header list too large: refuse the stream, and after a few the
         * connection (HPACK bombs expand small frames into huge lists) */
        struct conn *c = r->conn;
        if (c && ++c->header_abuse >= HEADER_ABUSE_MAX) {
            nghttp2_session_terminate_session(s, NGHTTP2_ENHANCE_YOUR_CALM);
        }
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    }
    if (nlen == 14 && !memcmp(name, "content-length", 14)) {
        int64_t cl;
        if (sr_parse_i64(&cl, (const char *)value, vlen) == 0 && cl >= 0) {
            r->declared_len = cl;
        }
    }
    return 0;
}

static void reject_too_big(sr_req *r)
{
    r->too_big = true;
    r->dispatched = true;
    upload_done(r);
    r->conn->srv->inflight++;
    char detail[96];
    snprintf(detail, sizeof(detail), "{\"max_body_bytes\":%zu}", r->conn->srv->opts.max_body);
    sr_req_respond_error(r, 413, "request body too large", detail);
}

/* Too many control frames per second (PING, SETTINGS, PRIORITY, empty DATA
 * floods): the peer is costing us work for nothing. */
static bool ctrl_flood(struct conn *c)
{
    int64_t now = sr_mono_ms();
    if (now - c->ctrl_window_start >= 1000) {
        c->ctrl_window_start = now;
        c->ctrl_frames = 0;
    }
    return ++c->ctrl_frames > CTRL_FRAMES_PER_S;
}

static void conn_goaway_final(struct conn *c);

static int on_frame_recv(nghttp2_session *s, const nghttp2_frame *f, void *ud)
{
    struct conn *c = ud;
    if (f->hd.type == NGHTTP2_PING && (f->hd.flags & NGHTTP2_FLAG_ACK) && c->srv->draining &&
        !memcmp(f->ping.opaque_data, DRAIN_PING, sizeof(DRAIN_PING))) {
        /* the client has read the shutdown notice: the streams it opened
         * before are in, so the last one taken is final (flushed once
         * mem_recv returns) */
        conn_goaway_final(c);
        return 0;
    }
    bool ctrl = (f->hd.type == NGHTTP2_PING && !(f->hd.flags & NGHTTP2_FLAG_ACK)) ||
                (f->hd.type == NGHTTP2_SETTINGS && !(f->hd.flags & NGHTTP2_FLAG_ACK)) ||
                f->hd.type == NGHTTP2_PRIORITY ||
                (f->hd.type == NGHTTP2_DATA && f->hd.length == 0 &&
                 !(f->hd.flags & NGHTTP2_FLAG_END_STREAM));
    if (f->hd.type == NGHTTP2_WINDOW_UPDATE) {
        /* one that answers DATA we sent is flow control doing its work (a
         * client reading a lot sends many); the others are a flood's */
        if (c->wu_credit) {
            c->wu_credit--;
        } else {
            ctrl = true;
        }
    }
    if (ctrl && ctrl_flood(c)) {
        sr_log(SR_LOG_INFO, "h2 %s: control-frame flood, closing", c->peer);
        nghttp2_session_terminate_session(s, NGHTTP2_ENHANCE_YOUR_CALM);
        return 0;
    }
    sr_req *r = nghttp2_session_get_stream_user_data(s, f->hd.stream_id);
    if (!r || r->dispatched) {
        return 0;
    }
    if (f->hd.type == NGHTTP2_HEADERS && f->headers.cat == NGHTTP2_HCAT_REQUEST &&
        r->declared_len > (int64_t)r->conn->srv->opts.max_body) {
        reject_too_big(r);
        return 0;
    }
    if ((f->hd.type == NGHTTP2_HEADERS || f->hd.type == NGHTTP2_DATA) &&
        (f->hd.flags & NGHTTP2_FLAG_END_STREAM)) {
        req_dispatch(r);
    } else if (f->hd.type == NGHTTP2_HEADERS && f->headers.cat == NGHTTP2_HCAT_REQUEST &&
               r->conn->srv->opts.upload_slots &&
               (r->declared_len < 0 || r->declared_len > UPLOAD_WINDOW0)) {
        upload_start(r->conn, r);
    }
    return 0;
}

/* Gives |len| received bytes of |r| back to flow control: a stream waiting
 * for its grant, to the connection's window only, so that bodies holding
 * grants still get through; its own window waits (give_back). */
static void consume(nghttp2_session *h2, sr_req *r, size_t len)
{
    if (r->upload.state == SR_SLOT_WAITING) {
        nghttp2_session_consume_connection(h2, len);
        r->held += len;
    } else {
        nghttp2_session_consume(h2, r->stream_id, len);
    }
}

/* Upload slots (opts.upload_slots > 0). A stream may send UPLOAD_WINDOW0
 * bytes of body at once (a typical workload fits); a larger body (by
 * content-length, or of unknown length) gets a window of UPLOAD_WINDOW only
 * while fewer than upload_slots bodies of its connection hold one, else it
 * waits for one, oldest first. A sender that has many large bodies under way
 * at once then delivers them a few at a time, each whole in turn, rather than
 * all of them interleaved frame by frame and none whole until nearly all are.
 * Only the stream's window waits: its first bytes are given back to the
 * connection's window at once, so waiting streams never block granted ones. */
static void give_back(struct conn *c, sr_req *r)
{
    if (!c->h2) {
        return;
    }
    if (r->held) {
        nghttp2_session_consume_stream(c->h2, r->stream_id, r->held);
        r->held = 0;
    }
    if (!r->unconsumed) {
        return;
    }
    if (c->srv->body_bytes <= c->srv->opts.max_buffered) {
        nghttp2_session_consume(c->h2, r->stream_id, r->unconsumed);
        r->unconsumed = 0;
    } else {
        c->srv->starved = true;
    }
}

static void upload_grant(struct conn *c, sr_req *r)
{
    nghttp2_session_set_local_window_size(c->h2, NGHTTP2_FLAG_NONE, r->stream_id, UPLOAD_WINDOW);
    give_back(c, r);
    if (!c->in_recv) {
        conn_flush_later(c);
    }
}

static void upload_start(struct conn *c, sr_req *r)
{
    if (sr_slot_acquire(&c->uploads, &r->upload, r, 0)) { /* oldest first */
        upload_grant(c, r);
    }
}

/* The body is complete, refused or gone: its grant passes to the next. */
static void upload_done(sr_req *r)
{
    struct conn *c = r->conn;
    if (!c) {
        return;
    }
    bool waited = r->upload.state == SR_SLOT_WAITING;
    sr_slot *next = sr_slot_release(&c->uploads, &r->upload);
    if (waited) {
        give_back(c, r); /* what it sent within its first window */
    } else if (next) {
        upload_grant(c, next->owner);
    }
}

static int on_data_chunk(nghttp2_session *s, uint8_t flags, int32_t sid, const uint8_t *data,
                         size_t len, void *ud)
{
    (void)flags;
    (void)ud;
    struct conn *c = ud;
    sr_req *r = nghttp2_session_get_stream_user_data(s, sid);
    if (!r || r->dispatched) {
        nghttp2_session_consume_connection(s, len);
        return 0;
    }
    if (r->body.cap == 0 && r->declared_len > (int64_t)len &&
        r->declared_len <= (int64_t)REQ_PRESIZE_MAX) {
        /* size the body once from content-length instead of growing it by
         * doubling; only once data arrives, and capped, so a declared length
         * costs no more than the bytes that follow it could */
        if (sr_buf_reserve(&r->body, (size_t)r->declared_len) != 0) {
            nghttp2_session_consume_connection(s, len);
            reject_too_big(r);
            return 0;
        }
    }
    if (sr_buf_append(&r->body, data, len) != 0) {
        nghttp2_session_consume_connection(s, len);
        reject_too_big(r);
        return 0;
    }
    /* Give the window back only while the server-wide body budget allows:
     * past it, senders stall on flow control instead of growing our memory. */
    sr_http_server *srv = c->srv;
    r->counted += len;
    srv->body_bytes += len;
    if (srv->body_bytes > srv->opts.max_buffered) {
        r->unconsumed += len;
        srv->starved = true;
    } else {
        consume(s, r, len);
    }
    return 0;
}

/* Budget freed: return withheld window to waiting streams (outside callbacks). */
static void budget_release(sr_http_server *srv)
{
    if (!srv->starved || srv->body_bytes > srv->opts.max_buffered) {
        return;
    }
    srv->starved = false;
    for (struct conn *c = srv->conns; c; c = c->next) {
        bool any = false;
        for (sr_req *r = c->reqs; r; r = r->next) {
            if (r->unconsumed && c->h2 && !c->in_recv) {
                consume(c->h2, r, r->unconsumed);
                r->unconsumed = 0;
                any = true;
            } else if (r->unconsumed) {
                srv->starved = true;
            }
        }
        if (any && !c->in_recv) {
            conn_flush_later(c);
        }
    }
}

static int on_stream_close(nghttp2_session *s, int32_t sid, uint32_t code, void *ud)
{
    (void)code;
    (void)ud;
    sr_req *r = nghttp2_session_get_stream_user_data(s, sid);
    if (r) {
        nghttp2_session_set_stream_user_data(s, sid, NULL);
        req_abort(r);
    }
    return 0;
}

/* ---- connection I/O ------------------------------------------------------------- */

static int conn_flush(struct conn *c)
{
    if (c->mode == MODE_H2 && c->h2) {
        sr_sockout_begin(&c->out, c->bev, !c->tls && !c->srv->rate);
        c->out_full = false;
        while (sr_sockout_pending(&c->out) < OUT_HIGH) {
            const uint8_t *data;
            ssize_t n = nghttp2_session_mem_send(c->h2, &data);
            if (n < 0) {
                c->closing = true;
                break;
            }
            if (n == 0) {
                break;
            }
            if (sr_sockout_add(&c->out, data, (size_t)n) != 0) {
                c->closing = true;
                break;
            }
        }
        if (sr_sockout_pending(&c->out) >= OUT_HIGH) {
            c->out_full = true;
        }
        if (sr_sockout_end(&c->out) != 0) {
            c->closing = true;
        }
        if (!nghttp2_session_want_read(c->h2) && !nghttp2_session_want_write(c->h2)) {
            c->closing = true;
        }
        if (c->out_full && !c->closing &&
            evbuffer_get_length(bufferevent_get_output(c->bev)) == 0) {
            /* all of it went straight to the socket, so no write callback
             * will come: go on once this turn's other events ran */
            conn_flush_later(c);
        }
    }
    if (c->closing && evbuffer_get_length(bufferevent_get_output(c->bev)) == 0) {
        conn_free(c);
        return -1;
    }
    return 0;
}

/* Responses given outside the connection's own read callback (a target's
 * answer, a spool event) are flushed together once the loop turn's other
 * events have run: one write for all of them instead of one each. */
static void conn_flush_queued(void *c)
{
    conn_flush(c);
}

static void conn_flush_later(struct conn *c)
{
    sr_flushq_add(&c->srv->flushq, &c->out, c);
}

/* The shutdown notice: a GOAWAY with last stream 2^31-1, then (on_frame_send)
 * a PING whose ACK tells when the client has read it. */
static void conn_notice(struct conn *c)
{
    nghttp2_submit_shutdown_notice(c->h2);
}

/* The PING goes only once the notice has left: nghttp2 sends PINGs ahead of
 * GOAWAYs, and an ACK the client wrote before it read the notice would say
 * nothing. */
static int on_frame_send(nghttp2_session *s, const nghttp2_frame *f, void *ud)
{
    struct conn *c = ud;
    if (f->hd.type == NGHTTP2_GOAWAY && f->goaway.last_stream_id == INT32_MAX && c->srv->draining) {
        nghttp2_submit_ping(s, NGHTTP2_FLAG_NONE, DRAIN_PING);
    }
    return 0;
}

/* The final GOAWAY, naming the last stream taken: a client knows any later
 * one was never read. Streams up to it go on; the connection closes once
 * they are done (nghttp2 then wants neither to read nor to write). */
static void conn_goaway_final(struct conn *c)
{
    if (c->drain_final || c->mode != MODE_H2 || !c->h2) {
        return;
    }
    if (nghttp2_submit_goaway(c->h2, NGHTTP2_FLAG_NONE,
                              nghttp2_session_get_last_proc_stream_id(c->h2), NGHTTP2_NO_ERROR,
                              NULL, 0) == 0) {
        c->drain_final = true;
    }
}

static void linger_free(struct linger_fd *l)
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
    struct linger_fd *l = arg;
    char buf[4096];
    for (int i = 0; i < 16; i++) { /* a client that keeps sending waits for the next turn */
        ssize_t n = recv(fd, buf, sizeof(buf), 0);
        if (n > 0) {
            continue; /* dropped: nothing more is taken */
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
            break;
        }
        linger_free(l); /* the client closed its side (or the socket failed) */
        return;
    }
    if ((what & EV_TIMEOUT) || sr_mono_ms() >= l->until) {
        linger_free(l);
    }
}

/* Ends |c| gracefully: TLS gets its close_notify, then our side of the
 * socket is shut and a duplicate of it is read until the client closes
 * (linger_fd), while the bufferevent closes its own. false if that cannot be
 * set up, and the socket just closes. */
static bool conn_linger(struct conn *c)
{
    evutil_socket_t fd = bufferevent_getfd(c->bev);
    if (fd < 0) {
        return false;
    }
    if (c->tls) {
        SSL *ssl = bufferevent_openssl_get_ssl(c->bev);
        if (ssl) {
            SSL_shutdown(ssl); /* close_notify: the records end here, by intent */
        }
    }
    struct linger_fd *l = calloc(1, sizeof(*l));
    if (!l) {
        return false;
    }
    l->fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    l->ev =
        l->fd >= 0 ? event_new(c->srv->base, l->fd, EV_READ | EV_PERSIST, linger_read, l) : NULL;
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
    l->srv = c->srv;
    l->until = sr_mono_ms() + LINGER_MS;
    l->next = c->srv->lingers;
    if (l->next) {
        l->next->prev = l;
    }
    c->srv->lingers = l;
    c->srv->nlinger++;
    return true;
}

static int conn_start_h2(struct conn *c)
{
    nghttp2_session_callbacks *cbs;
    if (nghttp2_session_callbacks_new(&cbs) != 0) {
        return -1;
    }
    nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(cbs, on_header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, on_frame_recv);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, on_data_chunk);
    nghttp2_session_callbacks_set_send_data_callback(cbs, resp_send_data_cb);
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs, on_stream_close);
    nghttp2_session_callbacks_set_on_frame_send_callback(cbs, on_frame_send);
    nghttp2_option *opt;
    nghttp2_option_new(&opt);
    nghttp2_option_set_max_send_header_block_length(opt, 64 * 1024);
    nghttp2_option_set_no_auto_window_update(opt, 1); /* see on_data_chunk */
    nghttp2_option_set_max_continuations(opt, 8);
    nghttp2_option_set_stream_reset_rate_limit(opt, RST_BURST, RST_RATE);
    nghttp2_option_set_max_outbound_ack(opt, 1000);
    nghttp2_option_set_max_settings(opt, 32);
    int rv = nghttp2_session_server_new2(&c->h2, cbs, c, opt);
    nghttp2_option_del(opt);
    nghttp2_session_callbacks_del(cbs);
    if (rv != 0) {
        return -1;
    }
    nghttp2_settings_entry iv[] = {
        {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, c->srv->opts.max_streams},
        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE,
         c->srv->opts.upload_slots ? UPLOAD_WINDOW0 : UPLOAD_WINDOW},
        {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, (uint32_t)c->srv->opts.max_header_list},
    };
    nghttp2_submit_settings(c->h2, NGHTTP2_FLAG_NONE, iv, sizeof(iv) / sizeof(iv[0]));
    nghttp2_session_set_local_window_size(c->h2, NGHTTP2_FLAG_NONE, 0, 16 << 20);
    c->mode = MODE_H2;
    if (c->srv->draining) {
        conn_notice(c); /* taken in from the backlog after the drain began */
    }
    return 0;
}

static void conn_free(struct conn *c)
{
    c->srv->nconns--;
    sr_flushq_remove(&c->srv->flushq, &c->out);
    if (c->first_req_timer) {
        event_free(c->first_req_timer);
    }
    if (c->prev) {
        c->prev->next = c->next;
    } else {
        c->srv->conns = c->next;
    }
    if (c->next) {
        c->next->prev = c->prev;
    }
    for (sr_req *r = c->reqs; r; r = r->next) {
        r->upload.state = SR_SLOT_DONE; /* no grants on the way out */
    }
    sr_slots_reset(&c->uploads);
    while (c->reqs) {
        req_abort(c->reqs);
    }
    if (c->h2) {
        nghttp2_session_del(c->h2);
    }
    if (c->rev) {
        event_free(c->rev);
    }
    if (c->drain_final && evbuffer_get_length(bufferevent_get_output(c->bev)) == 0) {
        conn_linger(c); /* a graceful end: no reset */
    }
    bufferevent_free(c->bev);
    free(c);
}

/* ---- HTTP/1.1 (admin listeners) ---------------------------------------------------- */

/* RFC 9110 5.6.2: tchar. */
static bool is_tchar(unsigned char ch)
{
    return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
           (ch && strchr("!#$%&'*+-.^_`|~", ch));
}

static bool is_token(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (!is_tchar((unsigned char)s[i])) {
            return false;
        }
    }
    return n > 0;
}

/*
 * Parses an HTTP/1.1 request head (|head|: a writable, NUL-terminated copy of
 * |len| bytes ending in CRLF CRLF) into |r|'s headers. Returns 0, or the
 * status to refuse it with (400, or 505 for another major version) and |why|
 * naming what is wrong (RFC 9112): the request line is METHOD SP TARGET SP
 * HTTP/1.x with a token for a method and a path (or "*") for a target, field
 * names are tokens, values hold no control characters, content-length is
 * given once (or repeated with the same value), and there is no line folding.
 */
static int h1_parse_head(sr_req *r, char *head, size_t len, char *why, size_t whylen)
{
    if (memchr(head, 0, len)) { /* would hide the rest from the string functions */
        snprintf(why, whylen, "a NUL byte in the request head");
        return 400;
    }
    char *eol = strstr(head, "\r\n"); /* there is one: the head ends in CRLF CRLF */
    *eol = 0;
    char *sp1 = strchr(head, ' ');
    char *sp2 = sp1 ? strchr(sp1 + 1, ' ') : NULL;
    if (!sp1 || !sp2 || strchr(sp2 + 1, ' ')) {
        snprintf(why, whylen, "the request line is not METHOD SP TARGET SP HTTP-VERSION");
        return 400;
    }
    *sp1 = 0;
    *sp2 = 0;
    const char *method = head, *target = sp1 + 1, *version = sp2 + 1;
    if (!is_token(method, strlen(method))) {
        snprintf(why, whylen, "the method is not a token");
        return 400;
    }
    bool target_ok = target[0] == '/' || !strcmp(target, "*");
    for (const char *t = target; target_ok && *t; t++) {
        target_ok = (unsigned char)*t > 0x20 && (unsigned char)*t < 0x7f;
    }
    if (!target_ok) {
        snprintf(why, whylen, "the request target is not a path (origin form) or \"*\"");
        return 400;
    }
    if (strlen(version) != 8 || strncmp(version, "HTTP/", 5) != 0 || version[6] != '.' ||
        version[5] < '0' || version[5] > '9' || version[7] < '0' || version[7] > '9') {
        snprintf(why, whylen, "the version is not HTTP/DIGIT.DIGIT");
        return 400;
    }
    if (version[5] != '1') {
        snprintf(why, whylen, "HTTP/%c.%c is not supported here: HTTP/1.1 (or h2)", version[5],
                 version[7]);
        return 505;
    }
    r->h1_close = version[7] == '0';
    if (req_add_header(r, (const uint8_t *)":method", 7, (const uint8_t *)method, strlen(method)) ||
        req_add_header(r, (const uint8_t *)":path", 5, (const uint8_t *)target, strlen(target))) {
        snprintf(why, whylen, "too many header fields");
        return 400;
    }
    const char *clen = NULL;
    char *p = eol + 2;
    for (int line = 2; strncmp(p, "\r\n", 2) != 0; line++) {
        eol = strstr(p, "\r\n");
        *eol = 0;
        if (*p == ' ' || *p == '\t') {
            snprintf(why, whylen, "line %d: obsolete line folding", line);
            return 400;
        }
        char *colon = strchr(p, ':');
        if (!colon || !is_token(p, (size_t)(colon - p))) {
            snprintf(why, whylen, "line %d: not NAME: VALUE with a token for a name", line);
            return 400;
        }
        *colon = 0;
        char *v = colon + 1;
        while (*v == ' ' || *v == '\t') {
            v++;
        }
        size_t vl = strlen(v);
        while (vl && (v[vl - 1] == ' ' || v[vl - 1] == '\t')) {
            v[--vl] = 0;
        }
        if (!nghttp2_check_header_value((const uint8_t *)v, vl)) { /* RFC 9110 5.5 */
            snprintf(why, whylen, "line %d: a control character in the value of %.40s", line, p);
            return 400;
        }
        if (!strcasecmp(p, "content-length")) {
            if (clen && strcmp(clen, v) != 0) {
                snprintf(why, whylen, "line %d: a second content-length, not the same", line);
                return 400;
            }
            clen = v;
        }
        if (req_add_header(r, (const uint8_t *)p, strlen(p), (const uint8_t *)v, vl) != 0) {
            snprintf(why, whylen, "line %d: too many header fields", line);
            return 400;
        }
        p = eol + 2;
    }
    return 0;
}

/* Parses one request head from the input buffer if complete. */
static void h1_process(struct conn *c)
{
    struct evbuffer *in = bufferevent_get_input(c->bev);
    while (!c->h1_req && !c->closing) {
        size_t avail = evbuffer_get_length(in);
        if (avail == 0) {
            return;
        }
        struct evbuffer_ptr end = evbuffer_search(in, "\r\n\r\n", 4, NULL);
        if (end.pos < 0) {
            if (avail > H1_MAX_HEAD) {
                evbuffer_add_printf(bufferevent_get_output(c->bev),
                                    "HTTP/1.1 431 Request Header Fields Too Large\r\n"
                                    "content-length: 0\r\nconnection: close\r\n\r\n");
                c->closing = true;
            }
            return;
        }
        size_t head_len = (size_t)end.pos + 4;
        char *head = malloc(head_len + 1);
        if (!head) {
            c->closing = true;
            return;
        }
        evbuffer_copyout(in, head, head_len);
        head[head_len] = 0;
        sr_req *r = req_new(c);
        if (!r) {
            free(head);
            c->closing = true;
            return;
        }
        char why[120];
        int bad = h1_parse_head(r, head, head_len, why, sizeof(why));
        free(head);
        evbuffer_drain(in, head_len);
        c->h1_req = r;
        const char *conn_hdr = sr_req_header(r, "connection");
        if (conn_hdr && !strcasecmp(conn_hdr, "close")) {
            r->h1_close = true;
        }
        if (bad) {
            r->h1_close = true;
            r->dispatched = true;
            c->srv->inflight++;
            sr_req_respond_error(r, bad, why, NULL);
            return;
        }
        const char *te = sr_req_header(r, "transfer-encoding");
        const char *cl = sr_req_header(r, "content-length");
        int64_t clen = 0;
        if (te) {
            r->h1_close = true;
            r->dispatched = true;
            c->srv->inflight++;
            sr_req_respond_error(r, 501, "chunked request bodies are not supported here", NULL);
            return;
        }
        if (cl && (sr_parse_i64(&clen, cl, strlen(cl)) != 0 || clen < 0)) {
            r->h1_close = true;
            r->dispatched = true;
            c->srv->inflight++;
            sr_req_respond_error(r, 400, "bad content-length", NULL);
            return;
        }
        if (clen > (int64_t)c->srv->opts.max_body) {
            r->h1_close = true;
            reject_too_big(r);
            return;
        }
        r->declared_len = clen;
        c->h1_reading_body = true;
        break;
    }
    if (c->h1_req && c->h1_reading_body) {
        sr_req *r = c->h1_req;
        size_t need = (size_t)r->declared_len - r->body.len;
        size_t avail = evbuffer_get_length(in);
        size_t n = avail < need ? avail : need;
        if (n) {
            if (sr_buf_reserve(&r->body, n) != 0) {
                c->closing = true;
                return;
            }
            evbuffer_remove(in, r->body.data + r->body.len, n);
            r->body.len += n;
        }
        if (r->body.len == (size_t)r->declared_len) {
            c->h1_reading_body = false;
            req_dispatch(r);
        }
    }
}

static void conn_eventcb(struct bufferevent *bev, short events, void *arg);

/* Hands |n| received bytes to nghttp2 (in_recv set by the caller). False if
 * the session failed: the connection is then closing (or already freed). */
static bool h2_feed(struct conn *c, const uint8_t *p, size_t n)
{
    ssize_t rv = nghttp2_session_mem_recv(c->h2, p, n);
    if (rv < 0) {
        sr_log(SR_LOG_DEBUG, "h2 %s: %s", c->peer, nghttp2_strerror((int)rv));
        c->in_recv = false;
        c->closing = true;
        conn_read_enable(c, false);
        conn_flush(c);
        return false;
    }
    return true;
}

/* After a read's bytes went through nghttp2: one flush for all the
 * responses it produced, and backpressure. */
static void h2_input_done(struct conn *c)
{
    c->in_recv = false;
    c->want_flush = false;
    sr_http_server *srv = c->srv;
    if (conn_flush(c) == 0 && evbuffer_get_length(bufferevent_get_output(c->bev)) > 4 * OUT_HIGH) {
        /* the peer is not reading what we send: stop reading what it sends */
        conn_read_enable(c, false);
    }
    budget_release(srv);
}

static void conn_readcb(struct bufferevent *bev, void *arg)
{
    struct conn *c = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    if (c->mode == MODE_DETECT) {
        size_t avail = evbuffer_get_length(in);
        size_t n = avail < H2_PREFACE_LEN ? avail : H2_PREFACE_LEN;
        unsigned char head[H2_PREFACE_LEN];
        evbuffer_copyout(in, head, n);
        if (memcmp(head, h2_preface, n) != 0) {
            if (c->srv->opts.allow_http1) {
                c->mode = MODE_H1;
            } else {
                /* Say what this port speaks instead of a bare reset. */
                static const char msg[] =
                    "HTTP/1.1 505 HTTP Version Not Supported\r\n"
                    "content-type: text/plain\r\ncontent-length: 59\r\n"
                    "connection: close\r\n\r\n"
                    "this port speaks HTTP/2 only (prior knowledge or ALPN h2)\r\n";
                evbuffer_add(bufferevent_get_output(bev), msg, sizeof(msg) - 1);
                c->closing = true;
                conn_read_enable(c, false);
                conn_flush(c);
                return;
            }
        } else if (n < H2_PREFACE_LEN) {
            return; /* wait for the rest of the preface */
        } else if (conn_start_h2(c) != 0) {
            conn_free(c);
            return;
        }
    }
    if (c->mode == MODE_H1) {
        h1_process(c);
        conn_flush(c);
        return;
    }
    /* HTTP/2: feed nghttp2 straight from libevent's buffer segments. */
    c->in_recv = true;
    while (evbuffer_get_length(in) > 0) {
        struct evbuffer_iovec v;
        if (evbuffer_peek(in, -1, NULL, &v, 1) < 1) {
            break;
        }
        if (!h2_feed(c, v.iov_base, v.iov_len)) {
            evbuffer_drain(in, evbuffer_get_length(in));
            return;
        }
        evbuffer_drain(in, v.iov_len);
    }
    h2_input_done(c);
}

/* Plain sockets are read here rather than by the bufferevent, which asks the
 * kernel how much is waiting (ioctl FIONREAD) before every read and copies
 * into an evbuffer: one recv() (sr_sock_read), handed to nghttp2 as is.
 * Until the protocol is known, and for HTTP/1.1, the bytes go through the
 * bufferevent's input buffer and conn_readcb() as before. */
static void conn_rawread(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;
    if (what & EV_TIMEOUT) {
        event_del(c->rev); /* as a bufferevent stops reading on its timeout */
        conn_eventcb(c->bev, BEV_EVENT_READING | BEV_EVENT_TIMEOUT, c);
        return;
    }
    const uint8_t *data;
    short events;
    long n = sr_sock_read(fd, &data, &events);
    if (n <= 0) {
        if (n < 0) {
            conn_eventcb(c->bev, BEV_EVENT_READING | events, c);
        }
        return;
    }
    if (c->mode != MODE_H2 || evbuffer_get_length(bufferevent_get_input(c->bev)) > 0) {
        if (evbuffer_add(bufferevent_get_input(c->bev), data, (size_t)n) != 0) {
            conn_free(c);
            return;
        }
        conn_readcb(c->bev, c);
        return;
    }
    c->in_recv = true;
    if (h2_feed(c, data, (size_t)n)) {
        h2_input_done(c);
    }
}

static void conn_read_enable(struct conn *c, bool on)
{
    if (!c->rev) {
        if (on) {
            bufferevent_enable(c->bev, EV_READ);
        } else {
            bufferevent_disable(c->bev, EV_READ);
        }
        return;
    }
    if (!on) {
        event_del(c->rev);
    } else if (!event_pending(c->rev, EV_READ, NULL)) {
        struct timeval idle = {c->srv->opts.idle_timeout_s, 0};
        event_add(c->rev, &idle);
    }
}

static bool conn_reading(struct conn *c)
{
    return c->rev ? event_pending(c->rev, EV_READ, NULL) != 0
                  : (bufferevent_get_enabled(c->bev) & EV_READ) != 0;
}

static void conn_writecb(struct bufferevent *bev, void *arg)
{
    (void)bev;
    struct conn *c = arg;
    sr_http_server *srv = c->srv;
    if (conn_flush(c) == 0 && !c->closing && !conn_reading(c)) {
        conn_read_enable(c, true);
    }
    budget_release(srv);
}

static void first_request_timeout(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct conn *c = arg;
    if (!c->got_request && !c->reqs) {
        sr_log(SR_LOG_DEBUG, "%s: no request within %d s, closing", c->peer, FIRST_REQUEST_S);
        conn_free(c);
    }
}

static void conn_eventcb(struct bufferevent *bev, short events, void *arg)
{
    (void)bev;
    struct conn *c = arg;
    if (events & BEV_EVENT_CONNECTED) {
        return; /* TLS handshake done; the first bytes decide the protocol */
    }
    if (events & BEV_EVENT_TIMEOUT) {
        if (c->reqs && !c->closing) {
            /* work still in flight: not idle */
            conn_read_enable(c, true);
            return;
        }
        if (c->mode == MODE_H2 && c->h2 && !c->closing) {
            nghttp2_session_terminate_session(c->h2, NGHTTP2_NO_ERROR);
            c->closing = true;
            conn_flush(c);
            return;
        }
    }
    conn_free(c);
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
    struct conn *c = calloc(1, sizeof(*c));
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
    bufferevent_setwatermark(c->bev, EV_WRITE, OUT_LOW, 0);
    /* up to IO_CHUNK per read and per write, not libevent's 16 KiB: a 64 KiB
     * body in one syscall and one loop turn instead of four of each */
    bufferevent_set_max_single_read(c->bev, IO_CHUNK);
    bufferevent_set_max_single_write(c->bev, IO_CHUNK);
    bufferevent_setcb(c->bev, conn_readcb, conn_writecb, conn_eventcb, c);
    if (!c->tls && !srv->rate) {
        c->rev =
            event_new(srv->base, bufferevent_getfd(c->bev), EV_READ | EV_PERSIST, conn_rawread, c);
    }
    if (c->rev) {
        /* the bufferevent never reads this socket, and conn_rawread() appends
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
    if (sr_flushq_init(&srv->flushq, base, conn_flush_queued) != 0) {
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
    srv->listener =
        evconnlistener_new_bind(base, on_accept, srv, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE,
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
     * sent: a draining gateway's clients saw that as a request cut mid-flight.
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
    struct conn *next;
    for (struct conn *c = srv->conns; c; c = next) {
        next = c->next; /* a flush may free |c| */
        if (c->mode != MODE_H2 || !c->h2 || c->drain_final) {
            continue;
        }
        if (final) {
            conn_goaway_final(c);
        } else {
            conn_notice(c);
        }
        conn_flush(c);
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
    for (const struct conn *c = srv->conns; c; c = c->next) {
        if (c->mode == MODE_H2) {
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
    srv->listener = evconnlistener_new_bind(srv->base, on_accept, srv,
                                            LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE, 1024,
                                            (struct sockaddr *)&srv->addr, srv->addrlen);
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
        conn_free(srv->conns);
    }
}

void sr_http_server_free(sr_http_server *srv)
{
    if (!srv) {
        return;
    }
    sr_http_server_stop_listening(srv);
    while (srv->conns) {
        conn_free(srv->conns);
    }
    while (srv->lingers) {
        linger_free(srv->lingers);
    }
    if (srv->rate) {
        ev_token_bucket_cfg_free(srv->rate); /* after the connections that use it */
    }
    sr_flushq_free(&srv->flushq);
    free(srv);
}
