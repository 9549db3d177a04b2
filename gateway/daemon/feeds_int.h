/*
 * Private to skyrouted's operator feeds (DESIGN sections 6, 7 and 10): their
 * state, shared by three files that stand in layers, each calling only those
 * below it:
 *
 *   feeds_http.c    the four endpoints: PUT /v1/passes, PUT /v1/elements,
 *                   GET /v1/passes, GET /v1/targets; the authentication of
 *                   every operator upload (energy forecasts too, route.c)
 *   feeds.c         the store, the predictions and the router's schedules
 *                   kept in step; start-up, the hourly timer, federation
 *   feeds_config.c  operators, satellites and the station from the
 *                   configuration, and how feeds name them
 *
 * The decisions without I/O are in routing/: the feed parsers and format
 * detection (routing/feeds.c) and which passes the router holds when operator
 * schedules and predictions meet (sr_schedule_merge).
 */
#ifndef SR_GW_FEEDS_INT_H
#define SR_GW_FEEDS_INT_H

#include "gateway/daemon/daemon.h"
#include "gateway/store/store.h"
#include "linkmodels/linkmodels.h"

#define PREDICT_HORIZON_MS (48 * 3600 * 1000LL) /* passes are predicted this far ahead */
#define MAX_ELEMENT_SETS 100000                 /* in one element upload */

struct sat_info {
    char id[SR_TARGET_IDMAX];
    uint32_t catnum; /* 0: none configured */
    char arn[256];
    uint64_t ion_node; /* 0: none */
    sr_sat *sat;       /* from the latest stored elements, or NULL */
    char elem_format[16];
    struct sr_pass_rec *pred; /* predicted passes (source "predicted") */
    size_t npred;
};

struct op_cfg {
    char name[64];
    bool all; /* satellites = * */
    char **sats;
    size_t nsats;
    bool all_targets; /* targets = *: energy forecasts for any target */
    char **targets;
    size_t ntargets;
};

struct gw_feeds {
    struct gw *g;
    sr_store *store;
    sr_keyring *ring; /* operator keys, named by operator */
    struct op_cfg *ops;
    size_t nops;
    struct sat_info *sats;
    size_t nsats;
    bool has_station;
    sr_station station;
    char **names; /* [gateway] station_names: how feeds name this station; none = any */
    size_t nnames;
    double min_el_deg;
    int64_t window_s; /* [gateway] signature_window_s: how far a signed time may be from now */
    struct event *timer;
};

/* ---- feeds_config.c -------------------------------------------------------------------- */

/* Reads [gateway] station, min_el_deg, station_names and signature_window_s, the satellite
 * targets' feed identities ([satellite.ID] catnum, ion_node, arn) and the
 * operators ([operator.NAME] pubkey, satellites, targets) into |f| (f->g set). 0, or
 * SR_ERR_CONFIG / SR_ERR_NOMEM with the message in |err|; what was read is
 * released by gw_feeds_config_free() either way. */
int gw_feeds_config(struct gw_feeds *f, char *err, size_t errlen);
void gw_feeds_config_free(struct gw_feeds *f);
/* The satellite target |id|, or NULL. */
struct sat_info *gw_feeds_sat(struct gw_feeds *f, const char *id);
/* The operator named |name| (its key's name in f->ring), or NULL. */
const struct op_cfg *gw_feeds_op(const struct gw_feeds *f, const char *name);
/* Whether |op| may speak for satellite |sat|. */
bool gw_feeds_op_owns(const struct op_cfg *op, const char *sat);
/* Whether |op| may send energy forecasts for target |id| ([operator.NAME] targets). */
bool gw_feeds_op_targets(const struct op_cfg *op, const char *id);
/* The sr_feed_lookup of uploads (|arg| is the struct gw_feeds): feed
 * identities to configured satellite ids, and this station's names. */
const char *gw_feeds_lookup(void *arg, sr_feed_id_kind kind, const char *v);

/* ---- feeds.c --------------------------------------------------------------------------- */

/* Rebuilds the router's schedule of |s| from the store and its predictions.
 * 0 or the store's / router's error (logged; the router is left as it was). */
int gw_feeds_resync(struct gw_feeds *f, struct sat_info *s);
/* Makes |sat| (taken over) the orbit of |s|, read from |format| text,
 * predicts its passes from |now| over the horizon and rebuilds its schedule. */
void gw_feeds_set_orbit(struct gw_feeds *f, struct sat_info *s, sr_sat *sat, const char *format,
                        int64_t now);

#endif
