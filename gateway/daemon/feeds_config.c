/*
 * skyrouted part: what the operator feeds take from the configuration.
 *
 * Trust. [operator.NAME] pubkey = FILE, satellites = ID, ID | *, targets =
 * ID, ID | *: the key an operator signs uploads with, the satellites it may
 * speak for (schedules, elements) and the targets it may send energy
 * forecasts for (none unless listed). [gateway] signature_window_s: how far
 * the signed time of an upload may be from the gateway's clock.
 * Identities. [satellite.ID] catnum, ion_node and arn: how feeds name a
 * satellite target (NORAD catalogue number, ION node, AWS ARN), one identity
 * for one satellite; [gateway] station_names: how feeds name this station.
 * Geometry. [gateway] station = LAT,LON,ALT_M and min_el_deg: where passes
 * are predicted for.
 */
#include "gateway/daemon/feeds_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_MIN_EL_DEG 10.0
#define DEFAULT_WINDOW_S 300

struct sat_info *gw_feeds_sat(struct gw_feeds *f, const char *id)
{
    for (size_t i = 0; i < f->nsats; i++) {
        if (!strcmp(f->sats[i].id, id)) {
            return &f->sats[i];
        }
    }
    return NULL;
}

static int cfg_uint(const struct sr_config *cfg, const char *section, const char *key, uint64_t max,
                    uint64_t *out, char *err, size_t errlen)
{
    int line = 0;
    const char *v = sr_config_get(cfg, section, key, &line);
    *out = 0;
    if (!v) {
        return 0;
    }
    int64_t n;
    if (sr_parse_i64(&n, v, strlen(v)) != 0 || n <= 0 || (uint64_t)n > max) {
        snprintf(err, errlen, "%s:%d: '%s' in [%s] must be an integer in [1, %llu], got '%.40s'",
                 cfg->path, line, key, section, (unsigned long long)max, v);
        return SR_ERR_CONFIG;
    }
    *out = (uint64_t)n;
    return 0;
}

static int load_sats(struct gw_feeds *f, char *err, size_t errlen)
{
    const struct sr_config *cfg = f->g->cfg;
    f->sats = calloc(cfg->ntargets ? cfg->ntargets : 1, sizeof(*f->sats));
    if (!f->sats) {
        snprintf(err, errlen, "out of memory");
        return SR_ERR_NOMEM;
    }
    for (size_t i = 0; i < cfg->ntargets; i++) {
        const struct sr_target_cfg *t = &cfg->targets[i];
        if (t->kind != SR_TARGET_SATELLITE) {
            continue;
        }
        struct sat_info *s = &f->sats[f->nsats++];
        snprintf(s->id, sizeof(s->id), "%s", t->id);
        char section[128];
        snprintf(section, sizeof(section), "satellite.%s", t->id);
        uint64_t v;
        if (cfg_uint(cfg, section, "catnum", 999999999, &v, err, errlen) != 0) {
            return SR_ERR_CONFIG;
        }
        s->catnum = (uint32_t)v;
        if (cfg_uint(cfg, section, "ion_node", UINT64_C(1) << 62, &s->ion_node, err, errlen)) {
            return SR_ERR_CONFIG;
        }
        int line = 0;
        const char *arn = sr_config_get(cfg, section, "arn", &line);
        if (arn) {
            if (strncmp(arn, "arn:", 4) != 0 || strlen(arn) >= sizeof(s->arn)) {
                snprintf(err, errlen,
                         "%s:%d: 'arn' in [%s] must be an ARN (arn:aws:...), got "
                         "'%.60s'",
                         cfg->path, line, section, arn);
                return SR_ERR_CONFIG;
            }
            snprintf(s->arn, sizeof(s->arn), "%s", arn);
        }
        /* one identity, one satellite */
        for (size_t k = 0; k + 1 < f->nsats; k++) {
            const struct sat_info *o = &f->sats[k];
            const char *dup = (s->catnum && o->catnum == s->catnum)         ? "catnum"
                              : (s->ion_node && o->ion_node == s->ion_node) ? "ion_node"
                              : (s->arn[0] && !strcmp(o->arn, s->arn))      ? "arn"
                                                                            : NULL;
            if (dup) {
                sr_config_get(cfg, section, dup, &line);
                snprintf(err, errlen, "%s:%d: '%s' in [%s] is already used by [satellite.%s]",
                         cfg->path, line, dup, section, o->id);
                return SR_ERR_CONFIG;
            }
        }
    }
    return 0;
}

/* "Ohio 1, 2741, 1": the names and numbers feeds use for this station. */
static int load_station_names(struct gw_feeds *f, char *err, size_t errlen)
{
    const struct sr_config *cfg = f->g->cfg;
    int line = 0;
    const char *v = sr_config_get(cfg, "gateway", "station_names", &line);
    while (v && *v) {
        while (*v == ' ' || *v == '\t' || *v == ',') {
            v++;
        }
        const char *e = v;
        while (*e && *e != ',') {
            e++;
        }
        const char *t = e;
        while (t > v && (t[-1] == ' ' || t[-1] == '\t')) {
            t--;
        }
        if (t > v) {
            char **nn = realloc(f->names, (f->nnames + 1) * sizeof(*nn));
            if (!nn || !(nn[f->nnames] = strndup(v, (size_t)(t - v)))) {
                if (nn) {
                    f->names = nn;
                }
                snprintf(err, errlen, "out of memory");
                return SR_ERR_NOMEM;
            }
            f->names = nn;
            f->nnames++;
        }
        v = e;
    }
    if (sr_config_get(cfg, "gateway", "station_names", &line) && f->nnames == 0) {
        snprintf(err, errlen, "%s:%d: 'station_names' in [gateway] lists no name", cfg->path, line);
        return SR_ERR_CONFIG;
    }
    return 0;
}

static bool is_target(const struct sr_config *cfg, const char *id)
{
    for (size_t i = 0; i < cfg->ntargets; i++) {
        if (!strcmp(cfg->targets[i].id, id)) {
            return true;
        }
    }
    return false;
}

/* "ID, ID, ... | *" of key |key| (line |line|) in |section|: satellite
 * targets for "satellites", any target for "targets". */
static int id_list(struct gw_feeds *f, const char *v, const char *section, const char *key,
                   int line, bool *all, char ***ids, size_t *n, char *err, size_t errlen)
{
    const struct sr_config *cfg = f->g->cfg;
    bool sats = !strcmp(key, "satellites");
    const char *p = v;
    while (*p) {
        while (*p == ' ' || *p == '\t' || *p == ',') {
            p++;
        }
        if (!*p) {
            break;
        }
        const char *e = p;
        while (*e && *e != ',' && *e != ' ' && *e != '\t') {
            e++;
        }
        char id[SR_TARGET_IDMAX];
        if ((size_t)(e - p) >= sizeof(id)) {
            snprintf(err, errlen, "%s:%d: [%s] %s: '%.*s' is too long", cfg->path, line, section,
                     key, 40, p);
            return SR_ERR_CONFIG;
        }
        memcpy(id, p, (size_t)(e - p));
        id[e - p] = '\0';
        p = e;
        if (!strcmp(id, "*")) {
            *all = true;
            continue;
        }
        if (sats ? !gw_feeds_sat(f, id) : !is_target(cfg, id)) {
            snprintf(err, errlen, "%s:%d: [%s] %s: '%s' is not a %s target", cfg->path, line,
                     section, key, id, sats ? "[satellite.ID]" : "[idc.ID] or [satellite.ID]");
            return SR_ERR_CONFIG;
        }
        char **ns = realloc(*ids, (*n + 1) * sizeof(*ns));
        if (!ns) {
            snprintf(err, errlen, "out of memory");
            return SR_ERR_NOMEM;
        }
        *ids = ns;
        if (!(ns[*n] = strdup(id))) {
            snprintf(err, errlen, "out of memory");
            return SR_ERR_NOMEM;
        }
        (*n)++;
    }
    if (!*all && *n == 0) {
        snprintf(err, errlen, "%s:%d: [%s] %s: list target ids or '*'", cfg->path, line, section,
                 key);
        return SR_ERR_CONFIG;
    }
    return 0;
}

static int load_operators(struct gw_feeds *f, char *err, size_t errlen)
{
    const struct sr_config *cfg = f->g->cfg;
    if (sr_keyring_new(&f->ring) != 0) {
        snprintf(err, errlen, "out of memory");
        return SR_ERR_NOMEM;
    }
    int sline;
    const char *section;
    for (size_t idx = 0; (section = sr_config_section(cfg, "operator.", idx, &sline)); idx++) {
        const char *name = section + strlen("operator.");
        struct op_cfg *no = realloc(f->ops, (f->nops + 1) * sizeof(*no));
        if (!no) {
            snprintf(err, errlen, "out of memory");
            return SR_ERR_NOMEM;
        }
        f->ops = no;
        struct op_cfg *op = &f->ops[f->nops++];
        memset(op, 0, sizeof(*op));
        if (!*name || strlen(name) >= sizeof(op->name)) {
            snprintf(err, errlen, "%s:%d: [%s]: operator name must be 1-63 characters", cfg->path,
                     sline, section);
            return SR_ERR_CONFIG;
        }
        snprintf(op->name, sizeof(op->name), "%s", name);
        int kline = 0, tline = 0, gline = 0;
        const char *pub = sr_config_get(cfg, section, "pubkey", &kline);
        const char *sats = sr_config_get(cfg, section, "satellites", &tline);
        const char *targets = sr_config_get(cfg, section, "targets", &gline);
        if (!pub || (!sats && !targets)) {
            snprintf(err, errlen, "%s:%d: [%s] needs '%s'", cfg->path, sline, section,
                     !pub ? "pubkey" : "satellites' or 'targets");
            return SR_ERR_CONFIG;
        }
        char path[PATH_MAX], kerr[300];
        uint8_t pk[SR_PUBLICKEYBYTES];
        if (sr_path_relative(path, sizeof(path), cfg->path, pub) != 0) {
            snprintf(err, errlen, "%s:%d: [%s] pubkey: path too long", cfg->path, kline, section);
            return SR_ERR_CONFIG;
        }
        if (sr_pubkey_load(pk, path, kerr, sizeof(kerr)) != 0) {
            snprintf(err, errlen, "%s:%d: [%s] pubkey: %s", cfg->path, kline, section, kerr);
            return SR_ERR_CONFIG;
        }
        int rv = sr_keyring_add(f->ring, pk, op->name);
        if (rv == SR_ERR_EXISTS) {
            snprintf(err, errlen, "%s:%d: [%s] pubkey: another operator already uses this key",
                     cfg->path, kline, section);
            return SR_ERR_CONFIG;
        }
        if (rv) {
            snprintf(err, errlen, "%s:%d: [%s] pubkey: %s", cfg->path, kline, section,
                     sr_strerror(rv));
            return SR_ERR_CONFIG;
        }
        int rv2 = sats ? id_list(f, sats, section, "satellites", tline, &op->all, &op->sats,
                                 &op->nsats, err, errlen)
                       : 0;
        rv2 = rv2 ? rv2
                  : (targets ? id_list(f, targets, section, "targets", gline, &op->all_targets,
                                       &op->targets, &op->ntargets, err, errlen)
                             : 0);
        if (rv2) {
            return rv2;
        }
    }
    return 0;
}

const struct op_cfg *gw_feeds_op(const struct gw_feeds *f, const char *name)
{
    for (size_t i = 0; i < f->nops; i++) {
        if (!strcmp(f->ops[i].name, name)) {
            return &f->ops[i];
        }
    }
    return NULL;
}

static bool listed(bool all, char *const *ids, size_t n, const char *id)
{
    for (size_t i = 0; !all && i < n; i++) {
        if (!strcmp(ids[i], id)) {
            return true;
        }
    }
    return all;
}

bool gw_feeds_op_owns(const struct op_cfg *op, const char *sat)
{
    return listed(op->all, op->sats, op->nsats, sat);
}

bool gw_feeds_op_targets(const struct op_cfg *op, const char *id)
{
    return listed(op->all_targets, op->targets, op->ntargets, id);
}

const char *gw_feeds_lookup(void *arg, sr_feed_id_kind kind, const char *v)
{
    struct gw_feeds *f = arg;
    if (kind == SR_FEED_ID_STATION) {
        /* without [gateway] station_names every station a feed names is this one */
        for (size_t i = 0; i < f->nnames; i++) {
            if (!strcmp(f->names[i], v)) {
                return "";
            }
        }
        return f->nnames ? NULL : "";
    }
    uint64_t num = 0;
    if (kind == SR_FEED_ID_NORAD || kind == SR_FEED_ID_ION_NODE) {
        int64_t n;
        if (sr_parse_i64(&n, v, strlen(v)) != 0 || n <= 0) {
            return NULL;
        }
        num = (uint64_t)n;
    }
    for (size_t i = 0; i < f->nsats; i++) {
        const struct sat_info *s = &f->sats[i];
        if ((kind == SR_FEED_ID_TARGET && !strcmp(s->id, v)) ||
            (kind == SR_FEED_ID_ARN && s->arn[0] && !strcmp(s->arn, v)) ||
            (kind == SR_FEED_ID_NORAD && s->catnum && s->catnum == num) ||
            (kind == SR_FEED_ID_ION_NODE && s->ion_node && s->ion_node == num)) {
            return s->id;
        }
    }
    return NULL;
}

int gw_feeds_config(struct gw_feeds *f, char *err, size_t errlen)
{
    const struct sr_config *cfg = f->g->cfg;
    int line = 0;
    const char *station = sr_config_get(cfg, "gateway", "station", &line);
    if (station) {
        if (sr_station_parse(&f->station, station) != 0) {
            snprintf(err, errlen,
                     "%s:%d: 'station' in [gateway] must be LAT,LON,ALT_M (degrees, degrees, "
                     "metres), got '%.60s'",
                     cfg->path, line, station);
            return SR_ERR_CONFIG;
        }
        f->has_station = true;
    }
    int rv = sr_config_num(cfg, "gateway", "min_el_deg", DEFAULT_MIN_EL_DEG, -5, 89, &f->min_el_deg,
                           err, errlen);
    double win = 0;
    rv = rv ? rv
            : sr_config_num(cfg, "gateway", "signature_window_s", DEFAULT_WINDOW_S, 1, 86400, &win,
                            err, errlen);
    f->window_s = (int64_t)win;
    rv = rv ? rv : load_sats(f, err, errlen);
    rv = rv ? rv : load_operators(f, err, errlen);
    return rv ? rv : load_station_names(f, err, errlen);
}

void gw_feeds_config_free(struct gw_feeds *f)
{
    sr_keyring_free(f->ring);
    for (size_t i = 0; i < f->nops; i++) {
        for (size_t k = 0; k < f->ops[i].nsats; k++) {
            free(f->ops[i].sats[k]);
        }
        free(f->ops[i].sats);
        for (size_t k = 0; k < f->ops[i].ntargets; k++) {
            free(f->ops[i].targets[k]);
        }
        free(f->ops[i].targets);
    }
    free(f->ops);
    for (size_t i = 0; i < f->nnames; i++) {
        free(f->names[i]);
    }
    free(f->names);
    free(f->sats);
}
