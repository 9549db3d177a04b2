/*
 * skyrouted part: who may use the API, and how much.
 *
 *   [client.NAME]
 *   token_sha256 = <64 hex>   SHA-256 of the bearer token (the token itself is
 *                             never stored: printf %s TOKEN | sha256sum)
 *   cert_cn = CN              or a TLS client certificate verified against
 *                             [tls] client_ca with this subject CN
 *   rate = 50                 requests per second (token bucket) ...
 *   burst = 100               ... and its depth
 *   streams = 100             requests in flight at once
 *   spool_bytes = 0           bytes of async work held for it (0: only the total)
 *
 * Tokens are compared as hashes in constant time (sodium_memcmp). Requests
 * over a limit get 429 with retry-after; unauthenticated ones get 401 and
 * nothing else. Operator uploads (PUT with skyroute-signature) are
 * authenticated by their signature instead (feeds.c, route.c).
 */
#include "gateway/daemon/daemon.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

struct client {
    char name[64];
    bool has_token;
    uint8_t token_hash[crypto_hash_sha256_BYTES];
    char cert_cn[128];
    double rate, burst;
    unsigned max_streams;
    uint64_t spool_bytes; /* 0: no per-client spool limit */
    /* state, kept across reloads by name */
    double tokens;
    int64_t refill_mono;
    unsigned inflight;
};

struct gw_auth {
    struct client *clients;
    size_t n;
};

static int parse_clients(struct gw *g, const struct sr_config *cfg, struct client **out,
                         size_t *nout, char *err, size_t errlen)
{
    size_t n = 0;
    while (sr_config_section(cfg, "client.", n, NULL)) {
        n++;
    }
    struct client *cl = calloc(n ? n : 1, sizeof(*cl));
    if (!cl) {
        snprintf(err, errlen, "out of memory");
        return SR_ERR_NOMEM;
    }
    static const char *known[] = {"token_sha256", "cert_cn", "rate",
                                  "burst",        "streams", "spool_bytes"};
    for (size_t i = 0; i < n; i++) {
        int sline = 0;
        const char *sec = sr_config_section(cfg, "client.", i, &sline);
        struct client *c = &cl[i];
        snprintf(c->name, sizeof(c->name), "%s", sec + 7);
        /* every key of the section must be one we know */
        for (size_t k = 0; k < cfg->nkv; k++) {
            if (strcmp(cfg->kv[k].section, sec) != 0) {
                continue;
            }
            bool ok = false;
            for (size_t j = 0; j < sizeof(known) / sizeof(known[0]); j++) {
                ok = ok || !strcmp(cfg->kv[k].key, known[j]);
            }
            if (!ok) {
                snprintf(err, errlen, "%s:%d: unknown key '%s' in [%s]", cfg->path, cfg->kv[k].line,
                         cfg->kv[k].key, sec);
                goto fail;
            }
        }
        int line = 0;
        const char *tok = sr_config_get(cfg, sec, "token_sha256", &line);
        if (tok) {
            if (sr_unhex(c->token_hash, sizeof(c->token_hash), tok, strlen(tok)) != 0) {
                snprintf(err, errlen,
                         "%s:%d: [%s] token_sha256 must be 64 hex digits (the SHA-256 of the "
                         "token, e.g. from sha256sum)",
                         cfg->path, line, sec);
                goto fail;
            }
            c->has_token = true;
        }
        const char *cn = sr_config_get(cfg, sec, "cert_cn", &line);
        if (cn) {
            if (!g->tls_client_ca[0]) {
                snprintf(err, errlen, "%s:%d: [%s] cert_cn needs [tls] client_ca", cfg->path, line,
                         sec);
                goto fail;
            }
            snprintf(c->cert_cn, sizeof(c->cert_cn), "%s", cn);
        }
        if (!c->has_token && !c->cert_cn[0]) {
            snprintf(err, errlen, "%s:%d: [%s] needs token_sha256 or cert_cn", cfg->path, sline,
                     sec);
            goto fail;
        }
        double streams = 100, spool = 0;
        if (sr_config_num(cfg, sec, "rate", 50, 0.001, 1e6, &c->rate, err, errlen) ||
            sr_config_num(cfg, sec, "burst", c->rate * 2, 1, 1e7, &c->burst, err, errlen) ||
            sr_config_num(cfg, sec, "streams", 100, 1, 1e6, &streams, err, errlen) ||
            sr_config_num(cfg, sec, "spool_bytes", 0, 0, 1e15, &spool, err, errlen)) {
            goto fail;
        }
        c->max_streams = (unsigned)streams;
        c->spool_bytes = (uint64_t)spool;
        c->tokens = c->burst;
        for (size_t j = 0; j < i; j++) {
            if (c->has_token && cl[j].has_token &&
                sodium_memcmp(c->token_hash, cl[j].token_hash, sizeof(c->token_hash)) == 0) {
                snprintf(err, errlen, "%s:%d: [%s] uses the same token as [client.%s]", cfg->path,
                         sline, sec, cl[j].name);
                goto fail;
            }
        }
    }
    *out = cl;
    *nout = n;
    return 0;
fail:
    free(cl);
    return SR_ERR_CONFIG;
}

int gw_auth_init(struct gw *g, char *err, size_t errlen)
{
    struct gw_auth *a = calloc(1, sizeof(*a));
    if (!a) {
        snprintf(err, errlen, "out of memory");
        return SR_ERR_NOMEM;
    }
    g->auth = a;
    sr_metrics_describe(g->metrics, "skyroute_auth_failures_total", "counter",
                        "Requests refused with 401, by reason.");
    sr_metrics_describe(g->metrics, "skyroute_rate_limited_total", "counter",
                        "Requests refused with 429, by client and limit.");
    /* unlabelled zeros: a sum and its rate from the first scrape */
    sr_metrics_add(g->metrics, "skyroute_auth_failures_total", "", 0);
    sr_metrics_add(g->metrics, "skyroute_rate_limited_total", "", 0);
    return parse_clients(g, g->cfg, &a->clients, &a->n, err, errlen);
}

void gw_auth_free(struct gw *g)
{
    if (g->auth) {
        free(g->auth->clients);
        free(g->auth);
        g->auth = NULL;
    }
}

bool gw_auth_reload(struct gw *g)
{
    struct gw_auth *a = g->auth;
    if (!a) {
        return true;
    }
    struct sr_config *cfg = NULL;
    char err[600];
    struct client *cl = NULL;
    size_t n = 0;
    if (sr_config_load(&cfg, g->cfg->path, err, sizeof(err)) != 0 ||
        parse_clients(g, cfg, &cl, &n, err, sizeof(err)) != 0) {
        sr_log(SR_LOG_ERROR, "client reload failed, keeping the current clients: %s", err);
        sr_metrics_add(g->metrics, "skyroute_reloads_total", "part=\"clients\",outcome=\"failed\"",
                       1);
        sr_config_free(cfg);
        return false;
    }
    sr_config_free(cfg);
    /* keep bucket levels and in-flight counts of clients that stay */
    for (size_t i = 0; i < n; i++) {
        for (size_t j = 0; j < a->n; j++) {
            if (!strcmp(cl[i].name, a->clients[j].name)) {
                cl[i].tokens = fmin(a->clients[j].tokens, cl[i].burst);
                cl[i].refill_mono = a->clients[j].refill_mono;
                cl[i].inflight = a->clients[j].inflight;
            }
        }
    }
    /* requests in flight hold a pointer-free reference (the name): see done_cb */
    free(a->clients);
    a->clients = cl;
    a->n = n;
    sr_log(SR_LOG_INFO, "clients reloaded: %zu", n);
    sr_metrics_add(g->metrics, "skyroute_reloads_total", "part=\"clients\",outcome=\"ok\"", 1);
    return true;
}

/* A finished request gives back its stream slot. Looked up by name, so a
 * reload in between cannot leave a dangling pointer. */
struct done_ref {
    struct gw_auth *a;
    char name[64];
};

static void done_cb(void *arg)
{
    struct done_ref *d = arg;
    for (size_t i = 0; i < d->a->n; i++) {
        if (!strcmp(d->a->clients[i].name, d->name) && d->a->clients[i].inflight > 0) {
            d->a->clients[i].inflight--;
        }
    }
    free(d);
}

static struct client *authenticate(struct gw_auth *a, sr_req *req, const char **why)
{
    const char *h = sr_req_header(req, "authorization");
    if (h) {
        if (strncasecmp(h, "Bearer ", 7) != 0 || !h[7]) {
            *why = "malformed";
            return NULL;
        }
        uint8_t hash[crypto_hash_sha256_BYTES];
        crypto_hash_sha256(hash, (const uint8_t *)h + 7, strlen(h + 7));
        struct client *found = NULL;
        for (size_t i = 0; i < a->n; i++) { /* no early exit: constant work per client */
            if (a->clients[i].has_token &&
                sodium_memcmp(hash, a->clients[i].token_hash, sizeof(hash)) == 0) {
                found = &a->clients[i];
            }
        }
        *why = found ? NULL : "bad_token";
        return found;
    }
    const char *cn = sr_req_client_cert(req);
    if (cn) {
        for (size_t i = 0; i < a->n; i++) {
            if (a->clients[i].cert_cn[0] && !strcmp(a->clients[i].cert_cn, cn)) {
                return &a->clients[i];
            }
        }
        *why = "unknown_cert";
        return NULL;
    }
    *why = "missing";
    return NULL;
}

bool gw_auth_check(struct gw *g, sr_req *req, const char **client)
{
    struct gw_auth *a = g->auth;
    *client = "";
    if (!a || a->n == 0) {
        return true; /* no clients configured: open */
    }
    const char *why = NULL;
    struct client *c = authenticate(a, req, &why);
    if (!c) {
        char labels[64];
        snprintf(labels, sizeof(labels), "reason=\"%s\"", why);
        sr_metrics_add(g->metrics, "skyroute_auth_failures_total", labels, 1);
        static const struct sr_http_header h[] = {
            {"content-type", "application/json"},
            {"www-authenticate", "Bearer realm=\"skyroute\""}};
        static const char body[] = "{\"error\":\"authentication required\",\"detail\":null}\n";
        sr_req_respond(req, 401, h, 2, body, sizeof(body) - 1, false);
        return false;
    }
    /* token bucket */
    int64_t now = sr_mono_ms();
    if (c->refill_mono == 0) {
        c->refill_mono = now;
    }
    c->tokens = fmin(c->burst, c->tokens + (double)(now - c->refill_mono) / 1000.0 * c->rate);
    c->refill_mono = now;
    const char *limit = NULL;
    double retry = 1;
    if (c->inflight >= c->max_streams) {
        limit = "streams";
    } else if (c->tokens < 1) {
        limit = "rate";
        retry = ceil((1 - c->tokens) / c->rate);
    }
    if (limit) {
        char labels[128], ra[24], detail[160];
        snprintf(labels, sizeof(labels), "client=\"%s\",limit=\"%s\"", c->name, limit);
        sr_metrics_add(g->metrics, "skyroute_rate_limited_total", labels, 1);
        snprintf(ra, sizeof(ra), "%.0f", retry < 1 ? 1 : retry);
        snprintf(detail, sizeof(detail),
                 "{\"client\":\"%s\",\"limit\":\"%s\",\"retry_after_s\":%s}", c->name, limit, ra);
        sr_buf b;
        sr_buf_init(&b, 1024);
        int rv = sr_buf_appendf(&b, "{\"error\":\"over the client's %s limit\",\"detail\":%s}\n",
                                limit, detail);
        const struct sr_http_header h[] = {{"content-type", "application/json"},
                                           {"retry-after", ra}};
        if (rv == 0) {
            sr_req_respond(req, 429, h, 2, b.data, b.len, true);
        } else {
            sr_buf_free(&b);
            sr_req_respond(req, 429, h, 2, "", 0, false);
        }
        return false;
    }
    struct done_ref *d = malloc(sizeof(*d));
    if (!d) {
        sr_req_respond_error(req, 503, "out of memory", NULL);
        return false;
    }
    d->a = a;
    snprintf(d->name, sizeof(d->name), "%s", c->name);
    c->tokens -= 1;
    c->inflight++;
    sr_req_set_done(req, done_cb, d);
    *client = c->name;
    return true;
}

uint64_t gw_auth_spool_quota(struct gw *g, const char *client)
{
    struct gw_auth *a = g->auth;
    for (size_t i = 0; a && client && i < a->n; i++) {
        if (!strcmp(a->clients[i].name, client)) {
            return a->clients[i].spool_bytes;
        }
    }
    return 0;
}
