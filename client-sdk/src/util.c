/* util: logging, randomness, backoff, and the table between the server's error codes
 * (docs/api.md sections 1 and 6.2) and the public PARLEY_E* values. */
#include "util.h"

#include <openssl/rand.h>

#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

void pl__logf(const pl__logger_t *lg, int level, const char *fmt, ...)
{
    int max = lg ? lg->level : PL__LOG_WARN;
    if (level > max)
        return;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (lg && lg->fn) {
        lg->fn(level, msg, lg->user);
        return;
    }
    static const char *const names[] = {"", "error", "warn", "info", "debug"};
    fprintf(stderr, "parley %s: %s\n", names[level >= 1 && level <= 4 ? level : 0], msg);
}

uint32_t pl__random_u32(void)
{
    uint32_t v;
    if (RAND_bytes((unsigned char *)&v, sizeof v) != 1) {
        /* The CSPRNG failing is near impossible; jitter from the clock is still jitter. */
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        v = (uint32_t)ts.tv_nsec * 2654435761u;
    }
    return v;
}

uint64_t pl__backoff_ms(unsigned attempt, uint64_t base_ms, uint64_t cap_ms)
{
    uint64_t ceil = base_ms;
    /* Doubling stops at the cap; the shift is bounded so it never overflows. */
    for (unsigned i = 0; i < attempt && ceil < cap_ms && i < 40; i++)
        ceil *= 2;
    if (ceil > cap_ms)
        ceil = cap_ms;
    uint64_t r = ((uint64_t)pl__random_u32() << 32) | pl__random_u32();
    return ceil ? r % (ceil + 1) : 0;
}

static const struct {
    const char *code;
    int err;
} codes[] = {
    {"invalid_json", PARLEY_ESRV_INVALID_JSON},
    {"invalid_request", PARLEY_ESRV_INVALID_REQUEST},
    {"bad_request", PARLEY_ESRV_BAD_REQUEST},
    {"unauthorized", PARLEY_ESRV_UNAUTHORIZED},
    {"forbidden", PARLEY_ESRV_FORBIDDEN},
    {"not_found", PARLEY_ESRV_NOT_FOUND},
    {"method_not_allowed", PARLEY_ESRV_METHOD},
    {"request_timeout", PARLEY_ESRV_TIMEOUT},
    {"conflict", PARLEY_ESRV_CONFLICT},
    {"payload_too_large", PARLEY_ESRV_TOO_LARGE},
    {"unsupported_media_type", PARLEY_ESRV_MEDIA_TYPE},
    {"rate_limited", PARLEY_ESRV_RATE_LIMITED},
    {"headers_too_large", PARLEY_ESRV_HEADERS_TOO_LARGE},
    {"store_unavailable", PARLEY_ESRV_STORE_UNAVAILABLE},
    {"overloaded", PARLEY_ESRV_OVERLOADED},
    {"upgrade_required", PARLEY_ESRV_UPGRADE_REQUIRED},
    {"internal", PARLEY_ESRV_INTERNAL},
    {"upstream_unavailable", PARLEY_ESRV_UPSTREAM_UNAVAILABLE},
    {"shutting_down", PARLEY_ESRV_SHUTTING_DOWN},
};

int pl__err_from_code(const char *code)
{
    if (code)
        for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++)
            if (strcmp(codes[i].code, code) == 0)
                return codes[i].err;
    return PARLEY_ESRV_UNKNOWN;
}

const char *pl__code_of_err(int err)
{
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++)
        if (codes[i].err == err)
            return codes[i].code;
    return NULL;
}

int pl__err_from_status(int status)
{
    switch (status) {
    case 400:
        return PARLEY_ESRV_BAD_REQUEST;
    case 401:
        return PARLEY_ESRV_UNAUTHORIZED;
    case 403:
        return PARLEY_ESRV_FORBIDDEN;
    case 404:
        return PARLEY_ESRV_NOT_FOUND;
    case 405:
        return PARLEY_ESRV_METHOD;
    case 408:
        return PARLEY_ESRV_TIMEOUT;
    case 409:
        return PARLEY_ESRV_CONFLICT;
    case 413:
        return PARLEY_ESRV_TOO_LARGE;
    case 415:
        return PARLEY_ESRV_MEDIA_TYPE;
    case 426:
        return PARLEY_ESRV_UPGRADE_REQUIRED;
    case 429:
        return PARLEY_ESRV_RATE_LIMITED;
    case 431:
        return PARLEY_ESRV_HEADERS_TOO_LARGE;
    case 500:
        return PARLEY_ESRV_INTERNAL;
    case 502:
        /* parleyd's own 502 (a fetch from 7TV failed), or a proxy's: either way the server
         * that answered could not get what it needed from the one behind it. */
        return PARLEY_ESRV_UPSTREAM_UNAVAILABLE;
    case 503:
        /* Both 503 codes exist; without a body the store is the likelier cause. */
        return PARLEY_ESRV_STORE_UNAVAILABLE;
    default:
        return PARLEY_ESRV_UNKNOWN;
    }
}

PARLEY_API const char *parley_strerror(int err)
{
    switch (err) {
    case 0:
        return "success";
    case PARLEY_EINVAL:
        return "invalid argument";
    case PARLEY_ENOMEM:
        return "out of memory";
    case PARLEY_ESTATE:
        return "not possible in the current state";
    case PARLEY_ENOTCONN:
        return "no open channel to that peer";
    case PARLEY_EMSGSIZE:
        return "message larger than the peer accepts";
    case PARLEY_EAGAIN:
        return "send queue full; try again later";
    case PARLEY_ETIMEDOUT:
        return "timed out";
    case PARLEY_ENETWORK:
        return "the server could not be reached";
    case PARLEY_EPROTO:
        return "protocol error";
    case PARLEY_EDTLS:
        return "DTLS handshake failed";
    case PARLEY_EFINGERPRINT:
        return "peer certificate does not match its fingerprint";
    case PARLEY_EICE:
        return "ICE found no working path";
    case PARLEY_ESCTP:
        return "SCTP association failed";
    case PARLEY_ECLOSED:
        return "closed";
    case PARLEY_ENOTFOUND:
        return "no such peer";
    case PARLEY_ESRV_INVALID_JSON:
        return "server: invalid JSON";
    case PARLEY_ESRV_INVALID_REQUEST:
        return "server: invalid request";
    case PARLEY_ESRV_BAD_REQUEST:
        return "server: malformed HTTP request";
    case PARLEY_ESRV_UNAUTHORIZED:
        return "server: token refused";
    case PARLEY_ESRV_FORBIDDEN:
        return "server: forbidden";
    case PARLEY_ESRV_NOT_FOUND:
        return "server: not found (no such room, peer, emote set or user)";
    case PARLEY_ESRV_METHOD:
        return "server: method not allowed";
    case PARLEY_ESRV_TIMEOUT:
        return "server: request timed out";
    case PARLEY_ESRV_CONFLICT:
        return "server: conflict (room full)";
    case PARLEY_ESRV_TOO_LARGE:
        return "server: payload too large";
    case PARLEY_ESRV_MEDIA_TYPE:
        return "server: unsupported media type";
    case PARLEY_ESRV_RATE_LIMITED:
        return "server: rate limited";
    case PARLEY_ESRV_HEADERS_TOO_LARGE:
        return "server: headers too large";
    case PARLEY_ESRV_STORE_UNAVAILABLE:
        return "server: store unavailable";
    case PARLEY_ESRV_OVERLOADED:
        return "server: overloaded";
    case PARLEY_ESRV_UPGRADE_REQUIRED:
        return "server: upgrade required";
    case PARLEY_ESRV_INTERNAL:
        return "server: internal error";
    case PARLEY_ESRV_UNKNOWN:
        return "server: unknown error";
    case PARLEY_ESRV_REPLACED:
        return "a newer connection of this peer took over";
    case PARLEY_ESRV_EXPIRED:
        return "the membership expired; join again";
    case PARLEY_ESRV_UPSTREAM_UNAVAILABLE:
        return "server: upstream unavailable (7TV)";
    case PARLEY_ESRV_SHUTTING_DOWN:
        return "server: shutting down";
    default:
        return "unknown error";
    }
}

uint64_t pl__now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

char *pl__strndup_bounded(const char *s, size_t max)
{
    if (!s)
        return NULL;
    size_t n = strnlen(s, max + 1);
    if (n > max)
        return NULL;
    char *d = malloc(n + 1);
    if (d) {
        memcpy(d, s, n);
        d[n] = '\0';
    }
    return d;
}

int pl__is_id(const char *s)
{
    if (!s || !*s)
        return 0;
    size_t n = 0;
    for (; s[n]; n++) {
        char c = s[n];
        if (n >= 64 || !((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
                         (c >= '0' && c <= '9') || c == '-' || c == '_'))
            return 0;
    }
    return 1;
}

/* ---- ice_servers entries ---- */

static int pl_has_scheme(const char *url, const char *scheme)
{
    size_t n = strlen(scheme);
    return strncasecmp(url, scheme, n) == 0 && url[n] == ':';
}

int pl__parse_stun_url(const char *url, char *host, size_t hostsz, unsigned *port)
{
    if (!url || !host || hostsz == 0 || !port)
        return PARLEY_EINVAL;
    if (pl_has_scheme(url, "turn") || pl_has_scheme(url, "turns") || pl_has_scheme(url, "stuns"))
        return PL__STUN_URL_UNSUPPORTED;
    const char *h = pl_has_scheme(url, "stun") ? url + 5 : url;
    const char *end; /* just after the host (its closing bracket included) */
    const char *hs = h;
    size_t hl;
    if (*h == '[') { /* an IPv6 literal */
        const char *rb = strchr(h, ']');
        if (!rb)
            return PARLEY_EINVAL;
        hs = h + 1;
        hl = (size_t)(rb - hs);
        end = rb + 1;
        struct in6_addr a6;
        char tmp[INET6_ADDRSTRLEN + 1];
        if (hl == 0 || hl >= sizeof tmp)
            return PARLEY_EINVAL;
        memcpy(tmp, hs, hl);
        tmp[hl] = '\0';
        if (inet_pton(AF_INET6, tmp, &a6) != 1)
            return PARLEY_EINVAL;
    } else { /* a name or an IPv4 literal: RFC 3986 reg-name characters we accept */
        hl = strcspn(h, ":");
        end = h + hl;
        if (hl == 0 || hl > 253)
            return PARLEY_EINVAL;
        for (size_t i = 0; i < hl; i++) {
            unsigned char ch = (unsigned char)h[i];
            if (!isalnum(ch) && ch != '-' && ch != '.' && ch != '_')
                return PARLEY_EINVAL;
        }
    }
    unsigned long p = 3478;
    if (*end == ':') {
        const char *d = end + 1;
        size_t nd = strspn(d, "0123456789");
        if (nd == 0 || nd > 5 || d[nd])
            return PARLEY_EINVAL;
        p = strtoul(d, NULL, 10);
        if (p == 0 || p > 65535)
            return PARLEY_EINVAL;
    } else if (*end) {
        return PARLEY_EINVAL; /* a query, a path, a bare IPv6 address, ... */
    }
    if (hl >= hostsz)
        return PARLEY_EINVAL;
    memcpy(host, hs, hl);
    host[hl] = '\0';
    *port = (unsigned)p;
    return 0;
}

/* ---- server URLs ---- */

int pl__url_parse(const char *url, pl__url_t *u)
{
    memset(u, 0, sizeof *u);
    if (!url || strncmp(url, "http://", 7) != 0 || strlen(url) > 2 * PL__URL_MAX_PART)
        return PARLEY_EINVAL;
    const char *h = url + 7, *hend, *p;
    if (*h == '[') { /* IPv6 literal */
        hend = strchr(h, ']');
        if (!hend)
            return PARLEY_EINVAL;
        p = hend + 1;
        h++;
    } else {
        hend = h + strcspn(h, ":/");
        p = hend;
    }
    if (hend == h || (size_t)(hend - h) > PL__URL_MAX_PART)
        return PARLEY_EINVAL;
    int port = 80;
    if (*p == ':') {
        char *end;
        long v = strtol(p + 1, &end, 10);
        if (end == p + 1 || v < 1 || v > 65535)
            return PARLEY_EINVAL;
        port = (int)v;
        p = end;
    }
    if (*p && *p != '/')
        return PARLEY_EINVAL;
    for (const char *c = p; *c; c++)
        if ((unsigned char)*c <= ' ' || *c == '?' || *c == '#' || *c == 0x7f)
            return PARLEY_EINVAL;
    u->port = port;
    u->host = strndup(h, (size_t)(hend - h));
    size_t blen = strlen(p);
    while (blen && p[blen - 1] == '/')
        blen--;
    u->base = strndup(p, blen);
    size_t hl = (size_t)(hend - h) + 16;
    u->host_hdr = malloc(hl);
    if (!u->host || !u->base || !u->host_hdr) {
        pl__url_free(u);
        return PARLEY_ENOMEM;
    }
    int v6 = memchr(h, ':', (size_t)(hend - h)) != NULL;
    snprintf(u->host_hdr, hl, v6 ? "[%s]:%d" : "%s:%d", u->host, u->port);
    return 0;
}

void pl__url_free(pl__url_t *u)
{
    free(u->host);
    free(u->base);
    free(u->host_hdr);
    memset(u, 0, sizeof *u);
}
