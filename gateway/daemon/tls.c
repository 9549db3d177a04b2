/*
 * skyrouted part: the TLS front door ([tls] listen, cert, key, client_ca).
 * The TLS listener serves the same API as the h2c one; h2c stays available
 * for loopback and private links. SIGHUP reloads the certificate: new
 * connections get the new one, open ones are not dropped.
 */
#include "gateway/daemon/daemon.h"

#include <stdio.h>
#include <string.h>

static int path_key(struct gw *g, const char *key, char *out, bool required, char *err,
                    size_t errlen)
{
    int line = 0;
    const char *v = sr_config_get(g->cfg, "tls", key, &line);
    if (!v || !*v) {
        if (required) {
            int sl = 0;
            sr_config_section(g->cfg, "tls", 0, &sl);
            snprintf(err, errlen, "%s:%d: [tls] needs '%s'", g->cfg->path, sl, key);
            return SR_ERR_CONFIG;
        }
        out[0] = 0;
        return 0;
    }
    if (sr_path_relative(out, PATH_MAX, g->cfg->path, v) != 0) {
        snprintf(err, errlen, "%s:%d: [tls] %s: path too long", g->cfg->path, line, key);
        return SR_ERR_CONFIG;
    }
    return 0;
}

int gw_tls_init(struct gw *g, char *err, size_t errlen)
{
    int line = 0;
    const char *listen = sr_config_get(g->cfg, "tls", "listen", &line);
    if (!sr_config_section(g->cfg, "tls", 0, NULL)) {
        return 0; /* no [tls] section: cleartext only */
    }
    if (!listen) {
        int sl = 0;
        sr_config_section(g->cfg, "tls", 0, &sl);
        snprintf(err, errlen, "%s:%d: [tls] needs 'listen'", g->cfg->path, sl);
        return SR_ERR_CONFIG;
    }
    struct sockaddr_storage ss;
    int sl;
    char e[200];
    if (sr_parse_hostport(&ss, &sl, listen, e, sizeof(e)) != 0) {
        snprintf(err, errlen, "%s:%d: [tls] listen: %s", g->cfg->path, line, e);
        return SR_ERR_CONFIG;
    }
    if (path_key(g, "cert", g->tls_cert, true, err, errlen) ||
        path_key(g, "key", g->tls_key, true, err, errlen) ||
        path_key(g, "client_ca", g->tls_client_ca, false, err, errlen)) {
        return SR_ERR_CONFIG;
    }
    char terr[400];
    if (sr_tls_new(&g->tls, g->tls_cert, g->tls_key, g->tls_client_ca[0] ? g->tls_client_ca : NULL,
                   terr, sizeof(terr)) != 0) {
        sr_config_get(g->cfg, "tls", "cert", &line);
        snprintf(err, errlen, "%s:%d: [tls] %s", g->cfg->path, line, terr);
        return SR_ERR_CONFIG;
    }
    return 0;
}

int gw_tls_listen(struct gw *g, char *err, size_t errlen)
{
    if (!g->tls) {
        return 0;
    }
    struct sr_http_server_opts o = {.listen = sr_config_get(g->cfg, "tls", "listen", NULL),
                                    .max_body = g->cfg->max_body,
                                    .max_streams = g->cfg->max_streams,
                                    .tls = g->tls,
                                    .never_index = gw_main_never_index,
                                    .handler = gw_main_handler,
                                    .arg = g};
    return sr_http_server_new(&g->tls_server, g->base, &o, err, errlen);
}

bool gw_tls_reload(struct gw *g)
{
    if (!g->tls) {
        return true;
    }
    sr_tls *fresh = NULL;
    char err[400];
    if (sr_tls_new(&fresh, g->tls_cert, g->tls_key, g->tls_client_ca[0] ? g->tls_client_ca : NULL,
                   err, sizeof(err)) != 0) {
        sr_log(SR_LOG_ERROR, "TLS reload failed, keeping the current certificate: %s", err);
        sr_metrics_add(g->metrics, "skyroute_reloads_total", "part=\"tls\",outcome=\"failed\"", 1);
        return false;
    }
    if (g->tls_server) {
        sr_http_server_set_tls(g->tls_server, fresh);
    }
    sr_tls_free(g->tls);
    g->tls = fresh;
    sr_log(SR_LOG_INFO, "TLS certificate reloaded from %s", g->tls_cert);
    sr_metrics_add(g->metrics, "skyroute_reloads_total", "part=\"tls\",outcome=\"ok\"", 1);
    return true;
}

void gw_tls_free(struct gw *g)
{
    sr_http_server_free(g->tls_server);
    g->tls_server = NULL;
    sr_tls_free(g->tls);
    g->tls = NULL;
}
