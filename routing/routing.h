/* routing: pure decision logic (DESIGN section 9). Filled in by the router issue. */
#ifndef SR_ROUTING_H
#define SR_ROUTING_H
#include "common/common.h"
#endif
