#include "token.h"

#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/ids.h"

char *pb_token_mint(const char *secret, const char *sub, const char *name, long ttl_s)
{
    static const char header[] = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";
    time_t now = time(NULL);
    json_t *claims = json_pack("{s:s, s:s, s:I, s:I}", "sub", sub, "name", name, "iat",
                               (json_int_t)now, "exp", (json_int_t)(now + ttl_s));
    if (!claims)
        return NULL;
    char *payload = json_dumps(claims, JSON_COMPACT);
    json_decref(claims);
    if (!payload)
        return NULL;

    size_t plen = strlen(payload);
    size_t cap = 4 * (sizeof header + plen + 32) / 3 + 64;
    char *out = malloc(cap);
    if (!out) {
        free(payload);
        return NULL;
    }
    long n = pl_b64url_encode(header, sizeof header - 1, out, cap);
    long m = n < 0 ? -1 : pl_b64url_encode(payload, plen, out + n + 1, cap - (size_t)n - 1);
    free(payload);
    if (n < 0 || m < 0) {
        free(out);
        return NULL;
    }
    out[n] = '.';
    size_t signed_len = (size_t)n + 1 + (size_t)m;

    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int mac_len = 0;
    if (!HMAC(EVP_sha256(), secret, (int)strlen(secret), (const unsigned char *)out, signed_len,
              mac, &mac_len)) {
        free(out);
        return NULL;
    }
    out[signed_len] = '.';
    long s = pl_b64url_encode(mac, mac_len, out + signed_len + 1, cap - signed_len - 1);
    if (s < 0) {
        free(out);
        return NULL;
    }
    out[signed_len + 1 + (size_t)s] = '\0';
    return out;
}
