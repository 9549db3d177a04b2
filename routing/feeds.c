/*
 * Operator feeds: pass schedules in the shapes operators already export,
 * turned into struct sr_pass_rec (contract in routing.h, "operator feeds").
 *
 * Every format goes through the same three steps:
 *   1. decode: JSON with jansson (duplicate keys refused), ION line by line;
 *   2. map: each entry's satellite identity (target id, AWS ARN, NORAD number,
 *      ION node) goes through the caller's lookup to a configured target id;
 *      entries that are not passes here (cancelled contacts, another
 *      station, inter-satellite links) are counted in |skipped|;
 *   3. check: each pass on its own (times, units, ranges), then all passes of
 *      one satellite together (no overlaps), refusing the whole upload on the
 *      first problem with the entry's index or line and the field.
 *
 * The clock is never read: "years away" is measured from opts->now_ms.
 */
#include "routing/routing.h"

#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#define DAY_MS 86400000LL
#define DEFAULT_MAX_PAST_MS (31 * DAY_MS)
#define DEFAULT_MAX_FUTURE_MS (366 * DAY_MS)
#define DEFAULT_MAX_PASSES 100000
#define MAX_LIGHT_MS 3600000.0 /* one hour one way: beyond Jupiter */
#define MAX_RATE 1e12          /* bytes/s */
#define ION_MAX_LINE 1024

#ifndef M_PI
#define M_PI 3.14159265358979323846
#endif

/* ---- small helpers ------------------------------------------------------------ */

const char *sr_feed_format_name(sr_feed_format f)
{
    switch (f) {
    case SR_FEED_JSON:
        return "json";
    case SR_FEED_AWS:
        return "aws";
    case SR_FEED_SATNOGS:
        return "satnogs";
    case SR_FEED_ION:
        return "ion";
    default:
        return "auto";
    }
}

int sr_feed_format_parse(sr_feed_format *out, const char *name)
{
    static const sr_feed_format named[] = {SR_FEED_JSON, SR_FEED_AWS, SR_FEED_SATNOGS, SR_FEED_ION};
    for (size_t i = 0; name && i < sizeof(named) / sizeof(named[0]); i++) {
        if (!strcmp(name, sr_feed_format_name(named[i]))) {
            *out = named[i];
            return 0;
        }
    }
    return SR_ERR_PARSE;
}

/* Where in the input an entry came from, for messages. */
struct origin {
    const char *array; /* "passes", "contactList", ... or NULL for ION */
    long index;        /* array index, or -1 */
    long line;         /* ION line, or -1 */
};

static int fail(struct sr_feed_error *err, int code, const struct origin *o, const char *field,
                const char *fmt, ...) SR_PRINTF(5, 6);
static int fail(struct sr_feed_error *err, int code, const struct origin *o, const char *field,
                const char *fmt, ...)
{
    if (!err) {
        return code;
    }
    err->index = o ? o->index : -1;
    err->line = o ? o->line : -1;
    snprintf(err->field, sizeof(err->field), "%s", field ? field : "");
    char what[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    if (o && o->line >= 0) {
        snprintf(err->msg, sizeof(err->msg), "line %ld%s%s: %s", o->line, field ? ": " : "",
                 field ? field : "", what);
    } else if (o && o->index >= 0) {
        snprintf(err->msg, sizeof(err->msg), "%s[%ld]%s%s: %s", o->array ? o->array : "", o->index,
                 field ? "." : "", field ? field : "", what);
    } else if (field) {
        snprintf(err->msg, sizeof(err->msg), "%s: %s", field, what);
    } else {
        snprintf(err->msg, sizeof(err->msg), "%s", what);
    }
    return code;
}

/* A growing array of passes, each with where it came from. */
struct coll {
    struct sr_pass_rec *p;
    struct origin *o;
    size_t n, cap, max;
    size_t skipped;
    struct sr_feed_span *x; /* withdrawn entries (cancelled, failed) of our satellites */
    size_t nx, capx;
};

/* Remembers the time span of a withdrawn entry, so the schedule's window
 * covers it and an earlier upload's pass there is replaced by nothing. Best
 * effort: an entry whose identity or times do not parse is just skipped. */
static void note_withdrawn(struct coll *c, const char *sat, int64_t a, int64_t b)
{
    if (!sat || !*sat || strlen(sat) >= SR_TARGET_IDMAX || b <= a || c->nx >= c->max) {
        return;
    }
    if (c->nx == c->capx) {
        size_t ncap = c->capx ? c->capx * 2 : 8;
        struct sr_feed_span *nx = realloc(c->x, ncap * sizeof(*nx));
        if (!nx) {
            return; /* only widens a window: losing it is safe */
        }
        c->x = nx;
        c->capx = ncap;
    }
    struct sr_feed_span *sp = &c->x[c->nx++];
    memcpy(sp->sat, sat, strlen(sat) + 1);
    sp->from_ms = a;
    sp->to_ms = b;
}

static int coll_push(struct coll *c, const struct sr_pass_rec *rec, const struct origin *o,
                     struct sr_feed_error *err)
{
    if (c->n >= c->max) {
        return fail(err, SR_ERR_TOOBIG, o, NULL, "more than %zu passes", c->max);
    }
    if (c->n == c->cap) {
        size_t ncap = c->cap ? c->cap * 2 : 16;
        struct sr_pass_rec *np = realloc(c->p, ncap * sizeof(*np));
        if (!np) {
            return SR_ERR_NOMEM;
        }
        c->p = np;
        struct origin *no = realloc(c->o, ncap * sizeof(*no));
        if (!no) {
            return SR_ERR_NOMEM;
        }
        c->o = no;
        c->cap = ncap;
    }
    c->p[c->n] = *rec;
    c->o[c->n] = *o;
    c->n++;
    return 0;
}

static void coll_free(struct coll *c)
{
    free(c->p);
    free(c->o);
    free(c->x);
    memset(c, 0, sizeof(*c));
}

static void rec_init(struct sr_pass_rec *r, sr_feed_format f)
{
    memset(r, 0, sizeof(*r));
    r->max_el_deg = NAN;
    snprintf(r->source, sizeof(r->source), "%s", sr_feed_format_name(f));
}

static int set_sat(struct sr_pass_rec *r, const char *id, const struct origin *o, const char *field,
                   struct sr_feed_error *err)
{
    if (!id || !*id || strlen(id) >= sizeof(r->sat)) {
        return fail(err, SR_ERR_NOTFOUND, o, field, "not a configured satellite");
    }
    memcpy(r->sat, id, strlen(id) + 1);
    return 0;
}

/* Checks one time against the window around now. */
static int check_time(int64_t t, const struct sr_feed_opts *opts, int64_t past, int64_t future,
                      const struct origin *o, const char *field, struct sr_feed_error *err)
{
    if (t < opts->now_ms - past) {
        return fail(err, SR_ERR_RANGE, o, field, "more than %lld days before now",
                    (long long)(past / DAY_MS));
    }
    if (t > opts->now_ms + future) {
        return fail(err, SR_ERR_RANGE, o, field, "more than %lld days after now",
                    (long long)(future / DAY_MS));
    }
    return 0;
}

/* The checks every pass gets, whatever its format. */
static int check_pass(const struct sr_pass_rec *r, const struct sr_feed_opts *opts, int64_t past,
                      int64_t future, const struct origin *o, const char *aos_name,
                      const char *los_name, const char *el_name, struct sr_feed_error *err)
{
    int rv = check_time(r->aos_ms, opts, past, future, o, aos_name, err);
    rv = rv ? rv : check_time(r->los_ms, opts, past, future, o, los_name, err);
    if (rv) {
        return rv;
    }
    if (r->los_ms <= r->aos_ms) {
        return fail(err, SR_ERR_RANGE, o, los_name, "LOS is not after AOS (%lld ms)",
                    (long long)(r->los_ms - r->aos_ms));
    }
    if (r->los_ms - r->aos_ms > SR_FEED_MAX_PASS_MS) {
        return fail(err, SR_ERR_RANGE, o, los_name, "pass longer than %lld days",
                    (long long)(SR_FEED_MAX_PASS_MS / DAY_MS));
    }
    if (r->tca_ms && (r->tca_ms < r->aos_ms || r->tca_ms > r->los_ms)) {
        return fail(err, SR_ERR_RANGE, o, "tca", "culmination outside [AOS, LOS]");
    }
    if (!isnan(r->max_el_deg) &&
        (!isfinite(r->max_el_deg) || r->max_el_deg < -90.0 || r->max_el_deg > 90.0)) {
        return fail(err, SR_ERR_RANGE, o, el_name, "elevation %g deg outside [-90, 90]",
                    r->max_el_deg);
    }
    return 0;
}

static int pass_cmp(const void *a, const void *b)
{
    const struct sr_pass_rec *x = a, *y = b;
    int c = strcmp(x->sat, y->sat);
    if (c) {
        return c;
    }
    if (x->aos_ms != y->aos_ms) {
        return x->aos_ms < y->aos_ms ? -1 : 1;
    }
    return x->los_ms < y->los_ms ? -1 : x->los_ms > y->los_ms;
}

struct pair {
    struct sr_pass_rec rec;
    size_t i;
};

/* By (satellite, AOS, LOS), then input order, so refusals name the later entry. */
static int pair_cmp(const void *a, const void *b)
{
    const struct pair *x = a, *y = b;
    int c = pass_cmp(&x->rec, &y->rec);
    return c ? c : (x->i < y->i ? -1 : x->i > y->i);
}

/* Sorts by (satellite, AOS) keeping origins alongside; refuses overlaps. */
static int finish(struct coll *c, struct sr_feed_result *res, struct sr_feed_error *err)
{
    size_t *ord = malloc((c->n ? c->n : 1) * sizeof(*ord));
    struct sr_pass_rec *sorted = malloc((c->n ? c->n : 1) * sizeof(*sorted));
    if (!ord || !sorted) {
        free(ord);
        free(sorted);
        return SR_ERR_NOMEM;
    }
    struct pair *pairs = malloc((c->n ? c->n : 1) * sizeof(*pairs));
    if (!pairs) {
        free(ord);
        free(sorted);
        return SR_ERR_NOMEM;
    }
    for (size_t i = 0; i < c->n; i++) {
        pairs[i].rec = c->p[i];
        pairs[i].i = i;
    }
    qsort(pairs, c->n, sizeof(*pairs), pair_cmp);
    for (size_t i = 0; i < c->n; i++) {
        sorted[i] = pairs[i].rec;
        ord[i] = pairs[i].i;
    }
    free(pairs);
    for (size_t i = 1; i < c->n; i++) {
        const struct sr_pass_rec *a = &sorted[i - 1], *b = &sorted[i];
        if (!strcmp(a->sat, b->sat) && b->aos_ms < a->los_ms) {
            const struct origin *oa = &c->o[ord[i - 1]], *ob = &c->o[ord[i]];
            char other[48];
            if (oa->line >= 0) {
                snprintf(other, sizeof(other), "line %ld", oa->line);
            } else {
                snprintf(other, sizeof(other), "%s[%ld]", oa->array ? oa->array : "", oa->index);
            }
            int rv =
                fail(err, SR_ERR_RANGE, ob, "aos",
                     "overlaps %s for satellite %s (duplicate or overlapping pass)", other, b->sat);
            free(ord);
            free(sorted);
            return rv;
        }
    }
    free(ord);
    /* one span per satellite: its passes and its withdrawn entries */
    struct sr_feed_span *spans = malloc((c->n + c->nx + 1) * sizeof(*spans));
    if (!spans) {
        free(sorted);
        return SR_ERR_NOMEM;
    }
    size_t ns = 0;
    for (size_t i = 0; i < c->n + c->nx; i++) {
        const char *sat = i < c->n ? sorted[i].sat : c->x[i - c->n].sat;
        int64_t a = i < c->n ? sorted[i].aos_ms : c->x[i - c->n].from_ms;
        int64_t b = i < c->n ? sorted[i].los_ms : c->x[i - c->n].to_ms;
        size_t k = 0;
        while (k < ns && strcmp(spans[k].sat, sat) != 0) {
            k++;
        }
        if (k == ns) {
            memcpy(spans[ns].sat, sat, strlen(sat) + 1);
            spans[ns].from_ms = a;
            spans[ns].to_ms = b;
            ns++;
            continue;
        }
        spans[k].from_ms = a < spans[k].from_ms ? a : spans[k].from_ms;
        spans[k].to_ms = b > spans[k].to_ms ? b : spans[k].to_ms;
    }
    if (c->n == 0) {
        free(sorted);
        sorted = NULL;
    }
    if (ns == 0) {
        free(spans);
        spans = NULL;
    }
    res->passes = sorted;
    res->n = c->n;
    res->spans = spans;
    res->nspans = ns;
    res->skipped = c->skipped;
    return 0;
}

/* ---- JSON helpers ------------------------------------------------------------------ */

/* An RFC 3339 string, or (when |epoch_s| is set) a number of seconds since
 * the epoch, as AWS's API emits timestamps. */
static int json_time(int64_t *out, json_t *v, bool epoch_s, const struct origin *o,
                     const char *field, struct sr_feed_error *err)
{
    if (!v || json_is_null(v)) {
        return fail(err, SR_ERR_PARSE, o, field, "missing");
    }
    if (json_is_string(v)) {
        int rv = sr_time_parse(out, json_string_value(v), json_string_length(v));
        if (rv) {
            return fail(err, SR_ERR_PARSE, o, field, "not an RFC 3339 time: '%.40s'",
                        json_string_value(v));
        }
        return 0;
    }
    if (epoch_s && json_is_number(v)) {
        double s = json_number_value(v);
        if (!isfinite(s) || s < -1e11 || s > 1e11) {
            return fail(err, SR_ERR_RANGE, o, field, "epoch seconds out of range");
        }
        *out = (int64_t)llround(s * 1000.0);
        return 0;
    }
    return fail(err, SR_ERR_PARSE, o, field,
                epoch_s ? "must be an ISO 8601 string or epoch seconds" : "must be a string");
}

/* An optional number: |*out| keeps its value when absent or null. */
static int json_num(double *out, json_t *v, double lo, double hi, const struct origin *o,
                    const char *field, struct sr_feed_error *err)
{
    if (!v || json_is_null(v)) {
        return 0;
    }
    if (!json_is_number(v)) {
        return fail(err, SR_ERR_PARSE, o, field, "must be a number");
    }
    double d = json_number_value(v);
    if (!isfinite(d)) {
        return fail(err, SR_ERR_RANGE, o, field, "not a finite number");
    }
    if (d < lo || d > hi) {
        return fail(err, SR_ERR_RANGE, o, field, "%g outside [%g, %g]", d, lo, hi);
    }
    *out = d;
    return 0;
}

/* A string or integer identity, as decimal text for integers. */
static int json_ident(char *out, size_t outlen, json_t *v, const struct origin *o,
                      const char *field, struct sr_feed_error *err)
{
    if (json_is_string(v) && json_string_length(v) > 0 && json_string_length(v) < outlen &&
        strlen(json_string_value(v)) == json_string_length(v)) {
        memcpy(out, json_string_value(v), json_string_length(v) + 1);
        return 0;
    }
    if (json_is_integer(v) && json_integer_value(v) >= 0) {
        snprintf(out, outlen, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        return 0;
    }
    if (!v || json_is_null(v)) {
        return fail(err, SR_ERR_PARSE, o, field, "missing");
    }
    return fail(err, SR_ERR_PARSE, o, field, "must be a non-empty string or an integer >= 0");
}

/* Station names: the first one is remembered; entries for another station are skipped. */
static int station_ok(json_t *v, const struct sr_feed_opts *opts, struct sr_feed_result *res,
                      const struct origin *o, const char *field, struct sr_feed_error *err,
                      bool *ok)
{
    *ok = true;
    if (!v || json_is_null(v)) {
        return 0;
    }
    char name[128];
    int rv = json_ident(name, sizeof(name), v, o, field, err);
    if (rv) {
        return rv;
    }
    if (!res->station[0]) {
        snprintf(res->station, sizeof(res->station), "%s", name);
    }
    *ok = opts->lookup(opts->lookup_arg, SR_FEED_ID_STATION, name) != NULL;
    return 0;
}

/* ---- the project's own JSON --------------------------------------------------------- */

static int parse_own(json_t *root, const struct sr_feed_opts *opts, int64_t past, int64_t future,
                     struct coll *c, struct sr_feed_result *res, struct sr_feed_error *err)
{
    struct origin top = {NULL, -1, -1};
    if (!json_is_object(root)) {
        return fail(err, SR_ERR_PARSE, &top, NULL, "expected an object with \"passes\"");
    }
    bool here;
    int rv = station_ok(json_object_get(root, "station"), opts, res, &top, "station", err, &here);
    if (rv) {
        return rv;
    }
    if (!here) {
        return fail(err, SR_ERR_RANGE, &top, "station", "the schedule is for station '%s'",
                    res->station);
    }
    json_t *arr = json_object_get(root, "passes");
    if (!json_is_array(arr)) {
        return fail(err, SR_ERR_PARSE, &top, "passes", "must be an array");
    }
    size_t i;
    json_t *it;
    json_array_foreach(arr, i, it)
    {
        struct origin o = {"passes", (long)i, -1};
        if (!json_is_object(it)) {
            return fail(err, SR_ERR_PARSE, &o, NULL, "must be an object");
        }
        struct sr_pass_rec r;
        rec_init(&r, SR_FEED_JSON);
        json_t *sat = json_object_get(it, "sat");
        if (!json_is_string(sat)) {
            return fail(err, SR_ERR_PARSE, &o, "sat", "must be a string");
        }
        rv = set_sat(&r, opts->lookup(opts->lookup_arg, SR_FEED_ID_TARGET, json_string_value(sat)),
                     &o, "sat", err);
        rv = rv ? rv : json_time(&r.aos_ms, json_object_get(it, "aos"), false, &o, "aos", err);
        rv = rv ? rv : json_time(&r.los_ms, json_object_get(it, "los"), false, &o, "los", err);
        json_t *tca = json_object_get(it, "tca");
        if (!rv && tca && !json_is_null(tca)) {
            rv = json_time(&r.tca_ms, tca, false, &o, "tca", err);
        }
        rv = rv ? rv
                : json_num(&r.max_el_deg, json_object_get(it, "max_el_deg"), -90, 90, &o,
                           "max_el_deg", err);
        rv = rv ? rv
                : json_num(&r.uplink_bps, json_object_get(it, "uplink_bps"), 0, MAX_RATE, &o,
                           "uplink_bps", err);
        rv = rv ? rv
                : json_num(&r.downlink_bps, json_object_get(it, "downlink_bps"), 0, MAX_RATE, &o,
                           "downlink_bps", err);
        rv = rv ? rv
                : json_num(&r.light_ms, json_object_get(it, "light_ms"), 0, MAX_LIGHT_MS, &o,
                           "light_ms", err);
        rv = rv ? rv : check_pass(&r, opts, past, future, &o, "aos", "los", "max_el_deg", err);
        rv = rv ? rv : coll_push(c, &r, &o, err);
        if (rv) {
            return rv;
        }
    }
    return 0;
}

/* ---- AWS Ground Station contacts ------------------------------------------------------ */

static const char *const aws_pass_status[] = {"SCHEDULED", "PREPASS", "PASS", "POSTPASS",
                                              "COMPLETED"};
static const char *const aws_skip_status[] = {"AVAILABLE",  "SCHEDULING",        "CANCELLING",
                                              "CANCELLED",  "AWS_CANCELLED",     "FAILED",
                                              "AWS_FAILED", "FAILED_TO_SCHEDULE"};

static bool in_list(const char *s, const char *const *list, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (!strcmp(s, list[i])) {
            return true;
        }
    }
    return false;
}

static int parse_aws_contact(json_t *it, const struct origin *o, const struct sr_feed_opts *opts,
                             int64_t past, int64_t future, struct coll *c,
                             struct sr_feed_result *res, struct sr_feed_error *err)
{
    if (!json_is_object(it)) {
        return fail(err, SR_ERR_PARSE, o, NULL, "must be an object");
    }
    json_t *st = json_object_get(it, "contactStatus");
    if (!json_is_string(st)) {
        return fail(err, SR_ERR_PARSE, o, "contactStatus", "must be a string");
    }
    const char *status = json_string_value(st);
    if (in_list(status, aws_skip_status, sizeof(aws_skip_status) / sizeof(aws_skip_status[0]))) {
        c->skipped++;
        json_t *arn = json_object_get(it, "satelliteArn");
        json_t *gs = json_object_get(it, "groundStation");
        int64_t a, b;
        if (json_is_string(arn) &&
            (!json_is_string(gs) ||
             opts->lookup(opts->lookup_arg, SR_FEED_ID_STATION, json_string_value(gs))) &&
            json_time(&a, json_object_get(it, "startTime"), true, o, NULL, NULL) == 0 &&
            json_time(&b, json_object_get(it, "endTime"), true, o, NULL, NULL) == 0 &&
            check_time(a, opts, past, future, o, NULL, NULL) == 0 &&
            check_time(b, opts, past, future, o, NULL, NULL) == 0 && b - a <= SR_FEED_MAX_PASS_MS) {
            note_withdrawn(
                c, opts->lookup(opts->lookup_arg, SR_FEED_ID_ARN, json_string_value(arn)), a, b);
        }
        return 0;
    }
    if (!in_list(status, aws_pass_status, sizeof(aws_pass_status) / sizeof(aws_pass_status[0]))) {
        return fail(err, SR_ERR_RANGE, o, "contactStatus", "unknown status '%.40s'", status);
    }
    bool here;
    int rv =
        station_ok(json_object_get(it, "groundStation"), opts, res, o, "groundStation", err, &here);
    if (rv) {
        return rv;
    }
    if (!here) {
        c->skipped++;
        return 0;
    }
    struct sr_pass_rec r;
    rec_init(&r, SR_FEED_AWS);
    json_t *arn = json_object_get(it, "satelliteArn");
    if (!json_is_string(arn) || json_string_length(arn) == 0) {
        return fail(err, SR_ERR_PARSE, o, "satelliteArn", "must be a non-empty string");
    }
    rv = set_sat(&r, opts->lookup(opts->lookup_arg, SR_FEED_ID_ARN, json_string_value(arn)), o,
                 "satelliteArn", err);
    rv =
        rv ? rv : json_time(&r.aos_ms, json_object_get(it, "startTime"), true, o, "startTime", err);
    rv = rv ? rv : json_time(&r.los_ms, json_object_get(it, "endTime"), true, o, "endTime", err);
    if (rv) {
        return rv;
    }
    json_t *me = json_object_get(it, "maximumElevation");
    if (me && !json_is_null(me)) {
        if (!json_is_object(me)) {
            return fail(err, SR_ERR_PARSE, o, "maximumElevation", "must be an object");
        }
        json_t *unit = json_object_get(me, "unit");
        json_t *val = json_object_get(me, "value");
        if (!json_is_string(unit)) {
            return fail(err, SR_ERR_PARSE, o, "maximumElevation.unit", "must be a string");
        }
        if (!json_is_number(val)) {
            return fail(err, SR_ERR_PARSE, o, "maximumElevation.value", "must be a number");
        }
        double v = json_number_value(val);
        const char *u = json_string_value(unit);
        if (!strcmp(u, "DEGREE_ANGLE")) {
            r.max_el_deg = v;
        } else if (!strcmp(u, "RADIAN")) {
            r.max_el_deg = v * 180.0 / M_PI;
        } else {
            return fail(err, SR_ERR_RANGE, o, "maximumElevation.unit",
                        "unknown unit '%.40s' (DEGREE_ANGLE or RADIAN)", u);
        }
        if (!isfinite(r.max_el_deg) || r.max_el_deg < -90.0 || r.max_el_deg > 90.0) {
            return fail(err, SR_ERR_RANGE, o, "maximumElevation.value",
                        "%g %s is outside [-90, 90] degrees", v, u);
        }
    }
    rv = check_pass(&r, opts, past, future, o, "startTime", "endTime", "maximumElevation", err);
    return rv ? rv : coll_push(c, &r, o, err);
}

static int parse_aws(json_t *root, const struct sr_feed_opts *opts, int64_t past, int64_t future,
                     struct coll *c, struct sr_feed_result *res, struct sr_feed_error *err)
{
    struct origin top = {NULL, -1, -1};
    if (json_is_object(root) && json_object_get(root, "contactId") &&
        !json_object_get(root, "contactList")) {
        struct origin o = {"contact", -1, -1};
        return parse_aws_contact(root, &o, opts, past, future, c, res, err);
    }
    json_t *arr = json_is_object(root) ? json_object_get(root, "contactList") : NULL;
    if (!json_is_array(arr)) {
        return fail(err, SR_ERR_PARSE, &top, "contactList", "must be an array");
    }
    size_t i;
    json_t *it;
    json_array_foreach(arr, i, it)
    {
        struct origin o = {"contactList", (long)i, -1};
        int rv = parse_aws_contact(it, &o, opts, past, future, c, res, err);
        if (rv) {
            return rv;
        }
    }
    return 0;
}

/* ---- SatNOGS observations ----------------------------------------------------------- */

static int parse_satnogs(json_t *root, const struct sr_feed_opts *opts, int64_t past,
                         int64_t future, struct coll *c, struct sr_feed_result *res,
                         struct sr_feed_error *err)
{
    struct origin top = {NULL, -1, -1};
    json_t *arr = root;
    if (json_is_object(root)) {
        arr = json_object_get(root, "results");
    }
    if (!json_is_array(arr)) {
        return fail(err, SR_ERR_PARSE, &top, NULL, "expected an array of observations");
    }
    size_t i;
    json_t *it;
    json_array_foreach(arr, i, it)
    {
        struct origin o = {"observations", (long)i, -1};
        if (!json_is_object(it)) {
            return fail(err, SR_ERR_PARSE, &o, NULL, "must be an object");
        }
        json_t *st = json_object_get(it, "status");
        if (st && !json_is_null(st) && !json_is_string(st)) {
            return fail(err, SR_ERR_PARSE, &o, "status", "must be a string");
        }
        if (json_is_string(st) && !strcmp(json_string_value(st), "failed")) {
            c->skipped++;
            json_t *nv = json_object_get(it, "norad_cat_id");
            int64_t a, b;
            if (json_is_integer(nv) &&
                json_time(&a, json_object_get(it, "start"), false, &o, NULL, NULL) == 0 &&
                json_time(&b, json_object_get(it, "end"), false, &o, NULL, NULL) == 0 &&
                check_time(a, opts, past, future, &o, NULL, NULL) == 0 &&
                check_time(b, opts, past, future, &o, NULL, NULL) == 0 &&
                b - a <= SR_FEED_MAX_PASS_MS) {
                char norad[32];
                snprintf(norad, sizeof(norad), "%" JSON_INTEGER_FORMAT, json_integer_value(nv));
                note_withdrawn(c, opts->lookup(opts->lookup_arg, SR_FEED_ID_NORAD, norad), a, b);
            }
            continue;
        }
        bool here;
        int rv = station_ok(json_object_get(it, "ground_station"), opts, res, &o, "ground_station",
                            err, &here);
        if (rv) {
            return rv;
        }
        if (!here) {
            c->skipped++;
            continue;
        }
        struct sr_pass_rec r;
        rec_init(&r, SR_FEED_SATNOGS);
        char norad[32];
        json_t *nv = json_object_get(it, "norad_cat_id");
        if (json_is_string(nv)) {
            int64_t num;
            if (sr_parse_i64(&num, json_string_value(nv), json_string_length(nv)) != 0 || num < 0) {
                return fail(err, SR_ERR_PARSE, &o, "norad_cat_id", "not a catalogue number");
            }
            snprintf(norad, sizeof(norad), "%lld", (long long)num);
        } else if (json_is_integer(nv) && json_integer_value(nv) >= 0) {
            snprintf(norad, sizeof(norad), "%" JSON_INTEGER_FORMAT, json_integer_value(nv));
        } else {
            return fail(err, SR_ERR_PARSE, &o, "norad_cat_id", "must be an integer >= 0");
        }
        rv = set_sat(&r, opts->lookup(opts->lookup_arg, SR_FEED_ID_NORAD, norad), &o,
                     "norad_cat_id", err);
        rv = rv ? rv : json_time(&r.aos_ms, json_object_get(it, "start"), false, &o, "start", err);
        rv = rv ? rv : json_time(&r.los_ms, json_object_get(it, "end"), false, &o, "end", err);
        rv = rv ? rv
                : json_num(&r.max_el_deg, json_object_get(it, "max_altitude"), -90, 90, &o,
                           "max_altitude", err);
        rv = rv ? rv : check_pass(&r, opts, past, future, &o, "start", "end", "max_altitude", err);
        rv = rv ? rv : coll_push(c, &r, &o, err);
        if (rv) {
            return rv;
        }
    }
    return 0;
}

/* ---- ION contact plans ----------------------------------------------------------------- */

struct ion_contact {
    char sat[SR_TARGET_IDMAX];
    uint64_t sat_node, peer_node;
    int up; /* 1: station -> satellite */
    int64_t start, end;
    double rate;
    long line;
};

struct ion_range {
    uint64_t a, b;
    int64_t start, end;
    double owlt_s;
};

static bool tok_eq(const char *t, size_t n, const char *s)
{
    return strlen(s) == n && !memcmp(t, s, n);
}

static int ion_time(int64_t *out, const char *t, size_t n, int64_t epoch, const struct origin *o,
                    const char *field, struct sr_feed_error *err)
{
    if (n > 1 && t[0] == '+') {
        double s;
        if (sr_parse_double(&s, t + 1, n - 1) != 0 || s < 0 || s > 1e10) {
            return fail(err, SR_ERR_PARSE, o, field, "bad relative time '%.*s'",
                        (int)(n > 40 ? 40 : n), t);
        }
        *out = epoch + (int64_t)llround(s * 1000.0);
        return 0;
    }
    /* yyyy/mm/dd-hh:mm:ss[.fff] */
    if (n >= 19 && n < 40 && t[4] == '/' && t[7] == '/' && t[10] == '-') {
        char iso[48];
        memcpy(iso, t, n);
        iso[4] = '-';
        iso[7] = '-';
        iso[10] = 'T';
        iso[n] = 'Z';
        if (sr_time_parse(out, iso, n + 1) == 0) {
            return 0;
        }
    }
    return fail(err, SR_ERR_PARSE, o, field, "'%.*s' is neither +SECONDS nor yyyy/mm/dd-hh:mm:ss",
                (int)(n > 40 ? 40 : n), t);
}

static int ion_node(uint64_t *out, const char *t, size_t n, const struct origin *o,
                    const char *field, struct sr_feed_error *err)
{
    int64_t v;
    if (sr_parse_i64(&v, t, n) != 0 || v <= 0 || t[0] == '+') {
        return fail(err, SR_ERR_PARSE, o, field, "not a node number: '%.*s'",
                    (int)(n > 40 ? 40 : n), t);
    }
    *out = (uint64_t)v;
    return 0;
}

static int ion_num(double *out, const char *t, size_t n, double lo, double hi,
                   const struct origin *o, const char *field, struct sr_feed_error *err)
{
    if (sr_parse_double(out, t, n) != 0) {
        return fail(err, SR_ERR_PARSE, o, field, "not a finite number: '%.*s'",
                    (int)(n > 40 ? 40 : n), t);
    }
    if (*out < lo || *out > hi) {
        return fail(err, SR_ERR_RANGE, o, field, "%g outside [%g, %g]", *out, lo, hi);
    }
    return 0;
}

static int contact_cmp(const void *a, const void *b)
{
    const struct ion_contact *x = a, *y = b;
    int c = strcmp(x->sat, y->sat);
    if (c) {
        return c;
    }
    if (x->up != y->up) {
        return x->up < y->up ? -1 : 1;
    }
    return x->start < y->start ? -1 : x->start > y->start;
}

static int contact_cmp_start(const void *a, const void *b)
{
    const struct ion_contact *x = a, *y = b;
    int c = strcmp(x->sat, y->sat);
    if (c) {
        return c;
    }
    return x->start < y->start ? -1 : x->start > y->start;
}

/* Control commands of ionrc files that say nothing about contacts. */
static bool ion_ignorable(const char *t, size_t n)
{
    static const char *const ok[] = {"1", "s", "m", "e", "w", "h", "l", "i", "q", "?"};
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        if (tok_eq(t, n, ok[i])) {
            return true;
        }
    }
    return false;
}

static int parse_ion(const char *body, size_t len, const struct sr_feed_opts *opts, int64_t past,
                     int64_t future, struct coll *c, struct sr_feed_error *err)
{
    int64_t epoch = opts->epoch_ms ? opts->epoch_ms : opts->now_ms;
    struct ion_contact *cs = NULL;
    struct ion_range *rs = NULL;
    size_t ncs = 0, capcs = 0, nrs = 0, caprs = 0;
    int rv = 0;
    long line = 0;
    size_t pos = 0;
    while (pos < len && rv == 0) {
        line++;
        size_t end = pos;
        while (end < len && body[end] != '\n') {
            end++;
        }
        const char *l = body + pos;
        size_t ll = end - pos;
        pos = end + 1;
        struct origin o = {NULL, -1, line};
        if (ll > ION_MAX_LINE) {
            rv = fail(err, SR_ERR_PARSE, &o, NULL, "longer than %d bytes", ION_MAX_LINE);
            break;
        }
        /* tokens */
        const char *tok[10];
        size_t tl[10], nt = 0;
        size_t k = 0;
        while (k < ll) {
            while (k < ll && (l[k] == ' ' || l[k] == '\t' || l[k] == '\r')) {
                k++;
            }
            if (k >= ll) {
                break;
            }
            size_t s = k;
            while (k < ll && l[k] != ' ' && l[k] != '\t' && l[k] != '\r') {
                k++;
            }
            if (nt == 10) {
                nt++;
                break;
            }
            tok[nt] = l + s;
            tl[nt] = k - s;
            nt++;
        }
        if (nt == 0 || tok[0][0] == '#') {
            continue;
        }
        if (nt > 10) {
            rv = fail(err, SR_ERR_PARSE, &o, NULL, "too many fields");
            break;
        }
        for (size_t t = 0; t < nt; t++) {
            for (size_t b = 0; b < tl[t]; b++) {
                unsigned char ch = (unsigned char)tok[t][b];
                if (ch < 0x20 || ch >= 0x7f) {
                    rv = fail(err, SR_ERR_PARSE, &o, NULL, "control or non-ASCII byte");
                    break;
                }
            }
        }
        if (rv) {
            break;
        }
        if (nt == 1 || !tok_eq(tok[0], tl[0], "a")) {
            if (ion_ignorable(tok[0], tl[0])) {
                continue;
            }
            rv = fail(err, SR_ERR_PARSE, &o, NULL, "unsupported command '%.*s'",
                      (int)(tl[0] > 20 ? 20 : tl[0]), tok[0]);
            break;
        }
        bool contact = tok_eq(tok[1], tl[1], "contact");
        bool range = tok_eq(tok[1], tl[1], "range");
        if (!contact && !range) {
            rv = fail(err, SR_ERR_PARSE, &o, NULL, "unsupported command 'a %.*s'",
                      (int)(tl[1] > 20 ? 20 : tl[1]), tok[1]);
            break;
        }
        if (nt < 7 || nt > (contact ? 8u : 7u)) {
            rv = fail(err, SR_ERR_PARSE, &o, NULL, "'a %s' takes START END FROM TO %s",
                      contact ? "contact" : "range", contact ? "RATE [CONFIDENCE]" : "OWLT");
            break;
        }
        int64_t start = 0, stop = 0;
        uint64_t from = 0, to = 0;
        double val = 0, conf = 0;
        rv = ion_time(&start, tok[2], tl[2], epoch, &o, "START", err);
        rv = rv ? rv : ion_time(&stop, tok[3], tl[3], epoch, &o, "END", err);
        rv = rv ? rv : ion_node(&from, tok[4], tl[4], &o, "FROM", err);
        rv = rv ? rv : ion_node(&to, tok[5], tl[5], &o, "TO", err);
        rv = rv ? rv
                : ion_num(&val, tok[6], tl[6], 0, contact ? MAX_RATE : MAX_LIGHT_MS / 1000.0, &o,
                          contact ? "RATE" : "OWLT", err);
        if (!rv && nt == 8) {
            rv = ion_num(&conf, tok[7], tl[7], 0, 1, &o, "CONFIDENCE", err);
        }
        if (!rv && stop <= start) {
            rv = fail(err, SR_ERR_RANGE, &o, "END", "END is not after START");
        }
        rv = rv ? rv : check_time(start, opts, past, future, &o, "START", err);
        rv = rv ? rv : check_time(stop, opts, past, future, &o, "END", err);
        if (rv) {
            break;
        }
        if (range) {
            if (nrs == caprs) {
                size_t nc = caprs ? caprs * 2 : 16;
                struct ion_range *nr = realloc(rs, nc * sizeof(*nr));
                if (!nr) {
                    rv = SR_ERR_NOMEM;
                    break;
                }
                rs = nr;
                caprs = nc;
            }
            rs[nrs++] = (struct ion_range){from, to, start, stop, val};
            continue;
        }
        if (from == to) {
            c->skipped++; /* loopback contact, as ION plans often carry */
            continue;
        }
        char fs[24], ts[24];
        snprintf(fs, sizeof(fs), "%llu", (unsigned long long)from);
        snprintf(ts, sizeof(ts), "%llu", (unsigned long long)to);
        const char *fsat = opts->lookup(opts->lookup_arg, SR_FEED_ID_ION_NODE, fs);
        const char *tsat = opts->lookup(opts->lookup_arg, SR_FEED_ID_ION_NODE, ts);
        if ((fsat && tsat) || (!fsat && !tsat)) {
            c->skipped++; /* between two satellites, or not about a satellite of ours */
            continue;
        }
        const char *peer = fsat ? ts : fs;
        if (!opts->lookup(opts->lookup_arg, SR_FEED_ID_STATION, peer)) {
            c->skipped++; /* another station's contact */
            continue;
        }
        if (ncs >= c->max) {
            rv = fail(err, SR_ERR_TOOBIG, &o, NULL, "more than %zu contacts", c->max);
            break;
        }
        if (ncs == capcs) {
            size_t nc = capcs ? capcs * 2 : 16;
            struct ion_contact *ncp = realloc(cs, nc * sizeof(*ncp));
            if (!ncp) {
                rv = SR_ERR_NOMEM;
                break;
            }
            cs = ncp;
            capcs = nc;
        }
        struct ion_contact *ic = &cs[ncs];
        memset(ic, 0, sizeof(*ic));
        const char *sat = fsat ? fsat : tsat;
        if (strlen(sat) >= sizeof(ic->sat)) {
            rv = fail(err, SR_ERR_NOTFOUND, &o, fsat ? "FROM" : "TO", "target id too long");
            break;
        }
        memcpy(ic->sat, sat, strlen(sat) + 1);
        ic->sat_node = fsat ? from : to;
        ic->peer_node = fsat ? to : from;
        ic->up = fsat ? 0 : 1;
        ic->start = start;
        ic->end = stop;
        ic->rate = val;
        ic->line = line;
        ncs++;
    }
    if (rv == 0 && ncs > 0) {
        /* no two contacts of one satellite and direction may overlap */
        qsort(cs, ncs, sizeof(*cs), contact_cmp);
        for (size_t i = 1; i < ncs && rv == 0; i++) {
            if (!strcmp(cs[i].sat, cs[i - 1].sat) && cs[i].up == cs[i - 1].up &&
                cs[i].start < cs[i - 1].end) {
                struct origin o = {NULL, -1, cs[i].line};
                rv = fail(err, SR_ERR_RANGE, &o, "START",
                          "overlaps the contact on line %ld (%s, %s)", cs[i - 1].line, cs[i].sat,
                          cs[i].up ? "uplink" : "downlink");
            }
        }
    }
    if (rv == 0 && ncs > 0) {
        /* merge the two directions into passes */
        qsort(cs, ncs, sizeof(*cs), contact_cmp_start);
        size_t i = 0;
        while (i < ncs && rv == 0) {
            struct sr_pass_rec r;
            rec_init(&r, SR_FEED_ION);
            memcpy(r.sat, cs[i].sat, sizeof(r.sat));
            r.aos_ms = cs[i].start;
            r.los_ms = cs[i].end;
            struct origin o = {NULL, -1, cs[i].line};
            size_t j = i;
            while (j < ncs && !strcmp(cs[j].sat, r.sat) && cs[j].start < r.los_ms) {
                if (cs[j].end > r.los_ms) {
                    r.los_ms = cs[j].end;
                }
                double *rate = cs[j].up ? &r.uplink_bps : &r.downlink_bps;
                if (cs[j].rate > *rate) {
                    *rate = cs[j].rate;
                }
                j++;
            }
            for (size_t q = 0; q < nrs; q++) {
                const struct ion_range *g = &rs[q];
                bool pair = (g->a == cs[i].sat_node && g->b == cs[i].peer_node) ||
                            (g->b == cs[i].sat_node && g->a == cs[i].peer_node);
                if (pair && g->start <= r.aos_ms && g->end >= r.los_ms) {
                    r.light_ms = g->owlt_s * 1000.0;
                }
            }
            rv = check_pass(&r, opts, past, future, &o, "START", "END", NULL, err);
            rv = rv ? rv : coll_push(c, &r, &o, err);
            i = j;
        }
    }
    free(cs);
    free(rs);
    return rv;
}

/* ---- detection and entry point ----------------------------------------------------------- */

static bool ci_contains(const char *hay, const char *needle)
{
    size_t n = strlen(needle);
    for (const char *p = hay; *p; p++) {
        size_t i = 0;
        while (i < n && p[i] && (p[i] | 0x20) == (needle[i] | 0x20)) {
            i++;
        }
        if (i == n) {
            return true;
        }
    }
    return false;
}

static sr_feed_format detect_json(json_t *root)
{
    if (json_is_object(root)) {
        if (json_object_get(root, "contactList") || json_object_get(root, "contactId")) {
            return SR_FEED_AWS;
        }
        if (json_object_get(root, "passes")) {
            return SR_FEED_JSON;
        }
        if (json_is_array(json_object_get(root, "results"))) {
            root = json_object_get(root, "results");
        }
    }
    if (json_is_array(root)) {
        json_t *first = json_array_get(root, 0);
        if (!first || json_object_get(first, "norad_cat_id")) {
            return SR_FEED_SATNOGS;
        }
    }
    return SR_FEED_AUTO;
}

static sr_feed_format detect_from_type(const char *ct)
{
    if (!ct || !*ct) {
        return SR_FEED_AUTO;
    }
    if (ci_contains(ct, "json")) {
        if (ci_contains(ct, "aws") || ci_contains(ct, "groundstation")) {
            return SR_FEED_AWS;
        }
        if (ci_contains(ct, "satnogs")) {
            return SR_FEED_SATNOGS;
        }
        return SR_FEED_AUTO; /* by shape */
    }
    /* not "ion": application/x-www-form-urlencoded (curl's default) contains it */
    if (!strncmp(ct, "text/", 5) || ci_contains(ct, "contact-plan")) {
        return SR_FEED_ION;
    }
    return SR_FEED_AUTO;
}

/* ION plans start with a comment, "a ..." or one of the control commands. */
static bool looks_ion(const char *p, const char *end)
{
    if (*p == '#') {
        return true;
    }
    size_t n = 0;
    while (p + n < end && p[n] != ' ' && p[n] != '\t' && p[n] != '\r' && p[n] != '\n') {
        n++;
    }
    return tok_eq(p, n, "a") || ion_ignorable(p, n);
}

static const char *first_nonblank(const char *body, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (body[i] != ' ' && body[i] != '\t' && body[i] != '\r' && body[i] != '\n') {
            return body + i;
        }
    }
    return NULL;
}

sr_feed_format sr_feed_detect(const char *body, size_t len, const char *content_type)
{
    sr_feed_format f = detect_from_type(content_type);
    if (f != SR_FEED_AUTO || !body) {
        return f;
    }
    const char *p = first_nonblank(body, len);
    if (!p) {
        return SR_FEED_AUTO;
    }
    if (*p == '{' || *p == '[') {
        json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES, NULL);
        f = root ? detect_json(root) : SR_FEED_AUTO;
        json_decref(root);
        return f;
    }
    return looks_ion(p, body + len) ? SR_FEED_ION : SR_FEED_AUTO;
}

int sr_feed_parse(struct sr_feed_result *res, const char *body, size_t len,
                  const struct sr_feed_opts *opts, struct sr_feed_error *err)
{
    if (err) {
        memset(err, 0, sizeof(*err));
        err->index = err->line = -1;
    }
    if (!res || !opts || !opts->lookup || (!body && len)) {
        return SR_ERR_INVAL;
    }
    memset(res, 0, sizeof(*res));
    if (!body) {
        body = "";
    }
    int64_t past = opts->max_past_ms > 0 ? opts->max_past_ms : DEFAULT_MAX_PAST_MS;
    int64_t future = opts->max_future_ms > 0 ? opts->max_future_ms : DEFAULT_MAX_FUTURE_MS;
    struct coll c = {0};
    c.max = opts->max_passes ? opts->max_passes : DEFAULT_MAX_PASSES;

    sr_feed_format f = opts->format;
    if (f == SR_FEED_AUTO) {
        f = detect_from_type(opts->content_type);
    }
    json_t *root = NULL;
    const char *p = first_nonblank(body, len);
    bool json_body = p && (*p == '{' || *p == '[');
    if ((f == SR_FEED_AUTO && json_body) || f == SR_FEED_JSON || f == SR_FEED_AWS ||
        f == SR_FEED_SATNOGS) {
        json_error_t je;
        root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &je);
        if (!root) {
            /* jansson's lexer set-up fails only for memory, and says nothing */
            if (json_error_code(&je) == json_error_out_of_memory || !je.text[0]) {
                return SR_ERR_NOMEM;
            }
            struct origin o = {NULL, -1, -1};
            return fail(err, SR_ERR_PARSE, &o, NULL, "malformed JSON at line %d column %d: %s",
                        je.line, je.column, je.text);
        }
        if (f == SR_FEED_AUTO) {
            f = detect_json(root);
        }
    } else if (f == SR_FEED_AUTO && p && looks_ion(p, body + len)) {
        f = SR_FEED_ION;
    }
    int rv;
    switch (f) {
    case SR_FEED_JSON:
        rv = parse_own(root, opts, past, future, &c, res, err);
        break;
    case SR_FEED_AWS:
        rv = parse_aws(root, opts, past, future, &c, res, err);
        break;
    case SR_FEED_SATNOGS:
        rv = parse_satnogs(root, opts, past, future, &c, res, err);
        break;
    case SR_FEED_ION:
        rv = parse_ion(body, len, opts, past, future, &c, err);
        break;
    default:
        rv = fail(err, SR_ERR_UNSUPPORTED, NULL, NULL,
                  "cannot tell the format: expected skyroute JSON, an AWS Ground Station contact "
                  "list, SatNOGS observations or ION contact-plan lines");
        break;
    }
    json_decref(root);
    if (rv == 0) {
        rv = finish(&c, res, err);
    }
    coll_free(&c);
    if (rv) {
        memset(res, 0, sizeof(*res));
        return rv;
    }
    res->format = f;
    return 0;
}

void sr_feed_result_free(struct sr_feed_result *res)
{
    if (res) {
        free(res->passes);
        free(res->spans);
        memset(res, 0, sizeof(*res));
    }
}

/* ---- element formats ------------------------------------------------------------------------ */

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

/* Mostly the signs linkmodels' sr_elements_parse_text() picks its reader by,
 * so the name says which reader took the text. Two differences stand because
 * names already stored and answered were made this way: a first line that
 * starts with CCSDS_OMM_VERS and holds a comma is named a CSV (the parser
 * reads it as KVN), and a UTF-8 byte order mark is not skipped here. */
const char *sr_feed_elements_format(const char *text, size_t len)
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
