/*
 * routing: pure decision logic (DESIGN section 9). No I/O, never reads the
 * clock: every function that depends on time takes |now_ms| (ms since the
 * Unix epoch, UTC).
 *
 * This first router ranks configured targets by a predicted completion time
 * built from observed latency (peak-EWMA, as in Finagle and Linkerd) plus the
 * compute time the workload needs, and ejects targets after repeated
 * failures. The full handover- and energy-aware policy replaces the ranking
 * behind this same interface.
 */
#ifndef SR_ROUTING_H
#define SR_ROUTING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/common.h"

typedef enum {
    SR_TARGET_IDC = 1,
    SR_TARGET_SATELLITE = 2,
} sr_target_kind;

#define SR_TARGET_IDMAX 64

struct sr_target_info {
    char id[SR_TARGET_IDMAX];
    sr_target_kind kind;
    double prior_rtt_ms; /* round trip before any observation (> 0) */
    double gops;         /* compute rate, giga-operations per second (> 0) */
    double uplink_bps;   /* bytes/s towards the target; 0 = unlimited */
    double downlink_bps; /* bytes/s back; 0 = unlimited */
};

typedef struct sr_router sr_router;

/* 0 or SR_ERR_NOMEM. */
int sr_router_new(sr_router **out) SR_WARN_UNUSED;
void sr_router_free(sr_router *r); /* NULL is a no-op */

/* Adds a target (copied). Returns its index (>= 0), SR_ERR_EXISTS for a
 * duplicate id, SR_ERR_INVAL for bad values, or SR_ERR_NOMEM. */
int sr_router_add_target(sr_router *r, const struct sr_target_info *t);
size_t sr_router_count(const sr_router *r);
const struct sr_target_info *sr_router_target(const sr_router *r, size_t idx);
/* Index of the target named |id|, or SR_ERR_NOTFOUND. */
int sr_router_find(const sr_router *r, const char *id);

/* ---- pass schedule ---------------------------------------------------------------- */

/* One contact window between this station and a satellite target. Passes come
 * from operator feeds (DESIGN section 7) or from the gateway's own prediction
 * from orbital elements; |source| says which ("json", "aws", "satnogs", "ion",
 * "predicted", ...). */
struct sr_pass_rec {
    char sat[SR_TARGET_IDMAX]; /* target id */
    int64_t aos_ms, tca_ms, los_ms;
    double max_el_deg; /* NAN if unknown */
    double uplink_bps; /* 0 = use the target's link profile */
    double downlink_bps;
    double light_ms; /* one-way light time; 0 = unknown */
    char source[16];
};

/*
 * Replaces, for satellite |sat|, every stored pass that overlaps
 * [from_ms, to_ms) with the |n| passes in |recs| (copied; all must be for
 * |sat| and have aos < los). All or nothing: on failure the schedule is
 * unchanged. Returns 0, SR_ERR_INVAL or SR_ERR_NOMEM.
 */
int sr_router_set_passes(sr_router *r, const char *sat, int64_t from_ms, int64_t to_ms,
                         const struct sr_pass_rec *recs, size_t n) SR_WARN_UNUSED;
/* Copies up to |max| passes of |sat| (every satellite if NULL) that overlap
 * [from_ms, to_ms), ordered by AOS; returns how many exist (may exceed max). */
size_t sr_router_passes(const sr_router *r, const char *sat, int64_t from_ms, int64_t to_ms,
                        struct sr_pass_rec *out, size_t max);

/* ---- feedback ----------------------------------------------------------------- */

/* A dispatch to |idx| started / ended (keeps the in-flight count that
 * peak-EWMA multiplies by). Every begin must be matched by one end. */
void sr_router_begin(sr_router *r, size_t idx);
void sr_router_end(sr_router *r, size_t idx);
/* A dispatch succeeded: |elapsed_ms| end to end, of which the target spent
 * |work_gop| worth of compute; |predicted_ms| is what sr_router_rank said. */
void sr_router_success(sr_router *r, size_t idx, double elapsed_ms, double predicted_ms,
                       double work_gop, int64_t now_ms);
/* A dispatch failed (unreachable, reset, bad result). After
 * SR_ROUTER_EJECT_AFTER consecutive failures the target is ejected for a
 * period that doubles with each ejection (capped), then given another chance. */
#define SR_ROUTER_EJECT_AFTER 3
void sr_router_failure(sr_router *r, size_t idx, int64_t now_ms);

struct sr_target_state {
    double ewma_ms; /* peak-EWMA of observed overhead latency */
    unsigned inflight;
    unsigned consecutive_failures;
    uint64_t successes, failures;
    int64_t ejected_until; /* ms; 0 if never */
    double err_mean_ms;    /* mean (actual - predicted) */
    double err_abs_ms;     /* mean |actual - predicted| */
};
void sr_router_state(const sr_router *r, size_t idx, int64_t now_ms, struct sr_target_state *out);

/* ---- decisions ------------------------------------------------------------------ */

typedef enum {
    SR_PLACE_ANY = 0,
    SR_PLACE_ORBIT,
    SR_PLACE_GROUND,
    SR_PLACE_TARGET, /* a named target */
} sr_place_kind;

struct sr_workload {
    double work_gop;      /* >= 0 */
    int64_t bytes_in;     /* payload bytes */
    int64_t result_bytes; /* expected result bytes (hint) */
    int64_t deadline_ms;  /* absolute, ms since epoch */
    sr_place_kind place;
    char place_target[SR_TARGET_IDMAX];
};

/* Parses a skyroute-place header value: "any", "orbit", "ground" or
 * "target:ID". 0 or SR_ERR_PARSE. */
int sr_place_parse(struct sr_workload *w, const char *value);

struct sr_candidate {
    size_t target;
    bool feasible;
    double predicted_ms; /* completion time from now */
    double cost;         /* lower is better; feasible ones first */
    char why[128];       /* why it is not feasible, or "" */
};

/* Ranks every target for |w| at |now_ms|: feasible candidates first, by cost.
 * Writes up to |max| candidates and returns how many were written. */
size_t sr_router_rank(const sr_router *r, const struct sr_workload *w, int64_t now_ms,
                      struct sr_candidate *out, size_t max);

#endif /* SR_ROUTING_H */
