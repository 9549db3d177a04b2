/* skyroute route: placeholder, filled in below. */
#include "gateway/cli.h"

#include <stdio.h>

int sr_cli_route(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "skyroute route: not yet\n");
    return 1;
}
