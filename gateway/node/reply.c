/*
 * Where an answer goes: the response to a request of its own (POST /v1/exec),
 * or an item of a batch response (POST /v1/batch), streamed as soon as it is
 * ready over HTTP/2 and gathered for the end over HTTP/1.1. Behind an emulated
 * link, both are held for the light time before they go.
 */
#include "gateway/node/node.h"

#include <stdlib.h>

/* Sends one item of |b| (its head and body): on the stream at once, or kept
 * for the end. */
static void batch_write(struct nbatch *b, const uint8_t *head, size_t hl, const void *body,
                        size_t len)
{
    if (!b->req) {
        return;
    }
    int rv;
    if (b->streamed) {
        rv = sr_req_stream_write(b->req, head, hl);
        rv = rv ? rv : sr_req_stream_write(b->req, body, len);
    } else {
        rv = sr_buf_append(&b->out, head, hl);
        rv = rv ? rv : sr_buf_append(&b->out, body, len);
    }
    if (rv) {
        /* the sender sees no item for it and counts the envelope as lost;
         * it ran (or not) once, as the replay guard says */
        sr_log(SR_LOG_WARN, "batch: cannot send an answer: %s", sr_strerror(rv));
    }
}

void node_batch_release(struct nbatch *b)
{
    if (--b->left) {
        return;
    }
    if (b->req) {
        sr_req_set_abort(b->req, NULL);
        if (b->streamed) {
            sr_req_stream_end(b->req);
        } else {
            static const struct sr_http_header h[] = {{"content-type", NODE_CTYPE_BATCH}};
            sr_req_respond(b->req, 200, h, 1, b->out.data, b->out.len, true);
            b->out.data = NULL;
        }
    }
    sr_buf_free(&b->out);
    free(b);
}

/* An item's bytes back from the emulated link's light time. */
static void batch_item_arrived(void *arg, const uint8_t *head, size_t hl, const uint8_t *body,
                               size_t len)
{
    struct nbatch *b = arg;
    batch_write(b, head, hl, body, len);
    node_batch_release(b);
}

void node_reply_send(struct reply *rp, int status, const char *ctype, bool replay, const void *body,
                     size_t len, bool take)
{
    if (rp->req) {
        const struct sr_http_header h[] = {{"content-type", ctype},
                                           {"skyroute-replay", "stored-result"}};
        sr_req_respond(rp->req, status, h, replay ? 2 : 1, body, len, take);
        rp->req = NULL;
        return;
    }
    struct nbatch *b = rp->batch;
    if (b) {
        rp->batch = NULL;
        struct sr_batch_item it = {
            .index = rp->index, .status = status, .ctype = ctype, .body = body, .len = len};
        uint8_t head[SR_BATCH_HEAD_MAX];
        size_t hl = sr_batch_item_head(head, &it);
        struct node *n = b->node;
        if (hl && b->req && n->emu_sat &&
            node_emu_delay_bytes(n, head, hl, body, len, batch_item_arrived, b)) {
            /* sent down after the light time, and released then */
        } else {
            if (hl) {
                batch_write(b, head, hl, body, len);
            }
            node_batch_release(b);
        }
    }
    if (take) {
        free((void *)body);
    }
}

void node_reply_busy(struct reply *rp, int64_t retry_ms)
{
    static const char msg[] = "too many live envelope ids; retry later";
    char detail[128];
    retry_ms = retry_ms < 1 ? 1 : retry_ms;
    snprintf(detail, sizeof(detail),
             "{\"code\":\"busy\",\"why\":\"replay guard full\",\"retry_after_ms\":%lld}",
             (long long)retry_ms);
    if (!rp->req) {
        node_reply_error(rp, 503, msg, detail);
        return;
    }
    char ra[24];
    snprintf(ra, sizeof(ra), "%lld", (long long)((retry_ms + 999) / 1000));
    const struct sr_http_header h[] = {{"content-type", "application/json"}, {"retry-after", ra}};
    sr_buf b;
    sr_buf_init(&b, 4096);
    if (sr_error_body(&b, msg, detail) == 0) {
        sr_req_respond(rp->req, 503, h, 2, b.data, b.len, true);
    } else {
        sr_buf_free(&b);
        sr_req_respond(rp->req, 503, h, 2, "", 0, false);
    }
    rp->req = NULL;
}

void node_reply_error(struct reply *rp, int status, const char *msg, const char *detail_json)
{
    if (rp->req) {
        sr_req_respond_error(rp->req, status, msg, detail_json);
        rp->req = NULL;
        return;
    }
    sr_buf b;
    sr_buf_init(&b, 1 << 20);
    if (sr_error_body(&b, msg, detail_json) != 0) {
        sr_buf_reset(&b);
    }
    node_reply_send(rp, status, "application/json", false, b.data, b.len, false);
    sr_buf_free(&b);
}
