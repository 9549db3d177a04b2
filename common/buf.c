/* Bounded growable buffer and small text helpers. */
#include "common/common.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void sr_buf_init(sr_buf *b, size_t max)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    b->max = max;
}

void sr_buf_free(sr_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}

void sr_buf_reset(sr_buf *b)
{
    b->len = 0;
}

int sr_buf_reserve(sr_buf *b, size_t extra)
{
    /* +1 keeps room for sr_buf_terminate() without another allocation */
    if (extra > b->max || b->len > b->max - extra) {
        return SR_ERR_TOOBIG;
    }
    size_t need = b->len + extra + 1;
    if (need <= b->cap) {
        return 0;
    }
    size_t ncap = b->cap ? b->cap : 256;
    while (ncap < need) {
        ncap = ncap > SIZE_MAX / 2 ? need : ncap * 2;
    }
    if (b->cap == 0 && need > 256) {
        /* a first reservation is taken as the size wanted (an envelope
         * sealed into a fresh buffer): no power-of-two slack, which a kept
         * buffer (a node's replay guard holds every result) would waste */
        ncap = need;
    }
    uint8_t *p = realloc(b->data, ncap);
    if (!p) {
        return SR_ERR_NOMEM;
    }
    b->data = p;
    b->cap = ncap;
    return 0;
}

int sr_buf_append_grow(sr_buf *b, const void *p, size_t n)
{
    int rv = sr_buf_reserve(b, n);
    if (rv) {
        return rv;
    }
    if (n) {
        memcpy(b->data + b->len, p, n);
    }
    b->len += n;
    return 0;
}

int sr_buf_appendf(sr_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char tmp[256];
    int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    if (n < 0) {
        return SR_ERR_INVAL;
    }
    if ((size_t)n < sizeof(tmp)) {
        return sr_buf_append(b, tmp, (size_t)n);
    }
    int rv = sr_buf_reserve(b, (size_t)n);
    if (rv) {
        return rv;
    }
    va_start(ap, fmt);
    vsnprintf((char *)b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return 0;
}

/* Bytes a JSON string literal carries as they are. */
static int json_plain(unsigned char c)
{
    return c >= 0x20 && c != 0x7f && c != '"' && c != '\\';
}

int sr_buf_append_json_str(sr_buf *b, const char *s, size_t n)
{
    static const char hexd[] = "0123456789abcdef";
    int rv = sr_buf_append(b, "\"", 1);
    size_t i = 0;
    while (rv == 0 && i < n) {
        /* a run of plain bytes goes in with one append */
        size_t j = i;
        while (j < n && json_plain((unsigned char)s[j])) {
            j++;
        }
        if (j > i) {
            rv = sr_buf_append(b, s + i, j - i);
            i = j;
            continue;
        }
        unsigned char c = (unsigned char)s[i++];
        if (c == '"' || c == '\\') {
            char e[2] = {'\\', (char)c};
            rv = sr_buf_append(b, e, 2);
        } else {
            char e[6] = {'\\', 'u', '0', '0', hexd[c >> 4], hexd[c & 15]};
            rv = sr_buf_append(b, e, 6);
        }
    }
    return rv ? rv : sr_buf_append(b, "\"", 1);
}

int sr_buf_terminate(sr_buf *b)
{
    int rv = sr_buf_reserve(b, 0);
    if (rv == 0) {
        b->data[b->len] = 0;
    }
    return rv;
}

void sr_hex(char *out, const uint8_t *p, size_t n)
{
    static const char hexd[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hexd[p[i] >> 4];
        out[2 * i + 1] = hexd[p[i] & 15];
    }
    out[2 * n] = '\0';
}

int sr_hexval(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

int sr_unhex(uint8_t *out, size_t n, const char *s, size_t slen)
{
    if (slen != 2 * n) {
        return SR_ERR_PARSE;
    }
    for (size_t i = 0; i < n; i++) {
        int hi = sr_hexval(s[2 * i]), lo = sr_hexval(s[2 * i + 1]);
        if (hi < 0 || lo < 0) {
            return SR_ERR_PARSE;
        }
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return 0;
}

int sr_parse_i64(int64_t *out, const char *s, size_t len)
{
    char tmp[32];
    if (!s || len == 0 || len >= sizeof(tmp)) {
        return SR_ERR_PARSE;
    }
    memcpy(tmp, s, len);
    tmp[len] = 0;
    if (!(tmp[0] == '-' || tmp[0] == '+' || (tmp[0] >= '0' && tmp[0] <= '9'))) {
        return SR_ERR_PARSE;
    }
    char *end;
    errno = 0;
    long long v = strtoll(tmp, &end, 10);
    if (end != tmp + len || end == tmp) {
        return SR_ERR_PARSE;
    }
    if (errno == ERANGE) {
        return SR_ERR_RANGE;
    }
    *out = v;
    return 0;
}

int sr_parse_double(double *out, const char *s, size_t len)
{
    char tmp[64];
    if (!s || len == 0 || len >= sizeof(tmp)) {
        return SR_ERR_PARSE;
    }
    memcpy(tmp, s, len);
    tmp[len] = 0;
    /* decimal only: strtod would also skip leading blanks and read hex ("0x1p4") */
    if (strpbrk(tmp, " \t\n\v\f\rxXpP")) {
        return SR_ERR_PARSE;
    }
    char *end;
    errno = 0;
    double v = strtod(tmp, &end);
    if (end != tmp + len) {
        return SR_ERR_PARSE;
    }
    if (!isfinite(v)) {
        return SR_ERR_RANGE;
    }
    *out = v;
    return 0;
}

/* ---- formatting without printf ------------------------------------------------------ */

/* "00" "01" ... "99": two digits per division */
static const char digit_pairs[201] = "00010203040506070809"
                                     "10111213141516171819"
                                     "20212223242526272829"
                                     "30313233343536373839"
                                     "40414243444546474849"
                                     "50515253545556575859"
                                     "60616263646566676869"
                                     "70717273747576777879"
                                     "80818283848586878889"
                                     "90919293949596979899";

size_t sr_fmt_u64(char out[SR_FMT_U64_LEN], uint64_t v)
{
    char tmp[SR_FMT_U64_LEN];
    char *p = tmp + sizeof(tmp);
    while (v >= 100) {
        unsigned d = (unsigned)(v % 100);
        v /= 100;
        p -= 2;
        memcpy(p, digit_pairs + 2 * d, 2);
    }
    if (v >= 10) {
        p -= 2;
        memcpy(p, digit_pairs + 2 * v, 2);
    } else {
        *--p = (char)('0' + v);
    }
    size_t n = (size_t)(tmp + sizeof(tmp) - p);
    memcpy(out, p, n);
    out[n] = '\0';
    return n;
}

size_t sr_fmt_i64(char out[SR_FMT_I64_LEN], int64_t v)
{
    if (v >= 0) {
        return sr_fmt_u64(out, (uint64_t)v);
    }
    /* 0 - (uint64_t)v is |v| also for INT64_MIN */
    char tmp[SR_FMT_U64_LEN];
    size_t n = sr_fmt_u64(tmp, 0 - (uint64_t)v);
    out[0] = '-';
    memcpy(out + 1, tmp, n + 1);
    return n + 1;
}

/*
 * The fast path of sr_fmt_fixed(): 0 if |v| is not a finite value below 2^53
 * or |decimals| is not 0..3, else the length written to |out| (which must hold
 * SR_FMT_FIXED_LEN bytes).
 *
 * Why this is exact: a double is m * 2^-s with an integer m < 2^53, so
 * v * 10^d = m * 10^d / 2^s, and m * 10^d < 2^63 fits a uint64_t. The
 * quotient and remainder of that division by 2^s are exact, and rounding the
 * quotient to nearest with ties to even is what glibc's printf does with the
 * exact binary value in the default rounding mode. The sign is printed
 * whenever the sign bit is set, "-0.0" included, as printf does.
 */
static size_t fixed_fast(char *out, double v, int decimals)
{
    static const uint64_t pow10[4] = {1, 10, 100, 1000};
    uint64_t bits;
    memcpy(&bits, &v, sizeof(bits));
    unsigned bexp = (unsigned)(bits >> 52) & 0x7ff;
    if (decimals < 0 || decimals > 3 || bexp >= 1023 + 53) {
        return 0; /* NaN, infinities and |v| >= 2^53 included */
    }
    uint64_t m = bits & ((UINT64_C(1) << 52) - 1);
    unsigned s; /* v = m / 2^s */
    if (bexp == 0) {
        s = 1074; /* zero and subnormals */
    } else {
        m |= UINT64_C(1) << 52;
        s = 1075 - bexp; /* >= 0: bexp < 1076 */
    }
    uint64_t x = m * pow10[decimals], q;
    if (s == 0) {
        q = x;
    } else if (s >= 64) {
        q = 0; /* x < 2^63 <= 2^(s-1): below one half */
    } else {
        q = x >> s;
        uint64_t rem = x & ((UINT64_C(1) << s) - 1), half = UINT64_C(1) << (s - 1);
        if (rem > half || (rem == half && (q & 1))) {
            q++;
        }
    }
    size_t n = 0;
    if (bits >> 63) {
        out[n++] = '-';
    }
    n += sr_fmt_u64(out + n, q / pow10[decimals]);
    if (decimals > 0) {
        uint64_t f = q % pow10[decimals];
        out[n++] = '.';
        for (int i = decimals - 1; i >= 0; i--) {
            out[n + (size_t)i] = (char)('0' + f % 10);
            f /= 10;
        }
        n += (size_t)decimals;
    }
    out[n] = '\0';
    return n;
}

size_t sr_fmt_fixed(char *out, size_t size, double v, int decimals)
{
    if (size >= SR_FMT_FIXED_LEN) {
        size_t n = fixed_fast(out, v, decimals);
        if (n) {
            return n;
        }
    }
    int n = snprintf(out, size, "%.*f", decimals, v);
    if (n < 0 || size == 0) {
        return 0;
    }
    return (size_t)n < size ? (size_t)n : size - 1;
}

size_t sr_str_copy(char *dst, size_t size, const char *src)
{
    if (size == 0) {
        return 0;
    }
    size_t n = strnlen(src, size - 1);
    memcpy(dst, src, n);
    dst[n] = '\0';
    return n;
}

int sr_buf_append_u64(sr_buf *b, uint64_t v)
{
    char tmp[SR_FMT_U64_LEN];
    return sr_buf_append(b, tmp, sr_fmt_u64(tmp, v));
}

int sr_buf_append_i64(sr_buf *b, int64_t v)
{
    char tmp[SR_FMT_I64_LEN];
    return sr_buf_append(b, tmp, sr_fmt_i64(tmp, v));
}

int sr_buf_append_fixed(sr_buf *b, double v, int decimals)
{
    char tmp[SR_FMT_FIXED_LEN];
    size_t n = fixed_fast(tmp, v, decimals);
    if (n == 0) {
        /* whatever length printf makes of it, untruncated */
        return sr_buf_appendf(b, "%.*f", decimals, v);
    }
    return sr_buf_append(b, tmp, n);
}

int sr_buf_append_fixed1(sr_buf *b, double v)
{
    return sr_buf_append_fixed(b, v, 1);
}

int sr_buf_append_str(sr_buf *b, const char *s)
{
    return sr_buf_append(b, s, strlen(s));
}
