/*
 * skyrouted part: operator feeds (DESIGN sections 6, 7 and 10).
 *
 *   PUT /v1/passes     a signed pass schedule (skyroute JSON, AWS Ground
 *                      Station contacts, SatNOGS observations, ION contact
 *                      plan; routing/feeds.c parses them)
 *   PUT /v1/elements   signed orbital elements (TLE, OMM JSON/CSV/XML/KVN);
 *                      the gateway predicts this station's passes from them
 *   GET /v1/passes     ?sat=ID&from=TIME&to=TIME: what the router believes
 *   GET /v1/targets    every target with its state: in view or not, the pass
 *                      in progress and the next one, observed latency, failures
 *
 * Trust. [operator.NAME] pubkey = FILE, satellites = ID, ID | *. An upload
 * carries skyroute-signature: KEYID:BASE64SIG over the exact body; it is
 * verified before the body is parsed. Unsigned, malformed header, unknown key
 * or bad signature: 401. A satellite the operator does not speak for: 403.
 * Nothing is stored on any refusal.
 *
 * Order of an upload: verify -> parse (whole body, or refuse naming the
 * index/line and field) -> authorise every satellite -> one store transaction
 * -> the router. The router is rebuilt from the store for each satellite
 * touched, so what the router holds is always what a restart would load.
 *
 * Operator schedules win over predictions. For each satellite the router
 * holds every operator pass, plus the predicted passes that fall outside the
 * spans operator schedules have covered ("operator windows", kept by the
 * store as a union). Why: an operator's schedule knows things geometry does
 * not (antenna bookings, cancelled contacts, licensed rates), and a window the
 * operator has spoken for should not grow extra passes from a prediction;
 * outside those windows the prediction is the best we have.
 *
 * Predictions come from the latest element set of each satellite, for this
 * station ([gateway] station = LAT,LON,ALT_M, min_el_deg) over the next
 * PREDICT_HORIZON_MS, and are refreshed by a timer every PREDICT_EVERY_S so
 * the horizon moves with time. They are derived data: not stored, recomputed
 * at start-up from the stored elements.
 */
#include "gateway/daemon/daemon.h"
#include "gateway/store/store.h"
#include "linkmodels/linkmodels.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#define PREDICT_HORIZON_MS (48 * 3600 * 1000LL)
#define PREDICT_EVERY_S 3600
#define DEFAULT_MIN_EL_DEG 10.0
#define DEFAULT_LIST_MS (7 * 86400 * 1000LL) /* GET /v1/passes without &to= */
#define MAX_LIST 100000
#define MAX_ELEMENT_SETS 100000
#define PRUNE_AFTER_MS (31 * 86400 * 1000LL) /* as far back as a feed may reach */

struct sat_info {
    char id[SR_TARGET_IDMAX];
    uint32_t catnum; /* 0: none configured */
    char arn[256];
    uint64_t ion_node; /* 0: none */
    sr_sat *sat;       /* from the latest stored elements, or NULL */
    char elem_format[16];
    struct sr_pass_rec *pred; /* predicted passes (source "predicted") */
    size_t npred;
};

struct op_cfg {
    char name[64];
    bool all;
    char **sats;
    size_t nsats;
};

struct gw_feeds {
    struct gw *g;
    sr_store *store;
    sr_keyring *ring; /* operator keys, named by operator */
    struct op_cfg *ops;
    size_t nops;
    struct sat_info *sats;
    size_t nsats;
    bool has_station;
    sr_station station;
    char **names; /* [gateway] station_names: how feeds name this station; none = any */
    size_t nnames;
    double min_el_deg;
    struct event *timer;
};

/* ---- configuration ------------------------------------------------------------------- */

static struct sat_info *find_sat(struct gw_feeds *f, const char *id)
{
    for (size_t i = 0; i < f->nsats; i++) {
        if (!strcmp(f->sats[i].id, id)) {
            return &f->sats[i];
        }
    }
    return NULL;
}

static int cfg_uint(const struct sr_config *cfg, const char *section, const char *key, uint64_t max,
                    uint64_t *out, char *err, size_t errlen)
{
    int line = 0;
    const char *v = sr_config_get(cfg, section, key, &line);
    *out = 0;
    if (!v) {
        return 0;
    }
    int64_t n;
    if (sr_parse_i64(&n, v, strlen(v)) != 0 || n <= 0 || (uint64_t)n > max) {
        snprintf(err, errlen, "%s:%d: '%s' in [%s] must be an integer in [1, %llu], got '%.40s'",
                 cfg->path, line, key, section, (unsigned long long)max, v);
        return SR_ERR_CONFIG;
    }
    *out = (uint64_t)n;
    return 0;
}

static int load_sats(struct gw_feeds *f, char *err, size_t errlen)
{
    const struct sr_config *cfg = f->g->cfg;
    f->sats = calloc(cfg->ntargets ? cfg->ntargets : 1, sizeof(*f->sats));
    if (!f->sats) {
        snprintf(err, errlen, "out of memory");
        return SR_ERR_NOMEM;
    }
    for (size_t i = 0; i < cfg->ntargets; i++) {
        const struct sr_target_cfg *t = &cfg->targets[i];
        if (t->kind != SR_TARGET_SATELLITE) {
            continue;
        }
        struct sat_info *s = &f->sats[f->nsats++];
        snprintf(s->id, sizeof(s->id), "%s", t->id);
        char section[128];
        snprintf(section, sizeof(section), "satellite.%s", t->id);
        uint64_t v;
        if (cfg_uint(cfg, section, "catnum", 999999999, &v, err, errlen) != 0) {
            return SR_ERR_CONFIG;
        }
        s->catnum = (uint32_t)v;
        if (cfg_uint(cfg, section, "ion_node", UINT64_C(1) << 62, &s->ion_node, err, errlen)) {
            return SR_ERR_CONFIG;
        }
        int line = 0;
        const char *arn = sr_config_get(cfg, section, "arn", &line);
        if (arn) {
            if (strncmp(arn, "arn:", 4) != 0 || strlen(arn) >= sizeof(s->arn)) {
                snprintf(err, errlen,
                         "%s:%d: 'arn' in [%s] must be an ARN (arn:aws:...), got "
                         "'%.60s'",
                         cfg->path, line, section, arn);
                return SR_ERR_CONFIG;
            }
            snprintf(s->arn, sizeof(s->arn), "%s", arn);
        }
        /* one identity, one satellite */
        for (size_t k = 0; k + 1 < f->nsats; k++) {
            const struct sat_info *o = &f->sats[k];
            const char *dup = (s->catnum && o->catnum == s->catnum)         ? "catnum"
                              : (s->ion_node && o->ion_node == s->ion_node) ? "ion_node"
                              : (s->arn[0] && !strcmp(o->arn, s->arn))      ? "arn"
                                                                            : NULL;
            if (dup) {
                sr_config_get(cfg, section, dup, &line);
                snprintf(err, errlen, "%s:%d: '%s' in [%s] is already used by [satellite.%s]",
                         cfg->path, line, dup, section, o->id);
                return SR_ERR_CONFIG;
            }
        }
    }
    return 0;
}

/* "Ohio 1, 2741, 1": the names and numbers feeds use for this station. */
static int load_station_names(struct gw_feeds *f, char *err, size_t errlen)
{
    const struct sr_config *cfg = f->g->cfg;
    int line = 0;
    const char *v = sr_config_get(cfg, "gateway", "station_names", &line);
    while (v && *v) {
        while (*v == ' ' || *v == '\t' || *v == ',') {
            v++;
        }
        const char *e = v;
        while (*e && *e != ',') {
            e++;
        }
        const char *t = e;
        while (t > v && (t[-1] == ' ' || t[-1] == '\t')) {
            t--;
        }
        if (t > v) {
            char **nn = realloc(f->names, (f->nnames + 1) * sizeof(*nn));
            if (!nn || !(nn[f->nnames] = strndup(v, (size_t)(t - v)))) {
                if (nn) {
                    f->names = nn;
                }
                snprintf(err, errlen, "out of memory");
                return SR_ERR_NOMEM;
            }
            f->names = nn;
            f->nnames++;
        }
        v = e;
    }
    if (sr_config_get(cfg, "gateway", "station_names", &line) && f->nnames == 0) {
        snprintf(err, errlen, "%s:%d: 'station_names' in [gateway] lists no name", cfg->path, line);
        return SR_ERR_CONFIG;
    }
    return 0;
}

static int load_operators(struct gw_feeds *f, char *err, size_t errlen)
{
    const struct sr_config *cfg = f->g->cfg;
    if (sr_keyring_new(&f->ring) != 0) {
        snprintf(err, errlen, "out of memory");
        return SR_ERR_NOMEM;
    }
    int sline;
    const char *section;
    for (size_t idx = 0; (section = sr_config_section(cfg, "operator.", idx, &sline)); idx++) {
        const char *name = section + strlen("operator.");
        struct op_cfg *no = realloc(f->ops, (f->nops + 1) * sizeof(*no));
        if (!no) {
            snprintf(err, errlen, "out of memory");
            return SR_ERR_NOMEM;
        }
        f->ops = no;
        struct op_cfg *op = &f->ops[f->nops++];
        memset(op, 0, sizeof(*op));
        if (!*name || strlen(name) >= sizeof(op->name)) {
            snprintf(err, errlen, "%s:%d: [%s]: operator name must be 1-63 characters", cfg->path,
                     sline, section);
            return SR_ERR_CONFIG;
        }
        snprintf(op->name, sizeof(op->name), "%s", name);
        int kline = 0, tline = 0;
        const char *pub = sr_config_get(cfg, section, "pubkey", &kline);
        const char *sats = sr_config_get(cfg, section, "satellites", &tline);
        if (!pub || !sats) {
            snprintf(err, errlen, "%s:%d: [%s] needs '%s'", cfg->path, sline, section,
                     !pub ? "pubkey" : "satellites");
            return SR_ERR_CONFIG;
        }
        char path[PATH_MAX], kerr[300];
        uint8_t pk[SR_PUBLICKEYBYTES];
        if (sr_path_relative(path, sizeof(path), cfg->path, pub) != 0) {
            snprintf(err, errlen, "%s:%d: [%s] pubkey: path too long", cfg->path, kline, section);
            return SR_ERR_CONFIG;
        }
        if (sr_pubkey_load(pk, path, kerr, sizeof(kerr)) != 0) {
            snprintf(err, errlen, "%s:%d: [%s] pubkey: %s", cfg->path, kline, section, kerr);
            return SR_ERR_CONFIG;
        }
        int rv = sr_keyring_add(f->ring, pk, op->name);
        if (rv == SR_ERR_EXISTS) {
            snprintf(err, errlen, "%s:%d: [%s] pubkey: another operator already uses this key",
                     cfg->path, kline, section);
            return SR_ERR_CONFIG;
        }
        if (rv) {
            snprintf(err, errlen, "%s:%d: [%s] pubkey: %s", cfg->path, kline, section,
                     sr_strerror(rv));
            return SR_ERR_CONFIG;
        }
        /* satellites = ID, ID, ... | * */
        const char *p = sats;
        while (*p) {
            while (*p == ' ' || *p == '\t' || *p == ',') {
                p++;
            }
            if (!*p) {
                break;
            }
            const char *e = p;
            while (*e && *e != ',' && *e != ' ' && *e != '\t') {
                e++;
            }
            char id[SR_TARGET_IDMAX];
            if ((size_t)(e - p) >= sizeof(id)) {
                snprintf(err, errlen, "%s:%d: [%s] satellites: '%.*s' is too long", cfg->path,
                         tline, section, 40, p);
                return SR_ERR_CONFIG;
            }
            memcpy(id, p, (size_t)(e - p));
            id[e - p] = '\0';
            p = e;
            if (!strcmp(id, "*")) {
                op->all = true;
                continue;
            }
            if (!find_sat(f, id)) {
                snprintf(err, errlen, "%s:%d: [%s] satellites: '%s' is not a [satellite.ID] target",
                         cfg->path, tline, section, id);
                return SR_ERR_CONFIG;
            }
            char **ns = realloc(op->sats, (op->nsats + 1) * sizeof(*ns));
            if (!ns) {
                snprintf(err, errlen, "out of memory");
                return SR_ERR_NOMEM;
            }
            op->sats = ns;
            op->sats[op->nsats] = strdup(id);
            if (!op->sats[op->nsats]) {
                snprintf(err, errlen, "out of memory");
                return SR_ERR_NOMEM;
            }
            op->nsats++;
        }
        if (!op->all && op->nsats == 0) {
            snprintf(err, errlen, "%s:%d: [%s] satellites: list satellite ids or '*'", cfg->path,
                     tline, section);
            return SR_ERR_CONFIG;
        }
    }
    return 0;
}

static const struct op_cfg *find_op(const struct gw_feeds *f, const char *name)
{
    for (size_t i = 0; i < f->nops; i++) {
        if (!strcmp(f->ops[i].name, name)) {
            return &f->ops[i];
        }
    }
    return NULL;
}

static bool op_owns(const struct op_cfg *op, const char *sat)
{
    if (op->all) {
        return true;
    }
    for (size_t i = 0; i < op->nsats; i++) {
        if (!strcmp(op->sats[i], sat)) {
            return true;
        }
    }
    return false;
}

/* ---- predictions and the router -------------------------------------------------------- */

static int rec_cmp(const void *a, const void *b)
{
    const struct sr_pass_rec *x = a, *y = b;
    return x->aos_ms < y->aos_ms ? -1 : x->aos_ms > y->aos_ms;
}

/* Predicts |s|'s passes over this station from now for the horizon. */
static void predict(struct gw_feeds *f, struct sat_info *s, int64_t now)
{
    free(s->pred);
    s->pred = NULL;
    s->npred = 0;
    if (!s->sat || !f->has_station) {
        return;
    }
    sr_pass *ps = NULL;
    size_t n = 0;
    int rv =
        sr_find_passes(&f->station, s->sat, now, now + PREDICT_HORIZON_MS, f->min_el_deg, &ps, &n);
    if (rv) {
        sr_log(SR_LOG_WARN, "feeds: cannot predict passes of %s: %s", s->id, sr_strerror(rv));
        return;
    }
    s->pred = calloc(n ? n : 1, sizeof(*s->pred));
    if (!s->pred) {
        free(ps);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        struct sr_pass_rec *r = &s->pred[i];
        snprintf(r->sat, sizeof(r->sat), "%s", s->id);
        r->aos_ms = ps[i].aos_ms;
        r->tca_ms = ps[i].tca_ms;
        r->los_ms = ps[i].los_ms;
        r->max_el_deg = ps[i].max_el_deg;
        sr_look_angles la;
        if (sr_look(&f->station, s->sat, ps[i].tca_ms, &la) == 0) {
            r->light_ms = sr_light_time_ms(la.range_km);
        }
        snprintf(r->source, sizeof(r->source), "predicted");
    }
    s->npred = n;
    free(ps);
}

static bool overlaps_span(const struct sr_pass_rec *p, const struct sr_store_span *sp, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (p->los_ms > sp[i].from_ms && p->aos_ms < sp[i].to_ms) {
            return true;
        }
    }
    return false;
}

static bool overlaps_rec(const struct sr_pass_rec *p, const struct sr_pass_rec *r, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (p->los_ms > r[i].aos_ms && p->aos_ms < r[i].los_ms) {
            return true;
        }
    }
    return false;
}

/* Rebuilds the router's schedule of |s| from the store and the predictions. */
static int resync(struct gw_feeds *f, struct sat_info *s)
{
    struct sr_pass_rec *ops = NULL;
    struct sr_store_span *spans = NULL;
    size_t nops = 0, nspans = 0;
    int rv = sr_store_passes(f->store, s->id, INT64_MIN, INT64_MAX, &ops, &nops);
    rv = rv ? rv : sr_store_windows(f->store, s->id, &spans, &nspans);
    struct sr_pass_rec *all = NULL;
    if (rv == 0) {
        all = malloc((nops + s->npred + 1) * sizeof(*all));
        rv = all ? 0 : SR_ERR_NOMEM;
    }
    if (rv == 0) {
        size_t n = nops;
        if (nops) {
            memcpy(all, ops, nops * sizeof(*all));
        }
        for (size_t i = 0; i < s->npred; i++) {
            const struct sr_pass_rec *p = &s->pred[i];
            if (!overlaps_span(p, spans, nspans) && !overlaps_rec(p, ops, nops)) {
                all[n++] = *p;
            }
        }
        qsort(all, n, sizeof(*all), rec_cmp);
        rv = sr_router_set_passes(f->g->router, s->id, INT64_MIN, INT64_MAX, all, n);
    }
    if (rv) {
        sr_log(SR_LOG_ERROR, "feeds: cannot load the schedule of %s: %s", s->id, sr_strerror(rv));
    }
    free(all);
    free(ops);
    free(spans);
    return rv;
}

static void refresh_predictions(struct gw_feeds *f)
{
    int64_t now = sr_now_ms();
    size_t total = 0;
    for (size_t i = 0; i < f->nsats; i++) {
        struct sat_info *s = &f->sats[i];
        if (s->sat) {
            predict(f, s, now);
            (void)resync(f, s);
            total += s->npred;
        }
    }
    sr_metrics_set(f->g->metrics, "skyroute_feed_predicted_passes", "", (double)total);
}

/* Hourly: forget passes older than a feed may mention, and move the
 * prediction horizon on. */
static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct gw_feeds *f = arg;
    size_t gone = 0;
    if (sr_store_prune(f->store, sr_now_ms() - PRUNE_AFTER_MS, &gone) == 0 && gone) {
        sr_log(SR_LOG_INFO, "feeds: forgot %zu passes older than 31 days", gone);
        for (size_t i = 0; i < f->nsats; i++) {
            (void)resync(f, &f->sats[i]);
        }
    }
    refresh_predictions(f);
}

static bool has_word(const char *s, size_t n, const char *w)
{
    size_t wl = strlen(w);
    for (size_t i = 0; i + wl <= n; i++) {
        if (!memcmp(s + i, w, wl)) {
            return true;
        }
    }
    return false;
}

/* Element text formats, as named in the store and in responses. */
static const char *elements_format(const char *text, size_t len)
{
    size_t i = 0;
    while (i < len && (text[i] == ' ' || text[i] == '\t' || text[i] == '\r' || text[i] == '\n')) {
        i++;
    }
    if (i == len) {
        return "tle";
    }
    if (text[i] == '{' || text[i] == '[') {
        return "omm-json";
    }
    if (text[i] == '<') {
        return "omm-xml";
    }
    size_t eol = i;
    while (eol < len && text[eol] != '\n') {
        eol++;
    }
    const char *line = text + i;
    size_t ll = eol - i;
    bool comma = memchr(line, ',', ll) != NULL;
    if (ll >= 14 && !strncmp(line, "CCSDS_OMM_VERS", 14)) {
        return comma ? "omm-csv" : "omm-kvn";
    }
    if (comma && (has_word(line, ll, "OBJECT_NAME") || has_word(line, ll, "NORAD_CAT_ID"))) {
        return "omm-csv";
    }
    return "tle";
}

/* The set for |catnum| in |text| with the latest epoch, as a new sr_sat. */
static int sat_from_text(sr_sat **out, const char *text, size_t len, uint32_t catnum)
{
    sr_elements *els = NULL;
    size_t n = 0;
    int rv = sr_elements_parse_text(&els, &n, text, len, MAX_ELEMENT_SETS, 0, NULL, 0);
    if (rv) {
        return rv;
    }
    const sr_elements *best = NULL;
    for (size_t i = 0; i < n; i++) {
        if (els[i].catnum == catnum && (!best || els[i].epoch_ms > best->epoch_ms)) {
            best = &els[i];
        }
    }
    rv = best ? sr_sat_new(out, best) : SR_ERR_NOTFOUND;
    free(els);
    return rv;
}

/* The text stored for one satellite of an upload that matched several: its
 * own set alone (a 10,000-satellite catalogue is not stored 10,000 times,
 * nor parsed 10,000 times at start-up). TLE uploads give back the TLE lines,
 * digit for digit (the formatter writes the fields at TLE precision); other
 * formats, and catalogue numbers past Alpha-5, give one OMM JSON object. */
static int own_set_text(sr_buf *b, const sr_elements *e, const char *format, char fmt_out[16])
{
    char l1[SR_TLE_LINE_LEN], l2[SR_TLE_LINE_LEN];
    if (!strcmp(format, "tle") && sr_tle_format(l1, l2, e) == 0) {
        snprintf(fmt_out, 16, "tle");
        return e->name[0] ? sr_buf_appendf(b, "%s\n%s\n%s\n", e->name, l1, l2)
                          : sr_buf_appendf(b, "%s\n%s\n", l1, l2);
    }
    snprintf(fmt_out, 16, "omm-json");
    return sr_omm_format_json(b, e);
}

static int catnum_cmp(const void *a, const void *b)
{
    const struct sat_info *x = *(const struct sat_info *const *)a;
    const struct sat_info *y = *(const struct sat_info *const *)b;
    return x->catnum < y->catnum ? -1 : x->catnum > y->catnum;
}

/* Index of the configured satellite with catalogue number |catnum| in |by|
 * (sorted by catnum_cmp), or SIZE_MAX. */
static size_t find_catnum(struct sat_info *const *by, size_t n, const struct sat_info *base,
                          uint32_t catnum)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (by[mid]->catnum < catnum) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return lo < n && by[lo]->catnum == catnum ? (size_t)(by[lo] - base) : SIZE_MAX;
}

static int load_store(struct gw_feeds *f, char *err, size_t errlen)
{
    struct sr_store_elements *els = NULL;
    size_t n = 0;
    int rv = sr_store_get_elements(f->store, &els, &n);
    if (rv) {
        snprintf(err, errlen, "state_dir %s: cannot read elements: %s", f->g->cfg->state_dir,
                 sr_strerror(rv));
        return rv;
    }
    for (size_t i = 0; i < n; i++) {
        struct sat_info *s = find_sat(f, els[i].sat);
        if (!s) {
            sr_log(SR_LOG_WARN, "feeds: stored elements of '%s', no longer a satellite target",
                   els[i].sat);
            continue;
        }
        sr_sat *sat = NULL;
        int e = sat_from_text(&sat, els[i].text, els[i].len, els[i].catnum);
        if (e) {
            sr_log(SR_LOG_WARN, "feeds: stored elements of %s do not load: %s", s->id,
                   sr_strerror(e));
            continue;
        }
        s->sat = sat;
        snprintf(s->elem_format, sizeof(s->elem_format), "%s", els[i].format);
    }
    sr_store_elements_free(els, n);
    int64_t now = sr_now_ms();
    size_t npred = 0;
    for (size_t i = 0; i < f->nsats; i++) {
        predict(f, &f->sats[i], now);
        npred += f->sats[i].npred;
        if (resync(f, &f->sats[i]) != 0) {
            snprintf(err, errlen, "cannot load the stored schedule of %s", f->sats[i].id);
            return SR_ERR_NOMEM;
        }
    }
    sr_metrics_set(f->g->metrics, "skyroute_feed_predicted_passes", "", (double)npred);
    return 0;
}

static void describe(sr_metrics *m)
{
    sr_metrics_describe(m, "skyroute_feed_uploads_total", "counter",
                        "Operator uploads (kind passes|elements) by outcome (accepted, refused) "
                        "and reason.");
    sr_metrics_describe(m, "skyroute_feed_passes_accepted_total", "counter",
                        "Passes accepted from operator schedules, by format.");
    sr_metrics_describe(m, "skyroute_feed_predicted_passes", "gauge",
                        "Passes predicted from orbital elements over the horizon.");
    sr_metrics_add(m, "skyroute_feed_uploads_total", "kind=\"passes\",outcome=\"accepted\"", 0);
    sr_metrics_add(m, "skyroute_feed_uploads_total", "kind=\"elements\",outcome=\"accepted\"", 0);
}

int gw_feeds_init(struct gw *g, char *err, size_t errlen)
{
    struct gw_feeds *f = calloc(1, sizeof(*f));
    if (!f) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    g->feeds = f;
    f->g = g;
    const struct sr_config *cfg = g->cfg;
    int line = 0;
    const char *station = sr_config_get(cfg, "gateway", "station", &line);
    if (station) {
        if (sr_station_parse(&f->station, station) != 0) {
            snprintf(err, errlen,
                     "%s:%d: 'station' in [gateway] must be LAT,LON,ALT_M (degrees, degrees, "
                     "metres), got '%.60s'",
                     cfg->path, line, station);
            return -1;
        }
        f->has_station = true;
    }
    if (sr_config_num(cfg, "gateway", "min_el_deg", DEFAULT_MIN_EL_DEG, -5, 89, &f->min_el_deg, err,
                      errlen) != 0) {
        return -1;
    }
    if (load_sats(f, err, errlen) != 0 || load_operators(f, err, errlen) != 0 ||
        load_station_names(f, err, errlen) != 0) {
        return -1;
    }
    if (g->check_only) {
        return 0;
    }
    describe(g->metrics);
    if (sr_store_open(&f->store, cfg->state_dir, err, errlen) != 0 ||
        load_store(f, err, errlen) != 0) {
        return -1;
    }
    if (g->base) {
        f->timer = event_new(g->base, -1, EV_PERSIST, on_timer, f);
        struct timeval tv = {PREDICT_EVERY_S, 0};
        if (!f->timer || event_add(f->timer, &tv) != 0) {
            snprintf(err, errlen, "cannot start the prediction timer");
            return -1;
        }
    }
    sr_log(SR_LOG_INFO, "feeds: %zu operators, %zu satellites, station %s", f->nops, f->nsats,
           f->has_station ? "set" : "not set (no predictions)");
    return 0;
}

void gw_feeds_free(struct gw *g)
{
    struct gw_feeds *f = g->feeds;
    if (!f) {
        return;
    }
    if (f->timer) {
        event_free(f->timer);
    }
    sr_store_close(f->store);
    sr_keyring_free(f->ring);
    for (size_t i = 0; i < f->nops; i++) {
        for (size_t k = 0; k < f->ops[i].nsats; k++) {
            free(f->ops[i].sats[k]);
        }
        free(f->ops[i].sats);
    }
    free(f->ops);
    for (size_t i = 0; i < f->nnames; i++) {
        free(f->names[i]);
    }
    free(f->names);
    for (size_t i = 0; i < f->nsats; i++) {
        sr_sat_free(f->sats[i].sat);
        free(f->sats[i].pred);
    }
    free(f->sats);
    free(f);
    g->feeds = NULL;
}

/* ---- responses ------------------------------------------------------------------------ */

static const struct sr_http_header json_hdr[] = {{"content-type", "application/json"}};

static void count_upload(struct gw_feeds *f, const char *kind, const char *outcome,
                         const char *reason)
{
    char labels[160];
    snprintf(labels, sizeof(labels), "kind=\"%s\",outcome=\"%s\",reason=\"%s\"", kind, outcome,
             reason);
    sr_metrics_add(f->g->metrics, "skyroute_feed_uploads_total", labels, 1);
}

static void refuse(struct gw_feeds *f, sr_req *req, const char *kind, int status,
                   const char *reason, const char *msg, const char *detail)
{
    count_upload(f, kind, "refused", reason);
    sr_log(SR_LOG_INFO, "feeds: %s upload from %s refused (%d %s): %s", kind, sr_req_peer(req),
           status, reason, msg);
    sr_req_respond_error(req, status, msg, detail);
}

static void respond_buf(sr_req *req, sr_buf *b)
{
    if (sr_buf_append(b, "\n", 1) != 0) {
        sr_buf_free(b);
        sr_req_respond_error(req, 503, "out of memory", NULL);
        return;
    }
    sr_req_respond(req, 200, json_hdr, 1, b->data, b->len, true);
}

static int append_time(sr_buf *b, int64_t ms)
{
    char t[SR_RFC3339_LEN];
    if (sr_time_format(t, ms) < 0) {
        return sr_buf_append(b, "null", 4);
    }
    return sr_buf_appendf(b, "\"%s\"", t);
}

static int append_num(sr_buf *b, double v)
{
    return isfinite(v) ? sr_buf_appendf(b, "%.17g", v) : sr_buf_append(b, "null", 4);
}

/* Elevation and light time: the router keeps them as floats, so seven
 * significant digits is all there is (and 63.4 reads back as 63.4). */
static int append_float(sr_buf *b, double v)
{
    return isfinite(v) ? sr_buf_appendf(b, "%.7g", v) : sr_buf_append(b, "null", 4);
}

/* Verifies the signature header; on failure answers 401 and returns NULL. */
static const struct op_cfg *authenticate(struct gw_feeds *f, sr_req *req, const char *kind,
                                         const uint8_t *body, size_t len)
{
    const char *hdr = sr_req_header(req, "skyroute-signature");
    if (!hdr) {
        refuse(f, req, kind, 401, "unsigned", "unsigned upload",
               "{\"header\":\"skyroute-signature\",\"expected\":\"KEYID:BASE64SIG\"}");
        return NULL;
    }
    const char *name = NULL;
    char why[200] = "";
    int rv = sr_sighdr_verify(f->ring, hdr, strlen(hdr), body, len, &name, why, sizeof(why));
    if (rv) {
        const char *reason = rv == SR_ERR_ENV_UNTRUSTED ? "unknown_key"
                             : rv == SR_ERR_ENV_BADSIG  ? "bad_signature"
                                                        : "malformed_signature";
        const char *msg = rv == SR_ERR_ENV_UNTRUSTED ? "signed by a key that is not an operator's"
                          : rv == SR_ERR_ENV_BADSIG  ? "signature does not verify over the body"
                                                     : "malformed skyroute-signature header";
        sr_buf d;
        sr_buf_init(&d, 1024);
        int e = sr_buf_appendf(
            &d, "{\"header\":\"skyroute-signature\",\"code\":\"%s\",\"why\":", sr_errname(rv));
        e = e ? e : sr_buf_append_json_str(&d, why, strlen(why));
        e = e ? e : sr_buf_append(&d, "}", 1);
        e = e ? e : sr_buf_terminate(&d);
        refuse(f, req, kind, 401, reason, msg, e ? NULL : (const char *)d.data);
        sr_buf_free(&d);
        return NULL;
    }
    const struct op_cfg *op = name ? find_op(f, name) : NULL;
    if (!op) {
        refuse(f, req, kind, 401, "unknown_key", "signed by a key that is not an operator's", NULL);
    }
    return op;
}

static void refuse_forbidden(struct gw_feeds *f, sr_req *req, const char *kind,
                             const struct op_cfg *op, const char *sat)
{
    sr_buf d;
    sr_buf_init(&d, 1024);
    int e = sr_buf_append(&d, "{\"operator\":", 12);
    e = e ? e : sr_buf_append_json_str(&d, op->name, strlen(op->name));
    e = e ? e : sr_buf_append(&d, ",\"satellite\":", 13);
    e = e ? e : sr_buf_append_json_str(&d, sat, strlen(sat));
    e = e ? e : sr_buf_append(&d, "}", 1);
    e = e ? e : sr_buf_terminate(&d);
    refuse(f, req, kind, 403, "forbidden", "the operator may not speak for this satellite",
           e ? NULL : (const char *)d.data);
    sr_buf_free(&d);
}

/* ---- PUT /v1/passes ------------------------------------------------------------------- */

static const char *feed_lookup(void *arg, sr_feed_id_kind kind, const char *v)
{
    struct gw_feeds *f = arg;
    if (kind == SR_FEED_ID_STATION) {
        /* without [gateway] station_names every station a feed names is this one */
        for (size_t i = 0; i < f->nnames; i++) {
            if (!strcmp(f->names[i], v)) {
                return "";
            }
        }
        return f->nnames ? NULL : "";
    }
    uint64_t num = 0;
    if (kind == SR_FEED_ID_NORAD || kind == SR_FEED_ID_ION_NODE) {
        int64_t n;
        if (sr_parse_i64(&n, v, strlen(v)) != 0 || n <= 0) {
            return NULL;
        }
        num = (uint64_t)n;
    }
    for (size_t i = 0; i < f->nsats; i++) {
        const struct sat_info *s = &f->sats[i];
        if ((kind == SR_FEED_ID_TARGET && !strcmp(s->id, v)) ||
            (kind == SR_FEED_ID_ARN && s->arn[0] && !strcmp(s->arn, v)) ||
            (kind == SR_FEED_ID_NORAD && s->catnum && s->catnum == num) ||
            (kind == SR_FEED_ID_ION_NODE && s->ion_node && s->ion_node == num)) {
            return s->id;
        }
    }
    return NULL;
}

static int feed_status(int code, const char **reason)
{
    switch (code) {
    case SR_ERR_PARSE:
    case SR_ERR_UNSUPPORTED:
        *reason = "malformed";
        return 400;
    case SR_ERR_NOTFOUND:
        *reason = "unknown_satellite";
        return 422;
    case SR_ERR_TOOBIG:
        *reason = "too_big";
        return 413;
    case SR_ERR_NOMEM:
        *reason = "nomem";
        return 503;
    default:
        *reason = "unusable";
        return 422;
    }
}

/* A time in the query: 0 when absent (|*out| untouched) or parsed, -1 when
 * present but not an RFC 3339 time (or too long to be one). */
static int query_time(const char *path, const char *key, int64_t *out)
{
    char v[64];
    int rv = sr_query_get(path, key, v, sizeof(v));
    if (rv == SR_ERR_NOTFOUND) {
        return 0;
    }
    return rv == 0 && sr_time_parse(out, v, (size_t)-1) == 0 ? 0 : -1;
}

static void put_passes(struct gw_feeds *f, sr_req *req)
{
    size_t len;
    const uint8_t *body = sr_req_body(req, &len);
    const struct op_cfg *op = authenticate(f, req, "passes", body, len);
    if (!op) {
        return;
    }
    int64_t now = sr_now_ms();
    struct sr_feed_opts o;
    memset(&o, 0, sizeof(o));
    o.now_ms = now;
    o.content_type = sr_req_header(req, "content-type");
    o.lookup = feed_lookup;
    o.lookup_arg = f;
    const char *path = sr_req_path(req);
    char q[64];
    if (query_time(path, "epoch", &o.epoch_ms) != 0) {
        refuse(f, req, "passes", 400, "malformed", "bad query parameter",
               "{\"param\":\"epoch\",\"expected\":\"RFC 3339 time\"}");
        return;
    }
    int qf = sr_query_get(path, "format", q, sizeof(q));
    if (qf != SR_ERR_NOTFOUND) {
        static const sr_feed_format fmts[] = {SR_FEED_JSON, SR_FEED_AWS, SR_FEED_SATNOGS,
                                              SR_FEED_ION};
        for (size_t i = 0; qf == 0 && i < 4; i++) {
            if (!strcmp(q, sr_feed_format_name(fmts[i]))) {
                o.format = fmts[i];
            }
        }
        if (o.format == SR_FEED_AUTO) {
            refuse(f, req, "passes", 400, "malformed", "bad query parameter",
                   "{\"param\":\"format\",\"expected\":\"json, aws, satnogs or ion\"}");
            return;
        }
    }
    struct sr_feed_result res;
    struct sr_feed_error fe;
    int rv = sr_feed_parse(&res, (const char *)body, len, &o, &fe);
    if (rv) {
        const char *reason;
        int status = feed_status(rv, &reason);
        sr_buf d;
        sr_buf_init(&d, 2048);
        sr_feed_format det =
            o.format ? o.format : sr_feed_detect((const char *)body, len, o.content_type);
        int e = sr_buf_appendf(&d, "{\"format\":\"%s\",\"code\":\"%s\",\"index\":",
                               sr_feed_format_name(det), sr_errname(rv));
        e = e ? e
              : (fe.index >= 0 ? sr_buf_appendf(&d, "%ld", fe.index)
                               : sr_buf_append(&d, "null", 4));
        e = e ? e : sr_buf_append(&d, ",\"line\":", 8);
        e = e ? e
              : (fe.line >= 0 ? sr_buf_appendf(&d, "%ld", fe.line) : sr_buf_append(&d, "null", 4));
        e = e ? e : sr_buf_append(&d, ",\"field\":", 9);
        e = e ? e
              : (fe.field[0] ? sr_buf_append_json_str(&d, fe.field, strlen(fe.field))
                             : sr_buf_append(&d, "null", 4));
        e = e ? e : sr_buf_append(&d, ",\"why\":", 7);
        e = e ? e : sr_buf_append_json_str(&d, fe.msg, strlen(fe.msg));
        e = e ? e : sr_buf_append(&d, "}", 1);
        e = e ? e : sr_buf_terminate(&d);
        char msg[300];
        snprintf(msg, sizeof(msg), "schedule refused: %s", fe.msg[0] ? fe.msg : sr_strerror(rv));
        refuse(f, req, "passes", status, reason, msg, e ? NULL : (const char *)d.data);
        sr_buf_free(&d);
        return;
    }
    /* authorise every satellite named, withdrawn entries included, before anything is stored */
    for (size_t i = 0; i < res.nspans; i++) {
        if (!op_owns(op, res.spans[i].sat)) {
            refuse_forbidden(f, req, "passes", op, res.spans[i].sat);
            sr_feed_result_free(&res);
            return;
        }
    }
    /* one window per satellite: the span the feed speaks about (first to last time of its
     * passes and withdrawn entries), with that satellite's passes (contiguous, sorted) */
    struct sr_store_window *w = calloc(res.nspans ? res.nspans : 1, sizeof(*w));
    if (!w) {
        sr_feed_result_free(&res);
        refuse(f, req, "passes", 503, "nomem", "out of memory", NULL);
        return;
    }
    size_t nw = 0;
    for (size_t i = 0; i < res.nspans; i++) {
        const struct sr_feed_span *sp = &res.spans[i];
        if (sp->to_ms <= sp->from_ms) {
            continue;
        }
        struct sr_store_window *cur = &w[nw++];
        cur->sat = sp->sat;
        cur->from_ms = sp->from_ms;
        cur->to_ms = sp->to_ms;
        for (size_t k = 0; k < res.n; k++) {
            if (!strcmp(res.passes[k].sat, sp->sat)) {
                if (!cur->passes) {
                    cur->passes = &res.passes[k];
                }
                cur->n++;
            }
        }
    }
    size_t changed = 0;
    rv = sr_store_put_passes(f->store, op->name, now, w, nw, &changed);
    if (rv) {
        free(w);
        sr_feed_result_free(&res);
        refuse(f, req, "passes", 503, "store", "the schedule could not be stored", NULL);
        return;
    }
    for (size_t i = 0; i < nw; i++) {
        struct sat_info *s = find_sat(f, w[i].sat);
        if (s) {
            (void)resync(f, s);
        }
    }
    count_upload(f, "passes", "accepted", changed ? "ok" : "unchanged");
    char labels[48];
    snprintf(labels, sizeof(labels), "format=\"%s\"", sr_feed_format_name(res.format));
    sr_metrics_add(f->g->metrics, "skyroute_feed_passes_accepted_total", labels, (double)res.n);
    sr_log(SR_LOG_INFO, "feeds: %s schedule from %s: %zu passes, %zu skipped, %zu windows changed",
           sr_feed_format_name(res.format), op->name, res.n, res.skipped, changed);

    sr_buf b;
    sr_buf_init(&b, 1 << 20);
    int e = sr_buf_appendf(&b,
                           "{\"accepted\":%zu,\"format\":\"%s\",\"skipped\":%zu,\"changed\":%zu,"
                           "\"operator\":",
                           res.n, sr_feed_format_name(res.format), res.skipped, changed);
    e = e ? e : sr_buf_append_json_str(&b, op->name, strlen(op->name));
    e = e ? e : sr_buf_append(&b, ",\"station\":", 11);
    e = e ? e
          : (res.station[0] ? sr_buf_append_json_str(&b, res.station, strlen(res.station))
                            : sr_buf_append(&b, "null", 4));
    e = e ? e : sr_buf_append(&b, ",\"satellites\":[", 15);
    for (size_t i = 0; e == 0 && i < nw; i++) {
        e = i ? sr_buf_append(&b, ",", 1) : 0;
        e = e ? e : sr_buf_append_json_str(&b, w[i].sat, strlen(w[i].sat));
    }
    e = e ? e : sr_buf_append(&b, "]}", 2);
    free(w);
    sr_feed_result_free(&res);
    if (e) {
        sr_buf_free(&b);
        sr_req_respond_error(req, 503, "out of memory", NULL);
        return;
    }
    respond_buf(req, &b);
}

/* ---- PUT /v1/elements ------------------------------------------------------------------- */

static void put_elements(struct gw_feeds *f, sr_req *req)
{
    size_t len;
    const uint8_t *body = sr_req_body(req, &len);
    const struct op_cfg *op = authenticate(f, req, "elements", body, len);
    if (!op) {
        return;
    }
    if (!f->has_station) {
        refuse(f, req, "elements", 422, "no_station",
               "this gateway has no [gateway] station to predict passes for", NULL);
        return;
    }
    sr_elements *els = NULL;
    size_t n = 0;
    char why[300] = "";
    int rv = sr_elements_parse_text(&els, &n, (const char *)body, len, MAX_ELEMENT_SETS, 0, why,
                                    sizeof(why));
    if (rv) {
        const char *reason = rv == SR_ERR_TOOBIG  ? "too_big"
                             : rv == SR_ERR_NOMEM ? "nomem"
                                                  : "malformed";
        int status = rv == SR_ERR_TOOBIG ? 413 : rv == SR_ERR_NOMEM ? 503 : 400;
        sr_buf d;
        sr_buf_init(&d, 1024);
        int e = sr_buf_appendf(&d, "{\"code\":\"%s\",\"why\":", sr_errname(rv));
        e = e ? e : sr_buf_append_json_str(&d, why, strlen(why));
        e = e ? e : sr_buf_append(&d, "}", 1);
        e = e ? e : sr_buf_terminate(&d);
        char msg[400];
        snprintf(msg, sizeof(msg), "elements refused: %s", why[0] ? why : sr_strerror(rv));
        refuse(f, req, "elements", status, reason, msg, e ? NULL : (const char *)d.data);
        sr_buf_free(&d);
        return;
    }
    /* match sets to satellites by catalogue number; the latest epoch wins */
    const sr_elements **pick = calloc(f->nsats ? f->nsats : 1, sizeof(*pick));
    sr_sat **sats = calloc(f->nsats ? f->nsats : 1, sizeof(*sats));
    struct sr_store_elements *se = calloc(f->nsats ? f->nsats : 1, sizeof(*se));
    struct sat_info **by = calloc(f->nsats ? f->nsats : 1, sizeof(*by));
    sr_buf own; /* each satellite's own set, when the upload holds several */
    sr_buf_init(&own, (size_t)MAX_ELEMENT_SETS * 1024);
    if (!pick || !sats || !se || !by) {
        free(pick);
        free(sats);
        free(se);
        free(by);
        free(els);
        refuse(f, req, "elements", 503, "nomem", "out of memory", NULL);
        return;
    }
    size_t ignored = 0, matched = 0, nby = 0;
    const char *format = elements_format((const char *)body, len);
    int status = 0;
    for (size_t k = 0; k < f->nsats; k++) {
        if (f->sats[k].catnum) {
            by[nby++] = &f->sats[k];
        }
    }
    qsort(by, nby, sizeof(*by), catnum_cmp);
    for (size_t i = 0; i < n; i++) {
        size_t k = find_catnum(by, nby, f->sats, els[i].catnum);
        if (k == SIZE_MAX) {
            ignored++;
            continue;
        }
        if (!op_owns(op, f->sats[k].id)) {
            refuse_forbidden(f, req, "elements", op, f->sats[k].id);
            status = 403;
            break;
        }
        if (!pick[k] || els[i].epoch_ms > pick[k]->epoch_ms) {
            pick[k] = &els[i];
        }
    }
    for (size_t k = 0; status == 0 && k < f->nsats; k++) {
        if (!pick[k]) {
            continue;
        }
        rv = sr_sat_new(&sats[k], pick[k]);
        if (rv) {
            char msg[200];
            snprintf(msg, sizeof(msg), "elements of %s (catalogue number %u) are unusable: %s",
                     f->sats[k].id, pick[k]->catnum, sr_strerror(rv));
            refuse(f, req, "elements", 422, "unusable", msg, NULL);
            status = 422;
            break;
        }
        struct sr_store_elements *e = &se[matched++];
        snprintf(e->sat, sizeof(e->sat), "%s", f->sats[k].id);
        snprintf(e->format, sizeof(e->format), "%s", format);
        e->catnum = pick[k]->catnum;
        e->epoch_ms = pick[k]->epoch_ms;
        e->text = (char *)(uintptr_t)body;
        e->len = len;
    }
    if (status == 0 && matched > 1) {
        /* offsets first: |own| may move while it grows */
        size_t *off = calloc(matched, sizeof(*off));
        for (size_t m = 0, k = 0; off && k < f->nsats && status == 0; k++) {
            if (!pick[k]) {
                continue;
            }
            off[m] = own.len;
            if (own_set_text(&own, pick[k], format, se[m].format) != 0) {
                refuse(f, req, "elements", 503, "nomem", "out of memory", NULL);
                status = 503;
            }
            se[m].len = own.len - off[m];
            m++;
        }
        if (!off && status == 0) {
            refuse(f, req, "elements", 503, "nomem", "out of memory", NULL);
            status = 503;
        }
        for (size_t m = 0; off && status == 0 && m < matched; m++) {
            se[m].text = (char *)own.data + off[m];
        }
        free(off);
    }
    if (status == 0 && matched == 0) {
        refuse(f, req, "elements", 422, "unknown_satellite",
               "no element set has the catalogue number of a configured satellite "
               "([satellite.ID] catnum)",
               NULL);
        status = 422;
    }
    size_t changed = 0;
    if (status == 0 &&
        sr_store_put_elements(f->store, op->name, sr_now_ms(), se, matched, &changed) != 0) {
        refuse(f, req, "elements", 503, "store", "the elements could not be stored", NULL);
        status = 503;
    }
    sr_buf b;
    sr_buf_init(&b, 1 << 20);
    int e = 0;
    if (status == 0) {
        int64_t now = sr_now_ms();
        e = sr_buf_appendf(&b,
                           "{\"accepted\":%zu,\"format\":\"%s\",\"ignored\":%zu,\"changed\":%zu,"
                           "\"operator\":",
                           matched, format, ignored, changed);
        e = e ? e : sr_buf_append_json_str(&b, op->name, strlen(op->name));
        e = e ? e : sr_buf_append(&b, ",\"satellites\":[", 15);
        size_t shown = 0;
        for (size_t k = 0; k < f->nsats; k++) {
            if (!sats[k]) {
                continue;
            }
            struct sat_info *s = &f->sats[k];
            sr_sat_free(s->sat);
            s->sat = sats[k];
            sats[k] = NULL;
            snprintf(s->elem_format, sizeof(s->elem_format), "%s", format);
            predict(f, s, now);
            (void)resync(f, s);
            e = e ? e : (shown++ ? sr_buf_append(&b, ",", 1) : 0);
            e = e ? e : sr_buf_append_json_str(&b, s->id, strlen(s->id));
        }
        e = e ? e : sr_buf_append(&b, "],\"predicted\":{", 15);
        shown = 0;
        size_t total = 0;
        for (size_t k = 0; k < f->nsats; k++) {
            total += f->sats[k].npred;
            if (!pick[k]) {
                continue;
            }
            e = e ? e : (shown++ ? sr_buf_append(&b, ",", 1) : 0);
            e = e ? e : sr_buf_append_json_str(&b, f->sats[k].id, strlen(f->sats[k].id));
            e = e ? e : sr_buf_appendf(&b, ":%zu", f->sats[k].npred);
        }
        e = e ? e : sr_buf_appendf(&b, "},\"horizon_h\":%lld}", PREDICT_HORIZON_MS / 3600000LL);
        sr_metrics_set(f->g->metrics, "skyroute_feed_predicted_passes", "", (double)total);
        count_upload(f, "elements", "accepted", changed ? "ok" : "unchanged");
        sr_log(SR_LOG_INFO, "feeds: %s elements from %s: %zu satellites, %zu ignored", format,
               op->name, matched, ignored);
    }
    for (size_t k = 0; k < f->nsats; k++) {
        sr_sat_free(sats[k]);
    }
    free(sats);
    free(pick);
    free(se);
    free(by);
    sr_buf_free(&own);
    free(els);
    if (status != 0) {
        sr_buf_free(&b);
        return;
    }
    if (e) {
        sr_buf_free(&b);
        sr_req_respond_error(req, 503, "out of memory", NULL);
        return;
    }
    respond_buf(req, &b);
}

/* ---- GET /v1/passes ------------------------------------------------------------------- */

static int append_pass(sr_buf *b, const struct sr_pass_rec *p)
{
    int e = sr_buf_append(b, "{\"sat\":", 7);
    e = e ? e : sr_buf_append_json_str(b, p->sat, strlen(p->sat));
    e = e ? e : sr_buf_append(b, ",\"aos\":", 7);
    e = e ? e : append_time(b, p->aos_ms);
    e = e ? e : sr_buf_append(b, ",\"los\":", 7);
    e = e ? e : append_time(b, p->los_ms);
    e = e ? e : sr_buf_append(b, ",\"tca\":", 7);
    e = e ? e : (p->tca_ms ? append_time(b, p->tca_ms) : sr_buf_append(b, "null", 4));
    e = e ? e : sr_buf_append(b, ",\"max_el_deg\":", 14);
    e = e ? e : append_float(b, p->max_el_deg);
    e = e ? e : sr_buf_append(b, ",\"uplink_bps\":", 14);
    e = e ? e : append_num(b, p->uplink_bps);
    e = e ? e : sr_buf_append(b, ",\"downlink_bps\":", 16);
    e = e ? e : append_num(b, p->downlink_bps);
    e = e ? e : sr_buf_append(b, ",\"light_ms\":", 12);
    e = e ? e : append_float(b, p->light_ms);
    e = e ? e : sr_buf_append(b, ",\"source\":", 10);
    e = e ? e : sr_buf_append_json_str(b, p->source, strlen(p->source));
    e = e ? e : sr_buf_append(b, "}", 1);
    return e;
}

static void get_passes(struct gw_feeds *f, sr_req *req)
{
    const char *path = sr_req_path(req);
    char sat[SR_TARGET_IDMAX + 1] = "";
    int64_t now = sr_now_ms(), from = now, to = now + DEFAULT_LIST_MS;
    int qs = sr_query_get(path, "sat", sat, sizeof(sat));
    bool has_sat = qs == 0 && sat[0];
    if ((qs != 0 && qs != SR_ERR_NOTFOUND) || (has_sat && !find_sat(f, sat))) {
        sr_req_respond_error(req, 404, "no such satellite target", NULL);
        return;
    }
    if (query_time(path, "from", &from) != 0) {
        sr_req_respond_error(req, 400, "bad query parameter",
                             "{\"param\":\"from\",\"expected\":\"RFC 3339 time\"}");
        return;
    }
    if (query_time(path, "to", &to) != 0) {
        sr_req_respond_error(req, 400, "bad query parameter",
                             "{\"param\":\"to\",\"expected\":\"RFC 3339 time\"}");
        return;
    }
    if (to <= from) {
        sr_req_respond_error(req, 400, "bad query parameter",
                             "{\"param\":\"to\",\"expected\":\"after from\"}");
        return;
    }
    size_t n = sr_router_passes(f->g->router, has_sat ? sat : NULL, from, to, NULL, 0);
    if (n > MAX_LIST) {
        n = MAX_LIST;
    }
    struct sr_pass_rec *ps = calloc(n ? n : 1, sizeof(*ps));
    if (!ps) {
        sr_req_respond_error(req, 503, "out of memory", NULL);
        return;
    }
    n = sr_router_passes(f->g->router, has_sat ? sat : NULL, from, to, ps, n);
    if (n > MAX_LIST) {
        n = MAX_LIST;
    }
    sr_buf b;
    sr_buf_init(&b, 64u << 20);
    int e = sr_buf_append(&b, "{\"from\":", 8);
    e = e ? e : append_time(&b, from);
    e = e ? e : sr_buf_append(&b, ",\"to\":", 6);
    e = e ? e : append_time(&b, to);
    e = e ? e : sr_buf_append(&b, ",\"passes\":[", 11);
    for (size_t i = 0; e == 0 && i < n; i++) {
        e = i ? sr_buf_append(&b, ",", 1) : 0;
        e = e ? e : append_pass(&b, &ps[i]);
    }
    e = e ? e : sr_buf_append(&b, "]}", 2);
    free(ps);
    if (e) {
        sr_buf_free(&b);
        sr_req_respond_error(req, 503, "out of memory", NULL);
        return;
    }
    respond_buf(req, &b);
}

/* ---- GET /v1/targets ------------------------------------------------------------------ */

/* The pass in progress at |now| (if any) and the next one to start after it. */
static int append_view(struct gw_feeds *f, sr_buf *b, const char *id, int64_t now)
{
    struct sr_pass_rec ps[3];
    size_t n = sr_router_passes(f->g->router, id, now, INT64_MAX, ps, 3);
    if (n > 3) {
        n = 3;
    }
    const struct sr_pass_rec *cur = NULL, *next = NULL;
    for (size_t i = 0; i < n; i++) {
        if (ps[i].aos_ms <= now && ps[i].los_ms > now && !cur) {
            cur = &ps[i];
        } else if (ps[i].aos_ms > now && !next) {
            next = &ps[i];
        }
    }
    int e = sr_buf_appendf(b, ",\"in_view\":%s,\"current\":", cur ? "true" : "false");
    e = e ? e : (cur ? append_pass(b, cur) : sr_buf_append(b, "null", 4));
    e = e ? e : sr_buf_append(b, ",\"next_aos\":", 12);
    e = e ? e : (next ? append_time(b, next->aos_ms) : sr_buf_append(b, "null", 4));
    e = e ? e : sr_buf_append(b, ",\"next_los\":", 12);
    e = e ? e : (next ? append_time(b, next->los_ms) : sr_buf_append(b, "null", 4));
    e = e ? e : sr_buf_append(b, ",\"next\":", 8);
    e = e ? e : (next ? append_pass(b, next) : sr_buf_append(b, "null", 4));
    const struct sat_info *s = find_sat(f, id);
    if (e == 0 && s && s->sat) {
        const sr_elements *el = sr_sat_elements(s->sat);
        e = sr_buf_appendf(b,
                           ",\"elements\":{\"catnum\":%u,\"format\":\"%s\",\"epoch\":", el->catnum,
                           s->elem_format);
        e = e ? e : append_time(b, (int64_t)llround(el->epoch_ms));
        e = e ? e : sr_buf_appendf(b, ",\"predicted_passes\":%zu}", s->npred);
    }
    return e;
}

static void get_targets(struct gw_feeds *f, sr_req *req)
{
    struct gw *g = f->g;
    sr_buf b;
    /* an entry is bounded (ids, url, two passes, elements): about 1 KiB at
     * most, so 4 KiB each leaves room and 10,000 satellites still answer */
    sr_buf_init(&b, ((size_t)64 << 10) + g->ntargets * 4096);
    int64_t now = sr_now_ms();
    int e = sr_buf_append(&b, "{\"now\":", 7);
    e = e ? e : append_time(&b, now);
    e = e ? e : sr_buf_appendf(&b, ",\"station\":");
    if (e == 0 && f->has_station) {
        e = sr_buf_appendf(&b,
                           "{\"lat_deg\":%.6f,\"lon_deg\":%.6f,\"alt_m\":%.1f,\"min_el_deg\":%g}",
                           f->station.lat_deg, f->station.lon_deg, f->station.alt_m, f->min_el_deg);
    } else if (e == 0) {
        e = sr_buf_append(&b, "null", 4);
    }
    e = e ? e : sr_buf_append(&b, ",\"targets\":[", 12);
    for (size_t i = 0; e == 0 && i < g->ntargets; i++) {
        struct target_rt *t = &g->targets[i];
        struct sr_target_state st;
        sr_router_state(g->router, (size_t)t->router_idx, now, &st);
        bool sat = t->cfg->kind == SR_TARGET_SATELLITE;
        e = sr_buf_appendf(&b, "%s{\"id\":", i ? "," : "");
        e = e ? e : sr_buf_append_json_str(&b, t->cfg->id, strlen(t->cfg->id));
        e = e ? e : sr_buf_append(&b, ",\"url\":", 7);
        e = e ? e : sr_buf_append_json_str(&b, t->cfg->url, strlen(t->cfg->url));
        e = e ? e
              : sr_buf_appendf(&b,
                               ",\"kind\":\"%s\",\"observed_ms\":%.1f,\"inflight\":%u,"
                               "\"successes\":%llu,\"failures\":%llu,\"consecutive_failures\":%u,"
                               "\"ejected\":%s,\"prediction_error_ms\":%.1f",
                               sat ? "satellite" : "idc", st.ewma_ms, st.inflight,
                               (unsigned long long)st.successes, (unsigned long long)st.failures,
                               st.consecutive_failures, st.ejected_until > now ? "true" : "false",
                               st.err_abs_ms);
        if (e == 0 && sat) {
            e = append_view(f, &b, t->cfg->id, now);
        } else if (e == 0) {
            e = sr_buf_append(&b, ",\"in_view\":true", 15); /* ground links are always up */
        }
        e = e ? e : sr_buf_append(&b, "}", 1);
    }
    e = e ? e : sr_buf_append(&b, "]}", 2);
    if (e) {
        sr_buf_free(&b);
        sr_req_respond_error(req, 503, "out of memory", NULL);
        return;
    }
    respond_buf(req, &b);
}

/* ---- dispatch ------------------------------------------------------------------------- */

static bool path_is(const char *path, const char *want)
{
    size_t plen = strcspn(path, "?");
    return plen == strlen(want) && !strncmp(path, want, plen);
}

/* ---- [cluster]: element sets accepted at another station ---------------------------------- */

int gw_feeds_ingest_elements(struct gw *g, const char *op, const char *text, size_t len)
{
    struct gw_feeds *f = g->feeds;
    if (!f || !f->has_station) {
        return SR_ERR_UNAVAILABLE;
    }
    sr_elements *els = NULL;
    size_t n = 0;
    int rv = sr_elements_parse_text(&els, &n, text, len, MAX_ELEMENT_SETS, 0, NULL, 0);
    if (rv) {
        return rv;
    }
    const char *format = elements_format(text, len);
    int64_t now = sr_now_ms();
    size_t used = 0;
    for (size_t k = 0; rv == 0 && k < f->nsats; k++) {
        struct sat_info *s = &f->sats[k];
        const sr_elements *best = NULL;
        for (size_t i = 0; s->catnum && i < n; i++) {
            if (els[i].catnum == s->catnum && (!best || els[i].epoch_ms > best->epoch_ms)) {
                best = &els[i];
            }
        }
        /* only a newer set than the one we predict from */
        if (!best || (s->sat && sr_sat_elements(s->sat)->epoch_ms >= best->epoch_ms)) {
            continue;
        }
        sr_sat *sat = NULL;
        if (sr_sat_new(&sat, best) != 0) {
            continue;
        }
        struct sr_store_elements se;
        memset(&se, 0, sizeof(se));
        snprintf(se.sat, sizeof(se.sat), "%s", s->id);
        snprintf(se.format, sizeof(se.format), "%s", format);
        se.catnum = best->catnum;
        se.epoch_ms = best->epoch_ms;
        se.text = (char *)(uintptr_t)text;
        se.len = len;
        if (sr_store_put_elements(f->store, op, now, &se, 1, NULL) != 0) {
            sr_sat_free(sat);
            rv = SR_ERR_IO;
            break;
        }
        sr_sat_free(s->sat);
        s->sat = sat;
        snprintf(s->elem_format, sizeof(s->elem_format), "%s", format);
        predict(f, s, now);
        (void)resync(f, s);
        used++;
        sr_log(SR_LOG_INFO, "feeds: elements of %s from %s: %zu passes predicted", s->id, op,
               s->npred);
    }
    free(els);
    return rv ? rv : used ? 0 : SR_ERR_NOTFOUND;
}

bool gw_feeds_handle(struct gw *g, sr_req *req)
{
    struct gw_feeds *f = g->feeds;
    const char *path = sr_req_path(req);
    const char *m = sr_req_method(req);
    bool passes = path_is(path, "/v1/passes");
    bool elements = path_is(path, "/v1/elements");
    bool targets = path_is(path, "/v1/targets");
    if (!passes && !elements && !targets) {
        return false;
    }
    if (!f || !f->store) {
        sr_req_respond_error(req, 503, "operator feeds are not available", NULL);
        return true;
    }
    if (targets) {
        if (strcmp(m, "GET") != 0) {
            sr_req_respond_error(req, 405, "use GET", NULL);
        } else {
            get_targets(f, req);
        }
        return true;
    }
    if (!strcmp(m, "PUT")) {
        if (g->draining) {
            sr_req_respond_error(req, 503, "gateway is shutting down", NULL);
        } else if (passes) {
            put_passes(f, req);
        } else {
            put_elements(f, req);
        }
        return true;
    }
    if (passes && !strcmp(m, "GET")) {
        get_passes(f, req);
        return true;
    }
    sr_req_respond_error(req, 405, passes ? "use GET or PUT" : "use PUT", NULL);
    return true;
}
