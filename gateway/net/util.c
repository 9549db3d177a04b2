/* Clock, logging, address parsing and small text helpers for gateway/. */
#include "gateway/net/net.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>

int sr_log_level = SR_LOG_INFO;

int64_t sr_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t sr_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void sr_log(int level, const char *fmt, ...)
{
    if (level > sr_log_level) {
        return;
    }
    static const char *names[] = {"error", "warn", "info", "debug"};
    char ts[SR_RFC3339_LEN];
    sr_time_format(ts, sr_now_ms());
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    fprintf(stderr, "%s %s %s\n", ts, names[level < 0 ? 0 : level > 3 ? 3 : level], msg);
}

int sr_parse_hostport(struct sockaddr_storage *ss, int *sslen, const char *text, char *err,
                      size_t errlen)
{
    char buf[256];
    const char *t = text;
    if (!strncmp(t, "http://", 7)) {
        t += 7;
    } else if (strstr(t, "://")) {
        snprintf(err, errlen, "'%s': only http:// (h2c) origins are supported", text);
        return SR_ERR_CONFIG;
    }
    snprintf(buf, sizeof(buf), "%s", t);
    char *slash = strchr(buf, '/');
    if (slash) {
        if (slash[1] != 0) {
            snprintf(err, errlen, "'%s': an origin takes no path", text);
            return SR_ERR_CONFIG;
        }
        *slash = 0;
    }
    char *host = buf, *port;
    if (buf[0] == '[') {
        char *close = strchr(buf, ']');
        if (!close || close[1] != ':') {
            snprintf(err, errlen, "'%s': expected [IPV6]:PORT", text);
            return SR_ERR_CONFIG;
        }
        *close = 0;
        host = buf + 1;
        port = close + 2;
    } else {
        port = strrchr(buf, ':');
        if (!port) {
            snprintf(err, errlen, "'%s': expected HOST:PORT", text);
            return SR_ERR_CONFIG;
        }
        *port++ = 0;
    }
    int64_t pn;
    if (sr_parse_i64(&pn, port, strlen(port)) != 0 || pn < 0 || pn > 65535) {
        snprintf(err, errlen, "'%s': port must be 0..65535", text);
        return SR_ERR_CONFIG;
    }
    struct addrinfo hints = {
        .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    int rv = getaddrinfo(host, port, &hints, &res);
    if (rv != 0 || !res) {
        snprintf(err, errlen, "'%s': cannot resolve host '%s': %s", text, host, gai_strerror(rv));
        return SR_ERR_CONFIG;
    }
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    *sslen = (int)res->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}

int sr_query_get(const char *path, const char *key, char *out, size_t outlen)
{
    if (outlen == 0) {
        return SR_ERR_TOOBIG;
    }
    const char *q = strchr(path, '?');
    if (!q) {
        return SR_ERR_NOTFOUND;
    }
    size_t klen = strlen(key);
    for (const char *p = q + 1; *p;) {
        const char *amp = strchr(p, '&');
        size_t seg = amp ? (size_t)(amp - p) : strlen(p);
        if (seg > klen && !strncmp(p, key, klen) && p[klen] == '=') {
            size_t o = 0;
            for (size_t i = klen + 1; i < seg; i++) {
                char ch = p[i];
                if (ch == '+') {
                    ch = ' ';
                } else if (ch == '%' && i + 2 < seg + 1 && sr_hexval(p[i + 1]) >= 0 &&
                           sr_hexval(p[i + 2]) >= 0) {
                    ch = (char)(sr_hexval(p[i + 1]) * 16 + sr_hexval(p[i + 2]));
                    i += 2;
                    if (ch == 0) {
                        return SR_ERR_PARSE; /* "%00" would cut the value short */
                    }
                }
                if (o + 1 >= outlen) {
                    return SR_ERR_TOOBIG;
                }
                out[o++] = ch;
            }
            out[o] = 0;
            return 0;
        }
        if (seg == klen && !strncmp(p, key, klen)) {
            if (outlen) {
                out[0] = 0;
            }
            return 0;
        }
        p += seg + (amp ? 1 : 0);
    }
    return SR_ERR_NOTFOUND;
}

int sr_path_relative(char *out, size_t outlen, const char *base_file, const char *path)
{
    int n;
    if (path[0] == '/' || !base_file) {
        n = snprintf(out, outlen, "%s", path);
    } else {
        const char *slash = strrchr(base_file, '/');
        if (!slash) {
            n = snprintf(out, outlen, "%s", path);
        } else {
            n = snprintf(out, outlen, "%.*s/%s", (int)(slash - base_file), base_file, path);
        }
    }
    return (n < 0 || (size_t)n >= outlen) ? SR_ERR_TOOBIG : 0;
}

void sr_getopt_error(char *out, size_t outlen, char **argv, int optind_now, int optopt_now)
{
    /* the word as typed: "--id" (missing its argument) or "--bogus"; getopt's
     * optopt would turn a long option into its short code */
    (void)optopt_now;
    snprintf(out, outlen, "option '%s' is unknown or needs an argument",
             optind_now > 0 ? argv[optind_now - 1] : "?");
}
