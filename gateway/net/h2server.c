/*
 * The HTTP server's HTTP/2 connections (h2c with prior knowledge, or over
 * TLS) through nghttp2, and the requests on them. This is the hot path, kept
 * in one file so that the compiler sees it whole: the nghttp2 callbacks,
 * flow control and upload slots, responses and their DATA frames, flushes.
 * Accepting and the server's lifecycle are listener.c's; HTTP/1.1, which
 * shares the request object and the connection's input, is http1.c's.
 *
 * Shape (after nghttp2's libevent-server example, written anew):
 *   read callback -> nghttp2_session_mem_recv -> callbacks build sr_req
 *   -> handler called at END_STREAM -> sr_req_respond submits a response
 *   -> sr_conn_flush pulls frames with nghttp2_session_mem_send into the
 *      socket or the bufferevent, stopping above a watermark and resuming
 *      from the write callback (backpressure, STYLE habit 9).
 *
 * A response may be given from inside the handler (we are then inside
 * nghttp2_session_mem_recv) or later from any other event; in the first case
 * we only mark the connection and flush once mem_recv has returned, because
 * nghttp2 forbids re-entering the session from its callbacks (habit 10).
 */
#include "gateway/net/net_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>

/* Abuse limits (per connection). nghttp2 itself caps CONTINUATION frames per
 * header block, RST_STREAM rate (rapid reset, CVE-2023-44487), queued
 * SETTINGS/PING ACKs and flow-control window overflow; these add the rest. */
#define CTRL_FRAMES_PER_S 200        /* PING + SETTINGS + PRIORITY + empty DATA per second */
#define HEADER_ABUSE_MAX 4           /* oversized header lists before the connection goes */
#define RST_BURST 200                /* RST_STREAM token bucket: burst ... */
#define RST_RATE 50                  /* ... and tokens per second */
#define REQ_PRESIZE_MAX (256 * 1024) /* content-length trusted up to this for sizing */

static const char h2_preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
#define H2_PREFACE_LEN 24

/* The PING sent with the shutdown notice: its ACK says the client has read
 * the notice, so every stream it opened is in, and the final GOAWAY can name
 * the last one (RFC 9113 section 6.8: wait a round trip in between). */
static const uint8_t DRAIN_PING[8] = {'s', 'r', '-', 'd', 'r', 'a', 'i', 'n'};

static void upload_done(sr_req *r);
static void upload_start(struct sr_conn *c, sr_req *r);
static void conn_flush_later(struct sr_conn *c);
static void stream_done(sr_req *r);

/* ---- requests ------------------------------------------------------------------ */

#define UPLOAD_WINDOW0 (16 << 10) /* with upload slots: every stream's initial window */
#define UPLOAD_WINDOW (1 << 20)   /* a granted stream's window; every stream's without */

sr_req *sr_req_new(struct sr_conn *c)
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
    r->progress_mono = r->win_mono = r->start_mono;
    r->incomplete = true;
    c->incomplete++;
    r->next = c->reqs;
    if (c->reqs) {
        c->reqs->prev = r;
    }
    c->reqs = r;
    return r;
}

static void req_unlink(sr_req *r)
{
    struct sr_conn *c = r->conn;
    if (!c) {
        return;
    }
    upload_done(r);
    if (r->incomplete) {
        r->incomplete = false;
        c->incomplete--;
    }
    if (r->cut) {
        r->cut = false;
        c->cuts--;
    }
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

void sr_req_free(sr_req *r)
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
    sr_req_free(r);
}

/* |r| is whole, or refused: no longer waiting for its client. */
static void req_settled(sr_req *r)
{
    r->dispatched = true;
    if (r->incomplete && r->conn) {
        r->incomplete = false;
        r->conn->incomplete--;
    }
}

void sr_req_dispatch(sr_req *r)
{
    struct sr_conn *c = r->conn;
    upload_done(r);
    req_settled(r);
    c->got_request = true;
    c->srv->inflight++;
    c->srv->opts.handler(r, c->srv->opts.arg);
}

/* ---- responses ------------------------------------------------------------------ */

/* Response bodies go out without nghttp2's copy: the read callback sizes the
 * frame with NGHTTP2_DATA_FLAG_NO_COPY, and resp_send_data_cb appends the
 * frame header and the body slice straight to the flush's output. So a body
 * is copied once on its way out instead of twice (into nghttp2's frame
 * buffer, then into the output). */
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
    struct sr_conn *c = ud;
    sr_req *r = src->ptr;
    int rv = sr_sockout_data(&c->out, frame, framehd, length, r->resp, r->resp_off, r->resp_len);
    if (rv != 0) {
        return rv;
    }
    r->resp_off += length;
    if (length && c->wu_credit < 4096) {
        c->wu_credit += 2; /* the client may answer it for the stream and the connection */
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

/* A response's header fields for nghttp2, in |nva| (room for SR_MAX_HEADERS +
 * 2): :status, content-length |len| unless |len_str| is NULL (a streamed
 * body), then |hdrs|, opts.never_index ones as never-indexed literals. The
 * numbers are formatted into |status_str| and |len_str|. Returns how many. */
static size_t response_nv(const struct sr_conn *c, nghttp2_nv *nva, int status,
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
    for (size_t i = 0; i < nhdrs && n < SR_MAX_HEADERS + 2; i++) {
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
    struct sr_conn *c = r->conn;
    if (c && r->dispatched && c->srv->inflight > 0) {
        c->srv->inflight--;
    }
    if (mem) {
        r->resp = (uint8_t *)body;
        r->resp_mem = mem;
    } else if (len) {
        r->resp = malloc(len);
        if (!r->resp) {
            if (c && c->mode == SR_MODE_H2) {
                nghttp2_submit_rst_stream(c->h2, NGHTTP2_FLAG_NONE, r->stream_id,
                                          NGHTTP2_INTERNAL_ERROR);
                sr_conn_flush(c);
            }
            return SR_ERR_NOMEM;
        }
        memcpy(r->resp, body, len);
        r->resp_mem = r->resp;
    }
    r->resp_len = len;
    if (!c) { /* the client went away while we worked */
        sr_req_free(r);
        return 0;
    }
    if (c->mode == SR_MODE_H1) {
        int rv = c->srv->h1->respond(r, status, hdrs, nhdrs);
        if (!c->in_recv) {
            sr_conn_flush(c);
        }
        return rv;
    }

    nghttp2_nv nva[SR_MAX_HEADERS + 2];
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
    struct sr_conn *c = r->conn;
    if (r->responded) {
        return SR_ERR_INVAL;
    }
    if (c && c->mode != SR_MODE_H2) {
        return SR_ERR_UNSUPPORTED;
    }
    if (!c) {
        r->responded = true;
        sr_req_free(r);
        return SR_ERR_IO;
    }
    /* in flight until its end (a draining server waits for it) */
    r->responded = true;
    r->streaming = true;
    sr_buf_init(&r->stream, SIZE_MAX / 2);
    nghttp2_nv nva[SR_MAX_HEADERS + 2];
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
    struct sr_conn *c = r->conn;
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
    struct sr_conn *c = ud;
    if (f->hd.type != NGHTTP2_HEADERS || f->headers.cat != NGHTTP2_HCAT_REQUEST) {
        return 0;
    }
    if (c->srv->opts.max_incomplete && c->incomplete >= c->srv->opts.max_incomplete) {
        /* every request is authenticated only once whole: a client may keep
         * only so many waiting for their bodies on one connection */
        sr_server_count_refusal(c->srv, "unauth_streams");
        nghttp2_submit_rst_stream(s, NGHTTP2_FLAG_NONE, f->hd.stream_id, NGHTTP2_REFUSED_STREAM);
        return 0;
    }
    sr_req *r = sr_req_new(c);
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
    sr_req *r = sr_h2_header_owner(s, f);
    if (!r) {
        return 0;
    }
    if (sr_req_add_header(r, name, nlen, value, vlen) != 0) {
        /* header list too large: refuse the stream, and after a few the
         * connection (HPACK bombs expand small frames into huge lists) */
        struct sr_conn *c = r->conn;
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

/* Answers |r|, whose request is not whole, with an error now. On HTTP/2 its
 * stream is then reset (NO_ERROR: RFC 9113 section 8.1 lets a server tell a
 * client to stop sending a request it has answered): with |cut_now|, as soon
 * as the answer has left (on_frame_send: a client that stopped sending might
 * never end the stream, and would keep it and its connection busy); else
 * once the client had body_timeout_s to end it (sr_server_sweep), since some
 * clients take a reset stream for a failed one even after its answer. */
static void req_refuse(sr_req *r, int status, const char *msg, const char *detail, bool cut_now)
{
    struct sr_conn *c = r->conn;
    req_settled(r);
    upload_done(r);
    c->srv->inflight++;
    if (c->mode == SR_MODE_H1) {
        /* the rest of the body would be read as the next request */
        c->h1_reading_body = false;
        r->h1_close = true;
    } else if (cut_now || c->srv->opts.body_timeout_s > 0) {
        r->cut = true;
        r->cut_at = cut_now ? 0 : sr_mono_ms() + (int64_t)c->srv->opts.body_timeout_s * 1000;
        c->cuts++;
    }
    sr_req_respond_error(r, status, msg, detail);
}

void sr_req_reject_too_big(sr_req *r)
{
    r->too_big = true;
    char detail[96];
    snprintf(detail, sizeof(detail), "{\"max_body_bytes\":%zu}", r->conn->srv->opts.max_body);
    req_refuse(r, 413, "request body too large", detail, false);
}

void sr_server_count_refusal(sr_http_server *srv, const char *reason)
{
    if (srv->opts.metrics) {
        char labels[64];
        snprintf(labels, sizeof(labels), "reason=\"%s\"", reason);
        sr_metrics_add(srv->opts.metrics, "skyroute_preauth_refused_total", labels, 1);
    }
}

/* Too many control frames per second (PING, SETTINGS, PRIORITY, empty DATA
 * floods): the peer is costing us work for nothing. */
static bool ctrl_flood(struct sr_conn *c)
{
    int64_t now = sr_mono_ms();
    if (now - c->ctrl_window_start >= 1000) {
        c->ctrl_window_start = now;
        c->ctrl_frames = 0;
    }
    return ++c->ctrl_frames > CTRL_FRAMES_PER_S;
}

static int on_frame_recv(nghttp2_session *s, const nghttp2_frame *f, void *ud)
{
    struct sr_conn *c = ud;
    if (f->hd.type == NGHTTP2_PING && (f->hd.flags & NGHTTP2_FLAG_ACK) && c->srv->draining &&
        !memcmp(f->ping.opaque_data, DRAIN_PING, sizeof(DRAIN_PING))) {
        /* the client has read the shutdown notice: the streams it opened
         * before are in, so the last one taken is final (flushed once
         * mem_recv returns) */
        sr_conn_goaway_final(c);
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
    if (f->hd.type == NGHTTP2_HEADERS && f->headers.cat == NGHTTP2_HCAT_REQUEST) {
        r->head_done = true;
    }
    if (f->hd.type == NGHTTP2_HEADERS && f->headers.cat == NGHTTP2_HCAT_REQUEST &&
        r->declared_len > (int64_t)r->conn->srv->opts.max_body) {
        sr_req_reject_too_big(r);
        return 0;
    }
    if ((f->hd.type == NGHTTP2_HEADERS || f->hd.type == NGHTTP2_DATA) &&
        (f->hd.flags & NGHTTP2_FLAG_END_STREAM)) {
        sr_req_dispatch(r);
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
static void give_back(struct sr_conn *c, sr_req *r)
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

static void upload_grant(struct sr_conn *c, sr_req *r)
{
    nghttp2_session_set_local_window_size(c->h2, NGHTTP2_FLAG_NONE, r->stream_id, UPLOAD_WINDOW);
    give_back(c, r);
    if (!c->in_recv) {
        conn_flush_later(c);
    }
}

static void upload_start(struct sr_conn *c, sr_req *r)
{
    if (sr_slot_acquire(&c->uploads, &r->upload, r, 0)) { /* oldest first */
        upload_grant(c, r);
    }
}

/* The body is complete, refused or gone: its grant passes to the next. */
static void upload_done(sr_req *r)
{
    struct sr_conn *c = r->conn;
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
    struct sr_conn *c = ud;
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
            sr_req_reject_too_big(r);
            return 0;
        }
    }
    if (sr_buf_append(&r->body, data, len) != 0) {
        nghttp2_session_consume_connection(s, len);
        sr_req_reject_too_big(r);
        return 0;
    }
    /* Give the window back only while the server-wide body budget allows:
     * past it, senders stall on flow control instead of growing our memory. */
    sr_http_server *srv = c->srv;
    r->counted += len;
    c->rx_body += len;
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
    for (struct sr_conn *c = srv->conns; c; c = c->next) {
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

int sr_conn_flush(struct sr_conn *c)
{
    if (c->mode == SR_MODE_H2 && c->h2) {
        if (sr_sockout_flush(&c->out, c->h2, c->bev, !c->tls && !c->srv->rate)) {
            c->closing = true;
        }
        if (!nghttp2_session_want_read(c->h2) && !nghttp2_session_want_write(c->h2)) {
            c->closing = true;
        }
        if (c->out.full && !c->closing &&
            evbuffer_get_length(bufferevent_get_output(c->bev)) == 0) {
            /* all of it went straight to the socket, so no write callback
             * will come: go on once this turn's other events ran */
            conn_flush_later(c);
        }
    }
    if (c->closing && evbuffer_get_length(bufferevent_get_output(c->bev)) == 0) {
        sr_conn_free(c);
        return -1;
    }
    return 0;
}

/* Responses given outside the connection's own read callback (a target's
 * answer, a spool event) are flushed together once the loop turn's other
 * events have run: one write for all of them instead of one each. */
void sr_conn_flush_queued(void *c)
{
    sr_conn_flush(c);
}

static void conn_flush_later(struct sr_conn *c)
{
    sr_flushq_add(&c->srv->flushq, &c->out, c);
}

/* The shutdown notice: a GOAWAY with last stream 2^31-1, then (on_frame_send)
 * a PING whose ACK tells when the client has read it. */
void sr_conn_notice(struct sr_conn *c)
{
    nghttp2_submit_shutdown_notice(c->h2);
}

/* The PING goes only once the notice has left: nghttp2 sends PINGs ahead of
 * GOAWAYs, and an ACK the client wrote before it read the notice would say
 * nothing. And a request refused before its end is reset once its answer
 * has left. */
static int on_frame_send(nghttp2_session *s, const nghttp2_frame *f, void *ud)
{
    struct sr_conn *c = ud;
    if (f->hd.type == NGHTTP2_GOAWAY && f->goaway.last_stream_id == INT32_MAX && c->srv->draining) {
        nghttp2_submit_ping(s, NGHTTP2_FLAG_NONE, DRAIN_PING);
    }
    if (c->cuts && (f->hd.flags & NGHTTP2_FLAG_END_STREAM) &&
        (f->hd.type == NGHTTP2_DATA || f->hd.type == NGHTTP2_HEADERS)) {
        /* a request answered before its end (413, 408): the client is told
         * to stop sending it (RFC 9113 section 8.1), and the stream, which
         * it might never end, is closed */
        sr_req *r = nghttp2_session_get_stream_user_data(s, f->hd.stream_id);
        if (r && r->cut && !r->cut_at) {
            r->cut = false;
            c->cuts--;
            nghttp2_submit_rst_stream(s, NGHTTP2_FLAG_NONE, f->hd.stream_id, NGHTTP2_NO_ERROR);
        }
    }
    return 0;
}

/* The final GOAWAY, naming the last stream taken: a client knows any later
 * one was never read. Streams up to it go on; the connection closes once
 * they are done (nghttp2 then wants neither to read nor to write). */
void sr_conn_goaway_final(struct sr_conn *c)
{
    if (c->drain_final || c->mode != SR_MODE_H2 || !c->h2) {
        return;
    }
    if (nghttp2_submit_goaway(c->h2, NGHTTP2_FLAG_NONE,
                              nghttp2_session_get_last_proc_stream_id(c->h2), NGHTTP2_NO_ERROR,
                              NULL, 0) == 0) {
        c->drain_final = true;
    }
}

static int conn_start_h2(struct sr_conn *c)
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
    c->mode = SR_MODE_H2;
    if (c->srv->draining) {
        sr_conn_notice(c); /* taken in from the backlog after the drain began */
    }
    return 0;
}

void sr_conn_free(struct sr_conn *c)
{
    c->srv->nconns--;
    if (c->addr_counted) {
        sr_addrs_release(&c->srv->addrs, c->addr_key);
    }
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
        sr_linger_start(c->srv, c->bev, c->tls); /* a graceful end: no reset */
    }
    bufferevent_free(c->bev);
    free(c);
}

/* ---- reading ---------------------------------------------------------------------- */

/* Hands |n| received bytes to nghttp2 (in_recv set by the caller). False if
 * the session failed: the connection is then closing (or already freed). */
static bool h2_feed(struct sr_conn *c, const uint8_t *p, size_t n)
{
    ssize_t rv = nghttp2_session_mem_recv(c->h2, p, n);
    if (rv < 0) {
        sr_log(SR_LOG_DEBUG, "h2 %s: %s", c->peer, nghttp2_strerror((int)rv));
        c->in_recv = false;
        c->closing = true;
        sr_conn_read_enable(c, false);
        sr_conn_flush(c);
        return false;
    }
    return true;
}

/* After a read's bytes went through nghttp2: one flush for all the
 * responses it produced, and backpressure. */
static void h2_input_done(struct sr_conn *c)
{
    c->in_recv = false;
    c->want_flush = false;
    sr_http_server *srv = c->srv;
    if (sr_conn_flush(c) == 0 &&
        evbuffer_get_length(bufferevent_get_output(c->bev)) > 4 * SR_OUT_HIGH) {
        /* the peer is not reading what we send: stop reading what it sends */
        sr_conn_read_enable(c, false);
    }
    budget_release(srv);
}

void sr_conn_readcb(struct bufferevent *bev, void *arg)
{
    struct sr_conn *c = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    if (c->mode == SR_MODE_DETECT) {
        size_t avail = evbuffer_get_length(in);
        size_t n = avail < H2_PREFACE_LEN ? avail : H2_PREFACE_LEN;
        unsigned char head[H2_PREFACE_LEN];
        evbuffer_copyout(in, head, n);
        if (memcmp(head, h2_preface, n) != 0) {
            if (c->srv->opts.allow_http1) {
                c->mode = SR_MODE_H1;
            } else {
                /* Say what this port speaks instead of a bare reset. */
                static const char msg[] =
                    "HTTP/1.1 505 HTTP Version Not Supported\r\n"
                    "content-type: text/plain\r\ncontent-length: 59\r\n"
                    "connection: close\r\n\r\n"
                    "this port speaks HTTP/2 only (prior knowledge or ALPN h2)\r\n";
                evbuffer_add(bufferevent_get_output(bev), msg, sizeof(msg) - 1);
                c->closing = true;
                sr_conn_read_enable(c, false);
                sr_conn_flush(c);
                return;
            }
        } else if (n < H2_PREFACE_LEN) {
            return; /* wait for the rest of the preface */
        } else if (conn_start_h2(c) != 0) {
            sr_conn_free(c);
            return;
        }
    }
    if (c->mode == SR_MODE_H1) {
        c->srv->h1->process(c);
        sr_conn_flush(c);
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
 * bufferevent's input buffer and sr_conn_readcb(), which look at them more
 * than once (the preface, a request head arriving in pieces). */
void sr_conn_rawread(evutil_socket_t fd, short what, void *arg)
{
    struct sr_conn *c = arg;
    if (what & EV_TIMEOUT) {
        event_del(c->rev); /* as a bufferevent stops reading on its timeout */
        sr_conn_eventcb(c->bev, BEV_EVENT_READING | BEV_EVENT_TIMEOUT, c);
        return;
    }
    const uint8_t *data;
    short events;
    long n = sr_sock_read(fd, &data, &events);
    if (n <= 0) {
        if (n < 0) {
            sr_conn_eventcb(c->bev, BEV_EVENT_READING | events, c);
        }
        return;
    }
    if (c->mode != SR_MODE_H2 || evbuffer_get_length(bufferevent_get_input(c->bev)) > 0) {
        if (evbuffer_add(bufferevent_get_input(c->bev), data, (size_t)n) != 0) {
            sr_conn_free(c);
            return;
        }
        sr_conn_readcb(c->bev, c);
        return;
    }
    c->in_recv = true;
    if (h2_feed(c, data, (size_t)n)) {
        h2_input_done(c);
    }
}

void sr_conn_read_enable(struct sr_conn *c, bool on)
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

static bool conn_reading(struct sr_conn *c)
{
    return c->rev ? event_pending(c->rev, EV_READ, NULL) != 0
                  : (bufferevent_get_enabled(c->bev) & EV_READ) != 0;
}

void sr_conn_writecb(struct bufferevent *bev, void *arg)
{
    (void)bev;
    struct sr_conn *c = arg;
    sr_http_server *srv = c->srv;
    if (sr_conn_flush(c) == 0 && !c->closing && !conn_reading(c)) {
        sr_conn_read_enable(c, true);
    }
    budget_release(srv);
}

void sr_conn_eventcb(struct bufferevent *bev, short events, void *arg)
{
    (void)bev;
    struct sr_conn *c = arg;
    if (events & BEV_EVENT_CONNECTED) {
        return; /* TLS handshake done; the first bytes decide the protocol */
    }
    if (events & BEV_EVENT_TIMEOUT) {
        if (c->reqs && !c->closing) {
            /* work still in flight: not idle */
            sr_conn_read_enable(c, true);
            return;
        }
        if (c->mode == SR_MODE_H2 && c->h2 && !c->closing) {
            nghttp2_session_terminate_session(c->h2, NGHTTP2_NO_ERROR);
            c->closing = true;
            sr_conn_flush(c);
            return;
        }
    }
    sr_conn_free(c);
}

/* ---- requests that stopped sending ---------------------------------------------------- */

/* A request is handed to the handler, which authenticates it, only once it
 * is whole: until then its client is nobody, and what it holds (a stream,
 * the bytes of its body, the connection) must be given back if it stops
 * sending (slowloris, slow POST). Run from a timer a few times per
 * body_timeout_s, so the request path pays nothing: a sweep compares each
 * waiting body's length with the last one's.
 *
 * Not counted against a stream: time it waits for its connection's upload
 * slot, and, for a stream without a byte of body yet, time its connection delivered other bodies (a
 * client that sends its bodies one after another, as the gateway's own client does, opens their
 * streams at once). A stopped header block holds the whole connection, and
 * a connection this side stopped reading because its client does not read
 * what we send could not be told of a refusal: each is closed. Time a
 * stream waits for the server-wide body budget does count: the budget is
 * full only while bodies are held, and if they are held by clients that
 * stopped, refusing those is what frees it. Returns true if |c| was freed. */
static bool sweep_conn(struct sr_conn *c, int64_t now)
{
    const struct sr_http_server_opts *o = &c->srv->opts;
    int64_t limit = (int64_t)o->body_timeout_s * 1000;
    if (c->rx_body != c->rx_seen) {
        c->rx_seen = c->rx_body;
        c->rx_mono = now;
    }
    sr_req *next;
    for (sr_req *r = c->reqs; r; r = next) {
        next = r->next;
        if (r->cut && r->cut_at && now >= r->cut_at && c->h2) {
            r->cut = false;
            c->cuts--;
            nghttp2_submit_rst_stream(c->h2, NGHTTP2_FLAG_NONE, r->stream_id, NGHTTP2_NO_ERROR);
        }
        if (!r->incomplete) {
            continue;
        }
        if (r->body.len != r->seen_len) {
            if (!r->seen_len) { /* its first bytes: the rate counts from here */
                r->win_mono = now;
            }
            r->seen_len = r->body.len;
            r->progress_mono = now;
        }
        if (r->upload.state == SR_SLOT_WAITING) {
            r->progress_mono = r->win_mono = now;
            r->win_len = r->body.len;
            continue;
        }
        int64_t since = r->progress_mono;
        if (!r->body.len && c->rx_mono > since) {
            since = c->rx_mono;
        }
        if (now - since < limit) {
            if (o->body_min_Bps && !o->rate_Bps && r->body.len && now - r->win_mono >= limit) {
                uint64_t got = r->body.len - r->win_len;
                if (got * 1000 < (uint64_t)o->body_min_Bps * (uint64_t)(now - r->win_mono)) {
                    char d[128];
                    snprintf(d, sizeof(d), "{\"min_bytes_per_s\":%u,\"received\":%llu,\"in_s\":%d}",
                             o->body_min_Bps, (unsigned long long)got, o->body_timeout_s);
                    sr_log(SR_LOG_INFO, "%s: request body slower than %u B/s, refused", c->peer,
                           o->body_min_Bps);
                    sr_server_count_refusal(c->srv, "body_rate");
                    req_refuse(r, 408, "request body too slow", d, true);
                    continue;
                }
                r->win_mono = now;
                r->win_len = r->body.len;
            }
            continue;
        }
        if (!conn_reading(c)) {
            sr_log(SR_LOG_INFO,
                   "%s: request stopped for %d s on a connection that does not "
                   "read, closing",
                   c->peer, o->body_timeout_s);
            sr_server_count_refusal(c->srv, "body_timeout");
            sr_conn_free(c);
            return true;
        }
        if (!r->head_done) {
            sr_log(SR_LOG_INFO, "%s: header block stopped for %d s, closing", c->peer,
                   o->body_timeout_s);
            sr_server_count_refusal(c->srv, "header_timeout");
            if (c->h2) {
                nghttp2_session_terminate_session(c->h2, NGHTTP2_PROTOCOL_ERROR);
            }
            c->closing = true;
            return false;
        }
        char d[96];
        snprintf(d, sizeof(d), "{\"timeout_s\":%d,\"received\":%zu}", o->body_timeout_s,
                 r->body.len);
        sr_log(SR_LOG_INFO, "%s: request body stopped for %d s, refused", c->peer,
               o->body_timeout_s);
        sr_server_count_refusal(c->srv, "body_timeout");
        req_refuse(r, 408, "request body stopped arriving", d, true);
    }
    return false;
}

void sr_server_sweep(sr_http_server *srv)
{
    int64_t now = sr_mono_ms();
    struct sr_conn *next;
    for (struct sr_conn *c = srv->conns; c; c = next) {
        next = c->next; /* a flush may free |c| */
        if ((!c->incomplete && !c->cuts) || c->closing) {
            continue;
        }
        if (!sweep_conn(c, now)) {
            sr_conn_flush(c);
        }
    }
}
