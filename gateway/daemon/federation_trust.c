/*
 * Federation's checks on what other stations wrote (federation_int.h): the
 * sequences that keep an older record from replacing a newer one, the binding
 * of a result to its workload, and the operator scope of a shared element
 * set. What each refusal protects against is in docs/threat-model.md.
 */
#include "gateway/daemon/federation_int.h"
#include "linkmodels/linkmodels.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Strictly increasing over every record this station writes, across
 * restarts: the wall clock in microseconds, or one more than the last one
 * when two records fall in the same tick (or the clock stepped back). */
int64_t fed_next_seq(struct gw_cluster *c)
{
    int64_t now_us = sr_now_ms() * 1000;
    c->seq = now_us > c->seq ? now_us : c->seq + 1;
    return c->seq;
}

/*
 * A bucket keeps only the latest value per key, and anyone who can write to
 * NATS can put an older value back: a station's earlier passes, a heartbeat
 * captured before it died. Each key remembers the sequence of the record
 * taken from it: 0 for a newer record (now remembered), 1 for the same one
 * delivered again (after a reconnection: nothing to do), SR_ERR_ENV_REPLAY
 * for an older one. A key a writer never used again stays until shutdown:
 * the keys are those trusted stations wrote, a station's satellites and one
 * state each.
 */
int fed_seq_take(struct gw_cluster *c, int bucket, const char *key, const struct sr_cmsg *m,
                 char *why, size_t whylen)
{
    int64_t seq = m->seq;
    struct seen_seq *e = NULL;
    for (size_t i = 0; i < c->nseen && !e; i++) {
        e = c->seen[i].bucket == bucket && !strcmp(c->seen[i].key, key) ? &c->seen[i] : NULL;
    }
    if (e) {
        if (seq < e->seq) {
            snprintf(why, whylen, "sequence %lld from %s is older than the last taken under %s",
                     (long long)seq, m->station, key);
            return SR_ERR_ENV_REPLAY;
        }
        if (seq == e->seq) {
            return 1;
        }
        e->seq = seq;
        return 0;
    }
    if (c->nseen == c->cap_seen) {
        size_t ncap = c->cap_seen ? c->cap_seen * 2 : 16;
        struct seen_seq *ns = realloc(c->seen, ncap * sizeof(*ns));
        if (!ns) {
            snprintf(why, whylen, "out of memory");
            return SR_ERR_NOMEM;
        }
        c->seen = ns;
        c->cap_seen = ncap;
    }
    e = &c->seen[c->nseen++];
    e->bucket = bucket;
    snprintf(e->key, sizeof(e->key), "%s", key);
    e->seq = seq;
    return 0;
}

/* The record names the workload it is the result of: under any other key
 * it is a result for another workload. */
bool fed_result_key_ok(const struct sr_cmsg *m, const char *key, char *why, size_t whylen)
{
    char idhex[2 * SR_ENV_IDBYTES + 1];
    sr_hex(idhex, m->id, SR_ENV_IDBYTES);
    if (!strcmp(idhex, key)) {
        return true;
    }
    snprintf(why, whylen, "the result of workload %s under the key of %s", idhex, key);
    return false;
}

/* True if [operator.OP] here lists |sat| (or '*') in satellites =. */
static bool operator_may(const struct sr_config *cfg, const char *op, const char *sat)
{
    char sec[96];
    size_t n = strcspn(op, "@"); /* "ops@gs-a": a set shared on from another station */
    if (n == 0 || (size_t)snprintf(sec, sizeof(sec), "operator.%.*s", (int)n, op) >= sizeof(sec)) {
        return false;
    }
    const char *list = sr_config_get(cfg, sec, "satellites", NULL);
    if (!list) {
        return false;
    }
    size_t slen = strlen(sat);
    for (const char *p = list; *p;) {
        p += strspn(p, ", \t");
        size_t w = strcspn(p, ", \t");
        if ((w == 1 && *p == '*') || (w == slen && w && !strncmp(p, sat, w))) {
            return true;
        }
        p += w;
    }
    return false;
}

/*
 * The station that took an element set checked the operator's signature and
 * scope against its own configuration; this one has its own say: the
 * operator named in the record must be configured here and may speak, by
 * this station's [operator.NAME] satellites =, for the satellite the record
 * is for and for every satellite of ours whose catalogue number the text
 * carries (feeds apply a set to every satellite it names).
 */
bool fed_elements_in_scope(struct gw_cluster *c, const struct sr_cmsg *m, char *why, size_t whylen)
{
    const struct sr_config *cfg = c->g->cfg;
    if (!operator_may(cfg, m->op, m->sat)) {
        snprintf(why, whylen, "operator '%s' may not speak for %s here", m->op, m->sat);
        return false;
    }
    sr_elements *els = NULL;
    size_t n = 0;
    if (sr_elements_parse_text(&els, &n, (const char *)m->payload, m->payload_len, 0, 0, NULL, 0) !=
        0) {
        return true; /* unusable anyway: the feeds refuse it and say why */
    }
    bool ok = true;
    for (size_t i = 0; ok && i < c->g->ntargets; i++) {
        const struct sr_target_cfg *t = c->g->targets[i].cfg;
        char sec[SR_TARGET_IDMAX + 16];
        snprintf(sec, sizeof(sec), "satellite.%s", t->id);
        const char *cat =
            t->kind == SR_TARGET_SATELLITE ? sr_config_get(cfg, sec, "catnum", NULL) : NULL;
        if (!cat) {
            continue;
        }
        unsigned long want = strtoul(cat, NULL, 10);
        for (size_t k = 0; ok && k < n; k++) {
            if (els[k].catnum == want && !operator_may(cfg, m->op, t->id)) {
                snprintf(why, whylen,
                         "the set carries %s's elements, for which operator '%s' may "
                         "not speak here",
                         t->id, m->op);
                ok = false;
            }
        }
    }
    free(els);
    return ok;
}

/*
 * The station that ran forwarded work signs its result record, but the
 * payload is the target's: when this station has the target's key too (a
 * satellite served from several stations is configured at each, with its
 * key), the record must carry the target's own signed result envelope, and
 * this station checks it itself: a result, for this workload, signed by that
 * target, with the record's payload. A trusted station can then not make up
 * a satellite's answer. A target this station has no key for (another
 * station's IDC) is taken on the running station's signature alone; so are
 * failures no target signed (a timeout, a refusal), which carry no payload.
 */
int fed_check_node_result(struct gw_cluster *c, const struct sr_cmsg *m, char *why, size_t whylen)
{
    struct gw *g = c->g;
    bool known = false;
    for (size_t i = 0; i < g->ntargets && !known; i++) {
        known = !strcmp(g->targets[i].cfg->id, m->target);
    }
    if (!known || (!m->node_env_len && m->status != 200)) {
        return 0;
    }
    if (!m->node_env_len) {
        snprintf(why, whylen, "a result of %s without %s's signed envelope", m->target, m->target);
        return SR_ERR_ENV_UNTRUSTED;
    }
    /* verified when it arrived there; here only who signed what, not when:
     * the running station's own record says when */
    struct sr_open_opts oo = {.trust = g->ring,
                              .now_ms = INT64_MIN,
                              .max_len = m->node_env_len,
                              .kinds = 1u << SR_KIND_RESULT};
    struct sr_envelope env;
    char w[160] = "";
    int rv = sr_envelope_open(&env, m->node_env, m->node_env_len, &oo, w, sizeof(w));
    if (rv) {
        snprintf(why, whylen, "%s's envelope: %s", m->target, w);
        return rv;
    }
    if (memcmp(env.id, m->id, SR_ENV_IDBYTES) != 0) {
        snprintf(why, whylen, "%s's envelope is the result of another workload", m->target);
        return SR_ERR_ENV_MISADDRESSED;
    }
    if (!env.signer_name || strcmp(env.signer_name, m->target) != 0 ||
        strcmp(env.src, m->target) != 0) {
        snprintf(why, whylen, "the envelope is signed by '%s', not by %s",
                 env.signer_name ? env.signer_name : "?", m->target);
        return SR_ERR_ENV_UNTRUSTED;
    }
    if (m->status == 200 && (env.payload_len != m->payload_len ||
                             (m->payload_len && memcmp(env.payload, m->payload, m->payload_len)))) {
        snprintf(why, whylen, "the payload is not the one %s signed", m->target);
        return SR_ERR_ENV_BADSIG;
    }
    return 0;
}
