/* Private to routing/: the router's state, shared by its source files. */
#ifndef SR_ROUTING_INT_H
#define SR_ROUTING_INT_H

#include "routing/routing.h"

struct target {
    struct sr_target_info info;
    double ewma_ms;
    int64_t ewma_stamp;
    bool observed;
    unsigned inflight;
    unsigned consecutive_failures;
    unsigned ejections;
    int64_t ejected_until;
    uint64_t successes, failures;
    double err_mean, err_abs;
};

struct sr_router {
    struct target *t;
    size_t n, cap;
    struct sr_pass_rec *passes; /* sorted by (sat, aos) */
    size_t npasses;
};

#endif
