/*
 * The handlers a workload can name, as a table: the built-in ones (echo,
 * digest, compute), then exec:NAME for each [exec.NAME] of --config. A
 * handler's run starts the job and ends it, now or later, in
 * node_job_finish(); it counts the run once it has started.
 */
#include "gateway/node/node.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <event2/event.h>
#include <sodium.h>

static void count_run(struct node *n, const struct node_handler *h)
{
    sr_metrics_add(n->metrics, "skyroute_node_executed_total", "", 1);
    sr_metrics_add(n->metrics, "skyroute_node_handler_runs_total", h->label, 1);
}

/* echo: the payload back. */
static void run_echo(struct node *n, struct job *j, const struct node_handler *h)
{
    count_run(n, h);
    node_job_finish(j, 0, NULL, j->payload_copy, j->wl.payload_len);
}

/* digest: the payload's BLAKE2b-256, in hex. */
static void run_digest(struct node *n, struct job *j, const struct node_handler *h)
{
    count_run(n, h);
    uint8_t dg[32];
    char hex[65];
    crypto_generichash(dg, sizeof(dg), j->payload_copy, j->wl.payload_len, NULL, 0);
    sr_hex(hex, dg, sizeof(dg));
    node_job_finish(j, 0, NULL, (const uint8_t *)hex, 64);
}

/* compute: spends hints.work / --gops seconds, like a real accelerator
 * would, and says what it spent. */
static void compute_done(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct job *j = arg;
    char out[160];
    int len = snprintf(out, sizeof(out), "{\"work_gop\":%.6g,\"gops\":%.6g,\"ms\":%lld}\n",
                       j->wl.work, j->node->gops, (long long)(sr_now_ms() - j->t_recv));
    node_job_finish(j, 0, NULL, (const uint8_t *)out, (size_t)len);
}

static void run_compute(struct node *n, struct job *j, const struct node_handler *h)
{
    count_run(n, h);
    double secs = (j->wl.flags & SR_ENV_HAS_WORK) ? j->wl.work / n->gops : 0;
    j->timer = evtimer_new(n->base, compute_done, j);
    if (!j->timer) {
        node_job_finish(j, 500, "out of memory", NULL, 0);
        return;
    }
    struct timeval tv = {(time_t)secs, (suseconds_t)((secs - (double)(time_t)secs) * 1e6)};
    evtimer_add(j->timer, &tv);
}

/* exec:NAME: the configured command, the payload on its stdin, its stdout the
 * result (exec.c). */
static void exec_done(void *arg, int64_t status, const char *error, const uint8_t *out, size_t len)
{
    node_job_finish(arg, status, error, out, len);
}

static void run_exec(struct node *n, struct job *j, const struct node_handler *h)
{
    if (node_exec_start(&j->run, n->base, h->ec, &n->exec_user, j->payload_copy, j->wl.payload_len,
                        exec_done, j) != 0) {
        char err[160];
        snprintf(err, sizeof(err), "cannot start exec:%.60s: %s", h->ec->name, strerror(errno));
        node_job_finish(j, 500, err, NULL, 0);
        return;
    }
    count_run(n, h);
}

static void handler_add(struct node *n, const char *prefix, const char *name,
                        void (*run)(struct node *, struct job *, const struct node_handler *),
                        const struct exec_cfg *ec)
{
    struct node_handler *h = &n->handlers[n->nhandlers++];
    char full[sizeof(h->name)];
    snprintf(full, sizeof(full), "%s%s", prefix, name);
    memcpy(h->name, full, sizeof(full));
    snprintf(h->label, sizeof(h->label), "handler=\"%.60s\"", full);
    h->run = run;
    h->ec = ec;
}

void node_handlers_init(struct node *n)
{
    n->nhandlers = 0;
    handler_add(n, "", "echo", run_echo, NULL);
    handler_add(n, "", "digest", run_digest, NULL);
    handler_add(n, "", "compute", run_compute, NULL);
    for (size_t i = 0; i < n->nexec; i++) {
        handler_add(n, "exec:", n->execs[i].name, run_exec, &n->execs[i]);
    }
}

void node_handlers_run(struct node *n, struct job *j)
{
    const char *name = j->wl.handler;
    for (size_t i = 0; i < n->nhandlers; i++) {
        const struct node_handler *h = &n->handlers[i];
        if (!strcmp(h->name, name)) {
            h->run(n, j, h);
            return;
        }
    }
    char err[160];
    if (!strncmp(name, "exec:", 5)) {
        snprintf(err, sizeof(err), "no command configured for handler '%.60s'", name);
    } else {
        snprintf(err, sizeof(err), "unknown handler '%.60s'", name);
    }
    node_job_finish(j, 404, err, NULL, 0);
}
