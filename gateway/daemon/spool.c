/*
 * skyrouted part: the durable spool (store-and-forward).
 *
 * POST /v1/workloads with `prefer: respond-async` is answered 202 only once
 * the workload is on disk (store.h, the spool's rows). Submissions that
 * arrive in the same loop turn share one transaction (group commit), so
 * throughput does not fall to one fsync per request.
 *
 * A dispatcher (sr_due_run, routing.h) walks the active workloads, earliest
 * deadline first and one at a time per target, and starts a placement job
 * (dispatch.c) for each one whose window is open; the router says when the
 * best plan has to wait (the job ends with GW_WAIT and the AOS), and the
 * workload sleeps until then. Before an envelope leaves, its target is
 * recorded durably: after a crash, or when a transfer is cut by LOS, the
 * same envelope goes back to the same target, whose replay guard returns
 * the stored result instead of running the handler again. Work that
 * provably never reached a target is re-planned freely.
 *
 * With [cluster], a plan may leave through another station's pass: the spool
 * reaches federation only through the gw_spool_link that federation.c fills
 * in (forward, publish a result, fetch another station's result).
 *
 * GET /v1/workloads/ID: 202 with {"state": queued | waiting | dispatched}
 * (waiting says when its window opens), 200 with the verified result and its
 * headers, or the failure's own status with {"state": "failed", "reason"}.
 *
 *   [spool]
 *   max_items = 100000        workloads held at once (507 beyond)
 *   max_bytes = 1073741824    payload bytes held at once (507 beyond)
 *   keep_results_s = 86400    how long finished workloads can be fetched
 *   concurrency = 256         placements in flight at once
 */
#include "gateway/daemon/daemon.h"
#include "gateway/store/store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEADLINE_PASSED "the deadline passed before a result came back"

_Static_assert(SR_SPOOL_IDBYTES == SR_ENV_IDBYTES, "the spool keeps envelope ids");

/* An active (not finished) workload, kept in memory; payloads stay on disk. */
struct item {
    uint8_t id[SR_ENV_IDBYTES];
    char client[64];
    int64_t deadline_ms;
    int64_t wait_until_ms;
    size_t bytes;
    enum sr_spool_state state;
    char target[SR_TARGET_IDMAX]; /* recorded before sending */
    bool pinned;     /* it may have reached target: re-send only there, same envelope */
    bool was_pinned; /* pinned before the current job: restored if it never left */
    struct gw_job *job;
    struct gw_spool *sp;
    char origin[SR_TARGET_IDMAX]; /* [cluster]: adopted from this station ("" = ours) */
    bool forwarding;              /* [cluster]: a publication to another station in flight */
    bool dirty;                   /* a state change waits for the next batched write */
    char *reason;                 /* its reason, while dirty */
};

/* A submission waiting for the group commit. */
struct pending {
    struct pending *next;
    sr_req *req; /* NULL if the client left before the commit */
    struct gw_job_spec spec;
    uint8_t *payload;
    char client[64];
    char reply_to[SR_TARGET_IDMAX]; /* a satellite's own work: its result goes to its outbox */
    bool duplicate;                 /* stored before: a satellite sending an envelope again */
    int64_t start_mono;
};

struct gw_spool {
    struct gw *g;
    sr_spooldb *db;
    struct gw_spool_link link; /* [cluster]: all NULL without federation */
    struct item **items;       /* active workloads */
    size_t n, cap;
    struct sr_due *due;  /* the dispatcher's scratch: the items about to go, cap entries */
    struct item **dirty; /* states to write in the next batch (update_state_later) */
    size_t ndirty, dirty_cap;
    struct event *flush_ev;
    int64_t republish_at; /* [cluster]: publish unacknowledged results again then; 0 = no */
    uint64_t bytes;
    size_t running;
    struct pending *batch, **batch_tail;
    size_t batch_bytes, batch_items;
    struct event *commit_ev, *tick, *kick_ev;
    double max_items, max_bytes, keep_s, concurrency;
    int64_t last_prune;
};

/* ---- the stored request, both ways ---------------------------------------------------------- */

/* The row stored for a submission: the workload as |spec| describes it. */
static struct sr_spool_work work_of(const struct gw_job_spec *spec, const char *client,
                                    const char *reply_to, const char *origin)
{
    struct sr_spool_work w = {.client = client,
                              .handler = spec->handler,
                              .payload = spec->payload,
                              .payload_len = spec->payload_len,
                              .iat_ms = spec->iat_ms,
                              .deadline_ms = spec->w.deadline_ms,
                              .work_gop = spec->w.work_gop,
                              .result_bytes = spec->w.result_bytes,
                              .env_flags = spec->env_flags,
                              .place = (int)spec->w.place,
                              .place_target = spec->w.place_target,
                              .data_at = spec->w.data_at,
                              .reply_to = reply_to,
                              .origin = origin};
    memcpy(w.id, spec->id, SR_ENV_IDBYTES);
    return w;
}

/* The job spec of |it| from its stored row (the payload points into the row:
 * valid until the next call on the spool's database). False if the row is
 * gone. */
static bool stored_spec(struct gw_spool *sp, const struct item *it, struct gw_job_spec *spec)
{
    struct sr_spool_work w;
    if (sr_spooldb_work(sp->db, it->id, &w) != 0) {
        return false;
    }
    memset(spec, 0, sizeof(*spec));
    memcpy(spec->id, it->id, SR_ENV_IDBYTES);
    sr_str_copy(spec->handler, sizeof(spec->handler), w.handler);
    spec->payload = w.payload;
    spec->payload_len = w.payload_len;
    spec->iat_ms = w.iat_ms;
    spec->w.deadline_ms = it->deadline_ms;
    spec->w.work_gop = w.work_gop;
    spec->w.result_bytes = w.result_bytes;
    spec->env_flags = w.env_flags;
    spec->w.place = (sr_place_kind)w.place;
    sr_str_copy(spec->w.place_target, sizeof(spec->w.place_target), w.place_target);
    sr_str_copy(spec->w.data_at, sizeof(spec->w.data_at), w.data_at);
    spec->w.bytes_in = (int64_t)spec->payload_len;
    spec->w.store_and_forward = true;
    return true;
}

/* ---- state changes ------------------------------------------------------------------------- */

static void update_state(struct gw_spool *sp, struct item *it, const char *reason, bool attempt)
{
    struct sr_spool_progress p = {.state = it->state,
                                  .target = it->target,
                                  .wait_until_ms = it->wait_until_ms,
                                  .attempt = attempt,
                                  .pinned = it->pinned,
                                  .reason = reason};
    sr_spooldb_set_state(sp->db, it->id, &p, sr_now_ms());
}

/* A state change that needs no durability of its own (waiting for a window,
 * retrying shortly): written with the others of the same loop turn in one
 * transaction, one fsync for all. A crash before it is written loses only
 * the plan: the workload is recovered from its last durable state (queued,
 * or dispatched and so pinned) and planned again. Changes that must be on
 * disk before something happens (before_send, a forward) use update_state. */
static void update_state_later(struct gw_spool *sp, struct item *it, const char *reason)
{
    char *copy = strdup(reason ? reason : "");
    if (!copy) {
        update_state(sp, it, reason, false); /* at once, then */
        return;
    }
    free(it->reason);
    it->reason = copy;
    if (!it->dirty) {
        if (sp->ndirty == sp->dirty_cap) {
            size_t ncap = sp->dirty_cap ? sp->dirty_cap * 2 : 64;
            struct item **nd = realloc(sp->dirty, ncap * sizeof(*nd));
            if (!nd) {
                update_state(sp, it, reason, false); /* at once, then */
                return;
            }
            sp->dirty = nd;
            sp->dirty_cap = ncap;
        }
        sp->dirty[sp->ndirty++] = it;
        it->dirty = true;
    }
    event_active(sp->flush_ev, 0, 0);
}

static void flush_states(struct gw_spool *sp)
{
    if (!sp->ndirty) {
        return;
    }
    bool txn = sp->ndirty > 1 && sr_spooldb_begin(sp->db) == 0;
    for (size_t i = 0; i < sp->ndirty; i++) {
        struct item *it = sp->dirty[i];
        it->dirty = false;
        update_state(sp, it, it->reason, false); /* its state now: never a stale one */
        free(it->reason);
        it->reason = NULL;
    }
    sp->ndirty = 0;
    if (txn && sr_spooldb_commit(sp->db) != 0) {
        sr_log(SR_LOG_ERROR, "spool: cannot write workload states: %s", sr_spooldb_errmsg(sp->db));
        sr_spooldb_rollback(sp->db);
    }
}

static void flush_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    flush_states(arg);
}

/* ---- the active set ---------------------------------------------------------------------- */

static int item_add(struct gw_spool *sp, struct item *it)
{
    if (sp->n == sp->cap) {
        size_t ncap = sp->cap ? sp->cap * 2 : 256;
        struct item **ni = realloc(sp->items, ncap * sizeof(*ni));
        if (!ni) {
            return SR_ERR_NOMEM;
        }
        sp->items = ni;
        struct sr_due *nd = realloc(sp->due, ncap * sizeof(*nd));
        if (!nd) {
            return SR_ERR_NOMEM; /* items grew: cap stays, the next add retries */
        }
        sp->due = nd;
        sp->cap = ncap;
    }
    sp->items[sp->n++] = it;
    sp->bytes += it->bytes;
    return 0;
}

/* A new workload, stored: into the active set (if memory allows; else the
 * next start-up's recovery picks it up). */
static void item_new(struct gw_spool *sp, const struct gw_job_spec *spec, const char *client,
                     const char *origin)
{
    struct item *it = calloc(1, sizeof(*it));
    if (it) {
        memcpy(it->id, spec->id, SR_ENV_IDBYTES);
        sr_str_copy(it->client, sizeof(it->client), client);
        sr_str_copy(it->origin, sizeof(it->origin), origin);
        it->deadline_ms = spec->w.deadline_ms;
        it->bytes = spec->payload_len;
        it->sp = sp;
    }
    if (!it || item_add(sp, it) != 0) {
        free(it);
    }
}

static void item_remove(struct gw_spool *sp, struct item *it)
{
    for (size_t i = 0; it->dirty && i < sp->ndirty; i++) {
        if (sp->dirty[i] == it) {
            sp->dirty[i] = sp->dirty[--sp->ndirty];
            break;
        }
    }
    free(it->reason);
    for (size_t i = 0; i < sp->n; i++) {
        if (sp->items[i] == it) {
            sp->items[i] = sp->items[--sp->n];
            break;
        }
    }
    sp->bytes -= it->bytes;
    free(it);
}

static void gauges(struct gw_spool *sp)
{
    sr_metrics_set(sp->g->metrics, "skyroute_spool_items", "", (double)sp->n);
    sr_metrics_set(sp->g->metrics, "skyroute_spool_bytes", "", (double)sp->bytes);
}

/* Runs the dispatcher on the next loop turn (new work, a finished job). */
static void kick(struct gw_spool *sp)
{
    event_active(sp->kick_ev, 0, 0);
}

/* |it| finished here (done, failed or forwarded): out of the active set. */
static void item_finished(struct gw_spool *sp, struct item *it, const char *outcome)
{
    char labels[48];
    snprintf(labels, sizeof(labels), "outcome=\"%s\"", outcome);
    sr_metrics_add(sp->g->metrics, "skyroute_spool_finished_total", labels, 1);
    item_remove(sp, it);
    gauges(sp);
    kick(sp);
}

/* ---- federation ([cluster]), through the link ----------------------------------------------- */

static void forward_done(int rv, void *arg)
{
    struct item *it = arg;
    struct gw_spool *sp = it->sp;
    it->forwarding = false;
    if (rv == SR_ERR_CANCELLED) {
        return; /* shutting down: still recorded as bound there, sent again next start */
    }
    if (rv != 0) {
        /* not stored by the stream: the same station again shortly (pinned) */
        it->wait_until_ms = sr_now_ms() + 1000;
        return;
    }
    /* the stream holds it now (on a quorum of servers): finished here until
     * the station that runs it publishes the result */
    const char *at = strrchr(it->target, '@');
    char reason[128];
    snprintf(reason, sizeof(reason), "forwarded to station %s", at ? at + 1 : it->target);
    int64_t now = sr_now_ms();
    if (sr_spooldb_forwarded(sp->db, it->id, reason, now) != 0) {
        /* still pinned there: published again later, de-duplicated by id */
        it->wait_until_ms = now + 1000;
        return;
    }
    item_finished(sp, it, "forwarded");
}

/* The router's best plan leaves through another station's pass: record that
 * it goes there (pinned, durably), then publish it on the work queue. */
static void forward(struct gw_spool *sp, struct item *it, const char *via)
{
    snprintf(it->target, sizeof(it->target), "%s", via);
    it->pinned = true;
    it->state = SR_SPOOL_QUEUED;
    update_state(sp, it, "forwarding to another station", false);
    struct gw_job_spec spec;
    int rv = SR_ERR_NOTFOUND;
    if (sp->link.forward && stored_spec(sp, it, &spec)) {
        it->forwarding = true;
        rv = sp->link.forward(sp->link.ctx, &spec, it->client, via, forward_done, it);
    }
    if (rv != 0) {
        it->forwarding = false;
        it->wait_until_ms = sr_now_ms() + 1000; /* cut off from NATS: kept, tried again */
    }
}

struct pub {
    struct gw_spool *sp;
    uint8_t id[SR_ENV_IDBYTES];
};

static void publish_done(int rv, void *arg)
{
    struct pub *p = arg;
    if (rv == 0) {
        sr_spooldb_published(p->sp->db, p->id);
    } else if (rv != SR_ERR_CANCELLED && !p->sp->republish_at) {
        /* not acknowledged (a timeout while the bucket elects a leader, with
         * our connection up): every unpublished result goes again shortly,
         * not only at the next reconnection */
        p->sp->republish_at = sr_now_ms() + 1000;
    }
    free(p);
}

/* The result of work adopted from station |origin| goes back through the
 * results bucket; it is marked published once the bucket acknowledged it
 * (else it is published again at the next (re)connection). */
static void publish_result(struct gw_spool *sp, const uint8_t id[SR_ENV_IDBYTES],
                           const char *origin, const struct sr_spool_result *res)
{
    struct pub *p = malloc(sizeof(*p));
    if (!p) {
        return;
    }
    p->sp = sp;
    memcpy(p->id, id, SR_ENV_IDBYTES);
    struct gw_remote_result r = {.id = id,
                                 .target = res->target,
                                 .status = res->status,
                                 .payload = res->payload,
                                 .payload_len = res->payload_len,
                                 .signer = res->signer,
                                 .error = res->reason,
                                 .predicted_ms = res->predicted_ms,
                                 .elapsed_ms = res->elapsed_ms,
                                 .envelope = res->envelope,
                                 .envelope_len = res->envelope_len};
    if (!sp->link.publish_result ||
        sp->link.publish_result(sp->link.ctx, origin, &r, publish_done, p) != 0) {
        free(p); /* not connected: gw_spool_republish sends it later */
    }
}

/* ---- dispatching ----------------------------------------------------------------------- */

static int before_send(const char *target, void *arg)
{
    struct item *it = arg;
    snprintf(it->target, sizeof(it->target), "%s", target);
    it->state = SR_SPOOL_DISPATCHED;
    it->pinned = true; /* from now on it may have run there */
    update_state(it->sp, it, "", true);
    return 0;
}

/* Stores how |it| finished and lets it go; for adopted work, the result goes
 * back to the station it came from. With |must_store|, false if it could not
 * be stored (|it| is then kept). */
static bool finish_item(struct gw_spool *sp, struct item *it, const struct sr_spool_result *res,
                        bool must_store, const char *outcome)
{
    if (sr_spooldb_finish(sp->db, it->id, res, sr_now_ms()) != 0 && must_store) {
        return false;
    }
    if (it->origin[0] || sp->link.publish_result) {
        /* adopted work: back to the station it came from; our own, with
         * [cluster]: for any station to answer GET for it */
        publish_result(sp, it->id, it->origin, res);
    }
    item_finished(sp, it, outcome);
    return true;
}

/* Sleeps until |r|'s window: the best plan opens later. */
static void wait_for_window(struct gw_spool *sp, struct item *it, const struct gw_job_result *r,
                            int64_t now)
{
    it->state = SR_SPOOL_WAITING;
    it->wait_until_ms = r->wait_until_ms;
    const char *target = r->wait_target ? r->wait_target : "";
    if (r->attempts > 0 && r->target[0] && r->wait_until_ms > now + 1000) {
        /* the window it was meant for did not take it (a link acquired a
         * moment after the predicted AOS, a hiccup): look again shortly
         * rather than give up the rest of that window, keeping its place
         * in line there (later deadlines for that target wait for it) */
        it->wait_until_ms = now + 1000;
        target = r->target;
    }
    if (!it->pinned) {
        snprintf(it->target, sizeof(it->target), "%s", target);
    }
    update_state_later(sp, it, "waiting for a window");
}

static void job_done(const struct gw_job_result *r, void *arg)
{
    struct item *it = arg;
    struct gw_spool *sp = it->sp;
    it->job = NULL;
    sp->running--;
    int64_t now = sr_now_ms();
    if (r->never_sent) {
        /* no target had the whole request (refused, unreachable, or cut before
         * its last byte left, as LOS does to a long upload): it may go anywhere
         * again, unless an earlier attempt may have reached a target */
        it->pinned = it->was_pinned;
    }
    bool expired = now >= it->deadline_ms;
    bool lost = !r->never_sent; /* it may have run at r->target */
    switch (r->outcome) {
    case GW_FORWARD:
        if (r->wait_target) {
            forward(sp, it, r->wait_target);
            return;
        }
        break;
    case GW_DONE:
    case GW_HANDLER_FAILED: {
        /* a verified, signed result: store it for the client */
        bool done = r->outcome == GW_DONE;
        struct sr_spool_result res = {.state = done ? SR_SPOOL_DONE : SR_SPOOL_FAILED,
                                      .status = gw_outcome_status(r),
                                      .payload = r->payload,
                                      .payload_len = r->payload_len,
                                      .signer = r->signer,
                                      .target = r->target,
                                      .reason = r->error ? r->error : "",
                                      .detail = r->detail_json,
                                      .predicted_ms = r->predicted_ms,
                                      .elapsed_ms = r->elapsed_ms};
        if (it->origin[0]) {
            /* the station that forwarded it checks the target's own signature */
            res.envelope = r->envelope;
            res.envelope_len = r->envelope_len;
        }
        if (!finish_item(sp, it, &res, true, done ? "done" : "handler_failed")) {
            /* not stored: it stays dispatched and is fetched again from the
             * target (its replay guard answers) on the next pass */
            it->wait_until_ms = now + 1000;
            kick(sp);
        }
        return;
    }
    case GW_WAIT:
        wait_for_window(sp, it, r, now);
        return;
    case GW_LOST:
        if (!expired) {
            /* cut mid-flight (LOS, crash): the same envelope goes there again */
            it->state = SR_SPOOL_QUEUED;
            snprintf(it->target, sizeof(it->target), "%s", r->target);
            it->pinned = true;
            it->wait_until_ms = now + 1000;
            update_state_later(sp, it, r->error);
            return;
        }
        break;
    default:
        break;
    }
    if (expired || r->outcome == GW_LOST || r->outcome == GW_REFUSED ||
        r->outcome == GW_BAD_RESULT || r->outcome == GW_RESULT_DROPPED) {
        /* over: the deadline passed, or it may have run and cannot be tried
         * again (refused, untrustworthy, its result dropped at the target) */
        it->state = SR_SPOOL_FAILED;
        struct sr_spool_result res = {.state = SR_SPOOL_FAILED,
                                      .status = expired ? 504 : gw_outcome_status(r),
                                      .target = r->target,
                                      .reason = expired ? DEADLINE_PASSED
                                                        : (r->error ? r->error : "failed"),
                                      .detail = r->detail_json,
                                      .predicted_ms = r->predicted_ms,
                                      .elapsed_ms = r->elapsed_ms};
        finish_item(sp, it, &res, false, "failed");
        return;
    }
    /* not placed now (no target reachable, timeout): try again shortly; a
     * timeout may have run at the target, so it stays pinned there */
    it->state = SR_SPOOL_QUEUED;
    if (lost && r->target[0]) {
        snprintf(it->target, sizeof(it->target), "%s", r->target);
        it->pinned = true;
    } else if (!it->pinned && r->target[0]) {
        snprintf(it->target, sizeof(it->target), "%s", r->target); /* keeps its place in line */
    }
    /* every target busy: back when the first said it has room */
    it->wait_until_ms =
        r->outcome == GW_BUSY && r->wait_until_ms > now ? r->wait_until_ms : now + 300;
    update_state_later(sp, it, r->error);
}

/* Loads a workload's stored request and starts placing it. False if it did
 * not start; |it| is then freed if it vanished from the store. */
static bool start_item(struct gw_spool *sp, struct item *it)
{
    struct gw_job_spec spec;
    if (!stored_spec(sp, it, &spec)) {
        sr_log(SR_LOG_ERROR, "spool: workload vanished from the store");
        item_remove(sp, it);
        return false;
    }
    spec.copy_payload = true; /* the row's bytes are SQLite's until the next call */
    if (it->pinned && it->target[0]) {
        /* it may have reached this target already: only there, same envelope */
        spec.pinned = true;
        spec.w.place = SR_PLACE_TARGET;
        snprintf(spec.w.place_target, sizeof(spec.w.place_target), "%s", it->target);
    }
    spec.local_only = it->origin[0] != '\0';
    spec.before_send = before_send;
    spec.before_send_arg = it;
    it->was_pinned = it->pinned;
    it->job = gw_job_start(sp->g, &spec, job_done, it);
    if (it->job) {
        sp->running++;
    }
    return it->job != NULL;
}

/* sr_due_run's start: a workload whose time has come. */
static int start_due(void *arg, struct sr_due *d)
{
    struct gw_spool *sp = arg;
    struct item *it = d->item;
    if (sp->running >= (size_t)sp->concurrency) {
        return -1;
    }
    if (it->pinned && strchr(it->target, '@') && sp->link.forward) {
        /* bound for another station ("SAT@STATION"): onto its queue, whether
         * or not its heartbeat is seen right now (the stream keeps it for
         * that station; planning it again could run it twice) */
        char via[SR_TARGET_IDMAX];
        snprintf(via, sizeof(via), "%s", it->target);
        forward(sp, it, via);
        return 0;
    }
    return start_item(sp, it) ? 1 : 0;
}

static void dispatch_due(struct gw_spool *sp)
{
    int64_t now = sr_now_ms();
    if (sp->running >= (size_t)sp->concurrency) {
        return;
    }
    size_t ndue = 0;
    for (size_t i = 0; i < sp->n; i++) {
        struct item *it = sp->items[i];
        if (!it->job && !it->forwarding && sr_due_soon(it->wait_until_ms, now)) {
            sp->due[ndue++] = (struct sr_due){.deadline_ms = it->deadline_ms,
                                              .wait_until_ms = it->wait_until_ms,
                                              .target = it->target,
                                              .item = it};
        }
    }
    sr_due_run(sp->due, ndue, now, start_due, sp);
}

static void prune(struct gw_spool *sp)
{
    int64_t now = sr_now_ms();
    /* once a minute, or as often as the keep time when it is shorter */
    int64_t keep_ms = (int64_t)(sp->keep_s * 1000);
    if (now - sp->last_prune < (keep_ms < 60000 ? keep_ms : 60000)) {
        return;
    }
    sp->last_prune = now;
    sr_spooldb_prune(sp->db, now - keep_ms, now);
}

static void republish_results(struct gw_spool *sp);

static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct gw_spool *sp = arg;
    dispatch_due(sp);
    prune(sp);
    if (sp->republish_at && sr_now_ms() >= sp->republish_at) {
        republish_results(sp);
    }
}

/* ---- submission and group commit ------------------------------------------------------------- */

static void pending_abort(sr_req *req, void *data)
{
    (void)req;
    struct pending *p = data;
    p->req = NULL; /* gone before the commit: not acknowledged, not stored */
}

static void respond_accepted(struct gw *g, sr_req *req, const uint8_t id[SR_ENV_IDBYTES])
{
    char idhex[2 * SR_ENV_IDBYTES + 1], loc[64], body[160];
    sr_hex(idhex, id, SR_ENV_IDBYTES);
    snprintf(loc, sizeof(loc), "/v1/workloads/%s", idhex);
    int n = snprintf(body, sizeof(body),
                     "{\"id\":\"%s\",\"state\":\"queued\",\"location\":\"%s\"}\n", idhex, loc);
    const struct sr_http_header h[] = {
        {"content-type", "application/json"}, {"location", loc}, {"skyroute-id", idhex}};
    sr_req_set_abort(req, NULL);
    sr_req_respond(req, 202, h, 3, body, (size_t)n, false);
    gw_status_count(g, 202);
}

static void commit_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct gw_spool *sp = arg;
    struct pending *batch = sp->batch;
    sp->batch = NULL;
    sp->batch_tail = &sp->batch;
    sp->batch_bytes = sp->batch_items = 0;
    int64_t now = sr_now_ms();
    bool ok = sr_spooldb_begin(sp->db) == 0;
    size_t stored = 0;
    for (struct pending *p = batch; ok && p; p = p->next) {
        if (!p->req) {
            continue;
        }
        struct sr_spool_work w = work_of(&p->spec, p->client, p->reply_to, "");
        bool fresh = false;
        ok = sr_spooldb_insert(sp->db, &w, now, &fresh) == 0;
        p->duplicate = !fresh;
        stored++;
    }
    ok = ok && sr_spooldb_commit(sp->db) == 0;
    int fail_status = ok ? 0 : sr_spooldb_disk_full(sp->db) ? 507 : 503;
    if (!ok) {
        sr_log(SR_LOG_ERROR, "spool: commit of %zu workloads failed: %s", stored,
               sr_spooldb_errmsg(sp->db));
        sr_spooldb_rollback(sp->db);
    }
    for (struct pending *p = batch; p;) {
        struct pending *next = p->next;
        if (p->req && ok) {
            if (!p->duplicate) {
                item_new(sp, &p->spec, p->client, "");
            }
            respond_accepted(sp->g, p->req, p->spec.id);
        } else if (p->req) {
            sr_req_set_abort(p->req, NULL);
            sr_req_respond_error(p->req, fail_status,
                                 fail_status == 507 ? "the spool's disk is full: not stored"
                                                    : "the spool could not store the workload",
                                 NULL);
        }
        free(p->payload);
        free(p);
        p = next;
    }
    gauges(sp);
    kick(sp);
}

/* Bytes |client| holds in the spool, stored or waiting for the commit. */
static uint64_t client_bytes(const struct gw_spool *sp, const char *client)
{
    uint64_t mine = 0;
    for (size_t i = 0; i < sp->n; i++) {
        if (!strcmp(sp->items[i]->client, client)) {
            mine += sp->items[i]->bytes;
        }
    }
    for (struct pending *p = sp->batch; p; p = p->next) {
        if (!strcmp(p->client, client)) {
            mine += p->spec.payload_len;
        }
    }
    return mine;
}

void gw_spool_submit(struct gw *g, sr_req *req, const struct gw_job_spec *spec, const char *client,
                     const char *reply_to)
{
    struct gw_spool *sp = g->spool;
    if (!sp) {
        gw_status_refuse(g, req, 503, "the spool is not available", NULL);
        return;
    }
    /* quotas: nothing is acknowledged that is not stored, and nothing over */
    size_t items = sp->n + sp->batch_items;
    uint64_t bytes = sp->bytes + sp->batch_bytes;
    if ((double)items + 1 > sp->max_items || (double)(bytes + spec->payload_len) > sp->max_bytes) {
        char d[160];
        snprintf(d, sizeof(d),
                 "{\"items\":%zu,\"bytes\":%llu,\"max_items\":%.0f,\"max_bytes\":%.0f}", items,
                 (unsigned long long)bytes, sp->max_items, sp->max_bytes);
        gw_status_refuse(g, req, 507, "the spool is full", d);
        return;
    }
    uint64_t quota = gw_auth_spool_quota(g, client);
    if (quota) {
        uint64_t mine = client_bytes(sp, client);
        if (mine + spec->payload_len > quota) {
            char d[160];
            snprintf(d, sizeof(d), "{\"client\":\"%s\",\"spooled_bytes\":%llu,\"quota\":%llu}",
                     client, (unsigned long long)mine, (unsigned long long)quota);
            gw_status_refuse(g, req, 429, "over the client's spool quota", d);
            return;
        }
    }
    struct pending *p = calloc(1, sizeof(*p));
    uint8_t *copy = p ? malloc(spec->payload_len ? spec->payload_len : 1) : NULL;
    if (!p || !copy) {
        free(p);
        free(copy);
        gw_status_refuse(g, req, 503, "out of memory", NULL);
        return;
    }
    p->req = req;
    p->spec = *spec;
    if (spec->payload_len) {
        memcpy(copy, spec->payload, spec->payload_len);
    }
    p->payload = copy;
    p->spec.payload = copy;
    sr_str_copy(p->client, sizeof(p->client), client ? client : "");
    sr_str_copy(p->reply_to, sizeof(p->reply_to), reply_to ? reply_to : "");
    p->start_mono = sr_req_start_mono(req);
    *sp->batch_tail = p;
    sp->batch_tail = &p->next;
    sp->batch_items++;
    sp->batch_bytes += spec->payload_len;
    sr_req_set_data(req, p);
    sr_req_set_abort(req, pending_abort);
    event_active(sp->commit_ev, 0, 0); /* one commit per loop turn for the whole batch */
}

sr_spooldb *gw_spool_db(struct gw *g)
{
    return g->spool ? g->spool->db : NULL;
}

/* ---- GET /v1/workloads/ID ------------------------------------------------------------------ */

static void respond_done(sr_req *req, const char *idhex, const struct sr_spool_status *s)
{
    char p[32], e[32];
    snprintf(p, sizeof(p), "%.0f", s->r.predicted_ms);
    snprintf(e, sizeof(e), "%.0f", s->r.elapsed_ms);
    const struct sr_http_header h[] = {{"content-type", "application/octet-stream"},
                                       {"skyroute-id", idhex},
                                       {"skyroute-target", s->target},
                                       {"skyroute-predicted-ms", p},
                                       {"skyroute-elapsed-ms", e},
                                       {"skyroute-signer", s->r.signer}};
    sr_req_respond(req, 200, h, 6, s->r.payload ? (const void *)s->r.payload : "", s->r.payload_len,
                   false);
}

/* {"id", "state", "deadline", "attempts", "target", ...} of a workload not done. */
static int status_json(sr_buf *b, const char *idhex, const struct sr_spool_status *s)
{
    char dl[SR_RFC3339_LEN];
    sr_time_format(dl, s->deadline_ms);
    int rv = sr_buf_appendf(b,
                            "{\"id\":\"%s\",\"state\":\"%s\",\"deadline\":\"%s\",\"attempts\":%d,"
                            "\"target\":",
                            idhex, sr_spool_state_name(s->state), dl, s->attempts);
    rv = rv ? rv : sr_buf_append_json_str(b, s->target, strlen(s->target));
    if (s->state == SR_SPOOL_WAITING && s->wait_until_ms > 0) {
        char w[SR_RFC3339_LEN];
        sr_time_format(w, s->wait_until_ms);
        rv = rv ? rv : sr_buf_appendf(b, ",\"window_opens\":\"%s\"", w);
    }
    const char *at = s->state == SR_SPOOL_FORWARDED ? strrchr(s->target, '@') : NULL;
    if (at) {
        rv = rv ? rv : sr_buf_append(b, ",\"station\":", 11);
        rv = rv ? rv : sr_buf_append_json_str(b, at + 1, strlen(at + 1));
    }
    const char *reason = s->r.reason;
    rv = rv ? rv : sr_buf_append(b, ",\"reason\":", 10);
    rv = rv ? rv : sr_buf_append_json_str(b, reason, strlen(reason));
    if (s->state == SR_SPOOL_FAILED) {
        /* answered with an error status: "error" too, as every error body has */
        rv = rv ? rv : sr_buf_append(b, ",\"error\":", 9);
        rv = rv ? rv : sr_buf_append_json_str(b, reason, strlen(reason));
        rv = rv ? rv : sr_buf_appendf(b, ",\"detail\":%s", s->r.detail[0] ? s->r.detail : "null");
    }
    return rv ? rv : sr_buf_append(b, "}\n", 2);
}

bool gw_spool_handle(struct gw *g, sr_req *req, const char *client)
{
    const char *path = sr_req_path(req);
    size_t plen = strcspn(path, "?");
    static const char prefix[] = "/v1/workloads/";
    if (plen <= sizeof(prefix) - 1 || strncmp(path, prefix, sizeof(prefix) - 1) != 0) {
        return false;
    }
    const char *hex = path + sizeof(prefix) - 1;
    size_t hlen = plen - (sizeof(prefix) - 1);
    if (strcmp(sr_req_method(req), "GET") != 0) {
        gw_status_refuse(g, req, 405, "use GET", NULL);
        return true;
    }
    uint8_t id[SR_ENV_IDBYTES];
    if (sr_unhex(id, sizeof(id), hex, hlen) != 0) {
        gw_status_refuse(g, req, 404, "no such workload", "{\"why\":\"an id is 32 hex digits\"}");
        return true;
    }
    struct gw_spool *sp = g->spool;
    if (!sp) {
        gw_status_refuse(g, req, 404, "no such workload", NULL);
        return true;
    }
    /* a submission still in the group commit is not known yet */
    struct sr_spool_status s;
    if (sr_spooldb_status(sp->db, id, &s) != 0) {
        if (!sp->link.fetch || !sp->link.fetch(sp->link.ctx, req, id)) {
            gw_status_refuse(g, req, 404, "no such workload", NULL); /* nor another station's */
        }
        return true;
    }
    if (!gw_auth_may_read(g, client, s.client)) {
        /* the same answer as for no workload at all: ids are not to be probed */
        gw_status_refuse(g, req, 404, "no such workload", NULL);
        return true;
    }
    char idhex[2 * SR_ENV_IDBYTES + 1];
    sr_hex(idhex, id, SR_ENV_IDBYTES);
    if (s.state == SR_SPOOL_DONE) {
        respond_done(req, idhex, &s);
        return true;
    }
    sr_buf b;
    sr_buf_init(&b, 1 << 16);
    if (status_json(&b, idhex, &s) != 0) {
        sr_buf_free(&b);
        gw_status_refuse(g, req, 503, "out of memory", NULL);
        return true;
    }
    static const struct sr_http_header h[] = {{"content-type", "application/json"}};
    int status = s.state == SR_SPOOL_FAILED ? (s.r.status >= 400 ? s.r.status : 502) : 202;
    sr_req_respond(req, status, h, 1, b.data, b.len, true);
    return true;
}

/* ---- start-up and shut-down --------------------------------------------------------------- */

/* An unfinished workload goes back in the active set: dispatched work keeps
 * its target, so the same envelope goes there again (exactly-once effect). */
static int recover_one(void *arg, const struct sr_spool_active *a)
{
    struct gw_spool *sp = arg;
    struct item *it = calloc(1, sizeof(*it));
    if (!it) {
        return 0; /* left on disk: the next start-up tries again */
    }
    memcpy(it->id, a->id, SR_ENV_IDBYTES);
    sr_str_copy(it->client, sizeof(it->client), a->client);
    it->deadline_ms = a->deadline_ms;
    it->state = (enum sr_spool_state)a->state;
    sr_str_copy(it->target, sizeof(it->target), a->target);
    it->wait_until_ms = a->wait_until_ms;
    it->bytes = a->bytes;
    it->sp = sp;
    it->pinned = a->pinned && it->target[0];
    sr_str_copy(it->origin, sizeof(it->origin), a->origin);
    if (it->state == SR_SPOOL_DISPATCHED) {
        it->state = SR_SPOOL_QUEUED; /* re-send, pinned to it->target */
        it->wait_until_ms = 0;
        it->pinned = true;
    }
    if (item_add(sp, it) != 0) {
        free(it);
        return SR_ERR_NOMEM;
    }
    return 0;
}

static int spool_config(struct gw *g, struct gw_spool *sp, char *err, size_t errlen)
{
    static const char *const keys[] = {"max_items", "max_bytes", "keep_results_s", "concurrency"};
    if (sr_config_num(g->cfg, "spool", keys[0], 100000, 1, 1e9, &sp->max_items, err, errlen) ||
        sr_config_num(g->cfg, "spool", keys[1], 1073741824.0, 1, 1e15, &sp->max_bytes, err,
                      errlen) ||
        sr_config_num(g->cfg, "spool", keys[2], 86400, 1, 86400.0 * 365, &sp->keep_s, err,
                      errlen) ||
        sr_config_num(g->cfg, "spool", keys[3], 256, 1, 100000, &sp->concurrency, err, errlen)) {
        return SR_ERR_CONFIG;
    }
    for (size_t i = 0; i < g->cfg->nkv; i++) {
        const struct sr_cfg_kv *kv = &g->cfg->kv[i];
        bool known = false;
        for (size_t k = 0; k < sizeof(keys) / sizeof(keys[0]); k++) {
            known = known || !strcmp(kv->key, keys[k]);
        }
        if (!strcmp(kv->section, "spool") && !known) {
            snprintf(err, errlen, "%s:%d: unknown key '%s' in [spool]", g->cfg->path, kv->line,
                     kv->key);
            return SR_ERR_CONFIG;
        }
    }
    return 0;
}

int gw_spool_init(struct gw *g, char *err, size_t errlen)
{
    struct gw_spool conf;
    memset(&conf, 0, sizeof(conf));
    if (spool_config(g, &conf, err, errlen) != 0) {
        return SR_ERR_CONFIG;
    }
    if (g->check_only) {
        return 0;
    }
    struct gw_spool *sp = calloc(1, sizeof(*sp));
    if (!sp) {
        snprintf(err, errlen, "out of memory");
        return SR_ERR_NOMEM;
    }
    *sp = conf;
    g->spool = sp;
    sp->g = g;
    sp->batch_tail = &sp->batch;
    if (sr_spooldb_open(&sp->db, g->cfg->state_dir, err, errlen) != 0) {
        return SR_ERR_IO;
    }
    if (sr_spooldb_active(sp->db, recover_one, sp) != 0) {
        snprintf(err, errlen, "out of memory");
        return SR_ERR_NOMEM;
    }
    if (sp->n) {
        sr_log(SR_LOG_INFO, "spool: %zu unfinished workloads recovered", sp->n);
    }
    sr_metrics_describe(g->metrics, "skyroute_spool_items", "gauge",
                        "Async workloads held (not finished).");
    sr_metrics_describe(g->metrics, "skyroute_spool_bytes", "gauge", "Their payload bytes.");
    sr_metrics_describe(g->metrics, "skyroute_spool_finished_total", "counter",
                        "Async workloads finished, by outcome.");
    sr_metrics_describe(g->metrics, "skyroute_uplink_replays_refused_total", "counter",
                        "Uplinked envelopes refused because that workload already ran and its "
                        "spool row is gone.");
    /* the limits beside the levels: "near full" is a ratio of the two */
    sr_metrics_describe(g->metrics, "skyroute_spool_max_items", "gauge",
                        "[spool] max_items: workloads held at once before 507.");
    sr_metrics_describe(g->metrics, "skyroute_spool_max_bytes", "gauge",
                        "[spool] max_bytes: payload bytes held at once before 507.");
    sr_metrics_set(g->metrics, "skyroute_spool_max_items", "", sp->max_items);
    sr_metrics_set(g->metrics, "skyroute_spool_max_bytes", "", sp->max_bytes);
    sr_metrics_zero(g->metrics, "skyroute_spool_finished_total",
                    (const char *const[]){"outcome=\"done\"", "outcome=\"handler_failed\"",
                                          "outcome=\"failed\"", "outcome=\"forwarded\"", NULL});
    sp->commit_ev = event_new(g->base, -1, 0, commit_cb, sp);
    sp->tick = event_new(g->base, -1, EV_PERSIST, tick_cb, sp);
    sp->kick_ev = event_new(g->base, -1, 0, tick_cb, sp);
    sp->flush_ev = event_new(g->base, -1, 0, flush_cb, sp);
    struct timeval tv = {0, 200000};
    if (!sp->commit_ev || !sp->tick || !sp->kick_ev || !sp->flush_ev ||
        event_add(sp->tick, &tv) != 0) {
        snprintf(err, errlen, "cannot start the spool's timers");
        return SR_ERR_NOMEM;
    }
    gauges(sp);
    return 0;
}

static void free_event(struct event *ev)
{
    if (ev) {
        event_free(ev);
    }
}

void gw_spool_free(struct gw *g)
{
    struct gw_spool *sp = g->spool;
    if (!sp) {
        return;
    }
    if (sp->db) {
        flush_states(sp);
    }
    for (size_t i = 0; i < sp->n; i++) {
        gw_job_cancel(sp->items[i]->job);
        free(sp->items[i]->reason);
        free(sp->items[i]);
    }
    free(sp->items);
    free(sp->due);
    free(sp->dirty);
    for (struct pending *p = sp->batch; p;) {
        struct pending *next = p->next;
        free(p->payload);
        free(p);
        p = next;
    }
    free_event(sp->commit_ev);
    free_event(sp->tick);
    free_event(sp->kick_ev);
    free_event(sp->flush_ev);
    sr_spooldb_close(sp->db);
    free(sp);
    g->spool = NULL;
}

/* ---- federation: the link, adopted work, imported results, republication ----------------------
 */

void gw_spool_set_link(struct gw *g, const struct gw_spool_link *link)
{
    if (g->spool) {
        if (link) {
            g->spool->link = *link;
        } else {
            memset(&g->spool->link, 0, sizeof(g->spool->link));
        }
    }
}

int gw_spool_adopt(struct gw *g, const struct gw_job_spec *spec, const char *client,
                   const char *origin)
{
    struct gw_spool *sp = g->spool;
    if (!sp) {
        return SR_ERR_UNAVAILABLE;
    }
    if ((double)sp->n >= sp->max_items || (double)(sp->bytes + spec->payload_len) > sp->max_bytes) {
        return SR_ERR_FULL; /* left in the queue: redelivered later */
    }
    struct sr_spool_work w = work_of(spec, client, "", origin);
    bool fresh = false; /* not fresh: delivered before, already here */
    bool ok = sr_spooldb_begin(sp->db) == 0 &&
              sr_spooldb_insert(sp->db, &w, sr_now_ms(), &fresh) == 0 &&
              sr_spooldb_commit(sp->db) == 0;
    if (!ok) {
        sr_log(SR_LOG_ERROR, "spool: cannot store work from %s: %s", origin,
               sr_spooldb_errmsg(sp->db));
        sr_spooldb_rollback(sp->db);
        return SR_ERR_IO;
    }
    if (fresh) {
        item_new(sp, spec, client, origin);
        gauges(sp);
        kick(sp);
    }
    return 0;
}

int gw_spool_import(struct gw *g, const struct gw_remote_result *r)
{
    struct gw_spool *sp = g->spool;
    if (!sp) {
        return SR_ERR_NOTFOUND;
    }
    /* only the station it was forwarded to ("SAT@STATION") answers for it:
     * another trusted station's result for it is not taken */
    struct sr_spool_status s;
    if (sr_spooldb_status(sp->db, r->id, &s) != 0) {
        return SR_ERR_NOTFOUND;
    }
    const char *at = s.target ? strrchr(s.target, '@') : NULL;
    if (!at || strcmp(at + 1, r->station) != 0) {
        return SR_ERR_ENV_UNTRUSTED;
    }
    char reason[160];
    snprintf(reason, sizeof(reason), "ran through station %s%s%s", r->station,
             r->status == 200 ? "" : ": ", r->status == 200 ? "" : r->error);
    struct sr_spool_result res = {.state = r->status == 200 ? SR_SPOOL_DONE : SR_SPOOL_FAILED,
                                  .status = r->status,
                                  .payload = r->payload,
                                  .payload_len = r->payload_len,
                                  .signer = r->signer,
                                  .reason = reason,
                                  .predicted_ms = r->predicted_ms,
                                  .elapsed_ms = r->elapsed_ms,
                                  .envelope = r->envelope,
                                  .envelope_len = r->envelope_len};
    return sr_spooldb_import(sp->db, r->id, &res, sr_now_ms());
}

void gw_spool_republish(struct gw *g)
{
    struct gw_spool *sp = g->spool;
    if (!sp) {
        return;
    }
    /* forwards held while cut off go now; work planned while cut off, waiting
     * for one of our own windows, is planned again with every station's passes */
    for (size_t i = 0; i < sp->n; i++) {
        struct item *it = sp->items[i];
        if (it->job || it->forwarding) {
            continue;
        }
        if ((it->pinned && strchr(it->target, '@')) ||
            (!it->pinned && it->state == SR_SPOOL_WAITING)) {
            it->wait_until_ms = 0;
        }
    }
    kick(sp);
    republish_results(sp);
}

struct republish {
    struct gw_spool *sp;
    size_t n;
};

static int republish_one(void *arg, const uint8_t id[SR_SPOOL_IDBYTES], const char *origin,
                         const struct sr_spool_result *res)
{
    struct republish *rp = arg;
    publish_result(rp->sp, id, origin, res);
    rp->n++;
    return 0;
}

/* Results of adopted work the bucket has not acknowledged yet, again. */
static void republish_results(struct gw_spool *sp)
{
    sp->republish_at = 0;
    struct republish rp = {sp, 0};
    sr_spooldb_unpublished(sp->db, republish_one, &rp);
    if (rp.n) {
        sr_log(SR_LOG_INFO, "spool: %zu results of adopted work published again", rp.n);
    }
}
