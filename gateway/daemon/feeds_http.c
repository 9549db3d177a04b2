/*
 * skyrouted part: the operator feeds' endpoints (DESIGN sections 6 and 7).
 *
 *   PUT /v1/passes     a signed pass schedule (skyroute JSON, AWS Ground
 *                      Station contacts, SatNOGS observations, ION contact
 *                      plan; routing/feeds.c detects and parses them)
 *   PUT /v1/elements   signed orbital elements (TLE, OMM JSON/CSV/XML/KVN);
 *                      the gateway predicts this station's passes from them
 *   GET /v1/passes     ?sat=ID&from=TIME&to=TIME: what the router believes
 *   GET /v1/targets    every target with its state: in view or not, the pass
 *                      in progress and the next one, observed latency, failures
 *
 * Trust. An upload carries a v2 skyroute-signature (crypto.h: the method,
 * path, query, content type, this station's id, a time and a nonce, and the
 * body's digest) from an [operator.NAME] key (feeds_config.c); it is
 * verified before the body is parsed. Unsigned, malformed or v1 header,
 * unknown key, bad signature, a time outside [gateway] signature_window_s or
 * a nonce already used: 401. Signed for another station, or naming a
 * satellite the operator does not speak for: 403. An element set older than
 * the stored one: 409, unless the signed query says force=1. Nothing is
 * stored on any refusal. Energy forecasts (route.c) authenticate here too.
 *
 * Order of an upload: verify -> parse (whole body, or refuse naming the
 * index/line and field) -> authorise every satellite -> one store transaction
 * -> the router (feeds.c rebuilds each satellite touched from the store).
 */
#include "gateway/daemon/feeds_int.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_LIST_MS (7 * 86400 * 1000LL) /* GET /v1/passes without &to= */
#define MAX_LIST 100000

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

#define MAX_NONCES 100000 /* nonces held at once: far above any operator's upload rate */

/* A refusal of the signature header: |status|, the metric |reason|, and the
 * verifier's |why| in the details. */
static void refuse_sig(struct gw_feeds *f, sr_req *req, const char *kind, int status,
                       const char *reason, const char *msg, int code, const char *why)
{
    sr_buf d;
    sr_buf_init(&d, 1024);
    int e = sr_buf_appendf(
        &d, "{\"header\":\"skyroute-signature\",\"code\":\"%s\",\"why\":", sr_errname(code));
    e = e ? e : sr_buf_append_json_str(&d, why, strlen(why));
    e = e ? e : sr_buf_append(&d, "}", 1);
    e = e ? e : sr_buf_terminate(&d);
    refuse(f, req, kind, status, reason, msg, e ? NULL : (const char *)d.data);
    sr_buf_free(&d);
}

/* Verifies the v2 signature of |req| for this station, its time and its
 * nonce; on failure answers (401, 403 for another station's request, 503)
 * and returns NULL. The nonce is claimed last, so only a request that
 * verifies and is fresh can use one up. */
static const struct op_cfg *authenticate(struct gw_feeds *f, sr_req *req, const char *kind,
                                         const uint8_t *body, size_t len)
{
    const char *hdr = sr_req_header(req, "skyroute-signature");
    if (!hdr) {
        refuse(f, req, kind, 401, "unsigned", "unsigned upload",
               "{\"header\":\"skyroute-signature\",\"expected\":\"v2 key=KEYID ts=UNIX nonce=N "
               "station=ID sig=BASE64 (skyroute sign --url)\"}");
        return NULL;
    }
    struct sr_sigreq r = {
        .method = sr_req_method(req),
        .target = sr_req_path(req),
        .content_type = sr_req_header(req, "content-type"),
        .station = f->g->cfg->id,
        .body = body,
        .len = len,
    };
    sr_sighdr h;
    const char *name = NULL;
    char why[300] = "";
    int rv = sr_sighdr_verify(f->ring, hdr, strlen(hdr), &r, &h, &name, why, sizeof(why));
    if (rv) {
        const char *reason = rv == SR_ERR_ENV_UNTRUSTED      ? "unknown_key"
                             : rv == SR_ERR_ENV_BADSIG       ? "bad_signature"
                             : rv == SR_ERR_ENV_MISADDRESSED ? "wrong_station"
                             : rv == SR_ERR_ENV_VERSION      ? "old_signature"
                                                             : "malformed_signature";
        const char *msg =
            rv == SR_ERR_ENV_UNTRUSTED      ? "signed by a key that is not an operator's"
            : rv == SR_ERR_ENV_BADSIG       ? "signature does not verify over this request"
            : rv == SR_ERR_ENV_MISADDRESSED ? "signed for another station"
            : rv == SR_ERR_ENV_VERSION
                ? "signature format not accepted: sign with a current skyroute CLI (sign --url)"
                : "malformed skyroute-signature header";
        refuse_sig(f, req, kind, rv == SR_ERR_ENV_MISADDRESSED ? 403 : 401, reason, msg, rv, why);
        return NULL;
    }
    const struct op_cfg *op = name ? gw_feeds_op(f, name) : NULL;
    if (!op) {
        refuse(f, req, kind, 401, "unknown_key", "signed by a key that is not an operator's", NULL);
        return NULL;
    }
    int64_t now = sr_now_ms();
    int64_t skew = h.ts - now / 1000;
    if (skew > f->window_s || skew < -f->window_s) {
        snprintf(why, sizeof(why),
                 "signed at ts=%lld, %lld s %s the gateway's clock; the window is %lld s",
                 (long long)h.ts, (long long)(skew < 0 ? -skew : skew),
                 skew < 0 ? "behind" : "ahead of", (long long)f->window_s);
        refuse_sig(f, req, kind, 401, "stale", "signed time outside the window", SR_ERR_ENV_EXPIRED,
                   why);
        return NULL;
    }
    /* remembered until the signed time leaves the window: a replay after that is stale */
    rv = sr_store_claim_nonce(f->store, h.keyid, sizeof(h.keyid), h.nonce, now,
                              (h.ts + f->window_s + 1) * 1000, MAX_NONCES);
    if (rv == SR_ERR_EXISTS) {
        snprintf(why, sizeof(why), "nonce %s of operator %s was already used", h.nonce, op->name);
        refuse_sig(f, req, kind, 401, "replayed", "this signed request was already received",
                   SR_ERR_ENV_REPLAY, why);
        return NULL;
    }
    if (rv) {
        refuse(f, req, kind, 503, "store",
               rv == SR_ERR_FULL ? "too many signed uploads in the window"
                                 : "the nonce could not be stored",
               NULL);
        return NULL;
    }
    return op;
}

const char *gw_feeds_authenticate(struct gw *g, sr_req *req, const char *kind, const char *target)
{
    struct gw_feeds *f = g->feeds;
    if (!f || !f->store) {
        sr_req_respond_error(req, 503, "operator uploads are not available", NULL);
        return NULL;
    }
    size_t len;
    const uint8_t *body = sr_req_body(req, &len);
    const struct op_cfg *op = authenticate(f, req, kind, body, len);
    if (op && target && !gw_feeds_op_targets(op, target)) {
        sr_buf d;
        sr_buf_init(&d, 1024);
        int e = sr_buf_append(&d, "{\"operator\":", 12);
        e = e ? e : sr_buf_append_json_str(&d, op->name, strlen(op->name));
        e = e ? e : sr_buf_append(&d, ",\"target\":", 10);
        e = e ? e : sr_buf_append_json_str(&d, target, strlen(target));
        e = e ? e : sr_buf_append(&d, "}", 1);
        e = e ? e : sr_buf_terminate(&d);
        refuse(f, req, kind, 403, "forbidden",
               "the operator may not send forecasts for this target ([operator.NAME] targets)",
               e ? NULL : (const char *)d.data);
        sr_buf_free(&d);
        return NULL;
    }
    return op ? op->name : NULL;
}

void gw_feeds_count(struct gw *g, const char *kind, const char *outcome, const char *reason)
{
    if (g->feeds) {
        count_upload(g->feeds, kind, outcome, reason);
    }
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
    o.lookup = gw_feeds_lookup;
    o.lookup_arg = f;
    const char *path = sr_req_path(req);
    char q[64];
    if (query_time(path, "epoch", &o.epoch_ms) != 0) {
        refuse(f, req, "passes", 400, "malformed", "bad query parameter",
               "{\"param\":\"epoch\",\"expected\":\"RFC 3339 time\"}");
        return;
    }
    int qf = sr_query_get(path, "format", q, sizeof(q));
    if (qf != SR_ERR_NOTFOUND && (qf != 0 || sr_feed_format_parse(&o.format, q) != 0)) {
        refuse(f, req, "passes", 400, "malformed", "bad query parameter",
               "{\"param\":\"format\",\"expected\":\"json, aws, satnogs or ion\"}");
        return;
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
        if (!gw_feeds_op_owns(op, res.spans[i].sat)) {
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
        struct sat_info *s = gw_feeds_sat(f, w[i].sat);
        if (s) {
            (void)gw_feeds_resync(f, s);
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
    const char *format = sr_feed_elements_format((const char *)body, len);
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
        if (!gw_feeds_op_owns(op, f->sats[k].id)) {
            refuse_forbidden(f, req, "elements", op, f->sats[k].id);
            status = 403;
            break;
        }
        if (!pick[k] || els[i].epoch_ms > pick[k]->epoch_ms) {
            pick[k] = &els[i];
        }
    }
    /* an older set would roll the orbit back: only a signed force=1 may (a bad set replaced
     * by a corrected one of an earlier epoch); the query is signed, so force is the operator's */
    char fq[8];
    bool force = sr_query_get(sr_req_path(req), "force", fq, sizeof(fq)) == 0 && !strcmp(fq, "1");
    for (size_t k = 0; status == 0 && !force && k < f->nsats; k++) {
        const sr_elements *cur = pick[k] && f->sats[k].sat ? sr_sat_elements(f->sats[k].sat) : NULL;
        if (cur && pick[k]->epoch_ms < cur->epoch_ms - 1.0) { /* formats round epochs differently */
            char t_new[SR_RFC3339_LEN], t_cur[SR_RFC3339_LEN], d[400];
            (void)sr_time_format(t_new, (int64_t)llround(pick[k]->epoch_ms));
            (void)sr_time_format(t_cur, (int64_t)llround(cur->epoch_ms));
            snprintf(d, sizeof(d),
                     "{\"satellite\":\"%s\",\"epoch\":\"%s\",\"stored_epoch\":\"%s\","
                     "\"override\":\"sign the upload with ?force=1\"}",
                     f->sats[k].id, t_new, t_cur);
            refuse(f, req, "elements", 409, "older_elements",
                   "element set older than the one in use", d);
            status = 409;
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
            gw_feeds_set_orbit(f, s, sats[k], format, now);
            sats[k] = NULL;
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
    if ((qs != 0 && qs != SR_ERR_NOTFOUND) || (has_sat && !gw_feeds_sat(f, sat))) {
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
    const struct sat_info *s = gw_feeds_sat(f, id);
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
