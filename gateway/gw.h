/*
 * Private to skyrouted: the daemon's state and the hooks by which its parts
 * (operator feeds, routing explanations, ...) plug into it. Each part lives in
 * its own gw_*.c file with an init / handle / free triple; skyrouted.c owns
 * the workload path, the listeners and the order of start-up and shut-down.
 */
#ifndef SR_GATEWAY_GW_H
#define SR_GATEWAY_GW_H

#include "gateway/gateway.h"
#include "routing/routing.h"

struct target_rt {
    struct sr_target_cfg *cfg;
    int router_idx;
};

struct gw_feeds; /* gw_feeds.c: operator uploads, schedules, elements, store */
struct gw_route; /* gw_route.c: explanations and energy feeds */

struct gw {
    struct event_base *base;
    struct sr_config *cfg;
    sr_key *key;
    sr_keyring *ring;
    sr_router *router;
    sr_h2_pool *pool;
    sr_metrics *metrics;
    sr_http_server *main, *admin;
    struct target_rt *targets; /* point into tcfg */
    size_t ntargets;
    struct sr_config *tcfg; /* the config the targets come from (cfg, or a reload's) */
    bool draining;
    struct event *drain_timer;
    int64_t drain_deadline_mono;
    bool check_only; /* --check-config: validate, open no store, start nothing */
    struct gw_feeds *feeds;
    struct gw_route *route;
    struct gw_status *status;
    int64_t started_ms;
    struct gw_auth *auth; /* gw_auth.c: [client.NAME] tokens, certificates, limits */
    sr_tls *tls;          /* gw_tls.c: [tls] front door */
    sr_http_server *tls_server;
    char tls_cert[PATH_MAX], tls_key[PATH_MAX], tls_client_ca[PATH_MAX];
};

/* The main listener's request handler (skyrouted.c), shared by the h2c and
 * TLS listeners. */
void gw_main_handler(sr_req *req, void *arg);

/*
 * Each part: init runs after the event loop (g->base, g->pool), the router,
 * keys, targets and metrics exist, and before the listeners open; with
 * g->check_only it validates its configuration and opens nothing (0, or non-zero with "FILE:LINE:
 * ..." or another clear reason in |err|); handle answers a request on the main listener and returns
 * true if the path is its own (it must then respond, now or later); free
 * releases everything (safe after a failed or skipped init).
 */
int gw_feeds_init(struct gw *g, char *err, size_t errlen);
bool gw_feeds_handle(struct gw *g, sr_req *req);
void gw_feeds_free(struct gw *g);

/* [tls]: init validates and loads the certificate; listen opens the TLS
 * listener (after the h2c one); reload (SIGHUP) swaps in a freshly loaded
 * certificate and key, keeping the old ones if the new ones do not load. */
int gw_tls_init(struct gw *g, char *err, size_t errlen);
int gw_tls_listen(struct gw *g, char *err, size_t errlen);
void gw_tls_reload(struct gw *g);
void gw_tls_free(struct gw *g);

/* Client authentication and limits. With no [client.*] section the API is
 * open (loopback development); with any, every request must present a
 * bearer token whose SHA-256 is configured, or a verified TLS client
 * certificate whose CN is. gw_auth_check answers 401 or 429 itself and
 * returns false, or returns true and sets *client (a name, "" when open).
 * reload re-reads the [client.*] sections from the config file (SIGHUP). */
int gw_auth_init(struct gw *g, char *err, size_t errlen);
bool gw_auth_check(struct gw *g, sr_req *req, const char **client);
void gw_auth_reload(struct gw *g);
void gw_auth_free(struct gw *g);

/* One finished request on the workload API, for the JSON access log and the
 * status page (gw_status.c). */
struct gw_event {
    int64_t t_ms;
    const char *id; /* envelope id hex, or "" */
    const char *peer;
    const char *method, *path;
    int status;
    const char *handler; /* "" if none */
    const char *target;  /* "" if not dispatched */
    const char *kind;    /* "idc", "satellite" or "" */
    double predicted_ms, elapsed_ms;
    size_t bytes_in;
    int attempts;
};

/* The access log (one JSON line per request on stdout) and the admin status
 * page (GET /status on the admin listener: HTML, no external assets, with
 * the pass timeline of the next hours and where recent workloads went). */
int gw_status_init(struct gw *g, char *err, size_t errlen);
void gw_status_record(struct gw *g, const struct gw_event *ev);
bool gw_status_handle(struct gw *g, sr_req *req);
void gw_status_free(struct gw *g);

int gw_route_init(struct gw *g, char *err, size_t errlen);
bool gw_route_handle(struct gw *g, sr_req *req);
void gw_route_free(struct gw *g);

#endif
