/*
 * skyrouted part: operator feeds (DESIGN sections 6, 7 and 10), their state.
 * The endpoints are in feeds_http.c, the configuration in feeds_config.c
 * (feeds_int.h draws the map); this file keeps the store, the predictions
 * and the router's schedules in step.
 *
 * The router is rebuilt from the store for each satellite an upload touches,
 * so what the router holds is always what a restart would load. For each
 * satellite it holds every operator pass plus the predicted passes outside
 * the spans operator schedules have covered ("operator windows", kept by the
 * store as a union): sr_schedule_merge() in routing/ decides, and says why.
 *
 * Predictions come from the latest element set of each satellite, for this
 * station ([gateway] station = LAT,LON,ALT_M, min_el_deg) over the next
 * PREDICT_HORIZON_MS, and are refreshed by a timer every PREDICT_EVERY_S so
 * the horizon moves with time. They are derived data: not stored, recomputed
 * at start-up from the stored elements. Element sets accepted at another
 * station of the cluster arrive through gw_feeds_ingest_elements().
 */
#include "gateway/daemon/feeds_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#define PREDICT_EVERY_S 3600
#define PRUNE_AFTER_MS (31 * 86400 * 1000LL) /* as far back as a feed may reach */

/* ---- predictions and the router -------------------------------------------------------- */

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

int gw_feeds_resync(struct gw_feeds *f, struct sat_info *s)
{
    struct sr_pass_rec *ops = NULL, *all = NULL;
    struct sr_store_span *spans = NULL;
    int64_t(*win)[2] = NULL;
    size_t nops = 0, nspans = 0;
    int rv = sr_store_passes(f->store, s->id, INT64_MIN, INT64_MAX, &ops, &nops);
    rv = rv ? rv : sr_store_windows(f->store, s->id, &spans, &nspans);
    if (rv == 0) {
        all = malloc((nops + s->npred + 1) * sizeof(*all));
        win = malloc((nspans + 1) * sizeof(*win));
        rv = all && win ? 0 : SR_ERR_NOMEM;
    }
    if (rv == 0) {
        for (size_t i = 0; i < nspans; i++) {
            win[i][0] = spans[i].from_ms;
            win[i][1] = spans[i].to_ms;
        }
        size_t n =
            sr_schedule_merge(all, ops, nops, (const int64_t(*)[2])win, nspans, s->pred, s->npred);
        rv = sr_router_set_passes(f->g->router, s->id, INT64_MIN, INT64_MAX, all, n);
    }
    if (rv) {
        sr_log(SR_LOG_ERROR, "feeds: cannot load the schedule of %s: %s", s->id, sr_strerror(rv));
    }
    free(win);
    free(all);
    free(ops);
    free(spans);
    return rv;
}

void gw_feeds_set_orbit(struct gw_feeds *f, struct sat_info *s, sr_sat *sat, const char *format,
                        int64_t now)
{
    sr_sat_free(s->sat);
    s->sat = sat;
    snprintf(s->elem_format, sizeof(s->elem_format), "%s", format);
    predict(f, s, now);
    (void)gw_feeds_resync(f, s);
}

static void refresh_predictions(struct gw_feeds *f)
{
    int64_t now = sr_now_ms();
    size_t total = 0;
    for (size_t i = 0; i < f->nsats; i++) {
        struct sat_info *s = &f->sats[i];
        if (s->sat) {
            predict(f, s, now);
            (void)gw_feeds_resync(f, s);
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
            (void)gw_feeds_resync(f, &f->sats[i]);
        }
    }
    refresh_predictions(f);
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
        struct sat_info *s = gw_feeds_sat(f, els[i].sat);
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
        if (gw_feeds_resync(f, &f->sats[i]) != 0) {
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
    sr_metrics_describe(m, "skyroute_elements_age_seconds", "gauge",
                        "Seconds since the epoch of the element set in use, by satellite (none "
                        "until one is uploaded): predictions drift as it ages.");
}

void gw_feeds_metrics(struct gw *g, int64_t now_ms)
{
    struct gw_feeds *f = g->feeds;
    for (size_t i = 0; f && i < f->nsats; i++) {
        const struct sat_info *s = &f->sats[i];
        if (s->sat) {
            char labels[SR_TARGET_IDMAX + 16];
            snprintf(labels, sizeof(labels), "satellite=\"%s\"", s->id);
            double age_ms = (double)now_ms - sr_sat_elements(s->sat)->epoch_ms;
            sr_metrics_set(g->metrics, "skyroute_elements_age_seconds", labels, age_ms / 1000.0);
        }
    }
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
    if (gw_feeds_config(f, err, errlen) != 0) {
        return -1;
    }
    if (g->check_only) {
        return 0;
    }
    describe(g->metrics);
    if (sr_store_open(&f->store, g->cfg->state_dir, err, errlen) != 0 ||
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
    for (size_t i = 0; i < f->nsats; i++) {
        sr_sat_free(f->sats[i].sat);
        free(f->sats[i].pred);
    }
    gw_feeds_config_free(f);
    free(f);
    g->feeds = NULL;
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
    const char *format = sr_feed_elements_format(text, len);
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
        gw_feeds_set_orbit(f, s, sat, format, now);
        used++;
        sr_log(SR_LOG_INFO, "feeds: elements of %s from %s: %zu passes predicted", s->id, op,
               s->npred);
    }
    free(els);
    return rv ? rv : used ? 0 : SR_ERR_NOTFOUND;
}
