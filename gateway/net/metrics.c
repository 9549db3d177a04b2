/*
 * A small Prometheus registry: families of counters, gauges and histograms,
 * each series keyed by its preformatted label string. Lookups are a linear
 * scan over the families and over a family's series, in front of which sit
 * small caches keyed by the caller's string pointers: callers name metrics
 * with string constants, so the same pointer comes back every request and a
 * hit costs one strcmp (which also makes a stale or reused pointer, a label
 * set formatted on the stack, merely a miss).
 */
#include "gateway/net/net.h"

#include <dirent.h>
#include <sys/resource.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Latency: 100 us (a loopback round trip) to 10 s (a slow satellite hop). */
static const double latency_le[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                    0.05,   0.1,     0.25,   0.5,   1,      2.5,   5,    10};
/* Durations that span waits for a pass: 1 ms to an hour. */
static const double duration_le[] = {0.001, 0.005, 0.025, 0.1, 0.25, 0.5, 1,    2.5, 5,
                                     10,    30,    60,    120, 300,  600, 1800, 3600};
/* Sizes: powers of 4 from 64 B to 64 MiB. */
static const double bytes_le[] = {64,     256,     1024,    4096,     16384,   65536,
                                  262144, 1048576, 4194304, 16777216, 67108864};

#define NLE(a) (sizeof(a) / sizeof((a)[0]))
const struct sr_metrics_buckets sr_buckets_latency = {latency_le, NLE(latency_le)};
const struct sr_metrics_buckets sr_buckets_duration = {duration_le, NLE(duration_le)};
const struct sr_metrics_buckets sr_buckets_bytes = {bytes_le, NLE(bytes_le)};

struct series {
    struct series *next;
    char *labels;
    double value; /* counter/gauge; histogram: sum */
    uint64_t count;
    uint64_t buckets[SR_METRICS_MAX_BUCKETS];
};

#define SERIES_CACHE 4
#define FAMILY_CACHE 64

struct family {
    struct family *next;
    char *name;
    char *help;
    char type[12];
    const struct sr_metrics_buckets *le; /* histograms */
    struct series *series;
    struct {
        uintptr_t labels; /* the caller's pointer, as a number: it may be gone */
        struct series *s;
    } scache[SERIES_CACHE];
};

struct sr_metrics {
    struct family *fams, *last;
    struct {
        uintptr_t name; /* the caller's pointer, as a number: it may be gone */
        struct family *f;
    } fcache[FAMILY_CACHE];
};

/* Cache slot of a string constant's address (Fibonacci hashing: constants
 * sit a few dozen bytes apart, and the top bits of the product mix them all).
 * Each key may sit in |slot| or |slot ^ 1|, so two keys used in turn that
 * share a slot do not evict each other. |n| is a power of two. */
static size_t ptr_slot(uintptr_t x, size_t n)
{
    return (size_t)(((uint64_t)x * UINT64_C(0x9e3779b97f4a7c15)) >> 32) & (n - 1);
}

/* Where to put a key that missed: the pair's first slot unless it is in use
 * and the second is not. */
#define PICK_SLOT(cache, slot, field)                                                              \
    ((cache)[slot].field && !(cache)[(slot) ^ 1].field ? (slot) ^ 1 : (slot))

/* Labels equal: "" (most series) without a call. */
static int labels_eq(const char *a, const char *b)
{
    return a[0] == '\0' ? b[0] == '\0' : !strcmp(a, b);
}

int sr_metrics_new(sr_metrics **out)
{
    *out = calloc(1, sizeof(**out));
    return *out ? 0 : SR_ERR_NOMEM;
}

void sr_metrics_free(sr_metrics *m)
{
    if (!m) {
        return;
    }
    for (struct family *f = m->fams; f;) {
        struct family *fn = f->next;
        for (struct series *s = f->series; s;) {
            struct series *sn = s->next;
            free(s->labels);
            free(s);
            s = sn;
        }
        free(f->name);
        free(f->help);
        free(f);
        f = fn;
    }
    free(m);
}

static struct family *fam_get(sr_metrics *m, const char *name, const char *type)
{
    uintptr_t key = (uintptr_t)name;
    size_t slot = ptr_slot(key, FAMILY_CACHE);
    struct family *f = NULL;
    if (m->fcache[slot].name == key) {
        f = m->fcache[slot].f;
    } else if (m->fcache[slot ^ 1].name == key) {
        f = m->fcache[slot ^ 1].f;
    }
    if (f && !strcmp(f->name, name)) {
        return f;
    }
    slot = PICK_SLOT(m->fcache, slot, name);
    for (f = m->fams; f; f = f->next) {
        if (!strcmp(f->name, name)) {
            m->fcache[slot].name = key;
            m->fcache[slot].f = f;
            return f;
        }
    }
    f = calloc(1, sizeof(*f));
    if (!f) {
        return NULL;
    }
    f->name = strdup(name);
    f->help = strdup("");
    snprintf(f->type, sizeof(f->type), "%s", type);
    f->le = &sr_buckets_latency;
    if (!f->name || !f->help) {
        free(f->name);
        free(f->help);
        free(f);
        return NULL;
    }
    if (m->last) {
        m->last->next = f;
    } else {
        m->fams = f;
    }
    m->last = f;
    m->fcache[slot].name = key;
    m->fcache[slot].f = f;
    return f;
}

static struct series *series_get(struct family *f, const char *labels)
{
    uintptr_t key = (uintptr_t)labels;
    size_t slot = ptr_slot(key, SERIES_CACHE);
    struct series *s = NULL;
    if (f->scache[slot].labels == key) {
        s = f->scache[slot].s;
    } else if (f->scache[slot ^ 1].labels == key) {
        s = f->scache[slot ^ 1].s;
    }
    if (s && labels_eq(s->labels, labels)) {
        return s;
    }
    slot = PICK_SLOT(f->scache, slot, labels);
    for (s = f->series; s; s = s->next) {
        if (labels_eq(s->labels, labels)) {
            f->scache[slot].labels = key;
            f->scache[slot].s = s;
            return s;
        }
    }
    s = calloc(1, sizeof(*s));
    if (!s) {
        return NULL;
    }
    s->labels = strdup(labels);
    if (!s->labels) {
        free(s);
        return NULL;
    }
    /* keep series sorted by label text for stable output */
    struct series **pp = &f->series;
    while (*pp && strcmp((*pp)->labels, labels) < 0) {
        pp = &(*pp)->next;
    }
    s->next = *pp;
    *pp = s;
    f->scache[slot].labels = key;
    f->scache[slot].s = s;
    return s;
}

void sr_metrics_describe(sr_metrics *m, const char *name, const char *type, const char *help)
{
    struct family *f = fam_get(m, name, type);
    if (f) {
        char *h = strdup(help);
        if (h) {
            free(f->help);
            f->help = h;
        }
        snprintf(f->type, sizeof(f->type), "%s", type);
    }
}

void sr_metrics_histogram(sr_metrics *m, const char *name, const char *help,
                          const struct sr_metrics_buckets *le)
{
    sr_metrics_describe(m, name, "histogram", help);
    struct family *f = fam_get(m, name, "histogram");
    /* the bounds of series already observed into stay as they were counted */
    if (f && !f->series && le->n <= SR_METRICS_MAX_BUCKETS) {
        f->le = le;
    }
}

void sr_metrics_add(sr_metrics *m, const char *name, const char *labels, double delta)
{
    struct family *f = fam_get(m, name, "counter");
    struct series *s = f ? series_get(f, labels) : NULL;
    if (s) {
        s->value += delta;
    }
}

void sr_metrics_zero(sr_metrics *m, const char *name, const char *const *labels)
{
    for (; *labels; labels++) {
        sr_metrics_add(m, name, *labels, 0);
    }
}

void sr_metrics_set(sr_metrics *m, const char *name, const char *labels, double value)
{
    struct family *f = fam_get(m, name, "gauge");
    struct series *s = f ? series_get(f, labels) : NULL;
    if (s) {
        s->value = value;
    }
}

void sr_metrics_observe(sr_metrics *m, const char *name, const char *labels, double v)
{
    struct family *f = fam_get(m, name, "histogram");
    struct series *s = f ? series_get(f, labels) : NULL;
    if (!s) {
        return;
    }
    s->value += v;
    s->count++;
    const struct sr_metrics_buckets *le = f->le;
    for (size_t i = 0; i < le->n; i++) {
        if (v <= le->le[i]) {
            s->buckets[i]++;
        }
    }
}

double sr_metrics_get(const sr_metrics *m, const char *name, const char *labels)
{
    for (struct family *f = m->fams; f; f = f->next) {
        if (!strcmp(f->name, name)) {
            for (struct series *s = f->series; s; s = s->next) {
                if (!strcmp(s->labels, labels)) {
                    return !strcmp(f->type, "histogram") ? (double)s->count : s->value;
                }
            }
        }
    }
    return 0;
}

int sr_metrics_render(const sr_metrics *m, sr_buf *out)
{
    int rv = 0;
    for (struct family *f = m->fams; f && rv == 0; f = f->next) {
        rv =
            sr_buf_appendf(out, "# HELP %s %s\n# TYPE %s %s\n", f->name, f->help, f->name, f->type);
        for (struct series *s = f->series; s && rv == 0; s = s->next) {
            const char *sep = s->labels[0] ? "," : "";
            if (strcmp(f->type, "histogram") != 0) {
                if (s->labels[0]) {
                    rv = sr_buf_appendf(out, "%s{%s} %.17g\n", f->name, s->labels, s->value);
                } else {
                    rv = sr_buf_appendf(out, "%s %.17g\n", f->name, s->value);
                }
                continue;
            }
            /* %.15g: 4194304 stays that, not 4.1943e+06, and 0.1 stays 0.1 */
            for (size_t i = 0; i < f->le->n && rv == 0; i++) {
                rv = sr_buf_appendf(out, "%s_bucket{%s%sle=\"%.15g\"} %llu\n", f->name, s->labels,
                                    sep, f->le->le[i], (unsigned long long)s->buckets[i]);
            }
            if (rv == 0) {
                rv = sr_buf_appendf(out, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", f->name, s->labels,
                                    sep, (unsigned long long)s->count);
            }
            if (rv == 0) {
                rv = s->labels[0] ? sr_buf_appendf(out, "%s_sum{%s} %.17g\n%s_count{%s} %llu\n",
                                                   f->name, s->labels, s->value, f->name, s->labels,
                                                   (unsigned long long)s->count)
                                  : sr_buf_appendf(out, "%s_sum %.17g\n%s_count %llu\n", f->name,
                                                   s->value, f->name, (unsigned long long)s->count);
            }
        }
    }
    return rv;
}

/* ---- the process and the build ---------------------------------------------------------- */

#ifndef SR_COMMIT
#define SR_COMMIT ""
#endif
#ifndef SR_ARCH
#define SR_ARCH "unknown"
#endif

/* Reads the small /proc file |path| into |buf| (NUL-terminated); 0 or -1. */
static int read_small(const char *path, char *buf, size_t len)
{
    FILE *fp = fopen(path, "r");
    if (!fp) {
        return -1;
    }
    size_t n = fread(buf, 1, len - 1, fp);
    fclose(fp);
    buf[n] = '\0';
    return n ? 0 : -1;
}

/* The boot time (Unix seconds) from /proc/stat's btime line, which follows
 * per-CPU and interrupt lines many kilobytes long on a large machine; read
 * once, as it does not change. 0 if unknown. */
static double boot_time(void)
{
    static double btime;
    if (btime > 0) {
        return btime;
    }
    FILE *fp = fopen("/proc/stat", "r");
    if (!fp) {
        return 0;
    }
    char *line = NULL;
    size_t cap = 0;
    while (getline(&line, &cap, fp) > 0) {
        if (!strncmp(line, "btime ", 6)) {
            btime = strtod(line + 6, NULL);
            break;
        }
    }
    free(line);
    fclose(fp);
    return btime;
}

/* Open descriptors: the entries of /proc/self/fd but the one reading it. */
static long open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d) {
        return -1;
    }
    long n = 0;
    char self[16];
    snprintf(self, sizeof(self), "%d", dirfd(d));
    for (struct dirent *e = readdir(d); e; e = readdir(d)) {
        if (e->d_name[0] != '.' && strcmp(e->d_name, self) != 0) {
            n++;
        }
    }
    closedir(d);
    return n;
}

/* Appends a HELP/TYPE pair and one unlabelled sample. */
static int one(sr_buf *out, const char *name, const char *type, const char *help, double v)
{
    return sr_buf_appendf(out, "# HELP %s %s\n# TYPE %s %s\n%s %.17g\n", name, help, name, type,
                          name, v);
}

int sr_metrics_render_process(sr_buf *out)
{
    int rv = sr_buf_appendf(out,
                            "# HELP skyroute_build_info The running build: version, commit, "
                            "architecture (always 1).\n# TYPE skyroute_build_info gauge\n"
                            "skyroute_build_info{version=\"%s\",%s%s%sarch=\"%s\"} 1\n",
                            SR_VERSION, SR_COMMIT[0] ? "commit=\"" : "", SR_COMMIT,
                            SR_COMMIT[0] ? "\"," : "", SR_ARCH);
    /* Read at each scrape from /proc/self, by the names every Prometheus
     * client library uses, so stock dashboards and alerts apply. */
    double tck = (double)sysconf(_SC_CLK_TCK), page = (double)sysconf(_SC_PAGESIZE);
    char buf[2048]; /* /proc/self/stat: 52 numbers and a 16-byte name */
    if (rv == 0 && tck > 0 && read_small("/proc/self/stat", buf, sizeof(buf)) == 0) {
        /* fields after "pid (comm)", which may hold spaces: 14 utime, 15 stime, 22 starttime */
        const char *p = strrchr(buf, ')');
        double f[20] = {0};
        for (int k = 0; p && k < 20; k++) {
            p = strchr(p + 1, ' ');
            f[k] = p ? strtod(p + 1, NULL) : 0;
        }
        double bt = boot_time();
        if (p) {
            rv = one(out, "process_cpu_seconds_total", "counter",
                     "User and system CPU time spent, in seconds.", (f[11] + f[12]) / tck);
        }
        if (p && bt > 0 && rv == 0) {
            rv = one(out, "process_start_time_seconds", "gauge",
                     "Start time of the process since the Unix epoch, in seconds.",
                     bt + f[19] / tck);
        }
    }
    if (rv == 0 && read_small("/proc/self/statm", buf, sizeof(buf)) == 0) {
        char *end;
        double size = strtod(buf, &end), rss = strtod(end, NULL);
        rv = one(out, "process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.",
                 size * page);
        rv = rv ? rv
                : one(out, "process_resident_memory_bytes", "gauge",
                      "Resident memory size in bytes.", rss * page);
    }
    long fds = open_fds();
    if (rv == 0 && fds >= 0) {
        rv = one(out, "process_open_fds", "gauge", "Number of open file descriptors.", (double)fds);
    }
    struct rlimit rl;
    if (rv == 0 && getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        rv = one(out, "process_max_fds", "gauge", "Maximum number of open file descriptors.",
                 rl.rlim_cur == RLIM_INFINITY ? -1 : (double)rl.rlim_cur);
    }
    return rv;
}
