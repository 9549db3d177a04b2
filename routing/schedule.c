/*
 * Pass schedule: every known contact window, kept in one array sorted by
 * (satellite, AOS). Replacing a satellite's window builds the new array first
 * and swaps it in, so a failed update changes nothing.
 */
#include "routing/routing_int.h"

#include <stdlib.h>
#include <string.h>

static int pass_cmp(const void *a, const void *b)
{
    const struct sr_pass_rec *x = a, *y = b;
    int c = strcmp(x->sat, y->sat);
    if (c) {
        return c;
    }
    return x->aos_ms < y->aos_ms ? -1 : x->aos_ms > y->aos_ms;
}

static bool overlaps(const struct sr_pass_rec *p, int64_t from, int64_t to)
{
    return p->los_ms > from && p->aos_ms < to;
}

int sr_router_set_passes(sr_router *r, const char *sat, int64_t from_ms, int64_t to_ms,
                         const struct sr_pass_rec *recs, size_t n)
{
    if (!sat || !*sat || from_ms >= to_ms) {
        return SR_ERR_INVAL;
    }
    for (size_t i = 0; i < n; i++) {
        if (strcmp(recs[i].sat, sat) != 0 || recs[i].aos_ms >= recs[i].los_ms) {
            return SR_ERR_INVAL;
        }
    }
    size_t keep = 0;
    for (size_t i = 0; i < r->npasses; i++) {
        const struct sr_pass_rec *p = &r->passes[i];
        if (!(strcmp(p->sat, sat) == 0 && overlaps(p, from_ms, to_ms))) {
            keep++;
        }
    }
    size_t total = keep + n;
    struct sr_pass_rec *np = malloc((total ? total : 1) * sizeof(*np));
    if (!np) {
        return SR_ERR_NOMEM;
    }
    size_t k = 0;
    for (size_t i = 0; i < r->npasses; i++) {
        const struct sr_pass_rec *p = &r->passes[i];
        if (!(strcmp(p->sat, sat) == 0 && overlaps(p, from_ms, to_ms))) {
            np[k++] = *p;
        }
    }
    memcpy(np + k, recs, n * sizeof(*recs));
    qsort(np, total, sizeof(*np), pass_cmp);
    free(r->passes);
    r->passes = np;
    r->npasses = total;
    return 0;
}

size_t sr_router_passes(const sr_router *r, const char *sat, int64_t from_ms, int64_t to_ms,
                        struct sr_pass_rec *out, size_t max)
{
    size_t n = 0;
    for (size_t i = 0; i < r->npasses; i++) {
        const struct sr_pass_rec *p = &r->passes[i];
        if ((!sat || !strcmp(p->sat, sat)) && overlaps(p, from_ms, to_ms)) {
            if (n < max) {
                out[n] = *p;
            }
            n++;
        }
    }
    return n;
}
