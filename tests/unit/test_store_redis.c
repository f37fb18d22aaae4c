/* The redis store engine against a real redis-server this test starts on a free loopback
 * port (no persistence): every scenario of store_scenarios.h, with the same injected clock
 * (the engine passes its time to the scripts), plus what only a shared, remote store has:
 * two stores on one redis, and a redis frozen, killed and restarted. Exits 77 (skip)
 * without redis-server. Callbacks come from the loop, which the fixture runs (bounded)
 * until they have fired. */
#include "store_scenarios.h"

#include "store/redis.h"

#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ---- the redis server ---- */

static pid_t redis_pid;
static int redis_port;

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) != 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    close(fd);
    return ntohs(a.sin_port);
}

/* A reply read with a blocking client (test only): an integer, a number in a string, or
 * nil. Returns false on error. */
static bool redis_number(const char *cmd, long long *out, bool *nil)
{
    struct timeval tv = {0, 500000};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", redis_port, tv);
    if (!c || c->err) {
        if (c)
            redisFree(c);
        return false;
    }
    redisReply *r = redisCommand(c, cmd);
    bool ok = r && r->type != REDIS_REPLY_ERROR;
    *nil = ok && r->type == REDIS_REPLY_NIL;
    if (ok && r->type == REDIS_REPLY_INTEGER)
        *out = r->integer;
    else if (ok && r->type == REDIS_REPLY_STRING)
        *out = strtoll(r->str, NULL, 10);
    if (r)
        freeReplyObject(r);
    redisFree(c);
    return ok;
}

/* A blocking command on a fresh connection (test setup only, never on the engine's loop). */
static bool redis_cmd(const char *cmd)
{
    long long v;
    bool nil;
    return redis_number(cmd, &v, &nil);
}

static bool redis_start(void)
{
    char port[16];
    snprintf(port, sizeof port, "%d", redis_port);
    redis_pid = fork();
    if (redis_pid < 0)
        return false;
    if (redis_pid == 0) {
        int dn = open("/dev/null", 1);
        if (dn >= 0) {
            dup2(dn, 1);
            dup2(dn, 2);
        }
        execlp("redis-server", "redis-server", "--port", port, "--bind", "127.0.0.1", "--save", "",
               "--appendonly", "no", (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 200; i++) {
        if (redis_cmd("PING"))
            return true;
        usleep(20000);
    }
    return false;
}

static void redis_kill(void)
{
    if (redis_pid > 0) {
        kill(redis_pid, SIGKILL);
        waitpid(redis_pid, NULL, 0);
        redis_pid = 0;
    }
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- the engine ---- */

/* Every fixture starts from an empty redis. */
static int redis_reset(void)
{
    return redis_cmd("FLUSHALL") ? 0 : -1;
}

/* The fixture's store names no database and the second nodes of the tests below name
 * database 0, so both forms of the URL are shown to reach the same data. */
static int redis_node(uv_loop_t *loop, const pl_store_opts_t *opts,
                      const pl_store_listener_t *listener, const char *node, pl_store_t **out)
{
    char url[64];
    snprintf(url, sizeof url, "redis://127.0.0.1:%d%s", redis_port,
             strcmp(node, "test") == 0 ? "" : "/0");
    return pl_store_redis_new(loop, url, opts, listener, node, out);
}

static int redis_make(uv_loop_t *loop, const pl_store_opts_t *opts,
                      const pl_store_listener_t *listener, pl_store_t **out)
{
    return redis_node(loop, opts, listener, "test", out);
}

static const store_engine_t redis_engine = {
    .name = "redis",
    .reset = redis_reset,
    .make = redis_make,
    .sweep = pl_store_redis_sweep,
    .deferred = true,
};

/* The same engine sending its operations as scripts (EVALSHA), as it does to a Redis older
 * than 7: the whole scenario suite runs both ways. */
static int redis_make_scripts(uv_loop_t *loop, const pl_store_opts_t *opts,
                              const pl_store_listener_t *listener, pl_store_t **out)
{
    int rc = redis_node(loop, opts, listener, "test", out);
    if (rc == 0)
        pl_store_redis_use_scripts(*out);
    return rc;
}

static const store_engine_t redis_scripts_engine = {
    .name = "redis",
    .reset = redis_reset,
    .make = redis_make_scripts,
    .sweep = pl_store_redis_sweep,
    .deferred = true,
};

/* ---- what only the redis engine has ---- */

/* Two nodes on one redis: shared rooms, cross-node on_inbox, and each expiry reported by
 * one node only. */
static int inbox_b, expired_b;
static char inbox_b_peer[PL_ID_SIZE];
static void on_inbox_b(void *ud, const char *room, const char *peer)
{
    (void)ud;
    (void)room;
    snprintf(inbox_b_peer, sizeof inbox_b_peer, "%s", peer);
    inbox_b++;
}
static void on_member_expired_b(void *ud, const pl_room_t *room, const pl_member_t *member,
                                const pl_member_t *remaining, size_t nremaining, bool room_removed)
{
    (void)ud;
    (void)room;
    (void)member;
    (void)remaining;
    (void)nremaining;
    (void)room_removed;
    expired_b++;
}

/* The room's `sx` (earliest waiting envelope) is set by a push, folded into pl:expiry, and
 * cleared by the sweep once nothing waits: a stale one would make the room due, and swept,
 * every second for ever. */
static void test_signal_expiry_bookkeeping(void)
{
    fixture_t fx;
    pl_store_opts_t o = default_opts();
    REQUIRE(open_room1(&fx, &o, 2));
    pl_store_t *s = fx.s;
    long long v = 0;
    bool nil = false;
    int64_t pushed_at = fake_now;
    CHECK_EQ_INT(push(s, "room1", "p1", "p2", PL_ENV_OFFER, "o1", "{}"), 0);
    REQUIRE(redis_number("HGET pl:{room1}:room sx", &v, &nil));
    CHECK(!nil);
    CHECK_EQ_INT(v, pushed_at + 30 * 1000);
    REQUIRE(redis_number("ZSCORE pl:expiry room1", &v, &nil));
    CHECK_EQ_INT(v, pushed_at + 30 * 1000);
    /* Taken at once: sx is now stale, which costs one visit of the sweep... */
    CHECK_EQ_INT(pop(s, "room1", "p2", PL_ENV_ALL, 10), 0);
    CHECK_EQ_INT(R.nenvs, 1);
    fake_now = pushed_at + 30 * 1000;
    sweep(s);
    REQUIRE(redis_number("HGET pl:{room1}:room sx", &v, &nil));
    CHECK(nil);
    /* ...after which the room is due at its members' expiry, not now. */
    REQUIRE(redis_number("ZSCORE pl:expiry room1", &v, &nil));
    CHECK(!nil);
    CHECK(v > fake_now);
    CHECK_EQ_INT(stats(s).signals_expired, 0);
    fx_close(&fx);
}

static void test_two_nodes(void)
{
    fixture_t fx;
    pl_store_opts_t o = default_opts();
    REQUIRE(fx_open(&fx, &o) == 0);
    pl_store_t *a = fx.s;
    /* A second store with a listener of its own, which counts what it hears. */
    pl_store_listener_t lb = {.on_inbox = on_inbox_b, .on_member_expired = on_member_expired_b};
    pl_store_t *b = NULL;
    REQUIRE(redis_node(&fx.loop, &o, &lb, "b", &b) == 0);
    REQUIRE(wait_ready(b, 3000));
    inbox_b = 0;
    ninbox = 0;
    CHECK_EQ_INT(create(a, "room1", "u1", "alice", "p1", true, 16), 0);
    CHECK_EQ_INT(list(b, 10, NULL), 0);
    CHECK_EQ_INT(R.nrooms, 1);
    CHECK_EQ_INT(join(b, NULL, "alice", "p2", "u2"), 0);
    CHECK_EQ_STR(R.room.id, "room1");
    CHECK_EQ_INT(push(a, "room1", "p1", "p2", PL_ENV_OFFER, "e1", "{}"), 0);
    SPIN_UNTIL(1000, inbox_b != 0);
    CHECK_EQ_INT(inbox_b, 1);
    CHECK_EQ_STR(inbox_b_peer, "p2");
    settle();
    CHECK_EQ_INT(ninbox, 1); /* node a hears it too */
    CHECK_EQ_STR(inbox_notes[0].room, "room1");
    CHECK_EQ_INT(pop(b, "room1", "p2", PL_ENV_ALL, 10), 0);
    CHECK_EQ_INT(R.nenvs, 1);
    /* Rate limits are shared. */
    CHECK_EQ_INT(rate(a, "k", 60000), 0);
    CHECK_EQ_INT(rate(b, "k", 60000), 0);
    CHECK_EQ_INT(R.count, 2);
    /* Expiry is reported by exactly one node: both sweep (their timers too, maybe), and
     * whichever came first reports both members, once. */
    reset_notes();
    expired_b = 0;
    fake_now += 91 * 1000;
    pl_store_redis_sweep(a);
    pl_store_redis_sweep(b);
    barrier(a);
    barrier(b);
    SPIN_UNTIL(1000, nmember_notes + (size_t)expired_b >= 2);
    spin_for(500);
    CHECK_EQ_INT(nmember_notes + (size_t)expired_b, 2);
    CHECK(nmember_notes == 0 || expired_b == 0);
    b->destroy(b);
    fx_close(&fx);
}

/* Direct delivery: a node that holds the recipient's socket gets the envelope in the push's
 * reply instead of through the inbox, the pop and the notification. */
static int direct_asks, direct_takes;
static bool direct_can, direct_take_ok;
static pl_envelope_t direct_env;
static char direct_json[256], direct_to[PL_ID_SIZE];
static bool direct_can_deliver(void *ud, const char *room, const char *peer)
{
    (void)ud;
    (void)room;
    (void)peer;
    direct_asks++;
    return direct_can;
}
static bool direct_deliver(void *ud, const char *room, const char *peer, const pl_envelope_t *env)
{
    (void)ud;
    direct_takes++;
    snprintf(direct_to, sizeof direct_to, "%s/%s", room, peer);
    direct_env = *env;
    snprintf(direct_json, sizeof direct_json, "%.*s", (int)env->json_len, env->json);
    direct_env.json = direct_json;
    return direct_take_ok;
}

/* A fixture (store a) and a second node d whose listener is the direct_* above, with
 * room1 of p1 (creator) and p2. */
static bool direct_open(fixture_t *fx, pl_store_t **d)
{
    pl_store_opts_t o = default_opts();
    static const pl_store_listener_t ld = {.can_deliver = direct_can_deliver,
                                           .deliver = direct_deliver};
    if (fx_open(fx, &o) != 0)
        return false;
    if (redis_node(&fx->loop, &o, &ld, "d", d) != 0 || !wait_ready(*d, 3000))
        return false;
    return create(fx->s, "room1", "u1", "alice", "p1", true, 16) == 0 &&
           join(fx->s, "room1", NULL, "p2", "u2") == 0;
}

static void test_direct_delivery(void)
{
    fixture_t fx;
    pl_store_t *d = NULL;
    REQUIRE(direct_open(&fx, &d));
    pl_store_t *a = fx.s;
    clear_inbox_notes();

    /* Taken: handed over whole, nothing queued, counted as delivered, no notification. */
    direct_can = direct_take_ok = true;
    direct_asks = direct_takes = 0;
    CHECK_EQ_INT(push(d, "room1", "p1", "p2", PL_ENV_CANDIDATE, "c1", "{\"c\":1}"), 0);
    CHECK_EQ_INT(direct_asks, 1);
    CHECK_EQ_INT(direct_takes, 1);
    CHECK_EQ_STR(direct_to, "room1/p2");
    CHECK_EQ_STR(direct_env.id, "c1");
    CHECK_EQ_INT(direct_env.type, PL_ENV_CANDIDATE);
    CHECK_EQ_STR(direct_env.from, "p1");
    CHECK_EQ_STR(direct_json, "{\"c\":1}");
    settle();
    CHECK_EQ_INT(ninbox, 0);
    CHECK_EQ_INT(stats(a).signals_queued, 0);
    CHECK_EQ_INT(stats(a).signals_delivered, 1);
    CHECK_EQ_INT(pop(a, "room1", "p2", PL_ENV_ALL, 10), 0);
    CHECK_EQ_INT(R.nenvs, 0);
    /* An offer taken directly still records its sender as the answer's default `to`. */
    CHECK_EQ_INT(push(d, "room1", "p1", "p2", PL_ENV_OFFER, "o1", "{}"), 0);
    CHECK_EQ_INT(direct_takes, 2);
    CHECK_EQ_INT(get_member(a, "room1", "p2"), 0);
    CHECK_EQ_STR(R.member.last_offer_from, "p1");
    /* Membership is checked as for any push. */
    CHECK_EQ_INT(push(d, "room1", "zz", "p2", PL_ENV_CANDIDATE, "c2", "{}"), PL_EFORBIDDEN);
    CHECK_EQ_INT(push(d, "room1", "p1", "zz", PL_ENV_CANDIDATE, "c3", "{}"), PL_ENOTFOUND);
    CHECK_EQ_INT(direct_takes, 2);

    /* Something already waits in the inbox: later pushes queue behind it, in order, even
     * though the socket could take them. */
    direct_can = false;
    CHECK_EQ_INT(push(d, "room1", "p1", "p2", PL_ENV_CANDIDATE, "q1", "{}"), 0);
    direct_can = true;
    CHECK_EQ_INT(push(d, "room1", "p1", "p2", PL_ENV_CANDIDATE, "q2", "{}"), 0);
    CHECK_EQ_INT(direct_takes, 2);
    wait_inbox(2);
    CHECK_EQ_INT(pop(a, "room1", "p2", PL_ENV_ALL, 10), 0);
    REQUIRE(R.nenvs == 2);
    CHECK_EQ_STR(R.envs[0].id, "q1");
    CHECK_EQ_STR(R.envs[1].id, "q2");

    /* The socket closed between the question and the reply: the envelope is queued after
     * all (not lost), and counted as delivered once, when popped. */
    clear_inbox_notes();
    direct_take_ok = false;
    uint64_t before = stats(a).signals_delivered;
    CHECK_EQ_INT(push(d, "room1", "p1", "p2", PL_ENV_CANDIDATE, "r1", "{}"), 0);
    CHECK_EQ_INT(direct_takes, 3);
    wait_inbox(1);
    CHECK_EQ_INT(stats(a).signals_queued, 1);
    CHECK_EQ_INT(pop(a, "room1", "p2", PL_ENV_ALL, 10), 0);
    REQUIRE(R.nenvs == 1);
    CHECK_EQ_STR(R.envs[0].id, "r1");
    CHECK_EQ_INT(stats(a).signals_delivered, before + 1);
    CHECK_EQ_INT(stats(a).signals_queued, 0);

    /* A room's open offer (no `to`) is never delivered directly. */
    direct_take_ok = true;
    direct_asks = 0;
    CHECK_EQ_INT(push(d, "room1", "p1", NULL, PL_ENV_OFFER, "oo", "{}"), 0);
    CHECK_EQ_INT(direct_asks, 0);
    CHECK_EQ_INT(pop(a, "room1", "p2", PL_ENV_ALL, 10), 0);
    REQUIRE(R.nenvs == 1);
    CHECK_EQ_STR(R.envs[0].id, "oo");
    d->destroy(d);
    fx_close(&fx);
}

/* Counts the answers of the calls test_code_reloaded has in flight at once. */
static int storm_ok, storm_done;
static void storm_cb(void *ud, int status, const pl_room_t *room)
{
    (void)ud;
    (void)room;
    storm_done++;
    storm_ok += status == 0;
}

/* The server loses the engine's code (a restart without persistence, FUNCTION FLUSH or
 * SCRIPT FLUSH): the next operation loads it again and succeeds, and so do thousands in
 * flight at once (found in review: each failed call sent its own FUNCTION LOAD, and the
 * storm timed the connection out). */
static void test_code_reloaded(void)
{
    fixture_t fx;
    pl_store_opts_t o = default_opts();
    REQUIRE(fx_open(&fx, &o) == 0);
    CHECK_EQ_INT(create(fx.s, "room1", "u1", "alice", "p1", true, 16), 0);
    long long n = 0;
    bool nil = false;
    CHECK(redis_number("FUNCTION FLUSH", &n, &nil));
    CHECK(redis_number("SCRIPT FLUSH", &n, &nil));
    CHECK_EQ_INT(join(fx.s, "room1", NULL, "p2", "u2"), 0);
    CHECK_EQ_INT(R.room.participant_count, 2);
    CHECK_EQ_INT(join(fx.s, "room1", NULL, "p3", "u3"), 0);
    CHECK_EQ_INT(R.room.participant_count, 3);
    CHECK(redis_number("FUNCTION FLUSH", &n, &nil));
    CHECK(redis_number("SCRIPT FLUSH", &n, &nil));
    storm_ok = storm_done = 0;
    for (int i = 0; i < 3000; i++)
        CHECK_EQ_INT(fx.s->get_room(fx.s, "room1", storm_cb, NULL), 0);
    SPIN_UNTIL(10000, storm_done == 3000);
    CHECK_EQ_INT(storm_done, 3000);
    CHECK_EQ_INT(storm_ok, 3000);
    fx_close(&fx);
}

/* Pushes without waiting for each answer (direct_can read at each call), then waits for
 * all: what a busy node does. */
static int burst_done, burst_status[16];
static void burst_cb(void *ud, int status)
{
    burst_status[(uintptr_t)ud] = status;
    burst_done++;
}

static void push_nowait(pl_store_t *s, int i, const char *from, const char *to, const char *id)
{
    pl_envelope_t env = {.type = PL_ENV_CANDIDATE, .json = "{}", .json_len = 2};
    snprintf(env.id, sizeof env.id, "%s", id);
    snprintf(env.from, sizeof env.from, "%s", from);
    CHECK_EQ_INT(s->push(s, "room1", from, to, &env, burst_cb, (void *)(uintptr_t)i), 0);
}

/* The socket refuses envelopes that were in flight when it closed: they go back to the head
 * of the inbox in push order, ahead of what was queued meanwhile, each counted as delivered once,
 * and none is lost when the sender has left in the meantime (found in review: they were queued at
 * the tail behind later ones, and a requeue re-ran the sender and limit checks and could drop
 * them). */
static void test_direct_refused_in_flight(void)
{
    fixture_t fx;
    pl_store_t *d = NULL;
    REQUIRE(direct_open(&fx, &d));
    pl_store_t *a = fx.s;
    CHECK_EQ_INT(join(a, "room1", NULL, "p3", "u3"), 0);
    uint64_t delivered0 = stats(a).signals_delivered;

    direct_take_ok = false; /* the socket is closing */
    direct_takes = 0;
    burst_done = 0;
    direct_can = true;
    push_nowait(d, 0, "p1", "p2", "A");
    push_nowait(d, 1, "p1", "p2", "B");
    push_nowait(d, 2, "p3", "p2", "C");
    direct_can = false; /* the node has noticed */
    push_nowait(d, 3, "p1", "p2", "D");
    push_nowait(d, 4, "p3", "p2", "E");
    SPIN_UNTIL(3000, burst_done == 5);
    REQUIRE(burst_done == 5);
    for (int i = 0; i < 5; i++)
        CHECK_EQ_INT(burst_status[i], 0);
    CHECK_EQ_INT(direct_takes, 3);
    settle();
    CHECK_EQ_INT(pop(a, "room1", "p2", PL_ENV_ALL, 10), 0);
    REQUIRE(R.nenvs == 5);
    const char *want[] = {"A", "B", "C", "D", "E"};
    for (int i = 0; i < 5; i++)
        CHECK_EQ_STR(R.envs[i].id, want[i]);
    CHECK_EQ_INT(stats(a).signals_delivered, delivered0 + 5);
    CHECK_EQ_INT(stats(a).signals_queued, 0);

    /* The sender leaves while its refused envelope is still on its way back. */
    direct_can = true;
    burst_done = 0;
    push_nowait(d, 0, "p1", "p2", "F");
    R.calls = 0;
    CHECK_EQ_INT(d->leave_room(d, "room1", "p1", leave_cb, NULL),
                 0); /* after F, before F's requeue */
    SPIN_UNTIL(3000, burst_done == 1 && R.calls == 1);
    settle();
    CHECK_EQ_INT(pop(a, "room1", "p2", PL_ENV_ALL, 10), 0);
    REQUIRE(R.nenvs == 1);
    CHECK_EQ_STR(R.envs[0].id, "F");
    CHECK_EQ_INT(stats(a).signals_delivered, delivered0 + 6);
    direct_can = false;
    direct_take_ok = true;
    d->destroy(d);
    fx_close(&fx);
}

/* The shared secret is the same on every node on the same redis, as it is for a parleyd
 * restarted (the key has no TTL). */
static void test_shared_secret_two_nodes(void)
{
    fixture_t fx;
    pl_store_opts_t o = default_opts();
    REQUIRE(fx_open(&fx, &o) == 0);
    unsigned char first[32];
    CHECK_EQ_INT(secret(fx.s, "signaling", 32), 0);
    CHECK_EQ_INT((int)secret_len, 32);
    memcpy(first, secret_buf, 32);
    pl_store_t *b = NULL;
    REQUIRE(redis_node(&fx.loop, &o, NULL, "b", &b) == 0);
    REQUIRE(wait_ready(b, 3000));
    memset(secret_buf, 0, sizeof secret_buf);
    CHECK_EQ_INT(secret(b, "signaling", 32), 0);
    CHECK_EQ_INT((int)secret_len, 32);
    CHECK(memcmp(first, secret_buf, 32) == 0);
    b->destroy(b);
    fx_close(&fx);
}

static int closed_status;
static void closed_cb(void *ud, int status, const pl_room_t *room)
{
    (void)ud;
    (void)room;
    closed_status = status;
}

static void test_redis_restart(void)
{
    fixture_t fx;
    pl_store_opts_t o = default_opts();
    REQUIRE(fx_open(&fx, &o) == 0);
    pl_store_t *s = fx.s;
    CHECK_EQ_INT(create(s, "room1", "u1", "alice", "p1", true, 16), 0);
    redis_kill();
    SPIN_UNTIL(2000, !s->ready(s));
    CHECK(!s->ready(s));
    int64_t t1 = mono_ms();
    CHECK_EQ_INT(get_room(s, "room1"), PL_EUNAVAIL);
    CHECK(mono_ms() - t1 < 100);
    REQUIRE(redis_start());
    CHECK(wait_ready(s, 8000));
    /* The data is gone with the restart: a clean 404. */
    CHECK_EQ_INT(get_room(s, "room1"), PL_ENOTFOUND);
    CHECK_EQ_INT(create(s, "room1", "u1", "alice", "p1", true, 16), 0);
    CHECK(R.created);
    /* destroy with a request in flight: its callback fires with PL_ECLOSED. */
    closed_status = 1;
    CHECK_EQ_INT(s->get_room(s, "room1", closed_cb, NULL), 0);
    fx_close(&fx);
    CHECK_EQ_INT(closed_status, PL_ECLOSED);
}

/* A frozen Redis (SIGSTOP) keeps its sockets open and never answers: every request fails
 * PL_EUNAVAIL at its deadline (2 s), exactly once, the store turns unready, and after
 * SIGCONT it reconnects and turns ready by itself. */
static int frozen_calls[3], frozen_status[3];
static void frozen_status_cb(void *ud, int status)
{
    int i = (int)(intptr_t)ud;
    frozen_calls[i]++;
    frozen_status[i] = status;
}
static void frozen_rate_cb(void *ud, int status, uint64_t count, int64_t reset_ms)
{
    (void)count;
    (void)reset_ms;
    frozen_status_cb(ud, status);
}
static void frozen_room_cb(void *ud, int status, const pl_room_t *room)
{
    (void)room;
    frozen_status_cb(ud, status);
}

static void test_redis_frozen(void)
{
    fixture_t fx;
    pl_store_opts_t o = default_opts();
    REQUIRE(fx_open(&fx, &o) == 0);
    pl_store_t *s = fx.s;
    CHECK_EQ_INT(create(s, "room1", "u1", "alice", "p1", true, 16), 0);
    memset(frozen_calls, 0, sizeof frozen_calls);
    REQUIRE(kill(redis_pid, SIGSTOP) == 0);
    int64_t t0 = mono_ms();
    CHECK_EQ_INT(s->get_room(s, "room1", frozen_room_cb, (void *)(intptr_t)0), 0);
    spin_for(300);
    CHECK_EQ_INT(s->rate_hit(s, "k", 60000, frozen_rate_cb, (void *)(intptr_t)1), 0);
    CHECK(s->ready(s));
    SPIN_UNTIL(4000, frozen_calls[0] && frozen_calls[1]);
    int64_t took = mono_ms() - t0;
    CHECK_EQ_INT(frozen_calls[0], 1);
    CHECK_EQ_INT(frozen_calls[1], 1);
    CHECK_EQ_INT(frozen_status[0], PL_EUNAVAIL);
    CHECK_EQ_INT(frozen_status[1], PL_EUNAVAIL);
    CHECK(took < 2500); /* a sweep sent earlier may time out first: at most 2 s */
    /* The connection counts as broken: unready, new requests fail at once. */
    CHECK(!s->ready(s));
    int64_t t1 = mono_ms();
    CHECK_EQ_INT(get_room(s, "room1"), PL_EUNAVAIL);
    CHECK(mono_ms() - t1 < 100);
    /* Reconnects to a frozen Redis do not make it ready (the handshake must answer). */
    int64_t t2 = mono_ms();
    while (mono_ms() - t2 < 2500) {
        CHECK(!s->ready(s));
        if (s->ready(s))
            break;
        spin_for(10);
    }
    CHECK_EQ_INT(kill(redis_pid, SIGCONT), 0);
    CHECK(wait_ready(s, 10000));
    CHECK_EQ_INT(get_room(s, "room1"), 0);
    CHECK_EQ_INT(rate(s, "k2", 60000), 0);
    /* No second callback for the requests that timed out. */
    spin_for(200);
    CHECK_EQ_INT(frozen_calls[0], 1);
    CHECK_EQ_INT(frozen_calls[1], 1);
    fx_close(&fx);
}

/* Nodes with other TTLs share one Redis (docs/scaling.md): a member that joins, or
 * heartbeats, through a node with a shorter member_ttl is due before the room's score said.
 * That node lowers the score, so the sweep removes the member on time. */
static void mixed_ttl_case(bool by_heartbeat)
{
    fixture_t fx;
    pl_store_opts_t o = default_opts(); /* member_ttl 90 s */
    REQUIRE(fx_open(&fx, &o) == 0);
    pl_store_t *a = fx.s;
    pl_store_opts_t ob = default_opts();
    ob.member_ttl_s = 30;
    pl_store_listener_t lb = {.on_inbox = on_inbox_b, .on_member_expired = on_member_expired_b};
    pl_store_t *b = NULL;
    REQUIRE(redis_node(&fx.loop, &ob, &lb, "b", &b) == 0);
    REQUIRE(wait_ready(b, 3000));
    CHECK_EQ_INT(create(a, "room1", "u1", "alice", "p1", true, 16), 0);
    if (by_heartbeat) {
        CHECK_EQ_INT(join(a, "room1", NULL, "p2", "u2"), 0);
        fake_now += 1000;
        CHECK_EQ_INT(heartbeat(b, "room1", "p2"), 0);
    } else {
        CHECK_EQ_INT(join(b, "room1", NULL, "p2", "u2"), 0);
    }
    CHECK_EQ_INT(R.member.expires_at_ms, fake_now + 30 * 1000);
    reset_notes();
    expired_b = 0;
    fake_now += 40 * 1000; /* p2 is 10 s past its expiry, p1 is not */
    pl_store_redis_sweep(a);
    pl_store_redis_sweep(b);
    barrier(a);
    barrier(b);
    CHECK_EQ_INT((int)nmember_notes + expired_b, 1);
    CHECK_EQ_INT(get_member(a, "room1", "p2"), PL_EFORBIDDEN);
    CHECK_EQ_INT(get_members(a, "room1"), 0);
    CHECK_EQ_INT(R.npeers, 1);
    b->destroy(b);
    fx_close(&fx);
}

static void test_mixed_member_ttl_join(void)
{
    mixed_ttl_case(false);
}

static void test_mixed_member_ttl_heartbeat(void)
{
    mixed_ttl_case(true);
}

/* A room whose hash went (eviction) while its score stayed: a heartbeat answers not found
 * and writes no hash without a TTL. */
static void test_heartbeat_room_hash_gone(void)
{
    fixture_t fx;
    pl_store_opts_t o = default_opts();
    REQUIRE(open_room1(&fx, &o, 2));
    pl_store_t *s = fx.s;
    REQUIRE(redis_cmd("DEL pl:{room1}:room"));
    CHECK_EQ_INT(heartbeat(s, "room1", "p1"), PL_ENOTFOUND);
    long long v = 0;
    bool nil = false;
    REQUIRE(redis_number("EXISTS pl:{room1}:room", &v, &nil));
    CHECK_EQ_INT(v, 0);
    fx_close(&fx);
}

int main(void)
{
    if (system("command -v redis-server >/dev/null 2>&1") != 0) {
        /* Under ctest a missing redis-server is a failure: a run must not pass by running
         * nothing (deploy/install-deps.sh installs it). */
        const char *strict = getenv("PARLEY_TEST_STRICT");
        printf("%s: redis-server not found (deploy/install-deps.sh installs it)\n",
               strict && strcmp(strict, "1") == 0 ? "FAIL" : "SKIP");
        return strict && strcmp(strict, "1") == 0 ? 1 : 77;
    }
    signal(SIGPIPE, SIG_IGN);
    redis_port = free_port();
    if (redis_port <= 0 || !redis_start()) {
        fprintf(stderr, "could not start redis-server\n");
        redis_kill();
        return 1;
    }
    run_store_scenarios(&redis_engine);
    printf("-- the same scenarios with scripts (EVALSHA), as on Redis < 7\n");
    run_store_scenarios(&redis_scripts_engine);
    store_engine = &redis_scripts_engine;
    RUN(test_code_reloaded);
    store_engine = &redis_engine;
    RUN(test_code_reloaded);
    RUN(test_direct_delivery);
    RUN(test_direct_refused_in_flight);
    RUN(test_signal_expiry_bookkeeping);
    RUN(test_two_nodes);
    RUN(test_shared_secret_two_nodes);
    RUN(test_mixed_member_ttl_join);
    RUN(test_mixed_member_ttl_heartbeat);
    RUN(test_heartbeat_room_hash_gone);
    RUN(test_redis_frozen);
    RUN(test_redis_restart);
    redis_kill();
    TEST_MAIN();
}
