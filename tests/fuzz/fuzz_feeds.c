/*
 * libFuzzer harness for the operator-feed parsers (routing/feeds.c).
 *
 * The first byte picks the format (auto-detection or one of the four) and a
 * content type; the second picks the clock (a fixed 'now' or one far away)
 * and a small max_passes; the rest is the body. The lookup knows a few
 * identities of each kind, so inputs reach the checks past the mapping. Every
 * accepted result must keep the parser's promises, or the harness aborts:
 * sorted by (sat, AOS), AOS < LOS, no overlap within a satellite, times
 * within the window around now, finite non-negative rates, elevations NaN or
 * in [-90, 90], at most max_passes, and, when the format was detected, the
 * one sr_feed_detect() names. A refusal must say why. The same bytes also go
 * through the other detections: the element-format name (one of five) and
 * the format a ?format= value forces (its name read back).
 */
#include "routing/routing.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *lookup(void *arg, sr_feed_id_kind kind, const char *v)
{
    (void)arg;
    switch (kind) {
    case SR_FEED_ID_TARGET:
        return (!strcmp(v, "sat-1") || !strcmp(v, "sat-2") || !strcmp(v, "s")) ? v : NULL;
    case SR_FEED_ID_ARN:
        return !strncmp(v, "arn:", 4) ? "sat-1" : NULL;
    case SR_FEED_ID_NORAD:
        return !strcmp(v, "43017") ? "sat-1" : !strcmp(v, "1") ? "sat-2" : NULL;
    case SR_FEED_ID_ION_NODE:
        return !strcmp(v, "21") ? "sat-1" : !strcmp(v, "2") ? "sat-2" : NULL;
    case SR_FEED_ID_STATION:
        return !strcmp(v, "9") ? NULL : "here";
    }
    return NULL;
}

static const char *const types[] = {NULL, "application/json", "text/plain",
                                    "application/vnd.aws.groundstation+json",
                                    "application/x-www-form-urlencoded"};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2 || size > (1 << 16)) {
        return 0;
    }
    struct sr_feed_opts o;
    memset(&o, 0, sizeof(o));
    o.format = (sr_feed_format)(data[0] % 5);
    o.content_type = types[(data[0] / 5) % 5];
    o.now_ms = (data[1] & 1) ? 1795370400000LL /* 2026-11-22T18:00Z */ : 1000;
    o.epoch_ms = (data[1] & 2) ? o.now_ms - 3600000 : 0;
    o.max_passes = (data[1] & 4) ? 3 : 0;
    o.lookup = lookup;
    const char *body = (const char *)data + 2;
    size_t len = size - 2;

    const char *ef = sr_feed_elements_format(body, len);
    if (strcmp(ef, "tle") && strcmp(ef, "omm-json") && strcmp(ef, "omm-xml") &&
        strcmp(ef, "omm-csv") && strcmp(ef, "omm-kvn")) {
        abort();
    }
    char name[16];
    size_t nl = len < sizeof(name) - 1 ? len : sizeof(name) - 1;
    memcpy(name, body, nl);
    name[nl] = 0;
    sr_feed_format forced = SR_FEED_AUTO;
    if (sr_feed_format_parse(&forced, name) == 0 ? strcmp(sr_feed_format_name(forced), name) != 0
                                                 : forced != SR_FEED_AUTO) {
        abort();
    }

    sr_feed_format det = sr_feed_detect(body, len, o.content_type);
    struct sr_feed_result r;
    struct sr_feed_error e;
    int rv = sr_feed_parse(&r, body, len, &o, &e);
    if (rv != 0) {
        if (r.passes || r.n || !e.msg[0]) {
            abort();
        }
        return 0;
    }
    if (r.format == SR_FEED_AUTO || (r.n && !r.passes) || (o.max_passes && r.n > o.max_passes) ||
        (o.format == SR_FEED_AUTO && r.format != det)) {
        abort();
    }
    const int64_t past = 31 * 86400000LL, future = 366 * 86400000LL;
    for (size_t i = 0; i < r.n; i++) {
        const struct sr_pass_rec *p = &r.passes[i];
        if (p->aos_ms >= p->los_ms || p->aos_ms < o.now_ms - past ||
            p->los_ms > o.now_ms + future || p->los_ms - p->aos_ms > SR_FEED_MAX_PASS_MS) {
            abort();
        }
        if (!(p->uplink_bps >= 0) || !(p->downlink_bps >= 0) || !(p->light_ms >= 0) ||
            !isfinite(p->uplink_bps) || !isfinite(p->downlink_bps) || !isfinite(p->light_ms)) {
            abort();
        }
        if (!isnan(p->max_el_deg) && !(p->max_el_deg >= -90 && p->max_el_deg <= 90)) {
            abort();
        }
        if (!lookup(NULL, SR_FEED_ID_TARGET, p->sat) ||
            strcmp(p->source, sr_feed_format_name(r.format))) {
            abort();
        }
        if (i > 0) {
            const struct sr_pass_rec *q = &r.passes[i - 1];
            int c = strcmp(q->sat, p->sat);
            if (c > 0 || (c == 0 && (q->aos_ms > p->aos_ms || q->los_ms > p->aos_ms))) {
                abort();
            }
        }
    }
    sr_feed_result_free(&r);
    return 0;
}
