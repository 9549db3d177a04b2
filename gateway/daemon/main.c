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
#include "gateway/daemon/daemon.h"

#include <errno.h>
#include <getopt.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <event2/event.h>

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

/* A synchronous request: the client waits on its connection for the result. */
struct sync_wl {
    struct gw *gw;
    sr_req *req;
    struct gw_job *job;
    int64_t start_mono;
    char handler[SR_ENV_STRMAX];
};

/* skyroute_requests_total's label set for |status|: a constant for the codes
 * this daemon answers with, formatted into |tmp| for any other. */
static const char *code_labels(int status, char *tmp, size_t tmplen)
{
#define CODE(n)                                                                                    \
    case n:                                                                                        \
        return "code=\"" #n "\""
    switch (status) {
        CODE(200);
        CODE(202);
        CODE(400);
        CODE(401);
        CODE(403);
        CODE(404);
        CODE(405);
        CODE(408);
        CODE(409);
        CODE(413);
        CODE(422);
        CODE(429);
        CODE(499);
        CODE(500);
        CODE(502);
        CODE(503);
        CODE(504);
        CODE(507);
    default:
        break;
    }
#undef CODE
    snprintf(tmp, tmplen, "code=\"%d\"", status);
    return tmp;
}

static void count_request(struct gw *g, int status)
{
    char tmp[48];
    sr_metrics_add(g->metrics, "skyroute_requests_total", code_labels(status, tmp, sizeof(tmp)), 1);
}

/* Metrics, the access log line and the status page's recent list. */
static void record(struct gw *g, sr_req *req, int status, const struct gw_job_result *r,
                   const char *handler, int64_t start_mono)
{
    count_request(g, status);
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
    if (r->status == 200) {
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
    } else if (r->status == 202) {
        /* the best plan waits for a window: a synchronous client cannot */
        char when[SR_RFC3339_LEN], d[400];
        sr_time_format(when, r->wait_until_ms);
        snprintf(d, sizeof(d),
                 "{\"id\":\"%s\",\"target\":\"%s\",\"window_opens\":\"%s\",\"hint\":"
                 "\"submit with prefer: respond-async to wait for it\"}",
                 r->idhex, r->wait_target ? r->wait_target : "", when);
        record(s->gw, req, 503, r, s->handler, s->start_mono);
        sr_req_respond_error(req, 503, "no target can take the workload before its next window", d);
    } else {
        record(s->gw, req, r->status, r, s->handler, s->start_mono);
        sr_req_respond_error(req, r->status, r->error ? r->error : "failed", r->detail_json);
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
        gw_spool_submit(g, req, &spec, client);
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
    bool signed_upload =
        (!strcmp(m, "PUT") && sr_req_header(req, "skyroute-signature")) ||
        (plen == 10 && (!strncmp(path, "/v1/uplink", 10) || !strncmp(path, "/v1/outbox", 10)));
    if (!signed_upload && !gw_auth_check(g, req, &client)) {
        return; /* answered 401 or 429 */
    }
    if (plen == 13 && !strncmp(path, "/v1/workloads", 13)) {
        if (strcmp(m, "POST") != 0) {
            count_request(g, 405);
            sr_req_respond_error(req, 405, "POST a payload to /v1/workloads", NULL);
            return;
        }
        handle_workload(g, req, client);
        return;
    }
    if (gw_spool_handle(g, req, client) || gw_feeds_handle(g, req) || gw_route_handle(g, req) ||
        gw_cluster_handle(g, req)) {
        return;
    }
    count_request(g, 404);
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
    bool drained = sr_http_server_drain_step(g->main);
    if (g->tls_server) {
        drained = sr_http_server_drain_step(g->tls_server) && drained; /* step both */
    }
    if (drained || g->drain_goaway) {
        event_base_loopexit(g->base, NULL);
    } else if (sr_mono_ms() > g->drain_deadline_mono) {
        /* work still in flight at the deadline: the final GOAWAY to every
         * connection, and the loop exits at the next check, once the frames
         * are written (a TLS connection writes from the loop) */
        g->drain_goaway = true;
        sr_http_server_goaway(g->main, true);
        if (g->tls_server) {
            sr_http_server_goaway(g->tls_server, true);
        }
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
    sr_http_server_goaway(g->main, false);
    if (g->tls_server) {
        sr_http_server_stop_listening(g->tls_server);
        sr_http_server_goaway(g->tls_server, false);
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
    gw_route_reload(g, cfg);
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
            sr_getopt_error(msg, sizeof(msg), argv, optind, optopt);
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
    /* Keep freed memory rather than hand the heap's top back to the kernel
     * after every burst of requests (under load that was a brk() pair and
     * fresh page faults per loop turn), and take bodies up to 8 MiB from the
     * heap, not from an mmap() each: setting one threshold turns off glibc's
     * own adjustment of the other. */
    mallopt(M_TRIM_THRESHOLD, 32 << 20);
    mallopt(M_MMAP_THRESHOLD, 8 << 20);
    if (gw_cluster_preinit(g.cfg) != 0) { /* [cluster]: libevent must be thread-safe first */
        fprintf(stderr, "skyrouted: cannot initialise threading for [cluster]\n");
        goto out;
    }
    g.base = event_base_new();
    /* three priorities, everything at the middle one by default; the
     * dispatcher seals at the lowest, when a turn has nothing else to run
     * (dispatch.c) */
    if (!g.base || event_base_priority_init(g.base, 3) != 0 ||
        sr_h2_pool_new(&g.pool, g.base) != 0) {
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
        gw_status_init(&g, err, sizeof(err)) != 0 || gw_spool_init(&g, err, sizeof(err)) != 0 ||
        gw_cluster_init(&g, err, sizeof(err)) != 0) {
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
                                     .never_index = gw_main_never_index,
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
    gw_cluster_free(&g); /* before the spool: its pending callbacks run (cancelled) */
    gw_spool_free(&g);
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
