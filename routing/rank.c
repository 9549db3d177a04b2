/*
 * The ranking: every target's prediction for one workload (predict.c), the
 * best kept, feasible ones first by cost; and the commit that reserves what
 * a dispatched candidate uses. The top of the decision path: it reads the
 * registry and the schedule and asks predict.c for each candidate.
 *
 * Every ground target (and every satellite without a schedule) is
 * evaluated; satellites with a schedule are found through the pass index (in
 * view now, then the next windows, at most policy.max_windows of them), so a
 * decision costs the same with 100 or 10,000 satellites. When the output has
 * room for more, the remaining satellites are evaluated too, so small setups
 * (and explanations) see every target.
 */
#include "routing/routing_int.h"

#include <stdlib.h>
#include <string.h>

#define FALLBACK_ALL_MAX 256 /* satellites: past this, rank skips placement-excluded ones */

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
