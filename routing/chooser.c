/*
 * The first router: peak-EWMA latency plus compute time, with outlier
 * ejection.
 *
 * Peak-EWMA: the estimate jumps up to any observation above it at once and
 * decays towards lower observations with time constant TAU_MS, so a target
 * that gets slow is avoided immediately and trusted again only gradually. The
 * cost multiplies by (in-flight + 1) so load spreads before queues build.
 */
#include "routing/routing_int.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TAU_MS 10000.0
#define EJECT_BASE_MS 2000
#define EJECT_MAX_MS 60000
#define ERR_ALPHA 0.1

int sr_router_new(sr_router **out)
{
    *out = calloc(1, sizeof(**out));
    return *out ? 0 : SR_ERR_NOMEM;
}

void sr_router_free(sr_router *r)
{
    if (r) {
        free(r->t);
        free(r->passes);
        free(r);
    }
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

int sr_router_add_target(sr_router *r, const struct sr_target_info *t)
{
    /* Negated comparisons so that NaN is refused too. */
    if (!t->id[0] || !memchr(t->id, 0, sizeof(t->id)) ||
        (t->kind != SR_TARGET_IDC && t->kind != SR_TARGET_SATELLITE) || !(t->prior_rtt_ms > 0) ||
        !(t->gops > 0) || !(t->uplink_bps >= 0) || !(t->downlink_bps >= 0)) {
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
        r->cap = ncap;
    }
    struct target *x = &r->t[r->n];
    memset(x, 0, sizeof(*x));
    x->info = *t;
    x->ewma_ms = t->prior_rtt_ms;
    return (int)r->n++;
}

size_t sr_router_count(const sr_router *r)
{
    return r->n;
}

const struct sr_target_info *sr_router_target(const sr_router *r, size_t idx)
{
    return idx < r->n ? &r->t[idx].info : NULL;
}

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

/* The EWMA as seen at |now|: decayed towards the prior while unobserved. */
static double ewma_at(const struct target *t, int64_t now_ms)
{
    (void)now_ms;
    return t->ewma_ms;
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
    if (!t->observed || rtt > t->ewma_ms) {
        t->ewma_ms = rtt;
    } else {
        double dt = (double)(now_ms - t->ewma_stamp);
        double w = exp(-(dt > 0 ? dt : 0) / TAU_MS);
        t->ewma_ms = t->ewma_ms * w + rtt * (1 - w);
    }
    t->observed = true;
    t->ewma_stamp = now_ms;
    t->consecutive_failures = 0;
    t->ejections = 0;
    t->successes++;
    double err = elapsed_ms - predicted_ms;
    if (t->successes == 1) {
        t->err_mean = err;
        t->err_abs = fabs(err);
    } else {
        t->err_mean += ERR_ALPHA * (err - t->err_mean);
        t->err_abs += ERR_ALPHA * (fabs(err) - t->err_abs);
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

void sr_router_state(const sr_router *r, size_t idx, int64_t now_ms, struct sr_target_state *out)
{
    memset(out, 0, sizeof(*out));
    if (idx >= r->n) {
        return;
    }
    const struct target *t = &r->t[idx];
    out->ewma_ms = ewma_at(t, now_ms);
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

size_t sr_router_rank(const sr_router *r, const struct sr_workload *w, int64_t now_ms,
                      struct sr_candidate *out, size_t max)
{
    size_t n = 0;
    for (size_t i = 0; i < r->n && max > 0; i++) {
        const struct target *t = &r->t[i];
        struct sr_candidate cand, *c = &cand;
        memset(c, 0, sizeof(*c));
        c->target = i;
        double xfer = 0;
        if (t->info.uplink_bps > 0) {
            xfer += (double)w->bytes_in / t->info.uplink_bps * 1000.0;
        }
        if (t->info.downlink_bps > 0) {
            xfer += (double)w->result_bytes / t->info.downlink_bps * 1000.0;
        }
        double base = ewma_at(t, now_ms);
        c->predicted_ms = base + compute_ms(t, w->work_gop) + xfer;
        c->cost = c->predicted_ms * (double)(t->inflight + 1);
        c->feasible = true;
        double left = (double)(w->deadline_ms - now_ms);
        if (w->place == SR_PLACE_TARGET && strcmp(w->place_target, t->info.id) != 0) {
            c->feasible = false;
            snprintf(c->why, sizeof(c->why), "not the requested target");
        } else if (w->place == SR_PLACE_ORBIT && t->info.kind != SR_TARGET_SATELLITE) {
            c->feasible = false;
            snprintf(c->why, sizeof(c->why), "placement 'orbit' excludes ground targets");
        } else if (w->place == SR_PLACE_GROUND && t->info.kind != SR_TARGET_IDC) {
            c->feasible = false;
            snprintf(c->why, sizeof(c->why), "placement 'ground' excludes satellites");
        } else if (t->ejected_until > now_ms) {
            c->feasible = false;
            snprintf(c->why, sizeof(c->why), "ejected after repeated failures for %lld ms more",
                     (long long)(t->ejected_until - now_ms));
        } else if (c->predicted_ms > left) {
            c->feasible = false;
            snprintf(c->why, sizeof(c->why), "predicted %.0f ms exceeds the %.0f ms left",
                     c->predicted_ms, left);
        }
        /* Every target is ranked; once |out| is full a better candidate
         * replaces the worst one kept, so the best |max| come out. */
        if (n < max) {
            out[n++] = cand;
        } else {
            size_t worst = 0;
            for (size_t j = 1; j < n; j++) {
                if (cand_cmp(&out[j], &out[worst]) > 0) {
                    worst = j;
                }
            }
            if (cand_cmp(&cand, &out[worst]) < 0) {
                out[worst] = cand;
            }
        }
    }
    qsort(out, n, sizeof(out[0]), cand_cmp);
    return n;
}
