/*
 * Pass schedule: every known contact window, per satellite name, plus an
 * index by AOS for the questions a decision asks across satellites: which are
 * in view at t, and which windows open next.
 *
 * Layout (memory per stored pass, see sr_router_pass_bytes): each satellite
 * name has a slot with its passes in one array sorted by AOS (struct pass,
 * 72 bytes); the index keeps a 24-byte entry per pass in buckets of
 * SR_BUCKET_MS by AOS, each bucket sorted. "In view at t" scans the buckets
 * from t - (longest pass) to t; "next windows" walks forward from t. With a
 * day of passes for 10,000 satellites a decision touches a few hundred index
 * entries instead of every satellite.
 *
 * Updates replace one satellite's passes over a time range. Every allocation
 * an update needs is made before anything changes, so a failed update changes
 * nothing.
 */
#include "routing/routing_int.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- slots by name ---------------------------------------------------------------- */

static uint64_t name_hash(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++) {
        h = (h ^ (uint8_t)*s) * 1099511628211ULL;
    }
    return h;
}

int sr__slot_find(const sr_router *r, const char *name)
{
    if (!r->shcap) {
        return -1;
    }
    size_t mask = r->shcap - 1;
    for (size_t i = (size_t)name_hash(name) & mask;; i = (i + 1) & mask) {
        uint32_t v = r->shash[i];
        if (!v) {
            return -1;
        }
        if (!strcmp(r->slots[v - 1].name, name)) {
            return (int)(v - 1);
        }
    }
}

static int rehash(sr_router *r, size_t ncap)
{
    uint32_t *h = calloc(ncap, sizeof(*h));
    if (!h) {
        return SR_ERR_NOMEM;
    }
    for (size_t s = 0; s < r->nslots; s++) {
        size_t i = (size_t)name_hash(r->slots[s].name) & (ncap - 1);
        while (h[i]) {
            i = (i + 1) & (ncap - 1);
        }
        h[i] = (uint32_t)(s + 1);
    }
    free(r->shash);
    r->shash = h;
    r->shcap = ncap;
    return 0;
}

/* The slot for |name|, created if missing. Returns its index or SR_ERR_NOMEM. */
static int slot_get(sr_router *r, const char *name)
{
    int s = sr__slot_find(r, name);
    if (s >= 0) {
        return s;
    }
    if ((r->nslots + 1) * 2 > r->shcap && rehash(r, r->shcap ? r->shcap * 2 : 64) != 0) {
        return SR_ERR_NOMEM;
    }
    if (r->nslots == r->slotcap) {
        size_t ncap = r->slotcap ? r->slotcap * 2 : 16;
        struct slot *ns = realloc(r->slots, ncap * sizeof(*ns));
        if (!ns) {
            return SR_ERR_NOMEM;
        }
        r->slots = ns;
        r->slotcap = ncap;
    }
    struct slot *sl = &r->slots[r->nslots];
    memset(sl, 0, sizeof(*sl));
    snprintf(sl->name, sizeof(sl->name), "%s", name);
    sl->target = sr_router_find(r, name);
    if (sl->target >= 0) {
        r->t[sl->target].slot = (int)r->nslots;
    }
    size_t mask = r->shcap - 1;
    size_t i = (size_t)name_hash(name) & mask;
    while (r->shash[i]) {
        i = (i + 1) & mask;
    }
    r->shash[i] = (uint32_t)(r->nslots + 1);
    return (int)r->nslots++;
}

void sr__link_target(sr_router *r, size_t idx)
{
    int s = sr__slot_find(r, r->t[idx].info.id);
    r->t[idx].slot = s;
    if (s >= 0) {
        struct slot *sl = &r->slots[s];
        sl->target = (int)idx;
        bool sat = r->t[idx].info.kind == SR_TARGET_SATELLITE;
        for (uint32_t i = 0; i < sl->n; i++) {
            size_t bi = sr__bucket_lb(r, sr__bkey(sl->p[i].aos));
            struct bucket *b = bi < r->nb ? &r->b[bi] : NULL;
            for (uint32_t j = 0; b && j < b->n; j++) {
                if (b->e[j].slot == (uint32_t)s) {
                    b->e[j].target = sat ? (int32_t)idx : -1;
                }
            }
        }
        if (sl->n > 0) {
            sr__mark_scheduled(r, idx);
        }
    }
}

const struct pass *sr__pass_after(const struct slot *s, int64_t t)
{
    /* passes do not overlap within a slot, so LOS is sorted like AOS */
    size_t lo = 0, hi = s->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (s->p[mid].los > t) {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    return lo < s->n ? &s->p[lo] : NULL;
}

/* ---- the AOS index ---------------------------------------------------------------- */

int64_t sr__bkey(int64_t t)
{
    /* floor division, safe down to INT64_MIN */
    return t >= 0 ? t / SR_BUCKET_MS : (t + 1) / SR_BUCKET_MS - 1;
}

/* Index of the first bucket with key >= k. */
size_t sr__bucket_lb(const sr_router *r, int64_t k)
{
    size_t lo = 0, hi = r->nb;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (r->b[mid].key < k) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return lo;
}

/* Makes sure the bucket for |aos| exists and has room for |extra| more. */
static int bucket_reserve(sr_router *r, int64_t aos, uint32_t extra)
{
    int64_t k = sr__bkey(aos);
    size_t i = sr__bucket_lb(r, k);
    if (i == r->nb || r->b[i].key != k) {
        if (r->nb == r->bcap) {
            size_t ncap = r->bcap ? r->bcap * 2 : 64;
            struct bucket *nb = realloc(r->b, ncap * sizeof(*nb));
            if (!nb) {
                return SR_ERR_NOMEM;
            }
            r->b = nb;
            r->bcap = ncap;
        }
        memmove(&r->b[i + 1], &r->b[i], (r->nb - i) * sizeof(*r->b));
        memset(&r->b[i], 0, sizeof(r->b[i]));
        r->b[i].key = k;
        r->nb++;
    }
    struct bucket *b = &r->b[i];
    if (b->n + extra > b->cap) {
        uint32_t ncap = b->cap ? b->cap : 8;
        while (ncap < b->n + extra) {
            ncap += ncap / 2;
        }
        struct ient *ne = realloc(b->e, ncap * sizeof(*ne));
        if (!ne) {
            return SR_ERR_NOMEM;
        }
        b->e = ne;
        b->cap = ncap;
    }
    return 0;
}

/* Cannot fail after bucket_reserve. */
static void index_add(sr_router *r, const struct pass *p, uint32_t slot)
{
    size_t i = sr__bucket_lb(r, sr__bkey(p->aos));
    struct bucket *b = &r->b[i];
    uint32_t j = b->n;
    while (j > 0 && b->e[j - 1].aos > p->aos) {
        j--;
    }
    memmove(&b->e[j + 1], &b->e[j], (b->n - j) * sizeof(*b->e));
    b->e[j].aos = p->aos;
    b->e[j].los = p->los;
    b->e[j].slot = slot;
    int tg = r->slots[slot].target;
    b->e[j].target = tg >= 0 && r->t[tg].info.kind == SR_TARGET_SATELLITE ? tg : -1;
    b->n++;
}

static void index_del(sr_router *r, const struct pass *p, uint32_t slot)
{
    size_t i = sr__bucket_lb(r, sr__bkey(p->aos));
    if (i == r->nb || r->b[i].key != sr__bkey(p->aos)) {
        return;
    }
    struct bucket *b = &r->b[i];
    for (uint32_t j = 0; j < b->n; j++) {
        if (b->e[j].slot == slot && b->e[j].aos == p->aos) {
            memmove(&b->e[j], &b->e[j + 1], (b->n - j - 1) * sizeof(*b->e));
            b->n--;
            return;
        }
    }
}

/* Calls |fn| for every indexed pass with los > from and aos < to, in AOS
 * order, until it returns false. */
static void index_scan(const sr_router *r, int64_t from, int64_t to,
                       bool (*fn)(void *arg, const struct ient *e), void *arg)
{
    int64_t start = from > INT64_MIN + r->maxdur ? from - r->maxdur : INT64_MIN;
    for (size_t i = sr__bucket_lb(r, sr__bkey(start)); i < r->nb; i++) {
        const struct bucket *b = &r->b[i];
        if (b->key * SR_BUCKET_MS >= to) {
            return;
        }
        for (uint32_t j = 0; j < b->n; j++) {
            const struct ient *e = &b->e[j];
            if (e->aos >= to) {
                return;
            }
            if (e->los > from && !fn(arg, e)) {
                return;
            }
        }
    }
}

void sr__schedule_free(sr_router *r)
{
    for (size_t i = 0; i < r->nslots; i++) {
        free(r->slots[i].p);
    }
    free(r->slots);
    free(r->shash);
    for (size_t i = 0; i < r->nb; i++) {
        free(r->b[i].e);
    }
    free(r->b);
}

size_t sr_router_pass_bytes(const sr_router *r)
{
    if (!r->npasses) {
        return 0;
    }
    size_t bytes = 0;
    for (size_t i = 0; i < r->nslots; i++) {
        bytes += r->slots[i].cap * sizeof(struct pass) + sizeof(struct slot) + 2 * sizeof(uint32_t);
    }
    for (size_t i = 0; i < r->nb; i++) {
        bytes += r->b[i].cap * sizeof(struct ient) + sizeof(struct bucket);
    }
    return bytes / r->npasses;
}

/* ---- updates ------------------------------------------------------------------------- */

static bool overlaps(int64_t aos, int64_t los, int64_t from, int64_t to)
{
    return los > from && aos < to;
}

static int pass_cmp(const void *a, const void *b)
{
    const struct pass *x = a, *y = b;
    return x->aos < y->aos ? -1 : x->aos > y->aos;
}

static int src_code(sr_router *r, const char *src)
{
    for (unsigned i = 0; i < r->nsrcs; i++) {
        if (!strncmp(r->srcs[i], src, sizeof(r->srcs[i]) - 1)) {
            return (int)i;
        }
    }
    if (r->nsrcs == 16) {
        return 15; /* the last one stands for "other" */
    }
    snprintf(r->srcs[r->nsrcs], sizeof(r->srcs[0]), "%.15s", src);
    return (int)r->nsrcs++;
}

int sr_router_set_passes(sr_router *r, const char *sat, int64_t from_ms, int64_t to_ms,
                         const struct sr_pass_rec *recs, size_t n)
{
    if (!sat || !*sat || from_ms >= to_ms || strlen(sat) >= SR_TARGET_IDMAX) {
        return SR_ERR_INVAL;
    }
    for (size_t i = 0; i < n; i++) {
        if (strcmp(recs[i].sat, sat) != 0 || recs[i].aos_ms >= recs[i].los_ms ||
            !(recs[i].uplink_bps >= 0) || !(recs[i].downlink_bps >= 0) ||
            !(recs[i].light_ms >= 0)) {
            return SR_ERR_INVAL;
        }
    }
    int s = slot_get(r, sat);
    if (s < 0) {
        return s;
    }
    struct slot *sl = &r->slots[s];
    size_t keep = 0;
    for (uint32_t i = 0; i < sl->n; i++) {
        keep += !overlaps(sl->p[i].aos, sl->p[i].los, from_ms, to_ms);
    }
    size_t total = keep + n;
    if (total > UINT32_MAX / 2) {
        return SR_ERR_TOOBIG;
    }
    struct pass *np = malloc((total ? total : 1) * sizeof(*np));
    if (!np) {
        return SR_ERR_NOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        if (bucket_reserve(r, recs[i].aos_ms, 1) != 0) {
            free(np);
            return SR_ERR_NOMEM;
        }
    }
    /* Nothing fails from here on. */
    size_t k = 0;
    for (uint32_t i = 0; i < sl->n; i++) {
        const struct pass *p = &sl->p[i];
        if (!overlaps(p->aos, p->los, from_ms, to_ms)) {
            np[k++] = *p;
        } else {
            index_del(r, p, (uint32_t)s);
        }
    }
    for (size_t i = 0; i < n; i++) {
        const struct sr_pass_rec *rc = &recs[i];
        struct pass *p = &np[k++];
        memset(p, 0, sizeof(*p));
        p->aos = rc->aos_ms;
        p->tca = rc->tca_ms;
        p->los = rc->los_ms;
        p->max_el = (float)rc->max_el_deg;
        p->up_bps = rc->uplink_bps;
        p->down_bps = rc->downlink_bps;
        p->light_ms = (float)rc->light_ms;
        p->src = (uint8_t)src_code(r, rc->source);
        /* a re-fed pass (AOS within a minute) keeps the bytes already promised in it */
        int64_t best = 60000;
        for (uint32_t j = 0; j < sl->n; j++) {
            const struct pass *o = &sl->p[j];
            if (overlaps(o->aos, o->los, from_ms, to_ms) && llabs(o->aos - p->aos) < best) {
                best = llabs(o->aos - p->aos);
                p->res_up = o->res_up;
                p->res_down = o->res_down;
            }
        }
        if (p->los - p->aos > r->maxdur) {
            r->maxdur = p->los - p->aos;
        }
        index_add(r, p, (uint32_t)s);
    }
    qsort(np, total, sizeof(*np), pass_cmp);
    r->npasses = r->npasses - sl->n + total;
    free(sl->p);
    sl->p = np;
    sl->n = sl->cap = (uint32_t)total;
    if (sl->target >= 0) {
        sr__mark_scheduled(r, (size_t)sl->target);
    }
    return 0;
}

static void to_rec(const sr_router *r, const struct slot *sl, const struct pass *p,
                   struct sr_pass_rec *o)
{
    memset(o, 0, sizeof(*o));
    snprintf(o->sat, sizeof(o->sat), "%s", sl->name);
    o->aos_ms = p->aos;
    o->tca_ms = p->tca;
    o->los_ms = p->los;
    o->max_el_deg = (double)p->max_el;
    o->uplink_bps = p->up_bps;
    o->downlink_bps = p->down_bps;
    o->light_ms = (double)p->light_ms;
    snprintf(o->source, sizeof(o->source), "%s", r->srcs[p->src]);
}

struct collect {
    const sr_router *r;
    struct sr_pass_rec *out;
    size_t max, n;
};

static bool collect_one(void *arg, const struct ient *e)
{
    struct collect *c = arg;
    if (c->n < c->max) {
        const struct slot *sl = &c->r->slots[e->slot];
        const struct pass *p = sr__pass_after(sl, e->aos);
        while (p && p < sl->p + sl->n && p->aos != e->aos) {
            p++;
        }
        if (p && p < sl->p + sl->n) {
            to_rec(c->r, sl, p, &c->out[c->n]);
        }
    }
    c->n++;
    return true;
}

size_t sr_router_passes(const sr_router *r, const char *sat, int64_t from_ms, int64_t to_ms,
                        struct sr_pass_rec *out, size_t max)
{
    if (!sat) {
        struct collect c = {r, out, max, 0};
        index_scan(r, from_ms, to_ms, collect_one, &c);
        return c.n;
    }
    int s = sr__slot_find(r, sat);
    if (s < 0) {
        return 0;
    }
    const struct slot *sl = &r->slots[s];
    size_t n = 0;
    for (const struct pass *p = sr__pass_after(sl, from_ms); p && p < sl->p + sl->n; p++) {
        if (p->aos >= to_ms) {
            break;
        }
        if (n < max) {
            to_rec(r, sl, p, &out[n]);
        }
        n++;
    }
    return n;
}

int sr_router_pass_reserved(const sr_router *r, const char *sat, int64_t t_ms, double *up,
                            double *down)
{
    int s = sr__slot_find(r, sat);
    if (s < 0) {
        return SR_ERR_NOTFOUND;
    }
    const struct pass *p = sr__pass_after(&r->slots[s], t_ms);
    if (!p || p->aos > t_ms) {
        return SR_ERR_NOTFOUND;
    }
    *up = p->res_up;
    *down = p->res_down;
    return 0;
}

/* ---- operator schedules and predictions ------------------------------------------------- */

static int rec_cmp(const void *a, const void *b)
{
    const struct sr_pass_rec *x = a, *y = b;
    return x->aos_ms < y->aos_ms ? -1 : x->aos_ms > y->aos_ms;
}

/* An operator's schedule knows what geometry does not (antenna bookings,
 * cancelled contacts, licensed rates), so a window the operator has spoken
 * for grows no extra passes from a prediction; outside those windows the
 * prediction is the best there is. */
size_t sr_schedule_merge(struct sr_pass_rec *out, const struct sr_pass_rec *ops, size_t nops,
                         const int64_t (*win)[2], size_t nwin, const struct sr_pass_rec *pred,
                         size_t npred)
{
    if (nops) {
        memcpy(out, ops, nops * sizeof(*out));
    }
    size_t n = nops;
    for (size_t i = 0; i < npred; i++) {
        const struct sr_pass_rec *p = &pred[i];
        bool covered = false;
        for (size_t k = 0; !covered && k < nwin; k++) {
            covered = overlaps(p->aos_ms, p->los_ms, win[k][0], win[k][1]);
        }
        for (size_t k = 0; !covered && k < nops; k++) {
            covered = overlaps(p->aos_ms, p->los_ms, ops[k].aos_ms, ops[k].los_ms);
        }
        if (!covered) {
            out[n++] = *p;
        }
    }
    qsort(out, n, sizeof(*out), rec_cmp);
    return n;
}
