/*
 * skyrouted part: the workload API on the main listener (h2c and TLS alike),
 * where a workload's way through the gateway begins.
 *
 * gw_main_handler authenticates the client (auth.c) and hands each path to
 * the part that owns it. POST /v1/workloads is parsed here into a job spec
 * (deadline, work and result-size hints, placement, handler, payload): with
 * `prefer: respond-async` it goes to the durable spool (spool.c), otherwise a
 * job (dispatch.c) places, seals and sends it while the client waits on its
 * stream, and the verified result, or the failure, is answered here. The
 * HTTP status of an outcome is chosen here (gw_outcome_status), not below.
 */
#include "gateway/daemon/daemon.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A synchronous request: the client waits on its connection for the result. */
struct sync_wl {
    struct gw *gw;
    sr_req *req;
    struct gw_job *job;
    int64_t start_mono;
    char handler[SR_ENV_STRMAX];
};

/* Metrics, the access log line and the status page's recent list. */
static void record(struct gw *g, sr_req *req, int status, const struct gw_job_result *r,
                   const char *handler, int64_t start_mono)
{
    gw_status_count(g, status);
    double elapsed = (double)(sr_mono_ms() - start_mono);
    sr_metrics_observe(g->metrics, "skyroute_request_duration_seconds", "", elapsed / 1000.0);
    size_t blen;
    sr_req_body(req, &blen);
    struct gw_event ev = {
        .t_ms = sr_now_ms(),
        .id = r ? r->idhex : "",
        .peer = sr_req_peer(req),
        .method = sr_req_method(req),
        .path = sr_req_path(req),
        .status = status,
        .handler = handler,
        .target = r ? r->target : "",
        .kind = r ? r->target_kind : "",
        .predicted_ms = r ? r->predicted_ms : 0,
        .elapsed_ms = elapsed,
        .bytes_in = blen,
        .attempts = r ? r->attempts : 0,
    };
    gw_status_record(g, &ev);
}

static void sync_done(const struct gw_job_result *r, void *arg)
{
    struct sync_wl *s = arg;
    sr_req *req = s->req;
    sr_req_set_abort(req, NULL);
    if (r->outcome == GW_DONE) {
        char predicted[32], elapsed[32]; /* "%.0f", without printf */
        sr_fmt_fixed(predicted, sizeof(predicted), r->predicted_ms, 0);
        sr_fmt_fixed(elapsed, sizeof(elapsed), r->elapsed_ms, 0);
        const struct sr_http_header h[] = {
            {"content-type", "application/octet-stream"},
            {"skyroute-id", r->idhex},
            {"skyroute-target", r->target},
            {"skyroute-predicted-ms", predicted},
            {"skyroute-elapsed-ms", elapsed},
            {"skyroute-signer", r->signer},
        };
        record(s->gw, req, 200, r, s->handler, s->start_mono);
        if (r->payload_mem && *r->payload_mem) {
            /* the verified payload is a slice of the target's answer: sent
             * from there, without a copy */
            void *mem = *r->payload_mem;
            *r->payload_mem = NULL;
            sr_req_respond_within(req, 200, h, sizeof(h) / sizeof(h[0]), r->payload, r->payload_len,
                                  mem);
        } else {
            sr_req_respond(req, 200, h, sizeof(h) / sizeof(h[0]), r->payload, r->payload_len,
                           false);
        }
    } else if (r->outcome == GW_WAIT) {
        /* the best plan waits for a window: a synchronous client cannot */
        char when[SR_RFC3339_LEN], d[400];
        sr_time_format(when, r->wait_until_ms);
        snprintf(d, sizeof(d),
                 "{\"id\":\"%s\",\"target\":\"%s\",\"window_opens\":\"%s\",\"hint\":"
                 "\"submit with prefer: respond-async to wait for it\"}",
                 r->idhex, r->wait_target ? r->wait_target : "", when);
        record(s->gw, req, 503, r, s->handler, s->start_mono);
        sr_req_respond_error(req, 503, "no target can take the workload before its next window", d);
    } else if (r->outcome == GW_BUSY) {
        /* backpressure: the client is told when to come back */
        record(s->gw, req, 503, r, s->handler, s->start_mono);
        gw_respond_retry(req, 503, r->error, r->detail_json, r->wait_until_ms - sr_now_ms());
    } else {
        int status = gw_outcome_status(r);
        record(s->gw, req, status, r, s->handler, s->start_mono);
        sr_req_respond_error(req, status, r->error ? r->error : "failed", r->detail_json);
    }
    free(s);
}

static void sync_abort(sr_req *req, void *data)
{
    struct sync_wl *s = data;
    gw_job_cancel(s->job);
    record(s->gw, req, 499, NULL, s->handler, s->start_mono);
    free(s);
}

static int header_num(sr_req *req, const char *name, double *out, double lo, double hi, bool *bad)
{
    const char *v = sr_req_header(req, name);
    if (!v) {
        return 0;
    }
    double d;
    if (sr_parse_double(&d, v, strlen(v)) != 0 || d < lo || d > hi) {
        *bad = true;
        return -1;
    }
    *out = d;
    return 1;
}

/* Refuses a request with a JSON error, counted and logged. */
static void refuse(struct gw *g, sr_req *req, int status, const char *msg, const char *detail)
{
    record(g, req, status, NULL, "", sr_req_start_mono(req));
    sr_req_respond_error(req, status, msg, detail);
}

static void handle_workload(struct gw *g, sr_req *req, const char *client)
{
    if (g->draining) {
        refuse(g, req, 503, "gateway is shutting down", NULL);
        return;
    }
    const char *bad_hdr = NULL;
    bool bad = false;
    double deadline = (double)g->cfg->default_deadline_ms, work = 0, rbytes = 0;
    header_num(req, "skyroute-deadline-ms", &deadline, 1, (double)g->cfg->max_deadline_ms, &bad);
    if (bad && !bad_hdr) {
        bad_hdr = "skyroute-deadline-ms";
    }
    /* present (1) or not: the envelope says so, without looking them up again */
    int has_work = header_num(req, "skyroute-work", &work, 0, 1e12, &bad);
    if (bad && !bad_hdr) {
        bad_hdr = "skyroute-work";
    }
    int has_rbytes = header_num(req, "skyroute-result-bytes", &rbytes, 0, 1e12, &bad);
    if (bad && !bad_hdr) {
        bad_hdr = "skyroute-result-bytes";
    }
    if (bad_hdr) {
        char d[200];
        snprintf(d, sizeof(d), "{\"header\":\"%s\",\"value\":\"%s\"}", bad_hdr,
                 "not a number in range");
        refuse(g, req, 400, "bad header value", d);
        return;
    }
    const char *handler = sr_req_header(req, "skyroute-handler");
    if (!handler) {
        handler = "echo";
    }
    size_t hlen = strlen(handler);
    if (hlen == 0 || hlen >= SR_ENV_STRMAX) {
        refuse(g, req, 400, "bad header value",
               "{\"header\":\"skyroute-handler\",\"value\":\"1-63 bytes\"}");
        return;
    }
    struct gw_job_spec spec;
    memset(&spec, 0, sizeof(spec));
    if (sr_place_parse(&spec.w, sr_req_header(req, "skyroute-place")) != 0) {
        refuse(g, req, 400, "bad header value",
               "{\"header\":\"skyroute-place\",\"value\":\"any, orbit, ground or "
               "target:ID\"}");
        return;
    }
    if (spec.w.place == SR_PLACE_TARGET && sr_router_find(g->router, spec.w.place_target) < 0) {
        refuse(g, req, 422, "skyroute-place names an unknown target", NULL);
        return;
    }
    const char *data_at = sr_req_header(req, "skyroute-data-at");
    if (data_at) {
        int di = sr_router_find(g->router, data_at);
        if (di < 0 || sr_router_target(g->router, (size_t)di)->kind != SR_TARGET_SATELLITE) {
            refuse(g, req, 422, "skyroute-data-at names no configured satellite",
                   "{\"header\":\"skyroute-data-at\"}");
            return;
        }
        sr_str_copy(spec.w.data_at, sizeof(spec.w.data_at), data_at);
    }
    int64_t now = sr_now_ms();
    size_t plen;
    spec.payload = sr_req_body(req, &plen);
    spec.payload_len = plen;
    spec.w.work_gop = work;
    spec.w.bytes_in = (int64_t)plen;
    spec.w.result_bytes = (int64_t)rbytes;
    spec.w.deadline_ms = now + (int64_t)deadline;
    spec.iat_ms = now;
    memcpy(spec.handler, handler, hlen + 1); /* hlen < SR_ENV_STRMAX, checked above */
    sr_envelope_new_id(spec.id);
    if (has_work) {
        spec.env_flags |= SR_ENV_HAS_WORK;
    }
    if (has_rbytes) {
        spec.env_flags |= SR_ENV_HAS_RESULT_BYTES;
    }
    const char *prefer = sr_req_header(req, "prefer");
    if (prefer && strstr(prefer, "respond-async")) {
        spec.w.store_and_forward = true;
        gw_spool_submit(g, req, &spec, client, "");
        return;
    }
    struct sync_wl *s = calloc(1, sizeof(*s));
    if (!s) {
        refuse(g, req, 503, "out of memory", NULL);
        return;
    }
    s->gw = g;
    s->req = req;
    s->start_mono = sr_req_start_mono(req);
    memcpy(s->handler, spec.handler, hlen + 1);
    s->job = gw_job_start(g, &spec, sync_done, s);
    if (!s->job) {
        free(s);
        refuse(g, req, 503, "out of memory", NULL);
        return;
    }
    sr_req_set_data(req, s);
    sr_req_set_abort(req, sync_abort);
}

const char *const gw_main_never_index[] = {"skyroute-id", "skyroute-predicted-ms",
                                           "skyroute-elapsed-ms", NULL};

void gw_main_handler(sr_req *req, void *arg)
{
    struct gw *g = arg;
    const char *path = sr_req_path(req);
    size_t plen = strcspn(path, "?");
    const char *m = sr_req_method(req);
    /* operator uploads carry their own signature; everything else needs a client */
    const char *client = "";
    bool signed_put = !strcmp(m, "PUT") && sr_req_header(req, "skyroute-signature");
    bool signed_upload =
        signed_put ||
        (plen == 10 && (!strncmp(path, "/v1/uplink", 10) || !strncmp(path, "/v1/outbox", 10)));
    if (signed_put && !gw_auth_signed_check(g, req)) {
        return; /* answered 429 before its signature cost anything */
    }
    if (!signed_upload && !gw_auth_check(g, req, &client)) {
        return; /* answered 401 or 429 */
    }
    if (plen == 13 && !strncmp(path, "/v1/workloads", 13)) {
        if (strcmp(m, "POST") != 0) {
            gw_status_count(g, 405);
            sr_req_respond_error(req, 405, "POST a payload to /v1/workloads", NULL);
            return;
        }
        handle_workload(g, req, client);
        return;
    }
    if (gw_spool_handle(g, req, client) || gw_outbox_handle(g, req) || gw_feeds_handle(g, req) ||
        gw_route_handle(g, req) || gw_cluster_handle(g, req)) {
        return;
    }
    gw_status_count(g, 404);
    sr_req_respond_error(req, 404, "no such path", NULL);
}
