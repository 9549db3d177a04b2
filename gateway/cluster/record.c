/*
 * The records stations exchange over NATS (cluster.h): a signed
 * msgpack array around a msgpack body map. Pure: bytes in, bytes out, no I/O.
 *
 * Why a record of our own rather than an SR1 envelope: a forwarded workload
 * carries what the receiving station needs to plan it (the satellite, the
 * placement, the client for quotas, the submitting station for the result)
 * and these must be covered by the signature too; SR1's body has no room for
 * them. The signing context string differs from SR1's ("skyroute/v1\0"), so a
 * record signature can never pass for an envelope signature or back.
 */
#include "gateway/cluster/cluster.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>

static const char magic[] = "SRC1";
static const char context[] = "skyroute/cluster/v1"; /* signed with its NUL */
static const char *const kind_names[] = {"", "work", "result", "passes", "state", "elements"};

/* ---- encoding ------------------------------------------------------------------------------ */

struct pack_ctx {
    sr_buf *b;
    int err;
};

static int pack_write(void *data, const char *buf, size_t len)
{
    struct pack_ctx *c = data;
    int rv = sr_buf_append(c->b, buf, len);
    if (rv && !c->err) {
        c->err = rv;
    }
    return rv ? -1 : 0;
}

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
        m->npasses > SR_CMSG_MAX_PASSES || (m->npasses && !m->passes) ||
        m->ntargets > SR_CMSG_MAX_TARGETS || (m->ntargets && !m->targets)) {
        return SR_ERR_INVAL;
    }
    return 0;
}

static int pack_body(sr_buf *b, const struct sr_cmsg *m)
{
    struct pack_ctx ctx = {b, 0};
    msgpack_packer pk;
    msgpack_packer_init(&pk, &ctx, pack_write);
    size_t n = 3;
    switch (m->kind) {
    case SR_CMSG_WORK:
        n += 15;
        break;
    case SR_CMSG_RESULT:
        n += 9;
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
    msgpack_pack_map(&pk, n);
    kv_str(&pk, "kind", kind_names[m->kind]);
    kv_str(&pk, "station", m->station);
    kv_int(&pk, "t", m->t_ms);
    if (m->kind == SR_CMSG_WORK) {
        kv_bin(&pk, "id", m->id, SR_ENV_IDBYTES);
        kv_str(&pk, "origin", m->origin);
        kv_str(&pk, "dest", m->dest);
        kv_str(&pk, "target", m->target);
        kv_str(&pk, "handler", m->handler);
        kv_str(&pk, "client", m->client);
        kv_bin(&pk, "payload", m->payload, m->payload_len);
        kv_int(&pk, "iat", m->iat_ms);
        kv_int(&pk, "deadline", m->deadline_ms);
        kv_dbl(&pk, "work", m->work_gop);
        kv_int(&pk, "result_bytes", m->result_bytes);
        kv_int(&pk, "flags", m->env_flags);
        kv_int(&pk, "place", m->place);
        kv_str(&pk, "place_target", m->place_target);
        kv_str(&pk, "data_at", m->data_at);
    } else if (m->kind == SR_CMSG_RESULT) {
        kv_bin(&pk, "id", m->id, SR_ENV_IDBYTES);
        kv_str(&pk, "origin", m->origin);
        kv_str(&pk, "target", m->target);
        kv_int(&pk, "status", m->status);
        kv_bin(&pk, "payload", m->payload, m->payload_len);
        kv_str(&pk, "signer", m->signer);
        kv_str(&pk, "error", m->error);
        kv_dbl(&pk, "predicted_ms", m->predicted_ms);
        kv_dbl(&pk, "elapsed_ms", m->elapsed_ms);
    } else if (m->kind == SR_CMSG_PASSES) {
        kv_str(&pk, "sat", m->sat);
        pk_str(&pk, "passes");
        msgpack_pack_array(&pk, m->npasses);
        for (size_t i = 0; i < m->npasses; i++) {
            const struct sr_pass_rec *p = &m->passes[i];
            msgpack_pack_array(&pk, 8);
            msgpack_pack_int64(&pk, p->aos_ms);
            msgpack_pack_int64(&pk, p->tca_ms);
            msgpack_pack_int64(&pk, p->los_ms);
            msgpack_pack_double(&pk, p->max_el_deg);
            msgpack_pack_double(&pk, p->uplink_bps);
            msgpack_pack_double(&pk, p->downlink_bps);
            msgpack_pack_double(&pk, p->light_ms);
            pk_str(&pk, fits(p->source, sizeof(p->source)) ? p->source : "");
        }
    } else if (m->kind == SR_CMSG_ELEMENTS) {
        kv_str(&pk, "sat", m->sat);
        kv_str(&pk, "format", m->format);
        kv_str(&pk, "op", m->op);
        kv_int(&pk, "epoch", m->epoch_ms);
        kv_bin(&pk, "payload", m->payload, m->payload_len);
    } else {
        kv_int(&pk, "items", m->items);
        kv_int(&pk, "bytes", m->bytes);
        pk_str(&pk, "ready");
        if (m->ready) {
            msgpack_pack_true(&pk);
        } else {
            msgpack_pack_false(&pk);
        }
        pk_str(&pk, "targets");
        msgpack_pack_array(&pk, m->ntargets);
        for (size_t i = 0; i < m->ntargets; i++) {
            const struct sr_cmsg_target *t = &m->targets[i];
            msgpack_pack_array(&pk, 6);
            pk_str(&pk, fits(t->id, sizeof(t->id)) ? t->id : "");
            msgpack_pack_double(&pk, t->ewma_ms);
            msgpack_pack_int64(&pk, t->inflight);
            msgpack_pack_int64(&pk, t->failures);
            msgpack_pack_int64(&pk, t->kind);
            msgpack_pack_double(&pk, t->gops);
        }
    }
    return ctx.err;
}

int sr_cmsg_encode(sr_buf *out, const sr_key *key, const struct sr_cmsg *m)
{
    int rv = check(m);
    if (rv) {
        return rv;
    }
    sr_buf body;
    sr_buf_init(&body, out->max);
    rv = sr_buf_append(&body, context, sizeof(context)); /* the signing prefix, NUL included */
    rv = rv ? rv : pack_body(&body, m);
    if (rv == 0) {
        uint8_t sig[SR_SIGBYTES];
        sr_key_sign(key, sig, body.data, body.len);
        struct pack_ctx ctx = {out, 0};
        msgpack_packer pk;
        msgpack_packer_init(&pk, &ctx, pack_write);
        msgpack_pack_array(&pk, 4);
        pk_str(&pk, magic);
        msgpack_pack_bin(&pk, body.len - sizeof(context));
        msgpack_pack_bin_body(&pk, body.data + sizeof(context), body.len - sizeof(context));
        pk_str(&pk, m->station);
        msgpack_pack_bin_with_body(&pk, sig, SR_SIGBYTES);
        rv = ctx.err;
    }
    sr_buf_free(&body);
    return rv;
}

/* ---- decoding ------------------------------------------------------------------------------ */

static int bad(char *err, size_t errlen, int code, const char *fmt, ...) SR_PRINTF(4, 5);
static int bad(char *err, size_t errlen, int code, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return code;
}

/*
 * msgpack-c's unpacker allocates for a container the count it declares
 * before it sees the elements: a 6-byte map32 header could ask for 64 GiB.
 * So every input is walked first, in [p, p + len): each declared length
 * must fit in what is left, and each declared element count too (every
 * element takes at least one byte). Then unpacking allocates O(len).
 */
static bool mp_bounded(const uint8_t *p, size_t len)
{
    size_t off = 0;
    uint64_t pending = 1; /* values still to walk */
    while (pending > 0) {
        if (off >= len) {
            return false;
        }
        uint8_t b = p[off++];
        uint64_t skip = 0, items = 0;
        size_t nlen = 0; /* bytes of a big-endian length/count that follow */
        int what = 0;    /* 0: fixed skip, 1: payload length, 2: array count, 3: map count */
        if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3) {
            skip = 0;
        } else if (b >= 0x80 && b <= 0x8f) {
            items = 2u * (b & 0x0fu);
        } else if (b >= 0x90 && b <= 0x9f) {
            items = b & 0x0fu;
        } else if (b >= 0xa0 && b <= 0xbf) {
            skip = b & 0x1fu;
        } else {
            switch (b) {
            case 0xc4:
            case 0xd9:
                nlen = 1;
                what = 1;
                break;
            case 0xc5:
            case 0xda:
                nlen = 2;
                what = 1;
                break;
            case 0xc6:
            case 0xdb:
                nlen = 4;
                what = 1;
                break;
            case 0xc7:
                nlen = 1;
                what = 1;
                skip = 1;
                break; /* ext: + type byte */
            case 0xc8:
                nlen = 2;
                what = 1;
                skip = 1;
                break;
            case 0xc9:
                nlen = 4;
                what = 1;
                skip = 1;
                break;
            case 0xca:
                skip = 4;
                break;
            case 0xcb:
                skip = 8;
                break;
            case 0xcc:
            case 0xd0:
                skip = 1;
                break;
            case 0xcd:
            case 0xd1:
                skip = 2;
                break;
            case 0xce:
            case 0xd2:
                skip = 4;
                break;
            case 0xcf:
            case 0xd3:
                skip = 8;
                break;
            case 0xd4:
                skip = 2;
                break;
            case 0xd5:
                skip = 3;
                break;
            case 0xd6:
                skip = 5;
                break;
            case 0xd7:
                skip = 9;
                break;
            case 0xd8:
                skip = 17;
                break;
            case 0xdc:
                nlen = 2;
                what = 2;
                break;
            case 0xdd:
                nlen = 4;
                what = 2;
                break;
            case 0xde:
                nlen = 2;
                what = 3;
                break;
            case 0xdf:
                nlen = 4;
                what = 3;
                break;
            default:
                return false; /* 0xc1: never used */
            }
        }
        if (nlen) {
            if (len - off < nlen) {
                return false;
            }
            uint64_t n = 0;
            for (size_t i = 0; i < nlen; i++) {
                n = (n << 8) | p[off++];
            }
            if (what == 1) {
                skip += n;
            } else {
                items = what == 3 ? 2 * n : n;
            }
        }
        if (skip > len - off || items > len - off) {
            return false;
        }
        off += (size_t)skip;
        pending += items;
        pending--;
    }
    return true;
}

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
        return bad(err, errlen, SR_ERR_ENV_BODY, "body key 'passes' is not an array");
    }
    if (o->via.array.size > SR_CMSG_MAX_PASSES) {
        return bad(err, errlen, SR_ERR_ENV_BODY, "body key 'passes' has %u entries, at most %d",
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
            return bad(err, errlen, SR_ERR_ENV_BODY, "passes[%u] is not an array of 8", i);
        }
        const msgpack_object *f = e->via.array.ptr;
        if (!get_int(&f[0], &p->aos_ms) || !get_int(&f[1], &p->tca_ms) ||
            !get_int(&f[2], &p->los_ms) || p->aos_ms >= p->los_ms) {
            return bad(err, errlen, SR_ERR_ENV_BODY,
                       "passes[%u]: aos, tca, los must be integers with aos < los", i);
        }
        if (!get_dbl(&f[3], &p->max_el_deg) || !get_dbl(&f[4], &p->uplink_bps) ||
            !get_dbl(&f[5], &p->downlink_bps) || !get_dbl(&f[6], &p->light_ms) ||
            !(p->uplink_bps >= 0) || !(p->downlink_bps >= 0) || !(p->light_ms >= 0)) {
            return bad(err, errlen, SR_ERR_ENV_BODY,
                       "passes[%u]: max_el, up_bps, down_bps, light_ms must be numbers, the "
                       "rates and light time >= 0",
                       i);
        }
        if (!get_str(&f[7], p->source, sizeof(p->source))) {
            return bad(err, errlen, SR_ERR_ENV_BODY, "passes[%u]: source is not a short string", i);
        }
        m->npasses++;
    }
    return 0;
}

static int decode_targets(struct sr_cmsg *m, const msgpack_object *o, char *err, size_t errlen)
{
    if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size > SR_CMSG_MAX_TARGETS) {
        return bad(err, errlen, SR_ERR_ENV_BODY, "body key 'targets' is not an array of at most %d",
                   SR_CMSG_MAX_TARGETS);
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
            return bad(err, errlen, SR_ERR_ENV_BODY,
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
    "kind",   "station",      "t",      "id",           "origin",       "dest",
    "target", "handler",      "client", "payload",      "iat",          "deadline",
    "work",   "result_bytes", "flags",  "place",        "place_target", "data_at",
    "status", "signer",       "error",  "predicted_ms", "elapsed_ms",   "sat",
    "passes", "items",        "bytes",  "ready",        "targets",      "format",
    "op",     "epoch"};

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
            return bad(err, errlen, SR_ERR_ENV_BODY,
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
            return bad(err, errlen, SR_ERR_ENV_BODY, "body key 'payload' appears twice");
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
    case K_SAT:
        ok = get_str(v, m->sat, sizeof(m->sat)) && m->sat[0];
        break;
    case K_PASSES:
        if (m->passes) {
            return bad(err, errlen, SR_ERR_ENV_BODY, "body key 'passes' appears twice");
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
            return bad(err, errlen, SR_ERR_ENV_BODY, "body key 'targets' appears twice");
        }
        return decode_targets(m, v, err, errlen);
    default:
        break;
    }
    return ok ? 0
              : bad(err, errlen, SR_ERR_ENV_BODY, "body key '%s' has the wrong type or value",
                    keys[k]);
}

static int decode_body(struct sr_cmsg *m, const char *body, size_t len, char *err, size_t errlen)
{
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    size_t off = 0;
    int rv = 0;
    if (!mp_bounded((const uint8_t *)body, len) ||
        msgpack_unpack_next(&u, body, len, &off) != MSGPACK_UNPACK_SUCCESS || off != len ||
        u.data.type != MSGPACK_OBJECT_MAP) {
        rv = bad(err, errlen, SR_ERR_ENV_BODY, "the signed body is not one msgpack map");
        goto out;
    }
    uint64_t seen = 0;
    const msgpack_object_map *map = &u.data.via.map;
    for (uint32_t i = 0; rv == 0 && i < map->size; i++) {
        const msgpack_object *k = &map->ptr[i].key;
        if (k->type != MSGPACK_OBJECT_STR) {
            rv = bad(err, errlen, SR_ERR_ENV_BODY, "a body key is not a string");
            break;
        }
        for (int f = 0; f < K_N; f++) {
            if (is_str(k, keys[f])) {
                if (seen & B(f)) {
                    rv = bad(err, errlen, SR_ERR_ENV_BODY, "body key '%s' appears twice", keys[f]);
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
            rv = bad(err, errlen, SR_ERR_ENV_BODY, "body key '%s' is missing", keys[f]);
            goto out;
        }
    }
    uint64_t need = required[m->kind];
    for (int f = 0; f < K_N; f++) {
        if ((need & B(f)) && !(seen & B(f))) {
            rv = bad(err, errlen, SR_ERR_ENV_BODY, "body key '%s' is missing (kind %s)", keys[f],
                     kind_names[m->kind]);
            goto out;
        }
    }
out:
    msgpack_unpacked_destroy(&u);
    return rv;
}

int sr_cmsg_decode(struct sr_cmsg *m, const uint8_t *data, size_t len, size_t max_len,
                   sr_cmsg_peer_key lookup, void *arg, char *err, size_t errlen)
{
    memset(m, 0, sizeof(*m));
    if (err && errlen) {
        err[0] = 0;
    }
    if (len > max_len) {
        return bad(err, errlen, SR_ERR_TOOBIG, "a record of %zu bytes exceeds the limit of %zu",
                   len, max_len);
    }
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    size_t off = 0;
    int rv = 0;
    if (!mp_bounded(data, len)) {
        /* declared lengths beyond the input: truncated (or hostile) */
        rv = bad(err, errlen, SR_ERR_ENV_FORMAT, "the record is not msgpack (or is truncated)");
        goto out;
    }
    msgpack_unpack_return ur = msgpack_unpack_next(&u, (const char *)data, len, &off);
    const msgpack_object *a = u.data.via.array.ptr;
    char station[SR_TARGET_IDMAX];
    if (ur != MSGPACK_UNPACK_SUCCESS) {
        rv = bad(err, errlen, SR_ERR_ENV_FORMAT, "the record is not msgpack (or is truncated)");
    } else if (off != len) {
        rv = bad(err, errlen, SR_ERR_ENV_FORMAT, "%zu bytes after the record", len - off);
    } else if (u.data.type != MSGPACK_OBJECT_ARRAY || u.data.via.array.size != 4) {
        rv = bad(err, errlen, SR_ERR_ENV_FORMAT, "the record is not an array of 4");
    } else if (!is_str(&a[0], magic)) {
        rv = bad(err, errlen, SR_ERR_ENV_FORMAT, "the record does not start with \"SRC1\"");
    } else if (a[1].type != MSGPACK_OBJECT_BIN) {
        rv = bad(err, errlen, SR_ERR_ENV_FORMAT, "the record's body is not bin");
    } else if (!get_str(&a[2], station, sizeof(station)) || !station[0]) {
        rv = bad(err, errlen, SR_ERR_ENV_FORMAT, "the record's station is not a string of 1-63");
    } else if (a[3].type != MSGPACK_OBJECT_BIN || a[3].via.bin.size != SR_SIGBYTES) {
        rv = bad(err, errlen, SR_ERR_ENV_FORMAT, "the record's signature is not bin(64)");
    }
    if (rv) {
        goto out;
    }
    const uint8_t *pk = lookup ? lookup(arg, station) : NULL;
    if (!pk) {
        rv = bad(err, errlen, SR_ERR_ENV_UNTRUSTED, "station '%s' is not a trusted peer", station);
        goto out;
    }
    size_t blen = a[1].via.bin.size;
    uint8_t *signed_part = malloc(sizeof(context) + blen);
    if (!signed_part) {
        rv = SR_ERR_NOMEM;
        goto out;
    }
    memcpy(signed_part, context, sizeof(context));
    if (blen) {
        memcpy(signed_part + sizeof(context), a[1].via.bin.ptr, blen);
    }
    if (sr_verify(pk, (const uint8_t *)a[3].via.bin.ptr, signed_part, sizeof(context) + blen) !=
        0) {
        free(signed_part);
        rv = bad(err, errlen, SR_ERR_ENV_BADSIG, "the signature of station '%s' does not verify",
                 station);
        goto out;
    }
    rv = decode_body(m, (const char *)signed_part + sizeof(context), blen, err, errlen);
    free(signed_part);
    if (rv == 0 && strcmp(m->station, station) != 0) {
        rv = bad(err, errlen, SR_ERR_ENV_BODY, "the body names station '%s', signed by '%s'",
                 m->station, station);
    }
out:
    msgpack_unpacked_destroy(&u);
    return rv;
}

void sr_cmsg_clear(struct sr_cmsg *m)
{
    free(m->payload);
    free(m->passes);
    free(m->targets);
    memset(m, 0, sizeof(*m));
}
