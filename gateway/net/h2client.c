/*
 * HTTP/2 client pool: one multiplexed h2c connection per origin, reused by
 * every request to that origin, reconnected with exponential backoff.
 *
 * Every call ends in exactly one completion, delivered from the event loop
 * through a per-call event (never from inside sr_h2_request or from inside an
 * nghttp2 callback's caller). A completion says whether the request ever left
 * this process: a call that was never written, or that the server refused
 * with REFUSED_STREAM or excluded by GOAWAY's last-stream-id, is safe to send
 * elsewhere; one lost after it was written may have run (RFC 9113 section 8.7).
 */
#include "gateway/net/net_int.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event_struct.h> /* events embedded in a call: two allocations fewer per request */
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <nghttp2/nghttp2.h>
#include <sys/socket.h>

#define BACKOFF_MIN_MS 50
#define BACKOFF_MAX_MS 5000
#define MAX_RESP_HEADERS 64
#define MAX_RESP_BODY (256u << 20)
#define RESP_PRESIZE_MAX (16u << 20) /* content-length trusted up to this for sizing */

enum tc_state { TC_DOWN, TC_CONNECTING, TC_UP };

struct tconn;

struct sr_h2_call {
    sr_h2_pool *pool;
    struct tconn *tc;
    struct sr_h2_call *prev, *next; /* in tc->calls */
    int32_t stream_id;
    sr_h2_done done;
    void *arg;
    /* request */
    sr_buf req_hdrs; /* "name\0value\0" */
    size_t req_nhdrs;
    uint8_t *body;
    size_t body_len, body_off;
    sr_slot slot;     /* the body's turn to be sent, earliest deadline first */
    int64_t deadline; /* monotonic ms: the call times out then */
    /* response */
    int status;
    sr_buf resp_hdrs;
    size_t resp_nhdrs;
    sr_buf resp_body;
    /* completion */
    int error;
    bool sent;
    bool finished; /* completion scheduled */
    char detail[160];
    struct event timer;   /* event_assign()ed when the call is made */
    struct event done_ev; /* made active by call_finish() */
    /* sr_h2_set_progress(): the body handed over as it arrives */
    sr_h2_progress progress;
    struct event progress_ev; /* made active by on_data_chunk() */
};

struct tconn {
    sr_h2_pool *pool;
    struct tconn *next;
    char origin[160];
    char authority[160];
    struct sockaddr_storage addr;
    int addrlen;
    bool addr_ok;
    char addr_err[160];
    struct bufferevent *bev; /* connects and writes; reads until connected */
    struct event *rev;       /* then our own read event (see tc_rawread) */
    nghttp2_session *h2;
    enum tc_state state;
    int64_t retry_at_mono;
    int backoff_ms;
    int32_t goaway_last_id; /* -1 if no GOAWAY */
    struct sr_h2_call *calls;
    bool in_recv;
    sr_sockout out; /* the flush in progress */
    sr_slots slots; /* large request bodies under way */
};

struct sr_h2_pool {
    struct event_base *base;
    struct tconn *conns;
    sr_flushq flushq; /* connections to flush at the end of the turn */
};

static void tc_flush(struct tconn *tc);
static void tc_flush_later(struct tconn *tc);
static void tc_fail_all(struct tconn *tc, const char *why);
static void slot_release(struct tconn *tc, sr_slot *slot);

/* ---- calls ------------------------------------------------------------------- */

static void call_unlink(struct sr_h2_call *call)
{
    struct tconn *tc = call->tc;
    if (!tc) {
        return;
    }
    if (call->prev) {
        call->prev->next = call->next;
    } else {
        tc->calls = call->next;
    }
    if (call->next) {
        call->next->prev = call->prev;
    }
    call->prev = call->next = NULL;
    slot_release(tc, &call->slot);
    if (call->stream_id > 0 && tc->h2) {
        nghttp2_session_set_stream_user_data(tc->h2, call->stream_id, NULL);
    }
    call->tc = NULL;
}

static void call_free(struct sr_h2_call *call)
{
    call_unlink(call);
    event_del(&call->timer);
    event_del(&call->done_ev);
    if (call->progress) {
        event_del(&call->progress_ev);
    }
    sr_buf_free(&call->req_hdrs);
    sr_buf_free(&call->resp_hdrs);
    sr_buf_free(&call->resp_body);
    free(call->body);
    free(call);
}

/* Schedules the completion; detaches the call from its connection. */
static void call_finish(struct sr_h2_call *call, int error, const char *fmt, ...) SR_PRINTF(3, 4);

static void call_finish(struct sr_h2_call *call, int error, const char *fmt, ...)
{
    if (call->finished) {
        return;
    }
    call->finished = true;
    call->error = error;
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(call->detail, sizeof(call->detail), fmt, ap);
        va_end(ap);
    }
    call_unlink(call);
    event_del(&call->timer);
    event_active(&call->done_ev, 0, 0);
}

/* The response's headers as an array (pointing into |call|): their count. */
static size_t call_headers(const struct sr_h2_call *call, struct sr_http_header *hdrs)
{
    size_t n = 0;
    const char *p = (const char *)call->resp_hdrs.data;
    const char *end = p + call->resp_hdrs.len;
    while (p && p < end && n < MAX_RESP_HEADERS) {
        hdrs[n].name = p;
        p += strlen(p) + 1;
        hdrs[n].value = p;
        p += strlen(p) + 1;
        n++;
    }
    return n;
}

/* New body bytes of a call with a progress function: hands over what has
 * come and drops what it consumed from the front. */
static void call_progress(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct sr_h2_call *call = arg;
    if (call->finished || !call->resp_body.len) {
        return; /* the completion gets it all */
    }
    struct sr_http_header hdrs[MAX_RESP_HEADERS];
    struct sr_h2_response resp = {
        .sent = call->sent,
        .status = call->status,
        .headers = hdrs,
        .nheaders = call_headers(call, hdrs),
        .body = call->resp_body.data,
        .body_len = call->resp_body.len,
    };
    size_t used = call->progress(&resp, call->arg);
    if (used > call->resp_body.len) {
        used = call->resp_body.len;
    }
    if (used) {
        memmove(call->resp_body.data, call->resp_body.data + used, call->resp_body.len - used);
        call->resp_body.len -= used;
    }
}

void sr_h2_set_progress(sr_h2_call *call, sr_h2_progress fn)
{
    call->progress = fn;
    event_assign(&call->progress_ev, call->pool->base, -1, 0, call_progress, call);
}

static void call_deliver(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct sr_h2_call *call = arg;
    struct sr_http_header hdrs[MAX_RESP_HEADERS];
    size_t n = call_headers(call, hdrs);
    struct sr_h2_response resp = {
        .error = call->error,
        .sent = call->sent,
        .status = call->status,
        .headers = hdrs,
        .nheaders = n,
        .body = call->resp_body.data ? call->resp_body.data : (const uint8_t *)"",
        .body_len = call->resp_body.len,
        .detail = call->detail,
        .body_mem = call->resp_body.data ? &call->resp_body.data : NULL,
    };
    call->done(&resp, call->arg);
    call_free(call);
}

static void call_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct sr_h2_call *call = arg;
    struct tconn *tc = call->tc;
    if (tc && call->stream_id > 0 && tc->h2) {
        nghttp2_submit_rst_stream(tc->h2, NGHTTP2_FLAG_NONE, call->stream_id, NGHTTP2_CANCEL);
    }
    call_finish(call, SR_ERR_TIMEOUT, "no response from %s within the deadline",
                tc ? tc->origin : "target");
    if (tc) {
        tc_flush(tc);
    }
}

void sr_h2_cancel(sr_h2_call *call)
{
    if (!call) {
        return;
    }
    struct tconn *tc = call->tc;
    if (tc && call->stream_id > 0 && tc->h2) {
        nghttp2_submit_rst_stream(tc->h2, NGHTTP2_FLAG_NONE, call->stream_id, NGHTTP2_CANCEL);
    }
    call_unlink(call);
    call_free(call);
    if (tc) {
        tc_flush(tc);
    }
}

/* ---- nghttp2 client callbacks -------------------------------------------------- */

/* The next large body's turn (net_int.h): its data is resumed. */
static void slot_release(struct tconn *tc, sr_slot *slot)
{
    sr_slot *next = sr_slot_release(&tc->slots, slot);
    if (next && tc->h2) {
        struct sr_h2_call *call = next->owner;
        nghttp2_session_resume_data(tc->h2, call->stream_id);
    }
}

/* Request bodies go out without nghttp2's copy: the read callback only
 * sizes the frame (NGHTTP2_DATA_FLAG_NO_COPY) and send_data_cb appends the
 * 9-byte frame header and the slice of the body straight to the flush's
 * output. So a body is copied once on its way out instead of twice (into
 * nghttp2's frame buffer, then into the output). */
static ssize_t body_read_cb(nghttp2_session *s, int32_t sid, uint8_t *buf, size_t length,
                            uint32_t *flags, nghttp2_data_source *src, void *ud)
{
    (void)s;
    (void)sid;
    (void)buf;
    struct tconn *tc = ud;
    struct sr_h2_call *call = src->ptr;
    if (call->body_len > SR_SEND_SMALL &&
        !sr_slot_acquire(&tc->slots, &call->slot, call, call->deadline)) {
        return NGHTTP2_ERR_DEFERRED; /* a large body's turn comes (net_int.h) */
    }
    size_t left = call->body_len - call->body_off;
    size_t n = left < length ? left : length;
    *flags |= NGHTTP2_DATA_FLAG_NO_COPY;
    if (n == left) {
        *flags |= NGHTTP2_DATA_FLAG_EOF;
    }
    return (ssize_t)n;
}

static int send_data_cb(nghttp2_session *s, nghttp2_frame *frame, const uint8_t *framehd,
                        size_t length, nghttp2_data_source *src, void *ud)
{
    (void)s;
    struct tconn *tc = ud;
    struct sr_h2_call *call = src->ptr;
    int rv = sr_sockout_data(&tc->out, frame, framehd, length, call->body, call->body_off,
                             call->body_len);
    if (rv != 0) {
        return rv;
    }
    call->body_off += length;
    if (call->body_off == call->body_len) {
        slot_release(tc, &call->slot); /* the whole body is out */
    }
    return 0;
}

static int on_header(nghttp2_session *s, const nghttp2_frame *f, const uint8_t *name, size_t nlen,
                     const uint8_t *value, size_t vlen, uint8_t flags, void *ud)
{
    (void)flags;
    (void)ud;
    struct sr_h2_call *call = sr_h2_header_owner(s, f);
    if (!call) {
        return 0;
    }
    if (nlen == 7 && !memcmp(name, ":status", 7)) {
        int64_t st;
        if (sr_parse_i64(&st, (const char *)value, vlen) == 0) {
            call->status = (int)st;
        }
        return 0;
    }
    if (nlen == 14 && !memcmp(name, "content-length", 14) && call->resp_body.len == 0) {
        /* size the body buffer once instead of growing it by doubling (each
         * step a realloc, a copy and fresh pages); capped, and a lie only
         * costs address space the body would have been allowed anyway */
        int64_t cl;
        if (sr_parse_i64(&cl, (const char *)value, vlen) == 0 && cl > 0 &&
            cl <= (int64_t)RESP_PRESIZE_MAX && sr_buf_reserve(&call->resp_body, (size_t)cl) != 0) {
            return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
        }
    }
    if (call->resp_nhdrs >= MAX_RESP_HEADERS) {
        return 0;
    }
    if (sr_buf_append(&call->resp_hdrs, name, nlen) || sr_buf_append(&call->resp_hdrs, "", 1) ||
        sr_buf_append(&call->resp_hdrs, value, vlen) || sr_buf_append(&call->resp_hdrs, "", 1)) {
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    }
    call->resp_nhdrs++;
    return 0;
}

static int on_data_chunk(nghttp2_session *s, uint8_t flags, int32_t sid, const uint8_t *data,
                         size_t len, void *ud)
{
    (void)flags;
    (void)ud;
    struct sr_h2_call *call = nghttp2_session_get_stream_user_data(s, sid);
    if (!call) {
        return 0;
    }
    if (sr_buf_append(&call->resp_body, data, len) != 0) {
        nghttp2_submit_rst_stream(s, NGHTTP2_FLAG_NONE, sid, NGHTTP2_CANCEL);
        call_finish(call, SR_ERR_TOOBIG, "response body over %u bytes", MAX_RESP_BODY);
    } else if (call->progress) {
        event_active(&call->progress_ev, 0, 0); /* once, however many chunks came */
    }
    return 0;
}

static int on_frame_recv(nghttp2_session *s, const nghttp2_frame *f, void *ud)
{
    (void)s;
    struct tconn *tc = ud;
    if (f->hd.type == NGHTTP2_GOAWAY) {
        tc->goaway_last_id = f->goaway.last_stream_id;
    }
    return 0;
}

/* A request counts as sent once its last frame (END_STREAM) has left: a
 * target cannot have run a request whose body it never fully received, so a
 * call cut before that (LOS in the middle of a long upload, a crash) is safe
 * to place again anywhere. */
static int on_frame_send(nghttp2_session *s, const nghttp2_frame *f, void *ud)
{
    (void)ud;
    if ((f->hd.type == NGHTTP2_DATA || f->hd.type == NGHTTP2_HEADERS) &&
        (f->hd.flags & NGHTTP2_FLAG_END_STREAM)) {
        struct sr_h2_call *call = nghttp2_session_get_stream_user_data(s, f->hd.stream_id);
        if (call) {
            call->sent = true;
        }
    }
    return 0;
}

static int on_stream_close(nghttp2_session *s, int32_t sid, uint32_t code, void *ud)
{
    struct tconn *tc = ud;
    struct sr_h2_call *call = nghttp2_session_get_stream_user_data(s, sid);
    if (!call) {
        return 0;
    }
    if (code == NGHTTP2_NO_ERROR && call->status > 0) {
        call_finish(call, 0, NULL);
    } else if (code == NGHTTP2_REFUSED_STREAM) {
        call->sent = false;
        call_finish(call, SR_ERR_UNAVAILABLE, "%s refused the stream", tc->origin);
    } else {
        call_finish(call, SR_ERR_IO, "%s reset the stream (%s)", tc->origin,
                    nghttp2_http2_strerror(code));
    }
    return 0;
}

/* ---- connections -------------------------------------------------------------------- */

static void tc_close(struct tconn *tc)
{
    for (struct sr_h2_call *call = tc->calls; call; call = call->next) {
        call->slot.state = SR_SLOT_DONE; /* slots belong to the session going away */
    }
    sr_slots_reset(&tc->slots);
    if (tc->h2) {
        nghttp2_session_del(tc->h2);
        tc->h2 = NULL;
    }
    if (tc->rev) {
        event_free(tc->rev);
        tc->rev = NULL;
    }
    if (tc->bev) {
        bufferevent_free(tc->bev);
        tc->bev = NULL;
    }
    tc->state = TC_DOWN;
}

/* The connection is gone: complete every call on it. */
static void tc_fail_all(struct tconn *tc, const char *why)
{
    while (tc->calls) {
        struct sr_h2_call *call = tc->calls;
        if (call->sent && (tc->goaway_last_id < 0 || call->stream_id <= tc->goaway_last_id)) {
            call_finish(call, SR_ERR_IO, "connection to %s lost mid-flight: %s", tc->origin, why);
        } else if (call->stream_id > 0 && call->body_off > 0) {
            call->sent = false;
            call_finish(call, SR_ERR_UNAVAILABLE,
                        "connection to %s lost after %zu of %zu request bytes: %s", tc->origin,
                        call->body_off, call->body_len, why);
        } else {
            call->sent = false;
            call_finish(call, SR_ERR_UNAVAILABLE, "%s unreachable: %s", tc->origin, why);
        }
    }
}

static void tc_down(struct tconn *tc, const char *why)
{
    sr_log(SR_LOG_INFO, "target %s down: %s", tc->origin, why);
    tc_close(tc);
    tc->backoff_ms = tc->backoff_ms ? tc->backoff_ms * 2 : BACKOFF_MIN_MS;
    if (tc->backoff_ms > BACKOFF_MAX_MS) {
        tc->backoff_ms = BACKOFF_MAX_MS;
    }
    tc->retry_at_mono = sr_mono_ms() + tc->backoff_ms;
    tc_fail_all(tc, why);
}

static void tc_submit(struct tconn *tc, struct sr_h2_call *call)
{
    nghttp2_nv nva[MAX_RESP_HEADERS + 8];
    size_t n = 0;
    const char *p = (const char *)call->req_hdrs.data;
    const char *end = p + call->req_hdrs.len;
    while (p && p < end && n < MAX_RESP_HEADERS + 8) {
        const char *name = p;
        size_t nl = strlen(name);
        const char *value = name + nl + 1;
        size_t vl = strlen(value);
        nva[n++] = (nghttp2_nv){(uint8_t *)name, (uint8_t *)value, nl, vl, NGHTTP2_NV_FLAG_NONE};
        p = value + vl + 1;
    }
    nghttp2_data_provider prd = {.source.ptr = call, .read_callback = body_read_cb};
    int32_t sid = nghttp2_submit_request(tc->h2, NULL, nva, n, call->body ? &prd : NULL, call);
    if (sid < 0) {
        call->sent = false;
        call_finish(call, SR_ERR_UNAVAILABLE, "cannot submit to %s: %s", tc->origin,
                    nghttp2_strerror(sid));
        return;
    }
    call->stream_id = sid;
    call->sent = false; /* until END_STREAM leaves (on_frame_send) */
}

static void tc_flush(struct tconn *tc)
{
    if (tc->state != TC_UP || !tc->h2 || tc->in_recv) {
        return;
    }
    const char *err = sr_sockout_flush(&tc->out, tc->h2, tc->bev, true);
    if (err) {
        tc_down(tc, err);
        return;
    }
    size_t queued = evbuffer_get_length(bufferevent_get_output(tc->bev));
    if (!nghttp2_session_want_read(tc->h2) && !nghttp2_session_want_write(tc->h2) && queued == 0) {
        tc_down(tc, "session ended (GOAWAY)");
    } else if (tc->out.full && queued == 0) {
        tc_flush_later(tc); /* no write callback will come for the rest */
    }
}

/* Requests submitted during a loop turn go out together once its other
 * events have run: one write instead of one each. */
static void tc_flush_queued(void *tc)
{
    tc_flush(tc);
}

static void tc_flush_later(struct tconn *tc)
{
    sr_flushq_add(&tc->pool->flushq, &tc->out, tc);
}

/* Hands |n| received bytes to nghttp2 (the caller flushes what they
 * produced). False if the connection went down. */
static bool tc_feed(struct tconn *tc, const uint8_t *p, size_t n)
{
    tc->in_recv = true;
    ssize_t rv = nghttp2_session_mem_recv(tc->h2, p, n);
    tc->in_recv = false;
    if (rv < 0) {
        tc_down(tc, nghttp2_strerror((int)rv));
        return false;
    }
    return true;
}

static void tc_readcb(struct bufferevent *bev, void *arg)
{
    struct tconn *tc = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    while (tc->h2 && evbuffer_get_length(in) > 0) {
        struct evbuffer_iovec v;
        if (evbuffer_peek(in, -1, NULL, &v, 1) < 1) {
            break;
        }
        if (!tc_feed(tc, v.iov_base, v.iov_len)) {
            return;
        }
        evbuffer_drain(in, v.iov_len);
    }
    tc_flush(tc);
}

static void tc_eventcb(struct bufferevent *bev, short events, void *arg);

/* Once connected, the socket is read here rather than by the bufferevent,
 * which asks the kernel how much is waiting (ioctl FIONREAD) before every
 * read and copies into an evbuffer: one recv() (sr_sock_read), handed to
 * nghttp2 as is. */
static void tc_rawread(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    struct tconn *tc = arg;
    const uint8_t *data;
    short events;
    long n = sr_sock_read(fd, &data, &events);
    if (n < 0) {
        tc_eventcb(tc->bev, BEV_EVENT_READING | events, tc);
        return;
    }
    if (n > 0 && tc_feed(tc, data, (size_t)n)) {
        tc_flush(tc);
    }
}

static void tc_writecb(struct bufferevent *bev, void *arg)
{
    (void)bev;
    tc_flush(arg);
}

static int tc_session_new(struct tconn *tc)
{
    nghttp2_session_callbacks *cbs;
    if (nghttp2_session_callbacks_new(&cbs) != 0) {
        return -1;
    }
    nghttp2_session_callbacks_set_on_header_callback(cbs, on_header);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, on_data_chunk);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, on_frame_recv);
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs, on_stream_close);
    nghttp2_session_callbacks_set_on_frame_send_callback(cbs, on_frame_send);
    nghttp2_session_callbacks_set_send_data_callback(cbs, send_data_cb);
    int rv = nghttp2_session_client_new(&tc->h2, cbs, tc);
    nghttp2_session_callbacks_del(cbs);
    if (rv != 0) {
        return -1;
    }
    nghttp2_settings_entry iv[] = {
        {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, 16 << 20},
    };
    nghttp2_submit_settings(tc->h2, NGHTTP2_FLAG_NONE, iv, 2);
    nghttp2_session_set_local_window_size(tc->h2, NGHTTP2_FLAG_NONE, 0, 64 << 20);
    return 0;
}

static void tc_eventcb(struct bufferevent *bev, short events, void *arg)
{
    struct tconn *tc = arg;
    if (events & BEV_EVENT_CONNECTED) {
        int one = 1;
        setsockopt(bufferevent_getfd(bev), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        if (tc_session_new(tc) != 0) {
            tc_down(tc, "out of memory");
            return;
        }
        tc->state = TC_UP;
        tc->backoff_ms = 0;
        tc->goaway_last_id = -1;
        tc->rev =
            event_new(tc->pool->base, bufferevent_getfd(bev), EV_READ | EV_PERSIST, tc_rawread, tc);
        if (tc->rev && event_add(tc->rev, NULL) == 0) {
            bufferevent_disable(bev, EV_READ);
        } else if (tc->rev) {
            event_free(tc->rev);
            tc->rev = NULL;
        }
        for (struct sr_h2_call *c = tc->calls; c;) {
            struct sr_h2_call *next = c->next;
            if (c->stream_id == 0) {
                tc_submit(tc, c);
            }
            c = next;
        }
        tc_flush(tc);
        return;
    }
    const char *why = "connection closed";
    char buf[128];
    if (events & BEV_EVENT_ERROR) {
        int e = EVUTIL_SOCKET_ERROR();
        snprintf(buf, sizeof(buf), "%s", e ? evutil_socket_error_to_string(e) : "socket error");
        why = buf;
    } else if (events & BEV_EVENT_TIMEOUT) {
        why = "connect timeout";
    }
    tc_down(tc, why);
}

static int tc_connect(struct tconn *tc)
{
    /* made here, not by libevent's connect: its socket would be inherited by
     * every child the process starts (no close-on-exec) */
    evutil_socket_t fd = socket(tc->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return SR_ERR_UNAVAILABLE;
    }
    tc->bev = bufferevent_socket_new(tc->pool->base, fd, BEV_OPT_CLOSE_ON_FREE);
    if (!tc->bev) {
        evutil_closesocket(fd);
        return SR_ERR_NOMEM;
    }
    bufferevent_setcb(tc->bev, tc_readcb, tc_writecb, tc_eventcb, tc);
    bufferevent_setwatermark(tc->bev, EV_WRITE, SR_OUT_LOW, 0);
    /* up to 256 KiB per read and per write, not libevent's 16 KiB: a 64 KiB
     * envelope in one syscall and one loop turn instead of four of each */
    bufferevent_set_max_single_read(tc->bev, 256 * 1024);
    bufferevent_set_max_single_write(tc->bev, 256 * 1024);
    bufferevent_enable(tc->bev, EV_READ | EV_WRITE);
    struct timeval cto = {5, 0};
    bufferevent_set_timeouts(tc->bev, NULL, &cto);
    tc->state = TC_CONNECTING;
    tc->goaway_last_id = -1;
    if (bufferevent_socket_connect(tc->bev, (struct sockaddr *)&tc->addr, tc->addrlen) != 0) {
        /* immediate failure: eventcb is not called; report from the loop */
        return SR_ERR_UNAVAILABLE;
    }
    return 0;
}

static struct tconn *tc_get(sr_h2_pool *pool, const char *origin)
{
    for (struct tconn *tc = pool->conns; tc; tc = tc->next) {
        if (!strcmp(tc->origin, origin)) {
            return tc;
        }
    }
    struct tconn *tc = calloc(1, sizeof(*tc));
    if (!tc) {
        return NULL;
    }
    tc->pool = pool;
    tc->slots.max = SR_SEND_SLOTS;
    snprintf(tc->origin, sizeof(tc->origin), "%s", origin);
    const char *a = strstr(origin, "://");
    a = a ? a + 3 : origin;
    snprintf(tc->authority, sizeof(tc->authority), "%s", a);
    char *slash = strchr(tc->authority, '/');
    if (slash) {
        *slash = 0;
    }
    tc->addr_ok = sr_parse_hostport(&tc->addr, &tc->addrlen, tc->authority, tc->addr_err,
                                    sizeof(tc->addr_err)) == 0;
    tc->goaway_last_id = -1;
    tc->next = pool->conns;
    pool->conns = tc;
    return tc;
}

/* ---- public -------------------------------------------------------------------------- */

int sr_h2_pool_new(sr_h2_pool **out, struct event_base *base)
{
    sr_h2_pool *p = calloc(1, sizeof(*p));
    if (!p) {
        return SR_ERR_NOMEM;
    }
    p->base = base;
    if (sr_flushq_init(&p->flushq, base, tc_flush_queued) != 0) {
        free(p);
        return SR_ERR_NOMEM;
    }
    *out = p;
    return 0;
}

void sr_h2_pool_free(sr_h2_pool *pool)
{
    if (!pool) {
        return;
    }
    while (pool->conns) {
        struct tconn *tc = pool->conns;
        pool->conns = tc->next;
        while (tc->calls) {
            struct sr_h2_call *c = tc->calls;
            call_unlink(c);
            call_free(c);
        }
        tc_close(tc);
        free(tc);
    }
    sr_flushq_free(&pool->flushq);
    free(pool);
}

static int hdr_add(sr_buf *b, const char *name, const char *value)
{
    int rv = sr_buf_append(b, name, strlen(name) + 1);
    return rv ? rv : sr_buf_append(b, value, strlen(value) + 1);
}

/* The body is |owned| (taken, freed with the call) or, if NULL, copied from
 * |body|. On failure an owned body is freed too. */
static sr_h2_call *request_new(sr_h2_pool *pool, const char *origin, const char *method,
                               const char *path, const struct sr_http_header *hdrs, size_t nhdrs,
                               const void *body, uint8_t *owned, size_t len, int64_t timeout_ms,
                               sr_h2_done done, void *arg)
{
    struct tconn *tc = tc_get(pool, origin);
    struct sr_h2_call *call = tc ? calloc(1, sizeof(*call)) : NULL;
    if (!call) {
        free(owned);
        return NULL;
    }
    call->pool = pool;
    call->done = done;
    call->arg = arg;
    call->body = owned;
    call->body_len = owned ? len : 0;
    sr_buf_init(&call->req_hdrs, 1 << 16);
    sr_buf_init(&call->resp_hdrs, 1 << 16);
    sr_buf_init(&call->resp_body, MAX_RESP_BODY);
    event_assign(&call->done_ev, pool->base, -1, 0, call_deliver, call);
    evtimer_assign(&call->timer, pool->base, call_timeout_cb, call);
    call->deadline = sr_mono_ms() + timeout_ms;
    char lenstr[24];
    snprintf(lenstr, sizeof(lenstr), "%zu", len);
    bool has_body = body || owned;
    int rv = hdr_add(&call->req_hdrs, ":method", method);
    rv = rv ? rv : hdr_add(&call->req_hdrs, ":scheme", "http");
    rv = rv ? rv : hdr_add(&call->req_hdrs, ":authority", tc->authority);
    rv = rv ? rv : hdr_add(&call->req_hdrs, ":path", path);
    if (has_body) {
        rv = rv ? rv : hdr_add(&call->req_hdrs, "content-length", lenstr);
    }
    for (size_t i = 0; rv == 0 && i < nhdrs; i++) {
        rv = hdr_add(&call->req_hdrs, hdrs[i].name, hdrs[i].value);
    }
    if (rv == 0 && body && !owned) {
        call->body = malloc(len ? len : 1);
        if (!call->body) {
            rv = SR_ERR_NOMEM;
        } else if (len) {
            memcpy(call->body, body, len);
        }
        call->body_len = len;
    }
    if (rv != 0) {
        call_free(call);
        return NULL;
    }
    /* link into the connection */
    call->tc = tc;
    call->next = tc->calls;
    if (tc->calls) {
        tc->calls->prev = call;
    }
    tc->calls = call;
    struct timeval tv = {(time_t)(timeout_ms / 1000), (suseconds_t)((timeout_ms % 1000) * 1000)};
    evtimer_add(&call->timer, &tv);

    if (!tc->addr_ok) {
        call_finish(call, SR_ERR_UNAVAILABLE, "bad target address %s: %s", origin, tc->addr_err);
        return call;
    }
    switch (tc->state) {
    case TC_UP:
        if (tc->goaway_last_id >= 0) {
            /* the target is shutting down (or ended the session): nghttp2
             * would refuse the stream anyway; say why, and nothing was sent */
            call_finish(call, SR_ERR_UNAVAILABLE, "%s is going away (GOAWAY)", origin);
            break;
        }
        tc_submit(tc, call);
        tc_flush_later(tc);
        break;
    case TC_CONNECTING:
        break; /* submitted when connected */
    case TC_DOWN:
        if (sr_mono_ms() < tc->retry_at_mono) {
            call_finish(call, SR_ERR_UNAVAILABLE, "%s is down (next reconnect in %lld ms)", origin,
                        (long long)(tc->retry_at_mono - sr_mono_ms()));
        } else if (tc_connect(tc) != 0) {
            tc_down(tc, "connect failed");
        }
        break;
    }
    return call;
}

unsigned sr_h2_pool_waiting(const sr_h2_pool *pool, const char *origin)
{
    for (const struct tconn *tc = pool->conns; tc; tc = tc->next) {
        if (!strcmp(tc->origin, origin)) {
            return tc->slots.waiting;
        }
    }
    return 0;
}

sr_h2_call *sr_h2_request(sr_h2_pool *pool, const char *origin, const char *method,
                          const char *path, const struct sr_http_header *hdrs, size_t nhdrs,
                          const void *body, size_t len, int64_t timeout_ms, sr_h2_done done,
                          void *arg)
{
    return request_new(pool, origin, method, path, hdrs, nhdrs, body, NULL, len, timeout_ms, done,
                       arg);
}

sr_h2_call *sr_h2_request_take(sr_h2_pool *pool, const char *origin, const char *method,
                               const char *path, const struct sr_http_header *hdrs, size_t nhdrs,
                               sr_buf *body, int64_t timeout_ms, sr_h2_done done, void *arg)
{
    uint8_t *owned = body->data ? body->data : malloc(1);
    size_t len = body->len;
    body->data = NULL; /* ours now, whatever happens */
    body->len = body->cap = 0;
    if (!owned) {
        return NULL;
    }
    return request_new(pool, origin, method, path, hdrs, nhdrs, NULL, owned, len, timeout_ms, done,
                       arg);
}
