/*
 * Private to routing/: the router's state, shared by its source files, and
 * what each file offers the files above it. The files stand in layers, each
 * calling only those below it:
 *
 *   sim.c                  the simulator (uses the router like the daemon)
 *   explain.c, orbit.c     explanations; schedules from orbital elements
 *   rank.c                 ranking and commit
 *   predict.c              one target's prediction for one workload
 *   router.c               the router made, grown and freed whole
 *   schedule.c             passes per satellite and the pass index
 *   registry.c             targets, policy, feedback, compute calendars
 *
 * feeds.c (operator feed parsers) stands apart: it uses none of them.
 */
#ifndef SR_ROUTING_INT_H
#define SR_ROUTING_INT_H

#include <math.h>

#include "routing/routing.h"

/* One stored pass (kept per satellite, sorted by AOS). */
struct pass {
    int64_t aos, tca, los;
    double up_bps, down_bps; /* 0 = the target's */
    double res_up, res_down; /* bytes reserved by committed decisions */
    float max_el;            /* NAN if unknown */
    float light_ms;          /* 0 = unknown */
    uint8_t src;             /* index into sr_router.srcs */
};

/* The schedule of one satellite name (a target or not: feeds may name
 * satellites the router does not route to). */
struct slot {
    char name[SR_TARGET_IDMAX];
    int target; /* router index, or -1 */
    struct pass *p;
    uint32_t n, cap;
};

/* The pass index: passes bucketed by AOS (bucket = aos / BUCKET_MS), buckets
 * sorted by key, entries sorted by AOS inside a bucket. It answers "in view
 * at t" (scan back over the longest pass duration seen) and "next windows
 * after t" (scan forward) without touching satellites that have neither. */
struct ient {
    int64_t aos, los;
    uint32_t slot;
    int32_t target; /* the satellite target owning the slot, or -1 */
};
struct bucket {
    int64_t key;
    struct ient *e;
    uint32_t n, cap;
};

/* A compute calendar: committed [start, end) intervals, sorted, disjoint.
 * Work that arrives later may run in an earlier gap (a satellite computes
 * what is onboard, in arrival order, not in dispatch order). */
struct cal {
    double (*iv)[2];
    size_t n, cap;
};

struct target {
    struct sr_target_info info;
    double ewma_ms;
    int64_t ewma_stamp;
    bool observed;
    unsigned inflight;
    unsigned consecutive_failures;
    unsigned ejections;
    int64_t ejected_until;
    bool offline; /* sr_router_set_offline */
    uint64_t successes, failures;
    double err_mean, err_abs;
    double fail_rate; /* EWMA of dispatch failures (1) and successes (0) */
    /* energy-aware router */
    int slot;                   /* schedule slot, or -1 */
    bool scheduled;             /* satellite with passes or an orbit: windows apply */
    struct cal cal;             /* committed compute */
    struct sr_energy_point *es; /* energy forecast */
    size_t nes;
    int64_t (*ecl)[2]; /* eclipse intervals */
    size_t necl;
    size_t plain_pos; /* position in sr_router.plain while not scheduled */
};

struct sr_router {
    struct target *t;
    size_t n, cap;
    struct sr_policy pol;
    uint32_t *plain; /* targets evaluated on every decision: IDCs, unscheduled satellites */
    size_t nplain;
    /* schedule */
    struct slot *slots;
    size_t nslots, slotcap;
    uint32_t *shash; /* open addressing: slot index + 1, 0 = empty */
    size_t shcap;
    struct bucket *b;
    size_t nb, bcap;
    int64_t maxdur; /* longest pass duration stored */
    size_t npasses;
    char srcs[16][16];
    unsigned nsrcs;
};

#define SR_BUCKET_MS 600000LL

/* ---- registry.c ------------------------------------------------------------------------ */

/* Validates |t| and appends it (sr_router_add_target without the link to the
 * schedule). Its index, SR_ERR_INVAL, SR_ERR_EXISTS or SR_ERR_NOMEM. */
int sr__target_add(sr_router *r, const struct sr_target_info *t);
/* Frees every target and the plain list (not the router itself). */
void sr__targets_free(sr_router *r);
/* Moves satellite |idx| out of the plain list: it has passes now, so the
 * pass index finds it. No-op for IDCs and targets already scheduled. */
void sr__mark_scheduled(sr_router *r, size_t idx);
/* Target |t|'s peak-EWMA latency at |now_ms|: relaxed towards the prior with
 * time constant SR_PRIOR_TAU_MS while nothing is observed. Inline: the
 * ranking's bound asks it for every ground target of every decision. */
#define SR_PRIOR_TAU_MS 300000.0
static inline double sr__ewma_at(const struct target *t, int64_t now_ms)
{
    if (!t->observed || now_ms <= t->ewma_stamp) {
        return t->ewma_ms;
    }
    double prior = t->info.prior_rtt_ms;
    double w = exp(-(double)(now_ms - t->ewma_stamp) / SR_PRIOR_TAU_MS);
    return prior + (t->ewma_ms - prior) * w;
}
/* Earliest start >= |arrive| with |dur| free. */
double sr__cal_fit(const struct cal *c, double arrive, double dur);
/* Books [start, start + dur); forgets intervals that ended before |forget|.
 * 0 or SR_ERR_NOMEM. */
int sr__cal_add(struct cal *c, double start, double dur, double forget);

/* ---- schedule.c ------------------------------------------------------------------------ */

/* Index of the first bucket with key >= k; the bucket key of time t. */
size_t sr__bucket_lb(const sr_router *r, int64_t k);
int64_t sr__bkey(int64_t t);
/* Slot index of satellite |name|, or -1. */
int sr__slot_find(const sr_router *r, const char *name);
const struct pass *sr__pass_after(const struct slot *s, int64_t t); /* first with los > t */
void sr__schedule_free(sr_router *r);
/* Links target |idx| (just added) to the slot of its name, if passes were
 * stored under it before: the slot and its index entries point at it. */
void sr__link_target(sr_router *r, size_t idx);

/* ---- predict.c ------------------------------------------------------------------------- */

/* Whether the workload's placement (skyroute-place) allows target |t|. */
bool sr__place_ok(const struct target *t, const struct sr_workload *w);
/* Fills |c| with target |idx|'s prediction for |w| at |now| (every component,
 * the windows, energy, cost, why_code; c->why is left empty). |data_slot|:
 * the slot of w->data_at, or -1. */
void sr__evaluate(const sr_router *r, size_t idx, const struct sr_workload *w, int64_t now,
                  int data_slot, struct sr_candidate *c);
/* Writes c->why, the text of c->why_code, for a candidate sr__evaluate made. */
void sr__why_text(const sr_router *r, const struct sr_workload *w, int64_t now,
                  struct sr_candidate *c);

#endif
