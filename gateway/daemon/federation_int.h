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
    sr_store *store; /* our own connection to the feeds' store: element sets to publish */
    int64_t last_elements;
    struct event *timer;
    bool ready;
    int64_t last_heartbeat;
    double state_ttl_ms, heartbeat_ms, op_timeout_ms, replicas, results_ttl_s;
    double forward_ms; /* the cost of a forward, added to another station's IDCs */
    bool state_inflight;
};

/* True while station |name|'s heartbeat is fresher than state_ttl_s. */
bool fed_station_alive(struct gw_cluster *c, const char *name);
/* The local satellite target |sat| (not itself a view), or NULL. */
const struct sr_target_info *fed_local_sat(struct gw_cluster *c, const char *sat);

#endif /* SR_FEDERATION_INT_H */
