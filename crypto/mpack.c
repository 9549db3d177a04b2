/*
 * msgpack for the signed formats: the one bounded reader every opener and
 * body decoder here uses, and the sr_buf writer msgpack-c's packer appends
 * through.
 *
 * Why a reader of our own rather than msgpack-c's unpacker: the unpacker
 * builds a tree of objects and allocates, for a container, the count its
 * header declares before it has seen one element (a 6-byte map32 header
 * asks for 64 GiB). This one reads in place, zero-copy, never past |end|,
 * and checks each declared length against the bytes left before anything
 * relies on it.
 */
#include "crypto/crypto_int.h"

#include <string.h>

const char *const sr_mp_type_names[] = {"nil",    "boolean", "integer", "integer", "float",
                                        "string", "bin",     "array",   "map",     "ext"};

static uint64_t load_be(const uint8_t *p, unsigned n)
{
    uint64_t v = 0;
    for (unsigned k = 0; k < n; k++) {
        v = (v << 8) | p[k];
    }
    return v;
}

int sr_mp_next(const uint8_t **pp, const uint8_t *end, struct sr_mp_obj *o)
{
    const uint8_t *p = *pp;
    o->len = 0;
    if (p >= end) {
        return SR_MP_TRUNC;
    }
    uint8_t c = *p++;
    size_t avail = (size_t)(end - p);
    unsigned fw = 0; /* width of the length or value field after c */
    bool has_ext_type = false;

    if (c <= 0x7f) {
        o->type = SR_MP_UINT;
        o->u = c;
    } else if (c <= 0x8f) {
        o->type = SR_MP_MAP;
        o->len = c & 0x0f;
    } else if (c <= 0x9f) {
        o->type = SR_MP_ARRAY;
        o->len = c & 0x0f;
    } else if (c <= 0xbf) {
        o->type = SR_MP_STR;
        o->len = c & 0x1f;
    } else if (c >= 0xe0) {
        o->type = SR_MP_INT;
        o->i = (int8_t)c;
    } else {
        switch (c) {
        case 0xc0:
            o->type = SR_MP_NIL;
            break;
        case 0xc1:
            return SR_MP_INVALID;
        case 0xc2:
        case 0xc3:
            o->type = SR_MP_BOOL;
            o->u = c & 1;
            break;
        case 0xc4:
        case 0xc5:
        case 0xc6:
            o->type = SR_MP_BIN;
            fw = 1u << (c - 0xc4);
            break;
        case 0xc7:
        case 0xc8:
        case 0xc9:
            o->type = SR_MP_EXT;
            fw = 1u << (c - 0xc7);
            has_ext_type = true;
            break;
        case 0xca:
        case 0xcb:
            o->type = SR_MP_FLOAT;
            fw = c == 0xca ? 4 : 8;
            break;
        case 0xcc:
        case 0xcd:
        case 0xce:
        case 0xcf:
            o->type = SR_MP_UINT;
            fw = 1u << (c - 0xcc);
            break;
        case 0xd0:
        case 0xd1:
        case 0xd2:
        case 0xd3:
            o->type = SR_MP_INT;
            fw = 1u << (c - 0xd0);
            break;
        case 0xd4:
        case 0xd5:
        case 0xd6:
        case 0xd7:
        case 0xd8:
            o->type = SR_MP_EXT;
            o->len = 1u << (c - 0xd4);
            has_ext_type = true;
            break;
        case 0xd9:
        case 0xda:
        case 0xdb:
            o->type = SR_MP_STR;
            fw = 1u << (c - 0xd9);
            break;
        case 0xdc:
        case 0xdd:
            o->type = SR_MP_ARRAY;
            fw = c == 0xdc ? 2 : 4;
            break;
        default: /* 0xde, 0xdf */
            o->type = SR_MP_MAP;
            fw = c == 0xde ? 2 : 4;
            break;
        }
    }

    if (fw) {
        if (avail < fw) {
            return SR_MP_TRUNC;
        }
        uint64_t v = load_be(p, fw);
        p += fw;
        avail -= fw;
        switch (o->type) {
        case SR_MP_UINT:
            o->u = v;
            break;
        case SR_MP_INT:
            /* sign-extend the fw-byte two's complement value */
            o->i = fw == 8
                       ? (int64_t)v
                       : (int64_t)(v ^ (1ull << (8 * fw - 1))) - (int64_t)(1ull << (8 * fw - 1));
            if (o->i >= 0) {
                o->type = SR_MP_UINT;
                o->u = (uint64_t)o->i;
            }
            break;
        case SR_MP_FLOAT:
            if (fw == 4) {
                uint32_t w = (uint32_t)v;
                float fl;
                memcpy(&fl, &w, sizeof(fl));
                o->f = fl;
            } else {
                memcpy(&o->f, &v, sizeof(o->f));
            }
            break;
        default:
            o->len = v;
            break;
        }
    }
    if (has_ext_type) {
        if (avail < 1) {
            return SR_MP_TRUNC;
        }
        p++;
        avail--;
    }
    switch (o->type) {
    case SR_MP_STR:
    case SR_MP_BIN:
    case SR_MP_EXT:
        if (o->len > avail) {
            return SR_MP_TRUNC;
        }
        o->ptr = p;
        p += o->len;
        break;
    case SR_MP_ARRAY:
        if (o->len > avail) {
            return SR_MP_TRUNC;
        }
        break;
    case SR_MP_MAP:
        if (o->len > avail / 2) {
            return SR_MP_TRUNC;
        }
        break;
    default:
        break;
    }
    *pp = p;
    return SR_MP_OK;
}

int sr_mp_skip_children(const uint8_t **pp, const uint8_t *end, const struct sr_mp_obj *o,
                        unsigned depth)
{
    if (o->type != SR_MP_ARRAY && o->type != SR_MP_MAP) {
        return SR_MP_OK;
    }
    if (depth >= SR_MP_MAXDEPTH) {
        return SR_MP_DEEP;
    }
    uint64_t n = o->type == SR_MP_MAP ? 2 * o->len : o->len;
    for (uint64_t k = 0; k < n; k++) {
        int rv = sr_mp_skip(pp, end, depth + 1);
        if (rv) {
            return rv;
        }
    }
    return SR_MP_OK;
}

/* Each value consumes at least one byte and the depth is bounded, so this is
 * linear in the input and shallow on the stack. */
int sr_mp_skip(const uint8_t **pp, const uint8_t *end, unsigned depth)
{
    struct sr_mp_obj o;
    int rv = sr_mp_next(pp, end, &o);
    return rv ? rv : sr_mp_skip_children(pp, end, &o, depth);
}

/* Walking the whole value proves every declared element is there: the
 * containers' counts then add up to at most one per byte. */
bool sr_msgpack_bounded(const uint8_t *p, size_t len)
{
    if (!p) {
        return false;
    }
    const uint8_t *q = p, *end = p + len;
    return sr_mp_skip(&q, end, 0) == SR_MP_OK && q == end;
}

/* ---- writing ------------------------------------------------------------------ */

static int sink_write(void *data, const char *buf, size_t len)
{
    struct sr_mp_sink *s = data;
    int rv = sr_buf_append(s->b, buf, len);
    if (rv && !s->err) {
        s->err = rv;
    }
    return rv ? -1 : 0;
}

void sr_mp_sink_init(struct sr_mp_sink *s, msgpack_packer *pk, sr_buf *b)
{
    s->b = b;
    s->err = 0;
    msgpack_packer_init(pk, s, sink_write);
}

void sr_printable(char *dst, size_t dstlen, const uint8_t *s, size_t n)
{
    size_t j = 0;
    for (size_t i = 0; i < n && j + 4 < dstlen; i++) {
        if (i == 24) {
            memcpy(dst + j, "...", 3);
            j += 3;
            break;
        }
        dst[j++] = (s[i] >= 0x20 && s[i] < 0x7f) ? (char)s[i] : '?';
    }
    dst[j] = '\0';
}
