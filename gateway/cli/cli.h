/*
 * The operator CLI `skyroute`: one function per subcommand. Each gets the
 * subcommand's own argc/argv (argv[0] is the subcommand name), parses its
 * options with getopt_long, answers --help with its usage on stdout (exit 0),
 * and on an unknown option or missing argument prints one line
 * "skyroute SUB: <what is wrong>" and the usage on stderr and returns 2.
 * Returns the process exit status (0 ok, 1 failure, 2 usage).
 */
#ifndef SR_CLI_H
#define SR_CLI_H

#include <stddef.h>
#include <stdint.h>

#include "common/common.h"

/* crypto.c */
int sr_cli_keygen(int argc, char **argv);
int sr_cli_seal(int argc, char **argv);
int sr_cli_open(int argc, char **argv);
int sr_cli_sign(int argc, char **argv);   /* operator-feed header value */
int sr_cli_verify(int argc, char **argv); /* checks a skyroute-signature header */

/* orbit.c */
int sr_cli_propagate(int argc, char **argv);
int sr_cli_passes(int argc, char **argv);
int sr_cli_elements(int argc, char **argv); /* "elements synth ..." */

/* route.c, sim.c */
int sr_cli_route(int argc, char **argv); /* explain a routing decision from a config */
int sr_cli_sim(int argc, char **argv);   /* policy evaluation on a virtual clock */

/* util.c: prints "skyroute SUB: MSG" and |usage| to stderr; returns 2. */
int sr_cli_usage_error(const char *sub, const char *usage, const char *fmt, ...) SR_PRINTF(3, 4);

/* util.c: reads all of stdin (at most |max| bytes) into a malloc'd buffer.
 * Returns 0, SR_ERR_TOOBIG, SR_ERR_IO or SR_ERR_NOMEM. */
int sr_cli_read_stdin(uint8_t **data, size_t *len, size_t max);

#endif /* SR_CLI_H */
