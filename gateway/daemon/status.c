/*
 * skyrouted part: what an operator sees.
 *
 *   - the access log: JSON lines on standard output (journald keeps them),
 *     one per workload request it is asked to keep, with the envelope id that
 *     ties it to the target's side, the chosen target, predicted and actual
 *     time. At full load that is 100,000 lines a second, more than journald
 *     keeps (10,000 per 30 s by default) or a disk wants, so [gateway]
 *     access_log picks which: off, errors (status >= 400: the default),
 *     sampled (errors and one in access_log_sample of the rest) or all; and
 *     access_log_rate caps the lines per second (default 100), counting the
 *     rest in skyroute_access_log_dropped_total. Every request is still
 *     counted in skyroute_requests_total;
 *   - GET /status on the admin listener: one self-contained HTML page (inline
 *     CSS and SVG, no scripts, no external assets) with the targets, the pass
 *     timeline of the next hours and where recent workloads went;
 *   - gauges refreshed every second (passes in view; each target's state as
 *     the router sees it: up, ejected, observed round trip).
 *
 * Standard output is block-buffered and flushed by a timer, so logging costs
 * a formatted line per request, not a system call.
 */
#include "gateway/daemon/daemon.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RECENT 64
#define TIMELINE_H 6 /* hours shown */

enum access_mode { ACCESS_OFF, ACCESS_ERRORS, ACCESS_SAMPLED, ACCESS_ALL };

struct recent {
    int64_t t_ms;
    char id[33];
    char target[SR_TARGET_IDMAX];
    char kind[12];
    char handler[64];
    int status;
    double predicted_ms, elapsed_ms;
};

struct gw_status {
    struct recent ring[RECENT];
    size_t next, count;
    struct event *tick;
    sr_buf line;    /* the access log line, kept across calls: no allocation per line */
    int64_t ts_sec; /* the second ts_prefix was formatted for */
    char ts_prefix[SR_RFC3339_LEN]; /* "YYYY-MM-DDTHH:MM:SS." of ts_sec */
    enum access_mode mode;          /* [gateway] access_log */
    uint64_t sample, sample_n;      /* access_log_sample, and the answers below 400 seen */
    uint64_t rate, rate_n;          /* access_log_rate (0: no cap), and lines in rate_sec */
    int64_t rate_sec;
};

static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct gw *g = arg;
    fflush(stdout);
    int64_t now = sr_now_ms();
    size_t in_view = sr_router_passes(g->router, NULL, now, now + 1, NULL, 0);
    sr_metrics_set(g->metrics, "skyroute_passes_in_view", "", (double)in_view);
    for (size_t i = 0; i < g->ntargets; i++) {
        const struct sr_target_cfg *t = g->targets[i].cfg;
        char labels[160];
        snprintf(labels, sizeof(labels), "target=\"%s\"", t->id);
        sr_metrics_set(g->metrics, "skyroute_target_bodies_waiting", labels,
                       (double)sr_h2_pool_waiting(g->pool, t->url));
        /* down: ejected, or as many failures in a row as eject it (once the
         * ejection has run out it stays down until a dispatch succeeds) */
        struct sr_target_state st;
        sr_router_state(g->router, (size_t)g->targets[i].router_idx, now, &st);
        bool ejected = st.ejected_until > now;
        bool up = !ejected && st.consecutive_failures < SR_ROUTER_EJECT_AFTER;
        sr_metrics_set(g->metrics, "skyroute_target_up", labels, up ? 1 : 0);
        sr_metrics_set(g->metrics, "skyroute_target_ejected", labels, ejected ? 1 : 0);
        sr_metrics_set(g->metrics, "skyroute_target_rtt_seconds", labels, st.ewma_ms / 1000.0);
        sr_metrics_set(g->metrics, "skyroute_target_busy", labels,
                       g->targets[i].busy_until > now ? 1 : 0);
    }
}

/* [gateway] access_log, access_log_sample and access_log_rate into |s|. */
static int access_config(const struct sr_config *cfg, struct gw_status *s, char *err, size_t errlen)
{
    static const char *const modes[] = {"off", "errors", "sampled", "all"};
    int line = 0;
    const char *v = sr_config_get(cfg, "gateway", "access_log", &line);
    s->mode = ACCESS_ERRORS;
    if (v) {
        size_t k = 0;
        while (k < 4 && strcmp(v, modes[k]) != 0) {
            k++;
        }
        if (k == 4) {
            snprintf(err, errlen,
                     "%s:%d: 'access_log' must be off, errors, sampled or all, not '%.40s'",
                     cfg->path, line, v);
            return SR_ERR_CONFIG;
        }
        s->mode = (enum access_mode)k;
    }
    double sample = 100, rate = 100;
    int rv = sr_config_num(cfg, "gateway", "access_log_sample", 100, 1, 1e9, &sample, err, errlen);
    if (rv == 0) {
        rv = sr_config_num(cfg, "gateway", "access_log_rate", 100, 0, 1e9, &rate, err, errlen);
    }
    s->sample = (uint64_t)sample;
    s->rate = (uint64_t)rate;
    s->rate_sec = INT64_MIN;
    return rv;
}

int gw_status_init(struct gw *g, char *err, size_t errlen)
{
    g->started_ms = sr_now_ms();
    struct gw_status probe;
    if (g->check_only) {
        return access_config(g->cfg, &probe, err, errlen);
    }
    struct gw_status *s = calloc(1, sizeof(*s));
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return SR_ERR_NOMEM;
    }
    g->status = s;
    int rv = access_config(g->cfg, s, err, errlen);
    if (rv) {
        return rv;
    }
    sr_buf_init(&s->line, 4096);
    s->ts_sec = INT64_MIN;
    static char outbuf[1 << 16];
    setvbuf(stdout, outbuf, _IOFBF, sizeof(outbuf));
    sr_metrics_describe(g->metrics, "skyroute_passes_in_view", "gauge",
                        "Satellite passes over this station in progress now.");
    sr_metrics_describe(g->metrics, "skyroute_target_bodies_waiting", "gauge",
                        "Workloads above 16 KiB waiting for one of the 8 send slots of the "
                        "connection to a target (earliest deadline first).");
    sr_metrics_describe(g->metrics, "skyroute_target_up", "gauge",
                        "1 unless the target is ejected or its last dispatches failed as many "
                        "times in a row as eject it.");
    sr_metrics_describe(g->metrics, "skyroute_target_ejected", "gauge",
                        "1 while the router keeps the target out after repeated failures.");
    sr_metrics_describe(g->metrics, "skyroute_target_rtt_seconds", "gauge",
                        "Observed round trip to the target (peak-EWMA of overhead latency; the "
                        "configured rtt_ms before any dispatch).");
    /* satellite work may wait for a pass: errors reach minutes */
    sr_metrics_histogram(g->metrics, "skyroute_prediction_error_seconds",
                         "|actual - predicted| completion time of successful workloads.",
                         &sr_buckets_duration);
    sr_metrics_describe(g->metrics, "skyroute_routing_choices_total", "counter",
                        "Workloads sent, by target kind.");
    sr_metrics_add(g->metrics, "skyroute_routing_choices_total", "kind=\"idc\"", 0);
    sr_metrics_add(g->metrics, "skyroute_routing_choices_total", "kind=\"satellite\"", 0);
    sr_metrics_describe(g->metrics, "skyroute_access_log_lines_total", "counter",
                        "Access log lines written ([gateway] access_log picks which requests).");
    sr_metrics_describe(g->metrics, "skyroute_access_log_dropped_total", "counter",
                        "Access log lines not written: over [gateway] access_log_rate per second.");
    sr_metrics_describe(g->metrics, "skyroute_target_busy", "gauge",
                        "1 while a target says it is full (503 busy) and gets only probes.");
    sr_metrics_add(g->metrics, "skyroute_access_log_lines_total", "", 0);
    sr_metrics_add(g->metrics, "skyroute_access_log_dropped_total", "", 0);
    s->tick = event_new(g->base, -1, EV_PERSIST, tick_cb, g);
    struct timeval tv = {1, 0};
    if (!s->tick || event_add(s->tick, &tv) != 0) {
        snprintf(err, errlen, "cannot start the status timer");
        return SR_ERR_NOMEM;
    }
    tick_cb(-1, 0, g); /* the gauges from the first scrape on */
    return 0;
}

void gw_status_free(struct gw *g)
{
    if (g->status) {
        if (g->status->tick) {
            event_free(g->status->tick);
        }
        sr_buf_free(&g->status->line);
        free(g->status);
        g->status = NULL;
    }
    fflush(stdout);
}

/* Appends the literal |lit| (a string constant: its length is known at compile time). */
#define APPEND_LIT(b, lit) sr_buf_append((b), (lit), sizeof(lit) - 1)

/* skyroute_routing_choices_total's label set for |kind|: the two kinds there
 * are, without formatting; anything else into |tmp|. */
static const char *kind_labels(const char *kind, char *tmp, size_t tmplen)
{
    if (!strcmp(kind, "idc")) {
        return "kind=\"idc\"";
    }
    if (!strcmp(kind, "satellite")) {
        return "kind=\"satellite\"";
    }
    snprintf(tmp, tmplen, "kind=\"%s\"", kind);
    return tmp;
}

/* skyroute_requests_total's label set for |status|: a constant for the codes
 * this daemon answers with, formatted into |tmp| for any other. */
static const char *code_labels(int status, char *tmp, size_t tmplen)
{
#define CODE(n)                                                                                    \
    case n:                                                                                        \
        return "code=\"" #n "\""
    switch (status) {
        CODE(200);
        CODE(202);
        CODE(400);
        CODE(401);
        CODE(403);
        CODE(404);
        CODE(405);
        CODE(408);
        CODE(409);
        CODE(413);
        CODE(422);
        CODE(429);
        CODE(499);
        CODE(500);
        CODE(502);
        CODE(503);
        CODE(504);
        CODE(507);
    default:
        break;
    }
#undef CODE
    snprintf(tmp, tmplen, "code=\"%d\"", status);
    return tmp;
}

void gw_status_count(struct gw *g, int status)
{
    char tmp[48];
    sr_metrics_add(g->metrics, "skyroute_requests_total", code_labels(status, tmp, sizeof(tmp)), 1);
}

int gw_outcome_status(const struct gw_job_result *r)
{
    switch (r->outcome) {
    case GW_DONE:
        return 200;
    case GW_HANDLER_FAILED:
        return r->handler_status >= 400 && r->handler_status < 500 ? 422 : 502;
    case GW_WAIT:
        return 202;
    case GW_FORWARD:
        return 307;
    case GW_TIMEOUT:
        return 504;
    case GW_LOST:
    case GW_RESULT_DROPPED:
    case GW_REFUSED:
    case GW_BAD_RESULT:
        return 502;
    case GW_NOT_RECORDED:
        return 507;
    case GW_INTERNAL:
        return r->code == SR_ERR_NOMEM ? 503 : 500;
    case GW_NO_TARGET:
    case GW_UNREACHABLE:
    case GW_IN_PROGRESS:
    default:
        return 503;
    }
}

void gw_respond_retry(sr_req *req, int status, const char *msg, const char *detail,
                      int64_t retry_ms)
{
    char ra[24], ms[24];
    retry_ms = retry_ms < 1 ? 1 : retry_ms;
    snprintf(ra, sizeof(ra), "%lld", (long long)((retry_ms + 999) / 1000));
    snprintf(ms, sizeof(ms), "%lld", (long long)retry_ms);
    const struct sr_http_header h[] = {
        {"content-type", "application/json"}, {"retry-after", ra}, {"skyroute-retry-after-ms", ms}};
    sr_buf b;
    sr_buf_init(&b, 1 << 20);
    if (sr_error_body(&b, msg, detail) == 0) {
        sr_req_respond(req, status, h, 3, b.data, b.len, true);
    } else {
        sr_buf_free(&b);
        sr_req_respond(req, status, h, 3, "{\"error\":\"internal\"}\n", 21, false);
    }
}

void gw_status_refuse(struct gw *g, sr_req *req, int status, const char *msg, const char *detail)
{
    gw_status_count(g, status);
    sr_req_respond_error(req, status, msg, detail);
}

/* Is |ev| one the access log keeps, within its rate? Counts what it drops. */
static bool access_wanted(struct gw *g, struct gw_status *s, const struct gw_event *ev)
{
    bool want = s->mode == ACCESS_ALL || (s->mode != ACCESS_OFF && ev->status >= 400);
    if (!want && s->mode == ACCESS_SAMPLED) {
        want = s->sample_n++ % s->sample == 0; /* the first, then every Nth */
    }
    if (!want || s->rate == 0) {
        return want;
    }
    int64_t sec = ev->t_ms / 1000;
    if (sec != s->rate_sec) {
        s->rate_sec = sec;
        s->rate_n = 0;
    }
    if (s->rate_n >= s->rate) {
        sr_metrics_add(g->metrics, "skyroute_access_log_dropped_total", "", 1);
        return false;
    }
    s->rate_n++;
    return true;
}

/* Writes |ev|'s access log line (stdout, block-buffered). */
static void access_line(struct gw *g, struct gw_status *s, const struct gw_event *ev)
{
    /* the date and time are formatted once per second, the milliseconds here */
    char ts[SR_RFC3339_LEN];
    size_t tslen;
    int64_t sec = ev->t_ms >= 0 ? ev->t_ms / 1000 : INT64_MIN;
    if (sec != INT64_MIN && sec == s->ts_sec) {
        unsigned msec = (unsigned)(ev->t_ms % 1000);
        memcpy(ts, s->ts_prefix, 20);
        ts[20] = (char)('0' + msec / 100);
        ts[21] = (char)('0' + msec / 10 % 10);
        ts[22] = (char)('0' + msec % 10);
        ts[23] = 'Z';
        ts[24] = '\0';
        tslen = 24;
    } else {
        int n = sr_time_format(ts, ev->t_ms); /* "" on failure */
        tslen = n > 0 ? (size_t)n : 0;
        if (n == 24 && sec != INT64_MIN) {
            memcpy(s->ts_prefix, ts, 20);
            s->ts_sec = sec;
        }
    }
    /*
     * One line, no printf: it ran for every request. The bytes are those of
     *   {"ts":"%s","id":"%s","peer":JSON,"method":"%s","path":JSON,"status":%d,
     *   "handler":JSON,"target":JSON,"kind":"%s","predicted_ms":%.1f,
     *   "elapsed_ms":%.1f,"bytes_in":%zu,"attempts":%d}\n
     * (tests/integration checks them; sr_buf_append_fixed1 rounds as %.1f).
     */
    sr_buf *b = &s->line;
    sr_buf_reset(b);
    int rv = APPEND_LIT(b, "{\"ts\":\"");
    rv = rv ? rv : sr_buf_append(b, ts, tslen);
    rv = rv ? rv : APPEND_LIT(b, "\",\"id\":\"");
    rv = rv ? rv : sr_buf_append_str(b, ev->id);
    rv = rv ? rv : APPEND_LIT(b, "\",\"peer\":");
    rv = rv ? rv : sr_buf_append_json_str(b, ev->peer, strlen(ev->peer));
    rv = rv ? rv : APPEND_LIT(b, ",\"method\":\"");
    rv = rv ? rv : sr_buf_append_str(b, ev->method);
    rv = rv ? rv : APPEND_LIT(b, "\",\"path\":");
    rv = rv ? rv : sr_buf_append_json_str(b, ev->path, strlen(ev->path));
    rv = rv ? rv : APPEND_LIT(b, ",\"status\":");
    rv = rv ? rv : sr_buf_append_i64(b, ev->status);
    rv = rv ? rv : APPEND_LIT(b, ",\"handler\":");
    rv = rv ? rv : sr_buf_append_json_str(b, ev->handler, strlen(ev->handler));
    rv = rv ? rv : APPEND_LIT(b, ",\"target\":");
    rv = rv ? rv : sr_buf_append_json_str(b, ev->target, strlen(ev->target));
    rv = rv ? rv : APPEND_LIT(b, ",\"kind\":\"");
    rv = rv ? rv : sr_buf_append_str(b, ev->kind);
    rv = rv ? rv : APPEND_LIT(b, "\",\"predicted_ms\":");
    rv = rv ? rv : sr_buf_append_fixed1(b, ev->predicted_ms);
    rv = rv ? rv : APPEND_LIT(b, ",\"elapsed_ms\":");
    rv = rv ? rv : sr_buf_append_fixed1(b, ev->elapsed_ms);
    rv = rv ? rv : APPEND_LIT(b, ",\"bytes_in\":");
    rv = rv ? rv : sr_buf_append_u64(b, ev->bytes_in);
    rv = rv ? rv : APPEND_LIT(b, ",\"attempts\":");
    rv = rv ? rv : sr_buf_append_i64(b, ev->attempts);
    rv = rv ? rv : APPEND_LIT(b, "}\n");
    if (rv == 0) {
        fwrite(b->data, 1, b->len, stdout);
        sr_metrics_add(g->metrics, "skyroute_access_log_lines_total", "", 1);
    }
}

void gw_status_record(struct gw *g, const struct gw_event *ev)
{
    struct gw_status *s = g->status;
    if (!s) {
        return;
    }
    if (access_wanted(g, s, ev)) {
        access_line(g, s, ev);
    }

    struct recent *r = &s->ring[s->next];
    s->next = (s->next + 1) % RECENT;
    if (s->count < RECENT) {
        s->count++;
    }
    r->t_ms = ev->t_ms;
    sr_str_copy(r->id, sizeof(r->id), ev->id);
    sr_str_copy(r->target, sizeof(r->target), ev->target);
    sr_str_copy(r->kind, sizeof(r->kind), ev->kind);
    sr_str_copy(r->handler, sizeof(r->handler), ev->handler);
    r->status = ev->status;
    r->predicted_ms = ev->predicted_ms;
    r->elapsed_ms = ev->elapsed_ms;
    if (ev->target[0]) {
        char tmp[48];
        sr_metrics_add(g->metrics, "skyroute_routing_choices_total",
                       kind_labels(ev->kind, tmp, sizeof(tmp)), 1);
    }
    if (ev->status == 200) {
        double e = ev->elapsed_ms - ev->predicted_ms;
        sr_metrics_observe(g->metrics, "skyroute_prediction_error_seconds", "",
                           (e < 0 ? -e : e) / 1000.0);
    }
}

/* ---- the page ------------------------------------------------------------------------ */

static int html_text(sr_buf *b, const char *s)
{
    int rv = 0;
    for (; *s && rv == 0; s++) {
        switch (*s) {
        case '<':
            rv = sr_buf_append(b, "&lt;", 4);
            break;
        case '>':
            rv = sr_buf_append(b, "&gt;", 4);
            break;
        case '&':
            rv = sr_buf_append(b, "&amp;", 5);
            break;
        case '"':
            rv = sr_buf_append(b, "&quot;", 6);
            break;
        default:
            rv = sr_buf_append(b, s, 1);
            break;
        }
    }
    return rv;
}

static const char page_head[] =
    "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
    "<meta http-equiv=\"refresh\" content=\"10\">"
    "<title>skyroute</title><style>"
    "body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#1b2330;background:#f6f7f9}"
    "h1{font-size:1.3em;margin:0 0 .2em}h2{font-size:1.05em;margin:1.4em 0 .4em}"
    ".sub{color:#5b6573}table{border-collapse:collapse;background:#fff}"
    "td,th{padding:.25em .7em;border-bottom:1px solid #e3e6ea;text-align:left}"
    "th{background:#eef1f5}.ok{color:#17803d}.bad{color:#b42318}"
    "svg{background:#fff;border:1px solid #e3e6ea}.pass{fill:#3b82f6}.pass.now{fill:#16a34a}"
    ".lbl{font-size:12px;fill:#1b2330}.tick{font-size:11px;fill:#5b6573}"
    "</style></head><body>\n";

static int page_targets(struct gw *g, sr_buf *b, int64_t now)
{
    int rv = sr_buf_appendf(b, "<h2>Targets</h2><table id=\"targets\"><tr><th>target</th>"
                               "<th>kind</th><th>observed ms</th><th>in flight</th>"
                               "<th>ok</th><th>failed</th><th>state</th></tr>\n");
    for (size_t i = 0; rv == 0 && i < g->ntargets; i++) {
        struct target_rt *t = &g->targets[i];
        struct sr_target_state st;
        sr_router_state(g->router, (size_t)t->router_idx, now, &st);
        bool ej = st.ejected_until > now;
        rv = sr_buf_append(b, "<tr><td>", 8);
        rv = rv ? rv : html_text(b, t->cfg->id);
        rv = rv ? rv
                : sr_buf_appendf(b,
                                 "</td><td>%s</td><td>%.1f</td><td>%u</td><td>%llu</td>"
                                 "<td>%llu</td><td class=\"%s\">%s</td></tr>\n",
                                 t->cfg->kind == SR_TARGET_IDC ? "idc" : "satellite", st.ewma_ms,
                                 st.inflight, (unsigned long long)st.successes,
                                 (unsigned long long)st.failures, ej ? "bad" : "ok",
                                 ej                    ? "ejected"
                                 : t->busy_until > now ? "busy (probed)"
                                                       : "ready");
    }
    return rv ? rv : sr_buf_append(b, "</table>\n", 9);
}

static int page_timeline(struct gw *g, sr_buf *b, int64_t now)
{
    const int64_t span = (int64_t)TIMELINE_H * 3600 * 1000;
    const int left = 130, width = 720, rowh = 22;
    /* rows: every satellite target, plus satellites that only appear in passes */
    size_t total = sr_router_passes(g->router, NULL, now, now + span, NULL, 0);
    struct sr_pass_rec *p = calloc(total ? total : 1, sizeof(*p));
    if (!p) {
        return SR_ERR_NOMEM;
    }
    total = sr_router_passes(g->router, NULL, now, now + span, p, total);
    const char *rows[256];
    size_t nrows = 0;
    for (size_t i = 0; i < g->ntargets && nrows < 256; i++) {
        if (g->targets[i].cfg->kind == SR_TARGET_SATELLITE) {
            rows[nrows++] = g->targets[i].cfg->id;
        }
    }
    for (size_t i = 0; i < total && nrows < 256; i++) {
        bool seen = false;
        for (size_t r = 0; r < nrows && !seen; r++) {
            seen = !strcmp(rows[r], p[i].sat);
        }
        if (!seen) {
            rows[nrows++] = p[i].sat;
        }
    }
    int height = (int)(nrows ? nrows : 1) * rowh + 30;
    int rv = sr_buf_appendf(b,
                            "<h2>Passes, next %d hours</h2>"
                            "<svg id=\"timeline\" width=\"%d\" height=\"%d\" "
                            "xmlns=\"http://www.w3.org/2000/svg\">\n",
                            TIMELINE_H, left + width + 40, height);
    for (int h = 0; rv == 0 && h <= TIMELINE_H; h++) {
        int x = left + width * h / TIMELINE_H;
        char ts[SR_RFC3339_LEN];
        sr_time_format(ts, now + (int64_t)h * 3600000);
        rv = sr_buf_appendf(b,
                            "<line x1=\"%d\" y1=\"0\" x2=\"%d\" y2=\"%d\" stroke=\"#e3e6ea\"/>"
                            "<text class=\"tick\" x=\"%d\" y=\"%d\">%.5s</text>\n",
                            x, x, height - 18, x - 14, height - 4, ts + 11);
    }
    for (size_t r = 0; rv == 0 && r < nrows; r++) {
        int y = (int)r * rowh + 4;
        rv = sr_buf_appendf(b, "<text class=\"lbl\" x=\"4\" y=\"%d\">", y + 14);
        rv = rv ? rv : html_text(b, rows[r]);
        rv = rv ? rv : sr_buf_append(b, "</text>\n", 8);
        for (size_t i = 0; rv == 0 && i < total; i++) {
            if (strcmp(p[i].sat, rows[r]) != 0) {
                continue;
            }
            int64_t a = p[i].aos_ms < now ? now : p[i].aos_ms;
            int64_t z = p[i].los_ms > now + span ? now + span : p[i].los_ms;
            double x0 = left + (double)(a - now) / (double)span * width;
            double w = (double)(z - a) / (double)span * width;
            char aos[SR_RFC3339_LEN], los[SR_RFC3339_LEN];
            sr_time_format(aos, p[i].aos_ms);
            sr_time_format(los, p[i].los_ms);
            bool in_view = p[i].aos_ms <= now && now < p[i].los_ms;
            rv = sr_buf_appendf(b,
                                "<rect class=\"pass%s\" x=\"%.1f\" y=\"%d\" width=\"%.1f\" "
                                "height=\"%d\"><title>",
                                in_view ? " now" : "", x0, y, w < 2 ? 2 : w, rowh - 6);
            rv = rv ? rv : html_text(b, p[i].sat);
            rv = rv ? rv
                    : sr_buf_appendf(b, " AOS %s LOS %s max %.0f deg (%s)</title></rect>\n", aos,
                                     los, p[i].max_el_deg, p[i].source);
        }
    }
    free(p);
    if (rv == 0 && nrows == 0) {
        rv = sr_buf_appendf(b, "<text class=\"lbl\" x=\"4\" y=\"16\">no satellite passes "
                               "known</text>\n");
    }
    return rv ? rv : sr_buf_append(b, "</svg>\n", 7);
}

static int page_recent(struct gw *g, sr_buf *b)
{
    struct gw_status *s = g->status;
    int rv = sr_buf_appendf(b, "<h2>Recent workloads</h2><table id=\"recent\"><tr><th>time</th>"
                               "<th>id</th><th>handler</th><th>target</th><th>status</th>"
                               "<th>predicted ms</th><th>elapsed ms</th></tr>\n");
    for (size_t k = 0; rv == 0 && k < s->count; k++) {
        const struct recent *r = &s->ring[(s->next + RECENT - 1 - k) % RECENT];
        char ts[SR_RFC3339_LEN];
        sr_time_format(ts, r->t_ms);
        rv = sr_buf_appendf(b, "<tr class=\"workload\"><td>%s</td><td>%.12s</td><td>", ts + 11,
                            r->id);
        rv = rv ? rv : html_text(b, r->handler);
        rv = rv ? rv : sr_buf_append(b, "</td><td>", 9);
        rv = rv ? rv : html_text(b, r->target[0] ? r->target : "-");
        rv = rv ? rv
                : sr_buf_appendf(b,
                                 " <span class=\"sub\">%s</span></td><td class=\"%s\">%d</td>"
                                 "<td>%.0f</td><td>%.0f</td></tr>\n",
                                 r->kind, r->status == 200 ? "ok" : "bad", r->status,
                                 r->predicted_ms, r->elapsed_ms);
    }
    return rv ? rv : sr_buf_append(b, "</table>\n", 9);
}

bool gw_status_handle(struct gw *g, sr_req *req)
{
    const char *path = sr_req_path(req);
    size_t plen = strcspn(path, "?");
    if (!((plen == 7 && !strncmp(path, "/status", 7)) || (plen == 1 && path[0] == '/'))) {
        return false;
    }
    if (!g->status) {
        return false;
    }
    int64_t now = sr_now_ms();
    sr_buf b;
    sr_buf_init(&b, 8u << 20);
    char ts[SR_RFC3339_LEN];
    sr_time_format(ts, now);
    int rv = sr_buf_append(&b, page_head, sizeof(page_head) - 1);
    rv = rv ? rv : sr_buf_append(&b, "<h1>skyroute gateway ", 21);
    rv = rv ? rv : html_text(&b, g->cfg->id);
    rv =
        rv ? rv
           : sr_buf_appendf(&b,
                            "</h1><div class=\"sub\">version %s &middot; %s UTC &middot; up "
                            "%lld s &middot; %zu targets</div>\n",
                            SR_VERSION, ts, (long long)((now - g->started_ms) / 1000), g->ntargets);
    rv = rv ? rv : page_targets(g, &b, now);
    rv = rv ? rv : page_timeline(g, &b, now);
    rv = rv ? rv : page_recent(g, &b);
    rv = rv ? rv : sr_buf_append(&b, "</body></html>\n", 15);
    if (rv != 0) {
        sr_buf_free(&b);
        sr_req_respond_error(req, 503, "cannot render the status page", NULL);
        return true;
    }
    static const struct sr_http_header h[] = {{"content-type", "text/html; charset=utf-8"},
                                              {"cache-control", "no-store"}};
    sr_req_respond(req, 200, h, 2, b.data, b.len, true);
    return true;
}
