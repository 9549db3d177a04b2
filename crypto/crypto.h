/*
 * skyroute crypto: Ed25519 keys and key files, a ring of trusted public keys,
 * one codec for signed msgpack records, the signed envelope of DESIGN section
 * 5 built on it, and a replay guard.
 *
 * Pure library: no sockets, no clock (time is a parameter). Key-file functions
 * are the only ones that touch the file system.
 */
#ifndef SR_CRYPTO_H
#define SR_CRYPTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/common.h"

#define SR_PUBLICKEYBYTES 32 /* crypto_sign_PUBLICKEYBYTES */
#define SR_SECRETKEYBYTES 64 /* crypto_sign_SECRETKEYBYTES */
#define SR_SIGBYTES 64       /* crypto_sign_BYTES */
#define SR_KEYIDBYTES 8      /* first 8 bytes of BLAKE2b-256(public key) */
#define SR_ENV_IDBYTES 16    /* workload id */
#define SR_ENV_STRMAX 64     /* src, dst, handler: at most 63 bytes */
#define SR_ENV_ERRMAX 256    /* error message: at most 255 bytes */
/* Domain-separation prefix signed before the body: "skyroute/v1\0" (12 bytes). */
#define SR_ENV_SIGCTX "skyroute/v1"
#define SR_ENV_SIGCTX_LEN 12

/* Calls sodium_init(). Safe to call more than once. 0 or SR_ERR_UNAVAILABLE.
 * Call it once at start-up, before any other function here. */
int sr_crypto_init(void) SR_WARN_UNUSED;

/* Writes a one-line reason (printf-style) into |why| when |why| is non-NULL
 * and |whylen| > 0, and returns |code|: how every function here that takes a
 * |why| or |err| buffer fills it, and how a record decoder (below) can. */
int sr_whyf(char *why, size_t whylen, int code, const char *fmt, ...) SR_PRINTF(4, 5);

/* ---- keys ---------------------------------------------------------------- */

typedef struct sr_key sr_key; /* an Ed25519 key pair; secret wiped on free */

/* Generates a fresh key pair. 0 or SR_ERR_NOMEM. */
int sr_key_generate(sr_key **out) SR_WARN_UNUSED;
/* Builds a key pair from a 32-byte seed (RFC 8032 "secret key"). */
int sr_key_from_seed(sr_key **out, const uint8_t seed[32]) SR_WARN_UNUSED;
void sr_key_free(sr_key *key); /* NULL is a no-op */

const uint8_t *sr_key_public(const sr_key *key); /* SR_PUBLICKEYBYTES */
const uint8_t *sr_key_id(const sr_key *key);     /* SR_KEYIDBYTES */

/* Detached Ed25519 signature of msg. */
void sr_key_sign(const sr_key *key, uint8_t sig[SR_SIGBYTES], const uint8_t *msg, size_t len);

/* Writes PREFIX.key (mode 0600, created exclusively: an existing file is
 * SR_ERR_EXISTS) and PREFIX.pub (one line "ed25519:<base64 of 32 bytes>\n",
 * also created exclusively; if it cannot be written, PREFIX.key is removed).
 * The secret file is one line "ed25519-secret:<base64 of the 32-byte seed>\n"
 * (standard base64 with padding; the seed is RFC 8032's secret key).
 * Returns 0, SR_ERR_EXISTS, SR_ERR_IO or SR_ERR_INVAL (prefix too long). */
int sr_key_save(const sr_key *key, const char *prefix) SR_WARN_UNUSED;

/* Loads a secret key file written by sr_key_save(). Refuses a file with any
 * group or other permission bit (mode & 077; SR_ERR_KEY, with a message naming
 * the mode), a non-regular file, and malformed content (SR_ERR_KEY). Surrounding
 * whitespace is allowed. Returns 0, SR_ERR_IO (cannot open/read; errno text in
 * |err|), SR_ERR_KEY or SR_ERR_NOMEM. On failure |*out| is untouched and, if
 * |err| is non-NULL, a one-line reason naming the path is written there. */
int sr_key_load(sr_key **out, const char *path, char *err, size_t errlen) SR_WARN_UNUSED;

/* Parses "ed25519:<base64>" (surrounding whitespace allowed) into |pk|.
 * Also refuses points that are not valid Ed25519 public keys (small order,
 * non-canonical, outside the main subgroup). 0 or SR_ERR_KEY. */
int sr_pubkey_parse(uint8_t pk[SR_PUBLICKEYBYTES], const char *text, size_t len) SR_WARN_UNUSED;
/* Reads a .pub file and parses it. 0, SR_ERR_IO or SR_ERR_KEY. */
int sr_pubkey_load(uint8_t pk[SR_PUBLICKEYBYTES], const char *path, char *err,
                   size_t errlen) SR_WARN_UNUSED;
/* Formats "ed25519:<base64>" (no newline) into out (at least 64 bytes;
 * a shorter buffer gets ""). */
void sr_pubkey_format(char *out, size_t outlen, const uint8_t pk[SR_PUBLICKEYBYTES]);
/* id = first 8 bytes of BLAKE2b-256(pk). */
void sr_pubkey_id(uint8_t id[SR_KEYIDBYTES], const uint8_t pk[SR_PUBLICKEYBYTES]);

/* Verifies a detached signature. 0 or SR_ERR_ENV_BADSIG. */
int sr_verify(const uint8_t pk[SR_PUBLICKEYBYTES], const uint8_t sig[SR_SIGBYTES],
              const uint8_t *msg, size_t len) SR_WARN_UNUSED;

/* Standard base64 (with padding) helpers over libsodium's codec.
 * sr_b64_encode: writes a NUL-terminated string, returns its length, or
 * SR_ERR_INVAL if |outlen| is too small (nothing written).
 * sr_b64_decode: 0 or SR_ERR_PARSE (bad characters or padding, non-zero
 * trailing bits, more than |outmax| bytes); *outlen set on success. */
int sr_b64_encode(char *out, size_t outlen, const uint8_t *in, size_t inlen);
int sr_b64_decode(uint8_t *out, size_t outmax, size_t *outlen, const char *in,
                  size_t inlen) SR_WARN_UNUSED;

/* ---- trusted key ring ----------------------------------------------------- */

typedef struct sr_keyring sr_keyring;

int sr_keyring_new(sr_keyring **out) SR_WARN_UNUSED;
void sr_keyring_free(sr_keyring *ring);
/* Adds |pk| under a human name (copied; e.g. "alpha" or an operator name;
 * NULL is ""). Adding the same key twice (or a key whose 8-byte id is already
 * present) is SR_ERR_EXISTS. 0, SR_ERR_INVAL, SR_ERR_EXISTS, SR_ERR_NOMEM. */
int sr_keyring_add(sr_keyring *ring, const uint8_t pk[SR_PUBLICKEYBYTES], const char *name);
/* Finds by key id. Returns the public key (and its name via |name| if non-NULL)
 * or NULL. The pointers stay valid until the ring is freed. */
const uint8_t *sr_keyring_find(const sr_keyring *ring, const uint8_t id[SR_KEYIDBYTES],
                               const char **name);
size_t sr_keyring_count(const sr_keyring *ring);

/* ---- signed records: one codec for every signed msgpack format -------------
 *
 * SR1 and SR2 envelopes (below) and the cluster's SRC1 records (gateway
 * cluster.h) are one shape, told apart by their magic:
 *
 *     outer = [str magic, bin body, signer, bin(64) sig, extra...]
 *     sig   = Ed25519(context || body)          the context signed with its NUL
 *
 * The signer is either a key id, bin(8) (the first 8 bytes of BLAKE2b-256 of
 * the public key), or a name, a str of 1..63 bytes with no NUL, as the format
 * says. Each format signs under its own context ("skyroute/v1",
 * "skyroute/cluster/v1"), so a signature of one never verifies as another's.
 * A format may add elements after the signature and authenticate the body
 * through them instead (SR2: a leaf index and a Merkle path, the signature
 * over the root they lead to).
 *
 * Opening parses the outer array over [data, data + len), checks every
 * declared length against the limit and against the bytes left, looks up the
 * signer and verifies the signature, all BEFORE any byte of the body is
 * decoded; only then is the body handed to the caller's decoder. Any encoding
 * of the outer array's headers is accepted (fixarray or array16, bin8 or
 * bin32, ...).
 */
typedef enum {
    SR_SIGNER_KEYID = 1, /* bin(8): a key id */
    SR_SIGNER_NAME = 2,  /* str of 1..63 bytes: a name, e.g. a station's */
} sr_signer_form;

#define SR_RECORD_MAGICMAX 31 /* bytes of a magic at most */
#define SR_SIGNER_NAMEMAX 64  /* a name signer's bytes (at most 63) and a NUL */

struct sr_record;

struct sr_record_format {
    const char *magic;          /* element 1, 1..SR_RECORD_MAGICMAX bytes: "SR1", "SRC1" */
    const char *context;        /* signed, with its NUL, before the body: "skyroute/v1" */
    sr_signer_form signer_form; /* element 3 */
    const char *noun;           /* what messages call a record: "envelope", "record" */
    const char *signer_noun;    /* and its signer: "signer", "station" */
    /*
     * Optional, for a format authenticated otherwise than by a signature over
     * context || body (SR2). |extra| elements follow the signature, named in
     * messages by |extra_names|. The opener reads them bounded like the rest
     * and hands them, raw (rec->extra), to |check|, which judges their
     * structure before the signer is looked up (0 or SR_ERR_ENV_FORMAT), and
     * then calls |verify| instead of checking the signature over context ||
     * body (0, SR_ERR_ENV_BADSIG, or SR_ERR_NOMEM). Both fill |why| when they
     * refuse. sr_record_seal() refuses such a format: its sealer uses the
     * codec's framing with its own signature.
     */
    unsigned extra;
    const char *const *extra_names;
    int (*check)(void *arg, const struct sr_record *rec, char *why, size_t whylen);
    int (*verify)(void *arg, const struct sr_record *rec, char *why, size_t whylen);
};

/* A record as the opener found it. Every pointer points into the input (or,
 * |format| and |signer_name|, to what the caller gave) and is valid as long
 * as that is. */
struct sr_record {
    const struct sr_record_format *format; /* the accepted format it matched */
    const uint8_t *body;
    size_t body_len;
    const uint8_t *sig;   /* SR_SIGBYTES */
    const uint8_t *extra; /* the format's extra elements, as they were encoded */
    size_t extra_len;
    uint8_t keyid[SR_KEYIDBYTES];   /* SR_SIGNER_KEYID: the key id */
    char signer[SR_SIGNER_NAMEMAX]; /* the name, or the key id in hex (NUL-terminated) */
    const uint8_t *pk;              /* SR_PUBLICKEYBYTES: the key the lookup gave */
    const char *signer_name;        /* the name the lookup gave, or NULL */
};

/* The public key trusted for a signer, or NULL if there is none. |signer| is
 * the 8-byte key id, or the name (NUL-terminated, |len| bytes before the
 * NUL). |*name| (NULL on entry) may be set to a name for messages and for
 * rec->signer_name. The key and the name must outlive the opened record. */
typedef const uint8_t *(*sr_record_lookup)(void *arg, const uint8_t *signer, size_t len,
                                           const char **name);

/* Decodes a verified body (rec->body, rec->body_len): 0 or an SR_ERR_* code,
 * with a reason in |why| (sr_whyf()). */
typedef int (*sr_record_decode)(void *arg, const struct sr_record *rec, char *why, size_t whylen);

struct sr_record_opener {
    const struct sr_record_format *formats; /* those accepted, told apart by element count */
    size_t nformats;                        /* and then by magic */
    size_t max_len;                         /* 0: 64 MiB; a longer input or a declared length
                                               above it is SR_ERR_ENV_OVERSIZE */
    sr_record_lookup lookup;                /* required */
    sr_record_decode decode;                /* optional: then the opener only verifies */
    void *arg;                              /* handed to lookup, decode and the formats' hooks */
};

/*
 * Opens the record at [data, data + len) and fills |rec|. The opener checks,
 * in this order (the first failure is returned, with a one-line reason in
 * |why| if non-NULL):
 *   SR_ERR_INVAL            NULL rec/op/formats/lookup, no format, or NULL
 *                           data with len > 0
 *   SR_ERR_ENV_OVERSIZE     len > max_len, or a declared length > max_len
 *   SR_ERR_ENV_TRUNCATED    input ends inside a value, or a declared length
 *                           exceeds the bytes left
 *   SR_ERR_ENV_FORMAT       not an array of an accepted format's length, an
 *                           element of the wrong type or size (magic: str;
 *                           body: bin; signer: bin(8), or str of 1..63 bytes
 *                           without NUL; signature: bin(64)), the invalid
 *                           byte 0xc1, or the format's check refused
 *   SR_ERR_ENV_VERSION      the magic is not that of the format with as many
 *                           elements
 *   SR_ERR_ENV_TRAILING     bytes after the outer array
 *   SR_ERR_ENV_UNTRUSTED    the lookup has no key for the signer
 *   SR_ERR_NOMEM            no memory for the verification copy (context ||
 *                           body is copied once; past 4 KiB, into malloc'd
 *                           memory)
 *   SR_ERR_ENV_BADSIG       the signature does not verify (or the format's
 *                           verify said so)
 *   --- the body is handed to op->decode only past this point ---
 *   whatever op->decode returns.
 * |rec| is unspecified on failure. Nothing else is allocated; nothing is kept.
 */
int sr_record_open(struct sr_record *rec, const struct sr_record_opener *op, const uint8_t *data,
                   size_t len, char *why, size_t whylen) SR_WARN_UNUSED;

struct msgpack_packer; /* msgpack-c's packer (msgpack.h) */

/* Appends the body of a record to |out|, directly (sr_buf_append()) or
 * through |pk|, a msgpack-c packer that appends to |out| and whose failures
 * the codec notes itself. Returns 0 or an SR_ERR_* code. */
typedef int (*sr_record_pack)(const void *arg, sr_buf *out, struct msgpack_packer *pk);

/*
 * Seals a record and appends it to |out| (not reset first): appends the
 * format's context, lets |pack| append the body right after it, signs context
 * || body with |key| and writes the outer array's header in place of the
 * context and the signer and signature after the body. When the context is
 * exactly as long as the widest header (array16, the magic, bin32), the
 * header is that and takes the context's place: the body is written once and
 * never moved (SR1). Otherwise the header is the shortest encoding and the
 * body moves up to it (one memmove). |out| is sized once from |body_hint|,
 * the bytes the body takes at most (0: no estimate); with room, nothing is
 * allocated.
 * |signer_name|: the name (1..63 bytes) for a SR_SIGNER_NAME format; ignored
 * for SR_SIGNER_KEYID (the key's id is written).
 * Returns 0, SR_ERR_INVAL (NULL out/fmt/key/pack, a format with extra
 * elements, a missing or wrong-sized name), SR_ERR_TOOBIG (|out|'s ceiling,
 * or a body of 4 GiB or more), SR_ERR_NOMEM, or what |pack| returned; on
 * failure |out|'s length is restored.
 */
int sr_record_seal(sr_buf *out, const struct sr_record_format *fmt, const sr_key *key,
                   const char *signer_name, size_t body_hint, sr_record_pack pack,
                   const void *arg) SR_WARN_UNUSED;

/*
 * True if [p, p + len) is exactly one msgpack value whose every declared
 * length and element count fits in the bytes present, nested at most 32
 * deep. A decoder that allocates for a container's declared count before it
 * reads the elements (msgpack-c's unpacker) allocates in proportion to |len|
 * for such input, never for a hostile count: check a verified body with this
 * before handing it to one.
 */
bool sr_msgpack_bounded(const uint8_t *p, size_t len);

/* ---- envelope (DESIGN section 5) ------------------------------------------ */

typedef enum {
    SR_KIND_WORKLOAD = 1,
    SR_KIND_RESULT = 2,
    SR_KIND_SCHEDULE = 3,
} sr_kind;

/* Flags for the optional fields of struct sr_envelope. */
#define SR_ENV_HAS_WORK 0x01u
#define SR_ENV_HAS_RESULT_BYTES 0x02u
#define SR_ENV_HAS_STATUS 0x04u
#define SR_ENV_HAS_ERROR 0x08u
#define SR_ENV_HAS_T_RECV 0x10u
#define SR_ENV_HAS_T_DONE 0x20u

/*
 * The body of an envelope. Strings are NUL-terminated inside fixed arrays so
 * an opened envelope needs no allocation. |payload| is a borrowed view: for
 * sealing, it points at the caller's bytes; after sr_envelope_open() it points
 * into the caller's input buffer and is valid only as long as that buffer.
 */
struct sr_envelope {
    sr_kind kind;
    uint8_t id[SR_ENV_IDBYTES];
    int64_t iat; /* ms since epoch */
    int64_t exp; /* ms since epoch */
    char src[SR_ENV_STRMAX];
    char dst[SR_ENV_STRMAX];
    char handler[SR_ENV_STRMAX]; /* may be empty for results */
    const uint8_t *payload;
    size_t payload_len;
    unsigned flags; /* SR_ENV_HAS_* */
    double work;    /* hints.work, giga-operations */
    int64_t result_bytes;
    int64_t status;
    char error[SR_ENV_ERRMAX];
    int64_t t_recv, t_done;
    /* Set by sr_envelope_open(): who signed it, and how. */
    uint8_t signer[SR_KEYIDBYTES];
    const char *signer_name; /* name from the key ring; valid while the ring lives */
    int version;             /* 1: "SR1", single signature; 2: "SR2", batched (below) */
    unsigned depth;          /* SR2: its tree's depth (a batch of up to 2^depth); SR1: 0 */
};

/* Fills |id| with 16 random bytes. */
void sr_envelope_new_id(uint8_t id[SR_ENV_IDBYTES]);

/* Seals |env| with |key|: encodes the body map, signs "skyroute/v1\0"||body,
 * and appends the outer array to |out| (not reset first). Optional fields are
 * written only when their SR_ENV_HAS_* flag is set; `handler` only when
 * non-empty; `payload` always. The payload is copied once, straight into
 * |out|; with enough capacity in |out| nothing is allocated. The outer header
 * is always 12 bytes (array16, fixstr "SR1", bin32), written over the signing prefix
 * (crypto/record.c). Returns 0, SR_ERR_INVAL (a string not NUL-terminated within its array, kind
 * unknown, payload NULL with a length, work NaN/negative, result_bytes < 0),
 * SR_ERR_TOOBIG (|out|'s ceiling, or a body over 4 GiB) or SR_ERR_NOMEM; on
 * failure |out|'s length is restored. */
int sr_envelope_seal(sr_buf *out, const sr_key *key, const struct sr_envelope *env) SR_WARN_UNUSED;

/* Seals an already-encoded |body| as is (it is not checked): for tools, tests
 * and fuzzing. Same returns as sr_envelope_seal() but never SR_ERR_INVAL for
 * the body's content. */
int sr_envelope_seal_raw(sr_buf *out, const sr_key *key, const uint8_t *body,
                         size_t body_len) SR_WARN_UNUSED;

typedef struct sr_rootcache sr_rootcache; /* see "batched envelopes" below */

struct sr_open_opts {
    const sr_keyring *trust; /* required */
    const char *self_id;     /* if non-NULL, dst must equal it */
    int64_t now_ms;          /* exp <= now_ms is SR_ERR_ENV_EXPIRED */
    size_t max_len;          /* 0: default 64 MiB; a longer input or a declared
                                length above it is SR_ERR_ENV_OVERSIZE */
    unsigned kinds;          /* bitmask of (1u << kind) accepted; 0 = any */
    sr_rootcache *roots;     /* optional: remembers verified batch roots (SR2) */
};

/*
 * Opens an envelope: checks the outer structure, that the signer is trusted and
 * that the signature verifies, all BEFORE decoding the body; then decodes the
 * body and checks version, kind, expiry and address. Unknown body keys are
 * ignored. Returns 0 and fills |env| (payload borrowed from |data|), or one
 * distinct SR_ERR_ENV_* code per failure. |why|, if non-NULL, receives a
 * one-line detail (e.g. which field is wrong). |env| is unspecified on failure.
 *
 * Opens SR1 and SR2 (batched, see below) envelopes alike.
 * Codes (structure first, then trust, then content):
 *   SR_ERR_INVAL            NULL env/opts/trust, or NULL data with len > 0
 *   SR_ERR_ENV_OVERSIZE     len > max_len, or a declared length > max_len
 *   SR_ERR_ENV_TRUNCATED    input ends inside a value / a declared length
 *                           exceeds the bytes left
 *   SR_ERR_ENV_FORMAT       not a 4-array of (str, bin, bin(8), bin(64)), nor a
 *                           6-array of those plus (uint index, bin path) with
 *                           a path of whole 32-byte hashes, at most
 *                           SR_ENV_PATH_MAX of them, and index < 2^depth
 *   SR_ERR_ENV_VERSION      magic is not "SR1" (4 elements) or "SR2" (6)
 *   SR_ERR_ENV_TRAILING     bytes after the outer array
 *   SR_ERR_ENV_UNTRUSTED    signer id not in opts->trust
 *   SR_ERR_NOMEM            no memory for the verification copy (bodies over
 *                           4 KiB are copied once to verify)
 *   SR_ERR_ENV_BADSIG       signature does not verify (SR2: over the root the
 *                           body and its path lead to)
 *   --- the body is decoded only past this point ---
 *   SR_ERR_ENV_VERSION      v is an integer other than 1
 *   SR_ERR_ENV_BODY         not a map, truncated inside, a field of the wrong
 *                           type, too long for its array or containing NUL,
 *                           duplicate known key, work NaN/negative/infinite,
 *                           result_bytes < 0, required field missing (v, kind,
 *                           id, iat, exp, src, dst), bytes after the map,
 *                           unknown values nested deeper than 32
 *   SR_ERR_ENV_KIND         kind string unknown, or not in opts->kinds
 *   SR_ERR_ENV_MISADDRESSED dst != opts->self_id
 *   SR_ERR_ENV_EXPIRED      exp <= opts->now_ms
 * Replays are not detected here: feed env->id to sr_replay_check().
 */
int sr_envelope_open(struct sr_envelope *env, const uint8_t *data, size_t len,
                     const struct sr_open_opts *opts, char *why, size_t whylen) SR_WARN_UNUSED;

/* ---- batched envelopes: one signature over a Merkle root ("SR2") -------------
 *
 * Under load a sender may seal the envelopes of one loop turn together: one
 * Ed25519 signature over the root of a Merkle tree whose leaves are the
 * bodies, and each envelope carries its leaf index and the sibling hashes up
 * to the root, so it still opens on its own, anywhere:
 *
 *     outer = ["SR2", bin body, bin(8) signer, bin(64) sig, uint index, bin path]
 *     leaf  = SHA-256(0x00 || body)
 *     node  = SHA-256(0x01 || left || right)
 *     empty = SHA-256(0x02)                (pads the batch to a power of two)
 *     sig   = Ed25519("skyroute/v2\0" || depth || root)   depth = path bytes / 32
 *
 * The prefixes keep leaves, inner nodes and padding apart (no second
 * preimages across levels) and a root signature apart from any SR1 body
 * signature. The body is the same map as SR1's and is decoded, checked for
 * expiry, address and kind, and fed to the replay guard exactly as before;
 * only how its bytes are authenticated differs. A receiver verifies the path
 * to the root and the root's signature; with opts->roots it verifies each
 * (signer, root, signature) once and then only hashes. SR1 envelopes open as
 * they always did; a batch of one is sealed as SR1, or, with a payload of
 * SR_ENV_PREHASH_MIN bytes or more, as SR2 with a tree of one leaf (below).
 * SHA-256 (OpenSSL's libcrypto, which uses the CPU's SHA instructions) is the tree's hash, as in
 * RFC 6962's Merkle trees: hashing every body twice per hop is most of what
 * a batched envelope costs, and there it is 2.7x faster than BLAKE2b.
 */
#define SR_ENV_BATCH_MAX 1024 /* envelopes per batch (tree depth <= 10) */
/* Envelopes per signature at most while few requests are in flight, at the gateway
 * ([gateway] envelope_batch) and at the node (--envelope-batch): the floor of "auto",
 * below. Smaller batches cost more signatures but let the gateway, the node and the
 * clients work at the same time instead of in turns: at 100 streams of 1 KiB, 32 gave
 * 35,500 requests/s against 29,700 with 256 (tests/bench, README). */
#define SR_ENV_BATCH_DEFAULT 32
/* The most envelopes per signature "auto" (the default at both ends) goes to. */
#define SR_ENV_BATCH_AUTO_MAX 256
#define SR_ENV_PATH_MAX 16 /* deepest path an opener accepts */

/*
 * A single envelope is signed over its body's SHA-256 rather than over the
 * body once its payload is this long: as SR2 with a tree of one leaf (depth 0,
 * index 0, empty path), still one signature per envelope. Ed25519 hashes what
 * it signs with SHA-512, which has no instructions of its own on x86: twice
 * when signing and once when verifying, 221 + 144 us for a 64 KiB body on the
 * benchmark machine, against 38 us for SHA-256 plus 14.5 + 41.5 us for
 * signing and verifying the 45-byte root message. At 1 KiB both ways cost the
 * same, so small envelopes stay SR1.
 */
#define SR_ENV_PREHASH_MIN 4096

/*
 * Seals |n| envelopes with one signature: envs[i] is appended to outs[i]
 * (each an initialised sr_buf, not reset first). n == 1 is
 * sr_envelope_seal_one(). Returns 0, SR_ERR_INVAL (n == 0 or over
 * SR_ENV_BATCH_MAX, or an envelope sr_envelope_seal() would refuse),
 * SR_ERR_TOOBIG or SR_ERR_NOMEM; on failure every outs[i] keeps its length.
 */
int sr_envelope_seal_batch(sr_buf *outs, const sr_key *key, const struct sr_envelope *envs,
                           size_t n) SR_WARN_UNUSED;

/*
 * Envelopes per signature at most when the batch size is left to the load
 * ("auto", the default of [gateway] envelope_batch and of skyroute-node
 * --envelope-batch): SR_ENV_BATCH_DEFAULT, or more when the load asks for it,
 * up to SR_ENV_BATCH_AUTO_MAX:
 *  - an eighth of |inflight|, the requests the sender has in flight: with many
 *    in flight, eight batches still overlap;
 *  - 2^|answered_depth| for a sender of answers (a node's results), where
 *    |answered_depth| is the deepest tree among the SR2 envelopes they answer
 *    (0: none): answers go back in batches as large as the requests came in.
 * Small batches keep the sender, the receiver and the clients working at the
 * same time when few requests are in flight; larger ones pay a signature and
 * its verification over more envelopes (README: 1,000 streams of 1 KiB).
 */
size_t sr_envelope_batch_auto(size_t inflight, unsigned answered_depth);

/* Seals one envelope under its own signature: SR1 (sr_envelope_seal()), or
 * with a payload of SR_ENV_PREHASH_MIN bytes or more an SR2 tree of one leaf.
 * Same returns as sr_envelope_seal(). */
int sr_envelope_seal_one(sr_buf *out, const sr_key *key,
                         const struct sr_envelope *env) SR_WARN_UNUSED;

/* A small cache of verified roots (the last 64 (public key, depth, root,
 * signature) that verified). Not thread-safe: one per thread or loop.
 * 0 or SR_ERR_NOMEM. */
int sr_rootcache_new(sr_rootcache **out) SR_WARN_UNUSED;
void sr_rootcache_free(sr_rootcache *c); /* NULL is a no-op */
/* Verified-signature checks the cache saved so far (for metrics and tests). */
uint64_t sr_rootcache_hits(const sr_rootcache *c);
/* Inner-node hashes saved so far: an envelope whose climb to the root meets
 * that of the last one opened under the same signature stops there. */
uint64_t sr_rootcache_hashes_saved(const sr_rootcache *c);

/*
 * Batch messages: a sender with several envelopes for one receiver sends them
 * in one HTTP request (POST /v1/batch) instead of one request each. The
 * message is a sequence of msgpack bin values, one envelope each, and nothing
 * else. The receiver answers each envelope with an item, a msgpack array
 * [index, status, content-type, body]: the envelope's position in the message
 * (from 0), and the status, content type and body it would have answered that
 * envelope with on its own (POST /v1/exec). Items come in any order, each as
 * soon as it is ready, in one response body. The framing itself is not
 * signed: every envelope in it, and every result, still is, on its own.
 */
#define SR_BATCH_MSG_MAX 256 /* envelopes in one batch message at most */
struct sr_batch_env {
    const uint8_t *ptr; /* inside the message */
    size_t len;
};
struct sr_batch_item {
    uint32_t index;
    int status;        /* 100..999 */
    const char *ctype; /* at most 31 bytes */
    const uint8_t *body;
    size_t len;
    char ctype_buf[32]; /* sr_batch_next_item() copies the content type here */
};
/* Appends one envelope to a batch message. 0, SR_ERR_TOOBIG or SR_ERR_NOMEM
 * (|b| then keeps its length). */
int sr_batch_append_env(sr_buf *b, const void *env, size_t len) SR_WARN_UNUSED;
/* Splits a batch message into its envelopes (pointing into |msg|): 0 with
 * |*n| set (at least one), SR_ERR_PARSE (a value that is not a bin, or cut
 * short) or SR_ERR_TOOBIG (more than |max|), with |why| naming the offset. */
int sr_batch_split(const uint8_t *msg, size_t len, struct sr_batch_env *envs, size_t max, size_t *n,
                   char *why, size_t whylen) SR_WARN_UNUSED;
/* An answer item's bytes before its body, at most SR_BATCH_HEAD_MAX: their
 * length, or 0 if the status or content type is out of range. */
#define SR_BATCH_HEAD_MAX 48
size_t sr_batch_item_head(uint8_t out[SR_BATCH_HEAD_MAX], const struct sr_batch_item *it);
/* Appends one answer item. 0, SR_ERR_INVAL (status or content type out of
 * range) or SR_ERR_NOMEM (|b| then keeps its length). */
int sr_batch_append_item(sr_buf *b, const struct sr_batch_item *it) SR_WARN_UNUSED;
/* Reads the item at the front of [p, p + len), as the answer streams in: 0
 * with |*used| its length, or 0 with |*used| == 0 if it is not all there
 * yet; SR_ERR_PARSE if it cannot be an item (|why| says so). |it|'s body
 * points into |p|. */
int sr_batch_next_item(const uint8_t *p, size_t len, struct sr_batch_item *it, size_t *used,
                       char *why, size_t whylen) SR_WARN_UNUSED;

/* Name of a kind ("workload", ...) or "?". */
const char *sr_kind_name(sr_kind kind);

/* ---- replay guard ----------------------------------------------------------- */

/*
 * Remembers envelope ids until their exp, with an optional stored result per
 * id, so a receiver can answer a repeated id without running it twice.
 * Bounded: at most |capacity| live ids.
 */
typedef struct sr_replay sr_replay;

/* A guard for at most |capacity| live ids. It starts with room for 4,096
 * (or |capacity| if fewer) and doubles whenever live ids fill it, up to
 * |capacity|: its memory (sr_replay_bytes()) follows the ids it has had to
 * hold, and pages are only touched as it grows. Nothing else is allocated
 * later except the result log, once, at the first stored result. Ids are
 * hashed with SipHash under a random per-guard key. 0, SR_ERR_INVAL
 * (capacity 0 or over 2^30), SR_ERR_UNAVAILABLE (libsodium) or SR_ERR_NOMEM. */
int sr_replay_new(sr_replay **out, size_t capacity) SR_WARN_UNUSED;
/* The largest capacity whose tables fit in |budget_bytes| once grown to it
 * (about 120 bytes per id; the result log is apart): 0 if not even one id. */
size_t sr_replay_capacity_for(size_t budget_bytes);
/* Ids the guard has room for now (it grows up to its capacity) and the
 * bytes its tables take at that size. */
size_t sr_replay_capacity(const sr_replay *g);
size_t sr_replay_bytes(const sr_replay *g);
/* The earliest exp (ms) among the live ids, 0 if there is none: when the
 * guard is full (SR_ERR_FULL), the moment room comes back. */
int64_t sr_replay_next_expiry(const sr_replay *g);
void sr_replay_free(sr_replay *g);

/*
 * Records |id| (alive until |exp_ms|). Expired ids are dropped first.
 * Returns 0 if the id is new (now recorded as pending), SR_ERR_ENV_REPLAY if it
 * is already known, or SR_ERR_FULL if the live ids fill the capacity (or
 * growing to make room ran out of memory).
 * On SR_ERR_ENV_REPLAY, |*result| and |*result_len| give the stored result (if
 * sr_replay_store() was called for it) or NULL/0 while it is still pending;
 * the pointer stays valid until the next call that modifies the guard.
 */
int sr_replay_check(sr_replay *g, const uint8_t id[SR_ENV_IDBYTES], int64_t exp_ms, int64_t now_ms,
                    const uint8_t **result, size_t *result_len) SR_WARN_UNUSED;
/* Stores a copy of the result for a recorded id (replacing any earlier one)
 * in the guard's result log, a ring of the byte limit. When it does not fit,
 * the oldest stored results are dropped first (their ids stay recorded: see
 * sr_replay_dropped()).
 * 0, SR_ERR_NOTFOUND, SR_ERR_NOMEM, or SR_ERR_FULL if this one result is over
 * the limit by itself (it then counts as dropped: sr_replay_dropped()). */
int sr_replay_store(sr_replay *g, const uint8_t id[SR_ENV_IDBYTES], const uint8_t *result,
                    size_t len);
/* True if |id| is recorded and its stored result was dropped to make room:
 * a replay of it is refused without the first answer. */
bool sr_replay_dropped(sr_replay *g, const uint8_t id[SR_ENV_IDBYTES]);
/* Results dropped to make room since the guard was made. */
uint64_t sr_replay_results_dropped(const sr_replay *g);
/* Forgets an id (e.g. its execution failed before any effect and may be retried). */
void sr_replay_forget(sr_replay *g, const uint8_t id[SR_ENV_IDBYTES]);
size_t sr_replay_count(const sr_replay *g);
/* Sizes the result log, which caps the bytes of stored results (default
 * 256 MiB); meant for before the first store (results held are dropped). */
void sr_replay_set_result_limit(sr_replay *g, size_t max_bytes);
/* Makes the result log now and faults all of it in, so that storing a
 * result never touches memory for the first time. On virtual machines whose
 * memory is backed by the host on first touch, that costs about 2 us per KiB
 * (measured here: half of a node's CPU per 64 KiB request until the log had
 * filled); done once at start, it is a fixed cost and a fixed footprint.
 * 0, SR_ERR_INVAL or SR_ERR_NOMEM. */
int sr_replay_reserve(sr_replay *g) SR_WARN_UNUSED;

/* ---- the skyroute-signature header (DESIGN section 7) ------------------------ */

/*
 * Operator uploads carry
 *
 *   skyroute-signature: v2 key=KEYID ts=UNIX nonce=NONCE station=ID sig=BASE64
 *
 * fields separated by spaces, in any order, each exactly once: KEYID the
 * lowercase (either case read) hex of the signer's 8-byte key id; UNIX the
 * signing time in seconds (1-12 digits, no leading zero); NONCE 16-64
 * characters of [A-Za-z0-9_-], never reused by one key; ID the [gateway] id
 * of the station the request is meant for; BASE64 the standard padded base64
 * of an Ed25519 signature over this canonical string (each line ends in one
 * LF, the last included; no other bytes):
 *
 *   skyroute-signature v2
 *   METHOD            as sent: "PUT"
 *   PATH              as sent, without the query; only [A-Za-z0-9._~-] and '/'
 *   QUERY             canonical (below); empty line when there is none
 *   CONTENT-TYPE      the header as sent, outer whitespace trimmed; or empty
 *   ID                as in station=
 *   UNIX              as in ts=
 *   NONCE             as in nonce=
 *   SHA256            lowercase hex of the SHA-256 of the exact body bytes
 *
 * QUERY: the raw query split on '&' (empty pieces dropped), each piece
 * NAME=VALUE (no '=': an empty value); NAME only [A-Za-z0-9._~-] and each
 * NAME at most once; VALUE decoded ('+' a space, %XX a byte, %00 and a '%'
 * without two hex digits refused) and re-encoded (unreserved characters as
 * they are, every other byte %XX in capitals); pieces sorted by NAME
 * (bytewise) and joined as NAME=VALUE with '&'. "?b=x+y&a" gives "a=&b=x%20y".
 *
 * A version 1 header (KEYID:BASE64SIG over the body alone) is refused with
 * SR_ERR_ENV_VERSION and a message that says to upgrade the CLI.
 */
#define SR_SIGHDR_MAX 512     /* a header value and its NUL */
#define SR_SIGHDR_NONCEMAX 65 /* a nonce and its NUL */

/* What a v2 signature covers besides time and nonce. */
struct sr_sigreq {
    const char *method;       /* "PUT" */
    const char *target;       /* path and query as sent: "/v1/passes?format=ion" */
    const char *content_type; /* NULL: none */
    const char *station;      /* the station the request is meant for (the receiver's id) */
    const uint8_t *body;
    size_t len;
};

/* A parsed header. */
typedef struct sr_sighdr {
    uint8_t keyid[SR_KEYIDBYTES];
    int64_t ts; /* UNIX seconds */
    char nonce[SR_SIGHDR_NONCEMAX];
    char station[SR_SIGNER_NAMEMAX];
    uint8_t sig[SR_SIGBYTES];
} sr_sighdr;

/* Parses header value |hdr| (|len| bytes, surrounding whitespace allowed).
 * 0, SR_ERR_PARSE (naming the field) or SR_ERR_ENV_VERSION (a v1 header, or
 * "vN" for another N). */
int sr_sighdr_parse(sr_sighdr *h, const char *hdr, size_t len, char *why,
                    size_t whylen) SR_WARN_UNUSED;

/* Writes the canonical string of |r| signed at |ts| with |nonce| into |out|
 * (reset first; an unset ceiling becomes 64 KiB). 0, SR_ERR_PARSE (a path,
 * query or content type the format cannot carry, named in |why|),
 * SR_ERR_TOOBIG or SR_ERR_NOMEM. */
int sr_sighdr_canon(sr_buf *out, const struct sr_sigreq *r, int64_t ts, const char *nonce,
                    char *why, size_t whylen) SR_WARN_UNUSED;

/* Signs |r| at |ts| (UNIX seconds) with |nonce| and writes the header value
 * (NUL-terminated) into |out|. Returns its length, or a negative error as
 * sr_sighdr_parse() / sr_sighdr_canon() with |why|. */
int sr_sighdr_sign(char out[SR_SIGHDR_MAX], const sr_key *key, const struct sr_sigreq *r,
                   int64_t ts, const char *nonce, char *why, size_t whylen) SR_WARN_UNUSED;

/* Checks header value |hdr| against request |r| (r->station: this
 * receiver's id). 0 with |*h| filled and, if non-NULL, *signer_name (from the
 * ring); else the error of sr_sighdr_parse() / sr_sighdr_canon(),
 * SR_ERR_ENV_UNTRUSTED, SR_ERR_ENV_BADSIG or SR_ERR_ENV_MISADDRESSED (a good
 * signature for another station). Time and nonce are the caller's to check:
 * this module has no clock and no memory. |why| as for sr_envelope_open(). */
int sr_sighdr_verify(const sr_keyring *ring, const char *hdr, size_t hdrlen,
                     const struct sr_sigreq *r, sr_sighdr *h, const char **signer_name, char *why,
                     size_t whylen) SR_WARN_UNUSED;

#endif /* SR_CRYPTO_H */
