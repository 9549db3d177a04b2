/*
 * libFuzzer harness for sr_config_load().
 *
 * The input is written to DIR/fuzz.ini in a scratch directory made once, and
 * loaded; a successful load is freed. Public key paths will rarely resolve,
 * which is fine: the interest is the INI reader, the line tracking and the
 * value checks. Whatever happens, the error text must name the file.
 *
 * Addresses in a config go through getaddrinfo(); so that a fuzzed host name
 * never becomes a DNS query, this harness replaces getaddrinfo() with one that
 * only accepts numeric hosts (AI_NUMERICHOST) and then calls the C library's.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <netdb.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gateway/config/config.h"
#include "gateway/net/net.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
                struct addrinfo **res);

typedef int (*getaddrinfo_fn)(const char *, const char *, const struct addrinfo *,
                              struct addrinfo **);

int getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
                struct addrinfo **res)
{
    static getaddrinfo_fn real;
    if (!real) {
        real = (getaddrinfo_fn)dlsym(RTLD_NEXT, "getaddrinfo");
        if (!real) {
            abort();
        }
    }
    struct addrinfo h;
    memset(&h, 0, sizeof(h));
    if (hints) {
        h = *hints;
    }
    h.ai_flags |= AI_NUMERICHOST;
    return real(node, service, &h, res);
}

static char path[96];

static char dir[64];

static void cleanup(void)
{
    unlink(path);
    rmdir(dir);
}

static void init(void)
{
    /* tmpfs when there is one: the harness writes a file per input */
    snprintf(dir, sizeof(dir), "%s/sr-fuzz-config-XXXXXX",
             access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
    if (!mkdtemp(dir)) {
        abort();
    }
    snprintf(path, sizeof(path), "%s/fuzz.ini", dir);
    atexit(cleanup);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!path[0]) {
        init();
    }
    FILE *f = fopen(path, "wb");
    if (!f) {
        abort();
    }
    if (size && fwrite(data, 1, size, f) != size) {
        abort();
    }
    if (fclose(f) != 0) {
        abort();
    }
    struct sr_config *cfg = NULL;
    char err[600];
    err[0] = 0;
    int rv = sr_config_load(&cfg, path, err, sizeof(err));
    if (rv == 0) {
        if (!cfg) {
            abort();
        }
        sr_config_free(cfg);
    } else if (cfg || strncmp(err, path, strlen(path)) != 0) {
        abort(); /* a failure leaves *out alone and names the file */
    }
    return 0;
}
