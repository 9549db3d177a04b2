/*
 * Private to skyroute-node: the node's state and what its files share.
 *
 * The rooms, from the top down. Calls only go down this list; a lower part
 * that must reach up (the exec runner reporting an exit, the link emulation
 * handing over a request after its light time) does it through a callback
 * it is given, never by name.
 *
 *   main.c      options, start-up, draining on SIGTERM, shut-down
 *   agent.c     the HTTP endpoints: POST /v1/exec and /v1/batch (open the
 *               envelope, replay guard, start a job) and the admin listener
 *   outbox.c    onboard work for the ground (--gateway): POST /v1/submit,
 *               GET /v1/inbox/ID, the uplink and outbox calls at each contact
 *   handlers.c  the table of handlers (echo, digest, compute, exec:NAME)
 *   job.c       a job from arrival to answer: its result sealed with the
 *               others of the loop turn, kept for replay, answered
 *   reply.c     where an answer goes: a request of its own, or an item of a
 *               batch response
 *   exec.c      the subprocess runner behind exec:NAME
 *   linkemu.c   link emulation (--emulate-link): passes, light time
 *   config.c    the INI file (--config)
 *   metrics.c   the node's metric names and counters
 */
#ifndef SR_NODE_H
#define SR_NODE_H

#include "crypto/crypto.h"
#include "gateway/net/net.h"
#include "linkmodels/linkmodels.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct event;
struct event_base;

#define MAX_TRUST 32
#define MAX_EXEC 32

#define NODE_CTYPE_MSGPACK "application/vnd.msgpack"
#define NODE_CTYPE_BATCH "application/vnd.skyroute.batch+msgpack"

/* [exec.NAME] of --config: a command run for the handler exec:NAME, and the
 * rlimits its processes run under (0: the node's own). */
struct exec_cfg {
    char name[64];
    char command[1024];
    int64_t timeout_ms;
    size_t max_output;
    uint64_t cpu_s;           /* RLIMIT_CPU */
    uint64_t max_memory;      /* RLIMIT_AS, bytes */
    uint64_t max_files;       /* RLIMIT_NOFILE */
    uint64_t max_procs;       /* RLIMIT_NPROC (counts every process of the user) */
    unsigned explicit_limits; /* which of the four the file set (bit 0: cpu_s ...) */
};

/* a handler's rlimits unless its section says otherwise */
#define EXEC_DEFAULT_CPU_S 60
#define EXEC_DEFAULT_MEMORY (4ull << 30)
#define EXEC_DEFAULT_FILES 1024
#define EXEC_DEFAULT_PROCS 1024

#define EXEC_USER_GROUPS 64

/* [node] exec_user: who handlers run as, looked up at start-up. */
struct exec_user {
    bool set;
    char name[64];
    uid_t uid;
    gid_t gid;
    gid_t groups[EXEC_USER_GROUPS]; /* its supplementary groups */
    size_t ngroups;
};

struct node;
struct job;
struct upq;   /* outbox.c */
struct inbox; /* outbox.c */

/* A handler the node can run: a row of the table node_handlers_run() looks
 * names up in. */
struct node_handler {
    char name[72];  /* as in an envelope's handler field: "echo", "exec:NAME" */
    char label[80]; /* skyroute_node_handler_runs_total's label set */
    /* Starts |j|: it ends, now or later, in exactly one node_job_finish(). */
    void (*run)(struct node *n, struct job *j, const struct node_handler *h);
    const struct exec_cfg *ec; /* exec:NAME: its command; else NULL */
};

#define NODE_HANDLERS_MAX (3 + MAX_EXEC)

struct node {
    struct event_base *base;
    char id[SR_ENV_STRMAX];
    sr_key *key;
    sr_keyring *trust;
    sr_replay *replay;
    sr_rootcache *roots; /* verified batch roots (SR2 workloads) */
    sr_metrics *metrics;
    sr_http_server *main, *admin;
    double gops;
    size_t max_body;
    size_t replay_budget; /* [node] replay_budget_mb: the replay guard's tables at most */
    bool draining;
    struct event *drain_timer;
    /* config.c: [exec.NAME] sections; handlers.c: the table built from them */
    struct exec_cfg execs[MAX_EXEC];
    size_t nexec;
    struct exec_user exec_user;
    struct node_handler handlers[NODE_HANDLERS_MAX];
    size_t nhandlers;
    /* job.c */
    struct job *jobs; /* every job not yet freed (those of senders that left too) */
    struct job **rq;  /* results to seal at the end of this loop turn */
    size_t rq_n, rq_cap;
    bool rq_scheduled;
    unsigned rq_depth;     /* deepest tree among the queued results' workloads (SR2) */
    size_t batch_max;      /* --envelope-batch: results per signature at most; 0: auto */
    struct event *rq_idle; /* lowest priority: a loop turn with nothing else to run */
    struct event *rq_late; /* a little after the first queued result */
    /* linkemu.c */
    sr_sat *emu_sat;
    sr_station emu_station;
    double emu_min_el;
    bool emu_up;
    double emu_light_ms;
    struct event *emu_timer;
    /* outbox.c: onboard work for the ground (--gateway): uplinked in a pass,
     * results fetched from the gateway's outbox at each contact */
    char gw_url[160];
    char gw_id[SR_ENV_STRMAX];
    sr_h2_pool *pool;
    struct event *sync_timer;
    bool sync_busy;
    struct upq *upq;     /* sealed envelopes waiting for a contact */
    struct inbox *inbox; /* submitted work and, when back, its result */
    sr_buf acks;         /* ids received since the last outbox call */
};

/*
 * Envelopes that came together in one request (POST /v1/batch): each is
 * handled as if it had come on its own, and its answer goes out as an item of
 * the response (sr_batch_append_item) as soon as it is ready.
 */
struct nbatch {
    struct node *node;
    sr_req *req;   /* NULL once the sender went away */
    size_t left;   /* envelopes not answered yet (+1 while they are being started) */
    bool streamed; /* items go out as they come (sr_req_stream_write); else |out| */
    sr_buf out;    /* HTTP/1.1: the items, sent at the end */
};

/* Where the answer to one envelope goes: a request of its own (POST
 * /v1/exec), or an item of a batch. Both NULL: the sender went away. */
struct reply {
    sr_req *req;
    struct nbatch *batch;
    uint32_t index;
};

/* ---- exec.c: the subprocess runner ------------------------------------------------------ */

/* How a run ends: status 0 and the child's output, or an HTTP-like status
 * and a message. |out| lives until node_exec_free(). */
typedef void (*node_exec_done_fn)(void *arg, int64_t status, const char *error, const uint8_t *out,
                                  size_t len);

/* One child process; all zero when none was started. */
struct exec_run {
    const struct exec_cfg *ec; /* set once started; NULL: nothing to release */
    struct event_base *base;
    const uint8_t *in; /* what goes to its stdin */
    size_t in_len, in_off;
    pid_t pid;  /* the child, leader of its process group; 0 once reaped */
    int pidfd;  /* -1: its exit is polled */
    int status; /* waitpid's, once reaped */
    int in_fd, out_fd;
    struct event *in_ev, *out_ev, *timer, *pid_ev;
    sr_buf out; /* its stdout, up to ec->max_output */
    bool out_capped, timed_out;
    node_exec_done_fn done;
    void *arg;
};

/* Runs ec->command under /bin/sh -c with |in| (which must outlive the run) on
 * its stdin, in a process group of its own, under ec's rlimits and, when
 * |user| is set, as that user. When the child has exited and closed its
 * stdout, runs out of time or writes more than ec->max_output, |done| is
 * called once, last (it may free |r|); at the time limit and the ceiling the
 * whole group is killed, and whatever the child leaves running when it exits
 * is too. Returns 0, or -1 with errno set: nothing runs, and |done| is never
 * called. */
int node_exec_start(struct exec_run *r, struct event_base *base, const struct exec_cfg *ec,
                    const struct exec_user *user, const uint8_t *in, size_t in_len,
                    node_exec_done_fn done, void *arg);
/* Stops watching the run (its pipes closed, its clock freed); a child not
 * reaped yet is killed with its group and reaped later without blocking. The
 * output stays. Safe to call again, and on a run never started. */
void node_exec_stop(struct exec_run *r);
/* Kills the child and its group if it has not been waited for, and waits for
 * it (blocking: for shut-down). */
void node_exec_reap(struct exec_run *r);
/* Kills and waits for every child node_exec_stop() left to be reaped
 * (blocking: for shut-down). */
void node_exec_reap_all(void);
/* node_exec_stop(), and frees the output. */
void node_exec_free(struct exec_run *r);

/* ---- linkemu.c: link emulation (--emulate-link) ---------------------------------------- */

/* Reads the elements in |file|, picks |which| (a name or catalogue number;
 * NULL: the first) and the ground station "LAT,LON,ALT_M". 0, or -1 after
 * saying why on stderr. */
int node_emu_load(struct node *n, const char *file, const char *station, const char *which);
/* Starts following the satellite: the listener is closed outside passes and
 * the light time kept current. 0, or -1 if the timer cannot be set. */
int node_emu_start(struct node *n);
void node_emu_free(struct node *n);
/* Holds a request for the current one-way light time, then hands it to
 * |arrive|. false if it could not (the caller then goes on at once). */
typedef void (*node_emu_arrive_fn)(struct node *n, sr_req *req);
bool node_emu_delay_request(struct node *n, sr_req *req, node_emu_arrive_fn arrive);
/* Holds a 200 response with the sealed result |body| (malloc'd; taken when
 * this returns true) for the light time, then sends it. */
bool node_emu_delay_response(struct node *n, sr_req *req, uint8_t *body, size_t len);
/* Holds a copy of |head| and |body| for the light time, then hands them to
 * |fn| with |arg|. false if it could not. */
typedef void (*node_emu_bytes_fn)(void *arg, const uint8_t *head, size_t hl, const uint8_t *body,
                                  size_t len);
bool node_emu_delay_bytes(struct node *n, const uint8_t *head, size_t hl, const void *body,
                          size_t len, node_emu_bytes_fn fn, void *arg);

/* ---- reply.c: answers, to a request of their own or as items of a batch ---------------- */

/* Answers one envelope: |body| (|take|: a malloc'd block, freed here) with
 * |status| and |ctype|; |replay| adds skyroute-replay: stored-result. */
void node_reply_send(struct reply *rp, int status, const char *ctype, bool replay, const void *body,
                     size_t len, bool take);
/* Answers one envelope with a JSON error (sr_req_respond_error's body). */
void node_reply_error(struct reply *rp, int status, const char *msg, const char *detail_json);
/* 503 busy: the replay guard is full of live ids and has room again in
 * |retry_ms| (its earliest expiry). The JSON detail carries
 * {"code":"busy","retry_after_ms":N} (a batch item has no headers); an
 * answer of its own also has retry-after in whole seconds. */
void node_reply_busy(struct reply *rp, int64_t retry_ms);
/* One answer fewer to wait for: the last one ends the response (or drops
 * it if the sender left) and frees the batch. */
void node_batch_release(struct nbatch *b);

/* ---- job.c: one execution, from arrival to answer -------------------------------------- */

struct job {
    struct node *node;
    struct job *prev, *next; /* in node->jobs: every job until freed */
    struct reply rp;
    struct sr_envelope wl;
    uint8_t *payload_copy; /* the workload payload, owned (req body may go away): it lives
                              right after the struct, in the same allocation */
    int64_t t_recv;
    struct event *timer; /* compute: its end */
    struct exec_run run; /* exec:NAME: its child */
    /* the result, waiting in n->rq to be sealed with the others of this turn */
    struct sr_envelope res;
    uint8_t *res_copy; /* its payload when the handler's output was not the job's own */
};

/* A job for the opened workload |wl| received at |now|, answered through
 * |rp|, with its own copy of the payload; NULL when out of memory. */
struct job *node_job_new(struct node *n, const struct reply *rp, const struct sr_envelope *wl,
                         int64_t now);
/* Ends |j|'s handler and answers with its result (status, error, output);
 * |out| may live on the caller's stack. The result is sealed with the others
 * of this loop turn, kept by the replay guard, and |j| is freed then. */
void node_job_finish(struct job *j, int64_t status, const char *error, const uint8_t *out,
                     size_t outlen);
/* At exit: drops every job still running or waiting to be sealed (their
 * answers are lost with the process) and the sealing queue. */
void node_jobs_free(struct node *n);

/* ---- handlers.c: the table of handlers -------------------------------------------------- */

/* Builds the table: the built-in handlers, then exec:NAME for each of
 * n->execs. */
void node_handlers_init(struct node *n);
/* Runs the handler |j|'s workload names, or finishes |j| with 404 if there
 * is none. */
void node_handlers_run(struct node *n, struct job *j);

/* ---- outbox.c: onboard work for the ground (--gateway) --------------------------------- */

/* Opens the connection pool and starts the contact timer. 0 or -1. */
int node_outbox_start(struct node *n);
/* Answers POST /v1/submit and GET /v1/inbox/ID on the admin listener; false
 * if |req| is for another path. */
bool node_outbox_serve(struct node *n, sr_req *req);
void node_outbox_free(struct node *n);

/* ---- agent.c: the HTTP endpoints ------------------------------------------------------- */

/* The main listener: POST /v1/exec, POST /v1/batch, /metrics and health. */
void node_main_handler(sr_req *req, void *arg);
/* The admin listener: /metrics, health, and the onboard outbox. */
void node_admin_handler(sr_req *req, void *arg);

/* ---- config.c ------------------------------------------------------------------------- */

/* Reads the [exec.*] sections of the INI file at |path| into n->execs. 0, or
 * -1 after saying why on stderr ("FILE:LINE: ..."). */
int node_config_load(struct node *n, const char *path);
struct option;
/* Reads the [node] section of |path| as command-line options: each key the
 * name of one of |opts| that takes an argument (other than config; '_' for
 * '-' allowed), each value its argument. On success *|args| holds *|nargs|
 * "--name=value" strings in file order, owned by the caller
 * (node_config_args_free). 0, or -1 after saying why on stderr. */
int node_config_args(const char *path, const struct option *opts, char ***args, size_t *nargs);
void node_config_args_free(char **args, size_t nargs);

/* ---- metrics.c ------------------------------------------------------------------------- */

/* Describes the node's metrics (HELP and TYPE lines). */
void node_metrics_describe(struct node *n);
/* Counts an envelope refused for |reason|. */
void node_count_reject(struct node *n, const char *reason);
/* Sets the replay guard's gauges; called before /metrics is served. */
void node_replay_gauges(struct node *n);

#endif
