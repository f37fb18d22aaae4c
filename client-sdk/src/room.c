/* room: the members of the room and one WebRTC connection (pc.h) per peer, glued to the
 * signaling envelopes (notes/sdk-plan.md section 7).
 *
 * - offer-request{peer P}: we offer to P (unless a connection to P exists).
 * - offer from P: we answer with a new connection. Glare (our offer to P is outstanding):
 *   the lower peer id is polite: it drops its own connection and answers; the higher one
 *   ignores P's offer (P will answer ours).
 * - answer/candidate from P go to P's connection; ours go out through the signaling client
 *   (end-of-candidates as candidate null).
 * - peer-left / room-closed: the connection is closed and on_peer_gone reported.
 * - a connection that fails is retried with backoff (jittered): the impolite side offers
 *   again, the polite one waits twice as long for that offer before offering itself; after
 *   MAX_ATTEMPTS failures in a row, on_peer_gone(FAILED).
 * Every callback of pc and sig is already deferred to the loop, so user callbacks run here
 * directly, on the SDK thread, never inside a library call. */
#include "internal.h"

#include "pc.h"

#include <stdlib.h>
#include <string.h>

#define MAX_PEERS         10000
#define MAX_ATTEMPTS      5
#define RETRY_BASE_MS     500
#define RETRY_CAP_MS      30000
#define MAX_STUN          4
#define NAME_MAX_LEN      128
#define MAX_HELD          64   /* test hook hold_signals */
#define MAX_CANDIDATE_LEN 1024 /* longer remote candidate strings are dropped */

enum pstate { P_NONE, P_OFFERING, P_ANSWERING, P_OPEN };

typedef struct peer {
    struct peer *next;
    pl__room_t *room;
    char id[65];
    char user_id[NAME_MAX_LEN + 1];
    char name[NAME_MAX_LEN + 1];
    pl__pc_t *pc;
    enum pstate state;
    unsigned attempt;
    uv_timer_t *retry; /* allocated: it closes asynchronously */
    unsigned seq;      /* which connection of this client p->pc is (1, 2, ...) */
    int skip_cands;    /* glare: P's candidates belong to its ignored offer until P answers */
    int announced;     /* the user knows P (on_joined's list or on_peer_joined) */
} peer_t;

struct pl__room {
    parley_client *c;
    peer_t *peers;
    size_t npeers;
    char my_id[65];
    /* STUN servers of this membership (ice_servers, else the join answer's iceServers):
     * slot i is the i-th usable stun: entry, numeric ("ip:port", "[ip6]:port") once known;
     * stun is the resolved ones in list order, NULL-terminated, for new connections (libnice
     * takes one STUN server: ice.c uses the first). */
    char *slot[MAX_STUN];
    int nslots;
    char *stun[MAX_STUN + 1];
    int nstun;
    struct stun_req *pending[MAX_STUN]; /* STUN names being resolved */
    int resolving;
    unsigned npcs;          /* connections created */
    json_t *held[MAX_HELD]; /* test hook hold_signals */
    int nheld;
};

typedef struct stun_req {
    uv_getaddrinfo_t req;
    pl__room_t *room; /* NULL once the room (or the membership) is gone */
    int slot;
    unsigned port;
} stun_req_t;

static void start_offer(peer_t *p);

/* ---- members ---- */

static peer_t *find_peer(pl__room_t *r, const char *id)
{
    for (peer_t *p = r->peers; p && id; p = p->next)
        if (strcmp(p->id, id) == 0)
            return p;
    return NULL;
}

/* The member named by a Peer object ({peerId, userId, name}), added if new. */
static peer_t *member_from(pl__room_t *r, const json_t *peer)
{
    const char *id = json_string_value(json_object_get(peer, "peerId"));
    if (!pl__is_id(id) || strcmp(id, r->my_id) == 0)
        return NULL;
    peer_t *p = find_peer(r, id);
    if (!p) {
        if (r->npeers >= MAX_PEERS || !(p = calloc(1, sizeof *p)))
            return NULL;
        p->room = r;
        snprintf(p->id, sizeof p->id, "%s", id);
        p->next = r->peers;
        r->peers = p;
        r->npeers++;
    }
    const char *uid = json_string_value(json_object_get(peer, "userId"));
    const char *name = json_string_value(json_object_get(peer, "name"));
    if (uid)
        snprintf(p->user_id, sizeof p->user_id, "%s", uid);
    if (name)
        snprintf(p->name, sizeof p->name, "%s", name);
    return p;
}

/* A sender we only know by id (its offer came before any peer event). */
static peer_t *member_by_id(pl__room_t *r, const char *id)
{
    peer_t *p = find_peer(r, id);
    if (p)
        return p;
    json_t *o = json_pack("{s:s}", "peerId", id ? id : "");
    p = o ? member_from(r, o) : NULL;
    json_decref(o);
    return p;
}

static parley_peer public_peer(const peer_t *p)
{
    parley_peer pp = {p->id, p->user_id, p->name};
    return pp;
}

static void on_timer_closed(uv_handle_t *h)
{
    free(h);
}

static void stop_retry(peer_t *p)
{
    if (p->retry) {
        uv_timer_stop(p->retry);
        uv_close((uv_handle_t *)p->retry, on_timer_closed);
        p->retry = NULL;
    }
}

static void close_pc(peer_t *p)
{
    if (p->pc) {
        pl__pc_close(p->pc);
        p->pc = NULL;
    }
    if (p->state == P_OPEN)
        pl__snap_del(p->room->c, p->id);
    p->state = P_NONE;
    p->skip_cands = 0;
}

static void gone(peer_t *p, parley_gone_reason why)
{
    parley_client *c = p->room->c;
    parley_peer pp = public_peer(p);
    if (!c->stopping && c->cb.on_peer_gone)
        c->cb.on_peer_gone(c, &pp, why, c->user);
}

static void remove_peer(pl__room_t *r, peer_t *p)
{
    for (peer_t **pp = &r->peers; *pp; pp = &(*pp)->next) {
        if (*pp == p) {
            *pp = p->next;
            break;
        }
    }
    r->npeers--;
    stop_retry(p);
    close_pc(p);
    free(p);
}

static int polite(const peer_t *p)
{
    return strcmp(p->room->my_id, p->id) < 0;
}

/* ---- pc callbacks ---- */

static void pc_local_description(void *ud, const char *type, const char *sdp)
{
    peer_t *p = ud;
    json_t *f = json_pack("{s:s}", "sdp", sdp);
    int rc = f ? pl__sig_send(p->room->c->sig, type, p->id, f) : PARLEY_ENOMEM;
    if (p->room->c->test && strcmp(type, "offer") == 0)
        p->room->c->test->offers_sent++;
    json_decref(f);
    if (rc < 0)
        pl__logf(&p->room->c->log, PL__LOG_WARN, "cannot send the %s to %s: %s", type, p->id,
                 parley_strerror(rc));
}

static void pc_local_candidate(void *ud, const char *candidate, const char *mid)
{
    peer_t *p = ud;
    json_t *f = candidate ? json_pack("{s:{s:s,s:s,s:i}}", "candidate", "candidate", candidate,
                                      "sdpMid", mid ? mid : "0", "sdpMLineIndex", 0)
                          : json_pack("{s:n}", "candidate");
    int rc = f ? pl__sig_send(p->room->c->sig, "candidate", p->id, f) : PARLEY_ENOMEM;
    json_decref(f);
    if (rc < 0)
        pl__logf(&p->room->c->log, PL__LOG_DEBUG, "candidate to %s not sent: %s", p->id,
                 parley_strerror(rc));
}

static void pc_open(void *ud)
{
    peer_t *p = ud;
    parley_client *c = p->room->c;
    p->state = P_OPEN;
    p->attempt = 0;
    stop_retry(p);
    pl__snap_set(c, p->id, pl__pc_max_message_size(p->pc));
    parley_peer pp = public_peer(p);
    if (!c->stopping && c->cb.on_peer_connected)
        c->cb.on_peer_connected(c, &pp, c->user);
}

static void pc_message(void *ud, int binary, const void *data, size_t len)
{
    peer_t *p = ud;
    parley_client *c = p->room->c;
    parley_peer pp = public_peer(p);
    if (!c->stopping && c->cb.on_message)
        c->cb.on_message(c, &pp, binary ? PARLEY_MSG_BINARY : PARLEY_MSG_TEXT, data, len, c->user);
}

static void on_retry(uv_timer_t *t)
{
    peer_t *p = t->data;
    stop_retry(p);
    if (!p->pc)
        start_offer(p);
}

static void pc_closed(void *ud, int err)
{
    peer_t *p = ud;
    pl__room_t *r = p->room;
    int was_open = p->state == P_OPEN;
    pl__logf(&r->c->log, PL__LOG_INFO, "connection to %s closed: %s", p->id, parley_strerror(err));
    close_pc(p);
    if (err == 0) {
        if (was_open)
            gone(p, PARLEY_GONE_LEFT); /* the peer closed it on purpose */
        return;
    }
    if (++p->attempt >= MAX_ATTEMPTS) {
        gone(p, PARLEY_GONE_FAILED);
        return;
    }
    /* Retry: the impolite side offers after the backoff, the polite side waits twice as
     * long for that offer, then offers itself (a collision is settled as glare). */
    parley_client *c = r->c;
    uint64_t base = c->test && c->test->retry_base_ms ? c->test->retry_base_ms : RETRY_BASE_MS;
    uint64_t ms = pl__backoff_ms(p->attempt, base, RETRY_CAP_MS);
    if (polite(p))
        ms = 2 * ms + base;
    if (c->test)
        c->test->retries++;
    stop_retry(p);
    p->retry = malloc(sizeof *p->retry);
    if (!p->retry)
        return;
    uv_timer_init(&r->c->loop, p->retry);
    p->retry->data = p;
    uv_timer_start(p->retry, on_retry, ms, 0);
}

/* ---- connections ---- */

static int new_pc(peer_t *p)
{
    pl__room_t *r = p->room;
    parley_client *c = r->c;
    pl__pc_config_t cfg = {
        .local_addresses = (const char *const *)c->ice_addrs,
        .stun_servers = r->nstun ? (const char *const *)r->stun : NULL,
        .max_message_size = c->cfg.max_message_size,
        .connect_timeout_ms = c->test ? c->test->connect_timeout_ms : 0,
    };
    pl__pc_callbacks_t cb = {p,       pc_local_description, pc_local_candidate,
                             pc_open, pc_message,           pc_closed};
    stop_retry(p);
    int rc = pl__pc_new(&c->loop, &cfg, &cb, &p->pc);
    if (rc < 0) {
        p->pc = NULL;
        pl__logf(&c->log, PL__LOG_WARN, "cannot create a connection to %s: %s", p->id,
                 parley_strerror(rc));
        return rc;
    }
    p->seq = ++r->npcs;
    if (c->test)
        c->test->pcs = r->npcs;
    return rc;
}

static void start_offer(peer_t *p)
{
    if (p->pc || new_pc(p) < 0)
        return;
    p->state = P_OFFERING;
    int rc = pl__pc_create_offer(p->pc);
    if (rc < 0) {
        close_pc(p);
        parley_client *c = p->room->c;
        if (!c->stopping && c->cb.on_error)
            c->cb.on_error(c, "connect", rc, NULL, c->user);
    }
}

static void on_offer(pl__room_t *r, peer_t *p, const char *sdp)
{
    if (p->pc && p->state == P_OFFERING && !polite(p)) {
        pl__logf(&r->c->log, PL__LOG_DEBUG, "glare with %s: keeping our offer", p->id);
        /* P sent its candidates (and end-of-candidates) for that offer after it, and the
         * server keeps P's order: until P's answer to ours, whatever P trickles belongs to
         * the ignored offer. Fed to our connection, a stale end-of-candidates told ICE
         * that P had no more candidates before P's real ones came. */
        p->skip_cands = 1;
        if (r->c->test)
            r->c->test->glare_kept++;
        return;
    }
    if (p->pc && p->state == P_OFFERING && r->c->test)
        r->c->test->glare_yielded++;
    /* Polite in glare, or a new offer replacing the connection: start over as answerer. */
    close_pc(p);
    if (new_pc(p) < 0)
        return;
    p->state = P_ANSWERING;
    int rc = pl__pc_set_remote(p->pc, "offer", sdp);
    if (rc < 0) {
        pl__logf(&r->c->log, PL__LOG_WARN, "unusable offer from %s: %s", p->id,
                 parley_strerror(rc));
        close_pc(p);
    }
}

static void on_candidate(peer_t *p, const json_t *cand)
{
    pl__test_hooks_t *t = p->room->c->test;
    if (p->pc && p->skip_cands && t)
        t->stale_cands++;
    if (!p->pc || p->skip_cands)
        return;
    if (t && p->seq <= t->drop_remote_candidates)
        return; /* test hook: this connection's ICE is to fail */
    const char *line = NULL, *mid = NULL;
    if (json_is_string(cand)) {
        line = json_string_value(cand);
    } else if (json_is_object(cand)) {
        line = json_string_value(json_object_get(cand, "candidate"));
        mid = json_string_value(json_object_get(cand, "sdpMid"));
        if (!line)
            return; /* an object without a candidate string is not one */
    } else if (!json_is_null(cand)) {
        return;
    }
    if (line && strlen(line) > MAX_CANDIDATE_LEN) {
        /* Dropped: no real candidate is that long. (It used to be taken as end-of-candidates,
         * which told ICE that P had nothing more to offer.) */
        pl__logf(&p->room->c->log, PL__LOG_DEBUG, "candidate from %s dropped: %zu bytes", p->id,
                 strlen(line));
        if (t)
            t->long_cands++;
        return;
    }
    if (line && !*line)
        line = NULL; /* "" is an end-of-candidates marker */
    if (!line && t)
        t->remote_eocs++;
    pl__pc_add_candidate(p->pc, line, mid);
}

void pl__room_on_envelope(pl__room_t *r, const json_t *env)
{
    const char *type = json_string_value(json_object_get(env, "type"));
    const char *from = json_string_value(json_object_get(env, "from"));
    json_t *peer = json_object_get(env, "peer");
    parley_client *c = r->c;
    if (!type)
        return;
    if (strcmp(type, "offer-request") == 0 || strcmp(type, "peer-joined") == 0) {
        peer_t *p = member_from(r, peer);
        /* offer-request means a peer joined too (docs/api.md: "a peer joined and the topology
         * chose the recipient to make an offer to it"): on_peer_joined for both, once per
         * member (in a mesh room nobody ever got peer-joined, so it never ran). */
        if (p && !p->announced) {
            p->announced = 1;
            parley_peer pp = public_peer(p);
            if (!c->stopping && c->cb.on_peer_joined)
                c->cb.on_peer_joined(c, &pp, c->user);
        }
        if (p && strcmp(type, "offer-request") == 0 && !p->pc &&
            !(c->test && c->test->manual_offers))
            start_offer(p);
    } else if (strcmp(type, "peer-left") == 0) {
        peer_t *p = find_peer(r, json_string_value(json_object_get(peer, "peerId")));
        if (p) {
            int had = p->pc != NULL || p->retry != NULL;
            close_pc(p);
            if (had)
                gone(p, PARLEY_GONE_LEFT);
            remove_peer(r, p);
        }
    } else if (strcmp(type, "room-closed") == 0) {
        pl__room_close_all(r, 1, PARLEY_GONE_ROOM_CLOSED);
    } else if (!pl__is_id(from)) {
        return;
    } else if (c->test && c->test->hold_signals && r->nheld < MAX_HELD) {
        r->held[r->nheld++] = json_deep_copy(env); /* offer, answer, candidate: in order */
        if (strcmp(type, "offer") == 0)
            c->test->offers_held++;
    } else if (strcmp(type, "offer") == 0) {
        peer_t *p = member_by_id(r, from);
        const char *sdp = json_string_value(json_object_get(env, "sdp"));
        if (p && sdp)
            on_offer(r, p, sdp);
    } else if (strcmp(type, "answer") == 0) {
        peer_t *p = find_peer(r, from);
        const char *sdp = json_string_value(json_object_get(env, "sdp"));
        if (p && p->pc && p->state == P_OFFERING && sdp) {
            p->skip_cands = 0; /* what P trickles now is for this answer */
            int rc = pl__pc_set_remote(p->pc, "answer", sdp);
            if (rc < 0)
                pl__logf(&c->log, PL__LOG_WARN, "unusable answer from %s: %s", p->id,
                         parley_strerror(rc));
        }
    } else if (strcmp(type, "candidate") == 0) {
        peer_t *p = find_peer(r, from);
        if (p)
            on_candidate(p, json_object_get(env, "candidate"));
    }
}

/* ---- joining ---- */

static void stun_rebuild(pl__room_t *r)
{
    r->nstun = 0;
    for (int i = 0; i < r->nslots; i++)
        if (r->slot[i])
            r->stun[r->nstun++] = r->slot[i];
    r->stun[r->nstun] = NULL;
}

static void stun_set(pl__room_t *r, int slot, const char *ip, int v6, unsigned port)
{
    size_t n = strlen(ip) + 10;
    char *s = malloc(n);
    if (!s)
        return;
    snprintf(s, n, v6 ? "[%s]:%u" : "%s:%u", ip, port);
    r->slot[slot] = s;
    stun_rebuild(r);
}

/* Forgets the STUN servers (a new membership resolves them again); resolutions in flight
 * free themselves and find no room (one already running in the thread pool cannot be
 * cancelled). */
static void stun_reset(pl__room_t *r)
{
    for (int i = 0; i < r->resolving; i++) {
        r->pending[i]->room = NULL;
        uv_cancel((uv_req_t *)&r->pending[i]->req);
    }
    r->resolving = 0;
    for (int i = 0; i < r->nslots; i++)
        free(r->slot[i]);
    memset(r->slot, 0, sizeof r->slot);
    r->nslots = 0;
    stun_rebuild(r);
}

static void on_stun_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    stun_req_t *q = req->data;
    pl__room_t *r = q->room;
    if (r) {
        for (int i = 0; i < r->resolving; i++)
            if (r->pending[i] == q)
                r->pending[i] = r->pending[--r->resolving];
        /* IPv4 first: the usual local addresses are IPv4, and libnice only asks a STUN
         * server of the address family of the candidate's base. */
        const struct addrinfo *pick = NULL;
        for (const struct addrinfo *a = status == 0 ? res : NULL; a; a = a->ai_next) {
            if (a->ai_family == AF_INET) {
                pick = a;
                break;
            }
            if (!pick && a->ai_family == AF_INET6)
                pick = a;
        }
        char ip[64] = "";
        if (pick && pick->ai_family == AF_INET)
            uv_ip4_name((const struct sockaddr_in *)pick->ai_addr, ip, sizeof ip);
        else if (pick)
            uv_ip6_name((const struct sockaddr_in6 *)pick->ai_addr, ip, sizeof ip);
        if (*ip)
            stun_set(r, q->slot, ip, pick->ai_family == AF_INET6, q->port);
        else
            pl__logf(&r->c->log, PL__LOG_WARN, "STUN server %d: cannot resolve its name: %s",
                     q->slot + 1, status ? uv_strerror(status) : "no address");
    }
    uv_freeaddrinfo(res);
    free(q);
}

/* One ice_servers / iceServers entry (pl__parse_stun_url): a numeric host is usable at
 * once, a name is resolved on the SDK loop (uv_getaddrinfo: never blocking; a connection
 * made before it is resolved goes without that server); TURN and malformed entries are
 * skipped, said in the log (warn for ours: the user asked for them). */
static void add_stun_url(pl__room_t *r, const char *url, int from_config)
{
    char host[256];
    unsigned port;
    int rc = pl__parse_stun_url(url, host, sizeof host, &port);
    int level = from_config ? PL__LOG_WARN : PL__LOG_INFO;
    if (rc == PL__STUN_URL_UNSUPPORTED) {
        pl__logf(&r->c->log, level,
                 "ICE server %.200s ignored: TURN (and STUN over TLS) is not "
                 "supported by this version",
                 url);
        return;
    }
    if (rc < 0) {
        pl__logf(&r->c->log, level, "ICE server %.200s ignored: not a stun: URL", url);
        return;
    }
    if (r->nslots >= MAX_STUN) {
        pl__logf(&r->c->log, PL__LOG_DEBUG, "STUN server %.200s ignored: %d are kept", url,
                 MAX_STUN);
        return;
    }
    int slot = r->nslots++;
    unsigned char buf[sizeof(struct in6_addr)];
    if (uv_inet_pton(AF_INET, host, buf) == 0 || uv_inet_pton(AF_INET6, host, buf) == 0) {
        stun_set(r, slot, host, strchr(host, ':') != NULL, port);
        return;
    }
    stun_req_t *q = calloc(1, sizeof *q);
    if (!q)
        return;
    q->room = r;
    q->slot = slot;
    q->port = port;
    q->req.data = q;
    struct addrinfo hints;
    memset(&hints, 0, sizeof hints);
    hints.ai_socktype = SOCK_DGRAM;
    hints.ai_family = AF_UNSPEC;
    if (uv_getaddrinfo(&r->c->loop, &q->req, on_stun_resolved, host, NULL, &hints) < 0) {
        free(q);
        return;
    }
    r->pending[r->resolving++] = q;
}

void pl__room_on_joined(pl__room_t *r, const json_t *answer)
{
    snprintf(r->my_id, sizeof r->my_id, "%s", json_string_value(json_object_get(answer, "peerId")));
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(answer, "peers"), i, v)
    {
        peer_t *p = member_from(r, v);
        if (p)
            p->announced = 1; /* on_joined lists them */
    }
    stun_reset(r);
    if (r->c->ice_servers) { /* ours replace the server's */
        for (char **u = r->c->ice_servers; *u; u++)
            add_stun_url(r, *u, 1);
        return;
    }
    json_array_foreach(json_object_get(answer, "iceServers"), i, v)
    {
        json_t *urls = json_object_get(v, "urls");
        if (json_is_string(urls))
            add_stun_url(r, json_string_value(urls), 0);
        size_t j;
        json_t *u;
        json_array_foreach(urls, j, u) if (json_is_string(u))
            add_stun_url(r, json_string_value(u), 0);
    }
}

void pl__room_close_all(pl__room_t *r, int report, parley_gone_reason why)
{
    while (r->peers) {
        peer_t *p = r->peers;
        int had = p->pc != NULL || p->retry != NULL;
        close_pc(p);
        if (report && had)
            gone(p, why);
        remove_peer(r, p);
    }
    pl__snap_clear(r->c);
    r->my_id[0] = '\0';
}

/* ---- sending ---- */

int pl__room_send(pl__room_t *r, const char *peer_id, parley_msg_kind kind, const void *data,
                  size_t len)
{
    /* parley.h: ESTATE before joining (it said ENOTFOUND). */
    if (!r->my_id[0])
        return PARLEY_ESTATE;
    peer_t *p = find_peer(r, peer_id);
    if (!p)
        return PARLEY_ENOTFOUND;
    if (!p->pc || p->state != P_OPEN)
        return PARLEY_ENOTCONN;
    return pl__pc_send(p->pc, kind == PARLEY_MSG_BINARY, data, len);
}

int pl__room_broadcast(pl__room_t *r, parley_msg_kind kind, const void *data, size_t len)
{
    int n = 0;
    if (!r->my_id[0])
        return PARLEY_ESTATE;
    for (peer_t *p = r->peers; p; p = p->next)
        if (p->pc && p->state == P_OPEN &&
            pl__pc_send(p->pc, kind == PARLEY_MSG_BINARY, data, len) == 0)
            n++;
    return n;
}

/* ---- lifetime ---- */

int pl__room_new(parley_client *c, pl__room_t **out)
{
    pl__room_t *r = calloc(1, sizeof *r);
    if (!r)
        return PARLEY_ENOMEM;
    r->c = c;
    *out = r;
    return 0;
}

void pl__room_free(pl__room_t *r)
{
    if (!r)
        return;
    pl__room_close_all(r, 0, PARLEY_GONE_LEFT);
    for (int i = 0; i < r->nheld; i++)
        json_decref(r->held[i]);
    stun_reset(r);
    free(r);
}

/* ---- tests only (internal.h) ---- */

int pl__room_test_offer(pl__room_t *r, const char *peer_id)
{
    peer_t *p = find_peer(r, peer_id);
    if (!p)
        return PARLEY_ENOTFOUND;
    if (p->pc)
        return PARLEY_ESTATE;
    start_offer(p);
    return p->pc ? 0 : PARLEY_ENOMEM;
}

void pl__room_test_release(pl__room_t *r)
{
    int n = r->nheld;
    json_t *held[MAX_HELD];
    memcpy(held, r->held, sizeof held);
    r->nheld = 0;
    pl__test_hooks_t *t = r->c->test;
    if (t) { /* for good */
        t->hold_signals = 0;
        t->offers_held = 0;
    }
    for (int i = 0; i < n; i++) {
        pl__room_on_envelope(r, held[i]);
        json_decref(held[i]);
    }
}
