/* sdk_peer.c — the interop driver of libparley: a peer built on the public API (parley.h) only.
 *
 * It speaks exactly the channel protocol of tests/interop/aiortc_peer.py (see that file's
 * header: deterministic messages from SHA-256 of "parley/<seed>/<P>/<i>/...", even i text and
 * odd i binary, sizes spread over powers of two; the #hello / #fin / #bye control messages),
 * takes the same command line and prints the same JSON lines, so an sdk_peer, an aiortc_peer
 * and the Chromium page tests/browser/proto_peer.js pair with each other in any combination.
 *
 *   sdk_peer --server URL --token JWT (--create [--topology T] [--public] | --join ROOM_ID |
 *            --broadcaster NAME) [--messages N] [--sizes LO:HI] [--seed S] [--echo]
 *            [--peers K] [--ice-addr A]... [--signaling auto|ws|rest] [--timeout SECS]
 *            [--rtt N] [--go-stdin] [--use-server-ice] [--verbose]
 *
 * --public          with --create: a public room (joinable with --broadcaster NAME)
 * --ice-addr A      gather on A (repeatable; default: the SDK's, every non-loopback address)
 * --rtt N           before its own stream, N ping-pong round trips of 64 B and N of 16 KiB
 *                   with each peer ("#ping"/"#pong" text control messages, answered by any
 *                   sdk_peer whatever its mode); the #fin to that peer waits until they are
 *                   done. Prints an "rtt" line.
 * --go-stdin        the data stream (not #hello) starts only after a line arrives on stdin
 *                   (the SIGKILL test kills parleyd first, then lets the peers talk)
 * --use-server-ice  the server's iceServers (default: none, so nothing leaves the machine)
 *
 * Output, one JSON object per line on stdout (the SDK's log goes to stderr):
 *   {"event":"joined","roomId","peerId","signaling","topology","broadcasterName","peers":[..],
 *    "ms"}                                   ms: from the join (create) call to on_joined
 *   {"event":"signaling","state":"connecting|websocket|longpoll|reconnecting|closed","err"}
 *   {"event":"peer-joined","peer"}  {"event":"peer-gone","peer","reason"}
 *   {"event":"connected","peer","ms"}        ms: from the join call to on_peer_connected
 *   {"event":"sent","peer","n","bytes"}      the whole stream was accepted by parley_send
 *   {"event":"recv_ok","peer","n","bytes","ms"}  every expected message arrived, verified, in
 *                                            order (ms: from connected to the last one)
 *   {"event":"rtt","peer","n","64":{"p50","p99","max"},"16384":{...}}  milliseconds
 *   {"event":"session-done","peer"}
 *   {"event":"done","sessions","left"}       left: on_left's err (0), null if none came
 *   {"event":"error","detail"[,"sessions"]}
 * Exit codes: 0 success; 1 a failure (protocol, mismatch, refused request, failed
 * connection); 2 bad arguments; 3 --timeout passed.
 *
 * Threads: the SDK's callbacks only record and queue under one mutex and wake the main
 * thread (a condition variable); the main thread alone sends the stream, echoes and control
 * messages (parley_send, retried after PARLEY_EAGAIN), so a message never overtakes another
 * to the same peer. Only pongs and the next ping are sent straight from on_message. No
 * libparley function is ever called with the mutex held. */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "parley.h"

enum { EXIT_OK = 0, EXIT_FAIL = 1, EXIT_USAGE = 2, EXIT_TIMEOUT = 3 };

#define LINGER_S     3.0
#define LEAVE_WAIT_S 5.0
#define MAX_SESSIONS 64
#define MAX_ICE      16
#define RTT_SMALL    64
#define RTT_LARGE    16384

static const char ALPHA[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* ---- options ---- */

static struct {
    const char *server, *token, *create_topology, *join, *broadcaster, *seed;
    int create, is_public, echo, peers, rtt, go_stdin, use_server_ice, verbose, signaling;
    const char *signaling_name;
    long messages;
    size_t lo, hi;
    double timeout;
    const char *ice[MAX_ICE + 1];
    int nice;
} opt;

/* ---- time, output ---- */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static pthread_mutex_t out_mu = PTHREAD_MUTEX_INITIALIZER;

/* Prints {"event":event, ...obj} (obj is consumed; may be NULL). */
static void emit(const char *event, json_t *obj)
{
    json_t *o = json_object();
    json_object_set_new(o, "event", json_string(event));
    if (obj) {
        json_object_update(o, obj);
        json_decref(obj);
    }
    char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_ENSURE_ASCII);
    pthread_mutex_lock(&out_mu);
    fputs(s ? s : "{\"event\":\"error\",\"detail\":\"json_dumps failed\"}", stdout);
    fputc('\n', stdout);
    fflush(stdout);
    pthread_mutex_unlock(&out_mu);
    free(s);
    json_decref(o);
}

/* ---- deterministic messages (aiortc_peer.py's message()) ---- */

static void sha256(const void *d, size_t n, unsigned char out[32])
{
    unsigned int len = 32;
    if (!EVP_Digest(d, n, out, &len, EVP_sha256(), NULL)) {
        fprintf(stderr, "EVP_Digest failed\n");
        abort();
    }
}

static int bitlen(uint64_t x)
{
    int n = 0;
    while (x) {
        n++;
        x >>= 1;
    }
    return n;
}

static size_t msg_size(const char *seed, const char *sender, long i, size_t lo, size_t hi)
{
    if (i == 0)
        return lo;
    if (i == 1 || i == 2)
        return hi;
    char key[512];
    int kn = snprintf(key, sizeof key, "parley/%s/%s/%ld/size", seed, sender, i);
    unsigned char md[32];
    sha256(key, (size_t)kn, md);
    uint64_t h = 0;
    for (int k = 0; k < 8; k++)
        h = (h << 8) | md[k];
    int e0 = bitlen(lo > 1 ? lo : 1) - 1;
    int e1 = bitlen(hi) - 1;
    int e = e0 + (int)((h & 0xFFFFFFFFu) % (uint64_t)(e1 - e0 + 1));
    uint64_t a = (uint64_t)1 << e;
    if (a < lo)
        a = lo;
    uint64_t b = ((uint64_t)1 << (e + 1)) - 1;
    if (b > hi)
        b = hi;
    return (size_t)(a + (h >> 32) % (b - a + 1));
}

typedef struct msg {
    struct msg *next;
    parley_msg_kind kind;
    size_t len;
    unsigned char data[];
} msg;

/* A message of len bytes (plus a NUL after them), its bytes uninitialized. */
static msg *msg_alloc(parley_msg_kind kind, size_t len)
{
    msg *m = malloc(sizeof *m + len + 1);
    if (!m) {
        fprintf(stderr, "out of memory\n");
        abort();
    }
    m->next = NULL;
    m->kind = kind;
    m->len = len;
    m->data[len] = 0;
    return m;
}

static msg *msg_new(parley_msg_kind kind, const void *data, size_t len)
{
    msg *m = msg_alloc(kind, len);
    if (len)
        memcpy(m->data, data, len);
    return m;
}

/* Message i of sender's stream: text for even i, binary for odd i, `size` bytes either way. */
static msg *make_message(const char *seed, const char *sender, long i, size_t lo, size_t hi)
{
    size_t size = msg_size(seed, sender, i, lo, hi);
    msg *m = msg_alloc(i % 2 ? PARLEY_MSG_BINARY : PARLEY_MSG_TEXT, size);
    /* the raw stream: SHA-256("parley/<seed>/<P>/<i>/<k>") for k = 0, 1, ... */
    unsigned char *raw = malloc(size + 32);
    if (!raw)
        abort();
    char key[512];
    for (size_t off = 0, k = 0; off < size; off += 32, k++) {
        int kn = snprintf(key, sizeof key, "parley/%s/%s/%ld/%zu", seed, sender, i, k);
        sha256(key, (size_t)kn, raw + off);
    }
    if (m->kind == PARLEY_MSG_BINARY) {
        memcpy(m->data, raw, size);
    } else {
        size_t n = 0;
        for (size_t r = 0; r < size && n < size; r++) {
            unsigned char b = raw[r];
            if (b >= 0xF8 && size - n >= 2) {
                m->data[n++] = 0xC3; /* é */
                m->data[n++] = 0xA9;
            } else {
                m->data[n++] = (unsigned char)ALPHA[b & 63];
            }
        }
    }
    free(raw);
    return m;
}

/* ---- state ---- */

typedef struct {
    char peer[128];
    double t_connected;
    int connected_count;
    msg *q_head, *q_tail; /* control messages and echoes, in order */
    msg *pending;         /* refused with EAGAIN: sent again first */
    int pending_is_stream;
    int hello_sent, stream_on;
    long stream_next; /* the next stream message to hand to parley_send */
    long sent_n, eagain;
    long long sent_bytes;
    int sent_reported;
    /* receiving */
    char remote_mode[16];
    int have_expect;
    char expect_sender[128];
    long expect_n, recv_n;
    long long recv_bytes;
    double t_last_recv;
    int recv_done, remote_fin, remote_bye, remote_gone;
    int succeeded, finished;
    double t_succeeded;
    /* rtt */
    int rtt_state; /* 0 not started, 1 running, 2 done */
    int rtt_phase; /* 0: 64 B, 1: 16 KiB */
    long rtt_k;    /* pings answered in this phase */
    int rtt_outstanding, rtt_send_needed;
    double rtt_t_sent;
    double *rtt_samples[2];
} session;

static struct {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    parley_client *client;
    double t_join;
    int joined;
    char room_id[128], peer_id[128];
    session *s[MAX_SESSIONS];
    int ns;
    char *failure; /* first failure (malloc'd) */
    int leaving, left, left_err;
    int go;
    int finished_sessions;
    unsigned long gen; /* bumped by every wake() */
} app = {.mu = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};

/* With app.mu held: something changed that the main thread may act on. */
static void wake(void)
{
    app.gen++;
    pthread_cond_broadcast(&app.cond);
}

/* With app.mu held. */
static void fail_locked(const char *fmt, ...)
{
    if (app.failure)
        return;
    va_list ap;
    va_start(ap, fmt);
    if (vasprintf(&app.failure, fmt, ap) < 0)
        app.failure = strdup("failure (vasprintf)");
    va_end(ap);
    wake();
}

static session *find_session(const char *peer)
{
    for (int k = 0; k < app.ns; k++)
        if (strcmp(app.s[k]->peer, peer) == 0)
            return app.s[k];
    return NULL;
}

static session *get_session(const char *peer)
{
    session *s = find_session(peer);
    if (s || app.ns >= MAX_SESSIONS)
        return s;
    s = calloc(1, sizeof *s);
    if (!s)
        abort();
    snprintf(s->peer, sizeof s->peer, "%s", peer);
    app.s[app.ns++] = s;
    return s;
}

static void enqueue(session *s, msg *m)
{
    if (s->q_tail)
        s->q_tail->next = m;
    else
        s->q_head = m;
    s->q_tail = m;
    wake();
}

static void enqueue_text(session *s, const char *text)
{
    enqueue(s, msg_new(PARLEY_MSG_TEXT, text, strlen(text)));
}

static char *progress(const session *s)
{
    char *p = NULL;
    if (asprintf(&p,
                 "connected %d, sent %ld/%ld, received %ld/%s%ld, remote mode %s, fin %d, bye %d, "
                 "rtt %d",
                 s->connected_count, s->sent_n, opt.echo ? 0L : opt.messages, s->recv_n,
                 s->have_expect ? "" : "?", s->have_expect ? s->expect_n : 0L,
                 s->remote_mode[0] ? s->remote_mode : "?", s->remote_fin, s->remote_bye,
                 s->rtt_state) < 0)
        return NULL;
    return p;
}

static json_t *sessions_progress(void)
{
    json_t *o = json_object();
    for (int k = 0; k < app.ns; k++) {
        char *p = progress(app.s[k]);
        json_object_set_new(o, app.s[k]->peer, json_string(p ? p : "?"));
        free(p);
    }
    return o;
}

/* ---- the session protocol (with app.mu held) ---- */

static void check_success(session *s)
{
    if (s->succeeded || !(s->recv_done && s->remote_fin))
        return;
    s->succeeded = 1;
    s->t_succeeded = now_s();
    enqueue_text(s, "#bye");
    emit("session-done", json_pack("{ss}", "peer", s->peer));
}

static void check_recv_done(session *s)
{
    if (s->recv_done || !s->have_expect || s->recv_n < s->expect_n)
        return;
    if (opt.rtt > 0 && s->rtt_state != 2)
        return; /* the #fin waits for our round trips */
    s->recv_done = 1;
    double t_end = s->recv_n ? s->t_last_recv : now_s();
    emit("recv_ok", json_pack("{sssIsIsi}", "peer", s->peer, "n", (json_int_t)s->recv_n, "bytes",
                              (json_int_t)s->recv_bytes, "ms",
                              (int)((t_end - s->t_connected) * 1000.0 + 0.5)));
    char fin[64];
    snprintf(fin, sizeof fin, "#fin {\"n\": %ld}", s->recv_n);
    enqueue_text(s, fin);
    check_success(s);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* The nearest-rank percentile q (0..1] of n sorted values. */
static double pct(const double *v, long n, double q)
{
    long r = (long)(q * (double)n + 0.999999);
    if (r < 1)
        r = 1;
    if (r > n)
        r = n;
    return v[r - 1];
}

static json_t *rtt_stats(double *v, long n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return json_pack("{sfsfsf}", "p50", pct(v, n, 0.5) * 1000.0, "p99", pct(v, n, 0.99) * 1000.0,
                     "max", v[n - 1] * 1000.0);
}

/* Builds ping k of the current phase (the caller sends it). */
static msg *make_ping(session *s)
{
    size_t size = s->rtt_phase ? RTT_LARGE : RTT_SMALL;
    msg *m = msg_alloc(PARLEY_MSG_TEXT, size);
    int h = snprintf((char *)m->data, size + 1, "#ping %d %ld ", s->rtt_phase, s->rtt_k);
    memset(m->data + h, 'x', size - (size_t)h);
    return m;
}

/* A pong arrived: records it; returns the next ping to send (or NULL). */
static msg *on_pong(session *s, const unsigned char *data, size_t len)
{
    double t = now_s();
    int phase;
    long k;
    size_t want = s->rtt_phase ? RTT_LARGE : RTT_SMALL;
    if (s->rtt_state != 1 || !s->rtt_outstanding ||
        sscanf((const char *)data, "#pong %d %ld ", &phase, &k) != 2 || phase != s->rtt_phase ||
        k != s->rtt_k || len != want) {
        fail_locked("peer %s: unexpected pong (%zu bytes)", s->peer, len);
        return NULL;
    }
    s->rtt_outstanding = 0;
    s->rtt_samples[s->rtt_phase][s->rtt_k++] = t - s->rtt_t_sent;
    if (s->rtt_k >= opt.rtt) {
        if (s->rtt_phase == 0) {
            s->rtt_phase = 1;
            s->rtt_k = 0;
        } else {
            s->rtt_state = 2;
            json_t *o = json_pack("{sssi}", "peer", s->peer, "n", opt.rtt);
            json_object_set_new(o, "64", rtt_stats(s->rtt_samples[0], opt.rtt));
            json_object_set_new(o, "16384", rtt_stats(s->rtt_samples[1], opt.rtt));
            emit("rtt", o);
            check_recv_done(s);
            wake(); /* the stream may start */
            return NULL;
        }
    }
    s->rtt_outstanding = 1;
    s->rtt_t_sent = now_s();
    return make_ping(s);
}

static void describe_mismatch(char *out, size_t cap, long i, const msg *want, parley_msg_kind kind,
                              const unsigned char *got, size_t len)
{
    const char *wt = want->kind == PARLEY_MSG_TEXT ? "text" : "binary";
    const char *gt = kind == PARLEY_MSG_TEXT ? "text" : "binary";
    if (want->kind != kind) {
        snprintf(out, cap, "message %ld: expected %s of %zu bytes, got %s of %zu bytes", i, wt,
                 want->len, gt, len);
        return;
    }
    size_t m = want->len < len ? want->len : len, off = 0;
    while (off < m && want->data[off] == got[off])
        off++;
    snprintf(out, cap,
             "message %ld (%s): expected %zu bytes, got %zu bytes, first difference at byte %zu", i,
             wt, want->len, len, off);
}

/* A control message; returns a message to send at once from the callback (a pong or the next
 * ping), or NULL. */
static msg *handle_control(session *s, const unsigned char *data, size_t len)
{
    const char *t = (const char *)data; /* NUL-terminated by the caller's copy */
    if (strncmp(t, "#ping ", 6) == 0) {
        msg *m = msg_new(PARLEY_MSG_TEXT, data, len);
        memcpy(m->data, "#pong", 5);
        return m;
    }
    if (strncmp(t, "#pong ", 6) == 0)
        return on_pong(s, data, len);
    if (strncmp(t, "#hello ", 7) == 0) {
        json_error_t jerr;
        json_t *h = json_loads(t + 7, 0, &jerr);
        const char *mode = NULL, *seed = NULL, *sizes = NULL;
        json_int_t n = 0;
        if (!h || json_unpack(h, "{s?s,s?s,s?s,s?I}", "mode", &mode, "seed", &seed, "sizes", &sizes,
                              "n", &n) != 0) {
            fail_locked("peer %s: bad #hello %.200s", s->peer, t);
            json_decref(h);
            return NULL;
        }
        char mysizes[64];
        snprintf(mysizes, sizeof mysizes, "%zu:%zu", opt.lo, opt.hi);
        if (!seed || strcmp(seed, opt.seed) != 0 || !sizes || strcmp(sizes, mysizes) != 0) {
            fail_locked("peer %s uses seed %s sizes %s; this one '%s' '%s'", s->peer,
                        seed ? seed : "null", sizes ? sizes : "null", opt.seed, mysizes);
        } else if (mode && strcmp(mode, "echo") == 0) {
            if (opt.echo) {
                fail_locked("both sides are in echo mode");
            } else {
                snprintf(s->remote_mode, sizeof s->remote_mode, "echo");
                snprintf(s->expect_sender, sizeof s->expect_sender, "%s", app.peer_id);
                s->expect_n = opt.messages;
                s->have_expect = 1;
            }
        } else if (mode && strcmp(mode, "send") == 0) {
            snprintf(s->remote_mode, sizeof s->remote_mode, "send");
            snprintf(s->expect_sender, sizeof s->expect_sender, "%s", s->peer);
            s->expect_n = (long)n;
            s->have_expect = 1;
        } else {
            fail_locked("peer %s: #hello with mode %s", s->peer, mode ? mode : "null");
        }
        json_decref(h);
        check_recv_done(s);
        return NULL;
    }
    if (strncmp(t, "#fin", 4) == 0 && (t[4] == ' ' || t[4] == 0)) {
        s->remote_fin = 1;
        check_success(s);
        return NULL;
    }
    if (strcmp(t, "#bye") == 0) {
        s->remote_bye = 1;
        wake();
        return NULL;
    }
    fail_locked("peer %s: unknown control message %.80s", s->peer, t);
    return NULL;
}

/* ---- callbacks (the SDK thread) ---- */

static void cb_joined(parley_client *c, const parley_room *room, const parley_peer *peers,
                      size_t npeers, void *user)
{
    pthread_mutex_lock(&app.mu);
    app.joined = 1;
    snprintf(app.room_id, sizeof app.room_id, "%s", room->room_id ? room->room_id : "");
    snprintf(app.peer_id, sizeof app.peer_id, "%s", room->peer_id ? room->peer_id : "");
    json_t *ids = json_array();
    for (size_t k = 0; k < npeers; k++)
        json_array_append_new(ids, json_string(peers[k].peer_id ? peers[k].peer_id : ""));
    json_t *o =
        json_pack("{sssssssisssssssi}", "roomId", app.room_id, "peerId", app.peer_id, "signaling",
                  opt.signaling_name, "ms", (int)((now_s() - app.t_join) * 1000.0 + 0.5),
                  "topology", room->topology ? room->topology : "", "broadcasterName",
                  room->broadcaster_name ? room->broadcaster_name : "", "customName",
                  room->custom_name ? room->custom_name : "", "maxPeers", room->max_peers);
    json_object_set_new(o, "peers", ids);
    emit("joined", o);
    wake();
    pthread_mutex_unlock(&app.mu);
}

static void cb_peer_joined(parley_client *c, const parley_peer *peer, void *user)
{
    emit("peer-joined",
         json_pack("{ssss}", "peer", peer->peer_id, "user", peer->user_id ? peer->user_id : ""));
}

static void cb_peer_connected(parley_client *c, const parley_peer *peer, void *user)
{
    pthread_mutex_lock(&app.mu);
    session *s = get_session(peer->peer_id);
    double t = now_s();
    emit("connected",
         json_pack("{sssi}", "peer", peer->peer_id, "ms", (int)((t - app.t_join) * 1000.0 + 0.5)));
    if (!s) {
        fail_locked("more than %d peers", MAX_SESSIONS);
    } else if (s->connected_count++ == 0) {
        s->t_connected = t;
        char hello[512];
        snprintf(hello, sizeof hello,
                 "#hello {\"mode\": \"%s\", \"n\": %ld, \"seed\": \"%s\", \"sizes\": \"%zu:%zu\", "
                 "\"peerId\": \"%s\"}",
                 opt.echo ? "echo" : "send", opt.echo ? 0L : opt.messages, opt.seed, opt.lo, opt.hi,
                 app.peer_id);
        enqueue_text(s, hello);
        if (opt.rtt > 0) {
            s->rtt_state = 1;
            s->rtt_send_needed = 1;
            s->rtt_samples[0] = calloc((size_t)opt.rtt, sizeof(double));
            s->rtt_samples[1] = calloc((size_t)opt.rtt, sizeof(double));
        }
        s->stream_on = !opt.echo;
    } else if (!s->succeeded) {
        /* a second channel to the same peer: the exchange cannot be checked across it */
        fail_locked("peer %s connected again before the exchange finished (%d times)", s->peer,
                    s->connected_count);
    }
    wake();
    pthread_mutex_unlock(&app.mu);
}

static void cb_message(parley_client *c, const parley_peer *peer, parley_msg_kind kind,
                       const void *data, size_t len, void *user)
{
    msg *direct = NULL;
    pthread_mutex_lock(&app.mu);
    session *s = find_session(peer->peer_id);
    if (!s) {
        fail_locked("a message from %s before its channel was reported open", peer->peer_id);
        goto out;
    }
    if (app.failure)
        goto out;
    const unsigned char *d = data;
    if (kind == PARLEY_MSG_TEXT && len > 0 && d[0] == '#') {
        msg *copy = msg_new(kind, data, len); /* NUL-terminated */
        direct = handle_control(s, copy->data, len);
        free(copy);
        goto out;
    }
    if (!s->have_expect) {
        fail_locked("peer %s: data before #hello", s->peer);
        goto out;
    }
    long i = s->recv_n;
    if (i >= s->expect_n) {
        fail_locked("peer %s: message %ld beyond the %ld expected", s->peer, i, s->expect_n);
        goto out;
    }
    /* Only this thread changes what is expected: the expected message is made unlocked. */
    char sender[128];
    snprintf(sender, sizeof sender, "%s", s->expect_sender);
    pthread_mutex_unlock(&app.mu);
    msg *want = make_message(opt.seed, sender, i, opt.lo, opt.hi);
    int same = want->kind == kind && want->len == len && memcmp(want->data, data, len) == 0;
    char why[256];
    if (!same)
        describe_mismatch(why, sizeof why, i, want, kind, data, len);
    free(want);
    pthread_mutex_lock(&app.mu);
    if (!same) {
        fail_locked("from %s: %s", s->peer, why);
        goto out;
    }
    s->recv_n++;
    s->recv_bytes += (long long)len;
    s->t_last_recv = now_s();
    if (opt.echo)
        enqueue(s, msg_new(kind, data, len));
    check_recv_done(s);
out:;
    char peer_copy[128];
    snprintf(peer_copy, sizeof peer_copy, "%s", peer->peer_id);
    pthread_mutex_unlock(&app.mu);
    if (direct) {
        int rc = parley_send(c, peer_copy, direct->kind, direct->data, direct->len);
        if (rc == PARLEY_EAGAIN) {
            /* the main thread sends it; pings and pongs are not ordered against data */
            pthread_mutex_lock(&app.mu);
            session *s2 = find_session(peer_copy);
            if (s2) {
                direct->next = s2->q_head;
                s2->q_head = direct;
                if (!s2->q_tail)
                    s2->q_tail = direct;
                direct = NULL;
            }
            wake();
            pthread_mutex_unlock(&app.mu);
        } else if (rc < 0) {
            pthread_mutex_lock(&app.mu);
            fail_locked("parley_send(%s, ping/pong of %zu bytes): %s", peer_copy, direct->len,
                        parley_strerror(rc));
            pthread_mutex_unlock(&app.mu);
        }
        free(direct);
    }
}

static const char *gone_name(parley_gone_reason why)
{
    switch (why) {
    case PARLEY_GONE_LEFT:
        return "left";
    case PARLEY_GONE_FAILED:
        return "failed";
    case PARLEY_GONE_ROOM_CLOSED:
        return "room-closed";
    }
    return "?";
}

static void cb_peer_gone(parley_client *c, const parley_peer *peer, parley_gone_reason why,
                         void *user)
{
    pthread_mutex_lock(&app.mu);
    emit("peer-gone", json_pack("{ssss}", "peer", peer->peer_id, "reason", gone_name(why)));
    session *s = find_session(peer->peer_id);
    if (s && !app.leaving) {
        s->remote_gone = 1;
        if (!s->succeeded) {
            char *p = progress(s);
            fail_locked("peer %s gone (%s) before the exchange finished (%s)", s->peer,
                        gone_name(why), p ? p : "?");
            free(p);
        }
    }
    wake();
    pthread_mutex_unlock(&app.mu);
}

static const char *sig_name(parley_sig_state st)
{
    switch (st) {
    case PARLEY_SIG_CONNECTING:
        return "connecting";
    case PARLEY_SIG_WEBSOCKET:
        return "websocket";
    case PARLEY_SIG_LONGPOLL:
        return "longpoll";
    case PARLEY_SIG_RECONNECTING:
        return "reconnecting";
    case PARLEY_SIG_CLOSED:
        return "closed";
    }
    return "?";
}

static void cb_signaling(parley_client *c, parley_sig_state st, int err, void *user)
{
    emit("signaling", json_pack("{sssiss}", "state", sig_name(st), "err", err, "errName",
                                err ? parley_strerror(err) : ""));
}

static void cb_error(parley_client *c, const char *op, int err, const char *detail, void *user)
{
    pthread_mutex_lock(&app.mu);
    if (!app.leaving)
        fail_locked("%s: %s (%d)%s%s", op ? op : "?", parley_strerror(err), err, detail ? ": " : "",
                    detail ? detail : "");
    else
        emit("note", json_pack("{sssiss}", "op", op ? op : "?", "err", err, "detail",
                               detail ? detail : ""));
    pthread_mutex_unlock(&app.mu);
}

static void cb_left(parley_client *c, int err, void *user)
{
    pthread_mutex_lock(&app.mu);
    app.left = 1;
    app.left_err = err;
    if (!app.leaving)
        emit("membership-ended", json_pack("{siss}", "err", err, "errName", parley_strerror(err)));
    wake();
    pthread_mutex_unlock(&app.mu);
}

/* ---- the main thread: sending ---- */

/* Hands what it can to parley_send for every session; returns how many messages went out
 * (sets *blocked when a session's queue is full). */
static long pump(int *blocked)
{
    long sent = 0;
    for (int k = 0;; k++) {
        pthread_mutex_lock(&app.mu);
        if (k >= app.ns || app.failure) {
            pthread_mutex_unlock(&app.mu);
            break;
        }
        session *s = app.s[k];
        pthread_mutex_unlock(&app.mu);
        for (;;) {
            msg *m = NULL;
            int is_stream = 0, is_ping = 0;
            pthread_mutex_lock(&app.mu);
            if (app.failure) {
                pthread_mutex_unlock(&app.mu);
                return sent;
            }
            if (s->pending) {
                m = s->pending;
                is_stream = s->pending_is_stream;
                s->pending = NULL;
            } else if (s->q_head) {
                m = s->q_head;
                s->q_head = m->next;
                if (!s->q_head)
                    s->q_tail = NULL;
                m->next = NULL;
            } else if (s->rtt_state == 1 && s->rtt_send_needed) {
                s->rtt_send_needed = 0;
                s->rtt_outstanding = 1;
                m = make_ping(s);
                is_ping = 1;
            } else if (s->stream_on && s->stream_next < opt.messages && s->rtt_state != 1 &&
                       (!opt.go_stdin || app.go)) {
                is_stream = 1;
            }
            long i = s->stream_next;
            pthread_mutex_unlock(&app.mu);
            if (!m && !is_stream)
                break;
            if (!m)
                m = make_message(opt.seed, app.peer_id, i, opt.lo, opt.hi);
            if (is_ping) {
                pthread_mutex_lock(&app.mu);
                s->rtt_t_sent = now_s();
                pthread_mutex_unlock(&app.mu);
            }
            int rc = parley_send(app.client, s->peer, m->kind, m->data, m->len);
            pthread_mutex_lock(&app.mu);
            if (rc == PARLEY_EAGAIN) {
                s->eagain++;
                s->pending = m;
                s->pending_is_stream = is_stream;
                *blocked = 1;
                pthread_mutex_unlock(&app.mu);
                break;
            }
            if (rc < 0) {
                fail_locked("parley_send(%s, %s of %zu bytes): %s (%d)", s->peer,
                            m->kind == PARLEY_MSG_TEXT ? "text" : "binary", m->len,
                            parley_strerror(rc), rc);
                pthread_mutex_unlock(&app.mu);
                free(m);
                return sent;
            }
            sent++;
            if (is_stream) {
                s->stream_next++;
                s->sent_n++;
                s->sent_bytes += (long long)m->len;
                if (s->stream_next >= opt.messages && !s->sent_reported) {
                    s->sent_reported = 1;
                    emit("sent",
                         json_pack("{sssIsIsI}", "peer", s->peer, "n", (json_int_t)s->sent_n,
                                   "bytes", (json_int_t)s->sent_bytes, "eagain",
                                   (json_int_t)s->eagain));
                }
            }
            pthread_mutex_unlock(&app.mu);
            free(m);
        }
    }
    return sent;
}

static void *stdin_reader(void *arg)
{
    char buf[256];
    if (fgets(buf, sizeof buf, stdin)) {
        pthread_mutex_lock(&app.mu);
        app.go = 1;
        wake();
        pthread_mutex_unlock(&app.mu);
    }
    return NULL;
}

static void wait_until(double deadline_abs_mono)
{
    /* the condition variable runs on CLOCK_MONOTONIC (see main) */
    struct timespec ts;
    double sec = deadline_abs_mono;
    ts.tv_sec = (time_t)sec;
    ts.tv_nsec = (long)((sec - (double)ts.tv_sec) * 1e9);
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_cond_timedwait(&app.cond, &app.mu, &ts);
}

/* ---- command line ---- */

static void usage(const char *why)
{
    if (why)
        fprintf(stderr, "sdk_peer: %s\n", why);
    fprintf(
        stderr,
        "usage: sdk_peer --server URL --token JWT (--create [--topology T] [--public] |\n"
        "         --join ROOM_ID | --broadcaster NAME) [--messages N] [--sizes LO:HI]\n"
        "         [--seed S] [--echo] [--peers K] [--ice-addr A]... [--signaling auto|ws|rest]\n"
        "         [--timeout SECS] [--rtt N] [--go-stdin] [--use-server-ice] [--verbose]\n");
    json_t *o = json_pack("{ss}", "detail", why ? why : "usage");
    emit("error", o);
    exit(EXIT_USAGE);
}

static void parse_args(int argc, char **argv)
{
    opt.seed = "parley";
    opt.messages = 10;
    opt.lo = 1;
    opt.hi = 65536;
    opt.peers = 1;
    opt.timeout = 30;
    opt.signaling = PARLEY_SIGNALING_AUTO;
    opt.signaling_name = "auto";
    int modes = 0;
    for (int k = 1; k < argc; k++) {
        const char *a = argv[k];
        const char *v = k + 1 < argc ? argv[k + 1] : NULL;
#define NEEDV()                                                                                    \
    do {                                                                                           \
        if (!v)                                                                                    \
            usage("an option lacks its value");                                                    \
        k++;                                                                                       \
    } while (0)
        char *end;
        if (!strcmp(a, "--server")) {
            NEEDV();
            opt.server = v;
        } else if (!strcmp(a, "--token")) {
            NEEDV();
            opt.token = v;
        } else if (!strcmp(a, "--create")) {
            opt.create = 1;
            modes++;
        } else if (!strcmp(a, "--public")) {
            opt.is_public = 1;
        } else if (!strcmp(a, "--topology")) {
            NEEDV();
            if (strcmp(v, "mesh") && strcmp(v, "star") && strcmp(v, "overlay"))
                usage("--topology: mesh, star or overlay");
            opt.create_topology = v;
        } else if (!strcmp(a, "--join")) {
            NEEDV();
            opt.join = v;
            modes++;
        } else if (!strcmp(a, "--broadcaster")) {
            NEEDV();
            opt.broadcaster = v;
            modes++;
        } else if (!strcmp(a, "--messages")) {
            NEEDV();
            opt.messages = strtol(v, &end, 10);
            if (*end || opt.messages < 0)
                usage("--messages N >= 0");
        } else if (!strcmp(a, "--sizes")) {
            NEEDV();
            unsigned long lo, hi;
            char tail;
            if (sscanf(v, "%lu:%lu%c", &lo, &hi, &tail) != 2 || lo > hi || hi < 1 ||
                hi > (1ul << 30))
                usage("--sizes must be LO:HI with 0 <= LO <= HI, HI >= 1");
            opt.lo = lo;
            opt.hi = hi;
        } else if (!strcmp(a, "--seed")) {
            NEEDV();
            if (strlen(v) > 200 || strpbrk(v, "\"\\"))
                usage("--seed: at most 200 characters, no quotes or backslashes");
            opt.seed = v;
        } else if (!strcmp(a, "--echo")) {
            opt.echo = 1;
        } else if (!strcmp(a, "--peers")) {
            NEEDV();
            opt.peers = (int)strtol(v, &end, 10);
            if (*end || opt.peers < 1 || opt.peers > MAX_SESSIONS)
                usage("--peers K, 1 <= K <= 64");
        } else if (!strcmp(a, "--ice-addr") || !strcmp(a, "--ice-address")) {
            NEEDV();
            if (opt.nice >= MAX_ICE)
                usage("too many --ice-addr");
            opt.ice[opt.nice++] = v;
        } else if (!strcmp(a, "--signaling")) {
            NEEDV();
            opt.signaling_name = v;
            if (!strcmp(v, "auto"))
                opt.signaling = PARLEY_SIGNALING_AUTO;
            else if (!strcmp(v, "ws"))
                opt.signaling = PARLEY_SIGNALING_WS;
            else if (!strcmp(v, "rest"))
                opt.signaling = PARLEY_SIGNALING_LONGPOLL;
            else
                usage("--signaling auto|ws|rest");
        } else if (!strcmp(a, "--timeout")) {
            NEEDV();
            opt.timeout = strtod(v, &end);
            if (*end || opt.timeout <= 0)
                usage("--timeout SECS > 0");
        } else if (!strcmp(a, "--rtt")) {
            NEEDV();
            opt.rtt = (int)strtol(v, &end, 10);
            if (*end || opt.rtt < 0 || opt.rtt > 1000000)
                usage("--rtt N >= 0");
        } else if (!strcmp(a, "--go-stdin")) {
            opt.go_stdin = 1;
        } else if (!strcmp(a, "--use-server-ice")) {
            opt.use_server_ice = 1;
        } else if (!strcmp(a, "--verbose")) {
            opt.verbose = 1;
        } else {
            usage("unknown argument");
        }
#undef NEEDV
    }
    if (!opt.server || !opt.token)
        usage("--server and --token are required");
    if (modes != 1)
        usage("exactly one of --create, --join, --broadcaster");
    if ((opt.create_topology || opt.is_public) && !opt.create)
        usage("--topology and --public go with --create");
    if (opt.echo && opt.rtt)
        usage("--echo and --rtt exclude each other");
}

/* ---- main ---- */

int main(int argc, char **argv)
{
    parse_args(argc, argv);

    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_destroy(&app.cond);
    pthread_cond_init(&app.cond, &ca);
    pthread_condattr_destroy(&ca);

    static const char *const no_ice_servers[] = {NULL};
    parley_config cfg;
    parley_config_init(&cfg);
    cfg.server_url = opt.server;
    cfg.user_token = opt.token;
    cfg.ice_local_addresses = opt.nice ? opt.ice : NULL;
    cfg.ice_servers = opt.use_server_ice ? NULL : no_ice_servers;
    cfg.signaling = opt.signaling;
    cfg.log_level = opt.verbose ? 4 : 2;

    parley_callbacks cb = {
        .on_joined = cb_joined,
        .on_peer_joined = cb_peer_joined,
        .on_peer_connected = cb_peer_connected,
        .on_message = cb_message,
        .on_peer_gone = cb_peer_gone,
        .on_signaling = cb_signaling,
        .on_error = cb_error,
        .on_left = cb_left,
    };
    int rc = parley_client_new(&cfg, &cb, NULL, &app.client);
    if (rc < 0) {
        emit("error", json_pack("{ss}", "detail", parley_strerror(rc)));
        return EXIT_FAIL;
    }
    if (opt.go_stdin) {
        pthread_t th;
        if (pthread_create(&th, NULL, stdin_reader, NULL) == 0)
            pthread_detach(th);
    }

    double t_start = now_s();
    pthread_mutex_lock(&app.mu);
    app.t_join = now_s();
    pthread_mutex_unlock(&app.mu);
    if (opt.create)
        rc = parley_create_room(app.client, NULL, opt.is_public, opt.create_topology);
    else if (opt.join)
        rc = parley_join_room(app.client, opt.join);
    else
        rc = parley_join_broadcaster(app.client, opt.broadcaster);
    if (rc < 0) {
        emit("error", json_pack("{ss}", "detail", parley_strerror(rc)));
        parley_client_free(app.client);
        return EXIT_FAIL;
    }

    int code = EXIT_OK;
    pthread_mutex_lock(&app.mu);
    for (;;) {
        double t = now_s();
        if (app.failure) {
            code = EXIT_FAIL;
            break;
        }
        if (t - t_start >= opt.timeout) {
            code = EXIT_TIMEOUT;
            break;
        }
        /* sessions whose exchange is over and whose queue is empty are finished once the
         * other side said #bye, went away, or LINGER_S passed */
        int finished = 0;
        double next_check = t + 0.25;
        for (int k = 0; k < app.ns; k++) {
            session *s = app.s[k];
            if (!s->finished && s->succeeded && !s->q_head && !s->pending) {
                if (s->remote_bye || s->remote_gone || t - s->t_succeeded >= LINGER_S)
                    s->finished = 1;
                else if (s->t_succeeded + LINGER_S < next_check)
                    next_check = s->t_succeeded + LINGER_S;
            }
            finished += s->finished;
        }
        app.finished_sessions = finished;
        if (finished >= opt.peers)
            break;
        int blocked = 0, joined = app.joined;
        unsigned long gen = app.gen;
        pthread_mutex_unlock(&app.mu);
        long n = joined ? pump(&blocked) : 0;
        pthread_mutex_lock(&app.mu);
        if (n == 0 && !app.failure && app.gen == gen) {
            double until = blocked ? now_s() + 0.001 : next_check;
            if (until > t_start + opt.timeout)
                until = t_start + opt.timeout;
            wait_until(until);
        }
    }

    if (code == EXIT_OK) {
        app.leaving = 1;
        pthread_mutex_unlock(&app.mu);
        rc = parley_leave(app.client);
        pthread_mutex_lock(&app.mu);
        if (rc == 0) {
            double until = now_s() + LEAVE_WAIT_S;
            while (!app.left && now_s() < until)
                wait_until(until);
        } else {
            emit("note", json_pack("{ssss}", "op", "leave", "detail", parley_strerror(rc)));
        }
        json_t *o = json_pack("{si}", "sessions", app.finished_sessions);
        json_object_set_new(o, "left", app.left ? json_integer(app.left_err) : json_null());
        emit("done", o);
    } else if (code == EXIT_TIMEOUT) {
        char what[64];
        snprintf(what, sizeof what, "timeout after %.0f s", opt.timeout);
        json_t *o = json_pack("{ss}", "detail", what);
        json_object_set_new(o, "sessions", sessions_progress());
        emit("error", o);
    } else {
        emit("error", json_pack("{ss}", "detail", app.failure));
    }
    app.leaving = 1;
    pthread_mutex_unlock(&app.mu);

    parley_client_free(app.client);

    for (int k = 0; k < app.ns; k++) {
        session *s = app.s[k];
        for (msg *m = s->q_head, *nx; m; m = nx) {
            nx = m->next;
            free(m);
        }
        free(s->pending);
        free(s->rtt_samples[0]);
        free(s->rtt_samples[1]);
        free(s);
    }
    free(app.failure);
    return code;
}
