/* Network policy: trusted-proxy CIDRs (for X-Forwarded-For / Forwarded) and allowed CORS
 * origins, parsed once at start. */
#ifndef PL_NETPOLICY_H
#define PL_NETPOLICY_H

#include "common/str.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PL_CIDR_MAX    64
#define PL_ORIGINS_MAX 64

typedef struct {
    int family; /* AF_INET or AF_INET6 */
    uint8_t addr[16];
    unsigned prefix;
} pl_cidr_t;

typedef struct {
    pl_cidr_t cidrs[PL_CIDR_MAX];
    size_t ncidrs;
    char *origins[PL_ORIGINS_MAX];
    size_t norigins;
    bool any_origin;
} pl_netpolicy_t;

/* Parses a comma list of CIDRs ("10.0.0.0/8, ::1/128"; a bare address means /32 or /128).
 * Returns 0 or PL_EINVAL. */
int pl_cidr_parse_list(const char *list, pl_cidr_t *out, size_t cap, size_t *n);
/* Parses one CIDR. Returns 0 or PL_EINVAL. */
int pl_cidr_parse(const char *s, size_t len, pl_cidr_t *out);
/* True when the textual address ip (v4 or v6) lies in any of the CIDRs. */
bool pl_cidr_match(const pl_cidr_t *cidrs, size_t n, const char *ip, size_t len);

int pl_netpolicy_init(pl_netpolicy_t *p, const char *trusted_proxies, const char *origins);
void pl_netpolicy_free(pl_netpolicy_t *p);
bool pl_origin_allowed(const pl_netpolicy_t *p, pl_str_t origin);

/* The client's address: the TCP peer, or, when the TCP peer is a trusted proxy, the
 * right-most address in `forwarded` that is not itself a trusted proxy. `forwarded` is the
 * value of the one header the proxy appends to (every line of it joined with commas):
 * X-Forwarded-For, or RFC 7239 Forwarded (for=) when rfc7239. A malformed value falls back
 * to the TCP peer. Writes a NUL-terminated address into out. */
void pl_client_ip(const pl_netpolicy_t *p, const char *peer_ip, pl_str_t forwarded, bool rfc7239,
                  char *out, size_t cap);

#endif
