/* Direct socket writes for HTTP/2 flushes; see core_sockout.h. */
#include "gateway/core_sockout.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <sys/socket.h>

#include "common/common.h"

static struct {
    uint8_t *data;
    size_t len, cap;
    bool busy;
} gather;

void sr_sockout_begin(sr_sockout *o, struct bufferevent *bev, bool plain)
{
    o->bev = bev;
    o->direct = plain && !gather.busy && bufferevent_getfd(bev) >= 0 &&
                evbuffer_get_length(bufferevent_get_output(bev)) == 0;
    if (o->direct) {
        gather.busy = true;
        gather.len = 0;
    }
}

int sr_sockout_add(sr_sockout *o, const void *data, size_t len)
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

size_t sr_sockout_pending(const sr_sockout *o)
{
    return evbuffer_get_length(bufferevent_get_output(o->bev)) + (o->direct ? gather.len : 0);
}

int sr_sockout_end(sr_sockout *o)
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
