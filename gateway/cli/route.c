/*
 * skyroute route --config FILE [--work GOP] [--bytes N] [--result-bytes N]
 *                [--deadline-ms N] [--place P] [--data-at SAT] [--at TIME]
 *                [--store-and-forward] [--json]
 *
 * Explains the decision the gateway configured by FILE would take for one
 * workload, without a daemon: the targets, [policy] and energy/link profiles
 * from the config; the pass schedules from the gateway's state directory
 * (operator passes as stored; for satellites with stored elements, passes
 * predicted over [gateway] station, and eclipses). Energy forecasts fed to a
 * running daemon (PUT /v1/targets/ID/energy) live in its memory only and are
 * not seen here.
 */
#include "gateway/cli/cli.h"
#include "gateway/config/config.h"
#include "gateway/net/net.h"
#include "gateway/store/store.h"
#include "linkmodels/linkmodels.h"
#include "routing/routing.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char usage[] =
    "usage: skyroute route --config FILE [--work GOP] [--bytes N] [--result-bytes N]\n"
    "                      [--deadline-ms N] [--place any|orbit|ground|target:ID]\n"
    "                      [--data-at SAT] [--at TIME] [--store-and-forward] [--json]\n"
    "\n"
    "Explains the routing decision for one workload from a gateway configuration\n"
    "and its state directory: every candidate with each predicted component, the\n"
    "windows used, energy, carbon, the margin and why each loser lost.\n";

#define HORIZON_MS (2 * 86400 * 1000LL)

static int profiles(const struct sr_config *cfg, sr_router *r, char *err, size_t errlen)
{
    struct sr_policy p;
    sr_policy_default(&p);
    double mw = p.max_windows;
    if (sr_config_num(cfg, "policy", "time_weight", p.time_weight, 0, 1e12, &p.time_weight, err,
                      errlen) ||
        sr_config_num(cfg, "policy", "energy_weight", p.energy_weight, 0, 1e12, &p.energy_weight,
                      err, errlen) ||
        sr_config_num(cfg, "policy", "price_weight", p.price_weight, 0, 1e12, &p.price_weight, err,
                      errlen) ||
        sr_config_num(cfg, "policy", "carbon_weight", p.carbon_weight, 0, 1e12, &p.carbon_weight,
                      err, errlen) ||
        sr_config_num(cfg, "policy", "margin_ms", p.margin_ms, 0, 1e9, &p.margin_ms, err, errlen) ||
        sr_config_num(cfg, "policy", "margin_k", p.margin_k, 0, 100, &p.margin_k, err, errlen) ||
        sr_config_num(cfg, "policy", "inflight_weight", p.inflight_weight, 0, 1e6,
                      &p.inflight_weight, err, errlen) ||
        sr_config_num(cfg, "policy", "link_margin", p.link_margin, 0, 100, &p.link_margin, err,
                      errlen) ||
        sr_config_num(cfg, "policy", "max_windows", mw, 1, 4096, &mw, err, errlen)) {
        return -1;
    }
    p.max_windows = (unsigned)mw;
    if (sr_router_set_policy(r, &p) != 0) {
        snprintf(err, errlen, "%s: [policy]: invalid", cfg->path);
        return -1;
    }
    for (size_t i = 0; i < cfg->ntargets; i++) {
        const struct sr_target_cfg *tc = &cfg->targets[i];
        bool sat = tc->kind == SR_TARGET_SATELLITE;
        char sec[128];
        snprintf(sec, sizeof(sec), "%s.%s", sat ? "satellite" : "idc", tc->id);
        struct sr_energy_profile e;
        memset(&e, 0, sizeof(e));
        double up = 0, down = 0, q = 0, pue = 1;
        if (sr_config_num(cfg, sec, "uplink_bps", 0, 0, 1e13, &up, err, errlen) ||
            sr_config_num(cfg, sec, "downlink_bps", 0, 0, 1e13, &down, err, errlen) ||
            sr_config_num(cfg, sec, "joules_per_gop", 0, 0, 1e9, &e.joules_per_gop, err, errlen) ||
            (sat &&
             sr_config_num(cfg, sec, "battery_cost", 0, 0, 1e9, &e.battery_cost, err, errlen)) ||
            (!sat &&
             (sr_config_num(cfg, sec, "queue_ms", 0, 0, 1e9, &q, err, errlen) ||
              sr_config_num(cfg, sec, "pue", 1, 1, 10, &pue, err, errlen) ||
              sr_config_num(cfg, sec, "price_per_kwh", 0, 0, 1e9, &e.price_per_kwh, err, errlen) ||
              sr_config_num(cfg, sec, "carbon_g_per_kwh", 0, 0, 1e9, &e.carbon_g_per_kwh, err,
                            errlen)))) {
            return -1;
        }
        if (!sat) {
            e.pue = pue;
            const char *power = sr_config_get(cfg, sec, "power", NULL);
            e.pv = power && !strcmp(power, "pv");
        }
        struct sr_target_info ti;
        memset(&ti, 0, sizeof(ti));
        snprintf(ti.id, sizeof(ti.id), "%s", tc->id);
        ti.kind = (sr_target_kind)tc->kind;
        ti.prior_rtt_ms = tc->rtt_ms;
        ti.gops = tc->gops;
        ti.uplink_bps = up;
        ti.downlink_bps = down;
        ti.queue_ms = q;
        ti.energy = e;
        int idx = sr_router_add_target(r, &ti);
        if (idx < 0) {
            snprintf(err, errlen, "%s:%d: target %s: %s", cfg->path, tc->line, tc->id,
                     sr_strerror(idx));
            return -1;
        }
    }
    return 0;
}

/* Passes and eclipses from the state directory. Missing state is not an
 * error: the explanation then says the satellites have no schedule. */
static void load_state(const struct sr_config *cfg, sr_router *r, int64_t at)
{
    char err[300];
    sr_store *st = NULL;
    if (!cfg->state_dir[0] || sr_store_open(&st, cfg->state_dir, err, sizeof(err)) != 0) {
        fprintf(stderr, "skyroute route: no state (%s): satellites without schedules\n",
                cfg->state_dir[0] ? err : "no state_dir");
        return;
    }
    sr_station station;
    const char *sv = sr_config_get(cfg, "gateway", "station", NULL);
    bool have_station = sv && sr_station_parse(&station, sv) == 0;
    double min_el = 10;
    const char *mv = sr_config_get(cfg, "gateway", "min_el_deg", NULL);
    if (mv && sr_parse_double(&min_el, mv, strlen(mv)) != 0) {
        min_el = 10;
    }
    struct sr_store_elements *els = NULL;
    size_t nel = 0;
    if (sr_store_get_elements(st, &els, &nel) != 0) {
        nel = 0;
    }
    for (size_t i = 0; i < cfg->ntargets; i++) {
        const struct sr_target_cfg *tc = &cfg->targets[i];
        if (tc->kind != SR_TARGET_SATELLITE) {
            continue;
        }
        int idx = sr_router_find(r, tc->id);
        char sec[128];
        snprintf(sec, sizeof(sec), "satellite.%s", tc->id);
        const char *cn = sr_config_get(cfg, sec, "catnum", NULL);
        int64_t catnum = -1;
        if (cn && sr_parse_i64(&catnum, cn, strlen(cn)) != 0) {
            catnum = -1;
        }
        for (size_t k = 0; have_station && idx >= 0 && k < nel; k++) {
            if (strcmp(els[k].sat, tc->id) != 0) {
                continue;
            }
            sr_elements *sets = NULL;
            size_t ns = 0;
            if (sr_elements_parse_text(&sets, &ns, els[k].text, els[k].len, 0, 0, NULL, 0) != 0) {
                continue;
            }
            const sr_elements *best = NULL;
            for (size_t s = 0; s < ns; s++) {
                if ((catnum < 0 || sets[s].catnum == (uint32_t)catnum) &&
                    (!best || sets[s].epoch_ms > best->epoch_ms)) {
                    best = &sets[s];
                }
            }
            if (best && sr_router_set_orbit(r, (size_t)idx, best, &station, min_el, NULL, NULL,
                                            at - 3600000, at + HORIZON_MS) != 0) {
                fprintf(stderr, "skyroute route: %s: cannot predict passes\n", tc->id);
            }
            free(sets);
        }
        struct sr_pass_rec *ps = NULL;
        size_t np = 0;
        if (sr_store_passes(st, tc->id, INT64_MIN, INT64_MAX, &ps, &np) == 0 && np > 0) {
            /* operator passes win where they exist */
            for (size_t k = 0; k < np; k++) {
                if (sr_router_set_passes(r, tc->id, ps[k].aos_ms, ps[k].los_ms, &ps[k], 1) != 0) {
                    fprintf(stderr, "skyroute route: %s: a stored pass does not load\n", tc->id);
                }
            }
        }
        free(ps);
    }
    sr_store_elements_free(els, nel);
    sr_store_close(st);
}

int sr_cli_route(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, 0, 'c'},
        {"work", required_argument, 0, 'w'},
        {"bytes", required_argument, 0, 'b'},
        {"result-bytes", required_argument, 0, 'r'},
        {"deadline-ms", required_argument, 0, 'd'},
        {"place", required_argument, 0, 'p'},
        {"data-at", required_argument, 0, 'D'},
        {"at", required_argument, 0, 'a'},
        {"store-and-forward", no_argument, 0, 's'},
        {"json", no_argument, 0, 'j'},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    const char *conf = NULL, *place = NULL, *data_at = NULL;
    double work = 0, bytes = 0, rbytes = 0, deadline = -1;
    int64_t at = sr_now_ms();
    bool json = false, sf = false;
    int c;
    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        double *dst = c == 'w'   ? &work
                      : c == 'b' ? &bytes
                      : c == 'r' ? &rbytes
                      : c == 'd' ? &deadline
                                 : NULL;
        if (dst) {
            if (sr_parse_double(dst, optarg, strlen(optarg)) != 0 || *dst < 0) {
                return sr_cli_usage_error("route", usage, "--%s: not a non-negative number",
                                          c == 'w'   ? "work"
                                          : c == 'b' ? "bytes"
                                          : c == 'r' ? "result-bytes"
                                                     : "deadline-ms");
            }
            continue;
        }
        switch (c) {
        case 'c':
            conf = optarg;
            break;
        case 'p':
            place = optarg;
            break;
        case 'D':
            data_at = optarg;
            break;
        case 'a':
            if (sr_time_parse(&at, optarg, (size_t)-1) != 0) {
                return sr_cli_usage_error("route", usage, "--at: not an RFC 3339 time");
            }
            break;
        case 's':
            sf = true;
            break;
        case 'j':
            json = true;
            break;
        case 'h':
            fputs(usage, stdout);
            return 0;
        default:
            return sr_cli_usage_error("route", usage, "unknown option or missing argument");
        }
    }
    if (!conf || optind != argc) {
        return sr_cli_usage_error("route", usage,
                                  conf ? "unexpected argument" : "--config is required");
    }
    struct sr_workload w;
    memset(&w, 0, sizeof(w));
    if (sr_place_parse(&w, place) != 0) {
        return sr_cli_usage_error("route", usage, "--place: any, orbit, ground or target:ID");
    }
    if (data_at && strlen(data_at) >= sizeof(w.data_at)) {
        return sr_cli_usage_error("route", usage, "--data-at: name too long");
    }
    char err[600];
    struct sr_config *cfg = NULL;
    if (sr_config_load(&cfg, conf, err, sizeof(err)) != 0) {
        fprintf(stderr, "skyroute route: %s\n", err);
        return 1;
    }
    sr_router *r = NULL;
    int status = 1;
    if (sr_router_new(&r) != 0) {
        fprintf(stderr, "skyroute route: out of memory\n");
        goto out;
    }
    if (profiles(cfg, r, err, sizeof(err)) != 0) {
        fprintf(stderr, "skyroute route: %s\n", err);
        goto out;
    }
    if (data_at && sr_router_find(r, data_at) < 0) {
        fprintf(stderr, "skyroute route: --data-at %s: no such target\n", data_at);
        goto out;
    }
    if (data_at) {
        snprintf(w.data_at, sizeof(w.data_at), "%s", data_at);
    }
    load_state(cfg, r, at);
    w.work_gop = work;
    w.bytes_in = (int64_t)bytes;
    w.result_bytes = (int64_t)rbytes;
    w.deadline_ms = at + (int64_t)(deadline >= 0 ? deadline : (double)cfg->default_deadline_ms);
    w.store_and_forward = sf;
    size_t n = sr_router_count(r);
    struct sr_candidate *cands = calloc(n ? n : 1, sizeof(*cands));
    sr_buf b;
    sr_buf_init(&b, 64u << 20);
    if (!cands) {
        fprintf(stderr, "skyroute route: out of memory\n");
        goto out;
    }
    n = sr_router_rank(r, &w, at, cands, n);
    int rv =
        json ? sr_explain_json(&b, r, &w, at, cands, n) : sr_explain_text(&b, r, &w, at, cands, n);
    free(cands);
    if (rv == 0) {
        fwrite(b.data, 1, b.len, stdout);
        if (json) {
            fputc('\n', stdout);
        }
        status = 0;
    } else {
        fprintf(stderr, "skyroute route: %s\n", sr_strerror(rv));
    }
    sr_buf_free(&b);
out:
    sr_router_free(r);
    sr_config_free(cfg);
    return status;
}
