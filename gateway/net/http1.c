/*
 * HTTP/1.1 on listeners that allow it (admin listeners: curl, probes,
 * Prometheus): one request at a time per connection, pipelined ones waiting
 * their turn in the input buffer; a request head parsed strictly (RFC 9112),
 * a body only with content-length. Requests go to the same handler as
 * HTTP/2's; the HTTP/2 core reaches this file through sr_h1_ops.
 */
#include "gateway/net/net_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>

#define H1_MAX_HEAD (16 * 1024)

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
    if (sr_req_add_header(r, (const uint8_t *)":method", 7, (const uint8_t *)method,
                          strlen(method)) ||
        sr_req_add_header(r, (const uint8_t *)":path", 5, (const uint8_t *)target,
                          strlen(target))) {
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
        if (sr_req_add_header(r, (const uint8_t *)p, strlen(p), (const uint8_t *)v, vl) != 0) {
            snprintf(why, whylen, "line %d: too many header fields", line);
            return 400;
        }
        p = eol + 2;
    }
    return 0;
}

/* Reads what it can of the next request: its head once it is whole, then
 * content-length bytes of body; a complete request goes to the handler, and
 * the next waits until it is answered (h1_respond). A head that cannot be
 * served is answered at once and the connection closes after it. */
static void h1_process(struct sr_conn *c)
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
        sr_req *r = sr_req_new(c);
        if (!r) {
            free(head);
            c->closing = true;
            return;
        }
        r->head_done = true;
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
            sr_req_reject_too_big(r);
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
            sr_req_dispatch(r);
        }
    }
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
    case 408:
        return "Request Timeout";
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

/* The response, with the body and connection: close (when the request asked
 * for it, or was refused) after it; then the next request, if one waits. */
static int h1_respond(sr_req *r, int status, const struct sr_http_header *hdrs, size_t nhdrs)
{
    struct sr_conn *c = r->conn;
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
    sr_req_free(r);
    if (close_after) {
        c->closing = true;
        sr_conn_read_enable(c, false);
    } else {
        h1_process(c); /* a pipelined request may be waiting */
    }
    return 0;
}

const struct sr_h1_ops sr_h1_ops = {.process = h1_process, .respond = h1_respond};
