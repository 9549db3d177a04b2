/* Output of HTTP/2 flushes, the end-of-turn flush queue and body slots;
 * see net_int.h. */
#include "gateway/net/net_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <sys/socket.h>

#include "common/common.h"

static struct {
    uint8_t *data;
    size_t len, cap;
    bool busy;
} gather;

static void sockout_begin(sr_sockout *o, struct bufferevent *bev, bool plain)
{
    o->bev = bev;
    o->direct = plain && !gather.busy && bufferevent_getfd(bev) >= 0 &&
                evbuffer_get_length(bufferevent_get_output(bev)) == 0;
    if (o->direct) {
        gather.busy = true;
        gather.len = 0;
    }
}

static int sockout_add(sr_sockout *o, const void *data, size_t len)
{
    if (!o->direct) {
        return evbuffer_add(bufferevent_get_output(o->bev), data, len) == 0 ? 0 : -1;
    }
    if (gather.cap - gather.len < len) {
        size_t cap = gather.cap ? gather.cap : 512 * 1024;
        while (cap - gather.len < len) {
            cap *= 2;
        }
        uint8_t *p = realloc(gather.data, cap);
        if (!p) {
            return -1;
        }
        gather.data = p;
        gather.cap = cap;
    }
    memcpy(gather.data + gather.len, data, len);
    gather.len += len;
    return 0;
}

/* Bytes queued and not yet taken by the kernel (this flush's and the
 * bufferevent's). */
static size_t sockout_pending(const sr_sockout *o)
{
    return evbuffer_get_length(bufferevent_get_output(o->bev)) + (o->direct ? gather.len : 0);
}

/* Sends what was gathered; the rest goes to the bufferevent. 0, or -1 when
 * out of memory. */
static int sockout_end(sr_sockout *o)
{
    if (!o->direct) {
        return 0;
    }
    o->direct = false;
    gather.busy = false;
    size_t off = 0;
    int fd = (int)bufferevent_getfd(o->bev);
    while (off < gather.len) {
        ssize_t n = send(fd, gather.data + off, gather.len - off, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
            off += (size_t)n;
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else {
            /* EAGAIN: the bufferevent waits for room; an error: its write
             * fails the same way and reports it through the event callback */
            break;
        }
    }
    int rv = 0;
    if (off < gather.len) {
        rv = evbuffer_add(bufferevent_get_output(o->bev), gather.data + off, gather.len - off);
    }
    gather.len = 0;
    if (gather.cap > 4 * 1024 * 1024) { /* do not keep a rare large flush's memory */
        free(gather.data);
        gather.data = NULL;
        gather.cap = 0;
    }
    return rv == 0 ? 0 : -1;
}

const char *sr_sockout_flush(sr_sockout *o, nghttp2_session *h2, struct bufferevent *bev,
                             bool plain)
{
    sockout_begin(o, bev, plain);
    o->full = false;
    const char *err = NULL;
    while (sockout_pending(o) < SR_OUT_HIGH) {
        const uint8_t *data;
        ssize_t n = nghttp2_session_mem_send(h2, &data);
        if (n < 0) {
            err = nghttp2_strerror((int)n);
            break;
        }
        if (n == 0) {
            break;
        }
        if (sockout_add(o, data, (size_t)n) != 0) {
            err = "out of memory";
            break;
        }
    }
    if (sockout_pending(o) >= SR_OUT_HIGH) {
        o->full = true;
    }
    if (sockout_end(o) != 0 && !err) {
        err = "out of memory";
    }
    return err;
}

int sr_sockout_data(sr_sockout *o, const nghttp2_frame *frame, const uint8_t *framehd,
                    size_t length, const uint8_t *body, size_t off, size_t len)
{
    if (sockout_pending(o) >= SR_OUT_HIGH) {
        o->full = true; /* the rest in the next flush */
        return NGHTTP2_ERR_WOULDBLOCK;
    }
    /* no padding is ever asked for, so the frame is header + payload */
    if (frame->data.padlen > 0 || off > len || length > len - off ||
        sockout_add(o, framehd, 9) != 0 || (length && sockout_add(o, body + off, length) != 0)) {
        return NGHTTP2_ERR_CALLBACK_FAILURE;
    }
    return 0;
}

static uint8_t readbuf[256 * 1024];

long sr_sock_read(int fd, const uint8_t **data, short *events)
{
    ssize_t n = recv(fd, readbuf, sizeof(readbuf), 0);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
        return 0;
    }
    if (n <= 0) {
        *events = n == 0 ? BEV_EVENT_EOF : BEV_EVENT_ERROR;
        return -1;
    }
    *data = readbuf;
    return (long)n;
}

/* ---- the end-of-turn flush queue ---------------------------------------------- */

static void flushq_run(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    sr_flushq *q = arg;
    while (q->head) {
        sr_sockout *o = q->head;
        q->head = o->next;
        o->queued = false;
        o->next = NULL;
        q->flush(o->owner);
    }
}

int sr_flushq_init(sr_flushq *q, struct event_base *base, void (*flush)(void *owner))
{
    q->head = NULL;
    q->flush = flush;
    q->ev = event_new(base, -1, 0, flushq_run, q);
    return q->ev ? 0 : -1;
}

void sr_flushq_free(sr_flushq *q)
{
    if (q->ev) {
        event_free(q->ev);
        q->ev = NULL;
    }
    q->head = NULL;
}

void sr_flushq_add(sr_flushq *q, sr_sockout *o, void *owner)
{
    if (o->queued) {
        return;
    }
    o->queued = true;
    o->owner = owner;
    o->next = q->head;
    q->head = o;
    event_active(q->ev, 0, 0);
}

void sr_flushq_remove(sr_flushq *q, sr_sockout *o)
{
    if (!o->queued) {
        return;
    }
    for (sr_sockout **pp = &q->head; *pp; pp = &(*pp)->next) {
        if (*pp == o) {
            *pp = o->next;
            break;
        }
    }
    o->queued = false;
    o->next = NULL;
}

/* ---- slots ---------------------------------------------------------------------- */

bool sr_slot_acquire(sr_slots *q, sr_slot *s, void *owner, int64_t key)
{
    if (s->state != SR_SLOT_NONE) {
        return s->state != SR_SLOT_WAITING;
    }
    s->owner = owner;
    s->key = key;
    if (q->held < q->max) {
        s->state = SR_SLOT_HELD;
        q->held++;
        return true;
    }
    s->state = SR_SLOT_WAITING;
    q->waiting++;
    sr_slot *prev = NULL; /* the last one that goes before |s| */
    if (q->last && q->last->key <= key) {
        prev = q->last; /* the usual case: keys come in order */
    } else {
        for (sr_slot *w = q->head; w && w->key <= key; w = w->next) {
            prev = w;
        }
    }
    s->next = prev ? prev->next : q->head;
    *(prev ? &prev->next : &q->head) = s;
    if (!s->next) {
        q->last = s;
    }
    return false;
}

sr_slot *sr_slot_release(sr_slots *q, sr_slot *s)
{
    sr_slot *next = NULL;
    if (s->state == SR_SLOT_WAITING) {
        sr_slot *prev = NULL;
        for (sr_slot *w = q->head; w != s; w = w->next) {
            prev = w;
        }
        *(prev ? &prev->next : &q->head) = s->next;
        if (q->last == s) {
            q->last = prev;
        }
        q->waiting--;
    } else if (s->state == SR_SLOT_HELD) {
        q->held--;
        if (q->head && q->held < q->max) {
            next = q->head;
            q->head = next->next;
            if (!q->head) {
                q->last = NULL;
            }
            next->state = SR_SLOT_HELD;
            q->held++;
            q->waiting--;
        }
    }
    s->state = SR_SLOT_DONE;
    return next;
}

void sr_slots_reset(sr_slots *q)
{
    q->held = q->waiting = 0;
    q->head = q->last = NULL;
}
