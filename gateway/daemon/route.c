/*
 * skyrouted part: routing configuration, explanations and energy feeds.
 *
 *   - init: [policy] weights and margins; each target's energy profile
 *     ([idc.ID] joules_per_gop, pue, power = grid|pv, price_per_kwh,
 *     carbon_g_per_kwh; [satellite.ID] joules_per_gop, battery_cost) and link
 *     profile (uplink_bps, downlink_bps, queue_ms) go into the router. Errors
 *     name FILE:LINE.
 *   - GET /v1/route?work=&bytes=&result_bytes=&deadline_ms=&place=&data_at=[&async=1]
 *     [&format=text]: ranks the targets for that workload now and explains
 *     the decision (routing.h sr_explain_json); changes nothing.
 *   - PUT /v1/targets/ID/energy: a forecast for an IDC, signed by an
 *     operator whose [operator.NAME] targets lists ID, with a v2
 *     skyroute-signature, authenticated as every operator upload
 *     (gw_feeds_authenticate): the signed path names the target, the signed
 *     time and nonce make it fresh and single-use. Body: {"points": [{"t":
 *     RFC3339, "price_per_kwh": x, "carbon_g_per_kwh": x, "pv_surplus_w":
 *     x}, ...]} (price and carbon optional: absent = the configured value).
 *     Replaces the forecast whole.
 */
#include "gateway/daemon/daemon.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_ENERGY_POINTS 100000
#define MAX_CANDS 256

struct gw_route {
    int unused; /* the routing part keeps its state in the router */
};

static int num(struct gw *g, const char *sec, const char *key, double def, double lo, double hi,
               double *out, char *err, size_t errlen)
{
    return sr_config_num(g->cfg, sec, key, def, lo, hi, out, err, errlen);
}

static int load_policy(struct gw *g, char *err, size_t errlen)
{
    struct sr_policy p;
    sr_policy_default(&p);
    double mw = p.max_windows;
    if (num(g, "policy", "time_weight", p.time_weight, 0, 1e12, &p.time_weight, err, errlen) ||
        num(g, "policy", "energy_weight", p.energy_weight, 0, 1e12, &p.energy_weight, err,
            errlen) ||
        num(g, "policy", "price_weight", p.price_weight, 0, 1e12, &p.price_weight, err, errlen) ||
        num(g, "policy", "carbon_weight", p.carbon_weight, 0, 1e12, &p.carbon_weight, err,
            errlen) ||
        num(g, "policy", "margin_ms", p.margin_ms, 0, 1e9, &p.margin_ms, err, errlen) ||
        num(g, "policy", "margin_k", p.margin_k, 0, 100, &p.margin_k, err, errlen) ||
        num(g, "policy", "inflight_weight", p.inflight_weight, 0, 1e6, &p.inflight_weight, err,
            errlen) ||
        num(g, "policy", "link_margin", p.link_margin, 0, 100, &p.link_margin, err, errlen) ||
        num(g, "policy", "max_windows", mw, 1, 4096, &mw, err, errlen)) {
        return -1;
    }
    p.max_windows = (unsigned)mw;
    if (sr_router_set_policy(g->router, &p) != 0) {
        snprintf(err, errlen, "%s: [policy]: invalid", g->cfg->path);
        return -1;
    }
    return 0;
}

static int load_target(struct gw *g, const struct target_rt *t, char *err, size_t errlen)
{
    char sec[128];
    bool sat = t->cfg->kind == SR_TARGET_SATELLITE;
    snprintf(sec, sizeof(sec), "%s.%s", sat ? "satellite" : "idc", t->cfg->id);
    size_t idx = (size_t)t->router_idx;
    const struct sr_target_info *ti = sr_router_target(g->router, idx);
    struct sr_energy_profile e = ti->energy;
    double up = ti->uplink_bps, down = ti->downlink_bps, q = ti->queue_ms, pue = 1;
    if (num(g, sec, "uplink_bps", up, 0, 1e13, &up, err, errlen) ||
        num(g, sec, "downlink_bps", down, 0, 1e13, &down, err, errlen) ||
        num(g, sec, "joules_per_gop", e.joules_per_gop, 0, 1e9, &e.joules_per_gop, err, errlen)) {
        return -1;
    }
    if (sat) {
        if (num(g, sec, "battery_cost", e.battery_cost, 0, 1e9, &e.battery_cost, err, errlen)) {
            return -1;
        }
    } else {
        if (num(g, sec, "queue_ms", q, 0, 1e9, &q, err, errlen) ||
            num(g, sec, "pue", pue, 1, 10, &pue, err, errlen) ||
            num(g, sec, "price_per_kwh", e.price_per_kwh, 0, 1e9, &e.price_per_kwh, err, errlen) ||
            num(g, sec, "carbon_g_per_kwh", e.carbon_g_per_kwh, 0, 1e9, &e.carbon_g_per_kwh, err,
                errlen)) {
            return -1;
        }
        e.pue = pue;
        int line = 0;
        const char *power = sr_config_get(g->cfg, sec, "power", &line);
        if (power && strcmp(power, "grid") && strcmp(power, "pv")) {
            snprintf(err, errlen, "%s:%d: [%s] power: grid or pv, not '%s'", g->cfg->path, line,
                     sec, power);
            return -1;
        }
        e.pv = power && !strcmp(power, "pv");
    }
    if (sr_router_set_link(g->router, idx, up, down, q) != 0 ||
        sr_router_set_energy(g->router, idx, &e) != 0) {
        snprintf(err, errlen, "%s:%d: [%s]: invalid link or energy profile", g->cfg->path,
                 t->cfg->line, sec);
        return -1;
    }
    return 0;
}

int gw_route_init(struct gw *g, char *err, size_t errlen)
{
    g->route = calloc(1, sizeof(*g->route));
    if (!g->route) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    if (load_policy(g, err, errlen) != 0) {
        return -1;
    }
    for (size_t i = 0; i < g->ntargets; i++) {
        if (load_target(g, &g->targets[i], err, errlen) != 0) {
            return -1;
        }
    }
    return 0;
}

void gw_route_free(struct gw *g)
{
    if (g->route) {
        free(g->route);
        g->route = NULL;
    }
}

/* ---- GET /v1/route --------------------------------------------------------------------- */

/* 0 when |key| is absent (|*out| untouched) or parsed within [lo, hi]; -1
 * when it is there but unusable (not a number in range, too long, or holding
 * a %00). */
static int qnum(const char *path, const char *key, double lo, double hi, double *out)
{
    char v[64];
    int rv = sr_query_get(path, key, v, sizeof(v));
    if (rv == SR_ERR_NOTFOUND) {
        return 0;
    }
    double d;
    if (rv != 0 || sr_parse_double(&d, v, strlen(v)) != 0 || d < lo || d > hi) {
        return -1;
    }
    *out = d;
    return 0;
}

static void explain(struct gw *g, sr_req *req)
{
    const char *path = sr_req_path(req);
    double work = 0, bytes = 0, rbytes = 0, deadline = (double)g->cfg->default_deadline_ms;
    const char *bad = NULL;
    if (qnum(path, "work", 0, 1e12, &work)) {
        bad = "work";
    } else if (qnum(path, "bytes", 0, 1e15, &bytes)) {
        bad = "bytes";
    } else if (qnum(path, "result_bytes", 0, 1e15, &rbytes)) {
        bad = "result_bytes";
    } else if (qnum(path, "deadline_ms", 1, (double)g->cfg->max_deadline_ms, &deadline)) {
        bad = "deadline_ms";
    }
    struct sr_workload w;
    memset(&w, 0, sizeof(w));
    char place[128] = "", fmt[16] = "", async[8] = "";
    int rp = sr_query_get(path, "place", place, sizeof(place));
    int rd = sr_query_get(path, "data_at", w.data_at, sizeof(w.data_at));
    int rf = sr_query_get(path, "format", fmt, sizeof(fmt));
    int ra = sr_query_get(path, "async", async, sizeof(async));
    /* present but unusable is refused, never taken as absent */
    if (!bad && rp != SR_ERR_NOTFOUND && (rp != 0 || sr_place_parse(&w, place) != 0)) {
        bad = "place";
    }
    if (!bad && rd != SR_ERR_NOTFOUND && (rd != 0 || sr_router_find(g->router, w.data_at) < 0)) {
        bad = "data_at";
    }
    if (!bad && rf != SR_ERR_NOTFOUND &&
        (rf != 0 || (strcmp(fmt, "json") != 0 && strcmp(fmt, "text") != 0))) {
        bad = "format";
    }
    if (!bad && ra != SR_ERR_NOTFOUND && ra != 0) {
        bad = "async";
    }
    if (bad) {
        char d[128];
        snprintf(d, sizeof(d), "{\"parameter\":\"%s\"}", bad);
        sr_req_respond_error(req, 400, "bad query parameter", d);
        return;
    }
    /* &async=1: as for prefer: respond-async (plans may wait for a window, or
     * leave through another station's pass) */
    w.store_and_forward = ra == 0 && strcmp(async, "0") != 0 && strcmp(async, "false") != 0;
    int64_t now = sr_now_ms();
    w.work_gop = work;
    w.bytes_in = (int64_t)bytes;
    w.result_bytes = (int64_t)rbytes;
    w.deadline_ms = now + (int64_t)deadline;
    struct sr_candidate *c = calloc(MAX_CANDS, sizeof(*c));
    if (!c) {
        sr_req_respond_error(req, 503, "out of memory", NULL);
        return;
    }
    size_t n = sr_router_rank(g->router, &w, now, c, MAX_CANDS);
    sr_buf b;
    sr_buf_init(&b, 8u << 20);
    bool text = !strcmp(fmt, "text");
    int rv = text ? sr_explain_text(&b, g->router, &w, now, c, n)
                  : sr_explain_json(&b, g->router, &w, now, c, n);
    free(c);
    if (rv != 0) {
        sr_buf_free(&b);
        sr_req_respond_error(req, 503, "cannot render the explanation", NULL);
        return;
    }
    const struct sr_http_header h[] = {
        {"content-type", text ? "text/plain; charset=utf-8" : "application/json"},
        {"cache-control", "no-store"},
    };
    sr_req_respond(req, 200, h, 2, b.data ? (const void *)b.data : "", b.len, false);
    sr_buf_free(&b);
}

/* ---- PUT /v1/targets/ID/energy -------------------------------------------------------- */

static void energy_feed(struct gw *g, sr_req *req, const char *id)
{
    int idx = sr_router_find(g->router, id);
    if (idx < 0) {
        gw_feeds_count(g, "energy", "refused", "unknown_target");
        sr_req_respond_error(req, 404, "no such target", NULL);
        return;
    }
    /* the signature covers the path, which names the target: a forecast signed for one
     * target does not verify for another, and the operator must be scoped to this one */
    const char *who = gw_feeds_authenticate(g, req, "energy", id);
    if (!who) {
        return;
    }
    size_t len;
    const uint8_t *body = sr_req_body(req, &len);
    json_error_t je;
    json_t *root = json_loadb((const char *)body, len, 0, &je);
    json_t *pts = root ? json_object_get(root, "points") : NULL;
    if (!json_is_array(pts) || json_array_size(pts) > MAX_ENERGY_POINTS) {
        json_decref(root);
        gw_feeds_count(g, "energy", "refused", "malformed");
        sr_req_respond_error(req, 400, "expected {\"points\": [...]} (at most 100000)", NULL);
        return;
    }
    size_t n = json_array_size(pts);
    struct sr_energy_point *p = calloc(n ? n : 1, sizeof(*p));
    if (!p) {
        json_decref(root);
        sr_req_respond_error(req, 503, "out of memory", NULL);
        return;
    }
    char err[160] = "";
    for (size_t i = 0; i < n && !err[0]; i++) {
        json_t *o = json_array_get(pts, i);
        json_t *t = json_object_get(o, "t");
        json_t *pr = json_object_get(o, "price_per_kwh");
        json_t *co = json_object_get(o, "carbon_g_per_kwh");
        json_t *pv = json_object_get(o, "pv_surplus_w");
        if (!json_is_string(t) || sr_time_parse(&p[i].t_ms, json_string_value(t), (size_t)-1)) {
            snprintf(err, sizeof(err), "points[%zu].t: expected an RFC 3339 time", i);
            break;
        }
        p[i].price_per_kwh = pr ? json_number_value(pr) : NAN;
        p[i].carbon_g_per_kwh = co ? json_number_value(co) : NAN;
        p[i].pv_surplus_w = pv ? json_number_value(pv) : 0;
        if ((pr && !json_is_number(pr)) || (co && !json_is_number(co)) ||
            (pv && !json_is_number(pv))) {
            snprintf(err, sizeof(err), "points[%zu]: values must be numbers", i);
        }
    }
    json_decref(root);
    if (!err[0]) {
        int rv = sr_router_set_energy_series(g->router, (size_t)idx, p, n);
        if (rv == SR_ERR_INVAL) {
            snprintf(err, sizeof(err), "points must have increasing times and non-negative values");
        } else if (rv) {
            free(p);
            sr_req_respond_error(req, 503, "out of memory", NULL);
            return;
        }
    }
    free(p);
    if (err[0]) {
        char d[300];
        sr_buf b;
        sr_buf_init(&b, sizeof(d));
        int e = sr_buf_append(&b, "{\"why\":", 7);
        e = e ? e : sr_buf_append_json_str(&b, err, strlen(err));
        e = e ? e : sr_buf_append(&b, "}", 1);
        e = e ? e : sr_buf_terminate(&b);
        gw_feeds_count(g, "energy", "refused", "unusable");
        sr_req_respond_error(req, 422, "energy forecast refused", e ? NULL : (const char *)b.data);
        sr_buf_free(&b);
        return;
    }
    gw_feeds_count(g, "energy", "accepted", "ok");
    sr_log(SR_LOG_INFO, "energy forecast for %s: %zu points from operator %s", id, n, who);
    char out[200];
    int olen = snprintf(out, sizeof(out), "{\"accepted\":%zu,\"target\":\"%s\"}", n, id);
    const struct sr_http_header h[] = {{"content-type", "application/json"}};
    sr_req_respond(req, 200, h, 1, out, (size_t)olen, false);
}

bool gw_route_handle(struct gw *g, sr_req *req)
{
    const char *path = sr_req_path(req);
    const char *method = sr_req_method(req);
    if (!strncmp(path, "/v1/route", 9) && (path[9] == 0 || path[9] == '?')) {
        if (strcmp(method, "GET") != 0) {
            sr_req_respond_error(req, 405, "GET only", NULL);
        } else {
            explain(g, req);
        }
        return true;
    }
    static const char pre[] = "/v1/targets/";
    size_t pl = sizeof(pre) - 1;
    const char *tail = strstr(path, "/energy");
    if (!strncmp(path, pre, pl) && tail && tail > path + pl && !strcmp(tail, "/energy")) {
        char id[SR_TARGET_IDMAX];
        size_t n = (size_t)(tail - (path + pl));
        if (n >= sizeof(id)) {
            sr_req_respond_error(req, 404, "no such target", NULL);
            return true;
        }
        memcpy(id, path + pl, n);
        id[n] = 0;
        if (strcmp(method, "PUT") != 0) {
            sr_req_respond_error(req, 405, "PUT only", NULL);
        } else {
            energy_feed(g, req, id);
        }
        return true;
    }
    return false;
}

bool gw_route_reload(struct gw *g, struct sr_config *cfg)
{
    if (!g->route) {
        return true;
    }
    /* the loaders read g->cfg: point it at the freshly loaded file meanwhile */
    struct sr_config *saved = g->cfg;
    g->cfg = cfg;
    char err[600];
    int rv = load_policy(g, err, sizeof(err));
    for (size_t i = 0; rv == 0 && i < g->ntargets; i++) {
        rv = load_target(g, &g->targets[i], err, sizeof(err));
    }
    g->cfg = saved;
    if (rv != 0) {
        sr_log(SR_LOG_ERROR, "policy reload stopped at an error: %s", err);
        sr_metrics_add(g->metrics, "skyroute_reloads_total", "part=\"policy\",outcome=\"failed\"",
                       1);
        return false;
    }
    sr_log(SR_LOG_INFO, "policy and target profiles reloaded");
    sr_metrics_add(g->metrics, "skyroute_reloads_total", "part=\"policy\",outcome=\"ok\"", 1);
    return true;
}
