/* Method + path routing over a static table. Patterns are literal segments and `:name`
 * parameters, each matching one non-empty segment: "/signaling/offer/:roomId". */
#ifndef PL_HTTP_ROUTER_H
#define PL_HTTP_ROUTER_H

#include "common/str.h"

#include <stddef.h>

#define PL_ROUTE_MAX_PARAMS 4

enum {
    PL_M_GET = 1 << 0,
    PL_M_POST = 1 << 1,
    PL_M_DELETE = 1 << 2,
    PL_M_PUT = 1 << 3,
    PL_M_OPTIONS = 1 << 4,
};

typedef struct {
    unsigned methods; /* PL_M_* mask; HEAD matches wherever GET does */
    const char *pattern;
    const char *name; /* low-cardinality route name for metrics */
    void *handler;    /* opaque to the router */
} pl_route_t;

typedef struct {
    const pl_route_t *route;
    pl_str_t params[PL_ROUTE_MAX_PARAMS];
    size_t nparams;
    unsigned allowed; /* on PL_EINVAL: the methods the path accepts */
} pl_route_match_t;

/* method is an llhttp_method_t. Returns 0 on a match, PL_ENOTFOUND when no pattern matches
 * the path, PL_EINVAL when one does but not for this method (405; see m->allowed). */
int pl_router_match(const pl_route_t *routes, size_t n, int method, pl_str_t path,
                    pl_route_match_t *m);
/* Writes "GET, HEAD, POST" style text for an Allow header. */
void pl_router_allow_header(unsigned allowed, char *out, size_t cap);
/* The PL_M_* bit of an llhttp method (HEAD maps to GET), 0 for others. */
unsigned pl_router_method_bit(int method);

#endif
