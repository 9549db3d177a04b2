/*
 * Onboard work for the ground (--gateway): an application on the satellite
 * hands a payload to POST /v1/submit on the admin listener; the node seals
 * it as a workload addressed to the gateway and queues it. At each contact
 * (every 500 ms, and only in a pass when the link is emulated) the queue is
 * uplinked one envelope at a time (POST /v1/uplink), then the gateway's
 * outbox is asked for results (POST /v1/outbox, acknowledging the ids
 * received by the previous call). GET /v1/inbox/ID answers the application.
 */
#include "gateway/node/node.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

struct upq {
    struct upq *next;
    uint8_t id[SR_ENV_IDBYTES];
    sr_buf env;
};

struct inbox {
    struct inbox *next;
    uint8_t id[SR_ENV_IDBYTES];
    bool done;
    int64_t status;
    char error[SR_ENV_ERRMAX];
    sr_buf payload;
};

static struct inbox *inbox_find(struct node *n, const uint8_t *id)
{
    for (struct inbox *b = n->inbox; b; b = b->next) {
        if (!memcmp(b->id, id, SR_ENV_IDBYTES)) {
            return b;
        }
    }
    return NULL;
}

/* A workload from this node to the gateway, with a fresh id, issued now and
 * living |lifetime_ms|, for |handler|. */
static void gateway_workload(const struct node *n, struct sr_envelope *e, const char *handler,
                             int64_t lifetime_ms)
{
    memset(e, 0, sizeof(*e));
    e->kind = SR_KIND_WORKLOAD;
    sr_envelope_new_id(e->id);
    e->iat = sr_now_ms();
    e->exp = e->iat + lifetime_ms;
    snprintf(e->src, sizeof(e->src), "%s", n->id);
    snprintf(e->dst, sizeof(e->dst), "%s", n->gw_id);
    snprintf(e->handler, sizeof(e->handler), "%s", handler);
}

/* POST /v1/submit on the admin listener: an onboard application hands work
 * for the ground; it leaves at the next contact. */
static void submit_local(struct node *n, sr_req *req)
{
    if (!n->gw_url[0]) {
        sr_req_respond_error(req, 409, "no --gateway configured", NULL);
        return;
    }
    size_t len;
    const uint8_t *body = sr_req_body(req, &len);
    const char *handler = sr_req_header(req, "skyroute-handler");
    const char *dl = sr_req_header(req, "skyroute-deadline-ms");
    const char *work = sr_req_header(req, "skyroute-work");
    double deadline = 86400000, w = 0;
    if ((dl && (sr_parse_double(&deadline, dl, strlen(dl)) != 0 || deadline < 1)) ||
        (work && (sr_parse_double(&w, work, strlen(work)) != 0 || w < 0)) ||
        (handler && (!handler[0] || strlen(handler) >= SR_ENV_STRMAX))) {
        sr_req_respond_error(req, 400, "bad skyroute-deadline-ms, skyroute-work or handler", NULL);
        return;
    }
    struct upq *q = calloc(1, sizeof(*q));
    struct inbox *b = calloc(1, sizeof(*b));
    if (!q || !b) {
        free(q);
        free(b);
        sr_req_respond_error(req, 503, "out of memory", NULL);
        return;
    }
    struct sr_envelope e;
    gateway_workload(n, &e, handler ? handler : "echo", (int64_t)deadline);
    e.payload = body;
    e.payload_len = len;
    if (work) {
        e.flags |= SR_ENV_HAS_WORK;
        e.work = w;
    }
    sr_buf_init(&q->env, n->max_body + 65536);
    if (sr_envelope_seal(&q->env, n->key, &e) != 0) {
        sr_buf_free(&q->env);
        free(q);
        free(b);
        sr_req_respond_error(req, 413, "cannot seal that payload", NULL);
        return;
    }
    memcpy(q->id, e.id, SR_ENV_IDBYTES);
    memcpy(b->id, e.id, SR_ENV_IDBYTES);
    sr_buf_init(&b->payload, 256u << 20);
    struct upq **tail = &n->upq;
    while (*tail) {
        tail = &(*tail)->next;
    }
    *tail = q;
    b->next = n->inbox;
    n->inbox = b;
    char idhex[2 * SR_ENV_IDBYTES + 1], out[96];
    sr_hex(idhex, e.id, SR_ENV_IDBYTES);
    int m = snprintf(out, sizeof(out), "{\"id\":\"%s\",\"state\":\"queued\"}\n", idhex);
    static const struct sr_http_header h[] = {{"content-type", "application/json"}};
    sr_req_respond(req, 202, h, 1, out, (size_t)m, false);
}

/* GET /v1/inbox/ID: 202 while waiting, 200 with the result when it is back. */
static void inbox_get(struct node *n, sr_req *req, const char *hex, size_t hlen)
{
    uint8_t id[SR_ENV_IDBYTES];
    struct inbox *b = sr_unhex(id, sizeof(id), hex, hlen) == 0 ? inbox_find(n, id) : NULL;
    if (!b) {
        sr_req_respond_error(req, 404, "no such submission", NULL);
        return;
    }
    if (!b->done) {
        static const struct sr_http_header h[] = {{"content-type", "application/json"}};
        sr_req_respond(req, 202, h, 1, "{\"state\":\"waiting\"}\n", 20, false);
        return;
    }
    char st[24];
    snprintf(st, sizeof(st), "%lld", (long long)b->status);
    const struct sr_http_header h[] = {{"content-type", "application/octet-stream"},
                                       {"skyroute-status", st},
                                       {"skyroute-error", b->error}};
    sr_req_respond(req, b->status == 0 ? 200 : 502, h, b->error[0] ? 3 : 2, b->payload.data,
                   b->payload.len, false);
}

bool node_outbox_serve(struct node *n, sr_req *req)
{
    const char *path = sr_req_path(req);
    size_t plen = strcspn(path, "?");
    if (plen == 10 && !strncmp(path, "/v1/submit", 10)) {
        if (strcmp(sr_req_method(req), "POST") != 0) {
            sr_req_respond_error(req, 405, "POST the payload", NULL);
        } else {
            submit_local(n, req);
        }
        return true;
    }
    if (plen > 10 && !strncmp(path, "/v1/inbox/", 10)) {
        inbox_get(n, req, path + 10, plen - 10);
        return true;
    }
    return false;
}

/* ---- a contact: the uplink queue first, then the gateway's outbox ------------------------ */

static void sync_step(struct node *n);

static void uplink_done(const struct sr_h2_response *resp, void *arg)
{
    struct node *n = arg;
    n->sync_busy = false;
    if (resp->error == 0 && resp->status == 202 && n->upq) {
        struct upq *q = n->upq;
        n->upq = q->next;
        sr_buf_free(&q->env);
        free(q);
        sr_metrics_add(n->metrics, "skyroute_node_uplinked_total", "", 1);
        sync_step(n); /* the next one, or the outbox */
    } else if (resp->error == 0) {
        sr_log(SR_LOG_WARN, "uplink refused by the gateway: HTTP %d", resp->status);
    }
}

static void outbox_done(const struct sr_h2_response *resp, void *arg)
{
    struct node *n = arg;
    n->sync_busy = false;
    if (resp->error || resp->status != 200) {
        return;
    }
    /* the ids we acknowledged are delivered now */
    sr_buf_reset(&n->acks);
    const uint8_t *p = resp->body, *end = resp->body + resp->body_len;
    while (end - p >= 4) {
        uint32_t l = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
        p += 4;
        if ((size_t)(end - p) < l) {
            break;
        }
        struct sr_envelope res;
        char why[200];
        struct sr_open_opts oo = {.trust = n->trust,
                                  .self_id = n->id,
                                  .now_ms = sr_now_ms(),
                                  .max_len = (size_t)l + 1,
                                  .kinds = 1u << SR_KIND_RESULT};
        if (sr_envelope_open(&res, p, l, &oo, why, sizeof(why)) == 0 &&
            !strcmp(res.src, n->gw_id)) {
            struct inbox *b = inbox_find(n, res.id);
            if (b && !b->done) {
                b->done = true;
                b->status = (res.flags & SR_ENV_HAS_STATUS) ? res.status : 0;
                snprintf(b->error, sizeof(b->error), "%s", res.error);
                if (sr_buf_append(&b->payload, res.payload, res.payload_len) != 0) {
                    b->status = 507;
                }
                sr_metrics_add(n->metrics, "skyroute_node_inbox_results_total", "", 1);
            }
            if (sr_buf_append(&n->acks, res.id, SR_ENV_IDBYTES) != 0) {
                break;
            }
        } else {
            node_count_reject(n, "outbox_result");
        }
        p += l;
    }
}

/* One step of a contact: the oldest queued uplink, else a call to the outbox. */
static void sync_step(struct node *n)
{
    if (n->sync_busy || !n->gw_url[0] || (n->emu_sat && !n->emu_up)) {
        return;
    }
    static const struct sr_http_header h[] = {{"content-type", NODE_CTYPE_MSGPACK}};
    if (n->upq) {
        n->sync_busy =
            sr_h2_request(n->pool, n->gw_url, "POST", "/v1/uplink", h, 1, n->upq->env.data,
                          n->upq->env.len, 10000, uplink_done, n) != NULL;
        return;
    }
    struct sr_envelope e;
    gateway_workload(n, &e, "outbox", 60000);
    e.payload = n->acks.data ? n->acks.data : (const uint8_t *)"";
    e.payload_len = n->acks.len;
    sr_buf env;
    sr_buf_init(&env, 1 << 20);
    if (sr_envelope_seal(&env, n->key, &e) == 0) {
        n->sync_busy = sr_h2_request(n->pool, n->gw_url, "POST", "/v1/outbox", h, 1, env.data,
                                     env.len, 10000, outbox_done, n) != NULL;
    }
    sr_buf_free(&env);
}

static void sync_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    sync_step(arg);
}

int node_outbox_start(struct node *n)
{
    sr_buf_init(&n->acks, 1 << 20);
    n->sync_timer = event_new(n->base, -1, EV_PERSIST, sync_tick, n);
    struct timeval tv = {0, 500000};
    if (sr_h2_pool_new(&n->pool, n->base) != 0 || !n->sync_timer ||
        event_add(n->sync_timer, &tv) != 0) {
        return -1;
    }
    return 0;
}

void node_outbox_free(struct node *n)
{
    if (n->sync_timer) {
        event_free(n->sync_timer);
        n->sync_timer = NULL;
    }
    sr_h2_pool_free(n->pool);
    n->pool = NULL;
    while (n->upq) {
        struct upq *q = n->upq;
        n->upq = q->next;
        sr_buf_free(&q->env);
        free(q);
    }
    while (n->inbox) {
        struct inbox *b = n->inbox;
        n->inbox = b->next;
        sr_buf_free(&b->payload);
        free(b);
    }
    sr_buf_free(&n->acks);
}
