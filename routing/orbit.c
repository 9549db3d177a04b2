/*
 * Schedules from orbital elements: passes over the station (with light time
 * and link-budget rates) and eclipse intervals, predicted with linkmodels and
 * stored like any other schedule. Pure: the window is a parameter.
 */
#include "routing/routing_int.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "linkmodels/linkmodels.h"

/* Mean rate over a pass: the link budget integrated from AOS to LOS. */
static double mean_rate(const sr_station *st, const sr_sat *sat, const sr_link_cfg *cfg,
                        const sr_pass *p)
{
    if (!cfg) {
        return 0;
    }
    double bytes = 0;
    int64_t los = 0;
    /* a hair after AOS so that the satellite is above the mask */
    if (sr_bytes_until_los(st, sat, cfg, p->aos_ms + 50, &bytes, &los) != 0 || los <= p->aos_ms) {
        return 0;
    }
    double r = bytes / ((double)(los - p->aos_ms) / 1000.0);
    return r > 0 ? r : 0;
}

int sr_router_set_orbit(sr_router *r, size_t idx, const struct sr_elements *e,
                        const struct sr_station *st, double min_el_deg,
                        const struct sr_link_cfg *up, const struct sr_link_cfg *down,
                        int64_t from_ms, int64_t to_ms)
{
    if (idx >= r->n || r->t[idx].info.kind != SR_TARGET_SATELLITE || from_ms >= to_ms) {
        return SR_ERR_INVAL;
    }
    sr_sat *sat = NULL;
    int rv = sr_sat_new(&sat, e);
    if (rv != 0) {
        return rv;
    }
    sr_pass *ps = NULL;
    size_t np = 0;
    struct sr_pass_rec *recs = NULL;
    int64_t(*ecl)[2] = NULL;
    size_t necl = 0, eclcap = 0;
    rv = sr_find_passes(st, sat, from_ms, to_ms, min_el_deg, &ps, &np);
    if (rv != 0) {
        goto out;
    }
    recs = calloc(np ? np : 1, sizeof(*recs));
    if (!recs) {
        rv = SR_ERR_NOMEM;
        goto out;
    }
    for (size_t i = 0; i < np; i++) {
        struct sr_pass_rec *o = &recs[i];
        snprintf(o->sat, sizeof(o->sat), "%s", r->t[idx].info.id);
        o->aos_ms = ps[i].aos_ms;
        o->tca_ms = ps[i].tca_ms;
        o->los_ms = ps[i].los_ms;
        o->max_el_deg = ps[i].max_el_deg;
        sr_look_angles la;
        /* light time at the mask: the longest of the pass (conservative) */
        if (sr_look(st, sat, ps[i].aos_ms, &la) == 0) {
            o->light_ms = sr_light_time_ms(la.range_km);
        }
        o->uplink_bps = mean_rate(st, sat, up, &ps[i]);
        o->downlink_bps = mean_rate(st, sat, down, &ps[i]);
        snprintf(o->source, sizeof(o->source), "predicted");
    }
    /* eclipses in the same window */
    int64_t t = from_ms;
    while (t < to_ms) {
        int64_t en, ex;
        rv = sr_next_eclipse(sat, t, to_ms - t, &en, &ex);
        if (rv == SR_ERR_NOTFOUND) {
            rv = 0;
            break;
        }
        if (rv != 0) {
            goto out;
        }
        if (necl == eclcap) {
            size_t nc = eclcap ? eclcap * 2 : 32;
            int64_t(*ne)[2] = realloc(ecl, nc * sizeof(*ne));
            if (!ne) {
                rv = SR_ERR_NOMEM;
                goto out;
            }
            ecl = ne;
            eclcap = nc;
        }
        ecl[necl][0] = en;
        ecl[necl][1] = ex == INT64_MAX ? to_ms : ex;
        necl++;
        if (ex == INT64_MAX || ex <= t) {
            break;
        }
        t = ex + 1;
    }
    rv = sr_router_set_passes(r, r->t[idx].info.id, from_ms, to_ms, recs, np);
    if (rv == 0) {
        rv = sr_router_set_eclipses(r, idx, (const int64_t(*)[2])ecl, necl);
    }
out:
    free(ecl);
    free(recs);
    free(ps);
    sr_sat_free(sat);
    return rv;
}
