/*
 * skyrouted: the ground-station gateway daemon.
 *
 * POST /v1/workloads (synchronous path, DESIGN section 6): the request body
 * is the payload; the router ranks the targets; the payload is sealed in a
 * signed envelope addressed to the first feasible target and sent over the
 * pooled HTTP/2 connection; the signed result is verified (signer must be
 * that target, id must match, addressed to us) before anything reaches the
 * client.
 *
 * Retries: a dispatch that never left (connect refused, target in backoff,
 * REFUSED_STREAM, beyond GOAWAY's last stream) is retried on the next
 * candidate under the same envelope id. One lost after it was sent may have
 * run, so it ends in 502 rather than running twice somewhere else.
 */
#include "gateway/gw.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <event2/event.h>

#define MAX_CANDIDATES 64

static const char usage_text[] =
    "usage: skyrouted -c FILE [--check-config] [--log-level LEVEL]\n"
    "\n"
    "The skyroute ground-station gateway. Serves POST /v1/workloads over HTTP/2\n"
    "(h2c, prior knowledge) and /metrics, /healthz, /readyz on the admin listener.\n"
    "\n"
    "  -c, --config FILE   INI configuration ([gateway], [idc.ID], [satellite.ID])\n"
    "  --check-config      validate the configuration, name the line of any error, exit\n"
    "  --log-level LEVEL   error, warn, info or debug (overrides the config)\n"
    "  --help, --version\n";

struct attempt {
    size_t target;
    char why[160];
};

struct workload {
    struct gw *gw;
    sr_req *req;
    struct sr_envelope env;
    struct sr_workload w;
    int64_t start_mono;
    struct sr_candidate cands[MAX_CANDIDATES];
    size_t ncands, next;
    size_t cur_target;
    double cur_predicted;
    bool dispatched; /* cur_target / cur_predicted are set */
    sr_h2_call *call;
    struct attempt attempts[8];
    size_t nattempts;
    char idhex[2 * SR_ENV_IDBYTES + 1];
};

static void count_request(struct gw *g, int status, const struct workload *wl)
{
    char labels[48];
    snprintf(labels, sizeof(labels), "code=\"%d\"", status);
    sr_metrics_add(g->metrics, "skyroute_requests_total", labels, 1);
    if (wl) {
        double elapsed = (double)(sr_mono_ms() - wl->start_mono);
        sr_metrics_observe(g->metrics, "skyroute_request_duration_seconds", "", elapsed / 1000.0);
        const struct sr_target_info *ti =
            wl->dispatched ? sr_router_target(g->router, wl->cur_target) : NULL;
        size_t blen;
        sr_req_body(wl->req, &blen);
        struct gw_event ev = {
            .t_ms = sr_now_ms(),
            .id = wl->idhex,
            .peer = sr_req_peer(wl->req),
            .method = sr_req_method(wl->req),
            .path = sr_req_path(wl->req),
            .status = status,
            .handler = wl->env.handler,
            .target = ti ? ti->id : "",
            .kind = !ti                               ? ""
                    : ti->kind == SR_TARGET_SATELLITE ? "satellite"
                                                      : "idc",
            .predicted_ms = wl->dispatched ? wl->cur_predicted : 0,
            .elapsed_ms = elapsed,
            .bytes_in = blen,
            .attempts = (int)wl->nattempts + (wl->dispatched && status != 499 ? 1 : 0),
        };
        gw_status_record(g, &ev);
    }
}

static void wl_free(struct workload *wl)
{
    if (wl->call) {
        sr_h2_cancel(wl->call);
    }
    free(wl);
}

static void wl_error(struct workload *wl, int status, const char *msg, const char *detail)
{
    count_request(wl->gw, status, wl);
    sr_req_set_abort(wl->req, NULL);
    sr_req_respond_error(wl->req, status, msg, detail);
    wl_free(wl);
}

static void wl_abort(sr_req *req, void *data)
{
    (void)req;
    struct workload *wl = data;
    if (wl->call) {
        sr_router_end(wl->gw->router, wl->cur_target);
    }
    count_request(wl->gw, 499, wl);
    wl_free(wl);
}

/* JSON list of candidates and why each could not take the work. */
static void candidates_json(struct workload *wl, sr_buf *b)
{
    struct gw *g = wl->gw;
    int rv = sr_buf_appendf(b, "{\"id\":\"%s\",\"deadline_ms\":%lld,\"candidates\":[", wl->idhex,
                            (long long)(wl->w.deadline_ms - sr_now_ms()));
    for (size_t i = 0; rv == 0 && i < wl->ncands; i++) {
        const struct sr_candidate *c = &wl->cands[i];
        const char *why = c->why;
        for (size_t a = 0; a < wl->nattempts; a++) {
            if (wl->attempts[a].target == c->target) {
                why = wl->attempts[a].why;
            }
        }
        rv = sr_buf_appendf(b, "%s{\"target\":", i ? "," : "");
        const char *id = sr_router_target(g->router, c->target)->id;
        rv = rv ? rv : sr_buf_append_json_str(b, id, strlen(id));
        rv = rv ? rv : sr_buf_appendf(b, ",\"predicted_ms\":%.1f,\"why\":", c->predicted_ms);
        rv = rv ? rv : sr_buf_append_json_str(b, why, strlen(why));
        rv = rv ? rv : sr_buf_append(b, "}", 1);
    }
    rv = rv ? rv : sr_buf_append(b, "]}", 2);
    rv = rv ? rv : sr_buf_terminate(b);
    if (rv) {
        sr_buf_reset(b);
        if (sr_buf_append(b, "null", 5) != 0) {
            return;
        }
    }
}

static void wl_no_target(struct workload *wl, int status, const char *msg)
{
    sr_buf b;
    sr_buf_init(&b, 1 << 20);
    candidates_json(wl, &b);
    wl_error(wl, status, msg, b.data ? (const char *)b.data : NULL);
    sr_buf_free(&b);
}

static void dispatch(struct workload *wl);

static void record_attempt(struct workload *wl, const char *why)
{
    if (wl->nattempts < sizeof(wl->attempts) / sizeof(wl->attempts[0])) {
        struct attempt *a = &wl->attempts[wl->nattempts++];
        a->target = wl->cur_target;
        snprintf(a->why, sizeof(a->why), "%s", why);
    }
}

static void count_dispatch(struct gw *g, size_t target, const char *outcome)
{
    char labels[160];
    snprintf(labels, sizeof(labels), "target=\"%s\",outcome=\"%s\"",
             sr_router_target(g->router, target)->id, outcome);
    sr_metrics_add(g->metrics, "skyroute_dispatch_total", labels, 1);
}

static void on_result(const struct sr_h2_response *resp, void *arg)
{
    struct workload *wl = arg;
    struct gw *g = wl->gw;
    wl->call = NULL;
    sr_router_end(g->router, wl->cur_target);
    const struct sr_target_info *ti = sr_router_target(g->router, wl->cur_target);
    int64_t now = sr_now_ms();

    if (resp->error) {
        sr_router_failure(g->router, wl->cur_target, now);
        count_dispatch(g, wl->cur_target, resp->sent ? "lost" : "unreachable");
        record_attempt(wl, resp->detail);
        if (resp->error == SR_ERR_TIMEOUT) {
            char d[256];
            snprintf(d, sizeof(d), "{\"id\":\"%s\",\"target\":\"%s\"}", wl->idhex, ti->id);
            wl_error(wl, 504, "the target did not answer within the deadline", d);
            return;
        }
        if (!resp->sent && now < wl->w.deadline_ms) {
            dispatch(wl); /* never reached the target: safe to try the next one */
            return;
        }
        sr_buf b;
        sr_buf_init(&b, 4096);
        int rv = sr_buf_appendf(
            &b, "{\"id\":\"%s\",\"target\":\"%s\",\"retry_safe\":false,\"why\":", wl->idhex,
            ti->id);
        rv = rv ? rv : sr_buf_append_json_str(&b, resp->detail, strlen(resp->detail));
        rv = rv ? rv : sr_buf_append(&b, "}", 1);
        rv = rv ? rv : sr_buf_terminate(&b);
        wl_error(wl, 502, "the target failed while running the workload",
                 rv ? NULL : (const char *)b.data);
        sr_buf_free(&b);
        return;
    }
    if (resp->status != 200 && resp->status != 409) {
        /* The target refused our envelope: report its words. */
        sr_router_failure(g->router, wl->cur_target, now);
        count_dispatch(g, wl->cur_target, "refused");
        sr_buf b;
        sr_buf_init(&b, 8192);
        int rv = sr_buf_appendf(&b, "{\"id\":\"%s\",\"target\":\"%s\",\"status\":%d,\"body\":",
                                wl->idhex, ti->id, resp->status);
        size_t show = resp->body_len < 1024 ? resp->body_len : 1024;
        rv = rv ? rv : sr_buf_append_json_str(&b, (const char *)resp->body, show);
        rv = rv ? rv : sr_buf_append(&b, "}", 1);
        rv = rv ? rv : sr_buf_terminate(&b);
        wl_error(wl, 502, "the target refused the envelope", rv ? NULL : (const char *)b.data);
        sr_buf_free(&b);
        return;
    }

    /* Verify the signed result before anything reaches the client. */
    struct sr_envelope res;
    char why[200] = "";
    struct sr_open_opts oo = {
        .trust = g->ring,
        .self_id = g->cfg->id,
        .now_ms = now,
        .max_len = g->cfg->max_body + 65536,
        .kinds = 1u << SR_KIND_RESULT,
    };
    int rv = sr_envelope_open(&res, resp->body, resp->body_len, &oo, why, sizeof(why));
    if (rv == 0 && (memcmp(res.id, wl->env.id, SR_ENV_IDBYTES) != 0)) {
        rv = SR_ERR_ENV_BODY;
        snprintf(why, sizeof(why), "result id does not match the workload id");
    }
    if (rv == 0 && (!res.signer_name || strcmp(res.signer_name, ti->id) != 0 ||
                    strcmp(res.src, ti->id) != 0)) {
        rv = SR_ERR_ENV_UNTRUSTED;
        snprintf(why, sizeof(why), "result signed by '%s' (src '%s'), not by target '%s'",
                 res.signer_name ? res.signer_name : "?", res.src, ti->id);
    }
    if (rv != 0) {
        sr_router_failure(g->router, wl->cur_target, now);
        count_dispatch(g, wl->cur_target, "bad_result");
        char labels[160];
        snprintf(labels, sizeof(labels), "target=\"%s\",reason=\"%s\"", ti->id, sr_errname(rv));
        sr_metrics_add(g->metrics, "skyroute_signature_failures_total", labels, 1);
        sr_log(SR_LOG_WARN, "workload %s: result from %s refused: %s: %s", wl->idhex, ti->id,
               sr_strerror(rv), why);
        sr_buf b;
        sr_buf_init(&b, 4096);
        int e = sr_buf_appendf(&b, "{\"id\":\"%s\",\"target\":\"%s\",\"code\":\"%s\",\"why\":",
                               wl->idhex, ti->id, sr_errname(rv));
        e = e ? e : sr_buf_append_json_str(&b, why, strlen(why));
        e = e ? e : sr_buf_append(&b, "}", 1);
        e = e ? e : sr_buf_terminate(&b);
        wl_error(wl, 502, "the result failed verification and was discarded",
                 e ? NULL : (const char *)b.data);
        sr_buf_free(&b);
        return;
    }

    double elapsed = (double)(sr_mono_ms() - wl->start_mono);
    sr_router_success(g->router, wl->cur_target, elapsed, wl->cur_predicted, wl->w.work_gop, now);
    count_dispatch(g, wl->cur_target, "ok");
    if ((res.flags & SR_ENV_HAS_STATUS) && res.status != 0) {
        char d[600];
        sr_buf b;
        sr_buf_init(&b, sizeof(d));
        int e = sr_buf_appendf(&b, "{\"id\":\"%s\",\"target\":\"%s\",\"status\":%lld,\"why\":",
                               wl->idhex, ti->id, (long long)res.status);
        e = e ? e : sr_buf_append_json_str(&b, res.error, strlen(res.error));
        e = e ? e : sr_buf_append(&b, "}", 1);
        e = e ? e : sr_buf_terminate(&b);
        int status = (res.status >= 400 && res.status < 500) ? 422 : 502;
        wl_error(wl, status, "the handler failed at the target", e ? NULL : (const char *)b.data);
        sr_buf_free(&b);
        return;
    }
    char predicted[32], elapsed_s[32];
    snprintf(predicted, sizeof(predicted), "%.0f", wl->cur_predicted);
    snprintf(elapsed_s, sizeof(elapsed_s), "%.0f", elapsed);
    char signer[SR_KEYIDBYTES * 2 + 1];
    sr_hex(signer, res.signer, SR_KEYIDBYTES);
    char signer_hdr[SR_ENV_STRMAX + 40];
    snprintf(signer_hdr, sizeof(signer_hdr), "%s %s", res.signer_name, signer);
    const struct sr_http_header h[] = {
        {"content-type", "application/octet-stream"},
        {"skyroute-id", wl->idhex},
        {"skyroute-target", ti->id},
        {"skyroute-predicted-ms", predicted},
        {"skyroute-elapsed-ms", elapsed_s},
        {"skyroute-signer", signer_hdr},
    };
    count_request(g, 200, wl);
    sr_req_set_abort(wl->req, NULL);
    sr_req_respond(wl->req, 200, h, sizeof(h) / sizeof(h[0]), res.payload, res.payload_len, false);
    wl_free(wl);
}

static void dispatch(struct workload *wl)
{
    struct gw *g = wl->gw;
    while (wl->next < wl->ncands) {
        const struct sr_candidate *c = &wl->cands[wl->next++];
        if (!c->feasible) {
            break; /* feasible ones come first */
        }
        struct target_rt *t = NULL;
        for (size_t i = 0; i < g->ntargets; i++) {
            if (g->targets[i].router_idx == (int)c->target) {
                t = &g->targets[i];
            }
        }
        if (!t) {
            continue;
        }
        int64_t now = sr_now_ms();
        int64_t left = wl->w.deadline_ms - now;
        if (left <= 0) {
            break;
        }
        snprintf(wl->env.dst, sizeof(wl->env.dst), "%s", t->cfg->id);
        sr_buf env;
        sr_buf_init(&env, g->cfg->max_body + 65536);
        int rv = sr_envelope_seal(&env, g->key, &wl->env);
        if (rv != 0) {
            sr_buf_free(&env);
            wl_error(wl, rv == SR_ERR_NOMEM ? 503 : 500, "cannot seal the envelope", NULL);
            return;
        }
        wl->cur_target = c->target;
        wl->cur_predicted = c->predicted_ms;
        wl->dispatched = true;
        static const struct sr_http_header h[] = {{"content-type", "application/vnd.msgpack"}};
        sr_router_begin(g->router, c->target);
        wl->call = sr_h2_request(g->pool, t->cfg->url, "POST", "/v1/exec", h, 1, env.data, env.len,
                                 left, on_result, wl);
        sr_buf_free(&env);
        if (!wl->call) {
            sr_router_end(g->router, c->target);
            wl_error(wl, 503, "out of memory", NULL);
        }
        return;
    }
    wl_no_target(wl, 503,
                 wl->nattempts ? "no target could take the workload"
                               : "no target can meet the deadline");
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

static void handle_workload(struct gw *g, sr_req *req)
{
    if (g->draining) {
        count_request(g, 503, NULL);
        sr_req_respond_error(req, 503, "gateway is shutting down", NULL);
        return;
    }
    const char *bad_hdr = NULL;
    bool bad = false;
    double deadline = (double)g->cfg->default_deadline_ms, work = 0, rbytes = 0;
    header_num(req, "skyroute-deadline-ms", &deadline, 1, (double)g->cfg->max_deadline_ms, &bad);
    if (bad && !bad_hdr) {
        bad_hdr = "skyroute-deadline-ms";
    }
    header_num(req, "skyroute-work", &work, 0, 1e12, &bad);
    if (bad && !bad_hdr) {
        bad_hdr = "skyroute-work";
    }
    header_num(req, "skyroute-result-bytes", &rbytes, 0, 1e12, &bad);
    if (bad && !bad_hdr) {
        bad_hdr = "skyroute-result-bytes";
    }
    if (bad_hdr) {
        char d[200];
        snprintf(d, sizeof(d), "{\"header\":\"%s\",\"value\":\"%s\"}", bad_hdr,
                 "not a number in range");
        count_request(g, 400, NULL);
        sr_req_respond_error(req, 400, "bad header value", d);
        return;
    }
    const char *handler = sr_req_header(req, "skyroute-handler");
    if (!handler) {
        handler = "echo";
    }
    if (!handler[0] || strlen(handler) >= SR_ENV_STRMAX) {
        count_request(g, 400, NULL);
        sr_req_respond_error(req, 400, "bad header value",
                             "{\"header\":\"skyroute-handler\",\"value\":\"1-63 bytes\"}");
        return;
    }
    struct workload *wl = calloc(1, sizeof(*wl));
    if (!wl) {
        count_request(g, 503, NULL);
        sr_req_respond_error(req, 503, "out of memory", NULL);
        return;
    }
    wl->gw = g;
    wl->req = req;
    wl->start_mono = sr_req_start_mono(req);
    if (sr_place_parse(&wl->w, sr_req_header(req, "skyroute-place")) != 0) {
        free(wl);
        count_request(g, 400, NULL);
        sr_req_respond_error(req, 400, "bad header value",
                             "{\"header\":\"skyroute-place\",\"value\":\"any, orbit, ground or "
                             "target:ID\"}");
        return;
    }
    if (wl->w.place == SR_PLACE_TARGET && sr_router_find(g->router, wl->w.place_target) < 0) {
        free(wl);
        count_request(g, 422, NULL);
        sr_req_respond_error(req, 422, "skyroute-place names an unknown target", NULL);
        return;
    }
    int64_t now = sr_now_ms();
    size_t plen;
    const uint8_t *payload = sr_req_body(req, &plen);
    wl->w.work_gop = work;
    wl->w.bytes_in = (int64_t)plen;
    wl->w.result_bytes = (int64_t)rbytes;
    wl->w.deadline_ms = now + (int64_t)deadline;

    struct sr_envelope *e = &wl->env;
    e->kind = SR_KIND_WORKLOAD;
    sr_envelope_new_id(e->id);
    sr_hex(wl->idhex, e->id, SR_ENV_IDBYTES);
    e->iat = now;
    e->exp = wl->w.deadline_ms;
    snprintf(e->src, sizeof(e->src), "%s", g->cfg->id);
    snprintf(e->handler, sizeof(e->handler), "%s", handler);
    e->payload = payload;
    e->payload_len = plen;
    e->flags = 0;
    if (sr_req_header(req, "skyroute-work")) {
        e->flags |= SR_ENV_HAS_WORK;
        e->work = work;
    }
    if (sr_req_header(req, "skyroute-result-bytes")) {
        e->flags |= SR_ENV_HAS_RESULT_BYTES;
        e->result_bytes = (int64_t)rbytes;
    }
    wl->ncands = sr_router_rank(g->router, &wl->w, now, wl->cands, MAX_CANDIDATES);
    sr_req_set_data(req, wl);
    sr_req_set_abort(req, wl_abort);
    dispatch(wl);
}

void gw_main_handler(sr_req *req, void *arg)
{
    struct gw *g = arg;
    const char *path = sr_req_path(req);
    size_t plen = strcspn(path, "?");
    const char *m = sr_req_method(req);
    /* operator uploads carry their own signature; everything else needs a client */
    const char *client = "";
    bool signed_upload = !strcmp(m, "PUT") && sr_req_header(req, "skyroute-signature");
    if (!signed_upload && !gw_auth_check(g, req, &client)) {
        return; /* answered 401 or 429 */
    }
    if (plen == 13 && !strncmp(path, "/v1/workloads", 13)) {
        if (strcmp(m, "POST") != 0) {
            count_request(g, 405, NULL);
            sr_req_respond_error(req, 405, "POST a payload to /v1/workloads", NULL);
            return;
        }
        handle_workload(g, req);
        return;
    }
    if (gw_feeds_handle(g, req) || gw_route_handle(g, req)) {
        return;
    }
    count_request(g, 404, NULL);
    sr_req_respond_error(req, 404, "no such path", NULL);
}

static void admin_handler(sr_req *req, void *arg)
{
    struct gw *g = arg;
    if (!sr_admin_serve(req, g->metrics, !g->draining) && !gw_status_handle(g, req)) {
        sr_req_respond_error(req, 404, "no such path", NULL);
    }
}

static void drain_check(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct gw *g = arg;
    size_t inflight = sr_http_server_inflight(g->main) +
                      (g->tls_server ? sr_http_server_inflight(g->tls_server) : 0);
    if (inflight == 0 || sr_mono_ms() > g->drain_deadline_mono) {
        event_base_loopexit(g->base, NULL);
    }
}

static void on_term(void *arg)
{
    struct gw *g = arg;
    if (g->draining) {
        event_base_loopexit(g->base, NULL);
        return;
    }
    g->draining = true;
    sr_log(SR_LOG_INFO, "draining: %zu requests in flight", sr_http_server_inflight(g->main));
    sr_http_server_stop_listening(g->main);
    if (g->tls_server) {
        sr_http_server_stop_listening(g->tls_server);
    }
    g->drain_deadline_mono = sr_mono_ms() + g->cfg->max_deadline_ms;
    g->drain_timer = event_new(g->base, -1, EV_PERSIST, drain_check, g);
    struct timeval tv = {0, 50000};
    event_add(g->drain_timer, &tv);
}

static void reload_targets(struct gw *g);

/* SIGHUP: reload what can change without a restart. */
static void on_hup(void *arg)
{
    struct gw *g = arg;
    sr_log(SR_LOG_INFO, "SIGHUP: reloading");
    gw_tls_reload(g);
    gw_auth_reload(g);
    reload_targets(g);
}

static int usage_error(const char *msg)
{
    fprintf(stderr, "skyrouted: %s\n%s", msg, usage_text);
    return 2;
}

/*
 * Builds the target table and the ring of their keys from |cfg|: targets the
 * router already knows keep their index (and their observed state); new ones
 * are added. Used at start-up and by SIGHUP. On failure nothing is changed
 * (the router may have gained entries, which stay unused).
 */
static int build_targets(struct gw *g, struct sr_config *cfg, struct target_rt **out, size_t *nout,
                         sr_keyring **ring_out, char *err, size_t errlen)
{
    sr_keyring *ring = NULL;
    struct target_rt *tt = calloc(cfg->ntargets ? cfg->ntargets : 1, sizeof(*tt));
    if (!tt || sr_keyring_new(&ring) != 0) {
        free(tt);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    size_t n = 0;
    for (size_t i = 0; i < cfg->ntargets; i++) {
        struct sr_target_cfg *tc = &cfg->targets[i];
        int rv = sr_keyring_add(ring, tc->pubkey, tc->id);
        if (rv == SR_ERR_EXISTS) {
            snprintf(err, errlen, "%s:%d: [%s] uses a public key another target already uses",
                     cfg->path, tc->line, tc->id);
            goto fail;
        }
        if (rv != 0) {
            snprintf(err, errlen, "out of memory");
            goto fail;
        }
        int idx = sr_router_find(g->router, tc->id);
        if (idx < 0) {
            struct sr_target_info ti;
            memset(&ti, 0, sizeof(ti));
            snprintf(ti.id, sizeof(ti.id), "%s", tc->id);
            ti.kind = (sr_target_kind)tc->kind;
            ti.prior_rtt_ms = tc->rtt_ms;
            ti.gops = tc->gops;
            idx = sr_router_add_target(g->router, &ti);
        }
        if (idx < 0) {
            snprintf(err, errlen, "%s:%d: target %s: %s", cfg->path, tc->line, tc->id,
                     sr_strerror(idx));
            goto fail;
        }
        tt[n].cfg = tc;
        tt[n].router_idx = idx;
        n++;
    }
    *out = tt;
    *nout = n;
    *ring_out = ring;
    return 0;
fail:
    free(tt);
    sr_keyring_free(ring);
    return -1;
}

static int setup(struct gw *g, char *err, size_t errlen)
{
    struct sr_config *cfg = g->cfg;
    if (sr_key_load(&g->key, cfg->key_path, err, errlen) != 0) {
        char tmp[300];
        snprintf(tmp, sizeof(tmp), "%s: key %s: %s", cfg->path, cfg->key_path, err);
        snprintf(err, errlen, "%s", tmp);
        return -1;
    }
    if (sr_router_new(&g->router) != 0 || sr_metrics_new(&g->metrics) != 0) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    g->tcfg = cfg;
    return build_targets(g, cfg, &g->targets, &g->ntargets, &g->ring, err, errlen);
}

/*
 * SIGHUP: targets and their keys from the config file as it is now. Added
 * targets are used at once; removed ones get no new work; a changed url or
 * key applies to the next dispatch. Work in flight is not touched. A config
 * that does not load changes nothing.
 */
static void reload_targets(struct gw *g)
{
    struct sr_config *cfg = NULL;
    char err[600];
    struct target_rt *tt = NULL;
    size_t n = 0;
    sr_keyring *ring = NULL;
    if (sr_config_load(&cfg, g->cfg->path, err, sizeof(err)) != 0 ||
        build_targets(g, cfg, &tt, &n, &ring, err, sizeof(err)) != 0) {
        sr_log(SR_LOG_ERROR, "target reload failed, keeping the current targets: %s", err);
        sr_metrics_add(g->metrics, "skyroute_reloads_total", "part=\"targets\",outcome=\"failed\"",
                       1);
        sr_config_free(cfg);
        return;
    }
    free(g->targets);
    sr_keyring_free(g->ring);
    if (g->tcfg != g->cfg) {
        sr_config_free(g->tcfg);
    }
    g->targets = tt;
    g->ntargets = n;
    g->ring = ring;
    g->tcfg = cfg;
    sr_log(SR_LOG_INFO, "targets reloaded: %zu", n);
    sr_metrics_add(g->metrics, "skyroute_reloads_total", "part=\"targets\",outcome=\"ok\"", 1);
}

static void describe_metrics(sr_metrics *m)
{
    sr_metrics_describe(m, "skyroute_requests_total", "counter",
                        "Workload API requests by response status.");
    sr_metrics_describe(m, "skyroute_request_duration_seconds", "histogram",
                        "Time from request headers to response.");
    sr_metrics_describe(m, "skyroute_dispatch_total", "counter",
                        "Dispatches to targets by outcome (ok, unreachable, lost, refused, "
                        "bad_result).");
    sr_metrics_describe(m, "skyroute_signature_failures_total", "counter",
                        "Results that failed envelope verification, by target and reason.");
    sr_metrics_add(m, "skyroute_signature_failures_total", "", 0);
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, 0, 'c'},    {"check-config", no_argument, 0, 'C'},
        {"log-level", required_argument, 0, 'L'}, {"help", no_argument, 0, 'h'},
        {"version", no_argument, 0, 'V'},         {0, 0, 0, 0},
    };
    const char *config = NULL, *level = NULL;
    bool check = false;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, "c:", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            config = optarg;
            break;
        case 'C':
            check = true;
            break;
        case 'L':
            level = optarg;
            break;
        case 'h':
            fputs(usage_text, stdout);
            return 0;
        case 'V':
            printf("skyrouted %s\n", SR_VERSION);
            return 0;
        default: {
            char msg[128];
            if (optopt) {
                snprintf(msg, sizeof(msg), "option '-%c' is unknown or needs an argument", optopt);
            } else {
                snprintf(msg, sizeof(msg), "option '%s' is unknown or needs an argument",
                         argv[optind - 1]);
            }
            return usage_error(msg);
        }
        }
    }
    if (optind < argc) {
        return usage_error("unexpected argument");
    }
    if (!config) {
        return usage_error("missing -c FILE");
    }
    if (sr_crypto_init() != 0) {
        fprintf(stderr, "skyrouted: libsodium failed to initialise\n");
        return 1;
    }
    struct gw g;
    memset(&g, 0, sizeof(g));
    char err[600];
    int rc = 1;
    if (sr_config_load(&g.cfg, config, err, sizeof(err)) != 0) {
        fprintf(stderr, "skyrouted: %s\n", err);
        return 1;
    }
    const char *lv = level ? level : g.cfg->log_level;
    sr_log_level = !strcmp(lv, "debug")   ? SR_LOG_DEBUG
                   : !strcmp(lv, "warn")  ? SR_LOG_WARN
                   : !strcmp(lv, "error") ? SR_LOG_ERROR
                                          : SR_LOG_INFO;
    g.check_only = check;
    g.base = event_base_new();
    if (!g.base || sr_h2_pool_new(&g.pool, g.base) != 0) {
        fprintf(stderr, "skyrouted: cannot create the event loop\n");
        goto out;
    }
    if (setup(&g, err, sizeof(err)) != 0) {
        fprintf(stderr, "skyrouted: %s\n", err);
        goto out;
    }
    if (!check && mkdir(g.cfg->state_dir, 0750) != 0 && errno != EEXIST) {
        fprintf(stderr, "skyrouted: state_dir %s: %s\n", g.cfg->state_dir, strerror(errno));
        goto out;
    }
    describe_metrics(g.metrics);
    if (gw_feeds_init(&g, err, sizeof(err)) != 0 || gw_route_init(&g, err, sizeof(err)) != 0 ||
        gw_tls_init(&g, err, sizeof(err)) != 0 || gw_auth_init(&g, err, sizeof(err)) != 0 ||
        gw_status_init(&g, err, sizeof(err)) != 0) {
        fprintf(stderr, "skyrouted: %s\n", err);
        goto out;
    }
    if (check) {
        printf("%s: OK (gateway %s, %zu targets)\n", config, g.cfg->id, g.ntargets);
        rc = 0;
        goto out;
    }
    /* before listening: a SIGTERM that arrives once the port is open is caught */
    if (sr_signals_install(g.base, on_term, on_hup, &g) != 0) {
        fprintf(stderr, "skyrouted: cannot install signal handlers\n");
        goto out;
    }
    struct sr_http_server_opts so = {.listen = g.cfg->listen,
                                     .max_body = g.cfg->max_body,
                                     .max_streams = g.cfg->max_streams,
                                     .handler = gw_main_handler,
                                     .arg = &g};
    if (sr_http_server_new(&g.main, g.base, &so, err, sizeof(err)) != 0) {
        fprintf(stderr, "skyrouted: %s\n", err);
        goto out;
    }
    if (g.cfg->admin[0]) {
        struct sr_http_server_opts ao = {
            .listen = g.cfg->admin, .allow_http1 = true, .handler = admin_handler, .arg = &g};
        if (sr_http_server_new(&g.admin, g.base, &ao, err, sizeof(err)) != 0) {
            fprintf(stderr, "skyrouted: %s\n", err);
            goto out;
        }
    }
    if (gw_tls_listen(&g, err, sizeof(err)) != 0) {
        fprintf(stderr, "skyrouted: [tls] %s\n", err);
        goto out;
    }
    sr_log(SR_LOG_INFO, "skyrouted %s: gateway %s on %s (admin %s), %zu targets", SR_VERSION,
           g.cfg->id, g.cfg->listen, g.cfg->admin[0] ? g.cfg->admin : "off", g.ntargets);
    event_base_dispatch(g.base);
    sr_log(SR_LOG_INFO, "skyrouted stopped");
    rc = 0;
out:
    /* reverse order of creation; every free accepts NULL */
    sr_http_server_free(g.main);
    sr_http_server_free(g.admin);
    gw_tls_free(&g);
    gw_auth_free(&g);
    gw_status_free(&g);
    gw_route_free(&g);
    gw_feeds_free(&g);
    sr_h2_pool_free(g.pool);
    if (g.drain_timer) {
        event_free(g.drain_timer);
    }
    sr_signals_remove();
    if (g.base) {
        event_base_free(g.base);
    }
    sr_metrics_free(g.metrics);
    sr_router_free(g.router);
    sr_keyring_free(g.ring);
    if (g.tcfg != g.cfg) {
        sr_config_free(g.tcfg);
    }
    sr_key_free(g.key);
    free(g.targets);
    sr_config_free(g.cfg);
    return rc;
}
