/*
 * config: skyrouted's INI configuration ([gateway], the targets, and the keys
 * other parts of the daemon own), loaded and validated whole. Also read by
 * `skyroute route` and `skyroute sim`, which explain and simulate a gateway's
 * decisions from its configuration.
 */
#ifndef SR_CONFIG_H
#define SR_CONFIG_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/common.h"
#include "crypto/crypto.h"

#define SR_CFG_STR 160

struct sr_target_cfg {
    char id[64];
    int kind;             /* SR_TARGET_IDC or SR_TARGET_SATELLITE (routing.h) */
    char url[SR_CFG_STR]; /* http://HOST:PORT */
    char pubkey_path[PATH_MAX];
    uint8_t pubkey[SR_PUBLICKEYBYTES];
    double rtt_ms; /* prior round trip; default 20 (IDC) / 40 (satellite) */
    double gops;   /* compute rate; default 100 (IDC) / 10 (satellite) */
    int line;      /* where its section starts */
    int pubkey_line;
};

/* A key owned by another part of the gateway, kept as text (see ext_keys in
 * config.c). */
struct sr_cfg_kv {
    char section[128];
    char key[64];
    char *value;
    int line;
    int section_line;
};

struct sr_config {
    char path[PATH_MAX];
    char id[64];
    char listen[SR_CFG_STR];
    char admin[SR_CFG_STR];
    char key_path[PATH_MAX];
    char state_dir[PATH_MAX];
    size_t max_body;             /* bytes; default 32 MiB */
    int64_t default_deadline_ms; /* default 30000 */
    int64_t max_deadline_ms;     /* default 24 h */
    uint32_t max_streams;        /* per connection; default 1000 */
    uint32_t envelope_batch;     /* envelopes per signature at most; 0: auto (the default) */
    /* limits before authentication, on every listener (net.h's opts); 0 = off */
    uint32_t max_conns_per_address;   /* default 256 */
    uint32_t max_unauth_streams;      /* per connection; default 100 */
    int body_timeout_s;               /* default 30 */
    uint32_t body_min_rate;           /* bytes/s; default 256 */
    double signed_rate, signed_burst; /* signed uploads per address: per s (2), depth (20) */
    char log_level[16];
    struct sr_target_cfg *targets;
    size_t ntargets;
    struct sr_cfg_kv *kv; /* extension keys, in file order */
    size_t nkv, kv_cap;
    size_t targets_cap;
    uint32_t *kv_index;  /* (section, key) -> 1 + index of its last entry; 0 = empty */
    size_t kv_index_cap; /* a power of two, or 0 (sr_config_get then scans) */
};

/*
 * Loads and validates an INI configuration. Relative paths are resolved
 * against the config file's directory; public keys are read. On failure
 * returns SR_ERR_CONFIG (or SR_ERR_NOMEM / SR_ERR_IO) and writes
 * "FILE:LINE: what is wrong" into |err|; |*out| is untouched.
 */
int sr_config_load(struct sr_config **out, const char *path, char *err,
                   size_t errlen) SR_WARN_UNUSED;
void sr_config_free(struct sr_config *cfg);

/* Value of an extension key (registered in config.c's ext_keys) or NULL;
 * |*line| (if non-NULL) gets the line it came from. */
const char *sr_config_get(const struct sr_config *cfg, const char *section, const char *key,
                          int *line);
/* The |idx|-th distinct extension section whose name starts with |prefix|
 * (e.g. "operator."), in file order, or NULL past the end; |*line| gets the
 * line of its header. */
const char *sr_config_section(const struct sr_config *cfg, const char *prefix, size_t idx,
                              int *line);
/* Reads a number: |def| if absent; SR_ERR_CONFIG with "FILE:LINE: ..." in
 * |err| if it is not a finite number in [lo, hi]. */
int sr_config_num(const struct sr_config *cfg, const char *section, const char *key, double def,
                  double lo, double hi, double *out, char *err, size_t errlen) SR_WARN_UNUSED;

#endif /* SR_CONFIG_H */
