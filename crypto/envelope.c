/*
 * The envelope of DESIGN section 5: its body map, sealing SR1, and opening
 * SR1 and SR2 alike. The outer array and the signature are the signed-record
 * codec's (record.c):
 *
 *     outer = ["SR1", bin body, bin(8) signer, bin(64) sig]
 *     sig   = Ed25519("skyroute/v1\0" || body)
 *
 * SR2 (crypto.h, "batched envelopes") adds a leaf index and a Merkle path;
 * here it is a format of the codec with a check and a verify hook around
 * merkle.c, so that it opens through the same reader, in the same order:
 * structure, trust, signature, and only then the body.
 *
 * The body map is decoded zero-copy by the bounded reader (mpack.c): strings
 * are copied into the fixed arrays of struct sr_envelope and the payload
 * points into the caller's input.
 */
#include "crypto/crypto_int.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

_Static_assert(sizeof(SR_ENV_SIGCTX) == SR_ENV_SIGCTX_LEN, "prefix includes its NUL");

static const char *const kind_names[] = {NULL, "workload", "result", "schedule"};

const char *sr_kind_name(sr_kind kind)
{
    if ((int)kind >= SR_KIND_WORKLOAD && (int)kind <= SR_KIND_SCHEDULE) {
        return kind_names[kind];
    }
    return "?";
}

/* ===========================================================================
 * Sealing SR1
 * ======================================================================== */

static void pack_key(msgpack_packer *pk, const char *k)
{
    msgpack_pack_str_with_body(pk, k, strlen(k));
}

static void pack_kv_str(msgpack_packer *pk, const char *k, const char *v)
{
    pack_key(pk, k);
    msgpack_pack_str_with_body(pk, v, strlen(v));
}

static void pack_kv_int(msgpack_packer *pk, const char *k, int64_t v)
{
    pack_key(pk, k);
    msgpack_pack_int64(pk, v);
}

/* True if |s| is NUL-terminated within |cap| bytes. */
static bool fits(const char *s, size_t cap)
{
    return memchr(s, '\0', cap) != NULL;
}

int sr_env_check(const struct sr_envelope *env)
{
    if ((int)env->kind < SR_KIND_WORKLOAD || (int)env->kind > SR_KIND_SCHEDULE) {
        return SR_ERR_INVAL;
    }
    if (!fits(env->src, sizeof(env->src)) || !fits(env->dst, sizeof(env->dst)) ||
        !fits(env->handler, sizeof(env->handler))) {
        return SR_ERR_INVAL;
    }
    if ((env->flags & SR_ENV_HAS_ERROR) && !fits(env->error, sizeof(env->error))) {
        return SR_ERR_INVAL;
    }
    if (!env->payload && env->payload_len) {
        return SR_ERR_INVAL;
    }
    if ((env->flags & SR_ENV_HAS_WORK) && !(isfinite(env->work) && env->work >= 0)) {
        return SR_ERR_INVAL;
    }
    if ((env->flags & SR_ENV_HAS_RESULT_BYTES) && env->result_bytes < 0) {
        return SR_ERR_INVAL;
    }
    return 0;
}

int sr_env_pack_body(const void *arg, sr_buf *out, msgpack_packer *pk)
{
    const struct sr_envelope *env = arg;
    (void)out; /* everything goes through |pk| */
    unsigned f = env->flags;
    bool hints = f & (SR_ENV_HAS_WORK | SR_ENV_HAS_RESULT_BYTES);
    size_t n = 8; /* v kind id iat exp src dst payload */
    n += env->handler[0] != '\0';
    n += hints;
    n += !!(f & SR_ENV_HAS_STATUS) + !!(f & SR_ENV_HAS_ERROR);
    n += !!(f & SR_ENV_HAS_T_RECV) + !!(f & SR_ENV_HAS_T_DONE);

    msgpack_pack_map(pk, n);
    pack_kv_int(pk, "v", 1);
    pack_kv_str(pk, "kind", kind_names[env->kind]);
    pack_key(pk, "id");
    msgpack_pack_bin_with_body(pk, env->id, SR_ENV_IDBYTES);
    pack_kv_int(pk, "iat", env->iat);
    pack_kv_int(pk, "exp", env->exp);
    pack_kv_str(pk, "src", env->src);
    pack_kv_str(pk, "dst", env->dst);
    if (env->handler[0]) {
        pack_kv_str(pk, "handler", env->handler);
    }
    pack_key(pk, "payload");
    msgpack_pack_bin(pk, env->payload_len);
    if (env->payload_len) {
        msgpack_pack_bin_body(pk, env->payload, env->payload_len); /* the one copy */
    }
    if (hints) {
        pack_key(pk, "hints");
        msgpack_pack_map(pk, (size_t) !!(f & SR_ENV_HAS_WORK) + !!(f & SR_ENV_HAS_RESULT_BYTES));
        if (f & SR_ENV_HAS_WORK) {
            pack_key(pk, "work");
            msgpack_pack_double(pk, env->work);
        }
        if (f & SR_ENV_HAS_RESULT_BYTES) {
            pack_kv_int(pk, "result_bytes", env->result_bytes);
        }
    }
    if (f & SR_ENV_HAS_STATUS) {
        pack_kv_int(pk, "status", env->status);
    }
    if (f & SR_ENV_HAS_ERROR) {
        pack_kv_str(pk, "error", env->error);
    }
    if (f & SR_ENV_HAS_T_RECV) {
        pack_kv_int(pk, "t_recv", env->t_recv);
    }
    if (f & SR_ENV_HAS_T_DONE) {
        pack_kv_int(pk, "t_done", env->t_done);
    }
    return 0; /* the packer's failures are the codec's to note */
}

/* The payload, the strings, and 320 for the keys, headers and numbers (about
 * 230 with every optional field; checked in tests/crypto). An estimate only
 * sizes the buffer once: were it short, the appends would still grow it. */
size_t sr_env_body_bound(const struct sr_envelope *env)
{
    size_t n = env->payload_len + 320;
    n += strnlen(env->src, SR_ENV_STRMAX) + strnlen(env->dst, SR_ENV_STRMAX) +
         strnlen(env->handler, SR_ENV_STRMAX);
    if (env->flags & SR_ENV_HAS_ERROR) {
        n += strnlen(env->error, SR_ENV_ERRMAX);
    }
    return n;
}

int sr_envelope_seal(sr_buf *out, const sr_key *key, const struct sr_envelope *env)
{
    if (!out || !key || !env) {
        return SR_ERR_INVAL;
    }
    int rv = sr_env_check(env);
    if (rv) {
        return rv;
    }
    if (env->payload_len > SIZE_MAX - SR_ENV_BODY_OVERHEAD) {
        return SR_ERR_TOOBIG;
    }
    return sr_record_seal(out, &sr_env_formats[0], key, NULL, sr_env_body_bound(env),
                          sr_env_pack_body, env);
}

struct raw_body {
    const uint8_t *p;
    size_t len;
};

static int pack_raw(const void *arg, sr_buf *out, msgpack_packer *pk)
{
    const struct raw_body *r = arg;
    (void)pk;
    return sr_buf_append(out, r->p, r->len);
}

int sr_envelope_seal_raw(sr_buf *out, const sr_key *key, const uint8_t *body, size_t body_len)
{
    if (!out || !key || (!body && body_len)) {
        return SR_ERR_INVAL;
    }
    struct raw_body r = {body, body_len};
    return sr_record_seal(out, &sr_env_formats[0], key, NULL, body_len, pack_raw, &r);
}

/* ===========================================================================
 * Opening: the body map (signature already verified)
 * ======================================================================== */

enum field {
    F_V,
    F_KIND,
    F_ID,
    F_IAT,
    F_EXP,
    F_SRC,
    F_DST,
    F_HANDLER,
    F_PAYLOAD,
    F_HINTS,
    F_STATUS,
    F_ERROR,
    F_T_RECV,
    F_T_DONE,
    F_COUNT
};

static const char *const field_names[F_COUNT] = {
    "v",       "kind",    "id",    "iat",    "exp",   "src",    "dst",
    "handler", "payload", "hints", "status", "error", "t_recv", "t_done",
};

#define REQUIRED_FIELDS                                                                            \
    ((1u << F_V) | (1u << F_KIND) | (1u << F_ID) | (1u << F_IAT) | (1u << F_EXP) | (1u << F_SRC) | \
     (1u << F_DST))

struct body_dec {
    struct sr_envelope *env;
    const uint8_t *p, *end;
    unsigned seen;
    int64_t v;
    bool v_ok; /* v present and an integer */
    int err;   /* first field-level error; decoding continues to find v */
    char *why;
    size_t whylen;
    char kind_text[32];
};

/* Notes the first field-level error; decoding goes on to find v. */
#define field_err(d, ...)                                                                          \
    do {                                                                                           \
        if (!(d)->err) {                                                                           \
            (d)->err = sr_whyf((d)->why, (d)->whylen, SR_ERR_ENV_BODY, __VA_ARGS__);               \
        }                                                                                          \
    } while (0)

static int struct_err(struct body_dec *d, int rv, const char *where)
{
    const char *what = rv == SR_MP_DEEP      ? "nested deeper than 32 levels"
                       : rv == SR_MP_INVALID ? "holds the invalid msgpack byte 0xc1"
                                             : "is truncated";
    return sr_whyf(d->why, d->whylen, SR_ERR_ENV_BODY, "body: %s %s", where, what);
}

static bool get_i64(const struct sr_mp_obj *o, int64_t *out)
{
    if (o->type == SR_MP_INT) {
        *out = o->i;
        return true;
    }
    if (o->type == SR_MP_UINT && o->u <= INT64_MAX) {
        *out = (int64_t)o->u;
        return true;
    }
    return false;
}

static void get_int_field(struct body_dec *d, const struct sr_mp_obj *o, const char *name,
                          int64_t *out)
{
    if (!get_i64(o, out)) {
        field_err(d, "body: '%s' must be a 64-bit signed integer, got a %s", name,
                  o->type == SR_MP_UINT ? "too large integer" : sr_mp_type_names[o->type]);
    }
}

static void get_str_field(struct body_dec *d, const struct sr_mp_obj *o, const char *name,
                          char *dst, size_t cap)
{
    if (o->type != SR_MP_STR) {
        field_err(d, "body: '%s' must be a string, got a %s", name, sr_mp_type_names[o->type]);
        return;
    }
    if (o->len >= cap) {
        field_err(d, "body: '%s' is %llu bytes, at most %zu allowed", name,
                  (unsigned long long)o->len, cap - 1);
        return;
    }
    if (memchr(o->ptr, '\0', o->len)) {
        field_err(d, "body: '%s' contains a NUL byte", name);
        return;
    }
    memcpy(dst, o->ptr, o->len);
    dst[o->len] = '\0';
}

static int decode_hints(struct body_dec *d, uint64_t n)
{
    struct sr_envelope *env = d->env;
    for (uint64_t k = 0; k < n; k++) {
        struct sr_mp_obj key, val;
        int rv = sr_mp_next(&d->p, d->end, &key);
        if (rv == 0) {
            rv = sr_mp_skip_children(&d->p, d->end, &key, 2);
        }
        if (rv == 0) {
            rv = sr_mp_next(&d->p, d->end, &val);
        }
        if (rv) {
            return struct_err(d, rv, "'hints'");
        }
        bool is_work = key.type == SR_MP_STR && key.len == 4 && !memcmp(key.ptr, "work", 4);
        bool is_rb = key.type == SR_MP_STR && key.len == 12 && !memcmp(key.ptr, "result_bytes", 12);
        if (is_work) {
            double w = val.type == SR_MP_FLOAT  ? val.f
                       : val.type == SR_MP_UINT ? (double)val.u
                       : val.type == SR_MP_INT  ? (double)val.i
                                                : NAN;
            if (env->flags & SR_ENV_HAS_WORK) {
                field_err(d, "body: duplicate key 'hints.work'");
            } else if (val.type != SR_MP_FLOAT && val.type != SR_MP_UINT && val.type != SR_MP_INT) {
                field_err(d, "body: 'hints.work' must be a number, got a %s",
                          sr_mp_type_names[val.type]);
            } else if (!isfinite(w) || w < 0) {
                field_err(d, "body: 'hints.work' must be a finite number >= 0");
            } else {
                env->work = w;
                env->flags |= SR_ENV_HAS_WORK;
            }
        } else if (is_rb) {
            int64_t v = 0;
            if (env->flags & SR_ENV_HAS_RESULT_BYTES) {
                field_err(d, "body: duplicate key 'hints.result_bytes'");
            } else if (!get_i64(&val, &v) || v < 0) {
                field_err(d, "body: 'hints.result_bytes' must be an integer >= 0");
            } else {
                env->result_bytes = v;
                env->flags |= SR_ENV_HAS_RESULT_BYTES;
            }
        }
        rv = sr_mp_skip_children(&d->p, d->end, &val, 2);
        if (rv) {
            return struct_err(d, rv, "'hints'");
        }
    }
    return 0;
}

static int lookup_field(const struct sr_mp_obj *key)
{
    if (key->type != SR_MP_STR) {
        return -1;
    }
    for (int k = 0; k < F_COUNT; k++) {
        size_t n = strlen(field_names[k]);
        if (key->len == n && memcmp(key->ptr, field_names[k], n) == 0) {
            return k;
        }
    }
    return -1;
}

/* Decodes one known field from its value |o| (header already read). */
static int decode_field(struct body_dec *d, int f, const struct sr_mp_obj *o)
{
    struct sr_envelope *env = d->env;
    const char *name = field_names[f];
    switch (f) {
    case F_V:
        get_int_field(d, o, name, &d->v);
        d->v_ok = get_i64(o, &d->v);
        break;
    case F_KIND:
        if (o->type != SR_MP_STR) {
            field_err(d, "body: 'kind' must be a string, got a %s", sr_mp_type_names[o->type]);
            break;
        }
        for (int k = SR_KIND_WORKLOAD; k <= SR_KIND_SCHEDULE; k++) {
            if (o->len == strlen(kind_names[k]) && !memcmp(o->ptr, kind_names[k], o->len)) {
                env->kind = (sr_kind)k;
            }
        }
        if (!env->kind) {
            sr_printable(d->kind_text, sizeof(d->kind_text), o->ptr, o->len);
        }
        break;
    case F_ID:
        if (o->type != SR_MP_BIN || o->len != SR_ENV_IDBYTES) {
            field_err(d, "body: 'id' must be bin(16), got a %s of length %llu",
                      sr_mp_type_names[o->type], (unsigned long long)o->len);
        } else {
            memcpy(env->id, o->ptr, SR_ENV_IDBYTES);
        }
        break;
    case F_IAT:
        get_int_field(d, o, name, &env->iat);
        break;
    case F_EXP:
        get_int_field(d, o, name, &env->exp);
        break;
    case F_SRC:
        get_str_field(d, o, name, env->src, sizeof(env->src));
        break;
    case F_DST:
        get_str_field(d, o, name, env->dst, sizeof(env->dst));
        break;
    case F_HANDLER:
        get_str_field(d, o, name, env->handler, sizeof(env->handler));
        break;
    case F_PAYLOAD:
        if (o->type != SR_MP_BIN) {
            field_err(d, "body: 'payload' must be bin, got a %s", sr_mp_type_names[o->type]);
        } else {
            env->payload = o->ptr;
            env->payload_len = (size_t)o->len;
        }
        break;
    case F_HINTS:
        if (o->type != SR_MP_MAP) {
            field_err(d, "body: 'hints' must be a map, got a %s", sr_mp_type_names[o->type]);
            break;
        }
        return decode_hints(d, o->len);
    case F_STATUS:
        if (get_i64(o, &env->status)) {
            env->flags |= SR_ENV_HAS_STATUS;
        } else {
            field_err(d, "body: 'status' must be a 64-bit signed integer");
        }
        break;
    case F_ERROR:
        get_str_field(d, o, name, env->error, sizeof(env->error));
        if (o->type == SR_MP_STR && !d->err) {
            env->flags |= SR_ENV_HAS_ERROR;
        }
        break;
    case F_T_RECV:
        if (get_i64(o, &env->t_recv)) {
            env->flags |= SR_ENV_HAS_T_RECV;
        } else {
            field_err(d, "body: 't_recv' must be a 64-bit signed integer");
        }
        break;
    default: /* F_T_DONE */
        if (get_i64(o, &env->t_done)) {
            env->flags |= SR_ENV_HAS_T_DONE;
        } else {
            field_err(d, "body: 't_done' must be a 64-bit signed integer");
        }
        break;
    }
    /* a wrongly typed container value still has to be stepped over */
    if (f != F_HINTS || o->type != SR_MP_MAP) {
        int rv = sr_mp_skip_children(&d->p, d->end, o, 1);
        if (rv) {
            return struct_err(d, rv, "a value");
        }
    }
    return 0;
}

static int decode_body(struct body_dec *d)
{
    struct sr_mp_obj top;
    int rv = sr_mp_next(&d->p, d->end, &top);
    if (rv) {
        return struct_err(d, rv, "map header");
    }
    if (top.type != SR_MP_MAP) {
        return sr_whyf(d->why, d->whylen, SR_ERR_ENV_BODY, "body is a %s, expected a map",
                       sr_mp_type_names[top.type]);
    }
    for (uint64_t k = 0; k < top.len; k++) {
        struct sr_mp_obj key, val;
        rv = sr_mp_next(&d->p, d->end, &key);
        if (rv == 0) {
            rv = sr_mp_skip_children(&d->p, d->end, &key, 1); /* non-string keys are unknown */
        }
        if (rv) {
            return struct_err(d, rv, "a key");
        }
        int f = lookup_field(&key);
        rv = sr_mp_next(&d->p, d->end, &val);
        if (rv) {
            return struct_err(d, rv, f >= 0 ? field_names[f] : "a value");
        }
        if (f < 0) {
            rv = sr_mp_skip_children(&d->p, d->end, &val, 1);
            if (rv) {
                return struct_err(d, rv, "an unknown value");
            }
            continue;
        }
        if (d->seen & (1u << f)) {
            field_err(d, "body: duplicate key '%s'", field_names[f]);
        }
        d->seen |= 1u << f;
        rv = decode_field(d, f, &val);
        if (rv) {
            return rv;
        }
    }
    if (d->p != d->end) {
        field_err(d, "body: %zu bytes follow the body map", (size_t)(d->end - d->p));
    }

    /* A different version may mean different types: say so before anything else. */
    if (d->v_ok && d->v != 1) {
        return sr_whyf(d->why, d->whylen, SR_ERR_ENV_VERSION, "body version v=%lld, expected 1",
                       (long long)d->v);
    }
    if (d->err) {
        return d->err;
    }
    unsigned missing = REQUIRED_FIELDS & ~d->seen;
    if (missing) {
        int f = __builtin_ctz(missing);
        return sr_whyf(d->why, d->whylen, SR_ERR_ENV_BODY, "body: missing required field '%s'",
                       field_names[f]);
    }
    if (!d->env->kind) {
        return sr_whyf(d->why, d->whylen, SR_ERR_ENV_KIND, "unknown kind '%s'", d->kind_text);
    }
    return 0;
}

/* ===========================================================================
 * Opening: the outer array and the signature, through the record codec
 * ======================================================================== */

/* What the opener's callbacks share. */
struct open_ctx {
    const struct sr_open_opts *opts;
    struct sr_envelope *env;
    /* SR2: from the check, for the verify */
    uint64_t index;
    const uint8_t *path;
    unsigned depth;
};

static const uint8_t *ring_lookup(void *arg, const uint8_t *signer, size_t len, const char **name)
{
    const struct open_ctx *c = arg;
    (void)len; /* SR_KEYIDBYTES: both formats sign with a key id */
    return sr_keyring_find(c->opts->trust, signer, name);
}

/* SR2's leaf index and path: a path of whole hashes, at most SR_ENV_PATH_MAX
 * of them, and an index inside the tree they make. */
static int sr2_check(void *arg, const struct sr_record *rec, char *why, size_t whylen)
{
    struct open_ctx *c = arg;
    const uint8_t *p = rec->extra, *end = rec->extra + rec->extra_len;
    struct sr_mp_obj index, path;
    /* the codec read both whole already: these succeed */
    if (sr_mp_next(&p, end, &index) != SR_MP_OK ||
        sr_mp_skip_children(&p, end, &index, 1) != SR_MP_OK ||
        sr_mp_next(&p, end, &path) != SR_MP_OK) {
        return sr_whyf(why, whylen, SR_ERR_ENV_FORMAT, "the leaf index and path are malformed");
    }
    if (path.type != SR_MP_BIN || path.len % SR_MERKLE_HASHBYTES != 0 ||
        path.len / SR_MERKLE_HASHBYTES > SR_ENV_PATH_MAX) {
        return sr_whyf(why, whylen, SR_ERR_ENV_FORMAT,
                       "element 6 (path) is a %s of length %llu, expected bin of at most %d "
                       "32-byte hashes",
                       sr_mp_type_names[path.type], (unsigned long long)path.len, SR_ENV_PATH_MAX);
    }
    unsigned depth = (unsigned)(path.len / SR_MERKLE_HASHBYTES);
    if (index.type != SR_MP_UINT || index.u >= ((uint64_t)1 << depth)) {
        return sr_whyf(why, whylen, SR_ERR_ENV_FORMAT,
                       "element 5 (leaf index) must be an unsigned integer below 2^%u", depth);
    }
    c->index = index.u;
    c->path = path.ptr;
    c->depth = depth;
    return 0;
}

/* SR2's signature covers the root the body and its path lead to. */
static int sr2_verify(void *arg, const struct sr_record *rec, char *why, size_t whylen)
{
    const struct open_ctx *c = arg;
    if (sr_merkle_verify(rec->pk, c->opts->roots, rec->body, rec->body_len, rec->sig, c->index,
                         c->path, c->depth) != 0) {
        const char *name = rec->signer_name;
        return sr_whyf(why, whylen, SR_ERR_ENV_BADSIG,
                       "batch signature by %s (%s) does not verify over this body's path",
                       name && *name ? name : "trusted key", rec->signer);
    }
    return 0;
}

static const char *const sr2_extra_names[] = {"leaf index", "path"};

const struct sr_record_format sr_env_formats[2] = {
    {
        .magic = "SR1",
        .context = SR_ENV_SIGCTX,
        .signer_form = SR_SIGNER_KEYID,
        .noun = "envelope",
        .signer_noun = "signer",
    },
    {
        .magic = "SR2",
        .context = SR_ENV_SIGCTX2, /* not signed itself: the gap for the header */
        .signer_form = SR_SIGNER_KEYID,
        .noun = "envelope",
        .signer_noun = "signer",
        .extra = 2,
        .extra_names = sr2_extra_names,
        .check = sr2_check,
        .verify = sr2_verify,
    },
};

static int decode_env(void *arg, const struct sr_record *rec, char *why, size_t whylen)
{
    const struct open_ctx *c = arg;
    struct sr_envelope *env = c->env;
    memset(env, 0, sizeof(*env));
    struct body_dec d = {
        .env = env, .p = rec->body, .end = rec->body + rec->body_len, .why = why, .whylen = whylen};
    int rv = decode_body(&d);
    if (rv) {
        return rv;
    }
    memcpy(env->signer, rec->keyid, SR_KEYIDBYTES);
    env->signer_name = rec->signer_name;
    env->version = rec->format == &sr_env_formats[1] ? 2 : 1;
    env->depth = c->depth;
    return 0;
}

int sr_envelope_open(struct sr_envelope *env, const uint8_t *data, size_t len,
                     const struct sr_open_opts *opts, char *why, size_t whylen)
{
    if (why && whylen) {
        why[0] = '\0';
    }
    if (!env || !opts || !opts->trust || (!data && len)) {
        return sr_whyf(why, whylen, SR_ERR_INVAL, "invalid arguments");
    }
    struct open_ctx c = {.opts = opts, .env = env};
    const struct sr_record_opener op = {.formats = sr_env_formats,
                                        .nformats = 2,
                                        .max_len = opts->max_len,
                                        .lookup = ring_lookup,
                                        .decode = decode_env,
                                        .arg = &c};
    struct sr_record rec;
    int rv = sr_record_open(&rec, &op, data, len, why, whylen);
    if (rv) {
        return rv;
    }

    /* ---- is it for us, and now? ---- */
    if (opts->kinds && !(opts->kinds & (1u << env->kind))) {
        return sr_whyf(why, whylen, SR_ERR_ENV_KIND, "kind '%s' is not accepted here",
                       sr_kind_name(env->kind));
    }
    if (opts->self_id && strcmp(env->dst, opts->self_id) != 0) {
        char dst[40];
        sr_printable(dst, sizeof(dst), (const uint8_t *)env->dst, strlen(env->dst));
        return sr_whyf(why, whylen, SR_ERR_ENV_MISADDRESSED, "addressed to '%s', not to '%s'", dst,
                       opts->self_id);
    }
    if (env->exp <= opts->now_ms) {
        char e[SR_RFC3339_LEN], n[SR_RFC3339_LEN];
        if (sr_time_format(e, env->exp) < 0) {
            snprintf(e, sizeof(e), "%lld ms", (long long)env->exp);
        }
        if (sr_time_format(n, opts->now_ms) < 0) {
            snprintf(n, sizeof(n), "%lld ms", (long long)opts->now_ms);
        }
        return sr_whyf(why, whylen, SR_ERR_ENV_EXPIRED, "expired at %s (now %s)", e, n);
    }
    return 0;
}
