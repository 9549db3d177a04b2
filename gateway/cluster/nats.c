/*
 * The NATS connection of a federated gateway (cluster.h).
 *
 * Threads, and why. libnats's libevent adapter puts the connection's socket
 * on the daemon's event_base: reads and writes run on the loop thread. But
 * every JetStream call (publish with acknowledgement, KV put and get, fetch,
 * the watchers' next value, creating streams) is a synchronous
 * request/reply, and the reply is read by the loop: a call made on the loop
 * would wait for a reply only the loop itself could read. So those calls run
 * on worker threads of our own, and the loop never waits for them:
 *
 *   - four ops threads run the operations the loop asks for (publish, put,
 *     get), each bounded by op_timeout_ms; the operations on one key (or
 *     one workload) go to the same thread, in order, so a request stuck in
 *     a leader election holds back only its own lane;
 *   - the poll thread connects (retrying forever), creates the stream and
 *     buckets if they are missing, binds the pull consumer of this station's
 *     work subject, and fetches work (one message as soon as there is one,
 *     then whatever else is waiting, without waiting);
 *   - the watch thread makes the four buckets' watchers once and reads them (5 ms per
 *     bucket per round).
 *
 * Both hand their results to the loop through two queues under one mutex and
 * one event made active with event_active (libevent is made thread-safe by
 * sr_nats_global_init). The loop acknowledges work messages itself:
 * natsMsg_Ack only queues a publish, it does not wait.
 *
 * Reconnection: libnats reconnects on its own (forever, 250 ms apart) and
 * keeps the durable pull consumer. A watcher is a libnats ordered consumer
 * with heartbeats: when they stop (the connection was lost, or the server
 * holding the consumer died), libnats recreates it from the next stream
 * sequence, so a station that was cut off gets every change it missed.
 * We never destroy a watcher while the connection is open: libnats 3.4.1
 * recreates it on a thread of its own, which frees the consumer's name while
 * a destroy on another thread may still be using it to delete the consumer
 * (a heap-use-after-free CI caught under ASan when a cut-off station came
 * back). The watchers are destroyed once, after the connection is closed.
 */
#include "gateway/cluster/cluster.h"
#include "gateway/net/net.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/thread.h>
#include <nats/nats.h>
/* the adapter is a header of non-static functions, written for -Wall only */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmissing-prototypes"
#pragma GCC diagnostic ignored "-Wunused-parameter"
#pragma GCC diagnostic ignored "-Wconversion"
#pragma GCC diagnostic ignored "-Wstrict-prototypes"
#include <nats/adapters/libevent.h>
#pragma GCC diagnostic pop

#define MAX_SERVERS 16
#define RESULTS_HISTORY 16
#define FETCH_BATCH 32
#define FETCH_WAIT_MS 100
#define WATCH_BURST 512
#define OPS_LANES                                                                                  \
    4 /* ops threads: one slow request (a leader election) does not stall the rest                 \
       */
#define WATCH_WAIT_MS 5 /* per watcher per round: a change is seen within ~20 ms */

static const char *const bucket_names[SR_NATS_NKV] = {"sr_passes", "sr_elements", "sr_state",
                                                      "sr_results"};
static const char work_stream[] = "SR_WORK";

enum op_type { OP_PUBLISH, OP_PUT, OP_GET, OP_HISTORY };

struct op {
    struct op *next;
    enum op_type type;
    int bucket;
    char *subject; /* subject or key */
    char msg_id[80];
    uint8_t *data;
    size_t len;
    sr_nats_done done;
    void *arg;
    int rv;
    uint8_t *out;
    size_t outlen;
};

enum in_type { IN_STATUS, IN_WORK, IN_KV };

struct inbound {
    struct inbound *next;
    enum in_type type;
    bool ready;
    int bucket;
    char *key;
    uint8_t *data;
    size_t len;
    bool deleted;
    natsMsg *msg;
};

struct sr_nats_msg {
    natsMsg *msg;
};

struct sr_nats {
    struct event_base *base;
    struct sr_nats_opts o;
    char *servers_copy, *station, *user, *password, *token, *creds;
    natsOptions *nopts;
    natsConnection *nc;
    jsCtx *js;
    kvStore *kv[SR_NATS_NKV];
    kvWatcher *w[SR_NATS_NKV];
    natsSubscription *sub;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct op *ops[OPS_LANES], **ops_tail[OPS_LANES]; /* one queue per ops thread */
    pthread_cond_t lane_cv[OPS_LANES];
    struct op *done, **done_tail;
    struct inbound *in, **in_tail;
    struct event *wake;
    pthread_t ops_thr[OPS_LANES], poll_thr, watch_thr;
    int ops_started;
    bool poll_started, watch_started;
    atomic_bool stop;
    atomic_bool ready;
    atomic_bool reset; /* reconnected: set up the stream, buckets and consumer again */
    bool closed;       /* the connection's closed callback ran (under mu) */
    bool ready_reported;
    _Atomic int64_t last_err_log; /* the poll and watch threads both log */
};

int sr_nats_global_init(void)
{
    return evthread_use_pthreads() == 0 ? 0 : SR_ERR_NOMEM;
}

/* ---- hand-over to the loop ------------------------------------------------------------------ */

static void post_in(sr_nats *n, struct inbound *in)
{
    pthread_mutex_lock(&n->mu);
    *n->in_tail = in;
    n->in_tail = &in->next;
    pthread_mutex_unlock(&n->mu);
    event_active(n->wake, 0, 0);
}

static void post_status(sr_nats *n, bool ready)
{
    struct inbound *in = calloc(1, sizeof(*in));
    if (in) {
        in->type = IN_STATUS;
        in->ready = ready;
        post_in(n, in);
    }
}

static void wake_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    sr_nats *n = arg;
    pthread_mutex_lock(&n->mu);
    struct op *done = n->done;
    n->done = NULL;
    n->done_tail = &n->done;
    struct inbound *in = n->in;
    n->in = NULL;
    n->in_tail = &n->in;
    pthread_mutex_unlock(&n->mu);
    while (done) {
        struct op *next = done->next;
        if (done->done) {
            done->done(done->arg, done->rv, done->out, done->outlen);
        }
        free(done->subject);
        free(done->data);
        free(done->out);
        free(done);
        done = next;
    }
    while (in) {
        struct inbound *next = in->next;
        if (in->type == IN_STATUS) {
            if (n->o.on_status) {
                n->o.on_status(n->o.arg, in->ready);
            }
        } else if (in->type == IN_WORK) {
            struct sr_nats_msg *m = malloc(sizeof(*m));
            if (!m) {
                natsMsg_Destroy(in->msg); /* not acknowledged: redelivered later */
            } else {
                m->msg = in->msg;
                if (n->o.on_work) {
                    n->o.on_work(n->o.arg, m, (const uint8_t *)natsMsg_GetData(in->msg),
                                 (size_t)natsMsg_GetDataLength(in->msg));
                } else {
                    sr_nats_nak(n, m);
                }
            }
        } else if (n->o.on_kv) {
            n->o.on_kv(n->o.arg, in->bucket, in->key, in->data, in->len, in->deleted);
        }
        free(in->key);
        free(in->data);
        free(in);
        in = next;
    }
}

/* ---- the ops thread ----------------------------------------------------------------------------
 */

static int status_rv(natsStatus s)
{
    switch (s) {
    case NATS_OK:
        return 0;
    case NATS_NOT_FOUND:
        return SR_ERR_NOTFOUND;
    case NATS_TIMEOUT:
        return SR_ERR_TIMEOUT;
    case NATS_CONNECTION_CLOSED:
    case NATS_CONNECTION_DISCONNECTED:
    case NATS_NO_SERVER:
    case NATS_NO_RESPONDERS:
        return SR_ERR_UNAVAILABLE;
    case NATS_NO_MEMORY:
        return SR_ERR_NOMEM;
    default:
        return SR_ERR_IO;
    }
}

/* Every value the bucket keeps for the key (deletions left out), oldest
 * first, each as a 4-byte big-endian length and the bytes. */
static natsStatus history(sr_nats *n, struct op *op)
{
    kvEntryList l = {0};
    natsStatus s = kvStore_History(&l, n->kv[op->bucket], op->subject, NULL);
    if (s != NATS_OK) {
        return s;
    }
    size_t total = 0;
    for (int i = 0; i < l.Count; i++) {
        total +=
            4 + (size_t)(kvEntry_ValueLen(l.Entries[i]) > 0 ? kvEntry_ValueLen(l.Entries[i]) : 0);
    }
    op->out = malloc(total ? total : 1);
    if (!op->out) {
        kvEntryList_Destroy(&l);
        return NATS_NO_MEMORY;
    }
    size_t o = 0;
    for (int i = 0; i < l.Count; i++) {
        kvEntry *e = l.Entries[i];
        int len = kvEntry_ValueLen(e);
        if (kvEntry_Operation(e) != kvOp_Put || len <= 0) {
            continue;
        }
        op->out[o++] = (uint8_t)((uint32_t)len >> 24);
        op->out[o++] = (uint8_t)((uint32_t)len >> 16);
        op->out[o++] = (uint8_t)((uint32_t)len >> 8);
        op->out[o++] = (uint8_t)len;
        memcpy(op->out + o, kvEntry_Value(e), (size_t)len);
        o += (size_t)len;
    }
    op->outlen = o;
    kvEntryList_Destroy(&l);
    return o ? NATS_OK : NATS_NOT_FOUND;
}

static void run_op(sr_nats *n, struct op *op)
{
    if (!atomic_load(&n->ready)) {
        op->rv = SR_ERR_UNAVAILABLE;
        return;
    }
    natsStatus s;
    if (op->type == OP_PUBLISH) {
        jsPubOptions po;
        jsPubOptions_Init(&po);
        po.MaxWait = n->o.op_timeout_ms;
        if (op->msg_id[0]) {
            po.MsgId = op->msg_id;
        }
        jsPubAck *ack = NULL;
        jsErrCode jerr = 0;
        s = js_Publish(&ack, n->js, op->subject, op->data, (int)op->len, &po, &jerr);
        jsPubAck_Destroy(ack);
    } else if (op->type == OP_PUT) {
        uint64_t rev = 0;
        s = kvStore_Put(&rev, n->kv[op->bucket], op->subject, op->data, (int)op->len);
    } else if (op->type == OP_HISTORY) {
        s = history(n, op);
    } else {
        kvEntry *e = NULL;
        s = kvStore_Get(&e, n->kv[op->bucket], op->subject);
        if (s == NATS_OK && e) {
            int len = kvEntry_ValueLen(e);
            op->out = malloc(len > 0 ? (size_t)len : 1);
            if (!op->out) {
                s = NATS_NO_MEMORY;
            } else {
                if (len > 0) {
                    memcpy(op->out, kvEntry_Value(e), (size_t)len);
                }
                op->outlen = len > 0 ? (size_t)len : 0;
            }
        }
        kvEntry_Destroy(e);
    }
    op->rv = status_rv(s);
    if (s != NATS_OK && s != NATS_NOT_FOUND) {
        sr_log(SR_LOG_DEBUG, "nats: %s %s: %s",
               op->type == OP_PUBLISH ? "publish"
               : op->type == OP_PUT   ? "put"
               : op->type == OP_GET   ? "get"
                                      : "history",
               op->subject, natsStatus_GetText(s));
    }
}

struct lane_arg {
    sr_nats *n;
    int lane;
};

static void *ops_main(void *arg)
{
    struct lane_arg *la = arg;
    sr_nats *n = la->n;
    int k = la->lane;
    free(la);
    pthread_mutex_lock(&n->mu);
    while (!atomic_load(&n->stop)) {
        struct op *op = n->ops[k];
        if (!op) {
            pthread_cond_wait(&n->lane_cv[k], &n->mu);
            continue;
        }
        n->ops[k] = op->next;
        if (!n->ops[k]) {
            n->ops_tail[k] = &n->ops[k];
        }
        op->next = NULL;
        pthread_mutex_unlock(&n->mu);
        run_op(n, op);
        pthread_mutex_lock(&n->mu);
        *n->done_tail = op;
        n->done_tail = &op->next;
        pthread_mutex_unlock(&n->mu);
        event_active(n->wake, 0, 0);
        pthread_mutex_lock(&n->mu);
    }
    pthread_mutex_unlock(&n->mu);
    return NULL;
}

static int enqueue(sr_nats *n, enum op_type type, int bucket, const char *subject,
                   const char *msg_id, const void *data, size_t len, sr_nats_done done, void *arg)
{
    struct op *op = calloc(1, sizeof(*op));
    if (!op) {
        return SR_ERR_NOMEM;
    }
    op->type = type;
    op->bucket = bucket;
    op->subject = strdup(subject);
    op->data = malloc(len ? len : 1);
    if (!op->subject || !op->data) {
        free(op->subject);
        free(op->data);
        free(op);
        return SR_ERR_NOMEM;
    }
    if (len) {
        memcpy(op->data, data, len);
    }
    op->len = len;
    if (msg_id) {
        snprintf(op->msg_id, sizeof(op->msg_id), "%s", msg_id);
    }
    op->done = done;
    op->arg = arg;
    /* the same key (or workload id) always takes the same lane: its
     * operations stay in order; different keys run side by side */
    const char *by = op->msg_id[0] ? op->msg_id : op->subject;
    uint32_t h = 2166136261u;
    for (const char *c = by; *c; c++) {
        h = (h ^ (uint8_t)*c) * 16777619u;
    }
    int k = (int)(h % OPS_LANES);
    pthread_mutex_lock(&n->mu);
    *n->ops_tail[k] = op;
    n->ops_tail[k] = &op->next;
    pthread_cond_signal(&n->lane_cv[k]);
    pthread_mutex_unlock(&n->mu);
    return 0;
}

int sr_nats_publish(sr_nats *n, const char *subject, const char *msg_id, const void *data,
                    size_t len, sr_nats_done done, void *arg)
{
    return enqueue(n, OP_PUBLISH, 0, subject, msg_id, data, len, done, arg);
}

int sr_nats_kv_put(sr_nats *n, int bucket, const char *key, const void *data, size_t len,
                   sr_nats_done done, void *arg)
{
    if (bucket < 0 || bucket >= SR_NATS_NKV) {
        return SR_ERR_INVAL;
    }
    return enqueue(n, OP_PUT, bucket, key, NULL, data, len, done, arg);
}

int sr_nats_kv_get(sr_nats *n, int bucket, const char *key, sr_nats_done done, void *arg)
{
    if (bucket < 0 || bucket >= SR_NATS_NKV) {
        return SR_ERR_INVAL;
    }
    return enqueue(n, OP_GET, bucket, key, NULL, "", 0, done, arg);
}

int sr_nats_kv_history(sr_nats *n, int bucket, const char *key, sr_nats_done done, void *arg)
{
    if (bucket < 0 || bucket >= SR_NATS_NKV) {
        return SR_ERR_INVAL;
    }
    return enqueue(n, OP_HISTORY, bucket, key, NULL, "", 0, done, arg);
}

void sr_nats_ack(sr_nats *n, sr_nats_msg *m)
{
    (void)n;
    natsMsg_Ack(m->msg, NULL);
    natsMsg_Destroy(m->msg);
    free(m);
}

void sr_nats_nak(sr_nats *n, sr_nats_msg *m)
{
    (void)n;
    natsMsg_NakWithDelay(m->msg, 1000, NULL);
    natsMsg_Destroy(m->msg);
    free(m);
}

void sr_nats_term(sr_nats *n, sr_nats_msg *m)
{
    (void)n;
    natsMsg_Term(m->msg, NULL);
    natsMsg_Destroy(m->msg);
    free(m);
}

/* ---- the poll thread ------------------------------------------------------------------------- */

static void nap(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void log_setup_error(sr_nats *n, const char *what, natsStatus s)
{
    int64_t now = sr_mono_ms();
    int64_t last = atomic_load(&n->last_err_log);
    if (now - last > 5000 && atomic_compare_exchange_strong(&n->last_err_log, &last, now)) {
        sr_log(SR_LOG_WARN, "nats: %s: %s (%s); retrying", what, natsStatus_GetText(s),
               nats_GetLastError(NULL) ? nats_GetLastError(NULL) : "");
    }
}

static natsStatus ensure_stream(sr_nats *n)
{
    jsStreamInfo *si = NULL;
    jsErrCode jerr = 0;
    natsStatus s = js_GetStreamInfo(&si, n->js, work_stream, NULL, &jerr);
    if (s == NATS_OK) {
        jsStreamInfo_Destroy(si);
        return NATS_OK;
    }
    if (s != NATS_NOT_FOUND && jerr != JSStreamNotFoundErr) {
        return s;
    }
    char subj[] = "sr.work.>";
    const char *subjects[] = {subj};
    jsStreamConfig sc;
    jsStreamConfig_Init(&sc);
    sc.Name = work_stream;
    sc.Subjects = subjects;
    sc.SubjectsLen = 1;
    sc.Retention = js_WorkQueuePolicy;
    sc.Storage = js_FileStorage;
    sc.Replicas = n->o.replicas;
    sc.Duplicates = 3600LL * 1000000000LL; /* de-duplication window: an hour, in ns */
    s = js_AddStream(&si, n->js, &sc, NULL, &jerr);
    jsStreamInfo_Destroy(si);
    if (s != NATS_OK) {
        /* another station may have created it at the same moment */
        si = NULL;
        s = js_GetStreamInfo(&si, n->js, work_stream, NULL, &jerr);
        jsStreamInfo_Destroy(si);
    }
    return s;
}

static natsStatus ensure_bucket(sr_nats *n, int b)
{
    if (n->kv[b]) {
        return NATS_OK;
    }
    natsStatus s = js_KeyValue(&n->kv[b], n->js, bucket_names[b]);
    if (s == NATS_OK) {
        return s;
    }
    kvConfig kc;
    kvConfig_Init(&kc);
    kc.Bucket = bucket_names[b];
    /* results keep a few values per key: a value put over a station's
     * result by someone without its key is refused at fetch, and the
     * newest value that verifies is served instead */
    kc.History = b == SR_NATS_KV_RESULTS ? RESULTS_HISTORY : 1;
    kc.Replicas = n->o.replicas;
    kc.StorageType = js_FileStorage;
    /* libnats 3.4 passes TTL through as the stream's MaxAge: nanoseconds */
    if (b == SR_NATS_KV_STATE) {
        kc.TTL = n->o.state_ttl_ms * 1000000LL;
    } else if (b == SR_NATS_KV_RESULTS) {
        kc.TTL = n->o.results_ttl_ms * 1000000LL;
    }
    s = js_CreateKeyValue(&n->kv[b], n->js, &kc);
    if (s != NATS_OK) {
        log_setup_error(n, bucket_names[b], s);
        n->kv[b] = NULL;
        s = js_KeyValue(&n->kv[b], n->js, bucket_names[b]);
    }
    return s;
}

static void drop_watchers(sr_nats *n)
{
    for (int b = 0; b < SR_NATS_NKV; b++) {
        if (n->w[b]) {
            kvWatcher_Destroy(n->w[b]);
            n->w[b] = NULL;
        }
    }
}

/* The stream, the buckets and the consumer; idempotent. */
static natsStatus setup(sr_nats *n)
{
    natsStatus s = NATS_OK;
    if (!n->js) {
        jsOptions jo;
        jsOptions_Init(&jo);
        jo.Wait = n->o.op_timeout_ms;
        s = natsConnection_JetStream(&n->js, n->nc, &jo);
        if (s != NATS_OK) {
            n->js = NULL;
            log_setup_error(n, "JetStream context", s);
            return s;
        }
    }
    s = ensure_stream(n);
    if (s != NATS_OK) {
        log_setup_error(n,
                        "work stream "
                        "SR_WORK",
                        s);
        return s;
    }
    for (int b = 0; b < SR_NATS_NKV; b++) {
        s = ensure_bucket(n, b);
        if (s != NATS_OK) {
            log_setup_error(n, bucket_names[b], s);
            return s;
        }
    }
    if (!n->sub) {
        char subj[128], durable[96];
        snprintf(subj, sizeof(subj), "sr.work.%s", n->station);
        snprintf(durable, sizeof(durable), "work-%s", n->station);
        jsSubOptions so;
        jsSubOptions_Init(&so);
        so.Stream = work_stream;
        so.Config.AckPolicy = js_AckExplicit;
        so.Config.AckWait = 30LL * 1000000000LL; /* unacknowledged for 30 s: redelivered */
        so.Config.MaxDeliver = -1;
        so.Config.Replicas = n->o.replicas;
        jsErrCode jerr = 0;
        s = js_PullSubscribe(&n->sub, n->js, subj, durable, NULL, &so, &jerr);
        if (s != NATS_OK) {
            n->sub = NULL;
            log_setup_error(n, "work consumer", s);
            return s;
        }
    }
    return NATS_OK;
}

/* The watch thread's watchers, made once (those still missing); never destroyed while the
 * connection is open (see the top of this file). */
static natsStatus make_watchers(sr_nats *n)
{
    for (int b = 0; b < SR_NATS_NKV; b++) {
        if (n->w[b]) {
            continue;
        }
        kvWatchOptions wo;
        kvWatchOptions_Init(&wo);
        natsStatus s = kvStore_WatchAll(&n->w[b], n->kv[b], &wo);
        if (s != NATS_OK) {
            n->w[b] = NULL;
            log_setup_error(n, "watch", s);
            return s;
        }
    }
    return NATS_OK;
}

static void poll_watchers(sr_nats *n)
{
    for (int b = 0; b < SR_NATS_NKV; b++) {
        for (int i = 0; n->w[b] && i < WATCH_BURST && !atomic_load(&n->stop); i++) {
            kvEntry *e = NULL;
            natsStatus s = kvWatcher_Next(&e, n->w[b], WATCH_WAIT_MS);
            if (s != NATS_OK) {
                break; /* timeout: nothing more now */
            }
            if (!e) {
                continue; /* the marker after the initial values */
            }
            struct inbound *in = calloc(1, sizeof(*in));
            int len = kvEntry_ValueLen(e);
            if (in) {
                in->type = IN_KV;
                in->bucket = b;
                in->key = strdup(kvEntry_Key(e));
                in->deleted = kvEntry_Operation(e) != kvOp_Put;
                in->len = in->deleted || len < 0 ? 0 : (size_t)len;
                in->data = malloc(in->len ? in->len : 1);
                if (!in->key || !in->data) {
                    free(in->key);
                    free(in->data);
                    free(in);
                    in = NULL;
                } else if (in->len) {
                    memcpy(in->data, kvEntry_Value(e), in->len);
                }
            }
            kvEntry_Destroy(e);
            if (in) {
                post_in(n, in);
            }
        }
    }
}

/* Fetches one message at a time. libnats 3.4.1's fetch of a batch sizes its
 * array by the batch, then counts what it takes against the batch it asks the
 * server for, which it has lowered by the messages it already held (late
 * deliveries to an earlier pull that expired): with some held, the count
 * passes the batch and it writes past the array (heap-buffer-overflow under
 * ASan, seen in CI). With a batch of one the count cannot pass it. So: wait for
 * one (it comes as soon as there is one), then take the rest without waiting,
 * one per request, up to FETCH_BATCH (a round trip to the server each). */
static void fetch_work(sr_nats *n)
{
    for (int got = 0; got < FETCH_BATCH && !atomic_load(&n->stop); got++) {
        natsMsgList list = {0};
        natsStatus s;
        if (got == 0) {
            s = natsSubscription_Fetch(&list, n->sub, 1, FETCH_WAIT_MS, NULL);
        } else {
            jsFetchRequest fr;
            jsFetchRequest_Init(&fr);
            fr.Batch = 1;
            fr.NoWait = true;
            s = natsSubscription_FetchRequest(&list, n->sub, &fr);
        }
        if (s != NATS_OK || list.Count < 1) {
            natsMsgList_Destroy(&list);
            if (got == 0 && s != NATS_OK && s != NATS_TIMEOUT) {
                nap(50);
            }
            return; /* none waiting (or none now): back to the poll loop */
        }
        for (int i = 0; i < list.Count; i++) {
            struct inbound *in = calloc(1, sizeof(*in));
            if (!in) {
                natsMsg_Destroy(list.Msgs[i]); /* redelivered after the ack wait */
            } else {
                in->type = IN_WORK;
                in->msg = list.Msgs[i];
                post_in(n, in);
            }
            list.Msgs[i] = NULL;
        }
        natsMsgList_Destroy(&list);
    }
}

static void *poll_main(void *arg)
{
    sr_nats *n = arg;
    while (!atomic_load(&n->stop)) {
        if (!n->nc) {
            natsStatus s = natsConnection_Connect(&n->nc, n->nopts);
            if (s != NATS_OK && s != NATS_NOT_YET_CONNECTED) {
                n->nc = NULL;
                log_setup_error(n, "connect", s);
                nap(500);
                continue;
            }
        }
        bool connected = natsConnection_Status(n->nc) == NATS_CONN_STATUS_CONNECTED;
        if (!connected || atomic_exchange(&n->reset, false)) {
            if (atomic_exchange(&n->ready, false)) {
                post_status(n, false);
            }
            if (!connected) {
                nap(100);
                continue;
            }
        }
        if (!atomic_load(&n->ready)) {
            if (setup(n) != NATS_OK) {
                nap(500);
                continue;
            }
            atomic_store(&n->ready, true);
            sr_log(SR_LOG_INFO, "nats: connected, stream and buckets ready");
            post_status(n, true);
        }
        fetch_work(n);
    }
    return NULL;
}

/* The watch thread: makes the watchers once the buckets exist, then reads them. While the
 * connection is down they stay as they are; libnats brings them back after it. */
static void *watch_main(void *arg)
{
    sr_nats *n = arg;
    while (!atomic_load(&n->stop)) {
        if (!atomic_load(&n->ready)) {
            nap(50);
            continue;
        }
        if (make_watchers(n) != NATS_OK) {
            nap(200);
            continue;
        }
        poll_watchers(n);
    }
    return NULL; /* the watchers are destroyed by sr_nats_free, after the close */
}

/* ---- connection callbacks (libnats threads) ---------------------------------------------------
 */

static void on_disconnected(natsConnection *nc, void *closure)
{
    (void)nc;
    sr_nats *n = closure;
    atomic_store(&n->reset, true);
}

static void on_reconnected(natsConnection *nc, void *closure)
{
    (void)nc;
    sr_nats *n = closure;
    atomic_store(&n->reset, true);
}

/* libnats runs connection callbacks on its own thread, in the order they were posted, and
 * the closed one is posted last by natsConnection_Close: once it has run, no callback of ours
 * still holds n. Waiting for it is what keeps a disconnected callback that the close posted
 * from running after n is freed. */
static void on_closed(natsConnection *nc, void *closure)
{
    (void)nc;
    sr_nats *n = closure;
    pthread_mutex_lock(&n->mu);
    n->closed = true;
    pthread_cond_broadcast(&n->cv);
    pthread_mutex_unlock(&n->mu);
}

/* wait (at most a few seconds: the library's callback thread could be stuck in someone
 * else's callback) for on_closed */
static bool wait_closed(sr_nats *n)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 5;
    pthread_mutex_lock(&n->mu);
    while (!n->closed) {
        if (pthread_cond_timedwait(&n->cv, &n->mu, &until) == ETIMEDOUT) {
            break;
        }
    }
    bool done = n->closed;
    pthread_mutex_unlock(&n->mu);
    return done;
}

/* ---- life cycle --------------------------------------------------------------------------------
 */

static char *dup_or_null(const char *s)
{
    return s && s[0] ? strdup(s) : NULL;
}

int sr_nats_new(sr_nats **out, struct event_base *base, const struct sr_nats_opts *o, char *err,
                size_t errlen)
{
    sr_nats *n = calloc(1, sizeof(*n));
    if (!n) {
        return SR_ERR_NOMEM;
    }
    n->base = base;
    n->o = *o;
    for (int k = 0; k < OPS_LANES; k++) {
        n->ops_tail[k] = &n->ops[k];
        pthread_cond_init(&n->lane_cv[k], NULL);
    }
    n->done_tail = &n->done;
    n->in_tail = &n->in;
    pthread_mutex_init(&n->mu, NULL);
    pthread_cond_init(&n->cv, NULL);
    n->servers_copy = strdup(o->servers ? o->servers : "");
    n->station = strdup(o->station ? o->station : "");
    n->user = dup_or_null(o->user);
    n->password = dup_or_null(o->password);
    n->token = dup_or_null(o->token);
    n->creds = dup_or_null(o->creds);
    n->wake = event_new(base, -1, 0, wake_cb, n);
    int rv = 0;
    if (!n->servers_copy || !n->station || !n->wake) {
        rv = SR_ERR_NOMEM;
        goto fail;
    }
    const char *servers[MAX_SERVERS];
    int ns = 0;
    for (char *save = NULL, *t = strtok_r(n->servers_copy, ", ", &save); t;
         t = strtok_r(NULL, ", ", &save)) {
        if (ns == MAX_SERVERS) {
            snprintf(err, errlen, "more than %d servers in nats", MAX_SERVERS);
            rv = SR_ERR_CONFIG;
            goto fail;
        }
        servers[ns++] = t;
    }
    if (ns == 0) {
        snprintf(err, errlen, "nats names no server");
        rv = SR_ERR_CONFIG;
        goto fail;
    }
    natsStatus s = nats_Open(-1);
    s = s == NATS_OK ? natsOptions_Create(&n->nopts) : s;
    s = s == NATS_OK ? natsOptions_SetServers(n->nopts, servers, ns) : s;
    s = s == NATS_OK ? natsOptions_SetName(n->nopts, n->station) : s;
    s = s == NATS_OK
            ? natsOptions_SetEventLoop(n->nopts, base, natsLibevent_Attach, natsLibevent_Read,
                                       natsLibevent_Write, natsLibevent_Detach)
            : s;
    s = s == NATS_OK ? natsOptions_SetAllowReconnect(n->nopts, true) : s;
    s = s == NATS_OK ? natsOptions_SetMaxReconnect(n->nopts, -1) : s;
    s = s == NATS_OK ? natsOptions_SetReconnectWait(n->nopts, 250) : s;
    s = s == NATS_OK ? natsOptions_SetTimeout(n->nopts, 2000) : s;
    s = s == NATS_OK ? natsOptions_SetPingInterval(n->nopts, 2000) : s;
    s = s == NATS_OK ? natsOptions_SetMaxPingsOut(n->nopts, 2) : s;
    /* with a callback, Connect returns at once (NATS_NOT_YET_CONNECTED) and libnats keeps
     * trying in the background; without one it would block until a server answers, and a
     * daemon whose servers are all down at start-up could not stop */
    s = s == NATS_OK ? natsOptions_SetRetryOnFailedConnect(n->nopts, true, on_reconnected, n) : s;
    s = s == NATS_OK ? natsOptions_SetDisconnectedCB(n->nopts, on_disconnected, n) : s;
    s = s == NATS_OK ? natsOptions_SetReconnectedCB(n->nopts, on_reconnected, n) : s;
    s = s == NATS_OK ? natsOptions_SetClosedCB(n->nopts, on_closed, n) : s;
    if (s == NATS_OK && n->user) {
        s = natsOptions_SetUserInfo(n->nopts, n->user, n->password ? n->password : "");
    }
    if (s == NATS_OK && n->token) {
        s = natsOptions_SetToken(n->nopts, n->token);
    }
    if (s == NATS_OK && n->creds) {
        s = natsOptions_SetUserCredentialsFromFiles(n->nopts, n->creds, NULL);
    }
    if (s != NATS_OK) {
        snprintf(err, errlen, "nats options: %s (%s)", natsStatus_GetText(s),
                 nats_GetLastError(NULL) ? nats_GetLastError(NULL) : "");
        rv = s == NATS_NO_MEMORY ? SR_ERR_NOMEM : SR_ERR_CONFIG;
        goto fail;
    }
    for (int k = 0; k < OPS_LANES; k++) {
        struct lane_arg *la = malloc(sizeof(*la));
        if (!la) {
            rv = SR_ERR_NOMEM;
            goto fail;
        }
        la->n = n;
        la->lane = k;
        if (pthread_create(&n->ops_thr[k], NULL, ops_main, la) != 0) {
            free(la);
            rv = SR_ERR_NOMEM;
            goto fail;
        }
        n->ops_started++;
    }
    if (pthread_create(&n->poll_thr, NULL, poll_main, n) != 0) {
        rv = SR_ERR_NOMEM;
        goto fail;
    }
    n->poll_started = true;
    if (pthread_create(&n->watch_thr, NULL, watch_main, n) != 0) {
        rv = SR_ERR_NOMEM;
        goto fail;
    }
    n->watch_started = true;
    *out = n;
    return 0;
fail:
    if (rv == SR_ERR_NOMEM && err && errlen) {
        snprintf(err, errlen, "out of memory");
    }
    sr_nats_free(n);
    return rv;
}

void sr_nats_free(sr_nats *n)
{
    if (!n) {
        return;
    }
    pthread_mutex_lock(&n->mu);
    atomic_store(&n->stop, true);
    pthread_cond_broadcast(&n->cv);
    for (int k = 0; k < OPS_LANES; k++) {
        pthread_cond_broadcast(&n->lane_cv[k]);
    }
    pthread_mutex_unlock(&n->mu);
    /* The connection's socket is served by the gateway's event loop, which has stopped: a
     * request a thread has in flight (an acknowledged publish, a fetch, the consumer deletion
     * of a watcher being destroyed) would only end at its timeout, one after the other (9 s
     * per stop with the default op_timeout_ms). Closing first makes each fail at once; what
     * was not acknowledged is published again by the next run. */
    bool leak = false;
    if (n->nc) {
        natsConnection_Close(n->nc);
        if (!wait_closed(n)) {
            /* a callback may still come for n: keep it rather than let it write freed memory */
            sr_log(SR_LOG_WARN, "nats: connection callbacks did not finish within 5 s");
            leak = true;
        }
    }
    for (int k = 0; k < n->ops_started; k++) {
        pthread_join(n->ops_thr[k], NULL);
    }
    if (n->poll_started) {
        pthread_join(n->poll_thr, NULL);
    }
    if (n->watch_started) {
        pthread_join(n->watch_thr, NULL);
    }
    atomic_store(&n->ready, false);
    /* operations never run, or done but not yet delivered: cancelled */
    for (int pass = 0; pass <= OPS_LANES; pass++) {
        struct op *op = pass == OPS_LANES ? n->done : n->ops[pass];
        while (op) {
            struct op *next = op->next;
            if (op->done) {
                op->done(op->arg, SR_ERR_CANCELLED, NULL, 0);
            }
            free(op->subject);
            free(op->data);
            free(op->out);
            free(op);
            op = next;
        }
    }
    for (struct inbound *in = n->in; in;) {
        struct inbound *next = in->next;
        if (in->msg) {
            natsMsg_Destroy(in->msg); /* not acknowledged: redelivered to the next run */
        }
        free(in->key);
        free(in->data);
        free(in);
        in = next;
    }
    drop_watchers(n);
    if (n->sub) {
        natsSubscription_Destroy(n->sub); /* the durable consumer stays on the server */
    }
    for (int b = 0; b < SR_NATS_NKV; b++) {
        kvStore_Destroy(n->kv[b]);
    }
    jsCtx_Destroy(n->js);
    natsConnection_Destroy(n->nc);
    natsOptions_Destroy(n->nopts);
    if (n->wake) {
        event_free(n->wake);
    }
    free(n->servers_copy);
    free(n->station);
    free(n->user);
    free(n->password);
    free(n->token);
    free(n->creds);
    if (!leak) {
        pthread_mutex_destroy(&n->mu);
        pthread_cond_destroy(&n->cv);
        for (int k = 0; k < OPS_LANES; k++) {
            pthread_cond_destroy(&n->lane_cv[k]);
        }
        free(n);
    }
    nats_Close();
}
