/* Identity (DESIGN section 3): user JWTs from the embedding site's identity provider, and the
 * short-lived signaling tokens parleyd signs itself.
 *
 * libjwt 1.10 checks neither the algorithm against the key, nor exp/nbf, and accepts
 * unsigned tokens when given a NULL key; everything here is therefore checked explicitly:
 * the header's alg must be the configured key's family (HS256 for a secret; RS256 for an
 * RSA public key, ES256 for a P-256 public key), `alg: none` is refused, `exp` is required,
 * `exp`/`nbf` are checked with 30 s of leeway, `iss`/`aud` when configured. */
#ifndef PL_AUTH_H
#define PL_AUTH_H

#include "config.h"
#include "store/store.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PL_AUTH_LEEWAY_MS 30000
/* Clock skew allowed on a signaling token's exp (parleyd made it; nodes differ slightly). */
#define PL_SIGTOKEN_LEEWAY_MS 5000
#define PL_TOKEN_MAX          8192 /* longest token (user or signaling) we look at */
#define PL_DOMAINS_MAX        16
#define PL_DOMAIN_SIZE        254

typedef struct {
    char user_id[PL_USER_ID_SIZE]; /* `sub` */
    char name[PL_NAME_SIZE];       /* `name`, or `sub` when absent */
    size_t ndomains;
    int64_t exp_ms;
    bool guest;
    /* Last, and only the first ndomains are ever read: a request that never authenticates
     * a user need not clear these 4 KB (see pl_api_handle). */
    char domains[PL_DOMAINS_MAX][PL_DOMAIN_SIZE]; /* `domains` claim, lower-cased */
} pl_identity_t;

/* Claims of a signaling token. */
typedef struct {
    char room_id[PL_ID_SIZE];
    char peer_id[PL_ID_SIZE];
    char user_id[PL_USER_ID_SIZE];
    char name[PL_NAME_SIZE];
    int64_t exp_ms;
} pl_sigtoken_t;

typedef struct pl_auth pl_auth_t;

/* Reads the key material named by cfg (the secret, or the PEM file at jwt_public_key) and a
 * fresh random signing key for signaling tokens. On failure returns PL_ECONFIG with a
 * message in err. */
int pl_auth_new(const pl_config_t *cfg, pl_auth_t **out, char *err, size_t cap);
void pl_auth_free(pl_auth_t *a);

/* Replaces the signaling-token key (the redis engine shares one across nodes). */
int pl_auth_set_signing_key(pl_auth_t *a, const unsigned char *key, size_t len);

/* Verifies a user token. Returns 0 and fills *out, PL_EEXPIRED when exp (or nbf) is out of
 * range, or PL_EAUTH for everything else (bad signature, wrong alg, missing or malformed
 * claims, wrong iss/aud, garbage). When why is non-NULL it receives a static reason for
 * the log (never sent to the client beyond the error code). */
int pl_auth_verify_user(pl_auth_t *a, const char *token, size_t len, int64_t now_ms,
                        pl_identity_t *out, const char **why);

/* A guest identity (PARLEY_ALLOW_GUESTS): user id "guest:<random>", name "guest-XXXX". */
int pl_auth_guest(pl_identity_t *out);

/* Signs a signaling token (an HS256 JWT under the server's signing key, with
 * "typ":"parley-signaling" in its header). Returns the length written or a negative error
 * when cap is too small. */
long pl_auth_sign_signaling(pl_auth_t *a, const pl_sigtoken_t *claims, char *out, size_t cap);

/* Verifies a signaling token's signature, type and expiry. PL_EEXPIRED or PL_EAUTH. */
int pl_auth_verify_signaling(pl_auth_t *a, const char *token, size_t len, int64_t now_ms,
                             pl_sigtoken_t *out);

/* True when the server runs without user-token verification (--insecure-dev). */
bool pl_auth_insecure(const pl_auth_t *a);

#endif
