/*
 * SGP4/SDP4 after Vallado, Crawford, Hujsak and Kelso, "Revisiting Spacetrack
 * Report #3" (AIAA 2006-6753), WGS-72 constants, improved ('i') operation mode.
 *
 * Why the code looks the way it does: the verification output tcppver.out is
 * reproduced to 2e-7 km only if the floating-point operations happen in the
 * paper's order, so the formulas below keep the paper's grouping and names
 * (cc1, d2, xlcof, ...) even where a rearrangement would read better. Every
 * quantity that does not depend on time is computed once in sat_init(); the
 * propagation step allocates nothing and keeps no state, so an sr_sat can be
 * shared. The deep-space resonance integrator, which Vallado keeps as mutable
 * state, is restarted from epoch on every call: it takes fixed 720-minute
 * steps from epoch, so the result is bit-identical to continuing a previous
 * integration, at the cost of |t|/720 min steps (a few for any realistic t).
 */
#define _GNU_SOURCE /* sincos(): same results as sin() and cos(), one call */
#include "linkmodels/lm_internal.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- WGS-72 constants (Vallado's getgravconst(wgs72)) -------------------- */

#define RE_KM 6378.135
#define MU 398600.8
#define J2 0.001082616
#define J3 (-0.00000253881)
#define J4 (-0.00000165597)
#define X2O3 (2.0 / 3.0)

/* Derived constants, written out so that they are compile-time constants
 * (no initialisation race): xke = 60 / sqrt(re^3 / mu) in er^(3/2)/min, its
 * inverse, J3/J2, and re * xke / 60 in km/s. The literals are the exact
 * doubles those expressions give in Vallado's order of operations;
 * test_sgp4_constants() recomputes them. */
static const double g_xke = 0.07436691613317342;
static const double g_tumin = 13.446839696959309;
static const double g_j3oj2 = -0.002345069720011528;
static const double g_vkmpersec = 7.905370510517634;

double sr_lm_check_constants(void)
{
    double xke = 60.0 / sqrt(RE_KM * RE_KM * RE_KM / MU);
    double err = fabs(xke - g_xke) + fabs(1.0 / xke - g_tumin) + fabs(J3 / J2 - g_j3oj2) +
                 fabs(RE_KM * xke / 60.0 - g_vkmpersec);
    return err;
}

void sr_lm_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (err == NULL || errlen == 0) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* ---- time ------------------------------------------------------------------ */

void sr_lm_jday(int year, int mon, int day, int hr, int minute, double sec, double *jd,
                double *jdfrac)
{
    *jd = 367.0 * year - floor((7 * (year + floor((mon + 9) / 12.0))) * 0.25) +
          floor(275 * mon / 9.0) + day + 1721013.5;
    *jdfrac = (sec + minute * 60.0 + hr * 3600.0) / 86400.0;
    if (fabs(*jdfrac) > 1.0) {
        double dtt = floor(*jdfrac);
        *jd += dtt;
        *jdfrac -= dtt;
    }
}

void sr_lm_jd_from_yday(int year, double days, double *jd, double *jdfrac)
{
    static const int lmonth[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int dayofyr = (int)floor(days);
    int i = 1, inttemp = 0;
    while (i < 12) {
        int ml = lmonth[i - 1] + ((i == 2 && year % 4 == 0) ? 1 : 0);
        if (dayofyr <= inttemp + ml) {
            break;
        }
        inttemp += ml;
        i++;
    }
    int mon = i;
    int day = dayofyr - inttemp;
    double temp = (days - dayofyr) * 24.0;
    int hr = (int)floor(temp);
    temp = (temp - hr) * 60.0;
    int minute = (int)floor(temp);
    double sec = (temp - minute) * 60.0;
    sr_lm_jday(year, mon, day, hr, minute, sec, jd, jdfrac);
}

double sr_gmst(double jdut1)
{
    double tut1 = (jdut1 - 2451545.0) / 36525.0;
    double temp = -6.2e-6 * tut1 * tut1 * tut1 + 0.093104 * tut1 * tut1 +
                  (876600.0 * 3600 + 8640184.812866) * tut1 + 67310.54841; /* seconds */
    temp = fmod(temp * LM_DEG2RAD / 240.0, LM_TWOPI);
    if (temp < 0.0) {
        temp += LM_TWOPI;
    }
    return temp;
}

/* ---- deep-space helpers --------------------------------------------------- */

/* Lunar-solar terms common to initialisation (Vallado's dscom). The outputs
 * the propagator keeps go into |s|; the rest into the struct below. */
struct dscom_out {
    double snodm, cnodm, sinim, cosim, sinomm, cosomm, day, em, emsq, gam, rtemsq;
    double s1, s2, s3, s4, s5, s6, s7, ss1, ss2, ss3, ss4, ss5, ss6, ss7;
    double sz1, sz2, sz3, sz11, sz12, sz13, sz21, sz22, sz23, sz31, sz32, sz33;
    double nm, z1, z2, z3, z11, z12, z13, z21, z22, z23, z31, z32, z33;
};

static void dscom(struct sr_sat *s, double epoch, double ep, double argpp, double tc, double inclp,
                  double nodep, double np, struct dscom_out *o)
{
    const double zes = 0.01675, zel = 0.05490, c1ss = 2.9864797e-6, c1l = 4.7968065e-7;
    const double zsinis = 0.39785416, zcosis = 0.91744867, zcosgs = 0.1945905, zsings = -0.98088458;

    o->nm = np;
    o->em = ep;
    o->snodm = sin(nodep);
    o->cnodm = cos(nodep);
    o->sinomm = sin(argpp);
    o->cosomm = cos(argpp);
    o->sinim = sin(inclp);
    o->cosim = cos(inclp);
    o->emsq = o->em * o->em;
    double betasq = 1.0 - o->emsq;
    o->rtemsq = sqrt(betasq);

    s->peo = 0.0;
    s->pinco = 0.0;
    s->plo = 0.0;
    s->pgho = 0.0;
    s->pho = 0.0;
    o->day = epoch + 18261.5 + tc / 1440.0;
    double xnodce = fmod(4.5236020 - 9.2422029e-4 * o->day, LM_TWOPI);
    double stem = sin(xnodce);
    double ctem = cos(xnodce);
    double zcosil = 0.91375164 - 0.03568096 * ctem;
    double zsinil = sqrt(1.0 - zcosil * zcosil);
    double zsinhl = 0.089683511 * stem / zsinil;
    double zcoshl = sqrt(1.0 - zsinhl * zsinhl);
    o->gam = 5.8351514 + 0.0019443680 * o->day;
    double zx = 0.39785416 * stem / zsinil;
    double zy = zcoshl * ctem + 0.91744867 * zsinhl * stem;
    zx = atan2(zx, zy);
    zx = o->gam + zx - xnodce;
    double zcosgl = cos(zx);
    double zsingl = sin(zx);

    /* first pass: solar terms, second pass: lunar terms */
    double zcosg = zcosgs, zsing = zsings, zcosi = zcosis, zsini = zsinis;
    double zcosh = o->cnodm, zsinh = o->snodm;
    double cc = c1ss;
    double xnoi = 1.0 / o->nm;
    double cosim = o->cosim, sinim = o->sinim, cosomm = o->cosomm, sinomm = o->sinomm;
    double emsq = o->emsq;

    for (int lsflg = 1; lsflg <= 2; lsflg++) {
        double a1 = zcosg * zcosh + zsing * zcosi * zsinh;
        double a3 = -zsing * zcosh + zcosg * zcosi * zsinh;
        double a7 = -zcosg * zsinh + zsing * zcosi * zcosh;
        double a8 = zsing * zsini;
        double a9 = zsing * zsinh + zcosg * zcosi * zcosh;
        double a10 = zcosg * zsini;
        double a2 = cosim * a7 + sinim * a8;
        double a4 = cosim * a9 + sinim * a10;
        double a5 = -sinim * a7 + cosim * a8;
        double a6 = -sinim * a9 + cosim * a10;

        double x1 = a1 * cosomm + a2 * sinomm;
        double x2 = a3 * cosomm + a4 * sinomm;
        double x3 = -a1 * sinomm + a2 * cosomm;
        double x4 = -a3 * sinomm + a4 * cosomm;
        double x5 = a5 * sinomm;
        double x6 = a6 * sinomm;
        double x7 = a5 * cosomm;
        double x8 = a6 * cosomm;

        o->z31 = 12.0 * x1 * x1 - 3.0 * x3 * x3;
        o->z32 = 24.0 * x1 * x2 - 6.0 * x3 * x4;
        o->z33 = 12.0 * x2 * x2 - 3.0 * x4 * x4;
        o->z1 = 3.0 * (a1 * a1 + a2 * a2) + o->z31 * emsq;
        o->z2 = 6.0 * (a1 * a3 + a2 * a4) + o->z32 * emsq;
        o->z3 = 3.0 * (a3 * a3 + a4 * a4) + o->z33 * emsq;
        o->z11 = -6.0 * a1 * a5 + emsq * (-24.0 * x1 * x7 - 6.0 * x3 * x5);
        o->z12 = -6.0 * (a1 * a6 + a3 * a5) +
                 emsq * (-24.0 * (x2 * x7 + x1 * x8) - 6.0 * (x3 * x6 + x4 * x5));
        o->z13 = -6.0 * a3 * a6 + emsq * (-24.0 * x2 * x8 - 6.0 * x4 * x6);
        o->z21 = 6.0 * a2 * a5 + emsq * (24.0 * x1 * x5 - 6.0 * x3 * x7);
        o->z22 = 6.0 * (a4 * a5 + a2 * a6) +
                 emsq * (24.0 * (x2 * x5 + x1 * x6) - 6.0 * (x4 * x7 + x3 * x8));
        o->z23 = 6.0 * a4 * a6 + emsq * (24.0 * x2 * x6 - 6.0 * x4 * x8);
        o->z1 = o->z1 + o->z1 + betasq * o->z31;
        o->z2 = o->z2 + o->z2 + betasq * o->z32;
        o->z3 = o->z3 + o->z3 + betasq * o->z33;
        o->s3 = cc * xnoi;
        o->s2 = -0.5 * o->s3 / o->rtemsq;
        o->s4 = o->s3 * o->rtemsq;
        o->s1 = -15.0 * o->em * o->s4;
        o->s5 = x1 * x3 + x2 * x4;
        o->s6 = x2 * x3 + x1 * x4;
        o->s7 = x2 * x4 - x1 * x3;

        if (lsflg == 1) {
            o->ss1 = o->s1;
            o->ss2 = o->s2;
            o->ss3 = o->s3;
            o->ss4 = o->s4;
            o->ss5 = o->s5;
            o->ss6 = o->s6;
            o->ss7 = o->s7;
            o->sz1 = o->z1;
            o->sz2 = o->z2;
            o->sz3 = o->z3;
            o->sz11 = o->z11;
            o->sz12 = o->z12;
            o->sz13 = o->z13;
            o->sz21 = o->z21;
            o->sz22 = o->z22;
            o->sz23 = o->z23;
            o->sz31 = o->z31;
            o->sz32 = o->z32;
            o->sz33 = o->z33;
            zcosg = zcosgl;
            zsing = zsingl;
            zcosi = zcosil;
            zsini = zsinil;
            zcosh = zcoshl * o->cnodm + zsinhl * o->snodm;
            zsinh = o->snodm * zcoshl - o->cnodm * zsinhl;
            cc = c1l;
        }
    }

    s->zmol = fmod(4.7199672 + 0.22997150 * o->day - o->gam, LM_TWOPI);
    s->zmos = fmod(6.2565837 + 0.017201977 * o->day, LM_TWOPI);

    /* solar terms */
    s->se2 = 2.0 * o->ss1 * o->ss6;
    s->se3 = 2.0 * o->ss1 * o->ss7;
    s->si2 = 2.0 * o->ss2 * o->sz12;
    s->si3 = 2.0 * o->ss2 * (o->sz13 - o->sz11);
    s->sl2 = -2.0 * o->ss3 * o->sz2;
    s->sl3 = -2.0 * o->ss3 * (o->sz3 - o->sz1);
    s->sl4 = -2.0 * o->ss3 * (-21.0 - 9.0 * emsq) * zes;
    s->sgh2 = 2.0 * o->ss4 * o->sz32;
    s->sgh3 = 2.0 * o->ss4 * (o->sz33 - o->sz31);
    s->sgh4 = -18.0 * o->ss4 * zes;
    s->sh2 = -2.0 * o->ss2 * o->sz22;
    s->sh3 = -2.0 * o->ss2 * (o->sz23 - o->sz21);

    /* lunar terms */
    s->ee2 = 2.0 * o->s1 * o->s6;
    s->e3 = 2.0 * o->s1 * o->s7;
    s->xi2 = 2.0 * o->s2 * o->z12;
    s->xi3 = 2.0 * o->s2 * (o->z13 - o->z11);
    s->xl2 = -2.0 * o->s3 * o->z2;
    s->xl3 = -2.0 * o->s3 * (o->z3 - o->z1);
    s->xl4 = -2.0 * o->s3 * (-21.0 - 9.0 * emsq) * zel;
    s->xgh2 = 2.0 * o->s4 * o->z32;
    s->xgh3 = 2.0 * o->s4 * (o->z33 - o->z31);
    s->xgh4 = -18.0 * o->s4 * zel;
    s->xh2 = -2.0 * o->s2 * o->z22;
    s->xh3 = -2.0 * o->s2 * (o->z23 - o->z21);
}

/* Lunar-solar periodics applied to the elements at time t (Vallado's dpper,
 * propagation branch only: at initialisation his dpper changes nothing). */
static void dpper(const struct sr_sat *s, double t, double *ep, double *inclp, double *nodep,
                  double *argpp, double *mp)
{
    const double zns = 1.19459e-5, zes = 0.01675, znl = 1.5835218e-4, zel = 0.05490;

    double zm = s->zmos + zns * t;
    double zf = zm + 2.0 * zes * sin(zm);
    double sinzf = sin(zf);
    double f2 = 0.5 * sinzf * sinzf - 0.25;
    double f3 = -0.5 * sinzf * cos(zf);
    double ses = s->se2 * f2 + s->se3 * f3;
    double sis = s->si2 * f2 + s->si3 * f3;
    double sls = s->sl2 * f2 + s->sl3 * f3 + s->sl4 * sinzf;
    double sghs = s->sgh2 * f2 + s->sgh3 * f3 + s->sgh4 * sinzf;
    double shs = s->sh2 * f2 + s->sh3 * f3;
    zm = s->zmol + znl * t;
    zf = zm + 2.0 * zel * sin(zm);
    sinzf = sin(zf);
    f2 = 0.5 * sinzf * sinzf - 0.25;
    f3 = -0.5 * sinzf * cos(zf);
    double sel = s->ee2 * f2 + s->e3 * f3;
    double sil = s->xi2 * f2 + s->xi3 * f3;
    double sll = s->xl2 * f2 + s->xl3 * f3 + s->xl4 * sinzf;
    double sghl = s->xgh2 * f2 + s->xgh3 * f3 + s->xgh4 * sinzf;
    double shll = s->xh2 * f2 + s->xh3 * f3;
    double pe = ses + sel;
    double pinc = sis + sil;
    double pl = sls + sll;
    double pgh = sghs + sghl;
    double ph = shs + shll;

    pe = pe - s->peo;
    pinc = pinc - s->pinco;
    pl = pl - s->plo;
    pgh = pgh - s->pgho;
    ph = ph - s->pho;
    *inclp = *inclp + pinc;
    *ep = *ep + pe;
    double sinip = sin(*inclp);
    double cosip = cos(*inclp);

    if (*inclp >= 0.2) {
        /* apply periodics directly */
        ph = ph / sinip;
        pgh = pgh - cosip * ph;
        *argpp = *argpp + pgh;
        *nodep = *nodep + ph;
        *mp = *mp + pl;
    } else {
        /* Lyddane modification for low inclination */
        double sinop = sin(*nodep);
        double cosop = cos(*nodep);
        double alfdp = sinip * sinop;
        double betdp = sinip * cosop;
        double dalf = ph * cosop + pinc * cosip * sinop;
        double dbet = -ph * sinop + pinc * cosip * cosop;
        alfdp = alfdp + dalf;
        betdp = betdp + dbet;
        *nodep = fmod(*nodep, LM_TWOPI);
        double xls = *mp + *argpp + cosip * *nodep;
        double dls = pl + pgh - pinc * *nodep * sinip;
        xls = xls + dls;
        double xnoh = *nodep;
        *nodep = atan2(alfdp, betdp);
        if (fabs(xnoh - *nodep) > LM_PI) {
            if (*nodep < xnoh) {
                *nodep = *nodep + LM_TWOPI;
            } else {
                *nodep = *nodep - LM_TWOPI;
            }
        }
        *mp = *mp + pl;
        *argpp = xls - *mp - cosip * *nodep;
    }
}

/* Deep-space secular and resonance initialisation (Vallado's dsinit). */
static void dsinit(struct sr_sat *s, const struct dscom_out *o, double t, double tc, double eccsq,
                   double xpidot, double inclm_in)
{
    const double q22 = 1.7891679e-6, q31 = 2.1460748e-6, q33 = 2.2123015e-7;
    const double root22 = 1.7891679e-6, root44 = 7.3636953e-9, root54 = 2.1765803e-9;
    const double rptim = 4.37526908801129966e-3;
    const double root32 = 3.7393792e-7, root52 = 1.1428639e-7;
    const double znl = 1.5835218e-4, zns = 1.19459e-5;

    double nm = o->nm, em = o->em, emsq = o->emsq, inclm = inclm_in;
    double sinim = o->sinim, cosim = o->cosim;

    s->irez = 0;
    if ((nm < 0.0052359877) && (nm > 0.0034906585)) {
        s->irez = 1;
    }
    if ((nm >= 8.26e-3) && (nm <= 9.24e-3) && (em >= 0.5)) {
        s->irez = 2;
    }

    /* solar terms */
    double ses = o->ss1 * zns * o->ss5;
    double sis = o->ss2 * zns * (o->sz11 + o->sz13);
    double sls = -zns * o->ss3 * (o->sz1 + o->sz3 - 14.0 - 6.0 * emsq);
    double sghs = o->ss4 * zns * (o->sz31 + o->sz33 - 6.0);
    double shs = -zns * o->ss2 * (o->sz21 + o->sz23);
    if ((inclm < 5.2359877e-2) || (inclm > LM_PI - 5.2359877e-2)) {
        shs = 0.0;
    }
    if (sinim != 0.0) {
        shs = shs / sinim;
    }
    double sgs = sghs - cosim * shs;

    /* lunar terms */
    s->dedt = ses + o->s1 * znl * o->s5;
    s->didt = sis + o->s2 * znl * (o->z11 + o->z13);
    s->dmdt = sls - znl * o->s3 * (o->z1 + o->z3 - 14.0 - 6.0 * emsq);
    double sghl = o->s4 * znl * (o->z31 + o->z33 - 6.0);
    double shll = -znl * o->s2 * (o->z21 + o->z23);
    if ((inclm < 5.2359877e-2) || (inclm > LM_PI - 5.2359877e-2)) {
        shll = 0.0;
    }
    s->domdt = sgs + sghl;
    s->dnodt = shs;
    if (sinim != 0.0) {
        s->domdt = s->domdt - cosim / sinim * shll;
        s->dnodt = s->dnodt + shll / sinim;
    }

    /* resonance */
    double dndt = 0.0;
    double theta = fmod(s->gsto + tc * rptim, LM_TWOPI);
    em = em + s->dedt * t;
    (void)inclm;

    if (s->irez != 0) {
        double aonv = pow(nm / g_xke, X2O3);

        if (s->irez == 2) {
            /* geopotential resonance for 12-hour orbits */
            double cosisq = cosim * cosim;
            double emo = em;
            em = s->ecco;
            double emsqo = emsq;
            emsq = eccsq;
            double eoc = em * emsq;
            double g201 = -0.306 - (em - 0.64) * 0.440;
            double g211, g310, g322, g410, g422, g520, g521, g532, g533;

            if (em <= 0.65) {
                g211 = 3.616 - 13.2470 * em + 16.2900 * emsq;
                g310 = -19.302 + 117.3900 * em - 228.4190 * emsq + 156.5910 * eoc;
                g322 = -18.9068 + 109.7927 * em - 214.6334 * emsq + 146.5816 * eoc;
                g410 = -41.122 + 242.6940 * em - 471.0940 * emsq + 313.9530 * eoc;
                g422 = -146.407 + 841.8800 * em - 1629.014 * emsq + 1083.4350 * eoc;
                g520 = -532.114 + 3017.977 * em - 5740.032 * emsq + 3708.2760 * eoc;
            } else {
                g211 = -72.099 + 331.819 * em - 508.738 * emsq + 266.724 * eoc;
                g310 = -346.844 + 1582.851 * em - 2415.925 * emsq + 1246.113 * eoc;
                g322 = -342.585 + 1554.908 * em - 2366.899 * emsq + 1215.972 * eoc;
                g410 = -1052.797 + 4758.686 * em - 7193.992 * emsq + 3651.957 * eoc;
                g422 = -3581.690 + 16178.110 * em - 24462.770 * emsq + 12422.520 * eoc;
                if (em > 0.715) {
                    g520 = -5149.66 + 29936.92 * em - 54087.36 * emsq + 31324.56 * eoc;
                } else {
                    g520 = 1464.74 - 4664.75 * em + 3763.64 * emsq;
                }
            }
            if (em < 0.7) {
                g533 = -919.22770 + 4988.6100 * em - 9064.7700 * emsq + 5542.21 * eoc;
                g521 = -822.71072 + 4568.6173 * em - 8491.4146 * emsq + 5337.524 * eoc;
                g532 = -853.66600 + 4690.2500 * em - 8624.7700 * emsq + 5341.4 * eoc;
            } else {
                g533 = -37995.780 + 161616.52 * em - 229838.20 * emsq + 109377.94 * eoc;
                g521 = -51752.104 + 218913.95 * em - 309468.16 * emsq + 146349.42 * eoc;
                g532 = -40023.880 + 170470.89 * em - 242699.48 * emsq + 115605.82 * eoc;
            }

            double sini2 = sinim * sinim;
            double f220 = 0.75 * (1.0 + 2.0 * cosim + cosisq);
            double f221 = 1.5 * sini2;
            double f321 = 1.875 * sinim * (1.0 - 2.0 * cosim - 3.0 * cosisq);
            double f322 = -1.875 * sinim * (1.0 + 2.0 * cosim - 3.0 * cosisq);
            double f441 = 35.0 * sini2 * f220;
            double f442 = 39.3750 * sini2 * sini2;
            double f522 = 9.84375 * sinim *
                          (sini2 * (1.0 - 2.0 * cosim - 5.0 * cosisq) +
                           0.33333333 * (-2.0 + 4.0 * cosim + 6.0 * cosisq));
            double f523 = sinim * (4.92187512 * sini2 * (-2.0 - 4.0 * cosim + 10.0 * cosisq) +
                                   6.56250012 * (1.0 + 2.0 * cosim - 3.0 * cosisq));
            double f542 = 29.53125 * sinim *
                          (2.0 - 8.0 * cosim + cosisq * (-12.0 + 8.0 * cosim + 10.0 * cosisq));
            double f543 = 29.53125 * sinim *
                          (-2.0 - 8.0 * cosim + cosisq * (12.0 + 8.0 * cosim - 10.0 * cosisq));
            double xno2 = nm * nm;
            double ainv2 = aonv * aonv;
            double temp1 = 3.0 * xno2 * ainv2;
            double temp = temp1 * root22;
            s->d2201 = temp * f220 * g201;
            s->d2211 = temp * f221 * g211;
            temp1 = temp1 * aonv;
            temp = temp1 * root32;
            s->d3210 = temp * f321 * g310;
            s->d3222 = temp * f322 * g322;
            temp1 = temp1 * aonv;
            temp = 2.0 * temp1 * root44;
            s->d4410 = temp * f441 * g410;
            s->d4422 = temp * f442 * g422;
            temp1 = temp1 * aonv;
            temp = temp1 * root52;
            s->d5220 = temp * f522 * g520;
            s->d5232 = temp * f523 * g532;
            temp = 2.0 * temp1 * root54;
            s->d5421 = temp * f542 * g521;
            s->d5433 = temp * f543 * g533;
            s->xlamo = fmod(s->mo + s->nodeo + s->nodeo - theta - theta, LM_TWOPI);
            s->xfact = s->mdot + s->dmdt + 2.0 * (s->nodedot + s->dnodt - rptim) - s->no;
            em = emo;
            emsq = emsqo;
        }

        if (s->irez == 1) {
            /* synchronous resonance */
            double g200 = 1.0 + emsq * (-2.5 + 0.8125 * emsq);
            double g310 = 1.0 + 2.0 * emsq;
            double g300 = 1.0 + emsq * (-6.0 + 6.60937 * emsq);
            double f220 = 0.75 * (1.0 + cosim) * (1.0 + cosim);
            double f311 = 0.9375 * sinim * sinim * (1.0 + 3.0 * cosim) - 0.75 * (1.0 + cosim);
            double f330 = 1.0 + cosim;
            f330 = 1.875 * f330 * f330 * f330;
            s->del1 = 3.0 * nm * nm * aonv * aonv;
            s->del2 = 2.0 * s->del1 * f220 * g200 * q22;
            s->del3 = 3.0 * s->del1 * f330 * g300 * q33 * aonv;
            s->del1 = s->del1 * f311 * g310 * q31 * aonv;
            s->xlamo = fmod(s->mo + s->nodeo + s->argpo - theta, LM_TWOPI);
            s->xfact = s->mdot + xpidot - rptim + s->dmdt + s->domdt + s->dnodt - s->no;
        }

        s->xli = s->xlamo;
        s->xni = s->no;
    }
    (void)dndt;
}

/* Deep-space secular effects and resonance integration at time t (Vallado's
 * dspace), integrating from epoch each time (see the banner). */
static void dspace(const struct sr_sat *s, double t, double *em, double *argpm, double *inclm,
                   double *mm, double *nodem, double *nm)
{
    const double fasx2 = 0.13130908, fasx4 = 2.8843198, fasx6 = 0.37448087;
    const double g22 = 5.7686396, g32 = 0.95240898, g44 = 1.8014998, g52 = 1.0508330,
                 g54 = 4.4108898;
    const double rptim = 4.37526908801129966e-3;
    const double stepp = 720.0, stepn = -720.0, step2 = 259200.0;

    double theta = fmod(s->gsto + t * rptim, LM_TWOPI);
    *em = *em + s->dedt * t;
    *inclm = *inclm + s->didt * t;
    *argpm = *argpm + s->domdt * t;
    *nodem = *nodem + s->dnodt * t;
    *mm = *mm + s->dmdt * t;

    if (s->irez == 0) {
        return;
    }
    double ft = 0.0;
    double atime = 0.0;
    double xni = s->no;
    double xli = s->xlamo;
    double delt = (t > 0.0) ? stepp : stepn;
    double xndt, xldot, xnddt;

    for (;;) {
        if (s->irez != 2) {
            xndt = s->del1 * sin(xli - fasx2) + s->del2 * sin(2.0 * (xli - fasx4)) +
                   s->del3 * sin(3.0 * (xli - fasx6));
            xldot = xni + s->xfact;
            xnddt = s->del1 * cos(xli - fasx2) + 2.0 * s->del2 * cos(2.0 * (xli - fasx4)) +
                    3.0 * s->del3 * cos(3.0 * (xli - fasx6));
            xnddt = xnddt * xldot;
        } else {
            double xomi = s->argpo + s->argpdot * atime;
            double x2omi = xomi + xomi;
            double x2li = xli + xli;
            xndt = s->d2201 * sin(x2omi + xli - g22) + s->d2211 * sin(xli - g22) +
                   s->d3210 * sin(xomi + xli - g32) + s->d3222 * sin(-xomi + xli - g32) +
                   s->d4410 * sin(x2omi + x2li - g44) + s->d4422 * sin(x2li - g44) +
                   s->d5220 * sin(xomi + xli - g52) + s->d5232 * sin(-xomi + xli - g52) +
                   s->d5421 * sin(xomi + x2li - g54) + s->d5433 * sin(-xomi + x2li - g54);
            xldot = xni + s->xfact;
            xnddt = s->d2201 * cos(x2omi + xli - g22) + s->d2211 * cos(xli - g22) +
                    s->d3210 * cos(xomi + xli - g32) + s->d3222 * cos(-xomi + xli - g32) +
                    s->d5220 * cos(xomi + xli - g52) + s->d5232 * cos(-xomi + xli - g52) +
                    2.0 * (s->d4410 * cos(x2omi + x2li - g44) + s->d4422 * cos(x2li - g44) +
                           s->d5421 * cos(xomi + x2li - g54) + s->d5433 * cos(-xomi + x2li - g54));
            xnddt = xnddt * xldot;
        }
        if (fabs(t - atime) >= stepp) {
            xli = xli + xldot * delt + xndt * step2;
            xni = xni + xndt * delt + xnddt * step2;
            atime = atime + delt;
        } else {
            ft = t - atime;
            break;
        }
    }

    *nm = xni + xndt * ft + xnddt * ft * ft * 0.5;
    double xl = xli + xldot * ft + xndt * ft * ft * 0.5;
    double dndt;
    if (s->irez != 1) {
        *mm = xl - 2.0 * *nodem + 2.0 * theta;
        dndt = *nm - s->no;
    } else {
        *mm = xl - *nodem - *argpm + theta;
        dndt = *nm - s->no;
    }
    *nm = s->no + dndt;
}

/* ---- propagation ----------------------------------------------------------- */

/* sin and cos together, for the propagation step. Argument reduction by
 * n * pi/2 in three parts (Cody and Waite; the parts have 33 significant
 * bits, so n * part is exact for |n| < 2^20), then the minimax kernels of
 * fdlibm (Sun Microsystems, k_sin.c / k_cos.c) on [-pi/4, pi/4]. Within about
 * one ulp of libm, inlined, and about twice as fast as a sincos() call, which
 * matters because the step is dominated by trigonometry. Large arguments go
 * to libm. */
static inline void fast_sincos(double x, double *sp, double *cp)
{
    static const double invpio2 = 6.36619772367581382433e-01;
    static const double pio2_1 = 1.57079632673412561417e+00;
    static const double pio2_2 = 6.07710050630396597660e-11;
    static const double pio2_3 = 2.02226624871116645580e-21;
    static const double S1 = -1.66666666666666324348e-01, S2 = 8.33333333332248946124e-03,
                        S3 = -1.98412698298579493134e-04, S4 = 2.75573137070700676789e-06,
                        S5 = -2.50507602534068634195e-08, S6 = 1.58969099521155010221e-10;
    static const double C1 = 4.16666666666666019037e-02, C2 = -1.38888888888741095749e-03,
                        C3 = 2.48015872894767294178e-05, C4 = -2.75573143513906633035e-07,
                        C5 = 2.08757232129817482790e-09, C6 = -1.13596475577881948265e-11;
    if (!(fabs(x) < 1.0e5)) {
        sincos(x, sp, cp);
        return;
    }
    /* round to nearest without a libm call: adding 1.5 * 2^52 leaves no
     * fraction bits (|x * 2/pi| < 2^51) */
    volatile double shifter = 6755399441055744.0;
    double fn = (x * invpio2 + shifter) - shifter;
    double r = ((x - fn * pio2_1) - fn * pio2_2) - fn * pio2_3;
    long q = (long)fn & 3;
    double z = r * r;
    double v = z * r;
    double ps = S2 + z * (S3 + z * (S4 + z * (S5 + z * S6)));
    double sr = r + v * (S1 + z * ps);
    double pc = z * (C1 + z * (C2 + z * (C3 + z * (C4 + z * (C5 + z * C6)))));
    double hz = 0.5 * z;
    double w = 1.0 - hz;
    double cr = w + (((1.0 - w) - hz) + z * pc);
    switch (q) {
    case 0:
        *sp = sr;
        *cp = cr;
        break;
    case 1:
        *sp = cr;
        *cp = -sr;
        break;
    case 2:
        *sp = -sr;
        *cp = -cr;
        break;
    default:
        *sp = -cr;
        *cp = sr;
        break;
    }
}

/* fmod(x, 2pi) for the propagation step without a libm call: 2pi is split
 * into a 25-bit head (n * head is exact) and its tail, so the result is
 * within half an ulp of fmod()'s exact one and keeps the sign of x, as
 * fmod() does. */
static inline double fmod_2pi(double x)
{
    static const double head = 6.283185243606567, tail = 6.357301884918343e-08;
    if (!(fabs(x) < 1.0e7)) {
        return fmod(x, LM_TWOPI);
    }
    double n = trunc(x * (1.0 / LM_TWOPI));
    return (x - n * head) - n * tail;
}

/* sin and cos of a small angle (|x| < 0.05) by their Taylor series, to
 * rounding: the first omitted terms are below 1e-17 relative. Falls back to
 * sincos() for larger arguments. */
static inline void small_sincos(double x, double *s, double *c)
{
    if (fabs(x) >= 0.05) {
        sincos(x, s, c);
        return;
    }
    /* Taylor coefficients 1/3!, 1/5!, ... and 1/2!, 1/4!, ... */
    static const double s3 = 1.0 / 6.0, s5 = 1.0 / 120.0, s7 = 1.0 / 5040.0, s9 = 1.0 / 362880.0;
    static const double c2 = 0.5, c4 = 1.0 / 24.0, c6 = 1.0 / 720.0, c8 = 1.0 / 40320.0,
                        c10 = 1.0 / 3628800.0;
    double x2 = x * x;
    *s = x - x * x2 * (s3 - x2 * (s5 - x2 * (s7 - x2 * s9)));
    *c = 1.0 - x2 * (c2 - x2 * (c4 - x2 * (c6 - x2 * (c8 - x2 * c10))));
}

static int sgp4_core(const struct sr_sat *s, double t, double r[3], double v[3])
{
    const double temp4 = 1.5e-12;

    /* secular gravity and atmospheric drag */
    double xmdf = s->mo + s->mdot * t;
    double argpdf = s->argpo + s->argpdot * t;
    double nodedf = s->nodeo + s->nodedot * t;
    double argpm = argpdf;
    double mm = xmdf;
    double t2 = t * t;
    double nodem = nodedf + s->nodecf * t2;
    double tempa = 1.0 - s->cc1 * t;
    double tempe = s->bstar * s->cc4 * t;
    double templ = s->t2cof * t2;

    if (s->isimp != 1) {
        double delomg = s->omgcof * t;
        double sinxmdf_unused, cosxmdf;
        fast_sincos(xmdf, &sinxmdf_unused, &cosxmdf);
        double delmtemp = 1.0 + s->eta * cosxmdf;
        double delm = s->xmcof * (delmtemp * delmtemp * delmtemp - s->delmo);
        double temp = delomg + delm;
        mm = xmdf + temp;
        argpm = argpdf - temp;
        double t3 = t2 * t;
        double t4 = t3 * t;
        tempa = tempa - s->d2 * t2 - s->d3 * t3 - s->d4 * t4;
        double sinmm, cosmm_unused;
        fast_sincos(mm, &sinmm, &cosmm_unused);
        tempe = tempe + s->bstar * s->cc5 * (sinmm - s->sinmao);
        templ = templ + s->t3cof * t3 + t4 * (s->t4cof + t * s->t5cof);
    }

    double nm = s->no;
    double em = s->ecco;
    double inclm = s->inclo;
    if (s->deep) {
        dspace(s, t, &em, &argpm, &inclm, &mm, &nodem, &nm);
    }

    if (nm <= 0.0) {
        return SR_ERR_SGP4_MEANMOTION;
    }
    /* near-earth: nm is the constant no, so the power is precomputed */
    double am = (s->deep ? pow((g_xke / nm), X2O3) : s->ao_pow) * tempa * tempa;
    nm = g_xke / (am * sqrt(am));
    em = em - tempe;

    if ((em >= 1.0) || (em < -0.001)) {
        return SR_ERR_SGP4_ECC;
    }
    if (em < 1.0e-6) {
        em = 1.0e-6;
    }
    mm = mm + s->no * templ;
    double xlm = mm + argpm + nodem;

    nodem = fmod_2pi(nodem);
    argpm = fmod_2pi(argpm);
    xlm = fmod_2pi(xlm);
    mm = fmod_2pi(xlm - argpm - nodem);

    double sinim = s->sinio, cosim = s->cosio; /* near-earth: inclm is inclo */
    if (s->deep) {
        fast_sincos(inclm, &sinim, &cosim);
    }

    /* lunar-solar periodics */
    double ep = em;
    double xincp = inclm;
    double argpp = argpm;
    double nodep = nodem;
    double mp = mm;
    double sinip = sinim;
    double cosip = cosim;
    double aycof = s->aycof, xlcof = s->xlcof;
    double con41 = s->con41, x1mth2 = s->x1mth2, x7thm1 = s->x7thm1;
    if (s->deep) {
        dpper(s, t, &ep, &xincp, &nodep, &argpp, &mp);
        if (xincp < 0.0) {
            xincp = -xincp;
            nodep = nodep + LM_PI;
            argpp = argpp - LM_PI;
        }
        if ((ep < 0.0) || (ep > 1.0)) {
            return SR_ERR_SGP4_PERTECC;
        }
        /* long-period periodics depend on the perturbed inclination */
        fast_sincos(xincp, &sinip, &cosip);
        aycof = -0.5 * g_j3oj2 * sinip;
        if (fabs(cosip + 1.0) > 1.5e-12) {
            xlcof = -0.25 * g_j3oj2 * sinip * (3.0 + 5.0 * cosip) / (1.0 + cosip);
        } else {
            xlcof = -0.25 * g_j3oj2 * sinip * (3.0 + 5.0 * cosip) / temp4;
        }
    }
    double sinargpp, cosargpp;
    fast_sincos(argpp, &sinargpp, &cosargpp);
    double axnl = ep * cosargpp;
    double temp = 1.0 / (am * (1.0 - ep * ep));
    double aynl = ep * sinargpp + temp * aycof;
    double xl = mp + argpp + nodep + temp * xlcof * axnl;

    /* Kepler's equation */
    double u = fmod_2pi(xl - nodep);
    double eo1 = u;
    double tem5 = 9999.9;
    double sineo1 = 0.0, coseo1 = 0.0;
    /* After a small correction the new sine and cosine come from the old ones
     * by angle addition (equal to rounding) instead of a fresh evaluation. */
    int have_sc = 0;
    double dlast = 0.0;
    for (int ktr = 1; fabs(tem5) >= 1.0e-12 && ktr <= 10; ktr++) {
        if (have_sc && fabs(dlast) < 0.05) {
            double sd, cd;
            small_sincos(dlast, &sd, &cd);
            double s1 = sineo1 * cd + coseo1 * sd;
            coseo1 = coseo1 * cd - sineo1 * sd;
            sineo1 = s1;
        } else {
            fast_sincos(eo1, &sineo1, &coseo1);
        }
        have_sc = 1;
        tem5 = 1.0 - coseo1 * axnl - sineo1 * aynl;
        tem5 = (u - aynl * coseo1 + axnl * sineo1 - eo1) / tem5;
        if (fabs(tem5) >= 0.95) {
            tem5 = tem5 > 0.0 ? 0.95 : -0.95;
        }
        eo1 = eo1 + tem5;
        dlast = tem5;
    }

    /* short-period preliminary quantities */
    double ecose = axnl * coseo1 + aynl * sineo1;
    double esine = axnl * sineo1 - aynl * coseo1;
    double el2 = axnl * axnl + aynl * aynl;
    double pl = am * (1.0 - el2);
    if (pl < 0.0) {
        return SR_ERR_SGP4_SEMILATUS;
    }
    double rl = am * (1.0 - ecose);
    double rdotl = sqrt(am) * esine / rl;
    double rvdotl = sqrt(pl) / rl;
    double betal = sqrt(1.0 - el2);
    temp = esine / (1.0 + betal);
    double sinu = am / rl * (sineo1 - aynl - axnl * temp);
    double cosu = am / rl * (coseo1 - axnl + aynl * temp);
    double sin2u = (cosu + cosu) * sinu;
    double cos2u = 1.0 - 2.0 * sinu * sinu;
    temp = 1.0 / pl;
    double temp1 = 0.5 * J2 * temp;
    double temp2 = temp1 * temp;

    if (s->deep) {
        double cosisq = cosip * cosip;
        con41 = 3.0 * cosisq - 1.0;
        x1mth2 = 1.0 - cosisq;
        x7thm1 = 7.0 * cosisq - 1.0;
    }
    double mrt = rl * (1.0 - 1.5 * temp2 * betal * con41) + 0.5 * temp1 * x1mth2 * cos2u;
    double dsu = -0.25 * temp2 * x7thm1 * sin2u;
    double xnode = nodep + 1.5 * temp2 * cosip * sin2u;
    double dinc = 1.5 * temp2 * cosip * sinip * cos2u;
    double mvt = rdotl - nm * temp1 * x1mth2 * sin2u / g_xke;
    double rvdot = rvdotl + nm * temp1 * (x1mth2 * cos2u + 1.5 * con41) / g_xke;

    /* orientation vectors */
    /* The paper takes su = atan2(sinu, cosu) + dsu and xinc = xincp + dinc
     * and then their sines and cosines. The corrections are short-period
     * terms of order J2 (< 1e-2 rad), so the sums are expanded with the
     * angle-addition formulas and a short series for the small angle: the
     * same values to rounding, without an atan2 and two sincos calls. */
    double sinsu, cossu, snod, cnod, sini, cosi;
    {
        double inv = 1.0 / sqrt(sinu * sinu + cosu * cosu);
        double s0 = sinu * inv, c0 = cosu * inv, sd, cd;
        small_sincos(dsu, &sd, &cd);
        sinsu = s0 * cd + c0 * sd;
        cossu = c0 * cd - s0 * sd;
        small_sincos(dinc, &sd, &cd);
        sini = sinip * cd + cosip * sd;
        cosi = cosip * cd - sinip * sd;
    }
    fast_sincos(xnode, &snod, &cnod);
    double xmx = -snod * cosi;
    double xmy = cnod * cosi;
    double ux = xmx * sinsu + cnod * cossu;
    double uy = xmy * sinsu + snod * cossu;
    double uz = sini * sinsu;
    double vx = xmx * cossu - cnod * sinsu;
    double vy = xmy * cossu - snod * sinsu;
    double vz = sini * cossu;

    r[0] = (mrt * ux) * RE_KM;
    r[1] = (mrt * uy) * RE_KM;
    r[2] = (mrt * uz) * RE_KM;
    v[0] = (mvt * ux + rvdot * vx) * g_vkmpersec;
    v[1] = (mvt * uy + rvdot * vy) * g_vkmpersec;
    v[2] = (mvt * uz + rvdot * vz) * g_vkmpersec;

    if (mrt < 1.0) {
        return SR_ERR_SGP4_DECAYED;
    }
    return 0;
}

/* ---- initialisation (Vallado's initl + sgp4init) ---------------------------- */

static int sat_init(struct sr_sat *s)
{
    const double temp4 = 1.5e-12;
    const double xpdotp = 1440.0 / (2.0 * LM_PI);
    const sr_elements *e = &s->el;

    s->bstar = e->bstar;
    s->ecco = e->ecc;
    s->argpo = e->argp_deg * LM_DEG2RAD;
    s->inclo = e->incl_deg * LM_DEG2RAD;
    s->mo = e->mean_anom_deg * LM_DEG2RAD;
    s->no_kozai = e->mean_motion / xpdotp;
    s->nodeo = e->raan_deg * LM_DEG2RAD;

    sr_lm_jd_from_yday(e->epoch_year, e->epoch_days, &s->jdepoch, &s->jdepochf);
    s->epoch_ms = e->epoch_ms;
    double epoch = (s->jdepoch + s->jdepochf) - 2433281.5;

    double ss = 78.0 / RE_KM + 1.0;
    double qzms2ttemp = (120.0 - 78.0) / RE_KM;
    double qzms2t = qzms2ttemp * qzms2ttemp * qzms2ttemp * qzms2ttemp;

    /* initl */
    double eccsq = s->ecco * s->ecco;
    double omeosq = 1.0 - eccsq;
    double rteosq = sqrt(omeosq);
    double cosio = cos(s->inclo);
    double cosio2 = cosio * cosio;

    double ak = pow(g_xke / s->no_kozai, X2O3);
    double d1 = 0.75 * J2 * (3.0 * cosio2 - 1.0) / (rteosq * omeosq);
    double del = d1 / (ak * ak);
    double adel = ak * (1.0 - del * del - del * (1.0 / 3.0 + 134.0 * del * del / 81.0));
    del = d1 / (adel * adel);
    s->no = s->no_kozai / (1.0 + del);

    double ao = pow(g_xke / s->no, X2O3);
    double sinio = sin(s->inclo);
    double po = ao * omeosq;
    double con42 = 1.0 - 5.0 * cosio2;
    s->con41 = -con42 - cosio2 - cosio2;
    double posq = po * po;
    double rp = ao * (1.0 - s->ecco);
    s->gsto = sr_gmst(epoch + 2433281.5);
    s->cosio = cosio;
    s->sinio = sinio;

    if ((omeosq >= 0.0) || (s->no >= 0.0)) {
        s->isimp = 0;
        if (rp < (220.0 / RE_KM + 1.0)) {
            s->isimp = 1;
        }
        double sfour = ss;
        double qzms24 = qzms2t;
        double perige = (rp - 1.0) * RE_KM;

        if (perige < 156.0) {
            sfour = perige - 78.0;
            if (perige < 98.0) {
                sfour = 20.0;
            }
            double q = (120.0 - sfour) / RE_KM;
            qzms24 = q * q * q * q;
            sfour = sfour / RE_KM + 1.0;
        }
        double pinvsq = 1.0 / posq;

        double tsi = 1.0 / (ao - sfour);
        s->eta = ao * s->ecco * tsi;
        double etasq = s->eta * s->eta;
        double eeta = s->ecco * s->eta;
        double psisq = fabs(1.0 - etasq);
        double coef = qzms24 * pow(tsi, 4.0);
        double coef1 = coef / pow(psisq, 3.5);
        double cc2 = coef1 * s->no *
                     (ao * (1.0 + 1.5 * etasq + eeta * (4.0 + etasq)) +
                      0.375 * J2 * tsi / psisq * s->con41 * (8.0 + 3.0 * etasq * (8.0 + etasq)));
        s->cc1 = s->bstar * cc2;
        double cc3 = 0.0;
        if (s->ecco > 1.0e-4) {
            cc3 = -2.0 * coef * tsi * g_j3oj2 * s->no * sinio / s->ecco;
        }
        s->x1mth2 = 1.0 - cosio2;
        s->cc4 =
            2.0 * s->no * coef1 * ao * omeosq *
            (s->eta * (2.0 + 0.5 * etasq) + s->ecco * (0.5 + 2.0 * etasq) -
             J2 * tsi / (ao * psisq) *
                 (-3.0 * s->con41 * (1.0 - 2.0 * eeta + etasq * (1.5 - 0.5 * eeta)) +
                  0.75 * s->x1mth2 * (2.0 * etasq - eeta * (1.0 + etasq)) * cos(2.0 * s->argpo)));
        s->cc5 = 2.0 * coef1 * ao * omeosq * (1.0 + 2.75 * (etasq + eeta) + eeta * etasq);
        double cosio4 = cosio2 * cosio2;
        double temp1 = 1.5 * J2 * pinvsq * s->no;
        double temp2 = 0.5 * temp1 * J2 * pinvsq;
        double temp3 = -0.46875 * J4 * pinvsq * pinvsq * s->no;
        s->mdot = s->no + 0.5 * temp1 * rteosq * s->con41 +
                  0.0625 * temp2 * rteosq * (13.0 - 78.0 * cosio2 + 137.0 * cosio4);
        s->argpdot = -0.5 * temp1 * con42 +
                     0.0625 * temp2 * (7.0 - 114.0 * cosio2 + 395.0 * cosio4) +
                     temp3 * (3.0 - 36.0 * cosio2 + 49.0 * cosio4);
        double xhdot1 = -temp1 * cosio;
        s->nodedot =
            xhdot1 +
            (0.5 * temp2 * (4.0 - 19.0 * cosio2) + 2.0 * temp3 * (3.0 - 7.0 * cosio2)) * cosio;
        double xpidot = s->argpdot + s->nodedot;
        s->omgcof = s->bstar * cc3 * cos(s->argpo);
        s->xmcof = 0.0;
        if (s->ecco > 1.0e-4) {
            s->xmcof = -X2O3 * coef * s->bstar / eeta;
        }
        s->nodecf = 3.5 * omeosq * xhdot1 * s->cc1;
        s->t2cof = 1.5 * s->cc1;
        if (fabs(cosio + 1.0) > 1.5e-12) {
            s->xlcof = -0.25 * g_j3oj2 * sinio * (3.0 + 5.0 * cosio) / (1.0 + cosio);
        } else {
            s->xlcof = -0.25 * g_j3oj2 * sinio * (3.0 + 5.0 * cosio) / temp4;
        }
        s->aycof = -0.5 * g_j3oj2 * sinio;
        double delmotemp = 1.0 + s->eta * cos(s->mo);
        s->delmo = delmotemp * delmotemp * delmotemp;
        s->sinmao = sin(s->mo);
        s->x7thm1 = 7.0 * cosio2 - 1.0;

        /* deep space */
        if ((2 * LM_PI / s->no) >= 225.0) {
            s->deep = 1;
            s->isimp = 1;
            double tc = 0.0;
            double inclm = s->inclo;
            struct dscom_out o;
            memset(&o, 0, sizeof o);
            dscom(s, epoch, s->ecco, s->argpo, tc, s->inclo, s->nodeo, s->no, &o);
            dsinit(s, &o, 0.0, tc, eccsq, xpidot, inclm);
        }

        if (s->isimp != 1) {
            double cc1sq = s->cc1 * s->cc1;
            s->d2 = 4.0 * ao * tsi * cc1sq;
            double temp = s->d2 * tsi * s->cc1 / 3.0;
            s->d3 = (17.0 * ao + sfour) * temp;
            s->d4 = 0.5 * temp * ao * tsi * (221.0 * ao + 31.0 * sfour) * s->cc1;
            s->t3cof = s->d2 + 2.0 * cc1sq;
            s->t4cof = 0.25 * (3.0 * s->d3 + s->cc1 * (12.0 * s->d2 + 10.0 * cc1sq));
            s->t5cof = 0.2 * (3.0 * s->d4 + 12.0 * s->cc1 * s->d3 + 6.0 * s->d2 * s->d2 +
                              15.0 * cc1sq * (2.0 * s->d2 + cc1sq));
        }
    }

    /* derived quantities for searches */
    s->ao_pow = pow((g_xke / s->no), X2O3);
    s->period_min = LM_TWOPI / s->no;
    double a_km = ao * RE_KM;
    s->apogee_km = a_km * (1.0 + s->ecco);
    s->perigee_km = a_km * (1.0 - s->ecco);
    {
        /* angular rate at perigee of the osculating-ish orbit, in rad/s, with a
         * generous margin for perturbations */
        double ec = s->ecco < 0.99 ? s->ecco : 0.99;
        double n_rad_s = s->no / 60.0;
        double rate = n_rad_s * (1.0 + ec) * (1.0 + ec) / pow(1.0 - ec * ec, 1.5);
        s->max_rate_rad_s = rate * 1.15 + 1e-5;
    }

    double r[3], v[3];
    s->init_error = sgp4_core(s, 0.0, r, v);
    return s->init_error;
}

/* ---- public ------------------------------------------------------------------ */

int sr_sat_new_unchecked(sr_sat **out, const sr_elements *e)
{
    *out = NULL;
    if (e == NULL || !(e->mean_motion > 0.0) || !isfinite(e->mean_motion) || !isfinite(e->ecc) ||
        !isfinite(e->incl_deg) || !isfinite(e->bstar)) {
        return SR_ERR_INVAL;
    }
    struct sr_sat *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        return SR_ERR_NOMEM;
    }
    s->el = *e;
    int rc = sat_init(s);
    *out = s;
    return rc;
}

int sr_sat_new(sr_sat **out, const sr_elements *e)
{
    sr_sat *s;
    int rc = sr_sat_new_unchecked(&s, e);
    if (rc != 0) {
        sr_sat_free(s);
        *out = NULL;
        return rc;
    }
    *out = s;
    return 0;
}

void sr_sat_free(sr_sat *sat)
{
    free(sat);
}

const sr_elements *sr_sat_elements(const sr_sat *sat)
{
    return &sat->el;
}

double sr_sat_period_min(const sr_sat *sat)
{
    return sat->period_min;
}

int sr_sat_is_deep_space(const sr_sat *sat)
{
    return sat->deep;
}

int sr_sgp4(const sr_sat *sat, double tsince_min, double r[3], double v[3])
{
    return sgp4_core(sat, tsince_min, r, v);
}

int sr_propagate(const sr_sat *sat, int64_t t_ms, sr_state *out)
{
    double tsince = ((double)t_ms - sat->epoch_ms) / 60000.0;
    return sgp4_core(sat, tsince, out->r, out->v);
}
