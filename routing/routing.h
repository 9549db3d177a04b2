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

/* ==== operator feeds (routing/feeds.c) ==================================================== */

/*
 * Pure parsers for the pass schedules satellite operators upload (DESIGN
 * section 7): bytes and a content type in, an array of struct sr_pass_rec out.
 * No I/O, no clock: |now_ms| is a parameter. Rates are bytes per second, as
 * everywhere in routing/.
 *
 *   SR_FEED_JSON     the project's own: {"station": "...", "passes": [{"sat",
 *                    "aos", "los", "tca"?, "max_el_deg"?, "uplink_bps"?,
 *                    "downlink_bps"?, "light_ms"?}]}, times RFC 3339
 *   SR_FEED_AWS      AWS Ground Station ListContacts / DescribeContact output:
 *                    {"contactList": [{satelliteArn, groundStation, startTime,
 *                    endTime, contactStatus, maximumElevation{value, unit}}]}
 *                    (a single contact object is accepted too); times ISO 8601
 *                    or epoch seconds (a JSON number, as the API emits). Only
 *                    SCHEDULED, PREPASS, PASS, POSTPASS and COMPLETED contacts
 *                    are passes; AVAILABLE, SCHEDULING, CANCELLING, CANCELLED,
 *                    AWS_CANCELLED, FAILED, AWS_FAILED and FAILED_TO_SCHEDULE
 *                    are skipped; any other status is refused. Units:
 *                    DEGREE_ANGLE or RADIAN.
 *   SR_FEED_SATNOGS  SatNOGS Network observations: an array of {start, end,
 *                    norad_cat_id, max_altitude?, ground_station?, status?}
 *                    (or {"results": [...]}); status "failed" is skipped.
 *   SR_FEED_ION      ION contact-plan lines: "a contact START END FROM TO RATE
 *                    [CONFIDENCE]" (RATE bytes/s) and "a range START END FROM
 *                    TO OWLT" (seconds); START/END "+SECONDS" from |epoch_ms|
 *                    or absolute "YYYY/MM/DD-HH:MM:SS[.fff]" UTC. '#' comments
 *                    and blank lines are ignored; any other command is refused.
 *                    Contacts are directional: station->satellite gives
 *                    uplink_bps, satellite->station downlink_bps; overlapping
 *                    contacts of the two directions merge into one pass (their
 *                    union). Contacts between two satellites are skipped. A
 *                    range covering a pass sets its light_ms.
 *
 * Every pass is checked: AOS < LOS, both within [now - max_past, now +
 * max_future], at most SR_FEED_MAX_PASS_MS long, elevation finite and in
 * [-90, 90], rates finite and >= 0, and no two passes of one satellite
 * overlap. The upload is refused whole on the first problem.
 */
typedef enum {
    SR_FEED_AUTO = 0,
    SR_FEED_JSON = 1,
    SR_FEED_AWS = 2,
    SR_FEED_SATNOGS = 3,
    SR_FEED_ION = 4,
} sr_feed_format;

/* "auto", "json", "aws", "satnogs", "ion" (also the sr_pass_rec source). */
const char *sr_feed_format_name(sr_feed_format f);

/* The identities feeds use for satellites and stations. */
typedef enum {
    SR_FEED_ID_TARGET = 0,   /* a target id ("sat" in the project's JSON) */
    SR_FEED_ID_ARN = 1,      /* AWS satelliteArn */
    SR_FEED_ID_NORAD = 2,    /* NORAD catalogue number, decimal text */
    SR_FEED_ID_ION_NODE = 3, /* ION node number, decimal text */
    SR_FEED_ID_STATION = 4,  /* a station name or number named by the feed */
} sr_feed_id_kind;

/* Maps a feed identity to the id of a configured satellite target (for
 * SR_FEED_ID_STATION: any non-NULL value means "this station"; NULL means the
 * entry is for another station and is skipped). Returns NULL when unknown.
 * The returned string must stay valid until sr_feed_parse() returns. */
typedef const char *(*sr_feed_lookup)(void *arg, sr_feed_id_kind kind, const char *value);

#define SR_FEED_MAX_PASS_MS (7 * 86400000LL)

struct sr_feed_opts {
    sr_feed_format format;    /* SR_FEED_AUTO: detect */
    const char *content_type; /* may be NULL */
    int64_t now_ms;
    int64_t epoch_ms;      /* ION "+SECONDS" base; 0 = now_ms */
    int64_t max_past_ms;   /* 0 = 31 days */
    int64_t max_future_ms; /* 0 = 366 days */
    size_t max_passes;     /* 0 = 100000; more is SR_ERR_TOOBIG */
    sr_feed_lookup lookup; /* required */
    void *lookup_arg;
};

/* Where and why a feed was refused. */
struct sr_feed_error {
    long index;     /* JSON array index, or -1 */
    long line;      /* ION line (1-based), or -1 */
    char field[48]; /* e.g. "los", "maximumElevation.unit", "RATE"; "" if none */
    char msg[256];  /* one English line naming index/line and field */
};

struct sr_feed_result {
    sr_feed_format format;     /* what was parsed (detected or forced) */
    struct sr_pass_rec *passes; /* malloc'd, sorted by (sat, aos); NULL when n == 0 */
    size_t n;
    size_t skipped;   /* entries that are not passes here (cancelled, other station, ...) */
    char station[64]; /* the station the feed names, if any (truncated) */
};

/*
 * Detects the format from |content_type| (a "json" type: by shape; "text/plain"
 * or anything mentioning "ion": ION) and, failing that, from the body (first
 * non-blank byte '{' or '[': JSON, by shape: "contactList" or "contactId" ->
 * aws, "passes" -> json, objects with "norad_cat_id" -> satnogs). Returns the
 * format or SR_FEED_AUTO when it cannot tell.
 */
sr_feed_format sr_feed_detect(const char *body, size_t len, const char *content_type);

/*
 * Parses |body| (|len| bytes, need not be NUL-terminated). On success fills
 * |res| (the caller releases it with sr_feed_result_free()); the source of
 * every pass is the format's name. On failure |res| holds no allocation and
 * |err| (if non-NULL) says where and why. Returns:
 *   0
 *   SR_ERR_INVAL        NULL arguments, no lookup
 *   SR_ERR_UNSUPPORTED  format not recognised
 *   SR_ERR_PARSE        malformed: not JSON, wrong type, missing field, bad
 *                       time text, malformed ION line                 (HTTP 400)
 *   SR_ERR_RANGE        valid but unusable: LOS not after AOS, times too far
 *                       from now, NaN/out-of-range numbers, unknown units or
 *                       status, overlapping passes of one satellite     (422)
 *   SR_ERR_NOTFOUND     a satellite the lookup does not know            (422)
 *   SR_ERR_TOOBIG       more than max_passes entries                     (413)
 *   SR_ERR_NOMEM
 */
int sr_feed_parse(struct sr_feed_result *res, const char *body, size_t len,
                  const struct sr_feed_opts *opts, struct sr_feed_error *err) SR_WARN_UNUSED;

void sr_feed_result_free(struct sr_feed_result *res); /* NULL and zeroed results are fine */

#endif /* SR_ROUTING_H */
