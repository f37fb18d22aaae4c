/* Identity (DESIGN section 3): user JWTs and the signaling tokens parleyd signs itself.
 *
 * User tokens. The key family is fixed when the server starts: a secret pins HS256, an RSA
 * public key RS256, a P-256 public key ES256. libjwt 1.10 would accept whatever `alg` the
 * token names (including `none`, and HS256 keyed with the text of our public key), so we
 * split and parse the token ourselves first and hand it to libjwt only when the header
 * names exactly the pinned algorithm; libjwt then checks the signature (its HMAC compare
 * is constant time in Debian's 1.10.2+deb12u1, CVE-2024-25189). The claims are read from
 * the payload we parsed, with duplicate members refused so no two parsers can disagree on
 * what the token says.
 *
 * Signaling tokens are HS256 JWTs under a key only the server holds, with a `typ` user
 * tokens never carry; they are minted and checked with OpenSSL's HMAC directly. */
#include "auth/auth.h"
#include "common/json.h"

#include "common/clock.h"
#include "common/error.h"
#include "common/ids.h"

#include <errno.h>
#include <jansson.h>
#include <jwt.h>
#include <limits.h>
#include <math.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Signaling tokens are minted and checked by parleyd nodes whose clocks agree to within a
 * few seconds; their lifetime is the caller's choice, so only skew needs absorbing. */
#define SIG_TYP     "parley-signaling"
#define SIG_KEY_MIN 32
#define SIG_KEY_MAX 64
#define HS256_LEN   32
/* 9999-12-31T23:59:59Z: any later NumericDate is nonsense, and the bound keeps the
 * conversion to milliseconds far from int64 overflow. */
#define NUMERIC_DATE_MAX 253402300799LL
#define GUEST_PREFIX     "guest:"
#define HOSTNAME_MAX     253
#define LABEL_MAX        63

typedef enum {
    ALG_NONE_DEV, /* --insecure-dev without a key: unsigned tokens only */
    ALG_HS256,
    ALG_RS256,
    ALG_ES256,
} pl_alg_t;

struct pl_auth {
    pl_alg_t alg;
    /* HS256: the secret. RS256/ES256: the public key re-encoded as SubjectPublicKeyInfo PEM
     * (NUL-terminated), which is the one form libjwt reads. */
    unsigned char *key;
    size_t key_len;
    char *issuer;   /* NULL when not required */
    char *audience; /* NULL when not required */
    unsigned char sig_key[SIG_KEY_MAX];
    size_t sig_key_len;
    /* HMAC-SHA256 with the signaling key, precomputed: SHA-256 states that have absorbed
     * the key XOR ipad and XOR opad blocks, copied for each token. OpenSSL 3's one-shot
     * HMAC() looks the algorithm up and expands the key on every call, which made it a
     * fifth of a heartbeat's cost. */
    EVP_MD_CTX *sig_inner;
    EVP_MD_CTX *sig_outer;
    EVP_MD_CTX *sig_scratch;
    char sig_header[64]; /* base64url of the constant signaling-token header */
    size_t sig_header_len;
};

/* A compact JWS split at its two dots. */
typedef struct {
    const char *seg[3];
    size_t len[3];
} jws_t;

static void set_err(char *err, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static char *dup_nonempty(const char *s);
static int load_public_key(pl_auth_t *a, const char *path, char *err, size_t cap);
static const char *alg_name(pl_alg_t alg);
static bool jws_split(const char *tok, size_t len, jws_t *out);
static json_t *jws_json(const char *seg, size_t len);
static bool json_str_eq(const json_t *v, const char *s);
static bool text_ok(const char *s, size_t n);
static bool get_text(const json_t *v, size_t min, size_t max, char *out, size_t cap);
static void copy_utf8_prefix(char *dst, size_t cap, const char *src, size_t n);
static bool numeric_date(const json_t *v, int64_t *ms);
static bool aud_ok(const json_t *aud, const char *want);
static bool hostname_norm(const char *s, size_t n, char out[PL_DOMAIN_SIZE]);
static bool parse_domains(const json_t *v, pl_identity_t *out);
static int check_user_header(const pl_auth_t *a, const json_t *hdr, const jws_t *jws,
                             const char **why);
static int verify_user_signature(const pl_auth_t *a, const char *token, size_t len);
static int check_user_claims(const pl_auth_t *a, const json_t *claims, int64_t now_ms,
                             pl_identity_t *out, const char **why);
static int sig_key_prepare(pl_auth_t *a);
static bool sig_hmac(pl_auth_t *a, const char *data, size_t n, unsigned char mac[HS256_LEN]);

/* ---------------------------------------------------------------------------------------- */
/* Setup                                                                                    */

int pl_auth_new(const pl_config_t *cfg, pl_auth_t **out, char *err, size_t cap)
{
    static const char sig_header_json[] = "{\"alg\":\"HS256\",\"typ\":\"" SIG_TYP "\"}";
    pl_auth_t *a = NULL;
    int rc = PL_ECONFIG;

    if (err && cap)
        err[0] = '\0';
    if (!cfg || !out)
        return PL_EINVAL;
    *out = NULL;

    /* An empty value is treated as unset: an accidentally empty PARLEY_JWT_SECRET must not
     * become a key anyone can sign with. */
    bool has_secret = cfg->jwt_secret && cfg->jwt_secret[0];
    bool has_public = cfg->jwt_public_key && cfg->jwt_public_key[0];
    if (has_secret && has_public) {
        set_err(err, cap, "jwt_secret and jwt_public_key are exclusive: configure one key");
        return PL_ECONFIG;
    }
    if (!has_secret && !has_public && !cfg->insecure_dev) {
        set_err(err, cap,
                "no JWT key configured: set jwt_secret or jwt_public_key "
                "(or run with --insecure-dev)");
        return PL_ECONFIG;
    }

    a = calloc(1, sizeof *a);
    if (!a) {
        rc = PL_ENOMEM;
        goto fail;
    }
    if (has_secret) {
        size_t n = strlen(cfg->jwt_secret);
        if (n > INT_MAX) { /* libjwt takes the key length as an int */
            set_err(err, cap, "jwt_secret is too long");
            goto fail;
        }
        a->key = malloc(n);
        if (!a->key) {
            rc = PL_ENOMEM;
            goto fail;
        }
        memcpy(a->key, cfg->jwt_secret, n);
        a->key_len = n;
        a->alg = ALG_HS256;
    } else if (has_public) {
        rc = load_public_key(a, cfg->jwt_public_key, err, cap);
        if (rc)
            goto fail;
    } else {
        a->alg = ALG_NONE_DEV;
    }

    a->issuer = dup_nonempty(cfg->jwt_issuer);
    a->audience = dup_nonempty(cfg->jwt_audience);
    if ((cfg->jwt_issuer && cfg->jwt_issuer[0] && !a->issuer) ||
        (cfg->jwt_audience && cfg->jwt_audience[0] && !a->audience)) {
        rc = PL_ENOMEM;
        goto fail;
    }

    if (has_secret) {
        /* Derived from the shared secret, so every node configured alike accepts the same
         * signaling tokens and a restart does not void them. The label separates this key
         * from the user-token key: knowing one signature never helps forge the other. */
        static const char label[] = "parley/signaling-token-key/v1";
        unsigned int len = 0;
        if (!HMAC(EVP_sha256(), cfg->jwt_secret, (int)strlen(cfg->jwt_secret),
                  (const unsigned char *)label, sizeof label - 1, a->sig_key, &len) ||
            len != HS256_LEN) {
            set_err(err, cap, "cannot derive the signaling key");
            rc = PL_ECONFIG;
            goto fail;
        }
    } else {
        /* A public key is public: nothing secret to derive from. The key is random per
         * process until the store shares one across nodes (pl_auth_set_signing_key). */
        rc = pl_random_bytes(a->sig_key, HS256_LEN);
        if (rc) {
            set_err(err, cap, "cannot read random bytes for the signaling key");
            rc = PL_ECONFIG;
            goto fail;
        }
    }
    a->sig_key_len = HS256_LEN;
    if (sig_key_prepare(a) != 0) {
        set_err(err, cap, "cannot set up HMAC-SHA256");
        rc = PL_ECONFIG;
        goto fail;
    }

    long hl = pl_b64url_encode(sig_header_json, sizeof sig_header_json - 1, a->sig_header,
                               sizeof a->sig_header);
    if (hl < 0) {
        rc = PL_EINVAL;
        goto fail;
    }
    a->sig_header_len = (size_t)hl;

    *out = a;
    return 0;

fail:
    if (rc == PL_ENOMEM)
        set_err(err, cap, "out of memory");
    pl_auth_free(a);
    return rc;
}

void pl_auth_free(pl_auth_t *a)
{
    if (!a)
        return;
    if (a->key) {
        OPENSSL_cleanse(a->key, a->key_len);
        free(a->key);
    }
    free(a->issuer);
    free(a->audience);
    OPENSSL_cleanse(a->sig_key, sizeof a->sig_key);
    EVP_MD_CTX_free(a->sig_inner);
    EVP_MD_CTX_free(a->sig_outer);
    EVP_MD_CTX_free(a->sig_scratch);
    free(a);
}

int pl_auth_set_signing_key(pl_auth_t *a, const unsigned char *key, size_t len)
{
    /* Shorter than the HMAC output would weaken the tokens; longer than the SHA-256 block
     * would only be hashed down again. */
    if (!a || !key || len < SIG_KEY_MIN || len > SIG_KEY_MAX)
        return PL_EINVAL;
    unsigned char prev[SIG_KEY_MAX];
    size_t prev_len = a->sig_key_len;
    memcpy(prev, a->sig_key, sizeof prev);
    OPENSSL_cleanse(a->sig_key, sizeof a->sig_key);
    memcpy(a->sig_key, key, len);
    a->sig_key_len = len;
    int rc = 0;
    if (sig_key_prepare(a) != 0) {
        /* Keep the old key whole rather than a key and states that disagree. */
        memcpy(a->sig_key, prev, sizeof prev);
        a->sig_key_len = prev_len;
        (void)sig_key_prepare(a);
        rc = PL_ENOMEM;
    }
    OPENSSL_cleanse(prev, sizeof prev);
    return rc;
}

/* Absorbs the signaling key's ipad and opad blocks into the two saved SHA-256 states
 * (RFC 2104; the key is at most one block, SIG_KEY_MAX <= 64). */
static int sig_key_prepare(pl_auth_t *a)
{
    unsigned char ipad[64], opad[64];
    if (a->sig_key_len > sizeof ipad)
        return -1;
    if (!a->sig_inner)
        a->sig_inner = EVP_MD_CTX_new();
    if (!a->sig_outer)
        a->sig_outer = EVP_MD_CTX_new();
    if (!a->sig_scratch)
        a->sig_scratch = EVP_MD_CTX_new();
    if (!a->sig_inner || !a->sig_outer || !a->sig_scratch)
        return -1;
    memset(ipad, 0x36, sizeof ipad);
    memset(opad, 0x5c, sizeof opad);
    for (size_t i = 0; i < a->sig_key_len; i++) {
        ipad[i] ^= a->sig_key[i];
        opad[i] ^= a->sig_key[i];
    }
    int ok = EVP_DigestInit_ex(a->sig_inner, EVP_sha256(), NULL) &&
             EVP_DigestUpdate(a->sig_inner, ipad, sizeof ipad) &&
             EVP_DigestInit_ex(a->sig_outer, EVP_sha256(), NULL) &&
             EVP_DigestUpdate(a->sig_outer, opad, sizeof opad);
    OPENSSL_cleanse(ipad, sizeof ipad);
    OPENSSL_cleanse(opad, sizeof opad);
    if (!ok) {
        ERR_clear_error();
        return -1;
    }
    return 0;
}

/* HMAC-SHA256 of data with the signaling key, from the precomputed states. */
static bool sig_hmac(pl_auth_t *a, const char *data, size_t n, unsigned char mac[HS256_LEN])
{
    unsigned char inner[HS256_LEN];
    unsigned int len = 0;
    EVP_MD_CTX *c = a->sig_scratch;
    bool ok = EVP_MD_CTX_copy_ex(c, a->sig_inner) && EVP_DigestUpdate(c, data, n) &&
              EVP_DigestFinal_ex(c, inner, &len) && len == HS256_LEN &&
              EVP_MD_CTX_copy_ex(c, a->sig_outer) && EVP_DigestUpdate(c, inner, sizeof inner) &&
              EVP_DigestFinal_ex(c, mac, &len) && len == HS256_LEN;
    if (!ok)
        ERR_clear_error();
    return ok;
}

bool pl_auth_insecure(const pl_auth_t *a)
{
    return a && a->alg == ALG_NONE_DEV;
}

static void set_err(char *err, size_t cap, const char *fmt, ...)
{
    if (!err || !cap)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, cap, fmt, ap);
    va_end(ap);
}

static char *dup_nonempty(const char *s)
{
    return s && s[0] ? strdup(s) : NULL;
}

static const char *alg_name(pl_alg_t alg)
{
    switch (alg) {
    case ALG_HS256:
        return "HS256";
    case ALG_RS256:
        return "RS256";
    case ALG_ES256:
        return "ES256";
    case ALG_NONE_DEV:
        break;
    }
    return "none";
}

/* Reads the PEM at path (a public key, or a certificate whose key is taken), decides the
 * algorithm from the key type, and keeps the key as SubjectPublicKeyInfo PEM for libjwt. */
static int load_public_key(pl_auth_t *a, const char *path, char *err, size_t cap)
{
    BIO *in = NULL, *mem = NULL;
    EVP_PKEY *pkey = NULL;
    X509 *cert = NULL;
    int rc = PL_ECONFIG;

    errno = 0;
    in = BIO_new_file(path, "r");
    if (!in) {
        set_err(err, cap, "jwt_public_key %s: cannot open: %s", path,
                errno ? strerror(errno) : "unknown error");
        goto done;
    }
    pkey = PEM_read_bio_PUBKEY(in, NULL, NULL, NULL);
    if (!pkey && BIO_seek(in, 0) == 0) {
        ERR_clear_error();
        cert = PEM_read_bio_X509(in, NULL, NULL, NULL);
        if (cert)
            pkey = X509_get_pubkey(cert);
    }
    if (!pkey) {
        set_err(err, cap,
                "jwt_public_key %s: no PEM public key (BEGIN PUBLIC KEY) or certificate found",
                path);
        goto done;
    }

    int type = EVP_PKEY_get_base_id(pkey);
    if (type == EVP_PKEY_RSA) {
        int bits = EVP_PKEY_get_bits(pkey);
        if (bits < 2048) {
            set_err(err, cap, "jwt_public_key %s: RSA key of %d bits is too short (minimum 2048)",
                    path, bits);
            goto done;
        }
        a->alg = ALG_RS256;
    } else if (type == EVP_PKEY_EC) {
        char group[80] = "";
        size_t glen = 0;
        if (!EVP_PKEY_get_group_name(pkey, group, sizeof group, &glen) ||
            OBJ_txt2nid(group) != NID_X9_62_prime256v1) {
            set_err(err, cap,
                    "jwt_public_key %s: EC key on curve %s: only P-256 (ES256) is "
                    "supported",
                    path, group[0] ? group : "(unknown)");
            goto done;
        }
        a->alg = ALG_ES256;
    } else {
        const char *name = EVP_PKEY_get0_type_name(pkey);
        set_err(err, cap,
                "jwt_public_key %s: %s keys are not supported (RSA >= 2048 bits for "
                "RS256, EC P-256 for ES256)",
                path, name ? name : "this kind of");
        goto done;
    }

    mem = BIO_new(BIO_s_mem());
    char *pem = NULL;
    long n;
    if (!mem || !PEM_write_bio_PUBKEY(mem, pkey) || (n = BIO_get_mem_data(mem, &pem)) <= 0 ||
        n > INT_MAX) {
        set_err(err, cap, "jwt_public_key %s: cannot re-encode the key", path);
        goto done;
    }
    a->key = malloc((size_t)n + 1);
    if (!a->key) {
        rc = PL_ENOMEM;
        goto done;
    }
    memcpy(a->key, pem, (size_t)n);
    a->key[n] = '\0';
    a->key_len = (size_t)n;
    rc = 0;

done:
    ERR_clear_error();
    BIO_free(mem);
    X509_free(cert);
    EVP_PKEY_free(pkey);
    BIO_free(in);
    return rc;
}

/* ---------------------------------------------------------------------------------------- */
/* User tokens                                                                              */

int pl_auth_verify_user(pl_auth_t *a, const char *token, size_t len, int64_t now_ms,
                        pl_identity_t *out, const char **why)
{
    const char *reason = "invalid argument";
    json_t *hdr = NULL, *claims = NULL;
    jws_t jws;
    int rc = PL_EAUTH;

    if (out)
        memset(out, 0, sizeof *out);
    if (!a || !out) {
        rc = PL_EINVAL;
        goto done;
    }
    if (!token || len == 0) {
        reason = "empty token";
        goto done;
    }
    if (len > PL_TOKEN_MAX) {
        reason = "token too long";
        goto done;
    }
    if (!jws_split(token, len, &jws)) {
        reason = "malformed token (expected three base64url segments)";
        goto done;
    }
    hdr = jws_json(jws.seg[0], jws.len[0]);
    if (!hdr) {
        reason = "malformed header";
        goto done;
    }
    if (check_user_header(a, hdr, &jws, &reason))
        goto done;
    if (a->alg != ALG_NONE_DEV && verify_user_signature(a, token, len)) {
        reason = "bad signature";
        goto done;
    }
    claims = jws_json(jws.seg[1], jws.len[1]);
    if (!claims) {
        reason = "malformed payload";
        goto done;
    }
    rc = check_user_claims(a, claims, now_ms, out, &reason);

done:
    if (rc && out)
        memset(out, 0, sizeof *out);
    if (why)
        *why = rc ? reason : "ok";
    json_decref(claims);
    json_decref(hdr);
    return rc;
}

int pl_auth_guest(pl_identity_t *out)
{
    unsigned char raw[12]; /* 12 bytes = 16 base64url characters */
    unsigned char tag[3];  /* 3 bytes = 4 characters */
    char id[17], suffix[5];
    int rc;

    if (!out)
        return PL_EINVAL;
    memset(out, 0, sizeof *out);
    rc = pl_random_bytes(raw, sizeof raw);
    if (!rc)
        rc = pl_random_bytes(tag, sizeof tag);
    if (rc)
        return rc;
    if (pl_b64url_encode(raw, sizeof raw, id, sizeof id) != 16 ||
        pl_b64url_encode(tag, sizeof tag, suffix, sizeof suffix) != 4)
        return PL_EINVAL;
    snprintf(out->user_id, sizeof out->user_id, GUEST_PREFIX "%s", id);
    snprintf(out->name, sizeof out->name, "guest-%s", suffix);
    out->guest = true;
    return 0;
}

/* The header decides which key verifies the token, so it is checked before anything else:
 * its alg must be exactly the pinned one. */
static int check_user_header(const pl_auth_t *a, const json_t *hdr, const jws_t *jws,
                             const char **why)
{
    const json_t *alg = json_object_get(hdr, "alg");
    const json_t *typ = json_object_get(hdr, "typ");

    if (!json_is_string(alg)) {
        *why = "header has no alg";
        return PL_EAUTH;
    }
    /* libjwt refuses any other typ; saying so here gives a clearer reason, and it is what
     * keeps a signaling token (typ parley-signaling) from ever passing as a user token. */
    if (typ && (!json_is_string(typ) || strcasecmp(json_string_value(typ), "JWT") != 0)) {
        *why = "unsupported typ (expected JWT or none)";
        return PL_EAUTH;
    }
    /* We implement no header extensions, so RFC 7515 says a token that requires one must be
     * refused. */
    if (json_object_get(hdr, "crit")) {
        *why = "crit header not supported";
        return PL_EAUTH;
    }

    if (a->alg == ALG_NONE_DEV) {
        if (!json_str_eq(alg, "none")) {
            *why = "insecure-dev mode accepts only unsigned tokens (alg none)";
            return PL_EAUTH;
        }
        if (jws->len[2] != 0) {
            *why = "unsigned token must have an empty signature";
            return PL_EAUTH;
        }
        return 0;
    }
    /* libjwt compares alg names without case, so "None" gets the same treatment. */
    if (strcasecmp(json_string_value(alg), "none") == 0) {
        *why = "unsigned token (alg none) refused";
        return PL_EAUTH;
    }
    if (!json_str_eq(alg, alg_name(a->alg))) {
        *why = "algorithm not allowed for the configured key";
        return PL_EAUTH;
    }
    if (jws->len[2] == 0) {
        *why = "missing signature";
        return PL_EAUTH;
    }
    return 0;
}

/* Called only after the header named the pinned algorithm, so libjwt verifies with the
 * algorithm we chose, and always with our key (never NULL, which would skip the check). */
static int verify_user_signature(const pl_auth_t *a, const char *token, size_t len)
{
    jwt_t *jwt = NULL;
    char *copy = NULL;
    int rc = PL_EAUTH;

    if (!a->key || a->key_len == 0)
        goto done;
    copy = malloc(len + 1); /* libjwt wants a C string */
    if (!copy) {
        rc = PL_ENOMEM;
        goto done;
    }
    memcpy(copy, token, len);
    copy[len] = '\0';
    if (jwt_decode(&jwt, copy, a->key, (int)a->key_len) != 0 || !jwt)
        goto done;
    if (strcmp(jwt_alg_str(jwt_get_alg(jwt)), alg_name(a->alg)) != 0)
        goto done;
    rc = 0;

done:
    if (jwt)
        jwt_free(jwt);
    free(copy);
    ERR_clear_error(); /* libjwt leaves OpenSSL's queue dirty on failure */
    return rc;
}

/* Structural claims first, then iss/aud, the times last: PL_EEXPIRED then means "this token
 * was fine, get a fresh one", never a cover for a token that was wrong anyway. */
static int check_user_claims(const pl_auth_t *a, const json_t *claims, int64_t now_ms,
                             pl_identity_t *out, const char **why)
{
    const json_t *sub = json_object_get(claims, "sub");
    const json_t *name = json_object_get(claims, "name");
    const json_t *exp = json_object_get(claims, "exp");
    const json_t *nbf = json_object_get(claims, "nbf");
    const json_t *iat = json_object_get(claims, "iat");
    const json_t *domains = json_object_get(claims, "domains");
    int64_t nbf_ms = 0;
    bool has_nbf = false;

    if (!get_text(sub, 1, PL_USER_ID_MAX, out->user_id, sizeof out->user_id)) {
        *why = "sub missing or invalid";
        return PL_EAUTH;
    }
    /* Guest ids are minted by this server; no identity provider may claim one. */
    if (strncmp(out->user_id, GUEST_PREFIX, strlen(GUEST_PREFIX)) == 0) {
        *why = "sub uses the reserved guest: prefix";
        return PL_EAUTH;
    }
    if (name && !json_is_null(name)) {
        if (!get_text(name, 0, PL_NAME_MAX, out->name, sizeof out->name)) {
            *why = "name invalid";
            return PL_EAUTH;
        }
    }
    if (!out->name[0])
        copy_utf8_prefix(out->name, sizeof out->name, out->user_id, strlen(out->user_id));

    if (a->issuer && !json_str_eq(json_object_get(claims, "iss"), a->issuer)) {
        *why = "iss mismatch";
        return PL_EAUTH;
    }
    if (a->audience && !aud_ok(json_object_get(claims, "aud"), a->audience)) {
        *why = "aud mismatch";
        return PL_EAUTH;
    }
    if (domains && !json_is_null(domains) && !parse_domains(domains, out)) {
        *why = "domains invalid";
        return PL_EAUTH;
    }

    if (exp) {
        if (!numeric_date(exp, &out->exp_ms)) {
            *why = "exp invalid";
            return PL_EAUTH;
        }
    } else if (a->alg != ALG_NONE_DEV) {
        *why = "exp missing";
        return PL_EAUTH;
    }
    if (nbf && !json_is_null(nbf)) {
        if (!numeric_date(nbf, &nbf_ms)) {
            *why = "nbf invalid";
            return PL_EAUTH;
        }
        has_nbf = true;
    }
    if (iat && !json_is_null(iat) && !json_is_number(iat)) {
        *why = "iat invalid";
        return PL_EAUTH;
    }
    if (exp && now_ms >= out->exp_ms + PL_AUTH_LEEWAY_MS) {
        *why = "token expired";
        return PL_EEXPIRED;
    }
    if (has_nbf && nbf_ms > now_ms + PL_AUTH_LEEWAY_MS) {
        *why = "token not yet valid (nbf)";
        return PL_EEXPIRED;
    }
    out->guest = false;
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Signaling tokens                                                                         */

long pl_auth_sign_signaling(pl_auth_t *a, const pl_sigtoken_t *c, char *out, size_t cap)
{
    json_t *claims = NULL;
    pl_buf_t payload;
    pl_buf_init(&payload);
    unsigned char mac[HS256_LEN];
    long rc = PL_EINVAL;

    if (!a || !c || !out)
        return PL_EINVAL;
    size_t sub_len = strnlen(c->user_id, sizeof c->user_id);
    size_t name_len = strnlen(c->name, sizeof c->name);
    if (!pl_id_valid(c->room_id, strnlen(c->room_id, sizeof c->room_id)) ||
        !pl_id_valid(c->peer_id, strnlen(c->peer_id, sizeof c->peer_id)) || sub_len == 0 ||
        sub_len > PL_USER_ID_MAX || !text_ok(c->user_id, sub_len) || name_len > PL_NAME_MAX ||
        !text_ok(c->name, name_len) || c->exp_ms <= 0 || c->exp_ms / 1000 > NUMERIC_DATE_MAX)
        return PL_EINVAL;

    claims = json_pack("{s:s, s:s, s:s, s:s, s:I, s:I}", "rid", c->room_id, "pid", c->peer_id,
                       "sub", c->user_id, "name", c->name, "exp", (json_int_t)(c->exp_ms / 1000),
                       "iat", (json_int_t)(pl_now_ms() / 1000));
    if (!claims) {
        rc = PL_ENOMEM;
        goto done;
    }
    if (pl_json_dump(&payload, claims) != 0) {
        rc = PL_ENOMEM;
        goto done;
    }
    /* header.payload.mac and a NUL; base64url without padding takes ceil(4n/3) characters. */
    size_t plen = payload.len;
    size_t need = a->sig_header_len + 1 + (plen * 4 + 2) / 3 + 1 + (HS256_LEN * 4 + 2) / 3 + 1;
    if (need > PL_TOKEN_MAX + 1 || cap < need) {
        rc = PL_ELIMIT;
        goto done;
    }

    size_t pos = 0;
    memcpy(out, a->sig_header, a->sig_header_len);
    pos += a->sig_header_len;
    out[pos++] = '.';
    long n = pl_b64url_encode(payload.data, plen, out + pos, cap - pos);
    if (n < 0)
        goto done;
    pos += (size_t)n;
    if (!sig_hmac(a, out, pos, mac))
        goto done;
    out[pos++] = '.';
    n = pl_b64url_encode(mac, sizeof mac, out + pos, cap - pos);
    if (n < 0)
        goto done;
    pos += (size_t)n;
    rc = (long)pos;

done:
    if (rc < 0 && cap)
        out[0] = '\0';
    OPENSSL_cleanse(mac, sizeof mac);
    pl_buf_free(&payload);
    json_decref(claims);
    return rc;
}

int pl_auth_verify_signaling(pl_auth_t *a, const char *token, size_t len, int64_t now_ms,
                             pl_sigtoken_t *out)
{
    json_t *hdr = NULL, *claims = NULL;
    unsigned char mac[HS256_LEN], got[HS256_LEN + 3];
    jws_t jws;
    int rc = PL_EAUTH;

    if (out)
        memset(out, 0, sizeof *out);
    if (!a || !out)
        return PL_EINVAL;
    if (!token || len == 0 || len > PL_TOKEN_MAX || !jws_split(token, len, &jws))
        goto done;

    /* Only what we mint: exactly {"alg":"HS256","typ":"parley-signaling"}. */
    hdr = jws_json(jws.seg[0], jws.len[0]);
    if (!hdr || json_object_size(hdr) != 2 || !json_str_eq(json_object_get(hdr, "alg"), "HS256") ||
        !json_str_eq(json_object_get(hdr, "typ"), SIG_TYP))
        goto done;

    if (pl_b64url_decode(jws.seg[2], jws.len[2], got, sizeof got) != HS256_LEN)
        goto done;
    if (!sig_hmac(a, token, jws.len[0] + 1 + jws.len[1], mac))
        goto done;
    if (CRYPTO_memcmp(mac, got, HS256_LEN) != 0)
        goto done;

    claims = jws_json(jws.seg[1], jws.len[1]);
    if (!claims)
        goto done;
    const json_t *exp = json_object_get(claims, "exp");
    const json_t *iat = json_object_get(claims, "iat");
    if (!get_text(json_object_get(claims, "rid"), PL_ID_LEN, PL_ID_LEN, out->room_id,
                  sizeof out->room_id) ||
        !pl_id_valid(out->room_id, strlen(out->room_id)) ||
        !get_text(json_object_get(claims, "pid"), PL_ID_LEN, PL_ID_LEN, out->peer_id,
                  sizeof out->peer_id) ||
        !pl_id_valid(out->peer_id, strlen(out->peer_id)) ||
        !get_text(json_object_get(claims, "sub"), 1, PL_USER_ID_MAX, out->user_id,
                  sizeof out->user_id) ||
        !get_text(json_object_get(claims, "name"), 0, PL_NAME_MAX, out->name, sizeof out->name) ||
        !json_is_integer(exp) || !numeric_date(exp, &out->exp_ms) || (iat && !json_is_integer(iat)))
        goto done;
    if (now_ms >= out->exp_ms + PL_SIGTOKEN_LEEWAY_MS) {
        rc = PL_EEXPIRED;
        goto done;
    }
    rc = 0;

done:
    if (rc)
        memset(out, 0, sizeof *out);
    OPENSSL_cleanse(mac, sizeof mac);
    json_decref(claims);
    json_decref(hdr);
    return rc;
}

/* ---------------------------------------------------------------------------------------- */
/* Parsing helpers                                                                          */

/* Exactly three segments of the base64url alphabet (no padding, no whitespace); header and
 * payload non-empty. Checking the alphabet here matters: libjwt's base64 decoder skips
 * characters it does not know, so it would read garbage as something else. */
static bool jws_split(const char *tok, size_t len, jws_t *out)
{
    size_t seg = 0, start = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i == len || tok[i] == '.') {
            if (seg > 2)
                return false;
            out->seg[seg] = tok + start;
            out->len[seg] = i - start;
            seg++;
            start = i + 1;
            continue;
        }
        char c = tok[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_'))
            return false;
    }
    return seg == 3 && out->len[0] > 0 && out->len[1] > 0;
}

/* Decodes one segment and parses it as a JSON object. Duplicate members are refused, so
 * "sub" cannot mean one thing to us and another to some other parser. */
static json_t *jws_json(const char *seg, size_t len)
{
    size_t cap = len / 4 * 3 + 3;
    unsigned char *buf = malloc(cap);
    json_t *v = NULL;
    if (!buf)
        return NULL;
    long n = pl_b64url_decode(seg, len, buf, cap);
    if (n > 0) {
        v = pl_json_loadb((const char *)buf, (size_t)n, JSON_REJECT_DUPLICATES, NULL);
        if (v && !json_is_object(v)) {
            json_decref(v);
            v = NULL;
        }
    }
    free(buf);
    return v;
}

static bool json_str_eq(const json_t *v, const char *s)
{
    size_t n = strlen(s);
    return json_is_string(v) && json_string_length(v) == n &&
           memcmp(json_string_value(v), s, n) == 0;
}

/* Valid UTF-8 (no overlongs, surrogates or values past U+10FFFF) without C0, DEL or C1
 * controls: these strings end up in logs, JSON responses and other people's screens. */
static bool text_ok(const char *str, size_t n)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        uint32_t cp;
        size_t k;
        if (c < 0x80) {
            if (c < 0x20 || c == 0x7f)
                return false;
            i++;
            continue;
        }
        if (c >= 0xc2 && c <= 0xdf) {
            k = 1;
            cp = c & 0x1f;
        } else if (c >= 0xe0 && c <= 0xef) {
            k = 2;
            cp = c & 0x0f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            k = 3;
            cp = c & 0x07;
        } else {
            return false;
        }
        if (n - i <= k)
            return false;
        for (size_t j = 1; j <= k; j++) {
            if ((s[i + j] & 0xc0) != 0x80)
                return false;
            cp = cp << 6 | (s[i + j] & 0x3f);
        }
        if ((k == 2 && cp < 0x800) || (k == 3 && (cp < 0x10000 || cp > 0x10ffff)) ||
            (cp >= 0xd800 && cp <= 0xdfff) || (cp >= 0x80 && cp <= 0x9f))
            return false;
        i += k + 1;
    }
    return true;
}

/* A JSON string of min..max bytes that passes text_ok, copied NUL-terminated into out.
 * Too long is refused rather than truncated: a cut id would name someone else. */
static bool get_text(const json_t *v, size_t min, size_t max, char *out, size_t cap)
{
    if (!json_is_string(v))
        return false;
    const char *s = json_string_value(v);
    size_t n = json_string_length(v);
    if (n < min || n > max || n >= cap || !text_ok(s, n))
        return false;
    memcpy(out, s, n);
    out[n] = '\0';
    return true;
}

/* Copies at most cap-1 bytes of valid UTF-8 without splitting a character. */
static void copy_utf8_prefix(char *dst, size_t cap, const char *src, size_t n)
{
    if (!cap)
        return;
    if (n > cap - 1) {
        n = cap - 1;
        while (n > 0 && ((unsigned char)src[n] & 0xc0) == 0x80)
            n--;
    }
    memcpy(dst, src, n);
    dst[n] = '\0';
}

/* A NumericDate (RFC 7519: seconds, possibly fractional) between the epoch and year 9999,
 * in milliseconds. Strings and booleans are refused. */
static bool numeric_date(const json_t *v, int64_t *ms)
{
    if (json_is_integer(v)) {
        json_int_t s = json_integer_value(v);
        if (s < 0 || s > NUMERIC_DATE_MAX)
            return false;
        *ms = (int64_t)s * 1000;
        return true;
    }
    if (json_is_real(v)) {
        double d = json_real_value(v);
        if (!isfinite(d) || d < 0 || d > (double)NUMERIC_DATE_MAX)
            return false;
        *ms = (int64_t)(d * 1000.0);
        return true;
    }
    return false;
}

/* aud is a string or an array of strings (RFC 7519 4.1.3); ours must be among them. A
 * malformed array is refused as a whole rather than searched. */
static bool aud_ok(const json_t *aud, const char *want)
{
    if (json_is_string(aud))
        return json_str_eq(aud, want);
    if (!json_is_array(aud))
        return false;
    bool found = false;
    size_t i;
    const json_t *v;
    json_array_foreach(aud, i, v)
    {
        if (!json_is_string(v))
            return false;
        if (json_str_eq(v, want))
            found = true;
    }
    return found;
}

/* A DNS hostname (RFC 1123 labels of letters, digits and inner hyphens, 1..63 bytes each,
 * 253 in all, no trailing dot), lower-cased into out. */
static bool hostname_norm(const char *s, size_t n, char out[PL_DOMAIN_SIZE])
{
    size_t label = 0;
    if (n == 0 || n > HOSTNAME_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c >= 'A' && c <= 'Z')
            c = (char)(c - 'A' + 'a');
        if (c == '.') {
            if (label == 0 || out[i - 1] == '-')
                return false;
            label = 0;
        } else if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-') {
            if ((c == '-' && label == 0) || ++label > LABEL_MAX)
                return false;
        } else {
            return false;
        }
        out[i] = c;
    }
    if (label == 0 || out[n - 1] == '-')
        return false;
    out[n] = '\0';
    return true;
}

/* The `domains` claim: at most PL_DOMAINS_MAX hostnames, kept lower-cased and without
 * duplicates. One bad entry refuses the token; a silently shortened list would hide an
 * identity provider bug. */
static bool parse_domains(const json_t *v, pl_identity_t *out)
{
    size_t i;
    const json_t *d;
    char host[PL_DOMAIN_SIZE];

    if (!json_is_array(v) || json_array_size(v) > PL_DOMAINS_MAX)
        return false;
    out->ndomains = 0;
    json_array_foreach(v, i, d)
    {
        if (!json_is_string(d) || !hostname_norm(json_string_value(d), json_string_length(d), host))
            return false;
        bool dup = false;
        for (size_t j = 0; j < out->ndomains; j++)
            dup = dup || strcmp(out->domains[j], host) == 0;
        if (!dup)
            memcpy(out->domains[out->ndomains++], host, strlen(host) + 1);
    }
    return true;
}
