#include "common/ids.h"
#include "common/error.h"

#include <errno.h>
#include <string.h>
#include <sys/random.h>

static const char b64url_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
static const char b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static int fill_from_kernel(unsigned char *p, size_t n)
{
    while (n > 0) {
        ssize_t r = getrandom(p, n, 0);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        p += r;
        n -= (size_t)r;
    }
    return 0;
}

/* Small requests (ids: 16 bytes each, one per envelope) are served from a per-thread pool
 * refilled 4 KiB at a time: a getrandom() system call per envelope was a measurable part
 * of relaying one. The bytes are the kernel's CSPRNG output all the same; each is wiped from
 * the pool as it is handed out, so a later memory disclosure cannot reveal ids already made.
 * parleyd does not fork; a process that forks must not share a pool with its child. */
#define POOL_SIZE  4096
#define POOL_SMALL 64

static __thread unsigned char pool[POOL_SIZE];
static __thread size_t pool_left;

int pl_random_bytes(void *buf, size_t n)
{
    unsigned char *p = buf;
    if (n > POOL_SMALL)
        return fill_from_kernel(p, n);
    if (pool_left < n) {
        int rc = fill_from_kernel(pool, POOL_SIZE);
        if (rc)
            return rc;
        pool_left = POOL_SIZE;
    }
    unsigned char *src = pool + (POOL_SIZE - pool_left);
    memcpy(p, src, n);
    explicit_bzero(src, n);
    pool_left -= n;
    return 0;
}

int pl_id_new(char out[PL_ID_SIZE])
{
    unsigned char raw[16];
    int rc = pl_random_bytes(raw, sizeof raw);
    if (rc)
        return rc;
    char tmp[32];
    if (pl_b64url_encode(raw, sizeof raw, tmp, sizeof tmp) != PL_ID_LEN)
        return PL_EINVAL;
    memcpy(out, tmp, PL_ID_SIZE);
    return 0;
}

bool pl_id_valid(const char *s, size_t len)
{
    if (!s || len != PL_ID_LEN)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_'))
            return false;
    }
    return true;
}

static long encode(const char *alphabet, bool pad, const unsigned char *in, size_t n, char *out,
                   size_t cap)
{
    /* Unpadded output needs fewer characters than the padded bound. */
    size_t need = pad ? (n + 2) / 3 * 4 + 1 : n / 3 * 4 + (n % 3 ? n % 3 + 1 : 0) + 1;
    if (cap < need)
        return -1;
    size_t o = 0, i = 0;
    for (; i + 2 < n; i += 3) {
        unsigned v = (unsigned)in[i] << 16 | (unsigned)in[i + 1] << 8 | in[i + 2];
        out[o++] = alphabet[(v >> 18) & 63];
        out[o++] = alphabet[(v >> 12) & 63];
        out[o++] = alphabet[(v >> 6) & 63];
        out[o++] = alphabet[v & 63];
    }
    if (i < n) {
        unsigned v = (unsigned)in[i] << 16 | (i + 1 < n ? (unsigned)in[i + 1] << 8 : 0);
        out[o++] = alphabet[(v >> 18) & 63];
        out[o++] = alphabet[(v >> 12) & 63];
        if (i + 1 < n)
            out[o++] = alphabet[(v >> 6) & 63];
        else if (pad)
            out[o++] = '=';
        if (pad)
            out[o++] = '=';
    }
    out[o] = '\0';
    return (long)o;
}

long pl_b64url_encode(const void *in, size_t n, char *out, size_t cap)
{
    return encode(b64url_alphabet, false, in, n, out, cap);
}

long pl_b64_encode(const void *in, size_t n, char *out, size_t cap)
{
    return encode(b64_alphabet, true, in, n, out, cap);
}

static int b64url_value(char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '-')
        return 62;
    if (c == '_')
        return 63;
    return -1;
}

long pl_b64url_decode(const char *in, size_t n, void *out, size_t cap)
{
    unsigned char *o = out;
    while (n > 0 && in[n - 1] == '=')
        n--;
    if (n % 4 == 1)
        return -1;
    size_t need = n / 4 * 3 + (n % 4 ? n % 4 - 1 : 0);
    if (need > cap)
        return -1;
    size_t w = 0;
    unsigned acc = 0;
    int bits = 0;
    for (size_t i = 0; i < n; i++) {
        int v = b64url_value(in[i]);
        if (v < 0)
            return -1;
        acc = (acc << 6) | (unsigned)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            o[w++] = (unsigned char)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    /* Leftover bits must be zero, or two encodings would decode to the same bytes. */
    if (acc != 0)
        return -1;
    return (long)w;
}
