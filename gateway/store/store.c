/*
 * The embedded store: one SQLite database in the state directory (contract in
 * store.h).
 *
 * Why these choices:
 *   - WAL with synchronous=FULL: readers never block the writer, and a
 *     transaction that returned is on disk (an operator's "200" means stored).
 *   - BEGIN IMMEDIATE for every write: the write lock is taken up front, so a
 *     transaction never fails half-way for lack of it; any error rolls back.
 *   - Passes keyed by (sat, aos): replacing a window deletes what overlaps it
 *     and inserts the new set, exactly like sr_router_set_passes(), so the
 *     store and the router agree after every upload and after a restart.
 *   - NaN elevations are stored as NULL (SQLite turns NaN into NULL anyway).
 */
#include "gateway/store/store.h"
#include "gateway/net/net.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <sqlite3.h>

#define STORE_FILE "skyroute.db"
#define SCHEMA_VERSION 1
#define BUSY_TIMEOUT_MS 5000

struct sr_store {
    sqlite3 *db;
};

static const char schema[] =
    "CREATE TABLE IF NOT EXISTS passes ("
    " sat TEXT NOT NULL, aos INTEGER NOT NULL, los INTEGER NOT NULL, tca INTEGER NOT NULL,"
    " max_el REAL, uplink REAL NOT NULL, downlink REAL NOT NULL, light REAL NOT NULL,"
    " source TEXT NOT NULL, operator TEXT NOT NULL, uploaded INTEGER NOT NULL,"
    " PRIMARY KEY (sat, aos));"
    "CREATE INDEX IF NOT EXISTS passes_los ON passes (sat, los);"
    "CREATE TABLE IF NOT EXISTS windows ("
    " sat TEXT NOT NULL, from_ms INTEGER NOT NULL, to_ms INTEGER NOT NULL,"
    " operator TEXT NOT NULL, uploaded INTEGER NOT NULL);"
    "CREATE INDEX IF NOT EXISTS windows_sat ON windows (sat, from_ms);"
    "CREATE TABLE IF NOT EXISTS elements ("
    " sat TEXT PRIMARY KEY, catnum INTEGER NOT NULL, format TEXT NOT NULL, epoch_ms REAL NOT NULL,"
    " text BLOB NOT NULL, operator TEXT NOT NULL, uploaded INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS signed_nonces ("
    " keyid BLOB NOT NULL, nonce TEXT NOT NULL, expires INTEGER NOT NULL,"
    " PRIMARY KEY (keyid, nonce)) WITHOUT ROWID;"
    "CREATE INDEX IF NOT EXISTS signed_nonces_expires ON signed_nonces (expires);";

static int exec(sr_store *st, const char *sql)
{
    char *msg = NULL;
    int rc = sqlite3_exec(st->db, sql, NULL, NULL, &msg);
    if (rc != SQLITE_OK) {
        sr_log(SR_LOG_ERROR, "store: %s: %s", sql, msg ? msg : sqlite3_errstr(rc));
        sqlite3_free(msg);
        return rc == SQLITE_NOMEM ? SR_ERR_NOMEM : SR_ERR_IO;
    }
    return 0;
}

static int sql_err(sr_store *st, int rc, const char *what)
{
    sr_log(SR_LOG_ERROR, "store: %s: %s", what, sqlite3_errmsg(st->db));
    return rc == SQLITE_NOMEM ? SR_ERR_NOMEM : SR_ERR_IO;
}

static int prepare(sr_store *st, sqlite3_stmt **s, const char *sql)
{
    int rc = sqlite3_prepare_v2(st->db, sql, -1, s, NULL);
    return rc == SQLITE_OK ? 0 : sql_err(st, rc, sql);
}

int sr_store_open(sr_store **out, const char *dir, char *err, size_t errlen)
{
    *out = NULL;
    char path[PATH_MAX];
    if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, STORE_FILE) >= sizeof(path)) {
        snprintf(err, errlen, "state_dir %s: path too long", dir);
        return SR_ERR_IO;
    }
    if (mkdir(dir, 0750) != 0 && errno != EEXIST) {
        snprintf(err, errlen, "state_dir %s: %s", dir, strerror(errno));
        return SR_ERR_IO;
    }
    sr_store *st = calloc(1, sizeof(*st));
    if (!st) {
        snprintf(err, errlen, "out of memory");
        return SR_ERR_NOMEM;
    }
    int rc = sqlite3_open_v2(
        path, &st->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        snprintf(err, errlen, "%s: %s", path, st->db ? sqlite3_errmsg(st->db) : sqlite3_errstr(rc));
        goto fail;
    }
    sqlite3_busy_timeout(st->db, BUSY_TIMEOUT_MS);
    sqlite3_stmt *s = NULL;
    rc = sqlite3_prepare_v2(st->db, "PRAGMA journal_mode=WAL", -1, &s, NULL);
    if (rc == SQLITE_OK && sqlite3_step(s) == SQLITE_ROW) {
        const char *mode = (const char *)sqlite3_column_text(s, 0);
        if (!mode || strcmp(mode, "wal") != 0) {
            rc = SQLITE_ERROR;
        }
    } else {
        rc = SQLITE_ERROR;
    }
    sqlite3_finalize(s);
    if (rc != SQLITE_OK) {
        snprintf(err, errlen, "%s: cannot enable WAL mode: %s", path, sqlite3_errmsg(st->db));
        goto fail;
    }
    char *msg = NULL;
    rc = sqlite3_exec(st->db, "PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;", NULL, NULL, &msg);
    if (rc == SQLITE_OK) {
        rc = sqlite3_exec(st->db, schema, NULL, NULL, &msg);
    }
    if (rc == SQLITE_OK) {
        char v[64];
        snprintf(v, sizeof(v), "PRAGMA user_version=%d", SCHEMA_VERSION);
        rc = sqlite3_exec(st->db, v, NULL, NULL, &msg);
    }
    if (rc != SQLITE_OK) {
        snprintf(err, errlen, "%s: %s", path, msg ? msg : sqlite3_errstr(rc));
        sqlite3_free(msg);
        goto fail;
    }
    *out = st;
    return 0;
fail:
    sqlite3_close(st->db);
    free(st);
    return rc == SQLITE_NOMEM ? SR_ERR_NOMEM : SR_ERR_IO;
}

void sr_store_close(sr_store *st)
{
    if (st) {
        sqlite3_close(st->db);
        free(st);
    }
}

/* ---- passes ------------------------------------------------------------------------ */

static void row_to_pass(sqlite3_stmt *s, struct sr_pass_rec *p)
{
    memset(p, 0, sizeof(*p));
    snprintf(p->sat, sizeof(p->sat), "%s", (const char *)sqlite3_column_text(s, 0));
    p->aos_ms = sqlite3_column_int64(s, 1);
    p->los_ms = sqlite3_column_int64(s, 2);
    p->tca_ms = sqlite3_column_int64(s, 3);
    p->max_el_deg = sqlite3_column_type(s, 4) == SQLITE_NULL ? NAN : sqlite3_column_double(s, 4);
    p->uplink_bps = sqlite3_column_double(s, 5);
    p->downlink_bps = sqlite3_column_double(s, 6);
    p->light_ms = sqlite3_column_double(s, 7);
    const unsigned char *src = sqlite3_column_text(s, 8);
    snprintf(p->source, sizeof(p->source), "%s", src ? (const char *)src : "");
}

#define PASS_COLS "sat, aos, los, tca, max_el, uplink, downlink, light, source"

static bool same_pass(const struct sr_pass_rec *a, const struct sr_pass_rec *b)
{
    bool el = (isnan(a->max_el_deg) && isnan(b->max_el_deg)) || a->max_el_deg == b->max_el_deg;
    return !strcmp(a->sat, b->sat) && a->aos_ms == b->aos_ms && a->los_ms == b->los_ms &&
           a->tca_ms == b->tca_ms && el && a->uplink_bps == b->uplink_bps &&
           a->downlink_bps == b->downlink_bps && a->light_ms == b->light_ms &&
           !strcmp(a->source, b->source);
}

static int query_passes(sr_store *st, const char *sat, int64_t from, int64_t to,
                        struct sr_pass_rec **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    sqlite3_stmt *s;
    int rv = prepare(st, &s,
                     sat ? "SELECT " PASS_COLS " FROM passes WHERE sat = ?1 AND los > ?2 AND aos < "
                           "?3 ORDER BY sat, aos"
                         : "SELECT " PASS_COLS " FROM passes WHERE los > ?2 AND aos < ?3 "
                           "ORDER BY sat, aos");
    if (rv) {
        return rv;
    }
    if (sat) {
        sqlite3_bind_text(s, 1, sat, -1, SQLITE_STATIC);
    }
    sqlite3_bind_int64(s, 2, from);
    sqlite3_bind_int64(s, 3, to);
    size_t cap = 0;
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        if (*n == cap) {
            size_t ncap = cap ? cap * 2 : 16;
            struct sr_pass_rec *np = realloc(*out, ncap * sizeof(*np));
            if (!np) {
                rc = SQLITE_NOMEM;
                break;
            }
            *out = np;
            cap = ncap;
        }
        row_to_pass(s, &(*out)[(*n)++]);
    }
    if (rc != SQLITE_DONE) {
        rv = rc == SQLITE_NOMEM ? SR_ERR_NOMEM : sql_err(st, rc, "select passes");
        free(*out);
        *out = NULL;
        *n = 0;
    }
    sqlite3_finalize(s);
    return rv;
}

int sr_store_passes(sr_store *st, const char *sat, int64_t from_ms, int64_t to_ms,
                    struct sr_pass_rec **out, size_t *n)
{
    return query_passes(st, sat, from_ms, to_ms, out, n);
}

/* Is the stored content of the window exactly |w|? */
static int window_unchanged(sr_store *st, const struct sr_store_window *w, bool *same)
{
    struct sr_pass_rec *old;
    size_t nold;
    int rv = query_passes(st, w->sat, w->from_ms, w->to_ms, &old, &nold);
    if (rv) {
        return rv;
    }
    *same = nold == w->n;
    for (size_t i = 0; *same && i < nold; i++) {
        *same = same_pass(&old[i], &w->passes[i]);
    }
    free(old);
    return 0;
}

static int step_done(sr_store *st, sqlite3_stmt *s, const char *what)
{
    int rc = sqlite3_step(s);
    sqlite3_reset(s);
    return rc == SQLITE_DONE ? 0 : sql_err(st, rc, what);
}

/* Merges [from, to) into the satellite's operator windows (kept as a union). */
static int merge_window(sr_store *st, const struct sr_store_window *w, const char *op,
                        int64_t now_ms)
{
    sqlite3_stmt *s;
    int rv = prepare(st, &s,
                     "SELECT min(from_ms), max(to_ms) FROM windows WHERE sat = ?1 AND to_ms >= ?2 "
                     "AND from_ms <= ?3");
    if (rv) {
        return rv;
    }
    sqlite3_bind_text(s, 1, w->sat, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 2, w->from_ms);
    sqlite3_bind_int64(s, 3, w->to_ms);
    int64_t from = w->from_ms, to = w->to_ms;
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW && sqlite3_column_type(s, 0) != SQLITE_NULL) {
        int64_t a = sqlite3_column_int64(s, 0), b = sqlite3_column_int64(s, 1);
        from = a < from ? a : from;
        to = b > to ? b : to;
    } else if (rc != SQLITE_ROW) {
        rv = sql_err(st, rc, "select windows");
    }
    sqlite3_finalize(s);
    if (rv) {
        return rv;
    }
    rv = prepare(st, &s, "DELETE FROM windows WHERE sat = ?1 AND to_ms >= ?2 AND from_ms <= ?3");
    if (rv) {
        return rv;
    }
    sqlite3_bind_text(s, 1, w->sat, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 2, from);
    sqlite3_bind_int64(s, 3, to);
    rv = step_done(st, s, "delete windows");
    sqlite3_finalize(s);
    if (rv) {
        return rv;
    }
    rv = prepare(st, &s, "INSERT INTO windows VALUES (?1, ?2, ?3, ?4, ?5)");
    if (rv) {
        return rv;
    }
    sqlite3_bind_text(s, 1, w->sat, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 2, from);
    sqlite3_bind_int64(s, 3, to);
    sqlite3_bind_text(s, 4, op, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 5, now_ms);
    rv = step_done(st, s, "insert window");
    sqlite3_finalize(s);
    return rv;
}

static int replace_window(sr_store *st, const struct sr_store_window *w, const char *op,
                          int64_t now_ms)
{
    sqlite3_stmt *del, *ins;
    int rv = prepare(st, &del, "DELETE FROM passes WHERE sat = ?1 AND los > ?2 AND aos < ?3");
    if (rv) {
        return rv;
    }
    sqlite3_bind_text(del, 1, w->sat, -1, SQLITE_STATIC);
    sqlite3_bind_int64(del, 2, w->from_ms);
    sqlite3_bind_int64(del, 3, w->to_ms);
    rv = step_done(st, del, "delete passes");
    sqlite3_finalize(del);
    if (rv) {
        return rv;
    }
    rv = prepare(st, &ins,
                 "INSERT OR REPLACE INTO passes VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, "
                 "?11)");
    if (rv) {
        return rv;
    }
    for (size_t i = 0; i < w->n && rv == 0; i++) {
        const struct sr_pass_rec *p = &w->passes[i];
        sqlite3_bind_text(ins, 1, w->sat, -1, SQLITE_STATIC);
        sqlite3_bind_int64(ins, 2, p->aos_ms);
        sqlite3_bind_int64(ins, 3, p->los_ms);
        sqlite3_bind_int64(ins, 4, p->tca_ms);
        if (isfinite(p->max_el_deg)) {
            sqlite3_bind_double(ins, 5, p->max_el_deg);
        } else {
            sqlite3_bind_null(ins, 5);
        }
        sqlite3_bind_double(ins, 6, p->uplink_bps);
        sqlite3_bind_double(ins, 7, p->downlink_bps);
        sqlite3_bind_double(ins, 8, p->light_ms);
        sqlite3_bind_text(ins, 9, p->source, -1, SQLITE_STATIC);
        sqlite3_bind_text(ins, 10, op, -1, SQLITE_STATIC);
        sqlite3_bind_int64(ins, 11, now_ms);
        rv = step_done(st, ins, "insert pass");
    }
    sqlite3_finalize(ins);
    return rv ? rv : merge_window(st, w, op, now_ms);
}

static int begin(sr_store *st)
{
    return exec(st, "BEGIN IMMEDIATE");
}

static int end(sr_store *st, int rv)
{
    if (rv == 0) {
        rv = exec(st, "COMMIT");
    }
    if (rv != 0 && !sqlite3_get_autocommit(st->db)) {
        (void)exec(st, "ROLLBACK");
    }
    return rv;
}

int sr_store_put_passes(sr_store *st, const char *op, int64_t now_ms,
                        const struct sr_store_window *w, size_t nw, size_t *changed)
{
    if (changed) {
        *changed = 0;
    }
    if (!st || !op || (!w && nw)) {
        return SR_ERR_INVAL;
    }
    for (size_t i = 0; i < nw; i++) {
        if (!w[i].sat || !*w[i].sat || w[i].from_ms >= w[i].to_ms || (!w[i].passes && w[i].n)) {
            return SR_ERR_INVAL;
        }
        for (size_t k = 0; k < w[i].n; k++) {
            const struct sr_pass_rec *p = &w[i].passes[k];
            if (strcmp(p->sat, w[i].sat) != 0 || p->aos_ms >= p->los_ms) {
                return SR_ERR_INVAL;
            }
        }
    }
    int rv = begin(st);
    if (rv) {
        return rv;
    }
    size_t nchanged = 0;
    for (size_t i = 0; i < nw && rv == 0; i++) {
        bool same = false;
        rv = window_unchanged(st, &w[i], &same);
        if (rv == 0 && !same) {
            rv = replace_window(st, &w[i], op, now_ms);
            nchanged++;
        }
    }
    rv = end(st, rv);
    if (rv == 0 && changed) {
        *changed = nchanged;
    }
    return rv;
}

int sr_store_prune(sr_store *st, int64_t before_ms, size_t *deleted)
{
    if (deleted) {
        *deleted = 0;
    }
    int rv = begin(st);
    if (rv) {
        return rv;
    }
    sqlite3_stmt *s;
    rv = prepare(st, &s, "DELETE FROM passes WHERE los < ?1");
    if (rv == 0) {
        sqlite3_bind_int64(s, 1, before_ms);
        rv = step_done(st, s, "prune passes");
        sqlite3_finalize(s);
    }
    size_t n = rv == 0 ? (size_t)sqlite3_changes(st->db) : 0;
    if (rv == 0) {
        rv = prepare(st, &s, "DELETE FROM windows WHERE to_ms < ?1");
    }
    if (rv == 0) {
        sqlite3_bind_int64(s, 1, before_ms);
        rv = step_done(st, s, "prune windows");
        sqlite3_finalize(s);
    }
    rv = end(st, rv);
    if (rv == 0 && deleted) {
        *deleted = n;
    }
    return rv;
}

int sr_store_windows(sr_store *st, const char *sat, struct sr_store_span **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    sqlite3_stmt *s;
    int rv = prepare(st, &s,
                     sat ? "SELECT sat, from_ms, to_ms FROM windows WHERE sat = ?1 "
                           "ORDER BY sat, from_ms"
                         : "SELECT sat, from_ms, to_ms FROM windows ORDER BY sat, from_ms");
    if (rv) {
        return rv;
    }
    if (sat) {
        sqlite3_bind_text(s, 1, sat, -1, SQLITE_STATIC);
    }
    size_t cap = 0;
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        if (*n == cap) {
            size_t ncap = cap ? cap * 2 : 16;
            struct sr_store_span *np = realloc(*out, ncap * sizeof(*np));
            if (!np) {
                rc = SQLITE_NOMEM;
                break;
            }
            *out = np;
            cap = ncap;
        }
        struct sr_store_span *sp = &(*out)[(*n)++];
        snprintf(sp->sat, sizeof(sp->sat), "%s", (const char *)sqlite3_column_text(s, 0));
        sp->from_ms = sqlite3_column_int64(s, 1);
        sp->to_ms = sqlite3_column_int64(s, 2);
    }
    if (rc != SQLITE_DONE) {
        rv = rc == SQLITE_NOMEM ? SR_ERR_NOMEM : sql_err(st, rc, "select windows");
        free(*out);
        *out = NULL;
        *n = 0;
    }
    sqlite3_finalize(s);
    return rv;
}

/* ---- elements ----------------------------------------------------------------------- */

int sr_store_put_elements(sr_store *st, const char *op, int64_t now_ms,
                          const struct sr_store_elements *e, size_t n, size_t *changed)
{
    if (changed) {
        *changed = 0;
    }
    if (!st || !op || (!e && n)) {
        return SR_ERR_INVAL;
    }
    for (size_t i = 0; i < n; i++) {
        if (!e[i].sat[0] || !e[i].text || !e[i].format[0]) {
            return SR_ERR_INVAL;
        }
    }
    int rv = begin(st);
    if (rv) {
        return rv;
    }
    sqlite3_stmt *sel = NULL, *ins = NULL;
    rv = prepare(st, &sel,
                 "SELECT 1 FROM elements WHERE sat = ?1 AND catnum = ?2 AND format = ?3 AND "
                 "text = ?4");
    rv = rv ? rv
            : prepare(st, &ins,
                      "INSERT OR REPLACE INTO elements VALUES (?1, ?2, ?3, ?4, ?5, "
                      "?6, ?7)");
    size_t nchanged = 0;
    for (size_t i = 0; i < n && rv == 0; i++) {
        sqlite3_bind_text(sel, 1, e[i].sat, -1, SQLITE_STATIC);
        sqlite3_bind_int64(sel, 2, e[i].catnum);
        sqlite3_bind_text(sel, 3, e[i].format, -1, SQLITE_STATIC);
        sqlite3_bind_blob64(sel, 4, e[i].text, e[i].len, SQLITE_STATIC);
        int rc = sqlite3_step(sel);
        sqlite3_reset(sel);
        if (rc == SQLITE_ROW) {
            continue; /* identical: idempotent */
        }
        if (rc != SQLITE_DONE) {
            rv = sql_err(st, rc, "select elements");
            break;
        }
        sqlite3_bind_text(ins, 1, e[i].sat, -1, SQLITE_STATIC);
        sqlite3_bind_int64(ins, 2, e[i].catnum);
        sqlite3_bind_text(ins, 3, e[i].format, -1, SQLITE_STATIC);
        sqlite3_bind_double(ins, 4, e[i].epoch_ms);
        sqlite3_bind_blob64(ins, 5, e[i].text, e[i].len, SQLITE_STATIC);
        sqlite3_bind_text(ins, 6, op, -1, SQLITE_STATIC);
        sqlite3_bind_int64(ins, 7, now_ms);
        rv = step_done(st, ins, "insert elements");
        nchanged++;
    }
    sqlite3_finalize(sel);
    sqlite3_finalize(ins);
    rv = end(st, rv);
    if (rv == 0 && changed) {
        *changed = nchanged;
    }
    return rv;
}

void sr_store_elements_free(struct sr_store_elements *e, size_t n)
{
    if (e) {
        for (size_t i = 0; i < n; i++) {
            free(e[i].text);
        }
        free(e);
    }
}

int sr_store_get_elements(sr_store *st, struct sr_store_elements **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    sqlite3_stmt *s;
    int rv = prepare(st, &s,
                     "SELECT sat, catnum, format, epoch_ms, text, operator, uploaded FROM elements "
                     "ORDER BY sat");
    if (rv) {
        return rv;
    }
    size_t cap = 0;
    int rc;
    struct sr_store_elements *arr = NULL;
    size_t k = 0;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        if (k == cap) {
            size_t ncap = cap ? cap * 2 : 8;
            struct sr_store_elements *np = realloc(arr, ncap * sizeof(*np));
            if (!np) {
                rc = SQLITE_NOMEM;
                break;
            }
            arr = np;
            cap = ncap;
        }
        struct sr_store_elements *e = &arr[k];
        memset(e, 0, sizeof(*e));
        snprintf(e->sat, sizeof(e->sat), "%s", (const char *)sqlite3_column_text(s, 0));
        e->catnum = (uint32_t)sqlite3_column_int64(s, 1);
        snprintf(e->format, sizeof(e->format), "%s", (const char *)sqlite3_column_text(s, 2));
        e->epoch_ms = sqlite3_column_double(s, 3);
        const void *blob = sqlite3_column_blob(s, 4);
        int len = sqlite3_column_bytes(s, 4);
        e->text = malloc((size_t)len + 1);
        if (!e->text) {
            rc = SQLITE_NOMEM;
            break;
        }
        if (len > 0) {
            memcpy(e->text, blob, (size_t)len);
        }
        e->text[len] = '\0';
        e->len = (size_t)len;
        snprintf(e->op, sizeof(e->op), "%s", (const char *)sqlite3_column_text(s, 5));
        e->uploaded_ms = sqlite3_column_int64(s, 6);
        k++;
    }
    if (rc != SQLITE_DONE) {
        rv = rc == SQLITE_NOMEM ? SR_ERR_NOMEM : sql_err(st, rc, "select elements");
        sr_store_elements_free(arr, k);
    } else {
        *out = arr;
        *n = k;
    }
    sqlite3_finalize(s);
    return rv;
}

/* ---- signed requests' nonces -------------------------------------------------------- */

/* Durable so that a restart inside the signature window does not reopen it:
 * the nonces of the last window are a few rows, pruned on every claim. */
int sr_store_claim_nonce(sr_store *st, const uint8_t *keyid, size_t keylen, const char *nonce,
                         int64_t now_ms, int64_t expires_ms, size_t max)
{
    sqlite3_stmt *s = NULL;
    int rv = prepare(st, &s, "DELETE FROM signed_nonces WHERE expires <= ?");
    if (rv) {
        return rv;
    }
    sqlite3_bind_int64(s, 1, now_ms);
    int rc = sqlite3_step(s);
    sqlite3_finalize(s);
    if (rc != SQLITE_DONE) {
        return sql_err(st, rc, "prune nonces");
    }
    if ((rv = prepare(st, &s, "SELECT count(*) FROM signed_nonces")) != 0) {
        return rv;
    }
    rc = sqlite3_step(s);
    int64_t held = rc == SQLITE_ROW ? sqlite3_column_int64(s, 0) : -1;
    sqlite3_finalize(s);
    if (held < 0) {
        return sql_err(st, rc, "count nonces");
    }
    if ((rv = prepare(st, &s,
                      "INSERT INTO signed_nonces (keyid, nonce, expires) VALUES (?,?,?)")) != 0) {
        return rv;
    }
    sqlite3_bind_blob(s, 1, keyid, (int)keylen, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, nonce, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 3, expires_ms);
    /* at the ceiling every claim is refused, a replay among them */
    rc = (size_t)held >= max ? SQLITE_FULL : sqlite3_step(s);
    int ext = sqlite3_extended_errcode(st->db);
    sqlite3_finalize(s);
    if (rc == SQLITE_DONE) {
        return 0;
    }
    if (rc == SQLITE_CONSTRAINT && ext == SQLITE_CONSTRAINT_PRIMARYKEY) {
        return SR_ERR_EXISTS;
    }
    if (rc == SQLITE_FULL) {
        return SR_ERR_FULL;
    }
    return sql_err(st, rc, "claim nonce");
}
