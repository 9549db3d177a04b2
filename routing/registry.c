/*
 * The target registry: targets and their configuration (links, energy,
 * forecasts, eclipses), the policy, and what the router learns from
 * dispatches (peak-EWMA, prediction error, failures and ejection). The
 * bottom of routing/: it calls nothing else of the module; the pass schedule
 * (schedule.c) and everything above build on it.
 *
 * Peak-EWMA: the estimate jumps up to any observation above it at once and
 * decays towards lower observations with time constant TAU_MS, so a target
 * that gets slow is avoided immediately and trusted again only gradually.
 * While nothing is observed it relaxes back to the configured prior with time
 * constant SR_PRIOR_TAU_MS (routing_int.h): an old observation says less and less about now.
 * The ranking multiplies time by (in-flight + 1) so load spreads before
 * queues build; the registry keeps the in-flight count.
 */
#include "routing/routing_int.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define TAU_MS 10000.0 /* peak-EWMA decay towards lower observations */
#define EJECT_BASE_MS 2000
#define EJECT_MAX_MS 60000
#define ERR_ALPHA 0.1
#define FAIL_ALPHA 0.2

/* ---- policy ------------------------------------------------------------------------------- */

void sr_policy_default(struct sr_policy *p)
{
    memset(p, 0, sizeof(*p));
    p->time_weight = 1;
    p->energy_weight = 1;
    p->price_weight = 1000;
    p->carbon_weight = 1;
    p->margin_ms = 0;
    p->margin_k = 2;
    p->max_windows = 16;
    p->inflight_weight = 1;
}

static bool finite_nonneg(double x)
{
    return x >= 0 && isfinite(x);
}

int sr_router_set_policy(sr_router *r, const struct sr_policy *p)
{
    if (!finite_nonneg(p->time_weight) || !finite_nonneg(p->energy_weight) ||
        !finite_nonneg(p->price_weight) || !finite_nonneg(p->carbon_weight) ||
        !finite_nonneg(p->margin_ms) || !finite_nonneg(p->margin_k) || p->max_windows > 4096 ||
        !finite_nonneg(p->inflight_weight) || !finite_nonneg(p->link_margin)) {
        return SR_ERR_INVAL;
    }
    r->pol = *p;
    if (!r->pol.max_windows) {
        r->pol.max_windows = 16;
    }
    return 0;
}

void sr_router_get_policy(const sr_router *r, struct sr_policy *out)
{
    *out = r->pol;
}

/* ---- targets ------------------------------------------------------------------------------ */

int sr_router_find(const sr_router *r, const char *id)
{
    for (size_t i = 0; i < r->n; i++) {
        if (!strcmp(r->t[i].info.id, id)) {
            return (int)i;
        }
    }
    return SR_ERR_NOTFOUND;
}

static bool energy_ok(const struct sr_energy_profile *e)
{
    return finite_nonneg(e->joules_per_gop) && (e->pue == 0 || (e->pue >= 1 && isfinite(e->pue))) &&
           finite_nonneg(e->price_per_kwh) && finite_nonneg(e->carbon_g_per_kwh) &&
           finite_nonneg(e->battery_cost) && (e->pv == 0 || e->pv == 1);
}

int sr__target_add(sr_router *r, const struct sr_target_info *t)
{
    /* Negated comparisons so that NaN is refused too. */
    if (!t->id[0] || !memchr(t->id, 0, sizeof(t->id)) ||
        !memchr(t->via_station, 0, sizeof(t->via_station)) ||
        (t->kind != SR_TARGET_IDC && t->kind != SR_TARGET_SATELLITE) || !(t->prior_rtt_ms > 0) ||
        !(t->gops > 0) || !(t->uplink_bps >= 0) || !(t->downlink_bps >= 0) ||
        !finite_nonneg(t->queue_ms) || !energy_ok(&t->energy)) {
        return SR_ERR_INVAL;
    }
    if (sr_router_find(r, t->id) >= 0) {
        return SR_ERR_EXISTS;
    }
    if (r->n == r->cap) {
        size_t ncap = r->cap ? r->cap * 2 : 8;
        struct target *nt = realloc(r->t, ncap * sizeof(*nt));
        if (!nt) {
            return SR_ERR_NOMEM;
        }
        r->t = nt;
        uint32_t *np = realloc(r->plain, ncap * sizeof(*np));
        if (!np) {
            return SR_ERR_NOMEM;
        }
        r->plain = np;
        r->cap = ncap;
    }
    struct target *x = &r->t[r->n];
    memset(x, 0, sizeof(*x));
    x->info = *t;
    x->ewma_ms = t->prior_rtt_ms;
    x->slot = -1;
    x->plain_pos = r->nplain;
    r->plain[r->nplain++] = (uint32_t)r->n;
    r->n++;
    return (int)(r->n - 1);
}

void sr__mark_scheduled(sr_router *r, size_t idx)
{
    struct target *t = &r->t[idx];
    if (t->scheduled || t->info.kind != SR_TARGET_SATELLITE) {
        return;
    }
    t->scheduled = true;
    /* swap-remove from the plain list (order does not matter: ties go by index) */
    size_t pos = t->plain_pos;
    uint32_t last = r->plain[--r->nplain];
    r->plain[pos] = last;
    r->t[last].plain_pos = pos;
}

size_t sr_router_count(const sr_router *r)
{
    return r->n;
}

const struct sr_target_info *sr_router_target(const sr_router *r, size_t idx)
{
    return idx < r->n ? &r->t[idx].info : NULL;
}

int sr_router_set_energy(sr_router *r, size_t idx, const struct sr_energy_profile *e)
{
    if (idx >= r->n || !energy_ok(e)) {
        return SR_ERR_INVAL;
    }
    r->t[idx].info.energy = *e;
    return 0;
}

int sr_router_set_link(sr_router *r, size_t idx, double uplink_bps, double downlink_bps,
                       double queue_ms)
{
    if (idx >= r->n || !finite_nonneg(uplink_bps) || !finite_nonneg(downlink_bps) ||
        !finite_nonneg(queue_ms)) {
        return SR_ERR_INVAL;
    }
    r->t[idx].info.uplink_bps = uplink_bps;
    r->t[idx].info.downlink_bps = downlink_bps;
    r->t[idx].info.queue_ms = queue_ms;
    return 0;
}

int sr_router_set_energy_series(sr_router *r, size_t idx, const struct sr_energy_point *pts,
                                size_t n)
{
    if (idx >= r->n) {
        return SR_ERR_INVAL;
    }
    for (size_t i = 0; i < n; i++) {
        const struct sr_energy_point *p = &pts[i];
        if ((i > 0 && p->t_ms <= pts[i - 1].t_ms) || !finite_nonneg(p->pv_surplus_w) ||
            !(isnan(p->price_per_kwh) || finite_nonneg(p->price_per_kwh)) ||
            !(isnan(p->carbon_g_per_kwh) || finite_nonneg(p->carbon_g_per_kwh))) {
            return SR_ERR_INVAL;
        }
    }
    struct sr_energy_point *copy = NULL;
    if (n) {
        copy = malloc(n * sizeof(*copy));
        if (!copy) {
            return SR_ERR_NOMEM;
        }
        memcpy(copy, pts, n * sizeof(*copy));
    }
    free(r->t[idx].es);
    r->t[idx].es = copy;
    r->t[idx].nes = n;
    return 0;
}

int sr_router_set_eclipses(sr_router *r, size_t idx, const int64_t (*iv)[2], size_t n)
{
    if (idx >= r->n) {
        return SR_ERR_INVAL;
    }
    for (size_t i = 0; i < n; i++) {
        if (iv[i][0] >= iv[i][1] || (i > 0 && iv[i][0] < iv[i - 1][1])) {
            return SR_ERR_INVAL;
        }
    }
    int64_t(*copy)[2] = NULL;
    if (n) {
        copy = malloc(n * sizeof(*copy));
        if (!copy) {
            return SR_ERR_NOMEM;
        }
        memcpy(copy, iv, n * sizeof(*copy));
    }
    free(r->t[idx].ecl);
    r->t[idx].ecl = copy;
    r->t[idx].necl = n;
    return 0;
}

void sr__targets_free(sr_router *r)
{
    for (size_t i = 0; i < r->n; i++) {
        free(r->t[i].es);
        free(r->t[i].ecl);
        free(r->t[i].cal.iv);
    }
    free(r->t);
    free(r->plain);
}

/* ---- feedback ------------------------------------------------------------------------ */

void sr_router_begin(sr_router *r, size_t idx)
{
    if (idx < r->n) {
        r->t[idx].inflight++;
    }
}

void sr_router_end(sr_router *r, size_t idx)
{
    if (idx < r->n && r->t[idx].inflight > 0) {
        r->t[idx].inflight--;
    }
}

static double compute_ms(const struct target *t, double work_gop)
{
    return work_gop > 0 ? work_gop / t->info.gops * 1000.0 : 0.0;
}

void sr_router_success(sr_router *r, size_t idx, double elapsed_ms, double predicted_ms,
                       double work_gop, int64_t now_ms)
{
    if (idx >= r->n || !(elapsed_ms >= 0)) {
        return;
    }
    struct target *t = &r->t[idx];
    double rtt = elapsed_ms - compute_ms(t, work_gop);
    if (rtt < 0) {
        rtt = 0;
    }
    double cur = sr__ewma_at(t, now_ms);
    if (!t->observed || rtt > cur) {
        t->ewma_ms = rtt;
    } else {
        double dt = (double)(now_ms - t->ewma_stamp);
        double w = exp(-(dt > 0 ? dt : 0) / TAU_MS);
        t->ewma_ms = cur * w + rtt * (1 - w);
    }
    t->observed = true;
    t->ewma_stamp = now_ms;
    t->consecutive_failures = 0;
    t->ejections = 0;
    t->successes++;
    t->fail_rate *= 1 - FAIL_ALPHA;
    if (isfinite(predicted_ms)) {
        double err = elapsed_ms - predicted_ms;
        if (t->successes == 1) {
            t->err_mean = err;
            t->err_abs = fabs(err);
        } else {
            t->err_mean += ERR_ALPHA * (err - t->err_mean);
            t->err_abs += ERR_ALPHA * (fabs(err) - t->err_abs);
        }
    }
}

void sr_router_observe(sr_router *r, const struct sr_candidate *c, double elapsed_ms,
                       double work_gop, int64_t now_ms)
{
    if (c->target >= r->n || !(elapsed_ms >= 0)) {
        return;
    }
    double other =
        c->fetch_ms + c->wait_ms + c->uplink_ms + c->queue_ms + c->result_wait_ms + c->downlink_ms;
    double net = elapsed_ms - other;
    /* sr_router_success subtracts the compute itself; the error is taken on the whole */
    struct target *t = &r->t[c->target];
    double err_mean = t->err_mean, err_abs = t->err_abs;
    uint64_t n = t->successes;
    sr_router_success(r, c->target, net > 0 ? net : 0, NAN, work_gop, now_ms);
    t->err_mean = err_mean;
    t->err_abs = err_abs;
    if (c->predicted_ms >= 0) {
        double err = elapsed_ms - c->predicted_ms;
        if (n == 0) {
            t->err_mean = err;
            t->err_abs = fabs(err);
        } else {
            t->err_mean += ERR_ALPHA * (err - t->err_mean);
            t->err_abs += ERR_ALPHA * (fabs(err) - t->err_abs);
        }
    }
}

void sr_router_failure(sr_router *r, size_t idx, int64_t now_ms)
{
    if (idx >= r->n) {
        return;
    }
    struct target *t = &r->t[idx];
    t->failures++;
    t->consecutive_failures++;
    t->fail_rate = t->fail_rate * (1 - FAIL_ALPHA) + FAIL_ALPHA;
    if (t->consecutive_failures >= SR_ROUTER_EJECT_AFTER) {
        int64_t period = (int64_t)EJECT_BASE_MS << (t->ejections < 5 ? t->ejections : 5);
        if (period > EJECT_MAX_MS) {
            period = EJECT_MAX_MS;
        }
        t->ejected_until = now_ms + period;
        t->ejections++;
        t->consecutive_failures = 0;
    }
}

int sr_router_set_offline(sr_router *r, size_t idx, bool offline)
{
    if (idx >= r->n) {
        return SR_ERR_INVAL;
    }
    r->t[idx].offline = offline;
    return 0;
}

void sr_router_state(const sr_router *r, size_t idx, int64_t now_ms, struct sr_target_state *out)
{
    memset(out, 0, sizeof(*out));
    if (idx >= r->n) {
        return;
    }
    const struct target *t = &r->t[idx];
    out->ewma_ms = sr__ewma_at(t, now_ms);
    out->inflight = t->inflight;
    out->consecutive_failures = t->consecutive_failures;
    out->successes = t->successes;
    out->failures = t->failures;
    out->ejected_until = t->ejected_until;
    out->err_mean_ms = t->err_mean;
    out->err_abs_ms = t->err_abs;
}

/* ---- compute calendars -------------------------------------------------------------------- */

double sr__cal_fit(const struct cal *c, double arrive, double dur)
{
    double start = arrive;
    for (size_t i = 0; i < c->n; i++) {
        if (c->iv[i][1] <= start) {
            continue;
        }
        if (c->iv[i][0] >= start + dur) {
            break;
        }
        start = c->iv[i][1];
    }
    return start;
}

int sr__cal_add(struct cal *c, double start, double dur, double forget)
{
    size_t keep = 0;
    for (size_t i = 0; i < c->n; i++) {
        if (c->iv[i][1] >= forget) {
            c->iv[keep][0] = c->iv[i][0];
            c->iv[keep][1] = c->iv[i][1];
            keep++;
        }
    }
    c->n = keep;
    if (c->n == c->cap) {
        size_t ncap = c->cap ? c->cap * 2 : 16;
        double(*ni)[2] = realloc(c->iv, ncap * sizeof(*ni));
        if (!ni) {
            return SR_ERR_NOMEM;
        }
        c->iv = ni;
        c->cap = ncap;
    }
    size_t j = c->n;
    while (j > 0 && c->iv[j - 1][0] > start) {
        c->iv[j][0] = c->iv[j - 1][0];
        c->iv[j][1] = c->iv[j - 1][1];
        j--;
    }
    c->iv[j][0] = start;
    c->iv[j][1] = start + dur;
    c->n++;
    return 0;
}
