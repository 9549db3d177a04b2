/*
 * Sun position and Earth's shadow. The Sun comes from the Astronomical
 * Almanac's low-precision formula (about 0.01 degree 1950-2050), in the mean
 * equator and equinox of date, which at that precision is the TEME frame.
 * The shadow is the umbral cone of a spherical Earth.
 */
#include "linkmodels/lm_internal.h"

#include <math.h>

#define AU_KM 149597870.7
#define SUN_RADIUS_KM 696000.0
#define EARTH_RADIUS_KM 6378.137

void sr_sun_position(int64_t t_ms, double r_km[3])
{
    double jd, frac;
    sr_jd_from_ms(t_ms, &jd, &frac);
    double n = (jd - 2451545.0) + frac;
    double L = fmod(280.460 + 0.9856474 * n, 360.0);
    double g = fmod(357.528 + 0.9856003 * n, 360.0) * LM_DEG2RAD;
    double lambda = (L + 1.915 * sin(g) + 0.020 * sin(2.0 * g)) * LM_DEG2RAD;
    double eps = (23.439 - 0.0000004 * n) * LM_DEG2RAD;
    double R = (1.00014 - 0.01671 * cos(g) - 0.00014 * cos(2.0 * g)) * AU_KM;
    r_km[0] = R * cos(lambda);
    r_km[1] = R * cos(eps) * sin(lambda);
    r_km[2] = R * sin(eps) * sin(lambda);
}

int sr_sunlit_at(const double r[3], int64_t t_ms)
{
    double s[3];
    sr_sun_position(t_ms, s);
    double ds = sqrt(s[0] * s[0] + s[1] * s[1] + s[2] * s[2]);
    double u[3] = {s[0] / ds, s[1] / ds, s[2] / ds};
    double d = -(r[0] * u[0] + r[1] * u[1] + r[2] * u[2]); /* distance behind Earth */
    if (d <= 0.0) {
        return 1;
    }
    double p[3] = {r[0] + d * u[0], r[1] + d * u[1], r[2] + d * u[2]};
    double perp = sqrt(p[0] * p[0] + p[1] * p[1] + p[2] * p[2]);
    /* umbral cone: apex at L behind Earth's centre */
    double L = EARTH_RADIUS_KM * ds / (SUN_RADIUS_KM - EARTH_RADIUS_KM);
    double ru = EARTH_RADIUS_KM * (L - d) / L;
    return !(perp < ru);
}

int sr_sunlit(const sr_sat *sat, int64_t t_ms, int *sunlit)
{
    sr_state s;
    int rc = sr_propagate(sat, t_ms, &s);
    if (rc != 0) {
        return rc;
    }
    *sunlit = sr_sunlit_at(s.r, t_ms);
    return 0;
}

/* First time in (a, b] where sunlit changes from |va|: bisection to 100 ms. */
static int bisect(const sr_sat *sat, int64_t a, int64_t b, int va, int64_t *out)
{
    while (b - a > 100) {
        int64_t m = a + (b - a) / 2;
        int v;
        int rc = sr_sunlit(sat, m, &v);
        if (rc != 0) {
            return rc;
        }
        if (v == va) {
            a = m;
        } else {
            b = m;
        }
    }
    *out = b;
    return 0;
}

int sr_next_eclipse(const sr_sat *sat, int64_t t_ms, int64_t horizon_ms, int64_t *entry_ms,
                    int64_t *exit_ms)
{
    int64_t step = (int64_t)(sat->period_min * 60000.0 / 200.0);
    if (step > 60000) {
        step = 60000;
    }
    if (step < 1000) {
        step = 1000;
    }
    int v0, v;
    int rc = sr_sunlit(sat, t_ms, &v0);
    if (rc != 0) {
        return rc;
    }
    int64_t end = t_ms + horizon_ms;
    int64_t t = t_ms;
    *exit_ms = INT64_MAX;
    if (v0) {
        /* find entry */
        int found = 0;
        while (t < end) {
            int64_t nt = t + step < end ? t + step : end;
            if ((rc = sr_sunlit(sat, nt, &v)) != 0) {
                return rc;
            }
            if (!v) {
                if ((rc = bisect(sat, t, nt, 1, entry_ms)) != 0) {
                    return rc;
                }
                found = 1;
                t = *entry_ms;
                break;
            }
            t = nt;
        }
        if (!found) {
            return SR_ERR_NOTFOUND;
        }
    } else {
        *entry_ms = t_ms;
    }
    /* find exit */
    while (t < end) {
        int64_t nt = t + step < end ? t + step : end;
        if ((rc = sr_sunlit(sat, nt, &v)) != 0) {
            return rc;
        }
        if (v) {
            return bisect(sat, t, nt, 0, exit_ms);
        }
        t = nt;
    }
    return 0;
}
