/* Private to linkmodels/: the SGP4 state behind sr_sat and shared helpers. */
#ifndef SR_LM_INTERNAL_H
#define SR_LM_INTERNAL_H

#include "linkmodels/linkmodels.h"

#define LM_PI 3.14159265358979323846
#define LM_TWOPI (2.0 * LM_PI)
#define LM_DEG2RAD (LM_PI / 180.0)
#define LM_RAD2DEG (180.0 / LM_PI)
#define LM_JD_UNIX 2440587.5 /* Julian date of 1970-01-01T00:00Z */

/* Everything SGP4/SDP4 precomputes at initialisation (Vallado 2006 names). */
struct sr_sat {
    sr_elements el;
    /* epoch */
    double jdepoch, jdepochf; /* split Julian date of the epoch */
    double epoch_ms;          /* ms since the Unix epoch */
    int init_error;           /* SGP4 error at epoch (0 or SR_ERR_SGP4_*) */

    /* mean elements (radians, rad/min) */
    double ecco, inclo, nodeo, argpo, mo, no_kozai, no, bstar;

    /* near-earth */
    int isimp;
    int deep;
    double aycof, con41, cc1, cc4, cc5, d2, d3, d4, delmo, eta, argpdot, omgcof, sinmao, t2cof,
        t3cof, t4cof, t5cof, x1mth2, x7thm1, mdot, nodedot, xlcof, xmcof, nodecf;
    double cosio, sinio;

    /* deep space */
    int irez;
    double d2201, d2211, d3210, d3222, d4410, d4422, d5220, d5232, d5421, d5433, dedt, del1, del2,
        del3, didt, dmdt, dnodt, domdt, e3, ee2, peo, pgho, pho, pinco, plo, se2, se3, sgh2, sgh3,
        sgh4, sh2, sh3, si2, si3, sl2, sl3, sl4, gsto, xfact, xgh2, xgh3, xgh4, xh2, xh3, xi2, xi3,
        xl2, xl3, xl4, xlamo, zmol, zmos, xli, xni;

    double ao_pow; /* pow(xke / no, 2/3), the near-earth am before drag */

    /* derived, for pass finding and eclipse search */
    double period_min;
    double apogee_km, perigee_km;
    double max_rate_rad_s; /* bound on the geocentric angular rate (inertial) */
};

/* Vallado's epoch Julian date from a four-digit year and day of year. */
void sr_lm_jd_from_yday(int year, double days, double *jd, double *jdfrac);

/* Julian date (split) of a civil date and time, Vallado's jday(). */
void sr_lm_jday(int year, int mon, int day, int hr, int minute, double sec, double *jd,
                double *jdfrac);

/* Sum of the differences between sgp4.c's constant literals and their
 * defining expressions (0 when they agree), for the unit tests. */
double sr_lm_check_constants(void);

/* Formats a message into err (if not NULL). */
void sr_lm_err(char *err, size_t errlen, const char *fmt, ...) SR_PRINTF(3, 4);

#endif
