/*
 * A job, from the workload's arrival to its answer.
 *
 * The replay guard records a workload's id when it arrives (agent.c); a
 * repeat that arrives while the result waits to be sealed is "still
 * running". When its handler finishes (node_job_finish), the job's result is
 * queued, and results_flush() seals the queue with one signature over a
 * Merkle root (SR2) when the loop has a turn with nothing else to run,
 * RESULT_WAIT_US after the first, or at --envelope-batch results (auto by
 * default: 32, or an eighth of the workloads in flight, or as many as the
 * largest batch the queued results' workloads came in, up to 256); a lone
 * result is signed on its own (sr_envelope_seal_one). Each sealed result is
 * kept by the replay guard, so that a sender retrying after a lost response
 * gets it while the handler runs only once, and then answered.
 */
#include "gateway/node/node.h"

#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#define RESULT_WAIT_US 1000 /* longest a result waits for its batch */

static void job_abort(sr_req *req, void *data)
{
    (void)req;
    struct job *j = data;
    j->rp.req = NULL; /* the job runs to completion; its result is stored for a retry */
}

struct job *node_job_new(struct node *n, const struct reply *rp, const struct sr_envelope *wl,
                         int64_t now)
{
    /* the job and its copy of the payload in one allocation */
    struct job *j =
        wl->payload_len <= SIZE_MAX - sizeof(*j) ? malloc(sizeof(*j) + wl->payload_len) : NULL;
    if (!j) {
        return NULL;
    }
    memset(j, 0, sizeof(*j));
    j->node = n;
    j->next = n->jobs;
    if (n->jobs) {
        n->jobs->prev = j;
    }
    n->jobs = j;
    j->rp = *rp;
    j->wl = *wl;
    j->t_recv = now;
    j->payload_copy = (uint8_t *)(j + 1);
    if (wl->payload_len) {
        memcpy(j->payload_copy, wl->payload, wl->payload_len);
    }
    j->wl.payload = j->payload_copy;
    if (rp->req) {
        sr_req_set_data(rp->req, j);
        sr_req_set_abort(rp->req, job_abort);
    }
    return j;
}

/* Releases what the handler used (its timer, the child's pipes and events):
 * the result may wait a little for sealing, and nothing may fire for it
 * meanwhile. */
static void job_release_handler(struct job *j)
{
    if (j->timer) {
        event_free(j->timer);
        j->timer = NULL;
    }
    if (j->run.ec) {
        node_exec_stop(&j->run);
    }
}

static void job_free(struct job *j)
{
    if (j->prev) {
        j->prev->next = j->next;
    } else {
        j->node->jobs = j->next;
    }
    if (j->next) {
        j->next->prev = j->prev;
    }
    job_release_handler(j);
    if (j->run.ec) {
        node_exec_free(&j->run);
    }
    free(j->res_copy); /* payload_copy is part of |j| */
    free(j);
}

static void replay_store_failed(int rv)
{
    /* said once per 10 s with a count, not once per result */
    static int64_t last;
    static unsigned since;
    since++;
    int64_t now = sr_mono_ms();
    if (now - last >= 10000) {
        sr_log(SR_LOG_WARN, "cannot keep %u result(s) for replay: %s", since, sr_strerror(rv));
        last = now;
        since = 0;
    }
}

/* Stores the sealed result |env| (rv: how sealing went) for |j|'s id and
 * answers (or only stores it if the client left); frees |j|. */
static void job_answer(struct job *j, sr_buf *env, int rv)
{
    struct node *n = j->node;
    if (rv == 0) {
        int r = sr_replay_store(n->replay, j->wl.id, env->data, env->len);
        if (r != 0) {
            replay_store_failed(r);
        }
    }
    if (j->rp.req) {
        sr_req_set_abort(j->rp.req, NULL);
    }
    if (rv != 0) {
        node_reply_error(&j->rp, 500, "cannot seal result", NULL);
    } else if (j->rp.req && n->emu_sat &&
               node_emu_delay_response(n, j->rp.req, env->data, env->len)) {
        env->data = NULL; /* sent down after the light time */
    } else {
        node_reply_send(&j->rp, 200, NODE_CTYPE_MSGPACK, false, env->data, env->len, true);
        env->data = NULL;
    }
    sr_buf_free(env);
    job_free(j);
}

/* Seals one result on its own (its own signature) and answers. */
static void seal_one(struct node *n, struct job *j, size_t cap)
{
    sr_buf env;
    sr_buf_init(&env, cap);
    int r = sr_envelope_seal_one(&env, n->key, &j->res);
    if (r == 0) {
        sr_metrics_add(n->metrics, "skyroute_node_signatures_total", "", 1);
        sr_metrics_add(n->metrics, "skyroute_node_results_sealed_total", "", 1);
    }
    job_answer(j, &env, r);
}

/* --envelope-batch: results per signature at most; auto follows the workloads
 * in flight and the batches the queued results' workloads came in
 * (sr_envelope_batch_auto()). */
static size_t batch_max(const struct node *n)
{
    return n->batch_max ? n->batch_max
                        : sr_envelope_batch_auto(sr_http_server_inflight(n->main), n->rq_depth);
}

/*
 * Seals the results queued in this loop turn: one signature over a Merkle
 * root for all of them (SR2), or its own signature for a lone one. If the
 * batch cannot be sealed as a whole, each is sealed on its own.
 */
static void results_flush(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct node *n = arg;
    struct job **q = n->rq;
    size_t total = n->rq_n;
    n->rq = NULL;
    n->rq_n = n->rq_cap = 0;
    n->rq_scheduled = false;
    size_t max = batch_max(n);
    n->rq_depth = 0;
    event_del(n->rq_late);
    size_t cap = n->max_body + 4096;
    for (size_t off = 0; off < total; off += max) {
        size_t k = total - off < max ? total - off : max;
        struct job **jobs = q + off;
        struct sr_envelope *envs = k > 1 ? malloc(k * sizeof(*envs)) : NULL;
        sr_buf *outs = k > 1 ? malloc(k * sizeof(*outs)) : NULL;
        int rv = SR_ERR_NOMEM;
        if (envs && outs) {
            for (size_t i = 0; i < k; i++) {
                envs[i] = jobs[i]->res;
                sr_buf_init(&outs[i], cap);
            }
            rv = sr_envelope_seal_batch(outs, n->key, envs, k);
            if (rv == 0) {
                sr_metrics_add(n->metrics, "skyroute_node_signatures_total", "", 1);
                sr_metrics_add(n->metrics, "skyroute_node_results_sealed_total", "", (double)k);
            }
            for (size_t i = 0; i < k; i++) {
                if (rv == 0) {
                    job_answer(jobs[i], &outs[i], 0);
                } else {
                    sr_buf_free(&outs[i]);
                }
            }
        }
        free(envs);
        free(outs);
        for (size_t i = 0; rv != 0 && i < k; i++) {
            seal_one(n, jobs[i], cap);
        }
    }
    free(q);
}

/* Queues |j|'s result for results_flush(), which runs at the first of: a loop
 * turn with nothing else to run (at low load, right away: a lone result is
 * signed on its own), RESULT_WAIT_US later, batch_max() results. false on
 * out of memory. */
static bool results_enqueue(struct node *n, struct job *j)
{
    if (!n->rq_idle) {
        n->rq_idle = event_new(n->base, -1, 0, results_flush, n);
        if (!n->rq_idle) {
            return false;
        }
        int np = event_base_get_npriorities(n->base);
        if (np > 1) {
            event_priority_set(n->rq_idle, np - 1);
        }
    }
    if (!n->rq_late && !(n->rq_late = evtimer_new(n->base, results_flush, n))) {
        return false;
    }
    if (n->rq_n == n->rq_cap) {
        size_t c = n->rq_cap ? 2 * n->rq_cap : 64;
        struct job **q = realloc(n->rq, c * sizeof(*q));
        if (!q) {
            return false;
        }
        n->rq = q;
        n->rq_cap = c;
    }
    if (!n->rq_scheduled) {
        static const struct timeval wait = {0, RESULT_WAIT_US};
        event_active(n->rq_idle, EV_TIMEOUT, 0);
        evtimer_add(n->rq_late, &wait);
        n->rq_scheduled = true;
    }
    n->rq[n->rq_n++] = j;
    if (j->wl.depth > n->rq_depth) {
        n->rq_depth = j->wl.depth;
    }
    if (n->rq_n >= batch_max(n)) {
        event_active(n->rq_late, EV_TIMEOUT, 0);
    }
    return true;
}

void node_job_finish(struct job *j, int64_t status, const char *error, const uint8_t *out,
                     size_t outlen)
{
    struct node *n = j->node;
    job_release_handler(j);
    struct sr_envelope *res = &j->res;
    memset(res, 0, sizeof(*res));
    res->kind = SR_KIND_RESULT;
    memcpy(res->id, j->wl.id, sizeof(res->id));
    res->iat = sr_now_ms();
    res->exp = j->wl.exp;
    sr_str_copy(res->src, sizeof(res->src), n->id);
    sr_str_copy(res->dst, sizeof(res->dst), j->wl.src);
    sr_str_copy(res->handler, sizeof(res->handler), j->wl.handler);
    res->status = status;
    res->flags = SR_ENV_HAS_STATUS | SR_ENV_HAS_T_RECV | SR_ENV_HAS_T_DONE;
    if (error && *error) {
        sr_str_copy(res->error, sizeof(res->error), error);
        res->flags |= SR_ENV_HAS_ERROR;
    }
    res->t_recv = j->t_recv;
    res->t_done = res->iat;
    res->payload = out;
    res->payload_len = outlen;
    bool owned =
        outlen == 0 || out == j->payload_copy || (j->run.out.data && out == j->run.out.data);
    if (!owned) {
        /* the handler's output lives on its stack: keep a copy until sealed */
        j->res_copy = malloc(outlen);
        if (j->res_copy) {
            memcpy(j->res_copy, out, outlen);
        }
        res->payload = j->res_copy;
    }
    if (res->payload_len && !res->payload) {
        sr_buf env;
        sr_buf_init(&env, 0);
        job_answer(j, &env, SR_ERR_NOMEM);
    } else if (!results_enqueue(n, j)) {
        sr_buf env;
        sr_buf_init(&env, n->max_body + 4096);
        job_answer(j, &env, sr_envelope_seal_one(&env, n->key, res));
    }
}

void node_jobs_free(struct node *n)
{
    while (n->jobs) {
        struct job *j = n->jobs;
        if (j->rp.req) {
            sr_req_set_abort(j->rp.req, NULL);
        }
        if (j->rp.batch && j->rp.batch->req) {
            sr_req_set_abort(j->rp.batch->req, NULL);
            j->rp.batch->req = NULL;
        }
        if (j->rp.batch) {
            node_batch_release(j->rp.batch);
        }
        node_exec_reap(&j->run);
        job_free(j);
    }
    node_exec_reap_all();
    free(n->rq);
    n->rq = NULL;
    if (n->rq_idle) {
        event_free(n->rq_idle);
        n->rq_idle = NULL;
    }
    if (n->rq_late) {
        event_free(n->rq_late);
        n->rq_late = NULL;
    }
}
