/*
 * --config: an INI file with [node] and one [exec.NAME] section per command
 * the node may run as handler exec:NAME. [node] holds the command-line
 * options, one key per option under the option's own name (max_body or
 * max-body for --max-body): they are read first, as if written before the
 * command line's, so the command line wins and one parser checks both. A
 * systemd unit then needs nothing but --config. [node] exec_user and
 * replay_budget_mb, which have no option, are read with the [exec.*]
 * sections. Unknown sections and keys
 * are errors, reported with the file and line.
 *
 * Every handler runs under rlimits, by default EXEC_DEFAULT_*: enough for an
 * ordinary command, small enough that a runaway one (a fork loop, a leak, a
 * spin) cannot take the machine. A default above the node's own hard limit
 * is lowered to it; a value the file sets above it is refused at start-up,
 * where it can be fixed, rather than failing every run.
 */
#include "gateway/node/node.h"

#include <errno.h>
#include <getopt.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

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
    c->fp = fopen(c->path, "re");
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
    e->cpu_s = EXEC_DEFAULT_CPU_S;
    e->max_memory = EXEC_DEFAULT_MEMORY;
    e->max_files = EXEC_DEFAULT_FILES;
    e->max_procs = EXEC_DEFAULT_PROCS;
    return e;
}

/* The rlimit keys of [exec.NAME]: name, bounds, where it goes. */
static const struct {
    const char *key;
    double max;
    size_t off;
    int resource;
} limit_keys[] = {
    {"cpu_s", 86400.0 * 365, offsetof(struct exec_cfg, cpu_s), RLIMIT_CPU},
    {"max_memory", 1e15, offsetof(struct exec_cfg, max_memory), RLIMIT_AS},
    {"max_files", 1048576, offsetof(struct exec_cfg, max_files), RLIMIT_NOFILE},
    {"max_procs", 4194304, offsetof(struct exec_cfg, max_procs), RLIMIT_NPROC},
};

static uint64_t *limit_field(struct exec_cfg *e, size_t i)
{
    return (uint64_t *)((char *)e + limit_keys[i].off);
}

/* Looks up exec_user: its ids and supplementary groups. */
static int resolve_user(struct exec_user *u, const char *path)
{
    struct passwd pw, *res = NULL;
    char buf[4096];
    int rv = getpwnam_r(u->name, &pw, buf, sizeof(buf), &res);
    if (rv != 0 || !res) {
        fprintf(stderr, "skyroute-node: %s: exec_user '%s': %s\n", path, u->name,
                rv ? strerror(rv) : "no such user");
        return -1;
    }
    if (pw.pw_uid == 0) {
        fprintf(stderr, "skyroute-node: %s: exec_user '%s' is root: name an unprivileged user\n",
                path, u->name);
        return -1;
    }
    u->uid = pw.pw_uid;
    u->gid = pw.pw_gid;
    int ng = EXEC_USER_GROUPS;
    if (getgrouplist(u->name, pw.pw_gid, u->groups, &ng) < 0) {
        fprintf(stderr, "skyroute-node: %s: exec_user '%s' is in more than %d groups\n", path,
                u->name, EXEC_USER_GROUPS);
        return -1;
    }
    u->ngroups = (size_t)ng;
    if (geteuid() != 0 && geteuid() != u->uid) {
        fprintf(stderr,
                "skyroute-node: %s: exec_user '%s' needs the node to run as root (it switches "
                "to the user before each handler) or as that user\n",
                path, u->name);
        return -1;
    }
    u->set = geteuid() != u->uid; /* already that user: nothing to switch */
    return 0;
}

/* Checks each handler's rlimits against the node's hard limits (which only
 * root may raise). */
static int check_limits(struct node *n, const char *path)
{
    for (size_t i = 0; i < n->nexec; i++) {
        struct exec_cfg *e = &n->execs[i];
        for (size_t k = 0; k < sizeof(limit_keys) / sizeof(limit_keys[0]); k++) {
            uint64_t *v = limit_field(e, k);
            struct rlimit rl;
            if (*v == 0 || geteuid() == 0 || getrlimit(limit_keys[k].resource, &rl) != 0 ||
                rl.rlim_max == RLIM_INFINITY || *v <= (uint64_t)rl.rlim_max) {
                continue;
            }
            if (!(e->explicit_limits & (1u << k))) {
                *v = (uint64_t)rl.rlim_max;
                continue;
            }
            fprintf(stderr,
                    "skyroute-node: %s: [exec.%s] %s = %llu is above the node's hard limit %llu "
                    "(only root may raise it)\n",
                    path, e->name, limit_keys[k].key, (unsigned long long)*v,
                    (unsigned long long)rl.rlim_max);
            return -1;
        }
    }
    return 0;
}

static int cfg_entry(void *user, const char *section, const char *name, const char *value)
{
    struct cfg_ctx *c = user;
    struct node *n = c->n;
    double d;
    if (!strcmp(section, "node")) {
        if (!strcmp(name, "exec_user")) {
            if (value[0] && strlen(value) < sizeof(n->exec_user.name)) {
                snprintf(n->exec_user.name, sizeof(n->exec_user.name), "%s", value);
                return 1;
            }
            snprintf(c->err, sizeof(c->err), "%s:%d: bad exec_user '%s' in [node]", c->path,
                     c->line, value);
            return 0;
        }
        if (!strcmp(name, "replay_budget_mb")) {
            /* fractions allowed: a test guard holds a few thousand ids */
            if (sr_parse_double(&d, value, strlen(value)) != 0 || d < 0.01 || d > 65536) {
                snprintf(c->err, sizeof(c->err),
                         "%s:%d: 'replay_budget_mb' must be a number of MiB in [0.01, 65536]",
                         c->path, c->line);
                return 0;
            }
            n->replay_budget = (size_t)(d * 1048576);
            return 1;
        }
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
        for (size_t k = 0; k < sizeof(limit_keys) / sizeof(limit_keys[0]); k++) {
            if (!strcmp(name, limit_keys[k].key) &&
                sr_parse_double(&d, value, strlen(value)) == 0 && d >= 0 &&
                d <= limit_keys[k].max && d == (double)(uint64_t)d) {
                *limit_field(e, k) = (uint64_t)d;
                e->explicit_limits |= 1u << k;
                return 1;
            }
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
    if (n->exec_user.name[0] && resolve_user(&n->exec_user, path) != 0) {
        return -1;
    }
    return check_limits(n, path);
}

/* ---- [node]: the command-line options --------------------------------------------- */

static int args_entry(void *user, const char *section, const char *name, const char *value)
{
    struct cfg_ctx *c = user;
    if (strcmp(section, "node") != 0 || !strcmp(name, "exec_user") ||
        !strcmp(name, "replay_budget_mb")) {
        return 1; /* [exec.*], exec_user, replay_budget_mb: node_config_load's */
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
