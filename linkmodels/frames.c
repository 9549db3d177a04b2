/*
 * Frames and station geometry: Unix ms -> split Julian date, TEME ->
 * pseudo-Earth-fixed by the GMST rotation (no polar motion, UT1 = UTC),
 * WGS-84 geodetic station, topocentric look angles.
 */
#include "linkmodels/lm_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define OMEGA_EARTH 7.292115146706979e-5 /* rad/s, as in Vallado's teme2ecef */

void sr_jd_from_ms(int64_t t_ms, double *jd, double *frac)
{
    int64_t day = t_ms >= 0 ? t_ms / 86400000 : -((-t_ms + 86399999) / 86400000);
    int64_t rem = t_ms - day * 86400000;
    *jd = LM_JD_UNIX + (double)day;
    *frac = (double)rem / 86400000.0;
}

static void rotate(const sr_state *teme, double g, sr_state *ecef)
{
    double c = cos(g), s = sin(g);
    double x = c * teme->r[0] + s * teme->r[1];
    double y = -s * teme->r[0] + c * teme->r[1];
    ecef->r[0] = x;
    ecef->r[1] = y;
    ecef->r[2] = teme->r[2];
    ecef->v[0] = c * teme->v[0] + s * teme->v[1] + OMEGA_EARTH * y;
    ecef->v[1] = -s * teme->v[0] + c * teme->v[1] - OMEGA_EARTH * x;
    ecef->v[2] = teme->v[2];
}

void sr_teme_to_ecef(const sr_state *teme, int64_t t_ms, sr_state *ecef)
{
    double jd, frac;
    sr_jd_from_ms(t_ms, &jd, &frac);
    rotate(teme, sr_gmst(jd + frac), ecef);
}

int sr_station_init(sr_station *st, double lat_deg, double lon_deg, double alt_m)
{
    if (!isfinite(lat_deg) || !isfinite(lon_deg) || !isfinite(alt_m) || lat_deg < -90.0 ||
        lat_deg > 90.0 || lon_deg < -180.0 || lon_deg > 360.0 || alt_m < -1000.0 ||
        alt_m > 100000.0) {
        return SR_ERR_RANGE;
    }
    memset(st, 0, sizeof(*st));
    st->lat_deg = lat_deg;
    st->lon_deg = lon_deg;
    st->alt_m = alt_m;
    double phi = lat_deg * LM_DEG2RAD, lam = lon_deg * LM_DEG2RAD, h = alt_m / 1000.0;
    double sp = sin(phi), cp = cos(phi), sl = sin(lam), cl = cos(lam);
    double e2 = SR_LM_WGS84_F * (2.0 - SR_LM_WGS84_F);
    double n = SR_LM_WGS84_A_KM / sqrt(1.0 - e2 * sp * sp);
    st->ecef[0] = (n + h) * cp * cl;
    st->ecef[1] = (n + h) * cp * sl;
    st->ecef[2] = (n * (1.0 - e2) + h) * sp;
    st->east[0] = -sl;
    st->east[1] = cl;
    st->east[2] = 0.0;
    st->north[0] = -sp * cl;
    st->north[1] = -sp * sl;
    st->north[2] = cp;
    st->up[0] = cp * cl;
    st->up[1] = cp * sl;
    st->up[2] = sp;
    st->radius_km =
        sqrt(st->ecef[0] * st->ecef[0] + st->ecef[1] * st->ecef[1] + st->ecef[2] * st->ecef[2]);
    for (int i = 0; i < 3; i++) {
        st->geoc_up[i] = st->ecef[i] / st->radius_km;
    }
    return 0;
}

int sr_station_parse(sr_station *st, const char *s)
{
    double v[3];
    const char *p = s;
    for (int i = 0; i < 3; i++) {
        const char *e = strchr(p, ',');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        if ((i < 2 && e == NULL) || (i == 2 && e != NULL)) {
            return SR_ERR_PARSE;
        }
        if (sr_parse_double(&v[i], p, n) != 0) {
            return SR_ERR_PARSE;
        }
        p = e ? e + 1 : p + n;
    }
    return sr_station_init(st, v[0], v[1], v[2]);
}

void sr_look_ecef(const sr_station *st, const sr_state *ecef, sr_look_angles *out)
{
    double rho[3];
    for (int i = 0; i < 3; i++) {
        rho[i] = ecef->r[i] - st->ecef[i];
    }
    double e = rho[0] * st->east[0] + rho[1] * st->east[1];
    double n = rho[0] * st->north[0] + rho[1] * st->north[1] + rho[2] * st->north[2];
    double u = rho[0] * st->up[0] + rho[1] * st->up[1] + rho[2] * st->up[2];
    double range = sqrt(rho[0] * rho[0] + rho[1] * rho[1] + rho[2] * rho[2]);
    double rr = (rho[0] * ecef->v[0] + rho[1] * ecef->v[1] + rho[2] * ecef->v[2]) / range;
    double udot = ecef->v[0] * st->up[0] + ecef->v[1] * st->up[1] + ecef->v[2] * st->up[2];
    double sel = u / range;
    if (sel > 1.0) {
        sel = 1.0;
    } else if (sel < -1.0) {
        sel = -1.0;
    }
    double el = asin(sel);
    double az = atan2(e, n) * LM_RAD2DEG;
    if (az < 0.0) {
        az += 360.0;
    }
    double horiz = sqrt(e * e + n * n);
    out->az_deg = az;
    out->el_deg = el * LM_RAD2DEG;
    out->range_km = range;
    out->range_rate_km_s = rr;
    out->el_rate_deg_s =
        horiz > 1e-9 ? (udot * range - u * rr) / (range * horiz) * LM_RAD2DEG : 0.0;
}

int sr_look(const sr_station *st, const sr_sat *sat, int64_t t_ms, sr_look_angles *out)
{
    sr_state teme, ecef;
    int rc = sr_propagate(sat, t_ms, &teme);
    if (rc != 0) {
        return rc;
    }
    sr_teme_to_ecef(&teme, t_ms, &ecef);
    sr_look_ecef(st, &ecef, out);
    return 0;
}
