/*
 * crypto's private declarations: what its files share with one another and
 * nothing outside crypto/ may use (the module's API is crypto.h).
 *
 * The files, lowest first (a file calls only files above it in this list):
 *
 *   keys.c      keys, signatures, base64, sr_whyf()
 *   keyring.c   the trusted key ring
 *   mpack.c     the bounded msgpack reader, the sr_buf writer for msgpack-c
 *   record.c    the signed-record codec (sr_record_seal/open)
 *   merkle.c    SR2's Merkle trees and the root cache
 *   envelope.c  the envelope body, SR1 sealing, opening SR1 and SR2
 *   batch.c     sealing SR2 batches; batch messages (POST /v1/batch)
 *   idpool.c    envelope ids
 *   replay.c    the replay guard
 *   sighdr.c    the skyroute-signature header
 */
#ifndef SR_CRYPTO_INT_H
#define SR_CRYPTO_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <msgpack.h>

#include "crypto/crypto.h"

/* ==== mpack.c: a bounded msgpack reader over [p, end) ======================== */

enum sr_mp_type {
    SR_MP_NIL,
    SR_MP_BOOL,
    SR_MP_UINT,
    SR_MP_INT,
    SR_MP_FLOAT,
    SR_MP_STR,
    SR_MP_BIN,
    SR_MP_ARRAY,
    SR_MP_MAP,
    SR_MP_EXT
};

/* "nil", "boolean", "integer", ...: a type's name for messages. */
extern const char *const sr_mp_type_names[];

enum {
    SR_MP_OK = 0,
    SR_MP_TRUNC = -1,   /* input ends inside the value (o->len: declared length, 0 if unknown) */
    SR_MP_INVALID = -2, /* the never-used byte 0xc1 */
    SR_MP_DEEP = -3,    /* nesting deeper than SR_MP_MAXDEPTH */
};

#define SR_MP_MAXDEPTH 32 /* nesting allowed inside a skipped value */

struct sr_mp_obj {
    enum sr_mp_type type;
    uint64_t u;         /* SR_MP_UINT, SR_MP_BOOL */
    int64_t i;          /* SR_MP_INT (always negative) */
    double f;           /* SR_MP_FLOAT */
    uint64_t len;       /* STR, BIN, EXT: bytes; ARRAY, MAP: entries */
    const uint8_t *ptr; /* STR, BIN, EXT: the bytes, inside the input */
};

/*
 * Reads one value's header (and, for str/bin/ext, locates its bytes) at *pp,
 * advancing *pp past what it read. Never reads at or beyond |end|. A declared
 * length is checked against what remains before anything relies on it; an
 * array or map needs at least one byte per element (two per map entry).
 * SR_MP_OK, SR_MP_TRUNC or SR_MP_INVALID; *pp moves only on SR_MP_OK.
 */
int sr_mp_next(const uint8_t **pp, const uint8_t *end, struct sr_mp_obj *o);
/* Skips one value of any type, |depth| levels down already. */
int sr_mp_skip(const uint8_t **pp, const uint8_t *end, unsigned depth);
/* Skips the elements of an array or map whose header |o| was just read (any
 * other type: nothing to skip). SR_MP_DEEP past SR_MP_MAXDEPTH levels. */
int sr_mp_skip_children(const uint8_t **pp, const uint8_t *end, const struct sr_mp_obj *o,
                        unsigned depth);

/* ==== mpack.c: writing ======================================================== */

/* A msgpack-c packer that appends to an sr_buf and keeps the first failure. */
struct sr_mp_sink {
    sr_buf *b;
    int err; /* 0, SR_ERR_TOOBIG or SR_ERR_NOMEM */
};
void sr_mp_sink_init(struct sr_mp_sink *s, msgpack_packer *pk, sr_buf *b);

/* Copies up to 24 bytes of untrusted text for a message, '?' for anything not
 * printable ASCII, "..." after 24. */
void sr_printable(char *dst, size_t dstlen, const uint8_t *s, size_t n);

/* ==== record.c: sealing in steps ================================================
 *
 * sr_record_seal() is these three around one signature over context || body.
 * A format signed otherwise (SR2: one signature over a batch's Merkle root)
 * calls them itself: begin, body, then, once it has the signature, frame.
 */

/* Sizes |out| for a record of |fmt| whose body takes |body_hint| bytes at
 * most and whose signer takes |signer_len| bytes, and appends the context.
 * 0, SR_ERR_TOOBIG or SR_ERR_NOMEM (|out| unchanged). */
int sr_rec_begin(sr_buf *out, const struct sr_record_format *fmt, size_t signer_len,
                 size_t body_hint);
/* Appends the body through |pack|. 0 or the first failure. */
int sr_rec_body(sr_buf *out, sr_record_pack pack, const void *arg);
/* |out| holds, from |start|, the context and then the body. Writes the outer
 * header in place of the context (moving the body only if the header is not
 * as long as the context) and appends signer, |sig| and the |extra_len| bytes
 * of |fmt->extra| elements already encoded. |signer| is the key id or the
 * name (|signer_len| bytes). 0, SR_ERR_TOOBIG (a body of 4 GiB or more, or
 * |out|'s ceiling) or SR_ERR_NOMEM; on failure |out| is not a record. */
int sr_rec_frame(sr_buf *out, size_t start, const struct sr_record_format *fmt,
                 const uint8_t *signer, size_t signer_len, const uint8_t sig[SR_SIGBYTES],
                 const uint8_t *extra, size_t extra_len);

/* ==== merkle.c: SR2's Merkle trees ================================================ */

#define SR_MERKLE_HASHBYTES 32 /* SHA-256 */
#define SR_ENV_SIGCTX2 "skyroute/v2"
#define SR_ROOTMSG_LEN (SR_ENV_SIGCTX_LEN + 1 + SR_MERKLE_HASHBYTES)

int sr_merkle_leaf(uint8_t out[SR_MERKLE_HASHBYTES], const uint8_t *body, size_t len);
int sr_merkle_node(uint8_t out[SR_MERKLE_HASHBYTES], const uint8_t l[SR_MERKLE_HASHBYTES],
                   const uint8_t r[SR_MERKLE_HASHBYTES]);
int sr_merkle_empty(uint8_t out[SR_MERKLE_HASHBYTES]);
/* The signed message: "skyroute/v2\0" || depth || root. */
void sr_merkle_root_msg(uint8_t msg[SR_ROOTMSG_LEN], unsigned depth,
                        const uint8_t root[SR_MERKLE_HASHBYTES]);
/* Recomputes the root from |body| and its path, and checks |sig| by |pk|
 * over it, or finds it in |cache| (may be NULL). 0 or SR_ERR_ENV_BADSIG
 * (SR_ERR_NOMEM if hashing fails). */
int sr_merkle_verify(const uint8_t *pk, sr_rootcache *cache, const uint8_t *body, size_t len,
                     const uint8_t *sig, uint64_t index, const uint8_t *path, unsigned depth);

/* ==== envelope.c: the envelope body ================================================ */

/* SR1 and SR2, in that order. */
extern const struct sr_record_format sr_env_formats[2];

/* 0 or SR_ERR_INVAL: what sr_envelope_seal() refuses. */
int sr_env_check(const struct sr_envelope *env);
/* Bytes the body of |env| takes at most (an estimate that sizes buffers). */
size_t sr_env_body_bound(const struct sr_envelope *env);
/* An sr_record_pack for the body map of the struct sr_envelope at |arg|. */
int sr_env_pack_body(const void *arg, sr_buf *out, msgpack_packer *pk);

/* A body's length minus its payload's, at most (checked before sizing). */
#define SR_ENV_BODY_OVERHEAD 1024

#endif /* SR_CRYPTO_INT_H */
