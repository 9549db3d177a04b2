/* skyrouted part: placeholder until its issue lands (see gw.h for the contract). */
#include "gateway/gw.h"

int gw_route_init(struct gw *g, char *err, size_t errlen)
{
    (void)g;
    (void)err;
    (void)errlen;
    return 0;
}

bool gw_route_handle(struct gw *g, sr_req *req)
{
    (void)g;
    (void)req;
    return false;
}

void gw_route_free(struct gw *g)
{
    (void)g;
}
