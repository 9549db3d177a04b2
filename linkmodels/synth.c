/*
 * Synthetic element sets for demos and tests: Walker-delta shells and single
 * satellites placed to pass over a station at a chosen time. Orbits are
 * circular; the mean motion is the Keplerian one for the altitude (WGS-72),
 * so SGP4's mean altitude matches to within a few kilometres.
 */
#include "linkmodels/lm_internal.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static double mean_motion_rev_day(double alt_km)
{
    double a = SR_LM_WGS72_RE_KM + alt_km;
    double n = sqrt(SR_LM_WGS72_MU / (a * a * a)); /* rad/s */
    return n * 86400.0 / LM_TWOPI;
}

static void base(sr_elements *e, double alt_km, double incl_deg, int64_t epoch_ms, uint32_t catnum)
{
    memset(e, 0, sizeof(*e));
    e->catnum = catnum;
    e->classification = 'U';
    sr_elements_set_epoch(e, (double)epoch_ms);
    e->incl_deg = incl_deg;
    e->ecc = 0.0001;
    e->mean_motion = mean_motion_rev_day(alt_km);
    e->elset_num = 999;
    snprintf(e->intldes, sizeof e->intldes, "SYNTH");
}

static double wrap360(double x)
{
    x = fmod(x, 360.0);
    if (x < 0) {
        x += 360.0;
    }
    if (x >= 360.0) {
        x = 0.0;
    }
    return x;
}

int sr_synth_walker(sr_elements *out, double alt_km, double incl_deg, unsigned planes,
                    unsigned per_plane, unsigned phasing, int64_t epoch_ms, uint32_t first_catnum)
{
    if (!(alt_km >= 150.0 && alt_km <= 50000.0) || !(incl_deg >= 0.0 && incl_deg <= 180.0) ||
        planes == 0 || per_plane == 0 || planes > 10000 || per_plane > 10000 ||
        (uint64_t)planes * per_plane > 1000000 || phasing >= planes ||
        (uint64_t)first_catnum + (uint64_t)planes * per_plane > 999999999ULL) {
        return SR_ERR_RANGE;
    }
    double total = (double)planes * per_plane;
    for (unsigned p = 0; p < planes; p++) {
        for (unsigned s = 0; s < per_plane; s++) {
            sr_elements *e = &out[(size_t)p * per_plane + s];
            base(e, alt_km, incl_deg, epoch_ms, first_catnum + p * per_plane + s);
            e->raan_deg = wrap360(360.0 * p / planes);
            e->argp_deg = 0.0;
            e->mean_anom_deg = wrap360(360.0 * s / per_plane + 360.0 * phasing * p / total);
            snprintf(e->name, sizeof e->name, "WALKER-%u-%u", p, s);
        }
    }
    return 0;
}

int sr_synth_overhead(sr_elements *out, const sr_station *st, int64_t t_ms, double alt_km,
                      double incl_deg, int ascending, uint32_t catnum)
{
    if (!(alt_km >= 150.0 && alt_km <= 50000.0) || !(incl_deg > 0.0 && incl_deg < 180.0)) {
        return SR_ERR_RANGE;
    }
    double jd, frac;
    sr_jd_from_ms(t_ms, &jd, &frac);
    double gmst = sr_gmst(jd + frac);
    double dec = asin(st->geoc_up[2]);
    double ra = atan2(st->geoc_up[1], st->geoc_up[0]) + gmst;
    double inc = incl_deg * LM_DEG2RAD;
    double sdec = sin(dec) / sin(inc);
    if (fabs(sdec) > 1.0) {
        return SR_ERR_RANGE;
    }
    double u = asin(sdec);
    if (!ascending) {
        u = LM_PI - u;
    }
    double raan = ra - atan2(cos(inc) * sin(u), cos(u));
    base(out, alt_km, incl_deg, t_ms, catnum);
    out->raan_deg = wrap360(raan * LM_RAD2DEG);
    out->argp_deg = 0.0;
    out->mean_anom_deg = wrap360(u * LM_RAD2DEG);
    snprintf(out->name, sizeof out->name, "OVERHEAD-%u", catnum);
    return 0;
}
