/*
 * The spool's order of dispatch (routing.h, "the spool's order of
 * dispatch"): earliest deadline first, one at a time per target.
 *
 * Why per target: work bound for a target must not overtake earlier-deadline
 * work for the same target that is about to go. When a pass begins, the
 * first seconds are often spent retrying while the link comes up; were each
 * workload free to go as soon as its own retry came round, a later deadline
 * could take the pass's first bytes from an earlier one. Only what is due
 * within SR_DUE_AHEAD_MS is sorted: 100,000 workloads waiting for a later
 * pass cost the caller one scan per turn, not a sort.
 */
#include "routing/routing.h"

#include <stdlib.h>
#include <string.h>

#define HELD_MAX 16 /* targets held at once in one call; beyond, no one waits */

bool sr_due_soon(int64_t wait_until_ms, int64_t now_ms)
{
    return wait_until_ms <= now_ms + SR_DUE_AHEAD_MS;
}

static int deadline_cmp(const void *a, const void *b)
{
    const struct sr_due *x = a, *y = b;
    return x->deadline_ms < y->deadline_ms ? -1 : x->deadline_ms > y->deadline_ms;
}

static bool is_held(const char *const *held, size_t nheld, const char *target)
{
    for (size_t k = 0; k < nheld; k++) {
        if (!strcmp(held[k], target)) {
            return true;
        }
    }
    return false;
}

size_t sr_due_run(struct sr_due *due, size_t n, int64_t now_ms, sr_due_start start, void *arg)
{
    if (n > 1) {
        qsort(due, n, sizeof(due[0]), deadline_cmp);
    }
    const char *held[HELD_MAX];
    size_t nheld = 0, started = 0;
    for (size_t i = 0; i < n; i++) {
        struct sr_due *d = &due[i];
        if (d->target[0] && is_held(held, nheld, d->target)) {
            continue; /* an earlier deadline for its target goes first */
        }
        if (d->wait_until_ms > now_ms) {
            /* not yet, but soon: its place in line for its target is kept */
            if (d->target[0] && sr_due_soon(d->wait_until_ms, now_ms) && nheld < HELD_MAX) {
                held[nheld++] = d->target;
            }
            continue;
        }
        /* |d| may be changed by start(): its target is read first */
        const char *target = d->target;
        int rv = start(arg, d);
        if (rv < 0) {
            break;
        }
        if (rv > 0) {
            started++;
            if (target[0] && nheld < HELD_MAX) {
                held[nheld++] = target; /* one at a time per target */
            }
        }
    }
    return started;
}
