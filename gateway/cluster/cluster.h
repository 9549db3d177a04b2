/*
 * cluster: what federation over NATS JetStream (DESIGN section 10) is made
 * of below the daemon: the records stations exchange (a pure codec,
 * record.c) and a small libnats wrapper on the daemon's libevent loop
 * (nats.c). It knows NATS and the record format, not what the daemon does
 * with them.
 *
 * Only skyrouted uses these, and only with a [cluster] section.
 */
#ifndef SR_GATEWAY_CLUSTER_H
#define SR_GATEWAY_CLUSTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>

#include "common/common.h"
#include "crypto/crypto.h"
#include "routing/routing.h"

/* ==== records (record.c) ==========================================================
 *
 * Every record a station writes to NATS is signed by that station's gateway
 * key, so a station acts on another's work, results, schedules or claims only
 * if it trusts that station's key ([peer.NAME] pubkey = FILE):
 *
 *   ["SRC2", body, station, sig]
 *
 * a record of crypto's signed-record codec (crypto.h, sr_record_seal/open):
 * body: bin, the msgpack map below; station: str, the writer's name (1-63
 * bytes); sig: bin(64), Ed25519 over "skyroute/cluster/v2\0" || body. The
 * signature is checked, against the key configured for |station|, before the
 * body is decoded. Body keys (strings; unknown keys are ignored):
 *
 *   all      kind (str: work|result|passes|state|elements), station (str, = the outer
 *            one), t (int, ms since the epoch when written), seq (int >= 1: the
 *            writer's sequence, strictly increasing over every record it writes,
 *            across restarts; readers ignore a record whose seq is not above the
 *            last one they took from that station under that key)
 *   work     id (bin 16), origin, dest, target, handler, client (str), payload
 *            (bin), iat, deadline (int), work (float), result_bytes (int),
 *            flags (int), place (int 0..3), place_target, data_at (str)
 *   result   id (the workload's; the key it is stored under must be its hex),
 *            origin (str: the station that accepted it), target (str: the target
 *            that ran it), status (int: HTTP-style, 200 = done), payload (bin),
 *            signer (str), error (str), predicted_ms, elapsed_ms (float), and
 *            node_env (bin, optional: the target's own signed result envelope,
 *            SR1 or SR2 bytes, as the station that ran it verified it; carried
 *            so that the station that accepted the work can check the payload
 *            against the target's key itself); the writer (station) is the
 *            station that ran it
 *   passes   sat (str), passes: array of [aos, tca, los (int), max_el, up_bps,
 *            down_bps, light_ms (float), source (str)]; an empty array is the
 *            signed way to withdraw a view (a KV delete is never taken)
 *   state    items, bytes (int: the spool), ready (bool), targets: array of
 *            [id (str), ewma_ms (float), inflight (int), failures (int),
 *            kind (int: 1 IDC, 2 satellite), gops (float)]
 *   elements sat, format (str: tle, omm-json, ...), op (str: the operator who
 *            uploaded it), epoch (int ms), payload (bin: the element set text)
 *
 * SRC1 (context "skyroute/cluster/v1\0", no seq) is still read for work
 * only: a work message is consumed once from a work queue and de-duplicated
 * by id, so a sequence adds nothing there. Every other kind is a KV value a
 * process with NATS access could put back later, which is what seq and t
 * exist to refuse, so SRC1 results, passes, state and elements are refused.
 */

typedef enum {
    SR_CMSG_WORK = 1,
    SR_CMSG_RESULT = 2,
    SR_CMSG_PASSES = 3,
    SR_CMSG_STATE = 4,
    SR_CMSG_ELEMENTS = 5,
} sr_cmsg_kind;

#define SR_CMSG_MAX_PASSES 4096
#define SR_CMSG_MAX_TARGETS 1024

struct sr_cmsg_target {
    char id[SR_TARGET_IDMAX];
    double ewma_ms;
    int64_t inflight;
    int64_t failures;
    int64_t kind; /* SR_TARGET_IDC or SR_TARGET_SATELLITE */
    double gops;  /* compute rate (> 0) */
};

struct sr_cmsg {
    sr_cmsg_kind kind;
    char station[SR_TARGET_IDMAX]; /* the writer (and signer) */
    int64_t t_ms;
    int64_t seq; /* >= 1 (SRC2); 0 in an SRC1 record */
    int version; /* decode: 1 or 2 */
    /* work and result */
    uint8_t id[SR_ENV_IDBYTES];
    char origin[SR_TARGET_IDMAX]; /* the station that accepted the workload */
    char dest[SR_TARGET_IDMAX];   /* work: the station that is to dispatch it */
    char target[SR_TARGET_IDMAX]; /* work: the satellite to plan for; result: who ran it */
    char handler[SR_ENV_STRMAX];
    char client[64];
    uint8_t *payload; /* owned (malloc'd) after decode; borrowed for encode */
    size_t payload_len;
    int64_t iat_ms, deadline_ms;
    double work_gop;
    int64_t result_bytes;
    int64_t env_flags;
    int64_t place;
    char place_target[SR_TARGET_IDMAX];
    char data_at[SR_TARGET_IDMAX];
    /* result */
    int64_t status;
    char signer[128];
    char error[256];
    double predicted_ms, elapsed_ms;
    uint8_t *node_env; /* the target's signed result envelope; owned after decode */
    size_t node_env_len;
    /* passes */
    char sat[SR_TARGET_IDMAX];
    struct sr_pass_rec *passes; /* owned after decode; borrowed for encode */
    size_t npasses;
    /* state */
    int64_t items, bytes;
    bool ready;
    struct sr_cmsg_target *targets; /* owned after decode; borrowed for encode */
    size_t ntargets;
    /* elements (the text is payload) */
    char format[16];
    char op[64];
    int64_t epoch_ms;
};

/* Signs and appends the record for |m| to |out| (which keeps its ceiling).
 * 0, SR_ERR_INVAL (a string too long, an unknown kind, too many passes or
 * targets), SR_ERR_TOOBIG (over |out|'s ceiling) or SR_ERR_NOMEM. */
int sr_cmsg_encode(sr_buf *out, const sr_key *key, const struct sr_cmsg *m) SR_WARN_UNUSED;

/* The public key trusted for |station|, or NULL. */
typedef const uint8_t *(*sr_cmsg_peer_key)(void *arg, const char *station);

/*
 * Decodes |len| bytes into |m| (zeroed first; release with sr_cmsg_clear even
 * on failure): checks the outer structure, refuses a format |want| does not
 * take (before any key is looked up), looks up the station's key, verifies
 * the signature, then decodes the body. |want|: the kind the caller expects
 * (anything else is refused) or 0 for any. At most |max_len| bytes. Returns 0
 * or, with one line in |err| naming what is wrong:
 *   SR_ERR_TOOBIG         over |max_len|
 *   SR_ERR_ENV_FORMAT     not ["SRC2", bin, str, bin(64)], trailing bytes
 *   SR_ERR_ENV_VERSION    an SRC1 record of a kind other than work
 *   SR_ERR_ENV_UNTRUSTED  no key for the station
 *   SR_ERR_ENV_BADSIG     the signature does not verify
 *   SR_ERR_ENV_BODY       the body is not a valid map (names the key)
 *   SR_ERR_ENV_KIND       a valid record of another kind than |want|
 *   SR_ERR_NOMEM
 */
int sr_cmsg_open(struct sr_cmsg *m, const uint8_t *data, size_t len, size_t max_len,
                 sr_cmsg_kind want, sr_cmsg_peer_key lookup, void *arg, char *err,
                 size_t errlen) SR_WARN_UNUSED;
/* sr_cmsg_open with |want| 0. */
int sr_cmsg_decode(struct sr_cmsg *m, const uint8_t *data, size_t len, size_t max_len,
                   sr_cmsg_peer_key lookup, void *arg, char *err, size_t errlen) SR_WARN_UNUSED;
void sr_cmsg_clear(struct sr_cmsg *m); /* frees what decode allocated; zeroes |m| */

/* ==== the NATS connection (nats.c) =====================================================
 *
 * One connection to the cluster, driven by the daemon's event_base through
 * libnats's libevent adapter (socket reads and writes run on the loop).
 * JetStream and KV calls in libnats are synchronous request/reply, and a
 * reply can only be read by the loop, so they never run on it: worker
 * threads make them (four for the caller's operations, one that connects,
 * creates the stream and buckets and fetches work, one that watches the
 * buckets) and post every outcome back to the loop with event_active. Every
 * callback below runs on the loop thread.
 *
 * Call sr_nats_global_init() before the event_base is created (it makes
 * libevent thread-safe, which the adapter and the workers need).
 */

typedef struct sr_nats sr_nats;
typedef struct sr_nats_msg sr_nats_msg; /* a fetched work message, to ack or nak */

enum {
    SR_NATS_KV_PASSES = 0,   /* "<station>.<sat>": a station's passes of a satellite */
    SR_NATS_KV_ELEMENTS = 1, /* "<sat>": the latest uploaded element set */
    SR_NATS_KV_STATE = 2,    /* "<station>": load and health, with a TTL */
    SR_NATS_KV_RESULTS = 3,  /* "<workload id hex>": results, for any station */
    SR_NATS_NKV = 4,
};

struct sr_nats_opts {
    const char *servers;                 /* "nats://H:P[,nats://H:P...]" */
    const char *user, *password, *token; /* NULL when unset */
    const char *creds;                   /* a .creds file, or NULL */
    const char *station;                 /* this station: its work subject */
    int replicas;                        /* of every stream and bucket (1..5) */
    int64_t state_ttl_ms;                /* the state bucket's TTL */
    int64_t results_ttl_ms;              /* the results bucket's TTL */
    int64_t op_timeout_ms;               /* each JetStream request */
    /* connected: streams, buckets and the work consumer are ready; false
     * when the connection is lost */
    void (*on_status)(void *arg, bool ready);
    /* a work message for this station: the receiver must call sr_nats_ack
     * (or sr_nats_nak) exactly once, from the loop */
    void (*on_work)(void *arg, sr_nats_msg *m, const uint8_t *data, size_t len);
    /* a value in a bucket changed (every current value is delivered again
     * after each (re)connection); |len| 0 with deleted for a deletion */
    void (*on_kv)(void *arg, int bucket, const char *key, const uint8_t *data, size_t len,
                  bool deleted);
    void *arg;
};

/* Makes libevent thread-safe (evthread_use_pthreads). Once, before
 * event_base_new. 0 or SR_ERR_NOMEM. */
int sr_nats_global_init(void) SR_WARN_UNUSED;

/* Starts connecting (in the background; the connection is retried forever).
 * 0, SR_ERR_CONFIG (bad server list, with the reason in |err|) or
 * SR_ERR_NOMEM. */
int sr_nats_new(sr_nats **out, struct event_base *base, const struct sr_nats_opts *o, char *err,
                size_t errlen) SR_WARN_UNUSED;
/* Closes the connection and joins the workers; operations still pending
 * complete with SR_ERR_CANCELLED (from inside this call). NULL is a no-op. */
void sr_nats_free(sr_nats *n);

/* Completion of an operation, on the loop: rv 0 (|data| = the value for a
 * get), SR_ERR_NOTFOUND (get: no such key), SR_ERR_UNAVAILABLE (not
 * connected), SR_ERR_TIMEOUT, SR_ERR_IO or SR_ERR_CANCELLED. */
typedef void (*sr_nats_done)(void *arg, int rv, const uint8_t *data, size_t len);

/* Publishes to a JetStream subject and waits for the stream's
 * acknowledgement (the message is stored, replicated). |msg_id| (may be NULL)
 * is JetStream's de-duplication id. The data is copied. 0 or SR_ERR_NOMEM
 * (|done| is then not called). */
int sr_nats_publish(sr_nats *n, const char *subject, const char *msg_id, const void *data,
                    size_t len, sr_nats_done done, void *arg) SR_WARN_UNUSED;
int sr_nats_kv_put(sr_nats *n, int bucket, const char *key, const void *data, size_t len,
                   sr_nats_done done, void *arg) SR_WARN_UNUSED;
int sr_nats_kv_get(sr_nats *n, int bucket, const char *key, sr_nats_done done,
                   void *arg) SR_WARN_UNUSED;
/* Every value the bucket still keeps for |key| (its history; deletions left
 * out), oldest first, each as a 4-byte big-endian length and the bytes;
 * SR_ERR_NOTFOUND when there is none. The results bucket keeps 16. */
int sr_nats_kv_history(sr_nats *n, int bucket, const char *key, sr_nats_done done,
                       void *arg) SR_WARN_UNUSED;

/* Acknowledges a work message (it leaves the work queue) or refuses it for
 * now (redelivered later); frees |m|. */
void sr_nats_ack(sr_nats *n, sr_nats_msg *m);
void sr_nats_nak(sr_nats *n, sr_nats_msg *m);
/* Acknowledges and drops a message that can never be used (malformed,
 * untrusted): it is not redelivered. */
void sr_nats_term(sr_nats *n, sr_nats_msg *m);

#endif /* SR_GATEWAY_CLUSTER_H */
