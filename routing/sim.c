/*
 * The simulator: the router that skyrouted runs, on a virtual clock, against
 * a truth that differs from its predictions (contract in routing.h).
 *
 * Events are workload arrivals (generated up front from the seed) and the
 * ends of dispatches (success or failure), processed in time order; the
 * router hears of every end at its time, as the daemon would. The truth is a
 * deterministic function of (seed, workload, target, attempt), so the oracle
 * can look ahead at exactly what would happen, and two runs with one seed
 * agree to the last digit.
 */
#include "routing/routing_int.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "linkmodels/linkmodels.h"

#define SIM_MAX_IDC 64
#define SIM_ATTEMPTS 3
#define SIM_MAX_PASSES 64

struct range {
    double lo, hi;
};

struct sim_idc {
    char id[SR_TARGET_IDMAX];
    double rtt_ms, gops, up_bps, down_bps, queue_ms;
    struct sr_energy_profile e;
    double pv_peak_w, utc_offset_h;
};

struct sim_sat {
    char id[SR_TARGET_IDMAX];
    sr_pass *p; /* nominal passes */
    double *light;
    size_t np;
    int64_t (*ecl)[2];
    size_t necl;
};

struct sr_sim {
    /* scenario */
    int64_t start_ms, dur_ms;
    sr_station st;
    bool have_station;
    double min_el;
    double walker_alt, walker_incl;
    unsigned walker_p, walker_s, walker_f;
    sr_elements *els;
    size_t nels;
    double sat_gops, sat_rtt, sat_up, sat_down, sat_queue;
    struct sr_energy_profile sat_e;
    struct sim_idc idc[SIM_MAX_IDC];
    size_t nidc;
    double rate_per_min;
    struct range work, bytes, rbytes, deadline_s;
    double orbit_frac, ground_frac, onboard_frac;
    double jitter, outage_per_h, outage_s, fade_prob, fade_factor, elem_err_s;
    struct sr_policy pol;
    /* prepared */
    struct sim_sat *sats;
    size_t nsats;
    bool prepared;
};

/* ---- randomness: splitmix64, keyed so that every draw is reproducible ---------------- */

static uint64_t mix(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

static uint64_t key4(uint64_t a, uint64_t b, uint64_t c, uint64_t d)
{
    return mix(mix(mix(mix(a) ^ b) ^ c) ^ d);
}

static double u01(uint64_t k)
{
    return ((double)(mix(k) >> 11) + 0.5) / 9007199254740992.0;
}

static double gauss(uint64_t k)
{
    double u1 = u01(k), u2 = u01(k ^ 0x5555555555555555ULL);
    return sqrt(-2 * log(u1)) * cos(2 * M_PI * u2);
}

struct rng {
    uint64_t s;
};

static double rnd(struct rng *g)
{
    g->s = mix(g->s);
    return ((double)(g->s >> 11) + 0.5) / 9007199254740992.0;
}

static double loguniform(struct rng *g, struct range r)
{
    if (r.hi <= r.lo || r.lo <= 0) {
        return r.lo;
    }
    return exp(log(r.lo) + rnd(g) * (log(r.hi) - log(r.lo)));
}

/* ---- scenario keys ---------------------------------------------------------------------- */

int sr_sim_new(sr_sim **out)
{
    sr_sim *s = calloc(1, sizeof(*s));
    if (!s) {
        return SR_ERR_NOMEM;
    }
    s->dur_ms = 6 * 3600 * 1000LL;
    s->start_ms = 1795392000000LL; /* 2026-11-23T00:00:00Z */
    s->min_el = 10;
    s->sat_gops = 20;
    s->sat_rtt = 40;
    s->sat_up = 2e6;
    s->sat_down = 20e6;
    s->rate_per_min = 10;
    s->work = (struct range){10, 1000};
    s->bytes = (struct range){1e5, 1e7};
    s->rbytes = (struct range){1e4, 1e6};
    s->deadline_s = (struct range){5, 600};
    s->jitter = 0.1;
    s->outage_s = 60;
    s->fade_factor = 0.5;
    s->elem_err_s = 2;
    sr_policy_default(&s->pol);
    *out = s;
    return 0;
}

void sr_sim_free(sr_sim *s)
{
    if (!s) {
        return;
    }
    for (size_t i = 0; i < s->nsats; i++) {
        free(s->sats[i].p);
        free(s->sats[i].light);
        free(s->sats[i].ecl);
    }
    free(s->sats);
    free(s->els);
    free(s);
}

static int num(double *out, const char *v, double lo, double hi, char *err, size_t errlen)
{
    double d = 0;
    if (sr_parse_double(&d, v, strlen(v)) != 0) {
        snprintf(err, errlen, "'%s' is not a number", v);
        return SR_ERR_PARSE;
    }
    if (d < lo || d > hi) {
        snprintf(err, errlen, "%g is outside [%g, %g]", d, lo, hi);
        return SR_ERR_RANGE;
    }
    *out = d;
    return 0;
}

/* "LO-HI" or "LO..HI" or a single value. */
static int range(struct range *out, const char *v, double lo, double hi, char *err, size_t errlen)
{
    char a[64], *sep;
    snprintf(a, sizeof(a), "%s", v);
    sep = strstr(a, "..");
    size_t skip = 2;
    if (!sep) {
        sep = strchr(a + 1, '-'); /* not a leading minus */
        skip = 1;
    }
    if (!sep) {
        int rv = num(&out->lo, a, lo, hi, err, errlen);
        out->hi = out->lo;
        return rv;
    }
    *sep = 0;
    int rv = num(&out->lo, a, lo, hi, err, errlen);
    rv = rv ? rv : num(&out->hi, sep + skip, lo, hi, err, errlen);
    if (rv == 0 && out->hi < out->lo) {
        snprintf(err, errlen, "range '%s' runs backwards", v);
        return SR_ERR_RANGE;
    }
    return rv;
}

static int energy_key(struct sr_energy_profile *e, const char *key, const char *v, bool *done,
                      char *err, size_t errlen)
{
    double d = 0;
    int rv = 0;
    *done = true;
    if (!strcmp(key, "joules_per_gop")) {
        rv = num(&e->joules_per_gop, v, 0, 1e6, err, errlen);
    } else if (!strcmp(key, "pue")) {
        rv = num(&e->pue, v, 1, 10, err, errlen);
    } else if (!strcmp(key, "price_per_kwh")) {
        rv = num(&e->price_per_kwh, v, 0, 1e6, err, errlen);
    } else if (!strcmp(key, "carbon_g_per_kwh")) {
        rv = num(&e->carbon_g_per_kwh, v, 0, 1e6, err, errlen);
    } else if (!strcmp(key, "battery_cost")) {
        rv = num(&e->battery_cost, v, 0, 1e6, err, errlen);
    } else if (!strcmp(key, "power")) {
        if (strcmp(v, "grid") && strcmp(v, "pv")) {
            snprintf(err, errlen, "power is grid or pv, not '%s'", v);
            return SR_ERR_PARSE;
        }
        e->pv = !strcmp(v, "pv");
    } else if (!strcmp(key, "pv")) {
        rv = num(&d, v, 0, 1, err, errlen);
        e->pv = d > 0;
    } else {
        *done = false;
    }
    return rv;
}

static int set_key(sr_sim *s, const char *section, const char *key, const char *v, char *err,
                   size_t errlen)
{
    bool done = false;
    int rv = 0;
    double d = 0;
    s->prepared = false;
    if (!strcmp(section, "scenario")) {
        if (!strcmp(key, "start")) {
            rv = sr_time_parse(&s->start_ms, v, (size_t)-1);
            if (rv) {
                snprintf(err, errlen, "start: '%s' is not an RFC 3339 time", v);
            }
            return rv;
        }
        if (!strcmp(key, "duration_s")) {
            rv = num(&d, v, 60, 7 * 86400, err, errlen);
            s->dur_ms = (int64_t)(d * 1000);
            return rv;
        }
        if (!strcmp(key, "name") || !strcmp(key, "description")) {
            return 0;
        }
    } else if (!strcmp(section, "station")) {
        if (!strcmp(key, "location")) {
            rv = sr_station_parse(&s->st, v);
            if (rv) {
                snprintf(err, errlen, "location: expected LAT,LON,ALT_M, got '%s'", v);
            }
            s->have_station = rv == 0;
            return rv;
        }
        if (!strcmp(key, "min_el_deg")) {
            return num(&s->min_el, v, 0, 80, err, errlen);
        }
    } else if (!strcmp(section, "constellation")) {
        if (!strcmp(key, "walker")) {
            /* ALT_KM:INCL_DEG:PLANES/PER_PLANE/PHASING */
            double alt, inc;
            unsigned p, n, f;
            char tail;
            /* %u takes "-1" as UINT_MAX, and PLANES x PER_PLANE could wrap:
             * no minus sign anywhere, and the product taken in 64 bits */
            if (strchr(v, '-') ||
                sscanf(v, "%lf:%lf:%u/%u/%u%c", &alt, &inc, &p, &n, &f, &tail) != 5 || p == 0 ||
                n == 0 || alt < 200 || alt > 2000 || inc < 0 || inc > 180) {
                snprintf(err, errlen,
                         "walker: expected ALT_KM:INCL:PLANES/PER_PLANE/PHASING, got '%s'", v);
                return SR_ERR_PARSE;
            }
            if ((uint64_t)p * n > 20000 || f >= p) {
                snprintf(err, errlen,
                         "walker: '%s': at most 20000 satellites (PLANES x PER_PLANE), and "
                         "PHASING below PLANES",
                         v);
                return SR_ERR_PARSE;
            }
            s->walker_alt = alt;
            s->walker_incl = inc;
            s->walker_p = p;
            s->walker_s = n;
            s->walker_f = f;
            return 0;
        }
        if (!strcmp(key, "gops")) {
            return num(&s->sat_gops, v, 1e-3, 1e9, err, errlen);
        }
        if (!strcmp(key, "rtt_ms")) {
            return num(&s->sat_rtt, v, 0.1, 1e6, err, errlen);
        }
        if (!strcmp(key, "uplink_bps")) {
            return num(&s->sat_up, v, 1, 1e12, err, errlen);
        }
        if (!strcmp(key, "downlink_bps")) {
            return num(&s->sat_down, v, 1, 1e12, err, errlen);
        }
        if (!strcmp(key, "queue_ms")) {
            return num(&s->sat_queue, v, 0, 1e9, err, errlen);
        }
        rv = energy_key(&s->sat_e, key, v, &done, err, errlen);
        if (done) {
            return rv;
        }
    } else if (!strncmp(section, "idc.", 4) && section[4]) {
        struct sim_idc *c = NULL;
        for (size_t i = 0; i < s->nidc; i++) {
            if (!strcmp(s->idc[i].id, section + 4)) {
                c = &s->idc[i];
            }
        }
        if (!c) {
            if (s->nidc == SIM_MAX_IDC || strlen(section + 4) >= SR_TARGET_IDMAX) {
                snprintf(err, errlen, "too many IDCs or name too long");
                return SR_ERR_RANGE;
            }
            c = &s->idc[s->nidc++];
            memset(c, 0, sizeof(*c));
            snprintf(c->id, sizeof(c->id), "%s", section + 4);
            c->rtt_ms = 20;
            c->gops = 100;
        }
        if (!strcmp(key, "rtt_ms")) {
            return num(&c->rtt_ms, v, 0.1, 1e6, err, errlen);
        }
        if (!strcmp(key, "gops")) {
            return num(&c->gops, v, 1e-3, 1e9, err, errlen);
        }
        if (!strcmp(key, "uplink_bps")) {
            return num(&c->up_bps, v, 0, 1e12, err, errlen);
        }
        if (!strcmp(key, "downlink_bps")) {
            return num(&c->down_bps, v, 0, 1e12, err, errlen);
        }
        if (!strcmp(key, "queue_ms")) {
            return num(&c->queue_ms, v, 0, 1e9, err, errlen);
        }
        if (!strcmp(key, "pv_peak_w")) {
            return num(&c->pv_peak_w, v, 0, 1e12, err, errlen);
        }
        if (!strcmp(key, "utc_offset_h")) {
            return num(&c->utc_offset_h, v, -14, 14, err, errlen);
        }
        rv = energy_key(&c->e, key, v, &done, err, errlen);
        if (done) {
            return rv;
        }
    } else if (!strcmp(section, "workload")) {
        if (!strcmp(key, "rate_per_min")) {
            return num(&s->rate_per_min, v, 0.01, 1e4, err, errlen);
        }
        if (!strcmp(key, "work_gop")) {
            return range(&s->work, v, 0, 1e9, err, errlen);
        }
        if (!strcmp(key, "bytes")) {
            return range(&s->bytes, v, 0, 1e12, err, errlen);
        }
        if (!strcmp(key, "result_bytes")) {
            return range(&s->rbytes, v, 0, 1e12, err, errlen);
        }
        if (!strcmp(key, "deadline_s")) {
            return range(&s->deadline_s, v, 0.01, 7 * 86400, err, errlen);
        }
        if (!strcmp(key, "orbit_frac")) {
            return num(&s->orbit_frac, v, 0, 1, err, errlen);
        }
        if (!strcmp(key, "ground_frac")) {
            return num(&s->ground_frac, v, 0, 1, err, errlen);
        }
        if (!strcmp(key, "data_onboard_frac")) {
            return num(&s->onboard_frac, v, 0, 1, err, errlen);
        }
    } else if (!strcmp(section, "truth")) {
        if (!strcmp(key, "jitter")) {
            return num(&s->jitter, v, 0, 3, err, errlen);
        }
        if (!strcmp(key, "outage_per_hour")) {
            return num(&s->outage_per_h, v, 0, 100, err, errlen);
        }
        if (!strcmp(key, "outage_s")) {
            return num(&s->outage_s, v, 0, 86400, err, errlen);
        }
        if (!strcmp(key, "fade_prob")) {
            return num(&s->fade_prob, v, 0, 1, err, errlen);
        }
        if (!strcmp(key, "fade_factor")) {
            return num(&s->fade_factor, v, 0.01, 1, err, errlen);
        }
        if (!strcmp(key, "element_error_s")) {
            return num(&s->elem_err_s, v, 0, 3600, err, errlen);
        }
    } else if (!strcmp(section, "policy")) {
        struct sr_policy p = s->pol;
        double *f = !strcmp(key, "time_weight")       ? &p.time_weight
                    : !strcmp(key, "energy_weight")   ? &p.energy_weight
                    : !strcmp(key, "price_weight")    ? &p.price_weight
                    : !strcmp(key, "carbon_weight")   ? &p.carbon_weight
                    : !strcmp(key, "margin_ms")       ? &p.margin_ms
                    : !strcmp(key, "margin_k")        ? &p.margin_k
                    : !strcmp(key, "inflight_weight") ? &p.inflight_weight
                    : !strcmp(key, "link_margin")     ? &p.link_margin
                                                      : NULL;
        if (f) {
            rv = num(f, v, 0, 1e12, err, errlen);
            s->pol = p;
            return rv;
        }
        if (!strcmp(key, "max_windows")) {
            rv = num(&d, v, 1, 4096, err, errlen);
            s->pol.max_windows = (unsigned)d;
            return rv;
        }
    }
    snprintf(err, errlen, "unknown key '%s' in [%s]", key, section);
    return SR_ERR_NOTFOUND;
}

int sr_sim_set(sr_sim *s, const char *section, const char *key, const char *v, char *err,
               size_t errlen)
{
    if (errlen) {
        err[0] = 0;
    }
    int rv = set_key(s, section, key, v, err, errlen);
    size_t kl = strlen(key);
    if (rv != 0 && errlen && !(strncmp(err, key, kl) == 0 && err[kl] == ':') &&
        strncmp(err, "unknown key", 11) != 0) {
        /* every refusal names its key: "duration_s: 1e+09 is outside [60, 604800]" */
        char why[256];
        snprintf(why, sizeof(why), "%s", err);
        snprintf(err, errlen, "%s: %s", key, why);
    }
    return rv;
}

int sr_sim_add_elements(sr_sim *s, const struct sr_elements *e, size_t n)
{
    sr_elements *ne = realloc(s->els, (s->nels + n) * sizeof(*ne));
    if (!ne) {
        return SR_ERR_NOMEM;
    }
    memcpy(ne + s->nels, e, n * sizeof(*e));
    s->els = ne;
    s->nels += n;
    s->prepared = false;
    return 0;
}

/* ---- preparation: nominal passes and eclipses ---------------------------------------------- */

static int prep_sat(sr_sim *s, struct sim_sat *ss, const sr_elements *e, int64_t from, int64_t to)
{
    sr_sat *sat;
    int rv = sr_sat_new(&sat, e);
    if (rv) {
        return rv;
    }
    rv = sr_find_passes(&s->st, sat, from, to, s->min_el, &ss->p, &ss->np);
    if (rv == 0 && ss->np) {
        ss->light = calloc(ss->np, sizeof(double));
        if (!ss->light) {
            rv = SR_ERR_NOMEM;
        }
        for (size_t i = 0; rv == 0 && i < ss->np; i++) {
            sr_look_angles la;
            ss->light[i] = sr_look(&s->st, sat, ss->p[i].aos_ms, &la) == 0
                               ? sr_light_time_ms(la.range_km)
                               : 10.0;
        }
    }
    size_t cap = 0;
    for (int64_t t = from; rv == 0 && t < to;) {
        int64_t en, ex;
        int e2 = sr_next_eclipse(sat, t, to - t, &en, &ex);
        if (e2) {
            break;
        }
        if (ss->necl == cap) {
            cap = cap ? cap * 2 : 32;
            int64_t(*n2)[2] = realloc(ss->ecl, cap * sizeof(*n2));
            if (!n2) {
                rv = SR_ERR_NOMEM;
                break;
            }
            ss->ecl = n2;
        }
        ss->ecl[ss->necl][0] = en;
        ss->ecl[ss->necl][1] = ex == INT64_MAX ? to : ex;
        ss->necl++;
        if (ex == INT64_MAX || ex <= t) {
            break;
        }
        t = ex + 1;
    }
    sr_sat_free(sat);
    return rv;
}

int sr_sim_prepare(sr_sim *s, char *err, size_t errlen)
{
    if (!s->have_station) {
        snprintf(err, errlen, "[station] location is required");
        return SR_ERR_CONFIG;
    }
    size_t nw = (size_t)s->walker_p * s->walker_s;
    size_t total = nw + s->nels;
    if (total + s->nidc == 0) {
        snprintf(err, errlen, "no targets: give [idc.NAME] sections or a [constellation]");
        return SR_ERR_CONFIG;
    }
    for (size_t i = 0; i < s->nsats; i++) {
        free(s->sats[i].p);
        free(s->sats[i].light);
        free(s->sats[i].ecl);
    }
    free(s->sats);
    s->nsats = 0;
    s->sats = calloc(total ? total : 1, sizeof(*s->sats));
    sr_elements *w = calloc(nw ? nw : 1, sizeof(*w));
    if (!s->sats || !w) {
        free(w);
        snprintf(err, errlen, "out of memory for %zu satellites", total);
        return SR_ERR_NOMEM;
    }
    int rv = 0;
    if (nw) {
        rv = sr_synth_walker(w, s->walker_alt, s->walker_incl, s->walker_p, s->walker_s,
                             s->walker_f, s->start_ms, 80000);
        if (rv) {
            snprintf(err, errlen, "walker shell: %s", sr_strerror(rv));
        }
    }
    int64_t from = s->start_ms - 3600000, to = s->start_ms + s->dur_ms + 12 * 3600000LL;
    for (size_t i = 0; rv == 0 && i < total; i++) {
        struct sim_sat *ss = &s->sats[s->nsats];
        const sr_elements *e = i < nw ? &w[i] : &s->els[i - nw];
        if (i < nw) {
            snprintf(ss->id, sizeof(ss->id), "sat-%zu", i + 1);
        } else if (e->name[0]) {
            snprintf(ss->id, sizeof(ss->id), "%s", e->name);
            for (char *c = ss->id; *c; c++) {
                if (*c == ' ') {
                    *c = '-';
                }
            }
        } else {
            snprintf(ss->id, sizeof(ss->id), "sat-%u", (unsigned)e->catnum);
        }
        rv = prep_sat(s, ss, e, from, to);
        if (rv) {
            snprintf(err, errlen, "satellite %s: %s", ss->id, sr_strerror(rv));
        }
        s->nsats++;
    }
    free(w);
    s->prepared = rv == 0;
    return rv;
}

const char *const *sr_sim_policies(void)
{
    static const char *const p[] = {"skyroute", "ground-only", "least-rtt",
                                    "random",   "oracle",      NULL};
    return p;
}

/* ---- one run ------------------------------------------------------------------------------ */

enum { P_SKYROUTE, P_GROUND, P_LEASTRTT, P_RANDOM, P_ORACLE };

struct job {
    int64_t arrive, deadline;
    struct sr_workload w;
    int data_sat; /* index into sats, or -1 */
    int attempts;
    int64_t done; /* 0 = not (yet) */
    int64_t t_dispatch;
    size_t target;
    double predicted;
    struct sr_candidate cand;
};

struct event {
    int64_t t;
    size_t job;
    bool ok;
};

struct run {
    sr_sim *s;
    int policy;
    uint64_t seed;
    sr_router *r;
    size_t ntargets;  /* IDCs first, then satellites */
    struct cal *busy; /* truth: compute calendars */
    int64_t (**out)[2];
    size_t *nout;
    double *shift; /* truth: pass time shift per satellite (ms) */
    struct job *jobs;
    size_t njobs;
    struct event *heap;
    size_t nheap, heapcap;
    struct sr_candidate *cands;
    /* results */
    double *lat;
    size_t nlat;
    double energy_j, carbon_g, bytes;
    size_t met, refused, failures, late, on_orbit;
    bool nomem;
};

static int heap_push(struct run *R, struct event e)
{
    if (R->nheap == R->heapcap) {
        size_t nc = R->heapcap ? R->heapcap * 2 : 256;
        struct event *nh = realloc(R->heap, nc * sizeof(*nh));
        if (!nh) {
            return SR_ERR_NOMEM;
        }
        R->heap = nh;
        R->heapcap = nc;
    }
    size_t i = R->nheap++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (R->heap[p].t < e.t || (R->heap[p].t == e.t && R->heap[p].job <= e.job)) {
            break;
        }
        R->heap[i] = R->heap[p];
        i = p;
    }
    R->heap[i] = e;
    return 0;
}

static struct event heap_pop(struct run *R)
{
    struct event top = R->heap[0], last = R->heap[--R->nheap];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= R->nheap) {
            break;
        }
        if (c + 1 < R->nheap &&
            (R->heap[c + 1].t < R->heap[c].t ||
             (R->heap[c + 1].t == R->heap[c].t && R->heap[c + 1].job < R->heap[c].job))) {
            c++;
        }
        if (last.t < R->heap[c].t || (last.t == R->heap[c].t && last.job <= R->heap[c].job)) {
            break;
        }
        R->heap[i] = R->heap[c];
        i = c;
    }
    if (R->nheap) {
        R->heap[i] = last;
    }
    return top;
}

static bool is_sat(const struct run *R, size_t k)
{
    return k >= R->s->nidc;
}

static bool in_outage(const struct run *R, size_t k, double t)
{
    for (size_t i = 0; i < R->nout[k]; i++) {
        if (t >= (double)R->out[k][i][0] && t < (double)R->out[k][i][1]) {
            return true;
        }
    }
    return false;
}

/* Truth of one satellite pass: nominal shifted, rates faded. */
struct tpass {
    double aos, los, light, up, down;
};

static bool truth_pass(const struct run *R, size_t sat, size_t i, struct tpass *tp)
{
    const struct sim_sat *ss = &R->s->sats[sat];
    if (i >= ss->np) {
        return false;
    }
    double sh = R->shift[sat];
    tp->aos = (double)ss->p[i].aos_ms + sh;
    tp->los = (double)ss->p[i].los_ms + sh;
    tp->light = ss->light[i];
    double f = u01(key4(R->seed, 0xfade, sat, i)) < R->s->fade_prob ? R->s->fade_factor : 1.0;
    tp->up = R->s->sat_up * f;
    tp->down = R->s->sat_down * f;
    return true;
}

/* Index of the first truth pass of |sat| with LOS after |t|. */
static size_t truth_after(const struct run *R, size_t sat, double t)
{
    const struct sim_sat *ss = &R->s->sats[sat];
    size_t lo = 0, hi = ss->np;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if ((double)ss->p[mid].los_ms + R->shift[sat] > t) {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    return lo;
}

/* A transfer over the truth passes starting no earlier than |t|: the first
 * pass where it fits (search), or the first pass at all (planned: the
 * gateway starts it in the window it believes in; LOS cuts it if it does not
 * fit). Returns the end time, or -1 with *fail_at set. */
static double truth_leg(const struct run *R, size_t sat, double bytes, bool up, double t,
                        bool search, double *fail_at)
{
    for (size_t i = truth_after(R, sat, t), n = 0; n < SIM_MAX_PASSES; i++, n++) {
        struct tpass tp;
        if (!truth_pass(R, sat, i, &tp)) {
            break;
        }
        double s = tp.aos > t ? tp.aos : t;
        double rate = up ? tp.up : tp.down;
        double end = s + (bytes > 0 ? bytes / rate * 1000.0 : 0) + tp.light;
        if (end <= tp.los) {
            return end;
        }
        if (!search) {
            *fail_at = tp.los;
            return -1;
        }
    }
    *fail_at = t + 3600000.0;
    return -1;
}

struct outcome {
    bool ok;
    double t; /* done, or failure detected */
};

/* What really happens when job |j| goes to target |k| at |t| with intended
 * uplink start |start| (satellites). |commit| updates the truth's queues. */
static struct outcome truth_exec(struct run *R, size_t j, size_t k, double t, double start,
                                 bool search, bool commit)
{
    const sr_sim *s = R->s;
    struct job *jb = &R->jobs[j];
    struct outcome o = {false, t};
    uint64_t kk = key4(R->seed, j, k, (uint64_t)jb->attempts);
    double lat_f = exp(s->jitter * gauss(kk));
    double comp_f = exp(0.5 * s->jitter * gauss(kk ^ 0x1234567ULL));
    double bytes = (double)jb->w.bytes_in, cur = t;
    bool onboard = jb->data_sat >= 0 && is_sat(R, k) && (size_t)jb->data_sat == k - s->nidc;
    if (onboard) {
        bytes = 0;
    } else if (jb->data_sat >= 0) {
        double fail;
        double end = truth_leg(R, (size_t)jb->data_sat, bytes, false, cur, true, &fail);
        if (end < 0) {
            o.t = fail;
            return o;
        }
        cur = end;
    }
    double gops, arrive;
    if (!is_sat(R, k)) {
        const struct sim_idc *c = &s->idc[k];
        double lat = c->rtt_ms * lat_f;
        if (in_outage(R, k, cur)) {
            o.t = cur + lat;
            return o;
        }
        gops = c->gops;
        arrive = cur + (c->up_bps > 0 ? bytes / c->up_bps * 1000 : 0) + lat / 2;
        double dur = (jb->w.work_gop / gops * 1000.0) * comp_f;
        double qstart = sr__cal_fit(&R->busy[k], arrive + c->queue_ms, dur);
        double cend = qstart + dur;
        if (commit && sr__cal_add(&R->busy[k], qstart, dur, t - 3600000.0) != 0) {
            R->nomem = true;
        }
        o.ok = true;
        o.t = cend + (c->down_bps > 0 ? (double)jb->w.result_bytes / c->down_bps * 1000 : 0) +
              lat / 2;
        return o;
    }
    size_t sat = k - s->nidc;
    double st0 = start > cur ? start : cur;
    double fail;
    double up_end = truth_leg(R, sat, bytes, true, st0, search, &fail);
    if (up_end < 0) {
        o.t = fail;
        return o;
    }
    if (in_outage(R, k, up_end)) {
        o.t = up_end + s->sat_rtt * lat_f;
        return o;
    }
    arrive = up_end + (s->sat_rtt * (lat_f - 1)) / 2; /* processing jitter */
    double dur = (jb->w.work_gop / s->sat_gops * 1000.0) * comp_f;
    double qstart = sr__cal_fit(&R->busy[k], arrive + s->sat_queue, dur);
    double cend = qstart + dur;
    if (commit && sr__cal_add(&R->busy[k], qstart, dur, t - 3600000.0) != 0) {
        R->nomem = true;
    }
    double down_end = truth_leg(R, sat, (double)jb->w.result_bytes, false, cend, true, &fail);
    if (down_end < 0) {
        o.t = fail;
        return o;
    }
    o.ok = true;
    o.t = down_end;
    return o;
}

static bool allowed(const struct run *R, const struct job *jb, size_t k)
{
    switch (jb->w.place) {
    case SR_PLACE_ORBIT:
        return is_sat(R, k);
    case SR_PLACE_GROUND:
        return !is_sat(R, k);
    default:
        return true;
    }
}

static const struct sr_candidate *cand_of(const struct run *R, size_t n, size_t k)
{
    for (size_t i = 0; i < n; i++) {
        if (R->cands[i].target == k) {
            return &R->cands[i];
        }
    }
    return NULL;
}

/* Chooses a target for job |j| at |t|. Returns false if the policy has none. */
static bool choose(struct run *R, size_t j, int64_t t, size_t *k, struct sr_candidate *c,
                   double *start, bool *search)
{
    struct job *jb = &R->jobs[j];
    struct sr_workload w = jb->w;
    *search = false;
    if (R->policy == P_GROUND) {
        if (w.place == SR_PLACE_ORBIT) {
            return false;
        }
        w.place = SR_PLACE_GROUND;
    }
    size_t n = sr_router_rank(R->r, &w, t, R->cands, R->ntargets);
    if (R->policy == P_SKYROUTE || R->policy == P_GROUND) {
        if (n == 0) {
            return false;
        }
        *c = R->cands[0];
        if (!c->feasible) {
            /* Nothing meets the deadline with its margin: best effort on the
             * quickest plan that is allowed (the daemon answers 503 instead,
             * letting the client decide; here the workload is run anyway). */
            double best = DBL_MAX;
            for (size_t i = 0; i < n; i++) {
                const struct sr_candidate *x = &R->cands[i];
                if ((x->why_code == SR_WHY_DEADLINE || x->feasible) && x->predicted_ms >= 0 &&
                    x->predicted_ms < best) {
                    best = x->predicted_ms;
                    *c = *x;
                }
            }
            if (best == DBL_MAX) {
                return false;
            }
        }
    } else if (R->policy == P_RANDOM) {
        size_t nal = 0;
        for (size_t i = 0; i < R->ntargets; i++) {
            nal += allowed(R, jb, i);
        }
        if (!nal) {
            return false;
        }
        size_t pick = (size_t)(u01(key4(R->seed, 0xabc, j, (uint64_t)jb->attempts)) * (double)nal);
        for (size_t i = 0; i < R->ntargets; i++) {
            if (allowed(R, jb, i) && pick-- == 0) {
                const struct sr_candidate *x = cand_of(R, n, i);
                if (!x || x->predicted_ms < 0) {
                    return false;
                }
                *c = *x;
                break;
            }
        }
    } else if (R->policy == P_LEASTRTT) {
        double best = DBL_MAX;
        bool found = false;
        for (size_t i = 0; i < R->ntargets; i++) {
            if (!allowed(R, jb, i) || R->r->t[i].ejected_until > t) {
                continue;
            }
            if (is_sat(R, i)) {
                const struct sim_sat *ss = &R->s->sats[i - R->s->nidc];
                bool inview = false;
                for (size_t q = 0; q < ss->np && !inview; q++) {
                    inview = ss->p[q].aos_ms <= t && ss->p[q].los_ms > t;
                }
                if (!inview) {
                    continue;
                }
            }
            struct sr_target_state st;
            sr_router_state(R->r, i, t, &st);
            if (st.ewma_ms < best) {
                best = st.ewma_ms;
                *k = i;
                found = true;
            }
        }
        if (!found) {
            return false;
        }
        const struct sr_candidate *x = cand_of(R, n, *k);
        if (x) {
            *c = *x;
        } else {
            memset(c, 0, sizeof(*c));
            c->target = *k;
        }
        *start = (double)t; /* no pass prediction: now */
        return true;
    } else { /* oracle */
        double best = DBL_MAX, bestdone = DBL_MAX;
        bool have_met = false, found = false;
        for (size_t i = 0; i < n; i++) {
            const struct sr_candidate *x = &R->cands[i];
            if (!allowed(R, jb, x->target)) {
                continue;
            }
            struct outcome o = truth_exec(R, j, x->target, (double)t, (double)t, true, false);
            if (!o.ok) {
                continue;
            }
            bool met = o.t <= (double)jb->deadline;
            const struct sr_policy *p = &R->r->pol;
            double cost = p->time_weight * (o.t - (double)t) +
                          p->energy_weight * x->energy_j / 1000 +
                          p->price_weight * x->energy_price + p->carbon_weight * x->carbon_g;
            if ((met && (!have_met || cost < best)) || (!have_met && !met && o.t < bestdone)) {
                if (met) {
                    have_met = true;
                    best = cost;
                }
                bestdone = o.t;
                *c = *x;
                found = true;
            }
        }
        if (!found) {
            return false;
        }
        *k = c->target;
        *start = (double)t;
        *search = true;
        return true;
    }
    *k = c->target;
    *start = (double)t + c->fetch_ms + c->wait_ms;
    return true;
}

static int dispatch(struct run *R, size_t j, int64_t t)
{
    struct job *jb = &R->jobs[j];
    size_t k;
    struct sr_candidate c;
    double start;
    bool search;
    while (jb->attempts < SIM_ATTEMPTS && t < jb->deadline) {
        if (!choose(R, j, t, &k, &c, &start, &search)) {
            R->refused++;
            return 0; /* refused: the deadline is missed */
        }
        struct outcome o = truth_exec(R, j, k, (double)t, start, search, true);
        jb->attempts++;
        jb->target = k;
        jb->t_dispatch = t;
        jb->predicted = c.predicted_ms;
        jb->cand = c;
        sr_router_begin(R->r, k);
        if (c.predicted_ms >= 0) {
            (void)sr_router_commit(R->r, &jb->w, &c, t);
        }
        int64_t te = (int64_t)ceil(o.t);
        if (te < t) {
            te = t;
        }
        return heap_push(R, (struct event){te, j, o.ok});
    }
    return 0;
}

static int on_end(struct run *R, const struct event *e)
{
    struct job *jb = &R->jobs[e->job];
    sr_router_end(R->r, jb->target);
    if (e->ok) {
        if (R->policy == P_LEASTRTT) {
            /* no plan: the plain end-to-end observation, as the old router took it */
            sr_router_success(R->r, jb->target, (double)(e->t - jb->t_dispatch), jb->predicted,
                              jb->w.work_gop, e->t);
        } else {
            sr_router_observe(R->r, &jb->cand, (double)(e->t - jb->t_dispatch), jb->w.work_gop,
                              e->t);
        }
        jb->done = e->t;
        R->lat[R->nlat++] = (double)(e->t - jb->arrive);
        if (e->t <= jb->deadline) {
            R->met++;
        } else {
            R->late++;
        }
        R->on_orbit += is_sat(R, jb->target);
        R->energy_j += jb->cand.energy_j;
        R->carbon_g += jb->cand.carbon_g;
        bool onboard = jb->w.data_at[0] && !strcmp(jb->w.data_at, R->r->t[jb->target].info.id);
        R->bytes += (onboard ? 0 : (double)jb->w.bytes_in) + (double)jb->w.result_bytes;
        return 0;
    }
    sr_router_failure(R->r, jb->target, e->t);
    R->failures++;
    return dispatch(R, e->job, e->t);
}

static int build(struct run *R)
{
    const sr_sim *s = R->s;
    int rv = sr_router_new(&R->r);
    if (rv) {
        return rv;
    }
    rv = sr_router_set_policy(R->r, &s->pol);
    int64_t from = s->start_ms - 3600000, to = s->start_ms + s->dur_ms + 12 * 3600000LL;
    for (size_t i = 0; rv == 0 && i < s->nidc; i++) {
        const struct sim_idc *c = &s->idc[i];
        struct sr_target_info ti;
        memset(&ti, 0, sizeof(ti));
        snprintf(ti.id, sizeof(ti.id), "%s", c->id);
        ti.kind = SR_TARGET_IDC;
        ti.prior_rtt_ms = c->rtt_ms;
        ti.gops = c->gops;
        ti.uplink_bps = c->up_bps;
        ti.downlink_bps = c->down_bps;
        ti.queue_ms = c->queue_ms;
        ti.energy = c->e;
        rv = sr_router_add_target(R->r, &ti);
        rv = rv < 0 ? rv : 0;
        if (rv == 0 && c->e.pv && c->pv_peak_w > 0) {
            size_t npts = (size_t)((to - from) / 3600000) + 1;
            struct sr_energy_point *pts = calloc(npts, sizeof(*pts));
            if (!pts) {
                return SR_ERR_NOMEM;
            }
            for (size_t h = 0; h < npts; h++) {
                int64_t t = from + (int64_t)h * 3600000;
                double hour = fmod((double)(t % 86400000) / 3600000.0 + c->utc_offset_h + 24, 24);
                double sun = sin(M_PI * (hour - 6) / 12);
                pts[h] = (struct sr_energy_point){t, NAN, NAN, sun > 0 ? c->pv_peak_w * sun : 0};
            }
            rv = sr_router_set_energy_series(R->r, i, pts, npts);
            free(pts);
        }
    }
    for (size_t i = 0; rv == 0 && i < s->nsats; i++) {
        const struct sim_sat *ss = &s->sats[i];
        struct sr_target_info ti;
        memset(&ti, 0, sizeof(ti));
        snprintf(ti.id, sizeof(ti.id), "%s", ss->id);
        ti.kind = SR_TARGET_SATELLITE;
        ti.prior_rtt_ms = s->sat_rtt;
        ti.gops = s->sat_gops;
        ti.uplink_bps = s->sat_up;
        ti.downlink_bps = s->sat_down;
        ti.queue_ms = s->sat_queue;
        ti.energy = s->sat_e;
        int idx = sr_router_add_target(R->r, &ti);
        if (idx < 0) {
            return idx;
        }
        struct sr_pass_rec *recs = calloc(ss->np ? ss->np : 1, sizeof(*recs));
        if (!recs) {
            return SR_ERR_NOMEM;
        }
        for (size_t q = 0; q < ss->np; q++) {
            snprintf(recs[q].sat, sizeof(recs[q].sat), "%s", ss->id);
            recs[q].aos_ms = ss->p[q].aos_ms;
            recs[q].tca_ms = ss->p[q].tca_ms;
            recs[q].los_ms = ss->p[q].los_ms;
            recs[q].max_el_deg = ss->p[q].max_el_deg;
            recs[q].light_ms = ss->light[q];
            snprintf(recs[q].source, sizeof(recs[q].source), "predicted");
        }
        rv = sr_router_set_passes(R->r, ss->id, from - 86400000, to + 86400000, recs, ss->np);
        free(recs);
        if (rv == 0 && !ss->np) {
            /* never in view: still a satellite with a (empty) schedule */
            sr__mark_scheduled(R->r, (size_t)idx);
        }
        rv = rv ? rv
                : sr_router_set_eclipses(R->r, (size_t)idx, (const int64_t(*)[2])ss->ecl, ss->necl);
    }
    return rv;
}

static int gen(struct run *R)
{
    const sr_sim *s = R->s;
    struct rng g = {mix(R->seed ^ 0x77)};
    double mean_gap = 60000.0 / s->rate_per_min;
    size_t cap = (size_t)((double)s->dur_ms / mean_gap * 1.5) + 16;
    R->jobs = calloc(cap, sizeof(*R->jobs));
    if (!R->jobs) {
        return SR_ERR_NOMEM;
    }
    double t = (double)s->start_ms;
    for (;;) {
        t += -log(rnd(&g)) * mean_gap;
        if (t >= (double)(s->start_ms + s->dur_ms) || R->njobs == cap) {
            break;
        }
        struct job *jb = &R->jobs[R->njobs++];
        jb->arrive = (int64_t)t;
        jb->data_sat = -1;
        jb->w.work_gop = loguniform(&g, s->work);
        jb->w.bytes_in = (int64_t)loguniform(&g, s->bytes);
        jb->w.result_bytes = (int64_t)loguniform(&g, s->rbytes);
        jb->deadline = jb->arrive + (int64_t)(loguniform(&g, s->deadline_s) * 1000);
        jb->w.deadline_ms = jb->deadline;
        jb->w.store_and_forward = true;
        double u = rnd(&g);
        jb->w.place = u < s->orbit_frac                    ? SR_PLACE_ORBIT
                      : u < s->orbit_frac + s->ground_frac ? SR_PLACE_GROUND
                                                           : SR_PLACE_ANY;
        if (s->nsats && rnd(&g) < s->onboard_frac) {
            jb->data_sat = (int)(rnd(&g) * (double)s->nsats);
            snprintf(jb->w.data_at, sizeof(jb->w.data_at), "%s", s->sats[jb->data_sat].id);
        }
    }
    /* outages and element ageing */
    R->out = calloc(R->ntargets, sizeof(*R->out));
    R->nout = calloc(R->ntargets, sizeof(*R->nout));
    R->shift = calloc(s->nsats ? s->nsats : 1, sizeof(*R->shift));
    R->busy = calloc(R->ntargets, sizeof(*R->busy));
    R->lat = calloc(R->njobs ? R->njobs : 1, sizeof(*R->lat));
    R->cands = calloc(R->ntargets ? R->ntargets : 1, sizeof(*R->cands));
    if (!R->out || !R->nout || !R->shift || !R->busy || !R->lat || !R->cands) {
        return SR_ERR_NOMEM;
    }
    for (size_t i = 0; i < s->nsats; i++) {
        R->shift[i] = s->elem_err_s * 1000.0 * gauss(key4(R->seed, 0xe1e, i, 0));
    }
    if (s->outage_per_h > 0) {
        for (size_t k = 0; k < R->ntargets; k++) {
            struct rng o = {key4(R->seed, 0x0a7, k, 1)};
            double ot = (double)s->start_ms;
            size_t oc = 0;
            for (;;) {
                ot += -log(rnd(&o)) * 3600000.0 / s->outage_per_h;
                if (ot >= (double)(s->start_ms + s->dur_ms)) {
                    break;
                }
                if (R->nout[k] == oc) {
                    oc = oc ? oc * 2 : 8;
                    int64_t(*no)[2] = realloc(R->out[k], oc * sizeof(*no));
                    if (!no) {
                        return SR_ERR_NOMEM;
                    }
                    R->out[k] = no;
                }
                R->out[k][R->nout[k]][0] = (int64_t)ot;
                R->out[k][R->nout[k]][1] = (int64_t)(ot + s->outage_s * 1000);
                R->nout[k]++;
                ot += s->outage_s * 1000;
            }
        }
    }
    return 0;
}

static int dcmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void run_free(struct run *R)
{
    sr_router_free(R->r);
    if (R->out) {
        for (size_t k = 0; k < R->ntargets; k++) {
            free(R->out[k]);
        }
    }
    free(R->out);
    free(R->nout);
    free(R->shift);
    if (R->busy) {
        for (size_t k = 0; k < R->ntargets; k++) {
            free(R->busy[k].iv);
        }
    }
    free(R->busy);
    free(R->jobs);
    free(R->heap);
    free(R->lat);
    free(R->cands);
}

int sr_sim_run(sr_sim *s, const char *policy, uint64_t seed, struct sr_sim_result *out,
               void (*progress)(void *arg, double frac), void *arg)
{
    const char *const *names = sr_sim_policies();
    int pol = -1;
    for (int i = 0; names[i]; i++) {
        if (!strcmp(names[i], policy)) {
            pol = i;
        }
    }
    if (pol < 0) {
        return SR_ERR_NOTFOUND;
    }
    if (!s->prepared) {
        char err[200];
        int rv = sr_sim_prepare(s, err, sizeof(err));
        if (rv) {
            return rv;
        }
    }
    struct run R;
    memset(&R, 0, sizeof(R));
    R.s = s;
    R.policy = pol;
    R.seed = seed;
    R.ntargets = s->nidc + s->nsats;
    int rv = build(&R);
    rv = rv ? rv : gen(&R);
    size_t next = 0, tick = R.njobs / 20 + 1;
    while (rv == 0 && (next < R.njobs || R.nheap)) {
        if (R.nheap && (next == R.njobs || R.heap[0].t <= R.jobs[next].arrive)) {
            struct event e = heap_pop(&R);
            rv = on_end(&R, &e);
        } else {
            rv = dispatch(&R, next, R.jobs[next].arrive);
            next++;
            if (progress && next % tick == 0) {
                progress(arg, (double)next / (double)R.njobs);
            }
        }
    }
    if (rv == 0 && R.nomem) {
        rv = SR_ERR_NOMEM;
    }
    if (rv == 0) {
        memset(out, 0, sizeof(*out));
        snprintf(out->name, sizeof(out->name), "%s", policy);
        out->workloads = R.njobs;
        out->met = R.met;
        out->completed = R.nlat;
        out->deadline_met = R.njobs ? (double)R.met / (double)R.njobs : 0;
        qsort(R.lat, R.nlat, sizeof(double), dcmp);
        if (R.nlat) {
            out->p50_ms = R.lat[(R.nlat - 1) / 2];
            size_t i99 = (size_t)ceil(0.99 * (double)R.nlat) - 1;
            out->p99_ms = R.lat[i99 < R.nlat ? i99 : R.nlat - 1];
        }
        out->energy_kwh = R.energy_j / 3.6e6;
        out->carbon_kg = R.carbon_g / 1000;
        out->bytes_moved = R.bytes;
        out->refused = R.refused;
        out->failures = R.failures;
        out->late = R.late;
        out->on_orbit = R.on_orbit;
        if (progress) {
            progress(arg, 1.0);
        }
    }
    run_free(&R);
    return rv;
}
