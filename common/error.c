/* The one table of error phrases: adding a code means adding a row here. */
#include "common/common.h"

#include <stddef.h>

struct err_row {
    int code;
    const char *name;
    const char *text;
};

static const struct err_row err_table[] = {
    {SR_OK, "ok", "success"},
    {SR_ERR_INVAL, "inval", "invalid argument"},
    {SR_ERR_NOMEM, "nomem", "out of memory"},
    {SR_ERR_IO, "io", "input/output error"},
    {SR_ERR_PARSE, "parse", "malformed input"},
    {SR_ERR_RANGE, "range", "value out of range"},
    {SR_ERR_NOTFOUND, "notfound", "not found"},
    {SR_ERR_EXISTS, "exists", "already exists"},
    {SR_ERR_TOOBIG, "toobig", "too large"},
    {SR_ERR_CHECKSUM, "checksum", "checksum mismatch"},
    {SR_ERR_UNSUPPORTED, "unsupported", "not supported"},
    {SR_ERR_FULL, "full", "capacity exhausted"},
    {SR_ERR_TIMEOUT, "timeout", "deadline passed"},
    {SR_ERR_UNAVAILABLE, "unavailable", "no target available"},
    {SR_ERR_CONFIG, "config", "configuration error"},
    {SR_ERR_KEY, "key", "malformed or unusable key"},
    {SR_ERR_CANCELLED, "cancelled", "operation cancelled"},
    {SR_ERR_PROTO, "proto", "protocol violation"},
    {SR_ERR_ENV_FORMAT, "env_format", "envelope is not [\"SR1\", body, signer, sig]"},
    {SR_ERR_ENV_TRUNCATED, "env_truncated", "envelope is truncated"},
    {SR_ERR_ENV_OVERSIZE, "env_oversize", "envelope declares a length over the limit"},
    {SR_ERR_ENV_VERSION, "env_version", "unsupported envelope version"},
    {SR_ERR_ENV_UNTRUSTED, "env_untrusted", "envelope signer is not trusted"},
    {SR_ERR_ENV_BADSIG, "env_badsig", "envelope signature does not verify"},
    {SR_ERR_ENV_BODY, "env_body", "envelope body is malformed"},
    {SR_ERR_ENV_EXPIRED, "env_expired", "envelope has expired"},
    {SR_ERR_ENV_MISADDRESSED, "env_misaddressed", "envelope is addressed to another receiver"},
    {SR_ERR_ENV_REPLAY, "env_replay", "envelope id was already seen (replay)"},
    {SR_ERR_ENV_KIND, "env_kind", "envelope kind not acceptable here"},
    {SR_ERR_ENV_TRAILING, "env_trailing", "bytes follow the envelope"},
    {SR_ERR_ELEM_FORMAT, "elem_format", "malformed orbital elements"},
    {SR_ERR_ELEM_CHECKSUM, "elem_checksum", "TLE checksum mismatch"},
    {SR_ERR_SGP4_ECC, "sgp4_ecc", "SGP4 error 1: mean eccentricity out of range"},
    {SR_ERR_SGP4_MEANMOTION, "sgp4_meanmotion", "SGP4 error 2: mean motion negative"},
    {SR_ERR_SGP4_PERTECC, "sgp4_pertecc", "SGP4 error 3: perturbed eccentricity out of range"},
    {SR_ERR_SGP4_SEMILATUS, "sgp4_semilatus", "SGP4 error 4: semi-latus rectum negative"},
    {SR_ERR_SGP4_SUBORBITAL, "sgp4_suborbital", "SGP4 error 5: epoch elements are sub-orbital"},
    {SR_ERR_SGP4_DECAYED, "sgp4_decayed", "SGP4 error 6: satellite has decayed"},
};

static const struct err_row *err_find(int code)
{
    for (size_t i = 0; i < sizeof(err_table) / sizeof(err_table[0]); i++) {
        if (err_table[i].code == code) {
            return &err_table[i];
        }
    }
    return NULL;
}

const char *sr_strerror(int code)
{
    const struct err_row *r = err_find(code);
    return r ? r->text : "unknown error";
}

const char *sr_errname(int code)
{
    const struct err_row *r = err_find(code);
    return r ? r->name : "unknown";
}
