/*
 * skyroute-node: the target agent run at an IDC or on a satellite's onboard
 * computer (node.h lists its parts). This file reads the options, starts the
 * parts in order, drains on SIGTERM and shuts down.
 */
#include "gateway/node/node.h"

#include <getopt.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

static const char usage_text[] =
    "usage: skyroute-node --id ID --listen HOST:PORT --key FILE.key --trust FILE.pub\n"
    "                     [--trust FILE.pub ...] [--admin HOST:PORT] [--config FILE]\n"
    "                     [--gops N] [--max-body BYTES] [--log-level LEVEL]\n"
    "\n"
    "Verifies signed workload envelopes on POST /v1/exec, runs the named handler\n"
    "once per envelope id and answers with a signed result envelope.\n"
    "Handlers: echo, digest (BLAKE2b-256 hex), compute (spends hints.work Gop at\n"
    "--gops), exec:NAME (a command from [exec.NAME] in --config).\n"
    "\n"
    "  --id ID            this node's id (envelopes must be addressed to it)\n"
    "  --listen HOST:PORT h2c listener for /v1/exec\n"
    "  --key FILE.key     signing key for results\n"
    "  --trust FILE.pub   a sender key to accept (repeatable)\n"
    "  --admin HOST:PORT  admin listener: /metrics, /healthz (HTTP/1.1 and h2c)\n"
    "  --config FILE      INI: [node] any option below as key = value (max_body =\n"
    "                     for --max-body; the command line wins), exec_user (run\n"
    "                     handlers as this user) and replay_budget_mb (default\n"
    "                     256: the replay guard's ids, grown as the load needs;\n"
    "                     when full the node answers 503 busy with\n"
    "                     retry_after_ms); [exec.NAME] command, timeout_ms,\n"
    "                     max_output, and the handler's rlimits cpu_s (60),\n"
    "                     max_memory (4 GiB), max_files (1024), max_procs (1024)\n"
    "  --gops N           compute rate in giga-operations per second (default 10)\n"
    "  --envelope-batch N results sealed under one signature at most (1..1024, or\n"
    "                     auto: 32, or more with many workloads in flight or when\n"
    "                     they came in larger batches, up to 256; default auto;\n"
    "                     1: a signature per result)\n"
    "  --upload-slots N   let envelopes above 16 KiB in N at a time per connection,\n"
    "                     oldest first, each whole in turn, whatever the sender's\n"
    "                     order (default 0: as sent; skyrouted already sends them\n"
    "                     8 at a time)\n"
    "  --body-timeout S   an envelope whose body gets no byte for S seconds, or\n"
    "                     comes slower than 256 bytes/s over them, is refused (408,\n"
    "                     stream reset); also at most 256 connections per address\n"
    "                     (default 30; 0: off)\n"
    "  --replay-memory BYTES  results kept to answer a re-sent workload (default\n"
    "                     256 MiB; the oldest are dropped first: a re-sent one then\n"
    "                     gets 409 result_dropped, never a second run)\n"
    "  --emulate-link FILE  behave like a satellite behind an RF link: FILE holds its\n"
    "                     elements (TLE or OMM; --sat picks one by name or catalogue\n"
    "                     number, else the first); each direction is delayed by the\n"
    "                     light time of the moment, and below --min-el the node is\n"
    "                     unreachable (listener closed, connections reset)\n"
    "  --station LAT,LON,ALT_M  the ground station for --emulate-link\n"
    "  --min-el DEG       elevation mask for --emulate-link (default 10)\n"
    "  --sat NAME|NUMBER  which satellite of FILE this node is\n"
    "  --link-bps N       the emulated link's data rate in bits per second, each\n"
    "                     direction (default: unlimited); a transfer still going at\n"
    "                     LOS is cut\n"
    "  --gateway URL --gateway-id ID  onboard work for the ground: POST /v1/submit on\n"
    "                     the admin listener queues it; at each contact it is uplinked\n"
    "                     (signed) and results come back from the gateway's outbox\n"
    "                     (GET /v1/inbox/ID on the admin listener)\n"
    "  --help, --version\n";

/* What the options say beyond the node's own fields. */
struct node_opts {
    const char *listen, *admin, *keyfile, *config;
    const char *trust[MAX_TRUST];
    size_t ntrust;
    const char *emu_file, *emu_station, *emu_which;
    double link_bps;
    size_t replay_memory;
    unsigned upload_slots;
    int body_timeout_s;
};

static int usage_error(const char *msg)
{
    fprintf(stderr, "skyroute-node: %s\n%s", msg, usage_text);
    return 2;
}

/* The options; [node] in --config takes the same names. */
static const struct option node_options[] = {
    {"id", required_argument, 0, 'i'},
    {"listen", required_argument, 0, 'l'},
    {"key", required_argument, 0, 'k'},
    {"trust", required_argument, 0, 't'},
    {"admin", required_argument, 0, 'a'},
    {"config", required_argument, 0, 'c'},
    {"gops", required_argument, 0, 'g'},
    {"max-body", required_argument, 0, 'm'},
    {"log-level", required_argument, 0, 'L'},
    {"help", no_argument, 0, 'h'},
    {"version", no_argument, 0, 'V'},
    {"emulate-link", required_argument, 0, 'E'},
    {"station", required_argument, 0, 'S'},
    {"min-el", required_argument, 0, 'M'},
    {"sat", required_argument, 0, 'A'},
    {"gateway", required_argument, 0, 'G'},
    {"gateway-id", required_argument, 0, 'I'},
    {"link-bps", required_argument, 0, 'R'},
    {"envelope-batch", required_argument, 0, 'B'},
    {"replay-memory", required_argument, 0, 'P'},
    {"upload-slots", required_argument, 0, 'U'},
    {"body-timeout", required_argument, 0, 'T'},
    {0, 0, 0, 0},
};

/* The --config FILE of the command line, or NULL: found before the other
 * options are read, since the [node] keys in it go before them. */
static const char *find_config(int argc, char **argv)
{
    const char *path = NULL;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, "", node_options, NULL)) != -1) {
        if (c == 'c') {
            path = optarg;
        }
    }
    optind = 0; /* glibc: the next getopt_long starts afresh */
    return path;
}

/* The command line with the [node] options of --config before its own:
 * kept for the process's life (the options point into it). */
static char **file_args, **all_args;
static size_t nfile_args;

/* Reads the command line into |n| and |o|. -1 to go on, else the exit code:
 * 0 after --help or --version, 2 after a usage error. */
static int parse_options(int argc, char **argv, struct node *n, struct node_opts *o)
{
    double d;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, "", node_options, NULL)) != -1) {
        switch (c) {
        case 'i':
            if (!optarg[0] || strlen(optarg) >= sizeof(n->id)) {
                return usage_error("--id must be 1-63 characters");
            }
            snprintf(n->id, sizeof(n->id), "%s", optarg);
            break;
        case 'l':
            o->listen = optarg;
            break;
        case 'k':
            o->keyfile = optarg;
            break;
        case 'a':
            o->admin = optarg;
            break;
        case 'c':
            o->config = optarg;
            break;
        case 't':
            if (o->ntrust == MAX_TRUST) {
                return usage_error("too many --trust keys");
            }
            o->trust[o->ntrust++] = optarg;
            break;
        case 'P':
            if (sr_parse_double(&d, optarg, strlen(optarg)) != 0 || d < 0 || d > 1e12 ||
                d != (double)(size_t)d) {
                return usage_error("--replay-memory must be a number of bytes in [0, 1e12]");
            }
            o->replay_memory = (size_t)d;
            break;
        case 'U':
            if (sr_parse_double(&d, optarg, strlen(optarg)) != 0 || d < 0 || d > 1000 ||
                d != (double)(unsigned)d) {
                return usage_error("--upload-slots must be an integer in [0, 1000]");
            }
            o->upload_slots = (unsigned)d;
            break;
        case 'T':
            if (sr_parse_double(&d, optarg, strlen(optarg)) != 0 || d < 0 || d > 3600 ||
                d != (double)(int)d) {
                return usage_error("--body-timeout must be whole seconds in [0, 3600]");
            }
            o->body_timeout_s = (int)d;
            break;
        case 'B':
            if (!strcmp(optarg, "auto")) {
                n->batch_max = 0;
                break;
            }
            if (sr_parse_double(&d, optarg, strlen(optarg)) != 0 || d < 1 || d > SR_ENV_BATCH_MAX ||
                d != (double)(size_t)d) {
                return usage_error("--envelope-batch must be auto or an integer in [1, 1024]");
            }
            n->batch_max = (size_t)d;
            break;
        case 'g':
            if (sr_parse_double(&d, optarg, strlen(optarg)) != 0 || d <= 0) {
                return usage_error("--gops must be a positive number");
            }
            n->gops = d;
            break;
        case 'm':
            if (sr_parse_double(&d, optarg, strlen(optarg)) != 0 || d < 0 || d > (1 << 30)) {
                return usage_error("--max-body must be 0..1073741824");
            }
            n->max_body = (size_t)d;
            break;
        case 'L':
            sr_log_level = !strcmp(optarg, "debug")   ? SR_LOG_DEBUG
                           : !strcmp(optarg, "warn")  ? SR_LOG_WARN
                           : !strcmp(optarg, "error") ? SR_LOG_ERROR
                                                      : SR_LOG_INFO;
            break;
        case 'E':
            o->emu_file = optarg;
            break;
        case 'G':
            if (strlen(optarg) >= sizeof(n->gw_url)) {
                return usage_error("--gateway URL too long");
            }
            snprintf(n->gw_url, sizeof(n->gw_url), "%s", optarg);
            break;
        case 'I':
            if (!optarg[0] || strlen(optarg) >= sizeof(n->gw_id)) {
                return usage_error("--gateway-id must be 1-63 characters");
            }
            snprintf(n->gw_id, sizeof(n->gw_id), "%s", optarg);
            break;
        case 'S':
            o->emu_station = optarg;
            break;
        case 'A':
            o->emu_which = optarg;
            break;
        case 'M':
            if (sr_parse_double(&d, optarg, strlen(optarg)) != 0 || d < -5 || d > 90) {
                return usage_error("--min-el must be a number of degrees in [-5, 90]");
            }
            n->emu_min_el = d;
            break;
        case 'R':
            if (sr_parse_double(&d, optarg, strlen(optarg)) != 0 || d < 8 || d > 1e12) {
                return usage_error("--link-bps must be a rate in bits per second in [8, 1e12]");
            }
            o->link_bps = d;
            break;
        case 'h':
            fputs(usage_text, stdout);
            return 0;
        case 'V':
            printf("skyroute-node %s\n", SR_VERSION);
            return 0;
        default: {
            char msg[128];
            sr_getopt_error(msg, sizeof(msg), argv, optind, optopt);
            return usage_error(msg);
        }
        }
    }
    if (optind < argc) {
        return usage_error("unexpected argument");
    }
    if (!n->id[0] || !o->listen || !o->keyfile || o->ntrust == 0) {
        return usage_error(!n->id[0]     ? "missing --id"
                           : !o->listen  ? "missing --listen"
                           : !o->keyfile ? "missing --key"
                                         : "missing --trust (at least one sender key)");
    }
    if ((n->gw_url[0] != 0) != (n->gw_id[0] != 0)) {
        return usage_error("--gateway and --gateway-id go together");
    }
    if ((o->emu_file != NULL) != (o->emu_station != NULL)) {
        return usage_error("--emulate-link and --station go together");
    }
    if (o->link_bps > 0 && !o->emu_file) {
        return usage_error("--link-bps needs --emulate-link");
    }
    return -1;
}

/* The signing key, the trusted senders, the replay guard (its result log
 * reserved up front), the root cache and the metrics. 0, or -1 after saying
 * why. */
static int open_state(struct node *n, const struct node_opts *o)
{
    char err[300];
    if (sr_key_load(&n->key, o->keyfile, err, sizeof(err)) != 0) {
        fprintf(stderr, "skyroute-node: %s: %s\n", o->keyfile, err);
        return -1;
    }
    /* the guard holds each id until its envelope expires: at R requests a
     * second and deadline D it needs R x D ids, and grows to them within
     * [node] replay_budget_mb; beyond it the node answers busy */
    size_t ids = sr_replay_capacity_for(n->replay_budget);
    if (ids == 0) {
        fprintf(stderr, "skyroute-node: replay_budget_mb is too small for one id\n");
        return -1;
    }
    if (sr_keyring_new(&n->trust) != 0 || sr_replay_new(&n->replay, ids) != 0 ||
        sr_rootcache_new(&n->roots) != 0 || sr_metrics_new(&n->metrics) != 0) {
        fprintf(stderr, "skyroute-node: out of memory\n");
        return -1;
    }
    sr_replay_set_result_limit(n->replay, o->replay_memory);
    /* the result log is faulted in now, not a page at a time under load */
    if (sr_replay_reserve(n->replay) != 0) {
        fprintf(stderr, "skyroute-node: cannot reserve --replay-memory %zu bytes\n",
                o->replay_memory);
        return -1;
    }
    for (size_t i = 0; i < o->ntrust; i++) {
        uint8_t pk[SR_PUBLICKEYBYTES];
        if (sr_pubkey_load(pk, o->trust[i], err, sizeof(err)) != 0) {
            fprintf(stderr, "skyroute-node: --trust %s: %s\n", o->trust[i], err);
            return -1;
        }
        int rv = sr_keyring_add(n->trust, pk, o->trust[i]);
        if (rv != 0 && rv != SR_ERR_EXISTS) {
            fprintf(stderr, "skyroute-node: --trust %s: %s\n", o->trust[i], sr_strerror(rv));
            return -1;
        }
    }
    node_metrics_describe(n);
    return 0;
}

/* ---- draining on SIGTERM: no new streams, the ones in flight finish -------------------- */

static void drain_check(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct node *n = arg;
    if (sr_http_server_drain_step(n->main)) {
        event_base_loopexit(n->base, NULL);
    }
}

static void on_term(void *arg)
{
    struct node *n = arg;
    if (n->draining) {
        event_base_loopexit(n->base, NULL);
        return;
    }
    n->draining = true;
    sr_notify_stopping("draining");
    sr_log(SR_LOG_INFO, "draining: %zu requests in flight", sr_http_server_inflight(n->main));
    sr_http_server_stop_listening(n->main);
    sr_http_server_goaway(n->main, false); /* clients start no new streams here */
    n->drain_timer = event_new(n->base, -1, EV_PERSIST, drain_check, n);
    struct timeval tv = {0, 50000};
    event_add(n->drain_timer, &tv);
}

/* The event loop, and SIGTERM caught on it. 0, or -1 after saying why. */
static int open_loop(struct node *n)
{
    /* keep freed memory rather than hand the heap's top back to the kernel
     * after every batch of results (a brk() pair and fresh page faults each),
     * and take bodies up to 8 MiB from the heap, not from an mmap() each
     * (setting one threshold turns off glibc's adjustment of the other) */
    mallopt(M_TRIM_THRESHOLD, 32 << 20);
    mallopt(M_MMAP_THRESHOLD, 8 << 20);
    n->base = event_base_new();
    /* three priorities, everything at the middle one by default; results are
     * sealed at the lowest, when a turn has nothing else to run */
    if (n->base && event_base_priority_init(n->base, 3) != 0) {
        event_base_free(n->base);
        n->base = NULL;
    }
    if (!n->base) {
        fprintf(stderr, "skyroute-node: cannot create event loop\n");
        return -1;
    }
    /* before listening: a SIGTERM that arrives once the port is open is caught */
    if (sr_signals_install(n->base, on_term, NULL, n) != 0) {
        fprintf(stderr, "skyroute-node: cannot install signal handlers\n");
        return -1;
    }
    return 0;
}

/* The main listener (h2c, the emulated link's rate) and the admin one. 0, or
 * -1 after saying why. */
static int open_listeners(struct node *n, const struct node_opts *o)
{
    char err[300];
    struct sr_http_server_opts so = {.listen = o->listen,
                                     .max_body = n->max_body + 4096,
                                     .rate_Bps = (uint64_t)(o->link_bps / 8),
                                     .upload_slots = o->upload_slots,
                                     /* before an envelope is whole nobody is
                                      * authenticated: the gateway's defaults */
                                     .per_addr_conns = 256,
                                     .body_timeout_s = o->body_timeout_s,
                                     .body_min_Bps = 256,
                                     .metrics = n->metrics,
                                     .handler = node_main_handler,
                                     .arg = n};
    if (sr_http_server_new(&n->main, n->base, &so, err, sizeof(err)) != 0) {
        fprintf(stderr, "skyroute-node: %s\n", err);
        return -1;
    }
    if (o->admin) {
        struct sr_http_server_opts ao = {
            .listen = o->admin, .allow_http1 = true, .handler = node_admin_handler, .arg = n};
        if (sr_http_server_new(&n->admin, n->base, &ao, err, sizeof(err)) != 0) {
            fprintf(stderr, "skyroute-node: %s\n", err);
            return -1;
        }
    }
    return 0;
}

/* Everything main() opened, in reverse. Jobs still running (a drain that ran
 * out of time, or whose sender left and so no longer counts as in flight), or
 * not sealed before the loop ended: their answers are lost with the process,
 * as the replay guard's results are. */
static void close_node(struct node *n)
{
    node_jobs_free(n);
    sr_http_server_free(n->main);
    sr_http_server_free(n->admin);
    if (n->drain_timer) {
        event_free(n->drain_timer);
    }
    node_outbox_free(n);
    node_emu_free(n);
    sr_metrics_free(n->metrics);
    sr_replay_free(n->replay);
    sr_rootcache_free(n->roots);
    sr_keyring_free(n->trust);
    sr_key_free(n->key);
    sr_signals_remove();
    sr_notify_free();
    event_base_free(n->base);
}

int main(int argc, char **argv)
{
    struct node n;
    memset(&n, 0, sizeof(n));
    n.gops = 10;
    n.max_body = 32u << 20;
    n.replay_budget = (size_t)256 << 20; /* some 2.3 million ids */
    n.batch_max = 0;                     /* auto */
    n.emu_min_el = 10;
    struct node_opts o = {.replay_memory = (size_t)256 << 20, .body_timeout_s = 30};
    const char *config = find_config(argc, argv);
    if (config) {
        if (node_config_args(config, node_options, &file_args, &nfile_args) != 0) {
            return 1;
        }
        all_args = calloc((size_t)argc + nfile_args + 1, sizeof(*all_args));
        if (!all_args) {
            fprintf(stderr, "skyroute-node: out of memory\n");
            return 1;
        }
        all_args[0] = argv[0];
        if (nfile_args) { /* a file with no [node] keys has none (NULL) */
            memcpy(all_args + 1, file_args, nfile_args * sizeof(*all_args));
        }
        memcpy(all_args + 1 + nfile_args, argv + 1, (size_t)(argc - 1) * sizeof(*all_args));
        argc += (int)nfile_args;
        argv = all_args;
    }
    int rc = parse_options(argc, argv, &n, &o);
    if (rc >= 0) {
        return rc;
    }
    if (sr_crypto_init() != 0) {
        fprintf(stderr, "skyroute-node: libsodium failed to initialise\n");
        return 1;
    }
    if (o.emu_file && node_emu_load(&n, o.emu_file, o.emu_station, o.emu_which) != 0) {
        return 1;
    }
    if (o.config && node_config_load(&n, o.config) != 0) {
        return 1;
    }
    node_handlers_init(&n);
    if (open_state(&n, &o) != 0 || open_loop(&n) != 0 || open_listeners(&n, &o) != 0) {
        return 1;
    }
    if (n.gw_url[0] && node_outbox_start(&n) != 0) {
        fprintf(stderr, "skyroute-node: cannot start the uplink\n");
        return 1;
    }
    if (n.emu_sat && node_emu_start(&n) != 0) {
        fprintf(stderr, "skyroute-node: cannot start link emulation\n");
        return 1;
    }
    sr_log(SR_LOG_INFO, "skyroute-node %s listening on %s (port %d), key id %02x%02x%02x%02x...",
           n.id, o.listen, sr_http_server_port(n.main), sr_key_id(n.key)[0], sr_key_id(n.key)[1],
           sr_key_id(n.key)[2], sr_key_id(n.key)[3]);
    char status[200];
    snprintf(status, sizeof(status), "node %s on %s", n.id, o.listen);
    if (sr_notify_ready(n.base, status) != 0) {
        fprintf(stderr, "skyroute-node: cannot start the watchdog timer\n");
        close_node(&n);
        return 1;
    }
    event_base_dispatch(n.base);
    sr_log(SR_LOG_INFO, "skyroute-node %s stopped", n.id);
    close_node(&n);
    node_config_args_free(file_args, nfile_args);
    free(all_args);
    return 0;
}
