/* crypto/keys.c: RFC 8032 known answers, key ids, base64, key files. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crypto/crypto.h"

static void unhex(uint8_t *out, size_t n, const char *s)
{
    assert_int_equal(sr_unhex(out, n, s, strlen(s)), 0);
}

/* RFC 8032 section 7.1, TESTs 1-3, through libsodium. */
static const struct {
    const char *sk, *pk, *msg, *sig;
} rfc8032[] = {
    {"9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
     "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a", "",
     "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b"
     "46b"
     "d25bf5f0595bbe24655141438e7a100b"},
    {"4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
     "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c", "72",
     "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11"
     "d8c"
     "387b2eaeb4302aeeb00d291612bb0c00"},
    {"c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
     "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025", "af82",
     "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760984dc"
     "659"
     "4a7c15e9716ed28dc027beceea1ec40a"},
};

static void test_rfc8032(void **state)
{
    (void)state;
    for (size_t t = 0; t < sizeof(rfc8032) / sizeof(rfc8032[0]); t++) {
        uint8_t seed[32], pk[32], msg[2], sig[64], got[64];
        size_t mlen = strlen(rfc8032[t].msg) / 2;
        unhex(seed, 32, rfc8032[t].sk);
        unhex(pk, 32, rfc8032[t].pk);
        unhex(msg, mlen, rfc8032[t].msg);
        unhex(sig, 64, rfc8032[t].sig);
        sr_key *k = NULL;
        assert_int_equal(sr_key_from_seed(&k, seed), 0);
        assert_memory_equal(sr_key_public(k), pk, 32);
        sr_key_sign(k, got, mlen ? msg : NULL, mlen);
        assert_memory_equal(got, sig, 64);
        assert_int_equal(sr_verify(pk, sig, mlen ? msg : NULL, mlen), 0);
        got[63] ^= 0x01;
        assert_int_equal(sr_verify(pk, got, msg, mlen), SR_ERR_ENV_BADSIG);
        sr_key_free(k);
    }
}

static void test_key_id(void **state)
{
    (void)state;
    uint8_t pk[32], id[8], want[8];
    unhex(pk, 32, rfc8032[0].pk);
    /* hashlib.blake2b(pk, digest_size=32).digest()[:8] */
    unhex(want, 8, "7849ac3049680be1");
    sr_pubkey_id(id, pk);
    assert_memory_equal(id, want, 8);

    uint8_t seed[32];
    unhex(seed, 32, rfc8032[0].sk);
    sr_key *k = NULL;
    assert_int_equal(sr_key_from_seed(&k, seed), 0);
    assert_memory_equal(sr_key_id(k), want, 8);
    sr_key_free(k);
}

static void test_generate(void **state)
{
    (void)state;
    sr_key *a = NULL, *b = NULL;
    assert_int_equal(sr_key_generate(&a), 0);
    assert_int_equal(sr_key_generate(&b), 0);
    assert_memory_not_equal(sr_key_public(a), sr_key_public(b), 32);
    uint8_t sig[64];
    const uint8_t msg[] = "hello";
    sr_key_sign(a, sig, msg, 5);
    assert_int_equal(sr_verify(sr_key_public(a), sig, msg, 5), 0);
    assert_int_equal(sr_verify(sr_key_public(b), sig, msg, 5), SR_ERR_ENV_BADSIG);
    assert_int_equal(sr_verify(sr_key_public(a), sig, msg, 4), SR_ERR_ENV_BADSIG);
    sr_key_free(a);
    sr_key_free(b);
    sr_key_free(NULL);
}

static void test_base64(void **state)
{
    (void)state;
    char out[16];
    uint8_t bin[16];
    size_t n = 99;
    assert_int_equal(sr_b64_encode(out, sizeof(out), (const uint8_t *)"foob", 4), 8);
    assert_string_equal(out, "Zm9vYg==");
    assert_int_equal(sr_b64_encode(out, sizeof(out), NULL, 0), 0);
    assert_string_equal(out, "");
    assert_int_equal(sr_b64_encode(out, 8, (const uint8_t *)"foob", 4), SR_ERR_INVAL); /* NUL */
    assert_int_equal(sr_b64_decode(bin, sizeof(bin), &n, "Zm9vYg==", 8), 0);
    assert_int_equal(n, 4);
    assert_memory_equal(bin, "foob", 4);
    assert_int_equal(sr_b64_decode(bin, sizeof(bin), &n, "", 0), 0);
    assert_int_equal(n, 0);
    assert_int_equal(sr_b64_decode(bin, sizeof(bin), &n, "Zm9vYg", 6), SR_ERR_PARSE);   /* pad */
    assert_int_equal(sr_b64_decode(bin, sizeof(bin), &n, "Zm9vYh==", 8), SR_ERR_PARSE); /* bits */
    assert_int_equal(sr_b64_decode(bin, sizeof(bin), &n, "Zm9v-g==", 8), SR_ERR_PARSE); /* url */
    assert_int_equal(sr_b64_decode(bin, sizeof(bin), &n, "Zm9v Yg==", 9), SR_ERR_PARSE);
    assert_int_equal(sr_b64_decode(bin, 3, &n, "Zm9vYg==", 8), SR_ERR_PARSE); /* too long */
}

static void test_pubkey_text(void **state)
{
    (void)state;
    uint8_t pk[32], want[32];
    unhex(want, 32, rfc8032[0].pk);
    const char *good = "ed25519:11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=";
    assert_int_equal(sr_pubkey_parse(pk, good, strlen(good)), 0);
    assert_memory_equal(pk, want, 32);
    const char *ws = "  ed25519:11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=\r\n";
    assert_int_equal(sr_pubkey_parse(pk, ws, strlen(ws)), 0);
    char text[64];
    sr_pubkey_format(text, sizeof(text), want);
    assert_string_equal(text, good);

    static const char *const bad[] = {
        "",
        "ed25519:",
        "ed25519",
        "ED25519:11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=",
        "ed25519: 11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=",
        "ed25519:11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHUQ==",        /* 31 bytes */
        "ed25519:11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURoA",        /* 33-ish, no pad */
        "ed25519:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",        /* small-order point */
        "ed25519:AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",        /* identity */
        "ed25519-secret:nWGxne/9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A=", /* a secret! */
        "ed25519:11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo= x",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(sr_pubkey_parse(pk, bad[i], strlen(bad[i])), SR_ERR_KEY);
    }
    char tiny[8];
    sr_pubkey_format(tiny, sizeof(tiny), want);
    assert_string_equal(tiny, "");
}

/* ---- key files ------------------------------------------------------------ */

static char tmpdir[64];

static int setup_dir(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/sr-test-keys-XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown_dir(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

static void write_file(const char *path, const char *text, mode_t mode)
{
    unlink(path);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
    assert_true(fd >= 0);
    size_t n = strlen(text);
    assert_int_equal(write(fd, text, n), (ssize_t)n);
    assert_int_equal(fchmod(fd, mode), 0);
    close(fd);
}

static void read_text(const char *path, char *buf, size_t cap)
{
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    size_t n = fread(buf, 1, cap - 1, f);
    buf[n] = '\0';
    fclose(f);
}

static void test_keyfile_roundtrip(void **state)
{
    (void)state;
    char prefix[128], kpath[160], ppath[160], text[256], err[512];
    snprintf(prefix, sizeof(prefix), "%s/alpha", tmpdir);
    snprintf(kpath, sizeof(kpath), "%s.key", prefix);
    snprintf(ppath, sizeof(ppath), "%s.pub", prefix);

    uint8_t seed[32];
    unhex(seed, 32, rfc8032[0].sk);
    sr_key *k = NULL;
    assert_int_equal(sr_key_from_seed(&k, seed), 0);
    assert_int_equal(sr_key_save(k, prefix), 0);

    struct stat st;
    assert_int_equal(stat(kpath, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0600);
    read_text(kpath, text, sizeof(text));
    assert_string_equal(text, "ed25519-secret:nWGxne/9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A=\n");
    read_text(ppath, text, sizeof(text));
    assert_string_equal(text, "ed25519:11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=\n");

    sr_key *l = NULL;
    assert_int_equal(sr_key_load(&l, kpath, err, sizeof(err)), 0);
    assert_memory_equal(sr_key_public(l), sr_key_public(k), 32);
    assert_memory_equal(sr_key_id(l), sr_key_id(k), 8);
    uint8_t pk[32];
    assert_int_equal(sr_pubkey_load(pk, ppath, err, sizeof(err)), 0);
    assert_memory_equal(pk, sr_key_public(k), 32);

    /* exclusive: an existing pair is never overwritten */
    assert_int_equal(sr_key_save(k, prefix), SR_ERR_EXISTS);
    /* .pub in the way: no half pair is left behind */
    char prefix2[128], k2[160];
    snprintf(prefix2, sizeof(prefix2), "%s/beta", tmpdir);
    snprintf(k2, sizeof(k2), "%s.key", prefix2);
    snprintf(text, sizeof(text), "%s.pub", prefix2);
    write_file(text, "x\n", 0644);
    assert_int_equal(sr_key_save(k, prefix2), SR_ERR_EXISTS);
    assert_int_equal(access(k2, F_OK), -1);
    /* a missing directory is an I/O error */
    snprintf(prefix2, sizeof(prefix2), "%s/no/such/dir", tmpdir);
    assert_int_equal(sr_key_save(k, prefix2), SR_ERR_IO);

    sr_key_free(k);
    sr_key_free(l);
}

static void test_keyfile_refuses_open_modes(void **state)
{
    (void)state;
    char path[160], err[512];
    snprintf(path, sizeof(path), "%s/open.key", tmpdir);
    const char *good = "ed25519-secret:nWGxne/9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A=\n";
    static const mode_t modes[] = {0644, 0640, 0604, 0660, 0620, 0601};
    for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
        write_file(path, good, modes[i]);
        sr_key *k = (sr_key *)(uintptr_t)1; /* must stay untouched */
        err[0] = 0;
        assert_int_equal(sr_key_load(&k, path, err, sizeof(err)), SR_ERR_KEY);
        assert_ptr_equal(k, (sr_key *)(uintptr_t)1);
        char want[16];
        snprintf(want, sizeof(want), "mode %04o", (unsigned)modes[i]);
        assert_non_null(strstr(err, want));
        assert_non_null(strstr(err, path));
    }
    write_file(path, good, 0400);
    sr_key *k = NULL;
    assert_int_equal(sr_key_load(&k, path, err, sizeof(err)), 0);
    sr_key_free(k);
}

static void test_keyfile_malformed(void **state)
{
    (void)state;
    char path[160], err[512];
    snprintf(path, sizeof(path), "%s/bad.key", tmpdir);
    static const char *const bad[] = {
        "",
        "\n",
        "ed25519-secret:\n",
        "ed25519:nWGxne/9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A=\n",
        "ed25519-secret:nWGxne/9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A\n",  /* no padding */
        "ed25519-secret:nWGxne/9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyufw==\n", /* 31 bytes */
        "ed25519-secret:nWGxne/9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A=AAAA\n",
        "ed25519-secret:nWGxne/9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A=\ned25519-secret:x\n",
        "-----BEGIN OPENSSH PRIVATE KEY-----\n",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        write_file(path, bad[i], 0600);
        sr_key *k = NULL;
        err[0] = 0;
        assert_int_equal(sr_key_load(&k, path, err, sizeof(err)), SR_ERR_KEY);
        assert_null(k);
        assert_non_null(strstr(err, path));
        assert_true(strstr(err, "malformed") || strstr(err, "not a skyroute secret key"));
    }
    /* whitespace around the one line is fine */
    write_file(path, "  ed25519-secret:nWGxne/9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A=  \r\n\n", 0600);
    sr_key *k = NULL;
    assert_int_equal(sr_key_load(&k, path, err, sizeof(err)), 0);
    sr_key_free(k);

    /* too big, a directory, a missing file */
    char big[5000];
    memset(big, 'A', sizeof(big) - 1);
    big[sizeof(big) - 1] = 0;
    write_file(path, big, 0600);
    assert_int_equal(sr_key_load(&k, path, err, sizeof(err)), SR_ERR_KEY);
    assert_non_null(strstr(err, "too large"));
    assert_int_equal(sr_key_load(&k, tmpdir, err, sizeof(err)), SR_ERR_KEY);
    snprintf(path, sizeof(path), "%s/missing.key", tmpdir);
    assert_int_equal(sr_key_load(&k, path, err, sizeof(err)), SR_ERR_IO);
    assert_non_null(strstr(err, "No such file"));
    uint8_t pk[32];
    assert_int_equal(sr_pubkey_load(pk, path, err, sizeof(err)), SR_ERR_IO);
    /* a secret key file is not a public key file */
    snprintf(path, sizeof(path), "%s/bad.pub", tmpdir);
    write_file(path, "ed25519-secret:nWGxne/9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A=\n", 0644);
    assert_int_equal(sr_pubkey_load(pk, path, err, sizeof(err)), SR_ERR_KEY);
    assert_non_null(strstr(err, "not a public key file"));
    /* NULL err is allowed */
    assert_int_equal(sr_pubkey_load(pk, path, NULL, 0), SR_ERR_KEY);
}

int main(void)
{
    if (sr_crypto_init() != 0) {
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rfc8032),
        cmocka_unit_test(test_key_id),
        cmocka_unit_test(test_generate),
        cmocka_unit_test(test_base64),
        cmocka_unit_test(test_pubkey_text),
        cmocka_unit_test(test_keyfile_roundtrip),
        cmocka_unit_test(test_keyfile_refuses_open_modes),
        cmocka_unit_test(test_keyfile_malformed),
    };
    return cmocka_run_group_tests(tests, setup_dir, teardown_dir);
}
