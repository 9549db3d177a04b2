/*
 * gateway/config/config.c: sr_config_load on real files in a scratch directory
 * under /tmp, with public keys made by sr_key_generate + sr_key_save. The
 * README example loads with its defaults; relative paths resolve against the
 * config's directory; every refusal names FILE:LINE, and the line is the
 * right one.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crypto/crypto.h"
#include "gateway/config/config.h"
#include "gateway/net/net.h"
#include "routing/routing.h"

static char dir[64];                        /* scratch directory */
static uint8_t alpha_pk[SR_PUBLICKEYBYTES]; /* DIR/alpha.pub */
static uint8_t beta_pk[SR_PUBLICKEYBYTES];  /* DIR/keys/beta.pub */
static char path[PATH_MAX];                 /* the config file of the current test */

static void make_key(const char *prefix, uint8_t pk[SR_PUBLICKEYBYTES])
{
    sr_key *k;
    assert_int_equal(sr_key_generate(&k), 0);
    assert_int_equal(sr_key_save(k, prefix), 0);
    memcpy(pk, sr_key_public(k), SR_PUBLICKEYBYTES);
    sr_key_free(k);
}

static int group_setup(void **state)
{
    (void)state;
    if (sr_crypto_init() != 0) {
        return -1;
    }
    snprintf(dir, sizeof(dir), "/tmp/sr-test-config-XXXXXX");
    if (!mkdtemp(dir)) {
        return -1;
    }
    char p[PATH_MAX];
    snprintf(p, sizeof(p), "%s/alpha", dir);
    make_key(p, alpha_pk);
    snprintf(p, sizeof(p), "%s/keys", dir);
    if (mkdir(p, 0700) != 0) {
        return -1;
    }
    snprintf(p, sizeof(p), "%s/keys/beta", dir);
    make_key(p, beta_pk);
    snprintf(p, sizeof(p), "%s/sub", dir);
    return mkdir(p, 0700);
}

static int rm_tree(const char *p)
{
    struct stat st;
    if (lstat(p, &st) != 0) {
        return -1;
    }
    if (S_ISDIR(st.st_mode)) {
        DIR *d = opendir(p);
        if (!d) {
            return -1;
        }
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
                char sub[PATH_MAX];
                snprintf(sub, sizeof(sub), "%s/%s", p, e->d_name);
                rm_tree(sub);
            }
        }
        closedir(d);
    }
    return remove(p);
}

static int group_teardown(void **state)
{
    (void)state;
    return rm_tree(dir);
}

/* Writes |text| to DIR/|name| and remembers it as the current config path. */
static const char *write_cfg(const char *name, const char *text)
{
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(fwrite(text, 1, strlen(text), f), strlen(text));
    assert_int_equal(fclose(f), 0);
    return path;
}

static struct sr_config *load_ok(const char *text)
{
    write_cfg("ok.ini", text);
    struct sr_config *cfg = NULL;
    char err[1024] = "";
    int rv = sr_config_load(&cfg, path, err, sizeof(err));
    if (rv != 0) {
        fail_msg("load failed (%d): %s", rv, err);
    }
    assert_non_null(cfg);
    return cfg;
}

/* Loads |text| and expects SR_ERR_CONFIG with "PATH:LINE: msg" exactly. */
static void load_bad(const char *text, int line, const char *msg)
{
    write_cfg("bad.ini", text);
    struct sr_config *cfg = (struct sr_config *)0x1;
    char err[1024] = "";
    assert_int_equal(sr_config_load(&cfg, path, err, sizeof(err)), SR_ERR_CONFIG);
    assert_ptr_equal(cfg, (struct sr_config *)0x1); /* untouched */
    char want[1200];
    snprintf(want, sizeof(want), "%s:%d: %s", path, line, msg);
    if (strcmp(err, want) != 0) {
        fail_msg("got  '%s'\nwant '%s'", err, want);
    }
}

/* As load_bad, for messages that embed text from elsewhere: a prefix match. */
static void load_bad_prefix(const char *text, int line, const char *msg)
{
    write_cfg("bad.ini", text);
    struct sr_config *cfg = NULL;
    char err[1024] = "";
    assert_int_equal(sr_config_load(&cfg, path, err, sizeof(err)), SR_ERR_CONFIG);
    char want[1200];
    snprintf(want, sizeof(want), "%s:%d: %s", path, line, msg);
    if (strncmp(err, want, strlen(want)) != 0) {
        fail_msg("got  '%s'\nwant '%s...'", err, want);
    }
}

#define GW "[gateway]\nid = gw\nkey = gw.key\n" /* lines 1-3 */

/* ---- what loads ------------------------------------------------------------------------ */

/* The example from the README, verbatim. */
static const char readme_example[] =
    "[gateway]\n"
    "id = gs-test                 ; this station's id (envelope src/dst)\n"
    "listen = 127.0.0.1:8443      ; h2c, prior knowledge\n"
    "admin = 127.0.0.1:9901       ; /metrics, /healthz, /readyz (HTTP/1.1 and h2c)\n"
    "key = gateway.key            ; signing key (skyroute keygen --out gateway)\n"
    "state_dir = state\n"
    "; max_body = 33554432        ; request bodies above this get 413\n"
    "; default_deadline_ms = 30000\n"
    "; max_deadline_ms = 86400000\n"
    "; max_streams = 1000         ; SETTINGS_MAX_CONCURRENT_STREAMS\n"
    "; log_level = info\n"
    "\n"
    "[idc.alpha]\n"
    "url = http://127.0.0.1:9101\n"
    "pubkey = alpha.pub           ; the node's public key: results must verify under it\n"
    "; rtt_ms = 20                ; prior round trip before anything is observed\n"
    "; gops = 100                 ; compute rate, giga-operations per second\n";

static void test_readme_example(void **state)
{
    (void)state;
    struct sr_config *cfg = load_ok(readme_example);
    char want[PATH_MAX + 32];
    assert_string_equal(cfg->path, path);
    assert_string_equal(cfg->id, "gs-test");
    assert_string_equal(cfg->listen, "127.0.0.1:8443");
    assert_string_equal(cfg->admin, "127.0.0.1:9901");
    snprintf(want, sizeof(want), "%s/gateway.key", dir);
    assert_string_equal(cfg->key_path, want);
    snprintf(want, sizeof(want), "%s/state", dir);
    assert_string_equal(cfg->state_dir, want);
    assert_int_equal(cfg->max_body, 32u << 20);
    assert_int_equal(cfg->default_deadline_ms, 30000);
    assert_int_equal(cfg->max_deadline_ms, 86400000);
    assert_int_equal(cfg->max_streams, 1000);
    assert_int_equal(cfg->envelope_batch, 0); /* auto */
    assert_string_equal(cfg->log_level, "info");
    assert_int_equal(cfg->ntargets, 1);
    const struct sr_target_cfg *t = &cfg->targets[0];
    assert_string_equal(t->id, "alpha");
    assert_int_equal(t->kind, SR_TARGET_IDC);
    assert_string_equal(t->url, "http://127.0.0.1:9101");
    snprintf(want, sizeof(want), "%s/alpha.pub", dir);
    assert_string_equal(t->pubkey_path, want);
    assert_memory_equal(t->pubkey, alpha_pk, SR_PUBLICKEYBYTES);
    assert_true(t->rtt_ms == 20);
    assert_true(t->gops == 100);
    assert_int_equal(t->line, 13);
    assert_int_equal(t->pubkey_line, 15);
    sr_config_free(cfg);
    sr_config_free(NULL);
}

static void test_minimal_defaults(void **state)
{
    (void)state;
    struct sr_config *cfg = load_ok(GW);
    char want[PATH_MAX + 32];
    assert_string_equal(cfg->listen, "127.0.0.1:8443");
    assert_string_equal(cfg->admin, "");
    snprintf(want, sizeof(want), "%s/state", dir);
    assert_string_equal(cfg->state_dir, want);
    assert_int_equal(cfg->max_body, 32u << 20);
    assert_int_equal(cfg->default_deadline_ms, 30000);
    assert_int_equal(cfg->max_deadline_ms, 86400000);
    assert_int_equal(cfg->max_streams, 1000);
    assert_string_equal(cfg->log_level, "info");
    assert_int_equal(cfg->ntargets, 0);
    sr_config_free(cfg);
}

static void test_every_key(void **state)
{
    (void)state;
    char text[2048];
    snprintf(text, sizeof(text),
             "# a full config\n"
             "[gateway]\n"
             "id = gs.Test_1-a\n"
             "listen = [::1]:0\n"
             "admin = 0.0.0.0:9901\n"
             "key = /abs/gw.key\n"
             "state_dir = /var/lib/skyroute\n"
             "max_body = 1024\n"
             "default_deadline_ms = 5000\n"
             "max_deadline_ms = 60000\n"
             "max_streams = 7\n"
             "log_level = debug\n"
             "[satellite.sat-1]\n"
             "url = http://[::1]:9102/\n"
             "pubkey = %s/keys/beta.pub\n"
             "rtt_ms = 120.5\n"
             "gops = 2.5\n"
             "[satellite.sat-2]\n"
             "url = 127.0.0.1:9103\n"
             "pubkey = keys/beta.pub\n"
             "[idc.alpha]\n"
             "pubkey = alpha.pub\n"
             "url = http://127.0.0.1:9101\n"
             "rtt_ms = 3\n",
             dir);
    struct sr_config *cfg = load_ok(text);
    assert_string_equal(cfg->id, "gs.Test_1-a");
    assert_string_equal(cfg->listen, "[::1]:0");
    assert_string_equal(cfg->admin, "0.0.0.0:9901");
    assert_string_equal(cfg->key_path, "/abs/gw.key");
    assert_string_equal(cfg->state_dir, "/var/lib/skyroute");
    assert_int_equal(cfg->max_body, 1024);
    assert_int_equal(cfg->default_deadline_ms, 5000);
    assert_int_equal(cfg->max_deadline_ms, 60000);
    assert_int_equal(cfg->max_streams, 7);
    assert_string_equal(cfg->log_level, "debug");
    assert_int_equal(cfg->ntargets, 3);
    const struct sr_target_cfg *t = cfg->targets;
    assert_string_equal(t[0].id, "sat-1");
    assert_int_equal(t[0].kind, SR_TARGET_SATELLITE);
    assert_true(t[0].rtt_ms == 120.5);
    assert_true(t[0].gops == 2.5);
    assert_memory_equal(t[0].pubkey, beta_pk, SR_PUBLICKEYBYTES);
    assert_int_equal(t[0].line, 13);
    assert_int_equal(t[0].pubkey_line, 15);
    /* satellite defaults */
    assert_string_equal(t[1].id, "sat-2");
    assert_true(t[1].rtt_ms == 40);
    assert_true(t[1].gops == 10);
    assert_memory_equal(t[1].pubkey, beta_pk, SR_PUBLICKEYBYTES);
    assert_int_equal(t[1].line, 18);
    /* IDC defaults, one overridden */
    assert_string_equal(t[2].id, "alpha");
    assert_int_equal(t[2].kind, SR_TARGET_IDC);
    assert_true(t[2].rtt_ms == 3);
    assert_true(t[2].gops == 100);
    assert_memory_equal(t[2].pubkey, alpha_pk, SR_PUBLICKEYBYTES);
    assert_int_equal(t[2].line, 21);
    assert_int_equal(t[2].pubkey_line, 22);
    sr_config_free(cfg);
}

static void test_relative_paths(void **state)
{
    (void)state;
    static const char text[] = "[gateway]\n"
                               "id = gw\n"
                               "key = ../gw.key\n"
                               "[idc.alpha]\n"
                               "url = http://127.0.0.1:9101\n"
                               "pubkey = ../alpha.pub\n"
                               "[idc.beta]\n"
                               "url = http://127.0.0.1:9102\n"
                               "pubkey = ../keys/beta.pub\n";
    struct sr_config *cfg = NULL;
    write_cfg("sub/gw.ini", text);
    char err[512] = "";
    assert_int_equal(sr_config_load(&cfg, path, err, sizeof(err)), 0);
    char want[PATH_MAX + 32];
    snprintf(want, sizeof(want), "%s/sub/../gw.key", dir);
    assert_string_equal(cfg->key_path, want);
    snprintf(want, sizeof(want), "%s/sub/state", dir);
    assert_string_equal(cfg->state_dir, want);
    snprintf(want, sizeof(want), "%s/sub/../alpha.pub", dir);
    assert_string_equal(cfg->targets[0].pubkey_path, want);
    assert_memory_equal(cfg->targets[0].pubkey, alpha_pk, SR_PUBLICKEYBYTES);
    assert_memory_equal(cfg->targets[1].pubkey, beta_pk, SR_PUBLICKEYBYTES);
    sr_config_free(cfg);

    /* from DIR itself the same relative names miss: they are not CWD-relative */
    load_bad_prefix(text, 6, "[idc.alpha] pubkey: ");
}

static void test_missing_file(void **state)
{
    (void)state;
    struct sr_config *cfg = NULL;
    char err[512] = "", p[PATH_MAX];
    snprintf(p, sizeof(p), "%s/does-not-exist.ini", dir);
    assert_int_equal(sr_config_load(&cfg, p, err, sizeof(err)), SR_ERR_IO);
    assert_null(cfg);
    char want[PATH_MAX + 64];
    snprintf(want, sizeof(want), "%s: cannot open: No such file or directory", p);
    assert_string_equal(err, want);
}

/* ---- refusals, each at its line ---------------------------------------------------------- */

static void test_unknown_key(void **state)
{
    (void)state;
    load_bad("; comment\n[gateway]\nid = gw\nkey = gw.key\ncolour = blue\n", 5,
             "unknown key 'colour' in [gateway]");
    load_bad(GW "[idc.alpha]\nurl = http://127.0.0.1:9101\n\nspeed = 3\npubkey = alpha.pub\n", 7,
             "unknown key 'speed' in [idc.alpha]");
}

static void test_unknown_section(void **state)
{
    (void)state;
    /* reported at the header, not at the key that revealed it */
    load_bad(GW "\n[gatewy]\n; typo above\n\nid = x\n", 5, "unknown section [gatewy]");
    load_bad(GW "[satelite.s1]\nurl = http://127.0.0.1:9101\n", 4, "unknown section [satelite.s1]");
    /* keys before any section */
    load_bad("\nid = gw\n" GW, 2, "unknown section []");
}

/* Regression: the unknown-section error moved the reader's line counter back
 * to the header, so every later line was numbered wrong, and the last error,
 * not the first, was the one reported. */
static void test_first_error_wins_with_right_lines(void **state)
{
    (void)state;
    load_bad(GW "[bogus]\na = 1\nb = 2\n[gateway]\ntypo = 1\n", 4, "unknown section [bogus]");
    load_bad(GW "oops = 1\n[bogus]\na = 1\n", 4, "unknown key 'oops' in [gateway]");
    /* a syntax error before a semantic one is the one reported */
    load_bad(GW "not ini\nmax_streams = 0\n", 4,
             "syntax error (expected [section] or key = value)");
    load_bad(GW "max_streams = 0\nnot ini\n", 4,
             "'max_streams' must be a number in [1, 100000], got '0'");
}

static void test_missing_required(void **state)
{
    (void)state;
    load_bad("; c\n; c\n[gateway]\nid = gw\n", 3, "[gateway] needs 'key'");
    load_bad("; c\n[gateway]\nkey = gw.key\nlisten = 127.0.0.1:1\n", 2, "[gateway] needs 'id'");
    load_bad("[idc.alpha]\nurl = http://127.0.0.1:9101\npubkey = alpha.pub\n", 1,
             "missing [gateway] section");
    load_bad(GW "\n[satellite.sat-1]\npubkey = alpha.pub\n", 5, "[satellite.sat-1] needs 'url'");
    load_bad(GW "[idc.alpha]\nurl = http://127.0.0.1:9101\npubkey = alpha.pub\n[idc.beta]\n; x\n"
                "rtt_ms = 4\n",
             7, "[idc.beta] needs 'url'");
    load_bad(GW "[idc.alpha]\n\nurl = http://127.0.0.1:9101\n", 4, "[idc.alpha] needs 'pubkey'");
}

static void test_bad_values(void **state)
{
    (void)state;
    load_bad(GW "max_body = 12x\n", 4,
             "'max_body' must be a number in [0, 1.07374e+09], got '12x'");
    load_bad(GW "max_body = 2000000000\n", 4,
             "'max_body' must be a number in [0, 1.07374e+09], got '2000000000'");
    load_bad(GW "default_deadline_ms = 0\n", 4,
             "'default_deadline_ms' must be a number in [1, 6.048e+08], got '0'");
    load_bad(GW "max_deadline_ms = nan\n", 4,
             "'max_deadline_ms' must be a number in [1, 2.592e+09], got 'nan'");
    load_bad(GW "max_streams = \n", 4, "'max_streams' must be a number in [1, 100000], got ''");
    load_bad(GW "envelope_batch = 0\n", 4,
             "'envelope_batch' must be auto or a whole number in [1, 1024], not '0'");
    load_bad(GW "envelope_batch = 2.5\n", 4,
             "'envelope_batch' must be auto or a whole number in [1, 1024], not '2.5'");
    load_bad(GW "envelope_batch = 1025\n", 4,
             "'envelope_batch' must be auto or a whole number in [1, 1024], not '1025'");
    load_bad(GW "envelope_batch = Auto\n", 4,
             "'envelope_batch' must be auto or a whole number in [1, 1024], not 'Auto'");
    load_bad(GW "[idc.a]\nrtt_ms = -1\n", 5,
             "'rtt_ms' must be a number in [0.001, 3.6e+06], got '-1'");
    load_bad(GW "[idc.a]\n\ngops = 0\n", 6, "'gops' must be a number in [1e-06, 1e+09], got '0'");
    load_bad(GW "log_level = loud\n", 4,
             "'log_level' must be error, warn, info or debug, not 'loud'");
    load_bad(GW "state_dir =\n", 4, "'state_dir' is empty");
    load_bad(GW "listen =\n", 4, "'listen' is empty");
    load_bad("[gateway]\nid = bad id\nkey = k\n", 2,
             "'id' must be 1-63 characters of [A-Za-z0-9._-]");
    load_bad("[gateway]\n\nkey = k\nid =\n", 4, "'id' must be 1-63 characters of [A-Za-z0-9._-]");
}

static void test_envelope_batch(void **state)
{
    (void)state;
    struct sr_config *cfg =
        load_ok("[gateway]\nid = gw\nkey = gw.key\nenvelope_batch = 1\n"
                "[idc.alpha]\nurl = http://127.0.0.1:9101\npubkey = alpha.pub\n");
    assert_int_equal(cfg->envelope_batch, 1);
    sr_config_free(cfg);
    cfg = load_ok("[gateway]\nid = gw\nkey = gw.key\nenvelope_batch = 1024\n"
                  "[idc.alpha]\nurl = http://127.0.0.1:9101\npubkey = alpha.pub\n");
    assert_int_equal(cfg->envelope_batch, 1024);
    sr_config_free(cfg);
    cfg = load_ok("[gateway]\nid = gw\nkey = gw.key\nenvelope_batch = 64\nenvelope_batch = auto\n"
                  "[idc.alpha]\nurl = http://127.0.0.1:9101\npubkey = alpha.pub\n");
    assert_int_equal(cfg->envelope_batch, 0);
    sr_config_free(cfg);
}

static void test_bad_urls(void **state)
{
    (void)state;
    load_bad(GW "[idc.alpha]\nurl = https://127.0.0.1:9101\n", 5,
             "'url': 'https://127.0.0.1:9101': only http:// (h2c) origins are supported");
    load_bad(GW "[idc.alpha]\nurl = http://127.0.0.1:9101/run\n", 5,
             "'url': 'http://127.0.0.1:9101/run': an origin takes no path");
    load_bad(GW "[idc.alpha]\nurl = http://127.0.0.1:70000\n", 5,
             "'url': 'http://127.0.0.1:70000': port must be 0..65535");
    load_bad(GW "[idc.alpha]\nurl = 127.0.0.1\n", 5, "'url': '127.0.0.1': expected HOST:PORT");
    /* listen and admin are checked after parsing, at the [gateway] line */
    load_bad("; c\n[gateway]\nid = gw\nkey = k\nlisten = 127.0.0.1\n", 2,
             "[gateway] listen: '127.0.0.1': expected HOST:PORT");
    load_bad("; c\n[gateway]\nid = gw\nkey = k\nadmin = https://127.0.0.1:1\n", 2,
             "[gateway] admin: 'https://127.0.0.1:1': only http:// (h2c) origins are supported");
}

static void test_missing_pubkey_file(void **state)
{
    (void)state;
    char msg[PATH_MAX + 64];
    snprintf(msg, sizeof(msg), "[idc.alpha] pubkey: ");
    /* at the pubkey line, not the section's */
    load_bad_prefix(GW "[idc.alpha]\nurl = http://127.0.0.1:9101\n; c\npubkey = nope.pub\n", 7,
                    msg);
    char err[1024];
    struct sr_config *cfg = NULL;
    assert_int_equal(sr_config_load(&cfg, path, err, sizeof(err)), SR_ERR_CONFIG);
    char p[PATH_MAX + 16];
    snprintf(p, sizeof(p), "%s/nope.pub", dir);
    assert_non_null(strstr(err, p));
    /* a file that is not a public key */
    load_bad_prefix(GW "[idc.alpha]\nurl = http://127.0.0.1:9101\npubkey = bad.ini\n", 6, msg);
}

static void test_syntax_error(void **state)
{
    (void)state;
    load_bad(GW "this line is wrong\n", 4, "syntax error (expected [section] or key = value)");
    load_bad("\n\n[gateway\nid = gw\n", 3, "syntax error (expected [section] or key = value)");
    load_bad("; c\njust words\n" GW, 2, "syntax error (expected [section] or key = value)");
}

static void test_duplicate_target_ids(void **state)
{
    (void)state;
    /* one id namespace across idc. and satellite.: reported at the second header */
    load_bad(GW "[idc.x]\nurl = http://127.0.0.1:9101\npubkey = alpha.pub\n\n"
                "[satellite.x]\n; c\nurl = http://127.0.0.1:9102\n",
             8, "[satellite.x]: target id already used by another section");
    load_bad(GW
             "[satellite.y]\nurl = http://127.0.0.1:9101\n[idc.y]\nurl = http://127.0.0.1:9102\n",
             6, "[idc.y]: target id already used by another section");
}

static void test_invalid_target_ids(void **state)
{
    (void)state;
    load_bad(GW "\n[idc.bad id]\nurl = http://127.0.0.1:9101\n", 5,
             "[idc.bad id]: target id must be 1-63 characters of [A-Za-z0-9._-]");
    load_bad(GW "[idc.]\n\nurl = http://127.0.0.1:9101\n", 4,
             "[idc.]: target id must be 1-63 characters of [A-Za-z0-9._-]");
    load_bad(GW "[satellite.a/b]\nurl = http://127.0.0.1:9101\n", 4,
             "[satellite.a/b]: target id must be 1-63 characters of [A-Za-z0-9._-]");
}

/* Regression: inih cuts section names at 49 characters, so a long target id
 * was silently shortened (and two long ids sharing a prefix merged). */
static void test_long_section_name(void **state)
{
    (void)state;
    char text[512], id[64];
    memset(id, 'x', 50);
    id[50] = 0;
    snprintf(text, sizeof(text), GW "[idc.%s]\nurl = http://127.0.0.1:9101\npubkey = alpha.pub\n",
             id);
    load_bad(text, 4, "section name longer than 49 characters");
    /* the longest that fits is taken whole */
    id[45] = 0;
    snprintf(text, sizeof(text), GW "[idc.%s]\nurl = http://127.0.0.1:9101\npubkey = alpha.pub\n",
             id);
    struct sr_config *cfg = load_ok(text);
    assert_string_equal(cfg->targets[0].id, id);
    sr_config_free(cfg);
}

/* Regression: inih reads lines of at most 199 characters and parsed the rest of
 * a longer one as a line of its own, so a long comment became a syntax error
 * on a line that does not exist and later line numbers were off by one. */
static void test_long_line(void **state)
{
    (void)state;
    char text[1024], pad[300];
    memset(pad, 'c', 250);
    pad[250] = 0;
    snprintf(text, sizeof(text), GW "; %s\nbogus = 1\n", pad);
    load_bad(text, 4, "line longer than 198 characters");
    /* 198 characters (plus the newline) are fine */
    pad[196] = 0;
    snprintf(text, sizeof(text), GW "; %s\n", pad);
    assert_int_equal(strlen(text + strlen(GW)), 199);
    struct sr_config *cfg = load_ok(text);
    sr_config_free(cfg);
}

/* Regression: a UTF-8 byte order mark hid the first [gateway] header from the
 * line tracking, so "needs 'key'" named the first key's line. */
static void test_bom(void **state)
{
    (void)state;
    load_bad("\xef\xbb\xbf[gateway]\n\nid = gw\n", 1, "[gateway] needs 'key'");
    struct sr_config *cfg = load_ok("\xef\xbb\xbf" GW);
    assert_string_equal(cfg->id, "gw");
    sr_config_free(cfg);
}

/* Keys owned by other modules: names checked at load, values kept as text
 * with their lines for the owner to validate. */
static void test_preauth_limits(void **state)
{
    (void)state;
    struct sr_config *cfg = load_ok(GW);
    assert_int_equal(cfg->max_conns_per_address, 256);
    assert_int_equal(cfg->max_unauth_streams, 100);
    assert_int_equal(cfg->body_timeout_s, 30);
    assert_int_equal(cfg->body_min_rate, 256);
    assert_true(cfg->signed_rate == 2 && cfg->signed_burst == 20);
    sr_config_free(cfg);
    cfg = load_ok(GW "max_conns_per_address = 8\nmax_unauth_streams = 0\nbody_timeout_s = 2\n"
                     "body_min_rate = 0\nsigned_rate = 0.5\nsigned_burst = 3\n");
    assert_int_equal(cfg->max_conns_per_address, 8);
    assert_int_equal(cfg->max_unauth_streams, 0);
    assert_int_equal(cfg->body_timeout_s, 2);
    assert_int_equal(cfg->body_min_rate, 0);
    assert_true(cfg->signed_rate == 0.5 && cfg->signed_burst == 3);
    sr_config_free(cfg);
    load_bad(GW "body_timeout_s = -1\n", 4,
             "'body_timeout_s' must be a number in [0, 3600], got '-1'");
    load_bad(GW "max_conns_per_address = many\n", 4,
             "'max_conns_per_address' must be a number in [0, 1e+06], got 'many'");
}

/* Loads |text| written with |mode|: 0, or the error in |err|. */
static int load_mode(const char *text, mode_t mode, char *err, size_t errlen)
{
    write_cfg("secret.ini", text);
    assert_int_equal(chmod(path, mode), 0);
    struct sr_config *cfg = NULL;
    int rv = sr_config_load(&cfg, path, err, errlen);
    sr_config_free(cfg);
    return rv;
}

static void test_secret_needs_mode_0600(void **state)
{
    (void)state;
    static const char pw[] = GW "[cluster]\nnats = nats://10.0.0.1:4222\nuser = gs\n"
                                "password = hunter2\n"; /* line 7 */
    char err[1024], want[1200];
    assert_int_equal(load_mode(pw, 0644, err, sizeof(err)), SR_ERR_CONFIG);
    snprintf(want, sizeof(want),
             "%s:7: [cluster] password is a secret, but the file is open to others (mode 0644): "
             "chmod 600 %s (owned by the user skyrouted runs as)",
             path, path);
    assert_string_equal(err, want);
    assert_int_equal(load_mode(pw, 0640, err, sizeof(err)), SR_ERR_CONFIG);
    assert_non_null(strstr(err, "open to its group (mode 0640)"));
    assert_int_equal(load_mode(pw, 0600, err, sizeof(err)), 0);
    assert_int_equal(load_mode(GW "[cluster]\ntoken = s3cret\n", 0604, err, sizeof(err)),
                     SR_ERR_CONFIG);
    assert_non_null(strstr(err, ":5: [cluster] token is a secret"));
    /* credentials in the URL are a secret too; a file without one may be read by all */
    assert_int_equal(
        load_mode(GW "[cluster]\nnats = nats://gs:pw@10.0.0.1:4222\n", 0644, err, sizeof(err)),
        SR_ERR_CONFIG);
    assert_non_null(strstr(err, ":5: [cluster] nats is a secret"));
    assert_int_equal(
        load_mode(GW "[cluster]\nnats = nats://10.0.0.1:4222\n", 0644, err, sizeof(err)), 0);
}

static void test_extension_keys(void **state)
{
    (void)state;
    struct sr_config *cfg = load_ok(GW "station = 48.85,2.35,35\n"   /* 4 */
                                       "\n"                          /* 5 */
                                       "[operator.acme]\n"           /* 6 */
                                       "pubkey = alpha.pub\n"        /* 7 */
                                       "satellites = sat-1, sat-2\n" /* 8 */
                                       "[operator.zeta]\n"           /* 9 */
                                       "satellites = *\n"            /* 10 */
                                       "[policy]\n"                  /* 11 */
                                       "energy_weight = lots\n");    /* 12 */
    int line = 0;
    assert_string_equal(sr_config_get(cfg, "gateway", "station", &line), "48.85,2.35,35");
    assert_int_equal(line, 4);
    assert_string_equal(sr_config_get(cfg, "operator.acme", "satellites", &line), "sat-1, sat-2");
    assert_int_equal(line, 8);
    assert_null(sr_config_get(cfg, "operator.acme", "nothing", NULL));
    assert_string_equal(sr_config_section(cfg, "operator.", 0, &line), "operator.acme");
    assert_int_equal(line, 6);
    assert_string_equal(sr_config_section(cfg, "operator.", 1, &line), "operator.zeta");
    assert_int_equal(line, 9);
    assert_null(sr_config_section(cfg, "operator.", 2, NULL));
    double d = 0;
    char err[512];
    assert_int_equal(sr_config_num(cfg, "policy", "time_weight", 1.5, 0, 10, &d, err, sizeof(err)),
                     0);
    assert_true(d == 1.5);
    assert_int_equal(sr_config_num(cfg, "policy", "energy_weight", 1, 0, 10, &d, err, sizeof(err)),
                     SR_ERR_CONFIG);
    char want[PATH_MAX + 128];
    snprintf(want, sizeof(want),
             "%s:12: 'energy_weight' in [policy] must be a number in [0, 10], "
             "got 'lots'",
             path);
    assert_string_equal(err, want);
    sr_config_free(cfg);
    /* a misspelt key in a known extension section is still an error, at its line */
    load_bad(GW "[operator.acme]\npubkee = x\n", 5, "unknown key 'pubkee' in [operator.acme]");
    load_bad(GW "[policy]\ntme_weight = 3\n", 5, "unknown key 'tme_weight' in [policy]");
    load_bad(GW "[tls]\ncert_file = x\n", 5, "unknown key 'cert_file' in [tls]");
}

static void test_many_sections_indexed(void **state)
{
    (void)state;
    /* thousands of targets: keys are found through the index, the last
     * occurrence of a repeated key still wins */
    size_t n = 3000, cap = 200 * n + 1024;
    char *text = malloc(cap);
    assert_non_null(text);
    size_t len = (size_t)snprintf(text, cap, GW "[policy]\ntime_weight = 1\ntime_weight = 2\n");
    for (size_t i = 0; i < n; i++) {
        len += (size_t)snprintf(text + len, cap - len,
                                "[satellite.s%zu]\nurl = http://127.0.0.1:9\n"
                                "pubkey = alpha.pub\ncatnum = %zu\n",
                                i, 70000 + i);
    }
    struct sr_config *cfg = load_ok(text);
    free(text);
    assert_int_equal(cfg->ntargets, n);
    int line = 0;
    assert_string_equal(sr_config_get(cfg, "policy", "time_weight", &line), "2");
    assert_int_equal(line, 6);
    assert_string_equal(sr_config_get(cfg, "satellite.s0", "catnum", NULL), "70000");
    assert_string_equal(sr_config_get(cfg, "satellite.s2999", "catnum", &line), "72999");
    assert_int_equal(line, 6 + 4 * 2999 + 4);
    assert_null(sr_config_get(cfg, "satellite.s3000", "catnum", NULL));
    assert_null(sr_config_get(cfg, "satellite.s1", "nothing", NULL));
    assert_string_equal(cfg->targets[1234].id, "s1234");
    sr_config_free(cfg);
}

static void test_err_buffer_small(void **state)
{
    (void)state;
    write_cfg("bad.ini", GW "colour = blue\n");
    struct sr_config *cfg = NULL;
    char err[8];
    memset(err, 'z', sizeof(err));
    assert_int_equal(sr_config_load(&cfg, path, err, sizeof(err)), SR_ERR_CONFIG);
    assert_int_equal(strlen(err), sizeof(err) - 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_readme_example),
        cmocka_unit_test(test_minimal_defaults),
        cmocka_unit_test(test_every_key),
        cmocka_unit_test(test_relative_paths),
        cmocka_unit_test(test_missing_file),
        cmocka_unit_test(test_unknown_key),
        cmocka_unit_test(test_unknown_section),
        cmocka_unit_test(test_first_error_wins_with_right_lines),
        cmocka_unit_test(test_missing_required),
        cmocka_unit_test(test_bad_values),
        cmocka_unit_test(test_envelope_batch),
        cmocka_unit_test(test_bad_urls),
        cmocka_unit_test(test_missing_pubkey_file),
        cmocka_unit_test(test_syntax_error),
        cmocka_unit_test(test_duplicate_target_ids),
        cmocka_unit_test(test_invalid_target_ids),
        cmocka_unit_test(test_long_section_name),
        cmocka_unit_test(test_long_line),
        cmocka_unit_test(test_bom),
        cmocka_unit_test(test_extension_keys),
        cmocka_unit_test(test_preauth_limits),
        cmocka_unit_test(test_secret_needs_mode_0600),
        cmocka_unit_test(test_many_sections_indexed),
        cmocka_unit_test(test_err_buffer_small),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
