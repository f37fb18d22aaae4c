// clang-format off
/* The room and the public API (client.c, room.c) through a real parleyd: the test starts
 * parleyd (path in PARLEYD) on a free loopback port with PARLEY_MEMBER_TTL=3, mints HS256
 * user tokens, and drives parley_client objects (ICE on 127.0.0.1 only) from this thread while
 * their callbacks run on the SDK threads. Internal test hooks (internal.h, pl__test_call) force
 * glare and failed ICE attempts; they are not part of parley.h.
 *
 *   api_unjoined   defaults, EINVAL, ESTATE before joining, a leave that has nothing to leave
 *   pair           create + join; on_joined / on_peer_joined / on_peer_connected exactly once
 *                  per side; text, binary, empty and max-size messages both ways in order;
 *                  ENOTCONN (this thread) or ENOTFOUND (a callback) for a non-member,
 *                  EMSGSIZE, broadcast count, max_message_size; 2,000 sends from this thread
 *                  while echoes arrive; a 10 MiB burst from this thread: every accepted send
 *                  arrives, in order; leave → the other's on_peer_gone(LEFT), our on_left(0),
 *                  then ESTATE
 *   glare          both offer at the same moment: one connection, the polite (lower id) side's
 *                  offer dropped, the impolite side's answered, messages flow, no retry, and
 *                  the dropped offer's candidates never reach the kept connection
 *   ice_retry      the first connection's ICE fails (remote candidates dropped on both sides):
 *                  retried, opens, exactly one on_peer_connected per side, no on_peer_gone
 *   ice_gives_up   every attempt fails: on_peer_gone(FAILED) exactly once per side
 *   room_closed    room-closed (injected) → on_peer_gone(ROOM_CLOSED); the other side sees
 *                  the connection close → on_peer_gone(LEFT)
 *   long_candidate a remote candidate over 1024 bytes is dropped, not taken as
 *                  end-of-candidates; the channel keeps working
 *   peer_vanishes  the other client's process is SIGKILLed (no leave, no close_notify):
 *                  on_peer_gone(LEFT) once its membership expires
 *   free_open      parley_client_free with a connection open and sends in flight returns
 *                  within 1 s; the other side gets on_peer_gone(LEFT)
 *
 * Every wait is bounded. Without PARLEYD the test is skipped (77) by hand and fails under
 * ctest (PARLEY_TEST_STRICT=1). */
// clang-format on
#include "internal.h"
#include "sdk_testutil.h"
#include "test.h"

#include <errno.h>
#include <spawn.h>

#define MAX_MSGS 64
#define STREAM_N 2000
#define BURST_N  160

static const char *const LOOPBACK[] = {"127.0.0.1", NULL};

static char server_url[64];
static char *token_a, *token_b;

/* ---- recording clients ---- */

/* One lock and condition for every recorder: callbacks (SDK threads) record under it and
 * broadcast; this thread waits with a deadline. */
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv;

typedef struct {
    int kind;
    size_t len;
    unsigned char *data;
} msg_t;

typedef struct {
    const char *label;
    parley_client *c;
    pl__test_hooks_t hooks;
    int echo; /* send every message back from the callback */
    char room_id[64], peer_id[64];
    int njoined, npeers_at_join;
    char first_peer[64];
    int npeer_joined, nconnected, ngone, gone_reason, nleft, left_err, nerrors, err;
    char err_op[16];
    char joined_peer[64], connected_peer[64], gone_peer[64];
    char connected_name[64];
    msg_t msgs[MAX_MSGS];
    int nmsgs, nall; /* recorded (the first MAX_MSGS), all */
    /* sequenced stream: 4-byte big-endian counters */
    int seq_next, seq_bad, nechoed, echo_fail;
    int cb_send_unknown; /* parley_send to an unknown peer from a callback */
    int after_gone_cb;   /* any callback for the peer after on_peer_gone */
} rec_t;

static void deadline_in(struct timespec *ts, int ms)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
    ts->tv_sec += ms / 1000;
    ts->tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

/* Waits (bounded) until expr holds under the lock; the value of expr at the end. */
#define WAIT(expr, ms)                                                                             \
    ({                                                                                             \
        struct timespec dl_;                                                                       \
        deadline_in(&dl_, (ms));                                                                   \
        pthread_mutex_lock(&mu);                                                                   \
        int ok_;                                                                                   \
        while (!(ok_ = !!(expr)) && pthread_cond_timedwait(&cv, &mu, &dl_) != ETIMEDOUT)           \
            ;                                                                                      \
        ok_ = !!(expr);                                                                            \
        pthread_mutex_unlock(&mu);                                                                 \
        ok_;                                                                                       \
    })

/* Reads a recorder's fields under the lock. */
#define GET(expr)                                                                                  \
    ({                                                                                             \
        pthread_mutex_lock(&mu);                                                                   \
        long long v_ = (long long)(expr);                                                          \
        pthread_mutex_unlock(&mu);                                                                 \
        v_;                                                                                        \
    })

static void sleep_ms(int ms)
{
    usleep((useconds_t)ms * 1000);
}

static void cb_joined(parley_client *c, const parley_room *room, const parley_peer *peers,
                      size_t npeers, void *user)
{
    rec_t *r = user;
    pthread_mutex_lock(&mu);
    r->njoined++;
    snprintf(r->room_id, sizeof r->room_id, "%s", room->room_id ? room->room_id : "");
    snprintf(r->peer_id, sizeof r->peer_id, "%s", room->peer_id ? room->peer_id : "");
    r->npeers_at_join = (int)npeers;
    if (npeers)
        snprintf(r->first_peer, sizeof r->first_peer, "%s", peers[0].peer_id);
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
}

static void cb_peer_joined(parley_client *c, const parley_peer *p, void *user)
{
    rec_t *r = user;
    pthread_mutex_lock(&mu);
    r->npeer_joined++;
    snprintf(r->joined_peer, sizeof r->joined_peer, "%s", p->peer_id);
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
}

static void cb_connected(parley_client *c, const parley_peer *p, void *user)
{
    rec_t *r = user;
    /* From a callback (the SDK thread): a peer that is not a member. */
    int rc = parley_send(c, "AAAAAAAAAAAAAAAAAAAAAA", PARLEY_MSG_TEXT, "x", 1);
    pthread_mutex_lock(&mu);
    r->cb_send_unknown = rc;
    r->nconnected++;
    if (r->ngone)
        r->after_gone_cb++;
    snprintf(r->connected_peer, sizeof r->connected_peer, "%s", p->peer_id);
    snprintf(r->connected_name, sizeof r->connected_name, "%s", p->name);
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
}

static unsigned get_seq(const void *data)
{
    const unsigned char *d = data;
    return (unsigned)d[0] << 24 | (unsigned)d[1] << 16 | (unsigned)d[2] << 8 | d[3];
}

static void cb_message(parley_client *c, const parley_peer *p, parley_msg_kind kind,
                       const void *data, size_t len, void *user)
{
    rec_t *r = user;
    int echo_rc = 0;
    if (r->echo) {
        /* Echoed from the callback while the other thread may be sending too. */
        do {
            echo_rc = parley_send(c, p->peer_id, kind, data, len);
        } while (echo_rc == PARLEY_EAGAIN);
    }
    pthread_mutex_lock(&mu);
    r->nall++;
    if (echo_rc < 0)
        r->echo_fail++;
    else if (r->echo)
        r->nechoed++;
    if (kind == PARLEY_MSG_BINARY && len >= 1024 && memcmp((const char *)data + 4, "seq", 3) == 0) {
        if (get_seq(data) != (unsigned)r->seq_next)
            r->seq_bad++;
        r->seq_next++;
    } else if (r->nmsgs < MAX_MSGS) {
        msg_t *m = &r->msgs[r->nmsgs++];
        m->kind = kind;
        m->len = len;
        m->data = malloc(len ? len : 1);
        if (len)
            memcpy(m->data, data, len);
    }
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
}

static void cb_gone(parley_client *c, const parley_peer *p, parley_gone_reason why, void *user)
{
    rec_t *r = user;
    pthread_mutex_lock(&mu);
    r->ngone++;
    r->gone_reason = (int)why;
    snprintf(r->gone_peer, sizeof r->gone_peer, "%s", p->peer_id);
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
}

static void cb_error(parley_client *c, const char *op, int err, const char *detail, void *user)
{
    rec_t *r = user;
    fprintf(stderr, "  [%s] on_error %s: %s (%s)\n", r->label, op, parley_strerror(err),
            detail ? detail : "-");
    pthread_mutex_lock(&mu);
    r->nerrors++;
    r->err = err;
    snprintf(r->err_op, sizeof r->err_op, "%s", op);
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
}

static void cb_left(parley_client *c, int err, void *user)
{
    rec_t *r = user;
    pthread_mutex_lock(&mu);
    r->nleft++;
    r->left_err = err;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
}

static const parley_callbacks CALLBACKS = {cb_joined, cb_peer_joined, cb_connected, cb_message,
                                           cb_gone,   NULL,           cb_error,     cb_left};

static void install_hooks(parley_client *c, void *arg)
{
    c->test = arg;
}

/* A client with hooks h (NULL: none set), installed before anything runs on its thread. */
static int rec_new_h(rec_t *r, const char *label, const char *token, const pl__test_hooks_t *h)
{
    memset(r, 0, sizeof *r);
    r->label = label;
    if (h)
        r->hooks = *h;
    parley_config cfg;
    parley_config_init(&cfg);
    cfg.server_url = server_url;
    cfg.user_token = token;
    cfg.ice_local_addresses = LOOPBACK;
    int rc = parley_client_new(&cfg, &CALLBACKS, r, &r->c);
    if (rc == 0)
        rc = pl__test_call(r->c, install_hooks, &r->hooks);
    return rc;
}

static int rec_new(rec_t *r, const char *label, const char *token)
{
    return rec_new_h(r, label, token, NULL);
}

static void rec_free(rec_t *r)
{
    if (r->c)
        parley_client_free(r->c);
    r->c = NULL;
    for (int i = 0; i < r->nmsgs; i++)
        free(r->msgs[i].data);
    r->nmsgs = 0;
}

/* Two clients with the same hooks. */
static int two_new(rec_t *a, rec_t *b, const pl__test_hooks_t *h)
{
    if (rec_new_h(a, "A", token_a, h) != 0)
        return 0;
    if (rec_new_h(b, "B", token_b, h) != 0) {
        rec_free(a);
        return 0;
    }
    return 1;
}

/* A copy of the hooks' counters, taken on the SDK thread. */
static void copy_hooks(parley_client *c, void *arg)
{
    *(pl__test_hooks_t *)arg = *c->test;
}

static pl__test_hooks_t hooks_of(rec_t *r)
{
    pl__test_hooks_t h;
    memset(&h, 0, sizeof h);
    CHECK_EQ_INT(pl__test_call(r->c, copy_hooks, &h), 0);
    return h;
}

/* A creates a mesh room and B joins it. */
static int pair_join(rec_t *a, rec_t *b)
{
    if (parley_create_room(a->c, "room test", 0, NULL) != 0 || !WAIT(a->njoined == 1, 5000))
        return 0;
    char room[64];
    snprintf(room, sizeof room, "%s", a->room_id);
    return parley_join_room(b->c, room) == 0 && WAIT(b->njoined == 1, 5000);
}

static int both_connected(rec_t *a, rec_t *b, int ms)
{
    return WAIT(a->nconnected >= 1 && b->nconnected >= 1, ms);
}

/* Sends text "ping <n>" a→b and waits for it. */
static int ping(rec_t *a, rec_t *b, int n)
{
    char text[32];
    int len = snprintf(text, sizeof text, "ping %d", n);
    int before = (int)GET(b->nmsgs);
    int rc = parley_send(a->c, b->peer_id, PARLEY_MSG_TEXT, text, (size_t)len);
    if (rc != 0) {
        fprintf(stderr, "  ping: %s\n", parley_strerror(rc));
        return 0;
    }
    if (!WAIT(b->nmsgs > before, 5000))
        return 0;
    pthread_mutex_lock(&mu);
    msg_t *m = &b->msgs[before];
    int ok = m->kind == PARLEY_MSG_TEXT && m->len == (size_t)len && !memcmp(m->data, text, m->len);
    pthread_mutex_unlock(&mu);
    return ok;
}

/* Exactly one on_peer_connected per side, no on_peer_gone or error, and (when connected)
 * messages both ways. */
static void one_connection(rec_t *a, rec_t *b, int connected)
{
    pthread_mutex_lock(&mu);
    CHECK_EQ_INT(a->nconnected, 1);
    CHECK_EQ_INT(b->nconnected, 1);
    CHECK_EQ_INT(a->ngone + b->ngone + a->nerrors + b->nerrors, 0);
    pthread_mutex_unlock(&mu);
    if (connected) {
        CHECK(ping(a, b, 1));
        CHECK(ping(b, a, 2));
    }
}

/* ---- the cases ---- */

static void test_api_unjoined(void)
{
    parley_config cfg;
    parley_config_init(&cfg);
    CHECK_EQ_INT(cfg.struct_size, sizeof cfg);
    CHECK_EQ_INT(cfg.max_message_size, 262144);
    CHECK_EQ_INT(cfg.signaling, PARLEY_SIGNALING_AUTO);
    CHECK_EQ_INT(cfg.log_level, 2);
    CHECK(cfg.server_url == NULL && cfg.ice_local_addresses == NULL);
    parley_client *c = NULL;
    CHECK_EQ_INT(parley_client_new(&cfg, &CALLBACKS, NULL, &c), PARLEY_EINVAL); /* no URL */
    cfg.server_url = server_url;
    cfg.struct_size = 8;
    CHECK_EQ_INT(parley_client_new(&cfg, &CALLBACKS, NULL, &c), PARLEY_EINVAL);
    cfg.struct_size = sizeof cfg;
    CHECK_EQ_INT(parley_client_new(NULL, &CALLBACKS, NULL, &c), PARLEY_EINVAL);
    CHECK_EQ_INT(parley_client_new(&cfg, &CALLBACKS, NULL, NULL), PARLEY_EINVAL);
    CHECK(c == NULL);

    rec_t a;
    REQUIRE(rec_new(&a, "A", token_a) == 0);
    const char *peer = "AAAAAAAAAAAAAAAAAAAAAA";
    CHECK_EQ_INT(parley_send(a.c, peer, PARLEY_MSG_TEXT, "x", 1), PARLEY_ESTATE);
    CHECK_EQ_INT(parley_broadcast(a.c, PARLEY_MSG_TEXT, "x", 1), PARLEY_ESTATE);
    CHECK_EQ_INT(parley_max_message_size(a.c, peer), 0);
    CHECK_EQ_INT(parley_send(a.c, NULL, PARLEY_MSG_TEXT, "x", 1), PARLEY_EINVAL);
    CHECK_EQ_INT(parley_send(a.c, "not an id", PARLEY_MSG_TEXT, "x", 1), PARLEY_EINVAL);
    CHECK_EQ_INT(parley_send(a.c, peer, (parley_msg_kind)7, "x", 1), PARLEY_EINVAL);
    CHECK_EQ_INT(parley_send(a.c, peer, PARLEY_MSG_TEXT, NULL, 1), PARLEY_EINVAL);
    CHECK_EQ_INT(parley_broadcast(NULL, PARLEY_MSG_TEXT, "x", 1), PARLEY_EINVAL);
    CHECK_EQ_INT(parley_join_room(a.c, "../etc"), PARLEY_EINVAL);
    CHECK_EQ_INT(parley_join_room(a.c, NULL), PARLEY_EINVAL);
    CHECK_EQ_INT(parley_join_broadcaster(a.c, ""), PARLEY_EINVAL);
    CHECK_EQ_INT(parley_create_room(a.c, NULL, 0, "ring"), PARLEY_EINVAL);
    CHECK_EQ_INT(parley_leave(NULL), PARLEY_EINVAL);
    /* Nothing to leave: accepted, then on_error("leave"). */
    CHECK_EQ_INT(parley_leave(a.c), 0);
    CHECK(WAIT(a.nerrors == 1, 5000));
    CHECK_EQ_STR(a.err_op, "leave");
    CHECK_EQ_INT(a.err, PARLEY_ESTATE);
    /* An unknown room: on_error("join"). */
    CHECK_EQ_INT(parley_join_room(a.c, peer), 0);
    CHECK(WAIT(a.nerrors == 2, 5000));
    CHECK_EQ_STR(a.err_op, "join");
    CHECK_EQ_INT(a.err, PARLEY_ESRV_NOT_FOUND);
    CHECK_EQ_INT(a.njoined + a.nleft, 0);
    rec_free(&a);
}

/* The 2,000-message stream: this thread sends sequenced 1 KiB messages to b, which echoes
 * each from its callback; both ends check the order. */
static void stream_with_echo(rec_t *a, rec_t *b)
{
    unsigned char buf[1024];
    memset(buf, 0xa5, sizeof buf);
    memcpy(buf + 4, "seq", 3);
    int eagain = 0;
    for (int i = 0; i < STREAM_N; i++) {
        buf[0] = (unsigned char)(i >> 24);
        buf[1] = (unsigned char)(i >> 16);
        buf[2] = (unsigned char)(i >> 8);
        buf[3] = (unsigned char)i;
        int rc;
        while ((rc = parley_send(a->c, b->peer_id, PARLEY_MSG_BINARY, buf, sizeof buf)) ==
               PARLEY_EAGAIN) {
            eagain++;
            sleep_ms(1);
        }
        if (rc != 0) {
            CHECK_EQ_INT(rc, 0);
            break;
        }
    }
    CHECK(WAIT(b->seq_next == STREAM_N && a->seq_next == STREAM_N, 20000));
    CHECK_EQ_INT(GET(b->seq_next), STREAM_N);
    CHECK_EQ_INT(GET(a->seq_next), STREAM_N);
    CHECK_EQ_INT(GET(b->seq_bad), 0);
    CHECK_EQ_INT(GET(a->seq_bad), 0);
    CHECK_EQ_INT(GET(b->echo_fail), 0);
    fprintf(stderr, "  stream: %d messages each way, %d EAGAIN\n", STREAM_N, eagain);
}

static void test_pair(void)
{
    rec_t a, b;
    REQUIRE(two_new(&a, &b, NULL));
    int ok = pair_join(&a, &b);
    CHECK(ok);
    if (ok) {
        CHECK_EQ_INT(GET(a.npeers_at_join), 0);
        CHECK_EQ_INT(GET(b.npeers_at_join), 1);
        CHECK_EQ_STR(b.first_peer, a.peer_id);
        CHECK(strcmp(a.room_id, b.room_id) == 0);
        ok = both_connected(&a, &b, 10000);
        CHECK(ok);
    }
    if (ok) {
        sleep_ms(300); /* anything doubled would come meanwhile */
        pthread_mutex_lock(&mu);
        CHECK_EQ_INT(a.njoined, 1);
        CHECK_EQ_INT(b.njoined, 1);
        /* A learns of B (offer-request), B knew A from on_joined's list. */
        CHECK_EQ_INT(a.npeer_joined, 1);
        CHECK_EQ_STR(a.joined_peer, b.peer_id);
        CHECK_EQ_INT(b.npeer_joined, 0);
        CHECK_EQ_INT(a.nconnected, 1);
        CHECK_EQ_INT(b.nconnected, 1);
        CHECK_EQ_STR(a.connected_peer, b.peer_id);
        CHECK_EQ_STR(b.connected_peer, a.peer_id);
        CHECK_EQ_STR(a.connected_name, "Bob");
        CHECK_EQ_STR(b.connected_name, "Alice");
        /* docs/sdk.md: an unknown peer is ENOTFOUND on the SDK thread, ENOTCONN elsewhere. */
        CHECK_EQ_INT(a.cb_send_unknown, PARLEY_ENOTFOUND);
        CHECK_EQ_INT(b.cb_send_unknown, PARLEY_ENOTFOUND);
        CHECK_EQ_INT(a.ngone + b.ngone + a.nerrors + b.nerrors, 0);
        pthread_mutex_unlock(&mu);

        /* Sizes and errors. */
        size_t max = parley_max_message_size(a.c, b.peer_id);
        CHECK_EQ_INT(max, 262144);
        CHECK_EQ_INT(parley_max_message_size(b.c, a.peer_id), 262144);
        CHECK_EQ_INT(parley_max_message_size(a.c, "AAAAAAAAAAAAAAAAAAAAAA"), 0);
        unsigned char *big = malloc(max + 1);
        for (size_t i = 0; i <= max; i++)
            big[i] = (unsigned char)(i * 7 + 1);
        CHECK_EQ_INT(parley_send(a.c, b.peer_id, PARLEY_MSG_BINARY, big, max + 1), PARLEY_EMSGSIZE);
        CHECK_EQ_INT(parley_send(a.c, "AAAAAAAAAAAAAAAAAAAAAA", PARLEY_MSG_TEXT, "x", 1),
                     PARLEY_ENOTCONN);

        /* Both ways, in order: text, binary, empty, the largest. */
        CHECK_EQ_INT(parley_send(a.c, b.peer_id, PARLEY_MSG_TEXT, "hello B", 7), 0);
        CHECK_EQ_INT(parley_send(a.c, b.peer_id, PARLEY_MSG_BINARY, "\0\1\2\3", 4), 0);
        CHECK_EQ_INT(parley_send(a.c, b.peer_id, PARLEY_MSG_TEXT, "", 0), 0);
        CHECK_EQ_INT(parley_send(a.c, b.peer_id, PARLEY_MSG_BINARY, big, max), 0);
        CHECK_EQ_INT(parley_send(b.c, a.peer_id, PARLEY_MSG_BINARY, "\xff\xfe", 2), 0);
        CHECK_EQ_INT(parley_send(b.c, a.peer_id, PARLEY_MSG_TEXT, "hello A", 7), 0);
        CHECK_EQ_INT(parley_broadcast(b.c, PARLEY_MSG_TEXT, "to all", 6), 1);
        CHECK(WAIT(b.nmsgs == 4 && a.nmsgs == 3, 10000));
        pthread_mutex_lock(&mu);
        if (b.nmsgs == 4) {
            CHECK(b.msgs[0].kind == PARLEY_MSG_TEXT && b.msgs[0].len == 7 &&
                  !memcmp(b.msgs[0].data, "hello B", 7));
            CHECK(b.msgs[1].kind == PARLEY_MSG_BINARY && b.msgs[1].len == 4 &&
                  !memcmp(b.msgs[1].data, "\0\1\2\3", 4));
            CHECK(b.msgs[2].kind == PARLEY_MSG_TEXT && b.msgs[2].len == 0);
            CHECK(b.msgs[3].kind == PARLEY_MSG_BINARY && b.msgs[3].len == max &&
                  !memcmp(b.msgs[3].data, big, max));
        }
        if (a.nmsgs == 3) {
            CHECK(a.msgs[0].kind == PARLEY_MSG_BINARY && a.msgs[0].len == 2 &&
                  !memcmp(a.msgs[0].data, "\xff\xfe", 2));
            CHECK(a.msgs[1].kind == PARLEY_MSG_TEXT && a.msgs[1].len == 7 &&
                  !memcmp(a.msgs[1].data, "hello A", 7));
            CHECK(a.msgs[2].kind == PARLEY_MSG_TEXT && a.msgs[2].len == 6 &&
                  !memcmp(a.msgs[2].data, "to all", 6));
        }
        pthread_mutex_unlock(&mu);
        free(big);

        /* Calls from this thread while callbacks run: B echoes from its callback. */
        pthread_mutex_lock(&mu);
        b.echo = 1;
        pthread_mutex_unlock(&mu);
        stream_with_echo(&a, &b);
        pthread_mutex_lock(&mu);
        b.echo = 0;
        pthread_mutex_unlock(&mu);

        /* A burst of 10 MiB from this thread, more than the SCTP buffer and send queue
         * hold: every send that returned 0 arrives, in order (they used to be dropped). */
        static unsigned char blk[65536];
        memcpy(blk + 4, "seq", 3);
        int eagain = 0;
        for (int i = STREAM_N; i < STREAM_N + BURST_N; i++) {
            blk[0] = (unsigned char)(i >> 24);
            blk[1] = (unsigned char)(i >> 16);
            blk[2] = (unsigned char)(i >> 8);
            blk[3] = (unsigned char)i;
            int rc;
            while ((rc = parley_send(a.c, b.peer_id, PARLEY_MSG_BINARY, blk, sizeof blk)) ==
                   PARLEY_EAGAIN) {
                eagain++;
                sleep_ms(1);
            }
            CHECK_EQ_INT(rc, 0);
        }
        CHECK(WAIT(b.seq_next == STREAM_N + BURST_N, 15000));
        CHECK_EQ_INT(GET(b.seq_next), STREAM_N + BURST_N);
        CHECK_EQ_INT(GET(b.seq_bad), 0);
        fprintf(stderr, "  burst: %d x 64 KiB, %d EAGAIN\n", BURST_N, eagain);

        /* B leaves: A's on_peer_gone(LEFT), B's on_left(0), and B is out of the room. */
        char bid[64];
        snprintf(bid, sizeof bid, "%s", b.peer_id);
        CHECK_EQ_INT(parley_leave(b.c), 0);
        CHECK(WAIT(b.nleft == 1 && a.ngone == 1, 5000));
        sleep_ms(300);
        pthread_mutex_lock(&mu);
        CHECK_EQ_INT(b.nleft, 1);
        CHECK_EQ_INT(b.left_err, 0);
        CHECK_EQ_INT(a.ngone, 1);
        CHECK_EQ_INT(a.gone_reason, PARLEY_GONE_LEFT);
        CHECK_EQ_STR(a.gone_peer, bid);
        CHECK_EQ_INT(b.ngone, 0); /* our own leave reports nothing per peer */
        CHECK_EQ_INT(a.nerrors + b.nerrors, 0);
        pthread_mutex_unlock(&mu);
        CHECK_EQ_INT(parley_send(b.c, a.peer_id, PARLEY_MSG_TEXT, "x", 1), PARLEY_ESTATE);
        CHECK_EQ_INT(parley_send(a.c, bid, PARLEY_MSG_TEXT, "x", 1), PARLEY_ENOTCONN);
        CHECK_EQ_INT(parley_broadcast(a.c, PARLEY_MSG_TEXT, "x", 1), 0);
        CHECK_EQ_INT(parley_max_message_size(a.c, bid), 0);
    }
    rec_free(&b);
    rec_free(&a);
}

static void release(parley_client *c, void *arg)
{
    pl__room_test_release(c->room);
}

typedef struct {
    const char *peer;
    int rc;
} offer_arg_t;

static void offer_now(parley_client *c, void *arg)
{
    offer_arg_t *o = arg;
    o->rc = pl__room_test_offer(c->room, o->peer);
}

static void test_glare(void)
{
    rec_t a, b;
    /* Nobody offers by itself, and each holds what the other signals until both offered. */
    pl__test_hooks_t h = {.manual_offers = 1, .hold_signals = 1};
    REQUIRE(two_new(&a, &b, &h));
    int ok = pair_join(&a, &b);
    CHECK(ok);
    if (ok) {
        offer_arg_t oa = {b.peer_id, -100}, ob = {a.peer_id, -100};
        CHECK(WAIT(a.npeer_joined == 1, 5000)); /* A knows B */
        CHECK_EQ_INT(pl__test_call(a.c, offer_now, &oa), 0);
        CHECK_EQ_INT(pl__test_call(b.c, offer_now, &ob), 0);
        CHECK_EQ_INT(oa.rc, 0);
        CHECK_EQ_INT(ob.rc, 0);
        /* Both offers are out and each side holds the other's. */
        pl__test_hooks_t ha, hb;
        for (int i = 0; i < 500; i++) {
            ha = hooks_of(&a);
            hb = hooks_of(&b);
            if (ha.offers_held == 1 && hb.offers_held == 1)
                break;
            sleep_ms(10);
        }
        CHECK_EQ_INT(ha.offers_sent, 1);
        CHECK_EQ_INT(hb.offers_sent, 1);
        CHECK_EQ_INT(ha.offers_held, 1);
        CHECK_EQ_INT(hb.offers_held, 1);
        /* Now each gets the other's offer while its own is outstanding. */
        CHECK_EQ_INT(pl__test_call(a.c, release, NULL), 0);
        CHECK_EQ_INT(pl__test_call(b.c, release, NULL), 0);
        ok = both_connected(&a, &b, 10000);
        CHECK(ok);
        sleep_ms(500);
        rec_t *pol = strcmp(a.peer_id, b.peer_id) < 0 ? &a : &b;
        rec_t *imp = pol == &a ? &b : &a;
        pl__test_hooks_t hp = hooks_of(pol), hi = hooks_of(imp);
        /* The polite side dropped its offer and answered; the impolite side kept its own. */
        CHECK_EQ_INT(hp.glare_yielded, 1);
        CHECK_EQ_INT(hp.glare_kept, 0);
        CHECK_EQ_INT(hi.glare_kept, 1);
        CHECK_EQ_INT(hi.glare_yielded, 0);
        /* What the polite side trickled for its dropped offer (a host candidate and the end
         * of candidates) never reached the impolite side's connection. */
        CHECK(hi.stale_cands >= 2);
        CHECK_EQ_INT(hp.stale_cands, 0);
        CHECK_EQ_INT(hp.pcs, 2); /* its offer's connection, then the answering one */
        CHECK_EQ_INT(hi.pcs, 1); /* one connection: its offer's */
        CHECK_EQ_INT(hp.offers_sent + hi.offers_sent, 2);
        CHECK_EQ_INT(hp.retries + hi.retries, 0);
        one_connection(&a, &b, ok);
    }
    rec_free(&b);
    rec_free(&a);
}

static void test_ice_retry(void)
{
    rec_t a, b;
    /* The first connection on each side drops every remote candidate: with no pair, ICE
     * cannot connect and the attempt fails (ICE failure or the 2 s connect timeout). */
    pl__test_hooks_t h = {
        .drop_remote_candidates = 1, .connect_timeout_ms = 2000, .retry_base_ms = 100};
    REQUIRE(two_new(&a, &b, &h));
    int ok = pair_join(&a, &b);
    CHECK(ok);
    if (ok) {
        ok = both_connected(&a, &b, 15000);
        CHECK(ok);
        sleep_ms(500);
        pl__test_hooks_t ha = hooks_of(&a), hb = hooks_of(&b);
        CHECK(ha.retries + hb.retries >= 1); /* the failure was seen and retried */
        CHECK(ha.pcs >= 2 && hb.pcs >= 2);   /* a second connection opened */
        one_connection(&a, &b, ok);
    }
    rec_free(&b);
    rec_free(&a);
}

static void test_ice_gives_up(void)
{
    rec_t a, b;
    pl__test_hooks_t h = {
        .drop_remote_candidates = 1000, .connect_timeout_ms = 700, .retry_base_ms = 50};
    REQUIRE(two_new(&a, &b, &h));
    int ok = pair_join(&a, &b);
    CHECK(ok);
    if (ok) {
        CHECK(WAIT(a.ngone >= 1 && b.ngone >= 1, 20000));
        sleep_ms(1500); /* a second report would come meanwhile */
        pl__test_hooks_t ha = hooks_of(&a), hb = hooks_of(&b);
        fprintf(stderr, "  connections: A %u, B %u; retries A %u, B %u\n", ha.pcs, hb.pcs,
                ha.retries, hb.retries);
        pthread_mutex_lock(&mu);
        CHECK_EQ_INT(a.ngone, 1);
        CHECK_EQ_INT(b.ngone, 1);
        CHECK_EQ_INT(a.gone_reason, PARLEY_GONE_FAILED);
        CHECK_EQ_INT(b.gone_reason, PARLEY_GONE_FAILED);
        CHECK_EQ_INT(a.nconnected + b.nconnected, 0);
        pthread_mutex_unlock(&mu);
        CHECK_EQ_INT(parley_send(a.c, b.peer_id, PARLEY_MSG_TEXT, "x", 1), PARLEY_ENOTCONN);
    }
    rec_free(&b);
    rec_free(&a);
}

static void inject_room_closed(parley_client *c, void *arg)
{
    json_t *env = json_pack("{s:s,s:n}", "type", "room-closed", "from");
    pl__room_test_envelope(c->room, env);
    json_decref(env);
}

static void test_room_closed(void)
{
    rec_t a, b;
    REQUIRE(two_new(&a, &b, NULL));
    int ok = pair_join(&a, &b) && both_connected(&a, &b, 10000);
    CHECK(ok);
    if (ok) {
        CHECK_EQ_INT(pl__test_call(a.c, inject_room_closed, NULL), 0);
        /* A: the room is gone. B: A closed the connection (DTLS close_notify). */
        CHECK(WAIT(a.ngone == 1 && b.ngone == 1, 5000));
        sleep_ms(300);
        pthread_mutex_lock(&mu);
        CHECK_EQ_INT(a.ngone, 1);
        CHECK_EQ_INT(a.gone_reason, PARLEY_GONE_ROOM_CLOSED);
        CHECK_EQ_STR(a.gone_peer, b.peer_id);
        CHECK_EQ_INT(b.ngone, 1);
        CHECK_EQ_INT(b.gone_reason, PARLEY_GONE_LEFT);
        CHECK_EQ_STR(b.gone_peer, a.peer_id);
        pthread_mutex_unlock(&mu);
        CHECK_EQ_INT(parley_send(a.c, b.peer_id, PARLEY_MSG_TEXT, "x", 1), PARLEY_ENOTCONN);
        CHECK_EQ_INT(parley_send(b.c, a.peer_id, PARLEY_MSG_TEXT, "x", 1), PARLEY_ENOTCONN);
    }
    rec_free(&b);
    rec_free(&a);
}

/* A remote candidate over 1024 bytes, from the peer (string and object forms). */
static void inject_long_candidate(parley_client *c, void *arg)
{
    char *line = malloc(2049);
    memcpy(line, "candidate:", 10);
    memset(line + 10, 'x', 2038);
    line[2048] = '\0';
    json_t *e1 = json_pack("{s:s,s:s,s:s}", "type", "candidate", "from", (const char *)arg,
                           "candidate", line);
    json_t *e2 =
        json_pack("{s:s,s:s,s:{s:s,s:s,s:i}}", "type", "candidate", "from", (const char *)arg,
                  "candidate", "candidate", line, "sdpMid", "0", "sdpMLineIndex", 0);
    pl__room_test_envelope(c->room, e1);
    pl__room_test_envelope(c->room, e2);
    json_decref(e1);
    json_decref(e2);
    free(line);
}

/* A candidate over 1024 bytes is dropped (logged at debug), not taken as end-of-candidates. */
static void test_long_candidate(void)
{
    rec_t a, b;
    REQUIRE(two_new(&a, &b, NULL));
    int ok = pair_join(&a, &b) && both_connected(&a, &b, 10000);
    CHECK(ok);
    if (ok) {
        pl__test_hooks_t before = hooks_of(&b);
        CHECK_EQ_INT(pl__test_call(b.c, inject_long_candidate, a.peer_id), 0);
        pl__test_hooks_t after = hooks_of(&b);
        CHECK_EQ_INT(after.long_cands - before.long_cands, 2);
        CHECK_EQ_INT(after.remote_eocs, before.remote_eocs);
        CHECK(ping(&a, &b, 1));
        CHECK(ping(&b, &a, 2));
        CHECK_EQ_INT(GET(a.ngone + b.ngone), 0);
    }
    rec_free(&b);
    rec_free(&a);
}

/* ---- another process that vanishes ---- */

/* The child: joins room, waits for the channel, says "connected", then waits to be killed. */
static int child_main(const char *url, const char *token, const char *room)
{
    rec_t r;
    snprintf(server_url, sizeof server_url, "%s", url);
    if (rec_new(&r, "child", token) != 0 || parley_join_room(r.c, room) != 0 ||
        !WAIT(r.nconnected == 1, 10000))
        return 1;
    printf("connected\n");
    fflush(stdout);
    sleep(30);
    return 1;
}

static void test_peer_vanishes(void)
{
    rec_t a;
    REQUIRE(rec_new(&a, "A", token_a) == 0);
    int ok = parley_create_room(a.c, NULL, 0, NULL) == 0 && WAIT(a.njoined == 1, 5000);
    CHECK(ok);
    int pfd[2];
    pid_t pid = 0;
    if (ok && pipe(pfd) == 0) {
        char *argv[] = {"test_room", "--child", server_url, token_b, a.room_id, NULL};
        posix_spawn_file_actions_t fa;
        posix_spawn_file_actions_init(&fa);
        posix_spawn_file_actions_adddup2(&fa, pfd[1], 1);
        posix_spawn_file_actions_addclose(&fa, pfd[0]);
        extern char **environ;
        if (posix_spawn(&pid, "/proc/self/exe", &fa, NULL, argv, environ) != 0)
            pid = 0;
        posix_spawn_file_actions_destroy(&fa);
        close(pfd[1]);
        char line[32] = "";
        FILE *f = fdopen(pfd[0], "r");
        /* The child's own wait is bounded (10 s), then it exits and closes the pipe. */
        CHECK(f && fgets(line, sizeof line, f) && strcmp(line, "connected\n") == 0);
        if (f)
            fclose(f);
        CHECK(WAIT(a.nconnected == 1, 5000));
    }
    CHECK(pid > 0);
    if (pid > 0) {
        uint64_t t0 = uv_hrtime();
        kill(pid, SIGKILL); /* no leave, no DTLS close_notify */
        waitpid(pid, NULL, 0);
        CHECK(WAIT(a.ngone == 1, 15000));
        fprintf(stderr, "  on_peer_gone %.1f s after the kill\n", (uv_hrtime() - t0) / 1e9);
        sleep_ms(300);
        pthread_mutex_lock(&mu);
        CHECK_EQ_INT(a.ngone, 1);
        CHECK_EQ_INT(a.gone_reason, PARLEY_GONE_LEFT);
        pthread_mutex_unlock(&mu);
    }
    rec_free(&a);
}

/* Freed with the connection open and sends queued: returns within a second. */
static void test_free_open(void)
{
    rec_t a, b;
    REQUIRE(two_new(&a, &b, NULL));
    int ok = pair_join(&a, &b) && both_connected(&a, &b, 10000);
    CHECK(ok);
    if (ok) {
        static unsigned char buf[65536];
        for (int i = 0; i < 64; i++)
            parley_send(a.c, b.peer_id, PARLEY_MSG_BINARY, buf, sizeof buf);
        uint64_t t0 = uv_hrtime();
        parley_client_free(a.c);
        a.c = NULL;
        double s = (uv_hrtime() - t0) / 1e9;
        fprintf(stderr, "  parley_client_free: %.3f s\n", s);
        CHECK(s < 1.5);
        CHECK(WAIT(b.ngone == 1, 5000));
        CHECK_EQ_INT(GET(b.gone_reason), PARLEY_GONE_LEFT);
    }
    rec_free(&b);
    rec_free(&a);
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&cv, &ca);
    pthread_condattr_destroy(&ca);
    if (argc == 5 && strcmp(argv[1], "--child") == 0)
        return child_main(argv[2], argv[3], argv[4]);

    if (!sdk_have_parleyd())
        return getenv("PARLEY_TEST_STRICT") ? 1 : 77;
    if (sdk_start_parleyd("room", 0, "3") != 0) {
        fprintf(stderr, "parleyd did not start; its log: %s\n", srv.log_path);
        return 1;
    }
    snprintf(server_url, sizeof server_url, "http://127.0.0.1:%d", srv.port);
    token_a = sdk_mint("alice", "Alice");
    token_b = sdk_mint("bob", "Bob");

    RUN(test_api_unjoined);
    RUN(test_pair);
    RUN(test_glare);
    RUN(test_ice_retry);
    RUN(test_ice_gives_up);
    RUN(test_room_closed);
    RUN(test_long_candidate);
    RUN(test_peer_vanishes);
    RUN(test_free_open);

    sdk_stop_parleyd(SIGTERM);
    free(token_a);
    free(token_b);
    if (pl_test_cases_failed == 0 && !getenv("PARLEY_TEST_KEEP_LOGS"))
        unlink(srv.log_path);
    else
        fprintf(stderr, "parleyd log: %s\n", srv.log_path);
    TEST_MAIN();
}
