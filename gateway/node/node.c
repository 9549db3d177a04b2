/*
 * skyroute-node: the target agent run at an IDC or on a satellite's onboard
 * computer. It takes signed workload envelopes on POST /v1/exec, verifies
 * them before parsing (crypto/), runs the named handler once per envelope id,
 * and answers with a signed result envelope.
 *
 * A repeated id is refused with 409, and the stored result of the first run
 * travels in that refusal's body, so a sender retrying after a lost response
 * gets its answer while the handler still runs only once (DESIGN section 5).
 *
 * Under load, results are sealed together: job_finish() queues each, and
 * results_flush() seals the queue with one signature over a Merkle root (SR2)
 * when the loop has a turn with nothing else to run, 1 ms after the first, or
 * at --envelope-batch results (auto by default: 32, or an eighth of the workloads in flight,
 * or as many as the largest batch the queued results' workloads came in, up to 256); a lone
 * result is signed on its own
 * (sr_envelope_seal_one). Workload envelopes
 * sealed in a batch are verified with a cache of verified roots (one verification per batch). The
 * replay guard records the id on arrival, as before; a repeat that arrives while the result waits
 * to be sealed is "still running".
 */
#include "crypto/crypto.h"
#include "gateway/net/net.h"
#include "linkmodels/linkmodels.h"

#include <errno.h>
#include <math.h>
#include <fcntl.h>
#include <getopt.h>
#include <malloc.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <event2/event.h>
#include <ini.h>
#include <sodium.h>

#define MAX_TRUST 32
#define MAX_EXEC 32
#define RESULT_WAIT_US 1000 /* longest a result waits for its batch */

static const char usage_text[] =
    "usage: skyroute-node --id ID --listen HOST:PORT --key FILE.key --trust FILE.pub\n"
    "                     [--trust FILE.pub ...] [--admin HOST:PORT] [--config FILE]\n"
    "                     [--gops N] [--max-body BYTES] [--log-level LEVEL]\n"
    "\n"
    "Verifies signed workload envelopes on POST /v1/exec, runs the named handler\n"
    "once per envelope id and answers with a signed result envelope.\n"
    "Handlers: echo, digest (BLAKE2b-256 hex), compute (spends hints.work Gop at\n"
    "--gops), exec:NAME (a command from [exec.NAME] in --config).\n"
    "\n"
    "  --id ID            this node's id (envelopes must be addressed to it)\n"
    "  --listen HOST:PORT h2c listener for /v1/exec\n"
    "  --key FILE.key     signing key for results\n"
    "  --trust FILE.pub   a sender key to accept (repeatable)\n"
    "  --admin HOST:PORT  admin listener: /metrics, /healthz (HTTP/1.1 and h2c)\n"
    "  --config FILE      INI: [node] gops = N; [exec.NAME] command, timeout_ms, max_output\n"
    "  --gops N           compute rate in giga-operations per second (default 10)\n"
    "  --envelope-batch N results sealed under one signature at most (1..1024, or\n"
    "                     auto: 32, or more with many workloads in flight or when\n"
    "                     they came in larger batches, up to 256; default auto;\n"
    "                     1: a signature per result)\n"
    "  --upload-slots N   let envelopes above 16 KiB in N at a time per connection,\n"
    "                     oldest first, each whole in turn, whatever the sender's\n"
    "                     order (default 0: as sent; skyrouted already sends them\n"
    "                     8 at a time)\n"
    "  --replay-memory BYTES  results kept to answer a re-sent workload (default\n"
    "                     256 MiB; the oldest are dropped first: a re-sent one then\n"
    "                     gets 409 result_dropped, never a second run)\n"
    "  --emulate-link FILE  behave like a satellite behind an RF link: FILE holds its\n"
    "                     elements (TLE or OMM; --sat picks one by name or catalogue\n"
    "                     number, else the first); each direction is delayed by the\n"
    "                     light time of the moment, and below --min-el the node is\n"
    "                     unreachable (listener closed, connections reset)\n"
    "  --station LAT,LON,ALT_M  the ground station for --emulate-link\n"
    "  --min-el DEG       elevation mask for --emulate-link (default 10)\n"
    "  --sat NAME|NUMBER  which satellite of FILE this node is\n"
    "  --link-bps N       the emulated link's data rate in bits per second, each\n"
    "                     direction (default: unlimited); a transfer still going at\n"
    "                     LOS is cut\n"
    "  --gateway URL --gateway-id ID  onboard work for the ground: POST /v1/submit on\n"
    "                     the admin listener queues it; at each contact it is uplinked\n"
    "                     (signed) and results come back from the gateway's outbox\n"
    "                     (GET /v1/inbox/ID on the admin listener)\n"
    "  --help, --version\n";

struct exec_cfg {
    char name[64];
    char command[1024];
    int64_t timeout_ms;
    size_t max_output;
};

struct node {
    struct event_base *base;
    char id[SR_ENV_STRMAX];
    sr_key *key;
    sr_keyring *trust;
    sr_replay *replay;
    sr_rootcache *roots; /* verified batch roots (SR2 workloads) */
    struct job *jobs;    /* every job not yet freed (those of senders that left too) */
    struct job **rq;     /* results to seal at the end of this loop turn */
    size_t rq_n, rq_cap;
    bool rq_scheduled;
    unsigned rq_depth;     /* deepest tree among the queued results' workloads (SR2) */
    size_t batch_max;      /* --envelope-batch: results per signature at most; 0: auto */
    struct event *rq_idle; /* lowest priority: a loop turn with nothing else to run */
    struct event *rq_late; /* RESULT_WAIT_US after the first queued result */
    sr_metrics *metrics;
    sr_http_server *main, *admin;
    double gops;
    size_t max_body;
    struct exec_cfg execs[MAX_EXEC];
    size_t nexec;
    bool draining;
    struct event *drain_timer;
    /* link emulation */
    sr_sat *emu_sat;
    sr_station emu_station;
    double emu_min_el;
    bool emu_up;
    double emu_light_ms;
    struct event *emu_timer;
    /* onboard work for the ground (--gateway): uplinked in a pass, results
     * fetched from the gateway's outbox at each contact */
    char gw_url[160];
    char gw_id[SR_ENV_STRMAX];
    sr_h2_pool *pool;
    struct event *sync_timer;
    bool sync_busy;
    struct upq *upq;     /* sealed envelopes waiting for a contact */
    struct inbox *inbox; /* submitted work and, when back, its result */
    sr_buf acks;         /* ids received since the last outbox call */
};

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

/* A message in flight over the emulated space link. */
struct delayed {
    struct node *node;
    sr_req *req;
    struct event *timer;
    uint8_t *body; /* response: sealed result to send; NULL for a request */
    size_t len;
};

static void handle_exec(struct node *n, sr_req *req);
static void handle_batch(struct node *n, sr_req *req);

/* The current one-way light time of the emulated link, as a timeout. */
static struct timeval light_time(const struct node *n)
{
    double ms = n->emu_light_ms;
    return (struct timeval){(time_t)(ms / 1000), (suseconds_t)(fmod(ms, 1000.0) * 1000)};
}

static void delayed_free(struct delayed *d)
{
    if (d->timer) {
        event_free(d->timer);
    }
    free(d->body);
    free(d);
}

static void delayed_abort(sr_req *req, void *data)
{
    (void)req;
    delayed_free(data);
}

static void delayed_fire(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct delayed *d = arg;
    sr_req *req = d->req;
    sr_req_set_abort(req, NULL);
    sr_req_set_data(req, NULL);
    if (d->body) {
        static const struct sr_http_header h[] = {{"content-type", "application/vnd.msgpack"}};
        sr_req_respond(req, 200, h, 1, d->body, d->len, true);
        d->body = NULL;
        delayed_free(d);
    } else {
        struct node *n = d->node;
        delayed_free(d);
        if (!strcmp(sr_req_path(req), "/v1/batch")) {
            handle_batch(n, req);
        } else {
            handle_exec(n, req);
        }
    }
}

/* Holds |req| (and, for a response, |body|, owned) for the current one-way
 * light time. Returns false if it could not (the caller then goes on at once). */
static bool delay_over_link(struct node *n, sr_req *req, uint8_t *body, size_t len)
{
    struct delayed *d = calloc(1, sizeof(*d));
    if (!d) {
        return false;
    }
    d->node = n;
    d->req = req;
    d->body = body;
    d->len = len;
    d->timer = evtimer_new(n->base, delayed_fire, d);
    if (!d->timer) {
        d->body = NULL;
        delayed_free(d);
        return false;
    }
    struct timeval tv = light_time(n);
    sr_req_set_data(req, d);
    sr_req_set_abort(req, delayed_abort);
    evtimer_add(d->timer, &tv);
    return true;
}

/*
 * Envelopes that came together in one request (POST /v1/batch): each is
 * handled as if it had come on its own, and its answer goes out as an item of
 * the response (sr_batch_append_item) as soon as it is ready.
 */
struct nbatch {
    struct node *node;
    sr_req *req;   /* NULL once the sender went away */
    size_t left;   /* envelopes not answered yet (+1 while they are being started) */
    bool streamed; /* items go out as they come (sr_req_stream_write); else |out| */
    sr_buf out;    /* HTTP/1.1: the items, sent at the end */
};

/* Where the answer to one envelope goes: a request of its own (POST
 * /v1/exec), or an item of a batch. Both NULL: the sender went away. */
struct reply {
    sr_req *req;
    struct nbatch *batch;
    uint32_t index;
};

/* One execution in progress (compute and exec run asynchronously). */
struct job {
    struct node *node;
    struct job *prev, *next; /* in node->jobs: every job until freed */
    struct reply rp;
    struct sr_envelope wl;
    uint8_t *payload_copy; /* the workload payload, owned (req body may go away): it lives
                              right after the struct, in the same allocation */
    int64_t t_recv;
    struct event *timer;
    /* exec */
    pid_t pid;
    int in_fd, out_fd;
    struct event *in_ev, *out_ev;
    size_t in_off;
    sr_buf out;
    bool out_capped, timed_out;
    const struct exec_cfg *ec;
    /* the result, waiting in n->rq to be sealed with the others of this turn */
    struct sr_envelope res;
    uint8_t *res_copy; /* its payload when the handler's output was not the job's own */
    size_t rq_slot;
};

static void count_reject(struct node *n, const char *reason)
{
    char labels[96];
    snprintf(labels, sizeof(labels), "reason=\"%s\"", reason);
    sr_metrics_add(n->metrics, "skyroute_node_rejected_total", labels, 1);
}

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

/* ---- answers: to a request of their own, or as items of a batch --------------------- */

static const char ctype_msgpack[] = "application/vnd.msgpack";
static const char ctype_batch[] = "application/vnd.skyroute.batch+msgpack";

static void batch_abort(sr_req *req, void *data)
{
    (void)req;
    struct nbatch *b = data;
    b->req = NULL; /* the rest still runs; their results are kept for a re-send */
}

/* One answer fewer to wait for: the last one ends the response (or drops
 * it if the sender left) and frees the batch. */
static void batch_release(struct nbatch *b)
{
    if (--b->left) {
        return;
    }
    if (b->req) {
        sr_req_set_abort(b->req, NULL);
        if (b->streamed) {
            sr_req_stream_end(b->req);
        } else {
            static const struct sr_http_header h[] = {{"content-type", ctype_batch}};
            sr_req_respond(b->req, 200, h, 1, b->out.data, b->out.len, true);
            b->out.data = NULL;
        }
    }
    sr_buf_free(&b->out);
    free(b);
}

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

/* An item held for the light time of an emulated space link. */
struct delayed_item {
    struct nbatch *batch;
    struct event *timer;
    size_t hl, len;
    uint8_t bytes[]; /* head, then body */
};

static void delayed_item_fire(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct delayed_item *d = arg;
    batch_write(d->batch, d->bytes, d->hl, d->bytes + d->hl, d->len);
    batch_release(d->batch);
    event_free(d->timer);
    free(d);
}

/* Holds an item for the current one-way light time; false if it could not
 * (it then goes at once). */
static bool delay_item(struct node *n, struct nbatch *b, const uint8_t *head, size_t hl,
                       const void *body, size_t len)
{
    struct delayed_item *d = malloc(sizeof(*d) + hl + len);
    if (!d) {
        return false;
    }
    d->timer = evtimer_new(n->base, delayed_item_fire, d);
    if (!d->timer) {
        free(d);
        return false;
    }
    d->batch = b;
    d->hl = hl;
    d->len = len;
    memcpy(d->bytes, head, hl);
    if (len) {
        memcpy(d->bytes + hl, body, len);
    }
    struct timeval tv = light_time(n);
    evtimer_add(d->timer, &tv);
    return true;
}

/* Answers one envelope: |body| (|take|: a malloc'd block, freed here) with
 * |status| and |ctype|; |replay| adds skyroute-replay: stored-result. */
static void reply_send(struct reply *rp, int status, const char *ctype, bool replay,
                       const void *body, size_t len, bool take)
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
        if (hl && b->req && n->emu_sat && delay_item(n, b, head, hl, body, len)) {
            /* sent down after the light time, and released then */
        } else {
            if (hl) {
                batch_write(b, head, hl, body, len);
            }
            batch_release(b);
        }
    }
    if (take) {
        free((void *)body);
    }
}

/* Answers one envelope with a JSON error (sr_req_respond_error's body). */
static void reply_error(struct reply *rp, int status, const char *msg, const char *detail_json)
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
    reply_send(rp, status, "application/json", false, b.data, b.len, false);
    sr_buf_free(&b);
}

/* Releases what the handler used (timers, pipes, the child's events): the
 * result may wait a little for sealing, and nothing may fire for it meanwhile. */
static void job_release_handler(struct job *j)
{
    if (j->timer) {
        event_free(j->timer);
        j->timer = NULL;
    }
    if (j->in_ev) {
        event_free(j->in_ev);
        j->in_ev = NULL;
    }
    if (j->out_ev) {
        event_free(j->out_ev);
        j->out_ev = NULL;
    }
    if (j->in_fd >= 0) {
        close(j->in_fd);
        j->in_fd = -1;
    }
    if (j->out_fd >= 0) {
        close(j->out_fd);
        j->out_fd = -1;
    }
}

static void job_free(struct job *j)
{
    if (j->prev) {
        j->prev->next = j->next;
    } else {
        j->node->jobs = j->next;
    }
    if (j->next) {
        j->next->prev = j->prev;
    }
    job_release_handler(j);
    sr_buf_free(&j->out);
    free(j->res_copy); /* payload_copy is part of |j| */
    free(j);
}

static void replay_store_failed(int rv)
{
    /* said once per 10 s with a count, not once per result */
    static int64_t last;
    static unsigned since;
    since++;
    int64_t now = sr_mono_ms();
    if (now - last >= 10000) {
        sr_log(SR_LOG_WARN, "cannot keep %u result(s) for replay: %s", since, sr_strerror(rv));
        last = now;
        since = 0;
    }
}

/* The replay guard's figures, read when /metrics is asked for. */
static void replay_gauges(struct node *n)
{
    sr_metrics_set(n->metrics, "skyroute_node_replay_ids", "", (double)sr_replay_count(n->replay));
    sr_metrics_set(n->metrics, "skyroute_node_replay_results_dropped_total", "",
                   (double)sr_replay_results_dropped(n->replay));
}

/* Stores the sealed result |env| (rv: how sealing went) for |j|'s id and
 * answers (or only stores it if the client left); frees |j|. */
static void job_answer(struct job *j, sr_buf *env, int rv)
{
    struct node *n = j->node;
    if (rv == 0) {
        int r = sr_replay_store(n->replay, j->wl.id, env->data, env->len);
        if (r != 0) {
            replay_store_failed(r);
        }
    }
    if (j->rp.req) {
        sr_req_set_abort(j->rp.req, NULL);
    }
    if (rv != 0) {
        reply_error(&j->rp, 500, "cannot seal result", NULL);
    } else if (j->rp.req && n->emu_sat && delay_over_link(n, j->rp.req, env->data, env->len)) {
        env->data = NULL; /* sent down after the light time */
    } else {
        reply_send(&j->rp, 200, ctype_msgpack, false, env->data, env->len, true);
        env->data = NULL;
    }
    sr_buf_free(env);
    job_free(j);
}

/* --envelope-batch: results per signature at most; auto follows the workloads
 * in flight and the batches the queued results' workloads came in
 * (sr_envelope_batch_auto()). */
static size_t batch_max(const struct node *n)
{
    return n->batch_max ? n->batch_max
                        : sr_envelope_batch_auto(sr_http_server_inflight(n->main), n->rq_depth);
}

/*
 * Seals the results queued in this loop turn: one signature over a Merkle
 * root for all of them (SR2), or its own signature for a lone one. If the
 * batch cannot be sealed as a whole, each is sealed on its own.
 */
static void results_flush(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct node *n = arg;
    struct job **q = n->rq;
    size_t total = n->rq_n;
    n->rq = NULL;
    n->rq_n = n->rq_cap = 0;
    n->rq_scheduled = false;
    size_t max = batch_max(n);
    n->rq_depth = 0;
    event_del(n->rq_late);
    size_t cap = n->max_body + 4096;
    for (size_t off = 0; off < total; off += max) {
        size_t k = total - off < max ? total - off : max;
        struct job **jobs = q + off;
        struct sr_envelope *envs = k > 1 ? malloc(k * sizeof(*envs)) : NULL;
        sr_buf *outs = k > 1 ? malloc(k * sizeof(*outs)) : NULL;
        int rv = SR_ERR_NOMEM;
        if (envs && outs) {
            for (size_t i = 0; i < k; i++) {
                envs[i] = jobs[i]->res;
                sr_buf_init(&outs[i], cap);
            }
            rv = sr_envelope_seal_batch(outs, n->key, envs, k);
            if (rv == 0) {
                sr_metrics_add(n->metrics, "skyroute_node_signatures_total", "", 1);
                sr_metrics_add(n->metrics, "skyroute_node_results_sealed_total", "", (double)k);
            }
            for (size_t i = 0; i < k; i++) {
                if (rv == 0) {
                    job_answer(jobs[i], &outs[i], 0);
                } else {
                    sr_buf_free(&outs[i]);
                }
            }
        }
        free(envs);
        free(outs);
        for (size_t i = 0; rv != 0 && i < k; i++) {
            sr_buf env;
            sr_buf_init(&env, cap);
            int r = sr_envelope_seal_one(&env, n->key, &jobs[i]->res);
            if (r == 0) {
                sr_metrics_add(n->metrics, "skyroute_node_signatures_total", "", 1);
                sr_metrics_add(n->metrics, "skyroute_node_results_sealed_total", "", 1);
            }
            job_answer(jobs[i], &env, r);
        }
    }
    free(q);
}

/* Queues |j|'s result for results_flush(), which runs at the first of: a loop
 * turn with nothing else to run (at low load, right away: a lone result is
 * signed on its own), RESULT_WAIT_US later, batch_max() results. false on
 * out of memory. */
static bool results_enqueue(struct node *n, struct job *j)
{
    if (!n->rq_idle) {
        n->rq_idle = event_new(n->base, -1, 0, results_flush, n);
        if (!n->rq_idle) {
            return false;
        }
        int np = event_base_get_npriorities(n->base);
        if (np > 1) {
            event_priority_set(n->rq_idle, np - 1);
        }
    }
    if (!n->rq_late && !(n->rq_late = evtimer_new(n->base, results_flush, n))) {
        return false;
    }
    if (n->rq_n == n->rq_cap) {
        size_t c = n->rq_cap ? 2 * n->rq_cap : 64;
        struct job **q = realloc(n->rq, c * sizeof(*q));
        if (!q) {
            return false;
        }
        n->rq = q;
        n->rq_cap = c;
    }
    if (!n->rq_scheduled) {
        static const struct timeval wait = {0, RESULT_WAIT_US};
        event_active(n->rq_idle, EV_TIMEOUT, 0);
        evtimer_add(n->rq_late, &wait);
        n->rq_scheduled = true;
    }
    j->rq_slot = n->rq_n;
    n->rq[n->rq_n++] = j;
    if (j->wl.depth > n->rq_depth) {
        n->rq_depth = j->wl.depth;
    }
    if (n->rq_n >= batch_max(n)) {
        event_active(n->rq_late, EV_TIMEOUT, 0);
    }
    return true;
}

/* Builds the result for |j| and queues it to be sealed with the others of this
 * loop turn (or seals it at once if it cannot be queued), then answers (or just
 * stores it if the client left). */
static void job_finish(struct job *j, int64_t status, const char *error, const uint8_t *out,
                       size_t outlen)
{
    struct node *n = j->node;
    job_release_handler(j);
    struct sr_envelope *res = &j->res;
    memset(res, 0, sizeof(*res));
    res->kind = SR_KIND_RESULT;
    memcpy(res->id, j->wl.id, sizeof(res->id));
    res->iat = sr_now_ms();
    res->exp = j->wl.exp;
    sr_str_copy(res->src, sizeof(res->src), n->id);
    sr_str_copy(res->dst, sizeof(res->dst), j->wl.src);
    sr_str_copy(res->handler, sizeof(res->handler), j->wl.handler);
    res->status = status;
    res->flags = SR_ENV_HAS_STATUS | SR_ENV_HAS_T_RECV | SR_ENV_HAS_T_DONE;
    if (error && *error) {
        sr_str_copy(res->error, sizeof(res->error), error);
        res->flags |= SR_ENV_HAS_ERROR;
    }
    res->t_recv = j->t_recv;
    res->t_done = res->iat;
    res->payload = out;
    res->payload_len = outlen;
    bool owned = outlen == 0 || out == j->payload_copy || (j->out.data && out == j->out.data);
    if (!owned) {
        /* the handler's output lives on its stack: keep a copy until sealed */
        j->res_copy = malloc(outlen);
        if (j->res_copy) {
            memcpy(j->res_copy, out, outlen);
        }
        res->payload = j->res_copy;
    }
    if (res->payload_len && !res->payload) {
        sr_buf env;
        sr_buf_init(&env, 0);
        job_answer(j, &env, SR_ERR_NOMEM);
    } else if (!results_enqueue(n, j)) {
        sr_buf env;
        sr_buf_init(&env, n->max_body + 4096);
        job_answer(j, &env, sr_envelope_seal_one(&env, n->key, res));
    }
}

static void job_abort(sr_req *req, void *data)
{
    (void)req;
    struct job *j = data;
    j->rp.req = NULL; /* the job runs to completion; its result is stored for a retry */
}

/* ---- compute: spends work/gops seconds, like a real accelerator would ------------------ */

static void compute_done(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct job *j = arg;
    char out[160];
    int len = snprintf(out, sizeof(out), "{\"work_gop\":%.6g,\"gops\":%.6g,\"ms\":%lld}\n",
                       j->wl.work, j->node->gops, (long long)(sr_now_ms() - j->t_recv));
    job_finish(j, 0, NULL, (const uint8_t *)out, (size_t)len);
}

/* ---- exec:NAME: a configured command, payload on stdin, stdout is the result --------- */

static void exec_reap(struct job *j)
{
    if (j->pid > 0) {
        kill(j->pid, SIGKILL);
        int st;
        waitpid(j->pid, &st, 0);
        j->pid = 0;
    }
}

static void exec_complete(struct job *j)
{
    int st = 0;
    bool ok = false;
    if (j->pid > 0) {
        if (j->timed_out || j->out_capped) {
            exec_reap(j);
        } else {
            if (waitpid(j->pid, &st, 0) == j->pid) {
                ok = WIFEXITED(st) && WEXITSTATUS(st) == 0;
            }
            j->pid = 0;
        }
    }
    char err[200];
    if (j->timed_out) {
        snprintf(err, sizeof(err), "exec:%s exceeded its time limit of %lld ms", j->ec->name,
                 (long long)j->ec->timeout_ms);
        job_finish(j, 504, err, NULL, 0);
    } else if (j->out_capped) {
        snprintf(err, sizeof(err), "exec:%s wrote more than %zu bytes", j->ec->name,
                 j->ec->max_output);
        job_finish(j, 500, err, NULL, 0);
    } else if (!ok) {
        snprintf(err, sizeof(err), "exec:%s failed (%s %d)", j->ec->name,
                 WIFSIGNALED(st) ? "signal" : "exit status",
                 WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
        job_finish(j, 500, err, NULL, 0);
    } else {
        job_finish(j, 0, NULL, j->out.data, j->out.len);
    }
}

static void exec_timeout(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct job *j = arg;
    j->timed_out = true;
    exec_complete(j);
}

static void exec_out_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    struct job *j = arg;
    uint8_t buf[65536];
    ssize_t r = read(fd, buf, sizeof(buf));
    if (r < 0 && (errno == EAGAIN || errno == EINTR)) {
        return;
    }
    if (r > 0) {
        if (sr_buf_append(&j->out, buf, (size_t)r) != 0) {
            j->out_capped = true;
            exec_complete(j);
        }
        return;
    }
    exec_complete(j); /* EOF or error: the child closed stdout */
}

static void exec_in_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    struct job *j = arg;
    size_t left = j->wl.payload_len - j->in_off;
    if (left > 0) {
        ssize_t w = write(fd, j->payload_copy + j->in_off, left);
        if (w < 0 && (errno == EAGAIN || errno == EINTR)) {
            return;
        }
        if (w > 0) {
            j->in_off += (size_t)w;
            if (j->in_off < j->wl.payload_len) {
                return;
            }
        }
    }
    /* all written, or the child stopped reading: close its stdin */
    event_free(j->in_ev);
    j->in_ev = NULL;
    close(j->in_fd);
    j->in_fd = -1;
}

static int exec_start(struct job *j, const struct exec_cfg *ec)
{
    int in_pipe[2], out_pipe[2];
    if (pipe(in_pipe) != 0) {
        return -1;
    }
    if (pipe(out_pipe) != 0) {
        close(in_pipe[0]);
        close(in_pipe[1]);
        return -1;
    }
    pid_t pid = fork();
    if (pid < 0) {
        close(in_pipe[0]);
        close(in_pipe[1]);
        close(out_pipe[0]);
        close(out_pipe[1]);
        return -1;
    }
    if (pid == 0) {
        dup2(in_pipe[0], 0);
        dup2(out_pipe[1], 1);
        close(in_pipe[0]);
        close(in_pipe[1]);
        close(out_pipe[0]);
        close(out_pipe[1]);
        signal(SIGPIPE, SIG_DFL);
        execl("/bin/sh", "sh", "-c", ec->command, (char *)NULL);
        _exit(127);
    }
    close(in_pipe[0]);
    close(out_pipe[1]);
    j->pid = pid;
    j->ec = ec;
    j->in_fd = in_pipe[1];
    j->out_fd = out_pipe[0];
    fcntl(j->in_fd, F_SETFL, O_NONBLOCK);
    fcntl(j->out_fd, F_SETFL, O_NONBLOCK);
    fcntl(j->in_fd, F_SETFD, FD_CLOEXEC);
    fcntl(j->out_fd, F_SETFD, FD_CLOEXEC);
    sr_buf_init(&j->out, ec->max_output);
    j->in_ev = event_new(j->node->base, j->in_fd, EV_WRITE | EV_PERSIST, exec_in_cb, j);
    j->out_ev = event_new(j->node->base, j->out_fd, EV_READ | EV_PERSIST, exec_out_cb, j);
    j->timer = evtimer_new(j->node->base, exec_timeout, j);
    if (!j->in_ev || !j->out_ev || !j->timer) {
        exec_reap(j);
        return -1;
    }
    event_add(j->in_ev, NULL);
    event_add(j->out_ev, NULL);
    struct timeval tv = {(time_t)(ec->timeout_ms / 1000),
                         (suseconds_t)(ec->timeout_ms % 1000) * 1000};
    evtimer_add(j->timer, &tv);
    return 0;
}

/* ---- POST /v1/exec ----------------------------------------------------------------------- */

/* skyroute_node_handler_runs_total's label set, "handler=\"%.60s\"": a constant
 * for the built-in handlers, formatted into |tmp| only for the others. */
static const char *handler_labels(const char *h, char *tmp, size_t tmplen)
{
    if (!strcmp(h, "echo")) {
        return "handler=\"echo\"";
    }
    if (!strcmp(h, "digest")) {
        return "handler=\"digest\"";
    }
    if (!strcmp(h, "compute")) {
        return "handler=\"compute\"";
    }
    snprintf(tmp, tmplen, "handler=\"%.60s\"", h);
    return tmp;
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
        count_reject(n, sr_errname(rv));
        char detail[512];
        refusal_detail(detail, sizeof(detail), sr_errname(rv), why);
        reply_error(&rp, sr_env_http_status(rv), sr_strerror(rv), detail);
        return;
    }
    const uint8_t *stored = NULL;
    size_t stored_len = 0;
    rv = sr_replay_check(n->replay, wl.id, wl.exp, now, &stored, &stored_len);
    if (rv == SR_ERR_ENV_REPLAY) {
        count_reject(n, "env_replay");
        if (stored) {
            /* Refused (the handler does not run again), with the first result attached. */
            reply_send(&rp, 409, ctype_msgpack, true, stored, stored_len, false);
        } else {
            bool dropped = sr_replay_dropped(n->replay, wl.id);
            reply_error(&rp, 409, sr_strerror(rv),
                        dropped ? "{\"code\":\"result_dropped\",\"why\":\"already run; "
                                  "its result is no longer held\"}"
                                : "{\"code\":\"env_replay\",\"why\":\"still running\"}");
        }
        return;
    }
    if (rv != 0) {
        count_reject(n, "busy");
        reply_error(&rp, 503, "too many live envelope ids; retry later", NULL);
        return;
    }

    /* the job and its copy of the payload in one allocation */
    struct job *j =
        wl.payload_len <= SIZE_MAX - sizeof(*j) ? malloc(sizeof(*j) + wl.payload_len) : NULL;
    if (!j) {
        sr_replay_forget(n->replay, wl.id);
        reply_error(&rp, 503, "out of memory", NULL);
        return;
    }
    memset(j, 0, sizeof(*j));
    j->node = n;
    j->next = n->jobs;
    if (n->jobs) {
        n->jobs->prev = j;
    }
    n->jobs = j;
    j->rp = rp;
    j->wl = wl;
    j->t_recv = now;
    j->in_fd = j->out_fd = -1;
    j->payload_copy = (uint8_t *)(j + 1);
    if (wl.payload_len) {
        memcpy(j->payload_copy, wl.payload, wl.payload_len);
    }
    j->wl.payload = j->payload_copy;
    if (rp.req) {
        sr_req_set_data(rp.req, j);
        sr_req_set_abort(rp.req, job_abort);
    }

    const char *h = wl.handler;
    char label_tmp[96];
    const char *label = handler_labels(h, label_tmp, sizeof(label_tmp));
    if (!strcmp(h, "echo")) {
        sr_metrics_add(n->metrics, "skyroute_node_executed_total", "", 1);
        sr_metrics_add(n->metrics, "skyroute_node_handler_runs_total", label, 1);
        job_finish(j, 0, NULL, j->payload_copy, wl.payload_len);
    } else if (!strcmp(h, "digest")) {
        sr_metrics_add(n->metrics, "skyroute_node_executed_total", "", 1);
        sr_metrics_add(n->metrics, "skyroute_node_handler_runs_total", label, 1);
        uint8_t dg[32];
        char hex[65];
        crypto_generichash(dg, sizeof(dg), j->payload_copy, wl.payload_len, NULL, 0);
        sr_hex(hex, dg, sizeof(dg));
        job_finish(j, 0, NULL, (const uint8_t *)hex, 64);
    } else if (!strcmp(h, "compute")) {
        sr_metrics_add(n->metrics, "skyroute_node_executed_total", "", 1);
        sr_metrics_add(n->metrics, "skyroute_node_handler_runs_total", label, 1);
        double secs = (wl.flags & SR_ENV_HAS_WORK) ? wl.work / n->gops : 0;
        j->timer = evtimer_new(n->base, compute_done, j);
        if (!j->timer) {
            job_finish(j, 500, "out of memory", NULL, 0);
            return;
        }
        struct timeval tv = {(time_t)secs, (suseconds_t)((secs - (double)(time_t)secs) * 1e6)};
        evtimer_add(j->timer, &tv);
    } else if (!strncmp(h, "exec:", 5)) {
        const struct exec_cfg *ec = NULL;
        for (size_t i = 0; i < n->nexec; i++) {
            if (!strcmp(n->execs[i].name, h + 5)) {
                ec = &n->execs[i];
            }
        }
        char err[160];
        if (!ec) {
            snprintf(err, sizeof(err), "no command configured for handler '%.60s'", h);
            job_finish(j, 404, err, NULL, 0);
        } else if (exec_start(j, ec) != 0) {
            snprintf(err, sizeof(err), "cannot start exec:%.60s: %s", ec->name, strerror(errno));
            job_finish(j, 500, err, NULL, 0);
        } else {
            sr_metrics_add(n->metrics, "skyroute_node_executed_total", "", 1);
            sr_metrics_add(n->metrics, "skyroute_node_handler_runs_total", label, 1);
        }
    } else {
        char err[160];
        snprintf(err, sizeof(err), "unknown handler '%.60s'", h);
        job_finish(j, 404, err, NULL, 0);
    }
}

static void handle_exec(struct node *n, sr_req *req)
{
    size_t len;
    const uint8_t *body = sr_req_body(req, &len);
    struct reply rp = {.req = req};
    exec_envelope(n, &rp, body, len);
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
        count_reject(n, "batch_format");
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
    static const struct sr_http_header h[] = {{"content-type", ctype_batch}};
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
    batch_release(b);
}

static void main_handler(sr_req *req, void *arg)
{
    struct node *n = arg;
    const char *path = sr_req_path(req);
    sr_metrics_add(n->metrics, "skyroute_node_requests_total", "", 1);
    bool exec = !strcmp(path, "/v1/exec"), batch = !strcmp(path, "/v1/batch");
    if (exec || batch) {
        if (strcmp(sr_req_method(req), "POST") != 0) {
            sr_req_respond_error(
                req, 405, exec ? "POST an envelope to /v1/exec" : "POST envelopes to /v1/batch",
                NULL);
        } else if (n->emu_sat && delay_over_link(n, req, NULL, 0)) {
            /* arrives after the light time */
        } else if (exec) {
            handle_exec(n, req);
        } else {
            handle_batch(n, req);
        }
        return;
    }
    replay_gauges(n);
    if (sr_admin_serve(req, n->metrics, !n->draining)) {
        return;
    }
    sr_req_respond_error(req, 404, "no such path", NULL);
}

/* ---- onboard work for the ground ---------------------------------------------------- */

static struct inbox *inbox_find(struct node *n, const uint8_t *id)
{
    for (struct inbox *b = n->inbox; b; b = b->next) {
        if (!memcmp(b->id, id, SR_ENV_IDBYTES)) {
            return b;
        }
    }
    return NULL;
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
    memset(&e, 0, sizeof(e));
    e.kind = SR_KIND_WORKLOAD;
    sr_envelope_new_id(e.id);
    e.iat = sr_now_ms();
    e.exp = e.iat + (int64_t)deadline;
    snprintf(e.src, sizeof(e.src), "%s", n->id);
    snprintf(e.dst, sizeof(e.dst), "%s", n->gw_id);
    snprintf(e.handler, sizeof(e.handler), "%s", handler ? handler : "echo");
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
            count_reject(n, "outbox_result");
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
    static const struct sr_http_header h[] = {{"content-type", "application/vnd.msgpack"}};
    if (n->upq) {
        n->sync_busy =
            sr_h2_request(n->pool, n->gw_url, "POST", "/v1/uplink", h, 1, n->upq->env.data,
                          n->upq->env.len, 10000, uplink_done, n) != NULL;
        return;
    }
    struct sr_envelope e;
    memset(&e, 0, sizeof(e));
    e.kind = SR_KIND_WORKLOAD;
    sr_envelope_new_id(e.id);
    e.iat = sr_now_ms();
    e.exp = e.iat + 60000;
    snprintf(e.src, sizeof(e.src), "%s", n->id);
    snprintf(e.dst, sizeof(e.dst), "%s", n->gw_id);
    snprintf(e.handler, sizeof(e.handler), "outbox");
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

static void admin_handler(sr_req *req, void *arg)
{
    struct node *n = arg;
    const char *path = sr_req_path(req);
    size_t plen = strcspn(path, "?");
    if (plen == 10 && !strncmp(path, "/v1/submit", 10)) {
        if (strcmp(sr_req_method(req), "POST") != 0) {
            sr_req_respond_error(req, 405, "POST the payload", NULL);
        } else {
            submit_local(n, req);
        }
        return;
    }
    if (plen > 10 && !strncmp(path, "/v1/inbox/", 10)) {
        inbox_get(n, req, path + 10, plen - 10);
        return;
    }
    replay_gauges(n);
    if (!sr_admin_serve(req, n->metrics, !n->draining)) {
        sr_req_respond_error(req, 404, "no such path", NULL);
    }
}

/* ---- config and main ----------------------------------------------------------------- */

struct cfg_ctx {
    struct node *n;
    const char *path;
    int line;
    FILE *fp;
    char err[300];
};

static char *cfg_reader(char *str, int num, void *stream)
{
    struct cfg_ctx *c = stream;
    char *r = fgets(str, num, c->fp);
    if (r) {
        c->line++;
    }
    return r;
}

static int cfg_entry(void *user, const char *section, const char *name, const char *value)
{
    struct cfg_ctx *c = user;
    struct node *n = c->n;
    double d;
    if (!strcmp(section, "node")) {
        if (!strcmp(name, "gops") && sr_parse_double(&d, value, strlen(value)) == 0 && d > 0) {
            n->gops = d;
            return 1;
        }
        snprintf(c->err, sizeof(c->err), "%s:%d: bad or unknown key '%s' in [node]", c->path,
                 c->line, name);
        return 0;
    }
    if (!strncmp(section, "exec.", 5) && section[5]) {
        struct exec_cfg *e = NULL;
        for (size_t i = 0; i < n->nexec; i++) {
            if (!strcmp(n->execs[i].name, section + 5)) {
                e = &n->execs[i];
            }
        }
        if (!e) {
            if (n->nexec == MAX_EXEC || strlen(section + 5) >= sizeof(e->name)) {
                snprintf(c->err, sizeof(c->err),
                         "%s:%d: too many [exec.*] sections or name too long", c->path, c->line);
                return 0;
            }
            e = &n->execs[n->nexec++];
            snprintf(e->name, sizeof(e->name), "%s", section + 5);
            e->timeout_ms = 10000;
            e->max_output = 16u << 20;
        }
        if (!strcmp(name, "command") && value[0] && strlen(value) < sizeof(e->command)) {
            snprintf(e->command, sizeof(e->command), "%s", value);
            return 1;
        }
        if (!strcmp(name, "timeout_ms") && sr_parse_double(&d, value, strlen(value)) == 0 &&
            d >= 1 && d <= 86400000) {
            e->timeout_ms = (int64_t)d;
            return 1;
        }
        if (!strcmp(name, "max_output") && sr_parse_double(&d, value, strlen(value)) == 0 &&
            d >= 0 && d <= (1 << 30)) {
            e->max_output = (size_t)d;
            return 1;
        }
        snprintf(c->err, sizeof(c->err), "%s:%d: bad or unknown key '%s' in [%s]", c->path, c->line,
                 name, section);
        return 0;
    }
    snprintf(c->err, sizeof(c->err), "%s:%d: unknown section [%s]", c->path, c->line, section);
    return 0;
}

static int load_node_config(struct node *n, const char *path)
{
    struct cfg_ctx c = {.n = n, .path = path};
    c.fp = fopen(path, "r");
    if (!c.fp) {
        fprintf(stderr, "skyroute-node: %s: %s\n", path, strerror(errno));
        return -1;
    }
    int rv = ini_parse_stream(cfg_reader, &c, cfg_entry, &c);
    fclose(c.fp);
    if (rv != 0) {
        fprintf(stderr, "skyroute-node: %s\n",
                c.err[0] ? c.err : "syntax error in config (expected [section] or key = value)");
        return -1;
    }
    for (size_t i = 0; i < n->nexec; i++) {
        if (!n->execs[i].command[0]) {
            fprintf(stderr, "skyroute-node: %s: [exec.%s] needs 'command'\n", path,
                    n->execs[i].name);
            return -1;
        }
    }
    return 0;
}

/* ---- link emulation -------------------------------------------------------------- */

static void emu_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct node *n = arg;
    sr_look_angles la;
    int64_t now = sr_now_ms();
    int rv = sr_look(&n->emu_station, n->emu_sat, now, &la);
    bool visible = rv == 0 && la.el_deg >= n->emu_min_el;
    if (rv == 0) {
        n->emu_light_ms = sr_light_time_ms(la.range_km);
        sr_metrics_set(n->metrics, "skyroute_node_link_elevation_degrees", "", la.el_deg);
        sr_metrics_set(n->metrics, "skyroute_node_link_light_time_seconds", "",
                       n->emu_light_ms / 1000.0);
    }
    if (visible && !n->emu_up && !n->draining) {
        if (sr_http_server_resume_listening(n->main) == 0) {
            n->emu_up = true;
            sr_log(SR_LOG_INFO,
                   "link up: AOS, elevation %.1f deg, range %.0f km, light time %.2f ms", la.el_deg,
                   la.range_km, n->emu_light_ms);
        }
    } else if (!visible && n->emu_up) {
        n->emu_up = false;
        sr_http_server_stop_listening(n->main);
        sr_http_server_drop_connections(n->main);
        if (rv == 0) {
            sr_log(SR_LOG_INFO, "link down: LOS, elevation %.1f deg", la.el_deg);
        } else {
            sr_log(SR_LOG_WARN, "link down: propagation failed: %s", sr_strerror(rv));
        }
    }
    sr_metrics_set(n->metrics, "skyroute_node_link_up", "", n->emu_up ? 1 : 0);
}

static int emu_load(struct node *n, const char *file, const char *station, const char *which)
{
    FILE *f = fopen(file, "rb");
    if (!f) {
        fprintf(stderr, "skyroute-node: --emulate-link %s: %s\n", file, strerror(errno));
        return -1;
    }
    sr_buf b;
    sr_buf_init(&b, 64u << 20);
    char chunk[65536];
    size_t got;
    int rv = 0;
    while (rv == 0 && (got = fread(chunk, 1, sizeof(chunk), f)) > 0) {
        rv = sr_buf_append(&b, chunk, got);
    }
    fclose(f);
    char err[300] = "";
    sr_elements *els = NULL;
    size_t nel = 0;
    if (rv == 0) {
        rv =
            sr_elements_parse_text(&els, &nel, (const char *)b.data, b.len, 0, 0, err, sizeof(err));
    }
    sr_buf_free(&b);
    if (rv != 0) {
        fprintf(stderr, "skyroute-node: --emulate-link %s: %s\n", file,
                err[0] ? err : sr_strerror(rv));
        return -1;
    }
    const sr_elements *pick = NULL;
    for (size_t i = 0; i < nel && !pick; i++) {
        char num[16];
        snprintf(num, sizeof(num), "%u", els[i].catnum);
        if (!which || !strcmp(els[i].name, which) || !strcmp(num, which)) {
            pick = &els[i];
        }
    }
    if (!pick) {
        fprintf(stderr, "skyroute-node: --sat %s: no such satellite in %s\n", which, file);
        free(els);
        return -1;
    }
    rv = sr_sat_new(&n->emu_sat, pick);
    free(els);
    if (rv != 0) {
        fprintf(stderr, "skyroute-node: --emulate-link %s: %s\n", file, sr_strerror(rv));
        return -1;
    }
    if (sr_station_parse(&n->emu_station, station) != 0) {
        fprintf(stderr, "skyroute-node: --station '%s': expected LAT,LON,ALT_M in range\n",
                station);
        return -1;
    }
    return 0;
}

static void drain_check(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct node *n = arg;
    if (sr_http_server_drain_step(n->main)) {
        event_base_loopexit(n->base, NULL);
    }
}

static void on_term(void *arg)
{
    struct node *n = arg;
    if (n->draining) {
        event_base_loopexit(n->base, NULL);
        return;
    }
    n->draining = true;
    sr_log(SR_LOG_INFO, "draining: %zu requests in flight", sr_http_server_inflight(n->main));
    sr_http_server_stop_listening(n->main);
    sr_http_server_goaway(n->main, false); /* clients start no new streams here */
    n->drain_timer = event_new(n->base, -1, EV_PERSIST, drain_check, n);
    struct timeval tv = {0, 50000};
    event_add(n->drain_timer, &tv);
}

static int usage_error(const char *msg)
{
    fprintf(stderr, "skyroute-node: %s\n%s", msg, usage_text);
    return 2;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"id", required_argument, 0, 'i'},
        {"listen", required_argument, 0, 'l'},
        {"key", required_argument, 0, 'k'},
        {"trust", required_argument, 0, 't'},
        {"admin", required_argument, 0, 'a'},
        {"config", required_argument, 0, 'c'},
        {"gops", required_argument, 0, 'g'},
        {"max-body", required_argument, 0, 'm'},
        {"log-level", required_argument, 0, 'L'},
        {"help", no_argument, 0, 'h'},
        {"version", no_argument, 0, 'V'},
        {"emulate-link", required_argument, 0, 'E'},
        {"station", required_argument, 0, 'S'},
        {"min-el", required_argument, 0, 'M'},
        {"sat", required_argument, 0, 'A'},
        {"gateway", required_argument, 0, 'G'},
        {"gateway-id", required_argument, 0, 'I'},
        {"link-bps", required_argument, 0, 'R'},
        {"envelope-batch", required_argument, 0, 'B'},
        {"replay-memory", required_argument, 0, 'P'},
        {"upload-slots", required_argument, 0, 'U'},
        {0, 0, 0, 0},
    };
    const char *emu_file = NULL, *emu_station = NULL, *emu_which = NULL;
    double link_bps = 0;
    size_t replay_memory = (size_t)256 << 20;
    unsigned upload_slots = 0;
    struct node n;
    memset(&n, 0, sizeof(n));
    n.gops = 10;
    n.max_body = 32u << 20;
    n.batch_max = 0; /* auto */
    n.emu_min_el = 10;
    const char *listen = NULL, *admin = NULL, *keyfile = NULL, *config = NULL;
    const char *trust[MAX_TRUST];
    size_t ntrust = 0;
    double d;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'i':
            if (!optarg[0] || strlen(optarg) >= sizeof(n.id)) {
                return usage_error("--id must be 1-63 characters");
            }
            snprintf(n.id, sizeof(n.id), "%s", optarg);
            break;
        case 'l':
            listen = optarg;
            break;
        case 'k':
            keyfile = optarg;
            break;
        case 'a':
            admin = optarg;
            break;
        case 'c':
            config = optarg;
            break;
        case 't':
            if (ntrust == MAX_TRUST) {
                return usage_error("too many --trust keys");
            }
            trust[ntrust++] = optarg;
            break;
        case 'P':
            if (sr_parse_double(&d, optarg, strlen(optarg)) != 0 || d < 0 || d > 1e12 ||
                d != (double)(size_t)d) {
                return usage_error("--replay-memory must be a number of bytes in [0, 1e12]");
            }
            replay_memory = (size_t)d;
            break;
        case 'U':
            if (sr_parse_double(&d, optarg, strlen(optarg)) != 0 || d < 0 || d > 1000 ||
                d != (double)(unsigned)d) {
                return usage_error("--upload-slots must be an integer in [0, 1000]");
            }
            upload_slots = (unsigned)d;
            break;
        case 'B':
            if (!strcmp(optarg, "auto")) {
                n.batch_max = 0;
                break;
            }
            if (sr_parse_double(&d, optarg, strlen(optarg)) != 0 || d < 1 || d > SR_ENV_BATCH_MAX ||
                d != (double)(size_t)d) {
                return usage_error("--envelope-batch must be auto or an integer in [1, 1024]");
            }
            n.batch_max = (size_t)d;
            break;
        case 'g':
            if (sr_parse_double(&d, optarg, strlen(optarg)) != 0 || d <= 0) {
                return usage_error("--gops must be a positive number");
            }
            n.gops = d;
            break;
        case 'm':
            if (sr_parse_double(&d, optarg, strlen(optarg)) != 0 || d < 0 || d > (1 << 30)) {
                return usage_error("--max-body must be 0..1073741824");
            }
            n.max_body = (size_t)d;
            break;
        case 'L':
            sr_log_level = !strcmp(optarg, "debug")   ? SR_LOG_DEBUG
                           : !strcmp(optarg, "warn")  ? SR_LOG_WARN
                           : !strcmp(optarg, "error") ? SR_LOG_ERROR
                                                      : SR_LOG_INFO;
            break;
        case 'E':
            emu_file = optarg;
            break;
        case 'G':
            if (strlen(optarg) >= sizeof(n.gw_url)) {
                return usage_error("--gateway URL too long");
            }
            snprintf(n.gw_url, sizeof(n.gw_url), "%s", optarg);
            break;
        case 'I':
            if (!optarg[0] || strlen(optarg) >= sizeof(n.gw_id)) {
                return usage_error("--gateway-id must be 1-63 characters");
            }
            snprintf(n.gw_id, sizeof(n.gw_id), "%s", optarg);
            break;
        case 'S':
            emu_station = optarg;
            break;
        case 'A':
            emu_which = optarg;
            break;
        case 'M':
            if (sr_parse_double(&d, optarg, strlen(optarg)) != 0 || d < -5 || d > 90) {
                return usage_error("--min-el must be a number of degrees in [-5, 90]");
            }
            n.emu_min_el = d;
            break;
        case 'R':
            if (sr_parse_double(&d, optarg, strlen(optarg)) != 0 || d < 8 || d > 1e12) {
                return usage_error("--link-bps must be a rate in bits per second in [8, 1e12]");
            }
            link_bps = d;
            break;
        case 'h':
            fputs(usage_text, stdout);
            return 0;
        case 'V':
            printf("skyroute-node %s\n", SR_VERSION);
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
    if (!n.id[0] || !listen || !keyfile || ntrust == 0) {
        return usage_error(!n.id[0]   ? "missing --id"
                           : !listen  ? "missing --listen"
                           : !keyfile ? "missing --key"
                                      : "missing --trust (at least one sender key)");
    }
    if ((n.gw_url[0] != 0) != (n.gw_id[0] != 0)) {
        return usage_error("--gateway and --gateway-id go together");
    }
    if ((emu_file != NULL) != (emu_station != NULL)) {
        return usage_error("--emulate-link and --station go together");
    }
    if (link_bps > 0 && !emu_file) {
        return usage_error("--link-bps needs --emulate-link");
    }
    if (sr_crypto_init() != 0) {
        fprintf(stderr, "skyroute-node: libsodium failed to initialise\n");
        return 1;
    }
    if (emu_file && emu_load(&n, emu_file, emu_station, emu_which) != 0) {
        return 1;
    }
    if (config && load_node_config(&n, config) != 0) {
        return 1;
    }
    char err[300];
    if (sr_key_load(&n.key, keyfile, err, sizeof(err)) != 0) {
        fprintf(stderr, "skyroute-node: %s: %s\n", keyfile, err);
        return 1;
    }
    if (sr_keyring_new(&n.trust) != 0 || sr_replay_new(&n.replay, 1u << 20) != 0 ||
        sr_rootcache_new(&n.roots) != 0 || sr_metrics_new(&n.metrics) != 0) {
        fprintf(stderr, "skyroute-node: out of memory\n");
        return 1;
    }
    sr_replay_set_result_limit(n.replay, replay_memory);
    /* the result log is faulted in now, not a page at a time under load */
    if (sr_replay_reserve(n.replay) != 0) {
        fprintf(stderr, "skyroute-node: cannot reserve --replay-memory %zu bytes\n", replay_memory);
        return 1;
    }
    for (size_t i = 0; i < ntrust; i++) {
        uint8_t pk[SR_PUBLICKEYBYTES];
        if (sr_pubkey_load(pk, trust[i], err, sizeof(err)) != 0) {
            fprintf(stderr, "skyroute-node: --trust %s: %s\n", trust[i], err);
            return 1;
        }
        int rv = sr_keyring_add(n.trust, pk, trust[i]);
        if (rv != 0 && rv != SR_ERR_EXISTS) {
            fprintf(stderr, "skyroute-node: --trust %s: %s\n", trust[i], sr_strerror(rv));
            return 1;
        }
    }
    sr_metrics_describe(n.metrics, "skyroute_node_executed_total", "counter",
                        "Handler runs actually executed (replays are not counted).");
    sr_metrics_describe(n.metrics, "skyroute_node_rejected_total", "counter",
                        "Envelopes refused, by reason.");
    sr_metrics_describe(n.metrics, "skyroute_node_signatures_total", "counter",
                        "Ed25519 signatures made for results (one per batch).");
    sr_metrics_describe(n.metrics, "skyroute_node_results_sealed_total", "counter",
                        "Results sealed; divided by the signatures, the batch size.");
    sr_metrics_describe(n.metrics, "skyroute_node_batches_total", "counter",
                        "Requests that brought several envelopes at once (POST /v1/batch).");
    sr_metrics_describe(n.metrics, "skyroute_node_batched_envelopes_total", "counter",
                        "Envelopes that came in those requests.");
    sr_metrics_describe(n.metrics, "skyroute_node_replay_ids", "gauge",
                        "Envelope ids the replay guard holds (until each expires).");
    sr_metrics_describe(n.metrics, "skyroute_node_replay_results_dropped_total", "counter",
                        "Results dropped from the replay guard to stay within --replay-memory "
                        "(their ids are still refused).");
    sr_metrics_add(n.metrics, "skyroute_node_executed_total", "", 0);

    /* keep freed memory rather than hand the heap's top back to the kernel
     * after every batch of results (a brk() pair and fresh page faults each),
     * and take bodies up to 8 MiB from the heap, not from an mmap() each
     * (setting one threshold turns off glibc's adjustment of the other) */
    mallopt(M_TRIM_THRESHOLD, 32 << 20);
    mallopt(M_MMAP_THRESHOLD, 8 << 20);
    n.base = event_base_new();
    /* three priorities, everything at the middle one by default; results are
     * sealed at the lowest, when a turn has nothing else to run */
    if (n.base && event_base_priority_init(n.base, 3) != 0) {
        event_base_free(n.base);
        n.base = NULL;
    }
    if (!n.base) {
        fprintf(stderr, "skyroute-node: cannot create event loop\n");
        return 1;
    }
    /* before listening: a SIGTERM that arrives once the port is open is caught */
    if (sr_signals_install(n.base, on_term, NULL, &n) != 0) {
        fprintf(stderr, "skyroute-node: cannot install signal handlers\n");
        return 1;
    }
    struct sr_http_server_opts so = {.listen = listen,
                                     .max_body = n.max_body + 4096,
                                     .rate_Bps = (uint64_t)(link_bps / 8),
                                     .upload_slots = upload_slots,
                                     .handler = main_handler,
                                     .arg = &n};
    if (sr_http_server_new(&n.main, n.base, &so, err, sizeof(err)) != 0) {
        fprintf(stderr, "skyroute-node: %s\n", err);
        return 1;
    }
    if (admin) {
        struct sr_http_server_opts ao = {
            .listen = admin, .allow_http1 = true, .handler = admin_handler, .arg = &n};
        if (sr_http_server_new(&n.admin, n.base, &ao, err, sizeof(err)) != 0) {
            fprintf(stderr, "skyroute-node: %s\n", err);
            return 1;
        }
    }
    if (n.gw_url[0]) {
        sr_buf_init(&n.acks, 1 << 20);
        n.sync_timer = event_new(n.base, -1, EV_PERSIST, sync_tick, &n);
        struct timeval stv = {0, 500000};
        if (sr_h2_pool_new(&n.pool, n.base) != 0 || !n.sync_timer ||
            event_add(n.sync_timer, &stv) != 0) {
            fprintf(stderr, "skyroute-node: cannot start the uplink\n");
            return 1;
        }
    }
    if (n.emu_sat) {
        n.emu_up = true;
        n.emu_timer = event_new(n.base, -1, EV_PERSIST, emu_tick, &n);
        struct timeval tv = {0, 100000};
        if (!n.emu_timer || event_add(n.emu_timer, &tv) != 0) {
            fprintf(stderr, "skyroute-node: cannot start link emulation\n");
            return 1;
        }
        emu_tick(-1, 0, &n);
    }
    sr_log(SR_LOG_INFO, "skyroute-node %s listening on %s (port %d), key id %02x%02x%02x%02x...",
           n.id, listen, sr_http_server_port(n.main), sr_key_id(n.key)[0], sr_key_id(n.key)[1],
           sr_key_id(n.key)[2], sr_key_id(n.key)[3]);
    event_base_dispatch(n.base);
    sr_log(SR_LOG_INFO, "skyroute-node %s stopped", n.id);
    /* jobs still running (a drain that ran out of time, or whose sender left
     * and so no longer counts as in flight), or not sealed before the loop
     * ended: their answers are lost with the process, as the replay guard's
     * results are */
    while (n.jobs) {
        struct job *j = n.jobs;
        if (j->rp.req) {
            sr_req_set_abort(j->rp.req, NULL);
        }
        if (j->rp.batch && j->rp.batch->req) {
            sr_req_set_abort(j->rp.batch->req, NULL);
            j->rp.batch->req = NULL;
        }
        if (j->rp.batch) {
            batch_release(j->rp.batch);
        }
        exec_reap(j);
        job_free(j);
    }
    free(n.rq);
    if (n.rq_idle) {
        event_free(n.rq_idle);
    }
    if (n.rq_late) {
        event_free(n.rq_late);
    }
    sr_http_server_free(n.main);
    sr_http_server_free(n.admin);
    if (n.drain_timer) {
        event_free(n.drain_timer);
    }
    if (n.emu_timer) {
        event_free(n.emu_timer);
    }
    if (n.sync_timer) {
        event_free(n.sync_timer);
    }
    sr_h2_pool_free(n.pool);
    while (n.upq) {
        struct upq *q = n.upq;
        n.upq = q->next;
        sr_buf_free(&q->env);
        free(q);
    }
    while (n.inbox) {
        struct inbox *b = n.inbox;
        n.inbox = b->next;
        sr_buf_free(&b->payload);
        free(b);
    }
    sr_buf_free(&n.acks);
    sr_sat_free(n.emu_sat);
    sr_metrics_free(n.metrics);
    sr_replay_free(n.replay);
    sr_rootcache_free(n.roots);
    sr_keyring_free(n.trust);
    sr_key_free(n.key);
    sr_signals_remove();
    event_base_free(n.base);
    return 0;
}
