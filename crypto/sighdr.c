/*
 * The skyroute-signature header of operator uploads (DESIGN section 7),
 * version 2: an Ed25519 signature over a canonical string that binds the
 * request (method, path, query, content type), the station it is meant for,
 * a time and a nonce, and the body's SHA-256. crypto.h gives the byte-exact
 * format; this file says why it is shaped so.
 *
 * The canonical string mirrors how the gateway reads a request, so that two
 * requests with one canonical string cannot mean different things:
 *   - the path is routed byte for byte, never percent-decoded, so it is
 *     signed as sent and may only hold unreserved characters and '/';
 *   - the query is read by sr_query_get(): keys matched raw, the first of a
 *     repeated key wins, '+' is a space, %XX a byte. So keys are restricted
 *     to unreserved characters, a repeated key is refused (reordering the
 *     raw query would change which value wins without changing a sorted
 *     string), values are decoded the same way and re-encoded one way;
 *   - the content type picks the feed parser, which compares it as sent, so
 *     it is signed as sent (outer whitespace trimmed).
 * The body is signed through its digest: the canonical string stays small
 * and the 32 MiB body is hashed once.
 *
 * Version 1 ("KEYID:BASE64SIG" over the body alone) bound nothing but the
 * body, which is the replay hole itself; it is recognised only to say so.
 */
#include "crypto/crypto.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SIG_B64LEN 88 /* base64 of 64 bytes, padded */
#define NONCE_MIN 16
#define CANON_MAX (64 * 1024) /* a request line is far below this */

static bool unreserved(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_' || c == '~';
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* ---- the header --------------------------------------------------------------------- */

static bool looks_v1(const char *h, size_t n)
{
    return n == 2 * SR_KEYIDBYTES + 1 + SIG_B64LEN && h[2 * SR_KEYIDBYTES] == ':';
}

/* The value of field |name| in |tok| ("name=value"), or NULL. */
static const char *field(const char *tok, size_t n, const char *name, size_t *vlen)
{
    size_t k = strlen(name);
    if (n > k && !memcmp(tok, name, k) && tok[k] == '=') {
        *vlen = n - k - 1;
        return tok + k + 1;
    }
    return NULL;
}

int sr_sighdr_parse(sr_sighdr *h, const char *hdr, size_t len, char *why, size_t whylen)
{
    if (!h || !hdr) {
        return sr_whyf(why, whylen, SR_ERR_INVAL, "invalid arguments");
    }
    memset(h, 0, sizeof(*h));
    while (len && is_space(*hdr)) {
        hdr++;
        len--;
    }
    while (len && is_space(hdr[len - 1])) {
        len--;
    }
    if (looks_v1(hdr, len)) {
        return sr_whyf(why, whylen, SR_ERR_ENV_VERSION,
                       "a v1 signature (KEYID:BASE64SIG over the body alone) is no longer "
                       "accepted: upgrade the skyroute CLI and sign with 'skyroute sign --url'");
    }
    if (len > SR_SIGHDR_MAX - 1) {
        return sr_whyf(why, whylen, SR_ERR_PARSE, "signature header is over %d bytes",
                       SR_SIGHDR_MAX - 1);
    }
    if (len < 2 || memcmp(hdr, "v2", 2) != 0 || (len > 2 && !is_space(hdr[2]))) {
        size_t d = 1;
        while (d < len && hdr[d] >= '0' && hdr[d] <= '9') {
            d++;
        }
        bool other_version = len > 1 && hdr[0] == 'v' && d > 1 && (d == len || is_space(hdr[d]));
        return sr_whyf(why, whylen, other_version ? SR_ERR_ENV_VERSION : SR_ERR_PARSE,
                       "signature header must start with 'v2 ' (v2 key=KEYID ts=UNIX nonce=N "
                       "station=ID sig=BASE64)");
    }
    enum { F_KEY = 1, F_TS = 2, F_NONCE = 4, F_STATION = 8, F_SIG = 16, F_ALL = 31 };
    unsigned seen = 0;
    size_t i = 2;
    while (i < len) {
        while (i < len && is_space(hdr[i])) {
            i++;
        }
        if (i == len) {
            break;
        }
        const char *tok = hdr + i;
        size_t n = 0;
        while (i < len && !is_space(hdr[i])) {
            i++;
            n++;
        }
        const char *v;
        size_t vl;
        unsigned bit;
        if ((v = field(tok, n, "key", &vl))) {
            bit = F_KEY;
            if (vl != 2 * SR_KEYIDBYTES || sr_unhex(h->keyid, SR_KEYIDBYTES, v, vl) != 0) {
                return sr_whyf(why, whylen, SR_ERR_PARSE, "key= must be 16 hex digits");
            }
        } else if ((v = field(tok, n, "ts", &vl))) {
            bit = F_TS;
            int64_t t = 0;
            bool ok = vl >= 1 && vl <= 12 && (v[0] != '0' || vl == 1);
            for (size_t k = 0; ok && k < vl; k++) {
                ok = v[k] >= '0' && v[k] <= '9';
                t = t * 10 + (v[k] - '0');
            }
            if (!ok) {
                return sr_whyf(why, whylen, SR_ERR_PARSE,
                               "ts= must be UNIX seconds (1-12 digits, no leading zero)");
            }
            h->ts = t;
        } else if ((v = field(tok, n, "nonce", &vl))) {
            bit = F_NONCE;
            bool ok = vl >= NONCE_MIN && vl < SR_SIGHDR_NONCEMAX;
            for (size_t k = 0; ok && k < vl; k++) {
                ok = unreserved((unsigned char)v[k]) && v[k] != '.' && v[k] != '~';
            }
            if (!ok) {
                return sr_whyf(why, whylen, SR_ERR_PARSE,
                               "nonce= must be %d-%d characters of [A-Za-z0-9_-]", NONCE_MIN,
                               SR_SIGHDR_NONCEMAX - 1);
            }
            memcpy(h->nonce, v, vl);
        } else if ((v = field(tok, n, "station", &vl))) {
            bit = F_STATION;
            bool ok = vl >= 1 && vl < SR_SIGNER_NAMEMAX;
            for (size_t k = 0; ok && k < vl; k++) {
                ok = unreserved((unsigned char)v[k]) && v[k] != '~';
            }
            if (!ok) {
                return sr_whyf(why, whylen, SR_ERR_PARSE,
                               "station= must be 1-63 characters of [A-Za-z0-9._-]");
            }
            memcpy(h->station, v, vl);
        } else if ((v = field(tok, n, "sig", &vl))) {
            bit = F_SIG;
            size_t got = 0;
            if (vl != SIG_B64LEN || sr_b64_decode(h->sig, sizeof(h->sig), &got, v, vl) != 0 ||
                got != sizeof(h->sig)) {
                return sr_whyf(why, whylen, SR_ERR_PARSE,
                               "sig= must be the base64 of 64 bytes (88 characters)");
            }
        } else {
            return sr_whyf(why, whylen, SR_ERR_PARSE,
                           "unknown field '%.*s' in the signature header", (int)(n > 32 ? 32 : n),
                           tok);
        }
        if (seen & bit) {
            return sr_whyf(why, whylen, SR_ERR_PARSE, "field '%.*s' given twice",
                           (int)(v - tok - 1), tok);
        }
        seen |= bit;
    }
    if (seen != F_ALL) {
        const char *miss = !(seen & F_KEY)       ? "key"
                           : !(seen & F_TS)      ? "ts"
                           : !(seen & F_NONCE)   ? "nonce"
                           : !(seen & F_STATION) ? "station"
                                                 : "sig";
        return sr_whyf(why, whylen, SR_ERR_PARSE, "signature header has no %s= field", miss);
    }
    return 0;
}

/* ---- the canonical string ----------------------------------------------------------- */

static int pct(sr_buf *b, unsigned char c)
{
    static const char hx[] = "0123456789ABCDEF";
    char e[3] = {'%', hx[c >> 4], hx[c & 15]};
    return unreserved(c) ? sr_buf_append(b, &c, 1) : sr_buf_append(b, e, 3);
}

struct qpair {
    const char *k; /* raw, unreserved only */
    size_t klen;
    const char *v; /* raw */
    size_t vlen;
};

static int qpair_cmp(const void *a, const void *b)
{
    const struct qpair *x = a, *y = b;
    size_t n = x->klen < y->klen ? x->klen : y->klen;
    int c = memcmp(x->k, y->k, n);
    return c ? c : (x->klen > y->klen) - (x->klen < y->klen);
}

/* Appends the value |v| decoded as sr_query_get() decodes it, re-encoded. */
static int canon_value(sr_buf *b, const char *v, size_t n, char *why, size_t whylen)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)v[i];
        if (c == '+') {
            c = ' ';
        } else if (c == '%') {
            if (i + 2 >= n || sr_hexval(v[i + 1]) < 0 || sr_hexval(v[i + 2]) < 0) {
                return sr_whyf(why, whylen, SR_ERR_PARSE,
                               "query: '%%' not followed by two hex digits");
            }
            c = (unsigned char)(sr_hexval(v[i + 1]) * 16 + sr_hexval(v[i + 2]));
            if (c == 0) {
                return sr_whyf(why, whylen, SR_ERR_PARSE, "query: %%00 in a value");
            }
            i += 2;
        }
        if (pct(b, c) != 0) {
            return sr_whyf(why, whylen, SR_ERR_TOOBIG, "request target too long to sign");
        }
    }
    return 0;
}

static int canon_query(sr_buf *b, const char *q, size_t n, char *why, size_t whylen)
{
    size_t cap = 1;
    for (size_t i = 0; i < n; i++) {
        cap += q[i] == '&';
    }
    struct qpair *ps = calloc(cap, sizeof(*ps));
    if (!ps) {
        return sr_whyf(why, whylen, SR_ERR_NOMEM, "out of memory");
    }
    size_t np = 0;
    int rv = 0;
    for (size_t i = 0; i <= n && rv == 0;) {
        size_t e = i;
        while (e < n && q[e] != '&') {
            e++;
        }
        if (e > i) {
            struct qpair *p = &ps[np++];
            p->k = q + i;
            const char *eq = memchr(q + i, '=', e - i);
            p->klen = eq ? (size_t)(eq - (q + i)) : e - i;
            p->v = eq ? eq + 1 : q + e;
            p->vlen = eq ? (size_t)(q + e - (eq + 1)) : 0;
            bool ok = p->klen > 0;
            for (size_t k = 0; ok && k < p->klen; k++) {
                ok = unreserved((unsigned char)p->k[k]);
            }
            if (!ok) {
                rv = sr_whyf(why, whylen, SR_ERR_PARSE,
                             "query: parameter names must be [A-Za-z0-9._~-], got '%.*s'",
                             (int)(p->klen > 40 ? 40 : p->klen), p->k);
            }
        }
        i = e + 1;
    }
    if (rv == 0 && np) {
        qsort(ps, np, sizeof(*ps), qpair_cmp);
    }
    for (size_t i = 0; rv == 0 && i < np; i++) {
        if (i && !qpair_cmp(&ps[i - 1], &ps[i])) {
            rv = sr_whyf(why, whylen, SR_ERR_PARSE, "query: parameter '%.*s' given twice",
                         (int)(ps[i].klen > 40 ? 40 : ps[i].klen), ps[i].k);
            break;
        }
        if ((i && sr_buf_append(b, "&", 1) != 0) || sr_buf_append(b, ps[i].k, ps[i].klen) != 0 ||
            sr_buf_append(b, "=", 1) != 0) {
            rv = sr_whyf(why, whylen, SR_ERR_TOOBIG, "request target too long to sign");
            break;
        }
        rv = canon_value(b, ps[i].v, ps[i].vlen, why, whylen);
    }
    free(ps);
    return rv;
}

int sr_sighdr_canon(sr_buf *out, const struct sr_sigreq *r, int64_t ts, const char *nonce,
                    char *why, size_t whylen)
{
    if (!out || !r || !r->method || !r->target || !r->station || !nonce || (!r->body && r->len)) {
        return sr_whyf(why, whylen, SR_ERR_INVAL, "invalid arguments");
    }
    size_t mlen = strlen(r->method);
    bool ok = mlen > 0 && mlen <= 16;
    for (size_t i = 0; ok && i < mlen; i++) {
        ok = r->method[i] >= 'A' && r->method[i] <= 'Z';
    }
    if (!ok) {
        return sr_whyf(why, whylen, SR_ERR_PARSE, "method must be 1-16 capital letters");
    }
    const char *t = r->target;
    size_t plen = strcspn(t, "?");
    if (plen == 0 || t[0] != '/') {
        return sr_whyf(why, whylen, SR_ERR_PARSE, "the request path must start with '/'");
    }
    for (size_t i = 0; i < plen; i++) {
        if (!unreserved((unsigned char)t[i]) && t[i] != '/') {
            return sr_whyf(why, whylen, SR_ERR_PARSE,
                           "the request path may hold only [A-Za-z0-9._~-] and '/' (byte %zu)", i);
        }
    }
    const char *ct = r->content_type ? r->content_type : "";
    size_t ctlen = strlen(ct);
    while (ctlen && is_space(*ct)) {
        ct++;
        ctlen--;
    }
    while (ctlen && is_space(ct[ctlen - 1])) {
        ctlen--;
    }
    for (size_t i = 0; i < ctlen; i++) {
        if ((unsigned char)ct[i] < 0x20 || ct[i] == 0x7f) {
            return sr_whyf(why, whylen, SR_ERR_PARSE, "content type holds a control character");
        }
    }
    uint8_t dig[crypto_hash_sha256_BYTES];
    char dighex[2 * sizeof(dig) + 1];
    crypto_hash_sha256(dig, r->body ? r->body : (const uint8_t *)"", r->len);
    sr_hex(dighex, dig, sizeof(dig));
    sr_buf_reset(out);
    out->max = out->max ? out->max : CANON_MAX;
    int e = sr_buf_append(out, "skyroute-signature v2\n", 22);
    e = e ? e : sr_buf_append(out, r->method, mlen);
    e = e ? e : sr_buf_append(out, "\n", 1);
    e = e ? e : sr_buf_append(out, t, plen);
    e = e ? e : sr_buf_append(out, "\n", 1);
    if (e) {
        return sr_whyf(why, whylen, SR_ERR_TOOBIG, "request target too long to sign");
    }
    if (t[plen] == '?') {
        int rv = canon_query(out, t + plen + 1, strlen(t + plen + 1), why, whylen);
        if (rv) {
            return rv;
        }
    }
    e = sr_buf_append(out, "\n", 1);
    e = e ? e : sr_buf_append(out, ct, ctlen);
    e = e ? e
          : sr_buf_appendf(out, "\n%s\n%lld\n%s\n%s\n", r->station, (long long)ts, nonce, dighex);
    return e ? sr_whyf(why, whylen, SR_ERR_TOOBIG, "request too long to sign") : 0;
}

/* ---- sign and verify ---------------------------------------------------------------- */

int sr_sighdr_sign(char out[SR_SIGHDR_MAX], const sr_key *key, const struct sr_sigreq *r,
                   int64_t ts, const char *nonce, char *why, size_t whylen)
{
    char hv[SR_SIGHDR_MAX];
    sr_sighdr probe;
    if (!key || !r || !nonce || ts < 0 || ts > 999999999999LL) {
        return sr_whyf(why, whylen, SR_ERR_INVAL, "invalid arguments");
    }
    /* the fields as the verifier will read them, so a bad nonce or station fails here */
    char idhex[2 * SR_KEYIDBYTES + 1];
    sr_hex(idhex, sr_key_id(key), SR_KEYIDBYTES);
    static const char zsig[] =
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==";
    int n = snprintf(hv, sizeof(hv), "v2 key=%s ts=%lld nonce=%s station=%s sig=%s", idhex,
                     (long long)ts, nonce, r->station ? r->station : "", zsig);
    if (n < 0 || (size_t)n >= sizeof(hv)) {
        return sr_whyf(why, whylen, SR_ERR_TOOBIG, "nonce or station too long");
    }
    int rv = sr_sighdr_parse(&probe, hv, (size_t)n, why, whylen);
    if (rv) {
        return rv;
    }
    sr_buf c;
    sr_buf_init(&c, CANON_MAX);
    rv = sr_sighdr_canon(&c, r, ts, nonce, why, whylen);
    if (rv) {
        sr_buf_free(&c);
        return rv;
    }
    uint8_t sig[SR_SIGBYTES];
    sr_key_sign(key, sig, c.data, c.len);
    sr_buf_free(&c);
    char b64[SIG_B64LEN + 1];
    sr_b64_encode(b64, sizeof(b64), sig, sizeof(sig));
    n = snprintf(out, SR_SIGHDR_MAX, "v2 key=%s ts=%lld nonce=%s station=%s sig=%s", idhex,
                 (long long)ts, nonce, r->station, b64);
    return n;
}

int sr_sighdr_verify(const sr_keyring *ring, const char *hdr, size_t hdrlen,
                     const struct sr_sigreq *r, sr_sighdr *h, const char **signer_name, char *why,
                     size_t whylen)
{
    if (!ring || !hdr || !r || !h || !r->station) {
        return sr_whyf(why, whylen, SR_ERR_INVAL, "invalid arguments");
    }
    int rv = sr_sighdr_parse(h, hdr, hdrlen, why, whylen);
    if (rv) {
        return rv;
    }
    char idhex[2 * SR_KEYIDBYTES + 1];
    sr_hex(idhex, h->keyid, sizeof(h->keyid));
    const char *name = NULL;
    const uint8_t *pk = sr_keyring_find(ring, h->keyid, &name);
    if (!pk) {
        return sr_whyf(why, whylen, SR_ERR_ENV_UNTRUSTED, "key %s is not trusted", idhex);
    }
    /* over the station the header names, so a request meant elsewhere is told so below */
    struct sr_sigreq sr = *r;
    sr.station = h->station;
    sr_buf c;
    sr_buf_init(&c, CANON_MAX);
    rv = sr_sighdr_canon(&c, &sr, h->ts, h->nonce, why, whylen);
    if (rv == 0 && sr_verify(pk, h->sig, c.data, c.len) != 0) {
        rv = sr_whyf(why, whylen, SR_ERR_ENV_BADSIG,
                     "signature by %s (%s) does not verify over this request",
                     name && *name ? name : "trusted key", idhex);
    }
    sr_buf_free(&c);
    if (rv) {
        return rv;
    }
    /* checked after the signature: only a genuine request learns where it was meant to go */
    if (strcmp(h->station, r->station) != 0) {
        return sr_whyf(why, whylen, SR_ERR_ENV_MISADDRESSED,
                       "signed for station '%s', this is '%s'", h->station, r->station);
    }
    if (signer_name) {
        *signer_name = name;
    }
    return 0;
}
