/*
 * --config: an INI file with [node] (gops, replay_budget_mb) and one [exec.NAME] section per
 * command the node may run as handler exec:NAME. Unknown sections and keys
 * are errors, reported with the file and line.
 */
#include "gateway/node/node.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <ini.h>

struct cfg_ctx {
    struct node *n;
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
        if (!strcmp(name, "gops") && sr_parse_double(&d, value, strlen(value)) == 0 && d > 0) {
            n->gops = d;
            return 1;
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
        snprintf(c->err, sizeof(c->err), "%s:%d: bad or unknown key '%s' in [node]", c->path,
                 c->line, name);
        return 0;
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
    c.fp = fopen(path, "r");
    if (!c.fp) {
        fprintf(stderr, "skyroute-node: %s: %s\n", path, strerror(errno));
        return -1;
    }
    int rv = ini_parse_stream(cfg_reader, &c, cfg_entry, &c);
    fclose(c.fp);
    if (rv != 0) {
        fprintf(stderr, "skyroute-node: %s\n",
                c.err[0] ? c.err : "syntax error in config (expected [section] or key = value)");
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
