/*
 * Ed25519 keys, key files, public-key text and base64 (libsodium underneath),
 * and sr_whyf(), the module's one writer of reasons: here, in the file the
 * others call already, so that using it makes no call circle.
 *
 * Secret-key file format (PREFIX.key, mode 0600, one line):
 *
 *     ed25519-secret:<standard base64, with padding, of the 32-byte seed>\n
 *
 * The seed is RFC 8032's "secret key"; the key pair is derived from it with
 * crypto_sign_seed_keypair(), so the file cannot disagree with itself. The
 * public file (PREFIX.pub) is one line "ed25519:<base64 of 32 bytes>\n".
 *
 * Secrets live in sodium_malloc()'d memory (guard pages, wiped on free); any
 * stack or heap copy of secret bytes is wiped with sodium_memzero().
 */
#include "crypto/crypto.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#define SR_SEEDBYTES crypto_sign_SEEDBYTES
#define SR_SECRET_TAG "ed25519-secret:"
#define SR_PUBLIC_TAG "ed25519:"
#define SR_KEYFILE_MAX 4096 /* both key files are one short line */

_Static_assert(SR_PUBLICKEYBYTES == crypto_sign_PUBLICKEYBYTES, "public key size");
_Static_assert(SR_SECRETKEYBYTES == crypto_sign_SECRETKEYBYTES, "secret key size");
_Static_assert(SR_SIGBYTES == crypto_sign_BYTES, "signature size");
_Static_assert(SR_SEEDBYTES == 32, "seed size");

struct sr_key {
    uint8_t sk[crypto_sign_SECRETKEYBYTES]; /* libsodium layout: seed || pk */
    uint8_t pk[crypto_sign_PUBLICKEYBYTES];
    uint8_t id[SR_KEYIDBYTES];
};

int sr_crypto_init(void)
{
    /* 0 on first success, 1 if already initialised, -1 on failure */
    return sodium_init() < 0 ? SR_ERR_UNAVAILABLE : 0;
}

/* ---- key pairs ------------------------------------------------------------ */

static sr_key *key_alloc(void)
{
    if (sodium_init() < 0) {
        return NULL;
    }
    sr_key *k = sodium_malloc(sizeof(*k));
    if (k) {
        sodium_memzero(k, sizeof(*k));
    }
    return k;
}

static void key_finish(sr_key *k)
{
    memcpy(k->pk, k->sk + SR_SEEDBYTES, sizeof(k->pk));
    sr_pubkey_id(k->id, k->pk);
}

int sr_key_generate(sr_key **out)
{
    sr_key *k = key_alloc();
    if (!k) {
        return SR_ERR_NOMEM;
    }
    uint8_t pk[crypto_sign_PUBLICKEYBYTES];
    crypto_sign_keypair(pk, k->sk);
    key_finish(k);
    *out = k;
    return 0;
}

int sr_key_from_seed(sr_key **out, const uint8_t seed[32])
{
    sr_key *k = key_alloc();
    if (!k) {
        return SR_ERR_NOMEM;
    }
    uint8_t pk[crypto_sign_PUBLICKEYBYTES];
    crypto_sign_seed_keypair(pk, k->sk, seed);
    key_finish(k);
    *out = k;
    return 0;
}

void sr_key_free(sr_key *key)
{
    if (key) {
        sodium_free(key); /* wipes the region before unmapping it */
    }
}

const uint8_t *sr_key_public(const sr_key *key)
{
    return key->pk;
}

const uint8_t *sr_key_id(const sr_key *key)
{
    return key->id;
}

void sr_key_sign(const sr_key *key, uint8_t sig[SR_SIGBYTES], const uint8_t *msg, size_t len)
{
    static const uint8_t empty[1];
    crypto_sign_detached(sig, NULL, msg ? msg : empty, len, key->sk);
}

int sr_verify(const uint8_t pk[SR_PUBLICKEYBYTES], const uint8_t sig[SR_SIGBYTES],
              const uint8_t *msg, size_t len)
{
    static const uint8_t empty[1];
    if (crypto_sign_verify_detached(sig, msg ? msg : empty, len, pk) != 0) {
        return SR_ERR_ENV_BADSIG;
    }
    return 0;
}

void sr_pubkey_id(uint8_t id[SR_KEYIDBYTES], const uint8_t pk[SR_PUBLICKEYBYTES])
{
    uint8_t h[32];
    crypto_generichash(h, sizeof(h), pk, SR_PUBLICKEYBYTES, NULL, 0);
    memcpy(id, h, SR_KEYIDBYTES);
}

/* ---- base64 --------------------------------------------------------------- */

int sr_b64_encode(char *out, size_t outlen, const uint8_t *in, size_t inlen)
{
    /* sodium_bin2base64() aborts the process on a short buffer: check first. */
    if (inlen > (SIZE_MAX - 1) / 4 * 3 - 3) {
        return SR_ERR_INVAL;
    }
    size_t need = sodium_base64_ENCODED_LEN(inlen, sodium_base64_VARIANT_ORIGINAL);
    if (!out || outlen < need || need - 1 > INT_MAX) {
        return SR_ERR_INVAL;
    }
    static const uint8_t empty[1];
    sodium_bin2base64(out, outlen, in ? in : empty, inlen, sodium_base64_VARIANT_ORIGINAL);
    return (int)(need - 1);
}

int sr_b64_decode(uint8_t *out, size_t outmax, size_t *outlen, const char *in, size_t inlen)
{
    size_t n = 0;
    if (inlen == 0) {
        *outlen = 0;
        return 0;
    }
    if (sodium_base642bin(out, outmax, in, inlen, NULL, &n, NULL, sodium_base64_VARIANT_ORIGINAL) !=
        0) {
        return SR_ERR_PARSE;
    }
    *outlen = n;
    return 0;
}

/* ---- small text helpers ----------------------------------------------------- */

int sr_whyf(char *why, size_t whylen, int code, const char *fmt, ...)
{
    if (why && whylen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(why, whylen, fmt, ap);
        va_end(ap);
    }
    return code;
}

static int is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* Trims ASCII whitespace on both sides of [*s, *s + *len). */
static void trim(const char **s, size_t *len)
{
    while (*len && is_space(**s)) {
        (*s)++;
        (*len)--;
    }
    while (*len && is_space((*s)[*len - 1])) {
        (*len)--;
    }
}

/* Reads a whole small file from an open fd into buf (NUL-terminated).
 * Returns the length, or -1 (errno set; EFBIG for over |max - 1| bytes). */
static ssize_t read_small(int fd, char *buf, size_t max)
{
    size_t len = 0;
    for (;;) {
        if (len == max - 1) {
            char extra;
            ssize_t n = read(fd, &extra, 1);
            if (n < 0 && errno == EINTR) {
                continue;
            }
            if (n != 0) {
                sodium_memzero(&extra, sizeof(extra));
                errno = n < 0 ? errno : EFBIG;
                return -1;
            }
            break;
        }
        ssize_t n = read(fd, buf + len, max - 1 - len);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            return -1;
        }
        if (n == 0) {
            break;
        }
        len += (size_t)n;
    }
    buf[len] = '\0';
    return (ssize_t)len;
}

/* ---- public keys ------------------------------------------------------------ */

int sr_pubkey_parse(uint8_t pk[SR_PUBLICKEYBYTES], const char *text, size_t len)
{
    const size_t taglen = sizeof(SR_PUBLIC_TAG) - 1;
    if (!text) {
        return SR_ERR_KEY;
    }
    trim(&text, &len);
    if (len <= taglen || memcmp(text, SR_PUBLIC_TAG, taglen) != 0) {
        return SR_ERR_KEY;
    }
    uint8_t tmp[SR_PUBLICKEYBYTES];
    size_t n = 0;
    if (sr_b64_decode(tmp, sizeof(tmp), &n, text + taglen, len - taglen) != 0 || n != sizeof(tmp)) {
        return SR_ERR_KEY;
    }
    /* Refuse points no honest key can be: non-canonical, small order, or
     * outside the prime-order subgroup. */
    if (sodium_init() < 0 || !crypto_core_ed25519_is_valid_point(tmp)) {
        return SR_ERR_KEY;
    }
    memcpy(pk, tmp, sizeof(tmp));
    return 0;
}

void sr_pubkey_format(char *out, size_t outlen, const uint8_t pk[SR_PUBLICKEYBYTES])
{
    const size_t taglen = sizeof(SR_PUBLIC_TAG) - 1;
    if (!out || outlen == 0) {
        return;
    }
    out[0] = '\0';
    if (outlen <= taglen) {
        return;
    }
    memcpy(out, SR_PUBLIC_TAG, taglen);
    if (sr_b64_encode(out + taglen, outlen - taglen, pk, SR_PUBLICKEYBYTES) < 0) {
        out[0] = '\0';
    }
}

int sr_pubkey_load(uint8_t pk[SR_PUBLICKEYBYTES], const char *path, char *err, size_t errlen)
{
    char buf[SR_KEYFILE_MAX];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return sr_whyf(err, errlen, SR_ERR_IO, "%s: %s", path, strerror(errno));
    }
    ssize_t n = read_small(fd, buf, sizeof(buf));
    int saved = errno;
    close(fd);
    if (n < 0) {
        sr_whyf(err, errlen, 0, "%s: %s", path,
                saved == EFBIG ? "too large for a public key file" : strerror(saved));
        return saved == EFBIG ? SR_ERR_KEY : SR_ERR_IO;
    }
    if (sr_pubkey_parse(pk, buf, (size_t)n) != 0) {
        return sr_whyf(
            err, errlen, SR_ERR_KEY,
            "%s: not a public key file (expected one line \"ed25519:<base64 of 32 bytes>\" "
            "holding a valid Ed25519 point)",
            path);
    }
    return 0;
}

/* ---- key files -------------------------------------------------------------- */

static int write_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w <= 0) {
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Creates |path| exclusively with |mode| and writes |text|. 0, SR_ERR_EXISTS
 * or SR_ERR_IO (a partial file is removed). */
static int create_file(const char *path, mode_t mode, const char *text, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
    if (fd < 0) {
        return errno == EEXIST ? SR_ERR_EXISTS : SR_ERR_IO;
    }
    /* umask may only have removed bits; make the mode exact either way */
    int bad = fchmod(fd, mode) != 0 || write_all(fd, text, len) != 0 || fsync(fd) != 0;
    if (close(fd) != 0) {
        bad = 1;
    }
    if (bad) {
        unlink(path);
        return SR_ERR_IO;
    }
    return 0;
}

int sr_key_save(const sr_key *key, const char *prefix)
{
    char kpath[PATH_MAX], ppath[PATH_MAX];
    if (!key || !prefix || !*prefix) {
        return SR_ERR_INVAL;
    }
    int a = snprintf(kpath, sizeof(kpath), "%s.key", prefix);
    int b = snprintf(ppath, sizeof(ppath), "%s.pub", prefix);
    if (a < 0 || (size_t)a >= sizeof(kpath) || b < 0 || (size_t)b >= sizeof(ppath)) {
        return SR_ERR_INVAL;
    }

    /* "ed25519-secret:" + 44 base64 chars + "\n" */
    char line[sizeof(SR_SECRET_TAG) + 48];
    const size_t taglen = sizeof(SR_SECRET_TAG) - 1;
    memcpy(line, SR_SECRET_TAG, taglen);
    int n = sr_b64_encode(line + taglen, sizeof(line) - taglen - 1, key->sk, SR_SEEDBYTES);
    size_t len = taglen + (size_t)n;
    line[len++] = '\n';
    int rv = create_file(kpath, 0600, line, len);
    sodium_memzero(line, sizeof(line));
    if (rv) {
        return rv;
    }

    char pub[80];
    sr_pubkey_format(pub, sizeof(pub) - 1, key->pk);
    size_t plen = strlen(pub);
    pub[plen++] = '\n';
    rv = create_file(ppath, 0644, pub, plen);
    if (rv) {
        unlink(kpath); /* leave no half-written pair behind */
    }
    return rv;
}

int sr_key_load(sr_key **out, const char *path, char *err, size_t errlen)
{
    char buf[SR_KEYFILE_MAX];
    const size_t taglen = sizeof(SR_SECRET_TAG) - 1;
    struct stat st;
    int rv = SR_ERR_KEY;

    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return sr_whyf(err, errlen, SR_ERR_IO, "%s: %s", path, strerror(errno));
    }
    /* fstat on the open descriptor: what we check is what we read */
    if (fstat(fd, &st) != 0) {
        sr_whyf(err, errlen, 0, "%s: %s", path, strerror(errno));
        close(fd);
        return SR_ERR_IO;
    }
    if (!S_ISREG(st.st_mode)) {
        sr_whyf(err, errlen, 0, "%s: not a regular file", path);
        close(fd);
        return SR_ERR_KEY;
    }
    if (st.st_mode & 077) {
        sr_whyf(err, errlen, 0,
                "%s: secret key file has mode %04o; it must not be accessible by group or "
                "others (chmod 600 %s)",
                path, (unsigned)(st.st_mode & 07777), path);
        close(fd);
        return SR_ERR_KEY;
    }
    ssize_t n = read_small(fd, buf, sizeof(buf));
    int saved = errno;
    close(fd);
    if (n < 0) {
        if (saved == EFBIG) {
            sr_whyf(err, errlen, 0, "%s: too large for a secret key file", path);
            rv = SR_ERR_KEY;
        } else {
            sr_whyf(err, errlen, 0, "%s: %s", path, strerror(saved));
            rv = SR_ERR_IO;
        }
        goto out;
    }

    const char *s = buf;
    size_t len = (size_t)n;
    trim(&s, &len);
    uint8_t seed[SR_SEEDBYTES];
    size_t seedlen = 0;
    if (len <= taglen || memcmp(s, SR_SECRET_TAG, taglen) != 0) {
        sr_whyf(err, errlen, 0,
                "%s: not a skyroute secret key file (expected one line "
                "\"ed25519-secret:<base64 of a 32-byte seed>\")",
                path);
        goto out;
    }
    if (sr_b64_decode(seed, sizeof(seed), &seedlen, s + taglen, len - taglen) != 0 ||
        seedlen != sizeof(seed)) {
        sr_whyf(err, errlen, 0,
                "%s: malformed secret key (the text after \"ed25519-secret:\" must be the "
                "padded base64 of exactly 32 bytes)",
                path);
        sodium_memzero(seed, sizeof(seed));
        goto out;
    }
    sr_key *k = NULL;
    rv = sr_key_from_seed(&k, seed);
    sodium_memzero(seed, sizeof(seed));
    if (rv) {
        sr_whyf(err, errlen, 0, "%s: out of memory", path);
        goto out;
    }
    *out = k;
out:
    sodium_memzero(buf, sizeof(buf));
    return rv;
}
