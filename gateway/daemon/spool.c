/*
 * skyrouted part: the durable spool (store-and-forward).
 *
 * POST /v1/workloads with `prefer: respond-async` is answered 202 only once
 * the workload is in SQLite (WAL, synchronous=FULL). Submissions that arrive
 * in the same loop turn share one transaction (group commit), so throughput
 * does not fall to one fsync per request.
 *
 * A dispatcher walks the active workloads, earliest deadline first, and
 * starts a placement job (dispatch.c) for each one whose window is open;
 * the router says when the best plan has to wait (the job ends with 202 and
 * the AOS), and the workload sleeps until then. Before an envelope leaves,
 * its target is recorded durably: after a crash, or when a transfer is cut
 * by LOS, the same envelope goes back to the same target, whose replay guard
 * returns the stored result instead of running the handler again. Work that
 * provably never reached a target is re-planned freely.
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

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

/* SP_FORWARDED: published for another station's pass ([cluster]); finished
 * here until that station's result is imported. */
enum sp_state { SP_QUEUED = 0, SP_WAITING, SP_DISPATCHED, SP_DONE, SP_FAILED, SP_FORWARDED };
static const char *const state_names[] = {"queued", "waiting", "dispatched",
                                          "done",   "failed",  "forwarded"};

/* An active (not finished) workload, kept in memory; payloads stay on disk. */
struct item {
    uint8_t id[SR_ENV_IDBYTES];
    char client[64];
    int64_t deadline_ms;
    int64_t wait_until_ms;
    size_t bytes;
    enum sp_state state;
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
    bool duplicate;
    int64_t start_mono;
};

struct gw_spool {
    struct gw *g;
    sqlite3 *db;
    sqlite3_stmt *ins, *upd_state, *upd_done, *get, *get_payload, *out_sel, *out_ack;
    sqlite3_stmt *upd_fwd, *upd_pub, *upd_import, *set_origin; /* [cluster] */
    struct item **items;                                       /* active workloads */
    size_t n, cap;
    struct item **due;   /* dispatch_due's scratch: the items about to go, cap entries */
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

/* ---- storage ------------------------------------------------------------------------ */

static const char schema[] =
    "PRAGMA journal_mode=WAL;"
    "PRAGMA synchronous=FULL;"
    "CREATE TABLE IF NOT EXISTS spool ("
    " id BLOB PRIMARY KEY, client TEXT NOT NULL, handler TEXT NOT NULL, payload BLOB NOT NULL,"
    " iat INTEGER NOT NULL, deadline INTEGER NOT NULL, work REAL NOT NULL,"
    " result_bytes INTEGER NOT NULL, env_flags INTEGER NOT NULL, place INTEGER NOT NULL,"
    " place_target TEXT NOT NULL, data_at TEXT NOT NULL,"
    " state INTEGER NOT NULL, target TEXT NOT NULL DEFAULT '', wait_until INTEGER NOT NULL "
    " DEFAULT 0, attempts INTEGER NOT NULL DEFAULT 0, reason TEXT NOT NULL DEFAULT '',"
    " created INTEGER NOT NULL, updated INTEGER NOT NULL,"
    " res_status INTEGER NOT NULL DEFAULT 0, res_payload BLOB, res_signer TEXT NOT NULL "
    " DEFAULT '', res_predicted REAL NOT NULL DEFAULT 0, res_elapsed REAL NOT NULL DEFAULT 0,"
    " res_detail TEXT, done_at INTEGER NOT NULL DEFAULT 0,"
    " reply_to TEXT NOT NULL DEFAULT '', delivered INTEGER NOT NULL DEFAULT 0,"
    " origin TEXT NOT NULL DEFAULT '', published INTEGER NOT NULL DEFAULT 0,"
    " pinned INTEGER NOT NULL DEFAULT 0);"
    "CREATE INDEX IF NOT EXISTS spool_active ON spool(state, deadline);";

static int prep(struct gw_spool *sp, sqlite3_stmt **st, const char *sql, char *err, size_t errlen)
{
    if (sqlite3_prepare_v2(sp->db, sql, -1, st, NULL) != SQLITE_OK) {
        snprintf(err, errlen, "spool: %s", sqlite3_errmsg(sp->db));
        return SR_ERR_IO;
    }
    return 0;
}

static int exec_sql(struct gw_spool *sp, const char *sql)
{
    return sqlite3_exec(sp->db, sql, NULL, NULL, NULL) == SQLITE_OK ? 0 : SR_ERR_IO;
}

/* HTTP status for a failed write: a full disk is 507, anything else 503. */
static int write_status(struct gw_spool *sp)
{
    int e = sqlite3_errcode(sp->db);
    return (e == SQLITE_FULL || e == SQLITE_IOERR) ? 507 : 503;
}

static void update_state(struct gw_spool *sp, struct item *it, const char *reason, bool attempt)
{
    sqlite3_stmt *st = sp->upd_state;
    sqlite3_reset(st);
    sqlite3_bind_int(st, 1, (int)it->state);
    sqlite3_bind_text(st, 2, it->target, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, it->wait_until_ms);
    sqlite3_bind_int(st, 4, attempt ? 1 : 0);
    sqlite3_bind_text(st, 5, reason ? reason : "", -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 6, sr_now_ms());
    sqlite3_bind_blob(st, 7, it->id, SR_ENV_IDBYTES, SQLITE_STATIC);
    sqlite3_bind_int(st, 8, it->pinned ? 1 : 0);
    if (sqlite3_step(st) != SQLITE_DONE) {
        sr_log(SR_LOG_ERROR, "spool: cannot update a workload: %s", sqlite3_errmsg(sp->db));
    }
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
    bool txn = sp->ndirty > 1 && exec_sql(sp, "BEGIN IMMEDIATE") == 0;
    for (size_t i = 0; i < sp->ndirty; i++) {
        struct item *it = sp->dirty[i];
        it->dirty = false;
        update_state(sp, it, it->reason, false); /* its state now: never a stale one */
        free(it->reason);
        it->reason = NULL;
    }
    sp->ndirty = 0;
    if (txn && exec_sql(sp, "COMMIT") != 0) {
        sr_log(SR_LOG_ERROR, "spool: cannot write workload states: %s", sqlite3_errmsg(sp->db));
        exec_sql(sp, "ROLLBACK");
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
        struct item **nd = realloc(sp->due, ncap * sizeof(*nd));
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

/* ---- dispatching ----------------------------------------------------------------------- */

static void kick(struct gw_spool *sp);

static int before_send(const char *target, void *arg)
{
    struct item *it = arg;
    snprintf(it->target, sizeof(it->target), "%s", target);
    it->state = SP_DISPATCHED;
    it->pinned = true; /* from now on it may have run there */
    update_state(it->sp, it, "", true);
    return 0;
}

/* ---- federation ([cluster], federation.c) -------------------------------------------------- */

/* Fills |spec| from the stored workload (the payload points into the
 * statement's row: valid until sqlite3_reset(sp->get_payload)). */
static bool stored_spec(struct gw_spool *sp, const struct item *it, struct gw_job_spec *spec)
{
    sqlite3_stmt *st = sp->get_payload;
    sqlite3_reset(st);
    sqlite3_bind_blob(st, 1, it->id, SR_ENV_IDBYTES, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_ROW) {
        sqlite3_reset(st);
        return false;
    }
    memset(spec, 0, sizeof(*spec));
    memcpy(spec->id, it->id, SR_ENV_IDBYTES);
    snprintf(spec->handler, sizeof(spec->handler), "%s", (const char *)sqlite3_column_text(st, 0));
    spec->payload = sqlite3_column_blob(st, 1);
    spec->payload_len = (size_t)sqlite3_column_bytes(st, 1);
    spec->iat_ms = sqlite3_column_int64(st, 2);
    spec->w.deadline_ms = it->deadline_ms;
    spec->w.work_gop = sqlite3_column_double(st, 3);
    spec->w.result_bytes = sqlite3_column_int64(st, 4);
    spec->env_flags = (unsigned)sqlite3_column_int(st, 5);
    spec->w.place = (sr_place_kind)sqlite3_column_int(st, 6);
    snprintf(spec->w.place_target, sizeof(spec->w.place_target), "%s",
             (const char *)sqlite3_column_text(st, 7));
    snprintf(spec->w.data_at, sizeof(spec->w.data_at), "%s",
             (const char *)sqlite3_column_text(st, 8));
    spec->w.bytes_in = (int64_t)spec->payload_len;
    spec->w.store_and_forward = true;
    return true;
}

static void kick(struct gw_spool *sp);
static void item_remove(struct gw_spool *sp, struct item *it);
static void gauges(struct gw_spool *sp);

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
    sqlite3_stmt *st = sp->upd_fwd;
    sqlite3_reset(st);
    sqlite3_bind_text(st, 1, reason, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 2, now);
    sqlite3_bind_blob(st, 3, it->id, SR_ENV_IDBYTES, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_DONE) {
        /* still pinned there: published again later, de-duplicated by id */
        sr_log(SR_LOG_ERROR, "spool: cannot record a forward: %s", sqlite3_errmsg(sp->db));
        it->wait_until_ms = now + 1000;
        return;
    }
    sr_metrics_add(sp->g->metrics, "skyroute_spool_finished_total", "outcome=\"forwarded\"", 1);
    item_remove(sp, it);
    gauges(sp);
    kick(sp);
}

/* The router's best plan leaves through another station's pass: record that
 * it goes there (pinned, durably), then publish it on the work queue. */
static void forward(struct gw_spool *sp, struct item *it, const char *via)
{
    snprintf(it->target, sizeof(it->target), "%s", via);
    it->pinned = true;
    it->state = SP_QUEUED;
    update_state(sp, it, "forwarding to another station", false);
    struct gw_job_spec spec;
    int rv = SR_ERR_NOTFOUND;
    if (stored_spec(sp, it, &spec)) {
        it->forwarding = true;
        rv = gw_cluster_forward(sp->g, &spec, it->client, via, forward_done, it);
        sqlite3_reset(sp->get_payload);
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
        sqlite3_stmt *st = p->sp->upd_pub;
        sqlite3_reset(st);
        sqlite3_bind_blob(st, 1, p->id, SR_ENV_IDBYTES, SQLITE_STATIC);
        sqlite3_step(st);
    } else if (rv != SR_ERR_CANCELLED && !p->sp->republish_at) {
        /* not acknowledged (a timeout while the bucket elects a leader, with
         * our connection up): every unpublished result goes again shortly,
         * not only at the next reconnection */
        p->sp->republish_at = sr_now_ms() + 1000;
    }
    free(p);
}

/* The result of work adopted from station |origin| goes back through the
 * results bucket; published = 1 once the bucket acknowledged it (else it is
 * published again at the next (re)connection). */
static void publish_result(struct gw_spool *sp, const uint8_t id[SR_ENV_IDBYTES],
                           const char *origin, const struct gw_cluster_result *r)
{
    struct pub *p = malloc(sizeof(*p));
    if (!p) {
        return;
    }
    p->sp = sp;
    memcpy(p->id, id, SR_ENV_IDBYTES);
    if (gw_cluster_publish_result(sp->g, origin, r, publish_done, p) != 0) {
        free(p); /* not connected: gw_spool_republish sends it later */
    }
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
    if (r->status == 307 && r->wait_target) {
        forward(sp, it, r->wait_target);
        return;
    }
    if (r->status == 200 || r->handler_failed) {
        /* a verified, signed result: store it for the client */
        sqlite3_stmt *st = sp->upd_done;
        sqlite3_reset(st);
        sqlite3_bind_int(st, 1, r->status == 200 ? SP_DONE : SP_FAILED);
        sqlite3_bind_int(st, 2, r->status);
        sqlite3_bind_blob(st, 3, r->payload ? (const void *)r->payload : "", (int)r->payload_len,
                          SQLITE_STATIC);
        sqlite3_bind_text(st, 4, r->signer, -1, SQLITE_STATIC);
        sqlite3_bind_double(st, 5, r->predicted_ms);
        sqlite3_bind_double(st, 6, r->elapsed_ms);
        sqlite3_bind_text(st, 7, r->detail_json ? r->detail_json : "", -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 8, now);
        sqlite3_bind_text(st, 9, r->target, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 10, r->error ? r->error : "", -1, SQLITE_STATIC);
        sqlite3_bind_blob(st, 11, it->id, SR_ENV_IDBYTES, SQLITE_STATIC);
        if (sqlite3_step(st) != SQLITE_DONE) {
            /* not stored: it stays dispatched and is fetched again from the
             * target (its replay guard answers) on the next pass */
            sr_log(SR_LOG_ERROR, "spool: cannot store a result: %s", sqlite3_errmsg(sp->db));
            it->wait_until_ms = now + 1000;
            kick(sp);
            return;
        }
        sr_metrics_add(sp->g->metrics, "skyroute_spool_finished_total",
                       r->status == 200 ? "outcome=\"done\"" : "outcome=\"handler_failed\"", 1);
        if (it->origin[0]) {
            struct gw_cluster_result cr = {.id = it->id,
                                           .target = r->target,
                                           .status = r->status,
                                           .payload = r->payload,
                                           .payload_len = r->payload_len,
                                           .signer = r->signer,
                                           .error = r->error,
                                           .predicted_ms = r->predicted_ms,
                                           .elapsed_ms = r->elapsed_ms};
            publish_result(sp, it->id, it->origin, &cr);
        }
        item_remove(sp, it);
        gauges(sp);
        kick(sp);
        return;
    }
    if (r->status == 202) {
        /* the best plan opens later: sleep until its window */
        it->state = SP_WAITING;
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
        return;
    }
    bool expired = now >= it->deadline_ms;
    bool lost = !r->never_sent; /* it may have run at r->target */
    if (expired || r->status == 502 || r->status == 422) {
        if (!expired && lost && r->status == 502 && !r->result_dropped && r->detail_json &&
            strstr(r->detail_json, "\"retry_safe\":false")) {
            /* cut mid-flight (LOS, crash): send the same envelope there again (unless
             * the target said it ran it and dropped the result: then it failed) */
            it->state = SP_QUEUED;
            snprintf(it->target, sizeof(it->target), "%s", r->target);
            it->pinned = true;
            it->wait_until_ms = now + 1000;
            update_state_later(sp, it, r->error);
            return;
        }
        it->state = SP_FAILED;
        sqlite3_stmt *st = sp->upd_done;
        sqlite3_reset(st);
        sqlite3_bind_int(st, 1, SP_FAILED);
        sqlite3_bind_int(st, 2, expired ? 504 : r->status);
        sqlite3_bind_blob(st, 3, "", 0, SQLITE_STATIC);
        sqlite3_bind_text(st, 4, "", -1, SQLITE_STATIC);
        sqlite3_bind_double(st, 5, r->predicted_ms);
        sqlite3_bind_double(st, 6, r->elapsed_ms);
        sqlite3_bind_text(st, 7, r->detail_json ? r->detail_json : "", -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 8, now);
        sqlite3_bind_text(st, 9, r->target, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 10,
                          expired ? "the deadline passed before a result came back"
                                  : (r->error ? r->error : "failed"),
                          -1, SQLITE_STATIC);
        sqlite3_bind_blob(st, 11, it->id, SR_ENV_IDBYTES, SQLITE_STATIC);
        if (sqlite3_step(st) != SQLITE_DONE) {
            sr_log(SR_LOG_ERROR, "spool: cannot record a failure: %s", sqlite3_errmsg(sp->db));
        }
        sr_metrics_add(sp->g->metrics, "skyroute_spool_finished_total", "outcome=\"failed\"", 1);
        if (it->origin[0]) {
            struct gw_cluster_result cr = {
                .id = it->id,
                .target = r->target,
                .status = expired ? 504 : r->status,
                .error = expired ? "the deadline passed before a result came back"
                                 : (r->error ? r->error : "failed"),
                .predicted_ms = r->predicted_ms,
                .elapsed_ms = r->elapsed_ms};
            publish_result(sp, it->id, it->origin, &cr);
        }
        item_remove(sp, it);
        gauges(sp);
        kick(sp);
        return;
    }
    /* not placed now (no target reachable, timeout): try again shortly; a
     * timeout may have run at the target, so it stays pinned there */
    it->state = SP_QUEUED;
    if (lost && r->target[0]) {
        snprintf(it->target, sizeof(it->target), "%s", r->target);
        it->pinned = true;
    } else if (!it->pinned && r->target[0]) {
        snprintf(it->target, sizeof(it->target), "%s", r->target); /* keeps its place in line */
    }
    it->wait_until_ms = now + 300;
    update_state_later(sp, it, r->error);
}

static int deadline_cmp(const void *a, const void *b)
{
    const struct item *x = *(struct item *const *)a, *y = *(struct item *const *)b;
    return x->deadline_ms < y->deadline_ms ? -1 : x->deadline_ms > y->deadline_ms;
}

/* Loads a workload's stored request and starts placing it. False if it did
 * not start; |it| is then freed if it vanished from the store. */
static bool start_item(struct gw_spool *sp, struct item *it)
{
    sqlite3_stmt *st = sp->get_payload;
    sqlite3_reset(st);
    sqlite3_bind_blob(st, 1, it->id, SR_ENV_IDBYTES, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_ROW) {
        sr_log(SR_LOG_ERROR, "spool: workload vanished from the store");
        item_remove(sp, it);
        return false;
    }
    struct gw_job_spec spec;
    memset(&spec, 0, sizeof(spec));
    memcpy(spec.id, it->id, SR_ENV_IDBYTES);
    snprintf(spec.handler, sizeof(spec.handler), "%s", (const char *)sqlite3_column_text(st, 0));
    spec.payload = sqlite3_column_blob(st, 1);
    spec.payload_len = (size_t)sqlite3_column_bytes(st, 1);
    spec.copy_payload = true;
    spec.iat_ms = sqlite3_column_int64(st, 2);
    spec.w.deadline_ms = it->deadline_ms;
    spec.w.work_gop = sqlite3_column_double(st, 3);
    spec.w.result_bytes = sqlite3_column_int64(st, 4);
    spec.env_flags = (unsigned)sqlite3_column_int(st, 5);
    spec.w.place = (sr_place_kind)sqlite3_column_int(st, 6);
    snprintf(spec.w.place_target, sizeof(spec.w.place_target), "%s",
             (const char *)sqlite3_column_text(st, 7));
    snprintf(spec.w.data_at, sizeof(spec.w.data_at), "%s",
             (const char *)sqlite3_column_text(st, 8));
    spec.w.bytes_in = (int64_t)spec.payload_len;
    spec.w.store_and_forward = true;
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
    sqlite3_reset(st);
    if (it->job) {
        sp->running++;
    }
    return it->job != NULL;
}

static void dispatch_due(struct gw_spool *sp)
{
    int64_t now = sr_now_ms();
    if (sp->running >= (size_t)sp->concurrency) {
        return;
    }
    /* Only what is due, or about to be (3 s), is sorted: 100,000 workloads
     * waiting for a later pass cost one scan per turn, not a sort. */
    size_t ndue = 0;
    for (size_t i = 0; i < sp->n; i++) {
        struct item *it = sp->items[i];
        if (!it->job && !it->forwarding && it->wait_until_ms <= now + 3000) {
            sp->due[ndue++] = it;
        }
    }
    if (ndue > 1) {
        qsort(sp->due, ndue, sizeof(sp->due[0]), deadline_cmp);
    }
    /* Earliest deadline first, per target: work bound for a target does not
     * overtake earlier-deadline work for the same target that is about to go
     * (e.g. retrying the first seconds of a pass while the link comes up). */
    const char *held[16];
    size_t nheld = 0;
    for (size_t i = 0; i < ndue && sp->running < (size_t)sp->concurrency; i++) {
        struct item *it = sp->due[i];
        bool blocked = false;
        for (size_t k = 0; k < nheld && !blocked; k++) {
            blocked = it->target[0] && !strcmp(held[k], it->target);
        }
        if (blocked) {
            continue;
        }
        if (it->wait_until_ms > now) {
            if (it->target[0] && it->wait_until_ms <= now + 3000 && nheld < 16) {
                held[nheld++] = it->target;
            }
            continue;
        }
        if (it->pinned && strchr(it->target, '@') && sp->g->cluster) {
            /* bound for another station ("SAT@STATION"): onto its queue,
             * whether or not its heartbeat is seen right now (the stream
             * keeps it for that station; planning it again could run it
             * twice) */
            char via[SR_TARGET_IDMAX];
            snprintf(via, sizeof(via), "%s", it->target);
            forward(sp, it, via);
            continue;
        }
        if (start_item(sp, it) && it->target[0] && nheld < 16) {
            held[nheld++] = it->target; /* one at a time per target, in deadline order */
        }
    }
}

static void prune(struct gw_spool *sp)
{
    int64_t now = sr_now_ms();
    if (now - sp->last_prune < 60000) {
        return;
    }
    sp->last_prune = now;
    char sql[160];
    snprintf(sql, sizeof(sql), "DELETE FROM spool WHERE state >= %d AND done_at < %lld", SP_DONE,
             (long long)(now - (int64_t)(sp->keep_s * 1000)));
    exec_sql(sp, sql);
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

/* Runs the dispatcher on the next loop turn (new work, a finished job). */
static void kick(struct gw_spool *sp)
{
    event_active(sp->kick_ev, 0, 0);
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
    char labels[32];
    snprintf(labels, sizeof(labels), "code=\"202\"");
    sr_metrics_add(g->metrics, "skyroute_requests_total", labels, 1);
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
    bool ok = exec_sql(sp, "BEGIN IMMEDIATE") == 0;
    size_t stored = 0;
    for (struct pending *p = batch; ok && p; p = p->next) {
        if (!p->req) {
            continue;
        }
        sqlite3_stmt *st = sp->ins;
        sqlite3_reset(st);
        sqlite3_bind_blob(st, 1, p->spec.id, SR_ENV_IDBYTES, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, p->client, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, p->spec.handler, -1, SQLITE_STATIC);
        sqlite3_bind_blob(st, 4, p->payload ? (const void *)p->payload : "",
                          (int)p->spec.payload_len, SQLITE_STATIC);
        sqlite3_bind_int64(st, 5, p->spec.iat_ms);
        sqlite3_bind_int64(st, 6, p->spec.w.deadline_ms);
        sqlite3_bind_double(st, 7, p->spec.w.work_gop);
        sqlite3_bind_int64(st, 8, p->spec.w.result_bytes);
        sqlite3_bind_int(st, 9, (int)p->spec.env_flags);
        sqlite3_bind_int(st, 10, (int)p->spec.w.place);
        sqlite3_bind_text(st, 11, p->spec.w.place_target, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 12, p->spec.w.data_at, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 13, now);
        sqlite3_bind_text(st, 14, p->reply_to, -1, SQLITE_STATIC);
        ok = sqlite3_step(st) == SQLITE_DONE;
        /* a satellite re-sending an envelope it sent before: already here */
        p->duplicate = ok && sqlite3_changes(sp->db) == 0;
        stored++;
    }
    ok = ok && exec_sql(sp, "COMMIT") == 0;
    int fail_status = ok ? 0 : write_status(sp);
    const char *why = ok ? NULL : sqlite3_errmsg(sp->db);
    if (!ok) {
        exec_sql(sp, "ROLLBACK");
        sr_log(SR_LOG_ERROR, "spool: commit of %zu workloads failed: %s", stored, why);
    }
    for (struct pending *p = batch; p;) {
        struct pending *next = p->next;
        if (p->req && ok && p->duplicate) {
            respond_accepted(sp->g, p->req, p->spec.id);
        } else if (p->req && ok) {
            struct item *it = calloc(1, sizeof(*it));
            if (it) {
                memcpy(it->id, p->spec.id, SR_ENV_IDBYTES);
                snprintf(it->client, sizeof(it->client), "%s", p->client);
                it->deadline_ms = p->spec.w.deadline_ms;
                it->bytes = p->spec.payload_len;
                it->sp = sp;
            }
            if (!it || item_add(sp, it) != 0) {
                free(it); /* stored; picked up by the next start-up's recovery */
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

static void refuse(struct gw *g, sr_req *req, int status, const char *msg, const char *detail)
{
    char labels[32];
    snprintf(labels, sizeof(labels), "code=\"%d\"", status);
    sr_metrics_add(g->metrics, "skyroute_requests_total", labels, 1);
    sr_req_respond_error(req, status, msg, detail);
}

static void submit(struct gw *g, sr_req *req, const struct gw_job_spec *spec, const char *client,
                   const char *reply_to);

void gw_spool_submit(struct gw *g, sr_req *req, const struct gw_job_spec *spec, const char *client)
{
    submit(g, req, spec, client, "");
}

static void submit(struct gw *g, sr_req *req, const struct gw_job_spec *spec, const char *client,
                   const char *reply_to)
{
    struct gw_spool *sp = g->spool;
    if (!sp) {
        refuse(g, req, 503, "the spool is not available", NULL);
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
        refuse(g, req, 507, "the spool is full", d);
        return;
    }
    uint64_t quota = gw_auth_spool_quota(g, client);
    if (quota) {
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
        if (mine + spec->payload_len > quota) {
            char d[160];
            snprintf(d, sizeof(d), "{\"client\":\"%s\",\"spooled_bytes\":%llu,\"quota\":%llu}",
                     client, (unsigned long long)mine, (unsigned long long)quota);
            const struct sr_http_header h[] = {{"retry-after", "60"}};
            (void)h;
            refuse(g, req, 429, "over the client's spool quota", d);
            return;
        }
    }
    struct pending *p = calloc(1, sizeof(*p));
    uint8_t *copy = p ? malloc(spec->payload_len ? spec->payload_len : 1) : NULL;
    if (!p || !copy) {
        free(p);
        free(copy);
        refuse(g, req, 503, "out of memory", NULL);
        return;
    }
    p->req = req;
    p->spec = *spec;
    memcpy(copy, spec->payload, spec->payload_len);
    p->payload = copy;
    p->spec.payload = copy;
    snprintf(p->client, sizeof(p->client), "%s", client ? client : "");
    snprintf(p->reply_to, sizeof(p->reply_to), "%s", reply_to);
    p->start_mono = sr_req_start_mono(req);
    *sp->batch_tail = p;
    sp->batch_tail = &p->next;
    sp->batch_items++;
    sp->batch_bytes += spec->payload_len;
    sr_req_set_data(req, p);
    sr_req_set_abort(req, pending_abort);
    event_active(sp->commit_ev, 0, 0); /* one commit per loop turn for the whole batch */
}

/* ---- a satellite's own work: POST /v1/uplink and POST /v1/outbox ---------------------------- */

/*
 * A satellite's node sends work it wants run on the ground as a workload
 * envelope it signs (dst = this gateway); it is spooled like any async work,
 * routed to the ground, and its result waits in the satellite's outbox. At
 * each contact the node calls POST /v1/outbox with a signed envelope whose
 * payload lists the ids it has received (16 bytes each); the gateway marks
 * those delivered and answers with the results still waiting, each a result
 * envelope signed by the gateway and addressed to the satellite, framed as a
 * 4-byte big-endian length and the envelope.
 */
static const char *satellite_opens(struct gw *g, sr_req *req, struct sr_envelope *env)
{
    size_t len;
    const uint8_t *body = sr_req_body(req, &len);
    char why[200] = "";
    struct sr_open_opts oo = {.trust = g->ring,
                              .self_id = g->cfg->id,
                              .now_ms = sr_now_ms(),
                              .max_len = g->cfg->max_body + 65536,
                              .kinds = 1u << SR_KIND_WORKLOAD};
    int rv = sr_envelope_open(env, body, len, &oo, why, sizeof(why));
    const struct sr_target_cfg *sat = NULL;
    for (size_t i = 0; rv == 0 && i < g->ntargets; i++) {
        const struct sr_target_cfg *t = g->targets[i].cfg;
        if (env->signer_name && !strcmp(t->id, env->signer_name) &&
            t->kind == SR_TARGET_SATELLITE) {
            sat = t;
        }
    }
    if (rv == 0 && (!sat || strcmp(env->src, sat->id) != 0)) {
        rv = SR_ERR_ENV_UNTRUSTED;
        snprintf(why, sizeof(why), "only a configured satellite may use this, as itself");
    }
    if (rv != 0) {
        char d[320];
        snprintf(d, sizeof(d), "{\"code\":\"%s\"}", sr_errname(rv));
        refuse(g, req, sr_env_http_status(rv), why[0] ? why : sr_strerror(rv), d);
        return NULL;
    }
    return sat->id;
}

static void uplink(struct gw *g, sr_req *req)
{
    struct sr_envelope env;
    const char *sat = satellite_opens(g, req, &env);
    if (!sat) {
        return;
    }
    struct gw_job_spec spec;
    memset(&spec, 0, sizeof(spec));
    memcpy(spec.id, env.id, SR_ENV_IDBYTES);
    spec.iat_ms = env.iat;
    snprintf(spec.handler, sizeof(spec.handler), "%s", env.handler[0] ? env.handler : "echo");
    spec.payload = env.payload;
    spec.payload_len = env.payload_len;
    spec.env_flags = env.flags & (SR_ENV_HAS_WORK | SR_ENV_HAS_RESULT_BYTES);
    spec.w.work_gop = (env.flags & SR_ENV_HAS_WORK) ? env.work : 0;
    spec.w.result_bytes = (env.flags & SR_ENV_HAS_RESULT_BYTES) ? env.result_bytes : 0;
    spec.w.bytes_in = (int64_t)env.payload_len;
    spec.w.deadline_ms = env.exp;
    spec.w.place = SR_PLACE_GROUND; /* it came down to be run on the ground */
    spec.w.store_and_forward = true;
    char client[80];
    snprintf(client, sizeof(client), "satellite:%s", sat);
    submit(g, req, &spec, client, sat);
}

static void outbox(struct gw *g, sr_req *req)
{
    struct gw_spool *sp = g->spool;
    struct sr_envelope env;
    const char *sat = satellite_opens(g, req, &env);
    if (!sat) {
        return;
    }
    if (env.payload_len % SR_ENV_IDBYTES != 0) {
        refuse(g, req, 400, "the outbox payload lists received ids, 16 bytes each", NULL);
        return;
    }
    for (size_t off = 0; off < env.payload_len; off += SR_ENV_IDBYTES) {
        sqlite3_reset(sp->out_ack);
        sqlite3_bind_blob(sp->out_ack, 1, env.payload + off, SR_ENV_IDBYTES, SQLITE_STATIC);
        sqlite3_bind_text(sp->out_ack, 2, sat, -1, SQLITE_STATIC);
        sqlite3_step(sp->out_ack);
    }
    sr_buf out;
    sr_buf_init(&out, 256u << 20);
    sqlite3_stmt *st = sp->out_sel;
    sqlite3_reset(st);
    sqlite3_bind_text(st, 1, sat, -1, SQLITE_STATIC);
    int rv = 0;
    size_t n = 0;
    int64_t now = sr_now_ms();
    while (rv == 0 && sqlite3_step(st) == SQLITE_ROW) {
        struct sr_envelope res;
        memset(&res, 0, sizeof(res));
        res.kind = SR_KIND_RESULT;
        if (sqlite3_column_bytes(st, 0) != SR_ENV_IDBYTES) {
            continue;
        }
        memcpy(res.id, sqlite3_column_blob(st, 0), SR_ENV_IDBYTES);
        res.iat = now;
        res.exp = now + 7 * 86400000LL;
        snprintf(res.src, sizeof(res.src), "%s", g->cfg->id);
        snprintf(res.dst, sizeof(res.dst), "%s", sat);
        snprintf(res.handler, sizeof(res.handler), "%s", (const char *)sqlite3_column_text(st, 1));
        int status = sqlite3_column_int(st, 2);
        res.payload = sqlite3_column_blob(st, 3);
        res.payload_len = (size_t)sqlite3_column_bytes(st, 3);
        res.status = status == 200 ? 0 : status;
        res.flags = SR_ENV_HAS_STATUS;
        if (status != 200) {
            snprintf(res.error, sizeof(res.error), "%s", (const char *)sqlite3_column_text(st, 4));
            res.flags |= SR_ENV_HAS_ERROR;
        }
        size_t mark = out.len;
        rv = sr_buf_append(&out, "\0\0\0\0", 4);
        rv = rv ? rv : sr_envelope_seal(&out, g->key, &res);
        if (rv == 0) {
            uint32_t l = (uint32_t)(out.len - mark - 4);
            out.data[mark] = (uint8_t)(l >> 24);
            out.data[mark + 1] = (uint8_t)(l >> 16);
            out.data[mark + 2] = (uint8_t)(l >> 8);
            out.data[mark + 3] = (uint8_t)l;
            n++;
        }
    }
    sqlite3_reset(st);
    if (rv != 0) {
        sr_buf_free(&out);
        refuse(g, req, 503, "cannot seal the outbox", NULL);
        return;
    }
    char count[24];
    snprintf(count, sizeof(count), "%zu", n);
    const struct sr_http_header h[] = {{"content-type", "application/vnd.skyroute.outbox"},
                                       {"skyroute-count", count}};
    sr_metrics_add(g->metrics, "skyroute_outbox_results_sent_total", "", (double)n);
    if (out.data) {
        sr_req_respond(req, 200, h, 2, out.data, out.len, true);
    } else {
        sr_req_respond(req, 200, h, 2, "", 0, false); /* nothing waiting */
    }
}

/* ---- GET /v1/workloads/ID ------------------------------------------------------------------ */

bool gw_spool_handle(struct gw *g, sr_req *req, const char *client)
{
    (void)client;
    const char *path = sr_req_path(req);
    size_t plen = strcspn(path, "?");
    bool up = plen == 10 && !strncmp(path, "/v1/uplink", 10);
    bool ob = plen == 10 && !strncmp(path, "/v1/outbox", 10);
    if (up || ob) {
        if (strcmp(sr_req_method(req), "POST") != 0) {
            refuse(g, req, 405, "POST a signed envelope", NULL);
        } else if (!g->spool) {
            refuse(g, req, 503, "the spool is not available", NULL);
        } else if (up) {
            uplink(g, req);
        } else {
            outbox(g, req);
        }
        return true;
    }
    static const char prefix[] = "/v1/workloads/";
    if (plen <= sizeof(prefix) - 1 || strncmp(path, prefix, sizeof(prefix) - 1) != 0) {
        return false;
    }
    const char *hex = path + sizeof(prefix) - 1;
    size_t hlen = plen - (sizeof(prefix) - 1);
    if (strcmp(sr_req_method(req), "GET") != 0) {
        refuse(g, req, 405, "use GET", NULL);
        return true;
    }
    uint8_t id[SR_ENV_IDBYTES];
    if (sr_unhex(id, sizeof(id), hex, hlen) != 0) {
        refuse(g, req, 404, "no such workload", "{\"why\":\"an id is 32 hex digits\"}");
        return true;
    }
    struct gw_spool *sp = g->spool;
    if (!sp) {
        refuse(g, req, 404, "no such workload", NULL);
        return true;
    }
    /* a submission still in the group commit is not known yet */
    sqlite3_stmt *st = sp->get;
    sqlite3_reset(st);
    sqlite3_bind_blob(st, 1, id, SR_ENV_IDBYTES, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_ROW) {
        sqlite3_reset(st);
        if (!gw_cluster_fetch(g, req, id)) { /* another station's, maybe */
            refuse(g, req, 404, "no such workload", NULL);
        }
        return true;
    }
    int state = sqlite3_column_int(st, 0);
    const char *target = (const char *)sqlite3_column_text(st, 1);
    int64_t wait_until = sqlite3_column_int64(st, 2);
    int attempts = sqlite3_column_int(st, 3);
    const char *reason = (const char *)sqlite3_column_text(st, 4);
    int res_status = sqlite3_column_int(st, 5);
    const void *res = sqlite3_column_blob(st, 6);
    size_t res_len = (size_t)sqlite3_column_bytes(st, 6);
    const char *signer = (const char *)sqlite3_column_text(st, 7);
    double predicted = sqlite3_column_double(st, 8), elapsed = sqlite3_column_double(st, 9);
    const char *detail = (const char *)sqlite3_column_text(st, 10);
    int64_t deadline = sqlite3_column_int64(st, 11);
    char idhex[2 * SR_ENV_IDBYTES + 1];
    sr_hex(idhex, id, SR_ENV_IDBYTES);
    if (state == SP_DONE) {
        char p[32], e[32];
        snprintf(p, sizeof(p), "%.0f", predicted);
        snprintf(e, sizeof(e), "%.0f", elapsed);
        const struct sr_http_header h[] = {{"content-type", "application/octet-stream"},
                                           {"skyroute-id", idhex},
                                           {"skyroute-target", target},
                                           {"skyroute-predicted-ms", p},
                                           {"skyroute-elapsed-ms", e},
                                           {"skyroute-signer", signer}};
        sr_req_respond(req, 200, h, 6, res ? res : "", res_len, false);
        sqlite3_reset(st);
        return true;
    }
    sr_buf b;
    sr_buf_init(&b, 1 << 16);
    char dl[SR_RFC3339_LEN];
    sr_time_format(dl, deadline);
    int rv = sr_buf_appendf(&b,
                            "{\"id\":\"%s\",\"state\":\"%s\",\"deadline\":\"%s\",\"attempts\":%d,"
                            "\"target\":",
                            idhex, state_names[state <= SP_FORWARDED && state >= 0 ? state : 0], dl,
                            attempts);
    rv = rv ? rv : sr_buf_append_json_str(&b, target, strlen(target));
    if (state == SP_WAITING && wait_until > 0) {
        char w[SR_RFC3339_LEN];
        sr_time_format(w, wait_until);
        rv = rv ? rv : sr_buf_appendf(&b, ",\"window_opens\":\"%s\"", w);
    }
    const char *at = state == SP_FORWARDED ? strrchr(target, '@') : NULL;
    if (at) {
        rv = rv ? rv : sr_buf_append(&b, ",\"station\":", 11);
        rv = rv ? rv : sr_buf_append_json_str(&b, at + 1, strlen(at + 1));
    }
    rv = rv ? rv : sr_buf_append(&b, ",\"reason\":", 10);
    rv = rv ? rv : sr_buf_append_json_str(&b, reason, strlen(reason));
    if (state == SP_FAILED) {
        /* answered with an error status: "error" too, as every error body has */
        rv = rv ? rv : sr_buf_append(&b, ",\"error\":", 9);
        rv = rv ? rv : sr_buf_append_json_str(&b, reason, strlen(reason));
        rv = rv ? rv : sr_buf_appendf(&b, ",\"detail\":%s", detail && detail[0] ? detail : "null");
    }
    rv = rv ? rv : sr_buf_append(&b, "}\n", 2);
    sqlite3_reset(st);
    static const struct sr_http_header h[] = {{"content-type", "application/json"}};
    int status = state == SP_FAILED ? (res_status >= 400 ? res_status : 502) : 202;
    if (rv != 0) {
        sr_buf_free(&b);
        refuse(g, req, 503, "out of memory", NULL);
        return true;
    }
    sr_req_respond(req, status, h, 1, b.data, b.len, true);
    return true;
}

/* ---- start-up and shut-down --------------------------------------------------------------- */

/* Everything not finished goes back in the active set: dispatched work keeps
 * its target, so the same envelope goes there again (exactly-once effect). */
static int recover(struct gw_spool *sp, char *err, size_t errlen)
{
    sqlite3_stmt *st;
    if (prep(sp, &st,
             "SELECT id, client, deadline, state, target, wait_until, length(payload), pinned,"
             " origin FROM spool WHERE state < 3",
             err, errlen)) {
        return SR_ERR_IO;
    }
    size_t n = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        struct item *it = calloc(1, sizeof(*it));
        if (!it || sqlite3_column_bytes(st, 0) != SR_ENV_IDBYTES) {
            free(it);
            continue;
        }
        memcpy(it->id, sqlite3_column_blob(st, 0), SR_ENV_IDBYTES);
        snprintf(it->client, sizeof(it->client), "%s", (const char *)sqlite3_column_text(st, 1));
        it->deadline_ms = sqlite3_column_int64(st, 2);
        it->state = (enum sp_state)sqlite3_column_int(st, 3);
        snprintf(it->target, sizeof(it->target), "%s", (const char *)sqlite3_column_text(st, 4));
        it->wait_until_ms = sqlite3_column_int64(st, 5);
        it->bytes = (size_t)sqlite3_column_int64(st, 6);
        it->sp = sp;
        it->pinned = sqlite3_column_int(st, 7) != 0 && it->target[0];
        snprintf(it->origin, sizeof(it->origin), "%s", (const char *)sqlite3_column_text(st, 8));
        if (it->state == SP_DISPATCHED) {
            it->state = SP_QUEUED; /* re-send, pinned to it->target */
            it->wait_until_ms = 0;
            it->pinned = true;
        }
        if (item_add(sp, it) != 0) {
            free(it);
            sqlite3_finalize(st);
            snprintf(err, errlen, "out of memory");
            return SR_ERR_NOMEM;
        }
        n++;
    }
    sqlite3_finalize(st);
    if (n) {
        sr_log(SR_LOG_INFO, "spool: %zu unfinished workloads recovered", n);
    }
    return 0;
}

int gw_spool_init(struct gw *g, char *err, size_t errlen)
{
    double max_items, max_bytes, keep, conc;
    if (sr_config_num(g->cfg, "spool", "max_items", 100000, 1, 1e9, &max_items, err, errlen) ||
        sr_config_num(g->cfg, "spool", "max_bytes", 1073741824.0, 1, 1e15, &max_bytes, err,
                      errlen) ||
        sr_config_num(g->cfg, "spool", "keep_results_s", 86400, 1, 86400.0 * 365, &keep, err,
                      errlen) ||
        sr_config_num(g->cfg, "spool", "concurrency", 256, 1, 100000, &conc, err, errlen)) {
        return SR_ERR_CONFIG;
    }
    for (size_t i = 0; i < g->cfg->nkv; i++) {
        const struct sr_cfg_kv *kv = &g->cfg->kv[i];
        if (!strcmp(kv->section, "spool") && strcmp(kv->key, "max_items") &&
            strcmp(kv->key, "max_bytes") && strcmp(kv->key, "keep_results_s") &&
            strcmp(kv->key, "concurrency")) {
            snprintf(err, errlen, "%s:%d: unknown key '%s' in [spool]", g->cfg->path, kv->line,
                     kv->key);
            return SR_ERR_CONFIG;
        }
    }
    if (g->check_only) {
        return 0;
    }
    struct gw_spool *sp = calloc(1, sizeof(*sp));
    if (!sp) {
        snprintf(err, errlen, "out of memory");
        return SR_ERR_NOMEM;
    }
    g->spool = sp;
    sp->g = g;
    sp->max_items = max_items;
    sp->max_bytes = max_bytes;
    sp->keep_s = keep;
    sp->concurrency = conc;
    sp->batch_tail = &sp->batch;
    char path[PATH_MAX + 16];
    snprintf(path, sizeof(path), "%s/spool.db", g->cfg->state_dir);
    if (sqlite3_open_v2(path, &sp->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) !=
        SQLITE_OK) {
        snprintf(err, errlen, "spool %s: %s", path,
                 sp->db ? sqlite3_errmsg(sp->db) : "cannot open");
        return SR_ERR_IO;
    }
    sqlite3_busy_timeout(sp->db, 2000);
    if (sqlite3_exec(sp->db, schema, NULL, NULL, NULL) != SQLITE_OK) {
        snprintf(err, errlen, "spool %s: %s", path, sqlite3_errmsg(sp->db));
        return SR_ERR_IO;
    }
    /* spools written before the pinned column: add it (fails harmlessly if present) */
    sqlite3_exec(sp->db, "ALTER TABLE spool ADD COLUMN pinned INTEGER NOT NULL DEFAULT 0", NULL,
                 NULL, NULL);
    /* spools written before federation: add its columns (fails harmlessly if present) */
    sqlite3_exec(sp->db, "ALTER TABLE spool ADD COLUMN origin TEXT NOT NULL DEFAULT ''", NULL, NULL,
                 NULL);
    sqlite3_exec(sp->db, "ALTER TABLE spool ADD COLUMN published INTEGER NOT NULL DEFAULT 0", NULL,
                 NULL, NULL);
    if (prep(sp, &sp->upd_fwd,
             "UPDATE spool SET state=5, reason=?1, done_at=?2, updated=?2 WHERE id=?3", err,
             errlen) ||
        prep(sp, &sp->upd_pub, "UPDATE spool SET published=1 WHERE id=?1", err, errlen) ||
        prep(sp, &sp->upd_import,
             "UPDATE spool SET state=?1, res_status=?2, res_payload=?3, res_signer=?4,"
             " res_predicted=?5, res_elapsed=?6, res_detail='', done_at=?7, updated=?7,"
             " reason=?8, payload=x'' WHERE id=?9 AND state=5",
             err, errlen) ||
        prep(sp, &sp->set_origin, "UPDATE spool SET origin=?2 WHERE id=?1 AND origin=''", err,
             errlen)) {
        return SR_ERR_IO;
    }
    if (prep(sp, &sp->ins,
             "INSERT OR IGNORE INTO spool (id, client, handler, payload, iat, deadline, work,"
             " result_bytes, env_flags, place, place_target, data_at, state, created, updated,"
             " reply_to) VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,0,?13,?13,?14)",
             err, errlen) ||
        prep(sp, &sp->upd_state,
             "UPDATE spool SET state=?1, target=?2, wait_until=?3, attempts=attempts+?4,"
             " reason=?5, updated=?6, pinned=?8 WHERE id=?7",
             err, errlen) ||
        prep(sp, &sp->upd_done,
             "UPDATE spool SET state=?1, res_status=?2, res_payload=?3, res_signer=?4,"
             " res_predicted=?5, res_elapsed=?6, res_detail=?7, done_at=?8, updated=?8,"
             " target=?9, reason=?10, payload=x'' WHERE id=?11",
             err, errlen) ||
        prep(sp, &sp->get,
             "SELECT state, target, wait_until, attempts, reason, res_status, res_payload,"
             " res_signer, res_predicted, res_elapsed, res_detail, deadline FROM spool WHERE id=?1",
             err, errlen) ||
        prep(sp, &sp->out_sel,
             "SELECT id, handler, res_status, res_payload, reason FROM spool"
             " WHERE reply_to=?1 AND state>=3 AND delivered=0 ORDER BY done_at LIMIT 64",
             err, errlen) ||
        prep(sp, &sp->out_ack, "UPDATE spool SET delivered=1 WHERE id=?1 AND reply_to=?2", err,
             errlen) ||
        prep(sp, &sp->get_payload,
             "SELECT handler, payload, iat, work, result_bytes, env_flags, place, place_target,"
             " data_at FROM spool WHERE id=?1",
             err, errlen)) {
        return SR_ERR_IO;
    }
    if (recover(sp, err, errlen) != 0) {
        return SR_ERR_IO;
    }
    sr_metrics_describe(g->metrics, "skyroute_spool_items", "gauge",
                        "Async workloads held (not finished).");
    sr_metrics_describe(g->metrics, "skyroute_spool_bytes", "gauge", "Their payload bytes.");
    sr_metrics_describe(g->metrics, "skyroute_spool_finished_total", "counter",
                        "Async workloads finished, by outcome.");
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
    if (sp->commit_ev) {
        event_free(sp->commit_ev);
    }
    if (sp->tick) {
        event_free(sp->tick);
    }
    if (sp->kick_ev) {
        event_free(sp->kick_ev);
    }
    if (sp->flush_ev) {
        event_free(sp->flush_ev);
    }
    sqlite3_finalize(sp->ins);
    sqlite3_finalize(sp->upd_state);
    sqlite3_finalize(sp->upd_done);
    sqlite3_finalize(sp->get);
    sqlite3_finalize(sp->get_payload);
    sqlite3_finalize(sp->out_sel);
    sqlite3_finalize(sp->out_ack);
    sqlite3_finalize(sp->upd_fwd);
    sqlite3_finalize(sp->upd_pub);
    sqlite3_finalize(sp->upd_import);
    sqlite3_finalize(sp->set_origin);
    sqlite3_close(sp->db);
    free(sp);
    g->spool = NULL;
}

/* ---- federation: adopted work, imported results, republication --------------------------- */

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
    int64_t now = sr_now_ms();
    bool ok = exec_sql(sp, "BEGIN IMMEDIATE") == 0;
    sqlite3_stmt *st = sp->ins;
    if (ok) {
        sqlite3_reset(st);
        sqlite3_bind_blob(st, 1, spec->id, SR_ENV_IDBYTES, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, client, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, spec->handler, -1, SQLITE_STATIC);
        sqlite3_bind_blob(st, 4, spec->payload ? (const void *)spec->payload : "",
                          (int)spec->payload_len, SQLITE_STATIC);
        sqlite3_bind_int64(st, 5, spec->iat_ms);
        sqlite3_bind_int64(st, 6, spec->w.deadline_ms);
        sqlite3_bind_double(st, 7, spec->w.work_gop);
        sqlite3_bind_int64(st, 8, spec->w.result_bytes);
        sqlite3_bind_int(st, 9, (int)spec->env_flags);
        sqlite3_bind_int(st, 10, (int)spec->w.place);
        sqlite3_bind_text(st, 11, spec->w.place_target, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 12, spec->w.data_at, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 13, now);
        sqlite3_bind_text(st, 14, "", -1, SQLITE_STATIC);
        ok = sqlite3_step(st) == SQLITE_DONE;
    }
    bool fresh = ok && sqlite3_changes(sp->db) == 1; /* else: delivered before, already here */
    if (ok && fresh) {
        sqlite3_reset(sp->set_origin);
        sqlite3_bind_blob(sp->set_origin, 1, spec->id, SR_ENV_IDBYTES, SQLITE_STATIC);
        sqlite3_bind_text(sp->set_origin, 2, origin, -1, SQLITE_STATIC);
        ok = sqlite3_step(sp->set_origin) == SQLITE_DONE;
    }
    ok = ok && exec_sql(sp, "COMMIT") == 0;
    if (!ok) {
        sr_log(SR_LOG_ERROR, "spool: cannot store work from %s: %s", origin,
               sqlite3_errmsg(sp->db));
        exec_sql(sp, "ROLLBACK");
        return SR_ERR_IO;
    }
    if (fresh) {
        struct item *it = calloc(1, sizeof(*it));
        if (it) {
            memcpy(it->id, spec->id, SR_ENV_IDBYTES);
            snprintf(it->client, sizeof(it->client), "%s", client);
            snprintf(it->origin, sizeof(it->origin), "%s", origin);
            it->deadline_ms = spec->w.deadline_ms;
            it->bytes = spec->payload_len;
            it->sp = sp;
        }
        if (!it || item_add(sp, it) != 0) {
            free(it); /* stored: the next start-up's recovery picks it up */
        }
        gauges(sp);
        kick(sp);
    }
    return 0;
}

int gw_spool_import(struct gw *g, const struct gw_cluster_result *r)
{
    struct gw_spool *sp = g->spool;
    if (!sp) {
        return SR_ERR_NOTFOUND;
    }
    char reason[160];
    snprintf(reason, sizeof(reason), "ran through station %s%s%s", r->station,
             r->status == 200 ? "" : ": ", r->status == 200 ? "" : r->error);
    int64_t now = sr_now_ms();
    sqlite3_stmt *st = sp->upd_import;
    sqlite3_reset(st);
    sqlite3_bind_int(st, 1, r->status == 200 ? SP_DONE : SP_FAILED);
    sqlite3_bind_int(st, 2, r->status);
    sqlite3_bind_blob(st, 3, r->payload ? (const void *)r->payload : "", (int)r->payload_len,
                      SQLITE_STATIC);
    sqlite3_bind_text(st, 4, r->signer ? r->signer : "", -1, SQLITE_STATIC);
    sqlite3_bind_double(st, 5, r->predicted_ms);
    sqlite3_bind_double(st, 6, r->elapsed_ms);
    sqlite3_bind_int64(st, 7, now);
    sqlite3_bind_text(st, 8, reason, -1, SQLITE_TRANSIENT);
    sqlite3_bind_blob(st, 9, r->id, SR_ENV_IDBYTES, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_DONE) {
        sr_log(SR_LOG_ERROR, "spool: cannot store an imported result: %s", sqlite3_errmsg(sp->db));
        return SR_ERR_IO;
    }
    return sqlite3_changes(sp->db) == 1 ? 0 : SR_ERR_NOTFOUND;
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
        if ((it->pinned && strchr(it->target, '@')) || (!it->pinned && it->state == SP_WAITING)) {
            it->wait_until_ms = 0;
        }
    }
    kick(sp);
    republish_results(sp);
}

/* Results of adopted work the bucket has not acknowledged yet, again. */
static void republish_results(struct gw_spool *sp)
{
    sp->republish_at = 0;
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(sp->db,
                           "SELECT id, origin, target, res_status, res_payload, res_signer, reason,"
                           " res_predicted, res_elapsed FROM spool WHERE origin != '' AND"
                           " state IN (3, 4) AND published = 0 LIMIT 10000",
                           -1, &st, NULL) != SQLITE_OK) {
        return;
    }
    size_t n = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        if (sqlite3_column_bytes(st, 0) != SR_ENV_IDBYTES) {
            continue;
        }
        struct gw_cluster_result cr = {
            .id = sqlite3_column_blob(st, 0),
            .target = (const char *)sqlite3_column_text(st, 2),
            .status = sqlite3_column_int(st, 3),
            .payload = sqlite3_column_blob(st, 4),
            .payload_len = (size_t)sqlite3_column_bytes(st, 4),
            .signer = (const char *)sqlite3_column_text(st, 5),
            .error = (const char *)sqlite3_column_text(st, 6),
            .predicted_ms = sqlite3_column_double(st, 7),
            .elapsed_ms = sqlite3_column_double(st, 8),
        };
        publish_result(sp, cr.id, (const char *)sqlite3_column_text(st, 1), &cr);
        n++;
    }
    sqlite3_finalize(st);
    if (n) {
        sr_log(SR_LOG_INFO, "spool: %zu results of adopted work published again", n);
    }
}
