/*
 * Link budget and what it implies: light time, free-space path loss, Es/N0,
 * DVB-S2 MODCOD choice, achievable rate, and the bytes a pass can carry.
 */
#include "linkmodels/lm_internal.h"

#include <math.h>
#include <stddef.h>

#define BOLTZMANN_DBW (-228.5991672) /* 10 log10(1.380649e-23) */

/* ETSI EN 302 307-1 V1.4.1, Table 13: spectral efficiency (information bits
 * per symbol, normal FECFRAME, no pilots) and ideal Es/N0 for QEF reception
 * on AWGN. Sorted by threshold. */
static const sr_modcod modcods[] = {
    {"QPSK 1/4", 0.490243, -2.35},   {"QPSK 1/3", 0.656448, -1.24},
    {"QPSK 2/5", 0.789412, -0.30},   {"QPSK 1/2", 0.988858, 1.00},
    {"QPSK 3/5", 1.188304, 2.23},    {"QPSK 2/3", 1.322253, 3.10},
    {"QPSK 3/4", 1.487473, 4.03},    {"QPSK 4/5", 1.587196, 4.68},
    {"QPSK 5/6", 1.654663, 5.18},    {"8PSK 3/5", 1.779991, 5.50},
    {"QPSK 8/9", 1.766451, 6.20},    {"QPSK 9/10", 1.788612, 6.42},
    {"8PSK 2/3", 1.980636, 6.62},    {"8PSK 3/4", 2.228124, 7.91},
    {"16APSK 2/3", 2.637201, 8.97},  {"8PSK 5/6", 2.478562, 9.35},
    {"16APSK 3/4", 2.966728, 10.21}, {"8PSK 8/9", 2.646012, 10.69},
    {"8PSK 9/10", 2.679207, 10.98},  {"16APSK 4/5", 3.165623, 11.03},
    {"16APSK 5/6", 3.300184, 11.61}, {"32APSK 3/4", 3.703295, 12.73},
    {"16APSK 8/9", 3.523143, 12.89}, {"16APSK 9/10", 3.567342, 13.13},
    {"32APSK 4/5", 3.951571, 13.64}, {"32APSK 5/6", 4.119540, 14.28},
    {"32APSK 8/9", 4.397854, 15.69}, {"32APSK 9/10", 4.453027, 16.05},
};

const sr_modcod *sr_modcod_table(size_t *n)
{
    *n = sizeof(modcods) / sizeof(modcods[0]);
    return modcods;
}

double sr_light_time_ms(double range_km)
{
    return range_km / SR_LM_C_KM_S * 1000.0;
}

double sr_fspl_db(double range_km, double freq_hz)
{
    double d_m = range_km * 1000.0;
    double c_m_s = SR_LM_C_KM_S * 1000.0;
    return 20.0 * log10(4.0 * LM_PI * d_m * freq_hz / c_m_s);
}

double sr_link_esn0_db(const sr_link_cfg *cfg, double range_km)
{
    double cn0 = cfg->eirp_dbw - sr_fspl_db(range_km, cfg->freq_hz) - cfg->losses_db + cfg->gt_dbk -
                 BOLTZMANN_DBW;
    return cn0 - 10.0 * log10(cfg->symbol_rate);
}

double sr_link_rate_bps(const sr_link_cfg *cfg, double el_deg, double range_km,
                        const sr_modcod **mc)
{
    if (mc != NULL) {
        *mc = NULL;
    }
    if (!(el_deg >= cfg->min_el_deg) || !(range_km > 0) || !(cfg->symbol_rate > 0) ||
        !(cfg->freq_hz > 0)) {
        return 0.0;
    }
    double esn0 = sr_link_esn0_db(cfg, range_km) - cfg->margin_db;
    const sr_modcod *best = NULL;
    for (size_t i = 0; i < sizeof(modcods) / sizeof(modcods[0]); i++) {
        if (modcods[i].esn0_db <= esn0 &&
            (best == NULL || modcods[i].efficiency > best->efficiency)) {
            best = &modcods[i];
        }
    }
    if (best == NULL) {
        return 0.0;
    }
    if (mc != NULL) {
        *mc = best;
    }
    double rate = cfg->symbol_rate * best->efficiency;
    if (cfg->max_rate_bps > 0 && rate > cfg->max_rate_bps) {
        rate = cfg->max_rate_bps;
    }
    return rate;
}

static int rate_at(const sr_station *st, const sr_sat *sat, const sr_link_cfg *cfg, int64_t t,
                   double *rate)
{
    sr_look_angles la;
    int rc = sr_look(st, sat, t, &la);
    if (rc != 0) {
        return rc;
    }
    *rate = sr_link_rate_bps(cfg, la.el_deg, la.range_km, NULL);
    return 0;
}

int sr_bytes_until_los(const sr_station *st, const sr_sat *sat, const sr_link_cfg *cfg,
                       int64_t t_ms, double *bytes, int64_t *los_ms)
{
    int64_t los;
    *bytes = 0.0;
    int rc = sr_next_los(st, sat, t_ms, SR_PASS_EDGE_SEARCH_MS, cfg->min_el_deg, &los);
    if (rc != 0) {
        return rc;
    }
    if (los_ms != NULL) {
        *los_ms = los;
    }
    int64_t span = los - t_ms;
    if (span <= 0) {
        return 0;
    }
    /* composite Simpson, an even number of intervals of at most 2 s */
    int64_t nint = (span + 1999) / 2000;
    if (nint < 2) {
        nint = 2;
    }
    if (nint % 2) {
        nint++;
    }
    double h = (double)span / (double)nint; /* ms */
    double sum = 0.0;
    for (int64_t k = 0; k <= nint; k++) {
        int64_t t = t_ms + (int64_t)llround(h * (double)k);
        if (k == nint) {
            t = los;
        }
        double r;
        /* the last point sits on the mask: evaluate just inside */
        if ((rc = rate_at(st, sat, cfg, k == nint ? t - 1 : t, &r)) != 0) {
            return rc;
        }
        double w = (k == 0 || k == nint) ? 1.0 : (k % 2 ? 4.0 : 2.0);
        sum += w * r;
    }
    *bytes = sum * (h / 1000.0) / 3.0 / 8.0;
    return 0;
}

int sr_time_to_send(const sr_station *st, const sr_sat *sat, const sr_link_cfg *cfg, int64_t t_ms,
                    double nbytes, int64_t *done_ms)
{
    int64_t los;
    int rc = sr_next_los(st, sat, t_ms, SR_PASS_EDGE_SEARCH_MS, cfg->min_el_deg, &los);
    if (rc != 0) {
        return rc;
    }
    if (nbytes <= 0) {
        *done_ms = t_ms;
        return 0;
    }
    const int64_t step = 1000;
    double bits = nbytes * 8.0, acc = 0.0, r0;
    if ((rc = rate_at(st, sat, cfg, t_ms, &r0)) != 0) {
        return rc;
    }
    for (int64_t t = t_ms; t < los; t += step) {
        int64_t t1 = t + step < los ? t + step : los;
        double r1;
        if ((rc = rate_at(st, sat, cfg, t1 == los ? los - 1 : t1, &r1)) != 0) {
            return rc;
        }
        double dt = (double)(t1 - t) / 1000.0;
        double inc = 0.5 * (r0 + r1) * dt;
        if (acc + inc >= bits) {
            /* linear rate within the step: solve for the fraction */
            double need = bits - acc;
            double frac = inc > 0 ? need / inc : 1.0;
            *done_ms = t + (int64_t)ceil(frac * (double)(t1 - t));
            return 0;
        }
        acc += inc;
        r0 = r1;
    }
    *done_ms = los;
    return SR_ERR_FULL;
}
