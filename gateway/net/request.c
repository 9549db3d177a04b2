/*
 * The HTTP server's request object as handlers see it: its header block and
 * accessors, and the JSON error body every refusal uses. Nothing here calls
 * the rest of the server.
 */
#include "gateway/net/net_int.h"

#include <string.h>

#include <event2/bufferevent_ssl.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

/* Headers are stored as [u32 name length][name, lowercased]\0[u32 value
 * length][value]\0, so a lookup compares lengths first and skips entries
 * without scanning them (it runs a dozen times per request). */
int sr_req_add_header(sr_req *r, const uint8_t *name, size_t nlen, const uint8_t *value,
                      size_t vlen)
{
    if (r->nhdrs >= SR_MAX_HEADERS) {
        return SR_ERR_TOOBIG;
    }
    if (nlen > UINT32_MAX || vlen > UINT32_MAX) {
        return SR_ERR_TOOBIG;
    }
    int rv = sr_buf_reserve(&r->hdrs, 8 + nlen + vlen + 2);
    if (rv) {
        return rv;
    }
    uint32_t n32 = (uint32_t)nlen, v32 = (uint32_t)vlen;
    memcpy(r->hdrs.data + r->hdrs.len, &n32, 4);
    r->hdrs.len += 4;
    for (size_t i = 0; i < nlen; i++) {
        char ch = (char)name[i];
        r->hdrs.data[r->hdrs.len++] = (uint8_t)(ch >= 'A' && ch <= 'Z' ? ch + 32 : ch);
    }
    r->hdrs.data[r->hdrs.len++] = 0;
    memcpy(r->hdrs.data + r->hdrs.len, &v32, 4);
    r->hdrs.len += 4;
    if (vlen) {
        memcpy(r->hdrs.data + r->hdrs.len, value, vlen);
    }
    r->hdrs.len += vlen;
    r->hdrs.data[r->hdrs.len++] = 0;
    r->nhdrs++;
    return 0;
}

/* |name| in lowercase, as every caller passes it (stored names are). */
const char *sr_req_header(const sr_req *r, const char *name)
{
    if (!r->hdrs.data) {
        return NULL;
    }
    size_t want = strlen(name);
    const uint8_t *p = r->hdrs.data;
    const uint8_t *end = p + r->hdrs.len;
    while (p < end) {
        uint32_t nlen, vlen;
        memcpy(&nlen, p, 4);
        const uint8_t *n = p + 4;
        memcpy(&vlen, n + nlen + 1, 4);
        const uint8_t *v = n + nlen + 1 + 4;
        if (nlen == want && !memcmp(n, name, want)) {
            return (const char *)v;
        }
        p = v + vlen + 1;
    }
    return NULL;
}

const char *sr_req_method(const sr_req *r)
{
    const char *m = sr_req_header(r, ":method");
    return m ? m : "";
}

const char *sr_req_path(const sr_req *r)
{
    const char *p = sr_req_header(r, ":path");
    return p ? p : "";
}

const uint8_t *sr_req_body(const sr_req *r, size_t *len)
{
    *len = r->body.len;
    return r->body.data ? r->body.data : (const uint8_t *)"";
}

void sr_req_set_data(sr_req *r, void *data)
{
    r->data = data;
}

void sr_req_set_abort(sr_req *r, void (*on_abort)(sr_req *, void *))
{
    r->on_abort = on_abort;
}

void sr_req_set_done(sr_req *r, void (*fn)(void *), void *arg)
{
    r->done_fn = fn;
    r->done_arg = arg;
}

/* The subject's CN as UTF-8 in |out| (SR_CERT_CN_MAX + 1 bytes). A subject
 * with no CN, more than one (which one would be the client?), one longer than
 * SR_CERT_CN_MAX or holding a NUL or a control character identifies no one:
 * false, and the connection has no client certificate. Never cut short: a
 * cut name could equal a configured one. */
static bool cert_cn(X509_NAME *name, char *out, const char *peer)
{
    int i = name ? X509_NAME_get_index_by_NID(name, NID_commonName, -1) : -1;
    if (i < 0) {
        return false;
    }
    if (X509_NAME_get_index_by_NID(name, NID_commonName, i) >= 0) {
        sr_log(SR_LOG_INFO, "%s: client certificate with more than one CN, not accepted", peer);
        return false;
    }
    unsigned char *utf8 = NULL;
    int n = ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, i)));
    bool ok = n > 0 && n <= SR_CERT_CN_MAX;
    for (int k = 0; ok && k < n; k++) {
        ok = utf8[k] >= 0x20 && utf8[k] != 0x7f;
    }
    if (ok) {
        memcpy(out, utf8, (size_t)n);
        out[n] = 0;
    } else {
        sr_log(SR_LOG_INFO,
               "%s: client certificate CN of %d bytes (at most %d, no control characters), not "
               "accepted",
               peer, n, SR_CERT_CN_MAX);
    }
    OPENSSL_free(utf8);
    return ok;
}

const char *sr_req_client_cert(const sr_req *r)
{
    struct sr_conn *c = r->conn;
    if (!c || !c->tls) {
        return NULL;
    }
    if (c->cert_state == 0) {
        c->cert_state = -1;
        SSL *ssl = bufferevent_openssl_get_ssl(c->bev);
        X509 *x = ssl ? SSL_get1_peer_certificate(ssl) : NULL;
        if (x && SSL_get_verify_result(ssl) == X509_V_OK &&
            cert_cn(X509_get_subject_name(x), c->cert_cn, c->peer)) {
            c->cert_state = 1;
        }
        X509_free(x);
    }
    return c->cert_state == 1 ? c->cert_cn : NULL;
}

bool sr_req_peer_key(const sr_req *r, uint8_t key[16])
{
    if (!r->conn || !r->conn->has_addr) {
        memset(key, 0, 16);
        return false;
    }
    memcpy(key, r->conn->addr_key, 16);
    return true;
}

const char *sr_req_peer(const sr_req *r)
{
    return r->conn ? r->conn->peer : "?";
}

int64_t sr_req_start_mono(const sr_req *r)
{
    return r->start_mono;
}

int sr_error_body(sr_buf *b, const char *msg, const char *detail_json)
{
    int rv = sr_buf_append(b, "{\"error\":", 9);
    rv = rv ? rv : sr_buf_append_json_str(b, msg, strlen(msg));
    return rv ? rv : sr_buf_appendf(b, ",\"detail\":%s}\n", detail_json ? detail_json : "null");
}
