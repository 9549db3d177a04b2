/*
 * The node's HTTP endpoints. POST /v1/exec takes one signed workload
 * envelope, POST /v1/batch several (sr_batch_split), answered as items of one
 * response as each is ready. Every envelope is verified before it is parsed
 * (crypto/), then checked against the replay guard, and only then run by its
 * handler (handlers.c).
 *
 * A repeated id is refused with 409, and the stored result of the first run
 * travels in that refusal's body, so a sender retrying after a lost response
 * gets its answer while the handler still runs only once (DESIGN section 5).
 * Workload envelopes sealed in a batch (SR2) are verified with a cache of
 * verified roots: one verification per batch.
 */
#include "gateway/node/node.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A refusal's detail, {"code":CODE,"why":WHY}, into |out| ("null" if it does
 * not fit). */
static void refusal_detail(char *out, size_t outlen, const char *code, const char *why)
{
    sr_buf d;
    sr_buf_init(&d, outlen - 1);
    int e = sr_buf_appendf(&d, "{\"code\":\"%s\",\"why\":", code);
    e = e ? e : sr_buf_append_json_str(&d, why, strlen(why));
    e = e ? e : sr_buf_append(&d, "}", 1);
    e = e ? e : sr_buf_terminate(&d);
    snprintf(out, outlen, "%s", e ? "null" : (char *)d.data);
    sr_buf_free(&d);
}

/* Handles one workload envelope, answered through |rp|: verified, checked
 * against the replay guard, run by its handler. */
static void exec_envelope(struct node *n, const struct reply *rp_in, const uint8_t *body,
                          size_t len)
{
    struct reply rp = *rp_in;
    struct sr_envelope wl;
    char why[200] = "";
    int64_t now = sr_now_ms();
    struct sr_open_opts oo = {
        .trust = n->trust,
        .self_id = n->id,
        .now_ms = now,
        .max_len = n->max_body + 4096,
        .kinds = 1u << SR_KIND_WORKLOAD,
        .roots = n->roots, /* a batch's root is verified once */
    };
    int rv = sr_envelope_open(&wl, body, len, &oo, why, sizeof(why));
    if (rv != 0) {
        node_count_reject(n, sr_errname(rv));
        char detail[512];
        refusal_detail(detail, sizeof(detail), sr_errname(rv), why);
        node_reply_error(&rp, sr_env_http_status(rv), sr_strerror(rv), detail);
        return;
    }
    const uint8_t *stored = NULL;
    size_t stored_len = 0;
    rv = sr_replay_check(n->replay, wl.id, wl.exp, now, &stored, &stored_len);
    if (rv == SR_ERR_ENV_REPLAY) {
        node_count_reject(n, "env_replay");
        if (stored) {
            /* Refused (the handler does not run again), with the first result attached. */
            node_reply_send(&rp, 409, NODE_CTYPE_MSGPACK, true, stored, stored_len, false);
        } else {
            bool dropped = sr_replay_dropped(n->replay, wl.id);
            node_reply_error(&rp, 409, sr_strerror(rv),
                             dropped ? "{\"code\":\"result_dropped\",\"why\":\"already run; "
                                       "its result is no longer held\"}"
                                     : "{\"code\":\"env_replay\",\"why\":\"still running\"}");
        }
        return;
    }
    if (rv != 0) {
        node_count_reject(n, "busy");
        node_reply_busy(&rp, sr_replay_next_expiry(n->replay) - now);
        return;
    }
    struct job *j = node_job_new(n, &rp, &wl, now);
    if (!j) {
        sr_replay_forget(n->replay, wl.id);
        node_reply_error(&rp, 503, "out of memory", NULL);
        return;
    }
    node_handlers_run(n, j);
}

static void handle_exec(struct node *n, sr_req *req)
{
    size_t len;
    const uint8_t *body = sr_req_body(req, &len);
    struct reply rp = {.req = req};
    exec_envelope(n, &rp, body, len);
}

static void batch_abort(sr_req *req, void *data)
{
    (void)req;
    struct nbatch *b = data;
    b->req = NULL; /* the rest still runs; their results are kept for a re-send */
}

/* POST /v1/batch: envelopes sent together (sr_batch_split); each is handled
 * as on its own, and answered as an item of one response. */
static void handle_batch(struct node *n, sr_req *req)
{
    size_t len;
    const uint8_t *body = sr_req_body(req, &len);
    struct sr_batch_env envs[SR_BATCH_MSG_MAX];
    size_t k;
    char why[160], detail[512];
    int rv = sr_batch_split(body, len, envs, SR_BATCH_MSG_MAX, &k, why, sizeof(why));
    if (rv != 0) {
        node_count_reject(n, "batch_format");
        refusal_detail(detail, sizeof(detail), "batch_format", why);
        sr_req_respond_error(req, rv == SR_ERR_TOOBIG ? 413 : 400, "malformed batch", detail);
        return;
    }
    struct nbatch *b = calloc(1, sizeof(*b));
    if (!b) {
        sr_req_respond_error(req, 503, "out of memory", NULL);
        return;
    }
    b->node = n;
    b->req = req;
    b->left = k + 1; /* held until every envelope is started */
    sr_buf_init(&b->out, SIZE_MAX / 2);
    static const struct sr_http_header h[] = {{"content-type", NODE_CTYPE_BATCH}};
    rv = sr_req_stream_begin(req, 200, h, 1);
    b->streamed = rv == 0;
    if (rv != 0 && rv != SR_ERR_UNSUPPORTED) {
        b->req = NULL; /* reset (out of memory): the envelopes still run once */
    } else {
        sr_req_set_data(req, b);
        sr_req_set_abort(req, batch_abort);
    }
    sr_metrics_add(n->metrics, "skyroute_node_batches_total", "", 1);
    sr_metrics_add(n->metrics, "skyroute_node_batched_envelopes_total", "", (double)k);
    for (size_t i = 0; i < k; i++) {
        struct reply rp = {.batch = b, .index = (uint32_t)i};
        exec_envelope(n, &rp, envs[i].ptr, envs[i].len);
    }
    node_batch_release(b);
}

/* A request back from the emulated link's light time. */
static void request_arrived(struct node *n, sr_req *req)
{
    if (!strcmp(sr_req_path(req), "/v1/batch")) {
        handle_batch(n, req);
    } else {
        handle_exec(n, req);
    }
}

/* /metrics, /healthz, /readyz (ready until draining), else 404. */
static void serve_admin_paths(struct node *n, sr_req *req)
{
    node_replay_gauges(n);
    if (!sr_admin_serve(req, n->metrics, !n->draining)) {
        sr_req_respond_error(req, 404, "no such path", NULL);
    }
}

void node_main_handler(sr_req *req, void *arg)
{
    struct node *n = arg;
    const char *path = sr_req_path(req);
    sr_metrics_add(n->metrics, "skyroute_node_requests_total", "", 1);
    bool exec = !strcmp(path, "/v1/exec"), batch = !strcmp(path, "/v1/batch");
    if (!exec && !batch) {
        serve_admin_paths(n, req);
    } else if (strcmp(sr_req_method(req), "POST") != 0) {
        sr_req_respond_error(
            req, 405, exec ? "POST an envelope to /v1/exec" : "POST envelopes to /v1/batch", NULL);
    } else if (n->emu_sat && node_emu_delay_request(n, req, request_arrived)) {
        /* arrives after the light time */
    } else if (exec) {
        handle_exec(n, req);
    } else {
        handle_batch(n, req);
    }
}

void node_admin_handler(sr_req *req, void *arg)
{
    struct node *n = arg;
    if (!node_outbox_serve(n, req)) {
        serve_admin_paths(n, req);
    }
}
