/* Placeholder until this subcommand group lands. */
#include "gateway/cli.h"
#include <stdio.h>
int sr_cli_propagate(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "skyroute propagate: not built yet\n");
    return 1;
}
int sr_cli_passes(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "skyroute passes: not built yet\n");
    return 1;
}
int sr_cli_elements(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "skyroute elements: not built yet\n");
    return 1;
}
