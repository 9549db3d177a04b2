/* Placeholder until this subcommand group lands. */
#include "gateway/cli.h"
#include <stdio.h>
int sr_cli_keygen(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "skyroute keygen: not built yet\n");
    return 1;
}
int sr_cli_seal(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "skyroute seal: not built yet\n");
    return 1;
}
int sr_cli_open(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "skyroute open: not built yet\n");
    return 1;
}
int sr_cli_sign(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "skyroute sign: not built yet\n");
    return 1;
}
int sr_cli_verify(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "skyroute verify: not built yet\n");
    return 1;
}
