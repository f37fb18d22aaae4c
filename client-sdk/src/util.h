/* util: logging, randomness, backoff and the error-code table shared by the SDK's modules. */
#ifndef PL_SDK_UTIL_H
#define PL_SDK_UTIL_H

#include <stddef.h>
#include <stdint.h>

#include "parley.h"

#define PL__LOG_ERROR 1
#define PL__LOG_WARN  2
#define PL__LOG_INFO  3
#define PL__LOG_DEBUG 4

/* Where a client's log lines go. A NULL logger writes warnings and errors to stderr. */
typedef struct {
    int level;
    void (*fn)(int level, const char *msg, void *user);
    void *user;
} pl__logger_t;

void pl__logf(const pl__logger_t *lg, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Uniformly random bits (OpenSSL's CSPRNG; jitter must not synchronise clients that were
 * started together). */
uint32_t pl__random_u32(void);

/* Exponential backoff with full jitter: uniform in [0, min(cap_ms, base_ms * 2^attempt)]. */
uint64_t pl__backoff_ms(unsigned attempt, uint64_t base_ms, uint64_t cap_ms);

/* The PARLEY_ESRV_* for a server error code ("not_found", ...); PARLEY_ESRV_UNKNOWN for
 * NULL or a code this SDK does not know. */
int pl__err_from_code(const char *code);
/* The PARLEY_ESRV_* for an HTTP status when the body carried no usable code. */
int pl__err_from_status(int status);
/* The server code string of a PARLEY_ESRV_* (NULL for anything else). */
const char *pl__code_of_err(int err);

/* Milliseconds of a monotonic clock. */
uint64_t pl__now_ms(void);

/* strdup that bounds the copy: NULL when s is NULL or longer than max bytes. */
char *pl__strndup_bounded(const char *s, size_t max);

/* True when s is a plausible parleyd id (base64url, 1..64 bytes). */
int pl__is_id(const char *s);

/* One entry of parley_config.ice_servers (or of the join answer's iceServers urls):
 * "stun:host[:port]" (RFC 7064; the scheme in any case), or a bare "host[:port]" (the only
 * form 0.1.0 understood). host is a name, an IPv4 literal or an [IPv6] literal; port
 * defaults to 3478. Returns 0 with host (without brackets, NUL-terminated, at most hostsz
 * - 1 bytes) and port; PL__STUN_URL_UNSUPPORTED for a turn:, turns: or stuns: URL (this
 * version has no TURN or STUN over TLS); PARLEY_EINVAL for anything else (a query, a path,
 * a bare IPv6 address, port 0 or above 65535, an empty host). */
#define PL__STUN_URL_UNSUPPORTED 1
int pl__parse_stun_url(const char *url, char *host, size_t hostsz, unsigned *port);

/* A parleyd URL, "http://host[:port][/base]", split: host without brackets (for the
 * resolver), host_hdr the Host header ("host:port", "[v6]:port"), base the path put before
 * every API path (trailing slashes removed; "" for none), port 80 by default. https is not
 * supported (put TLS in a proxy on the same host, or add it to http.c and ws.c). */
#define PL__URL_MAX_PART 255
typedef struct {
    char *host, *host_hdr, *base;
    int port;
} pl__url_t;
/* 0, or PARLEY_EINVAL (not such a URL: https, a query or fragment, a host or path over
 * PL__URL_MAX_PART bytes, ...) or PARLEY_ENOMEM; on failure *u holds nothing to free. */
int pl__url_parse(const char *url, pl__url_t *u);
void pl__url_free(pl__url_t *u);

#endif
