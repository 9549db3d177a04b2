/*
 * Explanations: the ranked candidates with every predicted component, the
 * windows used, energy, carbon, the margin, the choice, and why each loser
 * lost. Infeasible candidates carry their reason; feasible losers are told by
 * how much time, energy, money and carbon they trail the winner.
 */
#include "routing/routing_int.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static const char *place_name(const struct sr_workload *w, char *buf, size_t len)
{
    switch (w->place) {
    case SR_PLACE_ORBIT:
        return "orbit";
    case SR_PLACE_GROUND:
        return "ground";
    case SR_PLACE_TARGET:
        snprintf(buf, len, "target:%s", w->place_target);
        return buf;
    default:
        return "any";
    }
}

static const char *why_token(sr_why w)
{
    static const char *const names[] = {"",          "placement", "ejected", "deadline",
                                        "no_window", "wait",      "data"};
    return (size_t)w < sizeof(names) / sizeof(names[0]) ? names[w] : "other";
}

/* Why feasible |c| lost to |win|. */
static void loser_why(const sr_router *r, const struct sr_candidate *c,
                      const struct sr_candidate *win, char *out, size_t len)
{
    snprintf(out, len,
             "higher cost than %s (%.1f > %.1f): %+.0f ms, %+.3f kJ, %+.6f price, %+.3f g CO2",
             r->t[win->target].info.id, c->cost, win->cost, c->predicted_ms - win->predicted_ms,
             (c->energy_j - win->energy_j) / 1000.0, c->energy_price - win->energy_price,
             c->carbon_g - win->carbon_g);
}

static int append_time(sr_buf *b, const char *key, int64_t ms, bool comma)
{
    char ts[SR_RFC3339_LEN];
    if (!ms || sr_time_format(ts, ms) < 0) {
        return sr_buf_appendf(b, "%s\"%s\":null", comma ? "," : "", key);
    }
    return sr_buf_appendf(b, "%s\"%s\":\"%s\"", comma ? "," : "", key, ts);
}

static int num(sr_buf *b, const char *key, double v)
{
    if (!isfinite(v)) {
        return sr_buf_appendf(b, ",\"%s\":null", key);
    }
    return sr_buf_appendf(b, ",\"%s\":%.6g", key, v);
}

int sr_explain_json(sr_buf *b, const sr_router *r, const struct sr_workload *w, int64_t now_ms,
                    const struct sr_candidate *c, size_t n)
{
    char pbuf[80];
    int rv = sr_buf_append(b, "{", 1);
    rv = rv ? rv : append_time(b, "now", now_ms, false);
    rv = rv ? rv : append_time(b, "deadline", w->deadline_ms, true);
    rv = rv ? rv
            : sr_buf_appendf(
                  b,
                  ",\"workload\":{\"work_gop\":%.6g,\"bytes\":%lld,\"result_bytes\":%lld,"
                  "\"deadline_ms\":%lld,\"place\":\"%s\",\"data_at\":",
                  w->work_gop, (long long)w->bytes_in, (long long)w->result_bytes,
                  (long long)(w->deadline_ms - now_ms), place_name(w, pbuf, sizeof(pbuf)));
    rv = rv ? rv
            : (w->data_at[0] ? sr_buf_append_json_str(b, w->data_at, strlen(w->data_at))
                             : sr_buf_append(b, "null", 4));
    rv = rv ? rv
            : sr_buf_appendf(b, ",\"store_and_forward\":%s}",
                             w->store_and_forward ? "true" : "false");
    rv = rv ? rv : sr_buf_append(b, ",\"choice\":", 10);
    const struct sr_candidate *win = n > 0 && c[0].feasible ? &c[0] : NULL;
    if (win) {
        const char *id = r->t[win->target].info.id;
        rv = rv ? rv : sr_buf_append_json_str(b, id, strlen(id));
    } else {
        rv = rv ? rv : sr_buf_append(b, "null", 4);
    }
    rv = rv ? rv : sr_buf_append(b, ",\"candidates\":[", 15);
    for (size_t i = 0; rv == 0 && i < n; i++) {
        const struct sr_candidate *x = &c[i];
        const struct target *t = &r->t[x->target];
        rv = sr_buf_appendf(b, "%s{\"rank\":%zu,\"target\":", i ? "," : "", i + 1);
        rv = rv ? rv : sr_buf_append_json_str(b, t->info.id, strlen(t->info.id));
        rv = rv ? rv
                : sr_buf_appendf(b, ",\"kind\":\"%s\",\"feasible\":%s,\"chosen\":%s",
                                 t->info.kind == SR_TARGET_SATELLITE ? "satellite" : "idc",
                                 x->feasible ? "true" : "false", x == win ? "true" : "false");
        if (rv == 0 && t->info.via_station[0]) {
            /* federation: this plan leaves through another station's pass */
            rv = sr_buf_append(b, ",\"via_station\":", 15);
            rv = rv ? rv
                    : sr_buf_append_json_str(b, t->info.via_station, strlen(t->info.via_station));
        }
        rv = rv ? rv : num(b, "predicted_ms", x->predicted_ms >= 0 ? x->predicted_ms : NAN);
        rv = rv ? rv : num(b, "margin_ms", x->margin_ms);
        rv = rv ? rv : num(b, "cost", x->cost < 1e300 ? x->cost : NAN);
        rv = rv ? rv : sr_buf_appendf(b, ",\"components\":{\"fetch_ms\":%.6g", x->fetch_ms);
        rv = rv ? rv : num(b, "wait_ms", x->wait_ms);
        rv = rv ? rv : num(b, "uplink_ms", x->uplink_ms);
        rv = rv ? rv : num(b, "light_up_ms", x->light_up_ms);
        rv = rv ? rv : num(b, "queue_ms", x->queue_ms);
        rv = rv ? rv : num(b, "compute_ms", x->compute_ms);
        rv = rv ? rv : num(b, "result_wait_ms", x->result_wait_ms);
        rv = rv ? rv : num(b, "downlink_ms", x->downlink_ms);
        rv = rv ? rv : num(b, "light_down_ms", x->light_down_ms);
        rv = rv ? rv : sr_buf_append(b, "},\"window\":{", 12);
        rv = rv ? rv : append_time(b, "uplink_aos", x->up_aos_ms, false);
        rv = rv ? rv : append_time(b, "uplink_los", x->up_los_ms, true);
        rv = rv ? rv : append_time(b, "downlink_aos", x->down_aos_ms, true);
        rv = rv ? rv : append_time(b, "downlink_los", x->down_los_ms, true);
        rv = rv ? rv
                : sr_buf_appendf(b, ",\"result_pass\":\"%s\"}",
                                 !x->down_aos_ms       ? "n/a"
                                 : x->result_next_pass ? "later"
                                                       : "same");
        rv = rv ? rv
                : sr_buf_appendf(b,
                                 ",\"energy\":{\"joules\":%.6g,\"kwh\":%.6g,\"price\":%.6g,"
                                 "\"carbon_g\":%.6g,\"green_frac\":%.3f,\"eclipse\":%s}",
                                 x->energy_j, x->energy_j / 3.6e6, x->energy_price, x->carbon_g,
                                 x->green_frac, x->eclipse ? "true" : "false");
        char why[300];
        if (!x->feasible) {
            snprintf(why, sizeof(why), "%s", x->why);
        } else if (x != win && win) {
            loser_why(r, x, win, why, sizeof(why));
        } else {
            snprintf(why, sizeof(why), "chosen: feasible with the lowest cost");
        }
        rv = rv ? rv : sr_buf_appendf(b, ",\"reason\":\"%s\",\"why\":", why_token(x->why_code));
        rv = rv ? rv : sr_buf_append_json_str(b, why, strlen(why));
        rv = rv ? rv : sr_buf_append(b, "}", 1);
    }
    rv = rv ? rv : sr_buf_append(b, "]}", 2);
    return rv;
}

int sr_explain_text(sr_buf *b, const sr_router *r, const struct sr_workload *w, int64_t now_ms,
                    const struct sr_candidate *c, size_t n)
{
    char now[SR_RFC3339_LEN], pbuf[80];
    if (sr_time_format(now, now_ms) < 0) {
        snprintf(now, sizeof(now), "%lld", (long long)now_ms);
    }
    const struct sr_candidate *win = n > 0 && c[0].feasible ? &c[0] : NULL;
    int rv = sr_buf_appendf(
        b,
        "at %s: %.6g Gop, %lld bytes in, %lld bytes back, %lld ms left, place %s%s%s\n"
        "choice: %s\n\n",
        now, w->work_gop, (long long)w->bytes_in, (long long)w->result_bytes,
        (long long)(w->deadline_ms - now_ms), place_name(w, pbuf, sizeof(pbuf)),
        w->data_at[0] ? ", data at " : "", w->data_at,
        win ? r->t[win->target].info.id : "none (no target can meet the deadline)");
    rv = rv ? rv
            : sr_buf_appendf(b,
                             "%-4s %-16s %-4s %10s %8s %8s %8s %8s %8s %8s %8s %8s %8s %8s "
                             "%10s %9s %5s\n",
                             "rank", "target", "ok", "total_ms", "fetch", "wait", "up", "light",
                             "queue", "compute", "rwait", "down", "light", "margin", "energy_kJ",
                             "CO2_g", "green");
    for (size_t i = 0; rv == 0 && i < n; i++) {
        const struct sr_candidate *x = &c[i];
        rv = sr_buf_appendf(b,
                            "%-4zu %-16s %-4s %10.1f %8.1f %8.1f %8.1f %8.1f %8.1f %8.1f %8.1f "
                            "%8.1f %8.1f %8.1f %10.3f %9.3f %5.2f\n",
                            i + 1, r->t[x->target].info.id, x->feasible ? "yes" : "no",
                            x->predicted_ms, x->fetch_ms, x->wait_ms, x->uplink_ms, x->light_up_ms,
                            x->queue_ms, x->compute_ms, x->result_wait_ms, x->downlink_ms,
                            x->light_down_ms, x->margin_ms, x->energy_j / 1000.0, x->carbon_g,
                            x->green_frac);
    }
    rv = rv ? rv : sr_buf_append(b, "\n", 1);
    for (size_t i = 0; rv == 0 && i < n; i++) {
        const struct sr_candidate *x = &c[i];
        char why[300], up[SR_RFC3339_LEN] = "", los[SR_RFC3339_LEN] = "", down[SR_RFC3339_LEN] = "";
        if (!x->feasible) {
            snprintf(why, sizeof(why), "%s", x->why);
        } else if (x != win && win) {
            loser_why(r, x, win, why, sizeof(why));
        } else {
            snprintf(why, sizeof(why), "chosen: feasible with the lowest cost");
        }
        rv = sr_buf_appendf(b, "%-16s %s\n", r->t[x->target].info.id, why);
        if (rv == 0 && r->t[x->target].info.via_station[0]) {
            rv = sr_buf_appendf(b, "%-16s via station %s (forwarded there through the cluster)\n",
                                "", r->t[x->target].info.via_station);
        }
        if (rv == 0 && x->up_aos_ms) {
            if (sr_time_format(up, x->up_aos_ms) < 0 || sr_time_format(los, x->up_los_ms) < 0 ||
                sr_time_format(down, x->down_aos_ms) < 0) {
                continue;
            }
            rv = sr_buf_appendf(b, "%-16s uplink pass %s .. %s, result in the %s pass (AOS %s)%s\n",
                                "", up, los, x->result_next_pass ? "next" : "same", down,
                                x->eclipse ? ", computes in eclipse (battery)" : "");
        }
    }
    return rv;
}
