/*
 * Private to skyrouted: the daemon's state and what its parts share.
 *
 * The parts, from the bottom up. Each calls only the ones above it in this
 * list; where a lower part must reach a higher one (the spool reaching
 * federation) it owns a struct of callbacks the higher one fills in.
 *
 *   status.c      the access log, request counts, the admin status page, and
 *                 the HTTP status of a job's outcome
 *   auth.c        client tokens and certificates, rates, spool quotas
 *   dispatch.c    one workload's placement: rank (routing/), seal (crypto/),
 *                 send (net/), verify the result; an outcome, not a status
 *   spool.c       asynchronous work: stored (store/), dispatched when due
 *   outbox.c      a satellite's own work and its results
 *   feeds*.c      operator schedules and elements (feeds_int.h)
 *   route.c       explanations, policy and energy feeds
 *   federation*.c [cluster]: other stations over NATS (cluster/, federation_int.h)
 *   tls.c         the TLS listener
 *   api.c         the workload API: where a workload's way begins and ends
 *   main.c        the program: start-up, listeners, signals, shut-down
 *
 * Each part has an init / handle / free triple where it has state: init runs
 * after the event loop (g->base, g->pool), the router, keys, targets and
 * metrics exist, and before the listeners open; with g->check_only it
 * validates its configuration and opens nothing (0, or non-zero with
 * "FILE:LINE: ..." or another clear reason in |err|); handle answers a
 * request on the main listener and returns true if the path is its own (it
 * must then respond, now or later); free releases everything (safe after a
 * failed or skipped init).
 */
#ifndef SR_DAEMON_H
#define SR_DAEMON_H

#include "crypto/crypto.h"
#include "gateway/config/config.h"
#include "gateway/net/net.h"
#include "routing/routing.h"

struct target_rt {
    struct sr_target_cfg *cfg;
    int router_idx;
    bool no_batch; /* answered POST /v1/batch with 404, 405 or 413: one request each */
    /* dispatch.c: the target answered busy (its replay guard is full) and
     * said when it has room again; until then it is sent one probe per
     * GW_BUSY_PROBE_MS, and work goes to the other candidates */
    int64_t busy_until, busy_probe_at; /* ms, wall clock */
};

struct gw_feeds; /* feeds.c: operator uploads, schedules, elements, store */
struct gw_route; /* route.c: explanations and energy feeds */

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
    bool drain_goaway; /* past the deadline: the final GOAWAY to all, exit at the next check */
    struct event *drain_timer;
    int64_t drain_deadline_mono;
    bool check_only; /* --check-config: validate, open no store, start nothing */
    struct gw_feeds *feeds;
    struct gw_route *route;
    struct gw_status *status;
    int64_t started_ms;
    struct gw_spool *spool;
    struct gw_auth *auth; /* auth.c: [client.NAME] tokens, certificates, limits */
    sr_tls *tls;          /* tls.c: [tls] front door */
    sr_http_server *tls_server;
    char tls_cert[PATH_MAX], tls_key[PATH_MAX], tls_client_ca[PATH_MAX];
    struct gw_cluster *cluster; /* federation.c: [cluster] federation over NATS, or NULL */
};

/* ---- a workload on its way: what a job is given and how it ends (dispatch.c) ---------- */

struct gw_job_spec {
    uint8_t id[SR_ENV_IDBYTES]; /* envelope id: the same on every retry of this workload */
    int64_t iat_ms;
    char handler[SR_ENV_STRMAX];
    const uint8_t *payload; /* borrowed until done unless copy_payload */
    size_t payload_len;
    bool copy_payload;
    unsigned env_flags;   /* SR_ENV_HAS_WORK / SR_ENV_HAS_RESULT_BYTES: hints to send */
    struct sr_workload w; /* what the router needs: work, bytes, deadline, placement */
    bool pinned;          /* only w.place_target (re-sending after a loss), no fallback */
    /* Never forwarded to another station (work adopted from one): plans
     * through another station's pass (via_station targets) are skipped. */
    bool local_only;
    /* Called before the envelope leaves for |target| (the spool records it
     * durably first); non-zero ends the job with GW_NOT_RECORDED. */
    int (*before_send)(const char *target, void *arg);
    void *before_send_arg;
};

/*
 * How a job ended. Below the edges a result is an outcome and an sr_error
 * code; the HTTP status a client sees is chosen from them only where a
 * client is answered (gw_outcome_status).
 */
enum gw_outcome {
    GW_DONE,           /* a verified result: payload, signer */
    GW_HANDLER_FAILED, /* a verified result in which the handler failed (handler_status) */
    GW_WAIT,           /* the best plan starts at a later window: wait_until_ms, wait_target
                          (only the spool can wait for it) */
    GW_FORWARD,        /* the best plan leaves through another station's pass: wait_target
                          names the via_station target ("SAT@STATION"), where the spool
                          forwards it (store-and-forward jobs only) */
    GW_NO_TARGET,      /* no candidate can, or could, take it; detail_json names each */
    GW_BUSY,           /* every candidate is busy (backpressure): never sent; wait_until_ms
                          is when the first has room again */
    GW_UNREACHABLE,    /* the one target it may go to could not be reached: never sent */
    GW_TIMEOUT,        /* sent, no answer within the deadline: it may have run */
    GW_LOST,           /* sent, then the exchange failed: it may have run */
    GW_IN_PROGRESS,    /* the target already has it and is still running it */
    GW_RESULT_DROPPED, /* it ran at the target, which no longer holds the result:
                          sending it there again cannot bring it back */
    GW_REFUSED,        /* the target refused the envelope */
    GW_BAD_RESULT,     /* the result failed verification and was discarded */
    GW_NOT_RECORDED,   /* before_send could not record the dispatch durably */
    GW_INTERNAL,       /* out of memory (code SR_ERR_NOMEM), or the envelope could not be sealed */
};

struct gw_job_result {
    enum gw_outcome outcome;
    int code;                /* sr_error: 0 for GW_DONE, GW_HANDLER_FAILED, GW_WAIT and
                                GW_FORWARD; else what went wrong (SR_ERR_TIMEOUT, an
                                SR_ERR_ENV_* of a refused result, ...) */
    const char *error;       /* a message for the client, unless GW_DONE */
    const char *detail_json; /* JSON or NULL */
    const uint8_t *payload;  /* GW_DONE: the verified result payload */
    size_t payload_len;
    uint8_t **payload_mem; /* the malloc'd block |payload| lives in, or NULL: the
                              callback may take it (*payload_mem = NULL) and free it */
    const char *idhex;
    const char *target; /* "" if never dispatched */
    const char *target_kind;
    double predicted_ms, elapsed_ms;
    const char *signer; /* "name keyid" of the verified result, or "" */
    int attempts;
    bool never_sent;        /* no target received it: safe to plan again anywhere */
    int64_t handler_status; /* GW_HANDLER_FAILED: the status the handler reported */
    int64_t wait_until_ms;  /* GW_WAIT, GW_FORWARD: the best plan starts at this window;
                               GW_BUSY: the earliest a busy target has room again */
    const char *wait_target;
    int64_t t_recv, t_done;
    /* GW_DONE, GW_HANDLER_FAILED: the target's signed result as it arrived
     * (the bytes |payload| points into), verified; else NULL */
    const uint8_t *envelope;
    size_t envelope_len;
};

/* ---- what an operator sees (status.c) ------------------------------------------ */

/* One finished request on the workload API, for the JSON access log and the
 * status page (status.c). */
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
/* Counts one answer on the workload API in skyroute_requests_total. */
void gw_status_count(struct gw *g, int status);
/* Answers |req| with a JSON error (sr_req_respond_error's body) and the
 * headers retry-after (whole seconds, at least 1) and skyroute-retry-after-ms
 * for |retry_ms|. Not counted: the caller does. */
void gw_respond_retry(sr_req *req, int status, const char *msg, const char *detail,
                      int64_t retry_ms);
/* Answers |req| with a JSON error (sr_req_respond_error) and counts it. */
void gw_status_refuse(struct gw *g, sr_req *req, int status, const char *msg, const char *detail);
/* The HTTP status a client is answered with for a job that ended as |r|
 * says: 200, 422 (the handler failed on the client's input: a 4xx status),
 * 502 (it may have run, or the answer cannot be trusted), 503, 504, 507 or
 * 500; GW_WAIT and GW_FORWARD, which are not answers, 202 and 307. */
int gw_outcome_status(const struct gw_job_result *r);
bool gw_status_handle(struct gw *g, sr_req *req);
void gw_status_free(struct gw *g);

/* ---- clients (auth.c) ------------------------------------------------------------ */

/* Client authentication and limits. With no [client.*] section the API is
 * open (loopback development); with any, every request must present a
 * bearer token whose SHA-256 is configured, or a verified TLS client
 * certificate whose CN is. gw_auth_check answers 401 or 429 itself and
 * returns false, or returns true and sets *client (a name, "" when open).
 * reload re-reads the [client.*] sections from the config file (SIGHUP). */
int gw_auth_init(struct gw *g, char *err, size_t errlen);
bool gw_auth_check(struct gw *g, sr_req *req, const char **client);
bool gw_auth_reload(struct gw *g); /* false: kept the clients it had */
void gw_auth_free(struct gw *g);
/* Bytes a client may hold in the spool (0 = no per-client limit). */
uint64_t gw_auth_spool_quota(struct gw *g, const char *client);
/* Fills |o|'s limits before authentication from [gateway] (every listener
 * gets the same). */
void gw_preauth_opts(struct gw *g, struct sr_http_server_opts *o);
/* Signed uploads (PUT with skyroute-signature) authenticate by their
 * signature, which costs a hash of the whole body: before that, a token
 * bucket per client address ([gateway] signed_rate, signed_burst). true if
 * the request may go on; false once it is answered 429 with retry-after. */
bool gw_auth_signed_check(struct gw *g, sr_req *req);
/* Whether |client| (as gw_auth_check set it) may read work submitted by
 * |owner|: always with no [client.*] configured, else only its own. */
bool gw_auth_may_read(struct gw *g, const char *client, const char *owner);

/* ---- placing one workload (dispatch.c) ---------------------------------------- */

/* Called once, from the event loop, with memory valid only during the call. */
typedef void (*gw_job_done)(const struct gw_job_result *r, void *arg);
struct gw_job;
/* Starts placing a workload (on the next loop turn). NULL on out of memory. */
struct gw_job *gw_job_start(struct gw *g, const struct gw_job_spec *spec, gw_job_done done,
                            void *arg);
/* Abandons a job: |done| is not called; a request in flight is cancelled. */
void gw_job_cancel(struct gw_job *job);

/* ---- the durable spool (spool.c) ----------------------------------------------- */

/* Async submission (prefer: respond-async): stores the workload durably
 * (group commit), then answers 202 with its location; a dispatcher places it
 * when a window opens, earliest deadline first; results are kept for
 * [spool] keep_results_s. |reply_to| names the satellite whose outbox gets
 * the result ("" for a client's own work). handle serves GET
 * /v1/workloads/ID to |client| (as gw_auth_check named it): work another
 * client submitted is answered 404, as an unknown id is (gw_auth_may_read). */
int gw_spool_init(struct gw *g, char *err, size_t errlen);
void gw_spool_submit(struct gw *g, sr_req *req, const struct gw_job_spec *spec, const char *client,
                     const char *reply_to);
bool gw_spool_handle(struct gw *g, sr_req *req, const char *client);
void gw_spool_free(struct gw *g);
/* The spool's rows (store.h), or NULL without a spool (--check-config). */
struct sr_spooldb *gw_spool_db(struct gw *g);

/* A result of work that crossed stations, as the spool and federation pass
 * it: the HTTP-style status is what the station that submitted it answers. */
struct gw_remote_result {
    const uint8_t *id;   /* SR_ENV_IDBYTES */
    const char *station; /* who ran it (imported results only) */
    const char *target;
    int status; /* 200 or the failure's HTTP status */
    const uint8_t *payload;
    size_t payload_len;
    const char *signer, *error;
    double predicted_ms, elapsed_ms;
    const uint8_t *envelope; /* the target's signed result envelope, or NULL */
    size_t envelope_len;
};

/* Completion of a forward or a result publication: 0 once the cluster stored
 * it, else SR_ERR_UNAVAILABLE / SR_ERR_TIMEOUT / SR_ERR_IO / SR_ERR_CANCELLED. */
typedef void (*gw_link_done)(int rv, void *arg);

/*
 * How the spool reaches federation, which sits above it: a struct the spool
 * owns and federation.c fills in ([cluster]); without it, nothing is
 * forwarded, published or fetched. Each function gets |ctx|.
 *   forward: publishes |spec| for the station of |via_target| ("SAT@STATION")
 *     on that station's work queue; |done| is called once, unless it
 *     returns non-zero (SR_ERR_UNAVAILABLE: not connected; SR_ERR_INVAL;
 *     SR_ERR_NOMEM).
 *   publish_result: the result of work adopted from station |origin|, for
 *     it to fetch; same returns and |done| as forward.
 *   fetch: answers GET /v1/workloads/ID for an id this station does not
 *     hold from the results other stations published (200, the failure,
 *     404); false if it cannot (not connected): the spool answers 404.
 */
struct gw_spool_link {
    int (*forward)(void *ctx, const struct gw_job_spec *spec, const char *client,
                   const char *via_target, gw_link_done done, void *arg);
    int (*publish_result)(void *ctx, const char *origin, const struct gw_remote_result *r,
                          gw_link_done done, void *arg);
    bool (*fetch)(void *ctx, sr_req *req, const uint8_t id[SR_ENV_IDBYTES]);
    void *ctx;
};
/* Sets the link (copied), or with NULL takes it away. */
void gw_spool_set_link(struct gw *g, const struct gw_spool_link *link);

/* What federation hands the spool. adopt: stores work forwarded by station
 * |origin| durably (a duplicate id is fine) and returns 0 only once it is
 * committed; it is planned for its satellite from this station's passes
 * only. import: the result of work this station forwarded (0, or
 * SR_ERR_NOTFOUND when no forwarded workload has that id). republish: on
 * (re)connection, forwards and results held back while cut off go out. */
int gw_spool_adopt(struct gw *g, const struct gw_job_spec *spec, const char *client,
                   const char *origin);
int gw_spool_import(struct gw *g, const struct gw_remote_result *r);
void gw_spool_republish(struct gw *g);

/* POST /v1/uplink and POST /v1/outbox (outbox.c): a satellite's own work,
 * spooled, and its results, sealed for it. True if the path is one of them. */
bool gw_outbox_handle(struct gw *g, sr_req *req);

/* ---- operator feeds (feeds*.c) ----------------------------------------------------- */

int gw_feeds_init(struct gw *g, char *err, size_t errlen);
bool gw_feeds_handle(struct gw *g, sr_req *req);
void gw_feeds_free(struct gw *g);
/* Authenticates operator upload |req| (feeds_http.c): a v2 skyroute-signature
 * for this request and station, signed within [gateway] signature_window_s
 * of now, its nonce not used before; with |target|, the operator must also
 * list it in [operator.NAME] targets. Returns the operator's name; NULL when
 * refused (answered and counted in skyroute_feed_uploads_total{kind}). */
const char *gw_feeds_authenticate(struct gw *g, sr_req *req, const char *kind, const char *target);
/* Counts one upload of |kind| in skyroute_feed_uploads_total. */
void gw_feeds_count(struct gw *g, const char *kind, const char *outcome, const char *reason);
/* Sets skyroute_elements_age_seconds{satellite} as of |now_ms| (at a scrape). */
void gw_feeds_metrics(struct gw *g, int64_t now_ms);
/* [cluster]: an element set another station accepted (text as stored there):
 * stored under |op| and predicted for this station, for every configured
 * satellite whose set in it is newer than the one in use. 0, SR_ERR_NOTFOUND
 * (nothing newer here), SR_ERR_UNAVAILABLE (no [gateway] station), a parse
 * error or SR_ERR_IO. */
int gw_feeds_ingest_elements(struct gw *g, const char *op, const char *text, size_t len);

/* ---- explanations and energy feeds (route.c) ----------------------------------------- */

int gw_route_init(struct gw *g, char *err, size_t errlen);
bool gw_route_handle(struct gw *g, sr_req *req);
/* SIGHUP: [policy] and the targets' energy and link profiles from |cfg| (the
 * freshly loaded file); an invalid value is logged and counted. */
bool gw_route_reload(struct gw *g, struct sr_config *cfg); /* false: stopped at an error */
void gw_route_free(struct gw *g);

/* ---- federation (federation.c) ---------------------------------------------------- */

/* Before event_base_new: with [cluster], makes libevent thread-safe. 0 or an error. */
int gw_cluster_preinit(const struct sr_config *cfg);
/* [cluster] and [peer.NAME]; without [cluster] nothing starts (g->cluster
 * stays NULL). Runs after gw_spool_init: it links the spool to the cluster
 * (gw_spool_set_link). */
int gw_cluster_init(struct gw *g, char *err, size_t errlen);
/* GET /v1/cluster (stations, views) and GET /v1/cluster/passes?sat=ID. */
bool gw_cluster_handle(struct gw *g, sr_req *req);
/* Before gw_spool_free: unlinks the spool; pending callbacks run (cancelled). */
void gw_cluster_free(struct gw *g);

/* ---- the TLS front door (tls.c) ------------------------------------------------------ */

/* [tls]: init validates and loads the certificate; listen opens the TLS
 * listener (after the h2c one); reload (SIGHUP) swaps in a freshly loaded
 * certificate and key, keeping the old ones if the new ones do not load. */
int gw_tls_init(struct gw *g, char *err, size_t errlen);
int gw_tls_listen(struct gw *g, char *err, size_t errlen);
bool gw_tls_reload(struct gw *g); /* false: kept the certificate it had */
void gw_tls_free(struct gw *g);

/* ---- the workload API (api.c) ---------------------------------------------------- */

/* The main listener's request handler, shared by the h2c and TLS listeners:
 * authenticates the client and hands each path to the part that owns it. */
void gw_main_handler(sr_req *req, void *arg);
/* Its response headers that differ on every response (skyroute-id and the
 * timings), for sr_http_server_opts.never_index. */
extern const char *const gw_main_never_index[];

#endif /* SR_DAEMON_H */
