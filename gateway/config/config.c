/*
 * skyrouted configuration: INI through inih, with every error naming its
 * line. inih's stream interface hands us one line at a time through our own
 * reader, so we always know which line a key came from, and checks that run
 * after parsing (a missing key) can still point at the section's line.
 */
#include "gateway/config/config.h"
#include "gateway/net/net.h"
#include "routing/routing.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <ini.h>

struct parse_ctx {
    struct sr_config *cfg;
    FILE *fp;
    int line;
    char err[512];    /* the first error only: inih keeps parsing after one */
    int err_at;       /* the reader's line when err was written */
    int section_line; /* line of the last [section] header */
    bool gateway_seen;
    int gateway_line;
};

/*
 * Keys that belong to other parts of the gateway (operator feeds, the router's
 * energy and link profiles, the spool, ...). The parser knows their names, so
 * a typo is still an error at load time, but stores their values as text with
 * their line; the part that owns a key validates it through sr_config_get()
 * and sr_config_num(), naming the same line. A section "x.*" matches every
 * section with that prefix; a key "*" matches every key of the section.
 * To add a key: add a row here and read it where it is used.
 */
static const struct {
    const char *section;
    const char *key;
} ext_keys[] = {
    {"gateway", "station"},            /* LAT,LON,ALT_M of this ground station */
    {"gateway", "min_el_deg"},         /* elevation mask for predicted passes */
    {"gateway", "station_names"},      /* how operator feeds name this station (daemon/feeds.c) */
    {"operator.*", "pubkey"},          /* operator feeds: who may upload */
    {"operator.*", "satellites"},      /* ID, ID, ... or * */
    {"operator.*", "targets"},         /* energy forecasts: target ID, ID, ... or * */
    {"gateway", "signature_window_s"}, /* operator uploads: signed time within +-this of now */
    {"satellite.*", "catnum"},         /* NORAD catalogue number in feeds */
    {"satellite.*", "arn"},            /* AWS Ground Station satellite ARN */
    {"satellite.*", "ion_node"},       /* ION contact-plan node number */
    {"satellite.*", "uplink_bps"},     /* link profile */
    {"satellite.*", "downlink_bps"},
    {"satellite.*", "eirp_dbw"},
    {"satellite.*", "gt_dbk"},
    {"satellite.*", "freq_hz"},
    {"satellite.*", "symbol_rate"},
    {"satellite.*", "joules_per_gop"}, /* energy profile */
    {"satellite.*", "battery_cost"},
    {"idc.*", "uplink_bps"},
    {"idc.*", "downlink_bps"},
    {"idc.*", "joules_per_gop"},
    {"idc.*", "pue"},
    {"idc.*", "power"}, /* grid | pv */
    {"idc.*", "price_per_kwh"},
    {"idc.*", "carbon_g_per_kwh"},
    {"idc.*", "queue_ms"},
    {"policy", "time_weight"}, /* the router's cost weights (daemon/route.c) */
    {"policy", "energy_weight"},
    {"policy", "price_weight"},
    {"policy", "carbon_weight"},
    {"policy", "margin_ms"},
    {"policy", "margin_k"},
    {"policy", "inflight_weight"},
    {"policy", "link_margin"},
    {"policy", "max_windows"},
    {"spool", "*"},
    {"cluster", "*"},
    {"peer.*", "pubkey"}, /* [cluster]: a station whose records we accept */
    {"tls", "listen"},    /* the TLS listener (daemon/tls.c) */
    {"tls", "cert"},
    {"tls", "key"},
    {"tls", "client_ca"},
    {"client.*", "*"},
    /* the access log (daemon/status.c): off | errors | sampled | all, one in
     * N of the answers below 400 when sampled, lines per second at most */
    {"gateway", "access_log"},
    {"gateway", "access_log_sample"},
    {"gateway", "access_log_rate"},
};

static bool ext_match(const char *pat, const char *name)
{
    size_t n = strlen(pat);
    if (n >= 2 && pat[n - 1] == '*' && pat[n - 2] == '.') {
        return !strncmp(pat, name, n - 1) && name[n - 1] != '\0';
    }
    return !strcmp(pat, "*") || !strcmp(pat, name);
}

static bool ext_known(const char *section, const char *key, bool *section_known)
{
    bool found = false;
    for (size_t i = 0; i < sizeof(ext_keys) / sizeof(ext_keys[0]); i++) {
        if (ext_match(ext_keys[i].section, section)) {
            *section_known = true;
            if (ext_match(ext_keys[i].key, key)) {
                found = true;
            }
        }
    }
    return found;
}

static int ext_store(struct sr_config *cfg, const char *section, const char *key, const char *value,
                     int line, int section_line)
{
    if (cfg->nkv == cfg->kv_cap) {
        size_t ncap = cfg->kv_cap ? cfg->kv_cap * 2 : 64;
        struct sr_cfg_kv *kv = realloc(cfg->kv, ncap * sizeof(*kv));
        if (!kv) {
            return SR_ERR_NOMEM;
        }
        cfg->kv = kv;
        cfg->kv_cap = ncap;
    }
    struct sr_cfg_kv *e = &cfg->kv[cfg->nkv];
    memset(e, 0, sizeof(*e));
    snprintf(e->section, sizeof(e->section), "%s", section);
    snprintf(e->key, sizeof(e->key), "%s", key);
    e->value = strdup(value);
    if (!e->value) {
        return SR_ERR_NOMEM;
    }
    e->line = line;
    e->section_line = section_line;
    cfg->nkv++;
    return 0;
}

/* inih copies at most this many characters of a section name (its private
 * MAX_SECTION is 50, NUL included) and drops the rest without a word. */
#define INIH_SECTION_MAX 49

static int vfail(struct parse_ctx *ctx, int line, const char *fmt, va_list ap) SR_PRINTF(3, 0);
static int vfail(struct parse_ctx *ctx, int line, const char *fmt, va_list ap)
{
    if (!ctx->err[0]) {
        char msg[400];
        vsnprintf(msg, sizeof(msg), fmt, ap);
        snprintf(ctx->err, sizeof(ctx->err), "%s:%d: %s", ctx->cfg->path, line, msg);
        ctx->err_at = ctx->line;
    }
    return 0;
}

/* Records an error at the current line; returns 0 (inih's "error"). */
static int fail(struct parse_ctx *ctx, const char *fmt, ...) SR_PRINTF(2, 3);
static int fail(struct parse_ctx *ctx, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfail(ctx, ctx->line, fmt, ap);
    va_end(ap);
    return 0;
}

/* Records an error at the line of the current section's header. */
static int fail_section(struct parse_ctx *ctx, const char *fmt, ...) SR_PRINTF(2, 3);
static int fail_section(struct parse_ctx *ctx, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfail(ctx, ctx->section_line ? ctx->section_line : ctx->line, fmt, ap);
    va_end(ap);
    return 0;
}

static char *reader(char *str, int num, void *stream)
{
    struct parse_ctx *ctx = stream;
    if (ctx->err[0]) {
        return NULL; /* stop at the first error */
    }
    char *r = fgets(str, num, ctx->fp);
    if (r) {
        ctx->line++;
        size_t len = strlen(r);
        if (len == (size_t)num - 1 && r[len - 1] != '\n') {
            int c = getc(ctx->fp);
            if (c != EOF) {
                /* inih would parse the rest of this line as a line of its own */
                fail(ctx, "line longer than %d characters", num - 2);
                return NULL;
            }
        }
        const char *p = r;
        if (ctx->line == 1 && !strncmp(p, "\xef\xbb\xbf", 3)) {
            p += 3; /* UTF-8 BOM, which inih skips */
        }
        while (*p == ' ' || *p == '\t') {
            p++;
        }
        if (*p == '[') {
            ctx->section_line = ctx->line;
            const char *close = strchr(p, ']');
            if (close && close - p - 1 > INIH_SECTION_MAX) {
                fail(ctx, "section name longer than %d characters", INIH_SECTION_MAX);
                return NULL;
            }
        }
    }
    return r;
}

static int set_str(struct parse_ctx *ctx, char *dst, size_t dstlen, const char *key,
                   const char *value)
{
    if (!value[0]) {
        return fail(ctx, "'%s' is empty%s", key, "");
    }
    if (strlen(value) >= dstlen) {
        return fail(ctx, "'%s' is too long%s", key, "");
    }
    memcpy(dst, value, strlen(value) + 1);
    return 1;
}

static int set_path(struct parse_ctx *ctx, char *dst, const char *key, const char *value)
{
    if (!value[0]) {
        return fail(ctx, "'%s' is empty%s", key, "");
    }
    if (sr_path_relative(dst, PATH_MAX, ctx->cfg->path, value) != 0) {
        return fail(ctx, "'%s' is too long%s", key, "");
    }
    return 1;
}

static int set_num(struct parse_ctx *ctx, double *dst, const char *key, const char *value,
                   double lo, double hi)
{
    double v;
    if (sr_parse_double(&v, value, strlen(value)) != 0 || v < lo || v > hi) {
        char range[96];
        snprintf(range, sizeof(range), "a number in [%g, %g], got '%.40s'", lo, hi, value);
        return fail(ctx, "'%s' must be %s", key, range);
    }
    *dst = v;
    return 1;
}

static bool valid_id(const char *s)
{
    if (!*s || strlen(s) >= 64) {
        return false;
    }
    for (; *s; s++) {
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '-' || *s == '_' || *s == '.')) {
            return false;
        }
    }
    return true;
}

static struct sr_target_cfg *target_for(struct parse_ctx *ctx, const char *section, int kind,
                                        const char *id)
{
    struct sr_config *cfg = ctx->cfg;
    /* a section's keys come one after another: its target is the last one */
    if (cfg->ntargets && !strcmp(cfg->targets[cfg->ntargets - 1].id, id) &&
        cfg->targets[cfg->ntargets - 1].kind == kind) {
        return &cfg->targets[cfg->ntargets - 1];
    }
    for (size_t i = 0; i < cfg->ntargets; i++) {
        if (!strcmp(cfg->targets[i].id, id)) {
            if (cfg->targets[i].kind != kind) {
                fail_section(ctx, "[%s]: target id already used by another section", section);
                return NULL;
            }
            return &cfg->targets[i];
        }
    }
    if (!valid_id(id)) {
        fail_section(ctx, "[%s]: target id must be 1-63 characters of [A-Za-z0-9._-]", section);
        return NULL;
    }
    if (cfg->ntargets == cfg->targets_cap) {
        size_t ncap = cfg->targets_cap ? cfg->targets_cap * 2 : 16;
        struct sr_target_cfg *nt = realloc(cfg->targets, ncap * sizeof(*nt));
        if (!nt) {
            fail(ctx, "out of memory%s%s", "", "");
            return NULL;
        }
        cfg->targets = nt;
        cfg->targets_cap = ncap;
    }
    struct sr_target_cfg *t = &cfg->targets[cfg->ntargets++];
    memset(t, 0, sizeof(*t));
    snprintf(t->id, sizeof(t->id), "%s", id);
    t->kind = kind;
    t->line = ctx->section_line ? ctx->section_line : ctx->line;
    t->rtt_ms = kind == SR_TARGET_IDC ? 20 : 40;
    t->gops = kind == SR_TARGET_IDC ? 100 : 10;
    return t;
}

/* [gateway] limits before authentication (struct sr_config), each 0 = off. */
static const struct {
    const char *key;
    double hi;
} preauth_keys[] = {
    {"max_conns_per_address", 1e6}, {"max_unauth_streams", 1e5}, {"body_timeout_s", 3600},
    {"body_min_rate", 1e9},         {"signed_rate", 1e6},        {"signed_burst", 1e7},
};

static void preauth_set(struct sr_config *cfg, size_t i, double d)
{
    switch (i) {
    case 0:
        cfg->max_conns_per_address = (uint32_t)d;
        break;
    case 1:
        cfg->max_unauth_streams = (uint32_t)d;
        break;
    case 2:
        cfg->body_timeout_s = (int)d;
        break;
    case 3:
        cfg->body_min_rate = (uint32_t)d;
        break;
    case 4:
        cfg->signed_rate = d;
        break;
    default:
        cfg->signed_burst = d;
        break;
    }
}

static int on_entry(void *user, const char *section, const char *name, const char *value)
{
    struct parse_ctx *ctx = user;
    struct sr_config *cfg = ctx->cfg;
    if (!name) { /* new section (INI_CALL_HANDLER_ON_NEW_SECTION builds) */
        return 1;
    }
    if (!strcmp(section, "gateway")) {
        if (!ctx->gateway_seen) {
            ctx->gateway_seen = true;
            ctx->gateway_line = ctx->section_line ? ctx->section_line : ctx->line;
        }
        double d = 0;
        if (!strcmp(name, "id")) {
            if (!valid_id(value)) {
                return fail(ctx, "'id' must be 1-63 characters of [A-Za-z0-9._-]%s%s", "", "");
            }
            return set_str(ctx, cfg->id, sizeof(cfg->id), name, value);
        }
        if (!strcmp(name, "listen")) {
            return set_str(ctx, cfg->listen, sizeof(cfg->listen), name, value);
        }
        if (!strcmp(name, "admin")) {
            return set_str(ctx, cfg->admin, sizeof(cfg->admin), name, value);
        }
        if (!strcmp(name, "key")) {
            return set_path(ctx, cfg->key_path, name, value);
        }
        if (!strcmp(name, "state_dir")) {
            return set_path(ctx, cfg->state_dir, name, value);
        }
        if (!strcmp(name, "log_level")) {
            if (strcmp(value, "error") && strcmp(value, "warn") && strcmp(value, "info") &&
                strcmp(value, "debug")) {
                return fail(ctx, "'log_level' must be error, warn, info or debug, not '%.40s'%s",
                            value, "");
            }
            return set_str(ctx, cfg->log_level, sizeof(cfg->log_level), name, value);
        }
        if (!strcmp(name, "max_body")) {
            if (!set_num(ctx, &d, name, value, 0, 1 << 30)) {
                return 0;
            }
            cfg->max_body = (size_t)d;
            return 1;
        }
        if (!strcmp(name, "envelope_batch")) {
            if (!strcmp(value, "auto")) {
                cfg->envelope_batch = 0;
                return 1;
            }
            if (sr_parse_double(&d, value, strlen(value)) != 0 || d < 1 || d > SR_ENV_BATCH_MAX ||
                d != (double)(uint32_t)d) {
                return fail(ctx,
                            "'envelope_batch' must be auto or a whole number in [1, %d], "
                            "not '%.40s'",
                            SR_ENV_BATCH_MAX, value);
            }
            cfg->envelope_batch = (uint32_t)d;
            return 1;
        }
        if (!strcmp(name, "default_deadline_ms")) {
            if (!set_num(ctx, &d, name, value, 1, 86400000.0 * 7)) {
                return 0;
            }
            cfg->default_deadline_ms = (int64_t)d;
            return 1;
        }
        if (!strcmp(name, "max_deadline_ms")) {
            if (!set_num(ctx, &d, name, value, 1, 86400000.0 * 30)) {
                return 0;
            }
            cfg->max_deadline_ms = (int64_t)d;
            return 1;
        }
        for (size_t i = 0; i < sizeof(preauth_keys) / sizeof(preauth_keys[0]); i++) {
            if (!strcmp(name, preauth_keys[i].key)) {
                if (!set_num(ctx, &d, name, value, 0, preauth_keys[i].hi)) {
                    return 0;
                }
                preauth_set(cfg, i, d);
                return 1;
            }
        }
        if (!strcmp(name, "max_streams")) {
            if (!set_num(ctx, &d, name, value, 1, 100000)) {
                return 0;
            }
            cfg->max_streams = (uint32_t)d;
            return 1;
        }
        bool sk = false;
        if (ext_known(section, name, &sk)) {
            return ext_store(cfg, section, name, value, ctx->line, ctx->gateway_line) == 0
                       ? 1
                       : fail(ctx, "out of memory");
        }
        return fail(ctx, "unknown key '%.60s' in [gateway]%s", name, "");
    }
    int kind = 0;
    const char *id = NULL;
    if (!strncmp(section, "idc.", 4)) {
        kind = SR_TARGET_IDC;
        id = section + 4;
    } else if (!strncmp(section, "satellite.", 10)) {
        kind = SR_TARGET_SATELLITE;
        id = section + 10;
    }
    if (kind) {
        struct sr_target_cfg *t = target_for(ctx, section, kind, id);
        if (!t) {
            return 0;
        }
        if (!strcmp(name, "url")) {
            char e[200];
            struct sockaddr_storage ss;
            int sl;
            if (sr_parse_hostport(&ss, &sl, value, e, sizeof(e)) != 0) {
                return fail(ctx, "'url': %s%s", e, "");
            }
            return set_str(ctx, t->url, sizeof(t->url), name, value);
        }
        if (!strcmp(name, "pubkey")) {
            t->pubkey_line = ctx->line;
            return set_path(ctx, t->pubkey_path, name, value);
        }
        if (!strcmp(name, "rtt_ms")) {
            return set_num(ctx, &t->rtt_ms, name, value, 0.001, 3600000);
        }
        if (!strcmp(name, "gops")) {
            return set_num(ctx, &t->gops, name, value, 1e-6, 1e9);
        }
        bool sk = false;
        if (ext_known(section, name, &sk)) {
            return ext_store(cfg, section, name, value, ctx->line, t->line) == 0
                       ? 1
                       : fail(ctx, "out of memory");
        }
        return fail(ctx, "unknown key '%.60s' in [%.60s]", name, section);
    }
    bool section_known = false;
    if (ext_known(section, name, &section_known)) {
        return ext_store(cfg, section, name, value, ctx->line, ctx->section_line) == 0
                   ? 1
                   : fail(ctx, "out of memory");
    }
    if (section_known) {
        return fail(ctx, "unknown key '%.60s' in [%.60s]", name, section);
    }
    return fail_section(ctx, "unknown section [%.60s]", section);
}

static uint32_t kv_hash(const char *section, const char *key)
{
    uint32_t h = 2166136261u; /* FNV-1a over "section\0key" */
    for (const char *p = section;; p++) {
        h = (h ^ (uint8_t)*p) * 16777619u;
        if (!*p) {
            break;
        }
    }
    for (const char *p = key; *p; p++) {
        h = (h ^ (uint8_t)*p) * 16777619u;
    }
    return h;
}

/* Indexes the extension keys once the file is read: a gateway with 10,000
 * satellites looks up tens of thousands of keys at start-up. Without the
 * index (out of memory) sr_config_get scans. */
static void kv_index_build(struct sr_config *cfg)
{
    size_t cap = 16;
    while (cap < cfg->nkv * 2) {
        cap *= 2;
    }
    uint32_t *ix = calloc(cap, sizeof(*ix));
    if (!ix || cfg->nkv >= UINT32_MAX) {
        free(ix);
        return;
    }
    for (size_t i = 0; i < cfg->nkv; i++) {
        size_t slot = kv_hash(cfg->kv[i].section, cfg->kv[i].key) & (cap - 1);
        while (ix[slot]) {
            const struct sr_cfg_kv *o = &cfg->kv[ix[slot] - 1];
            if (!strcmp(o->section, cfg->kv[i].section) && !strcmp(o->key, cfg->kv[i].key)) {
                break; /* a later occurrence replaces it: the last one wins */
            }
            slot = (slot + 1) & (cap - 1);
        }
        ix[slot] = (uint32_t)i + 1;
    }
    cfg->kv_index = ix;
    cfg->kv_index_cap = cap;
}

const char *sr_config_get(const struct sr_config *cfg, const char *section, const char *key,
                          int *line)
{
    if (cfg->kv_index) {
        size_t slot = kv_hash(section, key) & (cfg->kv_index_cap - 1);
        for (; cfg->kv_index[slot]; slot = (slot + 1) & (cfg->kv_index_cap - 1)) {
            const struct sr_cfg_kv *e = &cfg->kv[cfg->kv_index[slot] - 1];
            if (!strcmp(e->section, section) && !strcmp(e->key, key)) {
                if (line) {
                    *line = e->line;
                }
                return e->value;
            }
        }
        return NULL;
    }
    for (size_t i = cfg->nkv; i-- > 0;) { /* the last occurrence wins */
        if (!strcmp(cfg->kv[i].section, section) && !strcmp(cfg->kv[i].key, key)) {
            if (line) {
                *line = cfg->kv[i].line;
            }
            return cfg->kv[i].value;
        }
    }
    return NULL;
}

const char *sr_config_section(const struct sr_config *cfg, const char *prefix, size_t idx,
                              int *line)
{
    size_t plen = strlen(prefix), seen = 0;
    for (size_t i = 0; i < cfg->nkv; i++) {
        const char *sec = cfg->kv[i].section;
        if (strncmp(sec, prefix, plen) != 0) {
            continue;
        }
        bool dup = false;
        for (size_t j = 0; j < i && !dup; j++) {
            dup = !strcmp(cfg->kv[j].section, sec);
        }
        if (dup) {
            continue;
        }
        if (seen++ == idx) {
            if (line) {
                *line = cfg->kv[i].section_line;
            }
            return sec;
        }
    }
    return NULL;
}

int sr_config_num(const struct sr_config *cfg, const char *section, const char *key, double def,
                  double lo, double hi, double *out, char *err, size_t errlen)
{
    int line = 0;
    const char *v = sr_config_get(cfg, section, key, &line);
    if (!v) {
        *out = def;
        return 0;
    }
    double d = 0;
    if (sr_parse_double(&d, v, strlen(v)) != 0 || d < lo || d > hi) {
        snprintf(err, errlen, "%s:%d: '%s' in [%s] must be a number in [%g, %g], got '%.40s'",
                 cfg->path, line, key, section, lo, hi, v);
        return SR_ERR_CONFIG;
    }
    *out = d;
    return 0;
}

/*
 * A file that holds a secret (the NATS password or token, or credentials in
 * the NATS URL) must be readable by its owner only, as ssh insists for a
 * private key: anyone else who can read it can join the cluster as this
 * station. true, with the file, the key's line and the mode in |err|, if it
 * is open to group or others.
 */
static bool secret_exposed(const struct sr_config *cfg, const struct stat *st, char *err,
                           size_t errlen)
{
    if (!(st->st_mode & (S_IRWXG | S_IRWXO))) {
        return false;
    }
    for (size_t i = 0; i < cfg->nkv; i++) {
        const struct sr_cfg_kv *e = &cfg->kv[i];
        bool secret = !strcmp(e->key, "password") || !strcmp(e->key, "token") ||
                      (!strcmp(e->key, "nats") && strchr(e->value, '@'));
        if (secret) {
            snprintf(err, errlen,
                     "%s:%d: [%s] %s is a secret, but the file is open to %s (mode %04o): "
                     "chmod 600 %s (owned by the user skyrouted runs as)",
                     cfg->path, e->line, e->section, e->key,
                     st->st_mode & S_IRWXO ? "others" : "its group",
                     (unsigned)(st->st_mode & 07777), cfg->path);
            return true;
        }
    }
    return false;
}

void sr_config_free(struct sr_config *cfg)
{
    if (cfg) {
        for (size_t i = 0; i < cfg->nkv; i++) {
            free(cfg->kv[i].value);
        }
        free(cfg->kv);
        free(cfg->kv_index);
        free(cfg->targets);
        free(cfg);
    }
}

int sr_config_load(struct sr_config **out, const char *path, char *err, size_t errlen)
{
    struct sr_config *cfg = calloc(1, sizeof(*cfg));
    if (!cfg) {
        snprintf(err, errlen, "out of memory");
        return SR_ERR_NOMEM;
    }
    snprintf(cfg->path, sizeof(cfg->path), "%s", path);
    cfg->max_body = 32u << 20;
    cfg->default_deadline_ms = 30000;
    cfg->max_deadline_ms = 86400000;
    cfg->max_streams = 1000;
    cfg->envelope_batch = 0; /* auto */
    cfg->max_conns_per_address = 256;
    cfg->max_unauth_streams = 100;
    cfg->body_timeout_s = 30;
    cfg->body_min_rate = 256;
    cfg->signed_rate = 2;
    cfg->signed_burst = 20;
    snprintf(cfg->listen, sizeof(cfg->listen), "127.0.0.1:8443");
    snprintf(cfg->log_level, sizeof(cfg->log_level), "info");
    struct parse_ctx ctx = {.cfg = cfg};
    ctx.fp = fopen(path, "r");
    if (!ctx.fp) {
        snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        sr_config_free(cfg);
        return SR_ERR_IO;
    }
    int rv = ini_parse_stream(reader, &ctx, on_entry, &ctx);
    struct stat st;
    bool have_st = fstat(fileno(ctx.fp), &st) == 0; /* of the file read, not of a later one */
    fclose(ctx.fp);
    if (rv != 0 || ctx.err[0]) {
        /* rv is the line of inih's first error, ours or a syntax error */
        if (!ctx.err[0] || (rv > 0 && rv < ctx.err_at)) {
            snprintf(ctx.err, sizeof(ctx.err),
                     "%s:%d: syntax error (expected [section] or key = value)", path,
                     rv > 0 ? rv : ctx.line);
        }
        snprintf(err, errlen, "%s", ctx.err);
        sr_config_free(cfg);
        return SR_ERR_CONFIG;
    }
    kv_index_build(cfg);
    /* whole-file checks */
    if (have_st && secret_exposed(cfg, &st, err, errlen)) {
        goto fail;
    }
    if (!ctx.gateway_seen) {
        snprintf(err, errlen, "%s:1: missing [gateway] section", path);
        goto fail;
    }
    if (!cfg->id[0] || !cfg->key_path[0]) {
        snprintf(err, errlen, "%s:%d: [gateway] needs '%s'", path, ctx.gateway_line,
                 !cfg->id[0] ? "id" : "key");
        goto fail;
    }
    if (!cfg->state_dir[0]) {
        sr_path_relative(cfg->state_dir, sizeof(cfg->state_dir), path, "state");
    }
    char e[200];
    struct sockaddr_storage ss;
    int sl;
    if (sr_parse_hostport(&ss, &sl, cfg->listen, e, sizeof(e)) != 0) {
        snprintf(err, errlen, "%s:%d: [gateway] listen: %s", path, ctx.gateway_line, e);
        goto fail;
    }
    if (cfg->admin[0] && sr_parse_hostport(&ss, &sl, cfg->admin, e, sizeof(e)) != 0) {
        snprintf(err, errlen, "%s:%d: [gateway] admin: %s", path, ctx.gateway_line, e);
        goto fail;
    }
    for (size_t i = 0; i < cfg->ntargets; i++) {
        struct sr_target_cfg *t = &cfg->targets[i];
        if (!t->url[0] || !t->pubkey_path[0]) {
            snprintf(err, errlen, "%s:%d: [%s.%s] needs '%s'", path, t->line,
                     t->kind == SR_TARGET_IDC ? "idc" : "satellite", t->id,
                     !t->url[0] ? "url" : "pubkey");
            goto fail;
        }
        char kerr[256];
        if (sr_pubkey_load(t->pubkey, t->pubkey_path, kerr, sizeof(kerr)) != 0) {
            snprintf(err, errlen, "%s:%d: [%s.%s] pubkey: %s", path, t->pubkey_line,
                     t->kind == SR_TARGET_IDC ? "idc" : "satellite", t->id, kerr);
            goto fail;
        }
    }
    *out = cfg;
    return 0;
fail:
    sr_config_free(cfg);
    return SR_ERR_CONFIG;
}
