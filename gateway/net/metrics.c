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

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NBUCKETS 14
static const double bucket_bounds[NBUCKETS] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                               0.1,    0.25,  0.5,    1,     2.5,  5,     10};

struct series {
    struct series *next;
    char *labels;
    double value; /* counter/gauge; histogram: sum */
    uint64_t count;
    uint64_t buckets[NBUCKETS];
};

#define SERIES_CACHE 4
#define FAMILY_CACHE 64

struct family {
    struct family *next;
    char *name;
    char *help;
    char type[12];
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

void sr_metrics_add(sr_metrics *m, const char *name, const char *labels, double delta)
{
    struct family *f = fam_get(m, name, "counter");
    struct series *s = f ? series_get(f, labels) : NULL;
    if (s) {
        s->value += delta;
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
    for (int i = 0; i < NBUCKETS; i++) {
        if (v <= bucket_bounds[i]) {
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
            for (int i = 0; i < NBUCKETS && rv == 0; i++) {
                rv = sr_buf_appendf(out, "%s_bucket{%s%sle=\"%g\"} %llu\n", f->name, s->labels, sep,
                                    bucket_bounds[i], (unsigned long long)s->buckets[i]);
            }
            if (rv == 0) {
                rv = sr_buf_appendf(out, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", f->name, s->labels,
                                    sep, (unsigned long long)s->count);
            }
            if (rv == 0) {
                rv = s->labels[0] ? sr_buf_appendf(out, "%s_sum{%s} %.9g\n%s_count{%s} %llu\n",
                                                   f->name, s->labels, s->value, f->name, s->labels,
                                                   (unsigned long long)s->count)
                                  : sr_buf_appendf(out, "%s_sum %.9g\n%s_count %llu\n", f->name,
                                                   s->value, f->name, (unsigned long long)s->count);
            }
        }
    }
    return rv;
}
