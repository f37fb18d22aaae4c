/* token: HS256 user tokens minted by the bench itself (--secret), one `sub` per virtual
 * user so that parleyd's per-user rate limits see many users. */
#ifndef PB_TOKEN_H
#define PB_TOKEN_H

#include <stddef.h>

/* Writes a JWT {"sub": sub, "name": name, "iat", "exp": now + ttl_s} signed with secret.
 * Returns a malloc'd string, or NULL on failure. */
char *pb_token_mint(const char *secret, const char *sub, const char *name, long ttl_s);

#endif
