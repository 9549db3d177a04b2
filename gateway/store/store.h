/*
 * store: the gateway's durable state in SQLite (DESIGN section 10):
 * DIR/skyroute.db, in WAL mode with synchronous=FULL, holds operator pass
 * schedules and orbital elements (store.c); DIR/spool.db the spool's rows
 * (spool.c, below). Every write is one transaction, applied
 * whole or not at all; an acknowledged upload is on disk. One connection, one
 * thread (the event loop); calls block on the disk for the duration of a
 * transaction.
 */
#ifndef SR_STORE_H
#define SR_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/common.h"
#include "routing/routing.h"

typedef struct sr_store sr_store;

/* Opens (creating if needed) |dir|/skyroute.db and its tables. On failure
 * returns SR_ERR_IO (message naming the path in |err|) or SR_ERR_NOMEM, and
 * *out is NULL. */
int sr_store_open(sr_store **out, const char *dir, char *err, size_t errlen) SR_WARN_UNUSED;
void sr_store_close(sr_store *st); /* NULL is a no-op */

/* One satellite's share of a schedule upload: the stored passes of |sat| that
 * overlap [from_ms, to_ms) are replaced by |passes| (all for |sat|, aos < los,
 * inside the window). */
struct sr_store_window {
    const char *sat;
    int64_t from_ms, to_ms;
    const struct sr_pass_rec *passes;
    size_t n;
};

/*
 * Applies every window in one transaction, recording |op| (the operator) and
 * |now_ms| as upload time. A window whose passes are exactly what is stored
 * already (same times, elevation, rates, light time and source) is left alone,
 * so re-uploading a schedule changes nothing; *changed (may be NULL) gets the
 * number of windows that changed. The covered spans are kept per satellite as
 * a union ("operator windows", see sr_store_windows()).
 * Returns 0, SR_ERR_INVAL (a pass for another satellite, aos >= los, empty
 * window), SR_ERR_IO (SQLite error; nothing applied) or SR_ERR_NOMEM.
 */
int sr_store_put_passes(sr_store *st, const char *op, int64_t now_ms,
                        const struct sr_store_window *w, size_t nw, size_t *changed) SR_WARN_UNUSED;

/* Stored passes of |sat| (every satellite if NULL) that overlap
 * [from_ms, to_ms), ordered by (sat, aos). *out is malloc'd (NULL when *n is
 * 0) and freed by the caller. 0, SR_ERR_IO or SR_ERR_NOMEM. */
int sr_store_passes(sr_store *st, const char *sat, int64_t from_ms, int64_t to_ms,
                    struct sr_pass_rec **out, size_t *n) SR_WARN_UNUSED;

/* Forgets passes and operator windows that ended before |before_ms| (the
 * gateway calls it hourly with now - 31 days, so the store does not grow
 * without bound). *deleted (may be NULL) gets the number of passes removed.
 * 0, SR_ERR_IO or SR_ERR_NOMEM; on failure nothing is removed. */
int sr_store_prune(sr_store *st, int64_t before_ms, size_t *deleted) SR_WARN_UNUSED;

/* A span covered by operator schedules. */
struct sr_store_span {
    char sat[SR_TARGET_IDMAX];
    int64_t from_ms, to_ms;
};
/* Every operator window of |sat| (all if NULL), ordered by (sat, from).
 * Same ownership and returns as sr_store_passes(). */
int sr_store_windows(sr_store *st, const char *sat, struct sr_store_span **out,
                     size_t *n) SR_WARN_UNUSED;

/* The element set of one satellite as uploaded. */
struct sr_store_elements {
    char sat[SR_TARGET_IDMAX];
    char format[16]; /* "tle", "omm-json", "omm-csv", "omm-xml", "omm-kvn" */
    uint32_t catnum;
    double epoch_ms;
    char *text; /* the uploaded text (may hold other satellites' sets too) */
    size_t len;
    char op[64]; /* who uploaded it */
    int64_t uploaded_ms;
};

/* Stores the element sets of |n| satellites in one transaction, replacing
 * each satellite's previous set. A satellite whose stored text, format and
 * catalogue number are identical is left alone; *changed (may be NULL) counts
 * the others. 0, SR_ERR_INVAL, SR_ERR_IO or SR_ERR_NOMEM. */
int sr_store_put_elements(sr_store *st, const char *op, int64_t now_ms,
                          const struct sr_store_elements *e, size_t n,
                          size_t *changed) SR_WARN_UNUSED;
/* Every stored element set, ordered by satellite. Release with
 * sr_store_elements_free(). 0, SR_ERR_IO or SR_ERR_NOMEM. */
int sr_store_get_elements(sr_store *st, struct sr_store_elements **out, size_t *n) SR_WARN_UNUSED;
void sr_store_elements_free(struct sr_store_elements *e, size_t n);

/* ==== the spool's rows (spool.c) ========================================================= */

/*
 * DIR/spool.db, in WAL mode with synchronous=FULL: one row per asynchronous
 * workload, from its submission until its keep time ends. The spool (the
 * daemon's) decides; this only reads and writes rows. Writes are applied at
 * once unless the caller groups them between sr_spooldb_begin() and
 * sr_spooldb_commit(). Text and blobs handed out point into the database's
 * row and stay valid until the next call on the same sr_spooldb.
 */
typedef struct sr_spooldb sr_spooldb;

#define SR_SPOOL_IDBYTES 16 /* a workload's envelope id */

/* The state of a spooled workload, as stored (the numbers are on disk). */
enum sr_spool_state {
    SR_SPOOL_QUEUED = 0,
    SR_SPOOL_WAITING = 1,    /* for a window the router named */
    SR_SPOOL_DISPATCHED = 2, /* its envelope may have reached its target */
    SR_SPOOL_DONE = 3,
    SR_SPOOL_FAILED = 4,
    SR_SPOOL_FORWARDED = 5, /* published for another station's pass; finished here until that
                               station's result is imported */
};
/* "queued", "waiting", ...; "queued" for a number that is no state. */
const char *sr_spool_state_name(int state);

/* A workload as submitted: stored once, read back each time it is placed. */
struct sr_spool_work {
    uint8_t id[SR_SPOOL_IDBYTES];
    const char *client, *handler;
    const uint8_t *payload;
    size_t payload_len;
    int64_t iat_ms, deadline_ms;
    double work_gop;
    int64_t result_bytes;
    unsigned env_flags; /* which hints the envelope carries */
    int place;          /* sr_place_kind */
    const char *place_target, *data_at;
    const char *reply_to; /* a satellite whose outbox gets the result, or "" */
    const char *origin;   /* the station the work was adopted from, or "" */
};

/* A state change on the way (queued, waiting, dispatched). */
struct sr_spool_progress {
    int state;
    const char *target; /* where it is bound or waits for, or "" */
    int64_t wait_until_ms;
    bool attempt; /* count one more attempt */
    bool pinned;  /* it may have reached |target|: it goes only there */
    const char *reason;
};

/* How a workload finished, or what a status read found. */
struct sr_spool_result {
    int state;  /* SR_SPOOL_DONE or SR_SPOOL_FAILED (status reads: any) */
    int status; /* the HTTP status GET /v1/workloads/ID answers with */
    const uint8_t *payload;
    size_t payload_len;
    const char *signer, *target, *reason;
    const char *detail; /* JSON, or "" */
    double predicted_ms, elapsed_ms;
    /* the target's own signed result envelope (SR1/SR2 bytes) for work
     * adopted from another station, carried to it; NULL otherwise */
    const uint8_t *envelope;
    size_t envelope_len;
};

/* Opens (creating if needed) DIR/spool.db. 0, or SR_ERR_IO / SR_ERR_NOMEM with
 * the reason, naming the path, in |err|; *out is then NULL. */
int sr_spooldb_open(sr_spooldb **out, const char *dir, char *err, size_t errlen) SR_WARN_UNUSED;
void sr_spooldb_close(sr_spooldb *db); /* NULL is a no-op */

/* A transaction: BEGIN IMMEDIATE and COMMIT (0 or SR_ERR_IO; after a failed
 * COMMIT, read sr_spooldb_disk_full() and sr_spooldb_errmsg() if needed, then
 * ROLLBACK); ROLLBACK. */
int sr_spooldb_begin(sr_spooldb *db) SR_WARN_UNUSED;
int sr_spooldb_commit(sr_spooldb *db) SR_WARN_UNUSED;
void sr_spooldb_rollback(sr_spooldb *db);
/* Whether the last failure was the disk (full or failing), and SQLite's words for it. */
bool sr_spooldb_disk_full(sr_spooldb *db);
const char *sr_spooldb_errmsg(sr_spooldb *db);

/* Stores a new workload, queued. A workload whose id is stored already is
 * left as it is, with *fresh false. 0 or SR_ERR_IO. */
int sr_spooldb_insert(sr_spooldb *db, const struct sr_spool_work *w, int64_t now_ms,
                      bool *fresh) SR_WARN_UNUSED;
/* Records a state change. 0 or SR_ERR_IO (logged). */
int sr_spooldb_set_state(sr_spooldb *db, const uint8_t id[SR_SPOOL_IDBYTES],
                         const struct sr_spool_progress *p, int64_t now_ms);
/* Records how a workload finished (done or failed) and lets go of its
 * payload. 0 or SR_ERR_IO (logged). */
int sr_spooldb_finish(sr_spooldb *db, const uint8_t id[SR_SPOOL_IDBYTES],
                      const struct sr_spool_result *r, int64_t now_ms);
/* Records that another station's work queue holds the workload now. 0 or
 * SR_ERR_IO (logged). */
int sr_spooldb_forwarded(sr_spooldb *db, const uint8_t id[SR_SPOOL_IDBYTES], const char *reason,
                         int64_t now_ms);
/* Records that the result of adopted work reached the cluster. 0 or SR_ERR_IO. */
int sr_spooldb_published(sr_spooldb *db, const uint8_t id[SR_SPOOL_IDBYTES]);
/* Stores the result another station published for work forwarded from here:
 * 0, SR_ERR_NOTFOUND (no forwarded workload has that id) or SR_ERR_IO. */
int sr_spooldb_import(sr_spooldb *db, const uint8_t id[SR_SPOOL_IDBYTES],
                      const struct sr_spool_result *r, int64_t now_ms);

/* The stored request of a workload (client, reply_to and origin are "").
 * 0 or SR_ERR_NOTFOUND. */
int sr_spooldb_work(sr_spooldb *db, const uint8_t id[SR_SPOOL_IDBYTES], struct sr_spool_work *w);

struct sr_spool_status {
    int state;
    const char *target;
    int64_t wait_until_ms, deadline_ms;
    int attempts;
    const char *client;       /* who submitted it ("" with an open API) */
    struct sr_spool_result r; /* reason always; the rest once finished */
};
/* What GET /v1/workloads/ID reports. 0 or SR_ERR_NOTFOUND. */
int sr_spooldb_status(sr_spooldb *db, const uint8_t id[SR_SPOOL_IDBYTES],
                      struct sr_spool_status *s);

/* An unfinished workload, as recovered at start-up. */
struct sr_spool_active {
    uint8_t id[SR_SPOOL_IDBYTES];
    const char *client, *target, *origin;
    int64_t deadline_ms, wait_until_ms;
    int state;
    size_t bytes; /* of its payload */
    bool pinned;
};
/* Calls |fn| for every unfinished workload until it returns non-zero, which
 * is returned. No other call on |db| may be made from |fn|. */
typedef int (*sr_spool_active_fn)(void *arg, const struct sr_spool_active *a);
int sr_spooldb_active(sr_spooldb *db, sr_spool_active_fn fn, void *arg);

/* Calls |fn| for each finished result the cluster has not acknowledged (at
 * most 10,000: adopted work's, for the station it came from, and this
 * station's own, for any station to answer for), as sr_spooldb_active()
 * does. */
typedef int (*sr_spool_unpublished_fn)(void *arg, const uint8_t id[SR_SPOOL_IDBYTES],
                                       const char *origin, const struct sr_spool_result *r);
int sr_spooldb_unpublished(sr_spooldb *db, sr_spool_unpublished_fn fn, void *arg);

/* A satellite's outbox: calls |fn| for each finished workload it submitted
 * (reply_to) and has not confirmed yet, oldest first, at most 64, as
 * sr_spooldb_active() does. */
typedef int (*sr_spool_outbox_fn)(void *arg, const uint8_t id[SR_SPOOL_IDBYTES],
                                  const char *handler, const struct sr_spool_result *r);
int sr_spooldb_outbox(sr_spooldb *db, const char *reply_to, sr_spool_outbox_fn fn, void *arg);
/* The satellite |reply_to| has received the result of |id|. 0 or SR_ERR_IO. */
int sr_spooldb_delivered(sr_spooldb *db, const uint8_t id[SR_SPOOL_IDBYTES], const char *reply_to);

/* Forgets workloads that finished before |before_ms|, in a transaction of its
 * own (none may be open). A satellite's uplinked workload (reply_to set)
 * whose deadline, its envelope's exp, is after |now_ms| leaves its id behind
 * until then (sr_spooldb_uplink_spent); ids whose exp has passed are
 * forgotten. 0 or SR_ERR_IO (logged; nothing changed). */
int sr_spooldb_prune(sr_spooldb *db, int64_t before_ms, int64_t now_ms);
/* Sets |*spent| when |id| is an uplinked workload that ran and was pruned
 * while its envelope can still be replayed. 0 or SR_ERR_IO (logged). */
int sr_spooldb_uplink_spent(sr_spooldb *db, const uint8_t id[SR_SPOOL_IDBYTES], bool *spent);

/* ---- signed requests' nonces (operator uploads) ---- */

/* Records that key |keyid| (|keylen| bytes) used |nonce|, remembered until |expires_ms|
 * (after forgetting every nonce expired at |now_ms|). 0; SR_ERR_EXISTS when
 * that key already used that nonce (a replay); SR_ERR_FULL when |max|
 * unexpired nonces are held; SR_ERR_IO or SR_ERR_NOMEM. */
int sr_store_claim_nonce(sr_store *st, const uint8_t *keyid, size_t keylen, const char *nonce,
                         int64_t now_ms, int64_t expires_ms, size_t max) SR_WARN_UNUSED;

#endif /* SR_STORE_H */
