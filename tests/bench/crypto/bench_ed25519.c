/*
 * The crypto bound of the gateway's workload path: how many Ed25519 signatures
 * and verifications per second libsodium does on this machine, over the
 * message the envelope code signs for a body of a given size
 * ("skyroute/v1\0" || body map; the map carries the payload and ~150 bytes of
 * fields). One core, no I/O. Prints one line per size:
 *
 *     size 1024 sign_per_s 41000 verify_per_s 16000 sign_us 24.4 verify_us 62.1
 *
 * usage: bench_ed25519 [SECONDS_PER_MEASUREMENT] [SIZE...]   (default 1.0, 1024 65536)
 *        bench_ed25519 busy SECONDS SIZE   one sign + one verify after another for SECONDS,
 *                                      printing the CPU time of this thread per pair
 *                                      (run several at once: the bound on a busy machine)
 *        bench_ed25519 pubkeys N DIR   writes DIR/k0.pub ... DIR/k{N-1}.pub, fresh keys
 *                                      (for a configuration with N satellites)
 */
/* the one-shot SHA256_* functions, as crypto/merkle.c uses them */
#define OPENSSL_SUPPRESS_DEPRECATED
#include <openssl/sha.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define ENV_OVERHEAD 160 /* sealed body map around the payload, roughly */

/* seconds on |clock|: CLOCK_MONOTONIC, or this thread's CPU time */
static double clock_s(clockid_t clock)
{
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double now_s(void)
{
    return clock_s(CLOCK_MONOTONIC);
}

/* sign + verify pairs for |secs| of wall time; CPU time per pair, so that
 * what other processes on the same cores run in between is not counted,
 * only what it does to this one's caches and time slices */
static int busy(double secs, size_t size)
{
    size_t len = 12 + size + ENV_OVERHEAD;
    unsigned char *msg = malloc(len);
    unsigned char pk[crypto_sign_PUBLICKEYBYTES], sk[crypto_sign_SECRETKEYBYTES];
    unsigned char sig[crypto_sign_BYTES];
    if (!msg || secs <= 0) {
        free(msg);
        return 1;
    }
    crypto_sign_keypair(pk, sk);
    randombytes_buf(msg, len);
    int bad = 0;
    long n = 0;
    double w0 = now_s(), c0 = clock_s(CLOCK_THREAD_CPUTIME_ID);
    do {
        msg[0] = (unsigned char)n;
        crypto_sign_detached(sig, NULL, msg, len, sk);
        bad |= crypto_sign_verify_detached(sig, msg, len, pk);
        n++;
    } while (now_s() - w0 < secs);
    double cpu = clock_s(CLOCK_THREAD_CPUTIME_ID) - c0;
    free(msg);
    if (bad) {
        fprintf(stderr, "verification failed\n");
        return 1;
    }
    printf("busy size %zu pairs %ld pair_us %.2f\n", size, n, cpu * 1e6 / (double)n);
    return 0;
}

static int write_pubkeys(long n, const char *dir)
{
    for (long i = 0; i < n; i++) {
        unsigned char pk[crypto_sign_PUBLICKEYBYTES], sk[crypto_sign_SECRETKEYBYTES];
        char b64[sodium_base64_ENCODED_LEN(crypto_sign_PUBLICKEYBYTES,
                                           sodium_base64_VARIANT_ORIGINAL)];
        char path[4096];
        crypto_sign_keypair(pk, sk);
        sodium_memzero(sk, sizeof(sk));
        sodium_bin2base64(b64, sizeof(b64), pk, sizeof(pk), sodium_base64_VARIANT_ORIGINAL);
        snprintf(path, sizeof(path), "%s/k%ld.pub", dir, i);
        FILE *f = fopen(path, "w");
        if (!f || fprintf(f, "ed25519:%s\n", b64) < 0 || fclose(f) != 0) {
            perror(path);
            return 1;
        }
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 4 && !strcmp(argv[1], "pubkeys")) {
        if (sodium_init() < 0) {
            return 1;
        }
        return write_pubkeys(strtol(argv[2], NULL, 10), argv[3]);
    }
    if (argc == 4 && !strcmp(argv[1], "busy")) {
        if (sodium_init() < 0) {
            return 1;
        }
        return busy(atof(argv[2]), (size_t)strtoul(argv[3], NULL, 10));
    }
    double secs = argc > 1 ? atof(argv[1]) : 1.0;
    if (secs <= 0) {
        secs = 1.0;
    }
    size_t sizes[16] = {1024, 65536};
    int nsizes = 2;
    if (argc > 2) {
        nsizes = 0;
        for (int i = 2; i < argc && nsizes < 16; i++) {
            sizes[nsizes++] = (size_t)strtoul(argv[i], NULL, 10);
        }
    }
    if (sodium_init() < 0) {
        fprintf(stderr, "sodium_init failed\n");
        return 1;
    }
    unsigned char pk[crypto_sign_PUBLICKEYBYTES], sk[crypto_sign_SECRETKEYBYTES];
    crypto_sign_keypair(pk, sk);
    for (int s = 0; s < nsizes; s++) {
        size_t len = 12 + sizes[s] + ENV_OVERHEAD;
        unsigned char *msg = malloc(len);
        if (!msg) {
            return 1;
        }
        randombytes_buf(msg, len);
        unsigned char sig[crypto_sign_BYTES];
        volatile int bad = 0;

        long n = 0;
        double t0 = now_s(), t1;
        do {
            for (int i = 0; i < 32; i++) {
                msg[0] = (unsigned char)n;
                crypto_sign_detached(sig, NULL, msg, len, sk);
                n++;
            }
            t1 = now_s();
        } while (t1 - t0 < secs);
        double sign_rate = (double)n / (t1 - t0);

        crypto_sign_detached(sig, NULL, msg, len, sk);
        n = 0;
        t0 = now_s();
        do {
            for (int i = 0; i < 32; i++) {
                bad |= crypto_sign_verify_detached(sig, msg, len, pk);
                n++;
            }
            t1 = now_s();
        } while (t1 - t0 < secs);
        double verify_rate = (double)n / (t1 - t0);
        if (bad) {
            fprintf(stderr, "verification failed\n");
            return 1;
        }
        /* batched envelopes (SR2): each body is hashed once into a SHA-256
         * leaf by the sealer and once by the opener (OpenSSL, as
         * crypto/merkle.c does it); one sign and one verify of a 45-byte
         * root message per batch */
        unsigned char leaf[32], tag = 0;
        n = 0;
        t0 = now_s();
        do {
            for (int i = 0; i < 32; i++) {
                msg[0] = (unsigned char)n;
                SHA256_CTX c;
                bad |= SHA256_Init(&c) != 1 || SHA256_Update(&c, &tag, 1) != 1 ||
                       SHA256_Update(&c, msg, len) != 1 || SHA256_Final(leaf, &c) != 1;
                n++;
            }
            t1 = now_s();
        } while (t1 - t0 < secs / 2);
        if (bad) {
            fprintf(stderr, "SHA-256 failed\n");
            return 1;
        }
        double leaf_us = (t1 - t0) * 1e6 / (double)n;
        printf("size %zu sign_per_s %.0f verify_per_s %.0f sign_us %.2f verify_us %.2f "
               "leaf_us %.3f\n",
               sizes[s], sign_rate, verify_rate, 1e6 / sign_rate, 1e6 / verify_rate, leaf_us);
        free(msg);
    }
    /* the root message of a batch: prefix, depth, 32-byte root */
    unsigned char root[45], rsig[crypto_sign_BYTES];
    randombytes_buf(root, sizeof(root));
    long n = 0;
    double t0 = now_s(), t1;
    do {
        for (int i = 0; i < 32; i++) {
            root[0] = (unsigned char)n;
            crypto_sign_detached(rsig, NULL, root, sizeof(root), sk);
            n++;
        }
        t1 = now_s();
    } while (t1 - t0 < secs / 2);
    double rsign_us = (t1 - t0) * 1e6 / (double)n;
    n = 0;
    volatile int bad = 0;
    t0 = now_s();
    do {
        for (int i = 0; i < 32; i++) {
            bad |= crypto_sign_verify_detached(rsig, root, sizeof(root), pk);
            n++;
        }
        t1 = now_s();
    } while (t1 - t0 < secs / 2);
    double rverify_us = (t1 - t0) * 1e6 / (double)n;
    printf("root sign_us %.2f verify_us %.2f%s\n", rsign_us, rverify_us, bad ? " BAD" : "");
    sodium_memzero(sk, sizeof(sk));
    return 0;
}
