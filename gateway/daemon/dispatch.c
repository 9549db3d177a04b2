/*
 * skyrouted part: placing one workload. A job ranks the targets, seals the
 * payload in an envelope addressed to the best one, sends it over the pooled
 * HTTP/2 connection, verifies the signed result (signer must be that target,
 * id must match, addressed to us) and reports the outcome through a callback.
 * The synchronous API (api.c) and the durable spool (spool.c) are
 * its two callers.
 *
 * Retries: a dispatch that never left (connection refused, target in
 * backoff, REFUSED_STREAM, above a GOAWAY's last stream) moves on to the next
 * candidate under the same envelope id. One lost after it was sent may have
 * run, so the job ends with never_sent = false and the caller decides: the
 * synchronous path answers 502, the spool re-sends the same envelope to the
 * same target, whose replay guard returns the stored result.
 *
 * Backpressure: a target whose replay guard is full answers 503 busy with
 * the time until its earliest id expires (retry_after_ms). It never recorded
 * the envelope, so the job moves on to the next candidate as if it had never
 * left, and the target is not counted as failing (no ejection): it stays in
 * the ranking, passed over until that time except for one probe per
 * GW_BUSY_PROBE_MS, and a success (a probe's) or the time passing makes it
 * a candidate like any other again. Only when every candidate is busy does
 * the job end as GW_BUSY, which the client sees as 503 with retry-after.
 *
 * Signatures under load: dispatch() does not seal. It queues the job, and
 * flush_seals() seals what is queued with one signature when the event loop
 * has a turn with nothing else to run (its event has the lowest priority), or
 * SEAL_WAIT_US after the first job queued, or at [gateway] envelope_batch jobs (by default 32, or
 * an eighth of the client requests in flight when that is more, up to 256). At
 * low load that is at once, and a batch of one is signed on its own (sr_envelope_seal_one);
 * under load the requests and results arriving meanwhile gather, and one Ed25519 signature over a
 * Merkle root (SR2, crypto.h) covers them all, each envelope still carrying its path and opening on
 * its own. Results are verified with a cache of verified roots, so a target that batches its
 * results costs one verification per batch. What is checked is unchanged: signer, id, address,
 * expiry; the target's replay guard sees the same ids; a job cancelled while queued leaves the
 * queue.
 */
#define _GNU_SOURCE /* memmem() */

#include "gateway/daemon/daemon.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event_struct.h> /* the start event lives in the job: one allocation fewer */

#define MAX_CANDIDATES 64
#define INLINE_CANDIDATES 4             /* a job ranking more allocates them (see start_cb) */
#define SEAL_BATCH_MAX SR_ENV_BATCH_MAX /* the most [gateway] envelope_batch allows */
#define SEAL_WAIT_US 1000               /* longest an envelope waits for its batch */
/* Envelopes up to this size sealed in one turn for the same target go in one
 * request (POST /v1/batch), up to BATCH_MSG_BYTES; larger ones go on their
 * own, in the HTTP client's send slots (net/h2client.c). */
#define BATCH_ENV_MAX 16384
#define BATCH_MSG_BYTES (256 * 1024)
/* A busy target gets one workload per this period while it says it is full:
 * capacity it gets back early (a grown guard, ids forgotten) is seen within
 * it. */
#define GW_BUSY_PROBE_MS 100
/* The longest a target may call itself busy: its answer is not signed, so
 * a wrong one only delays, and not for long. */
#define GW_BUSY_MAX_MS 60000

struct attempt {
    size_t target;
    char why[160];
};

struct gw_job;

/* Envelopes sealed together for one target and sent in one request (POST
 * /v1/batch, crypto.h's batch messages). */
struct gw_batch {
    struct gw *g;
    sr_h2_call *call; /* NULL once answered */
    size_t target;    /* router index */
    size_t n, live;   /* jobs, and those still waiting for their item */
    bool delivering;  /* on_batch is handing out items: it frees the batch */
    struct gw_job *jobs[];
};

struct gw_job {
    struct gw *gw;
    struct gw_job_spec spec;
    uint8_t *payload_copy; /* spec.payload, owned when spec.copy_payload */
    struct sr_envelope env;
    int64_t start_mono;
    size_t ncands, next;
    size_t cur_target;
    double cur_predicted;
    struct sr_candidate cur_cand; /* the plan being followed */
    bool dispatched;
    sr_h2_call *call;
    struct gw_batch *batch; /* sent in this batch (instead of |call|) */
    uint32_t bidx;
    struct attempt attempts[8];
    size_t nattempts;
    int64_t busy_until; /* the earliest a candidate passed over as busy has room; 0: none */
    bool probe;         /* sent to a target while it was busy: its success means room */
    char idhex[2 * SR_ENV_IDBYTES + 1];
    gw_job_done done;
    void *arg;
    struct event start_ev; /* deferred start: completions never run inside gw_job_start;
                              then, while in a batch, its deadline (batch_job_timeout) */
    /* queued for sealing (seal_q): target chosen, router begun, not yet sent */
    bool queued, qflush; /* qflush: in seal_q.fl (being sealed), else in seal_q.jobs */
    size_t qslot;
    int64_t qleft;
    /* [0, ncands): cands_in, or allocated when more were ranked. Room for
     * MAX_CANDIDATES in every job would be 20 KiB a job, 23 MB at 1,000
     * workloads in flight, for candidates almost no job ranks past the
     * fourth; with four inline it is 4 MB. */
    struct sr_candidate *cands;
    /* last: only [0, ncands) is ever read, so it is not zeroed */
    struct sr_candidate cands_in[INLINE_CANDIDATES];
};

/*
 * Jobs waiting to be sealed at the end of this loop turn. One per process
 * (skyrouted has one struct gw); |roots| verifies the targets' batched results.
 * Both live until exit.
 */
static struct {
    struct gw *g;
    struct gw_job **jobs; /* NULL slots: cancelled while queued */
    size_t n, cap;
    bool scheduled;
    struct gw_job **fl; /* the queue being sealed by flush_seals() */
    size_t fl_n, fl_cap;
    sr_rootcache *roots;
    struct event *idle_ev; /* lowest priority: runs when a loop turn has nothing else */
    struct event *late_ev; /* normal priority: SEAL_WAIT_US after the first queued job */
} seal_q;

/* Takes job |k| out of its batch (it waits for its item no longer). */
static struct gw_job *batch_take(struct gw_batch *b, size_t k)
{
    struct gw_job *job = b->jobs[k];
    b->jobs[k] = NULL;
    job->batch = NULL;
    b->live--;
    event_del(&job->start_ev); /* its deadline (batch_job_timeout) */
    return job;
}

/* |job| leaves its batch without its item (failed or cancelled); the last
 * one out cancels the request and frees the batch, unless on_batch is
 * handing out its items. */
static void batch_leave(struct gw_job *job)
{
    struct gw_batch *b = job->batch;
    batch_take(b, job->bidx);
    if (b->live == 0 && !b->delivering) {
        if (b->call) {
            sr_h2_cancel(b->call);
        }
        free(b);
    }
}

static void job_free(struct gw_job *job)
{
    if (job->queued) {
        (job->qflush ? seal_q.fl : seal_q.jobs)[job->qslot] = NULL;
        sr_router_end(job->gw->router, job->cur_target);
    }
    if (job->call) {
        sr_h2_cancel(job->call);
        sr_router_end(job->gw->router, job->cur_target);
    }
    if (job->batch) {
        batch_leave(job);
        sr_router_end(job->gw->router, job->cur_target);
    }
    event_del(&job->start_ev);
    if (job->cands != job->cands_in) {
        free(job->cands);
    }
    free(job->payload_copy);
    free(job);
}

void gw_job_cancel(struct gw_job *job)
{
    if (job) {
        job_free(job);
    }
}

static void finish(struct gw_job *job, struct gw_job_result *r)
{
    struct gw *g = job->gw;
    const struct sr_target_info *ti =
        job->dispatched ? sr_router_target(g->router, job->cur_target) : NULL;
    r->idhex = job->idhex;
    r->target = ti ? ti->id : "";
    r->target_kind = !ti ? "" : ti->kind == SR_TARGET_SATELLITE ? "satellite" : "idc";
    r->predicted_ms = job->dispatched ? job->cur_predicted : 0;
    r->elapsed_ms = (double)(sr_mono_ms() - job->start_mono);
    r->attempts = (int)job->nattempts + (job->dispatched && r->outcome == GW_DONE ? 1 : 0);
    if (!r->signer) {
        r->signer = "";
    }
    gw_job_done done = job->done;
    void *arg = job->arg;
    job->done = NULL;
    done(r, arg);
    job_free(job);
}

static void fail(struct gw_job *job, enum gw_outcome outcome, int code, const char *msg,
                 const char *detail, bool never_sent)
{
    struct gw_job_result r = {.outcome = outcome,
                              .code = code,
                              .error = msg,
                              .detail_json = detail,
                              .never_sent = never_sent};
    finish(job, &r);
}

/* Out of memory before the envelope left: nothing was sent. */
static void fail_nomem(struct gw_job *job)
{
    fail(job, GW_INTERNAL, SR_ERR_NOMEM, "out of memory", NULL, true);
}

/* JSON list of candidates and why each could not take the work. */
static void candidates_json(struct gw_job *job, sr_buf *b)
{
    struct gw *g = job->gw;
    int rv = sr_buf_appendf(b, "{\"id\":\"%s\",\"deadline_ms\":%lld,\"candidates\":[", job->idhex,
                            (long long)(job->spec.w.deadline_ms - sr_now_ms()));
    for (size_t i = 0; rv == 0 && i < job->ncands; i++) {
        const struct sr_candidate *c = &job->cands[i];
        const char *why = c->why;
        for (size_t a = 0; a < job->nattempts; a++) {
            if (job->attempts[a].target == c->target) {
                why = job->attempts[a].why;
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

static void no_target(struct gw_job *job, const char *msg)
{
    sr_buf b;
    sr_buf_init(&b, 1 << 20);
    candidates_json(job, &b);
    fail(job, GW_NO_TARGET, SR_ERR_UNAVAILABLE, msg, b.data ? (const char *)b.data : NULL, true);
    sr_buf_free(&b);
}

static void dispatch(struct gw_job *job);
static struct target_rt *target_rt(struct gw *g, size_t router_idx);
static int seal_enqueue(struct gw_job *job);

static void record_attempt(struct gw_job *job, const char *why)
{
    if (job->nattempts < sizeof(job->attempts) / sizeof(job->attempts[0])) {
        struct attempt *a = &job->attempts[job->nattempts++];
        a->target = job->cur_target;
        snprintf(a->why, sizeof(a->why), "%s", why);
    }
}

/* Label sets of skyroute_dispatch_total, formatted once per (target, outcome):
 * a direct-mapped cache checked by the target's id, so a reload that renumbers
 * targets only costs a miss. */
#define LABEL_CACHE 64
static struct {
    char id[SR_ENV_STRMAX];
    const char *outcome; /* one of the string literals below */
    char labels[160];
} label_cache[LABEL_CACHE];

static void count_dispatch(struct gw *g, size_t target, const char *outcome)
{
    const char *id = sr_router_target(g->router, target)->id;
    size_t h = (target * 8 + (size_t)(outcome[0] + outcome[1])) % LABEL_CACHE;
    if (label_cache[h].outcome != outcome || strcmp(label_cache[h].id, id) != 0) {
        snprintf(label_cache[h].id, sizeof(label_cache[h].id), "%s", id);
        label_cache[h].outcome = outcome;
        snprintf(label_cache[h].labels, sizeof(label_cache[h].labels),
                 "target=\"%s\",outcome=\"%s\"", id, outcome);
        if (strcmp(label_cache[h].id, id) != 0) { /* longer than SR_ENV_STRMAX: never cached */
            label_cache[h].outcome = NULL;
        }
    }
    sr_metrics_add(g->metrics, "skyroute_dispatch_total", label_cache[h].labels, 1);
}

/* Builds {"id":..,"target":..,KEY:VALUE,"why":WHY} into |b| (NUL-terminated). */
static const char *detail(sr_buf *b, struct gw_job *job, const char *target, const char *extra,
                          const char *why)
{
    int rv = sr_buf_appendf(b, "{\"id\":\"%s\",\"target\":", job->idhex);
    rv = rv ? rv : sr_buf_append_json_str(b, target, strlen(target));
    rv = rv ? rv : sr_buf_appendf(b, "%s,\"why\":", extra);
    rv = rv ? rv : sr_buf_append_json_str(b, why, strlen(why));
    rv = rv ? rv : sr_buf_append(b, "}", 1);
    rv = rv ? rv : sr_buf_terminate(b);
    return rv ? NULL : (const char *)b->data;
}

/* A response header's value (the first of that name), or NULL. */
static const char *resp_header(const struct sr_h2_response *resp, const char *name)
{
    for (size_t i = 0; i < resp->nheaders; i++) {
        if (!strcmp(resp->headers[i].name, name)) {
            return resp->headers[i].value;
        }
    }
    return NULL;
}

/* Is |resp| a target's busy answer (503 {"code":"busy",...})? Then
 * |*retry_ms| is when it has room again, as it said (bounded). */
static bool busy_answer(const struct sr_h2_response *resp, int64_t *retry_ms)
{
    static const char code[] = "\"code\":\"busy\"", key[] = "\"retry_after_ms\":";
    if (resp->status != 503 || !resp->body_len ||
        !memmem(resp->body, resp->body_len, code, sizeof(code) - 1)) {
        return false;
    }
    int64_t v = 1000; /* said nothing: a second */
    const uint8_t *p = memmem(resp->body, resp->body_len, key, sizeof(key) - 1);
    if (p) {
        const uint8_t *end = resp->body + resp->body_len;
        p += sizeof(key) - 1;
        v = 0;
        for (int k = 0; p < end && *p >= '0' && *p <= '9' && k < 9; p++, k++) {
            v = v * 10 + (*p - '0');
        }
    }
    *retry_ms = v < 1 ? 1 : v > GW_BUSY_MAX_MS ? GW_BUSY_MAX_MS : v;
    return true;
}

/* The job passed target |target| over, or was told so by it: busy until |until|. */
static void note_busy(struct gw_job *job, size_t target, int64_t until)
{
    if (!job->busy_until || until < job->busy_until) {
        job->busy_until = until;
    }
    if (job->nattempts < sizeof(job->attempts) / sizeof(job->attempts[0])) {
        struct attempt *a = &job->attempts[job->nattempts++];
        a->target = target;
        snprintf(a->why, sizeof(a->why), "busy (replay guard full) for %lld ms more",
                 (long long)(until - sr_now_ms()));
    }
}

/* Every candidate left is busy: 503 with the earliest time one has room. */
static void busy_fail(struct gw_job *job)
{
    sr_buf b;
    sr_buf_init(&b, 1 << 20);
    candidates_json(job, &b);
    struct gw_job_result r = {.outcome = GW_BUSY,
                              .code = SR_ERR_FULL,
                              .error = "every target that can take the workload is busy; retry "
                                       "after the time given",
                              .detail_json = b.data ? (const char *)b.data : NULL,
                              .never_sent = true,
                              .wait_until_ms = job->busy_until};
    finish(job, &r);
    sr_buf_free(&b);
}

static void on_result(const struct sr_h2_response *resp, void *arg)
{
    struct gw_job *job = arg;
    struct gw *g = job->gw;
    job->call = NULL;
    sr_router_end(g->router, job->cur_target);
    const struct sr_target_info *ti = sr_router_target(g->router, job->cur_target);
    int64_t now = sr_now_ms();
    sr_buf b;
    sr_buf_init(&b, 16384);

    if (resp->error) {
        sr_router_failure(g->router, job->cur_target, now);
        count_dispatch(g, job->cur_target, resp->sent ? "lost" : "unreachable");
        record_attempt(job, resp->detail);
        if (!resp->sent && now < job->spec.w.deadline_ms && !job->spec.pinned) {
            sr_buf_free(&b);
            dispatch(job); /* never reached the target: safe to try the next one */
            return;
        }
        if (resp->error == SR_ERR_TIMEOUT) {
            fail(job, GW_TIMEOUT, SR_ERR_TIMEOUT, "the target did not answer within the deadline",
                 detail(&b, job, ti->id, "", resp->detail), false);
        } else {
            fail(job, resp->sent ? GW_LOST : GW_UNREACHABLE, resp->error,
                 resp->sent ? "the target failed while running the workload"
                            : "the target could not be reached",
                 detail(&b, job, ti->id, resp->sent ? ",\"retry_safe\":false" : "", resp->detail),
                 !resp->sent);
        }
        sr_buf_free(&b);
        return;
    }
    const char *ctype = resp_header(resp, "content-type");
    ctype = ctype ? ctype : "";
    if (resp->status == 409 && strstr(ctype, "json") && resp->body_len &&
        memmem(resp->body, resp->body_len, "\"result_dropped\"", 16)) {
        /* it ran there, and its replay guard had to drop the result to make
         * room before this retry came: nothing to fetch, never a second run */
        count_dispatch(g, job->cur_target, "result_dropped");
        fail(job, GW_RESULT_DROPPED, SR_ERR_ENV_REPLAY,
             "the target ran this workload and no longer holds its result",
             detail(&b, job, ti->id, ",\"retry_safe\":false", "result dropped at the target"),
             false);
        sr_buf_free(&b);
        return;
    }
    if (resp->status == 409 && strstr(ctype, "json")) {
        /* the target already has this envelope and is still running it: its
         * result will be there for the next try (never a second run) */
        count_dispatch(g, job->cur_target, "in_progress");
        fail(job, GW_IN_PROGRESS, SR_ERR_ENV_REPLAY, "the target is still running this workload",
             detail(&b, job, ti->id, ",\"retry_safe\":false", "in progress at the target"), false);
        sr_buf_free(&b);
        return;
    }
    int64_t retry_ms;
    if (busy_answer(resp, &retry_ms)) {
        /* backpressure, not a failure: it did not record the id, so the
         * envelope goes to the next candidate (dispatch() ends the job as
         * GW_BUSY when there is none) */
        struct target_rt *t = target_rt(g, job->cur_target);
        count_dispatch(g, job->cur_target, "busy");
        if (t) {
            t->busy_until = now + retry_ms;
            t->busy_probe_at = now + GW_BUSY_PROBE_MS;
        }
        note_busy(job, job->cur_target, now + retry_ms);
        sr_buf_free(&b);
        dispatch(job);
        return;
    }
    if (resp->status != 200 && resp->status != 409) {
        /* The target refused our envelope: report its words. */
        sr_router_failure(g->router, job->cur_target, now);
        count_dispatch(g, job->cur_target, "refused");
        char extra[32], body[1025];
        snprintf(extra, sizeof(extra), ",\"status\":%d", resp->status);
        size_t show = resp->body_len < 1024 ? resp->body_len : 1024;
        memcpy(body, resp->body, show);
        body[show] = 0;
        fail(job, GW_REFUSED, SR_ERR_PROTO, "the target refused the envelope",
             detail(&b, job, ti->id, extra, body), false);
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
        .roots = seal_q.roots, /* NULL if it could not be made: every root verified */
    };
    int rv = sr_envelope_open(&res, resp->body, resp->body_len, &oo, why, sizeof(why));
    if (rv == 0 && (memcmp(res.id, job->env.id, SR_ENV_IDBYTES) != 0)) {
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
        sr_router_failure(g->router, job->cur_target, now);
        count_dispatch(g, job->cur_target, "bad_result");
        char labels[160], extra[64];
        snprintf(labels, sizeof(labels), "target=\"%s\",reason=\"%s\"", ti->id, sr_errname(rv));
        sr_metrics_add(g->metrics, "skyroute_signature_failures_total", labels, 1);
        sr_log(SR_LOG_WARN, "workload %s: result from %s refused: %s: %s", job->idhex, ti->id,
               sr_strerror(rv), why);
        snprintf(extra, sizeof(extra), ",\"code\":\"%s\"", sr_errname(rv));
        fail(job, GW_BAD_RESULT, rv, "the result failed verification and was discarded",
             detail(&b, job, ti->id, extra, why), false);
        sr_buf_free(&b);
        return;
    }

    double elapsed = (double)(sr_mono_ms() - job->start_mono);
    sr_router_observe(g->router, &job->cur_cand, elapsed, job->spec.w.work_gop, now);
    if (job->probe) {
        /* it took one sent while it was full: room again. A success of one
         * sent before it said busy says nothing of that. */
        struct target_rt *t = target_rt(g, job->cur_target);
        if (t) {
            t->busy_until = 0;
        }
    }
    count_dispatch(g, job->cur_target, "ok");
    char signer[SR_KEYIDBYTES * 2 + 1];
    sr_hex(signer, res.signer, SR_KEYIDBYTES);
    char signer_hdr[SR_ENV_STRMAX + 40]; /* "%s %s" of the name and the key id */
    size_t sn = sr_str_copy(signer_hdr, sizeof(signer_hdr), res.signer_name);
    if (sn + 1 < sizeof(signer_hdr)) {
        signer_hdr[sn++] = ' ';
        sr_str_copy(signer_hdr + sn, sizeof(signer_hdr) - sn, signer);
    }
    struct gw_job_result r = {.outcome = GW_DONE,
                              .payload = res.payload,
                              .payload_len = res.payload_len,
                              .payload_mem = resp->body_mem,
                              .signer = signer_hdr,
                              .t_recv = (res.flags & SR_ENV_HAS_T_RECV) ? res.t_recv : 0,
                              .t_done = (res.flags & SR_ENV_HAS_T_DONE) ? res.t_done : 0,
                              .envelope = resp->body,
                              .envelope_len = resp->body_len};
    if ((res.flags & SR_ENV_HAS_STATUS) && res.status != 0) {
        char extra[48];
        snprintf(extra, sizeof(extra), ",\"status\":%lld", (long long)res.status);
        r.outcome = GW_HANDLER_FAILED;
        r.handler_status = res.status;
        r.error = "the handler failed at the target";
        r.detail_json = detail(&b, job, ti->id, extra, res.error);
        r.payload = NULL;
        r.payload_len = 0;
        r.payload_mem = NULL;
    }
    finish(job, &r);
    sr_buf_free(&b);
}

static struct target_rt *target_rt(struct gw *g, size_t router_idx)
{
    for (size_t i = 0; i < g->ntargets; i++) {
        if (g->targets[i].router_idx == (int)router_idx) {
            return &g->targets[i];
        }
    }
    return NULL;
}

/* ---- sealing, one signature per loop turn ------------------------------------------ */

/* Sends |job|'s sealed envelope (taken from |env|, which is left empty). The
 * target is looked up again: a reload (SIGHUP) may have removed it, or moved
 * its configuration, since the job was queued; then the envelope never left
 * and the next candidate is tried. */
static void send_sealed(struct gw_job *job, sr_buf *env)
{
    struct gw *g = job->gw;
    struct target_rt *t = target_rt(g, job->cur_target);
    if (!t) {
        sr_router_end(g->router, job->cur_target);
        record_attempt(job, "removed by a reload before the envelope left");
        dispatch(job);
        return;
    }
    static const struct sr_http_header h[] = {{"content-type", "application/vnd.msgpack"}};
    /* the sealed envelope's buffer goes to the call as is: no copy */
    job->call = sr_h2_request_take(g->pool, t->cfg->url, "POST", "/v1/exec", h, 1, env, job->qleft,
                                   on_result, job);
    if (!job->call) {
        sr_router_end(g->router, job->cur_target);
        fail_nomem(job);
    }
}

static const char ctype_batch[] = "application/vnd.skyroute.batch+msgpack";

/* Hands job |k| its own answer out of its batch's (on_result, as if it had
 * come alone). */
static void batch_deliver(struct gw_batch *b, size_t k, const struct sr_h2_response *r)
{
    on_result(r, batch_take(b, k));
}

/* Hands out the complete items at the front of [p, p + len) and returns the
 * bytes they took; stops at an incomplete one, or at a malformed one (|*bad|
 * set, |why| says what). */
static size_t batch_take_items(struct gw_batch *b, const uint8_t *p, size_t len, bool *bad,
                               char *why, size_t whylen)
{
    size_t taken = 0;
    b->delivering = true;
    while (taken < len) {
        struct sr_batch_item it;
        size_t used;
        if (sr_batch_next_item(p + taken, len - taken, &it, &used, why, whylen) != 0) {
            *bad = true;
            break;
        }
        if (used == 0) {
            break;
        }
        taken += used;
        if (it.index < b->n && b->jobs[it.index]) {
            struct sr_http_header h = {"content-type", it.ctype};
            struct sr_h2_response r = {.sent = true,
                                       .status = it.status,
                                       .headers = &h,
                                       .nheaders = 1,
                                       .body = it.body,
                                       .body_len = it.len};
            batch_deliver(b, it.index, &r);
        }
    }
    b->delivering = false;
    return taken;
}

static bool is_batch_answer(const struct sr_h2_response *resp)
{
    const char *ctype = resp_header(resp, "content-type");
    return resp->status == 200 && ctype && !strcmp(ctype, ctype_batch);
}

/* Items as they arrive: each job gets its answer as soon as the node sent it. */
static size_t batch_progress(const struct sr_h2_response *partial, void *arg)
{
    struct gw_batch *b = arg;
    if (!is_batch_answer(partial)) {
        return 0; /* on_batch deals with it */
    }
    bool bad = false;
    char why[160];
    /* a malformed item stops here; on_batch finds it again and says so */
    return batch_take_items(b, partial->body, partial->body_len, &bad, why, sizeof(why));
}

/* A job of a batch whose deadline passed before its item came: 504, as for a
 * request of its own (its envelope was sent, so it may run there). */
static void batch_job_timeout(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct gw_job *job = arg;
    batch_leave(job);
    struct sr_h2_response r = {.error = SR_ERR_TIMEOUT,
                               .sent = true,
                               .detail = "no answer from the target within the deadline"};
    on_result(&r, job);
}

/* The answer to a batch: each item goes to its job; a job without one had
 * its envelope sent and lost. A node that takes no batches (404, 405, or 413
 * for one this large) never ran them: each is sealed again and goes alone. */
static void on_batch(const struct sr_h2_response *resp, void *arg)
{
    struct gw_batch *b = arg;
    struct gw *g = b->g;
    b->call = NULL;
    b->delivering = true;
    char why[160] = "the node's answer to the batch had no item for this envelope";
    if (!resp->error && (resp->status == 404 || resp->status == 405 || resp->status == 413)) {
        struct target_rt *t = target_rt(g, b->target);
        if (t) {
            t->no_batch = true;
            sr_log(SR_LOG_INFO, "target %s takes no batches (%d): one request per envelope",
                   t->cfg->id, resp->status);
        }
        for (size_t k = 0; k < b->n; k++) {
            if (b->jobs[k]) {
                struct gw_job *job = batch_take(b, k);
                if (seal_enqueue(job) != 0) {
                    sr_router_end(g->router, job->cur_target);
                    fail_nomem(job);
                }
            }
        }
    } else if (resp->error || !is_batch_answer(resp)) {
        /* the batch failed as a whole: each job as if its own request had */
        for (size_t k = 0; k < b->n; k++) {
            if (b->jobs[k]) {
                struct sr_h2_response r = *resp;
                r.body_mem = NULL;
                batch_deliver(b, k, &r);
            }
        }
    } else {
        bool bad = false;
        size_t used = batch_take_items(b, resp->body, resp->body_len, &bad, why, sizeof(why));
        b->delivering = true;
        if (!bad && used < resp->body_len) {
            snprintf(why, sizeof(why), "the node's answer to the batch ends inside an item");
        }
    }
    for (size_t k = 0; k < b->n; k++) {
        if (b->jobs[k]) {
            struct sr_h2_response r = {.error = SR_ERR_IO, .sent = true, .detail = why};
            batch_deliver(b, k, &r);
        }
    }
    free(b);
}

/* Sends the jobs seal_q.fl[idx[grp[0..m)]] (m >= 2, one target, sealed into
 * outs[grp[...]]) in one request. Jobs stay queued until handed over, so a
 * job cancelled meanwhile leaves a NULL slot. Without memory for the batch,
 * each goes alone. */
static void send_batch(struct gw *g, const size_t *idx, sr_buf *outs, const size_t *grp, size_t m)
{
    struct gw_job *first = seal_q.fl[idx[grp[0]]];
    struct target_rt *t = target_rt(g, first->cur_target);
    struct gw_batch *b = t ? malloc(sizeof(*b) + m * sizeof(b->jobs[0])) : NULL;
    sr_buf body;
    sr_buf_init(&body, SIZE_MAX / 2);
    size_t total = 0;
    for (size_t k = 0; k < m; k++) {
        total += outs[grp[k]].len + 5;
    }
    int rv = b ? sr_buf_reserve(&body, total) : SR_ERR_NOMEM;
    int64_t left = 0;
    for (size_t k = 0; rv == 0 && k < m; k++) {
        struct gw_job *job = seal_q.fl[idx[grp[k]]];
        rv = sr_batch_append_env(&body, outs[grp[k]].data, outs[grp[k]].len);
        if (job->qleft > left) {
            left = job->qleft;
        }
    }
    if (rv != 0) {
        free(b);
        sr_buf_free(&body);
        for (size_t k = 0; k < m; k++) {
            struct gw_job *job = seal_q.fl[idx[grp[k]]];
            if (job) {
                job->queued = false;
                send_sealed(job, &outs[grp[k]]);
            }
        }
        return;
    }
    b->g = g;
    b->target = first->cur_target;
    b->n = b->live = m;
    b->delivering = false;
    for (size_t k = 0; k < m; k++) {
        struct gw_job *job = seal_q.fl[idx[grp[k]]];
        job->queued = false;
        job->batch = b;
        job->bidx = (uint32_t)k;
        b->jobs[k] = job;
        /* each keeps its own deadline; the request waits for the latest */
        evtimer_assign(&job->start_ev, g->base, batch_job_timeout, job);
        struct timeval tv = {(time_t)(job->qleft / 1000), (suseconds_t)(job->qleft % 1000) * 1000};
        evtimer_add(&job->start_ev, &tv);
    }
    static const struct sr_http_header h[] = {{"content-type", ctype_batch}};
    b->call = sr_h2_request_take(g->pool, t->cfg->url, "POST", "/v1/batch", h, 1, &body, left,
                                 on_batch, b);
    if (b->call) {
        sr_h2_set_progress(b->call, batch_progress);
        sr_metrics_add(g->metrics, "skyroute_batch_requests_total", "", 1);
        sr_metrics_add(g->metrics, "skyroute_batched_envelopes_total", "", (double)m);
    } else {
        b->delivering = true;
        for (size_t k = 0; k < m; k++) {
            if (b->jobs[k]) {
                struct sr_h2_response r = {.error = SR_ERR_UNAVAILABLE, .detail = "out of memory"};
                batch_deliver(b, k, &r);
            }
        }
        free(b);
    }
}

/* Sends the jobs of a sealed batch: those for one target that takes batches
 * together (send_batch), the others each on its own. */
static void send_grouped(struct gw *g, const size_t *idx, sr_buf *outs, size_t n)
{
    static bool taken[SEAL_BATCH_MAX];
    static size_t grp[SEAL_BATCH_MAX];
    memset(taken, 0, n * sizeof(taken[0]));
    for (size_t i = 0; i < n; i++) {
        struct gw_job *job = seal_q.fl[idx[i]];
        if (!job || taken[i]) {
            continue;
        }
        size_t m = 0, bytes = outs[i].len;
        grp[m++] = i;
        struct target_rt *t = target_rt(g, job->cur_target);
        if (t && !t->no_batch && outs[i].len <= BATCH_ENV_MAX) {
            for (size_t j = i + 1; j < n && m < SR_BATCH_MSG_MAX; j++) {
                struct gw_job *o = seal_q.fl[idx[j]];
                if (o && !taken[j] && o->cur_target == job->cur_target &&
                    outs[j].len <= BATCH_ENV_MAX && bytes + outs[j].len <= BATCH_MSG_BYTES) {
                    taken[j] = true;
                    grp[m++] = j;
                    bytes += outs[j].len;
                }
            }
        }
        if (m == 1) {
            job->queued = false;
            send_sealed(job, &outs[i]);
        } else {
            send_batch(g, idx, outs, grp, m);
        }
    }
}

static void seal_failed(struct gw_job *job, int rv)
{
    sr_router_end(job->gw->router, job->cur_target);
    fail(job, GW_INTERNAL, rv, "cannot seal the envelope", NULL, true);
}

/* Signatures made and envelopes sealed under them: their ratio is the batch
 * size operators see on /metrics. */
static void count_seal(struct gw *g, size_t envelopes)
{
    sr_metrics_add(g->metrics, "skyroute_envelope_signatures_total", "", 1);
    sr_metrics_add(g->metrics, "skyroute_envelopes_sealed_total", "", (double)envelopes);
}

/* [gateway] envelope_batch: envelopes per signature at most (1: SR1 only);
 * auto (0) follows the client requests in flight (sr_envelope_batch_auto()). */
static size_t seal_batch_max(const struct gw *g)
{
    size_t m = g->cfg->envelope_batch;
    if (m == 0) {
        size_t inflight = sr_http_server_inflight(g->main);
        if (g->tls_server) {
            inflight += sr_http_server_inflight(g->tls_server);
        }
        return sr_envelope_batch_auto(inflight, 0);
    }
    return m > SEAL_BATCH_MAX ? SEAL_BATCH_MAX : m;
}

/* Seals the jobs seal_q.fl[idx[0..m)] into outs[0..m) under one signature,
 * or, if the batch cannot be sealed as a whole (out of memory, or one
 * envelope refused), each on its own, so one bad envelope fails only its own
 * job (its slot turns NULL). */
static void seal_part(struct gw *g, const size_t *idx, sr_buf *outs, size_t m)
{
    if (m > 1) {
        struct sr_envelope *envs = malloc(m * sizeof(*envs));
        int rv = SR_ERR_NOMEM;
        if (envs) {
            for (size_t i = 0; i < m; i++) {
                envs[i] = seal_q.fl[idx[i]]->env;
            }
            rv = sr_envelope_seal_batch(outs, g->key, envs, m);
            free(envs);
        }
        if (rv == 0) {
            count_seal(g, m);
            return;
        }
    }
    for (size_t i = 0; i < m; i++) {
        struct gw_job *job = seal_q.fl[idx[i]];
        if (!job) {
            continue; /* cancelled by a job that failed before it */
        }
        int r = sr_envelope_seal_one(&outs[i], g->key, &job->env);
        if (r == 0) {
            count_seal(g, 1);
        } else {
            seal_q.fl[idx[i]] = NULL;
            job->queued = false;
            seal_failed(job, r);
        }
    }
}

/* Seals the jobs seal_q.fl[idx[0..n)] (none NULL), |max| to a signature, and
 * sends them (send_grouped: those for one target in one request). A job that
 * fails may have its caller cancel others: their slots turn NULL and are
 * skipped. */
static void seal_and_send(struct gw *g, const size_t *idx, size_t n, size_t max)
{
    size_t cap = g->cfg->max_body + 65536;
    sr_buf *outs = malloc(n * sizeof(*outs));
    if (!outs) { /* each on its own, as far as memory goes */
        for (size_t i = 0; i < n; i++) {
            struct gw_job *job = seal_q.fl[idx[i]];
            if (!job) {
                continue;
            }
            job->queued = false;
            sr_buf env;
            sr_buf_init(&env, cap);
            int r = sr_envelope_seal_one(&env, g->key, &job->env);
            if (r == 0) {
                count_seal(g, 1);
                send_sealed(job, &env);
            } else {
                seal_failed(job, r);
            }
            sr_buf_free(&env);
        }
        return;
    }
    for (size_t i = 0; i < n; i++) {
        sr_buf_init(&outs[i], cap);
    }
    for (size_t off = 0; off < n; off += max) {
        seal_part(g, idx + off, outs + off, n - off < max ? n - off : max);
    }
    send_grouped(g, idx, outs, n);
    for (size_t i = 0; i < n; i++) {
        sr_buf_free(&outs[i]);
    }
    free(outs);
}

/* The end of a loop turn: seals what dispatch() queued during it. */
static void flush_seals(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    /* Take the queue: a job that fails may be followed by another dispatch,
     * which queues for the next flush. */
    seal_q.fl = seal_q.jobs;
    seal_q.fl_n = seal_q.n;
    seal_q.fl_cap = seal_q.cap;
    seal_q.jobs = NULL;
    seal_q.n = seal_q.cap = 0;
    seal_q.scheduled = false;
    event_del(seal_q.late_ev);
    for (size_t i = 0; i < seal_q.fl_n; i++) {
        if (seal_q.fl[i]) {
            seal_q.fl[i]->qflush = true;
        }
    }
    /* |max| envelopes to a signature, and at least SR_ENV_BATCH_DEFAULT to a
     * request: with one signature per envelope (envelope_batch = 1) they
     * still travel together (send_grouped) */
    size_t max = seal_batch_max(seal_q.g);
    size_t per_send = max < SR_ENV_BATCH_DEFAULT ? SR_ENV_BATCH_DEFAULT : max;
    size_t i = 0;
    while (i < seal_q.fl_n) {
        size_t idx[SEAL_BATCH_MAX], k = 0;
        for (; i < seal_q.fl_n && k < per_send; i++) {
            if (seal_q.fl[i]) {
                idx[k++] = i;
            }
        }
        if (k) {
            seal_and_send(seal_q.g, idx, k, max);
        }
    }
    /* every job of |fl| has left it (sent, failed or cancelled): its array
     * becomes the next queue unless one was started meanwhile (a retry) */
    if (!seal_q.jobs) {
        seal_q.jobs = seal_q.fl;
        seal_q.cap = seal_q.fl_cap;
    } else {
        free(seal_q.fl);
    }
    seal_q.fl = NULL;
    seal_q.fl_n = seal_q.fl_cap = 0;
}

/* Makes the two events that flush the queue (once per process). */
static int seal_init(struct gw *g)
{
    if (seal_q.idle_ev) {
        return 0;
    }
    if (!seal_q.roots && sr_rootcache_new(&seal_q.roots) != 0) {
        seal_q.roots = NULL; /* results are still verified, each on its own */
    }
    seal_q.idle_ev = event_new(g->base, -1, 0, flush_seals, NULL);
    seal_q.late_ev = evtimer_new(g->base, flush_seals, NULL);
    if (!seal_q.idle_ev || !seal_q.late_ev) {
        if (seal_q.idle_ev) {
            event_free(seal_q.idle_ev);
        }
        if (seal_q.late_ev) {
            event_free(seal_q.late_ev);
        }
        seal_q.idle_ev = seal_q.late_ev = NULL;
        return SR_ERR_NOMEM;
    }
    int np = event_base_get_npriorities(g->base);
    if (np > 1) {
        event_priority_set(seal_q.idle_ev, np - 1);
    }
    sr_metrics_describe(g->metrics, "skyroute_envelope_signatures_total", "counter",
                        "Ed25519 signatures made for workload envelopes (one per batch).");
    sr_metrics_describe(g->metrics, "skyroute_envelopes_sealed_total", "counter",
                        "Workload envelopes sealed; divided by the signatures, the batch size.");
    sr_metrics_describe(g->metrics, "skyroute_batch_requests_total", "counter",
                        "Requests that carried several envelopes to one target (POST /v1/batch).");
    sr_metrics_describe(g->metrics, "skyroute_batched_envelopes_total", "counter",
                        "Envelopes sent in those requests.");
    /* a rate from the first scrape */
    sr_metrics_add(g->metrics, "skyroute_envelope_signatures_total", "", 0);
    sr_metrics_add(g->metrics, "skyroute_envelopes_sealed_total", "", 0);
    sr_metrics_add(g->metrics, "skyroute_batch_requests_total", "", 0);
    sr_metrics_add(g->metrics, "skyroute_batched_envelopes_total", "", 0);
    seal_q.g = g;
    return 0;
}

/*
 * Queues |job| for sealing. The queue is flushed by the first of:
 *  - a loop turn with nothing else to run (idle_ev has the lowest priority;
 *    on a base without priorities, the end of this turn): at low load that is
 *    right away, and one envelope is sealed as SR1; under load the requests
 *    and results that keep arriving gather first, so one signature covers
 *    them all;
 *  - SEAL_WAIT_US after the first queued job (late_ev);
 *  - [gateway] envelope_batch queued jobs (auto by default: sr_envelope_batch_auto()).
 * 0 or SR_ERR_NOMEM.
 */
static int seal_enqueue(struct gw_job *job)
{
    struct gw *g = job->gw;
    if (seal_init(g) != 0) {
        return SR_ERR_NOMEM;
    }
    if (seal_q.n == seal_q.cap) {
        size_t cap = seal_q.cap ? 2 * seal_q.cap : 64;
        struct gw_job **jobs = realloc(seal_q.jobs, cap * sizeof(*jobs));
        if (!jobs) {
            return SR_ERR_NOMEM;
        }
        seal_q.jobs = jobs;
        seal_q.cap = cap;
    }
    if (!seal_q.scheduled) {
        static const struct timeval wait = {0, SEAL_WAIT_US};
        event_active(seal_q.idle_ev, EV_TIMEOUT, 0);
        evtimer_add(seal_q.late_ev, &wait);
        seal_q.scheduled = true;
    }
    job->queued = true;
    job->qflush = false;
    job->qslot = seal_q.n;
    seal_q.jobs[seal_q.n++] = job;
    if (seal_q.n >= seal_batch_max(g)) {
        event_active(seal_q.late_ev, EV_TIMEOUT, 0);
    }
    return 0;
}

static void dispatch(struct gw_job *job)
{
    struct gw *g = job->gw;
    while (job->next < job->ncands) {
        const struct sr_candidate *c = &job->cands[job->next++];
        if (!c->feasible) {
            break; /* feasible ones come first */
        }
        const struct sr_target_info *via = sr_router_target(g->router, c->target);
        if (via->via_station[0]) {
            /* federation: this plan leaves through another station's pass; the
             * spool forwards it there (federation.c), nobody else can */
            if (!job->spec.w.store_and_forward || job->spec.local_only) {
                continue;
            }
            struct gw_job_result r = {.outcome = GW_FORWARD,
                                      .error = "forwarded to another station",
                                      .never_sent = true,
                                      .wait_until_ms = c->up_aos_ms,
                                      .wait_target = via->id};
            finish(job, &r);
            return;
        }
        struct target_rt *t = target_rt(g, c->target);
        if (!t) {
            continue; /* removed by a reload */
        }
        if (c->wait_ms > 0) {
            /* the best plan starts at a later window: only the spool can wait */
            struct gw_job_result r = {.outcome = GW_WAIT,
                                      .error = "waiting for a window",
                                      .never_sent = true,
                                      .wait_until_ms = c->up_aos_ms > 0
                                                           ? c->up_aos_ms
                                                           : sr_now_ms() + (int64_t)c->wait_ms,
                                      .wait_target = t->cfg->id};
            finish(job, &r);
            return;
        }
        int64_t now = sr_now_ms();
        if (t->busy_until && now >= t->busy_until) {
            t->busy_until = 0; /* its earliest id has expired: room again */
        } else if (t->busy_until && now < t->busy_probe_at) {
            note_busy(job, c->target, t->busy_until);
            continue;
        }
        job->probe = t->busy_until != 0;
        if (job->probe) {
            t->busy_probe_at = now + GW_BUSY_PROBE_MS;
        }
        int64_t left = job->spec.w.deadline_ms - now;
        if (left <= 0) {
            break;
        }
        if (job->spec.before_send &&
            job->spec.before_send(t->cfg->id, job->spec.before_send_arg) != 0) {
            fail(job, GW_NOT_RECORDED, SR_ERR_IO, "cannot record the dispatch durably", NULL, true);
            return;
        }
        sr_str_copy(job->env.dst, sizeof(job->env.dst), t->cfg->id);
        job->cur_target = c->target;
        job->cur_predicted = c->predicted_ms;
        job->cur_cand = *c;
        job->dispatched = true;
        sr_router_begin(g->router, c->target);
        /* reserve the pass bytes and the compute this plan uses, so the next
         * decisions do not oversubscribe a pass or ignore the queue */
        sr_router_commit(g->router, &job->spec.w, c, now);
        job->qleft = left;
        if (seal_enqueue(job) != 0) {
            sr_router_end(g->router, c->target);
            fail_nomem(job);
        }
        return;
    }
    if (job->busy_until) {
        busy_fail(job);
        return;
    }
    no_target(job, job->nattempts ? "no target could take the workload"
                                  : "no target can meet the deadline");
}

static void start_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct gw_job *job = arg;
    struct gw *g = job->gw;
    int64_t now = sr_now_ms();
    /* ranked here, then only the ones kept are copied into the job; the
     * gateway has one thread, and nothing below runs before the copy */
    static struct sr_candidate ranked[MAX_CANDIDATES];
    size_t n = sr_router_rank(g->router, &job->spec.w, now, ranked, MAX_CANDIDATES);
    if (job->spec.pinned) {
        /* re-send to the target that may already have run it, nowhere else */
        size_t k = 0;
        for (size_t i = 0; i < n; i++) {
            const struct sr_target_info *ti = sr_router_target(g->router, ranked[i].target);
            if (!strcmp(ti->id, job->spec.w.place_target)) {
                ranked[k++] = ranked[i];
            }
        }
        n = k;
    }
    if (n > INLINE_CANDIDATES) {
        job->cands = malloc(n * sizeof(ranked[0]));
        if (!job->cands) {
            job->cands = job->cands_in;
            fail_nomem(job);
            return;
        }
    }
    memcpy(job->cands, ranked, n * sizeof(ranked[0]));
    job->ncands = n;
    dispatch(job);
}

struct gw_job *gw_job_start(struct gw *g, const struct gw_job_spec *spec, gw_job_done done,
                            void *arg)
{
    struct gw_job *job = malloc(sizeof(*job));
    if (!job) {
        return NULL;
    }
    memset(job, 0, offsetof(struct gw_job, cands_in));
    job->cands = job->cands_in;
    job->gw = g;
    job->spec = *spec;
    job->done = done;
    job->arg = arg;
    job->start_mono = sr_mono_ms();
    if (spec->copy_payload) {
        job->payload_copy = malloc(spec->payload_len ? spec->payload_len : 1);
        if (!job->payload_copy) {
            free(job);
            return NULL;
        }
        if (spec->payload_len) { /* an empty payload may come as NULL */
            memcpy(job->payload_copy, spec->payload, spec->payload_len);
        }
    }
    struct sr_envelope *e = &job->env;
    e->kind = SR_KIND_WORKLOAD;
    memcpy(e->id, spec->id, SR_ENV_IDBYTES);
    sr_hex(job->idhex, e->id, SR_ENV_IDBYTES);
    e->iat = spec->iat_ms;
    e->exp = spec->w.deadline_ms;
    sr_str_copy(e->src, sizeof(e->src), g->cfg->id);
    sr_str_copy(e->handler, sizeof(e->handler), spec->handler);
    e->payload = job->payload_copy ? job->payload_copy : spec->payload;
    e->payload_len = spec->payload_len;
    e->flags = spec->env_flags & (SR_ENV_HAS_WORK | SR_ENV_HAS_RESULT_BYTES);
    e->work = spec->w.work_gop;
    e->result_bytes = spec->w.result_bytes;
    event_assign(&job->start_ev, g->base, -1, 0, start_cb, job);
    event_active(&job->start_ev, 0, 0);
    return job;
}
