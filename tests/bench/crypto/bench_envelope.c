/*
 * What a signed envelope costs its sender and its receiver, per envelope, on
 * this machine: batches of N envelopes with a SIZE-byte payload sealed with
 * sr_envelope_seal_batch() (N = 1: sr_envelope_seal_one(), one signature
 * each), then each opened on its own through a fresh root cache, in order, as
 * a receiver gets them. Thread CPU time, one core, no I/O. One line per N:
 *
 *     batch 32 size 1024 seal_us 2.10 open_us 2.75 hashes_saved 3.16
 *
 * open_us includes the batch's one signature verification; hashes_saved is
 * the inner-node hashes per open that the cache's shortcut left out.
 *
 * usage: bench_envelope [SECONDS_PER_MEASUREMENT] [SIZE] [N...]
 *        (default 1.0, 1024, 1 32 128)
 */
#include "crypto/crypto.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int measure(const sr_key *key, const sr_keyring *ring, double secs, size_t size, size_t n)
{
    uint8_t *payload = calloc(1, size ? size : 1);
    struct sr_envelope *envs = calloc(n, sizeof(*envs));
    sr_buf *outs = calloc(n, sizeof(*outs));
    if (!payload || !envs || !outs) {
        return 1;
    }
    for (size_t i = 0; i < n; i++) {
        envs[i] = (struct sr_envelope){.kind = SR_KIND_WORKLOAD,
                                       .iat = 1,
                                       .exp = INT64_MAX / 2,
                                       .payload = payload,
                                       .payload_len = size};
        sr_envelope_new_id(envs[i].id);
        snprintf(envs[i].src, sizeof(envs[i].src), "gs-bench");
        snprintf(envs[i].dst, sizeof(envs[i].dst), "node-bench");
        snprintf(envs[i].handler, sizeof(envs[i].handler), "echo");
        sr_buf_init(&outs[i], size + 65536);
    }
    struct sr_open_opts o = {.trust = ring, .self_id = "node-bench", .now_ms = 2};
    double seal = 0, open = 0;
    long batches = 0;
    uint64_t saved = 0;
    int bad = 0;
    double t_end = cpu_s() + secs;
    do {
        for (size_t i = 0; i < n; i++) {
            sr_buf_reset(&outs[i]);
        }
        double t0 = cpu_s();
        bad |= n == 1 ? sr_envelope_seal_one(&outs[0], key, &envs[0])
                      : sr_envelope_seal_batch(outs, key, envs, n);
        double t1 = cpu_s();
        sr_rootcache *cache;
        if (sr_rootcache_new(&cache) != 0) {
            return 1;
        }
        o.roots = cache;
        for (size_t i = 0; i < n; i++) {
            struct sr_envelope out;
            bad |= sr_envelope_open(&out, outs[i].data, outs[i].len, &o, NULL, 0);
        }
        double t2 = cpu_s();
        saved += sr_rootcache_hashes_saved(cache);
        sr_rootcache_free(cache);
        seal += t1 - t0;
        open += t2 - t1;
        batches++;
    } while (cpu_s() < t_end);
    for (size_t i = 0; i < n; i++) {
        sr_buf_free(&outs[i]);
    }
    free(outs);
    free(envs);
    free(payload);
    if (bad) {
        fprintf(stderr, "bench_envelope: a seal or an open failed\n");
        return 1;
    }
    double per = (double)batches * (double)n;
    printf("batch %zu size %zu seal_us %.2f open_us %.2f hashes_saved %.2f\n", n, size,
           seal * 1e6 / per, open * 1e6 / per, (double)saved / per);
    return 0;
}

int main(int argc, char **argv)
{
    double secs = argc > 1 ? atof(argv[1]) : 1.0;
    size_t size = argc > 2 ? (size_t)strtoul(argv[2], NULL, 10) : 1024;
    size_t ns[16] = {1, 32, 128};
    int count = 3;
    if (argc > 3) {
        count = 0;
        for (int i = 3; i < argc && count < 16; i++) {
            ns[count++] = (size_t)strtoul(argv[i], NULL, 10);
        }
    }
    if (secs <= 0 || size > (64u << 20)) {
        fprintf(stderr, "usage: bench_envelope [SECONDS > 0] [SIZE <= 64 MiB] [N...]\n");
        return 2;
    }
    for (int i = 0; i < count; i++) {
        if (ns[i] < 1 || ns[i] > SR_ENV_BATCH_MAX) {
            fprintf(stderr, "bench_envelope: N must be in [1, %d], not %zu\n", SR_ENV_BATCH_MAX,
                    ns[i]);
            return 2;
        }
    }
    uint8_t seed[32] = {1};
    sr_key *key;
    sr_keyring *ring;
    if (sr_crypto_init() != 0 || sr_key_from_seed(&key, seed) != 0 || sr_keyring_new(&ring) != 0 ||
        sr_keyring_add(ring, sr_key_public(key), "gs-bench") != 0) {
        fprintf(stderr, "bench_envelope: cannot set up keys\n");
        return 1;
    }
    int rv = 0;
    for (int i = 0; i < count && rv == 0; i++) {
        rv = measure(key, ring, secs, size, ns[i]);
    }
    sr_keyring_free(ring);
    sr_key_free(key);
    return rv;
}
