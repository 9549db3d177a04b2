/*
 * skyroute sim SCENARIO [--seed N] [--json] [--policy P ...] [--energy-weight W]
 *                       [--set SECTION.KEY=VALUE ...]
 *
 * Reads a scenario (INI, see deploy/scenarios/README.md), runs each policy on
 * routing/sim.c's virtual clock and prints a summary table (or JSON with
 * --json: {"policies": [{"name", "deadline_met", "p50_ms", "p99_ms",
 * "energy_kwh", "carbon_kg", "bytes_moved"}, ...]}). Progress goes to stderr.
 */
#include "gateway/cli/cli.h"
#include "gateway/net/net.h"
#include "linkmodels/linkmodels.h"
#include "routing/routing.h"

#include <errno.h>
#include <getopt.h>
#include <ini.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char usage[] =
    "usage: skyroute sim SCENARIO [--seed N] [--json] [--policy NAME ...]\n"
    "                    [--energy-weight W] [--set SECTION.KEY=VALUE ...] [--quiet]\n"
    "\n"
    "Runs the routing policies over a scenario on a virtual clock against a truth\n"
    "that differs from the predictions. Policies: skyroute, ground-only, least-rtt,\n"
    "random, oracle (all by default). Same seed, same numbers.\n";

struct load_ctx {
    sr_sim *sim;
    const char *path;
    char err[400];
};

static int on_key(void *user, const char *section, const char *key, const char *value)
{
    struct load_ctx *c = user;
    char msg[300] = "";
    if (!strcmp(section, "constellation") && !strcmp(key, "elements")) {
        char file[4096];
        if (sr_path_relative(file, sizeof(file), c->path, value) != 0) {
            snprintf(c->err, sizeof(c->err), "elements: path too long");
            return 0;
        }
        FILE *f = fopen(file, "rb");
        if (!f) {
            snprintf(c->err, sizeof(c->err), "elements %s: %s", file, strerror(errno));
            return 0;
        }
        sr_buf b;
        sr_buf_init(&b, 64u << 20);
        char chunk[65536];
        size_t n;
        int rv = 0;
        while (rv == 0 && (n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
            rv = sr_buf_append(&b, chunk, n);
        }
        fclose(f);
        sr_elements *els = NULL;
        size_t nel = 0;
        rv = rv ? rv
                : sr_elements_parse_text(&els, &nel, (const char *)b.data, b.len, 0, 0, msg,
                                         sizeof(msg));
        sr_buf_free(&b);
        rv = rv ? rv : sr_sim_add_elements(c->sim, els, nel);
        free(els);
        if (rv) {
            snprintf(c->err, sizeof(c->err), "elements %s: %s", file,
                     msg[0] ? msg : sr_strerror(rv));
            return 0;
        }
        return 1;
    }
    if (sr_sim_set(c->sim, section, key, value, msg, sizeof(msg)) != 0) {
        snprintf(c->err, sizeof(c->err), "%s", msg);
        return 0;
    }
    return 1;
}

static void progress(void *arg, double frac)
{
    const char *name = arg;
    fprintf(stderr, "\r  %-12s %3.0f%%", name, frac * 100);
    if (frac >= 1.0) {
        fputc('\n', stderr);
    }
    fflush(stderr);
}

int sr_cli_sim(int argc, char **argv)
{
    static const struct option opts[] = {
        {"seed", required_argument, 0, 's'},   {"json", no_argument, 0, 'j'},
        {"policy", required_argument, 0, 'p'}, {"energy-weight", required_argument, 0, 'e'},
        {"set", required_argument, 0, 'S'},    {"quiet", no_argument, 0, 'q'},
        {"help", no_argument, 0, 'h'},         {0, 0, 0, 0},
    };
    uint64_t seed = 1;
    bool json = false, quiet = false;
    const char *policies[8];
    size_t npol = 0;
    const char *energy_w = NULL;
    const char *sets[32];
    size_t nsets = 0;
    int c;
    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 's': {
            int64_t v;
            if (sr_parse_i64(&v, optarg, strlen(optarg)) != 0 || v < 0) {
                return sr_cli_usage_error("sim", usage, "--seed: not a non-negative integer");
            }
            seed = (uint64_t)v;
            break;
        }
        case 'j':
            json = true;
            break;
        case 'q':
            quiet = true;
            break;
        case 'p':
            if (npol == 8) {
                return sr_cli_usage_error("sim", usage, "too many --policy");
            }
            policies[npol++] = optarg;
            break;
        case 'e':
            energy_w = optarg;
            break;
        case 'S':
            if (nsets == 32) {
                return sr_cli_usage_error("sim", usage, "too many --set");
            }
            sets[nsets++] = optarg;
            break;
        case 'h':
            fputs(usage, stdout);
            return 0;
        default:
            return sr_cli_usage_error("sim", usage, "unknown option or missing argument");
        }
    }
    if (optind != argc - 1) {
        return sr_cli_usage_error("sim", usage, "expected one SCENARIO file");
    }
    const char *path = argv[optind];
    const char *const *all = sr_sim_policies();
    if (!npol) {
        for (size_t i = 0; all[i]; i++) {
            policies[npol++] = all[i];
        }
    }
    for (size_t i = 0; i < npol; i++) {
        bool ok = false;
        for (size_t k = 0; all[k]; k++) {
            ok = ok || !strcmp(all[k], policies[i]);
        }
        if (!ok) {
            return sr_cli_usage_error("sim", usage, "unknown policy '%s'", policies[i]);
        }
    }
    struct load_ctx ctx = {NULL, path, ""};
    if (sr_sim_new(&ctx.sim) != 0) {
        fprintf(stderr, "skyroute sim: out of memory\n");
        return 1;
    }
    int rv = ini_parse(path, on_key, &ctx);
    if (rv < 0) {
        fprintf(stderr, "skyroute sim: %s: %s\n", path, rv == -1 ? strerror(errno) : "cannot read");
        sr_sim_free(ctx.sim);
        return 1;
    }
    if (rv > 0) {
        fprintf(stderr, "skyroute sim: %s:%d: %s\n", path, rv,
                ctx.err[0] ? ctx.err : "syntax error");
        sr_sim_free(ctx.sim);
        return 1;
    }
    char msg[300];
    for (size_t i = 0; i < nsets; i++) {
        char sec[128], *dot, *eq;
        snprintf(sec, sizeof(sec), "%s", sets[i]);
        eq = strchr(sec, '=');
        if (eq) {
            *eq = 0;
        }
        dot = eq ? strrchr(sec, '.') : NULL;
        if (!dot) {
            sr_sim_free(ctx.sim);
            return sr_cli_usage_error("sim", usage, "--set wants SECTION.KEY=VALUE");
        }
        *dot = 0;
        if (sr_sim_set(ctx.sim, sec, dot + 1, eq + 1, msg, sizeof(msg)) != 0) {
            fprintf(stderr, "skyroute sim: --set %s: %s\n", sets[i], msg);
            sr_sim_free(ctx.sim);
            return 1;
        }
    }
    if (energy_w && sr_sim_set(ctx.sim, "policy", "energy_weight", energy_w, msg, sizeof(msg))) {
        fprintf(stderr, "skyroute sim: --energy-weight: %s\n", msg);
        sr_sim_free(ctx.sim);
        return 1;
    }
    if (!quiet) {
        fprintf(stderr, "skyroute sim: %s, seed %llu: predicting passes...\n", path,
                (unsigned long long)seed);
    }
    msg[0] = 0;
    if ((rv = sr_sim_prepare(ctx.sim, msg, sizeof(msg))) != 0) {
        fprintf(stderr, "skyroute sim: %s: %s\n", path, msg[0] ? msg : sr_strerror(rv));
        sr_sim_free(ctx.sim);
        return 1;
    }
    struct sr_sim_result res[8];
    for (size_t i = 0; i < npol; i++) {
        rv = sr_sim_run(ctx.sim, policies[i], seed, &res[i], quiet ? NULL : progress,
                        (void *)policies[i]);
        if (rv) {
            fprintf(stderr, "skyroute sim: %s: %s\n", policies[i], sr_strerror(rv));
            sr_sim_free(ctx.sim);
            return 1;
        }
    }
    sr_sim_free(ctx.sim);
    FILE *table = json ? stderr : stdout;
    if (!(json && quiet)) {
        fprintf(table, "\n%-12s %9s %9s %10s %10s %11s %10s %12s %7s %6s %6s %6s\n", "policy",
                "workloads", "deadline", "p50_ms", "p99_ms", "energy_kWh", "carbon_kg",
                "bytes_moved", "refused", "failed", "late", "orbit");
        for (size_t i = 0; i < npol; i++) {
            fprintf(table,
                    "%-12s %9zu %8.2f%% %10.0f %10.0f %11.4f %10.4f %12.4g %7zu %6zu %6zu %6zu\n",
                    res[i].name, res[i].workloads, res[i].deadline_met * 100, res[i].p50_ms,
                    res[i].p99_ms, res[i].energy_kwh, res[i].carbon_kg, res[i].bytes_moved,
                    res[i].refused, res[i].failures, res[i].late, res[i].on_orbit);
        }
    }
    if (json) {
        printf("{\"seed\":%llu,\"policies\":[", (unsigned long long)seed);
        for (size_t i = 0; i < npol; i++) {
            printf("%s{\"name\":\"%s\",\"workloads\":%zu,\"met\":%zu,\"deadline_met\":%.6f,"
                   "\"p50_ms\":%.1f,\"p99_ms\":%.1f,\"energy_kwh\":%.6f,\"carbon_kg\":%.6f,"
                   "\"bytes_moved\":%.0f}",
                   i ? "," : "", res[i].name, res[i].workloads, res[i].met, res[i].deadline_met,
                   res[i].p50_ms, res[i].p99_ms, res[i].energy_kwh, res[i].carbon_kg,
                   res[i].bytes_moved);
        }
        printf("]}\n");
    }
    return 0;
}
