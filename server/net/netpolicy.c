#include "net/netpolicy.h"

#include "common/error.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static bool parse_addr(const char *s, size_t len, int *family, uint8_t addr[16]);
static pl_str_t trim(pl_str_t s);
static bool forwarded_last_for(pl_str_t fwd, const pl_netpolicy_t *p, char *out, size_t cap);

static pl_str_t trim(pl_str_t s)
{
    while (s.len && isspace((unsigned char)s.ptr[0])) {
        s.ptr++;
        s.len--;
    }
    while (s.len && isspace((unsigned char)s.ptr[s.len - 1]))
        s.len--;
    return s;
}

static bool parse_addr(const char *s, size_t len, int *family, uint8_t addr[16])
{
    char buf[64];
    if (len == 0 || len >= sizeof buf)
        return false;
    memcpy(buf, s, len);
    buf[len] = '\0';
    memset(addr, 0, 16);
    if (inet_pton(AF_INET, buf, addr) == 1) {
        *family = AF_INET;
        return true;
    }
    if (inet_pton(AF_INET6, buf, addr) == 1) {
        /* IPv4-mapped IPv6 addresses compare as IPv4, as a dual-stack socket reports them. */
        static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        if (memcmp(addr, mapped, 12) == 0) {
            memmove(addr, addr + 12, 4);
            memset(addr + 4, 0, 12);
            *family = AF_INET;
        } else {
            *family = AF_INET6;
        }
        return true;
    }
    return false;
}

int pl_cidr_parse(const char *s, size_t len, pl_cidr_t *out)
{
    pl_str_t t = trim((pl_str_t){s, len});
    const char *slash = memchr(t.ptr, '/', t.len);
    size_t alen = slash ? (size_t)(slash - t.ptr) : t.len;
    if (!parse_addr(t.ptr, alen, &out->family, out->addr))
        return PL_EINVAL;
    unsigned max = out->family == AF_INET ? 32 : 128;
    out->prefix = max;
    if (slash) {
        const char *d = slash + 1;
        size_t dl = t.len - alen - 1;
        if (dl == 0 || dl > 3)
            return PL_EINVAL;
        unsigned v = 0;
        for (size_t i = 0; i < dl; i++) {
            if (!isdigit((unsigned char)d[i]))
                return PL_EINVAL;
            v = v * 10 + (unsigned)(d[i] - '0');
        }
        if (v > max)
            return PL_EINVAL;
        out->prefix = v;
    }
    return 0;
}

int pl_cidr_parse_list(const char *list, pl_cidr_t *out, size_t cap, size_t *n)
{
    *n = 0;
    if (!list)
        return 0;
    const char *p = list;
    while (*p) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        pl_str_t item = trim((pl_str_t){p, len});
        if (item.len) {
            if (*n == cap || pl_cidr_parse(item.ptr, item.len, &out[*n]))
                return PL_EINVAL;
            (*n)++;
        }
        p += len;
        if (*p == ',')
            p++;
    }
    return 0;
}

bool pl_cidr_match(const pl_cidr_t *cidrs, size_t n, const char *ip, size_t len)
{
    int family;
    uint8_t addr[16];
    if (!parse_addr(ip, len, &family, addr))
        return false;
    for (size_t i = 0; i < n; i++) {
        const pl_cidr_t *c = &cidrs[i];
        if (c->family != family)
            continue;
        unsigned full = c->prefix / 8, rest = c->prefix % 8;
        if (memcmp(addr, c->addr, full) != 0)
            continue;
        if (rest) {
            uint8_t mask = (uint8_t)(0xff << (8 - rest));
            if ((addr[full] & mask) != (c->addr[full] & mask))
                continue;
        }
        return true;
    }
    return false;
}

int pl_netpolicy_init(pl_netpolicy_t *p, const char *trusted_proxies, const char *origins)
{
    memset(p, 0, sizeof *p);
    if (pl_cidr_parse_list(trusted_proxies, p->cidrs, PL_CIDR_MAX, &p->ncidrs))
        return PL_EINVAL;
    if (!origins)
        return 0;
    const char *s = origins;
    while (*s) {
        const char *comma = strchr(s, ',');
        size_t len = comma ? (size_t)(comma - s) : strlen(s);
        pl_str_t item = trim((pl_str_t){s, len});
        if (item.len == 1 && item.ptr[0] == '*') {
            p->any_origin = true;
        } else if (item.len) {
            if (p->norigins == PL_ORIGINS_MAX) {
                pl_netpolicy_free(p);
                return PL_EINVAL;
            }
            /* A trailing slash is a common typo for an origin; it never matches. */
            while (item.len && item.ptr[item.len - 1] == '/')
                item.len--;
            p->origins[p->norigins] = strndup(item.ptr, item.len);
            if (!p->origins[p->norigins]) {
                pl_netpolicy_free(p);
                return PL_ENOMEM;
            }
            p->norigins++;
        }
        s += len;
        if (*s == ',')
            s++;
    }
    return 0;
}

void pl_netpolicy_free(pl_netpolicy_t *p)
{
    for (size_t i = 0; i < p->norigins; i++)
        free(p->origins[i]);
    p->norigins = 0;
}

bool pl_origin_allowed(const pl_netpolicy_t *p, pl_str_t origin)
{
    if (!origin.ptr || origin.len == 0)
        return false;
    if (p->any_origin)
        return true;
    for (size_t i = 0; i < p->norigins; i++)
        if (pl_str_ieq(origin, p->origins[i]))
            return true;
    return false;
}

/* Walks X-Forwarded-For from the right: each hop appended its peer, so the right-most
 * entry that is not one of our proxies is the first address nobody we trust vouches
 * beyond. */
static bool xff_client(pl_str_t xff, const pl_netpolicy_t *p, char *out, size_t cap)
{
    size_t end = xff.len;
    while (end > 0) {
        size_t start = end;
        while (start > 0 && xff.ptr[start - 1] != ',')
            start--;
        pl_str_t item = trim((pl_str_t){xff.ptr + start, end - start});
        int family;
        uint8_t addr[16];
        if (!parse_addr(item.ptr, item.len, &family, addr))
            return false;
        if (!pl_cidr_match(p->cidrs, p->ncidrs, item.ptr, item.len) || start == 0) {
            snprintf(out, cap, "%.*s", (int)item.len, item.ptr);
            return true;
        }
        end = start - 1;
    }
    return false;
}

/* Forwarded: for=192.0.2.60;proto=http, for="[2001:db8::1]:4711" (RFC 7239). */
static bool forwarded_last_for(pl_str_t fwd, const pl_netpolicy_t *p, char *out, size_t cap)
{
    char list[1024];
    size_t w = 0;
    const char *s = fwd.ptr, *end = fwd.ptr + fwd.len;
    while (s < end) {
        const char *f = NULL;
        for (const char *q = s; q + 4 <= end; q++) {
            if (strncasecmp(q, "for=", 4) == 0 && (q == fwd.ptr || strchr(" ;,", q[-1]))) {
                f = q + 4;
                break;
            }
        }
        if (!f)
            break;
        const char *v = f, *ve = f;
        while (ve < end && *ve != ';' && *ve != ',')
            ve++;
        s = ve;
        pl_str_t val = trim((pl_str_t){v, (size_t)(ve - v)});
        if (val.len >= 2 && val.ptr[0] == '"' && val.ptr[val.len - 1] == '"') {
            val.ptr++;
            val.len -= 2;
        }
        if (val.len && val.ptr[0] == '[') {
            const char *rb = memchr(val.ptr, ']', val.len);
            if (!rb)
                return false;
            val = (pl_str_t){val.ptr + 1, (size_t)(rb - val.ptr - 1)};
        } else {
            const char *colon = memchr(val.ptr, ':', val.len);
            if (colon && !memchr(colon + 1, ':', val.len - (size_t)(colon + 1 - val.ptr)))
                val.len = (size_t)(colon - val.ptr); /* strip an IPv4 port */
        }
        if (w + val.len + 1 >= sizeof list)
            return false;
        if (w)
            list[w++] = ',';
        memcpy(list + w, val.ptr, val.len);
        w += val.len;
    }
    if (!w)
        return false;
    return xff_client((pl_str_t){list, w}, p, out, cap);
}

void pl_client_ip(const pl_netpolicy_t *p, const char *peer_ip, pl_str_t forwarded, bool rfc7239,
                  char *out, size_t cap)
{
    snprintf(out, cap, "%s", peer_ip);
    if (!p->ncidrs || !pl_cidr_match(p->cidrs, p->ncidrs, peer_ip, strlen(peer_ip)))
        return;
    if (!forwarded.ptr || !forwarded.len)
        return;
    char tmp[64];
    bool ok = rfc7239 ? forwarded_last_for(forwarded, p, tmp, sizeof tmp)
                      : xff_client(forwarded, p, tmp, sizeof tmp);
    if (ok)
        snprintf(out, cap, "%s", tmp);
}
