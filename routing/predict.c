/*
 * The predictor: every component of a workload's completion time at one
 * target, the windows it uses, and its energy bill (the model is documented
 * in routing.h, "energy-aware, handover-aware routing"), with the placement
 * a workload asks for and the words for why a target cannot take it. It reads
 * the registry and the schedule; the ranking (rank.c) calls it per candidate.
 *
 * A satellite plan walks its passes in order. The uplink takes the first
 * pass that is open at or after the cursor, has room for the bytes (rate x
 * the time left, minus what earlier decisions reserved) and in which the last
 * byte lands before LOS; a pass that would end mid-uplink is skipped, never
 * started. The result takes the first pass open after the compute ends that
 * can carry it the same way. Every step is a constant-time formula over the
 * pass record, so a plan costs a few hundred instructions.
 */
#include "routing/routing_int.h"

#include <float.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

/* Passes looked at per leg before giving up on a target. */
#define MAX_PASSES 64

static double rate_or(double pass_rate, double target_rate)
{
    return pass_rate > 0 ? pass_rate : target_rate;
}

static double xfer_ms(double bytes, double rate)
{
    return rate > 0 && bytes > 0 ? bytes / rate * 1000.0 : 0.0;
}

/*
 * One leg over a satellite's passes: |bytes| at the uplink (|up|) or
 * downlink rate, starting at or after |t|. On success returns the pass and
 * sets *start (transfer start), *dur (transfer time) and *light; NULL if no
 * pass among the next MAX_PASSES (or, when |now_only|, the pass open at |t|)
 * can carry it.
 */
static const struct pass *leg(const struct slot *sl, const struct target *tg, double half,
                              double bytes, bool up, double t, bool now_only, double lm,
                              double *start, double *dur, double *light)
{
    const struct pass *p = sr__pass_after(sl, (int64_t)floor(t));
    const struct pass *end = sl->p + sl->n;
    for (int i = 0; p && p < end && i < MAX_PASSES; p++, i++) {
        double s = (double)p->aos > t ? (double)p->aos : t;
        if (now_only && s > t) {
            return NULL;
        }
        double rate = up ? rate_or(p->up_bps, tg->info.uplink_bps)
                         : rate_or(p->down_bps, tg->info.downlink_bps);
        double d = xfer_ms(bytes, rate);
        double l = p->light_ms > 0 ? (double)p->light_ms : half;
        if (s + d * (1 + lm) + l > (double)p->los) {
            if (now_only) {
                return NULL;
            }
            continue; /* would end mid-transfer: never start it */
        }
        if (rate > 0 && bytes > 0) {
            double room = rate * ((double)p->los - s - l) / 1000.0 - (up ? p->res_up : p->res_down);
            if (bytes * (1 + lm) > room) {
                if (now_only) {
                    return NULL;
                }
                continue; /* oversubscribed */
            }
        }
        *start = s;
        *dur = d;
        *light = l;
        return p;
    }
    return NULL;
}

static double compute_ms_of(const struct target *t, double work_gop)
{
    return work_gop > 0 ? work_gop / t->info.gops * 1000.0 : 0.0;
}

static bool in_eclipse(const struct target *t, int64_t at)
{
    size_t lo = 0, hi = t->necl;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (t->ecl[mid][1] <= at) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return lo < t->necl && t->ecl[lo][0] <= at;
}

static void energy(const struct target *t, double work, int64_t at, struct sr_candidate *c)
{
    const struct sr_energy_profile *e = &t->info.energy;
    double pue = e->pue > 0 ? e->pue : 1.0;
    c->energy_j = work > 0 ? work * e->joules_per_gop * pue : 0.0;
    if (c->energy_j <= 0) {
        c->green_frac = 0;
        return;
    }
    double kwh = c->energy_j / 3.6e6;
    if (t->info.kind == SR_TARGET_SATELLITE) {
        c->eclipse = in_eclipse(t, at);
        c->green_frac = c->eclipse ? 0.0 : 1.0;
        c->energy_price = c->eclipse ? kwh * e->battery_cost : 0.0;
        c->carbon_g = 0;
        return;
    }
    double price = e->price_per_kwh, carbon = e->carbon_g_per_kwh, surplus = 0;
    if (t->nes && t->es[0].t_ms <= at) {
        size_t lo = 0, hi = t->nes; /* last point with t_ms <= at */
        while (hi - lo > 1) {
            size_t mid = (lo + hi) / 2;
            if (t->es[mid].t_ms <= at) {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        const struct sr_energy_point *p = &t->es[lo];
        price = isnan(p->price_per_kwh) ? price : p->price_per_kwh;
        carbon = isnan(p->carbon_g_per_kwh) ? carbon : p->carbon_g_per_kwh;
        surplus = p->pv_surplus_w;
    }
    double green = 0;
    if (e->pv && surplus > 0) {
        double draw_w = t->info.gops * e->joules_per_gop * pue;
        green = draw_w > 0 ? (surplus >= draw_w ? 1.0 : surplus / draw_w) : 0.0;
    }
    c->green_frac = green;
    c->energy_price = kwh * (1 - green) * price;
    c->carbon_g = kwh * (1 - green) * carbon;
}

int sr_place_parse(struct sr_workload *w, const char *v)
{
    w->place_target[0] = 0;
    if (!v || !*v || !strcmp(v, "any")) {
        w->place = SR_PLACE_ANY;
    } else if (!strcmp(v, "orbit")) {
        w->place = SR_PLACE_ORBIT;
    } else if (!strcmp(v, "ground")) {
        w->place = SR_PLACE_GROUND;
    } else if (!strncmp(v, "target:", 7) && v[7] && strlen(v + 7) < SR_TARGET_IDMAX) {
        w->place = SR_PLACE_TARGET;
        snprintf(w->place_target, sizeof(w->place_target), "%s", v + 7);
    } else {
        return SR_ERR_PARSE;
    }
    return 0;
}

bool sr__place_ok(const struct target *t, const struct sr_workload *w)
{
    switch (w->place) {
    case SR_PLACE_TARGET:
        if (t->info.via_station[0] && strcmp(w->place_target, t->info.id) != 0) {
            /* "SAT@STATION" is SAT seen from another station: target:SAT allows it */
            size_t n = strcspn(t->info.id, "@");
            return strlen(w->place_target) == n && !strncmp(w->place_target, t->info.id, n);
        }
        return !strcmp(w->place_target, t->info.id);
    case SR_PLACE_ORBIT:
        return t->info.kind == SR_TARGET_SATELLITE;
    case SR_PLACE_GROUND:
        return t->info.kind == SR_TARGET_IDC;
    default:
        return true;
    }
}

/* Marks |c| infeasible for |why| unless an earlier reason already holds. */
static void refuse(struct sr_candidate *c, sr_why why)
{
    if (c->feasible) {
        c->feasible = false;
        c->why_code = why;
    }
}

void sr__evaluate(const sr_router *r, size_t idx, const struct sr_workload *w, int64_t now,
                  int data_slot, struct sr_candidate *c)
{
    const struct target *t = &r->t[idx];
    /* everything but the text of why (written only for the candidates kept) */
    memset(&c->why_code, 0, sizeof(*c) - offsetof(struct sr_candidate, why_code));
    c->why[0] = 0;
    c->predicted_ms = 0;
    c->cost = 0;
    c->target = idx;
    c->feasible = true;
    if (!sr__place_ok(t, w)) {
        refuse(c, SR_WHY_PLACE);
    }
    if (t->ejected_until > now) {
        refuse(c, SR_WHY_EJECTED);
    }
    if (t->offline) {
        refuse(c, SR_WHY_OFFLINE);
    }
    bool sf = w->store_and_forward;
    double half = sr__ewma_at(t, now) / 2;
    double cur = (double)now;
    double bytes_up = (double)w->bytes_in;

    /* Data gravity: input already onboard a satellite. */
    if (w->data_at[0]) {
        if (!strcmp(w->data_at, t->info.id)) {
            bytes_up = 0;
        } else if (data_slot >= 0 && r->slots[data_slot].target >= 0 &&
                   r->t[r->slots[data_slot].target].scheduled) {
            const struct target *dt = &r->t[r->slots[data_slot].target];
            double s, d, l;
            if (!leg(&r->slots[data_slot], dt, sr__ewma_at(dt, now) / 2, bytes_up, false, cur, !sf,
                     r->pol.link_margin, &s, &d, &l)) {
                refuse(c, SR_WHY_DATA);
                c->predicted_ms = -1;
                c->cost = DBL_MAX;
                return;
            }
            c->fetch_ms = s - cur + d + l;
            cur += c->fetch_ms;
        } else {
            int di = sr_router_find(r, w->data_at);
            if (di >= 0) {
                const struct target *dt = &r->t[di];
                c->fetch_ms = sr__ewma_at(dt, now) / 2 + xfer_ms(bytes_up, dt->info.downlink_bps);
                cur += c->fetch_ms;
            }
        }
    }

    const struct pass *up = NULL, *down = NULL;
    double arrive;
    if (!t->scheduled) {
        c->uplink_ms = xfer_ms(bytes_up, t->info.uplink_bps);
        c->light_up_ms = half;
        arrive = cur + c->uplink_ms + half;
    } else {
        double s, d, l;
        const struct slot *sl = &r->slots[t->slot];
        up = leg(sl, t, half, bytes_up, true, cur, false, r->pol.link_margin, &s, &d, &l);
        if (!up) {
            refuse(c, SR_WHY_NO_WINDOW);
            c->predicted_ms = -1;
            c->cost = DBL_MAX;
            return;
        }
        c->wait_ms = s - cur;
        c->uplink_ms = d;
        c->light_up_ms = l;
        c->up_aos_ms = up->aos;
        c->up_los_ms = up->los;
        arrive = s + d + l;
        if (!sf && (c->wait_ms > 0 || c->fetch_ms > 0)) {
            refuse(c, SR_WHY_WAIT);
        }
    }
    c->compute_ms = compute_ms_of(t, w->work_gop);
    c->queue_ms = t->info.queue_ms;
    if (t->cal.n) {
        c->queue_ms += sr__cal_fit(&t->cal, arrive + t->info.queue_ms, c->compute_ms) -
                       (arrive + t->info.queue_ms);
    }
    double cend = arrive + c->queue_ms + c->compute_ms;
    energy(t, w->work_gop, (int64_t)(arrive + c->queue_ms), c);

    if (!t->scheduled) {
        c->downlink_ms = xfer_ms((double)w->result_bytes, t->info.downlink_bps);
        c->light_down_ms = half;
    } else {
        double s, d, l;
        const struct slot *sl = &r->slots[t->slot];
        down = leg(sl, t, half, (double)w->result_bytes, false, cend, false, r->pol.link_margin, &s,
                   &d, &l);
        if (!down) {
            refuse(c, SR_WHY_NO_WINDOW);
            c->predicted_ms = -1;
            c->cost = DBL_MAX;
            return;
        }
        c->result_wait_ms = s - cend;
        c->downlink_ms = d;
        c->light_down_ms = l;
        c->down_aos_ms = down->aos;
        c->down_los_ms = down->los;
        c->result_next_pass = down != up;
        if (!sf && c->result_next_pass) {
            refuse(c, SR_WHY_WAIT);
        }
    }
    c->predicted_ms = c->fetch_ms + c->wait_ms + c->uplink_ms + c->light_up_ms + c->queue_ms +
                      c->compute_ms + c->result_wait_ms + c->downlink_ms + c->light_down_ms;
    double m =
        r->pol.margin_ms + r->pol.margin_k * t->err_abs + (t->err_mean > 0 ? t->err_mean : 0);
    c->margin_ms = m;
    if (c->predicted_ms + m > (double)(w->deadline_ms - now)) {
        refuse(c, SR_WHY_DEADLINE);
    }
    const struct sr_policy *pol = &r->pol;
    c->cost = pol->time_weight * c->predicted_ms * (1 + pol->inflight_weight * t->inflight) *
                  (1 + t->fail_rate) +
              pol->energy_weight * c->energy_j / 1000.0 + pol->price_weight * c->energy_price +
              pol->carbon_weight * c->carbon_g;
}

void sr__why_text(const sr_router *r, const struct sr_workload *w, int64_t now,
                  struct sr_candidate *c)
{
    const struct target *t = &r->t[c->target];
    double left = (double)(w->deadline_ms - now);
    switch (c->why_code) {
    case SR_WHY_PLACE:
        if (w->place == SR_PLACE_TARGET) {
            snprintf(c->why, sizeof(c->why), "not the requested target");
        } else if (w->place == SR_PLACE_ORBIT) {
            snprintf(c->why, sizeof(c->why), "placement 'orbit' excludes ground targets");
        } else {
            snprintf(c->why, sizeof(c->why), "placement 'ground' excludes satellites");
        }
        break;
    case SR_WHY_EJECTED:
        snprintf(c->why, sizeof(c->why), "ejected after repeated failures for %lld ms more",
                 (long long)(t->ejected_until - now));
        break;
    case SR_WHY_OFFLINE:
        if (t->info.via_station[0]) {
            snprintf(c->why, sizeof(c->why),
                     "station %s is not reachable or has no pass of it in the cluster",
                     t->info.via_station);
        } else {
            snprintf(c->why, sizeof(c->why), "offline");
        }
        break;
    case SR_WHY_DEADLINE:
        if (c->margin_ms > 0) {
            snprintf(c->why, sizeof(c->why),
                     "predicted %.0f ms + margin %.0f ms exceeds the %.0f ms left", c->predicted_ms,
                     c->margin_ms, left);
        } else {
            snprintf(c->why, sizeof(c->why), "predicted %.0f ms exceeds the %.0f ms left",
                     c->predicted_ms, left);
        }
        break;
    case SR_WHY_NO_WINDOW:
        snprintf(c->why, sizeof(c->why),
                 "no pass can carry %lld bytes up and %lld bytes back before LOS",
                 (long long)w->bytes_in, (long long)w->result_bytes);
        break;
    case SR_WHY_WAIT:
        if (c->wait_ms > 0 || c->fetch_ms > 0) {
            snprintf(c->why, sizeof(c->why), "not reachable now: the next window opens in %.0f ms",
                     c->wait_ms + c->fetch_ms);
        } else {
            snprintf(c->why, sizeof(c->why),
                     "the result would come down in a later pass (LOS in %.0f ms)",
                     (double)(c->up_los_ms - now));
        }
        break;
    case SR_WHY_DATA:
        snprintf(c->why, sizeof(c->why), "the input's satellite %s has no window to send it down",
                 w->data_at);
        break;
    default:
        c->why[0] = 0;
        break;
    }
}
