/*
 * The signed-record codec (crypto.h): the one sealer and the one opener of
 * every signed msgpack format here, SR1 and SR2 envelopes and the cluster's
 * SRC1 records.
 *
 *     outer = [str magic, bin body, signer, bin(64) sig, extra...]
 *     sig   = Ed25519(context || body)
 *
 * ---- Sealing: the body is written once, in place ----------------------------
 *
 * Plain Ed25519 hashes the message twice, so it needs context || body
 * contiguous in memory. We write exactly that into the output buffer: the
 * context, then the body, encoded in place by the caller's packer (an
 * envelope's payload is copied once, by the packer). After signing, the
 * context has served its purpose and the outer header is written over it.
 * When the context is as long as the widest header, the header is that, and
 * nothing has to move. SR1's context "skyroute/v1\0" is 12 bytes, and so is
 *
 *     dc 00 04          array16, 4 elements
 *     a3 53 52 31       fixstr "SR1"
 *     c6 LL LL LL LL    bin32, body length (big endian)
 *
 * array16 and bin32 are valid, if not minimal, msgpack encodings; every
 * msgpack decoder accepts them. The opener accepts any encoding of the outer
 * array (fixarray, bin8, ...), so other implementations may emit minimal
 * ones. A format whose context is not as long (SRC1's is 20 bytes) gets the
 * shortest header, and its body moves up to it once. The signature covers
 * only the body bytes, never the framing.
 *
 * ---- Opening: nothing is decoded before the signature verifies --------------
 *
 * The outer array is parsed with the bounded reader (mpack.c) over [p, end):
 * every declared length is checked against the limit (OVERSIZE) and then
 * against the bytes left (TRUNCATED) before anything is read. Then the signer
 * must be known to the caller's lookup (UNTRUSTED) and the signature must
 * verify (BADSIG). Only then is the body handed to the caller's decoder.
 * Verification needs context || body contiguous too, and the input is const,
 * so the body is copied once: into a stack buffer when small, else into one
 * malloc'd block.
 */
#include "crypto/crypto_int.h"

#include <stdlib.h>
#include <string.h>

#define SR_RECORD_DEFAULT_MAX ((size_t)64 << 20)
#define SR_RECORD_VERIFY_STACK 4096 /* context + body up to this size: no malloc */
#define SR_RECORD_HDRMAX (5 + 1 + SR_RECORD_MAGICMAX + 5)
/* array16, a fixstr magic of |mlen| bytes, bin32 */
#define SR_RECORD_WIDE_HDR(mlen) (3 + 1 + (mlen) + 5)

/* ===========================================================================
 * Sealing
 * ======================================================================== */

/* Bytes of a str (or, |bin|, a bin) header for |n| bytes, written at |p|. */
static size_t put_len_hdr(uint8_t *p, size_t n, bool bin)
{
    if (!bin && n < 32) {
        p[0] = (uint8_t)(0xa0 | n);
        return 1;
    }
    if (n < 256) {
        p[0] = bin ? 0xc4 : 0xd9;
        p[1] = (uint8_t)n;
        return 2;
    }
    if (n < 65536) {
        p[0] = bin ? 0xc5 : 0xda;
        p[1] = (uint8_t)(n >> 8);
        p[2] = (uint8_t)n;
        return 3;
    }
    p[0] = bin ? 0xc6 : 0xdb;
    p[1] = (uint8_t)(n >> 24);
    p[2] = (uint8_t)(n >> 16);
    p[3] = (uint8_t)(n >> 8);
    p[4] = (uint8_t)n;
    return 5;
}

/* The signer and signature elements' bytes. */
static size_t tail_len(sr_signer_form form, size_t signer_len)
{
    return (form == SR_SIGNER_KEYID || signer_len >= 32 ? 2 : 1) + signer_len + 2 + SR_SIGBYTES;
}

int sr_rec_begin(sr_buf *out, const struct sr_record_format *fmt, size_t signer_len,
                 size_t body_hint)
{
    size_t ctx = strlen(fmt->context) + 1;
    size_t fixed = ctx + tail_len(fmt->signer_form, signer_len);
    if (body_hint > SIZE_MAX - fixed) {
        return SR_ERR_TOOBIG;
    }
    /* room for the whole record up front when the ceiling allows, so the
     * packer never reallocates midway; a failed estimate is not an error:
     * the appends themselves enforce the ceiling */
    int rv = sr_buf_reserve(out, fixed + body_hint);
    if (rv == SR_ERR_NOMEM) {
        return rv;
    }
    return sr_buf_append(out, fmt->context, ctx);
}

int sr_rec_body(sr_buf *out, sr_record_pack pack, const void *arg)
{
    struct sr_mp_sink sink;
    msgpack_packer pk;
    sr_mp_sink_init(&sink, &pk, out);
    int rv = pack(arg, out, &pk);
    return rv ? rv : sink.err;
}

int sr_rec_frame(sr_buf *out, size_t start, const struct sr_record_format *fmt,
                 const uint8_t *signer, size_t signer_len, const uint8_t sig[SR_SIGBYTES],
                 const uint8_t *extra, size_t extra_len)
{
    size_t ctx = strlen(fmt->context) + 1;
    size_t body_len = out->len - start - ctx;
    if (body_len > UINT32_MAX) {
        return SR_ERR_TOOBIG;
    }
    size_t mlen = strlen(fmt->magic);
    unsigned n = 4 + fmt->extra;
    bool wide = SR_RECORD_WIDE_HDR(mlen) == ctx;
    uint8_t h[SR_RECORD_HDRMAX];
    size_t hl = 0;
    if (wide || n >= 16) {
        h[hl++] = 0xdc;
        h[hl++] = (uint8_t)(n >> 8);
        h[hl++] = (uint8_t)n;
    } else {
        h[hl++] = (uint8_t)(0x90 | n);
    }
    hl += put_len_hdr(h + hl, mlen, false);
    memcpy(h + hl, fmt->magic, mlen);
    hl += mlen;
    if (wide) {
        h[hl++] = 0xc6;
        h[hl++] = (uint8_t)(body_len >> 24);
        h[hl++] = (uint8_t)(body_len >> 16);
        h[hl++] = (uint8_t)(body_len >> 8);
        h[hl++] = (uint8_t)body_len;
    } else {
        hl += put_len_hdr(h + hl, body_len, true);
    }
    int rv = 0;
    if (hl != ctx) {
        static const uint8_t room[SR_RECORD_HDRMAX];
        if (hl > ctx && (rv = sr_buf_append(out, room, hl - ctx)) != 0) {
            return rv;
        }
        memmove(out->data + start + hl, out->data + start + ctx, body_len);
        out->len = start + hl + body_len;
    }
    memcpy(out->data + start, h, hl);

    uint8_t tail[2 + SR_SIGNER_NAMEMAX + 2 + SR_SIGBYTES];
    size_t t = put_len_hdr(tail, signer_len, fmt->signer_form == SR_SIGNER_KEYID);
    memcpy(tail + t, signer, signer_len);
    t += signer_len;
    tail[t++] = 0xc4;
    tail[t++] = SR_SIGBYTES;
    memcpy(tail + t, sig, SR_SIGBYTES);
    t += SR_SIGBYTES;
    rv = sr_buf_append(out, tail, t);
    if (rv == 0 && extra_len) {
        rv = sr_buf_append(out, extra, extra_len);
    }
    return rv;
}

int sr_record_seal(sr_buf *out, const struct sr_record_format *fmt, const sr_key *key,
                   const char *signer_name, size_t body_hint, sr_record_pack pack, const void *arg)
{
    if (!out || !fmt || !key || !pack || !fmt->magic || !fmt->context || fmt->extra) {
        return SR_ERR_INVAL;
    }
    size_t mlen = strlen(fmt->magic);
    if (mlen == 0 || mlen > SR_RECORD_MAGICMAX) {
        return SR_ERR_INVAL;
    }
    const uint8_t *signer;
    size_t slen;
    if (fmt->signer_form == SR_SIGNER_KEYID) {
        signer = sr_key_id(key);
        slen = SR_KEYIDBYTES;
    } else if (fmt->signer_form == SR_SIGNER_NAME && signer_name) {
        signer = (const uint8_t *)signer_name;
        slen = strnlen(signer_name, SR_SIGNER_NAMEMAX);
        if (slen == 0 || slen == SR_SIGNER_NAMEMAX) {
            return SR_ERR_INVAL;
        }
    } else {
        return SR_ERR_INVAL;
    }
    size_t start = out->len;
    int rv = sr_rec_begin(out, fmt, slen, body_hint);
    if (rv == 0) {
        rv = sr_rec_body(out, pack, arg);
    }
    if (rv == 0) {
        size_t signed_len = out->len - start;
        if (signed_len - (strlen(fmt->context) + 1) > UINT32_MAX) {
            rv = SR_ERR_TOOBIG;
        } else {
            uint8_t sig[SR_SIGBYTES];
            sr_key_sign(key, sig, out->data + start, signed_len);
            rv = sr_rec_frame(out, start, fmt, signer, slen, sig, NULL, 0);
        }
    }
    if (rv) {
        out->len = start;
    }
    return rv;
}

/* ===========================================================================
 * Opening
 * ======================================================================== */

/* Reads the header of one element of the outer array (|what|: its name in
 * messages), mapping reader errors to codes. */
static int elem_next(const uint8_t **pp, const uint8_t *begin, const uint8_t *end, size_t max,
                     struct sr_mp_obj *o, const char *what, char *why, size_t whylen)
{
    size_t off = (size_t)(*pp - begin);
    int rv = sr_mp_next(pp, end, o);
    if (rv == SR_MP_OK) {
        return 0;
    }
    if (rv == SR_MP_INVALID) {
        return sr_whyf(why, whylen, SR_ERR_ENV_FORMAT,
                       "the %s at offset %zu: invalid msgpack byte 0xc1", what, off);
    }
    if (o->len > max) {
        return sr_whyf(why, whylen, SR_ERR_ENV_OVERSIZE,
                       "the %s at offset %zu declares length %llu, over the limit of %zu", what,
                       off, (unsigned long long)o->len, max);
    }
    if (o->len) {
        return sr_whyf(why, whylen, SR_ERR_ENV_TRUNCATED,
                       "the %s at offset %zu declares length %llu but only %zu bytes follow", what,
                       off, (unsigned long long)o->len, (size_t)(end - *pp));
    }
    return sr_whyf(why, whylen, SR_ERR_ENV_TRUNCATED, "input ends inside the %s at offset %zu",
                   what, off);
}

/* Reads one of the format's extra elements whole (a container with what it
 * holds), so that the format's check sees all of it. */
static int extra_next(const uint8_t **pp, const uint8_t *begin, const uint8_t *end, size_t max,
                      const char *what, char *why, size_t whylen)
{
    struct sr_mp_obj o;
    int rv = elem_next(pp, begin, end, max, &o, what, why, whylen);
    if (rv == 0 && (rv = sr_mp_skip_children(pp, end, &o, 1)) != SR_MP_OK) {
        return rv == SR_MP_TRUNC
                   ? sr_whyf(why, whylen, SR_ERR_ENV_TRUNCATED, "input ends inside the %s", what)
                   : sr_whyf(why, whylen, SR_ERR_ENV_FORMAT, "the %s is not well-formed msgpack",
                             what);
    }
    return rv;
}

/* "4 (SR1) or 6 (SR2)": the element counts the opener accepts. */
static void counts_text(char *out, size_t outlen, const struct sr_record_opener *op)
{
    size_t n = 0;
    out[0] = '\0';
    for (size_t k = 0; k < op->nformats && n < outlen; k++) {
        int w = snprintf(out + n, outlen - n, "%s%u (%s)", k ? " or " : "",
                         4 + op->formats[k].extra, op->formats[k].magic);
        n += w > 0 ? (size_t)w : 0;
    }
}

/* Quotes the signer for a message: "abcd..." (a key id in hex) or "'name'",
 * with anything unprintable in a name shown as '?'. */
static void signer_text(char *out, size_t outlen, const struct sr_record *rec)
{
    if (rec->format->signer_form == SR_SIGNER_KEYID) {
        snprintf(out, outlen, "%s", rec->signer);
        return;
    }
    char name[SR_SIGNER_NAMEMAX + 4];
    size_t n = strlen(rec->signer), j = 0;
    for (size_t i = 0; i < n; i++) {
        uint8_t c = (uint8_t)rec->signer[i];
        name[j++] = c >= 0x20 && c < 0x7f ? (char)c : '?';
    }
    name[j] = '\0';
    snprintf(out, outlen, "'%s'", name);
}

/* The signature over context || body. */
static int verify_plain(const struct sr_record *rec, char *why, size_t whylen)
{
    const struct sr_record_format *f = rec->format;
    size_t ctx = strlen(f->context) + 1;
    uint8_t stackbuf[SR_RECORD_VERIFY_STACK];
    size_t mlen = ctx + rec->body_len;
    uint8_t *msg = mlen <= sizeof(stackbuf) ? stackbuf : malloc(mlen);
    if (!msg) {
        return sr_whyf(why, whylen, SR_ERR_NOMEM, "no memory to verify a %zu-byte body",
                       rec->body_len);
    }
    memcpy(msg, f->context, ctx);
    if (rec->body_len) {
        memcpy(msg + ctx, rec->body, rec->body_len);
    }
    int rv = sr_verify(rec->pk, rec->sig, msg, mlen);
    if (msg != stackbuf) {
        free(msg);
    }
    if (rv == 0) {
        return 0;
    }
    if (f->signer_form == SR_SIGNER_KEYID) {
        const char *name = rec->signer_name;
        return sr_whyf(why, whylen, SR_ERR_ENV_BADSIG, "signature by %s (%s) does not verify",
                       name && *name ? name : "trusted key", rec->signer);
    }
    char who[SR_SIGNER_NAMEMAX + 4];
    signer_text(who, sizeof(who), rec);
    return sr_whyf(why, whylen, SR_ERR_ENV_BADSIG, "signature by %s %s does not verify",
                   f->signer_noun, who);
}

/* Reads the outer array up to its end: everything but trust and signature. */
static int read_outer(struct sr_record *rec, const struct sr_record_opener *op, const uint8_t *data,
                      size_t len, size_t max, struct sr_mp_obj *signer, char *why, size_t whylen)
{
    const struct sr_record_format *f = &op->formats[0];
    const uint8_t *p = data, *end = data + len;
    struct sr_mp_obj arr, magic, body, sig;
    int rv;
    if ((rv = elem_next(&p, data, end, max, &arr, "outer array", why, whylen))) {
        return rv;
    }
    if (arr.type != SR_MP_ARRAY) {
        return sr_whyf(why, whylen, SR_ERR_ENV_FORMAT,
                       "outer value is a %s, expected a %u-element array",
                       sr_mp_type_names[arr.type], 4 + f->extra);
    }
    size_t k = 0;
    while (k < op->nformats && 4 + op->formats[k].extra != arr.len) {
        k++;
    }
    if (k == op->nformats) {
        char counts[96];
        counts_text(counts, sizeof(counts), op);
        return sr_whyf(why, whylen, SR_ERR_ENV_FORMAT, "outer array has %llu elements, expected %s",
                       (unsigned long long)arr.len, counts);
    }
    f = &op->formats[k];
    if ((rv = elem_next(&p, data, end, max, &magic, "magic", why, whylen))) {
        return rv;
    }
    if (magic.type != SR_MP_STR) {
        return sr_whyf(why, whylen, SR_ERR_ENV_FORMAT, "element 1 (magic) is a %s, expected \"%s\"",
                       sr_mp_type_names[magic.type], f->magic);
    }
    /* of the formats as long as this array, the one with this magic */
    for (; k < op->nformats; k++) {
        const struct sr_record_format *g = &op->formats[k];
        if (4 + g->extra == arr.len && magic.len == strlen(g->magic) &&
            memcmp(magic.ptr, g->magic, magic.len) == 0) {
            break;
        }
    }
    if (k == op->nformats) {
        char text[32];
        sr_printable(text, sizeof(text), magic.ptr, (size_t)magic.len);
        return sr_whyf(why, whylen, SR_ERR_ENV_VERSION,
                       "magic is \"%s\", expected \"%s\" in a %llu-element %s", text, f->magic,
                       (unsigned long long)arr.len, f->noun);
    }
    f = rec->format = &op->formats[k];
    if ((rv = elem_next(&p, data, end, max, &body, "body", why, whylen))) {
        return rv;
    }
    if (body.type != SR_MP_BIN) {
        return sr_whyf(why, whylen, SR_ERR_ENV_FORMAT, "element 2 (body) is a %s, expected bin",
                       sr_mp_type_names[body.type]);
    }
    if ((rv = elem_next(&p, data, end, max, signer, f->signer_noun, why, whylen))) {
        return rv;
    }
    if (f->signer_form == SR_SIGNER_KEYID
            ? signer->type != SR_MP_BIN || signer->len != SR_KEYIDBYTES
            : signer->type != SR_MP_STR || signer->len == 0 || signer->len >= SR_SIGNER_NAMEMAX ||
                  memchr(signer->ptr, 0, signer->len)) {
        return sr_whyf(
            why, whylen, SR_ERR_ENV_FORMAT, "element 3 (%s) is a %s of length %llu, expected %s",
            f->signer_noun, sr_mp_type_names[signer->type], (unsigned long long)signer->len,
            f->signer_form == SR_SIGNER_KEYID ? "bin(8)" : "a str of 1 to 63 bytes without NUL");
    }
    if ((rv = elem_next(&p, data, end, max, &sig, "signature", why, whylen))) {
        return rv;
    }
    if (sig.type != SR_MP_BIN || sig.len != SR_SIGBYTES) {
        return sr_whyf(why, whylen, SR_ERR_ENV_FORMAT,
                       "element 4 (signature) is a %s of length %llu, expected bin(64)",
                       sr_mp_type_names[sig.type], (unsigned long long)sig.len);
    }
    rec->body = body.ptr;
    rec->body_len = (size_t)body.len;
    rec->sig = sig.ptr;
    rec->extra = p;
    for (unsigned e = 0; e < f->extra; e++) {
        if ((rv = extra_next(&p, data, end, max, f->extra_names[e], why, whylen))) {
            return rv;
        }
    }
    rec->extra_len = (size_t)(p - rec->extra);
    if (f->check && (rv = f->check(op->arg, rec, why, whylen)) != 0) {
        return rv;
    }
    if (p != end) {
        return sr_whyf(why, whylen, SR_ERR_ENV_TRAILING, "%zu bytes follow the %s",
                       (size_t)(end - p), f->noun);
    }
    return 0;
}

int sr_record_open(struct sr_record *rec, const struct sr_record_opener *op, const uint8_t *data,
                   size_t len, char *why, size_t whylen)
{
    if (why && whylen) {
        why[0] = '\0';
    }
    if (!rec || !op || !op->formats || !op->nformats || !op->lookup || (!data && len)) {
        return sr_whyf(why, whylen, SR_ERR_INVAL, "invalid arguments");
    }
    size_t max = op->max_len ? op->max_len : SR_RECORD_DEFAULT_MAX;
    if (len > max) {
        return sr_whyf(why, whylen, SR_ERR_ENV_OVERSIZE, "%s is %zu bytes, over the limit of %zu",
                       op->formats[0].noun, len, max);
    }
    if (len == 0) {
        return sr_whyf(why, whylen, SR_ERR_ENV_TRUNCATED, "empty input");
    }

    /* ---- outer array: structure only ---- */
    struct sr_mp_obj signer;
    int rv = read_outer(rec, op, data, len, max, &signer, why, whylen);
    if (rv) {
        return rv;
    }

    /* ---- trust, then signature ---- */
    const struct sr_record_format *f = rec->format;
    rec->signer_name = NULL;
    if (f->signer_form == SR_SIGNER_KEYID) {
        memcpy(rec->keyid, signer.ptr, SR_KEYIDBYTES);
        sr_hex(rec->signer, rec->keyid, SR_KEYIDBYTES);
        rec->pk = op->lookup(op->arg, rec->keyid, SR_KEYIDBYTES, &rec->signer_name);
    } else {
        memset(rec->keyid, 0, sizeof(rec->keyid));
        memcpy(rec->signer, signer.ptr, (size_t)signer.len);
        rec->signer[signer.len] = '\0';
        rec->pk = op->lookup(op->arg, (const uint8_t *)rec->signer, (size_t)signer.len,
                             &rec->signer_name);
    }
    if (!rec->pk) {
        char who[SR_SIGNER_NAMEMAX + 4];
        signer_text(who, sizeof(who), rec);
        return sr_whyf(why, whylen, SR_ERR_ENV_UNTRUSTED, "%s %s is not a trusted key",
                       f->signer_noun, who);
    }
    rv = f->verify ? f->verify(op->arg, rec, why, whylen) : verify_plain(rec, why, whylen);
    if (rv) {
        return rv;
    }

    /* ---- body: signed, so now worth decoding ---- */
    return op->decode ? op->decode(op->arg, rec, why, whylen) : 0;
}
