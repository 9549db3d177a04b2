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
    uint8_t *p = realloc(b->data, ncap);
    if (!p) {
        return SR_ERR_NOMEM;
    }
    b->data = p;
    b->cap = ncap;
    return 0;
}

int sr_buf_append(sr_buf *b, const void *p, size_t n)
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

int sr_buf_append_json_str(sr_buf *b, const char *s, size_t n)
{
    static const char hexd[] = "0123456789abcdef";
    int rv = sr_buf_append(b, "\"", 1);
    for (size_t i = 0; rv == 0 && i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            char e[2] = {'\\', (char)c};
            rv = sr_buf_append(b, e, 2);
        } else if (c < 0x20 || c == 0x7f) {
            char e[6] = {'\\', 'u', '0', '0', hexd[c >> 4], hexd[c & 15]};
            rv = sr_buf_append(b, e, 6);
        } else {
            rv = sr_buf_append(b, &s[i], 1);
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

static int hexval(char c)
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
        int hi = hexval(s[2 * i]), lo = hexval(s[2 * i + 1]);
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
