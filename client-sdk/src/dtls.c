/* dtls: see dtls.h. */
#include "dtls.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "parley.h"

/* The UDP payload budget of one DTLS datagram: stays under the 1280-byte IPv6 minimum with
 * room for IP/UDP headers and TURN framing, as browsers do. */
#define PL_DTLS_MTU 1200
/* Datagrams kept for replay while ICE has no pair to send on (one handshake flight). */
#define PL_DTLS_REPLAY_MAX 16
#define PL_DTLS_READ_BUF   (16 * 1024 + 256)

struct pl__dtls {
    uv_timer_t timer;
    pl__dtls_callbacks_t cb;
    SSL_CTX *ctx;
    SSL *ssl;
    EVP_PKEY *key;
    X509 *cert;
    char fingerprint[32 * 3];
    int started, connected, done;
    struct {
        uint8_t *data;
        size_t len;
    } replay[PL_DTLS_REPLAY_MAX];
    size_t nreplay;
};

/* ---- the one-datagram-per-write BIO ---- */

static BIO_METHOD *pl_dtls_bio_method;
static pthread_once_t pl_dtls_bio_once = PTHREAD_ONCE_INIT;

static int pl_dtls_bio_write(BIO *b, const char *data, int len)
{
    pl__dtls_t *d = BIO_get_data(b);
    if (!d || len <= 0)
        return len;
    if (d->cb.send(d->cb.ud, data, (size_t)len) < 0 && !d->connected &&
        d->nreplay < PL_DTLS_REPLAY_MAX) {
        uint8_t *copy = malloc((size_t)len);
        if (copy) {
            memcpy(copy, data, (size_t)len);
            d->replay[d->nreplay].data = copy;
            d->replay[d->nreplay].len = (size_t)len;
            d->nreplay++;
        }
    }
    /* Reported as written either way: a lost datagram is what DTLS retransmits. */
    return len;
}

static long pl_dtls_bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    switch (cmd) {
    case BIO_CTRL_FLUSH:
        return 1;
    case BIO_CTRL_DGRAM_QUERY_MTU:
    case BIO_CTRL_DGRAM_GET_MTU:
        return PL_DTLS_MTU;
    default:
        return 0;
    }
}

static int pl_dtls_bio_create(BIO *b)
{
    BIO_set_init(b, 1);
    return 1;
}

static void pl_dtls_bio_init_once(void)
{
    BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "pl-dtls");
    if (!m)
        return;
    BIO_meth_set_write(m, pl_dtls_bio_write);
    BIO_meth_set_ctrl(m, pl_dtls_bio_ctrl);
    BIO_meth_set_create(m, pl_dtls_bio_create);
    pl_dtls_bio_method = m;
}

/* ---- certificate ---- */

static int pl_dtls_make_cert(pl__dtls_t *d)
{
    d->key = EVP_EC_gen("P-256");
    d->cert = X509_new();
    if (!d->key || !d->cert)
        return PARLEY_ENOMEM;
    uint64_t serial;
    if (RAND_bytes((unsigned char *)&serial, sizeof serial) != 1)
        return PARLEY_EDTLS;
    serial >>= 1; /* positive */
    X509_NAME *name = X509_get_subject_name(d->cert);
    if (!X509_set_version(d->cert, 2) ||
        !ASN1_INTEGER_set_uint64(X509_get_serialNumber(d->cert), serial) ||
        !X509_gmtime_adj(X509_getm_notBefore(d->cert), -86400) ||
        !X509_gmtime_adj(X509_getm_notAfter(d->cert), 30L * 86400) ||
        !X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"parley", -1,
                                    -1, 0) ||
        !X509_set_issuer_name(d->cert, name) || !X509_set_pubkey(d->cert, d->key) ||
        !X509_sign(d->cert, d->key, EVP_sha256()))
        return PARLEY_EDTLS;
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned n = 0;
    if (!X509_digest(d->cert, EVP_sha256(), md, &n) || n != 32)
        return PARLEY_EDTLS;
    for (unsigned i = 0; i < n; i++)
        snprintf(d->fingerprint + 3 * i, 4, i + 1 < n ? "%02X:" : "%02X", md[i]);
    return 0;
}

static int pl_dtls_accept_any(int ok, X509_STORE_CTX *ctx)
{
    /* Self-signed is the norm; the SDP fingerprint is the trust anchor (pl__dtls_verify). */
    return 1;
}

/* OpenSSL's first retransmission comes after 1 s; a lost first flight costs less at 200 ms,
 * doubling up to 10 s. */
static unsigned int pl_dtls_timer_us(SSL *s, unsigned int timer_us)
{
    if (timer_us == 0)
        return 200000;
    return timer_us >= 5000000 ? 10000000 : timer_us * 2;
}

int pl__dtls_new(uv_loop_t *loop, const pl__dtls_callbacks_t *cb, pl__dtls_t **out)
{
    pthread_once(&pl_dtls_bio_once, pl_dtls_bio_init_once);
    if (!pl_dtls_bio_method)
        return PARLEY_ENOMEM;
    pl__dtls_t *d = calloc(1, sizeof *d);
    if (!d)
        return PARLEY_ENOMEM;
    d->cb = *cb;
    int rc = pl_dtls_make_cert(d);
    if (rc)
        goto fail;
    rc = PARLEY_EDTLS;
    d->ctx = SSL_CTX_new(DTLS_method());
    if (!d->ctx)
        goto fail;
    if (!SSL_CTX_set_min_proto_version(d->ctx, DTLS1_2_VERSION) ||
        !SSL_CTX_set_cipher_list(d->ctx, "ECDHE-ECDSA-AES128-GCM-SHA256:"
                                         "ECDHE-ECDSA-AES256-GCM-SHA384:"
                                         "ECDHE-ECDSA-CHACHA20-POLY1305") ||
        !SSL_CTX_set1_groups_list(d->ctx, "X25519:P-256") ||
        !SSL_CTX_use_certificate(d->ctx, d->cert) || !SSL_CTX_use_PrivateKey(d->ctx, d->key) ||
        !SSL_CTX_check_private_key(d->ctx))
        goto fail;
    SSL_CTX_set_options(d->ctx, SSL_OP_NO_QUERY_MTU | SSL_OP_NO_TICKET);
    SSL_CTX_set_verify(d->ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT,
                       pl_dtls_accept_any);
    d->ssl = SSL_new(d->ctx);
    if (!d->ssl)
        goto fail;
    BIO *rbio = BIO_new(BIO_s_mem());
    BIO *wbio = BIO_new(pl_dtls_bio_method);
    if (!rbio || !wbio) {
        BIO_free(rbio);
        BIO_free(wbio);
        goto fail;
    }
    BIO_set_mem_eof_return(rbio, -1);
    BIO_set_data(wbio, d);
    SSL_set_bio(d->ssl, rbio, wbio);
    SSL_set_mtu(d->ssl, PL_DTLS_MTU);
    DTLS_set_timer_cb(d->ssl, pl_dtls_timer_us);
    if (uv_timer_init(loop, &d->timer) != 0)
        goto fail;
    d->timer.data = d;
    *out = d;
    return 0;
fail:
    ERR_clear_error();
    SSL_free(d->ssl);
    SSL_CTX_free(d->ctx);
    X509_free(d->cert);
    EVP_PKEY_free(d->key);
    free(d);
    return rc;
}

const char *pl__dtls_fingerprint(const pl__dtls_t *d)
{
    return d->fingerprint;
}

static void pl_dtls_fail(pl__dtls_t *d, int err)
{
    if (d->done)
        return;
    d->done = 1;
    uv_timer_stop(&d->timer);
    ERR_clear_error();
    d->cb.on_closed(d->cb.ud, err);
}

static void pl_dtls_on_timer(uv_timer_t *t);

static void pl_dtls_arm(pl__dtls_t *d)
{
    struct timeval tv;
    if (!d->done && !d->connected && DTLSv1_get_timeout(d->ssl, &tv) == 1) {
        uint64_t ms = (uint64_t)tv.tv_sec * 1000 + (uint64_t)(tv.tv_usec + 999) / 1000;
        uv_timer_start(&d->timer, pl_dtls_on_timer, ms, 0);
    } else {
        uv_timer_stop(&d->timer);
    }
}

/* Drives the handshake, then reads every pending record. */
static void pl_dtls_pump(pl__dtls_t *d)
{
    if (!d->connected) {
        int r = SSL_do_handshake(d->ssl);
        if (r == 1) {
            d->connected = 1;
            for (size_t i = 0; i < d->nreplay; i++)
                free(d->replay[i].data);
            d->nreplay = 0;
            uv_timer_stop(&d->timer);
            d->cb.on_connected(d->cb.ud);
            if (d->done)
                return;
        } else {
            int e = SSL_get_error(d->ssl, r);
            if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) {
                pl_dtls_fail(d, PARLEY_EDTLS);
                return;
            }
            pl_dtls_arm(d);
            return;
        }
    }
    uint8_t buf[PL_DTLS_READ_BUF];
    while (!d->done) {
        int n = SSL_read(d->ssl, buf, sizeof buf);
        if (n > 0) {
            d->cb.on_data(d->cb.ud, buf, (size_t)n);
            continue;
        }
        int e = SSL_get_error(d->ssl, n);
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
            break;
        pl_dtls_fail(d, e == SSL_ERROR_ZERO_RETURN ? 0 : PARLEY_EDTLS);
    }
}

static void pl_dtls_on_timer(uv_timer_t *t)
{
    pl__dtls_t *d = t->data;
    if (d->done || d->connected)
        return;
    if (DTLSv1_handle_timeout(d->ssl) < 0) {
        pl_dtls_fail(d, PARLEY_EDTLS);
        return;
    }
    pl_dtls_arm(d);
}

int pl__dtls_start(pl__dtls_t *d, int client)
{
    if (d->started)
        return PARLEY_ESTATE;
    d->started = 1;
    if (client)
        SSL_set_connect_state(d->ssl);
    else
        SSL_set_accept_state(d->ssl);
    if (client)
        pl_dtls_pump(d);
    return 0;
}

void pl__dtls_input(pl__dtls_t *d, const uint8_t *data, size_t len)
{
    if (!d->started || d->done || len == 0 || len > 65535)
        return;
    /* A new datagram from the peer: what we kept for replay is stale now. */
    for (size_t i = 0; i < d->nreplay; i++)
        free(d->replay[i].data);
    d->nreplay = 0;
    if (BIO_write(SSL_get_rbio(d->ssl), data, (int)len) != (int)len) {
        pl_dtls_fail(d, PARLEY_ENOMEM);
        return;
    }
    pl_dtls_pump(d);
    /* Whatever OpenSSL did not consume (garbage) must not stick to the next datagram. */
    if (!d->done)
        (void)BIO_reset(SSL_get_rbio(d->ssl));
}

void pl__dtls_replay(pl__dtls_t *d)
{
    size_t n = d->nreplay;
    d->nreplay = 0;
    for (size_t i = 0; i < n; i++) {
        if (!d->done)
            d->cb.send(d->cb.ud, d->replay[i].data, d->replay[i].len);
        free(d->replay[i].data);
    }
}

int pl__dtls_write(pl__dtls_t *d, const void *data, size_t len)
{
    if (!d->connected || d->done)
        return PARLEY_ENOTCONN;
    int n = SSL_write(d->ssl, data, (int)len);
    if (n != (int)len) {
        ERR_clear_error();
        return PARLEY_EDTLS;
    }
    return 0;
}

static const EVP_MD *pl_dtls_md(const char *alg, int *strength)
{
    static const struct {
        const char *name;
        const EVP_MD *(*md)(void);
    } algs[] = {{"sha-1", EVP_sha1},
                {"sha-224", EVP_sha224},
                {"sha-256", EVP_sha256},
                {"sha-384", EVP_sha384},
                {"sha-512", EVP_sha512}};
    for (size_t i = 0; i < sizeof algs / sizeof algs[0]; i++)
        if (strcmp(alg, algs[i].name) == 0) {
            *strength = (int)i;
            return algs[i].md();
        }
    return NULL;
}

int pl__dtls_verify(pl__dtls_t *d, const pl__sdp_fingerprint_t *fp, size_t nfp)
{
    const pl__sdp_fingerprint_t *best = NULL;
    const EVP_MD *md = NULL;
    int best_strength = -1;
    for (size_t i = 0; i < nfp; i++) {
        int s;
        const EVP_MD *m = pl_dtls_md(fp[i].alg, &s);
        if (m && s > best_strength) {
            best = &fp[i];
            md = m;
            best_strength = s;
        }
    }
    if (!best || !d->connected)
        return PARLEY_EFINGERPRINT;
    X509 *peer = SSL_get1_peer_certificate(d->ssl);
    if (!peer)
        return PARLEY_EFINGERPRINT;
    unsigned char buf[EVP_MAX_MD_SIZE];
    unsigned n = 0;
    int ok = X509_digest(peer, md, buf, &n) && n == best->len && memcmp(buf, best->md, n) == 0;
    X509_free(peer);
    return ok ? 0 : PARLEY_EFINGERPRINT;
}

void pl__dtls_shutdown(pl__dtls_t *d)
{
    if (d->connected && !d->done) {
        SSL_shutdown(d->ssl);
        ERR_clear_error();
    }
    d->done = 1;
    uv_timer_stop(&d->timer);
}

static void pl_dtls_on_closed(uv_handle_t *h)
{
    free(h->data);
}

void pl__dtls_free(pl__dtls_t *d)
{
    if (!d)
        return;
    d->done = 1;
    /* The BIO must not reach a pc that is going away. */
    BIO_set_data(SSL_get_wbio(d->ssl), NULL);
    SSL_free(d->ssl);
    SSL_CTX_free(d->ctx);
    X509_free(d->cert);
    EVP_PKEY_free(d->key);
    for (size_t i = 0; i < d->nreplay; i++)
        free(d->replay[i].data);
    uv_close((uv_handle_t *)&d->timer, pl_dtls_on_closed);
}
