/*
 * --config: an INI file with [node] and one [exec.NAME] section per command
 * the node may run as handler exec:NAME. [node] holds the command-line
 * options, one key per option under the option's own name (max_body or
 * max-body for --max-body): they are read first, as if written before the
 * command line's, so the command line wins and one parser checks both. A
 * systemd unit then needs nothing but --config. Unknown sections and keys
 * are errors, reported with the file and line.
 */
#include "gateway/node/node.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ini.h>

/* One reading of the file: node_config_load fills n, node_config_args the
 * options' strings. */
struct cfg_ctx {
    struct node *n;
    const struct option *opts;
    char **args;
    size_t nargs, cap;
    const char *path;
    int line;
    FILE *fp;
    char err[300];
};

/* inih's reader, counting lines for the messages. */
static char *cfg_reader(char *str, int num, void *stream)
{
    struct cfg_ctx *c = stream;
    char *r = fgets(str, num, c->fp);
    if (r) {
        c->line++;
    }
    return r;
}

/* Reads c->path through |handler|. 0, or -1 after saying why on stderr. */
static int cfg_parse(struct cfg_ctx *c, ini_handler handler)
{
    c->fp = fopen(c->path, "r");
    if (!c->fp) {
        fprintf(stderr, "skyroute-node: %s: %s\n", c->path, strerror(errno));
        return -1;
    }
    int rv = ini_parse_stream(cfg_reader, c, handler, c);
    fclose(c->fp);
    if (rv != 0) {
        fprintf(stderr, "skyroute-node: %s\n",
                c->err[0] ? c->err : "syntax error in config (expected [section] or key = value)");
        return -1;
    }
    return 0;
}

/* The [exec.NAME] section |name|, added with its defaults the first time;
 * NULL when there is no room for it. */
static struct exec_cfg *exec_section(struct node *n, const char *name)
{
    for (size_t i = 0; i < n->nexec; i++) {
        if (!strcmp(n->execs[i].name, name)) {
            return &n->execs[i];
        }
    }
    if (n->nexec == MAX_EXEC || strlen(name) >= sizeof(n->execs[0].name)) {
        return NULL;
    }
    struct exec_cfg *e = &n->execs[n->nexec++];
    snprintf(e->name, sizeof(e->name), "%s", name);
    e->timeout_ms = 10000;
    e->max_output = 16u << 20;
    return e;
}

static int cfg_entry(void *user, const char *section, const char *name, const char *value)
{
    struct cfg_ctx *c = user;
    struct node *n = c->n;
    double d;
    if (!strcmp(section, "node")) {
        return 1; /* options: read and checked by node_config_args */
    }
    if (!strncmp(section, "exec.", 5) && section[5]) {
        struct exec_cfg *e = exec_section(n, section + 5);
        if (!e) {
            snprintf(c->err, sizeof(c->err), "%s:%d: too many [exec.*] sections or name too long",
                     c->path, c->line);
            return 0;
        }
        if (!strcmp(name, "command") && value[0] && strlen(value) < sizeof(e->command)) {
            snprintf(e->command, sizeof(e->command), "%s", value);
            return 1;
        }
        if (!strcmp(name, "timeout_ms") && sr_parse_double(&d, value, strlen(value)) == 0 &&
            d >= 1 && d <= 86400000) {
            e->timeout_ms = (int64_t)d;
            return 1;
        }
        if (!strcmp(name, "max_output") && sr_parse_double(&d, value, strlen(value)) == 0 &&
            d >= 0 && d <= (1 << 30)) {
            e->max_output = (size_t)d;
            return 1;
        }
        snprintf(c->err, sizeof(c->err), "%s:%d: bad or unknown key '%s' in [%s]", c->path, c->line,
                 name, section);
        return 0;
    }
    snprintf(c->err, sizeof(c->err), "%s:%d: unknown section [%s]", c->path, c->line, section);
    return 0;
}

int node_config_load(struct node *n, const char *path)
{
    struct cfg_ctx c = {.n = n, .path = path};
    if (cfg_parse(&c, cfg_entry) != 0) {
        return -1;
    }
    for (size_t i = 0; i < n->nexec; i++) {
        if (!n->execs[i].command[0]) {
            fprintf(stderr, "skyroute-node: %s: [exec.%s] needs 'command'\n", path,
                    n->execs[i].name);
            return -1;
        }
    }
    return 0;
}

/* ---- [node]: the command-line options --------------------------------------------- */

static int args_entry(void *user, const char *section, const char *name, const char *value)
{
    struct cfg_ctx *c = user;
    if (strcmp(section, "node") != 0) {
        return 1; /* [exec.*]: node_config_load's */
    }
    char opt[64];
    size_t len = strlen(name);
    if (len >= sizeof(opt)) {
        len = sizeof(opt) - 1;
    }
    for (size_t i = 0; i < len; i++) {
        opt[i] = name[i] == '_' ? '-' : name[i];
    }
    opt[len] = 0;
    const struct option *o = c->opts;
    while (o->name && strcmp(o->name, opt) != 0) {
        o++;
    }
    /* options with an argument only: not --help, --version, nor --config itself */
    if (!o->name || o->has_arg != required_argument || !strcmp(opt, "config")) {
        snprintf(c->err, sizeof(c->err), "%s:%d: unknown key '%s' in [node]", c->path, c->line,
                 name);
        return 0;
    }
    if (c->nargs == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 16;
        char **a = realloc(c->args, cap * sizeof(*a));
        if (!a) {
            snprintf(c->err, sizeof(c->err), "out of memory");
            return 0;
        }
        c->args = a;
        c->cap = cap;
    }
    size_t need = strlen(opt) + strlen(value) + 4;
    char *arg = malloc(need);
    if (!arg) {
        snprintf(c->err, sizeof(c->err), "out of memory");
        return 0;
    }
    snprintf(arg, need, "--%s=%s", opt, value);
    c->args[c->nargs++] = arg;
    return 1;
}

int node_config_args(const char *path, const struct option *opts, char ***args, size_t *nargs)
{
    struct cfg_ctx c = {.opts = opts, .path = path};
    *args = NULL;
    *nargs = 0;
    if (cfg_parse(&c, args_entry) != 0) {
        node_config_args_free(c.args, c.nargs);
        return -1;
    }
    *args = c.args;
    *nargs = c.nargs;
    return 0;
}

void node_config_args_free(char **args, size_t nargs)
{
    for (size_t i = 0; i < nargs; i++) {
        free(args[i]);
    }
    free(args);
}
