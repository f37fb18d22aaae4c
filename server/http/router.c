#include "http/router.h"

#include "common/error.h"

#include <llhttp.h>
#include <stdio.h>
#include <string.h>

static bool match_pattern(const char *pattern, pl_str_t path, pl_route_match_t *m);

unsigned pl_router_method_bit(int method)
{
    switch (method) {
    case HTTP_GET:
    case HTTP_HEAD:
        return PL_M_GET;
    case HTTP_POST:
        return PL_M_POST;
    case HTTP_DELETE:
        return PL_M_DELETE;
    case HTTP_PUT:
        return PL_M_PUT;
    case HTTP_OPTIONS:
        return PL_M_OPTIONS;
    default:
        return 0;
    }
}

int pl_router_match(const pl_route_t *routes, size_t n, int method, pl_str_t path,
                    pl_route_match_t *m)
{
    unsigned bit = pl_router_method_bit(method);
    m->route = NULL;
    m->nparams = 0;
    m->allowed = 0;
    for (size_t i = 0; i < n; i++) {
        /* Not cleared whole: match_pattern writes each parameter before counting it, and
         * zeroing the struct for every route tried was most of a match's cost. */
        pl_route_match_t tmp;
        tmp.nparams = 0;
        tmp.route = NULL;
        tmp.allowed = 0;
        if (!match_pattern(routes[i].pattern, path, &tmp))
            continue;
        if (bit && (routes[i].methods & bit)) {
            *m = tmp;
            m->route = &routes[i];
            return 0;
        }
        m->allowed |= routes[i].methods;
    }
    return m->allowed ? PL_EINVAL : PL_ENOTFOUND;
}

static bool match_pattern(const char *pattern, pl_str_t path, pl_route_match_t *m)
{
    const char *p = pattern;
    const char *s = path.ptr;
    const char *end = path.ptr + path.len;
    while (*p && s < end) {
        if (*p == ':') {
            /* A parameter takes one whole, non-empty segment. */
            while (*p && *p != '/')
                p++;
            const char *seg = s;
            while (s < end && *s != '/')
                s++;
            if (s == seg || m->nparams == PL_ROUTE_MAX_PARAMS)
                return false;
            m->params[m->nparams++] = (pl_str_t){seg, (size_t)(s - seg)};
            continue;
        }
        if (*p != *s)
            return false;
        p++;
        s++;
    }
    return *p == '\0' && s == end;
}

void pl_router_allow_header(unsigned allowed, char *out, size_t cap)
{
    static const struct {
        unsigned bit;
        const char *text;
    } names[] = {{PL_M_GET, "GET, HEAD"},
                 {PL_M_POST, "POST"},
                 {PL_M_PUT, "PUT"},
                 {PL_M_DELETE, "DELETE"},
                 {PL_M_OPTIONS, "OPTIONS"}};
    size_t len = 0;
    out[0] = '\0';
    allowed |= PL_M_OPTIONS;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (!(allowed & names[i].bit))
            continue;
        int w = snprintf(out + len, cap - len, "%s%s", len ? ", " : "", names[i].text);
        if (w < 0 || (size_t)w >= cap - len)
            return;
        len += (size_t)w;
    }
}
