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
int fed_seq_take(struct gw_cluster *c, int bucket, const char *key, int64_t seq)
{
    struct seen_seq *e = NULL;
    for (size_t i = 0; i < c->nseen && !e; i++) {
        e = c->seen[i].bucket == bucket && !strcmp(c->seen[i].key, key) ? &c->seen[i] : NULL;
    }
    if (e) {
        if (seq < e->seq) {
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
