/*
 * skyrouted part: what this station sees of the cluster, over HTTP.
 *
 *   GET /v1/cluster             the stations, their load and readiness, and
 *                               the views of other stations' passes and IDCs
 *   GET /v1/cluster/passes?sat= every station's passes of one satellite
 *
 * It only reads the state federation.c keeps.
 */
#include "gateway/daemon/federation_int.h"

#include <stdio.h>
#include <string.h>

/* ---- GET /v1/cluster, GET /v1/cluster/passes ------------------------------------------------ */

static int append_passes(struct gw_cluster *c, sr_buf *b, const char *router_id, int64_t from,
                         int64_t to)
{
    struct sr_pass_rec buf[256];
    size_t n = sr_router_passes(c->g->router, router_id, from, to, buf, 256);
    int rv = sr_buf_append(b, "[", 1);
    for (size_t i = 0; rv == 0 && i < n && i < 256; i++) {
        char a[SR_RFC3339_LEN], l[SR_RFC3339_LEN];
        sr_time_format(a, buf[i].aos_ms);
        sr_time_format(l, buf[i].los_ms);
        rv = sr_buf_appendf(b, "%s{\"aos\":\"%s\",\"los\":\"%s\",\"source\":", i ? "," : "", a, l);
        rv = rv ? rv : sr_buf_append_json_str(b, buf[i].source, strlen(buf[i].source));
        rv = rv ? rv : sr_buf_append(b, "}", 1);
    }
    return rv ? rv : sr_buf_append(b, "]", 1);
}

static void get_passes(struct gw_cluster *c, sr_req *req)
{
    char sat[SR_TARGET_IDMAX];
    if (sr_query_get(sr_req_path(req), "sat", sat, sizeof(sat)) != 0 || !fed_local_sat(c, sat)) {
        sr_req_respond_error(req, 400, "give ?sat=ID, a satellite target of this station", NULL);
        return;
    }
    int64_t now = sr_now_ms();
    sr_buf b;
    sr_buf_init(&b, 16u << 20);
    int rv = sr_buf_append(&b, "{\"sat\":", 7);
    rv = rv ? rv : sr_buf_append_json_str(&b, sat, strlen(sat));
    rv = rv ? rv : sr_buf_append(&b, ",\"stations\":{", 13);
    rv = rv ? rv : sr_buf_append_json_str(&b, c->station, strlen(c->station));
    rv = rv ? rv : sr_buf_append(&b, ":", 1);
    rv = rv ? rv : append_passes(c, &b, sat, now - PASS_PAST_MS, now + 7 * 86400000LL);
    for (size_t i = 0; rv == 0 && i < c->nviews; i++) {
        struct view *v = &c->views[i];
        if (strcmp(v->sat, sat) != 0) {
            continue;
        }
        rv = sr_buf_append(&b, ",", 1);
        rv = rv ? rv : sr_buf_append_json_str(&b, v->station, strlen(v->station));
        rv = rv ? rv : sr_buf_append(&b, ":", 1);
        rv = rv ? rv : append_passes(c, &b, v->id, now - PASS_PAST_MS, now + 7 * 86400000LL);
    }
    rv = rv ? rv : sr_buf_append(&b, "}}\n", 3);
    static const struct sr_http_header h[] = {{"content-type", "application/json"}};
    if (rv) {
        sr_buf_free(&b);
        sr_req_respond_error(req, 503, "out of memory", NULL);
        return;
    }
    sr_req_respond(req, 200, h, 1, b.data, b.len, true);
}

static void get_status(struct gw_cluster *c, sr_req *req)
{
    sr_buf b;
    sr_buf_init(&b, 16u << 20);
    int64_t now = sr_mono_ms();
    int rv = sr_buf_append(&b, "{\"station\":", 11);
    rv = rv ? rv : sr_buf_append_json_str(&b, c->station, strlen(c->station));
    rv = rv ? rv
            : sr_buf_appendf(&b, ",\"connected\":%s,\"stations\":[", c->ready ? "true" : "false");
    for (size_t i = 0; rv == 0 && i < c->nstations; i++) {
        struct station *s = &c->stations[i];
        rv = sr_buf_appendf(&b, "%s{\"name\":", i ? "," : "");
        rv = rv ? rv : sr_buf_append_json_str(&b, s->name, strlen(s->name));
        rv = rv ? rv
                : sr_buf_appendf(&b,
                                 ",\"alive\":%s,\"heartbeat_ms_ago\":%lld,\"spool_items\":%lld,"
                                 "\"spool_bytes\":%lld,\"ready\":%s}",
                                 fed_station_alive(c, s->name) ? "true" : "false",
                                 s->seen_mono ? (long long)(now - s->seen_mono) : -1LL,
                                 (long long)s->items, (long long)s->bytes,
                                 s->ready ? "true" : "false");
    }
    rv = rv ? rv : sr_buf_append(&b, "],\"views\":[", 11);
    for (size_t i = 0; rv == 0 && i < c->nviews; i++) {
        struct view *v = &c->views[i];
        rv = sr_buf_appendf(&b, "%s{\"target\":", i ? "," : "");
        rv = rv ? rv : sr_buf_append_json_str(&b, v->id, strlen(v->id));
        rv = rv ? rv : sr_buf_append(&b, ",\"via_station\":", 15);
        rv = rv ? rv : sr_buf_append_json_str(&b, v->station, strlen(v->station));
        rv = rv ? rv
                : sr_buf_appendf(&b, ",\"passes\":%zu,\"planned\":%s}", v->npasses,
                                 v->offline ? "false" : "true");
    }
    rv = rv ? rv : sr_buf_append(&b, "],\"elements\":[", 14);
    for (size_t i = 0; rv == 0 && i < c->nelems; i++) {
        struct shared_elements *e = &c->elems[i];
        char ep[SR_RFC3339_LEN];
        sr_time_format(ep, e->epoch_ms);
        rv = sr_buf_appendf(&b, "%s{\"sat\":", i ? "," : "");
        rv = rv ? rv : sr_buf_append_json_str(&b, e->sat, strlen(e->sat));
        rv = rv ? rv : sr_buf_append(&b, ",\"station\":", 11);
        rv = rv ? rv : sr_buf_append_json_str(&b, e->station, strlen(e->station));
        rv = rv ? rv : sr_buf_append(&b, ",\"operator\":", 12);
        rv = rv ? rv : sr_buf_append_json_str(&b, e->op, strlen(e->op));
        rv = rv ? rv : sr_buf_append(&b, ",\"format\":", 10);
        rv = rv ? rv : sr_buf_append_json_str(&b, e->format, strlen(e->format));
        rv = rv ? rv : sr_buf_appendf(&b, ",\"epoch\":\"%s\",\"bytes\":%zu}", ep, e->len);
    }
    rv = rv ? rv : sr_buf_append(&b, "]}\n", 3);
    static const struct sr_http_header h[] = {{"content-type", "application/json"}};
    if (rv) {
        sr_buf_free(&b);
        sr_req_respond_error(req, 503, "out of memory", NULL);
        return;
    }
    sr_req_respond(req, 200, h, 1, b.data, b.len, true);
}

bool gw_cluster_handle(struct gw *g, sr_req *req)
{
    const char *path = sr_req_path(req);
    size_t plen = strcspn(path, "?");
    bool status = plen == 11 && !strncmp(path, "/v1/cluster", 11);
    bool passes = plen == 18 && !strncmp(path, "/v1/cluster/passes", 18);
    if (!status && !passes) {
        return false;
    }
    if (strcmp(sr_req_method(req), "GET") != 0) {
        sr_req_respond_error(req, 405, "use GET", NULL);
    } else if (!g->cluster) {
        sr_req_respond_error(req, 404, "this gateway has no [cluster] section", NULL);
    } else if (status) {
        get_status(g->cluster, req);
    } else {
        get_passes(g->cluster, req);
    }
    return true;
}
