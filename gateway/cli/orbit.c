/*
 * skyroute propagate / passes / elements: the CLI face of linkmodels/.
 *
 * propagate --verify FILE reproduces Vallado's testcpp output format so that
 * tcppver.out can be compared line by line; passes prints AOS/TCA/LOS as JSON
 * or a table; elements synth writes Walker shells and overhead passes.
 */
#include "gateway/cli/cli.h"
#include "common/common.h"
#include "linkmodels/linkmodels.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_FILE (64u << 20)

/* Reads |path| ("-" = stdin) into a NUL-terminated malloc'd buffer. */
static int read_file(const char *path, char **out, size_t *len)
{
    if (strcmp(path, "-") == 0) {
        uint8_t *d;
        int rc = sr_cli_read_stdin(&d, len, MAX_FILE);
        if (rc != 0) {
            return rc;
        }
        char *s = realloc(d, *len + 1);
        if (s == NULL) {
            free(d);
            return SR_ERR_NOMEM;
        }
        s[*len] = '\0';
        *out = s;
        return 0;
    }
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        return SR_ERR_IO;
    }
    sr_buf b;
    sr_buf_init(&b, MAX_FILE);
    int rc = 0;
    for (;;) {
        if ((rc = sr_buf_reserve(&b, 65536)) != 0) {
            break;
        }
        size_t n = fread(b.data + b.len, 1, b.cap - b.len, f);
        b.len += n;
        if (n == 0) {
            if (ferror(f)) {
                rc = SR_ERR_IO;
            }
            break;
        }
    }
    fclose(f);
    if (rc == 0) {
        rc = sr_buf_terminate(&b);
    }
    if (rc != 0) {
        sr_buf_free(&b);
        return rc;
    }
    *out = (char *)b.data;
    *len = b.len;
    return 0;
}

static int parse_time_opt(int64_t *ms, const char *s)
{
    return sr_time_parse(ms, s, (size_t)-1);
}

/* ---- propagate ------------------------------------------------------------------ */

static const char propagate_usage[] =
    "usage: skyroute propagate --verify FILE\n"
    "       skyroute propagate --elements FILE --from TIME [--to TIME] [--step SEC]\n"
    "\n"
    "  --verify FILE    Vallado verification input (SGP4-VER.TLE format: line 2 is\n"
    "                   followed by start, stop and step in minutes); prints\n"
    "                   '<catnum> xx' and rows 'tsince x y z xdot ydot zdot'\n"
    "                   (minutes, TEME km, km/s) as in tcppver.out\n"
    "  --elements FILE  any supported element format; prints TEME states\n"
    "  --from/--to TIME RFC 3339 UTC; --step SEC (default 60)\n";

static void print_row(double t, const double r[3], const double v[3])
{
    printf(" %16.8f %16.8f %16.8f %16.8f %12.9f %12.9f %12.9f\n", t, r[0], r[1], r[2], v[0], v[1],
           v[2]);
}

static int verify_one(const char *l1, const char *l2, int *nerr)
{
    sr_elements e;
    char err[256];
    int rc = sr_tle_parse(&e, NULL, l1, l2, 0, err, sizeof err);
    if (rc == SR_ERR_ELEM_CHECKSUM) {
        fprintf(stderr, "skyroute propagate: warning: %s (accepted in --verify)\n", err);
        rc = sr_tle_parse(&e, NULL, l1, l2, SR_ELEM_NO_CHECKSUM, err, sizeof err);
    }
    if (rc != 0) {
        fprintf(stderr, "skyroute propagate: %s\n", err);
        (*nerr)++;
        return 0;
    }
    double start, stop, step;
    const char *extra = l2 + 69;
    char *end;
    start = strtod(extra, &end);
    if (end == extra) {
        fprintf(stderr, "skyroute propagate: satellite %u: line 2 lacks start/stop/step\n",
                e.catnum);
        (*nerr)++;
        return 0;
    }
    extra = end;
    stop = strtod(extra, &end);
    if (end == extra) {
        fprintf(stderr, "skyroute propagate: satellite %u: line 2 lacks stop/step\n", e.catnum);
        (*nerr)++;
        return 0;
    }
    extra = end;
    step = strtod(extra, &end);
    if (end == extra || !(step > 0) || !isfinite(start) || !isfinite(stop)) {
        fprintf(stderr, "skyroute propagate: satellite %u: bad step\n", e.catnum);
        (*nerr)++;
        return 0;
    }
    sr_sat *sat = NULL;
    printf("%u xx\n", e.catnum);
    rc = sr_sat_new_unchecked(&sat, &e);
    if (sat == NULL) {
        fprintf(stderr, "skyroute propagate: satellite %u: %s\n", e.catnum, sr_strerror(rc));
        (*nerr)++;
        return rc == SR_ERR_NOMEM ? rc : 0;
    }
    double r[3], v[3];
    rc = sr_sgp4(sat, 0.0, r, v);
    if (rc != 0) {
        fprintf(stderr, "skyroute propagate: satellite %u: t=%.8f min: %s (code %d)\n", e.catnum,
                0.0, sr_strerror(rc), SR_ERR_SGP4_ECC - rc + 1);
        sr_sat_free(sat);
        (*nerr)++;
        return 0;
    }
    print_row(0.0, r, v);
    /* Vallado's testcpp loop: from start (not repeating t = 0) to stop, the
     * last step clipped to stop. */
    double tsince = start;
    if (fabs(tsince) > 1.0e-8) {
        tsince = tsince - step;
    }
    while (tsince < stop) {
        tsince = tsince + step;
        if (tsince > stop) {
            tsince = stop;
        }
        rc = sr_sgp4(sat, tsince, r, v);
        if (rc != 0) {
            fprintf(stderr, "skyroute propagate: satellite %u: t=%.8f min: %s (code %d)\n",
                    e.catnum, tsince, sr_strerror(rc), SR_ERR_SGP4_ECC - rc + 1);
            (*nerr)++;
            break;
        }
        print_row(tsince, r, v);
    }
    sr_sat_free(sat);
    return 0;
}

static int propagate_verify(const char *path)
{
    char *text;
    size_t len;
    int rc = read_file(path, &text, &len);
    if (rc != 0) {
        fprintf(stderr, "skyroute propagate: %s: %s\n", path,
                rc == SR_ERR_IO ? strerror(errno) : sr_strerror(rc));
        return 1;
    }
    int nerr = 0;
    char *save = NULL;
    char *line = strtok_r(text, "\n", &save);
    while (line != NULL && rc == 0) {
        size_t ll = strlen(line);
        if (ll > 0 && line[ll - 1] == '\r') {
            line[ll - 1] = '\0';
        }
        if (line[0] == '1' && line[1] == ' ') {
            char *l2 = strtok_r(NULL, "\n", &save);
            if (l2 == NULL) {
                fprintf(stderr, "skyroute propagate: file ends after a line 1\n");
                nerr++;
                break;
            }
            size_t l2n = strlen(l2);
            if (l2n > 0 && l2[l2n - 1] == '\r') {
                l2[l2n - 1] = '\0';
            }
            if (strlen(l2) < 69) {
                fprintf(stderr, "skyroute propagate: TLE line 2: truncated\n");
                nerr++;
            } else {
                rc = verify_one(line, l2, &nerr);
            }
        }
        line = strtok_r(NULL, "\n", &save);
    }
    free(text);
    fflush(stdout);
    /* SGP4 errors are expected in the verification set: exit 0 when every
     * set was read, 1 only on read or memory failures. */
    return rc != 0 ? 1 : 0;
}

static int load_sats(const char *sub, const char *path, sr_sat ***sats_out, size_t *n_out)
{
    char *text;
    size_t len;
    char err[256];
    sr_elements *els = NULL;
    size_t n = 0;
    int rc = read_file(path, &text, &len);
    if (rc != 0) {
        fprintf(stderr, "skyroute %s: %s: %s\n", sub, path,
                rc == SR_ERR_IO ? strerror(errno) : sr_strerror(rc));
        return 1;
    }
    rc = sr_elements_parse_text(&els, &n, text, len, 0, 0, err, sizeof err);
    free(text);
    if (rc != 0) {
        fprintf(stderr, "skyroute %s: %s: %s\n", sub, path, err);
        return 1;
    }
    sr_sat **sats = calloc(n, sizeof(*sats));
    if (sats == NULL) {
        free(els);
        fprintf(stderr, "skyroute %s: out of memory\n", sub);
        return 1;
    }
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        rc = sr_sat_new(&sats[k], &els[i]);
        if (rc != 0) {
            fprintf(stderr, "skyroute %s: satellite %u (%s): %s; skipped\n", sub, els[i].catnum,
                    els[i].name, sr_strerror(rc));
            continue;
        }
        k++;
    }
    free(els);
    *sats_out = sats;
    *n_out = k;
    return 0;
}

static void free_sats(sr_sat **sats, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        sr_sat_free(sats[i]);
    }
    free(sats);
}

static void sat_label(char *out, size_t cap, const sr_sat *sat)
{
    const sr_elements *e = sr_sat_elements(sat);
    if (e->name[0] != '\0') {
        snprintf(out, cap, "%s", e->name);
    } else {
        snprintf(out, cap, "%u", e->catnum);
    }
}

int sr_cli_propagate(int argc, char **argv)
{
    static const struct option opts[] = {{"verify", required_argument, NULL, 'V'},
                                         {"elements", required_argument, NULL, 'e'},
                                         {"from", required_argument, NULL, 'f'},
                                         {"to", required_argument, NULL, 't'},
                                         {"step", required_argument, NULL, 's'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    const char *verify = NULL, *elements = NULL, *from_s = NULL, *to_s = NULL;
    double step_s = 60.0;
    int c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'V':
            verify = optarg;
            break;
        case 'e':
            elements = optarg;
            break;
        case 'f':
            from_s = optarg;
            break;
        case 't':
            to_s = optarg;
            break;
        case 's':
            if (sr_parse_double(&step_s, optarg, strlen(optarg)) != 0 || !(step_s > 0)) {
                return sr_cli_usage_error("propagate", propagate_usage, "bad --step '%s'", optarg);
            }
            break;
        case 'h':
            fputs(propagate_usage, stdout);
            return 0;
        default:
            return sr_cli_usage_error("propagate", propagate_usage,
                                      "unknown option or missing argument '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc) {
        return sr_cli_usage_error("propagate", propagate_usage, "unexpected argument '%s'",
                                  argv[optind]);
    }
    if (verify != NULL) {
        return propagate_verify(verify);
    }
    if (elements == NULL || from_s == NULL) {
        return sr_cli_usage_error("propagate", propagate_usage,
                                  "need --verify FILE or --elements FILE --from TIME");
    }
    int64_t from, to;
    if (parse_time_opt(&from, from_s) != 0) {
        return sr_cli_usage_error("propagate", propagate_usage, "bad --from '%s'", from_s);
    }
    to = from;
    if (to_s != NULL && parse_time_opt(&to, to_s) != 0) {
        return sr_cli_usage_error("propagate", propagate_usage, "bad --to '%s'", to_s);
    }
    sr_sat **sats;
    size_t n;
    if (load_sats("propagate", elements, &sats, &n) != 0) {
        return 1;
    }
    int64_t step = (int64_t)(step_s * 1000.0);
    if (step < 1) {
        step = 1;
    }
    for (size_t i = 0; i < n; i++) {
        char label[80];
        sat_label(label, sizeof label, sats[i]);
        for (int64_t t = from; t <= to; t += step) {
            sr_state s;
            char ts[SR_RFC3339_LEN];
            int rc = sr_propagate(sats[i], t, &s);
            if (sr_time_format(ts, t) < 0) {
                break;
            }
            if (rc != 0) {
                fprintf(stderr, "skyroute propagate: %s at %s: %s\n", label, ts, sr_strerror(rc));
                break;
            }
            printf("%s %s %.8f %.8f %.8f %.9f %.9f %.9f\n", label, ts, s.r[0], s.r[1], s.r[2],
                   s.v[0], s.v[1], s.v[2]);
        }
    }
    free_sats(sats, n);
    return 0;
}

/* ---- passes ------------------------------------------------------------------------ */

static const char passes_usage[] =
    "usage: skyroute passes --elements FILE --station LAT,LON,ALT_M --from TIME --to TIME\n"
    "                       [--min-el DEG] [--json]\n"
    "\n"
    "  --elements FILE  TLE (2/3-line) or OMM (JSON, CSV, XML, KVN); many satellites\n"
    "  --station        WGS-84 latitude, longitude (degrees) and altitude (metres)\n"
    "  --from, --to     RFC 3339 UTC window\n"
    "  --min-el DEG     elevation mask (default 0)\n"
    "  --json           JSON array of {sat, norad, aos, tca, los, max_el_deg,\n"
    "                   aos_az_deg, los_az_deg}; otherwise a table\n"
    "\n"
    "A pass in progress at --from is reported with its true AOS, one in progress at\n"
    "--to with its true LOS, each searched up to 3 days away; beyond that (e.g. a\n"
    "geostationary satellite) the JSON adds \"aos_clipped\" / \"los_clipped\": true.\n";

struct pass_row {
    sr_pass p;
    size_t sat;
};

static int cmp_pass(const void *a, const void *b)
{
    const struct pass_row *x = a, *y = b;
    if (x->p.aos_ms != y->p.aos_ms) {
        return x->p.aos_ms < y->p.aos_ms ? -1 : 1;
    }
    return x->sat < y->sat ? -1 : (x->sat > y->sat);
}

int sr_cli_passes(int argc, char **argv)
{
    static const struct option opts[] = {
        {"elements", required_argument, NULL, 'e'}, {"station", required_argument, NULL, 's'},
        {"from", required_argument, NULL, 'f'},     {"to", required_argument, NULL, 't'},
        {"min-el", required_argument, NULL, 'm'},   {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},           {NULL, 0, NULL, 0}};
    const char *elements = NULL, *station = NULL, *from_s = NULL, *to_s = NULL;
    double min_el = 0.0;
    int json = 0, c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'e':
            elements = optarg;
            break;
        case 's':
            station = optarg;
            break;
        case 'f':
            from_s = optarg;
            break;
        case 't':
            to_s = optarg;
            break;
        case 'm':
            if (sr_parse_double(&min_el, optarg, strlen(optarg)) != 0) {
                return sr_cli_usage_error("passes", passes_usage, "bad --min-el '%s'", optarg);
            }
            break;
        case 'j':
            json = 1;
            break;
        case 'h':
            fputs(passes_usage, stdout);
            return 0;
        default:
            return sr_cli_usage_error("passes", passes_usage,
                                      "unknown option or missing argument '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc) {
        return sr_cli_usage_error("passes", passes_usage, "unexpected argument '%s'", argv[optind]);
    }
    if (!elements || !station || !from_s || !to_s) {
        return sr_cli_usage_error("passes", passes_usage,
                                  "--elements, --station, --from and --to are required");
    }
    sr_station st;
    if (sr_station_parse(&st, station) != 0) {
        return sr_cli_usage_error("passes", passes_usage, "bad --station '%s' (LAT,LON,ALT_M)",
                                  station);
    }
    int64_t from, to;
    if (parse_time_opt(&from, from_s) != 0) {
        return sr_cli_usage_error("passes", passes_usage, "bad --from '%s'", from_s);
    }
    if (parse_time_opt(&to, to_s) != 0) {
        return sr_cli_usage_error("passes", passes_usage, "bad --to '%s'", to_s);
    }
    if (to < from) {
        return sr_cli_usage_error("passes", passes_usage, "--to is before --from");
    }
    if (!(min_el >= -5.0 && min_el <= 89.0)) {
        return sr_cli_usage_error("passes", passes_usage, "--min-el must be in [-5, 89]");
    }
    sr_sat **sats;
    size_t n;
    if (load_sats("passes", elements, &sats, &n) != 0) {
        return 1;
    }
    struct pass_row *rows = NULL;
    size_t nrows = 0, cap = 0;
    int status = 0;
    for (size_t i = 0; i < n; i++) {
        sr_pass *ps;
        size_t np;
        int rc = sr_find_passes(&st, sats[i], from, to, min_el, &ps, &np);
        if (rc != 0) {
            char label[80];
            sat_label(label, sizeof label, sats[i]);
            fprintf(stderr, "skyroute passes: %s: %s\n", label, sr_strerror(rc));
            status = 1;
            continue;
        }
        for (size_t k = 0; k < np; k++) {
            if (nrows == cap) {
                size_t nc = cap ? cap * 2 : 64;
                struct pass_row *nr = realloc(rows, nc * sizeof(*nr));
                if (nr == NULL) {
                    free(ps);
                    free(rows);
                    free_sats(sats, n);
                    fprintf(stderr, "skyroute passes: out of memory\n");
                    return 1;
                }
                rows = nr;
                cap = nc;
            }
            rows[nrows].p = ps[k];
            rows[nrows].sat = i;
            nrows++;
        }
        free(ps);
    }
    if (nrows > 1) {
        qsort(rows, nrows, sizeof(*rows), cmp_pass);
    }
    if (json) {
        fputs("[", stdout);
    } else {
        printf("%-24s %-24s %-24s %-24s %7s %7s %7s\n", "SAT", "AOS", "TCA", "LOS", "MAX_EL",
               "AOS_AZ", "LOS_AZ");
    }
    for (size_t i = 0; i < nrows; i++) {
        const sr_pass *p = &rows[i].p;
        char a[SR_RFC3339_LEN], t[SR_RFC3339_LEN], l[SR_RFC3339_LEN], label[80];
        if (sr_time_format(a, p->aos_ms) < 0 || sr_time_format(t, p->tca_ms) < 0 ||
            sr_time_format(l, p->los_ms) < 0) {
            continue;
        }
        sat_label(label, sizeof label, sats[rows[i].sat]);
        if (json) {
            sr_buf b;
            sr_buf_init(&b, 4096);
            if (sr_buf_append_json_str(&b, label, strlen(label)) == 0 &&
                sr_buf_terminate(&b) == 0) {
                printf("%s\n  {\"sat\": %s, \"norad\": %u, \"aos\": \"%s\", \"tca\": \"%s\", "
                       "\"los\": \"%s\", \"max_el_deg\": %.3f, \"aos_az_deg\": %.3f, "
                       "\"los_az_deg\": %.3f%s%s}",
                       i ? "," : "", (char *)b.data, sr_sat_elements(sats[rows[i].sat])->catnum, a,
                       t, l, p->max_el_deg, p->aos_az_deg, p->los_az_deg,
                       (p->flags & SR_PASS_AOS_CLIPPED) ? ", \"aos_clipped\": true" : "",
                       (p->flags & SR_PASS_LOS_CLIPPED) ? ", \"los_clipped\": true" : "");
            }
            sr_buf_free(&b);
        } else {
            printf("%-24.24s %-24s %-24s %-24s %7.2f %7.2f %7.2f%s\n", label, a, t, l,
                   p->max_el_deg, p->aos_az_deg, p->los_az_deg,
                   p->flags ? "  (up beyond the 3-day search)" : "");
        }
    }
    if (json) {
        fputs(nrows ? "\n]\n" : "]\n", stdout);
    }
    free(rows);
    free_sats(sats, n);
    return status;
}

/* ---- elements --------------------------------------------------------------------- */

static const char elements_usage[] =
    "usage: skyroute elements synth [--walker ALT_KM,INC_DEG,PLANES,PER_PLANE,F]\n"
    "                               [--overhead LAT,LON,ALT_M --at TIME [--alt-km KM]\n"
    "                                [--inc-deg DEG] [--descending]]\n"
    "                               [--epoch TIME] [--first-catnum N] [--format tle|omm-json]\n"
    "       skyroute elements check FILE\n"
    "       skyroute elements convert FILE [--format tle|omm-json]\n"
    "\n"
    "  synth --walker   a Walker-delta shell i:T/P/F at a circular altitude\n"
    "  synth --overhead one satellite whose track passes over the station at --at\n"
    "  check            parse FILE (any format) and report the sets or the first error\n"
    "  convert          rewrite FILE as 3-line TLEs or OMM JSON\n";

static int emit(const sr_elements *els, size_t n, int omm_json)
{
    if (omm_json) {
        sr_buf b;
        sr_buf_init(&b, (size_t)1 << 30);
        int rc = sr_buf_append(&b, "[", 1);
        for (size_t i = 0; i < n && rc == 0; i++) {
            if (i) {
                rc = sr_buf_append(&b, ",\n", 2);
            }
            if (rc == 0) {
                rc = sr_omm_format_json(&b, &els[i]);
            }
        }
        if (rc == 0) {
            rc = sr_buf_append(&b, "]\n", 2);
        }
        if (rc == 0) {
            fwrite(b.data, 1, b.len, stdout);
        }
        sr_buf_free(&b);
        return rc;
    }
    for (size_t i = 0; i < n; i++) {
        char l1[SR_TLE_LINE_LEN], l2[SR_TLE_LINE_LEN];
        int rc = sr_tle_format(l1, l2, &els[i]);
        if (rc != 0) {
            fprintf(stderr, "skyroute elements: satellite %u cannot be written as a TLE: %s\n",
                    els[i].catnum, sr_strerror(rc));
            return rc;
        }
        if (els[i].name[0]) {
            printf("%s\n", els[i].name);
        }
        printf("%s\n%s\n", l1, l2);
    }
    return 0;
}

static int parse_csv_doubles(double *v, int n, const char *s)
{
    const char *p = s;
    for (int i = 0; i < n; i++) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if ((i < n - 1 && !e) || (i == n - 1 && e)) {
            return -1;
        }
        if (sr_parse_double(&v[i], p, len) != 0) {
            return -1;
        }
        p = e ? e + 1 : p + len;
    }
    return 0;
}

static int elements_synth(int argc, char **argv)
{
    static const struct option opts[] = {{"walker", required_argument, NULL, 'w'},
                                         {"overhead", required_argument, NULL, 'o'},
                                         {"at", required_argument, NULL, 'a'},
                                         {"alt-km", required_argument, NULL, 'A'},
                                         {"inc-deg", required_argument, NULL, 'I'},
                                         {"descending", no_argument, NULL, 'd'},
                                         {"epoch", required_argument, NULL, 'E'},
                                         {"first-catnum", required_argument, NULL, 'c'},
                                         {"format", required_argument, NULL, 'F'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    const char *walker = NULL, *overhead = NULL, *at_s = NULL, *epoch_s = NULL;
    double alt_km = 550.0, inc_deg = 53.0;
    int descending = 0, omm = 0, c;
    int64_t first = 90000;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'w':
            walker = optarg;
            break;
        case 'o':
            overhead = optarg;
            break;
        case 'a':
            at_s = optarg;
            break;
        case 'A':
            if (sr_parse_double(&alt_km, optarg, strlen(optarg)) != 0) {
                return sr_cli_usage_error("elements", elements_usage, "bad --alt-km");
            }
            break;
        case 'I':
            if (sr_parse_double(&inc_deg, optarg, strlen(optarg)) != 0) {
                return sr_cli_usage_error("elements", elements_usage, "bad --inc-deg");
            }
            break;
        case 'd':
            descending = 1;
            break;
        case 'E':
            epoch_s = optarg;
            break;
        case 'c':
            if (sr_parse_i64(&first, optarg, strlen(optarg)) != 0 || first < 0 ||
                first > 999999999) {
                return sr_cli_usage_error("elements", elements_usage, "bad --first-catnum");
            }
            break;
        case 'F':
            if (strcmp(optarg, "tle") == 0) {
                omm = 0;
            } else if (strcmp(optarg, "omm-json") == 0 || strcmp(optarg, "json") == 0) {
                omm = 1;
            } else {
                return sr_cli_usage_error("elements", elements_usage, "bad --format '%s'", optarg);
            }
            break;
        case 'h':
            fputs(elements_usage, stdout);
            return 0;
        default:
            return sr_cli_usage_error("elements", elements_usage,
                                      "unknown option or missing argument '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc) {
        return sr_cli_usage_error("elements", elements_usage, "unexpected argument '%s'",
                                  argv[optind]);
    }
    if (walker == NULL && overhead == NULL) {
        return sr_cli_usage_error("elements", elements_usage, "synth needs --walker or --overhead");
    }
    sr_elements *els = NULL;
    size_t n = 0;
    int rc = 0;
    if (walker != NULL) {
        double w[5];
        int64_t epoch;
        if (parse_csv_doubles(w, 5, walker) != 0 || w[2] < 1 || w[3] < 1 || w[4] < 0 ||
            w[2] != floor(w[2]) || w[3] != floor(w[3]) || w[4] != floor(w[4]) ||
            w[2] * w[3] > 1000000) {
            return sr_cli_usage_error("elements", elements_usage,
                                      "bad --walker '%s' (ALT_KM,INC_DEG,PLANES,PER_PLANE,F)",
                                      walker);
        }
        if (epoch_s == NULL || parse_time_opt(&epoch, epoch_s) != 0) {
            return sr_cli_usage_error("elements", elements_usage,
                                      "--walker needs --epoch TIME (RFC 3339)");
        }
        n = (size_t)(w[2] * w[3]);
        els = calloc(n + 1, sizeof(*els));
        if (els == NULL) {
            fprintf(stderr, "skyroute elements: out of memory\n");
            return 1;
        }
        rc = sr_synth_walker(els, w[0], w[1], (unsigned)w[2], (unsigned)w[3], (unsigned)w[4], epoch,
                             (uint32_t)first);
        if (rc != 0) {
            free(els);
            return sr_cli_usage_error("elements", elements_usage,
                                      "--walker values out of range (altitude 150..50000 km, "
                                      "F < planes)");
        }
    }
    if (overhead != NULL) {
        sr_station st;
        int64_t at;
        if (sr_station_parse(&st, overhead) != 0) {
            free(els);
            return sr_cli_usage_error("elements", elements_usage, "bad --overhead '%s'", overhead);
        }
        if (at_s == NULL || parse_time_opt(&at, at_s) != 0) {
            free(els);
            return sr_cli_usage_error("elements", elements_usage, "--overhead needs --at TIME");
        }
        sr_elements *ne = realloc(els, (n + 1) * sizeof(*ne));
        if (ne == NULL) {
            free(els);
            fprintf(stderr, "skyroute elements: out of memory\n");
            return 1;
        }
        els = ne;
        rc = sr_synth_overhead(&els[n], &st, at, alt_km, inc_deg, !descending,
                               (uint32_t)(first + (int64_t)n));
        if (rc != 0) {
            free(els);
            fprintf(stderr, "skyroute elements: inclination %.3f cannot reach latitude %.3f\n",
                    inc_deg, st.lat_deg);
            return 1;
        }
        n++;
    }
    rc = emit(els, n, omm);
    free(els);
    return rc ? 1 : 0;
}

static int elements_file(int argc, char **argv, int convert)
{
    static const struct option opts[] = {{"format", required_argument, NULL, 'F'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    int omm = 0, c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'F':
            if (strcmp(optarg, "tle") == 0) {
                omm = 0;
            } else if (strcmp(optarg, "omm-json") == 0 || strcmp(optarg, "json") == 0) {
                omm = 1;
            } else {
                return sr_cli_usage_error("elements", elements_usage, "bad --format '%s'", optarg);
            }
            break;
        case 'h':
            fputs(elements_usage, stdout);
            return 0;
        default:
            return sr_cli_usage_error("elements", elements_usage,
                                      "unknown option or missing argument '%s'", argv[optind - 1]);
        }
    }
    if (optind != argc - 1) {
        return sr_cli_usage_error("elements", elements_usage, "expected one FILE");
    }
    const char *path = argv[optind];
    char *text;
    size_t len;
    char err[256];
    int rc = read_file(path, &text, &len);
    if (rc != 0) {
        fprintf(stderr, "skyroute elements: %s: %s\n", path,
                rc == SR_ERR_IO ? strerror(errno) : sr_strerror(rc));
        return 1;
    }
    sr_elements *els;
    size_t n;
    rc = sr_elements_parse_text(&els, &n, text, len, 0, 0, err, sizeof err);
    free(text);
    if (rc != 0) {
        fprintf(stderr, "skyroute elements: %s: %s\n", path, err);
        return 1;
    }
    if (convert) {
        rc = emit(els, n, omm);
    } else {
        for (size_t i = 0; i < n; i++) {
            sr_sat *sat;
            int src = sr_sat_new(&sat, &els[i]);
            printf("%u %s epoch=%d/%.8f n=%.8f e=%.7f i=%.4f sgp4=%s\n", els[i].catnum,
                   els[i].name[0] ? els[i].name : "-", els[i].epoch_year, els[i].epoch_days,
                   els[i].mean_motion, els[i].ecc, els[i].incl_deg,
                   src == 0 ? "ok" : sr_errname(src));
            sr_sat_free(sat);
        }
        printf("%zu element sets\n", n);
    }
    free(els);
    return rc ? 1 : 0;
}

int sr_cli_elements(int argc, char **argv)
{
    if (argc < 2) {
        return sr_cli_usage_error("elements", elements_usage, "missing subcommand");
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        fputs(elements_usage, stdout);
        return 0;
    }
    if (strcmp(argv[1], "synth") == 0) {
        return elements_synth(argc - 1, argv + 1);
    }
    if (strcmp(argv[1], "check") == 0) {
        return elements_file(argc - 1, argv + 1, 0);
    }
    if (strcmp(argv[1], "convert") == 0) {
        return elements_file(argc - 1, argv + 1, 1);
    }
    return sr_cli_usage_error("elements", elements_usage, "unknown subcommand '%s'", argv[1]);
}
