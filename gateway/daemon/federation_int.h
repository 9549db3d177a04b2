/*
 * Private to federation (federation.c, federation_http.c): a station's view
 * of the cluster. federation.c keeps it: the connection, the records coming
 * in and going out, the stations and their views; federation_http.c only
 * reads it, to answer GET /v1/cluster and GET /v1/cluster/passes.
 */
#ifndef SR_FEDERATION_INT_H
#define SR_FEDERATION_INT_H

#include "gateway/cluster/cluster.h"
#include "gateway/daemon/daemon.h"
#include "gateway/store/store.h"

#define TICK_MS 250
#define MAX_LOCAL_PASSES 4096
#define PASS_PAST_MS (10 * 60 * 1000LL)
#define PASS_AHEAD_MS (48 * 3600 * 1000LL)
#define MAX_RECORD (64u << 20)

struct peer {
    char name[SR_TARGET_IDMAX];
    uint8_t pk[SR_PUBLICKEYBYTES];
};

struct view { /* another station's passes of one of our satellites, or one of its IDCs */
    char id[SR_TARGET_IDMAX];
    char station[SR_TARGET_IDMAX];
    char sat[SR_TARGET_IDMAX]; /* the target's id at that station */
    int router_idx;
    size_t npasses;
    bool offline;
    bool idc; /* an IDC of that station: planned while the station is alive */
};

struct station {
    char name[SR_TARGET_IDMAX];
    int64_t seen_mono; /* last heartbeat received */
    int64_t items, bytes;
    bool ready;
};

struct local_pub { /* what we last published for one local satellite */
    char sat[SR_TARGET_IDMAX];
    uint64_t hash;
    bool done;
    uint64_t elem_hash; /* the element set last published */
    bool elem_done;
};

struct seen_seq { /* the sequence of the last record taken under a key */
    int bucket;
    char key[2 * SR_TARGET_IDMAX + 2];
    int64_t seq;
};

struct shared_elements { /* the latest element set in the bucket, per satellite */
    char sat[SR_TARGET_IDMAX];
    char station[SR_TARGET_IDMAX];
    char op[64];
    char format[16];
    int64_t epoch_ms;
    size_t len;
};

struct gw_cluster {
    struct gw *g;
    sr_nats *nats;
    char station[SR_TARGET_IDMAX];
    struct peer *peers;
    size_t npeers;
    struct view *views;
    size_t nviews, cap_views;
    struct station *stations;
    size_t nstations, cap_stations;
    struct local_pub *pubs;
    size_t npubs;
    struct shared_elements *elems;
    size_t nelems, cap_elems;
    struct seen_seq *seen;
    size_t nseen, cap_seen;
    int64_t seq;     /* the sequence of the last record this station wrote */
    sr_store *store; /* our own connection to the feeds' store: element sets to publish */
    int64_t last_elements;
    struct event *timer;
    bool ready;
    int64_t last_heartbeat;
    double state_ttl_ms, heartbeat_ms, op_timeout_ms, replicas, results_ttl_s;
    double forward_ms; /* the cost of a forward, added to another station's IDCs */
    double keep_ms;    /* [spool] keep_results_s: how long the spool de-duplicates ids */
    bool state_inflight;
};

/* ---- checks on what other stations wrote (federation_trust.c) ---- */

/* The sequence of the next record this station writes: strictly increasing,
 * across restarts too (the wall clock in microseconds at least). */
int64_t fed_next_seq(struct gw_cluster *c);
/* Takes record |m|'s sequence under |key| of |bucket|: 0 if newer than the
 * last taken there (now remembered), 1 if the same one again, or
 * SR_ERR_ENV_REPLAY (older) / SR_ERR_NOMEM with the reason in |why|. */
int fed_seq_take(struct gw_cluster *c, int bucket, const char *key, const struct sr_cmsg *m,
                 char *why, size_t whylen);
/* True if result record |m| is stored under its own workload's key; else
 * false with the reason in |why|. */
bool fed_result_key_ok(const struct sr_cmsg *m, const char *key, char *why, size_t whylen);
/* True if the operator named in element record |m| may speak here, by this
 * station's [operator.NAME] satellites =, for its satellite and for every
 * satellite of ours the text carries; else false with the reason in |why|. */
bool fed_elements_in_scope(struct gw_cluster *c, const struct sr_cmsg *m, char *why, size_t whylen);

/* For result record |m| of work forwarded from here: 0 if the target that
 * ran it is unknown here, or if its own signed envelope in the record
 * verifies against its key here and matches (workload, signer, payload);
 * else the refusal (SR_ERR_ENV_*), with the reason in |why|. */
int fed_check_node_result(struct gw_cluster *c, const struct sr_cmsg *m, char *why, size_t whylen);

/* True while station |name|'s heartbeat is fresher than state_ttl_s. */
bool fed_station_alive(struct gw_cluster *c, const char *name);
/* The local satellite target |sat| (not itself a view), or NULL. */
const struct sr_target_info *fed_local_sat(struct gw_cluster *c, const char *sat);

#endif /* SR_FEDERATION_INT_H */
