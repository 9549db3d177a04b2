/* skyrouted part: placeholder until its issue lands (see gw.h for the contract). */
#include "gateway/gw.h"

int gw_feeds_init(struct gw *g, char *err, size_t errlen)
{
    (void)g;
    (void)err;
    (void)errlen;
    return 0;
}

bool gw_feeds_handle(struct gw *g, sr_req *req)
{
    (void)g;
    (void)req;
    return false;
}

void gw_feeds_free(struct gw *g)
{
    (void)g;
}
