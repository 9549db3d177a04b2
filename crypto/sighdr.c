/*
 * The skyroute-signature header of operator uploads (DESIGN section 7):
 * "KEYID:BASE64SIG", an Ed25519 signature over the exact body bytes.
 */
#include "crypto/crypto.h"

#include <string.h>

#define SR_SIG_B64LEN 88 /* base64 of 64 bytes, padded */

int sr_sighdr_sign(char out[SR_SIGHDR_MAX], const sr_key *key, const uint8_t *body, size_t len)
{
    uint8_t sig[SR_SIGBYTES];
    sr_key_sign(key, sig, body, len);
    sr_hex(out, sr_key_id(key), SR_KEYIDBYTES);
    out[2 * SR_KEYIDBYTES] = ':';
    int n = sr_b64_encode(out + 2 * SR_KEYIDBYTES + 1, SR_SIGHDR_MAX - 2 * SR_KEYIDBYTES - 1, sig,
                          sizeof(sig));
    return 2 * SR_KEYIDBYTES + 1 + n;
}

static int is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

int sr_sighdr_verify(const sr_keyring *ring, const char *hdr, size_t hdrlen, const uint8_t *body,
                     size_t len, const char **signer_name, char *why, size_t whylen)
{
    if (!ring || !hdr) {
        return sr_whyf(why, whylen, SR_ERR_INVAL, "invalid arguments");
    }
    while (hdrlen && is_space(*hdr)) {
        hdr++;
        hdrlen--;
    }
    while (hdrlen && is_space(hdr[hdrlen - 1])) {
        hdrlen--;
    }
    uint8_t id[SR_KEYIDBYTES], sig[SR_SIGBYTES];
    size_t siglen = 0;
    if (hdrlen != 2 * SR_KEYIDBYTES + 1 + SR_SIG_B64LEN || hdr[2 * SR_KEYIDBYTES] != ':' ||
        sr_unhex(id, sizeof(id), hdr, 2 * SR_KEYIDBYTES) != 0) {
        return sr_whyf(why, whylen, SR_ERR_PARSE,
                       "signature header must be KEYID:BASE64SIG (16 hex digits, ':', 88 base64 "
                       "characters)");
    }
    if (sr_b64_decode(sig, sizeof(sig), &siglen, hdr + 2 * SR_KEYIDBYTES + 1, SR_SIG_B64LEN) != 0 ||
        siglen != sizeof(sig)) {
        return sr_whyf(why, whylen, SR_ERR_PARSE, "signature is not the base64 of 64 bytes");
    }
    char idhex[2 * SR_KEYIDBYTES + 1];
    sr_hex(idhex, id, sizeof(id));
    const char *name = NULL;
    const uint8_t *pk = sr_keyring_find(ring, id, &name);
    if (!pk) {
        return sr_whyf(why, whylen, SR_ERR_ENV_UNTRUSTED, "key %s is not trusted", idhex);
    }
    if (sr_verify(pk, sig, body, len) != 0) {
        return sr_whyf(why, whylen, SR_ERR_ENV_BADSIG, "signature by %s (%s) does not verify",
                       name && *name ? name : "trusted key", idhex);
    }
    if (signer_name) {
        *signer_name = name;
    }
    return 0;
}
