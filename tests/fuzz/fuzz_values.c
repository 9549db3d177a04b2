/*
 * libFuzzer harness for the small value parsers behind headers, query
 * strings and config values. The first byte picks one; the rest is its input.
 * Besides not crashing, each must keep its promise:
 *   0 sr_time_parse     a parsed time formats (sr_time_format) and parses
 *                       back to the same millisecond
 *   1 sr_parse_i64      a parsed integer prints and parses back the same
 *   2 sr_parse_double   decimal and finite only, and "%.17g" parses back the same
 *   3 sr_query_get      KEY '\n' PATH: never writes past its output, which
 *                       is NUL-terminated on success
 *   4 sr_station_parse  accepts only what sr_station_init accepts
 *   5 sr_place_parse    "target:ID" keeps ID whole, or refuses it
 *   6 sr_pubkey_parse   a key it accepts prints ("ed25519:" + base64) and
 *                       parses back to the same 32 bytes
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "common/common.h"
#include "crypto/crypto.h"
#include "gateway/net/net.h"
#include "linkmodels/linkmodels.h"
#include "routing/routing.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int ok)
{
    if (!ok) {
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) {
        return 0;
    }
    static int inited;
    if (!inited) {
        check(sr_crypto_init() == 0);
        inited = 1;
    }
    size_t len = size - 1;
    char *s = malloc(len + 1);
    if (!s) {
        return 0;
    }
    memcpy(s, data + 1, len);
    s[len] = 0;
    switch (data[0] % 7) {
    case 0: {
        int64_t ms, again;
        char out[SR_RFC3339_LEN];
        if (sr_time_parse(&ms, s, len) == 0 && sr_time_format(out, ms) > 0) {
            check(sr_time_parse(&again, out, (size_t)-1) == 0 && again == ms);
        }
        break;
    }
    case 1: {
        int64_t v, again;
        char out[32];
        if (sr_parse_i64(&v, s, len) == 0) {
            int n = snprintf(out, sizeof(out), "%lld", (long long)v);
            check(sr_parse_i64(&again, out, (size_t)n) == 0 && again == v);
        }
        break;
    }
    case 2: {
        double v, again;
        char out[40];
        if (sr_parse_double(&v, s, len) == 0) {
            check(isfinite(v) && strspn(s, "0123456789.eE+-") == len);
            int n = snprintf(out, sizeof(out), "%.17g", v);
            check(sr_parse_double(&again, out, (size_t)n) == 0 && again == v);
        }
        break;
    }
    case 3: {
        char *nl = strchr(s, '\n');
        if (!nl) {
            break;
        }
        *nl = 0;
        char out[40];
        memset(out, 0x5a, sizeof(out));
        size_t outlen = 1 + (size_t)(len % 31); /* 1..31: the last 9 bytes are a fence */
        if (sr_query_get(nl + 1, s, out, outlen) == 0) {
            check(memchr(out, 0, outlen) != NULL);
        }
        for (size_t i = outlen; i < sizeof(out); i++) {
            check(out[i] == 0x5a);
        }
        break;
    }
    case 4: {
        sr_station st, st2;
        double lat, lon, alt;
        char tail;
        if (sr_station_parse(&st, s) == 0) {
            /* what it took must be three numbers sr_station_init takes too */
            check(sscanf(s, "%lf,%lf,%lf%c", &lat, &lon, &alt, &tail) >= 3);
            check(sr_station_init(&st2, lat, lon, alt) == 0);
        }
        break;
    }
    case 5: {
        struct sr_workload w;
        memset(&w, 0, sizeof(w));
        if (sr_place_parse(&w, s) == 0 && !strncmp(s, "target:", 7)) {
            check(w.place == SR_PLACE_TARGET && !strcmp(w.place_target, s + 7));
        }
        break;
    }
    case 6: {
        uint8_t pk[SR_PUBLICKEYBYTES], again[SR_PUBLICKEYBYTES];
        if (sr_pubkey_parse(pk, s, len) == 0) {
            char text[8 + sodium_base64_ENCODED_LEN(SR_PUBLICKEYBYTES,
                                                    sodium_base64_VARIANT_ORIGINAL)] = "ed25519:";
            sodium_bin2base64(text + 8, sizeof(text) - 8, pk, sizeof(pk),
                              sodium_base64_VARIANT_ORIGINAL);
            check(sr_pubkey_parse(again, text, strlen(text)) == 0 &&
                  !memcmp(pk, again, sizeof(pk)));
        }
        break;
    }
    }
    free(s);
    return 0;
}
