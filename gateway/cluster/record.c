/*
 * The records stations exchange over NATS (cluster.h): a body map in the
 * signed-record codec's outer array (crypto.h, sr_record_seal/open), signed
 * by the station named in it. Pure: bytes in, bytes out, no I/O.
 *
 * Why a record of our own rather than an SR1 envelope: a forwarded workload
 * carries what the receiving station needs to plan it (the satellite, the
 * placement, the client for quotas, the submitting station for the result)
 * and these must be covered by the signature too; SR1's body has no room for
 * them. The signing context differs from SR1's ("skyroute/v1\0"), so a
 * record signature can never pass for an envelope signature or back.
 */
#include "gateway/cluster/cluster.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>

static const char *const kind_names[] = {"", "work", "result", "passes", "state", "elements"};

/* SRC1 is refused, before any key is looked up, unless the caller wants
 * work (cluster.h says why); the decode context carries what it wants. */
static int v1_check(void *arg, const struct sr_record *rec, char *why, size_t whylen);

static const struct sr_record_format formats[2] = {
    {
        .magic = "SRC2",
        .context = "skyroute/cluster/v2",
        .signer_form = SR_SIGNER_NAME,
        .noun = "record",
        .signer_noun = "station",
    },
    {
        .magic = "SRC1",
        .context = "skyroute/cluster/v1",
        .signer_form = SR_SIGNER_NAME,
        .noun = "record",
        .signer_noun = "station",
        .check = v1_check,
    },
};

/* ---- encoding ------------------------------------------------------------------------------ */

static void pk_str(msgpack_packer *pk, const char *s)
{
    msgpack_pack_str_with_body(pk, s, strlen(s));
}

static void kv_str(msgpack_packer *pk, const char *k, const char *v)
{
    pk_str(pk, k);
    pk_str(pk, v);
}

static void kv_int(msgpack_packer *pk, const char *k, int64_t v)
{
    pk_str(pk, k);
    msgpack_pack_int64(pk, v);
}

static void kv_dbl(msgpack_packer *pk, const char *k, double v)
{
    pk_str(pk, k);
    msgpack_pack_double(pk, v);
}

static void kv_bin(msgpack_packer *pk, const char *k, const void *p, size_t n)
{
    pk_str(pk, k);
    msgpack_pack_bin(pk, n);
    if (n) {
        msgpack_pack_bin_body(pk, p, n);
    }
}

static bool fits(const char *s, size_t cap)
{
    return memchr(s, '\0', cap) != NULL;
}

static int check(const struct sr_cmsg *m)
{
    if ((int)m->kind < SR_CMSG_WORK || (int)m->kind > SR_CMSG_ELEMENTS || !m->station[0] ||
        !fits(m->station, sizeof(m->station)) || !fits(m->origin, sizeof(m->origin)) ||
        !fits(m->dest, sizeof(m->dest)) || !fits(m->target, sizeof(m->target)) ||
        !fits(m->handler, sizeof(m->handler)) || !fits(m->client, sizeof(m->client)) ||
        !fits(m->place_target, sizeof(m->place_target)) || !fits(m->data_at, sizeof(m->data_at)) ||
        !fits(m->signer, sizeof(m->signer)) || !fits(m->error, sizeof(m->error)) ||
        !fits(m->sat, sizeof(m->sat)) || !fits(m->op, sizeof(m->op)) ||
        !fits(m->format, sizeof(m->format)) || (m->payload_len && !m->payload) ||
        (m->node_env_len && !m->node_env) || m->npasses > SR_CMSG_MAX_PASSES ||
        (m->npasses && !m->passes) || m->ntargets > SR_CMSG_MAX_TARGETS ||
        (m->ntargets && !m->targets)) {
        return SR_ERR_INVAL;
    }
    return 0;
}

/* An sr_record_pack: the body map of the struct sr_cmsg at |arg|. */
static int pack_body(const void *arg, sr_buf *out, msgpack_packer *pk)
{
    const struct sr_cmsg *m = arg;
    (void)out; /* everything goes through |pk| */
    size_t n = 4;
    switch (m->kind) {
    case SR_CMSG_WORK:
        n += 15;
        break;
    case SR_CMSG_RESULT:
        n += m->node_env_len ? 10 : 9;
        break;
    case SR_CMSG_PASSES:
        n += 2;
        break;
    case SR_CMSG_ELEMENTS:
        n += 5;
        break;
    default:
        n += 4;
        break;
    }
    msgpack_pack_map(pk, n);
    kv_str(pk, "kind", kind_names[m->kind]);
    kv_str(pk, "station", m->station);
    kv_int(pk, "t", m->t_ms);
    kv_int(pk, "seq", m->seq);
    if (m->kind == SR_CMSG_WORK) {
        kv_bin(pk, "id", m->id, SR_ENV_IDBYTES);
        kv_str(pk, "origin", m->origin);
        kv_str(pk, "dest", m->dest);
        kv_str(pk, "target", m->target);
        kv_str(pk, "handler", m->handler);
        kv_str(pk, "client", m->client);
        kv_bin(pk, "payload", m->payload, m->payload_len);
        kv_int(pk, "iat", m->iat_ms);
        kv_int(pk, "deadline", m->deadline_ms);
        kv_dbl(pk, "work", m->work_gop);
        kv_int(pk, "result_bytes", m->result_bytes);
        kv_int(pk, "flags", m->env_flags);
        kv_int(pk, "place", m->place);
        kv_str(pk, "place_target", m->place_target);
        kv_str(pk, "data_at", m->data_at);
    } else if (m->kind == SR_CMSG_RESULT) {
        kv_bin(pk, "id", m->id, SR_ENV_IDBYTES);
        kv_str(pk, "origin", m->origin);
        kv_str(pk, "target", m->target);
        kv_int(pk, "status", m->status);
        kv_bin(pk, "payload", m->payload, m->payload_len);
        kv_str(pk, "signer", m->signer);
        kv_str(pk, "error", m->error);
        kv_dbl(pk, "predicted_ms", m->predicted_ms);
        kv_dbl(pk, "elapsed_ms", m->elapsed_ms);
        if (m->node_env_len) {
            kv_bin(pk, "node_env", m->node_env, m->node_env_len);
        }
    } else if (m->kind == SR_CMSG_PASSES) {
        kv_str(pk, "sat", m->sat);
        pk_str(pk, "passes");
        msgpack_pack_array(pk, m->npasses);
        for (size_t i = 0; i < m->npasses; i++) {
            const struct sr_pass_rec *p = &m->passes[i];
            msgpack_pack_array(pk, 8);
            msgpack_pack_int64(pk, p->aos_ms);
            msgpack_pack_int64(pk, p->tca_ms);
            msgpack_pack_int64(pk, p->los_ms);
            msgpack_pack_double(pk, p->max_el_deg);
            msgpack_pack_double(pk, p->uplink_bps);
            msgpack_pack_double(pk, p->downlink_bps);
            msgpack_pack_double(pk, p->light_ms);
            pk_str(pk, fits(p->source, sizeof(p->source)) ? p->source : "");
        }
    } else if (m->kind == SR_CMSG_ELEMENTS) {
        kv_str(pk, "sat", m->sat);
        kv_str(pk, "format", m->format);
        kv_str(pk, "op", m->op);
        kv_int(pk, "epoch", m->epoch_ms);
        kv_bin(pk, "payload", m->payload, m->payload_len);
    } else {
        kv_int(pk, "items", m->items);
        kv_int(pk, "bytes", m->bytes);
        pk_str(pk, "ready");
        if (m->ready) {
            msgpack_pack_true(pk);
        } else {
            msgpack_pack_false(pk);
        }
        pk_str(pk, "targets");
        msgpack_pack_array(pk, m->ntargets);
        for (size_t i = 0; i < m->ntargets; i++) {
            const struct sr_cmsg_target *t = &m->targets[i];
            msgpack_pack_array(pk, 6);
            pk_str(pk, fits(t->id, sizeof(t->id)) ? t->id : "");
            msgpack_pack_double(pk, t->ewma_ms);
            msgpack_pack_int64(pk, t->inflight);
            msgpack_pack_int64(pk, t->failures);
            msgpack_pack_int64(pk, t->kind);
            msgpack_pack_double(pk, t->gops);
        }
    }
    return 0; /* the packer's failures are the codec's to note */
}

/* Bytes pack_body() writes for |m| at most, roughly: a size for |out|. */
static size_t body_hint(const struct sr_cmsg *m)
{
    return 1024 + m->payload_len + m->node_env_len + m->npasses * 80 + m->ntargets * 110;
}

int sr_cmsg_encode(sr_buf *out, const sr_key *key, const struct sr_cmsg *m)
{
    int rv = check(m);
    if (rv) {
        return rv;
    }
    if (m->seq < 1) {
        return SR_ERR_INVAL; /* every record a station writes carries its sequence */
    }
    return sr_record_seal(out, &formats[0], key, m->station, body_hint(m), pack_body, m);
}

/* ---- decoding ------------------------------------------------------------------------------ */

static bool is_str(const msgpack_object *o, const char *s)
{
    size_t n = strlen(s);
    return o->type == MSGPACK_OBJECT_STR && o->via.str.size == n && !memcmp(o->via.str.ptr, s, n);
}

/* Copies a str object into |out| (|cap| bytes with the NUL). */
static bool get_str(const msgpack_object *o, char *out, size_t cap)
{
    if (o->type != MSGPACK_OBJECT_STR || o->via.str.size >= cap ||
        memchr(o->via.str.ptr, '\0', o->via.str.size)) {
        return false;
    }
    memcpy(out, o->via.str.ptr, o->via.str.size);
    out[o->via.str.size] = 0;
    return true;
}

static bool get_int(const msgpack_object *o, int64_t *out)
{
    if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
        if (o->via.u64 > (uint64_t)INT64_MAX) {
            return false;
        }
        *out = (int64_t)o->via.u64;
        return true;
    }
    if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
        *out = o->via.i64;
        return true;
    }
    return false;
}

static bool get_dbl(const msgpack_object *o, double *out)
{
    int64_t i;
    if (o->type == MSGPACK_OBJECT_FLOAT32 || o->type == MSGPACK_OBJECT_FLOAT64) {
        *out = o->via.f64;
    } else if (get_int(o, &i)) {
        *out = (double)i;
    } else {
        return false;
    }
    return !isinf(*out); /* NaN is allowed (an unknown elevation) */
}

static int get_bin(const msgpack_object *o, uint8_t **out, size_t *len)
{
    if (o->type != MSGPACK_OBJECT_BIN) {
        return SR_ERR_PARSE;
    }
    *out = malloc(o->via.bin.size ? o->via.bin.size : 1);
    if (!*out) {
        return SR_ERR_NOMEM;
    }
    if (o->via.bin.size) {
        memcpy(*out, o->via.bin.ptr, o->via.bin.size);
    }
    *len = o->via.bin.size;
    return 0;
}

static int decode_passes(struct sr_cmsg *m, const msgpack_object *o, char *err, size_t errlen)
{
    if (o->type != MSGPACK_OBJECT_ARRAY) {
        return sr_whyf(err, errlen, SR_ERR_ENV_BODY, "body key 'passes' is not an array");
    }
    if (o->via.array.size > SR_CMSG_MAX_PASSES) {
        return sr_whyf(err, errlen, SR_ERR_ENV_BODY, "body key 'passes' has %u entries, at most %d",
                       o->via.array.size, SR_CMSG_MAX_PASSES);
    }
    m->passes = calloc(o->via.array.size ? o->via.array.size : 1, sizeof(*m->passes));
    if (!m->passes) {
        return SR_ERR_NOMEM;
    }
    for (uint32_t i = 0; i < o->via.array.size; i++) {
        const msgpack_object *e = &o->via.array.ptr[i];
        struct sr_pass_rec *p = &m->passes[i];
        if (e->type != MSGPACK_OBJECT_ARRAY || e->via.array.size != 8) {
            return sr_whyf(err, errlen, SR_ERR_ENV_BODY, "passes[%u] is not an array of 8", i);
        }
        const msgpack_object *f = e->via.array.ptr;
        if (!get_int(&f[0], &p->aos_ms) || !get_int(&f[1], &p->tca_ms) ||
            !get_int(&f[2], &p->los_ms) || p->aos_ms >= p->los_ms) {
            return sr_whyf(err, errlen, SR_ERR_ENV_BODY,
                           "passes[%u]: aos, tca, los must be integers with aos < los", i);
        }
        if (!get_dbl(&f[3], &p->max_el_deg) || !get_dbl(&f[4], &p->uplink_bps) ||
            !get_dbl(&f[5], &p->downlink_bps) || !get_dbl(&f[6], &p->light_ms) ||
            !(p->uplink_bps >= 0) || !(p->downlink_bps >= 0) || !(p->light_ms >= 0)) {
            return sr_whyf(err, errlen, SR_ERR_ENV_BODY,
                           "passes[%u]: max_el, up_bps, down_bps, light_ms must be numbers, the "
                           "rates and light time >= 0",
                           i);
        }
        if (!get_str(&f[7], p->source, sizeof(p->source))) {
            return sr_whyf(err, errlen, SR_ERR_ENV_BODY, "passes[%u]: source is not a short string",
                           i);
        }
        m->npasses++;
    }
    return 0;
}

static int decode_targets(struct sr_cmsg *m, const msgpack_object *o, char *err, size_t errlen)
{
    if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size > SR_CMSG_MAX_TARGETS) {
        return sr_whyf(err, errlen, SR_ERR_ENV_BODY,
                       "body key 'targets' is not an array of at most %d", SR_CMSG_MAX_TARGETS);
    }
    m->targets = calloc(o->via.array.size ? o->via.array.size : 1, sizeof(*m->targets));
    if (!m->targets) {
        return SR_ERR_NOMEM;
    }
    for (uint32_t i = 0; i < o->via.array.size; i++) {
        const msgpack_object *e = &o->via.array.ptr[i];
        struct sr_cmsg_target *t = &m->targets[i];
        if (e->type != MSGPACK_OBJECT_ARRAY || e->via.array.size != 6 ||
            !get_str(&e->via.array.ptr[0], t->id, sizeof(t->id)) ||
            !get_dbl(&e->via.array.ptr[1], &t->ewma_ms) ||
            !get_int(&e->via.array.ptr[2], &t->inflight) ||
            !get_int(&e->via.array.ptr[3], &t->failures) ||
            !get_int(&e->via.array.ptr[4], &t->kind) || !get_dbl(&e->via.array.ptr[5], &t->gops) ||
            !(t->ewma_ms >= 0) || (t->kind != SR_TARGET_IDC && t->kind != SR_TARGET_SATELLITE) ||
            !(t->gops > 0)) {
            return sr_whyf(err, errlen, SR_ERR_ENV_BODY,
                           "targets[%u] is not [id, ewma_ms >= 0, inflight, failures, kind 1|2, "
                           "gops > 0]",
                           i);
        }
        m->ntargets++;
    }
    return 0;
}

/* Required keys per kind, as bits of the key table below. */
enum {
    K_KIND,
    K_STATION,
    K_T,
    K_SEQ,
    K_ID,
    K_ORIGIN,
    K_DEST,
    K_TARGET,
    K_HANDLER,
    K_CLIENT,
    K_PAYLOAD,
    K_IAT,
    K_DEADLINE,
    K_WORK,
    K_RBYTES,
    K_FLAGS,
    K_PLACE,
    K_PTARGET,
    K_DATA_AT,
    K_STATUS,
    K_SIGNER,
    K_ERROR,
    K_PRED,
    K_ELAPSED,
    K_NODE_ENV,
    K_SAT,
    K_PASSES,
    K_ITEMS,
    K_BYTES,
    K_READY,
    K_TARGETS,
    K_FORMAT,
    K_OP,
    K_EPOCH,
    K_N
};
static const char *const keys[K_N] = {
    "kind",         "station",      "t",          "seq",          "id",      "origin",   "dest",
    "target",       "handler",      "client",     "payload",      "iat",     "deadline", "work",
    "result_bytes", "flags",        "place",      "place_target", "data_at", "status",   "signer",
    "error",        "predicted_ms", "elapsed_ms", "node_env",     "sat",     "passes",   "items",
    "bytes",        "ready",        "targets",    "format",       "op",      "epoch"};

#define B(k) (1ull << (k))
static const uint64_t required[] = {
    0,
    B(K_ID) | B(K_ORIGIN) | B(K_DEST) | B(K_TARGET) | B(K_HANDLER) | B(K_PAYLOAD) | B(K_IAT) |
        B(K_DEADLINE),
    B(K_ID) | B(K_ORIGIN) | B(K_STATUS),
    B(K_SAT) | B(K_PASSES),
    B(K_ITEMS),
    B(K_SAT) | B(K_FORMAT) | B(K_PAYLOAD),
};

static int decode_field(struct sr_cmsg *m, int k, const msgpack_object *v, char *err, size_t errlen)
{
    bool ok = true;
    int rv;
    switch (k) {
    case K_KIND:
        ok = false;
        for (int i = 1; i <= SR_CMSG_ELEMENTS; i++) {
            if (is_str(v, kind_names[i])) {
                m->kind = (sr_cmsg_kind)i;
                ok = true;
            }
        }
        if (!ok) {
            return sr_whyf(err, errlen, SR_ERR_ENV_BODY,
                           "body key 'kind' is not one of work, result, passes, state, "
                           "elements");
        }
        return 0;
    case K_STATION:
        ok = get_str(v, m->station, sizeof(m->station)) && m->station[0];
        break;
    case K_T:
        ok = get_int(v, &m->t_ms);
        break;
    case K_SEQ:
        ok = get_int(v, &m->seq) && m->seq >= 1;
        break;
    case K_ID:
        ok = v->type == MSGPACK_OBJECT_BIN && v->via.bin.size == SR_ENV_IDBYTES;
        if (ok) {
            memcpy(m->id, v->via.bin.ptr, SR_ENV_IDBYTES);
        }
        break;
    case K_ORIGIN:
        ok = get_str(v, m->origin, sizeof(m->origin));
        break;
    case K_DEST:
        ok = get_str(v, m->dest, sizeof(m->dest));
        break;
    case K_TARGET:
        ok = get_str(v, m->target, sizeof(m->target));
        break;
    case K_HANDLER:
        ok = get_str(v, m->handler, sizeof(m->handler)) && m->handler[0];
        break;
    case K_CLIENT:
        ok = get_str(v, m->client, sizeof(m->client));
        break;
    case K_PAYLOAD:
        if (m->payload) {
            return sr_whyf(err, errlen, SR_ERR_ENV_BODY, "body key 'payload' appears twice");
        }
        rv = get_bin(v, &m->payload, &m->payload_len);
        if (rv == SR_ERR_NOMEM) {
            return rv;
        }
        ok = rv == 0;
        break;
    case K_IAT:
        ok = get_int(v, &m->iat_ms);
        break;
    case K_DEADLINE:
        ok = get_int(v, &m->deadline_ms);
        break;
    case K_WORK:
        ok = get_dbl(v, &m->work_gop) && m->work_gop >= 0;
        break;
    case K_RBYTES:
        ok = get_int(v, &m->result_bytes) && m->result_bytes >= 0;
        break;
    case K_FLAGS:
        ok = get_int(v, &m->env_flags) && m->env_flags >= 0 && m->env_flags < 65536;
        break;
    case K_PLACE:
        ok = get_int(v, &m->place) && m->place >= SR_PLACE_ANY && m->place <= SR_PLACE_TARGET;
        break;
    case K_PTARGET:
        ok = get_str(v, m->place_target, sizeof(m->place_target));
        break;
    case K_DATA_AT:
        ok = get_str(v, m->data_at, sizeof(m->data_at));
        break;
    case K_STATUS:
        ok = get_int(v, &m->status) && m->status >= 100 && m->status <= 599;
        break;
    case K_SIGNER:
        ok = get_str(v, m->signer, sizeof(m->signer));
        break;
    case K_ERROR:
        ok = get_str(v, m->error, sizeof(m->error));
        break;
    case K_PRED:
        ok = get_dbl(v, &m->predicted_ms);
        break;
    case K_ELAPSED:
        ok = get_dbl(v, &m->elapsed_ms);
        break;
    case K_NODE_ENV:
        rv = get_bin(v, &m->node_env, &m->node_env_len);
        if (rv == SR_ERR_NOMEM) {
            return rv;
        }
        ok = rv == 0;
        break;
    case K_SAT:
        ok = get_str(v, m->sat, sizeof(m->sat)) && m->sat[0];
        break;
    case K_PASSES:
        if (m->passes) {
            return sr_whyf(err, errlen, SR_ERR_ENV_BODY, "body key 'passes' appears twice");
        }
        return decode_passes(m, v, err, errlen);
    case K_ITEMS:
        ok = get_int(v, &m->items) && m->items >= 0;
        break;
    case K_BYTES:
        ok = get_int(v, &m->bytes) && m->bytes >= 0;
        break;
    case K_READY:
        ok = v->type == MSGPACK_OBJECT_BOOLEAN;
        m->ready = ok && v->via.boolean;
        break;
    case K_FORMAT:
        ok = get_str(v, m->format, sizeof(m->format)) && m->format[0];
        break;
    case K_OP:
        ok = get_str(v, m->op, sizeof(m->op));
        break;
    case K_EPOCH:
        ok = get_int(v, &m->epoch_ms);
        break;
    case K_TARGETS:
        if (m->targets) {
            return sr_whyf(err, errlen, SR_ERR_ENV_BODY, "body key 'targets' appears twice");
        }
        return decode_targets(m, v, err, errlen);
    default:
        break;
    }
    return ok ? 0
              : sr_whyf(err, errlen, SR_ERR_ENV_BODY, "body key '%s' has the wrong type or value",
                        keys[k]);
}

static int decode_body(struct sr_cmsg *m, const uint8_t *body, size_t len, char *err, size_t errlen)
{
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    size_t off = 0;
    int rv = 0;
    /* the codec's reader first: then msgpack-c allocates in proportion to
     * |len|, never for a count the body merely declares */
    if (!sr_msgpack_bounded(body, len) ||
        msgpack_unpack_next(&u, (const char *)body, len, &off) != MSGPACK_UNPACK_SUCCESS ||
        off != len || u.data.type != MSGPACK_OBJECT_MAP) {
        rv = sr_whyf(err, errlen, SR_ERR_ENV_BODY, "the signed body is not one msgpack map");
        goto out;
    }
    uint64_t seen = 0;
    const msgpack_object_map *map = &u.data.via.map;
    for (uint32_t i = 0; rv == 0 && i < map->size; i++) {
        const msgpack_object *k = &map->ptr[i].key;
        if (k->type != MSGPACK_OBJECT_STR) {
            rv = sr_whyf(err, errlen, SR_ERR_ENV_BODY, "a body key is not a string");
            break;
        }
        for (int f = 0; f < K_N; f++) {
            if (is_str(k, keys[f])) {
                if (seen & B(f)) {
                    rv = sr_whyf(err, errlen, SR_ERR_ENV_BODY, "body key '%s' appears twice",
                                 keys[f]);
                } else {
                    seen |= B(f);
                    rv = decode_field(m, f, &map->ptr[i].val, err, errlen);
                }
                break;
            }
        }
    }
    if (rv) {
        goto out;
    }
    for (int f = K_KIND; f <= K_T; f++) {
        if (!(seen & B(f))) {
            rv = sr_whyf(err, errlen, SR_ERR_ENV_BODY, "body key '%s' is missing", keys[f]);
            goto out;
        }
    }
    uint64_t need = required[m->kind];
    for (int f = 0; f < K_N; f++) {
        if ((need & B(f)) && !(seen & B(f))) {
            rv = sr_whyf(err, errlen, SR_ERR_ENV_BODY, "body key '%s' is missing (kind %s)",
                         keys[f], kind_names[m->kind]);
            goto out;
        }
    }
out:
    msgpack_unpacked_destroy(&u);
    return rv;
}

struct open_ctx {
    struct sr_cmsg *m;
    sr_cmsg_peer_key lookup;
    void *arg;
    sr_cmsg_kind want;
    bool v1_refused; /* an SRC1 record refused for its kind, not an unknown magic */
};

static int v1_check(void *arg, const struct sr_record *rec, char *why, size_t whylen)
{
    (void)rec;
    struct open_ctx *c = arg;
    sr_cmsg_kind want = c->want;
    if (want && want != SR_CMSG_WORK) {
        c->v1_refused = true;
        return sr_whyf(why, whylen, SR_ERR_ENV_VERSION,
                       "an SRC1 record has no sequence: only SRC2 is taken for %s",
                       kind_names[want]);
    }
    return 0;
}

static const uint8_t *station_key(void *arg, const uint8_t *station, size_t len, const char **name)
{
    const struct open_ctx *c = arg;
    (void)len;
    (void)name;
    return c->lookup ? c->lookup(c->arg, (const char *)station) : NULL;
}

/* The body, once the codec has verified the station's signature over it. */
static int decode_verified(void *arg, const struct sr_record *rec, char *err, size_t errlen)
{
    struct sr_cmsg *m = ((struct open_ctx *)arg)->m;
    int rv = decode_body(m, rec->body, rec->body_len, err, errlen);
    if (rv == 0 && strcmp(m->station, rec->signer) != 0) {
        rv = sr_whyf(err, errlen, SR_ERR_ENV_BODY, "the body names station '%s', signed by '%s'",
                     m->station, rec->signer);
    }
    m->version = rec->format == &formats[0] ? 2 : 1;
    if (rv == 0 && m->version == 2 && m->seq < 1) {
        rv = sr_whyf(err, errlen, SR_ERR_ENV_BODY, "body key 'seq' is missing");
    }
    if (rv == 0 && m->version == 1 && m->kind != SR_CMSG_WORK) {
        ((struct open_ctx *)arg)->v1_refused = true;
        rv = sr_whyf(err, errlen, SR_ERR_ENV_VERSION,
                     "an SRC1 %s record has no sequence: only SRC2 is taken for it",
                     kind_names[m->kind]);
    }
    sr_cmsg_kind want = ((const struct open_ctx *)arg)->want;
    if (rv == 0 && want && m->kind != want) {
        rv = sr_whyf(err, errlen, SR_ERR_ENV_KIND, "a %s record where a %s record belongs",
                     kind_names[m->kind], kind_names[want]);
    }
    return rv;
}

/* What each structural refusal of the codec means for a record; the codec's
 * own message follows it. */
static const char *structural(int rv)
{
    switch (rv) {
    case SR_ERR_ENV_OVERSIZE:
    case SR_ERR_ENV_TRUNCATED:
        return "the record is not msgpack (or is truncated)";
    case SR_ERR_ENV_TRAILING:
        return "bytes after the record";
    case SR_ERR_ENV_VERSION:
        return "the record does not start with \"SRC2\" (or \"SRC1\" for work)";
    case SR_ERR_ENV_FORMAT:
        return "the record is not [\"SRC2\", bin, str, bin(64)]";
    default:
        return NULL;
    }
}

int sr_cmsg_open(struct sr_cmsg *m, const uint8_t *data, size_t len, size_t max_len,
                 sr_cmsg_kind want, sr_cmsg_peer_key lookup, void *arg, char *err, size_t errlen)
{
    memset(m, 0, sizeof(*m));
    if (err && errlen) {
        err[0] = 0;
    }
    if (len > max_len) {
        return sr_whyf(err, errlen, SR_ERR_TOOBIG, "a record of %zu bytes exceeds the limit of %zu",
                       len, max_len);
    }
    struct open_ctx c = {m, lookup, arg, want, false};
    const struct sr_record_opener op = {.formats = formats,
                                        .nformats = 2,
                                        .max_len = max_len,
                                        .lookup = station_key,
                                        .decode = decode_verified,
                                        .arg = &c};
    struct sr_record rec;
    int rv = sr_record_open(&rec, &op, data, len, err, errlen);
    const char *what = rv == SR_ERR_ENV_VERSION && c.v1_refused ? NULL : structural(rv);
    if (what) {
        char detail[160] = "";
        if (err && errlen) {
            snprintf(detail, sizeof(detail), "%s", err);
        }
        rv = sr_whyf(err, errlen, SR_ERR_ENV_FORMAT, "%s: %s", what, detail);
    }
    return rv;
}

int sr_cmsg_decode(struct sr_cmsg *m, const uint8_t *data, size_t len, size_t max_len,
                   sr_cmsg_peer_key lookup, void *arg, char *err, size_t errlen)
{
    return sr_cmsg_open(m, data, len, max_len, 0, lookup, arg, err, errlen);
}

void sr_cmsg_clear(struct sr_cmsg *m)
{
    free(m->payload);
    free(m->node_env);
    free(m->passes);
    free(m->targets);
    memset(m, 0, sizeof(*m));
}
