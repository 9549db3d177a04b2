/*
 * libFuzzer harness for the skyroute-signature header (crypto/sighdr.c):
 * sr_sighdr_parse(), sr_sighdr_canon() and sr_sighdr_verify().
 *
 * Input: up to three LF-terminated lines and a body:
 *   HEADER \n TARGET \n CONTENT-TYPE \n BODY
 * (missing lines are empty). The header is parsed and verified against the
 * request, with a ring trusting one fixed key (seed 32 x 0x5a). Random bytes
 * almost never carry a valid signature, so the harness also signs the
 * request itself with the trusted key (time and nonce from the header when
 * it parsed) and checks that:
 *   - signing succeeds exactly when the request canonicalises;
 *   - what it signed verifies, names the signer and gives back time and nonce;
 *   - the header it wrote parses back to the same fields;
 *   - the same header for another station is refused as misaddressed;
 *   - one bit flipped in the body no longer verifies.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "crypto/crypto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static sr_key *key;
static sr_keyring *ring;

static char *line(const uint8_t **p, size_t *n)
{
    const uint8_t *nl = memchr(*p, '\n', *n);
    size_t len = nl ? (size_t)(nl - *p) : *n;
    char *s = malloc(len + 1);
    if (!s) {
        abort();
    }
    memcpy(s, *p, len);
    s[len] = 0; /* an embedded NUL just shortens the C string */
    *p += nl ? len + 1 : len;
    *n -= nl ? len + 1 : len;
    return s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!key) {
        uint8_t seed[32];
        memset(seed, 0x5a, sizeof(seed));
        if (sr_crypto_init() != 0 || sr_key_from_seed(&key, seed) != 0 ||
            sr_keyring_new(&ring) != 0 || sr_keyring_add(ring, sr_key_public(key), "ops") != 0) {
            abort();
        }
    }
    const uint8_t *p = data;
    size_t n = size;
    const uint8_t *hdr = p;
    char *h = line(&p, &n);
    size_t hlen = (size_t)(p - hdr) - (p > hdr && p[-1] == '\n');
    char *target = line(&p, &n);
    char *ct = line(&p, &n);
    struct sr_sigreq r = {"PUT", target, ct[0] ? ct : NULL, "gs-fuzz", p, n};
    char why[256];

    sr_sighdr parsed, got;
    int prv = sr_sighdr_parse(&parsed, (const char *)hdr, hlen, why, sizeof(why));
    const char *who = NULL;
    int vrv = sr_sighdr_verify(ring, (const char *)hdr, hlen, &r, &got, &who, why, sizeof(why));
    if (prv != 0 && vrv == 0) {
        abort(); /* verified what does not parse */
    }
    if (vrv == 0 && (!who || strcmp(who, "ops") != 0)) {
        abort();
    }

    int64_t ts = prv == 0 ? parsed.ts : 1700000000;
    const char *nonce = prv == 0 ? parsed.nonce : "fuzz-nonce-000000";
    sr_buf c;
    sr_buf_init(&c, 0);
    int crv = sr_sighdr_canon(&c, &r, ts, nonce, why, sizeof(why));
    sr_buf_free(&c);
    char out[SR_SIGHDR_MAX];
    int srv = sr_sighdr_sign(out, key, &r, ts, nonce, why, sizeof(why));
    if ((srv > 0) != (crv == 0)) {
        abort(); /* signing and canonicalising disagree */
    }
    if (srv > 0) {
        if ((size_t)srv != strlen(out) ||
            sr_sighdr_verify(ring, out, (size_t)srv, &r, &got, &who, why, sizeof(why)) != 0 ||
            got.ts != ts || strcmp(got.nonce, nonce) != 0 || strcmp(got.station, "gs-fuzz") != 0) {
            abort();
        }
        sr_sighdr again;
        if (sr_sighdr_parse(&again, out, (size_t)srv, why, sizeof(why)) != 0 ||
            memcmp(&again, &got, sizeof(again)) != 0) {
            abort();
        }
        struct sr_sigreq other = r;
        other.station = "gs-other";
        if (sr_sighdr_verify(ring, out, (size_t)srv, &other, &got, NULL, why, sizeof(why)) !=
            SR_ERR_ENV_MISADDRESSED) {
            abort();
        }
        if (n > 0) {
            uint8_t *flipped = malloc(n);
            if (!flipped) {
                abort();
            }
            memcpy(flipped, p, n);
            flipped[0] ^= 1;
            struct sr_sigreq fr = r;
            fr.body = flipped;
            if (sr_sighdr_verify(ring, out, (size_t)srv, &fr, &got, NULL, why, sizeof(why)) !=
                SR_ERR_ENV_BADSIG) {
                abort();
            }
            free(flipped);
        }
    }
    free(h);
    free(target);
    free(ct);
    return 0;
}
