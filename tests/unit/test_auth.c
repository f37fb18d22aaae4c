/* User JWT verification and signaling tokens (server/auth/auth.c).
 *
 * Tokens are built here with OpenSSL directly (HMAC, RSA and ECDSA signatures, our own
 * base64url), so the tests do not trust the code under test to produce what it checks.
 * Keys are generated at run time; public keys go to mkstemp files that are removed at the
 * end. */
#define _GNU_SOURCE /* vasprintf */
#include "test.h"

#include "auth/auth.h"
#include "common/error.h"
#include "common/ids.h"

#include <openssl/ec.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <stdarg.h>
#include <stdint.h>
#include <unistd.h>

#define NOW_MS 1700000000000LL
#define NOW_S  (NOW_MS / 1000)
#define SECRET "test-secret-0123456789abcdef0123456789"

typedef enum { SIGN_NONE, SIGN_HS256, SIGN_RS256, SIGN_ES256 } sign_t;

/* Keys shared by the test cases, made once in main. */
static EVP_PKEY *rsa_key, *ec_key;
static char rsa_pub_path[64], ec_pub_path[64], ec_cert_path[64];
static char *rsa_pub_pem; /* the PEM text of the RSA public key, for the confusion attack */

static void b64url(const void *in, size_t n, char *out, size_t cap);
static size_t unb64url(const char *in, size_t n, unsigned char *out, size_t cap);
static char *make_token(const char *header, const char *payload, sign_t how, const void *key,
                        size_t key_len);
static char *hs_token(const char *payload);
static char *fmt(const char *f, ...) __attribute__((format(printf, 1, 2)));
static pl_auth_t *auth_with(const char *secret, const char *pub, const char *iss, const char *aud,
                            bool insecure);
static int verify(pl_auth_t *a, const char *tok, pl_identity_t *id, const char **why);
static char *write_temp(char *path, size_t cap, const char *text);
static char *pubkey_pem(EVP_PKEY *k);

/* ---------------------------------------------------------------------------------------- */
/* Helpers                                                                                  */

static void b64url(const void *in, size_t n, char *out, size_t cap)
{
    unsigned char *tmp = malloc(4 * ((n + 2) / 3) + 1);
    int len = EVP_EncodeBlock(tmp, in, (int)n);
    size_t o = 0;
    for (int i = 0; i < len && o + 1 < cap; i++) {
        unsigned char c = tmp[i];
        if (c == '=')
            break;
        out[o++] = c == '+' ? '-' : c == '/' ? '_' : (char)c;
    }
    out[o] = '\0';
    free(tmp);
}

static size_t unb64url(const char *in, size_t n, unsigned char *out, size_t cap)
{
    char *tmp = malloc(n + 4);
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        tmp[m++] = in[i] == '-' ? '+' : in[i] == '_' ? '/' : in[i];
    size_t pad = (4 - m % 4) % 4;
    for (size_t i = 0; i < pad; i++)
        tmp[m++] = '=';
    unsigned char *buf = malloc(m);
    int len = EVP_DecodeBlock(buf, (unsigned char *)tmp, (int)m);
    size_t r = 0;
    if (len >= 0 && (size_t)len - pad <= cap) {
        r = (size_t)len - pad;
        memcpy(out, buf, r);
    }
    free(buf);
    free(tmp);
    return r;
}

static char *fmt(const char *f, ...)
{
    va_list ap;
    va_start(ap, f);
    char *s = NULL;
    if (vasprintf(&s, f, ap) < 0)
        s = NULL;
    va_end(ap);
    return s;
}

/* header.payload.signature, signed as asked; the caller frees. */
static char *make_token(const char *header, const char *payload, sign_t how, const void *key,
                        size_t key_len)
{
    size_t cap = 4 * (strlen(header) + strlen(payload)) + 1024;
    char *tok = calloc(1, cap);
    b64url(header, strlen(header), tok, cap);
    size_t n = strlen(tok);
    tok[n++] = '.';
    b64url(payload, strlen(payload), tok + n, cap - n);
    n = strlen(tok);

    unsigned char sig[1024];
    size_t slen = 0;
    if (how == SIGN_HS256) {
        unsigned int l = 0;
        HMAC(EVP_sha256(), key, (int)key_len, (unsigned char *)tok, n, sig, &l);
        slen = l;
    } else if (how == SIGN_RS256 || how == SIGN_ES256) {
        EVP_MD_CTX *md = EVP_MD_CTX_new();
        unsigned char der[1024];
        size_t dlen = sizeof der;
        if (EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, (EVP_PKEY *)key) != 1 ||
            EVP_DigestSign(md, der, &dlen, (unsigned char *)tok, n) != 1)
            abort();
        EVP_MD_CTX_free(md);
        if (how == SIGN_RS256) {
            memcpy(sig, der, dlen);
            slen = dlen;
        } else {
            /* JOSE wants r||s, 32 bytes each, not OpenSSL's DER. */
            const unsigned char *p = der;
            ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &p, (long)dlen);
            const BIGNUM *r, *s;
            ECDSA_SIG_get0(es, &r, &s);
            BN_bn2binpad(r, sig, 32);
            BN_bn2binpad(s, sig + 32, 32);
            ECDSA_SIG_free(es);
            slen = 64;
        }
    }
    tok[n++] = '.';
    b64url(sig, slen, tok + n, cap - n);
    return tok;
}

static char *hs_token(const char *payload)
{
    return make_token("{\"alg\":\"HS256\",\"typ\":\"JWT\"}", payload, SIGN_HS256, SECRET,
                      strlen(SECRET));
}

static pl_auth_t *auth_with(const char *secret, const char *pub, const char *iss, const char *aud,
                            bool insecure)
{
    pl_config_t cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.jwt_secret = (char *)secret;
    cfg.jwt_public_key = (char *)pub;
    cfg.jwt_issuer = (char *)iss;
    cfg.jwt_audience = (char *)aud;
    cfg.insecure_dev = insecure;
    pl_auth_t *a = NULL;
    char err[256];
    int rc = pl_auth_new(&cfg, &a, err, sizeof err);
    if (rc) {
        fprintf(stderr, "pl_auth_new: %s\n", err);
        return NULL;
    }
    return a;
}

static int verify(pl_auth_t *a, const char *tok, pl_identity_t *id, const char **why)
{
    return pl_auth_verify_user(a, tok, strlen(tok), NOW_MS, id, why);
}

static char *pubkey_pem(EVP_PKEY *k)
{
    BIO *mem = BIO_new(BIO_s_mem());
    PEM_write_bio_PUBKEY(mem, k);
    char *p = NULL;
    long n = BIO_get_mem_data(mem, &p);
    char *s = strndup(p, (size_t)n);
    BIO_free(mem);
    return s;
}

static char *write_temp(char *path, size_t cap, const char *text)
{
    snprintf(path, cap, "/tmp/parley-auth-XXXXXX");
    int fd = mkstemp(path);
    if (fd < 0)
        abort();
    size_t n = strlen(text);
    if (write(fd, text, n) != (ssize_t)n)
        abort();
    close(fd);
    return path;
}

/* A pl_auth for a temp PEM of key k (NULL on refusal, with the error in err). */
static int auth_for_key(EVP_PKEY *k, char *err, size_t cap)
{
    char path[64];
    char *pem = pubkey_pem(k);
    write_temp(path, sizeof path, pem);
    free(pem);
    pl_config_t cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.jwt_public_key = path;
    pl_auth_t *a = NULL;
    int rc = pl_auth_new(&cfg, &a, err, cap);
    pl_auth_free(a);
    unlink(path);
    return rc;
}

/* ---------------------------------------------------------------------------------------- */
/* Valid tokens                                                                             */

static void test_hs256_valid(void)
{
    pl_auth_t *a = auth_with(SECRET, NULL, NULL, NULL, false);
    REQUIRE(a);
    CHECK(!pl_auth_insecure(a));
    char *p = fmt("{\"sub\":\"user-1\",\"name\":\"Alice \\u00e9\",\"exp\":%lld}", NOW_S + 600);
    char *t = hs_token(p);
    pl_identity_t id;
    const char *why = NULL;
    CHECK_EQ_INT(verify(a, t, &id, &why), 0);
    CHECK_EQ_STR(why, "ok");
    CHECK_EQ_STR(id.user_id, "user-1");
    CHECK_EQ_STR(id.name, "Alice \xc3\xa9");
    CHECK_EQ_INT(id.exp_ms, (NOW_S + 600) * 1000);
    CHECK_EQ_INT(id.ndomains, 0);
    CHECK(!id.guest);
    free(t);

    /* No typ header at all is fine too, and a fractional exp. */
    t = make_token("{\"alg\":\"HS256\"}", "{\"sub\":\"u\",\"exp\":1700000600.5}", SIGN_HS256,
                   SECRET, strlen(SECRET));
    CHECK_EQ_INT(verify(a, t, &id, NULL), 0);
    CHECK_EQ_INT(id.exp_ms, 1700000600500LL);
    CHECK_EQ_STR(id.name, "u");
    free(t);
    free(p);
    pl_auth_free(a);
}

static void test_rs256_valid(void)
{
    pl_auth_t *a = auth_with(NULL, rsa_pub_path, NULL, NULL, false);
    REQUIRE(a);
    char *p = fmt("{\"sub\":\"rsa-user\",\"exp\":%lld}", NOW_S + 60);
    char *t = make_token("{\"alg\":\"RS256\",\"typ\":\"JWT\"}", p, SIGN_RS256, rsa_key, 0);
    pl_identity_t id;
    const char *why = NULL;
    CHECK_EQ_INT(verify(a, t, &id, &why), 0);
    CHECK_EQ_STR(id.user_id, "rsa-user");
    free(t);
    free(p);
    pl_auth_free(a);
}

static void test_es256_valid(void)
{
    const char *paths[] = {ec_pub_path, ec_cert_path};
    for (size_t k = 0; k < 2; k++) {
        pl_auth_t *a = auth_with(NULL, paths[k], NULL, NULL, false);
        REQUIRE(a);
        char *p = fmt("{\"sub\":\"ec-user\",\"exp\":%lld}", NOW_S + 60);
        /* Sign until r or s has a leading zero byte (about 1 in 128 signatures): that is
         * where DER and the fixed-width r||s form differ most. */
        int zeros = 0, i;
        for (i = 0; i < 4000 && (zeros == 0 || i < 8); i++) {
            char *t = make_token("{\"alg\":\"ES256\"}", p, SIGN_ES256, ec_key, 0);
            pl_identity_t id;
            CHECK_EQ_INT(verify(a, t, &id, NULL), 0);
            CHECK_EQ_STR(id.user_id, "ec-user");
            unsigned char sig[64];
            const char *s = strrchr(t, '.') + 1;
            CHECK_EQ_INT(unb64url(s, strlen(s), sig, sizeof sig), 64);
            zeros += sig[0] == 0 || sig[32] == 0;
            free(t);
        }
        CHECK(zeros > 0);
        free(p);
        pl_auth_free(a);
    }
}

/* ---------------------------------------------------------------------------------------- */
/* Times                                                                                    */

static void test_exp_nbf(void)
{
    pl_auth_t *a = auth_with(SECRET, NULL, NULL, NULL, false);
    REQUIRE(a);
    struct {
        const char *claims_fmt;
        long long t;
        int want;
    } cases[] = {
        {"{\"sub\":\"u\",\"exp\":%lld}", NOW_S - 3600, PL_EEXPIRED},
        {"{\"sub\":\"u\",\"exp\":%lld}", NOW_S - 31, PL_EEXPIRED},
        {"{\"sub\":\"u\",\"exp\":%lld}", NOW_S - 30, PL_EEXPIRED}, /* leeway edge */
        {"{\"sub\":\"u\",\"exp\":%lld}", NOW_S - 29, 0},           /* within leeway */
        {"{\"sub\":\"u\",\"exp\":%lld}", NOW_S, 0},
        {"{\"sub\":\"u\",\"exp\":%lld,\"nbf\":1}", NOW_S + 10, 0},
        {"{\"sub\":\"u\",\"exp\":1800000000,\"nbf\":%lld}", NOW_S + 31, PL_EEXPIRED},
        {"{\"sub\":\"u\",\"exp\":1800000000,\"nbf\":%lld}", NOW_S + 29, 0},
        {"{\"sub\":\"u\",\"exp\":1800000000,\"nbf\":%lld}", NOW_S, 0},
        {"{\"sub\":\"u\",\"exp\":1800000000,\"nbf\":\"%lld\"}", NOW_S, PL_EAUTH},
        {"{\"sub\":\"u\",\"nbf\":%lld}", NOW_S, PL_EAUTH}, /* exp missing */
        {"{\"sub\":\"u\",\"exp\":\"%lld\"}", NOW_S + 60, PL_EAUTH},
        {"{\"sub\":\"u\",\"exp\":%lld,\"iat\":\"x\"}", NOW_S + 60, PL_EAUTH},
        {"{\"sub\":\"u\",\"exp\":-%lld}", NOW_S, PL_EAUTH},
        {"{\"sub\":\"u\",\"exp\":%lld000000}", NOW_S, PL_EAUTH}, /* far past year 9999 */
        {"{\"sub\":\"u\",\"exp\":true,\"x\":%lld}", 0, PL_EAUTH},
        {"{\"sub\":\"u\",\"exp\":null,\"x\":%lld}", 0, PL_EAUTH},
        /* Wrong and expired at once: the wrong part wins. */
        {"{\"sub\":\"\",\"exp\":%lld}", NOW_S - 3600, PL_EAUTH},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *p = fmt(cases[i].claims_fmt, cases[i].t);
        char *t = hs_token(p);
        pl_identity_t id;
        const char *why = NULL;
        int rc = verify(a, t, &id, &why);
        if (rc != cases[i].want)
            fprintf(stderr, "case %zu: %s -> %d (%s)\n", i, p, rc, why);
        CHECK_EQ_INT(rc, cases[i].want);
        CHECK(why != NULL);
        free(t);
        free(p);
    }
    pl_auth_free(a);
}

/* ---------------------------------------------------------------------------------------- */
/* iss and aud                                                                              */

static void test_iss_aud(void)
{
    pl_auth_t *a = auth_with(SECRET, NULL, "https://idp.example", "parley", false);
    REQUIRE(a);
    struct {
        const char *extra;
        int want;
    } cases[] = {
        {"\"iss\":\"https://idp.example\",\"aud\":\"parley\"", 0},
        {"\"iss\":\"https://idp.example\",\"aud\":[\"other\",\"parley\"]", 0},
        {"\"iss\":\"https://evil.example\",\"aud\":\"parley\"", PL_EAUTH},
        {"\"iss\":\"https://idp.example/\",\"aud\":\"parley\"", PL_EAUTH},
        {"\"aud\":\"parley\"", PL_EAUTH}, /* iss missing */
        {"\"iss\":[\"https://idp.example\"],\"aud\":\"parley\"", PL_EAUTH},
        {"\"iss\":\"https://idp.example\",\"aud\":\"other\"", PL_EAUTH},
        {"\"iss\":\"https://idp.example\",\"aud\":\"parleyx\"", PL_EAUTH},
        {"\"iss\":\"https://idp.example\",\"aud\":[\"other\",\"x\"]", PL_EAUTH},
        {"\"iss\":\"https://idp.example\",\"aud\":[]", PL_EAUTH},
        {"\"iss\":\"https://idp.example\",\"aud\":[\"parley\",7]", PL_EAUTH},
        {"\"iss\":\"https://idp.example\",\"aud\":{\"parley\":1}", PL_EAUTH},
        {"\"iss\":\"https://idp.example\"", PL_EAUTH}, /* aud missing */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *p = fmt("{\"sub\":\"u\",\"exp\":%lld,%s}", NOW_S + 60, cases[i].extra);
        char *t = hs_token(p);
        pl_identity_t id;
        const char *why = NULL;
        int rc = verify(a, t, &id, &why);
        if (rc != cases[i].want)
            fprintf(stderr, "case %zu: %s -> %d (%s)\n", i, p, rc, why);
        CHECK_EQ_INT(rc, cases[i].want);
        free(t);
        free(p);
    }
    pl_auth_free(a);

    /* Not configured: iss and aud are not looked at. */
    a = auth_with(SECRET, NULL, "", NULL, false);
    REQUIRE(a);
    char *p = fmt("{\"sub\":\"u\",\"exp\":%lld,\"iss\":5,\"aud\":\"x\"}", NOW_S + 60);
    char *t = hs_token(p);
    pl_identity_t id;
    CHECK_EQ_INT(verify(a, t, &id, NULL), 0);
    free(t);
    free(p);
    pl_auth_free(a);
}

/* ---------------------------------------------------------------------------------------- */
/* Algorithms                                                                               */

static void test_alg_none_refused(void)
{
    const char *headers[] = {"{\"alg\":\"none\"}", "{\"alg\":\"none\",\"typ\":\"JWT\"}",
                             "{\"alg\":\"None\"}", "{\"alg\":\"NONE\"}",
                             "{\"alg\":\"\"}",     "{\"typ\":\"JWT\"}",
                             "{\"alg\":null}",     "{\"alg\":[\"HS256\"]}"};
    pl_auth_t *auths[3] = {auth_with(SECRET, NULL, NULL, NULL, false),
                           auth_with(NULL, rsa_pub_path, NULL, NULL, false),
                           auth_with(NULL, ec_pub_path, NULL, NULL, false)};
    REQUIRE(auths[0] && auths[1] && auths[2]);
    char *p = fmt("{\"sub\":\"admin\",\"exp\":%lld}", NOW_S + 60);
    for (size_t k = 0; k < 3; k++) {
        for (size_t h = 0; h < sizeof headers / sizeof headers[0]; h++) {
            /* Unsigned, and with some signature bytes attached. */
            char *t = make_token(headers[h], p, SIGN_NONE, NULL, 0);
            pl_identity_t id;
            const char *why = NULL;
            CHECK_EQ_INT(verify(auths[k], t, &id, &why), PL_EAUTH);
            CHECK_EQ_STR(id.user_id, "");
            if (h < 4)
                CHECK_EQ_STR(why, "unsigned token (alg none) refused");
            free(t);
            t = make_token(headers[h], p, SIGN_HS256, SECRET, strlen(SECRET));
            CHECK_EQ_INT(verify(auths[k], t, &id, &why), PL_EAUTH);
            free(t);
        }
    }
    for (size_t k = 0; k < 3; k++)
        pl_auth_free(auths[k]);

    /* insecure_dev does not open the door when a key is configured. */
    pl_auth_t *a = auth_with(SECRET, NULL, NULL, NULL, true);
    REQUIRE(a);
    CHECK(!pl_auth_insecure(a));
    char *t = make_token("{\"alg\":\"none\"}", p, SIGN_NONE, NULL, 0);
    pl_identity_t id;
    CHECK_EQ_INT(verify(a, t, &id, NULL), PL_EAUTH);
    free(t);
    pl_auth_free(a);
    free(p);
}

static void test_alg_confusion(void)
{
    pl_auth_t *rs = auth_with(NULL, rsa_pub_path, NULL, NULL, false);
    pl_auth_t *es = auth_with(NULL, ec_pub_path, NULL, NULL, false);
    pl_auth_t *hs = auth_with(SECRET, NULL, NULL, NULL, false);
    REQUIRE(rs && es && hs);
    char *p = fmt("{\"sub\":\"admin\",\"exp\":%lld}", NOW_S + 60);
    pl_identity_t id;
    const char *why = NULL;

    /* The classic: HS256 keyed with the server's own public key text. */
    char *ec_pem = pubkey_pem(ec_key);
    const char *pems[] = {rsa_pub_pem, ec_pem};
    pl_auth_t *targets[] = {rs, es};
    for (size_t k = 0; k < 2; k++) {
        char *t = make_token("{\"alg\":\"HS256\",\"typ\":\"JWT\"}", p, SIGN_HS256, pems[k],
                             strlen(pems[k]));
        CHECK_EQ_INT(verify(targets[k], t, &id, &why), PL_EAUTH);
        CHECK_EQ_STR(why, "algorithm not allowed for the configured key");
        free(t);
    }
    free(ec_pem);

    /* Sanity check of the attack itself: an HS256 server whose secret is that PEM text would
     * accept it, so the refusal above comes from pinning, not from a broken token. */
    pl_auth_t *hs_pem = auth_with(rsa_pub_pem, NULL, NULL, NULL, false);
    REQUIRE(hs_pem);
    char *t = make_token("{\"alg\":\"HS256\"}", p, SIGN_HS256, rsa_pub_pem, strlen(rsa_pub_pem));
    CHECK_EQ_INT(verify(hs_pem, t, &id, NULL), 0);
    free(t);
    pl_auth_free(hs_pem);

    /* Valid signatures of the wrong family. */
    char *rs_tok = make_token("{\"alg\":\"RS256\"}", p, SIGN_RS256, rsa_key, 0);
    char *es_tok = make_token("{\"alg\":\"ES256\"}", p, SIGN_ES256, ec_key, 0);
    char *hs_tok = make_token("{\"alg\":\"HS256\"}", p, SIGN_HS256, SECRET, strlen(SECRET));
    CHECK_EQ_INT(verify(hs, rs_tok, &id, NULL), PL_EAUTH);
    CHECK_EQ_INT(verify(hs, es_tok, &id, NULL), PL_EAUTH);
    CHECK_EQ_INT(verify(rs, es_tok, &id, NULL), PL_EAUTH);
    CHECK_EQ_INT(verify(rs, hs_tok, &id, NULL), PL_EAUTH);
    CHECK_EQ_INT(verify(es, rs_tok, &id, NULL), PL_EAUTH);
    CHECK_EQ_INT(verify(es, hs_tok, &id, NULL), PL_EAUTH);
    /* Each is fine where it belongs. */
    CHECK_EQ_INT(verify(hs, hs_tok, &id, NULL), 0);
    CHECK_EQ_INT(verify(rs, rs_tok, &id, NULL), 0);
    CHECK_EQ_INT(verify(es, es_tok, &id, NULL), 0);
    free(rs_tok);
    free(es_tok);
    free(hs_tok);

    /* Other names of the same family, and case games libjwt would let through. */
    const char *algs[] = {"HS384", "HS512", "hs256", "RS512", "PS256", "ES384", "EdDSA"};
    for (size_t i = 0; i < sizeof algs / sizeof algs[0]; i++) {
        char *h = fmt("{\"alg\":\"%s\"}", algs[i]);
        t = make_token(h, p, SIGN_HS256, SECRET, strlen(SECRET));
        CHECK_EQ_INT(verify(hs, t, &id, NULL), PL_EAUTH);
        free(t);
        free(h);
    }

    /* A signature that is valid for RS256 but headed ES256 (and vice versa). */
    t = make_token("{\"alg\":\"RS256\"}", p, SIGN_ES256, ec_key, 0);
    CHECK_EQ_INT(verify(es, t, &id, NULL), PL_EAUTH);
    free(t);
    t = make_token("{\"alg\":\"ES256\"}", p, SIGN_RS256, rsa_key, 0);
    CHECK_EQ_INT(verify(rs, t, &id, NULL), PL_EAUTH);
    free(t);

    free(p);
    pl_auth_free(rs);
    pl_auth_free(es);
    pl_auth_free(hs);
}

static void test_header_fields(void)
{
    pl_auth_t *a = auth_with(SECRET, NULL, NULL, NULL, false);
    REQUIRE(a);
    char *p = fmt("{\"sub\":\"u\",\"exp\":%lld}", NOW_S + 60);
    struct {
        const char *header;
        int want;
    } cases[] = {
        {"{\"alg\":\"HS256\",\"typ\":\"jwt\"}", 0},
        {"{\"alg\":\"HS256\",\"kid\":\"k1\"}", 0},
        {"{\"alg\":\"HS256\",\"typ\":\"parley-signaling\"}", PL_EAUTH},
        {"{\"alg\":\"HS256\",\"typ\":\"at+jwt\"}", PL_EAUTH},
        {"{\"alg\":\"HS256\",\"typ\":7}", PL_EAUTH},
        {"{\"alg\":\"HS256\",\"crit\":[\"exp\"]}", PL_EAUTH},
        {"{\"alg\":\"HS256\",\"alg\":\"HS256\"}", PL_EAUTH}, /* duplicate member */
        {"[\"HS256\"]", PL_EAUTH},
        {"\"HS256\"", PL_EAUTH},
        {"{\"alg\":\"HS256\"", PL_EAUTH},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *t = make_token(cases[i].header, p, SIGN_HS256, SECRET, strlen(SECRET));
        pl_identity_t id;
        const char *why = NULL;
        int rc = verify(a, t, &id, &why);
        if (rc != cases[i].want)
            fprintf(stderr, "case %zu: %s -> %d (%s)\n", i, cases[i].header, rc, why);
        CHECK_EQ_INT(rc, cases[i].want);
        free(t);
    }
    free(p);
    pl_auth_free(a);
}

/* ---------------------------------------------------------------------------------------- */
/* Tampering and garbage                                                                    */

static void test_tampered(void)
{
    pl_auth_t *auths[3] = {auth_with(SECRET, NULL, NULL, NULL, false),
                           auth_with(NULL, rsa_pub_path, NULL, NULL, false),
                           auth_with(NULL, ec_pub_path, NULL, NULL, false)};
    REQUIRE(auths[0] && auths[1] && auths[2]);
    char *p = fmt("{\"sub\":\"alice\",\"exp\":%lld}", NOW_S + 60);
    char *evil = fmt("{\"sub\":\"admin\",\"exp\":%lld}", NOW_S + 60);
    char *toks[3] = {
        make_token("{\"alg\":\"HS256\"}", p, SIGN_HS256, SECRET, strlen(SECRET)),
        make_token("{\"alg\":\"RS256\"}", p, SIGN_RS256, rsa_key, 0),
        make_token("{\"alg\":\"ES256\"}", p, SIGN_ES256, ec_key, 0),
    };
    for (size_t k = 0; k < 3; k++) {
        pl_identity_t id;
        const char *why = NULL;
        CHECK_EQ_INT(verify(auths[k], toks[k], &id, &why), 0);

        /* Payload swapped, signature kept. */
        char *dot1 = strchr(toks[k], '.'), *dot2 = strrchr(toks[k], '.');
        char evil_b64[256];
        b64url(evil, strlen(evil), evil_b64, sizeof evil_b64);
        char *t = fmt("%.*s.%s%s", (int)(dot1 - toks[k]), toks[k], evil_b64, dot2);
        CHECK_EQ_INT(verify(auths[k], t, &id, &why), PL_EAUTH);
        CHECK_EQ_STR(why, "bad signature");
        free(t);

        /* One signature character changed (the first: the last may carry only padding
         * bits, which the decoder ignores). */
        t = strdup(toks[k]);
        char *s = strrchr(t, '.') + 1;
        s[0] = s[0] == 'A' ? 'B' : 'A';
        CHECK_EQ_INT(verify(auths[k], t, &id, &why), PL_EAUTH);
        free(t);

        /* Signature truncated, dropped, or doubled. */
        t = strdup(toks[k]);
        t[strlen(t) - 4] = '\0';
        CHECK_EQ_INT(verify(auths[k], t, &id, &why), PL_EAUTH);
        *(strrchr(t, '.') + 1) = '\0';
        CHECK_EQ_INT(verify(auths[k], t, &id, &why), PL_EAUTH);
        CHECK_EQ_STR(why, "missing signature");
        free(t);
        t = fmt("%s%s", toks[k], dot2 + 1);
        CHECK_EQ_INT(verify(auths[k], t, &id, &why), PL_EAUTH);
        free(t);

        /* Header swapped for another that still names the right algorithm. */
        char hb[64];
        const char *alt = k == 0   ? "{\"alg\":\"HS256\",\"typ\":\"JWT\"}"
                          : k == 1 ? "{\"alg\":\"RS256\",\"typ\":\"JWT\"}"
                                   : "{\"alg\":\"ES256\",\"typ\":\"JWT\"}";
        b64url(alt, strlen(alt), hb, sizeof hb);
        t = fmt("%s%s", hb, dot1);
        CHECK_EQ_INT(verify(auths[k], t, &id, &why), PL_EAUTH);
        free(t);
    }
    for (size_t k = 0; k < 3; k++) {
        free(toks[k]);
        pl_auth_free(auths[k]);
    }
    free(p);
    free(evil);
}

static void test_garbage(void)
{
    pl_auth_t *a = auth_with(SECRET, NULL, NULL, NULL, false);
    REQUIRE(a);
    char *p = fmt("{\"sub\":\"u\",\"exp\":%lld}", NOW_S + 60);
    char *good = hs_token(p);
    char *dot1 = strchr(good, '.');
    char hdr[128];
    snprintf(hdr, sizeof hdr, "%.*s", (int)(dot1 - good), good);

    const char *bad[] = {
        "",
        "abc",
        "abc.def",
        ".",
        "..",
        "...",
        "a.b.c.d",
        "a!b.cde.fgh",
        "eyJ.e y.abc",
        "Zm9v.YmFy.YmF6", /* foo.bar.baz: not JSON */
        "e30.e30.",       /* {}.{}. */
        "Bearer x.y.z",
        "\xff\xfe.abc.def",
    };
    pl_identity_t id;
    const char *why = NULL;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CHECK_EQ_INT(verify(a, bad[i], &id, &why), PL_EAUTH);
        CHECK(why != NULL);
    }
    /* NULL token, and the length is what counts, not the NUL. */
    CHECK_EQ_INT(pl_auth_verify_user(a, NULL, 0, NOW_MS, &id, &why), PL_EAUTH);
    CHECK_EQ_STR(why, "empty token");
    CHECK_EQ_INT(pl_auth_verify_user(a, good, strlen(good) - 1, NOW_MS, &id, &why), PL_EAUTH);
    CHECK_EQ_INT(pl_auth_verify_user(a, good, strlen(good), NOW_MS, &id, &why), 0);

    /* An embedded NUL, padding, whitespace, four segments made from a good token. */
    char *t = strdup(good);
    t[5] = '\0';
    CHECK_EQ_INT(pl_auth_verify_user(a, t, strlen(good), NOW_MS, &id, &why), PL_EAUTH);
    free(t);
    t = fmt("%s==", good);
    CHECK_EQ_INT(verify(a, t, &id, &why), PL_EAUTH);
    free(t);
    t = fmt("%s\n", good);
    CHECK_EQ_INT(verify(a, t, &id, &why), PL_EAUTH);
    free(t);
    t = fmt(" %s", good);
    CHECK_EQ_INT(verify(a, t, &id, &why), PL_EAUTH);
    free(t);
    t = fmt("%s.%s", hdr, good);
    CHECK_EQ_INT(verify(a, t, &id, &why), PL_EAUTH);
    free(t);
    t = fmt("%s.", good);
    CHECK_EQ_INT(verify(a, t, &id, &why), PL_EAUTH);
    free(t);

    /* Huge: one byte over the limit is refused before anything is decoded, even when the
     * token would otherwise be valid. */
    size_t n = PL_TOKEN_MAX + 1;
    char *big = malloc(n + 1);
    memset(big, 'A', n);
    big[n] = '\0';
    big[10] = '.';
    big[20] = '.';
    CHECK_EQ_INT(verify(a, big, &id, &why), PL_EAUTH);
    CHECK_EQ_STR(why, "token too long");
    free(big);
    char *pad = malloc(PL_TOKEN_MAX + 1);
    memset(pad, 'x', PL_TOKEN_MAX);
    pad[PL_TOKEN_MAX] = '\0';
    char *bp = fmt("{\"sub\":\"u\",\"exp\":%lld,\"pad\":\"%s\"}", NOW_S + 60, pad);
    t = hs_token(bp);
    CHECK(strlen(t) > PL_TOKEN_MAX);
    CHECK_EQ_INT(verify(a, t, &id, &why), PL_EAUTH);
    free(t);
    free(bp);
    /* Just under the limit is fine. */
    bp = fmt("{\"sub\":\"u\",\"exp\":%lld,\"pad\":\"%.5900s\"}", NOW_S + 60, pad);
    t = hs_token(bp);
    CHECK(strlen(t) <= PL_TOKEN_MAX);
    CHECK_EQ_INT(verify(a, t, &id, &why), 0);
    free(t);
    free(bp);
    free(pad);

    /* Payloads that are not objects, or not JSON. */
    const char *payloads[] = {"[]",
                              "\"sub\"",
                              "null",
                              "{\"sub\":\"u\",",
                              "",
                              "{\"sub\":\"u\"}x",
                              "{\"sub\":\"a\",\"sub\":\"b\",\"exp\":1800000000}"};
    for (size_t i = 0; i < sizeof payloads / sizeof payloads[0]; i++) {
        t = hs_token(payloads[i]);
        CHECK_EQ_INT(verify(a, t, &id, &why), PL_EAUTH);
        free(t);
    }
    free(good);
    free(p);
    pl_auth_free(a);
}

/* ---------------------------------------------------------------------------------------- */
/* Claims                                                                                   */

static void test_sub_name(void)
{
    pl_auth_t *a = auth_with(SECRET, NULL, NULL, NULL, false);
    REQUIRE(a);
    char s128[129], s129[130], n64[65], n65[66];
    memset(s128, 's', 128);
    s128[128] = '\0';
    memset(s129, 's', 129);
    s129[129] = '\0';
    memset(n64, 'n', 64);
    n64[64] = '\0';
    memset(n65, 'n', 65);
    n65[65] = '\0';

    struct {
        const char *sub, *name; /* JSON values, name NULL when absent */
        int want;
        const char *want_sub, *want_name;
    } cases[] = {
        {"\"u\"", NULL, 0, "u", "u"},
        {"\"u\"", "\"\"", 0, "u", "u"},
        {"\"u\"", "null", 0, "u", "u"},
        {"\"\\u00e9l\\u00e8ve\"", "\"\\u65e5\\u672c \\ud83d\\ude00\"", 0, "\xc3\xa9l\xc3\xa8ve",
         "\xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x98\x80"},
        {"\"\"", NULL, PL_EAUTH, NULL, NULL},
        {"7", NULL, PL_EAUTH, NULL, NULL},
        {"null", NULL, PL_EAUTH, NULL, NULL},
        {"[\"u\"]", NULL, PL_EAUTH, NULL, NULL},
        {"\"a\\nb\"", NULL, PL_EAUTH, NULL, NULL},
        {"\"a\\u007fb\"", NULL, PL_EAUTH, NULL, NULL},
        {"\"a\\u0085b\"", NULL, PL_EAUTH, NULL, NULL}, /* C1 */
        {"\"a\\u0000b\"", NULL, PL_EAUTH, NULL, NULL},
        {"\"guest:abc\"", NULL, PL_EAUTH, NULL, NULL},
        {"\"u\"", "5", PL_EAUTH, NULL, NULL},
        {"\"u\"", "\"a\\tb\"", PL_EAUTH, NULL, NULL},
        {"\"u\"", "\"\\u001b[31mred\"", PL_EAUTH, NULL, NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *p = cases[i].name ? fmt("{\"sub\":%s,\"name\":%s,\"exp\":%lld}", cases[i].sub,
                                      cases[i].name, NOW_S + 60)
                                : fmt("{\"sub\":%s,\"exp\":%lld}", cases[i].sub, NOW_S + 60);
        char *t = hs_token(p);
        pl_identity_t id;
        const char *why = NULL;
        int rc = verify(a, t, &id, &why);
        if (rc != cases[i].want)
            fprintf(stderr, "case %zu: %s -> %d (%s)\n", i, p, rc, why);
        CHECK_EQ_INT(rc, cases[i].want);
        if (rc == 0) {
            CHECK_EQ_STR(id.user_id, cases[i].want_sub);
            CHECK_EQ_STR(id.name, cases[i].want_name);
        }
        free(t);
        free(p);
    }

    /* Lengths: exactly at the limit is fine, one more byte is refused (never truncated). */
    struct {
        const char *sub, *name;
        int want;
    } lens[] = {{s128, NULL, 0}, {s129, NULL, PL_EAUTH}, {"u", n64, 0}, {"u", n65, PL_EAUTH}};
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
        char *p = lens[i].name ? fmt("{\"sub\":\"%s\",\"name\":\"%s\",\"exp\":%lld}", lens[i].sub,
                                     lens[i].name, NOW_S + 60)
                               : fmt("{\"sub\":\"%s\",\"exp\":%lld}", lens[i].sub, NOW_S + 60);
        char *t = hs_token(p);
        pl_identity_t id;
        CHECK_EQ_INT(verify(a, t, &id, NULL), lens[i].want);
        if (lens[i].want == 0 && !lens[i].name) {
            /* The default name is sub cut to PL_NAME_MAX bytes. */
            CHECK_EQ_INT(strlen(id.user_id), 128);
            CHECK_EQ_INT(strlen(id.name), PL_NAME_MAX);
            CHECK(strncmp(id.name, s128, PL_NAME_MAX) == 0);
        }
        free(t);
        free(p);
    }

    /* A long multi-byte sub is cut at a character boundary for the default name: 63 ASCII
     * bytes then "é" (2 bytes) would straddle byte 64. */
    char sub[80];
    memset(sub, 'x', 63);
    strcpy(sub + 63, "\xc3\xa9zz");
    char *p = fmt("{\"sub\":\"%s\",\"exp\":%lld}", sub, NOW_S + 60);
    char *t = hs_token(p);
    pl_identity_t id;
    CHECK_EQ_INT(verify(a, t, &id, NULL), 0);
    CHECK_EQ_INT(strlen(id.name), 63);
    CHECK_EQ_STR(id.user_id, sub);
    free(t);
    free(p);
    pl_auth_free(a);
}

static void test_domains(void)
{
    pl_auth_t *a = auth_with(SECRET, NULL, NULL, NULL, false);
    REQUIRE(a);
    char a63[64], long_label[70], long_host[270], max_host[260];
    memset(a63, 'a', 63);
    a63[63] = '\0';
    memset(long_label, 'a', 64);
    strcpy(long_label + 64, ".com");
    /* 253 bytes, the most a hostname may have: three 63-byte labels, one of 61, dots. */
    snprintf(max_host, sizeof max_host, "%s.%s.%s.%.61s", a63, a63, a63, a63);
    snprintf(long_host, sizeof long_host, "%s.a", max_host);

    char *p = fmt("{\"sub\":\"u\",\"exp\":%lld,\"domains\":[\"Example.COM\",\"sub.example.org\","
                  "\"example.com\",\"x-y.io\",\"localhost\",\"1.2.3.4\",\"%s\"]}",
                  NOW_S + 60, max_host);
    char *t = hs_token(p);
    pl_identity_t id;
    const char *why = NULL;
    CHECK_EQ_INT(verify(a, t, &id, &why), 0);
    CHECK_EQ_INT(id.ndomains, 6);
    CHECK_EQ_STR(id.domains[0], "example.com");
    CHECK_EQ_STR(id.domains[1], "sub.example.org");
    CHECK_EQ_STR(id.domains[2], "x-y.io");
    CHECK_EQ_STR(id.domains[3], "localhost");
    CHECK_EQ_STR(id.domains[4], "1.2.3.4");
    CHECK_EQ_INT(strlen(id.domains[5]), 253);
    free(t);
    free(p);

    const char *bad[] = {
        "\"example.com\"",
        "{}",
        "[1]",
        "[\"\"]",
        "[\"-bad.com\"]",
        "[\"bad-.com\"]",
        "[\"a..b\"]",
        "[\".a\"]",
        "[\"a.\"]",
        "[\"x_y.com\"]",
        "[\"*.example.com\"]",
        "[\"ex ample.com\"]",
        "[\"exa\\u00e9mple.com\"]",
        "[\"a.com/x\"]",
        "[\"a.com:80\"]",
        "[\"ok.com\",null]",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        p = fmt("{\"sub\":\"u\",\"exp\":%lld,\"domains\":%s}", NOW_S + 60, bad[i]);
        t = hs_token(p);
        int rc = verify(a, t, &id, &why);
        if (rc != PL_EAUTH)
            fprintf(stderr, "domains case %zu: %s -> %d\n", i, p, rc);
        CHECK_EQ_INT(rc, PL_EAUTH);
        free(t);
        free(p);
    }
    const char *hosts[] = {long_label, long_host};
    for (size_t i = 0; i < 2; i++) {
        p = fmt("{\"sub\":\"u\",\"exp\":%lld,\"domains\":[\"%s\"]}", NOW_S + 60, hosts[i]);
        t = hs_token(p);
        CHECK_EQ_INT(verify(a, t, &id, &why), PL_EAUTH);
        free(t);
        free(p);
    }

    /* At most PL_DOMAINS_MAX entries; an empty array and null are fine. */
    for (int count = PL_DOMAINS_MAX; count <= PL_DOMAINS_MAX + 1; count++) {
        char list[1024] = "";
        for (int i = 0; i < count; i++)
            snprintf(list + strlen(list), sizeof list - strlen(list), "%s\"d%d.example\"",
                     i ? "," : "", i);
        p = fmt("{\"sub\":\"u\",\"exp\":%lld,\"domains\":[%s]}", NOW_S + 60, list);
        t = hs_token(p);
        CHECK_EQ_INT(verify(a, t, &id, &why), count <= PL_DOMAINS_MAX ? 0 : PL_EAUTH);
        if (count == PL_DOMAINS_MAX) {
            CHECK_EQ_INT(id.ndomains, PL_DOMAINS_MAX);
            CHECK_EQ_STR(id.domains[15], "d15.example");
        }
        free(t);
        free(p);
    }
    const char *empties[] = {"[]", "null"};
    for (size_t i = 0; i < 2; i++) {
        p = fmt("{\"sub\":\"u\",\"exp\":%lld,\"domains\":%s}", NOW_S + 60, empties[i]);
        t = hs_token(p);
        CHECK_EQ_INT(verify(a, t, &id, &why), 0);
        CHECK_EQ_INT(id.ndomains, 0);
        free(t);
        free(p);
    }
    pl_auth_free(a);
}

/* ---------------------------------------------------------------------------------------- */
/* insecure-dev                                                                             */

static void test_insecure_dev(void)
{
    pl_auth_t *a = auth_with(NULL, NULL, NULL, NULL, true);
    REQUIRE(a);
    CHECK(pl_auth_insecure(a));
    pl_identity_t id;
    const char *why = NULL;

    /* Unsigned, no exp: accepted. */
    char *t =
        make_token("{\"alg\":\"none\"}", "{\"sub\":\"dev\",\"name\":\"Dev\"}", SIGN_NONE, NULL, 0);
    CHECK_EQ_INT(verify(a, t, &id, &why), 0);
    CHECK_EQ_STR(id.user_id, "dev");
    CHECK_EQ_STR(id.name, "Dev");
    CHECK_EQ_INT(id.exp_ms, 0);
    free(t);

    /* The other checks still hold. */
    struct {
        const char *payload;
        int want;
    } cases[] = {
        {"{\"name\":\"Dev\"}", PL_EAUTH},
        {"{\"sub\":\"guest:x\"}", PL_EAUTH},
        {"{\"sub\":\"dev\",\"exp\":1000}", PL_EEXPIRED},
        {"{\"sub\":\"dev\",\"exp\":\"soon\"}", PL_EAUTH},
        {"{\"sub\":\"dev\",\"nbf\":4000000000}", PL_EEXPIRED},
        {"{\"sub\":\"dev\",\"domains\":[\"Dev.Example\"]}", 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        t = make_token("{\"alg\":\"none\",\"typ\":\"JWT\"}", cases[i].payload, SIGN_NONE, NULL, 0);
        CHECK_EQ_INT(verify(a, t, &id, &why), cases[i].want);
        free(t);
    }
    CHECK_EQ_STR(id.domains[0], "dev.example");

    /* Signed tokens are refused: nothing here could check them. So are "none" tokens that
     * carry a signature anyway, and other spellings. */
    char *p = fmt("{\"sub\":\"dev\",\"exp\":%lld}", NOW_S + 60);
    t = hs_token(p);
    CHECK_EQ_INT(verify(a, t, &id, &why), PL_EAUTH);
    free(t);
    t = make_token("{\"alg\":\"RS256\"}", p, SIGN_RS256, rsa_key, 0);
    CHECK_EQ_INT(verify(a, t, &id, &why), PL_EAUTH);
    free(t);
    t = make_token("{\"alg\":\"none\"}", p, SIGN_HS256, SECRET, strlen(SECRET));
    CHECK_EQ_INT(verify(a, t, &id, &why), PL_EAUTH);
    free(t);
    t = make_token("{\"alg\":\"None\"}", p, SIGN_NONE, NULL, 0);
    CHECK_EQ_INT(verify(a, t, &id, &why), PL_EAUTH);
    free(t);
    free(p);
    pl_auth_free(a);
}

/* ---------------------------------------------------------------------------------------- */
/* Configuration                                                                            */

static void test_config(void)
{
    pl_config_t cfg;
    pl_auth_t *a = NULL;
    char err[256];

    memset(&cfg, 0, sizeof cfg);
    CHECK_EQ_INT(pl_auth_new(&cfg, &a, err, sizeof err), PL_ECONFIG);
    CHECK(a == NULL);
    CHECK(strstr(err, "no JWT key") != NULL);

    cfg.jwt_secret = "";
    CHECK_EQ_INT(pl_auth_new(&cfg, &a, err, sizeof err), PL_ECONFIG);

    cfg.jwt_secret = SECRET;
    cfg.jwt_public_key = rsa_pub_path;
    CHECK_EQ_INT(pl_auth_new(&cfg, &a, err, sizeof err), PL_ECONFIG);
    CHECK(strstr(err, "exclusive") != NULL);

    cfg.jwt_secret = NULL;
    cfg.jwt_public_key = "/nonexistent/parley-key.pem";
    CHECK_EQ_INT(pl_auth_new(&cfg, &a, err, sizeof err), PL_ECONFIG);
    CHECK(strstr(err, "jwt_public_key") != NULL);
    CHECK(strstr(err, "/nonexistent/parley-key.pem") != NULL);

    /* A file that is not a public key: garbage, and a private key alone. */
    char path[64];
    write_temp(path, sizeof path, "-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----\n");
    cfg.jwt_public_key = path;
    CHECK_EQ_INT(pl_auth_new(&cfg, &a, err, sizeof err), PL_ECONFIG);
    unlink(path);
    BIO *mem = BIO_new(BIO_s_mem());
    PEM_write_bio_PrivateKey(mem, ec_key, NULL, NULL, 0, NULL, NULL);
    char *priv = NULL;
    long n = BIO_get_mem_data(mem, &priv);
    char *priv_s = strndup(priv, (size_t)n);
    BIO_free(mem);
    write_temp(path, sizeof path, priv_s);
    free(priv_s);
    CHECK_EQ_INT(pl_auth_new(&cfg, &a, err, sizeof err), PL_ECONFIG);
    unlink(path);

    /* Key kinds we do not take. */
    EVP_PKEY *weak = EVP_RSA_gen(1024);
    EVP_PKEY *p384 = EVP_EC_gen("P-384");
    EVP_PKEY *ed = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    REQUIRE(weak && p384 && ed);
    CHECK_EQ_INT(auth_for_key(weak, err, sizeof err), PL_ECONFIG);
    CHECK(strstr(err, "1024") != NULL);
    CHECK_EQ_INT(auth_for_key(p384, err, sizeof err), PL_ECONFIG);
    CHECK(strstr(err, "P-256") != NULL);
    CHECK_EQ_INT(auth_for_key(ed, err, sizeof err), PL_ECONFIG);
    CHECK_EQ_INT(auth_for_key(rsa_key, err, sizeof err), 0);
    CHECK_EQ_INT(auth_for_key(ec_key, err, sizeof err), 0);
    EVP_PKEY_free(weak);
    EVP_PKEY_free(p384);
    EVP_PKEY_free(ed);

    /* Arguments. */
    CHECK_EQ_INT(pl_auth_new(NULL, &a, err, sizeof err), PL_EINVAL);
    pl_auth_free(NULL);
    CHECK(!pl_auth_insecure(NULL));
}

/* ---------------------------------------------------------------------------------------- */
/* Guests                                                                                   */

static void test_guest(void)
{
    pl_identity_t g1, g2;
    CHECK_EQ_INT(pl_auth_guest(&g1), 0);
    CHECK_EQ_INT(pl_auth_guest(&g2), 0);
    CHECK(g1.guest && g2.guest);
    CHECK_EQ_INT(strlen(g1.user_id), 6 + 16);
    CHECK(strncmp(g1.user_id, "guest:", 6) == 0);
    CHECK(strcmp(g1.user_id, g2.user_id) != 0);
    CHECK_EQ_INT(strlen(g1.name), 6 + 4);
    CHECK(strncmp(g1.name, "guest-", 6) == 0);
    for (const char *c = g1.user_id + 6; *c; c++)
        CHECK(strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", *c));
    CHECK_EQ_INT(g1.ndomains, 0);
    CHECK_EQ_INT(pl_auth_guest(NULL), PL_EINVAL);
}

/* ---------------------------------------------------------------------------------------- */
/* Signaling tokens                                                                         */

static void sig_claims(pl_sigtoken_t *c, int64_t exp_ms)
{
    memset(c, 0, sizeof *c);
    pl_id_new(c->room_id);
    pl_id_new(c->peer_id);
    strcpy(c->user_id, "user-\xc3\xa9");
    strcpy(c->name, "Alice");
    c->exp_ms = exp_ms;
}

static void test_signaling_roundtrip(void)
{
    pl_auth_t *a = auth_with(SECRET, NULL, NULL, NULL, false);
    REQUIRE(a);
    unsigned char key[32];
    memset(key, 0x5a, sizeof key);
    CHECK_EQ_INT(pl_auth_set_signing_key(a, key, sizeof key), 0);

    pl_sigtoken_t c, got;
    sig_claims(&c, (NOW_S + 300) * 1000);
    char tok[PL_TOKEN_MAX];
    long n = pl_auth_sign_signaling(a, &c, tok, sizeof tok);
    REQUIRE(n > 0);
    CHECK_EQ_INT(strlen(tok), n);
    CHECK_EQ_INT(pl_auth_verify_signaling(a, tok, (size_t)n, NOW_MS, &got), 0);
    CHECK_EQ_STR(got.room_id, c.room_id);
    CHECK_EQ_STR(got.peer_id, c.peer_id);
    CHECK_EQ_STR(got.user_id, c.user_id);
    CHECK_EQ_STR(got.name, c.name);
    CHECK_EQ_INT(got.exp_ms, c.exp_ms);

    /* The format, checked independently: header, claims and an HMAC under our key. */
    char *dot1 = strchr(tok, '.'), *dot2 = strrchr(tok, '.');
    unsigned char buf[1024];
    size_t m = unb64url(tok, (size_t)(dot1 - tok), buf, sizeof buf);
    CHECK(m == strlen("{\"alg\":\"HS256\",\"typ\":\"parley-signaling\"}") &&
          memcmp(buf, "{\"alg\":\"HS256\",\"typ\":\"parley-signaling\"}", m) == 0);
    m = unb64url(dot1 + 1, (size_t)(dot2 - dot1 - 1), buf, sizeof buf - 1);
    buf[m] = '\0';
    char *want = fmt("\"rid\":\"%s\",\"pid\":\"%s\"", c.room_id, c.peer_id);
    CHECK(strstr((char *)buf, want) != NULL);
    CHECK(strstr((char *)buf, "\"exp\":1700000300") != NULL);
    CHECK(strstr((char *)buf, "\"iat\":") != NULL);
    free(want);
    unsigned char mac[32], sig[64];
    unsigned int ml = 0;
    HMAC(EVP_sha256(), key, sizeof key, (unsigned char *)tok, (size_t)(dot2 - tok), mac, &ml);
    CHECK_EQ_INT(unb64url(dot2 + 1, strlen(dot2 + 1), sig, sizeof sig), 32);
    CHECK(memcmp(mac, sig, 32) == 0);

    /* Another node with the same key accepts it; one with its own random key does not. */
    pl_auth_t *b = auth_with(NULL, rsa_pub_path, NULL, NULL, false);
    REQUIRE(b);
    CHECK_EQ_INT(pl_auth_verify_signaling(b, tok, (size_t)n, NOW_MS, &got), PL_EAUTH);
    CHECK_EQ_STR(got.room_id, "");
    CHECK_EQ_INT(pl_auth_set_signing_key(b, key, sizeof key), 0);
    CHECK_EQ_INT(pl_auth_verify_signaling(b, tok, (size_t)n, NOW_MS, &got), 0);
    unsigned char other[48];
    memset(other, 0x5b, sizeof other);
    CHECK_EQ_INT(pl_auth_set_signing_key(b, other, sizeof other), 0);
    CHECK_EQ_INT(pl_auth_verify_signaling(b, tok, (size_t)n, NOW_MS, &got), PL_EAUTH);
    pl_auth_free(b);

    /* The key is derived from the JWT secret: two instances (nodes, or one node before and
     * after a restart) with the same secret agree; with another secret they do not. */
    pl_auth_t *c1 = auth_with(SECRET, NULL, NULL, NULL, false);
    pl_auth_t *c2 = auth_with(SECRET, NULL, NULL, NULL, false);
    pl_auth_t *c3 =
        auth_with("another-secret-of-at-least-32-bytes-0123456789", NULL, NULL, NULL, false);
    REQUIRE(c1 && c2 && c3);
    n = pl_auth_sign_signaling(c1, &c, tok, sizeof tok);
    REQUIRE(n > 0);
    CHECK_EQ_INT(pl_auth_verify_signaling(c1, tok, (size_t)n, NOW_MS, &got), 0);
    CHECK_EQ_INT(pl_auth_verify_signaling(c2, tok, (size_t)n, NOW_MS, &got), 0);
    CHECK_EQ_INT(pl_auth_verify_signaling(c3, tok, (size_t)n, NOW_MS, &got), PL_EAUTH);
    pl_auth_free(c1);
    pl_auth_free(c2);
    pl_auth_free(c3);

    /* Signing key bounds. */
    CHECK_EQ_INT(pl_auth_set_signing_key(a, key, 16), PL_EINVAL);
    CHECK_EQ_INT(pl_auth_set_signing_key(a, key, 65), PL_EINVAL);
    CHECK_EQ_INT(pl_auth_set_signing_key(a, NULL, 32), PL_EINVAL);
    pl_auth_free(a);
}

static void test_signaling_expiry(void)
{
    pl_auth_t *a = auth_with(SECRET, NULL, NULL, NULL, false);
    REQUIRE(a);
    pl_sigtoken_t c, got;
    char tok[PL_TOKEN_MAX];
    struct {
        int64_t exp_ms;
        int want;
    } cases[] = {
        {NOW_MS + 60000, 0},          {NOW_MS, 0}, /* a few seconds of skew are absorbed */
        {NOW_MS - 4000, 0},                        /* still within 5 s */
        {NOW_MS - 5000, PL_EEXPIRED}, {NOW_MS - 3600000, PL_EEXPIRED},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        sig_claims(&c, cases[i].exp_ms);
        long n = pl_auth_sign_signaling(a, &c, tok, sizeof tok);
        REQUIRE(n > 0);
        CHECK_EQ_INT(pl_auth_verify_signaling(a, tok, (size_t)n, NOW_MS, &got), cases[i].want);
    }
    pl_auth_free(a);
}

static void test_signaling_tampered(void)
{
    pl_auth_t *a = auth_with(SECRET, NULL, NULL, NULL, false);
    REQUIRE(a);
    unsigned char key[32];
    memset(key, 0x11, sizeof key);
    CHECK_EQ_INT(pl_auth_set_signing_key(a, key, sizeof key), 0);
    pl_sigtoken_t c, got;
    sig_claims(&c, (NOW_S + 300) * 1000);
    char tok[PL_TOKEN_MAX];
    long n = pl_auth_sign_signaling(a, &c, tok, sizeof tok);
    REQUIRE(n > 0);
    char *dot1 = strchr(tok, '.'), *dot2 = strrchr(tok, '.');

    /* Payload for another room, signature kept. */
    char *p = fmt("{\"rid\":\"%s\",\"pid\":\"%s\",\"sub\":\"x\",\"name\":\"x\",\"exp\":%lld}",
                  "AAAAAAAAAAAAAAAAAAAAAA", c.peer_id, NOW_S + 300);
    char pb[512];
    b64url(p, strlen(p), pb, sizeof pb);
    char *t = fmt("%.*s.%s%s", (int)(dot1 - tok), tok, pb, dot2);
    CHECK_EQ_INT(pl_auth_verify_signaling(a, t, strlen(t), NOW_MS, &got), PL_EAUTH);
    free(t);

    /* The same payload properly signed with our key but with a hand-made header that
     * differs (typ JWT, alg none, extra member) is refused. */
    const char *headers[] = {"{\"alg\":\"HS256\",\"typ\":\"JWT\"}", "{\"alg\":\"HS256\"}",
                             "{\"alg\":\"none\",\"typ\":\"parley-signaling\"}",
                             "{\"alg\":\"HS256\",\"typ\":\"parley-signaling\",\"kid\":\"x\"}",
                             "{\"alg\":\"HS256\",\"typ\":\"Parley-Signaling\"}"};
    for (size_t i = 0; i < sizeof headers / sizeof headers[0]; i++) {
        t = make_token(headers[i], p, SIGN_HS256, key, sizeof key);
        CHECK_EQ_INT(pl_auth_verify_signaling(a, t, strlen(t), NOW_MS, &got), PL_EAUTH);
        free(t);
    }
    /* ... while the exact header with our key is accepted: the test signer is right. */
    t = make_token("{\"alg\":\"HS256\",\"typ\":\"parley-signaling\"}", p, SIGN_HS256, key,
                   sizeof key);
    CHECK_EQ_INT(pl_auth_verify_signaling(a, t, strlen(t), NOW_MS, &got), 0);
    free(t);
    free(p);

    /* Signed by us but with bad claims: ids that are not ids, missing fields. */
    const char *payloads[] = {
        "{\"rid\":\"../../../../etc/"
        "passwd\",\"pid\":\"AAAAAAAAAAAAAAAAAAAAAA\",\"sub\":\"x\",\"name\":\"\","
        "\"exp\":1800000000}",
        "{\"rid\":\"AAAAAAAAAAAAAAAAAAAAAA\",\"pid\":\"AAAAAAAAAAAAAAAAAAAAA\",\"sub\":\"x\","
        "\"name\":\"\",\"exp\":1800000000}",
        "{\"rid\":\"AAAAAAAAAAAAAAAAAAAAAA\",\"pid\":\"AAAAAAAAAAAAAAAAAAAAAA\",\"sub\":\"\","
        "\"name\":\"\",\"exp\":1800000000}",
        "{\"rid\":\"AAAAAAAAAAAAAAAAAAAAAA\",\"pid\":\"AAAAAAAAAAAAAAAAAAAAAA\",\"sub\":\"x\","
        "\"name\":\"\"}",
        "{\"rid\":\"AAAAAAAAAAAAAAAAAAAAAA\",\"pid\":\"AAAAAAAAAAAAAAAAAAAAAA\",\"sub\":\"x\","
        "\"name\":\"\",\"exp\":\"1800000000\"}",
        "{\"rid\":\"AAAAAAAAAAAAAAAAAAAAAA\",\"pid\":\"AAAAAAAAAAAAAAAAAAAAAA\",\"sub\":\"x\","
        "\"exp\":1800000000}",
    };
    for (size_t i = 0; i < sizeof payloads / sizeof payloads[0]; i++) {
        t = make_token("{\"alg\":\"HS256\",\"typ\":\"parley-signaling\"}", payloads[i], SIGN_HS256,
                       key, sizeof key);
        CHECK_EQ_INT(pl_auth_verify_signaling(a, t, strlen(t), NOW_MS, &got), PL_EAUTH);
        free(t);
    }

    /* Signature flipped, truncated, missing; garbage. */
    t = strdup(tok);
    char *s = strrchr(t, '.') + 1;
    s[0] = s[0] == 'A' ? 'B' : 'A';
    CHECK_EQ_INT(pl_auth_verify_signaling(a, t, strlen(t), NOW_MS, &got), PL_EAUTH);
    s[0] = '\0';
    CHECK_EQ_INT(pl_auth_verify_signaling(a, t, strlen(t), NOW_MS, &got), PL_EAUTH);
    free(t);
    CHECK_EQ_INT(pl_auth_verify_signaling(a, tok, (size_t)n - 1, NOW_MS, &got), PL_EAUTH);
    const char *garbage[] = {"", "a", "a.b", "a.b.c.d", "...", "e30.e30.e30"};
    for (size_t i = 0; i < sizeof garbage / sizeof garbage[0]; i++)
        CHECK_EQ_INT(pl_auth_verify_signaling(a, garbage[i], strlen(garbage[i]), NOW_MS, &got),
                     PL_EAUTH);
    CHECK_EQ_INT(pl_auth_verify_signaling(a, NULL, 0, NOW_MS, &got), PL_EAUTH);
    CHECK_EQ_INT(pl_auth_verify_signaling(a, tok, PL_TOKEN_MAX + 1, NOW_MS, &got), PL_EAUTH);

    /* Sign: bad claims and short buffers. */
    sig_claims(&c, (NOW_S + 300) * 1000);
    strcpy(c.room_id, "short");
    CHECK(pl_auth_sign_signaling(a, &c, tok, sizeof tok) < 0);
    sig_claims(&c, (NOW_S + 300) * 1000);
    c.user_id[0] = '\0';
    CHECK(pl_auth_sign_signaling(a, &c, tok, sizeof tok) < 0);
    sig_claims(&c, (NOW_S + 300) * 1000);
    strcpy(c.name, "a\nb");
    CHECK(pl_auth_sign_signaling(a, &c, tok, sizeof tok) < 0);
    sig_claims(&c, 0);
    CHECK(pl_auth_sign_signaling(a, &c, tok, sizeof tok) < 0);
    sig_claims(&c, (NOW_S + 300) * 1000);
    CHECK(pl_auth_sign_signaling(a, &c, tok, 40) < 0);
    /* The longest claims, every byte doubled by JSON escaping, still fit in 1 KiB. */
    memset(c.user_id, '"', PL_USER_ID_MAX);
    c.user_id[PL_USER_ID_MAX] = '\0';
    memset(c.name, '\\', PL_NAME_MAX);
    c.name[PL_NAME_MAX] = '\0';
    n = pl_auth_sign_signaling(a, &c, tok, 1024);
    CHECK(n > 0 && n < 1024);
    /* Exactly n + 1 bytes (the NUL) is enough; n is not. */
    CHECK_EQ_INT(pl_auth_sign_signaling(a, &c, tok, (size_t)n + 1), n);
    CHECK(pl_auth_sign_signaling(a, &c, tok, (size_t)n) < 0);
    CHECK_EQ_INT(pl_auth_sign_signaling(a, &c, tok, 1024), n);
    CHECK_EQ_INT(pl_auth_verify_signaling(a, tok, (size_t)n, NOW_MS, &got), 0);
    CHECK_EQ_STR(got.user_id, c.user_id);
    pl_auth_free(a);
}

/* The two kinds of token never stand in for each other, even when (by misconfiguration) the
 * user-token secret and the signaling key are the same bytes. */
static void test_token_kinds_separate(void)
{
    pl_auth_t *a = auth_with(SECRET, NULL, NULL, NULL, false);
    REQUIRE(a);
    pl_sigtoken_t c, got;
    pl_identity_t id;
    char tok[PL_TOKEN_MAX];
    sig_claims(&c, (NOW_S + 300) * 1000);

    for (int same_key = 0; same_key < 2; same_key++) {
        if (same_key)
            CHECK_EQ_INT(pl_auth_set_signing_key(a, (const unsigned char *)SECRET, strlen(SECRET)),
                         0);
        long n = pl_auth_sign_signaling(a, &c, tok, sizeof tok);
        REQUIRE(n > 0);
        const char *why = NULL;
        CHECK_EQ_INT(pl_auth_verify_user(a, tok, (size_t)n, NOW_MS, &id, &why), PL_EAUTH);

        /* A user token, even one carrying rid/pid claims. */
        char *p = fmt("{\"rid\":\"%s\",\"pid\":\"%s\",\"sub\":\"u\",\"name\":\"u\","
                      "\"exp\":%lld}",
                      c.room_id, c.peer_id, NOW_S + 300);
        char *t = hs_token(p);
        CHECK_EQ_INT(verify(a, t, &id, NULL), 0);
        CHECK_EQ_INT(pl_auth_verify_signaling(a, t, strlen(t), NOW_MS, &got), PL_EAUTH);
        free(t);
        free(p);
    }
    /* In insecure-dev too. */
    pl_auth_t *dev = auth_with(NULL, NULL, NULL, NULL, true);
    REQUIRE(dev);
    long n = pl_auth_sign_signaling(dev, &c, tok, sizeof tok);
    REQUIRE(n > 0);
    CHECK_EQ_INT(pl_auth_verify_user(dev, tok, (size_t)n, NOW_MS, &id, NULL), PL_EAUTH);
    CHECK_EQ_INT(pl_auth_verify_signaling(dev, tok, (size_t)n, NOW_MS, &got), 0);
    char *t = make_token("{\"alg\":\"none\"}", "{\"sub\":\"u\"}", SIGN_NONE, NULL, 0);
    CHECK_EQ_INT(pl_auth_verify_signaling(dev, t, strlen(t), NOW_MS, &got), PL_EAUTH);
    free(t);
    pl_auth_free(dev);
    pl_auth_free(a);
}

/* ---------------------------------------------------------------------------------------- */

static X509 *self_signed(EVP_PKEY *k)
{
    X509 *x = X509_new();
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), 0);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    X509_set_pubkey(x, k);
    X509_NAME *name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"idp", -1, -1, 0);
    X509_set_issuer_name(x, name);
    X509_sign(x, k, EVP_sha256());
    return x;
}

int main(void)
{
    rsa_key = EVP_RSA_gen(2048);
    ec_key = EVP_EC_gen("P-256");
    if (!rsa_key || !ec_key) {
        fprintf(stderr, "key generation failed\n");
        return 1;
    }
    rsa_pub_pem = pubkey_pem(rsa_key);
    write_temp(rsa_pub_path, sizeof rsa_pub_path, rsa_pub_pem);
    char *ec_pem = pubkey_pem(ec_key);
    write_temp(ec_pub_path, sizeof ec_pub_path, ec_pem);
    free(ec_pem);
    X509 *cert = self_signed(ec_key);
    BIO *mem = BIO_new(BIO_s_mem());
    PEM_write_bio_X509(mem, cert);
    char *cp = NULL;
    long cn = BIO_get_mem_data(mem, &cp);
    char *cert_pem = strndup(cp, (size_t)cn);
    write_temp(ec_cert_path, sizeof ec_cert_path, cert_pem);
    free(cert_pem);
    BIO_free(mem);
    X509_free(cert);

    RUN(test_hs256_valid);
    RUN(test_rs256_valid);
    RUN(test_es256_valid);
    RUN(test_exp_nbf);
    RUN(test_iss_aud);
    RUN(test_alg_none_refused);
    RUN(test_alg_confusion);
    RUN(test_header_fields);
    RUN(test_tampered);
    RUN(test_garbage);
    RUN(test_sub_name);
    RUN(test_domains);
    RUN(test_insecure_dev);
    RUN(test_config);
    RUN(test_guest);
    RUN(test_signaling_roundtrip);
    RUN(test_signaling_expiry);
    RUN(test_signaling_tampered);
    RUN(test_token_kinds_separate);

    unlink(rsa_pub_path);
    unlink(ec_pub_path);
    unlink(ec_cert_path);
    free(rsa_pub_pem);
    EVP_PKEY_free(rsa_key);
    EVP_PKEY_free(ec_key);
    TEST_MAIN();
}
