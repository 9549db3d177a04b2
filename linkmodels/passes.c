/*
 * Pass finding: AOS / TCA / LOS above an elevation mask.
 *
 * The search samples f(t) = elevation(t) - mask and the elevation rate on a
 * coarse grid (at most 60 s, or 1/100 of the orbit), and
 *  - brackets every sign change of f, refined by the Illinois (regula falsi)
 *    method in integer milliseconds;
 *  - catches passes shorter than a grid step by culmination detection: where
 *    the elevation rate turns from positive to negative between two samples
 *    that are both below the mask, the maximum is refined and, if it clears
 *    the mask, yields an AOS and a LOS inside that interval. A maximum below
 *    the mask (a grazing pass) is not a pass.
 *  - skips time where the satellite cannot be up: if the Earth-central angle
 *    between station and satellite exceeds the largest angle at which a
 *    satellite at apogee height clears the mask, nothing can rise before that
 *    angle has closed at the satellite's maximum angular rate (perigee rate
 *    plus Earth rotation, with margin). For LEO this skips most of every
 *    orbit, so many satellites cost far less than a fine scan each.
 * A pass in progress at the window start is followed backwards to its true
 * AOS, one in progress at the window end forwards to its LOS.
 */
#include "linkmodels/lm_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define OMEGA_EARTH 7.292115146706979e-5
#define MAX_STEP_MS 60000
#define MIN_STEP_MS 5000
#define ROOT_TOL_MS 1 /* the first ms on the far side, whatever the bracket */

struct pctx {
    const sr_station *st;
    const sr_sat *sat;
    double mask;
    double lam_max;  /* rad: central angle beyond which the satellite is below the mask */
    double rate_max; /* rad/s: bound on the rate of change of the central angle */
    int64_t step;
};

struct sample {
    int64_t t;
    double f;    /* elevation - mask, deg */
    double rate; /* elevation rate, deg/s */
    double psi;  /* central angle, rad */
};

static int eval(const struct pctx *c, int64_t t, struct sample *s)
{
    sr_state teme, ecef;
    sr_look_angles la;
    int rc = sr_propagate(c->sat, t, &teme);
    if (rc != 0) {
        return rc;
    }
    sr_teme_to_ecef(&teme, t, &ecef);
    sr_look_ecef(c->st, &ecef, &la);
    double r = sqrt(ecef.r[0] * ecef.r[0] + ecef.r[1] * ecef.r[1] + ecef.r[2] * ecef.r[2]);
    double cp = (ecef.r[0] * c->st->geoc_up[0] + ecef.r[1] * c->st->geoc_up[1] +
                 ecef.r[2] * c->st->geoc_up[2]) /
                r;
    if (cp > 1.0) {
        cp = 1.0;
    } else if (cp < -1.0) {
        cp = -1.0;
    }
    s->t = t;
    s->f = la.el_deg - c->mask;
    s->rate = la.el_rate_deg_s;
    s->psi = acos(cp);
    return 0;
}

static void ctx_init(struct pctx *c, const sr_station *st, const sr_sat *sat, double mask)
{
    c->st = st;
    c->sat = sat;
    c->mask = mask;
    double ra = sat->apogee_km * 1.03 + 50.0;
    double rs = st->radius_km;
    double m = mask * LM_DEG2RAD;
    double x = rs / ra * cos(m);
    if (x > 1.0) {
        x = 1.0;
    }
    c->lam_max = acos(x) - m + 1.0 * LM_DEG2RAD; /* geodetic vs geocentric margin */
    c->rate_max = sat->max_rate_rad_s + OMEGA_EARTH;
    int64_t step = (int64_t)(sat->period_min * 60000.0 / 100.0);
    if (step > MAX_STEP_MS) {
        step = MAX_STEP_MS;
    }
    if (step < MIN_STEP_MS) {
        step = MIN_STEP_MS;
    }
    c->step = step;
}

/* Root of |which| (0: f, 1: rate) between a and b whose values have opposite
 * signs (a < 0 <= b or a >= 0 > b). Returns the first ms on the far side. */
static int refine(const struct pctx *c, struct sample a, struct sample b, int which,
                  struct sample *out)
{
    double fa = which ? a.rate : a.f, fb = which ? b.rate : b.f;
    int side = 0;
    int a_neg = fa < 0;
    for (int it = 0; it < 80 && b.t - a.t > ROOT_TOL_MS; it++) {
        int64_t t;
        double denom = fb - fa;
        if (denom != 0.0 && it % 4 != 3) {
            t = a.t + (int64_t)llround((double)(b.t - a.t) * (-fa) / denom);
        } else {
            t = a.t + (b.t - a.t) / 2;
        }
        if (t <= a.t) {
            t = a.t + 1;
        }
        if (t >= b.t) {
            t = b.t - 1;
        }
        struct sample m;
        int rc = eval(c, t, &m);
        if (rc != 0) {
            return rc;
        }
        double fm = which ? m.rate : m.f;
        if ((fm < 0) == a_neg) {
            a = m;
            fa = fm;
            if (side == -1) {
                fb *= 0.5;
            }
            side = -1;
        } else {
            b = m;
            fb = fm;
            if (side == 1) {
                fa *= 0.5;
            }
            side = 1;
        }
    }
    *out = b;
    return 0;
}

/* Events: +1 AOS, -1 LOS. */
struct event {
    int64_t t;
    int kind;
};

struct evlist {
    struct event *v;
    size_t n, cap;
};

static int ev_push(struct evlist *l, int64_t t, int kind)
{
    if (l->n == l->cap) {
        size_t nc = l->cap ? l->cap * 2 : 16;
        struct event *nv = realloc(l->v, nc * sizeof(*nv));
        if (nv == NULL) {
            return SR_ERR_NOMEM;
        }
        l->v = nv;
        l->cap = nc;
    }
    l->v[l->n].t = t;
    l->v[l->n].kind = kind;
    l->n++;
    return 0;
}

/* Examines the interval (a, b) and records its events. */
static int interval_events(const struct pctx *c, const struct sample *a, const struct sample *b,
                           struct evlist *l)
{
    struct sample r, m;
    int rc;
    if (a->f < 0 && b->f >= 0) {
        rc = refine(c, *a, *b, 0, &r);
        return rc ? rc : ev_push(l, r.t, +1);
    }
    if (a->f >= 0 && b->f < 0) {
        rc = refine(c, *a, *b, 0, &r);
        return rc ? rc : ev_push(l, r.t, -1);
    }
    if (a->f < 0 && b->f < 0 && a->rate > 0 && b->rate <= 0) {
        /* a maximum inside: a short pass if it clears the mask */
        rc = refine(c, *a, *b, 1, &m);
        if (rc != 0) {
            return rc;
        }
        if (m.f >= 0) {
            rc = refine(c, *a, m, 0, &r);
            if (rc == 0) {
                rc = ev_push(l, r.t, +1);
            }
            if (rc == 0) {
                rc = refine(c, m, *b, 0, &r);
            }
            if (rc == 0) {
                rc = ev_push(l, r.t, -1);
            }
            return rc;
        }
        return 0;
    }
    if (a->f >= 0 && b->f >= 0 && a->rate < 0 && b->rate >= 0) {
        /* a minimum inside: a brief gap between two passes if it dips below */
        rc = refine(c, *a, *b, 1, &m);
        if (rc != 0) {
            return rc;
        }
        if (m.f < 0) {
            rc = refine(c, *a, m, 0, &r);
            if (rc == 0) {
                rc = ev_push(l, r.t, -1);
            }
            if (rc == 0) {
                rc = refine(c, m, *b, 0, &r);
            }
            if (rc == 0) {
                rc = ev_push(l, r.t, +1);
            }
            return rc;
        }
    }
    return 0;
}

/* Next sample time after |s|: a skip when the satellite provably stays below
 * the mask, else one step. *skipped tells whether the interval needs no
 * examination. */
static int64_t next_time(const struct pctx *c, const struct sample *s, int *skipped)
{
    *skipped = 0;
    if (s->f < 0 && s->psi > c->lam_max) {
        double dt_s = (s->psi - c->lam_max) / c->rate_max;
        if (dt_s * 1000.0 > (double)c->step) {
            *skipped = 1;
            if (dt_s > 86400.0) {
                dt_s = 86400.0;
            }
            return s->t + (int64_t)(dt_s * 1000.0);
        }
    }
    return s->t + c->step;
}

/* Scans [a, b] (f(a) and f(b) known) and records events; if |first_up| stop
 * at the first AOS. */
static int scan(const struct pctx *c, struct sample sa, int64_t b, struct evlist *l, int first_up)
{
    struct sample cur = sa, nxt;
    while (cur.t < b) {
        int skipped;
        int64_t t = next_time(c, &cur, &skipped);
        if (t > b) {
            t = b;
        }
        int rc = eval(c, t, &nxt);
        if (rc != 0) {
            return rc;
        }
        if (!skipped || nxt.f >= 0) {
            size_t before = l->n;
            rc = interval_events(c, &cur, &nxt, l);
            if (rc != 0) {
                return rc;
            }
            if (first_up) {
                for (size_t i = before; i < l->n; i++) {
                    if (l->v[i].kind > 0) {
                        return 0;
                    }
                }
            }
        }
        cur = nxt;
    }
    return 0;
}

/* Follows an ongoing pass from |s| (f >= 0) in direction |dir| (+1/-1) until
 * the mask is crossed, within |limit| ms. *t gets the crossing, *clipped 1
 * if not found. */
static int follow(const struct pctx *c, struct sample s, int dir, int64_t limit, int64_t *t,
                  int *clipped)
{
    struct sample cur = s, nxt;
    int64_t end = s.t + dir * limit;
    *clipped = 0;
    for (;;) {
        int64_t nt = cur.t + dir * c->step;
        if ((dir > 0 && nt >= end) || (dir < 0 && nt <= end)) {
            *t = end;
            *clipped = 1;
            return 0;
        }
        int rc = eval(c, nt, &nxt);
        if (rc != 0) {
            return rc;
        }
        if (nxt.f < 0) {
            struct sample r;
            rc = dir > 0 ? refine(c, cur, nxt, 0, &r) : refine(c, nxt, cur, 0, &r);
            if (rc != 0) {
                return rc;
            }
            *t = r.t;
            return 0;
        }
        cur = nxt;
    }
}

/* Culmination of the pass [aos, los]. */
static int culminate(const struct pctx *c, int64_t aos, int64_t los, struct sample *best)
{
    int64_t span = los - aos;
    int64_t step = c->step;
    if (span / 8 < step) {
        step = span / 8 > 1 ? span / 8 : 1;
    }
    struct sample prev, cur;
    int rc = eval(c, aos, &prev);
    if (rc != 0) {
        return rc;
    }
    *best = prev;
    for (int64_t t = aos + step;; t += step) {
        if (t > los) {
            t = los;
        }
        rc = eval(c, t, &cur);
        if (rc != 0) {
            return rc;
        }
        if (cur.f > best->f) {
            *best = cur;
        }
        if (prev.rate > 0 && cur.rate <= 0) {
            struct sample m;
            rc = refine(c, prev, cur, 1, &m);
            if (rc != 0) {
                return rc;
            }
            if (m.f > best->f) {
                *best = m;
            }
        }
        if (t == los) {
            break;
        }
        prev = cur;
    }
    return 0;
}

int sr_find_passes(const sr_station *st, const sr_sat *sat, int64_t from_ms, int64_t to_ms,
                   double min_el_deg, sr_pass **out, size_t *n)
{
    struct pctx c;
    struct evlist l = {NULL, 0, 0};
    sr_pass *passes = NULL;
    size_t np = 0, cap = 0;
    int rc;

    *out = NULL;
    *n = 0;
    if (from_ms > to_ms || !(min_el_deg >= -5.0 && min_el_deg <= 89.0)) {
        return SR_ERR_INVAL;
    }
    if (to_ms - from_ms > 400LL * 86400000LL) {
        return SR_ERR_TOOBIG;
    }
    ctx_init(&c, st, sat, min_el_deg);

    struct sample s0, s1;
    int64_t scan_to = to_ms;
    int clip_start = 0, clip_end = 0;
    if ((rc = eval(&c, from_ms, &s0)) != 0) {
        return rc;
    }
    if ((rc = eval(&c, to_ms, &s1)) != 0) {
        return rc;
    }
    if (s0.f >= 0) {
        int64_t aos;
        if ((rc = follow(&c, s0, -1, SR_PASS_EDGE_SEARCH_MS, &aos, &clip_start)) != 0) {
            return rc;
        }
        if ((rc = ev_push(&l, aos, +1)) != 0) {
            goto fail;
        }
    }
    if (s1.f >= 0) {
        int64_t los;
        if ((rc = follow(&c, s1, +1, SR_PASS_EDGE_SEARCH_MS, &los, &clip_end)) != 0) {
            goto fail;
        }
        scan_to = los;
    }
    /* scan the window itself from from_ms (events before it are covered by
     * the backward search) to to_ms, then close a pass open at to_ms */
    if ((rc = scan(&c, s0, to_ms, &l, 0)) != 0) {
        goto fail;
    }
    if (s1.f >= 0) {
        if ((rc = ev_push(&l, scan_to, -1)) != 0) {
            goto fail;
        }
    }

    /* assemble */
    int64_t aos = 0;
    int open = 0;
    for (size_t i = 0; i < l.n; i++) {
        if (l.v[i].kind > 0) {
            aos = l.v[i].t;
            open = 1;
            continue;
        }
        if (!open) {
            continue; /* defensive: a LOS without AOS */
        }
        open = 0;
        int64_t los = l.v[i].t;
        if (los < aos) {
            continue;
        }
        struct sample best;
        sr_look_angles la;
        if ((rc = culminate(&c, aos, los, &best)) != 0) {
            goto fail;
        }
        if (np == cap) {
            size_t ncap = cap ? cap * 2 : 8;
            sr_pass *nv = realloc(passes, ncap * sizeof(*nv));
            if (nv == NULL) {
                rc = SR_ERR_NOMEM;
                goto fail;
            }
            passes = nv;
            cap = ncap;
        }
        sr_pass *p = &passes[np++];
        memset(p, 0, sizeof(*p));
        p->aos_ms = aos;
        p->los_ms = los;
        p->tca_ms = best.t;
        p->max_el_deg = best.f + min_el_deg;
        if ((rc = sr_look(st, sat, aos, &la)) != 0) {
            goto fail;
        }
        p->aos_az_deg = la.az_deg;
        if ((rc = sr_look(st, sat, los, &la)) != 0) {
            goto fail;
        }
        p->los_az_deg = la.az_deg;
        if (np == 1 && s0.f >= 0 && clip_start) {
            p->flags |= SR_PASS_AOS_CLIPPED;
        }
        if (i == l.n - 1 && s1.f >= 0 && clip_end) {
            p->flags |= SR_PASS_LOS_CLIPPED;
        }
    }
    free(l.v);
    *out = passes;
    *n = np;
    return 0;
fail:
    free(l.v);
    free(passes);
    return rc;
}

int sr_next_aos(const sr_station *st, const sr_sat *sat, int64_t t_ms, int64_t horizon_ms,
                double min_el_deg, int64_t *aos_ms, int *up)
{
    struct pctx c;
    struct sample s0;
    struct evlist l = {NULL, 0, 0};
    ctx_init(&c, st, sat, min_el_deg);
    int rc = eval(&c, t_ms, &s0);
    if (rc != 0) {
        return rc;
    }
    *up = 0;
    if (s0.f >= 0) {
        *up = 1;
        *aos_ms = t_ms;
        return 0;
    }
    rc = scan(&c, s0, t_ms + horizon_ms, &l, 1);
    if (rc == 0) {
        rc = SR_ERR_NOTFOUND;
        for (size_t i = 0; i < l.n; i++) {
            if (l.v[i].kind > 0) {
                *aos_ms = l.v[i].t;
                rc = 0;
                break;
            }
        }
    }
    free(l.v);
    return rc;
}

int sr_next_los(const sr_station *st, const sr_sat *sat, int64_t t_ms, int64_t horizon_ms,
                double min_el_deg, int64_t *los_ms)
{
    struct pctx c;
    struct sample s0;
    int clipped;
    ctx_init(&c, st, sat, min_el_deg);
    int rc = eval(&c, t_ms, &s0);
    if (rc != 0) {
        return rc;
    }
    if (s0.f < 0) {
        return SR_ERR_UNAVAILABLE;
    }
    rc = follow(&c, s0, +1, horizon_ms, los_ms, &clipped);
    if (rc == 0 && clipped) {
        rc = SR_ERR_NOTFOUND;
    }
    return rc;
}

/* ---- handover ------------------------------------------------------------------ */

int sr_handover_predict(const sr_station *st, const sr_sat *const *sats, size_t n, int64_t t_ms,
                        int64_t horizon_ms, double min_el_deg, sr_handover_entry *out,
                        size_t *serving)
{
    int64_t best_los = INT64_MIN;
    *serving = (size_t)-1;
    for (size_t i = 0; i < n; i++) {
        sr_handover_entry *e = &out[i];
        e->index = i;
        e->up = 0;
        e->aos_ms = INT64_MAX;
        e->los_ms = INT64_MAX;
        int64_t aos;
        int up;
        int rc = sr_next_aos(st, sats[i], t_ms, horizon_ms, min_el_deg, &aos, &up);
        if (rc == SR_ERR_NOTFOUND) {
            continue;
        }
        if (rc != 0) {
            return rc;
        }
        e->up = up;
        e->aos_ms = aos;
        int64_t los;
        rc = sr_next_los(st, sats[i], up ? t_ms : aos, horizon_ms, min_el_deg, &los);
        if (rc == 0) {
            e->los_ms = los;
        } else if (rc != SR_ERR_NOTFOUND && rc != SR_ERR_UNAVAILABLE) {
            return rc;
        }
        if (up && e->los_ms > best_los) {
            best_los = e->los_ms;
            *serving = i;
        }
    }
    return 0;
}

/* A pass of satellite |sat| as an interval, for the slot sweep. */
struct span {
    int64_t aos, los;
    size_t sat;
};

static int cmp_span(const void *a, const void *b)
{
    const struct span *x = a, *y = b;
    return x->aos < y->aos ? -1 : (x->aos > y->aos);
}

/* Brute force: every satellite at every slot. Used when the pass search
 * cannot be (a satellite errors or memory runs out). */
static void best_brute(const sr_station *st, const sr_sat *const *sats, size_t n, int64_t from_ms,
                       int64_t slot_ms, size_t nslots, double min_el_deg, size_t *best)
{
    for (size_t k = 0; k < nslots; k++) {
        int64_t t = from_ms + (int64_t)k * slot_ms + slot_ms / 2;
        double best_el = min_el_deg;
        best[k] = (size_t)-1;
        for (size_t i = 0; i < n; i++) {
            sr_look_angles la;
            if (sr_look(st, sats[i], t, &la) != 0) {
                continue;
            }
            if (la.el_deg >= best_el) {
                best_el = la.el_deg;
                best[k] = i;
            }
        }
    }
}

/* The passes of every satellite over the whole span are found first (cheap:
 * the search skips time a satellite cannot be up), then the slots are swept
 * in time order and only the satellites whose pass covers a slot's middle are
 * looked at. For a shell of thousands of satellites that is a few looks per
 * slot instead of thousands. */
int sr_best_per_slot(const sr_station *st, const sr_sat *const *sats, size_t n, int64_t from_ms,
                     int64_t slot_ms, size_t nslots, double min_el_deg, size_t *best)
{
    if (slot_ms <= 0 || !(min_el_deg >= -5.0 && min_el_deg <= 89.0)) {
        return SR_ERR_INVAL;
    }
    if (nslots == 0) {
        return 0;
    }
    int64_t to_ms = from_ms + (int64_t)nslots * slot_ms;
    struct span *spans = NULL;
    size_t ns = 0, cap = 0;
    int brute = 0;
    for (size_t i = 0; i < n && !brute; i++) {
        sr_pass *p;
        size_t np;
        if (sr_find_passes(st, sats[i], from_ms, to_ms, min_el_deg, &p, &np) != 0) {
            brute = 1;
            break;
        }
        for (size_t k = 0; k < np; k++) {
            if (ns == cap) {
                size_t nc = cap ? cap * 2 : 64;
                struct span *nv = realloc(spans, nc * sizeof(*nv));
                if (nv == NULL) {
                    brute = 1;
                    break;
                }
                spans = nv;
                cap = nc;
            }
            spans[ns].aos = p[k].aos_ms;
            spans[ns].los = p[k].los_ms;
            spans[ns].sat = i;
            ns++;
        }
        free(p);
    }
    size_t *active = brute ? NULL : malloc((ns ? ns : 1) * sizeof(*active));
    if (brute || active == NULL) {
        free(spans);
        free(active);
        best_brute(st, sats, n, from_ms, slot_ms, nslots, min_el_deg, best);
        return 0;
    }
    if (ns > 1) {
        qsort(spans, ns, sizeof(*spans), cmp_span);
    }
    size_t next = 0, nact = 0;
    for (size_t k = 0; k < nslots; k++) {
        int64_t t = from_ms + (int64_t)k * slot_ms + slot_ms / 2;
        while (next < ns && spans[next].aos <= t) {
            active[nact++] = next++;
        }
        double best_el = min_el_deg;
        best[k] = (size_t)-1;
        for (size_t j = 0; j < nact;) {
            const struct span *sp = &spans[active[j]];
            if (sp->los < t) {
                active[j] = active[--nact]; /* expired */
                continue;
            }
            sr_look_angles la;
            if (sr_look(st, sats[sp->sat], t, &la) == 0 && la.el_deg >= best_el) {
                best_el = la.el_deg;
                best[k] = sp->sat;
            }
            j++;
        }
    }
    free(active);
    free(spans);
    return 0;
}
