/*
 * skyroute common: the one error enum, UTC time formatting, and a bounded
 * growable byte buffer. Every module may include this header; it does no I/O
 * and never reads the clock.
 */
#ifndef SR_COMMON_H
#define SR_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#if defined(__GNUC__)
#define SR_WARN_UNUSED __attribute__((warn_unused_result))
#define SR_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define SR_WARN_UNUSED
#define SR_PRINTF(a, b)
#endif

/*
 * Error codes. 0 is success; every failure is negative. Codes are grouped by
 * the layer that usually returns them, but any module may return any code.
 * sr_strerror() gives a short English phrase for each.
 */
typedef enum {
    SR_OK = 0,
    /* general */
    SR_ERR_INVAL = -1,        /* invalid argument */
    SR_ERR_NOMEM = -2,        /* out of memory */
    SR_ERR_IO = -3,           /* I/O error (errno says more) */
    SR_ERR_PARSE = -4,        /* malformed input */
    SR_ERR_RANGE = -5,        /* value out of range */
    SR_ERR_NOTFOUND = -6,     /* no such item */
    SR_ERR_EXISTS = -7,       /* already exists */
    SR_ERR_TOOBIG = -8,       /* over a size limit */
    SR_ERR_CHECKSUM = -9,     /* checksum mismatch */
    SR_ERR_UNSUPPORTED = -10, /* valid but not supported */
    SR_ERR_FULL = -11,        /* capacity exhausted */
    SR_ERR_TIMEOUT = -12,     /* deadline passed */
    SR_ERR_UNAVAILABLE = -13, /* no target / peer unreachable */
    SR_ERR_CONFIG = -14,      /* configuration error */
    SR_ERR_KEY = -15,         /* malformed or unusable key */
    SR_ERR_CANCELLED = -16,   /* operation cancelled */
    SR_ERR_PROTO = -17,       /* protocol violation by a peer */

    /* envelope (crypto/) */
    SR_ERR_ENV_FORMAT = -100,       /* outer structure is not ["SR1", bin, bin(8), bin(64)] */
    SR_ERR_ENV_TRUNCATED = -101,    /* input ends inside a value */
    SR_ERR_ENV_OVERSIZE = -102,     /* a declared length exceeds the limit */
    SR_ERR_ENV_VERSION = -103,      /* magic is not "SR1" or v != 1 */
    SR_ERR_ENV_UNTRUSTED = -104,    /* signer not in the trusted ring */
    SR_ERR_ENV_BADSIG = -105,       /* signature does not verify */
    SR_ERR_ENV_BODY = -106,         /* signed body is not a valid body map */
    SR_ERR_ENV_EXPIRED = -107,      /* exp is in the past */
    SR_ERR_ENV_MISADDRESSED = -108, /* dst is not this receiver */
    SR_ERR_ENV_REPLAY = -109,       /* id already seen */
    SR_ERR_ENV_KIND = -110,         /* kind not acceptable here */
    SR_ERR_ENV_TRAILING = -111,     /* bytes after the envelope */

    /* orbital elements and propagation (linkmodels/) */
    SR_ERR_ELEM_FORMAT = -200,     /* element set malformed (see message for line/field) */
    SR_ERR_ELEM_CHECKSUM = -201,   /* TLE line checksum wrong */
    SR_ERR_SGP4_ECC = -202,        /* Vallado error 1: mean elements, ecc >= 1 or < -0.001 */
    SR_ERR_SGP4_MEANMOTION = -203, /* Vallado error 2: mean motion < 0 */
    SR_ERR_SGP4_PERTECC = -204,    /* Vallado error 3: perturbed ecc out of [0,1] */
    SR_ERR_SGP4_SEMILATUS = -205,  /* Vallado error 4: semi-latus rectum < 0 */
    SR_ERR_SGP4_SUBORBITAL = -206, /* Vallado error 5: epoch elements sub-orbital */
    SR_ERR_SGP4_DECAYED = -207,    /* Vallado error 6: satellite has decayed */
} sr_error;

/* Returns a static, non-NULL description of |code| ("unknown error" if none). */
const char *sr_strerror(int code);

/* Short stable token for |code| (e.g. "env_badsig"), for metrics labels and JSON. */
const char *sr_errname(int code);

/* ---- time (DESIGN section 4) -------------------------------------------- */

/* Formats |ms| (milliseconds since the Unix epoch, UTC) as RFC 3339 with
 * milliseconds, e.g. "2026-11-22T14:03:10.250Z". |out| must hold
 * SR_RFC3339_LEN bytes. Returns the string length (24) or SR_ERR_RANGE for
 * years outside 0000..9999. */
#define SR_RFC3339_LEN 32
int sr_time_format(char out[SR_RFC3339_LEN], int64_t ms);

/* Parses an RFC 3339 / ISO 8601 UTC timestamp into ms since the epoch.
 * Accepts "YYYY-MM-DDTHH:MM:SS[.fff...](Z|+HH:MM|-HH:MM)" and a space in place
 * of 'T'; without a zone designator the time is taken as UTC. Fractions beyond
 * milliseconds are rounded to the nearest ms. Returns 0 or SR_ERR_PARSE /
 * SR_ERR_RANGE. |len| may be (size_t)-1 for a NUL-terminated string. */
int sr_time_parse(int64_t *ms, const char *s, size_t len);

/* Days since 1970-01-01 for a proleptic Gregorian civil date. */
int64_t sr_days_from_civil(int64_t y, unsigned m, unsigned d);

/* ---- bounded buffer ------------------------------------------------------ */

/* A growable byte buffer with a ceiling (curl's dynbuf idea). Zero-initialise
 * with sr_buf_init(); sr_buf_free() releases and resets it. */
typedef struct sr_buf_s {
    uint8_t *data;
    size_t len;
    size_t cap;
    size_t max; /* appends beyond this fail with SR_ERR_TOOBIG */
} sr_buf;

void sr_buf_init(sr_buf *b, size_t max);
void sr_buf_free(sr_buf *b);
void sr_buf_reset(sr_buf *b); /* len = 0, memory kept */
/* Ensures room for |extra| more bytes. SR_ERR_TOOBIG or SR_ERR_NOMEM on failure
 * (the buffer is unchanged). */
int sr_buf_reserve(sr_buf *b, size_t extra) SR_WARN_UNUSED;
static inline int sr_buf_append(sr_buf *b, const void *p, size_t n) SR_WARN_UNUSED;
/* sr_buf_append() when the room is not there yet (grows, or fails). */
int sr_buf_append_grow(sr_buf *b, const void *p, size_t n) SR_WARN_UNUSED;
int sr_buf_appendf(sr_buf *b, const char *fmt, ...) SR_PRINTF(2, 3) SR_WARN_UNUSED;
/* Appends |s| as a JSON string literal (with quotes and escapes). */
int sr_buf_append_json_str(sr_buf *b, const char *s, size_t n) SR_WARN_UNUSED;
/* Appends a NUL without counting it in len, so data can be used as a C string. */
int sr_buf_terminate(sr_buf *b) SR_WARN_UNUSED;

/* Appends |n| bytes. Inline: it runs dozens of times per request (msgpack
 * fields, log line pieces), and when there is room (len + n + 1 <= cap and
 * len + n <= max, sr_buf_reserve's tests) it is one copy. */
static inline int sr_buf_append(sr_buf *b, const void *p, size_t n)
{
    if (n && b->cap - b->len > n && b->len + n <= b->max) { /* n == 0: |p| may be NULL */
        memcpy(b->data + b->len, p, n);
        b->len += n;
        return 0;
    }
    return sr_buf_append_grow(b, p, n);
}

/* ---- formatting without printf ------------------------------------------------ */

/* Hand-written formatters for the per-request paths (access log, response
 * headers, metrics labels): the same bytes as the printf conversions named,
 * for a fraction of the instructions. */

#define SR_FMT_U64_LEN 21   /* 20 digits and a NUL */
#define SR_FMT_I64_LEN 21   /* sign, 19 digits and a NUL */
#define SR_FMT_FIXED_LEN 32 /* what sr_fmt_fixed() needs to use its fast path */

/* Decimal digits of |v|, as "%llu" would print them, NUL-terminated. Returns
 * the length (1..20). */
size_t sr_fmt_u64(char out[SR_FMT_U64_LEN], uint64_t v);
/* As "%lld". Returns the length (1..20). */
size_t sr_fmt_i64(char out[SR_FMT_I64_LEN], int64_t v);
/* Stores what snprintf(out, size, "%.*f", decimals, v) would store, including
 * its truncation to size - 1 characters, and returns the length stored (not
 * the untruncated length). Rounds exactly as glibc does in the default
 * rounding mode: the exact binary value to nearest, ties to even (0.25 gives
 * "0.2", -0.01 gives "-0.0"). Finite |v| < 2^53 with 0..3 decimals and
 * size >= SR_FMT_FIXED_LEN are formatted here; anything else (NaN, inf,
 * larger values, more decimals, a small |out|) is handed to snprintf. */
size_t sr_fmt_fixed(char *out, size_t size, double v, int decimals);
/* What snprintf(dst, size, "%s", src) stores: |src| truncated to size - 1
 * bytes, NUL-terminated (nothing when size is 0). Returns the length stored. */
size_t sr_str_copy(char *dst, size_t size, const char *src);

/* Appends like sr_buf_appendf(b, "%llu" / "%lld" / "%.*f", ...) would.
 * 0, SR_ERR_TOOBIG or SR_ERR_NOMEM. */
int sr_buf_append_u64(sr_buf *b, uint64_t v) SR_WARN_UNUSED;
int sr_buf_append_i64(sr_buf *b, int64_t v) SR_WARN_UNUSED;
int sr_buf_append_fixed(sr_buf *b, double v, int decimals) SR_WARN_UNUSED;
/* sr_buf_append_fixed(b, v, 1): "%.1f", the access log's milliseconds. */
int sr_buf_append_fixed1(sr_buf *b, double v) SR_WARN_UNUSED;
/* Appends the NUL-terminated |s| (without its NUL). */
int sr_buf_append_str(sr_buf *b, const char *s) SR_WARN_UNUSED;

/* ---- small helpers --------------------------------------------------------- */

/* Lowercase hex of |n| bytes into |out| (2n+1 bytes, NUL-terminated). */
void sr_hex(char *out, const uint8_t *p, size_t n);
/* The value of hex digit |c| (either case), or -1 if it is not one. */
int sr_hexval(char c);
/* Parses exactly 2n hex digits into |out|. 0 or SR_ERR_PARSE. */
int sr_unhex(uint8_t *out, size_t n, const char *s, size_t slen);

/* Strict decimal parsers: whole string, no sign surprises, no overflow.
 * 0, SR_ERR_PARSE or SR_ERR_RANGE. */
int sr_parse_i64(int64_t *out, const char *s, size_t len);
int sr_parse_double(double *out, const char *s, size_t len); /* finite only */

#endif /* SR_COMMON_H */
