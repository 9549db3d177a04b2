/* What the subcommands share: usage complaints and reading standard input. */
#include "gateway/cli/cli.h"
#include "common/common.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int sr_cli_usage_error(const char *sub, const char *usage, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "skyroute %s: ", sub);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n%s", usage);
    return 2;
}

int sr_cli_read_stdin(uint8_t **data, size_t *len, size_t max)
{
    sr_buf b;
    sr_buf_init(&b, max);
    for (;;) {
        int rv = sr_buf_reserve(&b, 65536);
        if (rv == SR_ERR_TOOBIG && b.len < max) {
            rv = sr_buf_reserve(&b, max - b.len);
        }
        if (rv) {
            sr_buf_free(&b);
            return rv;
        }
        size_t room = b.cap - b.len - 1;
        ssize_t n = read(STDIN_FILENO, b.data + b.len, room);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            sr_buf_free(&b);
            return SR_ERR_IO;
        }
        if (n == 0) {
            break;
        }
        b.len += (size_t)n;
        if (b.len == max) {
            char extra;
            if (read(STDIN_FILENO, &extra, 1) > 0) {
                sr_buf_free(&b);
                return SR_ERR_TOOBIG;
            }
            break;
        }
    }
    if (!b.data) {
        b.data = malloc(1);
        if (!b.data) {
            return SR_ERR_NOMEM;
        }
    }
    *data = b.data;
    *len = b.len;
    return 0;
}
