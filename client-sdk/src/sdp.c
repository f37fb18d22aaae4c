/* sdp: see sdp.h. */
#include "sdp.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdarg.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "parley.h"

/* ---- candidates ---- */

#define PL_SDP_MAX_TOKENS 32

static int pl_sdp_is_number(const char *s, unsigned long long max, unsigned long long *v)
{
    if (!*s || strlen(s) > 20)
        return 0;
    unsigned long long n = 0;
    for (const char *p = s; *p; p++) {
        if (!isdigit((unsigned char)*p))
            return 0;
        n = n * 10 + (unsigned)(*p - '0');
        if (n > max)
            return 0;
    }
    if (v)
        *v = n;
    return 1;
}

static int pl_sdp_is_ice_char(int ch)
{
    /* ice-char (RFC 8839): ALPHA / DIGIT / "+" / "/" */
    return isalnum(ch) || ch == '+' || ch == '/';
}

int pl__sdp_candidate_check(const char *in, char *out, size_t outsz)
{
    if (!in)
        return PARLEY_EPROTO;
    while (*in == ' ' || *in == '\t')
        in++;
    if (strncmp(in, "a=", 2) == 0)
        in += 2;
    if (strncasecmp(in, "candidate:", 10) != 0)
        return PARLEY_EPROTO;
    in += 10;
    size_t len = strlen(in);
    while (len && (in[len - 1] == '\r' || in[len - 1] == '\n' || in[len - 1] == ' ' ||
                   in[len - 1] == '\t'))
        len--;
    if (len == 0 || len >= PL__SDP_CANDIDATE_MAX)
        return PARLEY_EPROTO;
    char buf[PL__SDP_CANDIDATE_MAX];
    memcpy(buf, in, len);
    buf[len] = 0;
    char *tok[PL_SDP_MAX_TOKENS];
    size_t n = 0;
    for (char *save = NULL, *t = strtok_r(buf, " \t", &save); t; t = strtok_r(NULL, " \t", &save)) {
        if (n == PL_SDP_MAX_TOKENS)
            return PARLEY_EPROTO;
        tok[n++] = t;
    }
    /* foundation component transport priority address port "typ" type [key value]... */
    if (n < 8 || (n - 8) % 2 != 0 || strcmp(tok[6], "typ") != 0)
        return PARLEY_EPROTO;
    if (strlen(tok[0]) > 32)
        return PARLEY_EPROTO;
    for (const char *p = tok[0]; *p; p++)
        if (!pl_sdp_is_ice_char((unsigned char)*p))
            return PARLEY_EPROTO;
    unsigned long long comp, prio, port;
    if (!pl_sdp_is_number(tok[1], 256, &comp) || comp == 0 ||
        !pl_sdp_is_number(tok[3], 0xffffffffull, &prio) || !pl_sdp_is_number(tok[5], 65535, &port))
        return PARLEY_EPROTO;
    const char *typ = tok[7];
    if (strcmp(typ, "host") != 0 && strcmp(typ, "srflx") != 0 && strcmp(typ, "prflx") != 0 &&
        strcmp(typ, "relay") != 0)
        return PARLEY_EPROTO;
    int is_udp = strcasecmp(tok[2], "udp") == 0;
    if (!is_udp && strcasecmp(tok[2], "tcp") != 0)
        return PARLEY_EPROTO;
    /* Well-formed from here on: what follows is "usable or not". */
    if (comp != 1 || !is_udp || port == 0)
        return 1; /* RTCP component, ICE-TCP (we gather UDP only), or a TCP-active port 9-less */
    unsigned char addr[16];
    if (inet_pton(AF_INET, tok[4], addr) != 1 && inet_pton(AF_INET6, tok[4], addr) != 1)
        return 1; /* an mDNS .local name or another host name: libnice takes numbers only */
    size_t w = 0;
    int k = snprintf(out, outsz, "candidate:");
    if (k < 0 || (size_t)k >= outsz)
        return PARLEY_EPROTO;
    w = (size_t)k;
    for (size_t i = 0; i < n; i++) {
        k = snprintf(out + w, outsz - w, i ? " %s" : "%s", tok[i]);
        if (k < 0 || (size_t)k >= outsz - w)
            return PARLEY_EPROTO;
        w += (size_t)k;
    }
    return 0;
}

/* ---- fingerprints ---- */

int pl__sdp_parse_hex_fingerprint(const char *s, uint8_t *md, size_t mdsz)
{
    size_t n = 0;
    while (*s) {
        if (!isxdigit((unsigned char)s[0]) || !isxdigit((unsigned char)s[1]) || n == mdsz)
            return PARLEY_EPROTO;
        char hex[3] = {s[0], s[1], 0};
        md[n++] = (uint8_t)strtoul(hex, NULL, 16);
        s += 2;
        if (*s == ':')
            s++;
        else if (*s)
            return PARLEY_EPROTO;
    }
    return n ? (int)n : PARLEY_EPROTO;
}

static void pl_sdp_add_fingerprint(pl__sdp_fingerprint_t *fp, size_t *nfp, const char *v)
{
    /* "sha-256 AB:CD:..." */
    const char *sp = strchr(v, ' ');
    if (!sp || *nfp == PL__SDP_MAX_FINGERPRINTS || (size_t)(sp - v) >= sizeof fp->alg)
        return;
    pl__sdp_fingerprint_t *f = &fp[*nfp];
    size_t al = (size_t)(sp - v);
    for (size_t i = 0; i < al; i++)
        f->alg[i] = (char)tolower((unsigned char)v[i]);
    f->alg[al] = 0;
    while (*sp == ' ')
        sp++;
    int n = pl__sdp_parse_hex_fingerprint(sp, f->md, sizeof f->md);
    if (n > 0) {
        f->len = (size_t)n;
        (*nfp)++;
    }
}

/* ---- parsing ---- */

static int pl_sdp_copy(char *dst, size_t dstsz, const char *v)
{
    size_t l = strlen(v);
    if (l == 0 || l >= dstsz)
        return PARLEY_EPROTO;
    memcpy(dst, v, l + 1);
    return 0;
}

static int pl_sdp_setup(const char *v)
{
    if (strcmp(v, "actpass") == 0)
        return PL__SDP_SETUP_ACTPASS;
    if (strcmp(v, "active") == 0)
        return PL__SDP_SETUP_ACTIVE;
    if (strcmp(v, "passive") == 0)
        return PL__SDP_SETUP_PASSIVE;
    return PL__SDP_SETUP_NONE;
}

/* Attributes that may be session-level and apply to the media section unless it has its own. */
typedef struct {
    char ufrag[257], pwd[257];
    pl__sdp_fingerprint_t fp[PL__SDP_MAX_FINGERPRINTS];
    size_t nfp;
    int setup, trickle, ice_lite, eoc;
} pl_sdp_common_t;

static int pl_sdp_common_attr(pl_sdp_common_t *c, const char *a)
{
    if (strncmp(a, "ice-ufrag:", 10) == 0)
        return pl_sdp_copy(c->ufrag, sizeof c->ufrag, a + 10);
    if (strncmp(a, "ice-pwd:", 8) == 0)
        return pl_sdp_copy(c->pwd, sizeof c->pwd, a + 8);
    if (strncmp(a, "fingerprint:", 12) == 0)
        pl_sdp_add_fingerprint(c->fp, &c->nfp, a + 12);
    else if (strncmp(a, "setup:", 6) == 0)
        c->setup = pl_sdp_setup(a + 6);
    else if (strncmp(a, "ice-options:", 12) == 0)
        c->trickle = strstr(a + 12, "trickle") != NULL;
    else if (strcmp(a, "ice-lite") == 0)
        c->ice_lite = 1;
    else if (strcmp(a, "end-of-candidates") == 0)
        c->eoc = 1;
    return 0;
}

static int pl_sdp_media_line(pl__sdp_remote_t *r, const char *m)
{
    /* m=application <port> <proto> <fmt> */
    char media[16], proto[32], fmt[64];
    unsigned long port;
    if (sscanf(m, "%15s %lu %31s %63s", media, &port, proto, fmt) != 4)
        return 0;
    if (strcmp(media, "application") != 0 || port == 0 || port > 65535)
        return 0;
    if (strcmp(proto, "UDP/DTLS/SCTP") == 0 || strcmp(proto, "TCP/DTLS/SCTP") == 0) {
        if (strcmp(fmt, "webrtc-datachannel") != 0)
            return 0;
        r->legacy = 0;
        r->sctp_port = 5000;
        return 1;
    }
    if (strcmp(proto, "DTLS/SCTP") == 0) {
        unsigned long long p;
        if (!pl_sdp_is_number(fmt, 65535, &p) || p == 0)
            return 0;
        r->legacy = 1;
        r->sctp_port = (unsigned)p;
        return 1;
    }
    return 0;
}

static int pl_sdp_media_attr(pl__sdp_remote_t *r, pl_sdp_common_t *mc, const char *a)
{
    unsigned long long v;
    if (strncmp(a, "mid:", 4) == 0)
        return pl_sdp_copy(r->mid, sizeof r->mid, a + 4);
    if (strncmp(a, "sctp-port:", 10) == 0) {
        if (!pl_sdp_is_number(a + 10, 65535, &v) || v == 0)
            return PARLEY_EPROTO;
        r->sctp_port = (unsigned)v;
    } else if (strncmp(a, "max-message-size:", 17) == 0) {
        /* Absurd values are clamped rather than refused: it is only a send limit. */
        if (!pl_sdp_is_number(a + 17, 0xffffffffull, &v))
            return PARLEY_EPROTO;
        r->max_message_size = (size_t)v;
    } else if (strncmp(a, "candidate:", 10) == 0) {
        char norm[PL__SDP_CANDIDATE_MAX + 16];
        if (r->ncand < PL__SDP_MAX_CANDIDATES &&
            pl__sdp_candidate_check(a, norm, sizeof norm) == 0) {
            r->cand[r->ncand] = strdup(norm);
            if (!r->cand[r->ncand])
                return PARLEY_ENOMEM;
            r->ncand++;
        }
    } else {
        return pl_sdp_common_attr(mc, a);
    }
    return 0;
}

int pl__sdp_parse(const char *sdp, pl__sdp_remote_t *r)
{
    memset(r, 0, sizeof *r);
    if (!sdp)
        return PARLEY_EPROTO;
    size_t total = strnlen(sdp, PL__SDP_MAX_LEN + 1);
    if (total > PL__SDP_MAX_LEN)
        return PARLEY_EPROTO;
    pl_sdp_common_t sess, med;
    memset(&sess, 0, sizeof sess);
    memset(&med, 0, sizeof med);
    r->max_message_size = PL__SDP_DEFAULT_MMS;
    int section = 0; /* 0 session, 1 the chosen media section, 2 any other media section */
    int found = 0;
    int rc = 0;
    const char *p = sdp;
    char line[PL__SDP_CANDIDATE_MAX + 64];
    while (*p && rc == 0) {
        const char *nl = strchr(p, '\n');
        size_t l = nl ? (size_t)(nl - p) : strlen(p);
        const char *next = nl ? nl + 1 : p + l;
        while (l && (p[l - 1] == '\r' || p[l - 1] == ' '))
            l--;
        if (l >= sizeof line) { /* no line we use is this long */
            p = next;
            continue;
        }
        memcpy(line, p, l);
        line[l] = 0;
        p = next;
        if (l < 2 || line[1] != '=')
            continue;
        if (line[0] == 'm') {
            if (!found && pl_sdp_media_line(r, line + 2)) {
                found = 1;
                section = 1;
            } else {
                section = 2;
            }
        } else if (line[0] == 'a') {
            if (section == 0)
                rc = pl_sdp_common_attr(&sess, line + 2);
            else if (section == 1)
                rc = pl_sdp_media_attr(r, &med, line + 2);
        }
    }
    if (rc)
        goto fail;
    rc = PARLEY_EPROTO;
    if (!found)
        goto fail;
    /* Media-level values override session-level ones. */
    const pl_sdp_common_t *u = med.ufrag[0] ? &med : &sess;
    const pl_sdp_common_t *f = med.nfp ? &med : &sess;
    if (!u->ufrag[0] || !(med.pwd[0] ? med.pwd : sess.pwd)[0] || !f->nfp)
        goto fail;
    memcpy(r->ufrag, u->ufrag, sizeof r->ufrag);
    memcpy(r->pwd, med.pwd[0] ? med.pwd : sess.pwd, sizeof r->pwd);
    memcpy(r->fp, f->fp, sizeof r->fp);
    r->nfp = f->nfp;
    r->setup = med.setup ? med.setup : sess.setup;
    r->trickle = med.trickle || sess.trickle;
    r->ice_lite = sess.ice_lite || med.ice_lite;
    r->end_of_candidates = med.eoc || sess.eoc;
    return 0;
fail:
    pl__sdp_remote_free(r);
    return rc;
}

void pl__sdp_remote_free(pl__sdp_remote_t *r)
{
    for (size_t i = 0; i < r->ncand; i++)
        free(r->cand[i]);
    r->ncand = 0;
}

/* ---- building ---- */

typedef struct {
    char *buf;
    size_t len, cap;
    int err;
} pl_sdp_buf_t;

static void pl_sdp_addf(pl_sdp_buf_t *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void pl_sdp_addf(pl_sdp_buf_t *b, const char *fmt, ...)
{
    if (b->err)
        return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->buf + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
        if (n < 0) {
            b->err = PARLEY_EINVAL;
            return;
        }
        if ((size_t)n < b->cap - b->len) {
            b->len += (size_t)n;
            return;
        }
        size_t cap = b->cap * 2 + (size_t)n;
        char *nb = realloc(b->buf, cap);
        if (!nb) {
            b->err = PARLEY_ENOMEM;
            return;
        }
        b->buf = nb;
        b->cap = cap;
    }
}

static const char *pl_sdp_setup_name(int s)
{
    switch (s) {
    case PL__SDP_SETUP_ACTIVE:
        return "active";
    case PL__SDP_SETUP_PASSIVE:
        return "passive";
    default:
        return "actpass";
    }
}

int pl__sdp_build(const pl__sdp_local_t *l, char **out)
{
    pl_sdp_buf_t b = {malloc(1024), 0, 1024, 0};
    if (!b.buf)
        return PARLEY_ENOMEM;
    const char *mid = l->mid && l->mid[0] ? l->mid : "0";
    pl_sdp_addf(&b, "v=0\r\no=- %" PRIu64 " %u IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n", l->session_id,
                l->version);
    pl_sdp_addf(&b, "a=group:BUNDLE %s\r\na=msid-semantic: WMS\r\n", mid);
    if (l->legacy)
        pl_sdp_addf(&b, "m=application 9 DTLS/SCTP %u\r\n", l->sctp_port);
    else
        pl_sdp_addf(&b, "m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\n");
    pl_sdp_addf(&b, "c=IN IP4 0.0.0.0\r\n");
    for (size_t i = 0; i < l->ncand; i++)
        pl_sdp_addf(&b, "a=%s\r\n", l->candidates[i]);
    if (l->end_of_candidates)
        pl_sdp_addf(&b, "a=end-of-candidates\r\n");
    pl_sdp_addf(&b, "a=ice-ufrag:%s\r\na=ice-pwd:%s\r\na=ice-options:trickle\r\n", l->ufrag,
                l->pwd);
    pl_sdp_addf(&b, "a=fingerprint:sha-256 %s\r\na=setup:%s\r\na=mid:%s\r\n", l->fingerprint,
                pl_sdp_setup_name(l->setup), mid);
    if (l->legacy)
        pl_sdp_addf(&b, "a=sctpmap:%u webrtc-datachannel 65535\r\n", l->sctp_port);
    else
        pl_sdp_addf(&b, "a=sctp-port:%u\r\n", l->sctp_port);
    pl_sdp_addf(&b, "a=max-message-size:%zu\r\n", l->max_message_size);
    if (b.err) {
        free(b.buf);
        return b.err;
    }
    *out = b.buf;
    return 0;
}
