/*
 * skyrouted part: a satellite's own work, POST /v1/uplink and POST /v1/outbox.
 *
 * A satellite's node sends work it wants run on the ground as a workload
 * envelope it signs (dst = this gateway); it is spooled like any async work,
 * routed to the ground, and its result waits in the satellite's outbox. At
 * each contact the node calls POST /v1/outbox with a signed envelope whose
 * payload lists the ids it has received (16 bytes each); the gateway marks
 * those delivered and answers with the results still waiting, each a result
 * envelope signed by the gateway and addressed to the satellite, framed as a
 * 4-byte big-endian length and the envelope.
 *
 * Both carry their own signature, so they need no client credentials; only a
 * configured satellite, signing as itself, may use them. An uplinked
 * envelope runs once: while its spool row is kept a repeat gets the row's
 * answer, and once the row is pruned the id is remembered until the
 * envelope's exp, after which the envelope is refused as expired.
 */
#include "gateway/daemon/daemon.h"
#include "gateway/store/store.h"

#include <stdio.h>
#include <string.h>

/* Opens the request's envelope: a workload from a configured satellite,
 * signed by it and addressed to this gateway. Its id, or NULL once refused. */
static const char *satellite_opens(struct gw *g, sr_req *req, struct sr_envelope *env)
{
    size_t len;
    const uint8_t *body = sr_req_body(req, &len);
    char why[200] = "";
    struct sr_open_opts oo = {.trust = g->ring,
                              .self_id = g->cfg->id,
                              .now_ms = sr_now_ms(),
                              .max_len = g->cfg->max_body + 65536,
                              .kinds = 1u << SR_KIND_WORKLOAD};
    int rv = sr_envelope_open(env, body, len, &oo, why, sizeof(why));
    const struct sr_target_cfg *sat = NULL;
    for (size_t i = 0; rv == 0 && i < g->ntargets; i++) {
        const struct sr_target_cfg *t = g->targets[i].cfg;
        if (env->signer_name && !strcmp(t->id, env->signer_name) &&
            t->kind == SR_TARGET_SATELLITE) {
            sat = t;
        }
    }
    if (rv == 0 && (!sat || strcmp(env->src, sat->id) != 0)) {
        rv = SR_ERR_ENV_UNTRUSTED;
        snprintf(why, sizeof(why), "only a configured satellite may use this, as itself");
    }
    if (rv != 0) {
        char d[320];
        snprintf(d, sizeof(d), "{\"code\":\"%s\"}", sr_errname(rv));
        gw_status_refuse(g, req, sr_env_http_status(rv), why[0] ? why : sr_strerror(rv), d);
        return NULL;
    }
    return sat->id;
}

static void uplink(struct gw *g, sr_req *req)
{
    struct sr_envelope env;
    const char *sat = satellite_opens(g, req, &env);
    if (!sat) {
        return;
    }
    /* a repeat while its row is kept is answered from the row (the spool
     * ignores a second insert of the id); after the row is pruned, the id is
     * remembered until the envelope expires (sr_spooldb_prune) */
    bool spent = false;
    if (sr_spooldb_uplink_spent(gw_spool_db(g), env.id, &spent) != 0) {
        gw_status_refuse(g, req, 503, "the spool is not available", NULL);
        return;
    }
    if (spent) {
        char idhex[2 * SR_ENV_IDBYTES + 1], d[120];
        sr_hex(idhex, env.id, SR_ENV_IDBYTES);
        snprintf(d, sizeof(d), "{\"id\":\"%s\",\"code\":\"replayed\"}", idhex);
        sr_metrics_add(g->metrics, "skyroute_uplink_replays_refused_total", "", 1);
        gw_status_refuse(g, req, 409,
                         "this uplink already ran and its result is no longer kept: a replay "
                         "is not run again",
                         d);
        return;
    }
    struct gw_job_spec spec;
    memset(&spec, 0, sizeof(spec));
    memcpy(spec.id, env.id, SR_ENV_IDBYTES);
    spec.iat_ms = env.iat;
    snprintf(spec.handler, sizeof(spec.handler), "%s", env.handler[0] ? env.handler : "echo");
    spec.payload = env.payload;
    spec.payload_len = env.payload_len;
    spec.env_flags = env.flags & (SR_ENV_HAS_WORK | SR_ENV_HAS_RESULT_BYTES);
    spec.w.work_gop = (env.flags & SR_ENV_HAS_WORK) ? env.work : 0;
    spec.w.result_bytes = (env.flags & SR_ENV_HAS_RESULT_BYTES) ? env.result_bytes : 0;
    spec.w.bytes_in = (int64_t)env.payload_len;
    spec.w.deadline_ms = env.exp;
    spec.w.place = SR_PLACE_GROUND; /* it came down to be run on the ground */
    spec.w.store_and_forward = true;
    char client[80];
    snprintf(client, sizeof(client), "satellite:%s", sat);
    gw_spool_submit(g, req, &spec, client, sat);
}

struct outbox {
    struct gw *g;
    const char *sat;
    sr_buf out;
    size_t n;
    int64_t now;
};

/* Appends one waiting result, sealed for the satellite, to the answer. */
static int outbox_add(void *arg, const uint8_t id[SR_SPOOL_IDBYTES], const char *handler,
                      const struct sr_spool_result *r)
{
    struct outbox *o = arg;
    struct sr_envelope res;
    memset(&res, 0, sizeof(res));
    res.kind = SR_KIND_RESULT;
    memcpy(res.id, id, SR_ENV_IDBYTES);
    res.iat = o->now;
    res.exp = o->now + 7 * 86400000LL;
    sr_str_copy(res.src, sizeof(res.src), o->g->cfg->id);
    sr_str_copy(res.dst, sizeof(res.dst), o->sat);
    sr_str_copy(res.handler, sizeof(res.handler), handler);
    res.payload = r->payload;
    res.payload_len = r->payload_len;
    res.status = r->status == 200 ? 0 : r->status;
    res.flags = SR_ENV_HAS_STATUS;
    if (r->status != 200) {
        sr_str_copy(res.error, sizeof(res.error), r->reason);
        res.flags |= SR_ENV_HAS_ERROR;
    }
    size_t mark = o->out.len;
    int rv = sr_buf_append(&o->out, "\0\0\0\0", 4);
    rv = rv ? rv : sr_envelope_seal(&o->out, o->g->key, &res);
    if (rv == 0) {
        uint32_t l = (uint32_t)(o->out.len - mark - 4);
        o->out.data[mark] = (uint8_t)(l >> 24);
        o->out.data[mark + 1] = (uint8_t)(l >> 16);
        o->out.data[mark + 2] = (uint8_t)(l >> 8);
        o->out.data[mark + 3] = (uint8_t)l;
        o->n++;
    }
    return rv;
}

static void outbox(struct gw *g, sr_req *req)
{
    sr_spooldb *db = gw_spool_db(g);
    struct sr_envelope env;
    const char *sat = satellite_opens(g, req, &env);
    if (!sat) {
        return;
    }
    if (env.payload_len % SR_ENV_IDBYTES != 0) {
        gw_status_refuse(g, req, 400, "the outbox payload lists received ids, 16 bytes each", NULL);
        return;
    }
    for (size_t off = 0; off < env.payload_len; off += SR_ENV_IDBYTES) {
        sr_spooldb_delivered(db, env.payload + off, sat);
    }
    struct outbox o = {.g = g, .sat = sat, .now = sr_now_ms()};
    sr_buf_init(&o.out, 256u << 20);
    if (sr_spooldb_outbox(db, sat, outbox_add, &o) != 0) {
        sr_buf_free(&o.out);
        gw_status_refuse(g, req, 503, "cannot seal the outbox", NULL);
        return;
    }
    char count[24];
    snprintf(count, sizeof(count), "%zu", o.n);
    const struct sr_http_header h[] = {{"content-type", "application/vnd.skyroute.outbox"},
                                       {"skyroute-count", count}};
    sr_metrics_add(g->metrics, "skyroute_outbox_results_sent_total", "", (double)o.n);
    if (o.out.data) {
        sr_req_respond(req, 200, h, 2, o.out.data, o.out.len, true);
    } else {
        sr_req_respond(req, 200, h, 2, "", 0, false); /* nothing waiting */
    }
}

bool gw_outbox_handle(struct gw *g, sr_req *req)
{
    const char *path = sr_req_path(req);
    size_t plen = strcspn(path, "?");
    bool up = plen == 10 && !strncmp(path, "/v1/uplink", 10);
    bool ob = plen == 10 && !strncmp(path, "/v1/outbox", 10);
    if (!up && !ob) {
        return false;
    }
    if (strcmp(sr_req_method(req), "POST") != 0) {
        gw_status_refuse(g, req, 405, "POST a signed envelope", NULL);
    } else if (!gw_spool_db(g)) {
        gw_status_refuse(g, req, 503, "the spool is not available", NULL);
    } else if (up) {
        uplink(g, req);
    } else {
        outbox(g, req);
    }
    return true;
}
