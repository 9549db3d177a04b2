/*
 * The spool's rows: DIR/spool.db, one row per asynchronous workload, from
 * its submission to the end of its keep time (contract in store.h).
 *
 * Why these choices:
 *   - WAL with synchronous=FULL: a submission acknowledged with 202 is on
 *     disk; readers (GET /v1/workloads/ID) never wait for the writer.
 *   - One prepared statement per kind of access, made at open: the
 *     dispatcher writes a state change per workload and turn, and preparing
 *     SQL each time would cost more than the write.
 *   - The caller groups writes in transactions (sr_spooldb_begin/commit):
 *     submissions of one loop turn share one fsync, and so do the state
 *     changes that need no durability of their own.
 *   - Text and blobs come back as pointers into SQLite's row, valid until
 *     the next call: the payload of a workload is never copied to be read.
 *     Every call first resets the statement the previous one left holding a
 *     row (db->held).
 */
#include "gateway/store/store.h"
#include "gateway/net/net.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#define SPOOL_FILE "spool.db"

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
    " pinned INTEGER NOT NULL DEFAULT 0, res_envelope BLOB);"
    "CREATE INDEX IF NOT EXISTS spool_active ON spool(state, deadline);"
    /* ids of a satellite's uplinked work whose rows were pruned before the
     * envelope expired: a replay of it must not run again (sr_spooldb_prune) */
    "CREATE TABLE IF NOT EXISTS uplink_spent (id BLOB PRIMARY KEY, exp INTEGER NOT NULL);";

/* Columns added after the first schema: spools written before them get them
 * (the ALTER fails harmlessly where the column exists). */
static const char *const migrations[] = {
    "ALTER TABLE spool ADD COLUMN pinned INTEGER NOT NULL DEFAULT 0",
    "ALTER TABLE spool ADD COLUMN origin TEXT NOT NULL DEFAULT ''",
    "ALTER TABLE spool ADD COLUMN published INTEGER NOT NULL DEFAULT 0",
    "ALTER TABLE spool ADD COLUMN res_envelope BLOB",
};

enum {
    Q_INSERT,
    Q_STATE,
    Q_FINISH,
    Q_FORWARDED,
    Q_PUBLISHED,
    Q_IMPORT,
    Q_STATUS,
    Q_WORK,
    Q_OUTBOX,
    Q_DELIVERED,
    Q_ACTIVE,
    Q_UNPUBLISHED,
    Q_PRUNE,
    Q_SPEND,
    Q_SPENT_PRUNE,
    Q_SPENT,
    Q_COUNT
};

static const char *const queries[Q_COUNT] = {
    [Q_INSERT] = "INSERT OR IGNORE INTO spool (id, client, handler, payload, iat, deadline, work,"
                 " result_bytes, env_flags, place, place_target, data_at, state, created, updated,"
                 " reply_to, origin)"
                 " VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,0,?13,?13,?14,?15)",
    [Q_STATE] = "UPDATE spool SET state=?1, target=?2, wait_until=?3, attempts=attempts+?4,"
                " reason=?5, updated=?6, pinned=?8 WHERE id=?7",
    [Q_FINISH] = "UPDATE spool SET state=?1, res_status=?2, res_payload=?3, res_signer=?4,"
                 " res_predicted=?5, res_elapsed=?6, res_detail=?7, done_at=?8, updated=?8,"
                 " target=?9, reason=?10, payload=x'', res_envelope=?12 WHERE id=?11",
    [Q_FORWARDED] = "UPDATE spool SET state=5, reason=?1, done_at=?2, updated=?2 WHERE id=?3",
    [Q_PUBLISHED] = "UPDATE spool SET published=1 WHERE id=?1",
    /* as Q_FINISH, numbered alike (bind_result), for a forwarded workload only; the target
     * stays the one it was forwarded for; published: the station that ran it did */
    [Q_IMPORT] = "UPDATE spool SET state=?1, res_status=?2, res_payload=?3, res_signer=?4,"
                 " res_predicted=?5, res_elapsed=?6, res_detail=?7, done_at=?8, updated=?8,"
                 " reason=?10, payload=x'', res_envelope=?12, published=1"
                 " WHERE id=?11 AND state=5",
    [Q_STATUS] = "SELECT state, target, wait_until, attempts, reason, res_status, res_payload,"
                 " res_signer, res_predicted, res_elapsed, res_detail, deadline, client FROM spool"
                 " WHERE id=?1",
    [Q_WORK] = "SELECT handler, payload, iat, work, result_bytes, env_flags, place, place_target,"
               " data_at, deadline FROM spool WHERE id=?1",
    [Q_OUTBOX] = "SELECT id, handler, res_status, res_payload, reason FROM spool"
                 " WHERE reply_to=?1 AND state>=3 AND delivered=0 ORDER BY done_at LIMIT 64",
    [Q_DELIVERED] = "UPDATE spool SET delivered=1 WHERE id=?1 AND reply_to=?2",
    [Q_ACTIVE] = "SELECT id, client, deadline, state, target, wait_until, length(payload), pinned,"
                 " origin FROM spool WHERE state < 3",
    [Q_UNPUBLISHED] = "SELECT id, origin, target, res_status, res_payload, res_signer, reason,"
                      " res_predicted, res_elapsed, res_envelope FROM spool WHERE"
                      " state IN (3, 4) AND published = 0 LIMIT 10000",
    [Q_PRUNE] = "DELETE FROM spool WHERE state >= 3 AND done_at < ?1",
    /* before Q_PRUNE: uplinked work it is about to forget while its envelope
     * (exp, the row's deadline) can still be replayed */
    [Q_SPEND] = "INSERT OR IGNORE INTO uplink_spent (id, exp) SELECT id, deadline FROM spool"
                " WHERE state >= 3 AND done_at < ?1 AND reply_to != '' AND deadline > ?2",
    [Q_SPENT_PRUNE] = "DELETE FROM uplink_spent WHERE exp <= ?1",
    [Q_SPENT] = "SELECT 1 FROM uplink_spent WHERE id=?1",
};

struct sr_spooldb {
    sqlite3 *db;
    sqlite3_stmt *q[Q_COUNT];
    sqlite3_stmt *held; /* stepped to a row the caller may still be reading */
};

static const char *const state_names[] = {"queued", "waiting", "dispatched",
                                          "done",   "failed",  "forwarded"};

const char *sr_spool_state_name(int state)
{
    return state >= SR_SPOOL_QUEUED && state <= SR_SPOOL_FORWARDED ? state_names[state] : "queued";
}

/* Lets go of the row the last call returned. */
static void release(sr_spooldb *db)
{
    if (db->held) {
        sqlite3_reset(db->held);
        db->held = NULL;
    }
}

/* The statement for |q|, reset, after releasing the last row. */
static sqlite3_stmt *stmt(sr_spooldb *db, int q)
{
    release(db);
    sqlite3_stmt *st = db->q[q];
    sqlite3_reset(st);
    return st;
}

/* Steps a statement that writes: 0, or SR_ERR_IO logged with |what|. */
static int write_step(sr_spooldb *db, sqlite3_stmt *st, const char *what)
{
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc != SQLITE_DONE) {
        sr_log(SR_LOG_ERROR, "spool: cannot %s: %s", what, sqlite3_errmsg(db->db));
        return SR_ERR_IO;
    }
    return 0;
}

static const char *col_text(sqlite3_stmt *st, int i)
{
    const char *t = (const char *)sqlite3_column_text(st, i);
    return t ? t : "";
}

static void bind_id(sqlite3_stmt *st, int i, const uint8_t id[SR_SPOOL_IDBYTES])
{
    sqlite3_bind_blob(st, i, id, SR_SPOOL_IDBYTES, SQLITE_STATIC);
}

/* A blob may be empty; SQLite's NULL pointer for one is bound as x''. */
static void bind_blob(sqlite3_stmt *st, int i, const void *p, size_t len)
{
    sqlite3_bind_blob(st, i, p ? p : "", (int)len, SQLITE_STATIC);
}

int sr_spooldb_open(sr_spooldb **out, const char *dir, char *err, size_t errlen)
{
    *out = NULL;
    char path[PATH_MAX + 16];
    snprintf(path, sizeof(path), "%s/%s", dir, SPOOL_FILE);
    sr_spooldb *db = calloc(1, sizeof(*db));
    if (!db) {
        snprintf(err, errlen, "out of memory");
        return SR_ERR_NOMEM;
    }
    if (sqlite3_open_v2(path, &db->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) !=
        SQLITE_OK) {
        snprintf(err, errlen, "spool %s: %s", path,
                 db->db ? sqlite3_errmsg(db->db) : "cannot open");
        goto fail;
    }
    sqlite3_busy_timeout(db->db, 2000);
    if (sqlite3_exec(db->db, schema, NULL, NULL, NULL) != SQLITE_OK) {
        snprintf(err, errlen, "spool %s: %s", path, sqlite3_errmsg(db->db));
        goto fail;
    }
    for (size_t i = 0; i < sizeof(migrations) / sizeof(migrations[0]); i++) {
        sqlite3_exec(db->db, migrations[i], NULL, NULL, NULL);
    }
    for (int q = 0; q < Q_COUNT; q++) {
        if (sqlite3_prepare_v2(db->db, queries[q], -1, &db->q[q], NULL) != SQLITE_OK) {
            snprintf(err, errlen, "spool: %s", sqlite3_errmsg(db->db));
            goto fail;
        }
    }
    *out = db;
    return 0;
fail:
    sr_spooldb_close(db);
    return SR_ERR_IO;
}

void sr_spooldb_close(sr_spooldb *db)
{
    if (!db) {
        return;
    }
    for (int q = 0; q < Q_COUNT; q++) {
        sqlite3_finalize(db->q[q]);
    }
    sqlite3_close(db->db);
    free(db);
}

static int exec(sr_spooldb *db, const char *sql)
{
    release(db); /* no statement may be running at COMMIT */
    return sqlite3_exec(db->db, sql, NULL, NULL, NULL) == SQLITE_OK ? 0 : SR_ERR_IO;
}

int sr_spooldb_begin(sr_spooldb *db)
{
    return exec(db, "BEGIN IMMEDIATE");
}

int sr_spooldb_commit(sr_spooldb *db)
{
    return exec(db, "COMMIT");
}

void sr_spooldb_rollback(sr_spooldb *db)
{
    exec(db, "ROLLBACK");
}

bool sr_spooldb_disk_full(sr_spooldb *db)
{
    int e = sqlite3_errcode(db->db);
    return e == SQLITE_FULL || e == SQLITE_IOERR;
}

const char *sr_spooldb_errmsg(sr_spooldb *db)
{
    return sqlite3_errmsg(db->db);
}

int sr_spooldb_insert(sr_spooldb *db, const struct sr_spool_work *w, int64_t now_ms, bool *fresh)
{
    sqlite3_stmt *st = stmt(db, Q_INSERT);
    bind_id(st, 1, w->id);
    sqlite3_bind_text(st, 2, w->client, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, w->handler, -1, SQLITE_STATIC);
    bind_blob(st, 4, w->payload, w->payload_len);
    sqlite3_bind_int64(st, 5, w->iat_ms);
    sqlite3_bind_int64(st, 6, w->deadline_ms);
    sqlite3_bind_double(st, 7, w->work_gop);
    sqlite3_bind_int64(st, 8, w->result_bytes);
    sqlite3_bind_int(st, 9, (int)w->env_flags);
    sqlite3_bind_int(st, 10, w->place);
    sqlite3_bind_text(st, 11, w->place_target, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 12, w->data_at, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 13, now_ms);
    sqlite3_bind_text(st, 14, w->reply_to, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 15, w->origin, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc != SQLITE_DONE) {
        return SR_ERR_IO; /* the caller rolls back and says why (sr_spooldb_errmsg) */
    }
    *fresh = sqlite3_changes(db->db) == 1;
    return 0;
}

int sr_spooldb_set_state(sr_spooldb *db, const uint8_t id[SR_SPOOL_IDBYTES],
                         const struct sr_spool_progress *p, int64_t now_ms)
{
    sqlite3_stmt *st = stmt(db, Q_STATE);
    sqlite3_bind_int(st, 1, p->state);
    sqlite3_bind_text(st, 2, p->target, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, p->wait_until_ms);
    sqlite3_bind_int(st, 4, p->attempt ? 1 : 0);
    sqlite3_bind_text(st, 5, p->reason ? p->reason : "", -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 6, now_ms);
    bind_id(st, 7, id);
    sqlite3_bind_int(st, 8, p->pinned ? 1 : 0);
    return write_step(db, st, "update a workload");
}

/* Binds how a workload finished to Q_FINISH or Q_IMPORT. */
static void bind_result(sqlite3_stmt *st, const uint8_t id[SR_SPOOL_IDBYTES],
                        const struct sr_spool_result *r, int64_t now_ms)
{
    sqlite3_bind_int(st, 1, r->state);
    sqlite3_bind_int(st, 2, r->status);
    bind_blob(st, 3, r->payload, r->payload_len);
    sqlite3_bind_text(st, 4, r->signer ? r->signer : "", -1, SQLITE_STATIC);
    sqlite3_bind_double(st, 5, r->predicted_ms);
    sqlite3_bind_double(st, 6, r->elapsed_ms);
    sqlite3_bind_text(st, 7, r->detail ? r->detail : "", -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 8, now_ms);
    sqlite3_bind_text(st, 9, r->target ? r->target : "", -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 10, r->reason ? r->reason : "", -1, SQLITE_STATIC);
    bind_id(st, 11, id);
    if (r->envelope) {
        bind_blob(st, 12, r->envelope, r->envelope_len);
    } else {
        sqlite3_bind_null(st, 12);
    }
}

int sr_spooldb_finish(sr_spooldb *db, const uint8_t id[SR_SPOOL_IDBYTES],
                      const struct sr_spool_result *r, int64_t now_ms)
{
    sqlite3_stmt *st = stmt(db, Q_FINISH);
    bind_result(st, id, r, now_ms);
    return write_step(db, st, r->state == SR_SPOOL_DONE ? "store a result" : "record a failure");
}

int sr_spooldb_forwarded(sr_spooldb *db, const uint8_t id[SR_SPOOL_IDBYTES], const char *reason,
                         int64_t now_ms)
{
    sqlite3_stmt *st = stmt(db, Q_FORWARDED);
    sqlite3_bind_text(st, 1, reason, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, now_ms);
    bind_id(st, 3, id);
    return write_step(db, st, "record a forward");
}

int sr_spooldb_published(sr_spooldb *db, const uint8_t id[SR_SPOOL_IDBYTES])
{
    sqlite3_stmt *st = stmt(db, Q_PUBLISHED);
    bind_id(st, 1, id);
    return write_step(db, st, "record a publication");
}

int sr_spooldb_import(sr_spooldb *db, const uint8_t id[SR_SPOOL_IDBYTES],
                      const struct sr_spool_result *r, int64_t now_ms)
{
    sqlite3_stmt *st = stmt(db, Q_IMPORT);
    bind_result(st, id, r, now_ms);
    int rv = write_step(db, st, "store an imported result");
    return rv ? rv : sqlite3_changes(db->db) == 1 ? 0 : SR_ERR_NOTFOUND;
}

int sr_spooldb_work(sr_spooldb *db, const uint8_t id[SR_SPOOL_IDBYTES], struct sr_spool_work *w)
{
    sqlite3_stmt *st = stmt(db, Q_WORK);
    bind_id(st, 1, id);
    if (sqlite3_step(st) != SQLITE_ROW) {
        sqlite3_reset(st);
        return SR_ERR_NOTFOUND;
    }
    db->held = st;
    memset(w, 0, sizeof(*w));
    memcpy(w->id, id, SR_SPOOL_IDBYTES);
    w->handler = col_text(st, 0);
    w->payload = sqlite3_column_blob(st, 1);
    w->payload_len = (size_t)sqlite3_column_bytes(st, 1);
    w->iat_ms = sqlite3_column_int64(st, 2);
    w->work_gop = sqlite3_column_double(st, 3);
    w->result_bytes = sqlite3_column_int64(st, 4);
    w->env_flags = (unsigned)sqlite3_column_int(st, 5);
    w->place = sqlite3_column_int(st, 6);
    w->place_target = col_text(st, 7);
    w->data_at = col_text(st, 8);
    w->deadline_ms = sqlite3_column_int64(st, 9);
    w->client = w->reply_to = w->origin = "";
    return 0;
}

int sr_spooldb_status(sr_spooldb *db, const uint8_t id[SR_SPOOL_IDBYTES], struct sr_spool_status *s)
{
    sqlite3_stmt *st = stmt(db, Q_STATUS);
    bind_id(st, 1, id);
    if (sqlite3_step(st) != SQLITE_ROW) {
        sqlite3_reset(st);
        return SR_ERR_NOTFOUND;
    }
    db->held = st;
    s->state = sqlite3_column_int(st, 0);
    s->target = col_text(st, 1);
    s->wait_until_ms = sqlite3_column_int64(st, 2);
    s->attempts = sqlite3_column_int(st, 3);
    s->r.reason = col_text(st, 4);
    s->r.state = s->state;
    s->r.status = sqlite3_column_int(st, 5);
    s->r.payload = sqlite3_column_blob(st, 6);
    s->r.payload_len = (size_t)sqlite3_column_bytes(st, 6);
    s->r.signer = col_text(st, 7);
    s->r.predicted_ms = sqlite3_column_double(st, 8);
    s->r.elapsed_ms = sqlite3_column_double(st, 9);
    s->r.detail = col_text(st, 10);
    s->r.target = s->target;
    s->deadline_ms = sqlite3_column_int64(st, 11);
    s->client = col_text(st, 12);
    return 0;
}

int sr_spooldb_delivered(sr_spooldb *db, const uint8_t id[SR_SPOOL_IDBYTES], const char *reply_to)
{
    sqlite3_stmt *st = stmt(db, Q_DELIVERED);
    bind_id(st, 1, id);
    sqlite3_bind_text(st, 2, reply_to, -1, SQLITE_STATIC);
    return write_step(db, st, "mark a result delivered");
}

/* Steps |st| through its rows, skipping any whose id (column 0) is not an
 * id, and hands each to |row| until it returns non-zero, which is returned. */
static int each_row(sqlite3_stmt *st, int (*row)(sqlite3_stmt *st, void *ctx), void *ctx)
{
    int rv = 0;
    while (rv == 0 && sqlite3_step(st) == SQLITE_ROW) {
        if (sqlite3_column_bytes(st, 0) == SR_SPOOL_IDBYTES) {
            rv = row(st, ctx);
        }
    }
    sqlite3_reset(st);
    return rv;
}

struct each_ctx {
    union {
        sr_spool_outbox_fn outbox;
        sr_spool_active_fn active;
        sr_spool_unpublished_fn unpublished;
    } fn;
    void *arg;
};

static int outbox_row(sqlite3_stmt *st, void *ctx)
{
    const struct each_ctx *c = ctx;
    struct sr_spool_result r = {.status = sqlite3_column_int(st, 2),
                                .payload = sqlite3_column_blob(st, 3),
                                .payload_len = (size_t)sqlite3_column_bytes(st, 3),
                                .reason = col_text(st, 4)};
    return c->fn.outbox(c->arg, sqlite3_column_blob(st, 0), col_text(st, 1), &r);
}

int sr_spooldb_outbox(sr_spooldb *db, const char *reply_to, sr_spool_outbox_fn fn, void *arg)
{
    sqlite3_stmt *st = stmt(db, Q_OUTBOX);
    sqlite3_bind_text(st, 1, reply_to, -1, SQLITE_STATIC);
    struct each_ctx c = {.fn.outbox = fn, .arg = arg};
    return each_row(st, outbox_row, &c);
}

static int active_row(sqlite3_stmt *st, void *ctx)
{
    const struct each_ctx *c = ctx;
    struct sr_spool_active a = {.client = col_text(st, 1),
                                .deadline_ms = sqlite3_column_int64(st, 2),
                                .state = sqlite3_column_int(st, 3),
                                .target = col_text(st, 4),
                                .wait_until_ms = sqlite3_column_int64(st, 5),
                                .bytes = (size_t)sqlite3_column_int64(st, 6),
                                .pinned = sqlite3_column_int(st, 7) != 0,
                                .origin = col_text(st, 8)};
    memcpy(a.id, sqlite3_column_blob(st, 0), SR_SPOOL_IDBYTES);
    return c->fn.active(c->arg, &a);
}

int sr_spooldb_active(sr_spooldb *db, sr_spool_active_fn fn, void *arg)
{
    struct each_ctx c = {.fn.active = fn, .arg = arg};
    return each_row(stmt(db, Q_ACTIVE), active_row, &c);
}

static int unpublished_row(sqlite3_stmt *st, void *ctx)
{
    const struct each_ctx *c = ctx;
    struct sr_spool_result r = {.target = col_text(st, 2),
                                .status = sqlite3_column_int(st, 3),
                                .payload = sqlite3_column_blob(st, 4),
                                .payload_len = (size_t)sqlite3_column_bytes(st, 4),
                                .signer = col_text(st, 5),
                                .reason = col_text(st, 6),
                                .predicted_ms = sqlite3_column_double(st, 7),
                                .elapsed_ms = sqlite3_column_double(st, 8),
                                .envelope = sqlite3_column_blob(st, 9),
                                .envelope_len = (size_t)sqlite3_column_bytes(st, 9)};
    return c->fn.unpublished(c->arg, sqlite3_column_blob(st, 0), col_text(st, 1), &r);
}

int sr_spooldb_unpublished(sr_spooldb *db, sr_spool_unpublished_fn fn, void *arg)
{
    struct each_ctx c = {.fn.unpublished = fn, .arg = arg};
    return each_row(stmt(db, Q_UNPUBLISHED), unpublished_row, &c);
}

/*
 * A satellite's uplinked work is kept from running twice by its spool row
 * (a second insert of the id is ignored) until the row is pruned, and its
 * envelope's exp is the satellite's to choose: it may outlive keep_results_s.
 * So the ids of rows pruned before their exp move to uplink_spent, in the
 * same transaction, and stay there until exp; after that the envelope itself
 * is refused as expired. This bounds nothing the satellite can ask for (a
 * far exp costs 24 bytes a workload, not its payload or result) and needs no
 * cap on exp that a long gap between contacts would run into.
 */
int sr_spooldb_prune(sr_spooldb *db, int64_t before_ms, int64_t now_ms)
{
    int rv = sr_spooldb_begin(db);
    if (rv != 0) {
        sr_log(SR_LOG_ERROR, "spool: cannot prune: %s", sqlite3_errmsg(db->db));
        return rv;
    }
    sqlite3_stmt *st = stmt(db, Q_SPEND);
    sqlite3_bind_int64(st, 1, before_ms);
    sqlite3_bind_int64(st, 2, now_ms);
    rv = write_step(db, st, "remember pruned uplinks");
    if (rv == 0) {
        st = stmt(db, Q_PRUNE);
        sqlite3_bind_int64(st, 1, before_ms);
        rv = write_step(db, st, "prune finished workloads");
    }
    if (rv == 0) {
        st = stmt(db, Q_SPENT_PRUNE);
        sqlite3_bind_int64(st, 1, now_ms);
        rv = write_step(db, st, "forget expired uplinks");
    }
    if (rv == 0 && (rv = sr_spooldb_commit(db)) != 0) {
        sr_log(SR_LOG_ERROR, "spool: cannot prune: %s", sqlite3_errmsg(db->db));
    }
    if (rv != 0) {
        sr_spooldb_rollback(db);
    }
    return rv;
}

int sr_spooldb_uplink_spent(sr_spooldb *db, const uint8_t id[SR_SPOOL_IDBYTES], bool *spent)
{
    sqlite3_stmt *st = stmt(db, Q_SPENT);
    bind_id(st, 1, id);
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        sr_log(SR_LOG_ERROR, "spool: cannot read spent uplinks: %s", sqlite3_errmsg(db->db));
        return SR_ERR_IO;
    }
    *spent = rc == SQLITE_ROW;
    return 0;
}
