/* skyroute: the operator CLI. Dispatches to one function per subcommand. */
#include "gateway/cli/cli.h"
#include "common/common.h"

#include <stdio.h>
#include <string.h>

static const char usage_text[] =
    "usage: skyroute COMMAND [OPTIONS]\n"
    "\n"
    "commands:\n"
    "  keygen --out PREFIX             write PREFIX.key (0600) and PREFIX.pub\n"
    "  seal --key K --to ID --handler H [--deadline-ms N]  payload -> envelope\n"
    "  open --trust P.pub [--trust ...] [--to ID]          envelope -> payload\n"
    "  sign --key K --url U --station S  print a skyroute-signature header for stdin\n"
    "  verify --trust P.pub --signature HDR --url U --station S  check a signed request\n"
    "  propagate --verify FILE         Vallado verification output (tcppver.out)\n"
    "  passes --elements FILE --station LAT,LON,ALT_M --from T --to T [--json]\n"
    "  elements synth ...              synthetic Walker shells and overhead passes\n"
    "  route --config FILE [WORKLOAD]  explain a routing decision (no daemon needed)\n"
    "  sim SCENARIO [--seed N] [--json]  compare routing policies in simulation\n"
    "\n"
    "Each command answers --help. Options: --help, --version.\n";

struct sub {
    const char *name;
    int (*fn)(int, char **);
};

static const struct sub subs[] = {
    {"keygen", sr_cli_keygen}, {"seal", sr_cli_seal},         {"open", sr_cli_open},
    {"sign", sr_cli_sign},     {"verify", sr_cli_verify},     {"propagate", sr_cli_propagate},
    {"passes", sr_cli_passes}, {"elements", sr_cli_elements}, {"route", sr_cli_route},
    {"sim", sr_cli_sim},
};

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "skyroute: missing command\n%s", usage_text);
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        fputs(usage_text, stdout);
        return 0;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("skyroute %s\n", SR_VERSION);
        return 0;
    }
    for (size_t i = 0; i < sizeof(subs) / sizeof(subs[0]); i++) {
        if (!strcmp(argv[1], subs[i].name)) {
            return subs[i].fn(argc - 1, argv + 1);
        }
    }
    fprintf(stderr, "skyroute: unknown command '%s'\n%s", argv[1], usage_text);
    return 2;
}
