/* Random identifiers and base64. */
#ifndef PL_IDS_H
#define PL_IDS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Room and peer ids: 16 random bytes as 22 base64url characters. */
#define PL_ID_LEN  22
#define PL_ID_SIZE (PL_ID_LEN + 1)

/* Fills buf with n cryptographically random bytes. Returns 0 or a negative error. */
int pl_random_bytes(void *buf, size_t n);
/* Writes a fresh PL_ID_LEN-character id and a NUL into out (PL_ID_SIZE bytes). */
int pl_id_new(char out[PL_ID_SIZE]);
/* True when s is exactly a well-formed id (length and alphabet); used to reject hostile
 * path segments before they reach the store. */
bool pl_id_valid(const char *s, size_t len);

/* base64url without padding. Returns the number of characters written (excluding the NUL),
 * or -1 when cap is too small. cap must hold 4*ceil(n/3)+1 bytes. */
long pl_b64url_encode(const void *in, size_t n, char *out, size_t cap);
/* Decodes base64url (padding optional). Returns the byte count or -1 on bad input or
 * when out is too small. */
long pl_b64url_decode(const char *in, size_t n, void *out, size_t cap);
/* Standard base64 with padding (TURN credentials). Same return convention. */
long pl_b64_encode(const void *in, size_t n, char *out, size_t cap);

#endif
