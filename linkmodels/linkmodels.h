/*
 * skyroute linkmodels: pure orbital and link mathematics (DESIGN section 8).
 *
 * - Elements: TLE (2- and 3-line, checksums, Alpha-5) and CCSDS OMM in the
 *   JSON, CSV, XML and KVN forms CelesTrak publishes.
 * - SGP4/SDP4 as in Vallado, Crawford, Hujsak and Kelso 2006, "Revisiting
 *   Spacetrack Report #3", WGS-72 constants, improved ('i') operation mode.
 * - Frames: TEME -> pseudo-Earth-fixed (GMST rotation) -> topocentric
 *   azimuth / elevation / range / range rate for a WGS-84 station.
 * - Passes (AOS / TCA / LOS above an elevation mask), link budget with a
 *   DVB-S2 MODCOD table, bytes deliverable before LOS, handover and eclipse.
 *
 * Nothing here does I/O or reads the clock: time is a parameter, int64_t
 * milliseconds since the Unix epoch, UTC (DESIGN section 4). Leap seconds are
 * ignored and UT1 is taken equal to UTC (an error below 1 s of Earth rotation).
 * All functions are reentrant; an sr_sat is immutable after sr_sat_new() and
 * may be shared between threads.
 *
 * Verified by tests/linkmodels: every row of Vallado's tcppver.out for
 * SGP4-VER.TLE within 1.2e-7 km (the worst is 20413 after 3.5 years; the rest
 * agree to the 1e-8 km printed) with his error codes; AOS and LOS within
 * 0.6 s of skyfield's find_events (the difference is mostly skyfield's
 * UT1 - UTC) for LEO, polar, retrograde, MEO and Molniya orbits.
 *
 * Errors are the negative sr_error codes of common/common.h. Functions that
 * parse text take |err|/|errlen|: on failure a NUL-terminated English message
 * naming the line and field is written there (if |err| is not NULL).
 */
#ifndef SR_LINKMODELS_H
#define SR_LINKMODELS_H

#include <stddef.h>
#include <stdint.h>

#include "common/common.h"

/* ---- constants ------------------------------------------------------------ */

#define SR_LM_C_KM_S 299792.458   /* speed of light */
#define SR_LM_WGS84_A_KM 6378.137 /* station ellipsoid */
#define SR_LM_WGS84_F (1.0 / 298.257223563)
#define SR_LM_WGS72_RE_KM 6378.135 /* SGP4 Earth radius */
#define SR_LM_WGS72_MU 398600.8    /* SGP4 km^3/s^2 */

/* ---- elements ------------------------------------------------------------- */

/* One set of SGP4 mean elements, in the units of the TLE. Parsers fill every
 * field; a caller building one by hand (e.g. synthetic shells) must set at
 * least catnum, epoch_ms and the six orbital elements. */
typedef struct sr_elements {
    char name[64];        /* OBJECT_NAME / line 0, may be "" */
    char intldes[16];     /* OBJECT_ID "1998-067A" or TLE "98067A  " trimmed */
    uint32_t catnum;      /* NORAD catalogue number, 0..339999 (Alpha-5) or more via OMM */
    char classification;  /* 'U', 'C', 'S' */
    int epoch_year;       /* four-digit year */
    double epoch_days;    /* day of year with fraction, 1.0 = Jan 1 0h */
    double epoch_ms;      /* the same instant, ms since the Unix epoch (fractional) */
    double ndot;          /* rev/day^2 (first derivative / 2 as in the TLE) */
    double nddot;         /* rev/day^3 (second derivative / 6 as in the TLE) */
    double bstar;         /* 1 / Earth radii */
    double incl_deg;      /* [0, 180] */
    double raan_deg;      /* [0, 360) */
    double ecc;           /* [0, 1) */
    double argp_deg;      /* [0, 360) */
    double mean_anom_deg; /* [0, 360) */
    double mean_motion;   /* rev/day (Kozai, as published), > 0 */
    int ephemeris_type;
    int elset_num;
    int64_t rev_num;
} sr_elements;

/* Parser options (bit flags). */
#define SR_ELEM_NO_CHECKSUM 1u /* accept TLE checksum mismatches (verification files) */

/* Parses one TLE from its lines. |line0| (the name line, with or without a
 * leading "0 ") may be NULL. Lines may carry trailing whitespace or CR. Line 1
 * must be exactly 69 columns; line 2 may carry extra text after column 69
 * (Vallado's verification format keeps start/stop/step there), which is
 * ignored. Checked: line numbers, column layout and the characters each field
 * may hold (no "nan"/"inf", no exponents where the format has none), equal
 * catalogue numbers (5 digits or Alpha-5) on both lines, checksums (unless
 * SR_ELEM_NO_CHECKSUM), epoch day in [1, 367), eccentricity as 7 digits with
 * the implied point, inclination in [0, 180], the other angles in [0, 360],
 * mean motion > 0. Whether SGP4 can use the orbit is sr_sat_new()'s business.
 * Two-digit years 57..99 are 19xx, 00..56 are 20xx.
 * Returns 0, SR_ERR_ELEM_FORMAT or SR_ERR_ELEM_CHECKSUM, with the message in
 * |err| naming the line and field; |out| is undefined on failure. */
int sr_tle_parse(sr_elements *out, const char *line0, const char *line1, const char *line2,
                 unsigned flags, char *err, size_t errlen) SR_WARN_UNUSED;

/* Parses every element set in |text| (|len| bytes, need not be NUL-terminated)
 * after detecting its format: 2- or 3-line TLE, OMM JSON (an object or an
 * array of objects), OMM CSV (header row), OMM XML (<ndm>/<omm>) or OMM KVN.
 * On success *out is a malloc'd array of *n >= 1 sets the caller frees with
 * free(). Refuses the whole text on the first bad set (message names line and
 * field). At most |max_sets| sets (0 = 1,000,000).
 * Returns 0, SR_ERR_ELEM_FORMAT, SR_ERR_ELEM_CHECKSUM, SR_ERR_TOOBIG,
 * SR_ERR_NOMEM; on failure *out is NULL and *n is 0. */
int sr_elements_parse_text(sr_elements **out, size_t *n, const char *text, size_t len,
                           size_t max_sets, unsigned flags, char *err,
                           size_t errlen) SR_WARN_UNUSED;

/* Format-specific entry points with the same contract as
 * sr_elements_parse_text(). */
int sr_omm_parse_json(sr_elements **out, size_t *n, const char *text, size_t len, size_t max_sets,
                      char *err, size_t errlen) SR_WARN_UNUSED;
int sr_omm_parse_csv(sr_elements **out, size_t *n, const char *text, size_t len, size_t max_sets,
                     char *err, size_t errlen) SR_WARN_UNUSED;
int sr_omm_parse_xml(sr_elements **out, size_t *n, const char *text, size_t len, size_t max_sets,
                     char *err, size_t errlen) SR_WARN_UNUSED;
int sr_omm_parse_kvn(sr_elements **out, size_t *n, const char *text, size_t len, size_t max_sets,
                     char *err, size_t errlen) SR_WARN_UNUSED;

/* Writes |e| as TLE lines 1 and 2 (69 characters + NUL each, checksums set;
 * catalogue numbers above 99999 use Alpha-5). Returns 0 or SR_ERR_RANGE when a
 * value cannot be represented (catnum > 339999, year outside 1957..2056). */
#define SR_TLE_LINE_LEN 70
int sr_tle_format(char line1[SR_TLE_LINE_LEN], char line2[SR_TLE_LINE_LEN],
                  const sr_elements *e) SR_WARN_UNUSED;

/* Appends |e| as one CelesTrak-style OMM JSON object to |b|.
 * Returns 0, SR_ERR_TOOBIG or SR_ERR_NOMEM. */
int sr_omm_format_json(sr_buf *b, const sr_elements *e) SR_WARN_UNUSED;

/* Sets epoch_ms, epoch_year and epoch_days of |e| from |epoch_ms|. */
void sr_elements_set_epoch(sr_elements *e, double epoch_ms);

/* ---- SGP4 ----------------------------------------------------------------- */

/* A satellite: its elements and initialised SGP4/SDP4 state. Immutable after
 * creation; sr_propagate() and friends take it const. */
typedef struct sr_sat sr_sat;

/* Initialises SGP4 for |e| (copied). On success *out owns a new satellite to
 * release with sr_sat_free(). Returns 0, SR_ERR_NOMEM, SR_ERR_INVAL, or the
 * SGP4 error met at epoch: SR_ERR_SGP4_ECC, _MEANMOTION, _PERTECC, _SEMILATUS,
 * _DECAYED (then *out is NULL). Vallado's error 5 (sub-orbital epoch
 * elements, SR_ERR_SGP4_SUBORBITAL) is never returned: his code has had that
 * check disabled since 2006 and tcppver.out depends on it being so. */
int sr_sat_new(sr_sat **out, const sr_elements *e) SR_WARN_UNUSED;

/* Like sr_sat_new() but keeps the satellite even when SGP4 reports an error at
 * epoch (Vallado's verification run does): *out is set whenever the return is
 * not SR_ERR_NOMEM/SR_ERR_INVAL, and the return is that epoch error or 0. */
int sr_sat_new_unchecked(sr_sat **out, const sr_elements *e);

void sr_sat_free(sr_sat *sat); /* NULL is a no-op */

const sr_elements *sr_sat_elements(const sr_sat *sat);
/* Nodal period in minutes (from the un-Kozai'd mean motion). */
double sr_sat_period_min(const sr_sat *sat);
/* 1 when SDP4 (deep space, period >= 225 min) is used. */
int sr_sat_is_deep_space(const sr_sat *sat);

/* SGP4 at |tsince_min| minutes from the element epoch: TEME position (km) and
 * velocity (km/s). Returns 0 or SR_ERR_SGP4_ECC / _MEANMOTION / _PERTECC /
 * _SEMILATUS / _DECAYED (Vallado's errors 1, 2, 3, 4, 6); r and v are
 * unspecified on error. Does not allocate. */
int sr_sgp4(const sr_sat *sat, double tsince_min, double r[3], double v[3]);

/* A TEME state at a time. */
typedef struct sr_state {
    double r[3]; /* km */
    double v[3]; /* km/s */
} sr_state;

/* sr_sgp4() at |t_ms| (ms since the Unix epoch, UTC). Same errors. */
int sr_propagate(const sr_sat *sat, int64_t t_ms, sr_state *out);

/* ---- time and frames ------------------------------------------------------- */

/* Split Julian date (UTC) of |t_ms|: *jd is a whole day boundary + 0.5 and
 * *frac in [0, 1). */
void sr_jd_from_ms(int64_t t_ms, double *jd, double *frac);

/* Greenwich mean sidereal time (IAU 1982, as used with TEME), radians in
 * [0, 2pi), for a UT1 Julian date (UT1 = UTC here). */
double sr_gmst(double jd_ut1);

/* Rotates a TEME state into the pseudo-Earth-fixed frame (km, km/s) at |t_ms|.
 * No polar motion. */
void sr_teme_to_ecef(const sr_state *teme, int64_t t_ms, sr_state *ecef);

/* A ground station: WGS-84 geodetic position plus precomputed Earth-fixed
 * vectors. Fill it with sr_station_init(). */
typedef struct sr_station {
    double lat_deg, lon_deg, alt_m;
    double ecef[3];                  /* km */
    double east[3], north[3], up[3]; /* unit vectors, Earth-fixed */
    double geoc_up[3];               /* unit geocentric direction of the station */
    double radius_km;                /* |ecef| */
} sr_station;

/* Returns 0 or SR_ERR_RANGE (lat outside [-90,90], lon outside [-180,360],
 * alt outside [-1000 m, 100 km], or not finite). */
int sr_station_init(sr_station *st, double lat_deg, double lon_deg, double alt_m) SR_WARN_UNUSED;

/* Parses "LAT,LON,ALT_M" (degrees, degrees, metres) into |st|.
 * Returns 0, SR_ERR_PARSE or SR_ERR_RANGE. */
int sr_station_parse(sr_station *st, const char *s) SR_WARN_UNUSED;

/* Topocentric view of a satellite from a station. */
typedef struct sr_look_angles {
    double az_deg;          /* [0, 360), from north through east */
    double el_deg;          /* [-90, 90] */
    double range_km;        /* slant range */
    double range_rate_km_s; /* positive when receding */
    double el_rate_deg_s;   /* d(elevation)/dt */
} sr_look_angles;

/* Look angles of |sat| from |st| at |t_ms|. Returns 0 or an SR_ERR_SGP4_* code. */
int sr_look(const sr_station *st, const sr_sat *sat, int64_t t_ms, sr_look_angles *out);

/* The same from an Earth-fixed state (no propagation). */
void sr_look_ecef(const sr_station *st, const sr_state *ecef, sr_look_angles *out);

/* ---- passes ----------------------------------------------------------------- */

typedef struct sr_pass {
    int64_t aos_ms; /* elevation rises through the mask */
    int64_t tca_ms; /* culmination: highest elevation of the pass */
    int64_t los_ms; /* elevation falls through the mask */
    double max_el_deg;
    double aos_az_deg;
    double los_az_deg;
    int flags; /* SR_PASS_* */
} sr_pass;

#define SR_PASS_AOS_CLIPPED 1 /* no AOS within the backward search limit: aos_ms is that limit */
#define SR_PASS_LOS_CLIPPED 2 /* no LOS within the forward search limit: los_ms is that limit */

/* How far find_passes looks outside the window for the true AOS of a pass in
 * progress at |from_ms| and the true LOS of one in progress at |to_ms|. */
#define SR_PASS_EDGE_SEARCH_MS (3 * 86400 * 1000LL)

/* Every pass of |sat| over |st| with elevation above |min_el_deg| that is
 * above the mask at some instant in [from_ms, to_ms]. AOS and LOS are found
 * by root finding to better than 10 ms, TCA likewise on the elevation rate.
 * A pass in progress at from_ms is reported with its true AOS (searched
 * backwards), one in progress at to_ms with its true LOS. A pass whose maximum
 * elevation never reaches the mask is not a pass. On success *out is a malloc'd
 * array (NULL when *n == 0) the caller frees with free().
 * Returns 0, SR_ERR_INVAL (from_ms > to_ms, mask outside [-5, 89]),
 * SR_ERR_NOMEM, SR_ERR_TOOBIG (window over 400 days), or the SGP4 error that
 * stopped the search (passes found before it are discarded). */
int sr_find_passes(const sr_station *st, const sr_sat *sat, int64_t from_ms, int64_t to_ms,
                   double min_el_deg, sr_pass **out, size_t *n) SR_WARN_UNUSED;

/* The next AOS of |sat| at or after |t_ms| within |horizon_ms|: if the
 * satellite is already above the mask at t_ms, *aos_ms = t_ms and *up = 1.
 * Returns 0, SR_ERR_NOTFOUND (no AOS within the horizon), or an SGP4 error. */
int sr_next_aos(const sr_station *st, const sr_sat *sat, int64_t t_ms, int64_t horizon_ms,
                double min_el_deg, int64_t *aos_ms, int *up);

/* The LOS of the pass in progress at |t_ms|. Returns 0, SR_ERR_UNAVAILABLE
 * (below the mask at t_ms), SR_ERR_NOTFOUND (no LOS within |horizon_ms|), or
 * an SGP4 error. */
int sr_next_los(const sr_station *st, const sr_sat *sat, int64_t t_ms, int64_t horizon_ms,
                double min_el_deg, int64_t *los_ms);

/* ---- link ------------------------------------------------------------------- */

/* One-way light time in milliseconds over |range_km| (vacuum). */
double sr_light_time_ms(double range_km);

/* A radio link budget. */
typedef struct sr_link_cfg {
    double freq_hz;      /* carrier, e.g. 12e9 */
    double eirp_dbw;     /* transmitter EIRP */
    double gt_dbk;       /* receiver G/T */
    double symbol_rate;  /* symbols/s (occupied bandwidth = Rs * (1 + rolloff)) */
    double losses_db;    /* atmospheric, pointing, implementation losses (>= 0) */
    double margin_db;    /* required margin over the MODCOD threshold (>= 0) */
    double max_rate_bps; /* modem cap; 0 = no cap */
    double min_el_deg;   /* no link below this elevation */
} sr_link_cfg;

/* A DVB-S2 MODCOD (ETSI EN 302 307-1, Table 13: ideal Es/N0 for quasi-error-free
 * operation, AWGN, normal FECFRAME, no pilots). */
typedef struct sr_modcod {
    const char *name;  /* "QPSK 1/2" */
    double efficiency; /* information bits per symbol */
    double esn0_db;    /* threshold */
} sr_modcod;

/* The table, sorted by threshold; *n gets its length. */
const sr_modcod *sr_modcod_table(size_t *n);

/* Free-space path loss in dB over |range_km| at |freq_hz|. */
double sr_fspl_db(double range_km, double freq_hz);

/* Es/N0 in dB received over |range_km|. */
double sr_link_esn0_db(const sr_link_cfg *cfg, double range_km);

/* Achievable information rate (bit/s) at elevation |el_deg| and slant range
 * |range_km|: 0 below cfg->min_el_deg or when no MODCOD closes, else
 * Rs * efficiency of the most efficient MODCOD whose threshold + margin is
 * met, capped at max_rate_bps. If |mc| is not NULL it gets that MODCOD (NULL
 * when none). */
double sr_link_rate_bps(const sr_link_cfg *cfg, double el_deg, double range_km,
                        const sr_modcod **mc);

/* Bytes deliverable from |t_ms| until the LOS of the pass in progress (the
 * integral of sr_link_rate_bps over time, composite Simpson with steps of at
 * most 2 s, mask cfg->min_el_deg). *los_ms gets the LOS (may be NULL).
 * Below the mask at t_ms: *bytes = 0 and SR_ERR_UNAVAILABLE.
 * Returns 0, SR_ERR_UNAVAILABLE, SR_ERR_NOTFOUND (no LOS within 3 days), or
 * an SGP4 error. */
int sr_bytes_until_los(const sr_station *st, const sr_sat *sat, const sr_link_cfg *cfg,
                       int64_t t_ms, double *bytes, int64_t *los_ms);

/* The inverse: the earliest time *done_ms at which |nbytes| sent from |t_ms|
 * over the pass in progress have been delivered. Returns 0, SR_ERR_FULL (does
 * not fit before LOS; *done_ms = LOS), SR_ERR_UNAVAILABLE (below the mask), or
 * an SGP4 error. */
int sr_time_to_send(const sr_station *st, const sr_sat *sat, const sr_link_cfg *cfg, int64_t t_ms,
                    double nbytes, int64_t *done_ms);

/* ---- handover ------------------------------------------------------------- */

typedef struct sr_handover_entry {
    size_t index;   /* into the satellite array */
    int up;         /* above the mask at t */
    int64_t aos_ms; /* next AOS (t if up), or INT64_MAX when none within the horizon */
    int64_t los_ms; /* LOS of the current/next pass, INT64_MAX when unknown */
} sr_handover_entry;

/* For |n| satellites at |t_ms|: out[i] describes sats[i] (next AOS, or the
 * LOS of the pass in progress). *serving gets the index of the satellite
 * above the mask with the latest LOS (the one to keep), or (size_t)-1.
 * Returns 0 or the first SGP4 error met (entries before it are valid). */
int sr_handover_predict(const sr_station *st, const sr_sat *const *sats, size_t n, int64_t t_ms,
                        int64_t horizon_ms, double min_el_deg, sr_handover_entry *out,
                        size_t *serving);

/* Best satellite in each slot of |slot_ms| from |from_ms|: best[k] gets the
 * index of the satellite with the highest elevation at the middle of slot k
 * (k < nslots), or (size_t)-1 when none is above the mask. Passes are found
 * first so only satellites that are up are looked at; if that search fails
 * (an SGP4 error or no memory) every satellite is looked at in every slot and
 * satellites that error are skipped. Returns 0 or SR_ERR_INVAL (slot_ms <= 0,
 * mask outside [-5, 89]). */
#define SR_HANDOVER_SLOT_MS 15000
int sr_best_per_slot(const sr_station *st, const sr_sat *const *sats, size_t n, int64_t from_ms,
                     int64_t slot_ms, size_t nslots, double min_el_deg, size_t *best);

/* ---- sun and eclipse --------------------------------------------------------- */

/* Geocentric Sun position (km, equatorial of date, close to TEME at this
 * precision: about 0.01 deg) from the Astronomical Almanac low-precision
 * formula. */
void sr_sun_position(int64_t t_ms, double r_km[3]);

/* 1 if |r_teme| (km) is in sunlight at t, 0 if in Earth's umbra (conical
 * shadow, spherical Earth of radius 6378.137 km). */
int sr_sunlit_at(const double r_teme[3], int64_t t_ms);

/* *sunlit = 1 or 0 for |sat| at |t_ms|. Returns 0 or an SGP4 error. */
int sr_sunlit(const sr_sat *sat, int64_t t_ms, int *sunlit);

/* The next eclipse (umbra) entry after |t_ms| within |horizon_ms| and its
 * exit; if the satellite is in shadow at t_ms, *entry_ms = t_ms. Times to
 * within 100 ms. Returns 0, SR_ERR_NOTFOUND (no entry within the horizon;
 * *exit_ms is INT64_MAX if the exit is beyond it), or an SGP4 error. */
int sr_next_eclipse(const sr_sat *sat, int64_t t_ms, int64_t horizon_ms, int64_t *entry_ms,
                    int64_t *exit_ms);

/* ---- synthetic elements ------------------------------------------------------ */

/* A Walker-delta shell i:T/P/F at circular altitude |alt_km|. Writes P*S
 * element sets to |out| (room for planes*per_plane), catalogue numbers from
 * |first_catnum|, names "WALKER-p-s". Returns 0 or SR_ERR_RANGE. */
int sr_synth_walker(sr_elements *out, double alt_km, double incl_deg, unsigned planes,
                    unsigned per_plane, unsigned phasing, int64_t epoch_ms,
                    uint32_t first_catnum) SR_WARN_UNUSED;

/* A circular satellite at |alt_km| and |incl_deg| whose ground track passes
 * over |st| at |t_ms| (rising, i.e. northbound, when |ascending|), epoch t_ms.
 * Returns 0 or SR_ERR_RANGE (inclination below the station's latitude). */
int sr_synth_overhead(sr_elements *out, const sr_station *st, int64_t t_ms, double alt_km,
                      double incl_deg, int ascending, uint32_t catnum) SR_WARN_UNUSED;

#endif /* SR_LINKMODELS_H */
