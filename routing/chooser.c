/*
 * The target registry, feedback (peak-EWMA, prediction error, ejection), the
 * policy and the ranking. The prediction itself is in predict.c, the pass
 * store and its index in schedule.c.
 *
 * Peak-EWMA: the estimate jumps up to any observation above it at once and
 * decays towards lower observations with time constant TAU_MS, so a target
 * that gets slow is avoided immediately and trusted again only gradually.
 * While nothing is observed it relaxes back to the configured prior with time
 * constant PRIOR_TAU_MS: an old observation says less and less about now.
 * The cost multiplies time by (in-flight + 1) so load spreads before queues
 * build.
 *
 * Ranking: every ground target (and every satellite without a schedule) is
 * evaluated; satellites with a schedule are found through the pass index (in
 * view now, then the next windows, at most policy.max_windows of them), so a
 * decision costs the same with 100 or 10,000 satellites. When the output has
 * room for more, the remaining satellites are evaluated too, so small setups
 * (and explanations) see every target.
 */
#include "routing/routing_int.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TAU_MS 10000.0
#define PRIOR_TAU_MS 300000.0
#define EJECT_BASE_MS 2000
#define FALLBACK_ALL_MAX 256 /* satellites: past this, rank skips placement-excluded ones */
#define EJECT_MAX_MS 60000
#define ERR_ALPHA 0.1
#define FAIL_ALPHA 0.2

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

int sr_router_new(sr_router **out)
{
    *out = calloc(1, sizeof(**out));
    if (!*out) {
        return SR_ERR_NOMEM;
    }
    sr_policy_default(&(*out)->pol);
    return 0;
}

void sr_router_free(sr_router *r)
{
    if (r) {
        for (size_t i = 0; i < r->n; i++) {
            free(r->t[i].es);
            free(r->t[i].ecl);
            free(r->t[i].cal.iv);
        }
        free(r->t);
        free(r->plain);
        sr__schedule_free(r);
        free(r);
    }
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

int sr_router_add_target(sr_router *r, const struct sr_target_info *t)
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
    sr__link_target(r, r->n - 1);
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

double sr__ewma_at(const struct target *t, int64_t now_ms)
{
    if (!t->observed || now_ms <= t->ewma_stamp) {
        return t->ewma_ms;
    }
    double prior = t->info.prior_rtt_ms;
    double w = exp(-(double)(now_ms - t->ewma_stamp) / PRIOR_TAU_MS);
    return prior + (t->ewma_ms - prior) * w;
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

int sr_place_parse(struct sr_workload *w, const char *v)
{
    w->place_target[0] = 0;
    if (!v || !*v || !strcmp(v, "any")) {
        w->place = SR_PLACE_ANY;
    } else if (!strcmp(v, "orbit")) {
        w->place = SR_PLACE_ORBIT;
    } else if (!strcmp(v, "ground")) {
        w->place = SR_PLACE_GROUND;
    } else if (!strncmp(v, "target:", 7) && v[7] && strlen(v + 7) < SR_TARGET_IDMAX) {
        w->place = SR_PLACE_TARGET;
        snprintf(w->place_target, sizeof(w->place_target), "%s", v + 7);
    } else {
        return SR_ERR_PARSE;
    }
    return 0;
}

/* ---- commit (reservations) -------------------------------------------------------------- */

static struct pass *pass_at(sr_router *r, int slot, int64_t aos)
{
    if (slot < 0 || !aos) {
        return NULL;
    }
    struct slot *sl = &r->slots[slot];
    struct pass *p = (struct pass *)sr__pass_after(sl, aos);
    for (; p && p < sl->p + sl->n; p++) {
        if (p->aos == aos) {
            return p;
        }
        if (p->aos > aos) {
            break;
        }
    }
    return NULL;
}

int sr_router_commit(sr_router *r, const struct sr_workload *w, const struct sr_candidate *c,
                     int64_t now_ms)
{
    if (c->target >= r->n || c->predicted_ms < 0) {
        return SR_ERR_INVAL;
    }
    struct target *t = &r->t[c->target];
    bool onboard = w->data_at[0] && !strcmp(w->data_at, t->info.id);
    struct pass *up = pass_at(r, t->slot, c->up_aos_ms);
    if (up && !onboard) {
        up->res_up += (double)w->bytes_in;
    }
    struct pass *down = pass_at(r, t->slot, c->down_aos_ms);
    if (down) {
        down->res_down += (double)w->result_bytes;
    }
    if (w->data_at[0] && !onboard && c->fetch_ms > 0) {
        /* the fetch used the data satellite's downlink: find its pass */
        int ds = sr__slot_find(r, w->data_at);
        if (ds >= 0) {
            struct slot *sl = &r->slots[ds];
            int64_t t_end = now_ms + (int64_t)c->fetch_ms;
            struct pass *p = (struct pass *)sr__pass_after(sl, t_end - 1);
            if (p && p->aos <= t_end) {
                p->res_down += (double)w->bytes_in;
            }
        }
    }
    double arrive = (double)now_ms + c->fetch_ms + c->wait_ms + c->uplink_ms + c->light_up_ms;
    if (c->compute_ms > 0) {
        double start = arrive + c->queue_ms - t->info.queue_ms;
        return sr__cal_add(&t->cal, start, c->compute_ms, (double)now_ms - 60000.0);
    }
    return 0;
}

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

/* ---- ranking ------------------------------------------------------------------------------- */

static int cand_cmp(const void *a, const void *b)
{
    const struct sr_candidate *x = a, *y = b;
    if (x->feasible != y->feasible) {
        return x->feasible ? -1 : 1;
    }
    if (x->cost != y->cost) {
        return x->cost < y->cost ? -1 : 1;
    }
    return x->target < y->target ? -1 : x->target > y->target;
}

struct topk {
    struct sr_candidate *out;
    size_t n, max, worst;
};

static void topk_add(struct topk *k, const struct sr_candidate *c)
{
    if (k->n < k->max) {
        k->out[k->n] = *c;
        if (k->n == 0 || cand_cmp(c, &k->out[k->worst]) > 0) {
            k->worst = k->n;
        }
        k->n++;
        return;
    }
    if (cand_cmp(c, &k->out[k->worst]) >= 0) {
        return;
    }
    k->out[k->worst] = *c;
    k->worst = 0;
    for (size_t j = 1; j < k->n; j++) {
        if (cand_cmp(&k->out[j], &k->out[k->worst]) > 0) {
            k->worst = j;
        }
    }
}

/* A small set of target indexes seen in this decision (open addressing). */
#define SEEN_MAX 8192
struct seen {
    uint32_t *v; /* index + 1 */
    size_t cap, n;
};

static bool seen_add(struct seen *s, uint32_t idx)
{
    size_t mask = s->cap - 1;
    for (size_t i = (idx * 2654435761u) & mask;; i = (i + 1) & mask) {
        if (s->v[i] == idx + 1) {
            return false;
        }
        if (!s->v[i]) {
            s->v[i] = idx + 1;
            s->n++;
            return true;
        }
    }
}

static bool seen_has(const struct seen *s, uint32_t idx)
{
    size_t mask = s->cap - 1;
    for (size_t i = (idx * 2654435761u) & mask;; i = (i + 1) & mask) {
        if (s->v[i] == idx + 1) {
            return true;
        }
        if (!s->v[i]) {
            return false;
        }
    }
}

/* Satellites picked from the pass index: those in view at now with the
 * latest LOS first (a min-heap by LOS while scanning), then the next windows
 * to open, in AOS order. */
struct pick {
    size_t max;
    uint32_t sat[SEEN_MAX / 2];
    int64_t los[SEEN_MAX / 2];
    size_t n;
    struct seen seen;
};

static void heap_down(struct pick *p, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, m = i;
        if (l < p->n && p->los[l] < p->los[m]) {
            m = l;
        }
        if (l + 1 < p->n && p->los[l + 1] < p->los[m]) {
            m = l + 1;
        }
        if (m == i) {
            return;
        }
        int64_t tl = p->los[i];
        uint32_t ts = p->sat[i];
        p->los[i] = p->los[m];
        p->sat[i] = p->sat[m];
        p->los[m] = tl;
        p->sat[m] = ts;
        i = m;
    }
}

static void pick_windows(const sr_router *r, int64_t now, int64_t to, struct pick *p)
{
    size_t i = sr__bucket_lb(r, sr__bkey(now - r->maxdur));
    int64_t from = now - r->maxdur;
    /* in view at now: AOS in [now - longest pass, now], LOS after now */
    for (; i < r->nb; i++) {
        const struct bucket *b = &r->b[i];
        if (b->key * SR_BUCKET_MS > now) {
            break;
        }
        uint32_t j = 0;
        if (b->n > 8 && b->e[0].aos < from) {
            uint32_t lo = 0, hi = b->n;
            while (lo < hi) {
                uint32_t mid = (lo + hi) / 2;
                if (b->e[mid].aos < from) {
                    lo = mid + 1;
                } else {
                    hi = mid;
                }
            }
            j = lo;
        }
        for (; j < b->n; j++) {
            const struct ient *e = &b->e[j];
            if (e->aos > now) {
                goto upcoming;
            }
            if (e->los <= now || e->target < 0) {
                continue;
            }
            if (p->n < p->max) {
                /* sift up */
                size_t k = p->n++;
                while (k > 0 && p->los[(k - 1) / 2] > e->los) {
                    p->los[k] = p->los[(k - 1) / 2];
                    p->sat[k] = p->sat[(k - 1) / 2];
                    k = (k - 1) / 2;
                }
                p->los[k] = e->los;
                p->sat[k] = (uint32_t)e->target;
            } else if (e->los > p->los[0]) {
                p->los[0] = e->los;
                p->sat[0] = (uint32_t)e->target;
                heap_down(p, 0);
            }
        }
    }
upcoming:
    for (size_t k = 0; k < p->n; k++) {
        seen_add(&p->seen, p->sat[k]);
    }
    size_t cap = p->n + p->max;
    for (; i < r->nb && p->n < cap; i++) {
        const struct bucket *b = &r->b[i];
        if (b->key * SR_BUCKET_MS >= to) {
            return;
        }
        for (uint32_t j = 0; j < b->n && p->n < cap; j++) {
            const struct ient *e = &b->e[j];
            if (e->aos <= now || e->target < 0) {
                continue;
            }
            if (e->aos >= to) {
                return;
            }
            if (seen_add(&p->seen, (uint32_t)e->target)) {
                p->sat[p->n] = (uint32_t)e->target;
                p->los[p->n++] = e->los;
            }
        }
    }
}

/* Branch and bound: once the output is full and its worst entry is feasible,
 * a target whose cost cannot go below that entry's is not evaluated. The
 * bound: time_weight x (compute [+ the two network legs for targets without
 * a schedule]) x (1 + inflight_weight x inflight); every other term of the
 * cost is >= 0. Explanations (output with room for everyone) never prune. */
static bool pruned(const sr_router *r, const struct topk *k, size_t idx,
                   const struct sr_workload *w, int64_t now, bool plain)
{
    if (k->n < k->max || !k->out[k->worst].feasible) {
        return false;
    }
    const struct target *t = &r->t[idx];
    double time = w->work_gop > 0 ? w->work_gop / t->info.gops * 1000.0 : 0.0;
    if (plain) {
        time += sr__ewma_at(t, now);
    }
    double lb = r->pol.time_weight * time * (1 + r->pol.inflight_weight * t->inflight);
    return lb > k->out[k->worst].cost;
}

void sr__why_text(const sr_router *r, const struct sr_workload *w, int64_t now,
                  struct sr_candidate *c);

size_t sr_router_rank(const sr_router *r, const struct sr_workload *w, int64_t now_ms,
                      struct sr_candidate *out, size_t max)
{
    if (max == 0 || r->n == 0) {
        return 0;
    }
    int data_slot = w->data_at[0] ? sr__slot_find(r, w->data_at) : -1;
    struct topk k = {out, 0, max, 0};
    struct sr_candidate c;
    for (size_t i = 0; i < r->nplain; i++) {
        if (pruned(r, &k, r->plain[i], w, now_ms, true)) {
            continue;
        }
        sr__evaluate(r, r->plain[i], w, now_ms, data_slot, &c);
        topk_add(&k, &c);
    }
    size_t nsched = r->n - r->nplain;
    if (nsched) {
        uint32_t seenbuf[SEEN_MAX];
        struct pick *p = malloc(sizeof(*p));
        if (p) {
            size_t mw = r->pol.max_windows < SEEN_MAX / 4 ? r->pol.max_windows : SEEN_MAX / 4;
            p->max = mw;
            p->n = 0;
            p->seen.v = seenbuf;
            p->seen.cap = 1;
            while (p->seen.cap < 4 * mw) {
                p->seen.cap *= 2;
            }
            p->seen.n = 0;
            memset(seenbuf, 0, p->seen.cap * sizeof(uint32_t));
            int64_t to = w->store_and_forward
                             ? (w->deadline_ms > now_ms ? w->deadline_ms : now_ms + 1)
                             : now_ms + 1;
            pick_windows(r, now_ms, to, p);
            for (size_t i = 0; i < p->n; i++) {
                if (pruned(r, &k, p->sat[i], w, now_ms, false)) {
                    continue;
                }
                sr__evaluate(r, p->sat[i], w, now_ms, data_slot, &c);
                topk_add(&k, &c);
            }
            size_t evaluated = p->n;
            /* Room left: evaluate the other satellites too (small setups,
             * explanations). In a large fleet, only those the placement
             * allows: 10,000 satellites evaluated for work bound to one of
             * them made each decision cost milliseconds. */
            if (k.n < max && evaluated < nsched) {
                bool large = nsched > FALLBACK_ALL_MAX;
                for (size_t i = 0; i < r->n; i++) {
                    if (r->t[i].scheduled && !seen_has(&p->seen, (uint32_t)i) &&
                        (!large || sr__place_ok(&r->t[i], w))) {
                        sr__evaluate(r, i, w, now_ms, data_slot, &c);
                        topk_add(&k, &c);
                    }
                }
            }
            free(p);
        } else {
            for (size_t i = 0; i < r->n; i++) {
                if (r->t[i].scheduled) {
                    sr__evaluate(r, i, w, now_ms, data_slot, &c);
                    topk_add(&k, &c);
                }
            }
        }
    }
    if (k.n > 16) {
        qsort(out, k.n, sizeof(out[0]), cand_cmp);
    } else {
        for (size_t i = 1; i < k.n; i++) { /* few: insertion sort */
            if (cand_cmp(&out[i - 1], &out[i]) > 0) {
                struct sr_candidate x = out[i];
                size_t j = i;
                while (j > 0 && cand_cmp(&out[j - 1], &x) > 0) {
                    out[j] = out[j - 1];
                    j--;
                }
                out[j] = x;
            }
        }
    }
    for (size_t i = 0; i < k.n; i++) {
        if (!out[i].feasible) {
            sr__why_text(r, w, now_ms, &out[i]);
        }
    }
    return k.n;
}
