/*
 * skyrouted part: federation over NATS JetStream (DESIGN section 10).
 *
 *   [cluster]
 *   nats = nats://127.0.0.1:4222, nats://127.0.0.1:4223   servers (any of them will do)
 *   station = gs-a          this station's name in the cluster (default: the gateway id)
 *   user = ..., password = ..., token = ..., creds = FILE
 *                           credentials, if the servers want them
 *   replicas = 3            replicas of the stream and buckets (the cluster's size, up to 5)
 *   state_ttl_s = 6         a station silent this long is taken as gone
 *   heartbeat_ms = 1000     how often this station writes its state
 *   op_timeout_ms = 2000    each JetStream request
 *   results_ttl_s = 86400   how long results stay fetchable from any station
 *
 *   [peer.gs-b]
 *   pubkey = gs-b.pub       the gateway key of a station whose records we accept
 *
 * What is shared, and where (cluster/cluster.h has the record format; every
 * record is signed by its station's gateway key and refused unless that key
 * is configured here):
 *
 *   KV sr_passes   "<station>.<sat>": the passes each station's router holds
 *                  for each satellite (operator schedules and predictions).
 *                  Every station sees every station's passes: another
 *                  station's view of satellite S becomes a router target
 *                  "S@STATION" (via_station), planned like any satellite.
 *   KV sr_elements "<sat>": the latest element set uploaded anywhere.
 *   KV sr_state    "<station>": load, readiness, targets' observed latency;
 *                  the bucket has a TTL, and a station whose heartbeat stops
 *                  for state_ttl_s is offline: its views are not planned.
 *   stream SR_WORK (work queue) "sr.work.<station>": work whose best plan
 *                  leaves through that station's pass.
 *   KV sr_results  "<workload id>": results of forwarded work, so the
 *                  submitting station (and any other) can answer GET.
 *
 * Exactly once, and nothing lost when a gateway is killed -9:
 *   - the submitting station records durably that the workload goes to
 *     station B ("SAT@B", pinned) before publishing it, publishes it with
 *     the workload id as JetStream's de-duplication id, and marks it
 *     forwarded only after the stream acknowledged it (stored on a quorum of
 *     servers). A crash in between publishes it again: de-duplicated by the
 *     stream within an hour, by B's spool (same id) after that;
 *   - B acknowledges the message only after the workload is committed to its
 *     own spool (SQLite, synchronous=FULL). A crash before that: redelivered
 *     after 30 s. After: B's spool recovers it like its own work;
 *   - B publishes the result after it is stored locally and marks it
 *     published after the bucket acknowledged; unpublished results are
 *     published again at start-up and after every reconnection;
 *   - whatever is sent twice reaches the node under the same envelope id,
 *     and the node's replay guard answers with the stored result.
 * Acknowledging once the work is durable at B, rather than once its result
 * is stored, gives the same guarantee (B's spool finishes it after any
 * crash) without holding a message for the hours a pass may be away, past
 * any reasonable ack wait.
 *
 * Cut off from NATS, a station keeps serving from its own spool: the other
 * stations' views go offline (nothing can be forwarded), work already bound
 * for another station waits, pinned, and leaves when the connection is back;
 * results waiting to be published go out then too.
 */
#include "gateway/daemon/federation_int.h"
#include "gateway/store/store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static bool station_name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n >= SR_TARGET_IDMAX) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_')) {
            return false;
        }
    }
    return true;
}

/* ---- peers ---------------------------------------------------------------------------------- */

static const uint8_t *peer_key(void *arg, const char *station)
{
    struct gw_cluster *c = arg;
    for (size_t i = 0; i < c->npeers; i++) {
        if (!strcmp(c->peers[i].name, station)) {
            return c->peers[i].pk;
        }
    }
    return NULL;
}

static void count_refused(struct gw_cluster *c, const char *what, const char *reason)
{
    char labels[96];
    snprintf(labels, sizeof(labels), "record=\"%s\",reason=\"%s\"", what, reason);
    sr_metrics_add(c->g->metrics, "skyroute_cluster_rejected_total", labels, 1);
}

static void count_rejected(struct gw_cluster *c, const char *what, int code)
{
    count_refused(c, what, sr_errname(code));
}

/* ---- stations and views --------------------------------------------------------------------- */

static struct station *station_get(struct gw_cluster *c, const char *name, bool create)
{
    for (size_t i = 0; i < c->nstations; i++) {
        if (!strcmp(c->stations[i].name, name)) {
            return &c->stations[i];
        }
    }
    if (!create) {
        return NULL;
    }
    if (c->nstations == c->cap_stations) {
        size_t ncap = c->cap_stations ? c->cap_stations * 2 : 8;
        struct station *ns = realloc(c->stations, ncap * sizeof(*ns));
        if (!ns) {
            return NULL;
        }
        c->stations = ns;
        c->cap_stations = ncap;
    }
    struct station *s = &c->stations[c->nstations++];
    memset(s, 0, sizeof(*s));
    snprintf(s->name, sizeof(s->name), "%s", name);
    return s;
}

bool fed_station_alive(struct gw_cluster *c, const char *name)
{
    struct station *s = station_get(c, name, false);
    return s && s->seen_mono && sr_mono_ms() - s->seen_mono < (int64_t)c->state_ttl_ms;
}

/* A view is planned only while we are connected (we could not forward
 * otherwise), its station is alive, and it has passes. */
static void view_refresh(struct gw_cluster *c, struct view *v)
{
    bool off = !c->ready || !fed_station_alive(c, v->station) || (!v->idc && v->npasses == 0);
    if (off != v->offline) {
        v->offline = off;
        sr_log(SR_LOG_INFO, "cluster: %s is %s", v->id, off ? "offline" : "planned again");
    }
    (void)sr_router_set_offline(c->g->router, (size_t)v->router_idx, off);
}

/* A target of this station's own (not a view) named |id|, or NULL. */
static const struct sr_target_info *local_target(struct gw_cluster *c, const char *id)
{
    int idx = sr_router_find(c->g->router, id);
    if (idx < 0) {
        return NULL;
    }
    const struct sr_target_info *ti = sr_router_target(c->g->router, (size_t)idx);
    return ti->via_station[0] ? NULL : ti;
}

/* Another station's IDC as a target here: "ID@STATION", reached by
 * forwarding; its time cost carries the forward (forward_ms) and that
 * station's observed latency to it (as a fixed queue, refreshed with every
 * heartbeat). */
static void idc_view(struct gw_cluster *c, const char *station, const struct sr_cmsg_target *t)
{
    char id[SR_TARGET_IDMAX];
    if ((size_t)snprintf(id, sizeof(id), "%s@%s", t->id, station) >= sizeof(id)) {
        return;
    }
    struct view *v = NULL;
    for (size_t i = 0; i < c->nviews && !v; i++) {
        v = !strcmp(c->views[i].id, id) ? &c->views[i] : NULL;
    }
    if (!v) {
        if (c->nviews == c->cap_views) {
            size_t ncap = c->cap_views ? c->cap_views * 2 : 8;
            struct view *nv = realloc(c->views, ncap * sizeof(*nv));
            if (!nv) {
                return;
            }
            c->views = nv;
            c->cap_views = ncap;
        }
        struct sr_target_info ti;
        memset(&ti, 0, sizeof(ti));
        snprintf(ti.id, sizeof(ti.id), "%s", id);
        snprintf(ti.via_station, sizeof(ti.via_station), "%s", station);
        ti.kind = SR_TARGET_IDC;
        ti.prior_rtt_ms = c->forward_ms > 0 ? c->forward_ms : 1;
        ti.gops = t->gops;
        int idx = sr_router_find(c->g->router, id);
        if (idx < 0) {
            idx = sr_router_add_target(c->g->router, &ti);
        }
        if (idx < 0) {
            return;
        }
        v = &c->views[c->nviews++];
        memset(v, 0, sizeof(*v));
        snprintf(v->id, sizeof(v->id), "%s", id);
        snprintf(v->station, sizeof(v->station), "%s", station);
        snprintf(v->sat, sizeof(v->sat), "%s", t->id);
        v->router_idx = idx;
        v->idc = true;
        v->offline = true;
        (void)sr_router_set_offline(c->g->router, (size_t)idx, true);
    }
    if (sr_router_set_link(c->g->router, (size_t)v->router_idx, 0, 0,
                           t->ewma_ms < 3600000 ? t->ewma_ms : 3600000) != 0) {
        sr_log(SR_LOG_DEBUG, "cluster: cannot update %s", id);
    }
}

/* The local satellite target |sat| (not itself a view), or NULL. */
const struct sr_target_info *fed_local_sat(struct gw_cluster *c, const char *sat)
{
    int idx = sr_router_find(c->g->router, sat);
    if (idx < 0) {
        return NULL;
    }
    const struct sr_target_info *ti = sr_router_target(c->g->router, (size_t)idx);
    return ti->kind == SR_TARGET_SATELLITE && !ti->via_station[0] ? ti : NULL;
}

static struct view *view_get(struct gw_cluster *c, const char *station, const char *sat)
{
    char id[SR_TARGET_IDMAX];
    if ((size_t)snprintf(id, sizeof(id), "%s@%s", sat, station) >= sizeof(id)) {
        return NULL;
    }
    for (size_t i = 0; i < c->nviews; i++) {
        if (!strcmp(c->views[i].id, id)) {
            return &c->views[i];
        }
    }
    const struct sr_target_info *base = fed_local_sat(c, sat);
    if (!base) {
        return NULL; /* a satellite we do not serve: nothing to plan */
    }
    if (c->nviews == c->cap_views) {
        size_t ncap = c->cap_views ? c->cap_views * 2 : 8;
        struct view *nv = realloc(c->views, ncap * sizeof(*nv));
        if (!nv) {
            return NULL;
        }
        c->views = nv;
        c->cap_views = ncap;
    }
    struct sr_target_info ti = *base;
    snprintf(ti.id, sizeof(ti.id), "%s", id);
    snprintf(ti.via_station, sizeof(ti.via_station), "%s", station);
    int idx = sr_router_find(c->g->router, id);
    if (idx < 0) {
        idx = sr_router_add_target(c->g->router, &ti);
    }
    if (idx < 0) {
        sr_log(SR_LOG_WARN, "cluster: cannot add %s to the router: %s", id, sr_strerror(idx));
        return NULL;
    }
    struct view *v = &c->views[c->nviews++];
    memset(v, 0, sizeof(*v));
    snprintf(v->id, sizeof(v->id), "%s", id);
    snprintf(v->station, sizeof(v->station), "%s", station);
    snprintf(v->sat, sizeof(v->sat), "%s", sat);
    v->router_idx = idx;
    v->offline = true;
    (void)sr_router_set_offline(c->g->router, (size_t)idx, true);
    return v;
}

/* ---- incoming records ------------------------------------------------------------------------ */

static void on_passes(struct gw_cluster *c, const char *key, const uint8_t *data, size_t len,
                      bool deleted)
{
    char station[SR_TARGET_IDMAX];
    const char *dot = strchr(key, '.');
    if (!dot || (size_t)(dot - key) >= sizeof(station)) {
        return;
    }
    memcpy(station, key, (size_t)(dot - key));
    station[dot - key] = 0;
    if (!strcmp(station, c->station)) {
        return; /* our own */
    }
    if (deleted) {
        /* a KV delete or purge carries no signature: anyone with NATS access
         * could clear a station's view with it. A station withdraws its
         * passes with a signed record of none. */
        sr_log(SR_LOG_WARN, "cluster: unsigned deletion of passes %s ignored", key);
        count_refused(c, "passes", "unsigned_delete");
        return;
    }
    struct sr_cmsg m;
    char why[200];
    int rv = sr_cmsg_open(&m, data, len, MAX_RECORD, SR_CMSG_PASSES, peer_key, c, why, sizeof(why));
    if (rv == 0 && (strcmp(m.station, station) != 0 || strcmp(m.sat, dot + 1) != 0)) {
        rv = SR_ERR_ENV_MISADDRESSED;
        snprintf(why, sizeof(why),
                 "record under key %s is %s's passes of %s, not that station's of that satellite",
                 key, m.station, m.sat);
    }
    rv = rv ? rv : fed_seq_take(c, SR_NATS_KV_PASSES, key, &m, why, sizeof(why));
    if (rv == 1) {
        sr_cmsg_clear(&m); /* the record we hold, delivered again */
        return;
    }
    if (rv) {
        sr_log(SR_LOG_WARN, "cluster: passes %s refused: %s", key, why);
        count_rejected(c, "passes", rv);
        sr_cmsg_clear(&m);
        return;
    }
    struct view *v = view_get(c, station, m.sat);
    if (v) {
        for (size_t i = 0; i < m.npasses; i++) {
            snprintf(m.passes[i].sat, sizeof(m.passes[i].sat), "%s", v->id);
        }
        rv = sr_router_set_passes(c->g->router, v->id, INT64_MIN, INT64_MAX, m.passes, m.npasses);
        if (rv) {
            sr_log(SR_LOG_WARN, "cluster: passes of %s refused by the router: %s", v->id,
                   sr_strerror(rv));
            count_rejected(c, "passes", rv);
        } else {
            v->npasses = m.npasses;
            sr_log(SR_LOG_DEBUG, "cluster: %zu passes of %s from %s", m.npasses, m.sat, station);
        }
        station_get(c, station, true);
        view_refresh(c, v);
    }
    sr_cmsg_clear(&m);
}

static void on_state(struct gw_cluster *c, const char *key, const uint8_t *data, size_t len,
                     bool deleted)
{
    if (!strcmp(key, c->station)) {
        return;
    }
    if (deleted) {
        /* nothing to undo (a station is alive only while its heartbeats are
         * fresh), but someone without a key wrote to the bucket */
        count_refused(c, "state", "unsigned_delete");
        return;
    }
    struct sr_cmsg m;
    char why[200];
    int rv = sr_cmsg_open(&m, data, len, MAX_RECORD, SR_CMSG_STATE, peer_key, c, why, sizeof(why));
    if (rv == 0 && strcmp(m.station, key) != 0) {
        rv = SR_ERR_ENV_MISADDRESSED;
        snprintf(why, sizeof(why), "the state of %s under key %s", m.station, key);
    }
    /* A heartbeat says the station was alive at t, and for no longer than
     * state_ttl_s after it: one older than that is a replay (or a clock far
     * off), and can never make a station look alive. */
    int64_t age = rv ? 0 : sr_now_ms() - m.t_ms;
    if (rv == 0 && (age >= (int64_t)c->state_ttl_ms || -age >= (int64_t)c->state_ttl_ms)) {
        rv = SR_ERR_ENV_EXPIRED;
        snprintf(why, sizeof(why), "a heartbeat written %.1f s %s, outside state_ttl_s",
                 (double)(age < 0 ? -age : age) / 1000.0, age < 0 ? "ahead" : "ago");
    }
    rv = rv ? rv : fed_seq_take(c, SR_NATS_KV_STATE, key, &m, why, sizeof(why));
    if (rv == 1) {
        sr_cmsg_clear(&m);
        return;
    }
    if (rv) {
        sr_log(SR_LOG_WARN, "cluster: state %s refused: %s", key, why);
        count_rejected(c, "state", rv);
        sr_cmsg_clear(&m);
        return;
    }
    struct station *s = station_get(c, key, true);
    if (s) {
        /* alive until state_ttl_s after the station wrote it, not after it
         * reached us */
        s->seen_mono = sr_mono_ms() - (age > 0 ? age : 0);
        s->items = m.items;
        s->bytes = m.bytes;
        s->ready = m.ready;
        for (size_t i = 0; i < m.ntargets; i++) {
            if (m.targets[i].kind == SR_TARGET_IDC) {
                idc_view(c, key, &m.targets[i]);
            }
        }
        for (size_t i = 0; i < c->nviews; i++) {
            if (!strcmp(c->views[i].station, key)) {
                view_refresh(c, &c->views[i]);
            }
        }
    }
    sr_cmsg_clear(&m);
}

static void on_result(struct gw_cluster *c, const char *key, const uint8_t *data, size_t len,
                      bool deleted)
{
    if (deleted) {
        count_refused(c, "result", "unsigned_delete");
        return;
    }
    struct sr_cmsg m;
    char why[200];
    int rv = sr_cmsg_open(&m, data, len, MAX_RECORD, SR_CMSG_RESULT, peer_key, c, why, sizeof(why));
    if (rv == 0 && !fed_result_key_ok(&m, key, why, sizeof(why))) {
        rv = SR_ERR_ENV_MISADDRESSED;
    }
    if (rv) {
        sr_log(SR_LOG_WARN, "cluster: result %s refused: %s", key, why);
        count_rejected(c, "result", rv);
        sr_cmsg_clear(&m);
        return;
    }
    if (!strcmp(m.origin, c->station) && strcmp(m.station, c->station) != 0) {
        rv = fed_check_node_result(c, &m, why, sizeof(why));
        if (rv) {
            sr_log(SR_LOG_WARN, "cluster: result %s from %s refused: %s", key, m.station, why);
            count_rejected(c, "result", rv);
            sr_cmsg_clear(&m);
            return;
        }
        if (m.node_env_len) {
            sr_metrics_add(c->g->metrics, "skyroute_cluster_node_verified_total", "", 1);
        }
        struct gw_remote_result r = {.id = m.id,
                                     .station = m.station,
                                     .target = m.target,
                                     .status = (int)m.status,
                                     .payload = m.payload,
                                     .payload_len = m.payload_len,
                                     .signer = m.signer,
                                     .error = m.error,
                                     .predicted_ms = m.predicted_ms,
                                     .elapsed_ms = m.elapsed_ms,
                                     .envelope = m.node_env,
                                     .envelope_len = m.node_env_len};
        rv = gw_spool_import(c->g, &r);
        if (rv == 0) {
            sr_metrics_add(c->g->metrics, "skyroute_cluster_results_imported_total", "", 1);
        } else if (rv == SR_ERR_ENV_UNTRUSTED) {
            sr_log(SR_LOG_WARN,
                   "cluster: result %s from %s refused: not the station it was sent to", key,
                   m.station);
            count_rejected(c, "result", rv);
        }
    }
    sr_cmsg_clear(&m);
}

static struct shared_elements *elements_get(struct gw_cluster *c, const char *sat, bool create)
{
    for (size_t i = 0; i < c->nelems; i++) {
        if (!strcmp(c->elems[i].sat, sat)) {
            return &c->elems[i];
        }
    }
    if (!create) {
        return NULL;
    }
    if (c->nelems == c->cap_elems) {
        size_t ncap = c->cap_elems ? c->cap_elems * 2 : 8;
        struct shared_elements *ne = realloc(c->elems, ncap * sizeof(*ne));
        if (!ne) {
            return NULL;
        }
        c->elems = ne;
        c->cap_elems = ncap;
    }
    struct shared_elements *e = &c->elems[c->nelems++];
    memset(e, 0, sizeof(*e));
    snprintf(e->sat, sizeof(e->sat), "%s", sat);
    return e;
}

/* The latest element set any station accepted, per satellite: each station
 * predicts its own passes from it (when newer than the set it has), and GET
 * /v1/cluster lists it. */
static void on_elements(struct gw_cluster *c, const char *key, const uint8_t *data, size_t len,
                        bool deleted)
{
    if (deleted) {
        count_refused(c, "elements", "unsigned_delete"); /* what stations hold stays */
        return;
    }
    struct sr_cmsg m;
    char why[200];
    int rv =
        sr_cmsg_open(&m, data, len, MAX_RECORD, SR_CMSG_ELEMENTS, peer_key, c, why, sizeof(why));
    if (rv == 0 && strcmp(m.sat, key) != 0) {
        rv = SR_ERR_ENV_MISADDRESSED;
        snprintf(why, sizeof(why), "the elements of %s under key %s", m.sat, key);
    }
    rv = rv ? rv : fed_seq_take(c, SR_NATS_KV_ELEMENTS, key, &m, why, sizeof(why));
    if (rv == 1) {
        sr_cmsg_clear(&m);
        return;
    }
    const char *reason = NULL;
    if (rv == 0 && strcmp(m.station, c->station) != 0 &&
        !fed_elements_in_scope(c, &m, why, sizeof(why))) {
        reason = "scope";
        rv = SR_ERR_ENV_UNTRUSTED;
    }
    if (rv) {
        sr_log(SR_LOG_WARN, "cluster: elements %s refused: %s", key, why);
        if (reason) {
            count_refused(c, "elements", reason);
        } else {
            count_rejected(c, "elements", rv);
        }
        sr_cmsg_clear(&m);
        return;
    }
    if (strcmp(m.station, c->station) != 0) {
        /* predict this station's passes from it, when it is newer than ours */
        char op[64];
        snprintf(op, sizeof(op), "%s@%s", m.op[0] ? m.op : "?", m.station);
        int irv = gw_feeds_ingest_elements(c->g, op, (const char *)m.payload, m.payload_len);
        if (irv != 0 && irv != SR_ERR_NOTFOUND && irv != SR_ERR_UNAVAILABLE) {
            sr_log(SR_LOG_WARN, "cluster: elements of %s from %s not used: %s", m.sat, m.station,
                   sr_strerror(irv));
        }
    }
    struct shared_elements *e = elements_get(c, m.sat, true);
    if (e) {
        snprintf(e->station, sizeof(e->station), "%s", m.station);
        snprintf(e->op, sizeof(e->op), "%s", m.op);
        snprintf(e->format, sizeof(e->format), "%s", m.format);
        e->epoch_ms = m.epoch_ms;
        e->len = m.payload_len;
    }
    sr_cmsg_clear(&m);
}

static void on_kv(void *arg, int bucket, const char *key, const uint8_t *data, size_t len,
                  bool deleted)
{
    struct gw_cluster *c = arg;
    switch (bucket) {
    case SR_NATS_KV_PASSES:
        on_passes(c, key, data, len, deleted);
        break;
    case SR_NATS_KV_STATE:
        on_state(c, key, data, len, deleted);
        break;
    case SR_NATS_KV_RESULTS:
        on_result(c, key, data, len, deleted);
        break;
    case SR_NATS_KV_ELEMENTS:
        on_elements(c, key, data, len, deleted);
        break;
    default:
        break;
    }
}

static void on_work(void *arg, sr_nats_msg *msg, const uint8_t *data, size_t len)
{
    struct gw_cluster *c = arg;
    struct gw *g = c->g;
    struct sr_cmsg m;
    char why[200];
    int rv = sr_cmsg_open(&m, data, len, MAX_RECORD, SR_CMSG_WORK, peer_key, c, why, sizeof(why));
    if (rv == 0 && (strcmp(m.dest, c->station) != 0 || strcmp(m.origin, m.station) != 0)) {
        rv = SR_ERR_ENV_MISADDRESSED;
        snprintf(why, sizeof(why), "work from %s for %s (origin %s) is not for this station",
                 m.station, m.dest, m.origin);
    }
    if (rv == 0 && m.deadline_ms <= sr_now_ms() && (double)(sr_now_ms() - m.t_ms) > c->keep_ms) {
        /* the spool de-duplicates ids only while it keeps their rows
         * (keep_results_s): work sent longer ago than that, and past its
         * deadline, may have run here already (a capture published again);
         * later-delivered work within it is adopted, and fails in the spool
         * as past its deadline, which its station then learns */
        rv = SR_ERR_ENV_EXPIRED;
        snprintf(why, sizeof(why), "work from %s sent %.0f s ago is past its deadline", m.origin,
                 (double)(sr_now_ms() - m.t_ms) / 1000.0);
    }
    if (rv == 0 && !local_target(c, m.target)) {
        rv = SR_ERR_NOTFOUND;
        snprintf(why, sizeof(why), "'%s' is not a target of this station", m.target);
    }
    if (rv) {
        /* never usable: dropped from the queue (the origin's GET keeps saying forwarded) */
        sr_log(SR_LOG_WARN, "cluster: work refused: %s", why);
        count_rejected(c, "work", rv);
        sr_cmsg_clear(&m);
        sr_nats_term(c->nats, msg);
        return;
    }
    struct gw_job_spec spec;
    memset(&spec, 0, sizeof(spec));
    memcpy(spec.id, m.id, SR_ENV_IDBYTES);
    spec.iat_ms = m.iat_ms;
    snprintf(spec.handler, sizeof(spec.handler), "%s", m.handler);
    spec.payload = m.payload;
    spec.payload_len = m.payload_len;
    spec.env_flags = (unsigned)m.env_flags;
    spec.w.work_gop = m.work_gop;
    spec.w.bytes_in = (int64_t)m.payload_len;
    spec.w.result_bytes = m.result_bytes;
    spec.w.deadline_ms = m.deadline_ms;
    spec.w.place = SR_PLACE_TARGET; /* the satellite it was sent here for, from our own passes */
    snprintf(spec.w.place_target, sizeof(spec.w.place_target), "%s", m.target);
    snprintf(spec.w.data_at, sizeof(spec.w.data_at), "%s", m.data_at);
    spec.w.store_and_forward = true;
    rv = gw_spool_adopt(g, &spec, m.client, m.origin);
    if (rv == 0) {
        sr_nats_ack(c->nats, msg); /* durable here: the spool owns it now */
        sr_metrics_add(g->metrics, "skyroute_cluster_adopted_total", "", 1);
    } else {
        sr_log(SR_LOG_WARN, "cluster: cannot store work from %s: %s; redelivered later", m.origin,
               sr_strerror(rv));
        sr_nats_nak(c->nats, msg);
    }
    sr_cmsg_clear(&m);
}

/* ---- outgoing records ----------------------------------------------------------------------- */

struct cb_ctx {
    gw_link_done cb;
    void *arg;
};

static void op_done(void *arg, int rv, const uint8_t *data, size_t len)
{
    (void)data;
    (void)len;
    struct cb_ctx *x = arg;
    if (x->cb) {
        x->cb(rv, x->arg);
    }
    free(x);
}

/* Signs |m| with the next sequence. */
static int sealed(struct gw_cluster *c, struct sr_cmsg *m, sr_buf *out)
{
    sr_buf_init(out, MAX_RECORD);
    m->seq = fed_next_seq(c);
    int rv = sr_cmsg_encode(out, c->g->key, m);
    if (rv) {
        sr_buf_free(out);
    }
    return rv;
}

/* The spool's link: forward (daemon.h, struct gw_spool_link). */
static int link_forward(void *ctx, const struct gw_job_spec *spec, const char *client,
                        const char *via_target, gw_link_done cb, void *arg)
{
    struct gw *g = ctx;
    struct gw_cluster *c = g->cluster;
    if (!c || !c->ready) {
        return SR_ERR_UNAVAILABLE;
    }
    const char *at = strrchr(via_target, '@');
    if (!at || !at[1] || (size_t)(at - via_target) >= SR_TARGET_IDMAX) {
        return SR_ERR_INVAL;
    }
    struct sr_cmsg m;
    memset(&m, 0, sizeof(m));
    m.kind = SR_CMSG_WORK;
    snprintf(m.station, sizeof(m.station), "%s", c->station);
    m.t_ms = sr_now_ms();
    memcpy(m.id, spec->id, SR_ENV_IDBYTES);
    snprintf(m.origin, sizeof(m.origin), "%s", c->station);
    snprintf(m.dest, sizeof(m.dest), "%s", at + 1);
    memcpy(m.target, via_target, (size_t)(at - via_target));
    snprintf(m.handler, sizeof(m.handler), "%s", spec->handler);
    snprintf(m.client, sizeof(m.client), "%s", client ? client : "");
    m.payload = (uint8_t *)(uintptr_t)spec->payload;
    m.payload_len = spec->payload_len;
    m.iat_ms = spec->iat_ms;
    m.deadline_ms = spec->w.deadline_ms;
    m.work_gop = spec->w.work_gop;
    m.result_bytes = spec->w.result_bytes;
    m.env_flags = spec->env_flags;
    m.place = SR_PLACE_TARGET;
    snprintf(m.place_target, sizeof(m.place_target), "%s", m.target);
    snprintf(m.data_at, sizeof(m.data_at), "%s", spec->w.data_at);
    sr_buf rec;
    int rv = sealed(c, &m, &rec);
    if (rv) {
        return rv;
    }
    char subject[128], idhex[2 * SR_ENV_IDBYTES + 1];
    snprintf(subject, sizeof(subject), "sr.work.%s", m.dest);
    sr_hex(idhex, spec->id, SR_ENV_IDBYTES);
    struct cb_ctx *x = malloc(sizeof(*x));
    rv = x ? 0 : SR_ERR_NOMEM;
    if (x) {
        x->cb = cb;
        x->arg = arg;
        rv = sr_nats_publish(c->nats, subject, idhex, rec.data, rec.len, op_done, x);
        if (rv) {
            free(x);
        }
    }
    sr_buf_free(&rec);
    if (rv == 0) {
        sr_metrics_add(g->metrics, "skyroute_cluster_forwarded_total", "", 1);
    }
    return rv;
}

/* The spool's link: publish_result. */
static int link_publish_result(void *ctx, const char *origin, const struct gw_remote_result *r,
                               gw_link_done cb, void *arg)
{
    struct gw *g = ctx;
    struct gw_cluster *c = g->cluster;
    if (!c || !c->ready) {
        return SR_ERR_UNAVAILABLE;
    }
    struct sr_cmsg m;
    memset(&m, 0, sizeof(m));
    m.kind = SR_CMSG_RESULT;
    snprintf(m.station, sizeof(m.station), "%s", c->station);
    m.t_ms = sr_now_ms();
    memcpy(m.id, r->id, SR_ENV_IDBYTES);
    /* "": work accepted here, published so that any station can answer for it */
    snprintf(m.origin, sizeof(m.origin), "%s", origin && origin[0] ? origin : c->station);
    snprintf(m.target, sizeof(m.target), "%s", r->target ? r->target : "");
    m.status = r->status >= 100 && r->status <= 599 ? r->status : 502;
    m.payload = (uint8_t *)(uintptr_t)r->payload;
    m.payload_len = r->payload_len;
    snprintf(m.signer, sizeof(m.signer), "%s", r->signer ? r->signer : "");
    snprintf(m.error, sizeof(m.error), "%s", r->error ? r->error : "");
    m.predicted_ms = r->predicted_ms;
    m.elapsed_ms = r->elapsed_ms;
    m.node_env = (uint8_t *)(uintptr_t)r->envelope;
    m.node_env_len = r->envelope ? r->envelope_len : 0;
    sr_buf rec;
    int rv = sealed(c, &m, &rec);
    if (rv) {
        return rv;
    }
    char key[2 * SR_ENV_IDBYTES + 1];
    sr_hex(key, r->id, SR_ENV_IDBYTES);
    struct cb_ctx *x = malloc(sizeof(*x));
    rv = x ? 0 : SR_ERR_NOMEM;
    if (x) {
        x->cb = cb;
        x->arg = arg;
        rv = sr_nats_kv_put(c->nats, SR_NATS_KV_RESULTS, key, rec.data, rec.len, op_done, x);
        if (rv) {
            free(x);
        }
    }
    sr_buf_free(&rec);
    if (rv == 0) {
        sr_metrics_add(g->metrics, "skyroute_cluster_results_published_total", "", 1);
    }
    return rv;
}

/* ---- GET /v1/workloads/ID of a workload another station accepted ---------------------------- */

struct fetch {
    struct gw_cluster *c;
    sr_req *req; /* NULL once the client left */
    uint8_t id[SR_ENV_IDBYTES];
};

static void fetch_abort(sr_req *req, void *data)
{
    (void)req;
    struct fetch *f = data;
    f->req = NULL;
}

/*
 * The newest value of the workload's key that verifies as its result: signed
 * by a trusted station, naming this workload (a result for another one put
 * under this key is refused), and, when the station that accepted it is not
 * the one that ran it, signed by the one that ran it. Values the bucket still
 * keeps come oldest first; each refused one is counted. 0 (|m| filled),
 * SR_ERR_NOTFOUND (no value at all) or the refusal of the newest value.
 */
static int fetch_pick(struct fetch *f, const uint8_t *data, size_t len, struct sr_cmsg *m)
{
    size_t starts[64], n = 0;
    for (size_t o = 0; o + 4 <= len && n < 64;) {
        size_t l = (size_t)data[o] << 24 | (size_t)data[o + 1] << 16 | (size_t)data[o + 2] << 8 |
                   data[o + 3];
        if (l > len - o - 4) {
            break;
        }
        starts[n++] = o;
        o += 4 + l;
    }
    char key[2 * SR_ENV_IDBYTES + 1];
    sr_hex(key, f->id, SR_ENV_IDBYTES);
    int first = SR_ERR_NOTFOUND;
    while (n--) {
        const uint8_t *v = data + starts[n] + 4;
        size_t vl = (size_t)v[-4] << 24 | (size_t)v[-3] << 16 | (size_t)v[-2] << 8 | v[-1];
        char why[200] = "";
        int rv =
            sr_cmsg_open(m, v, vl, MAX_RECORD, SR_CMSG_RESULT, peer_key, f->c, why, sizeof(why));
        if (rv == 0 && !fed_result_key_ok(m, key, why, sizeof(why))) {
            rv = SR_ERR_ENV_MISADDRESSED;
        }
        if (rv == 0 && strcmp(m->origin, m->station) != 0) {
            rv = fed_check_node_result(f->c, m, why, sizeof(why)); /* ran elsewhere */
        }
        if (rv == 0) {
            return 0;
        }
        sr_cmsg_clear(m);
        count_rejected(f->c, "result", rv);
        sr_log(SR_LOG_WARN, "cluster: stored result %s refused: %s", key, why);
        first = first == SR_ERR_NOTFOUND ? rv : first;
    }
    return first;
}

static void fetch_done(void *arg, int rv, const uint8_t *data, size_t len)
{
    struct fetch *f = arg;
    sr_req *req = f->req;
    if (!req) {
        free(f);
        return;
    }
    sr_req_set_abort(req, NULL);
    struct sr_cmsg m;
    memset(&m, 0, sizeof(m));
    if (rv == 0) {
        rv = fetch_pick(f, data, len, &m);
    }
    if (rv == SR_ERR_NOTFOUND) {
        sr_req_respond_error(req, 404, "no such workload",
                             "{\"why\":\"not accepted here, and no station published a result "
                             "for it\"}");
    } else if (rv == SR_ERR_UNAVAILABLE || rv == SR_ERR_TIMEOUT || rv == SR_ERR_CANCELLED) {
        sr_req_respond_error(req, 503, "the cluster cannot be reached to look for this workload",
                             NULL);
    } else if (rv) {
        sr_req_respond_error(req, 502, "the stored result failed verification", NULL);
    } else if (m.status == 200) {
        char idhex[2 * SR_ENV_IDBYTES + 1], p[32], e[32];
        sr_hex(idhex, m.id, SR_ENV_IDBYTES);
        snprintf(p, sizeof(p), "%.0f", m.predicted_ms);
        snprintf(e, sizeof(e), "%.0f", m.elapsed_ms);
        const struct sr_http_header h[] = {{"content-type", "application/octet-stream"},
                                           {"skyroute-id", idhex},
                                           {"skyroute-target", m.target},
                                           {"skyroute-predicted-ms", p},
                                           {"skyroute-elapsed-ms", e},
                                           {"skyroute-signer", m.signer},
                                           {"skyroute-station", m.station}};
        sr_req_respond(req, 200, h, 7, m.payload ? m.payload : (const uint8_t *)"", m.payload_len,
                       false);
    } else {
        sr_buf b;
        sr_buf_init(&b, 4096);
        int e = sr_buf_append(&b, "{\"state\":\"failed\",\"station\":", 28);
        e = e ? e : sr_buf_append_json_str(&b, m.station, strlen(m.station));
        e = e ? e : sr_buf_append(&b, ",\"reason\":", 10);
        e = e ? e : sr_buf_append_json_str(&b, m.error, strlen(m.error));
        e = e ? e : sr_buf_append(&b, "}", 1);
        e = e ? e : sr_buf_terminate(&b);
        sr_req_respond_error(req, (int)m.status, "the workload failed",
                             e ? NULL : (const char *)b.data);
        sr_buf_free(&b);
    }
    sr_cmsg_clear(&m);
    free(f);
}

/* The spool's link: fetch. */
static bool link_fetch(void *ctx, sr_req *req, const uint8_t id[SR_ENV_IDBYTES])
{
    struct gw *g = ctx;
    struct gw_cluster *c = g->cluster;
    if (!c || !c->ready) {
        return false;
    }
    struct fetch *f = calloc(1, sizeof(*f));
    if (!f) {
        return false;
    }
    f->c = c;
    f->req = req;
    memcpy(f->id, id, SR_ENV_IDBYTES);
    char key[2 * SR_ENV_IDBYTES + 1];
    sr_hex(key, id, SR_ENV_IDBYTES);
    if (sr_nats_kv_history(c->nats, SR_NATS_KV_RESULTS, key, fetch_done, f) != 0) {
        free(f);
        return false;
    }
    sr_req_set_data(req, f);
    sr_req_set_abort(req, fetch_abort);
    return true;
}

/* ---- what this station tells the others ---------------------------------------------------- */

static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++) {
        h = (h ^ b[i]) * 1099511628211ull;
    }
    return h;
}

static void pass_put_done(void *arg, int rv, const uint8_t *data, size_t len)
{
    (void)data;
    (void)len;
    struct local_pub *lp = arg;
    if (rv != 0) {
        lp->done = false; /* published again on the next tick */
    }
}

static void publish_passes(struct gw_cluster *c)
{
    struct gw *g = c->g;
    int64_t now = sr_now_ms();
    struct sr_pass_rec *buf = malloc(MAX_LOCAL_PASSES * sizeof(*buf));
    if (!buf) {
        return;
    }
    for (size_t i = 0; i < c->npubs; i++) {
        struct local_pub *lp = &c->pubs[i];
        size_t n = sr_router_passes(g->router, lp->sat, now - PASS_PAST_MS, now + PASS_AHEAD_MS,
                                    buf, MAX_LOCAL_PASSES);
        if (n > MAX_LOCAL_PASSES) {
            n = MAX_LOCAL_PASSES;
        }
        uint64_t h = fnv(1469598103934665603ull, &n, sizeof(n));
        for (size_t k = 0; k < n; k++) {
            h = fnv(h, &buf[k].aos_ms, sizeof(buf[k].aos_ms));
            h = fnv(h, &buf[k].los_ms, sizeof(buf[k].los_ms));
            h = fnv(h, &buf[k].uplink_bps, sizeof(buf[k].uplink_bps));
            h = fnv(h, &buf[k].downlink_bps, sizeof(buf[k].downlink_bps));
        }
        if (lp->done && lp->hash == h) {
            continue;
        }
        struct sr_cmsg m;
        memset(&m, 0, sizeof(m));
        m.kind = SR_CMSG_PASSES;
        snprintf(m.station, sizeof(m.station), "%s", c->station);
        m.t_ms = now;
        snprintf(m.sat, sizeof(m.sat), "%s", lp->sat);
        m.passes = buf;
        m.npasses = n;
        sr_buf rec;
        if (sealed(c, &m, &rec) != 0) {
            continue;
        }
        char key[2 * SR_TARGET_IDMAX + 2];
        snprintf(key, sizeof(key), "%s.%s", c->station, lp->sat);
        if (sr_nats_kv_put(c->nats, SR_NATS_KV_PASSES, key, rec.data, rec.len, pass_put_done, lp) ==
            0) {
            lp->hash = h;
            lp->done = true;
        }
        sr_buf_free(&rec);
    }
    free(buf);
}

static void elem_put_done(void *arg, int rv, const uint8_t *data, size_t len)
{
    (void)data;
    (void)len;
    struct local_pub *lp = arg;
    if (rv != 0) {
        lp->elem_done = false;
    }
}

/* Every few seconds: element sets accepted here that are newer than what the
 * bucket holds for their satellite go to the bucket. */
static void publish_elements(struct gw_cluster *c)
{
    int64_t now = sr_mono_ms();
    if (!c->store || now - c->last_elements < 2000) {
        return;
    }
    c->last_elements = now;
    struct sr_store_elements *els = NULL;
    size_t n = 0;
    if (sr_store_get_elements(c->store, &els, &n) != 0) {
        return;
    }
    for (size_t i = 0; i < n; i++) {
        struct local_pub *lp = NULL;
        for (size_t k = 0; k < c->npubs && !lp; k++) {
            lp = !strcmp(c->pubs[k].sat, els[i].sat) ? &c->pubs[k] : NULL;
        }
        if (!lp) {
            continue;
        }
        uint64_t h = fnv(1469598103934665603ull, els[i].text, els[i].len);
        h = fnv(h, els[i].format, strlen(els[i].format));
        const struct shared_elements *cur = elements_get(c, els[i].sat, false);
        if ((lp->elem_done && lp->elem_hash == h) ||
            (cur && cur->epoch_ms >= (int64_t)els[i].epoch_ms)) {
            continue; /* published, or the bucket has a set as new */
        }
        struct sr_cmsg m;
        memset(&m, 0, sizeof(m));
        m.kind = SR_CMSG_ELEMENTS;
        snprintf(m.station, sizeof(m.station), "%s", c->station);
        m.t_ms = sr_now_ms();
        snprintf(m.sat, sizeof(m.sat), "%s", els[i].sat);
        snprintf(m.format, sizeof(m.format), "%s", els[i].format[0] ? els[i].format : "tle");
        snprintf(m.op, sizeof(m.op), "%s", els[i].op);
        m.epoch_ms = (int64_t)els[i].epoch_ms;
        m.payload = (uint8_t *)els[i].text;
        m.payload_len = els[i].len;
        sr_buf rec;
        if (sealed(c, &m, &rec) != 0) {
            continue;
        }
        if (sr_nats_kv_put(c->nats, SR_NATS_KV_ELEMENTS, els[i].sat, rec.data, rec.len,
                           elem_put_done, lp) == 0) {
            lp->elem_hash = h;
            lp->elem_done = true;
        }
        sr_buf_free(&rec);
    }
    sr_store_elements_free(els, n);
}

static void state_put_done(void *arg, int rv, const uint8_t *data, size_t len)
{
    (void)rv;
    (void)data;
    (void)len;
    struct gw_cluster *c = arg;
    c->state_inflight = false;
}

static void publish_state(struct gw_cluster *c)
{
    struct gw *g = c->g;
    int64_t now = sr_mono_ms();
    if (c->state_inflight || now - c->last_heartbeat < (int64_t)c->heartbeat_ms) {
        return;
    }
    c->last_heartbeat = now;
    struct sr_cmsg m;
    memset(&m, 0, sizeof(m));
    m.kind = SR_CMSG_STATE;
    snprintf(m.station, sizeof(m.station), "%s", c->station);
    m.t_ms = sr_now_ms();
    m.items = (int64_t)sr_metrics_get(g->metrics, "skyroute_spool_items", "");
    m.bytes = (int64_t)sr_metrics_get(g->metrics, "skyroute_spool_bytes", "");
    m.ready = !g->draining;
    struct sr_cmsg_target *t = calloc(g->ntargets ? g->ntargets : 1, sizeof(*t));
    if (!t) {
        return;
    }
    for (size_t i = 0; i < g->ntargets && i < SR_CMSG_MAX_TARGETS; i++) {
        struct sr_target_state st;
        sr_router_state(g->router, (size_t)g->targets[i].router_idx, sr_now_ms(), &st);
        snprintf(t[i].id, sizeof(t[i].id), "%s", g->targets[i].cfg->id);
        t[i].ewma_ms = st.ewma_ms;
        t[i].inflight = st.inflight;
        t[i].failures = (int64_t)st.failures;
        t[i].kind = g->targets[i].cfg->kind;
        t[i].gops = g->targets[i].cfg->gops > 0 ? g->targets[i].cfg->gops : 1;
        m.ntargets++;
    }
    m.targets = t;
    sr_buf rec;
    if (sealed(c, &m, &rec) == 0) {
        if (sr_nats_kv_put(c->nats, SR_NATS_KV_STATE, c->station, rec.data, rec.len, state_put_done,
                           c) == 0) {
            c->state_inflight = true;
        }
        sr_buf_free(&rec);
    }
    free(t);
}

static void tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct gw_cluster *c = arg;
    if (c->ready) {
        publish_state(c);
        publish_passes(c);
        publish_elements(c);
    }
    for (size_t i = 0; i < c->nviews; i++) {
        view_refresh(c, &c->views[i]);
    }
}

static void on_status(void *arg, bool ready)
{
    struct gw_cluster *c = arg;
    c->ready = ready;
    sr_metrics_set(c->g->metrics, "skyroute_cluster_connected", "", ready ? 1 : 0);
    sr_log(ready ? SR_LOG_INFO : SR_LOG_WARN, "cluster: %s",
           ready ? "connected to NATS: sharing schedules, state and work"
                 : "cut off from NATS: serving locally");
    for (size_t i = 0; i < c->npubs; i++) {
        c->pubs[i].done = false; /* publish everything again once back */
        c->pubs[i].elem_done = false;
    }
    c->last_elements = sr_mono_ms(); /* first learn what the bucket holds */
    c->last_heartbeat = 0;
    for (size_t i = 0; i < c->nviews; i++) {
        view_refresh(c, &c->views[i]);
    }
    if (ready) {
        publish_state(c);
        publish_passes(c);
        gw_spool_republish(c->g); /* results and forwards held while cut off */
    }
}

/* ---- start-up and shut-down ----------------------------------------------------------------- */

static const char *const cluster_keys[] = {
    "nats",     "station",     "user",         "password",      "token",         "creds",
    "replicas", "state_ttl_s", "heartbeat_ms", "op_timeout_ms", "results_ttl_s", "forward_ms"};

int gw_cluster_preinit(const struct sr_config *cfg)
{
    if (!sr_config_get(cfg, "cluster", "nats", NULL)) {
        return 0;
    }
    return sr_nats_global_init();
}

static int load_peers(struct gw_cluster *c, struct gw *g, char *err, size_t errlen)
{
    const struct sr_config *cfg = g->cfg;
    /* ourselves first: our own records (read back from the buckets) verify too */
    c->peers = calloc(1, sizeof(*c->peers));
    if (!c->peers) {
        snprintf(err, errlen, "out of memory");
        return SR_ERR_NOMEM;
    }
    snprintf(c->peers[0].name, sizeof(c->peers[0].name), "%s", c->station);
    memcpy(c->peers[0].pk, sr_key_public(g->key), SR_PUBLICKEYBYTES);
    c->npeers = 1;
    for (size_t i = 0;; i++) {
        int line = 0;
        const char *sec = sr_config_section(cfg, "peer.", i, &line);
        if (!sec) {
            break;
        }
        const char *name = sec + 5;
        if (!station_name_ok(name)) {
            snprintf(err, errlen, "%s:%d: [%s]: a station name is 1-63 letters, digits, '-' or '_'",
                     cfg->path, line, sec);
            return SR_ERR_CONFIG;
        }
        if (peer_key(c, name)) {
            snprintf(err, errlen, "%s:%d: [%s]: station %s is configured twice (or is this one)",
                     cfg->path, line, sec, name);
            return SR_ERR_CONFIG;
        }
        int kl = 0;
        const char *pub = sr_config_get(cfg, sec, "pubkey", &kl);
        if (!pub) {
            snprintf(err, errlen, "%s:%d: [%s] needs pubkey = FILE (the station's gateway key)",
                     cfg->path, line, sec);
            return SR_ERR_CONFIG;
        }
        char path[PATH_MAX], why[300];
        struct peer p;
        memset(&p, 0, sizeof(p));
        snprintf(p.name, sizeof(p.name), "%s", name);
        if (sr_path_relative(path, sizeof(path), cfg->path, pub) != 0 ||
            sr_pubkey_load(p.pk, path, why, sizeof(why)) != 0) {
            snprintf(err, errlen, "%s:%d: [%s] pubkey: %s", cfg->path, kl, sec, why);
            return SR_ERR_CONFIG;
        }
        struct peer *np = realloc(c->peers, (c->npeers + 1) * sizeof(*np));
        if (!np) {
            snprintf(err, errlen, "out of memory");
            return SR_ERR_NOMEM;
        }
        c->peers = np;
        c->peers[c->npeers++] = p;
    }
    return 0;
}

int gw_cluster_init(struct gw *g, char *err, size_t errlen)
{
    const struct sr_config *cfg = g->cfg;
    bool any = false;
    for (size_t i = 0; i < cfg->nkv; i++) {
        const struct sr_cfg_kv *kv = &cfg->kv[i];
        if (strcmp(kv->section, "cluster") != 0) {
            continue;
        }
        any = true;
        bool known = false;
        for (size_t k = 0; k < sizeof(cluster_keys) / sizeof(cluster_keys[0]); k++) {
            known = known || !strcmp(kv->key, cluster_keys[k]);
        }
        if (!known) {
            snprintf(err, errlen,
                     "%s:%d: unknown key '%s' in [cluster] (nats, station, user, password, token, "
                     "creds, replicas, state_ttl_s, heartbeat_ms, op_timeout_ms, results_ttl_s, "
                     "forward_ms)",
                     cfg->path, kv->line, kv->key);
            return SR_ERR_CONFIG;
        }
    }
    int line = 0;
    const char *peer_sec = sr_config_section(cfg, "peer.", 0, &line);
    if (!any) {
        if (peer_sec) {
            snprintf(err, errlen, "%s:%d: [%s] needs a [cluster] section with nats = URL",
                     cfg->path, line, peer_sec);
            return SR_ERR_CONFIG;
        }
        return 0; /* embedded SQLite only: nothing changes */
    }
    const char *nats = sr_config_get(cfg, "cluster", "nats", &line);
    if (!nats || !nats[0]) {
        snprintf(err, errlen, "%s: [cluster] needs nats = nats://HOST:PORT[,...]", cfg->path);
        return SR_ERR_CONFIG;
    }
    /* every server must be a nats:// or tls:// URL with a port */
    {
        char copy[1024];
        snprintf(copy, sizeof(copy), "%s", nats);
        char *save = NULL;
        int ns = 0;
        for (char *t = strtok_r(copy, ", ", &save); t; t = strtok_r(NULL, ", ", &save), ns++) {
            const char *hp = !strncmp(t, "nats://", 7)  ? t + 7
                             : !strncmp(t, "tls://", 6) ? t + 6
                                                        : NULL;
            const char *at = hp ? strrchr(hp, '@') : NULL;
            const char *host = at ? at + 1 : hp;
            const char *colon = host ? strrchr(host, ':') : NULL;
            char *end = NULL;
            long port = colon ? strtol(colon + 1, &end, 10) : 0;
            if (!hp || !colon || colon == host || !end || *end || port < 1 || port > 65535) {
                snprintf(err, errlen,
                         "%s:%d: [cluster] nats: '%s' is not nats://HOST:PORT (or tls://HOST:PORT)",
                         cfg->path, line, t);
                return SR_ERR_CONFIG;
            }
        }
        if (ns == 0) {
            snprintf(err, errlen, "%s:%d: [cluster] nats names no server", cfg->path, line);
            return SR_ERR_CONFIG;
        }
    }
    struct gw_cluster *c = calloc(1, sizeof(*c));
    if (!c) {
        snprintf(err, errlen, "out of memory");
        return SR_ERR_NOMEM;
    }
    g->cluster = c;
    c->g = g;
    const char *station = sr_config_get(cfg, "cluster", "station", &line);
    snprintf(c->station, sizeof(c->station), "%s", station ? station : cfg->id);
    if (!station_name_ok(c->station)) {
        snprintf(err, errlen,
                 "%s:%d: [cluster] station '%s': 1-63 letters, digits, '-' or '_' (it names "
                 "NATS subjects and keys)",
                 cfg->path, station ? line : 0, c->station);
        return SR_ERR_CONFIG;
    }
    if (sr_config_num(cfg, "cluster", "replicas", 1, 1, 5, &c->replicas, err, errlen) ||
        sr_config_num(cfg, "cluster", "state_ttl_s", 6, 1, 3600, &c->state_ttl_ms, err, errlen) ||
        sr_config_num(cfg, "cluster", "heartbeat_ms", 1000, 50, 600000, &c->heartbeat_ms, err,
                      errlen) ||
        sr_config_num(cfg, "cluster", "op_timeout_ms", 2000, 50, 60000, &c->op_timeout_ms, err,
                      errlen) ||
        sr_config_num(cfg, "cluster", "results_ttl_s", 86400, 60, 86400.0 * 365, &c->results_ttl_s,
                      err, errlen) ||
        sr_config_num(cfg, "cluster", "forward_ms", 100, 0, 3600000, &c->forward_ms, err, errlen)) {
        return SR_ERR_CONFIG;
    }
    c->state_ttl_ms *= 1000;
    /* the spool checks [spool] keep_results_s; the default is its default */
    const char *keep = sr_config_get(cfg, "spool", "keep_results_s", NULL);
    c->keep_ms = (keep ? strtod(keep, NULL) : 86400.0) * 1000.0;
    if (c->heartbeat_ms * 2 > c->state_ttl_ms) {
        snprintf(err, errlen,
                 "%s: [cluster] heartbeat_ms must be at most half of state_ttl_s, or live "
                 "stations would look dead",
                 cfg->path);
        return SR_ERR_CONFIG;
    }
    const char *creds = sr_config_get(cfg, "cluster", "creds", &line);
    char creds_path[PATH_MAX] = "";
    if (creds && sr_path_relative(creds_path, sizeof(creds_path), cfg->path, creds) != 0) {
        snprintf(err, errlen, "%s:%d: [cluster] creds: path too long", cfg->path, line);
        return SR_ERR_CONFIG;
    }
    if (creds && access(creds_path, R_OK) != 0) {
        snprintf(err, errlen, "%s:%d: [cluster] creds: cannot read %s", cfg->path, line,
                 creds_path);
        return SR_ERR_CONFIG;
    }
    if (sr_config_get(cfg, "cluster", "password", NULL) &&
        !sr_config_get(cfg, "cluster", "user", NULL)) {
        snprintf(err, errlen, "%s: [cluster] password without user", cfg->path);
        return SR_ERR_CONFIG;
    }
    int rv = load_peers(c, g, err, errlen);
    if (rv) {
        return rv;
    }
    if (g->check_only) {
        return 0;
    }
    /* our satellites, whose passes we publish */
    c->pubs = calloc(g->ntargets ? g->ntargets : 1, sizeof(*c->pubs));
    if (!c->pubs) {
        snprintf(err, errlen, "out of memory");
        return SR_ERR_NOMEM;
    }
    for (size_t i = 0; i < g->ntargets; i++) {
        if (g->targets[i].cfg->kind == SR_TARGET_SATELLITE) {
            snprintf(c->pubs[c->npubs++].sat, sizeof(c->pubs[0].sat), "%s", g->targets[i].cfg->id);
        }
    }
    char why_store[300] = "";
    if (sr_store_open(&c->store, cfg->state_dir, why_store, sizeof(why_store)) != 0) {
        sr_log(SR_LOG_WARN, "cluster: element sets will not be shared: %s", why_store);
        c->store = NULL;
    }
    sr_metrics_describe(g->metrics, "skyroute_cluster_connected", "gauge",
                        "1 while connected to NATS with the stream and buckets ready.");
    sr_metrics_describe(g->metrics, "skyroute_cluster_forwarded_total", "counter",
                        "Workloads published for another station's pass.");
    sr_metrics_describe(g->metrics, "skyroute_cluster_adopted_total", "counter",
                        "Workloads taken from the work queue into this station's spool.");
    sr_metrics_describe(g->metrics, "skyroute_cluster_results_published_total", "counter",
                        "Results published: of adopted work, for their station; of this "
                        "station's own work, for any station.");
    sr_metrics_describe(g->metrics, "skyroute_cluster_results_imported_total", "counter",
                        "Results of forwarded work stored here.");
    sr_metrics_describe(g->metrics, "skyroute_cluster_node_verified_total", "counter",
                        "Results of forwarded work whose target's own signed envelope verified "
                        "here.");
    sr_metrics_describe(g->metrics, "skyroute_cluster_rejected_total", "counter",
                        "Cluster records refused (untrusted, bad signature, malformed, "
                        "older than one taken, a stale heartbeat, under another key, an "
                        "unsigned delete, out of an operator's scope), by record and reason.");
    sr_metrics_set(g->metrics, "skyroute_cluster_connected", "", 0);
    /* a rate from the first scrape */
    sr_metrics_add(g->metrics, "skyroute_cluster_forwarded_total", "", 0);
    sr_metrics_add(g->metrics, "skyroute_cluster_adopted_total", "", 0);
    sr_metrics_add(g->metrics, "skyroute_cluster_results_published_total", "", 0);
    sr_metrics_add(g->metrics, "skyroute_cluster_results_imported_total", "", 0);
    sr_metrics_add(g->metrics, "skyroute_cluster_rejected_total", "", 0);
    struct sr_nats_opts o = {
        .servers = nats,
        .user = sr_config_get(cfg, "cluster", "user", NULL),
        .password = sr_config_get(cfg, "cluster", "password", NULL),
        .token = sr_config_get(cfg, "cluster", "token", NULL),
        .creds = creds ? creds_path : NULL,
        .station = c->station,
        .replicas = (int)c->replicas,
        .state_ttl_ms = (int64_t)c->state_ttl_ms,
        .results_ttl_ms = (int64_t)(c->results_ttl_s * 1000),
        .op_timeout_ms = (int64_t)c->op_timeout_ms,
        .on_status = on_status,
        .on_work = on_work,
        .on_kv = on_kv,
        .arg = c,
    };
    char why[300] = "";
    rv = sr_nats_new(&c->nats, g->base, &o, why, sizeof(why));
    if (rv) {
        snprintf(err, errlen, "%s: [cluster] %s", cfg->path, why);
        return rv;
    }
    c->timer = event_new(g->base, -1, EV_PERSIST, tick, c);
    struct timeval tv = {0, TICK_MS * 1000};
    if (!c->timer || event_add(c->timer, &tv) != 0) {
        snprintf(err, errlen, "cannot start the cluster timer");
        return SR_ERR_NOMEM;
    }
    const struct gw_spool_link link = {.forward = link_forward,
                                       .publish_result = link_publish_result,
                                       .fetch = link_fetch,
                                       .ctx = g};
    gw_spool_set_link(g, &link);
    sr_log(SR_LOG_INFO, "cluster: station %s, %zu trusted peers, servers %s", c->station,
           c->npeers - 1, nats);
    return 0;
}

void gw_cluster_free(struct gw *g)
{
    struct gw_cluster *c = g->cluster;
    if (!c) {
        return;
    }
    gw_spool_set_link(g, NULL);
    if (c->timer) {
        event_free(c->timer);
    }
    c->ready = false;
    sr_nats_free(c->nats); /* pending operations complete (cancelled) here */
    free(c->peers);
    free(c->views);
    free(c->stations);
    free(c->pubs);
    free(c->elems);
    free(c->seen);
    sr_store_close(c->store);
    free(c);
    g->cluster = NULL;
}
