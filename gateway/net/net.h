/*
 * net: the I/O layer every skyroute program stands on. It knows nothing of
 * workloads, envelopes or routing: it could serve another product.
 *
 *   - the clock and logging;
 *   - an HTTP server (HTTP/2 h2c with prior knowledge, HTTP/2 over TLS with
 *     ALPN, and optionally HTTP/1.1 on the same port for admin listeners)
 *     over libevent + nghttp2;
 *   - an HTTP/2 client pool: one multiplexed connection per origin, reused,
 *     reconnected with backoff, per-request deadlines;
 *   - Prometheus metrics and the admin endpoints (/healthz, /readyz,
 *     /metrics), signal handling, and small helpers for programs (query
 *     strings, relative paths, getopt complaints).
 *
 * Everything runs on one libevent base. Callbacks are never invoked
 * re-entrantly from inside a call the user made (STYLE habit 10): completions
 * are delivered from the event loop.
 */
#ifndef SR_NET_H
#define SR_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>

#include "common/common.h"

/* ---- clock ------------------------------------------------------------------ */

/* Wall clock, ms since the Unix epoch (CLOCK_REALTIME). Only gateway/ reads it. */
int64_t sr_now_ms(void);
/* Monotonic clock in ms, for measuring elapsed time. */
int64_t sr_mono_ms(void);

/* ---- logging ------------------------------------------------------------------ */

enum { SR_LOG_ERROR = 0, SR_LOG_WARN = 1, SR_LOG_INFO = 2, SR_LOG_DEBUG = 3 };
extern int sr_log_level;
void sr_log(int level, const char *fmt, ...) SR_PRINTF(2, 3);

/* ---- addresses -------------------------------------------------------------- */

/* Parses "HOST:PORT", "[V6]:PORT" or "http://HOST:PORT[/]" into a sockaddr.
 * Host may be a name (resolved with getaddrinfo, first result). */
struct sockaddr;
struct sockaddr_storage;
int sr_parse_hostport(struct sockaddr_storage *ss, int *sslen, const char *text, char *err,
                      size_t errlen) SR_WARN_UNUSED;

/* ---- HTTP server --------------------------------------------------------------- */

typedef struct sr_http_server sr_http_server;
typedef struct sr_req sr_req;
typedef struct sr_metrics sr_metrics;

/* A server TLS context (OpenSSL through libevent_openssl): TLS 1.2 or newer
 * (1.3 preferred by OpenSSL's defaults), ALPN "h2", no renegotiation, no
 * compression. Built from PEM files; replaced whole on reload. */
typedef struct sr_tls sr_tls;
/* Loads |cert| (a PEM chain) and |key|; if |client_ca| is non-NULL, clients
 * may present a certificate signed by it (checked; see sr_req_client_cert).
 * 0 or SR_ERR_CONFIG with the OpenSSL reason in |err|. */
int sr_tls_new(sr_tls **out, const char *cert, const char *key, const char *client_ca, char *err,
               size_t errlen) SR_WARN_UNUSED;
void sr_tls_free(sr_tls *tls); /* connections already open keep their context */

struct sr_http_header {
    const char *name; /* lowercase */
    const char *value;
};

/* Called once a request is complete (headers and whole body). The handler must
 * eventually call sr_req_respond() exactly once, now or later; if the client
 * goes away first, the |on_abort| set with sr_req_set_abort() is called and
 * the request must not be used after that call returns. */
typedef void (*sr_http_handler)(sr_req *req, void *arg);

struct sr_http_server_opts {
    const char *listen;     /* HOST:PORT, or NULL (see sr_http_server_adopt) */
    bool allow_http1;       /* also accept HTTP/1.1 (admin listeners) */
    size_t max_body;        /* bodies above this get 413; 0 = 32 MiB */
    uint32_t max_streams;   /* SETTINGS_MAX_CONCURRENT_STREAMS; 0 = 1000 */
    size_t max_header_list; /* 0 = 64 KiB */
    int idle_timeout_s;     /* 0 = 300 */
    sr_tls *tls;            /* non-NULL: a TLS listener (not owned; see set_tls) */
    size_t max_buffered;    /* request body bytes held, all connections; past it
                               flow control stalls senders; 0 = 256 MiB */
    size_t max_conns;       /* open connections; more are closed; 0 = 4096 */
    unsigned upload_slots;  /* 0: every stream may send 1 MiB of body at once; N:
                               16 KiB, and bodies larger than that get their window
                               N at a time per connection, oldest first */
    uint64_t rate_Bps;      /* per-connection bytes per second, each direction (link
                               emulation: an RF link's data rate); 0 = unlimited */
    /* Limits before authentication: a request is only handed to the handler,
     * which authenticates it, once whole, so what an unauthenticated client can
     * hold meanwhile is bounded here. Each 0 = off. Refusals are counted in
     * |metrics| (if set) as skyroute_preauth_refused_total{reason}. */
    unsigned per_addr_conns; /* open connections from one address (IPv4 /32, IPv6
                                /64): more are closed at accept (reason per_address) */
    int body_timeout_s;      /* a request whose header block or body gets no byte
                                this long is refused: 408 (HTTP/2: and its stream
                                ends), or the connection for a header block
                                (body_timeout, header_timeout). Streams this side
                                holds back (flow control, upload slots) wait. */
    uint32_t body_min_Bps;   /* and a body that, over any body_timeout_s, arrives
                                slower than this (body_rate); ignored with rate_Bps */
    uint32_t max_incomplete; /* HTTP/2 streams per connection whose request is not
                                whole yet: more are refused with RST_STREAM
                                REFUSED_STREAM (unauth_streams) */
    sr_metrics *metrics;
    /* Response header names whose values differ on every response (ids),
     * NULL-terminated, or NULL: sent as never-indexed HPACK literals. Indexed,
     * each would enter the connection's dynamic table only to push out an entry
     * that is used again, and every later lookup of that name walks all of its
     * entries (nghttp2 compares each name and value). */
    const char *const *never_index;
    sr_http_handler handler;
    void *arg;
};

int sr_http_server_new(sr_http_server **out, struct event_base *base,
                       const struct sr_http_server_opts *opts, char *err,
                       size_t errlen) SR_WARN_UNUSED;
/* Uses |tls| for connections accepted from now on (certificate reload without
 * a restart); connections already open are not touched. */
void sr_http_server_set_tls(sr_http_server *srv, sr_tls *tls);
/* HTTP/2's graceful shutdown (RFC 9113 section 6.8) on every open HTTP/2
 * connection. With |final| false, a GOAWAY that announces it (last stream
 * 2^31-1: clients open no new streams here, those in flight go on) and a
 * PING; once a client answers the PING it has read the notice, and its
 * connection gets the final GOAWAY, naming the last stream this side took, so
 * the client knows any later one was never read and may retry it. With
 * |final| true, that final GOAWAY now on every connection still without one
 * (for clients that do not answer). A connection closes once its streams are
 * done; its socket is then shut for writing (after TLS's close_notify) and
 * read until the client closes (at most a second), not reset. HTTP/1.1
 * connections are left alone. */
void sr_http_server_goaway(sr_http_server *srv, bool final);
/* For a daemon draining after sr_http_server_goaway(), called every few tens
 * of milliseconds: a second after the notice, the final GOAWAY to the clients
 * that have not answered its PING; true once no request is in flight and
 * every HTTP/2 connection has closed (and been read to its end). */
bool sr_http_server_drain_step(sr_http_server *srv);
/* Stops listening; open connections stay until closed. */
void sr_http_server_stop_listening(sr_http_server *srv);
/* Listens again on the same address and port after stop_listening (used by
 * link emulation when a satellite comes back into view). 0 or SR_ERR_IO. */
int sr_http_server_resume_listening(sr_http_server *srv);
/* Closes every open connection at once, as a lost RF link would: requests in
 * flight are aborted (their on_abort runs). */
void sr_http_server_drop_connections(sr_http_server *srv);
void sr_http_server_free(sr_http_server *srv);
/* Serves an already-connected socket (socket activation, tests, fuzzing).
 * The server owns |fd| from now on. 0 or SR_ERR_NOMEM. A server created with
 * opts.listen == NULL has no listener and serves only adopted sockets. */
int sr_http_server_adopt(sr_http_server *srv, int fd);
/* The port actually bound (useful with port 0). */
int sr_http_server_port(const sr_http_server *srv);
/* Number of requests accepted but not yet answered. */
size_t sr_http_server_inflight(const sr_http_server *srv);

const char *sr_req_method(const sr_req *req);
const char *sr_req_path(const sr_req *req); /* including the query */
/* Header value (first match, case-insensitive name) or NULL. */
const char *sr_req_header(const sr_req *req, const char *name);
const uint8_t *sr_req_body(const sr_req *req, size_t *len);
/* Request-scoped user pointer, passed to on_abort. */
void sr_req_set_data(sr_req *req, void *data);
/* Called (from the loop) if the stream or connection dies before a response. */
void sr_req_set_abort(sr_req *req, void (*on_abort)(sr_req *req, void *data));
/* Calls |fn(arg)| once when the request ends for any reason (answered and
 * sent, reset, connection lost), from the event loop; for per-client
 * accounting. The request must not be used from |fn|. */
void sr_req_set_done(sr_req *req, void (*fn)(void *), void *arg);
/* A client certificate's subject CN is at most 64 characters (RFC 5280's
 * ub-common-name). */
#define SR_CERT_CN_MAX 64
/* Subject CN of a verified TLS client certificate, or NULL. A subject with
 * no CN or more than one, or whose CN is longer than SR_CERT_CN_MAX bytes (as
 * UTF-8) or holds a control character, identifies no one: NULL. */
const char *sr_req_client_cert(const sr_req *req);
/* Peer address as text, e.g. "127.0.0.1:53712". */
const char *sr_req_peer(const sr_req *req);
/* The peer's address as a 16-byte key for per-address accounting: an IPv4
 * address as ::ffff:a.b.c.d, an IPv6 address cut to its /64 (one host is
 * usually given a whole /64). false (and |key| zeroed) if the connection has
 * no address (an adopted socket) or is gone. */
bool sr_req_peer_key(const sr_req *req, uint8_t key[16]);
/* The key of |sa| as sr_req_peer_key() gives it; false for other families. */
bool sr_addr_key(const struct sockaddr *sa, uint8_t key[16]);
/* Monotonic ms at which the request headers began. */
int64_t sr_req_start_mono(const sr_req *req);

/* Sends the response and releases the request. |body| is copied unless
 * |take| is true, in which case ownership of a malloc'd body passes to the
 * server (freed when sent). Headers are copied. Returns 0 or SR_ERR_NOMEM (the
 * stream is then reset). */
int sr_req_respond(sr_req *req, int status, const struct sr_http_header *hdrs, size_t nhdrs,
                   const void *body, size_t len, bool take);
/* As sr_req_respond, taking |mem|, a malloc'd block that holds |body| (a
 * slice of it): sent without a copy, freed when sent. */
int sr_req_respond_within(sr_req *req, int status, const struct sr_http_header *hdrs, size_t nhdrs,
                          const void *body, size_t len, void *mem);
/*
 * A response whose body is written in pieces as they are ready (HTTP/2
 * only): the status and headers now, without a content-length; the body with
 * sr_req_stream_write(); its end with sr_req_stream_end(), which releases the
 * request once sent, as sr_req_respond() does. Until that end, a client that
 * resets the stream or goes away still gets the request's on_abort called,
 * after which the request must not be used.
 * sr_req_stream_begin: 0; SR_ERR_UNSUPPORTED on an HTTP/1.1 connection
 * (nothing sent: respond as usual); SR_ERR_INVAL if already answered;
 * SR_ERR_IO if the client went away (the request is released); SR_ERR_NOMEM
 * (the stream is reset and the request released when it closes; no on_abort).
 * sr_req_stream_write / _end: 0, SR_ERR_INVAL (not streaming, or ended) or
 * SR_ERR_NOMEM (for write; the stream goes on without those bytes).
 */
int sr_req_stream_begin(sr_req *req, int status, const struct sr_http_header *hdrs,
                        size_t nhdrs) SR_WARN_UNUSED;
int sr_req_stream_write(sr_req *req, const void *p, size_t len);
int sr_req_stream_end(sr_req *req);
/* Convenience: JSON error body {"error": msg, "detail": detail_json or null}. */
int sr_req_respond_error(sr_req *req, int status, const char *msg, const char *detail_json);
/* Appends that error body to |b| (0 or SR_ERR_NOMEM / SR_ERR_TOOBIG). */
int sr_error_body(sr_buf *b, const char *msg, const char *detail_json) SR_WARN_UNUSED;

/* ---- HTTP/2 client pool ---------------------------------------------------------- */

typedef struct sr_h2_pool sr_h2_pool;

struct sr_h2_response {
    int error;  /* 0, or SR_ERR_TIMEOUT / SR_ERR_UNAVAILABLE (never sent: safe to
                   retry) / SR_ERR_IO (lost after sending: may have run) */
    bool sent;  /* the request's last frame (END_STREAM) left this process; false:
                   the target never had the whole request, safe to retry anywhere */
    int status; /* HTTP status if error == 0 */
    const struct sr_http_header *headers;
    size_t nheaders;
    const uint8_t *body;
    size_t body_len;
    const char *detail; /* human reason when error != 0 */
    uint8_t **body_mem; /* the malloc'd block |body| lives in (or NULL): a callback
                           may take it (*body_mem = NULL), and then frees it */
};

/* Completion: the response and its memory are valid only during the call. */
typedef void (*sr_h2_done)(const struct sr_h2_response *resp, void *arg);

int sr_h2_pool_new(sr_h2_pool **out, struct event_base *base) SR_WARN_UNUSED;
void sr_h2_pool_free(sr_h2_pool *pool); /* pending requests complete with SR_ERR_CANCELLED */

/*
 * Sends a request to |origin| ("http://HOST:PORT"). The body is copied.
 * |timeout_ms| bounds the whole exchange. |done| is always called exactly
 * once, from the event loop, unless the returned handle is cancelled first.
 * Returns a handle (for sr_h2_cancel) or NULL on allocation failure.
 */
typedef struct sr_h2_call sr_h2_call;
sr_h2_call *sr_h2_request(sr_h2_pool *pool, const char *origin, const char *method,
                          const char *path, const struct sr_http_header *hdrs, size_t nhdrs,
                          const void *body, size_t len, int64_t timeout_ms, sr_h2_done done,
                          void *arg);
/*
 * Like sr_h2_request(), but takes ownership of |body|'s memory instead of
 * copying it (e.g. a freshly sealed envelope): on return, whatever the
 * result, |body| is empty (data NULL, len 0) and the bytes belong to the call,
 * which frees them. Returns a handle or NULL on allocation failure.
 */
sr_h2_call *sr_h2_request_take(sr_h2_pool *pool, const char *origin, const char *method,
                               const char *path, const struct sr_http_header *hdrs, size_t nhdrs,
                               sr_buf *body, int64_t timeout_ms, sr_h2_done done, void *arg);
/* Cancels a pending call: |done| will not be called. */
void sr_h2_cancel(sr_h2_call *call);
/*
 * Hands |call|'s response body to |fn| as it arrives, for answers that come
 * in pieces (a node's answers to a batch): from the event loop, after new
 * bytes came, |fn| gets the status, the headers and the body not consumed
 * yet (error 0), and returns how many of those bytes it consumed; they are
 * dropped from the front, and the completion gets only the rest. |fn| must
 * not cancel |call|. Set it right after making the call.
 */
typedef size_t (*sr_h2_progress)(const struct sr_h2_response *partial, void *arg);
void sr_h2_set_progress(sr_h2_call *call, sr_h2_progress fn);
/* Request bodies waiting for a send slot on the connection to |origin|
 * (net_int.h): large ones beyond the 8 under way. */
unsigned sr_h2_pool_waiting(const sr_h2_pool *pool, const char *origin);

/* ---- metrics ------------------------------------------------------------------ */

int sr_metrics_new(sr_metrics **out) SR_WARN_UNUSED;
void sr_metrics_free(sr_metrics *m);
/* Declares a family (help text and type "counter", "gauge" or "histogram"). */
void sr_metrics_describe(sr_metrics *m, const char *name, const char *type, const char *help);
/* Adds to a counter (or sets a gauge) for the label set |labels| (already
 * formatted, e.g. "target=\"alpha\"", or "" for none). */
void sr_metrics_add(sr_metrics *m, const char *name, const char *labels, double delta);
void sr_metrics_set(sr_metrics *m, const char *name, const char *labels, double value);
/* Histogram bucket upper bounds (the +Inf bucket is implicit), in the unit
 * of the family's name: latency, 100 us to 10 s (the default); durations
 * that may span a wait for a pass, 1 ms to 1 h; sizes, powers of 4 from 64 B
 * to 64 MiB. */
#define SR_METRICS_MAX_BUCKETS 20
struct sr_metrics_buckets {
    const double *le;
    size_t n;
};
extern const struct sr_metrics_buckets sr_buckets_latency, sr_buckets_duration, sr_buckets_bytes;
/* Declares a histogram family with the bounds |le| (kept by pointer: a
 * static). Its series counted so far keep the bounds they were counted in. */
void sr_metrics_histogram(sr_metrics *m, const char *name, const char *help,
                          const struct sr_metrics_buckets *le);
/* Counter |name| at 0 for each label set of the NULL-terminated |labels|:
 * series known up front exist from the first scrape, so rate() and alerts
 * over them have data before the first event. */
void sr_metrics_zero(sr_metrics *m, const char *name, const char *const *labels);
/* Observes a value into a histogram (default: latency buckets, in seconds). */
void sr_metrics_observe(sr_metrics *m, const char *name, const char *labels, double v);
double sr_metrics_get(const sr_metrics *m, const char *name, const char *labels);
/* Appends the Prometheus text exposition to |out|. */
int sr_metrics_render(const sr_metrics *m, sr_buf *out) SR_WARN_UNUSED;
/* Appends skyroute_build_info and the process_* families every Prometheus
 * client exports (CPU, start time, memory, descriptors), read from
 * /proc/self now; what cannot be read is left out. sr_admin_serve adds them
 * to every /metrics answer. */
int sr_metrics_render_process(sr_buf *out) SR_WARN_UNUSED;

/* ---- small helpers ------------------------------------------------------------ */

/* Parses "?a=1&b=x" query parameters: value of |key| (percent-decoded into
 * |out|), SR_ERR_NOTFOUND, SR_ERR_TOOBIG (longer than |outlen| - 1) or
 * SR_ERR_PARSE (a "%00" in it). Only SR_ERR_NOTFOUND means absent. */
int sr_query_get(const char *path, const char *key, char *out, size_t outlen);
/* The one-line complaint for getopt_long's '?' (an unknown option or a missing
 * argument), naming the option. */
void sr_getopt_error(char *out, size_t outlen, char **argv, int optind_now, int optopt_now);
/* Resolves |path| relative to the directory of |base_file| (absolute paths
 * are kept). Writes into |out|. */
int sr_path_relative(char *out, size_t outlen, const char *base_file, const char *path);

/* ---- admin endpoints and signals ------------------------------------------------------ */

/* Serves GET /healthz, /readyz and /metrics from |m|. Returns true if it
 * answered the request, false if the path is not an admin path. */
bool sr_admin_serve(sr_req *req, sr_metrics *m, bool ready);

/* The HTTP status a receiver answers a refusal with: |code| is an SR_ERR_ENV_*
 * code (common.h) from opening or replay-checking a signed message; 400 for
 * any other. */
int sr_env_http_status(int code);

/* Installs SIGTERM/SIGINT (and SIGHUP if |on_hup|) handlers on |base| that call
 * |on_term(arg)|. SIGPIPE is ignored. */
int sr_signals_install(struct event_base *base, void (*on_term)(void *), void (*on_hup)(void *),
                       void *arg);
/* Frees the signal events (call before event_base_free). */
void sr_signals_remove(void);

/* ---- the service manager (Type=notify units) ------------------------------------- */

/* Tells the service manager that the program is ready (READY=1, with |status|
 * as the STATUS= line: a sentence for `systemctl status`); call once the
 * listeners accept and the state is open. When the unit has WatchdogSec=, it
 * also starts a timer on |base| that sends WATCHDOG=1 every half period while
 * the loop turns. Outside a service manager ($NOTIFY_SOCKET unset) it does
 * nothing. 0, or SR_ERR_NOMEM when the timer cannot be made. */
int sr_notify_ready(struct event_base *base, const char *status);
/* STOPPING=1 (and |status|): the program is draining and will exit. */
void sr_notify_stopping(const char *status);
/* Frees the watchdog timer (call before event_base_free); NULL-safe, idempotent. */
void sr_notify_free(void);

#endif /* SR_NET_H */
