/*
 * skyrouted: the ground-station gateway daemon. This file is the program:
 * options, the order in which the parts start and stop, the listeners, the
 * admin listener, signals (SIGTERM drains, SIGHUP reloads) and the target
 * table. A workload's way through the parts begins in api.c.
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

static void admin_handler(sr_req *req, void *arg)
{
    struct gw *g = arg;
    if (!strncmp(sr_req_path(req), "/metrics", 8)) {
        gw_feeds_metrics(g, sr_now_ms()); /* ages as of this scrape */
    }
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
    sr_notify_stopping("draining");
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

static bool reload_targets(struct gw *g);

/* Every part reloaded (true) or some kept what it had (false): what an
 * alert on a configuration edit that did not take needs. */
static void reload_done(struct gw *g, bool ok)
{
    sr_metrics_set(g->metrics, "skyroute_config_last_reload_success", "", ok ? 1 : 0);
    if (ok) {
        sr_metrics_set(g->metrics, "skyroute_config_last_reload_success_timestamp_seconds", "",
                       (double)sr_now_ms() / 1000.0);
    }
}

/* SIGHUP: reload what can change without a restart. */
static void on_hup(void *arg)
{
    struct gw *g = arg;
    sr_log(SR_LOG_INFO, "SIGHUP: reloading");
    bool ok = gw_tls_reload(g);
    ok = gw_auth_reload(g) && ok;
    ok = reload_targets(g) && ok;
    reload_done(g, ok);
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
static bool reload_targets(struct gw *g)
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
        return false;
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
    bool ok = gw_route_reload(g, cfg);
    sr_log(SR_LOG_INFO, "targets reloaded: %zu", n);
    sr_metrics_add(g->metrics, "skyroute_reloads_total", "part=\"targets\",outcome=\"ok\"", 1);
    return ok;
}

static void describe_metrics(sr_metrics *m)
{
    sr_metrics_describe(m, "skyroute_requests_total", "counter",
                        "Workload API requests by response status.");
    sr_metrics_histogram(m, "skyroute_request_duration_seconds",
                         "Time from request headers to response.", &sr_buckets_latency);
    sr_metrics_describe(m, "skyroute_dispatch_total", "counter",
                        "Dispatches to targets by outcome (ok, unreachable, lost, refused, "
                        "bad_result).");
    sr_metrics_describe(m, "skyroute_signature_failures_total", "counter",
                        "Results that failed envelope verification, by target and reason.");
    sr_metrics_add(m, "skyroute_signature_failures_total", "", 0);
    sr_metrics_describe(m, "skyroute_outbox_results_sent_total", "counter",
                        "Results of a satellite's own workloads handed back at POST /v1/outbox.");
    sr_metrics_add(m, "skyroute_outbox_results_sent_total", "", 0);
    sr_metrics_describe(m, "skyroute_reloads_total", "counter",
                        "SIGHUP reloads by part (tls, clients, targets, policy) and outcome.");
    sr_metrics_zero(m, "skyroute_reloads_total",
                    (const char *const[]){"part=\"tls\",outcome=\"failed\"",
                                          "part=\"clients\",outcome=\"failed\"",
                                          "part=\"targets\",outcome=\"failed\"",
                                          "part=\"policy\",outcome=\"failed\"", NULL});
    sr_metrics_describe(m, "skyroute_config_last_reload_success", "gauge",
                        "1 if the last configuration load (start-up or SIGHUP) applied every "
                        "part, 0 if some part kept what it had.");
    sr_metrics_describe(m, "skyroute_config_last_reload_success_timestamp_seconds", "gauge",
                        "When the configuration last loaded completely (Unix time).");
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
    reload_done(&g, true); /* the start-up load: a failed one would have stopped here */
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
    gw_preauth_opts(&g, &so);
    if (sr_http_server_new(&g.main, g.base, &so, err, sizeof(err)) != 0) {
        fprintf(stderr, "skyrouted: %s\n", err);
        goto out;
    }
    if (g.cfg->admin[0]) {
        struct sr_http_server_opts ao = {
            .listen = g.cfg->admin, .allow_http1 = true, .handler = admin_handler, .arg = &g};
        gw_preauth_opts(&g, &ao);
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
    /* listening, the store open: the service manager may send traffic */
    char status[200];
    snprintf(status, sizeof(status), "gateway %s on %s, %zu targets", g.cfg->id, g.cfg->listen,
             g.ntargets);
    if (sr_notify_ready(g.base, status) != 0) {
        fprintf(stderr, "skyrouted: cannot start the watchdog timer\n");
        goto out;
    }
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
    sr_notify_free();
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
