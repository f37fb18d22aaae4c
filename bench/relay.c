/* relay: N WebSockets in N/2 pairs; each side sends the other offers, answers and
 * candidates in rotation through the server, and the receiver (same process) measures the
 * latency from send to receipt with the timestamp the payload carries.
 *
 * parleyd: per pair, user A creates a private room and user B joins it over REST; then both
 * open /signaling/ws?token= (subprotocol parley.v1) and send {"type":..,"to":..,"sdp"|
 * "candidate":..} to each other. PeerJS: both open <path>/peerjs?key=&id=&token= with random
 * ids, wait for {"type":"OPEN"}, and send {"type":"OFFER"|..,"dst":..,"payload":{..}}.
 *
 * The unit is the message: pb.issued++ per send, pb_done(latency) per receipt. Nothing is
 * sent until every socket has opened or failed; the relay phase then runs to the deadline
 * (the setup counts against --duration, the throughput only the relay phase), and the
 * messages still in flight get --timeout to arrive; those that do not are errors
 * ("timeout"). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "common/json.h"
#include "conn.h"
#include "wsc.h"

/* With --rate, the slots are kept, but never more than this many in flight per sender
 * (parleyd's bound): a slot beyond it waits for a receipt. */
#define RELAY_RATE_CAP 64
/* How often the run checks its deadline (senders with full windows send nothing). */
#define WATCH_MS 20
/* Descriptors kept for everything but the WebSockets (stdio, the setup's HTTP, lws). */
#define FD_RESERVE 64

enum { T_OFFER, T_ANSWER, T_CANDIDATE, T_COUNT };
static const char *const parley_types[T_COUNT] = {"offer", "answer", "candidate"};
static const char *const peerjs_types[T_COUNT] = {"OFFER", "ANSWER", "CANDIDATE"};

typedef struct side side_t;
struct side {
    side_t *peer;
    pb_wsc_t *ws;
    char id[64];         /* parleyd peerId or PeerJS id: where the other side sends */
    char *token;         /* parleyd signaling token (borrowed from the member) or PeerJS token */
    bool ready;          /* open (PeerJS: OPEN received) */
    bool done;           /* resolved before the relay phase: ready or failed */
    bool dead;           /* the pair lost this socket */
    bool refused;        /* PeerJS said ERROR: its close is not counted again */
    unsigned inflight;   /* messages this side sent that are neither received nor refused */
    unsigned late_slots; /* --rate: slots waiting for room under RELAY_RATE_CAP */
    unsigned rot;        /* next type in the rotation */
    uint64_t seq;        /* next sequence number this side sends */
    uint64_t expect;     /* next sequence number expected from the peer */
    uint64_t next_due_ns;
    uv_timer_t pace;
};

static struct {
    side_t *s; /* 2 per pair: s[2p] is A, s[2p+1] is B */
    unsigned n;
    pb_member_t *members;
    bool peerjs;
    bool relaying, draining;
    unsigned resolved; /* sides done before the relay phase */
    uint64_t inflight; /* all sides */
    uint64_t interval_ns;
    uint64_t setup_ns, relay_start_ns;
    uint64_t sent_by[T_COUNT], recv_by[T_COUNT];
    uint64_t other_msgs; /* server messages that are not ours (offer-request, peer-joined) */
    uint64_t lost, out_of_order;
    char *buf; /* one message being built */
    size_t buf_cap;
    uv_timer_t watch, drain, beat;
    bool timers;
} r;

static void side_pump(side_t *s);

/* ----------------------------------------------------------------------------------- */
/* Sending */

/* The payload: "pb <seq> <send time ns> " then 'x' up to --size bytes (never less than the
 * header). Plain ASCII, so it goes into JSON strings as is. */
static size_t make_payload(char *p, size_t cap, uint64_t seq, uint64_t t)
{
    int h = snprintf(p, cap, "pb %llu %llu ", (unsigned long long)seq, (unsigned long long)t);
    size_t len = h > 0 ? (size_t)h : 0;
    size_t want = pb.o.size < cap - 1 ? pb.o.size : cap - 1;
    if (len < want) {
        memset(p + len, 'x', want - len);
        len = want;
    }
    p[len] = '\0';
    return len;
}

static void lose(side_t *s, unsigned n, const char *kind)
{
    for (unsigned i = 0; i < n; i++) {
        pb_error(kind);
        pb_done(0, false);
    }
    r.lost += n;
    r.inflight -= n;
    s->inflight -= n;
}

static bool send_one(side_t *s)
{
    int t = (int)(s->rot++ % T_COUNT);
    char *b = r.buf;
    size_t cap = r.buf_cap;
    int h;
    if (r.peerjs) {
        h = snprintf(b, cap, "{\"type\":\"%s\",\"dst\":\"%s\",\"payload\":{\"%s\":\"",
                     peerjs_types[t], s->peer->id, t == T_CANDIDATE ? "candidate" : "sdp");
    } else {
        h = snprintf(b, cap, "{\"type\":\"%s\",\"to\":\"%s\",\"%s\":\"", parley_types[t],
                     s->peer->id, t == T_CANDIDATE ? "candidate" : "sdp");
    }
    if (h < 0 || (size_t)h >= cap)
        return false;
    size_t len = (size_t)h;
    len += make_payload(b + len, cap - len - 8, s->seq, uv_hrtime());
    const char *tail = r.peerjs ? "\"}}" : "\"}";
    size_t tl = strlen(tail);
    memcpy(b + len, tail, tl + 1);
    len += tl;
    pb.issued++;
    s->seq++;
    s->inflight++;
    r.inflight++;
    r.sent_by[t]++;
    if (pb_wsc_send(s->ws, b, len) != 0) {
        lose(s, 1, "send");
        return false;
    }
    return true;
}

/* Flat out (--rate 0), each sender keeps at most --window messages in flight (default 8, at
 * most 64: what parleyd holds undelivered per sender and member; it answers rate_limited
 * beyond, so the bench never trips it). A window too small measures the round trip, not
 * the server: with the Redis engine each message waits on a call to Redis. */
static unsigned window(void)
{
    return r.interval_ns ? RELAY_RATE_CAP : pb.o.window;
}

/* Flat out: fill the window. */
static void side_pump(side_t *s)
{
    if (!r.relaying || r.draining || s->dead || s->peer->dead)
        return;
    if (r.interval_ns) {
        while (s->late_slots && s->inflight < window() && pb_may_issue()) {
            s->late_slots--;
            if (!send_one(s))
                return;
        }
        return;
    }
    while (s->inflight < pb.o.window && pb_may_issue())
        if (!send_one(s))
            return;
}

static void on_pace(uv_timer_t *t)
{
    side_t *s = t->data;
    if (!r.relaying || r.draining || s->dead || s->peer->dead || !pb_may_issue())
        return;
    if (s->inflight < window())
        send_one(s);
    else
        s->late_slots++; /* sent on the next receipt: the offered rate is kept */
    uint64_t now = uv_hrtime();
    s->next_due_ns += r.interval_ns;
    uint64_t ms = s->next_due_ns > now ? (s->next_due_ns - now) / 1000000 : 0;
    uv_timer_start(&s->pace, on_pace, ms, 0);
}

/* ----------------------------------------------------------------------------------- */
/* The run's phases */

static void on_drain_timeout(uv_timer_t *t)
{
    (void)t;
    for (unsigned i = 0; i < r.n; i++)
        if (r.s[i].inflight)
            lose(&r.s[i], r.s[i].inflight, "timeout");
    pb_finish();
}

/* No more sends: what is in flight gets --timeout to arrive. */
static void begin_drain(void)
{
    if (r.draining)
        return;
    r.draining = true;
    for (unsigned i = 0; i < r.n; i++)
        uv_timer_stop(&r.s[i].pace);
    if (r.inflight == 0)
        pb_wsc_finish_soon();
    else
        uv_timer_start(&r.drain, on_drain_timeout, pb.o.timeout_ms, 0);
}

static void on_watch(uv_timer_t *t)
{
    (void)t;
    if (!pb_may_issue()) {
        if (r.relaying)
            begin_drain();
        else
            pb_finish(); /* the deadline passed during the setup */
    }
}

static void start_relay(void)
{
    r.relaying = true;
    r.relay_start_ns = uv_hrtime();
    /* The throughput is the relay phase's: the setup and the opening are left out. */
    pb.start_ns = r.relay_start_ns;
    unsigned live = 0;
    for (unsigned i = 0; i < r.n; i++)
        if (!r.s[i].dead && !r.s[i].peer->dead)
            live++;
    if (live == 0) {
        pb_wsc_finish_soon();
        return;
    }
    if (pb.o.rate > 0)
        r.interval_ns = (uint64_t)(1e9 * live / pb.o.rate);
    unsigned k = 0;
    for (unsigned i = 0; i < r.n; i++) {
        side_t *s = &r.s[i];
        if (s->dead || s->peer->dead)
            continue;
        if (r.interval_ns) {
            /* Spread the senders' first slots over one interval. */
            uint64_t offset = r.interval_ns * k++ / live;
            s->next_due_ns = r.relay_start_ns + offset;
            uv_timer_start(&s->pace, on_pace, offset / 1000000, 0);
        } else {
            side_pump(s);
        }
    }
}

static void side_resolved(side_t *s)
{
    if (s->done)
        return;
    s->done = true;
    if (++r.resolved == r.n && !r.relaying)
        start_relay();
}

/* This side's socket is gone: the pair stops, and what either side had in flight is lost
 * (counted at once, rather than waiting for --timeout). */
static void side_dead(side_t *s)
{
    if (s->dead)
        return;
    s->dead = true;
    side_t *o = s->peer;
    if (s->inflight)
        lose(s, s->inflight, "lost");
    if (o->inflight)
        lose(o, o->inflight, "lost");
    if (!o->dead && o->ws) {
        pb_wsc_close(o->ws);
        o->ws = NULL;
        o->dead = true;
        side_resolved(o);
    }
    side_resolved(s);
    if (r.relaying) {
        unsigned live = 0;
        for (unsigned i = 0; i < r.n && !live; i++)
            live += !r.s[i].dead;
        if (!live)
            pb_wsc_finish_soon();
        else if (r.draining && r.inflight == 0)
            pb_wsc_finish_soon();
    }
}

/* ----------------------------------------------------------------------------------- */
/* Receiving */

static void got_ours(side_t *rx, int t, const char *payload)
{
    side_t *tx = rx->peer;
    unsigned long long seq, ts;
    if (!payload || sscanf(payload, "pb %llu %llu ", &seq, &ts) != 2) {
        r.other_msgs++;
        return;
    }
    uint64_t now = uv_hrtime();
    if (seq != rx->expect) {
        r.out_of_order++;
        pb_error("out_of_order");
    }
    rx->expect = seq + 1;
    r.recv_by[t]++;
    pb_done(now > ts ? (now - ts) / 1000 : 0, true);
    if (tx->inflight) {
        tx->inflight--;
        r.inflight--;
    }
    if (r.draining) {
        if (r.inflight == 0)
            pb_wsc_finish_soon();
        return;
    }
    side_pump(tx);
}

/* A message the server refused: it comes back to its sender. */
static void got_refusal(side_t *s, const char *kind)
{
    pb_error(kind);
    pb_done(0, false);
    if (s->inflight) {
        s->inflight--;
        r.inflight--;
    }
    if (r.draining && r.inflight == 0)
        pb_wsc_finish_soon();
    else
        side_pump(s);
}

static int type_index(const char *type, const char *const names[T_COUNT])
{
    for (int i = 0; i < T_COUNT; i++)
        if (strcmp(type, names[i]) == 0)
            return i;
    return -1;
}

static void on_message(pb_wsc_t *w, void *ud, const char *text, size_t len)
{
    (void)w;
    side_t *s = ud;
    json_t *j = pl_json_loadb(text, len, 0, NULL);
    const char *type = json_string_value(json_object_get(j, "type"));
    char kind[48];
    if (!type) {
        pb_error("bad_message");
    } else if (r.peerjs) {
        int t = type_index(type, peerjs_types);
        json_t *p = json_object_get(j, "payload");
        if (t >= 0) {
            got_ours(s, t,
                     json_string_value(json_object_get(p, t == T_CANDIDATE ? "candidate" : "sdp")));
        } else if (strcmp(type, "OPEN") == 0) {
            s->ready = true;
            side_resolved(s);
        } else if (strcmp(type, "ERROR") == 0 || strcmp(type, "ID-TAKEN") == 0) {
            const char *msg = json_string_value(json_object_get(p, "msg"));
            s->refused = true;
            pb_error(strcmp(type, "ID-TAKEN") == 0      ? "peerjs_id_taken"
                     : msg && strstr(msg, "concurrent") ? "peerjs_concurrent_limit"
                                                        : "peerjs_error");
        } else if (strcmp(type, "EXPIRE") == 0 || strcmp(type, "LEAVE") == 0) {
            /* The server could not deliver to our peer (not connected). */
            pb_error(strcmp(type, "EXPIRE") == 0 ? "peerjs_expire" : "peerjs_leave");
        } else {
            r.other_msgs++;
        }
    } else {
        int t = type_index(type, parley_types);
        if (t >= 0) {
            got_ours(s, t,
                     json_string_value(json_object_get(j, t == T_CANDIDATE ? "candidate" : "sdp")));
        } else if (strcmp(type, "error") == 0) {
            const char *code = json_string_value(json_object_get(j, "code"));
            snprintf(kind, sizeof kind, "ws_error_%.32s", code ? code : "unknown");
            got_refusal(s, kind);
        } else {
            r.other_msgs++;
        }
    }
    json_decref(j);
}

static void on_open(pb_wsc_t *w, void *ud)
{
    (void)w;
    side_t *s = ud;
    if (r.peerjs)
        return; /* ready at OPEN */
    s->ready = true;
    side_resolved(s);
}

static void on_close(pb_wsc_t *w, void *ud, bool was_open, int code, int status)
{
    (void)w;
    side_t *s = ud;
    char kind[32];
    s->ws = NULL;
    if (!s->refused) {
        pb_ws_close_kind(kind, sizeof kind, was_open, code, status);
        pb_error(kind);
    }
    side_dead(s);
}

static const pb_wsc_cbs_t cbs = {on_open, on_message, on_close};

/* PeerJS drops a client whose last HEARTBEAT is older than its alive_timeout (60 s from
 * its CLI, 90 s as a library), whatever else the client sends. */
static void on_beat(uv_timer_t *t)
{
    (void)t;
    static const char hb[] = "{\"type\":\"HEARTBEAT\"}";
    for (unsigned i = 0; i < r.n; i++)
        if (r.s[i].ready && !r.s[i].dead && r.s[i].ws)
            pb_wsc_send(r.s[i].ws, hb, sizeof hb - 1);
}

static void open_side(side_t *s)
{
    char path[1024];
    if (r.peerjs)
        pb_peerjs_path(path, sizeof path, s->id, s->token);
    else
        snprintf(path, sizeof path, "%s/signaling/ws?token=%s", pb.o.base, s->token);
    s->ws = pb_wsc_open(path, r.peerjs ? NULL : "parley.v1", &cbs, s);
    if (!s->ws) {
        pb_error("connect");
        side_dead(s);
    }
}

static void on_setup_done(void)
{
    r.setup_ns = uv_hrtime() - pb.start_ns;
    for (unsigned p = 0; p < r.n / 2; p++) {
        side_t *a = &r.s[2 * p], *b = &r.s[2 * p + 1];
        pb_member_t *ma = &r.members[2 * p], *mb = &r.members[2 * p + 1];
        if (!ma->token || !mb->token) {
            a->dead = b->dead = true;
            side_resolved(a);
            side_resolved(b);
            continue;
        }
        snprintf(a->id, sizeof a->id, "%s", ma->peer_id);
        snprintf(b->id, sizeof b->id, "%s", mb->peer_id);
        a->token = ma->token;
        b->token = mb->token;
    }
    for (unsigned i = 0; i < r.n; i++)
        if (!r.s[i].dead)
            open_side(&r.s[i]);
}

/* ----------------------------------------------------------------------------------- */
/* Memberships over REST (parleyd), for relay and idle (declared in wsc.h). They live here
 * rather than in wsc.c because conn.h's llhttp.h and libwebsockets.h both define the
 * HTTP_STATUS_* enumerators and cannot meet in one file. */

/* Keep-alive connections the setup uses at once: enough to keep a local parleyd busy,
 * few enough to leave the descriptors to the WebSockets. */
#define SETUP_WORKERS 16

typedef struct {
    pb_conn_t conn; /* first: the response callback casts back */
    unsigned group; /* the room being made: members [group*size, group*size+size) */
    unsigned next;  /* the member whose call is in flight, within the group */
    bool busy;
} setup_worker_t;

static struct {
    setup_worker_t *w;
    unsigned nw;
    pb_member_t *m;
    unsigned n, size, groups, next_group, finished_groups;
    void (*done)(void);
    bool stopped;
} st;

static void setup_next_group(setup_worker_t *w);
static void on_setup_response(pb_conn_t *c, int err, int status, const char *body, size_t len);

static void setup_call(setup_worker_t *w)
{
    unsigned i = w->group * st.size + w->next;
    char path[320], body[160];
    char *tok = pb_user_token(i);
    if (!tok) {
        pb_error("setup_token");
        setup_next_group(w);
        return;
    }
    if (w->next == 0) {
        snprintf(path, sizeof path, "%s/signaling/create-room", pb.o.base);
        snprintf(body, sizeof body, "{\"isPublic\":false,\"maxPeers\":%u}",
                 st.size < 2 ? 2 : st.size);
    } else {
        snprintf(path, sizeof path, "%s/signaling/join-room", pb.o.base);
        snprintf(body, sizeof body, "{\"roomId\":\"%s\"}", st.m[w->group * st.size].room_id);
    }
    int rc = pb_conn_request(&w->conn, "POST", pb.o.host, path, tok, body, on_setup_response);
    free(tok);
    if (rc != 0) {
        pb_error("setup_oom");
        setup_next_group(w);
    }
}

static void setup_next_group(setup_worker_t *w)
{
    if (w->busy) {
        w->busy = false;
        st.finished_groups++;
    }
    if (!st.stopped && st.next_group < st.groups && pb_may_issue()) {
        w->group = st.next_group++;
        w->next = 0;
        w->busy = true;
        setup_call(w);
        return;
    }
    /* Past the deadline the rooms not started are given up: finished, unmade. */
    if (!st.stopped && (st.next_group >= st.groups || !pb_may_issue())) {
        if (st.next_group < st.groups) {
            st.finished_groups += st.groups - st.next_group;
            st.next_group = st.groups;
        }
        if (st.finished_groups == st.groups && st.done) {
            void (*done)(void) = st.done;
            st.done = NULL;
            done();
        }
    }
}

static void on_setup_response(pb_conn_t *c, int err, int status, const char *body, size_t len)
{
    setup_worker_t *w = (setup_worker_t *)c;
    if (st.stopped)
        return;
    unsigned i = w->group * st.size + w->next;
    pb_member_t *m = &st.m[i];
    char kind[32];
    if (err) {
        snprintf(kind, sizeof kind, "%s%s", err == PB_ECONNECT ? "" : "setup_",
                 pb_conn_err_name(err));
        pb_error(kind);
        setup_next_group(w);
        return;
    }
    if (status != 200 && status != 201) {
        snprintf(kind, sizeof kind, "setup_http_%d", status > 0 && status < 600 ? status : 0);
        pb_error(kind);
        setup_next_group(w);
        return;
    }
    json_t *j = pl_json_loadb(body, len, 0, NULL);
    const char *room = json_string_value(json_object_get(j, "roomId"));
    const char *peer = json_string_value(json_object_get(j, "peerId"));
    const char *tok = json_string_value(json_object_get(j, "signalingToken"));
    if (!room || !peer || !tok || strlen(room) >= sizeof m->room_id ||
        strlen(peer) >= sizeof m->peer_id || !(m->token = strdup(tok))) {
        json_decref(j);
        pb_error("setup_bad_body");
        setup_next_group(w);
        return;
    }
    strcpy(m->room_id, room);
    strcpy(m->peer_id, peer);
    json_decref(j);
    unsigned in_group = st.n - w->group * st.size;
    if (in_group > st.size)
        in_group = st.size;
    if (++w->next < in_group)
        setup_call(w);
    else
        setup_next_group(w);
}

int pb_setup_members(pb_member_t *m, unsigned n, unsigned group, void (*done)(void))
{
    st.m = m;
    st.n = n;
    st.size = group ? group : 1;
    st.groups = (n + st.size - 1) / st.size;
    st.done = done;
    st.nw = st.groups < SETUP_WORKERS ? st.groups : SETUP_WORKERS;
    st.w = calloc(st.nw ? st.nw : 1, sizeof *st.w);
    if (!st.w) {
        fprintf(stderr, "parley-bench: out of memory\n");
        return -1;
    }
    for (unsigned i = 0; i < st.nw; i++) {
        if (pb_conn_init(&st.w[i].conn, pb.loop, (const struct sockaddr *)&pb.addr,
                         pb.o.connect_timeout_ms, pb.o.timeout_ms) != 0) {
            fprintf(stderr, "parley-bench: cannot set up an HTTP connection\n");
            st.nw = i;
            return -1;
        }
    }
    for (unsigned i = 0; i < st.nw; i++)
        setup_next_group(&st.w[i]);
    if (st.nw == 0 && done) {
        st.done = NULL;
        done();
    }
    return 0;
}

void pb_setup_stop(void)
{
    if (st.stopped)
        return;
    st.stopped = true;
    for (unsigned i = 0; i < st.nw; i++)
        pb_conn_shutdown(&st.w[i].conn);
}

void pb_setup_free(void)
{
    for (unsigned i = 0; i < st.nw; i++)
        pb_conn_free(&st.w[i].conn);
    free(st.w);
    st.w = NULL;
    st.nw = 0;
}

/* ----------------------------------------------------------------------------------- */
/* The scenario */

static int start(void)
{
    unsigned n = pb.o.connections;
    if (n < 2 || n % 2) {
        fprintf(stderr, "parley-bench: relay needs an even --connections of at least 2\n");
        return -1;
    }
    unsigned long fds = pb_wsc_raise_nofile();
    if (n + FD_RESERVE > fds) {
        fprintf(stderr,
                "parley-bench: --connections %u needs about %u descriptors; RLIMIT_NOFILE "
                "allows %lu (raising the hard limit needs CAP_SYS_RESOURCE)\n",
                n, n + FD_RESERVE, fds);
        return -1;
    }
    r.peerjs = pb.o.target == PB_TARGET_PEERJS;
    r.buf_cap = pb.o.size + 512;
    r.buf = malloc(r.buf_cap);
    r.s = calloc(n, sizeof *r.s);
    if (!r.buf || !r.s) {
        fprintf(stderr, "parley-bench: out of memory\n");
        return -1;
    }
    if (pb_wsc_init() != 0)
        return -1;
    uv_timer_init(pb.loop, &r.watch);
    uv_timer_init(pb.loop, &r.drain);
    uv_timer_init(pb.loop, &r.beat);
    r.timers = true;
    for (unsigned i = 0; i < n; i++) {
        side_t *s = &r.s[i];
        s->peer = &r.s[i ^ 1];
        uv_timer_init(pb.loop, &s->pace);
        s->pace.data = s;
        r.n++;
    }
    uv_timer_start(&r.watch, on_watch, WATCH_MS, WATCH_MS);
    if (r.peerjs) {
        uint64_t beat_ms = (uint64_t)(pb.o.heartbeat_s * 1000);
        uv_timer_start(&r.beat, on_beat, beat_ms, beat_ms);
        for (unsigned i = 0; i < n; i++) {
            side_t *s = &r.s[i];
            char tok[17];
            pb_peerjs_random(s->id, 33);
            pb_peerjs_random(tok, sizeof tok);
            if (!(s->token = strdup(tok))) {
                fprintf(stderr, "parley-bench: out of memory\n");
                return -1;
            }
        }
        for (unsigned i = 0; i < n; i++)
            open_side(&r.s[i]);
        return 0;
    }
    r.members = calloc(n, sizeof *r.members);
    if (!r.members) {
        fprintf(stderr, "parley-bench: out of memory\n");
        return -1;
    }
    return pb_setup_members(r.members, n, 2, on_setup_done);
}

static void stop(void)
{
    pb_setup_stop();
    if (r.timers) {
        uv_close((uv_handle_t *)&r.watch, NULL);
        uv_close((uv_handle_t *)&r.drain, NULL);
        uv_close((uv_handle_t *)&r.beat, NULL);
        for (unsigned i = 0; i < r.n; i++)
            uv_close((uv_handle_t *)&r.s[i].pace, NULL);
        r.timers = false;
    }
    pb_wsc_shutdown(); /* every socket, without callbacks */
}

static void progress(char *buf, size_t n)
{
    unsigned ready = 0;
    for (unsigned i = 0; i < r.n; i++)
        ready += r.s[i].ready && !r.s[i].dead;
    if (!r.relaying)
        snprintf(buf, n, "open %u/%u", ready, r.n);
    else
        snprintf(buf, n, "in flight %llu  open %u/%u%s", (unsigned long long)r.inflight, ready, r.n,
                 r.draining ? "  draining" : "");
}

static json_t *by_type(const uint64_t *v)
{
    json_t *o = json_object();
    for (int i = 0; i < T_COUNT; i++)
        json_object_set_new(o, parley_types[i], json_integer((json_int_t)v[i]));
    return o;
}

static void report(json_t *rep)
{
    uint64_t recv = 0;
    for (int i = 0; i < T_COUNT; i++)
        recv += r.recv_by[i];
    json_object_set_new(rep, "pairs", json_integer((json_int_t)(r.n / 2)));
    json_object_set_new(rep, "size", json_integer((json_int_t)pb.o.size));
    json_object_set_new(rep, "window", json_integer((json_int_t)window()));
    json_object_set_new(rep, "sent", json_integer((json_int_t)pb.issued));
    json_object_set_new(rep, "received", json_integer((json_int_t)recv));
    json_object_set_new(rep, "lost", json_integer((json_int_t)r.lost));
    json_object_set_new(rep, "out_of_order", json_integer((json_int_t)r.out_of_order));
    json_object_set_new(rep, "other_messages", json_integer((json_int_t)r.other_msgs));
    json_object_set_new(rep, "setup_s", json_real((double)r.setup_ns / 1e9));
    json_object_set_new(rep, "sent_by_type", by_type(r.sent_by));
    json_object_set_new(rep, "received_by_type", by_type(r.recv_by));
}

static void text(json_t *rep)
{
    printf("pairs       %u, %u-byte payloads, window %u, setup %.3f s\n", r.n / 2, pb.o.size,
           window(), json_real_value(json_object_get(rep, "setup_s")));
    printf("messages    sent %llu received %llu lost %llu\n",
           (unsigned long long)json_integer_value(json_object_get(rep, "sent")),
           (unsigned long long)json_integer_value(json_object_get(rep, "received")),
           (unsigned long long)r.lost);
    printf("by type    ");
    for (int i = 0; i < T_COUNT; i++)
        printf(" %s %llu/%llu", parley_types[i], (unsigned long long)r.recv_by[i],
               (unsigned long long)r.sent_by[i]);
    printf(" (received/sent)\n");
}

static void cleanup(void)
{
    pb_wsc_cleanup();
    pb_setup_free();
    if (r.members)
        for (unsigned i = 0; i < r.n; i++)
            free(r.members[i].token);
    if (r.peerjs && r.s)
        for (unsigned i = 0; i < r.n; i++)
            free(r.s[i].token);
    free(r.members);
    free(r.s);
    free(r.buf);
}

const pb_scenario_t pb_scenario_relay = {.name = "relay",
                                         .unit = "message",
                                         .start = start,
                                         .stop = stop,
                                         .progress = progress,
                                         .report = report,
                                         .text = text,
                                         .cleanup = cleanup};
