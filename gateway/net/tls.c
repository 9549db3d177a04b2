/*
 * TLS front door: an OpenSSL server context with ALPN "h2" for the HTTP
 * server's bufferevents. The context is reference-counted by OpenSSL, so a
 * reload builds a new one and drops ours; open connections keep theirs.
 */
#include "gateway/net/net_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

struct sr_tls {
    SSL_CTX *ctx;
};

static void ssl_reason(char *err, size_t errlen, const char *what, const char *file)
{
    unsigned long e = ERR_get_error();
    char buf[256] = "unknown error";
    if (e) {
        ERR_error_string_n(e, buf, sizeof(buf));
    }
    ERR_clear_error();
    snprintf(err, errlen, "%s %s: %s", what, file, buf);
}

/* Chooses h2 if the client offers it; otherwise no ALPN, and the connection's
 * first bytes decide (prior knowledge, or a clear refusal of HTTP/1.1). */
static int alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                       const unsigned char *in, unsigned int inlen, void *arg)
{
    (void)ssl;
    (void)arg;
    for (unsigned int i = 0; i < inlen;) {
        unsigned int n = in[i];
        if (i + 1 + n > inlen) {
            break;
        }
        if (n == 2 && in[i + 1] == 'h' && in[i + 2] == '2') {
            *out = in + i + 1;
            *outlen = 2;
            return SSL_TLSEXT_ERR_OK;
        }
        i += 1 + n;
    }
    return SSL_TLSEXT_ERR_NOACK;
}

int sr_tls_new(sr_tls **out, const char *cert, const char *key, const char *client_ca, char *err,
               size_t errlen)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx) {
        snprintf(err, errlen, "cannot create a TLS context");
        return SR_ERR_NOMEM;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
                                 SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_TICKET);
    /* RFC 9113 section 9.2.2: TLS 1.2 with h2 needs an AEAD, ephemeral suite */
    SSL_CTX_set_cipher_list(ctx, "ECDHE+AESGCM:ECDHE+CHACHA20");
    SSL_CTX_set_alpn_select_cb(ctx, alpn_select, NULL);
    if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
        ssl_reason(err, errlen, "certificate", cert);
        SSL_CTX_free(ctx);
        return SR_ERR_CONFIG;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
        ssl_reason(err, errlen, "private key", key);
        SSL_CTX_free(ctx);
        return SR_ERR_CONFIG;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        ssl_reason(err, errlen, "key does not match certificate", cert);
        SSL_CTX_free(ctx);
        return SR_ERR_CONFIG;
    }
    if (client_ca) {
        if (SSL_CTX_load_verify_locations(ctx, client_ca, NULL) != 1) {
            ssl_reason(err, errlen, "client CA", client_ca);
            SSL_CTX_free(ctx);
            return SR_ERR_CONFIG;
        }
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    }
    sr_tls *t = calloc(1, sizeof(*t));
    if (!t) {
        SSL_CTX_free(ctx);
        snprintf(err, errlen, "out of memory");
        return SR_ERR_NOMEM;
    }
    t->ctx = ctx;
    *out = t;
    return 0;
}

void sr_tls_free(sr_tls *tls)
{
    if (tls) {
        SSL_CTX_free(tls->ctx);
        free(tls);
    }
}

void *sr_tls_new_ssl(sr_tls *tls)
{
    return SSL_new(tls->ctx);
}
