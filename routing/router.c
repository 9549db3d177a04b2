/*
 * The router as a whole: a registry of targets (registry.c) and the pass
 * schedule (schedule.c), created and freed together. A target added after
 * passes were stored under its name takes them over, so adding one is the
 * registry's append followed by the schedule's link.
 */
#include "routing/routing_int.h"

#include <stdlib.h>

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
        sr__targets_free(r);
        sr__schedule_free(r);
        free(r);
    }
}

int sr_router_add_target(sr_router *r, const struct sr_target_info *t)
{
    int idx = sr__target_add(r, t);
    if (idx >= 0) {
        sr__link_target(r, (size_t)idx);
    }
    return idx;
}
