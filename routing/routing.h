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

/* The energy profile of a target (see "energy-aware routing" below). All zero
 * means "unknown": the target's work costs no energy in the ranking. */
struct sr_energy_profile {
    double joules_per_gop;   /* energy per giga-operation at the chip (>= 0) */
    double pue;              /* power usage effectiveness (0 = 1.0; else >= 1) */
    double price_per_kwh;    /* grid price, currency units per kWh (>= 0) */
    double carbon_g_per_kwh; /* grid carbon intensity (>= 0) */
    double battery_cost;     /* satellites: price per kWh drawn from the battery in eclipse */
    int pv;                  /* 1: PV-powered, forecast surplus is free and carbon-free */
};

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
    /* Energy and queueing (zero: none) */
    double queue_ms;                 /* fixed queueing delay at the target (>= 0) */
    struct sr_energy_profile energy; /* see "energy-aware routing" below; zero = no energy cost */
    /* Federation: non-empty for a satellite reached through another
     * station's passes. Its id is "SAT@STATION" (the satellite's own id, '@',
     * the station); a skyroute-place of target:SAT allows it too, and
     * explanations name the station. The caller forwards such work to that
     * station instead of dispatching it. */
    char via_station[SR_TARGET_IDMAX];
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

/*
 * Operator schedules beat predictions: the passes of one satellite, merged
 * from what its operators uploaded and what its orbital elements predict.
 * Every operator pass in |ops| (|nops| of them) is kept; a predicted pass in
 * |pred| (|npred|) is kept only if it overlaps neither an operator window
 * (|win|: |nwin| pairs [from, to), the spans operator schedules have covered,
 * withdrawn contacts included) nor an operator pass. A predicted pass that
 * overlaps one is dropped whole, never clipped; one that only touches it
 * (LOS at the window's start, AOS at its end) is kept. Writes the result to
 * |out|, which has room for nops + npred and overlaps no input, ordered by
 * AOS, and returns how many it wrote. Pure: it stores nothing.
 */
size_t sr_schedule_merge(struct sr_pass_rec *out, const struct sr_pass_rec *ops, size_t nops,
                         const int64_t (*win)[2], size_t nwin, const struct sr_pass_rec *pred,
                         size_t npred);

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

/* Marks target |idx| offline (never feasible, why SR_WHY_OFFLINE) or back
 * online. For federation: a station whose heartbeat stopped, or a remote
 * satellite view with no passes. 0 or SR_ERR_INVAL. */
int sr_router_set_offline(sr_router *r, size_t idx, bool offline);

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
    char data_at[SR_TARGET_IDMAX]; /* satellite already holding the input ("" = the caller) */
    /* The caller can hold work for a later window and take a result from a
     * later pass; false: only plans that start now and return within the pass
     * in progress are feasible (synchronous dispatch). */
    bool store_and_forward;
};

/* Parses a skyroute-place header value: "any", "orbit", "ground" or
 * "target:ID". 0 or SR_ERR_PARSE. */
int sr_place_parse(struct sr_workload *w, const char *value);

/* Why a candidate is not feasible (SR_WHY_NONE when it is). */
typedef enum {
    SR_WHY_NONE = 0,
    SR_WHY_PLACE,     /* excluded by skyroute-place */
    SR_WHY_EJECTED,   /* ejected after repeated failures */
    SR_WHY_DEADLINE,  /* predicted completion + margin exceeds the time left */
    SR_WHY_NO_WINDOW, /* no pass can carry the uplink (or the result) before the deadline */
    SR_WHY_WAIT,      /* needs a later window but the caller cannot hold the work */
    SR_WHY_DATA,      /* the satellite holding the input data has no usable window */
    SR_WHY_OFFLINE,   /* marked offline by the caller (e.g. its station left the cluster) */
} sr_why;

struct sr_candidate {
    size_t target;
    bool feasible;
    double predicted_ms; /* completion time from now */
    double cost;         /* lower is better; feasible ones first */
    char why[128];       /* why it is not feasible, or "" */
    /* Every component of predicted_ms (they sum to it), the windows used,
     * and the energy bill. */
    sr_why why_code;
    double fetch_ms;                  /* data gravity: bringing the input down from data_at */
    double wait_ms;                   /* until the uplink window opens */
    double uplink_ms;                 /* bytes_in over the uplink rate */
    double light_up_ms;               /* one-way light / network time towards the target */
    double queue_ms;                  /* queueing at the target */
    double compute_ms;                /* work / capacity */
    double result_wait_ms;            /* compute end until the downlink window opens */
    double downlink_ms;               /* result_bytes over the downlink rate */
    double light_down_ms;             /* one-way light / network time back */
    double margin_ms;                 /* safety margin learned from past prediction error */
    int64_t up_aos_ms, up_los_ms;     /* uplink pass (0, 0 for ground targets) */
    int64_t down_aos_ms, down_los_ms; /* pass carrying the result back */
    bool result_next_pass;            /* the result comes down in a later pass */
    bool eclipse;                     /* satellite: computes in Earth's shadow (battery) */
    double energy_j;                  /* work x joules per Gop x PUE */
    double energy_price;              /* currency units */
    double carbon_g;
    double green_frac; /* share of the energy from PV surplus or sunlight */
};

/* Ranks every target for |w| at |now_ms|: feasible candidates first, by cost.
 * Writes up to |max| candidates and returns how many were written. */
size_t sr_router_rank(const sr_router *r, const struct sr_workload *w, int64_t now_ms,
                      struct sr_candidate *out, size_t max);

/* ---- energy-aware, handover-aware routing ------------------------------------------------ */

/*
 * The predictor. For workload w and target k at now (DESIGN section 9):
 *
 *   T = fetch + wait + uplink + light_up + queue + compute + result_wait + downlink + light_down
 *
 * Ground targets (and satellites with no schedule: no pass stored and no orbit
 * set) are always reachable: light_up = light_down = half the peak-EWMA
 * latency, links at the target's uplink_bps / downlink_bps (0 = unlimited).
 * A satellite with a schedule is reachable only in its passes: the uplink
 * uses the first pass (at or after now, or after the fetch) whose rest can
 * carry bytes_in, net of bytes already reserved, and where the last byte lands
 * before LOS; the result comes down in the first pass after the compute ends
 * (the same pass when it is still open and has room, else a later one). Rates
 * and light time come from the pass record when set, else from the target.
 * queue = the target's fixed queue_ms + the compute backlog committed with
 * sr_router_commit. Data gravity: with data_at = satellite S, input bytes cost
 * nothing to upload to S, and for any other target they must first come down
 * from S in one of its passes (fetch).
 *
 * Energy: E = work x joules_per_gop x PUE. An IDC pays its grid price and
 * carbon, except for the share covered by PV surplus when pv is set (from the
 * forecast series at compute start: share = min(1, surplus W / draw W), draw =
 * gops x joules_per_gop x PUE); the series can also move the grid price and
 * carbon over time. A satellite in sunlight pays nothing; in Earth's shadow it
 * pays battery_cost per kWh (eclipse intervals from sr_router_set_eclipses or
 * predicted from elements with sr_router_set_orbit).
 *
 * The policy: feasible = placement allowed, not ejected, a plan exists, and
 * T + margin <= deadline - now, where margin = margin_ms + margin_k x the
 * target's mean absolute prediction error + max(0, its mean signed error).
 * Feasible candidates are ordered by
 *   cost = time_weight x T x (1 + inflight_weight x inflight) x (1 + fail_rate)
 *        + energy_weight x E/kJ
 *        + price_weight x price + carbon_weight x grams,
 * where fail_rate is an EWMA (alpha 0.2) of the target's dispatch outcomes
 * (failure 1, success 0): an expected-retry penalty for flaky targets.
 */
struct sr_policy {
    double time_weight;     /* per ms of predicted completion (default 1) */
    double energy_weight;   /* per kJ (default 1) */
    double price_weight;    /* per currency unit (default 1000) */
    double carbon_weight;   /* per gram of CO2 (default 1) */
    double margin_ms;       /* fixed safety margin (default 0) */
    double margin_k;        /* multiples of the observed mean |error| (default 2) */
    unsigned max_windows;   /* scheduled satellites evaluated per decision via the
                               pass index: in view with the latest LOS, then the
                               earliest next windows (default 16) */
    double inflight_weight; /* time cost x (1 + this x in-flight dispatches); default 1 */
    double link_margin;     /* a satellite transfer is planned in a pass only if it would
                               still end before LOS taking (1 + this) x as long: headroom
                               for fades and element error (default 0) */
};

/* Fills |p| with the defaults above. */
void sr_policy_default(struct sr_policy *p);
/* Replaces the router's policy (copied). 0 or SR_ERR_INVAL (negative or
 * non-finite weights). */
int sr_router_set_policy(sr_router *r, const struct sr_policy *p) SR_WARN_UNUSED;
void sr_router_get_policy(const sr_router *r, struct sr_policy *out);

/* Replaces the energy profile / fixed queue of target |idx|. 0, SR_ERR_INVAL. */
int sr_router_set_energy(sr_router *r, size_t idx,
                         const struct sr_energy_profile *e) SR_WARN_UNUSED;

/* Replaces the link profile and fixed queue of target |idx| (bytes/s, 0 =
 * unlimited; ms). 0 or SR_ERR_INVAL. */
int sr_router_set_link(sr_router *r, size_t idx, double uplink_bps, double downlink_bps,
                       double queue_ms) SR_WARN_UNUSED;

/* One point of an energy forecast for an IDC: from t_ms until the next
 * point, the grid price and carbon intensity (NAN = the profile's) and the
 * PV surplus available (W, >= 0). */
struct sr_energy_point {
    int64_t t_ms;
    double price_per_kwh;
    double carbon_g_per_kwh;
    double pv_surplus_w;
};
/* Replaces target |idx|'s forecast with |n| points (copied; strictly
 * increasing t_ms). Before the first point the profile's constants apply
 * with no surplus. 0, SR_ERR_INVAL or SR_ERR_NOMEM (unchanged on failure). */
int sr_router_set_energy_series(sr_router *r, size_t idx, const struct sr_energy_point *pts,
                                size_t n) SR_WARN_UNUSED;

/* Replaces satellite |idx|'s eclipse (umbra) intervals: |n| pairs
 * [entry, exit) sorted and disjoint. 0, SR_ERR_INVAL, SR_ERR_NOMEM. */
int sr_router_set_eclipses(sr_router *r, size_t idx, const int64_t (*iv)[2],
                           size_t n) SR_WARN_UNUSED;

/* Gives satellite |idx| orbital elements and predicts, with linkmodels, its
 * passes over |st| above |min_el_deg| in [from_ms, to_ms) (stored with source
 * "predicted", replacing stored passes there; light time at the mask's slant
 * range; rates from |link| averaged over each pass when not NULL, else the
 * target's) and its eclipses in the same window. 0, SR_ERR_INVAL,
 * SR_ERR_NOMEM or an SGP4 error. */
struct sr_elements;
struct sr_station;
struct sr_link_cfg;
int sr_router_set_orbit(sr_router *r, size_t idx, const struct sr_elements *e,
                        const struct sr_station *st, double min_el_deg,
                        const struct sr_link_cfg *up, const struct sr_link_cfg *down,
                        int64_t from_ms, int64_t to_ms) SR_WARN_UNUSED;

/* Records that |c| (from sr_router_rank for |w| at |now_ms|) was dispatched:
 * reserves its uplink bytes in the uplink pass and its result bytes in the
 * downlink pass, so later decisions do not oversubscribe a pass, and adds its
 * compute to the target's backlog. 0 or SR_ERR_INVAL. */
int sr_router_commit(sr_router *r, const struct sr_workload *w, const struct sr_candidate *c,
                     int64_t now_ms);

/* Like sr_router_success, for a dispatch that followed candidate |c|: the
 * peak-EWMA learns from the elapsed time minus every predicted component but
 * the two light / network legs (so waits for windows, queues and transfers do
 * not read as network latency), and the error statistics from elapsed -
 * c->predicted_ms. */
void sr_router_observe(sr_router *r, const struct sr_candidate *c, double elapsed_ms,
                       double work_gop, int64_t now_ms);

/* Bytes already reserved in |sat|'s pass that contains |t_ms| (uplink and
 * downlink). SR_ERR_NOTFOUND if no such pass. */
int sr_router_pass_reserved(const sr_router *r, const char *sat, int64_t t_ms, double *up,
                            double *down);

/* ---- explanations ---------------------------------------------------------------- */

/* Renders ranked candidates |c| (as sr_router_rank wrote them) for |w| at
 * |now_ms|: every predicted component, the windows used, energy, carbon,
 * margin, the choice, and why each loser lost (infeasible: the reason; else
 * the cost terms by which it trails the winner). JSON: one object
 * {"now", "deadline", "workload": {...}, "choice", "candidates": [...]}.
 * Text: an aligned table for people. 0, SR_ERR_NOMEM or SR_ERR_TOOBIG. */
int sr_explain_json(sr_buf *b, const sr_router *r, const struct sr_workload *w, int64_t now_ms,
                    const struct sr_candidate *c, size_t n) SR_WARN_UNUSED;
int sr_explain_text(sr_buf *b, const sr_router *r, const struct sr_workload *w, int64_t now_ms,
                    const struct sr_candidate *c, size_t n) SR_WARN_UNUSED;

/* Bytes of router memory per stored pass (index included), for benchmarks. */
size_t sr_router_pass_bytes(const sr_router *r);

/* ---- simulator (skyroute sim) ---------------------------------------------------------- */

/*
 * Runs a routing policy over a scenario on a virtual clock against a "truth"
 * that differs from what the router is told: latency and compute jitter
 * (log-normal), target outages, link fades per pass, and element ageing (each
 * satellite's real passes are shifted by a few seconds from the predicted
 * ones). The same seed gives the same workloads and the same truth for every
 * policy, so policies are compared on identical traffic. Pure: no I/O, no
 * clock; the caller reads the scenario file and feeds its keys.
 *
 * Policies: "skyroute" (this router, store-and-forward), "ground-only" (the
 * same predictor over IDCs only), "least-rtt" (lowest current RTT among IDCs
 * and satellites in view now, dispatched at once, no pass prediction),
 * "random" (a uniformly random allowed target, planned by the predictor) and
 * "oracle" (clairvoyant: evaluates every target against the truth). A failed
 * dispatch is retried (at most 3 attempts) while the deadline allows.
 */
typedef struct sr_sim sr_sim;

struct sr_sim_result {
    char name[32];
    size_t workloads, met, completed;
    double deadline_met;   /* met / workloads */
    double p50_ms, p99_ms; /* completion latency of completed workloads */
    double energy_kwh, carbon_kg, bytes_moved;
    size_t refused;  /* workloads the policy had no target for */
    size_t failures; /* dispatches that failed (outage, cut at LOS) */
    size_t late;     /* completed after the deadline */
    size_t on_orbit; /* completed on a satellite */
};

/* 0 or SR_ERR_NOMEM. */
int sr_sim_new(sr_sim **out) SR_WARN_UNUSED;
void sr_sim_free(sr_sim *s);
/* Sets one scenario key (see deploy/scenarios/README.md for the format).
 * 0, or SR_ERR_PARSE / SR_ERR_RANGE / SR_ERR_NOTFOUND (unknown key) with a
 * message in |err|. */
int sr_sim_set(sr_sim *s, const char *section, const char *key, const char *value, char *err,
               size_t errlen) SR_WARN_UNUSED;
/* Adds satellites from element sets (copied). 0 or SR_ERR_NOMEM. */
int sr_sim_add_elements(sr_sim *s, const struct sr_elements *e, size_t n) SR_WARN_UNUSED;
/* Predicts passes and eclipses for the scenario. Call after the keys, before
 * running. 0 or an error with a message. */
int sr_sim_prepare(sr_sim *s, char *err, size_t errlen) SR_WARN_UNUSED;
/* Policy names, NULL-terminated. */
const char *const *sr_sim_policies(void);
/* Runs |policy| with |seed|. |progress| (may be NULL) is called now and then
 * with the fraction done. 0, SR_ERR_NOTFOUND (unknown policy), SR_ERR_NOMEM. */
int sr_sim_run(sr_sim *s, const char *policy, uint64_t seed, struct sr_sim_result *out,
               void (*progress)(void *arg, double frac), void *arg) SR_WARN_UNUSED;

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
/* The format a caller names to force it (PUT /v1/passes?format=NAME):
 * "json", "aws", "satnogs" or "ion". Returns 0 with *out set, or
 * SR_ERR_PARSE for any other name, "auto" and NULL included (*out is left
 * untouched). */
int sr_feed_format_parse(sr_feed_format *out, const char *name) SR_WARN_UNUSED;

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

/* The time a feed speaks about for one satellite: from the first to the last
 * time of every entry naming it, its passes and also its withdrawn entries
 * (cancelled or failed contacts and observations, whose times parse). A
 * schedule replaces what was known for this span: a cancelled contact removes
 * the pass an earlier upload announced there. */
struct sr_feed_span {
    char sat[SR_TARGET_IDMAX];
    int64_t from_ms, to_ms;
};

struct sr_feed_result {
    sr_feed_format format;      /* what was parsed (detected or forced) */
    struct sr_pass_rec *passes; /* malloc'd, sorted by (sat, aos); NULL when n == 0 */
    size_t n;
    struct sr_feed_span *spans; /* malloc'd, one per satellite named; NULL when nspans == 0 */
    size_t nspans;
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

/*
 * The name of an orbital-element upload's format (PUT /v1/elements), as the
 * gateway stores it and answers with: after leading blanks (space, tab, CR,
 * LF), '{' or '[' is "omm-json" and '<' "omm-xml"; a first line that starts
 * with CCSDS_OMM_VERS is "omm-csv" when it holds a comma, else "omm-kvn"; a
 * first line with a comma that names OBJECT_NAME or NORAD_CAT_ID is
 * "omm-csv"; anything else, empty text included, is "tle". It only names:
 * whether the text parses, and the message when it does not, is
 * sr_elements_parse_text()'s to say. Never NULL; |text| need not be
 * NUL-terminated.
 */
const char *sr_feed_elements_format(const char *text, size_t len);

/* ---- the spool's order of dispatch (due.c) ---------------------------------------------- */

/* A spooled workload that may start soon, as the spool's dispatcher sees it. */
struct sr_due {
    int64_t deadline_ms;
    int64_t wait_until_ms; /* it does not start before this */
    const char *target;    /* the target it is bound to or waits for; "" if none */
    void *item;            /* the caller's */
};

/* How far ahead a workload takes part in a turn's choice. */
#define SR_DUE_AHEAD_MS 3000

/* True if a workload that may start at |wait_until_ms| takes part in the
 * choice made at |now_ms| (it is due, or due within SR_DUE_AHEAD_MS). */
bool sr_due_soon(int64_t wait_until_ms, int64_t now_ms);

/* Starts |d| now: 1 if it started (its target is then held for the rest of
 * the call), 0 if it did not (nothing is held), -1 to stop the call (no
 * capacity left). It may change |*d|. */
typedef int (*sr_due_start)(void *arg, struct sr_due *d);

/*
 * One turn of the spool's dispatcher over |due| (the workloads for which
 * sr_due_soon() holds and that are not under way): earliest deadline first,
 * one at a time per target. Sorts |due| by deadline, then walks it: a
 * workload whose target is held is skipped; one not due yet holds its
 * target's place (later deadlines for that target wait behind it); one that
 * is due is passed to |start|. At most 16 targets are held in one call.
 * Returns how many |start| started.
 */
size_t sr_due_run(struct sr_due *due, size_t n, int64_t now_ms, sr_due_start start, void *arg);

#endif /* SR_ROUTING_H */
