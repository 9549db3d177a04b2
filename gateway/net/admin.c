/* Admin endpoints, status mapping and signal plumbing shared by the daemons. */
#include "gateway/net/net.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>

bool sr_admin_serve(sr_req *req, sr_metrics *m, bool ready)
{
    const char *path = sr_req_path(req);
    size_t plen = strcspn(path, "?");
    const char *method = sr_req_method(req);
    bool get = !strcmp(method, "GET") || !strcmp(method, "HEAD");
    static const struct sr_http_header text[] = {{"content-type", "text/plain; charset=utf-8"}};
    if (plen == 8 && !strncmp(path, "/healthz", 8)) {
        if (!get) {
            sr_req_respond_error(req, 405, "use GET", NULL);
        } else {
            sr_req_respond(req, 200, text, 1, "ok\n", 3, false);
        }
        return true;
    }
    if (plen == 7 && !strncmp(path, "/readyz", 7)) {
        if (!get) {
            sr_req_respond_error(req, 405, "use GET", NULL);
        } else if (ready) {
            sr_req_respond(req, 200, text, 1, "ready\n", 6, false);
        } else {
            sr_req_respond(req, 503, text, 1, "not ready\n", 10, false);
        }
        return true;
    }
    if (plen == 8 && !strncmp(path, "/metrics", 8)) {
        if (!get) {
            sr_req_respond_error(req, 405, "use GET", NULL);
            return true;
        }
        sr_buf b;
        sr_buf_init(&b, 64u << 20);
        if (sr_metrics_render(m, &b) != 0 || sr_metrics_render_process(&b) != 0) {
            sr_buf_free(&b);
            sr_req_respond_error(req, 503, "out of memory rendering metrics", NULL);
            return true;
        }
        static const struct sr_http_header prom[] = {
            {"content-type", "text/plain; version=0.0.4; charset=utf-8"}};
        sr_req_respond(req, 200, prom, 1, b.data, b.len, true);
        return true;
    }
    return false;
}

int sr_env_http_status(int code)
{
    switch (code) {
    case SR_ERR_ENV_UNTRUSTED:
    case SR_ERR_ENV_BADSIG:
        return 401;
    case SR_ERR_ENV_EXPIRED:
        return 410;
    case SR_ERR_ENV_MISADDRESSED:
        return 421;
    case SR_ERR_ENV_REPLAY:
        return 409;
    case SR_ERR_ENV_OVERSIZE:
        return 413;
    case SR_ERR_ENV_KIND:
        return 422;
    default:
        return 400;
    }
}

struct sigctx {
    void (*on_term)(void *);
    void (*on_hup)(void *);
    void *arg;
    struct event *evs[3];
};

/* one context per process: the daemons install once and remove at exit */
static struct sigctx sig_ctx;

static void sig_cb(evutil_socket_t sig, short what, void *arg)
{
    (void)what;
    struct sigctx *s = arg;
    if (sig == SIGHUP) {
        if (s->on_hup) {
            s->on_hup(s->arg);
        }
    } else if (s->on_term) {
        s->on_term(s->arg);
    }
}

int sr_signals_install(struct event_base *base, void (*on_term)(void *), void (*on_hup)(void *),
                       void *arg)
{
    signal(SIGPIPE, SIG_IGN);
    sig_ctx.on_term = on_term;
    sig_ctx.on_hup = on_hup;
    sig_ctx.arg = arg;
    int sigs[3] = {SIGTERM, SIGINT, SIGHUP};
    for (int i = 0; i < 3; i++) {
        if (sigs[i] == SIGHUP && !on_hup) {
            continue;
        }
        struct event *ev = evsignal_new(base, sigs[i], sig_cb, &sig_ctx);
        if (!ev || evsignal_add(ev, NULL) != 0) {
            if (ev) {
                event_free(ev);
            }
            return SR_ERR_IO;
        }
        sig_ctx.evs[i] = ev;
    }
    return 0;
}

void sr_signals_remove(void)
{
    for (int i = 0; i < 3; i++) {
        if (sig_ctx.evs[i]) {
            event_free(sig_ctx.evs[i]);
            sig_ctx.evs[i] = NULL;
        }
    }
}
