/*
 * skyroute keygen | seal | open | sign | verify: the operator's side of
 * crypto/. Payloads and envelopes travel on stdin/stdout; messages go to
 * stderr. Exit status: 0 ok, 1 refused or failed, 2 usage.
 */
#include "gateway/cli/cli.h"
#include "common/common.h"
#include "crypto/crypto.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SR_CLI_MAX_INPUT ((size_t)64 << 20)

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Common handling of getopt's complaints; returns the usage exit status. */
static int bad_option(const char *sub, const char *usage, int c, char **argv)
{
    const char *arg = argv[optind - 1];
    if (c == ':') {
        return sr_cli_usage_error(sub, usage, "option '%s' needs an argument", arg);
    }
    if (optopt && (arg == NULL || strncmp(arg, "--", 2) != 0)) {
        return sr_cli_usage_error(sub, usage, "unknown option '-%c'", optopt);
    }
    return sr_cli_usage_error(sub, usage, "unknown option '%s'", arg);
}

static int write_stdout(const uint8_t *p, size_t n, const char *sub)
{
    if ((n && fwrite(p, 1, n, stdout) != n) || fflush(stdout) != 0) {
        fprintf(stderr, "skyroute %s: cannot write to standard output\n", sub);
        return 1;
    }
    return 0;
}

static int read_input(uint8_t **data, size_t *len, size_t max, const char *sub)
{
    int rv = sr_cli_read_stdin(data, len, max);
    if (rv == SR_ERR_TOOBIG) {
        fprintf(stderr, "skyroute %s: standard input is over %zu bytes\n", sub, max);
    } else if (rv) {
        fprintf(stderr, "skyroute %s: cannot read standard input: %s\n", sub, sr_strerror(rv));
    }
    return rv;
}

static int init_crypto(const char *sub)
{
    if (sr_crypto_init() != 0) {
        fprintf(stderr, "skyroute %s: libsodium failed to initialise\n", sub);
        return 1;
    }
    return 0;
}

/* Loads each --trust file into |ring|, named by its path. */
static int load_trust(sr_keyring *ring, char **paths, size_t n, const char *sub)
{
    for (size_t i = 0; i < n; i++) {
        uint8_t pk[SR_PUBLICKEYBYTES];
        char err[512];
        if (sr_pubkey_load(pk, paths[i], err, sizeof(err)) != 0) {
            fprintf(stderr, "skyroute %s: %s\n", sub, err);
            return 1;
        }
        int rv = sr_keyring_add(ring, pk, paths[i]);
        if (rv && rv != SR_ERR_EXISTS) {
            fprintf(stderr, "skyroute %s: %s\n", sub, sr_strerror(rv));
            return 1;
        }
    }
    return 0;
}

static int load_key(sr_key **key, const char *path, const char *sub)
{
    char err[512];
    if (sr_key_load(key, path, err, sizeof(err)) != 0) {
        fprintf(stderr, "skyroute %s: %s\n", sub, err);
        return 1;
    }
    return 0;
}

/* ---- keygen ----------------------------------------------------------------- */

static const char keygen_usage[] =
    "usage: skyroute keygen --out PREFIX\n"
    "\n"
    "Generates an Ed25519 key pair: PREFIX.key (secret, mode 0600, one line\n"
    "\"ed25519-secret:<base64 seed>\") and PREFIX.pub (\"ed25519:<base64>\").\n"
    "Never overwrites. Prints the key id (16 hex digits) on stdout.\n";

int sr_cli_keygen(int argc, char **argv)
{
    static const struct option opts[] = {
        {"out", required_argument, NULL, 'o'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *prefix = NULL;
    int c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":o:h", opts, NULL)) != -1) {
        switch (c) {
        case 'o':
            prefix = optarg;
            break;
        case 'h':
            fputs(keygen_usage, stdout);
            return 0;
        default:
            return bad_option("keygen", keygen_usage, c, argv);
        }
    }
    if (optind < argc) {
        return sr_cli_usage_error("keygen", keygen_usage, "unexpected argument '%s'", argv[optind]);
    }
    if (!prefix || !*prefix) {
        return sr_cli_usage_error("keygen", keygen_usage, "missing --out PREFIX");
    }
    if (init_crypto("keygen")) {
        return 1;
    }
    sr_key *key = NULL;
    int rv = sr_key_generate(&key);
    if (rv == 0) {
        rv = sr_key_save(key, prefix);
    }
    if (rv) {
        if (rv == SR_ERR_EXISTS) {
            fprintf(stderr, "skyroute keygen: %s.key or %s.pub already exists; not overwriting\n",
                    prefix, prefix);
        } else {
            fprintf(stderr, "skyroute keygen: cannot write %s.key / %s.pub: %s\n", prefix, prefix,
                    sr_strerror(rv));
        }
        sr_key_free(key);
        return 1;
    }
    char idhex[2 * SR_KEYIDBYTES + 1];
    sr_hex(idhex, sr_key_id(key), SR_KEYIDBYTES);
    printf("%s\n", idhex);
    fprintf(stderr, "skyroute keygen: wrote %s.key (secret, 0600) and %s.pub, key id %s\n", prefix,
            prefix, idhex);
    sr_key_free(key);
    return fflush(stdout) == 0 ? 0 : 1;
}

/* ---- seal ------------------------------------------------------------------- */

static const char seal_usage[] =
    "usage: skyroute seal --key FILE.key --to ID --handler NAME [OPTIONS] < payload > envelope\n"
    "\n"
    "Wraps stdin in a signed envelope (DESIGN section 5).\n"
    "  --key FILE.key        signing key\n"
    "  --to ID               receiver id (dst)\n"
    "  --handler NAME        handler to run at the target\n"
    "  --from ID             sender id (src; default \"cli\")\n"
    "  --deadline-ms N       exp = now + N (default 60000)\n"
    "  --work GOP            hint: work in giga-operations\n"
    "  --result-bytes N      hint: expected result size\n"
    "  --kind KIND           workload (default), result or schedule\n"
    "  --id HEX              envelope id, 32 hex digits (default random)\n";

static int set_str(char *dst, size_t cap, const char *val, const char *opt)
{
    size_t n = strlen(val);
    if (n >= cap) {
        return sr_cli_usage_error("seal", seal_usage, "%s is %zu bytes, at most %zu allowed", opt,
                                  n, cap - 1);
    }
    memcpy(dst, val, n + 1);
    return 0;
}

int sr_cli_seal(int argc, char **argv)
{
    static const struct option opts[] = {
        {"key", required_argument, NULL, 'k'},
        {"to", required_argument, NULL, 't'},
        {"handler", required_argument, NULL, 'H'},
        {"from", required_argument, NULL, 'f'},
        {"deadline-ms", required_argument, NULL, 'd'},
        {"work", required_argument, NULL, 'w'},
        {"result-bytes", required_argument, NULL, 'r'},
        {"kind", required_argument, NULL, 'K'},
        {"id", required_argument, NULL, 'i'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct sr_envelope env;
    memset(&env, 0, sizeof(env));
    env.kind = SR_KIND_WORKLOAD;
    strcpy(env.src, "cli");
    const char *key_path = NULL;
    bool have_to = false, have_handler = false, have_id = false;
    int64_t deadline = 60000;
    int c, rv;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":k:t:H:f:d:w:r:K:i:h", opts, NULL)) != -1) {
        switch (c) {
        case 'k':
            key_path = optarg;
            break;
        case 't':
            if ((rv = set_str(env.dst, sizeof(env.dst), optarg, "--to"))) {
                return rv;
            }
            have_to = true;
            break;
        case 'H':
            if ((rv = set_str(env.handler, sizeof(env.handler), optarg, "--handler"))) {
                return rv;
            }
            have_handler = true;
            break;
        case 'f':
            if ((rv = set_str(env.src, sizeof(env.src), optarg, "--from"))) {
                return rv;
            }
            break;
        case 'd':
            if (sr_parse_i64(&deadline, optarg, strlen(optarg)) != 0 || deadline <= 0 ||
                deadline > (int64_t)10 * 365 * 86400 * 1000) {
                return sr_cli_usage_error("seal", seal_usage,
                                          "--deadline-ms must be a positive number of ms");
            }
            break;
        case 'w':
            if (sr_parse_double(&env.work, optarg, strlen(optarg)) != 0 || env.work < 0) {
                return sr_cli_usage_error("seal", seal_usage,
                                          "--work must be a number >= 0 (giga-operations)");
            }
            env.flags |= SR_ENV_HAS_WORK;
            break;
        case 'r':
            if (sr_parse_i64(&env.result_bytes, optarg, strlen(optarg)) != 0 ||
                env.result_bytes < 0) {
                return sr_cli_usage_error("seal", seal_usage, "--result-bytes must be >= 0");
            }
            env.flags |= SR_ENV_HAS_RESULT_BYTES;
            break;
        case 'K': {
            sr_kind k;
            for (k = SR_KIND_WORKLOAD; k <= SR_KIND_SCHEDULE; k++) {
                if (!strcmp(optarg, sr_kind_name(k))) {
                    break;
                }
            }
            if (k > SR_KIND_SCHEDULE) {
                return sr_cli_usage_error("seal", seal_usage,
                                          "--kind must be workload, result or schedule");
            }
            env.kind = k;
            break;
        }
        case 'i':
            if (sr_unhex(env.id, SR_ENV_IDBYTES, optarg, strlen(optarg)) != 0) {
                return sr_cli_usage_error("seal", seal_usage, "--id must be 32 hex digits");
            }
            have_id = true;
            break;
        case 'h':
            fputs(seal_usage, stdout);
            return 0;
        default:
            return bad_option("seal", seal_usage, c, argv);
        }
    }
    if (optind < argc) {
        return sr_cli_usage_error("seal", seal_usage, "unexpected argument '%s'", argv[optind]);
    }
    if (!key_path) {
        return sr_cli_usage_error("seal", seal_usage, "missing --key FILE.key");
    }
    if (!have_to) {
        return sr_cli_usage_error("seal", seal_usage, "missing --to ID");
    }
    if (!have_handler && env.kind == SR_KIND_WORKLOAD) {
        return sr_cli_usage_error("seal", seal_usage, "missing --handler NAME");
    }
    if (init_crypto("seal")) {
        return 1;
    }

    sr_key *key = NULL;
    if (load_key(&key, key_path, "seal")) {
        return 1;
    }
    uint8_t *payload = NULL;
    size_t plen = 0;
    if (read_input(&payload, &plen, SR_CLI_MAX_INPUT, "seal")) {
        sr_key_free(key);
        return 1;
    }
    if (!have_id) {
        sr_envelope_new_id(env.id);
    }
    env.iat = now_ms();
    env.exp = env.iat + deadline;
    env.payload = payload;
    env.payload_len = plen;

    sr_buf out;
    sr_buf_init(&out, SR_CLI_MAX_INPUT + 4096);
    rv = sr_envelope_seal(&out, key, &env);
    int status = 1;
    if (rv) {
        fprintf(stderr, "skyroute seal: %s\n", sr_strerror(rv));
    } else {
        status = write_stdout(out.data, out.len, "seal");
    }
    sr_buf_free(&out);
    free(payload);
    sr_key_free(key);
    return status;
}

/* ---- open ------------------------------------------------------------------- */

static const char open_usage[] =
    "usage: skyroute open --trust FILE.pub [--trust ...] [OPTIONS] < envelope > payload\n"
    "\n"
    "Verifies an envelope and writes its payload. Any refusal exits 1 with\n"
    "\"skyroute open: refused: <reason>: <detail>\".\n"
    "  --trust FILE.pub      a trusted signer (repeatable; at least one)\n"
    "  --to ID               refuse envelopes not addressed to ID\n"
    "  --max-bytes N         refuse envelopes over N bytes (default 67108864)\n"
    "  --verbose             print signer, kind and handler to stderr\n";

int sr_cli_open(int argc, char **argv)
{
    static const struct option opts[] = {
        {"trust", required_argument, NULL, 'T'},
        {"to", required_argument, NULL, 't'},
        {"max-bytes", required_argument, NULL, 'm'},
        {"verbose", no_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    char **trust = calloc((size_t)argc + 1, sizeof(*trust));
    if (!trust) {
        fprintf(stderr, "skyroute open: out of memory\n");
        return 1;
    }
    size_t ntrust = 0;
    const char *self = NULL;
    int64_t max_bytes = (int64_t)SR_CLI_MAX_INPUT;
    bool verbose = false;
    int c, status = 1;
    sr_keyring *ring = NULL;
    uint8_t *data = NULL;
    size_t len = 0;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":T:t:m:vh", opts, NULL)) != -1) {
        switch (c) {
        case 'T':
            trust[ntrust++] = optarg;
            break;
        case 't':
            self = optarg;
            break;
        case 'm':
            if (sr_parse_i64(&max_bytes, optarg, strlen(optarg)) != 0 || max_bytes <= 0) {
                status = sr_cli_usage_error("open", open_usage, "--max-bytes must be positive");
                goto out;
            }
            break;
        case 'v':
            verbose = true;
            break;
        case 'h':
            fputs(open_usage, stdout);
            status = 0;
            goto out;
        default:
            status = bad_option("open", open_usage, c, argv);
            goto out;
        }
    }
    if (optind < argc) {
        status = sr_cli_usage_error("open", open_usage, "unexpected argument '%s'", argv[optind]);
        goto out;
    }
    if (ntrust == 0) {
        status = sr_cli_usage_error("open", open_usage, "missing --trust FILE.pub");
        goto out;
    }
    if (init_crypto("open") || sr_keyring_new(&ring) != 0 ||
        load_trust(ring, trust, ntrust, "open")) {
        goto out;
    }
    int rv = sr_cli_read_stdin(&data, &len, (size_t)max_bytes);
    if (rv == SR_ERR_TOOBIG) {
        fprintf(stderr, "skyroute open: refused: %s: input is over %lld bytes\n",
                sr_strerror(SR_ERR_ENV_OVERSIZE), (long long)max_bytes);
        goto out;
    }
    if (rv) {
        fprintf(stderr, "skyroute open: cannot read standard input: %s\n", sr_strerror(rv));
        goto out;
    }
    struct sr_open_opts o = {
        .trust = ring,
        .self_id = self,
        .now_ms = now_ms(),
        .max_len = (size_t)max_bytes,
        .kinds = 0,
    };
    struct sr_envelope env;
    char why[512];
    rv = sr_envelope_open(&env, data, len, &o, why, sizeof(why));
    if (rv) {
        fprintf(stderr, "skyroute open: refused: %s: %s\n", sr_strerror(rv), why);
        goto out;
    }
    if (verbose) {
        char idhex[2 * SR_KEYIDBYTES + 1], envid[2 * SR_ENV_IDBYTES + 1];
        sr_hex(idhex, env.signer, SR_KEYIDBYTES);
        sr_hex(envid, env.id, SR_ENV_IDBYTES);
        fprintf(stderr,
                "skyroute open: signer %s (%s), kind %s, handler '%s', src '%s', dst '%s', id %s, "
                "%zu payload bytes\n",
                env.signer_name, idhex, sr_kind_name(env.kind), env.handler, env.src, env.dst,
                envid, env.payload_len);
    }
    status = write_stdout(env.payload, env.payload_len, "open");
out:
    free(data);
    sr_keyring_free(ring);
    free(trust);
    return status;
}

/* ---- sign / verify ----------------------------------------------------------- */

/* What sign and verify share: the request a header is for. */
struct req_opts {
    const char *method, *url, *content_type, *station;
};

/* The request options sign and verify share (a macro: an option table's
 * initialisers must be constants). */
/* clang-format off */
#define REQ_OPTIONS                                 \
    {"method", required_argument, NULL, 'm'},       \
    {"url", required_argument, NULL, 'u'},          \
    {"content-type", required_argument, NULL, 'c'}, \
    {"station", required_argument, NULL, 'S'}
/* clang-format on */

/* Takes one request option; false when |c| is none of them. */
static bool req_opt(struct req_opts *r, int c, const char *arg)
{
    switch (c) {
    case 'm':
        r->method = arg;
        return true;
    case 'u':
        r->url = arg;
        return true;
    case 'c':
        r->content_type = arg;
        return true;
    case 'S':
        r->station = arg;
        return true;
    default:
        return false;
    }
}

/* The path and query of |url|: "http://h:1/v1/passes?x=1" or "/v1/passes?x=1"
 * (a fragment is not sent, so not signed). NULL if it has no path. */
static const char *url_target(const char *url, char *out, size_t outlen)
{
    const char *p = url;
    const char *sch = strstr(url, "://");
    if (sch) {
        p = strchr(sch + 3, '/');
        if (!p) {
            return NULL;
        }
    }
    size_t n = strcspn(p, "#");
    if (*p != '/' || n >= outlen) {
        return NULL;
    }
    memcpy(out, p, n);
    out[n] = 0;
    return out;
}

/* Fills |sr| from |r| (|target| holds the path); a usage error's status, or 0. */
static int req_fill(struct sr_sigreq *sr, const struct req_opts *r, char *target, size_t tlen,
                    const char *sub, const char *usage)
{
    if (!r->url) {
        return sr_cli_usage_error(sub, usage, "missing --url URL (the request being signed)");
    }
    if (!r->station) {
        return sr_cli_usage_error(sub, usage, "missing --station ID (the receiving gateway's id)");
    }
    if (!url_target(r->url, target, tlen)) {
        return sr_cli_usage_error(sub, usage, "--url '%s' has no path", r->url);
    }
    memset(sr, 0, sizeof(*sr));
    sr->method = r->method ? r->method : "PUT";
    sr->target = target;
    sr->content_type = r->content_type;
    sr->station = r->station;
    return 0;
}

static const char sign_usage[] =
    "usage: skyroute sign --key FILE.key --url URL --station ID [--method PUT]\n"
    "                     [--content-type TYPE] [--time UNIX] [--nonce N] < body\n"
    "\n"
    "Prints a skyroute-signature header value (v2) for the request that sends\n"
    "stdin to URL: an Ed25519 signature over the method, path, query, content\n"
    "type, the receiving station's id, the time, a fresh nonce and the body's\n"
    "SHA-256. Send the request with the same URL and content type, to that\n"
    "station, within the gateway's signature window (5 minutes by default).\n"
    "  --url URL             http://host:port/v1/passes?format=ion, or the path alone\n"
    "  --station ID          the receiving gateway's [gateway] id\n"
    "  --method M            default PUT\n"
    "  --content-type TYPE   the content-type header the request will carry\n"
    "  --time UNIX           signing time in seconds (default now)\n"
    "  --nonce N             16-64 characters of [A-Za-z0-9_-] (default random)\n";

int sr_cli_sign(int argc, char **argv)
{
    static const struct option opts[] = {
        REQ_OPTIONS,
        {"key", required_argument, NULL, 'k'},
        {"time", required_argument, NULL, 't'},
        {"nonce", required_argument, NULL, 'n'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *key_path = NULL, *nonce = NULL;
    struct req_opts r = {0};
    int64_t ts = now_ms() / 1000;
    int c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":k:h", opts, NULL)) != -1) {
        if (req_opt(&r, c, optarg)) {
            continue;
        }
        switch (c) {
        case 'k':
            key_path = optarg;
            break;
        case 't':
            if (sr_parse_i64(&ts, optarg, strlen(optarg)) != 0 || ts < 0) {
                return sr_cli_usage_error("sign", sign_usage, "--time: expected UNIX seconds");
            }
            break;
        case 'n':
            nonce = optarg;
            break;
        case 'h':
            fputs(sign_usage, stdout);
            return 0;
        default:
            return bad_option("sign", sign_usage, c, argv);
        }
    }
    if (optind < argc) {
        return sr_cli_usage_error("sign", sign_usage, "unexpected argument '%s'", argv[optind]);
    }
    if (!key_path) {
        return sr_cli_usage_error("sign", sign_usage, "missing --key FILE.key");
    }
    struct sr_sigreq sr;
    char target[8192];
    int st = req_fill(&sr, &r, target, sizeof(target), "sign", sign_usage);
    if (st) {
        return st;
    }
    if (init_crypto("sign")) {
        return 1;
    }
    char fresh[2 * SR_ENV_IDBYTES + 1];
    if (!nonce) {
        uint8_t rnd[SR_ENV_IDBYTES];
        sr_envelope_new_id(rnd); /* 16 random bytes */
        sr_hex(fresh, rnd, sizeof(rnd));
        nonce = fresh;
    }
    sr_key *key = NULL;
    if (load_key(&key, key_path, "sign")) {
        return 1;
    }
    uint8_t *body = NULL;
    size_t len = 0;
    if (read_input(&body, &len, SR_CLI_MAX_INPUT, "sign")) {
        sr_key_free(key);
        return 1;
    }
    sr.body = body;
    sr.len = len;
    char hdr[SR_SIGHDR_MAX], why[256] = "";
    int n = sr_sighdr_sign(hdr, key, &sr, ts, nonce, why, sizeof(why));
    free(body);
    sr_key_free(key);
    if (n < 0) {
        fprintf(stderr, "skyroute sign: %s\n", why);
        return 1;
    }
    printf("%s\n", hdr);
    return fflush(stdout) == 0 ? 0 : 1;
}

static const char verify_usage[] =
    "usage: skyroute verify --trust FILE.pub [--trust ...] --signature HDR --url URL\n"
    "                       --station ID [--method PUT] [--content-type TYPE] < body\n"
    "\n"
    "Exits 0 if the skyroute-signature header value HDR verifies, with a trusted\n"
    "key, for the request that sends stdin to URL at station ID; prints the\n"
    "signing time and nonce. The time window and nonce reuse are the gateway's to\n"
    "check.\n"
    "  --verbose             name the signer on stderr\n";

int sr_cli_verify(int argc, char **argv)
{
    static const struct option opts[] = {
        REQ_OPTIONS,
        {"trust", required_argument, NULL, 'T'},
        {"signature", required_argument, NULL, 's'},
        {"verbose", no_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    char **trust = calloc((size_t)argc + 1, sizeof(*trust));
    if (!trust) {
        fprintf(stderr, "skyroute verify: out of memory\n");
        return 1;
    }
    size_t ntrust = 0;
    const char *sig = NULL;
    struct req_opts r = {0};
    bool verbose = false;
    int c, status = 1;
    sr_keyring *ring = NULL;
    uint8_t *body = NULL;
    size_t len = 0;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":T:s:vh", opts, NULL)) != -1) {
        if (req_opt(&r, c, optarg)) {
            continue;
        }
        switch (c) {
        case 'T':
            trust[ntrust++] = optarg;
            break;
        case 's':
            sig = optarg;
            break;
        case 'v':
            verbose = true;
            break;
        case 'h':
            fputs(verify_usage, stdout);
            status = 0;
            goto out;
        default:
            status = bad_option("verify", verify_usage, c, argv);
            goto out;
        }
    }
    if (optind < argc) {
        status =
            sr_cli_usage_error("verify", verify_usage, "unexpected argument '%s'", argv[optind]);
        goto out;
    }
    if (ntrust == 0) {
        status = sr_cli_usage_error("verify", verify_usage, "missing --trust FILE.pub");
        goto out;
    }
    if (!sig) {
        status = sr_cli_usage_error("verify", verify_usage, "missing --signature HDR");
        goto out;
    }
    struct sr_sigreq sr;
    char target[8192];
    status = req_fill(&sr, &r, target, sizeof(target), "verify", verify_usage);
    if (status) {
        goto out;
    }
    status = 1;
    if (init_crypto("verify") || sr_keyring_new(&ring) != 0 ||
        load_trust(ring, trust, ntrust, "verify") ||
        read_input(&body, &len, SR_CLI_MAX_INPUT, "verify")) {
        goto out;
    }
    sr.body = body;
    sr.len = len;
    const char *name = NULL;
    char why[256];
    sr_sighdr h;
    int rv = sr_sighdr_verify(ring, sig, strlen(sig), &sr, &h, &name, why, sizeof(why));
    if (rv) {
        fprintf(stderr, "skyroute verify: refused: %s: %s\n", sr_strerror(rv), why);
        goto out;
    }
    if (verbose) {
        fprintf(stderr, "skyroute verify: good signature by %s\n", name);
    }
    printf("ts=%lld nonce=%s\n", (long long)h.ts, h.nonce);
    status = fflush(stdout) == 0 ? 0 : 1;
out:
    free(body);
    sr_keyring_free(ring);
    free(trust);
    return status;
}
