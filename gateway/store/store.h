/*
 * store: the gateway's durable state in one SQLite database, DIR/skyroute.db,
 * in WAL mode with synchronous=FULL (DESIGN section 10): operator pass
 * schedules and orbital elements. Every write is one transaction, applied
 * whole or not at all; an acknowledged upload is on disk. One connection, one
 * thread (the event loop); calls block on the disk for the duration of a
 * transaction.
 */
#ifndef SR_STORE_H
#define SR_STORE_H

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

#endif /* SR_STORE_H */
